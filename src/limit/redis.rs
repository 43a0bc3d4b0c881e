//! Rate limits shared by every Portico instance through one Redis server.
//!
//! Each decision is one round trip: a Lua script reads the previous and the
//! current window's counters, applies the sliding window formula of
//! [`super`], and adds to the current counter only when it admits.
//!
//! # Keys
//!
//! `<prefix>:{<policy>:<hash>}:<window index>`, for example
//! `portico:{orders:9f86d081884c7d659a2feaa0c55ad015}:864123`, where `hash` is
//! the first 128 bits of the SHA-256 of the policy's key text, in hex. Key
//! text comes from clients (header values, paths) and may hold anything:
//! hashed, it has a fixed length and cannot break out of the layout. The
//! prefix and the policy name are percent-escaped (braces, spaces and control
//! characters included), so the only braces are the Redis Cluster hash tag
//! around `policy:hash`: both windows of one key live in one slot. Every
//! counter expires on its own 2 × window after its last increment.
//!
//! # Clock
//!
//! The script reads the time with Redis `TIME`, not the instance's clock.
//! Every instance then agrees on the window boundaries whatever their clocks
//! say: with the callers' clocks, two instances whose clocks differ by `s`
//! count into different windows for `s` around every boundary, and the
//! limit drifts by up to `limit × s / window` there, so NTP would become a
//! requirement. The costs: the script names its two counters from
//! `KEYS[1]` (the hash-tagged base, which Cluster routes on) plus the window
//! index it computes, which Redis Cluster accepts because both are in the
//! declared key's slot; and a script that writes after `TIME` needs effects
//! replication: the default from Redis 5, asked for with
//! `redis.replicate_commands()` on 3.2 and 4 (the script calls it where it
//! exists). Redis older than 3.2 is not supported.
//!
//! The script's arithmetic is exact integer arithmetic while
//! `limit × window_ms` stays below 2^53 (Lua numbers are doubles): a million
//! requests per day is 8.6 × 10^13.
//!
//! # Local allowance
//!
//! With an allowance `A > 1`, an instance asks the script for up to `A`
//! units at once. The script grants `min(A, what fits)` and counts all of
//! them in Redis, then the instance admits from the grant without a round
//! trip until it is used up or the Redis window it was counted in ends (by
//! the instance's monotonic clock, measured from when the request was sent,
//! so never later than the window's real end). Requests for one key wait for
//! the one round trip in flight instead of each asking for a grant of their
//! own, and a refusal is remembered until the moment it names (its `reset`),
//! since counts in Redis only grow until then. The error bound:
//!
//! - never more than the limit is admitted across instances: every unit an
//!   instance admits was counted in Redis before it was granted;
//! - up to `instances × (A − 1)` requests that would have fit may be
//!   refused: units granted to one instance and not (yet) used are not
//!   available to the others;
//! - a grant is spent in the window it was counted in or not at all: one
//!   taken late in a window lapses with it (unused units are lost);
//! - local grants are kept for at most 100 000 keys per policy; past that,
//!   expired entries go first, then arbitrary ones. Dropping a grant only
//!   loses its units, so it can only refuse more, never admit more.
//!
//! With `A` of 0 or 1 every decision is one round trip and nothing is kept
//! locally.
//!
//! # Failures
//!
//! The connection is made lazily, in the tokio runtime of the first request
//! (the store is built before Pingora forks), by a
//! [`redis::aio::ConnectionManager`] that reconnects by itself. Every call,
//! including waiting for a connection, is bounded by the store's timeout;
//! a connection that stops answering altogether (a peer gone without a reset)
//! is replaced after a few seconds without a success. Failures are counted
//! ([`RedisStore::errors`]) and flip [`RedisStore::is_up`]; one warning is
//! logged when the store goes down and one line when it recovers.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use futures_util::future::{BoxFuture, FutureExt, Shared};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sha2::{Digest, Sha256};
use tracing::{debug, info, warn};

use super::{window, Decision};

/// The script behind every decision. `KEYS[1]`: the key's hash-tagged base
/// name; `ARGV`: limit, window in ms, units wanted. Returns the previous
/// window's count, the current one's after this call, the units granted (0:
/// refused), the ms elapsed in the current window and its index.
const SCRIPT: &str = r"
if redis.replicate_commands ~= nil then redis.replicate_commands() end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local index = math.floor(now / window)
local elapsed = now - index * window
local current = KEYS[1] .. ':' .. string.format('%d', index)
local previous = KEYS[1] .. ':' .. string.format('%d', index - 1)
local counts = redis.call('MGET', previous, current)
local prev = tonumber(counts[1]) or 0
local curr = tonumber(counts[2]) or 0
-- prev * (window - elapsed) / window + curr + units <= limit, times window
local room = limit * window - prev * (window - elapsed) - curr * window
local granted = 0
if room >= window then
  granted = math.min(want, math.floor(room / window))
  curr = redis.call('INCRBY', current, granted)
  redis.call('PEXPIRE', current, 2 * window)
