//! The command line's own value enums: what clap parses and `--help` lists, each mapped onto
//! the stage type it sets. The stages derive no clap trait; their names for the same choices
//! live beside the types they configure.

use clap::ValueEnum;

use crate::ddl::Engine;
use crate::lake::manifest::TableFormat;
use crate::zendesk::Pagination;

/// `--table-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TableFormatArg {
    /// Hive-partitioned Parquet: every engine opens the table root with default options.
    Parquet,
    /// The same files, plus a Delta Lake transaction log at the table root.
    Delta,
}

impl From<TableFormat> for TableFormatArg {
    fn from(format: TableFormat) -> Self {
        match format {
            TableFormat::Parquet => TableFormatArg::Parquet,
            TableFormat::Delta => TableFormatArg::Delta,
        }
    }
}

impl From<TableFormatArg> for TableFormat {
    fn from(arg: TableFormatArg) -> Self {
        match arg {
            TableFormatArg::Parquet => TableFormat::Parquet,
            TableFormatArg::Delta => TableFormat::Delta,
        }
    }
}

/// `--pagination`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PaginationArg {
    /// `page[size]` and `page[after]`: no depth limit, stable under concurrent inserts.
    Cursor,
    /// `page` and `per_page`: at most 10,000 records per query, rows shift when data changes.
    Offset,
}

impl From<Pagination> for PaginationArg {
    fn from(pagination: Pagination) -> Self {
        match pagination {
            Pagination::Cursor => PaginationArg::Cursor,
            Pagination::Offset => PaginationArg::Offset,
        }
    }
}

impl From<PaginationArg> for Pagination {
    fn from(arg: PaginationArg) -> Self {
        match arg {
            PaginationArg::Cursor => Pagination::Cursor,
            PaginationArg::Offset => Pagination::Offset,
        }
    }
}

/// `ddl --engine`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EngineArg {
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

impl EngineArg {
    /// The engine's name as the flag takes it (`athena`, ...).
    pub fn flag_value(self) -> String {
        self.to_possible_value()
            .map(|v| v.get_name().to_string())
            .unwrap_or_default()
    }
}

impl From<Engine> for EngineArg {
    fn from(engine: Engine) -> Self {
        match engine {
            Engine::Athena => EngineArg::Athena,
            Engine::Trino => EngineArg::Trino,
            Engine::Spark => EngineArg::Spark,
            Engine::Duckdb => EngineArg::Duckdb,
            Engine::Bigquery => EngineArg::Bigquery,
        }
    }
}

impl From<EngineArg> for Engine {
    fn from(arg: EngineArg) -> Self {
        match arg {
            EngineArg::Athena => Engine::Athena,
            EngineArg::Trino => Engine::Trino,
            EngineArg::Spark => Engine::Spark,
            EngineArg::Duckdb => Engine::Duckdb,
            EngineArg::Bigquery => Engine::Bigquery,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_choice_maps_onto_its_stage_type_and_back() {
        for arg in TableFormatArg::value_variants() {
            assert_eq!(TableFormatArg::from(TableFormat::from(*arg)), *arg);
        }
        for arg in PaginationArg::value_variants() {
            assert_eq!(PaginationArg::from(Pagination::from(*arg)), *arg);
        }
        for arg in EngineArg::value_variants() {
            assert_eq!(EngineArg::from(Engine::from(*arg)), *arg);
        }
        // The stages' defaults are the flags' defaults.
        assert_eq!(
            TableFormatArg::from(TableFormat::default()),
            TableFormatArg::Parquet
        );
        assert_eq!(
            PaginationArg::from(Pagination::default()),
            PaginationArg::Cursor
        );
    }
}
