//! Which of a run's planned windows are pending, which committed ones the recheck
//! covers, and where the data starts (the pending windows before the first record are committed
//! empty without a request each).

use super::error::WindowError;
use super::summary::{record_done, record_failure, Done, Summary};
use super::Context;
use super::ExportConfig;
use crate::lake::change::Change;
use crate::lake::storage::{Created, Lake};
use crate::lake::view::open_record;
use crate::plan::window::{self, Window};
use crate::table::decode::decode_page;
use crate::table::route::RouteCounts;
use crate::table::schema::Schema;
use crate::units::time::Timestamp;
use crate::zendesk::{pagination, ApiError, PageRequest, Pagination};
use futures::StreamExt;
use std::collections::BTreeSet;
use std::pin::pin;
use std::sync::Arc;

/// Pages the search for the first record may read: more than one only when the second before the
/// first pending window (the query's margin) fills pages by itself; past this the search gives up
/// and every window is asked as usual.
pub(crate) const FIRST_RECORD_PAGES: usize = 3;

/// A window the run is to export.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pending {
    pub(crate) window: Window,
    /// Closed: it ended before the run's end (else it is the open window, still growing).
    pub(crate) closed: bool,
}

/// The summary's start and the windows to export: closed windows without a marker, then the
/// open window unless it is committed.
pub(crate) fn pending_windows(
    config: &ExportConfig,
    lake: &Lake,
    plan: &window::Plan,
    done: &BTreeSet<i64>,
) -> (Summary, Vec<Pending>) {
    let mut summary = Summary {
        run_id: config.run_id.clone(),
        subdomain: config.api.subdomain.clone(),
        dest: lake.display().to_string(),
        since: Timestamp::from_seconds(
            plan.closed
                .first()
                .or(plan.open.as_ref())
                .map_or(config.since, |w| w.start),
        )
        .to_string(),
        until: Timestamp::from_seconds(config.until).to_string(),
        window: config.grid.to_string(),
        windows_planned: plan.closed.len() as u64,
        ..Summary::default()
    };
    let mut pending: Vec<Pending> = Vec::new();
    for w in &plan.closed {
        if done.contains(&w.start) {
            summary.windows_skipped += 1;
        } else {
            pending.push(Pending {
                window: *w,
                closed: true,
            });
        }
    }
    match plan.open {
        // The run ends inside a committed window (an earlier --until, a longer --settle-lag, a
        // clock behind the last run's): that window is done and changes only by repair.
        Some(open) if done.contains(&open.start) => tracing::info!(
            window = %open.id(),
            "the run ends inside a committed window; it is left as committed"
        ),
        Some(open) => pending.push(Pending {
            window: open,
            closed: false,
        }),
        None => {}
    }
    (summary, pending)
}

/// The committed windows that `--recheck` covers: those ending within the recheck span plus one
/// window before the run's end, committed before this run (a window this run exported is fresh),
/// and not confirmed yet (ending after `confirmed_to`, see [`Confirmed`]). The extra window
/// matters on a schedule: a daily run commits yesterday's window, and the next day's run, whose
/// end is a day later, must still recheck it.
///
/// [`Confirmed`]: crate::lake::manifest::Confirmed
pub(crate) fn recheck_windows(
    config: &ExportConfig,
    closed: &[Window],
    done: &BTreeSet<i64>,
    confirmed_to: Option<i64>,
) -> Vec<Window> {
    let Some(floor) = recheck_floor(config, confirmed_to) else {
        return Vec::new();
    };
    closed
        .iter()
        .filter(|w| done.contains(&w.start) && w.end > floor)
        .copied()
        .collect()
}

/// The end after which committed windows are rechecked; `None` without `--recheck`.
fn recheck_floor(config: &ExportConfig, confirmed_to: Option<i64>) -> Option<i64> {
    let span = config.recheck.as_secs() as i64;
    if span == 0 {
        return None;
    }
    let cutoff = config
        .until
        .saturating_sub(span.saturating_add(config.grid.seconds()));
    Some(confirmed_to.map_or(cutoff, |c| c.max(cutoff)))
}

/// How far this run's recheck confirmed the lake, if further than `confirmed_to`: the end of
/// the longest run of planned windows, from the first one the recheck covers, that were each
/// counted at or after their horizon (`end + --recheck` no later than the run's end) and found
/// holding what the lake holds, or repaired to it (`confirmed`, by start). A window the
/// recheck did not count (not committed before this run, failed, or left with fewer records at
/// Zendesk) ends the run: it is counted again next time.
pub(crate) fn confirmed_through(
    config: &ExportConfig,
    closed: &[Window],
    confirmed_to: Option<i64>,
    confirmed: &BTreeSet<i64>,
) -> Option<i64> {
    let floor = recheck_floor(config, confirmed_to)?;
    let horizon = config.until.saturating_sub(config.recheck.as_secs() as i64);
    let through = closed
        .iter()
        .filter(|w| w.end > floor)
        .take_while(|w| w.end <= horizon && confirmed.contains(&w.start))
        .last()?
        .end;
    (through > confirmed_to.unwrap_or(i64::MIN)).then_some(through)
}

