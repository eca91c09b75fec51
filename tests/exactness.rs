//! Provable exactness: a committed window changes only through a repair, `verify` finds every
//! kind of damage by window and file, `repair` makes the lake exact again, an interrupted repair
//! is finished by the next run, and `--recheck` heals records that arrive late.

mod common;

use std::path::Path;
use std::time::Duration;

use auditlake::lake::storage::{Lake, StoreOptions};
use auditlake::run::{self, RepairOutcome};
use auditlake::run::{RepairConfig, VerifyConfig};
use auditlake::verify::{self, Kind, Report, VerifyOptions};
use common::*;
use tokio_util::sync::CancellationToken;
use zendesk_sim::{SimFilter, Simulator};

const FROM: &str = "2024-03-01";
const TO: &str = "2024-03-04";

fn lake(dest: &Path) -> Lake {
    Lake::open(dest.to_str().unwrap(), &StoreOptions::default()).unwrap()
}

async fn check(dest: &Path, deep: bool) -> Report {
    let options = VerifyOptions {
        deep,
        ..VerifyOptions::default()
    };
    verify::verify(&lake(dest), "acme", &options, None)
        .await
        .unwrap()
}

async fn repair(sim: &zendesk_sim::Simulator, dest: &Path, against_api: bool) -> RepairOutcome {
    let export = export_config(sim, dest, "1970-01-01", TO, "1d");
    let config = RepairConfig {
        check: VerifyConfig {
            dest: export.dest.clone(),
            subdomain: "acme".into(),
            store: StoreOptions::default(),
            options: VerifyOptions::default(),
            api: against_api.then(|| export.api.clone()),
        },
        export,
    };
    run::repair(config, CancellationToken::new()).await.unwrap()
}

fn kinds(report: &Report) -> Vec<Kind> {
    report.findings.iter().map(|f| f.kind).collect()
}

