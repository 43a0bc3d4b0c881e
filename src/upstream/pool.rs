//! A pool of backends and its per-backend health state.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use pingora::upstreams::peer::HttpPeer;
use pingora_ketama::{Bucket, Continuum};
use tracing::{info, warn};

use super::balance::{wrr_schedule, HashKey};
use super::circuit::{Circuit, CircuitSettings};
use super::resolve::Resolved;
use crate::config::schema::{Balance, HealthCheckSpec, UpstreamProtocol, UpstreamSpec};
use crate::tls::upstream::UpstreamTls;

/// The host of `host:port`, `[v6]:port` or a bare host, as written.
fn address_host(address: &str) -> &str {
    let host = match address.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => address,
    };
    host.trim_start_matches('[').trim_end_matches(']')
}

/// Ketama points walked before falling back to a scan for a usable backend.
const RING_PROBES: usize = 2048;

fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

/// One backend address in a pool.
#[derive(Debug)]
pub struct Backend {
    pub addr: SocketAddr,
    /// `addr` as text, for metrics and logs.
    pub label: String,
    /// The host part of the configured address (a name or an IP): the SNI
    /// of a TLS pool without one of its own.
    pub host: Arc<str>,
    pub weight: u32,
    /// Verdict of the active health check; true until a check says otherwise.
    active_up: AtomicBool,
    /// Passive ejection deadline in `now_ms` time; 0 when not ejected.
    ejected_until: AtomicU64,
    /// Consecutive failed requests seen by the proxy.
    failures: AtomicU32,
    inflight: AtomicU32,
    /// Consecutive active-check results, written only by the checker.
    streak_ok: AtomicU32,
    streak_fail: AtomicU32,
}

impl Backend {
    fn new(addr: SocketAddr, host: &str, weight: u32) -> Backend {
        Backend {
            addr,
            label: addr.to_string(),
            host: Arc::from(host),
            weight,
            active_up: AtomicBool::new(true),
            ejected_until: AtomicU64::new(0),
            failures: AtomicU32::new(0),
            inflight: AtomicU32::new(0),
            streak_ok: AtomicU32::new(0),
            streak_fail: AtomicU32::new(0),
        }
    }

    /// Whether the backend may take new requests: active checks pass and it is
    /// not passively ejected.
    pub fn is_available(&self) -> bool {
        self.passes_checks() && self.ejected_until.load(Ordering::Relaxed) <= now_ms()
    }

    /// Whether the active checks pass (true in a pool without them), ejected
    /// or not.
    fn passes_checks(&self) -> bool {
        self.active_up.load(Ordering::Relaxed)
    }

    /// Requests currently in flight to this backend.
    pub fn inflight(&self) -> u32 {
        self.inflight.load(Ordering::Relaxed)
    }

    /// Records one active-check result. Returns the new verdict when it flips.
    pub(crate) fn record_check(&self, ok: bool, rise: u32, fall: u32) -> Option<bool> {
        let up = self.active_up.load(Ordering::Relaxed);
        if ok {
            self.streak_fail.store(0, Ordering::Relaxed);
            let n = self.streak_ok.fetch_add(1, Ordering::Relaxed) + 1;
            if !up && n >= rise {
                self.active_up.store(true, Ordering::Relaxed);
                // A backend that passes its checks again is no longer ejected either.
                self.ejected_until.store(0, Ordering::Relaxed);
                self.failures.store(0, Ordering::Relaxed);
                return Some(true);
            }
        } else {
            self.streak_ok.store(0, Ordering::Relaxed);
            let n = self.streak_fail.fetch_add(1, Ordering::Relaxed) + 1;
            if up && n >= fall {
                self.active_up.store(false, Ordering::Relaxed);
                return Some(false);
            }
        }
        None
    }
}

/// Holds one in-flight slot on a backend; releases it when dropped.
#[derive(Debug)]
pub struct InflightGuard(Arc<Backend>);

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What happened to a request sent to a backend, as passive health sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A response below 500.
    Success,
    /// The connection could not be made.
    ConnectFailure,
    /// A 5xx response, or the connection broke after it was made.
    ServerError,
}

