//! The open window: the last window of a run, cut at `until`, grown by increments and closed by a
//! count.
//!
//! - **Deltas.** `open.json` records the instant up to which the window's parts hold every
//!   record (`covered_to`, the `until` of the run that wrote them). A run fetches only
//!   `[covered_to, until)` (the usual wider query, exact cut and dedupe) and adds those records as
//!   parts of their own, named after where the increment starts ([`Change::increment`]). Parts
//!   never overlap, and a part the record names is never rewritten.
//! - **The close.** Once a run's `until` passes the window's end, only the rest
//!   `[covered_to, end)` is fetched; the window is proven complete by Zendesk's count against the
//!   rows of its parts and the rest; the rest is added as an increment of its own (new records), and
//!   the parts are compacted into the window's final files (one per day partition, sorted, with
//!   statistics) from the parts themselves, not from the API: the close itself only rearranges
//!   (in a Delta table, `dataChange: false`). When the count differs (a record that became
//!   visible late inside the window, after the increment that covered its second), cannot be told,
//!   or a part is missing, the window is fetched whole instead, and replaces its parts only if it
//!   holds every record they hold.
//! - **Several open windows.** A window whose close failed keeps its record beside the next open
//!   window's (`open.json`'s `earlier`), and a later run closes it with its parts. A window
//!   whose record does not grow by increments (rebuilt from its parts after `open.json` was torn)
//!   is exported again from its start, and its parts go only once the new export holds their
//!   records.
//!
//! A committed window is never touched here (it changes only by repair): the plan leaves out an
//! open window that has a marker.
//!
//! [`Change::increment`]: crate::lake::change::Change::increment

use std::collections::BTreeMap;

use chrono::NaiveDate;

use super::error::WindowError;
use super::pipeline::{commit_as, fetch_piece, fetch_window, Fetched};
use super::summary::Done;
use super::Context;
use crate::lake::change::{Change, ChangeKind};
use crate::lake::layout;
use crate::lake::manifest::{FileEntry, WindowRecord};
use crate::lake::view::open_record;
use crate::plan::window::Window;
use crate::table::encode::concat;
use crate::table::route::{RouteCounts, RoutedPart, Staged};
use crate::zendesk::count::quick_count;

/// Exports what is new in the open window: the records of `[covered_to, until)` as an increment of
/// parts of their own (the whole of `[start, until)` when the window has no increment yet). A run
/// whose `until` has not moved past `covered_to` makes no request.
pub(crate) async fn export_open(
    context: &Context<'_>,
    window: Window,
) -> Result<Done, WindowError> {
    // Any record of the window: one that does not grow by increments (rebuilt from its parts, or
    // of a window exported whole) has its parts replaced by an export from its start.
    let existing = context.open_state.iter().find(|o| o.window == window.id());
    let mut state = open_record(&context.open_state, &window);
    // The whole grid cell: parts of an earlier run whose `until` was later may lie on its later
    // days (multi-day windows), beyond the cut at this run's `until`.
    let cell = Window {
        start: window.start,
        end: window.start + context.config.grid.seconds(),
    };
    let mut restarted = existing.filter(|_| state.is_none());
    if let Some(held) = state {
        // A close killed half way (its sweep removed some parts, its marker never came) leaves a
        // record naming parts that are gone: building on it would lose their records, so the
        // window starts over.
        if !context.committer.holds_all(&cell, held).await? {
            tracing::warn!(window = %window.id(), "a part the open window's record names is missing; exporting the window again from its start");
            restarted = Some(held);
            state = None;
        }
    }
    let from = state
        .and_then(WindowRecord::covered_to)
        .unwrap_or(window.start);
    if from >= window.end {
        let mut record = WindowRecord::new(&window, Vec::new());
        if let Some(held) = state {
            context.committer.settle_open(&cell, held).await?;
            record.covered_to.clone_from(&held.covered_to);
        }
        return Ok(open_done(window, record, RouteCounts::default()));
    }
    let increment = Window {
        start: from,
        end: window.end,
    };
    let Staged { parts, counts } = fetch_piece(context, increment, window).await?;
    let mut change = Change::increment(window, state, from, window.end, parts);
    if restarted.is_some() {
        // The new parts take names of their own (a Delta log's older versions still read the
        // old ones); the old go, in the same commit, only if the new hold their records.
        let present = context.committer.files_present(&cell).await?;
        let first = present
            .iter()
            .filter_map(|p| layout::parse_part_name(p.rsplit('/').next().unwrap_or(p)))
            .filter(|p| p.window_id == window.id())
            .map(|p| p.seq + 1)
            .max()
            .unwrap_or(0);
        change = change.numbered_from(first);
    }
    let before = state.map_or(0, |s| s.files.len());
    let (record, _) = context.committer.commit(change).await?;
    if cell.days() != window.days() {
        context.committer.settle_open(&cell, &record).await?;
    }
    tracing::info!(window = %window.id(), from = %increment, parts = record.files.len(), rows = record.rows, "open window grew by an increment");
    // The summary counts what this run wrote: the increment's files.
    let mut written = WindowRecord::new(&window, record.files[before..].to_vec());
    written.covered_to = record.covered_to;
    Ok(open_done(window, written, counts))
}

