//! How many records Zendesk holds for a range of seconds now, in at most three requests, on
//! documented parameters only.
//!
//! Whether `filter[created_at][]` bounds are inclusive is undocumented, so a range `[from, to)` is
//! queried one second wider on each side (see [`Window::query_range`]) and the records of the two
//! extra seconds are taken off. The cursor form's `sort=created_at` / `-created_at` is the only
//! documented order; the offset form's `count` is order-independent, but nothing documents an
//! order for its pages, so its records are never read:
//! 1. the first cursor page, ascending: when `meta.has_more` is false it is the whole query, and
//!    its distinct ids inside the range are the answer (**one request**);
//! 2. otherwise the first cursor page descending, then the offset form's `count` (`per_page=1`:
//!    `count` does not depend on it) (**three requests**): `count` minus the records of the lower
//!    extra second at the head of the ascending page and of the upper one at the head of the
//!    descending page. With exclusive bounds both are empty, with inclusive ones they are what the
//!    wider query added.
//!
//! **Learned bounds.** A record of the extra second served for a query bounded at that very
//! second proves that bound inclusive ([`CreatedAtBounds`], kept by the client and, by the run,
//! in the lake for the next runs). A proven bound is asked at the range's own second and nothing
//! is taken off on that side, so an extra second that fills a whole page (a bulk change, whose
//! records beyond the page are unseen) costs nothing more; and once both bounds are proven a
//! count is the exact query, **one request** (`count` alone). Nothing proves a bound exclusive,
//! so an API with exclusive bounds keeps paying three requests for a range over a page, and
//! never needs more.
//!
//! Anything that would make the count a guess is an [`Uncountable`] and callers list the
//! range whole (cursor pagination, exact cut, dedupe on `id`): a page not in the order asked
//! for or holding a record outside the query, a record without a readable id or time, an answer
//! without `count` or `meta.has_more`, a `count` below the records the pages show, a refused
//! request.
//!
//! Assumed, since undocumented: the cursor and the offset form are one list operation and apply
//! `filter[created_at][]` alike, so bounds proven on cursor pages hold for the offset form's
//! `count` (the subtraction of edge records seen on cursor pages from it assumes the same). Should
//! they differ, a count comes out low by the records of the range's first and last seconds: a close
//! then fetches the window whole (safe), and a recheck reports "fewer at Zendesk" for that window.
//! Proving the offset form's own bounds (a one-second offset count where cursor pages showed
//! records) is not done yet.
//!
//! Also assumed, since undocumented: `count` counts each record once (`id` is the primary key), and
//! the API's own duplicates are only the same record served twice; a record repeated on a page is
//! therefore counted once, as the lake keeps it once. The three requests are not one snapshot:
//! the count is exact for a range whose records do not change meanwhile (a closed window older
//! than the eventual-consistency lag). A bound once proven inclusive is taken to stay so: should
//! Zendesk ever change it to exclusive, one-request counts would miss the records of the range's
//! first and last seconds, which shows as "Zendesk returns fewer records than the lake" (the
//! lake keeps them; nothing is dropped) until the knowledge is removed from the lake's
//! `api.json`.

use std::collections::HashSet;
use std::fmt;
use std::pin::pin;

use futures::StreamExt;
use serde::de::IgnoredAny;
use serde::Deserialize;

use super::endpoint::{CursorPage, OffsetPage};

use crate::plan::window::Window;

use crate::units::time::format_rfc3339;
use crate::zendesk::pagination::{self, PAGE_SIZE};
use crate::zendesk::query::created_at_pairs;
use crate::zendesk::{ApiError, Client, CreatedAtBounds, Filters, PageRequest, Pagination};

