//! The Delta log against the markers, for a lake in table format `delta`: every file the markers
//! (and the open window) name is in the log's latest snapshot, with the size the lake holds, and
//! the log names no other file of the subdomain. A repair, like any run, converges the log to the
//! markers in one commit. The files the log removed within the table's retention are its older
//! versions' (time travel), not strays.

use std::collections::{BTreeMap, HashMap};

use super::{Check, Kind, Retained};
use crate::lake::delta::{DeltaError, DeltaLog, LogSnapshot};
use crate::lake::manifest::{compaction_day, FileEntry};
use crate::plan::window::{format_compact, Window};

impl Check<'_> {
    /// Reads the log's latest snapshot, and takes out of `listing` (path → size) the files it
    /// removed within its retention that no marker names: they are kept for its older versions.
    pub(super) async fn read_log(
        &mut self,
        listing: &mut HashMap<String, u64>,
    ) -> Result<LogSnapshot, DeltaError> {
        let snapshot = DeltaLog::new(self.lake, self.subdomain, "verify")
            .snapshot()
            .await?;
        self.widen_unreadable_days(&snapshot);
        let named = self.named();
        let now = chrono::Utc::now().timestamp_millis();
        let mut files = 0;
        for path in snapshot.removed.kept(now) {
            if !named.contains(path) && listing.remove(path).is_some() {
                files += 1;
            }
        }
        self.retained = Some(Retained {
            files,
            retention_seconds: snapshot.removed.period.as_secs(),
        });
        Ok(snapshot)
    }

    /// An unreadable marker that may be a compacted day's stands for the whole day, as the run's
    /// convergence of the log counts it (`lake/state.rs`): one that `manifest::compaction_day`
    /// allows, where the log holds none of the files of the day's other windows' markers. Those
    /// markers are then history (their files are kept for older versions, or expired, and may
    /// miss what the day's later generations added): `repair` re-exports the day whole.
    fn widen_unreadable_days(&mut self, snapshot: &LogSnapshot) {
        let committed = |s: i64| {
            self.markers.contains_key(&s)
                || self.covered.contains(&s)
                || self.unreadable.contains_key(&s)
        };
        let candidates: Vec<Window> = self
            .unreadable
            .iter()
            .filter_map(|(&start, &generation)| {
                compaction_day(self.grid, start, generation, committed)
            })
            .collect();
        for whole in candidates {
            let start = whole.start;
            // A compacted day's windows' files are no longer the log's (their removes kept, or
            // expired).
            let current = self
                .markers
                .range(start + 1..whole.end)
                .flat_map(|(_, m)| &m.files)
                .any(|f| snapshot.files.contains_key(&f.path));
            if current {
                continue;
            }
            self.unreadable_days.insert(start, whole.end);
            self.cover_inside(start, whole.end);
        }
    }

    /// The windows of the day `(start, end)` (its first excepted) become history: their markers,
    /// readable or not, stand for nothing once the day's is taken to span them.
    fn cover_inside(&mut self, start: i64, end: i64) {
        let inside: Vec<i64> = self
            .markers
            .range(start + 1..end)
            .map(|(&s, _)| s)
            .chain(self.unreadable.range(start + 1..end).map(|(&s, _)| s))
            .collect();
        for window in inside {
            self.markers.remove(&window);
            if self.unreadable.remove(&window).is_some() {
                let id = Some(format_compact(window));
                self.findings
                    .retain(|f| !(f.kind == Kind::CorruptManifest && f.window == id));
            }
            self.covered.insert(window);
        }
    }

    /// Compares the log's files for the subdomain (`snapshot`, as [`Check::read_log`] read it)
    /// with the markers' and the lake's `listing` (path → size).
    pub(super) fn delta_log(
        &mut self,
        snapshot: Result<LogSnapshot, DeltaError>,
        listing: &HashMap<String, u64>,
    ) {
        let snapshot = match snapshot {
            Ok(snapshot) => snapshot,
            Err(e) => {
                self.found(
                    Kind::LogDisagrees,
                    None,
                    Some("audit_logs/_delta_log".into()),
                    format!("the Delta log does not read: {e}"),
                );
                return;
            }
        };
        let named: BTreeMap<String, (String, FileEntry)> = self
            .markers
            .values()
            .chain(self.open.as_ref())
            .flat_map(|r| {
                r.files
                    .iter()
                    .map(|f| (f.path.clone(), (r.window.clone(), f.clone())))
            })
            .collect();
        let unreadable: Vec<String> = self
            .unreadable
            .keys()
            .map(|&start| self.window(start).id())
            .collect();
        let mut findings = Vec::new();
        for (path, (window, file)) in &named {
            if let Some(detail) = disagreement(&snapshot, file, listing) {
                findings.push((Some(window.clone()), path.clone(), detail));
            }
        }
        for path in snapshot.files.keys() {
            if !listing.contains_key(path) {
                self.found(
                    Kind::LogDisagrees,
                    None,
                    Some(path.clone()),
                    format!("the Delta log (version {}) names a file the lake does not hold: Delta readers fail on it", snapshot.version),
                );
                continue;
            }
            let of_unreadable = unreadable
                .iter()
                .any(|w| path.contains(&format!("part-{w}-")));
            if !named.contains_key(path) && !of_unreadable {
                self.found(
                    Kind::LogDisagrees,
                    None,
                    Some(path.clone()),
                    format!("the Delta log (version {}) names the file, no marker does: Delta readers count what the lake does not hold", snapshot.version),
                );
            }
        }
        for (window, path, detail) in findings {
            self.found(Kind::LogDisagrees, window, Some(path), detail);
        }
    }
}

/// How the log's record of a file a marker names differs from the marker and the lake's
/// `listing`, if it does.
fn disagreement(
    snapshot: &LogSnapshot,
    file: &FileEntry,
    listing: &HashMap<String, u64>,
) -> Option<String> {
    let path = &file.path;
    let Some(&size) = snapshot.files.get(path) else {
        return Some(format!("a marker names the file, the Delta log (version {}) does not: Delta readers miss its records", snapshot.version));
    };
    if let Some(&on_disk) = listing.get(path).filter(|&&on_disk| on_disk != size) {
        return Some(format!(
            "the Delta log records {size} bytes, the file has {on_disk}"
        ));
    }
    // The marker's rows are checked against the file's footer; engines answer counts from the
    // log's.
    if let Some(&n) = snapshot.records.get(path).filter(|&&n| n != file.rows) {
        return Some(format!(
            "the Delta log's statistics give {n} rows, the marker {}",
            file.rows
        ));
    }
    // The marker's bounds are checked against the rows (`--deep`); engines skip files by the
    // log's. A marker written before bounds were recorded has none to compare.
    let logged = snapshot.bounds.get(path);
    if let (Some(logged), Some(marked)) = (logged, file.stats.as_ref()) {
        if logged != marked {
            return Some(format!("the Delta log's statistics give other bounds of id or created_at ({logged:?}) than the marker ({marked:?}): Delta readers that skip by them miss rows"));
        }
    }
    None
}
