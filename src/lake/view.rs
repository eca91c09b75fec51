//! What the table is now: the one answer the run, the recheck, the compaction, `verify`,
//! `repair`, the vacuum, `status` and the Delta log's convergence all take, so that they never
//! disagree about a marker again.
//!
//! - **Standing markers.** The current (highest) generation of each committed window, except
//!   those a wider marker covers: a compacted day's marker spans the day (`run/compact.rs`), and
//!   the markers of the day's other windows stay as the record that they were committed, naming
//!   files that only older versions read.
//! - **Torn markers** (they do not parse). Which files are theirs cannot be read from them; what
//!   they may cover is told by the rest: one that may be a compacted day's
//!   ([`compaction_day`]: a later generation of a complete day's first window) spans the day
//!   when the day's other windows' files say it was compacted ([`Current`]: a Delta log holds
//!   none of them; a plain lake lacks one, as a compaction's sweep that a crash stopped leaves
//!   it); otherwise it covers its grid window. A torn marker inside a standing span is history,
//!   like any covered marker. A torn marker that stands is `repair`'s to re-export, over its span.
//! - **Open windows.** The records of every open window without a marker (`open.json` keeps
//!   those whose close failed, beside the latest): their parts are the table's.
//!
//! Which files are "the table's now" is the caller's to say ([`Current`]): the Delta log's
//! latest version for a Delta table, the listing for a plain lake (or one being converted,
//! whose log holds nothing yet).

use std::collections::{BTreeMap, BTreeSet};

use crate::lake::layout;
use crate::lake::manifest::{
    compaction_day, FileEntry, Manifest, ManifestError, Torn, WindowRecord,
};
use crate::lake::storage::Lake;
use crate::plan::window::{Grid, Window};
use crate::units::time::parse_compact;

/// How to tell that a day was compacted from its other windows' files, for what a torn first
/// marker may cover. A compaction removes them from a Delta log in one commit (every one of
/// them: the log is told by none being held; one merely behind its markers, a crash between a
/// marker and its commit, still holds the others), and deletes them from a plain lake (a crash
/// in its sweep may leave some: told by any being gone).
pub enum Current<'a> {
    /// The files a Delta log's latest version holds (paths relative to the lake).
    Held(BTreeSet<String>),
    /// The files in the lake: the day partitions in question are listed when a torn marker asks.
    Listed { lake: &'a Lake, subdomain: &'a str },
}

impl Current<'_> {
    /// Whether the files of a day's other windows (`files`, some of them `present` where the
    /// lake was listed) say the day was compacted.
    pub fn compacted(&self, files: &[&FileEntry], present: &BTreeSet<String>) -> bool {
        match self {
            Current::Held(held) => !files.iter().any(|f| held.contains(&f.path)),
            // A day whose other windows had no file at all cannot tell: the day (safe).
            Current::Listed { .. } => {
                files.is_empty() || files.iter().any(|f| !present.contains(&f.path))
            }
        }
    }
}

/// A torn marker that stands, with the span it covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornWindow {
    pub span: Window,
    pub torn: Torn,
}

/// The table as it is now (see the module documentation).
#[derive(Clone, Debug, Default)]
pub struct TableView {
    /// The highest marker generation of every committed window (the listing).
    pub generations: BTreeMap<i64, u32>,
    /// The markers that stand, by start (each with its span: [`WindowRecord::span`]).
    pub standing: BTreeMap<i64, WindowRecord>,
    /// Torn markers that stand, by start.
    pub torn: BTreeMap<i64, TornWindow>,
    /// The starts of the markers (readable or torn) a standing span covers: history.
    pub covered: BTreeSet<i64>,
    /// Torn markers among the covered ones (history: nothing to repair), by start.
    pub covered_torn: BTreeMap<i64, Torn>,
    /// The records of the open windows without a marker.
    pub open: Vec<WindowRecord>,
}

