//! Why a window failed, and why a run as a whole could not go on.

use crate::lake::commit::CommitError;
use crate::lake::lease::LeaseError;
use crate::lake::manifest::ManifestError;
use crate::lake::storage::StorageError;
use crate::table::decode::DecodeError;
use crate::table::encode::PartError;
use crate::verify::VerifyError;
use crate::zendesk::{ApiError, ClientError};

/// Why a window failed.
#[derive(Debug, thiserror::Error)]
pub enum WindowError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("{0}; nothing was committed for this window")]
    Decode(#[from] DecodeError),
    #[error("writing Parquet: {0}")]
    Part(#[from] PartError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Commit(#[from] CommitError),
    #[error(
        "not exported: the stream of its range failed before it ({cause}); a rerun retries it"
    )]
    RangeFailed { cause: String },
    #[error("Zendesk returned record {id} after records created later (sort=created_at broken): window {window}, committed before it came, may lack it; run `auditlake repair --against-api`")]
    Misordered { window: String, id: i64 },
}

impl WindowError {
    /// Whether the destination failed: the store already retried it, so later windows would
    /// fail the same way after downloading all their pages. The run stops instead.
    pub(crate) fn is_storage(&self) -> bool {
        match self {
            WindowError::Storage(_) | WindowError::Manifest(ManifestError::Storage(_)) => true,
            WindowError::Commit(e) => e.is_storage(),
            _ => false,
        }
    }

    /// Whether the run's lease is no longer certainly held.
    pub(crate) fn is_lease(&self) -> bool {
        matches!(self, WindowError::Commit(CommitError::Lease(_)))
    }
}

/// Why the run as a whole could not go on.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Client(#[from] ClientError),
    /// What was asked cannot be done to the lake as it is (an expiry that would take the open
    /// window): a usage error, said before anything is written.
    #[error("{0}")]
    Refused(String),
    #[error("cannot start the simulator: {0}")]
    Simulator(std::io::Error),
    /// The credentials were refused before the run started (a wrong client secret, a scope the
    /// OAuth client may not ask for), or the token endpoint could not be reached.
    #[error("{0}")]
    Authenticate(ApiError),
    #[error(transparent)]
    Lease(#[from] LeaseError),
    #[error(transparent)]
    Commit(#[from] CommitError),
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error("interrupted; an unfinished repair is finished by the next export or repair")]
    Interrupted,
}
