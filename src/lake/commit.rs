//! The committer: the one writer of a run's lake, fenced by the run's lease. It holds what every
//! change needs (the lake, the manifest, the lease's fence, the Delta log, the digest chain and
//! its key, the open windows' records); the changes themselves go one way, through
//! [`Committer::commit`] (`lake/change/`). Here too: what the open window's close reads of the
//! lake, the removal of strays, and the ids a repair compares.
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
use std::sync::Arc;

use crate::lake::chain::Head;
use crate::lake::delta::{DeltaError, DeltaLog};
use crate::lake::layout;
use crate::lake::lease::{Fence, LeaseError};
use crate::lake::manifest::{
    ApiFacts, Confirmed, Dataset, FileEntry, LastRun, Manifest, ManifestError, WindowRecord,
};
use crate::lake::signing::Signer;
use crate::lake::storage::{Lake, StorageError};
use crate::plan::window::Window;
use crate::table::encode::PartError;
use crate::table::erase::Erasure;
use crate::table::route::RoutedPart;
use crate::table::schema::Schema;
use crate::units::time::Timestamp;

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
    /// The change would remove files holding records its own files do not hold (and no other
    /// file of the table does): it is not made.
    #[error("window {window}: Zendesk no longer returns {dropped} records the lake holds; the window is left as it is rather than lose them (a later run or `auditlake repair` retries it; `auditlake verify --against-api` compares the counts)")]
    WouldDrop { window: String, dropped: u64 },
    /// The lake is not in a state an erasure or an expiry can change safely.
    #[error("{what}: run `auditlake repair` first, then this command again")]
    Unsettled { what: String },
    #[error(transparent)]
    Ledger(#[from] crate::lake::ledger::LedgerError),
    /// A pending ledger entry in a signed lake that the lake's key did not sign.
    #[error("{entry} is not signed by the lake's key: `auditlake erase` and `expire` sign what they decide in a signed lake, so it was written by other means, and nothing is done while it is there; `auditlake verify --public-key` names it, and removing it lets runs go on")]
    Unauthorised { entry: String },
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
                | CommitError::Ledger(crate::lake::ledger::LedgerError::Storage(_))
        )
    }
}

/// How a compaction's marker gives its reason (see `run/compact.rs`).
pub const COMPACTION_REASON: &str = "compaction:";

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
    /// The Delta log every change is also committed to, where the table is a Delta table.
    delta: Option<Arc<DeltaLog>>,
    /// The dataset as pinned, while its conversion to a Delta table is pending.
    pub(crate) converting: Arc<std::sync::Mutex<Option<Dataset>>>,
    /// The subdomain's digest chain (read by [`Committer::begin`]); appends one at a time.
    pub(crate) chain: Arc<tokio::sync::Mutex<Option<Head>>>,
    /// The key that signs the chain's links, if the run has one.
    pub(crate) signer: Option<Arc<Signer>>,
    /// The records of the open windows without a marker, as `open.json` holds them: an increment
    /// of one keeps the others' (one whose close failed keeps its parts), and a window's marker
    /// takes it out. One write of `open.json` at a time.
    pub(crate) open: Arc<tokio::sync::Mutex<Vec<WindowRecord>>>,
    /// The users the erasure ledger erases: every change's files are written without their
    /// data (read by [`Committer::begin`], grown by an erasure).
    erasure: Arc<std::sync::RwLock<Arc<Erasure>>>,
    /// Where files rewritten before their upload are made.
    pub(crate) tmp_dir: std::path::PathBuf,
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
            delta: None,
            converting: Arc::new(std::sync::Mutex::new(None)),
            chain: Arc::new(tokio::sync::Mutex::new(None)),
            signer: None,
            open: Arc::new(tokio::sync::Mutex::new(Vec::new())),
            erasure: Arc::default(),
            tmp_dir: std::env::temp_dir(),
        }
    }

    /// The committer, making rewritten files under `dir`.
    pub fn with_tmp_dir(mut self, dir: &std::path::Path) -> Committer {
        self.tmp_dir = dir.to_path_buf();
        self
    }

    /// The users the erasure ledger erases, as this run knows them.
    pub fn erasure(&self) -> Arc<Erasure> {
        self.erasure.read().expect("not poisoned").clone()
    }

    /// Every later change applies `erasure` too.
    pub(crate) fn hold_erasure(&self, erasure: &Erasure) {
        let mut held = self.erasure.write().expect("not poisoned");
        let mut grown = (**held).clone();
        grown.extend(erasure);
        *held = Arc::new(grown);
    }

    /// A committer that only reads (`erase --dry-run`, the checks before a lease): its fence is
    /// closed, so every write fails before it is made.
    pub fn reading(lake: Lake, subdomain: &str) -> Committer {
        let manifest = Manifest::new(lake.clone(), subdomain);
        let fence = Fence::closed(subdomain);
        Committer::new(lake, manifest, subdomain, fence, "reading")
    }

    /// The subdomain this committer writes.
    pub fn subdomain(&self) -> &str {
        &self.subdomain
    }

    /// Holds `open`, the records of the open windows without a marker (read by
    /// [`Committer::begin`]), for this run's deltas.
    pub(crate) async fn hold_open(&self, open: Vec<WindowRecord>) {
        *self.open.lock().await = open;
    }

    /// The records of the open windows without a marker, as this run knows them.
    pub(crate) async fn open_records(&self) -> Vec<WindowRecord> {
        self.open.lock().await.clone()
    }

    /// A window's marker now stands: it is no longer open.
    pub(crate) async fn closed(&self, window: &Window) {
        self.open.lock().await.retain(|o| o.window != window.id());
    }

    /// The committer, signing every link it appends with `signer` (if any).
    pub fn with_signer(mut self, signer: Option<Arc<Signer>>) -> Committer {
        self.signer = signer;
        self
    }

    /// Reads the chain's head, for the appends of this run.
    pub(crate) async fn read_chain(&self) -> Result<(), CommitError> {
        let head = Head::read(&self.lake, &self.subdomain).await?;
        *self.chain.lock().await = Some(head);
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
        self.delta.as_ref()
    }

    /// The committer, committing every change to `log` too.
    pub(crate) fn with_log(mut self, log: DeltaLog) -> Committer {
        self.delta = Some(Arc::new(log));
        self
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
            confirmed_to: Timestamp::from_seconds(confirmed_to),
            recheck_seconds,
            run_id: self.run_id.clone(),
        };
        Ok(self.manifest.record_confirmed(&confirmed).await?)
    }

    /// The manifest this committer writes.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The lake this committer writes.
    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    /// Brings the open window back to exactly the parts `record` names, when a run adds no delta:
    /// removes what an interrupted step left (a close's final files uploaded before a kill, the
    /// parts of an increment whose record was never written, the files of a window exported whole
    /// before increments), so that no completed run leaves a record visible twice.
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
}

