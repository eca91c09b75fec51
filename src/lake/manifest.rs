//! The manifest under `DEST/_auditlake/`: what the dataset is, and which windows are done.
//!
//! Data first, commit last: a closed window's marker is written with create-if-absent only after
//! every one of its files is in place, so a window is done exactly when its marker exists. A run
//! that finds a marker it was about to write (`AlreadyExists`) knows another run finished the
//! same window. A repair writes the next *generation* of a window's marker (see
//! `lake/layout.rs`); the highest generation is the window's truth.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::lake::layout;
use crate::lake::storage::{Created, Lake, StorageError};
use crate::plan::window::{Grid, Window};
use crate::table::encode::FileStats;
use crate::table::schema::SCHEMA_VERSION;
use crate::units::time::{parse_compact, Timestamp};
use crate::zendesk::Filters;
use crate::zendesk::KnownBounds;

/// Version of the manifest's own JSON layout.
const FORMAT: u32 = 1;

/// Markers read at once: a lake of years of hourly windows has tens of thousands, and each is a
/// small GET whose latency dominates.
const MARKER_READS: usize = 16;

/// Why the manifest could not be read or written, or does not match this run.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("{path} is not a valid auditlake manifest file: {reason}")]
    Corrupt { path: String, reason: String },
    #[error("the lake at {dest} was created for subdomain {subdomain:?} with other settings: {differences}. Run with the dataset's settings, or export into another --dest")]
    Mismatch {
        dest: String,
        subdomain: String,
        differences: String,
    },
    /// An auditlake 0.1 lake: refused, never mixed with this version's files.
    #[error("the lake at {dest} holds an auditlake 0.1 table for subdomain {subdomain:?} (schema version 1: the table at the lake's root, created_at in microseconds); this auditlake writes schema version {SCHEMA_VERSION}, a table root audit_logs/ beside _auditlake/. Export into a new destination (auditlake export --dest NEW --since <the old lake's first day> ...), check it with `auditlake verify --dest NEW`, point readers at NEW/audit_logs, then delete the old lake")]
    Legacy { dest: String, subdomain: String },
}

/// The table's format, pinned by the dataset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TableFormat {
    /// Hive-partitioned Parquet: every engine opens the table root with default options.
    #[default]
    Parquet,
    /// The same files, plus a Delta Lake transaction log at the table root.
    Delta,
}

impl std::fmt::Display for TableFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TableFormat::Parquet => "parquet",
            TableFormat::Delta => "delta",
        })
    }
}

/// What a dataset is, pinned by its first run: later runs with other settings are refused,
/// because their files would not be comparable (another grid would re-export every window under
/// other names; other filters would mix selections).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Dataset {
    pub format: u32,
    pub subdomain: String,
    pub schema_version: u32,
    /// The window grid, as `1h`…`12h`, `Nd`.
    pub window: String,
    #[serde(default)]
    pub filters: Filters,
    #[serde(default)]
    pub created_by: String,
    /// `parquet` (absent in lakes made before it was recorded) or `delta`: a Parquet lake turns
    /// into a Delta table when a run asks for it (see [`crate::lake::delta`]), never back.
    #[serde(default)]
    pub table_format: TableFormat,
    /// The fingerprint of the key that signs the digest chain, pinned by the first signed run:
    /// a run with another key, or none, is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<String>,
}

impl Dataset {
    /// The dataset this run would create.
    pub fn new(subdomain: &str, grid: Grid, filters: &Filters) -> Dataset {
        Dataset {
            format: FORMAT,
            subdomain: subdomain.to_string(),
            schema_version: SCHEMA_VERSION,
            window: grid.to_string(),
            filters: filters.clone(),
            created_by: concat!("auditlake ", env!("CARGO_PKG_VERSION")).to_string(),
            table_format: TableFormat::Parquet,
            signing_key: None,
        }
    }

    /// The dataset signed with the key of fingerprint `key` (or unsigned).
    pub fn with_signing_key(mut self, key: Option<String>) -> Dataset {
        self.signing_key = key;
        self
    }

    /// The dataset in table format `format`.
    pub fn with_format(mut self, format: TableFormat) -> Dataset {
        self.table_format = format;
        self
    }

