//! The lake's storage: a destination opened from a path or URL through `object_store`, and the
//! few operations the exporter needs on it (upload a finished file, read and write small JSON
//! documents, create-if-absent, list, delete).
//!
//! Local paths go through `object_store` too, so local disk and object stores share one code path.
//! Object stores are configured with `object_store`'s own setting keys (`aws_region`,
//! `aws_endpoint`, `google_service_account`, `azure_storage_account_name`, ...), gathered by
//! [`crate::config`] from the standard environment of each cloud and the TOML file.

use crate::units::duration::Span;
use std::fmt;
use std::io::{Seek, SeekFrom, Write};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::buffered::BufWriter;
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
    RetryConfig,
};
use tokio::io::AsyncWriteExt;

use crate::lake::layout;

/// Bytes buffered per upload before it switches to a multipart upload: bounds the memory of each
/// upload in flight, whatever the file's size.
const UPLOAD_BUFFER: usize = 8 << 20;

/// Parts of one multipart upload sent at once.
const UPLOAD_CONCURRENCY: usize = 2;

/// Time to open a connection to an object store: a dead endpoint fails fast.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Retries of one store request: a few, with short backoff, bounded in time, so a store that is
/// down fails the run within about a minute with a clear error instead of minutes of silence
/// (object_store's default is 10 retries over up to 3 minutes).
fn retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            base: 2.0,
        },
        max_retries: 4,
        retry_timeout: Duration::from_secs(30),
    }
}

/// The longest one store request can take, retries included, when each attempt is limited to
/// `timeout`. Computed from `retry_config()`, so a change there is seen by every check that
/// depends on it (the lease's minimum time to live).
///
/// object_store retries a failed attempt while `retries < max_retries` and the time since the
/// first attempt is at most `retry_timeout`, sleeping a backoff before each retry. The n-th
/// backoff (from 0) is at most `min(max_backoff, init_backoff * base^n)`. So the request ends
/// by the smaller of two bounds:
/// - by count: `(max_retries + 1) * timeout + sum of the max_retries backoffs`;
/// - by time: the last retry starts only if at most `retry_timeout` has passed, so
///   `retry_timeout + largest backoff + timeout`.
///
/// With today's settings (4 retries, 30 s, backoffs at most 0.2 + 0.4 + 0.8 + 1.6 = 3 s):
/// `min(5 * timeout + 3 s, 31.6 s + timeout)`, i.e. 61.6 s for the default 30 s timeout and
/// 13 s for a 2 s one.
pub fn worst_case_request(timeout: Duration) -> Duration {
    let retry = retry_config();
    let retries = u32::try_from(retry.max_retries).unwrap_or(u32::MAX);
    let backoffs: Vec<Duration> = (0..retries)
        .map(|n| {
            let grown =
                retry.backoff.init_backoff.as_secs_f64() * retry.backoff.base.powi(n as i32);
            Duration::from_secs_f64(grown.min(retry.backoff.max_backoff.as_secs_f64()))
        })
        .collect();
    let by_count =
        timeout.saturating_mul(retries.saturating_add(1)) + backoffs.iter().sum::<Duration>();
    let by_time =
        retry.retry_timeout + backoffs.iter().max().copied().unwrap_or_default() + timeout;
    by_count.min(by_time)
}

/// How to reach an object store.
#[derive(Clone)]
pub struct StoreOptions {
    /// `object_store` settings by key (`aws_region`, `aws_endpoint`, ...). Values may be secrets:
    /// they are never printed (see the `Debug` impl).
    pub settings: Vec<(String, String)>,
    /// Allow a plain-HTTP endpoint that is not on loopback.
    pub allow_http: bool,
    /// Time limit of one store request (one upload part, one small object).
    pub timeout: Duration,
}

/// `--store-timeout`'s default: one upload part or small object takes seconds; the lease's
/// shortest time to live grows with this (see [`crate::lake::lease::min_lease_ttl`]).
pub const DEFAULT_STORE_TIMEOUT: Span = Span::seconds(30);

