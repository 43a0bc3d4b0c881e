//! Circuit breaking per upstream pool.
//!
//! A [`Circuit`] watches the outcomes of the requests sent to one pool and
//! fails fast while the pool keeps failing:
//!
//! - **Closed**: every request goes through and its outcome is counted in a
//!   rolling window. When the window holds at least `min_requests` outcomes,
//!   at least one of them a failure, and `failures / total >= error_rate`,
//!   the circuit opens.
//! - **Open**: requests are refused at once ([`Refused`], with the time left
//!   until the circuit half-opens) for `open_for`.
//! - **HalfOpen**: the first [`Circuit::try_acquire`] after `open_for` lets
//!   trial requests through, at most `half_open_requests` at a time. When
//!   `half_open_requests` trials have succeeded the circuit closes, with an
//!   empty window; the first trial that fails opens it again for a fresh
//!   `open_for`.
//!
//! # The rolling window
//!
//! The window is a ring of [`BUCKETS`] buckets of `window / BUCKETS` each,
//! numbered from the circuit's creation (bucket *n* covers
//! `[n * len, (n + 1) * len)`), with running totals beside them. Recording an
//! outcome moves the ring forward to the current bucket, subtracting and
//! clearing the buckets that fall out (at most [`BUCKETS`], however long the
//! pool was idle), then adds to the current bucket and the totals: O(1) per
//! outcome, no allocation. The window therefore covers the current, partly
//! filled bucket and the nine before it, between 90% and 100% of `window`.
//!
//! # Cost
//!
//! The state is mirrored, with a generation number, in one atomic word, so
//! [`Circuit::try_acquire`] in the closed state is one atomic load and an
//! `Arc` clone. Reporting an outcome takes a mutex for a few dozen
//! instructions (never across an await: there are none here). Transitions are
//! logged after the mutex is released.
//!
//! # Outcomes that no longer count
//!
//! Each transition starts a new generation, and an [`Attempt`] only counts in
//! the generation that admitted it: a request let through while closed that
//! ends after the circuit opened is ignored (it cannot re-open it, nor pass
//! for a trial), and so is anything reported against a window that was reset.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tracing::{info, warn};

/// Buckets in the rolling window.
pub const BUCKETS: usize = 10;

/// `Retry-After` of a request refused while half-open with every trial slot
/// taken, when `open_for` is longer: the trials end within about one request's
/// time, which is unknown here.
const HALF_OPEN_RETRY: Duration = Duration::from_secs(1);

/// When a pool's circuit opens and how it recovers.
#[derive(Debug, Clone)]
pub struct CircuitSettings {
    /// The share of failed requests (0 to 1) in the window that opens the
    /// circuit. Above 1 (or NaN) it never opens.
    pub error_rate: f64,
    /// Outcomes the window must hold before the rate counts (0 acts as 1).
    pub min_requests: u32,
    /// The length of the rolling window.
    pub window: Duration,
    /// How long the circuit stays open before trials go through.
    pub open_for: Duration,
    /// Trials let through at once while half-open, and the successes that
    /// close the circuit (0 acts as 1).
    pub half_open_requests: u32,
}

/// Where a circuit stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    Closed,
    Open,
    HalfOpen,
}

impl CircuitState {
    /// The name used in log lines: `closed`, `open`, `half_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        }
    }

    fn code(self) -> u64 {
        match self {
            CircuitState::Closed => 0,
            CircuitState::Open => 1,
            CircuitState::HalfOpen => 2,
        }
    }

    fn from_code(code: u64) -> CircuitState {
        match code {
            0 => CircuitState::Closed,
            1 => CircuitState::Open,
            _ => CircuitState::HalfOpen,
        }
    }
}

impl fmt::Display for CircuitState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request refused because the circuit is open (or half-open with every
/// trial slot taken).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// While open: the time left until the circuit half-opens. While
    /// half-open: `min(open_for, 1s)`.
    pub retry_after: Duration,
}

/// The circuit breaker of one pool.
pub struct Circuit {
    shared: Arc<Shared>,
}

