//! `--recheck`: recent committed windows counted again at the API, and repaired where Zendesk
//! now holds more records than the lake (records that became visible after the settle lag).

use super::error::WindowError;
use super::pipeline::fetch_window;
use super::progress::NoProgress;
use super::summary::{record_failure, Summary};
use super::Context;
use crate::lake::commit::{ids_in_lake, ids_of_parts};
use crate::lake::manifest::WindowRecord;
use crate::plan::window::Window;
use crate::table::route::RoutedPart;
use crate::zendesk::count::count_window;
use tokio_util::sync::CancellationToken;

/// Re-counts `windows` against the API and repairs those where Zendesk now holds more records
/// than the lake (records that became visible after the settle lag).
pub(crate) async fn recheck_and_repair(
    context: &Context,
    windows: &[Window],
    cancel: &CancellationToken,
    lost: &CancellationToken,
    summary: &mut Summary,
) {
    let manifest = context.committer.manifest();
    let generations = match manifest.generations().await {
        Ok(g) => g,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the markers to recheck");
            summary.store_failed = true;
            summary.fatal = Some(e.to_string());
            return;
        }
    };
    for window in windows {
        if cancel.is_cancelled() || lost.is_cancelled() {
            summary.interrupted |= cancel.is_cancelled();
            return;
        }
        let Some(&generation) = generations.get(&window.start) else {
            continue;
        };
        let outcome = recheck_one(context, window, Some(generation)).await;
        summary.windows_rechecked += 1;
        match outcome {
            Ok(Recheck::Same) => {}
            Ok(Recheck::Repaired { lake, api }) => {
                summary.windows_repaired += 1;
                tracing::warn!(window = %window.id(), lake, api, "recheck: Zendesk holds more records than the lake; window repaired");
            }
            Ok(Recheck::WouldDrop { lake, api, dropped }) => {
                summary.windows_api_fewer += 1;
                tracing::warn!(window = %window.id(), lake, api, dropped, "recheck: Zendesk holds new records but no longer some the lake holds; the window is left as it is (run `auditlake repair` to look at it)");
            }
            Ok(Recheck::ApiFewer { lake, api }) => {
                summary.windows_api_fewer += 1;
                tracing::warn!(window = %window.id(), lake, api, "recheck: Zendesk now returns fewer records than the lake holds; the lake keeps them");
            }
            Err(e) => {
                if record_failure(summary, *window, &e) {
                    return;
                }
            }
        }
    }
}

/// What a recheck found.
pub(crate) enum Recheck {
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

pub(crate) async fn recheck_one(
    context: &Context,
    window: &Window,
    generation: Option<u32>,
) -> Result<Recheck, WindowError> {
    let manifest = context.committer.manifest();
    let Some(current) = (match generation {
        Some(g) => manifest.marker(window, g).await?,
        None => None,
    }) else {
        return Ok(Recheck::Same);
    };
    let api = count_window(&context.client, &context.config.filters, window).await?;
    let lake = current.rows;
    if api == lake {
        return Ok(Recheck::Same);
    }
    if api < lake {
        return Ok(Recheck::ApiFewer { lake, api });
    }
    let (mut parts, _) = fetch_window(context, *window, &NoProgress).await?;
    let dropped = records_dropped(context, &current, &mut parts).await?;
    if dropped > 0 {
        return Ok(Recheck::WouldDrop { lake, api, dropped });
    }
    let reason = format!("recheck: the API held {api} records, the lake {lake}");
    context
        .committer
        .replace(window, &current, parts, &reason)
        .await?;
    Ok(Recheck::Repaired { lake, api })
}

/// How many records of the window's current files a re-export no longer has: an archive keeps
/// what it holds, so a replacement that would drop any is not made.
pub(crate) async fn records_dropped(
    context: &Context,
    current: &WindowRecord,
    parts: &mut [RoutedPart],
) -> Result<u64, WindowError> {
    let fresh = ids_of_parts(parts)?;
    let held = ids_in_lake(context.committer.lake(), current).await?;
    Ok(held.iter().filter(|id| !fresh.contains(id)).count() as u64)
}
