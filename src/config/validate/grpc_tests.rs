//! Tests of the gRPC settings' checks.

use crate::config::load_str_with_env;
use crate::config::schema::{PathMatchSpec, UpstreamProtocol};
use crate::config::test_support::{only_error, with_route, with_upstream};

/// A file with an h2c upstream `users` and the single route `route`.
fn with_grpc_route(route: &str) -> String {
    with_route(route).replace(
        "users: {backends: [{address: 'u:80'}]}",
        "users: {backends: [{address: 'u:80'}], protocol: h2c}",
    )
}

#[test]
fn a_grpc_route_to_an_http1_upstream_is_rejected() {
    let yaml = with_route("{id: r, upstream: users, match: {grpc: {service: a.B}}}");
    let e = only_error(&yaml, "routes[0].upstream", "needs an HTTP/2 upstream");
    assert!(e.fix.contains("upstreams.users"), "{e}");
}

#[test]
fn a_grpc_match_becomes_an_exact_path_for_a_method_and_a_prefix_for_a_service() {
    let yaml = with_grpc_route(
        "{id: r, upstream: users, match: {grpc: {service: pkg.v1.Svc, method: Get}}}",
    );
    let config = load_str_with_env(&yaml, &|_| None).unwrap();
    let path = config.routes[0].matches.path.clone();
    assert_eq!(path, Some(PathMatchSpec::Exact("/pkg.v1.Svc/Get".into())));
    let yaml = with_grpc_route("{id: r, upstream: users, match: {grpc: {service: pkg.v1.Svc}}}");
    let config = load_str_with_env(&yaml, &|_| None).unwrap();
    let path = config.routes[0].matches.path.clone();
    assert_eq!(path, Some(PathMatchSpec::Prefix("/pkg.v1.Svc".into())));
}

#[test]
fn a_grpc_name_with_a_slash_or_nothing_in_it_is_rejected() {
    let yaml = with_grpc_route("{id: r, upstream: users, match: {grpc: {service: 'pkg/Svc'}}}");
    only_error(
        &yaml,
        "routes[0].match.grpc.service",
        "\"pkg/Svc\" is not a gRPC name",
    );
    let yaml =
        with_grpc_route("{id: r, upstream: users, match: {grpc: {service: a.B, method: ''}}}");
    only_error(
        &yaml,
        "routes[0].match.grpc.method",
        "\"\" is not a gRPC name",
    );
}

#[test]
fn a_grpc_match_beside_a_path_match_is_rejected() {
    let yaml = with_grpc_route(
        "{id: r, upstream: users, match: {grpc: {service: a.B}, path: {prefix: /x}}}",
    );
    only_error(&yaml, "routes[0].match.grpc", "either `grpc` or `path`");
}

#[test]
fn h2_without_tls_is_rejected_and_h2c_loads() {
    let yaml = with_upstream("{backends: [{address: 'u:80'}], protocol: h2}");
    let e = only_error(&yaml, "upstreams.users.protocol", "has no `tls`");
    assert!(e.fix.contains("h2c"));
    let yaml = with_upstream("{backends: [{address: 'u:80'}], protocol: h2c}");
    let config = load_str_with_env(&yaml, &|_| None).unwrap();
    let users = &config.upstreams["users"];
    assert_eq!(
        (users.protocol, users.max_h2_streams),
        (UpstreamProtocol::H2c, 100)
    );
}

#[test]
fn max_h2_streams_must_be_positive() {
    let yaml = with_upstream("{backends: [{address: 'u:80'}], protocol: h2c, max_h2_streams: 0}");
    only_error(&yaml, "upstreams.users.max_h2_streams", "outside 1 to");
}

#[test]
fn an_unknown_protocol_is_rejected() {
    let yaml = with_upstream("{backends: [{address: 'u:80'}], protocol: http3}");
    only_error(&yaml, "upstreams.users.protocol", "http3");
}

#[test]
fn a_grpc_health_check_needs_an_http2_upstream() {
    let yaml = with_upstream("{backends: [{address: 'u:80'}], health_check: {type: grpc}}");
    only_error(
        &yaml,
        "upstreams.users.health_check.type",
        "needs an HTTP/2 upstream",
    );
    let yaml = with_upstream(
        "{backends: [{address: 'u:80'}], protocol: h2c, \
         health_check: {type: grpc, service: shop.v1.Orders}}",
    );
    let config = load_str_with_env(&yaml, &|_| None).unwrap();
    let check = config.upstreams["users"].health_check.clone().unwrap();
    assert_eq!(check.service.as_deref(), Some("shop.v1.Orders"));
}

#[test]
fn a_service_on_a_check_that_is_not_grpc_is_rejected() {
    let yaml =
        with_upstream("{backends: [{address: 'u:80'}], health_check: {type: tcp, service: x}}");
    only_error(
        &yaml,
        "upstreams.users.health_check.service",
        "only used by `type: grpc`",
    );
}
