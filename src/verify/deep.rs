//! `verify --deep`: every row of every file the markers name is read. Ids are unique within
//! and across windows, every `created_at` is inside its window and its file's day partition,
//! a file that declares a sort order follows it, the schema is the one in `schemas/`, and the
//! rows read are as many as the marker records.

use std::collections::HashSet;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{
    DataType, Int64Type, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
};
use bytes::Bytes;
use object_store::path::Path;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::{Check, Finding, Kind, ToRead, VerifyError};
use crate::plan::window::{day_of, Window};
use crate::table::schema::Schema;

impl Check<'_> {
    /// Reads every row of every file (`--deep`).
    pub(super) async fn read_every_row(&mut self, to_read: Vec<ToRead>) -> Result<(), VerifyError> {
        let mut ids: HashSet<i64> = HashSet::new();
        let digests = self.recorded_digests();
        for (window, path, _, rows) in &to_read {
            match self.lake.read(&Path::from(path.as_str())).await? {
                Some(bytes) => {
                    self.check_bytes(&digests, window, path, &bytes);
                    deep_check(window, path, *rows, bytes, &mut ids, &mut self.findings)
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

/// Checks every row of one file: schema, count, ids unique across the lake, `created_at` in the
/// window and the file's day partition, and the declared sort order.
fn deep_check(
    window: &Window,
    path: &str,
    rows: u64,
    bytes: Bytes,
    ids: &mut HashSet<i64>,
    findings: &mut Vec<Finding>,
) {
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
    for (kind, detail) in tally.problems(rows, window, declared_sorted) {
        found(kind, detail);
    }
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
        let times = seconds(batch.column(schema.created_at_index).as_ref());
        for (row, &second) in times.iter().enumerate() {
            let id = id_col.value(row);
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
