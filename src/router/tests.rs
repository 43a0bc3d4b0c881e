//! Behaviour of the route table: matching, precedence and forwarded paths.

use http::{HeaderMap, HeaderValue, Method};

use super::{RequestView, Router, RouterErrorKind};
use crate::config::schema::{MatchSpec, PathMatchSpec, RewriteSpec, RouteSpec, ValueMatchSpec};

pub(super) fn spec(id: &str, matches: MatchSpec) -> RouteSpec {
    RouteSpec {
        id: id.into(),
        matches,
        upstream: format!("{id}-pool"),
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

fn on_path(path: PathMatchSpec) -> MatchSpec {
    MatchSpec {
        path: Some(path),
        ..MatchSpec::default()
    }
}

fn prefix(p: &str) -> MatchSpec {
    on_path(PathMatchSpec::Prefix(p.into()))
}

fn value(name: &str, value: Option<&str>, regex: Option<&str>) -> ValueMatchSpec {
    ValueMatchSpec {
        name: name.into(),
        value: value.map(Into::into),
        regex: regex.map(Into::into),
    }
}

fn router(specs: Vec<RouteSpec>) -> Router {
    match Router::new(&specs) {
        Ok(router) => router,
        Err(e) => panic!("routes do not compile: {e}"),
    }
}

/// A request builder; `find` returns the id of the chosen route.
struct Req {
    host: &'static str,
    path: &'static str,
    method: Method,
    headers: HeaderMap,
    query: Option<&'static str>,
}

fn get(host: &'static str, path: &'static str) -> Req {
    Req {
        host,
        path,
        method: Method::GET,
        headers: HeaderMap::new(),
        query: None,
    }
}

impl Req {
    fn method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }

    fn header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.append(name, HeaderValue::from_static(value));
        self
    }

    fn query(mut self, query: &'static str) -> Self {
        self.query = Some(query);
        self
    }

    fn find(&self, router: &Router) -> Option<String> {
        let view = RequestView {
            host: self.host,
            path: self.path,
            method: &self.method,
            headers: &self.headers,
            query: self.query,
        };
        router.find(&view).map(|route| route.id.to_string())
    }
}

fn found(id: &str) -> Option<String> {
    Some(id.to_owned())
}

#[test]
fn a_prefix_matches_on_segment_boundaries_so_api_does_not_match_apix() {
    let table = router(vec![spec("api", prefix("/api"))]);
    for path in ["/api", "/api/", "/api/x/y"] {
        assert_eq!(get("h", path).find(&table), found("api"), "{path}");
    }
    assert_eq!(get("h", "/apix").find(&table), None);
    assert_eq!(get("h", "/ap").find(&table), None);
}

#[test]
fn a_root_prefix_matches_every_path() {
    let table = router(vec![spec("root", prefix("/"))]);
    for path in ["/", "/a", "/a/b/"] {
        assert_eq!(get("h", path).find(&table), found("root"), "{path}");
    }
}

#[test]
fn an_encoded_slash_is_not_a_segment_boundary() {
    let table = router(vec![spec("ab", prefix("/a/b"))]);
    assert_eq!(get("h", "/a%2Fb").find(&table), None);
    assert_eq!(get("h", "/a/b/c").find(&table), found("ab"));
}

#[test]
fn a_wildcard_host_matches_subdomains_but_not_the_bare_domain() {
    let wild = MatchSpec {
        hosts: vec!["*.example.com".into()],
        ..MatchSpec::default()
    };
    let table = router(vec![spec("wild", wild)]);
    assert_eq!(get("a.example.com", "/").find(&table), found("wild"));
    assert_eq!(get("a.b.example.com", "/").find(&table), found("wild"));
    assert_eq!(get("example.com", "/").find(&table), None);
    assert_eq!(get("badexample.com", "/").find(&table), None);
}

#[test]
fn an_exact_host_beats_a_wildcard_which_beats_any_host() {
    let hosts = |h: &str| MatchSpec {
        hosts: vec![h.into()],
        ..prefix("/")
    };
    let table = router(vec![
        spec("any", prefix("/")),
        spec("short-wild", hosts("*.com")),
        spec("wild", hosts("*.example.com")),
        spec("exact", hosts("api.example.com")),
    ]);
    assert_eq!(get("api.example.com", "/x").find(&table), found("exact"));
    assert_eq!(get("www.example.com", "/x").find(&table), found("wild"));
    assert_eq!(get("other.com", "/x").find(&table), found("short-wild"));
    assert_eq!(get("other.org", "/x").find(&table), found("any"));
}

