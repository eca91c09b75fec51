//! Every change of the lake goes one way (issue 26): the six ways the review found records lost
//! or hidden, each reproduced, in both table formats where both apply. Crashes are injected at
//! the k-th write to the store (`auditlake::lake::storage::crash`), which is process-wide: every
//! test here takes [`SERIAL`], so that no crash meant for one stops another.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use auditlake::lake::manifest::TableFormat;
use auditlake::lake::storage::crash;
use auditlake::run::ExportConfig;
use auditlake::run::{self, NoProgress, RunError, Summary};
use auditlake::verify::{Kind, VerifyOptions};
use auditlake::zendesk::Pagination;
use common::*;
use tokio_util::sync::CancellationToken;
use zendesk_sim::{SimFilter, Simulator};

/// One test at a time (a crash injected for one would stop another's writes).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const FROM: &str = "2024-03-01";
/// Past the first day's end: with hourly windows, that day is compacted.
const UNTIL: &str = "2024-03-02T12:00:00Z";

fn config(sim: &Simulator, dest: &Path, until: &str, format: TableFormat) -> ExportConfig {
    let mut config = export_config(sim, dest, FROM, until, "1h");
    config.table_format = format;
    config
}

async fn export_result(config: ExportConfig) -> Result<Summary, RunError> {
    run::export(config, CancellationToken::new(), &NoProgress).await
}

/// After a crash: a new process, and the dead one's lease gone (a crash on this machine is
/// proven dead by its pid; in one test process it cannot be).
fn restart(dest: &Path) {
    crash::heal();
    let _ = std::fs::remove_dir_all(dest.join("_auditlake/subdomain=acme/lease"));
}

fn kinds(report: &auditlake::verify::Report) -> Vec<Kind> {
    report.findings.iter().map(|f| f.kind).collect()
}

/// Every record of `expected` is seen by the lake's readers, none twice.
fn assert_seen_once(dest: &Path, expected: &BTreeSet<i64>, when: &str) {
    let seen = ids_seen(dest);
    let missing: Vec<&i64> = expected
        .iter()
        .filter(|id| !seen.contains_key(id))
        .collect();
    assert!(
        missing.is_empty(),
        "{when}: {} of {} committed records lost, e.g. {:?}",
        missing.len(),
        expected.len(),
        &missing[..missing.len().min(5)]
    );
    if delta_root(dest).is_some() {
        let twice: Vec<(&i64, &usize)> = seen.iter().filter(|(_, &n)| n > 1).collect();
        assert!(twice.is_empty(), "{when}: seen twice: {twice:?}");
    }
}

/// A simulator of `records` records and a lake exported from it up to `until` in `format`.
async fn exported(
    records: u64,
    until: &str,
    format: TableFormat,
) -> (Simulator, tempfile::TempDir) {
    let sim = start(sim_config(records, FROM, UNTIL)).await;
    let dir = tempfile::tempdir().unwrap();
    let summary = export(config(&sim, dir.path(), until, format)).await;
    assert_eq!(summary.exit_code(), 0, "{format}");
    (sim, dir)
}

fn formats() -> [TableFormat; 2] {
    [TableFormat::Parquet, TableFormat::Delta]
}

