//! The one sequence that commits any change, and its steps. Every step that writes or deletes
//! first checks the run's lease fence, so a run that lost its lease (paused past its expiry)
//! stops before it can touch another run's work.

use std::collections::BTreeSet;
use std::io::Seek;

use object_store::path::Path;

use super::{Change, ChangeKind, Target};
use crate::lake::chain::Evidence;
use crate::lake::commit::{ids_in_paths, ids_of_parts, CommitError, Committer};
use crate::lake::layout;
use crate::lake::manifest::{FileEntry, OpenState, RepairJournal, WindowRecord};
use crate::lake::storage::{Created, StorageError};
use crate::plan::window::Window;
use crate::table::encode::{FileStats, PartError};
use crate::table::erase::{Known, Names};
use crate::table::route::RoutedPart;
use crate::units::time::Timestamp;

/// What a change leaves of its span: its own files (`names`), and an open window's earlier parts.
fn kept_of(names: &[Path], target: &Target) -> Vec<FileEntry> {
    let mut keep: Vec<FileEntry> = names.iter().map(named_only).collect();
    if let Target::Open {
        previous: Some(previous),
        ..
    } = target
    {
        keep.extend(previous.files.iter().cloned());
    }
    keep
}

/// A file known only by its path (the change's own, not uploaded yet): what a sweep keeps.
fn named_only(path: &Path) -> FileEntry {
    FileEntry {
        path: path.to_string(),
        rows: 0,
        bytes: 0,
        stats: None,
        sha256: None,
    }
}

impl Committer {
    /// Commits `change`, in the one order every change takes:
    /// 0. before anything is written, for a change that fetched records again (not a
    ///    rearrangement): the files its sweep would remove hold no record that neither its own
    ///    parts nor another file of the table hold ([`CommitError::WouldDrop`] otherwise);
    /// 1. a journal, where the change replaces files readers see (a committed generation, the
    ///    open window's parts, what the Delta log holds of the span), so that a crash at any
    ///    later step is converged from it;
    /// 2. the change's files, uploaded under their names (of their generation, or of the
    ///    increment);
    /// 3. the digest chain's link (a marker's change);
    /// 4. the fence, then the marker, created if absent (or `open.json`, written);
    /// 5. the Delta log's commit, `dataChange` as the change's kind says;
    /// 6. the sweep of the span's other files (what it replaced, leftovers of attempts killed);
    /// 7. the journal's end.
    ///
    /// Returns the record as written, and whether this change's marker was created: a first
    /// export whose marker another run created first is `AlreadyExisted` (that marker stands);
    /// a next generation another run wrote first is [`CommitError::Conflict`].
    pub async fn commit(&self, change: Change) -> Result<(WindowRecord, Created), CommitError> {
        let Change {
            span,
            kind,
            target,
            mut parts,
            reason,
            evidence,
        } = change;
        let replaced = self.replaced_by(&span, &target).await;
        if kind.applies_ledger() {
            let held = self.held_of(&span, &target, &replaced).await;
            self.apply_ledger(&span, &mut parts, &held).await?;
        }
        let generation = target.generation();
        let journaled = !replaced.is_empty() || matches!(target, Target::Next { .. });
        let operation = Change::operation_of(&target, kind, !replaced.is_empty());
        let names = self.names(&span, &target, &parts);
        let plan = self.sweep_plan(&span, &kept_of(&names, &target)).await?;
        if kind.keeps_every_record() {
            // Records made anew in place of files: none the lake holds may go. Checked
            // before anything is written, so that a refused change leaves nothing behind.
            self.keeps_every_record(&span, &mut parts, &plan).await?;
        }
        let from_generation = generation - 1;
        if journaled {
            let reason = reason.clone().unwrap_or_default();
            self.journal(&span, from_generation, generation, &reason, kind)
                .await?;
        }
        let files = self.upload(names, parts).await?;
        if let Target::Open {
            previous,
            covered_to,
            ..
        } = target
        {
            let opened = (previous.as_ref(), covered_to);
            return self
                .commit_open(&span, opened, files, operation, kind)
                .await;
        }
        if !journaled {
            // Nothing readers see is replaced: what is left of earlier attempts goes first, so
            // that the marker finds the window exactly as it names it.
            self.sweep_planned(&span, plan).await?;
        }
        let mut record = self.marker(&span, files);
        record.generation = generation;
        record.expired = kind == ChangeKind::Expire;
        if let Target::Next { .. } = target {
            record.reason.clone_from(&reason);
        }
        let replaces = (generation > 1).then_some(from_generation);
        self.chain_link(&record, replaces, evidence.as_ref())
            .await?;
        self.fence_check()?;
        let created = self.create_marker(&span, &record).await?;
        if created == Created::AlreadyExisted {
            return match target {
                // Another run's marker stands (its files, not these, may be what the log should
                // hold): a journal stays, and the next run converges the window to that marker.
                Target::First => Ok((record, created)),
                _ => Err(CommitError::Conflict {
                    window: span.id(),
                    generation,
                }),
            };
        }
        self.log_window(&span, &record.files, operation, reason.as_deref(), kind)
            .await?;
        if journaled {
            self.sweep(&span, &record.files).await?;
            self.fence_check()?;
            self.manifest().end_repair(&span).await?;
        }
        Ok((record, created))
    }

