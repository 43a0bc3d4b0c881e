//! Checks of the routes: ids, upstream references, match predicates and the
//! path rewriting options. Hosts are lowercased and methods uppercased here.

use std::collections::HashMap;

use http::{HeaderName, HeaderValue, Method};

use super::check_regex;
use super::upstreams::invalid_header_name;
use crate::config::schema::{MatchSpec, PathMatchSpec, RouteSpec, ValueMatchSpec, WebSocketSpec};
use crate::config::{index_path, key_path, ConfigError};

/// Checks and normalises `routes`, each paired with its index in the file.
/// `upstream_names` are the upstreams written in the file, valid or not, so a
/// route is not blamed for an upstream that has problems of its own.
pub(super) fn check(
    routes: &mut [(usize, RouteSpec)],
    upstream_names: &[String],
    errors: &mut Vec<ConfigError>,
) {
    let mut first_use: HashMap<String, usize> = HashMap::new();
    for (i, route) in routes.iter_mut() {
        let path = index_path("routes", *i);
        check_id(&path, &route.id, *i, &mut first_use, errors);
        check_upstream(&path, &route.upstream, upstream_names, errors);
        check_match(&format!("{path}.match"), &mut route.matches, errors);
        check_forwarding(&path, route, errors);
        if let Some(ws) = &mut route.websocket {
            check_websocket(&format!("{path}.websocket"), ws, errors);
        }
    }
}

/// Origins are lowercased to compare with what browsers send; the timers
/// must leave room for a ping to be answered.
fn check_websocket(path: &str, ws: &mut WebSocketSpec, errors: &mut Vec<ConfigError>) {
    for (i, origin) in ws.origins.iter_mut().enumerate() {
        *origin = origin.trim().to_ascii_lowercase();
        let well_formed = origin
            .split_once("://")
            .is_some_and(|(scheme, rest)| !scheme.is_empty() && !rest.is_empty())
            && !origin.ends_with('/');
        if !well_formed {
            errors.push(ConfigError::new(
                format!("{path}.origins[{i}]"),
                format!("{origin:?} is not an origin"),
                "write scheme, host and optional port, without a path: https://app.example.com",
            ));
        }
    }
    if ws.max_message_size.0 == 0 {
        errors.push(ConfigError::new(
            format!("{path}.max_message_size"),
            "a maximum message size of 0 refuses every message",
            "set a size such as 64KiB or 1MiB, or leave it out for the 1MiB default",
        ));
    }
    if ws.idle_timeout.0.is_zero() {
        errors.push(ConfigError::new(
            format!("{path}.idle_timeout"),
            "an idle timeout of 0 would close every connection at once",
            "set a duration such as 60s, or leave it out for the default",
        ));
    } else if ws.ping_interval.0 >= ws.idle_timeout.0 {
        errors.push(ConfigError::new(
            format!("{path}.ping_interval"),
            "the first ping would go out only after the idle timeout has closed the connection",
            "make ping_interval shorter than idle_timeout (for example half), or 0s for no pings",
        ));
    }
    if ws.max_connections == Some(0) {
        errors.push(ConfigError::new(
            format!("{path}.max_connections"),
            "max_connections of 0 refuses every connection",
            "set a positive number, or leave it out for no limit",
        ));
    }
}

fn check_id(
    path: &str,
    id: &str,
    index: usize,
    first_use: &mut HashMap<String, usize>,
    errors: &mut Vec<ConfigError>,
) {
    if id.trim().is_empty() {
        errors.push(ConfigError::new(
            format!("{path}.id"),
            "the route id is empty",
            "give the route a unique, non-empty id; it names the route in metrics and logs",
        ));
        return;
    }
    if let Some(first) = first_use.get(id) {
        errors.push(ConfigError::new(
            format!("{path}.id"),
            format!("duplicate route id {id:?}, already used by routes[{first}]"),
            "give each route a unique id",
        ));
        return;
    }
    first_use.insert(id.to_owned(), index);
}

fn check_upstream(
    path: &str,
    upstream: &str,
    upstream_names: &[String],
    errors: &mut Vec<ConfigError>,
) {
    if upstream_names.iter().any(|name| name == upstream) {
        return;
    }
    // Names are quoted when they are not plain, so a name with a line break
    // cannot split the one-line error.
    let mut names: Vec<String> = upstream_names.iter().map(|n| key_path("", n)).collect();
    names.sort_unstable();
    let define = format!("define {}", key_path("upstreams", upstream));
    let fix = if names.is_empty() {
        define
    } else {
        format!(
            "{define} or point the route at one of: {}",
            names.join(", ")
        )
    };
    errors.push(ConfigError::new(
        format!("{path}.upstream"),
        format!("no upstream named {upstream:?}"),
        fix,
    ));
}

