//! `--check-config`: every command's settings validated as its run validates them — flags, config
//! file, environment, credentials, the destination's URL and store settings — and one line on
//! stdout saying what would run. Nothing is contacted and nothing is written: no request to
//! Zendesk (no token is minted), none to the store, no directory created; a lake that must exist
//! (status, verify, ddl) must exist now. The one place that
//! decides what a check covers, for every command.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use crate::cmd::exit;
use crate::config;
use crate::config::cli::{Command, ExportArgs, VerifyArgs};
use crate::lake::storage::{local_path, Lake, StorageError, StoreOptions};
use crate::run::ApiConfig;
use crate::status::StatusError;
use crate::units::time::format_rfc3339;
use crate::verify::VerifyError;
use crate::zendesk::{Client, Credentials, RequestBudget};
use crate::Error;

use super::Context;

/// Checks `command`'s settings; `Ok` is exit code 0 with the line printed, `Err` the error the
/// command's run would stop with.
pub fn check_config(command: &Command, cx: &Context) -> Result<u8, Error> {
    let now = chrono::Utc::now().timestamp();
    let line = match lake_command(command, cx, now)? {
        Some(line) => line,
        None => other_command(command, cx, now)?,
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "auditlake: check-config: {line}; nothing contacted, nothing written"
    );
    Ok(exit::OK)
}

/// What a command that works on a lake would do; `None` for the other commands.
fn lake_command(command: &Command, cx: &Context, now: i64) -> Result<Option<String>, Error> {
    Ok(Some(match command {
        Command::Export(args) => export_command(args, cx, now)?,
        Command::Status(args) => {
            let c = config::status(args, &cx.file, &cx.env)?;
            let lake =
                Lake::open_existing(&c.dest, &c.store)?.ok_or_else(|| StatusError::NoLake {
                    dest: c.dest.clone(),
                    subdomain: c.subdomain.clone(),
                })?;
            format!(
                "status would read subdomain {} in {}",
                c.subdomain,
                lake.display()
            )
        }
        Command::Verify(args) => verify_command(args, cx)?,
        Command::Repair(args) => {
            let c = config::repair(args, &cx.file, &cx.env, now)?;
            let lake = store(&c.check.dest, &c.check.store)?;
            let zendesk = api(&c.export.api)?;
            format!(
                "repair would mend subdomain {} in {lake} from {zendesk}",
                c.check.subdomain
            )
        }
        Command::Erase(args) => {
            let c = config::erase(args, &cx.file, &cx.env)?;
            let lake = store(&c.change.dest, &c.change.store)?;
            format!(
                "erase would erase {} user(s)' data from subdomain {} in {lake}",
                c.user_ids.len(),
                c.change.subdomain
            )
        }
        Command::Expire(args) => {
            let c = config::expire(args, &cx.file, &cx.env, now)?;
            let lake = store(&c.change.dest, &c.change.store)?;
            format!(
                "expire would remove subdomain {}'s windows ending by {} in {lake}",
                c.change.subdomain,
                crate::units::time::format_rfc3339(c.before)
            )
        }
        Command::Ddl(args) => {
            let c = config::ddl(args, &cx.file, &cx.env)?;
            let lake = crate::ddl::open(&c.dest, &c.store)?;
            format!("ddl would describe the lake in {}", lake.display())
        }
        _ => return Ok(None),
    }))
}

/// What `export` would do.
fn export_command(args: &ExportArgs, cx: &Context, now: i64) -> Result<String, Error> {
    let c = config::export(args, &cx.file, &cx.env, now)?;
    let zendesk = api(&c.api)?;
    let lake = store(&c.dest, &c.store)?;
    if let Some(path) = &c.summary_json {
        summary_file(path)?;
    }
    Ok(format!(
        "export would run: {zendesk} into {lake}, {} to {} on a {} grid, {} streams at once",
        format_rfc3339(c.since),
        format_rfc3339(c.until),
        c.grid,
        c.concurrency
    ))
}

