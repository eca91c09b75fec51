//! `GET /api/v2/audit_logs`: the query's filters and pagination mode, the positions it may see,
//! its injected fault, and its page in either pagination style.

use std::sync::atomic::Ordering;

use axum::http::StatusCode;
use axum::response::Response;

use super::{inc, injected_status, invalid_value, json, reset_response, set, Rejection, Shared};
use super::{MAX_PAGE, OFFSET_CAP};
use crate::account::{escape_into, Account, SimFilter};
use crate::faults::Fault;
use crate::{Bounds, OffsetSort};

/// The time range and field filters shared by list and export.
pub(super) struct Filters {
    /// `(start, end)` unix seconds as sent.
    range: Option<(i64, i64)>,
    filter: SimFilter,
}

pub(super) fn parse_pairs(query: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

pub(super) fn parse_filters(pairs: &[(String, String)]) -> Result<Filters, Rejection> {
    let mut created = Vec::new();
    let mut filter = SimFilter::default();
    for (k, v) in pairs {
        match k.as_str() {
            "filter[created_at][]" | "filter[created_at]" => created.push(v.as_str()),
            "filter[action]" | "filter[action][]" => filter.actions.push(v.clone()),
            "filter[source_type]" => filter.source_type = Some(v.clone()),
            "filter[source_id]" => {
                filter.source_id = Some(v.parse().map_err(|_| {
                    invalid_value(&format!("filter[source_id] must be an integer, got {v:?}"))
                })?)
            }
            "filter[actor_id]" => {
                filter.actor_id = Some(v.parse().map_err(|_| {
                    invalid_value(&format!("filter[actor_id] must be an integer, got {v:?}"))
                })?)
            }
            "filter[ip_address]" => filter.ip_address = Some(v.clone()),
            _ => {}
        }
    }
    if filter.source_id.is_some() && filter.source_type.is_none() {
        return Err(invalid_value(
            "filter[source_id] requires filter[source_type]",
        ));
    }
    let range = match created.as_slice() {
        [] => None,
        [start, end] => {
            let (Some(s), Some(e)) = (parse_ts(start), parse_ts(end)) else {
                return Err(invalid_value(
                    "filter[created_at] values must be ISO-8601 UTC timestamps like 2012-03-05T11:32:44Z",
                ));
            };
            if s > e {
                return Err(invalid_value(
                    "filter[created_at] start must not be after end",
                ));
            }
            Some((s, e))
        }
        _ => {
            return Err(invalid_value(
                "filter[created_at] requires exactly two values: a start and an end",
            ))
        }
    };
    Ok(Filters { range, filter })
}

/// Parses exactly `YYYY-MM-DDTHH:MM:SSZ` into unix seconds.
pub(crate) fn parse_ts(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let shape = b.len() == 20
        && b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            19 => c == b'Z',
            _ => c.is_ascii_digit(),
        });
    if !shape {
        return None;
    }
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%SZ")
        .ok()
        .map(|t| t.and_utc().timestamp())
}

enum Mode {
    Cursor {
        size: usize,
        asc: bool,
        after: Option<String>,
        before: Option<String>,
    },
    Offset {
        page: u64,
        per_page: u64,
        asc: bool,
    },
}

