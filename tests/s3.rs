//! The lake in a real S3-compatible server (moto, started by `make test` through
//! `tests/with-moto.sh`): exactness, resume, leases between concurrent runs, a server that stops
//! mid-run, multipart uploads, and a store without conditional writes.
//!
//! These tests are `#[ignore]`d for a plain `cargo test`, which has no S3 server; `make test` runs
//! them with `--ignored` under the harness, so in CI they always run.

mod common;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use auditlake::lake::lease::{Lease, LeaseError};
use auditlake::lake::storage::{Lake, StorageError, StoreOptions};
use auditlake::run::{self, NoProgress, Progress, RunError};
use common::*;
use object_store::path::Path;
use tokio_util::sync::CancellationToken;
use zendesk_sim::SimFilter;

const NEEDS_S3: &str = "run through `make test`, which starts a local S3 server";

fn endpoint() -> String {
    std::env::var("AUDITLAKE_TEST_S3_ENDPOINT")
        .expect("AUDITLAKE_TEST_S3_ENDPOINT is not set: run through `make test`")
}

fn options(endpoint: &str) -> StoreOptions {
    StoreOptions {
        settings: vec![
            ("aws_endpoint".into(), endpoint.into()),
            ("aws_region".into(), "us-east-1".into()),
            ("aws_access_key_id".into(), "testing".into()),
            ("aws_secret_access_key".into(), "testing".into()),
        ],
        timeout: Duration::from_secs(5),
        ..StoreOptions::default()
    }
}

/// A fresh bucket (moto accepts an unsigned PUT).
async fn bucket(endpoint: &str) -> String {
    let name = format!("lake-{:016x}", fastrand::u64(..));
    let status = reqwest::Client::new()
        .put(format!("{endpoint}/{name}"))
        .send()
        .await
        .unwrap()
        .status();
    assert!(status.is_success(), "creating bucket {name}: {status}");
    name
}

fn s3_config(
    sim: &zendesk_sim::Simulator,
    endpoint: &str,
    bucket: &str,
    since: &str,
    until: &str,
) -> auditlake::run::ExportConfig {
    let mut config = export_config(sim, std::path::Path::new("/unused"), since, until, "1d");
    config.dest = format!("s3://{bucket}/lake");
    config.store = options(endpoint);
    config
}

fn lake(endpoint: &str, bucket: &str) -> Lake {
    Lake::open(&format!("s3://{bucket}/lake"), &options(endpoint)).unwrap()
}

async fn read_s3(lake: &Lake, subdomain: &str) -> Vec<LakeRow> {
    let mut rows = Vec::new();
    for path in lake
        .list(&Path::from(format!("audit_logs/subdomain={subdomain}")))
        .await
        .unwrap()
    {
        let bytes = lake.read(&path).await.unwrap().unwrap();
        rows.extend(read_part(path.as_ref(), bytes));
    }
    rows
}

