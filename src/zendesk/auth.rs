//! Credentials, kept out of every `Debug`, log line and error message.

use std::fmt;

use base64::Engine;

/// A secret string. Its `Debug` and `Display` print `***`, so it cannot leak through a log or an
/// error by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// How the client authenticates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credentials {
    /// An OAuth access token (scope `read` or `auditlogs:read`): `Authorization: Bearer …`.
    OAuth(Secret),
    /// An API token: Basic `base64("{email}/token:{token}")`.
    ApiToken { email: String, token: Secret },
}

impl Credentials {
    /// The `Authorization` header value.
    pub fn header(&self) -> Secret {
        match self {
            Credentials::OAuth(token) => Secret(format!("Bearer {}", token.expose())),
            Credentials::ApiToken { email, token } => {
                let raw = format!("{email}/token:{}", token.expose());
                Secret(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                ))
            }
        }
    }

    /// What kind of credential this is, for messages (never the value).
    pub fn kind(&self) -> &'static str {
        match self {
            Credentials::OAuth(_) => "OAuth token (ZENDESK_OAUTH_TOKEN)",
            Credentials::ApiToken { .. } => "API token (ZENDESK_EMAIL + ZENDESK_API_TOKEN)",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_follow_zendesk_conventions() {
        let oauth = Credentials::OAuth(Secret::new("abc"));
        assert_eq!(oauth.header().expose(), "Bearer abc");
        let basic = Credentials::ApiToken {
            email: "a@b.c".into(),
            token: Secret::new("t0k"),
        };
        // base64("a@b.c/token:t0k")
        assert_eq!(basic.header().expose(), "Basic YUBiLmMvdG9rZW46dDBr");
    }

    #[test]
    fn secrets_never_print() {
        let c = Credentials::ApiToken {
            email: "a@b.c".into(),
            token: Secret::new("hunter2"),
        };
        let shown = format!("{c:?} {:?}", c.header());
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("YUBi"), "{shown}");
    }
}
