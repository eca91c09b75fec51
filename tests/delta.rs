//! The Delta Lake log (`--table-format delta`, issue 19): every change of the lake is one commit,
//! the log and the markers agree after every run, a crash between a marker and its commit is
//! converged by the next run, and a plain lake is converted from its markers in one commit.
//! (Real Delta readers read these lakes in `tests/readback/test_delta.py`.)

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use auditlake::lake::manifest::TableFormat;
use auditlake::verify::{Kind, Report, VerifyOptions};
use common::*;
use serde_json::Value;
use zendesk_sim::SimFilter;

const FROM: &str = "2024-03-01";
const TO: &str = "2024-03-04";

/// The log's commits, in order: each a list of actions.
fn commits(dest: &Path) -> Vec<Vec<Value>> {
    let dir = dest.join("audit_logs/_delta_log");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json") && !n.starts_with('_'))
        .collect();
    names.sort();
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            assert_eq!(name, &format!("{i:020}.json"), "versions without a gap");
            std::fs::read_to_string(dir.join(name))
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        })
        .collect()
}

/// The table's files after replaying every commit: path (relative to the table root) → size.
fn table_files(dest: &Path) -> BTreeMap<String, u64> {
    table_files_at(dest, usize::MAX)
}

/// The table's files at the version made by its first `commits` commits.
fn table_files_at(dest: &Path, commits_made: usize) -> BTreeMap<String, u64> {
    let mut files = BTreeMap::new();
    for commit in commits(dest).into_iter().take(commits_made) {
        for action in commit {
            if let Some(add) = action.get("add") {
                files.insert(
                    add["path"].as_str().unwrap().to_string(),
                    add["size"].as_u64().unwrap(),
                );
            }
            if let Some(remove) = action.get("remove") {
                files.remove(remove["path"].as_str().unwrap());
            }
        }
    }
    files
}

/// Every Parquet file under the table root but those the log removed (kept for its older
/// versions): path relative to it → size.
fn files_on_disk(dest: &Path) -> BTreeMap<String, u64> {
    let root = dest.join("audit_logs");
    let removed = delta_removed(&root);
    parquet_files(dest)
        .into_iter()
        .filter(|p| !p.to_string_lossy().contains("_delta_log") && !removed.contains(p))
        .map(|p| {
            let size = std::fs::metadata(&p).unwrap().len();
            let relative = p.strip_prefix(&root).unwrap().to_string_lossy().to_string();
            (relative, size)
        })
        .collect()
}

fn operations(dest: &Path) -> Vec<String> {
    commits(dest)
        .iter()
        .map(|c| {
            c.iter()
                .find_map(|a| a.get("commitInfo"))
                .map(|i| i["operation"].as_str().unwrap().to_string())
                .unwrap()
        })
        .collect()
}

/// The log holds exactly the files on disk, and they hold every record up to `until` once.
fn assert_log_is_the_lake(dest: &Path, sim: &zendesk_sim::Simulator, until: &str) {
    assert_eq!(table_files(dest), files_on_disk(dest));
    assert_lake_exact(dest, sim, &SimFilter::default(), FROM, until);
}

/// Sets the table's `delta.deletedFileRetentionDuration` to `interval` in a commit of its own,
/// as `ALTER TABLE … SET TBLPROPERTIES` would.
fn keep_removed_files(dest: &Path, interval: &str) {
    let mut metadata = commits(dest)[0]
        .iter()
        .find_map(|a| a.get("metaData"))
        .cloned()
        .unwrap();
    metadata["configuration"] = serde_json::json!({"delta.deletedFileRetentionDuration": interval});
    let version = commits(dest).len();
    let info =
        serde_json::json!({"commitInfo": {"operation": "SET TBLPROPERTIES", "timestamp": 0}});
    std::fs::write(
        dest.join(format!("audit_logs/_delta_log/{version:020}.json")),
        format!("{info}\n{}\n", serde_json::json!({ "metaData": metadata })),
    )
    .unwrap();
}

/// Daily windows up to `until`, with the Delta log.
fn delta_config(
    sim: &zendesk_sim::Simulator,
    dest: &Path,
    until: &str,
) -> auditlake::run::ExportConfig {
    delta_in(sim, dest, until, "1d")
}

