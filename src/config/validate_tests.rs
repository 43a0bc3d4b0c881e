//! Tests of the semantic checks: one per kind of problem, each asserting the
//! exact key path and the gist of the message.

use crate::config::load_str_with_env;
use crate::config::test_support::{errors_of, only_error, with_route, with_section, with_upstream};

fn upstream(extra: &str) -> String {
    with_upstream(&format!("{{backends: [{{address: 'u:80'}}], {extra}}}"))
}

fn route(extra: &str) -> String {
    with_route(&format!("{{id: r, upstream: users, {extra}}}"))
}

fn assert_loads(yaml: &str) {
    if let Err(errors) = load_str_with_env(yaml, &|_| None) {
        panic!("expected {yaml} to load, got:\n{errors}");
    }
}

// Listeners, admin, server and logging.

#[test]
fn a_file_without_listeners_is_rejected() {
    only_error(
        "version: 1\nlisteners: []",
        "listeners",
        "no listener is defined",
    );
    only_error("version: 1", "listeners", "no listener is defined");
}

#[test]
fn a_listener_address_must_be_ip_and_port() {
    let yaml = "version: 1\nlisteners: [{address: 'localhost:80'}]";
    only_error(
        yaml,
        "listeners[0].address",
        "\"localhost:80\" is not an ip:port address",
    );
}

#[test]
fn an_admin_address_must_be_ip_and_port() {
    let yaml = with_section("admin: {address: '9900'}");
    only_error(&yaml, "admin.address", "\"9900\" is not an ip:port address");
}

#[test]
fn a_duplicate_listener_address_is_reported_on_the_later_one() {
    let yaml = "version: 1\nlisteners: [{address: '0.0.0.0:80'}, {address: '0.0.0.0:80'}]";
    only_error(
        yaml,
        "listeners[1].address",
        "address 0.0.0.0:80 is already used by listeners[0].address",
    );
}

#[test]
fn an_admin_address_equal_to_a_listener_is_reported_on_the_later_one() {
    let yaml = with_section("admin: {address: '127.0.0.1:8080'}");
    only_error(
        &yaml,
        "admin.address",
        "already used by listeners[0].address",
    );
    let yaml =
        "version: 1\nadmin: {address: '127.0.0.1:80'}\nlisteners: [{address: '127.0.0.1:80'}]";
    only_error(
        yaml,
        "listeners[0].address",
        "already used by admin.address",
    );
}

#[test]
fn zero_threads_are_rejected() {
    let yaml = with_section("server: {threads: 0}");
    only_error(&yaml, "server.threads", "threads must be at least 1");
}

#[test]
fn a_thread_count_that_would_abort_the_process_at_start_is_rejected() {
    let yaml = with_section("server: {threads: 100000000}");
    only_error(&yaml, "server.threads", "more than the 1024 allowed");
    assert_loads(&with_section("server: {threads: 1024}"));
}

#[test]
fn a_keepalive_pool_too_large_to_allocate_is_rejected() {
    let yaml = with_section("server: {upstream_keepalive_pool_size: 1000000000000000}");
    only_error(
        &yaml,
        "server.upstream_keepalive_pool_size",
        "more than the 1000000 allowed",
    );
}

#[test]
fn an_http2_stream_limit_of_zero_or_beyond_ten_thousand_is_rejected() {
    for bad in ["0", "10001"] {
        let yaml = with_section(&format!("server: {{h2_max_concurrent_streams: {bad}}}"));
        only_error(
            &yaml,
            "server.h2_max_concurrent_streams",
            "outside 1..=10000",
        );
    }
    assert_loads(&with_section("server: {h2_max_concurrent_streams: 1000}"));
}

#[test]
fn a_sub_second_keepalive_timeout_is_rejected_because_pingora_would_read_it_as_forever() {
    let yaml = with_section("server: {downstream_keepalive_timeout: 500ms}");
    only_error(&yaml, "server.downstream_keepalive_timeout", "at least 1s");
}

#[test]
fn a_fractional_grace_period_is_rejected_because_pingora_counts_whole_seconds() {
    let yaml = with_section("server: {grace_period: 1500ms}");
    only_error(&yaml, "server.grace_period", "whole seconds");
}

#[test]
fn a_file_access_log_needs_a_path() {
    let yaml = with_section("access_log: {target: file}");
    only_error(&yaml, "access_log.path", "`target: file` needs a `path`");
}

#[test]
fn an_access_log_path_without_a_file_target_is_rejected() {
    let yaml = with_section("access_log: {target: stdout, path: /tmp/a.log}");
    only_error(&yaml, "access_log.path", "only used with `target: file`");
}

