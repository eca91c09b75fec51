//! One request budget for the whole process, shared by every worker.
//!
//! Zendesk's rate limit is account-wide and shared with every other integration on the account.
//! The budget spaces requests evenly at the lower of the configured cap and the configured share
//! of what `X-Rate-Limit` reports, and a 429 pauses every worker until its `Retry-After` has
//! passed. (No crate here both learns its rate at run time and pauses on demand, so it is written
//! out: a spacing limiter is a dozen lines.)

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Assumed limit until the first response reports the real one: the smallest plan's (Team, 200
/// requests per minute), so a first burst of workers cannot exceed any account's limit.
const ASSUMED_LIMIT: u32 = 200;

/// `--rate-limit-share`'s default: half of the account's limit, leaving the other half to the
/// account's other integrations.
pub const DEFAULT_RATE_LIMIT_SHARE: f64 = 0.5;

/// The request budget.
#[derive(Debug)]
pub struct RequestBudget {
    cap: Option<u32>,
    share: f64,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    per_minute: u32,
    /// When the next request may start.
    next: Instant,
    /// No request starts before this (set by 429s and exhausted budgets).
    paused_until: Instant,
}

impl RequestBudget {
    /// A budget of at most `cap` requests per minute (if given) and at most `share` (0 < share
    /// <= 1) of the account's reported limit.
    pub fn new(cap: Option<u32>, share: f64) -> RequestBudget {
        let now = Instant::now();
        let budget = RequestBudget {
            cap,
            share,
            state: Mutex::new(State {
                per_minute: 1,
                next: now,
                paused_until: now,
            }),
        };
        let initial = budget.effective(ASSUMED_LIMIT);
        budget.lock().per_minute = initial;
        budget
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a few plain numbers, valid after any panic: a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn effective(&self, account_limit: u32) -> u32 {
        let share = (f64::from(account_limit) * self.share).floor() as u32;
        self.cap.map_or(share, |cap| cap.min(share)).max(1)
    }

    /// Requests per minute currently allowed.
    pub fn per_minute(&self) -> u32 {
        self.lock().per_minute
    }

    /// Waits for this request's turn.
    pub async fn acquire(&self) {
        let (at, now) = {
            let mut state = self.lock();
            let now = Instant::now();
            let at = now.max(state.next).max(state.paused_until);
            state.next = at + Duration::from_secs(60) / state.per_minute;
            (at, now)
        };
        // The timer wheel has millisecond ticks: sleeping even until `now` would cost up to a
        // millisecond per request, so a turn that is already due goes at once.
        if at > now {
            tokio::time::sleep_until(at).await;
        }
    }

    /// Learns the account's limit from a response's `X-Rate-Limit` (or `ratelimit-limit`).
    pub fn observe_limit(&self, account_limit: u32) {
        if account_limit == 0 {
            return;
        }
        let per_minute = self.effective(account_limit);
        let mut state = self.lock();
        if state.per_minute != per_minute {
            tracing::debug!(account_limit, per_minute, "request budget set");
            state.per_minute = per_minute;
        }
    }

    /// Stops every worker for `delay` (a 429's `Retry-After`, or an exhausted budget's reset).
    pub fn pause(&self, delay: Duration) {
        let until = Instant::now() + delay;
        let mut state = self.lock();
        state.paused_until = state.paused_until.max(until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_the_lower_of_cap_and_share() {
        let b = RequestBudget::new(None, 0.5);
        assert_eq!(
            b.per_minute(),
            100,
            "half the assumed Team limit before learning"
        );
        b.observe_limit(700);
        assert_eq!(b.per_minute(), 350);
        let capped = RequestBudget::new(Some(60), 0.5);
        capped.observe_limit(2500);
        assert_eq!(capped.per_minute(), 60);
        let tiny = RequestBudget::new(None, 0.1);
        tiny.observe_limit(5);
        assert_eq!(tiny.per_minute(), 1, "never zero");
    }

    #[tokio::test(start_paused = true)]
    async fn requests_are_spaced_evenly() {
        let b = RequestBudget::new(Some(600), 1.0);
        b.observe_limit(700);
        let start = Instant::now();
        for _ in 0..11 {
            b.acquire().await;
        }
        // 600 per minute = one every 100 ms; the first goes at once.
        assert_eq!(start.elapsed(), Duration::from_millis(1000));
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_every_worker() {
        let b = std::sync::Arc::new(RequestBudget::new(Some(6000), 1.0));
        b.observe_limit(6000);
        b.acquire().await;
        b.pause(Duration::from_secs(3));
        let start = Instant::now();
        let handles: Vec<_> = (0..3)
            .map(|_| {
                let b = b.clone();
                tokio::spawn(async move {
                    b.acquire().await;
                    Instant::now()
                })
            })
            .collect();
        for h in handles {
            assert!(h.await.unwrap() - start >= Duration::from_secs(3));
        }
    }
}
