//! Small JSON services that the default configuration routes to, so a new
//! user can try Portico before pointing it at real backends.
//!
//! Each instance answers `GET /healthz`, its own resource (`/users`,
//! `/users/{id}`, `/orders`), and echoes anything else as JSON: method, path,
//! query and the forwarding headers it received. Every answer names the
//! instance that served it, which makes load balancing visible.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;

/// Serves one demo instance of `service` on `listener` until the task ends.
pub async fn serve(listener: TcpListener, service: &'static str) {
    let instance = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let instance = instance.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let instance = instance.clone();
                async move { Ok::<_, Infallible>(answer(service, &instance, req)) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// Binds and serves one instance; returns the bound address.
pub async fn spawn(addr: SocketAddr, service: &'static str) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(serve(listener, service));
    Ok(bound)
}

fn answer(service: &str, instance: &str, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (status, body) = match (service, segments.as_slice()) {
        (_, ["healthz"]) => (200, json!({"status": "ok"})),
        ("users", ["users"]) => (200, json!({"users": users()})),
        ("users", ["users", id]) => match users().into_iter().find(|u| u["id"] == *id) {
            Some(u) => (200, u),
            None => (404, json!({"error": "no such user", "id": id})),
        },
        ("orders", ["orders"]) => (
            200,
            json!({"orders": [
                {"id": "o-1001", "user": "1", "total": 42.5},
                {"id": "o-1002", "user": "2", "total": 17.0}
            ]}),
        ),
        _ => (200, echo(&req)),
    };
    let mut body = body;
    if let Value::Object(map) = &mut body {
        map.insert(
            "served_by".into(),
            json!({"service": service, "instance": instance}),
        );
    }
    let text = serde_json::to_vec_pretty(&body).unwrap_or_default();
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(text)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

fn users() -> Vec<Value> {
    vec![
        json!({"id": "1", "name": "Ada Lovelace", "tier": "pro"}),
        json!({"id": "2", "name": "Grace Hopper", "tier": "free"}),
    ]
}

fn echo(req: &Request<Incoming>) -> Value {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    json!({
        "method": req.method().as_str(),
        "path": req.uri().path(),
        "query": req.uri().query(),
        "host": header("host"),
        "x_forwarded_for": header("x-forwarded-for"),
        "x_forwarded_proto": header("x-forwarded-proto"),
        "x_forwarded_host": header("x-forwarded-host"),
        "x_request_id": header("x-request-id"),
    })
}