/// Per-pool connection timeouts, as Pingora peer options want them.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub read: Duration,
    pub write: Duration,
    /// `None` disables upstream keep-alive.
    pub idle: Option<Duration>,
}

/// A named, load-balanced set of backends.
#[derive(Debug)]
pub struct Pool {
    pub name: Arc<str>,
    backends: Vec<Arc<Backend>>,
    balance: Balance,
    hash_key: Option<HashKey>,
    schedule: Vec<u16>,
    cursor: AtomicUsize,
    ring: Option<Ring>,
    ring_index: HashMap<SocketAddr, usize>,
    pub timeouts: Timeouts,
    pub health_check: Option<HealthCheckSpec>,
    eject_after: u32,
    eject_for: Duration,
    /// The most backends ejected at once; at least one.
    max_ejected: usize,
    /// Extra tries after a failed one.
    pub retries: usize,
    checked: AtomicBool,
    /// TLS to the backends; `None` speaks cleartext HTTP/1.1.
    pub tls: Option<Arc<UpstreamTls>>,
    /// Fails requests fast while the backends keep failing.
    pub circuit: Option<Circuit>,
    /// HTTP/1.1 or HTTP/2 to the backends.
    pub protocol: UpstreamProtocol,
    /// Streams one HTTP/2 connection carries before Pingora opens another.
    pub max_h2_streams: usize,
}

/// The consistent-hash ring; a newtype so the pool can derive `Debug`.
struct Ring(Continuum);

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ring")
    }
}

impl Pool {
    /// Builds a pool from a validated spec and the resolved addresses of its
    /// backends. A name resolving to several addresses gives one backend per
    /// address, each with the configured weight; repeated addresses are merged.
    pub fn new(name: &str, spec: &UpstreamSpec, resolved: &Resolved) -> Pool {
        let mut backends: Vec<Arc<Backend>> = Vec::new();
        for b in &spec.backends {
            for addr in resolved.get(&b.address).into_iter().flatten() {
                if backends.iter().all(|x| x.addr != *addr) {
                    let host = address_host(&b.address);
                    backends.push(Arc::new(Backend::new(*addr, host, b.weight.max(1))));
                }
            }
        }
        let percent = spec.passive_health.max_ejection_percent as usize;
        let max_ejected = (backends.len() * percent / 100).max(1);
        let weights: Vec<u32> = backends.iter().map(|b| b.weight).collect();
        let ring = (spec.balance == Balance::ConsistentHash).then(|| {
            let buckets: Vec<Bucket> = backends
                .iter()
                .map(|b| Bucket::new(b.addr, b.weight))
                .collect();
            Ring(Continuum::new(&buckets))
        });
        let ring_index = backends
            .iter()
            .enumerate()
            .map(|(i, b)| (b.addr, i))
            .collect();
        let t = &spec.timeouts;
        Pool {
            name: Arc::from(name),
            schedule: wrr_schedule(&weights),
            backends,
            balance: spec.balance,
            hash_key: spec.hash_key.as_ref().map(HashKey::from_spec),
            cursor: AtomicUsize::new(fastrand::usize(..1024)),
            ring,
            ring_index,
            timeouts: Timeouts {
                connect: t.connect.0,
                read: t.read.0,
                write: t.write.0,
                idle: (!t.idle.0.is_zero()).then_some(t.idle.0),
            },
            health_check: spec.health_check.clone(),
            eject_after: spec.passive_health.consecutive_failures,
            eject_for: spec.passive_health.ejection_time.0,
            max_ejected,
            retries: spec.retries,
            checked: AtomicBool::new(spec.health_check.is_none()),
            tls: None,
            protocol: spec.protocol,
            max_h2_streams: spec.max_h2_streams,
            circuit: spec.circuit_breaker.as_ref().map(|c| {
                Circuit::new(
                    name,
                    CircuitSettings {
                        error_rate: c.error_rate,
                        min_requests: c.min_requests,
                        window: c.window.0,
                        open_for: c.open_for.0,
                        half_open_requests: c.half_open_requests,
                    },
                )
            }),
        }
    }

