//! The Delta log against the markers, for a lake in table format `delta`: every file the markers
//! (and the open window) name is in the log's latest snapshot, with the size the lake holds, and
//! the log names no other file of the subdomain. A repair, like any run, converges the log to the
//! markers in one commit.

use std::collections::{BTreeMap, HashMap};

use super::{Check, Kind, VerifyError};
use crate::lake::delta::DeltaLog;

impl Check<'_> {
    /// Compares the log's files for the subdomain with the markers' and the lake's `listing`
    /// (path → size).
    pub(super) async fn delta_log(
        &mut self,
        listing: &HashMap<String, u64>,
    ) -> Result<(), VerifyError> {
        let log = DeltaLog::new(self.lake, self.subdomain, "verify");
        let snapshot = match log.snapshot().await {
            Ok(snapshot) => snapshot,
            Err(e) => {
                self.found(
                    Kind::LogDisagrees,
                    None,
                    Some("audit_logs/_delta_log".into()),
                    format!("the Delta log does not read: {e}"),
                );
                return Ok(());
            }
        };
        let mut named: BTreeMap<String, Option<String>> = BTreeMap::new();
        let mut rows: BTreeMap<String, u64> = BTreeMap::new();
        for record in self.markers.values().chain(self.open.as_ref()) {
            for file in &record.files {
                named.insert(file.path.clone(), Some(record.window.clone()));
                rows.insert(file.path.clone(), file.rows);
            }
        }
        let unreadable: Vec<String> = self
            .unreadable
            .keys()
            .map(|&start| self.window(start).id())
            .collect();
        for (path, window) in &named {
            match snapshot.files.get(path) {
                None => self.found(
                    Kind::LogDisagrees,
                    window.clone(),
                    Some(path.clone()),
                    format!("a marker names the file, the Delta log (version {}) does not: Delta readers miss its records", snapshot.version),
                ),
                Some(&size) if listing.get(path).is_some_and(|&on_disk| on_disk != size) => self.found(
                    Kind::LogDisagrees,
                    window.clone(),
                    Some(path.clone()),
                    format!("the Delta log records {size} bytes, the file has {}", listing[path]),
                ),
                // The marker's rows are checked against the file's footer; engines answer
                // counts from the log's.
                Some(_) if snapshot.records.get(path).is_some_and(|&n| n != rows[path]) => self.found(
                    Kind::LogDisagrees,
                    window.clone(),
                    Some(path.clone()),
                    format!("the Delta log's statistics give {} rows, the marker {}", snapshot.records[path], rows[path]),
                ),
                Some(_) => {}
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
        Ok(())
    }
}