    /// Human-readable differences that matter, empty when compatible.
    fn differences(&self, pinned: &Dataset) -> Vec<String> {
        let mut out = Vec::new();
        if pinned.window != self.window {
            out.push(format!(
                "--window is {} in the lake, {} in this run",
                pinned.window, self.window
            ));
        }
        if pinned.filters != self.filters {
            let show = |f: &Filters| serde_json::to_string(f).unwrap_or_default();
            out.push(format!(
                "filters are {} in the lake, {} in this run",
                show(&pinned.filters),
                show(&self.filters)
            ));
        }
        if pinned.schema_version != self.schema_version {
            out.push(format!(
                "schema version is {} in the lake, {} in this auditlake",
                pinned.schema_version, self.schema_version
            ));
        }
        out
    }
}

/// One file of a window.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileEntry {
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
    /// The file's id and time bounds (absent in markers written before they were recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<FileStats>,
    /// The file's SHA-256 (lowercase hex, as `sha256sum` prints it), computed while it was
    /// written (absent in markers written before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// A window's export: the marker of a closed window, or the record of the open window's latest run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct WindowRecord {
    pub window: String,
    /// 1 for the first export; each repair writes the next generation.
    #[serde(default = "first_generation")]
    pub generation: u32,
    /// Why this generation was written, for a repair (absent for a first export).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub start: Timestamp,
    pub end: Timestamp,
    pub rows: u64,
    pub bytes: u64,
    pub files: Vec<FileEntry>,
    pub completed_at: Timestamp,
    pub auditlake_version: String,
    /// The run that wrote it (absent from markers written before run ids were recorded).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub run_id: String,
    /// The open window's record only: the instant up to which its parts hold every record (the
    /// `until` of the run that wrote them). Absent from markers, and from the record of an open
    /// window exported whole (before the open window grew by increments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub covered_to: Option<Timestamp>,
    /// A tombstone: the window expired under the lake's retention (`auditlake expire`); it
    /// names no files, is never exported again, and is no gap.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub expired: bool,
}

impl WindowRecord {
    /// The window the record covers, as it records it: a grid window, or for a day whose
    /// windows were compacted (see `run/compact.rs`), the whole day. `None` when its
    /// bounds are not in order.
    pub fn span(&self) -> Option<Window> {
        let (start, end) = (self.start.seconds(), self.end.seconds());
        (start < end).then_some(Window { start, end })
    }

    /// The instant up to which the open window's parts are complete, if it grows by increments.
    pub fn covered_to(&self) -> Option<i64> {
        self.covered_to.map(Timestamp::seconds)
    }
}

fn first_generation() -> u32 {
    1
}

/// A change of a committed window's files in progress (a repair, a compaction, a close that
/// replaces the open window's parts), as journaled before its first file is written.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RepairJournal {
    pub window: String,
    pub from_generation: u32,
    pub to_generation: u32,
    pub reason: String,
    pub started_at: Timestamp,
    /// Whether the change adds or removes records (a repair) or only rearranges them (a close
    /// that compacts the open window's parts, a day's compaction): what the Delta log's commit
    /// that finishes it says as `dataChange`. Absent in journals written before it was
    /// recorded: told then by the marker's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_change: Option<bool>,
}

/// `open.json`: the open window's record (`latest`, the window the last increment grew) and the
/// records of earlier open windows whose close has not committed yet (a close that failed):
/// their parts stay the table's until their window's marker names its files, so no later
/// increment may drop them from the state.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct OpenState {
    #[serde(flatten)]
    pub latest: WindowRecord,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier: Vec<WindowRecord>,
}

impl OpenState {
    /// Every window's record, the latest first.
    pub fn windows(self) -> Vec<WindowRecord> {
        let mut all = vec![self.latest];
        all.extend(self.earlier);
        all
    }
}

impl WindowRecord {
    /// The record of `window`'s export (generation 1), completed now.
    pub fn new(window: &Window, files: Vec<FileEntry>) -> WindowRecord {
        WindowRecord {
            window: window.id(),
            generation: 1,
            reason: None,
            start: Timestamp::from_seconds(window.start),
            end: Timestamp::from_seconds(window.end),
            rows: files.iter().map(|f| f.rows).sum(),
            bytes: files.iter().map(|f| f.bytes).sum(),
            files,
            completed_at: Timestamp::now(),
            auditlake_version: env!("CARGO_PKG_VERSION").to_string(),
            run_id: String::new(),
            covered_to: None,
            expired: false,
        }
    }
}

