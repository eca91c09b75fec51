//! The HTTP client: one per process, authenticated, budgeted and retrying what is transient.
//!
//! Retryability is decided where a response is classified: 429, 5xx, timeouts, resets and a 200
//! whose body does not parse are transient; 400, 401, 403 and 404 are permanent and fail at once
//! with a message a person can act on. A TLS certificate the machine does not trust is permanent
//! too, and fatal for the run: every other request goes to the same host through the same trust
//! store.
//!
//! Nothing read from the network may panic the process: every header and body parser here is
//! total (a value that does not parse is treated as absent) and property-tested on arbitrary
//! input.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use tokio::time::Instant;
use url::Url;

use super::auth::{Credentials, OAuthClient};
use super::budget::RequestBudget;
use super::token::{Token, TokenCache};

/// The client-credentials token endpoint, under the same base URL as the API.
const TOKEN_PATH: &str = "/oauth/tokens";

/// When Zendesk deactivates every API token, for the one warning a run with one gets.
const API_TOKEN_END: &str = "2027-04-30";

/// Longest excerpt of an error body kept in a message.
const DETAIL_LIMIT: usize = 300;

/// Longest `Retry-After` honoured: a larger value is more likely a bug than a plan, and the run's
/// retry time bound applies anyway.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// How transient failures are retried.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts per request, the first included (429s do not count: they are the server pacing us).
    pub max_attempts: u32,
    /// Time one request may spend retrying before it fails.
    pub max_elapsed: Duration,
    /// First backoff; doubled per attempt, with jitter, up to `max_delay`.
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// The flags' defaults (`--max-attempts`, `--max-retry-time`, `--retry-base-delay`, each
    /// explained beside its flag in [`crate::config::cli`]), and backoff doubling to a 60 s ceiling.
    fn default() -> Self {
        use crate::config::cli::{
            DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_RETRY_TIME, DEFAULT_RETRY_BASE_DELAY,
        };
        let duration = |text| {
            crate::config::duration::parse_duration_ms(text).expect("the flags' defaults parse")
        };
        RetryPolicy {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            max_elapsed: duration(DEFAULT_MAX_RETRY_TIME),
            base_delay: duration(DEFAULT_RETRY_BASE_DELAY),
            max_delay: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The backoff before attempt `attempt + 1`: exponential with "equal jitter" (half fixed, half
    /// random), so workers that failed together do not retry together.
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.max_delay);
        exp / 2 + exp.mul_f64(fastrand::f64() / 2.0)
    }
}

/// Settings of the HTTP client.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// `https://SUB.zendesk.com`, or a replacement (simulator, proxy).
    pub base_url: Url,
    pub credentials: Credentials,
    /// Time for one request, body included.
    pub request_timeout: Duration,
    pub retry: RetryPolicy,
}

/// Counters of what the client did, for the run summary.
#[derive(Debug, Default)]
pub struct ClientStats {
    pub requests: AtomicU64,
    pub retries: AtomicU64,
    pub throttled: AtomicU64,
    pub bytes: AtomicU64,
    /// The API's latency (request sent to body received), in microseconds: a moving average of
    /// the answers so far, 0 before the first.
    pub latency_micros: AtomicU64,
}

impl ClientStats {
    /// Adds one answer's latency to the moving average (each answer weighs a tenth). Concurrent
    /// updates may lose one another's; this is an estimate.
    fn observe_latency(&self, latency: Duration) {
        let sample = latency.as_micros().min(u128::from(u64::MAX)) as u64;
        let average = match self.latency_micros.load(Ordering::Relaxed) {
            0 => sample,
            old => (old * 9 + sample) / 10,
        };
        self.latency_micros.store(average.max(1), Ordering::Relaxed);
    }

    /// The API's latency so far, `None` before the first answer.
    pub fn latency(&self) -> Option<Duration> {
        match self.latency_micros.load(Ordering::Relaxed) {
            0 => None,
            micros => Some(Duration::from_micros(micros)),
        }
    }
}

/// The token endpoint refused the OAuth client for good (400, 401, 403: `invalid_client`,
/// `invalid_scope`, `unauthorized_client`…). It never holds the secret or the response body, only
/// the OAuth error code.
#[derive(Clone, Debug)]
pub struct TokenRefusal {
    pub url: String,
    pub status: u16,
    /// The OAuth `error` code, or `no error code`.
    pub error: String,
    /// Which credential to check.
    pub hint: &'static str,
}

/// Why a request failed for good.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("Zendesk rejected the credentials (401) for {url}: {hint} ({detail})")]
    Unauthorized {
        url: String,
        /// What the person should check or do, for the kind of credential in use.
        hint: String,
        detail: String,
    },
    #[error("the OAuth token endpoint refused the client credentials ({status} {error}) at {url}: {hint}", status = .0.status, error = .0.error, url = .0.url, hint = .0.hint)]
    TokenRefused(TokenRefusal),
    #[error("Zendesk refused access (403) to {url}: audit logs need an Enterprise plan and an admin user, or the token lacks the auditlogs:read scope (with OAuth client credentials: check ZENDESK_OAUTH_SCOPE and the scopes the client may use) ({detail})")]
    Forbidden { url: String, detail: String },
    #[error("no such audit log (404): {url}")]
    NotFound { url: String },
    #[error("Zendesk refused the request ({status}) {url}: {detail}")]
    Rejected {
        url: String,
        status: u16,
        detail: String,
    },
    #[error("Zendesk refused the pagination cursor ({status}) at {url}: {detail}")]
    CursorRefused {
        url: String,
        status: u16,
        detail: String,
    },
    #[error("offset pagination reads at most 10,000 records per query and {url} matches {count}: use a smaller --window, or --pagination cursor")]
    OffsetCap { url: String, count: u64 },
    #[error("gave up on {url} after {attempts} attempts in {elapsed:?}: {last}")]
    GaveUp {
        url: String,
        attempts: u32,
        elapsed: Duration,
        last: String,
    },
    #[error("unexpected response from {url}: {reason}")]
    Protocol { url: String, reason: String },
    /// The server's certificate chain does not verify against this machine's trusted roots (or is
    /// not valid for the host name): retrying cannot help, and every window would fail the same
    /// way.
    #[error("the TLS certificate of {host} is not trusted ({detail}); if a proxy or a private CA signs it, point SSL_CERT_FILE at a PEM bundle that holds that CA, e.g. SSL_CERT_FILE=/path/to/ca.pem (unless SSL_CERT_DIR is set too, the file replaces the system's roots for every host, storage included, so append the CA to a copy of the system bundle); HTTPS_PROXY is honoured")]
    UntrustedCertificate { host: String, detail: String },
    /// Pagination stopped advancing: the API handed back a cursor already used in this query, or
    /// pages that add no record not already received. The window fails (it is not restarted: the
    /// server would loop again).
    #[error("pagination does not advance at {url} (cursor {cursor}): {reason}")]
    PaginationLoop {
        url: String,
        cursor: String,
        reason: String,
    },
    /// An offset query ended with a number of distinct records other than the `count` the API
    /// reported for it: rows shifted between pages (records added or removed while paging, or
    /// ties on `created_at` ordered differently on two requests), so some may have been skipped.
    #[error("offset pagination of created_at {range} received {got} distinct records but the API counts {expected} for that query ({url}): rows shifted between pages; the window is retried on the next run, or use --pagination cursor")]
    CountMismatch {
        url: String,
        range: String,
        expected: u64,
        got: u64,
    },
}

