//! The YAML schema: the public contract of `portico.yaml`.
//!
//! Every struct rejects unknown keys. These types only describe the shape of the
//! file; cross-references and values are checked by the loader in [`super`], and
//! the runtime model is compiled from a validated [`Config`].
//!
//! Hand-written deserializers report problems as `"{what is wrong}; {how to fix
//! it}"`: the loader splits that text at the last `"; "` into the message and the
//! fix of a [`super::ConfigError`].

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Schema version; only `1` exists.
    pub version: u32,
    #[serde(default)]
    pub server: ServerSpec,
    pub listeners: Vec<ListenerSpec>,
    #[serde(default)]
    pub admin: Option<AdminSpec>,
    /// Peers whose `X-Forwarded-For` is believed (CIDR or bare addresses).
    #[serde(default, deserialize_with = "trusted_proxy_list")]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    #[serde(default)]
    pub access_log: AccessLogSpec,
    #[serde(default)]
    pub logging: LoggingSpec,
    /// Named upstream pools. A `BTreeMap` keeps iteration deterministic.
    #[serde(default)]
    pub upstreams: BTreeMap<String, UpstreamSpec>,
    #[serde(default)]
    pub routes: Vec<RouteSpec>,
    /// Where credentials are read and how an identity is forwarded.
    #[serde(default)]
    pub identity: IdentitySpec,
    /// Known API clients and their credentials.
    #[serde(default)]
    pub consumers: Vec<ConsumerSpec>,
    /// JWT issuers whose tokens are accepted, by name.
    #[serde(default)]
    pub jwt_providers: BTreeMap<String, JwtProviderSpec>,
    /// OAuth2 introspection endpoints for opaque tokens, by name.
    #[serde(default)]
    pub introspection: BTreeMap<String, IntrospectionSpec>,
    /// The authentication every route inherits unless it sets its own.
    #[serde(default)]
    pub auth: Option<RouteAuthSpec>,
    /// Each route's own `auth` (written as `routes[].auth`), by route index;
    /// `None` inherits the top-level `auth`. The loader reads it beside each
    /// [`RouteSpec`], which stays a plain route shape that the router's tests
    /// and benchmarks build directly.
    #[serde(skip)]
    pub route_auth: Vec<Option<RouteAuthSpec>>,
    /// Each route's `graphql` settings (written as `routes[].graphql`), by
    /// route index; read beside each [`RouteSpec`] like `route_auth`.
    #[serde(skip)]
    pub route_graphql: Vec<Option<GraphqlSpec>>,
    /// IP filter, size limits, threat protection and CORS every route
    /// inherits; see [`PoliciesSpec`] for how a route's own combine with them.
    #[serde(default)]
    pub policies: PoliciesSpec,
    /// Named rate limits, their store, consumer tiers and headers.
    #[serde(default)]
    pub rate_limiting: RateLimitingSpec,
    /// The response cache's store, shared by every route that caches.
    #[serde(default)]
    pub cache: CacheStoreSpec,
}

/// Process-level settings, handed to Pingora's `ServerConf`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSpec {
    /// Worker threads of the proxy service.
    pub threads: usize,
    pub work_stealing: bool,
    pub pid_file: String,
    pub upgrade_sock: String,
    pub error_log: Option<String>,
    pub user: Option<String>,
    pub group: Option<String>,
    /// How long a shutting-down process keeps serving in-flight requests.
    pub grace_period: Dur,
    /// How long the runtimes get to stop after the grace period.
    pub graceful_shutdown_timeout: Dur,
    /// Upstream connections kept idle, in total.
    pub upstream_keepalive_pool_size: usize,
    /// Idle timeout of downstream connections: HTTP/1.1 keep-alive, and
    /// HTTP/2 connections with no request in flight.
    pub downstream_keepalive_timeout: Dur,
    /// Requests served on one downstream connection before it is closed (0: unlimited).
    pub keepalive_request_limit: u32,
    /// Streams one HTTP/2 client connection may have open at once (the
    /// SETTINGS_MAX_CONCURRENT_STREAMS Portico announces); a client queues
    /// calls beyond it.
    pub h2_max_concurrent_streams: u32,
}

