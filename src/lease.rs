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

use std::time::Duration;

use bytes::Bytes;
use object_store::path::Path;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::storage::{layout, Created, Lake, StorageError};
use crate::window::format_rfc3339;

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
    pub acquired_at: String,
    pub renewed_at: String,
    /// UTC seconds after which another run may take the lease over.
    pub expires_at: i64,
}

/// A held lease.
#[derive(Debug)]
pub struct Lease {
    lake: Lake,
    subdomain: String,
    ttl: Duration,
    current: LeaseRecord,
}

/// A name for this run, for other runs' messages: host, pid and a random tag.
pub fn holder_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown-host".into());
    format!(
        "{host} pid {} run {:08x}",
        std::process::id(),
        fastrand::u32(..)
    )
}

fn folder(subdomain: &str) -> Path {
    layout::meta(subdomain).join("lease")
}

fn generation_path(subdomain: &str, generation: u64) -> Path {
    // Zero-padded so that names sort like numbers.
    folder(subdomain).join(format!("{generation:020}.json"))
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Lease {
    /// Takes the lease for `subdomain`, or says who holds it.
    pub async fn acquire(
        lake: &Lake,
        subdomain: &str,
        ttl: Duration,
        holder: &str,
    ) -> Result<Lease, LeaseError> {
        for _ in 0..ACQUIRE_ATTEMPTS {
            let latest = latest(lake, subdomain).await?;
            let next_generation = latest.as_ref().map_or(1, |l| l.generation + 1);
            if let Some(held) = &latest {
                if !held.holder.is_empty() && held.expires_at > now() {
                    return Err(LeaseError::Held {
                        dest: lake.display().to_string(),
                        subdomain: subdomain.to_string(),
                        holder: held.holder.clone(),
                        since: held.acquired_at.clone(),
                        renewed: held.renewed_at.clone(),
                        expires: format_rfc3339(held.expires_at),
                    });
                }
                if !held.holder.is_empty() {
                    tracing::warn!(
                        previous_holder = %held.holder,
                        expired = %format_rfc3339(held.expires_at),
                        "taking over an expired lease (its run stopped renewing it)"
                    );
                }
            }
            let stamp = format_rfc3339(now());
            let record = LeaseRecord {
                generation: next_generation,
                holder: holder.to_string(),
                acquired_at: stamp.clone(),
                renewed_at: stamp,
                expires_at: now() + ttl.as_secs() as i64,
            };
            if write_generation(lake, subdomain, &record).await? == Created::Created
                && highest(lake, subdomain).await? == Some(next_generation)
            {
                let lease = Lease {
                    lake: lake.clone(),
                    subdomain: subdomain.to_string(),
                    ttl,
                    current: record,
                };
                lease.prune().await;
                return Ok(lease);
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

    /// Extends the lease by its time to live.
    pub async fn renew(&mut self) -> Result<(), LeaseError> {
        let record = LeaseRecord {
            generation: self.current.generation + 1,
            renewed_at: format_rfc3339(now()),
            expires_at: now() + self.ttl.as_secs() as i64,
            ..self.current.clone()
        };
        if write_generation(&self.lake, &self.subdomain, &record).await? == Created::AlreadyExisted
        {
            let winner = latest(&self.lake, &self.subdomain)
                .await?
                .map_or_else(|| "another run".to_string(), |l| l.holder);
            return Err(LeaseError::Lost {
                subdomain: self.subdomain.clone(),
                holder: winner,
            });
        }
        self.current = record;
        self.prune().await;
        Ok(())
    }

    /// Renews the lease every third of its time to live until `stop` fires. If the lease is lost
    /// (or cannot be renewed before it expires), `lost` is cancelled so the run stops.
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
                        lost.cancel();
                        return self;
                    }
                    Err(e) if self.current.expires_at <= now() + every.as_secs() as i64 => {
                        tracing::error!(error = %e, "cannot renew the lease before it expires; stopping the run");
                        lost.cancel();
                        return self;
                    }
                    Err(e) => tracing::warn!(error = %e, "lease renewal failed; retrying"),
                }
            }
        })
    }

    /// Gives the lease up: writes a last generation that is already expired.
    pub async fn release(self) -> Result<(), LeaseError> {
        let record = LeaseRecord {
            generation: self.current.generation + 1,
            holder: String::new(),
            acquired_at: self.current.acquired_at.clone(),
            renewed_at: format_rfc3339(now()),
            expires_at: 0,
        };
        if write_generation(&self.lake, &self.subdomain, &record).await? == Created::Created {
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
        let Ok(paths) = self.lake.list(&folder(&self.subdomain)).await else {
            return;
        };
        for path in paths {
            if parse_generation(&path).is_some_and(|g| g < self.current.generation) {
                let _ = self.lake.delete(&path).await;
            }
        }
    }
}

