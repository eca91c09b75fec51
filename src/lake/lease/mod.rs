//! One run per (lake, subdomain) at a time: a lease in the manifest.
//!
//! The lease is a chain of generations, `_auditlake/subdomain=SUB/lease/<generation>.json`, each
//! written with create-if-absent; the highest generation is the lease. Taking over an expired lease
//! and renewing one are the same move, creating generation N+1, so when a holder renews while
//! another run takes over, exactly one create succeeds and the loser knows it lost. This needs only
//! the conditional create that window markers already rely on, so it works the same on local disk
//! (which has no conditional update) and on object stores. Generations never restart: releasing
//! writes a last, already expired generation instead of deleting the chain, so a holder that was
//! frozen past its expiry cannot sneak back in with a stale generation number.
//!
//! **Our own write, reported as a failure.** Every record names the run that wrote it (a random
//! run id, unique per [`Lease::acquire`]). A create-if-absent that applied but whose answer was lost
//! (a timeout or a 5xx after the store wrote it) is retried by the store client and then answers
//! "already exists"; when the generation found there carries our run id, the write was ours and
//! counts as done — in acquire, renew and release alike. A write that fails outright is read back
//! the same way before it is reported. A renewal that fails because the store is down is a store
//! error ([`LeaseError::Storage`]), never "another run took the lease".
//!
//! **Fencing.** Renewal alone cannot stop a run that was frozen (VM pause, SIGSTOP) past its expiry:
//! when it wakes, its workers would go on uploading, deleting and committing over the windows of the
//! run that took over. So every destructive step asks a [`Fence`] first. The fence is local and
//! cheap (no store request): it is open while the last confirmed write of the lease, counted from
//! the moment its request was *sent*, plus the time to live minus a safety margin (see
//! [`fence_margin`]) is still ahead on this machine's monotonic clock, and it closes for good once
//! the lease is known lost or released.
//!
//! **A holder that is provably dead.** A run killed with `kill -9` cannot release its lease, which
//! would block the next run for the whole time to live. Each record therefore also names the
//! holder's process: host name, boot id, pid namespace, user, pid and the process's start time. When
//! a lease that has not expired was written on this same machine (same host name, boot id and pid
//! namespace, same user so that the process table is fully visible) and its process is gone — no
//! `/proc/<pid>`, or that pid now belongs to a process started at another time (which covers a pid
//! reused by this very run) — the lease is taken over at once, with a warning naming the holder and
//! why it is known dead. Anything less certain (another machine, an old record without these
//! fields, a system without `/proc`, or this very process, whose other lease objects may still be
//! at work) waits for expiry as before: a live holder is never taken over.

use std::time::Duration;

use bytes::Bytes;
use object_store::path::Path;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

mod fence;
mod holder;

use fence::Closed;
pub use fence::{fence_margin, min_lease_ttl, renewal_allowance, Fence, MIN_LOCAL_LEASE_TTL};
pub use holder::{holder_name, ProcessIdentity};
use holder::{known_dead, this_process};

use crate::lake::layout;
use crate::lake::storage::{Created, Lake, StorageError};
use crate::units::duration::Span;
use crate::units::time::Timestamp;

/// `--lease-ttl`'s default: a killed run blocks the next one at most this long, and it is above
/// the shortest lease that [`crate::lake::storage::DEFAULT_STORE_TIMEOUT`] allows on an object store.
pub const DEFAULT_LEASE_TTL: Span = Span::minutes(10);

/// Attempts to settle a race with other runs acquiring at the same moment.
const ACQUIRE_ATTEMPTS: u32 = 8;

