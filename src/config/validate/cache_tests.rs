//! The cache settings: defaults, normalisation and each refused value with
//! its key path.

use crate::config::load_str_with_env;
use crate::config::schema::IgnoreQuery;
use crate::config::test_support::{only_error, with_route, with_section};

fn route(cache: &str) -> String {
    with_route(&format!("{{id: r, upstream: users, cache: {cache}}}"))
}

#[test]
fn an_empty_section_caches_with_the_documented_defaults() {
    let config = load_str_with_env(&route("{}"), &|_| None).unwrap();
    let cache = config.routes[0].cache.as_ref().unwrap();
    assert!(cache.enabled);
    assert_eq!(cache.max_object_size.0, 1024 * 1024);
    assert_eq!(cache.default_ttl, None);
    assert!(!cache.allow_authorization && !cache.allow_set_cookie);
    assert!(cache.statuses.contains(&200) && !cache.statuses.contains(&206));
    assert_eq!(cache.key.ignore_query, IgnoreQuery::All(false));
    assert_eq!(cache.targeted_fields, ["cdn-cache-control"]);
    assert_eq!(config.cache.max_size.0, 256 * 1024 * 1024);
    let named = load_str_with_env(
        &route("{targeted_fields: [Portico-Cache-Control]}"),
        &|_| None,
    )
    .unwrap();
    let cache = named.routes[0].cache.as_ref().unwrap();
    assert_eq!(cache.targeted_fields, ["portico-cache-control"]);
}

#[test]
fn key_header_names_are_lowercased_and_ignore_query_takes_a_list_or_true() {
    let yaml = route("{key: {headers: [X-Tenant], ignore_query: [utm_source]}}");
    let config = load_str_with_env(&yaml, &|_| None).unwrap();
    let key = &config.routes[0].cache.as_ref().unwrap().key;
    assert_eq!(key.headers, vec!["x-tenant".to_string()]);
    assert_eq!(
        key.ignore_query,
        IgnoreQuery::Names(vec!["utm_source".into()])
    );
    let all = load_str_with_env(&route("{key: {ignore_query: true}}"), &|_| None).unwrap();
    let key = &all.routes[0].cache.as_ref().unwrap().key;
    assert_eq!(key.ignore_query, IgnoreQuery::All(true));
}

#[test]
fn bad_route_values_are_refused_with_their_key() {
    only_error(
        &route("{max_object_size: 0}"),
        "routes[0].cache.max_object_size",
        "outside",
    );
    only_error(
        &route("{max_object_size: 65MiB}"),
        "routes[0].cache.max_object_size",
        "outside",
    );
    only_error(
        &route("{key: {headers: ['a b']}}"),
        "routes[0].cache.key.headers[0]",
        "header",
    );
    only_error(
        &route("{targeted_fields: ['a b']}"),
        "routes[0].cache.targeted_fields[0]",
        "header",
    );
    only_error(
        &route("{targeted_fields: [CDN-Cache-Control, Cache-Control]}"),
        "routes[0].cache.targeted_fields[1]",
        "replaces",
    );
    only_error(
        &route("{key: {cookies: ['a=b']}}"),
        "routes[0].cache.key.cookies[0]",
        "cookie",
    );
    only_error(
        &route("{default_ttl: 0s}"),
        "routes[0].cache.default_ttl",
        "stale at once",
    );
    only_error(
        &route("{statuses: [206]}"),
        "routes[0].cache.statuses[0]",
        "cannot be cached",
    );
    only_error(&route("{ttl: 5s}"), "routes[0].cache.ttl", "unknown key");
}

#[test]
fn a_tiny_store_and_a_short_admin_token_are_refused() {
    let text = format!("cache: {{max_size: 1KiB}}\n{}", route("{}"));
    only_error(&text, "cache.max_size", "next to nothing");
    let text = with_section("admin: {address: '127.0.0.1:9900', token: short}");
    only_error(&text, "admin.token", "shorter than 16");
}

#[test]
fn the_cache_example_config_loads() {
    let text = include_str!("../../../conf/examples/cache.yaml");
    let env = |name: &str| (name == "PORTICO_ADMIN_TOKEN").then(|| "0123456789abcdef0123".into());
    let config = load_str_with_env(text, &env).unwrap();
    let products = config.routes[0].cache.as_ref().unwrap();
    assert_eq!(products.key.cookies, vec!["currency".to_string()]);
    assert!(config.routes[1].cache.is_none());
    assert_eq!(config.cache.max_size.0, 512 * 1024 * 1024);
}
