//! Backend choice seen from outside: weighted round robin, consistent hashing
//! on a header, a cookie or the client address, and least requests, each
//! through the real gateway to real upstreams.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use futures_util::{stream, StreamExt};

use crate::support::{client, eventually, Gateway, Upstream};

/// Requests kept in flight by the bulk loops.
const IN_FLIGHT: usize = 16;

/// The `backends:` list of a pool, indented for an entry under `upstreams:`.
fn backends_yaml(backends: &[(SocketAddr, u32)]) -> String {
    let mut out = String::from("    backends:\n");
    for (addr, weight) in backends {
        out.push_str(&format!(
            "      - {{ address: \"{addr}\", weight: {weight} }}\n"
        ));
    }
    out
}

/// A route sending every path under `prefix` to `upstream`.
fn route_yaml(id: &str, prefix: &str, upstream: &str) -> String {
    format!(
        "  - id: {id}\n    match: {{ path: {{ prefix: {prefix} }} }}\n    upstream: {upstream}\n"
    )
}

/// Sends one GET and returns the name of the upstream that answered it;
/// anything but a 200 fails the test.
async fn answered_by(
    http: &reqwest::Client,
    url: String,
    headers: Vec<(&'static str, String)>,
) -> String {
    let mut req = http.get(&url);
    for (name, value) in headers {
        req = req.header(name, value);
    }
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(resp.status(), 200, "GET {url}");
    let name = resp.headers()["x-upstream"].to_str().unwrap().to_string();
    resp.bytes().await.unwrap();
    name
}

/// The upstream that answers each key sent in the `x-user` header, in key order.
async fn map_users(http: &reqwest::Client, gw: &Gateway, keys: &[String]) -> Vec<String> {
    stream::iter(keys)
        .map(|key| answered_by(http, gw.url("/profile"), vec![("x-user", key.clone())]))
        .buffered(IN_FLIGHT)
        .collect()
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn weighted_round_robin_gives_each_backend_its_weight_share_of_ten_thousand_requests() {
    let ups = [
        Upstream::start("w5").await,
        Upstream::start("w3").await,
        Upstream::start("w2").await,
    ];
    let weights = [5u32, 3, 2];
    let list: Vec<(SocketAddr, u32)> = ups.iter().map(|u| u.addr).zip(weights).collect();
    let gw = Gateway::start(&format!(
        "upstreams:\n  pool:\n    balance: round_robin\n{}routes:\n{}",
        backends_yaml(&list),
        route_yaml("all", "/", "pool"),
    ));
    let http = client();
    let total = 10_000usize;
    let names: Vec<String> = stream::iter(0..total)
        .map(|i| answered_by(&http, gw.url(&format!("/item/{i}")), vec![]))
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for n in names {
        *counts.entry(n).or_default() += 1;
    }
    for (up, weight) in ups.iter().zip(weights) {
        let got = counts.get(&up.state.name).copied().unwrap_or(0);
        let share = got as f64 / total as f64;
        let want = f64::from(weight) / 10.0;
        println!(
            "{}: {got} requests ({share:.4} of traffic, weight share {want})",
            up.state.name
        );
        assert!(
            (share - want).abs() <= want * 0.05,
            "{} got {share:.4} of the traffic, its weight share is {want}",
            up.state.name
        );
        assert_eq!(
            up.hits(),
            got,
            "{} saw a different number of requests",
            up.state.name
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn consistent_hashing_on_a_header_keeps_most_keys_when_one_of_ten_backends_goes_down() {
    let mut ups = Vec::new();
    for i in 0..10 {
        ups.push(Upstream::start(&format!("ring{i}")).await);
    }
    let list: Vec<(SocketAddr, u32)> = ups.iter().map(|u| (u.addr, 1)).collect();
    let gw = Gateway::start(&format!(
        "upstreams:
  ring:
    balance: consistent_hash
    hash_key: {{ source: header, name: x-user }}
{}    health_check:
      type: http
      path: /healthz
      interval: 200ms
      timeout: 1s
      healthy_threshold: 1
      unhealthy_threshold: 1
routes:
{}",
        backends_yaml(&list),
        route_yaml("all", "/", "ring"),
    ));
    let http = client();
    let keys: Vec<String> = (0..2000).map(|i| format!("user-{i}")).collect();
    let first = map_users(&http, &gw, &keys).await;
    let again = map_users(&http, &gw, &keys).await;
    assert_eq!(first, again, "a key moved while no backend changed");
    let used: HashSet<&String> = first.iter().collect();
    assert_eq!(used.len(), 10, "2,000 keys should reach all ten backends");

    let gone = ups[3].state.name.clone();
    let gone_addr = ups[3].addr;
    let moved_keys = first.iter().filter(|n| **n == gone).count();
    assert!(
        moved_keys > 0,
        "no key was on {gone}; the test would prove nothing"
    );
    ups[3].stop().await;
    eventually(
        Duration::from_secs(10),
        "the stopped backend is marked down",
        || {
            let down = gw.backend_healthy("ring", gone_addr) == Some(false);
            async move { down }
        },
    )
    .await;

    let after = map_users(&http, &gw, &keys).await;
    assert!(
        after.iter().all(|n| *n != gone),
        "a key still reached the stopped backend"
    );
    let kept = first.iter().zip(&after).filter(|(a, b)| a == b).count();
    let share = kept as f64 / keys.len() as f64;
    println!(
        "{kept} of {} keys kept their backend ({moved_keys} were on {gone})",
        keys.len()
    );
    assert!(share >= 0.85, "only {share:.3} of keys kept their backend");
    for ((key, before), now) in keys.iter().zip(&first).zip(&after) {
        if *before != gone {
            assert_eq!(
                before, now,
                "{key} moved although its backend {before} stayed up"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn consistent_hashing_on_a_cookie_or_the_client_address_gives_each_client_one_backend() {
    let mut ups = Vec::new();
    for i in 0..5 {
        ups.push(Upstream::start(&format!("h{i}")).await);
    }
    let list: Vec<(SocketAddr, u32)> = ups.iter().map(|u| (u.addr, 1)).collect();
    let backends = backends_yaml(&list);
    let gw = Gateway::start(&format!(
        "upstreams:
  by_cookie:
    balance: consistent_hash
    hash_key: {{ source: cookie, name: session }}
{backends}  by_ip:
    balance: consistent_hash
    hash_key: {{ source: client_ip }}
{backends}routes:
{}{}",
        route_yaml("cookie", "/c", "by_cookie"),
        route_yaml("ip", "/ip", "by_ip"),
    ));

    let http = client();
    let mut cookie_backends = HashSet::new();
    for k in 0..40 {
        let mut seen = HashSet::new();
        for other in 0..5 {
            // Other cookies around the session cookie must not matter.
            let cookie = format!("theme=t{other}; session=s{k}; lang=l{other}");
            seen.insert(answered_by(&http, gw.url("/c/cart"), vec![("cookie", cookie)]).await);
        }
        assert_eq!(seen.len(), 1, "session s{k} reached {seen:?}");
        cookie_backends.extend(seen);
    }
    assert!(
        cookie_backends.len() > 1,
        "40 sessions all hashed to {cookie_backends:?}"
    );

    let mut ip_backends = HashSet::new();
    for last in 2..22u8 {
        let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, last));
        let from_ip = reqwest::Client::builder()
            .no_proxy()
            .local_address(ip)
            .build()
            .unwrap();
        let mut seen = HashSet::new();
        for spoof in 0..5 {
            // No proxy is trusted, so a forged X-Forwarded-For must not move the client.
            let xff = format!("203.0.113.{spoof}");
            let headers = vec![("x-forwarded-for", xff)];
            seen.insert(answered_by(&from_ip, gw.url("/ip/home"), headers).await);
        }
        assert_eq!(seen.len(), 1, "client {ip} reached {seen:?}");
        ip_backends.extend(seen);
    }
    assert!(
        ip_backends.len() > 1,
        "20 client addresses all hashed to {ip_backends:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn least_requests_sends_new_requests_to_the_idle_backend_while_the_other_is_busy() {
    let busy = Upstream::start("busy").await;
    let idle = Upstream::start("idle").await;
    busy.set_delay(Duration::from_secs(60));
    let gw = Gateway::start(&format!(
        "upstreams:\n  pool:\n    balance: least_requests\n{}routes:\n{}",
        backends_yaml(&[(busy.addr, 1), (idle.addr, 1)]),
        route_yaml("all", "/", "pool"),
    ));

    // Bursts of concurrent requests until `busy` holds several of them; the
    // ones that reach `idle` complete at once.
    let http = client();
    let mut held = tokio::task::JoinSet::new();
    let mut sent = 0;
    while busy.hits() < 3 {
        assert!(sent < 400, "no burst left requests on the busy backend");
        for _ in 0..8 {
            let (http, url) = (http.clone(), gw.url("/work"));
            held.spawn(async move { http.get(url).send().await.map(|r| r.status()) });
        }
        sent += 8;
        let burst_done = || {
            let arrived = busy.hits() + idle.hits();
            async move { arrived == sent }
        };
        eventually(
            Duration::from_secs(10),
            "the burst reaches the backends",
            burst_done,
        )
        .await;
    }
    // Wait for every request `idle` took; the ones left are held by `busy`.
    while sent - held.len() < idle.hits() {
        let joined = held.join_next().await.expect("a held request task");
        assert_eq!(joined.unwrap().unwrap(), 200);
    }
    let (held_on_busy, before) = (busy.hits(), idle.hits());
    println!("{held_on_busy} requests held on the busy backend after {sent} sent");

    for i in 0..50 {
        let name = answered_by(&http, gw.url(&format!("/next/{i}")), vec![]).await;
        assert_eq!(name, "idle", "request {i} went to the busy backend");
    }
    assert_eq!(
        busy.hits(),
        held_on_busy,
        "the busy backend received a new request"
    );
    assert_eq!(idle.hits(), before + 50);
    held.abort_all();
}
