//! The command line, parsed only: every value stays as typed. [`crate::config`] turns it, with
//! the TOML file and the environment, into one validated configuration.
//!
//! Each flag's default is a named constant next to the flag (`DEFAULT_SETTLE_LAG`, ...), the one
//! place that default is written: clap applies it and shows it in `--help`, the argument groups'
//! `Default` (for arguments built in code, like the demo's) is the empty command line, and the
//! policy structs' `Default` ([`crate::zendesk::RetryPolicy`],
//! [`crate::lake::storage::StoreOptions`]) read it.

// The `///` comments of the clap structs are `--help` text, written for a terminal: URLs and
// `filter[created_at][]` stay as typed rather than as rustdoc links.
#![allow(rustdoc::bare_urls, rustdoc::broken_intra_doc_links)]

use std::path::PathBuf;

use clap::{ArgAction, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use crate::lake::manifest::TableFormat;
use crate::zendesk::Pagination;
pub use values::{EngineArg, PaginationArg, TableFormatArg};

mod accounts;
mod lake;
mod policy;
pub use accounts::AccountArgs;
pub use lake::{RepairArgs, StatusArgs, VerifyArgs};
pub use policy::{ChangeArgs, EraseArgs, ExpireArgs};
#[cfg(feature = "simulator")]
mod simulator;
mod values;
#[cfg(feature = "simulator")]
pub use simulator::{BoundsArg, DemoArgs, SimulateArgs};

/// Exact, resumable export of Zendesk audit logs into a Hive-partitioned Parquet lake.
///
/// Credentials come only from the environment (see below): for scheduled runs a confidential
/// OAuth client, ZENDESK_OAUTH_CLIENT_ID with ZENDESK_OAUTH_CLIENT_SECRET.
///
/// Every switch (--quiet, --allow-http, ...) also takes a value, so that one set in the
/// environment or the config file can be turned off on the command line: `--quiet=false`,
/// `--allow-http=no` (true/false, yes/no, on/off, 1/0).
///
/// Exit codes: 0 all done; 1 some windows failed (rerun to retry them); 2 usage or configuration
/// error; 3 Zendesk refused the credentials or access (401/403, or the OAuth token endpoint refused
/// the client), or Zendesk's TLS certificate is not trusted by this machine (a proxy or a private
/// CA: see SSL_CERT_FILE); 4 the destination or its manifest failed (a failing store stops the run
/// at once); 5 another run holds the lease on this lake and subdomain (or took it over, or this
/// run's lease ran out before a write); 6 verify found
/// the lake different from its markers or the API; 7 no lake for the subdomain at --dest (status,
/// verify, repair, ddl); 8 `status --max-age`: the lake is older than allowed; 130 interrupted
/// (Ctrl-C or SIGTERM: no window was left half-committed).
///
/// A committed window's files change only through a repair: new files under the next generation's
/// names, then that generation's marker (create-if-absent), then the old files removed, journaled
/// so that a killed repair is finished by the next export or repair.
#[derive(Debug, Parser)]
#[command(
    name = "auditlake",
    version,
    propagate_version = true,
    max_term_width = 100,
    after_help = super::credentials::help()
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// A TOML file with default values for any long option (keys as on the command line, e.g.
    /// `subdomain = "acme"`, `filter-action = ["login"]`). Flags and environment win over the file.
    #[arg(
        long,
        global = true,
        env = "AUDITLAKE_CONFIG",
        value_name = "FILE",
        help_heading = "Config"
    )]
    pub config: Option<PathBuf>,

    /// Log format: text for people, json for log collectors.
    #[arg(
        long,
        global = true,
        env = "AUDITLAKE_LOG_FORMAT",
        value_enum,
        default_value_t = DEFAULT_LOG_FORMAT,
        help_heading = "Output"
    )]
    pub log_format: LogFormat,

    /// Log filter, in tracing's syntax (e.g. `debug`, `auditlake=debug`) [default: info].
    /// AUDITLAKE_LOG, its former name, still works when this is not set (deprecated).
    #[arg(
        long,
        global = true,
        env = "AUDITLAKE_LOG_LEVEL",
        value_name = "FILTER",
        help_heading = "Output"
    )]
    pub log_level: Option<String>,

    /// Print no progress bar and no summary; logs only warnings and errors.
    #[arg(
        long,
        short,
        global = true,
        env = "AUDITLAKE_QUIET",
        help_heading = "Output"
    )]
    pub quiet: bool,

    /// Check the command's settings and exit: flags, config file, environment, credentials (that
    /// they are set and readable; never shown) and the destination (its URL and store settings).
    /// Contacts nothing, writes nothing; prints one line saying what would run and exits 0, or
    /// exits with the error and code the run itself would give. Command line only.
    // No AUDITLAKE_CHECK_CONFIG and no config-file key: a leftover setting there would turn every
    // scheduled run into a check that exports nothing and still exits 0.
    #[arg(long, global = true, help_heading = "Config")]
    pub check_config: bool,
}

