//! What a run reads of the lake, through the committer: the state it starts from (read once,
//! under the lease), the current markers of the windows it rechecks or repairs, and the repairs
//! a crash left unfinished, converged before anything else is written.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::lake::signing::Signer;

use crate::lake::commit::{CommitError, Committer};
use crate::lake::delta::DeltaLog;
use crate::lake::layout;
use crate::lake::ledger::Ledger;
use crate::lake::manifest::TableFormat;
use crate::lake::manifest::{ApiFacts, Dataset, FileEntry, ManifestError, OpenState, WindowRecord};
use crate::lake::view::{Current, TableView};
use crate::plan::window::{Grid, Window};
use crate::table::encode::FileStats;
use crate::units::time::parse_compact;
use parquet::file::metadata::ParquetMetaDataReader;

/// The lake's state for one subdomain as a run starts.
#[derive(Debug)]
pub struct LakeState {
    /// The current generation of each committed window, by start.
    pub generations: BTreeMap<i64, u32>,
    /// The records of the open windows without a marker (the latest first): the window the
    /// last increment grew, and any whose close failed.
    pub open: Vec<WindowRecord>,
    /// What earlier runs learned of the API.
    pub facts: ApiFacts,
    /// How far the recheck has confirmed the lake, for this run's `--recheck`.
    pub confirmed_to: Option<i64>,
    /// Interrupted repairs finished before the run.
    pub repairs_converged: u64,
    /// The ledger of erasures and expiries (every one finished, those interrupted too).
    pub ledger: Ledger,
}

impl LakeState {
    /// The retention floor: windows ending at or before it expired and are never exported
    /// again.
    pub fn floor(&self) -> Option<i64> {
        self.ledger.floor()
    }
}

impl Committer {
    /// The committer of an export, built whole before its first write: pins `dataset` on the
    /// lake's first export, or refuses a lake made with other settings, signs the chain's links
    /// with `signer`, and opens the table in its format. A Parquet lake asked for as a Delta
    /// table is converted by [`Committer::begin`]; a Delta table is never turned back.
    pub async fn pin(
        self,
        dataset: &Dataset,
        signer: Option<Arc<Signer>>,
    ) -> Result<Committer, ManifestError> {
        let this = self.with_signer(signer);
        let pinned = this.manifest().pin(dataset).await?;
        let pinned = this.pin_signing_key(pinned, dataset).await?;
        let format = match (pinned.table_format, dataset.table_format) {
            (TableFormat::Delta, TableFormat::Parquet) => {
                return Err(ManifestError::Mismatch {
                    dest: this.lake().display().to_string(),
                    subdomain: dataset.subdomain.clone(),
                    differences: "the lake is a Delta table (table_format delta), this run asks for plain Parquet: run with --table-format delta".into(),
                })
            }
            (TableFormat::Parquet, TableFormat::Delta) => {
                *this.converting.lock().expect("not poisoned") = Some(pinned);
                TableFormat::Delta
            }
            (format, _) => format,
        };
        this.open_table(format).await
    }

    /// The chain's key: pinned by the first signed run (recorded in `dataset.json`), and from
    /// then on required, the same, of every run.
    async fn pin_signing_key(
        &self,
        pinned: Dataset,
        wanted: &Dataset,
    ) -> Result<Dataset, ManifestError> {
        let refuse = |why: String| ManifestError::Mismatch {
            dest: self.lake().display().to_string(),
            subdomain: wanted.subdomain.clone(),
            differences: why,
        };
        match (&pinned.signing_key, &wanted.signing_key) {
            (Some(a), Some(b)) if a == b => Ok(pinned),
            (Some(a), Some(b)) => Err(refuse(format!(
                "the digest chain is signed with key {a}, this run's --signing-key-file is {b}"
            ))),
            (Some(a), None) => Err(refuse(format!(
                "the digest chain is signed with key {a}: run with --signing-key-file"
            ))),
            (None, Some(b)) => {
                tracing::info!(key = %b, "the digest chain is signed from now on; the key's fingerprint is pinned in dataset.json");
                // The ledger's entries so far were written unsigned: signed again, so that a
                // signed lake's runs go on applying them (and refuse any other unsigned one).
                if let Some(signer) = &self.signer {
                    let signed =
                        Ledger::countersign(self.lake(), self.subdomain(), self.run_id(), signer)
                            .await?;
                    if signed > 0 {
                        tracing::info!(
                            entries = signed,
                            "the ledger's unsigned entries signed again"
                        );
                    }
                }
                let mut signed = pinned.clone();
                signed.signing_key = Some(b.clone());
                self.manifest().record_dataset(&signed).await?;
                Ok(signed)
            }
            (None, None) => Ok(pinned),
        }
    }

