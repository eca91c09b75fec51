//! One validated configuration, from command-line flags, the environment and a TOML file.
//!
//! Flags and their `AUDITLAKE_*` environment variables are parsed by clap ([`crate::config::cli`],
//! which also holds each flag's default); the TOML file fills in what they leave open (`file`);
//! this module validates everything once, into one config per command. Nothing else in the crate
//! reads the environment: credentials are read here (`credentials`), only from `ZENDESK_*`
//! variables or the files they name, and never from flags; object-store settings come from the
//! file's `[storage]` table and the clouds' variables (`store`).

pub mod accounts;
pub mod cli;
mod credentials;
mod file;
mod policy;
pub use policy::{erase, expire};
mod store;

use std::path::PathBuf;
use std::time::Duration;

use url::Url;

pub use file::{command_line, log_level, CommandLineError, Env, FileConfig, LogLevel};

use crate::config::cli::{
    ApiArgs, DdlArgs, ExportArgs, FilterArgs, ListArgs, RepairArgs, StatusArgs, VerifyArgs,
    WorkArgs,
};
use crate::config::credentials::credentials;
use crate::config::store::store;
use crate::lake::lease::{min_lease_ttl, MIN_LOCAL_LEASE_TTL};
use crate::lake::manifest::TableFormat;
use crate::lake::signing::{Signer, Verifier};
use crate::lake::storage::StoreOptions;
use crate::plan::window::Grid;
use crate::run::{ApiConfig, ExportConfig, RepairConfig, VerifyConfig};
use crate::units::duration::{parse_duration, parse_duration_ms};
use crate::units::time::parse_instant;
use crate::units::{new_run_id, valid_subdomain};
use crate::zendesk::{ClientOptions, Filters, Pagination, RetryPolicy};
use std::sync::Arc;

/// A configuration the run cannot start with. The message says which setting and why; it never
/// holds a secret's value.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

/// More windows at once only add memory (each holds an open Parquet row group).
const MAX_CONCURRENCY: usize = 64;

/// Longest timeout or retry time a flag may set: far beyond any use, and it keeps deadline
/// arithmetic (`Instant + duration`, sums of delays) far from overflow, which would panic.
const MAX_SETTING_DURATION: Duration = Duration::from_secs(7 * 86_400);

/// Longest settle lag, in seconds: Zendesk's delay is minutes; a year keeps `now - lag` (and the
/// time printed from it) well inside the calendar.
const MAX_SETTLE_LAG: u64 = 365 * 86_400;

/// The longest `--recheck`: ten years of windows.
const MAX_RECHECK: u64 = 3_650 * 86_400;

/// Longest lease: a killed run blocks the next one this long, and expiry arithmetic on UTC
/// seconds stays far from overflow.
const MAX_LEASE_TTL: Duration = Duration::from_secs(24 * 3600);

