//! The local rate limiter (`limit::window::LocalWindow`): one decision on a
//! single key, on keys rotating over a million, and four threads at once on
//! one key and on distinct keys.
//!
//! Time is synthetic (milliseconds advancing with the iterations), so the
//! figures are the limiter's own, without a clock read.

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use portico::limit::window::LocalWindow;

/// A window start, in ms since the Unix epoch.
const BASE_MS: u64 = 1_700_000_000_000;

/// A well-mixed 64-bit value of `i`, standing for a key's hash.
fn hash(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn single_thread(c: &mut Criterion) {
    let mut group = c.benchmark_group("rate_limit");

    // 100 a second, one request a millisecond: after the first hundred of a
    // window, admissions and refusals alternate with the decay.
    let limiter = LocalWindow::new(100, Duration::from_secs(1), 10_000);
    let key = hash(1);
    let mut now = BASE_MS;
    group.bench_function("one_key", |b| {
        b.iter(|| {
            now += 1;
            black_box(limiter.check(black_box(key), now, 1))
        })
    });

    // The same key under a limit it never reaches: the admission path alone.
    let limiter = LocalWindow::new(u64::from(u32::MAX), Duration::from_secs(1), 10_000);
    let mut now = BASE_MS;
    group.bench_function("one_key_admitted", |b| {
        b.iter(|| {
            now += 1;
            black_box(limiter.check(black_box(key), now, 1))
        })
    });

    // A million keys, each seen once a rotation, all held (in one hour-long
    // window, so that none goes idle). Shards hold ceil(1M / 64) each and
    // keys do not spread exactly evenly, so the fullest shards evict (and
    // re-insert) a few of their keys on every rotation.
    const KEYS: u64 = 1_000_000;
    let limiter = LocalWindow::new(1000, Duration::from_secs(3600), KEYS as usize);
    let keys: Vec<u64> = (0..KEYS).map(hash).collect();
    for &k in &keys {
        limiter.check(k, BASE_MS, 1);
    }
    let mut i = 0usize;
    group.bench_function("1m_keys", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            black_box(limiter.check(black_box(keys[i]), BASE_MS + 1, 1))
        })
    });
    group.finish();
}

/// Four threads making `iters` decisions each, on keys `key(thread, i)`;
/// the time is the wall time of the whole, so the figure reported is the
/// time per decision on one thread (four decisions complete in that time).
fn four_threads(
    limiter: &LocalWindow,
    iters: u64,
    key: impl Fn(u64, u64) -> u64 + Sync,
) -> Duration {
    const THREADS: u64 = 4;
    let barrier = Barrier::new(THREADS as usize + 1);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (barrier, key) = (&barrier, &key);
            s.spawn(move || {
                barrier.wait();
                for i in 0..iters {
                    black_box(limiter.check(key(t, i), BASE_MS + i / 16, 1));
                }
                barrier.wait();
            });
        }
        barrier.wait();
        let start = Instant::now();
        barrier.wait();
        start.elapsed()
    })
}

fn contended(c: &mut Criterion) {
    let mut group = c.benchmark_group("rate_limit");
    let limiter = LocalWindow::new(100, Duration::from_secs(1), 100_000);
    let one = hash(1);
    group.bench_function(BenchmarkId::new("contended_4_threads", "same_key"), |b| {
        b.iter_custom(|iters| four_threads(&limiter, iters, |_, _| one))
    });

    // Each thread rotates over 1 024 keys of its own, spread over the shards.
    let limiter = LocalWindow::new(100, Duration::from_secs(1), 100_000);
    let keys: Vec<Vec<u64>> = (0..4u64)
        .map(|t| (0..1024).map(|i| hash(t << 32 | i)).collect())
        .collect();
    group.bench_function(
        BenchmarkId::new("contended_4_threads", "distinct_keys"),
        |b| {
            b.iter_custom(|iters| {
                four_threads(&limiter, iters, |t, i| {
                    keys[t as usize][(i % 1024) as usize]
                })
            })
        },
    );
    group.finish();
}

criterion_group!(benches, single_thread, contended);
criterion_main!(benches);
