//! The `grpc` kind of active health check: the standard
//! `grpc.health.v1.Health/Check` call, made over the pool's own HTTP/2
//! (h2c or TLS with ALPN h2) through Pingora's connector.
//!
//! A backend passes when the call returns grpc-status 0 with a response
//! whose status is SERVING; NOT_SERVING, UNKNOWN, SERVICE_UNKNOWN, any other
//! grpc-status, a malformed answer or none in time (the checker's timeout)
//! fail it.

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::lb::health_check::HealthCheck;
use pingora::lb::Backend as LbBackend;
use pingora::protocols::http::client::HttpSession;
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType, Result};
use portico_protocols::grpc::{self as proto, ServingStatus};

/// The method every standard health service serves.
const CHECK_PATH: &str = "/grpc.health.v1.Health/Check";

/// Largest health response read; the real one is a few bytes.
const MAX_RESPONSE: usize = 64 * 1024;

/// One backend's gRPC health probe.
pub struct GrpcHealthCheck {
    /// The pool's peer for the backend: its TLS, ALPN h2 and timeouts.
    peer: HttpPeer,
    /// Sent as `:authority`.
    authority: String,
    /// The framed `HealthCheckRequest`.
    body: Bytes,
    connector: Connector,
}

impl GrpcHealthCheck {
    pub fn new(peer: HttpPeer, authority: &str, service: &str) -> GrpcHealthCheck {
        GrpcHealthCheck {
            peer,
            authority: authority.to_owned(),
            body: proto::health_check_request(service),
            connector: Connector::new(None),
        }
    }

    fn request(&self) -> Result<RequestHeader> {
        let mut req = RequestHeader::build("POST", CHECK_PATH.as_bytes(), Some(3))?;
        req.insert_header(http::header::HOST, &self.authority)?;
        req.insert_header(http::header::CONTENT_TYPE, "application/grpc")?;
        req.insert_header(http::header::TE, "trailers")?;
        Ok(req)
    }
}

fn fail(why: &'static str) -> Box<Error> {
    Error::explain(ErrorType::Custom("grpc health check failed"), why)
}

#[async_trait]
impl HealthCheck for GrpcHealthCheck {
    /// Portico counts the streaks itself (see `Backend::record_check`).
    fn health_threshold(&self, _success: bool) -> usize {
        1
    }

    async fn check(&self, _target: &LbBackend) -> Result<()> {
        let (session, _) = self.connector.get_http_session(&self.peer).await?;
        let HttpSession::H2(mut h2) = session else {
            return Err(fail("the backend did not speak HTTP/2"));
        };
        h2.write_request_header(Box::new(self.request()?), false)?;
        h2.write_request_body(self.body.clone(), true).await?;
        h2.read_response_header().await?;
        let header = h2
            .response_header()
            .ok_or_else(|| fail("no response header"))?;
        if header.status != 200 {
            return Err(fail("the health call was not answered with HTTP 200"));
        }
        // A trailers-only answer carries the status in the header block.
        let mut status = header.headers.get("grpc-status").cloned();
        let mut body = BytesMut::new();
        if status.is_none() {
            while let Some(chunk) = h2.read_response_body().await? {
                if body.len() + chunk.len() > MAX_RESPONSE {
                    return Err(fail("the health response is too large"));
                }
                body.extend_from_slice(&chunk);
            }
            status = h2
                .read_trailers()
                .await?
                .and_then(|t| t.get("grpc-status").cloned());
        }
        if status.as_ref().map(|s| s.as_bytes()) != Some(b"0") {
            return Err(fail("the health call did not end with grpc-status 0"));
        }
        match proto::decode_health_response(&body) {
            Ok(ServingStatus::Serving) => Ok(()),
            Ok(_) => Err(fail("the backend reports it is not serving")),
            Err(_) => Err(fail("the health response is malformed")),
        }
    }
}