/// Windows of `window` up to `until`, with the Delta log.
fn delta_in(
    sim: &zendesk_sim::Simulator,
    dest: &Path,
    until: &str,
    window: &str,
) -> auditlake::run::ExportConfig {
    let mut config = export_config(sim, dest, FROM, until, window);
    config.table_format = TableFormat::Delta;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_is_one_commit_and_the_log_holds_exactly_the_lakes_files() {
    let sim = start(sim_config(3_000, FROM, TO)).await;
    sim.hide_from(Some(utc(t("2024-03-02T20:00:00Z"))));
    let dir = tempfile::tempdir().unwrap();
    let first = export(delta_config(&sim, dir.path(), "2024-03-03")).await;
    assert_eq!(first.exit_code(), 0, "{first:?}");
    let log = commits(dir.path());
    assert!(log[0].iter().any(|a| a.get("protocol").is_some()));
    let protocol = log[0].iter().find_map(|a| a.get("protocol")).unwrap();
    assert_eq!(
        (&protocol["minReaderVersion"], &protocol["minWriterVersion"]),
        (&Value::from(1), &Value::from(2))
    );
    let metadata = log[0].iter().find_map(|a| a.get("metaData")).unwrap();
    assert_eq!(
        metadata["partitionColumns"],
        serde_json::json!(["subdomain", "created_date"])
    );
    // One commit per window, each with its subdomain's txn, one more each time.
    assert_eq!(operations(dir.path()), ["CREATE TABLE", "WRITE", "WRITE"]);
    let txns: Vec<i64> = log[1..]
        .iter()
        .map(|c| {
            let txn = c.iter().find_map(|a| a.get("txn")).unwrap();
            assert_eq!(txn["appId"], "auditlake-acme");
            txn["version"].as_i64().unwrap()
        })
        .collect();
    assert_eq!(txns, [1, 2]);
    for add in log[1..].iter().flatten().filter_map(|a| a.get("add")) {
        let stats: Value = serde_json::from_str(add["stats"].as_str().unwrap()).unwrap();
        assert!(stats["numRecords"].as_u64().unwrap() > 0);
        let day = add["partitionValues"]["created_date"].as_str().unwrap();
        for bound in ["minValues", "maxValues"] {
            let instant = stats[bound]["created_at"].as_str().unwrap();
            assert!(instant.starts_with(day), "{instant} in {day}");
        }
        assert!(stats["minValues"]["id"].as_i64() <= stats["maxValues"]["id"].as_i64());
        let sha256 = add["tags"]["sha256"].as_str().unwrap();
        assert!(sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit()));
    }
    assert_eq!(table_files(dir.path()), files_on_disk(dir.path()));

    // The recheck's repair is one commit: the old generation removed, the new one added.
    sim.hide_from(None);
    let mut rechecked = delta_config(&sim, dir.path(), TO);
    rechecked.recheck = Duration::from_secs(86_400);
    let next = export(rechecked).await;
    assert_eq!(
        (next.windows_done, next.windows_repaired),
        (1, 1),
        "{next:?}"
    );
    let ops = operations(dir.path());
    assert_eq!(ops[3..], ["WRITE", "REPAIR"]);
    let repair = commits(dir.path()).pop().unwrap();
    assert!(repair.iter().any(|a| a.get("remove").is_some()));
    assert!(repair.iter().any(|a| a.get("add").is_some()));
    assert_eq!(table_files(dir.path()), files_on_disk(dir.path()));
    assert_lake_exact(dir.path(), &sim, &SimFilter::default(), FROM, TO);

    // A run with nothing new commits nothing.
    let versions = commits(dir.path()).len();
    let idle = export(delta_config(&sim, dir.path(), TO)).await;
    assert_eq!(idle.exit_code(), 0);
    assert_eq!(commits(dir.path()).len(), versions);
    let report = verify_lake(dir.path()).await;
    assert!(report.findings.is_empty(), "{report:?}");

    // A commit whose statistics lie about a file's rows is named by verify.
    // The last commit with an add (the repair's): its file is current.
    let log = dir.path().join("audit_logs/_delta_log");
    let last = (0..versions)
        .rev()
        .map(|v| log.join(format!("{v:020}.json")))
        .find(|p| std::fs::read_to_string(p).unwrap().contains("\"add\""))
        .unwrap();
    let text = std::fs::read_to_string(&last).unwrap();
    std::fs::write(&last, shift_after(&text, &["\\\"numRecords\\\":"], 1)).unwrap();
    let report = verify_lake(dir.path()).await;
    assert!(
        found(&report, Kind::LogDisagrees, "statistics"),
        "{report:?}"
    );

    // Issue 19: statistics that lie about a file's bounds (engines skip it for a query by id
    // or time that it answers) are named too: the log's against the marker's, the marker's
    // against the rows (`--deep`).
    let max_id = ["\\\"maxValues\\\"", "\\\"id\\\":"];
    std::fs::write(&last, shift_after(&text, &max_id, -1)).unwrap();
    let report = verify_lake(dir.path()).await;
    assert!(found(&report, Kind::LogDisagrees, "bounds"), "{report:?}");
    std::fs::write(&last, &text).unwrap();
    let markers = dir.path().join("_auditlake/subdomain=acme/windows");
    let repaired = markers.join("20240302T0000Z.g2.json");
    let marker = std::fs::read_to_string(&repaired).unwrap();
    std::fs::write(
        &repaired,
        shift_after(&marker, &["\"max_created_at\": "], -1_000),
    )
    .unwrap();
    let report = verify_deep(dir.path()).await;
    let lies = findings_of(&report, Kind::WrongStats);
    assert_eq!(lies.len(), 1, "{report:?}");
    assert!(lies[0].detail.contains("the marker records"), "{lies:?}");
}

