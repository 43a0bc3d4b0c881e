//! The response cache's storage: a pingora-cache [`Storage`] over TinyUFO,
//! bounded by bytes, with an index of the cached URLs for purging by prefix.
//!
//! TinyUFO (S3-FIFO eviction, TinyLFU admission) evicts by itself when a put
//! would pass its weight limit, so no eviction manager is given to Pingora.
//! Its weights are `u16`, so an object weighs its size in KiB, rounded up:
//! the bound holds for the bytes stored, and one object is at most 64MiB.
//!
//! Reads go straight to TinyUFO. Writes and removals take one lock that also
//! guards the URL index, so the index, the byte count and the map agree.
//!
//! A response being written is readable while it arrives (see [`super::fill`]):
//! requests that waited on the cache lock stream it with the one filling it.
//! It enters the map, and counts against the bound, once it is whole.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::Bytes;
use pingora::cache::key::{CacheHashKey, CacheKey, HashBinary};
use pingora::cache::storage::{
    HandleHit, HandleMiss, HitHandler, MissFinishType, MissHandler, PurgeOutcome, PurgeTarget,
    PurgeType, Storage,
};
use pingora::cache::trace::SpanHandle;
use pingora::cache::CacheMeta;
use pingora::{Error, ErrorType, Result};
use tinyufo::TinyUfo;

use super::fill::{Fill, Fills};

/// The unit of TinyUFO weight.
const WEIGHT_UNIT: usize = 1024;

/// The largest object the store can hold, whatever a route allows.
pub const MAX_OBJECT_BYTES: usize = u16::MAX as usize * WEIGHT_UNIT;

/// One stored response.
struct Object {
    /// `CacheMeta::serialize`'s two parts.
    meta: (Vec<u8>, Vec<u8>),
    /// `None` once the object has left the store. TinyUFO's map (flurry)
    /// frees a removed entry only when its reclamation batch of about 120
    /// retirements comes round, so an evicted body would otherwise outlive
    /// its eviction by up to that many evictions: with 1 MiB objects, some
    /// 60 MiB over `cache.max_size` (perf/CACHE-RESULTS.md). Taking the body
    /// out on removal frees it at once; hits already reading hold their own
    /// `Bytes`.
    body: Mutex<Option<Bytes>>,
    /// Body and header bytes, fixed at creation: what counts against the bound.
    size: usize,
    /// The primary key text, for the URL index.
    primary: Arc<str>,
    combined: HashBinary,
}

impl Object {
    fn new(meta: (Vec<u8>, Vec<u8>), body: Bytes, primary: Arc<str>, combined: HashBinary) -> Self {
        let size = body.len() + meta.0.len() + meta.1.len();
        Object {
            meta,
            body: Mutex::new(Some(body)),
            size,
            primary,
            combined,
        }
    }

    /// What the object counts against the bound: body and header bytes.
    fn size(&self) -> usize {
        self.size
    }

    fn body_slot(&self) -> MutexGuard<'_, Option<Bytes>> {
        // The slot is a single Option: a panic cannot leave it half-written.
        self.body.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The body, or `None` when the object has already left the store.
    fn body(&self) -> Option<Bytes> {
        self.body_slot().clone()
    }
}

/// Counters the metrics read.
#[derive(Default)]
pub struct StoreStats {
    pub bytes: AtomicU64,
    pub objects: AtomicU64,
    pub evictions: AtomicU64,
}

/// A byte-bounded in-memory cache store.
pub struct Store {
    objects: TinyUfo<HashBinary, Arc<Object>>,
    /// Primary key text -> the combined keys (one per `Vary` variant) stored
    /// under it. Holds exactly the objects in `objects`, so it is bounded
    /// with them.
    index: Mutex<BTreeMap<Arc<str>, Vec<HashBinary>>>,
    stats: StoreStats,
    max_bytes: usize,
    fills: Fills,
}

impl Store {
    /// A store holding at most `max_bytes` of responses.
    pub fn new(max_bytes: usize) -> Store {
        let units = (max_bytes / WEIGHT_UNIT).max(1);
        // TinyUFO sizes its admission sketch by the expected number of
        // objects; 8KiB is a guess at a typical API response.
        let estimated = (max_bytes / (8 * WEIGHT_UNIT)).clamp(64, 1 << 20);
        Store {
            objects: TinyUfo::new(units, estimated),
            index: Mutex::new(BTreeMap::new()),
            stats: StoreStats::default(),
            max_bytes,
            fills: Fills::default(),
        }
    }

    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    pub fn stats(&self) -> &StoreStats {
        &self.stats
    }