impl ApiError {
    /// Whether every other request with the same credentials will fail the same way, so the run
    /// should stop instead of failing window after window.
    pub fn is_fatal_for_run(&self) -> bool {
        matches!(
            self,
            ApiError::Unauthorized { .. }
                | ApiError::TokenRefused(_)
                | ApiError::Forbidden { .. }
                | ApiError::UntrustedCertificate { .. }
        )
    }
}

/// One failed attempt that may succeed if repeated.
enum Transient {
    Status {
        status: u16,
        detail: String,
        retry_after: Option<Duration>,
    },
    Network(String),
    BadBody(String),
}

impl Transient {
    fn describe(&self) -> String {
        match self {
            Transient::Status { status, detail, .. } => format!("HTTP {status}: {detail}"),
            Transient::Network(e) => e.clone(),
            Transient::BadBody(e) => format!("response body did not parse: {e}"),
        }
    }
}

/// How requests are authenticated.
#[derive(Clone)]
enum Auth {
    /// The same header on every request (an OAuth token or an API token from the environment).
    Static(HeaderValue),
    /// Access tokens minted from an OAuth client, shared by every clone of the client.
    Minted {
        client: Arc<OAuthClient>,
        tokens: Arc<TokenCache>,
    },
}

/// Which request a retry loop sends.
#[derive(Clone, Copy)]
enum Target<'a> {
    /// An API request, authenticated.
    Api(&'a Method),
    /// The client-credentials grant (the credentials travel in the body).
    Token(&'a OAuthClient),
}

/// The authenticated, budgeted client. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    credentials: Credentials,
    auth: Auth,
    /// Some request with these credentials succeeded: a later 401 means the credential stopped
    /// working mid-run (expired or revoked), not that it was wrong from the start.
    accepted: Arc<AtomicBool>,
    retry: RetryPolicy,
    budget: Arc<RequestBudget>,
    stats: Arc<ClientStats>,
}

/// Why the process's HTTP client could not be built: the configuration, never the network.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the credentials contain characters not allowed in an HTTP header")]
    CredentialsNotAHeader,
    #[error("HTTP client: {0}{TRUST_HINT}")]
    Build(String),
}

impl Client {
    /// Builds the process's client. With client credentials no token is minted yet: see
    /// [`Client::authenticate`].
    pub fn new(options: ClientOptions, budget: Arc<RequestBudget>) -> Result<Client, ClientError> {
        let auth = match (&options.credentials, options.credentials.header()) {
            (Credentials::ClientCredentials(client), _) => Auth::Minted {
                client: Arc::new(client.clone()),
                tokens: Arc::new(TokenCache::default()),
            },
            (_, Some(header)) => {
                let mut value = HeaderValue::from_str(header.expose())
                    .map_err(|_| ClientError::CredentialsNotAHeader)?;
                value.set_sensitive(true);
                Auth::Static(value)
            }
            (_, None) => unreachable!("every static credential has a header"),
        };
        if matches!(options.credentials, Credentials::ApiToken { .. }) {
            warn_api_token_once();
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("auditlake/", env!("CARGO_PKG_VERSION")))
            .timeout(options.request_timeout)
            .connect_timeout(Duration::from_secs(10).min(options.request_timeout))
            // A redirect could carry the credentials to another host: none are followed.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ClientError::Build(describe_reqwest(&e)))?;
        Ok(Client {
            http,
            base: options.base_url,
            credentials: options.credentials,
            auth,
            accepted: Arc::new(AtomicBool::new(false)),
            retry: options.retry,
            budget,
            stats: Arc::new(ClientStats::default()),
        })
    }

    /// The run's counters.
    pub fn stats(&self) -> &Arc<ClientStats> {
        &self.stats
    }

    /// The shared request budget.
    pub fn budget(&self) -> &Arc<RequestBudget> {
        &self.budget
    }

    /// Mints the process's first access token when the credentials are an OAuth client, so that
    /// a wrong secret stops the run before anything starts; nothing to do otherwise.
    pub async fn authenticate(&self) -> Result<(), ApiError> {
        if let Auth::Minted { .. } = self.auth {
            self.authorization().await?;
        }
        Ok(())
    }

    /// Access tokens minted so far (0 unless the credentials are an OAuth client).
    pub fn tokens_minted(&self) -> u64 {
        match &self.auth {
            Auth::Minted { tokens, .. } => tokens.minted(),
            Auth::Static(_) => 0,
        }
    }

    /// The `Authorization` header for the next request, and the generation of the minted token
    /// in it (`None` for a static credential).
    async fn authorization(&self) -> Result<(HeaderValue, Option<u64>), ApiError> {
        match &self.auth {
            Auth::Static(header) => Ok((header.clone(), None)),
            Auth::Minted { client, tokens } => {
                let (header, generation) = tokens.get(|| self.mint(client)).await?;
                Ok((header, Some(generation)))
            }
        }
    }

