//! In-flight caps: at most `max` requests of one key (a route, or a route
//! and a consumer) in flight at once, with a bounded queue of requests that
//! wait a while for a slot.
//!
//! # Counting
//!
//! The counts are kept by Pingora's [`Inflight`], a count-min sketch of 4
//! rows of 8192 atomic counters (256 KiB per [`ConcurrencyLimit`], however
//! many keys it sees). A key's count is the smallest of its 4 counters, each
//! of which also holds the counts of the keys that hash to the same place in
//! that row. The estimate is therefore never below the true count and only
//! above it when every one of the key's 4 counters is shared with another key
//! in flight: with `k` other keys in flight, a chance of about
//! `(1 - e^(-k/8192))^4`, e.g. 2e-4 with 1 000 keys in flight and 0.25 with
//! 10 000. Such a key is refused early (by the other keys' in-flight count);
//! a collision never admits a request beyond `max`. The hashers are seeded at
//! random per limit, so collisions differ from one process to the next.
//!
//! # Admission
//!
//! A request increments its key and keeps the slot when the count read back
//! after the increment is at most `max`; otherwise it takes the increment
//! back. Reading back after the increment (behind a `SeqCst` fence) rather
//! than trusting the value the increment returned matters: the sketch's rows
//! are incremented one after another, so the value returned can miss an
//! increment of a concurrent request in one row, and two requests could then
//! both take the last slot. Of the requests that read back, the last to do so
//! sees every other one in every row. Two requests racing for the last slot
//! may both see it taken and both back off; the one that finds room after
//! taking its increment back tries again (a few times), and wakes the queue.
//! The count can go above `max` only by a slot that is being released at that
//! very moment (its counters are decremented one after another, too).
//!
//! # The queue
//!
//! When the key is full and `queue > 0`, the request waits, up to
//! `queue_timeout`, among at most `queue` waiters *of the same key* (counted
//! exactly, in a map that only waiting requests touch). Waiters sleep on one
//! of [`WAKE_SHARDS`] [`Notify`]s chosen by key; a released [`Slot`] wakes
//! every waiter of its shard (`notify_waiters`), and they race for the slot.
//! `notify_one` would not do: the waiter it picks can be waiting for another
//! key of the same shard, and the slot's own waiter would sleep on. To wait
//! without losing a release, a waiter registers its `Notified` future
//! (`enable`) before it looks at the count again, and a release decrements the
//! count before it looks for waiters; a counter of waiters per shard, behind
//! `SeqCst` fences on both sides, lets a release skip the `Notify` (and its
//! lock) when nobody waits. There is no FIFO order: a waiter can lose a
//! released slot to a new request or another waiter and wait on.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{fence, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use pingora_limits::inflight::{Guard, Inflight};
use tokio::sync::Notify;

/// Wake-up channels per limit, chosen by key.
pub const WAKE_SHARDS: usize = 64;

/// Tries at a slot before giving up, when the count read back was over `max`
/// but there was room once the increment was taken back.
const TAKE_ATTEMPTS: usize = 3;

/// One cap on requests in flight.
#[derive(Debug, Clone)]
pub struct ConcurrencySettings {
    /// Requests of one key in flight at once (0 refuses everything).
    pub max: u32,
    /// Requests of one key that may wait for a slot; 0 refuses at once.
    pub queue: u32,
    /// How long a request waits in the queue before it is refused.
    pub queue_timeout: Duration,
}

/// Why a request got no slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// The key is at `max` and its queue is full (or there is none).
    Full,
    /// The request waited `queue_timeout` in the queue.
    QueueTimeout,
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rejected::Full => "too many requests in flight",
            Rejected::QueueTimeout => "timed out waiting for a slot",
        })
    }
}

impl std::error::Error for Rejected {}

/// In-flight caps per key, with a bounded queue.
pub struct ConcurrencyLimit {
    shared: Arc<Shared>,
}

struct Shared {
    max: isize,
    queue: u32,
    queue_timeout: Duration,
    in_flight: Inflight,
    /// Waiters per key. Only requests that wait touch it.
    queued: Mutex<HashMap<u64, u32>>,
    wake: Box<[Shard]>,
}

#[derive(Default)]
struct Shard {
    notify: Notify,
    /// Requests waiting on `notify`.
    waiting: AtomicUsize,
}

impl Shared {
    fn shard(&self, key: u64) -> &Shard {
        &self.wake[(key % WAKE_SHARDS as u64) as usize]
    }

