//! The `auditlake` binary: parses arguments, sets up logging, calls into the library and maps
//! the outcome to an exit code. It is the only place that writes to stdout.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

use auditlake::cli::{Cli, Command, LogFormat};
use auditlake::config::{self, ConfigError, Env, FileConfig};
#[cfg(feature = "simulator")]
use auditlake::demo;
use auditlake::lease::LeaseError;
use auditlake::manifest::{Manifest, ManifestError};
use auditlake::ops::{self, ExportRequested, ListRequest};
use auditlake::runner::{self, NoProgress, Progress, RunError, Summary};
use auditlake::storage::{layout, Lake};
use auditlake::verify;
use auditlake::window::parse_instant;
use auditlake::zendesk::{ApiError, Client, RequestBudget};

/// Exit codes, as documented in `--help` and the README.
mod exit {
    pub const OK: u8 = 0;
    pub const WINDOWS_FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const ACCESS: u8 = 3;
    pub const DESTINATION: u8 = 4;
    pub const LEASE: u8 = 5;
    pub const NOT_EXACT: u8 = 6;
    pub const INTERRUPTED: u8 = 130;
}

/// A command's failure, with the exit code it maps to.
struct Failed {
    code: u8,
    message: String,
}

impl From<ConfigError> for Failed {
    fn from(e: ConfigError) -> Self {
        Failed {
            code: exit::USAGE,
            message: e.to_string(),
        }
    }
}

impl From<ApiError> for Failed {
    fn from(e: ApiError) -> Self {
        let code = if e.is_fatal_for_run() {
            exit::ACCESS
        } else {
            exit::WINDOWS_FAILED
        };
        Failed {
            code,
            message: e.to_string(),
        }
    }
}

