//! gRPC on the gateway side: recognising gRPC requests, answering Portico's own
//! failures as trailers-only gRPC responses, and `grpc-timeout` deadlines.
//!
//! A request is gRPC by its `content-type` (`application/grpc[+..]`), and
//! gRPC-Web by `application/grpc-web[-text][+..]`; the route does not decide
//! it, so a gRPC client meets gRPC answers even where no route matched.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::http::ServerSession;
use pingora::proxy::Session;
use pingora::upstreams::peer::HttpPeer;
use portico_protocols::grpc::{self as proto, Base64Decoder, Base64Encoder, Code, WebEncoding};

use super::error::Failure;

/// How a request speaks gRPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// gRPC over HTTP/2.
    Native,
    /// gRPC-Web from a browser, in either encoding.
    Web(WebEncoding),
}

/// What the gateway knows of a gRPC call.
#[derive(Debug)]
pub struct Call {
    pub flavor: Flavor,
    /// When the client's `grpc-timeout` runs out, if it sent one Portico
    /// can read (an unreadable value sets no deadline).
    pub deadline: Option<Instant>,
    /// The base64 state of a gRPC-Web-text call, carried across chunks.
    text: Option<TextCodec>,
}

/// Decodes a gRPC-Web-text request body and encodes its response body.
#[derive(Debug, Default)]
struct TextCodec {
    decoder: Base64Decoder,
    encoder: Base64Encoder,
}

impl Call {
    /// Time left before the client's deadline; `None` without one.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// Whether the client's deadline has run out.
    pub fn deadline_spent(&self) -> bool {
        self.remaining().is_some_and(|left| left.is_zero())
    }

    /// Bounds the peer's connect, read and write timeouts by the time left,
    /// so the pool's timeouts apply unless the client's deadline is
    /// shorter. A read timeout restarts with each piece of the response, so
    /// this bounds each wait on the upstream rather than a whole stream: a
    /// streaming response that keeps sending may outlive the deadline (the
    /// client's own deadline still ends it).
    pub fn bound(&self, peer: &mut HttpPeer) {
        let Some(left) = self.remaining() else {
            return;
        };
        let options = &mut peer.options;
        for timeout in [
            &mut options.connection_timeout,
            &mut options.read_timeout,
            &mut options.write_timeout,
        ] {
            *timeout = Some(timeout.map_or(left, |t| t.min(left)));
        }
    }
}

/// The gRPC call `req` makes, if it is one.
pub fn classify(req: &RequestHeader) -> Option<Call> {
    let content_type = req.headers.get(http::header::CONTENT_TYPE)?.to_str().ok()?;
    let flavor = if proto::is_grpc_content_type(content_type) {
        Flavor::Native
    } else {
        Flavor::Web(proto::web_encoding(content_type)?)
    };
    let deadline = req
        .headers
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(proto::parse_timeout)
        .and_then(|t| Instant::now().checked_add(t));
    let text = (flavor == Flavor::Web(WebEncoding::Text)).then(TextCodec::default);
    Some(Call {
        flavor,
        deadline,
        text,
    })
}

/// Refuses native gRPC over HTTP/1.x. Its status travels in trailers, which
/// Portico does not write to an HTTP/1.x client, so the upstream would run a
/// call whose outcome the client could never learn. gRPC-Web is the HTTP/1.1
/// form of gRPC.
pub fn check_version(req: &RequestHeader, call: Option<&Call>) -> Result<(), Failure> {
    let native = call.is_some_and(|c| c.flavor == Flavor::Native);
    if native && req.version < http::Version::HTTP_2 {
        return Err(Failure::BadRequest(
            "gRPC needs HTTP/2; over HTTP/1.1 use gRPC-Web",
        ));
    }
    Ok(())
}

/// Puts back `te: trailers`, which the hop-by-hop clean-up removed: gRPC
/// servers refuse a call without it, as it promises the client reads
/// trailers. The upstream is told the time left of the deadline, not the
/// client's full budget, since part of it was spent here.
///
/// A gRPC-Web call goes upstream as plain gRPC: its content type loses the
/// `-web` part, and a `-text` body, decoded on the way, loses its length.
pub fn prepare_upstream_request(upstream: &mut RequestHeader, call: &Call) -> pingora::Result<()> {
    upstream.insert_header(http::header::TE, "trailers")?;
    if let Some(left) = call.remaining() {
        upstream.insert_header("grpc-timeout", timeout_value(left))?;
    }
    if let Flavor::Web(encoding) = call.flavor {
        let web = upstream
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let grpc = encoding.upstream_content_type(web);
        upstream.insert_header(http::header::CONTENT_TYPE, grpc)?;
        if encoding == WebEncoding::Text {
            upstream.remove_header(&http::header::CONTENT_LENGTH);
        }
    }
    Ok(())
}