/// Why the lease could not be had or kept.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("another run holds the lease on {dest} for subdomain {subdomain:?}: {holder}, since {since}, renewed {renewed}, expires {expires} unless renewed")]
    Held {
        dest: String,
        subdomain: String,
        holder: String,
        since: String,
        renewed: String,
        expires: String,
    },
    #[error("lost the lease on subdomain {subdomain:?} to {holder}: this run stopped renewing in time (was it paused?)")]
    Lost { subdomain: String, holder: String },
    /// The fence closed: by this machine's clock the lease may have expired for other runs.
    #[error("this run's lease on subdomain {subdomain:?} expired at {expired_at} (the process was paused or the store too slow to renew); stopping before writing")]
    Expired {
        subdomain: String,
        expired_at: String,
    },
    /// The fence closed because this run released its lease.
    #[error("this run already released its lease on subdomain {0:?}; stopping before writing")]
    Released(String),
    #[error("lease file {path} is not valid: {reason}")]
    Corrupt { path: String, reason: String },
    #[error("could not settle the lease on subdomain {0:?}: other runs keep racing for it")]
    Contended(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// One generation of the lease, as stored.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LeaseRecord {
    pub generation: u64,
    /// Who holds it: host, process id and a per-run random tag. Empty once released.
    pub holder: String,
    pub acquired_at: Timestamp,
    pub renewed_at: Timestamp,
    /// When another run may take the lease over, in UTC seconds (as every version writes it).
    #[serde(with = "crate::units::time::seconds")]
    pub expires_at: Timestamp,
    /// The run that wrote this generation, unique per acquire: tells our own write, answered
    /// "already exists" after a retry, from another run's. Empty in leases of older versions.
    #[serde(default)]
    pub run_id: String,
    /// The holder's process, to take over at once a lease whose holder is provably dead. Absent in
    /// leases of older versions and where it cannot be known (no `/proc`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessIdentity>,
}

/// A held lease.
#[derive(Debug)]
pub struct Lease {
    lake: Lake,
    subdomain: String,
    ttl: Duration,
    current: LeaseRecord,
    fence: Fence,
    /// When the first request for a generation not yet confirmed was sent: if a failed write
    /// applied after all, the stored expiry counts from that earlier moment.
    pending: Option<(u64, Instant, i64)>,
    /// Why [`Lease::keep`] stopped renewing, for the run's outcome.
    failure: Option<LeaseError>,
}