fn parse_mode(pairs: &[(String, String)], offset_sort: OffsetSort) -> Result<Mode, Rejection> {
    let get = |key: &str| {
        pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    if let Some(size) = get("page[size]") {
        let size = size
            .parse::<usize>()
            .ok()
            .filter(|s| (1..=MAX_PAGE).contains(s))
            .ok_or_else(|| invalid_value("page[size] must be an integer between 1 and 100"))?;
        let asc = match get("sort") {
            None | Some("-created_at") => false,
            Some("created_at") => true,
            Some(other) => return Err(invalid_value(&format!("sort {other:?} is not supported"))),
        };
        let after = get("page[after]").map(str::to_owned);
        let before = get("page[before]").map(str::to_owned);
        if after.is_some() && before.is_some() {
            return Err(invalid_value(
                "page[after] and page[before] cannot be combined",
            ));
        }
        return Ok(Mode::Cursor {
            size,
            asc,
            after,
            before,
        });
    }
    let page = match get("page") {
        None => 1,
        Some(p) => p
            .parse::<u64>()
            .ok()
            .filter(|&p| p >= 1)
            .ok_or_else(|| invalid_value("page must be a positive integer"))?,
    };
    let per_page = match get("per_page") {
        None => MAX_PAGE as u64,
        Some(p) => p
            .parse::<u64>()
            .ok()
            .filter(|p| (1..=MAX_PAGE as u64).contains(p))
            .ok_or_else(|| invalid_value("per_page must be an integer between 1 and 100"))?,
    };
    let asc = match (offset_sort, get("sort_order")) {
        // An API that ignores the parameter never reads, let alone refuses, its value.
        (OffsetSort::Ignored, _) | (OffsetSort::Honoured, None | Some("desc")) => false,
        (OffsetSort::Honoured, Some("asc")) => true,
        (OffsetSort::Honoured, Some(other)) => {
            return Err(invalid_value(&format!(
                "sort_order {other:?} is not supported"
            )))
        }
    };
    Ok(Mode::Offset {
        page,
        per_page,
        asc,
    })
}

pub(super) async fn list(sh: &Shared, path: &str, query: &str, now: i64) -> Response {
    inc(&sh.stats.list);
    let pairs = parse_pairs(query);
    let filters = match parse_filters(&pairs) {
        Ok(f) => f,
        Err(rejection) => return rejection.response(sh),
    };
    let mode = match parse_mode(&pairs, sh.cfg.offset_sort) {
        Ok(m) => m,
        Err(rejection) => return rejection.response(sh),
    };
    sh.windows
        .lock()
        .expect("windows lock")
        .push(filters.range.unwrap_or((i64::MIN, i64::MAX)));

    let has_cursor =
        matches!(&mode, Mode::Cursor { after, before, .. } if after.is_some() || before.is_some());
    let seq = sh.list_seq.fetch_add(1, Ordering::Relaxed);
    let fault = sh.cfg.faults.draw(seq, has_cursor);
    if let Some(response) = injected(sh, fault).await {
        return response;
    }

    let scope = scope(sh, &filters, now);
    let (body, served) = match page(sh, &scope, &pairs, path, mode, now) {
        Ok(page) => page,
        Err(rejection) => return rejection.response(sh),
    };

    if fault == Fault::Truncate {
        inc(&sh.stats.truncated);
        let mut body = body;
        body.truncate(body.len() / 2);
        return json(StatusCode::OK, body);
    }
    sh.stats.records.fetch_add(served as u64, Ordering::Relaxed);
    json(StatusCode::OK, body)
}

/// The answer of an injected fault, or `None` to serve the page (after a stall, if drawn).
async fn injected(sh: &Shared, fault: Fault) -> Option<Response> {
    match fault {
        Fault::Status(code) => return Some(injected_status(code)),
        Fault::TooMany => {
            let mut r = json(
                StatusCode::TOO_MANY_REQUESTS,
                r#"{"error":"APIRateLimitExceeded","description":"Number of allowed API requests per minute exceeded"}"#,
            );
            set(&mut r, "retry-after", "1");
            return Some(r);
        }
        Fault::Reset => {
            inc(&sh.stats.resets);
            return Some(reset_response());
        }
        Fault::InvalidCursor => return Some(Rejection::InvalidCursor.response(sh)),
        Fault::Stall => {
            inc(&sh.stats.stalls);
            tokio::time::sleep(sh.cfg.faults.stall).await;
        }
        Fault::Truncate | Fault::None => {}
    }
    None
}

/// The positions a request may see: its time range under the bound semantics, cut at what is
/// visible now.
fn scope<'a>(sh: &'a Shared, filters: &'a Filters, now: i64) -> Scope<'a> {
    let acc = &sh.account;
    let vis = sh.visible_end(now);
    let (a, b) = match filters.range {
        None => (0, acc.len()),
        Some((s, e)) => match sh.cfg.bounds {
            Bounds::Inclusive => (acc.lower_bound(s), acc.lower_bound(e.saturating_add(1))),
            Bounds::Exclusive => (acc.lower_bound(s.saturating_add(1)), acc.lower_bound(e)),
        },
    };
    let b = b.min(vis);
    let a = a.min(b);
    Scope {
        acc,
        filter: &filters.filter,
        a,
        b,
    }
}

/// The body of the page `mode` asks for, and the number of records in it.
fn page(
    sh: &Shared,
    scope: &Scope<'_>,
    pairs: &[(String, String)],
    path: &str,
    mode: Mode,
    now: i64,
) -> Result<(Vec<u8>, usize), Rejection> {
    Ok(match mode {
        Mode::Cursor {
            size,
            asc,
            after,
            before,
        } => {
            let decode = |c: &str| -> Result<usize, Rejection> {
                let (pos, issued) = sh.decode_cursor(c).ok_or(Rejection::InvalidCursor)?;
                if let Some(ttl) = sh.cfg.faults.cursor_ttl {
                    if now - issued > ttl.as_millis() as i64 {
                        return Err(Rejection::InvalidCursor);
                    }
                }
                Ok(pos)
            };
            let after = after.as_deref().map(&decode).transpose()?;
            let before = before.as_deref().map(&decode).transpose()?;
            cursor_page(sh, scope, pairs, path, size, asc, after, before, now)
        }
        Mode::Offset {
            page,
            per_page,
            asc,
        } => {
            if page.saturating_mul(per_page) > OFFSET_CAP {
                return Err(Rejection::OffsetCap);
            }
            offset_page(sh, scope, pairs, path, page, per_page, asc)
        }
    })
}

/// The positions `[a, b)` a request may see, and its field filter.
struct Scope<'a> {
    acc: &'a Account,
    filter: &'a SimFilter,
    a: usize,
    b: usize,
}

