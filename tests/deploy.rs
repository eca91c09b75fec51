//! `--check-config`, the pre-flight of a deployment: it accepts what a run would start with and
//! refuses what a run would refuse, with the same message and exit code, while contacting nothing
//! and writing nothing. (The deployment examples themselves are checked by
//! tests/readback/test_deploy.py, through this switch.)

mod common;

use std::net::TcpListener;
use std::process::Output;

use common::*;

const SECRET: &str = "client-SECRET-7731";

/// Environment variables of a run.
type Env = Vec<(String, String)>;

/// A listener nobody should connect to: Zendesk's and the store's stand-in.
fn trap() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (listener, url)
}

fn assert_untouched(listener: &TcpListener) {
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("something connected: {other:?}"),
    }
}

/// The environment of a scheduled run: an OAuth client whose secret is mounted as a file.
fn client_env(dir: &std::path::Path) -> Env {
    let secret = dir.join("client-secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    vec![
        ("ZENDESK_OAUTH_CLIENT_ID".into(), "auditlake".into()),
        (
            "ZENDESK_OAUTH_CLIENT_SECRET_FILE".into(),
            secret.to_str().unwrap().into(),
        ),
    ]
}

async fn run_with(args: &[&str], env: &Env) -> Output {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    run_binary(args, &env).await
}

#[tokio::test]
async fn check_config_accepts_a_valid_export_and_contacts_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (zendesk, base_url) = trap();
    let (store, endpoint) = trap();
    let lake = dir.path().join("lake");
    let summary = dir.path().join("summary.json");
    let mut env = client_env(dir.path());
    env.push(("AWS_ENDPOINT_URL".into(), endpoint));
    env.push(("AWS_REGION".into(), "eu-west-1".into()));
    for dest in [lake.to_str().unwrap(), "s3://audit-lake/zendesk"] {
        let out = run_with(
            &[
                "export",
                "--subdomain",
                "acme",
                "--dest",
                dest,
                "--since",
                "2024-01-01",
                "--base-url",
                &base_url,
                "--summary-json",
                summary.to_str().unwrap(),
                "--check-config",
            ],
            &env,
        )
        .await;
        let all = text(&out);
        assert_eq!(out.status.code(), Some(0), "{dest}: {all}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(stdout.lines().count(), 1, "one line: {all}");
        assert!(stdout.contains("export would run"), "{all}");
        assert!(stdout.contains(dest), "{all}");
        assert!(stdout.contains("OAuth client \"auditlake\""), "{all}");
        assert!(!all.contains(SECRET), "the secret shows: {all}");
    }
    assert_untouched(&zendesk);
    assert_untouched(&store);
    assert!(!lake.exists(), "the local lake was created");
    assert!(!summary.exists(), "the summary was written");
}

#[tokio::test]
async fn check_config_refuses_what_the_run_refuses_with_the_same_message_and_code() {
    let dir = tempfile::tempdir().unwrap();
    let (zendesk, base_url) = trap();
    let env = client_env(dir.path());
    let lake = dir.path().join("lake");
    let export = |extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = [
            "export",
            "--subdomain",
            "acme",
            "--dest",
            lake.to_str().unwrap(),
            "--base-url",
            &base_url,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    // Refused while validating, before a run would contact anything: the run itself is the
    // reference.
    let cases: Vec<(Vec<String>, Env, &str)> = vec![
        (export(&[]), env.clone(), "--since is required"),
        (
            export(&["--since", "2024-01-01", "--window", "5h"]),
            env.clone(),
            "--window",
        ),
        (
            export(&["--since", "2024-01-01"]),
            vec![("ZENDESK_OAUTH_CLIENT_ID".into(), "auditlake".into())],
            "ZENDESK_OAUTH_CLIENT_SECRET",
        ),
        (
            export(&["--since", "2024-01-01", "--lease-ttl", "2d"]),
            env.clone(),
            "--lease-ttl",
        ),
    ];
    for (args, env, needle) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let real = run_with(&args, &env).await;
        let checked = run_with(&[&args[..], &["--check-config"]].concat(), &env).await;
        assert_eq!(
            checked.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&checked)
        );
        assert_eq!(checked.status.code(), real.status.code(), "{args:?}");
        assert_eq!(checked.stderr, real.stderr, "{args:?}");
        assert!(
            text(&checked).contains(needle),
            "{args:?}: {}",
            text(&checked)
        );
        assert!(checked.stdout.is_empty(), "{args:?}: {}", text(&checked));
    }
    assert_untouched(&zendesk);

    // Refused by the check where the run would fail later: a destination that cannot be opened
    // (exit 4, as the run gives), a summary file the run could not write at its end (exit 2).
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let under_file = file.join("lake");
    let missing = dir.path().join("missing").join("summary.json");
    let lake_text = lake.to_str().unwrap();
    let cases: [(&[&str], u8, &str); 3] = [
        (&["--dest", "ftp://host/lake"], 4, "not supported"),
        (
            &["--dest", under_file.to_str().unwrap()],
            4,
            "is not a directory",
        ),
        (
            &[
                "--dest",
                lake_text,
                "--summary-json",
                missing.to_str().unwrap(),
            ],
            2,
            "--summary-json",
        ),
    ];
    for (extra, code, needle) in cases {
        let common = ["export", "--subdomain", "acme", "--since", "2024-01-01"];
        let args = [&common[..], extra, &["--check-config"]].concat();
        let out = run_with(&args, &env).await;
        assert_eq!(
            out.status.code(),
            Some(i32::from(code)),
            "{extra:?}: {}",
            text(&out)
        );
        assert!(text(&out).contains(needle), "{extra:?}: {}", text(&out));
    }
    assert!(!lake.exists());
    assert_untouched(&zendesk);
}

