//! Every account, one config (issue 29): the `[[account]]` tables of one file run in one process,
//! each with its own credentials, budget, lease and summary; one account's failure does not stop
//! the others; `--account` and `--shard` pick accounts (a scheduler's fan-out, overlapping
//! shards made safe by the lease); status, verify and ddl read the same file; bad files are
//! refused before anything is written.

mod common;

use std::path::Path;

use common::*;
use zendesk_sim::SimFilter;

const FROM: &str = "2024-03-01";
const TO: &str = "2024-03-03";

/// An accounts file over the simulator at `base_url` writing into `dest`: acme (a token in a
/// variable), beta (a token in a file, an hourly grid), gamma (a token variable holding a wrong
/// token, when `gamma_wrong`), then `extra` as written.
fn accounts_file(dir: &Path, base_url: &str, extra: &str) -> std::path::PathBuf {
    let token_file = dir.join("beta.token");
    std::fs::write(&token_file, "sim-token\n").unwrap();
    let text = format!(
        r#"dest = "{dest}"
base-url = "{base_url}"
since = "{FROM}"
until = "{TO}"
summary-json = "{summary}"
metrics-file = "{metrics}"

[[account]]
subdomain = "acme"
oauth-token-env = "ACME_TOKEN"

[[account]]
subdomain = "beta"
oauth-token-file = "{token}"
window = "1h"

[[account]]
subdomain = "gamma"
oauth-token-env = "GAMMA_TOKEN"
{extra}"#,
        dest = dir.join("lake").display(),
        summary = dir.join("summary.jsonl").display(),
        metrics = dir.join("metrics.prom").display(),
        token = token_file.display(),
    );
    let path = dir.join("accounts.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The rows of one subdomain of the lake, checked exact against the simulator.
fn assert_exact(dir: &Path, subdomain: &str, sim: &zendesk_sim::Simulator) {
    let rows = read_lake_in(
        &dir.join(format!("lake/audit_logs/subdomain={subdomain}")),
        Order::Sorted,
    );
    assert_rows_exact(rows, sim, &SimFilter::default(), FROM, TO);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_account_of_one_file_runs_in_one_process_and_a_failing_one_stops_no_other() {
    let sim = start(sim_config(2_000, FROM, TO)).await;
    let dir = tempfile::tempdir().unwrap();
    let file = accounts_file(dir.path(), &sim.base_url(), "");
    let config = file.to_str().unwrap();
    let env = [
        ("ACME_TOKEN", "sim-token"),
        ("GAMMA_TOKEN", "a-wrong-token"),
        // The process's own credentials are no account's.
        ("ZENDESK_OAUTH_TOKEN", "sim-token"),
    ];
    let out = run_binary(
        &["export", "--config", config, "--log-format", "json"],
        &env,
    )
    .await;
    // gamma's credentials are refused (exit 3): the worst code; acme and beta are complete.
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert_exact(dir.path(), "acme", &sim);
    assert_exact(dir.path(), "beta", &sim);
    assert!(!dir.path().join("lake/audit_logs/subdomain=gamma").exists());
    // One summary line per account, each with its subdomain and exit code.
    let summaries = std::fs::read_to_string(dir.path().join("summary.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = summaries
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let by_account: Vec<(&str, i64, u64)> = lines
        .iter()
        .map(|l| {
            (
                l["subdomain"].as_str().unwrap(),
                l["exit_code"].as_i64().unwrap(),
                l["rows"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        by_account,
        [("acme", 0, 2_000), ("beta", 0, 2_000), ("gamma", 3, 0)]
    );
    // gamma's error names its key, not a ZENDESK_ variable it never set.
    let fatal = lines[2]["fatal"].as_str().unwrap();
    assert!(
        fatal.contains("oauth-token") && !fatal.contains("ZENDESK_"),
        "{fatal}"
    );
    // Each account's requests are its own data's (about ceil(2,000/100) each), not a share of
    // the others' (its own client, budget and learned bounds).
    for line in &lines[..2] {
        let requests = line["requests"].as_u64().unwrap();
        assert!((20..=30).contains(&requests), "{line}");
    }
    // The metrics: every sample labelled by its subdomain, each gauge once.
    let metrics = std::fs::read_to_string(dir.path().join("metrics.prom")).unwrap();
    for subdomain in ["acme", "beta", "gamma"] {
        let sample = format!("auditlake_last_run_exit_code{{subdomain=\"{subdomain}\"}}");
        assert!(metrics.contains(&sample), "{metrics}");
    }
    assert_eq!(
        metrics
            .matches("# TYPE auditlake_last_run_records gauge")
            .count(),
        1
    );
    assert!(metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .all(|l| l.contains("subdomain=")));
    // Every JSON log line of an account's run names the account; the summaries too.
    let logs = String::from_utf8_lossy(&out.stderr);
    let finished: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["message"] == "run finished")
        .collect();
    assert_eq!(finished.len(), 3, "{logs}");
    for line in logs.lines().filter(|l| l.contains("window exported")) {
        let line: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(
            ["acme", "beta"].contains(&line["subdomain"].as_str().unwrap()),
            "{line}"
        );
    }

    // status reads the same file: one line per account (gamma's lake holds its failed run).
    let status = run_binary(&["status", "--config", config], &env).await;
    assert_eq!(status.status.code(), Some(0), "{}", text(&status));
    let shown = String::from_utf8_lossy(&status.stdout);
    let listed: Vec<&str> = shown.lines().collect();
    assert_eq!(listed.len(), 3, "{shown}");
    assert!(
        listed[0].starts_with("acme: fresh to 2024-03-03T00:00:00Z"),
        "{shown}"
    );
    assert!(
        listed[0].ends_with("last run success, exit 0 [status: exit 0]"),
        "{shown}"
    );
    assert!(listed[1].starts_with("beta: "), "{shown}");
    assert!(
        listed[2].contains("last run access refused, exit 3"),
        "{shown}"
    );
    // It fails with the worst code: an account with no lake (exit 7) beside the others.
    let text_with_omega = std::fs::read_to_string(&file).unwrap()
        + "\n[[account]]\nsubdomain = \"omega\"\noauth-token-env = \"ACME_TOKEN\"\n";
    let with_omega = dir.path().join("with-omega.toml");
    std::fs::write(&with_omega, text_with_omega).unwrap();
    let omega = with_omega.to_str().unwrap();
    let status = run_binary(&["status", "--config", omega], &env).await;
    assert_eq!(status.status.code(), Some(7), "{}", text(&status));
    let shown = String::from_utf8_lossy(&status.stdout);
    assert!(
        shown.lines().nth(3).unwrap().starts_with("omega: "),
        "{shown}"
    );
    assert!(
        shown.lines().nth(3).unwrap().ends_with("[status: exit 7]"),
        "{shown}"
    );
    let json = run_binary(&["status", "--config", omega, "--json"], &env).await;
    let all: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let named: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["subdomain"].as_str().unwrap())
        .collect();
    assert_eq!(named, ["acme", "beta", "gamma", "omega"]);
    // One account: its status alone, exit 0.
    let one = run_binary(&["status", "--config", config, "--account", "beta"], &env).await;
    assert_eq!(one.status.code(), Some(0), "{}", text(&one));

    // verify reads it too; gamma, fixed, runs alone on the next export with --account.
    let env = [("ACME_TOKEN", "sim-token"), ("GAMMA_TOKEN", "sim-token")];
    let gamma = run_binary(&["export", "--config", config, "--account", "gamma"], &env).await;
    assert_eq!(gamma.status.code(), Some(0), "{}", text(&gamma));
    assert_exact(dir.path(), "gamma", &sim);
    let verified = run_binary(&["verify", "--config", config], &env).await;
    assert_eq!(verified.status.code(), Some(0), "{}", text(&verified));
    let report = String::from_utf8_lossy(&verified.stdout);
    assert_eq!(report.matches("== account ").count(), 3, "{report}");
    // ddl: the accounts share one lake, one table of every subdomain.
    let ddl = run_binary(&["ddl", "--config", config, "--engine", "duckdb"], &env).await;
    assert_eq!(ddl.status.code(), Some(0), "{}", text(&ddl));
    assert!(
        String::from_utf8_lossy(&ddl.stdout).contains("subdomain=*"),
        "{}",
        text(&ddl)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_split_the_accounts_and_overlapping_shards_are_made_safe_by_the_lease() {
    let mut config = sim_config(3_000, FROM, TO);
    // Slow enough that two processes overlap.
    config.faults.latency = Some(std::time::Duration::from_millis(40));
    let sim = start(config).await;
    let dir = tempfile::tempdir().unwrap();
    let file = accounts_file(dir.path(), &sim.base_url(), "");
    let config = file.to_str().unwrap();
    let env = [("ACME_TOKEN", "sim-token"), ("GAMMA_TOKEN", "sim-token")];
    // Shard 1 of 2 (Kubernetes numbers the task): beta alone (positions 0 acme, 1 beta, 2 gamma).
    let k8s = [
        ("ACME_TOKEN", "sim-token"),
        ("GAMMA_TOKEN", "sim-token"),
        ("JOB_COMPLETION_INDEX", "1"),
    ];
    let one = run_binary(&["export", "--config", config, "--shard", "2"], &k8s).await;
    assert_eq!(one.status.code(), Some(0), "{}", text(&one));
    let lake = dir.path().join("lake/audit_logs");
    let subdomains = || {
        let mut names: Vec<String> = std::fs::read_dir(&lake)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(subdomains(), ["subdomain=beta"]);
    // Another shard's process holds acme (the same account in two shards): this one refuses
    // acme (exit 5) and still exports gamma, its other account.
    let lake_dir = dir.path().join("lake");
    let store =
        auditlake::lake::storage::Lake::open(lake_dir.to_str().unwrap(), &Default::default())
            .unwrap();
    let held = auditlake::lake::lease::Lease::acquire(
        &store,
        "acme",
        std::time::Duration::from_secs(600),
        "another shard",
        &auditlake::units::new_run_id(),
    )
    .await
    .unwrap();
    let refused = run_binary(&["export", "--config", config, "--shard", "0/2"], &env).await;
    assert_eq!(refused.status.code(), Some(5), "{}", text(&refused));
    assert!(
        text(&refused).contains("another run holds the lease"),
        "{}",
        text(&refused)
    );
    assert_eq!(subdomains(), ["subdomain=beta", "subdomain=gamma"]);
    assert_exact(dir.path(), "gamma", &sim);
    held.release().await.unwrap();
    // Shards 0/2 and 0/1 overlap (acme and gamma are in both): run at once, the lease lets one
    // run per account write, the other says so (exit 5) or finds it done; nothing twice.
    let (first, second) = (
        ["export", "--config", config, "--shard", "0/2"],
        ["export", "--config", config, "--shard", "0/1"],
    );
    let (a, b) = tokio::join!(run_binary(&first, &env), run_binary(&second, &env));
    for out in [&a, &b] {
        assert!(
            [Some(0), Some(5)].contains(&out.status.code()),
            "{}",
            text(out)
        );
    }
    // A rerun of everything finishes whatever a refused overlap left.
    let all = run_binary(&["export", "--config", config], &env).await;
    assert_eq!(all.status.code(), Some(0), "{}", text(&all));
    for subdomain in ["acme", "beta", "gamma"] {
        assert_exact(dir.path(), subdomain, &sim);
    }
    let both = text(&a) + &text(&b);
    let overlapped = both.contains("another run holds the lease");
    eprintln!("the two shards overlapped on a lease: {overlapped}");
}

/// A bad input: accounts appended to the file, flags, the environment, and what the error says.
type BadCase<'a> = (&'a str, Vec<&'a str>, &'a [(&'a str, &'a str)], &'a str);

#[tokio::test]
async fn a_bad_accounts_file_is_refused_naming_the_account_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let base = "http://127.0.0.1:9";
    let env = [("ACME_TOKEN", "sim-token"), ("GAMMA_TOKEN", "sim-token")];
    let cases: Vec<BadCase> = vec![
        (
            "[[account]]\nsubdomain = \"acme\"\noauth-token-env = \"ACME_TOKEN\"\n",
            vec![],
            &env,
            "account acme (line 20): the account at line 8 has the same subdomain",
        ),
        (
            "[[account]]\nsubdomain = \"delta\"\nwindow = \"1h\"\n",
            vec![],
            &env,
            "account delta (line 20): no credentials",
        ),
        (
            "[[account]]\nsubdomain = \"delta\"\noauth-token = \"s3cr3t-inline\"\n",
            vec![],
            &env,
            "account delta (line 20): oauth-token is a secret",
        ),
        (
            "",
            vec!["--shard", "3/2"],
            &env,
            "--shard 3/2: index 3 is not below the count 2",
        ),
        (
            "",
            vec!["--account", "nope"],
            &env,
            "--account nope: no [[account]]",
        ),
        (
            "",
            vec!["--shard", "2"],
            &[
                ("ACME_TOKEN", "sim-token"),
                ("GAMMA_TOKEN", "sim-token"),
                ("AWS_BATCH_JOB_ARRAY_INDEX", "first"),
            ],
            "AWS_BATCH_JOB_ARRAY_INDEX=\"first\" is not a number",
        ),
        (
            "",
            vec![],
            &[("ACME_TOKEN", "sim-token")],
            "account gamma (line 17): oauth-token-env names a variable that is not set",
        ),
        (
            "",
            vec!["--subdomain", "acme"],
            &env,
            "--subdomain cannot be given with [[account]] tables",
        ),
        (
            "[[account]]\nsubdomain = \"delta\"\noauth-token-env = \"ACME_TOKEN\"\naccounts-at-once = 9\n",
            vec![],
            &env,
            "account delta (line 20): accounts-at-once is a setting of the whole process",
        ),
        (
            "[[account]]\nsubdomain = \"delta\"\noauth-token-env = \"s3cr3t-inline.value\"\n",
            vec![],
            &env,
            "account delta (line 20): oauth-token-env must name an environment variable",
        ),
        (
            "",
            vec!["--account", "beta", "--shard", "0/2"],
            &env,
            "--account beta is not in --shard 0/2",
        ),
        (
            "[[account]]\nsubdomain = \"delta\"\noauth-token-env = \"ACME_TOKEN\"\ntable-format = \"csv\"\n",
            vec![],
            &env,
            "account delta (line 20): invalid value 'csv' for '--table-format",
        ),
        (
            "",
            vec!["--accounts-at-once", "0"],
            &env,
            "--accounts-at-once must be at least 1",
        ),
        (
            "",
            vec!["--accounts-at-once", "0", "--check-config"],
            &env,
            "--accounts-at-once must be at least 1",
        ),
    ];
    for (extra, flags, env, said) in cases {
        let file = accounts_file(dir.path(), base, extra);
        let mut args = vec!["export", "--config", file.to_str().unwrap()];
        args.extend(flags);
        let out = run_binary(&args, env).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(stderr.contains(said), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(!stderr.contains("s3cr3t-inline"), "{stderr}");
        assert!(!dir.path().join("lake").exists(), "{args:?} wrote the lake");
        assert!(!dir.path().join("summary.jsonl").exists());
    }
    // --account without accounts in the file.
    let out = run_binary(
        &[
            "status",
            "--dest",
            "/nonexistent",
            "--subdomain",
            "acme",
            "--account",
            "acme",
        ],
        &env,
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--account picks among the [[account]] tables"));
}

/// An account that fails before its run (its store cannot be opened) still has its summary line
/// and metric samples, so its alert fires; `status` of the file needs no account's secrets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_account_still_reports_and_status_needs_no_secret() {
    let sim = start(sim_config(500, FROM, TO)).await;
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, "not a folder").unwrap();
    let extra = format!(
        "[[account]]\nsubdomain = \"delta\"\noauth-token-env = \"ACME_TOKEN\"\ndest = \"{}\"\n",
        blocker.join("lake").display()
    );
    let file = accounts_file(dir.path(), &sim.base_url(), &extra);
    let config = file.to_str().unwrap();
    let env = [("ACME_TOKEN", "sim-token"), ("GAMMA_TOKEN", "sim-token")];
    let out = run_binary(&["export", "--config", config], &env).await;
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let summaries = std::fs::read_to_string(dir.path().join("summary.jsonl")).unwrap();
    let codes: Vec<(String, i64)> = summaries
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|l| {
            (
                l["subdomain"].as_str().unwrap().to_string(),
                l["exit_code"].as_i64().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(String, i64)> = [("acme", 0), ("beta", 0), ("delta", 4), ("gamma", 0)]
        .iter()
        .map(|&(s, c)| (s.to_string(), c))
        .collect();
    assert_eq!(codes, expected);
    let metrics = std::fs::read_to_string(dir.path().join("metrics.prom")).unwrap();
    assert!(
        metrics.contains("auditlake_last_run_exit_code{subdomain=\"delta\"} 4.0"),
        "{metrics}"
    );
    // --check-config says each account's line, and exits with the worst code a run would give.
    let checked = run_binary(&["status", "--config", config, "--check-config"], &env).await;
    assert_eq!(checked.status.code(), Some(7), "{}", text(&checked));
    let said = text(&checked);
    assert_eq!(
        said.matches("status would read subdomain").count(),
        3,
        "{said}"
    );
    assert!(said.contains("account delta: no lake"), "{said}");
    // A monitor's status has none of the accounts' secrets in its environment.
    let status = run_binary(&["status", "--config", config, "--account", "acme"], &[]).await;
    assert_eq!(status.status.code(), Some(0), "{}", text(&status));
}

/// One SIGTERM stops the accounts under way and starts no other (exit 130).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigterm_stops_every_account_and_starts_no_other() {
    let mut config = sim_config(3_000, FROM, TO);
    config.faults.latency = Some(std::time::Duration::from_millis(200));
    let sim = start(config).await;
    let dir = tempfile::tempdir().unwrap();
    let file = accounts_file(dir.path(), &sim.base_url(), "");
    let env = [("ACME_TOKEN", "sim-token"), ("GAMMA_TOKEN", "sim-token")];
    let mut child = binary(
        &[
            "export",
            "--config",
            file.to_str().unwrap(),
            "--accounts-at-once",
            "1",
        ],
        &env,
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let started = std::time::Instant::now();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(130));
    // The first account stops at once; the two queued never start (each would take seconds).
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let lake = dir.path().join("lake/audit_logs");
    let started_accounts = std::fs::read_dir(&lake).map_or(0, |d| d.count());
    assert!(started_accounts <= 1, "{started_accounts} accounts wrote");
    let summaries = std::fs::read_to_string(dir.path().join("summary.jsonl")).unwrap();
    assert_eq!(summaries.lines().count(), 3, "{summaries}");
    assert!(
        summaries.lines().all(|l| l.contains("\"exit_code\":130")),
        "{summaries}"
    );
}
