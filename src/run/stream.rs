//! One range, one cursor stream: its pages fetched once, its records routed to their windows,
//! each window committed as soon as the stream has passed it (a piece, once its window's last
//! piece is in), and a window that stopped short checked against Zendesk's count first.

use super::error::WindowError;
use super::pipeline::{
    commit_closed, fetch_pages, fetch_window, Fetched, Handoff, PageWatch, MAX_WINDOW_RESTARTS,
    PIPELINE_DEPTH,
};
use super::ranges::{Deposit, Range, Slot};
use super::report::{report_failed_slot, Queue, Results, WorkerReport};
use super::routing::{RangeRouting, RoutedSlot};
use super::summary::Done;
use super::Context;
use crate::lake::commit::ids_in_lake;
use crate::lake::manifest::WindowRecord;
use crate::plan::window::Window;
use crate::table::decode::parse_timestamp_ms;
use crate::table::route::{RouteCounts, Staged, WindowRouter};
use crate::zendesk::count::quick_count;
use crate::zendesk::{ApiError, Page, PageRequest};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// How a range's stream ended.
pub(crate) enum StreamEnd {
    /// Every slot it owned was handed on.
    Done,
    /// It stopped before slot `.0`, which must be fetched again from its start (a refused
    /// cursor).
    Restart(usize, ApiError),
    /// It failed in slot `.0`.
    Failed(usize, WindowError),
}

/// Exports a range: one stream over its slots, each handed on as soon as the stream passes its
/// end; a refused cursor restarts the stream at the first slot not handed on.
pub(crate) async fn export_range(
    context: &Context<'_>,
    queue: &Queue,
    range: Arc<Range>,
    results: &Results,
) {
    let mut from = 0;
    let mut restarts = 0;
    loop {
        let failure = match stream_range(context, queue, &range, from, results).await {
            StreamEnd::Done => return,
            StreamEnd::Restart(i, error) if restarts < MAX_WINDOW_RESTARTS || i > from => {
                // The budget of restarts is per slot: one that made progress starts afresh.
                restarts = if i > from { 1 } else { restarts + 1 };
                tracing::warn!(window = %range.slot(i).window.id(), %error, restarts, "cursor refused; restarting the range at this window");
                from = i;
                continue;
            }
            StreamEnd::Restart(i, error) => (i, WindowError::Api(error)),
            StreamEnd::Failed(i, error) => (i, error),
        };
        let (i, error) = failure;
        let mut rest = range.abandon(i);
        if matches!(error, WindowError::Decode(_)) && rest.len() > 1 {
            // A record that does not decode is somewhere in the rest of the range (decoding
            // stops at it): both halves are fetched again as ranges of their own, so the window
            // that holds it is found in a few streams and fails alone.
            let tail = rest.split_off(rest.len() / 2);
            queue.push_front(tail);
            queue.push_front(rest);
            return;
        }
        let mut rest = rest.into_iter();
        let failed = rest
            .next()
            .expect("the slot the stream failed in is the range's");
        let cause = error.to_string();
        report_failed_slot(queue, failed, error, results);
        fail_rest(queue, rest, &cause, results);
        return;
    }
}

/// Fails the slots of a range after one that failed: the next run fetches them again.
pub(crate) fn fail_rest(
    queue: &Queue,
    rest: impl IntoIterator<Item = Slot>,
    cause: &str,
    results: &Results,
) {
    for slot in rest {
        let cause = cause.to_string();
        report_failed_slot(queue, slot, WindowError::RangeFailed { cause }, results);
    }
}

