//! Per-request hot paths besides routing: backend selection for each balancing
//! algorithm, the request metrics, and one access-log line written through the
//! real subscriber to `/dev/null`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use portico::config::schema::{
    AccessLogSpec, BackendSpec, Balance, HashKeySpec, LogFormat, LogTarget, LoggingSpec,
    PassiveHealthSpec, TimeoutsSpec, UpstreamProtocol, UpstreamSpec,
};
use portico::observe::access_log::AccessRecord;
use portico::observe::logging;
use portico::observe::metrics::metrics;
use portico::upstream::resolve::Resolved;
use portico::upstream::Pool;

fn pool(balance: Balance, backends: usize) -> Pool {
    let mut resolved = Resolved::new();
    let specs = (0..backends)
        .map(|i| {
            let address = format!("127.0.0.1:{}", 20000 + i);
            resolved.insert(
                address.clone(),
                vec![address.parse().expect("valid address")],
            );
            BackendSpec {
                address,
                weight: 1 + (i % 3) as u32,
            }
        })
        .collect();
    let spec = UpstreamSpec {
        backends: specs,
        balance,
        hash_key: (balance == Balance::ConsistentHash).then_some(HashKeySpec::ClientIp),
        timeouts: TimeoutsSpec::default(),
        health_check: None,
        passive_health: PassiveHealthSpec::default(),
        retries: 2,
        tls: None,
        circuit_breaker: None,
        protocol: UpstreamProtocol::Http1,
        max_h2_streams: 100,
    };
    Pool::new("bench", &spec, &resolved)
}

fn selection(c: &mut Criterion) {
    let mut group = c.benchmark_group("backend_select_10");
    for (name, balance) in [
        ("round_robin", Balance::RoundRobin),
        ("random", Balance::Random),
        ("least_requests", Balance::LeastRequests),
        ("consistent_hash", Balance::ConsistentHash),
    ] {
        let p = pool(balance, 10);
        group.bench_function(name, |b| {
            b.iter(|| black_box(p.select(black_box(b"10.1.2.3"), &[])))
        });
    }
    group.finish();
}

fn observability(c: &mut Criterion) {
    let logging_spec = LoggingSpec {
        level: "warn".into(),
        format: LogFormat::Json,
    };
    let access = AccessLogSpec {
        target: LogTarget::File,
        path: Some("/dev/null".into()),
    };
    logging::init(&logging_spec, &access).expect("subscriber installs once");
    c.bench_function("access_log_line", |b| {
        b.iter(|| {
            AccessRecord {
                request_id: "3291e524fc89e5fa45bc462dee5d0a06",
                client: "10.1.2.3",
                method: "GET",
                host: "api.example.com",
                path: "/api/orders/1234",
                route: "orders",
                backend: "10.0.0.7:8080",
                status: 200,
                bytes_in: 0,
                bytes_out: 1024,
                upstream_ms: 1.25,
                total_ms: 1.75,
                error: "",
                limited: "",
            }
            .emit()
        })
    });
    let get = http::Method::GET;
    c.bench_function("request_metrics", |b| {
        b.iter(|| metrics().observe_request(black_box("orders"), &get, 200, 0.0015))
    });
}

criterion_group!(benches, selection, observability);
criterion_main!(benches);