    /// One client-credentials grant, with the retries of any request (5xx, 429 and timeouts are
    /// transient; the endpoint's 4xx answers are permanent).
    ///
    /// Boxed: it runs inside [`Client::authorization`], which API requests await in the same
    /// retry loop.
    fn mint<'a>(
        &'a self,
        client: &'a OAuthClient,
    ) -> futures::future::BoxFuture<'a, Result<Token, ApiError>> {
        Box::pin(async move {
            let url = self.url(TOKEN_PATH, &[]);
            let (_, token) = self
                .send_to(Target::Token(client), &url, parse_token)
                .await?;
            Ok(token)
        })
    }

    /// Forgets a minted token that Zendesk refused, so the next request mints another.
    async fn invalidate(&self, generation: u64) {
        if let Auth::Minted { tokens, .. } = &self.auth {
            tokens.invalidate(generation).await;
        }
    }

    /// `base` joined with an API path (`/api/v2/...`) and query pairs, in order.
    pub fn url(&self, path: &str, pairs: &[(&str, String)]) -> Url {
        let mut url = self.base.clone();
        let base_path = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{base_path}{path}"));
        if !pairs.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())));
        }
        url
    }

    /// GETs `url`, retrying transient failures; `check` parses the body and decides whether it is
    /// a usable response (an unparseable 200 is transient).
    pub async fn get<T>(
        &self,
        url: &Url,
        check: impl Fn(&[u8]) -> Result<T, String>,
    ) -> Result<(Bytes, T), ApiError> {
        self.send(Method::GET, url, check).await
    }

    /// Sends one request with retries. 4xx statuses are returned to `check` only through
    /// [`ApiError`]; `check` sees 2xx bodies.
    pub async fn send<T>(
        &self,
        method: Method,
        url: &Url,
        check: impl Fn(&[u8]) -> Result<T, String>,
    ) -> Result<(Bytes, T), ApiError> {
        self.send_to(Target::Api(&method), url, check).await
    }

    /// The retry loop of [`Client::send`] and of the token grant. A 401 for a minted token is
    /// answered by minting once more and retrying (the token may have been revoked, or expired
    /// early by the server's clock); a second 401 is final.
    async fn send_to<T>(
        &self,
        target: Target<'_>,
        url: &Url,
        check: impl Fn(&[u8]) -> Result<T, String>,
    ) -> Result<(Bytes, T), ApiError> {
        let started = Instant::now();
        let mut attempts = 0u32;
        let mut reminted = false;
        loop {
            attempts += 1;
            // The budget's turn first, then the token: a token taken before a long wait for the
            // turn could expire on the way (with short lifetimes and a slow budget it did).
            self.budget.acquire().await;
            let (request, generation) = self.request_to(&target, url).await?;
            let failure = match self.attempt(request, url).await {
                Ok(Ok((status, body))) if status.is_success() => match check(&body) {
                    Ok(parsed) => {
                        if let Target::Api(_) = target {
                            self.accepted.store(true, Ordering::Relaxed);
                        }
                        return Ok((body, parsed));
                    }
                    Err(e) => Transient::BadBody(e),
                },
                Ok(Ok((StatusCode::UNAUTHORIZED, _))) if generation.is_some() && !reminted => {
                    tracing::warn!(
                        url = %url,
                        "Zendesk refused the access token (401); minting a new one and retrying once"
                    );
                    reminted = true;
                    attempts -= 1;
                    self.invalidate(generation.unwrap_or_default()).await;
                    continue;
                }
                Ok(Ok((status, body))) => {
                    return Err(match target {
                        Target::Api(_) => self.permanent(url, status, &body, reminted),
                        Target::Token(_) => token_refused(url, status, &body),
                    })
                }
                Ok(Err(transient)) => transient,
                Err(permanent) => return Err(permanent),
            };
            let throttled = matches!(failure, Transient::Status { status: 429, .. });
            if throttled {
                // 429s are pacing, not failure: they don't use up attempts.
                attempts -= 1;
            }
            let delay = self.retry_delay(&failure, attempts, started, url)?;
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                url = %url,
                attempt = attempts,
                delay_ms = delay.as_millis() as u64,
                error = %failure.describe(),
                "request failed, retrying"
            );
            if throttled {
                self.budget.pause(delay);
            } else {
                tokio::time::sleep(delay).await;
            }
        }
    }

    /// The request for one attempt, with a fresh authorization for the API (and the generation of
    /// a minted token, to replace it on a 401).
    async fn request_to(
        &self,
        target: &Target<'_>,
        url: &Url,
    ) -> Result<(reqwest::RequestBuilder, Option<u64>), ApiError> {
        Ok(match target {
            Target::Api(method) => {
                let (header, generation) = self.authorization().await?;
                let request = self
                    .http
                    .request(Method::clone(method), url.clone())
                    .header(AUTHORIZATION, header);
                (request, generation)
            }
            Target::Token(client) => (self.token_request(client, url), None),
        })
    }

    /// How long to wait before the next attempt after `failure`: the answer's Retry-After, one
    /// second for a 429 without one, else the backoff; an error once the attempts or the retry
    /// time are used up.
    fn retry_delay(
        &self,
        failure: &Transient,
        attempts: u32,
        started: Instant,
        url: &Url,
    ) -> Result<Duration, ApiError> {
        let elapsed = started.elapsed();
        let delay = match failure {
            Transient::Status {
                retry_after: Some(d),
                ..
            } => *d,
            Transient::Status { status: 429, .. } => Duration::from_secs(1),
            _ => self.retry.backoff(attempts),
        };
        if attempts >= self.retry.max_attempts || elapsed + delay > self.retry.max_elapsed {
            return Err(ApiError::GaveUp {
                url: url.to_string(),
                attempts: attempts.max(1),
                elapsed,
                last: failure.describe(),
            });
        }
        Ok(delay)
    }

    /// Sends one request without retrying, and returns any HTTP answer with its headers (for
    /// operations whose 429 must be reported, not waited out, such as the export request).
    ///
    /// A 401 for a minted token is the exception: the token is replaced and the request sent
    /// once more, as in [`Client::send`].
    pub async fn send_once(
        &self,
        method: Method,
        url: &Url,
    ) -> Result<(StatusCode, HeaderMap, Bytes), ApiError> {
        let mut reminted = false;
        loop {
            self.budget.acquire().await;
            let (header, generation) = self.authorization().await?;
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            let response = self
                .http
                .request(method.clone(), url.clone())
                .header(AUTHORIZATION, header)
                .send()
                .await
                .map_err(|e| failed_once(url, &e))?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.bytes().await.map_err(|e| failed_once(url, &e))?;
            if status == StatusCode::UNAUTHORIZED && !reminted {
                if let Some(generation) = generation {
                    reminted = true;
                    self.invalidate(generation).await;
                    continue;
                }
            }
            if status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS {
                return Err(self.permanent(url, status, &body, reminted));
            }
            if status.is_success() {
                self.accepted.store(true, Ordering::Relaxed);
            }
            return Ok((status, headers, body));
        }
    }

    /// The client-credentials grant, as a JSON body (the form Zendesk's documentation shows).
    fn token_request(&self, client: &OAuthClient, url: &Url) -> reqwest::RequestBuilder {
        let body = serde_json::json!({
            "grant_type": "client_credentials",
            "client_id": client.id,
            "client_secret": client.secret.expose(),
            "scope": client.scope,
        });
        self.http
            .post(url.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_string())
    }

    /// One attempt: `Ok(Ok(..))` is an HTTP answer that is final (2xx, 4xx but 429), `Ok(Err(..))`
    /// is transient, `Err` is permanent.
    async fn attempt(
        &self,
        request: reqwest::RequestBuilder,
        url: &Url,
    ) -> Result<Result<(StatusCode, Bytes), Transient>, ApiError> {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let sent = Instant::now();
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => return network_failure(url, &e).map(Err),
        };
        let status = response.status();
        let headers = response.headers().clone();
        self.learn_limits(&headers);
        let body = match response.bytes().await {
            Ok(b) => b,
            Err(e) => return network_failure(url, &e).map(Err),
        };
        if status.is_success() {
            // A 429 answers at once and a 5xx may take the gateway's timeout: neither is the pace
            // of a stream.
            self.stats.observe_latency(sent.elapsed());
        }
        self.stats
            .bytes
            .fetch_add(body.len() as u64, Ordering::Relaxed);
        if status == StatusCode::TOO_MANY_REQUESTS {
            self.stats.throttled.fetch_add(1, Ordering::Relaxed);
        }
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            return Ok(Err(Transient::Status {
                status: status.as_u16(),
                detail: detail(&body),
                retry_after: retry_after(&headers),
            }));
        }
        if status.is_redirection() {
            let to = headers
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("?");
            return Err(ApiError::Protocol {
                url: url.to_string(),
                reason: format!("redirect ({status}) to {to}; check --base-url"),
            });
        }
        Ok(Ok((status, body)))
    }

    fn learn_limits(&self, headers: &HeaderMap) {
        let limits = RateLimits::from_headers(headers);
        if let Some(limit) = limits.limit {
            self.budget.observe_limit(limit);
        }
        if let Some(pause) = limits.pause {
            self.budget.pause(pause);
        }
    }

    /// The error for a final 4xx answer; `reminted`: the 401 came for a token minted just after
    /// another one was refused.
    fn permanent(&self, url: &Url, status: StatusCode, body: &[u8], reminted: bool) -> ApiError {
        let url = url.to_string();
        let detail = detail(body);
        match status.as_u16() {
            401 => ApiError::Unauthorized {
                url,
                hint: self.unauthorized_hint(reminted),
                detail,
            },
            403 => ApiError::Forbidden { url, detail },
            404 => ApiError::NotFound { url },
            status => ApiError::Rejected {
                url,
                status,
                detail,
            },
        }
    }
}

