//! One validated configuration, from command-line flags, the environment and a TOML file.
//!
//! Flags and their `AUDITLAKE_*` environment variables are parsed by clap ([`crate::config::cli`]); this
//! module fills what they leave open from the TOML file, then from defaults, and validates
//! everything once. Nothing else in the crate reads the environment: credentials are read here,
//! only from `ZENDESK_*` variables or the files they name, and never from flags.

pub mod cli;
pub mod duration;
pub mod net;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

use crate::config::cli::{
    ApiArgs, DdlArgs, ExportArgs, FilterArgs, ListArgs, RepairArgs, StatusArgs, StoreArgs,
    VerifyArgs,
};
use crate::config::duration::{parse_duration, parse_duration_ms};
use crate::lake::layout::valid_subdomain;
use crate::lake::storage::StoreOptions;
use crate::plan::window::{parse_instant, Grid};
use crate::zendesk::auth::{OAuthClient, Secret, DEFAULT_SCOPE};
use crate::zendesk::{ClientOptions, Credentials, Filters, Pagination, RetryPolicy};

/// A configuration the run cannot start with. The message says which setting and why; it never
/// holds a secret's value.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

/// The process environment, captured once (tests pass their own).
#[derive(Clone, Debug, Default)]
pub struct Env(HashMap<String, String>);

impl Env {
    /// The real environment.
    pub fn capture() -> Env {
        Env(std::env::vars().collect())
    }

    /// An environment from pairs.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Env {
        Env(pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect())
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// The TOML file (`--config`): its `[storage]` table, and every other key, named like a long flag
/// of the command (`subdomain = "acme"`, `filter-action = ["login"]`). The flags are declared
/// once, in [`crate::config::cli`]: [`command_line`] turns the file's keys into arguments.
#[derive(Clone, Debug, Default)]
pub struct FileConfig {
    /// Object-store settings by `object_store` key (`aws_region`, `aws_endpoint`, ...); never
    /// secrets, which belong in the environment.
    pub storage: std::collections::BTreeMap<String, String>,
    /// Every other key, as written.
    pub flags: toml::Table,
    /// The line of each key, for messages.
    lines: std::collections::BTreeMap<String, usize>,
}

/// The line (1-based) where `key` is set in `text`.
fn line_of(text: &str, key: &str) -> usize {
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            l.strip_prefix(key)
                .or_else(|| l.strip_prefix(&format!("\"{key}\"")))
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map_or(1, |i| i + 1)
}

impl FileConfig {
    /// Reads the file named by `--config`, or an empty configuration without one.
    pub fn load(path: Option<&Path>) -> Result<FileConfig, ConfigError> {
        let Some(path) = path else {
            return Ok(FileConfig::default());
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("--config {}: {e}", path.display())))?;
        FileConfig::parse(&text)
            .map_err(|e| ConfigError(format!("--config {}: {e}", path.display())))
    }

    /// Parses the file's text. The error names the line, never quotes it: a line in `[storage]`
    /// may hold a secret (refused, but only after parsing), so there the reason is left out too,
    /// as toml's reasons can quote the value.
    pub fn parse(text: &str) -> Result<FileConfig, String> {
        let mut flags: toml::Table = toml::from_str(text).map_err(|e: toml::de::Error| {
            let Some(span) = e.span() else {
                return e.message().to_string();
            };
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let table = before
                .lines()
                .rev()
                .map(str::trim)
                .find(|l| l.starts_with('['))
                .unwrap_or("");
            let line_text = text.lines().nth(line - 1).unwrap_or("");
            // Also `storage = { ... }` and `storage.key = ...` on the line itself.
            if table.trim_matches(|c| c == '[' || c == ']' || c == ' ') == "storage"
                || line_text.contains("storage")
            {
                format!("line {line}: invalid [storage] entry (value not shown; storage values are strings)")
            } else {
                format!("line {line}: {}", e.message())
            }
        })?;
        let storage = match flags.remove("storage") {
            None => Default::default(),
            Some(table) => table.try_into().map_err(|_| {
                let line = text
                    .lines()
                    .position(|l| l.contains("storage"))
                    .map_or(1, |i| i + 1);
                format!("line {line}: invalid [storage] entry (value not shown; storage values are strings)")
            })?,
        };
        let lines = flags
            .keys()
            .map(|key| (key.clone(), line_of(text, key)))
            .collect();
        Ok(FileConfig {
            storage,
            flags,
            lines,
        })
    }
}

/// Why the command line could not be read.
#[derive(Debug)]
pub enum CommandLineError {
    /// Clap's own answer: a usage error, or `--help`/`--version` (it prints and exits).
    Clap(clap::Error),
    /// The config file could not be read, or holds a key or value no flag takes.
    Config(ConfigError),
}

