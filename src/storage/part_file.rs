//! One Parquet part file, streamed to a local temporary file.
//!
//! Rows are appended into Arrow builders and cut into record batches only where the second of
//! `created_at` changes. The API returns records in `created_at` order, but in no documented order
//! within one second; sorting each batch by `(created_at, id)` is therefore enough for the whole file
//! to be sorted. Memory holds one batch and the Parquet row group being encoded, whatever the size
//! of the file.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom};
use std::path::Path as FsPath;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Int64Array, Int64Builder, RecordBatch, StringBuilder,
    TimestampMicrosecondArray, TimestampMicrosecondBuilder, UInt32Array,
};
use arrow::compute::take_record_batch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use crate::decode::{Cell, Row};
use crate::schema::{ColumnType, Schema, TIMEZONE};

/// Rows per record batch (a batch only ends between seconds, so it may run over): large enough
/// for efficient encoding, small enough that the unsorted buffer stays a few MB.
const BATCH_ROWS: usize = 8_192;

/// Rows per Parquet row group: the unit of statistics-based skipping and of the writer's memory
/// (one encoded row group is held before it is flushed to disk).
const ROW_GROUP_ROWS: usize = 131_072;

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
    /// Rows that arrived earlier in time than an already written batch: still written, but the
    /// file is then not fully sorted. Zero unless the API breaks its `sort=created_at` promise.
    pub out_of_order: u64,
}

/// A Parquet file being written.
pub struct PartFile {
    writer: ArrowWriter<BufWriter<File>>,
    columns: Vec<ColumnBuilder>,
    extra: StringBuilder,
    buffered: usize,
    /// The second of the last buffered row, to cut batches only between seconds.
    last_second: Option<i64>,
    /// The latest `created_at` written so far, to notice rows arriving out of order.
    written_max: Option<i64>,
    rows: u64,
    out_of_order: u64,
}

enum ColumnBuilder {
    Int64(Int64Builder),
    Utf8(StringBuilder),
    Timestamp(TimestampMicrosecondBuilder),
}

impl PartFile {
    /// Starts a part in a new anonymous temporary file under `dir` (deleted by the OS when
    /// dropped, so a crash leaves nothing behind).
    pub fn create(dir: &FsPath) -> Result<PartFile, PartError> {
        let schema = Schema::get();
        let file = tempfile::tempfile_in(dir)?;
        let sorting = vec![
            SortingColumn {
                column_idx: schema.created_at_index as i32,
                descending: false,
                nulls_first: false,
            },
            SortingColumn {
                column_idx: schema.id_index as i32,
                descending: false,
                nulls_first: false,
            },
        ];
        let props = WriterProperties::builder()
            // ZSTD level 1: within a few percent of level 3's size at a fraction of its CPU.
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(1)?))
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .set_sorting_columns(Some(sorting))
            // Unique or nearly unique per row: a dictionary would only be built (hashing every
            // value) to be thrown away. Low-cardinality columns (action, source_type, ...) keep it.
            .set_column_dictionary_enabled("id".into(), false)
            .set_column_dictionary_enabled("url".into(), false)
            .set_column_dictionary_enabled("change_description".into(), false)
            .set_column_dictionary_enabled("source_label".into(), false)
            .set_column_dictionary_enabled("extra_json".into(), false)
            .set_created_by(concat!("auditlake ", env!("CARGO_PKG_VERSION")).into())
            .build();
        let writer = ArrowWriter::try_new(
            BufWriter::with_capacity(1 << 20, file),
            schema.arrow().clone(),
            Some(props),
        )?;
        let columns = schema
            .fields
            .iter()
            .map(|f| match f.column {
                ColumnType::Int64 => ColumnBuilder::Int64(Int64Builder::with_capacity(BATCH_ROWS)),
                ColumnType::Utf8 => {
                    ColumnBuilder::Utf8(StringBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 32))
                }
                ColumnType::TimestampUsUtc => ColumnBuilder::Timestamp(
                    TimestampMicrosecondBuilder::with_capacity(BATCH_ROWS).with_timezone(TIMEZONE),
                ),
            })
            .collect();
        Ok(PartFile {
            writer,
            columns,
            extra: StringBuilder::new(),
            buffered: 0,
            last_second: None,
            written_max: None,
            rows: 0,
            out_of_order: 0,
        })
    }

    /// Rows appended so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Appends one row.
    pub fn push(&mut self, row: &Row<'_, '_>) -> Result<(), PartError> {
        let second = row.created_at.div_euclid(1_000_000);
        if self.buffered >= BATCH_ROWS && self.last_second != Some(second) {
            self.flush_batch()?;
        }
        if self.written_max.is_some_and(|max| row.created_at < max) {
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
            .downcast_ref::<TimestampMicrosecondArray>()
            .expect("created_at is built as a timestamp column")
            .values();
        let id_values = ids
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("id is built as an int64 column")
            .values();
        let max = created_values.iter().copied().max();
        if let Some(order) = sort_order(created_values, id_values) {
            batch = take_record_batch(&batch, &UInt32Array::from(order))?;
        }
        self.writer.write(&batch)?;
        self.written_max = self.written_max.max(max);
        self.buffered = 0;
        Ok(())
    }

    /// Flushes the last batch and the Parquet footer; the file is rewound for upload.
    pub fn finish(mut self) -> Result<FinishedPart, PartError> {
        self.flush_batch()?;
        let buffered = self.writer.into_inner()?;
        let mut file = buffered.into_inner().map_err(|e| e.into_error())?;
        let bytes = file.seek(SeekFrom::End(0))?;
        file.seek(SeekFrom::Start(0))?;
        Ok(FinishedPart {
            file,
            rows: self.rows,
            bytes,
            out_of_order: self.out_of_order,
        })
    }
}

/// The builder's strings as an array. The builder starts over with room for a batch like this
/// one: arrow's `finish` leaves it empty, and growing it again by doubling copied every column
/// several times per batch.
fn finish_strings(builder: &mut StringBuilder) -> ArrayRef {
    let array = builder.finish();
    let headroom = |n: usize| n + n / 8;
    *builder =
        StringBuilder::with_capacity(headroom(array.len()), headroom(array.value_data().len()));
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
}
