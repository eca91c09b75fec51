//! Pages of the list operation as a stream: callers never see a cursor.
//!
//! Cursor pagination (the default) always sends `page[size]`, because without it the API silently
//! switches to offset pagination. A page counts as received only when its envelope parses, so a
//! truncated 200 is retried like any transient failure.
//!
//! Only the cursor form has a documented order (`sort=created_at`, ascending across seconds).
//! Nothing documents an order parameter for the offset form: it may serve its pages newest first,
//! or in any order, whatever `sort_by`/`sort_order` say. So nothing here about an offset query
//! depends on order (its check is by distinct ids against `count`), its pages carry no
//! [`Page::last_created_at`], and a caller that needs the first records in time order (where the
//! data starts, say) asks the cursor form.

use std::collections::hash_map::RandomState;
use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::hash::BuildHasher;

use bytes::Bytes;
use futures::Stream;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::client::Client;
use super::endpoint::{text, CursorPage, OffsetPage};
use super::error::ApiError;
use super::query::{created_at_pairs, Filters};
use crate::units::time::format_rfc3339;

/// Records per page: the API's maximum, so a window takes the fewest requests.
pub const PAGE_SIZE: u32 = 100;

/// Records an offset query can reach before the API answers 400.
pub const OFFSET_CAP: u64 = 10_000;

/// How the list operation is paged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
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
    /// The `created_at` of the page's last record, as sent: how far a stream sorted by
    /// `created_at` has come, known before the page is decoded. Cursor pages only: an offset
    /// page's last record says nothing of how far its query has come (the offset form's order is
    /// undocumented, and may be newest first), so it is always `None` there.
    pub last_created_at: Option<String>,
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

/// A cursor page as pagination reads it: the records' count and ids, and where the query goes
/// on. `meta.has_more` is required: without it no page can say it is the last.
pub(crate) struct CursorEnvelope {
    audit_logs: RecordIds,
    has_more: bool,
    after_cursor: Option<String>,
    /// `links.next`: the next page's URL.
    links_next: Option<String>,
}

/// An offset page as pagination reads it.
pub(crate) type OffsetEnvelope = OffsetPage<RecordIds>;

/// The `audit_logs` array reduced to what pagination needs: how many records, and the integer
/// `id` of each that has one. Every other field is skipped, not decoded (records are decoded once,
/// later, against the schema), so this costs one pass over the bytes and one `i64` per record.
pub(crate) struct RecordIds {
    count: usize,
    /// Ids in page order; records without an integer `id` are counted but not listed.
    ids: Vec<i64>,
    /// The first and the last record's `created_at`, when they are strings.
    first_created_at: Option<String>,
    last_created_at: Option<String>,
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
                let (mut first_created_at, mut last_created_at) = (None, None);
                while let Some(RecordId(id, created_at)) = seq.next_element()? {
                    if count == 0 {
                        first_created_at.clone_from(&created_at);
                    }
                    count += 1;
                    ids.extend(id);
                    last_created_at = created_at;
                }
                Ok(RecordIds {
                    count,
                    ids,
                    first_created_at,
                    last_created_at,
                })
            }
        }
        d.deserialize_seq(V)
    }
}

/// One record (a JSON object) reduced to its `id`, when that is an integer, and its `created_at`,
/// when that is a string.
struct RecordId(Option<i64>, Option<String>);

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
                let mut created_at = None;
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        // A `Value` for a number does not allocate; an odd id (string, float) is
                        // left to the schema decode to report.
                        Key::Id => id = map.next_value::<serde_json::Value>()?.as_i64(),
                        Key::CreatedAt => {
                            created_at = match map.next_value::<serde_json::Value>()? {
                                serde_json::Value::String(text) => Some(text),
                                _ => None,
                            }
                        }
                        Key::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(RecordId(id, created_at))
            }
        }
        d.deserialize_map(V)
    }
}

/// The keys pagination looks at, without allocating the key.
enum Key {
    Id,
    CreatedAt,
    Other,
}

