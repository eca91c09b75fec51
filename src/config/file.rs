//! What the configuration is read from besides the flags: the process environment, captured once,
//! and the TOML file of `--config`, whose keys become command-line arguments (ripgrep's way) so
//! that every flag is declared once, in [`crate::config::cli`]. Also the log filter, which the
//! binary needs before any command's settings are validated.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::path::Path;

use clap::FromArgMatches;

use crate::config::cli::Cli;
use crate::config::ConfigError;

/// The process environment, captured once (tests pass their own).
#[derive(Clone, Default)]
pub struct Env(HashMap<String, String>);

/// Names only: values may be secrets (an account's credentials are put here).
impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.0.keys().collect();
        names.sort();
        f.debug_tuple("Env").field(&names).finish()
    }
}

impl Env {
    /// The real environment.
    pub fn capture() -> Env {
        Env(std::env::vars().collect())
    }

    /// An environment from pairs.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Env {
        Env(pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect())
    }

    /// A variable's value; one set to nothing counts as unset.
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// Every variable that is set to something, in no particular order.
    pub(super) fn vars(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// The TOML file (`--config`): its `[storage]` table, and every other key, named like a long flag
/// of the command (`subdomain = "acme"`, `filter-action = ["login"]`). The flags are declared
/// once, in [`crate::config::cli`]: [`command_line`] turns the file's keys into arguments.
#[derive(Clone, Debug, Default)]
pub struct FileConfig {
    /// Object-store settings by `object_store` key (`aws_region`, `aws_endpoint`, ...); never
    /// secrets, which belong in the environment.
    pub storage: BTreeMap<String, String>,
    /// Every other key, as written.
    pub flags: toml::Table,
    /// The line of each key, for messages.
    pub(super) lines: BTreeMap<String, usize>,
    /// The `[[account]]` tables, in the file's order (see `config/accounts.rs`).
    pub accounts: Vec<AccountTable>,
}

/// One `[[account]]` table of the file: its keys, as written, and the line it starts on.
#[derive(Clone, Debug, Default)]
pub struct AccountTable {
    pub keys: toml::Table,
    pub line: usize,
}

/// The line (1-based) where `key` is set in `text`.
fn line_of(text: &str, key: &str) -> usize {
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            l.strip_prefix(key)
                .or_else(|| l.strip_prefix(&format!("\"{key}\"")))
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map_or(1, |i| i + 1)
}

/// The lines (1-based) where the file's `[[account]]` tables start, in order.
fn account_lines(text: &str) -> Vec<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            let l: String = l.chars().filter(|c| !c.is_whitespace()).collect();
            l.starts_with("[[account]]")
        })
        .map(|(i, _)| i + 1)
        .collect()
}

/// The message of an invalid `[storage]` entry: the line only, since the value may be a secret.
fn invalid_storage(line: usize) -> String {
    format!("line {line}: invalid [storage] entry (value not shown; storage values are strings)")
}

