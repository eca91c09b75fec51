//! `--recheck`: recent committed windows counted again at the API, and repaired where Zendesk
//! now holds more records than the lake (records that became visible after the settle lag).

use super::error::WindowError;
use super::pipeline::fetch_window;
use super::summary::{record_failure, Summary};
use super::Context;
use crate::lake::change::Change;
use crate::lake::commit::{ids_in_lake, ids_of_parts};
use crate::lake::manifest::WindowRecord;
use crate::plan::window::Window;
use crate::table::route::RoutedPart;
use crate::zendesk::count::{count_window, quick_count};
use std::collections::BTreeSet;
use tokio_util::sync::CancellationToken;

/// Re-counts `windows` against the API and repairs those where Zendesk now holds more records
/// than the lake (records that became visible after the settle lag).
///
/// Consecutive committed windows are counted as one span, in one count (at most three
/// requests, whatever the grid); only a span whose count differs from the rows its markers
/// record is halved and counted again, down to the windows that differ. Audit records are
/// never deleted at Zendesk, so a span whose count matches holds no late record: a record lost
/// in one window and one gained in another would cancel out, which only an API that drops
/// audit records could do (`verify --against-api` counts window by window).
///
/// Returns the starts of the windows found holding what the lake holds, or repaired to it.
pub(crate) async fn recheck_and_repair(
    context: &Context<'_>,
    windows: &[Window],
    cancel: &CancellationToken,
    lost: &CancellationToken,
    summary: &mut Summary,
) -> BTreeSet<i64> {
    let grid = context.config.grid;
    let committed = match context.committer.current_markers(grid, windows).await {
        Ok(committed) => committed,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the markers to recheck");
            summary.store_failed = true;
            summary.fatal = Some(e.to_string());
            return BTreeSet::new();
        }
    };
    let mut recheck = Recheck {
        context,
        cancel,
        lost,
        summary,
        confirmed: BTreeSet::new(),
    };
    for span in consecutive(&committed) {
        if recheck.span(span).await {
            break;
        }
    }
    recheck.confirmed
}

/// `windows` cut into runs of adjacent windows (each ends where the next starts).
fn consecutive(windows: &[(Window, WindowRecord)]) -> Vec<&[(Window, WindowRecord)]> {
    let mut spans = Vec::new();
    let mut from = 0;
    for i in 1..=windows.len() {
        if i == windows.len() || windows[i - 1].0.end != windows[i].0.start {
            if from < i {
                spans.push(&windows[from..i]);
            }
            from = i;
        }
    }
    spans
}

/// One recheck's descent through its spans.
struct Recheck<'a> {
    context: &'a Context<'a>,
    cancel: &'a CancellationToken,
    lost: &'a CancellationToken,
    summary: &'a mut Summary,
    /// The starts of the windows found holding what the lake holds, or repaired to it.
    confirmed: BTreeSet<i64>,
}

