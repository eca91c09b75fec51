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
use crate::plan::window::{parse_compact, Window};

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
                .is_none_or(|u| start + self.grid.seconds() <= u)
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

    /// Files in range that no marker names, and staging leftovers.
    pub(super) fn strays(&mut self, listing: &HashMap<String, u64>) -> Result<(), VerifyError> {
        let named: HashSet<&str> = self
            .markers
            .values()
            .chain(self.open.iter())
            .flat_map(|r| r.files.iter().map(|f| f.path.as_str()))
            .collect();
        let name_of = |p: &str| p.rsplit('/').next().unwrap_or(p).to_string();
        let mut strays: Vec<String> = listing
            .keys()
            .filter(|p| !named.contains(p.as_str()))
            .filter(|p| {
                let start = Check::window_of(&name_of(p));
                !start.is_some_and(|s| self.unreadable.contains_key(&s))
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
            let window = start.map(crate::plan::window::format_compact);
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
