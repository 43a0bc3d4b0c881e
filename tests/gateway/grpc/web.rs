//! gRPC-Web through the gateway, binary and text, from plain HTTP clients
//! that frame the bodies and read the trailers from them, as browser
//! libraries do.

use tonic::Code;

use super::{gateway_for, GrpcServer, Msg, SERVICE};
use crate::support::Gateway;

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

/// Browsers send `Accept-Encoding` with gRPC-Web calls; even a route that
/// compresses every `application/*` answer leaves the gRPC framing alone.
#[tokio::test(flavor = "multi_thread")]
async fn a_grpc_web_answer_is_never_compressed() {
    let server = GrpcServer::start().await;
    let gw = Gateway::start(&format!(
        "upstreams:\n{}routes:
  - id: grpc
    match: {{ grpc: {{ service: {SERVICE} }} }}
    upstream: echo
    compression: {{min_size: 0, content_types: ['application/*']}}
",
        crate::support::grpc::h2c_upstream("echo", &[&server], "")
    ));
    let ask = Msg {
        count: 3,
        ..Msg::text("web")
    };
    let client = reqwest::Client::builder().http1_only().build().unwrap();
    let resp = client
        .post(gw.url(&format!("/{SERVICE}/Serve")))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .header("accept-encoding", "gzip, br, zstd")
        .body(framed(&ask))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("content-encoding").is_none());
    let (messages, trailers) = unframe(&resp.bytes().await.unwrap());
    assert_eq!(messages.len(), 3);
    assert!(
        trailers.contains(&"grpc-status:0".to_string()),
        "{trailers:?}"
    );
}
