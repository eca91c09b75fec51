//! Closed days compacted: one file per day partition with a sub-day grid.
//!
//! With `--window 1h` … `12h` every window commits files of its own, so a day would end with 24
//! (or 12, …) small files. Once a day is over and every one of its windows is committed, its
//! windows' files are joined into one file per day partition, sorted by `(created_at, id)`, with
//! statistics, from the lake's own files (no request to Zendesk), and committed as the next
//! generation of the day's first window under a marker that spans the whole day
//! ([`Change::compaction`]). The journal, order and convergence are a repair's: the new file,
//! then the marker, then the windows' files removed. From then on the day is one window for the
//! recheck, `verify` and `repair` (a late record in it re-exports the day); the markers of its
//! other windows stay, as the record that they were committed.
//!
//! A run compacts the days it exported windows of, the days its recheck looked at, the day
//! before its `until`, and up to [`BACKLOG_PER_RUN`] older days that the markers' listing shows
//! complete and never compacted (a run killed before compacting; a lake made before compaction).
//! A day without records gets a marker spanning it and no file.
//!
//! [`Change::compaction`]: crate::lake::Change::compaction

use std::collections::{BTreeMap, BTreeSet, HashSet};

use super::error::WindowError;
use super::summary::Summary;
use super::Context;
use crate::lake::change::Change;
use crate::lake::commit::COMPACTION_REASON;
use crate::lake::manifest::{named, WindowRecord};
use crate::plan::window::{Grid, Window};
use crate::table::encode::concat;
use crate::table::route::{RoutedPart, ROWS_PER_FILE};
use crate::zendesk::pagination::OFFSET_CAP;
use crate::zendesk::Pagination;

/// The most days a run compacts from the backlog: a lake made before compaction catches up over
/// a few runs instead of one long one.
const BACKLOG_PER_RUN: usize = 31;

/// The days (their starts) a run should compact, from the windows it exported and rechecked:
/// none unless the grid is finer than a day; only days that are over at `until`.
pub(crate) fn days_to_compact<'a>(
    grid: Grid,
    until: i64,
    windows: impl IntoIterator<Item = &'a Window>,
) -> BTreeSet<i64> {
    let day_seconds = Grid::DAILY.seconds();
    if grid.seconds() >= day_seconds {
        return BTreeSet::new();
    }
    let mut days: BTreeSet<i64> = windows
        .into_iter()
        .map(|w| Grid::DAILY.floor(w.start))
        .collect();
    days.insert(Grid::DAILY.floor(until) - day_seconds);
    days.retain(|&day| day + day_seconds <= until);
    days
}

/// Compacts each of `days` whose windows are all committed and name more than one file; stops at
/// a failure of the store or the lease (the day is left as it was, or converged by the next run).
pub(crate) async fn compact_days(
    context: &Context<'_>,
    days: &BTreeSet<i64>,
    summary: &mut Summary,
) {
    if days.is_empty() {
        return;
    }
    let generations = match context.committer.manifest().generations().await {
        Ok(generations) => generations,
        Err(e) => {
            tracing::warn!(error = %e, "could not list the markers; no day compacted");
            return;
        }
    };
    let mut days = days.clone();
    days.extend(backlog(context, &generations));
    for &day in &days {
        match compact_day(context, day, &generations).await {
            Ok(Some(record)) => {
                summary.days_compacted += 1;
                tracing::info!(day = %record.window, generation = record.generation, rows = record.rows, files = record.files.len(), "compacted a closed day's windows into one file per day partition");
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(day = %named(day).id(), error = %e, "could not compact the day; its windows stay as they are");
                if e.is_storage() || e.is_lease() {
                    summary.store_failed |= e.is_storage();
                    return;
                }
            }
        }
    }
}

/// Days the listing alone shows complete and never compacted (the first window's marker is of
/// generation 1, and a compaction writes the next), at most [`BACKLOG_PER_RUN`], in turn:
/// days a run missed (killed before compacting, its successor's `until` days later), and the
/// days of a lake made before compaction, caught up over a few runs.
fn backlog(context: &Context<'_>, generations: &BTreeMap<i64, u32>) -> Vec<i64> {
    let grid = context.config.grid.seconds();
    let until = context.config.until;
    let per_day = Grid::DAILY.seconds() / grid;
    let mut windows_of_day: BTreeMap<i64, i64> = BTreeMap::new();
    for &start in generations.keys() {
        *windows_of_day.entry(Grid::DAILY.floor(start)).or_default() += 1;
    }
    let mut days: Vec<i64> = windows_of_day
        .into_iter()
        .filter(|&(day, windows)| {
            windows == per_day
                && generations.get(&day) == Some(&1)
                && day + Grid::DAILY.seconds() <= until
        })
        .map(|(day, _)| day)
        .collect();
    // Days a run declines (a file missing, a marker that does not parse, past the row cap) stay
    // in the backlog: runs take it in turn, so that they never hold back the others.
    if !days.is_empty() {
        let turn = (until / grid).rem_euclid(days.len() as i64) as usize;
        days.rotate_left(turn);
    }
    days.truncate(BACKLOG_PER_RUN);
    days
}

