//! The HTTP response cache: the process-wide store and cache lock, the key,
//! the RFC 9111 storing rules Portico adds to Pingora's, `Vary`, stale
//! serving and `X-Cache-Status`.
//!
//! Pingora runs the cache state machine (lookup, lock, conditional requests,
//! ranges, HEAD from a stored GET, background revalidation); the proxy's hooks
//! call the functions here to decide what it may do on each route.

mod fill;
pub mod freshness;
pub mod key;
pub mod purge;
pub mod store;

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use pingora::cache::cache_control::{CacheControl, Cacheable, InterpretCacheControl};
use pingora::cache::filters::calculate_serve_stale_durations;
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
/// is worked out in [`freshness`]; a response with none is not stored.
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
    let (cc, targeted) = directives(spec, resp);
    if cc
        .as_ref()
        .is_some_and(|cc| cc.is_cacheable() == Cacheable::No)
    {
        return RespCacheable::Uncacheable(NoCacheReason::OriginNotCache);
    }
    let authorized = req.headers.contains_key(http::header::AUTHORIZATION)
        && !spec.allow_authorization
        && !cc
            .as_ref()
            .is_some_and(|cc| cc.allow_caching_authorized_req());
    if authorized {
        return RespCacheable::Uncacheable(NoCacheReason::OriginNotCache);
    }
    let heuristics = freshness::Heuristics {
        default_ttl: spec.default_ttl.map(|d| d.0),
        last_modified_max: spec.heuristic_max_ttl.0,
    };
    // The status a 304 revalidated is the stored one, which was storable.
    let judged = if status == 304 { 200 } else { status };
    let now = SystemTime::now();
    let directives = freshness::Directives {
        cc: cc.as_ref(),
        targeted,
    };
    let Some(fresh) = freshness::Freshness::of(judged, &resp.headers, directives, heuristics, now)
    else {
        return RespCacheable::Uncacheable(NoCacheReason::OriginNotCache);
    };
    let defaults = CacheMetaDefaults::new(
        |_| None,
        secs(spec.stale_while_revalidate.0),
        secs(spec.stale_if_error.0),
    );
    let (swr, sie) = calculate_serve_stale_durations(cc.as_ref(), &defaults);
    let mut header = resp.clone();
    if let Some(cc) = &cc {
        cc.strip_private_headers(&mut header);
    }
    // Fields Cache-Control keeps private stay so beside a targeted field.
    if let Some(plain) = targeted
        .then(|| CacheControl::from_resp_headers(resp))
        .flatten()
    {
        plain.strip_private_headers(&mut header);
    }
    let (created, fresh_until) = fresh.times(now);
    RespCacheable::Cacheable(CacheMeta::new(fresh_until, created, swr, sie, header))
}

/// The response's caching directives: from the first of the route's
/// targeted fields (RFC 9213) with a valid value, which then replaces
/// `Cache-Control` and `Expires`, else from `Cache-Control`. The flag says
/// whether a targeted field was used.
fn directives(spec: &RouteCacheSpec, resp: &ResponseHeader) -> (Option<CacheControl>, bool) {
    let targeted =
        (spec.targeted_fields.iter()).find_map(|name| targeted_field(&resp.headers, name));
    match targeted {
        Some(cc) => (Some(cc), true),
        None => (CacheControl::from_resp_headers(resp), false),
    }
}

