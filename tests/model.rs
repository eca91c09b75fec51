//! The lake's invariants as properties (issue 26): random sequences of what happens to a lake
//! on a schedule (exports to a later `until`, exports under API faults, crashes at the k-th
//! write to the store, verify, repair, records that arrive late and a recheck, a torn marker or
//! journal, the conversion to Delta), on both table formats and both grids, each checked after
//! every step:
//!
//! - (a) every record a run that exited 0 committed (what readers saw once it ended) is still
//!   seen by readers (a plain lake's directory readers; a Delta table's latest version);
//! - (b) `verify` says clean only when readers see no record twice and nothing committed is
//!   missing;
//! - (c) in a Delta table, over all versions, the rows of the `dataChange: true` adds minus those
//!   of the `dataChange: true` removes are the table's rows (a change feed counts each record
//!   once);
//! - (d) after an export (and a repair) against a healthy API, the lake is exact: every record
//!   from the retention floor on, each erased user's records erased (issue 27: erasures and
//!   expiries, some killed at a write, are operations too; an expired record is not lost).
//!
//! Each sequence prints its seed; `AUDITLAKE_MODEL_SEED=N` replays one. `make test` runs
//! [`SEQUENCES`] sequences; `make soak` sets `AUDITLAKE_MODEL_SEQUENCES` to run many more.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use auditlake::lake::manifest::TableFormat;
use auditlake::lake::storage::crash;
use auditlake::run::ExportConfig;
use auditlake::run::{self, NoProgress, RepairOutcome, RunError, Summary};
use auditlake::verify::VerifyOptions;
use common::*;
use tokio_util::sync::CancellationToken;
use zendesk_sim::{SimFilter, Simulator};

/// Sequences `make test` runs (a few minutes on a 2-core machine, both formats and grids).
const SEQUENCES: u64 = 6;
/// Operations a sequence makes.
const OPERATIONS: usize = 14;

const FROM: &str = "2024-03-01";
/// The account's records end here; runs go a little past it.
const END: &str = "2024-03-03T06:00:00Z";

/// What the model knows.
struct Model {
    seed: u64,
    rng: fastrand::Rng,
    sim: Simulator,
    /// The same account, with 5xx and resets on a third of its list requests.
    faulty: Simulator,
    dest: tempfile::TempDir,
    grid: &'static str,
    format: TableFormat,
    /// The last `until` an export asked for.
    until: i64,
    /// Records are hidden (not arrived yet) from here, if set.
    hidden_from: Option<i64>,
    /// Every record a run that exited 0 committed.
    committed: BTreeSet<i64>,
    /// Each record's `created_at` (UTC seconds), for what an expiry removes on purpose.
    created: std::collections::BTreeMap<i64, i64>,
    /// The account's human actors: who an erasure erases.
    actors: Vec<i64>,
    /// What happened so far, for a failure's message.
    log: Vec<String>,
    /// Figures for the report.
    stats: Stats,
}

#[derive(Default, Debug)]
struct Stats {
    operations: u64,
    crashes: u64,
    checks: u64,
}

impl Model {
    async fn new(seed: u64) -> Model {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut account = sim_config(900, FROM, END);
        account.seed = seed;
        let mut faulty = account.clone();
        faulty.faults.error_5xx_rate = 0.2;
        faulty.faults.reset_rate = 0.1;
        faulty.faults.seed = seed;
        let grid = if rng.bool() { "1h" } else { "6h" };
        let format = if rng.u8(..3) == 0 {
            TableFormat::Delta
        } else {
            TableFormat::Parquet
        };
        let sim = start(account).await;
        let expected = sim
            .account()
            .expected(&SimFilter::default(), utc(t(FROM)), utc(t(END)));
        let records: Vec<serde_json::Value> = expected
            .iter()
            .map(|e| serde_json::from_str(&e.json).unwrap())
            .collect();
        let created = records
            .iter()
            .map(|r| {
                (
                    r["id"].as_i64().unwrap(),
                    t(r["created_at"].as_str().unwrap()),
                )
            })
            .collect();
        let mut actors: Vec<i64> = records
            .iter()
            .filter_map(|r| r["actor_id"].as_i64())
            .filter(|&a| a > 0)
            .collect();
        actors.sort_unstable();
        actors.dedup();
        Model {
            seed,
            created,
            actors,
            sim,
            faulty: start(faulty).await,
            dest: tempfile::tempdir().unwrap(),
            grid,
            format,
            until: t(FROM),
            hidden_from: None,
            committed: BTreeSet::new(),
            log: vec![format!("seed {seed}: grid {grid}, {format}")],
            stats: Stats::default(),
            rng,
        }
    }

