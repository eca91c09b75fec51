//! The HTTP client: one per process, authenticated, budgeted and retrying what is transient.
//!
//! Every request (pages, the show and export operations, the token grant) takes one send path,
//! `Client::send_to`: each waits for the budget's turn, teaches the budget the rate limit its
//! answer reports, counts in [`ClientStats`], and has its answer classified by
//! `retry::classify`, which decides what is transient and which error a permanent answer is.
//! Requests differ only in whether they retry (an export's 429 is reported, not waited out).
//! A TLS certificate the machine does not trust is permanent too, and fatal for the run: every
//! other request goes to the same host through the same trust store.
//!
//! Nothing read from the network may panic the process: every header and body parser here is
//! total (a value that does not parse is treated as absent) and property-tested on arbitrary
//! input.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use tokio::time::Instant;
use url::Url;

use super::auth::{Credentials, OAuthClient};
use super::budget::RequestBudget;
use super::error::{describe_reqwest, ApiError, ClientError};
use super::query::CreatedAtBounds;
use super::retry::{
    classify, network_failure, Class, Endpoint, RetryPolicy, Transient, MAX_RETRY_AFTER,
};
use super::token::{Token, TokenCache};

/// The client-credentials token endpoint, under the same base URL as the API.
const TOKEN_PATH: &str = "/oauth/tokens";

/// When Zendesk deactivates every API token, for the one warning a run with one gets.
const API_TOKEN_END: &str = "2027-04-30";

/// `--request-timeout`'s default: long enough for a slow page of records, short enough that a
/// dead connection does not hold its window for long.
pub const DEFAULT_REQUEST_TIMEOUT: crate::units::duration::Span =
    crate::units::duration::Span::seconds(60);

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

/// Which request the send path sends.
#[derive(Clone, Copy)]
enum Target<'a> {
    /// An API request, authenticated.
    Api(&'a Method),
    /// The client-credentials grant (the credentials travel in the body).
    Token(&'a OAuthClient),
}

impl Target<'_> {
    fn endpoint(&self) -> Endpoint {
        match self {
            Target::Api(_) => Endpoint::Api,
            Target::Token(_) => Endpoint::Token,
        }
    }
}

/// How a request meets a transient failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Retries {
    /// Waits and sends again, within the client's [`RetryPolicy`].
    Policy,
    /// Sends once: a transient answer (429, 5xx) is the caller's, like a 2xx, to report rather
    /// than wait out; a failure without a usable answer fails at once.
    Never,
}

/// An HTTP answer, read whole.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

