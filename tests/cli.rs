//! The `auditlake` binary as a user runs it: exit codes, messages, secrets, signals, and the
//! show, list, request-export and status commands, against the simulator in this process.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use zendesk_sim::SimFilter;

const SECRET: &str = "tok-SECRET-4242";

fn auditlake(args: &[&str], token: &str) -> Command {
    binary(args, &[("ZENDESK_OAUTH_TOKEN", token)])
}

async fn run(args: &[&str], token: &str) -> Output {
    run_binary(args, &[("ZENDESK_OAUTH_TOKEN", token)]).await
}

#[tokio::test]
async fn usage_errors_exit_2_and_say_what_is_wrong() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["export", "--subdomain", "acme", "--dest", "/tmp/x"],
            "--since is required",
        ),
        (
            &[
                "export",
                "--subdomain",
                "acme",
                "--dest",
                "/tmp/x",
                "--since",
                "2024-01-01",
                "--window",
                "5h",
            ],
            "--window",
        ),
        (
            &[
                "export",
                "--subdomain",
                "Acme.zendesk.com",
                "--dest",
                "/tmp/x",
                "--since",
                "2024-01-01",
            ],
            "not a Zendesk subdomain",
        ),
        (
            &[
                "export",
                "--subdomain",
                "acme",
                "--dest",
                "/tmp/x",
                "--since",
                "2024-01-01",
                "--base-url",
                "http://example.com",
            ],
            "loopback",
        ),
        (
            &[
                "export",
                "--subdomain",
                "acme",
                "--dest",
                "ftp://host/x",
                "--since",
                "2024-01-01",
            ],
            "not supported",
        ),
        (&["export", "--bogus-flag"], "unexpected argument"),
    ];
    for (args, needle) in cases {
        let out = run(args, SECRET).await;
        let all = text(&out);
        let code = out.status.code();
        // A destination that cannot be opened is a destination error (4), the rest usage (2).
        let expected = if needle == &"not supported" { 4 } else { 2 };
        assert_eq!(code, Some(expected), "{args:?}: {all}");
        assert!(all.contains(needle), "{args:?}: {all}");
    }
    let out = run(
        &[
            "export",
            "--subdomain",
            "acme",
            "--dest",
            "/tmp/x",
            "--since",
            "2024-01-01",
        ],
        "",
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("no credentials"), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_export_writes_a_summary_and_never_prints_the_token() {
    let sim = start(sim_config(2_000, "2024-03-01", "2024-03-04")).await;
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let summary = dir.path().join("summary.json");
    let base = sim.base_url();
    let args = [
        "export",
        "--subdomain",
        "acme",
        "--dest",
        lake.to_str().unwrap(),
        "--since",
        "2024-03-01",
        "--until",
        "2024-03-04",
        "--base-url",
        &base,
        "--summary-json",
        summary.to_str().unwrap(),
        "--log-format",
        "json",
        "--log-level",
        "trace",
    ];
    let out = run(&args, "sim-token").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    assert_eq!(json["windows_done"], 3);
    assert_eq!(json["windows_failed"], 0);
    assert_eq!(json["exit_code"], 0);
    let rows = assert_lake_exact(
        &lake,
        &sim,
        &SimFilter::default(),
        "2024-03-01",
        "2024-03-04",
    );
    assert_eq!(json["rows"], rows as u64);
    assert!(json["requests"].as_u64().unwrap() >= 3);
    assert!(
        !text(&out).contains("sim-token"),
        "the token leaked into the output"
    );

    // A wrong token: exit 3, an actionable message, and the secret nowhere, even at trace level.
    let other = dir.path().join("other");
    let args = [
        "export",
        "--subdomain",
        "acme",
        "--dest",
        other.to_str().unwrap(),
        "--since",
        "2024-03-01",
        "--until",
        "2024-03-04",
        "--base-url",
        &base,
        "--log-level",
        "trace",
    ];
    let out = run(&args, SECRET).await;
    let all = text(&out);
    assert_eq!(out.status.code(), Some(3), "{all}");
    assert!(
        all.contains("401") && all.contains("ZENDESK_OAUTH_TOKEN"),
        "{all}"
    );
    assert!(
        !all.contains(SECRET) && !all.contains("tok-SECRET"),
        "the token leaked: {all}"
    );
    for entry in walk(dir.path()) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(SECRET)
                && !String::from_utf8_lossy(&bytes).contains("sim-token"),
            "{} holds the token",
            entry.display()
        );
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// The lake holds the twelve-hour account exactly.
fn assert_twelve_hours_exact(lake: &std::path::Path, sim: &zendesk_sim::Simulator) {
    assert_lake_exact(
        lake,
        sim,
        &SimFilter::default(),
        "2024-03-01",
        "2024-03-01T12:00:00Z",
    );
}

async fn sim_12h() -> zendesk_sim::Simulator {
    start(sim_config(3_000, "2024-03-01", "2024-03-01T12:00:00Z")).await
}

/// Twelve hourly windows of about two pages each. `slow` paces the run at one request a second,
/// so that it is still busy when it is signalled; the rerun goes at full speed.
fn export_args(lake: &std::path::Path, base: &str, slow: bool) -> Vec<String> {
    let mut args = twelve_hour_export(lake.to_str().unwrap(), base);
    args.extend(
        [
            // Short, so that a killed run's lease expires within the test.
            "--lease-ttl",
            "3s",
            // These tests count the requests of a resumed run; rechecking is tested on its own.
            "--recheck",
            "0",
        ]
        .map(String::from),
    );
    if slow {
        args.extend(["--concurrency", "1", "--max-requests-per-minute", "60"].map(String::from));
    }
    args
}

async fn wait_for_markers(lake: &std::path::Path, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while markers(lake).len() < n {
        assert!(Instant::now() < deadline, "no progress");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts a paced export of the 12-hour account in the background.
fn spawn_slow_export(lake: &std::path::Path, sim: &zendesk_sim::Simulator) -> std::process::Child {
    let args = export_args(lake, &sim.base_url(), true);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    auditlake(&args, "sim-token")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Reruns the export at full speed and checks that the lake ends complete and exact.
async fn rerun_and_check_exact(lake: &std::path::Path, sim: &zendesk_sim::Simulator) {
    let fast = export_args(lake, &sim.base_url(), false);
    let fast: Vec<&str> = fast.iter().map(String::as_str).collect();
    let out = run(&fast, "sim-token").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(markers(lake).len(), 12);
    assert_twelve_hours_exact(lake, sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_promptly_with_exit_130_and_a_rerun_finishes_exactly() {
    let sim = sim_12h().await;
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let mut child = spawn_slow_export(&lake, &sim);
    wait_for_markers(&lake, 2).await;
    let signalled = Instant::now();
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "took {:?}",
        signalled.elapsed()
    );
    assert_eq!(status.code(), Some(130));
    let done = markers(&lake).len();
    assert!(done < 12);
    rerun_and_check_exact(&lake, &sim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_half_way_resumes_exactly() {
    let sim = sim_12h().await;
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let mut child = spawn_slow_export(&lake, &sim);
    wait_for_markers(&lake, 3).await;
    child.kill().unwrap(); // SIGKILL: no chance to clean up, nor to release the lease
    child.wait().unwrap();
    let done = markers(&lake).len();
    assert!((3..12).contains(&done));
    tokio::time::sleep(Duration::from_secs(4)).await; // until the killed run's lease expires

    sim.reset_stats();
    rerun_and_check_exact(&lake, &sim).await;
    for start in 0..done {
        let from = utc(t("2024-03-01") + start as i64 * 3600);
        let to = utc(t("2024-03-01") + start as i64 * 3600 + 3599);
        assert_eq!(
            sim.list_requests_overlapping(from, to),
            0,
            "done window {start} was requested again"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_list_and_request_export_behave_as_documented() {
    let sim = start(sim_config(500, "2024-03-01", "2024-03-02")).await;
    let base = sim.base_url();
    let api = ["--subdomain", "acme", "--base-url", base.as_str()];
    let expected = sim.account().expected(
        &SimFilter::default(),
        utc(t("2024-03-01")),
        utc(t("2024-03-02")),
    );

    let id = expected[17].id.to_string();
    let out = run(&[&["show", &id][..], &api].concat(), "sim-token").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["id"].as_i64(), Some(expected[17].id));
    assert!(
        shown.get("action_label").is_some(),
        "show includes action_label"
    );

    let out = run(&[&["show", "1"][..], &api].concat(), "sim-token").await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("no audit log with id 1"),
        "{}",
        text(&out)
    );

    let out = run(
        &[
            &[
                "list",
                "--since",
                "2024-03-01T06:00:00Z",
                "--until",
                "2024-03-01T12:00:00Z",
            ][..],
            &api,
        ]
        .concat(),
        "sim-token",
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let listed: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let want: Vec<i64> = sim
        .account()
        .expected(
            &SimFilter::default(),
            utc(t("2024-03-01T06:00:00Z")),
            utc(t("2024-03-01T12:00:00Z")),
        )
        .iter()
        .map(|e| e.id)
        .collect();
    let mut got: Vec<i64> = listed.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    got.sort_unstable();
    let mut want_sorted = want.clone();
    want_sorted.sort_unstable();
    assert_eq!(got, want_sorted, "list covers exactly [since, until)");

    let out = run(
        &[
            &["list", "--limit", "7", "--filter-action", "login"][..],
            &api,
        ]
        .concat(),
        "sim-token",
    )
    .await;
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 7);
    assert!(lines.iter().all(|r| r["action"] == "login"));

    let out = run(
        &[&["request-export", "--filter-action", "login"][..], &api].concat(),
        "sim-token",
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("202") && text(&out).contains("1 export request per minute"),
        "{}",
        text(&out)
    );
    let out = run(&[&["request-export"][..], &api].concat(), "sim-token").await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("1 export request per minute") && text(&out).contains("429"),
        "{}",
        text(&out)
    );
    assert_eq!(sim.stats().export_requests, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_done_windows_gaps_and_the_open_window() {
    let sim = start(sim_config(1_000, "2024-03-01", "2024-03-05")).await;
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    export(export_config(
        &sim,
        &lake,
        "2024-03-01",
        "2024-03-04T06:00:00Z",
        "1d",
    ))
    .await;
    std::fs::remove_file(lake.join("_auditlake/subdomain=acme/windows/20240302T0000Z.json"))
        .unwrap();
    let out = run(
        &[
            "status",
            "--dest",
            lake.to_str().unwrap(),
            "--subdomain",
            "acme",
            "--json",
        ],
        "",
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["done_windows"], 2);
    assert_eq!(status["gaps"][0]["from"], "2024-03-02T00:00:00Z");
    assert_eq!(status["gaps"][0]["windows"], 1);
    assert_eq!(status["open_window"]["start"], "2024-03-04T00:00:00Z");
    assert_eq!(status["open_window"]["end"], "2024-03-04T06:00:00Z");
    assert_eq!(status["open_window"]["covered_to"], "2024-03-04T06:00:00Z");
    assert_eq!(status["open_window"]["files"].as_array().unwrap().len(), 1);
    let out = run(
        &[
            "status",
            "--dest",
            lake.to_str().unwrap(),
            "--subdomain",
            "acme",
        ],
        "",
    )
    .await;
    let human = String::from_utf8(out.stdout).unwrap();
    assert!(
        human.contains("gap:")
            && human.contains("open window: 2024-03-04T00:00:00Z")
            && human.contains("in 1 parts, complete to 2024-03-04T06:00:00Z"),
        "{human}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_run_per_subdomain_holds_the_lease_and_a_killed_runs_lease_is_taken_over_at_once() {
    let sim = sim_12h().await;
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let mut first = spawn_slow_export(&lake, &sim);
    // Three windows take about six seconds: longer than the 3 s lease, so it must be renewed.
    wait_for_markers(&lake, 3).await;

    // A second run on the same subdomain is refused, naming the holder.
    let fast = export_args(&lake, &sim.base_url(), false);
    let fast: Vec<&str> = fast.iter().map(String::as_str).collect();
    let out = run(&fast, "sim-token").await;
    let all = text(&out);
    assert_eq!(out.status.code(), Some(5), "{all}");
    assert!(
        all.contains("holds the lease") && all.contains(&format!("pid {}", first.id())),
        "{all}"
    );
    assert!(all.contains("since"), "{all}");

    // Another subdomain in the same lake is not blocked.
    let other: Vec<String> = fast
        .iter()
        .map(|a| {
            if *a == "acme" {
                "other".to_string()
            } else {
                a.to_string()
            }
        })
        .collect();
    let other: Vec<&str> = other.iter().map(String::as_str).collect();
    let out = run(&other, "sim-token").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // A killed run cannot release its lease; on this same machine its process is provably gone,
    // so a rerun takes the lease over at once instead of waiting for it to expire.
    first.kill().unwrap();
    first.wait().unwrap();
    let out = run(&fast, "sim-token").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("its holder is dead on this machine")
            && text(&out).contains(&format!("process {} no longer exists", first.id())),
        "{}",
        text(&out)
    );
    assert_eq!(markers(&lake).len(), 12);
    assert_twelve_hours_exact(&lake, &sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_leaves_a_lake_that_reads_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let args = [
        "demo",
        "--dest",
        lake.to_str().unwrap(),
        "--records",
        "3000",
        "--days",
        "3",
    ];
    let out = run(&args, "").await;
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(
        all.contains("read_parquet(") && all.contains("hive_partitioning"),
        "{all}"
    );
    // The query it prints names the table root, where the files are.
    let glob = format!(
        "{}/audit_logs/subdomain=*/created_date=*/*.parquet",
        lake.display()
    );
    assert!(all.contains(&glob), "{all}");
    let rows = read_lake(&lake.join("audit_logs/subdomain=demo"));
    let ids: std::collections::BTreeSet<i64> = rows.iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), rows.len(), "no duplicates");
    // The account spans three days up to now; the last minute is inside the settle lag.
    assert!(
        rows.len() > 2_900 && rows.len() <= 3_000,
        "{} rows",
        rows.len()
    );
    let done = std::fs::read_dir(lake.join("_auditlake/subdomain=demo/windows"))
        .unwrap()
        .count();
    assert_eq!(done, 3, "three closed days, plus today's open window");

    // Run again: the demo starts its subdomain afresh, so nothing is left over from the first run.
    let out = run(&args, "").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let again = read_lake(&lake.join("audit_logs/subdomain=demo"));
    let ids: std::collections::BTreeSet<i64> = again.iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), again.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_exits_6_on_a_damaged_lake_and_repair_brings_it_back_to_0() {
    let sim = sim_12h().await;
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let args = export_args(&lake, &sim.base_url(), false);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(run(&args, "sim-token").await.status.code(), Some(0));
    let dest = lake.to_str().unwrap();
    let verify = ["verify", "--subdomain", "acme", "--dest", dest];
    let out = run(&verify, "unused").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("clean"), "{}", text(&out));

    let victim = lake
        .join("audit_logs/subdomain=acme/created_date=2024-03-01/part-20240301T0500Z-0.parquet");
    std::fs::remove_file(&victim).unwrap();
    let out = run(&[&verify[..], &["--json"]].concat(), "unused").await;
    assert_eq!(out.status.code(), Some(6), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["findings"][0]["kind"], "missing_file");
    assert_eq!(report["findings"][0]["window"], "20240301T0500Z");
    let out = run(&verify, "unused").await;
    assert!(
        text(&out).contains("20240301T0500Z")
            && text(&out).contains("part-20240301T0500Z-0.parquet"),
        "{}",
        text(&out)
    );

    let base = sim.base_url();
    let repair = [
        "repair",
        "--subdomain",
        "acme",
        "--dest",
        dest,
        "--base-url",
        &base,
    ];
    let out = run(&repair, "sim-token").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("1 window(s) re-exported"),
        "{}",
        text(&out)
    );
    let out = run(&[&verify[..], &["--deep"]].concat(), "unused").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_twelve_hours_exact(&lake, &sim);
}

/// The config file takes any long flag of the command, declared once in the clap structs; the
/// precedence is flag, environment, file, default.
#[tokio::test]
async fn the_config_file_fills_in_below_the_environment_and_the_flags() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("auditlake.toml");
    let lake = dir.path().join("lake");
    std::fs::write(
        &config,
        format!(
            "subdomain = \"fromfile\"\ndest = {:?}\njson = true\n",
            lake.to_str().unwrap()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    // status reads only lakes that exist: one empty dataset for each subdomain it may be given.
    for name in ["fromfile", "fromenv", "fromflag"] {
        let meta = lake.join(format!("_auditlake/subdomain={name}"));
        std::fs::create_dir_all(&meta).unwrap();
        let dataset =
            format!(r#"{{"format":1,"subdomain":"{name}","schema_version":2,"window":"1d"}}"#);
        std::fs::write(meta.join("dataset.json"), dataset).unwrap();
    }
    let subdomain = |out: &Output| -> String {
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        status["subdomain"].as_str().unwrap().to_string()
    };
    let from_file = run_binary(&["--config", config, "status"], &[]).await;
    assert_eq!(subdomain(&from_file), "fromfile", "{}", text(&from_file));
    let env = [("AUDITLAKE_SUBDOMAIN", "fromenv")];
    let from_env = run_binary(&["--config", config, "status"], &env).await;
    assert_eq!(subdomain(&from_env), "fromenv");
    let flag = ["--config", config, "status", "--subdomain", "fromflag"];
    assert_eq!(subdomain(&run_binary(&flag, &env).await), "fromflag");

    std::fs::write(dir.path().join("typo.toml"), "subdomian = \"x\"\n").unwrap();
    let typo = dir.path().join("typo.toml");
    let out = run_binary(&["--config", typo.to_str().unwrap(), "status"], &[]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("line 1") && text(&out).contains("subdomian"),
        "{}",
        text(&out)
    );
}

#[tokio::test]
async fn an_auditlake_0_1_lake_is_refused_and_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir
        .path()
        .join("subdomain=acme/created_date=2024-03-01/part-20240301T0000Z-0.parquet");
    std::fs::create_dir_all(old.parent().unwrap()).unwrap();
    std::fs::write(&old, b"an old part").unwrap();
    let dest = dir.path().to_str().unwrap();
    // Nothing listens on port 9: the refusal must come before any request.
    let args = twelve_hour_export(dest, "http://127.0.0.1:9");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run_binary(&args, &[("ZENDESK_OAUTH_TOKEN", "t0ken-never-shown")]).await;
    let said = text(&out);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains("auditlake 0.1") && said.contains("--dest NEW"),
        "{said}"
    );
    assert!(!said.contains("t0ken-never-shown"));
    assert!(!dir.path().join("audit_logs").exists());
    assert_eq!(std::fs::read(&old).unwrap(), b"an old part");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_on_a_pipe_are_only_json_lines_with_run_id_and_subdomain_ending_in_the_summary() {
    let sim = start(sim_config(1_500, "2024-03-01", "2024-03-01T12:00:00Z")).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("lake");
    let metrics = dir.path().join("auditlake.prom");
    let mut args = twelve_hour_export(dest.to_str().unwrap(), &sim.base_url());
    args.extend([
        "--log-format=json".to_string(),
        "--log-level=debug".to_string(),
        format!("--metrics-file={}", metrics.display()),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&args, "sim-token").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() > 3, "{stderr}");
    let run_id = lines[0]["run_id"].as_str().unwrap().to_string();
    assert_eq!(run_id.len(), 32);
    for line in &lines {
        assert_eq!(line["run_id"], run_id.as_str(), "{line}");
        assert_eq!(line["subdomain"], "acme", "{line}");
        assert!(
            line["timestamp"].is_string() && line["level"].is_string(),
            "{line}"
        );
    }
    let last = lines.last().unwrap();
    assert_eq!(last["message"], "run finished");
    assert_eq!(last["summary"]["run_id"], run_id.as_str());
    assert_eq!(last["summary"]["windows_done"], 12);
    assert_eq!(last["summary"]["exit_code"], 0);
    // Schema drift is announced: the summary and one line name the fields kept in extra_json.
    let drift = last["summary"]["extra_fields"].as_object().unwrap();
    assert!(
        !drift.is_empty(),
        "the simulator's extra fields went unnoticed"
    );
    let announced: Vec<_> = lines
        .iter()
        .filter(|l| l["message"].as_str().unwrap().contains("schema drift"))
        .collect();
    assert_eq!(announced.len(), 1, "{stderr}");
    for field in drift.keys() {
        assert!(announced[0]["fields"]
            .as_str()
            .unwrap()
            .contains(field.as_str()));
    }
    // The lease and the status record carry the same run id.
    let status = run(
        &[
            "status",
            "--dest",
            dest.to_str().unwrap(),
            "--subdomain",
            "acme",
            "--json",
        ],
        "",
    )
    .await;
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["last_run"]["run_id"], run_id.as_str());
    assert_eq!(status["last_run"]["outcome"], "success");

    // The metrics file: labelled gauges, freshness at the end of the last committed window.
    let metrics = std::fs::read_to_string(&metrics).unwrap();
    let rows = last["summary"]["rows"].as_u64().unwrap();
    for line in [
        format!("auditlake_last_run_records{{subdomain=\"acme\"}} {rows}.0"),
        "auditlake_last_run_windows_done{subdomain=\"acme\"} 12.0".to_string(),
        "auditlake_last_run_exit_code{subdomain=\"acme\"} 0.0".to_string(),
        format!(
            "auditlake_fresh_to_timestamp_seconds{{subdomain=\"acme\"}} {}.0",
            t("2024-03-01T12:00:00Z")
        ),
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} not in\n{metrics}"
        );
    }
    assert!(metrics.contains("auditlake_last_success_timestamp_seconds{subdomain=\"acme\"}"));

    // A failure is a JSON line too.
    let out = run(
        &[
            "verify",
            "--dest",
            dir.path().join("none").to_str().unwrap(),
            "--subdomain",
            "acme",
            "--log-format",
            "json",
        ],
        "",
    )
    .await;
    assert_eq!(out.status.code(), Some(7));
    let failure: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(failure["level"], "ERROR");
    assert_eq!(failure["exit_code"], 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reads_only_and_pages_on_a_stale_lake() {
    let dir = tempfile::tempdir().unwrap();
    // A mistyped path: exit 7, and nothing is created.
    let missing = dir.path().join("no-such-lake");
    let out = run(
        &[
            "status",
            "--dest",
            missing.to_str().unwrap(),
            "--subdomain",
            "acme",
        ],
        "",
    )
    .await;
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    assert!(
        text(&out).contains("no lake for subdomain"),
        "{}",
        text(&out)
    );
    assert!(!missing.exists());
    // An existing folder without a lake: exit 7, and it stays empty.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = run(
        &[
            "status",
            "--dest",
            empty.to_str().unwrap(),
            "--subdomain",
            "acme",
        ],
        "",
    )
    .await;
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);

    // A lake whose newest committed window ended within the last two hours.
    let now = chrono::Utc::now().timestamp();
    let hour = now - now.rem_euclid(3600);
    let (from, to) = (utc(hour - 6 * 3600), utc(hour - 3600));
    let mut config = sim_config(600, "2024-01-01", "2024-01-02");
    config.start = from;
    config.end = to;
    let sim = start(config).await;
    let dest = dir.path().join("lake");
    let since = from.to_rfc3339();
    let until = to.to_rfc3339();
    let args = [
        "export",
        "--subdomain",
        "acme",
        "--dest",
        dest.to_str().unwrap(),
        "--since",
        &since,
        "--until",
        &until,
        "--window",
        "1h",
        "--base-url",
        &sim.base_url(),
    ];
    let out = run(&args, "sim-token").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let status = |max_age: &'static str| {
        let dest = dest.to_str().unwrap().to_string();
        async move {
            run(
                &[
                    "status",
                    "--dest",
                    &dest,
                    "--subdomain",
                    "acme",
                    "--max-age",
                    max_age,
                ],
                "",
            )
            .await
        }
    };
    let fresh = status("3h").await;
    assert_eq!(fresh.status.code(), Some(0), "{}", text(&fresh));
    assert!(
        text(&fresh).contains("last run:") && text(&fresh).contains("success"),
        "{}",
        text(&fresh)
    );
    let stale = status("30m").await;
    assert_eq!(stale.status.code(), Some(8), "{}", text(&stale));
    assert!(text(&stale).contains("stale"), "{}", text(&stale));
    let out = run(
        &[
            "status",
            "--dest",
            dest.to_str().unwrap(),
            "--subdomain",
            "acme",
            "--max-age",
            "soon",
        ],
        "",
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

/// `auditlake export` of acme into `dest` from 2024-03-01, with `extra` flags.
fn export_argv<'a>(dest: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut argv = vec![
        "export",
        "--subdomain",
        "acme",
        "--dest",
        dest,
        "--since",
        "2024-03-01",
    ];
    argv.extend_from_slice(extra);
    argv
}

#[tokio::test]
async fn a_negative_duration_is_a_usage_error_naming_its_flag() {
    // Regression: `--settle-lag -5` answered clap's "unexpected argument '-5'", which says
    // nothing about the settle lag; so did every other flag that takes a duration or a number.
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let dest = lake.to_str().unwrap();
    for flag in [
        "--settle-lag",
        "--lease-ttl",
        "--recheck",
        "--request-timeout",
        "--max-retry-time",
        "--retry-base-delay",
        "--store-timeout",
    ] {
        for value in ["-5", "-5m"] {
            let out = run(&export_argv(dest, &[flag, value]), SECRET).await;
            let all = text(&out);
            assert_eq!(out.status.code(), Some(2), "{flag} {value}: {all}");
            assert!(
                all.contains(&format!("{flag}: a duration cannot be negative")),
                "{flag} {value}: {all}"
            );
        }
    }
    for (flag, value) in [
        ("--window", "-1d"),
        ("--concurrency", "-1"),
        ("--max-attempts", "-1"),
        ("--rate-limit-share", "-0.5"),
        ("--max-requests-per-minute", "-1"),
    ] {
        let out = run(&export_argv(dest, &[flag, value]), SECRET).await;
        let all = text(&out);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {all}");
        assert!(
            all.contains(flag) && !all.contains("unexpected argument"),
            "{flag} {value}: {all}"
        );
    }
    let status = [
        "status",
        "--dest",
        dest,
        "--subdomain",
        "acme",
        "--max-age",
        "-2h",
    ];
    let out = run(&status, "").await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("--max-age: a duration cannot be negative"),
        "{}",
        text(&out)
    );
    assert!(!lake.exists(), "a usage error writes nothing");
}

#[tokio::test]
async fn max_attempts_0_is_refused_before_anything_is_contacted_or_written() {
    // Regression: `--max-attempts 0` was taken as 1, and the run wrote into the lake.
    let sim = start(sim_config(100, "2024-03-01", "2024-03-02")).await;
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let base = sim.base_url();
    let argv = export_argv(
        lake.to_str().unwrap(),
        &[
            "--until",
            "2024-03-02",
            "--base-url",
            &base,
            "--max-attempts",
            "0",
        ],
    );
    let out = run(&argv, "sim-token").await;
    let all = text(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(all.contains("--max-attempts"), "{all}");
    assert!(!lake.exists(), "nothing is written: {all}");
    assert_eq!(sim.stats().requests, 0, "nothing is contacted");
}

#[tokio::test]
async fn list_limit_0_is_refused() {
    // Regression: `list --limit 0` listed a record.
    let sim = start(sim_config(100, "2024-03-01", "2024-03-02")).await;
    let base = sim.base_url();
    let argv = [
        "list",
        "--subdomain",
        "acme",
        "--base-url",
        &base,
        "--limit",
        "0",
    ];
    let out = run(&argv, "sim-token").await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--limit"), "{}", text(&out));
    assert!(out.stdout.is_empty(), "{}", text(&out));
    assert_eq!(sim.stats().requests, 0, "nothing is contacted");
}

#[tokio::test]
async fn help_says_how_to_use_oauth_client_credentials_and_what_exit_3_covers() {
    // Regression: `--help` named only static tokens, although the README recommends a
    // confidential OAuth client for scheduled runs; and it described exit 3 as 401/403 only,
    // while an untrusted TLS certificate exits 3 too.
    for argv in [&["--help"][..], &["export", "--help"], &["export", "-h"]] {
        let out = run(argv, "").await;
        assert_eq!(out.status.code(), Some(0), "{argv:?}: {}", text(&out));
        let help = text(&out);
        for name in [
            "ZENDESK_OAUTH_CLIENT_ID",
            "ZENDESK_OAUTH_CLIENT_SECRET",
            "ZENDESK_OAUTH_CLIENT_SECRET_FILE",
            "ZENDESK_OAUTH_SCOPE",
        ] {
            assert!(help.contains(name), "{argv:?} does not name {name}: {help}");
        }
    }
    let out = run(&["--help"], "").await;
    let help = text(&out);
    let three = help
        .split("; 4 ")
        .next()
        .and_then(|h| h.rsplit("; 3 ").next())
        .unwrap_or_default();
    assert!(three.contains("TLS certificate"), "exit 3: {three:?}");
    let readme = include_str!("../README.md");
    let row = readme
        .lines()
        .find(|l| l.starts_with("| 3 |"))
        .expect("README's exit-code table has a row for 3");
    assert!(row.contains("TLS certificate"), "{row}");
}
