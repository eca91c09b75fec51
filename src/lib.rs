//! auditlake: exact, resumable export of Zendesk audit logs into a Hive-partitioned Parquet lake.
//!
//! One folder per stage, in the order data flows. A stage takes the types of the stages before it
//! (their output is its input) and never reaches into a later one; the run coordinator ([`run`])
//! is the only module that knows the whole order. One exception, by design: `config` builds the
//! option values of the stages it configures (the client's `ClientOptions` and `RetryPolicy`,
//! the store's `StoreOptions`, the lease's TTL floor), so each default has one home beside its
//! flag and each stage keeps its own option type:
//!
//! ```text
//! config ─▶ plan ─▶ zendesk (fetch, count) ─▶ table (decode, route, encode) ─▶ lake (commit) ─▶ storage
//!                      run: the coordinator, bounded workers over the whole pipeline
//!          verify · status · ddl · ops · metrics read what lake wrote, or ask the API
//! ```
//!
//! `tests/layers.rs` reads the code's `crate::` paths and fails on an edge from a module to one
//! of its rank or a later one (verify comes before run: a repair starts from what it finds), or
//! from any stage to `config` or `error`, but for the edges it lists as not yet removed.

// Stages, top to bottom.
// Flags, the TOML file and the environment, validated once into one typed config.
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
// The whole job against the built-in Zendesk (the `zendesk-sim` crate).
#[cfg(feature = "simulator")]
pub mod demo;
// Every command's one error and its exit code.
pub mod error;
// A run's metrics as a Prometheus text file.
pub mod metrics;
// The API's show, list and export operations, for a person.
pub mod ops;
// What the manifest says: windows done, the open window, gaps, freshness.
pub mod status;

pub use error::Error;