end
return {prev, curr, granted, elapsed, index}
";

/// Local grants kept per policy at most.
const MAX_LOCAL_KEYS: usize = 100_000;

/// A connection that has had no success for this long while commands time
/// out is dropped and made anew (the manager itself reconnects only on
/// errors it recognises, not on silence).
const RECREATE_AFTER: Duration = Duration::from_secs(5);

/// Characters kept as they are in the prefix; everything else is
/// percent-escaped. The policy name also escapes `:`.
const PREFIX_ESCAPED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b':');
const POLICY_ESCAPED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');

/// Redis could not be reached in time, or answered with an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

type SharedConnect = Shared<BoxFuture<'static, Result<ConnectionManager, StoreError>>>;

enum Conn {
    /// No connection and no attempt running.
    Idle,
    /// A task is connecting; everyone who needs the connection awaits it.
    Connecting(SharedConnect),
    Ready(ConnectionManager),
}

/// One Redis server shared by all policies.
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    /// host:port or socket path, for logs (never the password).
    addr: String,
    timeout: Duration,
    /// The escaped prefix with its `:`, or nothing.
    key_prefix: String,
    script: redis::Script,
    conn: Mutex<Conn>,
    up: AtomicBool,
    errors: AtomicU64,
    epoch: Instant,
    /// Milliseconds from `epoch` of the last success or connection reset.
    last_ok_ms: AtomicU64,
}

/// What the script answered.
#[derive(Debug, Clone, Copy)]
struct Reply {
    prev: u64,
    /// The current window's count after this call.
    curr: u64,
    granted: u64,
    elapsed_ms: u64,
    index: u64,
}

impl RedisStore {
    /// `url` like `redis://127.0.0.1:6379/0` (or `redis://user:pass@host/db`,
    /// `unix:///path/redis.sock`), `timeout` per command, `prefix`
    /// namespaces every key. Makes no connection.
    pub fn new(url: &str, timeout: Duration, prefix: &str) -> Result<RedisStore, String> {
        let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or("");
        match scheme {
            "redis" | "valkey" | "redis+unix" | "valkey+unix" | "unix" => {}
            "rediss" | "valkeys" => {
                return Err(format!(
                    "{scheme}:// (Redis over TLS) is not supported by this build; use redis://"
                ))
            }
            _ => {
                return Err(
                    "the Redis URL must look like redis://host:port/db or unix:///path".into(),
                )
            }
        }
        // The parser's messages never repeat the URL, which may hold a password.
        let client = redis::Client::open(url).map_err(|e| format!("invalid Redis URL: {e}"))?;
        if timeout.is_zero() {
            return Err("the Redis timeout must be longer than zero".into());
        }
        let addr = client.get_connection_info().addr.to_string();
        let key_prefix = if prefix.is_empty() {
            String::new()
        } else {
            format!("{}:", utf8_percent_encode(prefix, PREFIX_ESCAPED))
        };
        Ok(RedisStore {
            inner: Arc::new(Inner {
                client,
                addr,
                timeout,
                key_prefix,
                script: redis::Script::new(SCRIPT),
                conn: Mutex::new(Conn::Idle),
                up: AtomicBool::new(true),
                errors: AtomicU64::new(0),
                epoch: Instant::now(),
                last_ok_ms: AtomicU64::new(0),
            }),
        })
    }

    /// Whether the last command succeeded (true before the first).
    pub fn is_up(&self) -> bool {
        self.inner.up.load(Ordering::Relaxed)
    }

    /// Commands that failed so far (timeouts included).
    pub fn errors(&self) -> u64 {
        self.inner.errors.load(Ordering::Relaxed)
    }

    /// Runs the script for one key, giving up at `deadline`.
    async fn eval(
        &self,
        base: &str,
        limit: u64,
        window_ms: u64,
        want: u64,
        deadline: tokio::time::Instant,
    ) -> Result<Reply, StoreError> {
        let inner = &self.inner;
        let call = async {
            let mut conn = inner.connection().await?;
            let (prev, curr, granted, elapsed_ms, index): (i64, i64, i64, i64, i64) = inner
                .script
                .key(base)
                .arg(limit)
                .arg(window_ms)
                .arg(want)
                .invoke_async(&mut conn)
                .await
                .map_err(|e| StoreError(format!("Redis at {}: {e}", inner.addr)))?;
            let n = |v: i64| u64::try_from(v).unwrap_or(0);
            Ok(Reply {
                prev: n(prev),
                curr: n(curr),
                granted: n(granted),
                elapsed_ms: n(elapsed_ms),
                index: n(index),
            })
        };
        match tokio::time::timeout_at(deadline, call).await {
            Ok(Ok(reply)) => {
                inner.succeeded();
                Ok(reply)
            }
            Ok(Err(e)) => {
                inner.failed(&e, false);
                Err(e)
            }
            Err(_) => {
                let e = StoreError(format!(
                    "Redis at {} did not answer within {:?}",
                    inner.addr, inner.timeout
                ));
                inner.failed(&e, true);
                Err(e)
            }
        }
    }
}

