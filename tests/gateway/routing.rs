//! Routing through the real gateway: host, path, method, header and query
//! predicates, precedence between matching routes, what the upstream sees after
//! strip-prefix, rewrite and `upstream_host`, and path normalisation end to end.
//!
//! Each test names its upstreams `a`, `b`, `c` and reads which one answered from
//! the `x-upstream` header every test upstream sets.

use crate::support::{client, raw, upstreams_yaml, Gateway, Upstream};

/// Which upstream answered a request: its name, or `None` when the gateway
/// answered itself.
struct Answer {
    status: u16,
    upstream: Option<String>,
}

async fn send(req: reqwest::RequestBuilder) -> Answer {
    let resp = req.send().await.unwrap();
    let upstream = resp
        .headers()
        .get("x-upstream")
        .map(|v| v.to_str().unwrap().to_string());
    Answer {
        status: resp.status().as_u16(),
        upstream,
    }
}

/// GET `path` with the given `Host` header.
async fn get_host(gw: &Gateway, host: &str, path: &str) -> Answer {
    send(client().get(gw.url(path)).header("host", host)).await
}

async fn get(gw: &Gateway, path: &str) -> Answer {
    send(client().get(gw.url(path))).await
}

/// Asserts that `answer` came from upstream `name` with a 200.
#[track_caller]
fn served_by(answer: &Answer, name: &str) {
    assert_eq!(
        (answer.status, answer.upstream.as_deref()),
        (200, Some(name)),
        "expected upstream {name} to answer"
    );
}

/// Asserts that the gateway answered 404 itself.
#[track_caller]
fn no_route(answer: &Answer) {
    assert_eq!((answer.status, answer.upstream.as_deref()), (404, None));
}

async fn two_upstreams() -> (Upstream, Upstream) {
    (Upstream::start("a").await, Upstream::start("b").await)
}