pub(super) fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Lease {
    /// Takes the lease for `subdomain` as the run `run_id` (the id its logs and summary carry),
    /// or says who holds it.
    pub async fn acquire(
        lake: &Lake,
        subdomain: &str,
        ttl: Duration,
        holder: &str,
        run_id: &str,
    ) -> Result<Lease, LeaseError> {
        let run_id = run_id.to_string();
        for _ in 0..ACQUIRE_ATTEMPTS {
            let latest = latest(lake, subdomain).await?;
            let next_generation = latest.as_ref().map_or(1, |l| l.generation + 1);
            if let Some(held) = &latest {
                if !held.holder.is_empty() && held.expires_at.seconds() > now() {
                    let Some(why) = known_dead(held) else {
                        return Err(LeaseError::Held {
                            dest: lake.display().to_string(),
                            subdomain: subdomain.to_string(),
                            holder: held.holder.clone(),
                            since: held.acquired_at.to_string(),
                            renewed: held.renewed_at.to_string(),
                            expires: held.expires_at.to_string(),
                        });
                    };
                    tracing::warn!(
                        previous_holder = %held.holder,
                        why_dead = %why,
                        expires = %held.expires_at,
                        "taking over the lease at once: its holder is dead on this machine"
                    );
                } else if !held.holder.is_empty() {
                    tracing::warn!(
                        previous_holder = %held.holder,
                        expired = %held.expires_at,
                        "taking over an expired lease (its run stopped renewing it)"
                    );
                }
            }
            // Taken before the record's wall-clock stamp: the fence never outlasts `expires_at`.
            let sent = Instant::now();
            let sent_wall = now();
            let stamp = Timestamp::from_seconds(sent_wall);
            let record = LeaseRecord {
                generation: next_generation,
                holder: holder.to_string(),
                acquired_at: stamp,
                renewed_at: stamp,
                expires_at: Timestamp::from_seconds(sent_wall + ttl.as_secs() as i64),
                run_id: run_id.clone(),
                process: this_process(),
            };
            if let Written::Ours(record) = write_generation(lake, subdomain, &record).await? {
                if highest(lake, subdomain).await? == Some(next_generation) {
                    let lease = Lease {
                        lake: lake.clone(),
                        subdomain: subdomain.to_string(),
                        ttl,
                        fence: Fence::new(subdomain, ttl, sent, sent_wall),
                        current: record,
                        pending: None,
                        failure: None,
                    };
                    lease.prune().await;
                    return Ok(lease);
                }
            }
            // Lost a race: another run created this generation, or a higher one (it read the
            // chain after ours was read). The next round reads who holds it now.
        }
        Err(LeaseError::Contended(subdomain.to_string()))
    }

    /// The lease as last written.
    pub fn record(&self) -> &LeaseRecord {
        &self.current
    }

    /// The fence every destructive step of the run checks first.
    pub fn fence(&self) -> Fence {
        self.fence.clone()
    }

    /// Why [`Lease::keep`] stopped renewing before it was told to, once: a [`LeaseError::Lost`]
    /// when another run took the lease over, a [`LeaseError::Storage`] when the store failed
    /// every renewal until the lease was about to expire.
    pub fn take_failure(&mut self) -> Option<LeaseError> {
        self.failure.take()
    }

    /// Extends the lease by its time to live.
    pub async fn renew(&mut self) -> Result<(), LeaseError> {
        let generation = self.current.generation + 1;
        // Taken before the record's wall-clock stamp: the fence never outlasts `expires_at`.
        let (sent, sent_wall) = match self.pending {
            Some((g, first, first_wall)) if g == generation => (first, first_wall),
            _ => (Instant::now(), now()),
        };
        self.pending = Some((generation, sent, sent_wall));
        let stamp = now();
        let record = LeaseRecord {
            generation,
            renewed_at: Timestamp::from_seconds(stamp),
            expires_at: Timestamp::from_seconds(stamp + self.ttl.as_secs() as i64),
            ..self.current.clone()
        };
        match write_generation(&self.lake, &self.subdomain, &record).await? {
            Written::Ours(stored) => {
                self.fence.confirm(self.ttl, sent, sent_wall);
                self.current = stored;
                self.pending = None;
                self.prune().await;
                Ok(())
            }
            Written::Theirs(winner) => {
                let holder = winner.map_or_else(|| "another run".to_string(), |l| l.holder);
                self.fence.close(Closed::Lost {
                    holder: holder.clone(),
                });
                Err(LeaseError::Lost {
                    subdomain: self.subdomain.clone(),
                    holder,
                })
            }
        }
    }

    /// Renews the lease every third of its time to live until `stop` fires, updating the fence
    /// on every confirmed renewal. If the lease is lost, or cannot be renewed before the fence
    /// closes, `lost` is cancelled so the run stops, and [`Lease::take_failure`] says why.
    pub fn keep(
        mut self,
        stop: CancellationToken,
        lost: CancellationToken,
    ) -> tokio::task::JoinHandle<Lease> {
        tokio::spawn(async move {
            let every = self.ttl / 3;
            loop {
                tokio::select! {
                    () = stop.cancelled() => return self,
                    () = tokio::time::sleep(every) => {}
                }
                match self.renew().await {
                    Ok(()) => {
                        tracing::debug!(generation = self.current.generation, "lease renewed")
                    }
                    Err(e @ LeaseError::Lost { .. }) => {
                        tracing::error!(error = %e, "lease lost; stopping the run");
                        self.failure = Some(e);
                        lost.cancel();
                        return self;
                    }
                    Err(e) if self.fence.open_until() <= Instant::now() + every => {
                        tracing::error!(error = %e, "cannot renew the lease before it expires; stopping the run");
                        self.failure = Some(e);
                        lost.cancel();
                        return self;
                    }
                    Err(e) => tracing::warn!(error = %e, "lease renewal failed; retrying"),
                }
            }
        })
    }

    /// Gives the lease up: writes a last generation that is already expired. The fence closes
    /// first: nothing of this run may write once it starts letting go.
    pub async fn release(self) -> Result<(), LeaseError> {
        self.fence.close(Closed::Released);
        let record = LeaseRecord {
            generation: self.current.generation + 1,
            holder: String::new(),
            acquired_at: self.current.acquired_at,
            renewed_at: Timestamp::now(),
            expires_at: Timestamp::from_seconds(0),
            run_id: self.current.run_id.clone(),
            process: None,
        };
        if let Written::Ours(record) =
            write_generation(&self.lake, &self.subdomain, &record).await?
        {
            let released = Lease {
                current: record,
                ..self
            };
            released.prune().await;
        }
        Ok(())
    }

    /// Deletes generations below the current one (best effort: they are history, not state).
    async fn prune(&self) {
        let Ok(paths) = self.lake.list(&layout::lease(&self.subdomain)).await else {
            return;
        };
        for path in paths {
            if layout::parse_lease_generation(&path).is_some_and(|g| g < self.current.generation) {
                let _ = self.lake.delete(&path).await;
            }
        }
    }
}

