//! Prometheus metrics, in one registry owned by the process.
//!
//! Request counters are labelled by route id, method and status class only,
//! which keeps the label space bounded by the configuration.

use std::sync::OnceLock;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::gateway::Snapshot;
use crate::upstream::circuit::CircuitState;

/// The gateway's metric families.
pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub duration: HistogramVec,
    pub connect_failures: IntCounterVec,
    pub backend_healthy: IntGaugeVec,
    pub ratelimit_rejected: IntCounterVec,
    pub concurrency_rejected: IntCounterVec,
    /// Set at scrape time from the stores and the pools.
    pub ratelimit_store_up: IntGauge,
    pub ratelimit_store_errors: IntGauge,
    pub circuit_state: IntGaugeVec,
    /// Open WebSocket connections, by route.
    pub ws_open: IntGaugeVec,
    /// WebSocket data messages relayed, by route and direction.
    pub ws_messages: IntCounterVec,
    /// Responses on caching routes, by `X-Cache-Status`.
    pub cache_lookups: IntCounterVec,
    /// The cache store's contents and evictions, set at scrape time.
    pub cache_bytes: IntGauge,
    pub cache_objects: IntGauge,
    pub cache_evictions: prometheus::IntCounter,
}

/// The process-wide metrics, created on first use.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

