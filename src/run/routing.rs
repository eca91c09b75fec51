//! The encoder side of a range's stream: routes each record to its slot on a blocking thread,
//! and hands a slot on as soon as a record past its end arrives.

use super::error::WindowError;
use super::pipeline::Handoff;
use super::ranges::{Range, Slot};
use crate::table::decode::decode_page;
use crate::table::route::{Staged, WindowRouter};
use crate::table::schema::Schema;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::mpsc;

/// What the encoder thread of a range hands on: a slot of the range, as it ended, complete.
pub(crate) struct RoutedSlot {
    /// The slot's index in the range.
    pub(crate) index: usize,
    pub(crate) slot: Slot,
    pub(crate) staged: Staged,
    /// Whether the window is counted before its commit: a whole window before a cut at a window
    /// boundary (see [`Range::shortened`]).
    pub(crate) count_first: bool,
}

/// The encoder side of a range's stream: routes each record to its slot, and hands a slot on as
/// soon as a record past its end arrives (records come in `created_at` order across seconds, and
/// slot bounds are whole seconds).
pub(crate) struct RangeRouting {
    pub(crate) range: Arc<Range>,
    /// The slot the stream started at.
    pub(crate) from: usize,
    /// The slot being routed: the first not handed on.
    pub(crate) at: usize,
    pub(crate) router: WindowRouter,
    /// Every slot the range owns was handed on.
    pub(crate) done: bool,
    pub(crate) tmp_dir: std::path::PathBuf,
    /// Set once the stream passed the range's end (moved down by a split): fetch no more.
    pub(crate) stop: Arc<std::sync::atomic::AtomicBool>,
    pub(crate) out: mpsc::Sender<RoutedSlot>,
    /// Records of an earlier slot that came after a later slot's: `(slot, id)`.
    pub(crate) misordered: Vec<(usize, i64)>,
}

/// Misordered records remembered per stream: one is enough to act; the cap bounds memory.
pub(crate) const MISORDERED_KEPT: usize = 1_000;

impl RangeRouting {
    /// Routes every handed-off page until the query ends (then every owned slot is handed on:
    /// `done`), the range's end is passed, or the pages stop coming (the fetch failed).
    ///
    /// Once every owned slot is handed on, the pages already fetched are still read to the end,
    /// for records of an earlier slot served after later ones (see [`RangeRouting::push`]).
    pub(crate) fn run(&mut self, mut pages: mpsc::Receiver<Handoff>) -> Result<(), WindowError> {
        while let Some(handoff) = pages.blocking_recv() {
            let pages = match handoff {
                Handoff::Pages(pages) => pages,
                Handoff::Complete if self.done => return Ok(()),
                Handoff::Complete => {
                    while self.hand_on()? {}
                    return Ok(());
                }
            };
            for page in pages {
                let mut failed = None;
                let decoded = decode_page(&page.body, Schema::get(), |row| {
                    if failed.is_none() && (self.done || !self.stop.load(Ordering::Relaxed)) {
                        failed = self.push(&row).err();
                    }
                });
                if let Err(e) = decoded {
                    if !self.done {
                        return Err(e.into());
                    }
                    // Past the range's end, a record that does not decode is another range's:
                    // the pages after it are not read for late records.
                    tracing::warn!(error = %e, "a page past the range's end does not decode; it is not read for late records");
                    return Ok(());
                }
                if let Some(e) = failed {
                    return Err(e);
                }
                if self.stop.load(Ordering::Relaxed) && !self.done {
                    // The committer stopped (a failed commit).
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    fn push(&mut self, row: &crate::table::decode::Row<'_, '_>) -> Result<(), WindowError> {
        let second = row.created_at.div_euclid(1_000);
        if self.done {
            self.note_late(second, row.id, self.at + 1);
            return Ok(());
        }
        // Under the range's lock: a record the router takes is never past a split's cut.
        while !self.range.admit(self.at, second) {
            if !self.hand_on()? {
                return Ok(());
            }
        }
        self.note_late(second, row.id, self.at);
        Ok(self.router.push(row)?)
    }

    /// Remembers a record of second `second` if it belongs to a slot before `before` that was
    /// handed on already: it came after a later slot's records. Only whole windows are looked up
    /// later; a window fetched in pieces is checked against Zendesk's count before its commit.
    fn note_late(&mut self, second: i64, id: i64, before: usize) {
        if before <= self.from || self.misordered.len() >= MISORDERED_KEPT {
            return;
        }
        let earlier = (self.from..before)
            .rev()
            .map(|i| (i, self.range.slot(i)))
            .find(|(_, slot)| slot.piece.contains(second));
        if let Some((i, slot)) = earlier {
            if slot.is_whole() {
                self.misordered.push((i, id));
            }
        }
    }

    /// Hands the current slot on and moves to the next; `false` when the next one is not the
    /// range's (its end moved down), and the stream stops.
    fn hand_on(&mut self) -> Result<bool, WindowError> {
        let (slot, mine) = self.range.finish(self.at);
        let next = if mine {
            self.range.slot(self.at + 1)
        } else {
            // The last slot: leave a router that routes nothing more.
            self.stop.store(true, Ordering::Relaxed);
            slot
        };
        let router = std::mem::replace(
            &mut self.router,
            WindowRouter::piece(next.piece, next.window, self.tmp_dir.clone()),
        );
        let routed = RoutedSlot {
            index: self.at,
            slot,
            staged: router.finish()?,
            count_first: !mine && slot.is_whole() && self.range.shortened(),
        };
        if self.out.blocking_send(routed).is_err() {
            // The committer stopped (a failed commit): nothing more is handed on.
            self.stop.store(true, Ordering::Relaxed);
            return Ok(false);
        }
        if mine {
            self.at += 1;
        } else {
            self.done = true;
        }
        Ok(mine)
    }
}