impl Default for ServerSpec {
    fn default() -> Self {
        ServerSpec {
            threads: 2,
            work_stealing: true,
            pid_file: "/tmp/portico.pid".into(),
            upgrade_sock: "/tmp/portico_upgrade.sock".into(),
            error_log: None,
            user: None,
            group: None,
            grace_period: Dur(Duration::from_secs(30)),
            graceful_shutdown_timeout: Dur(Duration::from_secs(5)),
            upstream_keepalive_pool_size: 128,
            downstream_keepalive_timeout: Dur(Duration::from_secs(60)),
            keepalive_request_limit: 0,
            h2_max_concurrent_streams: 128,
        }
    }
}

/// A public listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerSpec {
    /// `ip:port`, e.g. `0.0.0.0:8080` or `[::]:8080`.
    pub address: String,
    /// Accept cleartext HTTP/2 with prior knowledge beside HTTP/1.1. A TLS
    /// listener ignores it: ALPN offers `h2` and `http/1.1` there.
    #[serde(default = "yes")]
    pub h2c: bool,
    /// Terminate TLS on this listener.
    #[serde(default)]
    pub tls: Option<ListenerTlsSpec>,
    /// Answer every request on this (cleartext) listener with a permanent
    /// redirect to the same host and target over HTTPS.
    #[serde(default)]
    pub https_redirect: Option<HttpsRedirectSpec>,
    /// Every connection starts with a PROXY protocol header (v1 or v2),
    /// believed when the connecting peer is in `trusted_proxies`. TLS
    /// listeners only.
    #[serde(default)]
    pub proxy_protocol: bool,
}

