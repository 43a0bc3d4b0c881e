//! Checks of one upstream: its backends, balancing, timeouts and health settings.

use std::net::SocketAddr;

use http::HeaderName;

use crate::config::schema::{
    BackendSpec, Balance, Dur, HashKeySpec, HealthCheckKind, HealthCheckSpec, PassiveHealthSpec,
    TimeoutsSpec, UpstreamSpec,
};
use crate::config::{index_path, ConfigError};

/// Most backends one upstream takes; the balancing schedule indexes them in 16 bits.
const MAX_BACKENDS: usize = 10_000;

/// Shortest interval between two rounds of active health checks.
const MIN_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// Checks the upstream at key path `path`.
pub(super) fn check(path: &str, upstream: &UpstreamSpec, errors: &mut Vec<ConfigError>) {
    if upstream.backends.is_empty() {
        errors.push(ConfigError::new(
            format!("{path}.backends"),
            "an upstream needs at least one backend",
            "add one, like `backends: [{address: 10.0.0.5:8080}]`",
        ));
    }
    if upstream.backends.len() > MAX_BACKENDS {
        errors.push(ConfigError::new(
            format!("{path}.backends"),
            format!(
                "{} backends is more than one upstream takes ({MAX_BACKENDS})",
                upstream.backends.len()
            ),
            "split the backends over several upstreams and routes",
        ));
    }
    let backends = format!("{path}.backends");
    for (i, backend) in upstream.backends.iter().enumerate() {
        check_backend(&index_path(&backends, i), backend, errors);
    }
    check_balance(path, upstream, errors);
    check_timeouts(&format!("{path}.timeouts"), &upstream.timeouts, errors);
    if let Some(check) = &upstream.health_check {
        check_health(&format!("{path}.health_check"), check, errors);
    }
    check_passive(
        &format!("{path}.passive_health"),
        &upstream.passive_health,
        errors,
    );
}

fn check_backend(path: &str, backend: &BackendSpec, errors: &mut Vec<ConfigError>) {
    if let Err((message, fix)) = check_host_port(&backend.address) {
        errors.push(ConfigError::new(format!("{path}.address"), message, fix));
    }
    if backend.weight == 0 {
        errors.push(ConfigError::new(
            format!("{path}.weight"),
            "weight must be at least 1",
            "set weight to 1 or more, or remove the backend to send it nothing",
        ));
    }
}

/// Accepts `ip:port`, `[v6]:port` and `hostname:port` with a port from 1 to 65535.
/// On failure returns the message and the fix.
fn check_host_port(address: &str) -> Result<(), (String, String)> {
    let example = "write it as host:port, like users.internal:8080, 10.0.0.5:8080 or [::1]:8080";
    if let Ok(addr) = address.parse::<SocketAddr>() {
        if addr.port() == 0 {
            return Err((format!("{address:?} has port 0"), example.into()));
        }
        return Ok(());
    }
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err((format!("{address:?} has no port"), example.into()));
    };
    if port.parse::<u16>().map_or(true, |p| p == 0) {
        let message = format!("{address:?} has an invalid port {port:?}");
        return Err((message, "use a port from 1 to 65535".into()));
    }
    if host.starts_with('[') || host.contains(':') {
        let message = format!("{address:?} has an invalid IPv6 address");
        return Err((
            message,
            "write IPv6 addresses in brackets, like [::1]:8080".into(),
        ));
    }
    if !valid_hostname(host) {
        let message = format!("{host:?} is not a valid hostname or IP address");
        return Err((message, example.into()));
    }
    Ok(())
}

/// DNS-style names: dot-separated labels of 1 to 63 letters, digits, `-` or `_`,
/// not starting or ending with `-`, 253 characters at most.
fn valid_hostname(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    !host.is_empty() && host.len() <= 253 && host.split('.').all(label_ok)
}

