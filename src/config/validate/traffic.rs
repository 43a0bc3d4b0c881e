//! Checks of traffic control: the named rate limits and their keys, the
//! Redis store, tiers, every `policies.rate_limits` reference, concurrency
//! caps and circuit breakers.

use std::time::Duration;

use http::HeaderName;

use crate::config::load::Draft;
use crate::config::schema::{
    CircuitBreakerSpec, ConcurrencySpec, PoliciesSpec, RateLimitSpec, RateLimitingSpec, StoreKind,
    TierSpec,
};
use crate::config::{index_path, key_path, ConfigError};

/// The shortest and the longest window a limit may have.
const MIN_WINDOW: Duration = Duration::from_millis(100);
const MAX_WINDOW: Duration = Duration::from_secs(31 * 24 * 3600);

/// The key parts a limit may combine.
const KEY_PARTS: &str = "client, consumer, route, header:NAME or claim:NAME";

pub(super) fn check(draft: &Draft, errors: &mut Vec<ConfigError>) {
    let spec = draft.rate_limiting.clone().unwrap_or_default();
    let names: Vec<&str> = spec.limits.keys().map(String::as_str).collect();
    for (name, limit) in &spec.limits {
        check_limit(
            &key_path("rate_limiting.limits", name),
            limit,
            &spec,
            errors,
        );
    }
    if let Some(redis) = &spec.redis {
        check_redis_url("rate_limiting.redis.url", &redis.url, errors);
        if redis.timeout.0.is_zero() {
            errors.push(ConfigError::new(
                "rate_limiting.redis.timeout",
                "a zero timeout would fail every decision",
                "set it like 50ms",
            ));
        }
    }
    for (tier, rule) in &spec.tiers {
        if let TierSpec::Limits(list) = rule {
            let path = key_path("rate_limiting.tiers", tier);
            check_references(&path, list, &names, errors);
        }
    }
    if let Some(policies) = &draft.policies {
        check_policies("policies", policies, &names, errors);
    }
    for (i, route) in &draft.routes {
        let path = format!("{}.policies", index_path("routes", *i));
        check_policies(&path, &route.policies, &names, errors);
    }
    for (name, upstream) in &draft.upstreams {
        if let Some(breaker) = &upstream.circuit_breaker {
            let path = format!("{}.circuit_breaker", key_path("upstreams", name));
            check_breaker(&path, breaker, errors);
        }
    }
}

fn check_limit(
    path: &str,
    limit: &RateLimitSpec,
    spec: &RateLimitingSpec,
    errors: &mut Vec<ConfigError>,
) {
    if limit.limit == 0 {
        errors.push(ConfigError::new(
            format!("{path}.limit"),
            "a limit of 0 would refuse every request",
            "set a positive number of requests per window",
        ));
    }
    let window = limit.window.0;
    if window < MIN_WINDOW || window > MAX_WINDOW {
        errors.push(ConfigError::new(
            format!("{path}.window"),
            format!(
                "{} is outside the windows a limit can have",
                humantime::format_duration(window)
            ),
            "use a window from 100ms to 31d, like 1s, 1m, 1h or 1d",
        ));
    }
    if limit.key.is_empty() {
        errors.push(ConfigError::new(
            format!("{path}.key"),
            "the key is empty",
            format!("list one or more of: {KEY_PARTS}"),
        ));
    }
    for (i, part) in limit.key.iter().enumerate() {
        let at = index_path(&format!("{path}.key"), i);
        if let Err(message) = key_part(part) {
            errors.push(ConfigError::new(
                at,
                message,
                format!("use one of: {KEY_PARTS}"),
            ));
        } else if limit.key[..i].contains(part) {
            errors.push(ConfigError::new(
                at,
                format!("{part:?} is listed twice"),
                "list each part once",
            ));
        }
    }
    match limit.store {
        StoreKind::Redis if spec.redis.is_none() => errors.push(ConfigError::new(
            format!("{path}.store"),
            "`store: redis` needs a Redis server",
            "add `rate_limiting.redis: {url: redis://HOST:6379}`, or use `store: local`",
        )),
        StoreKind::Redis if limit.local_allowance == 0 || limit.local_allowance > limit.limit => {
            errors.push(ConfigError::new(
                format!("{path}.local_allowance"),
                format!(
                    "{} is outside 1 to the limit ({})",
                    limit.local_allowance, limit.limit
                ),
                "take from 1 (a round trip per request) to a small share of the limit",
            ))
        }
        StoreKind::Local if limit.limit > u64::from(u32::MAX) => errors.push(ConfigError::new(
            format!("{path}.limit"),
            format!(
                "{} is more than the local store counts ({})",
                limit.limit,
                u32::MAX
            ),
            "use a longer window with a smaller limit, or `store: redis`",
        )),
        StoreKind::Local if limit.max_keys == 0 => errors.push(ConfigError::new(
            format!("{path}.max_keys"),
            "0 keys would hold no count",
            "set it above the number of clients you expect, like 100000",
        )),
        _ => {}
    }
}