    fn estimate(&self, key: u64) -> isize {
        // `Inflight` reads a count only through a guard; one of weight 0
        // changes nothing.
        let (probe, _) = self.in_flight.incr(key, 0);
        probe.get()
    }

    /// Wakes the waiters of `key`'s shard, if any. The caller has just
    /// decremented `key`'s count.
    fn wake(&self, key: u64) {
        // Pairs with the fence in `enqueue`: either this load sees the
        // waiter, or the waiter's next look at the count sees the decrement.
        fence(Ordering::SeqCst);
        let shard = self.shard(key);
        if shard.waiting.load(Ordering::Relaxed) > 0 {
            shard.notify.notify_waiters();
        }
    }

    fn queued(&self) -> MutexGuard<'_, HashMap<u64, u32>> {
        self.queued.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ConcurrencyLimit {
    pub fn new(settings: ConcurrencySettings) -> ConcurrencyLimit {
        let wake = (0..WAKE_SHARDS).map(|_| Shard::default()).collect();
        ConcurrencyLimit {
            shared: Arc::new(Shared {
                max: isize::try_from(settings.max).unwrap_or(isize::MAX),
                queue: settings.queue,
                queue_timeout: settings.queue_timeout,
                in_flight: Inflight::new(),
                queued: Mutex::new(HashMap::new()),
                wake,
            }),
        }
    }

    /// Takes a slot for `key` (a 64-bit hash: the route, or the route and
    /// the consumer). When the key is full, waits for one in the key's queue
    /// up to `queue_timeout`; [`Rejected::Full`] when there is no room in the
    /// queue either, [`Rejected::QueueTimeout`] when the wait ran out.
    ///
    /// Cancel-safe: dropping the future gives its place in the queue back.
    pub async fn acquire(&self, key: u64) -> Result<Slot, Rejected> {
        if let Some(slot) = self.try_take(key) {
            return Ok(slot);
        }
        let place = self.enqueue(key).ok_or(Rejected::Full)?;
        let waited = tokio::time::timeout(self.shared.queue_timeout, self.wait(key)).await;
        drop(place);
        waited.map_err(|_| Rejected::QueueTimeout)
    }

    /// Requests of `key` in flight now: the sketch's estimate, never below
    /// the true count. For tests and metrics.
    pub fn in_flight(&self, key: u64) -> isize {
        self.shared.estimate(key)
    }

    /// A slot for `key` if there is room now.
    fn try_take(&self, key: u64) -> Option<Slot> {
        let shared = &*self.shared;
        for _ in 0..TAKE_ATTEMPTS {
            let (guard, _) = shared.in_flight.incr(key, 1);
            // See "Admission" above: the value `incr` returned may miss a
            // concurrent increment; the one read back after it cannot.
            fence(Ordering::SeqCst);
            if guard.get() <= shared.max {
                return Some(Slot {
                    guard: Some(guard),
                    shared: Arc::clone(&self.shared),
                    key,
                });
            }
            drop(guard);
            if shared.estimate(key) >= shared.max {
                return None;
            }
            // Room after all: another request's increment (taken back since)
            // or a release crossed ours. Waiters may have backed off for the
            // same reason.
            shared.wake(key);
        }
        None
    }

    /// A place in `key`'s queue, or `None` when it holds `queue` waiters.
    fn enqueue(&self, key: u64) -> Option<QueuePlace> {
        let shared = &*self.shared;
        if shared.queue == 0 {
            return None;
        }
        {
            let mut queued = shared.queued();
            let waiters = queued.entry(key).or_insert(0);
            if *waiters >= shared.queue {
                return None;
            }
            *waiters += 1;
        }
        shared.shard(key).waiting.fetch_add(1, Ordering::Relaxed);
        // Pairs with the fence in `Shared::wake`.
        fence(Ordering::SeqCst);
        Some(QueuePlace {
            shared: Arc::clone(&self.shared),
            key,
        })
    }

    /// Waits (without a deadline) until a slot for `key` is free and takes
    /// it. The caller holds a place in the queue.
    async fn wait(&self, key: u64) -> Slot {
        let shard = self.shared.shard(key);
        loop {
            let mut notified = std::pin::pin!(shard.notify.notified());
            // Registered before the count is read again, so a release between
            // the read and the await still wakes this waiter.
            notified.as_mut().enable();
            if let Some(slot) = self.try_take(key) {
                return slot;
            }
            notified.await;
        }
    }

    /// Waiters in `key`'s queue now.
    #[cfg(test)]
    fn queued(&self, key: u64) -> u32 {
        self.shared.queued().get(&key).copied().unwrap_or(0)
    }
}

impl fmt::Debug for ConcurrencyLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConcurrencyLimit")
            .field("max", &self.shared.max)
            .field("queue", &self.shared.queue)
            .field("queue_timeout", &self.shared.queue_timeout)
            .finish()
    }
}

