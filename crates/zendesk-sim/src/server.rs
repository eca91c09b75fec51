//! HTTP handlers: routing, authentication, rate limits, query validation, both pagination styles,
//! show, export and fault injection.
//!
//! Routing is one fallback handler rather than an axum route table so every response, whatever the
//! path, passes through the same rate-limit accounting and carries the same headers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::Router;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use bytes::Bytes;

use super::account::{escape_into, Account, SimFilter};
use super::faults::{mix, Fault};
use super::{Bounds, SimConfig, Stats};

/// Offset pagination never reaches past this many records (Zendesk answers 400).
const OFFSET_CAP: u64 = 10_000;
/// Largest `page[size]` / `per_page` Zendesk accepts.
const MAX_PAGE: usize = 100;
/// The export endpoint's own window: one request per this many milliseconds.
const EXPORT_WINDOW_MS: i64 = 60_000;
/// `export_last_ms` before the first export.
const NEVER: i64 = i64::MIN;

/// State shared by all handlers.
pub(crate) struct Shared {
    pub cfg: SimConfig,
    pub account: Arc<Account>,
    pub base_url: String,
    pub stats: Counters,
    /// `minute << 32 | count` for the current wall-clock minute; one atomic so requests never
    /// queue on a lock.
    rate: AtomicU64,
    export_last_ms: AtomicI64,
    /// Number of list requests seen; drives the fault draw.
    pub list_seq: AtomicU64,
    /// `(from, to)` unix seconds of each accepted list request; `(i64::MIN, i64::MAX)` for none.
    pub windows: Mutex<Vec<(i64, i64)>>,
    bearer: Option<String>,
    basic: Option<String>,
    /// Minted access tokens: `Bearer …` header → (expiry in unix ms or `i64::MAX`, whether the
    /// scope reads audit logs).
    minted: Mutex<HashMap<String, (i64, bool)>>,
    /// The configured OAuth token was revoked (see `Simulator::revoke_tokens`).
    pub static_revoked: AtomicBool,
    /// Minted tokens are answered 401 (see `Simulator::refuse_minted_tokens`).
    pub refuse_minted: AtomicBool,
    /// Records created at or after this unix second are invisible (see
    /// [`Simulator::hide_from`](super::Simulator::hide_from)); `i64::MAX`: none hidden.
    pub hidden_from: AtomicI64,
}

impl Shared {
    pub fn new(cfg: SimConfig, account: Arc<Account>, base_url: String) -> Shared {
        let bearer = cfg.oauth_token.as_ref().map(|t| format!("Bearer {t}"));
        let basic = cfg.api_token.as_ref().map(|(email, token)| {
            format!(
                "Basic {}",
                STANDARD.encode(format!("{email}/token:{token}"))
            )
        });
        Shared {
            cfg,
            account,
            base_url,
            stats: Counters::default(),
            rate: AtomicU64::new(0),
            export_last_ms: AtomicI64::new(NEVER),
            list_seq: AtomicU64::new(0),
            windows: Mutex::new(Vec::new()),
            bearer,
            basic,
            minted: Mutex::new(HashMap::new()),
            static_revoked: AtomicBool::new(false),
            refuse_minted: AtomicBool::new(false),
            hidden_from: AtomicI64::new(i64::MAX),
        }
    }

