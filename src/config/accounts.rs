//! Many Zendesk accounts from one file (issue 29): the `[[account]]` tables of `--config`, each
//! with its `subdomain`, its credentials (named, never inline) and any setting of the command;
//! the file's top level gives the defaults. Each selected account becomes a command line of its
//! own (the account's keys between the command line and the file's top level, as `--key=value`
//! arguments, the way every other key of the file is read) and an environment of its own (its
//! credentials as the `ZENDESK_*` variables `credentials` reads), so that an account is
//! configured exactly as a single-account run is, by the same code.
//!
//! Which accounts run: all of them, the one `--account` names, or a shard (`--shard I/N`: every
//! account whose position in the file, from 0, modulo N is I), the way a scheduler fans out
//! (Kubernetes Indexed Jobs and AWS Batch array jobs number their tasks in an environment
//! variable: `--shard N` reads it).

use std::collections::BTreeMap;
use std::ffi::OsString;

use super::cli::Cli;
use super::file::{command_line_with, one_line, AccountTable, CommandLineError, Env, FileConfig};
use super::ConfigError;

/// One account as a run of the command: its subdomain, command line and environment.
#[derive(Debug)]
pub struct AccountRun {
    pub subdomain: String,
    pub cli: Cli,
    pub env: Env,
}

/// The credential keys of an `[[account]]` table: the `ZENDESK_*` variable's name in kebab
/// case without `ZENDESK_` (its stem), then whether its value is a secret (which the file may
/// only name: a `-file` or an `-env`), and whether `credentials` reads the variable from a
/// file (`_FILE`).
const CREDENTIALS: [(&str, &str, bool, bool); 6] = [
    ("oauth-client-id", "ZENDESK_OAUTH_CLIENT_ID", false, true),
    (
        "oauth-client-secret",
        "ZENDESK_OAUTH_CLIENT_SECRET",
        true,
        true,
    ),
    ("oauth-scope", "ZENDESK_OAUTH_SCOPE", false, false),
    ("oauth-token", "ZENDESK_OAUTH_TOKEN", true, true),
    ("email", "ZENDESK_EMAIL", false, false),
    ("api-token", "ZENDESK_API_TOKEN", true, true),
];

/// Variables that name the Kubernetes Indexed Job's and the AWS Batch array job's task, for
/// `--shard N`.
const INDEX_VARIABLES: [(&str, &str); 2] = [
    ("JOB_COMPLETION_INDEX", "Kubernetes Indexed Job"),
    ("AWS_BATCH_JOB_ARRAY_INDEX", "AWS Batch array job"),
];

/// Which of the file's accounts run: `--account` and `--shard`, as given.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    pub account: Option<String>,
    pub shard: Option<String>,
}

/// The accounts of `file` that `selection` picks, each as a run of the command of `argv` (the
/// program's name first). Every account the file lists is checked first, so that a file with
/// one bad account runs none: the error names the account and the key. Credentials are checked
/// and read only when the command reaches Zendesk (`needs_credentials`).
pub fn accounts(
    argv: &[OsString],
    path: &std::path::Path,
    env: &Env,
    file: &FileConfig,
    selection: &Selection,
    needs_credentials: bool,
) -> Result<Vec<AccountRun>, ConfigError> {
    let bad = |why: String| ConfigError(format!("--config {}: {why}", path.display()));
    let subdomains = subdomains(&file.accounts).map_err(&bad)?;
    if given_subdomain(argv, env) {
        return Err(bad("--subdomain cannot be given with [[account]] tables: each account names its subdomain (run one with --account SUBDOMAIN)".into()));
    }
    if file.flags.contains_key("subdomain") {
        return Err(bad("subdomain at the top level of a file with [[account]] tables: each account names its own".into()));
    }
    let picked = pick(&subdomains, selection, env)?;
    let mut runs = Vec::new();
    for (position, table) in file.accounts.iter().enumerate() {
        let subdomain = &subdomains[position];
        let name = format!("account {subdomain} (line {})", table.line);
        let (flags, credentials) =
            split_keys(table, needs_credentials).map_err(|why| bad(format!("{name}: {why}")))?;
        let account_env = account_env(env, &credentials, needs_credentials)
            .map_err(|why| bad(format!("{name}: {why}")))?;
        let mut merged = file.clone();
        merged.accounts.clear();
        for key in flags.keys() {
            merged.lines.insert(key.clone(), table.line);
        }
        merged.flags.extend(flags);
        let cli = command_line_with(argv.to_vec(), env, &merged).map_err(|e| match e {
            CommandLineError::Config(e) => bad(format!("{name}: {}", strip_path(&e.0))),
            CommandLineError::Clap(e) => bad(format!("{name}: {}", one_line(&e))),
        })?;
        if picked.contains(&position) {
            runs.push(AccountRun {
                subdomain: subdomain.clone(),
                cli,
                env: account_env,
            });
        }
    }
    if runs.is_empty() && selection.account.is_some() {
        let shard = selection.shard.as_deref().unwrap_or_default();
        return Err(ConfigError(format!(
            "--account {} is not in --shard {shard}",
            selection.account.as_deref().unwrap_or_default()
        )));
    }
    Ok(runs)
}

