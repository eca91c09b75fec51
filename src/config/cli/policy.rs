//! The arguments of `erase` and `expire`: the lake owner's decisions that data must go.

use std::path::PathBuf;

use clap::Args;

use super::StoreArgs;

/// What every change of the lake that removes data needs: the lake, why, and the run's hold.
#[derive(Debug, Args, Clone)]
pub struct ChangeArgs {
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

    /// Required. The subdomain whose records to change.
    #[arg(long, env = "AUDITLAKE_SUBDOMAIN", help_heading = "What to change")]
    pub subdomain: Option<String>,

    /// Required. Why: a ticket or request number, kept in the ledger and the digest chain
    /// (write no personal data here).
    #[arg(long, value_name = "TEXT", help_heading = "What to change")]
    pub reason: Option<String>,

    /// Print what would change (windows and rows), write nothing.
    #[arg(long, help_heading = "What to change")]
    pub dry_run: bool,

    /// Ed25519 private key (PKCS#8 PEM) signing the chain's link; required by a signed lake.
    #[arg(
        long,
        env = "AUDITLAKE_SIGNING_KEY_FILE",
        value_name = "FILE",
        help_heading = "Where to"
    )]
    pub signing_key_file: Option<PathBuf>,

    /// Directory for the files rewritten before upload [default: the system's].
    #[arg(
        long,
        env = "AUDITLAKE_TMP_DIR",
        value_name = "DIR",
        help_heading = "Where to"
    )]
    pub tmp_dir: Option<PathBuf>,

    /// How long the lease on (dest, subdomain) lasts without renewal, as for export.
    #[arg(
        long,
        env = "AUDITLAKE_LEASE_TTL",
        value_name = "DURATION",
        default_value_t = crate::lake::lease::DEFAULT_LEASE_TTL.to_string(),
        help_heading = "Where to"
    )]
    pub lease_ttl: String,

    /// Print the outcome as JSON.
    #[arg(long, help_heading = "Output")]
    pub json: bool,
}

/// What `erase` erases.
#[derive(Debug, Args, Clone)]
pub struct EraseArgs {
    #[command(flatten)]
    pub change: ChangeArgs,

    /// A Zendesk user id whose data to erase (repeat for several).
    #[arg(long = "user-id", value_name = "ID", help_heading = "What to change")]
    pub user_ids: Vec<String>,

    /// A file of user ids, one a line (blank lines and lines starting with # are skipped).
    #[arg(long, value_name = "FILE", help_heading = "What to change")]
    pub user_ids_file: Option<PathBuf>,
}

/// What `expire` removes.
#[derive(Debug, Args, Clone)]
pub struct ExpireArgs {
    #[command(flatten)]
    pub change: ChangeArgs,

    /// Required. Remove every closed window that ends at or before this time (e.g. 2024-01-01).
    #[arg(long, value_name = "TIME", help_heading = "What to change")]
    pub before: Option<String>,
}
