//! Proxy correctness: what crosses the gateway in each direction (forwarding
//! headers, request ids, hop-by-hop headers), cleartext HTTP/2 towards an
//! HTTP/1.1 upstream, and what each request leaves behind in the access log and
//! the metrics.

use std::time::Duration;

use bytes::Bytes;

use crate::support::{client, free_port, raw, upstreams_yaml, Gateway, Upstream};

#[tokio::test(flavor = "multi_thread")]
async fn a_request_is_proxied_to_its_route_upstream() {
    let up = Upstream::start("a").await;
    let gw = Gateway::start(&format!(
        "upstreams:
  a:
    backends: [{{ address: \"{}\" }}]
routes:
  - id: all
    match: {{ path: {{ prefix: / }} }}
    upstream: a
",
        up.addr
    ));
    let resp = client().get(gw.url("/hello?x=1")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-upstream"], "a");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["path"], "/hello");
    assert_eq!(body["query"], "x=1");
}

/// A gateway with `top` (top-level settings such as `trusted_proxies`) and one
/// route `all` sending everything to `up`.
fn gateway_to(up: &Upstream, top: &str) -> Gateway {
    Gateway::start(&format!(
        "{top}{}routes:\n  - id: all\n    upstream: {}\n",
        upstreams_yaml(&[up]),
        up.state.name
    ))
}

/// Every value of header `name` in the last request `up` received.
fn seen(up: &Upstream, name: &str) -> Vec<String> {
    let headers = up.state.last_headers.lock().unwrap();
    headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

fn h2_client() -> reqwest::Client {
    reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(30))
        .no_proxy()
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forwarded_for_from_an_untrusted_peer_is_replaced_by_the_peer_address() {
    let up = Upstream::start("a").await;
    let gw = gateway_to(&up, "");
    let resp = client()
        .get(gw.url("/"))
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-request-id", "xff-untrusted")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(seen(&up, "x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(gw.access_line("xff-untrusted")["client"], "127.0.0.1");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forwarded_for_chain_from_a_trusted_proxy_is_kept_and_extended() {
    let up = Upstream::start("a").await;
    let gw = gateway_to(&up, "trusted_proxies: [127.0.0.1/32]\n");
    let resp = client()
        .get(gw.url("/"))
        .header("x-forwarded-for", "203.0.113.9, 10.1.2.3")
        .header("x-request-id", "xff-trusted")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        seen(&up, "x-forwarded-for"),
        ["203.0.113.9, 10.1.2.3, 127.0.0.1"]
    );
    // The right-most address that is not a trusted proxy is the client.
    assert_eq!(gw.access_line("xff-trusted")["client"], "10.1.2.3");
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarded_proto_and_host_describe_the_request_the_gateway_received() {
    let up = Upstream::start("a").await;
    let gw = gateway_to(&up, "");
    let resp = client()
        .get(gw.url("/"))
        .header("host", "shop.example.com:8443")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "spoofed.example.net")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(seen(&up, "x-forwarded-proto"), ["http"]);
    assert_eq!(seen(&up, "x-forwarded-host"), ["shop.example.com:8443"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_request_id_is_generated_and_reaches_upstream_client_and_access_log() {
    let up = Upstream::start("a").await;
    let gw = gateway_to(&up, "");
    let resp = client().get(gw.url("/traced")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(id.len(), 32, "a generated id is 32 hex digits: {id}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    assert_eq!(seen(&up, "x-request-id"), std::slice::from_ref(&id));
    let line = gw.access_line(&id);
    assert_eq!(line["path"], "/traced");
    assert_eq!(line["status"], 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_supplied_request_id_is_kept_end_to_end() {
    let up = Upstream::start("a").await;
    let gw = gateway_to(&up, "");
    let resp = client()
        .get(gw.url("/"))
        .header("x-request-id", "order-7.retry_2")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-request-id"], "order-7.retry_2");
    assert_eq!(seen(&up, "x-request-id"), ["order-7.retry_2"]);
    assert_eq!(gw.access_line("order-7.retry_2")["status"], 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn hop_by_hop_request_headers_do_not_reach_the_upstream() {
    let up = Upstream::start("a").await;
    let gw = gateway_to(&up, "");
    let headers = [
        "Connection: x-foo",
        "X-Foo: secret",
        "Keep-Alive: timeout=5",
        "Proxy-Connection: keep-alive",
        "X-Kept: yes",
    ];
    let resp = raw::get(gw.port, "/", &headers).await;
    assert_eq!(resp.status, 200);
    for name in ["x-foo", "keep-alive", "proxy-connection"] {
        assert_eq!(
            seen(&up, name),
            Vec::<String>::new(),
            "{name} crossed the gateway"
        );
    }
    for value in seen(&up, "connection") {
        assert!(
            !value.to_ascii_lowercase().contains("x-foo"),
            "connection: {value}"
        );
    }
    assert_eq!(seen(&up, "x-kept"), ["yes"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn hop_by_hop_response_headers_do_not_reach_the_client() {
    let up = Upstream::start("a").await;
    let gw = gateway_to(&up, "");
    let resp = raw::get(gw.port, "/hop", &[]).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"hop");
    assert_eq!(resp.header("x-upstream"), Some("a"));
    assert!(!resp.has_header("x-secret"), "headers: {:?}", resp.headers);
    assert!(
        !resp.has_header("keep-alive"),
        "headers: {:?}",
        resp.headers
    );
    let connection = resp.header("connection").unwrap_or("").to_ascii_lowercase();
    assert!(!connection.contains("x-secret"), "connection: {connection}");
}

#[tokio::test(flavor = "multi_thread")]
async fn cleartext_http2_with_prior_knowledge_is_proxied_to_an_http1_upstream() {
    let up = Upstream::start("a").await;
    let gw = gateway_to(&up, "");
    let resp = h2_client().get(gw.url("/h2?x=1")).send().await.unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-upstream"], "a");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["path"], "/h2");
    assert_eq!(body["query"], "x=1");
    // An HTTP/1.1 upstream needs a Host; it is made from the :authority.
    assert_eq!(seen(&up, "host"), [format!("127.0.0.1:{}", gw.port)]);
    // X-Forwarded-Host keeps the port over HTTP/2 as it does over HTTP/1.1.
    assert_eq!(
        seen(&up, "x-forwarded-host"),
        [format!("127.0.0.1:{}", gw.port)]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn http2_post_bodies_arrive_intact_and_the_pooled_upstream_connection_stays_usable() {
    let up = Upstream::start("a").await;
    let gw = gateway_to(&up, "");
    let h2 = h2_client();
    let parts: Vec<Bytes> = (0..4u8)
        .map(|i| Bytes::from(vec![b'a' + i; 20_000]))
        .collect();
    let payload: Vec<u8> = parts.concat();
    // A streamed body has no length, so it goes upstream chunked, and the
    // client ends it with an empty DATA frame: the case that once wrote a
    // second chunk terminator and left the pooled connection out of step.
    for attempt in 0..3 {
        let stream =
            futures_util::stream::iter(parts.clone().into_iter().map(Ok::<_, std::io::Error>));
        let resp = h2
            .post(gw.url("/body"))
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.version(), reqwest::Version::HTTP_2);
        assert_eq!(resp.status(), 200, "attempt {attempt}");
        let echoed = resp.bytes().await.unwrap();
        assert!(
            echoed == payload,
            "attempt {attempt}: {} bytes came back",
            echoed.len()
        );
    }
    assert_eq!(up.hits(), 3);
    assert!(
        up.connections() < 3,
        "no upstream connection was reused ({} for 3 requests)",
        up.connections()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn each_request_writes_one_access_log_line_with_every_field() {
    let up = Upstream::start("a").await;
    let gw = gateway_to(&up, "");
    let get = client()
        .get(gw.url("/items?page=2"))
        .header("x-request-id", "log-get");
    let get = get.send().await.unwrap();
    let get_len = get.bytes().await.unwrap().len();
    let post = client()
        .post(gw.url("/upload"))
        .header("x-request-id", "log-post")
        .body("hello world");
    assert_eq!(post.send().await.unwrap().text().await.unwrap(), "11");

    let line = gw.access_line("log-get");
    // The time of the request is under `timestamp`, as the README documents it.
    for key in [
        "timestamp",
        "request_id",
        "client",
        "method",
        "host",
        "path",
        "route",
        "backend",
        "status",
        "bytes_in",
        "bytes_out",
        "upstream_ms",
        "total_ms",
    ] {
        assert!(line.get(key).is_some(), "no {key} in {line}");
    }
    let time = line["timestamp"].as_str().unwrap_or("");
    assert!(
        time.len() >= 20 && time.contains('T') && time.ends_with('Z'),
        "time: {time}"
    );
    assert_eq!(line["client"], "127.0.0.1");
    assert_eq!(line["method"], "GET");
    assert_eq!(line["host"], "127.0.0.1");
    assert_eq!(line["path"], "/items");
    assert_eq!(line["route"], "all");
    assert_eq!(line["backend"], up.addr.to_string());
    assert_eq!(line["status"], 200);
    assert_eq!(line["bytes_in"], 0);
    assert_eq!(line["bytes_out"], get_len);
    let (upstream_ms, total_ms) = (line["upstream_ms"].as_f64(), line["total_ms"].as_f64());
    assert!(upstream_ms.is_some_and(|u| u > 0.0), "{line}");
    assert!(total_ms >= upstream_ms, "{line}");

    let line = gw.access_line("log-post");
    assert_eq!(
        (&line["method"], &line["path"]),
        (&"POST".into(), &"/upload".into())
    );
    assert_eq!(
        (&line["bytes_in"], &line["bytes_out"]),
        (&11.into(), &2.into())
    );
    assert_eq!(gw.access_log().len(), 2, "one line per request");
}

/// The value of one exact series (`name{labels}`) in Prometheus text.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.rsplit_once(' ').filter(|(s, _)| *s == series))
        .and_then(|(_, v)| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_requests_by_route_method_and_status_class() {
    let up = Upstream::start("a").await;
    let gw = Gateway::start(&format!(
        "{}routes:\n  - id: api\n    match: {{ path: {{ prefix: /api }} }}\n    upstream: a\n",
        upstreams_yaml(&[&up])
    ));
    for i in 0..3 {
        let resp = client()
            .get(gw.url(&format!("/api/{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let post = client().post(gw.url("/api/x")).send().await.unwrap();
    assert_eq!(post.status(), 200);
    let miss = client()
        .get(gw.url("/elsewhere"))
        .header("x-request-id", "last")
        .send()
        .await;
    assert_eq!(miss.unwrap().status(), 404);
    // Metrics are recorded just before the access-log line is written.
    gw.access_line("last");

    let text = gw.metrics();
    let count = |series: &str| sample(&text, series);
    assert_eq!(
        count(r#"portico_requests_total{method="GET",route="api",status="2xx"}"#),
        Some(3.0)
    );
    assert_eq!(
        count(r#"portico_requests_total{method="POST",route="api",status="2xx"}"#),
        Some(1.0)
    );
    assert_eq!(
        count(r#"portico_requests_total{method="GET",route="-",status="4xx"}"#),
        Some(1.0)
    );
    assert_eq!(
        count(r#"portico_request_duration_seconds_count{route="api"}"#),
        Some(4.0)
    );
    assert_eq!(
        count(r#"portico_request_duration_seconds_bucket{route="api",le="+Inf"}"#),
        Some(4.0)
    );
    assert_eq!(
        count(r#"portico_request_duration_seconds_bucket{route="api",le="10"}"#),
        Some(4.0)
    );
    let healthy = format!(
        r#"portico_backend_healthy{{backend="{}",upstream="a"}}"#,
        up.addr
    );
    assert_eq!(count(&healthy), Some(1.0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_upstream_connect_is_counted_per_backend() {
    let dead = format!("127.0.0.1:{}", free_port());
    let gw = Gateway::start(&format!(
        "upstreams:
  dead:
    backends: [{{ address: \"{dead}\" }}]
    retries: 0
routes:
  - id: dead
    upstream: dead
"
    ));
    let resp = client()
        .get(gw.url("/"))
        .header("x-request-id", "refused")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    gw.access_line("refused");
    let series =
        format!(r#"portico_upstream_connect_failures_total{{backend="{dead}",upstream="dead"}}"#);
    assert_eq!(sample(&gw.metrics(), &series), Some(1.0));
}