impl TableView {
    /// Reads the table: the markers of every committed window starting in `range` (widened to
    /// whole days, which a compaction's marker may span), or of every one, and the open windows.
    pub async fn read(
        manifest: &Manifest,
        grid: Grid,
        generations: &BTreeMap<i64, u32>,
        range: Option<Window>,
        current: Current<'_>,
    ) -> Result<TableView, ManifestError> {
        let wanted = generations
            .iter()
            .filter(|(&start, _)| {
                range.is_none_or(|r| {
                    Grid::DAILY.floor(r.start) <= start
                        && start < Grid::DAILY.floor(r.end - 1) + Grid::DAILY.seconds()
                })
            })
            .map(|(&s, &g)| (s, g))
            .collect::<Vec<_>>();
        let markers = manifest.read_markers(wanted).await?;
        let open = manifest.open_windows().await?;
        let mut present = BTreeSet::new();
        if let Current::Listed { lake, subdomain } = &current {
            for day in candidate_days(grid, generations, &markers) {
                for date in day.days() {
                    let listed = lake.list(&layout::partition(subdomain, date)).await?;
                    present.extend(listed.iter().map(|p| p.to_string()));
                }
            }
        }
        let compacted = |files: &[&FileEntry]| current.compacted(files, &present);
        Ok(TableView::build(
            grid,
            generations,
            markers,
            open,
            &compacted,
        ))
    }

    /// The view of `markers` (start → marker, or why it does not parse) and the `open` records,
    /// given the listing's `generations` and which files are the table's now.
    pub fn build(
        grid: Grid,
        generations: &BTreeMap<i64, u32>,
        markers: BTreeMap<i64, Result<WindowRecord, Torn>>,
        open: Vec<WindowRecord>,
        compacted: &dyn Fn(&[&FileEntry]) -> bool,
    ) -> TableView {
        let readable: BTreeMap<i64, &WindowRecord> = markers
            .iter()
            .filter_map(|(&s, m)| m.as_ref().ok().map(|m| (s, m)))
            .collect();
        let committed = |s: i64| generations.contains_key(&s);
        // Every marker with the span it covers, in order of start.
        let mut spans: BTreeMap<i64, Window> = BTreeMap::new();
        for (&start, marker) in &markers {
            let grid_window = Window {
                start,
                end: start + grid.seconds(),
            };
            let span = match marker {
                Ok(record) => record.span().unwrap_or(grid_window),
                Err(torn) => compaction_day(grid, start, torn.generation, committed)
                    .filter(|day| {
                        // A compaction removes the day's other windows' files ([`Current`]).
                        let files: Vec<&FileEntry> = readable
                            .range(start + 1..day.end)
                            .flat_map(|(_, m)| &m.files)
                            .collect();
                        compacted(&files)
                    })
                    .unwrap_or(grid_window),
            };
            spans.insert(start, span);
        }
        let mut view = TableView {
            generations: generations.clone(),
            ..TableView::default()
        };
        let mut reach = i64::MIN;
        for (start, marker) in markers {
            if start < reach {
                view.covered.insert(start);
                if let Err(torn) = marker {
                    view.covered_torn.insert(start, torn);
                }
                continue;
            }
            let span = spans[&start];
            reach = reach.max(span.end);
            match marker {
                Ok(record) => {
                    view.standing.insert(start, record);
                }
                Err(torn) => {
                    view.torn.insert(start, TornWindow { span, torn });
                }
            }
        }
        view.open = open
            .into_iter()
            .filter(|o| parse_compact(&o.window).is_some_and(|s| !committed(s)))
            .collect();
        view
    }

    /// The standing markers' spans and the torn ones', in order of start.
    pub fn spans(&self) -> BTreeMap<i64, Window> {
        let mut spans: BTreeMap<i64, Window> =
            self.torn.iter().map(|(&s, t)| (s, t.span)).collect();
        for (&start, record) in &self.standing {
            spans.insert(start, record.span().unwrap_or(Window { start, end: start }));
        }
        spans
    }

