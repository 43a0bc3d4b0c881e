//! GraphQL on the gateway side: reading the operation before the upstream is
//! chosen, applying the route's limits and routing by operation.
//!
//! Pingora hands a request body to filters only once an upstream is chosen,
//! but choosing it here needs the operation in the body. So the body is read
//! in `request_filter` with Pingora's retry buffering on: what is read there
//! is kept and, when the upstream is connected, sent to it first as the whole
//! body, byte for byte. That buffer holds 64 KiB, which caps GraphQL bodies;
//! a larger one is refused with 413, never truncated.
//!
//! Every other answer Portico gives on a GraphQL route (authentication, rate
//! limits, upstream failures) is written in the same GraphQL error shape.
//!
//! Known limitation: a subscription is routed at its WebSocket upgrade by
//! type alone, since its operations travel inside the stream, where they are
//! not analysed.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pingora::proxy::Session;
use portico_protocols::graphql::{
    accepts_graphql_response_json, extract, inspect, Inspected, Limits, OperationKind, RejectKind,
    Rejection, Transport,
};

use super::ctx::RequestCtx;
use super::error::Failure;
use crate::config::schema::{GraphqlOperationType, GraphqlSpec, Size, MAX_GRAPHQL_BODY};
use crate::config::Config;
use crate::policy::limits::declared_length;
use crate::upstream::Pool;

/// How long the body may take to arrive when the route's pool sets no read
/// timeout to borrow.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// A GraphQL route's limits and operation routing, compiled.
#[derive(Debug)]
pub struct GraphqlRoute {
    limits: Limits,
    body_cap: u64,
    rules: Vec<Rule>,
}

/// Operations of `kind` (named `name`, when set) go to `pool`.
#[derive(Debug)]
struct Rule {
    kind: OperationKind,
    name: Option<String>,
    pool: Arc<Pool>,
}

/// A refusal written as a GraphQL error response.
#[derive(Debug, Clone)]
pub struct GraphqlAnswer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl GraphqlRoute {
    /// Compiles the `graphql` settings of each route, by route index.
    pub fn build_all(
        config: &Config,
        pools: &BTreeMap<String, Arc<Pool>>,
    ) -> Result<Vec<Option<GraphqlRoute>>, Vec<String>> {
        let mut errors = Vec::new();
        let routes = (0..config.routes.len())
            .map(|i| {
                let spec = config.route_graphql.get(i)?.as_ref()?;
                Some(GraphqlRoute::build(i, spec, pools, &mut errors))
            })
            .collect();
        if errors.is_empty() {
            Ok(routes)
        } else {
            Err(errors)
        }
    }

    fn build(
        index: usize,
        spec: &GraphqlSpec,
        pools: &BTreeMap<String, Arc<Pool>>,
        errors: &mut Vec<String>,
    ) -> GraphqlRoute {
        let mut rules = Vec::with_capacity(spec.operations.len());
        for (j, rule) in spec.operations.iter().enumerate() {
            let Some(pool) = pools.get(&rule.upstream) else {
                errors.push(format!(
                    "routes[{index}].graphql.operations[{j}].upstream: no upstream named {:?}; \
                     fix: define it under upstreams",
                    rule.upstream
                ));
                continue;
            };
            rules.push(Rule {
                kind: match rule.kind {
                    GraphqlOperationType::Query => OperationKind::Query,
                    GraphqlOperationType::Mutation => OperationKind::Mutation,
                    GraphqlOperationType::Subscription => OperationKind::Subscription,
                },
                name: rule.name.clone(),
                pool: Arc::clone(pool),
            });
        }
        let persisted = spec.persisted_queries.as_ref().map(|hashes| {
            hashes
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect::<HashSet<_>>()
        });
        GraphqlRoute {
            limits: Limits {
                max_depth: spec.max_depth,
                max_aliases: spec.max_aliases,
                max_root_fields: spec.max_root_fields,
                max_complexity: spec.max_complexity,
                max_batch: spec.max_batch,
                introspection: spec.introspection,
                persisted_queries: persisted,
            },
            body_cap: spec.max_body_bytes.map_or(MAX_GRAPHQL_BODY, |Size(s)| s),
            rules,
        }
    }

