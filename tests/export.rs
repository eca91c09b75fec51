//! The export pipeline end to end against the built-in simulator: exactness under both bound
//! semantics and several grids, filters, resume, the open window, faults and refusals.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use auditlake::lake::manifest::ManifestError;
use auditlake::run::{self, NoProgress, Progress, RunError};
use auditlake::zendesk::{Filters, Pagination};
use chrono::{DateTime, Utc};
use common::*;
use tokio_util::sync::CancellationToken;
use zendesk_sim::{Bounds, OffsetSort, SimFilter, Simulator};

const FROM: &str = "2024-03-01";
const TO: &str = "2024-03-07";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daily_windows_hold_every_record_once_with_inclusive_bounds() {
    let sim = start(sim_config(6_000, FROM, TO)).await;
    let dir = tempfile::tempdir().unwrap();
    let summary = export(export_config(&sim, dir.path(), FROM, TO, "1d")).await;
    assert_eq!(summary.windows_failed, 0, "{:?}", summary.failures);
    assert_eq!(summary.windows_done, 6);
    assert_eq!(summary.open_window, None);
    let n = assert_lake_exact(dir.path(), &sim, &SimFilter::default(), FROM, TO);
    assert_eq!(summary.rows as usize, n);
    assert_eq!(markers(dir.path()).len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hourly_windows_are_exact_with_exclusive_bounds() {
    let mut config = sim_config(4_000, FROM, "2024-03-03");
    config.bounds = Bounds::Exclusive;
    let sim = start(config).await;
    let dir = tempfile::tempdir().unwrap();
    let summary = export(export_config(&sim, dir.path(), FROM, "2024-03-03", "1h")).await;
    assert_eq!(summary.windows_failed, 0, "{:?}", summary.failures);
    assert_eq!(summary.windows_done, 48);
    assert_lake_exact(dir.path(), &sim, &SimFilter::default(), FROM, "2024-03-03");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_day_windows_split_into_daily_partitions() {
    let sim = start(sim_config(3_000, FROM, TO)).await;
    let dir = tempfile::tempdir().unwrap();
    let summary = export(export_config(&sim, dir.path(), FROM, TO, "3d")).await;
    assert_eq!(summary.windows_done, 2);
    assert_eq!(summary.files, 6, "one file per day");
    assert_lake_exact(dir.path(), &sim, &SimFilter::default(), FROM, TO);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_makes_no_request_for_done_windows() {
    let sim = start(sim_config(2_000, FROM, TO)).await;
    let dir = tempfile::tempdir().unwrap();
    export(export_config(&sim, dir.path(), FROM, TO, "1d")).await;
    sim.reset_stats();
    let again = export(export_config(&sim, dir.path(), FROM, TO, "1d")).await;
    assert_eq!(again.windows_skipped, 6);
    assert_eq!(again.windows_done, 0);
    assert_eq!(again.requests, 0);
    assert_eq!(sim.stats().requests, 0);
    assert_lake_exact(dir.path(), &sim, &SimFilter::default(), FROM, TO);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_window_is_refreshed_every_run_and_committed_once_closed() {
    let sim = start(sim_config(3_000, FROM, TO)).await;
    let dir = tempfile::tempdir().unwrap();
    let first = export(export_config(
        &sim,
        dir.path(),
        FROM,
        "2024-03-02T06:00:00Z",
        "1d",
    ))
    .await;
    assert_eq!(first.windows_done, 1);
    assert!(first.open_window.is_some());
    assert_eq!(
        markers(dir.path()).len(),
        1,
        "the open window is never marked done"
    );
    assert_lake_exact(
        dir.path(),
        &sim,
        &SimFilter::default(),
        FROM,
        "2024-03-02T06:00:00Z",
    );

    sim.reset_stats();
    let second = export(export_config(
        &sim,
        dir.path(),
        FROM,
        "2024-03-02T18:30:00Z",
        "1d",
    ))
    .await;
    assert_eq!(second.windows_skipped, 1);
    assert_eq!(
        // The open window's query starts one second early (2024-03-01T23:59:59): nothing else
        // of the done window may be asked for.
        sim.list_requests_overlapping(utc(t(FROM)), utc(t("2024-03-01T23:59:59Z"))),
        0,
        "the done window is not requested again"
    );
    assert_lake_exact(
        dir.path(),
        &sim,
        &SimFilter::default(),
        FROM,
        "2024-03-02T18:30:00Z",
    );

    let third = export(export_config(&sim, dir.path(), FROM, "2024-03-03", "1d")).await;
    assert_eq!(third.windows_done, 1);
    assert_eq!(third.open_window, None);
    assert_eq!(markers(dir.path()).len(), 2);
    assert_lake_exact(dir.path(), &sim, &SimFilter::default(), FROM, "2024-03-03");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_select_exactly_the_matching_records() {
    let sim = start(sim_config(5_000, FROM, "2024-03-04")).await;
    let probe = sim
        .account()
        .expected(&SimFilter::default(), utc(t(FROM)), utc(t("2024-03-04")));
    let actor = probe[probe.len() / 2].actor_id;
    let cases = [
        (
            Filters {
                actions: vec!["login".into()],
                ..Filters::default()
            },
            SimFilter {
                actions: vec!["login".into()],
                ..SimFilter::default()
            },
        ),
        (
            Filters {
                actions: vec!["create".into(), "destroy".into()],
                ..Filters::default()
            },
            SimFilter {
                actions: vec!["create".into(), "destroy".into()],
                ..SimFilter::default()
            },
        ),
        (
            Filters {
                actor_id: Some(actor),
                source_type: Some("user".into()),
                ..Filters::default()
            },
            SimFilter {
                actor_id: Some(actor),
                source_type: Some("user".into()),
                ..SimFilter::default()
            },
        ),
    ];
    for (filters, sim_filter) in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut config = export_config(&sim, dir.path(), FROM, "2024-03-04", "1d");
        config.filters = filters.clone();
        let summary = export(config).await;
        assert_eq!(
            summary.windows_failed, 0,
            "{filters:?}: {:?}",
            summary.failures
        );
        let n = assert_lake_exact(dir.path(), &sim, &sim_filter, FROM, "2024-03-04");
        assert!(
            n > 0 && n < probe.len(),
            "{filters:?} selected {n} of {}",
            probe.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lake_refuses_a_run_with_other_settings() {
    let sim = start(sim_config(100, FROM, TO)).await;
    let dir = tempfile::tempdir().unwrap();
    export(export_config(&sim, dir.path(), FROM, TO, "1d")).await;
    let err = run::export(
        export_config(&sim, dir.path(), FROM, TO, "6h"),
        CancellationToken::new(),
        &NoProgress,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, RunError::Manifest(ManifestError::Mismatch { .. })),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("--window is 1d in the lake, 6h in this run"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_faults_are_retried_and_the_lake_stays_exact() {
    let mut config = sim_config(4_000, FROM, TO);
    config.faults.error_5xx_rate = 0.08;
    config.faults.rate_429 = 0.05;
    config.faults.truncate_rate = 0.05;
    config.faults.reset_rate = 0.04;
    config.faults.invalid_cursor_rate = 0.04;
    config.faults.seed = 7;
    let sim = start(config).await;
    let dir = tempfile::tempdir().unwrap();
    let mut export_cfg = export_config(&sim, dir.path(), FROM, TO, "1d");
    // Faults are drawn per request in arrival order: one window at a time makes that order, and
    // so the faults met, the same on every run (with several windows in flight, whether a refused
    // cursor is drawn at all depended on scheduling).
    export_cfg.concurrency = 1;
    let summary = export(export_cfg).await;
    assert_eq!(summary.windows_failed, 0, "{:?}", summary.failures);
    let stats = sim.stats();
    assert!(
        stats.responses_5xx > 0
            && stats.responses_429 > 0
            && stats.truncated > 0
            && stats.resets > 0,
        "{stats:?}"
    );
    assert!(stats.invalid_cursors > 0, "{stats:?}");
    assert!(summary.retries > 0);
    assert!(summary.throttled > 0);
    assert_lake_exact(dir.path(), &sim, &SimFilter::default(), FROM, TO);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_5xx_fails_the_window_after_bounded_attempts_and_a_rerun_completes() {
    let mut config = sim_config(1_000, FROM, "2024-03-03");
    config.faults.error_5xx_rate = 1.0;
    let sim = start(config).await;
    let dir = tempfile::tempdir().unwrap();
    let mut export_cfg = export_config(&sim, dir.path(), FROM, "2024-03-03", "1d");
    export_cfg.api.client.retry.max_attempts = 3;
    let summary = export(export_cfg).await;
    assert_eq!(summary.windows_failed, 2);
    assert!(
        summary.failures[0].error.contains("after 3 attempts"),
        "{:?}",
        summary.failures
    );
    assert!(markers(dir.path()).is_empty());
    assert!(parquet_files(dir.path()).is_empty());
    assert_eq!(
        sim.stats().list_requests,
        9,
        "3 attempts for the search of where the data starts, then 3 per window"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_stop_the_run_at_once() {
    let sim = start(sim_config(1_000, FROM, TO)).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = export_config(&sim, dir.path(), FROM, TO, "1d");
    config.api.client.credentials = auditlake::zendesk::Credentials::OAuth(
        auditlake::zendesk::auth::Secret::new("wrong-SECRET"),
    );
    config.concurrency = 1;
    let summary = export(config).await;
    let fatal = summary.fatal.clone().expect("401 is fatal");
    assert!(
        fatal.contains("401") && fatal.contains("ZENDESK_OAUTH_TOKEN"),
        "{fatal}"
    );
    assert!(!fatal.contains("wrong-SECRET"));
    assert_eq!(
        summary.windows_failed, 1,
        "no window after the first is tried"
    );
    assert_eq!(sim.stats().requests, 1, "a 401 is not retried");
    assert!(markers(dir.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_without_enterprise_gets_a_message_naming_the_cause() {
    let mut config = sim_config(100, FROM, TO);
    config.enterprise = false;
    let sim = start(config).await;
    let dir = tempfile::tempdir().unwrap();
    let summary = export(export_config(&sim, dir.path(), FROM, TO, "1d")).await;
    let fatal = summary.fatal.expect("403 is fatal");
    assert!(
        fatal.contains("audit logs need an Enterprise plan and an admin user, or the token lacks the auditlogs:read scope"),
        "{fatal}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_pagination_is_exact_and_its_cap_is_a_clear_error() {
    let sim = start(sim_config(3_000, FROM, "2024-03-03")).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = export_config(&sim, dir.path(), FROM, "2024-03-03", "1d");
    config.pagination = Pagination::Offset;
    let summary = export(config).await;
    assert_eq!(summary.windows_failed, 0, "{:?}", summary.failures);
    assert_lake_exact(dir.path(), &sim, &SimFilter::default(), FROM, "2024-03-03");

    let big = start(sim_config(12_000, FROM, "2024-03-02")).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = export_config(&big, dir.path(), FROM, "2024-03-02", "1d");
    config.pagination = Pagination::Offset;
    let summary = export(config).await;
    assert_eq!(summary.windows_failed, 1);
    let error = &summary.failures[0].error;
    assert!(
        error.contains("10,000") && error.contains("smaller --window"),
        "{error}"
    );
    assert!(
        big.stats().list_requests <= 2,
        "the cap is noticed on the first page"
    );
}

/// An export with offset pagination against an API whose offset form ignores `sort_by` /
/// `sort_order` (it serves newest first, as nothing documents an order parameter for it): every
/// record once, and the 10,000-record cap still a clear error. Files declare a sort only where
/// they are sorted (rows arrive out of order).
async fn offset_export_is_exact_when_the_offset_form_ignores_its_sort(bounds: Bounds) {
    const UNTIL: &str = "2024-03-04";
    let mut sim_cfg = sim_config(3_000, FROM, UNTIL);
    sim_cfg.bounds = bounds;
    sim_cfg.offset_sort = OffsetSort::Ignored;
    let sim = start(sim_cfg).await;
    let dir = tempfile::tempdir().unwrap();
    // The export starts a day before the first record: the search for where the data starts
    // must not take the offset form's newest records for its earliest.
    let mut config = export_config(&sim, dir.path(), "2024-02-29", UNTIL, "1d");
    config.pagination = Pagination::Offset;
    let summary = export(config).await;
    assert_eq!(summary.windows_failed, 0, "{:?}", summary.failures);
    assert_eq!(summary.windows_done, 4);
    let n = assert_lake_exact_in(
        dir.path(),
        &sim,
        &SimFilter::default(),
        "2024-02-29",
        UNTIL,
        Order::AsDeclared,
    );
    assert_eq!(n, 3_000);
    assert_eq!(summary.rows as usize, n);
    assert_eq!(markers(dir.path()).len(), 4);

    let mut big_cfg = sim_config(12_000, FROM, "2024-03-02");
    big_cfg.bounds = bounds;
    big_cfg.offset_sort = OffsetSort::Ignored;
    let big = start(big_cfg).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = export_config(&big, dir.path(), FROM, "2024-03-02", "1d");
    config.pagination = Pagination::Offset;
    let summary = export(config).await;
    assert_eq!(summary.windows_failed, 1, "{:?}", summary.failures);
    let error = &summary.failures[0].error;
    assert!(
        error.contains("10,000") && error.contains("smaller --window"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_pagination_is_exact_when_the_offset_form_ignores_sort_with_inclusive_bounds() {
    offset_export_is_exact_when_the_offset_form_ignores_its_sort(Bounds::Inclusive).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_pagination_is_exact_when_the_offset_form_ignores_sort_with_exclusive_bounds() {
    offset_export_is_exact_when_the_offset_form_ignores_its_sort(Bounds::Exclusive).await;
}

/// Cancels the run once `after` windows have finished: a run stopped half-way.
struct StopAfter {
    after: u64,
    finished: AtomicU64,
    cancel: CancellationToken,
}

impl Progress for StopAfter {
    fn start(&self, _: u64, _: auditlake::run::Meter) {}
    fn records(&self, _: u64) {}
    fn window_finished(&self) {
        if self.finished.fetch_add(1, Ordering::SeqCst) + 1 >= self.after {
            self.cancel.cancel();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stopped_half_way_resumes_without_loss_or_duplicates() {
    let sim = start(sim_config(8_000, FROM, "2024-03-11")).await;
    let dir = tempfile::tempdir().unwrap();
    let cancel = CancellationToken::new();
    let stop = Arc::new(StopAfter {
        after: 3,
        finished: AtomicU64::new(0),
        cancel: cancel.clone(),
    });
    let mut config = export_config(&sim, dir.path(), FROM, "2024-03-11", "1d");
    config.concurrency = 2;
    let first = run::export(config, cancel, stop.as_ref()).await.unwrap();
    assert!(first.interrupted);
    let done = markers(dir.path()).len();
    assert!(
        (3..10).contains(&done),
        "{done} windows done before the stop"
    );

    sim.reset_stats();
    let second = export(export_config(&sim, dir.path(), FROM, "2024-03-11", "1d")).await;
    assert_eq!(second.windows_skipped as usize, done);
    assert_eq!(second.windows_done as usize, 10 - done);
    assert_lake_exact(dir.path(), &sim, &SimFilter::default(), FROM, "2024-03-11");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_left_by_a_crashed_attempt_are_removed() {
    let sim = start(sim_config(1_000, FROM, "2024-03-03")).await;
    let dir = tempfile::tempdir().unwrap();
    let partition = dir
        .path()
        .join("audit_logs/subdomain=acme/created_date=2024-03-02");
    std::fs::create_dir_all(&partition).unwrap();
    let stale = partition.join("part-20240302T0000Z-7.parquet");
    std::fs::write(&stale, b"left by a crashed attempt").unwrap();
    let unrelated = partition.join("notes.txt");
    std::fs::write(&unrelated, b"not ours").unwrap();
    let summary = export(export_config(&sim, dir.path(), FROM, "2024-03-03", "1d")).await;
    assert_eq!(summary.windows_failed, 0);
    assert!(!stale.exists(), "the stale part is removed");
    assert!(
        unrelated.exists(),
        "files that are not parts of the window are left alone"
    );
    assert_lake_exact(dir.path(), &sim, &SimFilter::default(), FROM, "2024-03-03");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_budget_spaces_requests_below_the_account_limit() {
    // 120 requests per minute reported, half of it ours: one request every second at most.
    let mut config = sim_config(300, FROM, "2024-03-01T04:00:00Z");
    config.rate_limit_per_minute = 120;
    let sim = start(config).await;
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let summary = export(export_config(
        &sim,
        dir.path(),
        FROM,
        "2024-03-01T04:00:00Z",
        "1h",
    ))
    .await;
    assert_eq!(summary.windows_failed, 0);
    assert_eq!(
        sim.stats().responses_429,
        0,
        "the budget keeps under the limit"
    );
    // 4 windows of 1+ page each with 4 workers, paced at 60 per minute after the first response.
    assert!(summary.requests >= 4);
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(2),
        "requests are spaced, not burst"
    );
    assert_lake_exact(
        dir.path(),
        &sim,
        &SimFilter::default(),
        FROM,
        "2024-03-01T04:00:00Z",
    );
}

/// A backfill from long before the account's first record: the empty stretch costs one search
/// request, not one request per window, and every window is still marked done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_stretch_before_the_first_record_costs_no_request_per_window() {
    let sim = start(sim_config(2_000, "2024-03-05", "2024-03-07")).await;
    let dir = tempfile::tempdir().unwrap();
    let summary = export(export_config(&sim, dir.path(), "2024-01-01", TO, "1h")).await;
    assert_eq!(summary.windows_failed, 0, "{:?}", summary.failures);
    let windows = (t(TO) - t("2024-01-01")) / 3600;
    assert_eq!(summary.windows_done as i64, windows);
    assert_eq!(
        windows_marked(dir.path()) as i64,
        windows,
        "empty windows are marked done too"
    );
    assert_lake_exact(dir.path(), &sim, &SimFilter::default(), "2024-01-01", TO);
    // The 1,488 windows before the data cost nothing of their own (one request per window would
    // be over 1,500): a page per 100 records, plus, per stream (the search for where the data
    // starts, each range, each split), a part-filled last page and the page in flight at a split.
    let rows = summary.rows;
    let streams = sim
        .list_windows()
        .iter()
        .map(|w| w.from)
        .collect::<std::collections::BTreeSet<_>>()
        .len() as u64;
    assert!(
        summary.requests <= rows.div_ceil(100) + 2 * streams,
        "{} requests for {rows} records in {streams} streams",
        summary.requests
    );
    // A rerun finds every window done: no request at all.
    sim.reset_stats();
    let again = export(export_config(&sim, dir.path(), "2024-01-01", TO, "1h")).await;
    assert_eq!((again.windows_done, again.requests), (0, 0));
}

/// Where the streams' queries started: a stream is told apart by its start.
fn stream_starts(sim: &Simulator) -> std::collections::BTreeSet<Option<DateTime<Utc>>> {
    sim.list_windows().iter().map(|w| w.from).collect()
}

/// Near the physical minimum, a page per 100 records: each stream may end in a part-filled page,
/// a split may cost the page in flight, and the window before a cut (or one fetched in pieces) is
/// counted before its commit (at most three requests).
fn assert_near_the_minimum(requests: u64, rows: usize, streams: usize) {
    let minimum = (rows as u64).div_ceil(100);
    assert!(
        requests <= minimum + 4 * streams as u64,
        "{requests} requests for {rows} records in {streams} streams"
    );
}

/// Plan by ranges, split while running: the busy half-day lies in the first of four ranges; the
/// workers whose ranges are empty finish at once and take over the busy range's unstarted
/// windows, so several streams fetch it side by side. The lake stays exact, every window is
/// committed once, and the requests stay near the physical minimum.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_range_is_split_among_idle_workers_and_the_lake_stays_exact() {
    let sim = start(sim_config(8_000, "2024-03-01", "2024-03-01T12:00:00Z")).await;
    let dir = tempfile::tempdir().unwrap();
    let config = export_config(&sim, dir.path(), "2024-03-01", "2024-03-03", "1h");
    assert_eq!(config.concurrency, 4);
    let summary = export(config).await;
    assert_eq!(summary.windows_failed, 0, "{:?}", summary.failures);
    assert_eq!(summary.windows_done, 48);
    assert_eq!(windows_marked(dir.path()), 48);
    let rows = assert_lake_exact(
        dir.path(),
        &sim,
        &SimFilter::default(),
        "2024-03-01",
        "2024-03-03",
    );
    // The four first ranges (the search for the first record starts with the first), and every
    // split adds one.
    let starts = stream_starts(&sim);
    assert!(starts.len() > 4, "no range was split: {starts:?}");
    let busy_starts = starts
        .iter()
        .flatten()
        .filter(|from| **from < utc(t("2024-03-01T12:00:00Z")))
        .count();
    assert!(
        busy_starts > 1,
        "the busy range was fetched by one stream only: {starts:?}"
    );
    // One window per request would be 120 (and would not fetch the busy windows side by side).
    assert_near_the_minimum(summary.requests, rows, starts.len());
}

/// A single busy window (`--window 1d`, all the records in one day) is split *inside*, at second
/// boundaries, among idle workers: several streams fetch it at once, and the window is committed
/// once, when its last piece is in, with every record exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_window_is_fetched_in_pieces_by_several_workers_and_committed_once() {
    let mut config = sim_config(20_000, "2024-03-01", "2024-03-02");
    // Pages take a little while, as a real API's do, so that idle workers find a stream to split.
    config.faults.latency = Some(std::time::Duration::from_millis(4));
    let sim = start(config).await;
    let dir = tempfile::tempdir().unwrap();
    let config = export_config(&sim, dir.path(), "2024-03-01", "2024-03-02", "1d");
    assert_eq!(config.concurrency, 4);
    let summary = export(config).await;
    assert_eq!(summary.windows_failed, 0, "{:?}", summary.failures);
    assert_eq!(summary.windows_done, 1);
    assert_eq!(markers(dir.path()).len(), 1);
    let rows = assert_lake_exact(
        dir.path(),
        &sim,
        &SimFilter::default(),
        "2024-03-01",
        "2024-03-02",
    );
    assert_eq!(summary.rows as usize, rows);
    let starts = stream_starts(&sim);
    let inside = starts
        .iter()
        .flatten()
        .filter(|from| **from > utc(t("2024-03-01")))
        .count();
    assert!(
        inside >= 3,
        "the day was not fetched in pieces by several workers: {starts:?}"
    );
    assert_near_the_minimum(summary.requests, rows, starts.len());
}

/// A record that does not decode inside a window fetched in pieces fails that window once, and
/// nothing of it is committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_record_in_a_window_fetched_in_pieces_fails_it_once() {
    let mut config = sim_config(20_000, "2024-03-01", "2024-03-03");
    config.faults.latency = Some(std::time::Duration::from_millis(4));
    let first = start(config.clone()).await;
    // A record late in the first day: the day is split before its stream reaches it.
    let k = (0..first.account().len())
        .rev()
        .find(|&k| first.account().created_at(k) < utc(t("2024-03-01T20:00:00Z")))
        .unwrap();
    config.faults.mistyped_record = Some(first.account().id(k));
    drop(first);
    let sim = start(config).await;
    let dir = tempfile::tempdir().unwrap();
    let summary = export(export_config(
        &sim,
        dir.path(),
        "2024-03-01",
        "2024-03-03",
        "1d",
    ))
    .await;
    assert_eq!(summary.windows_failed, 1, "{:?}", summary.failures);
    assert_eq!(summary.failures.len(), 1, "{:?}", summary.failures);
    assert_eq!(summary.failures[0].window, "20240301T0000Z");
    assert!(
        summary.failures[0].error.contains("actor_id"),
        "{:?}",
        summary.failures
    );
    assert_eq!(summary.windows_done, 1);
    assert_eq!(markers(dir.path()).len(), 1);
    let first_day = dir
        .path()
        .join("audit_logs/subdomain=acme/created_date=2024-03-01");
    let files = std::fs::read_dir(&first_day).map_or(0, |d| d.count());
    assert_eq!(files, 0, "nothing of the failed window is in the lake");
    let split = sim
        .list_windows()
        .iter()
        .filter_map(|w| w.from)
        .filter(|from| utc(t("2024-03-01")) < *from && *from < utc(t("2024-03-02")))
        .count();
    assert!(split >= 1, "the failed day was not fetched in pieces");
}

/// A known field of another JSON type fails the window that holds its record, and no other: in a
/// range stream decoding stops at the record, so the rest of the range is fetched again in halves
/// until the window is found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_of_another_type_fails_its_own_window_and_no_other() {
    let config = sim_config(6_000, FROM, "2024-03-03");
    let first = start(config.clone()).await;
    let k = first.account().len() * 2 / 3;
    let (bad_id, bad_at) = (
        first.account().id(k),
        first.account().created_at(k).timestamp(),
    );
    drop(first);
    let mut config = config;
    config.faults.mistyped_record = Some(bad_id);
    let sim = start(config).await;
    let dir = tempfile::tempdir().unwrap();
    let summary = export(export_config(&sim, dir.path(), FROM, "2024-03-03", "1h")).await;
    let hour = utc(bad_at - bad_at.rem_euclid(3600))
        .format("%Y%m%dT%H%MZ")
        .to_string();
    assert_eq!(summary.windows_failed, 1, "{:?}", summary.failures);
    assert_eq!(summary.failures[0].window, hour, "{:?}", summary.failures);
    assert!(
        summary.failures[0].error.contains("actor_id"),
        "{:?}",
        summary.failures
    );
    assert_eq!(summary.windows_done, 47);
    assert_eq!(windows_marked(dir.path()), 47);
}

/// Regression (issue 17): `last_run.json` was written by the command after the run had released
/// its lease, an unfenced read-modify-write that an overlapping run could lose. The run now
/// records itself while its lease holds, under the one run id of the process (its lease holder
/// carries the same id, not a second random tag).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_records_itself_under_its_lease_and_its_run_id() {
    use auditlake::lake::storage::Lake;
    let sim = start(sim_config(500, FROM, TO)).await;
    let dir = tempfile::tempdir().unwrap();
    let config = export_config(&sim, dir.path(), FROM, TO, "1d");
    let run_id = config.run_id.clone();
    let summary = export(config).await;
    assert_eq!(summary.exit_code(), 0);
    let lake = Lake::open(dir.path().to_str().unwrap(), &Default::default()).unwrap();
    let last = auditlake::lake::manifest::Manifest::new(lake.clone(), "acme")
        .last_run()
        .await
        .unwrap()
        .expect("the run recorded itself");
    assert_eq!((last.run_id.as_str(), last.exit_code), (run_id.as_str(), 0));
    assert_eq!(summary.last_success_at, last.last_success_at);
    assert!(last.last_success_at.is_some());
    let lease = auditlake::lake::lease::latest(&lake, "acme")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lease.run_id, run_id);
    assert!(lease.holder.is_empty(), "released after the record");
}
