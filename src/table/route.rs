//! Routing one window's rows: keep exactly the window's records, once each, and send them to the
//! part file of their UTC day.
//!
//! The query asked for a slightly wider range than the window (see
//! [`Window::query_range`](crate::plan::window::Window::query_range)), and pages may repeat a record, so
//! this is where exactness is made: `start <= created_at < end`, deduplicated on `id`.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use chrono::NaiveDate;

use crate::plan::window::Window;

use crate::table::decode::Row;
use crate::table::encode::{FinishedPart, PartError, PartFile};
use crate::units::time::day_of;

/// Rows per part file before the next part of the same day starts: keeps single files within
/// what engines split and cache comfortably. A window's file names stay deterministic because
/// rows arrive in the same order on every run.
pub(crate) const ROWS_PER_FILE: u64 = 4_000_000;

/// A hasher for the window's set of ids: one multiply instead of SipHash. Ids come from the
/// account's own API, not an adversary, so flooding resistance buys nothing here.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_i64(&mut self, n: i64) {
        // Fibonacci hashing: spreads consecutive ids over the table's high bits, which hashbrown uses.
        self.0 = (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type IdSet = HashSet<i64, BuildHasherDefault<IdHasher>>;

/// Entries the current second's id set keeps room for when the next second starts: a second with
/// thousands of records grows the set, and without shrinking it that table would stay for the rest
/// of the window.
const SECOND_SET_KEEP: usize = 1_024;

/// Remembers which ids a window has kept, in memory bounded by the largest second while rows
/// arrive in time order.
///
/// A record's `created_at` never changes, so a repeated record repeats its second: while rows
/// arrive in time order only the current second's ids need a hash set. Every kept id is also
/// appended to a spill file (8 bytes each, buffered) in the window's temporary directory. Should a
/// row arrive earlier than the current second, the spill is read back into a full set for the rest
/// of the window, so exactness never depends on the API's ordering; only then does memory grow
/// with the window.
struct Dedupe {
    window: String,
    tmp_dir: PathBuf,
    /// The second of the latest row, `None` before the first.
    second: Option<i64>,
    this_second: IdSet,
    /// Every id kept so far, created on the first one.
    spill: Option<BufWriter<File>>,
    /// Every id kept, once a row arrived out of order.
    everything: Option<IdSet>,
}

impl Dedupe {
    fn new(window: String, tmp_dir: PathBuf) -> Dedupe {
        Dedupe {
            window,
            tmp_dir,
            second: None,
            this_second: IdSet::default(),
            spill: None,
            everything: None,
        }
    }

    /// Whether `id` (created in `second`) is seen for the first time; records it if so.
    fn first_time(&mut self, id: i64, second: i64) -> io::Result<bool> {
        if let Some(all) = &mut self.everything {
            return Ok(all.insert(id));
        }
        match self.second {
            Some(current) if second < current => {
                let mut all = self.read_spill()?;
                tracing::warn!(
                    window = %self.window,
                    ids = all.len(),
                    second,
                    current,
                    "a row arrived earlier than the current second; keeping every id of the window in memory"
                );
                let fresh = all.insert(id);
                self.everything = Some(all);
                self.this_second = IdSet::default();
                return Ok(fresh);
            }
            Some(current) if second == current => {}
            _ => {
                self.second = Some(second);
                self.this_second.clear();
                if self.this_second.capacity() > SECOND_SET_KEEP {
                    self.this_second.shrink_to(SECOND_SET_KEEP);
                }
            }
        }
        if !self.this_second.insert(id) {
            return Ok(false);
        }
        let spill = match &mut self.spill {
            Some(spill) => spill,
            None => self
                .spill
                .insert(BufWriter::new(tempfile::tempfile_in(&self.tmp_dir)?)),
        };
        spill.write_all(&id.to_le_bytes())?;
        Ok(true)
    }

    /// Every id kept so far, read back from the spill (which is then no longer needed).
    fn read_spill(&mut self) -> io::Result<IdSet> {
        let Some(spill) = self.spill.take() else {
            return Ok(IdSet::default());
        };
        let mut file = spill.into_inner().map_err(|e| e.into_error())?;
        let len = file.seek(SeekFrom::End(0))?;
        file.seek(SeekFrom::Start(0))?;
        let mut all = IdSet::with_capacity_and_hasher(
            usize::try_from(len / 8).unwrap_or(0),
            Default::default(),
        );
        let mut reader = BufReader::new(file);
        let mut id = [0u8; 8];
        for _ in 0..len / 8 {
            reader.read_exact(&mut id)?;
            all.insert(i64::from_le_bytes(id));
        }
        Ok(all)
    }

    /// Ids held in memory: the current second's while in order, every id after the fallback.
    #[cfg(test)]
    fn ids_in_memory(&self) -> usize {
        self.this_second.capacity() + self.everything.as_ref().map_or(0, |all| all.capacity())
    }
}

/// What a router made of a window's (or a piece's) records: the part files, staged on local
/// disk, and the counts.
#[derive(Debug, Default)]
pub struct Staged {
    pub parts: Vec<RoutedPart>,
    pub counts: RouteCounts,
}

/// A part file of one day, finished and waiting for upload.
#[derive(Debug)]
pub struct RoutedPart {
    pub day: NaiveDate,
    pub seq: u32,
    pub part: FinishedPart,
}

/// Counts of what happened to the rows of a window.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RouteCounts {
    /// Rows kept and written.
    pub kept: u64,
    /// Rows outside the window (the query's extra margin): dropped.
    pub outside: u64,
    /// Rows whose id was already kept: dropped.
    pub duplicates: u64,
    /// Rows written after a later row of the same file (see [`FinishedPart::out_of_order`]).
    pub out_of_order: u64,
    /// Fields the schema does not know, kept in `extra_json`, with the rows that carried each:
    /// schema drift, announced by the run.
    pub extra_fields: BTreeMap<String, u64>,
}