/// Whose a generation is after we tried to create it.
enum Written {
    /// Ours, as stored: created now, or by an earlier attempt of ours that applied.
    Ours(LeaseRecord),
    /// Another run's (`None` when it was pruned meanwhile: a newer generation exists).
    Theirs(Option<LeaseRecord>),
}

/// Creates `record`'s generation. "Already exists" with our own run id, or a failure after which
/// the generation turns out to hold our run id, is our write having applied: success.
async fn write_generation(
    lake: &Lake,
    subdomain: &str,
    record: &LeaseRecord,
) -> Result<Written, LeaseError> {
    let path = layout::lease_generation(subdomain, record.generation);
    let body = serde_json::to_vec_pretty(record).expect("plain data serializes");
    let ours = |stored: &LeaseRecord| !record.run_id.is_empty() && stored.run_id == record.run_id;
    match lake.create(&path, Bytes::from(body)).await {
        Ok(Created::Created) => Ok(Written::Ours(record.clone())),
        Ok(Created::AlreadyExisted) => match read_generation(lake, &path).await? {
            Some(stored) if ours(&stored) => {
                tracing::info!(
                    generation = record.generation,
                    "the store answered \"already exists\" for this run's own lease write (a retried request that had applied)"
                );
                Ok(Written::Ours(stored))
            }
            other => Ok(Written::Theirs(other)),
        },
        Err(e) => match read_generation(lake, &path).await {
            Ok(Some(stored)) if ours(&stored) => {
                tracing::info!(generation = record.generation, error = %e, "a lease write reported a failure but had applied");
                Ok(Written::Ours(stored))
            }
            _ => Err(e.into()),
        },
    }
}

async fn read_generation(lake: &Lake, path: &Path) -> Result<Option<LeaseRecord>, LeaseError> {
    let Some(bytes) = lake.read(path).await? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| LeaseError::Corrupt {
            path: path.to_string(),
            reason: e.to_string(),
        })
}

/// The number of the highest generation, if any.
async fn highest(lake: &Lake, subdomain: &str) -> Result<Option<u64>, LeaseError> {
    Ok(lake
        .list(&layout::lease(subdomain))
        .await?
        .iter()
        .filter_map(layout::parse_lease_generation)
        .max())
}

/// The highest generation, if any: the lease as it stands.
pub async fn latest(lake: &Lake, subdomain: &str) -> Result<Option<LeaseRecord>, LeaseError> {
    for _ in 0..ACQUIRE_ATTEMPTS {
        let Some(generation) = highest(lake, subdomain).await? else {
            return Ok(None);
        };
        // Pruned between the listing and the read: a newer generation exists, list again.
        if let Some(record) =
            read_generation(lake, &layout::lease_generation(subdomain, generation)).await?
        {
            return Ok(Some(record));
        }
    }
    Err(LeaseError::Contended(subdomain.to_string()))
}
#[cfg(test)]
mod tests {
    use super::holder::start_time;
    use super::*;
    use crate::units::new_run_id;

