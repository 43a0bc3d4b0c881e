//! The per-answer work of compression and transformation that is Portico's
//! own: choosing a coding from `Accept-Encoding`, and rewriting a JSON body
//! (parse, three field changes, serialise) of 1 KiB and 64 KiB. The
//! encoders themselves are Pingora's.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use http::HeaderValue;
use portico::config::schema::{Coding, CompressionSpec, JsonBodySpec, Size};
use portico::proxy::compression::RouteCompression;
use portico::proxy::transform::json::JsonRewrite;

fn negotiation(c: &mut Criterion) {
    let spec = CompressionSpec {
        enabled: true,
        algorithms: vec![Coding::Zstd, Coding::Br, Coding::Gzip],
        level: None,
        min_size: Size(1024),
        content_types: vec!["text/*".into()],
    };
    let route = RouteCompression::build(&spec).expect("enabled");
    let mut group = c.benchmark_group("negotiate");
    for accept in [
        "gzip, deflate, br, zstd",
        "gzip;q=1.0, identity;q=0.5, *;q=0",
    ] {
        let field = HeaderValue::from_static(accept);
        group.bench_with_input(BenchmarkId::from_parameter(accept), &field, |b, f| {
            b.iter(|| route.negotiate(std::iter::once(black_box(f))))
        });
    }
    group.finish();
}

fn json_rewrite(c: &mut Criterion) {
    let spec: JsonBodySpec = serde_json::from_value(serde_json::json!({
        "remove": ["user.password"],
        "rename": {"user.name": "user.login"},
        "add": {"meta.gateway": "portico"},
    }))
    .expect("valid spec");
    let mut errors = Vec::new();
    let rewrite = JsonRewrite::build("bench", &spec, &mut errors);
    assert!(errors.is_empty());
    let mut group = c.benchmark_group("json_rewrite");
    for size in [1024usize, 64 * 1024] {
        let body = serde_json::json!({
            "user": {"name": "ann", "password": "hunter2"},
            "items": vec!["an order line"; size / 16],
        })
        .to_string();
        group.bench_with_input(BenchmarkId::from_parameter(body.len()), &body, |b, body| {
            b.iter(|| rewrite.rewrite(black_box(body.as_bytes())))
        });
    }
    group.finish();
}

criterion_group!(benches, negotiation, json_rewrite);
criterion_main!(benches);