/// Why a range cannot be counted in three requests; listing it whole still counts it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Uncountable {
    /// A cursor page is not in the `created_at` order asked for.
    #[error("the {order} cursor page is not in {order} created_at order")]
    Misordered { order: Order },
    /// A cursor page holds a record outside the query's time range: the API did not apply the
    /// filter as sent, so its `count` cannot be trusted either.
    #[error("the {order} cursor page holds a record outside the query's time range")]
    OutOfRange { order: Order },
    /// A record without a readable `id` or `created_at`: it cannot be placed in or out of the range.
    #[error("a record on the {order} cursor page lacks a readable id or created_at")]
    Unreadable { order: Order },
    /// The cursor page has no `meta.has_more`, so it cannot tell whether it is the whole query.
    #[error("the {order} cursor page has no meta.has_more")]
    NoHasMore { order: Order },
    /// The offset form answered without `count`.
    #[error("the offset form answered without count")]
    NoCount,
    /// `count` is below the distinct records the cursor pages show.
    #[error("count {count} is below the {seen} distinct records the cursor pages show")]
    CountTooLow { count: u64, seen: u64 },
    /// The API refused one of the requests (4xx other than 401/403/404).
    #[error("Zendesk refused the {request} request ({status})")]
    Refused { request: &'static str, status: u16 },
}

/// The order of a cursor page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// `sort=created_at`.
    Ascending,
    /// `sort=-created_at`.
    Descending,
}

impl Order {
    fn sort(self) -> &'static str {
        match self {
            Order::Ascending => "created_at",
            Order::Descending => "-created_at",
        }
    }

    fn holds(self, earlier: i64, later: i64) -> bool {
        match self {
            Order::Ascending => earlier <= later,
            Order::Descending => earlier >= later,
        }
    }
}

impl fmt::Display for Order {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Order::Ascending => "ascending",
            Order::Descending => "descending",
        })
    }
}

/// The fields a count needs from each record.
#[derive(Deserialize)]
struct Slim {
    id: Option<i64>,
    created_at: Option<String>,
}

/// A cursor page as a count reads it: a few fields of each record; `meta.has_more` may be
/// missing (the count then says it cannot tell).
type SlimPage = CursorPage<Vec<Slim>>;

/// The offset form's answer, of which only `count` is read (the records may even be missing).
type OffsetCount = OffsetPage<Option<IgnoredAny>>;

/// A record's id and UTC second; records without either cannot be in the lake.
fn key(record: &Slim) -> Option<(i64, i64)> {
    let t = chrono::DateTime::parse_from_rfc3339(record.created_at.as_deref()?).ok()?;
    Some((record.id?, t.timestamp()))
}

/// The number of distinct records of `window` (exactly `start <= created_at < end`) that the
/// API returns now, with `filters`: [`count_range`] of the window.
pub async fn count_window(
    client: &Client,
    filters: &Filters,
    window: &Window,
) -> Result<u64, ApiError> {
    count_range(client, filters, window.start, window.end).await
}

/// The number of distinct records with `from <= created_at < to` (UTC seconds, any range, not
/// only a grid window) that the API returns now, with `filters`: at most three requests, or,
/// when [`quick_count_range`] cannot tell, the range listed whole (one request per 100 records).
pub async fn count_range(
    client: &Client,
    filters: &Filters,
    from: i64,
    to: i64,
) -> Result<u64, ApiError> {
    match quick_count_range(client, filters, from, to).await? {
        Ok(count) => Ok(count),
        Err(why) => {
            tracing::debug!(from = %format_rfc3339(from), to = %format_rfc3339(to), reason = %why, "listing the range whole to count it");
            list_whole(
                client,
                filters,
                &Window {
                    start: from,
                    end: to,
                },
            )
            .await
        }
    }
}

/// The number of distinct records of `window` in at most three requests; `None` when only
/// listing the window whole would tell (the reason is logged at debug level).
pub async fn quick_count(
    client: &Client,
    filters: &Filters,
    window: &Window,
) -> Result<Option<u64>, ApiError> {
    Ok(
        match quick_count_range(client, filters, window.start, window.end).await? {
            Ok(count) => Some(count),
            Err(why) => {
                tracing::debug!(window = %window.id(), reason = %why, "no count in three requests");
                None
            }
        },
    )
}

/// The number of distinct records with `from <= created_at < to`, in one request (the query
/// fits one page) or three; `Ok(Err(_))` says why three requests cannot tell. An empty or
/// reversed range is 0 without a request.
pub async fn quick_count_range(
    client: &Client,
    filters: &Filters,
    from: i64,
    to: i64,
) -> Result<Result<u64, Uncountable>, ApiError> {
    if from >= to {
        return Ok(Ok(0));
    }
    match quick(
        client,
        filters,
        &Window {
            start: from,
            end: to,
        },
    )
    .await
    {
        Ok(count) => Ok(Ok(count)),
        Err(Stop::Uncountable(why)) => Ok(Err(why)),
        Err(Stop::Api(e)) => Err(e),
    }
}

