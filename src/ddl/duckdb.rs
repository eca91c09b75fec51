//! DuckDB: a view over `read_parquet` with typed Hive partitions.

use std::fmt::Write as _;

use super::{
    columns, comment_line, partition_columns, partition_type, quoted, Engine, TableName, PARTITIONS,
};
use crate::table::schema::Schema;

pub(super) fn duckdb(out: &mut String, table: &TableName, root: &str, schema: &Schema) {
    let engine = Engine::Duckdb;
    if !root.starts_with('/') {
        comment_line(out, "Object storage needs DuckDB's httpfs (or azure) extension and credentials, e.g. CREATE SECRET (TYPE s3, PROVIDER credential_chain), first.");
    }
    if let Some(database) = &table.database {
        let _ = writeln!(out, "CREATE SCHEMA IF NOT EXISTS {database};");
    }
    let _ = writeln!(out, "CREATE OR REPLACE VIEW {} AS", table.qualified());
    let _ = writeln!(out, "SELECT");
    let mut all = columns(engine, schema);
    all.extend(partition_columns(engine));
    let last = all.len() - 1;
    for (i, (name, _, doc)) in all.iter().enumerate() {
        let comma = if i < last { "," } else { "" };
        let _ = write!(out, "  {name}{comma} ");
        comment_line(out, doc);
    }
    let types: Vec<String> = PARTITIONS
        .iter()
        .map(|&(n, t, _)| format!("{}: {}", quoted(engine, n), partition_type(engine, t)))
        .collect();
    let _ = writeln!(
        out,
        "FROM read_parquet({}, hive_partitioning = true, hive_types = {{{}}});",
        quoted(
            engine,
            &format!("{root}/subdomain=*/created_date=*/*.parquet")
        ),
        types.join(", ")
    );
}
