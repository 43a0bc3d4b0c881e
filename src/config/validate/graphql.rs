//! Checks of `routes[].graphql`: limits that would refuse every request, a
//! body cap Pingora cannot honour, allow-list entries that are not hashes,
//! and operation rules pointing at pools that do not exist.

use crate::config::load::Draft;
use crate::config::schema::{GraphqlSpec, MAX_GRAPHQL_BODY};
use crate::config::{index_path, key_path, ConfigError};

pub(super) fn check(draft: &Draft, errors: &mut Vec<ConfigError>) {
    for ((i, _), spec) in draft.routes.iter().zip(&draft.route_graphql) {
        if let Some(spec) = spec {
            let path = format!("{}.graphql", index_path("routes", *i));
            check_spec(&path, spec, &draft.upstream_names, errors);
        }
    }
}

fn check_spec(path: &str, spec: &GraphqlSpec, upstreams: &[String], errors: &mut Vec<ConfigError>) {
    if let Some(size) = spec.max_body_bytes {
        if size.0 == 0 || size.0 > MAX_GRAPHQL_BODY {
            errors.push(ConfigError::new(
                format!("{path}.max_body_bytes"),
                format!("{} bytes is outside 1..=65536", size.0),
                "GraphQL bodies are read before routing and Pingora replays at most \
                 64KiB of them; set 64KiB or less",
            ));
        }
    }
    // `max_aliases: 0` is left out: it forbids aliases, and plain queries pass.
    let counts = [
        ("max_depth", spec.max_depth.map(|v| v as u64)),
        ("max_root_fields", spec.max_root_fields),
        ("max_complexity", spec.max_complexity),
        ("max_batch", spec.max_batch.map(|v| v as u64)),
    ];
    for (key, value) in counts {
        if value == Some(0) {
            errors.push(ConfigError::new(
                format!("{path}.{key}"),
                "0 would refuse every request",
                "set it to 1 or more, or remove it for no limit",
            ));
        }
    }
    for (j, hash) in spec.persisted_queries.iter().flatten().enumerate() {
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            errors.push(ConfigError::new(
                index_path(&format!("{path}.persisted_queries"), j),
                format!("{hash:?} is not a SHA-256 hash"),
                "write the 64 hex digits of the document's SHA-256, e.g. from \
                 `printf %s \"$QUERY\" | sha256sum`",
            ));
        }
    }
    for (j, rule) in spec.operations.iter().enumerate() {
        if upstreams.contains(&rule.upstream) {
            continue;
        }
        errors.push(ConfigError::new(
            format!("{}.upstream", index_path(&format!("{path}.operations"), j)),
            format!("no upstream named {:?}", rule.upstream),
            format!(
                "define {} or name one of the upstreams",
                key_path("upstreams", &rule.upstream)
            ),
        ));
    }
}

#[cfg(test)]
#[path = "graphql_tests.rs"]
mod tests;