    /// The pool with its compiled TLS.
    pub fn with_tls(mut self, tls: Option<Arc<UpstreamTls>>) -> Pool {
        self.tls = tls;
        self
    }

    /// A peer for backend `idx`, over TLS when the pool has it, with the
    /// pool's timeouts and protocol.
    ///
    /// HTTP/2 peers ask for ALPN `h2` only, never `h2` or `http/1.1`: a gRPC
    /// call downgraded to HTTP/1.1 would lose its trailers. Without TLS the
    /// connector then speaks h2c with prior knowledge. Pingora's default of
    /// one stream per connection is raised to `max_h2_streams`, so that
    /// concurrent calls share connections.
    pub fn peer(&self, idx: usize) -> HttpPeer {
        let backend = &self.backends[idx];
        let mut peer = match &self.tls {
            Some(tls) => tls.peer(backend.addr, &backend.host),
            None => HttpPeer::new(backend.addr, false, String::new()),
        };
        let t = &self.timeouts;
        peer.options.connection_timeout = Some(t.connect);
        peer.options.read_timeout = Some(t.read);
        peer.options.write_timeout = Some(t.write);
        peer.options.idle_timeout = Some(t.idle.unwrap_or(Duration::ZERO));
        if self.protocol.is_h2() {
            peer.options.alpn = pingora::protocols::ALPN::H2;
            peer.options.max_h2_streams = self.max_h2_streams;
        }
        peer
    }

    pub fn backends(&self) -> &[Arc<Backend>] {
        &self.backends
    }

    /// The consistent-hash key source, when the pool hashes.
    pub fn hash_key(&self) -> Option<&HashKey> {
        self.hash_key.as_ref()
    }

    /// True once the pool's first round of active checks has finished (always
    /// true for a pool without active checks).
    pub fn is_checked(&self) -> bool {
        self.checked.load(Ordering::Acquire)
    }

    pub(crate) fn mark_checked(&self) {
        self.checked.store(true, Ordering::Release);
    }

    /// Chooses an available backend not in `tried`. `key` is the hash key for
    /// consistent hashing and ignored otherwise. `None` means no backend can
    /// take the request.
    ///
    /// Passive ejection never empties a pool: when every backend that passes
    /// its active checks is ejected, they all take traffic again until one
    /// recovers (Envoy calls this panic mode). Ejection is judged from
    /// relayed answers, which may say more about one endpoint than about the
    /// backend, and refusing everything would turn one failing path into an
    /// outage of the whole route. A failed active check stays final.
    pub fn select(&self, key: &[u8], tried: &[usize]) -> Option<usize> {
        // One draw per request, shared by the panic-mode pass, so that pass
        // balances too.
        let start = match self.balance {
            Balance::RoundRobin => self.cursor.fetch_add(1, Ordering::Relaxed),
            Balance::Random => fastrand::usize(..),
            Balance::ConsistentHash | Balance::LeastRequests => 0,
        };
        let available = |i: usize| !tried.contains(&i) && self.backends[i].is_available();
        self.pick(start, key, available).or_else(|| {
            if self.backends.iter().any(|b| b.is_available()) {
                return None;
            }
            self.pick(start, key, |i: usize| {
                !tried.contains(&i) && self.backends[i].passes_checks()
            })
        })
    }

    fn pick(&self, start: usize, key: &[u8], usable: impl Fn(usize) -> bool) -> Option<usize> {
        match self.balance {
            Balance::RoundRobin | Balance::Random => self.walk_schedule(start, usable),
            Balance::ConsistentHash => self.select_hashed(key, usable),
            Balance::LeastRequests => self.select_least(usable),
        }
    }

    fn walk_schedule(&self, start: usize, usable: impl Fn(usize) -> bool) -> Option<usize> {
        let n = self.schedule.len();
        (0..n)
            .map(|k| self.schedule[(start + k) % n] as usize)
            .find(|i| usable(*i))
    }

    fn select_hashed(&self, key: &[u8], usable: impl Fn(usize) -> bool) -> Option<usize> {
        let ring = self.ring.as_ref()?;
        let found = ring
            .0
            .node_iter(key)
            .take(RING_PROBES)
            .filter_map(|addr| self.ring_index.get(addr).copied())
            .find(|i| usable(*i));
        found.or_else(|| (0..self.backends.len()).find(|i| usable(*i)))
    }

