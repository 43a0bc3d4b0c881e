//! gRPC on the gateway side: recognising gRPC requests, answering Portico's own
//! failures as trailers-only gRPC responses, and `grpc-timeout` deadlines.
//!
//! A request is gRPC by its `content-type` (`application/grpc[+..]`), and
//! gRPC-Web by `application/grpc-web[-text][+..]`; the route does not decide
//! it, so a gRPC client meets gRPC answers even where no route matched.

use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::http::ServerSession;
use pingora::proxy::Session;
use portico_protocols::grpc::{self as proto, Code, WebEncoding};

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
#[derive(Debug, Clone, Copy)]
pub struct Call {
    pub flavor: Flavor,
}

/// The gRPC call `req` makes, if it is one.
pub fn classify(req: &RequestHeader) -> Option<Call> {
    let content_type = req.headers.get(http::header::CONTENT_TYPE)?.to_str().ok()?;
    let flavor = if proto::is_grpc_content_type(content_type) {
        Flavor::Native
    } else {
        Flavor::Web(proto::web_encoding(content_type)?)
    };
    Some(Call { flavor })
}

/// Puts back `te: trailers`, which the hop-by-hop clean-up removed: gRPC
/// servers refuse a call without it, as it promises the client reads
/// trailers.
pub fn prepare_upstream_request(upstream: &mut RequestHeader) -> pingora::Result<()> {
    upstream.insert_header(http::header::TE, "trailers")
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
        Failure::IpDenied | Failure::Blocked | Failure::CorsDenied => Code::PermissionDenied,
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
