//! Tests of parsing, env expansion in whole files, the top-level keys and the
//! paths and wording of deserialization errors.

use std::time::Duration;

use crate::config::test_support::{errors_of, only_error, with_route, with_section, with_upstream};
use crate::config::{load_str_with_env, Config, ConfigError};

fn load_with(yaml: &str, vars: &[(&str, &str)]) -> Result<Config, Vec<ConfigError>> {
    let lookup = |name: &str| {
        vars.iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| (*value).to_owned())
    };
    load_str_with_env(yaml, &lookup).map_err(|e| e.0)
}

#[test]
fn a_yaml_syntax_error_is_one_error_with_its_line() {
    let error = only_error("version: 1\nlisteners: [\n", "(file)", "invalid YAML");
    assert!(error.fix.contains("line 3"), "{error}");
}

#[test]
fn a_file_with_two_documents_is_rejected() {
    only_error(
        "version: 1\n---\nversion: 1\n",
        "(file)",
        "more than one document",
    );
}

#[test]
fn a_file_that_is_not_a_map_is_rejected() {
    only_error("- version: 1\n", "(file)", "a list, not a map of settings");
}

#[test]
fn a_missing_version_is_an_error() {
    let error = only_error(
        "listeners: [{address: '127.0.0.1:80'}]",
        "version",
        "missing",
    );
    assert!(error.fix.contains("version: 1"));
}

#[test]
fn a_version_other_than_1_is_an_error() {
    let yaml = "version: 2\nlisteners: [{address: '127.0.0.1:80'}]";
    only_error(yaml, "version", "unsupported version 2");
    let yaml = "version: one\nlisteners: [{address: '127.0.0.1:80'}]";
    only_error(
        yaml,
        "version",
        "must be the number 1, not the string \"one\"",
    );
}

#[test]
fn an_unknown_top_level_key_lists_the_allowed_keys() {
    let error = only_error(
        &with_section("listener: []"),
        "listener",
        "unknown top-level key `listener`",
    );
    assert!(
        error.fix.contains("version, server, listeners, admin"),
        "{error}"
    );
}

#[test]
fn an_unknown_key_names_the_key_and_lists_the_accepted_ones() {
    let yaml = "version: 1\nlisteners: [{address: '127.0.0.1:80', port: 80}]";
    let error = only_error(yaml, "listeners[0].port", "unknown key `port`");
    assert_eq!(
        error.fix,
        "remove it or use one of the accepted keys: address, h2c, tls, https_redirect, \
         proxy_protocol"
    );
}

#[test]
fn an_unknown_key_deep_in_a_route_has_its_full_path() {
    let yaml = with_route("{id: r, upstream: users, match: {pth: {prefix: /a}}}");
    let error = only_error(&yaml, "routes[0].match.pth", "unknown key `pth`");
    assert!(error.fix.contains("hosts, path, methods, headers, query"));
}

#[test]
fn an_unknown_key_in_an_upstream_has_its_full_path() {
    let yaml = with_upstream("{backends: [{address: 'u:80'}], timeouts: {conect: 1s}}");
    only_error(
        &yaml,
        "upstreams.users.timeouts.conect",
        "unknown key `conect`",
    );
}

#[test]
fn a_missing_required_key_is_reported_on_its_parent() {
    let error = only_error(
        &with_route("{id: r}"),
        "routes[0]",
        "missing required key `upstream`",
    );
    assert_eq!(error.fix, "add `upstream`");
}

#[test]
fn a_value_of_the_wrong_type_says_what_to_write() {
    let yaml = "version: 1\nlisteners: [{address: '127.0.0.1:80', h2c: maybe}]";
    let error = only_error(yaml, "listeners[0].h2c", "invalid type: string \"maybe\"");
    assert_eq!(error.fix, "write true or false here");
    let yaml = with_section("server: {threads: -1}");
    let error = only_error(&yaml, "server.threads", "invalid value: integer `-1`");
    assert!(error.fix.contains("whole number"), "{error}");
}

