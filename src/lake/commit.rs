//! Committing a window: its files go up, what they replace goes away, and a marker makes them the
//! window's truth — one step, in that order (data first, commit last).
//!
//! The three ways a window's files change all live here:
//! - **first export** of a closed window: upload generation 1, remove stale parts of earlier
//!   attempts, create the marker (create-if-absent). Until the marker exists nothing counts.
//! - **open window**: each run uploads a delta (the records since the last one) as parts of
//!   their own, records `open.json`, then removes parts it does not name. Never a committed
//!   window: the run skips an open window that has a marker, because its files change only by
//!   repair. At its close, the parts are compacted into the window's files (first export).
//! - **repair**: journal the repair, upload generation N+1 under new names, create marker N+1,
//!   remove generation N, end the journal. At every moment the highest marker names a complete
//!   set of files; a crash leaves the journal, and [`Committer::converge`] (run by the next export
//!   or repair) removes whichever generation the highest marker does not name.
//!
//! Every step that writes or deletes first checks the run's lease [`Fence`], so a run that lost
//! its lease (paused past its expiry) stops before it can touch another run's work.

use std::collections::{BTreeSet, HashSet};
use std::io::{Seek, SeekFrom};

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;

use object_store::path::Path;
use std::sync::{Arc, OnceLock};

use crate::lake::chain::Head;
use crate::lake::delta::{DeltaError, DeltaLog};
use crate::lake::layout;
use crate::lake::lease::{Fence, LeaseError};
use crate::lake::manifest::{
    ApiFacts, Confirmed, Dataset, FileEntry, LastRun, Manifest, ManifestError, RepairJournal,
    WindowRecord,
};
use crate::lake::signing::Signer;
use crate::lake::storage::{Created, Lake, StorageError};
use crate::plan::window::{format_rfc3339, Window};
use crate::table::encode::{FileStats, PartError};
use crate::table::route::RoutedPart;
use crate::table::schema::Schema;

/// Why a commit step failed.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Lease(Box<LeaseError>),
    #[error("window {window}: marker generation {generation} already exists; another run repaired this window at the same time")]
    Conflict { window: String, generation: u32 },
    #[error("{path} does not read back as Parquet: {reason}")]
    Unreadable { path: String, reason: String },
    #[error(transparent)]
    Delta(#[from] DeltaError),
}

impl From<LeaseError> for CommitError {
    fn from(e: LeaseError) -> Self {
        CommitError::Lease(Box::new(e))
    }
}

impl CommitError {
    /// Whether the destination itself failed (as opposed to the lease or a conflict).
    pub fn is_storage(&self) -> bool {
        matches!(
            self,
            CommitError::Storage(_)
                | CommitError::Manifest(ManifestError::Storage(_))
                // The log is in the destination: the kernel's failures are the store's.
                | CommitError::Delta(_)
        )
    }
}

/// How a compaction's marker gives its reason (see `run/compact.rs`).
pub const COMPACTION_REASON: &str = "compaction:";

/// Whether a marker's reason says a compaction wrote it.
fn is_compaction(reason: &str) -> bool {
    reason.starts_with(COMPACTION_REASON)
}

/// What a new generation of a committed window is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rewrite {
    /// Records re-exported from Zendesk.
    Repair,
    /// The same records, rearranged into fewer files.
    Compaction,
}

/// Commits windows of one subdomain in one lake, fenced by the run's lease.
#[derive(Clone, Debug)]
pub struct Committer {
    lake: Lake,
    manifest: Manifest,
    subdomain: String,
    fence: Fence,
    /// The run that writes: recorded in each marker, so that a marker create whose answer was
    /// lost and which a retry then finds is recognised as this run's own.
    run_id: String,
    /// The Delta log every change is also committed to, once the dataset says so.
    delta: Arc<OnceLock<Arc<DeltaLog>>>,
    /// The dataset as pinned, while its conversion to a Delta table is pending.
    pub(crate) converting: Arc<std::sync::Mutex<Option<Dataset>>>,
    /// The subdomain's digest chain (read by [`Committer::begin`]); appends one at a time.
    chain: Arc<tokio::sync::Mutex<Option<Head>>>,
    /// The key that signs the chain's links, if the run has one.
    signer: Arc<OnceLock<Arc<Signer>>>,
}

