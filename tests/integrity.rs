//! SHA-256 of every committed file (issue 20, its first part): computed while the file is
//! written, recorded in its marker (and the Delta log's add action), checkable by hand with
//! `sha256sum`, and re-checked by `verify --integrity`.

mod common;

use std::path::Path;

use auditlake::lake::storage::{Lake, StoreOptions};
use auditlake::verify::{self, Kind, VerifyOptions};
use common::*;
use serde_json::Value;

const FROM: &str = "2024-03-01";
const TO: &str = "2024-03-04";

/// Every file a marker names, with the SHA-256 the marker recorded.
fn recorded(dest: &Path) -> Vec<(String, String)> {
    markers(dest)
        .iter()
        .flat_map(|name| {
            let marker: Value = serde_json::from_slice(
                &std::fs::read(dest.join("_auditlake/subdomain=acme/windows").join(name)).unwrap(),
            )
            .unwrap();
            marker["files"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| {
                    (
                        f["path"].as_str().unwrap().to_string(),
                        f["sha256"].as_str().unwrap().to_string(),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

async fn check(dest: &Path, integrity: bool) -> verify::Report {
    let lake = Lake::open(dest.to_str().unwrap(), &StoreOptions::default()).unwrap();
    let options = VerifyOptions {
        integrity,
        ..VerifyOptions::default()
    };
    verify::verify(&lake, "acme", &options, None).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_file_s_digest_is_in_its_marker_and_sha256sum_agrees() {
    let sim = start(sim_config(3_000, FROM, TO)).await;
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        export(export_config(&sim, dir.path(), FROM, TO, "1d"))
            .await
            .exit_code(),
        0
    );
    let files = recorded(dir.path());
    assert!(!files.is_empty());
    for (path, sha256) in &files {
        let out = std::process::Command::new("sha256sum")
            .arg(dir.path().join(path))
            .output()
            .unwrap();
        let by_hand = String::from_utf8(out.stdout).unwrap();
        assert_eq!(
            by_hand.split_whitespace().next(),
            Some(sha256.as_str()),
            "{path}"
        );
    }
    assert!(check(dir.path(), true).await.findings.is_empty());

    // The README's check by hand, as written there (jq and sha256sum).
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let line = readme
        .lines()
        .find(|l| l.starts_with("jq -r '.files[]"))
        .unwrap()
        .replace("20240103T0000Z", "20240302T0000Z");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(&line)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(": OK"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_byte_changed_after_the_commit_is_reported_by_integrity_and_deep() {
    let sim = start(sim_config(3_000, FROM, TO)).await;
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        export(export_config(&sim, dir.path(), FROM, TO, "1d"))
            .await
            .exit_code(),
        0
    );
    let (path, _) = recorded(dir.path()).remove(1);
    let file = dir.path().join(&path);
    let mut bytes = std::fs::read(&file).unwrap();
    // A byte in the middle of the data pages: same size, and the footer still reads.
    let middle = bytes.len() / 3;
    bytes[middle] ^= 0x01;
    std::fs::write(&file, &bytes).unwrap();

    let plain = check(dir.path(), false).await;
    assert!(
        !plain.findings.iter().any(|f| f.kind == Kind::Altered),
        "without --integrity no file is hashed"
    );
    let report = check(dir.path(), true).await;
    let altered: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.kind == Kind::Altered)
        .collect();
    assert_eq!(altered.len(), 1, "{report:?}");
    assert_eq!(altered[0].path.as_deref(), Some(path.as_str()));

    // Through the command line: exit 6, the file named.
    let dest = dir.path().to_str().unwrap();
    for flag in ["--integrity", "--deep"] {
        let out = run_binary(
            &["verify", "--dest", dest, "--subdomain", "acme", flag],
            &[],
        )
        .await;
        assert_eq!(out.status.code(), Some(6), "{flag}: {}", text(&out));
        assert!(text(&out).contains(&path), "{flag}: {}", text(&out));
    }
}
