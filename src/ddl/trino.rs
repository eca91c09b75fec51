//! Trino's Hive connector: a table, then a partition sync to rerun after exports.

use std::fmt::Write as _;

use super::{
    column_list, columns, comment_line, partition_columns, quoted, Engine, TableName, PARTITIONS,
    TABLE_COMMENT,
};
use crate::table::schema::Schema;

/// The Hive metastore schema Trino's sync procedure needs; Trino's `CALL` takes it by name.
const TRINO_DEFAULT_SCHEMA: &str = "default";

pub(super) fn trino(out: &mut String, table: &TableName, root: &str, schema: &Schema) {
    let engine = Engine::Trino;
    let database = table.database.as_deref().unwrap_or(TRINO_DEFAULT_SCHEMA);
    comment_line(
        out,
        "Trino's Hive connector, in the schema of the table name (--table SCHEMA.NAME), else default. The partition columns come last, as the connector requires.",
    );
    let _ = writeln!(
        out,
        "CREATE TABLE IF NOT EXISTS {database}.{} (",
        table.name
    );
    let mut all = columns(engine, schema);
    all.extend(partition_columns(engine));
    column_list(out, engine, &all);
    let _ = writeln!(out, ")");
    let _ = writeln!(out, "COMMENT {}", quoted(engine, TABLE_COMMENT));
    let _ = writeln!(out, "WITH (");
    let _ = writeln!(
        out,
        "  external_location = {},",
        quoted(engine, &format!("{root}/"))
    );
    let _ = writeln!(out, "  format = 'PARQUET',");
    let names: Vec<String> = PARTITIONS
        .iter()
        .map(|(n, _, _)| quoted(engine, n))
        .collect();
    let _ = writeln!(out, "  partitioned_by = ARRAY[{}]", names.join(", "));
    let _ = writeln!(out, ");");
    comment_line(
        out,
        "Registers the partitions in the metastore: rerun this after each export (FULL also forgets partitions that are gone).",
    );
    let _ = writeln!(
        out,
        "CALL system.sync_partition_metadata(schema_name => {}, table_name => {}, mode => 'FULL');",
        quoted(engine, database),
        quoted(engine, &table.name)
    );
}