impl Cli {
    /// The grammar of the command line: the derived one, with every switch (a `bool` flag)
    /// also taking a value, `--quiet=false`, so that one set in the environment or the config file
    /// can be turned off, and every number or duration taking a leading `-` as its value's sign.
    /// Declared here once rather than on each flag.
    pub fn grammar() -> clap::Command {
        with_value_rules(Cli::command())
    }

    /// Parses a command line (the program's name first) with [`Cli::grammar`].
    pub fn parse_args<I, T>(argv: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Cli::from_arg_matches(&Cli::grammar().try_get_matches_from(argv)?)
    }
}

/// Value names of the flags that take a number or a duration. Their values may start with `-`:
/// `--settle-lag -5` then reaches validation, which names the flag and says why the value is
/// wrong, where clap alone answers "unexpected argument '-5'" about a flag never given.
const SIGNED_VALUE_NAMES: [&str; 4] = ["DURATION", "STEP", "N", "FRACTION"];

fn with_value_rules(command: clap::Command) -> clap::Command {
    command
        .mut_args(|arg| {
            let signed = arg.get_value_names().is_some_and(|names| {
                names
                    .iter()
                    .any(|n| SIGNED_VALUE_NAMES.contains(&n.as_str()))
            });
            if signed {
                return arg.allow_hyphen_values(true);
            }
            if !matches!(arg.get_action(), ArgAction::SetTrue) {
                return arg;
            }
            arg.action(ArgAction::Set)
                .value_name("BOOL")
                .num_args(0..=1)
                .require_equals(true)
                .default_value("false")
                .default_missing_value("true")
                .hide_default_value(true)
                .value_parser(parse_switch)
        })
        .mut_subcommands(with_value_rules)
}

/// An argument group as an empty command line gives it: every flag at its default, and nothing
/// read from the environment. The `Default` of the groups whose flags have defaults, for code that
/// builds arguments itself (the demo), so that it gets the same defaults as the command line.
fn empty_command_line<T: Args + FromArgMatches>() -> T {
    let command =
        T::augment_args(clap::Command::new("auditlake")).mut_args(|arg| arg.env(None::<&str>));
    let matches = command
        .try_get_matches_from(["auditlake"])
        .expect("an empty command line parses");
    T::from_arg_matches(&matches).expect("an empty command line fills every field")
}

impl Default for ApiArgs {
    fn default() -> Self {
        empty_command_line()
    }
}

impl Default for StoreArgs {
    fn default() -> Self {
        empty_command_line()
    }
}

impl Default for WorkArgs {
    fn default() -> Self {
        empty_command_line()
    }
}

impl Default for ExportArgs {
    fn default() -> Self {
        empty_command_line()
    }
}

impl Command {
    /// The flags that pick accounts of the `[[account]]` tables, for the commands that run many
    /// accounts (export, status, verify, repair, ddl); `None` for the others.
    pub fn accounts(&self) -> Option<&AccountArgs> {
        match self {
            Command::Export(a) => Some(&a.accounts),
            Command::Status(a) => Some(&a.accounts),
            Command::Verify(a) => Some(&a.accounts),
            Command::Repair(a) => Some(&a.check.accounts),
            Command::Ddl(a) => Some(&a.accounts),
            _ => None,
        }
    }

    /// The subdomain the command works on, when it names one (for the JSON logs' `subdomain`).
    pub fn subdomain(&self) -> Option<&str> {
        match self {
            Command::Export(a) => a.api.subdomain.as_deref(),
            Command::Verify(a) => a.api.subdomain.as_deref(),
            Command::Repair(a) => a.check.api.subdomain.as_deref(),
            Command::Erase(a) => a.change.subdomain.as_deref(),
            Command::Expire(a) => a.change.subdomain.as_deref(),
            Command::Status(a) => a.subdomain.as_deref(),
            Command::Ddl(a) => a.subdomain.as_deref(),
            Command::Show(a) => a.api.subdomain.as_deref(),
            Command::List(a) => a.api.subdomain.as_deref(),
            Command::RequestExport(a) => a.api.subdomain.as_deref(),
            #[cfg(feature = "simulator")]
            Command::Demo(_) | Command::Simulate(_) => None,
        }
    }
}

