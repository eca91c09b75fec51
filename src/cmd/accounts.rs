//! Every account of one config file in one process (issue 29): the `[[account]]` tables of
//! `--config` (see `config/accounts.rs`), each run as its own command, with its own credentials,
//! rate budget, lease, state and summary. One account's failure (refused credentials, a 403,
//! its store) does not stop the others; the process exits with the worst code of them all.
//!
//! `export` runs up to `--accounts-at-once` accounts at once and writes one summary line and one
//! set of metric samples per account, each with its subdomain; `status` prints one line per
//! account; `verify`, `repair` and `ddl` run the accounts one after another.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use futures::StreamExt;
use tracing::Instrument;

use super::export::{export_with, Exported};
use super::logging::{self, ACCOUNT};
use super::Context;
use crate::cmd::exit;
use crate::config::accounts::{accounts, in_account_terms, AccountRun, Selection};
use crate::config::cli::{Cli, Command};
use crate::config::{self, ConfigError, Env, FileConfig};
use crate::metrics;
use crate::run::ExportConfig;
use crate::Error;

/// `--accounts-at-once`'s default: enough to overlap accounts that wait on their own rate
/// budgets, few enough that a 2-core machine's encoding keeps up (see BENCHMARKS.md).
pub const DEFAULT_ACCOUNTS_AT_ONCE: usize = 4;

/// The accounts `cli` runs, when its command runs accounts and the file lists some; `None` for a
/// single-account run. `--account` or `--shard` without accounts in the file is an error.
pub fn expand(
    argv: &[OsString],
    cli: &Cli,
    file: &FileConfig,
    env: &Env,
) -> Result<Option<Vec<AccountRun>>, ConfigError> {
    let Some(args) = cli.command.accounts() else {
        return Ok(None);
    };
    if file.accounts.is_empty() {
        if let Some(flag) = [("--account", &args.account), ("--shard", &args.shard)]
            .iter()
            .find_map(|(flag, given)| given.as_ref().map(|_| flag))
        {
            return Err(ConfigError(format!(
                "{flag} picks among the [[account]] tables of --config, and there are none"
            )));
        }
        return Ok(None);
    }
    let selection = Selection {
        account: args.account.clone(),
        shard: args.shard.clone(),
    };
    if matches!(&cli.command, Command::Export(a) if a.accounts_at_once == 0) {
        return Err(ConfigError("--accounts-at-once must be at least 1".into()));
    }
    // Only what reaches Zendesk needs the accounts' credentials: a monitor's `status` does not.
    let needs_credentials = match &cli.command {
        Command::Export(_) | Command::Repair(_) => true,
        Command::Verify(args) => args.against_api,
        _ => false,
    };
    let path = cli.config.as_deref().unwrap_or(std::path::Path::new(""));
    accounts(argv, path, env, file, &selection, needs_credentials).map(Some)
}

/// The context of one account's run: its environment, no progress bar (several runs share the
/// terminal).
fn account_context(cx: &Context, run: &AccountRun) -> Context {
    Context {
        file: cx.file.clone(),
        env: run.env.clone(),
        quiet: cx.quiet,
        show_progress: false,
        json_logs: cx.json_logs,
        run_id: cx.run_id.clone(),
    }
}

/// An account's error, said with the account's keys.
fn account_error(subdomain: &str, e: &Error) -> String {
    format!("account {subdomain}: {}", in_account_terms(&e.to_string()))
}

/// Prints a failure of one account (the others go on).
fn print_failure(subdomain: &str, e: &Error) {
    let fields = serde_json::Map::from_iter([("subdomain".to_string(), subdomain.into())]);
    logging::error_line(&account_error(subdomain, e), e.exit_code(), fields);
}

/// Runs the command of `runs` (each an account's command line) for every account; the worst
/// exit code (the highest: 0 success, 1 windows failed, up to 130 interrupted).
pub async fn run(runs: Vec<AccountRun>, cx: &Context) -> Result<u8, Error> {
    if runs.is_empty() {
        tracing::info!("no account in this shard: nothing to run");
        return Ok(exit::OK);
    }
    match &runs[0].cli.command {
        Command::Export(args) => export(&runs, args.accounts_at_once, cx).await,
        Command::Status(args) => status(&runs, args.json, cx).await,
        Command::Ddl(_) => ddl(runs, cx).await,
        _ => one_after_another(runs, cx).await,
    }
}

/// Checks every account's settings (`--check-config`): one line per account, what it would do or
/// why it would not (the worst code, as its run would give it).
pub fn check(runs: &[AccountRun], cx: &Context) -> Result<u8, Error> {
    let mut worst = exit::OK;
    for run in runs {
        let account = account_context(cx, run);
        if let Err(e) = super::check_config(&run.cli.command, &account) {
            worst = worst.max(e.exit_code());
            print_failure(&run.subdomain, &e);
        }
    }
    Ok(worst)
}

