//! Pages of the list operation as a stream: callers never see a cursor.
//!
//! Cursor pagination (the default) always sends `page[size]`, because without it the API silently
//! switches to offset pagination. A page counts as received only when its envelope parses, so a
//! truncated 200 is retried like any transient failure.

use std::collections::hash_map::RandomState;
use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::hash::BuildHasher;

use bytes::Bytes;
use futures::Stream;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::client::{ApiError, Client};
use super::query::{created_at_pairs, Filters};
use crate::window::format_rfc3339;

/// Records per page: the API's maximum, so a window takes the fewest requests.
pub const PAGE_SIZE: u32 = 100;

/// Records an offset query can reach before the API answers 400.
pub const OFFSET_CAP: u64 = 10_000;

/// How the list operation is paged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pagination {
    /// `page[size]` and `page[after]`: no depth limit, stable under concurrent inserts.
    #[default]
    Cursor,
    /// `page` and `per_page`: at most 10,000 records per query, rows shift when data changes.
    Offset,
}

/// One list query: filters and an optional closed `created_at` range (UTC seconds).
#[derive(Clone, Debug)]
pub struct PageRequest {
    pub filters: Filters,
    pub created_at: Option<(i64, i64)>,
    pub pagination: Pagination,
}

/// One page as received: the raw body (decoded later, on a worker thread) and its record count.
#[derive(Debug)]
pub struct Page {
    pub body: Bytes,
    pub records: usize,
    /// 1-based page number within the query.
    pub number: u32,
}

/// Pages in a row that may add no new record before the query fails. One such page can happen
/// without a fault (an empty last page that still says `has_more`); three in a row is a server
/// that stopped advancing, found after three wasted requests instead of thousands.
const NO_PROGRESS_LIMIT: u32 = 3;

/// Pages whose ids the progress check remembers: the stalled ones and the one before them, so a
/// server that repeats, or cycles through, up to this many pages under fresh cursors is caught.
const REMEMBERED_PAGES: usize = NO_PROGRESS_LIMIT as usize + 1;

/// Longest excerpt of a cursor kept in an error message.
const CURSOR_EXCERPT: usize = 80;

#[derive(Deserialize)]
struct CursorEnvelope {
    audit_logs: RecordIds,
    meta: CursorMeta,
    #[serde(default)]
    links: Option<Links>,
}

#[derive(Deserialize)]
struct Links {
    next: Option<String>,
}

#[derive(Deserialize)]
struct CursorMeta {
    has_more: bool,
    after_cursor: Option<String>,
}

#[derive(Deserialize)]
struct OffsetEnvelope {
    audit_logs: RecordIds,
    next_page: Option<String>,
    count: Option<u64>,
}

/// The `audit_logs` array reduced to what pagination needs: how many records, and the integer
/// `id` of each that has one. Every other field is skipped, not decoded (records are decoded once,
/// later, against the schema), so this costs one pass over the bytes and one `i64` per record.
struct RecordIds {
    count: usize,
    /// Ids in page order; records without an integer `id` are counted but not listed.
    ids: Vec<i64>,
}

impl<'de> Deserialize<'de> for RecordIds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RecordIds;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of records")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RecordIds, A::Error> {
                let mut ids = Vec::with_capacity(seq.size_hint().unwrap_or(PAGE_SIZE as usize));
                let mut count = 0;
                while let Some(RecordId(id)) = seq.next_element()? {
                    count += 1;
                    ids.extend(id);
                }
                Ok(RecordIds { count, ids })
            }
        }
        d.deserialize_seq(V)
    }
}

/// One record (a JSON object) reduced to its `id`, when that is an integer.
struct RecordId(Option<i64>);

impl<'de> Deserialize<'de> for RecordId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RecordId;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a record object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RecordId, A::Error> {
                let mut id = None;
                while let Some(IsId(is_id)) = map.next_key()? {
                    if is_id {
                        // A `Value` for a number does not allocate; an odd id (string, float) is
                        // left to the schema decode to report.
                        id = map.next_value::<serde_json::Value>()?.as_i64();
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(RecordId(id))
            }
        }
        d.deserialize_map(V)
    }
}

/// Whether an object key is `id`, without allocating the key.
struct IsId(bool);

impl<'de> Deserialize<'de> for IsId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = IsId;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<IsId, E> {
                Ok(IsId(key == "id"))
            }
            fn visit_bytes<E: serde::de::Error>(self, key: &[u8]) -> Result<IsId, E> {
                Ok(IsId(key == b"id"))
            }
        }
        d.deserialize_identifier(V)
    }
}

