//! The open window grows by increments and closes by a count (issue 18): each run fetches only what
//! is new, an increment whose record was lost leaves no duplicate, a late record inside the open
//! window is in the lake after the close, and a closed day is one file.

mod common;

use std::path::Path;

use common::*;
use zendesk_sim::{SimFilter, Simulator};

const FROM: &str = "2024-03-01";
const TO: &str = "2024-03-04";

async fn run_until(sim: &Simulator, dir: &Path, until: &str) -> auditlake::run::Summary {
    export(export_config(sim, dir, FROM, until, "1d")).await
}

/// The folder of one day partition of `acme`.
fn day_dir(dir: &Path, day: &str) -> std::path::PathBuf {
    dir.join(format!("audit_logs/subdomain=acme/created_date={day}"))
}

/// The part files of one day partition of `acme`.
fn files_of_day(dir: &Path, day: &str) -> Vec<String> {
    let folder = day_dir(dir, day);
    let mut names: Vec<String> = std::fs::read_dir(folder)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn open_json(dir: &Path) -> serde_json::Value {
    let text = std::fs::read(dir.join("_auditlake/subdomain=acme/open.json")).unwrap();
    serde_json::from_slice(&text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_run_fetches_only_what_is_new_and_the_close_compacts_each_day_into_one_file() {
    let sim = start(sim_config(3_000, FROM, TO)).await;
    let dir = tempfile::tempdir().unwrap();
    run_until(&sim, dir.path(), "2024-03-02T06:00:00Z").await;
    assert_lake_exact(
        dir.path(),
        &sim,
        &SimFilter::default(),
        FROM,
        "2024-03-02T06:00:00Z",
    );
    let open = open_json(dir.path());
    assert_eq!(open["covered_to"], "2024-03-02T06:00:00Z");

    for until in ["2024-03-02T12:00:00Z", "2024-03-02T18:30:00Z"] {
        sim.reset_stats();
        let run = run_until(&sim, dir.path(), until).await;
        assert_eq!(run.exit_code(), 0);
        assert_eq!(
            // The increment's query starts one second before what is covered.
            sim.list_requests_overlapping(utc(t(FROM)), utc(t("2024-03-02T05:59:59Z"))),
            0,
            "nothing already in the lake is asked for again"
        );
        let new = sim.account().expected(
            &SimFilter::default(),
            utc(t("2024-03-02T06:00:00Z")),
            utc(t(until)),
        );
        assert!(!new.is_empty());
        assert_lake_exact(dir.path(), &sim, &SimFilter::default(), FROM, until);
    }
    let open = open_json(dir.path());
    assert_eq!(open["covered_to"], "2024-03-02T18:30:00Z");
    assert_eq!(
        open["files"].as_array().unwrap().len(),
        3,
        "one part per increment"
    );
    assert_eq!(files_of_day(dir.path(), "2024-03-02").len(), 3);

    sim.reset_stats();
    let close = run_until(&sim, dir.path(), "2024-03-03").await;
    assert_eq!((close.windows_done, close.windows_refetched), (1, 0));
    let overlapping = sim.list_requests_overlapping(
        utc(t("2024-03-02T00:00:00Z")),
        utc(t("2024-03-02T18:29:59Z")),
    );
    assert!(
        (1..=3).contains(&overlapping),
        "the close asks only for the rest, and for the count (at most three requests): {overlapping}"
    );
    assert_eq!(
        files_of_day(dir.path(), "2024-03-02"),
        ["part-20240302T0000Z-0.parquet"],
        "the closed day is one file, compacted from its parts"
    );
    assert_lake_exact(dir.path(), &sim, &SimFilter::default(), FROM, "2024-03-03");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_with_nothing_new_makes_no_request_for_the_open_window() {
    let sim = start(sim_config(1_000, FROM, TO)).await;
    let dir = tempfile::tempdir().unwrap();
    run_until(&sim, dir.path(), "2024-03-02T06:00:00Z").await;
    sim.reset_stats();
    let again = run_until(&sim, dir.path(), "2024-03-02T06:00:00Z").await;
    assert_eq!((again.exit_code(), again.requests), (0, 0));
    assert_eq!(sim.stats().requests, 0);
    assert_lake_exact(
        dir.path(),
        &sim,
        &SimFilter::default(),
        FROM,
        "2024-03-02T06:00:00Z",
    );
}

/// A run killed after uploading its increment but before recording it: the next run's increment starts
/// at the same instant, so it overwrites those parts (or removes them) rather than repeating
/// their records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delta_whose_record_was_lost_leaves_no_duplicate() {
    let sim = start(sim_config(3_000, FROM, TO)).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("_auditlake/subdomain=acme/open.json");
    run_until(&sim, dir.path(), "2024-03-02T06:00:00Z").await;
    let recorded = std::fs::read(&state).unwrap();
    run_until(&sim, dir.path(), "2024-03-02T12:00:00Z").await;
    // As if the second run had been killed between its upload and its record.
    std::fs::write(&state, &recorded).unwrap();
    assert_eq!(files_of_day(dir.path(), "2024-03-02").len(), 2);
    run_until(&sim, dir.path(), "2024-03-02T13:00:00Z").await;
    assert_eq!(
        files_of_day(dir.path(), "2024-03-02").len(),
        2,
        "overwritten, not added"
    );
    assert_lake_exact(
        dir.path(),
        &sim,
        &SimFilter::default(),
        FROM,
        "2024-03-02T13:00:00Z",
    );
    let close = run_until(&sim, dir.path(), "2024-03-03").await;
    assert_eq!(close.windows_refetched, 0);
    assert_lake_exact(dir.path(), &sim, &SimFilter::default(), FROM, "2024-03-03");
}

/// A record that became visible only after the increment that covered its second: the count at the
/// close tells, and the window is fetched whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_that_became_visible_late_inside_the_open_window_is_in_the_lake_after_the_close() {
    let sim = start(sim_config(3_000, FROM, TO)).await;
    let dir = tempfile::tempdir().unwrap();
    sim.hide_from(Some(utc(t("2024-03-02T05:00:00Z"))));
    run_until(&sim, dir.path(), "2024-03-02T06:00:00Z").await;
    sim.hide_from(None);
    run_until(&sim, dir.path(), "2024-03-02T12:00:00Z").await;
    let close = run_until(&sim, dir.path(), "2024-03-03").await;
    assert_eq!((close.windows_done, close.windows_refetched), (1, 1));
    assert_eq!(files_of_day(dir.path(), "2024-03-02").len(), 1);
    assert_lake_exact(dir.path(), &sim, &SimFilter::default(), FROM, "2024-03-03");
}

/// Issue 18: a scheduled run with nothing new costs at most three requests in all, the default
/// recheck included: the open window's increment is one empty page, and the recheck counts its span
/// as one exact query once a run has proven the API's bounds (kept in the lake's `api.json`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_run_with_nothing_new_costs_at_most_three_requests() {
    let sim = start(sim_config(3_000, FROM, TO)).await;
    let dir = tempfile::tempdir().unwrap();
    let scheduled = |until: &str| {
        let mut config = export_config(&sim, dir.path(), FROM, until, "1d");
        config.recheck = std::time::Duration::from_secs(86_400);
        config
    };
    export(scheduled("2024-03-04T06:00:00Z")).await;
    export(scheduled("2024-03-04T07:00:00Z")).await;
    let facts: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("_auditlake/subdomain=acme/api.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        facts["created_at_bounds"],
        serde_json::json!({"lower_inclusive": true, "upper_inclusive": true}),
        "the simulator's bounds are inclusive, and a count saw records of both extra seconds"
    );
    sim.reset_stats();
    let idle = export(scheduled("2024-03-04T08:00:00Z")).await;
    assert_eq!(idle.exit_code(), 0);
    assert!(idle.windows_rechecked >= 1);
    assert!(
        sim.stats().requests <= 3,
        "a run with nothing new: {} requests",
        sim.stats().requests
    );
    assert_lake_exact(
        dir.path(),
        &sim,
        &SimFilter::default(),
        FROM,
        "2024-03-04T08:00:00Z",
    );
}

/// Review of issue 18: a close killed after uploading the window's final files (before its
/// sweep and marker), then a run whose `until` falls back inside the window: that run adds no
/// increment, and used to leave the final files beside the parts, every record twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_adds_no_delta_removes_what_a_killed_close_left() {
    let sim = start(sim_config(3_000, FROM, TO)).await;
    let dir = tempfile::tempdir().unwrap();
    run_until(&sim, dir.path(), "2024-03-02T06:00:00Z").await;
    let day = day_dir(dir.path(), "2024-03-02");
    let part = files_of_day(dir.path(), "2024-03-02").remove(0);
    // The close's final file, holding the same records as the part.
    std::fs::copy(day.join(&part), day.join("part-20240302T0000Z-0.parquet")).unwrap();
    let again = run_until(&sim, dir.path(), "2024-03-02T06:00:00Z").await;
    assert_eq!(again.exit_code(), 0);
    assert_eq!(files_of_day(dir.path(), "2024-03-02"), [part]);
    assert_lake_exact(
        dir.path(),
        &sim,
        &SimFilter::default(),
        FROM,
        "2024-03-02T06:00:00Z",
    );
}