/// One subdomain's manifest in one lake.
#[derive(Clone, Debug)]
pub struct Manifest {
    lake: Lake,
    subdomain: String,
}

impl Manifest {
    pub fn new(lake: Lake, subdomain: &str) -> Manifest {
        Manifest {
            lake,
            subdomain: subdomain.to_string(),
        }
    }

    /// Reads the dataset description, if the lake has one for this subdomain; an auditlake 0.1
    /// dataset is [`ManifestError::Legacy`].
    pub async fn dataset(&self) -> Result<Option<Dataset>, ManifestError> {
        let path = layout::dataset(&self.subdomain);
        let Some(bytes) = self.lake.read(&path).await? else {
            return Ok(None);
        };
        let dataset: Dataset = parse(&path, &bytes)?;
        if dataset.schema_version < SCHEMA_VERSION {
            return Err(self.legacy());
        }
        Ok(Some(dataset))
    }

    /// [`ManifestError::Legacy`] when the lake holds auditlake 0.1 data for the subdomain at the
    /// destination's root (one listing request), whether or not its state is still there.
    pub async fn refuse_legacy_data(&self) -> Result<(), ManifestError> {
        if self
            .lake
            .any_under(&layout::legacy_data(&self.subdomain))
            .await?
        {
            return Err(self.legacy());
        }
        Ok(())
    }

    fn legacy(&self) -> ManifestError {
        ManifestError::Legacy {
            dest: self.lake.display().to_string(),
            subdomain: self.subdomain.clone(),
        }
    }

    /// Pins `wanted` on first use, or checks it against what is pinned, and returns what is
    /// pinned. A lake that holds an auditlake 0.1 table for the subdomain (even without its
    /// state) is refused: one listing request per run, so that the two layouts never mix. The
    /// table format is the caller's to compare (a Parquet lake may become a Delta table).
    pub async fn pin(&self, wanted: &Dataset) -> Result<Dataset, ManifestError> {
        self.refuse_legacy_data().await?;
        let path = layout::dataset(&self.subdomain);
        let body = serde_json::to_vec_pretty(wanted).expect("plain data serializes");
        if self.lake.create(&path, Bytes::from(body)).await? == Created::Created {
            tracing::info!(path = %path, window = %wanted.window, format = %wanted.table_format, "dataset created");
            return Ok(wanted.clone());
        }
        let pinned = self
            .dataset()
            .await?
            .ok_or_else(|| ManifestError::Corrupt {
                path: path.to_string(),
                reason: "vanished while being read".into(),
            })?;
        let differences = wanted.differences(&pinned);
        if differences.is_empty() {
            Ok(pinned)
        } else {
            Err(ManifestError::Mismatch {
                dest: self.lake.display().to_string(),
                subdomain: self.subdomain.clone(),
                differences: differences.join("; "),
            })
        }
    }

    /// Records that the dataset is now in table format `format` (after the conversion's commit).
    pub async fn record_format(
        &self,
        pinned: &Dataset,
        format: TableFormat,
    ) -> Result<(), ManifestError> {
        self.record_dataset(&pinned.clone().with_format(format))
            .await
    }

    /// Rewrites the pinned dataset (a conversion, the first signed run).
    pub async fn record_dataset(&self, dataset: &Dataset) -> Result<(), ManifestError> {
        let body = serde_json::to_vec_pretty(dataset).expect("plain data serializes");
        self.lake
            .write(&layout::dataset(&self.subdomain), Bytes::from(body))
            .await?;
        Ok(())
    }

    /// The starts (UTC seconds) of the done windows, from one listing: no marker is read.
    pub async fn done(&self) -> Result<Vec<i64>, ManifestError> {
        Ok(self.generations().await?.into_keys().collect())
    }

    /// The highest marker generation of every done window, by window start, from one listing.
    pub async fn generations(&self) -> Result<BTreeMap<i64, u32>, ManifestError> {
        let mut out = BTreeMap::new();
        for path in self.lake.list(&layout::markers(&self.subdomain)).await? {
            if let Some((start, generation)) = layout::parse_marker(&path) {
                let highest = out.entry(start).or_insert(generation);
                *highest = (*highest).max(generation);
            }
        }
        Ok(out)
    }

