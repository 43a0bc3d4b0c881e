//! The local rate limiter: one sliding window counter per key, kept in this
//! process.
//!
//! # Arithmetic
//!
//! Windows of length `W` are aligned on the Unix epoch: the window of a time
//! `now` (in ms) is `now / W` and `elapsed = now % W`. A key keeps the count
//! of the current window and of the one before it, and a request of `cost`
//! is admitted when (see the [parent module](super))
//!
//! ```text
//! prev * (W - elapsed) / W + curr + cost <= limit
//! ```
//!
//! [`decide`] evaluates it in integers, multiplied through by `W`
//! (`prev * (W - elapsed) + (curr + cost) * W <= limit * W`, in `u128`), so
//! there are neither floats nor rounding on the hot path; the Redis store
//! uses it as it is on the counts its script returns.
//!
//! The local store weighs the previous window more closely: it counts each
//! window in [`PARTS`] parts, each with the first and last millisecond at
//! which it counted a request, and takes a part's requests as spread between
//! those two ([`decide_parts`]). The plain counter takes them as spread over
//! the whole window, which credits a key with the time it was idle: a key
//! that starts half-way into a window at twice its limit gets up to 149 % of
//! the limit in one sliding window and 4.1 % too many over ten windows; with
//! the parts it gets at most the limit in every sliding window and 99.1 % to
//! 100 % of it over ten (tests below). The estimate's worst case is two
//! clumps of requests in one part, at its two ends: up to half of that
//! part's count too many, for a moment.
//!
//! # Storage
//!
//! Keys are 64-bit hashes of the key text. They are spread over up to
//! [`SHARDS`] shards, each a `Mutex<HashMap>` that hashes the key with the
//! identity (it already is a hash) and holds a 104-byte slot per key (the
//! window index, and for the current and the previous window [`PARTS`]
//! parts of a `u32` count, saturating, and two `u32` offsets: a limit above
//! `u32::MAX` cannot be enforced here). A request locks one shard, once.
//!
//! # Bounded memory
//!
//! Each shard holds at most `ceil(max_keys / shards)` keys, so the limiter
//! never holds more than `max_keys` plus the rounding (under `shards` keys).
//! When a new key arrives at a full shard:
//!
//! 1. the shard drops its idle slots (last counted two or more windows ago:
//!    neither of their counts weighs any more), at most once per window index
//!    and shard, so that a shard full of live keys is not swept again on
//!    every new key;
//! 2. if it is still full, it evicts one slot: among the first
//!    [`EVICTION_SAMPLE`] slots it iterates over, the one counted longest ago,
//!    and of those the one with the fewest requests counted.
//!
//! The trade-off: a flood of distinct keys cannot grow memory; the cost is
//! that an evicted busy key starts afresh, and may be admitted up to `limit`
//! more than it should in that window. Preferring the lightest slot of the
//! sample keeps a key that is busy (many requests counted in this window)
//! from being the one evicted while lighter keys sit beside it.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::Decision;

/// The most shards a limiter has (a power of two).
pub const SHARDS: usize = 64;

/// The fewest keys a shard is meant to hold: limiters with a small
/// `max_keys` get fewer shards, so that one shard does not overflow (and
/// evict) while others stand empty.
const MIN_KEYS_PER_SHARD: usize = 16;

/// How many slots an eviction looks at.
pub const EVICTION_SAMPLE: usize = 8;

/// A sliding window counter per key, bounded to `max_keys` keys. See the
/// [module documentation](self).
pub struct LocalWindow {
    limit: u64,
    window_ms: u64,
    /// Keys one shard may hold.
    shard_cap: usize,
    /// `64 - log2(shards.len())`: the shift that picks a shard.
    shard_shift: u32,
    shards: Box<[Padded]>,
}

/// One shard on a cache line of its own, so that threads working on
/// different shards do not share a line.
#[repr(align(64))]
struct Padded(Mutex<Shard>);

struct Shard {
    slots: HashMap<u64, Slot, BuildHasherDefault<KeyHasher>>,
    /// The window index of the last sweep of idle slots (`u64::MAX`: none).
    swept: u64,
    #[cfg(test)]
    sweeps: u32,
}