/// Whether a URL points at this machine (localhost, 127.0.0.0/8, ::1): the only place plain HTTP
/// is accepted without asking, since nothing crosses a network. The API's base URL follows the
/// same rule (`config`).
pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            settings: Vec::new(),
            allow_http: false,
            timeout: DEFAULT_STORE_TIMEOUT.duration(),
        }
    }
}

impl fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<&str> = self.settings.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("StoreOptions")
            .field("setting_keys", &keys)
            .field("allow_http", &self.allow_http)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl StoreOptions {
    fn setting(&self, key: &str) -> Option<&str> {
        self.settings
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// What went wrong with the destination.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("destination {dest:?}: {reason}")]
    Open { dest: String, reason: String },
    #[error("destination {dest:?} does not support conditional writes (create-if-absent): window markers and the lease would not be safe, so the run stops here. For S3-compatible stores, use one that supports If-None-Match (AWS S3, R2, recent MinIO) and do not set aws_conditional_put=disabled")]
    NoConditionalWrites { dest: String },
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
    #[error("uploading {path}: {source}")]
    Upload {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("removing staging leftover {path}: {source}")]
    Staging {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A crash injected by a test ([`crash`]): this write and every later one never happen.
    #[error("{op} {path}: the process crashed here (injected by a test)")]
    Crashed { op: &'static str, path: String },
}

/// A crash at the k-th write to the store, for the tests that prove a crash at any point
/// converges: after [`crash::after`]`(k)`, the k-th write (upload, write, create, delete) of
/// the process and every later one fail without effect, as if the process had died there.
/// Process-wide; nothing but tests sets it, and unset it costs one atomic load per write.
#[doc(hidden)]
pub mod crash {
    use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

    static WRITES_LEFT: AtomicI64 = AtomicI64::new(i64::MAX);
    static WRITES: AtomicU64 = AtomicU64::new(0);

    /// The process "dies" at its `writes`-th write from now (1: the next one).
    pub fn after(writes: u64) {
        let left = i64::try_from(writes).unwrap_or(i64::MAX) - 1;
        WRITES_LEFT.store(left, Ordering::SeqCst);
    }

    /// No crash from now on (a new process).
    pub fn heal() {
        WRITES_LEFT.store(i64::MAX, Ordering::SeqCst);
    }

    /// Writes made (or refused by a crash) since the process started.
    pub fn writes() -> u64 {
        WRITES.load(Ordering::SeqCst)
    }

    /// Whether the process has crashed by now.
    pub fn crashed() -> bool {
        WRITES_LEFT.load(Ordering::SeqCst) < 0
    }

    /// Counts a write; `false` once the process has crashed.
    pub(super) fn write() -> bool {
        WRITES.fetch_add(1, Ordering::SeqCst);
        WRITES_LEFT.fetch_sub(1, Ordering::SeqCst) > 0
    }
}

fn crash_point(op: &'static str, path: &Path) -> Result<(), StorageError> {
    match crash::write() {
        true => Ok(()),
        false => Err(StorageError::Crashed {
            op,
            path: path.to_string(),
        }),
    }
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
    /// The root directory of a local lake: `object_store` hides its staging files (`name#N`)
    /// from listings, so finding the leftovers of a killed write needs the directory itself.
    local_root: Option<std::path::PathBuf>,
}

impl Lake {
    /// Opens a destination: a local path, a `file://` URL, or an object store URL
    /// (`s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix`,
    /// `abfss://container@account.dfs.core.windows.net/prefix`). A local directory is created if
    /// needed; buckets must exist.
    pub fn open(dest: &str, options: &StoreOptions) -> Result<Lake, StorageError> {
        let open_err = |reason: String| StorageError::Open {
            dest: dest.to_string(),
            reason,
        };
        let Some(local) = local_path(dest)? else {
            return Lake::open_object_store(dest, options);
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
            local_root: Some(root),
        })
    }

    /// Opens a lake to read it, creating nothing: a local path that does not exist is `None`.
    /// (An object store's prefix always "exists"; whether it holds a lake is the manifest's
    /// question.)
    pub fn open_existing(dest: &str, options: &StoreOptions) -> Result<Option<Lake>, StorageError> {
        match local_path(dest)? {
            Some(local) if !local.is_dir() => Ok(None),
            _ => Lake::open(dest, options).map(Some),
        }
    }

    fn open_object_store(dest: &str, options: &StoreOptions) -> Result<Lake, StorageError> {
        let open_err = |reason: String| StorageError::Open {
            dest: dest.to_string(),
            reason,
        };
        let url = url::Url::parse(dest).map_err(|e| open_err(e.to_string()))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(open_err(
                "credentials do not belong in the URL; use the cloud's environment variables"
                    .into(),
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(open_err("the URL must not have a query or fragment".into()));
        }
        // Client options first: setting them later would replace every earlier client setting.
        let client = ClientOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_timeout(options.timeout);
        let allow_http = plain_http_allowed(options).map_err(open_err)?;
        let unknown = |key: &str| open_err(format!("unknown storage setting {key:?}"));
        let store: Arc<dyn ObjectStore> = match url.scheme() {
            "s3" | "s3a" => {
                // Every PUT (and each multipart part) carries x-amz-checksum-sha256, which S3
                // checks before it stores the object; a bucket with Object Lock requires one.
                let mut builder = AmazonS3Builder::new()
                    .with_client_options(client)
                    .with_retry(retry_config())
                    .with_checksum_algorithm(object_store::aws::Checksum::SHA256);
                for (key, value) in options.settings.iter().filter(|(k, _)| k.starts_with("aws_")) {
                    let key: AmazonS3ConfigKey = key.parse().map_err(|_| unknown(key))?;
                    builder = builder.with_config(key, value);
                }
                let builder = builder.with_url(dest).with_allow_http(allow_http);
                Arc::new(builder.build().map_err(|e| open_err(e.to_string()))?)
            }
            "gs" => {
                let mut builder = GoogleCloudStorageBuilder::new()
                    .with_client_options(client)
                    .with_retry(retry_config());
                for (key, value) in options.settings.iter().filter(|(k, _)| k.starts_with("google_")) {
                    let key: GoogleConfigKey = key.parse().map_err(|_| unknown(key))?;
                    builder = builder.with_config(key, value);
                }
                Arc::new(builder.with_url(dest).build().map_err(|e| open_err(e.to_string()))?)
            }
            "az" | "adl" | "azure" | "abfs" | "abfss" => {
                let mut builder = MicrosoftAzureBuilder::new()
                    .with_client_options(client)
                    .with_retry(retry_config());
                for (key, value) in options.settings.iter().filter(|(k, _)| k.starts_with("azure_")) {
                    let key: AzureConfigKey = key.parse().map_err(|_| unknown(key))?;
                    builder = builder.with_config(key, value);
                }
                let builder = builder.with_url(dest).with_allow_http(allow_http);
                Arc::new(builder.build().map_err(|e| open_err(e.to_string()))?)
            }
            other => {
                return Err(open_err(format!(
                    "the {other}:// scheme is not supported; use a local path, file://, s3://, gs:// or az://"
                )))
            }
        };
        let prefix = url.path().trim_matches('/');
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            store
        } else {
            Arc::new(PrefixStore::new(store, prefix))
        };
        Ok(Lake {
            store,
            display: dest.trim_end_matches('/').to_string(),
            local_root: None,
        })
    }

    /// Checks that the store really refuses a second create of the same object: markers and the
    /// lease depend on it, and some S3-compatible stores silently ignore the condition.
    pub async fn verify_conditional_create(&self) -> Result<(), StorageError> {
        let probe = layout::probe(fastrand::u64(..));
        let unsupported = || StorageError::NoConditionalWrites {
            dest: self.display.clone(),
        };
        let first = self.create(&probe, Bytes::from_static(b"1")).await;
        let second = match first {
            Ok(Created::Created) => self.create(&probe, Bytes::from_static(b"2")).await,
            Ok(Created::AlreadyExisted) => Ok(Created::AlreadyExisted),
            Err(StorageError::Store {
                source:
                    object_store::Error::NotImplemented { .. }
                    | object_store::Error::NotSupported { .. },
                ..
            }) => return Err(unsupported()),
            Err(e) => return Err(e),
        };
        // Best effort: a leftover probe is a few bytes in a hidden folder.
        let _ = self.delete(&probe).await;
        match second {
            Ok(Created::AlreadyExisted) => Ok(()),
            Ok(Created::Created) => Err(unsupported()),
            Err(StorageError::Store {
                source:
                    object_store::Error::NotImplemented { .. }
                    | object_store::Error::NotSupported { .. },
                ..
            }) => Err(unsupported()),
            Err(e) => Err(e),
        }
    }

    /// Wraps an already configured store (for tests and other back ends).
    pub fn from_store(store: Arc<dyn ObjectStore>, display: impl Into<String>) -> Lake {
        Lake {
            store,
            display: display.into(),
            local_root: None,
        }
    }

    /// The destination for messages.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// Streams a finished local file to `path`, replacing any object there. Large files go up as
    /// multipart uploads; a failed upload is aborted so it leaves no parts behind.
    pub async fn upload_file(&self, path: &Path, file: std::fs::File) -> Result<(), StorageError> {
        use tokio::io::AsyncReadExt;
        crash_point("upload", path)?;
        let mut reader = tokio::fs::File::from_std(file);
        let mut writer = BufWriter::with_capacity(self.store.clone(), path.clone(), UPLOAD_BUFFER)
            .with_max_concurrency(UPLOAD_CONCURRENCY);
        // Reading and writing are told apart so that a store outage is named as an upload error,
        // not as a problem with the local temporary file.
        let mut chunk = vec![0u8; 256 << 10];
        let mut shutting_down = false;
        let copied = async {
            loop {
                let n = reader
                    .read(&mut chunk)
                    .await
                    .map_err(|source| StorageError::Local {
                        path: path.to_string(),
                        source,
                    })?;
                if n == 0 {
                    break;
                }
                writer
                    .write_all(&chunk[..n])
                    .await
                    .map_err(|source| StorageError::Upload {
                        path: path.to_string(),
                        source,
                    })?;
            }
            shutting_down = true;
            writer
                .shutdown()
                .await
                .map_err(|source| StorageError::Upload {
                    path: path.to_string(),
                    source,
                })
        }
        .await;
        // Best effort: the upload already failed; the abort only frees staged parts. A writer
        // that began shutting down cannot be aborted (object_store panics); the bucket's
        // AbortIncompleteMultipartUpload rule collects what it left.
        if copied.is_err() && !shutting_down {
            let _ = writer.abort().await;
        }
        copied
    }

    /// Reads `range` of an object (for Parquet footers).
    pub async fn read_range(
        &self,
        path: &Path,
        range: std::ops::Range<u64>,
    ) -> Result<Bytes, StorageError> {
        self.store
            .get_range(path, range)
            .await
            .map_err(|source| store_err("read", path, source))
    }

    /// Every object under `prefix` with its size in bytes.
    pub async fn list_sized(&self, prefix: &Path) -> Result<Vec<(Path, u64)>, StorageError> {
        self.store
            .list(Some(prefix))
            .map_ok(|meta| (meta.location, meta.size))
            .try_collect()
            .await
            .map_err(|source| store_err("list", prefix, source))
    }

    /// Every object under `prefix`, with when it was last written.
    pub async fn list_modified(
        &self,
        prefix: &Path,
    ) -> Result<Vec<(Path, chrono::DateTime<chrono::Utc>)>, StorageError> {
        self.store
            .list(Some(prefix))
            .map_ok(|meta| (meta.location, meta.last_modified))
            .try_collect()
            .await
            .map_err(|source| store_err("list", prefix, source))
    }

    /// Staging files left under `prefix` by writes that never finished (a local lake only:
    /// `object_store` writes `name#N` and renames it when complete; object stores stage
    /// multipart uploads invisibly and expire them by lifecycle rule). Paths are relative to the
    /// lake, with the `#N` suffix.
    pub fn staging_leftovers(&self, prefix: &Path) -> Result<Vec<String>, StorageError> {
        let Some(root) = &self.local_root else {
            return Ok(Vec::new());
        };
        let mut found = Vec::new();
        let mut folders = vec![root.join(prefix.as_ref())];
        while let Some(folder) = folders.pop() {
            let entries = match std::fs::read_dir(&folder) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(StorageError::Staging {
                        path: folder.display().to_string(),
                        source,
                    })
                }
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    folders.push(path);
                } else if entry
                    .file_name()
                    .to_str()
                    .is_some_and(|n| layout::staging_target(n).is_some())
                {
                    if let Ok(relative) = path.strip_prefix(root) {
                        found.push(relative.to_string_lossy().into_owned());
                    }
                }
            }
        }
        found.sort();
        Ok(found)
    }

    /// The root directory of a local lake; `None` for an object store.
    pub fn local_root(&self) -> Option<&std::path::Path> {
        self.local_root.as_deref()
    }

    /// The store itself, rooted at the destination (for the Delta kernel's engine).
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    /// Whether the destination is a local directory.
    pub fn is_local(&self) -> bool {
        self.local_root.is_some()
    }

    /// Removes a staging leftover found by [`Lake::staging_leftovers`].
    pub fn remove_staging(&self, relative: &str) -> Result<(), StorageError> {
        crash_point("remove", &Path::from(relative))?;
        let Some(root) = &self.local_root else {
            return Ok(());
        };
        match std::fs::remove_file(root.join(relative)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StorageError::Staging {
                path: relative.to_string(),
                source,
            }),
        }
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

    /// The SHA-256 (lowercase hex) of an object, read as a stream (memory stays one chunk
    /// whatever its size); `None` if it does not exist.
    pub async fn sha256(&self, path: &Path) -> Result<Option<String>, StorageError> {
        let got = match self.store.get(path).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(source) => return Err(store_err("read", path, source)),
        };
        let mut digest = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        let mut chunks = got.into_stream();
        while let Some(chunk) = futures::StreamExt::next(&mut chunks).await {
            digest.update(&chunk.map_err(|source| store_err("read", path, source))?);
        }
        Ok(Some(crate::table::encode::hex(digest.finish().as_ref())))
    }

    /// Downloads an object of any size into a new anonymous temporary file under `dir`
    /// (bounded memory: it streams), rewound for reading; `None` if there is no such object.
    pub async fn download(
        &self,
        path: &Path,
        dir: &std::path::Path,
    ) -> Result<Option<std::fs::File>, StorageError> {
        let local = |source: std::io::Error| StorageError::Local {
            path: path.to_string(),
            source,
        };
        let got = match self.store.get(path).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(source) => return Err(store_err("read", path, source)),
        };
        let mut file = tempfile::tempfile_in(dir).map_err(local)?;
        let mut chunks = got.into_stream();
        while let Some(chunk) = chunks
            .try_next()
            .await
            .map_err(|source| store_err("read", path, source))?
        {
            file.write_all(&chunk).map_err(local)?;
        }
        file.seek(SeekFrom::Start(0)).map_err(local)?;
        Ok(Some(file))
    }

    /// Writes a small object, replacing any object there.
    pub async fn write(&self, path: &Path, data: Bytes) -> Result<(), StorageError> {
        crash_point("write", path)?;
        self.store
            .put(path, PutPayload::from(data))
            .await
            .map(|_| ())
            .map_err(|source| store_err("write", path, source))
    }

    /// Writes a small object only if nothing is there yet (the commit primitive).
    pub async fn create(&self, path: &Path, data: Bytes) -> Result<Created, StorageError> {
        crash_point("create", path)?;
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

    /// Whether any object is under `prefix`, from the first page of one listing.
    pub async fn any_under(&self, prefix: &Path) -> Result<bool, StorageError> {
        match futures::StreamExt::next(&mut self.store.list(Some(prefix))).await {
            None => Ok(false),
            Some(Ok(_)) => Ok(true),
            Some(Err(source)) => Err(store_err("list", prefix, source)),
        }
    }

    /// Deletes an object; a missing object is not an error.
    pub async fn delete(&self, path: &Path) -> Result<(), StorageError> {
        crash_point("delete", path)?;
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(source) => Err(store_err("delete", path, source)),
        }
    }
}