/// A waiter's place in its key's queue; given back on drop.
struct QueuePlace {
    shared: Arc<Shared>,
    key: u64,
}

impl Drop for QueuePlace {
    fn drop(&mut self) {
        self.shared
            .shard(self.key)
            .waiting
            .fetch_sub(1, Ordering::Relaxed);
        let mut queued = self.shared.queued();
        if let Some(waiters) = queued.get_mut(&self.key) {
            *waiters -= 1;
            if *waiters == 0 {
                queued.remove(&self.key);
            }
        }
    }
}

/// One request's slot; released when dropped, waking the key's waiters.
pub struct Slot {
    /// `Some` until dropped.
    guard: Option<Guard>,
    shared: Arc<Shared>,
    key: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        // Decrement first, then look for waiters (see `Shared::wake`).
        drop(self.guard.take());
        self.shared.wake(self.key);
    }
}

impl fmt::Debug for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slot").field("key", &self.key).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;
    use std::sync::atomic::AtomicIsize;

    fn limit(max: u32, queue: u32, queue_timeout: Duration) -> Arc<ConcurrencyLimit> {
        Arc::new(ConcurrencyLimit::new(ConcurrencySettings {
            max,
            queue,
            queue_timeout,
        }))
    }

    /// Yields until `key`'s queue holds `n` waiters.
    async fn until_queued(limit: &ConcurrencyLimit, key: u64, n: u32) {
        for _ in 0..10_000 {
            if limit.queued(key) == n {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("queue of {key} never reached {n}: {}", limit.queued(key));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn max_concurrent_holders_never_exceeds_max() {
        const MAX: u32 = 5;
        let limit = limit(MAX, 50, Duration::from_secs(30));
        let holding = Arc::new(AtomicIsize::new(0));
        let peak = Arc::new(AtomicIsize::new(0));
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let (limit, holding, peak) = (limit.clone(), holding.clone(), peak.clone());
                tokio::spawn(async move {
                    let slot = limit.acquire(7).await?;
                    let now = holding.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(3)).await;
                    holding.fetch_sub(1, Ordering::SeqCst);
                    drop(slot);
                    Ok::<(), Rejected>(())
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap(), Ok(()));
        }
        let peak = peak.load(Ordering::SeqCst);
        assert!(peak <= MAX as isize, "peak {peak} > {MAX}");
        assert!(peak >= 1);
        assert_eq!(limit.in_flight(7), 0);
        assert_eq!(limit.queued(7), 0);
    }

    #[tokio::test]
    async fn queue_zero_rejects_at_once_with_full() {
        let limit = limit(2, 0, Duration::from_secs(30));
        let _a = limit.acquire(1).await.unwrap();
        let _b = limit.acquire(1).await.unwrap();
        assert_eq!(limit.in_flight(1), 2);
        // Decided on the first poll, without waiting.
        let third = limit.acquire(1).now_or_never().expect("decided at once");
        assert_eq!(third.unwrap_err(), Rejected::Full);
        assert_eq!(limit.in_flight(1), 2);
    }

    #[tokio::test]
    async fn max_zero_refuses_everything() {
        let limit = limit(0, 0, Duration::from_secs(1));
        assert_eq!(limit.acquire(1).await.unwrap_err(), Rejected::Full);
        assert_eq!(limit.in_flight(1), 0);
    }

    #[tokio::test]
    async fn a_queued_waiter_gets_the_slot_when_one_is_released() {
        let limit = limit(1, 1, Duration::from_secs(30));
        let held = limit.acquire(9).await.unwrap();
        let waiter = tokio::spawn({
            let limit = limit.clone();
            async move {
                limit
                    .acquire(9)
                    .await
                    .map(|slot| (slot, limit.in_flight(9)))
            }
        });
        until_queued(&limit, 9, 1).await;
        assert!(!waiter.is_finished());
        drop(held);
        let (slot, in_flight) = waiter.await.unwrap().unwrap();
        assert_eq!(in_flight, 1);
        assert_eq!(limit.queued(9), 0);
        drop(slot);
        assert_eq!(limit.in_flight(9), 0);
    }

    #[tokio::test]
    async fn a_waiter_past_queue_timeout_gets_queue_timeout() {
        let limit = limit(1, 4, Duration::from_millis(50));
        let _held = limit.acquire(3).await.unwrap();
        let started = tokio::time::Instant::now();
        assert_eq!(limit.acquire(3).await.unwrap_err(), Rejected::QueueTimeout);
        assert!(started.elapsed() >= Duration::from_millis(50));
        // Its place in the queue is given back, and nothing is held.
        assert_eq!(limit.queued(3), 0);
        assert_eq!(limit.in_flight(3), 1);
    }

    #[tokio::test]
    async fn the_queue_is_bounded_and_the_third_waiter_is_rejected_at_once() {
        let limit = limit(1, 2, Duration::from_secs(30));
        let held = limit.acquire(5).await.unwrap();
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let limit = limit.clone();
                tokio::spawn(async move {
                    let slot = limit.acquire(5).await?;
                    let in_flight = limit.in_flight(5);
                    tokio::task::yield_now().await;
                    drop(slot);
                    Ok::<_, Rejected>(in_flight)
                })
            })
            .collect();
        until_queued(&limit, 5, 2).await;
        let third = limit.acquire(5).now_or_never().expect("decided at once");
        assert_eq!(third.unwrap_err(), Rejected::Full);
        assert_eq!(limit.queued(5), 2);

        // Each release lets one waiter through.
        drop(held);
        for waiter in waiters {
            assert_eq!(waiter.await.unwrap(), Ok(1));
        }
        assert_eq!(limit.in_flight(5), 0);
        assert_eq!(limit.queued(5), 0);
    }

    #[tokio::test]
    async fn a_cancelled_waiter_gives_its_place_back() {
        let limit = limit(1, 1, Duration::from_secs(30));
        let held = limit.acquire(2).await.unwrap();
        let waiter = tokio::spawn({
            let limit = limit.clone();
            async move { limit.acquire(2).await }
        });
        until_queued(&limit, 2, 1).await;
        waiter.abort();
        assert!(waiter.await.unwrap_err().is_cancelled());
        assert_eq!(limit.queued(2), 0);
        // The place is free for another waiter, which gets the slot.
        let next = tokio::spawn({
            let limit = limit.clone();
            async move { limit.acquire(2).await.map(drop) }
        });
        until_queued(&limit, 2, 1).await;
        drop(held);
        assert_eq!(next.await.unwrap(), Ok(()));
        assert_eq!(limit.in_flight(2), 0);
    }

    #[tokio::test]
    async fn different_keys_do_not_share_a_cap() {
        let limit = limit(1, 0, Duration::from_secs(1));
        let _one = limit.acquire(1).await.unwrap();
        assert_eq!(limit.acquire(1).await.unwrap_err(), Rejected::Full);
        let _two = limit.acquire(2).now_or_never().unwrap().unwrap();
        assert_eq!(limit.in_flight(1), 1);
        assert_eq!(limit.in_flight(2), 1);
        // Nor a queue: key 1's full queue does not stop key 2 from waiting.
        let limit = self::limit(1, 1, Duration::from_secs(30));
        let a = limit.acquire(1).await.unwrap();
        let b = limit.acquire(2).await.unwrap();
        let w1 = tokio::spawn({
            let limit = limit.clone();
            async move { limit.acquire(1).await.map(drop) }
        });
        until_queued(&limit, 1, 1).await;
        let w2 = tokio::spawn({
            let limit = limit.clone();
            async move { limit.acquire(2).await.map(drop) }
        });
        until_queued(&limit, 2, 1).await;
        drop(a);
        drop(b);
        assert_eq!(w1.await.unwrap(), Ok(()));
        assert_eq!(w2.await.unwrap(), Ok(()));
    }

    #[tokio::test]
    async fn waiters_of_another_key_in_the_same_shard_do_not_swallow_the_wakeup() {
        let limit = limit(1, 4, Duration::from_secs(30));
        // Keys 1 and 1 + WAKE_SHARDS share a wake-up shard.
        let other = 1 + WAKE_SHARDS as u64;
        let _held_other = limit.acquire(other).await.unwrap();
        let held = limit.acquire(1).await.unwrap();
        let stranger = tokio::spawn({
            let limit = limit.clone();
            async move { limit.acquire(other).await.map(drop) }
        });
        until_queued(&limit, other, 1).await;
        let waiter = tokio::spawn({
            let limit = limit.clone();
            async move { limit.acquire(1).await.map(drop) }
        });
        until_queued(&limit, 1, 1).await;
        drop(held);
        assert_eq!(waiter.await.unwrap(), Ok(()));
        assert!(!stranger.is_finished());
        stranger.abort();
    }
}