/// A duration as the user would type it: `250ms` or `30s`.
fn humantime_ms(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// A timeout or retry time (`--request-timeout`, `--store-timeout`, ...): more than zero and at
/// most [`MAX_SETTING_DURATION`].
fn request_limit(flag: &str, text: &str) -> Result<Duration, ConfigError> {
    let d = parse_duration_ms(text).map_err(|e| ConfigError(format!("--{flag}: {e}")))?;
    if d.is_zero() {
        return err(format!("--{flag} must be more than zero"));
    }
    if d > MAX_SETTING_DURATION {
        return err(format!("--{flag} {text} is too long: at most 7d"));
    }
    Ok(d)
}

/// Validates `api` (flags and `AUDITLAKE_*` variables), with credentials from `env`.
pub fn api(args: &ApiArgs, env: &Env) -> Result<ApiConfig, ConfigError> {
    let subdomain = args.subdomain.clone().ok_or_else(|| {
        ConfigError("--subdomain is required (e.g. acme for acme.zendesk.com)".into())
    })?;
    if !valid_subdomain(&subdomain) {
        return err(format!(
            "--subdomain {subdomain:?} is not a Zendesk subdomain: use lowercase letters, digits and hyphens (acme, not acme.zendesk.com)"
        ));
    }
    let base_url = base_url(&subdomain, args.base_url.as_deref())?;
    let share = args.rate_limit_share;
    if !(share > 0.0 && share <= 1.0) {
        return err(format!(
            "--rate-limit-share {share} must be above 0 and at most 1"
        ));
    }
    let max_rpm = args.max_requests_per_minute;
    if max_rpm == Some(0) {
        return err("--max-requests-per-minute must be at least 1");
    }
    let request_timeout = request_limit("request-timeout", &args.request_timeout)?;
    let retry = RetryPolicy {
        max_attempts: max_attempts(args.max_attempts)?,
        max_elapsed: request_limit("max-retry-time", &args.max_retry_time)?,
        base_delay: request_limit("retry-base-delay", &args.retry_base_delay)?,
        ..RetryPolicy::default()
    };
    Ok(ApiConfig {
        client: ClientOptions {
            base_url,
            // Last: a wrong flag is reported even where no credentials are set yet.
            credentials: credentials(env)?,
            request_timeout,
            retry,
        },
        subdomain,
        max_requests_per_minute: max_rpm,
        rate_limit_share: share,
    })
}

/// `--max-attempts`: at least the first attempt. Refused rather than raised to 1, so that a
/// setting that asks for nothing is not quietly taken as asking for something.
fn max_attempts(given: u32) -> Result<u32, ConfigError> {
    match given {
        0 => err("--max-attempts must be at least 1 (the first attempt counts)"),
        n => Ok(n),
    }
}

/// `https://SUB.zendesk.com`, or a replacement: https anywhere, plain http only on loopback, and
/// never with credentials or a query in it (they would show up in messages).
fn base_url(subdomain: &str, given: Option<&str>) -> Result<Url, ConfigError> {
    let text = given
        .map(str::to_string)
        .unwrap_or_else(|| format!("https://{subdomain}.zendesk.com"));
    let url = Url::parse(&text).map_err(|e| ConfigError(format!("--base-url {text:?}: {e}")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return err(
            "--base-url must not contain credentials; use ZENDESK_OAUTH_CLIENT_ID + ZENDESK_OAUTH_CLIENT_SECRET, ZENDESK_OAUTH_TOKEN or ZENDESK_API_TOKEN",
        );
    }
    if url.query().is_some() || url.fragment().is_some() {
        return err(format!(
            "--base-url {text:?} must not have a query or fragment"
        ));
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if crate::lake::storage::is_loopback(&url) => Ok(url),
        "http" => err(format!(
            "--base-url {text:?}: plain http is accepted only for loopback addresses (127.0.0.1, ::1, localhost); use https"
        )),
        other => err(format!("--base-url {text:?}: unsupported scheme {other}")),
    }
}

/// Validates the filters.
pub fn filters(args: &FilterArgs) -> Result<Filters, ConfigError> {
    let filters = Filters {
        actions: args.filter_action.clone(),
        source_type: args.filter_source_type.clone(),
        source_id: args.filter_source_id,
        actor_id: args.filter_actor_id,
        ip_address: args.filter_ip_address.clone(),
    };
    filters.validate().map_err(|e| ConfigError(e.to_string()))?;
    Ok(filters)
}

/// Validates `export`'s settings; `now` is the current time in UTC seconds.
pub fn export(
    args: &ExportArgs,
    file: &FileConfig,
    env: &Env,
    now: i64,
) -> Result<ExportConfig, ConfigError> {
    let api = api(&args.api, env)?;
    let filters = filters(&args.filters)?;
    let dest = args
        .dest
        .clone()
        .ok_or_else(|| ConfigError("--dest is required (a local path or file:// URL)".into()))?;
    let grid = Grid::parse(&args.window).map_err(|e| ConfigError(format!("--window: {e}")))?;
    let since_text = args
        .since
        .as_ref()
        .ok_or_else(|| ConfigError("--since is required (e.g. 2024-01-01)".into()))?;
    let since = parse_instant(since_text).map_err(|e| ConfigError(format!("--since: {e}")))?;
    let until = export_end(args, now)?;
    if since >= until {
        return err(format!(
            "--since {since_text} is not before the end of the export ({}, i.e. --until or now minus --settle-lag)",
            crate::units::time::format_rfc3339(until)
        ));
    }
    let concurrency = args.concurrency;
    if !(1..=MAX_CONCURRENCY).contains(&concurrency) {
        return err(format!(
            "--concurrency must be between 1 and {MAX_CONCURRENCY}"
        ));
    }
    let store = store(&args.store, file, env)?;
    let work = work(&args.work, &dest, &store)?;
    Ok(ExportConfig {
        run_id: new_run_id(),
        exit_code_of: crate::cmd::exit::of_outcome,
        lease_ttl: work.lease_ttl,
        signer: work.signer.clone(),
        recheck: recheck(&args.recheck)?,
        retention: policy::retention(args.retention.as_deref(), grid, until, now)?,
        compact_days: true,
        store,
        api,
        filters,
        dest,
        grid,
        table_format: args.table_format.into(),
        since,
        until,
        concurrency,
        pagination: work.pagination,
        summary_json: args.summary_json.clone(),
        metrics_file: args.metrics_file.clone(),
        tmp_dir: work.tmp_dir,
    })
}

/// The end of an export: `--until`, never later than now minus `--settle-lag`.
fn export_end(args: &ExportArgs, now: i64) -> Result<i64, ConfigError> {
    let lag_text = &args.settle_lag;
    let lag = parse_duration(lag_text).map_err(|e| ConfigError(format!("--settle-lag: {e}")))?;
    if lag > MAX_SETTLE_LAG {
        return err(format!(
            "--settle-lag {lag_text} is too long: at most {}d",
            MAX_SETTLE_LAG / 86_400
        ));
    }
    // In range: `lag` is at most a year, and `now` comes from the clock.
    let settled = now - lag as i64;
    Ok(match args.until.as_ref() {
        Some(text) => {
            let until = parse_instant(text).map_err(|e| ConfigError(format!("--until: {e}")))?;
            if until > settled {
                tracing::info!(
                    requested = %text,
                    settle_lag = %lag_text,
                    "--until is later than now minus the settle lag; stopping there"
                );
            }
            until.min(settled)
        }
        None => settled,
    })
}

/// `--recheck`: the span before the run's end whose committed windows are re-counted.
fn recheck(text: &str) -> Result<Duration, ConfigError> {
    let recheck = parse_duration(text).map_err(|e| ConfigError(format!("--recheck: {e}")))?;
    // A decade of windows is more than any schedule rechecks; the cap keeps the arithmetic on
    // UTC seconds far from overflow.
    if recheck > MAX_RECHECK {
        return err(format!(
            "--recheck {text} is too long: at most {} days",
            MAX_RECHECK / 86_400
        ));
    }
    Ok(Duration::from_secs(recheck))
}

/// How a run that writes the lake stages and pages its windows and holds its lease: what export
/// and repair share besides the API and the store.
struct Work {
    pagination: Pagination,
    tmp_dir: PathBuf,
    lease_ttl: Duration,
    signer: Option<Arc<Signer>>,
}

/// Validates the work settings of a run writing into `dest` through `store`.
fn work(args: &WorkArgs, dest: &str, store: &StoreOptions) -> Result<Work, ConfigError> {
    let tmp_dir = args.tmp_dir.clone().unwrap_or_else(std::env::temp_dir);
    if !tmp_dir.is_dir() {
        return err(format!(
            "--tmp-dir {} is not a directory",
            tmp_dir.display()
        ));
    }
    Ok(Work {
        pagination: args.pagination.into(),
        tmp_dir,
        lease_ttl: lease_ttl(&args.lease_ttl, dest, store)?,
        signer: args.signing_key_file.as_deref().map(signer).transpose()?,
    })
}

/// The signing key of `--signing-key-file`; errors name the file, never its contents.
fn signer(path: &std::path::Path) -> Result<Arc<Signer>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError(format!(
            "--signing-key-file: cannot read {}: {e}",
            path.display()
        ))
    })?;
    Signer::from_pem(&text)
        .map(Arc::new)
        .map_err(|e| ConfigError(format!("--signing-key-file {}: {e}", path.display())))
}