/// Review of issue 18: a close killed half way through its sweep (some parts gone, no marker),
/// then a run ending inside the window again: an increment built on the record would lose the
/// records of the parts that are gone, so the window starts over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_naming_a_part_that_is_gone_starts_the_window_over() {
    let sim = start(sim_config(3_000, FROM, TO)).await;
    let dir = tempfile::tempdir().unwrap();
    run_until(&sim, dir.path(), "2024-03-02T06:00:00Z").await;
    run_until(&sim, dir.path(), "2024-03-02T12:00:00Z").await;
    let day = day_dir(dir.path(), "2024-03-02");
    let parts = files_of_day(dir.path(), "2024-03-02");
    assert_eq!(parts.len(), 2);
    std::fs::remove_file(day.join(&parts[0])).unwrap();
    run_until(&sim, dir.path(), "2024-03-02T13:00:00Z").await;
    assert_lake_exact(
        dir.path(),
        &sim,
        &SimFilter::default(),
        FROM,
        "2024-03-02T13:00:00Z",
    );
}

/// The lake holds every record up to `until` exactly once, and `verify --deep` finds nothing.
async fn assert_exact_and_verified(dir: &Path, sim: &Simulator, until: &str) {
    assert_lake_exact(dir, sim, &SimFilter::default(), FROM, until);
    let report = verify_deep(dir).await;
    assert!(report.findings.is_empty(), "{:?}", report.findings);
}