/// Settings of the whole process, not of one account: refused in an `[[account]]` table.
const PROCESS_KEYS: [&str; 8] = [
    "accounts-at-once",
    "account",
    "shard",
    "config",
    "check-config",
    "log-format",
    "log-level",
    "quiet",
];

/// A message of `command_line_with` without its `--config PATH: ` and `line N: ` heads (the
/// caller names the account and its line).
fn strip_path(message: &str) -> String {
    let mut rest = message;
    if let Some((head, tail)) = rest.split_once(": ") {
        if head.starts_with("--config ") {
            rest = tail;
        }
    }
    if let Some((head, tail)) = rest.split_once(": ") {
        if head.starts_with("line ") && head[5..].chars().all(|c| c.is_ascii_digit()) {
            rest = tail;
        }
    }
    rest.to_string()
}

/// Each account's subdomain, in the file's order: present, a string, and once.
fn subdomains(accounts: &[AccountTable]) -> Result<Vec<String>, String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = Vec::new();
    for (position, table) in accounts.iter().enumerate() {
        let subdomain = match table.keys.get("subdomain") {
            Some(toml::Value::String(s)) if crate::units::valid_subdomain(s) => s.clone(),
            Some(toml::Value::String(s)) => {
                return Err(format!(
                    "account {} (line {}): subdomain {s:?} is not a Zendesk subdomain",
                    position + 1,
                    table.line
                ))
            }
            _ => {
                return Err(format!(
                    "account {} (line {}): subdomain is required (e.g. subdomain = \"acme\" for acme.zendesk.com)",
                    position + 1,
                    table.line
                ))
            }
        };
        if let Some(first) = seen.insert(subdomain.clone(), table.line) {
            return Err(format!(
                "account {subdomain} (line {}): the account at line {first} has the same subdomain: each account once",
                table.line
            ));
        }
        out.push(subdomain);
    }
    Ok(out)
}

/// Whether the command line or its variable sets `--subdomain`.
fn given_subdomain(argv: &[OsString], env: &Env) -> bool {
    let on_line = argv.iter().any(|a| {
        let a = a.to_string_lossy();
        a == "--subdomain" || a.starts_with("--subdomain=")
    });
    on_line || env.get("AUDITLAKE_SUBDOMAIN").is_some()
}

/// The positions of the accounts `selection` picks among `subdomains`.
fn pick(
    subdomains: &[String],
    selection: &Selection,
    env: &Env,
) -> Result<Vec<usize>, ConfigError> {
    let mut picked: Vec<usize> = (0..subdomains.len()).collect();
    if let Some(shard) = &selection.shard {
        let (index, count) = shard_of(shard, env)?;
        picked.retain(|position| position % count == index);
    }
    if let Some(account) = &selection.account {
        let Some(position) = subdomains.iter().position(|s| s == account) else {
            return Err(ConfigError(format!(
                "--account {account}: no [[account]] in --config has that subdomain (it lists {})",
                subdomains.join(", ")
            )));
        };
        picked.retain(|&p| p == position);
    }
    Ok(picked)
}

