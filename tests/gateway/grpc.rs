//! gRPC through the gateway: a real tonic server and client.

use std::time::Duration;

use futures_util::future::join_all;
use tonic::Code;

use crate::support::grpc::{h2c_upstream, EchoClient, GrpcServer, Msg, SilentBackend, SERVICE};
use crate::support::{eventually, Gateway};

/// A gateway with pool `echo` over h2c to `server` (plus `extra` upstream
/// keys) and one route `grpc` matching the whole service.
fn gateway_for(server: &GrpcServer, extra: &str) -> Gateway {
    Gateway::start(&format!(
        "upstreams:\n{}routes:
  - id: grpc
    match: {{ grpc: {{ service: {SERVICE} }} }}
    upstream: echo
",
        h2c_upstream("echo", &[server], extra)
    ))
}

async fn client_of(gw: &Gateway) -> EchoClient {
    EchoClient::connect(format!("127.0.0.1:{}", gw.port).parse().unwrap()).await
}

#[tokio::test(flavor = "multi_thread")]
async fn all_four_call_kinds_pass_with_their_trailers() {
    let server = GrpcServer::start().await;
    let gw = gateway_for(&server, "");
    let mut client = client_of(&gw).await;

    let reply = client.unary(Msg::text("hello")).await.unwrap();
    assert_eq!(reply.text, "hello");

    let ask = Msg {
        count: 5,
        ..Msg::text("tick")
    };
    let ticks = client.serve(ask).await.unwrap();
    assert_eq!(
        ticks.iter().map(|m| m.count).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );

    let parts = ["a", "b", "c"].map(Msg::text).to_vec();
    let joined = client.collect(parts).await.unwrap();
    assert_eq!((joined.text.as_str(), joined.count), ("abc", 3));

    let said = ["x", "y", "z", "w"].map(Msg::text).to_vec();
    let (echoes, trailers) = client.chat(said).await.unwrap();
    let texts: Vec<&str> = echoes.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["x", "y", "z", "w"]);
    assert_eq!(trailers.get("x-echoed").unwrap(), "4");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_error_status_from_the_server_reaches_the_client_unchanged() {
    let server = GrpcServer::start().await;
    let gw = gateway_for(&server, "");
    let mut client = client_of(&gw).await;
    let ask = Msg {
        fail_code: Code::AlreadyExists as i32,
        ..Msg::text("dup")
    };
    let status = client.unary(ask).await.unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);
    assert_eq!(status.message(), "asked to fail");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_four_mebibyte_message_passes_both_ways() {
    let server = GrpcServer::start().await;
    let gw = gateway_for(&server, "");
    let mut client = client_of(&gw).await;
    let data: Vec<u8> = (0..4 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let ask = Msg {
        data: data.clone(),
        ..Msg::text("big")
    };
    let reply = client.unary(ask).await.unwrap();
    assert_eq!(reply.data.len(), data.len());
    assert!(reply.data == data, "the 4 MiB payload came back altered");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_concurrent_streams_on_one_connection_share_few_upstream_connections() {
    let server = GrpcServer::start().await;
    let gw = gateway_for(&server, "    max_h2_streams: 100\n");
    // One client connection: every clone of the client shares its channel.
    let mut client = client_of(&gw).await;
    // One call first, so that the burst finds a pooled connection instead of
    // each early call racing to open its own.
    client.unary(Msg::text("warm-up")).await.unwrap();
    let calls = (0..1000).map(|i| {
        let mut c = client.clone();
        async move {
            let ask = Msg {
                delay_ms: 20,
                ..Msg::text(&format!("call {i}"))
            };
            c.unary(ask).await.map(|r| r.text == format!("call {i}"))
        }
    });
    let results = tokio::time::timeout(Duration::from_secs(120), join_all(calls))
        .await
        .expect("1,000 calls did not finish in two minutes");
    let ok = results.iter().filter(|r| matches!(r, Ok(true))).count();
    let failed: Vec<_> = results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .take(3)
        .collect();
    assert_eq!(ok, 1000, "some calls failed, e.g. {failed:?}");
    assert_eq!(server.calls(), 1001);
    // The gateway takes 100 streams at a time from one client connection;
    // with one stream per upstream connection (Pingora's default) that is
    // 100 connections, with 100 streams each a handful.
    let upstream_connections = server.connections();
    assert!(
        upstream_connections <= 50,
        "{upstream_connections} upstream connections for 1,000 calls"
    );
}

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

// ---- active health checks ----

#[tokio::test(flavor = "multi_thread")]
async fn a_grpc_health_check_takes_a_not_serving_backend_out_and_brings_it_back() {
    use tonic_health::ServingStatus::{NotServing, Serving};
    let (a, b) = (GrpcServer::start().await, GrpcServer::start().await);
    let check = format!(
        "    health_check: {{type: grpc, service: {SERVICE}, interval: 100ms, \
         healthy_threshold: 1, unhealthy_threshold: 1}}\n"
    );
    let gw = Gateway::start(&format!(
        "upstreams:\n{}routes:\n  - {{id: grpc, match: {{grpc: {{service: {SERVICE}}}}}, \
         upstream: echo}}\n",
        h2c_upstream("echo", &[&a, &b], &check)
    ));
    let mut client = client_of(&gw).await;
    let healthy = |s: &GrpcServer| gw.backend_healthy("echo", s.addr);
    assert_eq!((healthy(&a), healthy(&b)), (Some(true), Some(true)));

    a.health.set_service_status(SERVICE, NotServing).await;
    eventually(Duration::from_secs(10), "backend a marked down", || async {
        healthy(&a) == Some(false)
    })
    .await;
    let before = a.calls();
    for _ in 0..6 {
        client.unary(Msg::text("to b")).await.unwrap();
    }
    assert_eq!(a.calls(), before, "a backend marked down still got calls");

    b.health.set_service_status(SERVICE, NotServing).await;
    eventually(Duration::from_secs(10), "backend b marked down", || async {
        healthy(&b) == Some(false)
    })
    .await;
    let status = client.unary(Msg::text("nobody")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");

    a.health.set_service_status(SERVICE, Serving).await;
    eventually(Duration::from_secs(10), "backend a back up", || async {
        healthy(&a) == Some(true)
    })
    .await;
    client.unary(Msg::text("to a")).await.unwrap();
}

// ---- gRPC-Web ----

/// A gRPC-Web call over HTTP/1.1 from a plain client, as a browser library
/// makes it: `body` is the (possibly base64) request body, sent in chunks of
/// `chunk` bytes. Returns the status, headers and body bytes.
async fn web_call(
    gw: &Gateway,
    method: &str,
    content_type: &str,
    body: Vec<u8>,
    chunk: usize,
) -> (u16, http::HeaderMap, Vec<u8>) {
    let client = reqwest::Client::builder().http1_only().build().unwrap();
    web_call_with(&client, gw, method, content_type, body, chunk).await
}

/// [`web_call`] with the caller's client (HTTP/1.1 or HTTP/2).
async fn web_call_with(
    client: &reqwest::Client,
    gw: &Gateway,
    method: &str,
    content_type: &str,
    body: Vec<u8>,
    chunk: usize,
) -> (u16, http::HeaderMap, Vec<u8>) {
    let pieces: Vec<Result<Vec<u8>, std::io::Error>> =
        body.chunks(chunk).map(|c| Ok(c.to_vec())).collect();
    let resp = client
        .post(gw.url(&format!("/{SERVICE}/{method}")))
        .header("content-type", content_type)
        .header("x-grpc-web", "1")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            pieces,
        )))
        .send()
        .await
        .unwrap();
    let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
    (status, headers, resp.bytes().await.unwrap().to_vec())
}

