//! The Delta Lake log at the table root (`--table-format delta`): every change of the lake is also
//! one Delta commit under `audit_logs/_delta_log/`, so engines that read Delta see whole commits
//! (never a repair or a compaction half done). The files a commit removes stay for the table's
//! retention, so that its older versions read (see `retention.rs`).
//!
//! **Order.** Files first, then the marker (or the open window's state), then the log commit. The
//! markers stay the run's truth (what is done, what to resume); the log follows them. A crash
//! between a marker and its commit leaves the log one change behind, never ahead, and the next
//! run converges it ([`DeltaLog::converge`]): the files the markers name against the files the log
//! holds for the subdomain, the difference committed at once. The same convergence turns a plain
//! lake into a Delta table from its markers, in one commit.
//!
//! **Commits** are written by this module as the Delta protocol spells them (`commitInfo`, `txn`,
//! `remove`, `add`, one JSON object a line), with create-if-absent: S3's conditional PUT, a hard
//! link locally. Each subdomain's run holds the lease, so only runs of other subdomains race for
//! a version; a lost race is retried at the next version (a blind append: no run touches another
//! subdomain's files). Each commit carries a `txn` action (`auditlake-<subdomain>`, one more
//! than the last), so that a commit whose create answer was lost is recognised as the run's own
//! when retried, and applied exactly once. The kernel (`delta_kernel`) reads snapshots (the
//! files, the `txn` versions, the removes kept for retention) and writes checkpoints: the parts
//! of the protocol where its replay of checkpoints and commits is worth more than a few lines of
//! JSON.
//!
//! **Not the kernel's transactions** (checked against delta_kernel 0.30.1). Its transaction API
//! (`Snapshot::update_table`, `Transaction::add_files`, `remove_files`, `with_transaction_id`)
//! writes a `txn` action, statistics we give it, and one `dataChange` for every add and remove of
//! a commit, as ours do. What it does not write, or not as we need:
//!
//! - **Tags.** Its add actions are built from `add_files_schema()` (`BASE_ADD_FILES_SCHEMA` in
//!   `src/transaction/mod.rs`: path, partitionValues, size, modificationTime, stats), which has no
//!   `tags`; ours carry each file's SHA-256 there. A commit's adds and removes are one commit, so
//!   the whole commit stays ours.
//! - **Commit 0.** `create_table` is public only behind the unstable `internal-api` feature
//!   (`src/transaction/mod.rs`), and it writes protocol (3, 7) with table features; ours is
//!   (1, 2), which every engine above reads.
//! - **A lost answer.** A transaction commits only at its snapshot's version plus one; an existing
//!   version is a `Conflict` (`src/committer/filesystem.rs`), and every try writes a fresh
//!   `commitInfo.txnId` (`CommitInfo::new`, `src/actions/mod.rs`), so a commit of ours whose
//!   create answer was lost no longer reads as ours (we compare the bytes), and each lost race
//!   costs a new snapshot and a new transaction instead of the next version.
//! - **Crash points.** Its commits go through its own store, past `Lake::create`, where the
//!   kill drills and the model test inject their crashes.
//!
//! Look again when `add_files` takes `tags` and `create_table` is stable.
//!
//! **Protocol (1, 2)** and no table features: the lowest that Athena engine v3, Trino, Spark,
//! DuckDB and delta-rs all read.

pub(crate) mod retention;
mod snapshot;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use delta_kernel::snapshot::Snapshot;
use delta_kernel_default_engine::executor::tokio::TokioMultiThreadExecutor;
use delta_kernel_default_engine::DefaultEngine;
use object_store::path::Path;
use serde_json::{json, Value};

use crate::lake::delta::retention::Removed;
use crate::lake::delta::snapshot::read_snapshot;
pub use crate::lake::delta::snapshot::LogSnapshot;
use crate::lake::layout;
use crate::lake::manifest::FileEntry;
use crate::lake::storage::{Created, Lake, StorageError};
use crate::plan::window::Window;
use crate::table::schema::{ColumnType, Schema};
use crate::units::time::format_rfc3339_millis;