/// A switch's value: true/false, yes/no, on/off, 1/0 (any case). Empty, as from a variable set to
/// nothing, is false, as the environment's other empty values count as unset.
pub fn parse_switch(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" | "" => Ok(false),
        _ => Err("expected true or false (also yes/no, on/off, 1/0)".to_string()),
    }
}

/// `--log-format`'s default: text, for people at a terminal.
pub const DEFAULT_LOG_FORMAT: LogFormat = LogFormat::Text;

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

// Parsed once per process: the size of the largest command's arguments costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Export audit logs into the lake: closed windows once, the open window on every run.
    #[command(after_help = super::credentials::help())]
    Export(ExportArgs),
    /// Show what the lake's manifest says: done windows, the open window, gaps, row counts.
    Status(StatusArgs),
    /// Prove the lake against its markers (and, with --against-api, against Zendesk's counts).
    /// Exit 0 when clean, 6 when anything differs.
    #[command(after_help = super::credentials::help())]
    Verify(VerifyArgs),
    /// Re-export the windows verify finds wrong, atomically (new files, then a new marker
    /// generation, then the old files removed), and remove files that no marker names.
    #[command(after_help = super::credentials::help())]
    Repair(RepairArgs),
    /// Erase users' personal data from the lake the way Zendesk's "automatically delete PII"
    /// does (names become the user id, the IP goes), purge every older copy, and record the
    /// erasure in the ledger and the digest chain. Needs no Zendesk credentials.
    Erase(EraseArgs),
    /// Remove every closed window that ends at or before --before (files, Delta entries), leaving
    /// a tombstone and a chain link per window: the lake's retention, applied once.
    Expire(ExpireArgs),
    /// Print the SQL that makes an engine (Athena, Trino, Spark, DuckDB, BigQuery) see the lake's
    /// table root as one table. Reads the lake, never writes it.
    Ddl(DdlArgs),
    /// Fetch one audit log by id (the API's show operation) and print it as JSON.
    #[command(after_help = super::credentials::help())]
    Show(ShowArgs),
    /// List audit logs (the API's list operation) as JSON lines on stdout.
    #[command(after_help = super::credentials::help())]
    List(ListArgs),
    /// Ask Zendesk to prepare a CSV export (the API's export operation; 1 request per minute).
    #[command(after_help = super::credentials::help())]
    RequestExport(RequestExportArgs),
    /// Run the whole job end to end against the built-in simulator, no account needed.
    #[cfg(feature = "simulator")]
    Demo(DemoArgs),
    /// Serve a synthetic Zendesk account on 127.0.0.1 (the simulator the tests and demo use).
    #[cfg(feature = "simulator")]
    Simulate(SimulateArgs),
}

/// Where and how to reach Zendesk.
#[derive(Debug, Args, Clone)]
pub struct ApiArgs {
    /// Required. Zendesk subdomain: `acme` for acme.zendesk.com.
    #[arg(long, env = "AUDITLAKE_SUBDOMAIN", help_heading = "What to export")]
    pub subdomain: Option<String>,

