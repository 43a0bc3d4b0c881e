//! Hostile input: requests and configurations an attacker or a careless
//! operator would send, each found to break a rule of the gateway (bad input
//! gets a clear 4xx and never reaches an upstream; a bad config is refused
//! with its key path; nothing panics) and kept here once fixed.

use std::process::Command;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{base_config, client, free_port, raw, Gateway, Upstream};

/// A gateway with one catch-all route to `up`, plus `extra` under its upstream.
fn catch_all(up: &Upstream, extra: &str) -> Gateway {
    Gateway::start(&format!(
        "upstreams:\n  {}:\n    backends: [{{ address: \"{}\" }}]\n{extra}\
         routes:\n  - id: all\n    upstream: {}\n",
        up.state.name, up.addr, up.state.name
    ))
}

/// Asserts a gateway-made 400 with a JSON body and an access-log line.
fn assert_bad_request(gw: &Gateway, resp: &raw::RawResponse, what: &str) {
    assert_eq!(
        resp.status,
        400,
        "{what}: {:?}",
        String::from_utf8_lossy(&resp.body)
    );
    assert!(
        !resp.has_header("x-upstream"),
        "{what}: an upstream answered"
    );
    let body = resp.json();
    assert_eq!(body["error"], "bad_request", "{what}");
    let line = gw.access_line(body["request_id"].as_str().unwrap());
    assert_eq!(line["status"], 400, "{what}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_stops_sending_its_body_gets_408_and_does_not_get_the_backend_ejected() {
    let up = Upstream::start("a").await;
    let gw = catch_all(
        &up,
        "    timeouts: { read: 1s }\n    \
         passive_health: { consecutive_failures: 2, ejection_time: 60s }\n",
    );
    // Three uploads that promise ten bytes and send two: the backend waits
    // for the rest until the gateway's read timeout fires.
    let stalls = (0..3).map(|_| {
        let port = gw.port;
        tokio::spawn(async move {
            let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            s.write_all(
                b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\nab",
            )
            .await
            .unwrap();
            let mut buf = vec![0; 4096];
            let n = tokio::time::timeout(Duration::from_secs(20), s.read(&mut buf))
                .await
                .expect("no answer to a stalled upload")
                .unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        })
    });
    for stall in stalls.collect::<Vec<_>>() {
        let answer = stall.await.unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 408"),
            "a stalled client is not the backend's fault: {answer}"
        );
        assert!(answer.contains("\"request_timeout\""), "{answer}");
    }
    // The backend did nothing wrong and still takes traffic.
    let resp = client().get(gw.url("/after")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-upstream"], "a");
    assert_eq!(gw.backend_healthy("a", up.addr), Some(true));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_query_only_request_target_gets_400_and_never_reaches_an_upstream() {
    let up = Upstream::start("a").await;
    let gw = catch_all(&up, "");
    // Pingora keeps `?x` as a URI whose empty path reads as `/`: it would be
    // routed as `/` and forwarded as `?x`.
    for target in ["?x", "?/admin", "?"] {
        let request =
            format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        let resp = raw::send(gw.port, request.as_bytes()).await;
        assert_bad_request(&gw, &resp, target);
    }
    assert_eq!(up.hits(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_http11_request_without_host_gets_400_and_never_reaches_an_upstream() {
    let up = Upstream::start("a").await;
    let gw = catch_all(&up, "");
    for (what, request) in [
        (
            "origin form",
            "GET /x HTTP/1.1\r\nConnection: close\r\n\r\n",
        ),
        (
            "absolute form",
            "GET http://internal.example/x HTTP/1.1\r\nConnection: close\r\n\r\n",
        ),
    ] {
        let resp = raw::send(gw.port, request.as_bytes()).await;
        assert_bad_request(&gw, &resp, what);
    }
    assert_eq!(up.hits(), 0);
    // HTTP/1.0 has no Host requirement.
    let resp = raw::send(
        gw.port,
        b"GET /http-one-oh HTTP/1.0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(resp.status, 200);
    assert!(up.saw("/http-one-oh"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_header_that_is_not_a_valid_authority_gets_400_and_never_reaches_an_upstream() {
    let up = Upstream::start("a").await;
    let gw = catch_all(&up, "");
    let bad: [&[u8]; 6] = [
        b"internal.example:abc",
        b"a b",
        b"internal.example/admin",
        b"[::1",
        b"::1",
        b"ex\xc3\xa4mple.com",
    ];
    for host in bad {
        let mut request = b"GET /x HTTP/1.1\r\nHost: ".to_vec();
        request.extend_from_slice(host);
        request.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
        let resp = raw::send(gw.port, &request).await;
        assert_bad_request(&gw, &resp, &String::from_utf8_lossy(host));
    }
    assert_eq!(up.hits(), 0);
    for host in ["api.example.com:8443", "[::1]:80", "API.example.com.", ""] {
        let request = format!("GET /ok HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let resp = raw::send(gw.port, request.as_bytes()).await;
        assert_eq!(resp.status, 200, "Host: {host}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repeated_content_length_reaches_the_upstream_as_one_value() {
    let up = Upstream::start("a").await;
    let gw = catch_all(&up, "");
    for lengths in [
        "Content-Length: 4, 4\r\n",
        "Content-Length: 4\r\nContent-Length: 4\r\n",
    ] {
        let request = format!(
            "POST /body HTTP/1.1\r\nHost: 127.0.0.1\r\n{lengths}Connection: close\r\n\r\nabcd"
        );
        let resp = raw::send(gw.port, request.as_bytes()).await;
        assert_eq!(resp.status, 200, "{lengths:?}");
        assert_eq!(resp.body, b"abcd");
        let headers = up.state.last_headers.lock().unwrap();
        let seen: Vec<_> = headers.get_all("content-length").iter().collect();
        assert_eq!(seen, ["4"], "{lengths:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn http2_cookie_fields_reach_an_http1_upstream_as_one_cookie_line() {
    let up = Upstream::start("a").await;
    let gw = catch_all(&up, "");
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(30))
        .no_proxy()
        .build()
        .unwrap();
    let resp = h2
        .get(gw.url("/cookies"))
        .header("cookie", "session=s1")
        .header("cookie", "theme=dark; lang=en")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    let headers = up.state.last_headers.lock().unwrap();
    let seen: Vec<_> = headers.get_all("cookie").iter().collect();
    assert_eq!(seen, ["session=s1; theme=dark; lang=en"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_huge_ejection_time_keeps_the_backend_ejected_instead_of_wrapping_around() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    // More milliseconds than a u64 holds: cast down, it was about 0.4 s.
    let gw = Gateway::start(&format!(
        "upstreams:
  pool:
    backends: [{{ address: \"{}\" }}, {{ address: \"{}\" }}]
    \
         retries: 0
    passive_health: {{ consecutive_failures: 1, ejection_time: 18446744073709552s }}
\
         routes:
  - id: all
    upstream: pool
",
        a.addr, b.addr
    ));
    let resp = client().get(gw.url("/status/500")).send().await.unwrap();
    assert_eq!(resp.status(), 500);
    let (ejected, other) = if a.hits() == 1 { (&a, &b) } else { (&b, &a) };
    tokio::time::sleep(Duration::from_secs(1)).await;
    for i in 0..6 {
        let resp = client()
            .get(gw.url(&format!("/after/{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-upstream"], other.state.name.as_str());
    }
    assert_eq!(ejected.hits(), 1, "the ejected backend got traffic again");
    assert_eq!(gw.backend_healthy("pool", ejected.addr), Some(false));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_http2_connection_is_closed_after_the_keepalive_timeout() {
    let up = Upstream::start("a").await;
    let dir = tempfile::tempdir().unwrap();
    let (port, admin_port) = (free_port(), free_port());
    let text = base_config(port, admin_port, dir.path()).replace(
        "  grace_period: 2s\n",
        "  grace_period: 2s\n  downstream_keepalive_timeout: 1s\n",
    ) + &format!(
        "upstreams:\n  a:\n    backends: [{{ address: \"{}\" }}]\n\
         routes:\n  - id: all\n    upstream: a\n",
        up.addr
    );
    let gw = Gateway::spawn_with(dir, port, admin_port, &text, &[]);
    gw.wait_ready();
    // The HTTP/2 preface and an empty SETTINGS frame, then nothing: the
    // connection holds a socket and a task until the gateway closes it.
    let mut s = TcpStream::connect(("127.0.0.1", gw.port)).await.unwrap();
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 1024];
        while s.read(&mut buf).await.is_ok_and(|n| n > 0) {}
    })
    .await;
    assert!(closed.is_ok(), "an idle HTTP/2 connection stayed open");
    let resp = client().get(gw.url("/after")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

/// Runs `portico check` on `text`; returns the exit code and stderr.
fn check(text: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portico.yaml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_portico"))
        .arg("check")
        .arg("-c")
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_refuses_settings_that_would_abort_the_process_or_fail_every_request() {
    let base = "version: 1\nlisteners: [{address: '127.0.0.1:8080'}]\n\
                upstreams: {a: {backends: [{address: '127.0.0.1:9000'}]}}\n";
    for (setting, key) in [
        ("server: {threads: 100000000}\n", "server.threads"),
        (
            "server: {upstream_keepalive_pool_size: 1000000000000000}\n",
            "server.upstream_keepalive_pool_size",
        ),
        (
            "routes: [{id: r, upstream: a, rewrite: {regex: '^/(.*)$', replace: '/a b/$1'}}]\n",
            "routes[0].rewrite.replace",
        ),
    ] {
        let (code, stderr) = check(&format!("{base}{setting}"));
        assert_eq!(code, Some(2), "{setting}: {stderr}");
        assert!(
            stderr.contains(&format!("  {key}: ")),
            "{setting}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    // A quoted line break stays escaped: one problem, one line.
    let (code, stderr) = check(&format!(
        "{base}routes: [{{id: r, upstream: \"no\\nsuch\"}}]\naccess_log: {{target: \"off\\n\"}}\n"
    ));
    assert_eq!(code, Some(2), "{stderr}");
    let problems: Vec<&str> = stderr.lines().skip(1).collect();
    assert_eq!(problems.len(), 2, "one line per problem: {stderr}");
    assert!(
        problems[0].starts_with("  routes[0].upstream: "),
        "{stderr}"
    );
    assert!(
        problems[0].contains("define upstreams.\"no\\nsuch\""),
        "{stderr}"
    );
    assert!(problems[1].starts_with("  access_log.target: "), "{stderr}");
}

#[test]
fn run_on_a_listen_address_it_cannot_bind_exits_with_the_problem_instead_of_half_starting() {
    // A port another process listens on, and an address this host lacks
    // (TEST-NET-1): Pingora panicked in the proxy's thread while the admin
    // listener stayed up and answered /readyz with 200.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap().to_string();
    for (address, reason) in [(busy_addr.as_str(), "in use"), ("192.0.2.1:8080", "assign")] {
        let dir = tempfile::tempdir().unwrap();
        let admin_port = free_port();
        let text = base_config(free_port(), admin_port, dir.path()).replace(
            "listeners:\n  - address: 127.0.0.1:",
            &format!("listeners:\n  - address: {address}\n  - address: 127.0.0.1:"),
        ) + "upstreams:\n  a:\n    backends: [{ address: \"127.0.0.1:9\" }]\n";
        let path = dir.path().join("portico.yaml");
        std::fs::write(&path, text).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_portico"))
            .arg("run")
            .arg("-c")
            .arg(&path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("`run` on {address} did not exit");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(status.code(), Some(2), "{address}: {stderr}");
        assert!(
            stderr.contains("  listeners[0].address: cannot listen on"),
            "{address}: {stderr}"
        );
        assert!(stderr.contains(reason), "{address}: {stderr}");
        assert!(std::net::TcpStream::connect(("127.0.0.1", admin_port)).is_err());
    }
}
