//! `verify --deep`: every row of every file the markers name is read. Ids are unique within
//! and across windows, every `created_at` is inside its window and its file's day partition,
//! a file that declares a sort order follows it, the schema is the one in `schemas/`, and the
//! rows read are as many as the marker records.

use std::collections::{HashMap, HashSet};

use arrow::array::{Array, AsArray};
use arrow::datatypes::{
    DataType, Int64Type, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
};
use bytes::Bytes;
use object_store::path::Path;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::{Check, Finding, Kind, ToRead, VerifyError};
use crate::plan::window::Window;
use crate::table::encode::FileStats;
use crate::table::schema::Schema;
use crate::units::time::day_of;

impl Check<'_> {
    /// Reads every row of every file (`--deep`).
    pub(super) async fn read_every_row(&mut self, to_read: Vec<ToRead>) -> Result<(), VerifyError> {
        let mut ids: HashSet<i64> = HashSet::new();
        let digests = self.recorded_digests();
        let bounds = self.recorded_bounds();
        for (window, path, _, rows) in &to_read {
            match self.lake.read(&Path::from(path.as_str())).await? {
                Some(bytes) => {
                    self.check_bytes(&digests, window, path, &bytes);
                    let file = FileToCheck {
                        window,
                        path,
                        rows: *rows,
                        recorded: bounds.get(path),
                    };
                    deep_check(&file, bytes, &mut ids, &mut self.findings)
                }
                None => self.found(
                    Kind::MissingFile,
                    Some(window.id()),
                    Some(path.clone()),
                    "vanished while being read".into(),
                ),
            }
        }
        Ok(())
    }
}

impl Check<'_> {
    /// The bounds each file's marker records, by path.
    fn recorded_bounds(&self) -> HashMap<String, FileStats> {
        self.markers
            .values()
            .chain(&self.open)
            .flat_map(|r| &r.files)
            .filter_map(|f| Some((f.path.clone(), f.stats?)))
            .collect()
    }
}

/// One file `verify --deep` reads, and what its marker says of it.
struct FileToCheck<'a> {
    window: &'a Window,
    path: &'a str,
    rows: u64,
    recorded: Option<&'a FileStats>,
}

/// Checks every row of one file: schema, count, ids unique across the lake, `created_at` in the
/// window and the file's day partition, the declared sort order, and the bounds of `id` and
/// `created_at` its footer and marker record.
fn deep_check(
    file: &FileToCheck<'_>,
    bytes: Bytes,
    ids: &mut HashSet<i64>,
    findings: &mut Vec<Finding>,
) {
    let FileToCheck {
        window,
        path,
        rows,
        recorded,
    } = *file;
    let mut found = |kind, detail: String| {
        findings.push(Finding {
            kind,
            window: Some(window.id()),
            path: Some(path.to_string()),
            detail,
        })
    };
    let builder = match ParquetRecordBatchReaderBuilder::try_new(bytes) {
        Ok(b) => b,
        Err(e) => return found(Kind::Unreadable, e.to_string()),
    };
    let declared_sorted = builder
        .metadata()
        .row_groups()
        .iter()
        .any(|rg| rg.sorting_columns().is_some_and(|c| !c.is_empty()));
    if let Some(columns) = schema_differs(builder.schema()) {
        return found(
            Kind::WrongSchema,
            format!("columns {columns:?} differ from schemas/"),
        );
    }
    let footer = FileStats::of_metadata(builder.metadata());
    let day = path
        .split('/')
        .find_map(|part| part.strip_prefix("created_date="))
        .unwrap_or("");
    let mut tally = RowTally::default();
    let reader = match builder.build() {
        Ok(r) => r,
        Err(e) => return found(Kind::Unreadable, e.to_string()),
    };
    for batch in reader {
        match batch {
            Ok(batch) => tally.add(&batch, window, day, ids),
            Err(e) => return found(Kind::Unreadable, e.to_string()),
        }
    }
    let actual = tally.bounds;
    for (kind, detail) in tally.problems(rows, window, declared_sorted) {
        found(kind, detail);
    }
    for (whose, said) in [("footer", footer.as_ref()), ("marker", recorded)] {
        // A file without rows has no bounds; one written before they were recorded, none said.
        if let (Some(said), Some(actual)) = (said, actual.as_ref()) {
            if said != actual {
                found(Kind::WrongStats, format!("the {whose} records {}, the rows hold {}: engines that skip files by these bounds miss rows", show(said), show(actual)));
            }
        }
    }
}

/// Bounds as a person reads them.
fn show(s: &FileStats) -> String {
    format!(
        "id {}..={}, created_at {}..={} ms",
        s.min_id, s.max_id, s.min_created_at, s.max_created_at
    )
}