    /// Replaces https://SUBDOMAIN.zendesk.com (for the simulator, a proxy or tests). Plain http:// is
    /// accepted only for loopback addresses.
    #[arg(
        long,
        env = "AUDITLAKE_BASE_URL",
        value_name = "URL",
        help_heading = "What to export"
    )]
    pub base_url: Option<String>,

    /// Upper bound on requests per minute for this process [default: none beyond the share].
    #[arg(
        long,
        env = "AUDITLAKE_MAX_REQUESTS_PER_MINUTE",
        value_name = "N",
        help_heading = "Speed and limits"
    )]
    pub max_requests_per_minute: Option<u32>,

    /// Fraction of the account's rate limit (from X-Rate-Limit) this process may use; the rest is
    /// left to other integrations on the account.
    #[arg(
        long,
        env = "AUDITLAKE_RATE_LIMIT_SHARE",
        value_name = "FRACTION",
        default_value_t = crate::zendesk::DEFAULT_RATE_LIMIT_SHARE,
        help_heading = "Speed and limits"
    )]
    pub rate_limit_share: f64,

    /// Time limit of one HTTP request, body included.
    #[arg(
        long,
        env = "AUDITLAKE_REQUEST_TIMEOUT",
        value_name = "DURATION",
        default_value_t = crate::zendesk::DEFAULT_REQUEST_TIMEOUT.to_string(),
        help_heading = "Retries"
    )]
    pub request_timeout: String,

    /// Attempts per request, the first included, before a transient failure (5xx, timeout,
    /// reset, bad body) fails its window; at least 1.
    #[arg(
        long,
        env = "AUDITLAKE_MAX_ATTEMPTS",
        value_name = "N",
        default_value_t = crate::zendesk::DEFAULT_MAX_ATTEMPTS,
        help_heading = "Retries"
    )]
    pub max_attempts: u32,

    /// Time one request may spend retrying before it fails its window.
    #[arg(
        long,
        env = "AUDITLAKE_MAX_RETRY_TIME",
        value_name = "DURATION",
        default_value_t = crate::zendesk::DEFAULT_MAX_RETRY_TIME.to_string(),
        help_heading = "Retries"
    )]
    pub max_retry_time: String,

    /// First retry delay, doubled per attempt with jitter (e.g. 500ms, 2s).
    #[arg(
        long,
        env = "AUDITLAKE_RETRY_BASE_DELAY",
        value_name = "DURATION",
        default_value_t = crate::zendesk::DEFAULT_RETRY_BASE_DELAY.to_string(),
        help_heading = "Retries"
    )]
    pub retry_base_delay: String,
}

/// The API's record filters.
#[derive(Debug, Args, Clone, Default)]
pub struct FilterArgs {
    /// Only records with this action (create, destroy, exported, login, update, ...); repeat for
    /// several (in the environment: comma-separated).
    #[arg(
        long = "filter-action",
        value_name = "ACTION",
        env = "AUDITLAKE_FILTER_ACTION",
        value_delimiter = ',',
        help_heading = "What to export"
    )]
    pub filter_action: Vec<String>,

    /// Only records about this source type (user, rule, ticket, apitoken, ...).
    #[arg(
        long,
        value_name = "TYPE",
        env = "AUDITLAKE_FILTER_SOURCE_TYPE",
        help_heading = "What to export"
    )]
    pub filter_source_type: Option<String>,

    /// Only records about this source id (needs --filter-source-type).
    #[arg(
        long,
        value_name = "ID",
        allow_negative_numbers = true,
        env = "AUDITLAKE_FILTER_SOURCE_ID",
        help_heading = "What to export"
    )]
    pub filter_source_id: Option<i64>,

    /// Only records by this actor id.
    #[arg(
        long,
        value_name = "ID",
        allow_negative_numbers = true,
        env = "AUDITLAKE_FILTER_ACTOR_ID",
        help_heading = "What to export"
    )]
    pub filter_actor_id: Option<i64>,

    /// Only records from this IP address.
    #[arg(
        long,
        value_name = "IP",
        env = "AUDITLAKE_FILTER_IP_ADDRESS",
        help_heading = "What to export"
    )]
    pub filter_ip_address: Option<String>,
}

/// Reaching the lake's object store (credentials and other settings come from the cloud's usual
/// environment variables, e.g. AWS_ACCESS_KEY_ID, AWS_REGION, AWS_ENDPOINT_URL).
#[derive(Debug, Args, Clone)]
pub struct StoreArgs {
    /// Allow a plain-HTTP object-store endpoint that is not a loopback address
    /// (`--allow-http=false` turns off an `allow-http = true` from the config file).
    #[arg(long, env = "AUDITLAKE_ALLOW_HTTP", help_heading = "Where to")]
    pub allow_http: bool,

    /// Time limit of one object-store request (one upload part, one small object).
    #[arg(
        long,
        env = "AUDITLAKE_STORE_TIMEOUT",
        value_name = "DURATION",
        default_value_t = crate::lake::storage::DEFAULT_STORE_TIMEOUT.to_string(),
        help_heading = "Where to"
    )]
    pub store_timeout: String,
}