struct Shared {
    pool: Box<str>,
    error_rate: f64,
    min_requests: u64,
    open_for: Duration,
    trials: u32,
    /// Length of one bucket in nanoseconds, at least 1.
    bucket_nanos: u128,
    /// Bucket 0 starts here.
    origin: Instant,
    /// `generation << 2 | state code`, written under `inner`'s lock on every
    /// transition; read without it.
    mirror: AtomicU64,
    inner: Mutex<Inner>,
}

struct Inner {
    generation: u64,
    phase: Phase,
    window: Window,
    /// Transitions so far (for tests and consistency checks).
    transitions: u64,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Closed,
    Open {
        since: Instant,
        /// The error rate that opened it.
        rate: f64,
    },
    HalfOpen {
        /// Trials admitted and not yet ended.
        outstanding: u32,
        /// Trials that succeeded.
        succeeded: u32,
        /// The error rate that opened it before.
        rate: f64,
    },
}

impl Phase {
    fn state(&self) -> CircuitState {
        match self {
            Phase::Closed => CircuitState::Closed,
            Phase::Open { .. } => CircuitState::Open,
            Phase::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    ok: u64,
    err: u64,
}

/// The rolling window: a ring of buckets and their running totals.
#[derive(Debug, Default)]
struct Window {
    buckets: [Bucket; BUCKETS],
    /// The number of the newest bucket, held at `head % BUCKETS`.
    head: u64,
    ok: u64,
    err: u64,
}

impl Window {
    /// Moves the ring forward to bucket `number`, dropping the buckets that
    /// leave the window. An older `number` (an outcome measured before one
    /// already recorded) stays in the newest bucket.
    fn advance(&mut self, number: u64) {
        if number <= self.head {
            return;
        }
        let steps = (number - self.head).min(BUCKETS as u64);
        for step in 1..=steps {
            let slot = &mut self.buckets[((self.head + step) % BUCKETS as u64) as usize];
            self.ok -= slot.ok;
            self.err -= slot.err;
            *slot = Bucket::default();
        }
        self.head = number;
    }

    fn record(&mut self, number: u64, ok: bool) {
        self.advance(number);
        let slot = &mut self.buckets[(self.head % BUCKETS as u64) as usize];
        if ok {
            slot.ok += 1;
            self.ok += 1;
        } else {
            slot.err += 1;
            self.err += 1;
        }
    }

    fn reset(&mut self) {
        self.buckets = [Bucket::default(); BUCKETS];
        self.ok = 0;
        self.err = 0;
    }

    fn total(&self) -> u64 {
        self.ok + self.err
    }

    fn rate(&self) -> f64 {
        match self.total() {
            0 => 0.0,
            total => self.err as f64 / total as f64,
        }
    }
}

/// A transition to log once the lock is released.
struct Transition {
    from: CircuitState,
    to: CircuitState,
    rate: f64,
}

impl Inner {
    fn enter(&mut self, shared: &Shared, phase: Phase, rate: f64) -> Transition {
        let from = self.phase.state();
        self.phase = phase;
        self.generation += 1;
        self.transitions += 1;
        shared.mirror.store(
            (self.generation << 2) | phase.state().code(),
            Ordering::Release,
        );
        Transition {
            from,
            to: phase.state(),
            rate,
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing panics while the lock is held; should it happen anyway, the
        // state is still consistent enough to keep going.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn bucket_number(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.origin).as_nanos();
        u64::try_from(elapsed / self.bucket_nanos).unwrap_or(u64::MAX)
    }

    fn log(&self, transition: Option<Transition>) {
        let Some(t) = transition else { return };
        let (pool, from, to, error_rate) = (&*self.pool, t.from.as_str(), t.to.as_str(), t.rate);
        if t.to == CircuitState::Open {
            warn!(pool, from, to, error_rate, "circuit breaker opened");
        } else if t.to == CircuitState::HalfOpen {
            info!(pool, from, to, error_rate, "circuit breaker half-open");
        } else {
            info!(pool, from, to, error_rate, "circuit breaker closed");
        }
    }

    /// Records the end of an attempt: `Some(ok)` for a reported outcome,
    /// `None` for an attempt dropped without a report.
    fn finish(&self, generation: u64, trial: bool, outcome: Option<bool>, now: Instant) {
        let transition = {
            let mut inner = self.lock();
            if inner.generation != generation {
                // Admitted under a state that has since changed.
                return;
            }
            match (inner.phase, outcome) {
                (Phase::Closed, Some(ok)) if !trial => {
                    let number = self.bucket_number(now);
                    inner.window.record(number, ok);
                    let w = &inner.window;
                    // `error_rate` is compared in floating point so that a
                    // rate above 1 (or NaN) never opens the circuit.
                    let rate = w.rate();
                    if w.err > 0 && w.total() >= self.min_requests && rate >= self.error_rate {
                        inner.window.reset();
                        let open = Phase::Open { since: now, rate };
                        Some(inner.enter(self, open, rate))
                    } else {
                        None
                    }
                }
                (
                    Phase::HalfOpen {
                        outstanding,
                        succeeded,
                        rate,
                    },
                    outcome,
                ) if trial => {
                    let outstanding = outstanding.saturating_sub(1);
                    match outcome {
                        None => {
                            inner.phase = Phase::HalfOpen {
                                outstanding,
                                succeeded,
                                rate,
                            };
                            None
                        }
                        Some(true) if succeeded + 1 >= self.trials => {
                            inner.window.reset();
                            Some(inner.enter(self, Phase::Closed, 0.0))
                        }
                        Some(true) => {
                            inner.phase = Phase::HalfOpen {
                                outstanding,
                                succeeded: succeeded + 1,
                                rate,
                            };
                            None
                        }
                        Some(false) => {
                            // The share of the trials ended so far that failed.
                            let rate = 1.0 / f64::from(succeeded + 1);
                            let open = Phase::Open { since: now, rate };
                            Some(inner.enter(self, open, rate))
                        }
                    }
                }
                _ => None,
            }
        };
        self.log(transition);
    }
}

impl Circuit {
    /// A closed circuit for the pool named `pool` (the name is used in log
    /// lines).
    pub fn new(pool: &str, settings: CircuitSettings) -> Circuit {
        let bucket_nanos = (settings.window.as_nanos() / BUCKETS as u128).max(1);
        Circuit {
            shared: Arc::new(Shared {
                pool: pool.into(),
                error_rate: settings.error_rate,
                min_requests: u64::from(settings.min_requests.max(1)),
                open_for: settings.open_for,
                trials: settings.half_open_requests.max(1),
                bucket_nanos,
                origin: Instant::now(),
                mirror: AtomicU64::new(CircuitState::Closed.code()),
                inner: Mutex::new(Inner {
                    generation: 0,
                    phase: Phase::Closed,
                    window: Window::default(),
                    transitions: 0,
                }),
            }),
        }
    }

    /// Whether a request may go to the pool now: an [`Attempt`] to report
    /// its outcome on, or [`Refused`] while open (or half-open with every
    /// trial slot taken). The first call after `open_for` has passed moves
    /// the circuit from open to half-open and admits the first trial.
    #[inline]
    pub fn try_acquire(&self) -> Result<Attempt, Refused> {
        self.try_acquire_at(Instant::now())
    }

    /// [`Circuit::try_acquire`] at the time `now`.
    pub(crate) fn try_acquire_at(&self, now: Instant) -> Result<Attempt, Refused> {
        let mirror = self.shared.mirror.load(Ordering::Acquire);
        if mirror & 3 == CircuitState::Closed.code() {
            return Ok(self.attempt(mirror >> 2, false));
        }
        self.try_acquire_slow(now)
    }

    #[cold]
    fn try_acquire_slow(&self, now: Instant) -> Result<Attempt, Refused> {
        let shared = &*self.shared;
        let (result, transition) = {
            let mut inner = shared.lock();
            match inner.phase {
                Phase::Closed => (Ok(self.attempt(inner.generation, false)), None),
                Phase::Open { since, rate } => {
                    let open = now.saturating_duration_since(since);
                    if open < shared.open_for {
                        let refused = Refused {
                            retry_after: shared.open_for - open,
                        };
                        (Err(refused), None)
                    } else {
                        let half_open = Phase::HalfOpen {
                            outstanding: 1,
                            succeeded: 0,
                            rate,
                        };
                        let transition = inner.enter(shared, half_open, rate);
                        (Ok(self.attempt(inner.generation, true)), Some(transition))
                    }
                }
                Phase::HalfOpen {
                    outstanding,
                    succeeded,
                    rate,
                } => {
                    // Never more trials at once than successes still needed.
                    if outstanding + succeeded < shared.trials {
                        inner.phase = Phase::HalfOpen {
                            outstanding: outstanding + 1,
                            succeeded,
                            rate,
                        };
                        (Ok(self.attempt(inner.generation, true)), None)
                    } else {
                        let refused = Refused {
                            retry_after: shared.open_for.min(HALF_OPEN_RETRY),
                        };
                        (Err(refused), None)
                    }
                }
            }
        };
        shared.log(transition);
        result
    }

    fn attempt(&self, generation: u64, trial: bool) -> Attempt {
        Attempt {
            shared: Arc::clone(&self.shared),
            generation,
            trial,
            done: false,
        }
    }

    /// Where the circuit stands. An open circuit whose `open_for` has passed
    /// reads `Open` until the next [`Circuit::try_acquire`] half-opens it.
    pub fn state(&self) -> CircuitState {
        CircuitState::from_code(self.shared.mirror.load(Ordering::Acquire) & 3)
    }

    /// The pool's name, as given to [`Circuit::new`].
    pub fn pool(&self) -> &str {
        &self.shared.pool
    }
}

impl fmt::Debug for Circuit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Circuit")
            .field("pool", &self.shared.pool)
            .field("state", &self.state())
            .finish()
    }
}

/// One request admitted by [`Circuit::try_acquire`]; report its outcome
/// once, with [`Attempt::succeeded`] or [`Attempt::failed`].
///
/// Dropping an attempt without reporting (the client went away, the request
/// was never sent) counts as neither a success nor a failure: nothing enters
/// the window, and a half-open trial gives its slot back so that another
/// request can take it.
#[must_use = "report the outcome with `succeeded` or `failed`"]
pub struct Attempt {
    shared: Arc<Shared>,
    generation: u64,
    /// Admitted as a half-open trial.
    trial: bool,
    done: bool,
}

impl Attempt {
    /// The request succeeded.
    #[inline]
    pub fn succeeded(self) {
        self.succeeded_at(Instant::now());
    }