impl Key {
    fn of(key: &[u8]) -> Key {
        match key {
            b"id" => Key::Id,
            b"created_at" => Key::CreatedAt,
            _ => Key::Other,
        }
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Key, E> {
                Ok(Key::of(key.as_bytes()))
            }
            fn visit_bytes<E: serde::de::Error>(self, key: &[u8]) -> Result<Key, E> {
                Ok(Key::of(key))
            }
        }
        d.deserialize_identifier(V)
    }
}

/// Parses a cursor page's envelope (records counted and their ids picked, nothing else decoded).
pub(crate) fn parse_cursor_envelope(body: &[u8]) -> Result<CursorEnvelope, String> {
    let page: CursorPage<RecordIds> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let meta = page.meta.ok_or("missing field `meta`")?;
    Ok(CursorEnvelope {
        audit_logs: page.audit_logs,
        has_more: meta.has_more.ok_or("missing field `meta.has_more`")?,
        after_cursor: text(meta.after_cursor, "meta.after_cursor")?,
        links_next: text(page.links.and_then(|l| l.next), "links.next")?,
    })
}

/// Parses an offset page's envelope (records counted and their ids picked, nothing else decoded).
pub(crate) fn parse_offset_envelope(body: &[u8]) -> Result<OffsetEnvelope, String> {
    let page: OffsetEnvelope = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    text(page.next_page.clone(), "next_page")?;
    Ok(page)
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
/// Memory stays small per query: cursors are kept as 64-bit hashes (one per page, so about
/// 20,000 hashes, a few hundred KB, for a 2-million-record window, against the records' own 100
/// per page; a false "repeat" needs a hash collision, about 1 in 10^11 at 20,000 pages), ids only
/// for the last [`REMEMBERED_PAGES`] pages (at most 400), and, for offset queries only, their
/// distinct ids, which the API's 10,000-record cap per offset query bounds.
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

/// The pages of one query, in the API's page order. The stream ends after the last page or the
/// first error. Cursor pages come in ascending `created_at` across seconds (as documented); offset
/// pages in whatever order the API serves them (see the module documentation).
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
    let url = client.url(crate::zendesk::endpoint::LIST, &pairs);
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
    let after_cursor = next_cursor(envelope.after_cursor, envelope.links_next);
    let next = match (envelope.has_more, after_cursor) {
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
    learn_bounds(client, request, &envelope.audit_logs);
    let page = Page {
        body,
        records: envelope.audit_logs.count,
        last_created_at: envelope.audit_logs.last_created_at,
        number,
    };
    Ok((page, next))
}

/// What a page sorted by `created_at` proves of the query's undocumented bounds: a record of the
/// lower bound's own second (the first record, ascending) or of the upper bound's (the last)
/// shows that bound includes its second. Every listing teaches the counts this way, for free.
fn learn_bounds(client: &Client, request: &PageRequest, records: &RecordIds) {
    let Some((low, high)) = request.created_at else {
        return;
    };
    let second = |t: &Option<String>| {
        t.as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.timestamp())
    };
    let (Some(first), Some(last)) = (
        second(&records.first_created_at),
        second(&records.last_created_at),
    ) else {
        return;
    };
    // A page reaching outside the query's range says the filter was not applied as sent (or
    // the page is not in order): it proves nothing about the bounds.
    if first < low || last > high || first > last {
        return;
    }
    if first == low {
        client.created_at_bounds().learn_inclusive(true);
    }
    if last == high {
        client.created_at_bounds().learn_inclusive(false);
    }
}

/// The next page's cursor. The API documents both `meta.after_cursor` and `links.next`; the
/// cursor is preferred (it goes into our own query, to our own host), the `page[after]` of the
/// link is the fallback.
fn next_cursor(after_cursor: Option<String>, links_next: Option<String>) -> Option<String> {
    after_cursor.filter(|c| !c.is_empty()).or_else(|| {
        let next = url::Url::parse(links_next.as_deref()?).ok()?;
        let cursor = next
            .query_pairs()
            .find(|(k, _)| k == "page[after]")
            .map(|(_, v)| v.into_owned());
        cursor
    })
}

