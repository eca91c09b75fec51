//! The Audit Logs API's operations, by path, and the list operation's page envelopes: the one
//! place each is spelled.

use serde::Deserialize;

/// The list operation (`GET`), both paginations; a window's count asks it too.
pub(crate) const LIST: &str = "/api/v2/audit_logs";

/// The export operation (`POST`): a CSV prepared by Zendesk, one request per minute.
pub(crate) const EXPORT: &str = "/api/v2/audit_logs/export";

/// The show operation (`GET`) of record `id`.
pub(crate) fn show(id: i64) -> String {
    format!("{LIST}/{id}")
}

/// A page of the list operation in its cursor form, as the API sends it: the records, then
/// `meta` and `links`. Every field the records do not need is optional here; each reader says
/// which it requires (pagination needs `meta.has_more`, a count can do without). `R` is what a
/// reader makes of the `audit_logs` array (ids only, or a few fields of each record).
#[derive(Deserialize)]
pub(crate) struct CursorPage<R> {
    pub(crate) audit_logs: R,
    pub(crate) meta: Option<CursorMeta>,
    pub(crate) links: Option<Links>,
}

/// A cursor page's `meta`. The cursor is kept as sent: pagination requires a string (or
/// null), a count never reads it.
#[derive(Deserialize)]
pub(crate) struct CursorMeta {
    pub(crate) has_more: Option<bool>,
    pub(crate) after_cursor: Option<serde_json::Value>,
}

/// A cursor page's `links`, `next` kept as sent (see [`CursorMeta`]).
#[derive(Deserialize)]
pub(crate) struct Links {
    pub(crate) next: Option<serde_json::Value>,
}

/// A page of the list operation in its offset form: the records, `next_page` and `count` (the
/// query's records, reported up to a cap).
#[derive(Deserialize)]
pub(crate) struct OffsetPage<R> {
    pub(crate) audit_logs: R,
    /// Kept as sent (see [`CursorMeta`]).
    pub(crate) next_page: Option<serde_json::Value>,
    pub(crate) count: Option<u64>,
}

/// A field of a page that is a string when present: its text, or why it is not one.
pub(crate) fn text(
    value: Option<serde_json::Value>,
    field: &str,
) -> Result<Option<String>, String> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(text)) => Ok(Some(text)),
        Some(other) => Err(format!("{field} is {other}, not a string")),
    }
}
