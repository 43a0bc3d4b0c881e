//! Responses being written into the cache, readable while they arrive.
//!
//! Pingora releases the cache lock as soon as a fill has its headers when
//! the storage can serve partial writes, so the requests that waited on the
//! lock (and the one filling it) read the body from here chunk by chunk as
//! the upstream sends it, instead of waiting for the whole object.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::Bytes;
use pingora::cache::key::{CacheKey, HashBinary};
use pingora::cache::storage::{HandleHit, Storage};
use pingora::cache::trace::SpanHandle;
use pingora::{Error, ErrorType, Result};
use tokio::sync::watch;

/// How far a fill has come.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    Open,
    Done,
    /// The writer went away before the end: readers must not take what they
    /// got for the whole body.
    Failed,
}

/// One response being written.
pub(super) struct Fill {
    pub(super) id: u64,
    pub(super) meta: (Vec<u8>, Vec<u8>),
    chunks: Mutex<Vec<Bytes>>,
    /// The number of chunks written and whether more will come.
    progress: watch::Sender<(usize, End)>,
}

impl Fill {
    fn chunks(&self) -> MutexGuard<'_, Vec<Bytes>> {
        // Pushes are single operations: a poisoned lock holds a whole list.
        self.chunks.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn push(&self, data: Bytes) {
        let count = {
            let mut chunks = self.chunks();
            chunks.push(data);
            chunks.len()
        };
        self.progress.send_replace((count, End::Open));
    }

    pub(super) fn body(&self) -> Bytes {
        let chunks = self.chunks();
        let mut body = Vec::with_capacity(chunks.iter().map(Bytes::len).sum());
        for chunk in chunks.iter() {
            body.extend_from_slice(chunk);
        }
        body.into()
    }

    fn end(&self, end: End) {
        let count = self.chunks().len();
        self.progress.send_replace((count, end));
    }

    pub(super) fn reader(self: &Arc<Fill>) -> FillReader {
        FillReader {
            fill: Arc::clone(self),
            progress: self.progress.subscribe(),
            next: 0,
        }
    }
}

/// The fills in progress, one per key (a newer fill of a key replaces an
/// older one for new readers).
#[derive(Default)]
pub(super) struct Fills {
    map: Mutex<HashMap<HashBinary, Arc<Fill>>>,
    next_id: AtomicU64,
}

impl Fills {
    fn map(&self) -> MutexGuard<'_, HashMap<HashBinary, Arc<Fill>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn start(&self, key: HashBinary, meta: (Vec<u8>, Vec<u8>)) -> Arc<Fill> {
        let (progress, _) = watch::channel((0, End::Open));
        let fill = Arc::new(Fill {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            meta,
            chunks: Mutex::new(Vec::new()),
            progress,
        });
        self.map().insert(key, Arc::clone(&fill));
        fill
    }

    pub(super) fn get(&self, key: &HashBinary) -> Option<Arc<Fill>> {
        self.map().get(key).cloned()
    }

    pub(super) fn get_id(&self, key: &HashBinary, id: u64) -> Option<Arc<Fill>> {
        self.get(key).filter(|f| f.id == id)
    }

    /// Ends `fill`: `complete` says whether its whole body was written
    /// (readers then end normally), else they are told it failed.
    pub(super) fn finish(&self, key: &HashBinary, fill: &Fill, complete: bool) {
        let mut map = self.map();
        if map.get(key).is_some_and(|f| f.id == fill.id) {
            map.remove(key);
        }
        drop(map);
        fill.end(if complete { End::Done } else { End::Failed });
    }
}

/// Reads a fill's chunks as they are written.
pub(super) struct FillReader {
    fill: Arc<Fill>,
    progress: watch::Receiver<(usize, End)>,
    next: usize,
}

#[async_trait]
impl HandleHit for FillReader {
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        loop {
            let (written, end) = *self.progress.borrow_and_update();
            if self.next < written {
                let chunk = self.fill.chunks().get(self.next).cloned();
                self.next += 1;
                if chunk.is_some() {
                    return Ok(chunk);
                }
            }
            match end {
                End::Done if self.next >= written => return Ok(None),
                End::Failed => {
                    return Error::e_explain(ErrorType::InternalError, "cache fill failed")
                }
                _ => {}
            }
            if self.next >= written && self.progress.changed().await.is_err() {
                return Error::e_explain(ErrorType::InternalError, "cache fill dropped");
            }
        }
    }

    async fn finish(
        self: Box<Self>,
        _storage: &'static (dyn Storage + Sync),
        _key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<()> {
        Ok(())
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }

    fn as_any_mut(&mut self) -> &mut (dyn Any + Send + Sync) {
        self
    }
}
