//! A real HTTP/1.1 upstream with behaviours chosen by path:
//!
//! - `/slow?ms=N`: answers after N milliseconds;
//! - `/status/N`: answers with status N;
//! - `/bytes?n=N`: streams N bytes without holding them in memory;
//! - `/upload`: reads the whole body and answers with its length;
//! - `/body`: answers with the request body, byte for byte;
//! - `/hop`: answers with `Connection: x-secret` and an `X-Secret` header;
//! - `/healthz`: 200, or 503 after `set_healthy(false)`;
//! - `/reset`: reads the request head, then closes the connection unanswered;
//! - anything else: a JSON echo of method, path, query and headers.
//!
//! Every answer carries `x-upstream: <name>`; requests and accepted
//! connections are counted.
//! Two switches change every path but `/healthz`: `set_resetting(true)` makes
//! each request behave like `/reset`, `set_delay(d)` holds each answer for `d`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

pub struct State {
    pub name: String,
    pub hits: AtomicUsize,
    /// TCP connections accepted, so tests can tell reuse from reconnects.
    pub connections: AtomicUsize,
    pub healthy: AtomicBool,
    /// `/healthz` answers given, by outcome.
    pub probes_passed: AtomicUsize,
    pub probes_failed: AtomicUsize,
    /// Close every connection without answering (except `/healthz`).
    pub resetting: AtomicBool,
    /// Milliseconds every answer but `/healthz` waits before it is sent.
    pub delay_ms: AtomicU64,
    /// Paths of the requests received, in order.
    pub paths: Mutex<Vec<String>>,
    /// Headers of the last request received.
    pub last_headers: Mutex<http::HeaderMap>,
    /// Body bytes `/upload` has read, over all requests, as they arrive.
    pub upload_bytes: AtomicU64,
}

/// A running upstream; stops when dropped or on `stop()`.
pub struct Upstream {
    pub addr: SocketAddr,
    pub state: Arc<State>,
    tasks: Option<JoinSet<()>>,
}

impl Upstream {
    /// Starts an upstream on an ephemeral port.
    pub async fn start(name: &str) -> Upstream {
        Upstream::start_on("127.0.0.1:0".parse().unwrap(), name).await
    }

