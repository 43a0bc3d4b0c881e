//! Header rules at the proxy boundary: request ids, the forwarding headers,
//! and hop-by-hop headers that must not cross.

use std::fmt::Write;
use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue};

/// Headers that describe one connection, never forwarded (RFC 9110 §7.6.1).
/// `transfer-encoding` and `upgrade` are left to Pingora, which frames bodies
/// and handles upgrades itself. Kept as parsed names: removing by `&str`
/// parses the name on every call, which cost a few thousand instructions per
/// request over the request and response header sets.
pub static HOP_BY_HOP: [HeaderName; 6] = [
    http::header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    http::header::TE,
    http::header::TRAILER,
    http::header::PROXY_AUTHORIZATION,
];

/// Longest client-supplied request id that is kept.
const MAX_REQUEST_ID: usize = 128;

/// The client's `X-Request-Id` when it is reasonable, else a fresh one.
pub fn request_id(headers: &HeaderMap) -> String {
    if let Some(v) = headers.get("x-request-id") {
        let b = v.as_bytes();
        if !b.is_empty()
            && b.len() <= MAX_REQUEST_ID
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || b"-_.:".contains(c))
        {
            // Checked ASCII above, so this cannot fail.
            return String::from_utf8_lossy(b).into_owned();
        }
    }
    new_request_id()
}

/// A random 128-bit id as 32 hex digits.
pub fn new_request_id() -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let n = fastrand::u128(..);
    let digits: Vec<u8> = (0..32)
        .rev()
        .map(|i| HEX[((n >> (i * 4)) & 0xf) as usize])
        .collect();
    // Every byte is an ASCII hex digit.
    String::from_utf8(digits).unwrap_or_default()
}

/// Appends `ip` in its usual text form. IPv4, nearly every client, is written
/// digit by digit: `fmt` machinery cost more than a thousand instructions per
/// request here.
pub fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                if octet >= 100 {
                    out.push(char::from(b'0' + octet / 100));
                }
                if octet >= 10 {
                    out.push(char::from(b'0' + octet / 10 % 10));
                }
                out.push(char::from(b'0' + octet % 10));
            }
        }
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

/// The client address as Portico believes it. From a trusted proxy, the
/// right-most `X-Forwarded-For` entry that is not itself a trusted proxy;
/// otherwise the socket peer. A spoofed header from an untrusted peer changes
/// nothing.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: impl Fn(IpAddr) -> bool) -> IpAddr {
    if !trusted(peer) {
        return peer;
    }
    let mut candidate = peer;
    for value in headers.get_all("x-forwarded-for").iter().rev() {
        let Ok(text) = value.to_str() else {
            return candidate;
        };
        for part in text.rsplit(',') {
            let Ok(ip) = part.trim().parse::<IpAddr>() else {
                return candidate;
            };
            candidate = ip;
            if !trusted(ip) {
                return ip;
            }
        }
    }
    candidate
}

/// The `X-Forwarded-For` to send upstream: the incoming chain only when the
/// peer is trusted, then the peer itself.
pub fn forwarded_for(peer: IpAddr, peer_trusted: bool, headers: &HeaderMap) -> String {
    let mut out = String::new();
    if peer_trusted {
        for v in headers.get_all("x-forwarded-for") {
            if let Ok(text) = v.to_str() {
                let text = text.trim();
                if !text.is_empty() {
                    out.push_str(text);
                    out.push_str(", ");
                }
            }
        }
    }
    push_ip(&mut out, peer);
    out
}

/// The extra hop-by-hop headers that `headers` names in `Connection`,
/// lowercased; the standard ones are in [`HOP_BY_HOP`]. Framing and upgrade
/// headers are left out: they are Pingora's to manage. Allocates nothing when
/// there is no `Connection` header, the common case on the request path.
pub fn connection_tokens(headers: &HeaderMap) -> Vec<String> {
    let mut names = Vec::new();
    for v in headers.get_all(http::header::CONNECTION) {
        let Ok(text) = v.to_str() else { continue };
        for token in text.split(',') {
            let token = token.trim();
            // `close` and `keep-alive` are the usual tokens and name nothing
            // that is not already removed; skipping them keeps the common
            // response free of allocation.
            let skipped = [
                "close",
                "keep-alive",
                "upgrade",
                "transfer-encoding",
                "content-length",
            ];
            if token.is_empty() || skipped.iter().any(|s| token.eq_ignore_ascii_case(s)) {
                continue;
            }
            names.push(token.to_ascii_lowercase());
        }
    }
    names
}

