//! How many records Zendesk holds for one window now, in as few requests as the API allows.
//!
//! Whether `filter[created_at][]` bounds are inclusive is undocumented, so a window is queried
//! one second wider on each side (see [`Window::query_range`]) and the records of the two extra
//! seconds are taken off. The offset form of the list operation reports the query's total in
//! `count`; the first page sorted ascending shows the records of the lower extra second, the
//! first page sorted descending those of the upper one:
//! - `count` fits in one page: that page is the whole answer (**one request**);
//! - otherwise `count` minus the extra seconds' records seen on the two first pages
//!   (**two requests**);
//! - an extra second with a full page of records (a bulk change), a page not in the order asked
//!   for, no `count`, or an API that refuses the offset form: the window is listed whole (cursor
//!   pagination, exact cut and dedupe on `id`).

use std::collections::HashSet;
use std::pin::pin;

use futures::StreamExt;
use serde::Deserialize;

use crate::plan::window::Window;
use crate::zendesk::pagination::{self, PAGE_SIZE};
use crate::zendesk::query::created_at_pairs;
use crate::zendesk::{ApiError, Client, Filters, PageRequest, Pagination};

/// The fields a count needs from each record.
#[derive(Deserialize)]
struct Slim {
    id: Option<i64>,
    created_at: Option<String>,
}

#[derive(Deserialize)]
struct OffsetPage {
    audit_logs: Vec<Slim>,
    count: Option<u64>,
}

#[derive(Deserialize)]
struct AnyPage {
    audit_logs: Vec<Slim>,
}

/// A record's id and UTC second; records without either cannot be in the lake.
fn key(record: &Slim) -> Option<(i64, i64)> {
    let t = chrono::DateTime::parse_from_rfc3339(record.created_at.as_deref()?).ok()?;
    Some((record.id?, t.timestamp()))
}

/// The number of distinct records of `window` (exactly `start <= created_at < end`) that the
/// API returns now, with `filters`.
pub async fn count_window(
    client: &Client,
    filters: &Filters,
    window: &Window,
) -> Result<u64, ApiError> {
    match quick_count(client, filters, window).await? {
        Some(count) => Ok(count),
        None => list_whole(client, filters, window).await,
    }
}

/// The number of distinct records of `window`, when the offset form's `count` and first pages
/// tell it (one or two requests); `None` when only listing the window whole would.
pub async fn quick_count(
    client: &Client,
    filters: &Filters,
    window: &Window,
) -> Result<Option<u64>, ApiError> {
    let ascending = match first_page(client, filters, window, "asc").await {
        Ok(page) => page,
        // An API that refuses the offset form (or its sort parameters) can still be listed.
        Err(ApiError::Rejected { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let total = ascending.count.unwrap_or(u64::MAX);
    if total <= ascending.audit_logs.len() as u64 {
        let ids: HashSet<i64> = ascending
            .audit_logs
            .iter()
            .filter_map(key)
            .filter(|&(_, t)| window.contains(t))
            .map(|(id, _)| id)
            .collect();
        return Ok(Some(ids.len() as u64));
    }
    let below = edge(&ascending.audit_logs, true, |t| t < window.start);
    let descending = match first_page(client, filters, window, "desc").await {
        Ok(page) => page,
        Err(ApiError::Rejected { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let above = edge(&descending.audit_logs, false, |t| t >= window.end);
    Ok(match (below, above, ascending.count) {
        (Some(below), Some(above), Some(count)) => Some(count.saturating_sub(below + above)),
        _ => None,
    })
}

/// The records of an extra second at the head of a page sorted as asked, or `None` when that
/// cannot be told: the whole page is outside the window (the extra second may hold more than a
/// page), a record lacks its id or time, or the page is not in the order asked for.
fn edge(records: &[Slim], ascending: bool, outside: impl Fn(i64) -> bool) -> Option<u64> {
    let keys: Vec<(i64, i64)> = records.iter().filter_map(key).collect();
    let sorted = keys.windows(2).all(|pair| {
        if ascending {
            pair[0].1 <= pair[1].1
        } else {
            pair[0].1 >= pair[1].1
        }
    });
    if keys.len() != records.len() || !sorted {
        return None;
    }
    let outside_count = keys.iter().take_while(|&&(_, t)| outside(t)).count();
    (outside_count < keys.len()).then_some(outside_count as u64)
}

async fn first_page(
    client: &Client,
    filters: &Filters,
    window: &Window,
    order: &str,
) -> Result<OffsetPage, ApiError> {
    let (low, high) = window.query_range();
    let mut pairs: Vec<(&str, String)> = created_at_pairs(low, high).into();
    pairs.extend(filters.pairs());
    pairs.push(("sort_by", "created_at".into()));
    pairs.push(("sort_order", order.into()));
    pairs.push(("per_page", PAGE_SIZE.to_string()));
    pairs.push(("page", "1".into()));
    let url = client.url("/api/v2/audit_logs", &pairs);
    let (_, page) = client
        .get(&url, |body| {
            serde_json::from_slice::<OffsetPage>(body).map_err(|e| e.to_string())
        })
        .await?;
    Ok(page)
}

/// Lists the whole window and counts its distinct records.
async fn list_whole(client: &Client, filters: &Filters, window: &Window) -> Result<u64, ApiError> {
    let request = PageRequest {
        filters: filters.clone(),
        created_at: Some(window.query_range()),
        pagination: Pagination::Cursor,
    };
    let mut ids = HashSet::new();
    let mut pages = pin!(pagination::pages(client.clone(), request));
    while let Some(page) = pages.next().await {
        let page = page?;
        let parsed: AnyPage =
            serde_json::from_slice(&page.body).map_err(|e| ApiError::Protocol {
                url: format!("list page {}", page.number),
                reason: e.to_string(),
            })?;
        ids.extend(
            parsed
                .audit_logs
                .iter()
                .filter_map(key)
                .filter(|&(_, t)| window.contains(t))
                .map(|(id, _)| id),
        );
    }
    Ok(ids.len() as u64)
}