/// Why [`quick`] stopped short of a count.
enum Stop {
    Api(ApiError),
    Uncountable(Uncountable),
}

impl From<Uncountable> for Stop {
    fn from(why: Uncountable) -> Stop {
        Stop::Uncountable(why)
    }
}

/// A refusal (400, 422, …) says this API does not take the request, not that the range cannot
/// be listed: the caller lists it instead. Everything else is the caller's error.
fn refused(request: &'static str) -> impl Fn(ApiError) -> Stop {
    move |e| match e {
        ApiError::Rejected { status, .. } => {
            Stop::Uncountable(Uncountable::Refused { request, status })
        }
        e => Stop::Api(e),
    }
}

/// The count of `range`, any span of seconds (a [`Window`] for its bounds only, not a grid cell).
async fn quick(client: &Client, filters: &Filters, range: &Window) -> Result<u64, Stop> {
    let bounds = client.created_at_bounds();
    let known = bounds.known();
    if known.both_inclusive() {
        // Both bounds include their second: the exact range is one query, one request.
        let count = offset_count(client, filters, range.start, range.end - 1).await?;
        return Ok(count.ok_or(Uncountable::NoCount)?);
    }
    let ascending = cursor_page(client, filters, range, Order::Ascending).await?;
    let has_more =
        ascending
            .meta
            .as_ref()
            .and_then(|m| m.has_more)
            .ok_or(Uncountable::NoHasMore {
                order: Order::Ascending,
            })?;
    if !has_more {
        // The whole query: its order and the records outside the range do not matter.
        let keys: Vec<(i64, i64)> = ascending.audit_logs.iter().filter_map(key).collect();
        learn(bounds, range, &keys);
        let ids: HashSet<i64> = keys
            .iter()
            .filter(|&&(_, t)| range.contains(t))
            .map(|&(id, _)| id)
            .collect();
        return Ok(ids.len() as u64);
    }
    let below = edge(&ascending, range, Order::Ascending)?;
    let descending = cursor_page(client, filters, range, Order::Descending).await?;
    let above = edge(&descending, range, Order::Descending)?;
    if !below.ids.is_empty() {
        bounds.learn_inclusive(true);
    }
    if !above.ids.is_empty() {
        bounds.learn_inclusive(false);
    }
    let known = bounds.known();
    // A bound known to include its second is asked at the range's own second: nothing of that
    // side is then counted that must be taken off (and an extra second that fills a whole page,
    // a bulk change, which proves its bound inclusive, costs nothing more).
    let tight_low = known.lower_inclusive == Some(true);
    let tight_high = known.upper_inclusive == Some(true);
    let low = if tight_low {
        range.start
    } else {
        range.start - 1
    };
    let high = if tight_high { range.end - 1 } else { range.end };
    let count = offset_count(client, filters, low, high)
        .await?
        .ok_or(Uncountable::NoCount)?;
    let seen: HashSet<i64> = [&ascending, &descending]
        .into_iter()
        .flat_map(|page| page.audit_logs.iter().filter_map(key))
        .filter(|&(_, t)| (low..=high).contains(&t))
        .map(|(id, _)| id)
        .collect();
    let seen = seen.len() as u64;
    if count < seen {
        return Err(Uncountable::CountTooLow { count, seen }.into());
    }
    let mut edges: HashSet<i64> = HashSet::new();
    if !tight_low {
        edges.extend(&below.ids);
    }
    if !tight_high {
        edges.extend(&above.ids);
    }
    // The edges are among the records seen, so never more than `count`.
    Ok(count - edges.len() as u64)
}

/// Learns the bounds from a whole query's records: a record of the second before the range, or
/// of the range's end, was served for a query bounded there.
fn learn(bounds: &CreatedAtBounds, range: &Window, keys: &[(i64, i64)]) {
    if keys.iter().any(|&(_, t)| t == range.start - 1) {
        bounds.learn_inclusive(true);
    }
    if keys.iter().any(|&(_, t)| t == range.end) {
        bounds.learn_inclusive(false);
    }
}

/// The records of the extra second at the head of a first cursor page.
struct Edge {
    ids: HashSet<i64>,
}

