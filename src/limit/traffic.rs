//! Traffic control compiled from the config: each named rate limit with its
//! store and key, each route's limits and in-flight caps, the consumer
//! tiers, and the headers that report them.
//!
//! On the request path [`Traffic::check`] runs after authentication (the
//! consumer, its tier and its claims are known then), over the route's
//! limits followed by the tier's; a request is admitted only when every one
//! admits it. The limits are checked in that order and each counts the
//! request as it admits it, so a request refused by a later limit has still
//! used its place in the earlier ones (as with nginx's `limit_req` and Kong's
//! rate-limiting plugin).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};
use tracing::warn;

use super::concurrency::{ConcurrencyLimit, ConcurrencySettings, Rejected, Slot};
use super::redis::{RedisLimiter, RedisStore};
use super::window::LocalWindow;
use super::Decision;
use crate::config::schema::{
    ConcurrencySpec, HeaderStyle, PreflightRule, RateLimitSpec, StoreFailure, StoreKind, TierSpec,
};
use crate::config::Config;

/// One part of a limit's key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyPart {
    Client,
    Consumer,
    Route,
    Header(HeaderName),
    Claim(String),
}

/// Where a limit keeps its counts.
enum Store {
    Local(LocalWindow),
    Redis {
        limiter: RedisLimiter,
        on_failure: StoreFailure,
    },
}

/// One named rate limit, compiled.
pub struct Limit {
    pub name: Arc<str>,
    pub limit: u64,
    pub window: Duration,
    key: Vec<KeyPart>,
    store: Store,
    /// This limit's item of `RateLimit-Policy`, made once.
    policy_item: String,
    /// Hashes key text for the local store; fixed per process.
    hasher: std::collections::hash_map::RandomState,
}

impl std::fmt::Debug for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limit")
            .field("name", &self.name)
            .field("limit", &self.limit)
            .field("window", &self.window)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// What the request carries that a key can be made of.
pub struct Inputs<'a> {
    /// The client address after the trusted-proxy rule.
    pub client: Option<IpAddr>,
    /// The identified consumer's id, `None` when anonymous.
    pub consumer: Option<&'a str>,
    pub tier: Option<&'a str>,
    pub route: &'a str,
    pub headers: &'a HeaderMap,
    /// The verified token's claims, when a JWT or introspection admitted it.
    pub claims: Option<&'a serde_json::Map<String, serde_json::Value>>,
    /// Whether the request is a CORS preflight.
    pub preflight: bool,
}

/// What the limits of one request decided.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Each limit checked, with its decision.
    pub decisions: Vec<(Arc<Limit>, Decision)>,
    /// The limit that refused, when one did.
    pub refused_by: Option<Arc<Limit>>,
    /// A fail-closed limit whose store could not be reached.
    pub unavailable: Option<Arc<Limit>>,
}

/// The in-flight slots a request holds until it ends.
#[derive(Default)]
pub struct Slots {
    _held: Vec<Slot>,
}

/// A route's in-flight caps.
struct RouteConcurrency {
    route: Option<ConcurrencyLimit>,
    per_consumer: Option<ConcurrencyLimit>,
}

enum Tier {
    Exempt,
    Limits(Vec<usize>),
}

/// The traffic control of one snapshot.
pub struct Traffic {
    limits: Vec<Arc<Limit>>,
    /// By route index: the limits that apply, by index in `limits`.
    route_limits: Vec<Vec<usize>>,
    route_concurrency: Vec<Option<Arc<RouteConcurrency>>>,
    tiers: HashMap<String, Tier>,
    pub headers: HeaderStyle,
    preflight: PreflightRule,
    /// The shared store, when any limit uses Redis (for its metrics).
    pub store: Option<Arc<RedisStore>>,
}

impl std::fmt::Debug for Traffic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Traffic")
            .field("limits", &self.limits)
            .field("route_limits", &self.route_limits)
            .finish_non_exhaustive()
    }
}