    /// The pool of the first rule every operation of the request matches.
    /// A batch that mixes kinds, and a persisted query sent by hash alone
    /// (whose kind is unknown), match no typed rule and take the route's own
    /// upstream.
    fn pool_for<'a>(
        &self,
        ops: impl Iterator<Item = (Option<OperationKind>, Option<&'a str>)> + Clone,
    ) -> Option<Arc<Pool>> {
        self.rules
            .iter()
            .find(|rule| {
                ops.clone().all(|(kind, name)| {
                    kind == Some(rule.kind)
                        && rule
                            .name
                            .as_deref()
                            .is_none_or(|wanted| name == Some(wanted))
                })
            })
            .map(|rule| Arc::clone(&rule.pool))
    }
}

/// The GraphQL step of `request_filter`: on a GraphQL route, reads and judges
/// the request and picks its pool. A refusal is left in `ctx.graphql_answer`
/// and returned as [`Failure::Graphql`]; it never reaches an upstream.
pub async fn admit(session: &mut Session, ctx: &mut RequestCtx) -> Result<(), Failure> {
    let snapshot = Arc::clone(&ctx.snapshot);
    let Some(route) = ctx.route.and_then(|i| snapshot.graphql.get(i)?.as_ref()) else {
        return Ok(());
    };
    let req = session.req_header();
    let modern = wants_graphql_response_json(req);
    if is_websocket_upgrade(req) {
        // Subscriptions travel over WebSocket; the operations are inside the
        // stream, so the upgrade itself picks the subscription pool.
        if let Err(rejection) = check_upgrade(req.uri.query().unwrap_or("")) {
            return Err(refuse(ctx, &rejection, modern));
        }
        let upgrade = [(Some(OperationKind::Subscription), None)];
        ctx.pool_override = route.pool_for(upgrade.into_iter());
        return Ok(());
    }
    match judge(session, ctx, route).await? {
        Ok(ops) => {
            let kinds = ops.iter().map(|op| (op.kind(), op.name()));
            ctx.pool_override = route.pool_for(kinds);
            Ok(())
        }
        Err(rejection) => Err(refuse(ctx, &rejection, modern)),
    }
}

/// Keeps the GraphQL error response for the refusal and names it for the log.
fn refuse(ctx: &mut RequestCtx, rejection: &Rejection, modern: bool) -> Failure {
    let status = rejection.status(modern);
    ctx.graphql_answer = Some(GraphqlAnswer {
        status,
        content_type: content_type(modern),
        body: error_body(&rejection.message, rejection.code, &ctx.request_id),
    });
    Failure::Graphql {
        status,
        code: rejection.code,
    }
}

/// The GraphQL error response for a failure of another step (or of the
/// upstream) on a GraphQL route; `None` elsewhere. Such failures deny the
/// request before or outside GraphQL execution, so they keep their HTTP
/// status whatever the client accepts, as the GraphQL-over-HTTP spec asks.
pub fn answer_for(session: &Session, ctx: &RequestCtx, failure: Failure) -> Option<GraphqlAnswer> {
    ctx.route
        .and_then(|i| ctx.snapshot.graphql.get(i)?.as_ref())?;
    let modern = wants_graphql_response_json(session.req_header());
    let code = failure.code().to_ascii_uppercase();
    Some(GraphqlAnswer {
        status: failure.status(),
        content_type: content_type(modern),
        body: error_body(failure.message(), &code, &ctx.request_id),
    })
}

/// A GraphQL error response: one error, its code and the request id in
/// `extensions`, and no `data` (nothing was executed).
fn error_body(message: &str, code: &str, request_id: &str) -> String {
    serde_json::json!({
        "errors": [{
            "message": message,
            "extensions": { "code": code, "request_id": request_id },
        }]
    })
    .to_string()
}

fn content_type(modern: bool) -> &'static str {
    if modern {
        "application/graphql-response+json; charset=utf-8"
    } else {
        "application/json; charset=utf-8"
    }
}

fn wants_graphql_response_json(req: &pingora::http::RequestHeader) -> bool {
    req.headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(accepts_graphql_response_json)
}