    /// What the lake holds of the change's span already, from which erased values are kept:
    /// the files the change replaces, and an open window's parts (an increment exported again
    /// from the window's start holds the records of the parts it replaces). Data the lake's owner
    /// erased never comes back, even where the API still serves it.
    async fn held_of(
        &self,
        span: &Window,
        target: &Target,
        replaced: &[FileEntry],
    ) -> Vec<FileEntry> {
        let mut held = replaced.to_vec();
        if let Target::Open { .. } = target {
            let id = span.id();
            let open = self.open_records().await;
            held.extend(
                open.into_iter()
                    .filter(|o| o.window == id)
                    .flat_map(|o| o.files),
            );
        }
        held
    }

    /// Step 4 onwards for an increment of the open window (uploaded as `files`, beside the
    /// parts of `previous`, complete up to `covered_to`): `open.json`, the log's commit, the
    /// sweep. No marker, no link, no journal.
    async fn commit_open(
        &self,
        span: &Window,
        (previous, covered_to): (Option<&WindowRecord>, Option<i64>),
        files: Vec<FileEntry>,
        operation: &'static str,
        kind: ChangeKind,
    ) -> Result<(WindowRecord, Created), CommitError> {
        let record = self.record_open(span, previous, files, covered_to).await?;
        self.log_window(span, &record.files, operation, None, kind)
            .await?;
        self.sweep(span, &record.files).await?;
        Ok((record, Created::Created))
    }

    /// Creates the marker (after the fence), counting as ours a create the store applied but
    /// answered with an error, retried; then the window is no longer open.
    async fn create_marker(
        &self,
        span: &Window,
        record: &WindowRecord,
    ) -> Result<Created, CommitError> {
        let mut created = self.manifest().commit(span, record).await?;
        if created == Created::AlreadyExisted && self.is_own_marker(span, record).await? {
            // A create the store applied but answered with an error, retried: this very one.
            created = Created::Created;
        }
        self.closed(span).await;
        Ok(created)
    }

    /// The files readers see of the change's span that it replaces: the current generation's
    /// (a next generation), the open window's parts (a close), and what the Delta log holds of
    /// the span.
    async fn replaced_by(&self, span: &Window, target: &Target) -> Vec<FileEntry> {
        let mut replaced = match target {
            Target::Open { .. } => return Vec::new(),
            Target::Next { replaces } => replaces.files.clone(),
            Target::First => {
                let open = self.open_records().await;
                let id = span.id();
                open.into_iter()
                    .filter(|o| o.window == id)
                    .flat_map(|o| o.files)
                    .collect()
            }
        };
        if let Some(log) = self.delta() {
            replaced.extend(log.logged(span));
        }
        replaced
    }

    /// Journals a change of a committed window's files (a repair, a close that compacts), so
    /// that a run that finds the journal converges the window to its current marker.
    async fn journal(
        &self,
        window: &Window,
        from_generation: u32,
        to_generation: u32,
        reason: &str,
        kind: ChangeKind,
    ) -> Result<(), CommitError> {
        self.fence_check()?;
        let journal = RepairJournal {
            window: window.id(),
            from_generation,
            to_generation,
            reason: reason.to_string(),
            started_at: Timestamp::now(),
            data_change: Some(kind.changes_data()),
        };
        self.manifest().begin_repair(window, &journal).await?;
        Ok(())
    }