/// Whether `report` has a finding of `kind` whose detail says `text`.
fn found(report: &Report, kind: Kind, text: &str) -> bool {
    report
        .findings
        .iter()
        .any(|f| f.kind == kind && f.detail.contains(text))
}

/// `text` with the number after `keys` (each found after the one before) shifted by `by`.
fn shift_after(text: &str, keys: &[&str], by: i64) -> String {
    let mut at = 0;
    for key in keys {
        at += text[at..].find(key).expect("the key is there") + key.len();
    }
    let digits: String = text[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '-')
        .collect();
    let shifted = digits.parse::<i64>().unwrap() + by;
    format!("{}{shifted}{}", &text[..at], &text[at + digits.len()..])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_window_commits_each_delta_and_its_compaction_once() {
    let sim = start(sim_config(3_000, FROM, TO)).await;
    let dir = tempfile::tempdir().unwrap();
    for until in ["2024-03-01T06:00:00Z", "2024-03-01T12:00:00Z", "2024-03-02"] {
        let run = export(delta_config(&sim, dir.path(), until)).await;
        assert_eq!(run.exit_code(), 0, "{run:?}");
        assert_eq!(
            table_files(dir.path()),
            files_on_disk(dir.path()),
            "{until}"
        );
        assert_lake_exact(dir.path(), &sim, &SimFilter::default(), FROM, until);
    }
    // Issue 26: the close adds the rest it fetched as an increment of its own (new records), then
    // compacts the three parts without a change of data.
    assert_eq!(
        operations(dir.path()),
        [
            "CREATE TABLE",
            "STREAMING UPDATE",
            "STREAMING UPDATE",
            "STREAMING UPDATE",
            "OPTIMIZE"
        ]
    );
    let compaction = commits(dir.path()).pop().unwrap();
    let removed = compaction
        .iter()
        .filter(|a| a.get("remove").is_some())
        .count();
    assert_eq!(removed, 3, "every part removed in the compaction's commit");
    let changes = compaction
        .iter()
        .filter_map(|a| a.get("add").or_else(|| a.get("remove")));
    assert!(changes.clone().count() == 4 && changes.into_iter().all(|a| a["dataChange"] == false));
    assert_eq!(table_files(dir.path()).len(), 1);

    // The next runs do not take the closed window's record for an open one (its parts are
    // gone): the log keeps exactly the files on disk.
    for until in ["2024-03-02T06:00:00Z", "2024-03-02T07:00:00Z"] {
        let run = export(delta_config(&sim, dir.path(), until)).await;
        assert_eq!(run.exit_code(), 0, "{run:?}");
        assert_eq!(
            table_files(dir.path()),
            files_on_disk(dir.path()),
            "{until}"
        );
    }
    assert!(!operations(dir.path()).contains(&"REPAIR".to_string()));
}

/// Issue 18 (c) on a Delta table: a closed day of hourly windows is compacted in one commit that
/// removes the hours' files and adds the day's, with `dataChange` false (a streaming reader does
/// not read the day again); the log holds exactly the files on disk, and verify agrees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_day_is_compacted_in_one_commit_that_changes_no_data() {
    let sim = start(sim_config(3_000, FROM, TO)).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = export_config(&sim, dir.path(), FROM, "2024-03-02T01:00:00Z", "1h");
    config.table_format = TableFormat::Delta;
    let run = export(config).await;
    assert_eq!((run.exit_code(), run.days_compacted), (0, 1), "{run:?}");
    let compactions: Vec<Vec<Value>> = commits(dir.path())
        .into_iter()
        .filter(|c| {
            c.iter().any(|a| {
                a.get("commitInfo")
                    .is_some_and(|i| i["operation"] == "OPTIMIZE")
            })
        })
        .collect();
    assert_eq!(compactions.len(), 1);
    let actions = |kind: &str| -> Vec<Value> {
        compactions[0]
            .iter()
            .filter_map(|a| a.get(kind).cloned())
            .collect()
    };
    assert_eq!((actions("remove").len(), actions("add").len()), (24, 1));
    for action in actions("remove").iter().chain(&actions("add")) {
        assert_eq!(action["dataChange"], false, "{action}");
    }
    assert_log_is_the_lake(dir.path(), &sim, "2024-03-02T01:00:00Z");
    let report = verify_lake(dir.path()).await;
    assert!(report.findings.is_empty(), "{report:?}");
}

