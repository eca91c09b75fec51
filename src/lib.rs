//! auditlake: exact, resumable export of Zendesk audit logs into a Hive-partitioned Parquet lake.
//!
//! One room per stage, in pipeline order. A stage takes the types of the stages before it (their
//! output is its input) and calls only the rooms below it that it hands work to (route → encode,
//! commit → manifest, lease → storage); nothing calls back up the pipeline. The front door
//! (`cli`, `config`) and the coordinators (`runner`, the commands) know every room:
//!
//! ```text
//! cli ─▶ config ─▶ window (plan) ─▶ zendesk (fetch) ─▶ decode ─▶ route ─▶ encode ─▶ commit ─▶ manifest, lease ─▶ storage
//!                                             runner: bounded workers over the whole pipeline
//! ```
//! - [`cli`] parses the command line; [`config`] validates it with the TOML file and environment
//!   ([`duration`] reads its durations; [`net`] tells a loopback address, for it and storage).
//! - [`window`] is the UTC grid and the plan of a run.
//! - [`zendesk`] is the API client: auth, shared request budget, retries, pagination.
//! - [`schema`] loads the declared schema from `schemas/`; [`decode`] turns pages into its rows.
//! - [`route`] keeps exactly a window's records, once, and sends them to their day's part file.
//! - [`encode`] writes one Parquet part file to a local temporary file.
//! - [`commit`] makes a window's files its truth: upload, sweep, marker; repairs and generations.
//! - [`manifest`] pins the dataset and records markers; [`lease`] keeps one run per lake and
//!   subdomain.
//! - [`storage`] is object_store I/O; [`storage::layout`] is the only place that makes a path.
//! - [`recount`] counts a window at the API; [`verify`] proves the lake.
//! - [`runner`] ties a run (and a repair, and a recheck) together; [`ranges`] plans the run's
//!   windows as ranges, each fetched in one stream and split while they run.
//! - [`metrics`] writes a run's Prometheus text file.
//! - [`status`], [`ddl`] and [`ops`] serve the other commands; `demo` runs the whole job against the
//!   built-in Zendesk, the `zendesk-sim` crate in `crates/zendesk-sim` (with the default
//!   `simulator` feature, which also brings `auditlake simulate`).
//! - [`error`] is the one error of a command and its exit code.

pub mod cli;
// Then, in pipeline order:
pub mod config;
pub mod duration;
pub mod net;
// plan
pub mod window;
// fetch
pub mod zendesk;
// decode (against the declared schema)
pub mod schema;
// (then the pages into rows)
pub mod decode;
// route, encode
pub mod route;
// (the Parquet writer)
pub mod encode;
// commit
pub mod commit;
// the manifest and the lease it is kept under
pub mod lease;
pub mod manifest;
// object_store I/O and the only place that makes a path
pub mod storage;
// counting and proving, which the runner's recheck and repair use
pub mod recount;
pub mod verify;
// coordination: ranges of windows fetched by one stream each, split while they run
pub mod ranges;
pub mod runner;
// the other commands
pub mod ddl;
pub mod ops;
pub mod status;
// a run's metrics, for Prometheus
pub mod metrics;
// the whole job against the built-in Zendesk (the zendesk-sim crate)
#[cfg(feature = "simulator")]
pub mod demo;
// every command's one error and its exit code
pub mod error;

pub use error::Error;
