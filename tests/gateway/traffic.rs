//! Traffic control through the real gateway: rate limits with their headers,
//! keys that cannot be dodged, tiers, in-flight caps, circuit breaking, and
//! limits shared by two gateways through a real Redis.

use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::support::redis::RedisServer;
use crate::support::{client, eventually, upstreams_yaml, Gateway, Upstream};

/// `rate_limiting` with `limits` (YAML map entries, indented 4) and `extra`
/// lines of the section (indented 2).
fn rate_limiting(limits: &str, extra: &str) -> String {
    format!("rate_limiting:\n  limits:\n{limits}{extra}")
}

/// A gateway in front of `up` with route `r` (prefix `/`) whose policies
/// are `policies`, and `top` beside it.
fn gateway(up: &Upstream, top: &str, policies: &str) -> Gateway {
    let name = &up.state.name;
    Gateway::start(&format!(
        "{top}{}routes:\n  - {{id: r, upstream: {name}, policies: {policies}}}\n",
        upstreams_yaml(&[up])
    ))
}

async fn get(url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = client().get(url);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.send().await.unwrap()
}

fn header(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// A route `/ID` to upstream `app` under the one rate limit `limit`.
fn limited_route(id: &str, limit: &str) -> String {
    format!(
        "  - {{id: {id}, match: {{path: {{prefix: /{id}}}}}, upstream: app, \
         policies: {{rate_limits: [{limit}]}}}}\n"
    )
}

/// The statuses of `n` GETs of `path`, in order.
async fn statuses(gw: &Gateway, path: &str, n: usize, headers: &[(&str, &str)]) -> Vec<u16> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(get(&gw.url(path), headers).await.status().as_u16());
    }
    out
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|&&s| s == status).count()
}

#[tokio::test]
async fn a_limit_refuses_the_excess_with_429_and_reports_itself_in_ietf_headers() {
    let up = Upstream::start("app").await;
    let top = rate_limiting("    five: {limit: 5, window: 1h, key: client}\n", "");
    let gw = gateway(&up, &top, "{rate_limits: [five]}");

    let first = get(&gw.url("/x"), &[]).await;
    assert_eq!(first.status(), 200);
    assert_eq!(header(&first, "ratelimit-policy"), "\"five\";q=5;w=3600");
    assert!(
        header(&first, "ratelimit").starts_with("\"five\";r=4;t="),
        "{}",
        header(&first, "ratelimit")
    );
    let rest = statuses(&gw, "/x", 7, &[]).await;
    assert_eq!(count(&rest, 200), 4, "{rest:?}");
    assert_eq!(count(&rest, 429), 3, "{rest:?}");
    assert_eq!(
        up.hits(),
        5,
        "the refused requests never reached the upstream"
    );

    let refused = get(&gw.url("/x"), &[]).await;
    assert_eq!(refused.status(), 429);
    // The five requests leave the sliding window between a fifth of a
    // window and a window and a fifth from now, depending on when in this
    // window they came.
    let retry: u64 = header(&refused, "retry-after").parse().unwrap();
    assert!((1..=4320).contains(&retry), "Retry-After {retry}");
    assert!(header(&refused, "ratelimit").starts_with("\"five\";r=0;t="));
    let request_id = header(&refused, "x-request-id");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited", "{body}");
    let line = gw.access_line(&request_id);
    assert_eq!(line["status"], 429);
    assert_eq!(line["limited"], "five");
    assert!(gw
        .metrics()
        .contains("portico_ratelimit_rejected_total{limit=\"five\"} 4"));
}

