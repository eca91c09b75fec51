//! Every change of the lake goes one way.
//!
//! A change is one value ([`Change`]), built by the stage that knows what it wants (a window's
//! first export, an increment of the open window, its close, a day's compaction, a repair), then
//! committed once by [`Committer::commit`], the way delta-kernel-rs builds a `Transaction` and
//! commits it with a typed outcome. A change says:
//! - the span of windows it covers (a grid window, or a compacted day);
//! - what it writes: the first marker of a closed window, the next generation of a committed
//!   one (replacing the current), or the open window's record;
//! - its files (encoded, uploaded by the commit) and, by its target, the files it replaces;
//! - its kind ([`ChangeKind`]): whether records come or go, or are only rearranged.
//!
//! **One sequence commits any change** (`steps.rs`): a guard that no record the lake holds is
//! dropped by a change that fetched records again; a journal where the change replaces files
//! readers see; the uploads; the digest chain's link; the lease's fence; the marker (or
//! `open.json`); the Delta log's commit (`dataChange` as its kind says); the sweep of what it
//! replaced; the journal's end. **One routine converges any change a crash interrupted**
//! (`converge.rs`), from its journal, the same for every kind: the window's current marker
//! stands, the log is brought to it, the rest is swept. Adding a kind of change (erasure,
//! expiry) adds a constructor, not a sequence.
//!
//! [`Committer::commit`]: crate::lake::Committer::commit

mod converge;
mod steps;

use crate::lake::chain::{ChainedFile, Evidence, LinkKind};
use crate::lake::manifest::WindowRecord;
use crate::plan::window::Window;
use crate::table::route::RoutedPart;

/// What a change of a window's files does to the table's records: every change says it, so
/// that the Delta log (a change feed) says `dataChange` only where records come or go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    /// New records: a window's first export, an increment of the open window.
    Append,
    /// The same records in other files: a close that compacts the open window's parts, a
    /// day's compaction.
    Rearrange,
    /// Records re-exported from Zendesk in place of the window's files (a repair, a recheck's
    /// repair, a close that fetched its window whole again).
    Repair,
    /// The same records with some users' data erased (`auditlake erase`): same rows, same
    /// order, other values.
    Erase,
    /// The window removed for the lake's retention (`auditlake expire`): its records go on
    /// purpose.
    Expire,
}

impl ChangeKind {
    /// Whether records come or go, or change (the Delta log's `dataChange`).
    pub fn changes_data(self) -> bool {
        self != ChangeKind::Rearrange
    }

    /// Whether the commit checks that the change keeps every record the lake holds: every kind
    /// whose files are made anew (an expiry removes records on purpose; a rearrangement is
    /// joined from the lake's own files).
    pub fn keeps_every_record(self) -> bool {
        matches!(
            self,
            ChangeKind::Append | ChangeKind::Repair | ChangeKind::Erase
        )
    }

    /// Whether the commit applies the erasure ledger to the change's files before it writes
    /// them: every kind but an erasure (its files are the ledger applied) and an expiry (it
    /// writes none).
    pub fn applies_ledger(self) -> bool {
        !matches!(self, ChangeKind::Erase | ChangeKind::Expire)
    }
}

/// What a change writes.
#[derive(Clone, Debug)]
pub(crate) enum Target {
    /// The first marker of a closed window (generation 1): it replaces the window's open parts,
    /// if it had any.
    First,
    /// The next generation of a committed window, replacing `replaces` (its current marker, or
    /// a placeholder for one that is missing or does not parse).
    Next { replaces: WindowRecord },
    /// An increment of the open window: its records from `from`, complete up to `covered_to`, as
    /// parts of their own beside those of `previous` (never rewritten). `covered_to` is `None`
    /// only for an erasure of a record that has none (one rebuilt, or exported whole before
    /// increments): it stays a record that the next run exports again from the window's start.
    Open {
        previous: Option<WindowRecord>,
        from: i64,
        covered_to: Option<i64>,
        /// The first sequence number of the increment's parts: past those of an earlier export of
        /// the same increment whose parts it replaces (a window started over), so that no file a
        /// Delta log names is rewritten under its name.
        first_seq: u32,
    },
}

impl Target {
    /// The generation the change writes: the next of the one it replaces, else the first.
    pub(crate) fn generation(&self) -> u32 {
        match self {
            Target::Next { replaces } => replaces.generation + 1,
            _ => 1,
        }
    }
}

/// One change of the lake, built, then committed once.
#[derive(Debug)]
pub struct Change {
    pub(crate) span: Window,
    pub(crate) kind: ChangeKind,
    pub(crate) target: Target,
    pub(crate) parts: Vec<RoutedPart>,
    pub(crate) reason: Option<String>,
    /// What an erasure's or an expiry's chain link adds.
    pub(crate) evidence: Option<Evidence>,
}

impl Change {
    /// A closed window's first export: `parts` are its records, new to the table.
    pub fn append(window: Window, parts: Vec<RoutedPart>) -> Change {
        Change {
            span: window,
            kind: ChangeKind::Append,
            target: Target::First,
            parts,
            reason: None,
            evidence: None,
        }
    }

    /// The close of the open window: `parts` are the window's final files, compacted from its
    /// parts (rearranged) or fetched whole in their place (a repair).
    pub fn close(window: Window, parts: Vec<RoutedPart>, kind: ChangeKind) -> Change {
        let reason = match kind {
            ChangeKind::Rearrange => "the open window closed: its parts compacted",
            _ => "the open window closed: fetched whole in place of its parts",
        };
        Change {
            span: window,
            kind,
            target: Target::First,
            parts,
            reason: Some(reason.into()),
            evidence: None,
        }
    }