    /// `None`: 401. `Some(false)`: authenticated, but with a token whose scope does not read
    /// audit logs (403, as Zendesk answers a token minted for an invalid scope).
    fn authorized(&self, headers: &HeaderMap, now_ms: i64) -> Option<bool> {
        if self.bearer.is_none() && self.basic.is_none() && self.cfg.oauth_client.is_none() {
            return Some(true);
        }
        let value = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())?;
        if self.basic.as_deref() == Some(value)
            || (self.bearer.as_deref() == Some(value)
                && !self.static_revoked.load(Ordering::Relaxed))
        {
            return Some(true);
        }
        if self.refuse_minted.load(Ordering::Relaxed) {
            return None;
        }
        let minted = self.minted.lock().expect("minted lock");
        match minted.get(value) {
            Some(&(expires_ms, reads)) if now_ms < expires_ms => Some(reads),
            _ => None,
        }
    }

    pub fn revoke_minted(&self) {
        self.minted.lock().expect("minted lock").clear();
    }

    /// Counts one request against the per-minute limit. Returns `(allowed, remaining, seconds
    /// until the minute resets)`.
    fn take_rate(&self, now_ms: i64) -> (bool, u32, i64) {
        let now_s = now_ms.div_euclid(1000);
        let minute = (now_s.div_euclid(60) as u64) & 0xFFFF_FFFF;
        let mut cur = self.rate.load(Ordering::Relaxed);
        let count = loop {
            let count = if cur >> 32 == minute {
                ((cur & 0xFFFF_FFFF) as u32).saturating_add(1)
            } else {
                1
            };
            match self.rate.compare_exchange_weak(
                cur,
                minute << 32 | u64::from(count),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break count,
                Err(actual) => cur = actual,
            }
        };
        let limit = self.cfg.rate_limit_per_minute;
        let reset = (60 - now_s.rem_euclid(60)).max(1);
        (count <= limit, limit.saturating_sub(count), reset)
    }

    /// Last position (exclusive) visible at `now_ms` under late arrival.
    fn visible_end(&self, now_ms: i64) -> usize {
        let hidden_from = self.hidden_from.load(Ordering::Relaxed);
        let held_back = if hidden_from == i64::MAX {
            self.account.len()
        } else {
            self.account.lower_bound(hidden_from)
        };
        held_back.min(match self.cfg.faults.late_arrival {
            None => self.account.len(),
            Some(lag) => {
                let cutoff = (now_ms - lag.as_millis() as i64).div_euclid(1000);
                self.account.lower_bound(cutoff.saturating_add(1))
            }
        })
    }

    fn cursor(&self, pos: usize, now_ms: i64) -> String {
        let mut raw = [0u8; 24];
        raw[..8].copy_from_slice(&(pos as u64).to_le_bytes());
        raw[8..16].copy_from_slice(&now_ms.to_le_bytes());
        raw[16..].copy_from_slice(&self.cursor_check(pos as u64, now_ms).to_le_bytes());
        URL_SAFE_NO_PAD.encode(raw)
    }

    fn cursor_check(&self, pos: u64, issued_ms: i64) -> u64 {
        mix(self.cfg.seed ^ 0xC0_5050 ^ pos ^ (issued_ms as u64).rotate_left(17))
    }

    /// Decodes a cursor into `(position, issued_ms)`; `None` for anything we did not issue.
    fn decode_cursor(&self, s: &str) -> Option<(usize, i64)> {
        let raw = URL_SAFE_NO_PAD.decode(s).ok()?;
        let raw: [u8; 24] = raw.try_into().ok()?;
        let pos = u64::from_le_bytes(raw[..8].try_into().ok()?);
        let issued = i64::from_le_bytes(raw[8..16].try_into().ok()?);
        let check = u64::from_le_bytes(raw[16..].try_into().ok()?);
        (check == self.cursor_check(pos, issued) && (pos as usize) < self.account.len())
            .then_some((pos as usize, issued))
    }
}

/// Lock-free counters behind [`Stats`].
#[derive(Default)]
pub(crate) struct Counters {
    requests: AtomicU64,
    list: AtomicU64,
    show: AtomicU64,
    export: AtomicU64,
    s400: AtomicU64,
    s401: AtomicU64,
    s403: AtomicU64,
    s429: AtomicU64,
    s5xx: AtomicU64,
    resets: AtomicU64,
    truncated: AtomicU64,
    stalls: AtomicU64,
    invalid_cursors: AtomicU64,
    records: AtomicU64,
    tokens: AtomicU64,
}

fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    fn all(&self) -> [&AtomicU64; 15] {
        [
            &self.requests,
            &self.list,
            &self.show,
            &self.export,
            &self.s400,
            &self.s401,
            &self.s403,
            &self.s429,
            &self.s5xx,
            &self.resets,
            &self.truncated,
            &self.stalls,
            &self.invalid_cursors,
            &self.records,
            &self.tokens,
        ]
    }

    pub fn snapshot(&self) -> Stats {
        let [requests, list_requests, show_requests, export_requests, responses_400, responses_401, responses_403, responses_429, responses_5xx, resets, truncated, stalls, invalid_cursors, records_served, tokens_minted] =
            self.all().map(|c| c.load(Ordering::Relaxed));
        Stats {
            requests,
            list_requests,
            show_requests,
            export_requests,
            responses_400,
            responses_401,
            responses_403,
            responses_429,
            responses_5xx,
            resets,
            truncated,
            stalls,
            invalid_cursors,
            records_served,
            tokens_minted,
        }
    }

    pub fn reset(&self) {
        for c in self.all() {
            c.store(0, Ordering::Relaxed);
        }
    }
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(dispatch).with_state(shared)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

async fn dispatch(State(sh): State<Arc<Shared>>, req: Request) -> Response {
    inc(&sh.stats.requests);
    if let Some(mean) = sh.cfg.faults.latency {
        // Jitter of +-50% around the mean, as a real API's latency varies.
        tokio::time::sleep(mean.mul_f64(0.5 + fastrand::f64())).await;
    }
    let now = now_ms();
    let (allowed, remaining, reset) = sh.take_rate(now);
    let mut resp = if allowed {
        route(&sh, req, now).await
    } else {
        let mut r = json(
            StatusCode::TOO_MANY_REQUESTS,
            r#"{"error":"APIRateLimitExceeded","description":"Number of allowed API requests per minute exceeded"}"#,
        );
        set(&mut r, "retry-after", &reset.to_string());
        r
    };
    set(
        &mut resp,
        "x-rate-limit",
        &sh.cfg.rate_limit_per_minute.to_string(),
    );
    set(&mut resp, "x-rate-limit-remaining", &remaining.to_string());
    match resp.status().as_u16() {
        400 => inc(&sh.stats.s400),
        401 => inc(&sh.stats.s401),
        403 => inc(&sh.stats.s403),
        429 => inc(&sh.stats.s429),
        500..=599 => inc(&sh.stats.s5xx),
        _ => {}
    }
    resp
}

async fn route(sh: &Shared, req: Request, now: i64) -> Response {
    if req.uri().path() == "/oauth/tokens" {
        return mint(sh, req, now).await;
    }
    let Some(reads_audit_logs) = sh.authorized(req.headers(), now) else {
        return json(
            StatusCode::UNAUTHORIZED,
            r#"{"error":"Couldn't authenticate you"}"#,
        );
    };
    // Owned copies: the request body is not `Sync`, so no borrow of it may live across an await.
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    drop(req);
    let Some(rest) = path.strip_prefix("/api/v2/audit_logs") else {
        return not_found();
    };
    if !sh.cfg.enterprise || !reads_audit_logs {
        return json(
            StatusCode::FORBIDDEN,
            r#"{"error":"Forbidden","description":"You do not have access to this page. Please contact the account owner of this help desk for further help."}"#,
        );
    }
    match (method, rest) {
        (Method::GET, "" | ".json") => list(sh, &path, &query, now).await,
        (Method::POST, "/export" | "/export.json") => export(sh, &query, now),
        (Method::GET, id) if id.starts_with('/') => {
            let id = &id[1..];
            show(sh, id.strip_suffix(".json").unwrap_or(id), now)
        }
        _ => not_found(),
    }
}