    #[test]
    fn one_renewal_fits_in_a_third_of_the_shortest_lease() {
        assert_eq!(
            min_lease_ttl(Duration::from_secs(30)),
            Duration::from_secs(555)
        );
        assert_eq!(
            min_lease_ttl(Duration::from_secs(2)),
            Duration::from_secs(117)
        );
    }

    /// Regression (review of issue 6): the monotonic clock may not count a suspend or a VM
    /// pause, while other runs judge expiry by wall clock; the fence must close on either.
    #[tokio::test]
    async fn the_fence_closes_when_the_wall_clock_passes_its_deadline_whatever_the_monotonic_one_says(
    ) {
        let ttl = Duration::from_secs(60);
        let fresh = Fence::new("acme", ttl, Instant::now(), now());
        assert!(fresh.check().is_ok());
        // Sent "two minutes ago" by the wall clock, just now by the monotonic clock.
        let slept = Fence::new("acme", ttl, Instant::now(), now() - 120);
        let err = slept.check().unwrap_err();
        assert!(matches!(err, LeaseError::Expired { .. }), "{err}");
    }

    use std::sync::atomic::Ordering;

    use crate::lake::faulty::{faulty_lake, inject, Fault};
    use crate::lake::storage::temp_lake as lake;

    /// Writes a generation as another run would, bypassing [`Lease`].
    async fn plant(lake: &Lake, generation: u64, holder: &str, process: Option<ProcessIdentity>) {
        let record = LeaseRecord {
            generation,
            holder: holder.to_string(),
            acquired_at: Timestamp::now(),
            renewed_at: Timestamp::now(),
            expires_at: Timestamp::from_seconds(now() + 600),
            run_id: new_run_id(),
            process,
        };
        assert!(matches!(
            write_generation(lake, "acme", &record).await.unwrap(),
            Written::Ours(_)
        ));
    }

    fn me() -> ProcessIdentity {
        this_process().expect("the tests run on Linux with /proc")
    }

