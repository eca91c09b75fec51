//! The Audit Logs API's operations, by path: the one place they are spelled.

/// The list operation (`GET`), both paginations; a window's count asks it too.
pub(crate) const LIST: &str = "/api/v2/audit_logs";

/// The export operation (`POST`): a CSV prepared by Zendesk, one request per minute.
pub(crate) const EXPORT: &str = "/api/v2/audit_logs/export";

/// The show operation (`GET`) of record `id`.
pub(crate) fn show(id: i64) -> String {
    format!("{LIST}/{id}")
}