#[tokio::test]
async fn a_spoofed_forwarded_for_from_an_untrusted_client_shares_its_bucket() {
    let up = Upstream::start("app").await;
    let top = rate_limiting("    three: {limit: 3, window: 1h, key: client}\n", "");
    let gw = gateway(&up, &top, "{rate_limits: [three]}");
    let mut seen = Vec::new();
    for i in 0..6 {
        let spoof = format!("198.51.100.{i}");
        seen.push(
            get(&gw.url("/x"), &[("x-forwarded-for", &spoof)])
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(seen, [200, 200, 200, 429, 429, 429]);
}

#[tokio::test]
async fn path_variants_of_a_route_share_its_bucket() {
    let up = Upstream::start("app").await;
    let top = rate_limiting(
        "    three: {limit: 3, window: 1h, key: [client, route]}\n",
        "",
    );
    let gw = gateway(&up, &top, "{rate_limits: [three]}");
    let mut seen = Vec::new();
    for path in ["/a/b", "/a/./b", "//a//b", "/a/%62", "/a/b"] {
        seen.push(get(&gw.url(path), &[]).await.status().as_u16());
    }
    assert_eq!(seen, [200, 200, 200, 429, 429]);
}

#[tokio::test]
async fn a_limit_shared_by_two_routes_is_one_budget_unless_its_key_names_the_route() {
    let up = Upstream::start("app").await;
    let top = rate_limiting(
        "    shared: {limit: 4, window: 1h, key: client}\n    \
         per_route: {limit: 4, window: 1h, key: [client, route]}\n",
        "",
    );
    let gw = Gateway::start(&format!(
        "{top}{}routes:
{}{}{}{}",
        upstreams_yaml(&[&up]),
        limited_route("a", "shared"),
        limited_route("b", "shared"),
        limited_route("c", "per_route"),
        limited_route("d", "per_route"),
    ));
    let shared = [
        statuses(&gw, "/a", 3, &[]).await,
        statuses(&gw, "/b", 3, &[]).await,
    ]
    .concat();
    assert_eq!(shared, [200, 200, 200, 200, 429, 429]);
    let own = [
        statuses(&gw, "/c", 3, &[]).await,
        statuses(&gw, "/d", 3, &[]).await,
    ]
    .concat();
    assert_eq!(own, [200; 6]);
}

fn key_hash(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

#[tokio::test]
async fn a_tier_adds_its_limits_and_an_exempt_tier_has_none() {
    let up = Upstream::start("app").await;
    let top = format!(
        "{}consumers:
  - {{id: cheap, tier: free, credentials: {{api_keys: [\"{}\"]}}}}
  - {{id: staff, tier: internal, credentials: {{api_keys: [\"{}\"]}}}}
auth: {{methods: [api_key]}}
",
        rate_limiting(
            "    route: {limit: 5, window: 1h, key: consumer}\n    \
             free: {limit: 2, window: 1h, key: consumer}\n",
            "  tiers:\n    free: [free]\n    internal: exempt\n",
        ),
        key_hash("cheap-key"),
        key_hash("staff-key"),
    );
    let gw = gateway(&up, &top, "{rate_limits: [route]}");
    let free = statuses(&gw, "/x", 4, &[("x-api-key", "cheap-key")]).await;
    assert_eq!(free, [200, 200, 429, 429], "the tier's 2 per hour");
    let refused = get(&gw.url("/x"), &[("x-api-key", "cheap-key")]).await;
    assert!(
        header(&refused, "ratelimit-policy").contains("\"free\";q=2;w=3600"),
        "{}",
        header(&refused, "ratelimit-policy")
    );
    let staff = statuses(&gw, "/x", 8, &[("x-api-key", "staff-key")]).await;
    assert_eq!(staff, [200; 8], "an exempt tier passes every limit");
    let exempt = get(&gw.url("/x"), &[("x-api-key", "staff-key")]).await;
    assert_eq!(header(&exempt, "ratelimit"), "");
}

#[tokio::test]
async fn legacy_headers_are_sent_when_asked_for() {
    let up = Upstream::start("app").await;
    let top = rate_limiting(
        "    ten: {limit: 10, window: 1m, key: client}\n",
        "  headers: ietf_and_legacy\n",
    );
    let gw = gateway(&up, &top, "{rate_limits: [ten]}");
    let resp = get(&gw.url("/x"), &[]).await;
    assert_eq!(header(&resp, "x-ratelimit-limit"), "10");
    assert_eq!(header(&resp, "x-ratelimit-remaining"), "9");
    let reset: u64 = header(&resp, "x-ratelimit-reset").parse().unwrap();
    assert!((1..=120).contains(&reset), "{reset}");
    assert!(!header(&resp, "ratelimit").is_empty());
}

#[tokio::test]
async fn a_route_at_its_in_flight_cap_refuses_with_503_or_queues_as_configured() {
    let up = Upstream::start("app").await;
    let gw = Gateway::start(&format!(
        "{}routes:
  - {{id: strict, match: {{path: {{prefix: /strict}}}}, strip_prefix: true, upstream: app,
      policies: {{concurrency: {{max: 2}}}}}}
  - {{id: queued, match: {{path: {{prefix: /queued}}}}, strip_prefix: true, upstream: app,
      policies: {{concurrency: {{max: 1, queue: 5, queue_timeout: 5s}}}}}}
",
        upstreams_yaml(&[&up])
    ));
    // Two slow requests hold the strict route's slots; a third is refused.
    let slow: Vec<_> = (0..2)
        .map(|_| tokio::spawn(get_owned(gw.url("/strict/slow?ms=1500"))))
        .collect();
    eventually(
        Duration::from_secs(5),
        "two slow requests upstream",
        || async { up.hits() >= 2 },
    )
    .await;
    let third = get(&gw.url("/strict/x"), &[]).await;
    assert_eq!(third.status(), 503);
    let body: serde_json::Value = third.json().await.unwrap();
    assert_eq!(body["error"], "concurrency_limited");
    for task in slow {
        assert_eq!(task.await.unwrap(), 200);
    }
    // Once they are done the route takes requests again.
    assert_eq!(get(&gw.url("/strict/x"), &[]).await.status(), 200);

    // With a queue, three requests on a route of one slot all pass, one
    // after the other.
    let queued: Vec<_> = (0..3)
        .map(|_| tokio::spawn(get_owned(gw.url("/queued/slow?ms=300"))))
        .collect();
    for task in queued {
        assert_eq!(task.await.unwrap(), 200);
    }
    assert!(gw
        .metrics()
        .contains("portico_concurrency_rejected_total{route=\"strict\"} 1"));
}

async fn get_owned(url: String) -> u16 {
    client().get(url).send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn a_failing_pool_opens_its_circuit_fails_fast_and_closes_after_good_trials() {
    let up = Upstream::start("app").await;
    let gw = Gateway::start(&format!(
        "upstreams:
  app:
    backends: [{{address: \"{}\"}}]
    passive_health: {{consecutive_failures: 0}}
    retries: 0
    circuit_breaker: {{error_rate: 0.5, min_requests: 4, window: 10s, open_for: 2s,
                      half_open_requests: 1}}
routes:
  - {{id: r, upstream: app}}
",
        up.addr
    ));
    let failing = statuses(&gw, "/status/500", 4, &[]).await;
    assert_eq!(failing, [500; 4]);
    assert_eq!(up.hits(), 4);
    let fast = get(&gw.url("/ok"), &[]).await;
    assert_eq!(fast.status(), 503);
    let body: serde_json::Value = fast.json().await.unwrap();
    assert_eq!(body["error"], "circuit_open");
    assert_eq!(up.hits(), 4, "an open circuit sends nothing upstream");
    assert!(gw
        .metrics()
        .contains("portico_circuit_state{upstream=\"app\"} 1"));
    // After open_for a trial goes through; it succeeds and the circuit closes.
    eventually(Duration::from_secs(5), "a trial request passes", || async {
        get(&gw.url("/ok"), &[]).await.status() == 200
    })
    .await;
    assert_eq!(statuses(&gw, "/ok", 3, &[]).await, [200; 3]);
    assert!(gw
        .metrics()
        .contains("portico_circuit_state{upstream=\"app\"} 0"));
    let log = gw.stderr();
    assert!(
        log.contains("circuit") && log.contains("open"),
        "each transition is logged:\n{log}"
    );
}

/// Two gateways sharing one Redis, each limit with its own failure rule.
fn cluster_gateway(up: &Upstream, redis: &RedisServer) -> Gateway {
    let top = rate_limiting(
        "    shared: {limit: 40, window: 1h, key: route, store: redis}\n    \
         open: {limit: 1000, window: 1h, key: route, store: redis, on_store_failure: open}\n    \
         closed: {limit: 1000, window: 1h, key: route, store: redis, on_store_failure: closed}\n",
        &format!(
            "  redis: {{url: \"{}\", timeout: 200ms, prefix: t}}\n",
            redis.url()
        ),
    );
    Gateway::start(&format!(
        "{top}{}routes:
{}{}{}",
        upstreams_yaml(&[up]),
        limited_route("shared", "shared"),
        limited_route("open", "open"),
        limited_route("closed", "closed"),
    ))
}

#[tokio::test]
async fn two_gateways_sharing_redis_admit_the_limit_together_and_apply_their_failure_rule() {
    let up = Upstream::start("app").await;
    let mut redis = RedisServer::start();
    let a = cluster_gateway(&up, &redis);
    let b = cluster_gateway(&up, &redis);
    let mut admitted = 0;
    for i in 0..100 {
        let gw = if i % 2 == 0 { &a } else { &b };
        if get(&gw.url("/shared"), &[]).await.status() == 200 {
            admitted += 1;
        }
    }
    // Within 5 % of the limit of 40; with one round trip per decision it is
    // exact.
    assert!(
        (38..=42).contains(&admitted),
        "admitted {admitted} of limit 40"
    );
    assert_eq!(admitted, 40);
    assert!(redis.keys().iter().all(|k| k.starts_with("t:")));

    redis.stop();
    let open = statuses(&a, "/open", 3, &[]).await;
    assert_eq!(open, [200; 3], "fail open admits while Redis is down");
    let closed = get(&a.url("/closed"), &[]).await;
    assert_eq!(closed.status(), 503);
    let body: serde_json::Value = closed.json().await.unwrap();
    assert_eq!(body["error"], "rate_limit_unavailable");
    assert!(a.metrics().contains("portico_ratelimit_store_up 0"));
    let warnings = a
        .stderr()
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("\"WARN\""))
        .filter(|l| l.to_lowercase().contains("redis"))
        .count();
    assert_eq!(warnings, 1, "one warning per incident:\n{}", a.stderr());

    redis.restart();
    eventually(Duration::from_secs(10), "the store reconnects", || async {
        get(&a.url("/closed"), &[]).await.status() == 200
    })
    .await;
    assert!(a.metrics().contains("portico_ratelimit_store_up 1"));
}

async fn preflight(gw: &Gateway) -> u16 {
    client()
        .request(reqwest::Method::OPTIONS, gw.url("/x"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn cors_preflights_are_exempt_by_default_and_counted_when_configured() {
    let up = Upstream::start("app").await;
    let policies = "{rate_limits: [two], cors: {origins: [\"https://app.example.com\"]}}";
    let exempt = gateway(
        &up,
        &rate_limiting("    two: {limit: 2, window: 1h, key: client}\n", ""),
        policies,
    );
    for _ in 0..3 {
        assert_eq!(preflight(&exempt).await, 204);
    }
    assert_eq!(statuses(&exempt, "/x", 3, &[]).await, [200, 200, 429]);

    let counted = gateway(
        &up,
        &rate_limiting(
            "    two: {limit: 2, window: 1h, key: client}\n",
            "  preflight: counted\n",
        ),
        policies,
    );
    assert_eq!(preflight(&counted).await, 204);
    assert_eq!(preflight(&counted).await, 204);
    assert_eq!(preflight(&counted).await, 429);
    assert_eq!(statuses(&counted, "/x", 1, &[]).await, [429]);
}

#[tokio::test]
async fn a_consumer_at_its_in_flight_cap_is_refused_while_another_consumer_passes() {
    let up = Upstream::start("app").await;
    let gw = Gateway::start(&format!(
        "consumers:
  - {{id: one, credentials: {{api_keys: [\"{}\"]}}}}
  - {{id: two, credentials: {{api_keys: [\"{}\"]}}}}
auth: {{methods: [api_key]}}
{}routes:
  - {{id: r, upstream: app, policies: {{concurrency: {{per_consumer: 1}}}}}}
",
        key_hash("key-one"),
        key_hash("key-two"),
        upstreams_yaml(&[&up])
    ));
    let url = gw.url("/slow?ms=1500");
    let held = tokio::spawn(async move {
        client()
            .get(url)
            .header("x-api-key", "key-one")
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    eventually(
        Duration::from_secs(5),
        "the slow request upstream",
        || async { up.hits() >= 1 },
    )
    .await;
    let second = get(&gw.url("/x"), &[("x-api-key", "key-one")]).await;
    assert_eq!(second.status(), 503, "the same consumer's second request");
    let other = get(&gw.url("/x"), &[("x-api-key", "key-two")]).await;
    assert_eq!(other.status(), 200, "another consumer is not held back");
    assert_eq!(held.await.unwrap(), 200);
    let again = get(&gw.url("/x"), &[("x-api-key", "key-one")]).await;
    assert_eq!(
        again.status(),
        200,
        "the slot is free once the first is done"
    );
}