impl Recheck<'_> {
    /// Rechecks a span of consecutive committed windows; whether the run must stop.
    fn span<'s>(
        &'s mut self,
        span: &'s [(Window, WindowRecord)],
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + 's>> {
        Box::pin(async move {
            if self.cancel.is_cancelled() || self.lost.is_cancelled() {
                self.summary.interrupted |= self.cancel.is_cancelled();
                return true;
            }
            let [(window, marker)] = span else {
                return self.halves(span).await;
            };
            let outcome = recheck_one(self.context, window, marker).await;
            self.summary.windows_rechecked += 1;
            self.window_outcome(*window, outcome)
        })
    }

    /// Counts a span of several windows as one query: the same as the lake, it is done;
    /// otherwise each half is rechecked.
    async fn halves(&mut self, span: &[(Window, WindowRecord)]) -> bool {
        let whole = Window {
            start: span[0].0.start,
            end: span[span.len() - 1].0.end,
        };
        let lake: u64 = span.iter().map(|(_, marker)| marker.rows).sum();
        let context = self.context;
        match quick_count(&context.client, &context.config.filters, &whole).await {
            Ok(Some(api)) if api == lake => {
                tracing::debug!(from = %whole.id(), windows = span.len(), lake, "recheck: the span holds what the lake holds");
                self.summary.windows_rechecked += span.len() as u64;
                for (window, _) in span {
                    self.confirm(window);
                }
                return false;
            }
            Ok(_) => {}
            Err(e) => return record_failure(self.summary, span[0].0, &e.into()),
        }
        let (low, high) = span.split_at(span.len() / 2);
        self.span(low).await || self.span(high).await
    }

    /// Records `window` as confirmed: every grid window in it (a compacted day is several).
    fn confirm(&mut self, window: &Window) {
        let step = self.context.config.grid.seconds();
        let starts = (window.start..window.end).step_by(step as usize);
        self.confirmed.extend(starts);
    }

    /// Adds one window's recheck to the summary; whether the run must stop.
    fn window_outcome(&mut self, window: Window, outcome: Result<Found, WindowError>) -> bool {
        if let Ok(Found::Same | Found::Repaired { .. }) = outcome {
            self.confirm(&window);
        }
        let summary = &mut *self.summary;
        match outcome {
            Ok(Found::Same) => {}
            Ok(Found::Repaired { lake, api }) => {
                summary.windows_repaired += 1;
                tracing::warn!(window = %window.id(), lake, api, "recheck: Zendesk holds more records than the lake; window repaired");
            }
            Ok(Found::WouldDrop { lake, api, dropped }) => {
                summary.windows_api_fewer += 1;
                tracing::warn!(window = %window.id(), lake, api, dropped, "recheck: Zendesk holds new records but no longer some the lake holds; the window is left as it is (run `auditlake repair` to look at it)");
            }
            Ok(Found::ApiFewer { lake, api }) => {
                summary.windows_api_fewer += 1;
                tracing::warn!(window = %window.id(), lake, api, "recheck: Zendesk now returns fewer records than the lake holds; the lake keeps them");
            }
            Err(e) => return record_failure(summary, window, &e),
        }
        false
    }
}

/// What the recheck of one window found.
pub(crate) enum Found {
    Same,
    Repaired {
        lake: u64,
        api: u64,
    },
    ApiFewer {
        lake: u64,
        api: u64,
    },
    /// Zendesk holds more records, but no longer some the lake holds: not replaced.
    WouldDrop {
        lake: u64,
        api: u64,
        dropped: u64,
    },
}

/// Rechecks one committed window (its marker `current`): counted at the API, and replaced
/// when Zendesk holds more records and none fewer.
pub(crate) async fn recheck_one(
    context: &Context<'_>,
    window: &Window,
    current: &WindowRecord,
) -> Result<Found, WindowError> {
    let api = count_window(&context.client, &context.config.filters, window).await?;
    let lake = current.rows;
    if api == lake {
        return Ok(Found::Same);
    }
    if api < lake {
        return Ok(Found::ApiFewer { lake, api });
    }
    let mut parts = fetch_window(context, *window).await?.parts;
    let dropped = records_dropped(context, current, &mut parts).await?;
    if dropped > 0 {
        return Ok(Found::WouldDrop { lake, api, dropped });
    }
    let reason = format!("recheck: the API held {api} records, the lake {lake}");
    let change = Change::repair(*window, current, parts, &reason);
    context.committer.commit(change).await?;
    Ok(Found::Repaired { lake, api })
}

/// How many records of the window's current files a re-export no longer has: an archive keeps
/// what it holds, so a replacement that would drop any is not made.
pub(crate) async fn records_dropped(
    context: &Context<'_>,
    current: &WindowRecord,
    parts: &mut [RoutedPart],
) -> Result<u64, WindowError> {
    let fresh = ids_of_parts(parts)?;
    let held = ids_in_lake(context.committer.lake(), current).await?;
    Ok(held.iter().filter(|id| !fresh.contains(id)).count() as u64)
}