/// Parses a cursor page's envelope (records counted and their ids picked, nothing else decoded).
fn parse_cursor_envelope(body: &[u8]) -> Result<CursorEnvelope, String> {
    serde_json::from_slice(body).map_err(|e| e.to_string())
}

/// Parses an offset page's envelope (records counted and their ids picked, nothing else decoded).
fn parse_offset_envelope(body: &[u8]) -> Result<OffsetEnvelope, String> {
    serde_json::from_slice(body).map_err(|e| e.to_string())
}

enum Next {
    First,
    After(String),
    Offset(u32),
    Done,
}

/// What one query's stream has seen, to tell a server that stopped advancing from one that is
/// merely slow.
///
/// Memory stays bounded per query: cursors are kept as 64-bit hashes (8 bytes a page, so about
/// 160 KB for a 2-million-record window; a false "repeat" needs a hash collision, about 1 in
/// 10^10 for 20,000 pages), ids only for the last [`REMEMBERED_PAGES`] pages (at most 400), and
/// the distinct ids of an offset query, which the API caps at 10,000 records.
struct Progress {
    hasher: RandomState,
    cursors: HashSet<u64>,
    /// Sorted ids of the last pages, oldest first.
    recent: VecDeque<Vec<i64>>,
    /// Pages in a row that added no new record.
    stalled: u32,
    /// Offset queries only: distinct ids of the whole query, records without an id, and the
    /// `count` of the latest page (the latest is the truth if records arrived while paging).
    distinct: HashSet<i64>,
    without_id: u64,
    count: Option<u64>,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            hasher: RandomState::new(),
            cursors: HashSet::new(),
            recent: VecDeque::with_capacity(REMEMBERED_PAGES + 1),
            stalled: 0,
            distinct: HashSet::new(),
            without_id: 0,
            count: None,
        }
    }

    /// Notes that `cursor` is being used; false if this query already used it.
    fn first_use_of(&mut self, cursor: &str) -> bool {
        self.cursors.insert(self.hasher.hash_one(cursor))
    }

    /// Notes a page's records; the reason to give up once [`NO_PROGRESS_LIMIT`] pages in a row
    /// added no record the last pages had not already brought.
    fn page(&mut self, records: usize, ids: &[i64]) -> Result<(), String> {
        let mut sorted = ids.to_vec();
        sorted.sort_unstable();
        // Records without an id cannot be compared: they count as new (the schema decode rejects
        // them anyway).
        let new = records > ids.len()
            || sorted
                .iter()
                .any(|id| !self.recent.iter().any(|p| p.binary_search(id).is_ok()));
        self.recent.push_back(sorted);
        if self.recent.len() > REMEMBERED_PAGES {
            self.recent.pop_front();
        }
        if new {
            self.stalled = 0;
            return Ok(());
        }
        self.stalled += 1;
        if self.stalled >= NO_PROGRESS_LIMIT {
            return Err(format!(
                "{} pages in a row brought no record that the previous pages had not already \
                 brought ({records} records on the last)",
                self.stalled
            ));
        }
        Ok(())
    }

    /// Offset queries: notes a page's ids and the query's `count`.
    fn offset_page(&mut self, records: usize, ids: &[i64], count: Option<u64>) {
        self.distinct.extend(ids.iter().copied());
        self.without_id += (records - ids.len()) as u64;
        self.count = count.or(self.count);
    }

    /// Offset queries, after the last page: distinct records received, against `count`.
    fn offset_totals(&self) -> (u64, Option<u64>) {
        (self.distinct.len() as u64 + self.without_id, self.count)
    }
}

/// The start of a cursor, for an error message (cursors are opaque, not secret, but long).
fn excerpt(cursor: &str) -> String {
    match cursor.char_indices().nth(CURSOR_EXCERPT) {
        Some((cut, _)) => format!("{}…", &cursor[..cut]),
        None => cursor.to_string(),
    }
}