/// The public key of `verify --public-key`.
fn verifier(path: &std::path::Path) -> Result<Verifier, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("--public-key: cannot read {}: {e}", path.display())))?;
    Verifier::from_pem(&text)
        .map_err(|e| ConfigError(format!("--public-key {}: {e}", path.display())))
}

/// `--lease-ttl`, checked against what one renewal can take on this store.
fn lease_ttl(text: &str, dest: &str, store: &StoreOptions) -> Result<Duration, ConfigError> {
    let lease_ttl = parse_duration(text).map_err(|e| ConfigError(format!("--lease-ttl: {e}")))?;
    if lease_ttl > MAX_LEASE_TTL.as_secs() {
        return err(format!(
            "--lease-ttl {text} is too long: at most {}h (a killed run blocks the next one this long)",
            MAX_LEASE_TTL.as_secs() / 3600
        ));
    }
    let lease_ttl = Duration::from_secs(lease_ttl);
    // An object store as the lake decides it; a destination it cannot read is the lake's to
    // refuse when it opens it, with its own message and exit code.
    let object_store = matches!(crate::lake::storage::local_path(dest), Ok(None));
    let minimum = if object_store {
        min_lease_ttl(store.timeout)
    } else {
        MIN_LOCAL_LEASE_TTL
    };
    if lease_ttl < minimum {
        return err(format!(
            "--lease-ttl {text} is too short: with --store-timeout {} one lease renewal can take up to {}s of store requests and retries, so the lease must last at least {}s (or lower --store-timeout)",
            humantime_ms(store.timeout),
            (minimum / 3).as_secs(),
            minimum.as_secs()
        ));
    }
    Ok(lease_ttl)
}

/// Everything `status` needs.
#[derive(Clone, Debug)]
pub struct StatusConfig {
    pub dest: String,
    pub subdomain: String,
    pub store: StoreOptions,
    /// `--max-age` in seconds.
    pub max_age: Option<i64>,
}

/// The lake and subdomain a command reads, from `--dest` and `--subdomain` (or the file).
fn lake_and_subdomain(
    dest: Option<&String>,
    subdomain: Option<&String>,
) -> Result<(String, String), ConfigError> {
    let dest = dest
        .cloned()
        .ok_or_else(|| ConfigError("--dest is required".into()))?;
    let subdomain = subdomain
        .cloned()
        .ok_or_else(|| ConfigError("--subdomain is required".into()))?;
    if !valid_subdomain(&subdomain) {
        return err(format!(
            "--subdomain {subdomain:?} is not a Zendesk subdomain"
        ));
    }
    Ok((dest, subdomain))
}

/// An optional `--since`/`--until`-style instant.
fn optional_instant(flag: &str, text: Option<&String>) -> Result<Option<i64>, ConfigError> {
    text.map(|t| parse_instant(t).map_err(|e| ConfigError(format!("--{flag}: {e}"))))
        .transpose()
}

/// Validates `status`'s settings.
pub fn status(
    args: &StatusArgs,
    file: &FileConfig,
    env: &Env,
) -> Result<StatusConfig, ConfigError> {
    let (dest, subdomain) = lake_and_subdomain(args.dest.as_ref(), args.subdomain.as_ref())?;
    let max_age = args
        .max_age
        .as_deref()
        .map(|text| match parse_duration(text) {
            Ok(0) => err("--max-age must be longer than 0"),
            // Compared with an age, never added to a time: any length is safe.
            Ok(seconds) => Ok(i64::try_from(seconds).unwrap_or(i64::MAX)),
            Err(e) => err(format!("--max-age: {e}")),
        })
        .transpose()?;
    Ok(StatusConfig {
        max_age,
        dest,
        subdomain,
        store: store(&args.store, file, env)?,
    })
}

/// Everything `ddl` needs.
#[derive(Clone, Debug)]
pub struct DdlConfig {
    pub dest: String,
    /// Where the lake is, as `dest` says.
    pub location: crate::ddl::Location,
    pub engine: crate::ddl::Engine,
    pub table: crate::ddl::TableName,
    /// The table root as the engine names it.
    pub root: String,
    /// Only this subdomain, if given.
    pub subdomain: Option<String>,
    /// Print the Glue `create-table` input instead of SQL.
    pub glue: bool,
    pub store: StoreOptions,
}

/// Validates `ddl`'s settings: the table name, and whether the engine can read a lake stored
/// where `--dest` says (checked before the lake is opened, so a wrong pair fails at once).
pub fn ddl(args: &DdlArgs, file: &FileConfig, env: &Env) -> Result<DdlConfig, ConfigError> {
    use crate::ddl::{Engine, Location, TableName};
    let dest = args
        .dest
        .clone()
        .ok_or_else(|| ConfigError("--dest is required".into()))?;
    let engine: Engine = args.engine.into();
    let table_text = args.table.as_str();
    let table = TableName::parse(table_text).map_err(|e| ConfigError(format!("--table: {e}")))?;
    if engine == Engine::Bigquery && table.database.is_none() {
        return err(format!(
            "--table {table_text:?}: BigQuery tables live in a dataset: give --table DATASET.{table_text}"
        ));
    }
    if args.glue && engine != Engine::Athena {
        return err("--glue describes the Athena table: use it with --engine athena (the default)");
    }
    if let Some(subdomain) = &args.subdomain {
        if !valid_subdomain(subdomain) {
            return err(format!(
                "--subdomain {subdomain:?} is not a Zendesk subdomain"
            ));
        }
    }
    let location = Location::parse(&dest).map_err(|e| ConfigError(format!("--dest {e}")))?;
    let root = location
        .table_root(engine)
        .map_err(|e| ConfigError(format!("--engine {}: {e}", engine_name(engine))))?;
    Ok(DdlConfig {
        dest,
        location,
        engine,
        table,
        root,
        subdomain: args.subdomain.clone(),
        glue: args.glue,
        store: store(&args.store, file, env)?,
    })
}

