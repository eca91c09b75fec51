//! The lake's schema, declared in `schemas/audit_log.v2.json` and never inferred.
//!
//! The file is compiled into the binary and parsed once; the Arrow schema, the decoder's column
//! list and the `verify --deep` schema check all come from it. The code depends on a few facts about it (an `id`
//! int64 key, a `created_at` timestamp, an extra-fields JSON column); [`Schema::load`] checks them,
//! so code and file cannot drift apart silently.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use arrow::datatypes::{DataType, Field, Schema as ArrowSchema, TimeUnit};
use serde::Deserialize;

/// The schema file's text, as compiled in.
pub const SCHEMA_JSON: &str = include_str!("../../schemas/audit_log.v2.json");

/// The version the code is written for; it is pinned in each dataset's `dataset.json` and named in
/// every part file's key-value metadata, so a lake never mixes versions. Version 1 (auditlake
/// 0.1) kept the table at the destination's root with microsecond `created_at`.
pub const SCHEMA_VERSION: u32 = 2;

/// The time zone written on `created_at`: every engine reads `"UTC"` as an instant.
pub const TIMEZONE: &str = "UTC";

/// The JSON type the API sends for a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JsonType {
    Integer,
    String,
}

/// The column type a field is stored as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    Int64,
    Utf8,
    /// `Timestamp(Millisecond, "UTC")`: Athena and Glue read only millisecond precision, and
    /// every other engine reads milliseconds too; the API's values are whole seconds.
    TimestampMsUtc,
}

impl ColumnType {
    fn arrow(self) -> DataType {
        match self {
            ColumnType::Int64 => DataType::Int64,
            ColumnType::Utf8 => DataType::Utf8,
            ColumnType::TimestampMsUtc => {
                DataType::Timestamp(TimeUnit::Millisecond, Some(TIMEZONE.into()))
            }
        }
    }
}

/// One documented field of a record.
#[derive(Clone, Debug, Deserialize)]
pub struct FieldSpec {
    pub name: String,
    pub json: JsonType,
    #[serde(rename = "type")]
    pub column: ColumnType,
    pub nullable: bool,
    pub doc: String,
}

#[derive(Clone, Debug, Deserialize)]
struct ExtraSpec {
    name: String,
    doc: String,
}

#[derive(Debug, Deserialize)]
struct SchemaFile {
    version: u32,
    fields: Vec<FieldSpec>,
    extra_column: ExtraSpec,
}

/// Why the schema file does not fit the code.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("schema file does not parse: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("schema file is version {file}, the code is written for version {code}")]
    Version { file: u32, code: u32 },
    #[error("schema file: {0}")]
    Shape(String),
}

/// The validated schema: documented fields, their positions and the Arrow schema.
#[derive(Debug)]
pub struct Schema {
    pub version: u32,
    pub fields: Vec<FieldSpec>,
    pub extra_column: String,
    pub extra_doc: String,
    /// Position of `id` among `fields`.
    pub id_index: usize,
    /// Position of `created_at` among `fields`.
    pub created_at_index: usize,
    by_name: HashMap<String, usize>,
    arrow: Arc<ArrowSchema>,
}