    /// The current marker (highest generation) of every done window, by window start, without
    /// the markers a compacted day's marker covers ([`supersede`]).
    pub async fn markers(&self) -> Result<BTreeMap<i64, WindowRecord>, ManifestError> {
        Ok(supersede(self.all_markers().await?).0)
    }

    /// The current marker (highest generation) of every done window, by window start, including
    /// those a compacted day's marker covers.
    pub async fn all_markers(&self) -> Result<BTreeMap<i64, WindowRecord>, ManifestError> {
        let generations = self.generations().await?;
        let reads = generations
            .into_iter()
            .map(|(start, generation)| async move {
                Ok::<_, ManifestError>((start, self.marker(&named(start), generation).await?))
            });
        let mut out = BTreeMap::new();
        let mut reads = futures::stream::iter(reads).buffer_unordered(MARKER_READS);
        while let Some(read) = reads.next().await {
            let (start, record) = read?;
            if let Some(record) = record {
                out.insert(start, record);
            }
        }
        Ok(out)
    }

    /// One generation of a window's marker, if it exists.
    pub async fn marker(
        &self,
        window: &Window,
        generation: u32,
    ) -> Result<Option<WindowRecord>, ManifestError> {
        let path = layout::marker(&self.subdomain, window, generation);
        match self.lake.read(&path).await? {
            None => Ok(None),
            Some(bytes) => parse(&path, &bytes).map(Some),
        }
    }

    /// Marks a closed window done (or a repair's generation current): creates the marker of
    /// `record.generation`. `AlreadyExisted` means another run wrote that generation first.
    pub async fn commit(
        &self,
        window: &Window,
        record: &WindowRecord,
    ) -> Result<Created, ManifestError> {
        let body = serde_json::to_vec_pretty(record).expect("plain data serializes");
        let path = layout::marker(&self.subdomain, window, record.generation);
        Ok(self.lake.create(&path, Bytes::from(body)).await?)
    }

    /// Journals a repair before its first file is written.
    pub async fn begin_repair(
        &self,
        window: &Window,
        journal: &RepairJournal,
    ) -> Result<(), ManifestError> {
        let body = serde_json::to_vec_pretty(journal).expect("plain data serializes");
        self.lake
            .write(
                &layout::repair_journal(&self.subdomain, window),
                Bytes::from(body),
            )
            .await?;
        Ok(())
    }

    /// Ends a repair's journal once its old files are gone.
    pub async fn end_repair(&self, window: &Window) -> Result<(), ManifestError> {
        self.lake
            .delete(&layout::repair_journal(&self.subdomain, window))
            .await?;
        Ok(())
    }

    /// The starts (UTC seconds) of windows whose repair did not finish.
    pub async fn unfinished_repairs(&self) -> Result<Vec<i64>, ManifestError> {
        let paths = self.lake.list(&layout::repairs(&self.subdomain)).await?;
        let mut starts: Vec<i64> = paths
            .iter()
            .filter_map(|p| p.filename()?.strip_suffix(".json").and_then(parse_compact))
            .collect();
        starts.sort_unstable();
        Ok(starts)
    }

    /// Records the open windows' parts (never a done marker).
    pub async fn record_open(&self, state: &OpenState) -> Result<(), ManifestError> {
        let body = serde_json::to_vec_pretty(state).expect("plain data serializes");
        self.lake
            .write(&layout::open_window(&self.subdomain), Bytes::from(body))
            .await?;
        Ok(())
    }

    /// The open window's latest export, if any.
    pub async fn open_window(&self) -> Result<Option<WindowRecord>, ManifestError> {
        Ok(self.open_state().await?.map(|s| s.latest))
    }

    /// The records of every open window `open.json` holds (some may have closed since: a
    /// window with a marker is no longer open), the latest first.
    pub async fn open_windows(&self) -> Result<Vec<WindowRecord>, ManifestError> {
        Ok(self
            .open_state()
            .await?
            .map_or_else(Vec::new, OpenState::windows))
    }