impl Committer {
    pub fn new(
        lake: Lake,
        manifest: Manifest,
        subdomain: &str,
        fence: Fence,
        run_id: &str,
    ) -> Committer {
        Committer {
            lake,
            manifest,
            subdomain: subdomain.to_string(),
            fence,
            run_id: run_id.to_string(),
            delta: Arc::new(OnceLock::new()),
            converting: Arc::new(std::sync::Mutex::new(None)),
            chain: Arc::new(tokio::sync::Mutex::new(None)),
            signer: Arc::new(OnceLock::new()),
        }
    }

    /// Signs every link this committer appends with `signer`.
    pub fn sign_with(&self, signer: Arc<Signer>) {
        let _ = self.signer.set(signer);
    }

    /// Reads the chain's head, for the appends of this run.
    pub(crate) async fn read_chain(&self) -> Result<(), CommitError> {
        let head = Head::read(&self.lake, &self.subdomain).await?;
        *self.chain.lock().await = Some(head);
        Ok(())
    }

    /// Appends the digest of `record` (the marker about to be created) to the chain, before the
    /// marker: `replaces` the generation a repair replaces.
    async fn chain_link(
        &self,
        record: &WindowRecord,
        replaces: Option<u32>,
    ) -> Result<(), CommitError> {
        let mut chain = self.chain.lock().await;
        if chain.is_none() {
            *chain = Some(Head::read(&self.lake, &self.subdomain).await?);
        }
        self.fence.check()?;
        let head = chain.as_mut().expect("read above");
        let appended = head
            .append(
                &self.lake,
                &self.subdomain,
                record,
                replaces,
                self.signer.get().map(|s| s.as_ref()),
            )
            .await;
        if appended.is_err() {
            // Whether the link's create applied is unknown: the next append reads the head.
            *chain = None;
        }
        appended?;
        Ok(())
    }

    /// The run this committer writes for.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Fails once the lease is no longer held.
    pub(crate) fn fence_check(&self) -> Result<(), CommitError> {
        Ok(self.fence.check()?)
    }

    /// The Delta log, if the table has one.
    pub fn delta(&self) -> Option<&Arc<DeltaLog>> {
        self.delta.get()
    }

    /// From now on, commits every change to `log` too.
    pub(crate) fn log_to(&self, log: DeltaLog) {
        let _ = self.delta.set(Arc::new(log));
    }

    /// Commits a window's files as they now are to the Delta log, if there is one (after the
    /// marker or the open window's record: the log follows them, see [`crate::lake::delta`]).
    async fn log_window(
        &self,
        window: &Window,
        files: &[FileEntry],
        operation: &'static str,
        reason: Option<&str>,
    ) -> Result<(), CommitError> {
        if let Some(log) = self.delta.get() {
            self.fence.check()?;
            log.commit_window(window, files, operation, reason).await?;
        }
        Ok(())
    }

    /// Records the run that just finished (`last_run.json`, for `status`), under the lease.
    pub async fn record_run(&self, run: LastRun) -> Result<LastRun, CommitError> {
        self.fence.check()?;
        Ok(self.manifest.record_run(run).await?)
    }

    /// Records what the run learned of the API (`api.json`), under the lease.
    pub async fn record_api_facts(&self, facts: &ApiFacts) -> Result<(), CommitError> {
        self.fence.check()?;
        Ok(self.manifest.record_api_facts(facts).await?)
    }

    /// Records that the recheck has confirmed every committed window ending at or before
    /// `confirmed_to`, for a recheck span of `recheck_seconds` (`recheck.json`), under the lease.
    pub async fn record_confirmed(
        &self,
        confirmed_to: i64,
        recheck_seconds: u64,
    ) -> Result<(), CommitError> {
        self.fence.check()?;
        let confirmed = Confirmed {
            confirmed_to: format_rfc3339(confirmed_to),
            recheck_seconds,
            run_id: self.run_id.clone(),
        };
        Ok(self.manifest.record_confirmed(&confirmed).await?)
    }

    /// A marker of this run's for `window` naming `files`.
    fn marker(&self, window: &Window, files: Vec<FileEntry>) -> WindowRecord {
        let mut record = WindowRecord::new(window, files);
        record.run_id = self.run_id.clone();
        record
    }