impl Scope<'_> {
    /// Up to `want` matching positions from `[lo, hi)` (clamped to the scope), scanning upwards
    /// when `forward`, else downwards.
    fn collect(&self, lo: usize, hi: usize, forward: bool, want: usize) -> Vec<usize> {
        let lo = lo.max(self.a);
        let hi = hi.min(self.b);
        if lo >= hi {
            return Vec::new();
        }
        let keep = |&i: &usize| self.acc.matches(i, self.filter);
        if forward {
            (lo..hi).filter(keep).take(want).collect()
        } else {
            (lo..hi).rev().filter(keep).take(want).collect()
        }
    }
}

/// The next ascending page (up to `size + 1` positions, in serving order) after `after` when the
/// record at `p` is served `places` places late: right after the record at `q`, `places` matching
/// records on (the scope's last when fewer follow). Its cursor is its own position, which
/// continues after `q`; a cursor at `q` continues with it. `None` when the record is not in the
/// scope or is already last. Not meant to be combined with `late_arrival`, which moves the
/// scope's end between pages.
fn late_order(
    scope: &Scope<'_>,
    after: Option<usize>,
    size: usize,
    p: usize,
    places: usize,
) -> Option<Vec<usize>> {
    if !(scope.a..scope.b).contains(&p) || !scope.acc.matches(p, scope.filter) {
        return None;
    }
    // The record `places` matching records on, or the scope's last when fewer follow.
    let q = *scope.collect(p + 1, scope.b, true, places).last()?;
    let lo = match after {
        Some(a) if a == p => q + 1,
        Some(a) => a + 1,
        None => 0,
    };
    let mut rows = Vec::with_capacity(size + 3);
    if after == Some(q) {
        rows.push(p);
    }
    for pos in scope.collect(lo, usize::MAX, true, size + 2) {
        if pos != p {
            rows.push(pos);
        }
        if pos == q {
            rows.push(p);
        }
    }
    rows.truncate(size + 1);
    Some(rows)
}

#[allow(clippy::too_many_arguments)]
fn cursor_page(
    sh: &Shared,
    scope: &Scope<'_>,
    pairs: &[(String, String)],
    path: &str,
    size: usize,
    asc: bool,
    after: Option<usize>,
    before: Option<usize>,
    now: i64,
) -> (Vec<u8>, usize) {
    // Storage order is the ascending sort order; "after" moves with the sort, "before" against it.
    let (forward, lo, hi) = match (after, before) {
        (Some(p), _) if asc => (true, p + 1, usize::MAX),
        (Some(p), _) => (false, 0, p),
        (None, Some(p)) if asc => (false, 0, p),
        (None, Some(p)) => (true, p + 1, usize::MAX),
        (None, None) => (asc, 0, usize::MAX),
    };
    let late = match sh.cfg.faults.served_late {
        Some((p, places)) if asc && before.is_none() => late_order(scope, after, size, p, places),
        _ => None,
    };
    let mut page = late.unwrap_or_else(|| scope.collect(lo, hi, forward, size + 1));
    let has_more = page.len() > size;
    page.truncate(size);
    let backwards = before.is_some();
    if backwards {
        page.reverse();
    }
    let first = page.first().map(|&p| sh.cursor(p, now));
    let last = page.last().map(|&p| sh.cursor(p, now));
    let drop = ["page[after]", "page[before]"];
    let next = match (&last, backwards) {
        (Some(c), false) if has_more => Some(link(sh, path, pairs, &drop, ("page[after]", c))),
        (Some(c), true) => Some(link(sh, path, pairs, &drop, ("page[after]", c))),
        _ => None,
    };
    let prev = match (&first, backwards) {
        (Some(c), true) if has_more => Some(link(sh, path, pairs, &drop, ("page[before]", c))),
        (Some(c), false) if after.is_some() => {
            Some(link(sh, path, pairs, &drop, ("page[before]", c)))
        }
        _ => None,
    };

    let mut buf = records_body(scope.acc, &page, sh.cfg.faults.mistyped_record);
    buf.extend_from_slice(b",\"meta\":{\"has_more\":");
    buf.extend_from_slice(if has_more { b"true" } else { b"false" });
    buf.extend_from_slice(b",\"after_cursor\":");
    opt_str(&mut buf, last.as_deref());
    buf.extend_from_slice(b",\"before_cursor\":");
    opt_str(&mut buf, first.as_deref());
    buf.extend_from_slice(b"},\"links\":{\"next\":");
    opt_str(&mut buf, next.as_deref());
    buf.extend_from_slice(b",\"prev\":");
    opt_str(&mut buf, prev.as_deref());
    buf.extend_from_slice(b"}}");
    (buf, page.len())
}