/// The parts a window is counted in.
pub const PARTS: usize = 4;

/// The requests counted in one part of a window: how many, and the first
/// and last millisecond (into the window) at which they came.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Part {
    count: u32,
    first: u32,
    last: u32,
}

/// One key's counts: the current and the previous window, each in
/// [`PARTS`] parts.
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// The index of the window `curr` counts.
    window: u64,
    prev: [Part; PARTS],
    curr: [Part; PARTS],
}

impl Slot {
    fn new(index: u64) -> Slot {
        Slot {
            window: index,
            prev: [Part::default(); PARTS],
            curr: [Part::default(); PARTS],
        }
    }

    /// Moves the slot to window `index` (when it is later than its own).
    fn roll(&mut self, index: u64) {
        if index > self.window {
            self.prev = if index == self.window + 1 {
                self.curr
            } else {
                [Part::default(); PARTS]
            };
            self.curr = [Part::default(); PARTS];
            self.window = index;
        }
    }

    /// Counts `cost` at `elapsed` into the slot's window of `window_ms`.
    fn count(&mut self, cost: u64, elapsed: u64, window_ms: u64) {
        let at = u32::try_from(elapsed).unwrap_or(u32::MAX);
        let part = &mut self.curr[part_of(elapsed, window_ms)];
        if part.count == 0 {
            (part.first, part.last) = (at, at);
        } else {
            (part.first, part.last) = (part.first.min(at), part.last.max(at));
        }
        part.count = add_saturating(part.count, cost);
    }

    fn total(parts: &[Part; PARTS]) -> u64 {
        parts.iter().map(|p| u64::from(p.count)).sum()
    }

    /// What the slot still weighs: eviction prefers light slots.
    fn weight(&self) -> u64 {
        Slot::total(&self.prev) + Slot::total(&self.curr)
    }
}

/// The part of a window that the millisecond `elapsed` falls in.
fn part_of(elapsed: u64, window_ms: u64) -> usize {
    let w = u128::from(window_ms.max(1));
    let index = u128::from(elapsed).min(w - 1) * PARTS as u128 / w;
    usize::try_from(index).unwrap_or(PARTS - 1).min(PARTS - 1)
}

/// The keys are already 64-bit hashes: the map uses them as they are.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys reach this hasher; this is a fallback.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl LocalWindow {
    /// `max_keys`: the most keys held; memory is bounded by it (about 113
    /// bytes a key in the hash tables, which keep up to as much again spare).
    pub fn new(limit: u64, window: Duration, max_keys: usize) -> LocalWindow {
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
        let max_keys = max_keys.max(1);
        let wanted = (max_keys / MIN_KEYS_PER_SHARD).clamp(1, SHARDS);
        // The largest power of two not above `wanted`.
        let shards = 1usize << (usize::BITS - 1 - wanted.leading_zeros());
        let shards: Box<[Padded]> = (0..shards)
            .map(|_| {
                Padded(Mutex::new(Shard {
                    slots: HashMap::default(),
                    swept: u64::MAX,
                    #[cfg(test)]
                    sweeps: 0,
                }))
            })
            .collect();
        LocalWindow {
            limit,
            window_ms,
            shard_cap: max_keys.div_ceil(shards.len()),
            shard_shift: 64 - shards.len().trailing_zeros(),
            shards,
        }
    }

    /// Counts `cost` for `key` (a 64-bit hash of the key text) at `now_ms`
    /// (milliseconds since the Unix epoch) when it fits, and says so.
    ///
    /// The decision's `remaining` and `reset` are those of [`decide`]. A time
    /// earlier than the key's current window (a clock read just before
    /// another thread's) counts in that window, at its start: the most
    /// cautious reading.
    pub fn check(&self, key: u64, now_ms: u64, cost: u64) -> Decision {
        let index = now_ms / self.window_ms;
        let elapsed = now_ms % self.window_ms;
        let mut shard = lock(&self.shards[self.shard_of(key)].0);
        if let Some(slot) = shard.slots.get_mut(&key) {
            slot.roll(index);
            let elapsed = if slot.window > index { 0 } else { elapsed };
            let d = decide_parts(
                &slot.prev,
                Slot::total(&slot.curr),
                self.limit,
                self.window_ms,
                elapsed,
                cost,
            );
            if d.admitted {
                slot.count(cost, elapsed, self.window_ms);
            }
            return d;
        }
        let d = decide(0, 0, self.limit, self.window_ms, elapsed, cost);
        if d.admitted {
            if shard.slots.len() >= self.shard_cap {
                shard.make_room(index, self.shard_cap);
            }
            let mut slot = Slot::new(index);
            slot.count(cost, elapsed, self.window_ms);
            shard.slots.insert(key, slot);
        }
        d
    }

    /// Keys held now (for tests and a metric).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(&s.0).slots.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(|s| lock(&s.0).slots.is_empty())
    }

    /// The shard of a key: the top bits of the key times the 64-bit golden
    /// ratio, so that keys that differ only in low bits (or are not hashes
    /// at all) still spread, and the bits the map itself uses (the low ones
    /// for the bucket, the top seven for its tags) are not constant within
    /// a shard.
    fn shard_of(&self, key: u64) -> usize {
        // `shard_shift` is 64 with one shard: `checked_shr` gives none.
        key.wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .checked_shr(self.shard_shift)
            .unwrap_or(0) as usize
    }
}