/// A targeted field's directives when it holds a value a cache may use
/// (RFC 9213 section 2.2): a non-empty Structured Fields dictionary
/// (RFC 9651) whose lifetimes are non-negative integers; `None` otherwise,
/// as if the field were absent. Parameters are dropped (RFC 9213 says to
/// ignore them) and false booleans left out before the directives are
/// read, so `max-age=60;s-maxage=9` is a minute.
fn targeted_field(headers: &http::HeaderMap, name: &str) -> Option<CacheControl> {
    let mut lines = headers.get_all(name).iter().peekable();
    lines.peek()?;
    // Lines of one field join with commas (RFC 9110 section 5.3).
    let mut joined = Vec::new();
    for line in lines {
        if !joined.is_empty() {
            joined.extend_from_slice(b", ");
        }
        joined.extend_from_slice(line.as_bytes());
    }
    let dict = sfv::Parser::new(&joined).parse::<sfv::Dictionary>().ok()?;
    if dict.is_empty() {
        return None;
    }
    let mut text = String::new();
    for (key, entry) in &dict {
        let lifetime = matches!(
            key.as_str(),
            "max-age" | "s-maxage" | "stale-while-revalidate" | "stale-if-error"
        );
        let value = match entry {
            sfv::ListEntry::Item(item) => match &item.bare_item {
                sfv::BareItem::Integer(n) if i64::from(*n) >= 0 => Some(i64::from(*n).to_string()),
                _ if lifetime => return None,
                sfv::BareItem::Boolean(false) => continue,
                sfv::BareItem::Boolean(true) => None,
                sfv::BareItem::Token(t) => Some(t.as_str().to_string()),
                sfv::BareItem::String(v) => Some(format!("\"{}\"", v.as_str())),
                // Other types mean nothing to a cache directive.
                _ => continue,
            },
            // A list of field names, for `private` and `no-cache`.
            sfv::ListEntry::InnerList(list) if !lifetime => {
                let names: Vec<&str> = (list.items.iter())
                    .filter_map(|i| i.bare_item.as_string().map(|s| s.as_str()))
                    .collect();
                Some(format!("\"{}\"", names.join(", ")))
            }
            sfv::ListEntry::InnerList(_) => return None,
        };
        if !text.is_empty() {
            text.push_str(", ");
        }
        text.push_str(key.as_str());
        if let Some(value) = value {
            text.push('=');
            text.push_str(&value);
        }
    }
    let mut normalised = http::HeaderMap::new();
    // Built from parsed tokens, integers and strings: always a valid value.
    normalised.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_str(&text).ok()?,
    );
    CacheControl::from_headers_named("cache-control", &normalised)
}

