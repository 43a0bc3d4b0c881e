//! Request and response transformation: headers with template values, query
//! parameters, and JSON bodies rewritten with their framing kept right, or
//! passed on or refused past their cap.

use std::process::{Command, Stdio};

use bytes::Bytes;
use serde_json::{json, Value};

use crate::support::shaped::ShapedUpstream;
use crate::support::{client, Gateway};

const KEY: &str = "transform-test-key-0123456789abcdefghij";

/// The stored form of [`KEY`], as `portico hash-key` makes it.
fn key_hash() -> String {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_portico"))
        .arg("hash-key")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{KEY}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Routes by prefix, each stripped: `/h` headers and query (API key
/// required), `/b` JSON bodies (and gzip for JSON answers), `/p` and `/r`
/// JSON bodies capped at 64 bytes that pass or refuse a larger one.
async fn gateway() -> (ShapedUpstream, Gateway) {
    let up = ShapedUpstream::start().await;
    let body = "{remove: [user.password], rename: {user.name: user.login}, \
                add: {source: portico, meta.gateway: true}}";
    let capped =
        |oversize: &str| format!("{{add: {{seen: true}}, max_bytes: 64, oversize: {oversize}}}");
    let gw = Gateway::start(&format!(
        "{upstreams}consumers:
  - id: mobile
    credentials: {{api_keys: ['{hash}']}}
routes:
  - id: headers
    match: {{ path: {{ prefix: /h }} }}
    strip_prefix: true
    upstream: shaped
    auth: {{methods: [api_key]}}
    transform:
      request:
        headers:
          add: {{x-who: '$${{consumer}}@$${{client_ip}}', accept: text/csv}}
          set: {{x-route: 'route $${{route}}', x-rid: '$${{request_id}}'}}
          rename: {{x-old: x-new}}
          remove: [cookie]
        query:
          add: {{src: 'gw $${{route}}'}}
          remove: [drop]
          rename: {{q: query}}
      response:
        headers:
          add: {{x-served-by: '$${{route}}'}}
          remove: [x-upstream-secret]
          rename: {{content-type: x-original-type}}
  - id: bodies
    match: {{ path: {{ prefix: /b }} }}
    strip_prefix: true
    upstream: shaped
    compression: {{algorithms: [gzip], min_size: 0, content_types: [application/json]}}
    transform: {{request: {{json_body: {body}}}, response: {{json_body: {body}}}}}
  - id: pass
    match: {{ path: {{ prefix: /p }} }}
    strip_prefix: true
    upstream: shaped
    transform: {{request: {{json_body: {pass}}}, response: {{json_body: {pass}}}}}
  - id: reject
    match: {{ path: {{ prefix: /r }} }}
    strip_prefix: true
    upstream: shaped
    transform: {{request: {{json_body: {reject}}}, response: {{json_body: {reject}}}}}
",
        upstreams = up.yaml(),
        hash = key_hash(),
        pass = capped("pass"),
        reject = capped("reject"),
    ));
    (up, gw)
}

#[tokio::test(flavor = "multi_thread")]
async fn request_headers_are_added_set_renamed_and_removed_with_template_values() {
    let (_up, gw) = gateway().await;
    let resp = client()
        .get(gw.url("/h/echo"))
        .header("x-api-key", KEY)
        .header("x-old", "moved")
        .header("x-route", "client's")
        .header("accept", "application/json")
        .header("cookie", "session=secret")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let request_id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let seen: Value = resp.json().await.unwrap();
    let headers = &seen["headers"];
    assert_eq!(headers["x-who"], "mobile@127.0.0.1");
    assert_eq!(headers["x-route"], "route headers");
    assert_eq!(headers["x-rid"], request_id.as_str());
    assert_eq!(headers["x-new"], "moved");
    assert_eq!(headers["accept"], "application/json, text/csv");
    assert!(headers.get("x-old").is_none());
    assert!(headers.get("cookie").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn query_parameters_are_added_removed_and_renamed() {
    let (_up, gw) = gateway().await;
    let resp = client()
        .get(gw.url("/h/echo?q=shoes&drop=1&keep=x&%64rop=2"))
        .header("x-api-key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen: Value = resp.json().await.unwrap();
    assert_eq!(seen["path"], "/echo");
    assert_eq!(seen["query"], "query=shoes&keep=x&src=gw%20headers");
}

#[tokio::test(flavor = "multi_thread")]
async fn response_headers_are_changed_on_the_way_back() {
    let (_up, gw) = gateway().await;
    let resp = client()
        .get(gw.url("/h/json"))
        .header("x-api-key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers();
    assert_eq!(h["x-served-by"], "headers");
    assert!(h.get("x-upstream-secret").is_none());
    assert!(h.get("content-type").is_none());
    assert_eq!(h["x-original-type"], "application/json");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_json_request_body_is_rewritten_and_sent_with_new_framing() {
    let (_up, gw) = gateway().await;
    let sent = json!({"id": 7, "user": {"name": "ann", "password": "hunter2"}});
    let resp = client()
        .post(gw.url("/b/echo"))
        .header("content-type", "application/json")
        .body(sent.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen: Value = resp.json().await.unwrap();
    let body: Value = serde_json::from_str(seen["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        body,
        json!({"id": 7, "user": {"login": "ann"}, "source": "portico", "meta": {"gateway": true}})
    );
    // The declared length of the client's body would be wrong now.
    assert!(seen["headers"].get("content-length").is_none());
    assert_eq!(seen["headers"]["transfer-encoding"], "chunked");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_json_answer_is_rewritten_and_its_length_is_right() {
    let (_up, gw) = gateway().await;
    let resp = client().get(gw.url("/b/json")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let declared = resp.headers().get("content-length").cloned();
    let bytes = resp.bytes().await.unwrap();
    if let Some(declared) = declared {
        assert_eq!(declared.to_str().unwrap(), bytes.len().to_string());
    }
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        body,
        json!({
            "id": 7, "user": {"login": "ann"}, "pad": "",
            "source": "portico", "meta": {"gateway": true}
        })
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chunked_json_request_body_is_gathered_and_rewritten() {
    let (_up, gw) = gateway().await;
    let sent = json!({"user": {"name": "bo", "password": "x"}}).to_string();
    let chunks: Vec<Result<Bytes, std::io::Error>> = sent
        .into_bytes()
        .chunks(7)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let resp = client()
        .post(gw.url("/b/echo"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen: Value = resp.json().await.unwrap();
    let body: Value = serde_json::from_str(seen["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        body,
        json!({"user": {"login": "bo"}, "source": "portico", "meta": {"gateway": true}})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rewritten_json_answer_is_then_compressed_for_a_client_that_asks() {
    use std::io::Read;
    let (_up, gw) = gateway().await;
    let resp = client()
        .get(gw.url("/b/json"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-encoding"], "gzip");
    let bytes = resp.bytes().await.unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_string(&mut text)
        .unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["user"], json!({"login": "ann"}));
    assert_eq!(body["source"], "portico");
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_that_are_not_json_pass_untouched() {
    let (_up, gw) = gateway().await;
    let resp = client()
        .get(gw.url("/b/json?type=text/plain"))
        .send()
        .await
        .unwrap();
    let length: usize = resp.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body = resp.text().await.unwrap();
    assert_eq!(body.len(), length);
    assert!(body.contains("hunter2"));
    let resp = client()
        .post(gw.url("/b/echo"))
        .header("content-type", "text/plain")
        .body("{\"user\": {\"password\": \"p\"}}")
        .send()
        .await
        .unwrap();
    let seen: Value = resp.json().await.unwrap();
    assert_eq!(seen["body"], "{\"user\": {\"password\": \"p\"}}");
}

fn large_request() -> String {
    json!({"user": {"name": "ann"}, "pad": "x".repeat(200)}).to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversize_json_body_passes_untouched_when_the_route_says_pass() {
    let (_up, gw) = gateway().await;
    let resp = client()
        .post(gw.url("/p/echo"))
        .header("content-type", "application/json")
        .body(large_request())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen: Value = resp.json().await.unwrap();
    assert_eq!(seen["body"], large_request());
    let answer = client()
        .get(gw.url("/p/json?pad=200"))
        .send()
        .await
        .unwrap();
    let body: Value = answer.json().await.unwrap();
    assert!(body.get("seen").is_none());
    assert_eq!(body["user"]["password"], "hunter2");
    // Within the cap, the same route rewrites.
    let small = client()
        .post(gw.url("/p/echo"))
        .header("content-type", "application/json")
        .body("{\"a\":1}")
        .send()
        .await
        .unwrap();
    let seen: Value = small.json().await.unwrap();
    assert_eq!(seen["body"], "{\"a\":1,\"seen\":true}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversize_json_body_is_refused_when_the_route_says_reject() {
    let (up, gw) = gateway().await;
    let resp = client()
        .post(gw.url("/r/echo"))
        .header("content-type", "application/json")
        .body(large_request())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(up.hits(), 0, "a refused body reached the upstream");
    // Without a declared length the cap is found while reading.
    let chunks: Vec<Result<Bytes, std::io::Error>> = large_request()
        .into_bytes()
        .chunks(50)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let streamed = client()
        .post(gw.url("/r/echo"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(streamed.status(), 413);
    let answer = client()
        .get(gw.url("/r/json?pad=200"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 502);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_claim_of_the_verified_token_fills_a_header_template() {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    let up = ShapedUpstream::start().await;
    let secret = "transform-test-secret-with-enough-length-for-hs256";
    let gw = Gateway::start(&format!(
        "{}jwt_providers:
  corp:
    issuer: https://idp.test
    keys: [{{kid: hs, alg: HS256, secret: '{secret}'}}]
routes:
  - id: claims
    upstream: shaped
    auth: {{methods: ['jwt:corp']}}
    transform:
      request:
        headers:
          set:
            x-tenant: '$${{claim.tenant}}'
            x-level: '$${{claim.level}}'
            x-sub: '$${{consumer}}'
",
        up.yaml()
    ));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({
        "sub": "alice", "iss": "https://idp.test", "exp": now + 600, "iat": now,
        "tenant": "acme", "level": 3,
    });
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("hs".into());
    let token = encode(
        &header,
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    let resp = client()
        .get(gw.url("/echo"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen: Value = resp.json().await.unwrap();
    assert_eq!(seen["headers"]["x-tenant"], "acme");
    assert_eq!(seen["headers"]["x-level"], "3");
    assert_eq!(seen["headers"]["x-sub"], "alice");
}

#[tokio::test(flavor = "multi_thread")]
async fn json_bodies_are_rewritten_for_an_http2_client_too() {
    let (_up, gw) = gateway().await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let resp = h2
        .post(gw.url("/b/echo"))
        .header("content-type", "application/json")
        .body(json!({"user": {"name": "cy", "password": "p"}}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    let seen: Value = resp.json().await.unwrap();
    let body: Value = serde_json::from_str(seen["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["user"], json!({"login": "cy"}));
    let answer = h2.get(gw.url("/b/json")).send().await.unwrap();
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["user"], json!({"login": "ann"}));
    assert_eq!(body["source"], "portico");
}
