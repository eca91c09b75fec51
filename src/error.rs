//! The crate's one error.
//!
//! Each module keeps its own error enum, with the window, URL, status or path that a person needs
//! (`ApiError`, `StorageError`, `RunError`, ...). A command returns [`Error`], which wraps them;
//! `cmd/exit.rs` maps each to the documented exit code.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::config::ConfigError;
use crate::ddl::DdlError;
use crate::lake::manifest::ManifestError;
use crate::lake::storage::StorageError;
use crate::run::RunError;
use crate::status::StatusError;
use crate::verify::VerifyError;
use crate::zendesk::{ApiError, ClientError};

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
