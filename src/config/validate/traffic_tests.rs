//! Config errors of traffic control, each named by its key path.

use crate::config::load_str_with_env;
use crate::config::schema::{StoreKind, TierSpec};
use crate::config::test_support::{errors_of, only_error, with_route, with_section};

fn limits(entries: &str) -> String {
    with_section(&format!("rate_limiting:\n  limits:\n{entries}"))
}

#[test]
fn a_full_traffic_section_loads() {
    let yaml = format!(
        "{}rate_limiting:
  redis: {{url: 'redis://127.0.0.1:6379/0', timeout: 50ms}}
  headers: ietf_and_legacy
  limits:
    burst: {{limit: 20, window: 1s}}
    daily: {{limit: 10000, window: 1d, key: [consumer, 'header:x-app'], store: redis,
             local_allowance: 10}}
  tiers:
    free: [daily]
    internal: exempt
policies:
  rate_limits: [burst]
  concurrency: {{max: 100, per_consumer: 5, queue: 10}}
",
        with_route("{id: r, upstream: users, policies: {rate_limits: []}}")
    );
    let config = load_str_with_env(&yaml, &|_| None).unwrap_or_else(|e| panic!("{e}"));
    let spec = &config.rate_limiting;
    assert_eq!(spec.limits["burst"].key, ["client"]);
    assert_eq!(spec.limits["daily"].store, StoreKind::Redis);
    assert_eq!(spec.tiers["internal"], TierSpec::Exempt);
    assert_eq!(spec.tiers["free"], TierSpec::Limits(vec!["daily".into()]));
    assert_eq!(
        config.routes[0].policies.rate_limits.as_deref(),
        Some(&[][..])
    );
}

#[test]
fn an_unknown_limit_name_is_refused_where_it_is_used_with_the_known_ones() {
    let yaml = format!(
        "{}rate_limiting:\n  limits:\n    burst: {{limit: 5, window: 1s}}\n",
        with_route("{id: r, upstream: users, policies: {rate_limits: [brust]}}")
    );
    let e = only_error(
        &yaml,
        "routes[0].policies.rate_limits[0]",
        "no rate limit named \"brust\"",
    );
    assert!(e.fix.contains("burst"), "{e}");
}

#[test]
fn a_redis_limit_without_a_redis_server_is_refused() {
    only_error(
        &limits("    l: {limit: 5, window: 1s, store: redis}\n"),
        "rate_limiting.limits.l.store",
        "needs a Redis server",
    );
}

#[test]
fn bad_keys_windows_and_limits_are_each_reported() {
    let errors = errors_of(&limits(
        "    a: {limit: 0, window: 1s}\n    b: {limit: 5, window: 10ms}\n    \
         c: {limit: 5, window: 1s, key: [client, ip]}\n    \
         d: {limit: 5, window: 1s, key: [route, route]}\n",
    ));
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "rate_limiting.limits.a.limit",
            "rate_limiting.limits.b.window",
            "rate_limiting.limits.c.key[1]",
            "rate_limiting.limits.d.key[1]",
        ],
        "{errors:?}"
    );
}

#[test]
fn a_tls_redis_url_and_a_breaker_rate_above_one_are_refused() {
    only_error(
        &with_section("rate_limiting: {redis: {url: 'rediss://cache:6380'}, limits: {}}"),
        "rate_limiting.redis.url",
        "not supported",
    );
    let yaml = "version: 1
listeners: [{address: '127.0.0.1:8080'}]
upstreams:
  u: {backends: [{address: 'u:80'}], circuit_breaker: {error_rate: 1.5}}
";
    only_error(
        yaml,
        "upstreams.u.circuit_breaker.error_rate",
        "not a share",
    );
}

#[test]
fn a_local_limit_beyond_what_the_local_store_counts_is_refused() {
    only_error(
        &limits("    huge: {limit: 5000000000, window: 1d}\n"),
        "rate_limiting.limits.huge.limit",
        "more than the local store counts",
    );
}

#[test]
fn a_concurrency_cap_of_nothing_is_refused() {
    only_error(
        &with_section("policies: {concurrency: {queue: 5}}"),
        "policies.concurrency",
        "neither `max` nor `per_consumer`",
    );
}
