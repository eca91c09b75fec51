//! The commands that read or mend the lake: `status`, `verify`, `repair`, `ddl`.

use std::io::Write;

use crate::cmd::exit;
use crate::config;
use crate::config::cli::{DdlArgs, EraseArgs, ExpireArgs, RepairArgs, StatusArgs, VerifyArgs};
use crate::lake::storage::Lake;
use crate::run;
use crate::status::StatusError;
use crate::units::duration::format_duration;
use crate::{verify as check, Error};

use super::{cancel_on_signals, client_for, print, Context};

/// `auditlake status`.
pub async fn status(args: &StatusArgs, cx: &Context) -> Result<u8, Error> {
    let (status, code, stale) = status_of(args, cx).await?;
    print(&status, args.json, &status);
    if let Some(why) = stale {
        eprintln!("auditlake: stale: {why}");
    }
    Ok(code)
}

/// The status `args` asks for, its exit code, and why it is stale when `--max-age` says so.
pub(super) async fn status_of(
    args: &StatusArgs,
    cx: &Context,
) -> Result<(crate::status::Status, u8, Option<String>), Error> {
    let config = config::status(args, &cx.file, &cx.env)?;
    let no_lake = || StatusError::NoLake {
        dest: config.dest.clone(),
        subdomain: config.subdomain.clone(),
    };
    let lake = Lake::open_existing(&config.dest, &config.store)?.ok_or_else(no_lake)?;
    let now = chrono::Utc::now().timestamp();
    let status = crate::status::status(&lake, &config.subdomain, now).await?;
    let stale = match config.max_age {
        Some(max_age) if status.is_stale(max_age) => {
            let why = match status.age_seconds {
                Some(age) => format!(
                    "the lake is complete only to {} ago",
                    format_duration(age.max(0) as u64)
                ),
                None => "nothing is committed yet".to_string(),
            };
            Some(format!(
                "{why}, more than --max-age {}",
                format_duration(max_age as u64)
            ))
        }
        _ => None,
    };
    let code = if stale.is_some() {
        exit::STALE
    } else {
        exit::OK
    };
    Ok((status, code, stale))
}

/// `auditlake verify`.
pub async fn verify(args: &VerifyArgs, cx: &Context) -> Result<u8, Error> {
    let config = config::verify(args, &cx.file, &cx.env)?;
    let no_lake = || check::VerifyError::NoDataset {
        dest: config.dest.clone(),
        subdomain: config.subdomain.clone(),
    };
    let lake = Lake::open_existing(&config.dest, &config.store)?.ok_or_else(no_lake)?;
    let client = match config.api.clone() {
        Some(api) => Some(client_for(api).await?),
        None => None,
    };
    let report = check::verify(&lake, &config.subdomain, &config.options, client.as_ref()).await?;
    print(&report, args.json, &report);
    Ok(report.exit_code())
}

/// `auditlake repair`.
pub async fn repair(args: &RepairArgs, cx: &Context) -> Result<u8, Error> {
    let now = chrono::Utc::now().timestamp();
    let mut config = config::repair(args, &cx.file, &cx.env, now)?;
    // One run id per process: the repair's lease carries the id its logs carry.
    config.export.run_id = cx.run_id.clone();
    let outcome = run::repair(config, cancel_on_signals()).await?;
    print(&outcome, args.check.json, &outcome.after);
    if !cx.quiet && !args.check.json {
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
    Ok(outcome.exit_code())
}

/// `auditlake erase`.
pub async fn erase(args: &EraseArgs, cx: &Context) -> Result<u8, Error> {
    let mut config = config::erase(args, &cx.file, &cx.env)?;
    config.change.run_id = cx.run_id.clone();
    let outcome = run::erase(config, cancel_on_signals()).await?;
    report_policy(&outcome, args.change.json);
    Ok(exit::OK)
}

/// `auditlake expire`.
pub async fn expire(args: &ExpireArgs, cx: &Context) -> Result<u8, Error> {
    let now = chrono::Utc::now().timestamp();
    let mut config = config::expire(args, &cx.file, &cx.env, now)?;
    config.change.run_id = cx.run_id.clone();
    let outcome = run::expire(config, cancel_on_signals()).await?;
    report_policy(&outcome, args.change.json);
    Ok(exit::OK)
}

/// Prints what an erasure or expiry did (ids, windows, counts: never a name).
fn report_policy(outcome: &run::PolicyOutcome, json: bool) {
    let mut text = String::new();
    let verb = match (outcome.action, outcome.dry_run) {
        ("erase", true) => "would erase",
        ("erase", false) => "erased",
        (_, true) => "would expire",
        _ => "expired",
    };
    if outcome.windows.is_empty() {
        let what = if outcome.action == "erase" {
            "erase"
        } else {
            "expire"
        };
        text.push_str(&format!("{}: nothing to {what}\n", outcome.subdomain));
    } else {
        let unit = if outcome.action == "erase" {
            "rows of the users' records"
        } else {
            "rows"
        };
        text.push_str(&format!(
            "{}: {verb} {} window(s), {} {unit}",
            outcome.subdomain,
            outcome.windows.len(),
            outcome.rows
        ));
        if let Some(entry) = outcome.ledger_entry {
            text.push_str(&format!(
                "; ledger entry {entry}, {} older cop(ies) purged",
                outcome.files_purged
            ));
        }
        text.push('\n');
        for window in &outcome.windows {
            text.push_str(&format!("  {}  {} rows\n", window.window, window.rows));
        }
    }
    if let Some(floor) = &outcome.floor {
        text.push_str(&format!("retention floor: {floor}\n"));
    }
    print(outcome, json, &text);
}

/// `auditlake ddl`: the SQL (or Glue input) on stdout, nothing else.
pub async fn ddl(args: &DdlArgs, cx: &Context) -> Result<u8, Error> {
    use crate::ddl;
    let config = config::ddl(args, &cx.file, &cx.env)?;
    let lake = ddl::open(&config.dest, &config.store)?;
    let facts = ddl::read_lake(&lake, config.subdomain.as_deref()).await?;
    let schema = crate::table::schema::Schema::get();
    let text = if config.glue {
        ddl::glue(&config.table, &config.root, &facts, schema)?
    } else {
        ddl::sql(config.engine, &config.table, &config.root, &facts, schema)?
    };
    let mut out = std::io::stdout().lock();
    // A closed pipe (`| head`) is the reader's choice, not a failure of the command.
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    Ok(crate::cmd::exit::OK)
}
