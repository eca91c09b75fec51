//! The Zendesk Audit Logs API, as auditlake uses it: one HTTP client per process with
//! authentication, a request budget shared by every worker, retries for what is transient, and
//! pages as a stream so callers never handle cursors.

// Credentials, kept out of every log line and message.
pub mod auth;
// The request budget every worker shares, learned from the API's rate-limit headers.
pub(crate) mod budget;
// The client and its one send path: budget, authorization, stats, retries.
pub(crate) mod client;
// How many records a window holds, asked of the API.
pub mod count;
// The API's operations by path.
pub(crate) mod endpoint;
// The client's errors, with the context a person needs.
pub(crate) mod error;
// Pages of the list operation as a stream.
pub(crate) mod pagination;
// Filters and the created_at range as query pairs.
pub(crate) mod query;
// What an answer means (transient or which error), backoff and Retry-After.
pub(crate) mod retry;
// The process's OAuth access token, minted once and renewed.
pub(crate) mod token;

pub use auth::Credentials;
pub use budget::{RequestBudget, DEFAULT_RATE_LIMIT_SHARE};
pub use client::{Client, ClientOptions, ClientStats, DEFAULT_REQUEST_TIMEOUT};
pub use error::{ApiError, ClientError, TokenRefusal};
pub use pagination::{Page, PageRequest, Pagination};
pub use query::{CreatedAtBounds, Filters, KnownBounds};
pub use retry::{
    RetryPolicy, DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_RETRY_TIME, DEFAULT_RETRY_BASE_DELAY,
};