impl FileConfig {
    /// Reads the file named by `--config`, or an empty configuration without one.
    pub fn load(path: Option<&Path>) -> Result<FileConfig, ConfigError> {
        let Some(path) = path else {
            return Ok(FileConfig::default());
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("--config {}: {e}", path.display())))?;
        FileConfig::parse(&text)
            .map_err(|e| ConfigError(format!("--config {}: {e}", path.display())))
    }

    /// Parses the file's text. The error names the line, never quotes it: a line in `[storage]`
    /// may hold a secret (refused, but only after parsing), so there the reason is left out too,
    /// as toml's reasons can quote the value.
    pub fn parse(text: &str) -> Result<FileConfig, String> {
        let mut flags: toml::Table = toml::from_str(text).map_err(|e: toml::de::Error| {
            let Some(span) = e.span() else {
                return e.message().to_string();
            };
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let table = before
                .lines()
                .rev()
                .map(str::trim)
                .find(|l| l.starts_with('['))
                .unwrap_or("");
            let line_text = text.lines().nth(line - 1).unwrap_or("");
            // Also `storage = { ... }` and `storage.key = ...` on the line itself.
            if table.trim_matches(|c| c == '[' || c == ']' || c == ' ') == "storage"
                || line_text.contains("storage")
            {
                invalid_storage(line)
            } else {
                format!("line {line}: {}", e.message())
            }
        })?;
        let storage = match flags.remove("storage") {
            None => Default::default(),
            Some(table) => table.try_into().map_err(|_| {
                let line = text
                    .lines()
                    .position(|l| l.contains("storage"))
                    .map_or(1, |i| i + 1);
                invalid_storage(line)
            })?,
        };
        let accounts = match flags.remove("account") {
            None => Vec::new(),
            Some(toml::Value::Array(tables)) => {
                let starts = account_lines(text);
                tables
                    .into_iter()
                    .enumerate()
                    .map(|(i, table)| match table {
                        toml::Value::Table(keys) => Ok(AccountTable {
                            keys,
                            line: starts.get(i).copied().unwrap_or(1),
                        }),
                        _ => Err(format!(
                            "line {}: account: give each account as an [[account]] table",
                            line_of(text, "account")
                        )),
                    })
                    .collect::<Result<_, _>>()?
            }
            Some(_) => {
                return Err(format!(
                    "line {}: account: give each account as an [[account]] table",
                    line_of(text, "account")
                ))
            }
        };
        let lines = flags
            .keys()
            .map(|key| (key.clone(), line_of(text, key)))
            .collect();
        Ok(FileConfig {
            storage,
            flags,
            lines,
            accounts,
        })
    }
}

/// Why the command line could not be read.
#[derive(Debug)]
pub enum CommandLineError {
    /// Clap's own answer: a usage error, or `--help`/`--version` (it prints and exits).
    Clap(clap::Error),
    /// The config file could not be read, or holds a key or value no flag takes.
    Config(ConfigError),
}

/// Parses the command line with the config file's settings (ripgrep's way): each key of the file
/// becomes `--key=value` after the command line's own arguments, unless that flag was given on
/// the command line or in its environment variable. So every flag is declared once (in
/// [`crate::config::cli`]), the file takes any long flag of the command, and the precedence is flag,
/// environment, file, default. Keys of other commands are ignored; unknown keys are refused.
pub fn command_line(argv: Vec<OsString>, env: &Env) -> Result<(Cli, FileConfig), CommandLineError> {
    let matches = Cli::grammar()
        .try_get_matches_from(&argv)
        .map_err(CommandLineError::Clap)?;
    let cli = Cli::from_arg_matches(&matches).map_err(CommandLineError::Clap)?;
    let file = FileConfig::load(cli.config.as_deref()).map_err(CommandLineError::Config)?;
    if file.flags.is_empty() {
        return Ok((cli, file));
    }
    let cli = command_line_with(argv, env, &file)?;
    Ok((cli, file))
}

/// [`command_line`] with the file's settings given: `file`'s keys below the command line and
/// the environment (an account's command line, with its keys over the file's top level).
pub(super) fn command_line_with(
    argv: Vec<OsString>,
    env: &Env,
    file: &FileConfig,
) -> Result<Cli, CommandLineError> {
    let matches = Cli::grammar()
        .try_get_matches_from(&argv)
        .map_err(CommandLineError::Clap)?;
    let cli = Cli::from_arg_matches(&matches).map_err(CommandLineError::Clap)?;
    if file.flags.is_empty() {
        return Ok(cli);
    }
    let path = cli.config.clone().unwrap_or_default();
    let bad = |why: String| {
        CommandLineError::Config(ConfigError(format!("--config {}: {why}", path.display())))
    };
    let extra = file_arguments(file, &matches, env).map_err(bad)?;
    let argv: Vec<OsString> = argv.into_iter().chain(extra).collect();
    Cli::parse_args(argv).map_err(|e| bad(one_line(&e)))
}

