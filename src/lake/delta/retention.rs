//! What a Delta table keeps of the files its commits removed, so that its older versions stay
//! readable (time travel): the old generation a repair replaced, the hours a day's compaction
//! joined, the open window's parts its close compacted.
//!
//! A file the log removed stays in the lake for the table's `delta.deletedFileRetentionDuration`
//! (Delta's default, 7 days, when the table does not set it), counted from the remove's
//! `deletionTimestamp`, as Delta's own `VACUUM` counts it. The sweep of a window leaves such
//! files, and each run's start removes the ones whose time is up (`Committer::vacuum`, in `lake/vacuum.rs`). Files
//! no commit ever added (the leftovers of a killed upload) are not history: the sweep removes
//! them at once, as in a plain lake.
//!
//! The removes are read with the kernel's own log replay for checkpoints, which keeps exactly
//! the removes a checkpoint must still carry: those within the retention.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use delta_kernel::snapshot::SnapshotRef;
use delta_kernel::Engine;

use crate::lake::layout;
use crate::lake::manifest::FileEntry;

/// Delta's default `delta.deletedFileRetentionDuration`: how long a table that does not set it
/// keeps a removed file for its older versions.
pub const DEFAULT_FILE_RETENTION: Duration = Duration::from_secs(7 * 86_400);

/// The files of one subdomain that the log removed and still keeps, and for how long.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Removed {
    /// The table's retention of removed files.
    pub period: Duration,
    /// Each removed file (path relative to the lake) and when it was removed (ms since the
    /// epoch), as the remove action says.
    pub files: BTreeMap<String, i64>,
}

impl Removed {
    /// Whether `path` is a removed file still within the retention at `now_ms`: one that an
    /// older version reads.
    pub fn keeps(&self, path: &str, now_ms: i64) -> bool {
        let period = i64::try_from(self.period.as_millis()).unwrap_or(i64::MAX);
        self.files
            .get(path)
            .is_some_and(|&at| at.saturating_add(period) > now_ms)
    }

    /// The files still kept at `now_ms`.
    pub fn kept(&self, now_ms: i64) -> BTreeSet<&str> {
        self.files
            .keys()
            .filter(|p| self.keeps(p, now_ms))
            .map(String::as_str)
            .collect()
    }

    /// A commit of this run: its removes are kept from `at`, and a file it adds again (a path
    /// rewritten) is the table's once more.
    pub fn committed(&mut self, removes: &[FileEntry], adds: &[FileEntry], at: i64) {
        for file in removes {
            self.files.insert(file.path.clone(), at);
        }
        for file in adds {
            self.files.remove(&file.path);
        }
    }
}

/// The removes of `snapshot` that are still within the table's retention, for `subdomain`'s
/// files (blocking: the kernel's replay).
pub(crate) fn read_removed(
    engine: &dyn Engine,
    snapshot: SnapshotRef,
    subdomain: &str,
) -> Result<Removed, String> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::Int64Type;
    let period = snapshot
        .table_properties()
        .deleted_file_retention_duration
        .unwrap_or(DEFAULT_FILE_RETENTION);
    // The replay a checkpoint is written from: it needs a table whose every feature the kernel
    // can write, as this tool's commits do.
    let cannot = |e: delta_kernel::KernelError| {
        format!("the files the log removed could not be read (auditlake writes only tables whose features the Delta kernel supports): {e}")
    };
    let writer = snapshot.create_checkpoint_writer(engine).map_err(cannot)?;
    let prefix = format!("subdomain={subdomain}/");
    let mut files = BTreeMap::new();
    for batch in writer.checkpoint_data(engine).map_err(cannot)? {
        let batch = batch.map_err(cannot)?;
        let Some(data) = batch
            .data()
            .any_ref()
            .downcast_ref::<delta_kernel::engine::arrow_data::ArrowEngineData>()
        else {
            return Err("the kernel's log replay is not Arrow data".into());
        };
        let record_batch = data.record_batch();
        let Some(removes) = record_batch
            .column_by_name("remove")
            .and_then(|c| c.as_struct_opt())
        else {
            continue;
        };
        let paths = removes
            .column_by_name("path")
            .and_then(|c| c.as_string_opt::<i32>());
        let times = removes
            .column_by_name("deletionTimestamp")
            .and_then(|c| c.as_primitive_opt::<Int64Type>());
        let (Some(paths), Some(times)) = (paths, times) else {
            return Err("the kernel's removes have no path or deletionTimestamp".into());
        };
        let selected = batch.selection_vector();
        for row in 0..record_batch.num_rows() {
            let chosen = selected.get(row).copied().unwrap_or(true);
            if !chosen || removes.is_null(row) || paths.is_null(row) || times.is_null(row) {
                continue;
            }
            // As the log's writer (`delta.rs`) wrote it: relative to the table root, not
            // percent-encoded (part names and subdomains need no encoding).
            let path = paths.value(row);
            if path.starts_with(&prefix) {
                files.insert(format!("{}/{path}", layout::table()), times.value(row));
            }
        }
    }
    Ok(Removed { period, files })
}
