//! Semantic checks over the parts that deserialized: addresses, references
//! between sections, value ranges and combinations of settings that cannot work
//! together. Every check runs and adds to one list; nothing stops at the first
//! problem. The same pass normalises what the router compares without regard
//! to case: methods are uppercased and hosts lowercased.

mod cache;
mod compression;
mod graphql;
mod grpc;
mod identity;
mod policy;
mod routes;
mod traffic;
mod transform;
mod upstreams;

use std::net::SocketAddr;

use tracing_subscriber::EnvFilter;

use super::load::Draft;
use super::schema::{AccessLogSpec, LogTarget, LoggingSpec, ServerSpec};
use super::{index_path, key_path, ConfigError};

/// Checks and normalises `draft`, returning every problem found.
pub(crate) fn validate(draft: &mut Draft) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    check_listeners(draft, &mut errors);
    if let Some(server) = &draft.server {
        check_server(server, &mut errors);
    }
    if let Some(access_log) = &draft.access_log {
        check_access_log(access_log, &mut errors);
    }
    if let Some(logging) = &draft.logging {
        check_logging(logging, &mut errors);
    }
    for (name, upstream) in &draft.upstreams {
        upstreams::check(&key_path("upstreams", name), upstream, &mut errors);
        grpc::check_upstream(&key_path("upstreams", name), upstream, &mut errors);
    }
    routes::check(&mut draft.routes, &draft.upstream_names, &mut errors);
    grpc::check_routes(&draft.routes, &draft.upstreams, &mut errors);
    identity::check(draft, &mut errors);
    policy::check(draft, &mut errors);
    traffic::check(draft, &mut errors);
    graphql::check(draft, &mut errors);
    cache::check(draft, &mut errors);
    compression::check(&mut draft.routes, &mut errors);
    transform::check(&draft.routes, &mut errors);
    errors
}

/// At least one listener; every listen address parses and none is used twice.
/// The later of two equal addresses in the file gets the error.
fn check_listeners(draft: &Draft, errors: &mut Vec<ConfigError>) {
    if draft.listeners_written == 0 {
        errors.push(ConfigError::new(
            "listeners",
            "no listener is defined",
            "add at least one, like `listeners: [{address: 0.0.0.0:8080}]`",
        ));
    }
    let mut bound: Vec<(String, &str)> = draft
        .listeners
        .iter()
        .map(|(i, l)| {
            (
                format!("{}.address", index_path("listeners", *i)),
                l.address.as_str(),
            )
        })
        .collect();
    if let Some(admin) = &draft.admin {
        bound.push(("admin.address".into(), admin.address.as_str()));
    }
    bound.sort_by_cached_key(|(path, _)| draft.order.position(path));
    let mut seen: Vec<(SocketAddr, &str)> = Vec::new();
    for (path, text) in &bound {
        let Ok(addr) = text.parse::<SocketAddr>() else {
            errors.push(ConfigError::new(
                path.as_str(),
                format!("{text:?} is not an ip:port address"),
                "write it like 0.0.0.0:8080, 127.0.0.1:9000 or [::]:8080 \
                 (a listener binds an IP, not a hostname)",
            ));
            continue;
        };
        // Port 0 asks the kernel for a fresh port, so it never collides.
        let first = seen.iter().find(|(a, _)| *a == addr && addr.port() != 0);
        match first {
            Some((_, first)) => errors.push(ConfigError::new(
                path.as_str(),
                format!("address {addr} is already used by {first}"),
                "give each listener and the admin listener its own address",
            )),
            None => seen.push((addr, path)),
        }
    }
}

/// Most worker threads a service may have.
const MAX_THREADS: usize = 1024;

/// Most streams one HTTP/2 client connection may hold open.
const MAX_H2_STREAMS: u32 = 10_000;

/// Largest `upstream_keepalive_pool_size`.
const MAX_KEEPALIVE_POOL: usize = 1_000_000;