    /// Records the open window `window` as the parts of `previous` (its record so far) plus
    /// `files`, complete up to `covered_to`, beside the records of the other open windows
    /// (one whose close failed keeps its parts).
    async fn record_open(
        &self,
        window: &Window,
        previous: Option<&WindowRecord>,
        files: Vec<FileEntry>,
        covered_to: Option<i64>,
    ) -> Result<WindowRecord, CommitError> {
        let mut all = previous.map_or_else(Vec::new, |p| p.files.clone());
        all.extend(files);
        let mut record = self.marker(window, all);
        record.covered_to = covered_to.map(Timestamp::from_seconds);
        let mut open = self.open.lock().await;
        let mut windows: Vec<WindowRecord> = open
            .iter()
            .filter(|o| o.window != record.window)
            .cloned()
            .collect();
        windows.push(record.clone());
        // The newest window is `latest` (the one the run's increments grow; an erasure may rewrite
        // an older one whose close failed). Window ids sort as their starts.
        windows.sort_by(|a, b| b.window.cmp(&a.window));
        let latest = windows.remove(0);
        let state = OpenState {
            latest,
            earlier: windows,
        };
        self.fence_check()?;
        self.manifest().record_open(&state).await?;
        *open = state.windows();
        Ok(record)
    }

    /// Appends the digest of `record` (the marker about to be created) to the chain, before the
    /// marker: `replaces` the generation a repair replaces.
    pub(crate) async fn chain_link(
        &self,
        record: &WindowRecord,
        replaces: Option<u32>,
        evidence: Option<&Evidence>,
    ) -> Result<(), CommitError> {
        let mut chain = self.chain.lock().await;
        if chain.is_none() {
            *chain = Some(crate::lake::chain::Head::read(self.lake(), self.subdomain()).await?);
        }
        self.fence_check()?;
        let head = chain.as_mut().expect("read above");
        let appended = head
            .append(
                self.lake(),
                self.subdomain(),
                record,
                replaces,
                evidence,
                self.signer.as_deref(),
            )
            .await;
        if appended.is_err() {
            // Whether the link's create applied is unknown: the next append reads the head.
            *chain = None;
        }
        appended?;
        Ok(())
    }

    /// Commits a window's files as they now are to the Delta log, if there is one (after the
    /// marker or the open window's record: the log follows them, see [`crate::lake::delta`]).
    pub(crate) async fn log_window(
        &self,
        window: &Window,
        files: &[FileEntry],
        operation: &'static str,
        reason: Option<&str>,
        kind: ChangeKind,
    ) -> Result<(), CommitError> {
        if let Some(log) = self.delta() {
            self.fence_check()?;
            log.commit_window(window, files, operation, reason, !kind.changes_data())
                .await?;
        }
        Ok(())
    }

    /// A marker of this run's for `window` naming `files`.
    pub(crate) fn marker(&self, window: &Window, files: Vec<FileEntry>) -> WindowRecord {
        let mut record = WindowRecord::new(window, files);
        record.run_id = self.run_id().to_string();
        record
    }

    /// Whether the marker of `record`'s generation that the store already holds is this very
    /// record (a create that applied but whose answer was lost, then retried): same run, same
    /// files.
    async fn is_own_marker(
        &self,
        window: &Window,
        record: &WindowRecord,
    ) -> Result<bool, CommitError> {
        let existing = self.manifest().marker(window, record.generation).await?;
        Ok(existing.is_some_and(|e| {
            !e.run_id.is_empty() && e.run_id == record.run_id && e.files == record.files
        }))
    }

    /// The names of a change's parts in `window`: a generation's, or an increment's (numbered from
    /// its first sequence number).
    fn names(&self, window: &Window, target: &Target, parts: &[RoutedPart]) -> Vec<Path> {
        let subdomain = self.subdomain();
        parts
            .iter()
            .map(|part| match target {
                Target::Open {
                    from, first_seq, ..
                } => layout::increment_part_file(
                    subdomain,
                    part.day,
                    window,
                    *from,
                    first_seq + part.seq,
                ),
                Target::First => layout::part_file(subdomain, part.day, window, 1, part.seq),
                Target::Next { replaces } => {
                    let generation = replaces.generation + 1;
                    layout::part_file(subdomain, part.day, window, generation, part.seq)
                }
            })
            .collect()
    }

