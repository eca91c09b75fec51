//! The arguments of the commands that read or mend the lake: `verify`, `repair`, `status`.

use std::path::PathBuf;

use clap::Args;

use super::{AccountArgs, ApiArgs, StoreArgs, WorkArgs};

/// What `verify` checks.
#[derive(Debug, Args, Clone, Default)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub api: ApiArgs,

    #[command(flatten)]
    pub accounts: AccountArgs,

    #[command(flatten)]
    pub store: StoreArgs,

    /// Required. The lake: a local path or an object store URL, as for export.
    #[arg(
        long,
        env = "AUDITLAKE_DEST",
        value_name = "PATH_OR_URL",
        help_heading = "Where to"
    )]
    pub dest: Option<String>,

    /// Only windows starting at or after this time [default: the lake's first].
    #[arg(long, value_name = "TIME", help_heading = "What to export")]
    pub since: Option<String>,

    /// Only windows ending at or before this time [default: the lake's last].
    #[arg(long, value_name = "TIME", help_heading = "What to export")]
    pub until: Option<String>,

    /// Read every file: ids unique across the lake, every created_at in its window and day
    /// partition, sort order as declared, schema as in schemas/.
    #[arg(long)]
    pub deep: bool,

    /// Hash every file (SHA-256) and compare it with the digest its marker recorded when the
    /// file was written: a byte changed after the commit is reported (exit 6). Part of --deep.
    #[arg(long)]
    pub integrity: bool,

    /// Also ask Zendesk how many records each committed window holds now (at most three requests
    /// per window, within the shared request budget); needs credentials as for export.
    #[arg(long)]
    pub against_api: bool,

    /// Ed25519 public key (SPKI PEM: `openssl pkey -pubout`) that must sign every chain link.
    #[arg(long, value_name = "FILE")]
    pub public_key: Option<PathBuf>,

    /// Print the report as JSON.
    #[arg(long, help_heading = "Output")]
    pub json: bool,
}

/// What `repair` repairs, and how it re-exports.
#[derive(Debug, Args, Clone, Default)]
pub struct RepairArgs {
    #[command(flatten)]
    pub check: VerifyArgs,

    #[command(flatten)]
    pub work: WorkArgs,
}

#[derive(Debug, Args, Clone)]
pub struct StatusArgs {
    /// Required. The lake: a local path or an object store URL, as for export.
    #[arg(
        long,
        env = "AUDITLAKE_DEST",
        value_name = "PATH_OR_URL",
        help_heading = "Where to"
    )]
    pub dest: Option<String>,

    #[command(flatten)]
    pub store: StoreArgs,

    /// Required. The subdomain whose manifest to read.
    #[arg(long, env = "AUDITLAKE_SUBDOMAIN", help_heading = "What to export")]
    pub subdomain: Option<String>,

    /// Exit 8 when the lake is complete only to longer ago than this (e.g. 2h, 1d), or nothing
    /// is committed yet: for a monitor to page on. The open window counts: with hourly runs on
    /// the default 1d grid the lake is complete to the last run's end, not to midnight.
    #[arg(long, env = "AUDITLAKE_MAX_AGE", value_name = "DURATION")]
    pub max_age: Option<String>,

    /// Print the status as JSON.
    #[arg(long, help_heading = "Output")]
    pub json: bool,

    #[command(flatten)]
    pub accounts: AccountArgs,
}
