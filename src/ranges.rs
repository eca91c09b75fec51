//! Plan by ranges, commit by windows: the pending closed windows of a run are fetched as a few
//! *ranges* of consecutive windows, each in one cursor stream, and split while they run.
//!
//! A window is still the unit of commit (files, then marker, as soon as the stream has passed its
//! end), so a crash loses at most the uncommitted windows of each range, and an empty window costs
//! no request of its own. Ranges are the unit of fetching: a run starts with about as many as
//! workers, and a worker with nothing left takes the back half of the windows that the largest
//! running range has not reached yet ([`Range::split`]); that range's stream stops when it reaches
//! its new end. So a busy month is fetched by several workers at once without knowing in advance
//! where the records are.
//!
//! This module is the bookkeeping only (which windows a range still owns); the runner streams.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::window::Window;

/// Consecutive windows fetched by one stream; its end moves down when another worker takes its
/// tail.
#[derive(Debug)]
pub struct Range {
    windows: Vec<Window>,
    span: Mutex<Span>,
}

/// The windows a range still owns: `next` is the first not yet finished (the stream is inside it
/// or before it), `end` the first that is not the range's any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    next: usize,
    end: usize,
}

impl Range {
    /// A range over `windows`, which must be consecutive (each starting where the previous ends).
    pub fn new(windows: Vec<Window>) -> Range {
        debug_assert!(windows.windows(2).all(|p| p[0].end == p[1].start));
        let end = windows.len();
        Range {
            windows,
            span: Mutex::new(Span { next: 0, end }),
        }
    }

    fn span(&self) -> MutexGuard<'_, Span> {
        self.span.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Window `i` of the range.
    pub fn window(&self, i: usize) -> Window {
        self.windows[i]
    }

    /// The windows the range owns from `from` on: the query of a stream that starts there.
    pub fn owned_from(&self, from: usize) -> &[Window] {
        let end = self.span().end;
        &self.windows[from.min(end)..end]
    }

    /// Records that window `i` is finished (handed on to be committed); whether window `i + 1` is
    /// still the range's to fetch.
    pub fn finish(&self, i: usize) -> bool {
        let mut span = self.span();
        span.next = span.next.max(i + 1);
        span.next < span.end
    }

    /// Gives up the rest of the range from window `from` (a failure): returns the windows given
    /// up, which nobody else will fetch.
    pub fn abandon(&self, from: usize) -> Vec<Window> {
        let mut span = self.span();
        let given_up = self.windows[from.min(span.end)..span.end].to_vec();
        span.end = span.end.min(from);
        given_up
    }

    /// The end (UTC seconds) of the last window the range owns now; a stream whose records reach
    /// it has nothing more to fetch.
    pub fn end_time(&self) -> i64 {
        let end = self.span().end;
        end.checked_sub(1)
            .map_or(i64::MIN, |last| self.windows[last].end)
    }

    /// Windows not started yet: after the one the stream is in.
    pub fn unstarted(&self) -> usize {
        let span = self.span();
        span.end.saturating_sub(span.next + 1)
    }

    /// Takes the back half of the unstarted windows (at least one) for another worker, or
    /// `None` when there is none. The stream of this range stops at its new end.
    pub fn split(&self) -> Option<Vec<Window>> {
        let mut span = self.span();
        let unstarted = span.end.saturating_sub(span.next + 1);
        if unstarted == 0 {
            return None;
        }
        let mid = span.end - unstarted.div_ceil(2);
        let tail = self.windows[mid..span.end].to_vec();
        span.end = mid;
        Some(tail)
    }
}

/// Splits `windows` (ascending, not necessarily consecutive) into ranges of consecutive windows,
/// then halves the longest until there are at least `workers` (or every range is one window).
pub fn initial(windows: &[Window], workers: usize) -> Vec<Vec<Window>> {
    let mut runs: Vec<Vec<Window>> = Vec::new();
    for &w in windows {
        match runs.last_mut() {
            Some(run) if run.last().is_some_and(|last| last.end == w.start) => run.push(w),
            _ => runs.push(vec![w]),
        }
    }
    while runs.len() < workers {
        let Some((longest, _)) = runs
            .iter()
            .enumerate()
            .filter(|(_, r)| r.len() > 1)
            .max_by_key(|(_, r)| r.len())
        else {
            break;
        };
        let half = runs[longest].len() / 2;
        let tail = runs[longest].split_off(half);
        runs.insert(longest + 1, tail);
    }
    runs
}

/// The ranges not started yet, and those running (to split when a worker is idle).
#[derive(Debug, Default)]
pub struct WorkQueue {
    state: Mutex<Queue>,
}