impl Schema {
    /// The compiled-in schema. Its validity is a unit test, so this cannot fail in a release.
    pub fn get() -> &'static Schema {
        static SCHEMA: OnceLock<Schema> = OnceLock::new();
        SCHEMA.get_or_init(|| {
            Schema::load(SCHEMA_JSON).expect("the compiled-in schema file is checked by tests")
        })
    }

    /// Parses and checks a schema file against what the code relies on.
    pub fn load(text: &str) -> Result<Schema, SchemaError> {
        let file: SchemaFile = serde_json::from_str(text)?;
        if file.version != SCHEMA_VERSION {
            return Err(SchemaError::Version {
                file: file.version,
                code: SCHEMA_VERSION,
            });
        }
        let shape = |msg: String| SchemaError::Shape(msg);
        let mut by_name = HashMap::new();
        for (i, f) in file.fields.iter().enumerate() {
            if by_name.insert(f.name.clone(), i).is_some() {
                return Err(shape(format!("field {:?} is declared twice", f.name)));
            }
            let fits = matches!(
                (f.json, f.column),
                (JsonType::Integer, ColumnType::Int64)
                    | (JsonType::String, ColumnType::Utf8)
                    | (JsonType::String, ColumnType::TimestampMsUtc)
            );
            if !fits {
                return Err(shape(format!(
                    "field {:?}: JSON {:?} cannot be stored as {:?}",
                    f.name, f.json, f.column
                )));
            }
        }
        let required = |name: &str, column: ColumnType| -> Result<usize, SchemaError> {
            let i = *by_name
                .get(name)
                .ok_or_else(|| shape(format!("the code needs a field {name:?}")))?;
            let f = &file.fields[i];
            if f.column != column || f.nullable {
                return Err(shape(format!(
                    "field {name:?} must be a non-null {column:?}: the code sorts, deduplicates and partitions on it"
                )));
            }
            Ok(i)
        };
        let id_index = required("id", ColumnType::Int64)?;
        let created_at_index = required("created_at", ColumnType::TimestampMsUtc)?;
        if by_name.contains_key(&file.extra_column.name) {
            return Err(shape(format!(
                "the extra column {:?} clashes with a field",
                file.extra_column.name
            )));
        }
        let mut columns: Vec<Field> = file
            .fields
            .iter()
            .map(|f| Field::new(&f.name, f.column.arrow(), f.nullable))
            .collect();
        columns.push(Field::new(&file.extra_column.name, DataType::Utf8, true));
        Ok(Schema {
            version: file.version,
            arrow: Arc::new(ArrowSchema::new(columns)),
            fields: file.fields,
            extra_column: file.extra_column.name,
            extra_doc: file.extra_column.doc,
            id_index,
            created_at_index,
            by_name,
        })
    }

    /// Every column in file order, the extra column last: name, type, whether it may be null.
    pub fn columns(&self) -> impl Iterator<Item = (&str, ColumnType, bool)> {
        self.fields
            .iter()
            .map(|f| (f.name.as_str(), f.column, f.nullable))
            .chain(std::iter::once((
                self.extra_column.as_str(),
                ColumnType::Utf8,
                true,
            )))
    }

    /// The Arrow schema of every file in the lake.
    pub fn arrow(&self) -> &Arc<ArrowSchema> {
        &self.arrow
    }

    /// The position of a documented field, if the schema knows it.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compiled_in_schema_fits_the_code() {
        let schema = Schema::load(SCHEMA_JSON).unwrap();
        assert_eq!(schema.version, SCHEMA_VERSION);
        let names: Vec<&str> = schema.fields.iter().map(|f| f.name.as_str()).collect();
        // The 12 documented fields of the audit-log record, in the API's order.
        assert_eq!(
            names,
            [
                "id",
                "url",
                "action",
                "action_label",
                "actor_id",
                "actor_name",
                "change_description",
                "created_at",
                "ip_address",
                "source_id",
                "source_label",
                "source_type"
            ]
        );
        let arrow = schema.arrow();
        assert_eq!(arrow.fields().len(), 13);
        assert_eq!(
            arrow.field_with_name("id").unwrap().data_type(),
            &DataType::Int64
        );
        assert_eq!(
            arrow.field_with_name("actor_id").unwrap().data_type(),
            &DataType::Int64
        );
        assert_eq!(
            arrow.field_with_name("source_id").unwrap().data_type(),
            &DataType::Int64
        );
        assert_eq!(
            arrow.field_with_name("created_at").unwrap().data_type(),
            &DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
        );
        assert_eq!(
            arrow.field_with_name("extra_json").unwrap().data_type(),
            &DataType::Utf8
        );
    }

    #[test]
    fn a_schema_without_the_key_is_refused() {
        let text = SCHEMA_JSON.replace("\"name\": \"id\"", "\"name\": \"key\"");
        let err = Schema::load(&text).unwrap_err().to_string();
        assert!(err.contains("\"id\""), "{err}");
    }

    #[test]
    fn a_schema_of_another_version_is_refused() {
        let text = SCHEMA_JSON.replace("\"version\": 2", "\"version\": 3");
        assert!(matches!(
            Schema::load(&text),
            Err(SchemaError::Version { file: 3, code: 2 })
        ));
    }

    #[test]
    fn a_type_the_code_cannot_store_is_refused() {
        let text = SCHEMA_JSON.replace(
            "\"name\": \"actor_id\", \"json\": \"integer\"",
            "\"name\": \"actor_id\", \"json\": \"string\"",
        );
        assert!(Schema::load(&text).is_err());
    }
}
