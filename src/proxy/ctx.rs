//! Per-request state carried through the Pingora hooks.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::error::Failure;
use crate::auth::Identity;
use crate::gateway::Snapshot;
use crate::limit::traffic::{Slots, Verdict};
use crate::upstream::circuit::Attempt;
use crate::upstream::InflightGuard;

/// What one request has learned so far. Created in `new_ctx`, dropped after
/// `logging`; dropping it releases the backend's in-flight slot.
pub struct RequestCtx {
    /// The configuration this request runs under, fixed at its start.
    pub snapshot: Arc<Snapshot>,
    pub start: Instant,
    pub request_id: String,
    /// The client address after the trusted-proxy rule.
    pub client_ip: Option<IpAddr>,
    /// The socket peer, for `X-Forwarded-For`.
    pub peer_ip: Option<IpAddr>,
    /// Host as received, normalised (lowercase, no port).
    pub host: String,
    /// The normalised path, which every step and the upstream see.
    pub path: String,
    /// Index into `snapshot.router.routes()`.
    pub route: Option<usize>,
    /// The path and query sent upstream after strip-prefix or rewrite, when
    /// it differs from the client's.
    pub upstream_uri: Option<String>,
    /// Backends already tried, by index in the pool.
    pub tried: Vec<usize>,
    /// The backend of the current (last) try.
    pub backend: Option<usize>,
    pub inflight: Option<InflightGuard>,
    /// When the current try was sent, and how long its response header took.
    pub upstream_sent: Option<Instant>,
    pub upstream_latency: Option<Duration>,
    /// Set when Portico answers the request itself.
    pub failure: Option<Failure>,
    /// Who the request is, when its route authenticated it.
    pub identity: Option<Identity>,
    /// Request body bytes passed on so far, for the route's body cap.
    pub body_seen: u64,
    /// The `Strict-Transport-Security` value of the TLS listener the request
    /// came through, when it sends one.
    pub hsts: Option<http::HeaderValue>,
    /// The HTTPS port of the listener's `https_redirect`.
    pub redirect_port: Option<u16>,
    /// What the route's rate limits decided, for the response headers.
    pub rate: Option<Verdict>,
    /// The in-flight slots the request holds until it ends.
    pub slots: Option<Slots>,
    /// This request's place in its pool's circuit breaker.
    pub circuit: Option<Attempt>,
    /// The pool a GraphQL route's operation rules chose, over the route's.
    pub pool_override: Option<Arc<crate::upstream::Pool>>,
    /// The GraphQL error response for a refused GraphQL request.
    pub graphql_answer: Option<super::graphql::GraphqlAnswer>,
    /// Set when the request is a gRPC or gRPC-Web call.
    pub grpc: Option<super::grpc::Call>,
    /// The cache key of a request on a caching route.
    pub cache: Option<CacheCtx>,
    /// The request and response bodies a route's JSON rewrite is holding.
    pub json_bodies: super::transform::json::Bodies,
}

/// A caching route's key for this request.
pub struct CacheCtx {
    /// The URL part, which purges name.
    pub url: String,
    /// The whole primary key: the URL and the parts the route adds.
    pub primary: String,
    /// The header fields of the upstream's 304 when this request
    /// revalidated a stored response (Pingora merges only a few of them).
    pub not_modified: Option<Box<http::HeaderMap>>,
    /// Fields of the upstream's answer its stored copy leaves out
    /// (`no-cache="..."`, `private="..."`), given back to this client.
    pub withheld: Vec<(http::HeaderName, http::HeaderValue)>,
}

impl RequestCtx {
    pub fn new(snapshot: Arc<Snapshot>) -> RequestCtx {
        RequestCtx {
            snapshot,
            start: Instant::now(),
            request_id: String::new(),
            client_ip: None,
            peer_ip: None,
            host: String::new(),
            path: String::new(),
            route: None,
            upstream_uri: None,
            tried: Vec::new(),
            backend: None,
            inflight: None,
            upstream_sent: None,
            upstream_latency: None,
            failure: None,
            identity: None,
            body_seen: 0,
            hsts: None,
            redirect_port: None,
            rate: None,
            slots: None,
            circuit: None,
            pool_override: None,
            graphql_answer: None,
            grpc: None,
            cache: None,
            json_bodies: Default::default(),
        }
    }

    /// The matched route's id, or `"-"` before or without a match.
    pub fn route_id(&self) -> &str {
        self.route
            .and_then(|i| self.snapshot.router.routes().get(i))
            .map(|r| &*r.id)
            .unwrap_or("-")
    }

    /// The pool of the matched route, or the one its GraphQL operation
    /// rules chose.
    pub fn pool(&self) -> Option<&Arc<crate::upstream::Pool>> {
        self.pool_override
            .as_ref()
            .or_else(|| self.route.and_then(|i| self.snapshot.route_pools.get(i)))
    }
}
