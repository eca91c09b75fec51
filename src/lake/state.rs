//! What a run reads of the lake, through the committer: the state it starts from (read once,
//! under the lease), the current markers of the windows it rechecks or repairs, and the repairs
//! a crash left unfinished, converged before anything else is written.

use std::collections::{BTreeMap, BTreeSet};

use crate::lake::commit::{CommitError, Committer};
use crate::lake::delta::{DeltaLog, TableFormat};
use crate::lake::manifest::{
    compaction_day, named, supersede, ApiFacts, Dataset, FileEntry, ManifestError, WindowRecord,
};
use crate::plan::window::{parse_compact, Grid, Window};

/// The lake's state for one subdomain as a run starts.
#[derive(Debug)]
pub struct LakeState {
    /// The current generation of each committed window, by start.
    pub generations: BTreeMap<i64, u32>,
    /// The open window's record (its deltas), if any.
    pub open: Option<WindowRecord>,
    /// What earlier runs learned of the API.
    pub facts: ApiFacts,
    /// How far the recheck has confirmed the lake, for this run's `--recheck`.
    pub confirmed_to: Option<i64>,
    /// Interrupted repairs finished before the run.
    pub repairs_converged: u64,
}

impl Committer {
    /// Pins `dataset` on the lake's first export, or refuses a lake made with other settings,
    /// and opens the table in its format. A Parquet lake asked for as a Delta table is
    /// converted by [`Committer::begin`]; a Delta table is never turned back.
    pub async fn pin(&self, dataset: &Dataset) -> Result<(), ManifestError> {
        let pinned = self.manifest().pin(dataset).await?;
        let pinned = self.pin_signing_key(pinned, dataset).await?;
        let format = match (pinned.table_format, dataset.table_format) {
            (TableFormat::Delta, TableFormat::Parquet) => {
                return Err(ManifestError::Mismatch {
                    dest: self.lake().display().to_string(),
                    subdomain: dataset.subdomain.clone(),
                    differences: "the lake is a Delta table (table_format delta), this run asks for plain Parquet: run with --table-format delta".into(),
                })
            }
            (TableFormat::Parquet, TableFormat::Delta) => {
                *self.converting.lock().expect("not poisoned") = Some(pinned);
                TableFormat::Delta
            }
            (format, _) => format,
        };
        self.open_table(format, &dataset.subdomain).await
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
                let mut signed = pinned.clone();
                signed.signing_key = Some(b.clone());
                self.manifest().record_dataset(&signed).await?;
                Ok(signed)
            }
            (None, None) => Ok(pinned),
        }
    }

    /// Opens the table in `format`: a Delta table's log receives every change from now on. A
    /// plain Parquet run is refused where the table root holds a Delta log (another subdomain's
    /// runs write one): its files would be invisible to the table's Delta readers.
    pub async fn open_table(
        &self,
        format: TableFormat,
        subdomain: &str,
    ) -> Result<(), ManifestError> {
        match format {
            TableFormat::Delta => {
                self.log_to(DeltaLog::new(self.lake(), subdomain, self.run_id()));
                Ok(())
            }
            TableFormat::Parquet if DeltaLog::exists(self.lake()).await? => {
                Err(ManifestError::Mismatch {
                    dest: self.lake().display().to_string(),
                    subdomain: subdomain.to_string(),
                    differences: "the table root holds a Delta log (audit_logs/_delta_log/), which this subdomain's files would be missing from: run with --table-format delta to add them to it".into(),
                })
            }
            TableFormat::Parquet => Ok(()),
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
        let open = manifest.open_window().await?;
        if let Some(log) = self.delta() {
            self.converge_log(log, grid, &generations, open.as_ref())
                .await?;
        }
        Ok(LakeState {
            open,
            facts: manifest.api_facts().await?,
            confirmed_to: manifest.confirmed_to(recheck_seconds).await?,
            generations,
            repairs_converged,
        })
    }

    /// Converges the Delta log to the markers and the open window's record (a crash between a
    /// marker and its commit, or the conversion of a Parquet lake), then records a conversion
    /// in `dataset.json`, and removes the files no version of the table reads any more. Reads
    /// every marker: one small read per committed window.
    async fn converge_log(
        &self,
        log: &DeltaLog,
        grid: Grid,
        generations: &BTreeMap<i64, u32>,
        open: Option<&WindowRecord>,
    ) -> Result<(), CommitError> {
        let (mut wanted, unreadable) = self.wanted_by_markers(log, grid, generations).await?;
        // The open window's record outlives its close (it is ignored once the window has a
        // marker): its parts are wanted only while the window is still open.
        if let Some(open) = open {
            let start = parse_compact(&open.window);
            if let Some(start) = start.filter(|s| !generations.contains_key(s)) {
                // Only the parts still there: a close killed half way may have swept some (the
                // run then exports the window again from its start).
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

    /// Converges the Delta log to the markers once more, after a repair: re-exporting the first
    /// window of a day whose marker did not parse lets the markers of the day's other windows
    /// stand again, and their files (kept for older versions) return to the log at once.
    pub(crate) async fn converge_log_again(&self, grid: Grid) -> Result<(), CommitError> {
        let Some(log) = self.delta() else {
            return Ok(());
        };
        let generations = self.manifest().generations().await?;
        let open = self.manifest().open_window().await?;
        self.converge_log(log, grid, &generations, open.as_ref())
            .await
    }

    /// The files the markers name (a compacted day's marker standing for its windows' markers),
    /// and the spans of the markers that do not parse, whose files are what the log holds of
    /// them.
    async fn wanted_by_markers(
        &self,
        log: &DeltaLog,
        grid: Grid,
        generations: &BTreeMap<i64, u32>,
    ) -> Result<(Vec<FileEntry>, Vec<Window>), CommitError> {
        let manifest = self.manifest();
        let mut wanted: Vec<FileEntry> = Vec::new();
        let mut unreadable = Vec::new();
        let mut markers = BTreeMap::new();
        for (&start, &generation) in generations {
            let window = Window {
                start,
                end: start + grid.seconds(),
            };
            match manifest.marker(&window, generation).await {
                Ok(Some(marker)) => {
                    markers.insert(start, marker);
                }
                Ok(None) => {}
                Err(ManifestError::Corrupt { .. }) => {
                    let committed = |s: i64| generations.contains_key(&s);
                    let day = compaction_day(grid, start, generation, committed);
                    unreadable.push(day.unwrap_or(window));
                }
                Err(e) => return Err(e.into()),
            }
        }
        // A day whose other windows' files are still the table's was never compacted (see
        // `manifest::compaction_day`): a Delta table's compaction removes them from the log
        // (whether the removes are still kept or not: they expire), a plain lake's deletes them,
        // which is what a lake being converted, whose log holds nothing yet, is told by.
        let converting = self.converting.lock().expect("not poisoned").is_some();
        for span in unreadable
            .iter_mut()
            .filter(|s| s.end - s.start > grid.seconds())
        {
            let present = if converting {
                self.files_present(span).await?
            } else {
                BTreeSet::new()
            };
            let current = markers
                .range(span.start + 1..span.end)
                .flat_map(|(_, m)| &m.files)
                .any(|f| log.holds(&f.path) || present.contains(&f.path));
            if current {
                span.end = span.start + grid.seconds();
            }
        }
        // A compacted day's marker names the day's files; the markers it covers name files that
        // only older versions read.
        let (standing, _) = supersede(markers);
        // Which files are an unreadable marker's cannot be told: the log keeps what it holds of
        // its span, until `repair` re-exports it. Inside a compacted day's span it is history,
        // as verify counts it.
        unreadable.retain(|w| {
            !standing
                .values()
                .filter_map(WindowRecord::span)
                .any(|day| day.start < w.start && w.start < day.end)
        });
        for window in &unreadable {
            wanted.extend(log.logged(window));
        }
        let inside = |start: i64| unreadable.iter().any(|w| w.start <= start && start < w.end);
        wanted.extend(
            standing
                .into_iter()
                .filter(|(start, _)| !inside(*start))
                .flat_map(|(_, m)| m.files),
        );
        Ok((wanted, unreadable))
    }

    /// The current markers of those of `windows` (consecutive grid windows, in order) that are
    /// committed, in order, each with the window it covers: a compacted day's marker stands
    /// once, for the whole day, in place of the markers of the day's windows (it may start
    /// before the first of `windows`).
    pub async fn current_markers(
        &self,
        windows: &[Window],
    ) -> Result<Vec<(Window, WindowRecord)>, ManifestError> {
        let generations = self.manifest().generations().await?;
        self.current_markers_listed(windows, &generations).await
    }

    /// [`Committer::current_markers`], given the markers' listing (`generations`).
    pub async fn current_markers_listed(
        &self,
        windows: &[Window],
        generations: &BTreeMap<i64, u32>,
    ) -> Result<Vec<(Window, WindowRecord)>, ManifestError> {
        let manifest = self.manifest();
        let mut starts: Vec<i64> = windows.iter().map(|w| w.start).collect();
        if let Some(first) = windows.first() {
            let day = Grid::DAILY.floor(first.start);
            if day < first.start {
                starts.insert(0, day);
            }
        }
        let mut read = BTreeMap::new();
        for start in starts {
            if let Some(&generation) = generations.get(&start) {
                if let Some(marker) = manifest.marker(&named(start), generation).await? {
                    read.insert(start, marker);
                }
            }
        }
        let (standing, _) = supersede(read);
        let first = windows.first().map_or(i64::MAX, |w| w.start);
        let grid_window = |start: i64| windows.iter().find(|w| w.start == start).copied();
        Ok(standing
            .into_iter()
            .filter_map(|(start, marker)| {
                let window = marker.span().or_else(|| grid_window(start))?;
                (window.end > first).then_some((window, marker))
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

    /// Finishes the repairs that a crash interrupted, so readers stop seeing two generations;
    /// how many.
    pub async fn converge_repairs(
        &self,
        grid: Grid,
        generations: &BTreeMap<i64, u32>,
    ) -> Result<u64, CommitError> {
        let manifest = self.manifest();
        let mut converged = 0;
        for start in manifest.unfinished_repairs().await? {
            let mut window = Window {
                start,
                end: start + grid.seconds(),
            };
            let current = match generations.get(&start) {
                Some(&generation) => match manifest.marker(&window, generation).await {
                    Ok(Some(current)) => current,
                    Ok(None) => continue,
                    // Which files are the window's cannot be told: leave everything (and the
                    // journal) for `repair`, which re-exports the window.
                    Err(e @ ManifestError::Corrupt { .. }) => {
                        tracing::error!(window = %window.id(), error = %e, "an interrupted repair cannot be finished: the window's marker does not parse; run `auditlake repair`");
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                },
                // No marker at all (removed by hand?): nothing says which files are the
                // window's. They stay, as uncommitted parts that the window's next export
                // replaces.
                None => {
                    tracing::warn!(window = %window.id(), "a repair journal names a window without a marker; its files are left for the window's next export");
                    manifest.end_repair(&window).await?;
                    continue;
                }
            };
            // A compaction's marker spans the day: converging it removes the files of every
            // window it covers.
            window = current.span().unwrap_or(window);
            let removed = self.converge(&window, Some(&current)).await?;
            tracing::warn!(window = %window.id(), removed, "finished a repair that was interrupted");
            converged += 1;
        }
        Ok(converged)
    }
}
