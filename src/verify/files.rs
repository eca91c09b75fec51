//! The lake against its markers (verify's default checks): every file a committed window's
//! marker names is in the lake, in a day partition of its window, with the marker's size and
//! (from its Parquet footer) row count; no part file that no marker names but the open window's;
//! no staging leftovers. Files of a window whose marker does not parse are never strays.
//!
//! A crash in the middle of a repair leaves its journal and two generations of the window's
//! files: the generation the current marker does not name is a stray here, which repair
//! removes.

use std::collections::{BTreeSet, HashMap, HashSet};

use futures::StreamExt;
use object_store::path::Path;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};

use super::{Check, Kind, ToRead, VerifyError, WindowCheck};
use crate::lake::layout;
use crate::lake::manifest::WindowRecord;
use crate::lake::storage::{Lake, StorageError};
use crate::plan::window::Window;
use crate::units::time::parse_compact;

/// Files whose footers are read at once: each is one or two small ranged reads.
const FOOTER_READS: usize = 16;

impl Check<'_> {
    /// Whether the window starting at `start` is in the range asked for.
    fn in_range(&self, start: i64) -> bool {
        self.options
            .since
            .is_none_or(|s| start >= self.grid.floor(s))
            && self
                .options
                .until
                .is_none_or(|u| self.window(start).end <= u)
    }

    /// Whether the window starting at `start` lies in the span of a marker that does not parse:
    /// which of its files are the window's cannot be told, so none is a stray.
    pub(super) fn owned_by_torn(&self, start: i64) -> bool {
        self.unreadable.keys().any(|&torn| {
            let end = self
                .unreadable_days
                .get(&torn)
                .copied()
                .unwrap_or(torn + self.grid.seconds());
            torn <= start && start < end
        })
    }

    /// The start of the window a part file (or staging leftover) name belongs to.
    fn window_of(name: &str) -> Option<i64> {
        let target = layout::staging_target(name).unwrap_or(name);
        layout::parse_part_name(target).and_then(|p| parse_compact(p.window_id))
    }

    /// Lists the committed windows in range and checks each file their markers name against
    /// the listing; returns the files that are where and how big their markers say.
    pub(super) fn windows_and_files(&mut self, listing: &HashMap<String, u64>) -> Vec<ToRead> {
        let unreadable: Vec<(i64, u32)> = self
            .unreadable
            .iter()
            .filter(|(&s, _)| self.in_range(s))
            .map(|(&s, &g)| (s, g))
            .collect();
        for (start, generation) in unreadable {
            let window = self.window(start);
            self.windows.push(window_check(&window, generation, 0));
        }
        let markers: Vec<(i64, WindowRecord)> = self
            .markers
            .iter()
            .filter(|(&s, _)| self.in_range(s))
            .map(|(&s, r)| (s, r.clone()))
            .collect();
        let mut to_read = Vec::new();
        for (start, record) in markers {
            let window = self.window(start);
            self.windows
                .push(window_check(&window, record.generation, record.rows));
            to_read.extend(self.files_of(&window, &record, listing));
        }
        to_read
    }

    /// Checks one committed window's files against the listing.
    fn files_of(
        &mut self,
        window: &Window,
        record: &WindowRecord,
        listing: &HashMap<String, u64>,
    ) -> Vec<ToRead> {
        let days: BTreeSet<String> = window
            .days()
            .iter()
            .map(|d| layout::partition(self.subdomain, *d).to_string())
            .collect();
        let mut to_read = Vec::new();
        for file in &record.files {
            let at = |kind, detail: String| (kind, detail);
            let folder = file.path.rsplit_once('/').map_or("", |(d, _)| d);
            let mut problems = Vec::new();
            if !days.contains(folder) {
                problems.push(at(
                    Kind::WrongPartition,
                    "the file is not in a day partition of its window".into(),
                ));
            }
            match listing.get(&file.path) {
                None => problems.push(at(
                    Kind::MissingFile,
                    format!(
                        "the marker names it ({} rows) but it is not in the lake",
                        file.rows
                    ),
                )),
                Some(&size) if size != file.bytes => problems.push(at(
                    Kind::WrongSize,
                    format!("{size} bytes, the marker says {}", file.bytes),
                )),
                Some(&size) => to_read.push((*window, file.path.clone(), size, file.rows)),
            }
            for (kind, detail) in problems {
                self.found(kind, Some(window.id()), Some(file.path.clone()), detail);
            }
        }
        let recorded: u64 = record.files.iter().map(|f| f.rows).sum();
        if recorded != record.rows {
            self.found(
                Kind::CorruptManifest,
                Some(window.id()),
                None,
                format!(
                    "the marker's files hold {recorded} rows, its total says {}",
                    record.rows
                ),
            );
        }
        to_read
    }

    /// Every file a current marker or the open window names.
    pub(super) fn named(&self) -> HashSet<&str> {
        self.markers
            .values()
            .chain(&self.open)
            .flat_map(|r| r.files.iter().map(|f| f.path.as_str()))
            .collect()
    }

    /// Files in range that no marker names, and staging leftovers.
    pub(super) fn strays(&mut self, listing: &HashMap<String, u64>) -> Result<(), VerifyError> {
        let named = self.named();
        let name_of = |p: &str| p.rsplit('/').next().unwrap_or(p).to_string();
        let mut strays: Vec<String> = listing
            .keys()
            .filter(|p| !named.contains(p.as_str()))
            .filter(|p| {
                let start = Check::window_of(&name_of(p));
                // With `open.json` unreadable, an uncommitted window's files may be its open
                // parts: never strays.
                let maybe_open = |s: i64| self.open_unreadable && !self.committed.contains(&s);
                !start.is_some_and(|s| self.owned_by_torn(s) || maybe_open(s))
                    && start.is_none_or(|s| self.in_range(s))
            })
            .cloned()
            .collect();
        strays.sort();
        let staged = self.lake.staging_leftovers(&layout::data(self.subdomain))?;
        for (path, kind, detail) in strays
            .into_iter()
            .map(|p| {
                (
                    p,
                    Kind::Stray,
                    "no marker names this file; readers count its rows",
                )
            })
            .chain(staged.into_iter().map(|p| {
                (
                    p,
                    Kind::Staging,
                    "the leftover of a write that was interrupted; directory readers choke on it",
                )
            }))
        {
            let start = Check::window_of(&name_of(&path));
            if start.is_some_and(|s| !self.in_range(s)) {
                continue;
            }
            let window = start.map(crate::units::time::format_compact);
            self.found(kind, window, Some(path), detail.into());
        }
        Ok(())
    }

    /// Reads each file's footer (two small ranged reads) and compares its row count.
    pub(super) async fn read_footers(&mut self, to_read: Vec<ToRead>) -> Result<(), VerifyError> {
        let lake = self.lake;
        let mut reads = futures::stream::iter(to_read.into_iter().map(
            |(window, path, size, rows)| async move {
                let footer = read_footer(lake, &path, size).await;
                (window, path, rows, footer)
            },
        ))
        .buffer_unordered(FOOTER_READS);
        while let Some((window, path, rows, footer)) = reads.next().await {
            match footer {
                Ok(meta) => {
                    let got = meta.file_metadata().num_rows() as u64;
                    if got != rows {
                        let detail = format!("{got} rows in the file, the marker says {rows}");
                        self.found(Kind::WrongRows, Some(window.id()), Some(path), detail);
                    }
                }
                Err(FooterError::Store(e)) => return Err(e.into()),
                Err(FooterError::Invalid(reason)) => {
                    self.found(Kind::Unreadable, Some(window.id()), Some(path), reason)
                }
            }
        }
        Ok(())
    }
}