/// Decodes a chunk of a gRPC-Web-text request body; other calls pass
/// unchanged. A body that is not base64, or ends inside a quantum, is the
/// client's error.
pub fn request_body(
    call: &mut Call,
    body: &mut Option<Bytes>,
    end_of_stream: bool,
) -> Result<(), Failure> {
    let Some(codec) = call.text.as_mut() else {
        return Ok(());
    };
    let invalid = |_| Failure::BadRequest("the gRPC-Web-text body is not valid base64");
    if let Some(chunk) = body.as_ref() {
        *body = Some(codec.decoder.push(chunk).map_err(invalid)?);
    }
    if end_of_stream {
        codec.decoder.finish().map_err(invalid)?;
    }
    Ok(())
}

/// Gives a gRPC-Web call's response the content type the browser asked for;
/// its length changes with the trailers added to the body, so it goes.
pub fn response_header(call: &Call, response: &mut ResponseHeader) -> pingora::Result<()> {
    if let Flavor::Web(encoding) = call.flavor {
        response.insert_header(http::header::CONTENT_TYPE, encoding.response_content_type())?;
        response.remove_header(&http::header::CONTENT_LENGTH);
    }
    Ok(())
}

/// Encodes a gRPC-Web-text response chunk; the last one flushes the
/// encoder (a response that ends without trailers ends here).
pub fn response_body(call: &mut Call, body: &mut Option<Bytes>, end_of_stream: bool) {
    let Some(codec) = call.text.as_mut() else {
        return;
    };
    let mut out = BytesMut::new();
    if let Some(chunk) = body.as_ref() {
        out.extend_from_slice(&codec.encoder.push(chunk));
    }
    if end_of_stream {
        out.extend_from_slice(&codec.encoder.finish());
    }
    *body = Some(out.freeze());
}

/// The body bytes that carry a gRPC-Web call's trailers: a frame flagged
/// 0x80, in base64 for `-text` (with the encoder's remainder first, and
/// padded, as it ends the body). `None` for native gRPC, whose trailers go
/// on as trailers.
pub fn response_trailers(call: &mut Call, trailers: &http::HeaderMap) -> Option<Bytes> {
    if call.flavor == Flavor::Native {
        return None;
    }
    let fields = trailers.iter().map(|(n, v)| (n.as_str(), v.as_bytes()));
    let frame = proto::trailer_frame(fields);
    let Some(codec) = call.text.as_mut() else {
        return Some(frame);
    };
    let mut out = BytesMut::from(&codec.encoder.push(&frame)[..]);
    out.extend_from_slice(&codec.encoder.finish());
    Some(out.freeze())
}

/// `left` as a `grpc-timeout` value: milliseconds, rounded up so that a
/// deadline not yet spent is never sent as 0, in seconds when milliseconds
/// would take more than the eight digits allowed.
fn timeout_value(left: Duration) -> String {
    let millis = left.as_nanos().div_ceil(1_000_000);
    if millis < 100_000_000 {
        format!("{millis}m")
    } else {
        format!("{}S", left.as_secs().min(99_999_999))
    }
}

/// The gRPC status of a failure. The spec's HTTP-to-gRPC table decides
/// where the HTTP status says enough; where Portico knows the cause better
/// than the status does, the cause decides: a rate limit or an in-flight cap
/// is RESOURCE_EXHAUSTED although the HTTP answer would be 429 or 503, and
/// an upstream that did not answer in time is DEADLINE_EXCEEDED.
pub fn code(failure: Failure) -> Code {
    match failure {
        Failure::BadRequest(_) | Failure::UriTooLong => Code::InvalidArgument,
        Failure::ClientTimeout | Failure::UpstreamTimeout => Code::DeadlineExceeded,
        Failure::NoRoute => Code::Unimplemented,
        Failure::IpDenied | Failure::Blocked | Failure::CorsDenied | Failure::OriginDenied => {
            Code::PermissionDenied
        }
        // Neither reaches a gRPC call in practice (a WebSocket handshake or a
        // GraphQL route answers in its own protocol); mapped by HTTP status.
        Failure::WebSocketVersion | Failure::Graphql { .. } => {
            Code::from_http_status(failure.status())
        }
        Failure::HeadersTooLarge | Failure::BodyTooLarge => Code::ResourceExhausted,
        Failure::Auth(rejection) => Code::from_http_status(rejection.status()),
        Failure::RateLimited | Failure::ConcurrencyLimited => Code::ResourceExhausted,
        Failure::RateLimitUnavailable
        | Failure::CircuitOpen
        | Failure::NoHealthyBackend
        | Failure::UpstreamFailed => Code::Unavailable,
        Failure::Internal => Code::Internal,
    }
}