/// `--shard I/N`, or `--shard N` with I from the scheduler's task index variable.
pub fn shard_of(text: &str, env: &Env) -> Result<(usize, usize), ConfigError> {
    let bad = |why: String| ConfigError(format!("--shard {text}: {why}"));
    let number = |part: &str| part.trim().parse::<usize>().ok();
    let (index, count) = match text.split_once('/') {
        Some((i, n)) => {
            let index = number(i).ok_or_else(|| {
                bad(format!(
                    "{i:?} is not an index (I/N: a number from 0 to N-1, then the count)"
                ))
            })?;
            let count = number(n).ok_or_else(|| bad(format!("{n:?} is not a count of shards")))?;
            (index, count)
        }
        None => {
            let count = number(text).ok_or_else(|| bad("give I/N (this task's index, from 0, and the count) or N (the index from the scheduler's variable)".into()))?;
            let found = INDEX_VARIABLES
                .iter()
                .find_map(|&(name, of)| env.get(name).map(|value| (name, of, value)));
            let Some((name, _, value)) = found else {
                return Err(bad(format!(
                    "no task index: neither {} nor {} is set; give --shard I/{count}",
                    INDEX_VARIABLES[0].0, INDEX_VARIABLES[1].0
                )));
            };
            let index =
                number(value).ok_or_else(|| bad(format!("{name}={value:?} is not a number")))?;
            (index, count)
        }
    };
    if count == 0 {
        return Err(bad("the count of shards must be at least 1".into()));
    }
    if index >= count {
        return Err(bad(format!(
            "index {index} is not below the count {count} (indexes run from 0 to {})",
            count - 1
        )));
    }
    Ok((index, count))
}

/// An account's keys as the command's flags, and its credentials as `ZENDESK_*` variables with
/// their values (a value, a file's path for a `_FILE` variable, or the name of the variable to
/// read).
fn split_keys(
    table: &AccountTable,
    needs_credentials: bool,
) -> Result<(toml::Table, Vec<Credential>), String> {
    let mut flags = toml::Table::new();
    let mut credentials = Vec::new();
    for (key, value) in &table.keys {
        if PROCESS_KEYS.contains(&key.as_str()) {
            return Err(format!(
                "{key} is a setting of the whole process: set it at the top level or on the command line"
            ));
        }
        let Some(credential) = credential_of(key, value)? else {
            flags.insert(key.clone(), value.clone());
            continue;
        };
        credentials.push(credential);
    }
    if needs_credentials && credentials.iter().all(|c| !c.identifies) {
        return Err("no credentials: set oauth-client-id with oauth-client-secret-file (or -env), oauth-token-file (or -env), or email with api-token-file (or -env)".into());
    }
    Ok((flags, credentials))
}

/// One credential of an account.
#[derive(Clone, Debug)]
struct Credential {
    /// The variable `credentials` reads (`ZENDESK_OAUTH_TOKEN`, or `..._FILE`).
    variable: String,
    source: Source,
    /// A secret or an id: what makes credentials (a scope alone does not).
    identifies: bool,
}

#[derive(Clone, Debug)]
enum Source {
    /// The value itself (an id, a scope, an email) or a file's path (`-file`).
    Value(String),
    /// The name of the variable that holds the value (`-env`).
    Variable(String),
}

