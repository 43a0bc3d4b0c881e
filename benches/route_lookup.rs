//! Route lookup and path normalisation, the two router steps on every request.
//!
//! `Router::find` is measured on tables of 10, 1,000 and 10,000 routes: a mix of
//! exact hosts, wildcard hosts and host-less routes with exact paths, prefixes and
//! method/header predicates, plus three regex routes whatever the size. One
//! request hits a route near the end of the config, one matches nothing (the
//! slowest lookup: every bucket and the regex routes are tried).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use http::{HeaderMap, HeaderValue, Method};
use portico::config::schema::{MatchSpec, PathMatchSpec, RouteSpec, ValueMatchSpec};
use portico::router::{normalize_path, RequestView, Router};

const REGEX_ROUTES: [&str; 3] = [
    r"^/legacy/[0-9]+/report$",
    r"\.php$",
    r"^/static/.+\.(css|js)$",
];

fn route(index: usize, matches: MatchSpec) -> RouteSpec {
    RouteSpec {
        id: format!("route-{index}"),
        matches,
        upstream: format!("pool-{}", index % 7),
        strip_prefix: false,
        rewrite: None,
        upstream_host: None,
        policies: Default::default(),
        websocket: None,
        cache: None,
        compression: None,
        transform: None,
    }
}

/// Route `i` of the generated table; five routes share each host.
fn generated(i: usize) -> MatchSpec {
    let host = format!("svc{}.example.com", i / 5);
    let prefix = |p: String| Some(PathMatchSpec::Prefix(p));
    match i % 5 {
        0 => MatchSpec {
            hosts: vec![host],
            path: Some(PathMatchSpec::Exact(format!("/v1/items/{i}"))),
            ..MatchSpec::default()
        },
        1 => MatchSpec {
            hosts: vec![host],
            path: prefix(format!("/v1/r{i}")),
            ..MatchSpec::default()
        },
        2 => MatchSpec {
            hosts: vec![host],
            path: prefix(format!("/v1/r{i}")),
            methods: vec!["GET".into(), "POST".into()],
            headers: vec![ValueMatchSpec {
                name: "x-api-version".into(),
                value: Some("2".into()),
                regex: None,
            }],
            ..MatchSpec::default()
        },
        3 => MatchSpec {
            hosts: vec![format!("*.t{}.example.com", i / 5)],
            path: prefix(format!("/r{i}")),
            ..MatchSpec::default()
        },
        _ => MatchSpec {
            path: prefix(format!("/global/r{i}")),
            ..MatchSpec::default()
        },
    }
}

fn table(size: usize) -> Vec<RouteSpec> {
    let regexes = REGEX_ROUTES.iter().map(|re| MatchSpec {
        path: Some(PathMatchSpec::Regex((*re).into())),
        ..MatchSpec::default()
    });
    let rest = (REGEX_ROUTES.len()..size).map(generated);
    regexes
        .chain(rest)
        .enumerate()
        .map(|(i, m)| route(i, m))
        .collect()
}

/// A request that satisfies every predicate of `spec`, and nothing more specific.
struct Request {
    host: String,
    path: String,
    method: Method,
    headers: HeaderMap,
}

impl Request {
    fn hitting(spec: &RouteSpec) -> Request {
        let m = &spec.matches;
        let host = match m.hosts.first() {
            Some(h) => h.replace('*', "app"),
            None => "anything.example.net".into(),
        };
        let path = match &m.path {
            Some(PathMatchSpec::Exact(p)) => p.clone(),
            Some(PathMatchSpec::Prefix(p)) => format!("{p}/orders/17"),
            _ => "/".into(),
        };
        let mut headers = HeaderMap::new();
        headers.insert("user-agent", HeaderValue::from_static("bench"));
        headers.insert("x-api-version", HeaderValue::from_static("2"));
        Request {
            host,
            path,
            method: Method::GET,
            headers,
        }
    }

    fn missing() -> Request {
        Request {
            host: "unknown.example.org".into(),
            path: "/nothing/here/at/all".into(),
            method: Method::GET,
            headers: HeaderMap::new(),
        }
    }

    fn view(&self) -> RequestView<'_> {
        RequestView {
            host: &self.host,
            path: &self.path,
            method: &self.method,
            headers: &self.headers,
            query: Some("page=2"),
        }
    }
}

fn bench_find(c: &mut Criterion) {
    let mut group = c.benchmark_group("router_find");
    for size in [10, 1_000, 10_000] {
        let specs = table(size);
        let router = match Router::new(&specs) {
            Ok(router) => router,
            Err(e) => panic!("generated routes do not compile: {e}"),
        };
        let target = size - 3;
        let hit = Request::hitting(&specs[target]);
        let found = router.find(&hit.view()).map(|r| r.index);
        assert_eq!(
            found,
            Some(target),
            "the hit request must reach route {target}"
        );
        let miss = Request::missing();
        assert!(
            router.find(&miss.view()).is_none(),
            "the miss request must match nothing"
        );

        group.bench_with_input(BenchmarkId::new("hit_near_end", size), &hit, |b, req| {
            let view = req.view();
            b.iter(|| router.find(black_box(&view)).map(|r| r.index))
        });
        group.bench_with_input(BenchmarkId::new("no_match", size), &miss, |b, req| {
            let view = req.view();
            b.iter(|| router.find(black_box(&view)).map(|r| r.index))
        });
    }
    group.finish();
}

fn bench_normalize(c: &mut Criterion) {
    let mut group = c.benchmark_group("normalize_path");
    let clean = "/api/v1/users/12345/orders";
    let dirty = "//api/./v1/%75sers/12345/%2e%2e/12345/orders/%c3%a9/";
    group.bench_function("clean", |b| {
        b.iter(|| normalize_path(black_box(clean)).is_ok())
    });
    group.bench_function("dirty", |b| {
        b.iter(|| normalize_path(black_box(dirty)).is_ok())
    });
    group.finish();
}

criterion_group!(benches, bench_find, bench_normalize);
criterion_main!(benches);