impl Inner {
    /// The connection, made by a background task on first use: that task
    /// is not cancelled when the request that started it gives up.
    async fn connection(self: &Arc<Self>) -> Result<ConnectionManager, StoreError> {
        let pending = {
            let mut conn = lock(&self.conn);
            match &*conn {
                Conn::Ready(m) => return Ok(m.clone()),
                Conn::Connecting(f) => f.clone(),
                Conn::Idle => {
                    let f = self.spawn_connect()?;
                    *conn = Conn::Connecting(f.clone());
                    f
                }
            }
        };
        pending.await
    }

    fn spawn_connect(self: &Arc<Self>) -> Result<SharedConnect, StoreError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| StoreError("Redis is used outside a tokio runtime".into()))?;
        // A connect attempt may take as long as it needs in the background;
        // requests stop waiting for it at their own timeout. Retries are
        // 1–2 s apart; when they run out, the next request starts a task.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(self.timeout.max(Duration::from_secs(1)))
            .set_number_of_retries(2)
            .set_factor(2)
            .set_max_delay(1000);
        let client = self.client.clone();
        let addr = self.addr.clone();
        let weak: Weak<Inner> = Arc::downgrade(self);
        let task = runtime.spawn(async move {
            let made = ConnectionManager::new_with_config(client, config)
                .await
                .map_err(|e| StoreError(format!("cannot connect to Redis at {addr}: {e}")));
            if let Some(inner) = weak.upgrade() {
                let mut conn = lock(&inner.conn);
                *conn = match &made {
                    Ok(m) => Conn::Ready(m.clone()),
                    Err(_) => Conn::Idle,
                };
            }
            made
        });
        Ok(async move {
            match task.await {
                Ok(made) => made,
                Err(e) => Err(StoreError(format!("the Redis connection task failed: {e}"))),
            }
        }
        .boxed()
        .shared())
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn succeeded(&self) {
        self.last_ok_ms.store(self.now_ms(), Ordering::Relaxed);
        if !self.up.swap(true, Ordering::Relaxed) {
            info!(redis = %self.addr, "Redis rate limit store is reachable again");
        }
    }

    fn failed(&self, error: &StoreError, timed_out: bool) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if self.up.swap(false, Ordering::Relaxed) {
            warn!(
                redis = %self.addr,
                error = %error,
                "Redis rate limit store is unreachable; policies apply their failure mode \
                 until it recovers"
            );
        }
        if timed_out {
            let now = self.now_ms();
            let quiet = now.saturating_sub(self.last_ok_ms.load(Ordering::Relaxed));
            if quiet >= RECREATE_AFTER.as_millis() as u64 {
                let mut conn = lock(&self.conn);
                if matches!(*conn, Conn::Ready(_)) {
                    *conn = Conn::Idle;
                    self.last_ok_ms.store(now, Ordering::Relaxed);
                    let redis = &self.addr;
                    debug!(%redis, "dropping a Redis connection that stopped answering");
                }
            }
        }
    }
}

/// A poisoned lock only means another request panicked while holding it;
/// the data is plain counters and stays usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One policy's limiter in Redis.
pub struct RedisLimiter {
    store: Arc<RedisStore>,
    /// `{prefix}:{{{policy}:`; a key's hash, `}` and the window index follow.
    key_head: String,
    rule: Rule,
    allowance: u64,
    /// Grants and refusals kept locally; only with an allowance above 1.
    local: Option<Arc<Local>>,
}

#[derive(Debug, Clone, Copy)]
struct Rule {
    limit: u64,
    window_ms: u64,
}

impl Rule {
    /// The decision for the request that made the round trip.
    fn decide(&self, r: &Reply) -> Decision {
        let before = r.curr.saturating_sub(r.granted);
        let d = window::decide(r.prev, before, self.limit, self.window_ms, r.elapsed_ms, 1);
        let window_left = Duration::from_millis(self.window_ms.saturating_sub(r.elapsed_ms));
        match (r.granted > 0, d.admitted) {
            (true, true) | (false, false) => d,
            // The script's exact arithmetic and `decide` disagree only by
            // rounding at the very edge; the script's counts are the truth.
            (true, false) => Decision {
                admitted: true,
                remaining: 0,
                reset: d.reset,
            },
            (false, true) => Decision {
                admitted: false,
                remaining: 0,
                reset: window_left.max(Duration::from_millis(1)),
            },
        }
    }
}