/// The credential `key` sets, if it is one: refused inline when its value is a secret.
fn credential_of(key: &str, value: &toml::Value) -> Result<Option<Credential>, String> {
    for (stem, variable, secret, has_file) in CREDENTIALS {
        let form = if key == stem {
            ""
        } else if let Some(form) = key
            .strip_prefix(stem)
            .filter(|f| ["-file", "-env"].contains(f))
        {
            form
        } else {
            continue;
        };
        let toml::Value::String(text) = value else {
            return Err(format!("{key}: give a string"));
        };
        let identifies = stem != "oauth-scope";
        let credential = match form {
            "" if secret => {
                return Err(format!(
                    "{key} is a secret and the file may not hold it: name a file ({stem}-file) or a variable ({stem}-env)"
                ))
            }
            "" => Credential {
                variable: variable.to_string(),
                source: Source::Value(text.clone()),
                identifies,
            },
            "-file" if has_file && !std::path::Path::new(text).is_absolute() => {
                // Not quoted: a secret typed where its file's path goes must not be echoed.
                return Err(format!(
                    "{key} must be an absolute path to the file that holds the value"
                ));
            }
            "-file" if has_file => Credential {
                variable: format!("{variable}_FILE"),
                source: Source::Value(text.clone()),
                identifies,
            },
            "-file" => return Err(format!("{key}: {stem} is not read from a file: give {stem} or {stem}-env")),
            _ if !is_variable_name(text) => {
                // Not quoted: a secret typed where its variable's name goes must not be echoed.
                return Err(format!(
                    "{key} must name an environment variable (letters, digits and _, not starting with a digit)"
                ));
            }
            _ => Credential {
                variable: variable.to_string(),
                source: Source::Variable(text.clone()),
                identifies,
            },
        };
        return Ok(Some(credential));
    }
    Ok(None)
}