fn engine_name(engine: crate::ddl::Engine) -> String {
    cli::EngineArg::from(engine).flag_value()
}

/// Validates `list`'s settings (the client is built from `args.api` by [`api`]); `now` is the
/// current time in UTC seconds, the end of an open range.
pub fn list(args: &ListArgs, now: i64) -> Result<crate::ops::ListRequest, ConfigError> {
    let range = match (&args.since, &args.until) {
        (None, None) => None,
        (since, until) => {
            let since = optional_instant("since", since.as_ref())?.unwrap_or(0);
            let until = optional_instant("until", until.as_ref())?.unwrap_or(now + 1);
            if since >= until {
                return err("--since must be before --until");
            }
            Some((since, until))
        }
    };
    if args.limit == Some(0) {
        return err("--limit must be at least 1 (leave it out to list every record)");
    }
    Ok(crate::ops::ListRequest {
        filters: filters(&args.filters)?,
        range,
        limit: args.limit,
        pagination: args.pagination.into(),
    })
}

/// Validates `verify`'s settings.
pub fn verify(
    args: &VerifyArgs,
    file: &FileConfig,
    env: &Env,
) -> Result<VerifyConfig, ConfigError> {
    let (dest, subdomain) = lake_and_subdomain(args.dest.as_ref(), args.api.subdomain.as_ref())?;
    let since = optional_instant("since", args.since.as_ref())?;
    let until = optional_instant("until", args.until.as_ref())?;
    if let (Some(s), Some(u)) = (since, until) {
        if s >= u {
            return err("--since must be before --until");
        }
    }
    Ok(VerifyConfig {
        store: store(&args.store, file, env)?,
        api: if args.against_api {
            Some(api(&args.api, env)?)
        } else {
            None
        },
        dest,
        subdomain,
        options: crate::verify::VerifyOptions {
            since,
            until,
            deep: args.deep,
            integrity: args.integrity || args.deep || args.public_key.is_some(),
            public_key: args.public_key.as_deref().map(verifier).transpose()?,
        },
    })
}

