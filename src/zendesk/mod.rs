//! The Zendesk Audit Logs API, as auditlake uses it: one HTTP client per process with
//! authentication, a request budget shared by every worker, retries for what is transient, and
//! pages as a stream so callers never handle cursors.

pub mod auth;
pub mod budget;
pub mod client;
pub mod count;
pub mod error;
pub mod pagination;
pub mod query;
pub mod retry;
pub mod token;

pub use auth::Credentials;
pub use budget::RequestBudget;
pub use client::{Client, ClientOptions, ClientStats};
pub use error::{ApiError, ClientError, TokenRefusal};
pub use pagination::{Page, PageRequest, Pagination};
pub use query::Filters;
pub use retry::RetryPolicy;