impl From<RunError> for Failed {
    fn from(e: RunError) -> Self {
        let code = match &e {
            RunError::Manifest(ManifestError::Mismatch { .. }) | RunError::Client(_) => exit::USAGE,
            RunError::Lease(
                LeaseError::Held { .. }
                | LeaseError::Lost { .. }
                | LeaseError::Expired { .. }
                | LeaseError::Released(_),
            ) => exit::LEASE,
            RunError::Commit(e) if !e.is_storage() => exit::LEASE,
            RunError::Interrupted => exit::INTERRUPTED,
            RunError::Verify(auditlake::verify::VerifyError::Api(api))
            | RunError::Authenticate(api)
                if api.is_fatal_for_run() =>
            {
                exit::ACCESS
            }
            RunError::Verify(auditlake::verify::VerifyError::Api(_))
            | RunError::Authenticate(_) => exit::WINDOWS_FAILED,
            RunError::Verify(auditlake::verify::VerifyError::NoDataset { .. }) => exit::USAGE,
            RunError::Verify(_) => exit::DESTINATION,
            RunError::Storage(_)
            | RunError::Manifest(_)
            | RunError::Lease(_)
            | RunError::Commit(_) => exit::DESTINATION,
        };
        Failed {
            code,
            message: e.to_string(),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let file = match FileConfig::load(cli.config.as_deref()) {
        Ok(file) => file,
        Err(e) => return fail(Failed::from(e)),
    };
    let env = Env::capture();
    let show_progress = !cli.quiet && std::io::stderr().is_terminal();
    init_logging(&cli, &file, &env, show_progress);
    // An export's async work is light (HTTP and waiting); decoding and Parquet run on blocking
    // threads. One async thread keeps each request, its connection task and its page on one
    // thread: on a multi-threaded runtime every page cost several cross-thread wakeups.
    let mut builder = match cli.command {
        Command::Export(_) => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = builder
        .enable_all()
        .build()
        .expect("the tokio runtime starts");
    match runtime.block_on(run(cli, file, env, show_progress)) {
        Ok(code) => ExitCode::from(code),
        Err(failed) => fail(failed),
    }
}

fn fail(failed: Failed) -> ExitCode {
    eprintln!("auditlake: error: {}", failed.message);
    ExitCode::from(failed.code)
}

fn init_logging(cli: &Cli, file: &FileConfig, env: &Env, show_progress: bool) {
    let default = if cli.quiet || show_progress {
        "warn"
    } else {
        "info"
    };
    let level = config::log_level(cli.log_level.as_deref(), file, env);
    let filter = level.filter.unwrap_or_else(|| default.to_string());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match cli
        .log_format
        .or(file.log_format)
        .unwrap_or(LogFormat::Text)
    {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
    if level.from_deprecated_env {
        tracing::warn!("AUDITLAKE_LOG is deprecated: use AUDITLAKE_LOG_LEVEL");
    }
}

async fn run(cli: Cli, file: FileConfig, env: Env, show_progress: bool) -> Result<u8, Failed> {
    match cli.command {
        Command::Export(args) => {
            let now = chrono::Utc::now().timestamp();
            let config = config::export(&args, &file, &env, now)?;
            let summary_json = config.summary_json.clone();
            let cancel = cancel_on_signals();
            let bar = show_progress.then(ProgressBarObserver::new);
            let progress: &dyn Progress = match &bar {
                Some(bar) => bar,
                None => &NoProgress,
            };
            let summary = runner::export(config, cancel, progress).await?;
            if let Some(bar) = &bar {
                bar.0.finish_and_clear();
            }
            let code = summary_code(&summary);
            if let Some(path) = summary_json {
                write_summary_json(&path, &summary, code)?;
            }
            if !cli.quiet {
                eprint!("{}", human_summary(&summary));
            }
            Ok(code)
        }
        Command::Status(args) => {
            let dest = args
                .dest
                .or_else(|| file.dest.clone())
                .ok_or_else(|| ConfigError("--dest is required".into()))?;
            let subdomain = args
                .subdomain
                .or_else(|| file.subdomain.clone())
                .ok_or_else(|| ConfigError("--subdomain is required".into()))?;
            if !layout::valid_subdomain(&subdomain) {
                return Err(ConfigError(format!(
                    "--subdomain {subdomain:?} is not a Zendesk subdomain"
                ))
                .into());
            }
            let store = config::store(&args.store, &file, &env)?;
            let lake = Lake::open(&dest, &store).map_err(|e| Failed {
                code: exit::DESTINATION,
                message: e.to_string(),
            })?;
            let manifest = Manifest::new(lake.clone(), &subdomain);
            let status = auditlake::status::status(&manifest, &subdomain, lake.display())
                .await
                .map_err(|e| Failed {
                    code: exit::DESTINATION,
                    message: e.to_string(),
                })?;
            let mut out = std::io::stdout().lock();
            if args.json {
                let text = serde_json::to_string_pretty(&status).expect("plain data serializes");
                let _ = writeln!(out, "{text}");
            } else {
                let _ = write!(out, "{status}");
            }
            Ok(exit::OK)
        }
        Command::Verify(args) => {
            let config = config::verify(&args, &file, &env)?;
            let lake = Lake::open(&config.dest, &config.store).map_err(|e| Failed {
                code: exit::DESTINATION,
                message: e.to_string(),
            })?;
            let client = match config.api.clone() {
                Some(api) => {
                    let budget =
                        RequestBudget::new(api.max_requests_per_minute, api.rate_limit_share);
                    let client =
                        Client::new(api.client, std::sync::Arc::new(budget)).map_err(|e| {
                            Failed {
                                code: exit::USAGE,
                                message: e,
                            }
                        })?;
                    client.authenticate().await?;
                    Some(client)
                }
                None => None,
            };
            let report = verify::verify(&lake, &config.subdomain, &config.options, client.as_ref())
                .await
                .map_err(|e| Failed::from(RunError::Verify(e)))?;
            print_report(&report, args.json, &report);
            Ok(if report.is_clean() {
                exit::OK
            } else {
                exit::NOT_EXACT
            })
        }
        Command::Repair(args) => {
            let now = chrono::Utc::now().timestamp();
            let config = config::repair(&args, &file, &env, now)?;
            let outcome = runner::repair(config, cancel_on_signals()).await?;
            print_report(&outcome, args.check.json, &outcome.after);
            if !cli.quiet && !args.check.json {
                eprintln!(
                    "auditlake: repair: {} window(s) re-exported, {} file(s) removed, {} interrupted repair(s) finished, {} failed",
                    outcome.windows_repaired.len(),
                    outcome.files_removed,
                    outcome.repairs_converged,
                    outcome.failures.len()
                );
                for failure in &outcome.failures {
                    eprintln!("  failed {}: {}", failure.window, failure.error);
                }
            }
            Ok(if !outcome.failures.is_empty() {
                exit::WINDOWS_FAILED
            } else if outcome.after.is_clean() {
                exit::OK
            } else {
                exit::NOT_EXACT
            })
        }
        Command::Show(args) => {
            let client = client(&args.api, &file, &env).await?;
            let record = ops::show(&client, args.id).await.map_err(|e| match e {
                ApiError::NotFound { .. } => Failed {
                    code: exit::WINDOWS_FAILED,
                    message: format!("no audit log with id {} (404)", args.id),
                },
                other => other.into(),
            })?;
            let pretty = serde_json::from_str::<serde_json::Value>(&record)
                .and_then(|v| serde_json::to_string_pretty(&v))
                .unwrap_or(record);
            let _ = writeln!(std::io::stdout().lock(), "{pretty}");
            Ok(exit::OK)
        }
        Command::List(args) => {
            let client = client(&args.api, &file, &env).await?;
            let filters = config::filters(&args.filters, &file)?;
            let range = match (&args.since, &args.until) {
                (None, None) => None,
                (since, until) => {
                    let since = since
                        .as_deref()
                        .map(parse_instant)
                        .transpose()
                        .map_err(|e| ConfigError(format!("--since: {e}")))?
                        .unwrap_or(0);
                    let until = until
                        .as_deref()
                        .map(parse_instant)
                        .transpose()
                        .map_err(|e| ConfigError(format!("--until: {e}")))?
                        .unwrap_or_else(|| chrono::Utc::now().timestamp() + 1);
                    if since >= until {
                        return Err(ConfigError("--since must be before --until".into()).into());
                    }
                    Some((since, until))
                }
            };
            let request = ListRequest {
                filters,
                range,
                limit: args.limit,
                pagination: args.pagination.unwrap_or_default(),
            };
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let listed = ops::list(&client, &request, |record| {
                let _ = writeln!(out, "{record}");
            })
            .await?;
            let _ = out.flush();
            tracing::info!(records = listed, "listed");
            Ok(exit::OK)
        }
        Command::RequestExport(args) => {
            let client = client(&args.api, &file, &env).await?;
            let filters = config::filters(&args.filters, &file)?;
            match ops::request_export(&client, &filters).await? {
                ExportRequested::Accepted {
                    remaining,
                    resets_in,
                } => {
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(
                        out,
                        "export requested (202 Accepted): Zendesk prepares a CSV of the matching audit logs and delivers it on its side (to the requesting admin); no job id is returned."
                    );
                    let _ = writeln!(
                        out,
                        "limit: 1 export request per minute per account (remaining {}, resets in {})",
                        remaining.map_or("?".to_string(), |r| r.to_string()),
                        resets_in.map_or("?".to_string(), |d| format!("{}s", d.as_secs()))
                    );
                    Ok(exit::OK)
                }
                ExportRequested::Throttled { retry_after } => Err(Failed {
                    code: exit::WINDOWS_FAILED,
                    message: format!(
                        "Zendesk allows 1 export request per minute per account and this minute's is used (429); try again in {}",
                        retry_after.map_or("a minute".to_string(), |d| format!("{} s", d.as_secs().max(1)))
                    ),
                }),
            }
        }
        #[cfg(feature = "simulator")]
        Command::Demo(args) => {
            let bar = show_progress.then(ProgressBarObserver::new);
            let progress: &dyn Progress = match &bar {
                Some(bar) => bar,
                None => &NoProgress,
            };
            let outcome = demo::run(&args, cancel_on_signals(), progress).await?;
            if let Some(bar) = &bar {
                bar.0.finish_and_clear();
            }
            eprint!("{}", human_summary(&outcome.summary));
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", outcome.instructions);
            Ok(summary_code(&outcome.summary))
        }
        #[cfg(feature = "simulator")]
        Command::Simulate(args) => {
            let sim_config = demo::simulator_config(&args).map_err(ConfigError)?;
            let sim = zendesk_sim::Simulator::start(sim_config, args.bind)
                .await
                .map_err(|e| Failed {
                    code: exit::USAGE,
                    message: format!("cannot listen on {}: {e}", args.bind),
                })?;
            {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{}", sim.base_url());
                let _ = out.flush();
            }
            eprintln!(
                "simulating {} audit logs on {} (OAuth token {:?}; OAuth client {:?} with secret {:?} at /oauth/tokens); Ctrl-C stops",
                sim.account().len(),
                sim.base_url(),
                args.token,
                args.client_id,
                args.client_secret
            );
            cancel_on_signals().cancelled().await;
            sim.stop().await;
            Ok(exit::OK)
        }
    }
}

/// The client of `show`, `list` and `request-export`, with its first access token minted when
/// the credentials are an OAuth client.
async fn client(
    args: &auditlake::cli::ApiArgs,
    file: &FileConfig,
    env: &Env,
) -> Result<Client, Failed> {
    let api = config::api(args, file, env)?;
    let budget = RequestBudget::new(api.max_requests_per_minute, api.rate_limit_share);
    let client = Client::new(api.client, std::sync::Arc::new(budget)).map_err(|e| Failed {
        code: exit::USAGE,
        message: e,
    })?;
    client.authenticate().await?;
    Ok(client)
}

/// Prints a verify report (or a repair's outcome) on stdout: JSON, or the report for people.
fn print_report<T: serde::Serialize>(value: &T, json: bool, report: &verify::Report) {
    let mut out = std::io::stdout().lock();
    if json {
        let text = serde_json::to_string_pretty(value).expect("plain data serializes");
        let _ = writeln!(out, "{text}");
    } else {
        let _ = write!(out, "{report}");
    }
}

fn summary_code(summary: &Summary) -> u8 {
    if summary.interrupted {
        exit::INTERRUPTED
    } else if summary.lease_lost {
        exit::LEASE
    } else if summary.store_failed {
        exit::DESTINATION
    } else if summary.fatal.is_some() {
        exit::ACCESS
    } else if summary.windows_failed > 0 {
        exit::WINDOWS_FAILED
    } else {
        exit::OK
    }
}

fn write_summary_json(path: &std::path::Path, summary: &Summary, code: u8) -> Result<(), Failed> {
    let mut value = serde_json::to_value(summary).expect("plain data serializes");
    value["exit_code"] = code.into();
    let text = serde_json::to_string_pretty(&value).expect("plain data serializes");
    std::fs::write(path, text + "\n").map_err(|e| Failed {
        code: exit::USAGE,
        message: format!("--summary-json {}: {e}", path.display()),
    })
}

fn human_summary(s: &Summary) -> String {
    let mut text = format!(
        "auditlake: {} -> {} ({} .. {}, {} windows)\n  windows: {} done, {} already done, {} failed",
        s.subdomain,
        s.dest,
        s.since,
        s.until,
        s.window,
        s.windows_done,
        s.windows_skipped,
        s.windows_failed
    );
    if let Some(open) = &s.open_window {
        text.push_str(&format!("; open window {open} refreshed"));
    }
    text.push_str(&format!(
        "\n  rows: {} in {} files ({:.1} MB)\n  requests: {} (retries {}, 429s {}), {:.1} MB received, {:.1} s\n",
        s.rows,
        s.files,
        s.bytes_written as f64 / 1e6,
        s.requests,
        s.retries,
        s.throttled,
        s.bytes_received as f64 / 1e6,
        s.seconds
    ));
    if s.tokens_minted > 0 {
        text.push_str(&format!(
            "  OAuth access tokens minted: {}\n",
            s.tokens_minted
        ));
    }
    if s.windows_rechecked > 0 || s.repairs_converged > 0 {
        text.push_str(&format!(
            "  recheck: {} windows re-counted, {} repaired, {} with fewer records at Zendesk than in the lake; {} interrupted repairs finished\n",
            s.windows_rechecked, s.windows_repaired, s.windows_api_fewer, s.repairs_converged
        ));
    }
    if let Some(fatal) = &s.fatal {
        text.push_str(&format!("  stopped: {fatal}\n"));
    }
    for failure in &s.failures {
        text.push_str(&format!("  failed {}: {}\n", failure.window, failure.error));
    }
    if s.interrupted {
        text.push_str(
            "  interrupted: unfinished windows were not marked done; rerun to finish them\n",
        );
    }
    text
}

/// Cancels on Ctrl-C or SIGTERM; a second signal exits at once.
fn cancel_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler installs");
        for round in 0..2 {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            if round == 0 {
                cancel.cancel();
            } else {
                eprintln!("auditlake: second signal, exiting at once");
                std::process::exit(i32::from(exit::INTERRUPTED));
            }
        }
    });
    token
}

/// A progress bar on stderr, for terminals.
struct ProgressBarObserver(ProgressBar);

impl ProgressBarObserver {
    fn new() -> Self {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {elapsed_precise} [{bar:30}] {pos}/{len} windows  {msg}",
            )
            .expect("the template is valid")
            .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        ProgressBarObserver(bar)
    }
}

impl Progress for ProgressBarObserver {
    fn start(&self, windows: u64) {
        self.0.set_length(windows);
    }
    fn records(&self, fetched: u64) {
        self.0.set_message(format!("{fetched} records fetched"));
    }
    fn window_finished(&self) {
        self.0.inc(1);
    }
}
