//! The commands, the top layer: one function per command validates its settings through
//! [`crate::config`], calls the stages, and prints what the command prints. Its outcome becomes
//! an exit code in [`exit`], the one place that numbers outcomes. The binary's `main` only
//! parses, sets up logging and ends with that code.

pub mod accounts;
mod api;
mod check;
#[cfg(feature = "simulator")]
pub mod demo;
pub mod exit;
mod export;
mod lake;
pub mod logging;
#[cfg(feature = "simulator")]
mod sim;

use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressDrawTarget, ProgressStyle};
use tokio_util::sync::CancellationToken;

use crate::config::cli::{ApiArgs, Command};
use crate::config::{self, Env, FileConfig};
use crate::run::{Meter, NoProgress, Progress};
use crate::zendesk::{Client, RequestBudget};
use crate::Error;

pub use check::check_config;

/// What every command gets besides its own arguments.
pub struct Context {
    pub file: FileConfig,
    pub env: Env,
    /// `--quiet`: no summary on stderr.
    pub quiet: bool,
    /// A progress bar replaces info logs on a terminal (not when logs are JSON: JSON wins).
    pub show_progress: bool,
    /// Logs are JSON lines: the summary is one of them, and nothing else goes to stderr.
    pub json_logs: bool,
    /// This process's run id: in its lease, its summary and every JSON log line.
    pub run_id: String,
}

impl Context {
    pub fn new(file: FileConfig, env: Env, quiet: bool, json_logs: bool) -> Context {
        Context {
            file,
            env,
            quiet,
            show_progress: !quiet && !json_logs && std::io::stderr().is_terminal(),
            json_logs,
            run_id: crate::units::new_run_id(),
        }
    }
}

/// Runs one command; `Ok` is the exit code of a command that ran to its end.
pub async fn run(command: Command, cx: &Context) -> Result<u8, Error> {
    match command {
        Command::Export(args) => export::export(&args, cx).await,
        Command::Status(args) => lake::status(&args, cx).await,
        Command::Verify(args) => lake::verify(&args, cx).await,
        Command::Repair(args) => lake::repair(&args, cx).await,
        Command::Erase(args) => lake::erase(&args, cx).await,
        Command::Expire(args) => lake::expire(&args, cx).await,
        Command::Ddl(args) => lake::ddl(&args, cx).await,
        Command::Show(args) => api::show(&args, cx).await,
        Command::List(args) => api::list(&args, cx).await,
        Command::RequestExport(args) => api::request_export(&args, cx).await,
        #[cfg(feature = "simulator")]
        Command::Demo(args) => export::demo(&args, cx).await,
        #[cfg(feature = "simulator")]
        Command::Simulate(args) => sim::simulate(&args).await,
    }
}

/// The client of the commands that talk to Zendesk outside a run, with its first access token
/// minted when the credentials are an OAuth client.
async fn client(args: &ApiArgs, cx: &Context) -> Result<Client, Error> {
    let api = config::api(args, &cx.env)?;
    client_for(api).await
}

/// A client for validated API settings, authenticated.
async fn client_for(api: crate::run::ApiConfig) -> Result<Client, Error> {
    let budget = RequestBudget::new(api.max_requests_per_minute, api.rate_limit_share);
    let client = Client::new(api.client, std::sync::Arc::new(budget))?;
    client.authenticate().await?;
    Ok(client)
}

/// Prints `value` on stdout: as JSON, or as the text of `text` for people.
fn print<T: serde::Serialize>(value: &T, json: bool, text: &dyn std::fmt::Display) {
    let mut out = std::io::stdout().lock();
    if json {
        let body = serde_json::to_string_pretty(value).expect("plain data serializes");
        let _ = writeln!(out, "{body}");
    } else {
        let _ = write!(out, "{text}");
    }
}

/// The progress observer of a run: a bar on a terminal, nothing otherwise.
fn progress(bar: &Option<ProgressBar>) -> &dyn Progress {
    match bar {
        Some(bar) => bar,
        None => &NoProgress,
    }
}

/// Cancels on Ctrl-C or SIGTERM; a second signal exits at once.
pub(crate) fn cancel_on_signals() -> CancellationToken {
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

/// A progress bar on stderr, for terminals: windows done of all and the time left, then what a
/// waiting person asks next — records and their rate, requests against the budget, 429s.
pub(crate) struct ProgressBar(indicatif::ProgressBar, std::sync::Mutex<Option<Meter>>);

impl ProgressBar {
    pub(crate) fn new() -> Self {
        let bar = indicatif::ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {elapsed_precise} [{bar:25}] {pos}/{len} windows, ETA {eta}  {msg}",
            )
            .expect("the template is valid")
            .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        ProgressBar(bar, std::sync::Mutex::new(None))
    }
}

impl Progress for ProgressBar {
    fn start(&self, windows: u64, meter: Meter) {
        self.0.set_length(windows);
        *self.1.lock().unwrap_or_else(|e| e.into_inner()) = Some(meter);
    }
    fn records(&self, fetched: u64) {
        let minutes = self.0.elapsed().as_secs_f64().max(1.0) / 60.0;
        let mut message = format!(
            "{fetched} records ({:.0}/s)",
            fetched as f64 / (minutes * 60.0)
        );
        if let Some(meter) = &*self.1.lock().unwrap_or_else(|e| e.into_inner()) {
            message.push_str(&format!(
                "  {} requests ({:.0}/min of {}/min)  {} 429s",
                meter.requests(),
                meter.requests() as f64 / minutes,
                meter.budget_per_minute(),
                meter.throttled()
            ));
        }
        self.0.set_message(message);
    }
    fn window_finished(&self) {
        self.0.inc(1);
    }
}