/// Streams the range's slots from slot `from` on: fetches the pages of one query over them,
/// routes the records on a blocking thread, and commits each window the stream has passed (or,
/// for a piece, once its window's last piece is in).
pub(crate) async fn stream_range(
    context: &Context<'_>,
    queue: &Queue,
    range: &Arc<Range>,
    from: usize,
    results: &Results,
) -> StreamEnd {
    let owned = range.owned_from(from);
    let (Some(first), Some(last)) = (owned.first().copied(), owned.last().copied()) else {
        return StreamEnd::Done;
    };
    range.stream_starts(from);
    let stop = Arc::new(AtomicBool::new(false));
    let (page_tx, page_rx) = mpsc::channel::<Handoff>(PIPELINE_DEPTH);
    let (routed_tx, routed_rx) = mpsc::channel::<RoutedSlot>(PIPELINE_DEPTH);
    let mut routing = RangeRouting {
        range: range.clone(),
        from,
        at: from,
        router: WindowRouter::piece(first.piece, first.window, context.config.tmp_dir.clone()),
        done: false,
        tmp_dir: context.config.tmp_dir.clone(),
        stop: stop.clone(),
        out: routed_tx,
        misordered: Vec::new(),
    };
    let encoder = tokio::task::spawn_blocking(move || {
        let routed = routing.run(page_rx);
        (routed, routing.at, routing.done, routing.misordered)
    });

    let request = PageRequest {
        filters: context.config.filters.clone(),
        created_at: Some((first.piece.start - 1, last.piece.end)),
        pagination: context.config.pagination,
    };
    let watch = RangeWatch { range, stop: &stop };
    let fetch = fetch_pages(context, request, page_tx, &watch);
    let commit = commit_routed(context, queue, routed_rx, &stop, results);
    let (fetched, (committed, commit_failed)) = tokio::join!(fetch, commit);
    range.stream_ends();
    let (routed, at, done, misordered) = encoder.await.expect("the encoder thread does not panic");
    report_misordered(context, range, &committed, &misordered, results).await;
    if let Some(i) = commit_failed {
        fail_rest(
            queue,
            range.abandon(i + 1),
            "a window before it could not be committed",
            results,
        );
        return StreamEnd::Done;
    }
    // Every owned slot handed on (and committed above): whatever the fetch did after the
    // range's end does not matter.
    if done {
        return StreamEnd::Done;
    }
    match (routed, fetched) {
        (Err(error), _) => StreamEnd::Failed(at, error),
        (Ok(()), Err(error @ ApiError::CursorRefused { .. })) => StreamEnd::Restart(at, error),
        (Ok(()), Err(error)) => StreamEnd::Failed(at, WindowError::Api(error)),
        // The fetch ended and sent its end, so the encoder handed every slot on (`done`);
        // should it not have, the rest is failed rather than left out of the run's accounting.
        (Ok(()), Ok(())) => StreamEnd::Failed(
            at,
            WindowError::RangeFailed {
                cause: "its range's stream ended before the window's end".into(),
            },
        ),
    }
}

/// A range stream's watch: each page tells the range how far it has fetched (a split inside
/// starts past that), and a page that reaches the range's end (which a split may have moved
/// down) is the stream's last: the encoder hands the last slot on at its first record past the
/// end, so a split costs at most the page in flight. `stop`: the commits failed, or the encoder
/// passed the range's new end.
struct RangeWatch<'a> {
    range: &'a Range,
    stop: &'a AtomicBool,
}

impl PageWatch for RangeWatch<'_> {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn fetched(&self, page: &Page) -> bool {
        let reached = page
            .last_created_at
            .as_deref()
            .and_then(parse_timestamp_ms)
            .map(|ms| ms.div_euclid(1_000));
        // Before the page goes to the encoder: a split inside starts past what is fetched.
        self.range.fetched(page.records, reached);
        reached.is_some_and(|second| second >= self.range.end_time())
    }

    fn ended(&self) {
        // Every record of the query is fetched: there is no rest to split.
        self.range.stream_ends();
    }
}

/// Commits each window a range stream hands on, in order, and reports it: a whole window at once,
/// a piece once its window's last piece is in (by whichever stream hands that on). Stops at the
/// first commit that fails (returning its slot), closing the channel so that the encoder stops
/// too. Returns the windows committed, by slot.
pub(crate) async fn commit_routed(
    context: &Context<'_>,
    queue: &Queue,
    mut routed_rx: mpsc::Receiver<RoutedSlot>,
    stop: &AtomicBool,
    results: &Results,
) -> (BTreeMap<usize, WindowRecord>, Option<usize>) {
    let mut committed = BTreeMap::new();
    while let Some(routed) = routed_rx.recv().await {
        let RoutedSlot {
            index: i,
            slot,
            staged,
            count_first,
        } = routed;
        let result = match queue.pieces.deposit(slot, staged) {
            Deposit::Whole(staged) if count_first => {
                commit_counted(context, queue, slot.window, staged).await
            }
            Deposit::Whole(staged) => {
                commit_closed(context, slot.window, staged, Fetched::Once).await
            }
            Deposit::Complete(pieces) => {
                let staged = join_pieces(pieces);
                commit_counted(context, queue, slot.window, staged).await
            }
            Deposit::Waiting | Deposit::Dropped => continue,
        };
        let failed = match &result {
            Ok(done) => {
                committed.insert(i, done.record.clone());
                false
            }
            Err(_) => true,
        };
        let _ = results.send(WorkerReport::Window(slot.window, result));
        if failed {
            // Nothing after it is committed: the stream stops, the rest fails. Closing the
            // channel makes the encoder's next hand-on fail, so it stops too.
            stop.store(true, Ordering::Relaxed);
            routed_rx.close();
            return (committed, Some(i));
        }
    }
    (committed, None)
}