    fn index(&self) -> MutexGuard<'_, BTreeMap<Arc<str>, Vec<HashBinary>>> {
        // A panic while holding the lock leaves the map whole: every change
        // to it is a single insert or remove.
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores `object`, replacing what was under its key. Returns whether it
    /// was kept: TinyUFO's admission may refuse a newcomer that is less
    /// often asked for than what it would evict. `renewal` skips that test
    /// for an object that was already admitted and only has new headers.
    fn insert(&self, object: Arc<Object>, renewal: bool) -> bool {
        let size = object.size();
        if size > MAX_OBJECT_BYTES || size > self.max_bytes {
            return false;
        }
        let weight = size.div_ceil(WEIGHT_UNIT).max(1) as u16;
        let mut index = self.index();
        if let Some(old) = self.objects.remove(&object.combined) {
            self.forget(&mut index, &old);
        }
        index
            .entry(Arc::clone(&object.primary))
            .or_default()
            .push(object.combined);
        let mut kept = true;
        let evicted = if renewal {
            self.objects
                .force_put(object.combined, Arc::clone(&object), weight)
        } else {
            self.objects
                .put(object.combined, Arc::clone(&object), weight)
        };
        // The evicted leave the counters before the newcomer enters them, so
        // the stored-bytes gauge never reads over the bound.
        for evicted in evicted {
            if Arc::ptr_eq(&evicted.data, &object) {
                kept = false;
                continue;
            }
            self.stats.evictions.fetch_add(1, Ordering::Relaxed);
            self.forget(&mut index, &evicted.data);
        }
        if kept {
            self.stats.bytes.fetch_add(size as u64, Ordering::Relaxed);
            self.stats.objects.fetch_add(1, Ordering::Relaxed);
        } else {
            self.unindex(&mut index, &object);
        }
        kept
    }

    /// Takes an object that has left the map out of the index and counters,
    /// and frees its body.
    fn forget(&self, index: &mut BTreeMap<Arc<str>, Vec<HashBinary>>, object: &Object) {
        self.unindex(index, object);
        self.stats
            .bytes
            .fetch_sub(object.size() as u64, Ordering::Relaxed);
        self.stats.objects.fetch_sub(1, Ordering::Relaxed);
    }

    /// Takes an object out of the index and frees its body.
    fn unindex(&self, index: &mut BTreeMap<Arc<str>, Vec<HashBinary>>, object: &Object) {
        object.body_slot().take();
        if let Some(variants) = index.get_mut(&object.primary) {
            variants.retain(|c| *c != object.combined);
            if variants.is_empty() {
                index.remove(&object.primary);
            }
        }
    }

    fn remove(&self, combined: &HashBinary) -> bool {
        let mut index = self.index();
        match self.objects.remove(combined) {
            Some(old) => {
                self.forget(&mut index, &old);
                true
            }
            None => false,
        }
    }

    /// Removes the objects whose combined keys `keys` picks from the index;
    /// returns how many went.
    fn remove_where(
        &self,
        keys: impl FnOnce(&BTreeMap<Arc<str>, Vec<HashBinary>>) -> Vec<HashBinary>,
    ) -> usize {
        let mut index = self.index();
        let mut removed = 0;
        for combined in keys(&index) {
            if let Some(old) = self.objects.remove(&combined) {
                self.forget(&mut index, &old);
                removed += 1;
            }
        }
        removed
    }

    /// Removes every object stored under exactly this primary key (all its
    /// `Vary` variants); returns how many.
    pub fn purge_exact(&self, primary: &str) -> usize {
        self.remove_where(|index| index.get(primary).cloned().unwrap_or_default())
    }

    /// Removes every object whose primary key starts with `prefix`.
    pub fn purge_prefix(&self, prefix: &str) -> usize {
        self.remove_where(|index| {
            index
                .range::<str, _>((
                    std::ops::Bound::Included(prefix),
                    std::ops::Bound::Unbounded,
                ))
                .take_while(|(k, _)| k.starts_with(prefix))
                .flat_map(|(_, v)| v.iter().copied())
                .collect()
        })
    }

    /// The primary keys stored, in order.
    pub fn primaries(&self) -> Vec<String> {
        self.index().keys().map(|k| k.to_string()).collect()
    }
}

fn internal(context: &'static str) -> Box<Error> {
    Error::explain(ErrorType::InternalError, context)
}

