//! The indexed lookup against a brute-force reference: on random route sets and
//! requests, `Router::find` must pick the route that sorting every fully matching
//! route by the documented precedence key puts first.

use std::cmp::Reverse;

use http::{HeaderMap, HeaderValue, Method};
use proptest::prelude::*;
use proptest::sample::{select, subsequence};

use super::predicate::{HostPattern, PathPattern};
use super::tests::spec;
use super::{RequestView, Route, Router};
use crate::config::schema::{MatchSpec, PathMatchSpec, RouteSpec, ValueMatchSpec};

/// How specifically a host predicate matched; smaller is more specific.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum HostRank {
    Exact,
    /// A longer wildcard suffix (in bytes) ranks first.
    Wildcard(Reverse<usize>),
    Any,
}

/// How specific a path predicate is; smaller is more specific.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum PathRank {
    Exact,
    /// A longer prefix (in bytes) ranks first.
    Prefix(Reverse<usize>),
    Regex,
    Any,
}

fn host_rank(pattern: &HostPattern, host: &str) -> Option<HostRank> {
    match pattern {
        HostPattern::Exact(name) => (**name == *host).then_some(HostRank::Exact),
        HostPattern::Wildcard(suffix) => {
            let label = host.strip_suffix(&**suffix)?.strip_suffix('.')?;
            (!label.is_empty()).then_some(HostRank::Wildcard(Reverse(suffix.len())))
        }
    }
}

fn path_rank(pattern: &PathPattern, path: &str) -> Option<PathRank> {
    let covers =
        |prefix: &str| prefix == "/" || path == prefix || path.starts_with(&format!("{prefix}/"));
    match pattern {
        PathPattern::Exact(exact) => (**exact == *path).then_some(PathRank::Exact),
        PathPattern::Prefix(prefix) => {
            covers(prefix).then_some(PathRank::Prefix(Reverse(prefix.len())))
        }
        PathPattern::Regex(re) => re.is_match(path).then_some(PathRank::Regex),
    }
}

/// The documented precedence key; smaller ranks first.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Precedence {
    host: HostRank,
    path: PathRank,
    predicates: Reverse<usize>,
    index: usize,
}

/// Tests every predicate directly, without the index.
fn precedence(route: &Route, req: &RequestView<'_>) -> Option<Precedence> {
    let host = if route.hosts.is_empty() {
        HostRank::Any
    } else {
        route
            .hosts
            .iter()
            .filter_map(|h| host_rank(h, req.host))
            .min()?
    };
    let path = match &route.path {
        None => PathRank::Any,
        Some(p) => path_rank(p, req.path)?,
    };
    route.unindexed_predicates_hold(req).then(|| Precedence {
        host,
        path,
        predicates: Reverse(route.predicate_count()),
        index: route.index,
    })
}

fn reference<'r>(router: &'r Router, req: &RequestView<'_>) -> Option<&'r Route> {
    let ranked = router
        .routes()
        .iter()
        .filter_map(|r| precedence(r, req).map(|key| (key, r)));
    ranked.min_by(|a, b| a.0.cmp(&b.0)).map(|(_, route)| route)
}

const HOSTS: &[&str] = &[
    "a.example.com",
    "example.com",
    "*.example.com",
    "*.a.example.com",
    "*.com",
    "b.test",
];
const PATHS: &[&str] = &[
    "/",
    "/api",
    "/api/v1",
    "/api/v1/users",
    "/apix",
    "/a%2Fb",
    "/a",
];
const REGEXES: &[&str] = &["^/api/v[0-9]", "users$", "^/$", "x"];

fn value(name: &str, value: Option<&str>, regex: Option<&str>) -> ValueMatchSpec {
    ValueMatchSpec {
        name: name.into(),
        value: value.map(Into::into),
        regex: regex.map(Into::into),
    }
}

fn path_spec() -> impl Strategy<Value = Option<PathMatchSpec>> {
    let path = || select(PATHS).prop_map(String::from);
    prop_oneof![
        Just(None),
        path().prop_map(|p| Some(PathMatchSpec::Exact(p))),
        path().prop_map(|p| Some(PathMatchSpec::Prefix(p))),
        select(REGEXES).prop_map(|r| Some(PathMatchSpec::Regex(r.into()))),
    ]
}

fn match_spec() -> impl Strategy<Value = MatchSpec> {
    let headers = vec![
        value("x-a", None, None),
        value("x-a", Some("1"), None),
        value("x-b", None, Some("^[0-9]+$")),
    ];
    let query = vec![
        value("q", None, None),
        value("q", Some("1"), None),
        value("r", None, Some("a")),
    ];
    (
        subsequence(HOSTS.to_vec(), 0..=2),
        path_spec(),
        subsequence(vec!["GET", "POST"], 0..=2),
        subsequence(headers, 0..=2),
        subsequence(query, 0..=2),
    )
        .prop_map(|(hosts, path, methods, headers, query)| MatchSpec {
            hosts: hosts.into_iter().map(String::from).collect(),
            path,
            methods: methods.into_iter().map(String::from).collect(),
            headers,
            query,
            grpc: None,
        })
}

fn route_specs() -> impl Strategy<Value = Vec<RouteSpec>> {
    proptest::collection::vec(match_spec(), 0..40).prop_map(|matches| {
        matches
            .into_iter()
            .enumerate()
            .map(|(i, m)| spec(&format!("r{i}"), m))
            .collect()
    })
}

#[derive(Debug, Clone)]
struct Request {
    host: &'static str,
    path: &'static str,
    method: Method,
    headers: HeaderMap,
    query: Option<&'static str>,
}

fn request() -> impl Strategy<Value = Request> {
    let hosts = [
        "a.example.com",
        "x.a.example.com",
        "example.com",
        "www.example.com",
        "foo.com",
        "b.test",
        "other.org",
    ];
    let paths = [
        "/",
        "/api",
        "/api/",
        "/api/v1",
        "/api/v1/users",
        "/api/v2",
        "/apix",
        "/apix/users",
        "/a",
        "/a%2Fb",
        "/a/b",
    ];
    let headers = [("x-a", "1"), ("x-a", "2"), ("x-b", "12"), ("x-b", "ab")];
    let queries = [
        None,
        Some("q"),
        Some("q=1"),
        Some("q=2&r=ab"),
        Some("r=b&q=1"),
    ];
    (
        select(hosts.to_vec()),
        select(paths.to_vec()),
        select(vec![Method::GET, Method::POST, Method::PUT]),
        subsequence(headers.to_vec(), 0..=3),
        select(queries.to_vec()),
    )
        .prop_map(|(host, path, method, pairs, query)| {
            let mut headers = HeaderMap::new();
            for (name, v) in pairs {
                headers.append(name, HeaderValue::from_static(v));
            }
            Request {
                host,
                path,
                method,
                headers,
                query,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn indexed_lookup_picks_the_same_route_as_the_brute_force_reference(
        specs in route_specs(),
        requests in proptest::collection::vec(request(), 1..20),
    ) {
        let router = Router::new(&specs).map_err(|e| TestCaseError::fail(e.to_string()))?;
        for r in &requests {
            let view = RequestView {
                host: r.host,
                path: r.path,
                method: &r.method,
                headers: &r.headers,
                query: r.query,
            };
            let expected = reference(&router, &view).map(|route| route.index);
            prop_assert_eq!(router.find(&view).map(|route| route.index), expected, "{:?}", r);
        }
    }
}
