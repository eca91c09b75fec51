//! What the workers and the range streams report to the coordinator, as soon as each window's
//! result is known, and the queue of work they share. Below both (`workers.rs` starts streams,
//! `stream.rs` reports through these), so that neither imports the other.

use super::error::WindowError;
use super::ranges::{Slot, WorkQueue};
use super::summary::Done;
use crate::plan::window::Window;
use crate::table::route::Staged;
use tokio::sync::mpsc;

/// The ranges of a run, and the windows fetched in pieces.
pub(crate) type Queue = WorkQueue<Staged>;

/// What a worker reports (through a channel; the size of a window's result costs nothing).
#[allow(clippy::large_enum_variant)]
pub(crate) enum WorkerReport {
    /// A window's result.
    Window(Window, Result<Done, WindowError>),
    /// A record that came after records of a later window, and is missing from the window it
    /// belongs to, committed before it came.
    Misordered { window: Window, id: i64 },
}

/// Where a worker reports each window's result, as soon as it has one.
pub(crate) type Results = mpsc::UnboundedSender<WorkerReport>;

/// Reports that `slot` failed: as its window's failure when it is the whole window or the first
/// piece of it to fail (a window fails once).
pub(crate) fn report_failed_slot(queue: &Queue, slot: Slot, error: WindowError, results: &Results) {
    if queue.pieces.fail(slot) {
        let _ = results.send(WorkerReport::Window(slot.window, Err(error)));
    }
}
