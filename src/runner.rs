//! The export run: plan windows, export the pending ones with bounded concurrency, commit each
//! closed window once its files are in place, and report.
//!
//! A window is an atomic unit: it counts only once committed, so dropping in-flight work (Ctrl-C,
//! SIGTERM, a fatal error elsewhere) is always safe: the next run redoes it from scratch.

use std::collections::BTreeSet;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use object_store::path::Path;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::ExportConfig;
use crate::decode::{decode_page, DecodeError};
use crate::lease::{holder_name, Lease, LeaseError};
use crate::manifest::{Dataset, FileEntry, Manifest, ManifestError, WindowRecord};
use crate::route::{RouteCounts, RoutedPart, WindowRouter};
use crate::schema::Schema;
use crate::storage::part_file::PartError;
use crate::storage::{layout, Created, Lake, StorageError};
use crate::window::{self, Window};
use crate::zendesk::{pagination, ApiError, Client, Page, PageRequest, RequestBudget};

/// Pages handed to the encoder thread at a time: waking a thread costs system time (a futex
/// wake and a context switch), so it is woken once per handoff rather than once per page.
const PAGES_PER_HANDOFF: usize = 4;

/// Handoffs fetched ahead of decoding, per window: lets the network and the decoder overlap while
/// bounding the memory of pages in flight (each about 50 KB).
const PIPELINE_DEPTH: usize = 2;

/// Times a window restarts from its first page after the API refuses a cursor (an expired or
/// unknown cursor; their lifetime is undocumented).
const MAX_WINDOW_RESTARTS: u32 = 3;

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
}

/// Why the run as a whole could not go on.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("{0}")]
    Client(String),
    #[error(transparent)]
    Lease(#[from] LeaseError),
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
    pub seconds: f64,
    /// A fatal error that stopped the whole run (401, 403).
    pub fatal: Option<String>,
    pub interrupted: bool,
    /// The run stopped because another run took its lease over.
    pub lease_lost: bool,
    pub failures: Vec<Failure>,
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
    lake: Lake,
    manifest: Manifest,
    fetched: AtomicU64,
}

/// Observes progress (the CLI draws a bar with it).
pub trait Progress: Send + Sync {
    fn start(&self, windows: u64);
    fn records(&self, fetched: u64);
    fn window_finished(&self);
}

/// A progress observer that shows nothing.
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _: u64) {}
    fn records(&self, _: u64) {}
    fn window_finished(&self) {}
}

/// Runs an export until every pending window is done or failed, or `cancel` fires.
pub async fn export(
    config: ExportConfig,
    cancel: CancellationToken,
    progress: &dyn Progress,
) -> Result<Summary, RunError> {
    let started = Instant::now();
    let lake = Lake::open(&config.dest, &config.store)?;
    lake.verify_conditional_create().await?;
    let lease = Lease::acquire(
        &lake,
        &config.api.subdomain,
        config.lease_ttl,
        &holder_name(),
    )
    .await?;
    let stop_renewing = CancellationToken::new();
    let lost = CancellationToken::new();
    let renewal = lease.keep(stop_renewing.clone(), lost.clone());
    let outcome = export_leased(config, lake, cancel, lost.clone(), progress, started).await;
    stop_renewing.cancel();
    let lease = renewal.await.expect("the renewal task does not panic");
    if !lost.is_cancelled() {
        if let Err(e) = lease.release().await {
            tracing::warn!(error = %e, "could not release the lease; it expires by itself");
        }
    }
    let mut summary = outcome?;
    summary.lease_lost = lost.is_cancelled();
    if summary.lease_lost {
        summary.fatal = Some("another run took the lease over; this run stopped".into());
    }
    Ok(summary)
}

