//! Plan by ranges, commit by windows: the pending closed windows of a run are fetched as a few
//! *ranges* of consecutive windows, each in one cursor stream, and split while they run.
//!
//! A window is still the unit of commit (files, then marker, as soon as every record of it is in),
//! so a crash loses at most the uncommitted windows of each range, and an empty window costs no
//! request of its own. Ranges are the unit of fetching: a run starts with about as many as workers,
//! and a worker with nothing left splits the largest running range ahead of its stream:
//!
//! - at a window boundary when the range has windows its stream has not reached
//!   ([`Range::split`]): the worker takes the back half of them;
//! - otherwise *inside* the window the stream is in, at a second boundary past everything the
//!   stream has fetched ([`Range::split_inside`]), when the stream's own pace says the rest holds
//!   enough records to be worth a stream of its own and the request budget has room for one more
//!   (the caller says so: [`WorkQueue::try_next`]). The window is then fetched in *pieces*, and is
//!   committed once all of them are in ([`Pieces`]).
//!
//! The stream that was split stops when it reaches its new end (at most the page in flight is
//! wasted). A record served out of order past that point is in no stream, so the runner counts the
//! window before a cut (and every window fetched in pieces) against Zendesk before its commit
//! ([`Range::shortened`]). So a busy month, and a single busy day with `--window 1d`, are fetched by several
//! workers at once without knowing in advance where the records are.
//!
//! This module is the bookkeeping only (which windows and pieces a range still owns, which pieces
//! of a window are in); the runner streams and commits.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::plan::window::Window;

/// What one stream fetches of one window: the whole window, or (once split inside) the seconds
/// `[piece.start, piece.end)` of it. Records are cut to the piece, files are the window's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub piece: Window,
    pub window: Window,
}

impl Slot {
    /// The whole of `window`.
    pub fn whole(window: Window) -> Slot {
        Slot {
            piece: window,
            window,
        }
    }

    /// Whether the slot is its whole window (committed by the stream that hands it on).
    pub fn is_whole(&self) -> bool {
        self.piece == self.window
    }
}

/// Records a piece split off inside a window should hold by the stream's own pace: below this a
/// new stream (one request at least, plus the page in flight of the one split) costs more than it
/// saves, and the window's count check (at most three requests) weighs more.
/// It also keeps part files large: each piece writes files of its own.
pub const MIN_PIECE_RECORDS: u64 = 2_500;

/// How long an idle worker waits before looking again for a range to split, while some stream is
/// still too young (no page yet) or too close to its end to be split.
const IDLE_LOOK: Duration = Duration::from_millis(50);

/// Consecutive slots fetched by one stream; its end moves down when another worker takes its tail,
/// and its last slot's end when another worker takes the rest of the window it is in.
#[derive(Debug)]
pub struct Range {
    slots: Vec<Slot>,
    span: Mutex<Span>,
}

/// The slots a range still owns, and how far its stream has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    /// The first slot not yet finished (the stream is inside it or before it).
    next: usize,
    /// The first slot that is not the range's any more.
    end: usize,
    /// The second the last slot now ends at, once split inside.
    cut: Option<i64>,
    /// The latest second of a record the stream's router was given (see [`Range::admit`]).
    routed: i64,
    /// Whether a stream is fetching: only then is there a rest to split inside.
    live: bool,
    /// Whether the last stream ended (a range not started yet is about to be fetched).
    ended: bool,
    /// Whether another worker took the range's tail at a window boundary: the stream stops short
    /// of its query's end, so a record served out of order past that point is not seen by it.
    shortened: bool,
    /// The latest second the stream's pages reached; since when its pace is measured, and the
    /// records fetched since: the pace says whether the rest is worth a split.
    reached: i64,
    paced_from: i64,
    records: u64,
}

impl Range {
    /// A range over `slots`, which must be consecutive (each starting where the previous ends).
    pub fn new(slots: Vec<Slot>) -> Range {
        debug_assert!(slots.windows(2).all(|p| p[0].piece.end == p[1].piece.start));
        let end = slots.len();
        let from = slots.first().map_or(0, |s| s.piece.start);
        Range {
            slots,
            span: Mutex::new(Span {
                next: 0,
                end,
                cut: None,
                routed: i64::MIN,
                live: false,
                ended: false,
                shortened: false,
                reached: from,
                paced_from: from,
                records: 0,
            }),
        }
    }

