//! The export run: plan windows, export the pending ones with bounded concurrency, commit each
//! closed window once its files are in place, recheck recent windows against the API, and report.
//!
//! A window is an atomic unit: it counts only once committed, so dropping in-flight work (Ctrl-C,
//! SIGTERM, a fatal error elsewhere) is always safe: the next run redoes it from scratch. A
//! committed window's files change only through a repair ([`crate::lake::commit`]); the open-window
//! path never touches a window that has a marker.

pub mod ranges;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use futures::stream::FuturesUnordered;
use futures::StreamExt;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::{ExportConfig, RepairConfig};
use crate::lake::commit::{ids_in_lake, ids_of_parts, CommitError, Committer};
use crate::lake::lease::{holder_name, Lease, LeaseError};
use crate::lake::manifest::{Dataset, Manifest, ManifestError, WindowRecord};
use crate::lake::storage::{Created, Lake, StorageError};
use crate::plan::window::{self, Window};
use crate::table::decode::{decode_page, parse_timestamp_ms, DecodeError};
use crate::table::encode::PartError;
use crate::table::route::{RouteCounts, RoutedPart, WindowRouter};
use crate::table::schema::Schema;
use crate::verify::{verify, Kind, Report, VerifyError};
use crate::zendesk::count::{count_window, quick_count};
use crate::zendesk::{pagination, ApiError, Client, ClientError, Page, PageRequest, RequestBudget};
use ranges::{Deposit, Range, Slot, WorkQueue};

/// Pages handed to the encoder thread at a time: waking a thread costs system time (a futex
/// wake and a context switch), so it is woken once per handoff rather than once per page.
const PAGES_PER_HANDOFF: usize = 4;

/// Handoffs fetched ahead of decoding, per window: lets the network and the decoder overlap while
/// bounding the memory of pages in flight (each about 50 KB).
const PIPELINE_DEPTH: usize = 2;

/// Times a window restarts from its first page after the API refuses a cursor (an expired or
/// unknown cursor; their lifetime is undocumented).
const MAX_WINDOW_RESTARTS: u32 = 3;

/// Pages the search for the first record may read: more than one only when the second before the
/// first pending window (the query's margin) fills pages by itself; past this the search gives up
/// and every window is asked as usual.
const FIRST_RECORD_PAGES: usize = 3;

/// Why a window failed.
#[derive(Debug, thiserror::Error)]
pub enum WindowError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("{0}; nothing was committed for this window")]
    Decode(#[from] DecodeError),
    #[error("writing Parquet: {0}")]
    Part(#[from] PartError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Commit(#[from] CommitError),
    #[error("window {window}: Zendesk no longer returns {dropped} records the lake holds; the window is left as it is rather than lose them")]
    WouldDrop { window: String, dropped: u64 },
    #[error(
        "not exported: the stream of its range failed before it ({cause}); a rerun retries it"
    )]
    RangeFailed { cause: String },
    #[error("Zendesk returned record {id} after records created later (sort=created_at broken): window {window}, committed before it came, may lack it; run `auditlake repair --against-api`")]
    Misordered { window: String, id: i64 },
}

impl WindowError {
    /// Whether the destination failed: the store already retried it, so later windows would
    /// fail the same way after downloading all their pages. The run stops instead.
    fn is_storage(&self) -> bool {
        match self {
            WindowError::Storage(_) | WindowError::Manifest(ManifestError::Storage(_)) => true,
            WindowError::Commit(e) => e.is_storage(),
            _ => false,
        }
    }

    /// Whether the run's lease is no longer certainly held.
    fn is_lease(&self) -> bool {
        matches!(self, WindowError::Commit(CommitError::Lease(_)))
    }
}

/// Why the run as a whole could not go on.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot start the simulator: {0}")]
    Simulator(std::io::Error),
    /// The credentials were refused before the run started (a wrong client secret, a scope the
    /// OAuth client may not ask for), or the token endpoint could not be reached.
    #[error("{0}")]
    Authenticate(ApiError),
    #[error(transparent)]
    Lease(#[from] LeaseError),
    #[error(transparent)]
    Commit(#[from] CommitError),
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error("interrupted; an unfinished repair is finished by the next export or repair")]
    Interrupted,
}

/// A failed window, for the summary.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub window: String,
    pub error: String,
}

/// What a run did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Summary {
    /// The run's id, as in its lease and JSON logs.
    pub run_id: String,
    pub subdomain: String,
    pub dest: String,
    pub since: String,
    pub until: String,
    pub window: String,
    /// Closed windows in the range.
    pub windows_planned: u64,
    /// Closed windows exported and committed by this run.
    pub windows_done: u64,
    /// Closed windows already done before this run (no request made for them).
    pub windows_skipped: u64,
    /// Windows (closed or open) that failed; a rerun retries them.
    pub windows_failed: u64,
    /// Whether an open window was exported (it is never marked done).
    pub open_window: Option<String>,
    /// Rows written by this run (closed and open windows).
    pub rows: u64,
    pub files: u64,
    pub bytes_written: u64,
    pub requests: u64,
    pub retries: u64,
    pub throttled: u64,
    pub bytes_received: u64,
    /// Rows the API returned twice within a window (dropped).
    pub duplicates_dropped: u64,
    /// Committed windows re-counted against the API (`--recheck`).
    pub windows_rechecked: u64,
    /// Committed windows replaced by a repair because the API held more records than the lake.
    pub windows_repaired: u64,
    /// Committed windows for which the API now returns fewer records than the lake holds: kept
    /// as they are (an archive does not drop records), reported for a person to look at.
    pub windows_api_fewer: u64,
    /// Interrupted repairs that this run finished (see `repair`).
    pub repairs_converged: u64,
    /// OAuth access tokens minted by this run (client credentials only; never the tokens).
    pub tokens_minted: u64,
    /// The destination failed (after the store's own retries): the run stopped scheduling.
    pub store_failed: bool,
    pub seconds: f64,
    /// A fatal error that stopped the whole run (401, 403).
    pub fatal: Option<String>,
    pub interrupted: bool,
    /// The run stopped because another run took its lease over.
    pub lease_lost: bool,
    pub failures: Vec<Failure>,
    /// Records that came after records of a later window (`sort=created_at` broken) and are
    /// missing from their committed window: listed in `failures`; `repair --against-api` mends.
    pub records_misordered: u64,
    /// Windows whose stream stopped short of its query's end (fetched in pieces, or cut at a
    /// window boundary) and that held fewer records than Zendesk's count of the window (a record
    /// served out of order past the stop, or one that became visible since), or that could not be
    /// counted quickly: each was fetched again whole, as a query of its own, before its commit.
    pub windows_refetched: u64,
    /// Fields the schema does not know that this run's rows carried (kept in `extra_json`), with
    /// the rows that carried each: schema drift.
    pub extra_fields: BTreeMap<String, u64>,
}

/// A window's result.
struct Done {
    window: Window,
    closed: bool,
    committed: bool,
    record: WindowRecord,
    counts: RouteCounts,
}