fn gateway(upstreams: &[&Upstream], routes: &str) -> Gateway {
    Gateway::start(&format!("{}routes:\n{routes}", upstreams_yaml(upstreams)))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exact_host_route_serves_that_host_in_any_case_and_with_any_port() {
    let (a, b) = two_upstreams().await;
    let gw = gateway(
        &[&a, &b],
        "  - id: api
    match: { hosts: [api.example.com] }
    upstream: a
  - id: other
    upstream: b
",
    );
    served_by(&get_host(&gw, "api.example.com", "/x").await, "a");
    served_by(&get_host(&gw, "API.Example.COM:8443", "/x").await, "a");
    served_by(&get_host(&gw, "www.example.com", "/x").await, "b");
    served_by(&get_host(&gw, "api.example.com.evil", "/x").await, "b");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wildcard_host_matches_subdomains_but_not_the_bare_domain() {
    let (a, b) = two_upstreams().await;
    let gw = gateway(
        &[&a, &b],
        "  - id: wild
    match: { hosts: ['*.example.com'] }
    upstream: a
  - id: other
    upstream: b
",
    );
    served_by(&get_host(&gw, "shop.example.com", "/").await, "a");
    served_by(&get_host(&gw, "a.b.example.com", "/").await, "a");
    served_by(&get_host(&gw, "example.com", "/").await, "b");
    served_by(&get_host(&gw, "badexample.com", "/").await, "b");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exact_path_route_matches_only_that_path() {
    let (a, b) = two_upstreams().await;
    let gw = gateway(
        &[&a, &b],
        "  - id: exact
    match: { path: { exact: /info } }
    upstream: a
  - id: rest
    match: { path: { prefix: / } }
    upstream: b
",
    );
    served_by(&get(&gw, "/info").await, "a");
    served_by(&get(&gw, "/info?verbose=1").await, "a");
    served_by(&get(&gw, "/info/").await, "b");
    served_by(&get(&gw, "/info/x").await, "b");
    served_by(&get(&gw, "/infox").await, "b");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_prefix_route_matches_on_segment_boundaries_only() {
    let a = Upstream::start("a").await;
    let gw = gateway(
        &[&a],
        "  - id: api
    match: { path: { prefix: /api } }
    upstream: a
",
    );
    served_by(&get(&gw, "/api").await, "a");
    served_by(&get(&gw, "/api/").await, "a");
    served_by(&get(&gw, "/api/users/7").await, "a");
    no_route(&get(&gw, "/apix").await);
    no_route(&get(&gw, "/ap").await);
    assert_eq!(a.hits(), 3, "the 404s must not reach the upstream");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_regex_path_route_matches_what_its_pattern_says() {
    let a = Upstream::start("a").await;
    let gw = gateway(
        &[&a],
        r"  - id: versioned
    match: { path: { regex: '^/v[0-9]+/items$' } }
    upstream: a
",
    );
    served_by(&get(&gw, "/v1/items").await, "a");
    served_by(&get(&gw, "/v42/items").await, "a");
    no_route(&get(&gw, "/v1/items/3").await);
    no_route(&get(&gw, "/vx/items").await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_method_predicate_admits_only_the_listed_methods() {
    let (a, b) = two_upstreams().await;
    let gw = gateway(
        &[&a, &b],
        "  - id: writes
    match: { path: { prefix: /things }, methods: [POST, PUT] }
    upstream: a
  - id: reads
    match: { path: { prefix: /things }, methods: [GET] }
    upstream: b
",
    );
    served_by(&send(client().post(gw.url("/things"))).await, "a");
    served_by(&send(client().put(gw.url("/things/1"))).await, "a");
    served_by(&get(&gw, "/things").await, "b");
    no_route(&send(client().delete(gw.url("/things/1"))).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_header_predicate_matches_by_exact_value_or_by_regex() {
    let (a, b) = two_upstreams().await;
    let c = Upstream::start("c").await;
    let gw = gateway(
        &[&a, &b, &c],
        r"  - id: tenant
    match: { headers: [{ name: x-tenant, value: acme }] }
    upstream: a
  - id: v2
    match: { headers: [{ name: x-api-version, regex: '^2\.' }] }
    upstream: b
  - id: rest
    upstream: c
",
    );
    let with = |name: &str, value: &str| client().get(gw.url("/")).header(name, value);
    served_by(&send(with("x-tenant", "acme")).await, "a");
    served_by(&send(with("x-tenant", "ACME")).await, "c");
    served_by(&send(with("x-tenant", "acme-labs")).await, "c");
    served_by(&send(with("x-api-version", "2.1")).await, "b");
    served_by(&send(with("x-api-version", "1.2")).await, "c");
    served_by(&get(&gw, "/").await, "c");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_query_predicate_matches_decoded_parameters() {
    let (a, b) = two_upstreams().await;
    let gw = gateway(
        &[&a, &b],
        "  - id: debug
    match: { query: [{ name: debug, value: 'on' }] }
    upstream: a
  - id: rest
    upstream: b
",
    );
    served_by(&get(&gw, "/search?debug=on").await, "a");
    served_by(&get(&gw, "/search?q=x&debug=%6Fn").await, "a");
    served_by(&get(&gw, "/search?debug=off").await, "b");
    served_by(&get(&gw, "/search?xdebug=on").await, "b");
    served_by(&get(&gw, "/search").await, "b");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exact_host_beats_a_wildcard_listed_before_it() {
    let (a, b) = two_upstreams().await;
    let gw = gateway(
        &[&a, &b],
        "  - id: wild
    match: { hosts: ['*.example.com'] }
    upstream: b
  - id: exact
    match: { hosts: [api.example.com] }
    upstream: a
",
    );
    served_by(&get_host(&gw, "api.example.com", "/").await, "a");
    served_by(&get_host(&gw, "web.example.com", "/").await, "b");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_longer_prefix_beats_a_shorter_one_listed_before_it() {
    let (a, b) = two_upstreams().await;
    let gw = gateway(
        &[&a, &b],
        "  - id: api
    match: { path: { prefix: /api } }
    upstream: a
  - id: api-v2
    match: { path: { prefix: /api/v2 } }
    upstream: b
",
    );
    served_by(&get(&gw, "/api/v2/users").await, "b");
    served_by(&get(&gw, "/api/v2").await, "b");
    served_by(&get(&gw, "/api/v1/users").await, "a");
    served_by(&get(&gw, "/api/v2x").await, "a");
}

#[tokio::test(flavor = "multi_thread")]
async fn config_order_breaks_ties_between_equally_specific_routes() {
    let (a, b) = two_upstreams().await;
    let gw = gateway(
        &[&a, &b],
        "  - id: first
    match: { path: { prefix: /same } }
    upstream: a
  - id: second
    match: { path: { prefix: /same } }
    upstream: b
",
    );
    for _ in 0..3 {
        served_by(&get(&gw, "/same/x").await, "a");
    }
    assert_eq!(b.hits(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn strip_prefix_forwards_the_rest_of_the_path_and_the_query() {
    let a = Upstream::start("a").await;
    let gw = gateway(
        &[&a],
        "  - id: svc
    match: { path: { prefix: /svc } }
    upstream: a
    strip_prefix: true
",
    );
    served_by(&get(&gw, "/svc/users/7?full=1").await, "a");
    served_by(&get(&gw, "/svc").await, "a");
    served_by(&get(&gw, "/svc/").await, "a");
    assert_eq!(
        *a.state.paths.lock().unwrap(),
        ["/users/7?full=1", "/", "/"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_regex_rewrite_changes_the_path_the_upstream_sees() {
    let a = Upstream::start("a").await;
    let gw = gateway(
        &[&a],
        r#"  - id: users
    match: { path: { prefix: /api/users } }
    upstream: a
    rewrite: { regex: '^/api/users(.*)$', replace: '/v2/people$1' }
"#,
    );
    let resp = client()
        .get(gw.url("/api/users/42?fields=name"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["path"], "/v2/people/42");
    assert_eq!(body["query"], "fields=name");
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_host_replaces_the_host_header_and_otherwise_it_passes_through() {
    let (a, b) = two_upstreams().await;
    let gw = gateway(
        &[&a, &b],
        "  - id: internal
    match: { path: { prefix: /internal } }
    upstream: a
    upstream_host: users.internal
  - id: public
    upstream: b
",
    );
    let host_seen = |up: &Upstream| {
        let headers = up.state.last_headers.lock().unwrap();
        let values: Vec<String> = headers
            .get_all("host")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        values
    };
    served_by(
        &get_host(&gw, "Shop.Example.com:8443", "/internal/x").await,
        "a",
    );
    assert_eq!(host_seen(&a), ["users.internal"]);
    served_by(&get_host(&gw, "Shop.Example.com:8443", "/x").await, "b");
    assert_eq!(host_seen(&b), ["Shop.Example.com:8443"]);
}

// Path normalisation end to end. These requests go over a raw socket because
// HTTP clients resolve dot-segments (and some decode `%2e`) before sending.

fn admin_and_public(a: &Upstream, b: &Upstream) -> Gateway {
    gateway(
        &[a, b],
        "  - id: public
    match: { path: { prefix: /public } }
    upstream: a
  - id: admin
    match: { path: { prefix: /admin } }
    upstream: b
",
    )
}

/// Sends `target` raw and returns who answered and the path the upstream saw.
async fn raw_path(gw: &Gateway, target: &str) -> (u16, Option<String>, serde_json::Value) {
    let resp = raw::get(gw.port, target, &[]).await;
    let upstream = resp.header("x-upstream").map(str::to_string);
    let body = if resp.status == 200 {
        resp.json()
    } else {
        serde_json::Value::Null
    };
    (resp.status, upstream, body)
}

#[tokio::test(flavor = "multi_thread")]
async fn spellings_of_admin_reach_the_admin_route_with_the_normalised_path() {
    let (a, b) = two_upstreams().await;
    let gw = admin_and_public(&a, &b);
    for target in [
        "/public/../admin",
        "//admin",
        "/%61dmin",
        "/public/%2e%2e/admin",
    ] {
        let (status, upstream, body) = raw_path(&gw, target).await;
        assert_eq!((status, upstream.as_deref()), (200, Some("b")), "{target}");
        assert_eq!(body["path"], "/admin", "{target}");
    }
    assert_eq!(a.hits(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_encoded_slash_is_not_a_separator_so_dot_dot_cannot_climb_through_it() {
    let (a, b) = two_upstreams().await;
    let gw = admin_and_public(&a, &b);
    let (status, upstream, body) = raw_path(&gw, "/public/..%2Fadmin").await;
    assert_eq!(b.hits(), 0, "the admin upstream must not be reached");
    assert_eq!((status, upstream.as_deref()), (200, Some("a")));
    assert_eq!(body["path"], "/public/..%2Fadmin");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_escape_is_rejected_with_400_before_any_upstream() {
    let (a, b) = two_upstreams().await;
    let gw = admin_and_public(&a, &b);
    for target in ["/%zz", "/admin/%zz", "/public/%4"] {
        let resp = raw::get(gw.port, target, &[]).await;
        assert_eq!(resp.status, 400, "{target}");
        assert_eq!(resp.header("content-type"), Some("application/json"));
        let body = resp.json();
        assert_eq!(body["error"], "bad_request");
        assert_eq!(body["status"], 400);
        assert_eq!(
            Some(body["request_id"].as_str().unwrap()),
            resp.header("x-request-id")
        );
    }
    assert_eq!((a.hits(), b.hits()), (0, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_absolute_form_target_is_routed_and_forwarded_in_origin_form() {
    let (a, b) = two_upstreams().await;
    let gw = admin_and_public(&a, &b);
    for target in [
        "http://127.0.0.1/admin?x=1",
        "http://127.0.0.1/public/%2e%2e/admin?x=1",
    ] {
        let request =
            format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        let resp = raw::send(gw.port, request.as_bytes()).await;
        assert_eq!(
            (resp.status, resp.header("x-upstream")),
            (200, Some("b")),
            "{target}"
        );
    }
    assert_eq!(*b.state.paths.lock().unwrap(), ["/admin?x=1", "/admin?x=1"]);
    assert_eq!(a.hits(), 0);
}
