//! A real OAuth2 token introspection endpoint (RFC 7662): it checks the
//! gateway's client credentials, answers from a table of tokens the test
//! fills, counts the calls, and can be stopped to play an outage.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

#[derive(Default)]
struct Table {
    answers: Mutex<HashMap<String, serde_json::Value>>,
    hits: AtomicUsize,
}

pub struct IntrospectionServer {
    pub addr: SocketAddr,
    table: Arc<Table>,
    task: Option<JoinHandle<()>>,
}

/// The client credentials the endpoint accepts: `portico` / `s3cret`.
pub const CLIENT_AUTH: &str = "Basic cG9ydGljbzpzM2NyZXQ=";

impl IntrospectionServer {
    pub async fn start() -> IntrospectionServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let table = Arc::new(Table::default());
        let served = table.clone();
        let task = tokio::spawn(async move {
            // Connections live in this set, so stopping the server also ends
            // the keep-alive connections a client pooled.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let served = served.clone();
                connections.spawn(async move {
                    let svc = service_fn(move |req| answer(served.clone(), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        IntrospectionServer {
            addr,
            table,
            task: Some(task),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/oauth2/introspect", self.addr)
    }

    /// Answers `answer` (an introspection JSON object) for `token`; tokens
    /// not in the table are inactive.
    pub fn set(&self, token: &str, answer: serde_json::Value) {
        self.table
            .answers
            .lock()
            .unwrap()
            .insert(token.to_owned(), answer);
    }

    pub fn hits(&self) -> usize {
        self.table.hits.load(Ordering::SeqCst)
    }

    /// Stops accepting and closes the listener: new calls are refused.
    pub fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Drop for IntrospectionServer {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn answer(
    table: Arc<Table>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    table.hits.fetch_add(1, Ordering::SeqCst);
    let authorised = req
        .headers()
        .get("authorization")
        .is_some_and(|v| v == CLIENT_AUTH);
    let form_ok = req
        .headers()
        .get("content-type")
        .is_some_and(|v| v == "application/x-www-form-urlencoded");
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if !authorised || !form_ok {
        return Ok(Response::builder()
            .status(401)
            .body(Full::new(Bytes::from_static(
                b"{\"error\":\"invalid_client\"}",
            )))
            .unwrap());
    }
    let token = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let found = table.answers.lock().unwrap().get(&token).cloned();
    let json = found.unwrap_or_else(|| serde_json::json!({"active": false}));
    Ok(Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(json.to_string())))
        .unwrap())
}
