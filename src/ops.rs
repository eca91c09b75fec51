//! The API's show, list and export operations, for a person at a terminal.

use std::pin::pin;
use std::time::Duration;

use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::plan::window::Window;
use crate::table::decode::parse_timestamp_ms;
use crate::table::route::{Cut, ExactCut};
use crate::zendesk::retry::retry_after;
use crate::zendesk::{pagination, ApiError, Client, Filters, PageRequest, Pagination};

/// Fetches one audit log and returns it as the API sent it (the `audit_log` object).
pub async fn show(client: &Client, id: i64) -> Result<String, ApiError> {
    #[derive(Deserialize)]
    struct Show<'a> {
        #[serde(borrow)]
        audit_log: &'a RawValue,
    }
    let url = client.url(&crate::zendesk::endpoint::show(id), &[]);
    let (body, ()) = client
        .get(&url, |body| {
            serde_json::from_slice::<Show>(body)
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .await?;
    let show: Show = serde_json::from_slice(&body).expect("checked when received");
    Ok(show.audit_log.get().to_string())
}

/// What `list` covers.
#[derive(Clone, Debug, Default)]
pub struct ListRequest {
    pub filters: Filters,
    /// `[since, until)` in UTC seconds; `None` lists everything.
    pub range: Option<(i64, i64)>,
    pub limit: Option<u64>,
    pub pagination: Pagination,
}

/// Lists audit logs oldest first, handing each record's JSON (as sent) to `sink`. Like an export
/// window, a range is queried slightly wider and cut exactly, and repeats are dropped. Returns the
/// number of records listed.
pub async fn list(
    client: &Client,
    request: &ListRequest,
    mut sink: impl FnMut(&str),
) -> Result<u64, ApiError> {
    #[derive(Deserialize)]
    struct Records<'a> {
        #[serde(borrow)]
        audit_logs: Vec<&'a RawValue>,
    }
    #[derive(Deserialize)]
    struct Key<'a> {
        id: Option<i64>,
        #[serde(borrow)]
        created_at: Option<std::borrow::Cow<'a, str>>,
    }
    let page_request = PageRequest {
        filters: request.filters.clone(),
        created_at: request.range.map(|(since, until)| (since - 1, until)),
        pagination: request.pagination,
    };
    let mut pages = pin!(pagination::pages(client.clone(), page_request));
    // Without a range, every instant the API can send is in (years 1970 to 9999, as
    // `parse_instant` accepts): the cut only drops repeats.
    let (start, end) = request.range.unwrap_or((0, 253_402_300_800));
    let window = Window { start, end };
    let mut cut = ExactCut::new(window, std::env::temp_dir());
    let mut listed = 0u64;
    while let Some(page) = pages.next().await {
        let page = page?;
        let records: Records =
            serde_json::from_slice(&page.body).map_err(|e| ApiError::Protocol {
                url: format!("page {} of the list", page.number),
                reason: format!("its records did not parse: {e}"),
            })?;
        for raw in records.audit_logs {
            let key: Key = serde_json::from_str(raw.get()).map_err(|e| ApiError::Protocol {
                url: format!("page {} of the list", page.number),
                reason: format!("a record has an id or created_at of the wrong type: {e}"),
            })?;
            let second = key
                .created_at
                .as_deref()
                .and_then(parse_timestamp_ms)
                .map(|t| t.div_euclid(1_000));
            match (key.id, second) {
                (Some(id), Some(second)) => {
                    let kept = cut.offer(id, second).map_err(|e| ApiError::Protocol {
                        url: format!("page {} of the list", page.number),
                        reason: format!("remembering the ids listed: {e}"),
                    })?;
                    if kept != Cut::Keep {
                        continue;
                    }
                }
                // Without an id there is nothing to dedupe on; the range still applies.
                (None, Some(second)) if !window.contains(second) => continue,
                // Without a time the record cannot be placed: it is listed as sent.
                _ => {}
            }
            sink(raw.get());
            listed += 1;
            if request.limit.is_some_and(|limit| listed >= limit) {
                return Ok(listed);
            }
        }
    }
    Ok(listed)
}

/// The answer to an export request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportRequested {
    /// 202: Zendesk prepares the CSV and delivers it on its side (by email to the requester; no job
    /// id comes back). `remaining`/`resets_in` come from `Zendesk-RateLimit-audit-logs-export`.
    Accepted {
        remaining: Option<u64>,
        resets_in: Option<Duration>,
    },
    /// 429: the 1-per-minute limit is used up.
    Throttled { retry_after: Option<Duration> },
}

/// Requests a CSV export with `filters`. Not retried: a person decides whether to wait a minute.
pub async fn request_export(
    client: &Client,
    filters: &Filters,
) -> Result<ExportRequested, ApiError> {
    let url = client.url(crate::zendesk::endpoint::EXPORT, &filters.pairs());
    let (status, headers, body) = client.send_once(Method::POST, &url).await?;
    let limit = headers
        .get("zendesk-ratelimit-audit-logs-export")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let field = |name: &str| -> Option<u64> {
        limit
            .split(';')
            .filter_map(|part| part.trim().split_once('='))
            .find(|(k, _)| k.trim() == name)
            .and_then(|(_, v)| v.trim().parse().ok())
    };
    if status == StatusCode::TOO_MANY_REQUESTS {
        return Ok(ExportRequested::Throttled {
            retry_after: retry_after(&headers).or_else(|| field("resets").map(Duration::from_secs)),
        });
    }
    if !status.is_success() {
        return Err(ApiError::Protocol {
            url: url.to_string(),
            reason: format!("HTTP {status}: {}", String::from_utf8_lossy(&body).trim()),
        });
    }
    Ok(ExportRequested::Accepted {
        remaining: field("remaining"),
        resets_in: field("resets").map(Duration::from_secs),
    })
}