#[test]
fn host_specificity_outranks_path_specificity() {
    let exact_path = on_path(PathMatchSpec::Exact("/login".into()));
    let on_host = MatchSpec {
        hosts: vec!["app.test".into()],
        ..MatchSpec::default()
    };
    let table = router(vec![spec("path", exact_path), spec("host", on_host)]);
    assert_eq!(get("app.test", "/login").find(&table), found("host"));
    assert_eq!(get("other.test", "/login").find(&table), found("path"));
}

#[test]
fn the_longer_prefix_wins_and_exact_beats_prefix_and_regex() {
    let table = router(vec![
        spec("none", MatchSpec::default()),
        spec(
            "regex",
            on_path(PathMatchSpec::Regex("^/api/v[0-9]+/".into())),
        ),
        spec("short", prefix("/api")),
        spec("long", prefix("/api/v1")),
        spec(
            "exact",
            on_path(PathMatchSpec::Exact("/api/v1/users".into())),
        ),
    ]);
    assert_eq!(get("h", "/api/v1/users").find(&table), found("exact"));
    assert_eq!(get("h", "/api/v1/orders").find(&table), found("long"));
    assert_eq!(get("h", "/api/v2/orders").find(&table), found("short"));
    assert_eq!(get("h", "/x/api/v2/").find(&table), found("none"));
}

#[test]
fn a_path_regex_is_not_anchored() {
    let table = router(vec![spec(
        "re",
        on_path(PathMatchSpec::Regex("/v[0-9]+/".into())),
    )]);
    assert_eq!(get("h", "/api/v2/x").find(&table), found("re"));
    assert_eq!(get("h", "/api/vx/x").find(&table), None);
}

#[test]
fn methods_headers_and_query_must_all_hold() {
    let strict = MatchSpec {
        methods: vec!["POST".into()],
        headers: vec![value("x-tenant", Some("blue"), None)],
        query: vec![value("v", None, Some("^[0-9]+$"))],
        ..prefix("/api")
    };
    let table = router(vec![spec("strict", strict)]);
    let ok = || {
        get("h", "/api/x")
            .method(Method::POST)
            .header("x-tenant", "blue")
            .query("v=12")
    };
    assert_eq!(ok().find(&table), found("strict"));
    assert_eq!(ok().method(Method::GET).find(&table), None);
    assert_eq!(
        get("h", "/api")
            .method(Method::POST)
            .query("v=1")
            .find(&table),
        None
    );
    assert_eq!(ok().query("v=1x").find(&table), None);
}

#[test]
fn header_values_are_case_sensitive_and_any_repeated_value_counts() {
    let m = MatchSpec {
        headers: vec![value("x-env", Some("prod"), None)],
        ..prefix("/")
    };
    let table = router(vec![spec("prod", m)]);
    assert_eq!(get("h", "/").header("x-env", "PROD").find(&table), None);
    let twice = get("h", "/").header("x-env", "dev").header("x-env", "prod");
    assert_eq!(twice.find(&table), found("prod"));
    assert_eq!(
        get("h", "/").header("X-Env", "prod").find(&table),
        found("prod")
    );
}

#[test]
fn a_presence_predicate_only_needs_the_name() {
    let m = MatchSpec {
        headers: vec![value("authorization", None, None)],
        query: vec![value("debug", None, None)],
        ..MatchSpec::default()
    };
    let table = router(vec![spec("present", m)]);
    let req = || get("h", "/").header("authorization", "x");
    assert_eq!(req().query("a=1&debug").find(&table), found("present"));
    assert_eq!(req().query("debug=").find(&table), found("present"));
    assert_eq!(req().query("debugx=1").find(&table), None);
    assert_eq!(req().find(&table), None);
}

#[test]
fn query_names_and_values_are_percent_decoded() {
    let m = MatchSpec {
        query: vec![value("user name", Some("a&b"), None)],
        ..MatchSpec::default()
    };
    let table = router(vec![spec("q", m)]);
    assert_eq!(
        get("h", "/").query("x=1&user%20name=a%26b").find(&table),
        found("q")
    );
    assert_eq!(get("h", "/").query("user+name=a%26b").find(&table), None);
}