    /// The committer with the table open in `format`: a Delta table's log receives every
    /// change. A plain Parquet run is refused where the table root holds a Delta log (another
    /// subdomain's runs write one): its files would be invisible to the table's Delta readers.
    pub async fn open_table(self, format: TableFormat) -> Result<Committer, ManifestError> {
        let subdomain = self.subdomain().to_string();
        match format {
            TableFormat::Delta => {
                let log = DeltaLog::new(self.lake(), &subdomain, self.run_id());
                Ok(self.with_log(log))
            }
            TableFormat::Parquet if DeltaLog::exists(self.lake()).await? => {
                Err(ManifestError::Mismatch {
                    dest: self.lake().display().to_string(),
                    subdomain,
                    differences: "the table root holds a Delta log (audit_logs/_delta_log/), which this subdomain's files would be missing from: run with --table-format delta to add them to it".into(),
                })
            }
            TableFormat::Parquet => Ok(self),
        }
    }

    /// Finishes the repairs a crash interrupted, and reads the state a run starts from; `grid`
    /// is the dataset's, `recheck_seconds` the run's `--recheck` (a confirmation made for a
    /// shorter one does not hold).
    pub async fn begin(&self, grid: Grid, recheck_seconds: u64) -> Result<LakeState, CommitError> {
        let manifest = self.manifest();
        let generations = manifest.generations().await?;
        if let Some(log) = self.delta() {
            log.create_table().await?;
            log.load().await?;
        }
        let repairs_converged = self.converge_repairs(grid, &generations).await?;
        self.read_chain().await?;
        let open = match manifest.open_windows().await {
            Ok(open) => open,
            Err(ManifestError::Corrupt { path, reason }) => {
                tracing::error!(%path, %reason, "the open windows' state does not parse: it is rebuilt from their parts in the lake, and each is exported again from its start, dropping none of their records");
                self.rebuild_open(grid, &generations).await?
            }
            Err(e) => return Err(e.into()),
        };
        let open: Vec<WindowRecord> = open
            .into_iter()
            .filter(|o| parse_compact(&o.window).is_some_and(|s| !generations.contains_key(&s)))
            .collect();
        self.hold_open(open.clone()).await;
        if let Some(log) = self.delta() {
            self.converge_log(log, grid, &generations).await?;
        }
        let mut ledger = self.trusted_ledger().await?;
        self.hold_erasure(&ledger.erasure());
        let mut open = open;
        if self.converge_ledger(grid, &ledger).await? > 0 {
            ledger = self.trusted_ledger().await?;
            // An erasure replaces open parts.
            open = self.open_records().await;
        }
        let generations = match ledger.entries.is_empty() {
            true => generations,
            // Erasures and expiries wrote new generations.
            false => manifest.generations().await?,
        };
        Ok(LakeState {
            open,
            facts: manifest.api_facts().await?,
            confirmed_to: manifest.confirmed_to(recheck_seconds).await?,
            generations,
            repairs_converged,
            ledger,
        })
    }

    /// Finishes the ledger's pending entries once more (after a repair mended a window whose
    /// marker did not parse, which had kept them waiting); returns how many.
    pub(crate) async fn finish_pending(&self, grid: Grid) -> Result<u64, CommitError> {
        let ledger = self.trusted_ledger().await?;
        self.converge_ledger(grid, &ledger).await
    }

    /// The ledger as this run takes it: in a signed lake, only what the lake's key signed;
    /// another entry refuses the run ([`CommitError::Unauthorised`]).
    async fn trusted_ledger(&self) -> Result<Ledger, CommitError> {
        let ledger = Ledger::read(self.lake(), self.subdomain()).await?;
        // Only a lake that pins a key requires its entries signed: a keyed command on a lake
        // not signed yet (an erase, an expire, a repair given the key) applies them all.
        let pinned = self
            .manifest()
            .dataset()
            .await?
            .and_then(|d| d.signing_key)
            .is_some();
        match self.signer.as_ref().filter(|_| pinned) {
            None => Ok(ledger),
            Some(signer) => {
                ledger
                    .trusted(&signer.verifier())
                    .map_err(|entry| CommitError::Unauthorised {
                        entry: entry.describe(),
                    })
            }
        }
    }