    /// The request failed (as far as the pool's health goes).
    #[inline]
    pub fn failed(self) {
        self.failed_at(Instant::now());
    }

    /// Whether this attempt is a half-open trial.
    pub fn is_trial(&self) -> bool {
        self.trial
    }

    pub(crate) fn succeeded_at(mut self, now: Instant) {
        self.finish(Some(true), now);
    }

    pub(crate) fn failed_at(mut self, now: Instant) {
        self.finish(Some(false), now);
    }

    fn finish(&mut self, outcome: Option<bool>, now: Instant) {
        self.done = true;
        self.shared
            .finish(self.generation, self.trial, outcome, now);
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        // Only a half-open trial has anything to give back.
        if !self.done && self.trial {
            self.finish(None, Instant::now());
        }
    }
}

impl fmt::Debug for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attempt")
            .field("pool", &self.shared.pool)
            .field("trial", &self.trial)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// The tests run one at a time: `tracing` caches per call site whether
    /// anyone listens, and a call site first reached on another test's thread
    /// while the log test installs its subscriber can keep a stale answer
    /// (lines then go missing from the capture).
    fn serial() -> MutexGuard<'static, ()> {
        static SERIAL: Mutex<()> = Mutex::new(());
        SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn settings() -> CircuitSettings {
        CircuitSettings {
            error_rate: 0.5,
            min_requests: 10,
            window: Duration::from_secs(10),
            open_for: Duration::from_secs(5),
            half_open_requests: 2,
        }
    }