impl Client {
    /// What to check after a final 401, by kind of credential and by whether it worked earlier
    /// in this run.
    fn unauthorized_hint(&self, reminted: bool) -> String {
        let earlier = self.accepted.load(Ordering::Relaxed);
        match &self.credentials {
            Credentials::OAuth(_) if earlier => format!(
                "the access token expired or was revoked (earlier requests of this run succeeded with it); a scheduled run should use OAuth client credentials (ZENDESK_OAUTH_CLIENT_ID + ZENDESK_OAUTH_CLIENT_SECRET): auditlake then mints and renews its own tokens; see {AUTH_DOCS}"
            ),
            Credentials::OAuth(_) => format!(
                "check ZENDESK_OAUTH_TOKEN: it is wrong, or the access token expired or was revoked; with OAuth client credentials (ZENDESK_OAUTH_CLIENT_ID + ZENDESK_OAUTH_CLIENT_SECRET) auditlake renews its tokens itself; see {AUTH_DOCS}"
            ),
            Credentials::ClientCredentials(_) if reminted => "Zendesk refused a freshly minted access token too: check that the OAuth client (ZENDESK_OAUTH_CLIENT_ID) is still active and that its owner is still an admin".into(),
            Credentials::ClientCredentials(_) => "Zendesk refused the minted access token: check that the OAuth client (ZENDESK_OAUTH_CLIENT_ID) is still active".into(),
            Credentials::ApiToken { .. } => format!(
                "check ZENDESK_EMAIL and ZENDESK_API_TOKEN; Zendesk deactivates API tokens unused for 30 days, and all of them on {API_TOKEN_END}: move to OAuth client credentials; see {AUTH_DOCS}"
            ),
        }
    }
}

/// Where the README explains credentials.
const AUTH_DOCS: &str = "the README's \"Authentication\" section";

/// Warns, once per process, that API tokens are on their way out.
fn warn_api_token_once() {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        tracing::warn!(
            deactivation = API_TOKEN_END,
            "authenticating with an API token: Zendesk deactivates every API token on 2027-04-30 (and any token unused for 30 days before that; none can be created since 2026-10-27); move to OAuth client credentials (ZENDESK_OAUTH_CLIENT_ID + ZENDESK_OAUTH_CLIENT_SECRET)"
        );
    });
}

/// The token endpoint's answer: `access_token`, and `expires_in` when the token expires. A body
/// without a usable token is transient, like any 200 that does not parse.
fn parse_token(body: &[u8]) -> Result<Token, String> {
    #[derive(serde::Deserialize)]
    struct Answer {
        access_token: String,
        token_type: Option<String>,
        expires_in: Option<u64>,
    }
    // The body holds the token: serde's error names a position, never the text.
    let answer: Answer = serde_json::from_slice(body).map_err(|e| {
        format!(
            "token response: {:?} error at line {} column {}",
            e.classify(),
            e.line(),
            e.column()
        )
    })?;
    if answer.access_token.is_empty() {
        return Err("token response: empty access_token".into());
    }
    if let Some(kind) = answer.token_type.as_deref() {
        if !kind.eq_ignore_ascii_case("bearer") {
            return Err(format!("token response: token_type {kind:?}, not bearer"));
        }
    }
    Ok(Token {
        access_token: super::auth::Secret::new(answer.access_token),
        // Zendesk hands out at least 300 s; 0 would mean renewing on every request.
        expires_in: answer.expires_in.map(|s| Duration::from_secs(s.max(1))),
    })
}

/// The token endpoint's final 4xx answer, with which credential to check. Only the OAuth
/// `error` code is kept (sanitized): the body is not echoed, in case it repeats the request.
fn token_refused(url: &Url, status: StatusCode, body: &[u8]) -> ApiError {
    let error = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error")?.as_str().map(str::to_string))
        .filter(|e| {
            !e.is_empty() && e.len() <= 40 && e.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        })
        .unwrap_or_else(|| "no error code".into());
    let hint = match error.as_str() {
        "invalid_client" => "check ZENDESK_OAUTH_CLIENT_ID (the client's unique identifier) and ZENDESK_OAUTH_CLIENT_SECRET (or the file ZENDESK_OAUTH_CLIENT_SECRET_FILE names)",
        "invalid_scope" => "check ZENDESK_OAUTH_SCOPE (default auditlogs:read): the OAuth client must allow that scope",
        "unauthorized_client" | "invalid_grant" | "unsupported_grant_type" => "check ZENDESK_OAUTH_CLIENT_ID: it must name a confidential OAuth client (Admin Center > Apps and integrations > APIs > OAuth clients), which may use the client-credentials grant",
        _ => "check ZENDESK_OAUTH_CLIENT_ID, ZENDESK_OAUTH_CLIENT_SECRET and ZENDESK_OAUTH_SCOPE",
    };
    ApiError::TokenRefused(TokenRefusal {
        url: url.to_string(),
        status: status.as_u16(),
        error,
        hint,
    })
}