fn window_check(window: &Window, generation: u32, lake_rows: u64) -> WindowCheck {
    WindowCheck {
        window: window.id(),
        start: window.start,
        end: window.end,
        generation,
        lake_rows,
        api_rows: None,
        problems: Vec::new(),
    }
}

enum FooterError {
    Store(StorageError),
    Invalid(String),
}

/// Reads a Parquet file's footer with two ranged reads (its length, then the metadata).
async fn read_footer(lake: &Lake, path: &str, size: u64) -> Result<ParquetMetaData, FooterError> {
    let path = Path::from(path);
    if size < 12 {
        return Err(FooterError::Invalid(format!(
            "{size} bytes is too small for Parquet"
        )));
    }
    let tail = lake
        .read_range(&path, size - 8..size)
        .await
        .map_err(FooterError::Store)?;
    if &tail[4..] != b"PAR1" {
        return Err(FooterError::Invalid(
            "no Parquet magic at the end: the file is truncated or not Parquet".into(),
        ));
    }
    let len = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    if len + 12 > size {
        return Err(FooterError::Invalid(format!(
            "the footer claims {len} bytes, more than the file holds"
        )));
    }
    let meta = lake
        .read_range(&path, size - 8 - len..size - 8)
        .await
        .map_err(FooterError::Store)?;
    ParquetMetaDataReader::decode_metadata(&meta)
        .map_err(|e| FooterError::Invalid(format!("the footer does not decode: {e}")))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use bytes::Bytes;

    use super::super::test_lake::{kinds, TestLake, DAY1, DAY2, DAY3, SUBDOMAIN};
    use super::super::{Kind, VerifyOptions};
    use crate::lake::layout;
    use crate::lake::manifest::{RepairJournal, WindowRecord};
    use crate::plan::window::Window;

    /// Reads, changes and writes back the current marker of `window`.
    async fn edit_marker(t: &TestLake, window: &Window, edit: impl FnOnce(&mut WindowRecord)) {
        let manifest = t.committer.manifest();
        let mut record = manifest.marker(window, 1).await.unwrap().unwrap();
        edit(&mut record);
        let body = serde_json::to_vec_pretty(&record).unwrap();
        let path = layout::marker(SUBDOMAIN, window, 1);
        t.lake.write(&path, Bytes::from(body)).await.unwrap();
    }

    /// The path of part 0 of `generation` of `window`, in its first day.
    fn part(window: &Window, generation: u32) -> String {
        layout::part_file(SUBDOMAIN, window.days()[0], window, generation, 0).to_string()
    }

    #[tokio::test]
    async fn a_lake_that_is_what_its_markers_say_has_no_findings() {
        let t = TestLake::with(&[DAY1, DAY2]).await;
        for deep in [false, true] {
            let report = t
                .verify_with(&VerifyOptions {
                    deep,
                    ..VerifyOptions::default()
                })
                .await;
            assert_eq!(kinds(&report), [], "deep {deep}: {report}");
            assert!(report.is_clean());
            assert_eq!(
                (report.windows_checked, report.files_checked, report.rows),
                (2, 2, 4)
            );
            assert!(report.windows.iter().all(|w| w.problems.is_empty()));
        }
    }

    #[tokio::test]
    async fn a_file_the_marker_names_but_the_lake_lacks_is_missing() {
        let t = TestLake::with(&[DAY1, DAY2]).await;
        std::fs::remove_file(t.on_disk(&t.file(1))).unwrap();
        let report = t.verify().await;
        assert_eq!(kinds(&report), [Kind::MissingFile], "{report}");
        let finding = &report.findings[0];
        assert_eq!(finding.window.as_deref(), Some(DAY2.id().as_str()));
        assert_eq!(finding.path.as_deref(), Some(t.file(1).as_str()));
        assert_eq!(report.windows_to_reexport(), BTreeSet::from([DAY2.start]));
        assert!(report.files_to_remove().is_empty());
        assert_eq!(
            report.files_checked, 1,
            "a missing file has no footer to read"
        );
    }

    #[tokio::test]
    async fn a_part_file_no_marker_names_is_a_stray_that_repair_removes_not_re_exports() {
        let t = TestLake::with(&[DAY1]).await;
        // Another part of the committed window, and a part of a window never committed.
        let extra = layout::part_file(SUBDOMAIN, DAY1.days()[0], &DAY1, 1, 7).to_string();
        let uncommitted = part(&DAY2, 1);
        for path in [&extra, &uncommitted] {
            std::fs::create_dir_all(t.on_disk(path).parent().unwrap()).unwrap();
            std::fs::copy(t.on_disk(&t.file(0)), t.on_disk(path)).unwrap();
        }
        let report = t.verify().await;
        assert_eq!(kinds(&report), [Kind::Stray, Kind::Stray], "{report}");
        let windows: Vec<Option<&str>> = report
            .findings
            .iter()
            .map(|f| f.window.as_deref())
            .collect();
        assert_eq!(
            windows,
            [Some(DAY1.id().as_str()), Some(DAY2.id().as_str())]
        );
        assert_eq!(
            report.files_to_remove(),
            [extra.as_str(), uncommitted.as_str()]
        );
        assert!(report.windows_to_reexport().is_empty(), "{report}");
    }

    #[tokio::test]
    async fn a_staging_leftover_is_removed_by_repair_not_re_exported() {
        let t = TestLake::with(&[DAY1]).await;
        let leftover = format!("{}#1", t.file(0));
        std::fs::write(t.on_disk(&leftover), b"half a file").unwrap();
        let report = t.verify().await;
        assert_eq!(kinds(&report), [Kind::Staging], "{report}");
        assert_eq!(
            report.findings[0].window.as_deref(),
            Some(DAY1.id().as_str())
        );
        assert_eq!(report.files_to_remove(), [leftover.as_str()]);
        assert!(report.windows_to_reexport().is_empty(), "{report}");
    }

    #[tokio::test]
    async fn a_file_shorter_or_longer_than_its_marker_says_is_the_wrong_size_and_re_exported() {
        let t = TestLake::with(&[DAY1, DAY2, DAY3]).await;
        let shorter = t.on_disk(&t.file(0));
        let bytes = std::fs::read(&shorter).unwrap();
        std::fs::write(&shorter, &bytes[..bytes.len() / 2]).unwrap();
        let longer = t.on_disk(&t.file(1));
        let mut bytes = std::fs::read(&longer).unwrap();
        bytes.extend_from_slice(b"trailing");
        std::fs::write(&longer, &bytes).unwrap();
        let report = t.verify().await;
        assert_eq!(
            kinds(&report),
            [Kind::WrongSize, Kind::WrongSize],
            "{report}"
        );
        assert_eq!(
            report.windows_to_reexport(),
            BTreeSet::from([DAY1.start, DAY2.start])
        );
        assert!(report.files_to_remove().is_empty());
        assert_eq!(report.files_checked, 1, "only DAY3's file is read");
    }

    #[tokio::test]
    async fn a_footer_with_other_rows_than_the_marker_says_is_wrong_rows() {
        let t = TestLake::with(&[DAY1]).await;
        edit_marker(&t, &DAY1, |r| {
            r.files[0].rows = 3;
            r.rows = 3;
        })
        .await;
        let report = t.verify().await;
        assert_eq!(kinds(&report), [Kind::WrongRows], "{report}");
        assert!(
            report.findings[0].detail.contains("2 rows in the file"),
            "{report}"
        );
        assert_eq!(report.windows_to_reexport(), BTreeSet::from([DAY1.start]));
    }

    #[tokio::test]
    async fn a_marker_whose_files_do_not_add_up_to_its_total_is_corrupt() {
        let t = TestLake::with(&[DAY1]).await;
        edit_marker(&t, &DAY1, |r| r.rows = 5).await;
        let report = t.verify().await;
        assert_eq!(kinds(&report), [Kind::CorruptManifest], "{report}");
        assert_eq!(report.findings[0].path, None);
        assert_eq!(report.windows_to_reexport(), BTreeSet::from([DAY1.start]));
    }

    #[tokio::test]
    async fn a_marker_that_does_not_parse_is_re_exported_and_its_files_are_not_strays() {
        let t = TestLake::with(&[DAY1, DAY2]).await;
        let marker = layout::marker(SUBDOMAIN, &DAY1, 1);
        t.lake.write(&marker, Bytes::from("{")).await.unwrap();
        let report = t.verify().await;
        assert_eq!(kinds(&report), [Kind::CorruptManifest], "{report}");
        assert_eq!(
            report.findings[0].path.as_deref(),
            Some(marker.as_ref()),
            "{report}"
        );
        assert_eq!(report.windows_to_reexport(), BTreeSet::from([DAY1.start]));
        assert!(report.files_to_remove().is_empty(), "{report}");
        assert_eq!(report.windows_checked, 2);
    }

    #[tokio::test]
    async fn a_file_outside_its_windows_day_partitions_is_in_the_wrong_partition() {
        let t = TestLake::with(&[DAY1]).await;
        let moved = part(&DAY3, 1).replace(&DAY3.id(), &DAY1.id());
        std::fs::create_dir_all(t.on_disk(&moved).parent().unwrap()).unwrap();
        std::fs::rename(t.on_disk(&t.file(0)), t.on_disk(&moved)).unwrap();
        edit_marker(&t, &DAY1, |r| r.files[0].path = moved.clone()).await;
        let report = t.verify().await;
        assert_eq!(kinds(&report), [Kind::WrongPartition], "{report}");
        assert_eq!(report.findings[0].path.as_deref(), Some(moved.as_str()));
        assert_eq!(report.windows_to_reexport(), BTreeSet::from([DAY1.start]));
    }

    #[tokio::test]
    async fn the_open_windows_files_are_not_strays() {
        let t = TestLake::with(&[DAY1]).await;
        let parts = super::super::test_lake::parts(DAY2);
        let change = crate::lake::Change::increment(DAY2, None, DAY2.start, DAY2.end, parts);
        let (open, _) = t.committer.commit(change).await.unwrap();
        assert!(t.on_disk(&open.files[0].path).exists());
        let report = t.verify().await;
        assert_eq!(kinds(&report), [], "{report}");
        assert_eq!(
            report.windows_checked, 1,
            "the open window is not committed"
        );
    }

    #[tokio::test]
    async fn windows_outside_since_and_until_are_not_judged() {
        let t = TestLake::with(&[DAY1, DAY2, DAY3]).await;
        std::fs::remove_file(t.on_disk(&t.file(0))).unwrap();
        std::fs::remove_file(t.on_disk(&t.file(2))).unwrap();
        std::fs::write(t.on_disk(&format!("{}#1", t.file(2))), b"half").unwrap();
        let report = t
            .verify_with(&VerifyOptions {
                since: Some(DAY2.start),
                until: Some(DAY2.end),
                ..VerifyOptions::default()
            })
            .await;
        assert_eq!(kinds(&report), [], "{report}");
        assert_eq!(report.windows_checked, 1);
        let all = t.verify().await;
        assert_eq!(
            kinds(&all),
            [Kind::MissingFile, Kind::MissingFile, Kind::Staging],
            "{all}"
        );
    }

    /// The journal of a repair (generation 1 to 2) of `window`, as a crash leaves it.
    async fn journal(t: &TestLake, window: &Window) {
        let journal = RepairJournal {
            window: window.id(),
            from_generation: 1,
            to_generation: 2,
            reason: "test".into(),
            started_at: crate::units::time::Timestamp::parse("2024-03-05T00:00:00Z").unwrap(),
            data_change: Some(true),
        };
        let manifest = t.committer.manifest();
        manifest.begin_repair(window, &journal).await.unwrap();
        assert_eq!(manifest.unfinished_repairs().await.unwrap(), [window.start]);
    }

    #[tokio::test]
    async fn a_repair_killed_before_its_marker_leaves_its_new_generation_as_strays() {
        let t = TestLake::with(&[DAY1]).await;
        journal(&t, &DAY1).await;
        let uploaded = part(&DAY1, 2);
        std::fs::copy(t.on_disk(&t.file(0)), t.on_disk(&uploaded)).unwrap();
        let report = t.verify().await;
        assert_eq!(kinds(&report), [Kind::Stray], "{report}");
        assert_eq!(report.files_to_remove(), [uploaded.as_str()]);
        assert!(report.windows_to_reexport().is_empty(), "{report}");
        assert_eq!(report.windows[0].generation, 1, "generation 1 stands");
    }

    #[tokio::test]
    async fn a_repair_killed_after_its_marker_leaves_the_old_generation_as_strays() {
        let t = TestLake::with(&[DAY1]).await;
        journal(&t, &DAY1).await;
        let uploaded = part(&DAY1, 2);
        std::fs::copy(t.on_disk(&t.file(0)), t.on_disk(&uploaded)).unwrap();
        let mut next = t.markers[0].clone();
        next.generation = 2;
        next.files[0].path = uploaded.clone();
        t.committer.manifest().commit(&DAY1, &next).await.unwrap();
        let report = t.verify().await;
        assert_eq!(kinds(&report), [Kind::Stray], "{report}");
        assert_eq!(report.files_to_remove(), [t.file(0).as_str()]);
        assert!(report.windows_to_reexport().is_empty(), "{report}");
        assert_eq!(report.windows[0].generation, 2, "generation 2 is current");
    }
}