/// The pages of one query, in order. The stream ends after the last page or the first error.
///
/// It also ends, with [`ApiError::PaginationLoop`], when the API hands back a cursor this query
/// already used or when pages stop bringing new records, and, for offset queries, with
/// [`ApiError::CountMismatch`] when the distinct records received differ from the API's `count`.
pub fn pages(client: Client, request: PageRequest) -> impl Stream<Item = Result<Page, ApiError>> {
    futures::stream::try_unfold(
        (Next::First, 0u32, Progress::new()),
        move |(next, number, mut progress)| {
            let client = client.clone();
            let request = request.clone();
            async move {
                let number = number + 1;
                let (page, next) = match (next, request.pagination) {
                    (Next::Done, _) => return Ok(None),
                    (Next::First, Pagination::Cursor) => {
                        cursor_page(&client, &request, None, number, &mut progress).await?
                    }
                    (Next::After(cursor), _) => {
                        cursor_page(&client, &request, Some(cursor), number, &mut progress).await?
                    }
                    (Next::First, Pagination::Offset) => {
                        offset_page(&client, &request, 1, number, &mut progress).await?
                    }
                    (Next::Offset(page), _) => {
                        offset_page(&client, &request, page, number, &mut progress).await?
                    }
                };
                Ok(Some((page, (next, number, progress))))
            }
        },
    )
}

fn base_pairs(request: &PageRequest) -> Vec<(&'static str, String)> {
    let mut pairs = Vec::new();
    if let Some((start, end)) = request.created_at {
        pairs.extend(created_at_pairs(start, end));
    }
    pairs.extend(request.filters.pairs());
    pairs
}

async fn cursor_page(
    client: &Client,
    request: &PageRequest,
    after: Option<String>,
    number: u32,
    progress: &mut Progress,
) -> Result<(Page, Next), ApiError> {
    let mut pairs = base_pairs(request);
    pairs.push(("sort", "created_at".into()));
    pairs.push(("page[size]", PAGE_SIZE.to_string()));
    if let Some(cursor) = &after {
        pairs.push(("page[after]", cursor.clone()));
    }
    let url = client.url("/api/v2/audit_logs", &pairs);
    let result = client.get(&url, parse_cursor_envelope).await;
    let (body, envelope) = match result {
        Ok(ok) => ok,
        // The first page of this query was accepted, so a later refusal is the cursor's (expired
        // or unknown): the caller restarts the window.
        Err(ApiError::Rejected {
            url,
            status,
            detail,
        }) if after.is_some() => {
            return Err(ApiError::CursorRefused {
                url,
                status,
                detail,
            })
        }
        Err(ApiError::NotFound { url }) if after.is_some() => {
            return Err(ApiError::CursorRefused {
                url,
                status: 404,
                detail: "not found".into(),
            })
        }
        Err(e) => return Err(e),
    };
    let stalled = |cursor: &str, reason: String| ApiError::PaginationLoop {
        url: url.to_string(),
        cursor: excerpt(cursor),
        reason,
    };
    let current = after.as_deref().unwrap_or("(first page)");
    progress
        .page(envelope.audit_logs.count, &envelope.audit_logs.ids)
        .map_err(|reason| stalled(current, reason))?;
    let after_cursor = next_cursor(envelope.meta.after_cursor, envelope.links);
    let next = match (envelope.meta.has_more, after_cursor) {
        (false, _) => Next::Done,
        (true, Some(cursor)) if !cursor.is_empty() => {
            if !progress.first_use_of(&cursor) {
                let reason = if Some(&cursor) == after.as_ref() {
                    "the next-page cursor repeats the current one".to_string()
                } else {
                    format!("page {number} hands back a cursor an earlier page of this query already used, so the pages would cycle")
                };
                return Err(stalled(&cursor, reason));
            }
            Next::After(cursor)
        }
        (true, _) => {
            return Err(ApiError::Protocol {
                url: url.to_string(),
                reason: "meta.has_more is true but meta.after_cursor is missing".into(),
            })
        }
    };
    let page = Page {
        body,
        records: envelope.audit_logs.count,
        number,
    };
    Ok((page, next))
}

/// The next page's cursor. The API documents both `meta.after_cursor` and `links.next`; the
/// cursor is preferred (it goes into our own query, to our own host), the `page[after]` of the
/// link is the fallback.
fn next_cursor(after_cursor: Option<String>, links: Option<Links>) -> Option<String> {
    after_cursor.filter(|c| !c.is_empty()).or_else(|| {
        let next = url::Url::parse(links?.next.as_deref()?).ok()?;
        let cursor = next
            .query_pairs()
            .find(|(k, _)| k == "page[after]")
            .map(|(_, v)| v.into_owned());
        cursor
    })
}