    /// Starts an upstream on a given address (to restart one that stopped).
    pub async fn start_on(addr: SocketAddr, name: &str) -> Upstream {
        let listener = bind_retrying(addr).await;
        let state = Arc::new(State {
            name: name.to_string(),
            hits: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            healthy: AtomicBool::new(true),
            probes_passed: AtomicUsize::new(0),
            probes_failed: AtomicUsize::new(0),
            resetting: AtomicBool::new(false),
            delay_ms: AtomicU64::new(0),
            paths: Mutex::new(Vec::new()),
            last_headers: Mutex::new(http::HeaderMap::new()),
            upload_bytes: AtomicU64::new(0),
        });
        let addr = listener.local_addr().unwrap();
        let mut tasks = JoinSet::new();
        let st = state.clone();
        tasks.spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                st.connections.fetch_add(1, Ordering::SeqCst);
                let st = st.clone();
                conns.spawn(async move {
                    let svc = service_fn(move |req| handle(st.clone(), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Upstream {
            addr,
            state,
            tasks: Some(tasks),
        }
    }

    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    /// TCP connections accepted so far (health probes included).
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    pub fn set_healthy(&self, up: bool) {
        self.state.healthy.store(up, Ordering::SeqCst);
    }

    /// While on, every request but `/healthz` has its connection closed
    /// before any answer, like a backend that crashes on each request.
    pub fn set_resetting(&self, on: bool) {
        self.state.resetting.store(on, Ordering::SeqCst);
    }

    /// Holds every answer but `/healthz` for `delay` before sending it.
    pub fn set_delay(&self, delay: Duration) {
        self.state
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// How many `/healthz` probes were answered 200 and 503 so far.
    pub fn probes(&self) -> (usize, usize) {
        let passed = self.state.probes_passed.load(Ordering::SeqCst);
        (passed, self.state.probes_failed.load(Ordering::SeqCst))
    }

    /// Whether this upstream received a request whose path and query are `uri`.
    pub fn saw(&self, uri: &str) -> bool {
        self.state.paths.lock().unwrap().iter().any(|p| p == uri)
    }

    /// Stops accepting and closes every open connection.
    pub async fn stop(&mut self) {
        if let Some(mut t) = self.tasks.take() {
            t.abort_all();
            while t.join_next().await.is_some() {}
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(t) = self.tasks.as_mut() {
            t.abort_all();
        }
    }
}

async fn bind_retrying(addr: SocketAddr) -> TcpListener {
    for _ in 0..100 {
        if let Ok(l) = TcpListener::bind(addr).await {
            return l;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("cannot bind {addr}");
}

fn query_param(req: &Request<Incoming>, name: &str) -> Option<u64> {
    req.uri().query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| v.parse().ok()).flatten()
    })
}

fn full(status: u16, name: &str, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("x-upstream", name)
        .body(Full::new(body.into()).boxed())
        .unwrap()
}

/// The error a handler returns to make hyper drop the connection unanswered.
#[derive(Debug)]
pub struct Reset;

impl std::fmt::Display for Reset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection reset on purpose")
    }
}

impl std::error::Error for Reset {}

async fn handle(st: Arc<State>, req: Request<Incoming>) -> Result<Response<Body>, Reset> {
    st.hits.fetch_add(1, Ordering::SeqCst);
    let path = req.uri().path().to_string();
    st.paths.lock().unwrap().push(req.uri().to_string());
    *st.last_headers.lock().unwrap() = req.headers().clone();
    let name = st.name.clone();
    if path == "/healthz" {
        let up = st.healthy.load(Ordering::SeqCst);
        let counter = if up {
            &st.probes_passed
        } else {
            &st.probes_failed
        };
        counter.fetch_add(1, Ordering::SeqCst);
        return Ok(full(
            if up { 200 } else { 503 },
            &name,
            if up { "ok" } else { "down" },
        ));
    }
    if path == "/reset" || st.resetting.load(Ordering::SeqCst) {
        return Err(Reset);
    }
    let delay = st.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let resp = match path.as_str() {
        "/slow" => {
            let ms = query_param(&req, "ms").unwrap_or(1000);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            full(200, &name, format!("slept {ms}"))
        }
        "/bytes" => {
            let n = query_param(&req, "n").unwrap_or(1024);
            stream_bytes(&name, n)
        }
        "/upload" => {
            let mut body = req.into_body();
            let mut total: u64 = 0;
            while let Some(Ok(frame)) = body.frame().await {
                if let Some(d) = frame.data_ref() {
                    total += d.len() as u64;
                    st.upload_bytes.fetch_add(d.len() as u64, Ordering::SeqCst);
                }
            }
            full(200, &name, total.to_string())
        }
        "/body" => match req.into_body().collect().await {
            Ok(body) => full(200, &name, body.to_bytes()),
            Err(_) => return Err(Reset),
        },
        "/hop" => Response::builder()
            .status(200)
            .header("x-upstream", &name)
            .header("connection", "x-secret")
            .header("x-secret", "1")
            .header("keep-alive", "timeout=5")
            .body(Full::new(Bytes::from_static(b"hop")).boxed())
            .unwrap(),
        p if p.starts_with("/status/") => {
            let code = p["/status/".len()..].parse().unwrap_or(500);
            full(code, &name, format!("status {code}"))
        }
        _ => {
            let headers: serde_json::Map<String, serde_json::Value> = req
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").into()))
                .collect();
            let body = serde_json::json!({
                "upstream": name,
                "method": req.method().as_str(),
                "path": path,
                "query": req.uri().query(),
                "headers": headers,
            });
            let mut r = full(200, &name, body.to_string());
            r.headers_mut()
                .insert("content-type", "application/json".parse().unwrap());
            r
        }
    };
    Ok(resp)
}

/// Streams `n` bytes in 64 KiB frames, generated as they are sent.
fn stream_bytes(name: &str, n: u64) -> Response<Body> {
    const CHUNK: u64 = 64 * 1024;
    let chunk = Bytes::from(vec![b'x'; CHUNK as usize]);
    let frames = stream::unfold(0u64, move |sent| {
        let chunk = chunk.clone();
        async move {
            if sent >= n {
                return None;
            }
            let len = CHUNK.min(n - sent);
            Some((
                Ok::<_, Infallible>(Frame::data(chunk.slice(0..len as usize))),
                sent + len,
            ))
        }
    });
    Response::builder()
        .status(200)
        .header("x-upstream", name)
        .header("content-length", n)
        .body(StreamBody::new(frames).boxed())
        .unwrap()
}