/// Where the data of a range starts, as one search found it.
#[derive(Debug)]
pub(crate) enum DataStart {
    /// The second of the earliest record in the range.
    At(i64),
    /// The range holds no record.
    Nowhere,
    /// The search gave up (the margin second filled its pages, or a page did not decode).
    Unknown,
    /// The API failed the search (after its retries).
    Failed(ApiError),
}

/// Starts where the data starts: one request finds the earliest record at or after the first
/// pending closed window (up to the last one's end), and the pending closed windows that end
/// before it are committed empty (files: none; a marker like any other) without a request each.
/// A backfill from years before an account's first record costs one request, not one per window.
/// Exact as a window's own query is: the same filters, the same one-second margin below (the
/// bounds may be inclusive or exclusive), and records come in `created_at` order across seconds
/// (the search asks the cursor form, whatever the run's pagination: see [`data_start`]).
/// Returns the windows still to export.
pub(crate) async fn commit_empty_start(
    context: &Arc<Context<'_>>,
    pending: Vec<Pending>,
    summary: &mut Summary,
) -> Vec<Pending> {
    // The window the open window's increments grew closes with its parts: it needs no search.
    let closed: Vec<Window> = pending
        .iter()
        .filter(|p| p.closed && open_record(&context.open_state, &p.window).is_none())
        .map(|p| p.window)
        .collect();
    // One window is one range: its own first page finds its first record as the search would,
    // so a search would only cost a request more (every scheduled run that closes one window).
    let (Some(first), Some(last), true) = (closed.first(), closed.last(), closed.len() > 1) else {
        return pending;
    };
    let start = match data_start(context, first.start, last.end).await {
        DataStart::At(second) => second,
        DataStart::Nowhere => i64::MAX,
        DataStart::Unknown => return pending,
        // Refused credentials or access end the run here, as its first window would.
        DataStart::Failed(e) if e.is_fatal_for_run() => {
            record_failure(summary, *first, &WindowError::Api(e));
            return Vec::new();
        }
        DataStart::Failed(error) => {
            tracing::warn!(%error, "could not find where the data starts; asking every window");
            return pending;
        }
    };
    let (empty, rest): (Vec<_>, Vec<_>) = pending
        .into_iter()
        // The window the open window's increments closes with its parts, whatever the search says.
        .partition(|p| {
            p.closed
                && p.window.end <= start
                && open_record(&context.open_state, &p.window).is_none()
        });
    if !empty.is_empty() {
        tracing::info!(
            windows = empty.len(),
            data_from = %if start == i64::MAX { "none in the range".to_string() } else { crate::units::time::format_rfc3339(start) },
            "committing the windows before the first record empty, without a request each"
        );
    }
    for Pending { window, .. } in empty {
        let committed = context
            .committer
            .commit(Change::append(window, Vec::new()))
            .await;
        context.progress.window_finished();
        match committed {
            Ok((record, created)) => record_done(
                summary,
                Done {
                    window,
                    refetched: false,
                    closed: true,
                    committed: created == Created::Created,
                    record,
                    counts: RouteCounts::default(),
                },
            ),
            Err(e) => {
                if record_failure(summary, window, &e.into()) {
                    // The destination or the lease failed: no further window is started.
                    return Vec::new();
                }
            }
        }
    }
    rest
}

/// The second of the earliest record created in `[from, to)`, from the first page (or first few
/// pages) of the range's query in `created_at` order.
///
/// Always the cursor form, even in a run with offset pagination: only its order is documented
/// (`sort=created_at`). The offset form may ignore `sort_order` and serve newest first, and its
/// first page would then put the data's start at the range's last records, committing every
/// window before them empty.
pub(crate) async fn data_start(context: &Context<'_>, from: i64, to: i64) -> DataStart {
    let request = PageRequest {
        filters: context.config.filters.clone(),
        created_at: Some((from - 1, to)),
        pagination: Pagination::Cursor,
    };
    let mut pages = pin!(pagination::pages(context.client.clone(), request));
    for _ in 0..FIRST_RECORD_PAGES {
        let Some(page) = pages.next().await else {
            // The query ended without a record in the range.
            return DataStart::Nowhere;
        };
        let page = match page {
            Ok(page) => page,
            Err(error) => return DataStart::Failed(error),
        };
        let mut earliest: Option<i64> = None;
        let decoded = decode_page(&page.body, Schema::get(), |row| {
            let second = row.created_at.div_euclid(1_000);
            if (from..to).contains(&second) {
                earliest = Some(earliest.map_or(second, |e| e.min(second)));
            }
        });
        if decoded.is_err() {
            // The window that holds the bad record reports it, with its context.
            return DataStart::Unknown;
        }
        if let Some(second) = earliest {
            return DataStart::At(second);
        }
    }
    DataStart::Unknown
}