/// How a run that writes the lake (export, repair) fetches and stages windows and holds its lease.
#[derive(Debug, Args, Clone)]
pub struct WorkArgs {
    /// List pagination: cursor or offset (at most 10,000 records per window).
    #[arg(
        long,
        env = "AUDITLAKE_PAGINATION",
        value_enum,
        // Pagination's own default (cursor), declared on the enum.
        default_value_t = PaginationArg::from(Pagination::default()),
        help_heading = "Speed and limits"
    )]
    pub pagination: PaginationArg,

    /// Ed25519 private key (PKCS#8 PEM) signing each digest-chain link; never shown in a log.
    #[arg(
        long,
        env = "AUDITLAKE_SIGNING_KEY_FILE",
        value_name = "FILE",
        help_heading = "Where to"
    )]
    pub signing_key_file: Option<PathBuf>,

    /// Directory for temporary Parquet files before upload [default: the system's].
    #[arg(
        long,
        env = "AUDITLAKE_TMP_DIR",
        value_name = "DIR",
        help_heading = "Where to"
    )]
    pub tmp_dir: Option<PathBuf>,

    /// How long the run's lease on (dest, subdomain) lasts without renewal; a run renews it every
    /// third of this. A run that was killed blocks the next one at most this long.
    #[arg(
        long,
        env = "AUDITLAKE_LEASE_TTL",
        value_name = "DURATION",
        default_value_t = crate::lake::lease::DEFAULT_LEASE_TTL.to_string(),
        help_heading = "Where to"
    )]
    pub lease_ttl: String,
}

#[derive(Debug, Args, Clone)]
pub struct ExportArgs {
    #[command(flatten)]
    pub api: ApiArgs,

    #[command(flatten)]
    pub store: StoreArgs,

    #[command(flatten)]
    pub filters: FilterArgs,

    #[command(flatten)]
    pub accounts: AccountArgs,

    /// With [[account]] tables in --config: how many accounts export at once (each has its own
    /// rate budget, lease and summary; the others go on when one fails).
    #[arg(
        long,
        env = "AUDITLAKE_ACCOUNTS_AT_ONCE",
        value_name = "N",
        default_value_t = crate::cmd::accounts::DEFAULT_ACCOUNTS_AT_ONCE,
        help_heading = "Accounts"
    )]
    pub accounts_at_once: usize,

    /// Required. The lake: a local path, file://, s3://bucket/prefix, gs://bucket/prefix or
    /// az://container/prefix.
    #[arg(
        long,
        env = "AUDITLAKE_DEST",
        value_name = "PATH_OR_URL",
        help_heading = "Where to"
    )]
    pub dest: Option<String>,

    /// Required. Start of the export: RFC 3339 (2024-01-01T00:00:00Z) or a date (2024-01-01 =
    /// midnight UTC). Rounded down to the window grid.
    #[arg(
        long,
        env = "AUDITLAKE_SINCE",
        value_name = "TIME",
        help_heading = "What to export"
    )]
    pub since: Option<String>,

    /// End of the export (exclusive) [default: now minus --settle-lag]. Never later than that:
    /// younger records may not be visible yet.
    #[arg(
        long,
        env = "AUDITLAKE_UNTIL",
        value_name = "TIME",
        help_heading = "What to export"
    )]
    pub until: Option<String>,

    /// Window grid: 1h, 2h, 3h, 4h, 6h, 8h, 12h, 1d or Nd. Pinned by the lake at its first run.
    #[arg(
        long,
        env = "AUDITLAKE_WINDOW",
        value_name = "STEP",
        default_value_t = crate::plan::window::Grid::DAILY.to_string(),
        help_heading = "What to export"
    )]
    pub window: String,

    /// Table format: parquet (Hive-partitioned files, which every engine reads as they are) or
    /// delta (the same files, plus a Delta Lake log at the table root that makes every change
    /// one transaction). Pinned by the lake; a parquet lake run with delta is converted.
    #[arg(
        long,
        env = "AUDITLAKE_TABLE_FORMAT",
        value_enum,
        default_value_t = TableFormatArg::from(TableFormat::default()),
        help_heading = "What to export"
    )]
    pub table_format: TableFormatArg,

    /// How far behind now data is treated as final; Zendesk is eventually consistent.
    #[arg(
        long,
        env = "AUDITLAKE_SETTLE_LAG",
        value_name = "DURATION",
        default_value_t = crate::run::DEFAULT_SETTLE_LAG.to_string(),
        help_heading = "What to export"
    )]
    pub settle_lag: String,

    /// Streams fetched at once, each over a range of windows; a stream that runs out of work
    /// takes over half of the largest one's, or the rest of a busy window. The request budget,
    /// not this, bounds the load on Zendesk.
    #[arg(
        long,
        env = "AUDITLAKE_CONCURRENCY",
        value_name = "N",
        default_value_t = crate::run::DEFAULT_CONCURRENCY,
        help_heading = "Speed and limits"
    )]
    pub concurrency: usize,

    #[command(flatten)]
    pub work: WorkArgs,

    /// Also write the run summary as JSON to this file (for schedulers).
    #[arg(
        long,
        env = "AUDITLAKE_SUMMARY_JSON",
        value_name = "FILE",
        help_heading = "Output"
    )]
    pub summary_json: Option<PathBuf>,

    /// Write the run's metrics in Prometheus text format to this file, replaced atomically at
    /// the end of every run (for node_exporter's textfile collector: a `.prom` file in its folder).
    #[arg(
        long,
        env = "AUDITLAKE_METRICS_FILE",
        value_name = "FILE",
        help_heading = "Output"
    )]
    pub metrics_file: Option<PathBuf>,

    /// Re-count the committed windows that ended within this span before the run's end against
    /// the API (the span as one count, halved only where it differs), and repair those where Zendesk now holds more
    /// records: records that became visible later than --settle-lag still reach the lake. 0 turns
    /// it off.
    #[arg(
        long,
        env = "AUDITLAKE_RECHECK",
        value_name = "DURATION",
        default_value_t = crate::run::DEFAULT_RECHECK.to_string(),
        help_heading = "What to export"
    )]
    pub recheck: String,

    /// Keep this long (e.g. 400d): at the end of each run, closed windows that ended longer ago
    /// are removed, as `auditlake expire` removes them. Off unless given; at least one window.
    #[arg(
        long,
        env = "AUDITLAKE_RETENTION",
        value_name = "DURATION",
        help_heading = "What to export"
    )]
    pub retention: Option<String>,
}