    /// The table as it is now (see [`TableView`]), over the windows starting in `range` (whole
    /// days), or over every window: which files are the table's is asked of the Delta log, or of
    /// the listing in a plain lake and in one being converted (its log holds nothing yet).
    pub async fn view(
        &self,
        grid: Grid,
        generations: &BTreeMap<i64, u32>,
        range: Option<Window>,
    ) -> Result<TableView, ManifestError> {
        let converting = self.converting.lock().expect("not poisoned").is_some();
        let current = match self.delta() {
            Some(log) if !converting => Current::Held(log.held()),
            _ => Current::Listed {
                lake: self.lake(),
                subdomain: self.subdomain(),
            },
        };
        TableView::read(self.manifest(), grid, generations, range, current).await
    }

    /// Converges the Delta log to the table's view (a crash between a marker and its commit, or
    /// the conversion of a Parquet lake), then records a conversion in `dataset.json`, and
    /// removes the files no version of the table reads any more. Reads every marker: one small
    /// read per committed window.
    async fn converge_log(
        &self,
        log: &DeltaLog,
        grid: Grid,
        generations: &BTreeMap<i64, u32>,
    ) -> Result<(), CommitError> {
        let view = self.view(grid, generations, None).await?;
        let mut wanted: Vec<FileEntry> = view
            .standing
            .values()
            .flat_map(|m| m.files.clone())
            .collect();
        // Which files are a torn marker's cannot be told: the log keeps what it holds of its
        // span, until `repair` re-exports it; a lake being converted keeps what its plain
        // readers read of it, every file of the span.
        let unreadable: Vec<Window> = view.torn.values().map(|t| t.span).collect();
        let converting = self.converting.lock().expect("not poisoned").is_some();
        for span in &unreadable {
            match converting {
                false => wanted.extend(log.logged(span)),
                true => wanted.extend(self.describe_files_of(span).await?),
            }
        }
        // The open windows' parts, those still there: a close killed half way may have swept
        // some (the run then exports the window again from its start).
        for open in &view.open {
            let Some(start) = parse_compact(&open.window) else {
                continue;
            };
            let cell = Window {
                start,
                end: start + grid.seconds(),
            };
            let present = self.files_present(&cell).await?;
            wanted.extend(
                open.files
                    .iter()
                    .filter(|f| present.contains(&f.path))
                    .cloned(),
            );
        }
        self.fence_check()?;
        let converting = self.converting.lock().expect("not poisoned").take();
        if let Some(pinned) = converting {
            tracing::warn!(
                files = wanted.len(),
                "converting the lake to a Delta table: every file its markers name, in one commit"
            );
            log.converge(
                &wanted,
                "CONVERT TO DELTA",
                "the Parquet lake became a Delta table",
            )
            .await?;
            self.fence_check()?;
            self.manifest()
                .record_format(&pinned, TableFormat::Delta)
                .await?;
        } else {
            log.converge(
                &wanted,
                "REPAIR",
                "the Delta log was behind the markers; converged",
            )
            .await?;
        }
        self.vacuum(log, &wanted, &unreadable).await?;
        Ok(())
    }

    /// The open windows' records as their parts in the lake tell them (the increment parts of every
    /// window without a marker), written as `open.json` in place of one that does not parse.
    /// How far each is complete cannot be told: none grows by increments, so each is exported again
    /// from its start (or, closed, whole), and its parts stay until that holds their records.
    async fn rebuild_open(
        &self,
        grid: Grid,
        generations: &BTreeMap<i64, u32>,
    ) -> Result<Vec<WindowRecord>, CommitError> {
        let mut starts = std::collections::BTreeSet::new();
        for path in self.lake().list(&layout::data(self.subdomain())).await? {
            let part = path.filename().and_then(layout::parse_part_name);
            if let Some(start) = part
                .filter(|p| p.increment_from.is_some())
                .and_then(|p| parse_compact(p.window_id))
                .filter(|s| !generations.contains_key(s))
            {
                starts.insert(start);
            }
        }
        let mut records = Vec::new();
        for start in starts.into_iter().rev() {
            let cell = Window {
                start,
                end: start + grid.seconds(),
            };
            let parts: Vec<FileEntry> = self
                .describe_files_of(&cell)
                .await?
                .into_iter()
                .filter(|f| {
                    let name = f.path.rsplit('/').next().unwrap_or(&f.path);
                    layout::parse_part_name(name).is_some_and(|p| p.increment_from.is_some())
                })
                .collect();
            let mut record = WindowRecord::new(&cell, parts);
            record.run_id = self.run_id().to_string();
            records.push(record);
        }
        self.fence_check()?;
        let path = layout::open_window(self.subdomain());
        match records.split_first() {
            Some((latest, earlier)) => {
                let state = OpenState {
                    latest: latest.clone(),
                    earlier: earlier.to_vec(),
                };
                self.manifest().record_open(&state).await?;
            }
            None => self.lake().delete(&path).await?,
        }
        Ok(records)
    }

