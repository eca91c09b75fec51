//! The flags that pick accounts from the `[[account]]` tables of `--config` (issue 29).

use clap::Args;

/// `--account` and `--shard`: which accounts of the file a command runs (all of them without
/// either).
#[derive(Debug, Args, Clone, Default)]
pub struct AccountArgs {
    /// With [[account]] tables in --config: only the account of this subdomain.
    #[arg(
        long,
        env = "AUDITLAKE_ACCOUNT",
        value_name = "SUBDOMAIN",
        help_heading = "Accounts"
    )]
    pub account: Option<String>,

    /// With [[account]] tables in --config: only the accounts whose position in the file (from
    /// 0) modulo N is I, for a scheduler's fan-out. `--shard N` takes I from
    /// JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) or AWS_BATCH_JOB_ARRAY_INDEX (an AWS
    /// Batch array job).
    #[arg(
        long,
        env = "AUDITLAKE_SHARD",
        value_name = "I/N",
        help_heading = "Accounts"
    )]
    pub shard: Option<String>,
}