fn offset_page(
    sh: &Shared,
    scope: &Scope<'_>,
    pairs: &[(String, String)],
    path: &str,
    page: u64,
    per_page: u64,
    asc: bool,
) -> (Vec<u8>, usize) {
    let skip = ((page - 1) * per_page) as usize;
    let per = per_page as usize;
    let (count, rows) = if scope.filter.is_empty() {
        let count = scope.b - scope.a;
        let ranks = skip.min(count)..(skip + per).min(count);
        let rows = ranks
            .map(|r| if asc { scope.a + r } else { scope.b - 1 - r })
            .collect::<Vec<_>>();
        (count, rows)
    } else {
        let all = scope.collect(0, usize::MAX, asc, usize::MAX);
        let rows = all.iter().skip(skip).take(per).copied().collect();
        (all.len(), rows)
    };
    let next = (skip + per < count).then(|| {
        link(
            sh,
            path,
            pairs,
            &["page"],
            ("page", &(page + 1).to_string()),
        )
    });
    let prev = (page > 1).then(|| {
        link(
            sh,
            path,
            pairs,
            &["page"],
            ("page", &(page - 1).to_string()),
        )
    });
    let mut buf = records_body(scope.acc, &rows, sh.cfg.faults.mistyped_record);
    buf.extend_from_slice(b",\"next_page\":");
    opt_str(&mut buf, next.as_deref());
    buf.extend_from_slice(b",\"previous_page\":");
    opt_str(&mut buf, prev.as_deref());
    buf.extend_from_slice(b",\"count\":");
    buf.extend_from_slice(count.to_string().as_bytes());
    buf.push(b'}');
    (buf, rows.len())
}

/// `{"audit_logs":[...]` without the closing brace; the record whose id is `mistyped` (a fault)
/// carries its `actor_id` as a string.
fn records_body(acc: &Account, rows: &[usize], mistyped: Option<i64>) -> Vec<u8> {
    // ~700 bytes is a typical record; long descriptions grow the buffer once or twice.
    let mut buf = Vec::with_capacity(rows.len() * 700 + 512);
    buf.extend_from_slice(b"{\"audit_logs\":[");
    for (k, &i) in rows.iter().enumerate() {
        if k > 0 {
            buf.push(b',');
        }
        let start = buf.len();
        acc.write_record(&mut buf, i, false);
        if mistyped == Some(acc.id(i)) {
            quote_actor_id(&mut buf, start);
        }
    }
    buf.push(b']');
    buf
}

/// Turns the number after `"actor_id":` (from `start` on) into a string.
fn quote_actor_id(buf: &mut Vec<u8>, start: usize) {
    const KEY: &[u8] = b"\"actor_id\":";
    let Some(at) = buf[start..].windows(KEY.len()).position(|w| w == KEY) else {
        return;
    };
    let value = start + at + KEY.len();
    let end = value
        + buf[value..]
            .iter()
            .take_while(|b| b.is_ascii_digit() || **b == b'-')
            .count();
    buf.insert(end, b'"');
    buf.insert(value, b'"');
}

/// An absolute URL to the same endpoint with `drop` keys removed and `add` appended; every other
/// parameter is preserved in order.
fn link(
    sh: &Shared,
    path: &str,
    pairs: &[(String, String)],
    drop: &[&str],
    add: (&str, &str),
) -> String {
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if !drop.contains(&k.as_str()) {
            ser.append_pair(k, v);
        }
    }
    ser.append_pair(add.0, add.1);
    format!("{}{}?{}", sh.base_url, path, ser.finish())
}

fn opt_str(buf: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => {
            buf.push(b'"');
            escape_into(buf, s);
            buf.push(b'"');
        }
        None => buf.extend_from_slice(b"null"),
    }
}