/// Review of issue 18 (c): a compaction killed after its marker, before its log commit, is
/// finished by the next run as the compaction it was (`dataChange` false), not as a data change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compaction_killed_before_its_log_commit_is_finished_as_one() {
    const UNTIL: &str = "2024-03-02T01:00:00Z";
    let sim = start(sim_config(3_000, FROM, TO)).await;
    let dir = tempfile::tempdir().unwrap();
    let config = || delta_in(&sim, dir.path(), UNTIL, "1h");
    let mut uncompacted = config();
    uncompacted.compact_days = false;
    export(uncompacted).await;
    let day = dir
        .path()
        .join("audit_logs/subdomain=acme/created_date=2024-03-01");
    let saved = tempfile::tempdir().unwrap();
    let hours: Vec<String> = std::fs::read_dir(&day)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    for name in &hours {
        std::fs::copy(day.join(name), saved.path().join(name)).unwrap();
    }
    assert_eq!(export(config()).await.days_compacted, 1);
    // The crash: the log's last commit (the compaction's) never made, the hours' files still
    // there, the journal left.
    let last = commits(dir.path()).len() - 1;
    let log = dir.path().join("audit_logs/_delta_log");
    std::fs::remove_file(log.join(format!("{last:020}.json"))).unwrap();
    for name in &hours {
        std::fs::copy(saved.path().join(name), day.join(name)).unwrap();
    }
    let journal = dir
        .path()
        .join("_auditlake/subdomain=acme/repairs/20240301T0000Z.json");
    std::fs::create_dir_all(journal.parent().unwrap()).unwrap();
    std::fs::write(&journal, br#"{"window":"20240301T0000Z","from_generation":1,"to_generation":2,"reason":"compaction","started_at":"2024-03-02T01:00:00Z"}"#).unwrap();

    let next = export(config()).await;
    assert_eq!(next.repairs_converged, 1, "{next:?}");
    let finished = commits(dir.path()).pop().unwrap();
    let info = finished.iter().find_map(|a| a.get("commitInfo")).unwrap();
    assert_eq!(info["operation"], "OPTIMIZE");
    let changes: Vec<&Value> = finished
        .iter()
        .filter_map(|a| a.get("add").or(a.get("remove")))
        .collect();
    assert_eq!(changes.len(), 24 + 1);
    assert!(changes.iter().all(|c| c["dataChange"] == false));
    assert_log_is_the_lake(dir.path(), &sim, UNTIL);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_lost_after_its_marker_is_made_by_the_next_run() {
    let sim = start(sim_config(3_000, FROM, TO)).await;
    let dir = tempfile::tempdir().unwrap();
    let first = export(delta_config(&sim, dir.path(), TO)).await;
    assert_eq!(first.exit_code(), 0);
    // A crash between the last window's marker and its commit.
    let log = dir.path().join("audit_logs/_delta_log");
    let last = commits(dir.path()).len() - 1;
    std::fs::remove_file(log.join(format!("{last:020}.json"))).unwrap();
    assert_ne!(table_files(dir.path()), files_on_disk(dir.path()));
    let report = verify_lake(dir.path()).await;
    assert!(
        report.findings.iter().any(|f| f.kind == Kind::LogDisagrees),
        "{report:?}"
    );

    let next = export(delta_config(&sim, dir.path(), TO)).await;
    assert_eq!(next.exit_code(), 0);
    assert_eq!(table_files(dir.path()), files_on_disk(dir.path()));
    assert_eq!(operations(dir.path()).last().unwrap(), "REPAIR");
    let report = verify_lake(dir.path()).await;
    assert!(report.findings.is_empty(), "{report:?}");
}

async fn verify_lake(dest: &Path) -> Report {
    verify_lake_with(dest, VerifyOptions::default()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_lake_becomes_a_delta_table_in_one_commit_and_never_back() {
    let sim = start(sim_config(3_000, FROM, TO)).await;
    let dir = tempfile::tempdir().unwrap();
    let plain = export(export_config(&sim, dir.path(), FROM, TO, "1d")).await;
    assert_eq!(plain.exit_code(), 0);
    assert!(!dir.path().join("audit_logs/_delta_log").exists());

    let converted = export(delta_config(&sim, dir.path(), TO)).await;
    assert_eq!(converted.exit_code(), 0, "{converted:?}");
    assert_eq!(operations(dir.path()), ["CREATE TABLE", "CONVERT TO DELTA"]);
    assert_eq!(table_files(dir.path()), files_on_disk(dir.path()));
    let dataset: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("_auditlake/subdomain=acme/dataset.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(dataset["table_format"], "delta");

    let config = export_config(&sim, dir.path(), FROM, TO, "1d");
    let refused = auditlake::run::export(
        config,
        tokio_util::sync::CancellationToken::new(),
        &auditlake::run::NoProgress,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(refused.contains("--table-format delta"), "{refused}");
}

/// A checkpoint every 100 commits (written by the kernel); the next run reads the log through it
/// and finds it agreeing with the markers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hundredth_commit_is_checkpointed_and_read_back() {
    let to = "2024-03-06";
    let sim = start(sim_config(3_000, FROM, to)).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = export_config(&sim, dir.path(), FROM, to, "1h");
    config.table_format = TableFormat::Delta;
    let first = export(config.clone()).await;
    assert_eq!(first.exit_code(), 0, "{first:?}");
    let log = dir.path().join("audit_logs/_delta_log");
    assert!(log.join("00000000000000000100.checkpoint.parquet").exists());
    let hint: Value =
        serde_json::from_str(&std::fs::read_to_string(log.join("_last_checkpoint")).unwrap())
            .unwrap();
    assert_eq!(hint["version"], 100);
    let versions = commits(dir.path()).len();
    let next = export(config).await;
    assert_eq!(next.exit_code(), 0);
    assert_eq!(commits(dir.path()).len(), versions, "nothing to converge");
    assert_eq!(table_files(dir.path()), files_on_disk(dir.path()));
}

/// Runs of two subdomains commit to one table root at once: every commit lands at a version of
/// its own (a lost race is retried at the next), and the log holds both subdomains' files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_subdomains_commit_to_one_table_at_once() {
    let sim = start(sim_config(3_000, FROM, TO)).await;
    let dir = tempfile::tempdir().unwrap();
    let mut acme = export_config(&sim, dir.path(), FROM, TO, "1h");
    acme.table_format = TableFormat::Delta;
    let mut globex = acme.clone();
    globex.api.subdomain = "globex".into();
    globex.run_id = auditlake::units::new_run_id();
    let (a, b) = tokio::join!(export(acme), export(globex));
    assert_eq!((a.exit_code(), b.exit_code()), (0, 0), "{a:?} {b:?}");
    assert_eq!(table_files(dir.path()), files_on_disk(dir.path()));
    let log = commits(dir.path());
    for subdomain in ["acme", "globex"] {
        let app = format!("auditlake-{subdomain}");
        let txns: Vec<i64> = log
            .iter()
            .filter_map(|c| c.iter().find_map(|a| a.get("txn")))
            .filter(|t| t["appId"] == app.as_str())
            .map(|t| t["version"].as_i64().unwrap())
            .collect();
        assert_eq!(
            txns,
            (1..=txns.len() as i64).collect::<Vec<_>>(),
            "{subdomain}"
        );
        assert!(
            txns.len() >= 72,
            "{subdomain}: one commit per hour at least"
        );
    }
}

/// A part of the open window gone (a close killed half way): the window is exported again from
/// its start, its parts numbered past the old ones (issue 26: no file the log names is ever
/// rewritten under its name, so its older versions still read), old and new exchanged in one
/// commit; the log ends holding the new parts with their sizes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_window_started_over_never_leaves_the_log_naming_a_rewritten_file() {
    let sim = start(sim_config(3_000, FROM, TO)).await;
    let dir = tempfile::tempdir().unwrap();
    for until in ["2024-03-01T06:00:00Z", "2024-03-01T12:00:00Z"] {
        let run = export(delta_config(&sim, dir.path(), until)).await;
        assert_eq!(run.exit_code(), 0, "{run:?}");
    }
    let second_part = table_files(dir.path())
        .into_keys()
        .find(|p| !p.contains("-d20240301T0000Z-"))
        .unwrap();
    std::fs::remove_file(dir.path().join("audit_logs").join(&second_part)).unwrap();

    let run = export(delta_config(&sim, dir.path(), "2024-03-01T18:00:00Z")).await;
    assert_eq!(run.exit_code(), 0, "{run:?}");
    let ops = operations(dir.path());
    // The run's start lets go of the part that is gone; the window starts over in one commit.
    assert_eq!(ops[ops.len() - 2..], ["REPAIR", "STREAMING UPDATE"]);
    let mut added = std::collections::BTreeSet::new();
    for commit in commits(dir.path()) {
        for action in commit {
            if let Some(path) = action["add"]["path"].as_str() {
                assert!(added.insert(path.to_string()), "{path} added twice");
            }
        }
    }
    assert_log_is_the_lake(dir.path(), &sim, "2024-03-01T18:00:00Z");
}

/// The log's retention: after a checkpoint, the commits older than 30 days from before the
/// checkpoint one interval back are removed, and the table still reads (from its checkpoints).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_a_checkpoint_stands_for_expire_after_thirty_days() {
    let to = "2024-03-10";
    let sim = start(sim_config(3_000, FROM, to)).await;
    let dir = tempfile::tempdir().unwrap();
    let config = |until: &str| {
        let mut config = export_config(&sim, dir.path(), FROM, until, "1h");
        config.table_format = TableFormat::Delta;
        config
    };
    assert_eq!(export(config("2024-03-06")).await.exit_code(), 0);
    let log = dir.path().join("audit_logs/_delta_log");
    let long_ago = std::time::SystemTime::now() - Duration::from_secs(40 * 86_400);
    for entry in std::fs::read_dir(&log).unwrap() {
        let file = std::fs::File::options()
            .write(true)
            .open(entry.unwrap().path())
            .unwrap();
        file.set_modified(long_ago).unwrap();
    }
    assert_eq!(export(config(to)).await.exit_code(), 0);
    assert!(log.join("00000000000000000200.checkpoint.parquet").exists());
    let versions: Vec<u64> = std::fs::read_dir(&log)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".json")?.parse().ok()
        })
        .collect();
    assert_eq!(
        versions.iter().min(),
        Some(&100),
        "commits before the checkpoint one interval back are gone"
    );
    assert!(log.join("00000000000000000100.checkpoint.parquet").exists());
    // The next run reads the log through its checkpoints and finds nothing to converge.
    let before = versions.len();
    assert_eq!(export(config(to)).await.exit_code(), 0);
    let after = std::fs::read_dir(&log)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().ends_with(".json") && !name.to_string_lossy().starts_with('_')
        })
        .count();
    assert_eq!(after, before);
    let report = verify_lake(dir.path()).await;
    assert!(report.findings.is_empty(), "{report:?}");
}

