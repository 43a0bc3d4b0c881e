//! Backend health through the real gateway: active HTTP and TCP checks,
//! readiness before the first round of checks, passive ejection, and the
//! retry rules that keep a failing backend's errors away from clients.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{client, eventually, Gateway, Upstream};

/// A pool named `pool` over `backends` with `settings` (YAML lines indented
/// for the pool), and one route sending everything to it.
fn pool_config(backends: &[SocketAddr], settings: &str) -> String {
    let mut out = String::from("upstreams:\n  pool:\n    backends:\n");
    for addr in backends {
        out.push_str(&format!("      - address: \"{addr}\"\n"));
    }
    out.push_str(settings);
    out.push_str("routes:\n  - id: all\n    match: { path: { prefix: / } }\n    upstream: pool\n");
    out
}

/// Sends `n` GETs one after the other and returns who answered each; any
/// status but 200 fails the test.
async fn answered_by(gw: &Gateway, n: usize) -> Vec<String> {
    let http = client();
    let mut names = Vec::with_capacity(n);
    for i in 0..n {
        let resp = http.get(gw.url(&format!("/req/{i}"))).send().await.unwrap();
        assert_eq!(resp.status(), 200, "request {i}");
        names.push(resp.headers()["x-upstream"].to_str().unwrap().to_string());
    }
    names
}

