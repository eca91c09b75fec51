//! `auditlake ddl` as a user runs it, on a lake exported from the simulator: the SQL it prints
//! for the engines that read a local lake, the engines it refuses with the reason, and a lake
//! left exactly as it was. (Executing the SQL is the Python read-back tests' job.)

mod common;

use std::path::Path;

use auditlake::table::schema::Schema;
use common::*;

async fn ddl(args: &[&str]) -> std::process::Output {
    let mut all = vec!["ddl"];
    all.extend_from_slice(args);
    run_binary(&all, &[]).await
}

/// Every file below `dir` with its size and modification time.
fn snapshot(dir: &Path) -> Vec<(String, u64, std::time::SystemTime)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                out.push((
                    entry.path().display().to_string(),
                    meta.len(),
                    meta.modified().unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

async fn exported_lake(dir: &Path) -> std::path::PathBuf {
    let sim = start(sim_config(500, "2024-03-01", "2024-03-03")).await;
    let lake = dir.join("lake");
    export(export_config(&sim, &lake, "2024-03-01", "2024-03-03", "1d")).await;
    std::fs::canonicalize(lake).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_prints_duckdb_and_spark_sql_for_a_local_lake_and_leaves_it_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let lake = exported_lake(dir.path()).await;
    let dest = lake.to_str().unwrap();
    let before = snapshot(&lake);

    let out = ddl(&["--dest", dest, "--engine", "duckdb"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let sql = String::from_utf8(out.stdout).unwrap();
    assert!(
        sql.contains("CREATE OR REPLACE VIEW audit_logs AS\nSELECT\n"),
        "{sql}"
    );
    assert!(
        sql.contains(&format!(
            "FROM read_parquet('{dest}/audit_logs/subdomain=*/created_date=*/*.parquet', hive_partitioning = true, hive_types = {{'subdomain': VARCHAR, 'created_date': DATE}});"
        )),
        "{sql}"
    );
    let schema = Schema::get();
    for name in schema.fields.iter().map(|f| f.name.as_str()).chain([
        schema.extra_column.as_str(),
        "subdomain",
        "created_date",
    ]) {
        assert!(sql.contains(&format!("\n  {name}")), "{name}: {sql}");
    }

    let out = ddl(&["--dest", dest, "--engine", "spark", "--table", "lake.audit"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let sql = String::from_utf8(out.stdout).unwrap();
    assert!(
        sql.contains(
            "CREATE DATABASE IF NOT EXISTS lake;\nCREATE TABLE IF NOT EXISTS lake.audit (\n"
        ),
        "{sql}"
    );
    assert!(
        sql.contains(&format!(
            "USING parquet\nPARTITIONED BY (subdomain, created_date)\nLOCATION 'file:{dest}/audit_logs'\n"
        )),
        "{sql}"
    );
    assert!(sql.ends_with("MSCK REPAIR TABLE lake.audit;\n"), "{sql}");

    // Only this subdomain; one that the lake does not hold is named with those it does.
    let out = ddl(&["--dest", dest, "--engine", "duckdb", "--subdomain", "acme"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = ddl(&["--dest", dest, "--engine", "duckdb", "--subdomain", "other"]).await;
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    assert!(text(&out).contains("has no subdomain \"other\"; it holds acme"));

    assert_eq!(snapshot(&lake), before, "ddl wrote to the lake");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_refuses_with_exit_2_what_an_engine_cannot_read_and_bad_names() {
    let dir = tempfile::tempdir().unwrap();
    let lake = exported_lake(dir.path()).await;
    let dest = lake.to_str().unwrap();
    let missing = dir.path().join("nowhere");
    let missing_text = missing.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["--dest", dest], "Athena reads only S3"),
        (
            &["--dest", dest, "--engine", "trino"],
            "Trino reads only S3",
        ),
        (
            &["--dest", dest, "--engine", "bigquery", "--table", "ds.logs"],
            "only from Google Cloud Storage (gs://)",
        ),
        (
            &["--dest", "gs://bucket/lake", "--engine", "bigquery"],
            "give --table DATASET.audit_logs",
        ),
        (
            &[
                "--dest",
                dest,
                "--engine",
                "duckdb",
                "--table",
                "audit-logs",
            ],
            "--table: \"audit-logs\" is not a table name",
        ),
        (
            &["--dest", dest, "--engine", "duckdb", "--glue"],
            "--glue describes the Athena table",
        ),
    ];
    for (args, expected) in cases {
        let out = ddl(args).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(out.stdout.is_empty(), "{args:?}: SQL printed on an error");
        let all = text(&out);
        assert!(all.contains(expected), "{args:?}: {all}");
    }
    // No lake there: exit 7, as for status and verify, and nothing created.
    let out = ddl(&["--dest", missing_text, "--engine", "duckdb"]).await;
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    assert!(
        out.stdout.is_empty() && text(&out).contains("no lake at"),
        "{}",
        text(&out)
    );

    assert!(
        !missing.exists(),
        "ddl created the directory it was pointed at"
    );
}