    /// Applies the erasure ledger to a change's `parts` before they are written: each that
    /// holds an erased user's records is rewritten without their data (`table/erase.rs`). A
    /// record the lake already holds (in `replaced`, the files the change replaces: a repair, a
    /// recheck, a close) keeps the lake's erased values, made with every name the lake held
    /// when it was erased; a new record's names are taken from the parts themselves. Nothing is
    /// read when the ledger is empty.
    async fn apply_ledger(
        &self,
        window: &Window,
        parts: &mut [RoutedPart],
        replaced: &[FileEntry],
    ) -> Result<(), CommitError> {
        let erasure = self.erasure();
        if erasure.is_empty() || parts.is_empty() {
            return Ok(());
        }
        let unreadable = |e: PartError| CommitError::Unreadable {
            path: format!("the new files of window {}", window.id()),
            reason: e.to_string(),
        };
        let mut names = Names::default();
        let mut holding = Vec::new();
        for (i, part) in parts.iter_mut().enumerate() {
            let scan = erasure.scan(&mut part.part.file).map_err(unreadable)?;
            if scan.rows > 0 {
                holding.push(i);
                names.extend(scan.names);
            }
        }
        if holding.is_empty() {
            return Ok(());
        }
        let mut known = Known::new();
        for entry in replaced {
            let path = Path::from(entry.path.as_str());
            // A file that is gone or unreadable holds nothing to keep (a repair's reason).
            if let Some(mut file) = self.lake().download(&path, &self.tmp_dir).await? {
                if let Ok(held) = erasure.known(&mut file) {
                    known.extend(held);
                }
            }
        }
        let mut rows = 0;
        for i in holding {
            let part = &mut parts[i];
            if let Some(erased) = erasure
                .rewrite(&mut part.part.file, &self.tmp_dir, &names, &known)
                .map_err(unreadable)?
            {
                rows += erased.rows_changed;
                part.part = erased.part;
            }
        }
        if rows > 0 {
            tracing::info!(window = %window.id(), rows, "records of erased users written erased, as the erasure ledger says");
        }
        Ok(())
    }

    /// Uploads `parts` under `names` (one each): a generation's files sorted by path, an increment's
    /// in the order they were made.
    async fn upload(
        &self,
        names: Vec<Path>,
        parts: Vec<RoutedPart>,
    ) -> Result<Vec<FileEntry>, CommitError> {
        let increment = names
            .first()
            .and_then(|p| p.filename().and_then(layout::parse_part_name))
            .is_some_and(|p| p.increment_from.is_some());
        let mut files = Vec::with_capacity(parts.len());
        for (path, part) in names.into_iter().zip(parts) {
            files.push(self.upload_one(path, part).await?);
        }
        if !increment {
            files.sort_by(|a, b| a.path.cmp(&b.path));
        }
        Ok(files)
    }

    /// Uploads one part to `path`, fenced before and after.
    async fn upload_one(&self, path: Path, part: RoutedPart) -> Result<FileEntry, CommitError> {
        self.fence_check()?;
        let mut file = part.part.file;
        let sha256 = Some(part.part.sha256);
        let stats = FileStats::of(&file);
        // Reading the footer moved the file's offset (a clone of its handle shares it).
        file.seek(std::io::SeekFrom::Start(0))
            .map_err(|source| StorageError::Local {
                path: path.to_string(),
                source,
            })?;
        self.lake().upload_file(&path, file).await?;
        // An upload can outlast the fence's margin: stop before building on it.
        self.fence_check()?;
        Ok(FileEntry {
            path: path.to_string(),
            rows: part.part.rows,
            bytes: part.part.bytes,
            stats,
            sha256,
        })
    }