    /// Every file the standing markers and the open windows name: what readers should see.
    pub fn named(&self) -> impl Iterator<Item = &FileEntry> {
        self.standing
            .values()
            .chain(&self.open)
            .flat_map(|r| &r.files)
    }

    /// The torn marker whose span holds the window starting at `start`, if any: which of its
    /// window's files are the table's cannot be told, so none of them is a stray.
    pub fn torn_over(&self, start: i64) -> Option<&TornWindow> {
        self.torn
            .values()
            .find(|t| t.span.start <= start && start < t.span.end)
    }

    /// The open window's record for `window`, if it grows by deltas.
    pub fn open_of(&self, window: &Window) -> Option<&WindowRecord> {
        open_record(&self.open, window)
    }
}

/// The record of `window` among the open windows', if it grows by deltas.
pub fn open_record<'a>(open: &'a [WindowRecord], window: &Window) -> Option<&'a WindowRecord> {
    open.iter()
        .find(|s| s.window == window.id() && s.covered_to().is_some())
}

/// The days a torn marker among `markers` may span as a compaction: their partitions are listed.
fn candidate_days(
    grid: Grid,
    generations: &BTreeMap<i64, u32>,
    markers: &BTreeMap<i64, Result<WindowRecord, Torn>>,
) -> Vec<Window> {
    markers
        .iter()
        .filter_map(|(&start, m)| {
            let torn = m.as_ref().err()?;
            compaction_day(grid, start, torn.generation, |s| {
                generations.contains_key(&s)
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 1_709_251_200; // 2024-03-01
    const HOUR: i64 = 3_600;

    fn hourly() -> Grid {
        Grid::parse("1h").unwrap()
    }

    fn file(path: &str) -> FileEntry {
        FileEntry {
            path: path.into(),
            rows: 1,
            bytes: 1,
            stats: None,
            sha256: None,
        }
    }

    fn marker(start: i64, end: i64, generation: u32, files: &[&str]) -> WindowRecord {
        let mut record = WindowRecord::new(
            &Window { start, end },
            files.iter().map(|f| file(f)).collect(),
        );
        record.generation = generation;
        record
    }

    fn torn(generation: u32) -> Torn {
        Torn {
            generation,
            path: "m".into(),
            reason: "EOF".into(),
        }
    }

    /// A day of hourly windows, compacted (`compacted`) or not, with the first hour's marker
    /// torn at generation `generation`.
    fn day(
        generation: u32,
    ) -> (
        BTreeMap<i64, u32>,
        BTreeMap<i64, Result<WindowRecord, Torn>>,
    ) {
        let mut generations = BTreeMap::new();
        let mut markers = BTreeMap::new();
        generations.insert(DAY, generation);
        markers.insert(DAY, Err(torn(generation)));
        for h in 1..24 {
            let start = DAY + h * HOUR;
            generations.insert(start, 1);
            let path = format!("hour-{h}");
            markers.insert(start, Ok(marker(start, start + HOUR, 1, &[&path])));
        }
        (generations, markers)
    }

    #[test]
    fn a_torn_first_marker_of_a_compacted_day_spans_the_day_and_covers_its_hours() {
        let (generations, markers) = day(2);
        let view = TableView::build(hourly(), &generations, markers, vec![], &|_| true);
        let torn = &view.torn[&DAY];
        let whole = Window {
            start: DAY,
            end: DAY + 86_400,
        };
        assert_eq!(torn.span, whole);
        assert!(view.standing.is_empty(), "{:?}", view.standing.keys());
        assert_eq!(view.covered.len(), 23);
        assert!(view.torn_over(DAY + 5 * HOUR).is_some());
    }

    #[test]
    fn a_torn_first_marker_of_a_day_whose_hours_are_still_the_tables_covers_its_hour() {
        // Generation 2 by a repair of the hour, not a compaction: the hours' files are current.
        let (generations, markers) = day(2);
        let view = TableView::build(hourly(), &generations, markers, vec![], &|_| false);
        assert_eq!(view.torn[&DAY].span.end, DAY + HOUR);
        assert_eq!(view.standing.len(), 23);
        // Generation 1 is never a compaction's.
        let (generations, markers) = day(1);
        let view = TableView::build(hourly(), &generations, markers, vec![], &|_| true);
        assert_eq!(view.torn[&DAY].span.end, DAY + HOUR);
    }

    #[test]
    fn a_compaction_is_told_by_none_held_in_a_delta_log_and_by_any_gone_from_a_plain_lake() {
        let (a, b) = (file("hour-1"), file("hour-2"));
        let files = [&a, &b];
        let held = |paths: &[&str]| Current::Held(paths.iter().map(|p| p.to_string()).collect());
        // The log removed them all in one commit; one behind its markers still holds others.
        assert!(held(&[]).compacted(&files, &BTreeSet::new()));
        assert!(!held(&["hour-2"]).compacted(&files, &BTreeSet::new()));
        // A plain lake's compaction deletes them; a crash in its sweep leaves some.
        let (_dir, lake) = crate::lake::storage::temp_lake();
        let listed = Current::Listed {
            lake: &lake,
            subdomain: "acme",
        };
        let present = |paths: &[&str]| paths.iter().map(|p| p.to_string()).collect();
        assert!(listed.compacted(&files, &present(&["hour-2"])));
        assert!(!listed.compacted(&files, &present(&["hour-1", "hour-2"])));
        // Hours without a file at all (empty, or their records not arrived at the compaction)
        // cannot tell: the day, whose repair loses nothing.
        assert!(listed.compacted(&[], &present(&[])));
    }

    #[test]
    fn a_torn_hour_inside_a_compacted_day_is_history() {
        let mut generations = BTreeMap::new();
        let mut markers = BTreeMap::new();
        generations.insert(DAY, 2);
        markers.insert(DAY, Ok(marker(DAY, DAY + 86_400, 2, &["day"])));
        for h in 1..24 {
            generations.insert(DAY + h * HOUR, 1);
            let m = if h == 5 {
                Err(torn(1))
            } else {
                Ok(marker(DAY + h * HOUR, DAY + (h + 1) * HOUR, 1, &[]))
            };
            markers.insert(DAY + h * HOUR, m);
        }
        let view = TableView::build(hourly(), &generations, markers, vec![], &|_| true);
        assert!(view.torn.is_empty());
        assert!(view.covered_torn.contains_key(&(DAY + 5 * HOUR)));
        assert_eq!(view.standing.len(), 1);
        assert_eq!(view.named().count(), 1);
    }

    #[test]
    fn every_open_window_without_a_marker_is_open() {
        let open = |start: i64| {
            let mut r = marker(start, start + HOUR, 1, &["p"]);
            r.covered_to =
                Some(crate::units::time::Timestamp::parse("2024-03-01T10:30:00Z").unwrap());
            r
        };
        let mut generations = BTreeMap::new();
        generations.insert(DAY + 11 * HOUR, 1);
        let view = TableView::build(
            hourly(),
            &generations,
            BTreeMap::new(),
            vec![
                open(DAY + 12 * HOUR),
                open(DAY + 10 * HOUR),
                open(DAY + 11 * HOUR),
            ],
            &|_| true,
        );
        let open: Vec<&str> = view.open.iter().map(|o| o.window.as_str()).collect();
        assert_eq!(open, ["20240301T1200Z", "20240301T1000Z"]);
        let ten = Window {
            start: DAY + 10 * HOUR,
            end: DAY + 11 * HOUR,
        };
        assert!(view.open_of(&ten).is_some());
    }
}
