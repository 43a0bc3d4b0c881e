//! Response compression: each coding negotiated from `Accept-Encoding` and
//! decodable by the client, and every answer that must reach the client as
//! the upstream sent it.

use std::io::Read;

use crate::support::shaped::{ShapedUpstream, TEXT};
use crate::support::{client, Gateway};

/// A gateway with one route to a shaped upstream, compressing as
/// `compression` (a YAML flow mapping) says.
async fn gateway(compression: &str) -> (ShapedUpstream, Gateway) {
    let up = ShapedUpstream::start().await;
    let gw = Gateway::start(&format!(
        "{}routes:\n  - id: docs\n    upstream: shaped\n    compression: {compression}\n  \
         - id: plain\n    match: {{ path: {{ prefix: /plain }} }}\n    upstream: shaped\n",
        up.yaml()
    ));
    (up, gw)
}

/// What the client receives for `path` with these `Accept-Encoding` values.
async fn fetch(gw: &Gateway, path: &str, accept: &str) -> reqwest::Response {
    let mut req = client().get(gw.url(path));
    if !accept.is_empty() {
        req = req.header("accept-encoding", accept);
    }
    req.send().await.unwrap()
}

fn field(resp: &reqwest::Response, name: &str) -> Option<String> {
    let values: Vec<&str> = resp
        .headers()
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

fn decode(coding: &str, body: &[u8]) -> String {
    let mut out = String::new();
    match coding {
        "gzip" => {
            flate2::read::GzDecoder::new(body)
                .read_to_string(&mut out)
                .unwrap();
        }
        "br" => {
            brotli::Decompressor::new(body, 4096)
                .read_to_string(&mut out)
                .unwrap();
        }
        "zstd" => {
            out = String::from_utf8(zstd::decode_all(body).unwrap()).unwrap();
        }
        other => panic!("no decoder for {other}"),
    }
    out
}

fn text(len: usize) -> String {
    TEXT.chars().cycle().take(len).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_coding_is_negotiated_and_decodes_to_the_upstreams_bytes() {
    let (_up, gw) = gateway("{}").await;
    for coding in ["gzip", "br", "zstd"] {
        let resp = fetch(&gw, "/doc?len=20000", coding).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(field(&resp, "content-encoding").as_deref(), Some(coding));
        assert_eq!(field(&resp, "content-length"), None, "{coding}");
        assert!(field(&resp, "vary")
            .unwrap()
            .to_lowercase()
            .contains("accept-encoding"));
        let body = resp.bytes().await.unwrap();
        assert!(body.len() < 20000 / 4, "{coding} gave {} bytes", body.len());
        assert_eq!(decode(coding, &body), text(20000), "{coding}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chunked_answer_of_unknown_length_is_compressed_too() {
    let (_up, gw) = gateway("{algorithms: [gzip]}").await;
    let resp = fetch(&gw, "/doc?len=9000&chunked=1", "gzip").await;
    assert_eq!(field(&resp, "content-encoding").as_deref(), Some("gzip"));
    let body = resp.bytes().await.unwrap();
    assert_eq!(decode("gzip", &body), text(9000));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_clients_q_values_choose_the_coding_and_q_zero_refuses_one() {
    let (_up, gw) = gateway("{}").await;
    let cases = [
        ("gzip;q=0.5, br;q=0.9, zstd;q=0.1", Some("br")),
        ("gzip, br", Some("br")),
        ("zstd;q=0, br;q=0, gzip", Some("gzip")),
        ("*;q=0.2, zstd;q=0", Some("br")),
        ("gzip;q=0", None),
        ("identity;q=1, gzip;q=0.5", None),
        ("deflate", None),
        ("", None),
    ];
    for (accept, expected) in cases {
        let resp = fetch(&gw, "/doc", accept).await;
        assert_eq!(
            field(&resp, "content-encoding").as_deref(),
            expected,
            "Accept-Encoding: {accept}"
        );
        // Whatever was chosen, the answer depends on the field.
        assert!(field(&resp, "vary").is_some(), "{accept}");
        let body = resp.bytes().await.unwrap();
        match expected {
            Some(coding) => assert_eq!(decode(coding, &body), text(4096)),
            None => assert_eq!(body, text(4096).as_bytes()),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_answer_the_upstream_encoded_is_passed_through_untouched() {
    let (_up, gw) = gateway("{}").await;
    let resp = fetch(&gw, "/doc?ce=br", "gzip, br, zstd").await;
    assert_eq!(field(&resp, "content-encoding").as_deref(), Some("br"));
    assert_eq!(field(&resp, "content-length").as_deref(), Some("4096"));
    assert_eq!(resp.bytes().await.unwrap(), text(4096).as_bytes());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_answer_below_min_size_or_of_an_unlisted_type_is_sent_as_it_is() {
    let (_up, gw) = gateway("{min_size: 2KiB, content_types: [text/*]}").await;
    let small = fetch(&gw, "/doc?len=2047", "gzip").await;
    assert_eq!(field(&small, "content-encoding"), None);
    assert_eq!(field(&small, "content-length").as_deref(), Some("2047"));
    assert_eq!(small.bytes().await.unwrap(), text(2047).as_bytes());
    let enough = fetch(&gw, "/doc?len=2048", "gzip").await;
    assert_eq!(field(&enough, "content-encoding").as_deref(), Some("gzip"));
    let json = fetch(&gw, "/doc?type=application/json", "gzip").await;
    assert_eq!(field(&json, "content-encoding"), None);
    assert_eq!(field(&json, "vary"), None);
    assert_eq!(json.bytes().await.unwrap(), text(4096).as_bytes());
}

#[tokio::test(flavor = "multi_thread")]
async fn cache_control_no_transform_keeps_the_upstreams_bytes() {
    let (_up, gw) = gateway("{}").await;
    let resp = fetch(&gw, "/doc?cc=no-transform", "gzip").await;
    assert_eq!(field(&resp, "content-encoding"), None);
    assert_eq!(resp.bytes().await.unwrap(), text(4096).as_bytes());
}

#[tokio::test(flavor = "multi_thread")]
async fn vary_is_appended_to_and_a_strong_etag_is_made_weak() {
    let (_up, gw) = gateway("{}").await;
    let resp = fetch(&gw, "/doc?vary=Accept-Language&etag=v1", "gzip").await;
    assert_eq!(field(&resp, "content-encoding").as_deref(), Some("gzip"));
    let vary = field(&resp, "vary").unwrap().to_lowercase();
    assert!(
        vary.contains("accept-language") && vary.contains("accept-encoding"),
        "{vary}"
    );
    assert_eq!(field(&resp, "etag").as_deref(), Some("W/\"v1\""));
    let weak = fetch(&gw, "/doc?etag=v2&weak=1", "gzip").await;
    assert_eq!(field(&weak, "etag").as_deref(), Some("W/\"v2\""));
    // Uncompressed, the upstream's validator stays strong.
    let plain = fetch(&gw, "/doc?etag=v3", "identity").await;
    assert_eq!(field(&plain, "etag").as_deref(), Some("\"v3\""));
}

#[tokio::test(flavor = "multi_thread")]
async fn head_answers_and_refusals_are_never_compressed() {
    let (_up, gw) = gateway("{}").await;
    let head = client()
        .head(gw.url("/doc"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(field(&head, "content-encoding"), None);
    assert_eq!(field(&head, "content-length").as_deref(), Some("4096"));
    let refused = client()
        .get(gw.url("/doc"))
        .header("accept-encoding", "gzip")
        .header("host", "bad host")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    assert_eq!(field(&refused, "content-encoding"), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_route_without_compression_passes_answers_as_they_are() {
    let (_up, gw) = gateway("{}").await;
    let resp = fetch(&gw, "/plain/doc", "gzip, br").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(field(&resp, "content-encoding"), None);
    assert_eq!(field(&resp, "vary"), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_switched_off_section_compresses_nothing() {
    let (_up, gw) = gateway("{enabled: false}").await;
    let resp = fetch(&gw, "/doc", "gzip").await;
    assert_eq!(field(&resp, "content-encoding"), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_http2_client_gets_a_compressed_answer_it_can_decode() {
    let (_up, gw) = gateway("{}").await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    for coding in ["gzip", "br", "zstd"] {
        let resp = h2
            .get(gw.url("/doc?len=10000&chunked=1"))
            .header("accept-encoding", coding)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.version(), reqwest::Version::HTTP_2);
        assert_eq!(field(&resp, "content-encoding").as_deref(), Some(coding));
        let body = resp.bytes().await.unwrap();
        assert_eq!(decode(coding, &body), text(10000), "{coding}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cache_stores_one_representation_and_each_client_gets_its_coding() {
    let up = ShapedUpstream::start().await;
    let gw = Gateway::start(&format!(
        "{}routes:\n  - id: docs\n    upstream: shaped\n    compression: {{}}\n    cache: {{}}\n",
        up.yaml()
    ));
    let path = "/doc?len=20000&cc=max-age=60";
    for (accept, coding, status) in [("gzip", "gzip", "MISS"), ("br", "br", "HIT")] {
        let resp = fetch(&gw, path, accept).await;
        assert_eq!(field(&resp, "x-cache-status").as_deref(), Some(status));
        assert_eq!(field(&resp, "content-encoding").as_deref(), Some(coding));
        let body = resp.bytes().await.unwrap();
        assert_eq!(decode(coding, &body), text(20000), "{coding}");
    }
    let plain = fetch(&gw, path, "identity").await;
    assert_eq!(field(&plain, "x-cache-status").as_deref(), Some("HIT"));
    assert_eq!(field(&plain, "content-encoding"), None);
    assert_eq!(plain.text().await.unwrap(), text(20000));
    assert_eq!(up.hits(), 1);
}
