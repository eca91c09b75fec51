//! The run's hold on the lake, from the first write to the last: the authenticated client is
//! made first (wrong credentials write nothing), then the lake is opened and the lease taken;
//! at the end the lease's renewal stops, its failure (if any) goes into the summary, the run's
//! record (`last_run.json`) is written while the lease still holds, and the lease is given up.

use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::error::RunError;
use super::summary::{Outcome, Summary};
use super::ExportConfig;
use crate::lake::commit::Committer;
use crate::lake::lease::LeaseError;
use crate::lake::manifest::LastRun;
use crate::lake::storage::Lake;
use crate::lake::{open_for_writing, Held};
use crate::units::time::Timestamp;
use crate::zendesk::{Client, RequestBudget};

/// The run's client, with its first access token minted when the credentials are an OAuth
/// client: before the lease, any marker or any file, so that wrong credentials write nothing.
pub(crate) async fn authenticated_client(config: &ExportConfig) -> Result<Client, RunError> {
    let budget = Arc::new(RequestBudget::new(
        config.api.max_requests_per_minute,
        config.api.rate_limit_share,
    ));
    let client = Client::new(config.api.client.clone(), budget)?;
    client
        .authenticate()
        .await
        .map_err(RunError::Authenticate)?;
    Ok(client)
}

/// The lease of the run's subdomain, held for the whole run.
pub(crate) struct Guard {
    held: Held,
    started: Instant,
    started_at: i64,
}

impl Guard {
    /// Takes the lease of `subdomain` in `lake` (opened for writing) as the run's id.
    pub(crate) async fn take(
        lake: &Lake,
        subdomain: &str,
        config: &ExportConfig,
    ) -> Result<Guard, RunError> {
        Guard::take_as(lake, subdomain, config.lease_ttl, &config.run_id).await
    }

    /// Takes the lease of `subdomain` in `lake` for `ttl`, as run `run_id`.
    pub(crate) async fn take_as(
        lake: &Lake,
        subdomain: &str,
        ttl: std::time::Duration,
        run_id: &str,
    ) -> Result<Guard, RunError> {
        let held = Held::take(lake, subdomain, ttl, run_id).await?;
        Ok(Guard {
            held,
            started: Instant::now(),
            started_at: chrono::Utc::now().timestamp(),
        })
    }

    /// Opens the export's destination (creating it if need be) and takes its lease.
    pub(crate) async fn take_for_export(config: &ExportConfig) -> Result<(Lake, Guard), RunError> {
        let lake = open_for_writing(&config.dest, &config.store).await?;
        let guard = Guard::take(&lake, &config.api.subdomain, config).await?;
        Ok((lake, guard))
    }

    /// Every write of the run, fenced by the lease.
    pub(crate) fn committer(&self) -> &Committer {
        self.held.committer()
    }

    /// Fires when the lease is lost: the run stops.
    pub(crate) fn lost(&self) -> CancellationToken {
        self.held.lost().clone()
    }

    /// Ends an export: the lease's failure goes into `summary`, which is then recorded as the
    /// subdomain's last run (unless the lease was lost, or the store failed) before the lease
    /// is given up.
    pub(crate) async fn finish_export(
        self,
        summary: &mut Summary,
        exit_code_of: fn(Outcome) -> u8,
    ) {
        summary.seconds = self.started.elapsed().as_secs_f64();
        let started_at = self.started_at;
        let (_, recorded) = self
            .held
            .release(|failure| {
                apply_lease_failure(summary, failure);
                (!summary.lease_lost && !summary.store_failed)
                    .then(|| last_run(summary, started_at, exit_code_of))
            })
            .await;
        match recorded {
            Some(Ok(run)) => summary.last_success_at = run.last_success_at,
            Some(Err(error)) => tracing::warn!(%error, "could not record the run for `status`"),
            None => {}
        }
    }

    /// Ends a run that records nothing (a repair); returns why the lease failed, if it did.
    pub(crate) async fn finish(self) -> Option<LeaseError> {
        self.held.release(|_| None).await.0
    }
}

/// A lease that failed while the run went on stops it: as a destination error (exit 4) when
/// the store failed while renewing, as a lost lease otherwise.
fn apply_lease_failure(summary: &mut Summary, failure: Option<&LeaseError>) {
    match failure {
        Some(e @ LeaseError::Storage(_)) => {
            summary.store_failed = true;
            summary.lease_lost = false;
            summary.fatal = Some(format!("could not renew the lease: {e}"));
        }
        Some(e) => {
            summary.lease_lost = true;
            summary.store_failed = false;
            summary.fatal = Some(format!("{e}; this run stopped"));
        }
        None => {}
    }
}

/// The record of the run that just ended, for `status`.
fn last_run(summary: &Summary, started_at: i64, exit_code_of: fn(Outcome) -> u8) -> LastRun {
    let finished_at = chrono::Utc::now().timestamp();
    let outcome = summary.outcome();
    let code = exit_code_of(outcome);
    LastRun {
        run_id: summary.run_id.clone(),
        started_at: Timestamp::from_seconds(started_at),
        finished_at: Timestamp::from_seconds(finished_at),
        exit_code: code,
        outcome: outcome.to_string(),
        last_success_at: (outcome == Outcome::Done).then_some(Timestamp::from_seconds(finished_at)),
        summary: summary.json(code),
    }
}