/// What the rate-limit headers of a response tell the budget.
#[derive(Debug, Default, PartialEq, Eq)]
struct RateLimits {
    /// The account's requests per minute (`X-Rate-Limit` or `ratelimit-limit`).
    limit: Option<u32>,
    /// How long every worker should wait: set only when no request is left
    /// (`X-Rate-Limit-Remaining`/`ratelimit-remaining` is 0), from `ratelimit-reset`, capped.
    pause: Option<Duration>,
}

impl RateLimits {
    fn from_headers(headers: &HeaderMap) -> RateLimits {
        let number =
            |name: &str| -> Option<u64> { headers.get(name)?.to_str().ok()?.trim().parse().ok() };
        let limit = number("x-rate-limit")
            .or_else(|| number("ratelimit-limit"))
            .map(|l| l.min(u64::from(u32::MAX)) as u32);
        let remaining = number("x-rate-limit-remaining").or_else(|| number("ratelimit-remaining"));
        let pause = match remaining {
            Some(0) => number("ratelimit-reset")
                .map(|reset| Duration::from_secs(reset.min(MAX_RETRY_AFTER.as_secs()))),
            _ => None,
        };
        RateLimits { limit, pause }
    }
}

/// One request failed without an HTTP answer: a certificate the machine does not trust is
/// permanent (and fatal for the run), anything else (timeout, reset, refused) is transient.
fn network_failure(url: &Url, e: &reqwest::Error) -> Result<Transient, ApiError> {
    match untrusted_certificate(e) {
        Some(detail) => Err(ApiError::UntrustedCertificate {
            host: host_of(url),
            detail,
        }),
        None => Ok(Transient::Network(describe_reqwest(e))),
    }
}

/// A failure of a request that is not retried.
fn failed_once(url: &Url, e: &reqwest::Error) -> ApiError {
    match network_failure(url, e) {
        Ok(transient) => ApiError::GaveUp {
            url: url.to_string(),
            attempts: 1,
            elapsed: Duration::ZERO,
            last: transient.describe(),
        },
        Err(permanent) => permanent,
    }
}

/// `host` or `host:port` of a URL, as a person would type it.
fn host_of(url: &Url) -> String {
    let host = url.host_str().unwrap_or("?");
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

/// Building the client fails mostly when no CA certificate loads: the roots come from
/// `SSL_CERT_FILE`/`SSL_CERT_DIR` when either is set (rustls-platform-verifier reads them through
/// rustls-native-certs), so the message names them. (Only the config layer reads the environment,
/// so the variables are named, not their values.)
const TRUST_HINT: &str = " (CA certificates come from SSL_CERT_FILE and SSL_CERT_DIR when set, else from the system store: check that they name readable PEM certificates)";

/// The message of the certificate error in `e`'s source chain, if there is one.
///
/// reqwest wraps hyper's error, which wraps the `io::Error` that carries rustls's error; none of
/// them is a type this crate can name without depending on rustls itself, so the chain is matched
/// on rustls's own wording: every `rustls::Error::InvalidCertificate` displays as
/// "invalid peer certificate: …" (UnknownIssuer, NotValidForName, expired, revoked, bad
/// signature…). Alerts the server sends about a client certificate are not matched: they are not
/// about trusting the server.
fn untrusted_certificate(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    const SIGNS: [&str; 4] = [
        "invalid peer certificate",
        "UnknownIssuer",
        "NotValidForName",
        "certificate not valid for name",
    ];
    let mut source = Some(e);
    while let Some(s) = source {
        let text = s.to_string();
        if let Some(at) = SIGNS.iter().filter_map(|sign| text.find(sign)).min() {
            return Some(text[at..].to_string());
        }
        source = s.source();
    }
    None
}

/// The `Retry-After` of a response, capped at five minutes; `None` when absent or unusable.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    parse_retry_after(headers.get(RETRY_AFTER)?.to_str().ok()?, chrono::Utc::now())
}

/// A `Retry-After` value: delay-seconds (Zendesk's form; a fraction is tolerated) or an HTTP-date
/// (RFC 9110's IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`), relative to `now`. The cap is
/// applied before any conversion, so no value can overflow a `Duration`; NaN, infinities and
/// negative numbers are treated as absent, and a date in the past as "now".
fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    let cap = MAX_RETRY_AFTER.as_secs_f64();
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0)
            .then(|| Duration::from_secs_f64(seconds.min(cap)));
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = date.with_timezone(&chrono::Utc) - now;
    // Whole milliseconds are ample; `num_milliseconds` saturates instead of overflowing.
    let millis = wait
        .num_milliseconds()
        .clamp(0, MAX_RETRY_AFTER.as_millis() as i64);
    Some(Duration::from_millis(millis as u64))
}