/// Takes the GraphQL request out of the HTTP one and judges it.
async fn judge(
    session: &mut Session,
    ctx: &RequestCtx,
    route: &GraphqlRoute,
) -> Result<Result<Vec<Inspected>, Rejection>, Failure> {
    let method = session.req_header().method.clone();
    let query_string = session.req_header().uri.query().map(str::to_owned);
    let get = matches!(method, http::Method::GET | http::Method::HEAD);
    let extracted = if get {
        extract(Transport::Get {
            query_string: query_string.as_deref().unwrap_or(""),
        })
    } else if method == http::Method::POST {
        let body = match read_body(session, ctx, route).await? {
            Ok(body) => body,
            Err(rejection) => return Ok(Err(rejection)),
        };
        let content_type = session
            .req_header()
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        extract(Transport::Post {
            content_type,
            query_string: query_string.as_deref(),
            body: &body,
        })
    } else {
        Err(Rejection::new(
            RejectKind::MethodNotAllowed,
            "METHOD_NOT_ALLOWED",
            "GraphQL is served over GET and POST",
        ))
    };
    Ok(extracted.and_then(|extracted| inspect(&route.limits, &extracted, get)))
}

/// Reads the whole body into Pingora's retry buffer, which forwards it, and
/// returns it. Over the cap (the route's GraphQL cap, or its
/// `max_body_bytes` when smaller) is a 413, declared or not.
async fn read_body(
    session: &mut Session,
    ctx: &RequestCtx,
    route: &GraphqlRoute,
) -> Result<Result<Bytes, Rejection>, Failure> {
    let limits = &ctx.snapshot.policies.for_route(ctx.route).limits;
    let cap = limits
        .max_body_bytes
        .map_or(route.body_cap, |own| own.min(route.body_cap));
    let too_large = || {
        Rejection::new(
            RejectKind::TooLarge,
            "BODY_TOO_LARGE",
            format!("a GraphQL request body may hold at most {cap} bytes"),
        )
    };
    let req = session.req_header();
    if declared_length(req).is_some_and(|length| length > cap) {
        return Ok(Err(too_large()));
    }
    // Compressed bytes would be analysed as what they are not.
    if req
        .headers
        .get(http::header::CONTENT_ENCODING)
        .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"))
    {
        return Ok(Err(Rejection::new(
            RejectKind::UnsupportedMediaType,
            "UNSUPPORTED_MEDIA_TYPE",
            "compressed GraphQL request bodies are not accepted",
        )));
    }
    let timeout = ctx
        .pool()
        .map_or(BODY_READ_TIMEOUT, |pool| pool.timeouts.read);
    session.as_mut().enable_retry_buffering();
    let read = async {
        // Threat protection may have read the body already; then the loop
        // ends at once and the retry buffer holds it all.
        while let Some(_chunk) = session
            .read_request_body()
            .await
            .map_err(|e| Failure::from_error(&e).unwrap_or(Failure::ClientTimeout))?
        {
            if session.body_bytes_read() as u64 > cap {
                return Ok(false);
            }
        }
        Ok(session.body_bytes_read() as u64 <= cap)
    };
    let within = tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| Failure::ClientTimeout)??;
    if !within {
        return Ok(Err(too_large()));
    }
    // `None` for an empty body, and for one past the buffer, which the cap
    // (at most the buffer's size) has already refused.
    if session.as_ref().retry_buffer_truncated() {
        return Ok(Err(too_large()));
    }
    Ok(Ok(session.as_ref().get_retry_buffer().unwrap_or_default()))
}

/// A GET that the WebSocket step will serve; any other method goes through
/// [`judge`] and is refused there or at the handshake check.
fn is_websocket_upgrade(req: &pingora::http::RequestHeader) -> bool {
    req.method == http::Method::GET && super::websocket::is_upgrade(req)
}

/// Refuses a WebSocket upgrade whose query string carries GraphQL
/// parameters: the upgrade is not analysed, and an upstream that ignored
/// `Upgrade` would run such a GET past every limit of the route.
fn check_upgrade(query_string: &str) -> Result<(), Rejection> {
    let extracted = extract(Transport::Get { query_string })?;
    let carries_graphql = extracted.requests.iter().any(|r| {
        r.query.is_some()
            || r.operation_name.is_some()
            || r.variables.is_some()
            || r.persisted_hash.is_some()
    });
    if carries_graphql {
        return Err(Rejection::new(
            RejectKind::Malformed,
            "BAD_REQUEST",
            "a WebSocket upgrade carries its operations in the stream, not in the query string",
        ));
    }
    Ok(())
}