#[test]
fn an_invalid_log_level_is_rejected_with_the_filter_error() {
    let yaml = with_section("logging: {level: 'portico=loud'}");
    only_error(
        &yaml,
        "logging.level",
        "invalid log filter \"portico=loud\"",
    );
}

// Upstreams.

#[test]
fn an_upstream_without_backends_is_rejected() {
    let yaml = with_upstream("{backends: []}");
    only_error(&yaml, "upstreams.users.backends", "at least one backend");
}

#[test]
fn backend_addresses_need_a_valid_host_and_port() {
    let cases = [
        ("users.internal", "has no port"),
        ("users.internal:0", "invalid port \"0\""),
        ("users.internal:70000", "invalid port \"70000\""),
        ("10.0.0.1:0", "has port 0"),
        ("::1:80", "invalid IPv6 address"),
        ("bad host:80", "\"bad host\" is not a valid hostname"),
        (":80", "\"\" is not a valid hostname"),
    ];
    for (address, fragment) in cases {
        let yaml = with_upstream(&format!("{{backends: [{{address: '{address}'}}]}}"));
        only_error(&yaml, "upstreams.users.backends[0].address", fragment);
    }
}

#[test]
fn backend_hostnames_and_bracketed_ipv6_are_accepted() {
    assert_loads(&with_upstream(
        "{backends: [{address: 'users-1.svc.cluster.local:8080'}, {address: '[::1]:80'}]}",
    ));
}

#[test]
fn a_backend_weight_of_zero_is_rejected() {
    let yaml = with_upstream("{backends: [{address: 'u:80'}, {address: 'v:80', weight: 0}]}");
    only_error(
        &yaml,
        "upstreams.users.backends[1].weight",
        "weight must be at least 1",
    );
}

#[test]
fn consistent_hash_without_a_hash_key_is_rejected() {
    let yaml = upstream("balance: consistent_hash");
    only_error(&yaml, "upstreams.users.balance", "needs a `hash_key`");
}

#[test]
fn a_hash_key_without_consistent_hash_is_rejected() {
    let yaml = upstream("hash_key: {source: client_ip}");
    only_error(
        &yaml,
        "upstreams.users.hash_key",
        "only used with `balance: consistent_hash`",
    );
}

#[test]
fn a_hash_key_header_must_be_a_valid_header_name() {
    let yaml = upstream("balance: consistent_hash, hash_key: {source: header, name: 'x user'}");
    only_error(
        &yaml,
        "upstreams.users.hash_key.name",
        "not a valid HTTP header name",
    );
}

#[test]
fn health_check_thresholds_must_be_at_least_one() {
    let yaml = upstream("health_check: {type: tcp, healthy_threshold: 0, unhealthy_threshold: 0}");
    let errors = errors_of(&yaml);
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "upstreams.users.health_check.healthy_threshold",
            "upstreams.users.health_check.unhealthy_threshold"
        ]
    );
    assert!(errors[0].message.contains("must be at least 1"));
}

#[test]
fn health_check_interval_and_timeout_must_be_positive() {
    let yaml = upstream("health_check: {type: tcp, interval: 0s}");
    only_error(
        &yaml,
        "upstreams.users.health_check.interval",
        "longer than 0",
    );
    let yaml = upstream("health_check: {type: tcp, timeout: 0ms}");
    only_error(
        &yaml,
        "upstreams.users.health_check.timeout",
        "longer than 0",
    );
}

#[test]
fn expected_statuses_must_be_http_statuses() {
    let yaml = upstream("health_check: {type: http, expect_status: [200, 99, 600]}");
    let errors = errors_of(&yaml);
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "upstreams.users.health_check.expect_status[1]",
            "upstreams.users.health_check.expect_status[2]"
        ]
    );
    assert_eq!(errors[1].message, "600 is not an HTTP status");
}

#[test]
fn an_http_health_check_path_must_start_with_a_slash() {
    let yaml = upstream("health_check: {type: http, path: healthz}");
    only_error(
        &yaml,
        "upstreams.users.health_check.path",
        "does not start with /",
    );
}

#[test]
fn upstream_timeouts_must_be_positive() {
    let yaml = upstream("timeouts: {connect: 0s, read: 0s, write: 0s, idle: 0s}");
    let errors = errors_of(&yaml);
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "upstreams.users.timeouts.connect",
            "upstreams.users.timeouts.read",
            "upstreams.users.timeouts.write"
        ]
    );
    assert_eq!(errors[0].message, "must be longer than 0");
}

#[test]
fn passive_ejection_needs_a_positive_ejection_time() {
    let yaml = upstream("passive_health: {consecutive_failures: 3, ejection_time: 0s}");
    only_error(
        &yaml,
        "upstreams.users.passive_health.ejection_time",
        "longer than 0",
    );
    assert_loads(&upstream(
        "passive_health: {consecutive_failures: 0, ejection_time: 0s}",
    ));
}