fn check_server(server: &ServerSpec, errors: &mut Vec<ConfigError>) {
    if server.threads == 0 {
        errors.push(ConfigError::new(
            "server.threads",
            "threads must be at least 1",
            "set server.threads to 1 or more, or remove it for the default of 2",
        ));
    }
    // Pingora starts these threads for each service and sizes per-thread
    // tables by them, so an absurd count aborts the process at start.
    if server.threads > MAX_THREADS {
        errors.push(ConfigError::new(
            "server.threads",
            format!(
                "{} threads are more than the {MAX_THREADS} allowed",
                server.threads
            ),
            "set server.threads to about the number of CPU cores",
        ));
    }
    if !(1..=MAX_H2_STREAMS).contains(&server.h2_max_concurrent_streams) {
        errors.push(ConfigError::new(
            "server.h2_max_concurrent_streams",
            format!(
                "{} streams per HTTP/2 connection is outside 1..={MAX_H2_STREAMS}",
                server.h2_max_concurrent_streams
            ),
            "set it between 1 and 10000, or remove it for the default of 128",
        ));
    }
    // Pingora allocates the whole keep-alive pool index up front.
    if server.upstream_keepalive_pool_size > MAX_KEEPALIVE_POOL {
        errors.push(ConfigError::new(
            "server.upstream_keepalive_pool_size",
            format!(
                "a pool of {} connections is more than the {MAX_KEEPALIVE_POOL} allowed",
                server.upstream_keepalive_pool_size
            ),
            format!("set it to {MAX_KEEPALIVE_POOL} or less; the default is 128"),
        ));
    }
    // Pingora keeps client connections in whole seconds, and reads 0 as
    // "forever"; a sub-second value would silently mean no timeout at all.
    if server.downstream_keepalive_timeout.0 < std::time::Duration::from_secs(1) {
        errors.push(ConfigError::new(
            "server.downstream_keepalive_timeout",
            "the keep-alive timeout must be at least 1s",
            "write a whole number of seconds such as 60s",
        ));
    }
    for (key, value) in [
        ("server.grace_period", server.grace_period.0),
        (
            "server.graceful_shutdown_timeout",
            server.graceful_shutdown_timeout.0,
        ),
    ] {
        if value.subsec_nanos() != 0 {
            errors.push(ConfigError::new(
                key,
                "Pingora counts this in whole seconds",
                "write a whole number of seconds such as 5s",
            ));
        }
    }
}

fn check_access_log(log: &AccessLogSpec, errors: &mut Vec<ConfigError>) {
    let has_path = log.path.as_deref().is_some_and(|p| !p.trim().is_empty());
    if log.target == LogTarget::File && !has_path {
        errors.push(ConfigError::new(
            "access_log.path",
            "`target: file` needs a `path`",
            "set access_log.path to the log file, like /var/log/portico/access.log",
        ));
    }
    if log.target != LogTarget::File && log.path.is_some() {
        errors.push(ConfigError::new(
            "access_log.path",
            "`path` is only used with `target: file` and would be ignored",
            "set `target: file` or remove `path`",
        ));
    }
}

fn check_logging(logging: &LoggingSpec, errors: &mut Vec<ConfigError>) {
    if let Err(e) = EnvFilter::try_new(&logging.level) {
        errors.push(ConfigError::new(
            "logging.level",
            format!("invalid log filter {:?}: {e}", logging.level),
            "write a tracing filter like info, warn or portico=debug,info",
        ));
    }
}

/// One-line text of a regex compile error; the crate's own text spans several
/// lines with a caret diagram, which would break one-error-per-line output.
pub(crate) fn regex_problem(error: &regex::Error) -> String {
    let text = error.to_string();
    let reason = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("error: "))
        .map(str::to_owned);
    reason.unwrap_or_else(|| text.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// An error for `regex` at `path` when it does not compile.
pub(crate) fn check_regex(path: String, regex: &str, errors: &mut Vec<ConfigError>) {
    if let Err(e) = regex::Regex::new(regex) {
        errors.push(ConfigError::new(
            path,
            format!("invalid regex {regex:?}: {}", regex_problem(&e)),
            "correct the regex (Rust regex syntax; look-around and backreferences \
             are not supported)",
        ));
    }
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