async fn offset_page(
    client: &Client,
    request: &PageRequest,
    page_number: u32,
    number: u32,
    progress: &mut Progress,
) -> Result<(Page, Next), ApiError> {
    let mut pairs = base_pairs(request);
    pairs.push(("sort_by", "created_at".into()));
    pairs.push(("sort_order", "asc".into()));
    pairs.push(("per_page", PAGE_SIZE.to_string()));
    pairs.push(("page", page_number.to_string()));
    let url = client.url("/api/v2/audit_logs", &pairs);
    let result = client.get(&url, parse_offset_envelope).await;
    let reached = u64::from(page_number) * u64::from(PAGE_SIZE);
    let (body, envelope) = match result {
        Ok(ok) => ok,
        Err(ApiError::Rejected {
            url, status: 400, ..
        }) if reached > OFFSET_CAP => {
            return Err(ApiError::OffsetCap {
                url,
                count: reached,
            })
        }
        Err(e) => return Err(e),
    };
    // Fail before reading 100 pages that cannot be completed.
    if let Some(count) = envelope.count.filter(|&c| c > OFFSET_CAP) {
        return Err(ApiError::OffsetCap {
            url: url.to_string(),
            count,
        });
    }
    let records = envelope.audit_logs.count;
    let ids = &envelope.audit_logs.ids;
    progress
        .page(records, ids)
        .map_err(|reason| ApiError::PaginationLoop {
            url: url.to_string(),
            cursor: format!("page={page_number}"),
            reason,
        })?;
    progress.offset_page(records, ids, envelope.count);
    let next = match envelope.next_page {
        Some(_) if records > 0 => Next::Offset(page_number + 1),
        _ => Next::Done,
    };
    if matches!(next, Next::Done) {
        check_offset_count(request, &url, progress)?;
    }
    let page = Page {
        body,
        records,
        number,
    };
    Ok((page, next))
}

/// After an offset query's last page: offset pages are positions in a list that shifts when
/// records are added or removed, or when ties on `created_at` are ordered differently on two
/// requests, so a record can slip across a page boundary unseen. The distinct ids received must
/// add up to the `count` the API gives for exactly this query.
fn check_offset_count(
    request: &PageRequest,
    url: &url::Url,
    progress: &Progress,
) -> Result<(), ApiError> {
    let (got, count) = progress.offset_totals();
    let Some(expected) = count else {
        tracing::warn!(url = %url, "offset response without a count: rows received cannot be checked");
        return Ok(());
    };
    if got == expected {
        return Ok(());
    }
    let range = match request.created_at {
        Some((start, end)) => format!("{}..{}", format_rfc3339(start), format_rfc3339(end)),
        None => "(all time)".to_string(),
    };
    Err(ApiError::CountMismatch {
        url: url.to_string(),
        range,
        expected,
        got,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_cursor_falls_back_to_links_next() {
        let body = br#"{"audit_logs":[],"meta":{"has_more":true},"links":{"next":"https://acme.zendesk.com/api/v2/audit_logs?page%5Bafter%5D=xyz&page%5Bsize%5D=100"}}"#;
        let e: CursorEnvelope = serde_json::from_slice(body).unwrap();
        assert_eq!(e.meta.after_cursor, None);
        let next = url::Url::parse(e.links.unwrap().next.as_deref().unwrap()).unwrap();
        assert!(next
            .query_pairs()
            .any(|(k, v)| k == "page[after]" && v == "xyz"));
    }

    #[test]
    fn envelopes_parse_without_decoding_records() {
        let body = br#"{"audit_logs":[{"id":1},{"anything":[1,2]}],"meta":{"has_more":true,"after_cursor":"abc","before_cursor":null},"links":{"next":"x","prev":null}}"#;
        let e: CursorEnvelope = serde_json::from_slice(body).unwrap();
        assert_eq!(e.audit_logs.0, 2);
        assert!(e.meta.has_more);
        assert_eq!(e.meta.after_cursor.as_deref(), Some("abc"));
        let truncated = &body[..body.len() / 2];
        assert!(serde_json::from_slice::<CursorEnvelope>(truncated).is_err());
        let offset = br#"{"audit_logs":[],"next_page":null,"previous_page":null,"count":0}"#;
        let o: OffsetEnvelope = serde_json::from_slice(offset).unwrap();
        assert_eq!((o.audit_logs.0, o.count), (0, Some(0)));
    }
}
