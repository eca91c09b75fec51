//! What the Delta log's latest snapshot holds for one subdomain, read with the kernel: the
//! version, the subdomain's `txn` version, its files with their statistics, and the files its
//! commits removed within the table's retention.

use std::collections::BTreeMap;

use delta_kernel::snapshot::Snapshot;
use delta_kernel::Engine;
use serde_json::Value;

use crate::lake::delta::retention::{read_removed, Removed};
use crate::lake::layout;
use crate::table::encode::FileStats;

/// What a snapshot of the log holds for one subdomain.
#[derive(Debug)]
pub struct LogSnapshot {
    pub version: u64,
    pub txn: i64,
    /// The subdomain's files: path relative to the lake's root, and size in bytes.
    pub files: BTreeMap<String, u64>,
    /// The rows the log's statistics give each of those files (`numRecords`), where it has them.
    pub records: BTreeMap<String, u64>,
    /// The bounds of `id` and `created_at` the log's statistics give those files, where it has
    /// them: what engines skip files by.
    pub bounds: BTreeMap<String, FileStats>,
    /// The subdomain's files the log removed within the table's retention of removed files.
    pub removed: Removed,
}

/// Reads the latest snapshot with the kernel (blocking).
pub(crate) fn read_snapshot(
    engine: &dyn Engine,
    url: &str,
    app: &str,
    subdomain: &str,
) -> Result<LogSnapshot, String> {
    let snapshot = Snapshot::builder_for(url)
        .build(engine)
        .map_err(|e| e.to_string())?;
    let txn = snapshot
        .get_app_id_version(app, engine)
        .map_err(|e| e.to_string())?
        .unwrap_or(0);
    let version = snapshot.version();
    let removed = read_removed(engine, snapshot.clone(), subdomain)?;
    let scan = snapshot.scan_builder().build().map_err(|e| e.to_string())?;
    type Seen = (String, BTreeMap<String, u64>, BTreeMap<String, u64>);
    let mut seen: Seen = (subdomain.to_string(), BTreeMap::new(), BTreeMap::new());
    let mut bounds = BTreeMap::new();
    for metadata in scan.scan_metadata(engine).map_err(|e| e.to_string())? {
        let metadata = metadata.map_err(|e| e.to_string())?;
        logged_bounds(&metadata.scan_files, subdomain, &mut bounds);
        seen = metadata
            .visit_scan_files(seen, |(subdomain, files, records), file| {
                if file.partition_values.get("subdomain") == Some(subdomain) {
                    let path = format!("{}/{}", layout::table(), file.path);
                    if let Some(stats) = &file.stats {
                        records.insert(path.clone(), stats.num_records);
                    }
                    files.insert(path, u64::try_from(file.size).unwrap_or(0));
                }
            })
            .map_err(|e| e.to_string())?;
    }
    Ok(LogSnapshot {
        version,
        txn,
        files: seen.1,
        records: seen.2,
        bounds,
        removed,
    })
}

/// The bounds the `stats` of the selected scan rows of `files` give, for `subdomain`'s files
/// (read from the kernel's Arrow data: its visitor gives only `numRecords`).
fn logged_bounds(
    files: &delta_kernel::engine_data::FilteredEngineData,
    subdomain: &str,
    out: &mut BTreeMap<String, FileStats>,
) {
    use arrow::array::{Array, AsArray};
    let Some(data) = files
        .data()
        .any_ref()
        .downcast_ref::<delta_kernel::engine::arrow_data::ArrowEngineData>()
    else {
        return;
    };
    let batch = data.record_batch();
    let column = |name: &str| {
        batch
            .column_by_name(name)
            .and_then(|c| c.as_string_opt::<i32>())
    };
    let (Some(paths), Some(stats)) = (column("path"), column("stats")) else {
        return;
    };
    let selected = files.selection_vector();
    let prefix = format!("subdomain={subdomain}/");
    for row in 0..batch.num_rows() {
        if !selected.get(row).copied().unwrap_or(true) || paths.is_null(row) || stats.is_null(row) {
            continue;
        }
        let path = paths.value(row);
        if !path.starts_with(&prefix) {
            continue;
        }
        if let Some(parsed) = parse_bounds(stats.value(row)) {
            out.insert(format!("{}/{path}", layout::table()), parsed);
        }
    }
}

/// The bounds of `id` and `created_at` in an add action's `stats` JSON, as the log's writer (`delta.rs`) writes them.
fn parse_bounds(stats: &str) -> Option<FileStats> {
    let stats: Value = serde_json::from_str(stats).ok()?;
    let (min, max) = (&stats["minValues"], &stats["maxValues"]);
    let millis = |v: &Value| {
        let text = v.as_str()?;
        chrono::DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| t.timestamp_millis())
    };
    Some(FileStats {
        min_id: min["id"].as_i64()?,
        max_id: max["id"].as_i64()?,
        min_created_at: millis(&min["created_at"])?,
        max_created_at: millis(&max["created_at"])?,
    })
}