/// Every file under the lake's data folder, with its bytes.
fn snapshot(dest: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = parquet_files(dest)
        .into_iter()
        .map(|p| (p.to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect();
    out.sort();
    out
}

/// Regression (issue 6, defect 1): a run whose `until` fell inside a committed window exported
/// it as its open window, replaced its files with fewer rows and deleted the rest, forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_ending_inside_a_committed_window_leaves_it_unchanged() {
    let sim = start(sim_config(3_000, FROM, TO)).await;
    let dir = tempfile::tempdir().unwrap();
    let first = export(export_config(&sim, dir.path(), FROM, TO, "1d")).await;
    assert_eq!(first.windows_done, 3);
    let before = snapshot(dir.path());
    let markers_before = markers(dir.path());

    let inside = export(export_config(
        &sim,
        dir.path(),
        FROM,
        "2024-03-02T06:00:00Z",
        "1d",
    ))
    .await;
    assert_eq!(inside.windows_failed, 0);
    assert_eq!(
        inside.open_window, None,
        "a committed window is never an open window"
    );
    assert_eq!(snapshot(dir.path()), before, "no committed file changed");
    assert_eq!(markers(dir.path()), markers_before);
    assert!(check(dir.path(), true).await.is_clean());
    assert_lake_exact(dir.path(), &sim, &SimFilter::default(), FROM, TO);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_names_each_damage_and_repair_makes_the_lake_exact() {
    let sim = start(sim_config(3_000, FROM, TO)).await;
    let dir = tempfile::tempdir().unwrap();
    export(export_config(&sim, dir.path(), FROM, TO, "1d")).await;
    let clean = check(dir.path(), true).await;
    assert!(clean.is_clean(), "{clean}");
    assert_eq!(clean.windows_checked, 3);
    assert_eq!(clean.rows, 3_000);

    let day = |d: &str| {
        dir.path()
            .join(format!("audit_logs/subdomain=acme/created_date={d}"))
    };
    // A deleted part, a truncated part, a stray file and a staging leftover.
    let deleted = day("2024-03-01").join("part-20240301T0000Z-0.parquet");
    std::fs::remove_file(&deleted).unwrap();
    let truncated = day("2024-03-02").join("part-20240302T0000Z-0.parquet");
    let bytes = std::fs::read(&truncated).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let stray = day("2024-03-03").join("part-20240303T0000Z-g9-0.parquet");
    std::fs::copy(
        day("2024-03-03").join("part-20240303T0000Z-0.parquet"),
        &stray,
    )
    .unwrap();
    let staging = day("2024-03-03").join("part-20240303T0000Z-0.parquet#1");
    std::fs::write(&staging, b"half an upload").unwrap();

    let report = check(dir.path(), false).await;
    let text = report.to_string();
    for (kind, window, file) in [
        (
            Kind::MissingFile,
            "20240301T0000Z",
            "part-20240301T0000Z-0.parquet",
        ),
        (
            Kind::WrongSize,
            "20240302T0000Z",
            "part-20240302T0000Z-0.parquet",
        ),
        (
            Kind::Stray,
            "20240303T0000Z",
            "part-20240303T0000Z-g9-0.parquet",
        ),
        (
            Kind::Staging,
            "20240303T0000Z",
            "part-20240303T0000Z-0.parquet#1",
        ),
    ] {
        assert!(
            report.findings.iter().any(|f| f.kind == kind
                && f.window.as_deref() == Some(window)
                && f.path.as_deref().is_some_and(|p| p.ends_with(file))),
            "{kind:?} of {file} not reported:\n{text}"
        );
    }
    assert_eq!(report.findings.len(), 4, "{text}");
    assert_eq!(
        report.windows_to_reexport().len(),
        2,
        "the deleted and the truncated window are re-exported"
    );

    let outcome = repair(&sim, dir.path(), false).await;
    assert_eq!(
        outcome.windows_repaired,
        ["20240301T0000Z", "20240302T0000Z"]
    );
    assert_eq!(outcome.files_removed, 2);
    assert!(outcome.after.is_clean(), "{}", outcome.after);
    let deep = check(dir.path(), true).await;
    assert!(deep.is_clean(), "{deep}");
    assert!(!stray.exists() && !staging.exists());
    assert!(
        markers(dir.path()).contains(&"20240301T0000Z.g2.json".to_string()),
        "{:?}",
        markers(dir.path())
    );
    // The repair is a link of the digest chain: which generation it replaces, and why.
    let link: serde_json::Value = dir
        .path()
        .join("_auditlake/subdomain=acme/digests")
        .read_dir()
        .unwrap()
        .map(|e| serde_json::from_slice(&std::fs::read(e.unwrap().path()).unwrap()).unwrap())
        .find(|l: &serde_json::Value| l["window"] == "20240301T0000Z" && l["generation"] == 2)
        .expect("a link for the repaired generation");
    assert_eq!(link["replaces"], 1);
    assert!(link["reason"].as_str().unwrap().starts_with("repair:"));
    assert_lake_exact(dir.path(), &sim, &SimFilter::default(), FROM, TO);

    // Rolled back: the repair's marker deleted, so that generation 1's marker is current
    // again (its files put back). The chain's latest link for the window says otherwise.
    let windows = dir.path().join("_auditlake/subdomain=acme/windows");
    std::fs::remove_file(windows.join("20240301T0000Z.g2.json")).unwrap();
    let rolled_back = check(dir.path(), true).await;
    assert!(
        rolled_back
            .findings
            .iter()
            .any(|f| f.kind == Kind::ChainDisagrees && f.detail.contains("rolled back")),
        "{rolled_back}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_file_of_the_right_size_is_caught_by_its_footer_and_deep_reads() {
    let sim = start(sim_config(2_000, FROM, TO)).await;
    let dir = tempfile::tempdir().unwrap();
    export(export_config(&sim, dir.path(), FROM, TO, "1d")).await;
    let file = dir
        .path()
        .join("audit_logs/subdomain=acme/created_date=2024-03-02/part-20240302T0000Z-0.parquet");
    let mut bytes = std::fs::read(&file).unwrap();
    let n = bytes.len();
    bytes[n - 4..].copy_from_slice(b"XXXX");
    std::fs::write(&file, &bytes).unwrap();
    let report = check(dir.path(), false).await;
    assert_eq!(kinds(&report), [Kind::Unreadable], "{report}");
    assert!(report.findings[0].detail.contains("truncated"), "{report}");
}

/// A repair killed after its new files were uploaded, or after its new marker, leaves two
/// generations on disk; the next export finishes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_repair_is_finished_by_the_next_export() {
    let sim = start(sim_config(3_000, FROM, TO)).await;
    let dir = tempfile::tempdir().unwrap();
    export(export_config(&sim, dir.path(), FROM, TO, "1d")).await;
    let journal_dir = dir.path().join("_auditlake/subdomain=acme/repairs");
    std::fs::create_dir_all(&journal_dir).unwrap();
    let journal = |id: &str| {
        let path = journal_dir.join(format!("{id}.json"));
        std::fs::write(
            &path,
            format!(r#"{{"window":"{id}","from_generation":1,"to_generation":2,"reason":"test","started_at":"2024-03-05T00:00:00Z"}}"#),
        )
        .unwrap();
        path
    };
    let part = |d: &str, name: &str| {
        dir.path()
            .join(format!("audit_logs/subdomain=acme/created_date={d}/{name}"))
    };
    // Killed after uploading generation 2 of 03-01, before its marker: generation 2 goes.
    let j1 = journal("20240301T0000Z");
    let uploaded = part("2024-03-01", "part-20240301T0000Z-g2-0.parquet");
    std::fs::copy(
        part("2024-03-01", "part-20240301T0000Z-0.parquet"),
        &uploaded,
    )
    .unwrap();
    // Killed after the marker of generation 2 of 03-02, before removing generation 1: it goes.
    let j2 = journal("20240302T0000Z");
    let old = part("2024-03-02", "part-20240302T0000Z-0.parquet");
    let new = part("2024-03-02", "part-20240302T0000Z-g2-0.parquet");
    std::fs::copy(&old, &new).unwrap();
    let windows = dir.path().join("_auditlake/subdomain=acme/windows");
    let marker = std::fs::read_to_string(windows.join("20240302T0000Z.json")).unwrap();
    let marker = marker
        .replace(
            "part-20240302T0000Z-0.parquet",
            "part-20240302T0000Z-g2-0.parquet",
        )
        .replace("\"generation\": 1", "\"generation\": 2");
    std::fs::write(windows.join("20240302T0000Z.g2.json"), &marker).unwrap();
    // Its link, written before the marker as the repair writes it.
    chain_link_for(dir.path(), &marker, 1);
    assert_eq!(
        kinds(&check(dir.path(), false).await),
        [Kind::Stray, Kind::Stray],
        "readers see both generations until the repair is finished"
    );

    let summary = export(export_config(&sim, dir.path(), FROM, TO, "1d")).await;
    assert_eq!(summary.repairs_converged, 2);
    assert!(!uploaded.exists() && !old.exists() && new.exists());
    assert!(!j1.exists() && !j2.exists());
    let deep = check(dir.path(), true).await;
    assert!(deep.is_clean(), "{deep}");
    assert_lake_exact(dir.path(), &sim, &SimFilter::default(), FROM, TO);
}

/// Records that became visible after their window was committed: missing after one run,
/// reported by `verify --against-api`, present after the next run's `--recheck`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_records_are_reported_by_verify_and_healed_by_recheck() {
    let sim = start(sim_config(3_000, FROM, TO)).await;
    let late_from = utc(t("2024-03-03T18:00:00Z"));
    sim.hide_from(Some(late_from));
    let dir = tempfile::tempdir().unwrap();
    let first = export(export_config(&sim, dir.path(), FROM, TO, "1d")).await;
    assert_eq!(first.windows_done, 3);
    let visible = assert_lake_exact(
        dir.path(),
        &sim,
        &SimFilter::default(),
        FROM,
        "2024-03-03T18:00:00Z",
    );
    assert!(visible < 3_000);

    sim.hide_from(None);
    let lake = lake(dir.path());
    let client = api_client(&sim);
    sim.reset_stats();
    let report = verify::verify(&lake, "acme", &VerifyOptions::default(), Some(&client))
        .await
        .unwrap();
    assert_eq!(kinds(&report), [Kind::ApiMore], "{report}");
    assert_eq!(report.findings[0].window.as_deref(), Some("20240303T0000Z"));
    let late = sim
        .account()
        .expected(&SimFilter::default(), utc(t("2024-03-03")), utc(t(TO)))
        .len() as u64;
    let row = report
        .windows
        .iter()
        .find(|w| w.window == "20240303T0000Z")
        .unwrap();
    assert_eq!(row.api_rows, Some(late), "the API's count is exact");
    assert!(
        sim.stats().list_requests <= 9,
        "at most three requests per window: {}",
        sim.stats().list_requests
    );

    let mut config = export_config(&sim, dir.path(), FROM, TO, "1d");
    config.recheck = Duration::from_secs(86_400);
    let second = export(config).await;
    // The last day and one window more (see `--recheck`): two windows counted, one repaired.
    assert_eq!((second.windows_rechecked, second.windows_repaired), (2, 1));
    assert_lake_exact(dir.path(), &sim, &SimFilter::default(), FROM, TO);
    let after = verify::verify(
        &lake,
        "acme",
        &VerifyOptions {
            deep: true,
            ..VerifyOptions::default()
        },
        Some(&client),
    )
    .await
    .unwrap();
    assert!(after.is_clean(), "{after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_against_the_api_re_exports_windows_zendesk_grew() {
    let sim = start(sim_config(3_000, FROM, TO)).await;
    sim.hide_from(Some(utc(t("2024-03-01T12:00:00Z"))));
    let dir = tempfile::tempdir().unwrap();
    export(export_config(&sim, dir.path(), FROM, TO, "1d")).await;
    sim.hide_from(None);
    let outcome = repair(&sim, dir.path(), true).await;
    assert_eq!(outcome.windows_repaired.len(), 3, "{}", outcome.before);
    assert!(outcome.after.is_clean(), "{}", outcome.after);
    assert_lake_exact(dir.path(), &sim, &SimFilter::default(), FROM, TO);
}

/// The API's count of a window is exact whichever bound semantics the API has, on windows whose
/// margins hold records (the simulator puts records on every midnight and hour).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_is_counted_exactly_in_at_most_three_requests_under_both_bound_semantics() {
    use auditlake::plan::window::{plan, Grid};
    use zendesk_sim::Bounds;
    for bounds in [Bounds::Inclusive, Bounds::Exclusive] {
        let mut config = sim_config(3_000, FROM, TO);
        config.bounds = bounds;
        let sim = start(config).await;
        let client = api_client(&sim);
        for grid in ["1h", "1d"] {
            for window in plan(Grid::parse(grid).unwrap(), t(FROM), t(TO)).closed {
                sim.reset_stats();
                let counted = auditlake::zendesk::count::count_window(
                    &client,
                    &auditlake::zendesk::Filters::default(),
                    &window,
                )
                .await
                .unwrap();
                let expected = sim
                    .account()
                    .expected(&SimFilter::default(), utc(window.start), utc(window.end))
                    .len() as u64;
                assert_eq!(counted, expected, "{bounds:?} {window}");
                // At most three requests, unless a margin second holds a page of records (a bulk
                // change): then the window is listed whole.
                let margin = |from: i64| {
                    sim.account()
                        .expected(&SimFilter::default(), utc(from), utc(from + 1))
                        .len()
                };
                let bulk = margin(window.start - 1) >= 100 || margin(window.end) >= 100;
                let requests = sim.stats().list_requests;
                assert!(
                    requests <= 3 || bulk,
                    "{bounds:?} {window}: {requests} requests"
                );
            }
        }
    }
}

/// Regression (review of issue 6): a window whose marker did not parse had its files reported as
/// strays, and `repair` deleted them without re-exporting the window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_whose_marker_does_not_parse_is_re_exported_never_emptied() {
    let sim = start(sim_config(3_000, FROM, TO)).await;
    let dir = tempfile::tempdir().unwrap();
    export(export_config(&sim, dir.path(), FROM, TO, "1d")).await;
    let marker = dir
        .path()
        .join("_auditlake/subdomain=acme/windows/20240302T0000Z.json");
    std::fs::write(&marker, b"{ not json").unwrap();
    let report = check(dir.path(), false).await;
    assert_eq!(kinds(&report), [Kind::CorruptManifest], "{report}");
    assert!(report.files_to_remove().is_empty(), "{report}");
    assert_eq!(report.windows_to_reexport().len(), 1, "{report}");

    let outcome = repair(&sim, dir.path(), false).await;
    assert_eq!(outcome.windows_repaired, ["20240302T0000Z"]);
    assert!(outcome.after.is_clean(), "{}", outcome.after);
    assert_lake_exact(dir.path(), &sim, &SimFilter::default(), FROM, TO);
}

/// Regression (review of issue 6): with the span counted from the run's end only, a daily run
/// never rechecked the window the previous day's run had committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_daily_schedule_the_next_run_rechecks_the_window_the_last_one_committed() {
    let sim = start(sim_config(3_000, FROM, TO)).await;
    sim.hide_from(Some(utc(t("2024-03-02T20:00:00Z"))));
    let dir = tempfile::tempdir().unwrap();
    let day = |until: &str| {
        let mut config = export_config(&sim, dir.path(), FROM, until, "1d");
        config.recheck = Duration::from_secs(86_400);
        config
    };
    let first = export(day("2024-03-03")).await;
    assert_eq!((first.windows_done, first.windows_rechecked), (2, 0));
    sim.hide_from(None);
    let next = export(day(TO)).await;
    assert_eq!(next.windows_done, 1);
    assert_eq!((next.windows_rechecked, next.windows_repaired), (1, 1));
    assert_lake_exact(dir.path(), &sim, &SimFilter::default(), FROM, TO);
}

