//! GraphQL analysis as a GraphQL route meets it: the body taken apart, the
//! document parsed and measured with fragments expanded, and the route's
//! limits judged, for a small, a medium and a large query. Criterion prints
//! the time per request and the bytes of body analysed per second; the
//! parser alone is measured beside it for scale.

use std::collections::HashSet;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use portico_protocols::graphql::{analyse, extract, inspect, sha256_hex, Limits, Transport};

/// A query of `types` root fields, each selecting `fields` scalar fields and
/// one connection spread through a shared fragment: typical of a page-sized
/// query a client generates.
fn query(types: usize, fields: usize) -> String {
    let scalars: Vec<String> = (0..fields).map(|i| format!("field{i}")).collect();
    let mut q = String::from("query Page($first: Int = 20) {\n");
    for t in 0..types {
        q.push_str(&format!(
            "  item{t}: node{t}(id: \"{t}\") {{ id {} edges(first: $first) {{ ...Edge }} }}\n",
            scalars.join(" ")
        ));
    }
    q.push_str("}\nfragment Edge on Edge { cursor node { id name ...Meta } }\n");
    q.push_str("fragment Meta on Node { createdAt updatedAt owner { id name } }\n");
    q
}

fn body(query: &str) -> Vec<u8> {
    serde_json::json!({"query": query, "operationName": "Page", "variables": {"first": 10}})
        .to_string()
        .into_bytes()
}

fn limits(allowed: &str) -> Limits {
    Limits {
        max_depth: Some(12),
        max_aliases: Some(10_000),
        max_root_fields: Some(10_000),
        max_complexity: Some(u64::MAX),
        max_batch: Some(10),
        introspection: false,
        persisted_queries: Some(HashSet::from([sha256_hex(allowed)])),
    }
}

fn analysis(c: &mut Criterion) {
    let sizes = [
        ("small", query(1, 3)),
        ("medium", query(10, 10)),
        ("large", query(150, 20)),
    ];
    let mut group = c.benchmark_group("graphql_request");
    for (name, q) in &sizes {
        let bytes = body(q);
        let limits = limits(q);
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_with_input(BenchmarkId::new(*name, bytes.len()), &bytes, |b, bytes| {
            b.iter(|| {
                let extracted = extract(Transport::Post {
                    content_type: Some("application/json"),
                    query_string: None,
                    body: black_box(bytes),
                })
                .expect("bench body");
                inspect(&limits, &extracted, false).expect("bench query passes")
            })
        });
    }
    group.finish();
    let mut group = c.benchmark_group("graphql_analyse_only");
    for (name, q) in &sizes {
        group.throughput(Throughput::Bytes(q.len() as u64));
        group.bench_with_input(BenchmarkId::new(*name, q.len()), q, |b, q| {
            b.iter(|| analyse(black_box(q), Some("Page"), None).expect("bench query parses"))
        });
    }
    group.finish();
    // The parser alone, for scale: what analysis adds on top of it.
    let mut group = c.benchmark_group("graphql_parser_only");
    for (name, q) in &sizes {
        group.throughput(Throughput::Bytes(q.len() as u64));
        group.bench_with_input(BenchmarkId::new(*name, q.len()), q, |b, q| {
            b.iter(|| async_graphql_parser::parse_query(black_box(q)).expect("bench query parses"))
        });
    }
    group.finish();
}

criterion_group!(benches, analysis);
criterion_main!(benches);
