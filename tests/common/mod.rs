//! Shared helpers of the integration tests: a simulator, an export configuration pointing at it,
//! and a reader that turns a lake back into records to compare with the simulator's ground truth.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use arrow::array::{Array, Int64Array, StringArray, TimestampMillisecondArray};
use chrono::{DateTime, TimeZone, Utc};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Map, Value};

use auditlake::plan::window::Grid;
use auditlake::run::{self, NoProgress, Summary};
use auditlake::run::{ApiConfig, ExportConfig};
use auditlake::units::time::parse_instant;
use auditlake::zendesk::auth::Secret;
use auditlake::zendesk::{ClientOptions, Credentials, Filters, Pagination, RetryPolicy};
use zendesk_sim::{SimConfig, SimFilter, Simulator};

pub const TOKEN: &str = "sim-token";

/// The `auditlake` binary with `args` and only `env` (and `PATH`) in its environment.
pub fn binary(args: &[&str], env: &[(&str, &str)]) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_auditlake"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null());
    cmd
}

/// Runs the binary to its end, off the async threads.
pub async fn run_binary(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = binary(args, env);
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

/// A run's stdout then stderr, as text.
pub fn text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The binary's export of the twelve-hour account (`sim_config(3_000, "2024-03-01",
/// "2024-03-01T12:00:00Z")`) into `dest` on an hourly grid, before each test's own flags.
pub fn twelve_hour_export(dest: &str, base_url: &str) -> Vec<String> {
    [
        "export",
        "--subdomain",
        "acme",
        "--dest",
        dest,
        "--since",
        "2024-03-01",
        "--until",
        "2024-03-01T12:00:00Z",
        "--window",
        "1h",
        "--base-url",
        base_url,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

pub fn t(text: &str) -> i64 {
    parse_instant(text).unwrap()
}

pub fn utc(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(seconds, 0).unwrap()
}

/// A simulated account of `records` records in `[from, to)`, with a rate limit high enough not
/// to slow tests down unless a test lowers it.
pub fn sim_config(records: u64, from: &str, to: &str) -> SimConfig {
    let mut c = SimConfig::new(records, utc(t(from)), utc(t(to)));
    c.rate_limit_per_minute = 1_000_000;
    c.extra_fields = true;
    c
}

pub async fn start(config: SimConfig) -> Simulator {
    Simulator::start(config, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap()
}

/// An export of `sim` into `dest` over `[since, until)`.
pub fn export_config(
    sim: &Simulator,
    dest: &Path,
    since: &str,
    until: &str,
    window: &str,
) -> ExportConfig {
    ExportConfig {
        api: ApiConfig {
            subdomain: "acme".into(),
            client: ClientOptions {
                base_url: url::Url::parse(&sim.base_url()).unwrap(),
                credentials: Credentials::OAuth(Secret::new(TOKEN)),
                request_timeout: Duration::from_secs(10),
                retry: RetryPolicy {
                    max_attempts: 10,
                    max_elapsed: Duration::from_secs(60),
                    base_delay: Duration::from_millis(5),
                    max_delay: Duration::from_millis(100),
                },
            },
            max_requests_per_minute: None,
            rate_limit_share: 0.5,
        },
        filters: Filters::default(),
        dest: dest.to_str().unwrap().to_string(),
        grid: Grid::parse(window).unwrap(),
        table_format: Default::default(),
        since: t(since),
        until: t(until),
        concurrency: 4,
        pagination: Pagination::Cursor,
        summary_json: None,
        metrics_file: None,
        tmp_dir: std::env::temp_dir(),
        recheck: Duration::ZERO,
        retention: None,
        compact_days: true,
        lease_ttl: Duration::from_secs(600),
        store: Default::default(),
        run_id: auditlake::units::new_run_id(),
        signer: None,
        exit_code_of: auditlake::cmd::exit::of_outcome,
    }
}

/// A client of `sim` as an export's (its options from [`export_config`]), with a fresh budget.
pub fn api_client(sim: &Simulator) -> auditlake::zendesk::Client {
    let api = export_config(sim, Path::new("/unused"), "2024-01-01", "2024-01-02", "1d").api;
    auditlake::zendesk::Client::new(
        api.client,
        std::sync::Arc::new(auditlake::zendesk::RequestBudget::new(None, 1.0)),
    )
    .unwrap()
}

pub async fn export(config: ExportConfig) -> Summary {
    run::export(
        config,
        tokio_util::sync::CancellationToken::new(),
        &NoProgress,
    )
    .await
    .unwrap()
}

/// One row of the lake, rebuilt as the record JSON it came from (nulls omitted), with where it was.
#[derive(Debug, Clone)]
pub struct LakeRow {
    pub record: Map<String, Value>,
    pub id: i64,
    pub created_at: i64,
    pub path: PathBuf,
}

/// Every Parquet file under `dest` outside the manifest.
pub fn parquet_files(dest: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dest.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if !path.ends_with("_auditlake") {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "parquet") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// What a read checks of the order of each file's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Every file is sorted by `(created_at, id)` (and declares so): any export from an API that
    /// keeps its documented order.
    Sorted,
    /// A file is sorted where it declares so: rows served out of order are written as they came,
    /// and their file declares no order.
    AsDeclared,
}

/// Reads the lake back into records, checking each file's rows are in its partition and sorted.
pub fn read_lake(dest: &Path) -> Vec<LakeRow> {
    read_lake_in(dest, Order::Sorted)
}

/// Reads the lake back into records, checking each file's partition and `order`. A Delta
/// table's files that its log removed (kept for its older versions) are not the lake's: the
/// lake is read as its latest version.
pub fn read_lake_in(dest: &Path, order: Order) -> Vec<LakeRow> {
    let removed = delta_root(dest).map_or_else(BTreeSet::new, |root| delta_removed(&root));
    let mut rows = Vec::new();
    for path in parquet_files(dest)
        .into_iter()
        .filter(|p| !removed.contains(p))
    {
        let bytes = bytes::Bytes::from(std::fs::read(&path).unwrap());
        rows.extend(read_part_in(&path.to_string_lossy(), bytes, order));
    }
    rows
}

/// The findings of `report` of one kind.
pub fn findings_of(
    report: &auditlake::verify::Report,
    kind: auditlake::verify::Kind,
) -> Vec<&auditlake::verify::Finding> {
    report.findings.iter().filter(|f| f.kind == kind).collect()
}

/// The Delta table root that holds `dir` (or that `dir/audit_logs` is), if it has a log.
pub fn delta_root(dir: &Path) -> Option<PathBuf> {
    std::iter::once(dir.join("audit_logs"))
        .chain(dir.ancestors().map(Path::to_path_buf))
        .find(|d| d.join("_delta_log").is_dir())
}

/// The files (paths under `root`) that the Delta log at `root` removed and never added again,
/// replaying its JSON commits: its older versions' files.
pub fn delta_removed(root: &Path) -> BTreeSet<PathBuf> {
    let mut removed = BTreeSet::new();
    for action in delta_actions(root) {
        if let Some(path) = action["add"]["path"].as_str() {
            removed.remove(&root.join(path));
        }
        if let Some(path) = action["remove"]["path"].as_str() {
            removed.insert(root.join(path));
        }
    }
    removed
}

/// The rows of one part file, given its path (for the partition) and its bytes; sorted.
pub fn read_part(path: &str, bytes: bytes::Bytes) -> Vec<LakeRow> {
    read_part_in(path, bytes, Order::Sorted)
}

/// The rows of one part file, checking `order`.
pub fn read_part_in(path: &str, bytes: bytes::Bytes, order: Order) -> Vec<LakeRow> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
    // A file declares its sort order unless its rows came out of order (then it declares none).
    let declares_sort = builder
        .metadata()
        .row_groups()
        .iter()
        .all(|g| g.sorting_columns().is_some_and(|c| !c.is_empty()));
    let reader = builder.build().unwrap();
    let partition_day = path
        .split('/')
        .find_map(|segment| segment.strip_prefix("created_date="))
        .unwrap_or_else(|| panic!("{path} is not in a created_date partition"))
        .to_string();
    let mut file_rows: Vec<LakeRow> = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let schema = batch.schema();
        for i in 0..batch.num_rows() {
            let mut record = Map::new();
            let mut id = 0;
            let mut created = 0;
            for (field, column) in schema.fields().iter().zip(batch.columns()) {
                if column.is_null(i) {
                    continue;
                }
                let name = field.name().as_str();
                if let Some(a) = column.as_any().downcast_ref::<Int64Array>() {
                    if name == "id" {
                        id = a.value(i);
                    }
                    record.insert(name.into(), Value::from(a.value(i)));
                } else if let Some(a) = column.as_any().downcast_ref::<TimestampMillisecondArray>()
                {
                    created = a.value(i);
                    let text = Utc
                        .timestamp_millis_opt(a.value(i))
                        .unwrap()
                        .format("%Y-%m-%dT%H:%M:%SZ")
                        .to_string();
                    record.insert(name.into(), Value::from(text));
                } else if let Some(a) = column.as_any().downcast_ref::<StringArray>() {
                    if name == "extra_json" {
                        let extra: Map<String, Value> = serde_json::from_str(a.value(i)).unwrap();
                        record.extend(extra);
                    } else {
                        record.insert(name.into(), Value::from(a.value(i)));
                    }
                } else {
                    panic!("unexpected column type {field:?}");
                }
            }
            let day = Utc
                .timestamp_millis_opt(created)
                .unwrap()
                .format("%Y-%m-%d")
                .to_string();
            assert_eq!(
                day, partition_day,
                "row {id} is in the wrong partition: {path}"
            );
            file_rows.push(LakeRow {
                record,
                id,
                created_at: created,
                path: PathBuf::from(path),
            });
        }
    }
    let sorted = file_rows
        .windows(2)
        .all(|w| (w[0].created_at, w[0].id) < (w[1].created_at, w[1].id));
    match order {
        Order::Sorted => assert!(
            sorted && declares_sort,
            "{path} is not sorted by (created_at, id), or does not declare so"
        ),
        Order::AsDeclared => assert!(
            sorted || !declares_sort,
            "{path} declares a sort by (created_at, id) but is not sorted"
        ),
    }
    file_rows
}

/// A record JSON as the lake should hold it: the list rendering, nulls omitted.
pub fn normalize(json: &str) -> Map<String, Value> {
    let value: Map<String, Value> = serde_json::from_str(json).unwrap();
    value.into_iter().filter(|(_, v)| !v.is_null()).collect()
}

/// Asserts the lake holds exactly the expected records, each once, every field intact.
pub fn assert_lake_exact(
    dest: &Path,
    sim: &Simulator,
    filter: &SimFilter,
    since: &str,
    until: &str,
) -> usize {
    assert_lake_exact_in(dest, sim, filter, since, until, Order::Sorted)
}

/// [`assert_lake_exact`], checking `order` of each file's rows.
pub fn assert_lake_exact_in(
    dest: &Path,
    sim: &Simulator,
    filter: &SimFilter,
    since: &str,
    until: &str,
    order: Order,
) -> usize {
    assert_rows_exact(
        read_lake_in(&dest.join("audit_logs/subdomain=acme"), order),
        sim,
        filter,
        since,
        until,
    )
}

/// Asserts `rows` are exactly the expected records, each once, every field intact.
pub fn assert_rows_exact(
    rows: Vec<LakeRow>,
    sim: &Simulator,
    filter: &SimFilter,
    since: &str,
    until: &str,
) -> usize {
    let expected = sim.account().expected(filter, utc(t(since)), utc(t(until)));
    let mut by_id: BTreeMap<i64, &LakeRow> = BTreeMap::new();
    for row in &rows {
        assert!(
            by_id.insert(row.id, row).is_none(),
            "id {} is in the lake twice",
            row.id
        );
    }
    let missing: Vec<i64> = expected
        .iter()
        .filter(|e| !by_id.contains_key(&e.id))
        .map(|e| e.id)
        .take(10)
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} records missing, e.g. {missing:?}",
        expected.len() - rows.len().min(expected.len()),
        expected.len()
    );
    assert_eq!(
        rows.len(),
        expected.len(),
        "the lake holds records it should not"
    );
    for e in &expected {
        let row = by_id[&e.id];
        assert_eq!(row.record, normalize(&e.json), "record {} differs", e.id);
    }
    expected.len()
}

