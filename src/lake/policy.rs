//! The lake owner's decisions that data must go, carried out as changes of the lake: an
//! erasure (`auditlake erase`) and an expiry (`auditlake expire`, `export --retention`).
//!
//! Each is a ledger entry first (`ledger.rs`), then one [`Change`] per window through the one
//! commit sequence (an erased copy as the window's next generation, or a tombstone), then a
//! purge of every other copy of the data the lake still holds (older generations, files a Delta
//! table keeps for its older versions, leftovers of an interrupted attempt), then the entry's
//! end. A crash anywhere leaves the entry pending; the next run takes it up from the lake as it
//! is (`Committer::converge_ledger`): every step looks at what the lake holds now, so doing it
//! twice changes nothing.

use std::collections::BTreeSet;

use object_store::path::Path;

use crate::lake::change::Change;
use crate::lake::commit::{CommitError, Committer};
use crate::lake::layout;
use crate::lake::ledger::{Changed, Decision, Done, Entry, Ledger};
use crate::lake::manifest::{FileEntry, WindowRecord};
use crate::lake::view::TableView;
use crate::plan::window::{Grid, Window};
use crate::table::encode::FinishedPart;
use crate::table::erase::{Erasure, Known, Names};
use crate::table::route::RoutedPart;
use crate::units::time::Timestamp;

/// A window whose files hold an erased user's records.
#[derive(Clone, Debug)]
pub struct Holding {
    pub window: Window,
    pub record: WindowRecord,
    /// The open window's record (its parts), not a marker.
    pub open: bool,
    /// The erased users' records in it.
    pub rows: u64,
}

/// What an erasure finds before it changes anything (what `erase --dry-run` prints).
#[derive(Debug, Default)]
pub struct ErasePlan {
    pub windows: Vec<Holding>,
    /// What the lake holds for the users: names and IP addresses (never printed).
    pub names: Names,
}

impl ErasePlan {
    /// The erased users' records, over every window.
    pub fn rows(&self) -> u64 {
        self.windows.iter().map(|w| w.rows).sum()
    }
}

impl Committer {
    /// Records `decision` for `reason` as the ledger's next entry, signed with the lake's key
    /// (if it has one), under the lease.
    pub async fn decide(&self, decision: Decision, reason: &str) -> Result<Entry, CommitError> {
        self.fence_check()?;
        let signer = self.signer.as_deref();
        let entry = Ledger::append(
            self.lake(),
            self.subdomain(),
            decision,
            reason,
            self.run_id(),
            signer,
            None,
        )
        .await?;
        Ok(entry)
    }

