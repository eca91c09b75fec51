//! The lake as a run writes it: one face over storage, lease and commit.
//!
//! A run opens the lake once ([`open_for_writing`]), takes the lease once ([`Held::take`]), and
//! from then on writes only through the [`Committer`] the lease fences, and gives the lease up
//! once ([`Held::release`]), writing the run's last record first, while the lease still holds.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::lake::commit::{CommitError, Committer};
use crate::lake::lease::{holder_name, Lease, LeaseError};
use crate::lake::manifest::{LastRun, Manifest};
use crate::lake::storage::{Lake, StorageError, StoreOptions};

/// Opens the destination for a run that writes, and proves it can create-if-absent (markers and
/// leases rely on it) before anything is written.
pub async fn open_for_writing(dest: &str, store: &StoreOptions) -> Result<Lake, StorageError> {
    let lake = Lake::open(dest, store)?;
    lake.verify_conditional_create().await?;
    Ok(lake)
}

/// The lease of one subdomain, held and renewed in the background, and the committer it fences.
pub struct Held {
    committer: Committer,
    renewal: JoinHandle<Lease>,
    stop_renewing: CancellationToken,
    lost: CancellationToken,
}

impl Held {
    /// Takes the lease of `subdomain` in `lake` as the run `run_id` (the id its logs, summary and
    /// last-run record carry), and keeps it renewed until [`Held::release`].
    pub async fn take(
        lake: &Lake,
        subdomain: &str,
        ttl: Duration,
        run_id: &str,
    ) -> Result<Held, LeaseError> {
        let lease = Lease::acquire(lake, subdomain, ttl, &holder_name(run_id), run_id).await?;
        let committer = Committer::new(
            lake.clone(),
            Manifest::new(lake.clone(), subdomain),
            subdomain,
            lease.fence(),
            run_id,
        );
        let stop_renewing = CancellationToken::new();
        let lost = CancellationToken::new();
        let renewal = lease.keep(stop_renewing.clone(), lost.clone());
        Ok(Held {
            committer,
            renewal,
            stop_renewing,
            lost,
        })
    }

    /// Every write of the run goes through this committer, fenced by the lease.
    pub fn committer(&self) -> &Committer {
        &self.committer
    }

    /// Fires when the lease is lost (taken over, or not renewed in time): the run stops.
    pub fn lost(&self) -> &CancellationToken {
        &self.lost
    }

    /// Stops renewing, records the run (`last_run`, unless the lease was lost or there is
    /// nothing to record) while the lease still holds, then gives the lease up. Returns why
    /// renewal stopped early, if it did, and the run's record as written.
    ///
    /// `last_run` is built from that failure (it decides the run's exit code), hence a closure.
    pub async fn release(
        self,
        last_run: impl FnOnce(Option<&LeaseError>) -> Option<LastRun>,
    ) -> (Option<LeaseError>, Option<Result<LastRun, CommitError>>) {
        self.stop_renewing.cancel();
        let mut lease = self.renewal.await.expect("the renewal task does not panic");
        let failure = lease.take_failure();
        if self.lost.is_cancelled() {
            return (failure, None);
        }
        // Written while the lease holds: `last_run.json` is a read-modify-write, and a run that
        // overlapped this one (it took the lease over) must not have its record overwritten.
        let recorded = match last_run(failure.as_ref()) {
            Some(run) => Some(self.committer.record_run(run).await),
            None => None,
        };
        if let Err(e) = lease.release().await {
            tracing::warn!(error = %e, "could not release the lease; it expires by itself");
        }
        (failure, recorded)
    }
}