/// Page `page_number` of an offset query. Order-independent: the query's pages are followed by
/// `next_page` alone (never by how far the records' `created_at` has come), and its records are
/// checked by distinct id against `count` after the last page, so the query is exact (or fails)
/// whether the API serves it ascending, newest first or in any order.
async fn offset_page(
    client: &Client,
    request: &PageRequest,
    page_number: u32,
    number: u32,
    progress: &mut Progress,
) -> Result<(Page, Next), ApiError> {
    let mut pairs = base_pairs(request);
    // A hint only: an API that honours it serves ascending pages, whose files are then sorted;
    // nothing documents it for the offset form, so nothing relies on it.
    pairs.push(("sort_by", "created_at".into()));
    pairs.push(("sort_order", "asc".into()));
    pairs.push(("per_page", PAGE_SIZE.to_string()));
    pairs.push(("page", page_number.to_string()));
    let url = client.url(crate::zendesk::endpoint::LIST, &pairs);
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
        // The last record of an offset page need not be the latest so far (see `Page`).
        last_created_at: None,
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
        let e = parse_cursor_envelope(body).unwrap();
        assert_eq!(e.after_cursor, None);
        let next = url::Url::parse(e.links_next.as_deref().unwrap()).unwrap();
        assert!(next
            .query_pairs()
            .any(|(k, v)| k == "page[after]" && v == "xyz"));
    }

    #[test]
    fn envelopes_parse_without_decoding_records() {
        let body = br#"{"audit_logs":[{"id":1},{"anything":[1,2]}],"meta":{"has_more":true,"after_cursor":"abc","before_cursor":null},"links":{"next":"x","prev":null}}"#;
        let e = parse_cursor_envelope(body).unwrap();
        assert_eq!(e.audit_logs.count, 2);
        assert_eq!(e.audit_logs.ids, vec![1]);
        assert!(e.has_more);
        assert_eq!(e.after_cursor.as_deref(), Some("abc"));
        let truncated = &body[..body.len() / 2];
        assert!(parse_cursor_envelope(truncated).is_err());
        // Without `meta.has_more` no page can say it is the last: unparseable for pagination.
        assert!(parse_cursor_envelope(br#"{"audit_logs":[]}"#).is_err());
        assert!(parse_cursor_envelope(br#"{"audit_logs":[],"meta":{}}"#).is_err());
        // A cursor or a next page that is not a string is refused, as before the envelopes
        // were shared with the counts (which never read them).
        let odd = br#"{"audit_logs":[],"meta":{"has_more":true,"after_cursor":7}}"#;
        assert!(parse_cursor_envelope(odd).is_err());
        let odd = br#"{"audit_logs":[],"meta":{"has_more":true},"links":{"next":[]}}"#;
        assert!(parse_cursor_envelope(odd).is_err());
        assert!(parse_offset_envelope(br#"{"audit_logs":[],"next_page":3}"#).is_err());
        let offset = br#"{"audit_logs":[],"next_page":null,"previous_page":null,"count":0}"#;
        let o: OffsetEnvelope = serde_json::from_slice(offset).unwrap();
        assert_eq!((o.audit_logs.count, o.count), (0, Some(0)));
    }

    #[test]
    fn record_ids_are_picked_from_the_top_level_of_each_record_only() {
        let body = br#"{"audit_logs":[
            {"actor":{"id":9},"id":1,"changes":[{"id":8}]},
            {"id":"not a number"},
            {"id":12.5},
            {"source_id":3},
            {"\u0069d":4},
            {"id":9223372036854775807}
        ],"next_page":null,"count":6}"#;
        let o = parse_offset_envelope(body).unwrap();
        assert_eq!(o.audit_logs.count, 6);
        assert_eq!(o.audit_logs.ids, vec![1, 4, i64::MAX]);
    }

    #[test]
    fn a_record_that_is_not_an_object_makes_the_page_unparseable() {
        assert!(parse_cursor_envelope(br#"{"audit_logs":[1],"meta":{"has_more":false}}"#).is_err());
    }

    #[test]
    fn progress_tolerates_two_stalled_pages_and_fails_on_the_third() {
        let mut p = Progress::new();
        assert!(p.page(2, &[1, 2]).is_ok());
        assert!(p.page(0, &[]).is_ok(), "one empty page");
        assert!(p.page(2, &[2, 1]).is_ok(), "a repeat");
        assert!(p.page(1, &[3]).is_ok(), "a new record resets the count");
        assert!(p.page(1, &[3]).is_ok());
        assert!(p.page(2, &[1, 3]).is_ok());
        let err = p.page(1, &[3]).unwrap_err();
        assert!(err.starts_with("3 pages in a row"), "{err}");
    }

    #[test]
    fn records_without_ids_count_as_progress() {
        let mut p = Progress::new();
        for _ in 0..10 {
            assert!(p.page(2, &[1]).is_ok());
        }
        assert_eq!(p.stalled, 0);
    }

    #[test]
    fn a_cursor_is_reported_used_the_second_time_only() {
        let mut p = Progress::new();
        assert!(p.first_use_of("A"));
        assert!(p.first_use_of("B"));
        assert!(!p.first_use_of("A"));
    }

    mod never_panics {
        //! Whatever the network sends, the envelope parsers answer (often with an error), never
        //! panic, and valid envelopes give back their records' count and ids.

        use proptest::prelude::*;

        use super::super::*;

        fn records(ids: &[Option<i64>]) -> String {
            let records: Vec<String> = ids
                .iter()
                .map(|id| match id {
                    Some(id) => format!(r#"{{"action":"update","id":{id},"actor":{{"id":1}}}}"#),
                    None => r#"{"action":"create"}"#.to_string(),
                })
                .collect();
            records.join(",")
        }

        proptest! {
            #[test]
            fn any_bytes_are_an_envelope_or_an_error(body in proptest::collection::vec(any::<u8>(), 0..400)) {
                let _ = parse_cursor_envelope(&body);
                let _ = parse_offset_envelope(&body);
            }

            #[test]
            fn any_text_is_an_envelope_or_an_error(body in r#"[{}\[\]":,0-9a-z_ .-]{0,200}"#) {
                let _ = parse_cursor_envelope(body.as_bytes());
                let _ = parse_offset_envelope(body.as_bytes());
            }

            #[test]
            fn any_next_link_is_a_cursor_or_none(after in proptest::option::of(".{0,40}"), next in proptest::option::of(".{0,80}")) {
                let _ = next_cursor(after, next);
            }

            #[test]
            fn valid_envelopes_give_their_count_and_ids(
                ids in proptest::collection::vec(proptest::option::of(any::<i64>()), 0..120),
                cursor in "[A-Za-z0-9=_-]{1,40}",
                count in any::<u64>(),
            ) {
                let expected: Vec<i64> = ids.iter().flatten().copied().collect();
                let body = format!(
                    r#"{{"audit_logs":[{}],"meta":{{"has_more":true,"after_cursor":"{cursor}"}},"links":{{"next":null}}}}"#,
                    records(&ids)
                );
                let e = parse_cursor_envelope(body.as_bytes()).unwrap();
                prop_assert_eq!(e.audit_logs.count, ids.len());
                prop_assert_eq!(&e.audit_logs.ids, &expected);
                prop_assert_eq!(e.after_cursor, Some(cursor));
                let body = format!(
                    r#"{{"audit_logs":[{}],"next_page":null,"count":{count}}}"#,
                    records(&ids)
                );
                let o = parse_offset_envelope(body.as_bytes()).unwrap();
                prop_assert_eq!(o.audit_logs.count, ids.len());
                prop_assert_eq!(&o.audit_logs.ids, &expected);
                prop_assert_eq!(o.count, Some(count));
                // Cut anywhere, a valid envelope no longer parses: a truncated 200 is retried.
                let cut = body.len() * 2 / 3;
                prop_assert!(parse_offset_envelope(&body.as_bytes()[..cut]).is_err());
            }
        }
    }

    mod server {
        //! A scripted API on 127.0.0.1: each test says what every page request answers.

        use std::collections::HashMap;
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;

        use axum::extract::RawQuery;
        use futures::StreamExt;

        use super::super::*;

        type Script = dyn Fn(&HashMap<String, String>) -> String + Send + Sync;

        /// Serves `script` (query parameters to JSON body) and returns a client for it and the
        /// number of requests served so far.
        async fn serve(script: Arc<Script>) -> (Client, Arc<AtomicUsize>) {
            let served = Arc::new(AtomicUsize::new(0));
            let counter = served.clone();
            let app = axum::Router::new().fallback(move |RawQuery(query): RawQuery| {
                let script = script.clone();
                let counter = counter.clone();
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let params: HashMap<String, String> =
                        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                            .into_owned()
                            .collect();
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        script(&params),
                    )
                }
            });
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, app).await });
            let client = crate::zendesk::client::test_client(&format!("http://{addr}"), 2, true);
            (client, served)
        }

        fn request(pagination: Pagination) -> PageRequest {
            PageRequest {
                filters: Filters::default(),
                created_at: Some((1_704_067_200, 1_704_153_600)),
                pagination,
            }
        }

        fn cursor_body(ids: &[i64], after: Option<&str>) -> String {
            let records: Vec<String> = ids.iter().map(|id| format!(r#"{{"id":{id}}}"#)).collect();
            let meta = match after {
                Some(c) => format!(r#"{{"has_more":true,"after_cursor":"{c}"}}"#),
                None => r#"{"has_more":false,"after_cursor":null}"#.to_string(),
            };
            format!(r#"{{"audit_logs":[{}],"meta":{meta}}}"#, records.join(","))
        }

        fn offset_body(ids: &[i64], last: bool, count: u64) -> String {
            let records: Vec<String> = ids.iter().map(|id| format!(r#"{{"id":{id}}}"#)).collect();
            let next = if last { "null" } else { r#""next""# };
            format!(
                r#"{{"audit_logs":[{}],"next_page":{next},"count":{count}}}"#,
                records.join(",")
            )
        }

        /// Up to `limit` items of the stream (a looping stream never ends by itself).
        async fn first(
            client: Client,
            request: PageRequest,
            limit: usize,
        ) -> Vec<Result<Page, ApiError>> {
            pages(client, request).take(limit).collect().await
        }

        #[tokio::test]
        async fn a_cursor_cycle_a_b_a_fails_the_query_once_the_cursor_comes_back() {
            let (client, served) = serve(Arc::new(|q: &HashMap<String, String>| {
                match q.get("page[after]").map(String::as_str) {
                    None => cursor_body(&[1, 2], Some("A")),
                    Some("A") => cursor_body(&[3, 4], Some("B")),
                    Some(_) => cursor_body(&[5, 6], Some("A")),
                }
            }))
            .await;
            let items = first(client, request(Pagination::Cursor), 50).await;
            assert_eq!(items.len(), 3, "two pages, then the error");
            assert!(items[..2].iter().all(Result::is_ok));
            match &items[2] {
                Err(ApiError::PaginationLoop {
                    url,
                    cursor,
                    reason,
                }) => {
                    assert_eq!(cursor, "A");
                    assert!(url.contains("page%5Bafter%5D=B"), "{url}");
                    assert!(reason.contains("already used"), "{reason}");
                }
                other => panic!("expected a pagination loop, got {other:?}"),
            }
            assert_eq!(
                served.load(Ordering::SeqCst),
                3,
                "cursor A is not requested twice"
            );
        }

        #[tokio::test]
        async fn fresh_cursors_over_the_same_records_fail_after_three_pages_without_progress() {
            let (client, served) = serve(Arc::new(|q: &HashMap<String, String>| {
                let n: u32 = q
                    .get("page[after]")
                    .map_or(0, |c| c.trim_start_matches('c').parse().unwrap());
                cursor_body(&[7, 8, 9], Some(&format!("c{}", n + 1)))
            }))
            .await;
            let items = first(client, request(Pagination::Cursor), 50).await;
            assert_eq!(items.len(), 4, "{items:?}");
            assert!(items[..3].iter().all(Result::is_ok));
            let err = items[3].as_ref().unwrap_err();
            assert!(
                matches!(err, ApiError::PaginationLoop { cursor, .. } if cursor == "c3"),
                "{err}"
            );
            assert!(!err.is_fatal_for_run());
            assert!(err.to_string().contains("3 pages in a row"), "{err}");
            assert_eq!(served.load(Ordering::SeqCst), 4);
        }

        #[tokio::test]
        async fn a_cursor_query_that_advances_ends_normally_even_with_an_empty_page() {
            let (client, _) = serve(Arc::new(|q: &HashMap<String, String>| {
                match q.get("page[after]").map(String::as_str) {
                    None => cursor_body(&[1, 2], Some("A")),
                    Some("A") => cursor_body(&[], Some("B")),
                    Some("B") => cursor_body(&[3], Some("C")),
                    Some(_) => cursor_body(&[4], None),
                }
            }))
            .await;
            let items = first(client, request(Pagination::Cursor), 50).await;
            let records: Vec<usize> = items.into_iter().map(|p| p.unwrap().records).collect();
            assert_eq!(records, vec![2, 0, 1, 1]);
        }

        #[tokio::test]
        async fn an_offset_query_missing_a_shifted_row_fails_naming_range_expected_and_got() {
            // Five records; between the two requests a tie moved record 4 onto page 1, so page 2
            // repeats record 3 and record 4 is never seen.
            let (client, _) = serve(Arc::new(|q: &HashMap<String, String>| {
                match q.get("page").map(String::as_str) {
                    Some("1") => offset_body(&[1, 2, 3], false, 5),
                    _ => offset_body(&[3, 5], true, 5),
                }
            }))
            .await;
            let items = first(client, request(Pagination::Offset), 50).await;
            assert_eq!(items.len(), 2);
            let err = items[1].as_ref().unwrap_err();
            match err {
                ApiError::CountMismatch {
                    range,
                    expected,
                    got,
                    ..
                } => {
                    assert_eq!((*expected, *got), (5, 4));
                    assert_eq!(range, "2024-01-01T00:00:00Z..2024-01-02T00:00:00Z");
                }
                other => panic!("expected a count mismatch, got {other:?}"),
            }
            assert!(!err.is_fatal_for_run());
        }

        #[tokio::test]
        async fn an_offset_query_with_a_repeated_row_but_every_record_passes() {
            let (client, _) = serve(Arc::new(|q: &HashMap<String, String>| {
                match q.get("page").map(String::as_str) {
                    Some("1") => offset_body(&[1, 2, 3], false, 6),
                    // A record arrived while paging: the latest count is the one that holds.
                    _ => offset_body(&[3, 4, 5, 6], true, 6),
                }
            }))
            .await;
            let items = first(client, request(Pagination::Offset), 50).await;
            let records: Vec<usize> = items.into_iter().map(|p| p.unwrap().records).collect();
            assert_eq!(records, vec![3, 4]);
        }

        /// An offset page of records `(id, created_at)`, in the order given.
        fn timed_offset_body(records: &[(i64, &str)], last: bool, count: u64) -> String {
            let records: Vec<String> = records
                .iter()
                .map(|(id, at)| format!(r#"{{"id":{id},"created_at":"{at}"}}"#))
                .collect();
            let next = if last { "null" } else { r#""next""# };
            format!(
                r#"{{"audit_logs":[{}],"next_page":{next},"count":{count}}}"#,
                records.join(",")
            )
        }

        #[tokio::test]
        async fn an_offset_query_served_in_any_order_is_read_whole_and_claims_no_time_reached() {
            // `sort_order=asc` ignored: newest first, then a page out of any order. The query
            // still ends on `next_page` alone, its count holds, and no page says how far in
            // time the query has come (its last record is not the latest).
            let (client, served) = serve(Arc::new(|q: &HashMap<String, String>| {
                match q.get("page").map(String::as_str) {
                    Some("1") => timed_offset_body(
                        &[
                            (6, "2024-01-01T23:59:59Z"),
                            (5, "2024-01-01T12:00:00Z"),
                            (4, "2024-01-01T00:00:00Z"),
                        ],
                        false,
                        6,
                    ),
                    Some("2") => timed_offset_body(
                        &[(2, "2023-12-31T23:59:59Z"), (3, "2024-01-01T00:00:00Z")],
                        false,
                        6,
                    ),
                    _ => timed_offset_body(&[(1, "2024-01-01T06:00:00Z")], true, 6),
                }
            }))
            .await;
            let items = first(client, request(Pagination::Offset), 50).await;
            let pages: Vec<Page> = items.into_iter().map(Result::unwrap).collect();
            let records: Vec<usize> = pages.iter().map(|p| p.records).collect();
            assert_eq!(records, vec![3, 2, 1]);
            assert!(pages.iter().all(|p| p.last_created_at.is_none()));
            assert_eq!(served.load(Ordering::SeqCst), 3);
        }

        #[tokio::test]
        async fn a_listing_proves_a_bound_inclusive_only_with_a_record_of_its_second_inside_the_range(
        ) {
            // The query is [2024-01-01T00:00:00Z, 2024-01-02T00:00:00Z] (see `request`).
            let page = |first: &str, last: &str| {
                format!(
                    r#"{{"audit_logs":[{{"id":1,"created_at":"{first}"}},{{"id":2,"created_at":"{last}"}}],"meta":{{"has_more":false,"after_cursor":null}}}}"#
                )
            };
            let cases = [
                // A record of the lower bound's second: the lower bound includes it.
                (
                    page("2024-01-01T00:00:00Z", "2024-01-01T05:00:00Z"),
                    Some(true),
                    None,
                ),
                // One of the upper bound's second: the upper bound includes it.
                (
                    page("2024-01-01T05:00:00Z", "2024-01-02T00:00:00Z"),
                    None,
                    Some(true),
                ),
                // A record past the range: the filter was not applied as sent; nothing learned.
                (
                    page("2024-01-01T00:00:00Z", "2024-01-03T00:00:00Z"),
                    None,
                    None,
                ),
                // Neither second: nothing learned.
                (
                    page("2024-01-01T01:00:00Z", "2024-01-01T02:00:00Z"),
                    None,
                    None,
                ),
            ];
            for (body, lower, upper) in cases {
                let (client, _) =
                    serve(Arc::new(move |_: &HashMap<String, String>| body.clone())).await;
                let learner = client.clone();
                first(client, request(Pagination::Cursor), 50).await;
                let known = learner.created_at_bounds().known();
                assert_eq!(
                    (known.lower_inclusive, known.upper_inclusive),
                    (lower, upper)
                );
            }
        }

        #[tokio::test]
        async fn cursor_pages_say_how_far_in_time_the_query_has_come() {
            let (client, _) = serve(Arc::new(|_: &HashMap<String, String>| {
                r#"{"audit_logs":[{"id":1,"created_at":"2024-01-01T00:00:00Z"},{"id":2,"created_at":"2024-01-01T00:00:05Z"}],"meta":{"has_more":false,"after_cursor":null}}"#.to_string()
            }))
            .await;
            let items = first(client, request(Pagination::Cursor), 50).await;
            let page = items.into_iter().next().unwrap().unwrap();
            assert_eq!(
                page.last_created_at.as_deref(),
                Some("2024-01-01T00:00:05Z")
            );
        }
    }
}
