//! The admin listener: liveness, readiness and metrics, on an address of its
//! own so it is never exposed with the public listeners.
//!
//! - `GET /healthz`: 200 while the process serves.
//! - `GET /readyz`: 200 once every public listener is listening and every
//!   pool has had its first round of health checks, 503 before, with what is
//!   still awaited.
//! - `GET /metrics`: Prometheus text format.
//! - `POST /cache/purge` with `{"url": ...}` or `{"prefix": ...}`: removes
//!   cached responses; needs `Authorization: Bearer <admin.token>`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

mod purge;

use crate::gateway::SharedSnapshot;
use crate::observe::metrics::metrics;

/// The admin HTTP application.
pub struct Admin {
    pub snapshot: SharedSnapshot,
    /// Set once every public listener was seen listening.
    pub listening: AtomicBool,
}

impl Admin {
    pub fn new(snapshot: SharedSnapshot) -> Admin {
        Admin {
            snapshot,
            listening: AtomicBool::new(false),
        }
    }
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
            "/cache/purge" => {
                let snapshot = self.snapshot.load();
                let token = snapshot.config.admin.as_ref().and_then(|a| a.token.clone());
                purge::answer(session, token.as_deref()).await
            }
            _ => json(StatusCode::NOT_FOUND, r#"{"error":"not_found"}"#.into()),
        }
    }
}

impl Admin {
    fn readiness(&self) -> Response<Vec<u8>> {
        let snapshot = self.snapshot.load();
        let mut waiting: Vec<String> = Vec::new();
        if !self.listening.load(Ordering::Acquire) {
            // Pingora starts each service on its own thread, so the admin
            // listener can answer before the public ones listen.
            let ports = listening_ports();
            let pending: Vec<String> = snapshot
                .config
                .listeners
                .iter()
                .enumerate()
                .filter(|(_, l)| {
                    l.address
                        .parse::<SocketAddr>()
                        .is_ok_and(|a| !ports.contains(&a.port()))
                })
                .map(|(i, _)| format!("listeners[{i}]"))
                .collect();
            if pending.is_empty() {
                self.listening.store(true, Ordering::Release);
            }
            waiting.extend(pending);
        }
        waiting.extend(
            snapshot
                .pools
                .iter()
                .filter(|(_, p)| !p.is_checked())
                .map(|(name, _)| name.clone()),
        );
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

/// The local ports with a TCP socket in the LISTEN state, from the kernel's
/// tables. Read rather than probed: a probe connection would be logged as a
/// failed TLS handshake, and a probe bind could make Pingora's own bind wait.
/// A port of a listener is ours once listening: `run` checked it was free.
fn listening_ports() -> Vec<u16> {
    let mut ports = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let mut fields = line.split_whitespace();
            let (Some(local), Some(_remote), Some(state)) =
                (fields.nth(1), fields.next(), fields.next())
            else {
                continue;
            };
            // State 0A is LISTEN; the local address ends in `:PORT` in hex.
            if state != "0A" {
                continue;
            }
            if let Some(port) = local
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
            {
                ports.push(port);
            }
        }
    }
    ports
}

pub(crate) fn json(status: StatusCode, body: Vec<u8>) -> Response<Vec<u8>> {
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

#[cfg(test)]
mod tests {
    use super::listening_ports;

    #[test]
    fn a_listening_port_is_found_and_a_closed_one_is_not() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(listening_ports().contains(&port));
        drop(listener);
        assert!(!listening_ports().contains(&port));
    }
}