/// The same schedule with compaction off: the state just before a day's compaction.
fn hourly_uncompacted(sim: &Simulator, dir: &Path, until: &str) -> auditlake::run::ExportConfig {
    let mut config = hourly(sim, dir, until);
    config.compact_days = false;
    config
}

/// An hourly schedule with `--window 1h`: `until` one hour later each run, and the recheck of a
/// day.
fn hourly(sim: &Simulator, dir: &Path, until: &str) -> auditlake::run::ExportConfig {
    let mut config = export_config(sim, dir, FROM, until, "1h");
    config.recheck = std::time::Duration::from_secs(86_400);
    config
}

/// Issue 18 (c): with `--window 1h` each hour commits its own file, and a day once over is
/// compacted into one file per day partition, from the lake's own files (no request), while a
/// reader of the table root sees every record exactly once after every run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hourly_windows_leave_one_file_per_closed_day() {
    let sim = start(sim_config(3_000, FROM, TO)).await;
    let dir = tempfile::tempdir().unwrap();
    let mut compacted = 0;
    for hour in 1..=50 {
        let until = auditlake::units::time::format_rfc3339(t(FROM) + hour * 3_600);
        let run = export(hourly(&sim, dir.path(), &until)).await;
        assert_eq!(run.exit_code(), 0, "{:?}", run.failures);
        assert_lake_exact(dir.path(), &sim, &SimFilter::default(), FROM, &until);
        compacted += run.days_compacted;
        if hour == 24 {
            assert_eq!(
                run.days_compacted, 1,
                "the day is compacted by the run that closes it"
            );
        }
    }
    assert_eq!(compacted, 2, "each day once");
    for day in ["2024-03-01", "2024-03-02"] {
        let files = files_of_day(dir.path(), day);
        assert_eq!(files.len(), 1, "{day}: {files:?}");
        assert!(
            files[0].contains("-g2-"),
            "the day's first window, generation 2: {files:?}"
        );
    }
    assert_eq!(
        files_of_day(dir.path(), "2024-03-03").len(),
        2,
        "the open day's windows"
    );
    // Every hour keeps its marker; the day's first names the day's file.
    assert_eq!(markers(dir.path()).len(), 50 + 2);
    assert_eq!(windows_marked(dir.path()), 50);
    let report = verify_deep(dir.path()).await;
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    assert_eq!(report.windows_checked, 2 + 2, "two days, two hours");

    // A torn marker of a window the day's marker covers is history: nothing to re-export (a
    // repair of the hour alone would write its records beside the day's).
    let torn = dir
        .path()
        .join("_auditlake/subdomain=acme/windows/20240301T0500Z.json");
    std::fs::write(&torn, b"{\"window\": ").unwrap();
    let report = verify_deep(dir.path()).await;
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    assert!(report.windows_to_reexport().is_empty());

    // A run that changes nothing compacts nothing again and asks nothing for it.
    sim.reset_stats();
    let idle = export(hourly(&sim, dir.path(), "2024-03-03T02:00:00Z")).await;
    assert_eq!(idle.days_compacted, 0);
    assert!(
        sim.stats().requests <= 3,
        "{} requests",
        sim.stats().requests
    );
}