fn open_done(window: Window, record: WindowRecord, counts: RouteCounts) -> Done {
    Done {
        window,
        closed: false,
        committed: false,
        refetched: false,
        record,
        counts,
    }
}

/// Closes the window an earlier run left open (`state` is its record): fetches only the rest,
/// proves the window complete by count, compacts its parts and commits it (see the module
/// documentation); fetches it whole when the proof fails.
pub(crate) async fn close_open(
    context: &Context<'_>,
    window: Window,
    state: &WindowRecord,
) -> Result<Done, WindowError> {
    let from = state
        .covered_to()
        .unwrap_or(window.start)
        .clamp(window.start, window.end);
    let Staged {
        parts: rest,
        counts,
    } = if from < window.end {
        let rest = Window {
            start: from,
            end: window.end,
        };
        fetch_piece(context, rest, window).await?
    } else {
        Staged::default()
    };
    let held = state.rows + counts.kept;
    let zendesk = quick_count(&context.client, &context.config.filters, &window).await?;
    let proven = match zendesk {
        Some(zendesk) if zendesk == held => true,
        Some(zendesk) => {
            tracing::warn!(window = %window.id(), held, zendesk, "the open window's parts hold another number of records than Zendesk counts at its close (a record that became visible late); fetching it again whole");
            false
        }
        None => {
            tracing::info!(window = %window.id(), "no quick count of the window at its close; fetching it again whole");
            false
        }
    };
    let mut compacted = None;
    if proven {
        // The rest is new records: an increment of its own (a change of data), so that the close
        // itself only rearranges what the table holds (no change of data: a change feed must
        // not read the parts' records twice).
        let state = match rest.is_empty() {
            true => state.clone(),
            false => {
                let change = Change::increment(window, Some(state), from, window.end, rest);
                let (added, _) = context.committer.commit(change).await?;
                tracing::info!(window = %window.id(), rows = counts.kept, "the rest of the closing window added as an increment");
                added
            }
        };
        compacted = compact(context, window, &state).await?;
    }
    match compacted {
        Some(parts) => {
            let staged = Staged { parts, counts };
            commit_as(
                context,
                window,
                staged,
                Fetched::Once,
                ChangeKind::Rearrange,
            )
            .await
        }
        None => {
            // The parts' records stay unless the window fetched whole holds them all (an API
            // that served a record may fail to serve it later): the commit checks it.
            let staged = fetch_window(context, window).await?;
            commit_as(
                context,
                window,
                staged,
                Fetched::AgainWhole,
                ChangeKind::Repair,
            )
            .await
        }
    }
}

/// The window's final files, one per day: its parts in the lake, in the order they were added,
/// concatenated on a blocking thread. `None` when a part is missing or the files hold another
/// number of rows than recorded: the window is then fetched whole.
async fn compact(
    context: &Context<'_>,
    window: Window,
    state: &WindowRecord,
) -> Result<Option<Vec<RoutedPart>>, WindowError> {
    let tmp_dir = context.config.tmp_dir.clone();
    let Some(held) = context.committer.download_parts(state, &tmp_dir).await? else {
        return Ok(None);
    };
    let expected = state.rows;
    let mut days: BTreeMap<NaiveDate, Vec<(i64, u32, std::fs::File)>> = BTreeMap::new();
    for (entry, file) in held {
        let Some((day, from, seq)) = increment_place(&entry) else {
            tracing::warn!(path = %entry.path, "an open window's part has a name that is not an increment's; fetching the window whole");
            return Ok(None);
        };
        days.entry(day).or_default().push((from, seq, file));
    }
    let joined = tokio::task::spawn_blocking(move || -> Result<Vec<RoutedPart>, WindowError> {
        let mut parts = Vec::with_capacity(days.len());
        for (day, mut files) in days {
            files.sort_by_key(|(from, seq, _)| (*from, *seq));
            let inputs = files.into_iter().map(|(_, _, file)| file).collect();
            let part = concat(&tmp_dir, &window, inputs)?;
            parts.push(RoutedPart { day, seq: 0, part });
        }
        Ok(parts)
    })
    .await
    .expect("the compaction thread does not panic")?;
    let rows: u64 = joined.iter().map(|p| p.part.rows).sum();
    if rows != expected {
        tracing::warn!(window = %window.id(), rows, expected, "the open window's parts hold another number of rows than recorded; fetching it whole");
        return Ok(None);
    }
    tracing::info!(window = %window.id(), parts = state.files.len(), files = joined.len(), rows, "compacted the open window's parts into its final files");
    Ok(Some(joined))
}

/// The day, increment start and sequence number of an open window's part.
fn increment_place(entry: &FileEntry) -> Option<(NaiveDate, i64, u32)> {
    let (folder, name) = entry.path.rsplit_once('/')?;
    let part = layout::parse_part_name(name)?;
    Some((
        layout::parse_partition_day(folder)?,
        part.increment_from?,
        part.seq,
    ))
}
