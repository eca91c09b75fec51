//! Proof that the lake is whole: the lake against its markers, and against the API.
//!
//! - **Default** (cheap: one listing and a footer read per file): every committed window's files
//!   exist with the recorded sizes and row counts (from the Parquet footers) in a partition of
//!   the window's days; no part file outside a committed window but the open window's; no staging
//!   leftovers; `dataset.json` and the markers parse.
//! - **Deep** (reads every file): ids unique within and across windows, every `created_at` inside
//!   its window and its day partition, sort order as declared, schema equal to `schemas/`.
//! - **Against the API**: the number of records Zendesk returns now for each committed window
//!   ([`crate::zendesk::count`]), against the lake's.
//!
//! Each finding names its window and file, and says whether a repair re-exports the window.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{
    DataType, Int64Type, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
};
use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use serde::Serialize;

use crate::lake::layout;
use crate::lake::manifest::{Manifest, ManifestError, WindowRecord};
use crate::lake::storage::{Lake, StorageError};
use crate::plan::window::{day_of, parse_compact, Grid, Window};
use crate::table::schema::Schema;
use crate::zendesk::count::count_window;
use crate::zendesk::{ApiError, Client};

/// Files whose footers are read at once: each is one or two small ranged reads.
const FOOTER_READS: usize = 16;

/// Why verification could not run (as opposed to what it found).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("no auditlake dataset for subdomain {subdomain:?} at {dest}: nothing to verify (is --dest or --subdomain wrong?)")]
    NoDataset { dest: String, subdomain: String },
    #[error("dataset.json names window grid {0:?}, which this auditlake does not understand")]
    Grid(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// What verify looks at.
#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// Only windows starting at or after this (UTC seconds).
    pub since: Option<i64>,
    /// Only windows ending at or before this (UTC seconds).
    pub until: Option<i64>,
    /// Read every file.
    pub deep: bool,
}

/// A kind of problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A file a marker names is not in the lake.
    MissingFile,
    /// A file's size differs from its marker's.
    WrongSize,
    /// A file's row count (footer) differs from its marker's.
    WrongRows,
    /// A file is not readable Parquet.
    Unreadable,
    /// A file sits in a day partition outside its window.
    WrongPartition,
    /// A marker or `open.json` does not parse.
    CorruptManifest,
    /// A part file that no marker (nor the open window) names: every reader would count it.
    Stray,
    /// A staging leftover of an interrupted write.
    Staging,
    /// An id appears twice (deep).
    DuplicateId,
    /// A row's `created_at` is outside its window (deep).
    OutsideWindow,
    /// A row's UTC day differs from its partition (deep).
    WrongDay,
    /// A file declares a sort order its rows do not follow (deep).
    NotSorted,
    /// A file's schema differs from `schemas/` (deep).
    WrongSchema,
    /// Zendesk returns more records for the window than the lake holds.
    ApiMore,
    /// Zendesk returns fewer records for the window than the lake holds.
    ApiFewer,
}

impl Kind {
    /// Whether a repair re-exports the window this finding is about. Strays and staging
    /// leftovers are removed instead; fewer records at Zendesk than in the lake are only
    /// reported (an archive keeps what it holds).
    pub fn needs_reexport(self) -> bool {
        !matches!(self, Kind::Stray | Kind::Staging | Kind::ApiFewer)
    }
}

/// One problem, named by window and file.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Finding {
    pub kind: Kind,
    /// The window's id (`YYYYMMDDTHHMMZ`), when the problem belongs to one.
    pub window: Option<String>,
    /// The file, relative to the lake.
    pub path: Option<String>,
    pub detail: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.kind)?;
        if let Some(w) = &self.window {
            write!(f, " window {w}")?;
        }
        if let Some(p) = &self.path {
            write!(f, " file {p}")?;
        }
        write!(f, ": {}", self.detail)
    }
}

/// One committed window, as checked.
#[derive(Clone, Debug, Serialize)]
pub struct WindowCheck {
    pub window: String,
    pub start: i64,
    pub end: i64,
    pub generation: u32,
    /// Rows the marker records.
    pub lake_rows: u64,
    /// Rows Zendesk returns now (with `--against-api`).
    pub api_rows: Option<u64>,
    pub problems: Vec<Kind>,
}

/// What verify found.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub subdomain: String,
    pub dest: String,
    pub deep: bool,
    pub against_api: bool,
    pub windows_checked: u64,
    pub files_checked: u64,
    pub rows: u64,
    pub windows: Vec<WindowCheck>,
    pub findings: Vec<Finding>,
}