/// The local directory a destination names (a path or a `file://` URL), or `None` for an object
/// store URL: the one reading of whether a destination is local.
pub fn local_path(dest: &str) -> Result<Option<std::path::PathBuf>, StorageError> {
    let open_err = |reason: String| StorageError::Open {
        dest: dest.to_string(),
        reason,
    };
    if let Some(rest) = dest.strip_prefix("file://") {
        let url = url::Url::parse(dest).map_err(|e| open_err(e.to_string()))?;
        if !matches!(url.host_str(), None | Some("") | Some("localhost")) {
            return Err(open_err(format!(
                "file URLs name a local path, not a host ({rest})"
            )));
        }
        url.to_file_path()
            .map(Some)
            .map_err(|()| open_err("not a local file path".to_string()))
    } else if dest.contains("://") {
        Ok(None)
    } else {
        Ok(Some(std::path::PathBuf::from(dest)))
    }
}

/// Whether a plain-HTTP endpoint may be used: on loopback always (local test servers), elsewhere
/// only when allowed explicitly (`--allow-http`, or the store's own `*_allow_http` setting).
/// Every endpoint entry is checked, whatever its alias (`aws_endpoint`, `aws_endpoint_url`, ...)
/// and wherever it came from: the builder applies them in order and the last one wins, so a
/// loopback alias must not vouch for a remote one.
fn plain_http_allowed(options: &StoreOptions) -> Result<bool, String> {
    let explicit = options.allow_http
        || ["aws_allow_http", "azure_allow_http", "google_allow_http"]
            .iter()
            .any(|k| {
                options
                    .setting(k)
                    .is_some_and(|v| v.eq_ignore_ascii_case("true"))
            });
    let mut loopback_http = false;
    for (key, endpoint) in options.settings.iter().filter(|(k, _)| is_endpoint_key(k)) {
        let url = url::Url::parse(endpoint).map_err(|e| format!("{key} {endpoint:?}: {e}"))?;
        if url.scheme() != "http" {
            continue;
        }
        if is_loopback(&url) {
            loopback_http = true;
        } else if !explicit {
            return Err(format!(
                "plain-HTTP endpoint {endpoint} ({key}) is accepted only on loopback; use https, or --allow-http if you mean it"
            ));
        }
    }
    Ok(explicit || loopback_http)
}

