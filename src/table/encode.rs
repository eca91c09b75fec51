//! One Parquet part file, streamed to a local temporary file.
//!
//! Rows are appended into Arrow builders and cut into record batches only where the second of
//! `created_at` changes. The API returns records in `created_at` order, but in no documented order
//! within one second; sorting each batch by `(created_at, id)` is therefore enough for the whole file
//! to be sorted. Memory holds one batch and the Parquet row group being encoded, whatever the size
//! of the file.
//!
//! The file declares `sorting_columns = (created_at, id)` only when that is true. Should the API
//! break its order (a row whose key is at or before one already written), the finished file is
//! rewritten once, streaming, without the declaration: engines that trust the declaration (to skip
//! a sort or merge files) would otherwise return wrong results.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Int64Array, Int64Builder, RecordBatch, StringBuilder,
    TimestampMillisecondArray, TimestampMillisecondBuilder, UInt32Array,
};
use arrow::compute::take_record_batch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::{KeyValue, SortingColumn};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use crate::plan::window::Window;

use crate::table::decode::{Cell, Row};
use crate::table::schema::{ColumnType, Schema, SCHEMA_VERSION, TIMEZONE};
use crate::units::time::format_rfc3339;

/// Rows per record batch (a batch only ends between seconds, so it may run over): large enough
/// for efficient encoding, small enough that the unsorted buffer stays a few MB.
const BATCH_ROWS: usize = 8_192;

/// Rows per Parquet row group: the unit of statistics-based skipping and of the writer's memory
/// (one encoded row group is held before it is flushed to disk).
const ROW_GROUP_ROWS: usize = 131_072;

/// Rows the string builders keep room for after a batch: a second with a huge number of records
/// makes one huge batch, and keeping its capacity would pin that memory for the rest of the file.
const KEEP_STRING_ROWS: usize = 2 * BATCH_ROWS;

/// Why a part file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PartError {
    #[error("temporary file: {0}")]
    Io(#[from] std::io::Error),
    #[error("encoding Parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("building Arrow batch: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}

/// A finished part, still in its temporary file.
#[derive(Debug)]
pub struct FinishedPart {
    pub file: File,
    pub rows: u64,
    pub bytes: u64,
    /// The file's SHA-256 (lowercase hex), computed from the bytes as they were written.
    pub sha256: String,
    /// Rows whose `(created_at, id)` was at or before a row already written to the file: still
    /// written, but the file is then not sorted and does not declare `sorting_columns`. Zero
    /// unless the API breaks its `sort=created_at` promise.
    pub out_of_order: u64,
}

/// The bounds of a finished file's `id` and `created_at` (UTC milliseconds), read from its own
/// footer: what a Delta add action's statistics carry, so engines skip files by time or id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileStats {
    pub min_id: i64,
    pub max_id: i64,
    pub min_created_at: i64,
    pub max_created_at: i64,
}

impl FileStats {
    /// The bounds recorded in `file`'s footer; `None` for a file without rows or statistics.
    pub fn of(file: &File) -> Option<FileStats> {
        let metadata = parquet::file::metadata::ParquetMetaDataReader::new()
            .parse_and_finish(file)
            .ok()?;
        FileStats::of_metadata(&metadata)
    }

    /// The bounds a file's footer `metadata` records (its row groups' statistics).
    pub fn of_metadata(metadata: &parquet::file::metadata::ParquetMetaData) -> Option<FileStats> {
        let schema = Schema::get();
        let bounds = |column: usize| -> Option<(i64, i64)> {
            let mut bounds: Option<(i64, i64)> = None;
            for group in metadata.row_groups() {
                let parquet::file::statistics::Statistics::Int64(stats) =
                    group.column(column).statistics()?
                else {
                    return None;
                };
                let (min, max) = (*stats.min_opt()?, *stats.max_opt()?);
                bounds = Some(bounds.map_or((min, max), |(a, b)| (a.min(min), b.max(max))));
            }
            bounds
        };
        let (min_id, max_id) = bounds(schema.id_index)?;
        let (min_created_at, max_created_at) = bounds(schema.created_at_index)?;
        Some(FileStats {
            min_id,
            max_id,
            min_created_at,
            max_created_at,
        })
    }
}

impl FinishedPart {
    /// Whether the file is sorted by `(created_at, id)` and declares so in its metadata.
    pub fn sorted(&self) -> bool {
        self.out_of_order == 0
    }
}

