//! The one place where a failure becomes a client response.
//!
//! Every step that rejects a request, and every upstream failure Pingora
//! reports, is turned into a [`Failure`]; [`respond`] writes it as a JSON body
//! carrying the request id, or, to a gRPC client, as a trailers-only gRPC
//! response (see [`super::grpc::respond`]). Later protocols (GraphQL) add
//! their own renderings here, keyed on the same `Failure`.
//!
//! Known limitation: a request whose head Pingora cannot parse (a request line
//! such as `GET / HTTP/1.1 x`, or broken header syntax) is answered by Pingora
//! itself with an empty-bodied 400 before any Portico hook runs, so it gets no
//! JSON body, no request id, no access-log line and no metric. Pingora 0.9.1
//! offers no hook at that point. (Raw spaces and other illegal characters in a
//! target are not refused: Pingora percent-escapes them and the request goes on.)

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::{Error, ErrorSource, ErrorType};

use crate::auth::Rejection;

/// Why Portico answered a request itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The request was malformed (bad path, bad framing).
    BadRequest(&'static str),
    /// The client was too slow sending its request.
    ClientTimeout,
    /// No route matched.
    NoRoute,
    /// The client address is not let in by an IP filter.
    IpDenied,
    /// The request target is longer than the route allows.
    UriTooLong,
    /// More header fields, or more header bytes, than the route allows.
    HeadersTooLarge,
    /// The body is, or was declared, larger than the route allows; or it is
    /// too large to inspect where uninspected bodies are refused.
    BodyTooLarge,
    /// Threat protection found SQL injection or XSS.
    Blocked,
    /// A CORS preflight from an origin, or for a method or header, that the
    /// route does not allow.
    CorsDenied,
    /// A WebSocket handshake from an origin the route does not list (403).
    OriginDenied,
    /// A WebSocket handshake for a protocol version other than 13 (426).
    WebSocketVersion,
    /// Authentication or authorisation refused the request (401, 403).
    Auth(Rejection),
    /// A rate limit refused the request (429).
    RateLimited,
    /// A rate limit that fails closed could not reach its store (503).
    RateLimitUnavailable,
    /// The route's, or the consumer's, in-flight cap is reached (503).
    ConcurrencyLimited,
    /// The pool's circuit breaker is open (503).
    CircuitOpen,
    /// The route's pool had no backend able to take the request.
    NoHealthyBackend,
    /// The backend refused the connection or broke it.
    UpstreamFailed,
    /// The backend did not connect or answer in time.
    UpstreamTimeout,
    /// A bug or resource problem inside Portico.
    Internal,
    /// A GraphQL request refused by its route's GraphQL step, with the
    /// status its error response carries and its `extensions.code`.
    Graphql { status: u16, code: &'static str },
}

impl Failure {
    pub fn status(self) -> u16 {
        match self {
            Failure::BadRequest(_) => 400,
            Failure::ClientTimeout => 408,
            Failure::NoRoute => 404,
            Failure::IpDenied | Failure::Blocked | Failure::CorsDenied | Failure::OriginDenied => {
                403
            }
            Failure::WebSocketVersion => 426,
            Failure::UriTooLong => 414,
            Failure::HeadersTooLarge => 431,
            Failure::BodyTooLarge => 413,
            Failure::Auth(rejection) => rejection.status(),
            Failure::RateLimited => 429,
            Failure::RateLimitUnavailable
            | Failure::ConcurrencyLimited
            | Failure::CircuitOpen
            | Failure::NoHealthyBackend => 503,
            Failure::UpstreamFailed => 502,
            Failure::UpstreamTimeout => 504,
            Failure::Internal => 500,
            Failure::Graphql { status, .. } => status,
        }
    }

    /// A stable machine-readable code, also written to the access log.
    pub fn code(self) -> &'static str {
        match self {
            Failure::BadRequest(_) => "bad_request",
            Failure::ClientTimeout => "request_timeout",
            Failure::NoRoute => "no_route",
            Failure::IpDenied => "ip_denied",
            Failure::UriTooLong => "uri_too_long",
            Failure::HeadersTooLarge => "headers_too_large",
            Failure::BodyTooLarge => "body_too_large",
            Failure::Blocked => "request_blocked",
            Failure::CorsDenied => "cors_denied",
            Failure::OriginDenied => "origin_denied",
            Failure::WebSocketVersion => "websocket_version",
            Failure::Auth(rejection) => rejection.code(),
            Failure::RateLimited => "rate_limited",
            Failure::RateLimitUnavailable => "rate_limit_unavailable",
            Failure::ConcurrencyLimited => "concurrency_limited",
            Failure::CircuitOpen => "circuit_open",
            Failure::NoHealthyBackend => "no_healthy_backend",
            Failure::UpstreamFailed => "upstream_failed",
            Failure::UpstreamTimeout => "upstream_timeout",
            Failure::Internal => "internal_error",
            Failure::Graphql { code, .. } => code,
        }
    }

    /// A sentence for people, written into the response body.
    pub fn message(self) -> &'static str {
        match self {
            Failure::BadRequest(why) => why,
            Failure::ClientTimeout => "the request was not received in time",
            Failure::NoRoute => "no route matches this request",
            Failure::IpDenied => "requests from this address are not allowed",
            Failure::UriTooLong => "the request target is too long",
            Failure::HeadersTooLarge => "the request has too many or too large header fields",
            Failure::BodyTooLarge => "the request body is too large",
            Failure::Blocked => "the request was blocked by threat protection",
            Failure::CorsDenied => "this cross-origin request is not allowed",
            Failure::OriginDenied => "WebSocket connections from this origin are not allowed",
            Failure::WebSocketVersion => "only WebSocket version 13 is supported",
            Failure::Auth(rejection) => rejection.message(),
            Failure::RateLimited => "too many requests; retry after the time in Retry-After",
            Failure::RateLimitUnavailable => "the rate limit cannot be checked right now",
            Failure::ConcurrencyLimited => "too many requests in flight on this route",
            Failure::CircuitOpen => "the upstream is failing; requests are paused",
            Failure::NoHealthyBackend => "no healthy backend is available for this route",
            Failure::UpstreamFailed => "the upstream refused or reset the connection",
            Failure::UpstreamTimeout => "the upstream did not answer in time",
            Failure::Internal => "internal gateway error",
            Failure::Graphql { .. } => "the GraphQL request was refused",
        }
    }

    /// Classifies an error Pingora reports. `None` means the client is gone
    /// and no response can be written.
    pub fn from_error(e: &Error) -> Option<Failure> {
        use ErrorType::*;
        let etype = e.etype();
        if let HTTPStatus(code) = etype {
            return Some(match code {
                400 => Failure::BadRequest("malformed request"),
                404 => Failure::NoRoute,
                503 => Failure::NoHealthyBackend,
                504 => Failure::UpstreamTimeout,
                _ => Failure::UpstreamFailed,
            });
        }
        match e.esource() {
            ErrorSource::Upstream => Some(match etype {
                ConnectTimedout | ReadTimedout | WriteTimedout | TLSHandshakeTimedout => {
                    Failure::UpstreamTimeout
                }
                _ => Failure::UpstreamFailed,
            }),
            ErrorSource::Downstream => match etype {
                ReadError | WriteError | ConnectionClosed => None,
                ReadTimedout => Some(Failure::ClientTimeout),
                _ => Some(Failure::BadRequest("malformed request")),
            },
            ErrorSource::Internal | ErrorSource::Unset => Some(Failure::Internal),
        }
    }
}