    /// Power of two choices: two random usable backends, the one with fewer
    /// requests in flight per unit of weight wins.
    fn select_least(&self, usable: impl Fn(usize) -> bool) -> Option<usize> {
        let n = self.backends.len();
        if n == 0 {
            return None;
        }
        let start = fastrand::usize(..n);
        let first = (0..n).map(|k| (start + k) % n).find(|i| usable(*i))?;
        let offset = fastrand::usize(1..n.max(2));
        let second = (0..n.saturating_sub(1))
            .map(|k| (first + offset + k) % n)
            .find(|i| *i != first && usable(*i));
        let Some(second) = second else {
            return Some(first);
        };
        let (a, b) = (&self.backends[first], &self.backends[second]);
        let load_a = u64::from(a.inflight()) * u64::from(b.weight);
        let load_b = u64::from(b.inflight()) * u64::from(a.weight);
        Some(if load_b < load_a { second } else { first })
    }

    /// Takes an in-flight slot on backend `idx`; drop the guard when the
    /// request ends.
    pub fn acquire(&self, idx: usize) -> InflightGuard {
        let b = Arc::clone(&self.backends[idx]);
        b.inflight.fetch_add(1, Ordering::Relaxed);
        InflightGuard(b)
    }

    /// Feeds one request outcome into passive health. After
    /// `passive_health.consecutive_failures` failures in a row the backend is
    /// ejected for `ejection_time`; afterwards it gets traffic again and one
    /// success resets the count.
    pub fn report(&self, idx: usize, outcome: Outcome) {
        let b = &self.backends[idx];
        if outcome == Outcome::Success {
            if b.failures.load(Ordering::Relaxed) != 0 {
                b.failures.store(0, Ordering::Relaxed);
            }
            return;
        }
        let n = b.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if self.eject_after == 0 || n < self.eject_after {
            return;
        }
        // At the cap the backend stays in, its failures still counted, so
        // the next one ejects it once another backend has returned.
        let now = now_ms();
        let is_ejected = |b: &Backend| b.ejected_until.load(Ordering::Relaxed) > now;
        if !is_ejected(b)
            && self.backends.iter().filter(|o| is_ejected(o)).count() >= self.max_ejected
        {
            return;
        }
        // Saturating: a huge `ejection_time` means "for good", not an overflow.
        let eject_for = u64::try_from(self.eject_for.as_millis()).unwrap_or(u64::MAX);
        let until = now.saturating_add(eject_for);
        let previous = b.ejected_until.swap(until, Ordering::Relaxed);
        b.failures.store(0, Ordering::Relaxed);
        if previous <= now {
            warn!(
                upstream = %self.name,
                backend = %b.label,
                failures = n,
                seconds = self.eject_for.as_secs_f64(),
                "backend ejected"
            );
        }
    }

    /// Logs an active-check verdict change; called by the checker.
    pub(crate) fn log_health_change(&self, idx: usize, up: bool) {
        let b = &self.backends[idx];
        if up {
            info!(upstream = %self.name, backend = %b.label, "backend healthy");
        } else {
            warn!(upstream = %self.name, backend = %b.label, "backend unhealthy");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::schema::{BackendSpec, Dur, PassiveHealthSpec, TimeoutsSpec};

    fn spec(balance: Balance, weights: &[u32]) -> (UpstreamSpec, Resolved) {
        let mut resolved = Resolved::new();
        let backends = weights
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let address = format!("127.0.0.1:{}", 20000 + i);
                resolved.insert(address.clone(), vec![address.parse().unwrap()]);
                BackendSpec {
                    address,
                    weight: *w,
                }
            })
            .collect();
        let spec = UpstreamSpec {
            backends,
            balance,
            hash_key: None,
            timeouts: TimeoutsSpec::default(),
            health_check: None,
            passive_health: PassiveHealthSpec {
                consecutive_failures: 3,
                ejection_time: Dur(Duration::from_secs(60)),
                max_ejection_percent: 100,
            },
            retries: 2,
            tls: None,
            circuit_breaker: None,
            protocol: UpstreamProtocol::Http1,
            max_h2_streams: 100,
        };
        (spec, resolved)
    }

