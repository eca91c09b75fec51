//! `auditlake ddl`: the SQL that makes an engine see the lake's table root as one table.
//!
//! Pure functions from (engine, table name, table root, the lake's subdomains and first day,
//! schema) to SQL text, and the small read-only look at a lake they need ([`read_lake`]: one
//! listing of `_auditlake/`, the datasets, no data file). Columns come from the declared
//! [`Schema`], never from a file, so the DDL says what every file of this schema version holds.
//!
//! Each engine gets what lets it read the lake without maintenance: Athena a partition
//! projection (no `MSCK REPAIR`, ever), Trino a partition sync to rerun after exports, Spark a
//! datasource table (its Hive Parquet serde cannot read INT64 timestamps) with its partitions
//! recovered, DuckDB a view over `read_parquet` with typed partitions, BigQuery an external
//! table with Hive partitioning.

use std::fmt::Write as _;

mod athena;
mod bigquery;
mod delta;
mod duckdb;
mod lake;
mod location;
mod spark;
mod trino;

pub use athena::glue;
pub use lake::{open, read_lake, LakeFacts};
pub use location::Location;

use crate::lake::manifest::ManifestError;
use crate::lake::storage::StorageError;
use crate::table::schema::{ColumnType, Schema};

/// `ddl --engine`'s default: Athena, the usual engine over an S3 lake.
pub const DEFAULT_ENGINE: Engine = Engine::Athena;

/// `ddl --table`'s default.
pub const DEFAULT_TABLE: &str = "audit_logs";

/// The engine the SQL is written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// Amazon Athena (S3 lakes): an external table with partition projection.
    Athena,
    /// Trino's Hive connector (S3 lakes): a table, then a partition sync.
    Trino,
    /// Spark SQL: a Parquet datasource table, then its partitions recovered.
    Spark,
    /// DuckDB: a view over read_parquet with typed Hive partitions.
    Duckdb,
    /// BigQuery (gs:// lakes): an external table with Hive partitioning.
    Bigquery,
}

impl Engine {
    fn name(self) -> &'static str {
        match self {
            Engine::Athena => "Athena",
            Engine::Trino => "Trino",
            Engine::Spark => "Spark",
            Engine::Duckdb => "DuckDB",
            Engine::Bigquery => "BigQuery",
        }
    }
}

/// Why no DDL could be printed for a lake.
#[derive(Debug, thiserror::Error)]
pub enum DdlError {
    #[error("no lake at {dest}: it has no _auditlake/subdomain=*/dataset.json (run `auditlake export` into it first)")]
    NoLake { dest: String },
    #[error("the lake at {dest} has no subdomain {subdomain:?}; it holds {found}")]
    NoSubdomain {
        dest: String,
        subdomain: String,
        found: String,
    },
    #[error("the lake at {dest} holds schema version {found} for subdomain {subdomain:?}; this auditlake describes version {code}: run the auditlake that wrote it")]
    SchemaVersion {
        dest: String,
        subdomain: String,
        found: u32,
        code: u32,
    },
    #[error("the lake at {dest} has no exported window yet, so Athena's partition projection has no first day: run an export first")]
    NoWindow { dest: String },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// A table name as the user gave it: `NAME` or `DATABASE.NAME`, each an identifier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableName {
    /// The database (schema, dataset) part, if given.
    pub database: Option<String>,
    pub name: String,
}

impl TableName {
    /// Parses `NAME` or `DATABASE.NAME`: letters, digits and `_`, not starting with a digit, so
    /// the name needs no quoting in any of the dialects.
    pub fn parse(text: &str) -> Result<TableName, String> {
        let check = |part: &str| -> Result<String, String> {
            let ok = !part.is_empty()
                && part.len() <= 128
                && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !part.as_bytes()[0].is_ascii_digit();
            if ok {
                Ok(part.to_string())
            } else {
                Err(format!(
                    "{text:?} is not a table name: give NAME or DATABASE.NAME, each of letters, digits and _, not starting with a digit"
                ))
            }
        };
        match text.split_once('.') {
            None => Ok(TableName {
                database: None,
                name: check(text)?,
            }),
            Some((database, name)) => Ok(TableName {
                database: Some(check(database)?),
                name: check(name)?,
            }),
        }
    }

    fn qualified(&self) -> String {
        match &self.database {
            Some(db) => format!("{db}.{}", self.name),
            None => self.name.clone(),
        }
    }
}