    async fn open_state(&self) -> Result<Option<OpenState>, ManifestError> {
        let path = layout::open_window(&self.subdomain);
        match self.lake.read(&path).await? {
            None => Ok(None),
            Some(bytes) => parse(&path, &bytes).map(Some),
        }
    }

    /// The journal of the change of `window` in progress, if any; `None` too when it does not
    /// parse (the marker then tells what the change was).
    pub async fn journal(&self, window: &Window) -> Result<Option<RepairJournal>, ManifestError> {
        let path = layout::repair_journal(&self.subdomain, window);
        Ok(match self.lake.read(&path).await? {
            None => None,
            Some(bytes) => parse(&path, &bytes)
                .inspect_err(|e| tracing::warn!(error = %e, "a change's journal does not parse"))
                .ok(),
        })
    }

    /// Reads the markers of `generations` (start → generation), some at once: a marker that does
    /// not parse is kept as its error (the table's view decides what it may cover); only the
    /// store's failures fail the read.
    pub async fn read_markers(
        &self,
        generations: impl IntoIterator<Item = (i64, u32)>,
    ) -> Result<BTreeMap<i64, Result<WindowRecord, Torn>>, ManifestError> {
        let reads = generations
            .into_iter()
            .map(|(start, generation)| async move {
                let read = self.marker(&named(start), generation).await;
                (start, generation, read)
            });
        let mut out = BTreeMap::new();
        let mut reads = futures::stream::iter(reads).buffer_unordered(MARKER_READS);
        while let Some((start, generation, read)) = reads.next().await {
            match read {
                Ok(Some(record)) => {
                    out.insert(start, Ok(record));
                }
                Ok(None) => {}
                Err(ManifestError::Corrupt { path, reason }) => {
                    let torn = Torn {
                        generation,
                        path,
                        reason,
                    };
                    out.insert(start, Err(torn));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

/// A marker that does not parse: its generation, path and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Torn {
    pub generation: u32,
    pub path: String,
    pub reason: String,
}

/// The last export of a subdomain, as `status` shows it: when it ran, how it ended, and when the
/// last one that ended well did. Informational: nothing decides what to export from it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LastRun {
    pub run_id: String,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
    /// The run's exit code (see `auditlake --help`), and the word for it.
    pub exit_code: u8,
    pub outcome: String,
    /// When the last run that exited 0 finished (this one or an earlier one).
    pub last_success_at: Option<Timestamp>,
    /// The run's summary, as `--summary-json` writes it.
    pub summary: serde_json::Value,
}

impl Manifest {
    /// The last run's record, if any run finished here.
    /// A record that does not parse (torn, or edited) is none: it only informs `status` and
    /// the metrics, and the next export writes it anew.
    pub async fn last_run(&self) -> Result<Option<LastRun>, ManifestError> {
        let path = layout::last_run(&self.subdomain);
        match self.lake.read(&path).await? {
            None => Ok(None),
            Some(bytes) => match parse(&path, &bytes) {
                Ok(run) => Ok(Some(run)),
                Err(error) => {
                    tracing::warn!(%error, "the last run's record does not read; the next export writes it anew");
                    Ok(None)
                }
            },
        }
    }

    /// Records the run that just finished, carrying the last success over from the record it
    /// replaces when this run did not succeed; returns the record as written.
    pub async fn record_run(&self, mut run: LastRun) -> Result<LastRun, ManifestError> {
        if run.exit_code != 0 {
            let before = self.last_run().await.ok().flatten();
            run.last_success_at = before.and_then(|b| b.last_success_at);
        }
        let body = serde_json::to_vec_pretty(&run).expect("plain data serializes");
        self.lake
            .write(&layout::last_run(&self.subdomain), Bytes::from(body))
            .await?;
        Ok(run)
    }
}

/// What runs have learned of the API (`api.json`): facts Zendesk does not document, each proven
/// by something it served (see [`KnownBounds`]).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ApiFacts {
    #[serde(default)]
    pub created_at_bounds: KnownBounds,
}

impl Manifest {
    /// What earlier runs learned of the API; nothing yet if none did (or the file is unreadable:
    /// it only saves requests, and is written again).
    pub async fn api_facts(&self) -> Result<ApiFacts, ManifestError> {
        let path = layout::api_facts(&self.subdomain);
        Ok(match self.lake.read(&path).await? {
            None => ApiFacts::default(),
            Some(bytes) => parse(&path, &bytes).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "ignoring what earlier runs learned of the API");
                ApiFacts::default()
            }),
        })
    }

    /// Records what runs have learned of the API.
    pub async fn record_api_facts(&self, facts: &ApiFacts) -> Result<(), ManifestError> {
        let body = serde_json::to_vec_pretty(facts).expect("plain data serializes");
        self.lake
            .write(&layout::api_facts(&self.subdomain), Bytes::from(body))
            .await?;
        Ok(())
    }
}