    fn pool(balance: Balance, weights: &[u32]) -> Pool {
        let (s, r) = spec(balance, weights);
        Pool::new("test", &s, &r)
    }

    #[test]
    fn weighted_round_robin_follows_the_weights_within_five_percent() {
        let p = pool(Balance::RoundRobin, &[5, 3, 2]);
        let mut counts = [0usize; 3];
        for _ in 0..10_000 {
            counts[p.select(b"", &[]).unwrap()] += 1;
        }
        for (i, share) in [0.5, 0.3, 0.2].iter().enumerate() {
            let got = counts[i] as f64 / 10_000.0;
            assert!(
                (got - share).abs() <= share * 0.05,
                "backend {i}: {got} vs {share}"
            );
        }
    }

    #[test]
    fn an_h2c_pool_asks_for_h2_only_and_multiplexes_its_streams() {
        let (mut s, r) = spec(Balance::RoundRobin, &[1]);
        let http1 = Pool::new("test", &s, &r).peer(0);
        assert_eq!(http1.options.alpn, pingora::protocols::ALPN::H1);
        s.protocol = UpstreamProtocol::H2c;
        s.max_h2_streams = 250;
        let peer = Pool::new("test", &s, &r).peer(0);
        assert_eq!(peer.options.alpn, pingora::protocols::ALPN::H2);
        assert_eq!(peer.options.max_h2_streams, 250);
        assert!(peer.scheme == pingora::upstreams::peer::Scheme::HTTP);
    }

    #[test]
    fn selection_skips_backends_already_tried() {
        let p = pool(Balance::RoundRobin, &[1, 1]);
        for _ in 0..10 {
            assert_eq!(p.select(b"", &[0]), Some(1));
        }
        assert_eq!(p.select(b"", &[0, 1]), None);
    }

    #[test]
    fn consecutive_failures_eject_a_backend() {
        let p = pool(Balance::RoundRobin, &[1, 1]);
        p.report(0, Outcome::ConnectFailure);
        p.report(0, Outcome::ServerError);
        assert!(p.backends()[0].is_available());
        p.report(0, Outcome::ConnectFailure);
        assert!(!p.backends()[0].is_available());
        for _ in 0..10 {
            assert_eq!(p.select(b"", &[]), Some(1));
        }
    }

    #[test]
    fn when_every_backend_is_ejected_they_all_take_traffic_until_one_recovers() {
        let p = pool(Balance::RoundRobin, &[1, 1]);
        for _ in 0..3 {
            p.report(0, Outcome::ServerError);
            p.report(1, Outcome::ServerError);
        }
        assert!(!p.backends()[0].is_available() && !p.backends()[1].is_available());
        let mut seen = [0usize; 2];
        for _ in 0..10 {
            seen[p.select(b"", &[]).unwrap()] += 1;
        }
        assert_eq!(seen, [5, 5], "panic mode still balances");
        // A retry does not go back to the backend it just tried.
        assert_eq!(p.select(b"", &[0]), Some(1));
        assert_eq!(p.select(b"", &[0, 1]), None);
        // Once one backend is back, the ejected one gets nothing.
        p.backends()[1].ejected_until.store(0, Ordering::Relaxed);
        for _ in 0..10 {
            assert_eq!(p.select(b"", &[]), Some(1));
        }
        // ... not even a retry: an ejected backend is no fallback for one
        // that is available but already tried.
        assert_eq!(p.select(b"", &[1]), None);
    }

    #[test]
    fn a_backend_failing_its_active_checks_is_never_chosen_even_in_panic_mode() {
        let p = pool(Balance::LeastRequests, &[1, 1]);
        assert_eq!(p.backends()[0].record_check(false, 1, 1), Some(false));
        for _ in 0..3 {
            p.report(1, Outcome::ConnectFailure);
        }
        for _ in 0..10 {
            assert_eq!(p.select(b"", &[]), Some(1));
        }
        assert_eq!(p.backends()[1].record_check(false, 1, 1), Some(false));
        assert_eq!(p.select(b"", &[]), None);
    }