/// The partition columns, in the order of the folders.
const PARTITIONS: [(&str, PartitionType, &str); 2] = [
    (
        "subdomain",
        PartitionType::String,
        "The Zendesk subdomain (account) the record comes from: acme for acme.zendesk.com.",
    ),
    (
        "created_date",
        PartitionType::Date,
        "The UTC day of created_at (yyyy-MM-dd), not a local date; filter on it to skip whole days.",
    ),
];

#[derive(Clone, Copy)]
enum PartitionType {
    String,
    Date,
}

/// A column's SQL type in `engine`'s dialect.
fn sql_type(engine: Engine, column: ColumnType) -> &'static str {
    match column {
        ColumnType::Int64 => match engine {
            Engine::Athena => "bigint",
            Engine::Bigquery => "INT64",
            Engine::Trino | Engine::Spark | Engine::Duckdb => "BIGINT",
        },
        ColumnType::Utf8 => utf8_type(engine),
        // Hive-style catalogs have one TIMESTAMP, read as the UTC instant Parquet stores.
        ColumnType::TimestampMsUtc => match engine {
            Engine::Athena => "timestamp",
            _ => "TIMESTAMP",
        },
    }
}

fn utf8_type(engine: Engine) -> &'static str {
    match engine {
        Engine::Athena => "string",
        Engine::Spark | Engine::Bigquery => "STRING",
        Engine::Trino | Engine::Duckdb => "VARCHAR",
    }
}

fn partition_type(engine: Engine, t: PartitionType) -> &'static str {
    match (t, engine) {
        (PartitionType::String, _) => utf8_type(engine),
        (PartitionType::Date, Engine::Athena) => "date",
        (PartitionType::Date, _) => "DATE",
    }
}

/// Every stored column: (name, SQL type, doc), in the files' order.
fn columns(engine: Engine, schema: &Schema) -> Vec<(&str, &'static str, &str)> {
    schema
        .fields
        .iter()
        .map(|f| (f.name.as_str(), sql_type(engine, f.column), f.doc.as_str()))
        .chain([(
            schema.extra_column.as_str(),
            utf8_type(engine),
            schema.extra_doc.as_str(),
        )])
        .collect()
}