    fn at(t0: Instant, millis: u64) -> Instant {
        t0 + Duration::from_millis(millis)
    }

    fn report(c: &Circuit, now: Instant, ok: bool) {
        match c.try_acquire_at(now) {
            Ok(a) if ok => a.succeeded_at(now),
            Ok(a) => a.failed_at(now),
            Err(r) => panic!("refused while {:?}: {r:?}", c.state()),
        }
    }

    /// A circuit opened at `t0` by ten failures.
    fn opened(t0: Instant) -> Circuit {
        let c = Circuit::new("pool", settings());
        for _ in 0..10 {
            report(&c, t0, false);
        }
        assert_eq!(c.state(), CircuitState::Open);
        c
    }

    impl Circuit {
        /// Where bucket 0 starts.
        fn origin(&self) -> Instant {
            self.shared.origin
        }

        fn transitions(&self) -> u64 {
            self.shared.lock().transitions
        }

        fn window_counts(&self) -> (u64, u64) {
            let inner = self.shared.lock();
            (inner.window.ok, inner.window.err)
        }

        /// Panics unless the lock-free mirror, the phase and the window
        /// agree, and no trial is left outstanding.
        fn assert_consistent(&self) {
            let inner = self.shared.lock();
            let mirror = self.shared.mirror.load(Ordering::Acquire);
            assert_eq!(mirror >> 2, inner.generation);
            assert_eq!(CircuitState::from_code(mirror & 3), inner.phase.state());
            let w = &inner.window;
            assert_eq!(w.ok, w.buckets.iter().map(|b| b.ok).sum::<u64>());
            assert_eq!(w.err, w.buckets.iter().map(|b| b.err).sum::<u64>());
            match inner.phase {
                Phase::HalfOpen {
                    outstanding,
                    succeeded,
                    ..
                } => {
                    assert_eq!(outstanding, 0, "a trial was never given back");
                    assert!(succeeded < self.shared.trials);
                }
                Phase::Open { .. } => assert_eq!(w.total(), 0),
                Phase::Closed => {}
            }
        }
    }