/// A Parquet file being written.
pub struct PartFile {
    writer: PartWriter,
    /// Where the temporary file lives, for the rewrite of an unsorted file.
    dir: PathBuf,
    columns: Vec<ColumnBuilder>,
    extra: StringBuilder,
    buffered: usize,
    /// The second of the last buffered row, to cut batches only between seconds.
    last_second: Option<i64>,
    /// The largest `(created_at, id)` written so far: a row at or before it cannot be sorted into
    /// place any more (batches are sorted only within themselves).
    written_max: Option<(i64, i64)>,
    rows: u64,
    out_of_order: u64,
    /// The file's key-value metadata: what wrote it, for whom (see [`labels`]).
    labels: Vec<KeyValue>,
}

enum ColumnBuilder {
    Int64(Int64Builder),
    Utf8(StringBuilder),
    Timestamp(TimestampMillisecondBuilder),
}

impl PartFile {
    /// Starts a part of `window` in a new anonymous temporary file under `dir` (deleted by the
    /// OS when dropped, so a crash leaves nothing behind).
    pub fn create(dir: &FsPath, window: &Window) -> Result<PartFile, PartError> {
        let schema = Schema::get();
        let labels = labels(window);
        let writer = new_writer(dir, true, &labels)?;
        let columns = schema
            .fields
            .iter()
            .map(|f| match f.column {
                ColumnType::Int64 => ColumnBuilder::Int64(Int64Builder::with_capacity(BATCH_ROWS)),
                ColumnType::Utf8 => {
                    ColumnBuilder::Utf8(StringBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 32))
                }
                ColumnType::TimestampMsUtc => ColumnBuilder::Timestamp(
                    TimestampMillisecondBuilder::with_capacity(BATCH_ROWS).with_timezone(TIMEZONE),
                ),
            })
            .collect();
        Ok(PartFile {
            writer,
            dir: dir.to_path_buf(),
            columns,
            extra: StringBuilder::new(),
            buffered: 0,
            last_second: None,
            written_max: None,
            rows: 0,
            out_of_order: 0,
            labels,
        })
    }

    /// Rows appended so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Appends one row.
    pub fn push(&mut self, row: &Row<'_, '_>) -> Result<(), PartError> {
        let second = row.created_at.div_euclid(1_000);
        if self.buffered >= BATCH_ROWS && self.last_second != Some(second) {
            self.flush_batch()?;
        }
        if self
            .written_max
            .is_some_and(|max| (row.created_at, row.id) <= max)
        {
            self.out_of_order += 1;
        }
        for (builder, cell) in self.columns.iter_mut().zip(row.cells) {
            match (builder, cell) {
                (ColumnBuilder::Int64(b), Cell::Int(n)) => b.append_value(*n),
                (ColumnBuilder::Int64(b), _) => b.append_null(),
                (ColumnBuilder::Utf8(b), Cell::Str(s)) => b.append_value(s),
                (ColumnBuilder::Utf8(b), _) => b.append_null(),
                (ColumnBuilder::Timestamp(b), Cell::Timestamp(t)) => b.append_value(*t),
                (ColumnBuilder::Timestamp(b), _) => b.append_null(),
            }
        }
        self.extra.append_option(row.extra);
        self.buffered += 1;
        self.rows += 1;
        self.last_second = Some(second);
        Ok(())
    }

    /// Writes the buffered rows as one batch, sorted by `(created_at, id)`.
    fn flush_batch(&mut self) -> Result<(), PartError> {
        if self.buffered == 0 {
            return Ok(());
        }
        let schema = Schema::get();
        let mut arrays: Vec<ArrayRef> = self
            .columns
            .iter_mut()
            .map(|b| -> ArrayRef {
                match b {
                    ColumnBuilder::Int64(b) => Arc::new(b.finish()),
                    ColumnBuilder::Utf8(b) => finish_strings(b),
                    ColumnBuilder::Timestamp(b) => Arc::new(b.finish()),
                }
            })
            .collect();
        arrays.push(finish_strings(&mut self.extra));
        let mut batch = RecordBatch::try_new(schema.arrow().clone(), arrays)?;
        let created = batch.column(schema.created_at_index).clone();
        let ids = batch.column(schema.id_index).clone();
        let created_values = created
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .expect("created_at is built as a timestamp column")
            .values();
        let id_values = ids
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("id is built as an int64 column")
            .values();
        let last = match sort_order(created_values, id_values) {
            None => created_values.len() - 1,
            Some(order) => {
                let last = *order.last().expect("a flushed batch has rows") as usize;
                batch = take_record_batch(&batch, &UInt32Array::from(order))?;
                last
            }
        };
        let max = Some((created_values[last], id_values[last]));
        self.writer.write(&batch)?;
        self.written_max = self.written_max.max(max);
        self.buffered = 0;
        Ok(())
    }

    /// Flushes the last batch and the Parquet footer; the file is rewound for upload. A file that
    /// turned out unsorted is first rewritten without its sort declaration.
    pub fn finish(mut self) -> Result<FinishedPart, PartError> {
        self.flush_batch()?;
        let (mut file, mut sha256) = close_writer(self.writer)?;
        if self.out_of_order > 0 {
            tracing::info!(
                rows = self.rows,
                out_of_order = self.out_of_order,
                "part file is not sorted; rewriting it without a sort declaration"
            );
            (file, sha256) = rewrite_unsorted(file, &self.dir, &self.labels)?;
        }
        let bytes = file.seek(SeekFrom::End(0))?;
        file.seek(SeekFrom::Start(0))?;
        Ok(FinishedPart {
            file,
            rows: self.rows,
            bytes,
            sha256,
            out_of_order: self.out_of_order,
        })
    }
}