/// Commits between checkpoints: a reader replays at most this many JSON commits on top of the
/// last checkpoint. A year of hourly runs is about 9,000 commits per subdomain.
pub const CHECKPOINT_INTERVAL: u64 = 100;

/// How long the log keeps a commit (or checkpoint) that a later checkpoint has made unnecessary:
/// Delta's own default `delta.logRetentionDuration`. One checkpoint interval before the newest
/// checkpoint is always kept, for a reader that started on the one before.
pub const LOG_RETENTION: std::time::Duration = std::time::Duration::from_secs(30 * 86_400);

/// How many versions a lost race for a commit's version is retried at.
const MAX_VERSION_RACES: u32 = 64;

/// Why the log could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("the Delta log at {root}: {reason}")]
    Kernel { root: String, reason: String },
    #[error("the Delta log at {root}: {races} other writers committed first, one after another; try again")]
    Contended { root: String, races: u32 },
}

/// One change of the lake, as one commit.
#[derive(Debug, Default)]
pub struct Change {
    /// What the commit does (`commitInfo.operation`): `WRITE`, `OPTIMIZE`, `DELETE`, `CONVERT`.
    pub operation: &'static str,
    /// The window it concerns, and why (for `commitInfo`).
    pub window: Option<String>,
    pub reason: Option<String>,
    pub adds: Vec<FileEntry>,
    pub removes: Vec<FileEntry>,
    /// The same records in other files (a compaction): `dataChange` is false, so streaming
    /// readers do not read them again.
    pub rearranged: bool,
}

