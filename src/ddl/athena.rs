//! Amazon Athena: an external table with partition projection (no `MSCK REPAIR`, ever), as
//! SQL or as the input of `aws glue create-table`.

use std::fmt::Write as _;

use chrono::NaiveDate;

use super::{
    column_list, columns, comment_line, partition_columns, quoted, DdlError, Engine, LakeFacts,
    TableName, TABLE_COMMENT,
};
use crate::table::schema::Schema;

pub(super) fn athena(
    out: &mut String,
    table: &TableName,
    root: &str,
    lake: &LakeFacts,
    schema: &Schema,
) -> Result<(), DdlError> {
    let engine = Engine::Athena;
    let first_day = lake.first_day.ok_or_else(|| DdlError::NoWindow {
        dest: lake.dest.clone(),
    })?;
    comment_line(out, "Partition projection: Athena computes the partitions from the properties below, so no MSCK REPAIR TABLE or ADD PARTITION is ever needed.");
    comment_line(out, "A subdomain exported later is not in projection.subdomain.values: rerun `auditlake ddl` and set the new list with ALTER TABLE ... SET TBLPROPERTIES.");
    let _ = writeln!(
        out,
        "CREATE EXTERNAL TABLE IF NOT EXISTS {} (",
        table.qualified()
    );
    column_list(out, engine, &columns(engine, schema));
    let _ = writeln!(out, ")");
    let _ = writeln!(out, "COMMENT {}", quoted(engine, TABLE_COMMENT));
    let _ = writeln!(out, "PARTITIONED BY (");
    column_list(out, engine, &partition_columns(engine));
    let _ = writeln!(out, ")");
    let _ = writeln!(out, "STORED AS PARQUET");
    let _ = writeln!(out, "LOCATION {}", quoted(engine, &format!("{root}/")));
    let _ = writeln!(out, "TBLPROPERTIES (");
    let properties = athena_properties(root, lake, first_day);
    let last = properties.len() - 1;
    for (i, (key, value)) in properties.iter().enumerate() {
        let comma = if i < last { "," } else { "" };
        let _ = writeln!(
            out,
            "  {} = {}{comma}",
            quoted(engine, key),
            quoted(engine, value)
        );
    }
    let _ = writeln!(out, ");");
    Ok(())
}

/// The table properties of Athena's partition projection (also the Glue table's parameters).
fn athena_properties(
    root: &str,
    lake: &LakeFacts,
    first_day: NaiveDate,
) -> Vec<(&'static str, String)> {
    vec![
        ("classification", "parquet".to_string()),
        ("projection.enabled", "true".to_string()),
        ("projection.subdomain.type", "enum".to_string()),
        ("projection.subdomain.values", lake.subdomains.join(",")),
        ("projection.created_date.type", "date".to_string()),
        (
            "projection.created_date.range",
            format!("{},NOW", first_day.format("%Y-%m-%d")),
        ),
        ("projection.created_date.format", "yyyy-MM-dd".to_string()),
        ("projection.created_date.interval", "1".to_string()),
        ("projection.created_date.interval.unit", "DAYS".to_string()),
        (
            "storage.location.template",
            format!("{root}/subdomain=${{subdomain}}/created_date=${{created_date}}/"),
        ),
    ]
}

/// The Athena table as the input of `aws glue create-table --cli-input-json file://FILE`: the
/// same columns, location and partition projection as [`super::sql`] for Athena, as JSON.
pub fn glue(
    table: &TableName,
    root: &str,
    lake: &LakeFacts,
    schema: &Schema,
) -> Result<String, DdlError> {
    use serde_json::{json, Map, Value};
    let engine = Engine::Athena;
    let first_day = lake.first_day.ok_or_else(|| DdlError::NoWindow {
        dest: lake.dest.clone(),
    })?;
    let column =
        |(name, ty, doc): &(&str, &str, &str)| json!({ "Name": name, "Type": ty, "Comment": doc });
    let mut parameters = Map::new();
    parameters.insert("EXTERNAL".into(), Value::from("TRUE"));
    for (key, value) in athena_properties(root, lake, first_day) {
        parameters.insert(key.into(), Value::from(value));
    }
    let input = json!({
        "DatabaseName": table.database.as_deref().unwrap_or("default"),
        "TableInput": {
            "Name": table.name,
            "Description": TABLE_COMMENT,
            "TableType": "EXTERNAL_TABLE",
            "Parameters": parameters,
            "PartitionKeys": partition_columns(engine).iter().map(column).collect::<Vec<_>>(),
            "StorageDescriptor": {
                "Columns": columns(engine, schema).iter().map(column).collect::<Vec<_>>(),
                "Location": format!("{root}/"),
                "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
                "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
                "SerdeInfo": {
                    "SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
                    "Parameters": { "serialization.format": "1" }
                }
            }
        }
    });
    let mut text = serde_json::to_string_pretty(&input).expect("plain data serializes");
    text.push('\n');
    Ok(text)
}
