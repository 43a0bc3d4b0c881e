//! The HTTP response cache: the process-wide store and cache lock, the key,
//! the RFC 9111 storing rules Portico adds to Pingora's, `Vary`, stale
//! serving and `X-Cache-Status`.
//!
//! Pingora runs the cache state machine (lookup, lock, conditional requests,
//! ranges, HEAD from a stored GET, background revalidation); the proxy's hooks
//! call the functions here to decide what it may do on each route.

mod fill;
pub mod key;
pub mod purge;
pub mod store;

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use pingora::cache::cache_control::{CacheControl, Cacheable, InterpretCacheControl};
use pingora::cache::filters::{
    calculate_expires_header_time, calculate_serve_stale_durations, resp_cacheable,
};
use pingora::cache::key::HashBinary;
use pingora::cache::lock::{CacheKeyLockImpl, CacheLock};
use pingora::cache::predictor::Predictor;
use pingora::cache::{
    CacheMeta, CacheMetaDefaults, CacheOptionOverrides, CachePhase, NoCacheReason, RespCacheable,
    VarianceBuilder,
};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::{Error, ErrorSource, ErrorType};

use crate::config::schema::RouteCacheSpec;
use store::Store;

static STORE: OnceLock<Store> = OnceLock::new();
static LOCK: OnceLock<Box<CacheKeyLockImpl>> = OnceLock::new();
/// Keys whose last answer could not be stored: their requests skip the
/// lookup and the lock, so uncacheable URLs are not queued one behind
/// another. 16 shards of 4096 keys, least recently marked forgotten first.
static PREDICTOR: OnceLock<Predictor<16>> = OnceLock::new();

/// How long a fill may hold a key's lock before waiting requests stop
/// waiting and go upstream themselves.
const LOCK_AGE: Duration = Duration::from_secs(10);

/// Makes the store with the size the first config gives; later calls (a
/// reload) keep the store as it is.
pub fn init(max_bytes: u64) -> &'static Store {
    STORE.get_or_init(|| Store::new(usize::try_from(max_bytes).unwrap_or(usize::MAX)))
}

/// The store; made with the default size if `init` was not called.
pub fn store() -> &'static Store {
    STORE.get_or_init(|| Store::new(256 * 1024 * 1024))
}

fn lock() -> &'static CacheKeyLockImpl {
    LOCK.get_or_init(|| {
        let lock: Box<CacheKeyLockImpl> = CacheLock::new_boxed(LOCK_AGE);
        lock
    })
    .as_ref()
}

/// Whether Pingora may look this request up and store its answer: GET and
/// HEAD only (a HEAD is answered from a stored GET).
pub fn request_cacheable(req: &RequestHeader) -> bool {
    matches!(req.method, http::Method::GET | http::Method::HEAD)
}

/// Turns the cache on for this request, with the shared store and lock.
pub fn enable(cache: &mut pingora::cache::HttpCache, max_object_bytes: u64) {
    let mut overrides = CacheOptionOverrides::default();
    overrides.wait_timeout = Some(LOCK_AGE);
    overrides.max_lock_retries = Some(3);
    let predictor = PREDICTOR.get_or_init(|| Predictor::new(4096, None));
    cache.enable(
        store(),
        None,
        Some(predictor),
        Some(lock()),
        Some(overrides),
    );
    // A body over this is streamed to the client but not stored.
    cache.set_max_file_size_bytes(usize::try_from(max_object_bytes).unwrap_or(usize::MAX));
}

