//! Erasure of a person's data from part files, the way Zendesk's own "automatically delete PII"
//! does it at the source: in every record of user N, the name becomes N and the IP goes.
//!
//! **The rule, exactly** (the README's "Erasure and retention" states it for people):
//! - a record is N's when `actor_id` = N, or `source_type` = `user` and `source_id` = N;
//! - where `actor_id` = N: `actor_name` becomes N as text (a null stays null), `ip_address`
//!   becomes null;
//! - where `source_type` = `user` and `source_id` = N: `source_label` becomes N as text;
//! - N's *names*: the `actor_name` and `source_label` values that those fields held for N
//!   (and the name after the prefix of a label such as `User: NAME`), and the IP addresses
//!   `ip_address` held for N. Each that occurs verbatim in one of N's records'
//!   `change_description` or `extra_json` (also in its JSON-escaped form there) becomes N,
//!   longest first, in one pass (a replacement is never replaced again).
//! - Records of other people stay byte for byte what they were, even where they mention the
//!   same name: names are not unique, and the lake cannot tell whose it is.
//!
//! Nothing else changes: the same rows in the same order, the same types, the same key-value
//! metadata and sort declaration. [`Erasure::scan`] reads only the six columns that tell whose
//! a record is and what names it holds; [`Erasure::rewrite`] streams the file batch by batch.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::path::Path as FsPath;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::Int64Type;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;

use crate::table::encode::{close_writer, declared_sort, new_writer, FinishedPart, PartError};
use crate::table::schema::Schema;

/// Rows per batch read: as the writer's.
const BATCH_ROWS: usize = 8_192;

/// The user ids whose data the lake must not hold (the erasure ledger's).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Erasure {
    ids: BTreeSet<i64>,
}

/// What the lake held for each erased id: names and IP addresses, to be replaced by the id
/// wherever they occur in the id's records' free text. Never written anywhere.
#[derive(Clone, Debug, Default)]
pub struct Names {
    held: BTreeMap<i64, BTreeSet<String>>,
}

impl Names {
    fn add(&mut self, id: i64, value: &str) {
        let own = id.to_string();
        if !value.is_empty() && value != own {
            self.held.entry(id).or_default().insert(value.to_string());
        }
    }

    /// Adds what `other` holds.
    pub fn extend(&mut self, other: Names) {
        for (id, names) in other.held {
            self.held.entry(id).or_default().extend(names);
        }
    }

    /// How many values are held, over every id (for tests and logs: never the values).
    pub fn len(&self) -> usize {
        self.held.values().map(BTreeSet::len).sum()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The replacements for a record of `ids` (its actor's, its source's), longest first, each
    /// value also in its JSON-escaped form when that differs.
    fn replacements(&self, ids: &[i64]) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for &id in ids {
            for name in self.held.get(&id).into_iter().flatten() {
                out.push((name.clone(), id.to_string()));
                let escaped = serde_json::to_string(name).expect("a string serializes");
                let escaped = &escaped[1..escaped.len() - 1];
                if escaped != name {
                    out.push((escaped.to_string(), id.to_string()));
                }
            }
        }
        out.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        out.dedup_by(|a, b| a.0 == b.0);
        out
    }
}

/// The erased values of records the lake holds (`actor_name`, `ip_address`, `source_label`,
/// `change_description`, `extra_json`), by record id.
pub type Known = std::collections::HashMap<i64, [Option<String>; 5]>;

/// What a file holds of the erased ids.
#[derive(Debug, Default)]
pub struct Scan {
    /// Rows that are an erased id's records.
    pub rows: u64,
    /// The names and IPs those rows hold.
    pub names: Names,
}

/// A file rewritten without the erased data.
#[derive(Debug)]
pub struct Rewritten {
    pub part: FinishedPart,
    /// Rows whose values changed.
    pub rows_changed: u64,
}

/// The positions of the columns the rule reads and writes.
struct Columns {
    actor_id: usize,
    actor_name: usize,
    ip_address: usize,
    source_id: usize,
    source_type: usize,
    source_label: usize,
    change_description: usize,
    extra: usize,
}