/// The run proper, under the lease; `lost` fires if the lease is lost.
async fn export_leased(
    config: ExportConfig,
    lake: Lake,
    cancel: CancellationToken,
    lost: CancellationToken,
    progress: &dyn Progress,
    started: Instant,
) -> Result<Summary, RunError> {
    let manifest = Manifest::new(lake.clone(), &config.api.subdomain);
    manifest
        .pin(&Dataset::new(
            &config.api.subdomain,
            config.grid,
            &config.filters,
        ))
        .await?;
    let done: BTreeSet<i64> = manifest.done().await?.into_iter().collect();
    let plan = window::plan(config.grid, config.since, config.until);

    let budget = Arc::new(RequestBudget::new(
        config.api.max_requests_per_minute,
        config.api.rate_limit_share,
    ));
    let client = Client::new(config.api.client.clone(), budget).map_err(RunError::Client)?;

    let mut summary = Summary {
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
    if let Some(open) = plan.open {
        pending.push((open, false));
    }
    tracing::info!(
        subdomain = %config.api.subdomain,
        dest = %lake.display(),
        window = %config.grid,
        pending = pending.len(),
        skipped = summary.windows_skipped,
        "export starting"
    );
    progress.start(pending.len() as u64);

    let concurrency = config.concurrency;
    let context = Arc::new(Context {
        config,
        client,
        lake,
        manifest,
        fetched: AtomicU64::new(0),
    });
    // Boxed so that dropping it really drops the in-flight windows (a pinned reference would not).
    let mut results = Box::pin(
        futures::stream::iter(pending)
            .map(|(w, closed)| {
                let context = context.clone();
                async move { (w, export_window(&context, w, closed, progress).await) }
            })
            .buffer_unordered(concurrency),
    );

    loop {
        let next = tokio::select! {
            biased;
            () = cancel.cancelled() => {
                summary.interrupted = true;
                tracing::warn!("interrupted: in-flight windows are dropped, nothing partial is committed");
                break;
            }
            () = lost.cancelled() => break,
            next = results.next() => next,
        };
        let Some((w, result)) = next else { break };
        progress.window_finished();
        match result {
            Ok(done) => record_done(&mut summary, done),
            Err(e) => {
                summary.windows_failed += 1;
                tracing::error!(window = %w.id(), error = %e, "window failed");
                let fatal = matches!(&e, WindowError::Api(api) if api.is_fatal_for_run());
                summary.failures.push(Failure {
                    window: w.id(),
                    error: e.to_string(),
                });
                if fatal {
                    summary.fatal = Some(e.to_string());
                    break;
                }
            }
        }
    }
    drop(results);

    let stats = context.client.stats();
    summary.requests = stats.requests.load(Ordering::Relaxed);
    summary.retries = stats.retries.load(Ordering::Relaxed);
    summary.throttled = stats.throttled.load(Ordering::Relaxed);
    summary.bytes_received = stats.bytes.load(Ordering::Relaxed);
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

fn record_done(summary: &mut Summary, done: Done) {
    summary.rows += done.record.rows;
    summary.files += done.record.files.len() as u64;
    summary.bytes_written += done.record.bytes;
    summary.duplicates_dropped += done.counts.duplicates;
    if done.counts.out_of_order > 0 {
        tracing::warn!(
            window = %done.window.id(),
            rows = done.counts.out_of_order,
            "the API returned rows out of created_at order; all were written, but the files are not fully sorted"
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

/// Exports one window, restarting it from the first page if the API refuses a cursor.
async fn export_window(
    context: &Context,
    window: Window,
    closed: bool,
    progress: &dyn Progress,
) -> Result<Done, WindowError> {
    let mut restarts = 0;
    let (parts, counts) = loop {
        match fetch_and_encode(context, window, progress).await {
            Err(WindowError::Api(ApiError::CursorRefused { url, .. }))
                if restarts < MAX_WINDOW_RESTARTS =>
            {
                restarts += 1;
                tracing::warn!(window = %window.id(), url = %url, restarts, "cursor refused; restarting the window");
            }
            other => break other?,
        }
    };
    let files = upload(context, window, parts).await?;
    let record = WindowRecord::new(&window, files);
    let committed = if closed {
        context.manifest.commit(&window, &record).await? == Created::Created
    } else {
        context.manifest.record_open(&record).await?;
        false
    };
    Ok(Done {
        window,
        closed,
        committed,
        record,
        counts,
    })
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
            let total = context
                .fetched
                .fetch_add(page.records as u64, Ordering::Relaxed)
                + page.records as u64;
            progress.records(total);
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

/// Uploads a window's parts, then removes any part of the same window that this attempt did not
/// write (left by an earlier, crashed attempt, or by an open window that since shrank).
async fn upload(
    context: &Context,
    window: Window,
    parts: Vec<RoutedPart>,
) -> Result<Vec<FileEntry>, WindowError> {
    let subdomain = &context.config.api.subdomain;
    let mut files = Vec::with_capacity(parts.len());
    for part in parts {
        let path = layout::part_file(subdomain, part.day, &window, part.seq);
        context.lake.upload_file(&path, part.part.file).await?;
        files.push(FileEntry {
            path: path.to_string(),
            rows: part.part.rows,
            bytes: part.part.bytes,
        });
    }
    let written: BTreeSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
    for day in window.days() {
        for path in context
            .lake
            .list(&layout::partition(subdomain, day))
            .await?
        {
            if layout::is_part_of(&path, &window) && !written.contains(path.as_ref()) {
                tracing::info!(path = %path, "removing a stale part of this window");
                context.lake.delete(&Path::from(path.as_ref())).await?;
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}
