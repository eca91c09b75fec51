//! The lake's storage: a destination opened from a path or URL through `object_store`, and the
//! few operations the exporter needs on it (upload a finished file, read and write small JSON
//! documents, create-if-absent, list, delete).
//!
//! Local paths go through `object_store` too, so local disk and object stores share one code path.

pub mod layout;
pub mod part_file;

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use tokio::io::AsyncWriteExt;

/// Bytes buffered per upload before it switches to a multipart upload: bounds the memory of each
/// upload in flight, whatever the file's size.
const UPLOAD_BUFFER: usize = 8 << 20;

/// Parts of one multipart upload sent at once.
const UPLOAD_CONCURRENCY: usize = 2;

/// What went wrong with the destination.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("destination {dest:?}: {reason}")]
    Open { dest: String, reason: String },
    #[error("{op} {path}: {source}")]
    Store {
        op: &'static str,
        path: String,
        #[source]
        source: object_store::Error,
    },
    #[error("reading temporary file for {path}: {source}")]
    Local {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Whether a create-if-absent write created the object or found it there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    Created,
    AlreadyExisted,
}

/// An opened destination: the lake's root.
#[derive(Clone, Debug)]
pub struct Lake {
    store: Arc<dyn ObjectStore>,
    display: String,
}

impl Lake {
    /// Opens a destination given as a local path or a `file://` URL. The directory is created if
    /// needed.
    pub fn open(dest: &str) -> Result<Lake, StorageError> {
        let open_err = |reason: String| StorageError::Open {
            dest: dest.to_string(),
            reason,
        };
        let local = if let Some(rest) = dest.strip_prefix("file://") {
            let url = url::Url::parse(dest).map_err(|e| open_err(e.to_string()))?;
            if !matches!(url.host_str(), None | Some("") | Some("localhost")) {
                return Err(open_err(format!(
                    "file URLs name a local path, not a host ({rest})"
                )));
            }
            url.to_file_path()
                .map_err(|()| open_err("not a local file path".to_string()))?
        } else if let Some((scheme, _)) = dest.split_once("://") {
            return Err(open_err(format!(
                "the {scheme}:// scheme is not supported; give a local path or a file:// URL"
            )));
        } else {
            std::path::PathBuf::from(dest)
        };
        std::fs::create_dir_all(&local)
            .map_err(|e| open_err(format!("cannot create directory: {e}")))?;
        let root = std::fs::canonicalize(&local).map_err(|e| open_err(e.to_string()))?;
        let store = LocalFileSystem::new_with_prefix(&root)
            .map_err(|e| open_err(e.to_string()))?
            // Removing the last file of a partition removes its folder: no empty partitions.
            .with_automatic_cleanup(true);
        Ok(Lake {
            store: Arc::new(store),
            display: root.display().to_string(),
        })
    }

    /// Wraps an already configured store (for tests and other back ends).
    pub fn from_store(store: Arc<dyn ObjectStore>, display: impl Into<String>) -> Lake {
        Lake {
            store,
            display: display.into(),
        }
    }

    /// The destination for messages.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// Streams a finished local file to `path`, replacing any object there. Large files go up as
    /// multipart uploads; a failed upload is aborted so it leaves no parts behind.
    pub async fn upload_file(&self, path: &Path, file: std::fs::File) -> Result<(), StorageError> {
        let mut reader = tokio::fs::File::from_std(file);
        let mut writer = BufWriter::with_capacity(self.store.clone(), path.clone(), UPLOAD_BUFFER)
            .with_max_concurrency(UPLOAD_CONCURRENCY);
        let copied = async {
            tokio::io::copy(&mut reader, &mut writer).await?;
            writer.shutdown().await
        }
        .await;
        if let Err(source) = copied {
            // Best effort: the upload already failed; the abort only frees staged parts.
            let _ = writer.abort().await;
            return Err(StorageError::Local {
                path: path.to_string(),
                source,
            });
        }
        Ok(())
    }

    /// Reads a small object, or `None` when it does not exist.
    pub async fn read(&self, path: &Path) -> Result<Option<Bytes>, StorageError> {
        match self.store.get(path).await {
            Ok(got) => got
                .bytes()
                .await
                .map(Some)
                .map_err(|source| store_err("read", path, source)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(source) => Err(store_err("read", path, source)),
        }
    }

    /// Writes a small object, replacing any object there.
    pub async fn write(&self, path: &Path, data: Bytes) -> Result<(), StorageError> {
        self.store
            .put(path, PutPayload::from(data))
            .await
            .map(|_| ())
            .map_err(|source| store_err("write", path, source))
    }

    /// Writes a small object only if nothing is there yet (the commit primitive).
    pub async fn create(&self, path: &Path, data: Bytes) -> Result<Created, StorageError> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self
            .store
            .put_opts(path, PutPayload::from(data), opts)
            .await
        {
            Ok(_) => Ok(Created::Created),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(Created::AlreadyExisted),
            Err(source) => Err(store_err("create", path, source)),
        }
    }

    /// Every object under `prefix`.
    pub async fn list(&self, prefix: &Path) -> Result<Vec<Path>, StorageError> {
        self.store
            .list(Some(prefix))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(|source| store_err("list", prefix, source))
    }

    /// Deletes an object; a missing object is not an error.
    pub async fn delete(&self, path: &Path) -> Result<(), StorageError> {
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(source) => Err(store_err("delete", path, source)),
        }
    }
}

fn store_err(op: &'static str, path: &Path, source: object_store::Error) -> StorageError {
    StorageError::Store {
        op,
        path: path.to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_lake_round_trips_and_creates_once() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().join("lake").to_str().unwrap()).unwrap();
        let p = Path::from("_auditlake/subdomain=a/windows/x.json");
        assert_eq!(lake.read(&p).await.unwrap(), None);
        assert_eq!(
            lake.create(&p, Bytes::from("1")).await.unwrap(),
            Created::Created
        );
        assert_eq!(
            lake.create(&p, Bytes::from("2")).await.unwrap(),
            Created::AlreadyExisted
        );
        assert_eq!(lake.read(&p).await.unwrap().unwrap(), Bytes::from("1"));
        assert_eq!(
            lake.list(&Path::from("_auditlake")).await.unwrap(),
            std::slice::from_ref(&p)
        );
        lake.delete(&p).await.unwrap();
        lake.delete(&p).await.unwrap();
        assert!(lake
            .list(&Path::from("_auditlake"))
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn uploads_stream_a_file_larger_than_the_buffer() {
        use std::io::{Seek, Write};
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(&format!("file://{}", dir.path().display())).unwrap();
        let mut file = tempfile::tempfile().unwrap();
        let chunk = vec![7u8; 1 << 20];
        for _ in 0..(UPLOAD_BUFFER / chunk.len() + 3) {
            file.write_all(&chunk).unwrap();
        }
        file.rewind().unwrap();
        let p = Path::from("subdomain=a/created_date=2024-01-01/part-x-0.parquet");
        lake.upload_file(&p, file).await.unwrap();
        let got = lake.read(&p).await.unwrap().unwrap();
        assert_eq!(got.len(), UPLOAD_BUFFER + 3 * (1 << 20));
    }

    #[test]
    fn unsupported_schemes_are_refused_clearly() {
        let err = Lake::open("ftp://example/lake").unwrap_err().to_string();
        assert!(err.contains("ftp:// scheme is not supported"), "{err}");
    }
}