    #[test]
    fn opens_at_the_threshold_and_not_below_min_requests() {
        let _serial = serial();
        let t0 = Instant::now();

        // Nine failures out of nine: every one failed, but too few to judge.
        let c = Circuit::new("pool", settings());
        for _ in 0..9 {
            report(&c, t0, false);
        }
        assert_eq!(c.state(), CircuitState::Closed);
        assert_eq!(c.window_counts(), (0, 9));
        report(&c, t0, false);
        assert_eq!(c.state(), CircuitState::Open);

        // Enough requests, rate below 0.5 until it reaches 0.5 exactly.
        let c = Circuit::new("pool", settings());
        for i in 0..10 {
            report(&c, t0, i >= 4); // 4 failures, 6 successes
        }
        assert_eq!(c.state(), CircuitState::Closed);
        report(&c, t0, false); // 5 / 11
        assert_eq!(c.state(), CircuitState::Closed);
        report(&c, t0, false); // 6 / 12 = 0.5
        assert_eq!(c.state(), CircuitState::Open);
        assert_eq!(c.transitions(), 1);
    }

    #[test]
    fn successes_alone_never_open_it_even_with_a_zero_error_rate() {
        let _serial = serial();
        let t0 = Instant::now();
        let c = Circuit::new(
            "pool",
            CircuitSettings {
                error_rate: 0.0,
                ..settings()
            },
        );
        for _ in 0..100 {
            report(&c, t0, true);
        }
        assert_eq!(c.state(), CircuitState::Closed);
        report(&c, t0, false);
        assert_eq!(c.state(), CircuitState::Open);
    }

