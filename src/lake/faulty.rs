//! A store that fails the way real ones do, for tests: a create-if-absent that applied but whose
//! answer was lost (the client's retry then finds the object), one that applied then timed out,
//! a slow one, and a store that is down.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use object_store::path::Path;

use crate::lake::storage::Lake;

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::future::Future;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::memory::InMemory;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

/// How the next create-if-absent of [`Faulty`] goes wrong.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Fault {
    /// Applies, then answers "already exists", as a client retry after a lost answer does.
    AppliedThenAlreadyExists,
    /// Applies, then fails, as a request that timed out after the store wrote it does.
    AppliedThenTimedOut,
    /// Applies after this long (virtual time in paused tests).
    Slow(Duration),
}

/// An in-memory store that injects the failures of a real one into lease writes.
#[derive(Debug, Default)]
pub(crate) struct Faulty {
    inner: InMemory,
    next_create: Mutex<Option<Fault>>,
    /// Every request fails without effect, as when the store is unreachable.
    pub(crate) down: AtomicBool,
}

impl std::fmt::Display for Faulty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Faulty")
    }
}

fn unreachable_store() -> object_store::Error {
    object_store::Error::Generic {
        store: "Faulty",
        source: "connection refused".into(),
    }
}

type Boxed<'a, T> = Pin<Box<dyn Future<Output = object_store::Result<T>> + Send + 'a>>;

// Written out as `#[async_trait]` would expand it: the crate does not depend on async-trait.
impl ObjectStore for Faulty {
    fn put_opts<'life0, 'life1, 'async_trait>(
        &'life0 self,
        location: &'life1 Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Boxed<'async_trait, PutResult>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            if self.down.load(Ordering::SeqCst) {
                return Err(unreachable_store());
            }
            let fault = if matches!(opts.mode, PutMode::Create) {
                self.next_create.lock().unwrap().take()
            } else {
                None
            };
            if let Some(Fault::Slow(delay)) = fault {
                tokio::time::sleep(delay).await;
            }
            let applied = self.inner.put_opts(location, payload, opts).await?;
            match fault {
                Some(Fault::AppliedThenAlreadyExists) => Err(object_store::Error::AlreadyExists {
                    path: location.to_string(),
                    source: "the retried request found the object".into(),
                }),
                Some(Fault::AppliedThenTimedOut) => Err(object_store::Error::Generic {
                    store: "Faulty",
                    source: "request timed out".into(),
                }),
                Some(Fault::Slow(_)) | None => Ok(applied),
            }
        })
    }

    fn put_multipart_opts<'life0, 'life1, 'async_trait>(
        &'life0 self,
        location: &'life1 Path,
        opts: PutMultipartOptions,
    ) -> Boxed<'async_trait, Box<dyn MultipartUpload>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        self.inner.put_multipart_opts(location, opts)
    }

    fn get_opts<'life0, 'life1, 'async_trait>(
        &'life0 self,
        location: &'life1 Path,
        options: GetOptions,
    ) -> Boxed<'async_trait, GetResult>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        if self.down.load(Ordering::SeqCst) {
            return Box::pin(async { Err(unreachable_store()) });
        }
        self.inner.get_opts(location, options)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        if self.down.load(Ordering::SeqCst) {
            return futures::stream::once(async { Err(unreachable_store()) }).boxed();
        }
        self.inner.list(prefix)
    }

    fn list_with_delimiter<'life0, 'life1, 'async_trait>(
        &'life0 self,
        prefix: Option<&'life1 Path>,
    ) -> Boxed<'async_trait, ListResult>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        self.inner.list_with_delimiter(prefix)
    }

    fn copy_opts<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        from: &'life1 Path,
        to: &'life2 Path,
        options: CopyOptions,
    ) -> Boxed<'async_trait, ()>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        self.inner.copy_opts(from, to, options)
    }
}

pub(crate) fn faulty_lake() -> (Arc<Faulty>, Lake) {
    let store = Arc::new(Faulty::default());
    (store.clone(), Lake::from_store(store, "memory://faulty"))
}

pub(crate) fn inject(store: &Faulty, fault: Fault) {
    *store.next_create.lock().unwrap() = Some(fault);
}
