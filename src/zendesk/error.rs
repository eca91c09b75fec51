//! The client's errors, each with the URL, status or host a person needs: [`ApiError`] (why a
//! request failed for good, and whether every other request would fail the same way),
//! [`ClientError`] (why the HTTP client could not be built) and [`TokenRefusal`]. Also the helpers
//! that give them context: short excerpts of error bodies, reqwest's error with its causes, and
//! the certificate error hidden in a source chain.
//!
//! Which answer becomes which error is decided in one place, `retry::classify`.

use std::time::Duration;

use url::Url;

/// Longest excerpt of an error body kept in a message.
const DETAIL_LIMIT: usize = 300;

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

/// Why the process's HTTP client could not be built: the configuration, never the network.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the credentials contain characters not allowed in an HTTP header")]
    CredentialsNotAHeader,
    #[error("HTTP client: {0}{TRUST_HINT}")]
    Build(String),
}

/// Building the client fails mostly when no CA certificate loads: the roots come from
/// `SSL_CERT_FILE`/`SSL_CERT_DIR` when either is set (rustls-platform-verifier reads them through
/// rustls-native-certs), so the message names them. (Only the config layer reads the environment,
/// so the variables are named, not their values.)
const TRUST_HINT: &str = " (CA certificates come from SSL_CERT_FILE and SSL_CERT_DIR when set, else from the system store: check that they name readable PEM certificates)";

/// `host` or `host:port` of a URL, as a person would type it.
pub(crate) fn host_of(url: &Url) -> String {
    let host = url.host_str().unwrap_or("?");
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

/// The message of the certificate error in `e`'s source chain, if there is one.
///
/// reqwest wraps hyper's error, which wraps the `io::Error` that carries rustls's error; none of
/// them is a type this crate can name without depending on rustls itself, so the chain is matched
/// on rustls's own wording: every `rustls::Error::InvalidCertificate` displays as
/// "invalid peer certificate: …" (UnknownIssuer, NotValidForName, expired, revoked, bad
/// signature…). Alerts the server sends about a client certificate are not matched: they are not
/// about trusting the server.
pub(crate) fn untrusted_certificate(e: &(dyn std::error::Error + 'static)) -> Option<String> {
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

/// A short, single-line excerpt of an error body (Zendesk sends JSON or plain text).
pub(crate) fn detail(body: &[u8]) -> String {
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
pub(crate) fn describe_reqwest(e: &reqwest::Error) -> String {
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
    fn details_are_short_single_lines() {
        assert_eq!(detail(b""), "empty body");
        assert_eq!(detail(b"{\"error\":\n \"x\"}"), "{\"error\": \"x\"}");
        let long = "é".repeat(1000);
        assert_eq!(detail(long.as_bytes()).chars().count(), DETAIL_LIMIT + 1);
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
        //! Whatever the network sends, the parsers answer, never panic.

        use proptest::prelude::*;

        use super::super::*;

        proptest! {
            #[test]
            fn error_bodies_of_any_bytes_become_short_single_lines(body in proptest::collection::vec(any::<u8>(), 0..2000)) {
                let d = detail(&body);
                prop_assert!(d.chars().count() <= DETAIL_LIMIT + 1);
                prop_assert!(!d.contains('\n'));
            }

            #[test]
            fn certificate_detection_reads_any_message(messages in proptest::collection::vec(".{0,60}", 1..4)) {
                let refs: Vec<&str> = messages.iter().map(String::as_str).collect();
                let _ = untrusted_certificate(&super::chain(&refs));
            }
        }
    }
}