#[tokio::test]
async fn check_config_cannot_be_turned_on_by_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("auditlake.toml");
    std::fs::write(&config, "check-config = true\n").unwrap();
    let env = client_env(dir.path());
    let lake = dir.path().join("lake");
    let out = run_with(
        &[
            "export",
            "--config",
            config.to_str().unwrap(),
            "--subdomain",
            "acme",
            "--dest",
            lake.to_str().unwrap(),
            "--since",
            "2024-01-01",
        ],
        &env,
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("check-config belongs on the command line"));
    assert!(!lake.exists());
}

#[tokio::test]
async fn check_config_covers_the_other_commands_without_creating_a_lake() {
    let dir = tempfile::tempdir().unwrap();
    let (zendesk, base_url) = trap();
    let env = client_env(dir.path());
    let lake = dir.path().join("lake");
    std::fs::create_dir(&lake).unwrap();
    let lake = lake.to_str().unwrap();
    let base = ["--base-url", base_url.as_str()];
    let cases: [(&[&str], &[&str], &str); 7] = [
        (
            &["status", "--dest", lake, "--subdomain", "acme"],
            &[],
            "status would read",
        ),
        (
            &["ddl", "--dest", lake, "--engine", "duckdb"],
            &[],
            "ddl would describe",
        ),
        (
            &[
                "verify",
                "--dest",
                lake,
                "--subdomain",
                "acme",
                "--against-api",
            ],
            &base,
            "verify would check",
        ),
        (
            &["repair", "--dest", lake, "--subdomain", "acme"],
            &base,
            "repair would mend",
        ),
        (
            &["show", "42", "--subdomain", "acme"],
            &base,
            "show would fetch",
        ),
        (
            &["list", "--subdomain", "acme", "--since", "2024-01-01"],
            &base,
            "list would list",
        ),
        (
            &["request-export", "--subdomain", "acme"],
            &base,
            "request-export would ask",
        ),
    ];
    for (args, extra, needle) in cases {
        let args = [args, extra, &["--check-config"]].concat();
        let out = run_with(&args, &env).await;
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(needle),
            "{args:?}: {}",
            text(&out)
        );
    }
    let out = run_with(
        &[
            "status",
            "--dest",
            lake,
            "--subdomain",
            "Acme!",
            "--check-config",
        ],
        &env,
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    // The commands that only read a lake refuse a missing one, as their runs do.
    let missing = dir.path().join("missing");
    let missing = missing.to_str().unwrap();
    for args in [
        &["status", "--dest", missing, "--subdomain", "acme"][..],
        &["verify", "--dest", missing, "--subdomain", "acme"],
        &["ddl", "--dest", missing, "--engine", "duckdb"],
    ] {
        let real = run_with(args, &env).await;
        let checked = run_with(&[args, &["--check-config"]].concat(), &env).await;
        assert_ne!(
            checked.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&checked)
        );
        assert_eq!(checked.status.code(), real.status.code(), "{args:?}");
        assert_eq!(checked.stderr, real.stderr, "{args:?}");
    }
    assert!(!std::path::Path::new(missing).exists());
    assert_untouched(&zendesk);
}
