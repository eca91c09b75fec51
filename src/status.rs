//! What the manifest says about a lake: done windows, gaps between them, the open window, rows,
//! how fresh it is, the last run and the lease. Reading only: `status` never writes.

use crate::lake::chain;
use crate::lake::delta::DeltaLog;
use crate::lake::manifest::TableFormat;
use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::lake::lease::{self, LeaseError};
use crate::lake::ledger::{Decision, Ledger, LedgerError};
use crate::lake::manifest::{Dataset, LastRun, Manifest, ManifestError, WindowRecord};
use crate::lake::storage::Lake;
use crate::lake::view::{Current, TableView};
use crate::plan::window::Grid;
use crate::units::time::Timestamp;

/// Why there is no status to show.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("no lake for subdomain {subdomain:?} at {dest}: nothing was ever exported there (check --dest and --subdomain)")]
    NoLake { dest: String, subdomain: String },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Lease(#[from] LeaseError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// The erasures the ledger records, as `status` shows them (ids and reasons, never names).
#[derive(Debug, Clone, Serialize)]
pub struct Erasures {
    pub count: u64,
    /// When the last one was decided, why, and how many users it erased.
    pub last_at: String,
    pub last_reason: String,
    pub last_users: u64,
    /// Erasures a crash interrupted: the next run (or erase) finishes them.
    pub pending: u64,
}

/// Who holds the lease now.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LeaseHolder {
    pub holder: String,
    pub since: String,
    pub expires: String,
}

/// A run of consecutive windows missing between done ones.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Gap {
    pub from: Timestamp,
    pub to: Timestamp,
    pub windows: u64,
}

/// The status of one subdomain in a lake.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub subdomain: String,
    pub dest: String,
    pub dataset: Option<Dataset>,
    pub done_windows: u64,
    /// Start of the first done window and end of the last one.
    pub done_from: Option<Timestamp>,
    pub done_to: Option<Timestamp>,
    /// How fresh the lake is: the instant up to which it holds every record (see
    /// [`complete_to`]): the open window's covered-to where there is one, else `done_to`.
    pub fresh_to: Option<Timestamp>,
    pub rows: u64,
    pub files: u64,
    pub bytes: u64,
    pub gaps: Vec<Gap>,
    pub open_window: Option<WindowRecord>,
    /// Earlier open windows whose close has not committed yet (a close that failed): their
    /// parts are the table's until a later run closes them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub closing_windows: Vec<WindowRecord>,
    /// Seconds from `fresh_to` to now: how far behind the lake is. `None` before anything is
    /// committed.
    pub age_seconds: Option<i64>,
    /// The last export's record.
    pub last_run: Option<LastRun>,
    /// The run holding the lease now, if one does.
    pub lease: Option<LeaseHolder>,
    /// The Delta table's latest version, for a lake in table format `delta`.
    pub delta_version: Option<u64>,
    /// The digest chain's last link (its seq, window and time), if the chain has one.
    pub chain_head: Option<ChainHead>,
    /// What the erasure ledger records.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub erasures: Option<Erasures>,
    /// The retention floor: closed windows ending at or before it expired (tombstones).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_floor: Option<String>,
    /// Expired windows (tombstones) among the done ones.
    pub expired_windows: u64,
}

/// The last link of the digest chain, as `status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ChainHead {
    pub seq: u64,
    pub window: String,
    pub at: String,
    /// The SHA-256 of the last link's bytes: written down elsewhere (a ticket, a log), it
    /// anchors the chain, so that truncating or rewriting it shows.
    pub sha256: String,
    /// Whether the last link carries a signature.
    pub signed: bool,
}

impl Status {
    /// Whether the lake is complete only to longer than `max_age` seconds ago (or nothing is
    /// committed): what a monitor pages on.
    pub fn is_stale(&self, max_age: i64) -> bool {
        self.age_seconds.is_none_or(|age| age > max_age)
    }
}