/// The position of the account's last record created before `instant`.
fn last_record_before(account: &zendesk_sim::Account, instant: &str) -> usize {
    (0..account.len())
        .rev()
        .find(|&k| account.created_at(k) < utc(t(instant)))
        .unwrap()
}

/// Exports daily windows from `FROM` to `until` with one worker: one range, one stream.
async fn export_in_one_stream(
    sim: &zendesk_sim::Simulator,
    dest: &Path,
    until: &str,
) -> run::Summary {
    let mut export = export_config(sim, dest, FROM, until, "1d");
    export.concurrency = 1;
    run::export(export, CancellationToken::new(), &run::NoProgress)
        .await
        .unwrap()
}

/// A record served after records of a later window (a broken `sort=created_at`) has missed the
/// window it belongs to, committed before it came: the run looks it up there, reports that window
/// (exit 1, `records_misordered`) rather than lose it silently, and `repair --against-api` mends
/// the window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_served_after_a_later_window_is_reported_and_repair_mends_it() {
    let mut config = sim_config(3_000, FROM, TO);
    let probe = start(config.clone()).await;
    let account = probe.account().clone();
    drop(probe);
    // The last record of the first day, served 30 places later: among the second day's.
    let p = last_record_before(&account, "2024-03-02");
    config.faults.served_late = Some((p, 30));
    let sim = start(config).await;
    let dir = tempfile::tempdir().unwrap();
    // One stream over the three days, so the first is committed before the record comes.
    let summary = export_in_one_stream(&sim, dir.path(), TO).await;
    assert_eq!(summary.records_misordered, 1, "{:?}", summary.failures);
    assert_eq!(summary.failures.len(), 1, "{:?}", summary.failures);
    assert_eq!(summary.failures[0].window, "20240301T0000Z");
    assert!(
        summary.failures[0]
            .error
            .contains(&account.id(p).to_string())
            && summary.failures[0].error.contains("repair --against-api"),
        "{}",
        summary.failures[0].error
    );
    assert_eq!(
        summary.windows_done, 3,
        "the windows are committed as served"
    );
    assert_eq!(summary.exit_code(), 1, "the run does not pass as complete");

    let outcome = repair(&sim, dir.path(), true).await;
    assert_eq!(outcome.windows_repaired, ["20240301T0000Z"], "{outcome:?}");
    assert!(outcome.after.is_clean(), "{:?}", outcome.after);
    // The repaired day's late record came last in its query: that file declares no order.
    assert_lake_exact_in(
        dir.path(),
        &sim,
        &SimFilter::default(),
        FROM,
        TO,
        Order::AsDeclared,
    );
}