/// Parses the command line with the config file's settings (ripgrep's way): each key of the file
/// becomes `--key=value` after the command line's own arguments, unless that flag was given on
/// the command line or in its environment variable. So every flag is declared once (in
/// [`crate::config::cli`]), the file takes any long flag of the command, and the precedence is flag,
/// environment, file, default. Keys of other commands are ignored; unknown keys are refused.
pub fn command_line(
    argv: Vec<std::ffi::OsString>,
    env: &Env,
) -> Result<(crate::config::cli::Cli, FileConfig), CommandLineError> {
    use clap::FromArgMatches;
    let matches = crate::config::cli::Cli::grammar()
        .try_get_matches_from(&argv)
        .map_err(CommandLineError::Clap)?;
    let cli =
        crate::config::cli::Cli::from_arg_matches(&matches).map_err(CommandLineError::Clap)?;
    let file = FileConfig::load(cli.config.as_deref()).map_err(CommandLineError::Config)?;
    if file.flags.is_empty() {
        return Ok((cli, file));
    }
    let path = cli.config.clone().unwrap_or_default();
    let bad = |why: String| {
        CommandLineError::Config(ConfigError(format!("--config {}: {why}", path.display())))
    };
    let root = crate::config::cli::Cli::grammar();
    let (name, sub_matches) = matches.subcommand().expect("a subcommand is required");
    let command = root
        .find_subcommand(name)
        .expect("clap matched this subcommand");
    let mut extra: Vec<std::ffi::OsString> = Vec::new();
    for (key, value) in &file.flags {
        let known = |cmd: &clap::Command| {
            cmd.get_arguments()
                .find(|a| a.get_long() == Some(key.as_str()))
                .map(|a| a.get_id().to_string())
        };
        let id = match known(command).or_else(|| known(&root)) {
            Some(_) if key == "check-config" => {
                return Err(bad(
                    "check-config belongs on the command line: in a file it would turn every run into a check".into(),
                ))
            }
            Some(id) if key != "config" => id,
            Some(_) => return Err(bad("a config file cannot name another one".into())),
            None if root.get_subcommands().any(|c| known(c).is_some()) => continue,
            None => {
                return Err(bad(format!(
                    "line {}: unknown key {key:?}: keys are the long flags of the commands (subdomain, dest, filter-action, ...)",
                    file.lines.get(key).copied().unwrap_or(1)
                )))
            }
        };
        let given = matches!(
            sub_matches.value_source(&id),
            Some(clap::parser::ValueSource::CommandLine | clap::parser::ValueSource::EnvVariable)
        );
        // The former name of AUDITLAKE_LOG_LEVEL still outranks the file.
        let deprecated_env = key == "log-level" && env.get(DEPRECATED_LOG_ENV).is_some();
        if given || deprecated_env {
            continue;
        }
        let values = match value {
            toml::Value::Array(items) => items.iter().collect(),
            one => vec![one],
        };
        for value in values {
            let text = match value {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(n) => n.to_string(),
                toml::Value::Float(x) => x.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                _ => {
                    return Err(bad(format!(
                        "{key}: give a string, number, boolean or a list of them"
                    )))
                }
            };
            extra.push(format!("--{key}={text}").into());
        }
    }
    let argv: Vec<std::ffi::OsString> = argv.into_iter().chain(extra).collect();
    let cli = crate::config::cli::Cli::parse_args(argv)
        .map_err(|e| bad(e.render().to_string().trim().to_string()))?;
    Ok((cli, file))
}

/// The log filter the user asked for, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLevel {
    /// A filter in tracing's syntax; `None` leaves the default to the caller.
    pub filter: Option<String>,
    /// The filter came from `AUDITLAKE_LOG`, the variable's former name: worth a warning.
    pub from_deprecated_env: bool,
}

/// Former name of `AUDITLAKE_LOG_LEVEL`, from before every flag's variable was named after it.
const DEPRECATED_LOG_ENV: &str = "AUDITLAKE_LOG";

/// The log filter: `--log-level` or `AUDITLAKE_LOG_LEVEL` (both in `flag`, parsed by clap, with the
/// file's `log-level` below them), else the deprecated `AUDITLAKE_LOG`.
pub fn log_level(flag: Option<&str>, env: &Env) -> LogLevel {
    if let Some(filter) = flag {
        return LogLevel {
            filter: Some(filter.to_string()),
            from_deprecated_env: false,
        };
    }
    if let Some(filter) = env.get(DEPRECATED_LOG_ENV) {
        return LogLevel {
            filter: Some(filter.to_string()),
            from_deprecated_env: true,
        };
    }
    LogLevel {
        filter: None,
        from_deprecated_env: false,
    }
}

/// Reaching the API.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    pub subdomain: String,
    pub client: ClientOptions,
    pub max_requests_per_minute: Option<u32>,
    pub rate_limit_share: f64,
}

/// Everything `export` needs.
#[derive(Clone, Debug)]
pub struct ExportConfig {
    pub api: ApiConfig,
    pub filters: Filters,
    pub dest: String,
    pub grid: Grid,
    /// UTC seconds, as given (the plan rounds it down to the grid).
    pub since: i64,
    /// UTC seconds: the requested end, never later than now minus the settle lag.
    pub until: i64,
    pub concurrency: usize,
    pub pagination: Pagination,
    pub summary_json: Option<PathBuf>,
    /// Where to write the run's Prometheus metrics.
    pub metrics_file: Option<PathBuf>,
    pub tmp_dir: PathBuf,
    /// How long a lease lasts without renewal (a crashed run blocks the next one this long).
    pub lease_ttl: Duration,
    /// Committed windows ending within this span before `until` are re-counted against the API
    /// (zero: never).
    pub recheck: Duration,
    pub store: StoreOptions,
    /// The run's id: in its lease, its summary and every JSON log line (see [`crate::lake::lease`]).
    pub run_id: String,
}