/// One length-prefixed frame around `msg`.
fn framed(msg: &Msg) -> Vec<u8> {
    let payload = prost::Message::encode_to_vec(msg);
    let mut out = vec![0u8];
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&payload);
    out
}

/// Splits a gRPC-Web response body into its messages and its trailer lines.
fn unframe(mut body: &[u8]) -> (Vec<Msg>, Vec<String>) {
    let (mut messages, mut trailers) = (Vec::new(), Vec::new());
    while !body.is_empty() {
        let flags = body[0];
        let len = u32::from_be_bytes(body[1..5].try_into().unwrap()) as usize;
        let payload = &body[5..5 + len];
        if flags & 0x80 != 0 {
            let text = std::str::from_utf8(payload).unwrap();
            trailers.extend(
                text.split("\r\n")
                    .filter(|l| !l.is_empty())
                    .map(String::from),
            );
        } else {
            messages.push(<Msg as prost::Message>::decode(payload).unwrap());
        }
        body = &body[5 + len..];
    }
    (messages, trailers)
}

fn web_gateway(server: &GrpcServer) -> Gateway {
    gateway_for(server, "")
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_web_binary_calls_get_their_messages_and_trailers_in_the_body() {
    let server = GrpcServer::start().await;
    let gw = web_gateway(&server);
    let ask = Msg {
        count: 3,
        ..Msg::text("web")
    };
    let (status, headers, body) =
        web_call(&gw, "Serve", "application/grpc-web+proto", framed(&ask), 7).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/grpc-web+proto");
    let (messages, trailers) = unframe(&body);
    let counts: Vec<u32> = messages.iter().map(|m| m.count).collect();
    assert_eq!(counts, [0, 1, 2]);
    assert!(
        trailers.contains(&"grpc-status:0".to_string()),
        "{trailers:?}"
    );
    // The upstream got plain gRPC, with the promise to read trailers.
    assert_eq!(server.calls(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_web_text_bodies_are_decoded_for_the_upstream_and_encoded_back() {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let server = GrpcServer::start().await;
    let gw = web_gateway(&server);
    // Two messages on a client-streaming call, each encoded on its own (so
    // padding sits mid-body), sent in 5-byte pieces that cut quanta apart.
    let mut text = b64.encode(framed(&Msg::text("abc")));
    text.push_str(&b64.encode(framed(&Msg::text("de"))));
    assert!(
        text.trim_end_matches('=').contains('='),
        "padding must sit mid-body"
    );
    let (status, headers, body) = web_call(
        &gw,
        "Collect",
        "application/grpc-web-text+proto",
        text.into_bytes(),
        5,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/grpc-web-text+proto");
    let decoded = b64
        .decode(&body)
        .expect("the response body is one base64 text");
    let (messages, trailers) = unframe(&decoded);
    assert_eq!(messages.len(), 1);
    assert_eq!((messages[0].text.as_str(), messages[0].count), ("abcde", 2));
    assert!(
        trailers.contains(&"grpc-status:0".to_string()),
        "{trailers:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_web_text_passes_over_http2_as_browsers_on_tls_listeners_send_it() {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let server = GrpcServer::start().await;
    let gw = web_gateway(&server);
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let ask = Msg {
        count: 2,
        ..Msg::text("h2")
    };
    let text = b64.encode(framed(&ask)).into_bytes();
    let (status, headers, body) =
        web_call_with(&h2, &gw, "Serve", "application/grpc-web-text", text, 3).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/grpc-web-text+proto");
    let (messages, trailers) = unframe(&b64.decode(&body).unwrap());
    assert_eq!(messages.len(), 2);
    assert!(
        trailers.contains(&"grpc-status:0".to_string()),
        "{trailers:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_grpc_web_error_status_from_the_server_reaches_the_browser() {
    let server = GrpcServer::start().await;
    let gw = web_gateway(&server);
    let ask = Msg {
        fail_code: Code::NotFound as i32,
        ..Msg::text("gone")
    };
    let (status, headers, body) =
        web_call(&gw, "Unary", "application/grpc-web", framed(&ask), 64).await;
    assert_eq!(status, 200);
    // tonic answers a failed unary call trailers-only, so the status is in
    // the header block; had it come as trailers, it would be in the body.
    let (_, trailers) = unframe(&body);
    let in_headers = headers
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_owned());
    let in_body = trailers
        .iter()
        .find_map(|l| l.strip_prefix("grpc-status:").map(String::from));
    assert_eq!(
        in_headers.or(in_body).as_deref(),
        Some("5"),
        "{headers:?} {trailers:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_grpc_web_text_body_that_is_not_base64_is_invalid_argument_and_never_sent_on() {
    let server = GrpcServer::start().await;
    let gw = web_gateway(&server);
    let (status, headers, body) = web_call(
        &gw,
        "Unary",
        "application/grpc-web-text",
        b"AAAA!!!!".to_vec(),
        64,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(headers["grpc-status"], "3", "{headers:?}");
    assert_eq!(headers["content-type"], "application/grpc-web-text+proto");
    assert!(body.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_grpc_web_call_portico_refuses_gets_the_status_in_its_headers() {
    let server = GrpcServer::start().await;
    let gw = web_gateway(&server);
    let gw_path = "/other.Service/Method";
    let client = reqwest::Client::builder().http1_only().build().unwrap();
    let resp = client
        .post(gw.url(gw_path))
        .header("content-type", "application/grpc-web-text")
        .body("AAAAAAA=")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["grpc-status"], "12");
    assert_eq!(resp.headers()["content-length"], "0");
    assert_eq!(server.calls(), 0);
}

// ---- TLS on both sides ----

#[tokio::test(flavor = "multi_thread")]
async fn grpc_passes_over_tls_with_alpn_h2_on_both_sides() {
    use crate::support::tls::{certificate_entry, start_gateway, Ca};
    let root = Ca::new("Portico gRPC Test Root");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = root.server(&["api.test"]).write(dir.path(), "api");
    let ca_path = crate::support::tls::write(dir.path(), "root.pem", &root.pem());
    let mut backend_tls = root.server(&["grpc.test"]).server_config();
    backend_tls.alpn_protocols = vec![b"h2".to_vec()];
    let server = GrpcServer::start_tls(backend_tls).await;
    let port = crate::support::free_port();
    let listeners = format!(
        "  - address: 127.0.0.1:{port}\n    tls:\n      certificates:\n{}",
        certificate_entry(&cert, &key, &[])
    );
    let rest = format!(
        "upstreams:
  echo:
    protocol: h2
    tls: {{ca: \"{ca_path}\", sni: grpc.test}}
    backends: [{{ address: \"{}\" }}]
routes:
  - {{id: grpc, match: {{grpc: {{service: {SERVICE}}}}}, upstream: echo}}
",
        server.addr
    );
    let gw = start_gateway(dir, port, &listeners, &rest);
    let mut client = EchoClient::connect_tls(gw.port, &root, "api.test").await;
    assert_eq!(
        client.unary(Msg::text("secure")).await.unwrap().text,
        "secure"
    );
    let said = ["p", "q"].map(Msg::text).to_vec();
    let (echoes, trailers) = client.chat(said).await.unwrap();
    assert_eq!(echoes.len(), 2);
    assert_eq!(trailers.get("x-echoed").unwrap(), "2");
    let status = client
        .call_unary("Nope", tonic::Request::new(Msg::text("x")))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");
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