/// Issue 19: "after a repair the new version has the new rows and the old version has the old
/// ones". The files a repair's commit removed stay for the table's retention (Delta's default, 7
/// days), so the version before it still reads, and verify counts them as the older versions',
/// not as strays. Once the retention is over (the table set to keep removed files 0 hours, as
/// `ALTER TABLE … SET TBLPROPERTIES` would), the next run removes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repair_keeps_the_old_version_readable_until_the_tables_retention_ends() {
    const LATE: &str = "2024-03-02T20:00:00Z";
    let sim = start(sim_config(3_000, FROM, TO)).await;
    sim.hide_from(Some(utc(t(LATE))));
    let dir = tempfile::tempdir().unwrap();
    export(delta_config(&sim, dir.path(), "2024-03-03")).await;
    let before = commits(dir.path()).len();
    sim.hide_from(None);
    let mut rechecked = delta_config(&sim, dir.path(), TO);
    rechecked.recheck = Duration::from_secs(86_400);
    assert_eq!(export(rechecked).await.windows_repaired, 1);

    let root = dir.path().join("audit_logs");
    let read_version = |files: &BTreeMap<String, u64>| -> Vec<LakeRow> {
        files
            .keys()
            .flat_map(|f| {
                let path = root.join(f);
                read_part(
                    &path.to_string_lossy(),
                    std::fs::read(&path).unwrap().into(),
                )
            })
            .collect()
    };
    let old = table_files_at(dir.path(), before);
    let new = table_files(dir.path());
    let replaced: Vec<&String> = old.keys().filter(|f| !new.contains_key(*f)).collect();
    assert_eq!(replaced.len(), 1, "{old:?} {new:?}");
    assert!(
        root.join(replaced[0]).exists(),
        "the old generation is kept"
    );
    assert_rows_exact(read_version(&old), &sim, &SimFilter::default(), FROM, LATE);
    assert_rows_exact(read_version(&new), &sim, &SimFilter::default(), FROM, TO);
    let report = verify_lake(dir.path()).await;
    assert!(report.is_clean(), "{report}");
    let retained = report.retained.clone().unwrap();
    assert_eq!(
        (retained.files, retained.retention_seconds),
        (1, 7 * 86_400)
    );
    assert!(
        report
            .to_string()
            .contains("1 file it removed is kept for its older versions (retention 7 days)"),
        "{report}"
    );

    // Every file written more than the retention ago: the repair's removal is recent, so the old
    // generation stays (its remove keeps it, not its age). A part no commit ever added goes once
    // it is older than the retention (a young one may be another writer's, still uploading).
    let partition = root.join("subdomain=acme/created_date=2024-03-02");
    let leftover = partition.join("part-20240302T0000Z-g7-0.parquet");
    std::fs::copy(root.join(replaced[0]), &leftover).unwrap();
    let young = partition.join("part-20240302T0000Z-g8-0.parquet");
    std::fs::copy(root.join(replaced[0]), &young).unwrap();
    let week_ago = std::time::SystemTime::now() - Duration::from_secs(8 * 86_400);
    for file in parquet_files(dir.path()) {
        if file != young {
            let handle = std::fs::File::options().write(true).open(&file).unwrap();
            handle.set_modified(week_ago).unwrap();
        }
    }
    assert_eq!(
        export(delta_config(&sim, dir.path(), TO)).await.exit_code(),
        0
    );
    assert!(root.join(replaced[0]).exists(), "kept by its remove");
    assert!(!leftover.exists(), "a leftover older than the retention");
    assert!(young.exists(), "a leftover younger than the retention");
    std::fs::remove_file(&young).unwrap();
    assert_log_is_the_lake(dir.path(), &sim, TO);

    // The retention set to nothing: the next run removes what no version reads any more.
    keep_removed_files(dir.path(), "interval 0 hours");
    let idle = export(delta_config(&sim, dir.path(), TO)).await;
    assert_eq!(idle.exit_code(), 0, "{idle:?}");
    assert!(!root.join(replaced[0]).exists(), "past its retention");
    assert_log_is_the_lake(dir.path(), &sim, TO);
    let report = verify_lake(dir.path()).await;
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.retained.unwrap().files, 0);
}