    /// Whether the marker of `record`'s generation that the store already holds is this very
    /// record (a create that applied but whose answer was lost, then retried): same run, same
    /// files.
    async fn is_own_marker(
        &self,
        window: &Window,
        record: &WindowRecord,
    ) -> Result<bool, ManifestError> {
        let existing = self.manifest.marker(window, record.generation).await?;
        Ok(existing.is_some_and(|e| {
            !e.run_id.is_empty() && e.run_id == record.run_id && e.files == record.files
        }))
    }

    /// The manifest this committer writes.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The lake this committer writes.
    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    /// The first export of a closed window. `AlreadyExisted` means another run committed it
    /// first (its marker stands; this attempt's files had the same names and were replaced).
    ///
    /// With a Delta log that holds files of the window (the open window's parts, compacted at
    /// its close), those stay until the log's commit has removed them: the close is journaled
    /// like a repair, so that a crash after the marker is converged by the next run (log, then
    /// sweep) rather than leaving the parts beside the compacted files.
    pub async fn commit_closed(
        &self,
        window: &Window,
        parts: Vec<RoutedPart>,
    ) -> Result<(WindowRecord, Created), CommitError> {
        let files = self.upload(window, 1, parts).await?;
        let logged = self.delta().map_or_else(Vec::new, |log| log.logged(window));
        if !logged.is_empty() {
            self.journal(window, 0, 1, "the open window closed: its parts compacted")
                .await?;
        }
        let keep: Vec<FileEntry> = files.iter().chain(&logged).cloned().collect();
        self.sweep(window, &keep).await?;
        let record = self.marker(window, files);
        self.chain_link(&record, None).await?;
        self.fence.check()?;
        let mut created = self.manifest.commit(window, &record).await?;
        if created == Created::AlreadyExisted && self.is_own_marker(window, &record).await? {
            created = Created::Created;
        }
        if created == Created::Created {
            let operation = if logged.is_empty() {
                "WRITE"
            } else {
                "OPTIMIZE"
            };
            self.log_window(window, &record.files, operation, None)
                .await?;
        }
        // Another run's marker stands (its files, not these, may be what the log should hold):
        // the journal stays, and the next run converges the window to that marker.
        if !logged.is_empty() && created == Created::Created {
            self.sweep(window, &record.files).await?;
            self.fence.check()?;
            self.manifest.end_repair(window).await?;
        }
        Ok((record, created))
    }

    /// Journals a change of a committed window's files (a repair, a close that compacts), so
    /// that a run that finds the journal converges the window to its current marker.
    async fn journal(
        &self,
        window: &Window,
        from_generation: u32,
        to_generation: u32,
        reason: &str,
    ) -> Result<(), CommitError> {
        self.fence.check()?;
        self.manifest
            .begin_repair(
                window,
                &RepairJournal {
                    window: window.id(),
                    from_generation,
                    to_generation,
                    reason: reason.to_string(),
                    started_at: format_rfc3339(chrono::Utc::now().timestamp()),
                },
            )
            .await?;
        Ok(())
    }

    /// Adds a delta to the open window: uploads `parts` (its records of `[from, covered_to)`)
    /// under the names of a delta starting at `from`, records the open window as the parts of
    /// `previous` (its record so far, if it grows by deltas) plus these, complete up to
    /// `covered_to`, then removes every part of the window that record does not name (what a run
    /// killed before its record left, and the files of a window exported whole before deltas).
    /// The caller guarantees the window has no marker and that `from` is `previous`'s end.
    ///
    /// Parts the record names are never rewritten: a reader sees each record of the window in
    /// exactly one file, before, during and after a delta.
    pub async fn add_delta(
        &self,
        window: &Window,
        previous: Option<&WindowRecord>,
        from: i64,
        covered_to: i64,
        parts: Vec<RoutedPart>,
    ) -> Result<WindowRecord, CommitError> {
        let mut files = previous.map_or_else(Vec::new, |p| p.files.clone());
        for part in parts {
            let path = layout::delta_part_file(&self.subdomain, part.day, window, from, part.seq);
            files.push(self.upload_one(path, part).await?);
        }
        let mut record = self.marker(window, files);
        record.covered_to = Some(format_rfc3339(covered_to));
        self.fence.check()?;
        self.manifest.record_open(&record).await?;
        self.log_window(window, &record.files, "STREAMING UPDATE", None)
            .await?;
        self.sweep(window, &record.files).await?;
        Ok(record)
    }