    /// A range of whole windows.
    pub fn of_windows(windows: &[Window]) -> Range {
        Range::new(windows.iter().copied().map(Slot::whole).collect())
    }

    fn span(&self) -> MutexGuard<'_, Span> {
        self.span.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn slot_in(&self, span: &Span, i: usize) -> Slot {
        let mut slot = self.slots[i];
        if let Some(cut) = span.cut.filter(|_| i + 1 == span.end) {
            slot.piece.end = cut;
        }
        slot
    }

    /// Slot `i` of the range, as it stands now.
    pub fn slot(&self, i: usize) -> Slot {
        let span = self.span();
        self.slot_in(&span, i)
    }

    /// The slots the range owns from `from` on: the query of a stream that starts there.
    pub fn owned_from(&self, from: usize) -> Vec<Slot> {
        let span = self.span();
        (from.min(span.end)..span.end)
            .map(|i| self.slot_in(&span, i))
            .collect()
    }

    /// A stream starts at slot `from`: its pace is measured afresh.
    pub fn stream_starts(&self, from: usize) {
        let mut span = self.span();
        let start = self
            .slot_in(&span, from.min(self.slots.len() - 1))
            .piece
            .start;
        span.live = true;
        span.ended = false;
        span.reached = start;
        span.paced_from = start;
        span.records = 0;
    }

    /// The stream fetches no more (its query ended, or it stopped): its rest is not split.
    pub fn stream_ends(&self) {
        let mut span = self.span();
        span.live = false;
        span.ended = true;
    }

    /// The stream fetched a page of `records` whose last record is of second `reached`.
    pub fn fetched(&self, records: usize, reached: Option<i64>) {
        let mut span = self.span();
        span.records += records as u64;
        if let Some(second) = reached {
            span.reached = span.reached.max(second);
        }
    }

    /// Whether a record of `second` belongs to slot `i` or before (then its router takes it, and
    /// no split inside moves the slot's end to or below it); `false` when it is past the slot's
    /// end, and the slot is to be handed on first.
    pub fn admit(&self, i: usize, second: i64) -> bool {
        let mut span = self.span();
        if second >= self.slot_in(&span, i).piece.end {
            return false;
        }
        span.routed = span.routed.max(second);
        true
    }

    /// Records that slot `i` is finished (handed on); returns it as it ends, and whether slot
    /// `i + 1` is still the range's to fetch. A finished slot is never split. The pace is
    /// measured afresh from here, so a busy slot does not make the next one look busy.
    pub fn finish(&self, i: usize) -> (Slot, bool) {
        let mut span = self.span();
        let slot = self.slot_in(&span, i);
        span.next = span.next.max(i + 1);
        span.paced_from = span.reached;
        span.records = 0;
        (slot, span.next < span.end)
    }

    /// Gives up the rest of the range from slot `from` (a failure): returns the slots given up,
    /// which nobody else will fetch.
    pub fn abandon(&self, from: usize) -> Vec<Slot> {
        let mut span = self.span();
        let from = from.min(span.end);
        let given_up = (from..span.end).map(|i| self.slot_in(&span, i)).collect();
        if from < span.end {
            span.end = from;
            span.cut = None;
        }
        given_up
    }

    /// The end (UTC seconds) of the last slot the range owns now; a stream whose records reach
    /// it has nothing more to fetch.
    pub fn end_time(&self) -> i64 {
        let span = self.span();
        span.end
            .checked_sub(1)
            .map_or(i64::MIN, |last| self.slot_in(&span, last).piece.end)
    }

    /// Whether a stream is fetching the range, or is about to.
    pub fn fetching(&self) -> bool {
        !self.span().ended
    }

    /// Whether the stream still has slots to hand on (so the range may yet be split).
    pub fn streaming(&self) -> bool {
        let span = self.span();
        span.next < span.end
    }

    /// Slots not started yet: after the one the stream is in.
    pub fn unstarted(&self) -> usize {
        let span = self.span();
        span.end.saturating_sub(span.next + 1)
    }

    /// Takes the back half of the unstarted slots (at least one) for another worker, or `None`
    /// when there is none. The stream of this range stops at its new end.
    pub fn split(&self) -> Option<Vec<Slot>> {
        let mut span = self.span();
        let unstarted = span.end.saturating_sub(span.next + 1);
        if unstarted == 0 {
            return None;
        }
        let mid = span.end - unstarted.div_ceil(2);
        let tail = (mid..span.end).map(|i| self.slot_in(&span, i)).collect();
        span.end = mid;
        span.cut = None;
        span.shortened = true;
        Some(tail)
    }

