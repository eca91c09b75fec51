//! The right to erasure, proven (issue 27): `erase` and `expire` as changes of the lake, in both
//! table formats: no trace of the data anywhere the lake writes, every other record unchanged,
//! no repair bringing it back, every kill converging, and the digest chain accounting for every
//! byte that changed. Crashes are injected at the k-th write to the store, process-wide: every
//! test here takes [`SERIAL`].

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use auditlake::lake::manifest::TableFormat;
use auditlake::lake::storage::crash;
use auditlake::run::{self, PolicyOutcome, RunError};
use auditlake::run::{ChangeConfig, EraseConfig, ExpireConfig, ExportConfig};
use auditlake::verify::VerifyOptions;
use common::*;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;
use zendesk_sim::Simulator;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const FROM: &str = "2024-03-01";
/// The account's records end here.
const END: &str = "2024-03-03T00:00:00Z";
/// Past the first day: with hourly windows that day is compacted; the window from 12:00 is open.
const UNTIL: &str = "2024-03-02T12:30:00Z";

fn config(sim: &Simulator, dest: &Path, until: &str, format: TableFormat) -> ExportConfig {
    let mut config = export_config(sim, dest, FROM, until, "1h");
    config.table_format = format;
    config
}

fn change(dest: &Path, reason: &str) -> ChangeConfig {
    ChangeConfig {
        dest: dest.to_str().unwrap().to_string(),
        store: Default::default(),
        subdomain: "acme".into(),
        reason: reason.into(),
        dry_run: false,
        signer: None,
        tmp_dir: std::env::temp_dir(),
        lease_ttl: std::time::Duration::from_secs(600),
        run_id: auditlake::units::new_run_id(),
    }
}

async fn erase(dest: &Path, ids: &[i64]) -> Result<PolicyOutcome, RunError> {
    let config = EraseConfig {
        change: change(dest, "DPO-2024-17"),
        user_ids: ids.to_vec(),
    };
    run::erase(config, CancellationToken::new()).await
}

async fn expire(dest: &Path, before: &str) -> Result<PolicyOutcome, RunError> {
    let config = ExpireConfig {
        change: change(dest, "retention policy 7"),
        before: t(before),
    };
    run::expire(config, CancellationToken::new()).await
}

/// Of the writes of an erasure or expiry, the kill tests crash at one in this many:
/// `AUDITLAKE_KILL_STEP` (`make soak` sets 1: every write), 6 by default.
fn kill_step() -> u64 {
    std::env::var("AUDITLAKE_KILL_STEP")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(6)
}

fn restart(dest: &Path) {
    crash::heal();
    let _ = std::fs::remove_dir_all(dest.join("_auditlake/subdomain=acme/lease"));
}

/// Every record readers see, by id (a plain lake's directory readers, a Delta table's latest
/// version).
fn records(dest: &Path) -> BTreeMap<i64, Map<String, Value>> {
    let mut out = BTreeMap::new();
    for row in rows_seen(dest) {
        assert!(
            out.insert(row.id, row.record).is_none(),
            "{} seen twice",
            row.id
        );
    }
    out
}

/// Whether a record is `user`'s: its actor, or its source as a user.
fn of_user(record: &Map<String, Value>, user: i64) -> bool {
    record.get("actor_id").and_then(Value::as_i64) == Some(user)
        || record.get("source_type").and_then(Value::as_str) == Some("user")
            && record.get("source_id").and_then(Value::as_i64) == Some(user)
}

/// The names and IPs the lake holds for `user` (what must be gone after the erasure).
fn held_for(records: &BTreeMap<i64, Map<String, Value>>, user: i64) -> BTreeSet<String> {
    let mut held = BTreeSet::new();
    for record in records.values() {
        if record.get("actor_id").and_then(Value::as_i64) == Some(user) {
            for field in ["actor_name", "ip_address"] {
                if let Some(v) = record.get(field).and_then(Value::as_str) {
                    held.insert(v.to_string());
                }
            }
        }
        if record.get("source_type").and_then(Value::as_str) == Some("user")
            && record.get("source_id").and_then(Value::as_i64) == Some(user)
        {
            if let Some(v) = record.get("source_label").and_then(Value::as_str) {
                held.insert(v.to_string());
            }
        }
    }
    held.retain(|v| !v.is_empty() && *v != user.to_string());
    held
}

/// The human actor with the most records in the lake among those with a record in the open
/// window (from 12:00 on the second day), so that its parts are erased too.
fn busiest_actor(records: &BTreeMap<i64, Map<String, Value>>) -> i64 {
    let actor_of = |r: &Map<String, Value>| {
        r.get("actor_id")
            .and_then(Value::as_i64)
            .filter(|&a| a > 0 && r.contains_key("actor_name"))
    };
    let open: BTreeSet<i64> = records
        .values()
        .filter(|r| r["created_at"].as_str().unwrap() >= "2024-03-02T12:00:00Z")
        .filter_map(actor_of)
        .collect();
    let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
    for actor in records.values().filter_map(actor_of) {
        if open.contains(&actor) {
            *counts.entry(actor).or_default() += 1;
        }
    }
    counts.into_iter().max_by_key(|&(_, n)| n).unwrap().0
}