/// The instant up to which the lake holds every record. It starts where the lake starts (the
/// earlier of `since`, the first window the last run planned, and the first committed window: a
/// later `--since` does not hide a gap after older data), goes on through every
/// committed window that follows without a gap (`starts`, on a grid of `step` seconds), then
/// through each open window that starts by then, to its covered-to (the `until` of the run that
/// grew it). So with the default `1d` grid and hourly runs it is minutes ago, not last midnight;
/// and it never passes a window that is not committed (a failed window, a gap): a monitor is never
/// told the lake is fresher than it is. `None` when nothing is committed (or nothing tells where
/// the lake starts).
pub fn complete_to(
    since: Option<i64>,
    starts: &[i64],
    step: i64,
    open: &[WindowRecord],
) -> Option<i64> {
    let first = starts.first().copied();
    let begin = match (since, first) {
        (Some(since), Some(first)) => since.min(first),
        (since, first) => since.or(first)?,
    };
    let mut fresh = begin;
    for &start in starts {
        if start + step <= fresh {
            continue;
        }
        if start > fresh {
            break;
        }
        fresh = start + step;
    }
    let mut windows: Vec<(i64, i64)> = open
        .iter()
        .filter_map(|w| Some((w.span()?.start, w.covered_to()?)))
        .collect();
    windows.sort_unstable();
    for (start, covered_to) in windows {
        if start <= fresh {
            fresh = fresh.max(covered_to);
        }
    }
    // Nothing committed at all: no instant to be fresh to.
    (fresh > begin || !starts.is_empty()).then_some(fresh)
}

/// Where the lake starts, as the last run planned it (its summary's `since`).
fn planned_since(last_run: Option<&LastRun>) -> Option<i64> {
    let since = last_run?.summary.get("since")?.as_str()?;
    crate::units::time::parse_instant(since).ok()
}

/// How fresh the lake of `subdomain` is, for a run's metrics: [`complete_to`] of the table as
/// [`status`] sees it (the one view), so that `status --max-age` and the metric never disagree.
pub async fn freshness(
    lake: &Lake,
    subdomain: &str,
    grid: Grid,
) -> Result<Option<i64>, ManifestError> {
    let manifest = Manifest::new(lake.clone(), subdomain);
    let (generations, view) = table_now(&manifest, lake, subdomain, grid).await?;
    let starts: Vec<i64> = generations.into_keys().collect();
    let since = planned_since(manifest.last_run().await?.as_ref());
    Ok(complete_to(since, &starts, grid.seconds(), &view.open))
}

/// The table as the run sees it: every committed window (from one listing: those a compacted
/// day's marker covers too), and the one view of what stands (a marker that does not parse counts
/// no rows; `verify` reports it) and of the open windows. Which files are the table's is asked of
/// the listing: what it tells of a torn marker only moves which rows are counted.
async fn table_now(
    manifest: &Manifest,
    lake: &Lake,
    subdomain: &str,
    grid: Grid,
) -> Result<(BTreeMap<i64, u32>, TableView), ManifestError> {
    let generations = manifest.generations().await?;
    let current = Current::Listed { lake, subdomain };
    let view = TableView::read(manifest, grid, &generations, None, current).await?;
    Ok((generations, view))
}

/// What the ledger says of erasures, for `status`: none when there was none.
fn erasures(ledger: &Ledger) -> Option<Erasures> {
    let erasures: Vec<_> = ledger.erasures().collect();
    erasures.last().map(|(last, _)| Erasures {
        count: erasures.len() as u64,
        last_at: last.at.to_string(),
        last_reason: last.reason.clone(),
        last_users: match &last.decision {
            Decision::Erase { user_ids } => user_ids.len() as u64,
            Decision::Expire { .. } => 0,
        },
        pending: ledger
            .pending()
            .filter(|e| matches!(e.decision, Decision::Erase { .. }))
            .count() as u64,
    })
}

