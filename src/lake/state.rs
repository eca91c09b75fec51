//! What a run reads of the lake, through the committer: the state it starts from (read once,
//! under the lease), the current markers of the windows it rechecks or repairs, and the repairs
//! a crash left unfinished, converged before anything else is written.

use std::collections::BTreeMap;

use crate::lake::commit::{CommitError, Committer};
use crate::lake::manifest::{ApiFacts, Dataset, ManifestError, WindowRecord};
use crate::plan::window::{Grid, Window};

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
    /// Pins `dataset` on the lake's first export, or refuses a lake made with other settings.
    pub async fn pin(&self, dataset: &Dataset) -> Result<(), ManifestError> {
        self.manifest().pin(dataset).await
    }

    /// Finishes the repairs a crash interrupted, and reads the state a run starts from; `grid`
    /// is the dataset's, `recheck_seconds` the run's `--recheck` (a confirmation made for a
    /// shorter one does not hold).
    pub async fn begin(&self, grid: Grid, recheck_seconds: u64) -> Result<LakeState, CommitError> {
        let manifest = self.manifest();
        let generations = manifest.generations().await?;
        let repairs_converged = self.converge_repairs(grid, &generations).await?;
        Ok(LakeState {
            open: manifest.open_window().await?,
            facts: manifest.api_facts().await?,
            confirmed_to: manifest.confirmed_to(recheck_seconds).await?,
            generations,
            repairs_converged,
        })
    }

    /// The current markers of those of `windows` that are committed (their generation in
    /// `generations`), in order.
    pub async fn current_markers(
        &self,
        windows: &[Window],
    ) -> Result<Vec<(Window, WindowRecord)>, ManifestError> {
        let manifest = self.manifest();
        let generations = manifest.generations().await?;
        let mut committed = Vec::with_capacity(windows.len());
        for window in windows {
            if let Some(&generation) = generations.get(&window.start) {
                if let Some(marker) = manifest.marker(window, generation).await? {
                    committed.push((*window, marker));
                }
            }
        }
        Ok(committed)
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
            let window = Window {
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
            let removed = self.converge(&window, Some(&current)).await?;
            tracing::warn!(window = %window.id(), removed, "finished a repair that was interrupted");
            converged += 1;
        }
        Ok(converged)
    }
}