/// How far the recheck has confirmed the lake (`recheck.json`): every committed window that ends
/// at or before `confirmed_to` was counted at the API, at or after its recheck horizon (its end
/// plus `recheck_seconds`), and held what the lake holds (or was repaired to it). Later rechecks
/// skip those windows: a record that becomes visible later than `--recheck` after its window
/// is past what the recheck promises to find (`verify --against-api` still counts every window).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Confirmed {
    pub confirmed_to: Timestamp,
    /// The `--recheck` span the confirmations were made for.
    pub recheck_seconds: u64,
    #[serde(default)]
    pub run_id: String,
}

impl Manifest {
    /// The instant up to which the recheck has confirmed the lake for a recheck span of
    /// `recheck_seconds`; `None` when nothing is confirmed yet, when the file is unreadable (it
    /// only saves requests), or when it was confirmed for a shorter span than this run's.
    pub async fn confirmed_to(&self, recheck_seconds: u64) -> Result<Option<i64>, ManifestError> {
        let path = layout::recheck(&self.subdomain);
        let Some(bytes) = self.lake.read(&path).await? else {
            return Ok(None);
        };
        let confirmed: Confirmed = match parse(&path, &bytes) {
            Ok(confirmed) => confirmed,
            Err(e) => {
                tracing::warn!(error = %e, "ignoring how far earlier rechecks confirmed the lake");
                return Ok(None);
            }
        };
        if confirmed.recheck_seconds < recheck_seconds {
            return Ok(None);
        }
        Ok(Some(confirmed.confirmed_to.seconds()))
    }

    /// Records how far the recheck has confirmed the lake.
    pub async fn record_confirmed(&self, confirmed: &Confirmed) -> Result<(), ManifestError> {
        let body = serde_json::to_vec_pretty(confirmed).expect("plain data serializes");
        self.lake
            .write(&layout::recheck(&self.subdomain), Bytes::from(body))
            .await?;
        Ok(())
    }
}

/// The day that the marker of generation `generation` at `start`, which does not parse, may span
/// as the day's compaction (`run/compact.rs`): a later generation of a day's first window, on a
/// grid finer than a day whose every window is `committed` (a compaction is made only then).
/// The caller asks the table the rest: a compacted day's other windows' files are no longer its
/// (removed by the Delta log; deleted, in a plain lake being converted).
/// The run's convergence of the log (`lake/state.rs`) and verify (`verify/delta.rs`) tell it
/// the same way.
pub fn compaction_day(
    grid: Grid,
    start: i64,
    generation: u32,
    committed: impl Fn(i64) -> bool,
) -> Option<Window> {
    let day = Window {
        start,
        end: start + Grid::DAILY.seconds(),
    };
    let step = usize::try_from(grid.seconds()).ok()?;
    let may_be = grid.seconds() < Grid::DAILY.seconds()
        && Grid::DAILY.floor(start) == start
        && generation >= 2
        && (day.start..day.end).step_by(step).all(committed);
    may_be.then_some(day)
}

/// Splits current markers into those that stand and the starts of those a compacted day's
/// marker covers. A day's windows compacted into one file per day partition are committed by a
/// new generation of the day's first window whose marker spans the whole day (see
/// `run/compact.rs`); the markers of the day's other windows stay, as the record that they
/// were committed, but name files that are gone, and their rows are counted in the day's.
pub fn supersede(markers: BTreeMap<i64, WindowRecord>) -> (BTreeMap<i64, WindowRecord>, Vec<i64>) {
    let mut standing = BTreeMap::new();
    let mut covered = Vec::new();
    let mut reach = i64::MIN;
    for (start, record) in markers {
        if start < reach {
            covered.push(start);
            continue;
        }
        if let Some(span) = record.span() {
            reach = reach.max(span.end);
        }
        standing.insert(start, record);
    }
    (standing, covered)
}

