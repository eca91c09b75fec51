//! The run coordinator: the only module that knows the whole order of a run.
//!
//! An export authenticates, takes the lake's lease (`guard`), plans the pending windows
//! (`pending`), fetches them with bounded workers (`workers`) as ranges streamed once each and
//! split while they run (`ranges`, `stream`, `routing`) or alone (`pipeline`; the open
//! window: `open`), rechecks recent windows (`recheck`), compacts the closed days of a sub-day
//! grid (`compact`), and reports (`summary`). `repair` is the other job (`repair.rs`).
//!
//! A window is an atomic unit: it counts only once committed, so dropping in-flight work (Ctrl-C,
//! SIGTERM, a fatal error elsewhere) is always safe: the next run redoes it from scratch. A
//! committed window's files change only through a repair or a compaction of its day
//! ([`crate::lake::Committer`]); the open-window path never touches a window that has a marker.

mod options;
pub use options::{
    ApiConfig, ChangeConfig, EraseConfig, ExpireConfig, ExportConfig, RepairConfig, VerifyConfig,
};
mod compact;
mod error;
mod guard;
mod open;
mod pending;
mod pipeline;
mod policy;
mod progress;
pub(crate) mod ranges;
mod recheck;
mod repair;
mod report;
mod routing;
mod stream;
mod summary;
mod workers;

pub use error::{RunError, WindowError};
pub use policy::{erase, expire, PolicyOutcome};
pub use progress::{Meter, NoProgress, Progress};
pub use repair::{repair, RepairOutcome};
pub use summary::{drift, Failure, Outcome, Summary};

use crate::lake::commit::Committer;
use crate::lake::manifest::{ApiFacts, Dataset, WindowRecord};
use crate::lake::storage::Lake;
use crate::plan::window::{self, Window};
use crate::units::duration::Span;
use crate::zendesk::{Client, Page};
use compact::{compact_days, days_to_compact};
use guard::{authenticated_client, Guard};
use pending::{commit_empty_start, confirmed_through, pending_windows, recheck_windows};
use recheck::recheck_and_repair;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use workers::export_windows;

/// What every window worker shares: the run's config, client and committer, and where its
/// progress goes.
pub(crate) struct Context<'a> {
    pub(crate) config: ExportConfig,
    pub(crate) client: Client,
    pub(crate) committer: Committer,
    pub(crate) fetched: AtomicU64,
    /// The open windows' records as the run found them (`open.json`): where the open window's
    /// increments go on from, or what a window they name closes with (one whose close failed
    /// closes with its parts too).
    pub(crate) open_state: Vec<WindowRecord>,
    pub(crate) progress: &'a dyn Progress,
}

impl Context<'_> {
    /// Counts a fetched page's records towards the run's progress.
    fn count_page(&self, page: &Page) {
        let records = page.records as u64;
        self.progress
            .records(self.fetched.fetch_add(records, Ordering::Relaxed) + records);
    }
}

/// `--settle-lag`'s default: Zendesk is eventually consistent and most records are visible
/// within minutes; the few that come later, `--recheck` catches.
pub const DEFAULT_SETTLE_LAG: Span = Span::minutes(5);

/// `--concurrency`'s default: enough streams to overlap requests, decoding and uploads; the
/// request budget, not this, bounds the load on Zendesk.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// `--recheck`'s default: the last day, since Zendesk's late records show up within minutes to
/// hours; the span is counted as one query (at most three requests a run, one once the
/// API's bounds are known), whatever the grid.
pub const DEFAULT_RECHECK: Span = Span::days(1);

/// Runs an export until every pending window is done or failed, or `cancel` fires.
pub async fn export(
    config: ExportConfig,
    cancel: CancellationToken,
    progress: &dyn Progress,
) -> Result<Summary, RunError> {
    let client = authenticated_client(&config).await?;
    let (lake, guard) = Guard::take_for_export(&config).await?;
    let committer = guard.committer().clone();
    let exit_code_of = config.exit_code_of;
    let outcome = export_leased(
        config,
        client,
        lake,
        committer,
        cancel,
        guard.lost(),
        progress,
    )
    .await;
    match outcome {
        Ok(mut summary) => {
            guard.finish_export(&mut summary, exit_code_of).await;
            Ok(summary)
        }
        Err(e) => {
            guard.finish().await;
            Err(e)
        }
    }
}

/// Records in the lake what this run's counts learned of the API, for the next runs (best effort:
/// it only saves requests).
async fn keep_what_was_learned(context: &Context<'_>, before: &ApiFacts) {
    let facts = ApiFacts {
        created_at_bounds: context.client.created_at_bounds().known(),
    };
    if facts != *before {
        if let Err(error) = context.committer.record_api_facts(&facts).await {
            tracing::warn!(%error, "could not record what this run learned of the API");
        }
    }
}