    #[test]
    fn fails_fast_while_open_with_retry_after_near_the_remaining_open_time() {
        let _serial = serial();
        let t0 = Instant::now();
        let c = opened(t0);
        let refused = c.try_acquire_at(at(t0, 2_000)).unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_secs(3));
        let refused = c.try_acquire_at(at(t0, 4_999)).unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_millis(1));
        assert_eq!(c.state(), CircuitState::Open);
        // And the real clock: opened just now, about the whole open_for left.
        let c = Circuit::new("pool", settings());
        for _ in 0..10 {
            c.try_acquire().unwrap().failed();
        }
        let refused = c.try_acquire().unwrap_err();
        assert!(refused.retry_after <= Duration::from_secs(5));
        assert!(refused.retry_after > Duration::from_secs(4));
    }

    #[test]
    fn half_opens_after_open_for_and_admits_only_half_open_requests_concurrent_trials() {
        let _serial = serial();
        let t0 = Instant::now();
        let c = opened(t0);
        let now = at(t0, 5_000);
        let first = c.try_acquire_at(now).unwrap();
        assert_eq!(c.state(), CircuitState::HalfOpen);
        assert!(first.is_trial());
        let second = c.try_acquire_at(now).unwrap();
        let refused = c.try_acquire_at(now).unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_secs(1));

        // A trial dropped without a report gives its slot back, and counts
        // for nothing.
        drop(second);
        assert_eq!(c.state(), CircuitState::HalfOpen);
        let third = c.try_acquire_at(now).unwrap();
        assert!(c.try_acquire_at(now).is_err());

        // One success frees a slot, but only one more trial is needed.
        first.succeeded_at(now);
        assert_eq!(c.state(), CircuitState::HalfOpen);
        assert!(c.try_acquire_at(now).is_err());
        drop(third);
        assert_eq!(c.state(), CircuitState::HalfOpen);
        assert!(c.try_acquire_at(now).is_ok());
        // Open -> HalfOpen, nothing since.
        assert_eq!(c.transitions(), 2);
    }

    #[test]
    fn closes_after_successful_trials_with_an_empty_window() {
        let _serial = serial();
        let t0 = Instant::now();
        let c = opened(t0);
        let now = at(t0, 5_000);
        let a = c.try_acquire_at(now).unwrap();
        let b = c.try_acquire_at(now).unwrap();
        a.succeeded_at(now);
        assert_eq!(c.state(), CircuitState::HalfOpen);
        b.succeeded_at(now);
        assert_eq!(c.state(), CircuitState::Closed);
        assert_eq!(c.window_counts(), (0, 0));
        // The ten failures that opened it are still within `window` of now
        // but no longer count: nine more failures are below min_requests.
        for _ in 0..9 {
            report(&c, now, false);
        }
        assert_eq!(c.state(), CircuitState::Closed);
        assert_eq!(c.transitions(), 3);
    }

    #[test]
    fn reopens_on_a_failed_trial_with_the_timer_restarted() {
        let _serial = serial();
        let t0 = Instant::now();
        let c = opened(t0);
        let now = at(t0, 6_000);
        let a = c.try_acquire_at(now).unwrap();
        let b = c.try_acquire_at(now).unwrap();
        a.succeeded_at(now);
        b.failed_at(at(t0, 6_500));
        assert_eq!(c.state(), CircuitState::Open);
        let refused = c.try_acquire_at(at(t0, 7_500)).unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_secs(4));
        assert!(c.try_acquire_at(at(t0, 11_500)).is_ok());
        assert_eq!(c.state(), CircuitState::HalfOpen);
    }

    #[test]
    fn late_outcomes_from_before_the_circuit_opened_are_ignored() {
        let _serial = serial();
        let t0 = Instant::now();
        let c = Circuit::new("pool", settings());
        let late_ok = c.try_acquire_at(t0).unwrap();
        let late_err = c.try_acquire_at(t0).unwrap();
        for _ in 0..10 {
            report(&c, t0, false);
        }
        let now = at(t0, 5_000);
        let trial = c.try_acquire_at(now).unwrap();
        // Neither passes for a trial: one success more would otherwise be
        // one of the two needed, and the failure would re-open it.
        late_ok.succeeded_at(now);
        late_err.failed_at(now);
        assert_eq!(c.state(), CircuitState::HalfOpen);
        trial.succeeded_at(now);
        assert_eq!(c.state(), CircuitState::HalfOpen);
        c.try_acquire_at(now).unwrap().succeeded_at(now);
        assert_eq!(c.state(), CircuitState::Closed);
    }

    #[test]
    fn old_errors_leave_the_rolling_window() {
        let _serial = serial();
        let c = Circuit::new("pool", settings());
        let t0 = c.origin();
        for _ in 0..9 {
            report(&c, t0, false);
        }
        // Two windows later the nine failures are gone: one more failure is
        // one request, far below min_requests.
        let later = at(t0, 20_000);
        report(&c, later, false);
        assert_eq!(c.state(), CircuitState::Closed);
        assert_eq!(c.window_counts(), (0, 1));

        // Within the window they stay: failures at 0.5 s and 9.5 s are both
        // counted, and the first ones leave once their bucket does (at 10 s).
        let c = Circuit::new(
            "pool",
            CircuitSettings {
                min_requests: 20,
                ..settings()
            },
        );
        let t0 = c.origin();
        for _ in 0..5 {
            report(&c, at(t0, 500), false);
        }
        for _ in 0..4 {
            report(&c, at(t0, 9_500), false);
        }
        assert_eq!(c.window_counts(), (0, 9));
        report(&c, at(t0, 9_999), true);
        assert_eq!(c.window_counts(), (1, 9));
        report(&c, at(t0, 10_000), true);
        assert_eq!(c.window_counts(), (2, 4));
        assert_eq!(c.state(), CircuitState::Closed);
    }

    #[test]
    fn a_long_idle_pool_starts_from_an_empty_window() {
        let _serial = serial();
        let c = Circuit::new("pool", settings());
        let t0 = c.origin();
        for i in 0..BUCKETS as u64 {
            report(&c, at(t0, i * 1_000), i % 4 != 0);
        }
        assert_eq!(c.window_counts(), (7, 3));
        report(&c, at(t0, 3_600_000), true);
        assert_eq!(c.window_counts(), (1, 0));
        c.assert_consistent();
    }

    #[test]
    fn each_transition_logs_exactly_one_line() {
        let _serial = serial();
        #[derive(Clone, Default)]
        struct Capture(Arc<Mutex<Vec<u8>>>);
        impl Write for Capture {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let capture = Capture::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let t0 = Instant::now();
            let c = opened(t0);
            let now = at(t0, 5_000);
            c.try_acquire_at(now).unwrap().failed_at(now);
            let now = at(t0, 10_000);
            c.try_acquire_at(now).unwrap().succeeded_at(now);
            c.try_acquire_at(now).unwrap().succeeded_at(now);
            assert_eq!(c.state(), CircuitState::Closed);
        });
        let text = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let expect = [
            ("WARN", "from=\"closed\" to=\"open\" error_rate=1.0"),
            ("INFO", "from=\"open\" to=\"half_open\" error_rate=1.0"),
            ("WARN", "from=\"half_open\" to=\"open\" error_rate=1.0"),
            ("INFO", "from=\"open\" to=\"half_open\" error_rate=1.0"),
            ("INFO", "from=\"half_open\" to=\"closed\" error_rate=0.0"),
        ];
        assert_eq!(lines.len(), expect.len(), "{text}");
        for (line, (level, fields)) in lines.iter().zip(expect) {
            assert!(line.contains(level), "{line}");
            assert!(line.contains("pool=\"pool\""), "{line}");
            assert!(line.contains(fields), "{line}");
        }
    }

    #[test]
    fn concurrent_use_from_four_threads_never_panics_and_ends_consistent() {
        let _serial = serial();
        let c = Circuit::new(
            "pool",
            CircuitSettings {
                error_rate: 0.5,
                min_requests: 5,
                window: Duration::from_secs(1),
                open_for: Duration::ZERO,
                half_open_requests: 3,
            },
        );
        const PER_THREAD: u64 = 5_000;
        let admitted = AtomicU64::new(0);
        let refused = AtomicU64::new(0);
        std::thread::scope(|s| {
            for thread in 0..4u64 {
                let (c, admitted, refused) = (&c, &admitted, &refused);
                s.spawn(move || {
                    for i in 0..PER_THREAD {
                        match c.try_acquire() {
                            Ok(attempt) => {
                                admitted.fetch_add(1, Ordering::Relaxed);
                                match (i + thread) % 7 {
                                    0 => drop(attempt),
                                    1..=4 => attempt.failed(),
                                    _ => attempt.succeeded(),
                                }
                            }
                            Err(r) => {
                                refused.fetch_add(1, Ordering::Relaxed);
                                assert!(r.retry_after <= Duration::from_secs(1));
                            }
                        }
                        let _ = c.state();
                    }
                });
            }
        });
        assert_eq!(
            admitted.load(Ordering::Relaxed) + refused.load(Ordering::Relaxed),
            4 * PER_THREAD
        );
        assert!(c.transitions() > 0, "4 failures in 6 never opened it");
        c.assert_consistent();
        // Still usable.
        let _ = c.try_acquire();
        c.assert_consistent();
    }
}