#[derive(Debug, Default)]
struct Queue {
    waiting: VecDeque<Arc<Range>>,
    running: Vec<Arc<Range>>,
}

impl WorkQueue {
    pub fn new(ranges: Vec<Vec<Window>>) -> WorkQueue {
        WorkQueue {
            state: Mutex::new(Queue {
                waiting: ranges
                    .into_iter()
                    .map(|w| Arc::new(Range::new(w)))
                    .collect(),
                running: Vec::new(),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, Queue> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues windows to be fetched next (consecutive), e.g. after a window that failed alone.
    pub fn push_front(&self, windows: Vec<Window>) {
        if !windows.is_empty() {
            self.state()
                .waiting
                .push_front(Arc::new(Range::new(windows)));
        }
    }

    /// The next range for an idle worker: a waiting one, else the back half of the running range
    /// with the most windows not started; `None` when nothing is left to take.
    pub fn next(&self) -> Option<Arc<Range>> {
        let mut state = self.state();
        state
            .running
            .retain(|r| Arc::strong_count(r) > 1 && r.unstarted() > 0);
        let range = match state.waiting.pop_front() {
            Some(range) => range,
            None => {
                let largest = state.running.iter().max_by_key(|r| r.unstarted())?;
                Arc::new(Range::new(largest.split()?))
            }
        };
        state.running.push(range.clone());
        Some(range)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hours(from: i64, n: i64) -> Vec<Window> {
        (from..from + n)
            .map(|h| Window {
                start: h * 3600,
                end: (h + 1) * 3600,
            })
            .collect()
    }

    #[test]
    fn ranges_follow_gaps_then_halve_until_every_worker_has_one() {
        let mut windows = hours(0, 10);
        windows.extend(hours(20, 2));
        let ranges = initial(&windows, 1);
        assert_eq!(ranges.iter().map(Vec::len).collect::<Vec<_>>(), [10, 2]);
        let ranges = initial(&windows, 4);
        assert_eq!(
            ranges.iter().map(Vec::len).collect::<Vec<_>>(),
            [5, 2, 3, 2]
        );
        assert_eq!(ranges.concat(), windows, "every window once, in order");
        assert_eq!(
            initial(&hours(0, 2), 8).len(),
            2,
            "a range is at least one window"
        );
        assert!(initial(&[], 4).is_empty());
    }

    #[test]
    fn a_split_takes_the_back_half_of_what_the_stream_has_not_reached() {
        let range = Range::new(hours(0, 9));
        assert!(range.finish(0) && range.finish(1));
        // The stream is in window 2; windows 3..9 are unstarted: the back half is 6..9.
        assert_eq!(range.unstarted(), 6);
        assert_eq!(range.split().unwrap(), hours(6, 3));
        assert_eq!(range.owned_from(2), hours(2, 4));
        assert!(range.finish(4));
        assert!(!range.finish(5), "window 6 belongs to the split now");
        assert_eq!(range.split(), None);
    }

    #[test]
    fn a_split_of_one_unstarted_window_takes_it_and_none_is_left() {
        let range = Range::new(hours(0, 2));
        assert_eq!(range.split().unwrap(), hours(1, 1));
        assert_eq!(range.split(), None);
        assert!(!range.finish(0));
    }

    #[test]
    fn an_abandoned_rest_is_nobodys_to_split() {
        let range = Range::new(hours(0, 5));
        assert!(range.finish(0));
        assert_eq!(range.abandon(1), hours(1, 4));
        assert_eq!(range.unstarted(), 0);
        assert_eq!(range.split(), None);
    }

    #[test]
    fn idle_workers_take_waiting_ranges_then_split_the_largest_running_one() {
        let queue = WorkQueue::new(vec![hours(0, 8), hours(10, 2)]);
        let a = queue.next().unwrap();
        let b = queue.next().unwrap();
        assert_eq!(a.owned_from(0), hours(0, 8));
        assert_eq!(b.owned_from(0), hours(10, 2));
        // Both are running: the third worker takes the back half of a's seven unstarted windows.
        let c = queue.next().unwrap();
        assert_eq!(c.owned_from(0), hours(4, 4));
        assert_eq!(a.owned_from(0), hours(0, 4));
        // A finished range is no longer split.
        assert!(b.finish(0) && !b.finish(1));
        drop(b);
        let d = queue.next().unwrap();
        assert!(d.owned_from(0) == hours(2, 2) || d.owned_from(0) == hours(6, 2));
        // Once no range has an unstarted window, there is nothing to take.
        for r in [&a, &c, &d] {
            let owned = r.owned_from(0).len();
            for i in 0..owned {
                r.finish(i);
            }
        }
        assert!(queue.next().is_none());
    }
}