/// `export` of every account, up to `at_once` at a time. Every account's settings (and where its
/// summary and metrics go) are validated before any runs (a usage error writes nothing); then each
/// runs alone, its failure its own. One Ctrl-C or SIGTERM stops the runs under way and starts no
/// other.
async fn export(runs: &[AccountRun], at_once: usize, cx: &Context) -> Result<u8, Error> {
    let configs = export_configs(runs, cx)?;
    let cancel = super::cancel_on_signals();
    let finished: Vec<Exported> =
        futures::stream::iter(configs.into_iter().map(|(run, config)| {
            let account = account_context(cx, run);
            let subdomain = run.subdomain.clone();
            let span = tracing::error_span!("account", subdomain = %subdomain);
            let cancel = cancel.clone();
            ACCOUNT.scope(
                subdomain.clone(),
                async move {
                    let failed = |config: &ExportConfig, e: &Error| failed_account(config, e);
                    if cancel.is_cancelled() {
                        return failed(
                            &config,
                            &Error::Run(Box::new(crate::run::RunError::Interrupted)),
                        );
                    }
                    let (kept, result) =
                        (config.clone(), export_with(config, &account, cancel).await);
                    match result {
                        Ok(one) => one,
                        Err(e) => {
                            print_failure(&subdomain, &e);
                            failed(&kept, &e)
                        }
                    }
                }
                .instrument(span),
            )
        }))
        .buffer_unordered(at_once)
        .collect()
        .await;
    let mut exported = finished;
    exported.sort_by(|a, b| a.summary.subdomain.cmp(&b.summary.subdomain));
    let mut worst = exported.iter().map(|e| e.code).max().unwrap_or(exit::OK);
    for one in &mut exported {
        in_account_summary(&mut one.summary);
    }
    if let Err(e) = write_outputs(&exported) {
        worst = worst.max(e.exit_code());
        logging::error_line(&e.to_string(), e.exit_code(), Default::default());
    }
    for one in &exported {
        ACCOUNT.sync_scope(one.summary.subdomain.clone(), || {
            super::export::report(one, cx)
        });
    }
    if !cx.json_logs && !cx.quiet && runs.len() > 1 {
        eprintln!(
            "auditlake: {} account(s): {} exited 0; exit {worst}",
            runs.len(),
            exported.iter().filter(|e| e.code == exit::OK).count()
        );
    }
    Ok(worst)
}

/// Every account's export settings, with where its summary and metrics go checked: a usage
/// error of any account stops them all before anything is written.
fn export_configs<'a>(
    runs: &'a [AccountRun],
    cx: &Context,
) -> Result<Vec<(&'a AccountRun, ExportConfig)>, Error> {
    let now = chrono::Utc::now().timestamp();
    let mut configs = Vec::new();
    for run in runs {
        let Command::Export(args) = &run.cli.command else {
            unreachable!("every account runs the same command")
        };
        let refused = |e: Error| ConfigError(account_error(&run.subdomain, &e));
        let mut config =
            config::export(args, &cx.file, &run.env, now).map_err(|e| refused(e.into()))?;
        if let Some(path) = &config.summary_json {
            super::check::summary_file(path).map_err(refused)?;
        }
        if let Some(path) = &config.metrics_file {
            super::check::summary_file(path)
                .map_err(|e| match e {
                    Error::SummaryFile { path, source } => Error::MetricsFile { path, source },
                    other => other,
                })
                .map_err(refused)?;
        }
        config.run_id = cx.run_id.clone();
        configs.push((run, config));
    }
    Ok(configs)
}

/// A summary's errors said with the account's keys, not the `ZENDESK_*` variables.
fn in_account_summary(summary: &mut crate::run::Summary) {
    summary.fatal = summary.fatal.as_deref().map(in_account_terms);
    for failure in &mut summary.failures {
        failure.error = in_account_terms(&failure.error);
    }
}

/// What a failed account's run says in the summaries and metrics: its subdomain, its exit code
/// and why, so that its alert fires rather than disappears from a file shared by all accounts.
fn failed_account(config: &ExportConfig, e: &Error) -> Exported {
    let code = e.exit_code();
    let summary = crate::run::Summary {
        run_id: config.run_id.clone(),
        subdomain: config.api.subdomain.clone(),
        dest: config.dest.clone(),
        fatal: Some(in_account_terms(&e.to_string())),
        interrupted: code == exit::INTERRUPTED,
        ..Default::default()
    };
    Exported {
        summary,
        code,
        facts: metrics::RunFacts {
            exit_code: code,
            finished_at: chrono::Utc::now().timestamp(),
            ..Default::default()
        },
        summary_json: config.summary_json.clone(),
        metrics_file: config.metrics_file.clone(),
    }
}