/// The Delta log of one lake's table root, as one subdomain's run writes it.
pub struct DeltaLog {
    lake: Lake,
    subdomain: String,
    run_id: String,
    engine: Arc<DefaultEngine<TokioMultiThreadExecutor>>,
    /// The table root as the kernel names it.
    url: String,
    /// The next version to try, and the last `txn` version of this subdomain's app id.
    state: Mutex<Option<(u64, i64)>>,
    /// The subdomain's files in the log (path relative to the lake, bytes), read once by
    /// [`DeltaLog::converge`] and kept by every commit since: only this run (it holds the lease)
    /// changes them.
    files: Mutex<BTreeMap<String, u64>>,
    /// The rows of those files, where the log's statistics (or this run's commits) give them.
    rows: Mutex<BTreeMap<String, u64>>,
    /// The subdomain's files the log removed within the table's retention (read by
    /// [`DeltaLog::load`], kept by every commit since): what older versions still read.
    removed: Mutex<Removed>,
    /// One commit at a time: the run's workers commit windows concurrently, and each commit
    /// takes the next version and the next `txn` version.
    committing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for DeltaLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeltaLog")
            .field("lake", &self.lake.display())
            .field("subdomain", &self.subdomain)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl DeltaLog {
    /// The log of `lake`'s table root, for `subdomain`'s run `run_id`.
    pub fn new(lake: &Lake, subdomain: &str, run_id: &str) -> DeltaLog {
        let (store, url) = kernel_view(lake);
        let engine = DefaultEngine::builder(store)
            .with_task_executor(kernel_executor())
            .build();
        DeltaLog {
            lake: lake.clone(),
            subdomain: subdomain.to_string(),
            run_id: run_id.to_string(),
            engine: Arc::new(engine),
            url,
            state: Mutex::new(None),
            files: Mutex::new(BTreeMap::new()),
            rows: Mutex::new(BTreeMap::new()),
            removed: Mutex::new(Removed::default()),
            committing: tokio::sync::Mutex::new(()),
        }
    }

    /// The app id of this subdomain's commits (`txn.appId`).
    pub fn app_id(subdomain: &str) -> String {
        format!("auditlake-{subdomain}")
    }

    /// Whether the table root has a log (any file under `_delta_log/`: the log's retention
    /// removes its first commits once checkpoints stand for them).
    pub async fn exists(lake: &Lake) -> Result<bool, StorageError> {
        lake.any_under(&layout::delta_log()).await
    }

    /// The latest version the log's listing shows (`None`: no commit).
    async fn latest_listed(&self) -> Result<Option<u64>, StorageError> {
        DeltaLog::latest_version(&self.lake).await
    }

    /// The latest version of `lake`'s table that its log's listing shows (`None`: no log).
    pub async fn latest_version(lake: &Lake) -> Result<Option<u64>, StorageError> {
        Ok(lake
            .list(&layout::delta_log())
            .await?
            .iter()
            .filter_map(|p| p.filename()?.strip_suffix(".json")?.parse::<u64>().ok())
            .max())
    }

    /// Creates the table (commit 0: protocol, schema, partition columns) unless it exists.
    pub async fn create_table(&self) -> Result<(), DeltaError> {
        if DeltaLog::exists(&self.lake).await? {
            return Ok(());
        }
        let now = now_ms();
        let commit = [
            json!({"commitInfo": {
                "timestamp": now,
                "operation": "CREATE TABLE",
                "operationParameters": {"partitionBy": "[\"subdomain\",\"created_date\"]"},
                "engineInfo": engine_info(),
                "isBlindAppend": true,
            }}),
            json!({"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}}),
            json!({"metaData": {
                "id": table_id(),
                "name": "zendesk_audit_logs",
                "format": {"provider": "parquet", "options": {}},
                "schemaString": schema_string(),
                "partitionColumns": ["subdomain", "created_date"],
                "configuration": {},
                "createdTime": now,
            }}),
        ];
        // Another subdomain's run may create it first: theirs is the same table.
        self.lake
            .create(&layout::delta_commit(0), lines(&commit))
            .await?;
        Ok(())
    }

    /// Commits `change` as the log's next version; returns that version, or `None` for a change
    /// that changes nothing.
    pub async fn commit(&self, change: Change) -> Result<Option<u64>, DeltaError> {
        if change.adds.is_empty() && change.removes.is_empty() {
            return Ok(None);
        }
        let _one_at_a_time = self.committing.lock().await;
        let result = self.commit_locked(&change).await;
        if result.is_err() {
            // Whether the last create applied is unknown: the next commit reads the log again.
            *self.state.lock().expect("not poisoned") = None;
        }
        result.map(Some)
    }

    /// [`DeltaLog::commit`], one at a time.
    async fn commit_locked(&self, change: &Change) -> Result<u64, DeltaError> {
        let (mut version, txn) = self.position().await?;
        let txn = txn + 1;
        let now = now_ms();
        let body = self.commit_body(change, txn, now);
        for _ in 0..MAX_VERSION_RACES {
            let path = layout::delta_commit(version);
            match self.lake.create(&path, body.clone()).await? {
                Created::Created => {}
                Created::AlreadyExisted if self.is_own(version, &body).await? => {}
                Created::AlreadyExisted => {
                    // Another subdomain's run took it: go past everything the log now holds.
                    let latest = self.latest_listed().await?.unwrap_or(version);
                    version = latest.max(version) + 1;
                    continue;
                }
            }
            *self.state.lock().expect("not poisoned") = Some((version + 1, txn));
            {
                let mut files = self.files.lock().expect("not poisoned");
                let mut rows = self.rows.lock().expect("not poisoned");
                for file in &change.removes {
                    files.remove(&file.path);
                    rows.remove(&file.path);
                }
                for file in &change.adds {
                    files.insert(file.path.clone(), file.bytes);
                    rows.insert(file.path.clone(), file.rows);
                }
            }
            self.removed.lock().expect("not poisoned").committed(
                &change.removes,
                &change.adds,
                now,
            );
            tracing::debug!(version, operation = change.operation, "Delta commit");
            if version % CHECKPOINT_INTERVAL == 0 {
                self.checkpoint(version).await;
            }
            return Ok(version);
        }
        Err(DeltaError::Contended {
            root: self.lake.display().to_string(),
            races: MAX_VERSION_RACES,
        })
    }

    /// The commit of `change` as this subdomain's `txn` version `txn`.
    fn commit_body(&self, change: &Change, txn: i64, now: i64) -> Bytes {
        let mut actions = vec![
            json!({"commitInfo": {
                "timestamp": now,
                "operation": change.operation,
                "operationParameters": operation_parameters(change),
                "engineInfo": engine_info(),
                "isBlindAppend": change.removes.is_empty(),
                "auditlake": {
                    "subdomain": self.subdomain,
                    "run_id": self.run_id,
                    "window": change.window,
                    "reason": change.reason,
                },
            }}),
            json!({"txn": {
                "appId": DeltaLog::app_id(&self.subdomain),
                "version": txn,
                "lastUpdated": now,
            }}),
        ];
        for file in &change.removes {
            actions.push(json!({"remove": {
                "path": relative(&file.path),
                "deletionTimestamp": now,
                "dataChange": !change.rearranged,
                "partitionValues": partition_values(&file.path),
                "size": file.bytes,
            }}));
        }
        for file in &change.adds {
            actions.push(json!({"add": {
                "path": relative(&file.path),
                "partitionValues": partition_values(&file.path),
                "size": file.bytes,
                "modificationTime": now,
                "dataChange": !change.rearranged,
                "stats": stats(file),
                "tags": tags(file),
            }}));
        }
        lines(&actions)
    }

    /// Whether commit `version` is `body`, this very commit: a create that applied but whose
    /// answer was lost, then retried (the body carries this run's id, its `txn` version and its
    /// time, so no other commit has the same bytes).
    async fn is_own(&self, version: u64, body: &Bytes) -> Result<bool, DeltaError> {
        let path = layout::delta_commit(version);
        Ok(self.lake.read(&path).await?.is_some_and(|b| b == *body))
    }

    /// The next version to write and this subdomain's last `txn` version: from the run's own
    /// commits, or read once from the log.
    async fn position(&self) -> Result<(u64, i64), DeltaError> {
        if let Some(position) = *self.state.lock().expect("not poisoned") {
            return Ok(position);
        }
        let snapshot = self.snapshot().await?;
        let position = (snapshot.version + 1, snapshot.txn);
        *self.state.lock().expect("not poisoned") = Some(position);
        Ok(position)
    }

    /// The latest snapshot: its version, this subdomain's `txn` version (0 before its first
    /// commit) and the files it holds for the subdomain (path relative to the lake, bytes).
    pub async fn snapshot(&self) -> Result<LogSnapshot, DeltaError> {
        let engine = self.engine.clone();
        let app = DeltaLog::app_id(&self.subdomain);
        let subdomain = self.subdomain.clone();
        let url = self.url.clone();
        let root = self.lake.display().to_string();
        tokio::task::spawn_blocking(move || read_snapshot(engine.as_ref(), &url, &app, &subdomain))
            .await
            .expect("the snapshot reader does not panic")
            .map_err(|reason| DeltaError::Kernel { root, reason })
    }

    /// Reads the log's latest snapshot for this run: where the next commit goes, and the
    /// subdomain's files (kept in memory by every commit since).
    pub async fn load(&self) -> Result<LogSnapshot, DeltaError> {
        let snapshot = self.snapshot().await?;
        *self.state.lock().expect("not poisoned") = Some((snapshot.version + 1, snapshot.txn));
        *self.files.lock().expect("not poisoned") = snapshot.files.clone();
        *self.rows.lock().expect("not poisoned") = snapshot.records.clone();
        *self.removed.lock().expect("not poisoned") = snapshot.removed.clone();
        Ok(snapshot)
    }

    /// Converges the log (as [`DeltaLog::load`] read it) to the markers: `wanted` is every file
    /// the subdomain's markers and open window name; what the log holds beyond them is removed,
    /// what it lacks is added, in one commit. Returns the version written, if any.
    pub async fn converge(
        &self,
        wanted: &[FileEntry],
        operation: &'static str,
        reason: &str,
    ) -> Result<Option<u64>, DeltaError> {
        let (adds, removes) = self.difference(wanted, |_| true);
        if !adds.is_empty() || !removes.is_empty() {
            tracing::warn!(
                added = adds.len(),
                removed = removes.len(),
                operation,
                "{reason}"
            );
        }
        self.commit(Change {
            operation,
            reason: Some(reason.to_string()),
            adds,
            removes,
            ..Change::default()
        })
        .await
    }

    /// What to commit for the log to hold `wanted` among the files `concerned` picks: the files
    /// of `wanted` it lacks (adds), and those it holds that `concerned` picks and `wanted` does
    /// not name (removes).
    fn difference(
        &self,
        wanted: &[FileEntry],
        concerned: impl Fn(&str) -> bool,
    ) -> (Vec<FileEntry>, Vec<FileEntry>) {
        let logged = self.files.lock().expect("not poisoned");
        let keep: BTreeSet<&str> = wanted.iter().map(|f| f.path.as_str()).collect();
        // A file the log holds with another size was rewritten under its name: a later add of the
        // same path replaces what the log says of it.
        let adds = wanted
            .iter()
            .filter(|f| logged.get(&f.path) != Some(&f.bytes))
            .cloned()
            .collect();
        let removes = logged
            .iter()
            .filter(|(path, _)| !keep.contains(path.as_str()) && concerned(path))
            .map(|(path, bytes)| entry(path, *bytes))
            .collect();
        (adds, removes)
    }

    /// The subdomain whose files this log's commits change.
    pub fn subdomain(&self) -> &str {
        &self.subdomain
    }

    /// The subdomain's files the log holds now (paths relative to the lake).
    pub fn held(&self) -> BTreeSet<String> {
        self.files
            .lock()
            .expect("not poisoned")
            .keys()
            .cloned()
            .collect()
    }

    /// Whether the log holds `path` now (relative to the lake).
    pub fn holds(&self, path: &str) -> bool {
        self.files.lock().expect("not poisoned").contains_key(path)
    }

    /// The subdomain's files the log removed within the table's retention, as of now.
    pub fn removed(&self) -> Removed {
        self.removed.lock().expect("not poisoned").clone()
    }

    /// Whether `path` is a file the log removed within the table's retention.
    pub fn keeps_removed(&self, path: &str) -> bool {
        let now = chrono::Utc::now().timestamp_millis();
        self.removed.lock().expect("not poisoned").keeps(path, now)
    }

    /// The files of `window` the log holds now.
    pub fn logged(&self, window: &Window) -> Vec<FileEntry> {
        self.files
            .lock()
            .expect("not poisoned")
            .iter()
            .filter(|(path, _)| layout::is_part_of(&Path::from(path.as_str()), window))
            .map(|(path, bytes)| entry(path, *bytes))
            .collect()
    }

    /// Commits a window's files as they now are (`files`, the marker's or the open window's
    /// record): adds what the log lacks, removes the window's other files the log holds (the
    /// open window's parts after a close, the old generation after a repair, a day's windows'
    /// files after its compaction). `rearranged` says the change only moves records into other
    /// files (a close that compacts, a compaction): `dataChange` is then false, so that change
    /// feeds do not read them again; but only where the files the commit removes hold as many
    /// rows as those it adds, as far as the log knows, for a change feed must count every record
    /// once: otherwise the commit says `dataChange` true on both sides.
    pub async fn commit_window(
        &self,
        window: &Window,
        files: &[FileEntry],
        operation: &'static str,
        reason: Option<&str>,
        rearranged: bool,
    ) -> Result<Option<u64>, DeltaError> {
        let (adds, removes) =
            self.difference(files, |path| layout::is_part_of(&Path::from(path), window));
        let rearranged = rearranged
            && {
                let rows = self.rows.lock().expect("not poisoned");
                let removed: Option<u64> = removes.iter().map(|f| rows.get(&f.path).copied()).sum();
                let added: u64 = adds.iter().map(|f| f.rows).sum();
                let same = removed == Some(added);
                if !same {
                    tracing::warn!(window = %window.id(), ?removed, added, operation, "a rearrangement whose files hold other rows than those it replaces, as the log knows them: committed as a change of data");
                }
                same
            };
        self.commit(Change {
            operation,
            window: Some(window.id()),
            reason: reason.map(str::to_string),
            adds,
            removes,
            rearranged,
        })
        .await
    }

    /// Writes a checkpoint of `version` (failures are logged: a checkpoint only saves readers
    /// a replay).
    async fn checkpoint(&self, version: u64) {
        let engine = self.engine.clone();
        let url = self.url.clone();
        let written = tokio::task::spawn_blocking(move || -> Result<(), String> {
            let snapshot = Snapshot::builder_for(url)
                .at_version(version)
                .build(engine.as_ref())
                .map_err(|e| e.to_string())?;
            snapshot
                .checkpoint(engine.as_ref(), None)
                .map_err(|e| e.to_string())?;
            Ok(())
        })
        .await
        .expect("the checkpoint writer does not panic");
        match written {
            Ok(()) => {
                tracing::info!(version, "Delta checkpoint written");
                if let Err(error) = self.expire(version).await {
                    tracing::warn!(%error, "could not remove expired Delta log files");
                }
            }
            Err(error) => tracing::warn!(version, %error, "could not write a Delta checkpoint"),
        }
    }

    /// The log's retention, after the checkpoint of `version`: removes the commits and
    /// checkpoints older than [`LOG_RETENTION`] (or the table's retention of removed files, if
    /// longer: a version whose files are kept keeps its commit) from before the checkpoint one interval back
    /// (readers start at the newest checkpoint; the one before serves a reader mid-read).
    /// Returns how many files were removed.
    pub async fn expire(&self, version: u64) -> Result<u64, StorageError> {
        let keep_from = version.saturating_sub(CHECKPOINT_INTERVAL);
        let retention = LOG_RETENTION.max(self.removed.lock().expect("not poisoned").period);
        let cutoff = chrono::Duration::from_std(retention)
            .ok()
            .and_then(|r| chrono::Utc::now().checked_sub_signed(r))
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
        let mut removed = 0;
        for (path, modified) in self.lake.list_modified(&layout::delta_log()).await? {
            let Some(name) = path.filename() else {
                continue;
            };
            let of = name
                .split('.')
                .next()
                .and_then(|v| (v.len() == 20).then(|| v.parse::<u64>().ok()).flatten());
            if of.is_some_and(|v| v < keep_from) && modified < cutoff {
                self.lake.delete(&path).await?;
                removed += 1;
            }
        }
        if removed > 0 {
            tracing::info!(
                removed,
                before = keep_from,
                "expired Delta log files removed"
            );
        }
        Ok(removed)
    }
}

/// The kernel's executor: a runtime of its own (one worker thread), made once and kept for the
/// process's life. The kernel's API is blocking (called here from blocking threads), and its
/// checkpoint writer needs a multi-threaded runtime; an export runs on a single-threaded one.
fn kernel_executor() -> Arc<TokioMultiThreadExecutor> {
    static EXECUTOR: std::sync::OnceLock<Arc<TokioMultiThreadExecutor>> =
        std::sync::OnceLock::new();
    EXECUTOR
        .get_or_init(|| {
            Arc::new(
                TokioMultiThreadExecutor::new_owned_runtime(Some(1), None)
                    .expect("the Delta kernel's runtime starts"),
            )
        })
        .clone()
}

/// The store and table-root URL the kernel reads the log through. A local lake is read as
/// `file://` paths through a store at `/` (the kernel turns file URLs into absolute paths, and
/// sorts the listings of a file system, which come unordered); an object store through the
/// lake's own store, rooted at the destination, under an `s3://` name whose bucket the store
/// already holds (the kernel reads only the URL's path, and relies on the ordered listings that
/// S3, GCS and Azure give).
fn kernel_view(lake: &Lake) -> (Arc<dyn object_store::ObjectStore>, String) {
    match lake.local_root() {
        Some(root) => {
            let url = url::Url::from_directory_path(root.join(layout::table().as_ref()))
                .map(|u| u.to_string())
                .unwrap_or_default();
            (Arc::new(object_store::local::LocalFileSystem::new()), url)
        }
        None => (
            lake.object_store(),
            format!("s3://auditlake/{}/", layout::table()),
        ),
    }
}

/// `commitInfo.operationParameters`: what Delta's own writers put there for the operation.
fn operation_parameters(change: &Change) -> Value {
    match change.operation {
        "WRITE" | "STREAMING UPDATE" => json!({"mode": "Append"}),
        _ => json!({"window": change.window, "reason": change.reason}),
    }
}

/// A file the log holds, as a remove action names it.
fn entry(path: &str, bytes: u64) -> FileEntry {
    FileEntry {
        path: path.to_string(),
        rows: 0,
        bytes,
        stats: None,
        sha256: None,
    }
}

/// A path relative to the lake's root as the table names it (relative to the table root).
fn relative(path: &str) -> String {
    let table = layout::table();
    path.strip_prefix(table.as_ref())
        .map(|p| p.trim_start_matches('/'))
        .unwrap_or(path)
        .to_string()
}

/// The partition values of a file, from its Hive folders (`subdomain=…/created_date=…/`).
fn partition_values(path: &str) -> HashMap<String, String> {
    path.split('/')
        .filter_map(|segment| segment.split_once('='))
        .filter(|(key, _)| matches!(*key, "subdomain" | "created_date"))
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

/// A file's statistics as Delta's `stats` JSON string: rows, and the bounds of `id` and
/// `created_at` where the marker recorded them.
fn stats(file: &FileEntry) -> String {
    let mut stats = json!({"numRecords": file.rows});
    if let Some(s) = &file.stats {
        stats["minValues"] =
            json!({"id": s.min_id, "created_at": format_rfc3339_millis(s.min_created_at)});
        stats["maxValues"] =
            json!({"id": s.max_id, "created_at": format_rfc3339_millis(s.max_created_at)});
        stats["nullCount"] = json!({"id": 0, "created_at": 0});
    }
    stats.to_string()
}

/// An add action's `tags`: the file's SHA-256, where the marker recorded it (an auditor checks a
/// file the log names against it with `sha256sum`).
fn tags(file: &FileEntry) -> Value {
    match &file.sha256 {
        Some(sha256) => json!({"sha256": sha256}),
        None => json!({}),
    }
}

/// The table's schema as Delta's `schemaString`: the declared columns, then the partition
/// columns.
fn schema_string() -> String {
    let schema = Schema::get();
    let mut fields: Vec<Value> = schema
        .columns()
        .map(|(name, column, nullable)| {
            let kind = match column {
                ColumnType::Int64 => "long",
                ColumnType::Utf8 => "string",
                ColumnType::TimestampMsUtc => "timestamp",
            };
            json!({"name": name, "type": kind, "nullable": nullable, "metadata": {}})
        })
        .collect();
    fields.push(json!({"name": "subdomain", "type": "string", "nullable": true, "metadata": {}}));
    fields.push(json!({"name": "created_date", "type": "date", "nullable": true, "metadata": {}}));
    json!({"type": "struct", "fields": fields}).to_string()
}

/// A table id: random, as Delta's are (a UUID's form).
fn table_id() -> String {
    let (a, b) = (fastrand::u64(..), fastrand::u64(..));
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

fn engine_info() -> &'static str {
    concat!("auditlake ", env!("CARGO_PKG_VERSION"))
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Actions as a commit file: one JSON object a line.
fn lines(actions: &[Value]) -> Bytes {
    let mut body = String::new();
    for action in actions {
        body.push_str(&action.to_string());
        body.push('\n');
    }
    Bytes::from(body)
}

/// The commit file of `version`, for tests and verify.
pub fn commit_path(version: u64) -> Path {
    layout::delta_commit(version)
}