    /// An increment of the open window (cut at the run's `until`): its records of
    /// `[from, covered_to)` added to `previous`, its record so far.
    pub fn increment(
        window: Window,
        previous: Option<&WindowRecord>,
        from: i64,
        covered_to: i64,
        parts: Vec<RoutedPart>,
    ) -> Change {
        Change {
            span: window,
            kind: ChangeKind::Append,
            target: Target::Open {
                previous: previous.cloned(),
                from,
                covered_to: Some(covered_to),
                first_seq: 0,
            },
            parts,
            reason: None,
            evidence: None,
        }
    }

    /// The increment, its parts numbered from `first_seq` on (a window started over: past the parts
    /// of the increment it replaces).
    pub fn numbered_from(mut self, first: u32) -> Change {
        if let Target::Open { first_seq, .. } = &mut self.target {
            *first_seq = first;
        }
        self
    }

    /// A repair of a committed window (`current` its marker): `parts`, re-exported from
    /// Zendesk, become its next generation.
    pub fn repair(
        window: Window,
        current: &WindowRecord,
        parts: Vec<RoutedPart>,
        reason: &str,
    ) -> Change {
        Change {
            span: window,
            kind: ChangeKind::Repair,
            target: Target::Next {
                replaces: current.clone(),
            },
            parts,
            reason: Some(reason.into()),
            evidence: None,
        }
    }

    /// A closed day's compaction (see `run/compact.rs`): `parts`, the records of every window
    /// of `day` joined from their files, become the next generation of the day's first window
    /// (`first` is its current marker), under a marker that spans the whole day.
    pub fn compaction(
        day: Window,
        first: &WindowRecord,
        parts: Vec<RoutedPart>,
        reason: &str,
    ) -> Change {
        Change {
            span: day,
            kind: ChangeKind::Rearrange,
            target: Target::Next {
                replaces: first.clone(),
            },
            parts,
            reason: Some(reason.into()),
            evidence: None,
        }
    }

    /// An erasure of a committed window (`current` its marker): `parts`, its files with the
    /// ledger entry `ledger`'s users erased (one for each of `current`'s, in order), become its
    /// next generation; `rows_changed` of their rows differ.
    pub fn erase(
        window: Window,
        current: &WindowRecord,
        parts: Vec<RoutedPart>,
        user_ids: &[i64],
        ledger: u64,
        rows_changed: u64,
    ) -> Change {
        Change {
            span: window,
            kind: ChangeKind::Erase,
            target: Target::Next {
                replaces: current.clone(),
            },
            parts,
            reason: Some(format!("erase: ledger entry {ledger}")),
            evidence: Some(Evidence {
                kind: LinkKind::Erase,
                user_ids: user_ids.to_vec(),
                replaced: ChainedFile::replaced(&current.files),
                rows_changed,
                ledger,
            }),
        }
    }

    /// An erasure of the open window's parts (`record` its record so far): `parts`, its parts
    /// with the users erased, in order, replace them, numbered from `first_seq` (past the old
    /// ones, so that no name the Delta log holds is rewritten). Open parts are not chained.
    pub fn erase_open(
        window: Window,
        record: &WindowRecord,
        parts: Vec<RoutedPart>,
        first_seq: u32,
    ) -> Change {
        Change {
            span: window,
            kind: ChangeKind::Erase,
            target: Target::Open {
                previous: None,
                from: window.start,
                covered_to: record.covered_to(),
                first_seq,
            },
            parts,
            reason: None,
            evidence: None,
        }
    }

    /// The expiry of a committed window (`current` its marker) under the retention decided by
    /// ledger entry `ledger`: its next generation is a tombstone naming no files.
    pub fn expire(window: Window, current: &WindowRecord, ledger: u64) -> Change {
        Change {
            span: window,
            kind: ChangeKind::Expire,
            target: Target::Next {
                replaces: current.clone(),
            },
            parts: Vec::new(),
            reason: Some(format!("expire: ledger entry {ledger}")),
            evidence: Some(Evidence {
                kind: LinkKind::Expire,
                user_ids: Vec::new(),
                replaced: ChainedFile::replaced(&current.files),
                rows_changed: current.rows,
                ledger,
            }),
        }
    }

    /// The expiry of an open window that never closed (one whose close failed, left behind
    /// the retention floor): its first marker is a tombstone, and its parts (`record`'s) go.
    pub fn expire_open(window: Window, record: &WindowRecord, ledger: u64) -> Change {
        Change {
            span: window,
            kind: ChangeKind::Expire,
            target: Target::First,
            parts: Vec::new(),
            reason: Some(format!("expire: ledger entry {ledger}")),
            evidence: Some(Evidence {
                kind: LinkKind::Expire,
                user_ids: Vec::new(),
                replaced: ChainedFile::replaced(&record.files),
                rows_changed: record.rows,
                ledger,
            }),
        }
    }

    /// What the Delta log's `commitInfo` calls a change of `target` and `kind`; `replaces`
    /// whether it replaces files readers see.
    pub(crate) fn operation_of(target: &Target, kind: ChangeKind, replaces: bool) -> &'static str {
        match (target, kind) {
            (_, ChangeKind::Erase) => "UPDATE",
            (_, ChangeKind::Expire) => "DELETE",
            (Target::Open { .. }, _) => "STREAMING UPDATE",
            (Target::First, _) if !replaces => "WRITE",
            (_, ChangeKind::Rearrange) => "OPTIMIZE",
            _ => "REPAIR",
        }
    }
}
