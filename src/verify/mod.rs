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
//!
//! This module owns what verify reports (the [`Report`], its [`Finding`]s and their [`Kind`]s,
//! which decide what a repair does) and the order of the checks ([`verify`]); the checks
//! themselves are in `files` (the lake against its markers), `deep` (`--deep`) and `api`
//! (`--against-api`).

mod api;
mod chain;
mod deep;
mod delta;
mod files;
mod integrity;
mod ledger;
#[cfg(test)]
pub(crate) mod test_lake;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use serde::Serialize;

use crate::lake::layout;
use crate::lake::manifest::TableFormat;
use crate::lake::manifest::{Manifest, ManifestError, WindowRecord};
use crate::lake::storage::{Lake, StorageError};
use crate::lake::view::{Current, TableView};
use crate::plan::window::{Grid, Window};
use crate::units::time::format_compact;
use crate::zendesk::{ApiError, Client};

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
    /// Hash every file and compare it with the SHA-256 its marker recorded (also part of
    /// `deep`).
    pub integrity: bool,
    /// The public key the chain's links must be signed with.
    pub public_key: Option<crate::lake::signing::Verifier>,
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
    /// The bounds of `id` or `created_at` that the file's footer or its marker records (the
    /// Delta log's come from the marker) are not its rows' (deep): engines that skip files by
    /// them miss rows.
    WrongStats,
    /// A file's schema differs from `schemas/` (deep).
    WrongSchema,
    /// Zendesk returns more records for the window than the lake holds.
    ApiMore,
    /// Zendesk returns fewer records for the window than the lake holds.
    ApiFewer,
    /// The Delta log and the markers name different files (or sizes); the next run (or a
    /// repair) converges the log in one commit.
    LogDisagrees,
    /// A file's SHA-256 differs from the one its marker recorded when it was written: its bytes
    /// changed after the commit (integrity).
    Altered,
    /// The digest chain is broken: a link missing, edited, reordered, truncated.
    ChainBroken,
    /// A marker and its window's link in the chain name different files, or a chained window
    /// has no marker.
    ChainDisagrees,
    /// A committed window with recorded digests has no link in the chain.
    Unchained,
    /// A link or a ledger entry unsigned, signed by another key, or whose signature does not
    /// verify.
    BadSignature,
    /// An erasure or expiry that a crash interrupted: the data it removes is still in the lake
    /// until the next run (or a repair) finishes it.
    Pending,
}

impl Kind {
    /// Whether a repair re-exports the window this finding is about. Strays and staging
    /// leftovers are removed instead; fewer records at Zendesk than in the lake are only
    /// reported (an archive keeps what it holds).
    pub fn needs_reexport(self) -> bool {
        !matches!(
            self,
            Kind::Stray
                | Kind::Staging
                | Kind::ApiFewer
                | Kind::LogDisagrees
                | Kind::ChainBroken
                | Kind::ChainDisagrees
                | Kind::Unchained
                | Kind::BadSignature
                | Kind::Pending
        )
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
    /// The digest chain's links walked (`--integrity`, `--deep`): `Some(0)` for a lake with no
    /// chain yet; `None` when it was not walked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain_links: Option<u64>,
    /// For a Delta table: the files its log removed that it keeps for its older versions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retained: Option<Retained>,
}

/// The files a Delta table keeps for its older versions (time travel): not strays.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Retained {
    /// Files the log removed within the retention, still in the lake.
    pub files: u64,
    /// The table's `delta.deletedFileRetentionDuration`, in seconds.
    pub retention_seconds: u64,
}

impl fmt::Display for Retained {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (files, verb) = match self.files {
            1 => ("file", "is"),
            _ => ("files", "are"),
        };
        let seconds = self.retention_seconds;
        let retention = match seconds {
            86_400 => "1 day".to_string(),
            s if s >= 86_400 && s % 86_400 == 0 => format!("{} days", s / 86_400),
            s if s >= 3_600 && s % 3_600 == 0 => format!("{} h", s / 3_600),
            s => format!("{s} s"),
        };
        write!(
            f,
            "Delta log: {} {files} it removed {verb} kept for its older versions (retention {retention})",
            self.files
        )
    }
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
        match self.chain_links {
            Some(0) => writeln!(
                f,
                "digest chain: none yet (a lake made before digests were chained: the chain starts with its next commit)"
            )?,
            Some(links) => writeln!(f, "digest chain: {links} links walked")?,
            None => {}
        }
        if let Some(retained) = &self.retained {
            writeln!(f, "{retained}")?;
        }
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
    let mut check = Check::new(lake, subdomain, options).await?;
    let mut listing: HashMap<String, u64> = lake
        .list_sized(&layout::data(subdomain))
        .await?
        .into_iter()
        .map(|(p, size)| (p.to_string(), size))
        .collect();
    let log = match check.table_format {
        TableFormat::Delta => Some(
            crate::lake::delta::DeltaLog::new(lake, subdomain, "verify")
                .snapshot()
                .await,
        ),
        TableFormat::Parquet => None,
    };
    // Whether a day was compacted, told by its other windows' files (see `lake::view::Current`):
    // the log holds none of them, or one is gone from a plain lake.
    let current = match log.as_ref().and_then(|l| l.as_ref().ok()) {
        Some(snapshot) => Current::Held(snapshot.files.keys().cloned().collect()),
        None => Current::Listed { lake, subdomain },
    };
    let present: BTreeSet<String> = listing.keys().cloned().collect();
    let compacted =
        |files: &[&crate::lake::manifest::FileEntry]| current.compacted(files, &present);
    check.read_table(&compacted).await?;
    if let Some(Ok(snapshot)) = &log {
        check.retained(snapshot, &mut listing);
    }
    let to_read = check.windows_and_files(&listing);
    check.strays(&listing)?;
    if let Some(log) = log {
        check.delta_log(log, &listing);
    }
    if options.integrity || options.deep {
        check.chain_links = Some(check.walk_chain(&listing).await?.links);
    }
    check.check_ledger().await?;
    let files_checked = to_read.len() as u64;
    if options.deep {
        check.read_every_row(to_read).await?;
    } else {
        if options.integrity {
            check.hash_files(&to_read).await?;
        }
        check.read_footers(to_read).await?;
    }
    if let Some(client) = api {
        check.count_at_api(client).await?;
    }
    Ok(check.report(files_checked, api.is_some()))
}