/// Reads the status of `subdomain` in `lake` at `now` (UTC seconds); a lake without a dataset for
/// the subdomain is [`StatusError::NoLake`].
pub async fn status(lake: &Lake, subdomain: &str, now: i64) -> Result<Status, StatusError> {
    let manifest = Manifest::new(lake.clone(), subdomain);
    let Some(dataset) = manifest.dataset().await? else {
        return Err(StatusError::NoLake {
            dest: lake.display().to_string(),
            subdomain: subdomain.to_string(),
        });
    };
    let delta_version = match dataset.table_format {
        TableFormat::Delta => DeltaLog::latest_version(lake)
            .await
            .map_err(ManifestError::from)?,
        TableFormat::Parquet => None,
    };
    let dataset = Some(dataset);
    let chain_head = chain_head(lake, subdomain).await?;
    let grid = dataset
        .as_ref()
        .and_then(|d| Grid::parse(&d.window).ok())
        .unwrap_or(Grid::DAILY);
    let (generations, view) = table_now(&manifest, lake, subdomain, grid).await?;
    let markers = &view.standing;
    let mut open = view.open.clone();
    open.sort_by_key(|o| std::cmp::Reverse(o.start));
    let mut open = open.into_iter();
    let open_window = open.next();
    let closing_windows: Vec<WindowRecord> = open.collect();
    // Every committed window, those a compacted day's marker covers too (one listing).
    let starts: Vec<i64> = generations.into_keys().collect();
    let closed_to = starts.last().map(|&s| s + grid.seconds());
    let last_run = manifest.last_run().await?;
    let since = planned_since(last_run.as_ref());
    let fresh_to = complete_to(since, &starts, grid.seconds(), &view.open);
    let lease = lease::latest(lake, subdomain)
        .await?
        .filter(|l| !l.holder.is_empty() && l.expires_at.seconds() > now)
        .map(|l| LeaseHolder {
            holder: l.holder,
            since: l.acquired_at.to_string(),
            expires: l.expires_at.to_string(),
        });
    let ledger = Ledger::read(lake, subdomain).await?;
    Ok(Status {
        erasures: erasures(&ledger),
        retention_floor: ledger
            .floor()
            .map(|t| Timestamp::from_seconds(t).to_string()),
        expired_windows: markers.values().filter(|m| m.expired).count() as u64,
        subdomain: subdomain.to_string(),
        dest: lake.display().to_string(),
        dataset,
        done_windows: starts.len() as u64,
        done_from: starts.first().map(|&s| Timestamp::from_seconds(s)),
        done_to: closed_to.map(Timestamp::from_seconds),
        fresh_to: fresh_to.map(Timestamp::from_seconds),
        age_seconds: fresh_to.map(|end| now - end),
        last_run,
        lease,
        delta_version,
        chain_head,
        rows: markers.values().map(|m| m.rows).sum(),
        files: markers.values().map(|m| m.files.len() as u64).sum(),
        bytes: markers.values().map(|m| m.bytes).sum(),
        gaps: gaps(&starts, grid),
        open_window,
        closing_windows,
    })
}

/// Missing windows between the first and last done one.
pub fn gaps(starts: &[i64], grid: Grid) -> Vec<Gap> {
    starts
        .windows(2)
        .filter(|pair| pair[1] - pair[0] > grid.seconds())
        .map(|pair| Gap {
            from: Timestamp::from_seconds(pair[0] + grid.seconds()),
            to: Timestamp::from_seconds(pair[1]),
            windows: ((pair[1] - pair[0]) / grid.seconds() - 1) as u64,
        })
        .collect()
}

/// The digest chain's last link: one listing, and the last link.
async fn chain_head(lake: &Lake, subdomain: &str) -> Result<Option<ChainHead>, StatusError> {
    let links = chain::links(lake, subdomain)
        .await
        .map_err(ManifestError::from)?;
    let Some((seq, path)) = links.last() else {
        return Ok(None);
    };
    let bytes = lake.read(path).await.map_err(ManifestError::from)?;
    let digest = bytes
        .as_ref()
        .and_then(|b| serde_json::from_slice::<chain::Digest>(b).ok());
    Ok(Some(ChainHead {
        seq: *seq,
        window: digest
            .as_ref()
            .map_or_else(|| "?".into(), |d| d.window.clone()),
        signed: digest.as_ref().is_some_and(|d| d.signature.is_some()),
        at: digest.map_or_else(|| "unreadable".into(), |d| d.at.to_string()),
        sha256: bytes.map_or_else(String::new, |b| chain::sha256_hex(&b)),
    }))
}

impl Status {
    /// The erasures, in one line: how many, the last, and what a Delta table's history lost.
    fn erasures_line(&self, erasures: &Erasures) -> String {
        let mut line = format!(
            "{}, the last at {} ({} user(s), reason {:?})",
            erasures.count, erasures.last_at, erasures.last_users, erasures.last_reason
        );
        if erasures.pending > 0 {
            line.push_str(&format!(
                "; {} interrupted, finished by the next run",
                erasures.pending
            ));
        }
        if self.delta_version.is_some() {
            line.push_str("; Delta versions from before an erasure may no longer read in full (their files held the erased data)");
        }
        line
    }