    /// What the sweep of `window` keeping `keep` would remove (the window's part files of any
    /// generation or attempt that `keep` does not name, but those a Delta table keeps for its
    /// older versions), and the other part files of the table in its day partitions: one
    /// listing per day.
    async fn sweep_plan(
        &self,
        window: &Window,
        keep: &[FileEntry],
    ) -> Result<SweepPlan, CommitError> {
        let kept: BTreeSet<&str> = keep.iter().map(|f| f.path.as_str()).collect();
        let mut plan = SweepPlan::default();
        for day in window.days() {
            let partition = layout::partition(self.subdomain(), day);
            for path in self.lake().list(&partition).await? {
                let is_part = path.filename().and_then(layout::parse_part_name).is_some();
                if kept.contains(path.as_ref()) || !is_part && !layout::is_part_of(&path, window) {
                    continue;
                }
                if !layout::is_part_of(&path, window) {
                    if self.delta().is_none_or(|log| log.holds(path.as_ref())) {
                        plan.others.push(path);
                    }
                } else if self.retains(&path) {
                    tracing::debug!(path = %path, window = %window.id(), "keeping a part the Delta log removed, for its older versions");
                } else {
                    plan.doomed.push(path);
                }
            }
        }
        Ok(plan)
    }

    /// Fails with [`CommitError::WouldDrop`] when `plan` (the sweep of `window` once the change's
    /// `parts` are in) would remove a record that neither `parts` nor another file of the table
    /// in the window's day partitions holds: a change that fetched records again never drops one
    /// the lake holds because the API stopped serving it, whatever its seconds. Nothing is read
    /// when the sweep removes nothing; otherwise the files it removes are, then the parts, then,
    /// for what they lack, the table's other part files there (a repair's, a close's cost).
    /// Files that do not read are passed over: nothing can be saved of them.
    async fn keeps_every_record(
        &self,
        window: &Window,
        parts: &mut [RoutedPart],
        plan: &SweepPlan,
    ) -> Result<(), CommitError> {
        if plan.doomed.is_empty() {
            return Ok(());
        }
        let mut held = ids_in_paths(self.lake(), &plan.doomed).await?;
        let fresh = ids_of_parts(parts).map_err(|e| CommitError::Unreadable {
            path: format!("the new files of window {}", window.id()),
            reason: e.to_string(),
        })?;
        held.retain(|id| !fresh.contains(id));
        // Only what the change's own files lack is looked for in the table's other files.
        if !held.is_empty() {
            for id in ids_in_paths(self.lake(), &plan.others).await? {
                held.remove(&id);
            }
        }
        match held.len() as u64 {
            0 => Ok(()),
            dropped => Err(CommitError::WouldDrop {
                window: window.id(),
                dropped,
            }),
        }
    }

    /// Removes every part of `window` (of any generation, by any attempt) that `keep` does not
    /// name, and the staging leftovers of the window's writes; a Delta table's older versions
    /// keep the parts its log removed, for its retention (`retention.rs`). Returns how many were
    /// removed.
    pub(crate) async fn sweep(
        &self,
        window: &Window,
        keep: &[FileEntry],
    ) -> Result<u64, CommitError> {
        let plan = self.sweep_plan(window, keep).await?;
        self.sweep_planned(window, plan).await
    }

    /// Removes what `plan` dooms, and the staging leftovers of `window`'s writes.
    async fn sweep_planned(&self, window: &Window, plan: SweepPlan) -> Result<u64, CommitError> {
        let mut removed = 0;
        for path in plan.doomed {
            self.fence_check()?;
            tracing::info!(path = %path, window = %window.id(), "removing a part this window no longer names");
            self.lake().delete(&path).await?;
            removed += 1;
        }
        for day in window.days() {
            let partition = layout::partition(self.subdomain(), day);
            for staged in self.lake().staging_leftovers(&partition)? {
                let name = staged.rsplit('/').next().unwrap_or(&staged);
                let of_window = layout::staging_target(name)
                    .is_some_and(|target| layout::is_part_of(&Path::from(target), window));
                if of_window {
                    self.fence_check()?;
                    tracing::info!(path = %staged, window = %window.id(), "removing the staging leftover of an interrupted write");
                    self.lake().remove_staging(&staged)?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

/// What a sweep removes, and the table's other part files beside it.
#[derive(Default)]
struct SweepPlan {
    doomed: Vec<Path>,
    others: Vec<Path>,
}
