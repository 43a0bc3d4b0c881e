//! A real HTTP/1.1 upstream whose answers are shaped by the query, for the
//! compression and transformation tests:
//!
//! - `/doc?len=N&type=T&ce=C&etag=E&weak=1&cc=C&vary=V&chunked=1`: N bytes of
//!   text with those fields (`etag=E`: `"E"`, `W/"E"` with `weak`;
//!   `chunked=1`: no `Content-Length`, two chunks);
//! - `/json?type=T&pad=N`: a JSON object with a nested `user`, and a `pad`
//!   string of N bytes;
//! - anything else: a JSON echo of method, path, query, headers and the body
//!   as text.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// The text `/doc` repeats: compressible, like real pages.
pub const TEXT: &str = "Portico shapes answers on their way to the client. ";

/// A running shaped upstream; stops when dropped.
pub struct ShapedUpstream {
    pub addr: SocketAddr,
    /// Requests received, counted when their head arrives.
    hits: Arc<AtomicUsize>,
    _tasks: JoinSet<()>,
}

impl ShapedUpstream {
    pub async fn start() -> ShapedUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut tasks = JoinSet::new();
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        tasks.spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let counter = counter.clone();
                conns.spawn(async move {
                    let svc = service_fn(move |req| {
                        counter.fetch_add(1, Ordering::SeqCst);
                        handle(req)
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        ShapedUpstream {
            addr,
            hits,
            _tasks: tasks,
        }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// The `upstreams:` entry for this server, as pool `shaped`.
    pub fn yaml(&self) -> String {
        format!(
            "upstreams:\n  shaped:\n    backends: [{{ address: \"{}\" }}]\n",
            self.addr
        )
    }
}

fn query(req: &Request<Incoming>) -> BTreeMap<String, String> {
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.replace("%20", " ").replace("%2F", "/")))
        .collect()
}

async fn handle(req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let q = query(&req);
    let response = match req.uri().path() {
        "/doc" => doc(&q),
        "/json" => json(&q),
        _ => echo(req).await,
    };
    Ok(response)
}

fn doc(q: &BTreeMap<String, String>) -> Response<Body> {
    let len: usize = q.get("len").and_then(|l| l.parse().ok()).unwrap_or(4096);
    let text: String = TEXT.chars().cycle().take(len).collect();
    let mut resp = Response::builder().header(
        "content-type",
        q.get("type").map_or("text/plain", String::as_str),
    );
    if let Some(tag) = q.get("etag") {
        let weak = if q.contains_key("weak") { "W/" } else { "" };
        resp = resp.header("etag", format!("{weak}\"{tag}\""));
    }
    for (param, field) in [("ce", "content-encoding"), ("cc", "cache-control")] {
        if let Some(value) = q.get(param) {
            resp = resp.header(field, value.as_str());
        }
    }
    if let Some(vary) = q.get("vary") {
        resp = resp.header("vary", vary.as_str());
    }
    if q.get("chunked").is_some_and(|c| c == "1") {
        let half = text.len() / 2;
        let chunks = vec![
            Ok::<_, Infallible>(Frame::data(Bytes::from(text[..half].to_string()))),
            Ok(Frame::data(Bytes::from(text[half..].to_string()))),
        ];
        return resp
            .body(StreamBody::new(stream::iter(chunks)).boxed())
            .unwrap();
    }
    resp.header("content-length", text.len())
        .body(Full::new(Bytes::from(text)).boxed())
        .unwrap()
}

fn json(q: &BTreeMap<String, String>) -> Response<Body> {
    let pad: usize = q.get("pad").and_then(|l| l.parse().ok()).unwrap_or(0);
    let body = serde_json::json!({
        "id": 7,
        "user": {"name": "ann", "password": "hunter2"},
        "pad": "x".repeat(pad),
    })
    .to_string();
    Response::builder()
        .header(
            "content-type",
            q.get("type").map_or("application/json", String::as_str),
        )
        .header("content-length", body.len())
        .header("x-upstream-secret", "s3")
        .body(Full::new(Bytes::from(body)).boxed())
        .unwrap()
}

async fn echo(req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut headers = serde_json::Map::new();
    for name in parts.headers.keys() {
        let values: Vec<&str> = parts
            .headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap_or("?"))
            .collect();
        headers.insert(name.to_string(), values.join(", ").into());
    }
    let answer = serde_json::json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query().unwrap_or(""),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    })
    .to_string();
    Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(answer)).boxed())
        .unwrap()
}