/// Records how far this run's recheck confirmed the lake, if further than before (see
/// [`confirmed_through`]); a failure only costs the next run a count.
async fn record_confirmed(
    context: &Context<'_>,
    closed: &[Window],
    confirmed_to: Option<i64>,
    confirmed: &BTreeSet<i64>,
) {
    let config = &context.config;
    let Some(through) = confirmed_through(config, closed, confirmed_to, confirmed) else {
        return;
    };
    let recorded = context
        .committer
        .record_confirmed(through, config.recheck.as_secs())
        .await;
    if let Err(error) = recorded {
        tracing::warn!(%error, "could not record how far the recheck confirmed the lake");
    }
}

/// Pins the dataset this run writes (grid, filters, table format, the chain's signing key): the
/// run's committer, built whole (its table's log, its key) before its first write.
async fn pin_dataset(config: &ExportConfig, committer: Committer) -> Result<Committer, RunError> {
    let key = config.signer.as_ref().map(|s| s.fingerprint().to_string());
    let dataset = Dataset::new(&config.api.subdomain, config.grid, &config.filters)
        .with_format(config.table_format)
        .with_signing_key(key);
    Ok(committer.pin(&dataset, config.signer.clone()).await?)
}

/// Puts what the run asked of the API into its summary.
fn count_requests(client: &Client, summary: &mut Summary) {
    let stats = client.stats();
    summary.requests = stats.requests.load(Ordering::Relaxed);
    summary.tokens_minted = client.tokens_minted();
    summary.retries = stats.retries.load(Ordering::Relaxed);
    summary.throttled = stats.throttled.load(Ordering::Relaxed);
    summary.bytes_received = stats.bytes.load(Ordering::Relaxed);
}

/// The run proper, under the lease; `lost` fires if the lease is lost.
async fn export_leased(
    config: ExportConfig,
    client: Client,
    lake: Lake,
    committer: Committer,
    cancel: CancellationToken,
    lost: CancellationToken,
    progress: &dyn Progress,
) -> Result<Summary, RunError> {
    let committer = pin_dataset(&config, committer).await?;
    let state = committer
        .begin(config.grid, config.recheck.as_secs())
        .await?;
    let generations = state.generations;
    client
        .created_at_bounds()
        .assume(state.facts.created_at_bounds);
    let facts = state.facts;
    let done: BTreeSet<i64> = generations.keys().copied().collect();
    let floor = state.ledger.floor();
    let since = start_at(&config, floor);
    let plan = window::plan(config.grid, since.min(config.until), config.until);

    let (mut summary, pending) = pending_windows(&config, &lake, &plan, &done);
    summary.repairs_converged = state.repairs_converged;
    tracing::info!(
        subdomain = %config.api.subdomain,
        dest = %lake.display(),
        window = %config.grid,
        pending = pending.len(),
        skipped = summary.windows_skipped,
        "export starting"
    );
    progress.start(
        pending.len() as u64,
        Meter {
            stats: client.stats().clone(),
            budget: client.budget().clone(),
        },
    );

    let concurrency = config.concurrency;
    let confirmed_to = state.confirmed_to;
    let recheck = recheck_windows(&config, &plan.closed, &done, confirmed_to);
    let days = days_to_compact(
        config.grid,
        config.until,
        pending.iter().map(|p| &p.window).chain(&recheck),
    );
    let context = Arc::new(Context {
        config,
        client,
        committer,
        fetched: AtomicU64::new(0),
        open_state: state.open,
        progress,
    });
    let pending = commit_empty_start(&context, pending, &mut summary).await;
    export_windows(&context, pending, concurrency, &cancel, &lost, &mut summary).await;

    let stopped = summary.fatal.is_some() || summary.interrupted || lost.is_cancelled();
    if !stopped && !recheck.is_empty() {
        let confirmed = recheck_and_repair(&context, &recheck, &cancel, &lost, &mut summary).await;
        record_confirmed(&context, &plan.closed, confirmed_to, &confirmed).await;
    }
    let stopped = summary.fatal.is_some() || summary.interrupted || lost.is_cancelled();
    if !stopped && !summary.store_failed && context.config.compact_days {
        compact_days(&context, &days, &mut summary).await;
    }

    let stopped = summary.fatal.is_some() || summary.interrupted || lost.is_cancelled();
    if let (Some(retention), false) = (context.config.retention, stopped || summary.store_failed) {
        policy::retain(&context, retention, floor, &mut summary).await;
    }
    keep_what_was_learned(&context, &facts).await;
    count_requests(&context.client, &mut summary);
    warn_of_drift(&summary);
    Ok(summary)
}

/// Where the run starts: `--since`, or the lake's retention floor when `--since` is older
/// (the windows before it expired, and are never exported again).
fn start_at(config: &ExportConfig, floor: Option<i64>) -> i64 {
    match floor {
        Some(floor) if config.since < floor => {
            tracing::warn!(since = %crate::units::time::format_rfc3339(config.since), floor = %crate::units::time::format_rfc3339(floor), "--since is older than the lake's retention floor (windows before it expired): starting at the floor");
            floor
        }
        _ => config.since,
    }
}

/// Says which fields the schema does not know the run's records carried, if any.
fn warn_of_drift(summary: &Summary) {
    if !summary.extra_fields.is_empty() {
        tracing::warn!(
            fields = %drift(&summary.extra_fields),
            "records carried fields the schema does not know: kept in extra_json (schema drift)"
        );
    }
}