#[async_trait]
impl Storage for Store {
    async fn lookup(
        &'static self,
        key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        let combined = key.combined_bin();
        // A fill in progress is newer than what is stored.
        if let Some(fill) = self.fills.get(&combined) {
            let meta = CacheMeta::deserialize(&fill.meta.0, &fill.meta.1)?;
            return Ok(Some((meta, Box::new(fill.reader()))));
        }
        let Some(object) = self.objects.get(&combined) else {
            return Ok(None);
        };
        // Evicted between the map lookup and here: a miss.
        let Some(body) = object.body() else {
            return Ok(None);
        };
        let meta = CacheMeta::deserialize(&object.meta.0, &object.meta.1)?;
        let hit = Hit { body, done: false };
        Ok(Some((meta, Box::new(hit))))
    }

    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<MissHandler> {
        let primary = key
            .primary_key_str()
            .ok_or_else(|| internal("cache key is not UTF-8"))?;
        let combined = key.combined_bin();
        let fill = self.fills.start(combined, meta.serialize()?);
        Ok(Box::new(Miss {
            store: self,
            tag: fill.id.to_be_bytes(),
            fill,
            size: 0,
            primary: Arc::from(primary),
            combined,
            finished: false,
        }))
    }

    async fn lookup_streaming_write(
        &'static self,
        key: &CacheKey,
        tag: Option<&[u8]>,
        _trace: &SpanHandle,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        let id = tag
            .and_then(|t| <[u8; 8]>::try_from(t).ok())
            .map(u64::from_be_bytes)
            .ok_or_else(|| internal("cache fill tag is missing"))?;
        let fill = self
            .fills
            .get_id(&key.combined_bin(), id)
            .ok_or_else(|| internal("cache fill is gone"))?;
        let meta = CacheMeta::deserialize(&fill.meta.0, &fill.meta.1)?;
        Ok(Some((meta, Box::new(fill.reader()))))
    }

    fn support_streaming_partial_write(&self) -> bool {
        true
    }

    async fn purge(
        &'static self,
        target: PurgeTarget<'_>,
        _purge_type: PurgeType,
        _trace: &SpanHandle,
    ) -> Result<PurgeOutcome> {
        let combined = target.key().combined_bin();
        Ok(if self.remove(&combined) {
            PurgeOutcome::Purged(None)
        } else {
            PurgeOutcome::NotFound
        })
    }

    async fn update_meta(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<bool> {
        let combined = key.combined_bin();
        let Some(old) = self.objects.get(&combined) else {
            return Ok(false);
        };
        let Some(body) = old.body() else {
            return Ok(false);
        };
        let object = Object::new(meta.serialize()?, body, Arc::clone(&old.primary), combined);
        Ok(self.insert(Arc::new(object), true))
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync + 'static) {
        self
    }
}

/// Reads one stored body, whole or one range of it.
struct Hit {
    body: Bytes,
    done: bool,
}

#[async_trait]
impl HandleHit for Hit {
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        if self.done {
            return Ok(None);
        }
        self.done = true;
        Ok(Some(self.body.clone()))
    }

    async fn finish(
        self: Box<Self>,
        _storage: &'static (dyn Storage + Sync),
        _key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<()> {
        Ok(())
    }

    fn can_seek(&self) -> bool {
        true
    }

    fn seek(&mut self, start: usize, end: Option<usize>) -> Result<()> {
        let len = self.body.len();
        let end = end.unwrap_or(len);
        if start > end || end > len {
            return Error::e_explain(ErrorType::InternalError, "seek past the cached body");
        }
        self.body = self.body.slice(start..end);
        self.done = false;
        Ok(())
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }

    fn as_any_mut(&mut self) -> &mut (dyn Any + Send + Sync) {
        self
    }
}

/// Passes a response body to its readers as it arrives; stores it at
/// `finish` when it fits.
struct Miss {
    store: &'static Store,
    fill: Arc<Fill>,
    tag: [u8; 8],
    size: usize,
    primary: Arc<str>,
    combined: HashBinary,
    finished: bool,
}

#[async_trait]
impl HandleMiss for Miss {
    async fn write_body(&mut self, data: Bytes, _eof: bool) -> Result<()> {
        // Readers need every chunk even when the object will not be stored;
        // Pingora stops the fill at the route's `max_object_size`.
        self.size = self.size.saturating_add(data.len());
        if !data.is_empty() {
            self.fill.push(data);
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<MissFinishType> {
        self.finished = true;
        let object = Arc::new(Object::new(
            self.fill.meta.clone(),
            self.fill.body(),
            Arc::clone(&self.primary),
            self.combined,
        ));
        let size = object.size();
        let kept = self.size <= MAX_OBJECT_BYTES.min(self.store.max_bytes)
            && self.store.insert(object, false);
        // Stored first, then the fill goes: a lookup always finds one of them.
        self.store.fills.finish(&self.combined, &self.fill, true);
        Ok(MissFinishType::Created(if kept { size } else { 0 }))
    }

    fn streaming_write_tag(&self) -> Option<&[u8]> {
        Some(&self.tag)
    }
}

impl Drop for Miss {
    fn drop(&mut self) {
        if !self.finished {
            self.store.fills.finish(&self.combined, &self.fill, false);
        }
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