    /// The pid of a process that ran on this machine and has exited.
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    #[tokio::test]
    async fn a_held_lease_is_refused_with_its_holder_and_released_for_the_next_run() {
        let (_dir, lake) = lake();
        let ttl = Duration::from_secs(60);
        let lease = Lease::acquire(&lake, "acme", ttl, "host-a pid 1", &new_run_id())
            .await
            .unwrap();
        let err = Lease::acquire(&lake, "acme", ttl, "host-b pid 2", &new_run_id())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("host-a pid 1") && err.contains("since"),
            "{err}"
        );
        // Another subdomain in the same lake is not blocked.
        Lease::acquire(&lake, "other", ttl, "host-c pid 3", &new_run_id())
            .await
            .unwrap();
        lease.release().await.unwrap();
        let next = Lease::acquire(&lake, "acme", ttl, "host-b pid 2", &new_run_id())
            .await
            .unwrap();
        assert_eq!(next.record().generation, 3, "generations never restart");
        assert_eq!(
            lake.list(&layout::lease("acme")).await.unwrap().len(),
            1,
            "history is pruned"
        );
    }

    #[tokio::test]
    async fn an_expired_lease_is_taken_over_and_its_old_holder_learns_it_lost() {
        let (_dir, lake) = lake();
        let mut stale = Lease::acquire(&lake, "acme", Duration::ZERO, "crashed", &new_run_id())
            .await
            .unwrap();
        let taker = Lease::acquire(
            &lake,
            "acme",
            Duration::from_secs(60),
            "taker",
            &new_run_id(),
        )
        .await
        .unwrap();
        assert_eq!(taker.record().generation, 2);
        let err = stale.renew().await.unwrap_err().to_string();
        assert!(
            err.contains("lost the lease") && err.contains("taker"),
            "{err}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn of_many_simultaneous_takers_exactly_one_wins() {
        let (_dir, lake) = lake();
        Lease::acquire(&lake, "acme", Duration::ZERO, "crashed", &new_run_id())
            .await
            .unwrap();
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let lake = lake.clone();
                tokio::spawn(async move {
                    Lease::acquire(
                        &lake,
                        "acme",
                        Duration::from_secs(60),
                        &format!("taker {i}"),
                        &new_run_id(),
                    )
                    .await
                })
            })
            .collect();
        let mut winners = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => winners += 1,
                Err(LeaseError::Held { .. }) => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(winners, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_fence_is_open_after_acquire_and_closes_when_ttl_minus_margin_passes_without_renewal(
    ) {
        let (_store, lake) = faulty_lake();
        let ttl = Duration::from_secs(60);
        assert_eq!(fence_margin(ttl), Duration::from_secs(6));
        let mut lease = Lease::acquire(&lake, "acme", ttl, "me", &new_run_id())
            .await
            .unwrap();
        let fence = lease.fence();
        fence.check().unwrap();
        tokio::time::advance(Duration::from_secs(53)).await;
        fence.check().unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
        let err = fence.check().unwrap_err();
        assert!(matches!(err, LeaseError::Expired { .. }), "{err}");
        let message = err.to_string();
        assert!(
            message.contains("\"acme\" expired at")
                && message.contains("paused")
                && message.contains("stopping before writing"),
            "{message}"
        );
        lease.renew().await.unwrap();
        fence.check().unwrap();
        tokio::time::advance(Duration::from_secs(53)).await;
        fence.check().unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn the_fence_counts_from_when_the_renewal_was_sent_not_when_it_returned() {
        let (store, lake) = faulty_lake();
        let ttl = Duration::from_secs(60);
        let mut lease = Lease::acquire(&lake, "acme", ttl, "me", &new_run_id())
            .await
            .unwrap();
        let fence = lease.fence();
        inject(&store, Fault::Slow(Duration::from_secs(20)));
        lease.renew().await.unwrap();
        // Sent 20 s ago: open for 54 s from then, so 33 s more, not 54.
        tokio::time::advance(Duration::from_secs(33)).await;
        fence.check().unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(matches!(fence.check(), Err(LeaseError::Expired { .. })));
    }

    #[tokio::test]
    async fn the_fence_closes_once_the_lease_is_lost_even_before_it_expires() {
        let (_store, lake) = faulty_lake();
        let mut lease =
            Lease::acquire(&lake, "acme", Duration::from_secs(600), "me", &new_run_id())
                .await
                .unwrap();
        let fence = lease.fence();
        // A run that took over while this one was frozen.
        plant(&lake, 2, "taker", None).await;
        assert!(matches!(lease.renew().await, Err(LeaseError::Lost { .. })));
        let err = fence.check().unwrap_err().to_string();
        assert!(
            err.contains("lost the lease") && err.contains("taker"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn the_fence_closes_when_the_lease_is_released() {
        let (_store, lake) = faulty_lake();
        let lease = Lease::acquire(&lake, "acme", Duration::from_secs(600), "me", &new_run_id())
            .await
            .unwrap();
        let fence = lease.fence();
        lease.release().await.unwrap();
        assert!(matches!(fence.check(), Err(LeaseError::Released(_))));
    }

    #[tokio::test(start_paused = true)]
    async fn keeping_the_lease_keeps_the_fence_open_and_closes_it_when_another_run_takes_over() {
        let (_store, lake) = faulty_lake();
        let lease = Lease::acquire(&lake, "acme", Duration::from_secs(30), "me", &new_run_id())
            .await
            .unwrap();
        let fence = lease.fence();
        let (stop, lost) = (CancellationToken::new(), CancellationToken::new());
        let kept = lease.keep(stop.clone(), lost.clone());
        tokio::time::sleep(Duration::from_secs(100)).await;
        fence.check().unwrap();
        let generation = latest(&lake, "acme").await.unwrap().unwrap().generation;
        assert!(generation >= 10, "renewed every 10 s: {generation}");
        plant(&lake, generation + 1, "taker", None).await;
        tokio::time::timeout(Duration::from_secs(15), lost.cancelled())
            .await
            .expect("the next renewal finds the lease lost");
        assert!(matches!(fence.check(), Err(LeaseError::Lost { .. })));
        stop.cancel();
        let mut lease = kept.await.unwrap();
        assert!(matches!(
            lease.take_failure(),
            Some(LeaseError::Lost { .. })
        ));
    }

    #[tokio::test]
    async fn a_lease_write_that_applied_but_answered_already_exists_is_this_runs_own() {
        let (store, lake) = faulty_lake();
        let ttl = Duration::from_secs(600);
        inject(&store, Fault::AppliedThenAlreadyExists);
        let mut lease = Lease::acquire(&lake, "acme", ttl, "me", &new_run_id())
            .await
            .unwrap();
        assert_eq!(lease.record().generation, 1, "no orphan generation");
        inject(&store, Fault::AppliedThenAlreadyExists);
        lease.renew().await.unwrap();
        assert_eq!(lease.record().generation, 2);
        lease.fence().check().unwrap();
        inject(&store, Fault::AppliedThenAlreadyExists);
        lease.release().await.unwrap();
        let next = Lease::acquire(&lake, "acme", ttl, "next run", &new_run_id())
            .await
            .unwrap();
        assert_eq!(next.record().generation, 4, "released, not orphaned");
    }

    #[tokio::test]
    async fn a_lease_write_that_applied_but_timed_out_is_this_runs_own() {
        let (store, lake) = faulty_lake();
        let ttl = Duration::from_secs(600);
        inject(&store, Fault::AppliedThenTimedOut);
        let mut lease = Lease::acquire(&lake, "acme", ttl, "me", &new_run_id())
            .await
            .unwrap();
        inject(&store, Fault::AppliedThenTimedOut);
        lease.renew().await.unwrap();
        inject(&store, Fault::AppliedThenTimedOut);
        lease.release().await.unwrap();
        let next = Lease::acquire(&lake, "acme", ttl, "next run", &new_run_id())
            .await
            .unwrap();
        assert_eq!(next.record().generation, 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_renewal_the_store_cannot_take_is_a_store_error_not_a_lost_lease() {
        let (store, lake) = faulty_lake();
        let mut lease = Lease::acquire(&lake, "acme", Duration::from_secs(30), "me", &new_run_id())
            .await
            .unwrap();
        let fence = lease.fence();
        store.down.store(true, Ordering::SeqCst);
        let err = lease.renew().await.unwrap_err();
        assert!(matches!(err, LeaseError::Storage(_)), "{err}");
        assert!(!err.to_string().contains("lost"), "{err}");

        let (stop, lost) = (CancellationToken::new(), CancellationToken::new());
        let kept = lease.keep(stop.clone(), lost.clone());
        tokio::time::timeout(Duration::from_secs(30), lost.cancelled())
            .await
            .expect("the run is stopped before the lease expires");
        stop.cancel();
        let mut lease = kept.await.unwrap();
        let failure = lease.take_failure().expect("keep says why it stopped");
        assert!(matches!(failure, LeaseError::Storage(_)), "{failure}");
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(matches!(fence.check(), Err(LeaseError::Expired { .. })));
    }

    #[tokio::test]
    async fn a_lease_whose_holder_died_on_this_machine_is_taken_over_at_once() {
        let (_store, lake) = faulty_lake();
        let dead = ProcessIdentity {
            pid: dead_pid(),
            ..me()
        };
        plant(&lake, 1, "killed -9", Some(dead)).await;
        let lease = Lease::acquire(&lake, "acme", Duration::from_secs(600), "me", &new_run_id())
            .await
            .unwrap();
        assert_eq!(lease.record().generation, 2);
    }

    #[tokio::test]
    async fn a_lease_whose_pid_is_now_this_runs_own_is_taken_over_at_once() {
        let (_store, lake) = faulty_lake();
        let earlier = ProcessIdentity {
            start_time: me().start_time.wrapping_sub(1),
            ..me()
        };
        plant(&lake, 1, "killed -9, pid reused", Some(earlier)).await;
        Lease::acquire(&lake, "acme", Duration::from_secs(600), "me", &new_run_id())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_live_holder_on_this_machine_is_never_taken_over() {
        let (_store, lake) = faulty_lake();
        let mut sleeper = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = sleeper.id();
        let live = ProcessIdentity {
            pid,
            start_time: start_time(pid).unwrap().unwrap(),
            ..me()
        };
        plant(&lake, 1, "sleeping holder", Some(live)).await;
        let refused =
            Lease::acquire(&lake, "acme", Duration::from_secs(600), "me", &new_run_id()).await;
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
        assert!(
            matches!(refused, Err(LeaseError::Held { .. })),
            "{refused:?}"
        );

        let parent = std::os::unix::process::parent_id();
        let parent = ProcessIdentity {
            pid: parent,
            start_time: start_time(parent).unwrap().unwrap(),
            ..me()
        };
        plant(&lake, 2, "our parent", Some(parent)).await;
        let refused =
            Lease::acquire(&lake, "acme", Duration::from_secs(600), "me", &new_run_id()).await;
        assert!(
            matches!(refused, Err(LeaseError::Held { .. })),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn a_dead_holder_is_not_provably_dead_on_another_boot_machine_or_user() {
        let (_store, lake) = faulty_lake();
        let dead = ProcessIdentity {
            pid: dead_pid(),
            ..me()
        };
        let elsewhere = [
            ProcessIdentity {
                boot_id: "another boot".into(),
                ..dead.clone()
            },
            ProcessIdentity {
                hostname: "another-host".into(),
                ..dead.clone()
            },
            ProcessIdentity {
                pid_namespace: "pid:[1]".into(),
                ..dead.clone()
            },
            ProcessIdentity {
                uid: dead.uid.wrapping_add(1),
                ..dead.clone()
            },
        ];
        for (generation, process) in (1..).zip(elsewhere.into_iter().map(Some).chain([None])) {
            plant(&lake, generation, "elsewhere", process.clone()).await;
            let refused =
                Lease::acquire(&lake, "acme", Duration::from_secs(600), "me", &new_run_id()).await;
            assert!(
                matches!(refused, Err(LeaseError::Held { .. })),
                "{process:?}: {refused:?}"
            );
        }
    }

    #[test]
    fn lease_records_of_older_versions_still_read() {
        let old = r#"{"generation": 7, "holder": "h pid 1 run 0", "acquired_at": "2024-01-01T00:00:00Z",
            "renewed_at": "2024-01-01T00:00:00Z", "expires_at": 1704067800}"#;
        let record: LeaseRecord = serde_json::from_str(old).unwrap();
        assert_eq!((record.run_id.as_str(), &record.process), ("", &None));
        assert_eq!(
            known_dead(&record),
            None,
            "an old holder is never known dead"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_renewal_slower_than_usual_but_within_its_allowance_keeps_the_fence_open() {
        let (store, lake) = faulty_lake();
        let ttl = Duration::from_secs(30);
        assert_eq!(renewal_allowance(ttl), Duration::from_secs(17));
        let lease = Lease::acquire(&lake, "acme", ttl, "me", &new_run_id())
            .await
            .unwrap();
        let fence = lease.fence();
        let (stop, lost) = (CancellationToken::new(), CancellationToken::new());
        inject(&store, Fault::Slow(Duration::from_millis(16_900)));
        let kept = lease.keep(stop.clone(), lost.clone());
        for _ in 0..600 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            fence.check().unwrap();
        }
        assert!(!lost.is_cancelled());
        stop.cancel();
        kept.await.unwrap();
    }
}