/// A short, single-line excerpt of an error body (Zendesk sends JSON or plain text).
fn detail(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        return "empty body".into();
    }
    match text.char_indices().nth(DETAIL_LIMIT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// reqwest's error with its causes: the top-level message alone ("error sending request") does not
/// say whether it was a timeout, a refused connection or a reset.
fn describe_reqwest(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        "timed out".to_string()
    } else {
        e.to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latency_is_a_moving_average_of_the_answers() {
        let stats = ClientStats::default();
        assert_eq!(stats.latency(), None);
        stats.observe_latency(Duration::from_millis(200));
        assert_eq!(stats.latency(), Some(Duration::from_millis(200)));
        stats.observe_latency(Duration::from_millis(300));
        assert_eq!(stats.latency(), Some(Duration::from_millis(210)));
    }

    #[test]
    fn backoff_grows_with_jitter_and_a_ceiling() {
        let p = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            ..RetryPolicy::default()
        };
        for attempt in 1..10 {
            let d = p.backoff(attempt);
            let exp =
                (Duration::from_millis(100) * (1 << (attempt - 1))).min(Duration::from_secs(1));
            assert!(d >= exp / 2 && d <= exp, "attempt {attempt}: {d:?}");
        }
    }

    #[test]
    fn details_are_short_single_lines() {
        assert_eq!(detail(b""), "empty body");
        assert_eq!(detail(b"{\"error\":\n \"x\"}"), "{\"error\": \"x\"}");
        let long = "é".repeat(1000);
        assert_eq!(detail(long.as_bytes()).chars().count(), DETAIL_LIMIT + 1);
    }

    #[test]
    fn retry_after_is_bounded() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("99999"));
        assert_eq!(retry_after(&h), Some(MAX_RETRY_AFTER));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn retry_after_of_1e30_is_capped_instead_of_panicking() {
        let now = chrono::Utc::now();
        assert_eq!(parse_retry_after("1e30", now), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("1e308", now), Some(MAX_RETRY_AFTER));
        assert_eq!(
            parse_retry_after(" 2.5 ", now),
            Some(Duration::from_millis(2500))
        );
        for absent in ["NaN", "inf", "-inf", "-1", "-0.5", "", "soon", "1e400"] {
            let expected = None;
            assert_eq!(parse_retry_after(absent, now), expected, "{absent:?}");
        }
    }

    #[test]
    fn retry_after_honours_the_http_date_form() {
        let now = chrono::DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(
            parse_retry_after("Mon, 01 Jan 2024 00:02:00 GMT", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sun, 31 Dec 2023 23:00:00 GMT", now),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
        assert_eq!(
            parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(
            parse_retry_after("Mon, 99 Jan 2024 00:02:00 GMT", now),
            None
        );
    }

    #[test]
    fn an_exhausted_rate_limit_pauses_until_its_capped_reset() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-rate-limit",
            HeaderValue::from_static("99999999999999999999"),
        );
        h.insert("x-rate-limit-remaining", HeaderValue::from_static("0"));
        h.insert(
            "ratelimit-reset",
            HeaderValue::from_static("18446744073709551615"),
        );
        assert_eq!(
            RateLimits::from_headers(&h),
            RateLimits {
                limit: None,
                pause: Some(MAX_RETRY_AFTER)
            }
        );
        h.insert("x-rate-limit", HeaderValue::from_static(" 700 "));
        h.insert("ratelimit-reset", HeaderValue::from_static("12"));
        assert_eq!(
            RateLimits::from_headers(&h),
            RateLimits {
                limit: Some(700),
                pause: Some(Duration::from_secs(12))
            }
        );
        h.insert("x-rate-limit-remaining", HeaderValue::from_static("5"));
        assert_eq!(RateLimits::from_headers(&h).pause, None);
    }

    /// An error whose source is another error, to build chains like reqwest's.
    #[derive(Debug)]
    struct Chain(String, Option<Box<Chain>>);

    impl std::fmt::Display for Chain {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }

    impl std::error::Error for Chain {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|c| c as _)
        }
    }

    fn chain(messages: &[&str]) -> Chain {
        messages
            .iter()
            .rev()
            .fold(None, |inner, m| {
                Some(Chain(m.to_string(), inner.map(Box::new)))
            })
            .unwrap()
    }

    #[test]
    fn certificate_errors_are_found_anywhere_in_the_source_chain() {
        let e = chain(&[
            "error sending request for url (https://acme.zendesk.com/)",
            "client error (Connect)",
            "invalid peer certificate: certificate not valid for name \"acme.zendesk.com\"; certificate is only valid for DnsName(\"proxy.corp\")",
        ]);
        let found = untrusted_certificate(&e).unwrap();
        assert!(found.starts_with("invalid peer certificate: certificate not valid for name"));
        let e = chain(&["error sending request", "io error: UnknownIssuer"]);
        assert_eq!(untrusted_certificate(&e).as_deref(), Some("UnknownIssuer"));
        for transient in [
            "connection refused",
            "connection reset by peer",
            "operation timed out",
            "received fatal alert: HandshakeFailure",
        ] {
            assert_eq!(
                untrusted_certificate(&chain(&["error sending request", transient])),
                None
            );
        }
    }

    #[test]
    fn token_endpoint_refusals_name_the_credential_to_check_and_echo_nothing() {
        let url = Url::parse("https://acme.zendesk.com/oauth/tokens").unwrap();
        for (body, needle) in [
            (
                &br#"{"error":"invalid_client","error_description":"x"}"#[..],
                "ZENDESK_OAUTH_CLIENT_SECRET",
            ),
            (br#"{"error":"invalid_scope"}"#, "ZENDESK_OAUTH_SCOPE"),
            (br#"{"error":"unauthorized_client"}"#, "confidential"),
            (br#"{"error":"invalid_grant"}"#, "confidential"),
            (
                b"<html>cs-SECRET</html>",
                "ZENDESK_OAUTH_CLIENT_ID, ZENDESK_OAUTH_CLIENT_SECRET and ZENDESK_OAUTH_SCOPE",
            ),
            (br#"{"error":"cs-SECRET echoed"}"#, "no error code"),
        ] {
            for status in [
                StatusCode::BAD_REQUEST,
                StatusCode::UNAUTHORIZED,
                StatusCode::FORBIDDEN,
            ] {
                let err = token_refused(&url, status, body);
                assert!(err.is_fatal_for_run());
                let message = err.to_string();
                assert!(message.contains(needle), "{message}");
                assert!(!message.contains("cs-SECRET"), "{message}");
            }
        }
    }

    #[test]
    fn token_answers_parse_with_and_without_expiry_and_never_show_the_token() {
        let t = parse_token(br#"{"access_token":"tk-SECRET","token_type":"bearer","scope":"auditlogs:read","expires_in":300}"#).unwrap();
        assert_eq!(t.access_token.expose(), "tk-SECRET");
        assert_eq!(t.expires_in, Some(Duration::from_secs(300)));
        let t = parse_token(br#"{"access_token":"tk-SECRET","token_type":"Bearer"}"#).unwrap();
        assert_eq!(t.expires_in, None);
        for bad in [
            &br#"{"access_token":"","token_type":"bearer"}"#[..],
            br#"{"access_token":"tk-SECRET","token_type":"mac"}"#,
            br#"{"access_token":"tk-SECRET","expires_in":"tk-SECRET"}"#,
            br#"{"access_token":"tk-SECRET""#,
        ] {
            let e = parse_token(bad).err().unwrap();
            assert!(!e.contains("tk-SECRET"), "{e}");
        }
    }

    #[test]
    fn only_credential_and_certificate_errors_stop_the_run() {
        let tls = ApiError::UntrustedCertificate {
            host: "acme.zendesk.com".into(),
            detail: "invalid peer certificate: UnknownIssuer".into(),
        };
        assert!(tls.is_fatal_for_run());
        let message = tls.to_string();
        for part in [
            "acme.zendesk.com",
            "SSL_CERT_FILE=/path/to/ca.pem",
            "HTTPS_PROXY",
        ] {
            assert!(message.contains(part), "{message}");
        }
        let looping = ApiError::PaginationLoop {
            url: "u".into(),
            cursor: "c".into(),
            reason: "r".into(),
        };
        let mismatch = ApiError::CountMismatch {
            url: "u".into(),
            range: "r".into(),
            expected: 2,
            got: 1,
        };
        assert!(!looping.is_fatal_for_run() && !mismatch.is_fatal_for_run());
    }

    mod never_panics {
        //! Whatever the network sends, the parsers answer (usually "absent"), never panic.

        use proptest::prelude::*;

        use super::super::*;

        proptest! {
            #[test]
            fn retry_after_parses_any_text_within_the_cap(value in ".{0,40}", secs in any::<i64>()) {
                let now = chrono::DateTime::from_timestamp(secs % 253_402_300_799, 0).unwrap_or_default();
                if let Some(d) = parse_retry_after(&value, now) {
                    prop_assert!(d <= MAX_RETRY_AFTER);
                }
            }

            #[test]
            fn retry_after_parses_any_number_within_the_cap(n in any::<f64>()) {
                let got = parse_retry_after(&n.to_string(), chrono::Utc::now());
                prop_assert_eq!(got.is_some(), n.is_finite() && n >= 0.0);
                prop_assert!(got.unwrap_or_default() <= MAX_RETRY_AFTER);
            }

            #[test]
            fn rate_limit_headers_of_any_bytes_stay_within_bounds(
                values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..24), 6),
                numbers in proptest::collection::vec(any::<u64>(), 6),
            ) {
                let names = [
                    "x-rate-limit", "ratelimit-limit", "x-rate-limit-remaining",
                    "ratelimit-remaining", "ratelimit-reset", RETRY_AFTER.as_str(),
                ];
                for text in [false, true] {
                    let mut h = HeaderMap::new();
                    for (i, name) in names.iter().enumerate() {
                        let value = if text {
                            HeaderValue::from_str(&numbers[i].to_string()).ok()
                        } else {
                            HeaderValue::from_bytes(&values[i]).ok()
                        };
                        if let Some(v) = value {
                            h.insert(*name, v);
                        }
                    }
                    let limits = RateLimits::from_headers(&h);
                    prop_assert!(limits.pause.unwrap_or_default() <= MAX_RETRY_AFTER);
                    prop_assert!(retry_after(&h).unwrap_or_default() <= MAX_RETRY_AFTER);
                }
            }

            #[test]
            fn error_bodies_of_any_bytes_become_short_single_lines(body in proptest::collection::vec(any::<u8>(), 0..2000)) {
                let d = detail(&body);
                prop_assert!(d.chars().count() <= DETAIL_LIMIT + 1);
                prop_assert!(!d.contains('\n'));
            }

            #[test]
            fn certificate_detection_reads_any_message(messages in proptest::collection::vec(".{0,60}", 1..4)) {
                let refs: Vec<&str> = messages.iter().map(String::as_str).collect();
                let _ = untrusted_certificate(&chain(&refs));
            }
        }

        fn chain(messages: &[&str]) -> super::Chain {
            super::chain(messages)
        }
    }

    mod tls {
        //! A local HTTPS server whose certificate (for 127.0.0.1, signed by a test CA made with
        //! `openssl` for these tests, valid until 2126) the machine does not trust.

        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;

        use base64::Engine;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tokio_rustls::rustls;
        use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

        use super::super::*;
        use crate::zendesk::auth::Secret;

        const CA_PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIBnzCCAUWgAwIBAgIUKnH9E3gr2O2AAcl+KGrNuXzK5WcwCgYIKoZIzj0EAwIw\nHDEaMBgGA1UEAwwRYXVkaXRsYWtlIHRlc3QgQ0EwIBcNMjYxMTI2MDczNTU3WhgP\nMjEyNjExMDIwNzM1NTdaMBwxGjAYBgNVBAMMEWF1ZGl0bGFrZSB0ZXN0IENBMFkw\nEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEIGxTJaPjJKzRLdVt39ebLkwb6mNeXIXl\nFWfzO7NPsLq+byBEdJzSWZbqlTbjHHo0ty4I6mC9fsKwA6DFxvAFDKNjMGEwHQYD\nVR0OBBYEFG4Rhug5RpVDV1g3vz0+A7GQPqbqMB8GA1UdIwQYMBaAFG4Rhug5RpVD\nV1g3vz0+A7GQPqbqMA8GA1UdEwEB/wQFMAMBAf8wDgYDVR0PAQH/BAQDAgIEMAoG\nCCqGSM49BAMCA0gAMEUCIBfxpPiObuihjxFVPZEz0/hr/CDc28hSssnlr+MGwJkc\nAiEAg7CSsRA8bH7Rva6QnwT6hBkCJ5tKTJYd6tIB47vnSGY=\n-----END CERTIFICATE-----";
        const LEAF_PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIBpzCCAU2gAwIBAgIUDOBROnXL73GvqFsc5V78muuHs3owCgYIKoZIzj0EAwIw\nHDEaMBgGA1UEAwwRYXVkaXRsYWtlIHRlc3QgQ0EwIBcNMjYxMTI2MDczNTU3WhgP\nMjEyNjExMDIwNzM1NTdaMBQxEjAQBgNVBAMMCTEyNy4wLjAuMTBZMBMGByqGSM49\nAgEGCCqGSM49AwEHA0IABLd3L9R6JQq5zWeIYqQK7cIZtcrTDtR4LqWk7dlRHa4Z\nXLhuqDGJID6+BaGjjtgMKtb37ZT/2A7Jz1PQX5/LsnqjczBxMA8GA1UdEQQIMAaH\nBH8AAAEwCQYDVR0TBAIwADATBgNVHSUEDDAKBggrBgEFBQcDATAdBgNVHQ4EFgQU\nK/5aqK4varOV6hPZZ1U3jWcYqKkwHwYDVR0jBBgwFoAUbhGG6DlGlUNXWDe/PT4D\nsZA+puowCgYIKoZIzj0EAwIDSAAwRQIgCt0XrNotprSNoV6HTznWIpGO71Q0EpM9\nm9ecIp4VOfkCIQDH9laycbBfSAg/uiUgR3bvdySJ7APwJfMlEcc8iCrNLA==\n-----END CERTIFICATE-----";
        const LEAF_KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg+Onm2NwSt8zwtqD7\ndazR3Z7AmiOar87hX5O7KgmhqYahRANCAAS3dy/UeiUKuc1niGKkCu3CGbXK0w7U\neC6lpO3ZUR2uGVy4bqgxiSA+vgWho47YDCrW9+2U/9gOyc9T0F+fy7J6\n-----END PRIVATE KEY-----";

        /// Environment variable that tells the child test which port to try.
        const CHILD_PORT: &str = "AUDITLAKE_TEST_TLS_CHILD_PORT";

        fn der(pem: &str) -> Vec<u8> {
            let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .unwrap()
        }

        /// Serves HTTPS on 127.0.0.1 (a `{}` body to any request); returns the port and the
        /// number of TCP connections accepted.
        async fn https_server() -> (u16, Arc<AtomicUsize>) {
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let config = rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(
                    vec![
                        CertificateDer::from(der(LEAF_PEM)),
                        CertificateDer::from(der(CA_PEM)),
                    ],
                    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der(LEAF_KEY_PEM))),
                )
                .unwrap();
            let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let connections = Arc::new(AtomicUsize::new(0));
            let counter = connections.clone();
            tokio::spawn(async move {
                while let Ok((tcp, _)) = listener.accept().await {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        let Ok(mut tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let mut buf = vec![0u8; 8192];
                        let _ = tls.read(&mut buf).await;
                        let _ = tls
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")
                            .await;
                        let _ = tls.shutdown().await;
                    });
                }
            });
            (port, connections)
        }

        fn client(base: &str) -> Client {
            let budget = Arc::new(RequestBudget::new(None, 1.0));
            budget.observe_limit(u32::MAX);
            Client::new(
                ClientOptions {
                    base_url: Url::parse(base).unwrap(),
                    credentials: Credentials::OAuth(Secret::new("test-token")),
                    request_timeout: Duration::from_secs(10),
                    retry: RetryPolicy {
                        max_attempts: 4,
                        max_elapsed: Duration::from_secs(30),
                        base_delay: Duration::from_millis(1),
                        max_delay: Duration::from_millis(1),
                    },
                },
                budget,
            )
            .unwrap()
        }

        #[tokio::test]
        async fn an_untrusted_certificate_fails_once_and_stops_the_run_naming_the_host() {
            let (port, connections) = https_server().await;
            let client = client(&format!("https://127.0.0.1:{port}"));
            let url = client.url("/api/v2/audit_logs", &[]);
            let err = client.get(&url, |_| Ok(())).await.unwrap_err();
            assert!(
                matches!(err, ApiError::UntrustedCertificate { .. }),
                "{err}"
            );
            assert!(err.is_fatal_for_run());
            let message = err.to_string();
            assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
            assert!(message.contains("SSL_CERT_FILE"), "{message}");
            assert_eq!(connections.load(Ordering::SeqCst), 1, "no retry");
            assert_eq!(client.stats().requests.load(Ordering::Relaxed), 1);
            assert_eq!(client.stats().retries.load(Ordering::Relaxed), 0);
        }

        #[tokio::test]
        async fn an_untrusted_certificate_is_fatal_for_requests_sent_once_too() {
            let (port, _) = https_server().await;
            let client = client(&format!("https://127.0.0.1:{port}"));
            let url = client.url("/api/v2/audit_logs/export", &[]);
            let err = client.send_once(Method::POST, &url).await.unwrap_err();
            assert!(err.is_fatal_for_run(), "{err}");
        }

        /// Runs the ignored test `child` in a new process with `SSL_CERT_FILE` set to `cert_file`
        /// and `SSL_CERT_DIR` unset (the variables are read when the client is built, and a test
        /// must not change its own process's environment under other tests); asserts it passed.
        async fn run_child(child: &str, cert_file: &std::path::Path, port: u16) {
            let output = tokio::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    &format!("zendesk::client::tests::tls::{child}"),
                    "--ignored",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("SSL_CERT_FILE", cert_file)
                .env_remove("SSL_CERT_DIR")
                .env(CHILD_PORT, port.to_string())
                .output()
                .await
                .unwrap();
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert!(
                output.status.success() && stdout.contains("1 passed"),
                "child {child} failed:\n{stdout}\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }

        #[tokio::test]
        async fn ssl_cert_file_makes_the_client_trust_a_private_ca_and_names_are_still_checked() {
            let (port, _) = https_server().await;
            let dir = tempfile::tempdir().unwrap();
            let ca = dir.path().join("ca.pem");
            std::fs::write(&ca, CA_PEM).unwrap();
            run_child("child_trusts_the_test_ca_through_ssl_cert_file", &ca, port).await;
        }

        #[tokio::test]
        async fn a_missing_ssl_cert_file_is_named_when_the_client_cannot_be_built() {
            let dir = tempfile::tempdir().unwrap();
            let missing = dir.path().join("missing.pem");
            run_child("child_names_a_missing_ssl_cert_file", &missing, 0).await;
        }

        #[tokio::test]
        #[ignore = "run in a child process by a_missing_ssl_cert_file_is_named_when_the_client_cannot_be_built"]
        async fn child_names_a_missing_ssl_cert_file() {
            // Run alone (`cargo test -- --ignored`) it has nothing to do: its parent sets this.
            if std::env::var_os(CHILD_PORT).is_none() {
                return;
            }
            let err = Client::new(
                ClientOptions {
                    base_url: Url::parse("https://acme.zendesk.com").unwrap(),
                    credentials: Credentials::OAuth(Secret::new("test-token")),
                    request_timeout: Duration::from_secs(10),
                    retry: RetryPolicy::default(),
                },
                Arc::new(RequestBudget::new(None, 1.0)),
            )
            .err()
            .expect("no CA certificate could be loaded")
            .to_string();
            assert!(err.contains("No CA certificates were loaded"), "{err}");
            assert!(err.contains("SSL_CERT_FILE"), "{err}");
            assert!(!err.contains("test-token"), "{err}");
        }

        #[tokio::test]
        #[ignore = "run in a child process by ssl_cert_file_makes_the_client_trust_a_private_ca_and_names_are_still_checked"]
        async fn child_trusts_the_test_ca_through_ssl_cert_file() {
            // Run alone (`cargo test -- --ignored`) it has nothing to do: its parent sets this.
            let Ok(port) = std::env::var(CHILD_PORT) else {
                return;
            };
            let port: u16 = port.parse().unwrap();
            let trusted = client(&format!("https://127.0.0.1:{port}"));
            let url = trusted.url("/api/v2/audit_logs", &[]);
            trusted.get(&url, |_| Ok(())).await.unwrap();
            // The certificate is for 127.0.0.1 only: "localhost" is a name it is not valid for.
            let wrong_name = client(&format!("https://localhost:{port}"));
            let url = wrong_name.url("/api/v2/audit_logs", &[]);
            let err = wrong_name.get(&url, |_| Ok(())).await.unwrap_err();
            assert!(err.is_fatal_for_run(), "{err}");
            assert!(err.to_string().contains("localhost"), "{err}");
        }
    }
}
