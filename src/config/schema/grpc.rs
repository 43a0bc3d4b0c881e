//! The gRPC settings: an upstream's wire protocol and its HTTP/2 stream
//! limit, and the `match.grpc` shorthand for a route.

use serde::Deserialize;

/// The protocol a pool speaks to its backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamProtocol {
    /// HTTP/1.1, over TLS when the upstream has `tls`.
    #[default]
    Http1,
    /// Cleartext HTTP/2 with prior knowledge, as gRPC servers speak it.
    H2c,
    /// HTTP/2 over TLS, negotiated with ALPN `h2`; needs `tls`.
    H2,
}

impl UpstreamProtocol {
    /// Whether requests go to the backends over HTTP/2, which gRPC needs
    /// for its trailers.
    pub fn is_h2(self) -> bool {
        matches!(self, UpstreamProtocol::H2c | UpstreamProtocol::H2)
    }
}

/// The default of `max_h2_streams`: the number most gRPC servers advertise.
pub fn default_max_h2_streams() -> usize {
    100
}

/// `match: {grpc: {service: pkg.Svc, method: Method}}`: the request path
/// `/pkg.Svc/Method`, or every method of the service when `method` is left
/// out. The loader turns it into a `path` match.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcMatchSpec {
    /// The fully qualified service name, package included.
    pub service: String,
    #[serde(default)]
    pub method: Option<String>,
}