impl Traffic {
    /// Compiles the traffic control of a validated config.
    pub fn build(config: &Config) -> Result<Traffic, Vec<String>> {
        let spec = &config.rate_limiting;
        let mut errors = Vec::new();
        let store = match &spec.redis {
            Some(redis) => match RedisStore::new(&redis.url, redis.timeout.0, &redis.prefix) {
                Ok(store) => Some(Arc::new(store)),
                Err(e) => {
                    errors.push(format!(
                        "rate_limiting.redis.url: {e}; fix: write it like redis://127.0.0.1:6379"
                    ));
                    None
                }
            },
            None => None,
        };
        let mut index = HashMap::new();
        let mut limits = Vec::new();
        for (name, limit) in &spec.limits {
            match compile_limit(name, limit, store.as_ref()) {
                Ok(compiled) => {
                    index.insert(name.as_str(), limits.len());
                    limits.push(Arc::new(compiled));
                }
                Err(e) => errors.push(format!("rate_limiting.limits.{name}: {e}")),
            }
        }
        let resolve = |names: &[String]| -> Vec<usize> {
            names
                .iter()
                .filter_map(|n| index.get(n.as_str()).copied())
                .collect()
        };
        let file_limits = config.policies.rate_limits.as_deref().unwrap_or(&[]);
        // Routes that inherit the file's caps share one pair of limiters:
        // their keys carry the route index, so each route keeps its own
        // count, and a table of many routes does not build a sketch each.
        let file_concurrency = config
            .policies
            .concurrency
            .as_ref()
            .map(|spec| Arc::new(compile_concurrency(spec)));
        let mut route_limits = Vec::with_capacity(config.routes.len());
        let mut route_concurrency = Vec::with_capacity(config.routes.len());
        for route in &config.routes {
            let own = &route.policies;
            route_limits.push(resolve(own.rate_limits.as_deref().unwrap_or(file_limits)));
            route_concurrency.push(match &own.concurrency {
                Some(spec) => Some(Arc::new(compile_concurrency(spec))),
                None => file_concurrency.clone(),
            });
        }
        let tiers = spec
            .tiers
            .iter()
            .map(|(name, tier)| {
                let compiled = match tier {
                    TierSpec::Exempt => Tier::Exempt,
                    TierSpec::Limits(names) => Tier::Limits(resolve(names)),
                };
                (name.clone(), compiled)
            })
            .collect();
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Traffic {
            limits,
            route_limits,
            route_concurrency,
            tiers,
            headers: spec.headers,
            preflight: spec.preflight,
            store,
        })
    }

    /// Whether any rate limit can apply on `route`: its own, or a tier's.
    #[inline]
    pub fn limits_route(&self, route: usize) -> bool {
        self.route_limits.get(route).is_some_and(|l| !l.is_empty()) || !self.tiers.is_empty()
    }

    /// Checks the request against the route's limits and its tier's.
    pub async fn check(&self, route: usize, inputs: &Inputs<'_>) -> Verdict {
        let mut verdict = Verdict::default();
        if inputs.preflight && self.preflight == PreflightRule::Exempt {
            return verdict;
        }
        let tier = inputs.tier.and_then(|t| self.tiers.get(t));
        if matches!(tier, Some(Tier::Exempt)) {
            return verdict;
        }
        let own = self.route_limits.get(route).map_or(&[][..], Vec::as_slice);
        let extra = match tier {
            Some(Tier::Limits(list)) => list.as_slice(),
            _ => &[],
        };
        let mut seen: Vec<usize> = Vec::with_capacity(own.len() + extra.len());
        for &i in own.iter().chain(extra) {
            // A limit named by both the route and the tier counts once.
            if seen.contains(&i) {
                continue;
            }
            seen.push(i);
            let Some(limit) = self.limits.get(i) else {
                continue;
            };
            match limit.decide(inputs).await {
                Ok(decision) => {
                    verdict.decisions.push((Arc::clone(limit), decision));
                    if !decision.admitted {
                        verdict.refused_by = Some(Arc::clone(limit));
                        break;
                    }
                }
                Err(StoreFailure::Closed) => {
                    verdict.unavailable = Some(Arc::clone(limit));
                    break;
                }
                Err(StoreFailure::Open) => {}
            }
        }
        verdict
    }

    /// Whether the route has in-flight caps.
    #[inline]
    pub fn caps_route(&self, route: usize) -> bool {
        self.route_concurrency
            .get(route)
            .is_some_and(Option::is_some)
    }

    /// Takes the route's in-flight slots: one of the route's, and one of the
    /// consumer's (`who`: the consumer id, or the client address of an
    /// anonymous request).
    pub async fn acquire(&self, route: usize, who: &str) -> Result<Slots, Rejected> {
        let Some(Some(caps)) = self.route_concurrency.get(route) else {
            return Ok(Slots::default());
        };
        let mut held = Vec::with_capacity(2);
        if let Some(limit) = &caps.route {
            held.push(limit.acquire(route as u64).await?);
        }
        if let Some(limit) = &caps.per_consumer {
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            hasher.write_usize(route);
            hasher.write(who.as_bytes());
            held.push(limit.acquire(hasher.finish()).await?);
        }
        Ok(Slots { _held: held })
    }

    /// The headers that report `verdict` on a response.
    pub fn response_headers(&self, verdict: &Verdict) -> Vec<(HeaderName, HeaderValue)> {
        let mut out = Vec::new();
        if self.headers == HeaderStyle::None || verdict.decisions.is_empty() {
            return out;
        }
        let mut policy = String::new();
        let mut state = String::new();
        for (limit, decision) in &verdict.decisions {
            if !policy.is_empty() {
                policy.push_str(", ");
                state.push_str(", ");
            }
            policy.push_str(&limit.policy_item);
            state.push_str(&format!(
                "\"{}\";r={};t={}",
                limit.name,
                decision.remaining,
                whole_seconds(decision.reset)
            ));
        }
        push(&mut out, "ratelimit-policy", policy);
        push(&mut out, "ratelimit", state);
        if self.headers == HeaderStyle::IetfAndLegacy {
            // The legacy set describes one limit: the one closest to refusing.
            if let Some((limit, decision)) = verdict
                .decisions
                .iter()
                .min_by_key(|(_, d)| (d.admitted, d.remaining))
            {
                push(&mut out, "x-ratelimit-limit", limit.limit.to_string());
                push(
                    &mut out,
                    "x-ratelimit-remaining",
                    decision.remaining.to_string(),
                );
                push(
                    &mut out,
                    "x-ratelimit-reset",
                    whole_seconds(decision.reset).to_string(),
                );
            }
        }
        if let Some(refused) = &verdict.refused_by {
            if let Some((_, decision)) = verdict
                .decisions
                .iter()
                .find(|(l, _)| Arc::ptr_eq(l, refused))
            {
                push(
                    &mut out,
                    "retry-after",
                    whole_seconds(decision.reset).max(1).to_string(),
                );
            }
        }
        out
    }
}

