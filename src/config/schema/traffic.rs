//! The traffic-control part of the schema: `rate_limiting` (the named rate
//! limits, the Redis store, consumer tiers and response headers), the
//! `rate_limits` and `concurrency` of a `policies` section, and a pool's
//! `circuit_breaker`.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::auth::one_or_many;
use super::Dur;

/// The top-level `rate_limiting` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitingSpec {
    /// Named limits, referred to by `policies.rate_limits` and `tiers`.
    pub limits: BTreeMap<String, RateLimitSpec>,
    /// The store of limits with `store: redis`.
    pub redis: Option<RedisSpec>,
    /// Consumer tiers: the limits added for a consumer of the tier, or
    /// `exempt` for no rate limit at all.
    pub tiers: BTreeMap<String, TierSpec>,
    pub headers: HeaderStyle,
    /// Whether CORS preflights count against the limits.
    pub preflight: PreflightRule,
}

/// One named limit: `limit` requests per `window`, per key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSpec {
    pub limit: u64,
    pub window: Dur,
    /// What one bucket is: `client`, `consumer`, `route`, `header:NAME`,
    /// `claim:NAME`, or a list of them for their combination.
    #[serde(default = "client_key", deserialize_with = "one_or_many")]
    pub key: Vec<String>,
    #[serde(default)]
    pub store: StoreKind,
    /// With `store: redis`, what happens while Redis cannot be reached.
    #[serde(default)]
    pub on_store_failure: StoreFailure,
    /// With `store: redis`, requests taken from Redis per round trip.
    #[serde(default = "one")]
    pub local_allowance: u64,
    /// With `store: local`, the most keys kept.
    #[serde(default = "default_max_keys")]
    pub max_keys: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    #[default]
    Local,
    Redis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreFailure {
    /// Admit without counting.
    #[default]
    Open,
    /// Refuse with 503.
    Closed,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSpec {
    /// `redis://host:port/db`.
    pub url: String,
    /// How long one decision may wait for Redis.
    #[serde(default = "default_redis_timeout")]
    pub timeout: Dur,
    /// Put before every key, to share a Redis with other users.
    #[serde(default = "default_prefix")]
    pub prefix: String,
}

/// A tier: the limits its consumers get beside their route's, or `exempt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TierSpec {
    Exempt,
    Limits(Vec<String>),
}

impl<'de> Deserialize<'de> for TierSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TierVisitor;
        impl<'de> serde::de::Visitor<'de> for TierVisitor {
            type Value = TierSpec;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`exempt` or a list of limit names")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<TierSpec, E> {
                match text {
                    "exempt" => Ok(TierSpec::Exempt),
                    other => Ok(TierSpec::Limits(vec![other.to_owned()])),
                }
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<TierSpec, A::Error> {
                let mut names = Vec::new();
                while let Some(name) = seq.next_element::<String>()? {
                    names.push(name);
                }
                Ok(TierSpec::Limits(names))
            }
        }
        d.deserialize_any(TierVisitor)
    }
}

/// Which rate-limit headers responses carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeaderStyle {
    /// `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers).
    #[default]
    Ietf,
    /// Those and `X-RateLimit-Limit`, `-Remaining`, `-Reset`.
    IetfAndLegacy,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PreflightRule {
    /// CORS preflights are neither counted nor refused.
    #[default]
    Exempt,
    Counted,
}

/// In-flight caps of a route.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConcurrencySpec {
    /// Requests of the route in flight at once.
    #[serde(default)]
    pub max: Option<u32>,
    /// Requests of one consumer (or one anonymous client address) on the
    /// route in flight at once.
    #[serde(default)]
    pub per_consumer: Option<u32>,
    /// Requests that may wait for a slot; 0 refuses at once.
    #[serde(default)]
    pub queue: u32,
    /// How long a request waits in the queue before it is refused.
    #[serde(default = "default_queue_timeout")]
    pub queue_timeout: Dur,
}

/// Fail fast while a pool's backends keep failing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CircuitBreakerSpec {
    /// The share of failed requests (0 to 1) in the window that opens it.
    #[serde(default = "half")]
    pub error_rate: f64,
    /// Requests the window must hold before the rate counts.
    #[serde(default = "default_min_requests")]
    pub min_requests: u32,
    #[serde(default = "default_window")]
    pub window: Dur,
    /// How long it stays open before trial requests go through.
    #[serde(default = "default_open_for")]
    pub open_for: Dur,
    /// Trial requests let through at once while half-open.
    #[serde(default = "default_trials")]
    pub half_open_requests: u32,
}

fn client_key() -> Vec<String> {
    vec!["client".into()]
}
fn one() -> u64 {
    1
}
fn default_max_keys() -> usize {
    100_000
}
fn default_redis_timeout() -> Dur {
    Dur(Duration::from_millis(100))
}
fn default_prefix() -> String {
    "portico".into()
}
fn default_queue_timeout() -> Dur {
    Dur(Duration::from_secs(1))
}
fn half() -> f64 {
    0.5
}
fn default_min_requests() -> u32 {
    20
}
fn default_window() -> Dur {
    Dur(Duration::from_secs(10))
}
fn default_open_for() -> Dur {
    Dur(Duration::from_secs(30))
}
fn default_trials() -> u32 {
    3
}