    /// The digest chain's last link, or that there is none yet.
    fn chain(&self) -> String {
        match &self.chain_head {
            Some(head) => format!(
                "{} links, the last for window {} at {} ({}), sha256 {}",
                head.seq,
                head.window,
                head.at,
                if head.signed { "signed" } else { "unsigned" },
                head.sha256
            ),
            None => "none yet (starts with the next commit)".into(),
        }
    }

    /// The table's format, and its version for a Delta table.
    fn table(&self) -> String {
        let format = self.dataset.as_ref().map(|d| d.table_format);
        match (format, self.delta_version) {
            (Some(TableFormat::Delta), Some(version)) => {
                format!("delta, version {version} (audit_logs/_delta_log/)")
            }
            (Some(TableFormat::Delta), None) => "delta, no commit yet".into(),
            _ => "parquet (Hive-partitioned files)".into(),
        }
    }
}

impl Status {
    /// The status in one line, for a listing of many accounts: how fresh, how much, the last run.
    pub fn line(&self) -> String {
        let fresh = match (self.fresh_to, self.age_seconds) {
            (Some(to), Some(age)) => format!(
                "fresh to {to} ({} ago)",
                crate::units::duration::format_duration(age.max(0) as u64)
            ),
            _ => "nothing committed yet".to_string(),
        };
        let gaps = match self.gaps.len() {
            0 => String::new(),
            n => format!(", {n} gap(s)"),
        };
        let last = match &self.last_run {
            Some(run) => format!("last run {}, exit {}", run.outcome, run.exit_code),
            None => "no run recorded".to_string(),
        };
        format!(
            "{}: {fresh}, {} windows done, {} rows{gaps}; {last}",
            self.subdomain, self.done_windows, self.rows
        )
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "lake:        {}", self.dest)?;
        writeln!(f, "subdomain:   {}", self.subdomain)?;
        let Some(dataset) = &self.dataset else {
            return writeln!(f, "no export yet for this subdomain");
        };
        let filters = if dataset.filters.is_empty() {
            "none".to_string()
        } else {
            serde_json::to_string(&dataset.filters).unwrap_or_default()
        };
        writeln!(
            f,
            "window grid: {} (schema v{}, filters: {filters})",
            dataset.window, dataset.schema_version
        )?;
        writeln!(f, "table:       {}", self.table())?;
        writeln!(f, "chain:       {}", self.chain())?;
        self.fmt_windows(f)?;
        self.fmt_policy(f)?;
        self.fmt_runs(f)
    }
}