/// A window that names a marker: only its start goes into the marker's name (the manifest does
/// not know the grid; the marker itself records the end).
pub(crate) fn named(start: i64) -> Window {
    Window { start, end: start }
}

fn parse<T: for<'de> Deserialize<'de>>(
    path: &object_store::path::Path,
    bytes: &[u8],
) -> Result<T, ManifestError> {
    serde_json::from_slice(bytes).map_err(|e| ManifestError::Corrupt {
        path: path.to_string(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::lake::storage::temp_lake as lake;

    #[tokio::test]
    async fn a_dataset_is_pinned_and_other_settings_are_refused_with_the_difference() {
        let (_dir, lake) = lake();
        let m = Manifest::new(lake, "acme");
        let daily = Dataset::new("acme", Grid::DAILY, &Filters::default());
        m.pin(&daily).await.unwrap();
        m.pin(&daily).await.unwrap();
        let hourly = Dataset::new("acme", Grid::parse("1h").unwrap(), &Filters::default());
        let err = m.pin(&hourly).await.unwrap_err().to_string();
        assert!(
            err.contains("--window is 1d in the lake, 1h in this run"),
            "{err}"
        );
        let filtered = Dataset::new(
            "acme",
            Grid::DAILY,
            &Filters {
                actions: vec!["login".into()],
                ..Filters::default()
            },
        );
        let err = m.pin(&filtered).await.unwrap_err().to_string();
        assert!(err.contains("filters are {} in the lake"), "{err}");
    }

    #[tokio::test]
    async fn an_auditlake_0_1_lake_is_refused_with_what_to_do_whether_or_not_its_state_is_there() {
        let daily = Dataset::new("acme", Grid::DAILY, &Filters::default());
        let old = Dataset {
            schema_version: 1,
            ..daily.clone()
        };

        let (_dir, store) = lake();
        let body = serde_json::to_vec(&old).unwrap();
        store
            .write(&layout::dataset("acme"), body.into())
            .await
            .unwrap();
        let m = Manifest::new(store, "acme");
        for err in [
            m.pin(&daily).await.unwrap_err(),
            m.dataset().await.unwrap_err(),
        ] {
            assert!(matches!(err, ManifestError::Legacy { .. }), "{err}");
            let text = err.to_string();
            assert!(
                text.contains("auditlake 0.1") && text.contains("--dest NEW"),
                "{text}"
            );
        }

        let (_dir2, lake) = lake();
        let old_part = "subdomain=acme/created_date=2024-01-01/part-20240101T0000Z-0.parquet";
        lake.write(&object_store::path::Path::from(old_part), "x".into())
            .await
            .unwrap();
        let m = Manifest::new(lake.clone(), "acme");
        let err = m.pin(&daily).await.unwrap_err();
        assert!(matches!(err, ManifestError::Legacy { .. }), "{err}");
        assert_eq!(lake.read(&layout::dataset("acme")).await.unwrap(), None);
        // Another subdomain's old data does not concern this one.
        let other = Manifest::new(lake, "globex");
        other
            .pin(&Dataset::new("globex", Grid::DAILY, &Filters::default()))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn subdomains_have_separate_manifests() {
        let (_dir, lake) = lake();
        let a = Manifest::new(lake.clone(), "a");
        let b = Manifest::new(lake, "b");
        a.pin(&Dataset::new("a", Grid::DAILY, &Filters::default()))
            .await
            .unwrap();
        b.pin(&Dataset::new(
            "b",
            Grid::parse("1h").unwrap(),
            &Filters::default(),
        ))
        .await
        .unwrap();
        let w = Window {
            start: 86_400,
            end: 172_800,
        };
        let record = WindowRecord::new(&w, vec![]);
        assert_eq!(a.commit(&w, &record).await.unwrap(), Created::Created);
        assert_eq!(
            a.commit(&w, &record).await.unwrap(),
            Created::AlreadyExisted
        );
        assert_eq!(a.done().await.unwrap(), [86_400]);
        assert!(b.done().await.unwrap().is_empty());
        assert_eq!(a.markers().await.unwrap()[&86_400], record);
    }
}
