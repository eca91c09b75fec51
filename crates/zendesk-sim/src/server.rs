//! HTTP handlers: routing, authentication, rate limits, show, export and the shapes of injected
//! failures; the list operation (query validation, both pagination styles, the fault draw) is
//! [`list`]'s.
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

use super::account::Account;
use super::faults::mix;
use super::{SimConfig, Stats};

mod list;

#[cfg(test)]
pub(crate) use list::parse_ts;
use list::{list, parse_filters, parse_pairs};

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
