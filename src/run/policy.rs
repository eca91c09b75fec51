//! `auditlake erase` and `auditlake expire`: the lake owner's decisions that data must go,
//! checked, recorded in the ledger and carried out under the lease (`lake/policy.rs`), and the
//! retention an export applies at its end (`--retention`).
//!
//! What can be told without writing is told first: the lake and its dataset, the signing key a
//! signed lake requires, and whether anything would change at all. A user id the lake does not
//! hold, or no window old enough, ends there ("nothing to erase"), with nothing written.

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::error::RunError;
use super::guard::Guard;
use super::{ChangeConfig, EraseConfig, ExpireConfig};
use crate::lake::commit::Committer;
use crate::lake::lease::LeaseError;
use crate::lake::ledger::{Changed, Decision};
use crate::lake::manifest::{Dataset, Manifest, ManifestError};
use crate::lake::storage::Lake;
use crate::plan::window::{Grid, Window};
use crate::table::erase::Erasure;
use crate::units::time::format_rfc3339;
use crate::verify::VerifyError;

/// What `erase` or `expire` did, or with `--dry-run` would do.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyOutcome {
    pub subdomain: String,
    /// `erase` or `expire`.
    pub action: &'static str,
    pub dry_run: bool,
    /// The ledger entry recorded (none when nothing changed, or dry).
    pub ledger_entry: Option<u64>,
    /// The windows changed (or that would change): rows changed (erase: the users' records;
    /// expire: the rows removed).
    pub windows: Vec<Changed>,
    pub rows: u64,
    /// Other copies removed: older generations, files kept for older Delta versions.
    pub files_purged: u64,
    /// The retention floor after an expiry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub floor: Option<String>,
}

impl PolicyOutcome {
    fn nothing(config: &ChangeConfig, action: &'static str) -> PolicyOutcome {
        PolicyOutcome {
            subdomain: config.subdomain.clone(),
            action,
            dry_run: config.dry_run,
            ledger_entry: None,
            windows: Vec::new(),
            rows: 0,
            files_purged: 0,
            floor: None,
        }
    }
}

/// The lake and its dataset, for a change; a signed lake's key is required of a change that
/// writes, before anything is written.
async fn open_lake(config: &ChangeConfig) -> Result<(Lake, Dataset, Grid), RunError> {
    let no_lake = || {
        RunError::Verify(VerifyError::NoDataset {
            dest: config.dest.clone(),
            subdomain: config.subdomain.clone(),
        })
    };
    let lake = Lake::open_existing(&config.dest, &config.store)?.ok_or_else(no_lake)?;
    let manifest = Manifest::new(lake.clone(), &config.subdomain);
    let dataset = manifest.dataset().await?.ok_or_else(no_lake)?;
    let grid = Grid::parse(&dataset.window)
        .map_err(|_| RunError::Verify(VerifyError::Grid(dataset.window.clone())))?;
    let key = config.signer.as_ref().map(|s| s.fingerprint());
    if let Some(pinned) = dataset.signing_key.as_deref() {
        if !config.dry_run && key != Some(pinned) {
            return Err(RunError::Manifest(ManifestError::Mismatch {
                dest: lake.display().to_string(),
                subdomain: config.subdomain.clone(),
                differences: format!("the digest chain is signed with key {pinned}: an erasure or expiry is a link of it, so give its --signing-key-file"),
            }));
        }
    }
    Ok((lake, dataset, grid))
}

/// Runs `work` on the lake's committer, under the lease, stopping on `cancel` or a lost lease.
async fn leased<T, F, Fut>(
    lake: &Lake,
    config: &ChangeConfig,
    dataset: &Dataset,
    cancel: CancellationToken,
    work: F,
) -> Result<T, RunError>
where
    F: FnOnce(Committer) -> Fut,
    Fut: std::future::Future<Output = Result<T, RunError>>,
{
    lake.verify_conditional_create().await?;
    let guard = Guard::take_as(lake, &config.subdomain, config.lease_ttl, &config.run_id).await?;
    let lost = guard.lost();
    let committer = guard.committer().clone();
    let outcome = async {
        let committer = committer
            .with_signer(config.signer.clone())
            .with_tmp_dir(&config.tmp_dir)
            .open_table(dataset.table_format)
            .await?;
        work(committer).await
    };
    let outcome = tokio::select! {
        outcome = outcome => outcome,
        () = cancel.cancelled() => Err(RunError::Interrupted),
        () = lost.cancelled() => Err(RunError::Lease(LeaseError::Lost {
            subdomain: config.subdomain.clone(),
            holder: "another run".into(),
        })),
    };
    match guard.finish().await {
        Some(e) if outcome.is_ok() || lost.is_cancelled() => Err(RunError::Lease(e)),
        _ => outcome,
    }
}

/// `auditlake erase`.
pub async fn erase(
    config: EraseConfig,
    cancel: CancellationToken,
) -> Result<PolicyOutcome, RunError> {
    let change = &config.change;
    let (lake, dataset, grid) = open_lake(change).await?;
    let erasure = Erasure::new(config.user_ids.iter().copied());
    let reader = Committer::reading(lake.clone(), &change.subdomain).with_tmp_dir(&change.tmp_dir);
    let plan = reader.erase_plan(grid, &erasure).await?;
    let mut outcome = PolicyOutcome::nothing(change, "erase");
    if plan.rows() == 0 || change.dry_run {
        outcome.rows = plan.rows();
        outcome.windows = plan
            .windows
            .iter()
            .map(|h| Changed {
                window: h.window.id(),
                generation: h.record.generation + u32::from(!h.open),
                rows: h.rows,
            })
            .collect();
        return Ok(outcome);
    }
    let decision = Decision::Erase {
        user_ids: config.user_ids.clone(),
    };
    leased(&lake, change, &dataset, cancel, |committer| async move {
        let state = committer.begin(grid, 0).await?;
        drop(state);
        let entry = committer.decide(decision, &change.reason).await?;
        let done = committer.carry_out(grid, &entry).await?;
        outcome.ledger_entry = Some(entry.seq);
        outcome.rows = done.windows.iter().map(|w| w.rows).sum();
        outcome.windows = done.windows;
        outcome.files_purged = done.files_purged;
        Ok(outcome)
    })
    .await
}