impl Columns {
    fn get() -> Columns {
        let schema = Schema::get();
        let at = |name: &str| {
            schema
                .position(name)
                .unwrap_or_else(|| panic!("the schema declares {name:?} (a test checks it)"))
        };
        Columns {
            actor_id: at("actor_id"),
            actor_name: at("actor_name"),
            ip_address: at("ip_address"),
            source_id: at("source_id"),
            source_type: at("source_type"),
            source_label: at("source_label"),
            change_description: at("change_description"),
            extra: schema.fields.len(),
        }
    }
}

/// The erased ids a row is a record of: its actor's, its user source's.
fn ids_of(batch: &RecordBatch, c: &Columns, erased: &BTreeSet<i64>, row: usize) -> Vec<i64> {
    let mut ids = Vec::new();
    let actor = batch.column(c.actor_id).as_primitive::<Int64Type>();
    if actor.is_valid(row) && erased.contains(&actor.value(row)) {
        ids.push(actor.value(row));
    }
    if let Some(source) = user_source(batch, c, row) {
        if erased.contains(&source) && !ids.contains(&source) {
            ids.push(source);
        }
    }
    ids
}

/// The row's `source_id` where its source is a user.
fn user_source(batch: &RecordBatch, c: &Columns, row: usize) -> Option<i64> {
    let kind = batch.column(c.source_type).as_string::<i32>();
    let source = batch.column(c.source_id).as_primitive::<Int64Type>();
    (kind.is_valid(row) && kind.value(row) == "user" && source.is_valid(row))
        .then(|| source.value(row))
}

/// The name inside a label such as `User: NAME`.
fn inner_name(label: &str) -> Option<&str> {
    let (prefix, name) = label.split_once(": ")?;
    let is_prefix = !prefix.is_empty()
        && prefix.len() <= 32
        && prefix.chars().all(|ch| ch.is_alphabetic() || ch == ' ');
    is_prefix.then_some(name.trim()).filter(|n| !n.is_empty())
}

/// `text` with every `(from, to)` of `replacements` (longest first) replaced in one pass.
fn replace_all(text: &str, replacements: &[(String, String)]) -> Option<String> {
    if !replacements
        .iter()
        .any(|(from, _)| text.contains(from.as_str()))
    {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'outer: while !rest.is_empty() {
        for (from, to) in replacements {
            if let Some(after) = rest.strip_prefix(from.as_str()) {
                out.push_str(to);
                rest = after;
                continue 'outer;
            }
        }
        let ch = rest.chars().next().expect("not empty");
        out.push(ch);
        rest = &rest[ch.len_utf8()..];
    }
    Some(out)
}