/// The ids of the extra second at the head of a first cursor page: the second before the range on
/// an ascending page, the second at its end on a descending one. A page that holds nothing but
/// that second (a bulk change) is fine: it proves the bound inclusive, and the count is then
/// asked without that second.
fn edge(page: &SlimPage, range: &Window, order: Order) -> Result<Edge, Uncountable> {
    let keys = page
        .audit_logs
        .iter()
        .map(key)
        .collect::<Option<Vec<_>>>()
        .ok_or(Uncountable::Unreadable { order })?;
    if !keys
        .windows(2)
        .all(|pair| order.holds(pair[0].1, pair[1].1))
    {
        return Err(Uncountable::Misordered { order });
    }
    let (low, high) = range.query_range();
    if keys.iter().any(|&(_, t)| t < low || t > high) {
        return Err(Uncountable::OutOfRange { order });
    }
    let outside = match order {
        Order::Ascending => range.start - 1,
        Order::Descending => range.end,
    };
    let head = keys.iter().take_while(|&&(_, t)| t == outside).count();
    Ok(Edge {
        ids: keys[..head].iter().map(|&(id, _)| id).collect(),
    })
}

fn query(filters: &Filters, range: &Window) -> Vec<(&'static str, String)> {
    let (low, high) = range.query_range();
    let mut pairs: Vec<(&str, String)> = created_at_pairs(low, high).into();
    pairs.extend(filters.pairs());
    pairs
}

async fn cursor_page(
    client: &Client,
    filters: &Filters,
    range: &Window,
    order: Order,
) -> Result<SlimPage, Stop> {
    let mut pairs = query(filters, range);
    pairs.push(("sort", order.sort().into()));
    pairs.push(("page[size]", PAGE_SIZE.to_string()));
    let url = client.url(crate::zendesk::endpoint::LIST, &pairs);
    let request = match order {
        Order::Ascending => "ascending cursor page",
        Order::Descending => "descending cursor page",
    };
    let (_, page) = client
        .get(&url, |body| {
            serde_json::from_slice::<SlimPage>(body).map_err(|e| e.to_string())
        })
        .await
        .map_err(refused(request))?;
    Ok(page)
}

/// The offset form's `count` of the query `[low, high]` (bounds as sent); one record a page keeps
/// the answer small.
async fn offset_count(
    client: &Client,
    filters: &Filters,
    low: i64,
    high: i64,
) -> Result<Option<u64>, Stop> {
    let mut pairs: Vec<(&str, String)> = created_at_pairs(low, high).into();
    pairs.extend(filters.pairs());
    pairs.push(("per_page", "1".into()));
    pairs.push(("page", "1".into()));
    let url = client.url(crate::zendesk::endpoint::LIST, &pairs);
    let (_, answer) = client
        .get(&url, |body| {
            serde_json::from_slice::<OffsetCount>(body).map_err(|e| e.to_string())
        })
        .await
        .map_err(refused("offset count"))?;
    Ok(answer.count)
}

/// Lists the whole range and counts its distinct records.
async fn list_whole(client: &Client, filters: &Filters, range: &Window) -> Result<u64, ApiError> {
    let request = PageRequest {
        filters: filters.clone(),
        created_at: Some(range.query_range()),
        pagination: Pagination::Cursor,
    };
    let mut ids = HashSet::new();
    let mut pages = pin!(pagination::pages(client.clone(), request));
    while let Some(page) = pages.next().await {
        let page = page?;
        let parsed: SlimPage =
            serde_json::from_slice(&page.body).map_err(|e| ApiError::Protocol {
                url: format!("list page {}", page.number),
                reason: e.to_string(),
            })?;
        ids.extend(
            parsed
                .audit_logs
                .iter()
                .filter_map(key)
                .filter(|&(_, t)| range.contains(t))
                .map(|(id, _)| id),
        );
    }
    Ok(ids.len() as u64)
}

#[cfg(test)]
mod tests {
    //! Against the simulator under the four APIs auditlake must count exactly on: `filter[created_at]`
    //! bounds inclusive or exclusive, the offset form's `sort_order` honoured or ignored. Each
    //! window is found in the account's ground truth, so each test asserts what it claims (records
    //! in both extra seconds, a bulk second next to the window, …) before it counts.