/// The accounts' summaries, as JSON lines, and metrics, one sample per account, each to the
/// file its account names (the file's top level gives one file to all). Every file is written,
/// whatever another's failure; the first failure is returned.
fn write_outputs(exported: &[Exported]) -> Result<(), Error> {
    let mut summaries: BTreeMap<&PathBuf, Vec<String>> = BTreeMap::new();
    let mut metrics_files: BTreeMap<&PathBuf, Vec<&Exported>> = BTreeMap::new();
    for one in exported {
        if let Some(path) = &one.summary_json {
            let line =
                serde_json::to_string(&one.summary.json(one.code)).expect("plain data serializes");
            summaries.entry(path).or_default().push(line);
        }
        if let Some(path) = &one.metrics_file {
            metrics_files.entry(path).or_default().push(one);
        }
    }
    let mut first = None;
    for (path, lines) in summaries {
        if let Err(source) = std::fs::write(path, lines.join("\n") + "\n") {
            first.get_or_insert(Error::SummaryFile {
                path: path.clone(),
                source,
            });
        }
    }
    for (path, runs) in metrics_files {
        let samples: Vec<_> = runs.iter().map(|e| (&e.summary, &e.facts)).collect();
        if let Err(source) = metrics::write_atomically(path, &metrics::render_all(&samples)) {
            first.get_or_insert(Error::MetricsFile {
                path: path.clone(),
                source,
            });
        }
    }
    first.map_or(Ok(()), Err)
}

/// `status` of every account: one line each (or one JSON array), and the worst code (a stale
/// or missing lake included).
async fn status(runs: &[AccountRun], json: bool, cx: &Context) -> Result<u8, Error> {
    let mut worst = exit::OK;
    let mut all = Vec::new();
    let mut out = std::io::stdout().lock();
    for run in runs {
        let Command::Status(args) = &run.cli.command else {
            unreachable!("every account runs the same command")
        };
        let account = account_context(cx, run);
        let (line, value, code) = match super::lake::status_of(args, &account).await {
            Ok((status, code, why)) => {
                let line = match &why {
                    Some(why) => format!("{}; stale: {why}", status.line()),
                    None => status.line(),
                };
                let value = serde_json::to_value(&status).expect("plain data serializes");
                (line, value, code)
            }
            Err(e) => {
                let code = e.exit_code();
                let message = in_account_terms(&e.to_string());
                let value = serde_json::json!({
                    "subdomain": run.subdomain,
                    "error": message,
                    "exit_code": code,
                });
                (format!("{}: {message}", run.subdomain), value, code)
            }
        };
        worst = worst.max(code);
        if json {
            all.push(value);
        } else {
            let _ = writeln!(out, "{line} [status: exit {code}]");
        }
    }
    if json {
        let body = serde_json::to_string_pretty(&all).expect("plain data serializes");
        let _ = writeln!(out, "{body}");
    }
    Ok(worst)
}

/// `verify` or `repair` of every account, one after another, each said with its subdomain.
async fn one_after_another(runs: Vec<AccountRun>, cx: &Context) -> Result<u8, Error> {
    let mut worst = exit::OK;
    let cancel = super::cancel_on_signals();
    for run in runs {
        if cancel.is_cancelled() {
            return Ok(worst.max(exit::INTERRUPTED));
        }
        let account = account_context(cx, &run);
        if !cx.json_logs {
            let _ = writeln!(std::io::stdout().lock(), "== account {}", run.subdomain);
        }
        let span = tracing::error_span!("account", subdomain = %run.subdomain);
        let result = ACCOUNT
            .scope(
                run.subdomain.clone(),
                super::run(run.cli.command, &account).instrument(span),
            )
            .await;
        match result {
            Ok(code) => worst = worst.max(code),
            Err(e) => {
                worst = worst.max(e.exit_code());
                print_failure(&run.subdomain, &e);
            }
        }
    }
    Ok(worst)
}

/// `ddl` of the accounts' lake: the SQL for one lake. Accounts that write to one lake share
/// one table (every subdomain, or the one `--account` names); accounts in several lakes must
/// be told apart with `--account` (or `--dest`).
async fn ddl(mut runs: Vec<AccountRun>, cx: &Context) -> Result<u8, Error> {
    let dests: std::collections::BTreeSet<String> = runs
        .iter()
        .filter_map(|r| match &r.cli.command {
            Command::Ddl(args) => args.dest.clone(),
            _ => None,
        })
        .collect();
    if dests.len() > 1 {
        return Err(ConfigError(format!(
            "the accounts write to {} lakes ({}): pick one with --account SUBDOMAIN (or give --dest)",
            dests.len(),
            dests.into_iter().collect::<Vec<_>>().join(", ")
        ))
        .into());
    }
    let one_account = runs.len() == 1
        && matches!(&runs[0].cli.command, Command::Ddl(a) if a.accounts.account.is_some());
    let mut run = runs.swap_remove(0);
    if let Command::Ddl(args) = &mut run.cli.command {
        if !one_account {
            // Every subdomain of the lake: the accounts that write to it, and any other.
            args.subdomain = None;
        }
    }
    let account = account_context(cx, &run);
    super::run(run.cli.command, &account).await
}