    fn dest(&self) -> &Path {
        self.dest.path()
    }

    fn config(&self, sim: &Simulator, until: i64) -> ExportConfig {
        let mut config = export_config(sim, self.dest(), FROM, FROM, self.grid);
        config.until = until;
        config.table_format = self.format;
        config.concurrency = 2;
        config
    }

    /// A later `until`: between 20 minutes and 9 hours on.
    fn later(&mut self) -> i64 {
        self.until + 60 * self.rng.i64(20..540)
    }

    fn fail(&self, what: &str) -> ! {
        if let Ok(keep) = std::env::var("AUDITLAKE_MODEL_KEEP") {
            // The lake as it failed, for a person to look at.
            let status = std::process::Command::new("cp")
                .args(["-r", self.dest().to_str().unwrap(), &keep])
                .status();
            eprintln!("the failed lake is copied to {keep}: {status:?}");
        }
        panic!(
            "model seed {} (replay: AUDITLAKE_MODEL_SEED={}): {what}\n{}",
            self.seed,
            self.seed,
            self.log.join("\n")
        )
    }

    async fn export(&mut self, until: i64, faulty: bool) -> Result<Summary, RunError> {
        let sim = if faulty { &self.faulty } else { &self.sim };
        let mut config = self.config(sim, until);
        if faulty {
            config.api.client.retry.max_attempts = 1;
        }
        let result = run::export(config, CancellationToken::new(), &NoProgress).await;
        self.until = self.until.max(until);
        if let Ok(summary) = &result {
            // A process that crashed says nothing: only a run that finished and exited 0 did.
            // What it committed is what readers see once it ended (a window it skipped, whose
            // marker is torn, or whose late records no recheck has found yet, holds what it
            // held; the end of the sequence checks the lake exact).
            if summary.exit_code() == 0 && !crash::crashed() {
                self.committed.extend(ids_seen(self.dest()).into_keys());
            }
        }
        result
    }

    async fn repair(&self, against_api: bool) -> Result<RepairOutcome, RunError> {
        repair_with(self.config(&self.sim, self.until), against_api).await
    }

    /// After a crash: a new process; the dead one's lease is gone (on this machine its pid
    /// proves it dead; inside one test process it cannot).
    fn restart(&mut self) {
        crash::heal();
        let lease = self.dest().join("_auditlake/subdomain=acme/lease");
        let _ = std::fs::remove_dir_all(lease);
    }