/// Writes `failure` to the client as JSON. Does nothing when a response has
/// already started (the connection is then closed by Pingora).
pub async fn respond(session: &mut Session, failure: Failure, request_id: &str) {
    respond_with(session, failure, request_id, &[]).await;
}

/// Like [`respond`], with `extra` header fields (authentication challenges,
/// CORS headers) added to the answer.
pub async fn respond_with(
    session: &mut Session,
    failure: Failure,
    request_id: &str,
    extra: &[(http::HeaderName, http::HeaderValue)],
) {
    if session.response_written().is_some() {
        return;
    }
    // A gRPC client reads only a gRPC status: the cause goes in trailers.
    if let Some(call) = super::grpc::classify(session.req_header()) {
        super::close_when_stopping(session);
        super::grpc::respond(session, call, failure, request_id, extra).await;
        return;
    }
    let body = render_json(failure, request_id);
    let content_type = "application/json";
    write_answer(
        session,
        failure.status(),
        content_type,
        body,
        request_id,
        extra,
    )
    .await;
}

/// Writes a refused GraphQL request's error response (see
/// [`super::graphql`]), with `extra` header fields as [`respond_with`] does.
pub async fn respond_graphql(
    session: &mut Session,
    answer: super::graphql::GraphqlAnswer,
    request_id: &str,
    extra: &[(http::HeaderName, http::HeaderValue)],
) {
    let status = answer.status;
    write_answer(
        session,
        status,
        answer.content_type,
        answer.body,
        request_id,
        extra,
    )
    .await;
}