/// Polls the gateway's metrics until `backend` of `pool` reports `up`.
async fn wait_for_health(gw: &Gateway, backend: SocketAddr, up: bool) {
    let what = format!(
        "portico_backend_healthy for {backend} to be {}",
        u8::from(up)
    );
    eventually(Duration::from_secs(15), &what, || {
        let now = gw.backend_healthy("pool", backend) == Some(up);
        async move { now }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn http_check_takes_a_backend_out_after_its_failures_and_back_after_its_passes() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let gw = Gateway::start(&pool_config(
        &[a.addr, b.addr],
        "    health_check:
      type: http
      path: /healthz
      interval: 200ms
      timeout: 1s
      healthy_threshold: 2
      unhealthy_threshold: 3
",
    ));
    assert_eq!(gw.backend_healthy("pool", a.addr), Some(true));
    assert!(answered_by(&gw, 10).await.contains(&"a".to_string()));

    let (_, failed_before) = a.probes();
    a.set_healthy(false);
    wait_for_health(&gw, a.addr, false).await;
    let failed = a.probes().1 - failed_before;
    assert!(
        failed >= 3,
        "marked down after {failed} failed probes, the threshold is 3"
    );
    let names = answered_by(&gw, 40).await;
    assert!(
        names.iter().all(|n| n == "b"),
        "a backend marked down got traffic: {names:?}"
    );

    let (passed_before, _) = a.probes();
    a.set_healthy(true);
    wait_for_health(&gw, a.addr, true).await;
    let passed = a.probes().0 - passed_before;
    assert!(
        passed >= 2,
        "back up after {passed} passing probes, the threshold is 2"
    );
    let names = answered_by(&gw, 40).await;
    let to_a = names.iter().filter(|n| *n == "a").count();
    assert!(
        to_a >= 15,
        "the recovered backend got {to_a} of 40 round-robin requests"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tcp_check_takes_a_stopped_backend_out_and_back_in_once_it_listens_again() {
    let mut a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let gw = Gateway::start(&pool_config(
        &[a.addr, b.addr],
        "    health_check: { type: tcp, interval: 200ms, timeout: 1s,
                    healthy_threshold: 1, unhealthy_threshold: 1 }
    passive_health: { consecutive_failures: 0 }
",
    ));
    let addr = a.addr;
    a.stop().await;
    wait_for_health(&gw, addr, false).await;
    let names = answered_by(&gw, 30).await;
    assert!(
        names.iter().all(|n| n == "b"),
        "the stopped backend was chosen: {names:?}"
    );

    let a = Upstream::start_on(addr, "a").await;
    wait_for_health(&gw, addr, true).await;
    let names = answered_by(&gw, 30).await;
    assert!(
        names.iter().any(|n| n == "a"),
        "the restarted backend got no traffic"
    );
    assert!(a.hits() > 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_is_503_until_the_first_round_of_checks_has_finished() {
    let a = Upstream::start("a").await;
    // The probe itself takes 5 s, so the first round cannot finish sooner.
    let probe = "/slow?ms=5000";
    let gw = Gateway::spawn(
        &pool_config(
            &[a.addr],
            &format!(
                "    health_check: {{ type: http, path: \"{probe}\", interval: 1h, \
                 timeout: 20s }}\n"
            ),
        ),
        &[],
    );
    let http = client();
    let started = Instant::now();
    let (status, body) = loop {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the admin listener never answered"
        );
        if let Ok(resp) = http.get(gw.admin_url("/readyz")).send().await {
            break (resp.status(), resp.text().await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status, 503, "first /readyz answer: {body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["waiting_for"], serde_json::json!(["pool"]));

    eventually(Duration::from_secs(30), "/readyz turns 200", || {
        let ready = crate::support::blocking_status(&gw.admin_url("/readyz")).ok() == Some(200);
        async move { ready }
    })
    .await;
    assert!(
        a.saw(probe),
        "ready although the probe never reached the backend"
    );
    assert_eq!(gw.backend_healthy("pool", a.addr), Some(true));
}

/// One request of a load loop: when it started, its status (0 when the
/// connection failed) and the upstream that answered.
struct Sample {
    at: Instant,
    status: u16,
    upstream: String,
}

/// Sends one GET and records how it went.
async fn sample(http: &reqwest::Client, url: String) -> Sample {
    let at = Instant::now();
    match http.get(url).send().await {
        Ok(r) => {
            let upstream = r
                .headers()
                .get("x-upstream")
                .map(|v| v.to_str().unwrap().into());
            let status = r.status().as_u16();
            Sample {
                at,
                status,
                upstream: upstream.unwrap_or_default(),
            }
        }
        Err(_) => Sample {
            at,
            status: 0,
            upstream: String::new(),
        },
    }
}

/// Keeps `workers` sequential GET loops running until `stop` is set.
fn steady_load(gw: &Gateway, workers: usize, stop: &Arc<AtomicBool>) -> Arc<Mutex<Vec<Sample>>> {
    let log = Arc::new(Mutex::new(Vec::new()));
    for w in 0..workers {
        let (http, base, stop, log) = (client(), gw.url(""), stop.clone(), log.clone());
        tokio::spawn(async move {
            for i in 0.. {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let s = sample(&http, format!("{base}/loop/{w}/{i}")).await;
                log.lock().unwrap().push(s);
            }
        });
    }
    log
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backend_stopped_under_load_is_ejected_without_failing_clients_and_returns_after_restart()
{
    let a = Upstream::start("a").await;
    let mut b = Upstream::start("b").await;
    let c = Upstream::start("c").await;
    let gw = Gateway::start(&pool_config(
        &[a.addr, b.addr, c.addr],
        "    timeouts: { connect: 1s }
    passive_health: { consecutive_failures: 3, ejection_time: 2s }
    retries: 2
",
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let log = steady_load(&gw, 4, &stop);
    let count = |log: &Arc<Mutex<Vec<Sample>>>| log.lock().unwrap().len();
    eventually(
        Duration::from_secs(20),
        "300 requests before the stop",
        || {
            let n = count(&log);
            async move { n >= 300 }
        },
    )
    .await;

    let addr = b.addr;
    b.stop().await;
    wait_for_health(&gw, addr, false).await;
    let ejected_at = Instant::now();
    let done_before_ejection = count(&log);
    tokio::time::sleep(Duration::from_secs(1)).await;

    let restarted_at = Instant::now();
    let b = Upstream::start_on(addr, "b").await;
    eventually(
        Duration::from_secs(20),
        "the restarted backend answers a request",
        || {
            let back = log
                .lock()
                .unwrap()
                .iter()
                .any(|s| s.at > restarted_at && s.upstream == "b");
            async move { back }
        },
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await;

    let log = log.lock().unwrap();
    let failed = |s: &&Sample| s.status == 0 || s.status >= 500;
    let failures: Vec<u16> = log.iter().filter(failed).map(|s| s.status).collect();
    let after: Vec<u16> = log
        .iter()
        .filter(|s| s.at > ejected_at)
        .filter(failed)
        .map(|s| s.status)
        .collect();
    println!(
        "{} requests ({done_before_ejection} before the ejection), failures {failures:?}, \
         {} answered by the restarted backend",
        log.len(),
        b.hits()
    );
    assert!(
        after.is_empty(),
        "clients got failures after the ejection: {after:?}"
    );
    assert!(
        failures.len() <= 3,
        "more failures than the ejection threshold: {failures:?}"
    );
    assert!(log.iter().filter(|s| s.at > ejected_at).count() > 0);
    // The stopped backend was really tried: its connect failures were hidden
    // from clients by retries.
    let refused = gw
        .metrics()
        .lines()
        .filter(|l| l.starts_with("portico_upstream_connect_failures_total{"))
        .filter(|l| l.contains(&format!("backend=\"{addr}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum::<u64>();
    assert!(
        refused >= 1,
        "no connect failure to the stopped backend was recorded"
    );
}

/// Passive ejection never empties a pool: the only backend, ejected after
/// three 500s, still takes traffic (panic mode), while its health metric says
/// it is ejected until `ejection_time` has passed.
#[tokio::test(flavor = "multi_thread")]
async fn a_lone_backend_ejected_for_its_500s_keeps_taking_traffic_and_recovers() {
    let a = Upstream::start("a").await;
    let gw = Gateway::start(&pool_config(
        &[a.addr],
        "    passive_health: { consecutive_failures: 3, ejection_time: 3s }\n",
    ));
    let http = client();
    for i in 1..=3 {
        let resp = http.get(gw.url("/status/500")).send().await.unwrap();
        assert_eq!(resp.status(), 500, "answer {i} is the backend's own");
        assert_eq!(a.hits(), i, "request {i} reached the backend");
    }
    assert_eq!(gw.backend_healthy("pool", a.addr), Some(false));
    let resp = http.get(gw.url("/after")).send().await.unwrap();
    assert_eq!(
        resp.status(),
        200,
        "one failing path took the whole route down"
    );
    assert_eq!(resp.headers()["x-upstream"], "a");
    assert_eq!(a.hits(), 4);
    wait_for_health(&gw, a.addr, true).await;
}

/// With another backend to go to, an ejected one gets nothing until its
/// `ejection_time` has passed.
#[tokio::test(flavor = "multi_thread")]
async fn an_ejected_backend_gets_no_traffic_while_another_is_available() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    a.set_resetting(true);
    let gw = Gateway::start(&pool_config(
        &[a.addr, b.addr],
        "    retries: 0\n    passive_health: { consecutive_failures: 2, ejection_time: 3s }\n",
    ));
    let http = client();
    let mut failed = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while gw.backend_healthy("pool", a.addr) != Some(false) {
        assert!(Instant::now() < deadline, "a was never ejected");
        let resp = http.get(gw.url("/warm")).send().await;
        if !matches!(resp, Ok(r) if r.status() == 200) {
            failed += 1;
        }
        assert!(failed <= 2, "more failures than consecutive_failures");
    }
    assert_eq!(failed, 2);
    let names = answered_by(&gw, 10).await;
    assert!(names.iter().all(|n| n == "b"), "{names:?}");
    a.set_resetting(false);
    eventually(
        Duration::from_secs(15),
        "a takes traffic again after ejection_time",
        || {
            let gw = &gw;
            async move { answered_by(gw, 2).await.iter().any(|n| n == "a") }
        },
    )
    .await;
}

/// Two backends, `a` resetting every connection, no ejection (so `a` keeps
/// being chosen first half the time) and one retry.
async fn one_resetting_backend() -> (Upstream, Upstream, Gateway) {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    a.set_resetting(true);
    let gw = Gateway::start(&pool_config(
        &[a.addr, b.addr],
        "    passive_health: { consecutive_failures: 0 }\n    retries: 1\n",
    ));
    (a, b, gw)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_get_reset_by_its_backend_is_retried_on_another_backend() {
    let (a, b, gw) = one_resetting_backend().await;
    let http = client();
    for i in 0..20 {
        let path = format!("/get/{i}");
        let resp = http.get(gw.url(&path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "GET {path}");
        assert_eq!(resp.headers()["x-upstream"], "b");
        assert!(b.saw(&path));
    }
    assert!(
        a.hits() >= 5,
        "the resetting backend saw only {} requests",
        a.hits()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_post_reset_by_its_backend_is_not_retried_and_the_client_gets_502() {
    let (a, b, gw) = one_resetting_backend().await;
    let http = client();
    let mut refused = 0;
    for i in 0..20 {
        let path = format!("/post/{i}");
        let resp = http
            .post(gw.url(&path))
            .body("order=1")
            .send()
            .await
            .unwrap();
        match resp.status().as_u16() {
            502 => {
                refused += 1;
                // The gateway closes the connection after a failure and must say so.
                assert_eq!(resp.headers().get("connection").unwrap(), "close");
                let body: serde_json::Value = resp.json().await.unwrap();
                assert_eq!(body["error"], "upstream_failed");
                assert!(
                    a.saw(&path) && !b.saw(&path),
                    "POST {path} reached a second backend"
                );
            }
            200 => assert!(
                b.saw(&path) && !a.saw(&path),
                "POST {path} reached both backends"
            ),
            other => panic!("POST {path} got {other}"),
        }
    }
    assert!(
        refused >= 5,
        "only {refused} of 20 POSTs went to the resetting backend first"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_get_every_backend_resets_is_tried_once_more_per_retry_then_gets_502() {
    let ups = [
        Upstream::start("a").await,
        Upstream::start("b").await,
        Upstream::start("c").await,
    ];
    let addrs: Vec<SocketAddr> = ups.iter().map(|u| u.addr).collect();
    let gw = Gateway::start(&pool_config(
        &addrs,
        "    passive_health: { consecutive_failures: 0 }\n    retries: 1\n",
    ));
    let resp = client().get(gw.url("/reset")).send().await.unwrap();
    assert_eq!(resp.status(), 502);
    let tried: usize = ups.iter().map(|u| u.hits()).sum();
    assert_eq!(
        tried, 2,
        "one try plus one retry, each on a different backend"
    );
    assert!(ups.iter().all(|u| u.hits() <= 1));
}