/// The ids in a window's encoded parts (still temporary files), each file left rewound for its
/// upload.
pub fn ids_of_parts(parts: &mut [RoutedPart]) -> Result<HashSet<i64>, PartError> {
    let mut ids = HashSet::new();
    for part in parts {
        let file = &mut part.part.file;
        file.seek(SeekFrom::Start(0))?;
        collect_ids_within(file.try_clone()?, &mut ids, None)?;
        file.seek(SeekFrom::Start(0))?;
    }
    Ok(ids)
}

/// The ids in the files at `paths` (those still there; files that do not read as Parquet are
/// passed over, with a warning).
pub async fn ids_in_paths(lake: &Lake, paths: &[Path]) -> Result<HashSet<i64>, CommitError> {
    let mut ids = HashSet::new();
    for path in paths {
        let Some(bytes) = lake.read(path).await? else {
            continue;
        };
        if let Err(e) = collect_ids_within(bytes, &mut ids, None) {
            tracing::warn!(path = %path, error = %e, "a file does not read; its records cannot be counted");
        }
    }
    Ok(ids)
}

/// The ids in a committed window's files.
pub async fn ids_in_lake(lake: &Lake, record: &WindowRecord) -> Result<HashSet<i64>, CommitError> {
    ids_in_files(lake, &record.files, None).await
}

/// The ids in `files` (those still in the lake), of the rows created inside `window` if one is
/// given.
pub async fn ids_in_files(
    lake: &Lake,
    files: &[FileEntry],
    window: Option<&Window>,
) -> Result<HashSet<i64>, CommitError> {
    let mut ids = HashSet::new();
    for file in files {
        let path = Path::from(file.path.as_str());
        let Some(bytes) = lake.read(&path).await? else {
            continue;
        };
        collect_ids_within(bytes, &mut ids, window).map_err(|e| CommitError::Unreadable {
            path: file.path.clone(),
            reason: e.to_string(),
        })?;
    }
    Ok(ids)
}

/// The ids in `source`, of the rows created inside `window` if one is given.
fn collect_ids_within<R: parquet::file::reader::ChunkReader + 'static>(
    source: R,
    ids: &mut HashSet<i64>,
    window: Option<&Window>,
) -> Result<(), PartError> {
    let schema = Schema::get();
    let builder = ParquetRecordBatchReaderBuilder::try_new(source)?;
    let columns = [schema.id_index, schema.created_at_index];
    let mask = ProjectionMask::leaves(builder.parquet_schema(), columns);
    for batch in builder.with_projection(mask).build()? {
        let batch = batch?;
        // The projection keeps the file's column order: id comes before created_at.
        let id = batch.column(0).as_primitive::<Int64Type>();
        let at = batch
            .column(1)
            .as_primitive::<arrow::datatypes::TimestampMillisecondType>();
        for (id, at) in id.values().iter().zip(at.values()) {
            let second = at.div_euclid(1_000);
            if window.is_none_or(|w| w.start <= second && second < w.end) {
                ids.insert(*id);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::storage::Created;
    use crate::lake::Change;

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
        router.finish().unwrap().parts
    }

    async fn committer(lake: &Lake, ttl: Duration) -> (Lease, Committer) {
        let lease = Lease::acquire(lake, "acme", ttl, "test", &crate::units::new_run_id())
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
        let err = stale
            .commit(Change::append(DAY, parts(DAY)))
            .await
            .unwrap_err();
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
        let (record, created) = committer
            .commit(Change::append(DAY, parts(DAY)))
            .await
            .unwrap();
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
            .commit(Change::append(other_day, Vec::new()))
            .await
            .unwrap();
        assert_eq!(created, Created::AlreadyExisted);
    }

    #[tokio::test]
    async fn a_repair_writes_the_next_generation_and_removes_the_old_one() {
        let (_dir, lake) = temp_lake();
        let (_lease, committer) = committer(&lake, Duration::from_secs(60)).await;
        let (first, created) = committer
            .commit(Change::append(DAY, parts(DAY)))
            .await
            .unwrap();
        assert_eq!((first.generation, created), (1, Created::Created));
        let (second, _) = committer
            .commit(Change::repair(DAY, &first, parts(DAY), "test"))
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
        committer
            .commit(Change::append(DAY, parts(DAY)))
            .await
            .unwrap();
        assert!(!ours.exists(), "this window's leftover is removed");
        assert!(
            other.exists(),
            "another window's leftover is that window's to sweep"
        );
    }
}
