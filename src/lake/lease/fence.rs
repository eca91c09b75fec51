//! The lease's fence: whether the lease is still certainly this run's, checked (locally, without a
//! request) before every destructive step, and closed for good once the lease is lost or released.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::{now, LeaseError};
use crate::units::time::format_rfc3339;

/// Whether the lease is still certainly this run's, shared by every worker of the run and updated
/// by the renewal task. Cheap to clone and to check: no store request. Every destructive step of
/// a run (upload, delete, commit) calls [`Fence::check`] just before it and stops on an error.
#[derive(Clone, Debug)]
pub struct Fence {
    state: Arc<FenceState>,
}

#[derive(Debug)]
struct FenceState {
    subdomain: String,
    margin: Duration,
    inner: Mutex<FenceInner>,
}

#[derive(Debug)]
struct FenceInner {
    /// Writes are allowed strictly before this instant (local monotonic clock).
    open_until: Instant,
    /// The same moment on the wall clock, for messages.
    open_until_wall: i64,
    closed: Option<Closed>,
}

#[derive(Debug)]
pub(super) enum Closed {
    Lost { holder: String },
    Released,
}

/// How long before the lease's stored expiry this run stops writing.
///
/// Other runs judge expiry by their own wall clock against `expires_at`, while this run counts on
/// its monotonic clock from the moment it sent the write. The margin covers what separates the
/// two: `expires_at` is rounded down to the second (up to 1 s earlier than send + ttl), wall
/// clocks of machines differ (NTP keeps them within tens of milliseconds; a second more is
/// generous), and clocks run at slightly different rates over a time to live (parts per million;
/// a tenth of the ttl is far beyond that). Hence max(ttl/10, 2 s) — but at most a third of the
/// ttl, so that with the shortest ttl the config allows (3 s) the fence stays open across the
/// renewals, sent every third of the ttl.
pub fn fence_margin(ttl: Duration) -> Duration {
    (ttl / 10).max(Duration::from_secs(2)).min(ttl / 3)
}

/// How long one renewal may take, from sending to confirmation, without the fence closing
/// before it is confirmed: renewals are sent a third of the ttl apart and the fence stays open
/// ttl − margin after the last confirmed one. A store whose worst case for one request (timeout ×
/// attempts, plus backoff) exceeds this would stop runs that are merely slow, so the
/// configuration should refuse such a `--lease-ttl`.
pub fn renewal_allowance(ttl: Duration) -> Duration {
    ttl.saturating_sub(fence_margin(ttl))
        .saturating_sub(ttl / 3)
}

/// The shortest time to live of a lease on local disk: no request timeouts or retries there, only
/// the renewal period's arithmetic (a renewal every second, and [`fence_margin`]'s floor).
pub const MIN_LOCAL_LEASE_TTL: Duration = Duration::from_secs(3);

/// Store requests in one lease renewal, one after the other: the create-if-absent PUT of the next
/// generation, then a LIST of the chain, then either a DELETE of the previous generation (the
/// prune) or, when the PUT found the generation there, a GET of it.
const REQUESTS_PER_RENEWAL: u32 = 3;

/// The shortest time to live of a lease on an object store whose requests are limited to
/// `store_timeout` each: one renewal must fit in a renewal period (a third of the time to live).
///
/// Why that is enough: the generation written by a renewal that starts at `s` expires at
/// `s + ttl` (a second earlier at worst, since expiries are whole seconds). That renewal ends by
/// `s + W`, where `W = REQUESTS_PER_RENEWAL * worst_case_request`; the next starts a third of
/// the time to live later and its PUT lands by `s + W + ttl/3 + R` (`R` one worst-case request).
/// With `W <= ttl/3` that is at most `s + ttl - (W - R)`, i.e. `2R` before the expiry: room for
/// the whole-second rounding and for a prune that has more than one generation to delete. And
/// a renewal that fails is retried only while a period is left (see [`Lease::keep`](super::Lease::keep)).
///
/// For a 30 s timeout: R = 61.6 s, W = 184.8 s, so at least 554.4 s, rounded up to 555 s (9m15s).
/// For 2 s: R = 13 s, W = 39 s, at least 117 s.
pub fn min_lease_ttl(store_timeout: Duration) -> Duration {
    let renewal = crate::lake::storage::worst_case_request(store_timeout)
        .saturating_mul(REQUESTS_PER_RENEWAL);
    let period = renewal.saturating_mul(3);
    // Whole seconds, rounded up: the lease's expiry is kept in seconds.
    let rounded = period.as_secs() + u64::from(period.subsec_nanos() > 0);
    Duration::from_secs(rounded)
}

