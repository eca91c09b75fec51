//! Spark SQL: a Parquet datasource table (its Hive Parquet serde cannot read INT64 timestamps),
//! then its partitions recovered.

use std::fmt::Write as _;

use super::{
    column_list, columns, comment_line, partition_columns, quoted, Engine, TableName, PARTITIONS,
    TABLE_COMMENT,
};
use crate::table::schema::Schema;

pub(super) fn spark(out: &mut String, table: &TableName, root: &str, schema: &Schema) {
    let engine = Engine::Spark;
    comment_line(out, "A Parquet datasource table (USING parquet): Hive's Parquet serde cannot read the INT64 timestamps of created_at.");
    if let Some(database) = &table.database {
        let _ = writeln!(out, "CREATE DATABASE IF NOT EXISTS {database};");
    }
    let _ = writeln!(out, "CREATE TABLE IF NOT EXISTS {} (", table.qualified());
    let mut all = columns(engine, schema);
    all.extend(partition_columns(engine));
    column_list(out, engine, &all);
    let _ = writeln!(out, ")");
    let _ = writeln!(out, "USING parquet");
    let names: Vec<&str> = PARTITIONS.iter().map(|(n, _, _)| *n).collect();
    let _ = writeln!(out, "PARTITIONED BY ({})", names.join(", "));
    let _ = writeln!(out, "LOCATION {}", quoted(engine, root));
    let _ = writeln!(out, "COMMENT {};", quoted(engine, TABLE_COMMENT));
    comment_line(
        out,
        "A table created over existing files has no partitions in the catalog until they are recovered: rerun this after each export.",
    );
    let _ = writeln!(out, "MSCK REPAIR TABLE {};", table.qualified());
}
