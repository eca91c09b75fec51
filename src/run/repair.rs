//! `auditlake repair`: what verify finds wrong is mended under the lease: stray files removed,
//! damaged windows (and, with `--against-api`, windows Zendesk holds more of) re-exported and
//! replaced atomically; interrupted repairs are finished first.

use super::error::{RunError, WindowError};
use super::guard::{authenticated_client, Guard};
use super::pipeline::fetch_window;
use super::progress::NoProgress;
use super::recheck::records_dropped;
use super::summary::Failure;
use super::Context;
use super::{ExportConfig, RepairConfig};
use crate::lake::change::Change;
use crate::lake::commit::{CommitError, Committer};
use crate::lake::lease::LeaseError;
use crate::lake::manifest::{Manifest, ManifestError, WindowRecord};
use crate::lake::storage::Lake;
use crate::plan::window::{self, Window};
use crate::verify::{verify, Kind, Report, VerifyError};
use crate::zendesk::Client;
use serde::Serialize;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio_util::sync::CancellationToken;

/// What `repair` did.
#[derive(Debug, Clone, Serialize)]
pub struct RepairOutcome {
    /// What verify found before repairing.
    pub before: Report,
    /// Windows re-exported under a new generation.
    pub windows_repaired: Vec<String>,
    /// Files removed because no marker named them.
    pub files_removed: u64,
    /// Interrupted repairs finished first.
    pub repairs_converged: u64,
    /// Windows that could not be repaired, with why.
    pub failures: Vec<Failure>,
    /// What verify found after repairing (lake only: the API is not asked twice).
    pub after: Report,
    pub requests: u64,
}

/// Repairs what verify finds wrong: removes files no marker names and re-exports damaged
/// windows (and, with `--against-api`, windows where Zendesk holds more records), each replaced
/// atomically, under the lease.
pub async fn repair(
    config: RepairConfig,
    cancel: CancellationToken,
) -> Result<RepairOutcome, RunError> {
    let mut export_config = config.export;
    let subdomain = config.check.subdomain.clone();
    let no_lake = || {
        RunError::Verify(VerifyError::NoDataset {
            dest: export_config.dest.clone(),
            subdomain: subdomain.clone(),
        })
    };
    let lake =
        Lake::open_existing(&export_config.dest, &export_config.store)?.ok_or_else(no_lake)?;
    let client = authenticated_client(&export_config).await?;
    lake.verify_conditional_create().await?;
    let manifest = Manifest::new(lake.clone(), &subdomain);
    let dataset = manifest.dataset().await?.ok_or_else(|| {
        RunError::Verify(VerifyError::NoDataset {
            dest: lake.display().to_string(),
            subdomain: subdomain.clone(),
        })
    })?;
    export_config.grid = window::Grid::parse(&dataset.window)
        .map_err(|_| RunError::Verify(VerifyError::Grid(dataset.window.clone())))?;
    export_config.filters = dataset.filters.clone();
    export_config.table_format = dataset.table_format;
    export_config.api.subdomain = subdomain.clone();
    // A repair appends to the digest chain: with the key the lake pins, or not at all.
    let key = export_config.signer.as_ref().map(|s| s.fingerprint());
    if let Some(pinned) = dataset.signing_key.as_deref().filter(|&p| key != Some(p)) {
        return Err(RunError::Manifest(ManifestError::Mismatch {
            dest: lake.display().to_string(),
            subdomain: subdomain.clone(),
            differences: format!("the digest chain is signed with key {pinned}: run repair with its --signing-key-file"),
        }));
    }

    let guard = Guard::take(&lake, &subdomain, &export_config).await?;
    let committer = guard.committer().clone();
    let lost = guard.lost();
    let outcome = tokio::select! {
        outcome = repair_leased(export_config, client, &config.check, lake, committer) => outcome,
        () = cancel.cancelled() => Err(RunError::Interrupted),
        () = lost.cancelled() => Err(RunError::Lease(LeaseError::Lost {
            subdomain: subdomain.clone(),
            holder: "another run".into(),
        })),
    };
    match guard.finish().await {
        Some(e) if outcome.is_ok() || lost.is_cancelled() => Err(RunError::Lease(e)),
        _ => outcome,
    }
}