/// `POST /oauth/tokens`: the client-credentials grant, with the fields in a JSON body (Zendesk's
/// documented form) or a form body.
async fn mint(sh: &Shared, req: Request, now: i64) -> Response {
    let oauth_error = |status: StatusCode, error: &str, description: &str| {
        json(
            status,
            serde_json::json!({"error": error, "error_description": description}).to_string(),
        )
    };
    if req.method() != Method::POST {
        return not_found();
    }
    let Ok(body) = axum::body::to_bytes(req.into_body(), 64 * 1024).await else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "body too large");
    };
    let fields: HashMap<String, String> = match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(serde_json::Value::Object(map)) => map
            .into_iter()
            .filter_map(|(k, v)| Some((k, v.as_str()?.to_string())))
            .collect(),
        _ => url::form_urlencoded::parse(&body).into_owned().collect(),
    };
    let field = |name: &str| fields.get(name).map(String::as_str).unwrap_or("");
    if field("grant_type") != "client_credentials" {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "The authorization grant type is not supported by the authorization server.",
        );
    }
    let known =
        sh.cfg.oauth_client.as_ref().is_some_and(|(id, secret)| {
            field("client_id") == id && field("client_secret") == secret
        });
    if !known {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method.",
        );
    }
    let scope = field("scope");
    // An invalid scope still gets a token; every audit-log request with it answers 403.
    let reads = scope
        .split_whitespace()
        .any(|s| s == "read" || s == "auditlogs:read");
    let n = sh.stats.tokens.fetch_add(1, Ordering::Relaxed) + 1;
    let token = format!("sim-minted-{n}-{:016x}", fastrand::u64(..));
    let lifetime = sh.cfg.token_lifetime;
    let expires_ms = lifetime.map_or(i64::MAX, |d| now.saturating_add(d.as_millis() as i64));
    let mut minted = sh.minted.lock().expect("minted lock");
    // Expired tokens are answered 401 whether remembered or not: forgetting them bounds memory.
    minted.retain(|_, &mut (expires, _)| expires > now);
    minted.insert(format!("Bearer {token}"), (expires_ms, reads));
    drop(minted);
    let mut answer = serde_json::json!({
        "access_token": token,
        "token_type": "bearer",
        "scope": scope,
    });
    if let Some(lifetime) = lifetime {
        answer["expires_in"] = lifetime.as_secs().max(1).into();
    }
    json(StatusCode::OK, answer.to_string())
}

fn show(sh: &Shared, id: &str, now: i64) -> Response {
    inc(&sh.stats.show);
    let pos = id
        .parse::<i64>()
        .ok()
        .and_then(|id| sh.account.find(id))
        .filter(|&pos| pos < sh.visible_end(now));
    let Some(pos) = pos else {
        return json(
            StatusCode::NOT_FOUND,
            r#"{"error":"RecordNotFound","description":"Not found"}"#,
        );
    };
    let mut buf = Vec::with_capacity(1024);
    buf.extend_from_slice(b"{\"audit_log\":");
    sh.account.write_record(&mut buf, pos, true);
    buf.push(b'}');
    json(StatusCode::OK, buf)
}

fn export(sh: &Shared, query: &str, now: i64) -> Response {
    inc(&sh.stats.export);
    let pairs = parse_pairs(query);
    if let Err(rejection) = parse_filters(&pairs) {
        return rejection.response(sh);
    }
    let mut last = sh.export_last_ms.load(Ordering::Relaxed);
    loop {
        if last != NEVER && now - last < EXPORT_WINDOW_MS {
            let wait = (last + EXPORT_WINDOW_MS - now + 999) / 1000;
            let wait = wait.max(1).to_string();
            let mut r = json(
                StatusCode::TOO_MANY_REQUESTS,
                r#"{"error":"TooManyRequests","description":"Audit log export is limited to 1 request per minute"}"#,
            );
            set(&mut r, "retry-after", &wait);
            set(
                &mut r,
                "zendesk-ratelimit-audit-logs-export",
                &format!("total=1; remaining=0; resets={wait}"),
            );
            return r;
        }
        match sh
            .export_last_ms
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => break,
            Err(actual) => last = actual,
        }
    }
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::ACCEPTED;
    set(
        &mut r,
        "zendesk-ratelimit-audit-logs-export",
        &format!("total=1; remaining=0; resets={}", EXPORT_WINDOW_MS / 1000),
    );
    r
}

