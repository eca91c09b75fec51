//! BigQuery: an external table with Hive partitioning.

use std::fmt::Write as _;

use super::{
    column_list, columns, comment_line, partition_columns, quoted, Engine, TableName, TABLE_COMMENT,
};
use crate::table::schema::Schema;

pub(super) fn bigquery(out: &mut String, table: &TableName, root: &str, schema: &Schema) {
    let engine = Engine::Bigquery;
    comment_line(
        out,
        "BigQuery discovers the partitions from the folders at each query: nothing to rerun after an export.",
    );
    let _ = writeln!(
        out,
        "CREATE OR REPLACE EXTERNAL TABLE {} (",
        table.qualified()
    );
    column_list(out, engine, &columns(engine, schema));
    let _ = writeln!(out, ")");
    let partitions: Vec<String> = partition_columns(engine)
        .iter()
        .map(|(n, t, _)| format!("{n} {t}"))
        .collect();
    let _ = writeln!(out, "WITH PARTITION COLUMNS ({})", partitions.join(", "));
    let _ = writeln!(out, "OPTIONS (");
    let _ = writeln!(out, "  format = 'PARQUET',");
    let _ = writeln!(out, "  uris = [{}],", quoted(engine, &format!("{root}/*")));
    let _ = writeln!(
        out,
        "  hive_partition_uri_prefix = {},",
        quoted(engine, root)
    );
    let _ = writeln!(out, "  description = {}", quoted(engine, TABLE_COMMENT));
    let _ = writeln!(out, ");");
}