    /// Takes the open window's parts out of the Delta log, if it holds any, before the window is
    /// exported again from its start (a part its record names is missing): the new parts take
    /// the first delta's names, and a logged file must never be rewritten under the log.
    pub async fn forget_open(&self, window: &Window) -> Result<(), CommitError> {
        self.log_window(
            window,
            &[],
            "DELETE",
            Some("a part of the open window is missing; it is exported again from its start"),
        )
        .await
    }

    /// Brings the open window back to exactly the parts `record` names, when a run adds no delta:
    /// removes what an interrupted step left (a close's final files uploaded before a kill, the
    /// parts of a delta whose record was never written, the files of a window exported whole
    /// before deltas), so that no completed run leaves a record visible twice.
    pub async fn settle_open(
        &self,
        window: &Window,
        record: &WindowRecord,
    ) -> Result<(), CommitError> {
        self.sweep(window, &record.files).await?;
        Ok(())
    }

    /// Whether every file `record` names is in the lake (one listing per day of the window).
    pub async fn holds_all(
        &self,
        window: &Window,
        record: &WindowRecord,
    ) -> Result<bool, CommitError> {
        let present = self.files_present(window).await?;
        Ok(record.files.iter().all(|f| present.contains(&f.path)))
    }

    /// The files in `window`'s day partitions (one listing per day), by path.
    pub(crate) async fn files_present(
        &self,
        window: &Window,
    ) -> Result<BTreeSet<String>, CommitError> {
        let mut present = BTreeSet::new();
        for day in window.days() {
            let partition = layout::partition(&self.subdomain, day);
            present.extend(
                self.lake
                    .list(&partition)
                    .await?
                    .into_iter()
                    .map(|p| p.to_string()),
            );
        }
        Ok(present)
    }

    /// Downloads the open window's parts that `record` names, in the order they were added, into
    /// temporary files (for the compaction at its close); `None` if one is missing.
    pub async fn download_parts(
        &self,
        record: &WindowRecord,
        dir: &std::path::Path,
    ) -> Result<Option<Vec<(FileEntry, std::fs::File)>>, CommitError> {
        let mut files = Vec::with_capacity(record.files.len());
        for entry in &record.files {
            match self
                .lake
                .download(&Path::from(entry.path.as_str()), dir)
                .await?
            {
                Some(file) => files.push((entry.clone(), file)),
                None => {
                    tracing::warn!(path = %entry.path, window = %record.window, "a file to join is missing");
                    return Ok(None);
                }
            }
        }
        Ok(Some(files))
    }

    /// Replaces a committed window's files atomically: journal, new generation's files, new
    /// marker, old files removed, journal ended.
    pub async fn replace(
        &self,
        window: &Window,
        current: &WindowRecord,
        parts: Vec<RoutedPart>,
        reason: &str,
    ) -> Result<WindowRecord, CommitError> {
        self.next_generation(window, current, parts, reason, Rewrite::Repair)
            .await
    }

    /// Compacts a closed day (see `run/compact.rs`): `parts`, the records of every window
    /// of `day` joined from their files, become the next generation of the day's first window
    /// (`first` is its current marker), under a marker that spans the whole day; the files of
    /// every window of the day go. The journal, order and convergence of a repair; in the Delta
    /// log, one commit that changes no data.
    pub async fn compact(
        &self,
        day: &Window,
        first: &WindowRecord,
        parts: Vec<RoutedPart>,
        reason: &str,
    ) -> Result<WindowRecord, CommitError> {
        self.next_generation(day, first, parts, reason, Rewrite::Compaction)
            .await
    }

