//! The cache tests' origin: a real HTTP/1.1 server that counts its
//! requests and answers with the caching headers each test asks for.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The `Last-Modified` of every answer.
pub const LAST_MODIFIED: &str = "Wed, 02 Dec 2026 10:00:00 GMT";

/// An origin whose answers are set by the query: `cc` (Cache-Control),
/// `cc304` (Cache-Control of its 304s), `cdn` (CDN-Cache-Control), `age`,
/// `expires`, `date` (not on 304s), `lm` (a Last-Modified, or `none`),
/// `vary`, `cookie=1` (a Set-Cookie), `secret` (an `X-Secret` field),
/// `status`, `ms` (a delay), `pad` (bytes added to the body). Every answer
/// has `ETag: "e1"` and, unless `lm=none`, [`LAST_MODIFIED`]; it honours
/// `If-None-Match` with 304; its body names the host, the target and the
/// request's number. `/stream` sends a cacheable body in two chunks, the
/// second when the test opens `gate`.
pub struct Origin {
    pub addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    pub failing: Arc<AtomicBool>,
    /// `/stream` sends its first chunk, then waits for a permit here.
    pub gate: Arc<tokio::sync::Semaphore>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Origin {
    pub async fn start() -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let failing = Arc::new(AtomicBool::new(false));
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let (h, f, g) = (hits.clone(), failing.clone(), gate.clone());
        let task = tokio::spawn(async move {
            // Owned here so that stopping the origin closes its connections.
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (h, f, g) = (h.clone(), f.clone(), g.clone());
                conns.spawn(async move {
                    let svc = service_fn(move |req| {
                        let (h, f, g) = (h.clone(), f.clone(), g.clone());
                        async move {
                            if req.uri().path() == "/stream" {
                                h.fetch_add(1, Ordering::SeqCst);
                                return Ok::<_, Infallible>(gated(g));
                            }
                            answer(h, f, req).await.map(|r| r.map(|b| b.boxed()))
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Origin {
            addr,
            hits,
            failing,
            gate,
            task,
        }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// A cacheable answer whose body is `first-` at once and `rest` once the
/// gate lets it.
fn gated(gate: Arc<tokio::sync::Semaphore>) -> Response<BoxBody<Bytes, Infallible>> {
    let chunks = futures_util::stream::unfold(0, move |step| {
        let gate = gate.clone();
        async move {
            let chunk = match step {
                0 => "first-",
                1 => {
                    gate.acquire().await.ok()?.forget();
                    "rest"
                }
                _ => return None,
            };
            let frame = hyper::body::Frame::data(Bytes::from_static(chunk.as_bytes()));
            Some((Ok::<_, Infallible>(frame), step + 1))
        }
    });
    Response::builder()
        .header("cache-control", "max-age=60")
        .body(StreamBody::new(chunks).boxed())
        .unwrap()
}

async fn answer(
    hits: Arc<AtomicUsize>,
    failing: Arc<AtomicBool>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let n = hits.fetch_add(1, Ordering::SeqCst) + 1;
    let params: Vec<(String, String)> = req
        .uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    if let Some(ms) = param("ms").and_then(|m| m.parse().ok()) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let mut resp = Response::builder();
    if failing.load(Ordering::SeqCst) {
        return Ok(resp.status(503).body(Full::new(Bytes::new())).unwrap());
    }
    let matched = req
        .headers()
        .get("if-none-match")
        .is_some_and(|v| v == "\"e1\"");
    resp = resp.header("etag", "\"e1\"");
    match param("lm").as_deref() {
        Some("none") => {}
        Some(lm) => resp = resp.header("last-modified", lm),
        None => resp = resp.header("last-modified", LAST_MODIFIED),
    }
    let cc = match param("cc304") {
        Some(cc) if matched => Some(cc),
        _ => param("cc"),
    };
    if let Some(cc) = cc {
        resp = resp.header("cache-control", cc);
    }
    for (param_name, field) in [
        ("age", "age"),
        ("expires", "expires"),
        ("cdn", "cdn-cache-control"),
        ("secret", "x-secret"),
    ] {
        if let Some(value) = param(param_name) {
            resp = resp.header(field, value);
        }
    }
    // A 304 carries the server's own Date.
    if let Some(date) = param("date").filter(|_| !matched) {
        resp = resp.header("date", date);
    }
    if let Some(vary) = param("vary") {
        resp = resp.header("vary", vary);
    }
    if param("cookie").is_some() {
        resp = resp.header("set-cookie", format!("s={n}"));
    }
    if matched {
        return Ok(resp.status(304).body(Full::new(Bytes::new())).unwrap());
    }
    let status: u16 = param("status").and_then(|s| s.parse().ok()).unwrap_or(200);
    let host = req
        .headers()
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let lang = req
        .headers()
        .get("accept-language")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let mut body = format!("{host} {} #{n} {lang}", req.uri());
    if let Some(pad) = param("pad").and_then(|p| p.parse().ok()) {
        body.push_str(&".".repeat(pad));
    }
    Ok(resp.status(status).body(Full::new(body.into())).unwrap())
}