/// A busy window fetched in pieces: a record served far out of order, after records past its
/// piece's end, is in no piece (its stream stopped at the end, and the next piece's query starts
/// after it). The window's count tells, and the window is fetched again whole before its commit:
/// the lake is exact, with no failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_served_past_the_end_of_its_piece_is_caught_by_the_windows_count() {
    let (from, to) = ("2024-03-01", "2024-03-02");
    let mut config = sim_config(20_000, from, to);
    config.faults.latency = Some(Duration::from_millis(4));
    let probe = start(config.clone()).await;
    let n = probe.account().len();
    drop(probe);
    // Early in the day, served three quarters of the day later: the day is split in pieces long
    // before its stream could reach that point.
    config.faults.served_late = Some((n / 20, n * 3 / 4));
    let sim = start(config).await;
    let dir = tempfile::tempdir().unwrap();
    let export = export_config(&sim, dir.path(), from, to, "1d");
    assert_eq!(export.concurrency, 4);
    let summary = run::export(export, CancellationToken::new(), &run::NoProgress)
        .await
        .unwrap();
    assert_eq!(summary.windows_failed, 0, "{:?}", summary.failures);
    assert_eq!(summary.windows_done, 1);
    assert_eq!(
        summary.windows_refetched, 1,
        "the pieces' shortfall went unnoticed"
    );
    assert_eq!(summary.records_misordered, 0);
    assert_lake_exact_in(
        dir.path(),
        &sim,
        &SimFilter::default(),
        from,
        to,
        Order::AsDeclared,
    );
}