impl Metrics {
    fn new() -> Metrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "portico_requests_total",
                "Requests answered, by route, method and status class",
            ),
            &["route", "method", "status"],
        )
        .expect("static metric definition is valid");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "portico_request_duration_seconds",
                "Time from request start to the end of the response, by route",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ]),
            &["route"],
        )
        .expect("static metric definition is valid");
        let connect_failures = IntCounterVec::new(
            Opts::new(
                "portico_upstream_connect_failures_total",
                "Failed upstream connects",
            ),
            &["upstream", "backend"],
        )
        .expect("static metric definition is valid");
        let backend_healthy = IntGaugeVec::new(
            Opts::new(
                "portico_backend_healthy",
                "1 when the backend takes traffic, else 0",
            ),
            &["upstream", "backend"],
        )
        .expect("static metric definition is valid");
        let ratelimit_rejected = IntCounterVec::new(
            Opts::new(
                "portico_ratelimit_rejected_total",
                "Requests refused by a rate limit, by limit",
            ),
            &["limit"],
        )
        .expect("static metric definition is valid");
        let concurrency_rejected = IntCounterVec::new(
            Opts::new(
                "portico_concurrency_rejected_total",
                "Requests refused by an in-flight cap, by route",
            ),
            &["route"],
        )
        .expect("static metric definition is valid");
        let ratelimit_store_up = IntGauge::new(
            "portico_ratelimit_store_up",
            "1 while the shared rate-limit store (Redis) answers, else 0",
        )
        .expect("static metric definition is valid");
        let ratelimit_store_errors = IntGauge::new(
            "portico_ratelimit_store_errors",
            "Rate-limit store commands that failed since start",
        )
        .expect("static metric definition is valid");
        let circuit_state = IntGaugeVec::new(
            Opts::new(
                "portico_circuit_state",
                "Circuit breaker of a pool: 0 closed, 1 open, 2 half-open",
            ),
            &["upstream"],
        )
        .expect("static metric definition is valid");
        let ws_open = IntGaugeVec::new(
            Opts::new(
                "portico_websocket_connections",
                "Open WebSocket connections, by route",
            ),
            &["route"],
        )
        .expect("static metric definition is valid");
        let ws_messages = IntCounterVec::new(
            Opts::new(
                "portico_websocket_messages_total",
                "WebSocket data messages relayed, by route and direction",
            ),
            &["route", "direction"],
        )
        .expect("static metric definition is valid");
        let cache_lookups = IntCounterVec::new(
            Opts::new(
                "portico_cache_responses_total",
                "Responses on caching routes, by cache status (HIT, MISS, STALE, ...)",
            ),
            &["status"],
        )
        .expect("static metric definition is valid");
        let cache_bytes = IntGauge::new(
            "portico_cache_stored_bytes",
            "Bytes of responses held in the cache",
        )
        .expect("static metric definition is valid");
        let cache_objects = IntGauge::new("portico_cache_objects", "Responses held in the cache")
            .expect("static metric definition is valid");
        let cache_evictions = prometheus::IntCounter::new(
            "portico_cache_evictions_total",
            "Responses the cache dropped to stay within its size",
        )
        .expect("static metric definition is valid");
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(cache_lookups.clone()),
            Box::new(cache_bytes.clone()),
            Box::new(cache_objects.clone()),
            Box::new(cache_evictions.clone()),
            Box::new(duration.clone()),
            Box::new(connect_failures.clone()),
            Box::new(backend_healthy.clone()),
            Box::new(ratelimit_rejected.clone()),
            Box::new(concurrency_rejected.clone()),
            Box::new(ratelimit_store_up.clone()),
            Box::new(ratelimit_store_errors.clone()),
            Box::new(circuit_state.clone()),
            Box::new(ws_open.clone()),
            Box::new(ws_messages.clone()),
        ] {
            registry
                .register(c)
                .expect("each metric is registered once");
        }
        Metrics {
            registry,
            requests,
            duration,
            connect_failures,
            backend_healthy,
            ratelimit_rejected,
            concurrency_rejected,
            ratelimit_store_up,
            ratelimit_store_errors,
            circuit_state,
            ws_open,
            ws_messages,
            cache_lookups,
            cache_bytes,
            cache_objects,
            cache_evictions,
        }
    }

    /// Records one finished request.
    pub fn observe_request(&self, route: &str, method: &http::Method, status: u16, secs: f64) {
        let class = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            500..=599 => "5xx",
            _ => "none",
        };
        self.requests
            .with_label_values(&[route, method_label(method), class])
            .inc();
        self.duration.with_label_values(&[route]).observe(secs);
    }

    /// The text exposition, with backend health read fresh from `snapshot`.
    pub fn render(&self, snapshot: &Snapshot) -> Vec<u8> {
        for pool in snapshot.pools.values() {
            for b in pool.backends() {
                self.backend_healthy
                    .with_label_values(&[&*pool.name, &b.label])
                    .set(i64::from(b.is_available()));
            }
        }
        for pool in snapshot.pools.values() {
            if let Some(circuit) = &pool.circuit {
                let state = match circuit.state() {
                    CircuitState::Closed => 0,
                    CircuitState::Open => 1,
                    CircuitState::HalfOpen => 2,
                };
                self.circuit_state
                    .with_label_values(&[&*pool.name])
                    .set(state);
            }
        }
        if let Some(store) = &snapshot.traffic.store {
            self.ratelimit_store_up.set(i64::from(store.is_up()));
            self.ratelimit_store_errors
                .set(i64::try_from(store.errors()).unwrap_or(i64::MAX));
        }
        self.set_cache_figures();
        let mut out = Vec::with_capacity(8192);
        // Encoding into a Vec cannot fail for the text format.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

impl Metrics {
    fn set_cache_figures(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        let stats = crate::cache::store().stats();
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.cache_bytes.set(gauge(stats.bytes.load(Relaxed)));
        self.cache_objects.set(gauge(stats.objects.load(Relaxed)));
        let evicted = stats.evictions.load(Relaxed);
        self.cache_evictions
            .inc_by(evicted.saturating_sub(self.cache_evictions.get()));
    }
}

/// Methods outside the standard set share one label value, so a client cannot
/// grow the label space.
fn method_label(m: &http::Method) -> &'static str {
    match *m {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::DELETE => "DELETE",
        http::Method::PATCH => "PATCH",
        http::Method::HEAD => "HEAD",
        http::Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}