/// The one value of a `Content-Length` that was repeated or comma-listed
/// (`4, 4`), to forward in its place; `None` when the field is absent or
/// already a single number. Pingora has refused a request whose values differ.
pub fn single_content_length(headers: &HeaderMap) -> Option<HeaderValue> {
    let tokens: Vec<&[u8]> = headers
        .get_all(http::header::CONTENT_LENGTH)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .collect();
    let (first, rest) = tokens.split_first()?;
    if rest.is_empty() || rest.iter().any(|t| t != first) {
        return None;
    }
    let length: u64 = std::str::from_utf8(first).ok()?.parse().ok()?;
    Some(HeaderValue::from(length))
}

/// The `Cookie` fields joined into one with `"; "` when there are several, as
/// an HTTP/2 client may send them; `None` when there are fewer than two.
pub fn joined_cookies(headers: &HeaderMap) -> Option<HeaderValue> {
    let mut values = headers.get_all(http::header::COOKIE).iter();
    let mut joined = values.next()?.as_bytes().to_vec();
    let mut several = false;
    for value in values {
        several = true;
        joined.extend_from_slice(b"; ");
        joined.extend_from_slice(value.as_bytes());
    }
    several
        .then(|| HeaderValue::from_bytes(&joined).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn a_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored() {
        let h = headers(&[("x-forwarded-for", "1.2.3.4")]);
        let peer: IpAddr = "9.9.9.9".parse().unwrap();
        assert_eq!(client_ip(peer, &h, |_| false), peer);
        assert_eq!(forwarded_for(peer, false, &h), "9.9.9.9");
    }

    #[test]
    fn a_trusted_peer_yields_the_rightmost_untrusted_address() {
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 1.2.3.4, 10.0.0.2")]);
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        let trusted = |ip: IpAddr| ip.to_string().starts_with("10.");
        assert_eq!(
            client_ip(peer, &h, trusted),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            forwarded_for(peer, true, &h),
            "6.6.6.6, 1.2.3.4, 10.0.0.2, 10.0.0.1"
        );
    }

    #[test]
    fn client_request_ids_are_kept_only_when_reasonable() {
        assert_eq!(
            request_id(&headers(&[("x-request-id", "abc-123")])),
            "abc-123"
        );
        let long = "a".repeat(200);
        assert_ne!(request_id(&headers(&[("x-request-id", &long)])), long);
        assert_eq!(request_id(&headers(&[("x-request-id", "a b")])).len(), 32);
    }

    #[test]
    fn a_repeated_or_listed_content_length_collapses_to_one_value() {
        let h = |pairs: &[(&str, &str)]| single_content_length(&headers(pairs));
        assert_eq!(h(&[("content-length", "4, 4")]).unwrap(), "4");
        assert_eq!(
            h(&[("content-length", "4"), ("content-length", "4")]).unwrap(),
            "4"
        );
        assert_eq!(h(&[("content-length", "4")]), None);
        assert_eq!(h(&[]), None);
        assert_eq!(h(&[("content-length", "4, 5")]), None);
    }

    #[test]
    fn several_cookie_fields_are_joined_into_one() {
        let h = headers(&[("cookie", "a=1"), ("cookie", "b=2; c=3")]);
        assert_eq!(joined_cookies(&h).unwrap(), "a=1; b=2; c=3");
        assert_eq!(joined_cookies(&headers(&[("cookie", "a=1")])), None);
        assert_eq!(joined_cookies(&headers(&[])), None);
    }

    #[test]
    fn connection_tokens_are_hop_by_hop() {
        let names = connection_tokens(&headers(&[("connection", "X-Secret, close")]));
        assert!(names.contains(&"x-secret".to_string()));
        assert!(HOP_BY_HOP.iter().any(|n| n == "keep-alive"));
    }

    #[test]
    fn push_ip_writes_what_display_writes() {
        let cases = [
            "0.0.0.0",
            "9.10.99.100",
            "255.255.255.255",
            "127.0.0.1",
            "::1",
            "2001:db8::7",
        ];
        for text in cases {
            let ip: IpAddr = text.parse().unwrap();
            let mut out = String::from("x ");
            push_ip(&mut out, ip);
            assert_eq!(out, format!("x {ip}"));
        }
    }

    #[test]
    fn new_request_ids_are_32_lowercase_hex_digits_and_differ() {
        let a = new_request_id();
        let b = new_request_id();
        assert_eq!(a.len(), 32);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
        assert_ne!(a, b);
    }
}