impl RowTally {
    /// What the rows read from one file break: a count other than the marker's `rows`, ids seen
    /// before, rows outside the window or the day partition, or an order other than declared.
    fn problems(self, rows: u64, window: &Window, declared_sorted: bool) -> Vec<(Kind, String)> {
        let RowTally {
            count,
            duplicates,
            outside,
            wrong_day,
            unsorted,
            ..
        } = self;
        let checks = [
            (
                count != rows,
                Kind::WrongRows,
                format!("{count} rows read, the marker says {rows}"),
            ),
            (
                duplicates > 0,
                Kind::DuplicateId,
                format!("{duplicates} ids already seen in this or another file"),
            ),
            (
                outside > 0,
                Kind::OutsideWindow,
                format!("{outside} rows created outside the window {window}"),
            ),
            (
                wrong_day > 0,
                Kind::WrongDay,
                format!("{wrong_day} rows of another UTC day than the partition's"),
            ),
            (
                declared_sorted && unsorted,
                Kind::NotSorted,
                "the file declares sorting_columns (created_at, id) but its rows are not in that order"
                    .into(),
            ),
        ];
        checks
            .into_iter()
            .filter(|(failed, _, _)| *failed)
            .map(|(_, kind, detail)| (kind, detail))
            .collect()
    }
}

/// The file's column names when its schema differs from `schemas/` (names and types).
fn schema_differs(actual: &arrow::datatypes::SchemaRef) -> Option<Vec<String>> {
    let expected = Schema::get().arrow();
    let same = expected.fields().len() == actual.fields().len()
        && expected
            .fields()
            .iter()
            .zip(actual.fields().iter())
            .all(|(e, a)| e.name() == a.name() && e.data_type() == a.data_type());
    (!same).then(|| actual.fields().iter().map(|f| f.name().clone()).collect())
}

/// What the rows of one file showed, batch by batch.
#[derive(Default)]
struct RowTally {
    count: u64,
    duplicates: u64,
    outside: u64,
    wrong_day: u64,
    unsorted: bool,
    previous: Option<(i64, i64)>,
    /// The bounds of `id` and `created_at` (ms) of the rows read.
    bounds: Option<FileStats>,
}

impl RowTally {
    fn add(
        &mut self,
        batch: &arrow::array::RecordBatch,
        window: &Window,
        day: &str,
        ids: &mut HashSet<i64>,
    ) {
        let schema = Schema::get();
        self.count += batch.num_rows() as u64;
        let id_col = batch.column(schema.id_index).as_primitive::<Int64Type>();
        let created = batch.column(schema.created_at_index).as_ref();
        let times = seconds(created);
        let millis = created
            .as_primitive_opt::<TimestampMillisecondType>()
            .filter(|c| c.null_count() == 0);
        for (row, &second) in times.iter().enumerate() {
            let id = id_col.value(row);
            if let Some(millis) = millis {
                self.widen(id, millis.value(row));
            }
            if !ids.insert(id) {
                self.duplicates += 1;
            }
            // A null or out-of-range time is outside every window; only an instant inside the
            // window has a day to compare (and a day chrono can represent).
            if !window.contains(second) {
                self.outside += 1;
            } else if day_of(second).format("%Y-%m-%d").to_string() != day {
                self.wrong_day += 1;
            }
            let key = (second, id);
            if self.previous.is_some_and(|p| key <= p) {
                self.unsorted = true;
            }
            self.previous = Some(key);
        }
    }
}

impl RowTally {
    /// Widens the bounds to a row's `id` and `created_at` (ms).
    fn widen(&mut self, id: i64, created_at: i64) {
        let b = self.bounds.get_or_insert(FileStats {
            min_id: id,
            max_id: id,
            min_created_at: created_at,
            max_created_at: created_at,
        });
        b.min_id = b.min_id.min(id);
        b.max_id = b.max_id.max(id);
        b.min_created_at = b.min_created_at.min(created_at);
        b.max_created_at = b.max_created_at.max(created_at);
    }
}

/// A timestamp column's values as UTC seconds (nulls as `i64::MIN`, which no window contains).
fn seconds(column: &dyn Array) -> Vec<i64> {
    let per_second = match column.data_type() {
        DataType::Timestamp(TimeUnit::Millisecond, _) => 1_000,
        DataType::Timestamp(TimeUnit::Microsecond, _) => 1_000_000,
        _ => return vec![i64::MIN; column.len()],
    };
    let value = |i: usize, v: i64| {
        if column.is_null(i) {
            i64::MIN
        } else {
            v.div_euclid(per_second)
        }
    };
    match column.data_type() {
        DataType::Timestamp(TimeUnit::Millisecond, _) => column
            .as_primitive::<TimestampMillisecondType>()
            .values()
            .iter()
            .enumerate()
            .map(|(i, &v)| value(i, v))
            .collect(),
        _ => column
            .as_primitive::<TimestampMicrosecondType>()
            .values()
            .iter()
            .enumerate()
            .map(|(i, &v)| value(i, v))
            .collect(),
    }
}