/// Concatenates finished part files of one window and day, in order, into one part file: the
/// open window's compaction at its close, read from the lake's own parts, not from the API.
///
/// The parts of the open window hold disjoint, consecutive ranges of seconds, each sorted, so
/// their concatenation is sorted: it declares so when every input did and each starts after
/// the one before it ends (checked, not assumed; otherwise the file is rewritten without the
/// declaration, as [`PartFile::finish`] does). Streams batch by batch.
pub fn concat(dir: &FsPath, window: &Window, inputs: Vec<File>) -> Result<FinishedPart, PartError> {
    let schema = Schema::get();
    let labels = labels(window);
    let declared = declared_sort();
    let mut readers = Vec::with_capacity(inputs.len());
    let mut sorted = true;
    for file in inputs {
        let builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
        sorted &= builder
            .metadata()
            .row_groups()
            .iter()
            .all(|g| g.sorting_columns() == Some(&declared));
        readers.push(builder.with_batch_size(BATCH_ROWS).build()?);
    }
    let mut writer = new_writer(dir, sorted, &labels)?;
    let (mut rows, mut out_of_order) = (0u64, 0u64);
    let mut last: Option<(i64, i64)> = None;
    for batch in readers.into_iter().flatten() {
        // The declared schema, not the one read back, so the writer sees exactly its own schema.
        let batch = RecordBatch::try_new(schema.arrow().clone(), batch?.columns().to_vec())?;
        if batch.num_rows() == 0 {
            continue;
        }
        let key = |row: usize| {
            let created = batch.column(schema.created_at_index).as_any();
            let ids = batch.column(schema.id_index).as_any();
            let created = created.downcast_ref::<TimestampMillisecondArray>();
            let ids = ids.downcast_ref::<Int64Array>();
            created.zip(ids).map(|(c, i)| (c.value(row), i.value(row)))
        };
        if last.is_some_and(|last| key(0).is_none_or(|first| first <= last)) {
            out_of_order += 1;
        }
        last = key(batch.num_rows() - 1);
        rows += batch.num_rows() as u64;
        writer.write(&batch)?;
    }
    let (mut file, mut sha256) = close_writer(writer)?;
    if sorted && out_of_order > 0 {
        (file, sha256) = rewrite_unsorted(file, dir, &labels)?;
    }
    let bytes = file.seek(SeekFrom::End(0))?;
    file.seek(SeekFrom::Start(0))?;
    Ok(FinishedPart {
        file,
        rows,
        bytes,
        sha256,
        out_of_order: if sorted {
            out_of_order
        } else {
            out_of_order.max(1)
        },
    })
}

/// A Parquet writer on a new anonymous temporary file under `dir`, declaring the sort order of
/// `(created_at, id)` when `sorted`.
/// The order every sorted part declares: `(created_at, id)`, ascending.
pub(crate) fn declared_sort() -> Vec<SortingColumn> {
    let schema = Schema::get();
    [schema.created_at_index, schema.id_index]
        .into_iter()
        .map(|column| SortingColumn {
            column_idx: column as i32,
            descending: false,
            nulls_first: false,
        })
        .collect()
}