impl Erasure {
    pub fn new(ids: impl IntoIterator<Item = i64>) -> Erasure {
        Erasure {
            ids: ids.into_iter().collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn ids(&self) -> &BTreeSet<i64> {
        &self.ids
    }

    /// Adds `other`'s ids.
    pub fn extend(&mut self, other: &Erasure) {
        self.ids.extend(other.ids.iter().copied());
    }

    /// What `file` holds of the erased ids: their rows and names (reads six columns). The file
    /// is left rewound.
    pub fn scan(&self, file: &mut File) -> Result<Scan, PartError> {
        let mut scan = Scan::default();
        if self.ids.is_empty() {
            return Ok(scan);
        }
        file.seek(SeekFrom::Start(0))?;
        let c = Columns::get();
        let builder = ParquetRecordBatchReaderBuilder::try_new(file.try_clone()?)?;
        let mut wanted = [
            c.actor_id,
            c.actor_name,
            c.ip_address,
            c.source_id,
            c.source_type,
            c.source_label,
        ];
        // A projection reads its columns in the file's order.
        wanted.sort_unstable();
        let mask = ProjectionMask::roots(builder.parquet_schema(), wanted);
        let reader = builder
            .with_projection(mask)
            .with_batch_size(BATCH_ROWS)
            .build()?;
        for batch in reader {
            let batch = batch?;
            // Projected: the columns in schema order, renumbered.
            let at = |column: usize| wanted.iter().position(|&w| w == column).expect("read");
            let projected = Columns {
                actor_id: at(c.actor_id),
                actor_name: at(c.actor_name),
                ip_address: at(c.ip_address),
                source_id: at(c.source_id),
                source_type: at(c.source_type),
                source_label: at(c.source_label),
                change_description: usize::MAX,
                extra: usize::MAX,
            };
            scan_batch(&batch, &projected, &self.ids, &mut scan);
        }
        file.seek(SeekFrom::Start(0))?;
        Ok(scan)
    }

    /// The erased values the lake holds for the erased ids' records in `file` (a file the lake
    /// holds, already erased), by record id: what a rewrite of the same records keeps. The file
    /// is left rewound.
    pub fn known(&self, file: &mut File) -> Result<Known, PartError> {
        let mut known = Known::new();
        if self.ids.is_empty() {
            return Ok(known);
        }
        file.seek(SeekFrom::Start(0))?;
        let c = Columns::get();
        let reader = ParquetRecordBatchReaderBuilder::try_new(file.try_clone()?)?
            .with_batch_size(BATCH_ROWS)
            .build()?;
        for batch in reader {
            let batch = batch?;
            let id = batch
                .column(Schema::get().id_index)
                .as_primitive::<Int64Type>();
            let text = |column: usize, r: usize| {
                let array = batch.column(column).as_string::<i32>();
                array.is_valid(r).then(|| array.value(r).to_string())
            };
            for r in 0..batch.num_rows() {
                if !ids_of(&batch, &c, &self.ids, r).is_empty() {
                    let fields = [
                        c.actor_name,
                        c.ip_address,
                        c.source_label,
                        c.change_description,
                        c.extra,
                    ];
                    known.insert(id.value(r), fields.map(|f| text(f, r)));
                }
            }
        }
        file.seek(SeekFrom::Start(0))?;
        Ok(known)
    }

    /// `file` rewritten under `dir` with the erased ids' data replaced as the rule says, names
    /// from `names` (what the lake held for them); a record in `known` (the lake's own erased
    /// values) keeps those. `None` when no value would change (the file is left rewound).
    /// Streams batch by batch.
    pub fn rewrite(
        &self,
        file: &mut File,
        dir: &FsPath,
        names: &Names,
        known: &Known,
    ) -> Result<Option<Rewritten>, PartError> {
        if self.ids.is_empty() {
            return Ok(None);
        }
        file.seek(SeekFrom::Start(0))?;
        let schema = Schema::get();
        let c = Columns::get();
        let builder = ParquetRecordBatchReaderBuilder::try_new(file.try_clone()?)?;
        let metadata = builder.metadata().clone();
        let declared = declared_sort();
        let sorted = metadata
            .row_groups()
            .iter()
            .all(|g| g.sorting_columns() == Some(&declared));
        let labels = metadata
            .file_metadata()
            .key_value_metadata()
            .cloned()
            .unwrap_or_default();
        let reader = builder.with_batch_size(BATCH_ROWS).build()?;
        let mut writer = new_writer(dir, sorted, &labels)?;
        let (mut rows, mut rows_changed) = (0u64, 0u64);
        for batch in reader {
            let batch = RecordBatch::try_new(schema.arrow().clone(), batch?.columns().to_vec())?;
            let (batch, changed) = erase_batch(&batch, &c, &self.ids, names, known)?;
            rows += batch.num_rows() as u64;
            rows_changed += changed;
            writer.write(&batch)?;
        }
        let (mut out, sha256) = close_writer(writer)?;
        file.seek(SeekFrom::Start(0))?;
        if rows_changed == 0 {
            return Ok(None);
        }
        let bytes = out.seek(SeekFrom::End(0))?;
        out.seek(SeekFrom::Start(0))?;
        Ok(Some(Rewritten {
            part: FinishedPart {
                file: out,
                rows,
                bytes,
                sha256,
                out_of_order: u64::from(!sorted),
            },
            rows_changed,
        }))
    }
}

/// Adds what `batch` (the six scanned columns, positions as `c` says) holds of `erased`.
fn scan_batch(batch: &RecordBatch, c: &Columns, erased: &BTreeSet<i64>, scan: &mut Scan) {
    let actor = batch.column(c.actor_id).as_primitive::<Int64Type>();
    let actor_name = batch.column(c.actor_name).as_string::<i32>();
    let ip = batch.column(c.ip_address).as_string::<i32>();
    let label = batch.column(c.source_label).as_string::<i32>();
    for row in 0..batch.num_rows() {
        let mut of = false;
        if actor.is_valid(row) && erased.contains(&actor.value(row)) {
            let id = actor.value(row);
            of = true;
            if actor_name.is_valid(row) {
                scan.names.add(id, actor_name.value(row));
            }
            if ip.is_valid(row) {
                scan.names.add(id, ip.value(row));
            }
        }
        if let Some(id) = user_source(batch, c, row).filter(|id| erased.contains(id)) {
            of = true;
            if label.is_valid(row) {
                let value = label.value(row);
                scan.names.add(id, value);
                if let Some(name) = inner_name(value) {
                    scan.names.add(id, name);
                }
            }
        }
        scan.rows += u64::from(of);
    }
}

/// A column's new value at a row, given its old one: `None` keeps it, `Some(v)` sets `v` (a
/// string or null).
type NewValue<'a> = dyn Fn(usize, Option<&str>) -> Option<Option<String>> + 'a;

/// `batch` with the rule applied to the rows of `erased`, and how many rows changed.
fn erase_batch(
    batch: &RecordBatch,
    c: &Columns,
    erased: &BTreeSet<i64>,
    names: &Names,
    known: &Known,
) -> Result<(RecordBatch, u64), PartError> {
    let rows = batch.num_rows();
    let of: Vec<Vec<i64>> = (0..rows).map(|r| ids_of(batch, c, erased, r)).collect();
    if of.iter().all(Vec::is_empty) {
        return Ok((batch.clone(), 0));
    }
    let actor = batch.column(c.actor_id).as_primitive::<Int64Type>().clone();
    let id = batch
        .column(Schema::get().id_index)
        .as_primitive::<Int64Type>()
        .clone();
    // A record the lake already holds erased keeps the lake's values: what the rule made of it
    // with every name the lake held then (a repair fetching it again may carry fewer).
    let lake = |r: usize, field: usize| -> Option<Option<String>> {
        if of[r].is_empty() {
            return None;
        }
        known.get(&id.value(r)).map(|held| held[field].clone())
    };
    let mut changed = vec![false; rows];
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    let mut edit = |column: usize, value: &NewValue| {
        let array = batch.column(column).as_string::<i32>();
        let mut any = false;
        let values: Vec<Option<String>> = (0..rows)
            .map(|r| {
                let old = array.is_valid(r).then(|| array.value(r));
                match value(r, old) {
                    Some(new) if new.as_deref() != old => {
                        changed[r] = true;
                        any = true;
                        new
                    }
                    _ => old.map(str::to_string),
                }
            })
            .collect();
        if any {
            columns[column] = Arc::new(StringArray::from(values));
        }
    };
    let erased_actor = |r: usize| actor.is_valid(r) && erased.contains(&actor.value(r));
    edit(c.actor_name, &|r, old| {
        lake(r, 0).or_else(|| {
            (erased_actor(r) && old.is_some()).then(|| Some(actor.value(r).to_string()))
        })
    });
    edit(c.ip_address, &|r, _| {
        lake(r, 1).or_else(|| erased_actor(r).then_some(None))
    });
    edit(c.source_label, &|r, old| {
        lake(r, 2).or_else(|| {
            let source = user_source(batch, c, r).filter(|id| erased.contains(id))?;
            old.is_some().then(|| Some(source.to_string()))
        })
    });
    let replacements: Vec<Vec<(String, String)>> =
        of.iter().map(|ids| names.replacements(ids)).collect();
    for (field, column) in [(3, c.change_description), (4, c.extra)] {
        edit(column, &|r, old| {
            lake(r, field).or_else(|| {
                let new = replace_all(old?, &replacements[r])?;
                Some(Some(new))
            })
        });
    }
    let batch = RecordBatch::try_new(batch.schema(), columns)?;
    debug_assert!(batch.column(c.actor_id).as_any().is::<Int64Array>());
    Ok((batch, changed.iter().filter(|&&c| c).count() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::window::Window;
    use crate::table::decode::decode_page;
    use crate::table::route::WindowRouter;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    const ADA: i64 = 361_000_000_001;
    const BO: i64 = 361_000_000_002;

    fn page() -> String {
        let records = [
            // Ada's: her name in the description and in an unknown field.
            format!(
                r#"{{"id":1,"created_at":"2024-03-01T00:00:01Z","actor_id":{ADA},"actor_name":"Ada Lovelace","ip_address":"203.0.113.7","source_type":"ticket","source_id":5,"source_label":"Ticket: Printer","change_description":"Ada Lovelace signed in from 203.0.113.7","note":"by Ada Lovelace"}}"#
            ),
            // Bo changes Ada's user: Ada is the source.
            format!(
                r#"{{"id":2,"created_at":"2024-03-01T00:00:02Z","actor_id":{BO},"actor_name":"Bo","ip_address":"198.51.100.1","source_type":"user","source_id":{ADA},"source_label":"User: Ada L.","change_description":"Name changed from Ada L. to Ada Lovelace"}}"#
            ),
            // Someone else named Ada: untouched.
            format!(
                r#"{{"id":3,"created_at":"2024-03-01T00:00:03Z","actor_id":{BO},"actor_name":"Ada Lovelace","ip_address":"203.0.113.7","source_type":"ticket","source_id":6,"source_label":"Ticket: Ada Lovelace","change_description":"Ada Lovelace again"}}"#
            ),
            // Ada, an old-style record without a name.
            format!(
                r#"{{"id":4,"created_at":"2024-03-01T00:00:04Z","actor_id":{ADA},"source_type":"ticket","source_id":7,"source_label":"x","change_description":null}}"#
            ),
        ];
        format!(r#"{{"audit_logs":[{}]}}"#, records.join(","))
    }

    fn part(dir: &FsPath) -> File {
        let window = Window {
            start: 1_709_251_200,
            end: 1_709_337_600,
        };
        let mut router = WindowRouter::new(window, dir.to_path_buf());
        decode_page(page().as_bytes(), Schema::get(), |row| {
            router.push(&row).unwrap()
        })
        .unwrap();
        let mut parts = router.finish().unwrap().parts;
        parts.remove(0).part.file
    }

    fn rows(file: &File) -> Vec<Vec<Option<String>>> {
        let reader = ParquetRecordBatchReaderBuilder::try_new(file.try_clone().unwrap())
            .unwrap()
            .build()
            .unwrap();
        let mut out = Vec::new();
        for batch in reader {
            let batch = batch.unwrap();
            for r in 0..batch.num_rows() {
                out.push(
                    batch
                        .columns()
                        .iter()
                        .map(|a| {
                            let text = arrow::util::display::ArrayFormatter::try_new(
                                a.as_ref(),
                                &Default::default(),
                            )
                            .unwrap()
                            .value(r)
                            .to_string();
                            a.is_valid(r).then_some(text)
                        })
                        .collect(),
                );
            }
        }
        out
    }

    #[test]
    fn the_rule_replaces_names_by_the_id_and_removes_the_ip_in_the_persons_records_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = part(dir.path());
        let before = rows(&file);
        let erasure = Erasure::new([ADA]);
        let scan = erasure.scan(&mut file).unwrap();
        assert_eq!(scan.rows, 3, "records 1, 2 and 4 are Ada's");
        // "Ada Lovelace", "203.0.113.7", "User: Ada L.", "Ada L.".
        assert_eq!(scan.names.len(), 4);
        let out = erasure
            .rewrite(&mut file, dir.path(), &scan.names, &Known::new())
            .unwrap()
            .expect("Ada's records change");
        assert_eq!(out.rows_changed, 2, "record 4 holds no name and no IP");
        assert_eq!(out.part.rows, 4);
        let after = rows(&out.part.file);
        let c = Columns::get();
        let ada = ADA.to_string();
        assert_eq!(after[0][c.actor_name].as_deref(), Some(ada.as_str()));
        assert_eq!(after[0][c.ip_address], None);
        assert_eq!(
            after[0][c.change_description].as_deref(),
            Some(format!("{ADA} signed in from {ADA}").as_str())
        );
        assert_eq!(
            after[0][c.extra].as_deref(),
            Some(format!(r#"{{"note":"by {ADA}"}}"#).as_str())
        );
        assert_eq!(after[1][c.source_label].as_deref(), Some(ada.as_str()));
        assert_eq!(
            after[1][c.change_description].as_deref(),
            Some(format!("Name changed from {ADA} to {ADA}").as_str())
        );
        assert_eq!(
            after[1][c.actor_name].as_deref(),
            Some("Bo"),
            "Bo is not erased"
        );
        assert_eq!(after[2], before[2], "another person's record is untouched");
        assert_eq!(after[3], before[3]);
        for r in [0, 1] {
            for (column, value) in after[r].iter().enumerate() {
                if ![
                    c.actor_name,
                    c.ip_address,
                    c.source_label,
                    c.change_description,
                    c.extra,
                ]
                .contains(&column)
                {
                    assert_eq!(value, &before[r][column], "column {column} keeps its value");
                }
            }
        }
        // Erasing again changes nothing: the file is kept as it is.
        let mut erased = out.part.file;
        let again = erasure.scan(&mut erased).unwrap();
        assert!(erasure
            .rewrite(&mut erased, dir.path(), &again.names, &Known::new())
            .unwrap()
            .is_none());
    }

    #[test]
    fn a_rewrite_keeps_the_files_metadata_and_sort_declaration() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = part(dir.path());
        let erasure = Erasure::new([ADA]);
        let names = erasure.scan(&mut file).unwrap().names;
        let out = erasure
            .rewrite(&mut file, dir.path(), &names, &Known::new())
            .unwrap()
            .unwrap();
        let meta = |f: &File| {
            let b = ParquetRecordBatchReaderBuilder::try_new(f.try_clone().unwrap()).unwrap();
            let m = b.metadata().clone();
            (
                m.file_metadata().key_value_metadata().cloned(),
                m.row_group(0).sorting_columns().cloned(),
            )
        };
        assert_eq!(meta(&file), meta(&out.part.file));
        assert_eq!(out.part.out_of_order, 0);
    }

    #[test]
    fn a_record_the_lake_holds_erased_keeps_the_lakes_values() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = part(dir.path());
        let erasure = Erasure::new([ADA]);
        let names = erasure.scan(&mut file).unwrap().names;
        let mut erased = erasure
            .rewrite(&mut file, dir.path(), &names, &Known::new())
            .unwrap()
            .unwrap()
            .part
            .file;
        let known = erasure.known(&mut erased).unwrap();
        assert_eq!(known.len(), 3, "records 1, 2 and 4");
        // Fetched again with fewer names to go by ("Ada L." alone is no longer held): the
        // lake's erased values stand, not what the names of this file alone would make.
        let fewer = Names::default();
        let again = erasure
            .rewrite(&mut file, dir.path(), &fewer, &known)
            .unwrap()
            .unwrap();
        assert_eq!(rows(&again.part.file), rows(&erased));
    }

    #[test]
    fn replacement_is_one_pass_and_longest_first() {
        let names = [
            ("Ada Lovelace".to_string(), "7".to_string()),
            ("Ada".to_string(), "7".to_string()),
            ("7".to_string(), "x".to_string()),
        ];
        assert_eq!(
            replace_all("Ada Lovelace met Ada", &names).as_deref(),
            Some("7 met 7")
        );
        assert_eq!(replace_all("nobody", &names), None);
        assert_eq!(inner_name("User: Ada L."), Some("Ada L."));
        assert_eq!(inner_name("C:\\Users: x"), None);
    }
}
