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
    let options = VerifyOptions {
        integrity,
        ..VerifyOptions::default()
    };
    verify_lake_with(dest, options).await
}

/// A lake of three daily windows, exported from a simulator.
async fn exported() -> tempfile::TempDir {
    let sim = start(sim_config(3_000, FROM, TO)).await;
    let dir = tempfile::tempdir().unwrap();
    let summary = export(export_config(&sim, dir.path(), FROM, TO, "1d")).await;
    assert_eq!(summary.exit_code(), 0);
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_file_s_digest_is_in_its_marker_and_sha256sum_agrees() {
    let dir = exported().await;
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

    // The README's check by hand, as written there (jq and sha256sum). jq is a Debian package
    // of this machine's image; where it is missing the check is skipped, and says so.
    let has_jq = std::process::Command::new("jq")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_jq {
        eprintln!("jq is not installed: the README's check by hand is not run");
        return;
    }
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
    let dir = exported().await;
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
    let altered = findings_of(&report, Kind::Altered);
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

/// The chain's link files, in order.
fn links(dest: &Path) -> Vec<std::path::PathBuf> {
    let dir = dest.join("_auditlake/subdomain=acme/digests");
    let mut links: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    links.sort();
    links
}

fn sha256_hex(bytes: &[u8]) -> String {
    auditlake::lake::chain::sha256_hex(bytes)
}

async fn kinds_after(attack: impl FnOnce(&Path)) -> Vec<Kind> {
    let dir = exported().await;
    attack(dir.path());
    let report = check(dir.path(), true).await;
    let mut kinds: Vec<Kind> = report.findings.iter().map(|f| f.kind).collect();
    kinds.sort();
    kinds.dedup();
    kinds
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_commit_is_a_link_of_a_chain_of_hashes() {
    let dir = exported().await;
    let links = links(dir.path());
    assert_eq!(links.len(), 3, "one link per committed window with files");
    let mut previous = Value::Null;
    for (i, link) in links.iter().enumerate() {
        let bytes = std::fs::read(link).unwrap();
        let digest: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(digest["seq"], i as u64 + 1);
        assert_eq!(digest["previous"], previous);
        assert!(!digest["files"].as_array().unwrap().is_empty());
        previous = Value::from(sha256_hex(&bytes));
    }
    let report = check(dir.path(), true).await;
    assert!(report.findings.is_empty(), "{report:?}");
    assert_eq!(report.chain_links, Some(3));

    let dest = dir.path().to_str().unwrap();
    let status = run_binary(&["status", "--dest", dest, "--subdomain", "acme"], &[]).await;
    assert!(
        text(&status).contains("chain:       3 links, the last for window 2024030"),
        "{}",
        text(&status)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_attack_on_the_archive_is_named() {
    let first_file = |dest: &Path| dest.join(&recorded(dest)[0].0);
    // A file replaced by another with the same rows (re-encoded: other bytes).
    let same_rows = kinds_after(|dest| {
        let path = first_file(dest);
        let file = std::fs::File::open(&path).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<_> = reader.map(Result::unwrap).collect();
        let out = std::fs::File::create(&path).unwrap();
        let mut writer =
            parquet::arrow::ArrowWriter::try_new(out, batches[0].schema(), None).unwrap();
        for batch in &batches {
            writer.write(batch).unwrap();
        }
        writer.close().unwrap();
    })
    .await;
    // Re-encoded, the file has another size: named as such before any hashing.
    assert!(
        same_rows.contains(&Kind::Altered) || same_rows.contains(&Kind::WrongSize),
        "{same_rows:?}"
    );

    let deleted = kinds_after(|dest| std::fs::remove_file(first_file(dest)).unwrap()).await;
    assert!(deleted.contains(&Kind::MissingFile), "{deleted:?}");

    let added = kinds_after(|dest| {
        let path = first_file(dest);
        std::fs::copy(&path, path.with_file_name("part-20240301T0000Z-9.parquet")).unwrap();
    })
    .await;
    assert!(added.contains(&Kind::Stray), "{added:?}");

    let link_deleted = kinds_after(|dest| std::fs::remove_file(&links(dest)[1]).unwrap()).await;
    assert!(
        link_deleted.contains(&Kind::ChainBroken),
        "{link_deleted:?}"
    );

    let link_edited = kinds_after(|dest| {
        let link = &links(dest)[0];
        let text = std::fs::read_to_string(link).unwrap();
        std::fs::write(link, text.replacen("\"rows\": ", "\"rows\": 1", 1)).unwrap();
    })
    .await;
    assert!(link_edited.contains(&Kind::ChainBroken), "{link_edited:?}");

    let swapped = kinds_after(|dest| {
        let links = links(dest);
        let (a, b) = (
            std::fs::read(&links[0]).unwrap(),
            std::fs::read(&links[1]).unwrap(),
        );
        std::fs::write(&links[0], b).unwrap();
        std::fs::write(&links[1], a).unwrap();
    })
    .await;
    assert!(swapped.contains(&Kind::ChainBroken), "{swapped:?}");

    let truncated = kinds_after(|dest| {
        let link = &links(dest)[2];
        let bytes = std::fs::read(link).unwrap();
        std::fs::write(link, &bytes[..bytes.len() / 2]).unwrap();
    })
    .await;
    assert!(truncated.contains(&Kind::ChainBroken), "{truncated:?}");

    // A marker edited to name another file (and its digest), as if the window held other rows.
    let marker_edited = kinds_after(|dest| {
        let dir = dest.join("_auditlake/subdomain=acme/windows");
        let name = &markers(dest)[0];
        let mut marker: Value =
            serde_json::from_slice(&std::fs::read(dir.join(name)).unwrap()).unwrap();
        marker["files"][0]["sha256"] = Value::from("0".repeat(64));
        std::fs::write(dir.join(name), serde_json::to_vec(&marker).unwrap()).unwrap();
    })
    .await;
    assert!(
        marker_edited.contains(&Kind::ChainDisagrees),
        "{marker_edited:?}"
    );

    // A marker of a higher generation forged without digests (so that no hash is checked).
    let forged = kinds_after(|dest| {
        let dir = dest.join("_auditlake/subdomain=acme/windows");
        let name = markers(dest)[0].clone();
        let mut marker: Value =
            serde_json::from_slice(&std::fs::read(dir.join(&name)).unwrap()).unwrap();
        marker["generation"] = Value::from(2);
        for file in marker["files"].as_array_mut().unwrap() {
            file.as_object_mut().unwrap().remove("sha256");
        }
        let forged = name.replace(".json", ".g2.json");
        std::fs::write(dir.join(forged), serde_json::to_vec(&marker).unwrap()).unwrap();
    })
    .await;
    assert!(forged.contains(&Kind::ChainDisagrees), "{forged:?}");

    // A marker deleted together with its files: only the chain still knows the window.
    let window_removed = kinds_after(|dest| {
        let dir = dest.join("_auditlake/subdomain=acme/windows");
        let name = markers(dest)[0].clone();
        let marker: Value =
            serde_json::from_slice(&std::fs::read(dir.join(&name)).unwrap()).unwrap();
        for file in marker["files"].as_array().unwrap() {
            std::fs::remove_file(dest.join(file["path"].as_str().unwrap())).unwrap();
        }
        std::fs::remove_file(dir.join(name)).unwrap();
    })
    .await;
    assert_eq!(window_removed, [Kind::ChainDisagrees]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lake_from_before_the_chain_verifies_with_a_note_and_starts_one_at_its_next_commit() {
    let sim = start(sim_config(3_000, FROM, TO)).await;
    let dir = tempfile::tempdir().unwrap();
    let first = export(export_config(&sim, dir.path(), FROM, "2024-03-03", "1d")).await;
    assert_eq!(first.exit_code(), 0);
    // As an older auditlake left it: no digests, no chain.
    std::fs::remove_dir_all(dir.path().join("_auditlake/subdomain=acme/digests")).unwrap();
    for name in markers(dir.path()) {
        let path = dir
            .path()
            .join("_auditlake/subdomain=acme/windows")
            .join(name);
        let mut marker: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        for file in marker["files"].as_array_mut().unwrap() {
            file.as_object_mut().unwrap().remove("sha256");
        }
        std::fs::write(&path, serde_json::to_vec(&marker).unwrap()).unwrap();
    }
    let report = check(dir.path(), true).await;
    assert!(report.findings.is_empty(), "{report:?}");
    assert_eq!(report.chain_links, Some(0));
    assert!(report.to_string().contains("digest chain: none yet"));

    let next = export(export_config(&sim, dir.path(), FROM, TO, "1d")).await;
    assert_eq!(next.exit_code(), 0);
    assert_eq!(
        links(dir.path()).len(),
        1,
        "the chain starts with the next commit"
    );
    let report = check(dir.path(), true).await;
    assert!(report.findings.is_empty(), "{report:?}");
}

/// Signing (Ed25519): every link signed with the run's key, whose fingerprint the lake pins;
/// verify needs only the public key, and names an unsigned link, another key's signature, and a
/// link changed after it was signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_chain_verifies_with_its_public_key_only() {
    use auditlake::lake::signing::{generate_pem, public_pem, Signer, Verifier};
    use std::sync::Arc;

    let sim = start(sim_config(3_000, FROM, TO)).await;
    let dir = tempfile::tempdir().unwrap();
    let private = generate_pem();
    let signer = Arc::new(Signer::from_pem(&private).unwrap());
    let mut config = export_config(&sim, dir.path(), FROM, TO, "1d");
    config.signer = Some(signer.clone());
    assert_eq!(export(config.clone()).await.exit_code(), 0);
    let dataset: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("_auditlake/subdomain=acme/dataset.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(dataset["signing_key"], signer.fingerprint());
    let key_body = private.lines().nth(1).unwrap();
    for link in links(dir.path()) {
        let text = std::fs::read_to_string(&link).unwrap();
        assert!(text.contains("\"signature\"") && !text.contains(key_body));
    }

    let lake = Lake::open(dir.path().to_str().unwrap(), &StoreOptions::default()).unwrap();
    let verify_with = |public: &str| {
        let options = VerifyOptions {
            integrity: true,
            public_key: Some(Verifier::from_pem(public).unwrap()),
            ..VerifyOptions::default()
        };
        let lake = lake.clone();
        async move { verify::verify(&lake, "acme", &options, None).await.unwrap() }
    };
    let good = verify_with(&public_pem(&signer)).await;
    assert!(good.findings.is_empty(), "{good:?}");

    let other = Signer::from_pem(&generate_pem()).unwrap();
    let wrong = verify_with(&public_pem(&other)).await;
    assert!(wrong.findings.iter().all(|f| f.kind == Kind::BadSignature));
    assert!(
        wrong.findings.len() >= 4,
        "the pin, and each link: {wrong:?}"
    );

    // A link changed after it was signed (its time), the chain otherwise intact: the last one,
    // so that no later link's previous hash gives it away.
    let last = links(dir.path()).pop().unwrap();
    let text = std::fs::read_to_string(&last).unwrap();
    let mut link: Value = serde_json::from_str(&text).unwrap();
    link["at"] = Value::from("2020-01-01T00:00:00Z");
    std::fs::write(&last, serde_json::to_vec_pretty(&link).unwrap()).unwrap();
    let changed = verify_with(&public_pem(&signer)).await;
    assert!(
        changed
            .findings
            .iter()
            .any(|f| f.kind == Kind::BadSignature && f.detail.contains("does not verify")),
        "{changed:?}"
    );

    // A run without the key, or with another, is refused: the chain stays signed by one key.
    config.signer = None;
    let refused = auditlake::run::export(
        config.clone(),
        tokio_util::sync::CancellationToken::new(),
        &auditlake::run::NoProgress,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(refused.contains("--signing-key-file"), "{refused}");
    assert!(!refused.contains(key_body));
}

/// The command line: `export --signing-key-file`, `verify --public-key`; the key never shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_through_the_command_line_never_shows_the_key() {
    use auditlake::lake::signing::{generate_pem, public_pem, Signer};

    let sim = start(sim_config(1_000, FROM, TO)).await;
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let private = generate_pem();
    let key_body = private.lines().nth(1).unwrap().to_string();
    let key = dir.path().join("chain.key");
    std::fs::write(&key, &private).unwrap();
    let public = dir.path().join("chain.pub");
    std::fs::write(&public, public_pem(&Signer::from_pem(&private).unwrap())).unwrap();
    let other = dir.path().join("other.pub");
    std::fs::write(
        &other,
        public_pem(&Signer::from_pem(&generate_pem()).unwrap()),
    )
    .unwrap();

    let mut args = twelve_hour_export(lake.to_str().unwrap(), &sim.base_url());
    args.extend([
        "--signing-key-file".to_string(),
        key.to_str().unwrap().to_string(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run_binary(&args, &[("ZENDESK_OAUTH_TOKEN", TOKEN)]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&out).contains(&key_body));

    let verify = |public: &std::path::Path| {
        let lake = lake.to_str().unwrap().to_string();
        let public = public.to_str().unwrap().to_string();
        async move {
            run_binary(
                &[
                    "verify",
                    "--dest",
                    &lake,
                    "--subdomain",
                    "acme",
                    "--public-key",
                    &public,
                ],
                &[],
            )
            .await
        }
    };
    let good = verify(&public).await;
    assert_eq!(good.status.code(), Some(0), "{}", text(&good));
    let status = run_binary(
        &[
            "status",
            "--dest",
            lake.to_str().unwrap(),
            "--subdomain",
            "acme",
        ],
        &[],
    )
    .await;
    assert!(text(&status).contains("(signed)"), "{}", text(&status));
    let bad = verify(&other).await;
    assert_eq!(bad.status.code(), Some(6), "{}", text(&bad));
    assert!(text(&bad).contains("BadSignature"), "{}", text(&bad));

    // A repair of a signed lake without its key is refused: it would append unsigned links.
    let lake_text = lake.to_str().unwrap().to_string();
    let base = sim.base_url();
    let repair = run_binary(
        &[
            "repair",
            "--dest",
            &lake_text,
            "--subdomain",
            "acme",
            "--base-url",
            &base,
        ],
        &[("ZENDESK_OAUTH_TOKEN", TOKEN)],
    )
    .await;
    assert_eq!(repair.status.code(), Some(2), "{}", text(&repair));
    assert!(
        text(&repair).contains("--signing-key-file"),
        "{}",
        text(&repair)
    );

    // A private key given where a public one is expected is refused, naming the flag only.
    let wrong = verify(&key).await;
    assert_eq!(wrong.status.code(), Some(2), "{}", text(&wrong));
    assert!(text(&wrong).contains("--public-key") && !text(&wrong).contains(&key_body));
}
