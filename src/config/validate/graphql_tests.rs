//! Config errors of `routes[].graphql`, each named by its key path.

use crate::config::load_str_with_env;
use crate::config::schema::GraphqlOperationType;
use crate::config::test_support::{errors_of, only_error, with_route};

const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

#[test]
fn a_full_graphql_section_loads() {
    let yaml = with_route(&format!(
        "{{id: gql, upstream: users, graphql: {{max_body_bytes: 32KiB, max_depth: 8, \
         max_aliases: 20, max_root_fields: 10, max_complexity: 500, max_batch: 5, \
         introspection: false, persisted_queries: ['{HASH}'], \
         operations: [{{type: mutation, upstream: users}}, \
         {{type: query, name: Me, upstream: users}}]}}}}"
    ));
    let config = load_str_with_env(&yaml, &|_| None).unwrap_or_else(|e| panic!("{e}"));
    let spec = config.route_graphql[0].as_ref().unwrap();
    assert_eq!(spec.max_body_bytes.map(|s| s.0), Some(32 * 1024));
    assert!(!spec.introspection);
    assert_eq!(spec.operations[1].kind, GraphqlOperationType::Query);
    assert_eq!(spec.operations[1].name.as_deref(), Some("Me"));
}

#[test]
fn introspection_is_allowed_unless_turned_off() {
    let yaml = with_route("{id: gql, upstream: users, graphql: {max_depth: 3}}");
    let config = load_str_with_env(&yaml, &|_| None).unwrap_or_else(|e| panic!("{e}"));
    assert!(config.route_graphql[0].as_ref().unwrap().introspection);
    assert!(config.route_graphql.len() == 1);
}

#[test]
fn an_operation_rule_naming_an_unknown_upstream_is_an_error() {
    let yaml = with_route(
        "{id: gql, upstream: users, graphql: {operations: [{type: mutation, upstream: primary}]}}",
    );
    let e = only_error(
        &yaml,
        "routes[0].graphql.operations[0].upstream",
        "no upstream named \"primary\"",
    );
    assert!(e.fix.contains("upstreams.primary"), "{e}");
}

#[test]
fn a_body_cap_over_the_64kib_pingora_replays_is_an_error() {
    let yaml = with_route("{id: gql, upstream: users, graphql: {max_body_bytes: 1MiB}}");
    let e = only_error(
        &yaml,
        "routes[0].graphql.max_body_bytes",
        "outside 1..=65536",
    );
    assert!(e.fix.contains("64KiB"), "{e}");
}

#[test]
fn a_limit_of_zero_and_a_hash_that_is_not_one_are_errors() {
    let yaml =
        with_route("{id: gql, upstream: users, graphql: {max_depth: 0, persisted_queries: [abc]}}");
    let paths: Vec<String> = errors_of(&yaml).into_iter().map(|e| e.path).collect();
    assert_eq!(
        paths,
        [
            "routes[0].graphql.max_depth",
            "routes[0].graphql.persisted_queries[0]"
        ]
    );
}

#[test]
fn an_unknown_operation_type_or_key_is_rejected_with_its_path() {
    let yaml = with_route(
        "{id: gql, upstream: users, graphql: {operations: [{type: query2, upstream: users}]}}",
    );
    let errors = errors_of(&yaml);
    assert!(
        errors[0]
            .path
            .starts_with("routes[0].graphql.operations[0]"),
        "{}",
        errors[0]
    );
    let yaml = with_route("{id: gql, upstream: users, graphql: {max_dept: 3}}");
    assert!(errors_of(&yaml)[0].path.starts_with("routes[0].graphql"));
}

#[test]
fn the_graphql_example_file_loads() {
    let text = include_str!("../../../conf/examples/graphql.yaml");
    let config = load_str_with_env(text, &|_| None).unwrap_or_else(|e| panic!("{e}"));
    let spec = config.route_graphql[0].as_ref().unwrap();
    assert_eq!(spec.operations.len(), 4);
}

#[test]
fn max_aliases_of_zero_loads_as_no_aliases_allowed() {
    let yaml = with_route("{id: gql, upstream: users, graphql: {max_aliases: 0}}");
    let config = load_str_with_env(&yaml, &|_| None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        config.route_graphql[0].as_ref().unwrap().max_aliases,
        Some(0)
    );
}