fn check_match(path: &str, matches: &mut MatchSpec, errors: &mut Vec<ConfigError>) {
    for (i, host) in matches.hosts.iter_mut().enumerate() {
        *host = host.to_ascii_lowercase();
        check_host(&index_path(&format!("{path}.hosts"), i), host, errors);
    }
    super::grpc::compile_match(path, matches, errors);
    if let Some(spec) = &matches.path {
        check_path(&format!("{path}.path"), spec, errors);
    }
    for (i, method) in matches.methods.iter_mut().enumerate() {
        *method = method.to_ascii_uppercase();
        if Method::from_bytes(method.as_bytes()).is_err() {
            errors.push(ConfigError::new(
                index_path(&format!("{path}.methods"), i),
                format!("{method:?} is not a valid HTTP method"),
                "use a method name such as GET, POST, PUT, PATCH or DELETE",
            ));
        }
    }
    for (i, header) in matches.headers.iter().enumerate() {
        let at = index_path(&format!("{path}.headers"), i);
        if HeaderName::from_bytes(header.name.as_bytes()).is_err() {
            errors.push(invalid_header_name(format!("{at}.name"), &header.name));
        }
        check_value_match(&at, header, errors);
    }
    for (i, param) in matches.query.iter().enumerate() {
        let at = index_path(&format!("{path}.query"), i);
        if param.name.is_empty() {
            errors.push(ConfigError::new(
                format!("{at}.name"),
                "the query parameter name is empty",
                "write the name of the parameter to match",
            ));
        }
        check_value_match(&at, param, errors);
    }
}

/// Exact names or `*.suffix`; a `*` anywhere else could never match.
fn check_host(path: &str, host: &str, errors: &mut Vec<ConfigError>) {
    if host.trim().is_empty() {
        errors.push(ConfigError::new(
            path,
            "the host is empty",
            "write a host like api.example.com or *.example.com, or remove the entry",
        ));
        return;
    }
    let wildcard_ok = match host.strip_prefix("*.") {
        Some(suffix) => !suffix.is_empty() && !suffix.contains('*'),
        None => !host.contains('*'),
    };
    if !wildcard_ok {
        errors.push(ConfigError::new(
            path,
            format!("invalid wildcard host {host:?}"),
            "a wildcard is `*.` followed by a domain, like *.example.com",
        ));
    }
}

fn check_path(path: &str, spec: &PathMatchSpec, errors: &mut Vec<ConfigError>) {
    let (key, text) = match spec {
        PathMatchSpec::Regex(regex) => return check_regex(format!("{path}.regex"), regex, errors),
        PathMatchSpec::Exact(text) => ("exact", text),
        PathMatchSpec::Prefix(text) => ("prefix", text),
    };
    if !text.starts_with('/') {
        errors.push(ConfigError::new(
            format!("{path}.{key}"),
            format!("path {text:?} does not start with /"),
            format!(
                "write an absolute path, like /{}",
                text.trim_start_matches('/')
            ),
        ));
    } else if key == "prefix" && text.len() > 1 && text.ends_with('/') {
        errors.push(ConfigError::new(
            format!("{path}.{key}"),
            format!("prefix {text:?} ends with /"),
            format!(
                "write {:?}: a prefix matches whole segments, so it already covers the \
                 paths below it",
                text.trim_end_matches('/')
            ),
        ));
    }
}

fn check_value_match(path: &str, spec: &ValueMatchSpec, errors: &mut Vec<ConfigError>) {
    if spec.value.is_some() && spec.regex.is_some() {
        errors.push(ConfigError::new(
            path,
            "both `value` and `regex` are set",
            "keep one of them: value for an exact match, regex for a pattern",
        ));
    }
    if let Some(regex) = &spec.regex {
        check_regex(format!("{path}.regex"), regex, errors);
    }
}

/// `strip_prefix`, `rewrite` and `upstream_host`: what is changed on the way out.
fn check_forwarding(path: &str, route: &RouteSpec, errors: &mut Vec<ConfigError>) {
    let has_prefix = matches!(route.matches.path, Some(PathMatchSpec::Prefix(_)));
    if route.strip_prefix && !has_prefix {
        errors.push(ConfigError::new(
            format!("{path}.strip_prefix"),
            "strip_prefix needs a `path: {prefix: ..}` match to know what to strip",
            "add `match: {path: {prefix: /api}}` or remove strip_prefix",
        ));
    }
    if let Some(rewrite) = &route.rewrite {
        if route.strip_prefix {
            errors.push(ConfigError::new(
                format!("{path}.rewrite"),
                "rewrite and strip_prefix cannot be combined",
                "remove strip_prefix and drop the prefix in the rewrite regex instead",
            ));
        }
        check_regex(format!("{path}.rewrite.regex"), &rewrite.regex, errors);
        // The rewrite makes the path only; the client's query is appended
        // after it, so a `?` or `#` here would give a malformed target.
        if rewrite.replace.contains(['?', '#']) {
            errors.push(ConfigError::new(
                format!("{path}.rewrite.replace"),
                "a rewrite produces the path only and may not contain '?' or '#'",
                "remove the query or fragment; the client's query string is kept as it is",
            ));
        } else if http::uri::PathAndQuery::try_from(format!("/{}", rewrite.replace)).is_err() {
            // Otherwise every request the route matches would fail with a 500.
            errors.push(ConfigError::new(
                format!("{path}.rewrite.replace"),
                format!(
                    "{:?} holds characters a URL path cannot, such as a space",
                    rewrite.replace
                ),
                "percent-encode them, like %20 for a space",
            ));
        }
    }
    if let Some(host) = &route.upstream_host {
        if host.trim().is_empty() || HeaderValue::from_str(host).is_err() {
            errors.push(ConfigError::new(
                format!("{path}.upstream_host"),
                format!("{host:?} is not a valid Host header"),
                "write a host like users.internal or users.internal:8080",
            ));
        }
    }
}

#[cfg(test)]
#[path = "websocket_tests.rs"]
mod websocket_tests;