pub(crate) async fn repair_leased(
    config: ExportConfig,
    client: Client,
    check: &crate::run::VerifyConfig,
    lake: Lake,
    committer: Committer,
) -> Result<RepairOutcome, RunError> {
    let committer = committer
        .with_signer(config.signer.clone())
        .open_table(config.table_format)
        .await?;
    let state = committer.begin(config.grid, 0).await?;
    let (generations, repairs_converged) = (state.generations, state.repairs_converged);
    // What exports learned of the API makes verify's counts cheaper too.
    client
        .created_at_bounds()
        .assume(state.facts.created_at_bounds);
    let api = check.api.is_some().then_some(&client);
    let before = verify(&lake, &check.subdomain, &check.options, api).await?;

    let mut files_removed = 0;
    for path in before.files_to_remove() {
        tracing::info!(path, "removing a file that no marker names");
        committer.remove_stray(path).await?;
        files_removed += 1;
    }
    let context = Context {
        config,
        client,
        committer,
        fetched: AtomicU64::new(0),
        open_state: Vec::new(),
        progress: &NoProgress,
    };
    let (windows_repaired, mut failures) = repair_windows(&context, &before, &generations).await;
    if !windows_repaired.is_empty() {
        // The repairs stand; a log left behind them is converged by the next run (and `after`
        // says so).
        if let Err(e) = context
            .committer
            .converge_log_again(context.config.grid)
            .await
        {
            tracing::error!(error = %e, "the Delta log could not be converged after the repair");
            failures.push(Failure {
                window: "the Delta log".into(),
                error: e.to_string(),
            });
        }
    }
    // An erasure or expiry that waited for a damaged window goes on now that it is mended.
    if let Err(e) = context.committer.finish_pending(context.config.grid).await {
        tracing::error!(error = %e, "an interrupted erasure or expiry could not be finished");
        failures.push(Failure {
            window: "the erasure ledger".into(),
            error: e.to_string(),
        });
    }
    let after = verify(&lake, &check.subdomain, &check.options, None).await?;
    Ok(RepairOutcome {
        before,
        windows_repaired,
        files_removed,
        repairs_converged,
        failures,
        after,
        requests: context.client.stats().requests.load(Ordering::Relaxed),
    })
}

/// Re-exports the windows `before` found damaged (or short at Zendesk), one by one; the windows
/// repaired and the failures. Stops at a failure that would fail every window (the store, the
/// lease, the API refusing the run).
async fn repair_windows(
    context: &Context<'_>,
    before: &Report,
    generations: &std::collections::BTreeMap<i64, u32>,
) -> (Vec<String>, Vec<Failure>) {
    let mut windows_repaired = Vec::new();
    let mut failures = Vec::new();
    for start in before.windows_to_reexport() {
        // As verify saw it: a compacted day is re-exported whole.
        let end = before
            .windows
            .iter()
            .find(|w| w.start == start)
            .map(|w| w.end);
        let window = Window {
            start,
            end: end.unwrap_or(start + context.config.grid.seconds()),
        };
        let kinds: BTreeSet<Kind> = before
            .findings
            .iter()
            .filter(|f| f.window.as_deref() == Some(window.id().as_str()))
            .map(|f| f.kind)
            .collect();
        let damaged = kinds
            .iter()
            .any(|k| k.needs_reexport() && *k != Kind::ApiMore);
        let names: Vec<String> = kinds.iter().map(|k| format!("{k:?}")).collect();
        let reason = format!("repair: {}", names.join(", "));
        let generation = generations.get(&start).copied();
        match repair_window(context, &window, generation, &reason, damaged).await {
            Ok(record) => {
                tracing::info!(window = %window.id(), generation = record.generation, rows = record.rows, "window repaired");
                windows_repaired.push(window.id());
            }
            Err(e) => {
                tracing::error!(window = %window.id(), error = %e, "window not repaired");
                let stop = e.is_storage()
                    || e.is_lease()
                    || matches!(&e, WindowError::Api(a) if a.is_fatal_for_run());
                failures.push(Failure {
                    window: window.id(),
                    error: e.to_string(),
                });
                if stop {
                    break;
                }
            }
        }
    }
    (windows_repaired, failures)
}

/// Re-exports one committed window and replaces it atomically.
pub(crate) async fn repair_window(
    context: &Context<'_>,
    window: &Window,
    generation: Option<u32>,
    reason: &str,
    damaged: bool,
) -> Result<WindowRecord, WindowError> {
    let current = context
        .committer
        .marker_to_replace(window, generation.unwrap_or(1))
        .await?;
    let mut parts = fetch_window(context, *window).await?.parts;
    // Never drop what the lake holds: intact files (only a count that grew at Zendesk) are read
    // whole here; of a damaged window (a marker that does not parse, a file missing or cut), the
    // commit keeps every record its readable files hold ([`Committer::commit`]).
    if !damaged {
        let dropped = records_dropped(context, &current, &mut parts).await?;
        if dropped > 0 {
            let window = window.id();
            return Err(CommitError::WouldDrop { window, dropped }.into());
        }
    }
    let rows: u64 = parts.iter().map(|p| p.part.rows).sum();
    if rows < current.rows {
        tracing::warn!(window = %window.id(), before = current.rows, now = rows, "the re-export holds fewer records than the window's marker recorded");
    }
    let change = Change::repair(*window, &current, parts, reason);
    Ok(context.committer.commit(change).await?.0)
}
