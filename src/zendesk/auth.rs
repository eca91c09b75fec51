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

/// The scope asked for when `ZENDESK_OAUTH_SCOPE` is not set: the least privilege that reads
/// audit logs (`read` would also read every ticket, user and setting of the account).
pub const DEFAULT_SCOPE: &str = "auditlogs:read";

/// A confidential OAuth client, for the client-credentials grant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthClient {
    /// `client_id`: the client's unique identifier, not a secret.
    pub id: String,
    pub secret: Secret,
    /// Space-separated scopes asked for (default [`DEFAULT_SCOPE`]).
    pub scope: String,
}

/// How the client authenticates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credentials {
    /// An OAuth access token (scope `read` or `auditlogs:read`): `Authorization: Bearer …`.
    OAuth(Secret),
    /// A confidential OAuth client: the process mints its own access tokens (client-credentials
    /// grant) and renews them before they expire.
    ClientCredentials(OAuthClient),
    /// An API token: Basic `base64("{email}/token:{token}")`.
    ApiToken { email: String, token: Secret },
}

impl Credentials {
    /// The `Authorization` header value of a static credential; `None` for client credentials,
    /// whose header changes with every minted token.
    pub fn header(&self) -> Option<Secret> {
        match self {
            Credentials::OAuth(token) => Some(bearer(token)),
            Credentials::ClientCredentials(_) => None,
            Credentials::ApiToken { email, token } => {
                let raw = format!("{email}/token:{}", token.expose());
                Some(Secret(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                )))
            }
        }
    }

    /// What kind of credential this is, for messages (never the value).
    pub fn kind(&self) -> &'static str {
        match self {
            Credentials::OAuth(_) => "OAuth token (ZENDESK_OAUTH_TOKEN)",
            Credentials::ClientCredentials(_) => {
                "OAuth client credentials (ZENDESK_OAUTH_CLIENT_ID + ZENDESK_OAUTH_CLIENT_SECRET)"
            }
            Credentials::ApiToken { .. } => "API token (ZENDESK_EMAIL + ZENDESK_API_TOKEN)",
        }
    }
}

/// `Bearer <token>`.
pub fn bearer(token: &Secret) -> Secret {
    Secret(format!("Bearer {}", token.expose()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_follow_zendesk_conventions() {
        let oauth = Credentials::OAuth(Secret::new("abc"));
        assert_eq!(oauth.header().unwrap().expose(), "Bearer abc");
        let basic = Credentials::ApiToken {
            email: "a@b.c".into(),
            token: Secret::new("t0k"),
        };
        // base64("a@b.c/token:t0k")
        assert_eq!(
            basic.header().unwrap().expose(),
            "Basic YUBiLmMvdG9rZW46dDBr"
        );
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
        let client = Credentials::ClientCredentials(OAuthClient {
            id: "auditlake".into(),
            secret: Secret::new("hunter3"),
            scope: DEFAULT_SCOPE.into(),
        });
        let shown = format!("{client:?}");
        assert!(!shown.contains("hunter3"), "{shown}");
    }
}
