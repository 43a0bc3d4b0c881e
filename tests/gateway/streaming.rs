//! Bodies stream through the gateway: a 1 GiB download and a 1 GiB upload
//! leave the gateway's resident memory nearly where it was.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{stream, StreamExt};

use crate::support::{Gateway, Upstream};

const GIB: u64 = 1 << 30;
/// The most the gateway's resident set may grow while one body passes.
const GROWTH_BOUND: u64 = 64 << 20;

/// One `kB` line (`VmRSS`, `VmHWM`) of `/proc/<pid>/status`, in bytes.
fn proc_status_bytes(pid: i32, key: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = text.lines().find(|l| l.starts_with(key)).unwrap();
    let kib: u64 = line[key.len() + 1..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kib * 1024
}

/// A client without the harness's 30 s overall timeout, which a 1 GiB body
/// in a debug build may exceed.
fn bulk_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(600))
        .build()
        .unwrap()
}

/// A gateway with one route to `up`, warmed up with a small download and a
/// small upload so that lazily allocated buffers exist before the baseline.
async fn warm_gateway(up: &Upstream, http: &reqwest::Client) -> Gateway {
    let gw = Gateway::start(&format!(
        "upstreams:
  files:
    backends: [{{ address: \"{}\" }}]
routes:
  - id: files
    match: {{ path: {{ prefix: / }} }}
    upstream: files
",
        up.addr
    ));
    for _ in 0..3 {
        let got = http
            .get(gw.url("/bytes?n=4194304"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(got.len(), 4 << 20);
        let sent = http
            .post(gw.url("/upload"))
            .body(vec![b'y'; 4 << 20])
            .send()
            .await
            .unwrap();
        assert_eq!(sent.text().await.unwrap(), (4u64 << 20).to_string());
    }
    gw
}

/// Prints and checks the resident-set figures of one transfer.
fn check_memory(what: &str, pid: i32, rss_before: u64, elapsed: Duration) {
    let rss_after = proc_status_bytes(pid, "VmRSS");
    let hwm = proc_status_bytes(pid, "VmHWM");
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!(
        "{what}: {:.1} s; gateway VmRSS {:.1} MiB before, {:.1} MiB after, VmHWM {:.1} MiB \
         (peak growth {:.1} MiB)",
        elapsed.as_secs_f64(),
        mib(rss_before),
        mib(rss_after),
        mib(hwm),
        mib(hwm.saturating_sub(rss_before)),
    );
    assert!(
        rss_after.saturating_sub(rss_before) < GROWTH_BOUND,
        "{what}: resident set grew by {:.1} MiB",
        mib(rss_after.saturating_sub(rss_before))
    );
    assert!(
        hwm.saturating_sub(rss_before) < GROWTH_BOUND,
        "{what}: resident set peaked {:.1} MiB above its baseline",
        mib(hwm.saturating_sub(rss_before))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_one_gib_download_streams_through_the_gateway_in_bounded_memory() {
    let up = Upstream::start("files").await;
    let http = bulk_client();
    let gw = warm_gateway(&up, &http).await;
    let rss_before = proc_status_bytes(gw.pid(), "VmRSS");

    let started = Instant::now();
    let resp = http
        .get(gw.url(&format!("/bytes?n={GIB}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let mut received = 0u64;
    while let Some(chunk) = body.next().await {
        received += chunk.unwrap().len() as u64;
    }
    assert_eq!(received, GIB);
    check_memory("1 GiB download", gw.pid(), rss_before, started.elapsed());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_one_gib_upload_streams_through_the_gateway_in_bounded_memory() {
    let up = Upstream::start("files").await;
    let http = bulk_client();
    let gw = warm_gateway(&up, &http).await;
    let rss_before = proc_status_bytes(gw.pid(), "VmRSS");

    // 16,384 chunks of 64 KiB, each a view of one shared buffer.
    let chunk = Bytes::from(vec![b'u'; 64 << 10]);
    let chunks =
        stream::iter(0..GIB / (64 << 10)).map(move |_| Ok::<_, std::io::Error>(chunk.clone()));
    let started = Instant::now();
    let resp = http
        .post(gw.url("/upload"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.text().await.unwrap(),
        GIB.to_string(),
        "bytes the upstream received"
    );
    check_memory("1 GiB upload", gw.pid(), rss_before, started.elapsed());
}