/// RFC 9111's storing rules with the route's choices: the status must be one
/// the route stores, `no-store` and `private` are never stored, a response to
/// a request with `Authorization` only when the response or the route allows
/// it, `Set-Cookie` only when the route allows it, `Vary: *` never. Freshness
/// comes from `s-maxage`, `max-age` or `Expires`, else from `default_ttl`,
/// else the response is not stored.
pub fn response_cacheable(
    spec: &RouteCacheSpec,
    req: &RequestHeader,
    resp: &ResponseHeader,
) -> RespCacheable {
    let status = resp.status.as_u16();
    // A 304 reaches here only merged with the stored response it revalidated.
    if status != 304 && !spec.statuses.contains(&status) {
        return RespCacheable::Uncacheable(NoCacheReason::OriginNotCache);
    }
    if !spec.allow_set_cookie && resp.headers.contains_key(http::header::SET_COOKIE) {
        return RespCacheable::Uncacheable(NoCacheReason::Custom("set-cookie"));
    }
    let vary_all = resp.headers.get_all(http::header::VARY).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.split(',').any(|n| n.trim() == "*"))
    });
    if vary_all {
        return RespCacheable::Uncacheable(NoCacheReason::Custom("vary-star"));
    }
    let cc = CacheControl::from_resp_headers(resp);
    let authorized =
        req.headers.contains_key(http::header::AUTHORIZATION) && !spec.allow_authorization;
    let swr = secs(spec.stale_while_revalidate.0);
    let sie = secs(spec.stale_if_error.0);
    let defaults = CacheMetaDefaults::new(|_| None, swr, sie);
    let explicit = cc.as_ref().and_then(|c| c.fresh_duration()).is_some()
        || calculate_expires_header_time(resp).is_some();
    if explicit {
        return resp_cacheable(cc.as_ref(), resp.clone(), authorized, &defaults);
    }
    let Some(ttl) = spec.default_ttl else {
        return RespCacheable::Uncacheable(NoCacheReason::OriginNotCache);
    };
    if let Some(cc) = &cc {
        if cc.is_cacheable() == Cacheable::No || (authorized && !cc.allow_caching_authorized_req())
        {
            return RespCacheable::Uncacheable(NoCacheReason::OriginNotCache);
        }
    } else if authorized {
        return RespCacheable::Uncacheable(NoCacheReason::OriginNotCache);
    }
    let (swr, sie) = calculate_serve_stale_durations(cc.as_ref(), &defaults);
    let mut header = resp.clone();
    if let Some(cc) = &cc {
        cc.strip_private_headers(&mut header);
    }
    let now = SystemTime::now();
    RespCacheable::Cacheable(CacheMeta::new(now + ttl.0, now, swr, sie, header))
}

fn secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

/// The variant of a stored response this request selects: the values of the
/// request headers the response's `Vary` names.
pub fn variance(meta: &CacheMeta, req: &RequestHeader) -> Option<HashBinary> {
    let mut names: Vec<String> = meta
        .headers()
        .get_all(http::header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect();
    names.sort();
    names.dedup();
    let mut builder = VarianceBuilder::new();
    for name in &names {
        let value: Vec<u8> = req
            .headers
            .get_all(name.as_str())
            .iter()
            .flat_map(|v| v.as_bytes().iter().copied().chain([b',']))
            .collect();
        builder.add_owned_value(name, value);
    }
    builder.finalize()
}

/// Whether a stored response may be served stale: while one request
/// refreshes it (`error` is `None`, inside its stale-while-revalidate
/// window, which Pingora has checked), or when the upstream failed or
/// answered 5xx (inside its stale-if-error window).
pub fn serve_stale(error: Option<&Error>) -> bool {
    match error {
        None => true,
        Some(e) => {
            *e.esource() != ErrorSource::Downstream
                || matches!(e.etype(), ErrorType::HTTPStatus(s) if *s >= 500)
        }
    }
}

/// The `X-Cache-Status` of a response on a caching route.
pub fn status(phase: CachePhase) -> &'static str {
    match phase {
        CachePhase::Hit => "HIT",
        CachePhase::Miss => "MISS",
        CachePhase::Stale | CachePhase::StaleUpdating => "STALE",
        CachePhase::Expired => "EXPIRED",
        CachePhase::Revalidated | CachePhase::RevalidatedNoCache(_) => "REVALIDATED",
        CachePhase::Bypass
        | CachePhase::Disabled(_)
        | CachePhase::Uninit
        | CachePhase::CacheKey => "BYPASS",
    }
}