    /// Writes generation `current.generation + 1` of `window` (a repair, or a compaction).
    async fn next_generation(
        &self,
        window: &Window,
        current: &WindowRecord,
        parts: Vec<RoutedPart>,
        reason: &str,
        rewrite: Rewrite,
    ) -> Result<WindowRecord, CommitError> {
        let generation = current.generation + 1;
        self.journal(window, current.generation, generation, reason)
            .await?;
        let files = self.upload(window, generation, parts).await?;
        let mut record = self.marker(window, files);
        record.generation = generation;
        record.reason = Some(reason.to_string());
        self.chain_link(&record, Some(current.generation)).await?;
        self.fence.check()?;
        if self.manifest.commit(window, &record).await? == Created::AlreadyExisted {
            // A create that the store applied but answered with an error is retried and then
            // finds itself: the same run and files mean it is this repair's own marker.
            if !self.is_own_marker(window, &record).await? {
                return Err(CommitError::Conflict {
                    window: window.id(),
                    generation,
                });
            }
        }
        match rewrite {
            Rewrite::Repair => {
                self.log_window(window, &record.files, "REPAIR", Some(reason))
                    .await?
            }
            Rewrite::Compaction => {
                if let Some(log) = self.delta.get() {
                    self.fence.check()?;
                    log.commit_rearranged(window, &record.files, reason).await?;
                }
            }
        }
        self.sweep(window, &record.files).await?;
        self.fence.check()?;
        self.manifest.end_repair(window).await?;
        Ok(record)
    }

    /// Finishes a repair that a crash interrupted: keeps exactly the files the window's current
    /// marker names (`current`, or none if the window has no marker) and ends the journal.
    pub async fn converge(
        &self,
        window: &Window,
        current: Option<&WindowRecord>,
    ) -> Result<u64, CommitError> {
        let keep = current.map_or(&[][..], |r| r.files.as_slice());
        let compacted = current.is_some_and(|c| c.reason.as_deref().is_some_and(is_compaction));
        match self.delta.get() {
            // The same records in fewer files: a streaming reader must not read the day again.
            Some(log) if compacted => {
                self.fence.check()?;
                let reason = "an interrupted compaction finished";
                log.commit_rearranged(window, keep, reason).await?;
            }
            _ => {
                let reason = Some("an interrupted change finished");
                self.log_window(window, keep, "REPAIR", reason).await?
            }
        }
        if let Some(current) = current {
            // The interrupted change may have chained its generation before it stopped: a link
            // says the current one stands, so the window's latest link is its marker's.
            let mut stands = current.clone();
            stands.reason =
                Some("an interrupted change was finished; this generation stands".into());
            // Not a replacement: the link restates the generation that stands.
            self.chain_link(&stands, None).await?;
        }
        let removed = self.sweep(window, keep).await?;
        self.fence.check()?;
        self.manifest.end_repair(window).await?;
        Ok(removed)
    }

    /// Removes a file that no marker names (found by verify), after checking the lease.
    pub async fn remove_stray(&self, path: &str) -> Result<(), CommitError> {
        self.fence.check()?;
        if layout::staging_target(path).is_some() && self.lake.is_local() {
            self.lake.remove_staging(path)?;
        } else {
            self.lake.delete(&Path::from(path)).await?;
        }
        Ok(())
    }