/// Streams fetched at once by default: enough to overlap requests, decoding and uploads; the
/// request budget, not this, bounds the load on Zendesk.
const DEFAULT_CONCURRENCY: usize = 4;

/// Recheck the last day by default: Zendesk's late records show up within minutes to hours, and a
/// daily grid then costs one or two requests per run.
const DEFAULT_RECHECK: &str = "1d";

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

/// Store requests in one lease renewal, one after the other: the create-if-absent PUT of the next
/// generation, then a LIST of the chain, then either a DELETE of the previous generation (the
/// prune) or, when the PUT found the generation there, a GET of it.
const REQUESTS_PER_RENEWAL: u32 = 3;

/// The shortest `--lease-ttl` for an object store whose requests are limited to `store_timeout`
/// each: one renewal must fit in a renewal period (a third of the time to live).
///
/// Why that is enough: the generation written by a renewal that starts at `s` expires at
/// `s + ttl` (a second earlier at worst, since expiries are whole seconds). That renewal ends by
/// `s + W`, where `W = REQUESTS_PER_RENEWAL * worst_case_request`; the next starts a third of
/// the time to live later and its PUT lands by `s + W + ttl/3 + R` (`R` one worst-case request).
/// With `W <= ttl/3` that is at most `s + ttl - (W - R)`, i.e. `2R` before the expiry: room for
/// the whole-second rounding and for a prune that has more than one generation to delete. And
/// a renewal that fails is retried only while a period is left (see `lease::Lease::keep`).
///
/// For the default 30 s timeout: R = 61.6 s, W = 184.8 s, so at least 554.4 s, rounded up to
/// 555 s (9m15s), under the 10m default. For 2 s: R = 13 s, W = 39 s, at least 117 s.
pub fn min_lease_ttl(store_timeout: Duration) -> Duration {
    let renewal = crate::lake::storage::worst_case_request(store_timeout)
        .saturating_mul(REQUESTS_PER_RENEWAL);
    let period = renewal.saturating_mul(3);
    // Whole seconds, rounded up: the lease's expiry is kept in seconds.
    let rounded = period.as_secs() + u64::from(period.subsec_nanos() > 0);
    Duration::from_secs(rounded)
}

/// Whether the lake is an object store reached over the network (as [`crate::lake::storage::Lake::open`]
/// decides): a URL other than `file://`. Local paths have no request timeouts or retries.
fn is_object_store(dest: &str) -> bool {
    dest.contains("://") && !dest.starts_with("file://")
}

/// A duration as the user would type it: `250ms` or `30s`.
fn humantime_ms(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Validates `api` (flags and `AUDITLAKE_*` variables) over `file`, with credentials from `env`.
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
    let share = args.rate_limit_share.unwrap_or(0.5);
    if !(share > 0.0 && share <= 1.0) {
        return err(format!(
            "--rate-limit-share {share} must be above 0 and at most 1"
        ));
    }
    let max_rpm = args.max_requests_per_minute;
    if max_rpm == Some(0) {
        return err("--max-requests-per-minute must be at least 1");
    }
    let duration =
        |flag: &str, given: Option<&String>, default: &str| -> Result<Duration, ConfigError> {
            let text = given.map(String::as_str).unwrap_or(default);
            let d = parse_duration_ms(text).map_err(|e| ConfigError(format!("--{flag}: {e}")))?;
            if d.is_zero() {
                return err(format!("--{flag} must be more than zero"));
            }
            if d > MAX_SETTING_DURATION {
                return err(format!("--{flag} {text} is too long: at most 7d"));
            }
            Ok(d)
        };
    let request_timeout = duration("request-timeout", args.request_timeout.as_ref(), "60s")?;
    let retry = RetryPolicy {
        max_attempts: args.max_attempts.unwrap_or(8).max(1),
        max_elapsed: duration("max-retry-time", args.max_retry_time.as_ref(), "10m")?,
        base_delay: duration("retry-base-delay", args.retry_base_delay.as_ref(), "500ms")?,
        ..RetryPolicy::default()
    };
    Ok(ApiConfig {
        client: ClientOptions {
            base_url,
            credentials: credentials(env)?,
            request_timeout,
            retry,
        },
        subdomain,
        max_requests_per_minute: max_rpm,
        rate_limit_share: share,
    })
}