/// The TLS of a listener: TLS 1.2 and 1.3 only, ALPN `h2` then `http/1.1`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerTlsSpec {
    /// Certificates chosen by the client's SNI; the first is the default for
    /// a client that sends no name or one that no certificate covers.
    pub certificates: Vec<CertificateSpec>,
    /// Ask clients for a certificate signed by these CAs (mutual TLS).
    #[serde(default)]
    pub client_auth: Option<ClientAuthSpec>,
    /// Send `Strict-Transport-Security` on every response of this listener.
    #[serde(default)]
    pub hsts: Option<HstsSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateSpec {
    /// PEM file: the certificate, then its intermediates.
    pub cert: String,
    /// PEM file: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: String,
    /// Server names this certificate answers (`api.example.com`,
    /// `*.example.com`); by default the DNS names the certificate lists.
    #[serde(default)]
    pub names: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientAuthSpec {
    /// PEM file of the CA certificates client certificates must chain to.
    pub ca: String,
    /// Refuse the handshake of a client without a certificate; with `false`
    /// one is verified when sent and clients without one are let in.
    #[serde(default = "yes")]
    pub required: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HstsSpec {
    #[serde(default = "one_year")]
    pub max_age: Dur,
    #[serde(default)]
    pub include_subdomains: bool,
    #[serde(default)]
    pub preload: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpsRedirectSpec {
    /// The HTTPS port clients are sent to; left out of the URL when 443.
    #[serde(default = "https_port")]
    pub port: u16,
}

/// TLS to the backends of a pool.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTlsSpec {
    /// The name sent as SNI and checked against the certificate; by default
    /// the host part of each backend's address.
    #[serde(default)]
    pub sni: Option<String>,
    /// Verify the backend's certificate chain.
    #[serde(default = "yes")]
    pub verify: bool,
    /// Verify that the certificate names the SNI host.
    #[serde(default = "yes")]
    pub verify_hostname: bool,
    /// PEM file of the CAs to trust instead of the system's.
    #[serde(default)]
    pub ca: Option<String>,
    /// PEM files of a client certificate and its key, for backends that ask.
    #[serde(default)]
    pub client_cert: Option<String>,
    #[serde(default)]
    pub client_key: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSpec {
    pub address: String,
    /// The bearer token the admin listener's write endpoints (cache purge)
    /// require; without one they are refused. Write it as `${ENV_VAR}`.
    #[serde(default)]
    pub token: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogTarget {
    #[default]
    Stdout,
    Stderr,
    File,
    Off,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AccessLogSpec {
    pub target: LogTarget,
    /// Required when `target: file`.
    pub path: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Json,
    Text,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingSpec {
    /// A `tracing` filter directive such as `info` or `portico=debug,info`.
    pub level: String,
    pub format: LogFormat,
}

impl Default for LoggingSpec {
    fn default() -> Self {
        LoggingSpec {
            level: "info".into(),
            format: LogFormat::Json,
        }
    }
}

/// A named pool of backends.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSpec {
    pub backends: Vec<BackendSpec>,
    #[serde(default)]
    pub balance: Balance,
    /// Where the hash key comes from; required for `balance: consistent_hash`.
    #[serde(default)]
    pub hash_key: Option<HashKeySpec>,
    #[serde(default)]
    pub timeouts: TimeoutsSpec,
    #[serde(default)]
    pub health_check: Option<HealthCheckSpec>,
    #[serde(default)]
    pub passive_health: PassiveHealthSpec,
    /// Extra tries on another backend after a failed one (see the README's retry rules).
    #[serde(default = "default_retries")]
    pub retries: usize,
    /// Speak TLS to the backends.
    #[serde(default)]
    pub tls: Option<UpstreamTlsSpec>,
    /// Fail fast while the backends keep failing.
    #[serde(default)]
    pub circuit_breaker: Option<CircuitBreakerSpec>,
    /// HTTP/1.1, h2c or h2 (TLS) to the backends; gRPC needs h2c or h2.
    #[serde(default)]
    pub protocol: UpstreamProtocol,
    /// Concurrent requests one HTTP/2 connection to a backend carries.
    #[serde(default = "default_max_h2_streams")]
    pub max_h2_streams: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendSpec {
    /// `ip:port` or `hostname:port`; hostnames are resolved asynchronously at start.
    pub address: String,
    #[serde(default = "one")]
    pub weight: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// Weighted round robin (all weights 1 gives plain round robin).
    #[default]
    RoundRobin,
    /// Ketama consistent hashing on `hash_key`.
    ConsistentHash,
    /// Power of two choices on in-flight requests.
    LeastRequests,
    Random,
}

/// Written as `{source: client_ip}`, `{source: path}`, `{source: header, name: ..}`
/// or `{source: cookie, name: ..}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "HashKeyFields")]
pub enum HashKeySpec {
    ClientIp,
    Path,
    Header(String),
    Cookie(String),
}

/// The written form of [`HashKeySpec`]. An adjacently tagged enum would do the
/// same, but its unknown-key errors name neither the key nor the accepted ones.
#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a map with `source` and, for header or cookie, `name`"
)]
struct HashKeyFields {
    source: HashKeySource,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum HashKeySource {
    ClientIp,
    Path,
    Header,
    Cookie,
}

impl TryFrom<HashKeyFields> for HashKeySpec {
    type Error = String;

    fn try_from(fields: HashKeyFields) -> Result<Self, String> {
        match (fields.source, fields.name) {
            (HashKeySource::ClientIp, None) => Ok(HashKeySpec::ClientIp),
            (HashKeySource::Path, None) => Ok(HashKeySpec::Path),
            (HashKeySource::Header, Some(name)) => Ok(HashKeySpec::Header(name)),
            (HashKeySource::Cookie, Some(name)) => Ok(HashKeySpec::Cookie(name)),
            (HashKeySource::Header | HashKeySource::Cookie, None) => Err(format!(
                "hash key source `{}` needs a `name`; add `name:` with the {} to hash on",
                fields.source.key(),
                fields.source.key()
            )),
            (HashKeySource::ClientIp | HashKeySource::Path, Some(_)) => Err(format!(
                "hash key source `{}` takes no `name`; remove `name`",
                fields.source.key()
            )),
        }
    }
}

impl HashKeySource {
    fn key(self) -> &'static str {
        match self {
            HashKeySource::ClientIp => "client_ip",
            HashKeySource::Path => "path",
            HashKeySource::Header => "header",
            HashKeySource::Cookie => "cookie",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimeoutsSpec {
    pub connect: Dur,
    pub read: Dur,
    pub write: Dur,
    /// How long a pooled upstream connection may sit idle; `0s` disables keep-alive.
    pub idle: Dur,
}

impl Default for TimeoutsSpec {
    fn default() -> Self {
        TimeoutsSpec {
            connect: Dur(Duration::from_secs(3)),
            read: Dur(Duration::from_secs(30)),
            write: Dur(Duration::from_secs(30)),
            idle: Dur(Duration::from_secs(60)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthCheckKind {
    Http,
    Tcp,
    /// The standard `grpc.health.v1.Health/Check` call; needs an HTTP/2 upstream.
    Grpc,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckSpec {
    #[serde(rename = "type")]
    pub kind: HealthCheckKind,
    /// Request path for `type: http`.
    #[serde(default = "default_health_path")]
    pub path: String,
    /// Host header for `type: http`; defaults to the backend address.
    #[serde(default)]
    pub host: Option<String>,
    /// Statuses that count as healthy for `type: http`.
    #[serde(default = "default_expect")]
    pub expect_status: Vec<u16>,
    /// The service asked about for `type: grpc`; empty (the default) asks
    /// about the server as a whole.
    #[serde(default)]
    pub service: Option<String>,
    #[serde(default = "default_interval")]
    pub interval: Dur,
    #[serde(default = "default_check_timeout")]
    pub timeout: Dur,
    /// Consecutive successes that bring a backend back (rise).
    #[serde(default = "two")]
    pub healthy_threshold: u32,
    /// Consecutive failures that take a backend out (fall).
    #[serde(default = "three")]
    pub unhealthy_threshold: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PassiveHealthSpec {
    /// Consecutive connect failures or 5xx answers that eject a backend (0: never).
    pub consecutive_failures: u32,
    /// How long an ejected backend gets no traffic before it is tried again.
    pub ejection_time: Dur,
    /// The most of the pool's backends ejected at once, in percent (one may
    /// always be); a backend that reaches its failures while the pool is at
    /// the cap stays in until another returns. Envoy's name; its default
    /// is 10.
    pub max_ejection_percent: u32,
}

impl Default for PassiveHealthSpec {
    fn default() -> Self {
        PassiveHealthSpec {
            consecutive_failures: 5,
            ejection_time: Dur(Duration::from_secs(10)),
            max_ejection_percent: 50,
        }
    }
}

/// One route: a match and where it goes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// Unique id, used in metrics and logs.
    pub id: String,
    #[serde(rename = "match", default)]
    pub matches: MatchSpec,
    /// Name of an entry in `upstreams`.
    pub upstream: String,
    /// Remove the matched prefix before forwarding (only with `path: {prefix: ..}`).
    #[serde(default)]
    pub strip_prefix: bool,
    /// Rewrite the forwarded path: `regex` captures may be used in `replace` as `$1`.
    #[serde(default)]
    pub rewrite: Option<RewriteSpec>,
    /// Host header sent upstream; the client's is passed through when absent.
    #[serde(default)]
    pub upstream_host: Option<String>,
    /// This route's IP filter, limits, threat protection and CORS.
    #[serde(default)]
    pub policies: PoliciesSpec,
    /// Origins and limits for WebSocket connections on this route.
    #[serde(default)]
    pub websocket: Option<WebSocketSpec>,
    /// Response caching on this route; absent, nothing is cached.
    #[serde(default)]
    pub cache: Option<RouteCacheSpec>,
    /// Response compression negotiated with the client; off when absent.
    #[serde(default)]
    pub compression: Option<CompressionSpec>,
    /// Header, query and JSON body changes in both directions.
    #[serde(default)]
    pub transform: Option<TransformSpec>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MatchSpec {
    /// Exact names or `*.suffix` wildcards; empty matches any host.
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub path: Option<PathMatchSpec>,
    /// Empty matches any method.
    #[serde(default)]
    pub methods: Vec<String>,
    #[serde(default)]
    pub headers: Vec<ValueMatchSpec>,
    #[serde(default)]
    pub query: Vec<ValueMatchSpec>,
    /// gRPC service and method; shorthand for a `path` match.
    #[serde(default)]
    pub grpc: Option<GrpcMatchSpec>,
}

/// Written as a map with exactly one key: `{exact: ..}`, `{prefix: ..}` or `{regex: ..}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "PathMatchFields")]
pub enum PathMatchSpec {
    Exact(String),
    /// Matches the prefix on segment boundaries: `/api` matches `/api` and `/api/x`.
    Prefix(String),
    Regex(String),
}

/// The written form of [`PathMatchSpec`]. A derived externally tagged enum
/// cannot be read from a `serde_norway::Value` map (only from a `!tag`), and the
/// loader deserializes from a `Value`.
#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a map with one of `exact`, `prefix` or `regex`"
)]
struct PathMatchFields {
    #[serde(default)]
    exact: Option<String>,
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    regex: Option<String>,
}

impl TryFrom<PathMatchFields> for PathMatchSpec {
    type Error = &'static str;

    fn try_from(fields: PathMatchFields) -> Result<Self, Self::Error> {
        match (fields.exact, fields.prefix, fields.regex) {
            (Some(path), None, None) => Ok(PathMatchSpec::Exact(path)),
            (None, Some(path), None) => Ok(PathMatchSpec::Prefix(path)),
            (None, None, Some(regex)) => Ok(PathMatchSpec::Regex(regex)),
            (None, None, None) => {
                Err("empty path match; write one of `exact`, `prefix` or `regex`")
            }
            _ => Err("a path match takes one kind only; keep one of `exact`, `prefix` or `regex`"),
        }
    }
}

/// A header or query-parameter predicate. With neither `value` nor `regex` it
/// only requires presence.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValueMatchSpec {
    pub name: String,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub regex: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewriteSpec {
    pub regex: String,
    pub replace: String,
}

mod auth;
mod cache;
mod compression;
mod graphql;
mod grpc;
mod policy;
mod traffic;
mod transform;
mod websocket;
pub use auth::*;
pub use cache::*;
pub use compression::*;
#[allow(unused_imports)]
pub use graphql::*;
pub use grpc::*;
pub use policy::*;
pub use traffic::*;
pub use transform::*;
pub use websocket::*;

/// A duration written as `250ms`, `5s`, `1m`, `2h`.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Dur(pub Duration);

impl fmt::Debug for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(DurVisitor)
    }
}

/// Reads a [`Dur`]; its `expecting` text makes a bare number's error say what to write.
struct DurVisitor;

impl serde::de::Visitor<'_> for DurVisitor {
    type Value = Dur;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration with a unit, like 250ms, 5s, 1m or 1h")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Dur, E> {
        humantime::parse_duration(text.trim())
            .map(Dur)
            .map_err(|e| {
                E::custom(format!(
                    "invalid duration {text:?} ({e}); write it like 250ms, 5s, 1m or 1h"
                ))
            })
    }
}

/// Reads `trusted_proxies`, accepting a bare address as a one-host network.
fn trusted_proxy_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ipnet::IpNet>, D::Error> {
    Vec::<TrustedProxy>::deserialize(d).map(|list| list.into_iter().map(|p| p.0).collect())
}

/// One `trusted_proxies` entry: `10.0.0.0/8` or `192.0.2.7`.
pub(crate) struct TrustedProxy(pub ipnet::IpNet);

impl<'de> Deserialize<'de> for TrustedProxy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let text = text.trim();
        if let Ok(net) = text.parse::<ipnet::IpNet>() {
            return Ok(TrustedProxy(net));
        }
        text.parse::<std::net::IpAddr>()
            .map(|addr| TrustedProxy(addr.into()))
            .map_err(|_| {
                serde::de::Error::custom(format!(
                    "{text:?} is neither an IP address nor a CIDR network; \
                     write it like 10.0.0.0/8, 2001:db8::/32 or 192.0.2.7"
                ))
            })
    }
}

fn yes() -> bool {
    true
}
fn one_year() -> Dur {
    Dur(Duration::from_secs(365 * 24 * 3600))
}
fn https_port() -> u16 {
    443
}
fn one() -> u32 {
    1
}
fn two() -> u32 {
    2
}
fn three() -> u32 {
    3
}
fn default_retries() -> usize {
    2
}
fn default_health_path() -> String {
    "/".into()
}
fn default_expect() -> Vec<u16> {
    vec![200]
}
fn default_interval() -> Dur {
    Dur(Duration::from_secs(5))
}
fn default_check_timeout() -> Dur {
    Dur(Duration::from_secs(1))
}