    /// Whether another worker took the range's tail at a window boundary: the stream stops short
    /// of its query's end, so the window before the cut is counted before its commit (a record
    /// served out of order past that point is not seen by the stream).
    pub fn shortened(&self) -> bool {
        self.span().shortened
    }

    /// The records the rest of the slot the stream is in should hold at the stream's pace so far
    /// (`None` before its first page): what a split inside would leave to the stream and take.
    fn rest_inside(&self, span: &Span) -> Option<(i64, i64, u64)> {
        if !span.live || span.next + 1 != span.end || span.records == 0 {
            return None;
        }
        let slot = self.slot_in(span, span.next);
        // Everything up to the latest second fetched or routed stays with this stream.
        let from = span.reached.max(span.routed).max(slot.piece.start - 1) + 1;
        let seconds = slot.piece.end - from;
        if seconds < 2 {
            return None;
        }
        let paced = (span.reached - span.paced_from).max(1) as f64;
        let rest = (span.records as f64 / paced * seconds as f64) as u64;
        Some((from, slot.piece.end, rest))
    }

    /// Records the rest of the stream's window should hold at its pace (0 when unknown): which
    /// range to split inside first.
    pub fn rest_estimate(&self) -> u64 {
        let span = self.span();
        self.rest_inside(&span).map_or(0, |(_, _, rest)| rest)
    }