fn check_balance(path: &str, upstream: &UpstreamSpec, errors: &mut Vec<ConfigError>) {
    let hashing = upstream.balance == Balance::ConsistentHash;
    match (&upstream.hash_key, hashing) {
        (None, true) => errors.push(ConfigError::new(
            format!("{path}.balance"),
            "`balance: consistent_hash` needs a `hash_key`",
            "add one, like `hash_key: {source: header, name: x-user-id}`, \
             or choose another balance",
        )),
        (Some(_), false) => errors.push(ConfigError::new(
            format!("{path}.hash_key"),
            "`hash_key` is only used with `balance: consistent_hash` and would be ignored",
            "set `balance: consistent_hash` or remove hash_key",
        )),
        (Some(HashKeySpec::Header(name)), true)
            if HeaderName::from_bytes(name.as_bytes()).is_err() =>
        {
            errors.push(invalid_header_name(format!("{path}.hash_key.name"), name));
        }
        (Some(HashKeySpec::Cookie(name)), true) if name.trim().is_empty() => {
            errors.push(ConfigError::new(
                format!("{path}.hash_key.name"),
                "the cookie name is empty",
                "write the name of the cookie to hash on",
            ));
        }
        _ => {}
    }
}

/// The error for a header name that `http` rejects.
pub(super) fn invalid_header_name(path: String, name: &str) -> ConfigError {
    ConfigError::new(
        path,
        format!("{name:?} is not a valid HTTP header name"),
        "use letters, digits and - (like x-user-id), without spaces or colons",
    )
}

fn check_timeouts(path: &str, timeouts: &TimeoutsSpec, errors: &mut Vec<ConfigError>) {
    for (key, value) in [
        ("connect", timeouts.connect),
        ("read", timeouts.read),
        ("write", timeouts.write),
    ] {
        check_positive(&format!("{path}.{key}"), value, errors);
    }
}

fn check_positive(path: &str, value: Dur, errors: &mut Vec<ConfigError>) {
    if value.0.is_zero() {
        errors.push(ConfigError::new(
            path,
            "must be longer than 0",
            "set a positive duration, like 500ms or 5s",
        ));
    }
}

fn check_health(path: &str, check: &HealthCheckSpec, errors: &mut Vec<ConfigError>) {
    for (key, value) in [
        ("healthy_threshold", check.healthy_threshold),
        ("unhealthy_threshold", check.unhealthy_threshold),
    ] {
        if value == 0 {
            errors.push(ConfigError::new(
                format!("{path}.{key}"),
                format!("{key} must be at least 1"),
                format!("set {key} to 1 or more"),
            ));
        }
    }
    check_positive(&format!("{path}.interval"), check.interval, errors);
    if check.interval.0 < MIN_CHECK_INTERVAL && !check.interval.0.is_zero() {
        errors.push(ConfigError::new(
            format!("{path}.interval"),
            "a health check interval under 100ms would flood the backends with probes",
            "use 100ms or more; a few seconds is usual",
        ));
    }
    check_positive(&format!("{path}.timeout"), check.timeout, errors);
    for (i, status) in check.expect_status.iter().enumerate() {
        if !(100..=599).contains(status) {
            errors.push(ConfigError::new(
                index_path(&format!("{path}.expect_status"), i),
                format!("{status} is not an HTTP status"),
                "use statuses from 100 to 599, like 200 or 204",
            ));
        }
    }
    if check.kind == HealthCheckKind::Http && !check.path.starts_with('/') {
        errors.push(ConfigError::new(
            format!("{path}.path"),
            format!("health check path {:?} does not start with /", check.path),
            "write an absolute path, like /healthz",
        ));
    }
}

fn check_passive(path: &str, passive: &PassiveHealthSpec, errors: &mut Vec<ConfigError>) {
    if !(1..=100).contains(&passive.max_ejection_percent) {
        errors.push(ConfigError::new(
            format!("{path}.max_ejection_percent"),
            format!(
                "{} is not a percentage of the pool between 1 and 100",
                passive.max_ejection_percent
            ),
            "set a share like 50 (one backend may always be ejected), or turn ejection \
             off with consecutive_failures: 0",
        ));
    }
    if passive.consecutive_failures > 0 && passive.ejection_time.0.is_zero() {
        errors.push(ConfigError::new(
            format!("{path}.ejection_time"),
            "ejection_time must be longer than 0 when consecutive_failures is set",
            "set a positive duration like 10s, or set consecutive_failures: 0 \
             to turn ejection off",
        ));
    }
}