/// A clap error as one line: its message and the values it suggests, without the pointer to
/// `--help` (a file's key is not a flag typed at a prompt).
pub(super) fn one_line(e: &clap::Error) -> String {
    e.render()
        .to_string()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
        .map(|l| l.trim_start_matches("error: "))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The file's keys as `--key=value` arguments, for the flags of the command in `matches` that
/// neither the command line nor the environment set.
fn file_arguments(
    file: &FileConfig,
    matches: &clap::ArgMatches,
    env: &Env,
) -> Result<Vec<OsString>, String> {
    let root = Cli::grammar();
    let (name, sub_matches) = matches.subcommand().expect("a subcommand is required");
    let command = root
        .find_subcommand(name)
        .expect("clap matched this subcommand");
    let mut extra = Vec::new();
    for (key, value) in &file.flags {
        let Some(id) = flag_of_key(&root, command, key, file)? else {
            continue;
        };
        let given = matches!(
            sub_matches.value_source(&id),
            Some(clap::parser::ValueSource::CommandLine | clap::parser::ValueSource::EnvVariable)
        );
        // The former name of AUDITLAKE_LOG_LEVEL still outranks the file.
        let deprecated_env = key == "log-level" && env.get(DEPRECATED_LOG_ENV).is_some();
        if given || deprecated_env {
            continue;
        }
        let values = match value {
            toml::Value::Array(items) => items.iter().collect(),
            one => vec![one],
        };
        for value in values {
            let text = match value {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(n) => n.to_string(),
                toml::Value::Float(x) => x.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                _ => {
                    return Err(format!(
                        "{key}: give a string, number, boolean or a list of them"
                    ))
                }
            };
            extra.push(format!("--{key}={text}").into());
        }
    }
    Ok(extra)
}

/// The id of the flag the file's `key` sets for `command` (or a global flag of `root`); `None`
/// for a flag of another command, which the file may hold for those.
fn flag_of_key(
    root: &clap::Command,
    command: &clap::Command,
    key: &str,
    file: &FileConfig,
) -> Result<Option<String>, String> {
    let known = |cmd: &clap::Command| {
        cmd.get_arguments()
            .find(|a| a.get_long() == Some(key))
            .map(|a| a.get_id().to_string())
    };
    match known(command).or_else(|| known(root)) {
        Some(_) if key == "check-config" => Err(
            "check-config belongs on the command line: in a file it would turn every run into a check".into(),
        ),
        Some(id) if key != "config" => Ok(Some(id)),
        Some(_) => Err("a config file cannot name another one".into()),
        None if root.get_subcommands().any(|c| known(c).is_some()) => Ok(None),
        None => Err(format!(
            "line {}: unknown key {key:?}: keys are the long flags of the commands (subdomain, dest, filter-action, ...)",
            file.lines.get(key).copied().unwrap_or(1)
        )),
    }
}

/// The log filter the user asked for, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLevel {
    /// A filter in tracing's syntax; `None` leaves the default to the caller.
    pub filter: Option<String>,
    /// The filter came from `AUDITLAKE_LOG`, the variable's former name: worth a warning.
    pub from_deprecated_env: bool,
}

/// Former name of `AUDITLAKE_LOG_LEVEL`, from before every flag's variable was named after it.
const DEPRECATED_LOG_ENV: &str = "AUDITLAKE_LOG";

/// The log filter: `--log-level` or `AUDITLAKE_LOG_LEVEL` (both in `flag`, parsed by clap, with the
/// file's `log-level` below them), else the deprecated `AUDITLAKE_LOG`.
pub fn log_level(flag: Option<&str>, env: &Env) -> LogLevel {
    if let Some(filter) = flag {
        return LogLevel {
            filter: Some(filter.to_string()),
            from_deprecated_env: false,
        };
    }
    if let Some(filter) = env.get(DEPRECATED_LOG_ENV) {
        return LogLevel {
            filter: Some(filter.to_string()),
            from_deprecated_env: true,
        };
    }
    LogLevel {
        filter: None,
        from_deprecated_env: false,
    }
}
