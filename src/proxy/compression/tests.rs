//! Negotiation and eligibility, without a network.

use http::HeaderValue;
use pingora::http::ResponseHeader;

use super::RouteCompression;
use crate::config::schema::{Coding, CompressionSpec, Size};

fn route() -> RouteCompression {
    let spec = CompressionSpec {
        enabled: true,
        algorithms: vec![Coding::Zstd, Coding::Br, Coding::Gzip],
        level: None,
        min_size: Size(1024),
        content_types: vec!["text/*".into(), "application/json".into()],
    };
    RouteCompression::build(&spec).unwrap()
}

fn pick(accept: &[&str]) -> Option<Coding> {
    let fields: Vec<HeaderValue> = accept
        .iter()
        .map(|a| HeaderValue::from_str(a).unwrap())
        .collect();
    route().negotiate(fields.iter()).map(|(c, _)| c)
}

#[test]
fn the_highest_q_wins_and_the_routes_order_breaks_ties() {
    assert_eq!(pick(&["gzip, br"]), Some(Coding::Br));
    assert_eq!(pick(&["gzip;q=1, br;q=0.5"]), Some(Coding::Gzip));
    assert_eq!(pick(&["gzip", "zstd"]), Some(Coding::Zstd));
    assert_eq!(pick(&["GZIP;Q=0.8"]), Some(Coding::Gzip));
}

#[test]
fn q_zero_excludes_a_coding() {
    assert_eq!(pick(&["br;q=0, gzip;q=0.1"]), Some(Coding::Gzip));
    assert_eq!(pick(&["gzip;q=0"]), None);
    assert_eq!(pick(&["*;q=0"]), None);
    assert_eq!(pick(&["*, zstd;q=0, br;q=0"]), Some(Coding::Gzip));
}

#[test]
fn identity_preferred_over_every_coding_turns_compression_off() {
    assert_eq!(pick(&["identity;q=1, gzip;q=0.5"]), None);
    assert_eq!(pick(&["identity;q=0.5, gzip"]), Some(Coding::Gzip));
    assert_eq!(pick(&["identity"]), None);
}

#[test]
fn no_field_or_an_empty_one_asks_for_no_compression() {
    assert_eq!(pick(&[]), None);
    assert_eq!(pick(&[""]), None);
}

#[test]
fn an_entry_with_a_malformed_q_is_ignored() {
    assert_eq!(pick(&["br;q=2, gzip"]), Some(Coding::Gzip));
    assert_eq!(pick(&["br;q=abc"]), None);
    assert_eq!(pick(&["zstd;q=0.0000001, gzip"]), Some(Coding::Gzip));
}

#[test]
fn x_gzip_is_read_as_gzip() {
    assert_eq!(pick(&["x-gzip"]), Some(Coding::Gzip));
}

fn response(fields: &[(&str, &str)]) -> ResponseHeader {
    let mut resp = ResponseHeader::build(200, None).unwrap();
    for (name, value) in fields {
        resp.append_header(name.to_string(), *value).unwrap();
    }
    resp
}

#[test]
fn only_listed_types_of_sufficient_size_without_an_encoding_are_eligible() {
    let r = route();
    assert!(r.eligible(&response(&[("content-type", "text/html; charset=utf-8")])));
    assert!(r.eligible(&response(&[("content-type", "Application/JSON")])));
    assert!(!r.eligible(&response(&[("content-type", "application/xml")])));
    assert!(!r.eligible(&response(&[])));
    let small = [("content-type", "text/plain"), ("content-length", "1023")];
    assert!(!r.eligible(&response(&small)));
    let large = [("content-type", "text/plain"), ("content-length", "1024")];
    assert!(r.eligible(&response(&large)));
    let encoded = [("content-type", "text/plain"), ("content-encoding", "gzip")];
    assert!(!r.eligible(&response(&encoded)));
    let kept = [
        ("content-type", "text/plain"),
        ("cache-control", "max-age=5, No-Transform"),
    ];
    assert!(!r.eligible(&response(&kept)));
}

#[test]
fn answers_without_a_body_or_with_a_range_are_not_eligible() {
    let r = route();
    for status in [204, 206, 304] {
        let mut resp = response(&[("content-type", "text/plain")]);
        resp.set_status(status).unwrap();
        assert!(!r.eligible(&resp), "{status}");
    }
}

#[test]
fn a_brotli_stream_from_pingoras_encoder_closed_with_the_end_byte_decodes() {
    use pingora::protocols::http::compression::Algorithm;
    use std::io::Read;
    let input = "a body long enough to be worth compressing, ".repeat(200);
    let mut encoder = Algorithm::Brotli.compressor(4).unwrap();
    let mut stream = encoder
        .encode(&input.as_bytes()[..3000], false)
        .unwrap()
        .to_vec();
    stream.extend_from_slice(&encoder.encode(&input.as_bytes()[3000..], true).unwrap());
    let mut unclosed = String::new();
    let failed = brotli::Decompressor::new(&stream[..], 4096).read_to_string(&mut unclosed);
    assert!(
        failed.is_err(),
        "Pingora now closes the stream; drop the end byte"
    );
    stream.push(super::module::BROTLI_END);
    let mut out = String::new();
    brotli::Decompressor::new(&stream[..], 4096)
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(out, input);
}