/// Validates the filters (flags over file).
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
    let grid = match args.window.as_ref() {
        Some(text) => Grid::parse(text).map_err(|e| ConfigError(format!("--window: {e}")))?,
        None => Grid::DAILY,
    };
    let since_text = args
        .since
        .as_ref()
        .ok_or_else(|| ConfigError("--since is required (e.g. 2024-01-01)".into()))?;
    let since = parse_instant(since_text).map_err(|e| ConfigError(format!("--since: {e}")))?;
    let until = export_end(args, now)?;
    if since >= until {
        return err(format!(
            "--since {since_text} is not before the end of the export ({}, i.e. --until or now minus --settle-lag)",
            crate::plan::window::format_rfc3339(until)
        ));
    }
    let concurrency = args.concurrency.unwrap_or(DEFAULT_CONCURRENCY);
    if !(1..=MAX_CONCURRENCY).contains(&concurrency) {
        return err(format!(
            "--concurrency must be between 1 and {MAX_CONCURRENCY}"
        ));
    }
    let tmp_dir = args.work.tmp_dir.clone().unwrap_or_else(std::env::temp_dir);
    if !tmp_dir.is_dir() {
        return err(format!(
            "--tmp-dir {} is not a directory",
            tmp_dir.display()
        ));
    }
    let store = store(&args.store, file, env)?;
    let lease_ttl = lease_ttl(args, &dest, &store)?;
    let recheck_text = args.recheck.as_deref().unwrap_or(DEFAULT_RECHECK);
    let recheck =
        parse_duration(recheck_text).map_err(|e| ConfigError(format!("--recheck: {e}")))?;
    // A decade of windows is more than any schedule rechecks; the cap keeps the arithmetic on
    // UTC seconds far from overflow.
    if recheck > MAX_RECHECK {
        return err(format!(
            "--recheck {recheck_text} is too long: at most {} days",
            MAX_RECHECK / 86_400
        ));
    }
    Ok(ExportConfig {
        run_id: crate::lake::lease::new_run_id(),
        lease_ttl,
        recheck: Duration::from_secs(recheck),
        store,
        api,
        filters,
        dest,
        grid,
        since,
        until,
        concurrency,
        pagination: args.work.pagination.unwrap_or_default(),
        summary_json: args.summary_json.clone(),
        metrics_file: args.metrics_file.clone(),
        tmp_dir,
    })
}