/// A key part as written, checked: `Err` says what is wrong.
pub(crate) fn key_part(text: &str) -> Result<(), String> {
    match text.split_once(':') {
        None if matches!(text, "client" | "consumer" | "route") => Ok(()),
        Some(("header", name)) if HeaderName::from_bytes(name.as_bytes()).is_ok() => Ok(()),
        Some(("claim", name)) if !name.is_empty() => Ok(()),
        Some(("header", name)) => Err(format!("{name:?} is not a header name")),
        _ => Err(format!("unknown key part {text:?}")),
    }
}

fn check_redis_url(path: &str, url: &str, errors: &mut Vec<ConfigError>) {
    let fix = "write it like redis://127.0.0.1:6379 or redis://:password@host:6379/0";
    match url.split_once("://") {
        Some(("redis", rest)) if !rest.is_empty() => {}
        Some(("rediss", _)) => errors.push(ConfigError::new(
            path,
            "Redis over TLS is not supported",
            "reach Redis over a trusted network with redis://",
        )),
        _ => errors.push(ConfigError::new(
            path,
            format!("{url:?} is not a redis:// URL"),
            fix,
        )),
    }
}

fn check_references(path: &str, list: &[String], names: &[&str], errors: &mut Vec<ConfigError>) {
    for (i, name) in list.iter().enumerate() {
        if !names.contains(&name.as_str()) {
            let fix = if names.is_empty() {
                format!("define it under {}", key_path("rate_limiting.limits", name))
            } else {
                format!(
                    "define it under rate_limiting.limits, or use one of: {}",
                    names.join(", ")
                )
            };
            errors.push(ConfigError::new(
                index_path(path, i),
                format!("no rate limit named {name:?}"),
                fix,
            ));
        }
    }
}

fn check_policies(
    path: &str,
    policies: &PoliciesSpec,
    names: &[&str],
    errors: &mut Vec<ConfigError>,
) {
    if let Some(list) = &policies.rate_limits {
        check_references(&format!("{path}.rate_limits"), list, names, errors);
    }
    if let Some(concurrency) = &policies.concurrency {
        check_concurrency(&format!("{path}.concurrency"), concurrency, errors);
    }
}

fn check_concurrency(path: &str, spec: &ConcurrencySpec, errors: &mut Vec<ConfigError>) {
    if spec.max.is_none() && spec.per_consumer.is_none() {
        errors.push(ConfigError::new(
            path,
            "neither `max` nor `per_consumer` is set",
            "set one, like `{max: 100}`",
        ));
    }
    for (key, value) in [("max", spec.max), ("per_consumer", spec.per_consumer)] {
        if value == Some(0) {
            errors.push(ConfigError::new(
                format!("{path}.{key}"),
                "0 would refuse every request",
                "set a positive cap, or remove the key",
            ));
        }
    }
}

fn check_breaker(path: &str, spec: &CircuitBreakerSpec, errors: &mut Vec<ConfigError>) {
    if !(spec.error_rate > 0.0 && spec.error_rate <= 1.0) {
        errors.push(ConfigError::new(
            format!("{path}.error_rate"),
            format!("{} is not a share above 0 and at most 1", spec.error_rate),
            "write it like 0.5 for half of the requests",
        ));
    }
    let positive = [
        ("min_requests", spec.min_requests),
        ("half_open_requests", spec.half_open_requests),
    ];
    for (key, value) in positive {
        if value == 0 {
            errors.push(ConfigError::new(
                format!("{path}.{key}"),
                "0 is not allowed here",
                "set at least 1",
            ));
        }
    }
    for (key, value) in [("window", spec.window.0), ("open_for", spec.open_for.0)] {
        if value < Duration::from_millis(100) {
            errors.push(ConfigError::new(
                format!("{path}.{key}"),
                "shorter than 100ms",
                "set it like 10s",
            ));
        }
    }
}

#[cfg(test)]
#[path = "traffic_tests.rs"]
mod tests;
