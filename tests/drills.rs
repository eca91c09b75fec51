//! Drills for the lake's one promise, every record exactly once: runs killed with `kill -9` at
//! random moments (during exports, open-window refreshes, rechecks and repairs), and runs against
//! an API that misbehaves in every way the simulator knows, each followed by proof of exactness.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use zendesk_sim::{SimFilter, Simulator};

const FROM: &str = "2024-03-01";
const TO: &str = "2024-03-03";

fn auditlake(args: &[String]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_auditlake"));
    c.args(args)
        .env_clear()
        .env("ZENDESK_OAUTH_TOKEN", "sim-token")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// `command` on the drill's lake and simulator, with a short lease and a pace slow enough that a
/// kill lands inside a run, not between runs.
fn drill_args(command: &str, lake: &Path, sim: &Simulator, more: &[&str]) -> Vec<String> {
    let base = sim.base_url();
    let common = [
        command,
        "--subdomain",
        "acme",
        "--dest",
        lake.to_str().unwrap(),
        "--base-url",
        &base,
        "--lease-ttl",
        "3s",
        "--max-requests-per-minute",
        "1500",
    ];
    strings(&[&common[..], more].concat())
}

fn export_args(lake: &Path, sim: &Simulator, until: &str, recheck: &str) -> Vec<String> {
    let more = [
        "--since",
        FROM,
        "--until",
        until,
        "--window",
        "1h",
        "--recheck",
        recheck,
        "--retry-base-delay",
        "10ms",
    ];
    drill_args("export", lake, sim, &more)
}

/// `args` of an export with one-day windows (the export's default grid) instead of hourly ones.
fn daily(mut args: Vec<String>) -> Vec<String> {
    let window = args.iter().position(|a| a == "--window").unwrap() + 1;
    args[window] = "1d".into();
    args
}

fn repair_args(lake: &Path, sim: &Simulator) -> Vec<String> {
    drill_args("repair", lake, sim, &["--against-api"])
}

/// Runs to completion; a run refused because a killed run's lease is still held (it should not
/// be: the holder is dead on this machine) is a failure of the drill.
fn run_to_end(args: &[String]) -> (i32, String) {
    let out = auditlake(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `args`, killing the run with SIGKILL if it has not ended within `after`; whether it
/// was killed.
fn run_or_kill(args: &[String], after: Duration) -> bool {
    let mut child = auditlake(args).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + after;
    loop {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if Instant::now() >= deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn twenty_kills_at_random_moments_then_one_clean_run_leave_the_lake_exact() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sim = runtime.block_on(start(sim_config(6_000, FROM, TO)));
    // Records after this arrive late: the first runs commit windows without them, later runs
    // recheck and repair those windows (and are killed doing so).
    sim.hide_from(Some(utc(t("2024-03-01T18:00:00Z"))));
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let seed = 20_261_126;
    let mut rng = fastrand::Rng::with_seed(seed);
    let (mut killed, mut finished) = (0, 0);
    for round in 0..20 {
        if round == 8 {
            sim.hide_from(None);
        }
        let args = if round % 4 == 3 {
            repair_args(&lake, &sim)
        } else {
            // An end at a random minute: an open window almost every run, sometimes inside a
            // window an earlier run committed.
            let until = t(FROM) + 3_600 + rng.i64(0..47 * 60) * 60;
            export_args(
                &lake,
                &sim,
                &auditlake::units::time::format_rfc3339(until),
                "2d",
            )
        };
        if run_or_kill(&args, Duration::from_millis(rng.u64(50..1_500))) {
            killed += 1;
        } else {
            finished += 1;
        }
    }
    assert!(
        killed >= 10,
        "only {killed} of 20 runs were killed mid-run (seed {seed})"
    );

    let (code, stderr) = run_to_end(&export_args(&lake, &sim, TO, "3d"));
    assert_eq!(
        code, 0,
        "the clean run (seed {seed}, {finished} finished early): {stderr}"
    );
    let report = runtime.block_on(verify_deep(&lake));
    assert!(report.is_clean(), "seed {seed}: {report}");
    let (code, stderr) = run_to_end(&strings(&[
        "verify",
        "--subdomain",
        "acme",
        "--dest",
        lake.to_str().unwrap(),
        "--deep",
    ]));
    assert_eq!(code, 0, "{stderr}");
    assert_lake_exact(&lake, &sim, &SimFilter::default(), FROM, TO);
}

/// Issue 18: a schedule at hourly and at 5-minute cadence, with the default one-day windows (the
/// open window grows by increments and closes by a count and a compaction), each run killed at a
/// random moment or left to finish, records arriving late in between: the lake ends exact.
#[test]
fn schedules_at_hourly_and_five_minute_cadence_killed_at_random_moments_end_exact() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for (step, runs, seed) in [(3_600, 30, 20_261_202), (300, 40, 20_261_203)] {
        let sim = runtime.block_on(start(sim_config(6_000, FROM, TO)));
        sim.hide_from(Some(utc(t("2024-03-01T20:00:00Z"))));
        let dir = tempfile::tempdir().unwrap();
        let lake = dir.path().join("lake");
        let mut rng = fastrand::Rng::with_seed(seed);
        // Hourly runs cross the day's end; 5-minute runs cover the hours around it.
        let first = if step == 300 {
            t("2024-03-01T22:00:00Z")
        } else {
            t(FROM) + 6 * 3_600
        };
        let mut killed = 0;
        for round in 0..runs {
            if round == runs / 2 {
                sim.hide_from(None);
            }
            let until = auditlake::units::time::format_rfc3339(first + round * step);
            let args = daily(export_args(&lake, &sim, &until, "1d"));
            if run_or_kill(&args, Duration::from_millis(rng.u64(20..600))) {
                killed += 1;
            }
        }
        assert!(
            killed >= 5,
            "only {killed} of {runs} runs were killed (seed {seed})"
        );
        let args = daily(export_args(&lake, &sim, TO, "3d"));
        let (code, stderr) = run_to_end(&args);
        assert_eq!(code, 0, "the clean run (seed {seed}): {stderr}");
        let report = runtime.block_on(verify_deep(&lake));
        assert!(report.is_clean(), "seed {seed}: {report}");
        assert_lake_exact(&lake, &sim, &SimFilter::default(), FROM, TO);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_seeds_of_api_faults_end_in_exact_lakes() {
    for seed in 0..20 {
        let mut config = sim_config(1_500, FROM, TO);
        config.seed = 1_000 + seed;
        config.faults.seed = seed;
        config.faults.error_5xx_rate = 0.06; // 500, 502 and 503 with Retry-After
        config.faults.rate_429 = 0.06;
        config.faults.truncate_rate = 0.04;
        config.faults.reset_rate = 0.04;
        config.faults.stall_rate = 0.03;
        config.faults.stall = Duration::from_millis(200);
        config.faults.invalid_cursor_rate = 0.04;
        let sim = start(config).await;
        let dir = tempfile::tempdir().unwrap();
        let mut export_cfg = export_config(&sim, dir.path(), FROM, TO, "6h");
        export_cfg.recheck = Duration::from_secs(86_400);
        let summary = export(export_cfg.clone()).await;
        assert!(
            summary.windows_failed == 0 && summary.fatal.is_none(),
            "seed {seed}: {:?}",
            summary.failures
        );
        // A second run rechecks the last day under the same faults and changes nothing.
        let again = export(export_cfg).await;
        assert_eq!(
            (again.windows_failed, again.windows_repaired),
            (0, 0),
            "seed {seed}: {:?}",
            again.failures
        );
        assert_lake_exact(dir.path(), &sim, &SimFilter::default(), FROM, TO);
        let report = verify_deep(dir.path()).await;
        assert!(report.is_clean(), "seed {seed}: {report}");
        let stats = sim.stats();
        assert!(
            stats.responses_5xx + stats.responses_429 + stats.truncated + stats.resets > 0,
            "seed {seed}: {stats:?}"
        );
    }
}

/// Issue 19: the hourly schedule of the drill above with the Delta log on, each run killed at a
/// random moment (inside an upload, between a marker and its commit, inside a checkpoint) or left
/// to finish; after one clean run, verify finds the log agreeing with markers and files.
#[test]
fn a_delta_schedule_killed_at_random_moments_ends_with_log_markers_and_files_agreeing() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let seed = 20_261_219;
    let sim = runtime.block_on(start(sim_config(6_000, FROM, TO)));
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut killed = 0;
    let delta = |mut args: Vec<String>| {
        args.extend(strings(&["--table-format", "delta"]));
        args
    };
    for round in 0..24 {
        let until = auditlake::units::time::format_rfc3339(t(FROM) + 6 * 3_600 + round * 3_600);
        let args = delta(daily(export_args(&lake, &sim, &until, "1d")));
        if run_or_kill(&args, Duration::from_millis(rng.u64(20..600))) {
            killed += 1;
        }
    }
    assert!(
        killed >= 5,
        "only {killed} of 24 runs were killed (seed {seed})"
    );
    let (code, stderr) = run_to_end(&delta(daily(export_args(&lake, &sim, TO, "3d"))));
    assert_eq!(code, 0, "the clean run (seed {seed}): {stderr}");
    let report = runtime.block_on(verify_deep(&lake));
    assert!(report.is_clean(), "seed {seed}: {report}");
    assert_lake_exact(&lake, &sim, &SimFilter::default(), FROM, TO);
}