    /// Takes up the pending entries (an erasure or expiry a crash interrupted) of `ledger`, as
    /// the run trusts it (in a signed lake, only what its key signed), in order; returns how
    /// many.
    pub(crate) async fn converge_ledger(
        &self,
        grid: Grid,
        ledger: &Ledger,
    ) -> Result<u64, CommitError> {
        let mut converged = 0;
        for entry in ledger.pending() {
            tracing::warn!(
                entry = entry.seq,
                "an interrupted erasure or expiry is finished first"
            );
            match self.carry_out(grid, entry).await {
                Ok(_) => converged += 1,
                // A marker that does not parse: the entry stays pending (verify reports it, and
                // every write applies its erasure meanwhile) so that this run, a repair above
                // all, can mend the window; the next run finishes it.
                Err(CommitError::Unsettled { what }) => {
                    tracing::warn!(entry = entry.seq, %what, "an interrupted erasure or expiry waits for the lake to be repaired");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(converged)
    }

    /// Carries out `entry`'s decision on the lake as it is now, and records its end.
    pub async fn carry_out(&self, grid: Grid, entry: &Entry) -> Result<Done, CommitError> {
        let (windows, files_purged) = match &entry.decision {
            Decision::Erase { user_ids } => {
                let erasure = Erasure::new(user_ids.iter().copied());
                self.hold_erasure(&erasure);
                let plan = self.erase_plan(grid, &erasure).await?;
                let windows = self.erase(&plan, &erasure, entry.seq).await?;
                let purged = self.purge(grid, |_| true, Some(&erasure)).await?;
                (windows, purged)
            }
            Decision::Expire { before } => {
                let floor = before.seconds();
                let windows = self.expire(grid, floor, entry.seq).await?;
                let purged = self.purge(grid, |start| start < floor, None).await?;
                (windows, purged)
            }
        };
        let done = Done {
            seq: entry.seq,
            finished_at: Timestamp::now(),
            windows,
            files_purged,
            run_id: self.run_id().to_string(),
        };
        self.fence_check()?;
        Ledger::finish(self.lake(), self.subdomain(), &done).await?;
        Ok(done)
    }

    /// The table as it is now, every window of it; refuses one with a torn marker (which files
    /// are its cannot be told: `repair` first).
    async fn whole_view(&self, grid: Grid) -> Result<TableView, CommitError> {
        let generations = self.manifest().generations().await?;
        let view = self.view(grid, &generations, None).await?;
        if let Some(torn) = view.torn.values().next() {
            return Err(CommitError::Unsettled {
                what: format!(
                    "window {}'s marker does not parse ({})",
                    torn.span.id(),
                    torn.torn.reason
                ),
            });
        }
        Ok(view)
    }

    /// Every window holding a record of `erasure`'s users, and what the lake holds for them:
    /// each committed window's files and the open windows' parts are read (six columns).
    pub async fn erase_plan(
        &self,
        grid: Grid,
        erasure: &Erasure,
    ) -> Result<ErasePlan, CommitError> {
        let view = self.whole_view(grid).await?;
        let mut plan = ErasePlan::default();
        let closed = view.standing.iter().map(|(&start, marker)| {
            let span = marker.span().unwrap_or(Window {
                start,
                end: start + grid.seconds(),
            });
            (span, marker, false)
        });
        let open = view.open.iter().filter_map(|record| {
            let start = crate::units::time::parse_compact(&record.window)?;
            let span = record.span().unwrap_or(Window {
                start,
                end: start + grid.seconds(),
            });
            Some((span, record, true))
        });
        for (window, record, is_open) in closed.chain(open) {
            let mut rows = 0;
            for entry in &record.files {
                let mut file = self.fetch(entry).await?;
                let scan = erasure
                    .scan(&mut file)
                    .map_err(|e| unreadable(&entry.path, e))?;
                rows += scan.rows;
                plan.names.extend(scan.names);
            }
            if rows > 0 {
                plan.windows.push(Holding {
                    window,
                    record: record.clone(),
                    open: is_open,
                    rows,
                });
            }
        }
        Ok(plan)
    }

    /// Commits an erased copy of every window `plan` found: the next generation of a committed
    /// window (chained, with the files it replaced), or the open window's parts.
    async fn erase(
        &self,
        plan: &ErasePlan,
        erasure: &Erasure,
        ledger: u64,
    ) -> Result<Vec<Changed>, CommitError> {
        let user_ids: Vec<i64> = erasure.ids().iter().copied().collect();
        let mut changed = Vec::new();
        for holding in &plan.windows {
            let mut parts = Vec::with_capacity(holding.record.files.len());
            let mut rows_changed = 0;
            for (seq, entry) in holding.record.files.iter().enumerate() {
                let mut file = self.fetch(entry).await?;
                let part = match erasure
                    .rewrite(&mut file, &self.tmp_dir, &plan.names, &Known::new())
                    .map_err(|e| unreadable(&entry.path, e))?
                {
                    Some(erased) => {
                        rows_changed += erased.rows_changed;
                        erased.part
                    }
                    None => as_is(entry, file)?,
                };
                let day = day_of(&entry.path)?;
                let seq = u32::try_from(seq).expect("fewer than 2^32 files");
                parts.push(RoutedPart { day, seq, part });
            }
            let window = holding.window;
            if rows_changed == 0 {
                // Erased already (an erasure taken up again after a crash, or a user erased
                // before): the window stays as it is.
                continue;
            }
            let change = if holding.open {
                let first_seq = holding
                    .record
                    .files
                    .iter()
                    .filter_map(|f| {
                        let name = f.path.rsplit('/').next()?;
                        layout::parse_part_name(name).map(|p| p.seq + 1)
                    })
                    .max()
                    .unwrap_or(0);
                Change::erase_open(window, &holding.record, parts, first_seq)
            } else {
                Change::erase(
                    window,
                    &holding.record,
                    parts,
                    &user_ids,
                    ledger,
                    rows_changed,
                )
            };
            let (record, _) = self.commit(change).await?;
            tracing::info!(window = %window.id(), rows = rows_changed, generation = record.generation, "window erased");
            changed.push(Changed {
                window: window.id(),
                generation: record.generation,
                rows: rows_changed,
            });
        }
        Ok(changed)
    }

    /// Replaces the marker of every closed window ending at or before `floor` by a tombstone
    /// (its files go, with a chain link): windows whose marker names no file stay as they are.
    async fn expire(
        &self,
        grid: Grid,
        floor: i64,
        ledger: u64,
    ) -> Result<Vec<Changed>, CommitError> {
        let generations = self.manifest().generations().await?;
        let view = self.view(grid, &generations, None).await?;
        let mut expiring: Vec<(Window, WindowRecord)> = Vec::new();
        for (&start, marker) in &view.standing {
            let span = marker.span().unwrap_or(Window {
                start,
                end: start + grid.seconds(),
            });
            if span.end <= floor && !marker.expired && !marker.files.is_empty() {
                expiring.push((span, marker.clone()));
            }
        }
        for (&start, torn) in &view.torn {
            if torn.span.end <= floor {
                let generation = generations.get(&start).copied().unwrap_or(1);
                let mut placeholder = self.marker_to_replace(&torn.span, generation).await?;
                // Its marker does not say which files it had; the chain's latest link of the
                // window does, and the expire link must name what it replaced as that link did.
                if let Some(files) = self.chained_files(&torn.span).await? {
                    placeholder.rows = files.iter().map(|f| f.rows).sum();
                    placeholder.files = files;
                }
                expiring.push((torn.span, placeholder));
            }
        }
        // Open windows whose close failed, left behind the floor: their parts go too.
        let mut open = Vec::new();
        for record in &view.open {
            let span = record.span().filter(|s| s.end <= floor);
            if let Some(span) = span.filter(|_| !record.files.is_empty()) {
                open.push((span, record.clone()));
            }
        }
        let mut changed = Vec::new();
        for (window, record) in open {
            let (tombstone, _) = self
                .commit(Change::expire_open(window, &record, ledger))
                .await?;
            tracing::info!(window = %window.id(), rows = record.rows, "an open window left behind the floor expired");
            changed.push(Changed {
                window: window.id(),
                generation: tombstone.generation,
                rows: record.rows,
            });
        }
        for (window, marker) in expiring {
            let (record, _) = self.commit(Change::expire(window, &marker, ledger)).await?;
            tracing::info!(window = %window.id(), rows = marker.rows, "window expired");
            changed.push(Changed {
                window: window.id(),
                generation: record.generation,
                rows: marker.rows,
            });
        }
        Ok(changed)
    }

    /// Removes every part file of the subdomain that the table does not name now, that lies in
    /// a window starting where `within` says, and (given `erasure`) holds an erased user's
    /// record: older generations, files a Delta table keeps for its older versions (which then
    /// no longer read in full), leftovers of interrupted attempts. Returns how many went.
    async fn purge(
        &self,
        grid: Grid,
        within: impl Fn(i64) -> bool,
        erasure: Option<&Erasure>,
    ) -> Result<u64, CommitError> {
        let generations = self.manifest().generations().await?;
        let view = self.view(grid, &generations, None).await?;
        let named: BTreeSet<&str> = view
            .standing
            .values()
            .chain(view.open.iter())
            .flat_map(|r| r.files.iter().map(|f| f.path.as_str()))
            .collect();
        let torn: Vec<Window> = view.torn.values().map(|t| t.span).collect();
        let mut purged = 0;
        for path in self.lake().list(&layout::data(self.subdomain())).await? {
            let Some(start) = path
                .filename()
                .and_then(layout::parse_part_name)
                .and_then(|p| crate::units::time::parse_compact(p.window_id))
            else {
                continue;
            };
            let owned = torn.iter().any(|w| layout::is_part_of(&path, w));
            if named.contains(path.as_ref()) || owned || !within(start) {
                continue;
            }
            if let Some(erasure) = erasure {
                let Some(mut file) = self.lake().download(&path, &self.tmp_dir).await? else {
                    continue;
                };
                // A file that does not read holds nothing a reader sees: it goes too.
                if erasure.scan(&mut file).is_ok_and(|scan| scan.rows == 0) {
                    continue;
                }
            }
            self.fence_check()?;
            tracing::info!(path = %path, "removing a copy of data the ledger says must go");
            self.lake().delete(&path).await?;
            purged += 1;
        }
        Ok(purged)
    }

    /// The files the chain's latest link of `window` names, as a marker would (one read of
    /// every link: only for a window whose marker does not parse).
    async fn chained_files(&self, window: &Window) -> Result<Option<Vec<FileEntry>>, CommitError> {
        let id = window.id();
        let mut latest = None;
        for (_, path) in crate::lake::chain::links(self.lake(), self.subdomain()).await? {
            let Some(bytes) = self.lake().read(&path).await? else {
                continue;
            };
            if let Ok(link) = serde_json::from_slice::<crate::lake::chain::Digest>(&bytes) {
                if link.window == id {
                    latest = Some(link.files);
                }
            }
        }
        Ok(latest.map(|files| {
            files
                .into_iter()
                .map(|f| FileEntry {
                    path: f.path,
                    rows: f.rows,
                    bytes: 0,
                    stats: None,
                    sha256: Some(f.sha256),
                })
                .collect()
        }))
    }

    /// A file the table names, downloaded; missing is an error (`repair` first).
    async fn fetch(&self, entry: &FileEntry) -> Result<std::fs::File, CommitError> {
        let path = Path::from(entry.path.as_str());
        self.lake()
            .download(&path, &self.tmp_dir)
            .await?
            .ok_or_else(|| CommitError::Unsettled {
                what: format!("{} is missing", entry.path),
            })
    }
}

/// A file kept as it is, to be uploaded again under its new name.
fn as_is(entry: &FileEntry, mut file: std::fs::File) -> Result<FinishedPart, CommitError> {
    use std::io::{Read, Seek, SeekFrom};
    let local = |source| {
        CommitError::Storage(crate::lake::storage::StorageError::Local {
            path: entry.path.clone(),
            source,
        })
    };
    let sha256 = match &entry.sha256 {
        Some(sha) => sha.clone(),
        None => {
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes).map_err(local)?;
            crate::lake::chain::sha256_hex(&bytes)
        }
    };
    let bytes = file.seek(SeekFrom::End(0)).map_err(local)?;
    file.seek(SeekFrom::Start(0)).map_err(local)?;
    Ok(FinishedPart {
        file,
        rows: entry.rows,
        bytes,
        sha256,
        out_of_order: 0,
    })
}

/// The day partition a part file's path is in.
fn day_of(path: &str) -> Result<chrono::NaiveDate, CommitError> {
    let folder = path.rsplit_once('/').map_or("", |(folder, _)| folder);
    layout::parse_partition_day(folder).ok_or_else(|| CommitError::Unreadable {
        path: path.to_string(),
        reason: "not in a day partition".into(),
    })
}

fn unreadable(path: &str, e: crate::table::encode::PartError) -> CommitError {
    CommitError::Unreadable {
        path: path.to_string(),
        reason: e.to_string(),
    }
}
