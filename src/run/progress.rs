//! What a run shows while it works: a progress observer (the CLI draws a bar with it), and the
//! request counters and budget it reads.

use crate::zendesk::RequestBudget;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Observes progress (the CLI draws a bar with it).
pub trait Progress: Send + Sync {
    /// The run starts `windows` windows; `meter` reads its requests and budget at any time.
    fn start(&self, windows: u64, meter: Meter);
    fn records(&self, fetched: u64);
    fn window_finished(&self);
}

/// A progress observer that shows nothing.
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _: u64, _: Meter) {}
    fn records(&self, _: u64) {}
    fn window_finished(&self) {}
}

/// The run's request counters and budget, as a progress display reads them.
#[derive(Clone)]
pub struct Meter {
    pub(crate) stats: Arc<crate::zendesk::ClientStats>,
    pub(crate) budget: Arc<RequestBudget>,
}

impl Meter {
    /// Requests made so far.
    pub fn requests(&self) -> u64 {
        self.stats.requests.load(Ordering::Relaxed)
    }

    /// 429 answers so far.
    pub fn throttled(&self) -> u64 {
        self.stats.throttled.load(Ordering::Relaxed)
    }

    /// Requests per minute the budget allows now.
    pub fn budget_per_minute(&self) -> u32 {
        self.budget.per_minute()
    }
}