/// Validates `repair`'s settings; `now` is the current time in UTC seconds.
///
/// The re-export is built from the same pieces as an export's (the API, the store, the work
/// settings), over the windows verify checks. Only committed windows are repaired, so no settle
/// lag applies and nothing is rechecked; the grid and filters are placeholders that the runner
/// replaces with those the lake pinned.
pub fn repair(
    args: &RepairArgs,
    file: &FileConfig,
    env: &Env,
    now: i64,
) -> Result<RepairConfig, ConfigError> {
    let check = verify(&args.check, file, env)?;
    let api = match &check.api {
        Some(api) => api.clone(),
        None => api(&args.check.api, env)?,
    };
    let work = work(&args.work, &check.dest, &check.store)?;
    let since = check.options.since.unwrap_or(0);
    let until = check.options.until.map_or(now, |until| until.min(now));
    if since >= until {
        return err("--since must be before --until and before now");
    }
    let export = ExportConfig {
        api,
        filters: Filters::default(),
        dest: check.dest.clone(),
        grid: Grid::DAILY,
        table_format: TableFormat::Parquet,
        since,
        until,
        concurrency: crate::run::DEFAULT_CONCURRENCY,
        pagination: work.pagination,
        summary_json: None,
        metrics_file: None,
        tmp_dir: work.tmp_dir,
        lease_ttl: work.lease_ttl,
        signer: work.signer.clone(),
        recheck: Duration::ZERO,
        retention: None,
        compact_days: true,
        store: check.store.clone(),
        run_id: new_run_id(),
        exit_code_of: crate::cmd::exit::of_outcome,
    };
    Ok(RepairConfig { check, export })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdomains_are_dns_labels() {
        assert!(valid_subdomain("acme"));
        assert!(valid_subdomain("acme-eu-2"));
        for bad in ["", "Acme", "a/b", "a.b", "-a", "a-", "a b", "a=b"] {
            assert!(!valid_subdomain(bad), "{bad}");
        }
    }
    use crate::config::cli::StoreArgs;

    const NOW: i64 = 1_735_689_600; // 2025-01-01T00:00:00Z

    fn env() -> Env {
        Env::from_pairs([("ZENDESK_OAUTH_TOKEN", "tok-SECRET")])
    }

    /// The usual flags of the tests' exports: what `export` requires.
    const USUAL: [&str; 6] = [
        "--subdomain",
        "acme",
        "--dest",
        "/tmp",
        "--since",
        "2024-12-01",
    ];

    /// `auditlake export` with the usual flags, `extra` and the config file `toml`, as
    /// [`command_line`] reads them.
    fn with_file(
        toml: &str,
        extra: &[&str],
        env: &Env,
    ) -> Result<(ExportArgs, FileConfig), String> {
        with_file_and(toml, &USUAL, extra, env)
    }

    /// As [`with_file`], with `base` in place of the usual flags.
    fn with_file_and(
        toml: &str,
        base: &[&str],
        extra: &[&str],
        env: &Env,
    ) -> Result<(ExportArgs, FileConfig), String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auditlake.toml");
        std::fs::write(&path, toml).unwrap();
        let mut argv: Vec<std::ffi::OsString> =
            ["auditlake", "--config", path.to_str().unwrap(), "export"]
                .iter()
                .map(Into::into)
                .collect();
        argv.extend(base.iter().chain(extra).map(Into::into));
        match command_line(argv, env) {
            Ok((cli, file)) => match cli.command {
                crate::config::cli::Command::Export(a) => Ok((a, file)),
                _ => unreachable!(),
            },
            Err(CommandLineError::Config(e)) => Err(e.0),
            Err(CommandLineError::Clap(e)) => Err(e.to_string()),
        }
    }

    /// `export`'s configuration with the config file `toml`.
    fn export_with_file(toml: &str, extra: &[&str]) -> ExportConfig {
        let (a, f) = with_file(toml, extra, &env()).unwrap();
        export(&a, &f, &env(), NOW).unwrap()
    }

    /// `export`'s configuration from the usual flags and `extra`, without a config file.
    fn plain(extra: &[&str]) -> Result<ExportConfig, ConfigError> {
        export(&args(extra), &FileConfig::default(), &env(), NOW)
    }

    fn args(extra: &[&str]) -> ExportArgs {
        let mut argv = vec!["auditlake", "export"];
        argv.extend_from_slice(&USUAL);
        argv.extend_from_slice(extra);
        match crate::config::cli::Cli::parse_args(argv).unwrap().command {
            crate::config::cli::Command::Export(a) => a,
            _ => unreachable!(),
        }
    }

    #[test]
    fn defaults_fill_what_is_not_given() {
        let c = plain(&[]).unwrap();
        assert_eq!(c.grid, Grid::DAILY);
        assert_eq!(
            c.until,
            NOW - 300,
            "until defaults to now minus the 5m settle lag"
        );
        assert_eq!(c.concurrency, crate::run::DEFAULT_CONCURRENCY);
        assert_eq!(c.api.rate_limit_share, 0.5);
        assert_eq!(c.api.client.base_url.as_str(), "https://acme.zendesk.com/");
        assert_eq!(c.pagination, Pagination::Cursor);
        assert_eq!(c.lease_ttl, Duration::from_secs(600));
        assert_eq!(c.recheck, Duration::from_secs(86_400));
        assert_eq!(c.api.client.request_timeout, Duration::from_secs(60));
        assert_eq!(c.store.timeout, Duration::from_secs(30));
    }

    #[test]
    fn the_policies_defaults_and_code_built_arguments_are_the_flags_defaults() {
        // One home per default: the policy structs' `Default` and the `Default` of the argument
        // groups (what the demo builds) agree with an empty command line.
        let c = plain(&[]).unwrap();
        let policy = RetryPolicy::default();
        let retry = &c.api.client.retry;
        assert_eq!(
            (
                retry.max_attempts,
                retry.max_elapsed,
                retry.base_delay,
                retry.max_delay
            ),
            (
                policy.max_attempts,
                policy.max_elapsed,
                policy.base_delay,
                policy.max_delay
            )
        );
        assert_eq!(
            (policy.max_attempts, policy.max_elapsed, policy.base_delay),
            (8, Duration::from_secs(600), Duration::from_millis(500))
        );
        assert_eq!(c.store.timeout, StoreOptions::default().timeout);
        let mut built = ExportArgs::default();
        built.api.subdomain = Some("acme".into());
        built.dest = Some("/tmp".into());
        built.since = Some("2024-12-01".into());
        let b = export(&built, &FileConfig::default(), &env(), NOW).unwrap();
        assert_eq!(
            (b.grid, b.until, b.concurrency, b.lease_ttl, b.recheck),
            (c.grid, c.until, c.concurrency, c.lease_ttl, c.recheck)
        );
        assert_eq!(b.api.client.request_timeout, c.api.client.request_timeout);
        assert_eq!(b.api.rate_limit_share, c.api.rate_limit_share);
    }

    #[test]
    fn a_negative_duration_is_refused_naming_its_flag_for_every_duration_flag() {
        // Regression: clap took `-5` for a flag and answered "unexpected argument '-5'".
        let grammar = crate::config::cli::Cli::grammar();
        let export_cmd = grammar.find_subcommand("export").unwrap();
        let flags: Vec<String> = export_cmd
            .get_arguments()
            .filter(|a| {
                a.get_value_names()
                    .is_some_and(|n| n.iter().any(|n| n.as_str() == "DURATION"))
            })
            .map(|a| format!("--{}", a.get_long().unwrap()))
            .collect();
        assert!(flags.len() >= 7, "{flags:?}");
        for flag in &flags {
            for value in ["-5", "-5m"] {
                let e = plain(&[flag, value]).unwrap_err();
                assert!(
                    e.0.contains(&format!("{flag}: a duration cannot be negative")),
                    "{flag} {value}: {e}"
                );
            }
        }
    }

    #[test]
    fn zero_attempts_and_an_empty_list_are_refused() {
        // Regression: --max-attempts 0 was raised to 1 silently, and list --limit 0 listed one.
        let e = plain(&["--max-attempts", "0"]).unwrap_err();
        assert!(e.0.contains("--max-attempts must be at least 1"), "{e}");
        assert_eq!(
            plain(&["--max-attempts", "1"])
                .unwrap()
                .api
                .client
                .retry
                .max_attempts,
            1
        );
        let list = |extra: &[&str]| {
            let argv = [&["auditlake", "list", "--subdomain", "acme"][..], extra].concat();
            match crate::config::cli::Cli::parse_args(argv).unwrap().command {
                crate::config::cli::Command::List(a) => list(&a, NOW),
                _ => unreachable!(),
            }
        };
        let e = list(&["--limit", "0"]).unwrap_err();
        assert!(e.0.contains("--limit must be at least 1"), "{e}");
        assert_eq!(list(&["--limit", "1"]).unwrap().limit, Some(1));
        assert_eq!(list(&[]).unwrap().limit, None);
    }

    #[test]
    fn repair_reexports_with_the_work_settings_and_no_settle_lag() {
        let argv = [
            "auditlake",
            "repair",
            "--subdomain",
            "acme",
            "--dest",
            "s3://bucket/lake",
            "--since",
            "2024-12-01",
            "--lease-ttl",
            "15m",
        ];
        let repair_args =
            |argv: &[&str]| match crate::config::cli::Cli::parse_args(argv).unwrap().command {
                crate::config::cli::Command::Repair(a) => a,
                _ => unreachable!(),
            };
        let c = repair(&repair_args(&argv), &FileConfig::default(), &env(), NOW).unwrap();
        assert_eq!(c.export.dest, "s3://bucket/lake");
        assert_eq!(c.export.since, t("2024-12-01"));
        assert_eq!(
            c.export.until, NOW,
            "no settle lag: only committed windows are repaired"
        );
        assert_eq!(c.export.recheck, Duration::ZERO);
        assert_eq!(c.export.lease_ttl, Duration::from_secs(900));
        assert_eq!(c.export.api.subdomain, "acme");
        assert!(
            c.check.api.is_none(),
            "verify asks Zendesk only with --against-api"
        );
        // The lease is checked against the store as for an export.
        let mut short = argv.to_vec();
        let last = short.len() - 1;
        short[last] = "5m";
        let e = repair(&repair_args(&short), &FileConfig::default(), &env(), NOW).unwrap_err();
        assert!(e.0.contains("--lease-ttl 5m is too short"), "{e}");
        let e = repair(
            &repair_args(&argv),
            &FileConfig::default(),
            &Env::default(),
            NOW,
        )
        .unwrap_err();
        assert!(e.0.contains("no credentials"), "{e}");
    }

    fn t(text: &str) -> i64 {
        parse_instant(text).unwrap()
    }

    #[test]
    fn until_never_passes_the_settle_lag() {
        let c = plain(&["--until", "2030-01-01"]).unwrap();
        assert_eq!(c.until, NOW - 300);
        let c = plain(&["--until", "2024-12-02"]).unwrap();
        assert_eq!(c.until, NOW - 30 * 86_400);
        let e = plain(&["--until", "2024-11-01"]).unwrap_err();
        assert!(e.0.contains("is not before"), "{e}");
    }

    #[test]
    fn the_file_fills_in_and_flags_win() {
        let c = export_with_file(
            "window = \"6h\"\nconcurrency = 2\nfilter-action = [\"login\"]\nsubdomain = \"other\"",
            &[],
        );
        assert_eq!(c.grid.to_string(), "6h");
        assert_eq!(c.concurrency, 2);
        assert_eq!(c.filters.actions, ["login"]);
        assert_eq!(c.api.subdomain, "acme", "the flag wins over the file");
        assert!(with_file("subdomian = \"typo\"", &[], &env()).is_err());
    }

    #[test]
    fn the_example_config_file_is_accepted_as_it_is() {
        let example = include_str!("../../examples/auditlake.toml");
        let c = export_with_file(example, &[]);
        assert_eq!(c.grid, Grid::DAILY);
        assert_eq!(c.concurrency, 4);
        assert_eq!(c.recheck, Duration::from_secs(86_400));
        assert_eq!(c.dest, "/tmp", "the flag wins over the file's dest");
    }

    #[test]
    fn keys_of_other_commands_are_ignored_and_bad_values_name_their_flag() {
        // `deep` is verify's: an export ignores it. (The environment's precedence over the file
        // is clap's, tested on the binary in tests/cli.rs.)
        let c = export_with_file("concurrency = 2\ndeep = true", &[]);
        assert_eq!(c.concurrency, 2);
        let e = with_file("concurrency = \"many\"", &[], &env()).unwrap_err();
        assert!(e.contains("--concurrency") && e.contains("many"), "{e}");
        let e = with_file("config = \"other.toml\"", &[], &env()).unwrap_err();
        assert!(e.contains("cannot name another"), "{e}");
    }

    #[test]
    fn bad_values_are_refused_with_the_flag_named() {
        let cases: &[(&[&str], &str)] = &[
            (&["--window", "5h"], "--window"),
            (&["--settle-lag", "soon"], "--settle-lag"),
            (&["--concurrency", "0"], "--concurrency"),
            (&["--base-url", "http://example.com"], "loopback"),
            (&["--base-url", "https://u:p@example.com"], "credentials"),
            (&["--rate-limit-share", "0"], "--rate-limit-share"),
            (&["--filter-source-id", "3"], "--filter-source-type"),
            (&["--retry-base-delay", "0ms"], "--retry-base-delay"),
        ];
        for (extra, needle) in cases {
            let e = export(&args(extra), &FileConfig::default(), &env(), NOW).unwrap_err();
            assert!(e.0.contains(needle), "{extra:?}: {e}");
        }
        assert!(plain(&["--base-url", "http://127.0.0.1:9"]).is_ok());
        assert!(export(
            &args(&["--base-url", "http://[::1]:9"]),
            &FileConfig::default(),
            &env(),
            NOW
        )
        .is_ok());
    }

    #[test]
    fn a_toml_error_names_the_line_but_never_quotes_a_storage_value() {
        // Regression: toml's message quoted the offending line, secret included.
        for text in [
            "[storage]\naws_secret_access_key = 12345678",
            "[storage]\naws_secret_access_key = abc/Qz7",
            "storage = { aws_secret_access_key = 12345678 }",
            "storage.aws_secret_access_key = 12345678",
        ] {
            let e = FileConfig::parse(text).unwrap_err();
            assert!(!e.contains("12345678") && !e.contains("Qz7"), "{text}: {e}");
            assert!(e.contains("line"), "{e}");
        }
        let e = with_file("window = \"1d\"\nsubdomian = \"typo\"", &[], &env()).unwrap_err();
        assert!(e.contains("line 2") && e.contains("subdomian"), "{e}");
    }

    #[test]
    fn a_boolean_from_the_file_is_turned_off_by_its_flag() {
        let on = "allow-http = true";
        let allow = |extra: &[&str], toml: &str| export_with_file(toml, extra).store.allow_http;
        assert!(allow(&[], on), "the file's value holds without a flag");
        assert!(!allow(&["--allow-http=false"], on));
        assert!(!allow(&["--allow-http=no"], on));
        assert!(allow(&["--allow-http"], ""));
        assert!(allow(&["--allow-http=true"], "allow-http = false"));

        let quiet = |argv: &[&str]| crate::config::cli::Cli::parse_args(argv).unwrap().quiet;
        assert!(quiet(&["auditlake", "-q", "status"]));
        assert!(quiet(&["auditlake", "status", "--quiet"]));
        assert!(!quiet(&["auditlake", "status", "--quiet=false"]));
        assert!(!quiet(&["auditlake", "status"]));
        assert!(
            crate::config::cli::Cli::parse_args(["auditlake", "status", "--quiet=maybe"]).is_err()
        );
        // A switch without `=` does not swallow the next argument.
        assert!(crate::config::cli::Cli::parse_args(["auditlake", "show", "-q", "123"]).is_ok());
    }

    #[test]
    fn every_environment_variable_is_named_after_its_flag() {
        // Regression: --log-level read AUDITLAKE_LOG, and --quiet had no variable.
        fn walk(cmd: &clap::Command, seen: &mut Vec<(String, String)>) {
            for arg in cmd.get_arguments() {
                if let (Some(long), Some(env)) = (arg.get_long(), arg.get_env()) {
                    seen.push((long.to_string(), env.to_string_lossy().into_owned()));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, seen);
            }
        }
        let mut seen = Vec::new();
        walk(&crate::config::cli::Cli::grammar(), &mut seen);
        for (long, env) in &seen {
            assert_eq!(
                *env,
                format!("AUDITLAKE_{}", long.to_ascii_uppercase().replace('-', "_")),
                "--{long}"
            );
        }
        for flag in ["log-level", "quiet", "allow-http"] {
            assert!(
                seen.iter().any(|(l, _)| l == flag),
                "--{flag} has no variable"
            );
        }
    }

    #[test]
    fn auditlake_log_still_works_as_a_deprecated_alias() {
        let old = Env::from_pairs([("AUDITLAKE_LOG", "debug")]);
        let file = "log-level = \"trace\"";
        let flag = |env: &Env| with_file(file, &[], env).unwrap().0;
        let _ = flag(&old);
        let from_file = |env: &Env| {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("f.toml");
            std::fs::write(&path, file).unwrap();
            let argv = ["auditlake", "--config", path.to_str().unwrap(), "status"];
            let (cli, _) = command_line(argv.iter().map(Into::into).collect(), env)
                .map_err(|_| ())
                .unwrap();
            cli.log_level
        };
        assert_eq!(
            log_level(from_file(&old).as_deref(), &old),
            LogLevel {
                filter: Some("debug".into()),
                from_deprecated_env: true
            },
            "the old variable still outranks the file"
        );
        let level = log_level(Some("warn"), &old);
        assert_eq!(
            level.filter.as_deref(),
            Some("warn"),
            "--log-level and AUDITLAKE_LOG_LEVEL win"
        );
        assert!(!level.from_deprecated_env);
        let none = Env::default();
        assert_eq!(
            log_level(from_file(&none).as_deref(), &none)
                .filter
                .as_deref(),
            Some("trace")
        );
    }

    #[test]
    fn the_lease_must_outlast_one_renewal_on_an_object_store() {
        let s3 = |extra: &[&str]| {
            let mut a = args(extra);
            a.dest = Some("s3://bucket/lake".into());
            export(&a, &FileConfig::default(), &env(), NOW)
        };
        // Regression: 5m passed, although one renewal can take over 3 minutes with a 30s timeout.
        let e = s3(&["--lease-ttl", "5m"]).unwrap_err();
        assert!(
            e.0.contains("--lease-ttl") && e.0.contains("555s") && e.0.contains("30s"),
            "{e}"
        );
        assert!(s3(&[]).is_ok(), "the defaults fit together");
        assert_eq!(
            min_lease_ttl(Duration::from_secs(30)),
            Duration::from_secs(555)
        );
        assert!(s3(&["--store-timeout", "2s", "--lease-ttl", "117s"]).is_ok());
        let e = s3(&["--store-timeout", "2s", "--lease-ttl", "116s"]).unwrap_err();
        assert!(e.0.contains("117s"), "{e}");
        let local = plain(&["--lease-ttl", "3s"]);
        assert!(local.is_ok(), "a local lake has no store timeouts");
        let e = plain(&["--lease-ttl", "2d"]).unwrap_err();
        assert!(e.0.contains("too long"), "{e}");
    }

    #[test]
    fn huge_durations_are_refused_instead_of_panicking_later() {
        // Regression: a settle lag beyond chrono's calendar panicked when the error printed it.
        let cases: &[(&[&str], &str)] = &[
            (&["--settle-lag", "100000000000d"], "--settle-lag"),
            (&["--max-retry-time", "99999999d"], "--max-retry-time"),
            (
                &["--request-timeout", "18446744073709551615ms"],
                "--request-timeout",
            ),
            (&["--retry-base-delay", "8d"], "--retry-base-delay"),
            (&["--store-timeout", "8d"], "--store-timeout"),
        ];
        for (extra, needle) in cases {
            let e = export(&args(extra), &FileConfig::default(), &env(), NOW).unwrap_err();
            assert!(e.0.contains(needle), "{extra:?}: {e}");
        }
    }

    /// Sets the `field`-th string setting of `export` (flag or file) to `text`; `None` when the
    /// command line itself refuses the file's value.
    fn with_text(field: usize, text: &str, in_file: bool) -> Option<(ExportArgs, FileConfig)> {
        const KEYS: [&str; 15] = [
            "subdomain",
            "base-url",
            "request-timeout",
            "max-retry-time",
            "retry-base-delay",
            "filter-action",
            "filter-source-type",
            "filter-ip-address",
            "dest",
            "since",
            "until",
            "window",
            "settle-lag",
            "lease-ttl",
            "store-timeout",
        ];
        if in_file {
            let key = KEYS[field.min(14)];
            let value = toml::Value::String(text.to_string());
            let toml = if key == "filter-action" {
                format!("{key} = [{value}]")
            } else {
                format!("{key} = {value}")
            };
            // The flags the usual arguments set would win over the file.
            let base: Vec<&str> = USUAL
                .chunks(2)
                .filter(|pair| pair[0] != format!("--{key}"))
                .flatten()
                .copied()
                .collect();
            return with_file_and(&toml, &base, &[], &env()).ok();
        }
        let mut a = args(&[]);
        let t = Some(text.to_string());
        let text = text.to_string();
        match field {
            0 => a.api.subdomain = t,
            1 => a.api.base_url = t,
            2 => a.api.request_timeout = text,
            3 => a.api.max_retry_time = text,
            4 => a.api.retry_base_delay = text,
            5 => a.filters.filter_action = vec![text],
            6 => a.filters.filter_source_type = t,
            7 => a.filters.filter_ip_address = t,
            8 => a.dest = t,
            9 => a.since = t,
            10 => a.until = t,
            11 => a.window = text,
            12 => a.settle_lag = text,
            13 => a.work.lease_ttl = text,
            _ => a.store.store_timeout = text,
        }
        Some((a, FileConfig::default()))
    }

    use proptest::prelude::*;

    proptest! {
        /// No flag or file value makes validation panic: each is accepted or refused.
        #[test]
        fn no_flag_or_file_value_panics(field in 0usize..15, text in any::<String>(), in_file: bool) {
            if let Some((a, f)) = with_text(field, &text, in_file) {
                let _ = export(&a, &f, &env(), NOW);
            }
        }

        /// The same over texts that look almost right.
        #[test]
        fn no_near_miss_value_panics(
            field in 0usize..15,
            text in "[ +-]?[0-9]{0,22}[a-zé:./T-]{0,4}[0-9]{0,12}\\PC{0,2}",
            in_file: bool,
        ) {
            if let Some((a, f)) = with_text(field, &text, in_file) {
                let _ = export(&a, &f, &env(), NOW);
            }
        }

        /// No number in range makes validation panic either.
        #[test]
        fn no_number_panics(
            share in any::<f64>(),
            rpm in any::<u32>(),
            attempts in any::<u32>(),
            concurrency in any::<usize>(),
            source_id in any::<i64>(),
        ) {
            let mut a = args(&["--filter-source-type", "user"]);
            a.api.rate_limit_share = share;
            a.api.max_requests_per_minute = Some(rpm);
            a.api.max_attempts = attempts;
            a.concurrency = concurrency;
            a.filters.filter_source_id = Some(source_id);
            let _ = export(&a, &FileConfig::default(), &env(), NOW);
        }

        /// No TOML text, and no `[storage]` key or value, makes the file's handling panic; a
        /// refused value never shows in the message.
        #[test]
        fn no_file_text_or_storage_setting_panics(
            text in any::<String>(),
            key in "[a-z_]{0,40}|\\PC{0,10}",
            value in "[A-Za-z0-9]{12}",
        ) {
            let _ = FileConfig::parse(&text);
            let mut f = FileConfig::default();
            f.storage.insert(key, value.clone());
            if let Err(e) = store(&StoreArgs::default(), &f, &Env::default()) {
                prop_assert!(!e.0.contains(&value), "{}", e);
            }
        }

        /// No environment value makes credentials, storage or logging settings panic.
        #[test]
        fn no_environment_value_panics(name in 0usize..8, value in any::<String>()) {
            let var = ["ZENDESK_OAUTH_TOKEN", "ZENDESK_API_TOKEN", "ZENDESK_EMAIL", "ZENDESK_OAUTH_CLIENT_ID", "ZENDESK_OAUTH_SCOPE", "AWS_ENDPOINT", "AZURE_STORAGE_ENDPOINT", "AUDITLAKE_LOG"][name];
            let env = Env::from_pairs([(var, value.as_str())]);
            let _ = credentials(&env);
            let _ = log_level(None, &env);
            if let Ok(s) = store(&StoreArgs::default(), &FileConfig::default(), &env) {
                let _ = crate::lake::storage::Lake::open("s3://bucket/lake", &s);
            }
        }

        /// Any subdomain is accepted or refused; valid ones give their Zendesk URL.
        #[test]
        fn subdomains_round_trip_into_the_base_url(sub in "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?") {
            let mut a = args(&[]);
            a.api.subdomain = Some(sub.clone());
            let c = export(&a, &FileConfig::default(), &env(), NOW).unwrap();
            prop_assert_eq!(c.api.client.base_url.as_str(), format!("https://{sub}.zendesk.com/"));
        }

        /// An https base URL is kept as given; plain http only on loopback.
        #[test]
        fn base_urls_round_trip(host in "[a-z][a-z0-9]{0,10}\\.[a-z]{2,5}", port in 1u16..) {
            let text = format!("https://{host}:{port}/");
            let url = base_url("acme", Some(&text)).unwrap();
            let expected = if port == 443 { format!("https://{host}/") } else { text.clone() };
            prop_assert_eq!(url.as_str(), expected);
            let remote = format!("http://{host}:{port}/");
            let local = format!("http://127.0.0.1:{port}/");
            prop_assert!(base_url("acme", Some(&remote)).is_err());
            prop_assert!(base_url("acme", Some(&local)).is_ok());
        }

        /// Valid filter values survive validation unchanged.
        #[test]
        fn filters_round_trip(action in "[a-z_]{1,12}", ip in any::<std::net::IpAddr>(), id in any::<i64>()) {
            let toml = format!(
                "filter-action = [\"{action}\"]\nfilter-ip-address = \"{ip}\"\nfilter-source-type = \"user\"\nfilter-source-id = {id}"
            );
            let (a, _) = with_file(&toml, &[], &env()).unwrap();
            let got = filters(&a.filters).unwrap();
            prop_assert_eq!(got.actions, vec![action]);
            prop_assert_eq!(got.ip_address, Some(ip.to_string()));
            prop_assert_eq!(got.source_id, Some(id));
        }

        /// A switch's value is parsed or refused, never a panic; the spellings round-trip.
        #[test]
        fn switches_parse_or_refuse(text in any::<String>(), b: bool) {
            let _ = crate::config::cli::parse_switch(&text);
            prop_assert_eq!(crate::config::cli::parse_switch(&b.to_string()), Ok(b));
        }
    }
}