impl RouteCounts {
    /// Adds the counts of another part of the same window (a piece of it).
    pub fn add(&mut self, other: RouteCounts) {
        self.kept += other.kept;
        self.outside += other.outside;
        self.duplicates += other.duplicates;
        self.out_of_order += other.out_of_order;
        for (field, rows) in other.extra_fields {
            *self.extra_fields.entry(field).or_insert(0) += rows;
        }
    }
}

/// The keys of an `extra_json` object (its values are skipped, not parsed).
fn extra_keys(extra: &str) -> Vec<String> {
    serde_json::from_str::<BTreeMap<String, serde::de::IgnoredAny>>(extra)
        .map(|fields| fields.into_keys().collect())
        .unwrap_or_default()
}

/// What becomes of one record offered to a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Outside `[start, end)`: the query's extra margin.
    Outside,
    /// An id already kept.
    Repeat,
    /// The first time this id is seen in the window: keep it.
    Keep,
}

/// Exactness in one place, for the export and for `list`: exactly the records with
/// `start <= created_at < end`, each id once.
pub struct ExactCut {
    window: Window,
    seen: Dedupe,
}

impl ExactCut {
    /// Starts a cut of `window`, spilling kept ids under `tmp_dir` (8 bytes each, read back only
    /// if rows arrive out of order).
    pub fn new(window: Window, tmp_dir: PathBuf) -> ExactCut {
        ExactCut {
            seen: Dedupe::new(window.id(), tmp_dir),
            window,
        }
    }

    /// Offers the record `id` created in `second` (UTC seconds).
    pub fn offer(&mut self, id: i64, second: i64) -> io::Result<Cut> {
        if !self.window.contains(second) {
            Ok(Cut::Outside)
        } else if self.seen.first_time(id, second)? {
            Ok(Cut::Keep)
        } else {
            Ok(Cut::Repeat)
        }
    }
}

/// The window being written: one open part file per day that still receives rows.
pub struct WindowRouter {
    tmp_dir: PathBuf,
    cut: ExactCut,
    /// The window the files belong to (the cut's own, or the window it is a piece of).
    window: Window,
    open: BTreeMap<NaiveDate, (u32, PartFile)>,
    next_seq: BTreeMap<NaiveDate, u32>,
    finished: Vec<RoutedPart>,
    counts: RouteCounts,
}

