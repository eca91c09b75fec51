//! The settings of `erase`, `expire` and `export --retention`, validated: every bad input is a
//! one-line error (exit 2) before anything is read or written.

use std::time::Duration;

use super::cli::{ChangeArgs, EraseArgs, ExpireArgs};
use super::FileConfig;
use super::{err, lake_and_subdomain, lease_ttl, signer, store, ConfigError, Env};
use crate::plan::window::Grid;
use crate::run::{ChangeConfig, EraseConfig, ExpireConfig};
use crate::units::duration::parse_duration;
use crate::units::time::parse_instant;

/// Longest reason kept in the ledger and the chain: a ticket or request number, not a story.
const MAX_REASON: usize = 500;

fn change(args: &ChangeArgs, file: &FileConfig, env: &Env) -> Result<ChangeConfig, ConfigError> {
    let (dest, subdomain) = lake_and_subdomain(args.dest.as_ref(), args.subdomain.as_ref())?;
    let reason = args.reason.as_deref().map(str::trim).unwrap_or_default();
    if reason.is_empty() {
        return err("--reason is required: a ticket or request number, kept in the ledger and the digest chain");
    }
    if reason.len() > MAX_REASON || reason.contains('\n') {
        return err(format!(
            "--reason must be one line of at most {MAX_REASON} bytes (a ticket or request number)"
        ));
    }
    let tmp_dir = args.tmp_dir.clone().unwrap_or_else(std::env::temp_dir);
    if !tmp_dir.is_dir() {
        return err(format!(
            "--tmp-dir {} is not a directory",
            tmp_dir.display()
        ));
    }
    let store = store(&args.store, file, env)?;
    Ok(ChangeConfig {
        lease_ttl: lease_ttl(&args.lease_ttl, &dest, &store)?,
        signer: args.signing_key_file.as_deref().map(signer).transpose()?,
        dest,
        store,
        subdomain,
        reason: reason.to_string(),
        dry_run: args.dry_run,
        tmp_dir,
        run_id: crate::units::new_run_id(),
    })
}

/// Validates `erase`'s settings.
pub fn erase(args: &EraseArgs, file: &FileConfig, env: &Env) -> Result<EraseConfig, ConfigError> {
    let mut user_ids = Vec::new();
    for text in &args.user_ids {
        user_ids.push(user_id(text, "--user-id")?);
    }
    if let Some(path) = &args.user_ids_file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError(format!(
                "--user-ids-file: cannot read {}: {e}",
                path.display()
            ))
        })?;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let flag = format!("--user-ids-file {} line {}", path.display(), n + 1);
            user_ids.push(user_id(line, &flag)?);
        }
    }
    if user_ids.is_empty() {
        return err("give the users to erase: --user-id N (repeatable) or --user-ids-file FILE");
    }
    user_ids.sort_unstable();
    user_ids.dedup();
    Ok(EraseConfig {
        change: change(&args.change, file, env)?,
        user_ids,
    })
}

/// A Zendesk user id: a positive integer (system actors, with negative ids, are no person).
fn user_id(text: &str, flag: &str) -> Result<i64, ConfigError> {
    match text.trim().parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => err(format!(
            "{flag}: {text:?} is not a Zendesk user id (a positive integer)"
        )),
    }
}

/// Validates `expire`'s settings; `now` is the current time in UTC seconds.
pub fn expire(
    args: &ExpireArgs,
    file: &FileConfig,
    env: &Env,
    now: i64,
) -> Result<ExpireConfig, ConfigError> {
    let text = args
        .before
        .as_ref()
        .ok_or_else(|| ConfigError("--before is required (e.g. 2024-01-01)".into()))?;
    let before = parse_instant(text).map_err(|e| ConfigError(format!("--before: {e}")))?;
    if before > now {
        return err(format!(
            "--before {text} is in the future: only windows that have ended can expire"
        ));
    }
    Ok(ExpireConfig {
        change: change(&args.change, file, env)?,
        before,
    })
}

/// `export --retention`: at least one window of `grid` (a shorter one would expire each window
/// as soon as it closed), and not so short that it would expire the window the run leaves open
/// (the one holding `until`, at `now`: a backfill of old records with a recent retention).
pub fn retention(
    text: Option<&str>,
    grid: Grid,
    until: i64,
    now: i64,
) -> Result<Option<Duration>, ConfigError> {
    let Some(text) = text else {
        return Ok(None);
    };
    let seconds = parse_duration(text).map_err(|e| ConfigError(format!("--retention: {e}")))?;
    if seconds < grid.seconds().unsigned_abs() {
        return err(format!(
            "--retention {text} is shorter than one window ({grid}): it would expire the open window as it closes"
        ));
    }
    // Ten years of days keeps `now - retention` far inside the calendar.
    if seconds > 3_650 * 86_400 {
        return err(format!("--retention {text} is too long: at most 3650d"));
    }
    let floor = grid.floor(now - seconds as i64);
    if floor > grid.floor(until) {
        return err(format!(
            "--retention {text} would expire the window this run leaves open (it holds --until {}): the records it exports are older than the retention",
            crate::units::time::format_rfc3339(until)
        ));
    }
    Ok(Some(Duration::from_secs(seconds)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retention_shorter_than_a_window_is_refused() {
        let daily = Grid::DAILY;
        let now = 1_800_000_000;
        assert!(retention(Some("12h"), daily, now, now).is_err());
        assert_eq!(
            retention(Some("90d"), daily, now, now).unwrap(),
            Some(Duration::from_secs(90 * 86_400))
        );
        assert_eq!(retention(None, daily, now, now).unwrap(), None);
        // A backfill of records two years old with a retention of one.
        let e = retention(Some("365d"), daily, now - 730 * 86_400, now).unwrap_err();
        assert!(e.to_string().contains("would expire the window"), "{e}");
    }

    #[test]
    fn user_ids_are_positive_integers() {
        assert_eq!(user_id(" 42 ", "--user-id").unwrap(), 42);
        for bad in ["-1", "0", "ada", ""] {
            let e = user_id(bad, "--user-id").unwrap_err().to_string();
            assert!(e.starts_with("--user-id"), "{e}");
        }
    }
}