#[test]
fn more_predicates_beat_fewer_on_the_same_path() {
    let with_method = MatchSpec {
        methods: vec!["GET".into()],
        ..prefix("/a")
    };
    let with_two = MatchSpec {
        methods: vec!["GET".into()],
        headers: vec![value("x-beta", None, None)],
        ..prefix("/a")
    };
    let table = router(vec![
        spec("plain", prefix("/a")),
        spec("one", with_method),
        spec("two", with_two),
    ]);
    assert_eq!(
        get("h", "/a").header("x-beta", "1").find(&table),
        found("two")
    );
    assert_eq!(get("h", "/a").find(&table), found("one"));
    assert_eq!(
        get("h", "/a").method(Method::PUT).find(&table),
        found("plain")
    );
}

#[test]
fn config_order_breaks_ties() {
    let table = router(vec![
        spec("first", prefix("/a")),
        spec("second", prefix("/a")),
    ]);
    assert_eq!(get("h", "/a/b").find(&table), found("first"));
}

#[test]
fn a_request_matching_nothing_finds_no_route() {
    let on_host = MatchSpec {
        hosts: vec!["a.test".into()],
        ..prefix("/api")
    };
    let table = router(vec![spec("api", on_host)]);
    assert_eq!(get("b.test", "/api").find(&table), None);
    assert_eq!(get("a.test", "/other").find(&table), None);
    assert_eq!(get("a.test", "/other").find(&router(Vec::new())), None);
}

#[test]
fn strip_prefix_removes_the_matched_prefix_and_keeps_the_rest() {
    let mut s = spec("api", prefix("/api"));
    s.strip_prefix = true;
    let table = router(vec![s]);
    let route = &table.routes()[0];
    assert_eq!(route.forward_path("/api/users"), "/users");
    assert_eq!(route.forward_path("/api/users/"), "/users/");
    assert_eq!(route.forward_path("/api"), "/");
    assert_eq!(route.forward_path("/api/"), "/");
}

#[test]
fn rewrite_replaces_with_captures() {
    let mut s = spec("rw", prefix("/old"));
    s.rewrite = Some(RewriteSpec {
        regex: "^/old/(\\w+)/(.*)$".into(),
        replace: "/new/$2/${1}x".into(),
    });
    let table = router(vec![s]);
    let route = &table.routes()[0];
    assert_eq!(route.forward_path("/old/users/42"), "/new/42/usersx");
    assert_eq!(route.forward_path("/elsewhere"), "/elsewhere");
}

#[test]
fn a_route_without_rewrite_forwards_the_path_unchanged() {
    let table = router(vec![spec("plain", prefix("/a"))]);
    assert_eq!(table.routes()[0].forward_path("/a/b"), "/a/b");
}

#[test]
fn config_paths_are_normalised_like_request_paths() {
    let table = router(vec![spec(
        "admin",
        on_path(PathMatchSpec::Exact("/%61dmin".into())),
    )]);
    assert_eq!(get("h", "/admin").find(&table), found("admin"));
}

#[test]
fn invalid_routes_are_errors_not_panics() {
    let mut strip_on_exact = spec("s", on_path(PathMatchSpec::Exact("/a".into())));
    strip_on_exact.strip_prefix = true;
    let cases = [
        (
            spec("r", on_path(PathMatchSpec::Regex("(".into()))),
            "InvalidRegex",
        ),
        (spec("p", prefix("/a/")), "PrefixTrailingSlash"),
        (spec("p", prefix("a")), "InvalidPath"),
        (
            spec(
                "h",
                MatchSpec {
                    hosts: vec!["a.*.com".into()],
                    ..MatchSpec::default()
                },
            ),
            "InvalidHost",
        ),
        (
            spec(
                "m",
                MatchSpec {
                    methods: vec!["GE T".into()],
                    ..MatchSpec::default()
                },
            ),
            "InvalidMethod",
        ),
        (strip_on_exact, "StripPrefixWithoutPrefix"),
    ];
    for (route, expected) in cases {
        match Router::new(&[route]) {
            Err(e) => assert!(format!("{:?}", e.kind).starts_with(expected), "{e}"),
            Ok(_) => panic!("{expected} was accepted"),
        }
    }
}

#[test]
fn a_repeated_route_id_is_an_error() {
    let result = Router::new(&[spec("a", prefix("/a")), spec("a", prefix("/b"))]);
    assert!(matches!(
        result.map_err(|e| e.kind),
        Err(RouterErrorKind::DuplicateId { first: 0 })
    ));
}
