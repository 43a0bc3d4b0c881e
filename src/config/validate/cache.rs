//! Checks of the response cache's settings: the store's size and each
//! route's `cache` section. Header and cookie names of the key are
//! lowercased here, as the key compares them.

use http::HeaderName;

use super::upstreams::invalid_header_name;
use crate::cache::store::MAX_OBJECT_BYTES;
use crate::config::load::Draft;
use crate::config::schema::{IgnoreQuery, RouteCacheSpec};
use crate::config::{index_path, ConfigError};

pub(super) fn check(draft: &mut Draft, errors: &mut Vec<ConfigError>) {
    let token = draft.admin.as_ref().and_then(|a| a.token.as_deref());
    if token.is_some_and(|t| t.trim().len() < 16) {
        errors.push(ConfigError::new(
            "admin.token",
            "the admin token is shorter than 16 characters",
            "use a long random value, such as the output of `openssl rand -hex 32`, \
             read from the environment: token: ${PORTICO_ADMIN_TOKEN}",
        ));
    }
    if let Some(store) = &draft.cache {
        if store.max_size.0 < 64 * 1024 {
            errors.push(ConfigError::new(
                "cache.max_size",
                format!(
                    "a cache of {} bytes holds next to nothing",
                    store.max_size.0
                ),
                "set at least 64KiB, like 256MiB, or leave it out for the 256MiB default",
            ));
        }
    }
    for (i, route) in draft.routes.iter_mut() {
        if let Some(cache) = &mut route.cache {
            let path = format!("{}.cache", index_path("routes", *i));
            check_route(&path, cache, errors);
        }
    }
}

fn check_route(path: &str, cache: &mut RouteCacheSpec, errors: &mut Vec<ConfigError>) {
    let size = cache.max_object_size.0;
    if size == 0 || size > MAX_OBJECT_BYTES as u64 {
        errors.push(ConfigError::new(
            format!("{path}.max_object_size"),
            format!("{size} bytes is outside what the cache stores (1 byte to 64MiB)"),
            "set a size such as 1MiB, at most 64MiB",
        ));
    }
    for (i, name) in cache.key.headers.iter_mut().enumerate() {
        *name = name.trim().to_ascii_lowercase();
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            errors.push(invalid_header_name(
                format!("{path}.key.headers[{i}]"),
                name,
            ));
        }
    }
    for (i, name) in cache.targeted_fields.iter_mut().enumerate() {
        *name = name.trim().to_ascii_lowercase();
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            errors.push(invalid_header_name(
                format!("{path}.targeted_fields[{i}]"),
                name,
            ));
        } else if name == "cache-control" {
            errors.push(ConfigError::new(
                format!("{path}.targeted_fields[{i}]"),
                "Cache-Control is what a targeted field replaces",
                "list fields meant for this cache only, like CDN-Cache-Control, or \
                 write [] to read Cache-Control alone",
            ));
        }
    }
    for (i, name) in cache.key.cookies.iter().enumerate() {
        let bad = name.is_empty() || name.bytes().any(|b| b <= b' ' || b"=;,\"".contains(&b));
        if bad {
            errors.push(ConfigError::new(
                format!("{path}.key.cookies[{i}]"),
                format!("{name:?} is not a cookie name"),
                "write the name alone, like session_id, without = ; , quotes or spaces",
            ));
        }
    }
    if let IgnoreQuery::Names(names) = &cache.key.ignore_query {
        if let Some(i) = names.iter().position(|n| n.is_empty()) {
            errors.push(ConfigError::new(
                format!("{path}.key.ignore_query[{i}]"),
                "an empty query parameter name",
                "list parameter names like utm_source, or write `true` to ignore the whole query",
            ));
        }
    }
    if cache.default_ttl.is_some_and(|ttl| ttl.0.is_zero()) {
        errors.push(ConfigError::new(
            format!("{path}.default_ttl"),
            "a default TTL of 0s stores responses that are stale at once",
            "set a duration such as 30s, or leave it out to store only what the upstream \
             says is fresh",
        ));
    }
    for (i, status) in cache.statuses.iter().enumerate() {
        if !(200..=599).contains(status) || *status == 206 {
            errors.push(ConfigError::new(
                format!("{path}.statuses[{i}]"),
                format!("{status} cannot be cached"),
                "list final statuses from 200 to 599 other than 206, like 200 or 404",
            ));
        }
    }
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;