/// Every file under `dest`.
fn all_files(dest: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dest.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// No trace of `held` (names and IPs the lake held for `user`) anywhere in the lake: in no
/// record of the user, in any part file left (current or not), and in no other file the lake
/// wrote (state, chain, ledger, journals, the Delta log and its checkpoints).
fn assert_no_trace(dest: &Path, user: i64, held: &BTreeSet<String>, when: &str) {
    assert!(
        !held.is_empty(),
        "{when}: the test erases a user with a name"
    );
    for path in all_files(dest) {
        let name = path.to_string_lossy().to_string();
        let is_part = name.contains("/created_date=") && name.ends_with(".parquet");
        if is_part {
            let bytes = bytes::Bytes::from(std::fs::read(&path).unwrap());
            for row in read_part_in(&name, bytes, Order::AsDeclared) {
                if !of_user(&row.record, user) {
                    continue;
                }
                for (field, value) in &row.record {
                    let text = match value {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    for h in held {
                        assert!(
                            !text.contains(h.as_str()),
                            "{when}: record {} of user {user} still holds a value the lake held for them in {field} ({name})",
                            row.id
                        );
                    }
                }
                assert!(
                    !row.record.contains_key("ip_address")
                        || row.record.get("actor_id").and_then(Value::as_i64) != Some(user),
                    "{when}: record {} keeps its IP ({name})",
                    row.id
                );
            }
        } else {
            let bytes = std::fs::read(&path).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            for h in held {
                assert!(
                    !text.contains(h.as_str()),
                    "{when}: {name} holds a value the lake held for user {user}"
                );
            }
        }
    }
}

/// Every record but `user`'s is what it was, field by field; `user`'s keep every field the rule
/// does not touch.
fn assert_others_unchanged(
    before: &BTreeMap<i64, Map<String, Value>>,
    after: &BTreeMap<i64, Map<String, Value>>,
    user: i64,
    when: &str,
) {
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "{when}: the same records, each once"
    );
    let touched = [
        "actor_name",
        "ip_address",
        "source_label",
        "change_description",
    ];
    for (id, old) in before {
        let new = &after[id];
        if !of_user(old, user) {
            assert_eq!(old, new, "{when}: record {id} of another user changed");
            continue;
        }
        for (field, value) in old {
            // extra_json's fields are spread into the record; names in them may change.
            let schema_field = auditlake::table::schema::Schema::get()
                .position(field)
                .is_some();
            if schema_field && !touched.contains(&field.as_str()) {
                assert_eq!(Some(value), new.get(field), "{when}: record {id}'s {field}");
            }
        }
        if old.get("actor_id").and_then(Value::as_i64) == Some(user)
            && old.contains_key("actor_name")
        {
            assert_eq!(new["actor_name"], Value::from(user.to_string()), "{when}");
        }
    }
}

/// The Delta log's statistics hold only `id` and `created_at` (and row counts): never a value
/// an erasure removes.
fn assert_stats_hold_only_keys(dest: &Path) {
    let Some(root) = delta_root(dest) else {
        return;
    };
    for action in delta_actions(&root) {
        let Some(stats) = action["add"]["stats"].as_str() else {
            continue;
        };
        let stats: Map<String, Value> = serde_json::from_str(stats).unwrap();
        for (key, value) in &stats {
            if let Value::Object(columns) = value {
                let names: BTreeSet<&str> = columns.keys().map(String::as_str).collect();
                assert!(
                    names.iter().all(|c| ["id", "created_at"].contains(c)),
                    "the log's {key} names {names:?}"
                );
            }
        }
    }
}

async fn assert_verified(dest: &Path, when: &str) {
    let options = VerifyOptions {
        deep: true,
        integrity: true,
        ..Default::default()
    };
    let report = verify_lake_with(dest, options).await;
    assert!(report.is_clean(), "{when}: {report}");
}

/// A lake of both kinds of history: a compacted day (a Delta table keeps its hours), a closed
/// hour repaired (an older generation), and the open window's parts.
async fn lake_with_history(format: TableFormat) -> (Simulator, tempfile::TempDir) {
    let sim = start(sim_config(3_000, FROM, END)).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path();
    export(config(&sim, dest, "2024-03-02T12:10:00Z", format)).await;
    let summary = export(config(&sim, dest, UNTIL, format)).await;
    assert_eq!(summary.exit_code(), 0, "{format}");
    // A repair of 2024-03-02 01:00 (a file removed by hand): generation 2.
    let hour = dest.join("audit_logs/subdomain=acme/created_date=2024-03-02");
    let part = hour.join("part-20240302T0100Z-0.parquet");
    std::fs::remove_file(&part).unwrap();
    let outcome = repair_with(config(&sim, dest, UNTIL, format), false)
        .await
        .unwrap();
    assert_eq!(outcome.windows_repaired, ["20240302T0100Z"], "{format}");
    (sim, dir)
}

#[tokio::test]
async fn an_erasure_leaves_no_trace_and_every_other_record_as_it_was() {
    let _serial = SERIAL.lock().await;
    crash::heal();
    for format in [TableFormat::Parquet, TableFormat::Delta] {
        let (sim, dir) = lake_with_history(format).await;
        let dest = dir.path();
        let before = records(dest);
        let user = busiest_actor(&before);
        let held = held_for(&before, user);

        let outcome = erase(dest, &[user]).await.unwrap();
        let rows = before.values().filter(|r| of_user(r, user)).count() as u64;
        assert!(
            outcome.rows > 0 && outcome.rows <= rows,
            "{format}: {outcome:?}"
        );
        assert!(outcome.windows.len() > 2, "{format}: {outcome:?}");
        assert!(
            outcome.windows.iter().any(|w| w.window == "20240302T1200Z"),
            "{format}: the open window's parts are erased: {outcome:?}"
        );
        let when = format!("{format}: after the erasure");
        assert_no_trace(dest, user, &held, &when);
        assert_others_unchanged(&before, &records(dest), user, &when);
        assert_verified(dest, &when).await;
        assert_stats_hold_only_keys(dest);
        if let Some(root) = delta_root(dest) {
            let (fed, live) = delta_change_feed(&root);
            assert_eq!(
                fed, live,
                "{format}: the change feed counts each record once"
            );
        }

        // A second erasure of the same user changes nothing.
        let again = erase(dest, &[user]).await.unwrap();
        assert_eq!(again.rows, 0, "{format}: {again:?}");

        // The API still serves the data: a repair (a file lost), a recheck, and new windows
        // write it erased.
        let hour = dest.join("audit_logs/subdomain=acme/created_date=2024-03-02");
        let erased = outcome
            .windows
            .iter()
            .find(|w| w.window.starts_with("20240302T0") && w.generation >= 2)
            .expect("an hour of the second day was erased");
        let erased_hour = hour.join(format!(
            "part-{}-g{}-0.parquet",
            erased.window, erased.generation
        ));
        std::fs::remove_file(&erased_hour).unwrap_or_else(|e| {
            let files: Vec<_> = std::fs::read_dir(&hour)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            panic!(
                "{format}: {}: {e}; {files:?}; {outcome:?}",
                erased_hour.display()
            )
        });
        let repaired = repair_with(config(&sim, dest, UNTIL, format), false)
            .await
            .unwrap();
        assert!(
            repaired.failures.is_empty(),
            "{format}: {:?}",
            repaired.failures
        );
        let mut later = config(&sim, dest, "2024-03-02T23:00:00Z", format);
        later.recheck = std::time::Duration::from_secs(86_400);
        let summary = export(later).await;
        assert_eq!(summary.exit_code(), 0, "{format}");
        let when = format!("{format}: after a repair and later exports");
        let after = records(dest);
        assert!(after.len() > before.len(), "{when}");
        let held_later = held_for(&records_of_sim(&sim), user);
        assert_no_trace(dest, user, &held_later, &when);
        assert_verified(dest, &when).await;
        let check = repair_with(config(&sim, dest, "2024-03-02T23:00:00Z", format), true)
            .await
            .unwrap();
        assert!(
            check.before.is_clean(),
            "{when}: against the API: {}",
            check.before
        );
    }
}

/// What the simulator serves, as the lake would hold it unerased (for the names it serves).
fn records_of_sim(sim: &Simulator) -> BTreeMap<i64, Map<String, Value>> {
    let account = sim.account();
    let mut out = BTreeMap::new();
    for record in account.expected(
        &zendesk_sim::SimFilter::default(),
        utc(t(FROM)),
        utc(t(END)),
    ) {
        out.insert(record.id, normalize(&record.json));
    }
    out
}

#[tokio::test]
async fn an_erasure_killed_at_any_write_is_finished_by_the_next_run() {
    let _serial = SERIAL.lock().await;
    crash::heal();
    for format in [TableFormat::Parquet, TableFormat::Delta] {
        let (sim, dir) = lake_with_history(format).await;
        let pristine = tempfile::tempdir().unwrap();
        copy_dir(dir.path(), pristine.path());
        let before = records(dir.path());
        let user = busiest_actor(&before);
        let held = held_for(&before, user);
        crash::heal();
        let first = crash::writes();
        erase(dir.path(), &[user]).await.unwrap();
        let writes = crash::writes() - first;
        assert!(writes > 10, "{format}: {writes} writes");
        // Every `kill_step()`th write (the offset differs by format, so that together they
        // cover more), and the last one.
        let offset = u64::from(format == TableFormat::Delta) * 2 % kill_step();
        let points: Vec<u64> = (offset..writes)
            .step_by(kill_step() as usize)
            .chain([writes - 1])
            .collect();
        for k in points {
            let work = tempfile::tempdir().unwrap();
            let dest = work.path();
            copy_dir(pristine.path(), dest);
            crash::after(k);
            let crashed = erase(dest, &[user]).await;
            // The last write gives the lease up: its failure leaves the lease to expire.
            assert!(
                (crashed.is_err() || k + 1 == writes) && crash::crashed(),
                "{format}: write {k} of {writes}: {crashed:?}, crashed {}",
                crash::crashed()
            );
            restart(dest);
            let when = format!("{format}: killed at write {k} of {writes}");
            // Readers lose nothing, whatever was left (a plain lake's readers may see an
            // interrupted change's files twice until the next run).
            let seen = ids_seen(dest);
            assert!(before.keys().all(|id| seen.contains_key(id)), "{when}");
            // The next run (an export) finishes a recorded erasure first; one killed before
            // its ledger entry did not happen, and is asked for again.
            let recorded = decided(dest);
            if recorded {
                let report = verify_lake_with(dest, VerifyOptions::default()).await;
                assert!(
                    !findings_of(&report, auditlake::verify::Kind::Pending).is_empty(),
                    "{when}: verify names the interrupted erasure: {report}"
                );
            }
            let summary = export(config(&sim, dest, UNTIL, format)).await;
            assert_eq!(summary.exit_code(), 0, "{when}");
            if !recorded {
                erase(dest, &[user]).await.unwrap();
            }
            assert_no_trace(dest, user, &held, &when);
            assert_others_unchanged(&before, &records(dest), user, &when);
            assert_verified(dest, &when).await;
        }
    }
}

/// Whether the ledger holds an entry not yet finished: a decision the next run carries out.
fn decided(dest: &Path) -> bool {
    let ledger = dest.join("_auditlake/subdomain=acme/ledger");
    let Ok(entries) = std::fs::read_dir(&ledger) else {
        return false;
    };
    let names: BTreeSet<String> = entries
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    names.iter().any(|n| {
        n.ends_with(".json")
            && !n.ends_with(".done.json")
            && !names.contains(&n.replace(".json", ".done.json"))
    })
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[tokio::test]
async fn an_expiry_removes_whole_windows_with_tombstones_the_chain_accounts_for() {
    let _serial = SERIAL.lock().await;
    crash::heal();
    for format in [TableFormat::Parquet, TableFormat::Delta] {
        let (sim, dir) = lake_with_history(format).await;
        let dest = dir.path();
        let before = records(dest);
        // The compacted first day and the second day's hours before 06:00 go.
        let outcome = expire(dest, "2024-03-02T06:30:00Z").await.unwrap();
        assert_eq!(outcome.windows.len(), 7, "{format}: {outcome:?}");
        assert_eq!(outcome.floor.as_deref(), Some("2024-03-02T06:00:00Z"));
        let after = records(dest);
        let floor = t("2024-03-02T06:00:00Z") * 1_000;
        let kept: Vec<i64> = before
            .iter()
            .filter(|(_, r)| t(r["created_at"].as_str().unwrap()) * 1_000 >= floor)
            .map(|(&id, _)| id)
            .collect();
        assert_eq!(after.keys().copied().collect::<Vec<_>>(), kept, "{format}");
        // No part file of an expired window is left, current or kept for older versions.
        for path in parquet_files(dest) {
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            let start = &name["part-".len().."part-".len() + 14];
            assert!(
                auditlake::units::time::parse_compact(start).unwrap() >= floor / 1_000,
                "{format}: {name} is left"
            );
        }
        let when = format!("{format}: after the expiry");
        assert_verified(dest, &when).await;
        if let Some(root) = delta_root(dest) {
            let (fed, live) = delta_change_feed(&root);
            assert_eq!(fed, live, "{when}: the removes are data changes");
        }
        // A later export (asked from before the floor) exports nothing below it, and the API's
        // counts are not compared for expired windows.
        let summary = export(config(&sim, dest, "2024-03-02T14:00:00Z", format)).await;
        assert_eq!(summary.exit_code(), 0, "{when}");
        assert!(records(dest)
            .keys()
            .all(|id| before
                .get(id)
                .is_none_or(|r| t(r["created_at"].as_str().unwrap()) * 1000 >= floor)));
        let check = repair_with(config(&sim, dest, "2024-03-02T14:00:00Z", format), true)
            .await
            .unwrap();
        assert!(check.before.is_clean(), "{when}: {}", check.before);
        assert!(check.windows_repaired.is_empty(), "{when}");
        let status = auditlake::status::status(
            &auditlake::lake::storage::Lake::open(dest.to_str().unwrap(), &Default::default())
                .unwrap(),
            "acme",
            t("2024-03-02T14:00:00Z"),
        )
        .await
        .unwrap();
        assert_eq!(
            status.retention_floor.as_deref(),
            Some("2024-03-02T06:00:00Z")
        );
        assert!(status.gaps.is_empty(), "{when}: {:?}", status.gaps);

        // Killed at a write of a further expiry (one in `kill_step()`), the next run finishes it.
        let pristine = tempfile::tempdir().unwrap();
        copy_dir(dest, pristine.path());
        crash::heal();
        let first = crash::writes();
        expire(dest, "2024-03-02T09:00:00Z").await.unwrap();
        let writes = crash::writes() - first;
        let expected = records(dest);
        // Every `kill_step()`th write (offset by format), and the last one.
        let offset = u64::from(format == TableFormat::Delta) % kill_step();
        for k in (offset..writes)
            .step_by(kill_step() as usize)
            .chain([writes - 1])
        {
            let work = tempfile::tempdir().unwrap();
            copy_dir(pristine.path(), work.path());
            crash::after(k);
            let crashed = expire(work.path(), "2024-03-02T09:00:00Z").await;
            // The last write gives the lease up: its failure leaves the lease to expire.
            assert!(
                (crashed.is_err() || k + 1 == writes) && crash::crashed(),
                "{format}: write {k} of {writes}: {crashed:?}, crashed {}",
                crash::crashed()
            );
            restart(work.path());
            let recorded = decided(work.path());
            let summary = export(config(&sim, work.path(), "2024-03-02T14:00:00Z", format)).await;
            let when = format!("{format}: expiry killed at write {k} of {writes}");
            assert_eq!(summary.exit_code(), 0, "{when}");
            if !recorded {
                expire(work.path(), "2024-03-02T09:00:00Z").await.unwrap();
            }
            assert_eq!(
                records(work.path()).keys().collect::<Vec<_>>(),
                expected.keys().collect::<Vec<_>>(),
                "{when}"
            );
            assert_verified(work.path(), &when).await;
        }
    }
}

#[tokio::test]
async fn export_retention_expires_what_ended_before_it() {
    let _serial = SERIAL.lock().await;
    crash::heal();
    // Records of the last five days, up to now.
    let now = chrono::Utc::now().timestamp();
    let day = 86_400;
    let from = auditlake::units::time::format_rfc3339((now / day - 5) * day);
    let to = auditlake::units::time::format_rfc3339(now);
    let sim = start(sim_config(2_000, &from, &to)).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path();
    let until = auditlake::units::time::format_rfc3339(now - 600);
    let mut config = export_config(&sim, dest, &from, &until, "1d");
    config.retention = Some(std::time::Duration::from_secs(2 * 86_400));
    let summary = export(config.clone()).await;
    assert_eq!(summary.exit_code(), 0);
    // Windows ending at or before the day two days ago began.
    let floor = (now - 2 * day) / day * day;
    assert_eq!(summary.windows_expired, 3, "{summary:?}");
    assert_eq!(
        summary.retention_floor,
        Some(auditlake::units::time::format_rfc3339(floor))
    );
    let left = records(dest);
    assert!(!left.is_empty());
    assert!(left
        .values()
        .all(|r| t(r["created_at"].as_str().unwrap()) >= floor));
    assert_verified(dest, "after --retention").await;
    // The next run finds the floor where it is: nothing to expire, nothing exported below it.
    let summary = export(config).await;
    assert_eq!(
        (
            summary.exit_code(),
            summary.windows_expired,
            summary.windows_done
        ),
        (0, 0, 0)
    );
}

/// Every file under `dest` and its bytes: what "writes nothing" compares.
fn snapshot(dest: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    all_files(dest)
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

/// The command line on a signed lake: bad inputs are one-line errors that write nothing; an
/// erasure with the key is signed, verifies with the public key, shows no name in its debug
/// log; a file edited by hand and an erase link whose signature was changed are still caught.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erase_and_expire_through_the_command_line_on_a_signed_lake() {
    use auditlake::lake::signing::{generate_pem, public_pem, Signer};
    let _serial = SERIAL.lock().await;
    crash::heal();
    let sim = start(sim_config(3_000, "2024-03-01", "2024-03-01T12:00:00Z")).await;
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let private = generate_pem();
    let key = dir.path().join("chain.key");
    std::fs::write(&key, &private).unwrap();
    let public = dir.path().join("chain.pub");
    std::fs::write(&public, public_pem(&Signer::from_pem(&private).unwrap())).unwrap();
    let (lake_text, key_text) = (lake.to_str().unwrap(), key.to_str().unwrap());
    let mut args = twelve_hour_export(lake_text, &sim.base_url());
    args.extend(["--signing-key-file".to_string(), key_text.to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let env = [("ZENDESK_OAUTH_TOKEN", TOKEN)];
    let out = run_binary(&args, &env).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let before = records(&lake);
    let user = before
        .values()
        .filter_map(|r| r.get("actor_id").and_then(Value::as_i64))
        .filter(|&a| a > 0)
        .max()
        .unwrap();
    let held = held_for(&before, user);
    let user_text = user.to_string();
    let lake_args = ["--dest", lake_text, "--subdomain", "acme"];
    let with = |extra: &[&str]| -> Vec<String> {
        lake_args
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect()
    };

    let bad: Vec<(Vec<String>, &str)> = vec![
        (
            [vec!["erase".to_string()], with(&["--user-id", &user_text])].concat(),
            "--reason",
        ),
        (
            [
                vec!["erase".to_string()],
                with(&["--user-id", "ada", "--reason", "R-1"]),
            ]
            .concat(),
            "--user-id",
        ),
        (
            [
                vec!["expire".to_string()],
                with(&["--before", "2999-01-01", "--reason", "R-1"]),
            ]
            .concat(),
            "in the future",
        ),
        (
            [
                vec!["erase".to_string()],
                with(&["--user-id", &user_text, "--reason", "R-1"]),
            ]
            .concat(),
            "--signing-key-file",
        ),
        (
            [
                vec!["expire".to_string()],
                with(&["--before", "2024-03-01T06:00:00Z", "--reason", "R-1"]),
            ]
            .concat(),
            "--signing-key-file",
        ),
    ];
    let untouched = snapshot(&lake);
    for (args, says) in &bad {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run_binary(&args, &[]).await;
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert_eq!(
            stderr.trim().lines().count(),
            1,
            "{args:?}: one line: {stderr}"
        );
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(snapshot(&lake) == untouched, "{args:?} wrote");
    }
    let mut retention = twelve_hour_export(lake_text, &sim.base_url());
    retention.extend(["--retention".to_string(), "30m".to_string()]);
    let retention: Vec<&str> = retention.iter().map(String::as_str).collect();
    let out = run_binary(&retention, &env).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--retention"), "{}", text(&out));
    // A user the lake does not hold: nothing to erase, nothing written.
    let args = [
        vec!["erase".to_string()],
        with(&[
            "--user-id",
            "12345",
            "--reason",
            "R-1",
            "--signing-key-file",
            key_text,
        ]),
    ]
    .concat();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run_binary(&args, &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("nothing to erase"), "{}", text(&out));
    assert!(
        snapshot(&lake) == untouched,
        "a user not held: nothing written"
    );

    // The erasure, signed, at debug.
    let args = [
        vec!["erase".to_string()],
        with(&[
            "--user-id",
            &user_text,
            "--reason",
            "DPO-9",
            "--signing-key-file",
            key_text,
            "--log-level",
            "debug",
        ]),
    ]
    .concat();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run_binary(&args, &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    for h in &held {
        assert!(
            !text(&out).contains(h.as_str()),
            "the debug log holds a value held for the user"
        );
    }
    assert_no_trace(&lake, user, &held, "signed");
    let verify = |extra: Vec<String>| {
        let mut args: Vec<String> = ["verify", "--deep"].iter().map(|s| s.to_string()).collect();
        args.extend(with(&[]));
        args.extend(extra);
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run_binary(&args, &[]).await
        }
    };
    let public_args = vec![
        "--public-key".to_string(),
        public.to_str().unwrap().to_string(),
    ];
    let good = verify(public_args.clone()).await;
    assert_eq!(good.status.code(), Some(0), "{}", text(&good));
    let status = run_binary(&[&["status"][..], &lake_args].concat(), &[]).await;
    assert!(
        text(&status).contains("erasures:    1"),
        "{}",
        text(&status)
    );
    assert!(text(&status).contains("DPO-9"), "{}", text(&status));

    // An erase link whose signature changed is caught.
    let links = dir.path().join("lake/_auditlake/subdomain=acme/digests");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&links)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    let last = names.last().unwrap();
    let link: Value = serde_json::from_slice(&std::fs::read(last).unwrap()).unwrap();
    assert_eq!(link["kind"], "erase");
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&lake, copy.path());
    let mut forged = link.clone();
    let other = Signer::from_pem(&generate_pem()).unwrap();
    forged["signature"] = Value::from(other.sign(b"not this link"));
    std::fs::write(last, serde_json::to_vec_pretty(&forged).unwrap()).unwrap();
    let bad = verify(public_args.clone()).await;
    assert_eq!(bad.status.code(), Some(6), "{}", text(&bad));
    assert!(text(&bad).contains("BadSignature"), "{}", text(&bad));
    std::fs::write(last, serde_json::to_vec_pretty(&link).unwrap()).unwrap();

    // A file edited by hand is still Altered.
    let file = link["files"][0]["path"].as_str().unwrap();
    let path = lake.join(file);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let altered = verify(vec![]).await;
    assert_eq!(altered.status.code(), Some(6), "{}", text(&altered));
    assert!(text(&altered).contains("Altered"), "{}", text(&altered));

    // The expiry, signed, on the copy: verify with the public key stays clean.
    let args: Vec<String> = [
        "expire",
        "--dest",
        copy.path().to_str().unwrap(),
        "--subdomain",
        "acme",
        "--before",
        "2024-03-01T06:00:00Z",
        "--reason",
        "R-2",
        "--signing-key-file",
        key_text,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run_binary(&args, &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("expired 6 window(s)"), "{}", text(&out));
    let public = public.to_str().unwrap();
    let out = run_binary(
        &[
            "verify",
            "--deep",
            "--dest",
            copy.path().to_str().unwrap(),
            "--subdomain",
            "acme",
            "--public-key",
            public,
        ],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// An open window whose record has no `covered_to` (rebuilt from a torn `open.json`) stays one
/// that the next run exports again from its start when an erasure rewrites its parts: no record
/// is added twice beside the erased parts.
#[tokio::test]
async fn erasing_a_rebuilt_open_window_adds_nothing_twice() {
    let _serial = SERIAL.lock().await;
    crash::heal();
    for format in [TableFormat::Parquet, TableFormat::Delta] {
        let (sim, dir) = lake_with_history(format).await;
        let dest = dir.path();
        let before = records(dest);
        let user = busiest_actor(&before);
        std::fs::write(
            dest.join("_auditlake/subdomain=acme/open.json"),
            "{\"window\": \"2024",
        )
        .unwrap();
        repair_with(config(&sim, dest, UNTIL, format), false)
            .await
            .unwrap();
        erase(dest, &[user]).await.unwrap();
        let summary = export(config(&sim, dest, "2024-03-02T12:45:00Z", format)).await;
        assert_eq!(summary.exit_code(), 0, "{format}");
        let seen = ids_seen(dest);
        let twice: Vec<_> = seen.iter().filter(|(_, &n)| n > 1).take(3).collect();
        assert!(twice.is_empty(), "{format}: seen twice: {twice:?}");
        let expected = expected_ids(&sim, FROM, "2024-03-02T12:45:00Z");
        assert_eq!(seen.len(), expected.len(), "{format}");
        assert_verified(dest, &format!("{format}: erased rebuilt open window")).await;
        if let Some(root) = delta_root(dest) {
            let (fed, live) = delta_change_feed(&root);
            assert_eq!(fed, live, "{format}");
        }
    }
}

/// An open window whose close failed (Zendesk served fewer records than its parts hold) and
/// that the retention floor leaves behind is expired too: its parts go, and it is no longer
/// listed as closing.
#[tokio::test]
async fn an_expiry_removes_an_open_window_whose_close_failed() {
    let _serial = SERIAL.lock().await;
    crash::heal();
    for format in [TableFormat::Parquet, TableFormat::Delta] {
        let (sim, dir) = lake_with_history(format).await;
        let dest = dir.path();
        sim.hide_from(Some(utc(t("2024-03-02T12:10:00Z"))));
        let summary = export(config(&sim, dest, "2024-03-02T13:30:00Z", format)).await;
        assert_ne!(summary.exit_code(), 0, "{format}: the close of 12:00 fails");
        let open =
            std::fs::read_to_string(dest.join("_auditlake/subdomain=acme/open.json")).unwrap();
        assert!(open.contains("earlier"), "{format}: {open}");
        sim.hide_from(None);
        let outcome = expire(dest, "2024-03-02T13:00:00Z").await.unwrap();
        assert!(
            outcome.windows.iter().any(|w| w.window == "20240302T1200Z"),
            "{format}: {outcome:?}"
        );
        let summary = export(config(&sim, dest, "2024-03-02T14:30:00Z", format)).await;
        assert_eq!(summary.exit_code(), 0, "{format}");
        let floor = t("2024-03-02T13:00:00Z");
        let left = records(dest);
        assert!(
            left.values()
                .all(|r| t(r["created_at"].as_str().unwrap()) >= floor),
            "{format}: records below the floor are left"
        );
        let lake =
            auditlake::lake::storage::Lake::open(dest.to_str().unwrap(), &Default::default())
                .unwrap();
        let status = auditlake::status::status(&lake, "acme", t("2024-03-02T14:30:00Z"))
            .await
            .unwrap();
        assert!(status.closing_windows.is_empty(), "{format}");
        assert_verified(dest, &format!("{format}: after expiring a closing window")).await;
    }
}

/// A pending entry written by hand into a signed lake is not carried out: the run refuses
/// (exit 6) and destroys nothing; `verify --public-key` names the entry, and a pending erasure
/// is reported by any verify.
#[tokio::test]
async fn a_forged_ledger_entry_in_a_signed_lake_destroys_nothing() {
    use auditlake::lake::signing::{generate_pem, Signer};
    let _serial = SERIAL.lock().await;
    crash::heal();
    let sim = start(sim_config(2_000, FROM, END)).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path();
    let signer = std::sync::Arc::new(Signer::from_pem(&generate_pem()).unwrap());
    let mut signed = config(&sim, dest, UNTIL, TableFormat::Parquet);
    signed.signer = Some(signer.clone());
    assert_eq!(export(signed.clone()).await.exit_code(), 0);
    let before = records(dest);
    let ledger = dest.join("_auditlake/subdomain=acme/ledger");
    std::fs::create_dir_all(&ledger).unwrap();
    let user = busiest_actor(&before);
    let forged_expiry = r#"{"seq":1,"kind":"expire","before":"2024-03-02T12:00:00Z","reason":"x","at":"2024-03-02T12:00:00Z","run_id":"x"}"#;
    let forged_erasure = format!(
        r#"{{"seq":1,"kind":"erase","user_ids":[{user}],"reason":"x","at":"2024-03-02T12:00:00Z","run_id":"x"}}"#
    );
    let done = r#"{"seq":1,"finished_at":"2024-03-02T12:00:00Z","windows":[],"files_purged":0,"run_id":"x"}"#;
    // Pending, and finished (so that only its erasure would be applied to later writes).
    for (entry, end) in [
        (forged_expiry.to_string(), None),
        (forged_erasure, Some(done)),
    ] {
        std::fs::write(ledger.join("0000000001.json"), &entry).unwrap();
        if let Some(end) = end {
            std::fs::write(ledger.join("0000000001.done.json"), end).unwrap();
        }
        let mut later = signed.clone();
        later.until = t("2024-03-02T16:00:00Z");
        let refused = run::export(later, CancellationToken::new(), &run::NoProgress).await;
        let error = refused.unwrap_err();
        assert_eq!(auditlake::Error::from(error).exit_code(), 6, "{entry}");
        assert_eq!(
            records(dest),
            before,
            "nothing destroyed, nothing written: {entry}"
        );
        let options = VerifyOptions {
            public_key: Some(signer.verifier()),
            ..Default::default()
        };
        let report = verify_lake_with(dest, options).await;
        let kinds: Vec<_> = report.findings.iter().map(|f| f.kind).collect();
        assert!(
            kinds.contains(&auditlake::verify::Kind::BadSignature),
            "{report}"
        );
        assert_eq!(
            kinds.contains(&auditlake::verify::Kind::Pending),
            end.is_none(),
            "{report}"
        );
    }
    // A signed entry copied under another number: the ledger does not read.
    let _ = std::fs::remove_file(ledger.join("0000000001.done.json"));
    std::fs::remove_file(ledger.join("0000000001.json")).unwrap();
    let config = EraseConfig {
        change: ChangeConfig {
            signer: Some(signer.clone()),
            ..change(dest, "DPO-5")
        },
        user_ids: vec![user],
    };
    run::erase(config, CancellationToken::new()).await.unwrap();
    std::fs::copy(
        ledger.join("0000000001.json"),
        ledger.join("0000000002.json"),
    )
    .unwrap();
    let refused = run::export(signed.clone(), CancellationToken::new(), &run::NoProgress).await;
    assert!(
        refused.unwrap_err().to_string().contains("0000000002.json"),
        "the misnumbered entry is named"
    );
    // Under a name the ledger does not write (the same number twice).
    std::fs::remove_file(ledger.join("0000000002.json")).unwrap();
    std::fs::copy(ledger.join("0000000001.json"), ledger.join("1.json")).unwrap();
    let refused = run::export(signed.clone(), CancellationToken::new(), &run::NoProgress).await;
    assert!(refused.unwrap_err().to_string().contains("1.json"));
    std::fs::remove_file(ledger.join("1.json")).unwrap();
    // A signed entry of another subdomain's ledger (the same key), copied in under the next
    // number: not this subdomain's decision.
    let other = tempfile::tempdir().unwrap();
    let lake =
        auditlake::lake::storage::Lake::open(other.path().to_str().unwrap(), &Default::default())
            .unwrap();
    let expire_all = auditlake::lake::ledger::Decision::Expire {
        before: auditlake::units::time::Timestamp::parse("2024-03-02T12:00:00Z").unwrap(),
    };
    for _ in 0..2 {
        auditlake::lake::ledger::Ledger::append(
            &lake,
            "globex",
            expire_all.clone(),
            "globex's",
            "r",
            Some(&signer),
            None,
        )
        .await
        .unwrap();
    }
    std::fs::copy(
        other
            .path()
            .join("_auditlake/subdomain=globex/ledger/0000000002.json"),
        ledger.join("0000000002.json"),
    )
    .unwrap();
    let before = records(dest);
    let refused = run::export(signed, CancellationToken::new(), &run::NoProgress).await;
    assert_eq!(auditlake::Error::from(refused.unwrap_err()).exit_code(), 6);
    assert_eq!(
        records(dest),
        before,
        "another subdomain's entry destroys nothing"
    );
}

/// A keyed command on a lake not signed yet (its ledger's entries unsigned) goes on: only a
/// lake that pins a key requires its entries signed.
#[tokio::test]
async fn a_keyed_erase_of_a_lake_not_signed_yet_goes_on() {
    use auditlake::lake::signing::{generate_pem, Signer};
    let _serial = SERIAL.lock().await;
    crash::heal();
    let sim = start(sim_config(2_000, FROM, END)).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path();
    assert_eq!(
        export(config(&sim, dest, UNTIL, TableFormat::Parquet))
            .await
            .exit_code(),
        0
    );
    let users: Vec<i64> = {
        let before = records(dest);
        let first = busiest_actor(&before);
        let second = before
            .values()
            .filter_map(|r| r.get("actor_id").and_then(Value::as_i64))
            .find(|&a| a > 0 && a != first)
            .unwrap();
        vec![first, second]
    };
    erase(dest, &users[..1]).await.unwrap();
    let signer = std::sync::Arc::new(Signer::from_pem(&generate_pem()).unwrap());
    let config = EraseConfig {
        change: ChangeConfig {
            signer: Some(signer),
            ..change(dest, "DPO-6")
        },
        user_ids: users[1..].to_vec(),
    };
    let outcome = run::erase(config, CancellationToken::new()).await.unwrap();
    assert!(outcome.rows > 0);
}

/// A lake signed after an erasure: the first signed run signs the ledger's entries again, so
/// that later runs go on applying them.
#[tokio::test]
async fn a_lake_signed_after_an_erasure_keeps_applying_it() {
    use auditlake::lake::signing::{generate_pem, Signer};
    let _serial = SERIAL.lock().await;
    crash::heal();
    let sim = start(sim_config(2_000, FROM, END)).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path();
    let plain = config(&sim, dest, UNTIL, TableFormat::Parquet);
    assert_eq!(export(plain.clone()).await.exit_code(), 0);
    let before = records(dest);
    let user = busiest_actor(&before);
    erase(dest, &[user]).await.unwrap();
    let signer = std::sync::Arc::new(Signer::from_pem(&generate_pem()).unwrap());
    let mut signed = plain;
    signed.signer = Some(signer.clone());
    signed.until = t("2024-03-02T23:00:00Z");
    let summary = export(signed).await;
    assert_eq!(summary.exit_code(), 0);
    let held_later = held_for(&records_of_sim(&sim), user);
    assert_no_trace(dest, user, &held_later, "signed after the erasure");
    assert_verified(dest, "signed after the erasure").await;
    // Its links from before it was signed are unsigned (verify --public-key names them); its
    // ledger's entries are all signed again.
    let options = VerifyOptions {
        public_key: Some(signer.verifier()),
        ..Default::default()
    };
    let report = verify_lake_with(dest, options).await;
    assert!(
        report
            .findings
            .iter()
            .all(|f| !f.path.as_deref().unwrap_or("").contains("ledger")),
        "{report}"
    );
}

/// An erasure left pending beside a marker that does not parse waits for the repair that mends
/// the window, instead of failing every run; the repair then finishes it.
#[tokio::test]
async fn a_pending_erasure_waits_for_the_repair_of_a_torn_marker() {
    let _serial = SERIAL.lock().await;
    crash::heal();
    let (sim, dir) = lake_with_history(TableFormat::Parquet).await;
    let dest = dir.path();
    let before = records(dest);
    let user = busiest_actor(&before);
    let held = held_for(&before, user);
    let ledger = dest.join("_auditlake/subdomain=acme/ledger");
    std::fs::create_dir_all(&ledger).unwrap();
    std::fs::write(
        ledger.join("0000000001.json"),
        format!(r#"{{"seq":1,"subdomain":"acme","kind":"erase","user_ids":[{user}],"reason":"DPO-7","at":"2024-03-02T12:00:00Z","run_id":"x"}}"#),
    )
    .unwrap();
    let marker = dest.join("_auditlake/subdomain=acme/windows/20240302T0500Z.json");
    let bytes = std::fs::read(&marker).unwrap();
    std::fs::write(&marker, &bytes[..100]).unwrap();
    let outcome = repair_with(config(&sim, dest, UNTIL, TableFormat::Parquet), false)
        .await
        .unwrap();
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    assert!(outcome.after.is_clean(), "{}", outcome.after);
    assert_no_trace(dest, user, &held, "after the repair");
}