impl WindowRouter {
    /// Starts routing `window`, with temporary files under `tmp_dir`.
    #[cfg(test)]
    pub fn new(window: Window, tmp_dir: PathBuf) -> WindowRouter {
        WindowRouter::piece(window, window, tmp_dir)
    }

    /// Starts routing the seconds `piece` of `window`: rows are cut to the piece, files are
    /// labelled with the window (whose commit gathers every piece).
    pub fn piece(piece: Window, window: Window, tmp_dir: PathBuf) -> WindowRouter {
        WindowRouter {
            cut: ExactCut::new(piece, tmp_dir.clone()),
            window,
            tmp_dir,
            open: BTreeMap::new(),
            next_seq: BTreeMap::new(),
            finished: Vec::new(),
            counts: RouteCounts::default(),
        }
    }

    /// Offers one decoded row.
    pub fn push(&mut self, row: &Row<'_, '_>) -> Result<(), PartError> {
        let second = row.created_at.div_euclid(1_000);
        match self.cut.offer(row.id, second)? {
            Cut::Outside => {
                self.counts.outside += 1;
                return Ok(());
            }
            Cut::Repeat => {
                self.counts.duplicates += 1;
                return Ok(());
            }
            Cut::Keep => {}
        }
        let day = day_of(second);
        // Rows come in created_at order: once a later day starts, earlier days are complete.
        while let Some((&first, _)) = self.open.first_key_value() {
            if first >= day {
                break;
            }
            self.close(first)?;
        }
        if !self.open.contains_key(&day) {
            let seq = self.take_seq(day);
            self.open
                .insert(day, (seq, PartFile::create(&self.tmp_dir, &self.window)?));
        }
        let (_, part) = self.open.get_mut(&day).expect("opened above");
        part.push(row)?;
        self.counts.kept += 1;
        if let Some(extra) = row.extra {
            for key in extra_keys(extra) {
                *self.counts.extra_fields.entry(key).or_insert(0) += 1;
            }
        }
        if part.rows() >= ROWS_PER_FILE {
            self.close(day)?;
        }
        Ok(())
    }

    fn take_seq(&mut self, day: NaiveDate) -> u32 {
        let next = self.next_seq.entry(day).or_insert(0);
        let seq = *next;
        *next += 1;
        seq
    }

    fn close(&mut self, day: NaiveDate) -> Result<(), PartError> {
        if let Some((seq, part)) = self.open.remove(&day) {
            let part = part.finish()?;
            self.counts.out_of_order += part.out_of_order;
            self.finished.push(RoutedPart { day, seq, part });
        }
        Ok(())
    }

