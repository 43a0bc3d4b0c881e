//! The admin listener: liveness, readiness and metrics, on an address of its
//! own so it is never exposed with the public listeners.
//!
//! - `GET /healthz`: 200 while the process serves.
//! - `GET /readyz`: 200 once every pool has had its first round of health
//!   checks, 503 before, with the pools still waiting.
//! - `GET /metrics`: Prometheus text format.

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::gateway::SharedSnapshot;
use crate::observe::metrics::metrics;

/// The admin HTTP application.
pub struct Admin {
    pub snapshot: SharedSnapshot,
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let path = session.req_header().uri.path();
        match path {
            "/healthz" => json(StatusCode::OK, r#"{"status":"ok"}"#.into()),
            "/readyz" => self.readiness(),
            "/metrics" => {
                let body = metrics().render(&self.snapshot.load());
                respond(StatusCode::OK, "text/plain; version=0.0.4", body)
            }
            _ => json(StatusCode::NOT_FOUND, r#"{"error":"not_found"}"#.into()),
        }
    }
}

impl Admin {
    fn readiness(&self) -> Response<Vec<u8>> {
        let snapshot = self.snapshot.load();
        let waiting: Vec<&str> = snapshot
            .pools
            .iter()
            .filter(|(_, p)| !p.is_checked())
            .map(|(name, _)| name.as_str())
            .collect();
        if waiting.is_empty() {
            json(StatusCode::OK, r#"{"status":"ready"}"#.into())
        } else {
            let body = serde_json::json!({ "status": "starting", "waiting_for": waiting });
            json(
                StatusCode::SERVICE_UNAVAILABLE,
                body.to_string().into_bytes(),
            )
        }
    }
}

fn json(status: StatusCode, body: Vec<u8>) -> Response<Vec<u8>> {
    respond(status, "application/json", body)
}

fn respond(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    let len = body.len();
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    if let Ok(v) = content_type.parse() {
        headers.insert(http::header::CONTENT_TYPE, v);
    }
    headers.insert(http::header::CONTENT_LENGTH, len.into());
    resp
}