/// A range's stream reads the pages it has fetched to the end, also past its last window: a
/// record of that window served after the first record past the range's end (the query's upper
/// margin second) is seen there, looked up in the committed window, and reported, not lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_served_after_the_ranges_end_is_still_seen_and_reported() {
    let until = "2024-03-03";
    let mut config = sim_config(3_000, FROM, TO);
    let probe = start(config.clone()).await;
    let account = probe.account().clone();
    drop(probe);
    // The last record before the range's end, served after the record on the end's second (the
    // simulator's bounds are inclusive, and every midnight holds a record).
    let p = last_record_before(&account, until);
    assert_eq!(account.created_at(p + 1), utc(t(until)));
    config.faults.served_late = Some((p, 1_000));
    let sim = start(config).await;
    let dir = tempfile::tempdir().unwrap();
    let summary = export_in_one_stream(&sim, dir.path(), until).await;
    assert_eq!(summary.records_misordered, 1, "{:?}", summary.failures);
    assert_eq!(summary.failures[0].window, "20240302T0000Z");
    assert!(summary.failures[0]
        .error
        .contains(&account.id(p).to_string()));
    assert_eq!(summary.exit_code(), 1);
}

/// Issue 18: the recheck counts its whole span as one query, whatever the grid, and descends
/// only into the halves whose count differs from the lake: with hourly windows and `--recheck
/// 1d`, a run that finds nothing changed spends a few requests, not a count per window, and a
/// late record in one committed hour is still found and healed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recheck_counts_its_span_at_once_and_descends_only_where_it_differs() {
    let sim = start(sim_config(3_000, FROM, TO)).await;
    // Records of one hour, two hours before the run's end, become visible late.
    let late_from = utc(t("2024-03-03T21:00:00Z"));
    sim.hide_from(Some(late_from));
    let dir = tempfile::tempdir().unwrap();
    let until = "2024-03-03T23:00:00Z";
    let first = export(export_config(&sim, dir.path(), FROM, until, "1h")).await;
    assert_eq!(first.exit_code(), 0);
    sim.hide_from(None);
    let late_hours = sim
        .account()
        .expected(&SimFilter::default(), late_from, utc(t(until)))
        .len();
    assert!(late_hours > 0, "the late hours hold records");

    let rechecked = |sim: &Simulator| {
        let mut config = export_config(sim, dir.path(), FROM, until, "1h");
        config.recheck = Duration::from_secs(86_400);
        config
    };
    sim.reset_stats();
    let healed = export(rechecked(&sim)).await;
    assert_eq!(
        healed.windows_repaired, 2,
        "21:00 and 22:00 held late records: {healed:?}"
    );
    assert!(
        healed.windows_rechecked >= 24,
        "{}",
        healed.windows_rechecked
    );
    assert_lake_exact(dir.path(), &sim, &SimFilter::default(), FROM, until);

    sim.reset_stats();
    let nothing_new = export(rechecked(&sim)).await;
    assert_eq!(
        (nothing_new.windows_repaired, nothing_new.windows_done),
        (0, 0)
    );
    assert!(nothing_new.windows_rechecked >= 24);
    assert!(
        sim.stats().list_requests <= 3,
        "the span in one count: {} requests",
        sim.stats().list_requests
    );
}