/// The time range and field filters shared by list and export.
struct Filters {
    /// `(start, end)` unix seconds as sent.
    range: Option<(i64, i64)>,
    filter: SimFilter,
}

fn parse_pairs(query: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn parse_filters(pairs: &[(String, String)]) -> Result<Filters, Rejection> {
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

fn parse_mode(pairs: &[(String, String)]) -> Result<Mode, Rejection> {
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
    let asc = match get("sort_order") {
        None | Some("desc") => false,
        Some("asc") => true,
        Some(other) => {
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

async fn list(sh: &Shared, path: &str, query: &str, now: i64) -> Response {
    inc(&sh.stats.list);
    let pairs = parse_pairs(query);
    let filters = match parse_filters(&pairs) {
        Ok(f) => f,
        Err(rejection) => return rejection.response(sh),
    };
    let mode = match parse_mode(&pairs) {
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

fn json(status: StatusCode, body: impl Into<Bytes>) -> Response {
    let mut r = Response::new(Body::from(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

fn set(r: &mut Response, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
}

fn invalid_value(detail: &str) -> Rejection {
    Rejection::InvalidValue(detail.to_owned())
}

/// Why a list or export request is refused before any page is rendered: always a 400.
#[derive(Debug, thiserror::Error)]
enum Rejection {
    #[error("{0}")]
    InvalidValue(String),
    #[error("The cursor is invalid or has expired")]
    InvalidCursor,
    #[error("Offset pagination is limited to the first {OFFSET_CAP} records. Use cursor pagination (page[size]) to fetch more.")]
    OffsetCap,
}

impl Rejection {
    /// The body in the shape Zendesk uses for each kind of refusal.
    fn response(&self, sh: &Shared) -> Response {
        let body = match self {
            Rejection::InvalidValue(detail) => serde_json::json!({
                "errors": [{"code": "InvalidValue", "title": "Invalid value", "detail": detail}]
            }),
            Rejection::InvalidCursor => {
                inc(&sh.stats.invalid_cursors);
                serde_json::json!({"error": "InvalidCursor", "description": self.to_string()})
            }
            Rejection::OffsetCap => serde_json::json!({
                "error": "InvalidPaginationParameter",
                "description": self.to_string(),
            }),
        };
        json(StatusCode::BAD_REQUEST, body.to_string())
    }
}

fn not_found() -> Response {
    json(
        StatusCode::NOT_FOUND,
        r#"{"error":"InvalidEndpoint","description":"Not found"}"#,
    )
}

/// Injected 5xx answers in the shapes Zendesk's edge returns: JSON, an HTML proxy page, plain text.
fn injected_status(code: u16) -> Response {
    match code {
        502 => {
            let mut r = Response::new(Body::from(
                "<html><head><title>502 Bad Gateway</title></head><body>502 Bad Gateway</body></html>",
            ));
            *r.status_mut() = StatusCode::BAD_GATEWAY;
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
            r
        }
        503 => {
            let mut r = Response::new(Body::from("Service Unavailable"));
            *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            set(&mut r, "retry-after", "1");
            r
        }
        _ => json(
            StatusCode::INTERNAL_SERVER_ERROR,
            r#"{"error":"InternalError","description":"Something went wrong"}"#,
        ),
    }
}

/// A response whose body fails before its first frame: hyper then closes the connection before the
/// buffered head is flushed, so the client sees the connection drop with no response.
fn reset_response() -> Response {
    let stream = futures::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "injected reset",
        ))
    });
    Response::new(Body::from_stream(stream))
}
