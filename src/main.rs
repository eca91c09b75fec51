//! The `auditlake` binary: parses arguments, sets up logging, runs one command (one function per
//! command, in `auditlake::cmd`) and ends with the exit code `cmd/exit.rs` gives its outcome.
//! The commands are the only part of the crate that writes to stdout.

use std::process::ExitCode;

use auditlake::config::cli::{Command, LogFormat};
use auditlake::config::{self, CommandLineError, Env};
use auditlake::{cmd, Error};

fn main() -> ExitCode {
    let env = Env::capture();
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let (cli, file) = match config::command_line(argv.clone(), &env) {
        Ok(parsed) => parsed,
        Err(CommandLineError::Clap(e)) => e.exit(),
        Err(CommandLineError::Config(e)) => return fail(&e.into()),
    };
    // The accounts of the file's [[account]] tables, when it lists some: each runs as a command
    // line of its own, all checked before any runs.
    let accounts = match cmd::accounts::expand(&argv, &cli, &file, &env) {
        Ok(accounts) => accounts,
        Err(e) => return fail(&e.into()),
    };
    let json = cli.log_format == LogFormat::Json;
    let cx = cmd::Context::new(file, env, cli.quiet, json);
    // Info logs give way to the progress bar on a terminal.
    let default = if cli.quiet || cx.show_progress {
        "warn"
    } else {
        "info"
    };
    let subdomain = match accounts {
        Some(_) => None,
        None => cli.command.subdomain(),
    };
    cmd::logging::init(
        cli.log_level.as_deref(),
        default,
        json,
        &cx.run_id,
        subdomain,
        &cx.env,
    );
    if cli.check_config {
        // Validation only: no runtime, nothing contacted, nothing written.
        let checked = match &accounts {
            Some(runs) => cmd::accounts::check(runs, &cx),
            None => cmd::check_config(&cli.command, &cx),
        };
        return match checked {
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
    let ran = match accounts {
        Some(runs) => runtime.block_on(cmd::accounts::run(runs, &cx)),
        None => runtime.block_on(cmd::run(cli.command, &cx)),
    };
    match ran {
        Ok(code) => ExitCode::from(code),
        Err(e) => fail(&e),
    }
}

fn fail(e: &Error) -> ExitCode {
    let code = e.exit_code();
    cmd::logging::error_line(&e.to_string(), code, Default::default());
    ExitCode::from(code)
}