/// Finding 1: a damaged marker of a compacted day is the day's, in a plain lake as in a Delta
/// table: verify reports it once (not 23 missing hours), a repair that the API can no longer
/// serve in full drops nothing, and a repair killed at any write loses nothing.
#[tokio::test]
async fn a_torn_marker_of_a_compacted_day_is_repaired_as_the_day_and_loses_nothing() {
    let _serial = SERIAL.lock().await;
    for format in formats() {
        let sim = start(sim_config(3_000, FROM, UNTIL)).await;
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path();
        let summary = export(config(&sim, dest, UNTIL, format)).await;
        assert_eq!(summary.exit_code(), 0, "{format}");
        assert_eq!(summary.days_compacted, 1, "{format}");
        let marker = dest.join("_auditlake/subdomain=acme/windows/20240301T0000Z.g2.json");
        let bytes = std::fs::read(&marker).unwrap();
        std::fs::write(&marker, &bytes[..100]).unwrap();
        let expected = expected_ids(&sim, FROM, UNTIL);
        assert_seen_once(dest, &expected, "torn");

        let report = verify_lake_with(dest, VerifyOptions::default()).await;
        assert_eq!(
            kinds(&report),
            [Kind::CorruptManifest],
            "{format}: {report}"
        );
        let torn = &report.findings[0];
        assert_eq!(torn.window.as_deref(), Some("20240301T0000Z"));
        let day = report.windows.iter().find(|w| w.window == "20240301T0000Z");
        assert_eq!(day.map(|w| w.end - w.start), Some(86_400), "{report}");

        // The API no longer serves the day's records from 06:00: the repair drops none of them.
        sim.hide_from(Some(utc(t("2024-03-01T06:00:00Z"))));
        let refused = repair_with(config(&sim, dest, UNTIL, format), false)
            .await
            .unwrap();
        assert!(refused.windows_repaired.is_empty(), "{format}");
        assert!(
            refused.failures[0].error.contains("no longer returns"),
            "{:?}",
            refused.failures
        );
        assert_seen_once(dest, &expected, "refused repair");
        sim.hide_from(None);

        // A repair killed at its k-th write, for every k until one finishes.
        let mut crashes = 0;
        // Every other write: the model test (tests/model.rs) crashes at random ones.
        for k in (1..).step_by(2) {
            crash::after(k);
            let outcome = repair_with(config(&sim, dest, UNTIL, format), false).await;
            let crashed = crash::crashed();
            restart(dest);
            assert_seen_once(
                dest,
                &expected,
                &format!("{format}: repair crashed at write {k}"),
            );
            if !crashed {
                outcome.unwrap();
                break;
            }
            crashes += 1;
        }
        assert!(crashes > 2, "{format}: the repair crashed {crashes} times");
        let summary = export(config(&sim, dest, UNTIL, format)).await;
        assert_eq!(summary.exit_code(), 0);
        let report = verify_deep(dest).await;
        assert!(report.is_clean(), "{format}: {report}");
        assert_lake_exact(dest, &sim, &SimFilter::default(), FROM, UNTIL);
        if let Some(root) = delta_root(dest) {
            let (fed, rows) = delta_change_feed(&root);
            assert_eq!(
                fed, rows,
                "{format}: the change feed counts each record once"
            );
        }
    }
}