/// A string literal in a dialect whose strings take backslash escapes (Hive, Spark, BigQuery).
fn backslash_quoted(text: &str) -> String {
    let mut out = String::from("'");
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// A standard SQL string literal (Trino, DuckDB): a quote is doubled.
fn standard_quoted(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    format!("'{}'", clean.replace('\'', "''"))
}

fn quoted(engine: Engine, text: &str) -> String {
    match engine {
        Engine::Athena | Engine::Spark | Engine::Bigquery => backslash_quoted(text),
        Engine::Trino | Engine::Duckdb => standard_quoted(text),
    }
}

/// A comment line: a SQL `--` comment holds anything but a line break.
fn comment_line(out: &mut String, text: &str) {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let _ = writeln!(out, "-- {clean}");
}

const TABLE_COMMENT: &str = "Zendesk audit logs exported by auditlake";

/// The SQL that creates `table` over the lake's table root `root` (as
/// [`Location::table_root`] gives it) for `engine`.
pub fn sql(
    engine: Engine,
    table: &TableName,
    root: &str,
    lake: &LakeFacts,
    schema: &Schema,
) -> Result<String, DdlError> {
    let mut out = String::new();
    comment_line(
        &mut out,
        &format!(
            "{} {} over the auditlake lake at {} (schema version {}), printed by `auditlake ddl`.",
            engine.name(),
            if engine == Engine::Duckdb {
                "view"
            } else {
                "table"
            },
            lake.dest,
            schema.version
        ),
    );
    comment_line(
        &mut out,
        "created_date is the UTC day of created_at, not a local date.",
    );
    if lake.delta {
        delta::sql(&mut out, engine, table, root);
        return Ok(out);
    }
    match engine {
        Engine::Athena => athena::athena(&mut out, table, root, lake, schema)?,
        Engine::Trino => trino::trino(&mut out, table, root, schema),
        Engine::Spark => spark::spark(&mut out, table, root, schema),
        Engine::Duckdb => duckdb::duckdb(&mut out, table, root, schema),
        Engine::Bigquery => bigquery::bigquery(&mut out, table, root, schema),
    }
    Ok(out)
}

/// `  name TYPE COMMENT '...'` lines, comma-separated, for the dialects with column comments.
fn column_list(out: &mut String, engine: Engine, columns: &[(&str, &str, &str)]) {
    let last = columns.len().saturating_sub(1);
    for (i, (name, ty, doc)) in columns.iter().enumerate() {
        let comment = match engine {
            Engine::Bigquery => format!("OPTIONS (description = {})", quoted(engine, doc)),
            _ => format!("COMMENT {}", quoted(engine, doc)),
        };
        let comma = if i < last { "," } else { "" };
        let _ = writeln!(out, "  {name} {ty} {comment}{comma}");
    }
}

fn partition_columns(engine: Engine) -> Vec<(&'static str, &'static str, &'static str)> {
    PARTITIONS
        .iter()
        .map(|&(name, t, doc)| (name, partition_type(engine, t), doc))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::manifest::Manifest;
    use crate::units::time::day_of;
    use chrono::NaiveDate;
    use object_store::path::Path;

    fn facts(subdomains: &[&str], first_day: Option<&str>) -> LakeFacts {
        LakeFacts {
            dest: "s3://bucket/prefix".into(),
            subdomains: subdomains.iter().map(|s| s.to_string()).collect(),
            first_day: first_day.map(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap()),
            delta: false,
        }
    }

    #[test]
    fn a_delta_lake_is_registered_as_a_delta_table_by_every_engine() {
        let lake = LakeFacts {
            delta: true,
            ..facts(&["acme"], Some("2024-01-01"))
        };
        let root = "s3://bucket/prefix/audit_logs";
        let schema = Schema::get();
        let t = table("db.audit_logs");
        let of = |engine| sql(engine, &t, root, &lake, schema).unwrap();
        assert!(of(Engine::Athena).contains(
            "LOCATION 's3://bucket/prefix/audit_logs/'\nTBLPROPERTIES ('table_type' = 'DELTA');"
        ));
        assert!(of(Engine::Trino).contains("CALL delta.system.register_table(schema_name => 'db', table_name => 'audit_logs', table_location => 's3://bucket/prefix/audit_logs');"));
        assert!(of(Engine::Spark).contains("USING delta LOCATION 's3://bucket/prefix/audit_logs';"));
        assert!(of(Engine::Duckdb)
            .contains("SELECT * FROM delta_scan('s3://bucket/prefix/audit_logs');"));
        assert!(of(Engine::Bigquery).contains("format = 'DELTA_LAKE'"));
        for engine in [Engine::Athena, Engine::Trino, Engine::Spark, Engine::Duckdb] {
            assert!(!of(engine).contains("projection"), "{engine:?}");
        }
    }

    fn table(text: &str) -> TableName {
        TableName::parse(text).unwrap()
    }

    fn root(dest: &str, engine: Engine) -> Result<String, String> {
        Location::parse(dest).unwrap().table_root(engine)
    }

    #[test]
    fn athena_ddl_projects_every_partition_of_the_lake() {
        let lake = facts(&["acme", "beta"], Some("2024-03-01"));
        let root = root("s3://bucket/prefix/", Engine::Athena).unwrap();
        let text = sql(
            Engine::Athena,
            &table("logs.audit_logs"),
            &root,
            &lake,
            Schema::get(),
        )
        .unwrap();
        let expected = r#"-- Athena table over the auditlake lake at s3://bucket/prefix (schema version {VERSION}), printed by `auditlake ddl`.
-- created_date is the UTC day of created_at, not a local date.
-- Partition projection: Athena computes the partitions from the properties below, so no MSCK REPAIR TABLE or ADD PARTITION is ever needed.
-- A subdomain exported later is not in projection.subdomain.values: rerun `auditlake ddl` and set the new list with ALTER TABLE ... SET TBLPROPERTIES.
CREATE EXTERNAL TABLE IF NOT EXISTS logs.audit_logs (
  id bigint COMMENT 'Unique per account; the primary key. 64-bit, never routed through floating point.',
  url string COMMENT 'API URL of the record.',
  action string COMMENT 'create, destroy, exported, login, update, ... (an open set).',
  action_label string COMMENT 'Localized label of action; often absent from list responses.',
  actor_id bigint COMMENT 'Who did it; system actors may have negative ids.',
  actor_name string COMMENT 'Name of the actor.',
  change_description string COMMENT 'Free text describing the change.',
  created_at timestamp COMMENT '{CREATED_AT_DOC}',
  ip_address string COMMENT 'IP address of the actor, if known.',
  source_id bigint COMMENT 'Id of the thing changed.',
  source_label string COMMENT 'Name of the thing changed.',
  source_type string COMMENT 'user, rule, ticket, apitoken, zendesk/app_market/app, ... (an open set).',
  extra_json string COMMENT 'A JSON object holding every field of the record that this schema does not know, exactly as received; null when there is none.'
)
COMMENT 'Zendesk audit logs exported by auditlake'
PARTITIONED BY (
  subdomain string COMMENT 'The Zendesk subdomain (account) the record comes from: acme for acme.zendesk.com.',
  created_date date COMMENT 'The UTC day of created_at (yyyy-MM-dd), not a local date; filter on it to skip whole days.'
)
STORED AS PARQUET
LOCATION 's3://bucket/prefix/audit_logs/'
TBLPROPERTIES (
  'classification' = 'parquet',
  'projection.enabled' = 'true',
  'projection.subdomain.type' = 'enum',
  'projection.subdomain.values' = 'acme,beta',
  'projection.created_date.type' = 'date',
  'projection.created_date.range' = '2024-03-01,NOW',
  'projection.created_date.format' = 'yyyy-MM-dd',
  'projection.created_date.interval' = '1',
  'projection.created_date.interval.unit' = 'DAYS',
  'storage.location.template' = 's3://bucket/prefix/audit_logs/subdomain=${subdomain}/created_date=${created_date}/'
);
"#;
        // The version and created_at's doc come from the schema, which moves on by itself.
        let schema = Schema::get();
        let created_at = &schema.fields[schema.created_at_index].doc;
        let expected = expected
            .replace("{VERSION}", &schema.version.to_string())
            .replace("{CREATED_AT_DOC}", created_at);
        assert_eq!(text, expected);
    }

    #[test]
    fn every_engine_declares_every_schema_column_then_the_partitions() {
        let lake = facts(&["acme"], Some("2024-03-01"));
        let schema = Schema::get();
        for (engine, dest) in [
            (Engine::Athena, "s3://b/p"),
            (Engine::Trino, "s3://b/p"),
            (Engine::Spark, "s3://b/p"),
            (Engine::Duckdb, "/data/lake"),
            (Engine::Duckdb, "s3://b/p"),
            (Engine::Bigquery, "gs://b/p"),
        ] {
            let root = root(dest, engine).unwrap();
            let text = sql(engine, &table("audit_logs"), &root, &lake, schema).unwrap();
            let mut last = 0;
            for f in schema.fields.iter().map(|f| f.name.as_str()).chain([
                schema.extra_column.as_str(),
                "subdomain",
                "created_date",
            ]) {
                // A column opens a line of the list, or follows `(` or `, ` on one line.
                let at = [format!("\n  {f}"), format!("({f} "), format!(", {f} ")]
                    .iter()
                    .filter_map(|p| text[last..].find(p.as_str()))
                    .min()
                    .unwrap_or_else(|| panic!("{engine:?}: {f} missing or out of order:\n{text}"));
                last += at + 1;
            }
            assert!(text.contains(&root), "{engine:?}: {text}");
            assert!(text.trim_end().ends_with(';'), "{engine:?}: {text}");
            // Statements split on `;` at line ends: no comment holds one.
            for line in text.lines().filter(|l| l.starts_with("--")) {
                assert!(!line.contains(';'), "{engine:?}: {line}");
            }
        }
    }

    #[test]
    fn each_engine_gets_its_own_types_and_table_root() {
        let lake = facts(&["acme"], Some("2024-03-01"));
        let schema = Schema::get();
        let spark = sql(
            Engine::Spark,
            &table("audit_logs"),
            &root("s3://bucket/prefix", Engine::Spark).unwrap(),
            &lake,
            schema,
        )
        .unwrap();
        assert!(spark.contains("USING parquet\nPARTITIONED BY (subdomain, created_date)\nLOCATION 's3a://bucket/prefix/audit_logs'"), "{spark}");
        assert!(spark.contains("  created_at TIMESTAMP COMMENT"), "{spark}");
        assert!(spark.contains("  created_date DATE COMMENT"), "{spark}");
        assert!(spark.contains("MSCK REPAIR TABLE audit_logs;"), "{spark}");

        let trino = sql(
            Engine::Trino,
            &table("audit_logs"),
            &root("s3a://bucket/prefix", Engine::Trino).unwrap(),
            &lake,
            schema,
        )
        .unwrap();
        assert!(trino.contains("CREATE TABLE IF NOT EXISTS default.audit_logs ("));
        assert!(trino.contains("  external_location = 's3://bucket/prefix/audit_logs/',"));
        assert!(trino.contains("  partitioned_by = ARRAY['subdomain', 'created_date']"));
        assert!(trino.contains("  id BIGINT COMMENT"), "{trino}");
        assert!(trino.contains("  url VARCHAR COMMENT"), "{trino}");
        assert!(trino.contains("CALL system.sync_partition_metadata(schema_name => 'default', table_name => 'audit_logs', mode => 'FULL');"));

        let duck = sql(
            Engine::Duckdb,
            &table("audit_logs"),
            &root("/data/lake", Engine::Duckdb).unwrap(),
            &lake,
            schema,
        )
        .unwrap();
        assert!(duck.contains("CREATE OR REPLACE VIEW audit_logs AS\nSELECT\n  id, -- "));
        assert!(duck.contains("FROM read_parquet('/data/lake/audit_logs/subdomain=*/created_date=*/*.parquet', hive_partitioning = true, hive_types = {'subdomain': VARCHAR, 'created_date': DATE});"), "{duck}");
        assert!(
            !duck.contains("CREATE SECRET"),
            "a local lake needs no credentials"
        );

        let bq = sql(
            Engine::Bigquery,
            &table("ds.audit_logs"),
            &root("gs://bucket/prefix", Engine::Bigquery).unwrap(),
            &lake,
            schema,
        )
        .unwrap();
        assert!(bq.contains("CREATE OR REPLACE EXTERNAL TABLE ds.audit_logs ("));
        assert!(bq.contains("  id INT64 OPTIONS (description = "), "{bq}");
        assert!(bq.contains("WITH PARTITION COLUMNS (subdomain STRING, created_date DATE)"));
        assert!(bq.contains("  uris = ['gs://bucket/prefix/audit_logs/*'],"));
        assert!(bq.contains("  hive_partition_uri_prefix = 'gs://bucket/prefix/audit_logs',"));
    }

    #[test]
    fn locations_keep_bucket_and_prefix_with_each_engines_scheme() {
        assert_eq!(
            root("s3://b/a/b/", Engine::Athena).unwrap(),
            "s3://b/a/b/audit_logs"
        );
        assert_eq!(
            root("s3a://b", Engine::Athena).unwrap(),
            "s3://b/audit_logs"
        );
        assert_eq!(
            root("s3://b/p", Engine::Spark).unwrap(),
            "s3a://b/p/audit_logs"
        );
        assert_eq!(
            root("/data/lake", Engine::Spark).unwrap(),
            "file:/data/lake/audit_logs"
        );
        assert_eq!(
            root("file:///data/lake", Engine::Duckdb).unwrap(),
            "/data/lake/audit_logs"
        );
        assert_eq!(
            root("s3a://b/p", Engine::Duckdb).unwrap(),
            "s3://b/p/audit_logs"
        );
        assert_eq!(
            root("gs://b/p", Engine::Bigquery).unwrap(),
            "gs://b/p/audit_logs"
        );
        let relative = root("lake", Engine::Duckdb).unwrap();
        assert!(relative.starts_with('/') && relative.ends_with("/lake/audit_logs"));
    }

    #[test]
    fn engines_refuse_lakes_they_cannot_read_and_say_why() {
        let err = root("/data/lake", Engine::Athena).unwrap_err();
        assert!(err.contains("Athena reads only S3"), "{err}");
        assert!(err.contains("--engine duckdb"), "{err}");
        let err = root("gs://b/p", Engine::Trino).unwrap_err();
        assert!(err.contains("Trino reads only S3 (s3://), and the lake is on gs://"));
        let err = root("s3://b/p", Engine::Bigquery).unwrap_err();
        assert!(
            err.contains("only from Google Cloud Storage (gs://)"),
            "{err}"
        );
        assert!(err.contains("on s3://"), "{err}");
        let err = root("/data/lake", Engine::Bigquery).unwrap_err();
        assert!(err.contains("on local disk at /data/lake"), "{err}");
        let err = root("az://container/p", Engine::Spark).unwrap_err();
        assert!(err.contains("abfss://"), "{err}");
    }

    #[test]
    fn table_names_are_identifiers_optionally_qualified() {
        assert_eq!(
            table("audit_logs"),
            TableName {
                database: None,
                name: "audit_logs".into()
            }
        );
        assert_eq!(table("db_1.Logs").qualified(), "db_1.Logs");
        for bad in [
            "", "a-b", "1abc", "a.b.c", "a.", ".a", "a b", "a;drop", "x'y",
        ] {
            let err = TableName::parse(bad).unwrap_err();
            assert!(err.contains("DATABASE.NAME"), "{bad}: {err}");
        }
    }

    #[test]
    fn quotes_in_comments_are_escaped_for_each_dialect() {
        assert_eq!(backslash_quoted(r"it's a\b"), r"'it\'s a\\b'");
        assert_eq!(standard_quoted("it's"), "'it''s'");
        assert_eq!(standard_quoted("a\nb"), "'a b'");
        let mut out = String::new();
        comment_line(&mut out, "one\ntwo");
        assert_eq!(out, "-- one two\n");
    }

    #[test]
    fn athena_needs_a_first_day() {
        let lake = facts(&["acme"], None);
        let err = sql(
            Engine::Athena,
            &table("audit_logs"),
            "s3://b/audit_logs",
            &lake,
            Schema::get(),
        )
        .unwrap_err();
        assert!(matches!(err, DdlError::NoWindow { .. }), "{err}");
        // The engines that discover partitions themselves do not.
        assert!(sql(
            Engine::Duckdb,
            &table("audit_logs"),
            "/l/audit_logs",
            &lake,
            Schema::get()
        )
        .is_ok());
    }

    #[test]
    fn the_glue_input_carries_the_athena_projection() {
        let lake = facts(&["acme", "beta"], Some("2024-03-01"));
        let text = glue(
            &table("logs.audit_logs"),
            "s3://b/p/audit_logs",
            &lake,
            Schema::get(),
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["DatabaseName"], "logs");
        let t = &v["TableInput"];
        assert_eq!(t["Name"], "audit_logs");
        assert_eq!(t["TableType"], "EXTERNAL_TABLE");
        assert_eq!(t["Parameters"]["projection.subdomain.values"], "acme,beta");
        assert_eq!(
            t["Parameters"]["projection.created_date.range"],
            "2024-03-01,NOW"
        );
        assert_eq!(
            t["Parameters"]["storage.location.template"],
            "s3://b/p/audit_logs/subdomain=${subdomain}/created_date=${created_date}/"
        );
        assert_eq!(t["PartitionKeys"][1]["Type"], "date");
        assert_eq!(t["StorageDescriptor"]["Location"], "s3://b/p/audit_logs/");
        assert_eq!(
            t["StorageDescriptor"]["Columns"].as_array().unwrap().len(),
            Schema::get().fields.len() + 1
        );
    }

    #[tokio::test]
    async fn the_lake_is_read_for_its_subdomains_and_first_day() {
        use crate::lake::manifest::{Dataset, WindowRecord};
        use crate::plan::window::{Grid, Window};
        use crate::zendesk::Filters;
        let (_dir, lake) = crate::lake::storage::temp_lake();
        let err = read_lake(&lake, None).await.unwrap_err();
        assert!(matches!(err, DdlError::NoLake { .. }), "{err}");
        for (sub, start) in [("acme", 1_709_337_600), ("beta", 1_709_251_200)] {
            let m = Manifest::new(lake.clone(), sub);
            m.pin(&Dataset::new(sub, Grid::DAILY, &Filters::default()))
                .await
                .unwrap();
            let w = Window {
                start,
                end: start + 86_400,
            };
            m.commit(&w, &WindowRecord::new(&w, vec![])).await.unwrap();
        }
        let all = read_lake(&lake, None).await.unwrap();
        assert_eq!(all.subdomains, ["acme", "beta"]);
        assert_eq!(all.first_day, Some(day_of(1_709_251_200)));
        let acme = read_lake(&lake, Some("acme")).await.unwrap();
        assert_eq!(acme.subdomains, ["acme"]);
        assert_eq!(acme.first_day, Some(day_of(1_709_337_600)));
        let err = read_lake(&lake, Some("gamma")).await.unwrap_err();
        assert!(err.to_string().contains("it holds acme, beta"), "{err}");
        // Data where auditlake 0.1 put it is refused, never silently left out of the table.
        lake.write(
            &Path::from("subdomain=beta/created_date=2024-03-01/part-20240301T0000Z-0.parquet"),
            bytes::Bytes::from_static(b"PAR1"),
        )
        .await
        .unwrap();
        let err = read_lake(&lake, None).await.unwrap_err();
        assert!(
            matches!(err, DdlError::Manifest(ManifestError::Legacy { .. })),
            "{err}"
        );
        assert!(err.to_string().contains("an auditlake 0.1 table"), "{err}");
    }
}