/// Whether a setting names the endpoint that store requests go to, under any of its aliases.
fn is_endpoint_key(key: &str) -> bool {
    matches!(
        key.parse::<AmazonS3ConfigKey>(),
        Ok(AmazonS3ConfigKey::Endpoint | AmazonS3ConfigKey::S3Endpoint)
    ) || matches!(key.parse::<AzureConfigKey>(), Ok(AzureConfigKey::Endpoint))
        || matches!(key.parse::<GoogleConfigKey>(), Ok(GoogleConfigKey::BaseUrl))
}

/// A lake in a new temporary directory, for unit tests.
#[cfg(test)]
pub fn temp_lake() -> (tempfile::TempDir, Lake) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let lake = Lake::open(
        dir.path().to_str().expect("temp paths are UTF-8"),
        &StoreOptions::default(),
    )
    .expect("a local lake opens");
    (dir, lake)
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
        let lake = Lake::open(
            dir.path().join("lake").to_str().unwrap(),
            &StoreOptions::default(),
        )
        .unwrap();
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
        let lake = Lake::open(
            &format!("file://{}", dir.path().display()),
            &StoreOptions::default(),
        )
        .unwrap();
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
        let err = Lake::open("ftp://example/lake", &StoreOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("ftp:// scheme is not supported"), "{err}");
    }

    #[test]
    fn plain_http_endpoints_only_on_loopback_unless_allowed() {
        let with = |endpoint: &str, allow: bool| StoreOptions {
            settings: vec![
                ("aws_endpoint".into(), endpoint.into()),
                ("aws_region".into(), "us-east-1".into()),
            ],
            allow_http: allow,
            ..StoreOptions::default()
        };
        assert!(Lake::open("s3://bucket/prefix", &with("http://127.0.0.1:9000", false)).is_ok());
        let err = Lake::open(
            "s3://bucket/prefix",
            &with("http://minio.internal:9000", false),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("--allow-http"), "{err}");
        assert!(Lake::open(
            "s3://bucket/prefix",
            &with("http://minio.internal:9000", true)
        )
        .is_ok());
        assert!(Lake::open("s3://bucket/prefix", &with("https://minio.internal", false)).is_ok());
    }

    #[test]
    fn a_loopback_endpoint_alias_does_not_vouch_for_a_remote_plain_http_one() {
        // Regression: the check returned at the first loopback endpoint, so a remote http://
        // endpoint under another alias (applied later, so the one used) passed unchecked.
        let remote = "http://minio.internal:9000";
        for (first, second) in [
            ("aws_endpoint", "aws_endpoint_url"),
            ("aws_endpoint_url", "aws_endpoint"),
            ("aws_endpoint", "aws_endpoint"),
            ("azure_endpoint", "azure_storage_endpoint"),
            ("google_base_url", "google_base_url"),
        ] {
            for (a, b) in [
                ("http://127.0.0.1:9000", remote),
                (remote, "http://[::1]:9000"),
            ] {
                let options = StoreOptions {
                    settings: vec![(first.into(), a.into()), (second.into(), b.into())],
                    ..StoreOptions::default()
                };
                let err = plain_http_allowed(&options).unwrap_err();
                assert!(err.contains("minio.internal"), "{first} {second}: {err}");
                let allowed = StoreOptions {
                    allow_http: true,
                    ..options
                };
                assert_eq!(plain_http_allowed(&allowed), Ok(true));
            }
        }
        let both_local = StoreOptions {
            settings: vec![
                ("aws_endpoint".into(), "http://localhost:9000".into()),
                ("aws_endpoint_url".into(), "http://127.0.0.1:9000".into()),
            ],
            ..StoreOptions::default()
        };
        assert_eq!(plain_http_allowed(&both_local), Ok(true));
    }

    #[test]
    fn the_worst_case_request_follows_the_retry_settings() {
        // 5 attempts of 2 s and 3 s of backoff, below the 31.6 s + 2 s of the time bound.
        assert_eq!(
            worst_case_request(Duration::from_secs(2)),
            Duration::from_secs(13)
        );
        // 5 * 30 s + 3 s = 153 s by count, but the time bound stops retries: 30 + 1.6 + 30.
        assert_eq!(
            worst_case_request(Duration::from_secs(30)),
            Duration::from_millis(61_600)
        );
    }

    proptest::proptest! {
        /// Whatever the endpoint text, the check answers and never panics.
        #[test]
        fn the_plain_http_check_never_panics(endpoint in proptest::prelude::any::<String>(), allow: bool) {
            let options = StoreOptions {
                settings: vec![("aws_endpoint".into(), endpoint)],
                allow_http: allow,
                ..StoreOptions::default()
            };
            let _ = plain_http_allowed(&options);
        }
    }

    #[test]
    fn settings_are_checked_and_never_printed() {
        let options = StoreOptions {
            settings: vec![
                ("aws_secret_access_key".into(), "very-SECRET".into()),
                ("aws_no_such_setting".into(), "x".into()),
            ],
            ..StoreOptions::default()
        };
        assert!(!format!("{options:?}").contains("very-SECRET"));
        let err = Lake::open("s3://bucket", &options).unwrap_err().to_string();
        assert!(
            err.contains("aws_no_such_setting") && !err.contains("SECRET"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn local_disk_supports_conditional_create() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap(), &StoreOptions::default()).unwrap();
        lake.verify_conditional_create().await.unwrap();
    }
}