/// Review of the retention: a compacted day's marker that does not parse may be the day's. The
/// markers of the hours it covered are not let back into the log beside the day's file (their
/// files are kept for older versions: the log would count the day twice), and `repair`
/// re-exports the day whole: the hours' kept files miss what the day's later generations added
/// (here the records a recheck found late), so letting them stand again would lose those.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_days_torn_marker_is_repaired_as_the_whole_day() {
    const UNTIL: &str = "2024-03-02T01:00:00Z";
    let sim = start(sim_config(3_000, FROM, TO)).await;
    let dir = tempfile::tempdir().unwrap();
    let config = || delta_in(&sim, dir.path(), UNTIL, "1h");
    sim.hide_from(Some(utc(t("2024-03-01T12:00:00Z"))));
    assert_eq!(export(config()).await.days_compacted, 1);
    sim.hide_from(None);
    let mut rechecked = config();
    rechecked.recheck = Duration::from_secs(86_400);
    assert_eq!(export(rechecked).await.exit_code(), 0);
    let markers = dir.path().join("_auditlake/subdomain=acme/windows");
    let marker = markers.join("20240301T0000Z.g3.json");
    assert!(marker.exists(), "the day compacted, then repaired whole");
    assert_log_is_the_lake(dir.path(), &sim, UNTIL);
    let logged = table_files(dir.path());
    std::fs::write(&marker, b"{\"window\": ").unwrap();
    // A torn marker of an hour inside the day too: history, once the day's spans it.
    std::fs::write(markers.join("20240301T0500Z.json"), b"{\"window\": ").unwrap();
    assert_eq!(export(config()).await.exit_code(), 0);
    assert_eq!(table_files(dir.path()), logged, "the log is left as it was");
    // The tear outlives the retention of the hours' files (0 hours here): the day's stays.
    keep_removed_files(dir.path(), "interval 0 hours");
    assert_eq!(export(config()).await.exit_code(), 0);
    assert_eq!(table_files(dir.path()), logged, "past the retention too");
    let report = verify_lake(dir.path()).await;
    let torn = findings_of(&report, Kind::CorruptManifest);
    assert_eq!(torn.len(), 1, "{report}");
    assert_eq!(torn[0].window.as_deref(), Some("20240301T0000Z"));
    let day = report.windows.iter().find(|w| w.window == "20240301T0000Z");
    assert_eq!(day.map(|w| w.end - w.start), Some(86_400), "{report}");

    let repaired = repair_lake(config()).await;
    assert!(repaired.failures.is_empty(), "{repaired:?}");
    assert_eq!(repaired.windows_repaired, ["20240301T0000Z"]);
    assert!(repaired.after.is_clean(), "{}", repaired.after);
    assert!(markers.join("20240301T0000Z.g4.json").exists());
    assert_log_is_the_lake(dir.path(), &sim, UNTIL);
    assert_eq!(export(config()).await.exit_code(), 0);
    assert_log_is_the_lake(dir.path(), &sim, UNTIL);
    assert!(verify_lake(dir.path()).await.is_clean());
}