impl Shard {
    /// Frees at least one place in a full shard, for a key new in window
    /// `index`.
    fn make_room(&mut self, index: u64, cap: usize) {
        if self.swept != index {
            self.swept = index;
            #[cfg(test)]
            {
                self.sweeps += 1;
            }
            // Idle: last counted before the previous window.
            self.slots
                .retain(|_, s| s.window.saturating_add(1) >= index);
            if self.slots.len() < cap {
                return;
            }
        }
        let victim = self
            .slots
            .iter()
            .take(EVICTION_SAMPLE)
            .min_by_key(|(_, s)| (s.window, s.weight()))
            .map(|(&k, _)| k);
        if let Some(k) = victim {
            self.slots.remove(&k);
        }
    }
}

fn add_saturating(count: u32, cost: u64) -> u32 {
    u32::try_from(u64::from(count).saturating_add(cost)).unwrap_or(u32::MAX)
}

/// A poisoned lock only means another thread panicked while holding it; the
/// counts stay usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Fixed-point scale of a weighted count.
const SCALE: u128 = 1 << 16;

/// How many of the previous window's requests the sliding window still
/// holds at `elapsed` into the current one, scaled by [`SCALE`] and rounded
/// up: the sliding window covers `[elapsed, W)` of the previous window, and
/// each part's requests are taken as spread evenly between the first and
/// the last millisecond at which that part counted one.
fn still_held(prev: &[Part; PARTS], elapsed_ms: u64) -> u128 {
    let e = u128::from(elapsed_ms);
    prev.iter()
        .filter(|p| p.count > 0)
        .map(|p| {
            let (first, last) = (u128::from(p.first), u128::from(p.last.max(p.first)));
            let width = last + 1 - first;
            let covered = (last + 1).saturating_sub(e.max(first)).min(width);
            div_ceil(u128::from(p.count) * covered * SCALE, width)
        })
        .sum()
}

/// `a / b` rounded up, in 64-bit arithmetic when both fit (a 128-bit
/// division is a slow library call, and these nearly always fit).
#[inline]
fn div_ceil(a: u128, b: u128) -> u128 {
    match (u64::try_from(a), u64::try_from(b)) {
        (Ok(a), Ok(b)) => u128::from(a.div_ceil(b.max(1))),
        _ => a.div_ceil(b.max(1)),
    }
}

/// `a / b` rounded down, as [`div_ceil`].
#[inline]
fn div_floor(a: u128, b: u128) -> u128 {
    match (u64::try_from(a), u64::try_from(b)) {
        (Ok(a), Ok(b)) => u128::from(a / b.max(1)),
        _ => a / b.max(1),
    }
}

