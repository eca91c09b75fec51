//! `ddl` for a lake in table format `delta`: each engine registers the Delta table at the table
//! root, which carries its own schema and partitions (nothing to project, repair or sync after an
//! export: each engine reads the log's latest version).

use std::fmt::Write as _;

use super::{comment_line, quoted, Engine, TableName, TABLE_COMMENT};

/// The statement that registers the Delta table at `root` as `table` for `engine`.
pub(super) fn sql(out: &mut String, engine: Engine, table: &TableName, root: &str) {
    comment_line(
        out,
        "A Delta table: its log (audit_logs/_delta_log/) holds the schema, the partitions and every commit.",
    );
    let name = table.qualified();
    let location = quoted(engine, root);
    match engine {
        Engine::Athena => {
            comment_line(
                out,
                "Athena engine version 3 reads Delta Lake tables natively.",
            );
            let _ = writeln!(out, "CREATE EXTERNAL TABLE {name}");
            let _ = writeln!(out, "LOCATION {}", quoted(engine, &format!("{root}/")));
            let _ = writeln!(out, "TBLPROPERTIES ('table_type' = 'DELTA');");
        }
        Engine::Trino => {
            comment_line(out, "A catalog of the Delta Lake connector (here: delta).");
            let schema = table.database.as_deref().unwrap_or("default");
            let _ = writeln!(
                out,
                "CALL delta.system.register_table(schema_name => {}, table_name => {}, table_location => {location});",
                quoted(engine, schema),
                quoted(engine, &table.name)
            );
        }
        Engine::Spark => {
            comment_line(
                out,
                "Needs the delta-spark package (io.delta:delta-spark) on the session.",
            );
            let _ = writeln!(
                out,
                "CREATE TABLE IF NOT EXISTS {name} USING delta LOCATION {location};"
            );
        }
        Engine::Duckdb => {
            comment_line(
                out,
                "Needs DuckDB's delta extension (INSTALL delta; or the duckdb-ext-delta wheel), then LOAD delta.",
            );
            if let Some(database) = &table.database {
                let _ = writeln!(out, "CREATE SCHEMA IF NOT EXISTS {database};");
            }
            let _ = writeln!(out, "LOAD delta;");
            let _ = writeln!(
                out,
                "CREATE OR REPLACE VIEW {name} AS SELECT * FROM delta_scan({location});"
            );
        }
        Engine::Bigquery => {
            let _ = writeln!(out, "CREATE OR REPLACE EXTERNAL TABLE {name}");
            let _ = writeln!(out, "OPTIONS (");
            let _ = writeln!(out, "  format = 'DELTA_LAKE',");
            let _ = writeln!(out, "  uris = [{location}],");
            let _ = writeln!(out, "  description = {}", quoted(engine, TABLE_COMMENT));
            let _ = writeln!(out, ");");
        }
    }
}