#[test]
fn max_ejection_percent_is_a_share_from_1_to_100() {
    for bad in ["0", "101"] {
        only_error(
            &upstream(&format!("passive_health: {{max_ejection_percent: {bad}}}")),
            "upstreams.users.passive_health.max_ejection_percent",
            "between 1 and 100",
        );
    }
    assert_loads(&upstream("passive_health: {max_ejection_percent: 100}"));
}

// Routes.

#[test]
fn an_empty_route_id_is_rejected() {
    only_error(
        &with_route("{id: '', upstream: users}"),
        "routes[0].id",
        "id is empty",
    );
}

#[test]
fn a_duplicate_route_id_is_reported_on_the_later_route() {
    let yaml = format!(
        "{}  - {{id: r, upstream: users}}\n",
        route("strip_prefix: false")
    );
    only_error(
        &yaml,
        "routes[1].id",
        "duplicate route id \"r\", already used by routes[0]",
    );
}

#[test]
fn a_route_to_an_undefined_upstream_lists_the_defined_ones() {
    let error = only_error(
        &with_route("{id: r, upstream: orders}"),
        "routes[0].upstream",
        "no upstream named \"orders\"",
    );
    assert_eq!(
        error.fix,
        "define upstreams.orders or point the route at one of: users"
    );
    let yaml = "version: 1\nlisteners: [{address: '127.0.0.1:80'}]\nroutes: [{id: r, upstream: x}]";
    let error = only_error(yaml, "routes[0].upstream", "no upstream named \"x\"");
    assert_eq!(error.fix, "define upstreams.x");
}

#[test]
fn exact_and_prefix_paths_must_start_with_a_slash() {
    let yaml = route("match: {path: {exact: health}}");
    only_error(
        &yaml,
        "routes[0].match.path.exact",
        "\"health\" does not start with /",
    );
    let yaml = route("match: {path: {prefix: api}}");
    let error = only_error(
        &yaml,
        "routes[0].match.path.prefix",
        "does not start with /",
    );
    assert!(error.fix.contains("/api"));
}

#[test]
fn a_prefix_ending_in_a_slash_is_rejected_unless_it_is_the_root() {
    let yaml = route("match: {path: {prefix: /api/}}");
    only_error(
        &yaml,
        "routes[0].match.path.prefix",
        "prefix \"/api/\" ends with /",
    );
    assert_loads(&route("match: {path: {prefix: /}}"));
}

#[test]
fn an_invalid_path_regex_is_rejected_with_the_regex_error() {
    let yaml = route("match: {path: {regex: '^/(a'}}");
    only_error(
        &yaml,
        "routes[0].match.path.regex",
        "invalid regex \"^/(a\": unclosed group",
    );
}

#[test]
fn invalid_header_and_query_regexes_are_rejected() {
    let yaml =
        route("match: {headers: [{name: x-a, regex: '[z-a]'}], query: [{name: q, regex: '(?<'}]}");
    let errors = errors_of(&yaml);
    assert_eq!(errors[0].path, "routes[0].match.headers[0].regex");
    assert!(
        errors[0].message.contains("invalid regex \"[z-a]\""),
        "{}",
        errors[0]
    );
    assert_eq!(errors[1].path, "routes[0].match.query[0].regex");
    assert_eq!(errors.len(), 2);
}

#[test]
fn a_value_match_with_both_value_and_regex_is_rejected() {
    let yaml = route("match: {query: [{name: v, value: '1', regex: '^1$'}]}");
    only_error(
        &yaml,
        "routes[0].match.query[0]",
        "both `value` and `regex` are set",
    );
}

#[test]
fn an_invalid_header_name_is_rejected() {
    let yaml = route("match: {headers: [{name: 'x tenant'}]}");
    only_error(
        &yaml,
        "routes[0].match.headers[0].name",
        "\"x tenant\" is not a valid HTTP header",
    );
}

#[test]
fn an_empty_query_parameter_name_is_rejected() {
    let yaml = route("match: {query: [{name: ''}]}");
    only_error(&yaml, "routes[0].match.query[0].name", "name is empty");
}

#[test]
fn an_invalid_method_is_rejected() {
    let yaml = route("match: {methods: [get, 'PO ST']}");
    only_error(
        &yaml,
        "routes[0].match.methods[1]",
        "\"PO ST\" is not a valid HTTP method",
    );
}

#[test]
fn a_wildcard_anywhere_but_the_first_label_is_rejected() {
    for host in ["api.*.com", "*", "*.", "a*.example.com", "*.*.example.com"] {
        let yaml = route(&format!("match: {{hosts: ['{host}']}}"));
        only_error(&yaml, "routes[0].match.hosts[0]", "invalid wildcard host");
    }
}