/// [`decide`] with the previous window weighted by where in it its requests
/// came (see [`still_held`]) rather than as if they were spread over all of
/// it. The plain counter credits a key with the part of the previous window
/// it was idle in: a key that starts half-way into a window gets up to half
/// a limit too many in the next one. Counting each part of the window with
/// its own first and last request makes the estimate follow where the
/// requests came. The weight is turned into the elapsed time at which the
/// plain formula gives the same weight, rounded to the cautious side, and
/// `reset` is found for the weighting used.
fn decide_parts(
    prev: &[Part; PARTS],
    curr: u64,
    limit: u64,
    window_ms: u64,
    elapsed_ms: u64,
    cost: u64,
) -> Decision {
    let w = window_ms.max(1);
    let e = elapsed_ms.min(w);
    let total = Slot::total(prev);
    let at = |t: u64| {
        let e_eff = if total == 0 {
            w
        } else {
            let held = still_held(prev, t);
            let wide = u128::from(w);
            // held / (total * SCALE) = (W - e_eff) / W, with e_eff rounded down.
            let weight = div_ceil(held * wide, u128::from(total) * SCALE).min(wide);
            u64::try_from(wide - weight).unwrap_or(0)
        };
        decide(total, curr, limit, w, e_eff, cost)
    };
    let mut d = at(e);
    let last_prev = prev
        .iter()
        .filter(|p| p.count > 0)
        .map(|p| u64::from(p.last))
        .max();
    if d.admitted {
        // The `t` of an admitted request: when everything counted has left.
        let gone = if curr + cost > 0 {
            2 * w - e
        } else if last_prev.is_some_and(|l| e <= l) {
            w - e
        } else {
            0
        };
        d.reset = Duration::from_millis(gone);
        return d;
    }
    if cost <= limit && curr + cost <= limit && at(w).admitted {
        // Admitted later in this window, once the previous requests have
        // left the sliding window: the first such millisecond, by bisection
        // (what is held only falls as time passes).
        let (mut lo, mut hi) = (e, w);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if at(mid).admitted {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        d.reset = Duration::from_millis(hi - e);
        return d;
    }
    // Not within this window: the plain counter's figure for the next one.
    decide(total, curr, limit, w, e, cost)
}

/// The arithmetic alone, shared with the Redis store: given the previous and
/// current window counts, the limit, `W` (`window_ms`) and the elapsed part
/// of the current window, the decision for `cost` more (without counting it).
///
/// - `admitted`: `prev * (W - elapsed) + (curr + cost) * W <= limit * W`.
/// - `remaining`: for an admitted request, how many more requests of cost 1
///   would be admitted right now once this one is counted; 0 when refused.
/// - `reset`, for a refused request: the time until a request of the same
///   `cost` would be admitted, if nothing more is counted (the
///   `Retry-After`). When `curr + cost` fits in the limit, that is when the
///   previous window's weight has decayed enough, within this window;
///   otherwise it lies in the next window, where `curr` becomes the
///   previous count (possibly at its very start, or after it, when the
///   count then weighs nothing). A request whose `cost` exceeds the limit is
///   never admitted; its `reset` is the same as an admitted request's.
/// - `reset`, for an admitted request: the time until every request counted
///   so far (this one included) has left the sliding window and the whole
///   limit is available again: the end of the next window (`2W - elapsed`)
///   when the current window counts anything, the end of this one
///   (`W - elapsed`) when only the previous one does, and zero when neither
///   does. This is the `t` of the `RateLimit` header.
///
/// Every time is a whole number of milliseconds, exact (the inputs are
/// milliseconds). `elapsed` is taken as at most `W`; a `W` of 0 is taken as
/// 1 ms.
pub fn decide(
    prev: u64,
    curr: u64,
    limit: u64,
    window_ms: u64,
    elapsed_ms: u64,
    cost: u64,
) -> Decision {
    let w = u128::from(window_ms.max(1));
    let e = u128::from(elapsed_ms).min(w);
    let (prev, curr, limit, cost) = (
        u128::from(prev),
        u128::from(curr),
        u128::from(limit),
        u128::from(cost),
    );
    let budget = limit * w;
    // Each product fits in u128 (u64 * u64); their sum may not.
    let used = (prev * (w - e)).saturating_add(curr * w);
    let after = used.saturating_add(cost * w);
    let ms = |t: u128| Duration::from_millis(u64::try_from(t).unwrap_or(u64::MAX));
    let all_gone = if curr + cost > 0 {
        2 * w - e
    } else if prev > 0 {
        w - e
    } else {
        0
    };
    if after <= budget {
        return Decision {
            admitted: true,
            remaining: u64::try_from(div_floor(budget - after, w)).unwrap_or(u64::MAX),
            reset: ms(all_gone),
        };
    }
    let reset = if cost > limit {
        all_gone
    } else if curr + cost <= limit {
        // Admitted once prev * (W - e - t) <= (limit - curr - cost) * W; as
        // it is refused now, prev > 0 and the t found is at least 1.
        let slack = (limit - curr - cost) * w;
        (w - e) - div_floor(slack, prev).min(w - e)
    } else {
        // In the next window, at elapsed e' with curr as the previous count:
        // curr * (W - e') <= (limit - cost) * W. Here curr > 0.
        let slack = (limit - cost) * w;
        (w - e) + (w - div_floor(slack, curr).min(w))
    };
    Decision {
        admitted: false,
        remaining: 0,
        reset: ms(reset),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    /// A well-mixed 64-bit value of `i`, standing for a key's hash.
    fn hash(i: u64) -> u64 {
        let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Drives one key with requests `step_ms` apart from `start_ms` until
    /// `end_ms` (excluded), and returns the times of those admitted.
    fn drive(
        limiter: &LocalWindow,
        key: u64,
        start_ms: u64,
        end_ms: u64,
        step_ms: u64,
    ) -> Vec<u64> {
        (start_ms..end_ms)
            .step_by(step_ms as usize)
            .filter(|&t| limiter.check(key, t, 1).admitted)
            .collect()
    }

    /// The most admitted requests in any window `(t - W, t]`, over every
    /// admitted time `t` from `from_ms` on, and the time it ends.
    fn max_sliding(admitted: &[u64], window_ms: u64, from_ms: u64) -> (usize, u64) {
        let mut best = (0, 0);
        let mut first = 0;
        for (i, &t) in admitted.iter().enumerate() {
            while admitted[first] + window_ms <= t {
                first += 1;
            }
            if t >= from_ms && i + 1 - first > best.0 {
                best = (i + 1 - first, t);
            }
        }
        best
    }

    /// Admitted requests in each of the eleven windows from `base`.
    fn per_window(admitted: &[u64], base: u64, w: u64) -> Vec<usize> {
        (0..=10)
            .map(|k| {
                let (from, to) = (base + k * w, base + (k + 1) * w);
                admitted.iter().filter(|&&t| t >= from && t < to).count()
            })
            .collect()
    }

    /// The test as specified; it fails for every start offset tried but 0
    /// (they are 50 ms apart). Started part way into a window, the key's
    /// first requests all come in that window's last part, while the
    /// counter takes them as spread evenly over it; during the second window
    /// the true sliding count therefore runs up to about
    /// `limit * (1 + offset / W)` (104 at 50 ms, 149 at 500 and 550 ms,
    /// back to 109 at 950 ms), and the ten windows from the start admit up
    /// to 4.1 % too many (1 041 at 500 ms; beyond 2 % from 300 to 650 ms).
    /// From the third window on the counter never lets more than the limit
    /// into a sliding window: see the next test.
    #[test]
    fn a_key_driven_at_twice_its_limit_for_ten_windows_is_admitted_within_two_percent_of_the_limit()
    {
        let (limit, w) = (100u64, 1000u64);
        let base = 1_700_000_000_000 / w * w;
        let mut failures = Vec::new();
        for offset in (0..w).step_by(50) {
            let limiter = LocalWindow::new(limit, SECOND, 1000);
            let start = base + offset;
            // 200 per second: one request every 5 ms, for ten windows.
            let admitted = drive(&limiter, 7, start, start + 10 * w, 5);
            let total = admitted.len();
            let (max, at) = max_sliding(&admitted, w, start);
            println!(
                "offset {offset:>3} ms: total {total} ({:+.1} %), per window {:?}, \
                 sliding max {max} (window ending at +{} ms)",
                (total as f64 / (10 * limit) as f64 - 1.0) * 100.0,
                per_window(&admitted, base, w),
                at - start,
            );
            let total_ok = total.abs_diff(10 * limit as usize) * 50 <= 10 * limit as usize;
            let max_ok = max as u64 * 100 <= limit * 102;
            if !total_ok || !max_ok {
                failures.push((offset, total, max));
            }
        }
        assert!(
            failures.is_empty(),
            "(offset ms, total admitted in ten windows, most in one sliding window) beyond 2 %: \
             {failures:?}"
        );
    }

    #[test]
    fn a_key_driven_at_twice_its_limit_never_gets_more_than_it_in_any_sliding_window() {
        let (limit, w) = (100u64, 1000u64);
        let base = 1_700_000_000_000 / w * w;
        for offset in (0..w).step_by(10) {
            let limiter = LocalWindow::new(limit, SECOND, 1000);
            let start = base + offset;
            let admitted = drive(&limiter, 7, start, start + 10 * w, 5);
            let (max, at) = max_sliding(&admitted, w, start);
            assert!(
                max <= 100,
                "offset {offset}: {max} in the window ending at {at}"
            );
            // And it is not held far below: 98 to 100 in every full window.
            let windows = per_window(&admitted, base, w);
            assert!(
                windows[1..10].iter().all(|&n| (98..=100).contains(&n)),
                "offset {offset}: {windows:?}"
            );
        }
    }

    /// Requests in two clumps of one part of the window (its first and last
    /// millisecond) are the estimate's worst case: they are taken as spread
    /// between the two, so half the clump at the end is missed half-way
    /// through the part. The bound: at most one part's count too many.
    #[test]
    fn two_clumps_in_one_part_of_a_window_overshoot_by_less_than_that_part_holds() {
        let (limit, w) = (100u64, 1000u64);
        let base = 1_700_000_000_000 / w * w;
        let limiter = LocalWindow::new(limit, SECOND, 1000);
        // Part 0 covers [0, 250): one request at 0, 99 at 249.
        assert!(limiter.check(3, base, 1).admitted);
        for _ in 0..99 {
            assert!(limiter.check(3, base + 249, 1).admitted);
        }
        // At 125 ms into the next window the sliding window still holds the
        // 99, but the estimate takes half of the 100 as gone.
        let mut extra = 0;
        while limiter.check(3, base + w + 125, 1).admitted {
            extra += 1;
        }
        assert!(extra <= 50, "{extra}");
        assert!(extra > 0, "the worst case is real: {extra}");
    }

    #[test]
    fn a_burst_at_the_end_of_a_window_leaves_nothing_for_a_burst_at_the_start_of_the_next() {
        let limiter = LocalWindow::new(100, SECOND, 1000);
        let last_ms = 1_700_000_000_999;
        let first = (0..100)
            .filter(|_| limiter.check(1, last_ms, 1).admitted)
            .count();
        let second = (0..100)
            .filter(|_| limiter.check(1, last_ms + 1, 1).admitted)
            .count();
        assert_eq!(first, 100);
        assert_eq!(second, 0);
        // A fixed window counter would have admitted 200 in 2 ms.
    }

    /// The state a key reaches `t` ms later if nothing more is counted, and
    /// whether `cost` is admitted then.
    fn admitted_later(prev: u64, curr: u64, limit: u64, w: u64, e: u64, cost: u64, t: u64) -> bool {
        let (windows, e2) = ((e + t) / w, (e + t) % w);
        let (p, c) = match windows {
            0 => (prev, curr),
            1 => (curr, 0),
            _ => (0, 0),
        };
        decide(p, c, limit, w, e2, cost).admitted
    }

    #[test]
    fn decide_admits_exactly_what_fits_and_counts_what_remains() {
        // prev 60 at half weight is 30; with curr 20 that leaves 50.
        let d = decide(60, 20, 100, 1000, 500, 1);
        assert!(d.admitted);
        assert_eq!(d.remaining, 49);
        assert_eq!(d.reset, Duration::from_millis(1500));
        let d = decide(60, 20, 100, 1000, 500, 50);
        assert!(d.admitted);
        assert_eq!(d.remaining, 0);
        let d = decide(60, 20, 100, 1000, 500, 51);
        assert!(!d.admitted);
        assert_eq!(d.remaining, 0);
        // The weighted count is not rounded: 30.03 + 20 + 50 is too many.
        assert!(!decide(60, 20, 100, 1000, 499, 50).admitted);
        // Nothing counted: the whole limit, and nothing to wait for.
        let d = decide(0, 0, 100, 1000, 10, 1);
        assert_eq!(
            (d.admitted, d.remaining, d.reset),
            (true, 99, Duration::from_millis(1990))
        );
        let d = decide(0, 0, 100, 1000, 10, 0);
        assert_eq!(
            (d.admitted, d.remaining, d.reset),
            (true, 100, Duration::ZERO)
        );
        let d = decide(40, 0, 100, 1000, 10, 0);
        assert_eq!(
            (d.admitted, d.remaining, d.reset),
            (true, 60, Duration::from_millis(990))
        );
        // Extremes do not overflow.
        let d = decide(u64::MAX, u64::MAX, u64::MAX, u64::MAX, 0, u64::MAX);
        assert!(!d.admitted);
        let d = decide(0, 0, u64::MAX, u64::MAX, 0, u64::MAX);
        assert!(d.admitted);
        assert_eq!(d.remaining, 0);
    }

    #[test]
    fn decide_refusals_reset_when_a_search_at_every_millisecond_first_admits() {
        let mut refusals = [0u32; 3];
        for w in [1u64, 7, 100, 1000] {
            for limit in [1u64, 3, 10, 100] {
                let counts = [0, 1, limit / 2, limit.saturating_sub(1), limit, limit + 3];
                for prev in counts {
                    for curr in counts {
                        for cost in [1, 2, limit, limit + 1] {
                            for e in (0..w).step_by((w / 50).max(1) as usize) {
                                let d = decide(prev, curr, limit, w, e, cost);
                                if d.admitted {
                                    continue;
                                }
                                let kind = if cost > limit {
                                    2
                                } else {
                                    usize::from(curr + cost > limit)
                                };
                                refusals[kind] += 1;
                                let reset = d.reset.as_millis() as u64;
                                if cost > limit {
                                    assert_eq!(reset, 2 * w - e);
                                    continue;
                                }
                                let found = (1..=3 * w)
                                    .find(|&t| admitted_later(prev, curr, limit, w, e, cost, t));
                                assert_eq!(
                                    Some(reset),
                                    found,
                                    "prev {prev} curr {curr} limit {limit} W {w} e {e} cost {cost}"
                                );
                            }
                        }
                    }
                }
            }
        }
        // Both cases met (prev decaying; waiting for the next window).
        assert!(refusals[0] > 100 && refusals[1] > 100, "{refusals:?}");
    }

    #[test]
    fn decide_admissions_reset_when_nothing_counted_weighs_any_more() {
        for w in [1u64, 7, 1000] {
            for (prev, curr) in [(0, 0), (5, 0), (0, 5), (5, 5)] {
                for e in (0..w).step_by((w / 20).max(1) as usize) {
                    for cost in [0, 1] {
                        let d = decide(prev, curr, 100, w, e, cost);
                        assert!(d.admitted);
                        // The first t at which the full limit is free again.
                        let found = (0..=3 * w)
                            .find(|&t| admitted_later(prev, curr + cost, 100, w, e, 100, t));
                        assert_eq!(Some(d.reset.as_millis() as u64), found);
                    }
                }
            }
        }
    }

    #[test]
    fn one_million_distinct_keys_hold_memory_at_the_bound() {
        let (limit, w, max_keys) = (100u64, 1000u64, 10_000usize);
        let limiter = LocalWindow::new(limit, SECOND, max_keys);
        let rounding = limiter.shards.len() * limiter.shard_cap - max_keys;
        let busy = hash(u64::MAX);
        let start = 1_700_000_000_000 / w * w;
        // 1 000 000 keys over ten windows; the busy key between every 100.
        let mut busy_admitted = [0u64; 10];
        for i in 0..1_000_000u64 {
            let now = start + i / 100;
            assert!(limiter.check(hash(i), now, 1).admitted);
            if i % 100 == 99 && limiter.check(busy, now, 1).admitted {
                busy_admitted[(i / 100_000) as usize] += 1;
            }
            if i % 10_000 == 0 {
                assert!(limiter.len() <= max_keys + rounding);
            }
        }
        println!(
            "held {} keys; busy key admitted per window {busy_admitted:?}",
            limiter.len()
        );
        assert!(limiter.len() <= max_keys + rounding, "{}", limiter.len());
        assert!(
            limiter.len() >= max_keys - max_keys / 10,
            "{}",
            limiter.len()
        );
        // 1 000 requests a window at a limit of 100: never evicted, it gets
        // its 100 and no more in every window.
        assert!(
            busy_admitted.iter().all(|&n| n <= limit),
            "{busy_admitted:?}"
        );
        assert!(
            busy_admitted.iter().all(|&n| n >= limit - 2),
            "{busy_admitted:?}"
        );
    }

    #[test]
    fn idle_keys_make_room_for_new_ones_without_evicting_live_ones() {
        let (limit, w) = (5u64, 1000u64);
        let limiter = LocalWindow::new(limit, SECOND, 1024);
        assert_eq!((limiter.shards.len(), limiter.shard_cap), (SHARDS, 16));
        let start = 1_700_000_000_000 / w * w;
        // Fill every shard with keys seen once.
        let mut i = 0;
        while limiter.len() < 1024 {
            limiter.check(hash(i), start, 1);
            i += 1;
        }
        // Two windows later, one key per shard is live and used up.
        let later = start + 2 * w;
        let live: Vec<u64> = limiter
            .shards
            .iter()
            .filter_map(|s| lock(&s.0).slots.keys().next().copied())
            .collect();
        assert_eq!(live.len(), SHARDS);
        for &key in &live {
            for _ in 0..limit {
                assert!(limiter.check(key, later, 1).admitted);
            }
        }
        assert_eq!(limiter.len(), 1024);
        // A new key in each shard sweeps the idle ones away.
        let mut fresh = vec![None; SHARDS];
        let mut j = 1 << 40;
        while fresh.iter().any(Option::is_none) {
            let s = limiter.shard_of(hash(j));
            if fresh[s].is_none() {
                assert!(limiter.check(hash(j), later, 1).admitted);
                fresh[s] = Some(j);
            }
            j += 1;
        }
        assert_eq!(limiter.len(), 2 * SHARDS);
        // The live keys kept their counts.
        for key in live {
            assert!(!limiter.check(key, later, 1).admitted);
        }
    }

    #[test]
    fn a_full_shard_of_live_keys_evicts_one_without_sweeping_again() {
        let limiter = LocalWindow::new(5, SECOND, 16);
        assert_eq!((limiter.shards.len(), limiter.shard_cap), (1, 16));
        let start = 1_700_000_000_000;
        for k in 0..16 {
            limiter.check(hash(k), start, 1);
        }
        // A busy key takes the 17th place; later keys evict light ones.
        for _ in 0..5 {
            assert!(limiter.check(hash(100), start, 1).admitted);
        }
        for k in 200..1200 {
            assert!(limiter.check(hash(k), start, 1).admitted);
            assert_eq!(limiter.len(), 16);
        }
        assert!(!limiter.check(hash(100), start, 1).admitted);
        // One sweep (at the 17th key), then evictions straight away.
        assert_eq!(lock(&limiter.shards[0].0).sweeps, 1);
        // A new window sweeps once more.
        assert!(limiter.check(hash(5000), start + 1000, 1).admitted);
        assert!(limiter.check(hash(5001), start + 1000, 1).admitted);
        assert_eq!(lock(&limiter.shards[0].0).sweeps, 2);
    }

    #[test]
    fn four_threads_on_one_key_are_admitted_exactly_the_limit() {
        let year = Duration::from_secs(86_400 * 365);
        let limiter = LocalWindow::new(1000, year, 100);
        // The start of a window.
        let now = 50 * year.as_millis() as u64;
        let admitted: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        (0..10_000)
                            .filter(|_| limiter.check(42, now, 1).admitted)
                            .count()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("no panic"))
                .sum()
        });
        assert_eq!(admitted, 1000);
        let d = limiter.check(42, now, 1);
        assert!(!d.admitted);
        assert!(d.reset > Duration::from_secs(86_400 * 364));
    }
}
