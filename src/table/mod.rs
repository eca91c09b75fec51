//! Table: records become rows of the declared schema, then Parquet part files.
//!
//! [`schema`] loads the schema declared in `schemas/` (never inferred); `decode` turns API pages
//! into its rows; `route` keeps exactly a window's records, once each, and sends them to the
//! part file of their UTC day; `encode` writes one sorted Parquet part to a local temporary file.
//! Nothing here touches the network or the lake.

pub(crate) mod decode;
pub(crate) mod encode;
pub mod erase;
pub(crate) mod route;
pub mod schema;