/// What every window worker shares.
struct Context {
    config: ExportConfig,
    client: Client,
    committer: Committer,
    fetched: AtomicU64,
}

impl Context {
    /// Counts a fetched page's records towards the run's progress.
    fn count_page(&self, page: &Page, progress: &dyn Progress) {
        let records = page.records as u64;
        progress.records(self.fetched.fetch_add(records, Ordering::Relaxed) + records);
    }
}

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
    stats: Arc<crate::zendesk::ClientStats>,
    budget: Arc<RequestBudget>,
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

/// Runs an export until every pending window is done or failed, or `cancel` fires.
pub async fn export(
    config: ExportConfig,
    cancel: CancellationToken,
    progress: &dyn Progress,
) -> Result<Summary, RunError> {
    let started = Instant::now();
    let client = authenticated_client(&config).await?;
    let lake = Lake::open(&config.dest, &config.store)?;
    lake.verify_conditional_create().await?;
    let lease = Lease::acquire_as(
        &lake,
        &config.api.subdomain,
        config.lease_ttl,
        &holder_name(),
        &config.run_id,
    )
    .await?;
    let stop_renewing = CancellationToken::new();
    let lost = CancellationToken::new();
    let fence = lease.fence();
    let renewal = lease.keep(stop_renewing.clone(), lost.clone());
    let committer = Committer::new(
        lake.clone(),
        Manifest::new(lake.clone(), &config.api.subdomain),
        &config.api.subdomain,
        fence,
    );
    let outcome = export_leased(
        config,
        client,
        lake,
        committer,
        cancel,
        lost.clone(),
        progress,
    )
    .await;
    let failure = let_go(renewal, stop_renewing, &lost).await;
    let mut summary = outcome?;
    summary.seconds = started.elapsed().as_secs_f64();
    match failure {
        // The store failed while the lease was being renewed: a destination error (exit 4),
        // not another run's doing.
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
    Ok(summary)
}

/// The run's client, with its first access token minted when the credentials are an OAuth
/// client: before the lease, any marker or any file, so that wrong credentials write nothing.
async fn authenticated_client(config: &ExportConfig) -> Result<Client, RunError> {
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

/// Stops renewing the lease and gives it up (unless it was lost); returns why renewal stopped
/// early, if it did.
async fn let_go(
    renewal: tokio::task::JoinHandle<Lease>,
    stop_renewing: CancellationToken,
    lost: &CancellationToken,
) -> Option<LeaseError> {
    stop_renewing.cancel();
    let mut lease = renewal.await.expect("the renewal task does not panic");
    let failure = lease.take_failure();
    if !lost.is_cancelled() {
        if let Err(e) = lease.release().await {
            tracing::warn!(error = %e, "could not release the lease; it expires by itself");
        }
    }
    failure
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
    let manifest = committer.manifest().clone();
    manifest
        .pin(&Dataset::new(
            &config.api.subdomain,
            config.grid,
            &config.filters,
        ))
        .await?;
    let generations = manifest.generations().await?;
    let repairs_converged = converge_repairs(&committer, config.grid, &generations).await?;
    let done: BTreeSet<i64> = generations.keys().copied().collect();
    let plan = window::plan(config.grid, config.since, config.until);

    let (mut summary, pending) = pending_windows(&config, &lake, &plan, &done);
    summary.repairs_converged = repairs_converged;
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
    let recheck = recheck_windows(&config, &plan.closed, &done);
    let context = Arc::new(Context {
        config,
        client,
        committer,
        fetched: AtomicU64::new(0),
    });
    let pending = commit_empty_start(&context, pending, progress, &mut summary).await;
    export_windows(
        &context,
        pending,
        concurrency,
        &cancel,
        &lost,
        progress,
        &mut summary,
    )
    .await;

    let stopped = summary.fatal.is_some() || summary.interrupted || lost.is_cancelled();
    if !stopped && !recheck.is_empty() {
        recheck_and_repair(&context, &recheck, &cancel, &lost, &mut summary).await;
    }

    let stats = context.client.stats();
    summary.requests = stats.requests.load(Ordering::Relaxed);
    summary.tokens_minted = context.client.tokens_minted();
    summary.retries = stats.retries.load(Ordering::Relaxed);
    summary.throttled = stats.throttled.load(Ordering::Relaxed);
    summary.bytes_received = stats.bytes.load(Ordering::Relaxed);
    if !summary.extra_fields.is_empty() {
        tracing::warn!(
            fields = %drift(&summary.extra_fields),
            "records carried fields the schema does not know: kept in extra_json (schema drift)"
        );
    }
    Ok(summary)
}

/// Schema drift for people: `risk_score (12 rows), metadata (3 rows)`.
pub fn drift(fields: &BTreeMap<String, u64>) -> String {
    fields
        .iter()
        .map(|(field, rows)| format!("{field} ({rows} rows)"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The summary's start and the windows to export: closed windows without a marker, then the
/// open window unless it is committed.
fn pending_windows(
    config: &ExportConfig,
    lake: &Lake,
    plan: &window::Plan,
    done: &BTreeSet<i64>,
) -> (Summary, Vec<(Window, bool)>) {
    let mut summary = Summary {
        run_id: config.run_id.clone(),
        subdomain: config.api.subdomain.clone(),
        dest: lake.display().to_string(),
        since: window::format_rfc3339(
            plan.closed
                .first()
                .or(plan.open.as_ref())
                .map_or(config.since, |w| w.start),
        ),
        until: window::format_rfc3339(config.until),
        window: config.grid.to_string(),
        windows_planned: plan.closed.len() as u64,
        ..Summary::default()
    };
    let mut pending: Vec<(Window, bool)> = Vec::new();
    for w in &plan.closed {
        if done.contains(&w.start) {
            summary.windows_skipped += 1;
        } else {
            pending.push((*w, true));
        }
    }
    match plan.open {
        // The run ends inside a committed window (an earlier --until, a longer --settle-lag, a
        // clock behind the last run's): that window is done and changes only by repair.
        Some(open) if done.contains(&open.start) => tracing::info!(
            window = %open.id(),
            "the run ends inside a committed window; it is left as committed"
        ),
        Some(open) => pending.push((open, false)),
        None => {}
    }
    (summary, pending)
}

/// Exports `pending` with at most `concurrency` windows in flight, until all are done, one stops
/// the run, it is cancelled or the lease is lost.
async fn export_windows(
    context: &Arc<Context>,
    pending: Vec<(Window, bool)>,
    concurrency: usize,
    cancel: &CancellationToken,
    lost: &CancellationToken,
    progress: &dyn Progress,
    summary: &mut Summary,
) {
    // Offset pagination checks a query's distinct records against its `count` only on its last
    // page: a window must not be committed before that, so each window is a query of its own
    // there, as is the open window always.
    let (ranged, alone): (Vec<_>, Vec<_>) = pending.into_iter().partition(|(_, closed)| {
        *closed && context.config.pagination == crate::zendesk::Pagination::Cursor
    });
    let ranged: Vec<Window> = ranged.into_iter().map(|(w, _)| w).collect();
    let queue = Queue::new(ranges::initial(&ranged, concurrency));
    let alone = std::sync::Mutex::new(alone.into_iter().collect::<VecDeque<_>>());
    let (tx, mut rx) = mpsc::unbounded_channel();
    // Futures of this task, not spawned: dropping them (a stop) drops the in-flight windows.
    let mut workers: FuturesUnordered<_> = (0..concurrency.max(1))
        .map(|_| worker(context, &queue, &alone, tx.clone(), progress))
        .collect();
    drop(tx);
    loop {
        let next = tokio::select! {
            biased;
            () = cancel.cancelled() => {
                summary.interrupted = true;
                tracing::warn!("interrupted: in-flight windows are dropped, nothing partial is committed");
                break;
            }
            () = lost.cancelled() => break,
            next = rx.recv() => next,
            Some(()) = workers.next() => continue,
        };
        let Some(report) = next else { break };
        if record_report(summary, report, progress) {
            break;
        }
    }
    // Windows committed (or failed) before the stop whose reports were still queued.
    drop(workers);
    while let Ok(report) = rx.try_recv() {
        record_report(summary, report, progress);
    }
}

/// What a stream makes of one slot: its part files and counts.
type Made = (Vec<RoutedPart>, RouteCounts);

/// The ranges of a run, and the windows fetched in pieces.
type Queue = WorkQueue<Made>;

/// What a worker reports (through a channel; the size of a window's result costs nothing).
#[allow(clippy::large_enum_variant)]
enum WorkerReport {
    /// A window's result.
    Window(Window, Result<Done, WindowError>),
    /// A record that came after records of a later window, and is missing from the window it
    /// belongs to, committed before it came.
    Misordered { window: Window, id: i64 },
    /// A window whose stream stopped short was fetched again whole (see `windows_refetched`).
    Refetched,
}

/// Adds a report to the summary; whether the run must stop.
fn record_report(summary: &mut Summary, report: WorkerReport, progress: &dyn Progress) -> bool {
    match report {
        WorkerReport::Window(_, Ok(done)) => {
            progress.window_finished();
            record_done(summary, done);
            false
        }
        WorkerReport::Window(w, Err(e)) => {
            progress.window_finished();
            record_failure(summary, w, &e)
        }
        WorkerReport::Misordered { window, id } => {
            let e = WindowError::Misordered {
                window: window.id(),
                id,
            };
            tracing::error!(window = %window.id(), id, error = %e, "record missing from a committed window");
            summary.records_misordered += 1;
            summary.failures.push(Failure {
                window: window.id(),
                error: e.to_string(),
            });
            false
        }
        WorkerReport::Refetched => {
            summary.windows_refetched += 1;
            false
        }
    }
}

/// Where a worker reports each window's result, as soon as it has one.
type Results = mpsc::UnboundedSender<WorkerReport>;

/// Reports that `slot` failed: as its window's failure when it is the whole window or the first
/// piece of it to fail (a window fails once).
fn report_failed_slot(queue: &Queue, slot: Slot, error: WindowError, results: &Results) {
    if queue.pieces.fail(slot) {
        let _ = results.send(WorkerReport::Window(slot.window, Err(error)));
    }
}

/// One worker: windows exported alone (the open window; every window with offset pagination)
/// while there are any, then ranges until none is left to take or split.
async fn worker(
    context: &Context,
    queue: &Queue,
    alone: &std::sync::Mutex<VecDeque<(Window, bool)>>,
    results: Results,
    progress: &dyn Progress,
) {
    loop {
        let next = alone.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
        let Some((window, closed)) = next else { break };
        let result = export_window(context, window, closed, progress).await;
        let _ = results.send(WorkerReport::Window(window, result));
    }
    let room = |fetching: usize| budget_has_room(&context.client, fetching);
    while let Some(range) = queue.next(room).await {
        export_range(context, queue, range, &results, progress).await;
    }
}

/// Demand the budget is given, as a share of its rate, before another stream is started inside a
/// window: a stream keeps one request in flight, and the API's latency varies around its average,
/// so streams whose average pace just matches the budget leave some of it unused.
const STREAM_DEMAND: f64 = 1.1;

/// Whether the request budget has room for a stream more than the `fetching` ones: each makes one
/// request per API latency (measured so far), and together they ask less than the budget allows
/// (with [`STREAM_DEMAND`]'s margin). When the budget paces the run already, a stream more only
/// costs requests (its first page, the page in flight where it split, its window's count).
fn budget_has_room(client: &Client, fetching: usize) -> bool {
    room_for_a_stream(
        client.stats().latency(),
        client.budget().per_minute(),
        fetching,
    )
}

/// [`budget_has_room`] given the API's latency so far (`None` before the first answer: room) and
/// the budget's requests per minute.
fn room_for_a_stream(
    latency: Option<std::time::Duration>,
    per_minute: u32,
    fetching: usize,
) -> bool {
    let Some(latency) = latency else {
        return true;
    };
    let per_stream = 60.0 / latency.as_secs_f64().max(0.001);
    fetching as f64 * per_stream < STREAM_DEMAND * f64::from(per_minute)
}

/// How a range's stream ended.
enum StreamEnd {
    /// Every slot it owned was handed on.
    Done,
    /// It stopped before slot `.0`, which must be fetched again from its start (a refused
    /// cursor).
    Restart(usize, ApiError),
    /// It failed in slot `.0`.
    Failed(usize, WindowError),
}

/// Exports a range: one stream over its slots, each handed on as soon as the stream passes its
/// end; a refused cursor restarts the stream at the first slot not handed on.
async fn export_range(
    context: &Context,
    queue: &Queue,
    range: Arc<Range>,
    results: &Results,
    progress: &dyn Progress,
) {
    let mut from = 0;
    let mut restarts = 0;
    loop {
        let failure = match stream_range(context, queue, &range, from, results, progress).await {
            StreamEnd::Done => return,
            StreamEnd::Restart(i, error) if restarts < MAX_WINDOW_RESTARTS || i > from => {
                // The budget of restarts is per slot: one that made progress starts afresh.
                restarts = if i > from { 1 } else { restarts + 1 };
                tracing::warn!(window = %range.slot(i).window.id(), %error, restarts, "cursor refused; restarting the range at this window");
                from = i;
                continue;
            }
            StreamEnd::Restart(i, error) => (i, WindowError::Api(error)),
            StreamEnd::Failed(i, error) => (i, error),
        };
        let (i, error) = failure;
        let mut rest = range.abandon(i);
        if matches!(error, WindowError::Decode(_)) && rest.len() > 1 {
            // A record that does not decode is somewhere in the rest of the range (decoding
            // stops at it): both halves are fetched again as ranges of their own, so the window
            // that holds it is found in a few streams and fails alone.
            let tail = rest.split_off(rest.len() / 2);
            queue.push_front(tail);
            queue.push_front(rest);
            return;
        }
        let mut rest = rest.into_iter();
        let failed = rest
            .next()
            .expect("the slot the stream failed in is the range's");
        let cause = error.to_string();
        report_failed_slot(queue, failed, error, results);
        fail_rest(queue, rest, &cause, results);
        return;
    }
}

/// Fails the slots of a range after one that failed: the next run fetches them again.
fn fail_rest(queue: &Queue, rest: impl IntoIterator<Item = Slot>, cause: &str, results: &Results) {
    for slot in rest {
        let cause = cause.to_string();
        report_failed_slot(queue, slot, WindowError::RangeFailed { cause }, results);
    }
}

/// What the encoder thread of a range hands on: slot `.0` of the range, as it ended, complete,
/// and whether it is to be counted before its commit (a whole window before a cut at a window
/// boundary; see [`Range::shortened`]).
type Routed = (usize, Slot, Made, bool);

/// Pages for the encoder thread, then whether the query ended (every page read).
enum Handoff {
    Pages(Vec<Page>),
    Complete,
}

/// Streams the range's slots from slot `from` on: fetches the pages of one query over them,
/// routes the records on a blocking thread, and commits each window the stream has passed (or,
/// for a piece, once its window's last piece is in).
async fn stream_range(
    context: &Context,
    queue: &Queue,
    range: &Arc<Range>,
    from: usize,
    results: &Results,
    progress: &dyn Progress,
) -> StreamEnd {
    let owned = range.owned_from(from);
    let (Some(first), Some(last)) = (owned.first().copied(), owned.last().copied()) else {
        return StreamEnd::Done;
    };
    range.stream_starts(from);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (page_tx, page_rx) = mpsc::channel::<Handoff>(PIPELINE_DEPTH);
    let (routed_tx, routed_rx) = mpsc::channel::<Routed>(PIPELINE_DEPTH);
    let mut routing = RangeRouting {
        range: range.clone(),
        from,
        at: from,
        router: WindowRouter::piece(first.piece, first.window, context.config.tmp_dir.clone()),
        done: false,
        tmp_dir: context.config.tmp_dir.clone(),
        stop: stop.clone(),
        out: routed_tx,
        misordered: Vec::new(),
    };
    let encoder = tokio::task::spawn_blocking(move || {
        let routed = routing.run(page_rx);
        (routed, routing.at, routing.done, routing.misordered)
    });

    let request = PageRequest {
        filters: context.config.filters.clone(),
        created_at: Some((first.piece.start - 1, last.piece.end)),
        pagination: context.config.pagination,
    };
    let fetch = fetch_range(context, range, request, page_tx, &stop, progress);
    let commit = commit_routed(context, queue, routed_rx, &stop, results, progress);
    let (fetched, (committed, commit_failed)) = tokio::join!(fetch, commit);
    range.stream_ends();
    let (routed, at, done, misordered) = encoder.await.expect("the encoder thread does not panic");
    report_misordered(context, range, &committed, &misordered, results).await;
    if let Some(i) = commit_failed {
        fail_rest(
            queue,
            range.abandon(i + 1),
            "a window before it could not be committed",
            results,
        );
        return StreamEnd::Done;
    }
    // Every owned slot handed on (and committed above): whatever the fetch did after the
    // range's end does not matter.
    if done {
        return StreamEnd::Done;
    }
    match (routed, fetched) {
        (Err(error), _) => StreamEnd::Failed(at, error),
        (Ok(()), Err(error @ ApiError::CursorRefused { .. })) => StreamEnd::Restart(at, error),
        (Ok(()), Err(error)) => StreamEnd::Failed(at, WindowError::Api(error)),
        // The fetch ended and sent its end, so the encoder handed every slot on (`done`);
        // should it not have, the rest is failed rather than left out of the run's accounting.
        (Ok(()), Ok(())) => StreamEnd::Failed(
            at,
            WindowError::RangeFailed {
                cause: "its range's stream ended before the window's end".into(),
            },
        ),
    }
}

/// Fetches a range stream's pages for its encoder until the query ends (then says so), a page
/// reaches the range's end, or the encoder stops. `page_tx` is owned: the encoder sees the channel
/// close when the fetch ends, however it ends.
async fn fetch_range(
    context: &Context,
    range: &Range,
    request: PageRequest,
    page_tx: mpsc::Sender<Handoff>,
    stop: &std::sync::atomic::AtomicBool,
    progress: &dyn Progress,
) -> Result<(), ApiError> {
    let mut pages = pin!(pagination::pages(context.client.clone(), request));
    let mut handoff = Vec::with_capacity(PAGES_PER_HANDOFF);
    while !stop.load(Ordering::Relaxed) {
        let Some(page) = pages.next().await else {
            // Every record of the query is fetched: there is no rest to split.
            range.stream_ends();
            if !handoff.is_empty() && page_tx.send(Handoff::Pages(handoff)).await.is_err() {
                return Ok(());
            }
            let _ = page_tx.send(Handoff::Complete).await;
            return Ok(());
        };
        let page = page?;
        context.count_page(&page, progress);
        let reached = page
            .last_created_at
            .as_deref()
            .and_then(parse_timestamp_ms)
            .map(|ms| ms.div_euclid(1_000));
        // Before the page goes to the encoder: a split inside starts past what is fetched.
        range.fetched(page.records, reached);
        // A page that reaches the range's end (which a split may have moved down) is the
        // stream's last: the encoder hands the last slot on at its first record past the end.
        // So a split costs at most the page in flight.
        let past_end = reached.is_some_and(|second| second >= range.end_time());
        handoff.push(page);
        if handoff.len() == PAGES_PER_HANDOFF || past_end {
            let full = std::mem::replace(&mut handoff, Vec::with_capacity(PAGES_PER_HANDOFF));
            if page_tx.send(Handoff::Pages(full)).await.is_err() || past_end {
                // The encoder stopped (its outcome is the one to report), or has what it needs.
                return Ok(());
            }
        }
    }
    // The range was split and the encoder passed its new end.
    Ok(())
}

/// Commits each window a range stream hands on, in order, and reports it: a whole window at once,
/// a piece once its window's last piece is in (by whichever stream hands that on). Stops at the
/// first commit that fails (returning its slot), closing the channel so that the encoder stops
/// too. Returns the windows committed, by slot.
async fn commit_routed(
    context: &Context,
    queue: &Queue,
    mut routed_rx: mpsc::Receiver<Routed>,
    stop: &std::sync::atomic::AtomicBool,
    results: &Results,
    progress: &dyn Progress,
) -> (BTreeMap<usize, WindowRecord>, Option<usize>) {
    let mut committed = BTreeMap::new();
    while let Some((i, slot, made, count)) = routed_rx.recv().await {
        let result = match queue.pieces.deposit(slot, made) {
            Deposit::Whole(made) if count => {
                commit_counted(context, queue, slot.window, made, results, progress).await
            }
            Deposit::Whole((parts, counts)) => {
                commit_range_window(context, slot.window, parts, counts).await
            }
            Deposit::Complete(pieces) => {
                let made = join_pieces(pieces);
                commit_counted(context, queue, slot.window, made, results, progress).await
            }
            Deposit::Waiting | Deposit::Dropped => continue,
        };
        let failed = match &result {
            Ok(done) => {
                committed.insert(i, done.record.clone());
                false
            }
            Err(_) => true,
        };
        let _ = results.send(WorkerReport::Window(slot.window, result));
        if failed {
            // Nothing after it is committed: the stream stops, the rest fails. Closing the
            // channel makes the encoder's next hand-on fail, so it stops too.
            stop.store(true, Ordering::Relaxed);
            routed_rx.close();
            return (committed, Some(i));
        }
    }
    (committed, None)
}

/// Commits a window whose stream stopped short of its query's end (a window fetched in pieces,
/// or the last window before a cut at a window boundary) once its records add up to Zendesk's
/// count of the window (one or two requests). A record served out of order past the stop is in
/// no stream: the stream that held it stopped, and the next one's query starts later. Short of
/// the count, or when only listing the window whole would count it (a full page of records in a
/// margin second, an API without the offset form), the window is fetched again whole, as a query
/// of its own (as before ranges), and that is committed; after an uncounted window no window is
/// split inside for the rest of the run, since each would be fetched twice.
async fn commit_counted(
    context: &Context,
    queue: &Queue,
    window: Window,
    (parts, counts): Made,
    results: &Results,
    progress: &dyn Progress,
) -> Result<Done, WindowError> {
    match quick_count(&context.client, &context.config.filters, &window).await? {
        Some(zendesk) if zendesk > counts.kept => tracing::warn!(
            window = %window.id(),
            fetched = counts.kept,
            zendesk,
            "a window holds fewer records than Zendesk counts; fetching it again whole"
        ),
        Some(zendesk) => {
            if zendesk < counts.kept {
                tracing::warn!(window = %window.id(), fetched = counts.kept, zendesk, "a window holds more records than Zendesk counts");
            }
            return commit_range_window(context, window, parts, counts).await;
        }
        None => {
            tracing::info!(window = %window.id(), "no quick count of the window; fetching it again whole, and splitting no window inside from now on");
            queue.no_more_pieces();
        }
    }
    drop(parts);
    let (parts, counts) = fetch_window(context, window, progress).await?;
    let _ = results.send(WorkerReport::Refetched);
    commit_range_window(context, window, parts, counts).await
}

/// One window's files and counts from its pieces, in order: part numbers run on per day across
/// the pieces (each piece numbered its own from 0).
fn join_pieces(pieces: Vec<Made>) -> Made {
    let mut parts = Vec::new();
    let mut counts = RouteCounts::default();
    let mut next_seq: BTreeMap<chrono::NaiveDate, u32> = BTreeMap::new();
    for (mut piece_parts, piece_counts) in pieces {
        piece_parts.sort_by_key(|p| (p.day, p.seq));
        for mut part in piece_parts {
            let seq = next_seq.entry(part.day).or_insert(0);
            part.seq = *seq;
            *seq += 1;
            parts.push(part);
        }
        counts.add(piece_counts);
    }
    (parts, counts)
}

/// Commits a closed window of a range.
async fn commit_range_window(
    context: &Context,
    window: Window,
    parts: Vec<RoutedPart>,
    counts: RouteCounts,
) -> Result<Done, WindowError> {
    let (record, created) = context.committer.commit_closed(&window, parts).await?;
    Ok(Done {
        window,
        closed: true,
        committed: created == Created::Created,
        record,
        counts,
    })
}

/// Records that came after later ones (`sort=created_at` broken): each is looked up in the files
/// of the (whole) window it belongs to, committed before it came; one missing there fails that
/// window's report (the run exits 1 and says to repair). A window whose commit failed is failed
/// already.
async fn report_misordered(
    context: &Context,
    range: &Range,
    committed: &BTreeMap<usize, WindowRecord>,
    misordered: &[(usize, i64)],
    results: &Results,
) {
    let mut held: BTreeMap<usize, std::collections::HashSet<i64>> = BTreeMap::new();
    for &(i, id) in misordered {
        let ids = match (held.get(&i), committed.get(&i)) {
            (Some(ids), _) => ids,
            (None, Some(record)) => {
                let ids = ids_in_lake(context.committer.lake(), record)
                    .await
                    .unwrap_or_default();
                held.entry(i).or_insert(ids)
            }
            (None, None) => continue,
        };
        if !ids.contains(&id) {
            let window = range.slot(i).window;
            let _ = results.send(WorkerReport::Misordered { window, id });
        }
    }
}

/// The encoder side of a range's stream: routes each record to its slot, and hands a slot on as
/// soon as a record past its end arrives (records come in `created_at` order across seconds, and
/// slot bounds are whole seconds).
struct RangeRouting {
    range: Arc<Range>,
    /// The slot the stream started at.
    from: usize,
    /// The slot being routed: the first not handed on.
    at: usize,
    router: WindowRouter,
    /// Every slot the range owns was handed on.
    done: bool,
    tmp_dir: std::path::PathBuf,
    /// Set once the stream passed the range's end (moved down by a split): fetch no more.
    stop: Arc<std::sync::atomic::AtomicBool>,
    out: mpsc::Sender<Routed>,
    /// Records of an earlier slot that came after a later slot's: `(slot, id)`.
    misordered: Vec<(usize, i64)>,
}

/// Misordered records remembered per stream: one is enough to act; the cap bounds memory.
const MISORDERED_KEPT: usize = 1_000;

impl RangeRouting {
    /// Routes every handed-off page until the query ends (then every owned slot is handed on:
    /// `done`), the range's end is passed, or the pages stop coming (the fetch failed).
    ///
    /// Once every owned slot is handed on, the pages already fetched are still read to the end,
    /// for records of an earlier slot served after later ones (see [`RangeRouting::push`]).
    fn run(&mut self, mut pages: mpsc::Receiver<Handoff>) -> Result<(), WindowError> {
        while let Some(handoff) = pages.blocking_recv() {
            let pages = match handoff {
                Handoff::Pages(pages) => pages,
                Handoff::Complete if self.done => return Ok(()),
                Handoff::Complete => {
                    while self.hand_on()? {}
                    return Ok(());
                }
            };
            for page in pages {
                let mut failed = None;
                let decoded = decode_page(&page.body, Schema::get(), |row| {
                    if failed.is_none() && (self.done || !self.stop.load(Ordering::Relaxed)) {
                        failed = self.push(&row).err();
                    }
                });
                if let Err(e) = decoded {
                    if !self.done {
                        return Err(e.into());
                    }
                    // Past the range's end, a record that does not decode is another range's:
                    // the pages after it are not read for late records.
                    tracing::warn!(error = %e, "a page past the range's end does not decode; it is not read for late records");
                    return Ok(());
                }
                if let Some(e) = failed {
                    return Err(e);
                }
                if self.stop.load(Ordering::Relaxed) && !self.done {
                    // The committer stopped (a failed commit).
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    fn push(&mut self, row: &crate::table::decode::Row<'_, '_>) -> Result<(), WindowError> {
        let second = row.created_at.div_euclid(1_000);
        if self.done {
            self.note_late(second, row.id, self.at + 1);
            return Ok(());
        }
        // Under the range's lock: a record the router takes is never past a split's cut.
        while !self.range.admit(self.at, second) {
            if !self.hand_on()? {
                return Ok(());
            }
        }
        self.note_late(second, row.id, self.at);
        Ok(self.router.push(row)?)
    }

    /// Remembers a record of second `second` if it belongs to a slot before `before` that was
    /// handed on already: it came after a later slot's records. Only whole windows are looked up
    /// later; a window fetched in pieces is checked against Zendesk's count before its commit.
    fn note_late(&mut self, second: i64, id: i64, before: usize) {
        if before <= self.from || self.misordered.len() >= MISORDERED_KEPT {
            return;
        }
        let earlier = (self.from..before)
            .rev()
            .map(|i| (i, self.range.slot(i)))
            .find(|(_, slot)| slot.piece.contains(second));
        if let Some((i, slot)) = earlier {
            if slot.is_whole() {
                self.misordered.push((i, id));
            }
        }
    }

    /// Hands the current slot on and moves to the next; `false` when the next one is not the
    /// range's (its end moved down), and the stream stops.
    fn hand_on(&mut self) -> Result<bool, WindowError> {
        let (slot, mine) = self.range.finish(self.at);
        let next = if mine {
            self.range.slot(self.at + 1)
        } else {
            // The last slot: leave a router that routes nothing more.
            self.stop.store(true, Ordering::Relaxed);
            slot
        };
        let router = std::mem::replace(
            &mut self.router,
            WindowRouter::piece(next.piece, next.window, self.tmp_dir.clone()),
        );
        let made = router.finish()?;
        let count = !mine && slot.is_whole() && self.range.shortened();
        if self
            .out
            .blocking_send((self.at, slot, made, count))
            .is_err()
        {
            // The committer stopped (a failed commit): nothing more is handed on.
            self.stop.store(true, Ordering::Relaxed);
            return Ok(false);
        }
        if mine {
            self.at += 1;
        } else {
            self.done = true;
        }
        Ok(mine)
    }
}

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
    export_config.api.subdomain = subdomain.clone();

    let lease = Lease::acquire(&lake, &subdomain, export_config.lease_ttl, &holder_name()).await?;
    let stop_renewing = CancellationToken::new();
    let lost = CancellationToken::new();
    let committer = Committer::new(lake.clone(), manifest, &subdomain, lease.fence());
    let renewal = lease.keep(stop_renewing.clone(), lost.clone());
    let outcome = tokio::select! {
        outcome = repair_leased(export_config, client, &config.check, lake, committer) => outcome,
        () = cancel.cancelled() => Err(RunError::Interrupted),
        () = lost.cancelled() => Err(RunError::Lease(LeaseError::Lost {
            subdomain: subdomain.clone(),
            holder: "another run".into(),
        })),
    };
    match let_go(renewal, stop_renewing, &lost).await {
        Some(e) if outcome.is_ok() || lost.is_cancelled() => Err(RunError::Lease(e)),
        _ => outcome,
    }
}

async fn repair_leased(
    config: ExportConfig,
    client: Client,
    check: &crate::config::VerifyConfig,
    lake: Lake,
    committer: Committer,
) -> Result<RepairOutcome, RunError> {
    let manifest = committer.manifest().clone();
    let generations = manifest.generations().await?;
    let repairs_converged = converge_repairs(&committer, config.grid, &generations).await?;
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
    };
    let mut windows_repaired = Vec::new();
    let mut failures = Vec::new();
    for start in before.windows_to_reexport() {
        let window = Window {
            start,
            end: start + context.config.grid.seconds(),
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
        match repair_window(&context, &window, generation, &reason, damaged).await {
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

/// Re-exports one committed window and replaces it atomically.
async fn repair_window(
    context: &Context,
    window: &Window,
    generation: Option<u32>,
    reason: &str,
    damaged: bool,
) -> Result<WindowRecord, WindowError> {
    let generation = generation.unwrap_or(1);
    let manifest = context.committer.manifest();
    // A marker that does not parse still has a generation: the repair writes the next one.
    let current = match manifest.marker(window, generation).await {
        Ok(Some(record)) => record,
        Ok(None) | Err(ManifestError::Corrupt { .. }) => {
            let mut placeholder = WindowRecord::new(window, Vec::new());
            placeholder.generation = generation;
            placeholder
        }
        Err(e) => return Err(e.into()),
    };
    let (mut parts, _) = fetch_window(context, *window, &NoProgress).await?;
    if !damaged {
        // Intact files, only a count that grew at Zendesk: never drop what the lake holds.
        let dropped = records_dropped(context, &current, &mut parts).await?;
        if dropped > 0 {
            return Err(WindowError::WouldDrop {
                window: window.id(),
                dropped,
            });
        }
    }
    let rows: u64 = parts.iter().map(|p| p.part.rows).sum();
    if rows < current.rows {
        tracing::warn!(window = %window.id(), before = current.rows, now = rows, "the re-export holds fewer records than the window's marker recorded");
    }
    Ok(context
        .committer
        .replace(window, &current, parts, reason)
        .await?)
}

/// Finishes the repairs that a crash interrupted, so readers stop seeing two generations.
async fn converge_repairs(
    committer: &Committer,
    grid: window::Grid,
    generations: &std::collections::BTreeMap<i64, u32>,
) -> Result<u64, RunError> {
    let manifest = committer.manifest();
    let mut converged = 0;
    for start in manifest.unfinished_repairs().await? {
        let window = Window {
            start,
            end: start + grid.seconds(),
        };
        let current = match generations.get(&start) {
            Some(&generation) => match manifest.marker(&window, generation).await {
                Ok(Some(current)) => Some(current),
                Ok(None) => continue,
                // Which files are the window's cannot be told: leave everything (and the
                // journal) for `repair`, which re-exports the window.
                Err(e @ ManifestError::Corrupt { .. }) => {
                    tracing::error!(window = %window.id(), error = %e, "an interrupted repair cannot be finished: the window's marker does not parse; run `auditlake repair`");
                    continue;
                }
                Err(e) => return Err(e.into()),
            },
            // No marker at all (removed by hand?): nothing says which files are the window's.
            // They stay, as uncommitted parts that the window's next export replaces.
            None => {
                tracing::warn!(window = %window.id(), "a repair journal names a window without a marker; its files are left for the window's next export");
                committer.manifest().end_repair(&window).await?;
                continue;
            }
        };
        let removed = committer
            .converge(&window, current.as_ref())
            .await
            .map_err(RunError::from)?;
        tracing::warn!(window = %window.id(), removed, "finished a repair that was interrupted");
        converged += 1;
    }
    Ok(converged)
}

/// Records a failed window; returns whether the run must stop (access refused, the store down,
/// the lease no longer held).
fn record_failure(summary: &mut Summary, w: Window, e: &WindowError) -> bool {
    summary.windows_failed += 1;
    tracing::error!(window = %w.id(), error = %e, "window failed");
    summary.failures.push(Failure {
        window: w.id(),
        error: e.to_string(),
    });
    if e.is_lease() {
        summary.lease_lost = true;
        summary.fatal = Some(e.to_string());
        return true;
    }
    if e.is_storage() {
        summary.store_failed = true;
        summary.fatal = Some(format!(
            "the destination failed; no further window was started: {e}"
        ));
        return true;
    }
    if matches!(e, WindowError::Api(api) if api.is_fatal_for_run()) {
        summary.fatal = Some(e.to_string());
        return true;
    }
    false
}

/// The committed windows that `--recheck` covers: those ending within the recheck span plus one
/// window before the run's end, committed before this run (a window this run exported is fresh).
/// The extra window matters on a schedule: a daily run commits yesterday's window, and the next
/// day's run, whose end is a day later, must still recheck it.
fn recheck_windows(config: &ExportConfig, closed: &[Window], done: &BTreeSet<i64>) -> Vec<Window> {
    let span = config.recheck.as_secs() as i64;
    if span == 0 {
        return Vec::new();
    }
    let cutoff = config
        .until
        .saturating_sub(span.saturating_add(config.grid.seconds()));
    closed
        .iter()
        .filter(|w| done.contains(&w.start) && w.end > cutoff)
        .copied()
        .collect()
}

/// Re-counts `windows` against the API and repairs those where Zendesk now holds more records
/// than the lake (records that became visible after the settle lag).
async fn recheck_and_repair(
    context: &Context,
    windows: &[Window],
    cancel: &CancellationToken,
    lost: &CancellationToken,
    summary: &mut Summary,
) {
    let manifest = context.committer.manifest();
    let generations = match manifest.generations().await {
        Ok(g) => g,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the markers to recheck");
            summary.store_failed = true;
            summary.fatal = Some(e.to_string());
            return;
        }
    };
    for window in windows {
        if cancel.is_cancelled() || lost.is_cancelled() {
            summary.interrupted |= cancel.is_cancelled();
            return;
        }
        let Some(&generation) = generations.get(&window.start) else {
            continue;
        };
        let outcome = recheck_one(context, window, Some(generation)).await;
        summary.windows_rechecked += 1;
        match outcome {
            Ok(Recheck::Same) => {}
            Ok(Recheck::Repaired { lake, api }) => {
                summary.windows_repaired += 1;
                tracing::warn!(window = %window.id(), lake, api, "recheck: Zendesk holds more records than the lake; window repaired");
            }
            Ok(Recheck::WouldDrop { lake, api, dropped }) => {
                summary.windows_api_fewer += 1;
                tracing::warn!(window = %window.id(), lake, api, dropped, "recheck: Zendesk holds new records but no longer some the lake holds; the window is left as it is (run `auditlake repair` to look at it)");
            }
            Ok(Recheck::ApiFewer { lake, api }) => {
                summary.windows_api_fewer += 1;
                tracing::warn!(window = %window.id(), lake, api, "recheck: Zendesk now returns fewer records than the lake holds; the lake keeps them");
            }
            Err(e) => {
                if record_failure(summary, *window, &e) {
                    return;
                }
            }
        }
    }
}

/// What a recheck found.
enum Recheck {
    Same,
    Repaired {
        lake: u64,
        api: u64,
    },
    ApiFewer {
        lake: u64,
        api: u64,
    },
    /// Zendesk holds more records, but no longer some the lake holds: not replaced.
    WouldDrop {
        lake: u64,
        api: u64,
        dropped: u64,
    },
}

async fn recheck_one(
    context: &Context,
    window: &Window,
    generation: Option<u32>,
) -> Result<Recheck, WindowError> {
    let manifest = context.committer.manifest();
    let Some(current) = (match generation {
        Some(g) => manifest.marker(window, g).await?,
        None => None,
    }) else {
        return Ok(Recheck::Same);
    };
    let api = count_window(&context.client, &context.config.filters, window).await?;
    let lake = current.rows;
    if api == lake {
        return Ok(Recheck::Same);
    }
    if api < lake {
        return Ok(Recheck::ApiFewer { lake, api });
    }
    let (mut parts, _) = fetch_window(context, *window, &NoProgress).await?;
    let dropped = records_dropped(context, &current, &mut parts).await?;
    if dropped > 0 {
        return Ok(Recheck::WouldDrop { lake, api, dropped });
    }
    let reason = format!("recheck: the API held {api} records, the lake {lake}");
    context
        .committer
        .replace(window, &current, parts, &reason)
        .await?;
    Ok(Recheck::Repaired { lake, api })
}

/// How many records of the window's current files a re-export no longer has: an archive keeps
/// what it holds, so a replacement that would drop any is not made.
async fn records_dropped(
    context: &Context,
    current: &WindowRecord,
    parts: &mut [RoutedPart],
) -> Result<u64, WindowError> {
    let fresh = ids_of_parts(parts)?;
    let held = ids_in_lake(context.committer.lake(), current).await?;
    Ok(held.iter().filter(|id| !fresh.contains(id)).count() as u64)
}

fn record_done(summary: &mut Summary, done: Done) {
    summary.rows += done.record.rows;
    summary.files += done.record.files.len() as u64;
    summary.bytes_written += done.record.bytes;
    summary.duplicates_dropped += done.counts.duplicates;
    for (field, rows) in &done.counts.extra_fields {
        *summary.extra_fields.entry(field.clone()).or_insert(0) += rows;
    }
    if done.counts.out_of_order > 0 {
        tracing::warn!(
            window = %done.window.id(),
            rows = done.counts.out_of_order,
            "the API returned rows out of created_at order; all were written, the files affected declare no sort order"
        );
    }
    if done.closed {
        summary.windows_done += 1;
        if !done.committed {
            tracing::warn!(window = %done.window.id(), "window was committed by another run first");
        }
    } else {
        summary.open_window = Some(done.window.to_string());
    }
    tracing::info!(
        window = %done.window.id(),
        closed = done.closed,
        rows = done.record.rows,
        files = done.record.files.len(),
        bytes = done.record.bytes,
        outside = done.counts.outside,
        duplicates = done.counts.duplicates,
        "window exported"
    );
}

/// Where the data of a range starts, as one search found it.
#[derive(Debug)]
enum DataStart {
    /// The second of the earliest record in the range.
    At(i64),
    /// The range holds no record.
    Nowhere,
    /// The search gave up (the margin second filled its pages, or a page did not decode).
    Unknown,
    /// The API failed the search (after its retries).
    Failed(ApiError),
}

/// Starts where the data starts: one request finds the earliest record at or after the first
/// pending closed window (up to the last one's end), and the pending closed windows that end
/// before it are committed empty (files: none; a marker like any other) without a request each.
/// A backfill from years before an account's first record costs one request, not one per window.
/// Exact as a window's own query is: the same filters, the same one-second margin below (the
/// bounds may be inclusive or exclusive), and records come in `created_at` order across seconds.
/// Returns the windows still to export.
async fn commit_empty_start(
    context: &Arc<Context>,
    pending: Vec<(Window, bool)>,
    progress: &dyn Progress,
    summary: &mut Summary,
) -> Vec<(Window, bool)> {
    let closed: Vec<Window> = pending.iter().filter(|p| p.1).map(|p| p.0).collect();
    let (Some(first), Some(last)) = (closed.first(), closed.last()) else {
        return pending;
    };
    let start = match data_start(context, first.start, last.end).await {
        DataStart::At(second) => second,
        DataStart::Nowhere => i64::MAX,
        DataStart::Unknown => return pending,
        // Refused credentials or access end the run here, as its first window would.
        DataStart::Failed(e) if e.is_fatal_for_run() => {
            record_failure(summary, *first, &WindowError::Api(e));
            return Vec::new();
        }
        DataStart::Failed(error) => {
            tracing::warn!(%error, "could not find where the data starts; asking every window");
            return pending;
        }
    };
    let (empty, rest): (Vec<_>, Vec<_>) = pending
        .into_iter()
        .partition(|(w, closed)| *closed && w.end <= start);
    if !empty.is_empty() {
        tracing::info!(
            windows = empty.len(),
            data_from = %if start == i64::MAX { "none in the range".to_string() } else { window::format_rfc3339(start) },
            "committing the windows before the first record empty, without a request each"
        );
    }
    for (window, _) in empty {
        let committed = context.committer.commit_closed(&window, Vec::new()).await;
        progress.window_finished();
        match committed {
            Ok((record, created)) => record_done(
                summary,
                Done {
                    window,
                    closed: true,
                    committed: created == Created::Created,
                    record,
                    counts: RouteCounts::default(),
                },
            ),
            Err(e) => {
                if record_failure(summary, window, &e.into()) {
                    // The destination or the lease failed: no further window is started.
                    return Vec::new();
                }
            }
        }
    }
    rest
}

/// The second of the earliest record created in `[from, to)`, from the first page (or first few
/// pages) of the range's query in `created_at` order.
async fn data_start(context: &Context, from: i64, to: i64) -> DataStart {
    let request = PageRequest {
        filters: context.config.filters.clone(),
        created_at: Some((from - 1, to)),
        pagination: context.config.pagination,
    };
    let mut pages = pin!(pagination::pages(context.client.clone(), request));
    for _ in 0..FIRST_RECORD_PAGES {
        let Some(page) = pages.next().await else {
            // The query ended without a record in the range.
            return DataStart::Nowhere;
        };
        let page = match page {
            Ok(page) => page,
            Err(error) => return DataStart::Failed(error),
        };
        let mut earliest: Option<i64> = None;
        let decoded = decode_page(&page.body, Schema::get(), |row| {
            let second = row.created_at.div_euclid(1_000);
            if (from..to).contains(&second) {
                earliest = Some(earliest.map_or(second, |e| e.min(second)));
            }
        });
        if decoded.is_err() {
            // The window that holds the bad record reports it, with its context.
            return DataStart::Unknown;
        }
        if let Some(second) = earliest {
            return DataStart::At(second);
        }
    }
    DataStart::Unknown
}

/// Exports one window, restarting it from the first page if the API refuses a cursor.
async fn export_window(
    context: &Context,
    window: Window,
    closed: bool,
    progress: &dyn Progress,
) -> Result<Done, WindowError> {
    let (parts, counts) = fetch_window(context, window, progress).await?;
    let (record, committed) = if closed {
        let (record, created) = context.committer.commit_closed(&window, parts).await?;
        (record, created == Created::Created)
    } else {
        (context.committer.refresh_open(&window, parts).await?, false)
    };
    Ok(Done {
        window,
        closed,
        committed,
        record,
        counts,
    })
}

/// Fetches and encodes a window's records into temporary part files, restarting from the first
/// page if the API refuses a cursor.
async fn fetch_window(
    context: &Context,
    window: Window,
    progress: &dyn Progress,
) -> Result<(Vec<RoutedPart>, RouteCounts), WindowError> {
    let mut restarts = 0;
    loop {
        match fetch_and_encode(context, window, progress).await {
            Err(WindowError::Api(ApiError::CursorRefused { url, .. }))
                if restarts < MAX_WINDOW_RESTARTS =>
            {
                restarts += 1;
                tracing::warn!(window = %window.id(), url = %url, restarts, "cursor refused; restarting the window");
            }
            other => return other,
        }
    }
}

/// Fetches the window's pages and, on a blocking thread, decodes and writes them to temporary
/// Parquet files.
async fn fetch_and_encode(
    context: &Context,
    window: Window,
    progress: &dyn Progress,
) -> Result<(Vec<RoutedPart>, RouteCounts), WindowError> {
    let (tx, mut rx) = mpsc::channel::<Vec<Page>>(PIPELINE_DEPTH);
    let router = WindowRouter::new(window, context.config.tmp_dir.clone());
    let encoder = tokio::task::spawn_blocking(move || -> Result<_, WindowError> {
        let mut router = router;
        while let Some(pages) = rx.blocking_recv() {
            for page in pages {
                let mut write_error = None;
                decode_page(&page.body, Schema::get(), |row| {
                    if write_error.is_none() {
                        write_error = router.push(&row).err();
                    }
                })?;
                if let Some(e) = write_error {
                    return Err(e.into());
                }
            }
        }
        Ok(router.finish()?)
    });

    let request = PageRequest {
        filters: context.config.filters.clone(),
        created_at: Some(window.query_range()),
        pagination: context.config.pagination,
    };
    let fetched: Result<(), WindowError> = async {
        let mut pages = pin!(pagination::pages(context.client.clone(), request));
        let mut handoff = Vec::with_capacity(PAGES_PER_HANDOFF);
        while let Some(page) = pages.next().await {
            let page = page?;
            context.count_page(&page, progress);
            handoff.push(page);
            if handoff.len() == PAGES_PER_HANDOFF {
                let full = std::mem::replace(&mut handoff, Vec::with_capacity(PAGES_PER_HANDOFF));
                if tx.send(full).await.is_err() {
                    // The encoder stopped early: its error is the one to report.
                    return Ok(());
                }
            }
        }
        if !handoff.is_empty() {
            // An error here means the encoder stopped early: its error is the one to report.
            let _ = tx.send(handoff).await;
        }
        Ok(())
    }
    .await;
    drop(tx);
    let encoded = encoder.await.expect("the encoder thread does not panic");
    fetched?;
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_stream_more_only_while_the_fetching_ones_leave_the_budget_unused() {
        let ms = |n| Some(Duration::from_millis(n));
        // Before the first answer nothing is known: room.
        assert!(room_for_a_stream(None, 700, 8));
        // 250 ms a page: 240 requests a minute a stream. Three ask 720, within 110% of 700: a
        // fourth is worth it; four ask 960: no fifth.
        assert!(room_for_a_stream(ms(250), 700, 3));
        assert!(!room_for_a_stream(ms(250), 700, 4));
        // 150 ms a page against 350 a minute: one stream (400) keeps the budget busy alone.
        assert!(!room_for_a_stream(ms(150), 350, 1));
        assert!(room_for_a_stream(ms(150), 350, 0));
    }
}