#[test]
fn an_empty_host_is_rejected() {
    let yaml = route("match: {hosts: ['']}");
    only_error(&yaml, "routes[0].match.hosts[0]", "the host is empty");
}

#[test]
fn strip_prefix_needs_a_prefix_match() {
    let yaml = route("strip_prefix: true");
    only_error(
        &yaml,
        "routes[0].strip_prefix",
        "needs a `path: {prefix: ..}` match",
    );
    let yaml = route("strip_prefix: true, match: {path: {exact: /a}}");
    only_error(
        &yaml,
        "routes[0].strip_prefix",
        "needs a `path: {prefix: ..}` match",
    );
}

#[test]
fn rewrite_and_strip_prefix_together_are_rejected() {
    let yaml = route(
        "strip_prefix: true, match: {path: {prefix: /a}}, rewrite: {regex: '^/a', replace: /}",
    );
    only_error(&yaml, "routes[0].rewrite", "cannot be combined");
}

#[test]
fn an_invalid_rewrite_regex_is_rejected() {
    let yaml = route("rewrite: {regex: '*a', replace: /b}");
    only_error(&yaml, "routes[0].rewrite.regex", "invalid regex \"*a\"");
}

#[test]
fn an_invalid_upstream_host_is_rejected() {
    let yaml = route("upstream_host: \"bad\\nhost\"");
    only_error(&yaml, "routes[0].upstream_host", "not a valid Host header");
}

#[test]
fn a_hash_key_cookie_needs_a_non_empty_name() {
    let yaml = upstream("balance: consistent_hash, hash_key: {source: cookie, name: ' '}");
    only_error(
        &yaml,
        "upstreams.users.hash_key.name",
        "the cookie name is empty",
    );
}

#[test]
fn a_client_ip_hash_key_takes_no_name() {
    let yaml = upstream("balance: consistent_hash, hash_key: {source: client_ip, name: x}");
    only_error(
        &yaml,
        "upstreams.users.hash_key",
        "source `client_ip` takes no `name`",
    );
}

#[test]
fn every_problem_reads_as_one_line() {
    let yaml = route(
        "match: {path: {regex: '(('}, hosts: ['a.*'], methods: ['G T']}, \
         rewrite: {regex: '[', replace: x}",
    );
    let errors = errors_of(&yaml);
    assert_eq!(errors.len(), 4);
    for error in errors {
        let line = error.to_string();
        assert!(!line.contains('\n'), "{line}");
    }
}

#[test]
fn a_rewrite_replacement_that_is_not_a_valid_path_is_rejected() {
    for replace in ["'/a b$1'", "\"/a\\u0000\"", "'/a<b>'"] {
        let yaml = route(&format!(
            "rewrite: {{regex: '^/(.*)$', replace: {replace}}}"
        ));
        only_error(
            &yaml,
            "routes[0].rewrite.replace",
            "characters a URL path cannot",
        );
    }
    assert_loads(&route(
        "rewrite: {regex: '^/(.*)$', replace: '/v2/$1-%20{x}|~'}",
    ));
}

#[test]
fn an_undefined_upstream_name_with_a_line_break_stays_on_one_line() {
    let error = only_error(
        &with_route("{id: r, upstream: \"a\\nb\"}"),
        "routes[0].upstream",
        "no upstream named \"a\\nb\"",
    );
    assert_eq!(
        error.fix,
        "define upstreams.\"a\\nb\" or point the route at one of: users"
    );
}

#[test]
fn a_rewrite_replacement_with_a_query_is_rejected() {
    let yaml =
        with_route("{id: r, upstream: users, rewrite: {regex: '^/(.*)$', replace: '/v2/$1?x=1'}}");
    only_error(&yaml, "routes[0].rewrite.replace", "may not contain '?'");
}

#[test]
fn a_health_check_interval_under_100ms_is_rejected() {
    let yaml =
        with_upstream("{backends: [{address: 'u:80'}], health_check: {type: tcp, interval: 10ms}}");
    only_error(
        &yaml,
        "upstreams.users.health_check.interval",
        "under 100ms",
    );
}

#[test]
fn an_upstream_with_more_than_ten_thousand_backends_is_rejected() {
    let backends: Vec<String> = (0..10_001)
        .map(|i| format!("{{address: '10.0.{}.{}:80'}}", i / 250, i % 250))
        .collect();
    let yaml = with_upstream(&format!("{{backends: [{}]}}", backends.join(", ")));
    only_error(
        &yaml,
        "upstreams.users.backends",
        "more than one upstream takes",
    );
}