/// The key-value metadata of a part of `window`: the schema version (so a reader, or `verify`,
/// can tell a file of another version without the lake's state) and the window it belongs to.
fn labels(window: &Window) -> Vec<KeyValue> {
    vec![
        KeyValue::new(
            "auditlake.schema_version".into(),
            SCHEMA_VERSION.to_string(),
        ),
        KeyValue::new(
            "auditlake.window_start".into(),
            format_rfc3339(window.start),
        ),
        KeyValue::new("auditlake.window_end".into(), format_rfc3339(window.end)),
    ]
}

/// A part file's writer: Parquet into a buffered temporary file whose every byte is hashed on
/// its way out.
pub(crate) type PartWriter = ArrowWriter<BufWriter<Hashing<File>>>;

/// Passes writes on to `inner` and hashes (SHA-256) every byte that went through: a file's
/// digest comes from writing it, never from reading it back.
pub(crate) struct Hashing<W> {
    inner: W,
    digest: aws_lc_rs::digest::Context,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.digest.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

pub(crate) fn new_writer(
    dir: &FsPath,
    sorted: bool,
    labels: &[KeyValue],
) -> Result<PartWriter, PartError> {
    let schema = Schema::get();
    let file = tempfile::tempfile_in(dir)?;
    let sorting = sorted.then(declared_sort);
    let props = WriterProperties::builder()
        // ZSTD level 1: within a few percent of level 3's size at a fraction of its CPU.
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1)?))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_sorting_columns(sorting)
        // Unique or nearly unique per row: a dictionary would only be built (hashing every
        // value) to be thrown away. Low-cardinality columns (action, source_type, ...) keep it.
        .set_column_dictionary_enabled("id".into(), false)
        .set_column_dictionary_enabled("url".into(), false)
        .set_column_dictionary_enabled("change_description".into(), false)
        .set_column_dictionary_enabled("source_label".into(), false)
        .set_column_dictionary_enabled("extra_json".into(), false)
        .set_created_by(concat!("auditlake ", env!("CARGO_PKG_VERSION")).into())
        .set_key_value_metadata(Some(labels.to_vec()))
        .build();
    let hashing = Hashing {
        inner: file,
        digest: aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256),
    };
    Ok(ArrowWriter::try_new(
        BufWriter::with_capacity(1 << 20, hashing),
        schema.arrow().clone(),
        Some(props),
    )?)
}

/// A written file and its SHA-256 (lowercase hex).
pub(crate) type Hashed = (File, String);

/// Writes the Parquet footer and returns the file, with the SHA-256 of every byte written.
pub(crate) fn close_writer(writer: PartWriter) -> Result<Hashed, PartError> {
    let buffered = writer.into_inner()?;
    let hashing = buffered.into_inner().map_err(|e| e.into_error())?;
    let digest = hashing.digest.finish();
    Ok((hashing.inner, hex(digest.as_ref())))
}

/// Lowercase hex, as `sha256sum` prints a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Copies a finished part into a new temporary file that does not declare a sort order. It
/// streams batch by batch, so memory stays one row group as when writing; the disk briefly holds
/// both copies. The rows keep their order: sorting a file larger than memory would need an
/// external sort, for a case that only a broken API produces.
fn rewrite_unsorted(file: File, dir: &FsPath, labels: &[KeyValue]) -> Result<Hashed, PartError> {
    let schema = Schema::get();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)?
        .with_batch_size(BATCH_ROWS)
        .build()?;
    let mut writer = new_writer(dir, false, labels)?;
    for batch in reader {
        // The declared schema, not the one read back, so the writer sees exactly its own schema.
        let batch = RecordBatch::try_new(schema.arrow().clone(), batch?.columns().to_vec())?;
        writer.write(&batch)?;
    }
    close_writer(writer)
}