/// Issue 18 (c): a record that becomes visible late in a compacted day is found by the span
/// recheck, and the day is re-exported as one window: still one file, every record once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_record_in_a_compacted_day_is_repaired_with_the_day() {
    let sim = start(sim_config(3_000, FROM, TO)).await;
    let dir = tempfile::tempdir().unwrap();
    sim.hide_from(Some(utc(t("2024-03-01T20:00:00Z"))));
    let first = export(hourly(&sim, dir.path(), "2024-03-02T01:00:00Z")).await;
    assert_eq!(first.days_compacted, 1);
    sim.hide_from(None);
    let late = export(hourly(&sim, dir.path(), "2024-03-02T02:00:00Z")).await;
    assert_eq!(late.exit_code(), 0, "{:?}", late.failures);
    assert!(late.windows_repaired >= 1, "{late:?}");
    let files = files_of_day(dir.path(), "2024-03-01");
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].contains("-g3-"), "the day, repaired: {files:?}");
    assert_exact_and_verified(dir.path(), &sim, "2024-03-02T02:00:00Z").await;
}

/// Issue 18 (c): a compaction killed after its file and before its marker, or after its marker
/// and before the hours' files are removed, leaves its journal; the next run converges the day
/// (rolls the file back, or finishes the removal) and no record is there twice once it has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_compaction_is_converged_by_the_next_run() {
    const UNTIL: &str = "2024-03-02T01:00:00Z";
    let sim = start(sim_config(3_000, FROM, TO)).await;
    let dir = tempfile::tempdir().unwrap();
    // The state just before the day's compaction: every hour committed, each with its file.
    export(hourly_uncompacted(&sim, dir.path(), UNTIL)).await;
    let day = day_dir(dir.path(), "2024-03-01");
    let hours = files_of_day(dir.path(), "2024-03-01");
    assert_eq!(hours.len(), 24);
    let saved = tempfile::tempdir().unwrap();
    for name in &hours {
        std::fs::copy(day.join(name), saved.path().join(name)).unwrap();
    }
    let restore_hours = || {
        for name in &hours {
            std::fs::copy(saved.path().join(name), day.join(name)).unwrap();
        }
    };
    let first = export(hourly(&sim, dir.path(), UNTIL)).await;
    assert_eq!(first.days_compacted, 1);
    let compacted = files_of_day(dir.path(), "2024-03-01");
    assert_eq!(compacted.len(), 1);
    let meta = dir.path().join("_auditlake/subdomain=acme");
    let journal = meta.join("repairs/20240301T0000Z.json");
    std::fs::create_dir_all(journal.parent().unwrap()).unwrap();
    let journal_text = br#"{"window":"20240301T0000Z","from_generation":1,"to_generation":2,"reason":"compaction","started_at":"2024-03-02T01:00:00Z"}"#;

    // Killed after the marker, before the sweep: the hours' files are still there.
    restore_hours();
    std::fs::write(&journal, journal_text).unwrap();
    let next = export(hourly(&sim, dir.path(), UNTIL)).await;
    assert_eq!((next.repairs_converged, next.days_compacted), (1, 0));
    assert_eq!(files_of_day(dir.path(), "2024-03-01"), compacted);
    assert!(!journal.exists());
    assert_lake_exact(dir.path(), &sim, &SimFilter::default(), FROM, UNTIL);

    // Killed before the marker: the day's file is rolled back, the hours stand, and the run
    // compacts the day again.
    std::fs::remove_file(meta.join("windows/20240301T0000Z.g2.json")).unwrap();
    std::fs::remove_file(day.join(&compacted[0])).unwrap();
    restore_hours();
    std::fs::write(day.join(&compacted[0]), b"half a file").unwrap();
    std::fs::create_dir_all(journal.parent().unwrap()).unwrap();
    std::fs::write(&journal, journal_text).unwrap();
    let again = export(hourly(&sim, dir.path(), UNTIL)).await;
    assert_eq!((again.repairs_converged, again.days_compacted), (1, 1));
    assert_eq!(files_of_day(dir.path(), "2024-03-01").len(), 1);
    assert_exact_and_verified(dir.path(), &sim, UNTIL).await;
}