/// Issue 18: a window the recheck counted at or after its horizon (its end plus `--recheck`)
/// and found whole is recorded as confirmed (`recheck.json`) and not counted again; a run with
/// a longer `--recheck` than the confirmation was made for counts it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_confirmed_after_its_horizon_is_not_counted_again() {
    let sim = start(sim_config(3_000, FROM, TO)).await;
    sim.hide_from(Some(utc(t("2024-03-02T20:00:00Z"))));
    let dir = tempfile::tempdir().unwrap();
    let run = |until: &str, recheck_days: u64| {
        let mut config = export_config(&sim, dir.path(), FROM, until, "1d");
        config.recheck = Duration::from_secs(86_400 * recheck_days);
        config
    };
    let first = export(run("2024-03-03", 1)).await;
    assert_eq!(first.windows_done, 2);
    // A day later, still without the late records: 03-02 is counted at its horizon (03-03),
    // holds what the lake holds, and is confirmed.
    let second = export(run(TO, 1)).await;
    assert_eq!((second.windows_rechecked, second.windows_repaired), (1, 0));
    let recorded: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("_auditlake/subdomain=acme/recheck.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(recorded["confirmed_to"], "2024-03-03T00:00:00Z");
    assert_eq!(recorded["recheck_seconds"], 86_400);

    // The late records appear. The next run rechecks only 03-03, which is not confirmed yet.
    sim.hide_from(None);
    sim.reset_stats();
    let third = export(run("2024-03-04T12:00:00Z", 1)).await;
    assert_eq!((third.windows_rechecked, third.windows_repaired), (1, 1));
    // With a longer recheck the confirmation no longer holds: 03-02 is counted and healed.
    let fourth = export(run("2024-03-04T12:00:00Z", 3)).await;
    assert_eq!((fourth.windows_rechecked, fourth.windows_repaired), (3, 1));
    assert_lake_exact(dir.path(), &sim, &SimFilter::default(), FROM, TO);
}

