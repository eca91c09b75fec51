//! One validated configuration, from command-line flags, the environment and a TOML file.
//!
//! Flags and their `AUDITLAKE_*` environment variables are parsed by clap ([`crate::cli`]); this
//! module fills what they leave open from the TOML file, then from defaults, and validates
//! everything once. Nothing else in the crate reads the environment: credentials are read here,
//! only from `ZENDESK_*` variables or the files they name, and never from flags.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::cli::{ApiArgs, ExportArgs, FilterArgs, LogFormat, RepairArgs, StoreArgs, VerifyArgs};
use crate::storage::layout::valid_subdomain;
use crate::storage::StoreOptions;
use crate::window::{parse_duration, parse_duration_ms, parse_instant, Grid};
use crate::zendesk::auth::Secret;
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

/// The TOML file: every key optional, named like the long flags.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct FileConfig {
    pub subdomain: Option<String>,
    pub base_url: Option<String>,
    pub max_requests_per_minute: Option<u32>,
    pub rate_limit_share: Option<f64>,
    pub request_timeout: Option<String>,
    pub max_attempts: Option<u32>,
    pub max_retry_time: Option<String>,
    pub retry_base_delay: Option<String>,
    #[serde(default)]
    pub filter_action: Vec<String>,
    pub filter_source_type: Option<String>,
    pub filter_source_id: Option<i64>,
    pub filter_actor_id: Option<i64>,
    pub filter_ip_address: Option<String>,
    pub dest: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub window: Option<String>,
    pub settle_lag: Option<String>,
    pub concurrency: Option<usize>,
    pub pagination: Option<Pagination>,
    pub summary_json: Option<PathBuf>,
    pub tmp_dir: Option<PathBuf>,
    pub lease_ttl: Option<String>,
    pub recheck: Option<String>,
    pub allow_http: Option<bool>,
    pub store_timeout: Option<String>,
    pub log_format: Option<LogFormat>,
    pub log_level: Option<String>,
    /// Object-store settings by `object_store` key (`aws_region`, `aws_endpoint`, ...); never
    /// secrets, which belong in the environment.
    #[serde(default)]
    pub storage: std::collections::BTreeMap<String, String>,
}