    /// Finishes every open file and returns all parts with the window's counts.
    pub fn finish(mut self) -> Result<Staged, PartError> {
        let days: Vec<NaiveDate> = self.open.keys().copied().collect();
        for day in days {
            self.close(day)?;
        }
        Ok(Staged {
            parts: self.finished,
            counts: self.counts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::decode::decode_page;
    use crate::table::schema::Schema;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    const DAY: i64 = 86_400;

    fn page(records: &[(i64, &str)]) -> String {
        let items: Vec<String> = records
            .iter()
            .map(|(id, t)| format!(r#"{{"id":{id},"created_at":"{t}","action":"login"}}"#))
            .collect();
        format!(r#"{{"audit_logs":[{}]}}"#, items.join(","))
    }

    fn route(window: Window, body: &str) -> (Vec<RoutedPart>, RouteCounts) {
        let staged = staged(window, body);
        (staged.parts, staged.counts)
    }

    fn staged(window: Window, body: &str) -> Staged {
        let dir = tempfile::tempdir().unwrap();
        let mut router = WindowRouter::new(window, dir.path().to_path_buf());
        let mut err = None;
        decode_page(body.as_bytes(), Schema::get(), |row| {
            if let Err(e) = router.push(&row) {
                err = Some(e);
            }
        })
        .unwrap();
        assert!(err.is_none());
        router.finish().unwrap()
    }

    fn read_ids(part: &FinishedPart) -> Vec<(i64, i64)> {
        let file = part.file.try_clone().unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        let mut out = Vec::new();
        for batch in reader {
            let batch = batch.unwrap();
            let ids = batch
                .column_by_name("id")
                .unwrap()
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .unwrap()
                .clone();
            let ts = batch
                .column_by_name("created_at")
                .unwrap()
                .as_any()
                .downcast_ref::<arrow::array::TimestampMillisecondArray>()
                .unwrap()
                .clone();
            out.extend(
                ts.values()
                    .iter()
                    .zip(ids.values().iter())
                    .map(|(t, i)| (*t / 1_000, *i)),
            );
        }
        out
    }

    #[test]
    fn fields_the_schema_does_not_know_are_counted_per_kept_row() {
        let window = Window {
            start: DAY,
            end: 2 * DAY,
        };
        let record = |id: i64, t: &str, extra: &str| {
            format!(r#"{{"id":{id},"created_at":"{t}","action":"login"{extra}}}"#)
        };
        let body = format!(
            r#"{{"audit_logs":[{}]}}"#,
            [
                record(1, "1970-01-01T23:59:59Z", r#","risk_score":3"#), // outside: not counted
                record(
                    2,
                    "1970-01-02T00:00:01Z",
                    r#","risk_score":1,"metadata":{"a":[1]}"#
                ),
                record(
                    2,
                    "1970-01-02T00:00:01Z",
                    r#","risk_score":1,"metadata":{"a":[1]}"#
                ), // repeat
                record(3, "1970-01-02T00:00:02Z", r#","metadata":null"#),
                record(4, "1970-01-02T00:00:03Z", ""),
            ]
            .join(",")
        );
        let (_, counts) = route(window, &body);
        assert_eq!(counts.kept, 3);
        assert_eq!(
            counts.extra_fields,
            BTreeMap::from([("metadata".to_string(), 2), ("risk_score".to_string(), 1)])
        );
    }

    #[test]
    fn keeps_exactly_the_window_once_and_sorted() {
        let window = Window {
            start: DAY,
            end: 2 * DAY,
        };
        let body = page(&[
            (1, "1970-01-01T23:59:59Z"), // the query's margin before the window
            (5, "1970-01-02T00:00:00Z"), // first instant of the window
            (3, "1970-01-02T00:00:00Z"),
            (5, "1970-01-02T00:00:00Z"), // repeated by the API
            (4, "1970-01-02T23:59:59Z"), // last instant of the window
            (2, "1970-01-03T00:00:00Z"), // the next window's first instant
        ]);
        let (parts, counts) = route(window, &body);
        assert_eq!(
            counts,
            RouteCounts {
                kept: 3,
                outside: 2,
                duplicates: 1,
                out_of_order: 0,
                extra_fields: BTreeMap::new(),
            }
        );
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].day.to_string(), "1970-01-02");
        assert_eq!(
            read_ids(&parts[0].part),
            [(DAY, 3), (DAY, 5), (2 * DAY - 1, 4)]
        );
    }

    #[test]
    fn repeats_are_dropped_even_when_the_api_returns_rows_out_of_order() {
        let window = Window { start: 0, end: DAY };
        let body = page(&[
            (1, "1970-01-01T00:00:01Z"),
            (2, "1970-01-01T00:00:02Z"),
            (3, "1970-01-01T00:00:03Z"),
            (1, "1970-01-01T00:00:01Z"), // out of order and a repeat
            (4, "1970-01-01T00:00:01Z"), // out of order, new
            (2, "1970-01-01T00:00:02Z"), // a repeat, after the switch to the full set
            (3, "1970-01-01T00:00:03Z"),
        ]);
        let (_, counts) = route(window, &body);
        assert_eq!(counts.kept, 4);
        assert_eq!(counts.duplicates, 3);
    }

    #[test]
    fn a_duplicate_arriving_after_an_out_of_order_row_is_still_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mut seen = Dedupe::new("w".into(), dir.path().to_path_buf());
        // In order: ids of earlier seconds are only in the spill, not in memory.
        for (id, second) in [(1, 10), (2, 10), (3, 11), (4, 12), (5, 13)] {
            assert!(seen.first_time(id, second).unwrap());
        }
        assert!(seen.first_time(9, 11).unwrap(), "out of order, new");
        for (id, second) in [(1, 10), (2, 10), (3, 11), (4, 12), (5, 13), (9, 11)] {
            assert!(!seen.first_time(id, second).unwrap(), "{id} is a repeat");
        }
        assert!(seen.first_time(6, 14).unwrap());
    }

    #[test]
    fn dedupe_memory_stays_at_one_second_while_rows_arrive_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut seen = Dedupe::new("w".into(), dir.path().to_path_buf());
        // One big second, then many small ones: neither the big second's table nor the window's
        // ids stay in memory.
        for id in 0..20_000 {
            assert!(seen.first_time(id, 1).unwrap());
        }
        for id in 20_000..220_000 {
            assert!(seen.first_time(id, id).unwrap());
        }
        assert!(
            seen.ids_in_memory() <= 2 * SECOND_SET_KEEP,
            "{} ids held",
            seen.ids_in_memory()
        );
        assert!(!seen.first_time(20_000, 20_000).unwrap());
        assert!(seen.first_time(220_000, 220_000).unwrap());
    }

    proptest::proptest! {
        #[test]
        fn dedupe_keeps_exactly_the_first_occurrences(
            ids in proptest::collection::vec(0i64..300, 0..600),
            swaps in proptest::collection::vec((0usize..600, 0usize..600), 0..4),
        ) {
            // A record's second never changes; rows come sorted by second (ids in any order
            // within one), then a few swaps put some rows out of order.
            let second = |id: i64| 1_000 + id / 7;
            let mut rows = ids;
            rows.sort_by_key(|&id| second(id));
            if !rows.is_empty() {
                for (a, b) in swaps {
                    let n = rows.len();
                    rows.swap(a % n, b % n);
                }
            }
            let dir = tempfile::tempdir().unwrap();
            let mut seen = Dedupe::new("w".into(), dir.path().to_path_buf());
            let mut model = HashSet::new();
            for id in rows {
                proptest::prop_assert_eq!(
                    seen.first_time(id, second(id)).unwrap(),
                    model.insert(id),
                    "id {}", id
                );
            }
        }
    }

    #[test]
    fn multi_day_windows_route_rows_to_their_day() {
        let window = Window {
            start: 0,
            end: 3 * DAY,
        };
        let body = page(&[
            (1, "1970-01-01T10:00:00Z"),
            (2, "1970-01-02T00:00:00Z"),
            (3, "1970-01-03T23:59:59Z"),
        ]);
        let (parts, counts) = route(window, &body);
        assert_eq!(counts.kept, 3);
        let days: Vec<String> = parts.iter().map(|p| p.day.to_string()).collect();
        assert_eq!(days, ["1970-01-01", "1970-01-02", "1970-01-03"]);
        assert!(parts.iter().all(|p| p.seq == 0 && p.part.rows == 1));
    }

    #[test]
    fn a_late_row_for_a_closed_day_gets_its_own_part() {
        let window = Window {
            start: 0,
            end: 2 * DAY,
        };
        let body = page(&[
            (1, "1970-01-01T10:00:00Z"),
            (2, "1970-01-02T10:00:00Z"),
            (3, "1970-01-01T11:00:00Z"),
        ]);
        let (parts, counts) = route(window, &body);
        assert_eq!(counts.kept, 3);
        let mut names: Vec<(String, u32)> =
            parts.iter().map(|p| (p.day.to_string(), p.seq)).collect();
        names.sort();
        assert_eq!(
            names,
            [
                ("1970-01-01".to_string(), 0),
                ("1970-01-01".to_string(), 1),
                ("1970-01-02".to_string(), 0)
            ]
        );
    }

    #[test]
    fn same_second_clusters_beyond_a_batch_stay_sorted_by_id() {
        let window = Window { start: 0, end: DAY };
        // 20,000 records in one second, ids descending, then one in the next second.
        let mut records: Vec<(i64, &str)> = (0..20_000)
            .map(|i| (50_000 - i, "1970-01-01T05:00:00Z"))
            .collect();
        records.push((1, "1970-01-01T05:00:01Z"));
        let (parts, counts) = route(window, &page(&records));
        assert_eq!(counts.kept, 20_001);
        let rows = read_ids(&parts[0].part);
        assert!(
            rows.windows(2).all(|w| w[0] < w[1]),
            "rows must be sorted by (created_at, id)"
        );
        assert_eq!(rows.len(), 20_001);
    }
}
