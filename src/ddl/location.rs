//! Where the lake is, as `ddl` names it to an engine: a local directory or an object-store URL.

use std::path::PathBuf;

use super::Engine;
use crate::lake::layout;

/// Where the lake is: the destination as given, a local directory or an object-store URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// An absolute local path (made absolute without touching the disk).
    Local(PathBuf),
    /// An object store: its scheme (`s3`, `gs`, ...) and the rest (`bucket/prefix`).
    Remote { scheme: String, rest: String },
}

impl Location {
    /// Reads a destination as `export` takes it: a local path, `file://` or an object-store URL.
    pub fn parse(dest: &str) -> Result<Location, String> {
        if dest.starts_with("file://") {
            let url = url::Url::parse(dest).map_err(|e| format!("{dest:?}: {e}"))?;
            let path = url
                .to_file_path()
                .map_err(|()| format!("{dest:?} is not a local file path"))?;
            return Ok(Location::Local(path));
        }
        if let Some((scheme, rest)) = dest.split_once("://") {
            let rest = rest.trim_end_matches('/');
            if rest.is_empty() {
                return Err(format!("{dest:?} names no bucket"));
            }
            return Ok(Location::Remote {
                scheme: scheme.to_ascii_lowercase(),
                rest: rest.to_string(),
            });
        }
        let path = std::path::absolute(dest).map_err(|e| format!("{dest:?}: {e}"))?;
        Ok(Location::Local(path))
    }

    /// The table root as `engine` names it, without a trailing slash, or why `engine` cannot
    /// read a lake stored here.
    pub fn table_root(&self, engine: Engine) -> Result<String, String> {
        let local = |prefix: &str, path: &PathBuf| -> Result<String, String> {
            let root = path.join(layout::TABLE_DIR);
            let text = root
                .to_str()
                .ok_or_else(|| format!("{} is not valid UTF-8", root.display()))?;
            Ok(format!("{prefix}{text}"))
        };
        let remote = |scheme: &str, rest: &str| format!("{scheme}://{rest}/{}", layout::TABLE_DIR);
        let name = engine.name();
        match (engine, self) {
            (Engine::Athena | Engine::Trino, Location::Local(path)) => Err(format!(
                "{name} reads only S3, and the lake at {} is on local disk: export to s3://BUCKET/PREFIX, or use --engine duckdb or --engine spark for a local lake",
                path.display()
            )),
            (Engine::Athena | Engine::Trino, Location::Remote { scheme, rest }) => {
                match scheme.as_str() {
                    "s3" | "s3a" => Ok(remote("s3", rest)),
                    other => Err(format!(
                        "{name} reads only S3 (s3://), and the lake is on {other}://"
                    )),
                }
            }
            // Spark's own URI for a local file; a bare path would be resolved against the
            // session's default file system, which may be HDFS.
            (Engine::Spark, Location::Local(path)) => local("file:", path),
            (Engine::Spark, Location::Remote { scheme, rest }) => match scheme.as_str() {
                // Hadoop's S3 connector is s3a://; s3:// has no file system in stock Spark.
                "s3" | "s3a" => Ok(remote("s3a", rest)),
                "gs" | "abfs" | "abfss" => Ok(remote(scheme, rest)),
                other => Err(format!(
                    "Spark cannot name the lake at {other}://{rest}: for Azure it needs abfss://CONTAINER@ACCOUNT.dfs.core.windows.net/PREFIX, which says the account"
                )),
            },
            (Engine::Duckdb, Location::Local(path)) => local("", path),
            (Engine::Duckdb, Location::Remote { scheme, rest }) => match scheme.as_str() {
                "s3" | "s3a" => Ok(remote("s3", rest)),
                _ => Ok(remote(scheme, rest)),
            },
            (Engine::Bigquery, Location::Remote { scheme, rest }) if scheme == "gs" => {
                Ok(remote("gs", rest))
            }
            (Engine::Bigquery, lake) => Err(format!(
                "BigQuery reads external tables only from Google Cloud Storage (gs://), and the lake is {}",
                match lake {
                    Location::Local(path) => format!("on local disk at {}", path.display()),
                    Location::Remote { scheme, .. } => format!("on {scheme}://"),
                }
            )),
        }
    }
}