/// What `verify` would do.
fn verify_command(args: &VerifyArgs, cx: &Context) -> Result<String, Error> {
    let c = config::verify(args, &cx.file, &cx.env)?;
    let lake = Lake::open_existing(&c.dest, &c.store)?
        .ok_or_else(|| VerifyError::NoDataset {
            dest: c.dest.clone(),
            subdomain: c.subdomain.clone(),
        })?
        .display()
        .to_string();
    let against = match &c.api {
        Some(a) => format!(", against {}", api(a)?),
        None => String::new(),
    };
    Ok(format!(
        "verify would check subdomain {} in {lake}{against}",
        c.subdomain
    ))
}

/// What a command that does not work on a lake would do.
fn other_command(command: &Command, cx: &Context, now: i64) -> Result<String, Error> {
    Ok(match command {
        Command::Show(args) => {
            let zendesk = api(&config::api(&args.api, &cx.env)?)?;
            format!("show would fetch audit log {} from {zendesk}", args.id)
        }
        Command::List(args) => {
            let zendesk = api(&config::api(&args.api, &cx.env)?)?;
            config::list(args, now)?;
            format!("list would list audit logs from {zendesk}")
        }
        Command::RequestExport(args) => {
            let zendesk = api(&config::api(&args.api, &cx.env)?)?;
            config::filters(&args.filters)?;
            format!("request-export would ask {zendesk} for a CSV export")
        }
        #[cfg(feature = "simulator")]
        Command::Demo(args) => {
            let lake = store(&args.dest, &StoreOptions::default())?;
            format!(
                "demo would simulate {} records over {} days and export them into {lake}",
                args.records, args.days
            )
        }
        #[cfg(feature = "simulator")]
        Command::Simulate(args) => {
            super::demo::simulator_config(args).map_err(config::ConfigError)?;
            super::demo::simulator_hidden_from(args).map_err(config::ConfigError)?;
            format!(
                "simulate would serve {} records on {}",
                args.records, args.bind
            )
        }
        // No wildcard: a new command must be described in one of the two functions.
        Command::Export(_)
        | Command::Status(_)
        | Command::Verify(_)
        | Command::Repair(_)
        | Command::Erase(_)
        | Command::Expire(_)
        | Command::Ddl(_) => unreachable!("lake commands are described by lake_command"),
    })
}

/// Builds the run's client (no request, no token minted) and says whom it would ask, as whom.
fn api(api: &ApiConfig) -> Result<String, Error> {
    let budget = RequestBudget::new(api.max_requests_per_minute, api.rate_limit_share);
    Client::new(api.client.clone(), Arc::new(budget))?;
    // Names only what is not secret: the kind of credential, a client id, an email.
    let who = match &api.client.credentials {
        Credentials::OAuth(_) => "an OAuth access token".to_string(),
        Credentials::ClientCredentials(client) => {
            format!("OAuth client {:?} (scope {})", client.id, client.scope)
        }
        Credentials::ApiToken { email, .. } => format!("the API token of {email}"),
    };
    Ok(format!(
        "subdomain {} at {} with {who}",
        api.subdomain, api.client.base_url
    ))
}

/// Opens the destination as the run would, without writing: an object store's client is built
/// (which sends nothing), a local lake that is there is opened, and one that is not yet is not
/// created: its nearest existing parent must be a directory.
fn store(dest: &str, options: &StoreOptions) -> Result<String, Error> {
    match local_path(dest)? {
        // Not there yet: `Lake::open` would create it, which a check must not.
        Some(path) if !path.exists() => {
            let absolute = std::path::absolute(&path).unwrap_or(path);
            let parent = absolute.ancestors().skip(1).find(|p| p.exists());
            match parent {
                Some(p) if p.is_dir() => Ok(format!("{} (to be created)", absolute.display())),
                _ => Err(StorageError::Open {
                    dest: dest.to_string(),
                    reason: format!(
                        "cannot create directory: {} is not a directory",
                        parent.unwrap_or(&absolute).display()
                    ),
                }
                .into()),
            }
        }
        // An object store (its builder sends nothing), or a local lake that exists (nothing to
        // create).
        _ => Ok(Lake::open(dest, options)?.display().to_string()),
    }
}

/// The summary file is written after the run: its folder must be there now, or a whole export
/// would end with exit 2.
pub(super) fn summary_file(path: &Path) -> Result<(), Error> {
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if folder.is_dir() {
        return Ok(());
    }
    Err(Error::SummaryFile {
        path: path.to_path_buf(),
        source: std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{} is not a directory", folder.display()),
        ),
    })
}