/// The end of an export: `--until`, never later than now minus `--settle-lag`.
fn export_end(args: &ExportArgs, now: i64) -> Result<i64, ConfigError> {
    let lag_text = args.settle_lag.as_deref().unwrap_or("5m");
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

/// `--lease-ttl`, checked against what one renewal can take on this store.
fn lease_ttl(args: &ExportArgs, dest: &str, store: &StoreOptions) -> Result<Duration, ConfigError> {
    let lease_text = args.work.lease_ttl.as_deref().unwrap_or("10m");
    let lease_ttl =
        parse_duration(lease_text).map_err(|e| ConfigError(format!("--lease-ttl: {e}")))?;
    if lease_ttl > MAX_LEASE_TTL.as_secs() {
        return err(format!(
            "--lease-ttl {lease_text} is too long: at most {}h (a killed run blocks the next one this long)",
            MAX_LEASE_TTL.as_secs() / 3600
        ));
    }
    let lease_ttl = Duration::from_secs(lease_ttl);
    let minimum = if is_object_store(dest) {
        min_lease_ttl(store.timeout)
    } else {
        // Local disk: no request timeouts or retries, only the renewal period's arithmetic.
        Duration::from_secs(3)
    };
    if lease_ttl < minimum {
        return err(format!(
            "--lease-ttl {lease_text} is too short: with --store-timeout {} one lease renewal can take up to {}s of store requests and retries, so the lease must last at least {}s (or lower --store-timeout)",
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
    let engine = args.engine.unwrap_or(Engine::Athena);
    let table_text = args.table.as_deref().unwrap_or("audit_logs");
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
    use clap::ValueEnum;
    engine
        .to_possible_value()
        .map(|v| v.get_name().to_string())
        .unwrap_or_default()
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
    Ok(crate::ops::ListRequest {
        filters: filters(&args.filters)?,
        range,
        limit: args.limit,
        pagination: args.pagination.unwrap_or_default(),
    })
}

/// Everything `verify` needs.
#[derive(Clone, Debug)]
pub struct VerifyConfig {
    pub dest: String,
    pub subdomain: String,
    pub store: StoreOptions,
    pub options: crate::verify::VerifyOptions,
    /// Reaching Zendesk, with `--against-api`.
    pub api: Option<ApiConfig>,
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
        },
    })
}

/// Everything `repair` needs: what to check, and how to re-export (the export's settings; the
/// grid and filters come from the lake's `dataset.json`).
#[derive(Clone, Debug)]
pub struct RepairConfig {
    pub check: VerifyConfig,
    pub export: ExportConfig,
}

/// Validates `repair`'s settings; `now` is the current time in UTC seconds.
pub fn repair(
    args: &RepairArgs,
    file: &FileConfig,
    env: &Env,
    now: i64,
) -> Result<RepairConfig, ConfigError> {
    let check = verify(&args.check, file, env)?;
    let export_args = ExportArgs {
        api: args.check.api.clone(),
        store: args.check.store.clone(),
        dest: Some(check.dest.clone()),
        since: Some(
            args.check
                .since
                .clone()
                .unwrap_or_else(|| "1970-01-01".into()),
        ),
        until: args.check.until.clone(),
        work: args.work.clone(),
        recheck: Some("0".into()),
        // Only committed windows are repaired: no end is too recent.
        settle_lag: Some("0s".into()),
        // Grid and filters: the runner uses those the lake pinned.
        ..ExportArgs::default()
    };
    let export = export(&export_args, file, env, now)?;
    Ok(RepairConfig { check, export })
}

/// Environment prefixes of the clouds' standard variables, as `object_store` reads them.
const STORE_ENV_PREFIXES: [&str; 3] = ["AWS_", "GOOGLE_", "AZURE_"];

/// `[storage]` keys the TOML file may set: object_store's settings that hold no secret (regions,
/// endpoints, bucket and account names, switches, identifiers and paths to credential files).
/// Anything else is refused, so a secret key that object_store adds later, or one spelled by an
/// alias, is refused too (a deny-list of words once let `aws_sse_customer_key_base64`,
/// `azure_storage_master_key`, `azure_storage_sas_key` and `azure_storage_encryption_key`
/// through).
///
/// Deliberately left out although not secret themselves: the container-credential URIs and the
/// token file that goes with them (`aws_container_credentials_*`,
/// `aws_container_authorization_token_file`): the container runtime sets them in the
/// environment, the relative URI is a bearer capability in ECS, and the full URI decides where
/// a credential token is sent. Also left out: client settings other than `*_allow_http`
/// (`proxy_url` may carry a password; `allow_invalid_certificates` turns TLS off) and the
/// Fabric runtime's settings.
const FILE_STORAGE_KEYS: &[&str] = &[
    // Amazon S3 and compatible stores.
    "aws_region",
    "aws_default_region",
    "aws_bucket",
    "aws_bucket_name",
    "aws_endpoint",
    "aws_endpoint_url",
    "aws_endpoint_url_s3",
    "aws_endpoint_url_sts",
    "aws_virtual_hosted_style_request",
    "aws_allow_http",
    "aws_conditional_put",
    "aws_copy_if_not_exists",
    "aws_skip_signature",
    "aws_checksum_algorithm",
    "aws_s3_express",
    "aws_unsigned_payload",
    "aws_imdsv1_fallback",
    "aws_metadata_endpoint",
    "aws_disable_tagging",
    "aws_disable_bulk_delete",
    "aws_request_payer",
    "aws_role_arn",
    "aws_role_session_name",
    "aws_web_identity_token_file",
    "aws_server_side_encryption",
    "aws_sse_kms_key_id",
    "aws_sse_bucket_key_enabled",
    // Google Cloud Storage: the service account's *path*, never its key.
    "google_bucket",
    "google_bucket_name",
    "google_service_account",
    "google_service_account_path",
    "google_application_credentials",
    "google_base_url",
    "google_skip_signature",
    "google_allow_http",
    // Azure Blob Storage.
    "azure_storage_account_name",
    "azure_container_name",
    "azure_storage_endpoint",
    "azure_endpoint",
    "azure_storage_use_emulator",
    "azure_use_fabric_endpoint",
    "azure_disable_tagging",
    "azure_skip_signature",
    "azure_allow_http",
    "azure_storage_client_id",
    "azure_client_id",
    "azure_storage_tenant_id",
    "azure_tenant_id",
    "azure_storage_authority_id",
    "azure_authority_id",
    "azure_storage_authority_host",
    "azure_authority_host",
    "azure_msi_endpoint",
    "azure_identity_endpoint",
    "azure_object_id",
    "azure_msi_resource_id",
    "azure_federated_token_file",
    "azure_use_azure_cli",
    "azure_credential_type",
];

/// Checks one `[storage]` key of the TOML file against [`FILE_STORAGE_KEYS`]. The message names
/// the key and the environment variable to use instead, never the value.
fn file_storage_key(key: &str) -> Result<String, ConfigError> {
    let key = key.to_ascii_lowercase();
    if FILE_STORAGE_KEYS.contains(&key.as_str()) {
        return Ok(key);
    }
    let known = STORE_ENV_PREFIXES
        .iter()
        .any(|p| key.starts_with(&p.to_ascii_lowercase()))
        && object_store_key(&key);
    if known {
        err(format!(
            "--config: [storage] {key} is not accepted in a file (it holds or leads to a secret); set it in the environment as {} instead",
            key.to_ascii_uppercase()
        ))
    } else {
        err(format!(
            "--config: [storage] {key} is not a storage setting a file may hold; use object_store's aws_*, google_* or azure_* names (e.g. aws_region, aws_endpoint), and put secrets in the environment"
        ))
    }
}

/// Whether `key` is one of object_store's setting keys.
fn object_store_key(key: &str) -> bool {
    use object_store::aws::AmazonS3ConfigKey;
    use object_store::azure::AzureConfigKey;
    use object_store::gcp::GoogleConfigKey;
    key.parse::<AmazonS3ConfigKey>().is_ok()
        || key.parse::<GoogleConfigKey>().is_ok()
        || key.parse::<AzureConfigKey>().is_ok()
}

/// Object-store settings: the TOML file's `[storage]` table, then the environment's `AWS_*`,
/// `GOOGLE_*` and `AZURE_*` variables that `object_store` knows (the environment wins).
pub fn store(args: &StoreArgs, file: &FileConfig, env: &Env) -> Result<StoreOptions, ConfigError> {
    let mut settings = Vec::new();
    for (key, value) in &file.storage {
        settings.push((file_storage_key(key)?, value.clone()));
    }
    let mut from_env: Vec<(String, String)> = env
        .0
        .iter()
        .filter(|(k, v)| STORE_ENV_PREFIXES.iter().any(|p| k.starts_with(p)) && !v.is_empty())
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .filter(|(k, _)| object_store_key(k))
        .collect();
    from_env.sort();
    settings.extend(from_env);
    let timeout_text = args.store_timeout.as_deref().unwrap_or("30s");
    let timeout = parse_duration_ms(timeout_text)
        .map_err(|e| ConfigError(format!("--store-timeout: {e}")))?;
    if timeout.is_zero() {
        return err("--store-timeout must be more than zero");
    }
    if timeout > MAX_SETTING_DURATION {
        return err(format!(
            "--store-timeout {timeout_text} is too long: at most 7d"
        ));
    }
    Ok(StoreOptions {
        settings,
        allow_http: args.allow_http,
        timeout,
    })
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
        "http" if crate::config::net::is_loopback(&url) => Ok(url),
        "http" => err(format!(
            "--base-url {text:?}: plain http is accepted only for loopback addresses (127.0.0.1, ::1, localhost); use https"
        )),
        other => err(format!("--base-url {text:?}: unsupported scheme {other}")),
    }
}