fn push(out: &mut Vec<(HeaderName, HeaderValue)>, name: &'static str, value: String) {
    if let Ok(value) = HeaderValue::from_str(&value) {
        out.push((HeaderName::from_static(name), value));
    }
}

/// Seconds, rounded up: a client told 0 would retry at once.
fn whole_seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl Limit {
    /// This limit's decision for the request; `Err` carries the failure rule
    /// of a store that could not be reached.
    async fn decide(&self, inputs: &Inputs<'_>) -> Result<Decision, StoreFailure> {
        let key = self.key_text(inputs);
        match &self.store {
            Store::Local(window) => {
                let mut hasher = self.hasher.build_hasher();
                hasher.write(key.as_bytes());
                Ok(window.check(hasher.finish(), now_ms(), 1))
            }
            Store::Redis {
                limiter,
                on_failure,
            } => limiter.check(&key).await.map_err(|_| *on_failure),
        }
    }

    /// The bucket's name: each part as `part=value`, joined by `|`. A part
    /// the request lacks (an anonymous consumer, a missing header or claim)
    /// falls back to the client address, so leaving it out cannot reach a
    /// bucket shared with every other client that leaves it out.
    fn key_text(&self, inputs: &Inputs<'_>) -> String {
        let mut key = String::with_capacity(48);
        let client = || {
            inputs
                .client
                .map_or_else(|| "-".to_owned(), |ip| ip.to_string())
        };
        for (i, part) in self.key.iter().enumerate() {
            if i > 0 {
                key.push('|');
            }
            match part {
                KeyPart::Client => {
                    key.push_str("client=");
                    key.push_str(&client());
                }
                KeyPart::Route => {
                    key.push_str("route=");
                    key.push_str(inputs.route);
                }
                KeyPart::Consumer => match inputs.consumer {
                    Some(id) => {
                        key.push_str("consumer=");
                        key.push_str(id);
                    }
                    None => {
                        key.push_str("anonymous=");
                        key.push_str(&client());
                    }
                },
                KeyPart::Header(name) => {
                    match inputs.headers.get(name).map(HeaderValue::as_bytes) {
                        Some(value) => {
                            key.push_str(name.as_str());
                            key.push('=');
                            key.push_str(&String::from_utf8_lossy(value));
                        }
                        None => {
                            key.push_str("client=");
                            key.push_str(&client());
                        }
                    }
                }
                KeyPart::Claim(claim) => match inputs.claims.and_then(|c| c.get(claim.as_str())) {
                    Some(serde_json::Value::String(text)) => {
                        key.push_str(claim);
                        key.push('=');
                        key.push_str(text);
                    }
                    Some(other) => {
                        key.push_str(claim);
                        key.push('=');
                        key.push_str(&other.to_string());
                    }
                    None => {
                        key.push_str("client=");
                        key.push_str(&client());
                    }
                },
            }
        }
        key
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn compile_limit(
    name: &str,
    spec: &RateLimitSpec,
    store: Option<&Arc<RedisStore>>,
) -> Result<Limit, String> {
    let key = spec
        .key
        .iter()
        .map(|part| match part.split_once(':') {
            None if part == "client" => Ok(KeyPart::Client),
            None if part == "consumer" => Ok(KeyPart::Consumer),
            None if part == "route" => Ok(KeyPart::Route),
            Some(("header", h)) => HeaderName::from_bytes(h.as_bytes())
                .map(KeyPart::Header)
                .map_err(|_| format!("{h:?} is not a header name")),
            Some(("claim", c)) => Ok(KeyPart::Claim(c.to_owned())),
            _ => Err(format!("unknown key part {part:?}")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let window = spec.window.0;
    let store = match spec.store {
        StoreKind::Local => Store::Local(LocalWindow::new(spec.limit, window, spec.max_keys)),
        StoreKind::Redis => {
            let Some(store) = store else {
                return Err("store: redis needs rate_limiting.redis".into());
            };
            Store::Redis {
                limiter: RedisLimiter::new(
                    Arc::clone(store),
                    name,
                    spec.limit,
                    window,
                    spec.local_allowance,
                ),
                on_failure: spec.on_store_failure,
            }
        }
    };
    if name.contains(['"', '\\']) {
        warn!(
            limit = name,
            "limit names with quotes are escaped in headers"
        );
    }
    let quoted = name.replace(['"', '\\'], "_");
    Ok(Limit {
        policy_item: format!(
            "\"{quoted}\";q={};w={}",
            spec.limit,
            whole_seconds(window).max(1)
        ),
        name: Arc::from(quoted.as_str()),
        limit: spec.limit,
        window,
        key,
        store,
        hasher: std::collections::hash_map::RandomState::new(),
    })
}

fn compile_concurrency(spec: &ConcurrencySpec) -> RouteConcurrency {
    let settings = |max: u32| ConcurrencySettings {
        max,
        queue: spec.queue,
        queue_timeout: spec.queue_timeout.0,
    };
    RouteConcurrency {
        route: spec.max.map(|m| ConcurrencyLimit::new(settings(m))),
        per_consumer: spec
            .per_consumer
            .map(|m| ConcurrencyLimit::new(settings(m))),
    }
}