impl Fence {
    pub(super) fn new(subdomain: &str, ttl: Duration, sent: Instant, sent_wall: i64) -> Fence {
        let margin = fence_margin(ttl);
        let open_for = ttl.saturating_sub(margin);
        Fence {
            state: Arc::new(FenceState {
                subdomain: subdomain.to_string(),
                margin,
                inner: Mutex::new(FenceInner {
                    open_until: sent + open_for,
                    open_until_wall: sent_wall + open_for.as_secs() as i64,
                    closed: None,
                }),
            }),
        }
    }

    /// A fence that is closed from the start: for a committer that only reads (a dry run), so
    /// that any write it were asked for fails before it is made.
    pub fn closed(subdomain: &str) -> Fence {
        let fence = Fence::new(subdomain, Duration::from_secs(1), Instant::now(), now());
        fence.lock().closed = Some(Closed::Released);
        fence
    }

    /// Ok while the lease is certainly still ours: the last confirmed renewal + ttl − margin is
    /// still in the future by the local monotonic clock and by the wall clock, and the lease has
    /// not been reported lost.
    // The error is large because of `Held`, which `check` never returns; the Ok path stays a
    // lock and a clock read, and the error is made once, when the run stops.
    #[allow(clippy::result_large_err)]
    pub fn check(&self) -> Result<(), LeaseError> {
        let inner = self.lock();
        let subdomain = self.state.subdomain.clone();
        match &inner.closed {
            Some(Closed::Lost { holder }) => {
                return Err(LeaseError::Lost {
                    subdomain,
                    holder: holder.clone(),
                })
            }
            Some(Closed::Released) => return Err(LeaseError::Released(subdomain)),
            None => {}
        }
        // Both clocks: the monotonic one cannot jump, but it may not count a system suspend or
        // a VM pause, while other runs judge expiry by their wall clocks. The wall deadline is
        // in whole seconds, rounded down from the send: one second of grace stays within the
        // margin (at least 1 s) before the stored `expires_at`.
        if Instant::now() >= inner.open_until || now() > inner.open_until_wall {
            return Err(LeaseError::Expired {
                subdomain,
                expired_at: format_rfc3339(inner.open_until_wall),
            });
        }
        Ok(())
    }

    /// The moment (local monotonic clock) the fence closes unless the lease is renewed.
    pub fn open_until(&self) -> Instant {
        self.lock().open_until
    }

    /// The store confirmed a write of the lease, sent at `sent` (`sent_wall` on the wall clock).
    pub(super) fn confirm(&self, ttl: Duration, sent: Instant, sent_wall: i64) {
        let open_for = ttl.saturating_sub(self.state.margin);
        let mut inner = self.lock();
        // A renewal confirmed late never shortens what an earlier one granted.
        if sent + open_for > inner.open_until {
            inner.open_until = sent + open_for;
            inner.open_until_wall = sent_wall + open_for.as_secs() as i64;
        }
    }

    pub(super) fn close(&self, why: Closed) {
        self.lock().closed.get_or_insert(why);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FenceInner> {
        // The lock guards plain values, valid whatever a panicking holder left half done.
        self.state
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