    use std::collections::HashMap;
    use std::net::SocketAddr;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    use chrono::{DateTime, Utc};
    use zendesk_sim::{Bounds, Faults, OffsetSort, SimConfig, SimFilter, Simulator};

    use super::*;

    /// 2024-03-01T00:00:00Z; the account spans two days from here.
    const FROM: i64 = 1_709_251_200;
    const TO: i64 = FROM + 2 * 86_400;
    /// Enough for clusters of 1,000 records in one second (a bulk change) and a 5,000-record
    /// window within the two days.
    const RECORDS: u64 = 20_000;

    const APIS: [(Bounds, OffsetSort); 4] = [
        (Bounds::Inclusive, OffsetSort::Honoured),
        (Bounds::Inclusive, OffsetSort::Ignored),
        (Bounds::Exclusive, OffsetSort::Honoured),
        (Bounds::Exclusive, OffsetSort::Ignored),
    ];

    fn utc(t: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(t, 0).unwrap()
    }

    fn client_for(base_url: &str) -> Client {
        crate::zendesk::client::test_client(base_url, 2, true)
    }

    struct Api {
        sim: Simulator,
        client: Client,
        name: String,
    }

    async fn api((bounds, offset_sort): (Bounds, OffsetSort), faults: Faults) -> Api {
        let mut config = SimConfig::new(RECORDS, utc(FROM), utc(TO));
        config.bounds = bounds;
        config.offset_sort = offset_sort;
        config.rate_limit_per_minute = 1_000_000;
        config.faults = faults;
        let sim = Simulator::start(config, SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let client = client_for(&sim.base_url());
        Api {
            sim,
            client,
            name: format!("{bounds:?} bounds, offset sort {offset_sort:?}"),
        }
    }

    impl Api {
        /// The account's records with `from <= created_at < to`.
        fn truth(&self, from: i64, to: i64) -> u64 {
            let records = self
                .sim
                .account()
                .expected(&SimFilter::default(), utc(from), utc(to));
            records.len() as u64
        }

        fn requests(&self) -> u64 {
            self.client.stats().requests.load(Ordering::Relaxed)
        }

        /// The quick count of `[from, to)` and the requests it made.
        async fn quick(&self, from: i64, to: i64) -> (Result<u64, Uncountable>, u64) {
            let before = self.requests();
            let counted = quick_count_range(&self.client, &Filters::default(), from, to)
                .await
                .unwrap();
            (counted, self.requests() - before)
        }

        /// The count of `[from, to)` with its fallback, and the requests it made.
        async fn count(&self, from: i64, to: i64) -> (u64, u64) {
            let before = self.requests();
            let window = Window {
                start: from,
                end: to,
            };
            let counted = count_window(&self.client, &Filters::default(), &window)
                .await
                .unwrap();
            (counted, self.requests() - before)
        }
    }

    /// The ground truth all four APIs share (the account depends on the seed only).
    struct Truth(Vec<i64>);

    impl Truth {
        fn of(api: &Api) -> Truth {
            Truth(api.sim.account().timestamps().to_vec())
        }

        fn in_range(&self, from: i64, to: i64) -> usize {
            self.0.partition_point(|&t| t < to) - self.0.partition_point(|&t| t < from)
        }

        fn in_second(&self, t: i64) -> usize {
            self.in_range(t, t + 1)
        }

        /// A window `[s, e)` of about `records` records with records in both extra seconds
        /// (`s - 1` and `e`) but fewer than a page in each, the first after `after`.
        fn edged(&self, after: i64, records: usize) -> (i64, i64) {
            let first = self.0.partition_point(|&t| t <= after);
            for i in first..self.0.len() {
                let s = self.0[i] + 1;
                let k = self.0.partition_point(|&t| t < s);
                let Some(&e) = self.0.get(k + records) else {
                    break;
                };
                if self.in_second(s - 1) < 100 && self.in_second(e) < 100 {
                    return (s, e);
                }
            }
            panic!("no window of {records} records after {after}");
        }

        /// A second holding a whole page of records or more (a bulk change).
        fn bulk_second(&self) -> i64 {
            self.0
                .iter()
                .copied()
                .find(|&t| self.in_second(t) >= 100)
                .expect("the account has clusters of records in one second")
        }
    }

    #[tokio::test]
    async fn an_empty_window_costs_one_request_even_between_two_edge_seconds_with_records() {
        for kind in APIS {
            let api = api(kind, Faults::default()).await;
            let truth = Truth::of(&api);
            let s = (FROM + 1..TO - 1)
                .find(|&s| {
                    truth.in_second(s - 1) > 0
                        && truth.in_second(s) == 0
                        && truth.in_second(s + 1) > 0
                })
                .expect("a lone empty second between two with records");
            assert_eq!(api.truth(s, s + 1), 0);
            assert_eq!(api.quick(s, s + 1).await, (Ok(0), 1), "{}", api.name);
            assert_eq!(api.count(s, s + 1).await, (0, 1), "{}", api.name);
            // An empty range needs no request at all.
            assert_eq!(api.quick(s, s).await, (Ok(0), 0), "{}", api.name);
        }
    }

    #[tokio::test]
    async fn a_window_under_one_page_is_counted_from_its_first_page_alone() {
        for kind in APIS {
            let api = api(kind, Faults::default()).await;
            let truth = Truth::of(&api);
            let (s, e) = truth.edged(FROM + 3_600, 40);
            assert!(
                truth.in_range(s - 1, e + 1) <= 100,
                "the wider query fits a page"
            );
            assert!(truth.in_second(s - 1) > 0 && truth.in_second(e) > 0);
            let expected = api.truth(s, e);
            assert!(expected >= 30, "{expected}");
            assert_eq!(api.quick(s, e).await, (Ok(expected), 1), "{}", api.name);
        }
    }

    /// Regression (issue #18): against an API that ignores the offset form's `sort_by` /
    /// `sort_order`, every count of a window over a page fell back to listing it whole.
    #[tokio::test]
    async fn a_big_window_with_records_in_both_edge_seconds_is_counted_exactly_in_three_requests() {
        for kind in APIS {
            let api = api(kind, Faults::default()).await;
            let truth = Truth::of(&api);
            let (s, e) = truth.edged(FROM + 3_600, 5_000);
            let (below, above) = (truth.in_second(s - 1), truth.in_second(e));
            assert!(below > 0 && above > 0, "records in both extra seconds");
            let expected = api.truth(s, e);
            assert!(expected >= 4_900, "{expected}");
            assert_eq!(api.quick(s, e).await, (Ok(expected), 3), "{}", api.name);
            // The range form counts a span of many windows as one query. With inclusive bounds
            // the first count proved them so (records of both extra seconds were served): from
            // then on a count is the exact query, one request. Exclusive bounds are never proven.
            let (s2, e2) = truth.edged(e + 7_200, 3_000);
            let once_learned = match kind.0 {
                Bounds::Inclusive => 1,
                Bounds::Exclusive => 3,
            };
            assert_eq!(
                api.quick(s, e2).await,
                (Ok(api.truth(s, e2)), once_learned),
                "{}",
                api.name
            );
            assert_eq!(
                count_range(&api.client, &Filters::default(), s2, e2)
                    .await
                    .unwrap(),
                api.truth(s2, e2),
                "{}",
                api.name
            );
        }
    }

    /// Regression (issue #18): with inclusive bounds a bulk second next to the window is in the
    /// query and fills its first page there; that fell back to listing the window whole. Such a
    /// page proves its bound inclusive, so the count is asked without that second: exact in at
    /// most three requests, and one once both bounds are known. With exclusive bounds the query
    /// never holds it.
    #[tokio::test]
    async fn a_bulk_second_next_to_the_window_is_counted_exactly_in_at_most_three_requests() {
        for kind in APIS {
            let truth = Truth::of(&api(kind, Faults::default()).await);
            let c = truth.bulk_second();
            for (s, e) in [(c + 1, c + 3_601), (c - 3_600, c)] {
                // A fresh client each time: nothing learned before.
                let api = api(kind, Faults::default()).await;
                assert!(truth.in_second(c) >= 100);
                assert!(truth.in_range(s - 1, e + 1) > 100 + truth.in_second(c));
                let expected = api.truth(s, e);
                let (quick, requests) = api.quick(s, e).await;
                assert_eq!(quick, Ok(expected), "{} [{s}, {e})", api.name);
                assert!(requests <= 3, "{} [{s}, {e}): {requests}", api.name);
                let (counted, again) = api.count(s, e).await;
                assert_eq!(counted, expected, "{} [{s}, {e})", api.name);
                assert!(again <= 3, "{}: {again}", api.name);
            }
        }
    }

    /// A record of the lower extra second served among later ones (a broken `sort=created_at`)
    /// makes the ascending page misordered: it is not trusted, and listing is exact.
    #[tokio::test]
    async fn a_misordered_cursor_page_is_not_trusted() {
        let probe = api(APIS[0], Faults::default()).await;
        let truth = Truth::of(&probe);
        let (s, e) = truth.edged(FROM + 3_600, 1_000);
        let first = truth.0.partition_point(|&t| t < s - 1);
        let faults = Faults {
            served_late: Some((first, 50)),
            ..Faults::default()
        };
        let api = api(APIS[1], faults).await;
        assert_eq!(
            api.quick(s, e).await,
            (
                Err(Uncountable::Misordered {
                    order: Order::Ascending
                }),
                1
            )
        );
        assert_eq!(api.count(s, e).await.0, api.truth(s, e));
    }

    type Script = dyn Fn(&HashMap<String, String>) -> (u16, String) + Send + Sync;

    /// A client for a server that answers `script(query)`.
    async fn scripted(script: Arc<Script>) -> Client {
        use axum::extract::RawQuery;
        let app = axum::Router::new().fallback(move |RawQuery(query): RawQuery| {
            let script = script.clone();
            async move {
                let params: HashMap<String, String> =
                    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                        .into_owned()
                        .collect();
                let (status, body) = script(&params);
                (
                    axum::http::StatusCode::from_u16(status).unwrap(),
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    body,
                )
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        client_for(&format!("http://{addr}"))
    }

    /// Answers that leave the count a guess are refused, each with its reason: no `count`, a
    /// `count` below what the pages show, a refused offset form.
    #[tokio::test]
    async fn a_count_the_answers_cannot_support_is_refused_with_its_reason() {
        let (s, e) = (FROM + 10, FROM + 20);
        let record =
            |id: i64, t: i64| format!(r#"{{"id":{id},"created_at":"{}"}}"#, format_rfc3339(t));
        let cursor = move |params: &HashMap<String, String>| {
            let records = [
                record(1, s - 1),
                record(2, s),
                record(3, s + 1),
                record(4, e),
            ];
            let ordered: Vec<&String> = match params.get("sort").map(String::as_str) {
                Some("created_at") => records.iter().collect(),
                _ => records.iter().rev().collect(),
            };
            let list: Vec<&str> = ordered.iter().map(|r| r.as_str()).collect();
            format!(
                r#"{{"audit_logs":[{}],"meta":{{"has_more":true,"after_cursor":"x"}}}}"#,
                list.join(",")
            )
        };
        type Case = (&'static str, (u16, &'static str), Result<u64, Uncountable>);
        let cases: [Case; 4] = [
            // The pages show records of both extra seconds: both bounds include their second, so
            // `count` is asked for exactly the range and stands as it is.
            ("counted", (200, r#"{"audit_logs":[],"count":2}"#), Ok(2)),
            (
                "no count",
                (200, r#"{"audit_logs":[]}"#),
                Err(Uncountable::NoCount),
            ),
            (
                "count too low",
                (200, r#"{"audit_logs":[],"count":1}"#),
                Err(Uncountable::CountTooLow { count: 1, seen: 2 }),
            ),
            (
                "refused",
                (400, r#"{"error":"InvalidPaginationParameter"}"#),
                Err(Uncountable::Refused {
                    request: "offset count",
                    status: 400,
                }),
            ),
        ];
        for (name, (status, body), expected) in cases {
            let body = body.to_string();
            let client = scripted(Arc::new(move |params| {
                if params.contains_key("page[size]") {
                    (200, cursor(params))
                } else {
                    assert_eq!(params.get("per_page").map(String::as_str), Some("1"));
                    assert!(!params.contains_key("sort_order") && !params.contains_key("sort_by"));
                    (status, body.clone())
                }
            }))
            .await;
            let counted = quick_count_range(&client, &Filters::default(), s, e)
                .await
                .unwrap();
            assert_eq!(counted, expected, "{name}");
        }
    }
}
