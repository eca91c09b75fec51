//! auditlake: exact, resumable export of Zendesk audit logs into a Hive-partitioned Parquet lake.
//!
//! The layers, bottom to top. A module uses only the layers below it; nothing uses the top.
//!
//! ```text
//! 0  units    durations, instants, the subdomain, the run id (a leaf: uses nothing)
//! 1  plan     the fixed UTC window grid and the windows a run covers
//! 2  zendesk  the API: auth, the request budget, retries, pagination, counts
//! 3  table    records to rows of the declared schema, routed, encoded as Parquet
//! 4  lake     storage, manifest, lease, ledger, the one commit of every change
//! 5  verify   proves the lake against its markers and the API
//! 6  run      the coordinator: export, the open window, recheck, repair, erase, expire
//! 7  status · ddl · ops · metrics   read what the lake holds, or ask the API
//! 9  config · error                 flags, file and environment into each stage's options;
//!                                   the one error
//! 10 cmd      the commands, and the one place outcomes become exit codes (`cmd/exit.rs`)
//! ```
//!
//! A stage takes the types of the stages before it (their output is its input) and owns its
//! options and their defaults (`zendesk::RetryPolicy` and `DEFAULT_MAX_ATTEMPTS`,
//! `lake::storage::StoreOptions`, `run::ExportConfig`, ...); `config` builds them and
//! `config::cli` shows the defaults in `--help`. [`run`] is the only module that knows the whole
//! order. `tests/layers.rs` reads the code's `crate::` paths and fails on any edge to a module of
//! the same or a higher layer, so the import graph has no circle.

// The top: flags, the TOML file and the environment, validated once into each stage's options.
pub mod config;

// Units every stage speaks (durations, instants, the subdomain, the run id): a leaf.
pub mod units;

// The fixed UTC window grid and the windows a run covers.
pub mod plan;

// The Zendesk API client: auth, the shared request budget, retries, pagination, counts.
pub mod zendesk;

// Records to rows of the declared schema, routed to a window and a day, encoded as Parquet.
pub mod table;

// Storage, paths, manifest, lease and commit: what makes files the lake's truth.
pub mod lake;

// Proves the lake against its markers and, optionally, the API's counts (a repair starts from
// what it finds, so it comes before the coordinator).
pub mod verify;

// The run coordinator: an export, its ranges and workers, the open window, recheck, repair,
// erasure and expiry.
pub mod run;

// What reads the lake (or asks the API) for the other commands.
// Table definitions per engine (Athena, Trino, Spark, DuckDB, BigQuery).
pub mod ddl;
// Every command's one error.
pub mod error;
// A run's metrics as a Prometheus text file.
pub mod metrics;
// The API's show, list and export operations, for a person.
pub mod ops;
// What the manifest says: windows done, the open window, gaps, freshness.
pub mod status;

// The commands: each reads its config, calls the stages and maps the outcome to an exit code
// (`cmd/exit.rs`, the one place that does). The top: nothing else uses it.
pub mod cmd;

pub use error::Error;