/// The stored response updated with a 304 that revalidated it (RFC 9111
/// section 3.2): every field of the 304 replaces the stored one, except the
/// framing and the fields the stored body depends on. Pingora's own merge
/// keeps the stored `Date`, `Age` and `Last-Modified`, which would make the
/// refreshed response look as old as the first one.
pub fn merge_not_modified(
    stored: &ResponseHeader,
    not_modified: &http::HeaderMap,
) -> ResponseHeader {
    use http::header;
    // A 304's Set-Cookie answers one client's revalidation: it is neither
    // stored nor served to others.
    const KEPT: [header::HeaderName; 6] = [
        header::CONTENT_LENGTH,
        header::CONTENT_ENCODING,
        header::TRANSFER_ENCODING,
        header::CONTENT_RANGE,
        header::VARY,
        header::SET_COOKIE,
    ];
    let mut merged = stored.clone();
    // The stored Age described the first response; the 304 brings its own.
    merged.remove_header(&header::AGE);
    for name in not_modified.keys() {
        if KEPT.contains(name) {
            continue;
        }
        merged.remove_header(name);
        for value in not_modified.get_all(name) {
            // Names and values came from a parsed header; appending them
            // again cannot fail.
            let _ = merged.append_header(name.clone(), value.clone());
        }
    }
    if !not_modified.contains_key(header::DATE) {
        let now = httpdate::fmt_http_date(SystemTime::now());
        let _ = merged.insert_header(header::DATE, now);
    }
    merged
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

#[cfg(test)]
mod merge_tests {
    use super::merge_not_modified;
    use pingora::http::ResponseHeader;

    #[test]
    fn a_304_replaces_date_age_and_validators_but_not_framing_or_coding() {
        let mut stored = ResponseHeader::build(200, None).unwrap();
        for (name, value) in [
            ("date", "Mon, 01 Jan 2024 00:00:00 GMT"),
            ("age", "500"),
            ("etag", "\"old\""),
            ("content-length", "10"),
            ("content-encoding", "gzip"),
            ("x-kept", "yes"),
        ] {
            stored.append_header(name, value).unwrap();
        }
        let mut not_modified = http::HeaderMap::new();
        for (name, value) in [
            ("date", "Tue, 02 Jan 2024 00:00:00 GMT"),
            ("etag", "\"new\""),
            ("content-length", "0"),
            ("content-encoding", "br"),
            ("x-added", "1"),
            ("set-cookie", "session=one-clients"),
        ] {
            not_modified.append(name, value.parse().unwrap());
        }
        let merged = merge_not_modified(&stored, &not_modified);
        let get = |n: &str| {
            merged
                .headers
                .get(n)
                .map(|v| v.to_str().unwrap().to_string())
        };
        assert_eq!(
            get("date").as_deref(),
            Some("Tue, 02 Jan 2024 00:00:00 GMT")
        );
        assert_eq!(get("age"), None);
        assert_eq!(get("etag").as_deref(), Some("\"new\""));
        assert_eq!(get("content-length").as_deref(), Some("10"));
        assert_eq!(get("content-encoding").as_deref(), Some("gzip"));
        assert_eq!(get("x-kept").as_deref(), Some("yes"));
        assert_eq!(get("x-added").as_deref(), Some("1"));
        assert_eq!(get("set-cookie"), None, "one client's cookie was stored");
        assert_eq!(merged.status, 200);
    }

    #[test]
    fn a_304_without_date_gives_the_merged_response_the_current_date() {
        let mut stored = ResponseHeader::build(200, None).unwrap();
        stored
            .append_header("date", "Mon, 01 Jan 2024 00:00:00 GMT")
            .unwrap();
        let merged = merge_not_modified(&stored, &http::HeaderMap::new());
        let date = merged.headers["date"].to_str().unwrap();
        let parsed = httpdate::parse_http_date(date).unwrap();
        let behind = std::time::SystemTime::now()
            .duration_since(parsed)
            .unwrap_or_default();
        assert!(behind.as_secs() < 5, "merged Date: {date}");
    }
}

#[cfg(test)]
mod targeted_tests {
    use super::targeted_field;
    use pingora::cache::cache_control::InterpretCacheControl;

    fn parsed(lines: &[&str]) -> Option<pingora::cache::cache_control::CacheControl> {
        let mut headers = http::HeaderMap::new();
        for line in lines {
            headers.append("cdn-cache-control", line.parse().unwrap());
        }
        targeted_field(&headers, "cdn-cache-control")
    }

    fn lifetime(lines: &[&str]) -> Option<u64> {
        parsed(lines)?.fresh_duration().map(|d| d.as_secs())
    }

    #[test]
    fn a_targeted_field_counts_only_as_a_valid_non_empty_dictionary() {
        assert_eq!(lifetime(&["max-age=60"]), Some(60));
        assert!(parsed(&["no-store"]).unwrap().no_store());
        assert_eq!(
            lifetime(&["max-age=60", "stale-if-error=30, private"]),
            Some(60)
        );
        for bad in [
            &[][..],
            &[""],
            &["max-age=10000, &&&&&"],
            &["max-age=\"10000\""],
            &["s-maxage=-1"],
            &["max-age=1.5"],
            &["MaX-aGe=60"],
        ] {
            assert!(parsed(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn parameters_and_false_booleans_say_nothing() {
        assert_eq!(lifetime(&["max-age=60;s-maxage=31536000"]), Some(60));
        assert_eq!(lifetime(&["max-age=60, x;max-age=99999"]), Some(60));
        let cc = parsed(&["max-age=60, no-store=?0, private=(\"x-a\" \"x-b\")"]).unwrap();
        assert!(!cc.no_store() && !cc.private());
        let names: Vec<&[u8]> = cc.private_field_names().unwrap().collect();
        assert_eq!(names, [&b"x-a"[..], b"x-b"]);
    }
}