/// What `ddl` describes, and for which engine.
#[derive(Debug, Args, Clone)]
pub struct DdlArgs {
    /// The lake: a local path or an object store URL, as for export.
    #[arg(long, env = "AUDITLAKE_DEST", value_name = "PATH_OR_URL")]
    pub dest: Option<String>,

    #[command(flatten)]
    pub accounts: AccountArgs,

    #[command(flatten)]
    pub store: StoreArgs,

    /// The engine the SQL is for: athena and trino need an s3:// lake, bigquery a gs:// one.
    #[arg(long, value_enum, default_value_t = EngineArg::from(crate::ddl::DEFAULT_ENGINE))]
    pub engine: EngineArg,

    /// The table (or view) to create: NAME or DATABASE.NAME (BigQuery: DATASET.NAME).
    #[arg(long, value_name = "NAME", default_value_t = crate::ddl::DEFAULT_TABLE.to_string())]
    pub table: String,

    /// Only this subdomain's data [default: every subdomain in the lake].
    #[arg(long)]
    pub subdomain: Option<String>,

    /// With --engine athena: print the table as the input of
    /// `aws glue create-table --cli-input-json file://FILE` instead of SQL.
    #[arg(long)]
    pub glue: bool,
}

#[derive(Debug, Args, Clone)]
pub struct ShowArgs {
    /// The audit log's id.
    pub id: i64,

    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args, Clone)]
pub struct ListArgs {
    #[command(flatten)]
    pub api: ApiArgs,

    #[command(flatten)]
    pub filters: FilterArgs,

    /// Only records created at or after this time (RFC 3339 or a date).
    #[arg(long, value_name = "TIME", help_heading = "What to export")]
    pub since: Option<String>,

    /// Only records created before this time (RFC 3339 or a date).
    #[arg(long, value_name = "TIME", help_heading = "What to export")]
    pub until: Option<String>,

    /// Stop after this many records (at least 1).
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,

    /// List pagination: cursor or offset (at most 10,000 records).
    #[arg(long, value_enum, default_value_t = PaginationArg::from(Pagination::default()), help_heading = "Speed and limits")]
    pub pagination: PaginationArg,
}

#[derive(Debug, Args, Clone)]
pub struct RequestExportArgs {
    #[command(flatten)]
    pub api: ApiArgs,

    #[command(flatten)]
    pub filters: FilterArgs,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_built_arguments_take_the_defaults_and_ignore_the_environment() {
        // Only `config` reads the environment, through clap on the real command line.
        #[derive(Debug, Args)]
        struct Probe {
            #[arg(long, env = "AUDITLAKE_TEST_PROBE_7F3A", default_value = "default")]
            value: String,
        }
        std::env::set_var("AUDITLAKE_TEST_PROBE_7F3A", "from the environment");
        assert_eq!(empty_command_line::<Probe>().value, "default");
        assert_eq!(
            ExportArgs::default().concurrency,
            crate::run::DEFAULT_CONCURRENCY
        );
        assert_eq!(
            ExportArgs::default().settle_lag,
            crate::run::DEFAULT_SETTLE_LAG.to_string()
        );
    }
}
