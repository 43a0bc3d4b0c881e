//! IP filters, size limits, threat protection and CORS, through the real
//! gateway in front of a real upstream.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::support::{client, raw, upstreams_yaml, Gateway, Upstream};

/// A gateway with file-level `top` and one route `all` to `up` whose
/// `policies` are `route` (YAML flow map, or empty for none).
fn gateway(up: &Upstream, top: &str, route: &str) -> Gateway {
    let policies = if route.is_empty() {
        String::new()
    } else {
        format!("    policies: {route}\n")
    };
    Gateway::start(&format!(
        "{top}{}routes:\n  - id: all\n    upstream: {}\n{policies}",
        upstreams_yaml(&[up]),
        up.state.name
    ))
}

fn hits(up: &Upstream) -> usize {
    up.state.hits.load(Ordering::SeqCst)
}

// ---- IP filter ----

#[tokio::test(flavor = "multi_thread")]
async fn a_client_outside_the_allow_list_gets_403_and_never_reaches_the_upstream() {
    let up = Upstream::start("a").await;
    let gw = gateway(&up, "", "{ip_filter: {allow: [10.0.0.0/8]}}");
    let resp = raw::get(gw.port, "/x", &[]).await;
    assert_eq!(resp.status, 403);
    assert_eq!(resp.json()["error"], "ip_denied");
    assert_eq!(hits(&up), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spoofed_forwarded_for_from_an_untrusted_peer_cannot_pass_an_allow_list() {
    let up = Upstream::start("a").await;
    let gw = gateway(&up, "", "{ip_filter: {allow: [203.0.113.0/24]}}");
    let resp = raw::get(gw.port, "/x", &["X-Forwarded-For: 203.0.113.9"]).await;
    assert_eq!(resp.status, 403);
    assert_eq!(hits(&up), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn behind_a_trusted_proxy_the_forwarded_client_is_filtered() {
    let up = Upstream::start("a").await;
    let top = "trusted_proxies: [127.0.0.1]\npolicies: {ip_filter: {deny: [198.51.100.0/24]}}\n";
    let gw = gateway(&up, top, "{ip_filter: {allow: [203.0.113.0/24]}}");
    let allowed = raw::get(
        gw.port,
        "/x",
        &["X-Forwarded-For: 198.51.100.1, 203.0.113.9"],
    )
    .await;
    assert_eq!(
        allowed.status, 200,
        "the right-most untrusted address decides"
    );
    // The file's deny list stacks with the route's allow list.
    let denied = raw::get(
        gw.port,
        "/x",
        &["X-Forwarded-For: 203.0.113.9, 198.51.100.1"],
    )
    .await;
    assert_eq!(denied.status, 403);
    let outside = raw::get(gw.port, "/x", &["X-Forwarded-For: 192.0.2.1"]).await;
    assert_eq!(outside.status, 403);
    assert_eq!(hits(&up), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_files_deny_list_answers_unrouted_requests_with_403_not_404() {
    let up = Upstream::start("a").await;
    let gw = Gateway::start(&format!(
        "policies: {{ip_filter: {{deny: [127.0.0.0/8]}}}}\n{}routes:\n  - id: only\n    \
         match: {{path: {{prefix: /only}}}}\n    upstream: a\n",
        upstreams_yaml(&[&up])
    ));
    assert_eq!(raw::get(gw.port, "/elsewhere", &[]).await.status, 403);
    assert_eq!(raw::get(gw.port, "/only", &[]).await.status, 403);
    assert_eq!(hits(&up), 0);
}

// ---- size limits ----

#[tokio::test(flavor = "multi_thread")]
async fn oversized_targets_and_headers_get_414_and_431() {
    let up = Upstream::start("a").await;
    let gw = gateway(
        &up,
        "policies: {limits: {max_uri_bytes: 64, max_headers: 8}}\n",
        "{limits: {max_header_bytes: 2KiB}}",
    );
    let long = format!("/{}", "a".repeat(100));
    let resp = raw::get(gw.port, &long, &[]).await;
    assert_eq!(
        (resp.status, resp.json()["error"].as_str()),
        (414, Some("uri_too_long"))
    );
    let many: Vec<String> = (0..10).map(|i| format!("X-H{i}: v")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert_eq!(raw::get(gw.port, "/x", &many).await.status, 431);
    let big = format!("X-Big: {}", "b".repeat(3000));
    assert_eq!(raw::get(gw.port, "/x", &[&big]).await.status, 431);
    assert_eq!(raw::get(gw.port, "/x", &["X-Small: 1"]).await.status, 200);
    assert_eq!(hits(&up), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_declared_body_over_the_cap_is_a_413_before_any_upstream_contact() {
    let up = Upstream::start("a").await;
    let gw = gateway(&up, "", "{limits: {max_body_bytes: 1000}}");
    let resp = client()
        .post(gw.url("/upload"))
        .body(vec![b'x'; 1001])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "body_too_large");
    assert_eq!(hits(&up), 0);
    let ok = client()
        .post(gw.url("/upload"))
        .body(vec![b'x'; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.text().await.unwrap(), "1000");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_streamed_body_passing_the_cap_is_a_413_and_the_excess_is_not_forwarded() {
    let up = Upstream::start("a").await;
    let gw = gateway(&up, "", "{limits: {max_body_bytes: 1000}}");
    let chunks = (0..10).map(|_| Ok::<_, std::io::Error>(vec![b'y'; 400]));
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let resp = client()
        .post(gw.url("/upload"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let forwarded = up.state.upload_bytes.load(Ordering::SeqCst);
    assert!(forwarded <= 1000, "{forwarded} bytes reached the upstream");
}

// ---- threat protection ----

const THREAT_ROUTE: &str = "{threat_protection: {}}";

#[tokio::test(flavor = "multi_thread")]
async fn sql_injection_in_the_query_is_blocked_with_403_and_logged() {
    let up = Upstream::start("a").await;
    let gw = gateway(&up, "", THREAT_ROUTE);
    let resp = raw::get(gw.port, "/items?id=1%27%20OR%201%3D1--", &[]).await;
    assert_eq!(resp.status, 403);
    assert_eq!(resp.json()["error"], "request_blocked");
    assert_eq!(hits(&up), 0);
    let stderr = gw.stderr();
    assert!(
        stderr.contains("threat detected") && stderr.contains("sqli"),
        "{stderr}"
    );
    assert!(stderr.contains("query:id"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn xss_in_a_json_body_is_blocked_before_the_upstream_is_contacted() {
    let up = Upstream::start("a").await;
    let gw = gateway(&up, "", THREAT_ROUTE);
    let resp = client()
        .post(gw.url("/body"))
        .header("content-type", "application/json")
        .body(r#"{"comment": {"text": "<script>alert(document.cookie)</script>"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(hits(&up), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ordinary_json_body_is_inspected_and_forwarded_byte_for_byte() {
    let up = Upstream::start("a").await;
    let gw = gateway(&up, "", THREAT_ROUTE);
    let body = r#"{"name": "Seán O'Brien", "note": "select the blue one, 3 < 5 & it's fine"}"#;
    for _ in 0..3 {
        let resp = client()
            .post(gw.url("/body"))
            .header("content-type", "application/json; charset=utf-8")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().await.unwrap(), body);
    }
    assert_eq!(hits(&up), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_form_body_too_large_to_inspect_is_refused_unless_the_route_passes_it() {
    let up = Upstream::start("a").await;
    let gw = Gateway::start(&format!(
        "{}routes:
  - id: strict
    match: {{path: {{prefix: /strict}}}}
    upstream: a
    policies: {{threat_protection: {{body_limit: 1KiB}}}}
  - id: lenient
    upstream: a
    policies: {{threat_protection: {{body_limit: 1KiB, oversize_body: pass}}}}
",
        upstreams_yaml(&[&up])
    ));
    let form = format!("q={}", "z".repeat(2000));
    for (path, status) in [("/strict/upload", 413), ("/upload", 200)] {
        let resp = client()
            .post(gw.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{path}");
    }
    assert_eq!(hits(&up), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn log_only_mode_forwards_the_request_and_logs_the_check() {
    let up = Upstream::start("a").await;
    let gw = gateway(&up, "", "{threat_protection: {mode: log}}");
    let resp = raw::get(gw.port, "/search?q=%3Cscript%3Ealert(1)%3C/script%3E", &[]).await;
    assert_eq!(resp.status, 200);
    assert_eq!(hits(&up), 1);
    let stderr = gw.stderr();
    assert!(
        stderr.contains("threat detected") && stderr.contains("xss"),
        "{stderr}"
    );
}

// ---- CORS ----

const CORS_ROUTE: &str = "{cors: {origins: ['https://*.example.com'], methods: [GET, PUT], \
                          headers: [x-token], expose_headers: [x-request-id], \
                          credentials: true, max_age: 600}}";

#[tokio::test(flavor = "multi_thread")]
async fn an_allowed_preflight_is_answered_at_the_gateway() {
    let up = Upstream::start("a").await;
    let gw = gateway(&up, "", CORS_ROUTE);
    let resp = client()
        .request(reqwest::Method::OPTIONS, gw.url("/items/1"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "PUT")
        .header("access-control-request-headers", "X-Token")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let h = resp.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert_eq!(h["access-control-max-age"], "600");
    let methods = h["access-control-allow-methods"].to_str().unwrap();
    assert!(methods.contains("PUT"), "{methods}");
    let headers = h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(headers.contains("x-token"), "{headers}");
    assert_eq!(hits(&up), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_preflight_from_another_origin_or_for_another_method_is_a_403() {
    let up = Upstream::start("a").await;
    let gw = gateway(&up, "", CORS_ROUTE);
    for (origin, method) in [
        ("https://example.com.evil.net", "PUT"),
        ("https://app.example.com", "DELETE"),
    ] {
        let resp = client()
            .request(reqwest::Method::OPTIONS, gw.url("/items/1"))
            .header("origin", origin)
            .header("access-control-request-method", method)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403, "{origin} {method}");
        assert!(resp.headers().get("access-control-allow-origin").is_none());
    }
    assert_eq!(hits(&up), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_preflight_reaches_a_route_that_lists_only_the_method_it_asks_about() {
    let up = Upstream::start("a").await;
    let gw = Gateway::start(&format!(
        "{}routes:
  - id: writes
    match: {{methods: [PUT]}}
    upstream: a
    policies: {{cors: {{origins: ['https://app.example.com'], methods: [PUT]}}}}
",
        upstreams_yaml(&[&up])
    ));
    let resp = client()
        .request(reqwest::Method::OPTIONS, gw.url("/items/1"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "PUT")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
}

#[tokio::test(flavor = "multi_thread")]
async fn actual_responses_and_gateway_refusals_carry_the_cors_headers() {
    let up = Upstream::start("a").await;
    let top = "consumers: [{id: c, credentials: {api_keys: \
               ['sha256:0000000000000000000000000000000000000000000000000000000000000000']}}]\n";
    let gw = Gateway::start(&format!(
        "{top}{}routes:
  - id: open
    match: {{path: {{prefix: /open}}}}
    upstream: a
    policies: {CORS_ROUTE}
  - id: closed
    upstream: a
    auth: {{methods: [api_key]}}
    policies: {CORS_ROUTE}
",
        upstreams_yaml(&[&up])
    ));
    let resp = client()
        .get(gw.url("/open/x"))
        .header("origin", "https://shop.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers();
    assert_eq!(h["access-control-allow-origin"], "https://shop.example.com");
    assert_eq!(
        h["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .to_lowercase(),
        "x-request-id"
    );
    assert!(h
        .get_all("vary")
        .iter()
        .any(|v| v.to_str().unwrap().contains("Origin")));
    let refused = client()
        .get(gw.url("/closed"))
        .header("origin", "https://shop.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let h = refused.headers();
    assert_eq!(h["access-control-allow-origin"], "https://shop.example.com");
    assert!(h.contains_key("www-authenticate"));
    let stranger = client()
        .get(gw.url("/open/x"))
        .header("origin", "https://evil.test")
        .send()
        .await
        .unwrap();
    assert!(stranger
        .headers()
        .get("access-control-allow-origin")
        .is_none());
}