/// Appends the chain's link of `marker` (its JSON), replacing generation `replaces`, as a
/// repair writes it before its marker.
fn chain_link_for(dest: &Path, marker: &str, replaces: u32) {
    use auditlake::lake::chain::{sha256_hex, ChainedFile, Digest};
    use auditlake::lake::manifest::WindowRecord;
    let dir = dest.join("_auditlake/subdomain=acme/digests");
    let mut links: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    links.sort();
    let record: WindowRecord = serde_json::from_str(marker).unwrap();
    let last = std::fs::read(links.last().unwrap()).unwrap();
    let digest = Digest {
        seq: links.len() as u64 + 1,
        window: record.window.clone(),
        generation: record.generation,
        replaces: Some(replaces),
        reason: Some("test".into()),
        files: ChainedFile::of(&record.files).unwrap(),
        kind: None,
        user_ids: Vec::new(),
        replaced: None,
        rows_changed: None,
        ledger: None,
        previous: Some(sha256_hex(&last)),
        at: auditlake::units::time::Timestamp::parse("2024-03-05T00:00:00Z").unwrap(),
        run_id: "test".into(),
        key: None,
        signature: None,
    };
    let name = format!("{:010}.json", digest.seq);
    std::fs::write(dir.join(name), serde_json::to_vec_pretty(&digest).unwrap()).unwrap();
}
