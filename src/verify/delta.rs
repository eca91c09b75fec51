//! The Delta log against the markers, for a lake in table format `delta`: every file the markers
//! (and the open window) name is in the log's latest snapshot, with the size the lake holds, and
//! the log names no other file of the subdomain. A repair, like any run, converges the log to the
//! markers in one commit. The files the log removed within the table's retention are its older
//! versions' (time travel), not strays.

use std::collections::{BTreeMap, HashMap};

use super::{Check, Kind, Retained};
use crate::lake::delta::{DeltaError, LogSnapshot};
use crate::lake::manifest::FileEntry;

impl Check<'_> {
    /// Takes out of `listing` (path → size) the files the log removed within its retention that
    /// no marker names: they are kept for its older versions, not strays.
    pub(super) fn retained(&mut self, snapshot: &LogSnapshot, listing: &mut HashMap<String, u64>) {
        let named = self.named();
        let now = chrono::Utc::now().timestamp_millis();
        let kept: Vec<String> = snapshot
            .removed
            .kept(now)
            .into_iter()
            .filter(|path| !named.contains(*path))
            .map(str::to_string)
            .collect();
        let mut files = 0;
        for path in kept {
            if listing.remove(&path).is_some() {
                files += 1;
            }
        }
        self.retained = Some(Retained {
            files,
            retention_seconds: snapshot.removed.period.as_secs(),
        });
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
            .chain(&self.open)
            .flat_map(|r| {
                r.files
                    .iter()
                    .map(|f| (f.path.clone(), (r.window.clone(), f.clone())))
            })
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
            let maybe_open = |s: i64| self.open_unreadable && !self.committed.contains(&s);
            let of_unreadable =
                part_window(path).is_some_and(|s| self.owned_by_torn(s) || maybe_open(s));
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

/// The start of the window a part file's name belongs to.
fn part_window(path: &str) -> Option<i64> {
    let name = path.rsplit('/').next()?;
    crate::lake::layout::parse_part_name(name)
        .and_then(|p| crate::units::time::parse_compact(p.window_id))
}