fn parse_generation(path: &Path) -> Option<u64> {
    path.filename()?.strip_suffix(".json")?.parse().ok()
}

async fn write_generation(
    lake: &Lake,
    subdomain: &str,
    record: &LeaseRecord,
) -> Result<Created, LeaseError> {
    let body = serde_json::to_vec_pretty(record).expect("plain data serializes");
    Ok(lake
        .create(
            &generation_path(subdomain, record.generation),
            Bytes::from(body),
        )
        .await?)
}

/// The number of the highest generation, if any.
async fn highest(lake: &Lake, subdomain: &str) -> Result<Option<u64>, LeaseError> {
    Ok(lake
        .list(&folder(subdomain))
        .await?
        .iter()
        .filter_map(parse_generation)
        .max())
}

/// The highest generation, if any: the lease as it stands.
pub async fn latest(lake: &Lake, subdomain: &str) -> Result<Option<LeaseRecord>, LeaseError> {
    for _ in 0..ACQUIRE_ATTEMPTS {
        let Some(generation) = highest(lake, subdomain).await? else {
            return Ok(None);
        };
        let path = generation_path(subdomain, generation);
        // Pruned between the listing and the read: a newer generation exists, list again.
        if let Some(bytes) = lake.read(&path).await? {
            return serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| LeaseError::Corrupt {
                    path: path.to_string(),
                    reason: e.to_string(),
                });
        }
    }
    Err(LeaseError::Contended(subdomain.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::storage::temp_lake as lake;

    #[tokio::test]
    async fn a_held_lease_is_refused_with_its_holder_and_released_for_the_next_run() {
        let (_dir, lake) = lake();
        let ttl = Duration::from_secs(60);
        let lease = Lease::acquire(&lake, "acme", ttl, "host-a pid 1")
            .await
            .unwrap();
        let err = Lease::acquire(&lake, "acme", ttl, "host-b pid 2")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("host-a pid 1") && err.contains("since"),
            "{err}"
        );
        // Another subdomain in the same lake is not blocked.
        Lease::acquire(&lake, "other", ttl, "host-c pid 3")
            .await
            .unwrap();
        lease.release().await.unwrap();
        let next = Lease::acquire(&lake, "acme", ttl, "host-b pid 2")
            .await
            .unwrap();
        assert_eq!(next.record().generation, 3, "generations never restart");
        assert_eq!(
            lake.list(&folder("acme")).await.unwrap().len(),
            1,
            "history is pruned"
        );
    }

    #[tokio::test]
    async fn an_expired_lease_is_taken_over_and_its_old_holder_learns_it_lost() {
        let (_dir, lake) = lake();
        let mut stale = Lease::acquire(&lake, "acme", Duration::ZERO, "crashed")
            .await
            .unwrap();
        let taker = Lease::acquire(&lake, "acme", Duration::from_secs(60), "taker")
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
        Lease::acquire(&lake, "acme", Duration::ZERO, "crashed")
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
}