#[test]
fn an_unknown_enum_value_lists_the_accepted_values() {
    let yaml = with_upstream("{backends: [{address: 'u:80'}], balance: round_robbin}");
    let error = only_error(
        &yaml,
        "upstreams.users.balance",
        "unknown value `round_robbin`",
    );
    assert_eq!(
        error.fix,
        "use one of: round_robin, consistent_hash, least_requests, random"
    );
}

#[test]
fn durations_with_units_are_accepted() {
    let yaml = with_upstream(
        "{backends: [{address: 'u:80'}], timeouts: {connect: 250ms, read: 5s, write: 1m}}",
    );
    let config = load_with(&yaml, &[]).expect("the durations are valid");
    let timeouts = &config.upstreams["users"].timeouts;
    assert_eq!(timeouts.connect.0, Duration::from_millis(250));
    assert_eq!(timeouts.read.0, Duration::from_secs(5));
    assert_eq!(timeouts.write.0, Duration::from_secs(60));
}

#[test]
fn a_duration_in_words_is_rejected_with_its_path() {
    let yaml = with_upstream("{backends: [{address: 'u:80'}], timeouts: {connect: 5 seconds lol}}");
    let error = only_error(
        &yaml,
        "upstreams.users.timeouts.connect",
        "invalid duration \"5 seconds lol\"",
    );
    assert_eq!(error.fix, "write it like 250ms, 5s, 1m or 1h");
}

#[test]
fn a_duration_without_a_unit_is_rejected() {
    let yaml = with_section("server: {grace_period: 5}");
    let error = only_error(&yaml, "server.grace_period", "invalid type: integer `5`");
    assert!(error.fix.contains("a duration with a unit"), "{error}");
}

#[test]
fn a_path_match_with_an_unknown_kind_is_rejected() {
    let yaml = with_route("{id: r, upstream: users, match: {path: {prefx: /a}}}");
    let error = only_error(&yaml, "routes[0].match.path.prefx", "unknown key `prefx`");
    assert!(error.fix.contains("exact, prefix, regex"));
}

#[test]
fn a_path_match_with_two_kinds_is_rejected() {
    let yaml = with_route("{id: r, upstream: users, match: {path: {exact: /a, prefix: /b}}}");
    only_error(&yaml, "routes[0].match.path", "takes one kind only");
}

#[test]
fn a_path_match_written_as_a_string_is_rejected() {
    let yaml = with_route("{id: r, upstream: users, match: {path: /a}}");
    let error = only_error(&yaml, "routes[0].match.path", "invalid type: string \"/a\"");
    assert!(error.fix.contains("one of `exact`, `prefix` or `regex`"));
}

#[test]
fn a_header_hash_key_without_a_name_is_rejected() {
    let yaml = with_upstream(
        "{backends: [{address: 'u:80'}], balance: consistent_hash, hash_key: {source: header}}",
    );
    let error = only_error(
        &yaml,
        "upstreams.users.hash_key",
        "source `header` needs a `name`",
    );
    assert!(error.fix.contains("add `name:`"));
}

#[test]
fn a_hash_key_with_an_unknown_key_is_rejected() {
    let yaml = with_upstream(
        "{backends: [{address: 'u:80'}], balance: consistent_hash, \
         hash_key: {source: path, header: x}}",
    );
    only_error(
        &yaml,
        "upstreams.users.hash_key.header",
        "unknown key `header`",
    );
}

