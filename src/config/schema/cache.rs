//! The response cache's settings: the process-wide store (`cache` at the top
//! of the file) and each route's `cache` section.
//!
//! Names follow what nginx, Varnish and Kong users write: a route opts in,
//! the key is the URL (scheme, host, port, path, query) plus what the route
//! adds, and freshness comes from the upstream unless a `default_ttl` says
//! how long a response without freshness information may be kept.

use serde::Deserialize;

use super::{Dur, Size};

/// `cache` at the top level: the one in-memory store all routes share.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheStoreSpec {
    /// The most response bytes (bodies and headers) held in memory. The
    /// store is made once, when the process starts; a reload does not
    /// resize it. Default 256MiB.
    #[serde(default = "default_max_size")]
    pub max_size: Size,
}

impl Default for CacheStoreSpec {
    fn default() -> Self {
        CacheStoreSpec {
            max_size: default_max_size(),
        }
    }
}

fn default_max_size() -> Size {
    Size(256 * 1024 * 1024)
}

/// A route's `cache` section. A route without one is never cached.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteCacheSpec {
    /// `false` keeps the section but turns caching off. Default true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// A response body larger than this is passed on but not stored.
    /// Default 1MiB, at most 64MiB.
    #[serde(default = "default_max_object")]
    pub max_object_size: Size,
    /// What, besides the URL, tells cached responses apart.
    #[serde(default)]
    pub key: CacheKeySpec,
    /// How long a response without `Cache-Control: max-age`/`s-maxage` or
    /// `Expires` stays fresh, for heuristically cacheable statuses. Absent:
    /// the `Last-Modified` heuristic below, else the response is not stored.
    #[serde(default)]
    pub default_ttl: Option<Dur>,
    /// The cap on RFC 9111's heuristic freshness, a tenth of the time since
    /// `Last-Modified`, used when neither the response nor `default_ttl`
    /// gives a lifetime. `0s` turns the heuristic off. Default 1h.
    #[serde(default = "default_heuristic_max")]
    pub heuristic_max_ttl: Dur,
    /// Response fields that, when present, replace `Cache-Control` and
    /// `Expires` for this cache (RFC 9213's target list, first present
    /// wins), so an origin can tell its gateway and CDNs apart from
    /// browsers. Lowercased at load. Default `[cdn-cache-control]`; `[]`
    /// reads `Cache-Control` only.
    #[serde(default = "default_targeted_fields")]
    pub targeted_fields: Vec<String>,
    /// How long past freshness a stored response may be served while one
    /// request refreshes it, when the upstream's `Cache-Control` does not
    /// say. Default 0s.
    #[serde(default)]
    pub stale_while_revalidate: Dur,
    /// How long past freshness a stored response may be served when the
    /// upstream fails, when its `Cache-Control` does not say. Default 0s.
    #[serde(default)]
    pub stale_if_error: Dur,
    /// Store answers to requests carrying `Authorization` even when the
    /// response does not say `public`, `s-maxage` or `must-revalidate`.
    /// Only safe when the key tells consumers apart or every consumer may
    /// see every answer. Default false.
    #[serde(default)]
    pub allow_authorization: bool,
    /// Store responses that carry `Set-Cookie` (the cookie is stored and
    /// replayed too). Default false.
    #[serde(default)]
    pub allow_set_cookie: bool,
    /// Statuses that may be stored. Default: those RFC 9111 calls
    /// heuristically cacheable, less 206.
    #[serde(default = "default_statuses")]
    pub statuses: Vec<u16>,
    /// Client addresses (CIDR or single) allowed to send `PURGE` for a URL
    /// on this route. Empty: `PURGE` is proxied like any other method.
    #[serde(default)]
    pub purge_from: Vec<ipnet::IpNet>,
}

/// The parts of the request added to the URL in the cache key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheKeySpec {
    /// Request headers whose values are part of the key.
    #[serde(default)]
    pub headers: Vec<String>,
    /// Cookies whose values are part of the key.
    #[serde(default)]
    pub cookies: Vec<String>,
    /// Whether the authenticated consumer is part of the key.
    #[serde(default)]
    pub consumer: bool,
    /// Query parameters left out of the key: `true` for all of them, or a
    /// list of names.
    #[serde(default)]
    pub ignore_query: IgnoreQuery,
}

/// `ignore_query: true` or `ignore_query: [utm_source, ...]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum IgnoreQuery {
    All(bool),
    Names(Vec<String>),
}

impl Default for IgnoreQuery {
    fn default() -> Self {
        IgnoreQuery::All(false)
    }
}

fn yes() -> bool {
    true
}

fn default_heuristic_max() -> Dur {
    Dur(std::time::Duration::from_secs(3600))
}

fn default_targeted_fields() -> Vec<String> {
    vec!["cdn-cache-control".to_string()]
}

fn default_max_object() -> Size {
    Size(1024 * 1024)
}

/// RFC 9111 section 4.2.2's heuristically cacheable statuses, without 206:
/// Portico stores whole bodies and serves ranges from them.
pub fn default_statuses() -> Vec<u16> {
    vec![200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501]
}