/// Finding 2: a close that fails keeps the window's parts in `open.json` beside the new open
/// window's: readers keep every record a finished run committed, verify calls none of them a
/// stray, and repair deletes none.
#[tokio::test]
async fn a_failed_close_keeps_its_parts_beside_the_next_open_window() {
    let _serial = SERIAL.lock().await;
    for format in formats() {
        let mut seen_the_case = false;
        for seed in 0..40 {
            let until = "2024-03-01T12:30:00Z";
            let mut faulty = sim_config(2_000, FROM, UNTIL);
            faulty.faults.error_5xx_rate = 0.3;
            faulty.faults.seed = seed;
            let healthy = start(sim_config(2_000, FROM, UNTIL)).await;
            let faulty = start(faulty).await;
            let dir = tempfile::tempdir().unwrap();
            let dest = dir.path();
            let mut first = config(&healthy, dest, "2024-03-01T10:30:00Z", format);
            first.since = t("2024-03-01T09:00:00Z");
            assert_eq!(export(first).await.exit_code(), 0);
            let committed = expected_ids(&healthy, "2024-03-01T09:00:00Z", "2024-03-01T10:30:00Z");

            let mut second = config(&faulty, dest, until, format);
            second.since = t("2024-03-01T09:00:00Z");
            second.api.client.retry.max_attempts = 1;
            second.concurrency = 1;
            let _ = export_result(second).await;
            let ten = dest.join("_auditlake/subdomain=acme/windows/20240301T1000Z.json");
            let open: serde_json::Value = serde_json::from_slice(
                &std::fs::read(dest.join("_auditlake/subdomain=acme/open.json")).unwrap(),
            )
            .unwrap();
            let case = !ten.exists() && open["window"] == "20240301T1200Z";
            assert_seen_once(dest, &committed, &format!("{format} seed {seed}"));
            if case {
                seen_the_case = true;
                assert_eq!(open["earlier"][0]["window"], "20240301T1000Z", "{open}");
                let report = verify_lake_with(dest, VerifyOptions::default()).await;
                assert!(report.is_clean(), "{format} seed {seed}: {report}");
                let status = status_of(dest).await;
                assert_eq!(status.closing_windows.len(), 1, "{format}");
                assert_eq!(status.closing_windows[0].window, "20240301T1000Z");
                repair_with(config(&healthy, dest, until, format), false)
                    .await
                    .unwrap();
                assert_seen_once(dest, &committed, "after repair");
                let mut last = config(&healthy, dest, until, format);
                last.since = t("2024-03-01T09:00:00Z");
                assert_eq!(export(last).await.exit_code(), 0);
                let all = expected_ids(&healthy, "2024-03-01T09:00:00Z", until);
                assert_seen_once(dest, &all, "after a healthy run");
                assert_eq!(ids_seen(dest).len(), all.len());
                break;
            }
        }
        assert!(
            seen_the_case,
            "{format}: no seed made the close fail and 12:00 open"
        );
    }
}

/// Finding 3: a damaged marker of an hour inside a compacted day is history for the recheck as
/// it is for verify: runs go on, and the day is rechecked.
#[tokio::test]
async fn a_torn_hour_inside_a_compacted_day_fails_no_run() {
    let _serial = SERIAL.lock().await;
    for format in formats() {
        let (sim, dir) = exported(3_000, UNTIL, format).await;
        let dest = dir.path();
        let hour = dest.join("_auditlake/subdomain=acme/windows/20240301T0500Z.json");
        std::fs::write(&hour, b"{\"window\": ").unwrap();
        let mut rerun = config(&sim, dest, "2024-03-02T13:00:00Z", format);
        rerun.recheck = Duration::from_secs(2 * 86_400);
        let summary = export(rerun).await;
        assert_eq!(summary.exit_code(), 0, "{format}: {:?}", summary.fatal);
        assert!(
            summary.windows_rechecked >= 12,
            "{}",
            summary.windows_rechecked
        );
        let report = verify_lake_with(dest, VerifyOptions::default()).await;
        assert!(report.is_clean(), "{format}: {report}");
    }
}