async fn markers_s3(lake: &Lake, subdomain: &str) -> usize {
    lake.list(&Path::from(format!(
        "_auditlake/subdomain={subdomain}/windows"
    )))
    .await
    .unwrap()
    .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a local S3 server: run through `make test`"]
async fn an_export_into_a_bucket_is_exact_and_a_rerun_requests_nothing() {
    let endpoint = endpoint();
    let bucket = bucket(&endpoint).await;
    let sim = start(sim_config(5_000, "2024-03-01", "2024-03-05")).await;
    let summary = export(s3_config(
        &sim,
        &endpoint,
        &bucket,
        "2024-03-01",
        "2024-03-05",
    ))
    .await;
    assert_eq!(summary.windows_failed, 0, "{:?}", summary.failures);
    assert_eq!(summary.dest, format!("s3://{bucket}/lake"));
    let lake = lake(&endpoint, &bucket);
    assert_rows_exact(
        read_s3(&lake, "acme").await,
        &sim,
        &SimFilter::default(),
        "2024-03-01",
        "2024-03-05",
    );
    assert_eq!(markers_s3(&lake, "acme").await, 4);

    sim.reset_stats();
    let again = export(s3_config(
        &sim,
        &endpoint,
        &bucket,
        "2024-03-01",
        "2024-03-05",
    ))
    .await;
    assert_eq!((again.windows_skipped, again.requests), (4, 0));
    assert_eq!(sim.stats().requests, 0);
}

struct StopAfter(u64, AtomicU64, CancellationToken);

impl Progress for StopAfter {
    fn start(&self, _: u64, _: auditlake::run::Meter) {}
    fn records(&self, _: u64) {}
    fn window_finished(&self) {
        if self.1.fetch_add(1, Ordering::SeqCst) + 1 >= self.0 {
            self.2.cancel();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a local S3 server: run through `make test`"]
async fn a_stopped_run_resumes_exactly() {
    let endpoint = endpoint();
    let bucket = bucket(&endpoint).await;
    let sim = start(sim_config(6_000, "2024-03-01", "2024-03-09")).await;
    let cancel = CancellationToken::new();
    let stop = StopAfter(3, AtomicU64::new(0), cancel.clone());
    let mut config = s3_config(&sim, &endpoint, &bucket, "2024-03-01", "2024-03-09");
    config.concurrency = 2;
    let first = run::export(config, cancel, &stop).await.unwrap();
    assert!(first.interrupted);
    let lake = lake(&endpoint, &bucket);
    let done = markers_s3(&lake, "acme").await;
    assert!((3..8).contains(&done), "{done}");
    let second = export(s3_config(
        &sim,
        &endpoint,
        &bucket,
        "2024-03-01",
        "2024-03-09",
    ))
    .await;
    assert_eq!(second.windows_skipped as usize, done);
    assert_rows_exact(
        read_s3(&lake, "acme").await,
        &sim,
        &SimFilter::default(),
        "2024-03-01",
        "2024-03-09",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a local S3 server: run through `make test`"]
async fn concurrent_runs_one_subdomain_refuses_other_subdomains_proceed() {
    let endpoint = endpoint();
    let bucket = bucket(&endpoint).await;
    let sim = start(sim_config(3_000, "2024-03-01", "2024-03-04")).await;
    // The first run is paced at one request a second, so it is still running when the others start.
    let mut slow = s3_config(&sim, &endpoint, &bucket, "2024-03-01", "2024-03-04");
    slow.concurrency = 1;
    slow.api.max_requests_per_minute = Some(60);
    let first = tokio::spawn(run::export(slow, CancellationToken::new(), &NoProgress));
    let lake = lake(&endpoint, &bucket);
    let deadline = Instant::now() + Duration::from_secs(30);
    while auditlake::lake::lease::latest(&lake, "acme")
        .await
        .unwrap()
        .is_none()
    {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let refused = run::export(
        s3_config(&sim, &endpoint, &bucket, "2024-03-01", "2024-03-04"),
        CancellationToken::new(),
        &NoProgress,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(refused, RunError::Lease(LeaseError::Held { .. })),
        "{refused}"
    );
    assert!(refused.to_string().contains("pid"), "{refused}");

    let mut other = s3_config(&sim, &endpoint, &bucket, "2024-03-01", "2024-03-04");
    other.api.subdomain = "other".into();
    let other = export(other).await;
    assert_eq!(other.windows_done, 3);

    let first = first.await.unwrap().unwrap();
    assert_eq!(first.windows_done, 3, "{:?}", first.failures);
    assert_rows_exact(
        read_s3(&lake, "acme").await,
        &sim,
        &SimFilter::default(),
        "2024-03-01",
        "2024-03-04",
    );
    let other_rows = read_s3(&lake, "other").await;
    assert_eq!(other_rows.len(), read_s3(&lake, "acme").await.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a local S3 server: run through `make test`"]
async fn a_lease_left_by_a_killed_run_is_taken_over_after_it_expires() {
    let endpoint = endpoint();
    let bucket = bucket(&endpoint).await;
    let sim = start(sim_config(500, "2024-03-01", "2024-03-02")).await;
    let lake = lake(&endpoint, &bucket);
    // A run that died holding its lease: acquired, never renewed nor released.
    let abandoned = Lease::acquire(
        &lake,
        "acme",
        Duration::from_secs(3),
        "killed-host pid 1",
        &auditlake::units::new_run_id(),
    )
    .await
    .unwrap();
    drop(abandoned);
    let err = run::export(
        s3_config(&sim, &endpoint, &bucket, "2024-03-01", "2024-03-02"),
        CancellationToken::new(),
        &NoProgress,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("killed-host pid 1"), "{err}");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let summary = export(s3_config(
        &sim,
        &endpoint,
        &bucket,
        "2024-03-01",
        "2024-03-02",
    ))
    .await;
    assert_eq!(summary.windows_done, 1);
    let lease = auditlake::lake::lease::latest(&lake, "acme")
        .await
        .unwrap()
        .unwrap();
    assert!(lease.holder.is_empty(), "released at the end: {lease:?}");
    assert!(
        lease.generation >= 3,
        "taken over, then released: {lease:?}"
    );
}

#[tokio::test]
#[ignore = "needs a local S3 server: run through `make test`"]
async fn large_files_go_up_as_multipart_uploads() {
    use std::io::{Seek, Write};
    let endpoint = endpoint();
    let bucket = bucket(&endpoint).await;
    let lake = lake(&endpoint, &bucket);
    let mut file = tempfile::tempfile().unwrap();
    let mut rng = fastrand::Rng::with_seed(7);
    let data: Vec<u8> = (0..20 << 20).map(|_| rng.u8(..)).collect();
    file.write_all(&data).unwrap();
    file.rewind().unwrap();
    let path = Path::from(
        "audit_logs/subdomain=acme/created_date=2024-03-01/part-20240301T0000Z-0.parquet",
    );
    lake.upload_file(&path, file).await.unwrap();
    assert_eq!(
        lake.read(&path).await.unwrap().unwrap().as_ref(),
        data.as_slice()
    );
    // S3 names a multipart object's ETag "<digest>-<parts>".
    let head = reqwest::Client::new()
        .head(format!("{endpoint}/{bucket}/lake/{path}"))
        .send()
        .await
        .unwrap();
    let etag = head.headers()["etag"].to_str().unwrap().to_string();
    assert!(
        etag.trim_matches('"').contains('-'),
        "not a multipart upload: {etag}"
    );
    // No upload is left half-done.
    let uploads = reqwest::Client::new()
        .get(format!("{endpoint}/{bucket}?uploads"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!uploads.contains("<Upload>"), "{uploads}");
}

#[tokio::test]
#[ignore = "needs a local S3 server: run through `make test`"]
async fn a_store_without_conditional_writes_is_refused_at_start() {
    let endpoint = endpoint();
    let bucket = bucket(&endpoint).await;
    let sim = start(sim_config(100, "2024-03-01", "2024-03-02")).await;
    let mut config = s3_config(&sim, &endpoint, &bucket, "2024-03-01", "2024-03-02");
    config
        .store
        .settings
        .push(("aws_conditional_put".into(), "disabled".into()));
    let err = run::export(config, CancellationToken::new(), &NoProgress)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RunError::Storage(StorageError::NoConditionalWrites { .. })
        ),
        "{err}"
    );
    assert!(err
        .to_string()
        .contains("does not support conditional writes"));
    assert_eq!(
        sim.stats().requests,
        0,
        "nothing is fetched for a lake that can't commit safely"
    );
}

/// Starts a moto server of this test's own (it is paused and resumed).
/// A moto server of the test's own, stopped when dropped: a failing assertion must not leave
/// it running (it once did, frozen by SIGSTOP, until the machine was cleaned up).
struct OwnMoto(std::process::Child);

impl Drop for OwnMoto {
    fn drop(&mut self) {
        // The test may have stopped it (SIGSTOP); SIGKILL ends it either way.
        let _ = Command::new("kill")
            .args(["-CONT", &self.0.id().to_string()])
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn own_moto() -> (OwnMoto, String) {
    let moto = std::env::var("AUDITLAKE_TEST_MOTO").expect(NEEDS_S3);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(moto)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "moto did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    (OwnMoto(child), format!("http://127.0.0.1:{port}"))
}

fn signal(child: &std::process::Child, sig: &str) {
    assert!(Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a local S3 server: run through `make test`"]
async fn a_store_that_stops_answering_fails_the_run_in_bounded_time_and_a_rerun_is_exact() {
    let (moto, endpoint) = own_moto();
    let bucket = bucket(&endpoint).await;
    let sim = start(sim_config(3_000, "2024-03-01", "2024-03-01T12:00:00Z")).await;
    let dest = format!("s3://{bucket}/lake");
    let base = sim.base_url();
    let args = move |slow: bool| {
        let mut a = twelve_hour_export(&dest, &base);
        a.extend(
            [
                "--store-timeout",
                "2s",
                // The shortest lease a 2 s store timeout allows (one renewal must fit a third of it).
                "--lease-ttl",
                "120s",
            ]
            .map(String::from),
        );
        if slow {
            a.extend(["--concurrency", "1", "--max-requests-per-minute", "60"].map(String::from));
        }
        a
    };
    let endpoint_for_runs = endpoint.clone();
    let command = move |args: Vec<String>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_auditlake"));
        c.args(args)
            .env_clear()
            .env("ZENDESK_OAUTH_TOKEN", "sim-token")
            .env("AWS_ENDPOINT_URL", &endpoint_for_runs)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        c
    };
    let mut run = command(args(true)).spawn().unwrap();
    let lake = lake(&endpoint, &bucket);
    let deadline = Instant::now() + Duration::from_secs(60);
    while markers_s3(&lake, "acme").await < 2 {
        assert!(Instant::now() < deadline, "no progress");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    signal(&moto.0, "-STOP");
    let stopped = Instant::now();
    let output = tokio::task::spawn_blocking(move || {
        let status = run.wait().unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(run.stderr.as_mut().unwrap(), &mut err).unwrap();
        (status, err)
    });
    let (status, stderr) = output.await.unwrap();
    let took = stopped.elapsed();
    signal(&moto.0, "-CONT");
    assert!(
        !status.success(),
        "the run must fail while the store is down: {stderr}"
    );
    // Regression (issue 6, defect 12): the run stops scheduling at the first store failure and
    // exits 4 (destination) within about a minute, naming the store's error.
    assert_eq!(status.code(), Some(4), "{stderr}");
    assert!(
        took < Duration::from_secs(60),
        "took {took:?} to give up: {stderr}"
    );
    assert!(stderr.contains("destination failed"), "{stderr}");

    // The failed run could not release its lease (the store was down); its process is gone, so
    // the rerun on this machine takes the lease over at once.
    let rerun = tokio::task::spawn_blocking(move || command(args(false)).output().unwrap())
        .await
        .unwrap();
    assert!(
        rerun.status.success(),
        "{}",
        String::from_utf8_lossy(&rerun.stderr)
    );
    assert_eq!(markers_s3(&lake, "acme").await, 12);
    assert_rows_exact(
        read_s3(&lake, "acme").await,
        &sim,
        &SimFilter::default(),
        "2024-03-01",
        "2024-03-01T12:00:00Z",
    );
    drop(moto);
}

/// `erase` and `expire` on the S3 server, both table formats: the user's records hold none of
/// what the bucket held for them (no object under the lake's prefix but the data does), every
/// other record is unchanged, expired windows are gone, and verify is clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a local S3 server: run through `make test`"]
async fn erase_and_expire_in_a_bucket() {
    use auditlake::lake::manifest::TableFormat;
    use auditlake::run::{ChangeConfig, EraseConfig, ExpireConfig};
    let endpoint = endpoint();
    let sim = start(sim_config(3_000, "2024-03-01", "2024-03-04")).await;
    for format in [TableFormat::Parquet, TableFormat::Delta] {
        let bucket = bucket(&endpoint).await;
        let mut config = s3_config(
            &sim,
            &endpoint,
            &bucket,
            "2024-03-01",
            "2024-03-03T12:00:00Z",
        );
        config.table_format = format;
        assert_eq!(export(config.clone()).await.exit_code(), 0, "{format}");
        let lake = lake(&endpoint, &bucket);
        let live = |rows: Vec<LakeRow>| -> std::collections::BTreeMap<i64, LakeRow> {
            rows.into_iter().map(|r| (r.id, r)).collect()
        };
        let before = live(read_s3_table(&lake, format).await);
        let user = before
            .values()
            .filter_map(|r| r.record.get("actor_id").and_then(|v| v.as_i64()))
            .filter(|&a| a > 0)
            .min()
            .unwrap();
        let of_user = |r: &LakeRow| r.record.get("actor_id").and_then(|v| v.as_i64()) == Some(user);
        let held: std::collections::BTreeSet<String> = before
            .values()
            .filter(|r| of_user(r))
            .flat_map(|r| {
                ["actor_name", "ip_address"]
                    .map(|f| r.record.get(f).and_then(|v| v.as_str()).map(str::to_string))
            })
            .flatten()
            .collect();
        assert!(!held.is_empty());
        let change = ChangeConfig {
            dest: config.dest.clone(),
            store: config.store.clone(),
            subdomain: "acme".into(),
            reason: "DPO-3".into(),
            dry_run: false,
            signer: None,
            tmp_dir: std::env::temp_dir(),
            lease_ttl: Duration::from_secs(60),
            run_id: auditlake::units::new_run_id(),
        };
        let erase = EraseConfig {
            change: change.clone(),
            user_ids: vec![user],
        };
        let outcome = run::erase(erase, CancellationToken::new()).await.unwrap();
        assert!(outcome.rows > 0, "{format}");
        let after = live(read_s3_table(&lake, format).await);
        assert_eq!(
            before.keys().collect::<Vec<_>>(),
            after.keys().collect::<Vec<_>>(),
            "{format}"
        );
        for (id, row) in &after {
            if of_user(row) {
                for value in row.record.values() {
                    let text = value.to_string();
                    assert!(
                        held.iter().all(|h| !text.contains(h.as_str())),
                        "{format}: {id}"
                    );
                }
            } else {
                assert_eq!(row.record, before[id].record, "{format}: {id}");
            }
        }
        // No object but the table's data holds what the bucket held for the user.
        for path in lake.list(&Path::from("")).await.unwrap() {
            if path.as_ref().ends_with(".parquet") && path.as_ref().contains("created_date=") {
                continue;
            }
            let bytes = lake.read(&path).await.unwrap().unwrap();
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                held.iter().all(|h| !text.contains(h.as_str())),
                "{format}: {path}"
            );
        }
        let expire = ExpireConfig {
            change,
            before: t("2024-03-02"),
        };
        let expired = run::expire(expire, CancellationToken::new()).await.unwrap();
        assert_eq!(expired.windows.len(), 1, "{format}: {expired:?}");
        let left = read_s3_table(&lake, format).await;
        assert!(
            left.iter().all(|r| r.created_at >= t("2024-03-02") * 1_000),
            "{format}"
        );
        let report = auditlake::verify::verify(
            &lake,
            "acme",
            &auditlake::verify::VerifyOptions {
                deep: true,
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
        assert!(report.is_clean(), "{format}: {report}");
    }
}

/// The table's rows as its readers see them: a plain lake's every part; a Delta table's latest
/// version (the parts its log holds).
async fn read_s3_table(
    lake: &Lake,
    format: auditlake::lake::manifest::TableFormat,
) -> Vec<LakeRow> {
    let held: Option<std::collections::BTreeSet<String>> = match format {
        auditlake::lake::manifest::TableFormat::Parquet => None,
        auditlake::lake::manifest::TableFormat::Delta => {
            let mut live = std::collections::BTreeSet::new();
            let mut commits: Vec<Path> = lake
                .list(&Path::from("audit_logs/_delta_log"))
                .await
                .unwrap();
            commits.retain(|p| {
                p.as_ref().ends_with(".json") && !p.filename().unwrap().starts_with('_')
            });
            commits.sort();
            for commit in commits {
                let bytes = lake.read(&commit).await.unwrap().unwrap();
                for line in String::from_utf8_lossy(&bytes).lines() {
                    let action: serde_json::Value = serde_json::from_str(line).unwrap();
                    if let Some(path) = action["add"]["path"].as_str() {
                        live.insert(format!("audit_logs/{path}"));
                    }
                    if let Some(path) = action["remove"]["path"].as_str() {
                        live.remove(&format!("audit_logs/{path}"));
                    }
                }
            }
            Some(live)
        }
    };
    let mut rows = Vec::new();
    for path in lake
        .list(&Path::from("audit_logs/subdomain=acme"))
        .await
        .unwrap()
    {
        if held.as_ref().is_some_and(|h| !h.contains(path.as_ref())) {
            continue;
        }
        let bytes = lake.read(&path).await.unwrap().unwrap();
        rows.extend(read_part_in(path.as_ref(), bytes, Order::AsDeclared));
    }
    rows
}
