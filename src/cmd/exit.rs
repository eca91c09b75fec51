//! The one place where an outcome becomes an exit code: a run's summary, a verify report, a
//! repair, or an error. The stages report what happened; only this module numbers it, as
//! `--help` and the README document.

use crate::ddl::DdlError;
use crate::lake::commit::CommitError;
use crate::lake::lease::LeaseError;
use crate::lake::manifest::ManifestError;
use crate::run::{Outcome, RepairOutcome, RunError, Summary};
use crate::status::StatusError;
use crate::verify::{Report, VerifyError};
use crate::zendesk::ApiError;
use crate::Error;

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

impl Error {
    /// The exit code this failure ends the process with.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) | Error::Client(_) | Error::Listen { .. } => USAGE,
            Error::SummaryFile { .. } | Error::MetricsFile { .. } => USAGE,
            Error::Api(e) => api_code(e),
            Error::Run(e) => run_code(e),
            Error::Storage(_) => DESTINATION,
            Error::Manifest(e) => manifest_code(e),
            Error::Verify(e) => verify_code(e),
            Error::Status(e) => match e.as_ref() {
                StatusError::NoLake { .. } => NO_LAKE,
                StatusError::Manifest(e) => manifest_code(e),
                StatusError::Lease(_) | StatusError::Ledger(_) => DESTINATION,
            },
            Error::Ddl(e) => ddl_code(e),
            Error::NotFound(_) | Error::ExportThrottled { .. } => WINDOWS_FAILED,
        }
    }
}

fn api_code(e: &ApiError) -> u8 {
    if e.is_fatal_for_run() {
        ACCESS
    } else {
        WINDOWS_FAILED
    }
}

fn manifest_code(e: &ManifestError) -> u8 {
    match e {
        ManifestError::Mismatch { .. } | ManifestError::Legacy { .. } => USAGE,
        _ => DESTINATION,
    }
}

fn verify_code(e: &VerifyError) -> u8 {
    match e {
        VerifyError::Api(api) => api_code(api),
        VerifyError::NoDataset { .. } => NO_LAKE,
        VerifyError::Manifest(m) => manifest_code(m),
        VerifyError::Grid(_) | VerifyError::Storage(_) => DESTINATION,
    }
}

fn ddl_code(e: &DdlError) -> u8 {
    match e {
        DdlError::Manifest(m) => manifest_code(m),
        DdlError::Storage(_) => DESTINATION,
        DdlError::NoLake { .. } | DdlError::NoSubdomain { .. } => NO_LAKE,
        DdlError::SchemaVersion { .. } | DdlError::NoWindow { .. } => USAGE,
    }
}

fn run_code(e: &RunError) -> u8 {
    match e {
        RunError::Manifest(m) => manifest_code(m),
        RunError::Client(_) | RunError::Refused(_) | RunError::Simulator(_) => USAGE,
        RunError::Authenticate(api) => api_code(api),
        RunError::Lease(
            LeaseError::Held { .. }
            | LeaseError::Lost { .. }
            | LeaseError::Expired { .. }
            | LeaseError::Released(_),
        ) => LEASE,
        RunError::Commit(CommitError::Lease(_) | CommitError::Conflict { .. }) => LEASE,
        RunError::Commit(CommitError::Manifest(m)) => manifest_code(m),
        RunError::Commit(CommitError::WouldDrop { .. }) => WINDOWS_FAILED,
        RunError::Commit(CommitError::Unsettled { .. } | CommitError::Unauthorised { .. }) => {
            NOT_EXACT
        }
        RunError::Interrupted => INTERRUPTED,
        RunError::Verify(v) => verify_code(v),
        RunError::Storage(_) | RunError::Lease(_) | RunError::Commit(_) => DESTINATION,
    }
}

/// The exit code of a run's outcome.
pub fn of_outcome(outcome: Outcome) -> u8 {
    match outcome {
        Outcome::Interrupted => INTERRUPTED,
        Outcome::LeaseLost => LEASE,
        Outcome::DestinationFailed => DESTINATION,
        Outcome::AccessRefused => ACCESS,
        Outcome::WindowsFailed => WINDOWS_FAILED,
        Outcome::Done => OK,
    }
}

impl Summary {
    /// The exit code of a finished export.
    pub fn exit_code(&self) -> u8 {
        of_outcome(self.outcome())
    }
}

impl Report {
    /// The exit code of `verify`.
    pub fn exit_code(&self) -> u8 {
        if self.is_clean() {
            OK
        } else {
            NOT_EXACT
        }
    }
}

impl RepairOutcome {
    /// The exit code of `repair`: what is left after it.
    pub fn exit_code(&self) -> u8 {
        if !self.failures.is_empty() {
            WINDOWS_FAILED
        } else {
            self.after.exit_code()
        }
    }
}