/// Reads a secret from `NAME` or from the file named by `NAME_FILE` (a trailing newline is
/// dropped). The value never appears in a message.
fn secret(env: &Env, name: &str) -> Result<Option<Secret>, ConfigError> {
    let file_var = format!("{name}_FILE");
    match (env.get(name), env.get(&file_var)) {
        (Some(_), Some(_)) => err(format!("set {name} or {file_var}, not both")),
        (Some(v), None) => Ok(Some(Secret::new(v.trim()))),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError(format!("{file_var}: cannot read {path}: {e}")))?;
            let value = text.trim();
            if value.is_empty() {
                return err(format!("{file_var}: {path} is empty"));
            }
            Ok(Some(Secret::new(value)))
        }
        (None, None) => Ok(None),
    }
}

/// The credentials from the environment: exactly one kind of them.
///
/// Two kinds at once is an error naming both, so that nobody has to wonder which one a run used.
pub fn credentials(env: &Env) -> Result<Credentials, ConfigError> {
    // Which kinds are set is decided from the names alone, before any file is read: a second
    // kind is the mistake to report, not an unreadable file behind it.
    let set = |names: &[&str]| {
        names
            .iter()
            .any(|n| env.get(n).is_some() || env.get(&format!("{n}_FILE")).is_some())
    };
    let mut kinds: Vec<&str> = Vec::new();
    if set(&["ZENDESK_OAUTH_TOKEN"]) {
        kinds.push("an OAuth access token (ZENDESK_OAUTH_TOKEN)");
    }
    if set(&["ZENDESK_OAUTH_CLIENT_ID", "ZENDESK_OAUTH_CLIENT_SECRET"]) {
        kinds.push(
            "OAuth client credentials (ZENDESK_OAUTH_CLIENT_ID + ZENDESK_OAUTH_CLIENT_SECRET)",
        );
    }
    if set(&["ZENDESK_API_TOKEN"]) {
        kinds.push("an API token (ZENDESK_EMAIL + ZENDESK_API_TOKEN)");
    }
    if kinds.len() > 1 {
        return err(format!(
            "more than one kind of Zendesk credential is set: {}; keep exactly one (OAuth client credentials are preferred: auditlake renews their tokens itself, and Zendesk deactivates every API token on 2027-04-30)",
            kinds.join(" and ")
        ));
    }
    let oauth = secret(env, "ZENDESK_OAUTH_TOKEN")?;
    let client_id = env.get("ZENDESK_OAUTH_CLIENT_ID").map(str::trim);
    let client_secret = secret(env, "ZENDESK_OAUTH_CLIENT_SECRET")?;
    let scope = env.get("ZENDESK_OAUTH_SCOPE").map(str::trim);
    let token = secret(env, "ZENDESK_API_TOKEN")?;
    let email = env.get("ZENDESK_EMAIL");
    if scope.is_some() && client_id.is_none() && client_secret.is_none() {
        return err("ZENDESK_OAUTH_SCOPE is used only with ZENDESK_OAUTH_CLIENT_ID and ZENDESK_OAUTH_CLIENT_SECRET");
    }
    match (oauth, client_id, client_secret, token, email) {
        (Some(t), ..) => Ok(Credentials::OAuth(t)),
        (None, Some(id), Some(secret), ..) => {
            let scope = scope.unwrap_or(DEFAULT_SCOPE);
            if scope.is_empty() || scope.chars().any(|c| c.is_control()) {
                return err("ZENDESK_OAUTH_SCOPE must be space-separated scopes, e.g. auditlogs:read");
            }
            Ok(Credentials::ClientCredentials(OAuthClient {
                id: id.to_string(),
                secret,
                scope: scope.to_string(),
            }))
        }
        (None, Some(_), None, ..) => err(
            "ZENDESK_OAUTH_CLIENT_ID needs ZENDESK_OAUTH_CLIENT_SECRET (or ZENDESK_OAUTH_CLIENT_SECRET_FILE): the confidential OAuth client's secret",
        ),
        (None, None, Some(_), ..) => err(
            "ZENDESK_OAUTH_CLIENT_SECRET needs ZENDESK_OAUTH_CLIENT_ID: the OAuth client's unique identifier",
        ),
        (None, None, None, Some(token), Some(email)) => Ok(Credentials::ApiToken {
            email: email.to_string(),
            token,
        }),
        (None, None, None, Some(_), None) => {
            err("ZENDESK_API_TOKEN needs ZENDESK_EMAIL (the admin's email address)")
        }
        (None, None, None, None, _) => err(
            "no credentials: set ZENDESK_OAUTH_CLIENT_ID and ZENDESK_OAUTH_CLIENT_SECRET (a confidential OAuth client; the way for scheduled runs), or ZENDESK_OAUTH_TOKEN (an OAuth access token with the auditlogs:read or read scope), or ZENDESK_EMAIL and ZENDESK_API_TOKEN (deactivated by Zendesk on 2027-04-30)",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(c.concurrency, DEFAULT_CONCURRENCY);
        assert_eq!(c.api.rate_limit_share, 0.5);
        assert_eq!(c.api.client.base_url.as_str(), "https://acme.zendesk.com/");
        assert_eq!(c.pagination, Pagination::Cursor);
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
    fn store_settings_come_from_the_file_and_the_environment_but_secrets_only_from_the_environment()
    {
        let settings =
            file("[storage]\naws_region = \"eu-west-1\"\naws_endpoint = \"http://127.0.0.1:9000\"");
        let env = Env::from_pairs([
            ("AWS_REGION", "us-east-2"),
            ("AWS_SECRET_ACCESS_KEY", "s3-SECRET"),
            ("AWS_PROFILE", "not-an-object-store-key"),
            ("HOME", "/root"),
        ]);
        let s = store(&StoreArgs::default(), &settings, &env).unwrap();
        let keys: Vec<&str> = s.settings.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "aws_endpoint",
                "aws_region",
                "aws_region",
                "aws_secret_access_key"
            ]
        );
        assert_eq!(
            s.settings[2].1, "us-east-2",
            "the environment comes last, so it wins"
        );
        assert!(!format!("{s:?}").contains("SECRET"));
        let secret = file("[storage]\naws_secret_access_key = \"x\"");
        let e = store(&StoreArgs::default(), &secret, &Env::default()).unwrap_err();
        assert!(e.0.contains("AWS_SECRET_ACCESS_KEY"), "{e}");
    }

    fn file(text: &str) -> FileConfig {
        FileConfig::parse(text).unwrap()
    }

    #[test]
    fn secret_storage_keys_in_the_file_are_refused_by_an_allow_list() {
        // Regression: a deny-list of words let the first four through.
        for key in [
            "aws_sse_customer_key_base64",
            "azure_storage_master_key",
            "azure_storage_sas_key",
            "azure_storage_encryption_key",
            "aws_secret_access_key",
            "aws_session_token",
            "google_service_account_key",
            "azure_storage_account_key",
            "azure_client_secret",
            "aws_container_credentials_full_uri",
            "aws_proxy_url",
        ] {
            let f = file(&format!("[storage]\n{key} = \"value-Qz7\""));
            let e = store(&StoreArgs::default(), &f, &Env::default()).unwrap_err();
            assert!(e.0.contains(key), "{key}: {e}");
            assert!(e.0.contains(&key.to_ascii_uppercase()), "{key}: {e}");
            assert!(!e.0.contains("Qz7"), "{key}: {e}");
        }
        for key in ["region", "access_key", "aws_bogus", "bucket"] {
            let f = file(&format!("[storage]\n{key} = \"value-Qz7\""));
            let e = store(&StoreArgs::default(), &f, &Env::default()).unwrap_err();
            assert!(e.0.contains(key) && !e.0.contains("Qz7"), "{key}: {e}");
        }
    }

    #[test]
    fn settings_that_hold_no_secret_are_accepted_from_the_file() {
        let f = file(
            "[storage]\naws_region = \"eu-west-1\"\naws_endpoint_url = \"https://s3.example\"\n\
             aws_sse_kms_key_id = \"arn:aws:kms:key/1\"\ngoogle_service_account = \"/etc/sa.json\"\n\
             azure_storage_account_name = \"acct\"\nazure_container_name = \"c\"\n\
             azure_storage_use_emulator = \"true\"\naws_conditional_put = \"etag\"",
        );
        let s = store(&StoreArgs::default(), &f, &Env::default()).unwrap();
        assert_eq!(s.settings.len(), 8);
    }

    #[test]
    fn every_key_the_file_may_hold_is_an_object_store_key() {
        for key in FILE_STORAGE_KEYS {
            assert!(
                object_store_key(key),
                "{key} is not one of object_store's keys"
            );
        }
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

    #[test]
    fn credentials_come_from_the_environment_and_never_show() {
        let e = credentials(&Env::default()).unwrap_err();
        assert!(e.0.contains("ZENDESK_OAUTH_TOKEN"));
        let both = Env::from_pairs([
            ("ZENDESK_OAUTH_TOKEN", "a-SECRET"),
            ("ZENDESK_API_TOKEN", "b-SECRET"),
        ]);
        let e = credentials(&both).unwrap_err();
        assert!(!e.0.contains("SECRET"));
        let c = credentials(&Env::from_pairs([
            ("ZENDESK_EMAIL", "a@b.c"),
            ("ZENDESK_API_TOKEN", "t-SECRET"),
        ]))
        .unwrap();
        assert!(matches!(c, Credentials::ApiToken { .. }));
        assert!(!format!("{c:?}").contains("SECRET"));

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "file-SECRET\n").unwrap();
        let c = credentials(&Env::from_pairs([(
            "ZENDESK_OAUTH_TOKEN_FILE",
            path.to_str().unwrap(),
        )]))
        .unwrap();
        assert_eq!(c, Credentials::OAuth(Secret::new("file-SECRET")));
        let missing = Env::from_pairs([("ZENDESK_OAUTH_TOKEN_FILE", "/nonexistent/token")]);
        assert!(credentials(&missing)
            .unwrap_err()
            .0
            .contains("/nonexistent/token"));
    }

    #[test]
    fn client_credentials_come_from_the_environment_or_a_mounted_file() {
        let c = credentials(&Env::from_pairs([
            ("ZENDESK_OAUTH_CLIENT_ID", "auditlake"),
            ("ZENDESK_OAUTH_CLIENT_SECRET", "cs-SECRET"),
        ]))
        .unwrap();
        assert_eq!(
            c,
            Credentials::ClientCredentials(OAuthClient {
                id: "auditlake".into(),
                secret: Secret::new("cs-SECRET"),
                scope: "auditlogs:read".into(),
            })
        );
        assert!(!format!("{c:?}").contains("SECRET"));

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("client-secret");
        std::fs::write(&path, "file-SECRET\n").unwrap();
        let c = credentials(&Env::from_pairs([
            ("ZENDESK_OAUTH_CLIENT_ID", "auditlake"),
            ("ZENDESK_OAUTH_CLIENT_SECRET_FILE", path.to_str().unwrap()),
            ("ZENDESK_OAUTH_SCOPE", "read"),
        ]))
        .unwrap();
        let Credentials::ClientCredentials(client) = c else {
            panic!("client credentials expected");
        };
        assert_eq!(client.secret, Secret::new("file-SECRET"));
        assert_eq!(client.scope, "read");

        for (pairs, needle) in [
            (
                &[("ZENDESK_OAUTH_CLIENT_ID", "auditlake")][..],
                "needs ZENDESK_OAUTH_CLIENT_SECRET",
            ),
            (
                &[("ZENDESK_OAUTH_CLIENT_SECRET", "cs-SECRET")][..],
                "needs ZENDESK_OAUTH_CLIENT_ID",
            ),
            (
                &[
                    ("ZENDESK_OAUTH_TOKEN", "t-SECRET"),
                    ("ZENDESK_OAUTH_SCOPE", "read"),
                ][..],
                "ZENDESK_OAUTH_SCOPE is used only with",
            ),
        ] {
            let e = credentials(&Env::from_pairs(pairs.iter().copied())).unwrap_err();
            assert!(e.0.contains(needle), "{pairs:?}: {e}");
            assert!(!e.0.contains("-SECRET"), "{e}");
        }
    }

    #[test]
    fn two_kinds_of_credentials_are_a_usage_error_naming_both() {
        type Case<'a> = (&'a [(&'a str, &'a str)], [&'a str; 2]);
        let cases: [Case; 4] = [
            (
                &[
                    ("ZENDESK_OAUTH_TOKEN", "a-SECRET"),
                    ("ZENDESK_OAUTH_CLIENT_ID", "auditlake"),
                ],
                ["ZENDESK_OAUTH_TOKEN", "ZENDESK_OAUTH_CLIENT_ID"],
            ),
            (
                &[
                    ("ZENDESK_EMAIL", "a@b.c"),
                    ("ZENDESK_API_TOKEN", "b-SECRET"),
                    ("ZENDESK_OAUTH_CLIENT_ID", "auditlake"),
                    ("ZENDESK_OAUTH_CLIENT_SECRET", "c-SECRET"),
                ],
                ["ZENDESK_API_TOKEN", "ZENDESK_OAUTH_CLIENT_SECRET"],
            ),
            (
                &[
                    ("ZENDESK_OAUTH_TOKEN", "a-SECRET"),
                    ("ZENDESK_API_TOKEN", "b-SECRET"),
                ],
                ["ZENDESK_OAUTH_TOKEN", "ZENDESK_API_TOKEN"],
            ),
            (
                &[
                    ("ZENDESK_OAUTH_TOKEN", "a-SECRET"),
                    ("ZENDESK_OAUTH_CLIENT_SECRET_FILE", "/nonexistent"),
                ],
                ["ZENDESK_OAUTH_TOKEN", "ZENDESK_OAUTH_CLIENT_SECRET"],
            ),
        ];
        for (pairs, names) in cases {
            let e = credentials(&Env::from_pairs(pairs.iter().copied())).unwrap_err();
            for name in names {
                assert!(e.0.contains(name), "{pairs:?}: {e}");
            }
            assert!(!e.0.contains("-SECRET"), "{e}");
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
        match field {
            0 => a.api.subdomain = t,
            1 => a.api.base_url = t,
            2 => a.api.request_timeout = t,
            3 => a.api.max_retry_time = t,
            4 => a.api.retry_base_delay = t,
            5 => a.filters.filter_action = vec![text.to_string()],
            6 => a.filters.filter_source_type = t,
            7 => a.filters.filter_ip_address = t,
            8 => a.dest = t,
            9 => a.since = t,
            10 => a.until = t,
            11 => a.window = t,
            12 => a.settle_lag = t,
            13 => a.work.lease_ttl = t,
            _ => a.store.store_timeout = t,
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
            a.api.rate_limit_share = Some(share);
            a.api.max_requests_per_minute = Some(rpm);
            a.api.max_attempts = Some(attempts);
            a.concurrency = Some(concurrency);
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