impl Status {
    /// The committed windows, the gaps, the open window and the windows still closing.
    fn fmt_windows(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.done_from, &self.done_to) {
            (Some(from), Some(to)) => writeln!(
                f,
                "done:        {} windows, {from} .. {to}, {} rows in {} files ({} bytes)",
                self.done_windows, self.rows, self.files, self.bytes
            )?,
            _ => writeln!(f, "done:        no closed window yet")?,
        }
        if self.gaps.is_empty() {
            writeln!(f, "gaps:        none")?;
        } else {
            for gap in &self.gaps {
                writeln!(
                    f,
                    "gap:         {} .. {} ({} windows missing)",
                    gap.from, gap.to, gap.windows
                )?;
            }
        }
        match &self.open_window {
            Some(open) => writeln!(
                f,
                "open window: {} .. {}, {} rows in {} parts, complete to {} (grows by an increment every run; compacted and marked done once closed)",
                open.start,
                open.end,
                open.rows,
                open.files.len(),
                open.covered_to.unwrap_or(open.completed_at),
            )?,
            None => writeln!(f, "open window: none")?,
        }
        for closing in &self.closing_windows {
            writeln!(
                f,
                "closing:     {} .. {}, {} rows in {} parts (its close did not commit; the next run closes it)",
                closing.start,
                closing.end,
                closing.rows,
                closing.files.len(),
            )?;
        }
        Ok(())
    }

    /// The erasures and the retention floor.
    fn fmt_policy(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(erasures) = &self.erasures {
            writeln!(f, "erasures:    {}", self.erasures_line(erasures))?;
        }
        if let Some(floor) = &self.retention_floor {
            writeln!(
                f,
                "retention:   floor {floor}: closed windows ending by then expired ({} tombstones)",
                self.expired_windows
            )?;
        }
        Ok(())
    }

    /// How fresh the lake is, the last run, and the lease.
    fn fmt_runs(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.age_seconds, self.fresh_to) {
            (Some(age), Some(fresh_to)) => writeln!(
                f,
                "fresh to:    {fresh_to} ({} ago): the lake holds every record before it",
                crate::units::duration::format_duration(age.max(0) as u64)
            )?,
            _ => writeln!(f, "fresh to:    nothing committed yet")?,
        }
        if let Some(done_to) = self.done_to {
            writeln!(
                f,
                "closed to:   {done_to} (the end of the last closed window)"
            )?;
        }
        match &self.last_run {
            Some(run) => writeln!(
                f,
                "last run:    {} .. {}: {} (exit {}), run {}; last success: {}",
                run.started_at,
                run.finished_at,
                run.outcome,
                run.exit_code,
                run.run_id,
                run.last_success_at
                    .map_or_else(|| "never".to_string(), |at| at.to_string())
            )?,
            None => writeln!(f, "last run:    none recorded")?,
        }
        match &self.lease {
            Some(l) => writeln!(
                f,
                "lease:       held by {} since {}, until {}",
                l.holder, l.since, l.expires
            ),
            None => writeln!(f, "lease:       free"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An open window's record covering `[start, covered_to)` of `[start, end)`.
    fn open_record(start: i64, end: i64, covered_to: Option<i64>) -> WindowRecord {
        let window = crate::plan::window::Window { start, end };
        let mut record = WindowRecord::new(&window, Vec::new());
        record.covered_to = covered_to.map(Timestamp::from_seconds);
        record
    }

    #[test]
    fn the_lake_is_complete_to_the_open_window_that_follows_without_a_gap() {
        let day = 86_400;
        let since = Some(0);
        // Days 0 and 1 closed, day 2 open to 3 h: complete to its covered-to.
        let open = [open_record(2 * day, 3 * day, Some(2 * day + 3 * 3600))];
        assert_eq!(
            complete_to(since, &[0, day], day, &open),
            Some(2 * day + 3 * 3600)
        );
        // Day 1 failed (a gap): complete only to day 0's end, whatever follows.
        assert_eq!(complete_to(since, &[0], day, &open), Some(day));
        assert_eq!(complete_to(since, &[0, 2 * day], day, &[]), Some(day));
        // The first window failed: complete to the start, nothing past it.
        assert_eq!(complete_to(since, &[day], day, &open), Some(0));
        // Nothing closed yet, the run started in the open window: its covered-to.
        let first = [open_record(0, day, Some(3600))];
        assert_eq!(complete_to(since, &[], day, &first), Some(3600));
        // ... but not when the run started earlier (a window before it failed).
        let later = [open_record(day, 2 * day, Some(day + 3600))];
        assert_eq!(complete_to(since, &[], day, &later), None);
        // A close that failed, then the open window: both count, in order.
        let both = [
            open_record(2 * day, 3 * day, Some(3 * day)),
            open_record(day, 2 * day, Some(2 * day)),
        ];
        assert_eq!(complete_to(since, &[0], day, &both), Some(3 * day));
        // An open window without covered-to adds nothing.
        let unknown = [open_record(day, 2 * day, None)];
        assert_eq!(complete_to(since, &[0], day, &unknown), Some(day));
        // A later --since than the data: the lake starts at its first window, and a gap after
        // the older data stops freshness there.
        assert_eq!(complete_to(Some(day), &[0, day], day, &[]), Some(2 * day));
        assert_eq!(
            complete_to(Some(3 * day), &[0, 3 * day], day, &[]),
            Some(day)
        );
        // Nothing committed at all: none (stale), even when a run planned a start.
        assert_eq!(complete_to(since, &[], day, &[]), None);
        // Where the lake starts is not known: from its first committed window; else nothing.
        assert_eq!(complete_to(None, &[day, 2 * day], day, &[]), Some(3 * day));
        assert_eq!(complete_to(None, &[], day, &first), None);
    }

    #[test]
    fn gaps_group_consecutive_missing_windows() {
        let grid = Grid::parse("1h").unwrap();
        let h = 3600;
        assert!(gaps(&[0, h, 2 * h], grid).is_empty());
        assert_eq!(
            gaps(&[0, 4 * h, 5 * h, 7 * h], grid),
            [
                Gap {
                    from: Timestamp::from_seconds(h),
                    to: Timestamp::from_seconds(4 * h),
                    windows: 3
                },
                Gap {
                    from: Timestamp::from_seconds(6 * h),
                    to: Timestamp::from_seconds(7 * h),
                    windows: 1
                }
            ]
        );
    }
}