impl Report {
    /// Whether the lake is exactly what its markers (and the API, if asked) say.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }

    /// The committed windows a repair re-exports, by start.
    pub fn windows_to_reexport(&self) -> BTreeSet<i64> {
        let by_id: HashMap<&str, i64> = self
            .windows
            .iter()
            .map(|w| (w.window.as_str(), w.start))
            .collect();
        self.findings
            .iter()
            .filter(|f| f.kind.needs_reexport())
            .filter_map(|f| by_id.get(f.window.as_deref()?).copied())
            .collect()
    }

    /// Files that no marker names (strays and staging leftovers): a repair removes them.
    pub fn files_to_remove(&self) -> Vec<&str> {
        self.findings
            .iter()
            .filter(|f| matches!(f.kind, Kind::Stray | Kind::Staging))
            .filter_map(|f| f.path.as_deref())
            .collect()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match (self.deep, self.against_api) {
            (true, true) => "deep, against the API",
            (true, false) => "deep",
            (false, true) => "against the API",
            (false, false) => "files and footers",
        };
        writeln!(
            f,
            "{} {} ({mode}): {} windows, {} files, {} rows",
            self.dest, self.subdomain, self.windows_checked, self.files_checked, self.rows
        )?;
        let troubled: Vec<&WindowCheck> = self
            .windows
            .iter()
            .filter(|w| !w.problems.is_empty())
            .collect();
        if !troubled.is_empty() {
            writeln!(
                f,
                "{:<16} {:>10} {:>10}  problem",
                "window", "lake rows", "api rows"
            )?;
            for w in troubled {
                let problems: BTreeSet<Kind> = w.problems.iter().copied().collect();
                let problems: Vec<String> = problems.iter().map(|k| format!("{k:?}")).collect();
                let api = w.api_rows.map_or("-".to_string(), |n| n.to_string());
                writeln!(
                    f,
                    "{:<16} {:>10} {:>10}  {}",
                    w.window,
                    w.lake_rows,
                    api,
                    problems.join(", ")
                )?;
            }
        }
        for finding in &self.findings {
            writeln!(f, "  {finding}")?;
        }
        if self.is_clean() {
            writeln!(f, "clean: the lake is exactly what its markers say")
        } else {
            writeln!(
                f,
                "{} problem(s); `auditlake repair` re-exports damaged windows and removes files no marker names",
                self.findings.len()
            )
        }
    }
}

/// Verifies one subdomain of a lake. `api` asks Zendesk for each window's count.
pub async fn verify(
    lake: &Lake,
    subdomain: &str,
    options: &VerifyOptions,
    api: Option<&Client>,
) -> Result<Report, VerifyError> {
    let mut check = Check::read(lake, subdomain, options).await?;
    let listing: HashMap<String, u64> = lake
        .list_sized(&layout::data(subdomain))
        .await?
        .into_iter()
        .map(|(p, size)| (p.to_string(), size))
        .collect();
    let to_read = check.windows_and_files(&listing);
    check.strays(&listing)?;
    let files_checked = to_read.len() as u64;
    if options.deep {
        check.read_every_row(to_read).await?;
    } else {
        check.read_footers(to_read).await?;
    }
    if let Some(client) = api {
        check.count_at_api(client).await?;
    }
    Ok(check.report(files_checked, api.is_some()))
}

/// A file to read: its window, path, size and the rows its marker records.
type ToRead = (Window, String, u64, u64);

/// A verification in progress: what the manifest says, and what was found so far.
struct Check<'a> {
    lake: &'a Lake,
    subdomain: &'a str,
    options: &'a VerifyOptions,
    grid: Grid,
    filters: crate::zendesk::Filters,
    /// Every current marker, in the lake (strays are judged against all of them).
    markers: BTreeMap<i64, WindowRecord>,
    /// Windows whose current marker does not parse: their files are still theirs (never
    /// strays), and a repair re-exports them.
    unreadable: BTreeMap<i64, u32>,
    /// The open window's latest export, unless that window has since been committed.
    open: Option<WindowRecord>,
    windows: Vec<WindowCheck>,
    findings: Vec<Finding>,
}

