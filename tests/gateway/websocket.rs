//! WebSocket through the gateway: a real tokio-tungstenite server and client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use crate::support::raw;
use crate::support::tls::Ca;
use crate::support::websocket::{client_frame, close_code, connect, try_connect, WsUpstream};
use crate::support::{eventually, Gateway};

/// How long any single expected event may take before a test fails.
const PATIENCE: Duration = Duration::from_secs(10);

/// A gateway with one route, `chat`, to `up`; `websocket` is the route's
/// `websocket:` value in flow style, or empty for the defaults.
fn gateway(up: SocketAddr, websocket: &str) -> Gateway {
    let section = if websocket.is_empty() {
        String::new()
    } else {
        format!("    websocket: {websocket}\n")
    };
    Gateway::start(&format!(
        "upstreams:
  chat:
    backends: [{{ address: \"{up}\" }}]
routes:
  - id: chat
    match: {{ path: {{ prefix: / }} }}
    upstream: chat
{section}"
    ))
}

/// The value of one sample line of the gateway's metrics, 0 when absent.
fn metric(gw: &Gateway, line_start: &str) -> f64 {
    gw.metrics()
        .lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// A handshake written by hand, with `fields` as extra lines.
fn handshake(port: u16, fields: &[&str]) -> String {
    let mut text = format!(
        "GET /chat HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\n"
    );
    for f in fields {
        text.push_str(f);
        text.push_str("\r\n");
    }
    text.push_str("\r\n");
    text
}

/// The client gets close `code` from the gateway, and the upstream gets the
/// same code.
async fn assert_closed_on_both_sides(
    ws: &mut WebSocketStream<TcpStream>,
    up: &WsUpstream,
    code: u16,
) {
    let got = tokio::time::timeout(PATIENCE, close_code(ws))
        .await
        .unwrap();
    assert_eq!(got, Some(code));
    let what = format!("the upstream to get close {code}");
    eventually(PATIENCE, &what, || async {
        up.state.close_codes() == vec![Some(code)]
    })
    .await;
}

/// Starts the closing handshake with 1000 and returns the code of the
/// upstream's answer.
async fn close_normally(ws: &mut WebSocketStream<TcpStream>) -> Option<u16> {
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: "done".into(),
    };
    ws.close(Some(frame)).await.unwrap();
    tokio::time::timeout(PATIENCE, close_code(ws))
        .await
        .unwrap()
}

const KEY: &str = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==";
const V13: &str = "Sec-WebSocket-Version: 13";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_text_and_binary_messages_are_echoed_in_order() {
    let up = WsUpstream::echo().await;
    let gw = gateway(up.addr, "");
    let ws = connect(gw.port, "/chat").await;
    let (mut sink, mut stream) = ws.split();
    const N: usize = 10_000;
    let message = |i: usize| {
        if i.is_multiple_of(2) {
            Message::text(format!("text message {i}"))
        } else {
            Message::binary(i.to_be_bytes().repeat(1 + i % 50))
        }
    };
    // Sent and read at once: a client that only wrote would fill the
    // buffers of every hop and wait forever.
    let sender = tokio::spawn(async move {
        for i in 0..N {
            sink.send(message(i)).await.unwrap();
        }
        sink
    });
    for i in 0..N {
        let got = tokio::time::timeout(PATIENCE, stream.next())
            .await
            .unwrap_or_else(|_| panic!("echo {i} did not come back"))
            .unwrap()
            .unwrap();
        assert_eq!(got, message(i), "echo {i}");
    }
    let mut ws = sender.await.unwrap().reunite(stream).unwrap();
    assert_eq!(close_normally(&mut ws).await, Some(1000));
    let up_to = "portico_websocket_messages_total{direction=\"client_to_upstream\",route=\"chat\"}";
    let back = "portico_websocket_messages_total{direction=\"upstream_to_client\",route=\"chat\"}";
    assert_eq!(metric(&gw, up_to), N as f64);
    assert_eq!(metric(&gw, back), N as f64);
    eventually(
        PATIENCE,
        "the access-log line of the connection",
        || async {
            gw.access_log()
                .iter()
                .any(|l| l["status"] == 101 && l["route"] == "chat")
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragmented_messages_with_a_ping_between_fragments_arrive_whole() {
    let up = WsUpstream::echo().await;
    let gw = gateway(up.addr, "");
    let mut ws = connect(gw.port, "/chat").await;
    let mut raw = client_frame(false, 0x1, b"Hel");
    raw.extend(client_frame(true, 0x9, b"between"));
    raw.extend(client_frame(false, 0x0, b"lo, "));
    raw.extend(client_frame(true, 0x0, b"world"));
    raw.extend(client_frame(false, 0x2, &[1, 2, 3]));
    raw.extend(client_frame(true, 0x0, &[4, 5]));
    ws.get_mut().write_all(&raw).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let msg = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("echoes did not come back")
            .unwrap()
            .unwrap();
        seen.push(msg);
    }
    assert_eq!(
        seen,
        vec![
            Message::Pong("between".into()),
            Message::text("Hello, world"),
            Message::binary(vec![1, 2, 3, 4, 5]),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_is_answered_by_the_upstream_with_its_payload() {
    let up = WsUpstream::echo().await;
    let gw = gateway(up.addr, "");
    let mut ws = connect(gw.port, "/chat").await;
    ws.send(Message::Ping("are you there".into()))
        .await
        .unwrap();
    let got = tokio::time::timeout(PATIENCE, ws.next()).await.unwrap();
    assert_eq!(got.unwrap().unwrap(), Message::Pong("are you there".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_is_closed_with_1009_on_both_sides() {
    let up = WsUpstream::echo().await;
    let gw = gateway(up.addr, "{ max_message_size: 1KiB }");
    let mut ws = connect(gw.port, "/chat").await;
    // At the limit passes.
    ws.send(Message::binary(vec![7u8; 1024])).await.unwrap();
    let echo = tokio::time::timeout(PATIENCE, ws.next()).await.unwrap();
    assert_eq!(echo.unwrap().unwrap(), Message::binary(vec![7u8; 1024]));
    ws.send(Message::binary(vec![7u8; 1025])).await.unwrap();
    assert_closed_on_both_sides(&mut ws, &up, 1009).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragments_that_each_fit_but_together_pass_the_limit_are_closed_with_1009() {
    let up = WsUpstream::echo().await;
    let gw = gateway(up.addr, "{ max_message_size: 1000 }");
    let mut ws = connect(gw.port, "/chat").await;
    let mut raw = client_frame(false, 0x2, &[1; 600]);
    raw.extend(client_frame(true, 0x0, &[1; 600]));
    ws.get_mut().write_all(&raw).await.unwrap();
    let code = tokio::time::timeout(PATIENCE, close_code(&mut ws))
        .await
        .unwrap();
    assert_eq!(code, Some(1009));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_refusing_the_upgrade_gives_the_client_its_status_and_body() {
    for chunked in [false, true] {
        let up = WsUpstream::refusing(403, "no entry for you", chunked).await;
        let gw = gateway(up.addr, "");
        let resp = raw::send(gw.port, handshake(gw.port, &[KEY, V13]).as_bytes()).await;
        assert_eq!(resp.status, 403, "chunked: {chunked}");
        assert_eq!(resp.body, b"no entry for you", "chunked: {chunked}");
        assert_eq!(resp.header("content-type"), Some("text/plain"));
        assert!(resp.has_header("x-request-id"));
        // A real client sees the same refusal.
        match try_connect(gw.port, "/chat", &[]).await {
            Err(WsError::Http(response)) => assert_eq!(response.status(), 403),
            other => panic!("expected the upstream's 403, got {:?}", other.map(|_| ())),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_handshakes_are_refused_and_never_reach_the_upstream() {
    let up = WsUpstream::echo().await;
    let gw = gateway(up.addr, "");
    let missing_key = raw::send(gw.port, handshake(gw.port, &[V13]).as_bytes()).await;
    assert_eq!(missing_key.status, 400);
    assert_eq!(missing_key.json()["error"], "bad_request");
    let short_key = "Sec-WebSocket-Key: c2hvcnQ=";
    let bad_key = raw::send(gw.port, handshake(gw.port, &[short_key, V13]).as_bytes()).await;
    assert_eq!(bad_key.status, 400);
    let old = raw::send(
        gw.port,
        handshake(gw.port, &[KEY, "Sec-WebSocket-Version: 8"]).as_bytes(),
    )
    .await;
    assert_eq!(old.status, 426);
    assert_eq!(old.header("sec-websocket-version"), Some("13"));
    let post = handshake(gw.port, &[KEY, V13]).replacen("GET", "POST", 1);
    let post = raw::send(gw.port, post.as_bytes()).await;
    assert_eq!(post.status, 400);
    assert_eq!(up.state.connections(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_not_on_the_routes_list_is_refused_with_403() {
    let up = WsUpstream::echo().await;
    let gw = gateway(up.addr, "{ origins: [\"https://app.example.com\"] }");
    let other = "Origin: https://evil.example.com";
    let refused = raw::send(gw.port, handshake(gw.port, &[KEY, V13, other]).as_bytes()).await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.json()["error"], "origin_denied");
    assert_eq!(up.state.connections(), 0);
    let mut ws = try_connect(gw.port, "/chat", &[("origin", "https://app.example.com")])
        .await
        .unwrap();
    ws.send(Message::text("from the app")).await.unwrap();
    let echo = tokio::time::timeout(PATIENCE, ws.next()).await.unwrap();
    assert_eq!(echo.unwrap().unwrap(), Message::text("from the app"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_concurrent_connections_each_echo_and_are_counted() {
    let up = WsUpstream::echo().await;
    let gw = Arc::new(gateway(up.addr, ""));
    const N: usize = 500;
    let mut clients = Vec::with_capacity(N);
    for _ in 0..N {
        clients.push(tokio::spawn(connect(gw.port, "/chat")));
    }
    let mut open = Vec::with_capacity(N);
    for c in clients {
        open.push(c.await.unwrap());
    }
    let gauge = "portico_websocket_connections{route=\"chat\"}";
    assert_eq!(metric(&gw, gauge), N as f64);
    let mut echoes = Vec::with_capacity(N);
    for (i, mut ws) in open.into_iter().enumerate() {
        echoes.push(tokio::spawn(async move {
            let text = format!("connection {i}");
            ws.send(Message::text(text.clone())).await.unwrap();
            let echo = tokio::time::timeout(PATIENCE, ws.next()).await.unwrap();
            assert_eq!(echo.unwrap().unwrap(), Message::text(text));
            close_normally(&mut ws).await
        }));
    }
    for e in echoes {
        assert_eq!(e.await.unwrap(), Some(1000));
    }
    let gw2 = Arc::clone(&gw);
    eventually(PATIENCE, "every connection to be closed", move || {
        let gw = Arc::clone(&gw2);
        async move { metric(&gw, gauge) == 0.0 }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_closed_with_1001_at_its_timeout() {
    let up = WsUpstream::echo().await;
    let gw = gateway(up.addr, "{ idle_timeout: 1s, ping_interval: 0s }");
    let mut ws = connect(gw.port, "/chat").await;
    assert_closed_on_both_sides(&mut ws, &up, 1001).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_answer_pings_is_pinged_and_then_closed() {
    let up = WsUpstream::echo().await;
    let gw = gateway(up.addr, "{ idle_timeout: 1500ms, ping_interval: 200ms }");
    let ws = connect(gw.port, "/chat").await;
    // Read the raw bytes, so that nothing answers the pings.
    let mut tcp = ws.into_inner();
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 1024];
    let read_all = async {
        loop {
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(PATIENCE, read_all).await.unwrap();
    let mut frames = Vec::new();
    let mut rest = &bytes[..];
    while rest.len() >= 2 {
        let len = usize::from(rest[1] & 0x7F);
        assert!(len < 126, "short control frames only: {bytes:?}");
        frames.push((rest[0], rest[2..2 + len].to_vec()));
        rest = &rest[2 + len..];
    }
    let (last, pings) = frames.split_last().expect("no frames at all");
    assert!(!pings.is_empty(), "no ping before the close: {frames:?}");
    assert!(pings.iter().all(|(b0, _)| *b0 == 0x89), "{frames:?}");
    assert_eq!(last.0, 0x88);
    assert_eq!(&last.1[..2], &1001u16.to_be_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_answering_pings_outlives_the_idle_timeout() {
    let up = WsUpstream::echo().await;
    let gw = gateway(up.addr, "{ idle_timeout: 1s, ping_interval: 200ms }");
    let mut ws = connect(gw.port, "/chat").await;
    // Three idle timeouts of silence but for pings, which tungstenite answers.
    let quiet = async {
        while let Some(msg) = ws.next().await {
            assert!(matches!(msg, Ok(Message::Ping(_))), "{msg:?}");
        }
        panic!("the connection ended");
    };
    assert!(tokio::time::timeout(Duration::from_secs(3), quiet)
        .await
        .is_err());
    ws.send(Message::text("still here")).await.unwrap();
    let echo = tokio::time::timeout(PATIENCE, async {
        loop {
            match ws.next().await.unwrap().unwrap() {
                Message::Ping(_) => continue,
                other => return other,
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(echo, Message::text("still here"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_cap_refuses_the_next_handshake_with_503_until_one_closes() {
    let up = WsUpstream::echo().await;
    let gw = gateway(up.addr, "{ max_connections: 2 }");
    let first = connect(gw.port, "/chat").await;
    let _second = connect(gw.port, "/chat").await;
    let refused = raw::send(gw.port, handshake(gw.port, &[KEY, V13]).as_bytes()).await;
    assert_eq!(refused.status, 503);
    assert_eq!(refused.json()["error"], "concurrency_limited");
    assert_eq!(up.state.connections(), 2);
    let mut first = first;
    assert_eq!(close_normally(&mut first).await, Some(1000));
    eventually(PATIENCE, "a slot to be free again", || async {
        try_connect(gw.port, "/chat", &[]).await.is_ok()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_connect_echo_close_cycles_all_succeed() {
    let up = WsUpstream::echo().await;
    let gw = gateway(up.addr, "");
    for i in 0..300 {
        let mut ws = connect(gw.port, "/chat").await;
        let text = format!("cycle {i}");
        ws.send(Message::text(text.clone())).await.unwrap();
        let echo = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .unwrap_or_else(|_| panic!("cycle {i}: no echo"));
        assert_eq!(echo.unwrap().unwrap(), Message::text(text), "cycle {i}");
        assert_eq!(close_normally(&mut ws).await, Some(1000), "cycle {i}");
    }
    assert_eq!(up.state.connections(), 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_routes_ip_filter_and_rate_limit_apply_at_the_handshake() {
    let up = WsUpstream::echo().await;
    let gw = Gateway::start(&format!(
        "rate_limiting:
  limits:
    two: {{ limit: 2, window: 1h, key: client }}
upstreams:
  chat:
    backends: [{{ address: \"{}\" }}]
routes:
  - id: closed
    match: {{ path: {{ prefix: /closed }} }}
    upstream: chat
    policies: {{ ip_filter: {{ deny: [127.0.0.1] }} }}
  - id: limited
    match: {{ path: {{ prefix: / }} }}
    upstream: chat
    policies: {{ rate_limits: [two] }}
",
        up.addr
    ));
    let denied = handshake(gw.port, &[KEY, V13]).replacen("/chat", "/closed", 1);
    let denied = raw::send(gw.port, denied.as_bytes()).await;
    assert_eq!(denied.status, 403);
    assert_eq!(up.state.connections(), 0);
    let _first = connect(gw.port, "/chat").await;
    let _second = connect(gw.port, "/chat").await;
    let third = raw::send(gw.port, handshake(gw.port, &[KEY, V13]).as_bytes()).await;
    assert_eq!(third.status, 429);
    assert_eq!(up.state.connections(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_the_upstream_sends_right_behind_its_101_reach_the_client() {
    let up = WsUpstream::greeting(Some(10)).await;
    let gw = gateway(up.addr, "");
    for _ in 0..20 {
        let mut ws = connect(gw.port, "/chat").await;
        let first = tokio::time::timeout(PATIENCE, ws.next()).await.unwrap();
        assert_eq!(first.unwrap().unwrap(), Message::binary(vec![b'g'; 10]));
        ws.send(Message::text("after the greeting")).await.unwrap();
        let echo = tokio::time::timeout(PATIENCE, ws.next()).await.unwrap();
        assert_eq!(echo.unwrap().unwrap(), Message::text("after the greeting"));
        assert_eq!(close_normally(&mut ws).await, Some(1000));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_from_the_upstream_is_closed_with_1009_on_both_sides() {
    let up = WsUpstream::greeting(Some(2048)).await;
    let gw = gateway(up.addr, "{ max_message_size: 1KiB }");
    let mut ws = connect(gw.port, "/chat").await;
    assert_closed_on_both_sides(&mut ws, &up, 1009).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmasked_client_frame_is_closed_with_1002_on_both_sides() {
    let up = WsUpstream::echo().await;
    let gw = gateway(up.addr, "");
    let mut ws = connect(gw.port, "/chat").await;
    ws.get_mut()
        .write_all(&[0x81, 0x02, b'h', b'i'])
        .await
        .unwrap();
    assert_closed_on_both_sides(&mut ws, &up, 1002).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_refusing_connections_is_passed_over_and_none_left_is_a_502() {
    let up = WsUpstream::echo().await;
    // Bound and dropped: nothing listens there.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let gw = Gateway::start(&format!(
        "upstreams:
  chat:
    backends: [{{ address: \"{dead}\" }}, {{ address: \"{}\" }}]
    passive_health: {{ consecutive_failures: 0 }}
  gone:
    backends: [{{ address: \"{dead}\" }}]
routes:
  - id: gone
    match: {{ path: {{ prefix: /gone }} }}
    upstream: gone
  - id: chat
    match: {{ path: {{ prefix: / }} }}
    upstream: chat
",
        up.addr
    ));
    for i in 0..4 {
        let mut ws = connect(gw.port, "/chat").await;
        ws.send(Message::text(format!("try {i}"))).await.unwrap();
        let echo = tokio::time::timeout(PATIENCE, ws.next()).await.unwrap();
        assert_eq!(echo.unwrap().unwrap(), Message::text(format!("try {i}")));
    }
    let gone = handshake(gw.port, &[KEY, V13]).replacen("/chat", "/gone", 1);
    let gone = raw::send(gw.port, gone.as_bytes()).await;
    assert_eq!(gone.status, 502);
    assert_eq!(gone.json()["error"], "upstream_failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_let_go_after_the_idle_timeout() {
    // Far more than the loopback socket buffers hold, so that the gateway's
    // writes to the client stall.
    let up = WsUpstream::greeting(Some(64 << 20)).await;
    let gw = gateway(
        up.addr,
        "{ max_message_size: 128MiB, idle_timeout: 1s, ping_interval: 0s }",
    );
    let ws = connect(gw.port, "/chat").await;
    let gauge = "portico_websocket_connections{route=\"chat\"}";
    assert_eq!(metric(&gw, gauge), 1.0);
    eventually(PATIENCE, "the stalled connection to be let go", || async {
        metric(&gw, gauge) == 0.0
    })
    .await;
    drop(ws);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_over_tls_carries_websocket_with_its_ca_checked() {
    let backend_ca = Ca::new("Backend CA");
    let dir = tempfile::tempdir().unwrap();
    let ca = backend_ca.write(dir.path(), "backend-ca");
    let good = WsUpstream::echo_tls(&backend_ca.server(&["127.0.0.1"])).await;
    let rogue = WsUpstream::echo_tls(&Ca::new("Rogue CA").server(&["127.0.0.1"])).await;
    let gw = Gateway::start(&format!(
        "upstreams:
  good:
    backends: [{{ address: \"{}\" }}]
    tls: {{ ca: \"{ca}\" }}
  rogue:
    backends: [{{ address: \"{}\" }}]
    tls: {{ ca: \"{ca}\" }}
routes:
  - id: rogue
    match: {{ path: {{ prefix: /rogue }} }}
    upstream: rogue
  - id: good
    match: {{ path: {{ prefix: / }} }}
    upstream: good
",
        good.addr, rogue.addr
    ));
    let mut ws = connect(gw.port, "/chat").await;
    ws.send(Message::text("over tls")).await.unwrap();
    let echo = tokio::time::timeout(PATIENCE, ws.next()).await.unwrap();
    assert_eq!(echo.unwrap().unwrap(), Message::text("over tls"));
    let refused = handshake(gw.port, &[KEY, V13]).replacen("/chat", "/rogue", 1);
    let refused = raw::send(gw.port, refused.as_bytes()).await;
    assert_eq!(refused.status, 502);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_gateway_closes_its_connections_with_1001() {
    let up = WsUpstream::echo().await;
    let gw = gateway(up.addr, "");
    let mut ws = connect(gw.port, "/chat").await;
    ws.send(Message::text("before the stop")).await.unwrap();
    let echo = tokio::time::timeout(PATIENCE, ws.next()).await.unwrap();
    assert_eq!(echo.unwrap().unwrap(), Message::text("before the stop"));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(gw.pid()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_closed_on_both_sides(&mut ws, &up, 1001).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_101_with_a_wrong_accept_or_an_extension_is_answered_502() {
    // The accept for the key of `KEY`, per RFC 6455 section 1.3.
    let right = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
    let answers = [
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: bm90IHRoZSByaWdodCBvbmU=\r\n\r\n"
            .to_string(),
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {right}\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
        ),
    ];
    for answer in answers {
        let up = WsUpstream::answering(answer.clone()).await;
        let gw = gateway(up.addr, "");
        let resp = raw::send(gw.port, handshake(gw.port, &[KEY, V13]).as_bytes()).await;
        assert_eq!(resp.status, 502, "{answer}");
        assert_eq!(resp.json()["error"], "upstream_failed");
    }
}
