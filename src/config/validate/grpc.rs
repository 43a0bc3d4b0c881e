//! Checks of the gRPC settings: an upstream's protocol and stream limit, and
//! the `match.grpc` shorthand, which is turned into a `path` match here so
//! that the router needs to know nothing of gRPC.

use crate::config::schema::RouteSpec;
use crate::config::schema::{
    HealthCheckKind, MatchSpec, PathMatchSpec, UpstreamProtocol, UpstreamSpec,
};
use crate::config::{index_path, ConfigError};

/// More concurrent streams than any server allows on one connection
/// (HTTP/2 servers advertise from 100 to a few thousand).
const MAX_H2_STREAMS: usize = 10_000;

/// Checks `protocol` and `max_h2_streams` of the upstream at `path`.
pub(super) fn check_upstream(path: &str, upstream: &UpstreamSpec, errors: &mut Vec<ConfigError>) {
    if upstream.protocol == UpstreamProtocol::H2 && upstream.tls.is_none() {
        errors.push(ConfigError::new(
            format!("{path}.protocol"),
            "`protocol: h2` is HTTP/2 over TLS, but the upstream has no `tls`",
            "add `tls: {}` (with `ca:` for a private CA), or use `protocol: h2c` \
             for cleartext HTTP/2",
        ));
    }
    if let Some(check) = &upstream.health_check {
        let grpc = check.kind == HealthCheckKind::Grpc;
        if grpc && !upstream.protocol.is_h2() {
            errors.push(ConfigError::new(
                format!("{path}.health_check.type"),
                "a gRPC health check needs an HTTP/2 upstream",
                "set `protocol: h2c` (or `h2` with `tls`) on the upstream, or use \
                 `type: tcp` or `type: http`",
            ));
        }
        if !grpc && check.service.is_some() {
            errors.push(ConfigError::new(
                format!("{path}.health_check.service"),
                "`service` is only used by `type: grpc` and would be ignored",
                "set `type: grpc` or remove service",
            ));
        }
    }
    if !(1..=MAX_H2_STREAMS).contains(&upstream.max_h2_streams) {
        errors.push(ConfigError::new(
            format!("{path}.max_h2_streams"),
            format!(
                "{} is outside 1 to {MAX_H2_STREAMS}",
                upstream.max_h2_streams
            ),
            "set the concurrent streams per HTTP/2 connection, like 100",
        ));
    }
}

/// Checks `match.grpc` at `path` (the route's `match`) and turns it into the
/// equivalent `path` match: `/pkg.Svc/Method` exactly, or `/pkg.Svc` as a
/// prefix, which the router matches on whole segments.
pub(super) fn compile_match(path: &str, matches: &mut MatchSpec, errors: &mut Vec<ConfigError>) {
    let Some(grpc) = &matches.grpc else {
        return;
    };
    if matches.path.is_some() {
        errors.push(ConfigError::new(
            format!("{path}.grpc"),
            "a route matches either `grpc` or `path`, not both",
            "remove `path`: `grpc` already matches the path /service/method",
        ));
        return;
    }
    let mut valid = check_name(&format!("{path}.grpc.service"), &grpc.service, errors);
    if let Some(method) = &grpc.method {
        valid &= check_name(&format!("{path}.grpc.method"), method, errors);
    }
    if valid {
        matches.path = Some(match &grpc.method {
            Some(method) => PathMatchSpec::Exact(format!("/{}/{method}", grpc.service)),
            None => PathMatchSpec::Prefix(format!("/{}", grpc.service)),
        });
    }
}

/// A route that matches gRPC must go to an HTTP/2 pool: over HTTP/1.1 the
/// calls would lose their trailers, and with them their status.
pub(super) fn check_routes(
    routes: &[(usize, RouteSpec)],
    upstreams: &[(String, UpstreamSpec)],
    errors: &mut Vec<ConfigError>,
) {
    for (i, route) in routes {
        if route.matches.grpc.is_none() {
            continue;
        }
        let pool = upstreams.iter().find(|(name, _)| *name == route.upstream);
        if let Some((name, _)) = pool.filter(|(_, spec)| !spec.protocol.is_h2()) {
            errors.push(ConfigError::new(
                format!("{}.upstream", index_path("routes", *i)),
                format!("a gRPC route needs an HTTP/2 upstream, and {name:?} speaks HTTP/1.1"),
                format!("set `protocol: h2c` (or `h2` with `tls`) on upstreams.{name}"),
            ));
        }
    }
}

/// A service or method name is a non-empty protobuf identifier path: no `/`,
/// nothing a path normaliser would change.
fn check_name(path: &str, name: &str, errors: &mut Vec<ConfigError>) -> bool {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
        && !name.starts_with('.')
        && !name.ends_with('.')
        && !name.contains("..");
    if !ok {
        errors.push(ConfigError::new(
            path,
            format!("{name:?} is not a gRPC name"),
            "write the name as the .proto declares it, like `shop.v1.Orders` for a \
             service (package included) or `GetOrder` for a method; no `/`",
        ));
    }
    ok
}

#[cfg(test)]
#[path = "grpc_tests.rs"]
mod tests;
