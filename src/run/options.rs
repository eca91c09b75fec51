//! What the top (`config`, from flags, the environment and the file) gives the run: one value
//! per command, built and validated there, read here. The run owns these types, so it never
//! imports `config`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::lake::manifest::TableFormat;
use crate::lake::signing::Signer;
use crate::lake::storage::StoreOptions;
use crate::plan::window::Grid;
use crate::verify::VerifyOptions;
use crate::zendesk::{ClientOptions, Filters, Pagination};

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
    /// Plain Parquet, or Parquet with a Delta log (pinned by the lake).
    pub table_format: TableFormat,
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
    /// Whether the closed days of a sub-day grid are compacted into one file per day partition
    /// (see `run/compact.rs`): always from the command line; off, each window keeps its files.
    pub compact_days: bool,
    pub store: StoreOptions,
    /// The run's id: in its lease, its summary and every JSON log line (see [`crate::lake::lease`]).
    pub run_id: String,
    /// The key that signs the digest chain's links (`--signing-key-file`).
    pub signer: Option<Arc<Signer>>,
    /// The exit code of each outcome, as the top numbers them (`cmd::exit::of_outcome`): the
    /// run records it in the lake's `last_run.json` and never picks one itself.
    pub exit_code_of: fn(crate::run::Outcome) -> u8,
    /// `--retention`: closed windows that ended longer ago than this before the run are
    /// expired at its end (off: `None`).
    pub retention: Option<Duration>,
}

/// Everything `verify` needs.
#[derive(Clone, Debug)]
pub struct VerifyConfig {
    pub dest: String,
    pub subdomain: String,
    pub store: StoreOptions,
    pub options: VerifyOptions,
    /// Reaching Zendesk, with `--against-api`.
    pub api: Option<ApiConfig>,
}

/// Everything `repair` needs: what to check, and how to re-export (the export's settings; the
/// grid and filters come from the lake's `dataset.json`).
#[derive(Clone, Debug)]
pub struct RepairConfig {
    pub check: VerifyConfig,
    pub export: ExportConfig,
}

/// What `erase` and `expire` share: the lake, why, and the run's hold on it.
#[derive(Clone, Debug)]
pub struct ChangeConfig {
    pub dest: String,
    pub store: StoreOptions,
    pub subdomain: String,
    pub reason: String,
    pub dry_run: bool,
    pub signer: Option<Arc<Signer>>,
    pub tmp_dir: PathBuf,
    pub lease_ttl: Duration,
    pub run_id: String,
}

/// `erase`'s settings.
#[derive(Clone, Debug)]
pub struct EraseConfig {
    pub change: ChangeConfig,
    /// The user ids, sorted, each once.
    pub user_ids: Vec<i64>,
}

/// `expire`'s settings.
#[derive(Clone, Debug)]
pub struct ExpireConfig {
    pub change: ChangeConfig,
    /// UTC seconds: windows ending at or before it go.
    pub before: i64,
}