/// The most records a day may hold to be compacted with `pagination`: offset pagination pages
/// through at most [`OFFSET_CAP`] records of one query, and a compacted day is one window for the
/// recheck and `repair`. Half the cap leaves room for the records that arrive late (the recheck
/// counts them, one query a day; a repair then fetches the day by its grid windows).
pub(crate) fn day_cap(pagination: Pagination) -> Option<u64> {
    match pagination {
        Pagination::Offset => Some(OFFSET_CAP / 2),
        Pagination::Cursor => None,
    }
}

/// Compacts one day, if it is ready and not compacted yet; its new marker.
async fn compact_day(
    context: &Context<'_>,
    day: i64,
    generations: &BTreeMap<i64, u32>,
) -> Result<Option<WindowRecord>, WindowError> {
    let grid = context.config.grid;
    let whole = Window {
        start: day,
        end: day + Grid::DAILY.seconds(),
    };
    let windows: Vec<Window> = (day..whole.end)
        .step_by(grid.seconds() as usize)
        .map(|start| Window {
            start,
            end: start + grid.seconds(),
        })
        .collect();
    let committer = &context.committer;
    if !windows.iter().all(|w| generations.contains_key(&w.start)) {
        return Ok(None);
    }
    // Compacted already: the first window's marker spans the day (one read).
    let first = committer
        .marker_to_replace(&windows[0], generations[&day])
        .await?;
    if first.span() == Some(whole) {
        return Ok(None);
    }
    let markers = committer
        .current_markers_listed(grid, &windows, generations)
        .await?;
    let readable = markers.len() == windows.len()
        && markers.iter().zip(&windows).all(|((w, _), grid)| w == grid);
    let rows: u64 = markers.iter().map(|(_, m)| m.rows).sum();
    // A day past a file's row cap stays in its windows' files: one file would have to be read
    // whole by a repair's check of what it holds. A day without records is compacted too (a
    // marker spanning it, no file), so that the listing tells it is done.
    if !readable || rows > ROWS_PER_FILE {
        return Ok(None);
    }
    // A day the pagination in use cannot page through as one query stays in its windows: the
    // recheck and `repair` re-export a compacted day whole.
    if let Some(cap) = day_cap(context.config.pagination).filter(|&cap| rows > cap) {
        tracing::debug!(day = %whole.id(), rows, cap, "not compacted: the day holds more records than one query of the pagination in use can page through");
        return Ok(None);
    }
    let journaled: HashSet<i64> = committer
        .manifest()
        .unfinished_repairs()
        .await?
        .into_iter()
        .collect();
    if windows.iter().any(|w| journaled.contains(&w.start)) {
        return Ok(None);
    }
    let Some(parts) = join(context, &whole, &markers).await? else {
        return Ok(None);
    };
    let reason = format!(
        "{COMPACTION_REASON} the {} windows of the day joined into one file per day partition",
        windows.len()
    );
    let (_, first) = &markers[0];
    let change = Change::compaction(whole, first, parts, &reason);
    Ok(Some(committer.commit(change).await?.0))
}

/// The day's records, joined from its windows' files (in window order, so sorted) into one file
/// per day partition; `None` when a file is missing or the files hold another number of rows
/// than the markers record (the day is then left as it is; `verify` reports why).
async fn join(
    context: &Context<'_>,
    whole: &Window,
    markers: &[(Window, WindowRecord)],
) -> Result<Option<Vec<RoutedPart>>, WindowError> {
    let dir = context.config.tmp_dir.clone();
    let mut inputs = Vec::new();
    for (_, record) in markers {
        let Some(held) = context.committer.download_parts(record, &dir).await? else {
            return Ok(None);
        };
        inputs.extend(held.into_iter().map(|(_, file)| file));
    }
    let expected: u64 = markers.iter().map(|(_, m)| m.rows).sum();
    if inputs.is_empty() {
        // A marker that records rows but names no file is for `verify` to report, not to erase.
        return Ok((expected == 0).then(Vec::new));
    }
    let window = *whole;
    let part = tokio::task::spawn_blocking(move || concat(&dir, &window, inputs))
        .await
        .expect("the compaction thread does not panic")?;
    if part.rows != expected {
        tracing::warn!(day = %whole.id(), rows = part.rows, expected, "the day's files hold another number of rows than its markers record; not compacted");
        return Ok(None);
    }
    let day = crate::units::time::day_of(whole.start);
    Ok(Some(vec![RoutedPart { day, seq: 0, part }]))
}