impl FileConfig {
    /// Reads the file named by `--config`, or an empty configuration without one.
    pub fn load(path: Option<&Path>) -> Result<FileConfig, ConfigError> {
        let Some(path) = path else {
            return Ok(FileConfig::default());
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("--config {}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| ConfigError(format!("--config {}: {e}", path.display())))
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
    pub tmp_dir: PathBuf,
    /// How long a lease lasts without renewal (a crashed run blocks the next one this long).
    pub lease_ttl: Duration,
    /// Committed windows ending within this span before `until` are re-counted against the API
    /// (zero: never).
    pub recheck: Duration,
    pub store: StoreOptions,
}

/// Windows exported at once by default: enough to overlap requests, decoding and uploads; the
/// request budget, not this, bounds the load on Zendesk.
const DEFAULT_CONCURRENCY: usize = 4;

/// Recheck the last day by default: Zendesk's late records show up within minutes to hours, and a
/// daily grid then costs one or two requests per run.
const DEFAULT_RECHECK: &str = "1d";

/// More windows at once only add memory (each holds an open Parquet row group).
const MAX_CONCURRENCY: usize = 64;

/// Validates `api` (flags and `AUDITLAKE_*` variables) over `file`, with credentials from `env`.
pub fn api(args: &ApiArgs, file: &FileConfig, env: &Env) -> Result<ApiConfig, ConfigError> {
    let subdomain = args
        .subdomain
        .clone()
        .or_else(|| file.subdomain.clone())
        .ok_or_else(|| {
            ConfigError("--subdomain is required (e.g. acme for acme.zendesk.com)".into())
        })?;
    if !valid_subdomain(&subdomain) {
        return err(format!(
            "--subdomain {subdomain:?} is not a Zendesk subdomain: use lowercase letters, digits and hyphens (acme, not acme.zendesk.com)"
        ));
    }
    let base_url = base_url(
        &subdomain,
        args.base_url.as_deref().or(file.base_url.as_deref()),
    )?;
    let share = args
        .rate_limit_share
        .or(file.rate_limit_share)
        .unwrap_or(0.5);
    if !(share > 0.0 && share <= 1.0) {
        return err(format!(
            "--rate-limit-share {share} must be above 0 and at most 1"
        ));
    }
    let max_rpm = args
        .max_requests_per_minute
        .or(file.max_requests_per_minute);
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
            Ok(d)
        };
    let request_timeout = duration(
        "request-timeout",
        args.request_timeout
            .as_ref()
            .or(file.request_timeout.as_ref()),
        "60s",
    )?;
    let retry = RetryPolicy {
        max_attempts: args.max_attempts.or(file.max_attempts).unwrap_or(8).max(1),
        max_elapsed: duration(
            "max-retry-time",
            args.max_retry_time
                .as_ref()
                .or(file.max_retry_time.as_ref()),
            "10m",
        )?,
        base_delay: duration(
            "retry-base-delay",
            args.retry_base_delay
                .as_ref()
                .or(file.retry_base_delay.as_ref()),
            "500ms",
        )?,
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
pub fn filters(args: &FilterArgs, file: &FileConfig) -> Result<Filters, ConfigError> {
    let filters = Filters {
        actions: if args.filter_action.is_empty() {
            file.filter_action.clone()
        } else {
            args.filter_action.clone()
        },
        source_type: args
            .filter_source_type
            .clone()
            .or_else(|| file.filter_source_type.clone()),
        source_id: args.filter_source_id.or(file.filter_source_id),
        actor_id: args.filter_actor_id.or(file.filter_actor_id),
        ip_address: args
            .filter_ip_address
            .clone()
            .or_else(|| file.filter_ip_address.clone()),
    };
    filters.validate().map_err(ConfigError)?;
    Ok(filters)
}

/// Validates `export`'s settings; `now` is the current time in UTC seconds.
pub fn export(
    args: &ExportArgs,
    file: &FileConfig,
    env: &Env,
    now: i64,
) -> Result<ExportConfig, ConfigError> {
    let api = api(&args.api, file, env)?;
    let filters = filters(&args.filters, file)?;
    let dest = args
        .dest
        .clone()
        .or_else(|| file.dest.clone())
        .ok_or_else(|| ConfigError("--dest is required (a local path or file:// URL)".into()))?;
    let grid = match args.window.as_ref().or(file.window.as_ref()) {
        Some(text) => Grid::parse(text).map_err(|e| ConfigError(format!("--window: {e}")))?,
        None => Grid::DAILY,
    };
    let since_text = args
        .since
        .as_ref()
        .or(file.since.as_ref())
        .ok_or_else(|| ConfigError("--since is required (e.g. 2024-01-01)".into()))?;
    let since = parse_instant(since_text).map_err(|e| ConfigError(format!("--since: {e}")))?;
    let lag_text = args
        .settle_lag
        .as_deref()
        .or(file.settle_lag.as_deref())
        .unwrap_or("5m");
    let lag = parse_duration(lag_text).map_err(|e| ConfigError(format!("--settle-lag: {e}")))?;
    let settled =
        now - i64::try_from(lag).map_err(|_| ConfigError("--settle-lag is too large".into()))?;
    let until = match args.until.as_ref().or(file.until.as_ref()) {
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
    };
    if since >= until {
        return err(format!(
            "--since {since_text} is not before the end of the export ({}, i.e. --until or now minus --settle-lag)",
            crate::window::format_rfc3339(until)
        ));
    }
    let concurrency = args
        .concurrency
        .or(file.concurrency)
        .unwrap_or(DEFAULT_CONCURRENCY);
    if !(1..=MAX_CONCURRENCY).contains(&concurrency) {
        return err(format!(
            "--concurrency must be between 1 and {MAX_CONCURRENCY}"
        ));
    }
    let tmp_dir = args
        .tmp_dir
        .clone()
        .or_else(|| file.tmp_dir.clone())
        .unwrap_or_else(std::env::temp_dir);
    if !tmp_dir.is_dir() {
        return err(format!(
            "--tmp-dir {} is not a directory",
            tmp_dir.display()
        ));
    }
    let lease_text = args
        .lease_ttl
        .as_deref()
        .or(file.lease_ttl.as_deref())
        .unwrap_or("10m");
    let lease_ttl =
        parse_duration(lease_text).map_err(|e| ConfigError(format!("--lease-ttl: {e}")))?;
    // Renewal runs every third of the time to live; below a few seconds a slow store could not keep up.
    if lease_ttl < 3 {
        return err("--lease-ttl must be at least 3s");
    }
    let recheck_text = args
        .recheck
        .as_deref()
        .or(file.recheck.as_deref())
        .unwrap_or(DEFAULT_RECHECK);
    let recheck =
        parse_duration(recheck_text).map_err(|e| ConfigError(format!("--recheck: {e}")))?;
    Ok(ExportConfig {
        lease_ttl: Duration::from_secs(lease_ttl),
        recheck: Duration::from_secs(recheck),
        store: store(&args.store, file, env)?,
        api,
        filters,
        dest,
        grid,
        since,
        until,
        concurrency,
        pagination: args.pagination.or(file.pagination).unwrap_or_default(),
        summary_json: args
            .summary_json
            .clone()
            .or_else(|| file.summary_json.clone()),
        tmp_dir,
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
    let dest = args
        .dest
        .clone()
        .or_else(|| file.dest.clone())
        .ok_or_else(|| ConfigError("--dest is required".into()))?;
    let subdomain = args
        .api
        .subdomain
        .clone()
        .or_else(|| file.subdomain.clone())
        .ok_or_else(|| ConfigError("--subdomain is required".into()))?;
    if !valid_subdomain(&subdomain) {
        return err(format!(
            "--subdomain {subdomain:?} is not a Zendesk subdomain"
        ));
    }
    let instant = |flag: &str, text: Option<&String>| -> Result<Option<i64>, ConfigError> {
        text.map(|t| parse_instant(t).map_err(|e| ConfigError(format!("--{flag}: {e}"))))
            .transpose()
    };
    let since = instant("since", args.since.as_ref())?;
    let until = instant("until", args.until.as_ref())?;
    if let (Some(s), Some(u)) = (since, until) {
        if s >= u {
            return err("--since must be before --until");
        }
    }
    Ok(VerifyConfig {
        store: store(&args.store, file, env)?,
        api: if args.against_api {
            Some(api(&args.api, file, env)?)
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
        pagination: args.pagination,
        tmp_dir: args.tmp_dir.clone(),
        lease_ttl: args.lease_ttl.clone(),
        recheck: Some("0".into()),
        ..ExportArgs::default()
    };
    // The file's filters and grid do not apply: a repair uses the ones the lake pinned.
    let file = FileConfig {
        filter_action: Vec::new(),
        filter_source_type: None,
        filter_source_id: None,
        filter_actor_id: None,
        filter_ip_address: None,
        window: None,
        settle_lag: Some("0s".into()),
        ..file.clone()
    };
    let export = export(&export_args, &file, env, now)?;
    Ok(RepairConfig { check, export })
}

/// Environment prefixes of the clouds' standard variables, as `object_store` reads them.
const STORE_ENV_PREFIXES: [&str; 3] = ["AWS_", "GOOGLE_", "AZURE_"];

/// Words that mark a storage setting as a secret: those are accepted only from the environment.
const SECRET_WORDS: [&str; 5] = ["secret", "token", "password", "access_key", "account_key"];

/// Object-store settings: the TOML file's `[storage]` table, then the environment's `AWS_*`,
/// `GOOGLE_*` and `AZURE_*` variables that `object_store` knows (the environment wins).
pub fn store(args: &StoreArgs, file: &FileConfig, env: &Env) -> Result<StoreOptions, ConfigError> {
    use object_store::aws::AmazonS3ConfigKey;
    use object_store::azure::AzureConfigKey;
    use object_store::gcp::GoogleConfigKey;
    let mut settings = Vec::new();
    for (key, value) in &file.storage {
        let key = key.to_ascii_lowercase();
        if SECRET_WORDS.iter().any(|w| key.contains(w)) {
            return err(format!(
                "--config: [storage] {key} is a secret; set it in the environment ({}) instead of a file",
                key.to_ascii_uppercase()
            ));
        }
        settings.push((key, value.clone()));
    }
    let known = |key: &str| {
        key.parse::<AmazonS3ConfigKey>().is_ok()
            || key.parse::<GoogleConfigKey>().is_ok()
            || key.parse::<AzureConfigKey>().is_ok()
    };
    let mut from_env: Vec<(String, String)> = env
        .0
        .iter()
        .filter(|(k, v)| STORE_ENV_PREFIXES.iter().any(|p| k.starts_with(p)) && !v.is_empty())
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .filter(|(k, _)| known(k))
        .collect();
    from_env.sort();
    settings.extend(from_env);
    let timeout_text = args
        .store_timeout
        .as_deref()
        .or(file.store_timeout.as_deref())
        .unwrap_or("30s");
    let timeout = parse_duration_ms(timeout_text)
        .map_err(|e| ConfigError(format!("--store-timeout: {e}")))?;
    if timeout.is_zero() {
        return err("--store-timeout must be more than zero");
    }
    Ok(StoreOptions {
        settings,
        allow_http: args.allow_http || file.allow_http.unwrap_or(false),
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
            "--base-url must not contain credentials; use ZENDESK_OAUTH_TOKEN or ZENDESK_API_TOKEN",
        );
    }
    if url.query().is_some() || url.fragment().is_some() {
        return err(format!(
            "--base-url {text:?} must not have a query or fragment"
        ));
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if crate::storage::is_loopback(&url) => Ok(url),
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

/// The credentials from the environment.
pub fn credentials(env: &Env) -> Result<Credentials, ConfigError> {
    let oauth = secret(env, "ZENDESK_OAUTH_TOKEN")?;
    let token = secret(env, "ZENDESK_API_TOKEN")?;
    let email = env.get("ZENDESK_EMAIL");
    match (oauth, token, email) {
        (Some(_), Some(_), _) => err(
            "both ZENDESK_OAUTH_TOKEN and ZENDESK_API_TOKEN are set: keep one (OAuth is preferred; Zendesk retires API tokens on 2027-04-30)",
        ),
        (Some(t), None, _) => Ok(Credentials::OAuth(t)),
        (None, Some(token), Some(email)) => Ok(Credentials::ApiToken {
            email: email.to_string(),
            token,
        }),
        (None, Some(_), None) => err("ZENDESK_API_TOKEN needs ZENDESK_EMAIL (the admin's email address)"),
        (None, None, _) => err(
            "no credentials: set ZENDESK_OAUTH_TOKEN (OAuth access token with the read or auditlogs:read scope), or ZENDESK_EMAIL and ZENDESK_API_TOKEN",
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

    fn args(extra: &[&str]) -> ExportArgs {
        use clap::Parser;
        let mut argv = vec![
            "auditlake",
            "export",
            "--subdomain",
            "acme",
            "--dest",
            "/tmp",
            "--since",
            "2024-12-01",
        ];
        argv.extend_from_slice(extra);
        match crate::cli::Cli::try_parse_from(argv).unwrap().command {
            crate::cli::Command::Export(a) => a,
            _ => unreachable!(),
        }
    }

    #[test]
    fn defaults_fill_what_is_not_given() {
        let c = export(&args(&[]), &FileConfig::default(), &env(), NOW).unwrap();
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
        let c = export(
            &args(&["--until", "2030-01-01"]),
            &FileConfig::default(),
            &env(),
            NOW,
        )
        .unwrap();
        assert_eq!(c.until, NOW - 300);
        let c = export(
            &args(&["--until", "2024-12-02"]),
            &FileConfig::default(),
            &env(),
            NOW,
        )
        .unwrap();
        assert_eq!(c.until, NOW - 30 * 86_400);
        let e = export(
            &args(&["--until", "2024-11-01"]),
            &FileConfig::default(),
            &env(),
            NOW,
        )
        .unwrap_err();
        assert!(e.0.contains("is not before"), "{e}");
    }

    #[test]
    fn the_file_fills_in_and_flags_win() {
        let file: FileConfig = toml::from_str(
            "window = \"6h\"\nconcurrency = 2\nfilter-action = [\"login\"]\nsubdomain = \"other\"",
        )
        .unwrap();
        let c = export(&args(&[]), &file, &env(), NOW).unwrap();
        assert_eq!(c.grid.to_string(), "6h");
        assert_eq!(c.concurrency, 2);
        assert_eq!(c.filters.actions, ["login"]);
        assert_eq!(c.api.subdomain, "acme", "the flag wins over the file");
        assert!(toml::from_str::<FileConfig>("subdomian = \"typo\"").is_err());
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
        assert!(export(
            &args(&["--base-url", "http://127.0.0.1:9"]),
            &FileConfig::default(),
            &env(),
            NOW
        )
        .is_ok());
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
        let file: FileConfig = toml::from_str(
            "[storage]\naws_region = \"eu-west-1\"\naws_endpoint = \"http://127.0.0.1:9000\"",
        )
        .unwrap();
        let env = Env::from_pairs([
            ("AWS_REGION", "us-east-2"),
            ("AWS_SECRET_ACCESS_KEY", "s3-SECRET"),
            ("AWS_PROFILE", "not-an-object-store-key"),
            ("HOME", "/root"),
        ]);
        let s = store(&StoreArgs::default(), &file, &env).unwrap();
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
        let secret: FileConfig =
            toml::from_str("[storage]\naws_secret_access_key = \"x\"").unwrap();
        let e = store(&StoreArgs::default(), &secret, &Env::default()).unwrap_err();
        assert!(e.0.contains("AWS_SECRET_ACCESS_KEY"), "{e}");
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
}
