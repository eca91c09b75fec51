//! Whether a request is sent again and how long it waits first: what an answer means
//! ([`classify`], the one place that maps a status to transient or to an [`ApiError`]), the retry
//! policy, exponential backoff with jitter, and `Retry-After`.
//!
//! 429, 5xx, timeouts, resets and a 200 whose body does not parse are transient; 400, 401, 403,
//! 404, a redirect and the token endpoint's refusals are permanent, and so is a certificate the
//! machine does not trust (fatal for the run, like a refused credential).

use crate::units::duration::Span;
use std::time::Duration;

use reqwest::header::{HeaderMap, LOCATION, RETRY_AFTER};
use reqwest::StatusCode;
use url::Url;

use super::error::{
    describe_reqwest, detail, host_of, untrusted_certificate, ApiError, TokenRefusal,
};

/// Longest `Retry-After` honoured: a larger value is more likely a bug than a plan, and the run's
/// retry time bound applies anyway.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// `--max-attempts`'s default: eight attempts, with their timeouts and the backoff doubling from
/// [`DEFAULT_RETRY_BASE_DELAY`], ride out a Zendesk incident of a few minutes without failing the
/// window.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 8;

/// `--max-retry-time`'s default: a scheduled run still ends (and reports) well before the next one
/// is due, even when Zendesk is down.
pub const DEFAULT_MAX_RETRY_TIME: Span = Span::minutes(10);

/// `--retry-base-delay`'s default: the first retry of a transient failure comes almost at once.
pub const DEFAULT_RETRY_BASE_DELAY: Span = Span::millis(500);

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
    /// explained above), and backoff doubling to a 60 s ceiling.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            max_elapsed: DEFAULT_MAX_RETRY_TIME.duration(),
            base_delay: DEFAULT_RETRY_BASE_DELAY.duration(),
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

    /// How long to wait before the next attempt after `failure`: the answer's Retry-After, one
    /// second for a 429 without one, else the backoff; an error once the attempts or the retry
    /// time are used up.
    pub(crate) fn delay(
        &self,
        failure: &Transient,
        attempts: u32,
        elapsed: Duration,
        url: &Url,
    ) -> Result<Duration, ApiError> {
        let delay = match failure {
            Transient::Status {
                retry_after: Some(d),
                ..
            } => *d,
            Transient::Status { status: 429, .. } => Duration::from_secs(1),
            _ => self.backoff(attempts),
        };
        if attempts >= self.max_attempts || elapsed + delay > self.max_elapsed {
            return Err(failure.gave_up(url, attempts, elapsed));
        }
        Ok(delay)
    }
}

/// One failed attempt that may succeed if repeated.
#[derive(Debug)]
pub(crate) enum Transient {
    Status {
        status: u16,
        detail: String,
        retry_after: Option<Duration>,
    },
    Network(String),
    BadBody(String),
}

impl Transient {
    pub(crate) fn describe(&self) -> String {
        match self {
            Transient::Status { status, detail, .. } => format!("HTTP {status}: {detail}"),
            Transient::Network(e) => e.clone(),
            Transient::BadBody(e) => format!("response body did not parse: {e}"),
        }
    }

    /// The error of a request that stops retrying after this failure.
    pub(crate) fn gave_up(&self, url: &Url, attempts: u32, elapsed: Duration) -> ApiError {
        ApiError::GaveUp {
            url: url.to_string(),
            attempts: attempts.max(1),
            elapsed,
            last: self.describe(),
        }
    }

    /// Whether this is the server pacing us (429) rather than failing.
    pub(crate) fn is_throttled(&self) -> bool {
        matches!(self, Transient::Status { status: 429, .. })
    }
}

/// Which kind of endpoint answered: the token endpoint's refusals mean other things than the
/// API's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Api,
    Token,
}

/// What one HTTP answer means for the request that got it.
#[derive(Debug)]
pub(crate) enum Class {
    /// 2xx: the body is the caller's to check.
    Success,
    /// Worth sending again after a wait: 429 (the server pacing us) and 5xx.
    Transient(Transient),
    /// The API refused the credential (401). Final, but the client names the credential to check
    /// (it knows which one is in use) and replaces a minted token once before giving up.
    Unauthorized { detail: String },
    /// Final: sending the request again cannot help.
    Permanent(ApiError),
}

