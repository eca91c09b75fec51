//! auditlake: exact, resumable export of Zendesk audit logs into a Hive-partitioned Parquet lake.
//!
//! The modules follow the pipeline:
//!
//! ```text
//! config ─▶ window (plan) ─▶ runner (bounded workers) ───────────────────────────────▶ manifest
//!                            │ zendesk (pages) ─▶ decode ─▶ route (by day) ─▶ storage │
//! ```
//! - [`cli`] parses the command line; [`config`] validates it with the TOML file and environment.
//! - [`window`] is the UTC grid and the plan of a run.
//! - [`zendesk`] is the API client: auth, shared request budget, retries, pagination.
//! - [`schema`] loads the declared schema from `schemas/`; [`decode`] turns pages into typed rows.
//! - [`route`] keeps exactly a window's records, once, and sends them to their day's part file.
//! - [`storage`] holds the lake: destinations, paths, Parquet part files, uploads.
//! - [`manifest`] pins the dataset and commits windows; [`runner`] ties a run together.
//! - [`status`] and [`ops`] serve the other commands; `demo` runs the whole job against the
//!   built-in Zendesk, the `zendesk-sim` crate in `crates/zendesk-sim` (with the default
//!   `simulator` feature, which also brings `auditlake simulate`).

pub mod cli;
pub mod commit;
pub mod config;
pub mod decode;
#[cfg(feature = "simulator")]
pub mod demo;
pub mod lease;
pub mod manifest;
pub mod ops;
pub mod recount;
pub mod route;
pub mod runner;
pub mod schema;
pub mod status;
pub mod storage;
pub mod verify;
pub mod window;
pub mod zendesk;