/// The marker files of subdomain `acme`.
pub fn markers(dest: &Path) -> Vec<String> {
    let dir = dest.join("_auditlake/subdomain=acme/windows");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// How many windows of subdomain `acme` have a marker (of any generation: a compacted day's
/// first window has two).
pub fn windows_marked(dest: &Path) -> usize {
    let starts: std::collections::BTreeSet<String> = markers(dest)
        .into_iter()
        .map(|m| m.split('.').next().unwrap().to_string())
        .collect();
    starts.len()
}

/// `verify` of subdomain `acme` of the local lake at `dest`, with `options`.
pub async fn verify_lake_with(
    dest: &Path,
    options: auditlake::verify::VerifyOptions,
) -> auditlake::verify::Report {
    let store = auditlake::lake::storage::StoreOptions::default();
    let lake = auditlake::lake::storage::Lake::open(dest.to_str().unwrap(), &store).unwrap();
    auditlake::verify::verify(&lake, "acme", &options, None)
        .await
        .unwrap()
}

/// `verify --deep` of the local lake at `dest`.
pub async fn verify_deep(dest: &Path) -> auditlake::verify::Report {
    let options = auditlake::verify::VerifyOptions {
        deep: true,
        ..Default::default()
    };
    verify_lake_with(dest, options).await
}

/// The files (paths under `root`) of the Delta log's latest version at `root`, replaying its
/// JSON commits: what Delta readers read.
pub fn delta_live(root: &Path) -> BTreeSet<PathBuf> {
    let mut live = BTreeSet::new();
    for action in delta_actions(root) {
        if let Some(path) = action["add"]["path"].as_str() {
            live.insert(root.join(path));
        }
        if let Some(path) = action["remove"]["path"].as_str() {
            live.remove(&root.join(path));
        }
    }
    live
}

/// Every action of the Delta log at `root`, commit after commit.
pub fn delta_actions(root: &Path) -> Vec<Value> {
    let log = root.join("_delta_log");
    let mut commits: Vec<PathBuf> = std::fs::read_dir(&log)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('_'))
        .collect();
    commits.sort();
    commits
        .iter()
        .flat_map(|c| {
            std::fs::read_to_string(c)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The Delta log at `root` as a change feed: the rows of its `dataChange: true` adds minus those
/// of its `dataChange: true` removes, over every version, and the rows of its latest version.
/// A change feed counts every record once exactly when the two are equal.
pub fn delta_change_feed(root: &Path) -> (i64, i64) {
    let mut rows_of: BTreeMap<String, i64> = BTreeMap::new();
    let mut live: BTreeMap<String, i64> = BTreeMap::new();
    let mut fed = 0;
    for action in delta_actions(root) {
        if let Some(add) = action.get("add") {
            let path = add["path"].as_str().unwrap().to_string();
            let stats: Value = serde_json::from_str(add["stats"].as_str().unwrap()).unwrap();
            let rows = stats["numRecords"].as_i64().unwrap();
            if add["dataChange"].as_bool().unwrap() {
                fed += rows;
            }
            rows_of.insert(path.clone(), rows);
            live.insert(path, rows);
        }
        if let Some(remove) = action.get("remove") {
            let path = remove["path"].as_str().unwrap();
            if remove["dataChange"].as_bool().unwrap() {
                fed -= rows_of[path];
            }
            live.remove(path);
        }
    }
    (fed, live.values().sum())
}

/// How often each id appears in what readers of the lake at `dest` see: every Parquet file a
/// directory reader finds, or a Delta table's latest version.
pub fn ids_seen(dest: &Path) -> BTreeMap<i64, usize> {
    let mut ids = BTreeMap::new();
    for row in rows_seen(dest) {
        *ids.entry(row.id).or_insert(0) += 1;
    }
    ids
}

/// Every row readers of the lake at `dest` see: every Parquet file a directory reader finds,
/// or a Delta table's latest version.
pub fn rows_seen(dest: &Path) -> Vec<LakeRow> {
    let files: Vec<PathBuf> = match delta_root(dest) {
        Some(root) => delta_live(&root).into_iter().collect(),
        None => parquet_files(dest),
    };
    let mut rows = Vec::new();
    for path in files {
        let bytes = bytes::Bytes::from(std::fs::read(&path).unwrap());
        rows.extend(read_part_in(
            &path.to_string_lossy(),
            bytes,
            Order::AsDeclared,
        ));
    }
    rows
}

/// The ids of the records the simulator serves in `[since, until)`.
pub fn expected_ids(sim: &Simulator, since: &str, until: &str) -> BTreeSet<i64> {
    sim.account()
        .expected(&SimFilter::default(), utc(t(since)), utc(t(until)))
        .iter()
        .map(|e| e.id)
        .collect()
}

/// `auditlake repair` of the lake `config` exports into, with `--against-api` if asked.
pub async fn repair_with(
    config: ExportConfig,
    against_api: bool,
) -> Result<auditlake::run::RepairOutcome, auditlake::run::RunError> {
    let check = auditlake::run::VerifyConfig {
        dest: config.dest.clone(),
        subdomain: "acme".into(),
        store: auditlake::lake::storage::StoreOptions::default(),
        options: auditlake::verify::VerifyOptions::default(),
        api: against_api.then(|| config.api.clone()),
    };
    let config = auditlake::run::RepairConfig {
        check,
        export: config,
    };
    run::repair(config, tokio_util::sync::CancellationToken::new()).await
}
