//! The one routine that finishes any change a crash interrupted, from its journal: the
//! window's current marker stands (the change's, if its marker was created; the one before,
//! if not), the Delta log is brought to it (`dataChange` as the journal says), a link restates
//! it in the chain, the span's other files are swept, and the journal ends. The same for every
//! kind of change.

use std::collections::BTreeMap;

use super::ChangeKind;
use crate::lake::commit::{CommitError, Committer};
use crate::lake::manifest::{ManifestError, WindowRecord};
use crate::plan::window::{Grid, Window};

/// Whether a marker's reason says a compaction wrote it (journals written before they said
/// whether their change changes data are told by it).
fn is_compaction(reason: &str) -> bool {
    reason.starts_with(crate::lake::commit::COMPACTION_REASON)
}

impl Committer {
    /// Finishes a change that a crash interrupted: keeps exactly the files the window's current
    /// marker names (`current`, or none if the window has no marker) and ends the journal.
    /// `data_change` is what the journal says of the change (a journal written before it said
    /// so: told by the marker's reason). A lake being converted to a Delta table gets no commit
    /// here: its conversion adds every file the markers name, as new data.
    pub async fn converge(
        &self,
        window: &Window,
        current: Option<&WindowRecord>,
        data_change: Option<bool>,
    ) -> Result<u64, CommitError> {
        let keep = current.map_or(&[][..], |r| r.files.as_slice());
        let compacted = current.is_some_and(|c| c.reason.as_deref().is_some_and(is_compaction));
        let kind = match data_change.unwrap_or(!compacted) {
            true => ChangeKind::Repair,
            false => ChangeKind::Rearrange,
        };
        let converting = self.converting.lock().expect("not poisoned").is_some();
        if !converting {
            let (operation, reason) = match kind {
                ChangeKind::Rearrange => ("OPTIMIZE", "an interrupted compaction finished"),
                _ => ("REPAIR", "an interrupted change finished"),
            };
            self.log_window(window, keep, operation, Some(reason), kind)
                .await?;
        }
        if let Some(current) = current {
            // The interrupted change may have chained its generation before it stopped: a link
            // says the current one stands, so the window's latest link is its marker's.
            let mut stands = current.clone();
            stands.reason =
                Some("an interrupted change was finished; this generation stands".into());
            // Not a replacement: the link restates the generation that stands.
            self.chain_link(&stands, None, None).await?;
        }
        let removed = self.sweep(window, keep).await?;
        self.fence_check()?;
        self.manifest().end_repair(window).await?;
        Ok(removed)
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
            let journal = manifest.journal(&window).await?;
            window = current.span().unwrap_or(window);
            let data_change = journal.and_then(|j| j.data_change);
            let removed = self.converge(&window, Some(&current), data_change).await?;
            tracing::warn!(window = %window.id(), removed, "finished a repair that was interrupted");
            converged += 1;
        }
        Ok(converged)
    }
}