/// Commits a window whose stream stopped short of its query's end (a window fetched in pieces,
/// or the last window before a cut at a window boundary) once its records add up to Zendesk's
/// count of the window (at most three requests). A record served out of order past the stop is in
/// no stream: the stream that held it stopped, and the next one's query starts later. Short of
/// the count, or when only listing the window whole would count it (a full page of records in a
/// margin second, an API without the offset form), the window is fetched again whole, as a query
/// of its own (as before ranges), and that is committed; after an uncounted window no window is
/// split inside for the rest of the run, since each would be fetched twice.
pub(crate) async fn commit_counted(
    context: &Context<'_>,
    queue: &Queue,
    window: Window,
    staged: Staged,
) -> Result<Done, WindowError> {
    let kept = staged.counts.kept;
    match quick_count(&context.client, &context.config.filters, &window).await? {
        Some(zendesk) if zendesk > kept => tracing::warn!(
            window = %window.id(),
            fetched = kept,
            zendesk,
            "a window holds fewer records than Zendesk counts; fetching it again whole"
        ),
        Some(zendesk) => {
            if zendesk < kept {
                tracing::warn!(window = %window.id(), fetched = kept, zendesk, "a window holds more records than Zendesk counts");
            }
            return commit_closed(context, window, staged, Fetched::Once).await;
        }
        None => {
            tracing::info!(window = %window.id(), "no quick count of the window; fetching it again whole, and splitting no window inside from now on");
            queue.no_more_pieces();
        }
    }
    drop(staged);
    let staged = fetch_window(context, window).await?;
    commit_closed(context, window, staged, Fetched::AgainWhole).await
}

/// One window's files and counts from its pieces, in order: part numbers run on per day across
/// the pieces (each piece numbered its own from 0).
pub(crate) fn join_pieces(pieces: Vec<Staged>) -> Staged {
    let mut parts = Vec::new();
    let mut counts = RouteCounts::default();
    let mut next_seq: BTreeMap<chrono::NaiveDate, u32> = BTreeMap::new();
    for piece in pieces {
        let mut piece_parts = piece.parts;
        piece_parts.sort_by_key(|p| (p.day, p.seq));
        for mut part in piece_parts {
            let seq = next_seq.entry(part.day).or_insert(0);
            part.seq = *seq;
            *seq += 1;
            parts.push(part);
        }
        counts.add(piece.counts);
    }
    Staged { parts, counts }
}

/// Records that came after later ones (`sort=created_at` broken): each is looked up in the files
/// of the (whole) window it belongs to, committed before it came; one missing there fails that
/// window's report (the run exits 1 and says to repair). A window whose commit failed is failed
/// already.
pub(crate) async fn report_misordered(
    context: &Context<'_>,
    range: &Range,
    committed: &BTreeMap<usize, WindowRecord>,
    misordered: &[(usize, i64)],
    results: &Results,
) {
    let mut held: BTreeMap<usize, std::collections::HashSet<i64>> = BTreeMap::new();
    for &(i, id) in misordered {
        let ids = match (held.get(&i), committed.get(&i)) {
            (Some(ids), _) => ids,
            (None, Some(record)) => {
                let ids = ids_in_lake(context.committer.lake(), record)
                    .await
                    .unwrap_or_default();
                held.entry(i).or_insert(ids)
            }
            (None, None) => continue,
        };
        if !ids.contains(&id) {
            let window = range.slot(i).window;
            let _ = results.send(WorkerReport::Misordered { window, id });
        }
    }
}