    /// Splits the slot the stream is in (its last) at a second past everything the stream has
    /// fetched or routed, when the back half should hold at least `min_records` at the stream's
    /// pace: returns the back half, registered with `pieces` so the window commits once every
    /// piece is in. The stream stops at the new end.
    pub fn split_inside<T>(&self, min_records: u64, pieces: &Pieces<T>) -> Option<Slot> {
        let mut span = self.span();
        let (from, end, rest) = self.rest_inside(&span)?;
        let mid = from + (end - from) / 2;
        if rest / 2 < min_records {
            return None;
        }
        let mut tail = self.slot_in(&span, span.next);
        // Registered before the cut is visible: the stream can hand its piece on only after the
        // lock is released, and then finds the window waiting for its pieces.
        pieces.split(tail.window);
        tail.piece.start = mid;
        span.cut = Some(mid);
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

/// The windows fetched in pieces, each waiting for its pieces: whatever a piece hands on (`T`:
/// its files and counts) is held until the last piece is in, then the whole window is committed
/// by the stream that handed on the last piece. A window fails once, at its first failed piece;
/// what its other pieces hand on is then dropped.
#[derive(Debug)]
pub struct Pieces<T> {
    windows: Mutex<HashMap<i64, Assembly<T>>>,
}

#[derive(Debug)]
struct Assembly<T> {
    /// Pieces not in yet.
    outstanding: usize,
    /// Pieces in, with the second each starts at.
    handed_on: Vec<(i64, T)>,
    failed: bool,
}

/// What becomes of a piece handed on.
#[derive(Debug, PartialEq, Eq)]
pub enum Deposit<T> {
    /// The slot is its whole window: commit it.
    Whole(T),
    /// Other pieces of its window are still being fetched: nothing to do.
    Waiting,
    /// The last piece: every piece, in the window's order; commit the window.
    Complete(Vec<T>),
    /// The window failed in another piece: the piece is dropped.
    Dropped,
}

impl<T> Default for Pieces<T> {
    fn default() -> Self {
        Pieces {
            windows: Mutex::new(HashMap::new()),
        }
    }
}

impl<T> Pieces<T> {
    fn windows(&self) -> MutexGuard<'_, HashMap<i64, Assembly<T>>> {
        self.windows.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One more piece of `window` to wait for (the first split makes two).
    fn split(&self, window: Window) {
        self.windows()
            .entry(window.start)
            .or_insert(Assembly {
                outstanding: 1,
                handed_on: Vec::new(),
                failed: false,
            })
            .outstanding += 1;
    }

    /// A stream hands `slot` on with what it made of it.
    pub fn deposit(&self, slot: Slot, made: T) -> Deposit<T> {
        if slot.is_whole() {
            return Deposit::Whole(made);
        }
        let mut windows = self.windows();
        let assembly = windows
            .get_mut(&slot.window.start)
            .expect("a piece's window is registered when it is split");
        assembly.outstanding -= 1;
        let deposit = if assembly.failed {
            Deposit::Dropped
        } else {
            assembly.handed_on.push((slot.piece.start, made));
            if assembly.outstanding > 0 {
                return Deposit::Waiting;
            }
            let mut all = std::mem::take(&mut assembly.handed_on);
            all.sort_by_key(|(start, _)| *start);
            Deposit::Complete(all.into_iter().map(|(_, made)| made).collect())
        };
        if assembly.outstanding == 0 {
            windows.remove(&slot.window.start);
        }
        deposit
    }

    /// `slot` failed: whether its window's failure is to be reported (a whole window, or the first
    /// piece of it to fail); the pieces already in are dropped.
    pub fn fail(&self, slot: Slot) -> bool {
        if slot.is_whole() {
            return true;
        }
        let mut windows = self.windows();
        let assembly = windows
            .get_mut(&slot.window.start)
            .expect("a piece's window is registered when it is split");
        assembly.outstanding -= 1;
        let first = !assembly.failed;
        assembly.failed = true;
        assembly.handed_on.clear();
        if assembly.outstanding == 0 {
            windows.remove(&slot.window.start);
        }
        first
    }
}

/// The ranges not started yet, those running (to split when a worker is idle), and the windows
/// fetched in pieces.
#[derive(Debug)]
pub struct WorkQueue<T> {
    state: Mutex<Queue>,
    pub pieces: Pieces<T>,
    /// Set when a window fetched in pieces could not be counted quickly: no window is split
    /// inside for the rest of the run (each would be fetched twice).
    no_pieces: std::sync::atomic::AtomicBool,
}

#[derive(Debug, Default)]
struct Queue {
    waiting: VecDeque<Arc<Range>>,
    running: Vec<Arc<Range>>,
}

/// What an idle worker is to do.
#[derive(Debug)]
pub enum Next {
    /// Stream this range.
    Take(Arc<Range>),
    /// Look again shortly: a running stream may yet become worth splitting.
    Wait,
    /// Nothing is left to take or split.
    Finished,
}

impl<T> WorkQueue<T> {
    pub fn new(ranges: Vec<Vec<Window>>) -> WorkQueue<T> {
        WorkQueue {
            state: Mutex::new(Queue {
                waiting: ranges
                    .iter()
                    .map(|w| Arc::new(Range::of_windows(w)))
                    .collect(),
                running: Vec::new(),
            }),
            pieces: Pieces::default(),
            no_pieces: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn state(&self) -> MutexGuard<'_, Queue> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Splits no more windows inside for the rest of the run.
    pub fn no_more_pieces(&self) {
        self.no_pieces
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Queues slots to be fetched next (consecutive), e.g. the rest of a range after a failure.
    pub fn push_front(&self, slots: Vec<Slot>) {
        if !slots.is_empty() {
            self.state().waiting.push_front(Arc::new(Range::new(slots)));
        }
    }

    /// The next range for an idle worker: a waiting one, else the back half of the running range
    /// with the most windows not started, else the rest of the window the busiest stream is in,
    /// when the request budget has room for a stream more than those fetching (`room` is given
    /// their number).
    pub fn try_next(&self, room: impl Fn(usize) -> bool) -> Next {
        let mut state = self.state();
        state
            .running
            .retain(|r| Arc::strong_count(r) > 1 && r.streaming());
        let range = state.waiting.pop_front().or_else(|| {
            let windows = state
                .running
                .iter()
                .filter(|r| r.unstarted() > 0)
                .max_by_key(|r| r.unstarted())
                .and_then(|r| r.split())
                .map(Range::new);
            windows
                .or_else(|| {
                    if self.no_pieces.load(std::sync::atomic::Ordering::Relaxed)
                        || !room(state.running.iter().filter(|r| r.fetching()).count())
                    {
                        // The budget paces the streams already: a piece would only cost its
                        // requests (a first page, the page in flight, the window's count).
                        return None;
                    }
                    let busiest = state.running.iter().max_by_key(|r| r.rest_estimate())?;
                    let piece = busiest.split_inside(MIN_PIECE_RECORDS, &self.pieces)?;
                    Some(Range::new(vec![piece]))
                })
                .map(Arc::new)
        });
        match range {
            Some(range) => {
                state.running.push(range.clone());
                Next::Take(range)
            }
            None if state.running.is_empty() => Next::Finished,
            None => Next::Wait,
        }
    }

    /// The next range for an idle worker, waiting while running streams may yet be split; `None`
    /// when nothing is left to take. `room` says whether the request budget has room for a stream
    /// more than the given number fetching.
    pub async fn next(&self, room: impl Fn(usize) -> bool) -> Option<Arc<Range>> {
        loop {
            match self.try_next(&room) {
                Next::Take(range) => return Some(range),
                Next::Finished => return None,
                Next::Wait => tokio::time::sleep(IDLE_LOOK).await,
            }
        }
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

    fn slots(from: i64, n: i64) -> Vec<Slot> {
        hours(from, n).into_iter().map(Slot::whole).collect()
    }

    fn take<T>(queue: &WorkQueue<T>) -> Arc<Range> {
        match queue.try_next(|_| true) {
            Next::Take(range) => range,
            other => panic!("expected a range, got {other:?}"),
        }
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
        let range = Range::of_windows(&hours(0, 9));
        assert!(range.finish(0).1 && range.finish(1).1);
        // The stream is in window 2; windows 3..9 are unstarted: the back half is 6..9.
        assert_eq!(range.unstarted(), 6);
        assert!(!range.shortened());
        assert_eq!(range.split().unwrap(), slots(6, 3));
        assert!(
            range.shortened(),
            "its last window is counted before its commit"
        );
        assert_eq!(range.owned_from(2), slots(2, 4));
        assert!(range.finish(4).1);
        assert!(!range.finish(5).1, "window 6 belongs to the split now");
        assert_eq!(range.split(), None);
    }

    #[test]
    fn a_split_of_one_unstarted_window_takes_it_and_none_is_left() {
        let range = Range::of_windows(&hours(0, 2));
        assert_eq!(range.split().unwrap(), slots(1, 1));
        assert_eq!(range.split(), None);
        assert!(!range.finish(0).1);
    }

    #[test]
    fn an_abandoned_rest_is_nobodys_to_split() {
        let range = Range::of_windows(&hours(0, 5));
        assert!(range.finish(0).1);
        assert_eq!(range.abandon(1), slots(1, 4));
        assert_eq!(range.unstarted(), 0);
        assert!(!range.streaming());
        assert_eq!(range.split(), None);
    }

    #[test]
    fn idle_workers_take_waiting_ranges_then_split_the_largest_running_one() {
        let queue = WorkQueue::<()>::new(vec![hours(0, 8), hours(10, 2)]);
        let a = take(&queue);
        let b = take(&queue);
        assert_eq!(a.owned_from(0), slots(0, 8));
        assert_eq!(b.owned_from(0), slots(10, 2));
        // Both are running: the third worker takes the back half of a's seven unstarted windows.
        let c = take(&queue);
        assert_eq!(c.owned_from(0), slots(4, 4));
        assert_eq!(a.owned_from(0), slots(0, 4));
        // A finished range is no longer split.
        assert!(b.finish(0).1 && !b.finish(1).1);
        drop(b);
        let d = take(&queue);
        assert!(d.owned_from(0) == slots(2, 2) || d.owned_from(0) == slots(6, 2));
        // No window is unstarted and no stream has fetched a page: nothing to split yet, but the
        // streams may become worth splitting, so an idle worker waits.
        for r in [&a, &c, &d] {
            let owned = r.owned_from(0).len();
            for i in 0..owned - 1 {
                r.finish(i);
            }
        }
        assert!(matches!(queue.try_next(|_| true), Next::Wait));
        for r in [&a, &c, &d] {
            r.finish(r.owned_from(0).len() - 1);
        }
        assert!(matches!(queue.try_next(|_| true), Next::Finished));
    }

    #[test]
    fn a_busy_window_is_split_inside_past_what_its_stream_has_fetched() {
        let day = Window {
            start: 0,
            end: 86_400,
        };
        let queue = WorkQueue::<&str>::new(vec![vec![day]]);
        let a = take(&queue);
        assert!(
            matches!(queue.try_next(|_| true), Next::Wait),
            "a stream without a page has no pace yet"
        );
        // The first page: 100 records in 30 seconds, a pace of 288,000 a day.
        a.stream_starts(0);
        a.fetched(100, Some(30));
        assert!(a.admit(0, 12));
        let asked = std::cell::Cell::new(None);
        let no_room = |fetching| {
            asked.set(Some(fetching));
            false
        };
        assert!(
            matches!(queue.try_next(no_room), Next::Wait),
            "a budget without room is not given another stream"
        );
        assert_eq!(
            asked.get(),
            Some(1),
            "room is asked for a stream more than one"
        );
        let b = take(&queue);
        let back = b.owned_from(0);
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].window, day);
        assert_eq!(back[0].piece.start, 31 + (86_400 - 31) / 2);
        assert_eq!(back[0].piece.end, 86_400);
        assert_eq!(a.end_time(), back[0].piece.start);
        assert!(
            !a.shortened(),
            "a split inside does not shorten the range's windows"
        );
        assert!(
            !a.admit(0, back[0].piece.start),
            "a record of the back half is not the front's"
        );
        // The back half is split again once it has a pace of its own; so is the front.
        b.stream_starts(0);
        b.fetched(100, Some(back[0].piece.start + 30));
        let c = take(&queue);
        let d = take(&queue);
        let mut pieces: Vec<Slot> = [&a, &b, &c, &d]
            .iter()
            .map(|r| r.owned_from(0)[0])
            .collect();
        pieces.sort_by_key(|s| s.piece.start);
        assert!(pieces
            .windows(2)
            .all(|p| p[0].piece.end == p[1].piece.start));
        assert_eq!((pieces[0].piece.start, pieces[3].piece.end), (0, 86_400));

        // The window is committed once, by whichever stream hands its last piece on.
        let mut handed_on = Vec::new();
        for (r, name) in [(&c, "c"), (&a, "a"), (&d, "d")] {
            let (slot, more) = r.finish(0);
            assert!(!more);
            handed_on.push(slot.piece.start);
            assert_eq!(queue.pieces.deposit(slot, name), Deposit::Waiting);
        }
        let (slot, _) = b.finish(0);
        let Deposit::Complete(all) = queue.pieces.deposit(slot, "b") else {
            panic!("the last piece completes the window")
        };
        let mut by_start: Vec<_> = [(&a, "a"), (&b, "b"), (&c, "c"), (&d, "d")]
            .iter()
            .map(|(r, n)| (r.slot(0).piece.start, *n))
            .collect();
        by_start.sort();
        assert_eq!(all, by_start.iter().map(|(_, n)| *n).collect::<Vec<_>>());
    }

    #[test]
    fn a_stream_close_to_its_end_or_ended_is_not_split_inside() {
        let queue = WorkQueue::<()>::new(vec![hours(0, 1)]);
        let a = take(&queue);
        a.stream_starts(0);
        // 100 records over 3,000 seconds: the last 600 should hold 20, not worth a stream.
        a.fetched(100, Some(3_000));
        assert!(matches!(queue.try_next(|_| true), Next::Wait));
        a.finish(0);
        assert!(matches!(queue.try_next(|_| true), Next::Finished));

        // A busy stream whose query ended has no rest to split, though its pace says it has.
        let queue = WorkQueue::<()>::new(vec![hours(0, 1)]);
        let a = take(&queue);
        a.stream_starts(0);
        a.fetched(100, Some(10));
        a.stream_ends();
        assert!(matches!(queue.try_next(|_| true), Next::Wait));
        a.stream_starts(0);
        a.fetched(100, Some(10));
        assert!(
            matches!(queue.try_next(|_| true), Next::Take(_)),
            "a restarted stream is live again"
        );
        queue.no_more_pieces();
        assert!(
            matches!(queue.try_next(|_| true), Next::Wait),
            "no pieces once a window could not be counted quickly"
        );
    }

    #[test]
    fn a_failed_piece_fails_its_window_once_and_the_others_are_dropped() {
        let pieces = Pieces::<u32>::default();
        let window = hours(0, 1)[0];
        pieces.split(window);
        pieces.split(window);
        let piece = |start, end| Slot {
            piece: Window { start, end },
            window,
        };
        assert_eq!(pieces.deposit(piece(0, 1_000), 1), Deposit::Waiting);
        assert!(
            pieces.fail(piece(1_000, 2_000)),
            "the first failure is reported"
        );
        assert_eq!(pieces.deposit(piece(2_000, 3_600), 3), Deposit::Dropped);
        assert!(
            pieces.windows().is_empty(),
            "nothing is held after the last piece"
        );
        assert!(
            pieces.fail(Slot::whole(window)),
            "a whole window reports its own failure"
        );
        assert_eq!(pieces.deposit(Slot::whole(window), 7), Deposit::Whole(7));
    }
}