/// Whether `text` is an environment variable's name.
fn is_variable_name(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The process's environment with the account's credentials as the only `ZENDESK_*` ones: a
/// variable an `-env` key names is read here, so that one not set is said at once.
fn account_env(env: &Env, credentials: &[Credential], needs: bool) -> Result<Env, String> {
    let mut pairs: Vec<(String, String)> = env
        .vars()
        .filter(|(name, _)| !name.starts_with("ZENDESK_"))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for credential in credentials {
        let value = match &credential.source {
            Source::Value(value) => value.clone(),
            Source::Variable(name) => match env.get(name) {
                Some(value) => value.to_string(),
                None if !needs => continue,
                None => {
                    // The name is not shown: a secret typed in its place may look like one.
                    return Err(format!(
                        "{}-env names a variable that is not set (its name is not shown, in case a secret was typed in its place)",
                        key_of(&credential.variable)
                    ));
                }
            },
        };
        pairs.push((credential.variable.clone(), value));
    }
    Ok(Env::from_pairs(pairs))
}

/// The key of an account that sets `variable` (`ZENDESK_OAUTH_TOKEN_FILE`: `oauth-token-file`).
fn key_of(variable: &str) -> String {
    variable
        .trim_start_matches("ZENDESK_")
        .to_ascii_lowercase()
        .replace('_', "-")
}

/// How a message names `variable` to an account: its key, and for a secret, which may only be
/// named, the keys that name it (`oauth-client-secret-file (or -env)`).
fn said_as(variable: &str) -> String {
    let secret = CREDENTIALS
        .iter()
        .any(|&(_, name, secret, _)| secret && name == variable);
    match secret {
        true => format!("{}-file (or -env)", key_of(variable)),
        false => key_of(variable),
    }
}

/// A credentials message about `ZENDESK_*` variables, said in an account's keys instead.
pub fn in_account_terms(message: &str) -> String {
    let mut names: Vec<String> = CREDENTIALS
        .iter()
        .flat_map(|(_, variable, _, _)| [format!("{variable}_FILE"), variable.to_string()])
        .collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    let mut out = message.to_string();
    for name in names {
        out = out.replace(&name, &said_as(&name));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs.iter().map(|&(k, v)| (k, v)))
    }

    #[test]
    fn a_shard_is_an_index_below_its_count() {
        let none = env(&[]);
        assert_eq!(shard_of("1/3", &none).unwrap(), (1, 3));
        assert_eq!(shard_of("0/1", &none).unwrap(), (0, 1));
        for bad in ["3/2", "2/2", "0/0", "x/2", "1/y", "-1/2", "", "1/"] {
            let e = shard_of(bad, &none).unwrap_err().0;
            assert!(e.starts_with(&format!("--shard {bad}: ")), "{e}");
        }
        assert!(shard_of("3/2", &none)
            .unwrap_err()
            .0
            .contains("not below the count 2"));
        let k8s = env(&[("JOB_COMPLETION_INDEX", "2")]);
        assert_eq!(shard_of("4", &k8s).unwrap(), (2, 4));
        let batch = env(&[("AWS_BATCH_JOB_ARRAY_INDEX", "1")]);
        assert_eq!(shard_of("2", &batch).unwrap(), (1, 2));
        let e = shard_of("4", &env(&[("JOB_COMPLETION_INDEX", "two")]))
            .unwrap_err()
            .0;
        assert!(
            e.contains("JOB_COMPLETION_INDEX=\"two\" is not a number"),
            "{e}"
        );
        let e = shard_of("4", &none).unwrap_err().0;
        assert!(
            e.contains("neither JOB_COMPLETION_INDEX nor AWS_BATCH_JOB_ARRAY_INDEX"),
            "{e}"
        );
        assert!(shard_of("4", &env(&[("JOB_COMPLETION_INDEX", "4")])).is_err());
    }

    #[test]
    fn credentials_are_named_never_inline() {
        let value = |s: &str| toml::Value::String(s.into());
        let c = credential_of("oauth-token-env", &value("ACME_TOKEN"))
            .unwrap()
            .unwrap();
        assert_eq!(c.variable, "ZENDESK_OAUTH_TOKEN");
        assert!(matches!(c.source, Source::Variable(ref v) if v == "ACME_TOKEN"));
        let c = credential_of("oauth-client-secret-file", &value("/run/s"))
            .unwrap()
            .unwrap();
        assert_eq!(c.variable, "ZENDESK_OAUTH_CLIENT_SECRET_FILE");
        let c = credential_of("oauth-client-id", &value("auditlake"))
            .unwrap()
            .unwrap();
        assert_eq!(c.variable, "ZENDESK_OAUTH_CLIENT_ID");
        for secret in ["oauth-client-secret", "oauth-token", "api-token"] {
            let e = credential_of(secret, &value("s3cr3t")).unwrap_err();
            assert!(e.contains("is a secret") && !e.contains("s3cr3t"), "{e}");
        }
        assert!(credential_of("email-file", &value("/x")).is_err());
        // A secret typed where a name or a path goes is refused, and not echoed.
        for (key, typed) in [
            ("oauth-token-env", "eyJ.SECRET.x"),
            ("oauth-token-file", "SECRETVALUE4"),
        ] {
            let e = credential_of(key, &value(typed)).unwrap_err();
            assert!(!e.contains(typed), "{e}");
        }
        assert!(credential_of("dest", &value("/lake")).unwrap().is_none());
        assert_eq!(
            in_account_terms("ZENDESK_OAUTH_CLIENT_SECRET_FILE: cannot read /x"),
            "oauth-client-secret-file: cannot read /x"
        );
    }

    #[test]
    fn an_account_reads_only_its_own_credentials() {
        let process = env(&[
            ("ZENDESK_OAUTH_TOKEN", "the-process-token"),
            ("ACME_TOKEN", "acme-token"),
            ("PATH", "/bin"),
        ]);
        let credential = Credential {
            variable: "ZENDESK_OAUTH_TOKEN".into(),
            source: Source::Variable("ACME_TOKEN".into()),
            identifies: true,
        };
        let account = account_env(&process, std::slice::from_ref(&credential), true).unwrap();
        assert_eq!(account.get("ZENDESK_OAUTH_TOKEN"), Some("acme-token"));
        // An environment shows its names, never a value.
        let shown = format!("{account:?}");
        assert!(
            shown.contains("ZENDESK_OAUTH_TOKEN") && !shown.contains("acme-token"),
            "{shown}"
        );
        assert_eq!(account.get("PATH"), Some("/bin"));
        let e = account_env(&env(&[]), std::slice::from_ref(&credential), true).unwrap_err();
        assert!(
            e.starts_with("oauth-token-env names a variable that is not set"),
            "{e}"
        );
        assert!(!e.contains("ACME_TOKEN"), "{e}");
        // A command that does not reach Zendesk (status) does not need it.
        assert!(account_env(&env(&[]), &[credential], false).is_ok());
    }
}
