//! The run's workers: bounded concurrency over the pending windows, alone or as ranges, each
//! result reported to the coordinator as soon as it is known; and when another stream is worth
//! starting inside a busy window (the request budget has room).

use super::error::WindowError;
use super::open::{close_open, export_open};
use super::pending::Pending;
use super::pipeline::export_window;
use super::progress::Progress;
use super::ranges;
use super::report::{Queue, Results, WorkerReport};
use super::stream::export_range;
use super::summary::{record_done, record_failure, Failure, Summary};
use super::Context;
use crate::lake::view::open_record;
use crate::plan::window::Window;
use crate::zendesk::Client;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Exports `pending` with at most `concurrency` windows in flight, until all are done, one stops
/// the run, it is cancelled or the lease is lost.
pub(crate) async fn export_windows(
    context: &Arc<Context<'_>>,
    pending: Vec<Pending>,
    concurrency: usize,
    cancel: &CancellationToken,
    lost: &CancellationToken,
    summary: &mut Summary,
) {
    // Offset pagination checks a query's distinct records against its `count` only on its last
    // page: a window must not be committed before that, so each window is a query of its own
    // there, as are the open window and the one closing after growing by increments always.
    let (ranged, alone): (Vec<_>, Vec<_>) = pending.into_iter().partition(|p| {
        p.closed
            && context.config.pagination == crate::zendesk::Pagination::Cursor
            && open_record(&context.open_state, &p.window).is_none()
    });
    let ranged: Vec<Window> = ranged.into_iter().map(|p| p.window).collect();
    let queue = Queue::new(ranges::initial(&ranged, concurrency));
    let alone = std::sync::Mutex::new(alone.into_iter().collect::<VecDeque<_>>());
    let (tx, mut rx) = mpsc::unbounded_channel();
    // Futures of this task, not spawned: dropping them (a stop) drops the in-flight windows.
    let mut workers: FuturesUnordered<_> = (0..concurrency.max(1))
        .map(|_| worker(context, &queue, &alone, tx.clone()))
        .collect();
    drop(tx);
    loop {
        let next = tokio::select! {
            biased;
            () = cancel.cancelled() => {
                summary.interrupted = true;
                tracing::warn!("interrupted: in-flight windows are dropped, nothing partial is committed");
                break;
            }
            () = lost.cancelled() => break,
            next = rx.recv() => next,
            Some(()) = workers.next() => continue,
        };
        let Some(report) = next else { break };
        if record_report(summary, report, context.progress) {
            break;
        }
    }
    // Windows committed (or failed) before the stop whose reports were still queued.
    drop(workers);
    while let Ok(report) = rx.try_recv() {
        record_report(summary, report, context.progress);
    }
}

/// Adds a report to the summary; whether the run must stop.
pub(crate) fn record_report(
    summary: &mut Summary,
    report: WorkerReport,
    progress: &dyn Progress,
) -> bool {
    match report {
        WorkerReport::Window(_, Ok(done)) => {
            progress.window_finished();
            record_done(summary, done);
            false
        }
        WorkerReport::Window(w, Err(e)) => {
            progress.window_finished();
            record_failure(summary, w, &e)
        }
        WorkerReport::Misordered { window, id } => {
            let e = WindowError::Misordered {
                window: window.id(),
                id,
            };
            tracing::error!(window = %window.id(), id, error = %e, "record missing from a committed window");
            summary.records_misordered += 1;
            summary.failures.push(Failure {
                window: window.id(),
                error: e.to_string(),
            });
            false
        }
    }
}

/// One worker: windows exported alone (the open window; every window with offset pagination)
/// while there are any, then ranges until none is left to take or split.
pub(crate) async fn worker(
    context: &Context<'_>,
    queue: &Queue,
    alone: &std::sync::Mutex<VecDeque<Pending>>,
    results: Results,
) {
    loop {
        let next = alone.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
        let Some(Pending { window, closed }) = next else {
            break;
        };
        let closing = open_record(&context.open_state, &window);
        let result = match (closed, closing) {
            (true, Some(state)) => close_open(context, window, state).await,
            (true, None) => export_window(context, window).await,
            (false, _) => export_open(context, window).await,
        };
        let _ = results.send(WorkerReport::Window(window, result));
    }
    let room = |fetching: usize| budget_has_room(&context.client, fetching);
    while let Some(range) = queue.next(room).await {
        export_range(context, queue, range, &results).await;
    }
}

/// Demand the budget is given, as a share of its rate, before another stream is started inside a
/// window: a stream keeps one request in flight, and the API's latency varies around its average,
/// so streams whose average pace just matches the budget leave some of it unused.
pub(crate) const STREAM_DEMAND: f64 = 1.1;

/// Whether the request budget has room for a stream more than the `fetching` ones: each makes one
/// request per API latency (measured so far), and together they ask less than the budget allows
/// (with [`STREAM_DEMAND`]'s margin). When the budget paces the run already, a stream more only
/// costs requests (its first page, the page in flight where it split, its window's count).
pub(crate) fn budget_has_room(client: &Client, fetching: usize) -> bool {
    room_for_a_stream(
        client.stats().latency(),
        client.budget().per_minute(),
        fetching,
    )
}

/// [`budget_has_room`] given the API's latency so far (`None` before the first answer: room) and
/// the budget's requests per minute.
pub(crate) fn room_for_a_stream(
    latency: Option<std::time::Duration>,
    per_minute: u32,
    fetching: usize,
) -> bool {
    let Some(latency) = latency else {
        return true;
    };
    let per_stream = 60.0 / latency.as_secs_f64().max(0.001);
    fetching as f64 * per_stream < STREAM_DEMAND * f64::from(per_minute)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_stream_more_only_while_the_fetching_ones_leave_the_budget_unused() {
        let ms = |n| Some(Duration::from_millis(n));
        // Before the first answer nothing is known: room.
        assert!(room_for_a_stream(None, 700, 8));
        // 250 ms a page: 240 requests a minute a stream. Three ask 720, within 110% of 700: a
        // fourth is worth it; four ask 960: no fifth.
        assert!(room_for_a_stream(ms(250), 700, 3));
        assert!(!room_for_a_stream(ms(250), 700, 4));
        // 150 ms a page against 350 a minute: one stream (400) keeps the budget busy alone.
        assert!(!room_for_a_stream(ms(150), 350, 1));
        assert!(room_for_a_stream(ms(150), 350, 0));
    }
}
