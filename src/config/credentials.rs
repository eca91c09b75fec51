//! Zendesk credentials: read only from `ZENDESK_*` environment variables or the files they name,
//! never from flags or the config file, and never shown in a message. Also the `--help` text that
//! names those variables, written here beside the code that reads them.

use crate::config::{err, ConfigError, Env};
use crate::zendesk::auth::{OAuthClient, Secret, DEFAULT_SCOPE};
use crate::zendesk::Credentials;

/// What `--help` says about credentials, on the program and on each command that reaches
/// Zendesk: every variable [`credentials`] reads, the recommended kind first.
pub(super) fn help() -> String {
    format!(
        "\
Credentials (from the environment only; set exactly one kind):
  ZENDESK_OAUTH_CLIENT_ID + ZENDESK_OAUTH_CLIENT_SECRET
      A confidential OAuth client (client-credentials grant): auditlake mints and renews its own
      access tokens. Use this for scheduled runs. ZENDESK_OAUTH_SCOPE sets the scope asked for
      [default: {DEFAULT_SCOPE}].
  ZENDESK_OAUTH_TOKEN
      An OAuth access token minted elsewhere (scope read or auditlogs:read); it cannot be renewed,
      so a run stops when it expires.
  ZENDESK_EMAIL + ZENDESK_API_TOKEN
      An API token (Zendesk deactivates API tokens on 2027-04-30).
  Each secret may instead name a file that holds it (a mounted secret):
  ZENDESK_OAUTH_CLIENT_ID_FILE, ZENDESK_OAUTH_CLIENT_SECRET_FILE, ZENDESK_OAUTH_TOKEN_FILE,
  ZENDESK_API_TOKEN_FILE."
    )
}

/// Reads a secret from `NAME` or from the file named by `NAME_FILE` (a trailing newline is
/// dropped). The value never appears in a message.
fn secret(env: &Env, name: &str) -> Result<Option<Secret>, ConfigError> {
    Ok(value(env, name)?.map(|v| Secret::new(&v)))
}

/// The value of `NAME`, or the contents of the file named by `NAME_FILE`, trimmed; never both.
/// Messages name the variable and the file, never the value.
fn value(env: &Env, name: &str) -> Result<Option<String>, ConfigError> {
    let file_var = format!("{name}_FILE");
    match (env.get(name), env.get(&file_var)) {
        (Some(_), Some(_)) => err(format!("set {name} or {file_var}, not both")),
        (Some(v), None) => Ok(Some(v.trim().to_string())),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError(format!("{file_var}: cannot read {path}: {e}")))?;
            let value = text.trim();
            if value.is_empty() {
                return err(format!("{file_var}: {path} is empty"));
            }
            Ok(Some(value.to_string()))
        }
        (None, None) => Ok(None),
    }
}

/// Refuses two kinds of credentials at once, naming both, so that nobody has to wonder which one a
/// run used. Decided from the variables' names alone, before any file is read: a second kind is
/// the mistake to report, not an unreadable file behind it.
fn one_kind(env: &Env) -> Result<(), ConfigError> {
    let set = |names: &[&str]| {
        names
            .iter()
            .any(|n| env.get(n).is_some() || env.get(&format!("{n}_FILE")).is_some())
    };
    let mut kinds: Vec<&str> = Vec::new();
    if set(&["ZENDESK_OAUTH_TOKEN"]) {
        kinds.push("an OAuth access token (ZENDESK_OAUTH_TOKEN)");
    }
    if set(&["ZENDESK_OAUTH_CLIENT_ID", "ZENDESK_OAUTH_CLIENT_SECRET"]) {
        kinds.push(
            "OAuth client credentials (ZENDESK_OAUTH_CLIENT_ID + ZENDESK_OAUTH_CLIENT_SECRET)",
        );
    }
    if set(&["ZENDESK_API_TOKEN"]) {
        kinds.push("an API token (ZENDESK_EMAIL + ZENDESK_API_TOKEN)");
    }
    if kinds.len() > 1 {
        return err(format!(
            "more than one kind of Zendesk credential is set: {}; keep exactly one (OAuth client credentials are preferred: auditlake renews their tokens itself, and Zendesk deactivates every API token on 2027-04-30)",
            kinds.join(" and ")
        ));
    }
    Ok(())
}

