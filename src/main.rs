//! The `auditlake` binary: parses arguments, sets up logging, runs one command (one function per
//! command, in [`cmd`]) and maps the outcome to an exit code — the only place that does. It is
//! the only part of the crate that writes to stdout.

mod cmd;

use std::io::IsTerminal;
use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

use auditlake::cli::{Cli, Command, LogFormat};
use auditlake::config::{self, CommandLineError, Env};
use auditlake::Error;

fn main() -> ExitCode {
    let env = Env::capture();
    let (cli, file) = match config::command_line(std::env::args_os().collect(), &env) {
        Ok(parsed) => parsed,
        Err(CommandLineError::Clap(e)) => e.exit(),
        Err(CommandLineError::Config(e)) => return fail(&e.into()),
    };
    let cx = cmd::Context::new(file, env, cli.quiet);
    init_logging(&cli, &cx);
    if cli.check_config {
        // Validation only: no runtime, nothing contacted, nothing written.
        return match cmd::check_config(&cli.command, &cx) {
            Ok(code) => ExitCode::from(code),
            Err(e) => fail(&e),
        };
    }
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
    match runtime.block_on(cmd::run(cli.command, &cx)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => fail(&e),
    }
}

fn fail(e: &Error) -> ExitCode {
    eprintln!("auditlake: error: {e}");
    ExitCode::from(e.exit_code())
}

fn init_logging(cli: &Cli, cx: &cmd::Context) {
    let default = if cli.quiet || cx.show_progress {
        "warn"
    } else {
        "info"
    };
    let level = config::log_level(cli.log_level.as_deref(), &cx.env);
    let filter = level.filter.unwrap_or_else(|| default.to_string());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match cli.log_format.unwrap_or(LogFormat::Text) {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
    if level.from_deprecated_env {
        tracing::warn!("AUDITLAKE_LOG is deprecated: use AUDITLAKE_LOG_LEVEL");
    }
}
