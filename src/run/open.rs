//! The open window: the last window of a run, cut at `until`. It is never marked done: each run
//! exports it again and records it in `open.json`, until a run whose `until` passes its end
//! exports it as a closed window. A committed window is never touched here (it changes only by
//! repair): the plan leaves out an open window that has a marker.

use super::error::WindowError;
use super::pipeline::fetch_window;
use super::progress::Progress;
use super::summary::Done;
use super::Context;
use crate::plan::window::Window;

/// Exports the open window and records it as the open window's latest export.
pub(crate) async fn export_open(
    context: &Context,
    window: Window,
    progress: &dyn Progress,
) -> Result<Done, WindowError> {
    let (parts, counts) = fetch_window(context, window, progress).await?;
    let record = context.committer.refresh_open(&window, parts).await?;
    Ok(Done {
        window,
        closed: false,
        committed: false,
        record,
        counts,
    })
}