/// `auditlake repair` of the lake `export` names, from the lake alone.
async fn repair_lake(export: auditlake::run::ExportConfig) -> auditlake::run::RepairOutcome {
    auditlake::run::repair(
        auditlake::run::RepairConfig {
            check: auditlake::run::VerifyConfig {
                dest: export.dest.clone(),
                subdomain: "acme".into(),
                store: auditlake::lake::storage::StoreOptions::default(),
                options: VerifyOptions::default(),
                api: None,
            },
            export,
        },
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .unwrap()
}

/// Review of the retention: a torn marker at the start of a day that was never compacted stands
/// for its hour only, so the log still catches up the day's other hours (their commits never
/// came: a crash between a marker and its commit), and verify (hence `repair`) takes it for its
/// hour. Whether it may be the day's compaction is told by its generation (a first one never
/// is), by the day (a compaction is made once every window of the day is committed) and by the
/// log (a compaction's commit removes the other hours' files): each case fails if its test is
/// dropped, on the run's side or verify's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_first_hours_marker_of_an_uncompacted_day_stands_for_its_hour() {
    // (the day, the first hour's marker generation, the hours of the day whose commits are
    // lost: `*` all but the first, the run's until)
    // Where the lost hours' files are gone too (deleted by hand), the generation and the day's
    // completeness alone tell.
    let cases = [
        ("20240301", 1, "*", "2024-03-02T01:00:00Z", true),
        // One hour's commit lost: the other hours' files, the log's, tell.
        ("20240301", 2, "0700", "2024-03-02T01:00:00Z", false),
        // The day's later hours not committed yet: only hours 0 to 5 of 2024-03-02 are.
        ("20240302", 2, "*", "2024-03-02T06:00:00Z", true),
    ];
    for (day, generation, lost, until, gone) in cases {
        let sim = start(sim_config(3_000, FROM, TO)).await;
        let dir = tempfile::tempdir().unwrap();
        let mut config = delta_in(&sim, dir.path(), until, "1h");
        config.compact_days = false;
        assert_eq!(export(config.clone()).await.exit_code(), 0);
        let logged = table_files(dir.path());
        let date = format!("{}-{}-{}", &day[..4], &day[4..6], &day[6..]);
        let of_day = format!("subdomain=acme/created_date={date}/part-{day}T");
        let removed: Vec<&String> = logged
            .keys()
            .filter(|p| match lost {
                "*" => p.starts_with(&of_day) && !p.starts_with(&format!("{of_day}0000")),
                hour => p.starts_with(&format!("{of_day}{hour}")),
            })
            .collect();
        assert!(!removed.is_empty());
        // The log behind the markers: those hours' files not in it.
        let version = commits(dir.path()).len();
        let mut lines =
            vec![serde_json::json!({"commitInfo": {"operation": "DELETE", "timestamp": 0}})];
        for path in removed {
            lines.push(serde_json::json!({"remove": {"path": path, "deletionTimestamp": 0, "dataChange": true}}));
            if gone {
                std::fs::remove_file(dir.path().join("audit_logs").join(path)).unwrap();
            }
        }
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let log = dir.path().join("audit_logs/_delta_log");
        std::fs::write(log.join(format!("{version:020}.json")), text).unwrap();
        let windows = dir.path().join("_auditlake/subdomain=acme/windows");
        let marker = windows.join(format!("{day}T0000Z.json"));
        assert!(marker.exists());
        if generation == 2 {
            // As if the hour had been repaired once (a recheck that found it short).
            std::fs::remove_file(&marker).unwrap();
        }
        let name = match generation {
            1 => format!("{day}T0000Z.json"),
            _ => format!("{day}T0000Z.g2.json"),
        };
        std::fs::write(windows.join(name), b"{\"window\": ").unwrap();
        let report = verify_lake(dir.path()).await;
        let first = report
            .windows
            .iter()
            .find(|w| w.window == format!("{day}T0000Z"));
        let case = format!("{day}, generation {generation}, lost {lost}, gone {gone}");
        assert_eq!(
            first.map(|w| w.end - w.start),
            Some(3_600),
            "{case}: {report}"
        );
        assert_eq!(export(config).await.exit_code(), 0);
        assert_eq!(
            table_files(dir.path()),
            logged,
            "{case}: the hours are back in the log"
        );
    }
}