/// A file to read: its window, path, size and the rows its marker records.
type ToRead = (Window, String, u64, u64);

/// A verification in progress: what the manifest says, and what was found so far. Each check
/// (in `files`, `deep` and `api`) adds its findings.
struct Check<'a> {
    lake: &'a Lake,
    subdomain: &'a str,
    options: &'a VerifyOptions,
    grid: Grid,
    filters: crate::zendesk::Filters,
    table_format: TableFormat,
    /// The fingerprint of the key the dataset pins for its chain, if signed.
    signing_key: Option<String>,
    /// Every current marker, in the lake (strays are judged against all of them).
    markers: BTreeMap<i64, WindowRecord>,
    /// Windows whose current marker does not parse: their files are still theirs (never
    /// strays), and a repair re-exports them.
    unreadable: BTreeMap<i64, u32>,
    /// The windows (starts) whose markers a compacted day's marker covers.
    covered: BTreeSet<i64>,
    /// Unreadable markers that may be a compacted day's (in a Delta table: see `delta.rs`),
    /// by start, with the day's end: the day is re-exported whole.
    unreadable_days: BTreeMap<i64, i64>,
    /// The open windows' records, but those committed since.
    open: Vec<WindowRecord>,
    /// `open.json` does not parse: the files of windows without a marker may be open parts.
    open_unreadable: bool,
    /// The starts of every committed window (the markers' listing).
    committed: BTreeSet<i64>,
    windows: Vec<WindowCheck>,
    findings: Vec<Finding>,
    chain_links: Option<u64>,
    retained: Option<Retained>,
    /// The erase and expire links the chain's walk found, for the ledger's check.
    policy_links: Vec<ledger::PolicyLink>,
}

impl<'a> Check<'a> {
    /// Reads the dataset.
    async fn new(
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
        Ok(Check {
            lake,
            subdomain,
            options,
            grid,
            filters: dataset.filters,
            table_format: dataset.table_format,
            signing_key: dataset.signing_key,
            markers: BTreeMap::new(),
            unreadable: BTreeMap::new(),
            covered: BTreeSet::new(),
            unreadable_days: BTreeMap::new(),
            open: Vec::new(),
            open_unreadable: false,
            committed: BTreeSet::new(),
            windows: Vec::new(),
            findings: Vec::new(),
            chain_links: None,
            retained: None,
            policy_links: Vec::new(),
        })
    }

    /// Reads the table as the run sees it ([`TableView`]): the markers that stand, the torn ones
    /// with what they may cover (`compacted`: whether a day's other windows' files say it was
    /// compacted), and the open windows.
    async fn read_table(
        &mut self,
        compacted: &dyn Fn(&[&crate::lake::manifest::FileEntry]) -> bool,
    ) -> Result<(), VerifyError> {
        let manifest = Manifest::new(self.lake.clone(), self.subdomain);
        let generations = manifest.generations().await?;
        let open = match manifest.open_windows().await {
            Ok(open) => open,
            Err(ManifestError::Corrupt { path, reason }) => {
                let detail = format!("the open windows' state does not parse ({reason}); the next run rebuilds it from their parts");
                self.found(Kind::CorruptManifest, None, Some(path), detail);
                self.open_unreadable = true;
                Vec::new()
            }
            Err(e) => return Err(e.into()),
        };
        let markers = manifest.read_markers(generations.clone()).await?;
        self.committed = generations.keys().copied().collect();
        let view = TableView::build(self.grid, &generations, markers, open, compacted);
        for (&start, torn) in &view.torn {
            self.unreadable.insert(start, torn.torn.generation);
            if torn.span.end - torn.span.start != self.grid.seconds() {
                self.unreadable_days.insert(start, torn.span.end);
            }
            let (path, reason) = (torn.torn.path.clone(), &torn.torn.reason);
            self.found(
                Kind::CorruptManifest,
                Some(torn.span.id()),
                Some(path),
                format!(
                    "the marker does not parse ({reason}); its window is re-exported by repair"
                ),
            );
        }
        for (start, torn) in &view.covered_torn {
            tracing::warn!(window = %format_compact(*start), path = %torn.path, "the marker of a window a wider marker covers does not parse; the wider marker stands for it");
        }
        self.covered = view.covered;
        self.markers = view.standing;
        self.open = view.open;
        Ok(())
    }

    /// The window of the marker at `start`: as its marker records it (a compacted day spans the
    /// day), else the grid's.
    fn window(&self, start: i64) -> Window {
        if let Some(&end) = self.unreadable_days.get(&start) {
            return Window { start, end };
        }
        self.markers
            .get(&start)
            .and_then(WindowRecord::span)
            .filter(|span| span.start == start)
            .unwrap_or(Window {
                start,
                end: start + self.grid.seconds(),
            })
    }

    fn found(&mut self, kind: Kind, window: Option<String>, path: Option<String>, detail: String) {
        self.findings.push(Finding {
            kind,
            window,
            path,
            detail,
        });
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
            chain_links: self.chain_links,
            retained: self.retained,
        }
    }
}