/// `auditlake expire`.
pub async fn expire(
    config: ExpireConfig,
    cancel: CancellationToken,
) -> Result<PolicyOutcome, RunError> {
    let change = &config.change;
    let (lake, dataset, grid) = open_lake(change).await?;
    // Whole windows: those that end at or before `before`.
    let floor = grid.floor(config.before);
    let reader = Committer::reading(lake.clone(), &change.subdomain);
    // The newest open window is the one still growing; older ones (a close that failed) may
    // expire.
    let open = reader.manifest().open_windows().await?;
    if let Some(open) = open.iter().max_by(|a, b| a.window.cmp(&b.window)) {
        let start = open.span().map_or(i64::MAX, |s| s.start);
        if floor > start {
            return Err(RunError::Refused(format!(
                "--before {} would expire the open window ({} ..): only closed windows expire",
                format_rfc3339(config.before),
                open.start
            )));
        }
    }
    let expiring = expiring(&reader, grid, floor).await?;
    let mut outcome = PolicyOutcome::nothing(change, "expire");
    outcome.floor = Some(format_rfc3339(floor));
    if expiring.is_empty() || change.dry_run {
        outcome.rows = expiring.iter().map(|w| w.rows).sum();
        outcome.windows = expiring;
        return Ok(outcome);
    }
    leased(&lake, change, &dataset, cancel, |committer| async move {
        committer.begin(grid, 0).await?;
        let done = expire_to(&committer, grid, floor, &change.reason).await?;
        outcome.ledger_entry = Some(done.0);
        outcome.rows = done.1.windows.iter().map(|w| w.rows).sum();
        outcome.windows = done.1.windows;
        outcome.files_purged = done.1.files_purged;
        Ok(outcome)
    })
    .await
}

/// Records an expiry to `floor` in the ledger and carries it out; the entry's number and end.
pub(crate) async fn expire_to(
    committer: &Committer,
    grid: Grid,
    floor: i64,
    reason: &str,
) -> Result<(u64, crate::lake::ledger::Done), RunError> {
    let decision = Decision::Expire {
        before: crate::units::time::Timestamp::from_seconds(floor),
    };
    let entry = committer.decide(decision, reason).await?;
    let done = committer.carry_out(grid, &entry).await?;
    Ok((entry.seq, done))
}

/// The closed windows ending at or before `floor` that still hold files (what an expiry to it
/// changes).
async fn expiring(reader: &Committer, grid: Grid, floor: i64) -> Result<Vec<Changed>, RunError> {
    let generations = reader.manifest().generations().await?;
    let view = reader.view(grid, &generations, None).await?;
    let mut out = Vec::new();
    for (&start, marker) in &view.standing {
        let span = marker.span().unwrap_or(Window {
            start,
            end: start + grid.seconds(),
        });
        if span.end <= floor && !marker.expired && !marker.files.is_empty() {
            out.push(Changed {
                window: span.id(),
                generation: marker.generation + 1,
                rows: marker.rows,
            });
        }
    }
    for record in &view.open {
        if let Some(span) = record
            .span()
            .filter(|s| s.end <= floor && !record.files.is_empty())
        {
            out.push(Changed {
                window: span.id(),
                generation: 1,
                rows: record.rows,
            });
        }
    }
    for torn in view.torn.values().filter(|t| t.span.end <= floor) {
        out.push(Changed {
            window: torn.span.id(),
            generation: 0,
            rows: 0,
        });
    }
    Ok(out)
}

/// `export --retention`: expires the closed windows that ended longer than `retention` before
/// now, once the floor (`floor`, the lake's so far) moves; a failure is the run's, as a
/// window's would be.
pub(crate) async fn retain(
    context: &super::Context<'_>,
    retention: std::time::Duration,
    floor: Option<i64>,
    summary: &mut super::Summary,
) {
    let grid = context.config.grid;
    let now = chrono::Utc::now().timestamp();
    let wanted = grid.floor(now - i64::try_from(retention.as_secs()).unwrap_or(i64::MAX / 2));
    summary.retention_floor = floor.map(format_rfc3339);
    if floor.is_some_and(|f| f >= wanted) {
        return;
    }
    let reason = format!(
        "--retention {}",
        crate::units::duration::format_duration(retention.as_secs())
    );
    match expire_to(&context.committer, grid, wanted, &reason).await {
        Ok((_, done)) => {
            summary.windows_expired = done.windows.len() as u64;
            summary.retention_floor = Some(format_rfc3339(wanted));
            tracing::info!(windows = done.windows.len(), floor = %format_rfc3339(wanted), "closed windows past the retention expired");
        }
        Err(e) => {
            tracing::error!(error = %e, "the retention could not be applied; the next run takes it up");
            summary.store_failed |= matches!(&e, RunError::Storage(_))
                || matches!(&e, RunError::Commit(c) if c.is_storage());
            summary.failures.push(super::Failure {
                window: "the retention".into(),
                error: e.to_string(),
            });
            summary.windows_failed += 1;
        }
    }
}
