//! Portico's own failures on gRPC calls, as trailers-only gRPC statuses,
//! and `grpc-timeout` deadlines.

use std::time::Duration;

use tonic::Code;

use super::{client_of, h2c_upstream, GrpcServer, Msg, SilentBackend, SERVICE};
use crate::support::Gateway;

// ---- Portico's own failures, as gRPC statuses ----

/// A client of `gw` whose calls go to `/portico.test.Echo/<method>`.
async fn call(gw: &Gateway, method: &str, key: Option<&str>) -> tonic::Status {
    let mut client = client_of(gw).await;
    let mut req = tonic::Request::new(Msg::text("hi"));
    if let Some(key) = key {
        req.metadata_mut().insert("x-api-key", key.parse().unwrap());
    }
    match client.call_unary(method, req).await {
        Ok(reply) => panic!("{method} answered {reply:?} instead of failing"),
        Err(status) => status,
    }
}

/// A unary gRPC call over cleartext HTTP/2 from a plain client; returns the
/// response header block (a trailers-only answer carries the status there).
async fn raw_call(gw: &Gateway, path: &str, timeout: Option<&str>) -> (http::HeaderMap, Vec<u8>) {
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let mut req = client
        .post(gw.url(path))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(vec![0u8, 0, 0, 0, 0]);
    if let Some(t) = timeout {
        req = req.header("grpc-timeout", t);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let headers = resp.headers().clone();
    (headers, resp.bytes().await.unwrap().to_vec())
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A listener that accepts connections and closes them at once, as a
/// crashing backend does.
async fn resetting_backend() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            drop(conn);
        }
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread")]
async fn each_failure_portico_produces_is_a_grpc_status_with_its_message() {
    let server = GrpcServer::start().await;
    let closed = crate::support::free_port();
    let (resetting, _reset_task) = resetting_backend().await;
    let key = "grpc-test-key-0123456789";
    let route = |method: &str, upstream: &str, extra: &str| {
        format!(
            "  - {{id: {method}, match: {{grpc: {{service: {SERVICE}, method: {method}}}}}, \
             upstream: {upstream}{extra}}}\n"
        )
    };
    let gw = Gateway::start(&format!(
        "rate_limiting:\n  limits:\n    one: {{limit: 1, window: 1h, key: client}}\n\
consumers:
  - id: app
    groups: [apps]
    credentials: {{api_keys: ['sha256:{hash}']}}
upstreams:
{echo}  down:
    protocol: h2c
    retries: 0
    backends: [{{ address: \"127.0.0.1:{closed}\" }}]
  reset:
    protocol: h2c
    retries: 0
    backends: [{{ address: \"{resetting}\" }}]
  sick:
    protocol: h2c
    backends: [{{ address: \"127.0.0.1:{closed}\" }}]
    health_check: {{type: tcp, interval: 100ms, unhealthy_threshold: 1}}
routes:
{keyed}{admin}{limited}{down}{reset}{sick}",
        hash = sha256_hex(key),
        echo = h2c_upstream("echo", &[&server], ""),
        keyed = route("Keyed", "echo", ", auth: {methods: [api_key]}"),
        admin = route(
            "Admin",
            "echo",
            ", auth: {methods: [api_key], groups: [admins]}"
        ),
        limited = route("Unary", "echo", ", policies: {rate_limits: [one]}"),
        down = route("Down", "down", ""),
        reset = route("Reset", "reset", ""),
        sick = route("Sick", "sick", ""),
    ));

    let status = call(&gw, "NoSuchMethod", None).await;
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");
    assert_eq!(status.message(), "no route matches this request");

    let status = call(&gw, "Keyed", None).await;
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");

    let status = call(&gw, "Admin", Some(key)).await;
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");

    let mut client = client_of(&gw).await;
    client.unary(Msg::text("first")).await.unwrap();
    let status = call(&gw, "Unary", None).await;
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("too many requests"), "{status:?}");

    let status = call(&gw, "Down", None).await;
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");

    let status = call(&gw, "Reset", None).await;
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");

    let status = call(&gw, "Sick", None).await;
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(
        status.message(),
        "no healthy backend is available for this route"
    );

    // Only the one allowed call reached the server.
    assert_eq!(server.calls(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refusal_is_http_200_with_the_status_in_the_header_block_and_no_body() {
    let gw = Gateway::start(
        "upstreams:\n  u: {backends: [{address: '127.0.0.1:9'}]}\n\
         routes:\n  - {id: r, match: {path: {prefix: /only}}, upstream: u}\n",
    );
    let (headers, body) = raw_call(&gw, "/pkg.Svc/Method", None).await;
    assert_eq!(headers["content-type"], "application/grpc");
    assert_eq!(headers["grpc-status"], "12");
    assert_eq!(headers["grpc-message"], "no route matches this request");
    assert!(headers.contains_key("x-request-id"));
    assert!(body.is_empty());
}

// ---- deadlines ----

#[tokio::test(flavor = "multi_thread")]
async fn a_call_whose_grpc_timeout_passes_is_answered_deadline_exceeded_by_portico() {
    let silent = SilentBackend::start().await;
    let gw = Gateway::start(&format!(
        "upstreams:
  slow:
    protocol: h2c
    passive_health: {{consecutive_failures: 1}}
    backends: [{{ address: \"{}\" }}]
routes:
  - {{id: slow, match: {{grpc: {{service: {SERVICE}}}}}, upstream: slow}}
",
        silent.addr
    ));
    // A plain HTTP/2 client: tonic's own client enforces the deadline
    // itself and would give up first, hiding Portico's answer.
    for _ in 0..2 {
        let (headers, _) = raw_call(&gw, &format!("/{SERVICE}/Unary"), Some("300m")).await;
        assert_eq!(headers["grpc-status"], "4", "{headers:?}");
        assert_eq!(
            headers["grpc-message"],
            "the upstream did not answer in time"
        );
    }
    // The backend heard the time left, never more than the client's 300 ms.
    let timeouts = silent.timeouts.lock().unwrap().clone();
    assert_eq!(timeouts.len(), 2, "{timeouts:?}");
    for t in &timeouts {
        let millis: u64 = t.strip_suffix('m').unwrap().parse().unwrap();
        assert!(millis > 0 && millis <= 300, "{t}");
    }
    // Two timeouts the client's deadline caused did not eject the backend
    // (one failure would, with `consecutive_failures: 1`).
    assert_eq!(gw.backend_healthy("slow", silent.addr), Some(true));
}

/// Sends one HTTP/2 request by hand (prior knowledge) and returns the frames
/// the gateway sends on stream 1 as (type, flags), up to the one that ends
/// the stream.
async fn stream_one_frames(port: u16, path: &str) -> Vec<(u8, u8)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let literal = |out: &mut Vec<u8>, text: &str| {
        out.push(text.len() as u8); // short strings, no Huffman coding
        out.extend_from_slice(text.as_bytes());
    };
    // HPACK: :method POST, :scheme http (static), then literals without indexing.
    let mut block = vec![0x83, 0x86, 0x04];
    literal(&mut block, path);
    block.push(0x01);
    literal(&mut block, "127.0.0.1");
    block.extend_from_slice(&[0x0f, 0x10]); // content-type (static index 31)
    literal(&mut block, "application/grpc");
    block.push(0x00);
    literal(&mut block, "te");
    literal(&mut block, "trailers");
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]); // empty SETTINGS
    let len = (block.len() as u32).to_be_bytes();
    // HEADERS, END_HEADERS | END_STREAM, stream 1
    out.extend_from_slice(&[len[1], len[2], len[3], 1, 0x05, 0, 0, 0, 1]);
    out.extend_from_slice(&block);
    tcp.write_all(&out).await.unwrap();
    let mut frames = Vec::new();
    let read = async {
        loop {
            let mut head = [0u8; 9];
            tcp.read_exact(&mut head).await.unwrap();
            let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            let mut payload = vec![0u8; len];
            tcp.read_exact(&mut payload).await.unwrap();
            let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
            if stream == 1 {
                frames.push((head[3], head[4]));
                if head[4] & 0x01 != 0 || head[3] == 3 {
                    return; // END_STREAM, or RST_STREAM
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("stream 1 never ended");
    frames
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refusal_over_http2_is_one_headers_frame_that_ends_the_stream() {
    let gw = Gateway::start(
        "upstreams:\n  u: {backends: [{address: '127.0.0.1:9'}]}\n\
         routes:\n  - {id: r, match: {path: {prefix: /only}}, upstream: u}\n",
    );
    let frames = stream_one_frames(gw.port, "/pkg.Svc/Method").await;
    // HEADERS (type 1) with END_STREAM and END_HEADERS: trailers-only.
    assert_eq!(frames, [(1, 0x05)]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_slower_than_the_pool_read_timeout_is_deadline_exceeded() {
    let silent = SilentBackend::start().await;
    let gw = Gateway::start(&format!(
        "upstreams:
  slow:
    protocol: h2c
    timeouts: {{read: 300ms}}
    backends: [{{ address: \"{}\" }}]
routes:
  - {{id: slow, match: {{grpc: {{service: {SERVICE}}}}}, upstream: slow}}
",
        silent.addr
    ));
    let status = client_of(&gw)
        .await
        .unary(Msg::text("no deadline of its own"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert_eq!(status.message(), "the upstream did not answer in time");
    // Without a client deadline nothing was forwarded as one.
    assert_eq!(silent.timeouts.lock().unwrap().as_slice(), [String::new()]);
}