    /// Uploads a window's parts under the names of `generation`.
    async fn upload(
        &self,
        window: &Window,
        generation: u32,
        parts: Vec<RoutedPart>,
    ) -> Result<Vec<FileEntry>, CommitError> {
        let mut files = Vec::with_capacity(parts.len());
        for part in parts {
            let path = layout::part_file(&self.subdomain, part.day, window, generation, part.seq);
            files.push(self.upload_one(path, part).await?);
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }

    /// Uploads one part to `path`, fenced before and after.
    async fn upload_one(&self, path: Path, part: RoutedPart) -> Result<FileEntry, CommitError> {
        self.fence.check()?;
        let mut file = part.part.file;
        let sha256 = Some(part.part.sha256);
        let stats = FileStats::of(&file);
        // Reading the footer moved the file's offset (a clone of its handle shares it).
        file.seek(std::io::SeekFrom::Start(0))
            .map_err(|source| StorageError::Local {
                path: path.to_string(),
                source,
            })?;
        self.lake.upload_file(&path, file).await?;
        // An upload can outlast the fence's margin: stop before building on it.
        self.fence.check()?;
        Ok(FileEntry {
            path: path.to_string(),
            rows: part.part.rows,
            bytes: part.part.bytes,
            stats,
            sha256,
        })
    }

    /// Removes every part of `window` (of any generation, by any attempt) that `keep` does not
    /// name, and the staging leftovers of the window's writes; a Delta table's older versions
    /// keep the parts its log removed, for its retention (`retention.rs`). Returns how many were
    /// removed.
    async fn sweep(&self, window: &Window, keep: &[FileEntry]) -> Result<u64, CommitError> {
        let keep: BTreeSet<&str> = keep.iter().map(|f| f.path.as_str()).collect();
        let mut removed = 0;
        for day in window.days() {
            let partition = layout::partition(&self.subdomain, day);
            for path in self.lake.list(&partition).await? {
                if layout::is_part_of(&path, window) && !keep.contains(path.as_ref()) {
                    if self.retains(&path) {
                        tracing::debug!(path = %path, window = %window.id(), "keeping a part the Delta log removed, for its older versions");
                        continue;
                    }
                    self.fence.check()?;
                    tracing::info!(path = %path, window = %window.id(), "removing a part this window no longer names");
                    self.lake.delete(&path).await?;
                    removed += 1;
                }
            }
            for staged in self.lake.staging_leftovers(&partition)? {
                let name = staged.rsplit('/').next().unwrap_or(&staged);
                let of_window = layout::staging_target(name)
                    .is_some_and(|target| layout::is_part_of(&Path::from(target), window));
                if of_window {
                    self.fence.check()?;
                    tracing::info!(path = %staged, window = %window.id(), "removing the staging leftover of an interrupted write");
                    self.lake.remove_staging(&staged)?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

/// The ids in a window's encoded parts (still temporary files), each file left rewound for its
/// upload.
pub fn ids_of_parts(parts: &mut [RoutedPart]) -> Result<HashSet<i64>, PartError> {
    let mut ids = HashSet::new();
    for part in parts {
        let file = &mut part.part.file;
        file.seek(SeekFrom::Start(0))?;
        collect_ids(file.try_clone()?, &mut ids)?;
        file.seek(SeekFrom::Start(0))?;
    }
    Ok(ids)
}

/// The ids in a committed window's files.
pub async fn ids_in_lake(lake: &Lake, record: &WindowRecord) -> Result<HashSet<i64>, CommitError> {
    let mut ids = HashSet::new();
    for file in &record.files {
        let path = Path::from(file.path.as_str());
        let Some(bytes) = lake.read(&path).await? else {
            continue;
        };
        collect_ids(bytes, &mut ids).map_err(|e| CommitError::Unreadable {
            path: file.path.clone(),
            reason: e.to_string(),
        })?;
    }
    Ok(ids)
}

fn collect_ids<R: parquet::file::reader::ChunkReader + 'static>(
    source: R,
    ids: &mut HashSet<i64>,
) -> Result<(), PartError> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(source)?;
    let mask = ProjectionMask::leaves(builder.parquet_schema(), [Schema::get().id_index]);
    for batch in builder.with_projection(mask).build()? {
        let batch = batch?;
        ids.extend(
            batch
                .column(0)
                .as_primitive::<Int64Type>()
                .values()
                .iter()
                .copied(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::Duration;

    use crate::lake::faulty::{faulty_lake, inject, Fault};
    use crate::lake::lease::Lease;
    use crate::lake::storage::temp_lake;
    use crate::table::decode::decode_page;
    use crate::table::route::WindowRouter;
    use crate::table::schema::Schema;

    const DAY: Window = Window {
        start: 1_709_251_200, // 2024-03-01
        end: 1_709_337_600,
    };

    fn parts(window: Window) -> Vec<RoutedPart> {
        let body = br#"{"audit_logs":[{"id":1,"created_at":"2024-03-01T10:00:00Z","action":"login"},{"id":2,"created_at":"2024-03-01T11:00:00Z","action":"login"}]}"#;
        let mut router = WindowRouter::new(window, std::env::temp_dir());
        decode_page(body, Schema::get(), |row| router.push(&row).unwrap()).unwrap();
        router.finish().unwrap().0
    }

    async fn committer(lake: &Lake, ttl: Duration) -> (Lease, Committer) {
        let lease = Lease::acquire(lake, "acme", ttl, "test", &crate::config::new_run_id())
            .await
            .unwrap();
        let manifest = Manifest::new(lake.clone(), "acme");
        let committer = Committer::new(lake.clone(), manifest, "acme", lease.fence(), "run-1");
        (lease, committer)
    }

    /// Regression (issue 6, defect 2): only renewal checked the lease, so a run frozen past its
    /// lease could still upload, delete and commit over the work of the run that took over.
    #[tokio::test]
    async fn a_run_whose_lease_ran_out_writes_nothing() {
        let (_dir, lake) = temp_lake();
        let (_lease, stale) = committer(&lake, Duration::from_secs(3)).await;
        // Never renewed (as if the process had been paused): the fence closes before expiry.
        tokio::time::sleep(Duration::from_millis(2_100)).await;
        let err = stale.commit_closed(&DAY, parts(DAY)).await.unwrap_err();
        assert!(matches!(err, CommitError::Lease(_)), "{err}");
        assert!(err.to_string().contains("stopping before writing"), "{err}");
        let data = lake.list(&layout::data("acme")).await.unwrap();
        assert!(data.is_empty(), "nothing uploaded: {data:?}");
        assert!(Manifest::new(lake, "acme").done().await.unwrap().is_empty());
    }

    /// Regression (issue 17): a marker create that the store applied but whose answer was lost
    /// is retried by the store client, finds "its" marker, and was taken for another run's
    /// commit ("window was committed by another run first").
    #[tokio::test]
    async fn a_marker_whose_create_answer_was_lost_is_recognised_as_this_runs_own() {
        let (store, lake) = faulty_lake();
        let (_lease, committer) = committer(&lake, Duration::from_secs(60)).await;
        inject(&store, Fault::AppliedThenAlreadyExists);
        let (record, created) = committer.commit_closed(&DAY, parts(DAY)).await.unwrap();
        assert_eq!(created, Created::Created, "this run's own marker");
        assert_eq!(record.run_id, "run-1");

        // Another run's marker stands as the other run's.
        let other_day = Window {
            start: DAY.end,
            end: DAY.end + 86_400,
        };
        let manifest = Manifest::new(lake.clone(), "acme");
        let mut theirs = WindowRecord::new(&other_day, Vec::new());
        theirs.run_id = "another-run".into();
        manifest.commit(&other_day, &theirs).await.unwrap();
        let (_, created) = committer
            .commit_closed(&other_day, Vec::new())
            .await
            .unwrap();
        assert_eq!(created, Created::AlreadyExisted);
    }

    #[tokio::test]
    async fn a_repair_writes_the_next_generation_and_removes_the_old_one() {
        let (_dir, lake) = temp_lake();
        let (_lease, committer) = committer(&lake, Duration::from_secs(60)).await;
        let (first, created) = committer.commit_closed(&DAY, parts(DAY)).await.unwrap();
        assert_eq!((first.generation, created), (1, Created::Created));
        let second = committer
            .replace(&DAY, &first, parts(DAY), "test")
            .await
            .unwrap();
        assert_eq!(second.generation, 2);
        assert!(second.files[0].path.contains("-g2-"), "{:?}", second.files);
        let data = lake.list(&layout::data("acme")).await.unwrap();
        assert_eq!(
            data.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
            [second.files[0].path.clone()],
            "only the new generation is left"
        );
        let manifest = Manifest::new(lake.clone(), "acme");
        assert_eq!(manifest.generations().await.unwrap()[&DAY.start], 2);
        assert!(manifest.unfinished_repairs().await.unwrap().is_empty());
    }

    /// Regression (issue 6, defect 8): object_store hides local staging files (`name#N`) from
    /// listings, so a write killed mid-way left one behind for good; readers that scan the
    /// directory choke on it.
    #[tokio::test]
    async fn staging_leftovers_of_the_window_are_swept() {
        let (dir, lake) = temp_lake();
        let folder = dir
            .path()
            .join("audit_logs/subdomain=acme/created_date=2024-03-01");
        std::fs::create_dir_all(&folder).unwrap();
        let ours = folder.join("part-20240301T0000Z-0.parquet#1");
        let other = folder.join("part-20240302T0000Z-0.parquet#1");
        std::fs::write(&ours, b"half").unwrap();
        std::fs::write(&other, b"half").unwrap();
        let (_lease, committer) = committer(&lake, Duration::from_secs(60)).await;
        committer.commit_closed(&DAY, parts(DAY)).await.unwrap();
        assert!(!ours.exists(), "this window's leftover is removed");
        assert!(
            other.exists(),
            "another window's leftover is that window's to sweep"
        );
    }
}