    /// The part files of `span` in the lake, described from their footers (rows, bounds) as a
    /// marker would: the files of a span whose marker does not parse, which a lake being
    /// converted to a Delta table brings into its log as its plain readers read them.
    async fn describe_files_of(&self, span: &Window) -> Result<Vec<FileEntry>, CommitError> {
        let mut files = Vec::new();
        for path in self.files_present(span).await? {
            let path = object_store::path::Path::from(path);
            if !layout::is_part_of(&path, span) {
                continue;
            }
            let Some(bytes) = self.lake().read(&path).await? else {
                continue;
            };
            let size = bytes.len() as u64;
            let Ok(metadata) = ParquetMetaDataReader::new().parse_and_finish(&bytes) else {
                tracing::warn!(path = %path, "a file of a window whose marker does not parse is not Parquet; left out of the Delta log");
                continue;
            };
            files.push(FileEntry {
                path: path.to_string(),
                rows: metadata.file_metadata().num_rows() as u64,
                bytes: size,
                stats: FileStats::of_metadata(&metadata),
                sha256: None,
            });
        }
        Ok(files)
    }

    /// Converges the Delta log to the markers once more, after a repair: re-exporting the first
    /// window of a day whose marker did not parse lets the markers of the day's other windows
    /// stand again, and their files (kept for older versions) return to the log at once.
    pub(crate) async fn converge_log_again(&self, grid: Grid) -> Result<(), CommitError> {
        let Some(log) = self.delta() else {
            return Ok(());
        };
        let generations = self.manifest().generations().await?;
        self.converge_log(log, grid, &generations).await
    }

    /// The standing markers of those of `windows` (consecutive grid windows, in order) that are
    /// committed, in order, each with the window it covers: a compacted day's marker stands
    /// once, for the whole day, in place of the markers of the day's windows (it may start
    /// before the first of `windows`). A torn marker that stands is left out (`repair`
    /// re-exports it; `verify` reports it), one a standing span covers is history.
    pub async fn current_markers(
        &self,
        grid: Grid,
        windows: &[Window],
    ) -> Result<Vec<(Window, WindowRecord)>, ManifestError> {
        let generations = self.manifest().generations().await?;
        self.current_markers_listed(grid, windows, &generations)
            .await
    }

    /// [`Committer::current_markers`], given the markers' listing (`generations`).
    pub async fn current_markers_listed(
        &self,
        grid: Grid,
        windows: &[Window],
        generations: &BTreeMap<i64, u32>,
    ) -> Result<Vec<(Window, WindowRecord)>, ManifestError> {
        let (Some(first), Some(last)) = (windows.first(), windows.last()) else {
            return Ok(Vec::new());
        };
        let range = Window {
            start: first.start,
            end: last.end,
        };
        let view = self.view(grid, generations, Some(range)).await?;
        for (start, torn) in &view.torn {
            if *start < range.end && torn.span.end > range.start {
                tracing::warn!(window = %torn.span.id(), path = %torn.torn.path, reason = %torn.torn.reason, "a marker does not parse; its window is left for `auditlake repair`");
            }
        }
        Ok(view
            .standing
            .into_iter()
            .filter_map(|(start, marker)| {
                let window = marker.span().unwrap_or(Window {
                    start,
                    end: start + grid.seconds(),
                });
                (window.end > range.start && window.start < range.end).then_some((window, marker))
            })
            .collect())
    }

    /// The marker of `window`'s generation `generation` as a repair replaces it: one that is
    /// missing or does not parse still has its generation (the repair writes the next one), and
    /// names no files.
    pub async fn marker_to_replace(
        &self,
        window: &Window,
        generation: u32,
    ) -> Result<WindowRecord, ManifestError> {
        match self.manifest().marker(window, generation).await {
            Ok(Some(record)) => Ok(record),
            Ok(None) | Err(ManifestError::Corrupt { .. }) => {
                let mut placeholder = WindowRecord::new(window, Vec::new());
                placeholder.generation = generation;
                Ok(placeholder)
            }
            Err(e) => Err(e),
        }
    }
}
