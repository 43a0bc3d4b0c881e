//! gRPC on the gateway side: recognising gRPC requests, answering Portico's own
//! failures as trailers-only gRPC responses, and `grpc-timeout` deadlines.
//!
//! A request is gRPC by its `content-type` (`application/grpc[+..]`), and
//! gRPC-Web by `application/grpc-web[-text][+..]`; the route does not decide
//! it, so a gRPC client meets gRPC answers even where no route matched.

use pingora::http::RequestHeader;
use portico_protocols::grpc::{self as proto, WebEncoding};

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