/// Classifies an HTTP answer: the one place that decides, for every request the client sends,
/// whether a status is success, transient or permanent, and which error a permanent one is.
pub(crate) fn classify(
    endpoint: Endpoint,
    url: &Url,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> Class {
    if status.is_success() {
        return Class::Success;
    }
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        return Class::Transient(Transient::Status {
            status: status.as_u16(),
            detail: detail(body),
            retry_after: retry_after(headers),
        });
    }
    if status.is_redirection() {
        // None is followed (it could carry the credentials to another host): the base URL is
        // not the API's.
        let to = headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("?");
        return Class::Permanent(ApiError::Protocol {
            url: url.to_string(),
            reason: format!("redirect ({status}) to {to}; check --base-url"),
        });
    }
    let (url, detail) = match endpoint {
        Endpoint::Token => return Class::Permanent(token_refused(url, status, body)),
        Endpoint::Api => (url.to_string(), detail(body)),
    };
    Class::Permanent(match status.as_u16() {
        401 => return Class::Unauthorized { detail },
        403 => ApiError::Forbidden { url, detail },
        404 => ApiError::NotFound { url },
        status => ApiError::Rejected {
            url,
            status,
            detail,
        },
    })
}

/// One request failed without an HTTP answer: a certificate the machine does not trust is
/// permanent (and fatal for the run), anything else (timeout, reset, refused) is transient.
pub(crate) fn network_failure(url: &Url, e: &reqwest::Error) -> Result<Transient, ApiError> {
    match untrusted_certificate(e) {
        Some(detail) => Err(ApiError::UntrustedCertificate {
            host: host_of(url),
            detail,
        }),
        None => Ok(Transient::Network(describe_reqwest(e))),
    }
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

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

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
    fn statuses_are_classified_as_the_zendesk_api_documents() {
        let url = Url::parse("https://acme.zendesk.com/api/v2/audit_logs").unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        headers.insert(
            LOCATION,
            HeaderValue::from_static("https://elsewhere.example/"),
        );
        let class = |endpoint, status: u16| {
            let status = StatusCode::from_u16(status).unwrap();
            classify(endpoint, &url, status, &headers, b"{\"error\":\"x\"}")
        };
        for status in [200, 201, 202, 204] {
            assert!(matches!(class(Endpoint::Api, status), Class::Success));
            assert!(matches!(class(Endpoint::Token, status), Class::Success));
        }
        for status in [429, 500, 502, 503, 504] {
            for endpoint in [Endpoint::Api, Endpoint::Token] {
                match class(endpoint, status) {
                    Class::Transient(Transient::Status {
                        status: got,
                        retry_after,
                        ..
                    }) => {
                        assert_eq!(got, status);
                        assert_eq!(retry_after, Some(Duration::from_secs(7)));
                    }
                    other => panic!("{status}: {other:?}"),
                }
            }
        }
        assert!(matches!(
            class(Endpoint::Api, 401),
            Class::Unauthorized { detail } if detail.contains("error")
        ));
        let permanent = |endpoint, status| match class(endpoint, status) {
            Class::Permanent(e) => e,
            other => panic!("{status}: {other:?}"),
        };
        assert!(matches!(
            permanent(Endpoint::Api, 403),
            ApiError::Forbidden { .. }
        ));
        assert!(matches!(
            permanent(Endpoint::Api, 404),
            ApiError::NotFound { .. }
        ));
        for status in [400, 409, 422] {
            assert!(matches!(
                permanent(Endpoint::Api, status),
                ApiError::Rejected { status: got, .. } if got == status
            ));
        }
        for status in [400, 401, 403] {
            assert!(matches!(
                permanent(Endpoint::Token, status),
                ApiError::TokenRefused(TokenRefusal { status: got, .. }) if got == status
            ));
        }
        for status in [301, 302, 307, 308] {
            for endpoint in [Endpoint::Api, Endpoint::Token] {
                match permanent(endpoint, status) {
                    ApiError::Protocol { reason, .. } => {
                        assert!(reason.contains("https://elsewhere.example/"), "{reason}")
                    }
                    other => panic!("{status}: {other:?}"),
                }
            }
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

    mod never_panics {
        //! Whatever the network sends, `Retry-After` parses (usually as "absent"), never panics.

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
        }
    }
}