/// Finding 4: with offset pagination no day over the offset cap is compacted (its recheck and
/// repair would be one query past the cap); with cursor pagination it is.
#[tokio::test]
async fn offset_pagination_never_compacts_a_day_past_its_cap() {
    let _serial = SERIAL.lock().await;
    let until = "2024-03-02T02:00:00Z";
    let sim = start(sim_config(12_000, FROM, "2024-03-02")).await;
    for (pagination, compacted) in [(Pagination::Offset, 0), (Pagination::Cursor, 1)] {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path();
        let mut config = config(&sim, dest, until, TableFormat::Parquet);
        config.pagination = pagination;
        let summary = export(config.clone()).await;
        assert_eq!(summary.exit_code(), 0);
        assert_eq!(summary.days_compacted, compacted, "{pagination:?}");
        // The recheck and repair of the day go through.
        config.recheck = Duration::from_secs(86_400);
        config.until = t("2024-03-02T03:00:00Z");
        let summary = export(config.clone()).await;
        assert_eq!(
            summary.exit_code(),
            0,
            "{pagination:?}: {:?}",
            summary.fatal
        );
        let repaired = repair_with(config, true).await.unwrap();
        assert!(repaired.failures.is_empty(), "{:?}", repaired.failures);
        assert!(repaired.after.is_clean(), "{}", repaired.after);
    }

    // A day compacted while small, whose late records then take it past the cap: the recheck
    // repairs it, fetching it by its hours (review of issue 26).
    let sim = start(sim_config(16_000, FROM, "2024-03-02")).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path();
    sim.hide_from(Some(utc(t("2024-03-01T05:00:00Z"))));
    let mut config = config(&sim, dest, until, TableFormat::Parquet);
    config.pagination = Pagination::Offset;
    let summary = export(config.clone()).await;
    assert_eq!((summary.exit_code(), summary.days_compacted), (0, 1));
    sim.hide_from(None);
    config.recheck = Duration::from_secs(2 * 86_400);
    config.until = t("2024-03-02T03:00:00Z");
    let summary = export(config).await;
    assert_eq!(summary.exit_code(), 0, "{:?}", summary.fatal);
    assert_eq!(summary.windows_repaired, 1);
    assert_lake_exact(
        dest,
        &sim,
        &SimFilter::default(),
        FROM,
        "2024-03-02T03:00:00Z",
    );
}

/// Finding 5: a day of runs every 20 minutes on an hourly grid: every close rearranges (its
/// commit says `dataChange: false`), the rest it fetched is an increment of its own, and the change
/// feed counts each record once.
#[tokio::test]
async fn closes_rearrange_and_the_change_feed_counts_each_record_once() {
    let _serial = SERIAL.lock().await;
    let sim = start(sim_config(3_000, FROM, "2024-03-01T08:00:00Z")).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path();
    let mut until = t("2024-03-01T00:20:00Z");
    while until <= t("2024-03-01T08:00:00Z") {
        let mut run = config(&sim, dest, FROM, TableFormat::Delta);
        run.until = until;
        assert_eq!(export(run).await.exit_code(), 0);
        until += 20 * 60;
    }
    let root = delta_root(dest).unwrap();
    let (fed, rows) = delta_change_feed(&root);
    assert_eq!(
        rows as usize,
        expected_ids(&sim, FROM, "2024-03-01T08:00:00Z").len()
    );
    assert_eq!(fed, rows, "the change feed's rows are the table's");
    let mut closes = 0;
    for commit in delta_commits(&root) {
        let operation = commit[0]["commitInfo"]["operation"].clone();
        let changes = commit
            .iter()
            .filter_map(|a| a.get("add").or_else(|| a.get("remove")))
            .map(|a| a["dataChange"].as_bool().unwrap());
        if operation == "OPTIMIZE" {
            closes += 1;
            assert!(
                changes.clone().all(|c| !c),
                "a close changes no data: {commit:?}"
            );
        } else {
            assert!(changes.clone().all(|c| c), "{commit:?}");
        }
    }
    assert_eq!(closes, 8, "every hour's close is an OPTIMIZE");
    assert_lake_exact(
        dest,
        &sim,
        &SimFilter::default(),
        FROM,
        "2024-03-01T08:00:00Z",
    );
}