/// Review of issue 18 (c): days a run did not compact (a lake made before compaction, a run killed
/// before it, a next run days later) are caught up from the markers' listing; a day without
/// records is compacted too, to a marker without a file, so that no later run reads it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn days_left_uncompacted_are_caught_up_and_an_empty_day_has_no_file() {
    let sim = start(sim_config(3_000, FROM, TO)).await;
    let dir = tempfile::tempdir().unwrap();
    export(hourly_uncompacted(&sim, dir.path(), "2024-03-02T01:00:00Z")).await;
    assert_eq!(files_of_day(dir.path(), "2024-03-01").len(), 24);
    // Days later: 2024-03-01 is none of this run's days, and 2024-03-04 holds no record.
    let later = export(hourly(&sim, dir.path(), "2024-03-05T01:00:00Z")).await;
    assert_eq!(later.exit_code(), 0, "{:?}", later.failures);
    assert_eq!(later.days_compacted, 4);
    for day in ["2024-03-01", "2024-03-02", "2024-03-03"] {
        assert_eq!(files_of_day(dir.path(), day).len(), 1, "{day}");
    }
    assert!(files_of_day(dir.path(), "2024-03-04").is_empty());
    let meta = dir.path().join("_auditlake/subdomain=acme/windows");
    assert!(meta.join("20240304T0000Z.g2.json").exists());
    assert_exact_and_verified(dir.path(), &sim, "2024-03-05T01:00:00Z").await;
    let again = export(hourly(&sim, dir.path(), "2024-03-05T01:00:00Z")).await;
    assert_eq!(again.days_compacted, 0);
}

/// Freshness counts the open window (issue 29): on the default `1d` grid with hourly runs, the
/// lake is complete to the last run's end all day, so `status --max-age 2h` does not page from
/// 02:00 on (it did: freshness was the end of the last closed day). `closed to` still says
/// where the last closed window ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freshness_counts_the_open_window_on_a_daily_grid_with_hourly_runs() {
    let sim = start(sim_config(3_000, FROM, TO)).await;
    let dir = tempfile::tempdir().unwrap();
    let lake =
        auditlake::lake::storage::Lake::open(dir.path().to_str().unwrap(), &Default::default())
            .unwrap();
    let midnight = t("2024-03-02");
    for hour in 1..=23 {
        // An hourly schedule: each run ends 5 minutes (the settle lag) before the hour.
        let until = midnight + hour * 3600 - 300;
        let until_text = auditlake::units::time::format_rfc3339(until);
        let run = run_until(&sim, dir.path(), &until_text).await;
        assert_eq!(run.exit_code(), 0);
        // Checked ten minutes after the run's end, as a monitor would.
        let now = until + 600;
        let status = auditlake::status::status(&lake, "acme", now).await.unwrap();
        assert_eq!(
            status.fresh_to.map(|t| t.seconds()),
            Some(until),
            "{status}"
        );
        assert_eq!(status.done_to.map(|t| t.seconds()), Some(midnight));
        assert_eq!(status.age_seconds, Some(600));
        assert!(!status.is_stale(2 * 3600), "hour {hour}: {status}");
        let shown = status.to_string();
        assert!(
            shown.contains(&format!("fresh to:    {until_text} (10m ago)")),
            "{shown}"
        );
        assert!(
            shown.contains("closed to:   2024-03-02T00:00:00Z"),
            "{shown}"
        );
        // The metrics' freshness is the same instant.
        let grid = auditlake::plan::window::Grid::DAILY;
        assert_eq!(
            auditlake::status::freshness(&lake, "acme", grid)
                .await
                .unwrap(),
            Some(until)
        );
    }
    // Without runs the age grows past --max-age, and status pages again.
    let last = midnight + 23 * 3600 - 300;
    let status = auditlake::status::status(&lake, "acme", last + 3 * 3600)
        .await
        .unwrap();
    assert!(status.is_stale(2 * 3600), "{status}");
}