#[test]
fn trusted_proxies_accept_networks_and_bare_addresses() {
    let yaml = with_section("trusted_proxies: [10.0.0.0/8, 192.0.2.7, '2001:db8::1']");
    let config = load_with(&yaml, &[]).expect("the proxies are valid");
    let proxies: Vec<String> = config
        .trusted_proxies
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(proxies, ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::1/128"]);
}

#[test]
fn an_invalid_trusted_proxy_is_rejected_with_its_index() {
    let yaml = with_section("trusted_proxies: [10.0.0.0/8, 10.0.0.300]");
    only_error(
        &yaml,
        "trusted_proxies[1]",
        "neither an IP address nor a CIDR network",
    );
}

#[test]
fn a_list_section_written_as_a_map_is_rejected() {
    let yaml = "version: 1\nlisteners: {address: '127.0.0.1:80'}";
    only_error(yaml, "listeners", "expected a list, found a map");
}

#[test]
fn upstreams_written_as_a_list_are_rejected() {
    let yaml = with_section("upstreams: [{backends: []}]");
    only_error(&yaml, "upstreams", "expected a map of named upstreams");
}

#[test]
fn an_empty_section_means_its_defaults() {
    let config = load_with(&with_section("server:\nlogging:"), &[]).expect("valid");
    assert_eq!(config.server.threads, 2);
    assert_eq!(config.logging.level, "info");
}

#[test]
fn a_broken_route_does_not_shift_the_paths_of_the_next() {
    let yaml = format!(
        "{}  - {{id: b, upstream: nowhere}}\n",
        with_route("{id: a, upstream: users, bogus: 1}")
    );
    let paths: Vec<String> = errors_of(&yaml).into_iter().map(|e| e.path).collect();
    assert_eq!(paths, ["routes[0].bogus", "routes[1].upstream"]);
}

#[test]
fn a_route_to_a_broken_upstream_is_not_blamed_for_it() {
    let yaml = format!(
        "{}routes: [{{id: a, upstream: users}}]\n",
        with_upstream("{backends: [], retries: many}")
    );
    only_error(
        &yaml,
        "upstreams.users.retries",
        "invalid type: string \"many\"",
    );
}

#[test]
fn anchors_and_merge_keys_are_resolved() {
    let yaml = format!(
        "{}upstreams:\n  a: &pool {{backends: [{{address: 'a:1'}}], retries: 0}}\n  \
         b: {{<<: *pool, retries: 3}}\n",
        with_section("")
    );
    let config = load_with(&yaml, &[]).expect("valid");
    assert_eq!(config.upstreams["b"].backends[0].address, "a:1");
    assert_eq!(config.upstreams["b"].retries, 3);
}

#[test]
fn env_variables_fill_numbers_bools_and_embedded_text() {
    let yaml = "version: 1
server: {threads: '${THREADS}', work_stealing: '${STEAL}'}
listeners: [{address: '${IP}:${PORT}'}]
";
    let vars = [
        ("THREADS", "8"),
        ("STEAL", "false"),
        ("IP", "127.0.0.1"),
        ("PORT", "9000"),
    ];
    let config = load_with(yaml, &vars).expect("every variable is set");
    assert_eq!(config.server.threads, 8);
    assert!(!config.server.work_stealing);
    assert_eq!(config.listeners[0].address, "127.0.0.1:9000");
}

#[test]
fn an_escaped_reference_reaches_the_config_literally() {
    let yaml = with_section("server: {pid_file: '/run/$${USER}.pid'}");
    let config = load_with(&yaml, &[]).expect("valid");
    assert_eq!(config.server.pid_file, "/run/${USER}.pid");
}

#[test]
fn an_unset_env_variable_is_reported_with_its_key_path() {
    let yaml = "version: 1\nlisteners: [{address: '0.0.0.0:${PORT}'}]";
    let errors = load_with(yaml, &[]).expect_err("PORT is unset");
    assert_eq!(errors[0].path, "listeners[0].address");
    assert_eq!(errors[0].message, "environment variable PORT is not set");
    assert_eq!(errors[0].fix, "export PORT or remove the reference");
}

#[test]
fn an_env_variable_cannot_inject_structure() {
    let yaml = "version: 1\nlisteners: '${LISTENERS}'";
    let errors = load_with(yaml, &[("LISTENERS", "[{address: '0.0.0.0:80'}]")])
        .expect_err("the value stays a string");
    assert_eq!(errors[0].path, "listeners");
    assert!(errors[0]
        .message
        .contains("expected a list, found the string"));
}

#[test]
fn an_unset_variable_is_reported_once_not_again_as_a_bad_value() {
    let yaml = "version: 1\nlisteners:\n  - address: ${NO_SUCH_ADDR}\n";
    let errors = crate::config::test_support::errors_of(yaml);
    let at_address: Vec<_> = errors
        .iter()
        .filter(|e| e.path == "listeners[0].address")
        .collect();
    assert_eq!(at_address.len(), 1, "{errors:?}");
    assert!(at_address[0].message.contains("NO_SUCH_ADDR is not set"));
}