/// What one attempt came to (a permanent failure is an `Err` beside it).
enum Attempt {
    /// An answer for the caller: a 2xx, or a transient answer when sent without retries.
    Answer(Answer),
    /// The API refused the credential (401); `generation`: the minted token refused, if it was
    /// one.
    Unauthorized {
        generation: Option<u64>,
        detail: String,
    },
    /// Worth another attempt.
    Transient(Transient),
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
    /// What counts have learned of the `created_at` bounds (see [`CreatedAtBounds`]).
    bounds: Arc<CreatedAtBounds>,
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
            bounds: Arc::new(CreatedAtBounds::default()),
        })
    }

    /// What this client's counts know of the `created_at` bounds.
    pub fn created_at_bounds(&self) -> &CreatedAtBounds {
        &self.bounds
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
                .send_to(Target::Token(client), &url, Retries::Policy, parse_token)
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
        let (answer, parsed) = self
            .send_to(Target::Api(&method), url, Retries::Policy, check)
            .await?;
        Ok((answer.body, parsed))
    }

    /// Sends one request without retrying, and returns a 2xx, 429 or 5xx answer with its headers
    /// (for operations whose 429 must be reported, not waited out, such as the export request).
    /// Like every request, it waits for the budget, teaches the budget the rate limit, counts in
    /// the stats and refuses a redirect; other statuses are the same errors as for
    /// [`Client::send`].
    ///
    /// A 401 for a minted token is the exception: the token is replaced and the request sent
    /// once more, as in [`Client::send`].
    pub async fn send_once(
        &self,
        method: Method,
        url: &Url,
    ) -> Result<(StatusCode, HeaderMap, Bytes), ApiError> {
        let (answer, ()) = self
            .send_to(Target::Api(&method), url, Retries::Never, |_| Ok(()))
            .await?;
        Ok((answer.status, answer.headers, answer.body))
    }

    /// The one send path: every request the client makes (pages, the show and export operations,
    /// the token grant) goes through here and [`Client::attempt`]. A 401 for a minted token is
    /// answered by minting once more and retrying (the token may have been revoked, or expired
    /// early by the server's clock); a second 401 is final. `check` sees every answer that is the
    /// caller's (see [`Retries`]); a body it refuses is transient.
    async fn send_to<T>(
        &self,
        target: Target<'_>,
        url: &Url,
        retries: Retries,
        check: impl Fn(&[u8]) -> Result<T, String>,
    ) -> Result<(Answer, T), ApiError> {
        let started = Instant::now();
        let mut attempts = 0u32;
        let mut reminted = false;
        loop {
            attempts += 1;
            let failure = match self.attempt(&target, url, retries).await? {
                Attempt::Answer(answer) => match check(&answer.body) {
                    Ok(parsed) => {
                        if answer.status.is_success() && target.endpoint() == Endpoint::Api {
                            self.accepted.store(true, Ordering::Relaxed);
                        }
                        return Ok((answer, parsed));
                    }
                    Err(e) => Transient::BadBody(e),
                },
                Attempt::Unauthorized {
                    generation: Some(generation),
                    ..
                } if !reminted => {
                    tracing::warn!(
                        url = %url,
                        "Zendesk refused the access token (401); minting a new one and retrying once"
                    );
                    reminted = true;
                    attempts -= 1;
                    self.invalidate(generation).await;
                    continue;
                }
                Attempt::Unauthorized { detail, .. } => {
                    return Err(ApiError::Unauthorized {
                        url: url.to_string(),
                        hint: self.unauthorized_hint(reminted),
                        detail,
                    })
                }
                Attempt::Transient(failure) => failure,
            };
            if retries == Retries::Never {
                return Err(failure.gave_up(url, attempts, started.elapsed()));
            }
            if failure.is_throttled() {
                // 429s are pacing, not failure: they don't use up attempts.
                attempts -= 1;
            }
            self.back_off(&failure, attempts, started, url).await?;
        }
    }

    /// Waits before the next attempt after `failure`: a 429 pauses every worker (the budget), any
    /// other failure only this request. An error once the attempts or the retry time are used up.
    async fn back_off(
        &self,
        failure: &Transient,
        attempts: u32,
        started: Instant,
        url: &Url,
    ) -> Result<(), ApiError> {
        let delay = self
            .retry
            .delay(failure, attempts, started.elapsed(), url)?;
        self.stats.retries.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            url = %url,
            attempt = attempts,
            delay_ms = delay.as_millis() as u64,
            error = %failure.describe(),
            "request failed, retrying"
        );
        if failure.is_throttled() {
            self.budget.pause(delay);
        } else {
            tokio::time::sleep(delay).await;
        }
        Ok(())
    }

    /// One attempt: the budget's turn, a fresh authorization, the exchange, and what the answer
    /// means ([`classify`]). `Err` is permanent.
    async fn attempt(
        &self,
        target: &Target<'_>,
        url: &Url,
        retries: Retries,
    ) -> Result<Attempt, ApiError> {
        // The budget's turn first, then the token: a token taken before a long wait for the turn
        // could expire on the way (with short lifetimes and a slow budget it did).
        self.budget.acquire().await;
        let (request, generation) = self.request_to(target, url).await?;
        let answer = match self.exchange(request, url).await? {
            Ok(answer) => answer,
            Err(failure) => return Ok(Attempt::Transient(failure)),
        };
        let class = classify(
            target.endpoint(),
            url,
            answer.status,
            &answer.headers,
            &answer.body,
        );
        Ok(match class {
            Class::Success => Attempt::Answer(answer),
            Class::Transient(_) if retries == Retries::Never => Attempt::Answer(answer),
            Class::Transient(failure) => Attempt::Transient(failure),
            Class::Unauthorized { detail } => Attempt::Unauthorized { generation, detail },
            Class::Permanent(e) => return Err(e),
        })
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

    /// Sends `request` and reads the whole answer, teaching the budget the rate limit its headers
    /// report and counting it in the stats. `Ok(Err(..))`: no answer came, for a transient
    /// reason; `Err`: a certificate this machine does not trust.
    async fn exchange(
        &self,
        request: reqwest::RequestBuilder,
        url: &Url,
    ) -> Result<Result<Answer, Transient>, ApiError> {
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
        Ok(Ok(Answer {
            status,
            headers,
            body,
        }))
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

/// A client of `base` for the unit tests: an OAuth token the simulator accepts, quick retries
/// (`max_attempts` of them, 1 ms apart), and, when `unlimited`, a budget that knows the account
/// allows any rate (else it assumes 200 requests a minute until an answer says otherwise).
#[cfg(test)]
pub(crate) fn test_client(base: &str, max_attempts: u32, unlimited: bool) -> Client {
    let budget = Arc::new(RequestBudget::new(None, 1.0));
    if unlimited {
        budget.observe_limit(u32::MAX);
    }
    Client::new(
        ClientOptions {
            base_url: Url::parse(base).unwrap(),
            credentials: Credentials::OAuth(crate::zendesk::auth::Secret::new("sim-token")),
            request_timeout: Duration::from_secs(10),
            retry: RetryPolicy {
                max_attempts,
                max_elapsed: Duration::from_secs(30),
                base_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(1),
            },
        },
        budget,
    )
    .unwrap()
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

    mod never_panics {
        //! Whatever the network sends, the rate-limit parsers answer (usually "absent"), never panic.

        use proptest::prelude::*;

        use super::super::*;
        use crate::zendesk::retry::retry_after;

        proptest! {
            #[test]
            fn rate_limit_headers_of_any_bytes_stay_within_bounds(
                values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..24), 6),
                numbers in proptest::collection::vec(any::<u64>(), 6),
            ) {
                let names = [
                    "x-rate-limit", "ratelimit-limit", "x-rate-limit-remaining",
                    "ratelimit-remaining", "ratelimit-reset", reqwest::header::RETRY_AFTER.as_str(),
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

        }
    }

    mod server {
        //! A scripted API on 127.0.0.1: every request, whichever path sent it, gets the answer the
        //! test wrote, and the client's budget and stats show what it learned.

        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;

        use axum::http::{HeaderName, Response};

        use super::super::*;
        use crate::zendesk::retry::retry_after;

        /// One canned answer: status, headers and body.
        #[derive(Clone)]
        struct Answer {
            status: u16,
            headers: Vec<(&'static str, String)>,
            body: &'static str,
        }

        /// Serves `answer` to every request; returns the base URL and the requests served.
        async fn serve(answer: Answer) -> (String, Arc<AtomicUsize>) {
            let served = Arc::new(AtomicUsize::new(0));
            let counter = served.clone();
            let app = axum::Router::new().fallback(move || {
                let answer = answer.clone();
                counter.fetch_add(1, Ordering::SeqCst);
                async move {
                    let mut response = Response::builder().status(answer.status);
                    for (name, value) in &answer.headers {
                        response = response.header(HeaderName::from_static(name), value);
                    }
                    response.body(axum::body::Body::from(answer.body)).unwrap()
                }
            });
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, app).await });
            (format!("http://{addr}"), served)
        }

        /// A client of `base` with a fresh budget (it assumes 200 requests a minute until an
        /// answer reports the account's limit) and quick retries.
        fn client(base: &str) -> Client {
            test_client(base, 2, false)
        }

        fn export_url(client: &Client) -> Url {
            client.url(crate::zendesk::endpoint::EXPORT, &[])
        }

        #[tokio::test]
        async fn a_request_sent_once_learns_the_rate_limit_and_counts_its_bytes_and_latency() {
            let (base, _) = serve(Answer {
                status: 202,
                headers: vec![
                    ("x-rate-limit", "120".into()),
                    ("x-rate-limit-remaining", "119".into()),
                ],
                body: "queued",
            })
            .await;
            let client = client(&base);
            assert_eq!(client.budget().per_minute(), 200, "the assumed limit");
            let (status, _, body) = client
                .send_once(Method::POST, &export_url(&client))
                .await
                .unwrap();
            assert_eq!((status.as_u16(), &body[..]), (202, &b"queued"[..]));
            assert_eq!(
                client.budget().per_minute(),
                120,
                "learned from X-Rate-Limit"
            );
            let stats = client.stats();
            assert_eq!(stats.requests.load(Ordering::Relaxed), 1);
            assert_eq!(stats.bytes.load(Ordering::Relaxed), 6);
            assert!(stats.latency().is_some(), "a 2xx is a latency sample");
        }

        #[tokio::test]
        async fn a_throttled_request_sent_once_is_handed_back_and_counted_as_throttled() {
            let (base, served) = serve(Answer {
                status: 429,
                headers: vec![("retry-after", "42".into()), ("x-rate-limit", "700".into())],
                body: "slow down",
            })
            .await;
            let client = client(&base);
            let (status, headers, _) = client
                .send_once(Method::POST, &export_url(&client))
                .await
                .unwrap();
            assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(retry_after(&headers), Some(Duration::from_secs(42)));
            assert_eq!(served.load(Ordering::SeqCst), 1, "not retried");
            let stats = client.stats();
            assert_eq!(stats.throttled.load(Ordering::Relaxed), 1);
            assert_eq!(stats.retries.load(Ordering::Relaxed), 0);
            assert_eq!(stats.bytes.load(Ordering::Relaxed), 9);
            assert_eq!(client.budget().per_minute(), 700);
        }

        #[tokio::test]
        async fn every_path_refuses_a_redirect_to_another_host_and_never_follows_it() {
            let (elsewhere, visited) = serve(Answer {
                status: 200,
                headers: vec![],
                body: "{}",
            })
            .await;
            let to = elsewhere.replace("127.0.0.1", "localhost") + "/steal";
            let (base, _) = serve(Answer {
                status: 307,
                headers: vec![("location", to.clone())],
                body: "",
            })
            .await;
            let client = client(&base);
            let url = export_url(&client);
            let sent_once = client.send_once(Method::POST, &url).await.map(|_| ());
            let retried = client
                .send(Method::POST, &url, |_| Ok(()))
                .await
                .map(|_| ());
            for outcome in [sent_once, retried] {
                match outcome {
                    Err(ApiError::Protocol { url: at, reason }) => {
                        assert_eq!(at, url.to_string());
                        assert!(reason.contains("redirect (307"), "{reason}");
                        assert!(reason.contains(&to), "{reason}");
                        assert!(reason.contains("check --base-url"), "{reason}");
                    }
                    other => panic!("expected a refused redirect, got {other:?}"),
                }
            }
            assert_eq!(
                visited.load(Ordering::SeqCst),
                0,
                "the redirect is not followed"
            );
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
            test_client(base, 4, true)
        }

        #[tokio::test]
        async fn an_untrusted_certificate_fails_once_and_stops_the_run_naming_the_host() {
            let (port, connections) = https_server().await;
            let client = client(&format!("https://127.0.0.1:{port}"));
            let url = client.url(crate::zendesk::endpoint::LIST, &[]);
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
            let url = client.url(crate::zendesk::endpoint::EXPORT, &[]);
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
            let url = trusted.url(crate::zendesk::endpoint::LIST, &[]);
            trusted.get(&url, |_| Ok(())).await.unwrap();
            // The certificate is for 127.0.0.1 only: "localhost" is a name it is not valid for.
            let wrong_name = client(&format!("https://localhost:{port}"));
            let url = wrong_name.url(crate::zendesk::endpoint::LIST, &[]);
            let err = wrong_name.get(&url, |_| Ok(())).await.unwrap_err();
            assert!(err.is_fatal_for_run(), "{err}");
            assert!(err.to_string().contains("localhost"), "{err}");
        }
    }
}
