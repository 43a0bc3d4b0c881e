//! Config errors of the `policies` sections, each named by its key path.

use crate::config::load_str_with_env;
use crate::config::test_support::{errors_of, only_error, with_route, with_section};

#[test]
fn a_full_policies_section_loads_at_both_levels() {
    let yaml = format!(
        "{}policies:
  ip_filter: {{allow: [10.0.0.0/8, '2001:db8::/32', 192.0.2.7], deny: [10.9.0.0/16]}}
  limits: {{max_uri_bytes: 4KiB, max_headers: 50, max_header_bytes: 32768, max_body_bytes: 1MiB}}
  threat_protection: {{mode: log, headers: [user-agent], body_limit: 16KiB}}
  cors: {{origins: ['https://*.example.com'], credentials: true, max_age: 600}}
",
        with_route(
            "{id: r, upstream: users, policies: {limits: {max_body_bytes: 10MiB}, \
             threat_protection: {sqli: false, xss: false}}}"
        )
    );
    let config = load_str_with_env(&yaml, &|_| None).unwrap_or_else(|e| panic!("{e}"));
    let limits = config.policies.limits.as_ref().unwrap();
    assert_eq!(limits.max_uri_bytes.map(|s| s.0), Some(4096));
    assert_eq!(
        config.routes[0]
            .policies
            .limits
            .as_ref()
            .unwrap()
            .max_body_bytes
            .map(|s| s.0),
        Some(10 << 20)
    );
}

#[test]
fn a_bad_network_is_refused_with_its_key_and_an_example() {
    let e = only_error(
        &with_section("policies: {ip_filter: {deny: [10.0.0.0/33]}}"),
        "policies.ip_filter.deny[0]",
        "neither an IP address nor a CIDR network",
    );
    assert!(e.fix.contains("10.0.0.0/8"), "{e}");
}

#[test]
fn zero_caps_and_an_inspection_window_over_64_kib_are_refused() {
    let errors = errors_of(&with_route(
        "{id: r, upstream: users, policies: {limits: {max_headers: 0, max_uri_bytes: 0}, \
         threat_protection: {body_limit: 1MiB, headers: ['bad header']}}}",
    ));
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "routes[0].policies.limits.max_headers",
            "routes[0].policies.limits.max_uri_bytes",
            "routes[0].policies.threat_protection.body_limit",
            "routes[0].policies.threat_protection.headers[0]",
        ]
    );
}

#[test]
fn cors_problems_carry_the_path_of_their_section() {
    let e = only_error(
        &with_section("policies: {cors: {origins: ['*'], credentials: true}}"),
        "policies.cors.origins[0]",
        "credentials",
    );
    assert!(e.fix.contains("credentials: false"), "{e}");
}

#[test]
fn unknown_policy_keys_and_modes_are_refused() {
    only_error(
        &with_section("policies: {rate_limit: {}}"),
        "policies.rate_limit",
        "unknown key `rate_limit`",
    );
    only_error(
        &with_section("policies: {threat_protection: {mode: alert}}"),
        "policies.threat_protection.mode",
        "unknown value `alert`",
    );
}
