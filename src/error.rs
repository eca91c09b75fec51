//! The crate's one error, and the one place where every outcome becomes an exit code.
//!
//! Each module keeps its own error enum, with the window, URL, status or path that a person needs
//! (`ApiError`, `StorageError`, `RunError`, ...). A command returns [`Error`], which wraps them;
//! [`Error::exit_code`] maps each to the documented exit code, as do the `exit_code` methods of
//! the outcomes below (a run's summary, a verify report, a repair).

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::config::ConfigError;
use crate::ddl::DdlError;
use crate::lake::commit::CommitError;
use crate::lake::lease::LeaseError;
use crate::lake::manifest::ManifestError;
use crate::lake::storage::StorageError;
use crate::run::{RepairOutcome, RunError, Summary};
use crate::status::StatusError;
use crate::verify::{Report, VerifyError};
use crate::zendesk::{ApiError, ClientError};

/// Exit codes, as documented in `--help` and the README.
pub mod exit {
    /// Everything done (or already done).
    pub const OK: u8 = 0;
    /// Some windows failed; a rerun retries them.
    pub const WINDOWS_FAILED: u8 = 1;
    /// Usage or configuration error.
    pub const USAGE: u8 = 2;
    /// Zendesk refused the credentials or access.
    pub const ACCESS: u8 = 3;
    /// The destination or its manifest failed.
    pub const DESTINATION: u8 = 4;
    /// Another run holds (or took) the lease, or this run's lease ran out.
    pub const LEASE: u8 = 5;
    /// The lake differs from its markers or from the API.
    pub const NOT_EXACT: u8 = 6;
    /// No lake at the destination for the subdomain (status, verify, repair, ddl).
    pub const NO_LAKE: u8 = 7;
    /// `status --max-age`: the newest committed window is older than allowed.
    pub const STALE: u8 = 8;
    /// Ctrl-C or SIGTERM.
    pub const INTERRUPTED: u8 = 130;

    /// The outcome an exit code stands for, in a word or two (for `status` and metrics).
    pub fn describe(code: u8) -> &'static str {
        match code {
            OK => "success",
            WINDOWS_FAILED => "windows failed",
            USAGE => "usage error",
            ACCESS => "access refused",
            DESTINATION => "destination failed",
            LEASE => "lease lost",
            NOT_EXACT => "not exact",
            NO_LAKE => "no lake",
            STALE => "stale",
            INTERRUPTED => "interrupted",
            _ => "failed",
        }
    }
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Run(Box<RunError>),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error(transparent)]
    Status(Box<StatusError>),
    #[error(transparent)]
    Ddl(Box<DdlError>),
    #[error("no audit log with id {0} (404)")]
    NotFound(i64),
    #[error("Zendesk allows 1 export request per minute per account and this minute's is used (429); try again in {retry_in}")]
    ExportThrottled { retry_in: String },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("--summary-json {}: {source}", path.display())]
    SummaryFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--metrics-file {}: {source}", path.display())]
    MetricsFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl From<StatusError> for Error {
    fn from(e: StatusError) -> Self {
        Error::Status(Box::new(e))
    }
}

impl From<DdlError> for Error {
    fn from(e: DdlError) -> Self {
        Error::Ddl(Box::new(e))
    }
}

impl From<RunError> for Error {
    fn from(e: RunError) -> Self {
        Error::Run(Box::new(e))
    }
}

impl Error {
    /// The exit code this failure ends the process with.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) | Error::Client(_) | Error::Listen { .. } => exit::USAGE,
            Error::SummaryFile { .. } | Error::MetricsFile { .. } => exit::USAGE,
            Error::Api(e) => api_code(e),
            Error::Run(e) => run_code(e),
            Error::Storage(_) => exit::DESTINATION,
            Error::Manifest(e) => manifest_code(e),
            Error::Verify(e) => verify_code(e),
            Error::Status(e) => match e.as_ref() {
                StatusError::NoLake { .. } => exit::NO_LAKE,
                StatusError::Manifest(e) => manifest_code(e),
                StatusError::Lease(_) | StatusError::Ledger(_) => exit::DESTINATION,
            },
            Error::Ddl(e) => ddl_code(e),
            Error::NotFound(_) | Error::ExportThrottled { .. } => exit::WINDOWS_FAILED,
        }
    }
}

fn api_code(e: &ApiError) -> u8 {
    if e.is_fatal_for_run() {
        exit::ACCESS
    } else {
        exit::WINDOWS_FAILED
    }
}

fn manifest_code(e: &ManifestError) -> u8 {
    match e {
        ManifestError::Mismatch { .. } | ManifestError::Legacy { .. } => exit::USAGE,
        _ => exit::DESTINATION,
    }
}

fn verify_code(e: &VerifyError) -> u8 {
    match e {
        VerifyError::Api(api) => api_code(api),
        VerifyError::NoDataset { .. } => exit::NO_LAKE,
        VerifyError::Manifest(m) => manifest_code(m),
        VerifyError::Grid(_) | VerifyError::Storage(_) => exit::DESTINATION,
    }
}

fn ddl_code(e: &DdlError) -> u8 {
    match e {
        DdlError::Manifest(m) => manifest_code(m),
        DdlError::Storage(_) => exit::DESTINATION,
        DdlError::NoLake { .. } | DdlError::NoSubdomain { .. } => exit::NO_LAKE,
        DdlError::SchemaVersion { .. } | DdlError::NoWindow { .. } => exit::USAGE,
    }
}

fn run_code(e: &RunError) -> u8 {
    match e {
        RunError::Manifest(m) => manifest_code(m),
        RunError::Client(_) | RunError::Config(_) | RunError::Simulator(_) => exit::USAGE,
        RunError::Authenticate(api) => api_code(api),
        RunError::Lease(
            LeaseError::Held { .. }
            | LeaseError::Lost { .. }
            | LeaseError::Expired { .. }
            | LeaseError::Released(_),
        ) => exit::LEASE,
        RunError::Commit(CommitError::Lease(_) | CommitError::Conflict { .. }) => exit::LEASE,
        RunError::Commit(CommitError::Manifest(m)) => manifest_code(m),
        RunError::Commit(CommitError::WouldDrop { .. }) => exit::WINDOWS_FAILED,
        RunError::Commit(CommitError::Unsettled { .. } | CommitError::Unauthorised { .. }) => {
            exit::NOT_EXACT
        }
        RunError::Interrupted => exit::INTERRUPTED,
        RunError::Verify(v) => verify_code(v),
        RunError::Storage(_) | RunError::Lease(_) | RunError::Commit(_) => exit::DESTINATION,
    }
}

impl Summary {
    /// The exit code of a finished export.
    pub fn exit_code(&self) -> u8 {
        if self.interrupted {
            exit::INTERRUPTED
        } else if self.lease_lost {
            exit::LEASE
        } else if self.store_failed {
            exit::DESTINATION
        } else if self.fatal.is_some() {
            exit::ACCESS
        } else if self.windows_failed > 0 || self.records_misordered > 0 {
            exit::WINDOWS_FAILED
        } else {
            exit::OK
        }
    }
}

impl Report {
    /// The exit code of `verify`.
    pub fn exit_code(&self) -> u8 {
        if self.is_clean() {
            exit::OK
        } else {
            exit::NOT_EXACT
        }
    }
}

impl RepairOutcome {
    /// The exit code of `repair`: what is left after it.
    pub fn exit_code(&self) -> u8 {
        if !self.failures.is_empty() {
            exit::WINDOWS_FAILED
        } else {
            self.after.exit_code()
        }
    }
}