impl RedisLimiter {
    /// `policy` names the policy (part of every key); `allowance` is the
    /// number of units asked for at once (0 or 1: one round trip per
    /// decision). See the module documentation for the error it allows.
    pub fn new(
        store: Arc<RedisStore>,
        policy: &str,
        limit: u64,
        window: Duration,
        allowance: u64,
    ) -> RedisLimiter {
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
        let key_head = format!(
            "{}{{{}:",
            store.inner.key_prefix,
            utf8_percent_encode(policy, POLICY_ESCAPED)
        );
        let local = (allowance > 1).then(|| {
            Arc::new(Local {
                slots: Mutex::new(HashMap::new()),
                max_keys: MAX_LOCAL_KEYS,
                next_flight: AtomicU64::new(0),
            })
        });
        RedisLimiter {
            store,
            key_head,
            rule: Rule { limit, window_ms },
            allowance: allowance.max(1),
            local,
        }
    }

    /// Decides for `key` (the policy's key text), counting it when admitted.
    /// Err when Redis cannot be reached in time; the caller applies the
    /// policy's failure mode.
    pub async fn check(&self, key: &str) -> Result<Decision, StoreError> {
        let digest = digest(key);
        let base = format!("{}{digest:032x}}}", self.key_head);
        match &self.local {
            None => {
                let reply = self
                    .store
                    .eval(
                        &base,
                        self.rule.limit,
                        self.rule.window_ms,
                        1,
                        tokio::time::Instant::now() + self.store.inner.timeout,
                    )
                    .await?;
                Ok(self.rule.decide(&reply))
            }
            Some(local) => self.check_batched(local, digest, base).await,
        }
    }

    async fn check_batched(
        &self,
        local: &Arc<Local>,
        digest: u128,
        base: String,
    ) -> Result<Decision, StoreError> {
        let timeout = self.store.inner.timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let (flight, leading) = {
                let now = Instant::now();
                let mut slots = lock(&local.slots);
                let slot = local.slot(&mut slots, digest, now);
                if let Some(d) = slot.take(now) {
                    return Ok(d);
                }
                match &slot.flight {
                    // A flight past its deadline was abandoned by every
                    // request that awaited it: start over.
                    Some(f) if f.deadline > tokio::time::Instant::now() => (f.done.clone(), false),
                    _ => {
                        let id = local.next_flight.fetch_add(1, Ordering::Relaxed);
                        let done = self.fly(local, digest, base.clone(), id, deadline);
                        slot.flight = Some(Flight {
                            id,
                            deadline,
                            done: done.clone(),
                        });
                        (done, true)
                    }
                }
            };
            // The leader's flight ends by the leader's deadline on its own,
            // counting its failure; a request that joined another's flight
            // stops waiting at its own deadline.
            let landed = if leading {
                Ok(flight.await)
            } else {
                tokio::time::timeout_at(deadline, flight).await
            };
            match landed {
                Err(_) => {
                    return Err(StoreError(format!(
                        "Redis at {} did not answer within {timeout:?}",
                        self.store.inner.addr
                    )))
                }
                Ok(Err(e)) => return Err(e),
                Ok(Ok(Landed::Refused(d))) => return Ok(d),
                // Units were granted: take one (or find them gone and fly again).
                Ok(Ok(Landed::Granted)) => {}
            }
        }
    }

    /// One round trip for `digest`, asking for the allowance. Its result is
    /// shared by every request for the key that waits for it; the grant is
    /// put in the local table, where each of them takes its unit.
    fn fly(
        &self,
        local: &Arc<Local>,
        digest: u128,
        base: String,
        id: u64,
        deadline: tokio::time::Instant,
    ) -> SharedFlight {
        let store = self.store.clone();
        let local = local.clone();
        let rule = self.rule;
        let want = self.allowance;
        async move {
            let sent = Instant::now();
            let result = store
                .eval(&base, rule.limit, rule.window_ms, want, deadline)
                .await;
            let now = Instant::now();
            let mut slots = lock(&local.slots);
            let slot = local.slot(&mut slots, digest, now);
            if slot.flight.as_ref().is_some_and(|f| f.id == id) {
                slot.flight = None;
            }
            let reply = result?;
            let d = rule.decide(&reply);
            if reply.granted == 0 {
                slot.denied_until = Some(now + d.reset);
                return Ok(Landed::Refused(d));
            }
            let window_left = rule.window_ms.saturating_sub(reply.elapsed_ms);
            let expires = sent + Duration::from_millis(window_left);
            slot.denied_until = None;
            match &mut slot.grant {
                Some(g) if g.window == reply.index && g.expires > now => {
                    g.left += reply.granted;
                    g.expires = g.expires.min(expires);
                    g.remaining = d.remaining;
                    g.reset = d.reset;
                    g.at = now;
                }
                _ => {
                    slot.grant = Some(Grant {
                        window: reply.index,
                        left: reply.granted,
                        expires,
                        remaining: d.remaining,
                        reset: d.reset,
                        at: now,
                    })
                }
            }
            Ok(Landed::Granted)
        }
        .boxed()
        .shared()
    }
}