/// Review of the retention: a plain lake converted while a day's first marker is torn (its
/// hour repaired once, the day never compacted: its hours' files are still there) keeps the
/// day's other hours. The log holds nothing yet to tell a compacted day by, so the hours' files
/// tell: a compaction deletes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_lake_converted_with_a_torn_first_hours_marker_keeps_the_days_other_hours() {
    const UNTIL: &str = "2024-03-02T01:00:00Z";
    let sim = start(sim_config(3_000, FROM, TO)).await;
    let dir = tempfile::tempdir().unwrap();
    let mut plain = export_config(&sim, dir.path(), FROM, UNTIL, "1h");
    plain.compact_days = false;
    assert_eq!(export(plain).await.exit_code(), 0);
    let windows = dir.path().join("_auditlake/subdomain=acme/windows");
    std::fs::remove_file(windows.join("20240301T0000Z.json")).unwrap();
    std::fs::write(windows.join("20240301T0000Z.g2.json"), b"{\"window\": ").unwrap();

    let mut converting = delta_in(&sim, dir.path(), UNTIL, "1h");
    converting.compact_days = false;
    assert_eq!(export(converting.clone()).await.exit_code(), 0);
    let hours: Vec<String> = files_on_disk(dir.path())
        .into_keys()
        .filter(|p| p.contains("part-20240301T") && !p.contains("part-20240301T0000Z"))
        .collect();
    assert_eq!(hours.len(), 23, "{hours:?}");
    let logged = table_files(dir.path());
    assert!(hours.iter().all(|h| logged.contains_key(h)), "{logged:?}");
    let report = verify_lake(dir.path()).await;
    let first = report.windows.iter().find(|w| w.window == "20240301T0000Z");
    assert_eq!(first.map(|w| w.end - w.start), Some(3_600), "{report}");

    let repaired = repair_lake(converting).await;
    assert_eq!(repaired.windows_repaired, ["20240301T0000Z"]);
    assert!(repaired.after.is_clean(), "{}", repaired.after);
    assert_log_is_the_lake(dir.path(), &sim, UNTIL);
}