/// The credentials from the environment: exactly one kind of them.
pub(super) fn credentials(env: &Env) -> Result<Credentials, ConfigError> {
    one_kind(env)?;
    let oauth = secret(env, "ZENDESK_OAUTH_TOKEN")?;
    // The client's id is no secret, but it is mounted beside the secret as often as not.
    let client_id = value(env, "ZENDESK_OAUTH_CLIENT_ID")?;
    let client_id = client_id.as_deref();
    let client_secret = secret(env, "ZENDESK_OAUTH_CLIENT_SECRET")?;
    let scope = env.get("ZENDESK_OAUTH_SCOPE").map(str::trim);
    let token = secret(env, "ZENDESK_API_TOKEN")?;
    let email = env.get("ZENDESK_EMAIL");
    if scope.is_some() && client_id.is_none() && client_secret.is_none() {
        return err("ZENDESK_OAUTH_SCOPE is used only with ZENDESK_OAUTH_CLIENT_ID and ZENDESK_OAUTH_CLIENT_SECRET");
    }
    match (oauth, client_id, client_secret, token, email) {
        (Some(t), ..) => Ok(Credentials::OAuth(t)),
        (None, Some(id), Some(secret), ..) => {
            let scope = scope.unwrap_or(DEFAULT_SCOPE);
            if scope.is_empty() || scope.chars().any(|c| c.is_control()) {
                return err("ZENDESK_OAUTH_SCOPE must be space-separated scopes, e.g. auditlogs:read");
            }
            Ok(Credentials::ClientCredentials(OAuthClient {
                id: id.to_string(),
                secret,
                scope: scope.to_string(),
            }))
        }
        (None, Some(_), None, ..) => err(
            "ZENDESK_OAUTH_CLIENT_ID needs ZENDESK_OAUTH_CLIENT_SECRET (or ZENDESK_OAUTH_CLIENT_SECRET_FILE): the confidential OAuth client's secret",
        ),
        (None, None, Some(_), ..) => err(
            "ZENDESK_OAUTH_CLIENT_SECRET needs ZENDESK_OAUTH_CLIENT_ID: the OAuth client's unique identifier",
        ),
        (None, None, None, Some(token), Some(email)) => Ok(Credentials::ApiToken {
            email: email.to_string(),
            token,
        }),
        (None, None, None, Some(_), None) => {
            err("ZENDESK_API_TOKEN needs ZENDESK_EMAIL (the admin's email address)")
        }
        (None, None, None, None, _) => err(
            "no credentials: set ZENDESK_OAUTH_CLIENT_ID and ZENDESK_OAUTH_CLIENT_SECRET (a confidential OAuth client; the way for scheduled runs), or ZENDESK_OAUTH_TOKEN (an OAuth access token with the auditlogs:read or read scope), or ZENDESK_EMAIL and ZENDESK_API_TOKEN (deactivated by Zendesk on 2027-04-30)",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_help_names_every_variable_credentials_are_read_from() {
        let help = help();
        for name in [
            "ZENDESK_OAUTH_CLIENT_ID",
            "ZENDESK_OAUTH_CLIENT_ID_FILE",
            "ZENDESK_OAUTH_CLIENT_SECRET",
            "ZENDESK_OAUTH_CLIENT_SECRET_FILE",
            "ZENDESK_OAUTH_SCOPE",
            "ZENDESK_OAUTH_TOKEN",
            "ZENDESK_OAUTH_TOKEN_FILE",
            "ZENDESK_EMAIL",
            "ZENDESK_API_TOKEN",
            "ZENDESK_API_TOKEN_FILE",
            DEFAULT_SCOPE,
        ] {
            assert!(help.contains(name), "{name}");
        }
        assert!(
            help.lines().all(|l| l.len() <= 100),
            "fits the help's width"
        );
    }

    #[test]
    fn credentials_come_from_the_environment_and_never_show() {
        let e = credentials(&Env::default()).unwrap_err();
        assert!(e.0.contains("ZENDESK_OAUTH_TOKEN"));
        let both = Env::from_pairs([
            ("ZENDESK_OAUTH_TOKEN", "a-SECRET"),
            ("ZENDESK_API_TOKEN", "b-SECRET"),
        ]);
        let e = credentials(&both).unwrap_err();
        assert!(!e.0.contains("SECRET"));
        let c = credentials(&Env::from_pairs([
            ("ZENDESK_EMAIL", "a@b.c"),
            ("ZENDESK_API_TOKEN", "t-SECRET"),
        ]))
        .unwrap();
        assert!(matches!(c, Credentials::ApiToken { .. }));
        assert!(!format!("{c:?}").contains("SECRET"));

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "file-SECRET\n").unwrap();
        let c = credentials(&Env::from_pairs([(
            "ZENDESK_OAUTH_TOKEN_FILE",
            path.to_str().unwrap(),
        )]))
        .unwrap();
        assert_eq!(c, Credentials::OAuth(Secret::new("file-SECRET")));
        let missing = Env::from_pairs([("ZENDESK_OAUTH_TOKEN_FILE", "/nonexistent/token")]);
        assert!(credentials(&missing)
            .unwrap_err()
            .0
            .contains("/nonexistent/token"));
    }

    #[test]
    fn client_credentials_come_from_the_environment_or_a_mounted_file() {
        let c = credentials(&Env::from_pairs([
            ("ZENDESK_OAUTH_CLIENT_ID", "auditlake"),
            ("ZENDESK_OAUTH_CLIENT_SECRET", "cs-SECRET"),
        ]))
        .unwrap();
        assert_eq!(
            c,
            Credentials::ClientCredentials(OAuthClient {
                id: "auditlake".into(),
                secret: Secret::new("cs-SECRET"),
                scope: "auditlogs:read".into(),
            })
        );
        assert!(!format!("{c:?}").contains("SECRET"));

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("client-secret");
        std::fs::write(&path, "file-SECRET\n").unwrap();
        let c = credentials(&Env::from_pairs([
            ("ZENDESK_OAUTH_CLIENT_ID", "auditlake"),
            ("ZENDESK_OAUTH_CLIENT_SECRET_FILE", path.to_str().unwrap()),
            ("ZENDESK_OAUTH_SCOPE", "read"),
        ]))
        .unwrap();
        let Credentials::ClientCredentials(client) = c else {
            panic!("client credentials expected");
        };
        assert_eq!(client.secret, Secret::new("file-SECRET"));
        assert_eq!(client.scope, "read");

        // Both halves mounted as files (a Kubernetes secret with two keys).
        let id_path = dir.path().join("client-id");
        std::fs::write(&id_path, "auditlake-from-file\n").unwrap();
        let c = credentials(&Env::from_pairs([
            ("ZENDESK_OAUTH_CLIENT_ID_FILE", id_path.to_str().unwrap()),
            ("ZENDESK_OAUTH_CLIENT_SECRET_FILE", path.to_str().unwrap()),
        ]))
        .unwrap();
        let Credentials::ClientCredentials(client) = c else {
            panic!("client credentials expected");
        };
        assert_eq!(client.id, "auditlake-from-file");
        assert_eq!(client.secret, Secret::new("file-SECRET"));

        for (pairs, needle) in [
            (
                &[("ZENDESK_OAUTH_CLIENT_ID", "auditlake")][..],
                "needs ZENDESK_OAUTH_CLIENT_SECRET",
            ),
            (
                &[("ZENDESK_OAUTH_CLIENT_SECRET", "cs-SECRET")][..],
                "needs ZENDESK_OAUTH_CLIENT_ID",
            ),
            (
                &[
                    ("ZENDESK_OAUTH_TOKEN", "t-SECRET"),
                    ("ZENDESK_OAUTH_SCOPE", "read"),
                ][..],
                "ZENDESK_OAUTH_SCOPE is used only with",
            ),
        ] {
            let e = credentials(&Env::from_pairs(pairs.iter().copied())).unwrap_err();
            assert!(e.0.contains(needle), "{pairs:?}: {e}");
            assert!(!e.0.contains("-SECRET"), "{e}");
        }
    }

    #[test]
    fn two_kinds_of_credentials_are_a_usage_error_naming_both() {
        type Case<'a> = (&'a [(&'a str, &'a str)], [&'a str; 2]);
        let cases: [Case; 4] = [
            (
                &[
                    ("ZENDESK_OAUTH_TOKEN", "a-SECRET"),
                    ("ZENDESK_OAUTH_CLIENT_ID", "auditlake"),
                ],
                ["ZENDESK_OAUTH_TOKEN", "ZENDESK_OAUTH_CLIENT_ID"],
            ),
            (
                &[
                    ("ZENDESK_EMAIL", "a@b.c"),
                    ("ZENDESK_API_TOKEN", "b-SECRET"),
                    ("ZENDESK_OAUTH_CLIENT_ID", "auditlake"),
                    ("ZENDESK_OAUTH_CLIENT_SECRET", "c-SECRET"),
                ],
                ["ZENDESK_API_TOKEN", "ZENDESK_OAUTH_CLIENT_SECRET"],
            ),
            (
                &[
                    ("ZENDESK_OAUTH_TOKEN", "a-SECRET"),
                    ("ZENDESK_API_TOKEN", "b-SECRET"),
                ],
                ["ZENDESK_OAUTH_TOKEN", "ZENDESK_API_TOKEN"],
            ),
            (
                &[
                    ("ZENDESK_OAUTH_TOKEN", "a-SECRET"),
                    ("ZENDESK_OAUTH_CLIENT_SECRET_FILE", "/nonexistent"),
                ],
                ["ZENDESK_OAUTH_TOKEN", "ZENDESK_OAUTH_CLIENT_SECRET"],
            ),
        ];
        for (pairs, names) in cases {
            let e = credentials(&Env::from_pairs(pairs.iter().copied())).unwrap_err();
            for name in names {
                assert!(e.0.contains(name), "{pairs:?}: {e}");
            }
            assert!(!e.0.contains("-SECRET"), "{e}");
        }
    }
}