/// The first 128 bits of the key text's SHA-256.
fn digest(key: &str) -> u128 {
    let hash = Sha256::digest(key.as_bytes());
    let mut first = [0u8; 16];
    first.copy_from_slice(&hash[..16]);
    u128::from_be_bytes(first)
}

type SharedFlight = Shared<BoxFuture<'static, Result<Landed, StoreError>>>;

/// How a round trip for a grant ended.
#[derive(Debug, Clone)]
enum Landed {
    /// Units were added to the key's local grant.
    Granted,
    Refused(Decision),
}

struct Local {
    slots: Mutex<HashMap<u128, Slot>>,
    max_keys: usize,
    next_flight: AtomicU64,
}

#[derive(Default)]
struct Slot {
    grant: Option<Grant>,
    /// Refused until then: counts only grow before the refusal's reset.
    denied_until: Option<Instant>,
    flight: Option<Flight>,
}

struct Grant {
    /// The Redis window index the units were counted in.
    window: u64,
    left: u64,
    /// The end of that window, by this instance's clock.
    expires: Instant,
    /// `remaining` to report for the next unit taken.
    remaining: u64,
    /// `reset` as of `at`.
    reset: Duration,
    at: Instant,
}

struct Flight {
    id: u64,
    /// When its round trip gives up.
    deadline: tokio::time::Instant,
    done: SharedFlight,
}

impl Slot {
    /// A decision made locally, if the slot holds one.
    fn take(&mut self, now: Instant) -> Option<Decision> {
        if let Some(g) = &mut self.grant {
            if g.left > 0 && g.expires > now {
                g.left -= 1;
                let remaining = g.remaining;
                g.remaining = g.remaining.saturating_sub(1);
                return Some(Decision {
                    admitted: true,
                    remaining,
                    reset: g.reset.saturating_sub(now.duration_since(g.at)),
                });
            }
            self.grant = None;
        }
        if let Some(until) = self.denied_until {
            if until > now {
                return Some(Decision {
                    admitted: false,
                    remaining: 0,
                    reset: until.duration_since(now),
                });
            }
            self.denied_until = None;
        }
        None
    }

    /// Whether the slot holds anything worth keeping.
    fn live(&self, now: Instant) -> bool {
        self.flight.is_some()
            || self
                .grant
                .as_ref()
                .is_some_and(|g| g.left > 0 && g.expires > now)
            || self.denied_until.is_some_and(|t| t > now)
    }
}

