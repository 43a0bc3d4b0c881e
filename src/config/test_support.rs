//! Fixtures shared by the config tests: a full valid file, a minimal one to
//! build broken variants from, and assertions on the reported errors.

use super::{load_str_with_env, ConfigError};

/// A valid file that sets nearly every key.
pub(crate) const FULL: &str = r#"version: 1
server:
  threads: 4
  work_stealing: true
  pid_file: /tmp/portico-test.pid
  upgrade_sock: /tmp/portico-test.sock
  grace_period: 10s
  graceful_shutdown_timeout: 2s
  upstream_keepalive_pool_size: 64
  downstream_keepalive_timeout: 30s
  keepalive_request_limit: 1000
listeners:
  - address: 0.0.0.0:8080
  - address: "[::1]:8081"
    h2c: false
admin:
  address: 127.0.0.1:9900
trusted_proxies: [10.0.0.0/8, 192.0.2.7]
access_log:
  target: file
  path: /var/log/portico/access.log
logging:
  level: portico=debug,info
  format: text
upstreams:
  users:
    backends:
      - address: users-1.internal:8080
        weight: 3
      - address: 10.0.0.12:8080
    balance: consistent_hash
    hash_key: {source: header, name: X-User-Id}
    timeouts: {connect: 250ms, read: 5s, write: 5s, idle: 0s}
    health_check:
      type: http
      path: /healthz
      host: users.internal
      expect_status: [200, 204]
      interval: 2s
      timeout: 500ms
      healthy_threshold: 2
      unhealthy_threshold: 3
    passive_health: {consecutive_failures: 3, ejection_time: 1m}
    retries: 1
  billing:
    backends: [{address: "[2001:db8::5]:9000"}]
    balance: least_requests
    health_check: {type: tcp}
routes:
  - id: users-api
    match:
      hosts: [API.Example.com, "*.example.org"]
      path: {prefix: /api/users}
      methods: [get, Post]
      headers: [{name: X-Tenant, value: acme}, {name: x-debug}]
      query: [{name: version, regex: '^v[0-9]+$'}]
    upstream: users
    strip_prefix: true
    upstream_host: users.internal
  - id: billing
    match: {path: {regex: '^/billing/(\d+)$'}}
    upstream: billing
    rewrite: {regex: '^/billing/(\d+)$', replace: '/invoices/$1'}
  - id: fallback
    upstream: users
"#;

/// The smallest valid file; the `with_*` builders add one part to it.
pub(crate) const MINIMAL: &str = "version: 1
listeners:
  - address: 127.0.0.1:8080
";

/// A valid file whose upstream `users` is `body` (flow style).
pub(crate) fn with_upstream(body: &str) -> String {
    format!("{MINIMAL}upstreams:\n  users: {body}\n")
}

/// A valid file with upstream `users` and the single route `route` (flow style).
pub(crate) fn with_route(route: &str) -> String {
    format!(
        "{}routes:\n  - {route}\n",
        with_upstream("{backends: [{address: 'u:80'}]}")
    )
}

/// A valid file plus the top-level `section` (block or flow style).
pub(crate) fn with_section(section: &str) -> String {
    format!("{MINIMAL}{section}\n")
}

/// The errors of `yaml`, which must fail to load.
pub(crate) fn errors_of(yaml: &str) -> Vec<ConfigError> {
    match load_str_with_env(yaml, &|_| None) {
        Ok(config) => panic!("expected errors, the file loaded: {config:?}\n{yaml}"),
        Err(errors) => errors.0,
    }
}

/// Asserts that `yaml` fails with exactly one error, at `path`, whose message
/// contains `fragment`; returns it for further checks.
pub(crate) fn only_error(yaml: &str, path: &str, fragment: &str) -> ConfigError {
    let errors = errors_of(yaml);
    let listing: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        errors.len(),
        1,
        "expected one error, got:\n{}",
        listing.join("\n")
    );
    let error = errors.into_iter().next().expect("one error is present");
    assert_eq!(error.path, path, "wrong path in: {error}");
    assert!(
        error.message.contains(fragment),
        "message lacks {fragment:?}: {error}"
    );
    error
}