/// Answers `failure` as a trailers-only gRPC response: HTTP 200 and a
/// single header block carrying `grpc-status` and `grpc-message`, which
/// ends the stream. gRPC clients read a failure only from that shape (an
/// HTTP error status would reach them as a transport error).
///
/// Over HTTP/2 the block is written straight to the downstream stream with
/// END_STREAM: Pingora's proxy session would send the header without it and
/// end the stream with an empty DATA frame, which strict clients (grpc-go)
/// take for a response missing its trailers. Over HTTP/1.1 (gRPC-Web) the
/// answer says `content-length: 0`.
pub async fn respond(
    session: &mut Session,
    call: Call,
    failure: Failure,
    request_id: &str,
    extra: &[(http::HeaderName, http::HeaderValue)],
) {
    let Ok(mut header) = ResponseHeader::build(200, Some(5 + extra.len())) else {
        return;
    };
    for (name, value) in extra {
        let _ = header.append_header(name.clone(), value.clone());
    }
    let content_type = match call.flavor {
        Flavor::Native => "application/grpc",
        Flavor::Web(encoding) => encoding.response_content_type(),
    };
    let status = code(failure).value().to_string();
    let message = proto::encode_message(failure.message());
    let fields = [
        ("content-type", content_type),
        ("grpc-status", &status),
        ("grpc-message", &message),
        ("x-request-id", request_id),
    ];
    for (name, value) in fields {
        // The values are ours and valid; a failure here would only drop a header.
        let _ = header.insert_header(name, value);
    }
    // A write error means the client has gone; nothing is left to answer.
    match session.as_downstream_mut() {
        ServerSession::H2(h2) => {
            let _ = h2.write_response_header(Box::new(header), true);
        }
        _ => {
            let _ = header.insert_header(http::header::CONTENT_LENGTH, "0");
            let _ = session.write_response_header(Box::new(header), true).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Rejection;

    #[test]
    fn each_failure_maps_to_the_status_a_grpc_client_expects() {
        let cases = [
            (Failure::NoRoute, Code::Unimplemented),
            (Failure::Auth(Rejection::Missing), Code::Unauthenticated),
            (Failure::Auth(Rejection::Unavailable), Code::Unavailable),
            (
                Failure::Auth(Rejection::InsufficientScope),
                Code::PermissionDenied,
            ),
            (Failure::RateLimited, Code::ResourceExhausted),
            (Failure::ConcurrencyLimited, Code::ResourceExhausted),
            (Failure::BodyTooLarge, Code::ResourceExhausted),
            (Failure::NoHealthyBackend, Code::Unavailable),
            (Failure::CircuitOpen, Code::Unavailable),
            (Failure::UpstreamFailed, Code::Unavailable),
            (Failure::UpstreamTimeout, Code::DeadlineExceeded),
            (Failure::BadRequest("x"), Code::InvalidArgument),
            (Failure::Internal, Code::Internal),
        ];
        for (failure, expected) in cases {
            assert_eq!(code(failure), expected, "{failure:?}");
        }
    }

    #[test]
    fn the_deadline_sent_upstream_fits_the_grpc_timeout_grammar() {
        assert_eq!(timeout_value(Duration::from_micros(1)), "1m");
        assert_eq!(timeout_value(Duration::from_millis(250)), "250m");
        assert_eq!(timeout_value(Duration::from_secs(200_000)), "200000S");
        let long = timeout_value(Duration::from_secs(99_999_999 * 3600));
        assert_eq!(long, "99999999S");
        assert!(proto::parse_timeout(&long).is_some());
    }

    #[test]
    fn a_peer_keeps_the_shorter_of_its_timeouts_and_the_deadline() {
        let call = Call {
            flavor: Flavor::Native,
            deadline: Some(Instant::now() + Duration::from_secs(2)),
            text: None,
        };
        let mut peer = HttpPeer::new("127.0.0.1:1", false, String::new());
        peer.options.read_timeout = Some(Duration::from_secs(30));
        peer.options.write_timeout = Some(Duration::from_millis(500));
        call.bound(&mut peer);
        let read = peer.options.read_timeout.unwrap();
        assert!(read <= Duration::from_secs(2) && read > Duration::from_secs(1));
        assert_eq!(peer.options.write_timeout, Some(Duration::from_millis(500)));
        assert!(peer.options.connection_timeout.unwrap() <= Duration::from_secs(2));
    }

    #[test]
    fn grpc_and_grpc_web_requests_are_recognised_by_content_type() {
        let mut req = RequestHeader::build("POST", b"/a.B/C", None).unwrap();
        assert!(classify(&req).is_none());
        req.insert_header("content-type", "application/grpc+proto")
            .unwrap();
        assert_eq!(classify(&req).map(|c| c.flavor), Some(Flavor::Native));
        req.insert_header("content-type", "application/grpc-web-text")
            .unwrap();
        let text = Some(Flavor::Web(WebEncoding::Text));
        assert_eq!(classify(&req).map(|c| c.flavor), text);
        req.insert_header("content-type", "application/json")
            .unwrap();
        assert!(classify(&req).is_none());
    }
}