impl Local {
    /// The slot of `digest`, made room for when the table is full.
    fn slot<'a>(
        &self,
        slots: &'a mut HashMap<u128, Slot>,
        digest: u128,
        now: Instant,
    ) -> &'a mut Slot {
        if slots.len() >= self.max_keys && !slots.contains_key(&digest) {
            slots.retain(|_, s| s.live(now));
            if slots.len() >= self.max_keys {
                // Down to 90 %, so that this runs once per many inserts;
                // the hasher's order makes the victims arbitrary.
                let excess = slots.len() - self.max_keys * 9 / 10;
                let victims: Vec<u128> = slots.keys().take(excess).copied().collect();
                for k in victims {
                    slots.remove(&k);
                }
            }
        }
        slots.entry(digest).or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::process::{Child, Command, Stdio};
    use std::time::SystemTime;

    /// A real `redis-server` on a loopback port, killed on drop.
    struct Server {
        port: u16,
        child: Option<Child>,
        dir: tempfile::TempDir,
    }

    impl Server {
        fn start() -> Server {
            let mut server = Server {
                port: 0,
                child: None,
                dir: tempfile::tempdir().unwrap(),
            };
            let mut last = String::new();
            // Another process may take the free port before redis-server
            // binds it: try a few.
            for _ in 0..5 {
                server.port = TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port();
                match server.spawn() {
                    Ok(()) => return server,
                    Err(e) => last = e,
                }
            }
            panic!("redis-server did not start: {last}");
        }

        fn spawn(&mut self) -> Result<(), String> {
            let log = self.dir.path().join("redis.log");
            let child = Command::new("redis-server")
                .args(["--port", &self.port.to_string()])
                .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(self.dir.path())
                .arg("--logfile")
                .arg(&log)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            let child = match child {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                    "redis-server is not installed: run scripts/test.sh, which installs it \
                     (or apt-get install redis-server)"
                ),
                Err(e) => panic!("cannot run redis-server: {e}"),
            };
            self.child = Some(child);
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if ping(self.port) {
                    return Ok(());
                }
                if let Some(child) = &mut self.child {
                    if let Ok(Some(status)) = child.try_wait() {
                        self.child = None;
                        let text = std::fs::read_to_string(&log).unwrap_or_default();
                        return Err(format!("exited with {status}:\n{text}"));
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            self.stop();
            Err("no answer to PING within 10 s".into())
        }

        fn stop(&mut self) {
            if let Some(mut child) = self.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }

        fn restart(&mut self) {
            self.stop();
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match self.spawn() {
                    Ok(()) => return,
                    Err(e) if Instant::now() > deadline => panic!("redis-server restart: {e}"),
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        }

        fn url(&self) -> String {
            format!("redis://127.0.0.1:{}/0", self.port)
        }

        /// One command through a raw connection, for looking at the keys.
        async fn query<T: redis::FromRedisValue>(&self, cmd: &mut redis::Cmd) -> T {
            let client = redis::Client::open(self.url()).unwrap();
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            cmd.query_async(&mut conn).await.unwrap()
        }

        async fn keys(&self) -> Vec<String> {
            self.query(redis::cmd("KEYS").arg("*")).await
        }

        /// How many times the limiter's script ran.
        async fn script_calls(&self) -> u64 {
            let info: String = self.query(redis::cmd("INFO").arg("commandstats")).await;
            info.lines()
                .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
                .filter_map(|l| {
                    l.split("calls=")
                        .nth(1)?
                        .split(',')
                        .next()?
                        .parse::<u64>()
                        .ok()
                })
                .sum()
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.stop();
        }
    }

    fn ping(port: u16) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let mut buf = [0u8; 7];
        s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }

    fn store(server: &Server, timeout: Duration) -> Arc<RedisStore> {
        Arc::new(RedisStore::new(&server.url(), timeout, "portico-test").unwrap())
    }

    /// Sleeps until early in a window of `window`, so that a short burst
    /// stays in one window (Redis runs on this machine, on this clock).
    async fn align_to_window_start(window: Duration) {
        let w = window.as_millis() as u64;
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        if now % w > w / 4 {
            tokio::time::sleep(Duration::from_millis(w - now % w + 20)).await;
        }
    }

    /// `n` requests at once, alternating between the limiters.
    async fn burst(limiters: &[RedisLimiter; 2], key: &str, n: usize) -> Vec<Decision> {
        let checks = (0..n).map(|i| limiters[i % 2].check(key));
        futures_util::future::join_all(checks)
            .await
            .into_iter()
            .map(|r| r.unwrap())
            .collect()
    }

    #[test]
    fn construction_validates_the_url_and_needs_no_runtime() {
        let t = Duration::from_millis(50);
        assert!(RedisStore::new("redis://127.0.0.1:6379/0", t, "p").is_ok());
        assert!(RedisStore::new("redis://:secret@localhost", t, "").is_ok());
        assert!(RedisStore::new("unix:///run/redis.sock", t, "p").is_ok());
        let err = RedisStore::new("http://127.0.0.1:6379", t, "p")
            .err()
            .unwrap();
        assert!(err.contains("redis://"), "{err}");
        let err = RedisStore::new("rediss://127.0.0.1", t, "p").err().unwrap();
        assert!(err.contains("TLS"), "{err}");
        let err = RedisStore::new("redis://127.0.0.1/notadb", t, "p")
            .err()
            .unwrap();
        assert!(err.contains("invalid Redis URL"), "{err}");
        let err = RedisStore::new("redis://:hunter2@127.0.0.1/x", t, "p")
            .err()
            .unwrap();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(RedisStore::new("redis://127.0.0.1", Duration::ZERO, "p").is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_limiters_sharing_one_redis_admit_the_limit_together() {
        let server = Server::start();
        let window = Duration::from_secs(2);
        let limiters = [
            RedisLimiter::new(
                store(&server, Duration::from_secs(2)),
                "shared",
                100,
                window,
                1,
            ),
            RedisLimiter::new(
                store(&server, Duration::from_secs(2)),
                "shared",
                100,
                window,
                0,
            ),
        ];
        // Connect first, on another key, so that the requests are quick.
        for l in &limiters {
            l.check("warm-up").await.unwrap();
        }
        align_to_window_start(window).await;
        let started = Instant::now();
        // One after the other, alternating: in one window whose previous
        // window is empty the formula is `curr + 1 <= limit`, so exactly the
        // first 100 are admitted, 50 by each instance, counting down.
        let mut decisions = Vec::new();
        for i in 0..400 {
            let d = limiters[i % 2]
                .check("client=203.0.113.7|route=orders")
                .await
                .unwrap();
            decisions.push(d);
        }
        // The same at once: both instances' requests interleave in Redis in
        // whatever order; still exactly 100 in total.
        let at_once = burst(&limiters, "client=203.0.113.8|route=orders", 400).await;
        assert!(
            started.elapsed() < window * 3 / 4,
            "the requests left their window"
        );
        for (i, d) in decisions.iter().enumerate() {
            if i < 100 {
                assert!(d.admitted, "request {i}: {d:?}");
                assert_eq!(d.remaining, 99 - i as u64, "request {i}");
            } else {
                assert!(!d.admitted, "request {i}: {d:?}");
            }
        }
        assert_eq!(at_once.iter().filter(|d| d.admitted).count(), 100);
        for d in decisions.iter().chain(&at_once).filter(|d| !d.admitted) {
            assert_eq!(d.remaining, 0);
            // The previous window's count weighs until late in the next.
            assert!(d.reset > Duration::ZERO && d.reset <= 2 * window, "{d:?}");
        }
        assert!(limiters[0].store.is_up() && limiters[0].store.errors() == 0);
    }

    #[tokio::test]
    async fn keys_expire_on_their_own() {
        let server = Server::start();
        let window = Duration::from_secs(2);
        let limiter =
            RedisLimiter::new(store(&server, Duration::from_secs(2)), "exp", 10, window, 0);
        for _ in 0..3 {
            assert!(limiter.check("k").await.unwrap().admitted);
        }
        let keys = server.keys().await;
        assert!(!keys.is_empty() && keys.len() <= 2, "{keys:?}");
        for key in keys {
            let ttl: i64 = server.query(redis::cmd("PTTL").arg(&key)).await;
            assert!(
                ttl > 0 && ttl <= 2 * window.as_millis() as i64,
                "{key}: {ttl}"
            );
            let count: u64 = server.query(redis::cmd("GET").arg(&key)).await;
            assert!(count <= 3);
            // portico-test:{exp:<32 hex>}:<index>
            let (head, index) = key.rsplit_once(':').unwrap();
            assert!(index.parse::<u64>().is_ok(), "{key}");
            let hash = head.strip_prefix("portico-test:{exp:").unwrap();
            let hash = hash.strip_suffix('}').unwrap();
            assert_eq!(hash.len(), 32);
            assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn allowance_never_admits_more_than_the_limit() {
        let server = Server::start();
        let window = Duration::from_secs(2);
        let limiters = [
            RedisLimiter::new(
                store(&server, Duration::from_secs(2)),
                "batch",
                100,
                window,
                10,
            ),
            RedisLimiter::new(
                store(&server, Duration::from_secs(2)),
                "batch",
                100,
                window,
                10,
            ),
        ];
        for l in &limiters {
            l.check("warm-up").await.unwrap();
        }
        let calls_before = server.script_calls().await;
        align_to_window_start(window).await;
        let started = Instant::now();
        let decisions = burst(&limiters, "hot", 400).await;
        assert!(
            started.elapsed() < window * 3 / 4,
            "the burst left its window"
        );
        let admitted = decisions.iter().filter(|d| d.admitted).count();
        assert!(admitted <= 100, "{admitted} admitted");
        assert!(admitted >= 100 - 2 * (10 - 1), "{admitted} admitted");
        // Grants are counted in Redis, whether or not they are used.
        let counted: u64 = {
            let keys: Vec<String> = server
                .keys()
                .await
                .into_iter()
                .filter(|k| !k.contains(&format!("{:032x}", digest("warm-up"))))
                .collect();
            assert_eq!(keys.len(), 1, "{keys:?}");
            server.query(redis::cmd("GET").arg(&keys[0])).await
        };
        assert!(counted <= 100 && counted >= admitted as u64);
        // Far fewer round trips than requests: ~10 grants of 10, and a
        // refusal each that the rest of the burst shares.
        let calls = server.script_calls().await - calls_before;
        assert!(calls <= 30, "{calls} round trips for 400 requests");
        // Later refusals are answered locally until their reset.
        let again = limiters[0].check("hot").await.unwrap();
        assert!(!again.admitted && again.reset > Duration::ZERO);
        assert_eq!(server.script_calls().await - calls_before, calls);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stopped_redis_is_an_error_within_the_timeout_and_recovery_is_automatic() {
        let mut server = Server::start();
        let timeout = Duration::from_millis(200);
        let store = store(&server, timeout);
        let plain = RedisLimiter::new(store.clone(), "down", 1000, Duration::from_secs(1), 0);
        let batched = RedisLimiter::new(store.clone(), "down2", 1000, Duration::from_secs(1), 5);
        assert!(plain.check("k").await.unwrap().admitted);
        assert!(batched.check("k").await.unwrap().admitted);
        assert!(store.is_up());
        server.stop();
        // Keys without a local grant, which would still admit while it lasts.
        for i in 0..3 {
            for limiter in [&plain, &batched] {
                let started = Instant::now();
                let r = limiter.check(&format!("k{i}")).await;
                let took = started.elapsed();
                assert!(r.is_err(), "{r:?}");
                assert!(
                    took <= timeout + Duration::from_millis(150),
                    "took {took:?}"
                );
                assert!(!store.is_up());
            }
        }
        let errors = store.errors();
        assert!(errors >= 6, "{errors}");
        server.restart();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if plain.check("k").await.is_ok() {
                break;
            }
            assert!(Instant::now() < deadline, "never recovered");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(store.is_up());
        let errors = store.errors();
        assert!(batched.check("k9").await.unwrap().admitted);
        assert_eq!(store.errors(), errors);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_redis_down_at_first_use_is_an_error_and_connects_once_it_is_up() {
        let mut server = Server::start();
        server.stop();
        let timeout = Duration::from_millis(100);
        let store = store(&server, timeout);
        let limiter = RedisLimiter::new(store.clone(), "late", 10, Duration::from_secs(1), 0);
        let started = Instant::now();
        assert!(limiter.check("k").await.is_err());
        assert!(started.elapsed() <= timeout + Duration::from_millis(150));
        assert!(!store.is_up());
        assert_eq!(store.errors(), 1);
        server.restart();
        let deadline = Instant::now() + Duration::from_secs(10);
        while limiter.check("k").await.is_err() {
            assert!(Instant::now() < deadline, "never connected");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(store.is_up());
    }

    #[tokio::test]
    async fn hostile_key_text_stays_one_key() {
        let server = Server::start();
        let store = store(&server, Duration::from_secs(2));
        let limiter = RedisLimiter::new(
            store.clone(),
            "ho{st}ile pol:icy\n",
            2,
            Duration::from_secs(60),
            0,
        );
        let hostile = format!("a\r\nb{{c}}d:1 }}{{ *\0{}", "x".repeat(10 * 1024));
        assert!(limiter.check(&hostile).await.unwrap().admitted);
        assert!(limiter.check(&hostile).await.unwrap().admitted);
        assert!(!limiter.check(&hostile).await.unwrap().admitted);
        // A neighbour differing in one character has its own counter.
        let neighbour = format!("{hostile}y");
        assert!(limiter.check(&neighbour).await.unwrap().admitted);
        let keys = server.keys().await;
        assert_eq!(keys.len(), 2, "{keys:?}");
        for key in &keys {
            assert!(key.len() < 100, "{key}");
            assert_eq!(key.matches('{').count(), 1, "{key}");
            assert_eq!(key.matches('}').count(), 1, "{key}");
            assert!(!key.contains(['\r', '\n', ' ', '\0']), "{key}");
            assert!(
                key.starts_with("portico-test:{ho%7Bst%7Dile%20pol%3Aicy%0A:"),
                "{key}"
            );
        }
        let counts: Vec<u64> = {
            let mut c = Vec::new();
            for key in &keys {
                c.push(server.query(redis::cmd("GET").arg(key)).await);
            }
            c.sort();
            c
        };
        assert_eq!(counts, vec![1, 2]);
        assert!(store.is_up() && store.errors() == 0);
    }

    #[test]
    fn local_grants_stay_bounded() {
        let local = Local {
            slots: Mutex::new(HashMap::new()),
            max_keys: 100,
            next_flight: AtomicU64::new(0),
        };
        let now = Instant::now();
        let mut slots = lock(&local.slots);
        for k in 0..1000u128 {
            let slot = local.slot(&mut slots, k, now);
            slot.grant = Some(Grant {
                window: 1,
                left: 5,
                expires: now + Duration::from_secs(60),
                remaining: 5,
                reset: Duration::ZERO,
                at: now,
            });
            assert!(slots.len() <= 100);
        }
        // Expired grants go first.
        for s in slots.values_mut().take(50) {
            s.grant.as_mut().unwrap().expires = now;
        }
        let live_before = slots.values().filter(|s| s.live(now)).count();
        local.slot(&mut slots, 5000, now);
        assert_eq!(slots.len(), live_before + 1);
    }
}