    /// What the ledger decided: the users erased and the retention floor.
    fn ledger(&self) -> (BTreeSet<i64>, Option<i64>) {
        let dir = self.dest().join("_auditlake/subdomain=acme/ledger");
        let (mut erased, mut floor) = (BTreeSet::new(), None);
        for entry in std::fs::read_dir(dir).into_iter().flatten() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if name.ends_with(".done.json") {
                continue;
            }
            let entry: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            for id in entry["user_ids"].as_array().into_iter().flatten() {
                erased.insert(id.as_i64().unwrap());
            }
            if let Some(before) = entry["before"].as_str() {
                floor = floor.max(Some(t(before)));
            }
        }
        (erased, floor)
    }

    fn change(&self, reason: &str) -> auditlake::run::ChangeConfig {
        auditlake::run::ChangeConfig {
            dest: self.dest().to_str().unwrap().to_string(),
            store: Default::default(),
            subdomain: "acme".into(),
            reason: reason.into(),
            dry_run: false,
            signer: None,
            tmp_dir: std::env::temp_dir(),
            lease_ttl: Duration::from_secs(600),
            run_id: auditlake::units::new_run_id(),
        }
    }

    /// An erasure of a random human actor, or an expiry to a day boundary, killed at a random
    /// write half the time.
    async fn policy(&mut self, erase: bool) {
        let k = self.rng.bool().then(|| self.rng.u64(1..60));
        if let Some(k) = k {
            crash::after(k);
        }
        let said = if erase {
            let actor = self.actors[self.rng.usize(..self.actors.len())];
            let config = auditlake::run::EraseConfig {
                change: self.change("DPO-model"),
                user_ids: vec![actor],
            };
            let outcome = run::erase(config, CancellationToken::new()).await;
            format!("erase {actor}: {}", policy_said(&outcome))
        } else {
            let before = if self.rng.bool() {
                "2024-03-02"
            } else {
                "2024-03-03"
            };
            let config = auditlake::run::ExpireConfig {
                change: self.change("retention"),
                before: t(before),
            };
            let outcome = run::expire(config, CancellationToken::new()).await;
            format!("expire before {before}: {}", policy_said(&outcome))
        };
        let crashed = crash::crashed();
        self.restart();
        self.stats.crashes += u64::from(crashed);
        self.log
            .push(format!("{said}, crashed at write {k:?}: {crashed}"));
    }

    /// (a) and (c), after every step.
    fn check(&mut self) {
        self.stats.checks += 1;
        let seen = ids_seen(self.dest());
        let (_, floor) = self.ledger();
        let lost: Vec<&i64> = self
            .committed
            .iter()
            .filter(|id| floor.is_none_or(|f| self.created[*id] >= f))
            .filter(|id| !seen.contains_key(id))
            .take(5)
            .collect();
        if !lost.is_empty() {
            self.fail(&format!(
                "(a) committed records no reader sees, e.g. {lost:?}"
            ));
        }
        if let Some(root) = delta_root(self.dest()) {
            let (fed, rows) = delta_change_feed(&root);
            if fed != rows {
                self.fail(&format!(
                    "(c) the change feed holds {fed} rows, the table {rows}"
                ));
            }
            if let Some((id, n)) = seen.iter().find(|(_, &n)| n > 1) {
                self.fail(&format!("Delta readers see record {id} {n} times"));
            }
        }
    }

    /// (b): a clean verify means readers see every committed record once.
    async fn verify(&mut self) {
        if !self
            .dest()
            .join("_auditlake/subdomain=acme/dataset.json")
            .exists()
        {
            self.log.push("  verify: no lake yet".into());
            return;
        }
        let report = verify_lake_with(self.dest(), VerifyOptions::default()).await;
        self.log
            .push(format!("  verify: {} findings", report.findings.len()));
        if report.is_clean() {
            let seen = ids_seen(self.dest());
            if let Some((id, n)) = seen.iter().find(|(_, &n)| n > 1) {
                self.fail(&format!(
                    "(b) verify is clean, but readers see record {id} {n} times:\n{report}"
                ));
            }
        }
    }

    /// One random operation.
    async fn step(&mut self) {
        self.stats.operations += 1;
        match self.rng.u8(..12) {
            10 => self.policy(true).await,
            11 => self.policy(false).await,
            0..=2 => {
                let until = self.later();
                let outcome = self.export(until, false).await;
                self.log
                    .push(format!("export to {}: {}", utc(until), exit(&outcome)));
            }
            3 => {
                let until = self.later();
                let outcome = self.export(until, true).await;
                self.log.push(format!(
                    "export under faults to {}: {}",
                    utc(until),
                    exit(&outcome)
                ));
            }
            4 | 5 => {
                let k = self.rng.u64(1..40);
                let until = self.later();
                crash::after(k);
                let outcome = self.export(until, false).await;
                let crashed = crash::crashed();
                self.restart();
                self.stats.crashes += u64::from(crashed);
                self.log.push(format!(
                    "export to {} crashed at write {k}: {crashed} ({})",
                    utc(until),
                    exit(&outcome)
                ));
            }
            6 => {
                let k = self.rng.u64(1..30);
                crash::after(k);
                let against_api = self.rng.bool();
                let outcome = self.repair(against_api).await;
                let crashed = crash::crashed();
                self.restart();
                self.stats.crashes += u64::from(crashed);
                let said = match &outcome {
                    Ok(o) => format!(
                        "{} repaired, {} failures",
                        o.windows_repaired.len(),
                        o.failures.len()
                    ),
                    Err(e) => e.to_string(),
                };
                self.log
                    .push(format!("repair crashed at write {k}: {crashed} ({said})"));
            }
            7 => {
                // Records from a point inside the last day arrive late; the next runs see them
                // after a while (a recheck covers them).
                match self.hidden_from {
                    None => {
                        let from = self.until - 60 * self.rng.i64(30..600);
                        self.hidden_from = Some(from);
                        self.sim.hide_from(Some(utc(from)));
                        self.faulty.hide_from(Some(utc(from)));
                        self.log
                            .push(format!("records from {} arrive late", utc(from)));
                    }
                    Some(_) => {
                        self.hidden_from = None;
                        self.sim.hide_from(None);
                        self.faulty.hide_from(None);
                        let until = self.later();
                        let mut config = self.config(&self.sim, until);
                        config.recheck = Duration::from_secs(2 * 86_400);
                        let outcome =
                            run::export(config, CancellationToken::new(), &NoProgress).await;
                        self.until = until;
                        self.log.push(format!(
                            "late records arrived; recheck run: {}",
                            exit(&outcome)
                        ));
                    }
                }
            }
            8 => self.tear(),
            _ => {
                if self.format == TableFormat::Parquet && self.rng.bool() {
                    self.format = TableFormat::Delta;
                    let until = self.later();
                    let outcome = self.export(until, false).await;
                    self.log
                        .push(format!("converted to Delta: {}", exit(&outcome)));
                } else {
                    self.verify().await;
                }
            }
        }
        self.check();
    }

    /// Cuts a random marker or journal short.
    fn tear(&mut self) {
        let state = self.dest().join("_auditlake/subdomain=acme");
        let mut files: Vec<std::path::PathBuf> = ["windows", "repairs"]
            .iter()
            .filter_map(|d| std::fs::read_dir(state.join(d)).ok())
            .flat_map(|d| d.map(|e| e.unwrap().path()))
            .collect();
        files.sort();
        if files.is_empty() {
            self.log.push("nothing to tear".into());
            return;
        }
        let file = &files[self.rng.usize(..files.len())];
        let bytes = std::fs::read(file).unwrap();
        let keep = self.rng.usize(..bytes.len().max(1));
        std::fs::write(file, &bytes[..keep]).unwrap();
        self.log
            .push(format!("tore {} to {keep} bytes", file.display()));
    }

    /// (d): a healthy API, every late record arrived, a recheck over everything and a repair
    /// against the API: the lake is exact.
    async fn settle(&mut self) {
        self.sim.hide_from(None);
        self.hidden_from = None;
        let until = t(END) + 3_600;
        let mut config = self.config(&self.sim, until);
        config.recheck = Duration::from_secs(5 * 86_400);
        let summary = run::export(config, CancellationToken::new(), &NoProgress).await;
        self.log.push(format!("settle: export {}", exit(&summary)));
        self.until = until;
        let repaired = match self.repair(true).await {
            Ok(r) => r,
            Err(e) => self.fail(&format!("(d) the repair failed: {e}")),
        };
        self.log.push(format!(
            "settle: repair: {:?} repaired; before: {}",
            repaired.windows_repaired, repaired.before
        ));
        if !repaired.after.is_clean() {
            self.fail(&format!(
                "(d) the lake is not clean after a repair: {}",
                repaired.after
            ));
        }
        let summary = self.export(until, false).await;
        if summary.as_ref().map(|s| s.exit_code()).unwrap_or(1) != 0 {
            self.fail(&format!("(d) the last export failed: {}", exit(&summary)));
        }
        self.check();
        let report = verify_deep(self.dest()).await;
        if !report.is_clean() {
            self.fail(&format!("(d) verify --deep: {report}"));
        }
        let rows = read_lake_in(
            &self.dest().join("audit_logs/subdomain=acme"),
            Order::Sorted,
        );
        let rows = match delta_root(self.dest()) {
            Some(root) => {
                let live = delta_live(&root);
                rows.into_iter()
                    .filter(|r| live.contains(&r.path))
                    .collect()
            }
            None => rows,
        };
        self.assert_exact(rows);
    }

    /// The lake holds exactly the account's records from the retention floor on, each once,
    /// every field intact but the erased users' data, which holds none of what the account
    /// serves for them.
    fn assert_exact(&self, rows: Vec<LakeRow>) {
        let (erased, floor) = self.ledger();
        let since = floor.map_or(t(FROM), |f| f.max(t(FROM)));
        let expected = self
            .sim
            .account()
            .expected(&SimFilter::default(), utc(since), utc(t(END)));
        let by_id: std::collections::BTreeMap<i64, &LakeRow> =
            rows.iter().map(|r| (r.id, r)).collect();
        if by_id.len() != rows.len() || rows.len() != expected.len() {
            let below: BTreeSet<String> = rows
                .iter()
                .filter(|r| r.created_at < since * 1_000)
                .map(|r| r.path.file_name().unwrap().to_string_lossy().to_string())
                .collect();
            self.fail(&format!(
                "(d) {} rows ({} ids), {} expected from {}; files below it: {below:?}",
                rows.len(),
                by_id.len(),
                expected.len(),
                utc(since)
            ));
        }
        for e in &expected {
            let Some(row) = by_id.get(&e.id) else {
                self.fail(&format!("(d) record {} is missing", e.id));
            };
            let want = normalize(&e.json);
            let user_of = |r: &serde_json::Map<String, serde_json::Value>| {
                let actor = r.get("actor_id").and_then(|v| v.as_i64());
                let source = (r.get("source_type").and_then(|v| v.as_str()) == Some("user"))
                    .then(|| r.get("source_id").and_then(|v| v.as_i64()))
                    .flatten();
                [actor, source]
                    .into_iter()
                    .flatten()
                    .find(|u| erased.contains(u))
            };
            match user_of(&want) {
                None if row.record != want => self.fail(&format!("(d) record {} differs", e.id)),
                None => {}
                Some(_) => {
                    for field in [
                        "id",
                        "created_at",
                        "action",
                        "actor_id",
                        "source_id",
                        "source_type",
                    ] {
                        if row.record.get(field) != want.get(field) {
                            self.fail(&format!("(d) erased record {}'s {field} differs", e.id));
                        }
                    }
                    let actor = want.get("actor_id").and_then(|v| v.as_i64());
                    if actor.is_some_and(|a| erased.contains(&a)) {
                        let name = want
                            .get("actor_name")
                            .and_then(|v| v.as_str())
                            .filter(|n| !n.is_empty());
                        let ip = want.get("ip_address").and_then(|v| v.as_str());
                        for held in [name, ip].into_iter().flatten() {
                            if row
                                .record
                                .values()
                                .any(|v| v.as_str().is_some_and(|s| s.contains(held)))
                            {
                                self.fail(&format!(
                                    "(d) erased record {} still holds its actor's data",
                                    e.id
                                ));
                            }
                        }
                    }
                }
            }
        }
    }
}