impl<'a> Check<'a> {
    /// Reads the dataset, every current marker and the open window's record.
    async fn read(
        lake: &'a Lake,
        subdomain: &'a str,
        options: &'a VerifyOptions,
    ) -> Result<Check<'a>, VerifyError> {
        let manifest = Manifest::new(lake.clone(), subdomain);
        let Some(dataset) = manifest.dataset().await? else {
            return Err(VerifyError::NoDataset {
                dest: lake.display().to_string(),
                subdomain: subdomain.to_string(),
            });
        };
        let grid =
            Grid::parse(&dataset.window).map_err(|_| VerifyError::Grid(dataset.window.clone()))?;
        let mut check = Check {
            lake,
            subdomain,
            options,
            grid,
            filters: dataset.filters,
            markers: BTreeMap::new(),
            unreadable: BTreeMap::new(),
            open: None,
            windows: Vec::new(),
            findings: Vec::new(),
        };
        for (start, generation) in manifest.generations().await? {
            let window = check.window(start);
            match manifest.marker(&window, generation).await {
                Ok(Some(record)) => {
                    check.markers.insert(start, record);
                }
                Ok(None) => {}
                Err(ManifestError::Corrupt { path, reason }) => {
                    check.unreadable.insert(start, generation);
                    check.found(
                        Kind::CorruptManifest,
                        Some(window.id()),
                        Some(path),
                        format!("the marker does not parse ({reason}); its window is re-exported by repair"),
                    );
                }
                Err(e) => return Err(e.into()),
            }
        }
        check.open = match manifest.open_window().await {
            Ok(open) => open.filter(|o| {
                parse_compact(&o.window).is_none_or(|start| !check.markers.contains_key(&start))
            }),
            Err(ManifestError::Corrupt { path, reason }) => {
                check.found(Kind::CorruptManifest, None, Some(path), reason);
                None
            }
            Err(e) => return Err(e.into()),
        };
        Ok(check)
    }

    fn window(&self, start: i64) -> Window {
        Window {
            start,
            end: start + self.grid.seconds(),
        }
    }

    fn found(&mut self, kind: Kind, window: Option<String>, path: Option<String>, detail: String) {
        self.findings.push(Finding {
            kind,
            window,
            path,
            detail,
        });
    }

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
    fn windows_and_files(&mut self, listing: &HashMap<String, u64>) -> Vec<ToRead> {
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
    fn strays(&mut self, listing: &HashMap<String, u64>) -> Result<(), VerifyError> {
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
    async fn read_footers(&mut self, to_read: Vec<ToRead>) -> Result<(), VerifyError> {
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

    /// Reads every row of every file (`--deep`).
    async fn read_every_row(&mut self, to_read: Vec<ToRead>) -> Result<(), VerifyError> {
        let mut ids: HashSet<i64> = HashSet::new();
        for (window, path, _, rows) in &to_read {
            match self.lake.read(&Path::from(path.as_str())).await? {
                Some(bytes) => deep_check(window, path, *rows, bytes, &mut ids, &mut self.findings),
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

    /// Asks Zendesk how many records each window in range holds now.
    async fn count_at_api(&mut self, client: &Client) -> Result<(), VerifyError> {
        for i in 0..self.windows.len() {
            let window = Window {
                start: self.windows[i].start,
                end: self.windows[i].end,
            };
            let count = count_window(client, &self.filters, &window).await?;
            let lake_rows = self.windows[i].lake_rows;
            self.windows[i].api_rows = Some(count);
            let kind = match count.cmp(&lake_rows) {
                std::cmp::Ordering::Equal => continue,
                std::cmp::Ordering::Greater => Kind::ApiMore,
                std::cmp::Ordering::Less => Kind::ApiFewer,
            };
            let detail = format!("Zendesk returns {count} records, the lake holds {lake_rows}");
            self.found(kind, Some(window.id()), None, detail);
        }
        Ok(())
    }

    /// The report: findings sorted by window and file, each window with its problems.
    fn report(mut self, files_checked: u64, against_api: bool) -> Report {
        let mut by_window: HashMap<String, Vec<Kind>> = HashMap::new();
        for f in &self.findings {
            if let Some(w) = &f.window {
                by_window.entry(w.clone()).or_default().push(f.kind);
            }
        }
        for check in &mut self.windows {
            if let Some(kinds) = by_window.get(&check.window) {
                check.problems = kinds.clone();
            }
        }
        self.findings
            .sort_by(|a, b| (&a.window, &a.path, a.kind).cmp(&(&b.window, &b.path, b.kind)));
        Report {
            subdomain: self.subdomain.to_string(),
            dest: self.lake.display().to_string(),
            deep: self.options.deep,
            against_api,
            windows_checked: self.windows.len() as u64,
            files_checked,
            rows: self.windows.iter().map(|w| w.lake_rows).sum(),
            windows: self.windows,
            findings: self.findings,
        }
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
