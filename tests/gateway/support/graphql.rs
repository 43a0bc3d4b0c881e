//! A small real GraphQL upstream over HTTP/1.1.
//!
//! It takes GraphQL-over-HTTP requests apart by itself (POST JSON, batched
//! arrays, `application/graphql`, GET), parses each document with
//! async-graphql-parser and answers every operation with a `data` object
//! naming itself and the operation it ran: `{"data": {"served_by": ...,
//! "type": "query", "name": ...}}` (an array for a batch). It keeps every
//! request it got, raw body included, so tests can tell what reached it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_graphql_parser::types::{DocumentOperations, OperationType};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub target: String,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

pub struct GraphqlUpstream {
    pub name: String,
    pub addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    received: Arc<Mutex<Vec<Received>>>,
    tasks: JoinSet<()>,
}

impl GraphqlUpstream {
    pub async fn start(name: &str) -> GraphqlUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = JoinSet::new();
        let (h, r, n) = (hits.clone(), received.clone(), name.to_string());
        tasks.spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (h, r, n) = (h.clone(), r.clone(), n.clone());
                conns.spawn(async move {
                    let svc = service_fn(move |req| serve(h.clone(), r.clone(), n.clone(), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        GraphqlUpstream {
            name: name.to_string(),
            addr,
            hits,
            received,
            tasks,
        }
    }

    /// Requests received so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// The `upstreams:` entry of this server, as a pool named after it.
    pub fn yaml(&self) -> String {
        format!(
            "  {}:\n    backends: [{{ address: \"{}\" }}]\n",
            self.name, self.addr
        )
    }
}

impl Drop for GraphqlUpstream {
    fn drop(&mut self) {
        self.tasks.abort_all();
    }
}

async fn serve(
    hits: Arc<AtomicUsize>,
    received: Arc<Mutex<Vec<Received>>>,
    name: String,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    hits.fetch_add(1, Ordering::SeqCst);
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    received.lock().unwrap().push(Received {
        method: parts.method.to_string(),
        target: parts.uri.to_string(),
        headers: parts.headers.clone(),
        body: body.clone(),
    });
    let answer = if parts.headers.contains_key(http::header::UPGRADE) {
        json!({"data": {"served_by": name, "upgrade": true}})
    } else {
        answer(&name, &parts, &body)
    };
    let response = Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(answer.to_string())))
        .unwrap();
    Ok(response)
}

fn answer(name: &str, parts: &http::request::Parts, body: &[u8]) -> Value {
    let content_type = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if parts.method == http::Method::GET {
        let url = reqwest::Url::parse(&format!("http://x{}", parts.uri)).unwrap();
        let param = |key: &str| {
            url.query_pairs()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.into_owned())
        };
        let query = param("query").unwrap_or_default();
        return run(name, &query, param("operationName").as_deref());
    }
    if content_type.starts_with("application/graphql") {
        return run(name, &String::from_utf8_lossy(body), None);
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(items)) => Value::Array(items.iter().map(|i| run_json(name, i)).collect()),
        Ok(item) => run_json(name, &item),
        Err(e) => json!({"errors": [{"message": format!("bad JSON: {e}")}]}),
    }
}

fn run_json(name: &str, item: &Value) -> Value {
    let query = item["query"].as_str().unwrap_or_default();
    run(name, query, item["operationName"].as_str())
}

/// "Runs" the operation: names its type and name, as a real server would
/// dispatch it.
fn run(name: &str, query: &str, operation_name: Option<&str>) -> Value {
    let document = match async_graphql_parser::parse_query(query) {
        Ok(d) => d,
        Err(e) => return json!({"errors": [{"message": e.to_string()}]}),
    };
    let found = match &document.operations {
        DocumentOperations::Single(op) => Some((None, &op.node)),
        DocumentOperations::Multiple(ops) => match operation_name {
            Some(wanted) => ops
                .iter()
                .find(|(n, _)| n.as_str() == wanted)
                .map(|(n, op)| (Some(n.to_string()), &op.node)),
            None if ops.len() == 1 => ops
                .iter()
                .next()
                .map(|(n, op)| (Some(n.to_string()), &op.node)),
            None => None,
        },
    };
    let Some((op_name, op)) = found else {
        return json!({"errors": [{"message": "which operation?"}]});
    };
    let kind = match op.ty {
        OperationType::Query => "query",
        OperationType::Mutation => "mutation",
        OperationType::Subscription => "subscription",
    };
    json!({"data": {"served_by": name, "type": kind, "name": op_name}})
}