async fn write_answer(
    session: &mut Session,
    status: u16,
    content_type: &str,
    body: String,
    request_id: &str,
    extra: &[(http::HeaderName, http::HeaderValue)],
) {
    if session.response_written().is_some() {
        return;
    }
    let body = Bytes::from(body);
    let Ok(mut header) = ResponseHeader::build(status, Some(4 + extra.len())) else {
        return;
    };
    for (name, value) in extra {
        let _ = header.append_header(name.clone(), value.clone());
    }
    let headers = [
        ("content-type", content_type),
        ("content-length", &body.len().to_string()),
        ("x-request-id", request_id),
        ("cache-control", "no-store"),
    ];
    for (name, value) in headers {
        // The values are ours and valid; a failure here would only drop a header.
        let _ = header.insert_header(name, value);
    }
    super::close_when_stopping(session);
    if session
        .write_response_header(Box::new(header), false)
        .await
        .is_ok()
    {
        let _ = session.write_response_body(Some(body), true).await;
    }
}

fn render_json(failure: Failure, request_id: &str) -> String {
    serde_json::json!({
        "error": failure.code(),
        "message": failure.message(),
        "status": failure.status(),
        "request_id": request_id,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_timeouts_become_504_and_refusals_502() {
        let t = Error::new(ErrorType::ConnectTimedout).into_up();
        assert_eq!(Failure::from_error(&t), Some(Failure::UpstreamTimeout));
        let r = Error::new(ErrorType::ReadTimedout).into_up();
        assert_eq!(Failure::from_error(&r).map(Failure::status), Some(504));
        let refused = Error::new(ErrorType::ConnectRefused).into_up();
        assert_eq!(
            Failure::from_error(&refused).map(Failure::status),
            Some(502)
        );
    }

    #[test]
    fn a_vanished_client_gets_no_response() {
        let gone = Error::new(ErrorType::ConnectionClosed).into_down();
        assert_eq!(Failure::from_error(&gone), None);
    }

    #[test]
    fn auth_refusals_keep_the_json_shape_with_their_own_codes() {
        let missing = Failure::Auth(Rejection::Missing);
        assert_eq!(missing.status(), 401);
        let v: serde_json::Value = serde_json::from_str(&render_json(missing, "r1")).unwrap();
        assert_eq!(v["error"], "missing_credentials");
        assert_eq!(v["status"], 401);
        let scope = Failure::Auth(Rejection::InsufficientScope);
        assert_eq!((scope.status(), scope.code()), (403, "insufficient_scope"));
    }

    #[test]
    fn json_body_carries_code_and_request_id() {
        let v: serde_json::Value =
            serde_json::from_str(&render_json(Failure::NoRoute, "abc")).unwrap();
        assert_eq!(v["error"], "no_route");
        assert_eq!(v["status"], 404);
        assert_eq!(v["request_id"], "abc");
    }
}