    #[test]
    fn no_more_than_max_ejection_percent_of_a_pool_is_ejected_at_once() {
        let (mut s, r) = spec(Balance::RoundRobin, &[1, 1, 1, 1]);
        s.passive_health.max_ejection_percent = 50;
        let p = Pool::new("test", &s, &r);
        for i in 0..4 {
            for _ in 0..3 {
                p.report(i, Outcome::ServerError);
            }
        }
        let up: Vec<bool> = p.backends().iter().map(|b| b.is_available()).collect();
        assert_eq!(up, [false, false, true, true]);
        // The backends left in keep counting: once one returns, the next
        // failure ejects.
        p.backends()[0].ejected_until.store(0, Ordering::Relaxed);
        p.report(2, Outcome::ServerError);
        assert!(!p.backends()[2].is_available());
        // One backend may always be ejected, even at 1 % of a small pool.
        let (mut s, r) = spec(Balance::RoundRobin, &[1, 1]);
        s.passive_health.max_ejection_percent = 1;
        let p = Pool::new("test", &s, &r);
        for i in 0..2 {
            for _ in 0..3 {
                p.report(i, Outcome::ConnectFailure);
            }
        }
        assert!(!p.backends()[0].is_available() && p.backends()[1].is_available());
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let p = pool(Balance::RoundRobin, &[1]);
        p.report(0, Outcome::ConnectFailure);
        p.report(0, Outcome::ConnectFailure);
        p.report(0, Outcome::Success);
        p.report(0, Outcome::ConnectFailure);
        p.report(0, Outcome::ConnectFailure);
        assert!(p.backends()[0].is_available());
    }

    #[test]
    fn active_checks_need_rise_and_fall_streaks() {
        let p = pool(Balance::RoundRobin, &[1]);
        let b = &p.backends()[0];
        assert_eq!(b.record_check(false, 2, 2), None);
        assert_eq!(b.record_check(false, 2, 2), Some(false));
        assert!(!b.is_available());
        assert_eq!(b.record_check(true, 2, 2), None);
        assert_eq!(b.record_check(true, 2, 2), Some(true));
        assert!(b.is_available());
    }

    #[test]
    fn consistent_hashing_keeps_most_keys_when_one_of_ten_backends_leaves() {
        let p = pool(Balance::ConsistentHash, &[1; 10]);
        let keys: Vec<String> = (0..10_000).map(|i| format!("client-{i}")).collect();
        let before: Vec<usize> = keys
            .iter()
            .map(|k| p.select(k.as_bytes(), &[]).unwrap())
            .collect();
        p.backends()[3].active_up.store(false, Ordering::Relaxed);
        let kept = keys
            .iter()
            .zip(&before)
            .filter(|(k, b)| p.select(k.as_bytes(), &[]).unwrap() == **b)
            .count();
        let share = kept as f64 / keys.len() as f64;
        assert!(share >= 0.85, "only {share} of keys kept their backend");
        assert!(keys.iter().all(|k| p.select(k.as_bytes(), &[]) != Some(3)));
    }

    #[test]
    fn least_requests_prefers_the_idle_backend() {
        let p = pool(Balance::LeastRequests, &[1, 1]);
        let _busy: Vec<_> = (0..5).map(|_| p.acquire(0)).collect();
        for _ in 0..50 {
            assert_eq!(p.select(b"", &[]), Some(1));
        }
    }

    #[test]
    fn least_requests_finds_the_one_usable_backend_every_time() {
        let p = pool(Balance::LeastRequests, &[1, 1, 1, 1, 1]);
        for i in [0, 1, 2, 4] {
            p.backends()[i].record_check(false, 1, 1);
        }
        for _ in 0..1_000 {
            assert_eq!(p.select(b"", &[]), Some(3));
        }
    }

    #[test]
    fn inflight_guard_releases_its_slot() {
        let p = pool(Balance::LeastRequests, &[1]);
        let g = p.acquire(0);
        assert_eq!(p.backends()[0].inflight(), 1);
        drop(g);
        assert_eq!(p.backends()[0].inflight(), 0);
    }
}