/// The builder's strings as an array. The builder starts over with room for a batch like this
/// one (at most [`KEEP_STRING_ROWS`] rows of it): arrow's `finish` leaves it empty, and growing it
/// again by doubling copied every column several times per batch.
fn finish_strings(builder: &mut StringBuilder) -> ArrayRef {
    let array = builder.finish();
    let headroom = |n: usize| n + n / 8;
    let rows = array.len().min(KEEP_STRING_ROWS);
    let bytes = if array.is_empty() {
        0
    } else {
        // The average value size over the rows kept room for; u128 so the product cannot overflow.
        (array.value_data().len() as u128 * rows as u128 / array.len() as u128) as usize
    };
    *builder = StringBuilder::with_capacity(headroom(rows), headroom(bytes));
    Arc::new(array)
}

/// The row order that sorts a batch by `(created_at, id)`, or `None` when it already is sorted
/// (then the batch is written as it is, without copying every column).
fn sort_order(created_at: &[i64], ids: &[i64]) -> Option<Vec<u32>> {
    let key = |i: usize| (created_at[i], ids[i]);
    if (1..created_at.len()).all(|i| key(i - 1) <= key(i)) {
        return None;
    }
    let rows = u32::try_from(created_at.len()).expect("a batch has fewer than 2^32 rows");
    let mut order: Vec<u32> = (0..rows).collect();
    // Ids are unique within a window (deduplicated before they get here), so no two keys are
    // equal and an unstable sort gives the one sorted order.
    order.sort_unstable_by_key(|&i| key(i as usize));
    Some(order)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::decode::decode_page;

    /// Writes `(id, second)` records to one part file, in this order.
    fn write_part(records: &[(i64, i64)]) -> FinishedPart {
        let dir = tempfile::tempdir().unwrap();
        let window = Window {
            start: 0,
            end: 86_400 * 365,
        };
        let mut part = PartFile::create(dir.path(), &window).unwrap();
        let items: Vec<String> = records
            .iter()
            .map(|(id, second)| {
                let t = chrono::DateTime::from_timestamp(*second, 0).unwrap();
                format!(
                    r#"{{"id":{id},"created_at":"{}","action":"login"}}"#,
                    t.format("%Y-%m-%dT%H:%M:%SZ")
                )
            })
            .collect();
        let body = format!(r#"{{"audit_logs":[{}]}}"#, items.join(","));
        let mut result = Ok(());
        decode_page(body.as_bytes(), Schema::get(), |row| {
            if result.is_ok() {
                result = part.push(&row);
            }
        })
        .unwrap();
        result.unwrap();
        part.finish().unwrap()
    }

    /// The declared sort order of each row group.
    type Declared = Vec<Option<Vec<SortingColumn>>>;

    /// The sorting columns of every row group, and the `(second, id)` of every row in file order.
    fn read_back(part: &FinishedPart) -> (Declared, Vec<(i64, i64)>) {
        let builder =
            ParquetRecordBatchReaderBuilder::try_new(part.file.try_clone().unwrap()).unwrap();
        let sorting = builder
            .metadata()
            .row_groups()
            .iter()
            .map(|g| g.sorting_columns().cloned())
            .collect();
        let mut rows = Vec::new();
        for batch in builder.build().unwrap() {
            let batch = batch.unwrap();
            let schema = Schema::get();
            let ts = batch
                .column(schema.created_at_index)
                .as_any()
                .downcast_ref::<TimestampMillisecondArray>()
                .unwrap()
                .clone();
            let ids = batch
                .column(schema.id_index)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .clone();
            rows.extend(
                ts.values()
                    .iter()
                    .zip(ids.values().iter())
                    .map(|(t, id)| (t / 1_000, *id)),
            );
        }
        (sorting, rows)
    }

    fn declared() -> Option<Vec<SortingColumn>> {
        Some(declared_sort())
    }

    #[test]
    fn a_part_whose_rows_arrive_out_of_order_across_batches_declares_no_sort_and_keeps_every_row() {
        // A full batch of later seconds, then rows from before it.
        let mut records: Vec<(i64, i64)> = (0..BATCH_ROWS as i64)
            .map(|i| (1_000_000 + i, 10_000 + i))
            .collect();
        records.extend((0..100).map(|i| (i, 5_000 + i)));
        let part = write_part(&records);
        assert_eq!(part.rows, records.len() as u64);
        assert_eq!(part.out_of_order, 100);
        assert!(!part.sorted());
        let (sorting, rows) = read_back(&part);
        assert!(!sorting.is_empty());
        assert!(sorting.iter().all(Option::is_none), "{sorting:?}");
        let mut written: Vec<(i64, i64)> = rows.iter().map(|&(s, id)| (id, s)).collect();
        written.sort_unstable();
        let mut expected = records.clone();
        expected.sort_unstable();
        assert_eq!(written, expected);
        assert_eq!(
            part.bytes,
            part.file.metadata().unwrap().len(),
            "the size is the rewritten file's"
        );
    }

    #[test]
    fn a_late_row_in_the_last_written_second_with_a_smaller_id_is_noticed() {
        // A full batch in second 100 (ids 1000..), cut by a row in second 101; then a row of second
        // 100 whose id is smaller than every written one: its time equals the written maximum.
        let mut records: Vec<(i64, i64)> =
            (0..BATCH_ROWS as i64).map(|i| (1_000 + i, 100)).collect();
        records.push((50_000, 101));
        records.push((5, 100));
        let part = write_part(&records);
        assert_eq!(part.out_of_order, 1);
        let (sorting, rows) = read_back(&part);
        assert!(sorting.iter().all(Option::is_none), "{sorting:?}");
        assert_eq!(rows.len(), records.len());
    }

    #[test]
    fn an_in_order_part_declares_its_sort_and_is_really_sorted() {
        // Several batches; ids descend within each second, as the API may return them.
        let records: Vec<(i64, i64)> = (0..30_000i64)
            .map(|i| (1_000_000 - i, 1_000 + i / 7))
            .collect();
        let part = write_part(&records);
        assert_eq!(part.out_of_order, 0);
        assert!(part.sorted());
        let (sorting, rows) = read_back(&part);
        assert!(!sorting.is_empty());
        assert!(sorting.iter().all(|s| *s == declared()), "{sorting:?}");
        assert_eq!(rows.len(), records.len());
        assert!(
            rows.windows(2).all(|w| w[0] < w[1]),
            "rows must be sorted by (created_at, id)"
        );
    }

    #[test]
    fn a_huge_second_does_not_pin_string_capacity_for_the_rest_of_the_file() {
        let mut builder = StringBuilder::new();
        for _ in 0..100_000 {
            builder.append_value("0123456789");
        }
        let array = finish_strings(&mut builder);
        assert_eq!(array.len(), 100_000);
        // Room for KEEP_STRING_ROWS plus headroom (the buffers round up a little), not 100,000.
        let kept = 2 * KEEP_STRING_ROWS;
        assert!(builder.values_slice().is_empty());
        assert!(
            builder.offsets_capacity() <= kept,
            "{}",
            builder.offsets_capacity()
        );
        assert!(
            builder.values_capacity() <= kept * 10,
            "{}",
            builder.values_capacity()
        );
    }

    #[test]
    fn sorted_batches_are_left_alone() {
        assert_eq!(sort_order(&[], &[]), None);
        assert_eq!(sort_order(&[1, 1, 2, 5], &[3, 4, 1, 1]), None);
    }

    #[test]
    fn batches_are_ordered_by_created_at_then_id() {
        let created_at = [10, 10, 10, 11, 11, 9];
        let ids = [7, 2, 5, 1, 0, 8];
        let order = sort_order(&created_at, &ids).unwrap();
        let keys: Vec<(i64, i64)> = order
            .iter()
            .map(|&i| (created_at[i as usize], ids[i as usize]))
            .collect();
        assert_eq!(keys, [(9, 8), (10, 2), (10, 5), (10, 7), (11, 0), (11, 1)]);
    }

    #[test]
    fn a_part_names_its_schema_version_and_window_in_its_metadata() {
        let part = write_part(&[(1, 100), (2, 200)]);
        let builder = ParquetRecordBatchReaderBuilder::try_new(part.file).unwrap();
        let labels: Vec<(String, Option<String>)> = builder
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .unwrap()
            .iter()
            .filter(|kv| kv.key.starts_with("auditlake."))
            .map(|kv| (kv.key.clone(), kv.value.clone()))
            .collect();
        let expected = [
            ("auditlake.schema_version", SCHEMA_VERSION.to_string()),
            ("auditlake.window_start", "1970-01-01T00:00:00Z".to_string()),
            ("auditlake.window_end", "1971-01-01T00:00:00Z".to_string()),
        ]
        .map(|(k, v)| (k.to_string(), Some(v)));
        assert_eq!(labels, expected);
        assert_eq!(SCHEMA_VERSION, 2);
    }
}