fn policy_said(outcome: &Result<auditlake::run::PolicyOutcome, RunError>) -> String {
    match outcome {
        Ok(o) => format!("{} window(s), {} rows", o.windows.len(), o.rows),
        Err(e) => format!("error: {e}"),
    }
}

fn exit<T: HasExit>(outcome: &Result<T, RunError>) -> String {
    match outcome {
        Ok(o) => format!("exit {}", o.code()),
        Err(e) => format!("error: {e}"),
    }
}

trait HasExit {
    fn code(&self) -> u8;
}

impl HasExit for Summary {
    fn code(&self) -> u8 {
        self.exit_code()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_sequences_keep_every_committed_record_once() {
    let seeds: Vec<u64> = match std::env::var("AUDITLAKE_MODEL_SEED") {
        Ok(seed) => vec![seed.parse().expect("AUDITLAKE_MODEL_SEED is a number")],
        Err(_) => {
            let n = std::env::var("AUDITLAKE_MODEL_SEQUENCES")
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(SEQUENCES);
            let base = std::env::var("AUDITLAKE_MODEL_BASE")
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            (base..base + n).collect()
        }
    };
    let mut total = Stats::default();
    let started = std::time::Instant::now();
    for seed in seeds {
        eprintln!("model seed {seed}");
        let mut model = Model::new(seed).await;
        for _ in 0..OPERATIONS {
            model.step().await;
        }
        model.settle().await;
        total.operations += model.stats.operations;
        total.crashes += model.stats.crashes;
        total.checks += model.stats.checks;
    }
    eprintln!(
        "model: {} operations, {} crashes injected, {} invariant checks, {:.0?}",
        total.operations,
        total.crashes,
        total.checks,
        started.elapsed()
    );
}
