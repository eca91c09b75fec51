//! Pages of the list operation as a stream: callers never see a cursor.
//!
//! Cursor pagination (the default) always sends `page[size]`, because without it the API silently
//! switches to offset pagination. A page counts as received only when its envelope parses, so a
//! truncated 200 is retried like any transient failure.

use std::fmt;

use bytes::Bytes;
use futures::Stream;
use serde::de::{Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;

use super::client::{ApiError, Client};
use super::query::{created_at_pairs, Filters};

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

#[derive(Deserialize)]
struct CursorEnvelope {
    audit_logs: RecordCount,
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
    audit_logs: RecordCount,
    next_page: Option<String>,
    count: Option<u64>,
}

/// The number of records in the `audit_logs` array, checked for being an array of objects but
/// not decoded (that happens once, later, against the schema).
struct RecordCount(usize);

impl<'de> Deserialize<'de> for RecordCount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RecordCount;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of records")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RecordCount, A::Error> {
                let mut n = 0;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(RecordCount(n))
            }
        }
        d.deserialize_seq(V)
    }
}

enum Next {
    First,
    After(String),
    Offset(u32),
    Done,
}

/// The pages of one query, in order. The stream ends after the last page or the first error.
pub fn pages(client: Client, request: PageRequest) -> impl Stream<Item = Result<Page, ApiError>> {
    futures::stream::try_unfold((Next::First, 0u32), move |(next, number)| {
        let client = client.clone();
        let request = request.clone();
        async move {
            let number = number + 1;
            match (next, request.pagination) {
                (Next::Done, _) => Ok(None),
                (Next::First, Pagination::Cursor) => {
                    cursor_page(&client, &request, None, number).await.map(Some)
                }
                (Next::After(cursor), _) => cursor_page(&client, &request, Some(cursor), number)
                    .await
                    .map(Some),
                (Next::First, Pagination::Offset) => {
                    offset_page(&client, &request, 1, number).await.map(Some)
                }
                (Next::Offset(page), _) => {
                    offset_page(&client, &request, page, number).await.map(Some)
                }
            }
        }
    })
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
) -> Result<(Page, (Next, u32)), ApiError> {
    let mut pairs = base_pairs(request);
    pairs.push(("sort", "created_at".into()));
    pairs.push(("page[size]", PAGE_SIZE.to_string()));
    if let Some(cursor) = &after {
        pairs.push(("page[after]", cursor.clone()));
    }
    let url = client.url("/api/v2/audit_logs", &pairs);
    let result = client
        .get(&url, |body| {
            serde_json::from_slice::<CursorEnvelope>(body).map_err(|e| e.to_string())
        })
        .await;
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
    let after_cursor = next_cursor(envelope.meta.after_cursor, envelope.links);
    let next = match (envelope.meta.has_more, after_cursor) {
        (false, _) => Next::Done,
        (true, Some(cursor)) if Some(&cursor) == after.as_ref() => {
            return Err(ApiError::Protocol {
                url: url.to_string(),
                reason: "the next-page cursor repeats the current one".into(),
            })
        }
        (true, Some(cursor)) if !cursor.is_empty() => Next::After(cursor),
        (true, _) => {
            return Err(ApiError::Protocol {
                url: url.to_string(),
                reason: "meta.has_more is true but meta.after_cursor is missing".into(),
            })
        }
    };
    let page = Page {
        body,
        records: envelope.audit_logs.0,
        number,
    };
    Ok((page, (next, number)))
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
) -> Result<(Page, (Next, u32)), ApiError> {
    let mut pairs = base_pairs(request);
    pairs.push(("sort_by", "created_at".into()));
    pairs.push(("sort_order", "asc".into()));
    pairs.push(("per_page", PAGE_SIZE.to_string()));
    pairs.push(("page", page_number.to_string()));
    let url = client.url("/api/v2/audit_logs", &pairs);
    let result = client
        .get(&url, |body| {
            serde_json::from_slice::<OffsetEnvelope>(body).map_err(|e| e.to_string())
        })
        .await;
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
    let next = match envelope.next_page {
        Some(_) if envelope.audit_logs.0 > 0 => Next::Offset(page_number + 1),
        _ => Next::Done,
    };
    let page = Page {
        body,
        records: envelope.audit_logs.0,
        number,
    };
    Ok((page, (next, number)))
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