/// The commits of the Delta log at `root`, each a list of actions.
fn delta_commits(root: &Path) -> Vec<Vec<serde_json::Value>> {
    let mut names: Vec<std::path::PathBuf> = std::fs::read_dir(root.join("_delta_log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    names.sort();
    names
        .iter()
        .map(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        })
        .collect()
}

/// Finding 6: converting a plain lake whose compaction a crash interrupted adds every record as
/// new data (a stream read from version 0 sees them all), and the change feed counts each once.
#[tokio::test]
async fn converting_a_lake_with_an_interrupted_compaction_adds_every_record() {
    let _serial = SERIAL.lock().await;
    let (sim, base) = uncompacted().await;
    let journals = |dest: &Path| {
        std::fs::read_dir(dest.join("_auditlake/subdomain=acme/repairs"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    let mut interrupted = 0;
    // The compaction is the export's last work: its writes are the last ones.
    for k in compaction_writes(&sim, base.path()).await.step_by(2) {
        let Some(dir) = crashed_at(k, &sim, base.path()).await else {
            break;
        };
        let dest = dir.path();
        let g2 = dest.join("_auditlake/subdomain=acme/windows/20240301T0000Z.g2.json");
        if journals(dest) == 0 || !g2.exists() {
            continue;
        }
        interrupted += 1;
        if interrupted > 2 {
            break;
        }
        let summary = export(config(&sim, dest, UNTIL, TableFormat::Delta)).await;
        assert_eq!(summary.exit_code(), 0);
        let root = delta_root(dest).unwrap();
        let (fed, rows) = delta_change_feed(&root);
        assert_eq!(
            fed, rows,
            "write {k}: the change feed counts each record once"
        );
        assert_eq!(rows as usize, expected_ids(&sim, FROM, UNTIL).len());
        assert_lake_exact(dest, &sim, &SimFilter::default(), FROM, UNTIL);
    }
    assert!(
        interrupted > 0,
        "no crash interrupted the compaction after its marker"
    );
}

/// A plain lake of hourly windows whose first day is complete and not compacted yet.
async fn uncompacted() -> (Simulator, tempfile::TempDir) {
    let sim = start(sim_config(3_000, FROM, UNTIL)).await;
    let base = tempfile::tempdir().unwrap();
    let mut plain = config(&sim, base.path(), UNTIL, TableFormat::Parquet);
    plain.compact_days = false;
    assert_eq!(export(plain).await.exit_code(), 0);
    (sim, base)
}

/// The writes of an export from `sim` into a copy of `base` (compacting its first day) that
/// belong to the compaction: the last twenty or so (a day's hours deleted, its file, marker,
/// link and journal), counted on a copy the export finishes in.
async fn compaction_writes(sim: &Simulator, base: &Path) -> std::ops::Range<u64> {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(base, dir.path());
    let before = crash::writes();
    let _ = export_result(config(sim, dir.path(), UNTIL, TableFormat::Parquet)).await;
    let total = crash::writes() - before;
    total.saturating_sub(40).max(1)..total + 1
}

/// A copy of the plain lake `base` that an export from `sim` (compacting its first day) crashed
/// in, at its `k`-th write; `None` when the export made fewer writes.
async fn crashed_at(k: u64, sim: &Simulator, base: &Path) -> Option<tempfile::TempDir> {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(base, dir.path());
    crash::after(k);
    let _ = export_result(config(sim, dir.path(), UNTIL, TableFormat::Parquet)).await;
    let crashed = crash::crashed();
    restart(dir.path());
    crashed.then_some(dir)
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Review of issue 26: a compaction whose sweep a crash stopped half way (some hours' files
/// deleted, some not), then its day's marker torn: the marker is the day's, and a repair
/// against an API that no longer serves part of the day loses nothing.
#[tokio::test]
async fn a_torn_day_marker_after_a_compaction_crashed_in_its_sweep_loses_nothing() {
    let _serial = SERIAL.lock().await;
    let (sim, base) = uncompacted().await;
    let expected = expected_ids(&sim, FROM, UNTIL);
    let hours_left = |dest: &Path| {
        let day = dest.join("audit_logs/subdomain=acme/created_date=2024-03-01");
        std::fs::read_dir(day)
            .unwrap()
            .filter(|e| {
                !e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains("-g2-")
            })
            .count()
    };
    let mut cases = 0;
    // The compaction is the export's last work: its writes are the last ones.
    for k in compaction_writes(&sim, base.path()).await.step_by(2) {
        let Some(dir) = crashed_at(k, &sim, base.path()).await else {
            break;
        };
        let dest = dir.path();
        let marker = dest.join("_auditlake/subdomain=acme/windows/20240301T0000Z.g2.json");
        let left = hours_left(dest);
        if !marker.exists() || left == 0 || left == 24 {
            continue;
        }
        cases += 1;
        if cases > 2 {
            break;
        }
        let bytes = std::fs::read(&marker).unwrap();
        std::fs::write(&marker, &bytes[..100]).unwrap();
        assert_seen_once(dest, &expected, &format!("write {k}: torn"));
        sim.hide_from(Some(utc(t("2024-03-01T05:30:00Z"))));
        let _ = repair_with(config(&sim, dest, UNTIL, TableFormat::Parquet), false).await;
        sim.hide_from(None);
        assert_seen_once(
            dest,
            &expected,
            &format!("write {k}: a repair the API half serves"),
        );
        repair_with(config(&sim, dest, UNTIL, TableFormat::Parquet), false)
            .await
            .unwrap();
        assert_eq!(
            export(config(&sim, dest, UNTIL, TableFormat::Parquet))
                .await
                .exit_code(),
            0
        );
        assert!(verify_deep(dest).await.is_clean());
        assert_lake_exact(dest, &sim, &SimFilter::default(), FROM, UNTIL);
    }
    assert!(
        cases > 0,
        "no crash stopped the compaction's sweep half way"
    );
}

/// Review of issue 26: a torn `open.json` is reported, its parts are no strays, and the next
/// run rebuilds it from the parts and exports the open window again from its start, dropping
/// none of its records even where the API no longer serves them.
#[tokio::test]
async fn a_torn_open_state_is_rebuilt_from_the_parts_and_drops_nothing() {
    let _serial = SERIAL.lock().await;
    for format in formats() {
        let (sim, dir) = exported(2_000, "2024-03-01T10:20:00Z", format).await;
        let dest = dir.path();
        assert_eq!(
            export(config(&sim, dest, "2024-03-01T10:40:00Z", format))
                .await
                .exit_code(),
            0
        );
        let committed = expected_ids(&sim, FROM, "2024-03-01T10:40:00Z");
        let open = dest.join("_auditlake/subdomain=acme/open.json");
        std::fs::write(&open, b"{\"window\": \"2024").unwrap();
        let report = verify_lake_with(dest, VerifyOptions::default()).await;
        assert_eq!(
            kinds(&report),
            [Kind::CorruptManifest],
            "{format}: {report}"
        );
        assert!(report.files_to_remove().is_empty());
        // The API has lost the open window's records after 10:10: the parts keep them. So do
        // they when a run ends before the parts' end (second review of issue 26).
        for (hidden, until) in [("10:10", "10:40"), ("10:30", "10:30")] {
            sim.hide_from(Some(utc(t(&format!("2024-03-01T{hidden}:00Z")))));
            let until = format!("2024-03-01T{until}:00Z");
            let summary = export(config(&sim, dest, &until, format)).await;
            assert_ne!(summary.exit_code(), 0, "{format}: the parts stay");
            assert_seen_once(dest, &committed, &format!("{format}: API short to {until}"));
            let left = std::fs::read_dir(dest.join("_auditlake/subdomain=acme/repairs"));
            assert!(
                left.map_or(0, |d| d.count()) == 0,
                "a refused change leaves no journal"
            );
        }
        sim.hide_from(None);
        let summary = export(config(&sim, dest, "2024-03-01T11:30:00Z", format)).await;
        assert_eq!(summary.exit_code(), 0, "{format}: {:?}", summary.fatal);
        assert!(verify_deep(dest).await.is_clean(), "{format}");
        assert_lake_exact(
            dest,
            &sim,
            &SimFilter::default(),
            FROM,
            "2024-03-01T11:30:00Z",
        );
        if let Some(root) = delta_root(dest) {
            // No file the log named was rewritten under its name: each path added once.
            let mut added = BTreeSet::new();
            for action in delta_actions(&root) {
                if let Some(path) = action["add"]["path"].as_str() {
                    assert!(added.insert(path.to_string()), "{path} added twice");
                }
            }
            let (fed, rows) = delta_change_feed(&root);
            assert_eq!(fed, rows);
        }
    }
}

/// Second review of issue 26: a repair refused for the records it would drop leaves nothing
/// behind (no uploaded file beside the window's, no journal).
#[tokio::test]
async fn a_refused_repair_leaves_nothing_behind() {
    let _serial = SERIAL.lock().await;
    let (sim, dir) = exported(3_000, UNTIL, TableFormat::Parquet).await;
    let dest = dir.path();
    let expected = expected_ids(&sim, FROM, UNTIL);
    let marker = dest.join("_auditlake/subdomain=acme/windows/20240302T1000Z.json");
    std::fs::write(&marker, b"{\"window").unwrap();
    sim.hide_from(Some(utc(t("2024-03-02T10:30:00Z"))));
    let refused = repair_with(config(&sim, dest, UNTIL, TableFormat::Parquet), false)
        .await
        .unwrap();
    assert!(refused.windows_repaired.is_empty());
    assert!(refused.failures[0].error.contains("no longer returns"));
    let ids = ids_seen(dest);
    assert_eq!(ids.len(), expected.len());
    assert!(
        ids.values().all(|&n| n == 1),
        "nothing uploaded beside the window's file"
    );
    assert!(
        std::fs::read_dir(dest.join("_auditlake/subdomain=acme/repairs"))
            .map_or(true, |mut d| d.next().is_none())
    );
}

/// Second review of issue 26: a day compacted while its later hours' records had not arrived
/// (their markers name no file), repaired whole, then its marker torn: the marker is the day's,
/// and neither `repair` nor the recheck writes its hours a second time.
#[tokio::test]
async fn a_torn_marker_of_a_day_whose_hours_had_no_file_is_the_days() {
    let _serial = SERIAL.lock().await;
    let sim = start(sim_config(3_000, FROM, UNTIL)).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path();
    sim.hide_from(Some(utc(t("2024-03-01T01:00:00Z"))));
    let mut run = config(&sim, dest, "2024-03-02T01:00:00Z", TableFormat::Parquet);
    assert_eq!(export(run.clone()).await.days_compacted, 1);
    sim.hide_from(None);
    let repaired = repair_with(run.clone(), true).await.unwrap();
    assert!(repaired
        .windows_repaired
        .contains(&"20240301T0000Z".to_string()));
    let marker = dest.join("_auditlake/subdomain=acme/windows/20240301T0000Z.g3.json");
    std::fs::write(&marker, b"{\"window").unwrap();
    let report = verify_lake_with(dest, VerifyOptions::default()).await;
    let day = report.windows.iter().find(|w| w.window == "20240301T0000Z");
    assert_eq!(day.map(|w| w.end - w.start), Some(86_400), "{report}");
    run.recheck = Duration::from_secs(2 * 86_400);
    assert_eq!(export(run.clone()).await.exit_code(), 0);
    let ids = ids_seen(dest);
    assert!(ids.values().all(|&n| n == 1), "no hour written twice");
    repair_with(run.clone(), false).await.unwrap();
    assert!(verify_deep(dest).await.is_clean());
    assert_lake_exact(
        dest,
        &sim,
        &SimFilter::default(),
        FROM,
        "2024-03-02T01:00:00Z",
    );
}

async fn status_of(dest: &Path) -> auditlake::status::Status {
    let store = auditlake::lake::storage::StoreOptions::default();
    let lake = auditlake::lake::storage::Lake::open(dest.to_str().unwrap(), &store).unwrap();
    let now = chrono::Utc::now().timestamp();
    auditlake::status::status(&lake, "acme", now).await.unwrap()
}
