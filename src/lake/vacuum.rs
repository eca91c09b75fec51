//! The Delta table's retention, applied by the committer: each run's start removes the part
//! files no version of the table still reads, and a window's sweep leaves those an older
//! version does (see `delta/retention.rs` for what the log keeps). Here, not in `delta/`, so
//! that the log's reading never imports the committer.

use std::collections::BTreeSet;

use object_store::path::Path;

use crate::lake::commit::{CommitError, Committer};
use crate::lake::delta::DeltaLog;
use crate::lake::layout;
use crate::lake::manifest::FileEntry;
use crate::plan::window::Window;

impl Committer {
    /// Removes the subdomain's part files that no version of the table still reads: neither the
    /// log's latest version (`log`, converged to the markers) nor a remove within the retention
    /// keeps them, no marker or open window names them (`wanted`), and no window whose marker
    /// does not parse (`unreadable`) may own them. A file the log never held is left until it is
    /// older than the retention too (the sweep of its window removes it sooner). One listing of
    /// the subdomain's data. Returns how many files were removed.
    pub(crate) async fn vacuum(
        &self,
        log: &DeltaLog,
        wanted: &[FileEntry],
        unreadable: &[Window],
    ) -> Result<u64, CommitError> {
        let now = chrono::Utc::now();
        let removed = log.removed();
        let kept = removed.kept(now.timestamp_millis());
        let held = log.held();
        let named: BTreeSet<&str> = wanted.iter().map(|f| f.path.as_str()).collect();
        let period = chrono::Duration::from_std(removed.period).unwrap_or(chrono::Duration::MAX);
        let mut vacuumed = 0;
        for (path, modified) in self
            .lake()
            .list_modified(&layout::data(log.subdomain()))
            .await?
        {
            let name = path.as_ref();
            let is_part = path.filename().and_then(layout::parse_part_name).is_some();
            let owned = unreadable.iter().any(|w| layout::is_part_of(&path, w));
            let young = now.signed_duration_since(modified) < period;
            if !is_part
                || owned
                || young && !removed.files.contains_key(name)
                || held.contains(name)
                || kept.contains(name)
                || named.contains(name)
            {
                continue;
            }
            self.fence_check()?;
            tracing::info!(path = %path, "removing a file the Delta log removed more than its retention ago");
            self.lake().delete(&path).await?;
            vacuumed += 1;
        }
        if vacuumed > 0 {
            tracing::info!(
                vacuumed,
                retention_secs = removed.period.as_secs(),
                "files no version of the Delta table reads removed"
            );
        }
        Ok(vacuumed)
    }

    /// Whether the sweep of a window must leave `path`: a file the Delta log removed within its
    /// retention, which an older version of the table still reads.
    pub(crate) fn retains(&self, path: &Path) -> bool {
        self.delta()
            .is_some_and(|log| log.keeps_removed(path.as_ref()))
    }
}
