//! The Pingora `ProxyHttp` implementation: each hook is a short list of named
//! pipeline steps.
//!
//! Order for one request: `early_request_filter` (connection settings) →
//! `request_filter` (request id, client address, path normalisation, route
//! match, authentication and authorisation, GraphQL analysis and operation
//! routing; a rejection is answered here and never reaches an upstream) →
//! `upstream_peer` (backend choice, once per try) → `upstream_request_filter`
//! (forwarding headers, identity headers, rewritten path, host, the route's
//! header, query and body transformation) → `upstream_response_filter`
//! (passive health) → `response_filter` (the route's response
//! transformation, then the compression decision carried out by the
//! downstream module of [`compression`]) → `logging` (access log, metrics).
//! Failures from any step end in [`error::respond`].

mod cache;
pub mod compression;
pub mod ctx;
pub mod error;
pub mod graphql;
pub mod grpc;
pub mod handover;
pub mod headers;
mod protect;
pub mod transform;
pub mod websocket;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use pingora::cache::key::HashBinary;
use pingora::cache::{CacheKey, CacheMeta, RespCacheable};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::modules::http::HttpModules;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;

use crate::limit::traffic::Inputs;
use crate::tls::ClientCert;
use pingora::{Error, ErrorSource, ErrorType, Result};
use tracing::{error, warn};

use crate::auth;
use crate::gateway::SharedSnapshot;
use crate::observe::access_log::{self, AccessRecord};
use crate::observe::metrics::metrics;
use crate::router::{normalize_host, normalize_path, RequestView};
use crate::upstream::Outcome;
use ctx::RequestCtx;
use error::Failure;

/// The gateway's proxy logic; one instance serves every listener.
pub struct Gateway {
    snapshot: SharedSnapshot,
}

impl Gateway {
    pub fn new(snapshot: SharedSnapshot) -> Gateway {
        Gateway { snapshot }
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new(self.snapshot.load_full())
    }

    /// Portico's compression module in place of Pingora's default one,
    /// switched off until [`compression::on_response`] turns it on for one
    /// answer.
    fn init_downstream_modules(&self, modules: &mut HttpModules) {
        modules.add_module(Box::new(compression::CompressorBuilder));
    }

    async fn early_request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        // Keep-alive is already off when the client asked to close, spoke
        // HTTP/1.0 without keep-alive, or the process is shutting down; only
        // the idle timeout of a connection that stays open is Portico's to set.
        if session.get_keepalive().is_some() {
            let server = &ctx.snapshot.config.server;
            session.set_keepalive(Some(server.downstream_keepalive_timeout.0.as_secs()));
        }
        Ok(())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        identify(session, ctx);
        let failure = match admit(session, ctx).await {
            // Pingora's own upgrade proxying is never used for WebSocket.
            Ok(false) if websocket::is_upgrade(session.req_header()) => {
                match websocket::serve(session, ctx).await {
                    Ok(()) => return Ok(true),
                    Err(failure) => failure,
                }
            }
            Ok(false) => return cache::purge_request(session, ctx).await,
            Ok(answered) => return Ok(answered),
            Err(failure) => failure,
        };
        ctx.failure = Some(failure);
        // A refused preflight says nothing a browser could take as consent.
        let mut extra = match failure {
            Failure::CorsDenied => Vec::new(),
            _ => protect::cors_headers(session, ctx),
        };
        extra.extend(
            challenges(ctx, failure)
                .iter()
                .map(|c| (http::header::WWW_AUTHENTICATE, c.clone())),
        );
        extra.extend(hsts_field(ctx));
        extra.extend(rate_fields(ctx, Some(failure)));
        extra.extend(websocket::refusal_fields(failure));
        let graphql = ctx.graphql_answer.take();
        match graphql.or_else(|| graphql::answer_for(session, ctx, failure)) {
            Some(answer) => error::respond_graphql(session, answer, &ctx.request_id, &extra).await,
            None => error::respond_with(session, failure, &ctx.request_id, &extra).await,
        }
        Ok(true)
    }

    fn request_cache_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<()> {
        cache::request(session, ctx);
        Ok(())
    }

    fn cache_key_callback(&self, _session: &Session, ctx: &mut RequestCtx) -> Result<CacheKey> {
        cache::cache_key(ctx)
    }

    fn response_cache_filter(
        &self,
        session: &Session,
        resp: &ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<RespCacheable> {
        Ok(cache::response_cacheable(session, resp, ctx))
    }

    fn cache_vary_filter(
        &self,
        meta: &CacheMeta,
        _ctx: &mut RequestCtx,
        req: &RequestHeader,
    ) -> Option<HashBinary> {
        cache::variance(meta, req)
    }

    fn should_serve_stale(
        &self,
        _session: &mut Session,
        _ctx: &mut RequestCtx,
        error: Option<&Error>,
    ) -> bool {
        crate::cache::serve_stale(error)
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        if ctx.grpc.as_ref().is_some_and(|c| c.deadline_spent()) {
            ctx.failure = Some(Failure::UpstreamTimeout);
            return Error::e_explain(ErrorType::HTTPStatus(504), "grpc-timeout already spent");
        }
        let mut peer = select_backend(session, ctx)?;
        if let Some(call) = &ctx.grpc {
            call.bound(&mut peer);
        }
        Ok(peer)
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        let Some((pool, idx)) = ctx.pool().cloned().zip(ctx.backend) else {
            return e;
        };
        let backend = &pool.backends()[idx];
        pool.report(idx, Outcome::ConnectFailure);
        metrics()
            .connect_failures
            .with_label_values(&[&*pool.name, &backend.label])
            .inc();
        warn!(
            request_id = %ctx.request_id, upstream = %pool.name, backend = %backend.label,
            error = e.etype().as_str(), "upstream connect failed"
        );
        ctx.inflight = None;
        ctx.failure = Failure::from_error(&e);
        // A connection that was never made carried nothing: any request may go
        // to another backend.
        e.set_retry(ctx.tried.len() <= pool.retries);
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        _client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("backend {peer}"));
        if matches!(
            ctx.failure,
            Some(Failure::BodyTooLarge | Failure::BadRequest(_))
        ) {
            // The body passed the route's cap mid-stream, or was not what it
            // claimed to be: the client's fault, answered with its own cause
            // (413, or 400 and its message), and never replayed.
            e.set_retry(false);
            return e;
        }
        // The upstream's read timer restarts with every piece of body passed
        // on, so a read timeout before the client's body is complete means the
        // client stopped sending and the backend was waiting for it: a slow
        // client, not a slow backend, and no reason to eject it.
        let client_stalled = *e.etype() == ErrorType::ReadTimedout
            && *e.esource() == ErrorSource::Upstream
            && !session.as_mut().is_body_done();
        // Likewise a timeout that only the client's short `grpc-timeout`
        // caused says nothing about the backend.
        let deadline_spent = ctx.grpc.as_ref().is_some_and(|c| c.deadline_spent());
        let upstream_fault =
            *e.esource() == ErrorSource::Upstream && !client_stalled && !deadline_spent;
        if let (true, Some(pool), Some(idx)) = (upstream_fault, ctx.pool(), ctx.backend) {
            pool.report(idx, Outcome::ServerError);
        }
        ctx.failure = if client_stalled {
            Some(Failure::ClientTimeout)
        } else {
            Failure::from_error(&e)
        };
        let retries_left = ctx.pool().is_some_and(|p| ctx.tried.len() <= p.retries);
        let replayable = session.req_header().method.is_idempotent()
            && !session.as_ref().retry_buffer_truncated();
        let timed_out = matches!(
            e.etype(),
            ErrorType::ReadTimedout | ErrorType::WriteTimedout
        );
        if !(upstream_fault && replayable && retries_left) || timed_out {
            // Never replay a request that may have had effects, nor one whose
            // timeout already spent the route's budget.
            e.set_retry(false);
        } else {
            // A reset or an early close on an idempotent, replayable request,
            // on a fresh connection or a pooled one: try another backend. The
            // verdict is set outright because Pingora marks some of these
            // errors `ReusedOnly`, whose `retry()` panics until decided.
            e.set_retry(true);
        }
        e
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(call) = ctx.grpc.as_mut() {
            if let Err(failure) = grpc::request_body(call, body, end_of_stream) {
                ctx.failure = Some(failure);
                return Error::e_explain(ErrorType::Custom("bad_grpc_web_body"), failure.message())
                    .map_err(|e| e.into_down());
            }
        }
        if let Some(chunk) = body.as_ref() {
            ctx.body_seen += chunk.len() as u64;
            let limits = &ctx.snapshot.policies.for_route(ctx.route).limits;
            if !limits.body_within(ctx.body_seen) {
                // Refused before this chunk is passed on: the upstream gets
                // no byte over the cap.
                ctx.failure = Some(Failure::BodyTooLarge);
                return Error::e_explain(
                    ErrorType::Custom("body_too_large"),
                    "request body passed the route's max_body_bytes",
                )
                .map_err(|e| e.into_down());
            }
        }
        transform::request_body(body, end_of_stream, ctx)?;
        // An empty final chunk from an HTTP/2 client would make Pingora write a
        // second chunked terminator to an HTTP/1.1 upstream and poison the
        // pooled connection; ending the body with `None` avoids it.
        if end_of_stream && body.as_ref().is_some_and(|b| b.is_empty()) {
            *body = None;
        }
        Ok(())
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.upstream_sent = Some(std::time::Instant::now());
        prepare_upstream_request(session, upstream, ctx)?;
        transform::upstream_request(session.req_header(), upstream, ctx)?;
        if let Some(call) = &ctx.grpc {
            grpc::prepare_upstream_request(upstream, call)?;
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.upstream_latency = ctx.upstream_sent.map(|t| t.elapsed());
        // The pool's answer is known now: the circuit hears of it before the
        // client does, so the client's next request meets the new state.
        if let Some(attempt) = ctx.circuit.take() {
            if upstream.status.is_server_error() {
                attempt.failed();
            } else {
                attempt.succeeded();
            }
        }
        if let (Some(pool), Some(idx)) = (ctx.pool(), ctx.backend) {
            let outcome = if upstream.status.is_server_error() {
                Outcome::ServerError
            } else {
                Outcome::Success
            };
            pool.report(idx, outcome);
        }
        // Read the tokens before `Connection` itself goes.
        let named = headers::connection_tokens(&upstream.headers);
        let upgraded = upstream.status == 101;
        for name in &headers::HOP_BY_HOP {
            if *name != http::header::CONNECTION || !upgraded {
                upstream.remove_header(name);
            }
        }
        for name in named {
            upstream.remove_header(&name);
        }
        cache::upstream_response(session, upstream, ctx);
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        response.insert_header("x-request-id", &ctx.request_id)?;
        cache::response(session, response, ctx)?;
        if let Some(call) = &ctx.grpc {
            grpc::response_header(call, response)?;
        }
        if let Some(hsts) = &ctx.hsts {
            response.insert_header(http::header::STRICT_TRANSPORT_SECURITY, hsts.clone())?;
        }
        if ctx.rate.is_some() {
            for (name, value) in rate_fields(ctx, None) {
                response.insert_header(name, value)?;
            }
        }
        for (name, value) in protect::cors_headers(session, ctx) {
            if name == http::header::VARY {
                response.append_header(name, value)?;
            } else {
                response.insert_header(name, value)?;
            }
        }
        transform::response(session, response, ctx)?;
        compression::on_response(session, ctx, response)?;
        close_when_stopping(session);
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Duration>> {
        if let Some(call) = ctx.grpc.as_mut() {
            grpc::response_body(call, body, end_of_stream);
        }
        transform::response_body(body, end_of_stream, ctx)?;
        Ok(None)
    }

    /// Bytes returned here are written to the client's body in place of
    /// the trailers (Pingora does so on the HTTP/2 upstream path), which is
    /// how gRPC-Web carries them.
    async fn response_trailer_filter(
        &self,
        _session: &mut Session,
        trailers: &mut http::HeaderMap,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Bytes>> {
        Ok(ctx
            .grpc
            .as_mut()
            .and_then(|call| grpc::response_trailers(call, trailers)))
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &RequestCtx, _e: &Error) -> bool {
        // Portico logs failures itself, with the request id, in `fail_to_proxy`.
        true
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let failure = ctx.failure.or_else(|| Failure::from_error(e));
        ctx.failure = failure;
        let Some(failure) = failure else {
            return FailToProxy {
                error_code: 0,
                can_reuse_downstream: false,
            };
        };
        // A call whose own `grpc-timeout` ran out is the client's choice.
        let client_deadline = ctx.grpc.as_ref().is_some_and(|c| c.deadline_spent());
        if failure.status() >= 500 && !client_deadline {
            error!(
                request_id = %ctx.request_id, route = ctx.route_id(), error = %e,
                "request failed"
            );
        }
        if ctx.request_id.is_empty() {
            ctx.request_id = headers::request_id(&session.req_header().headers);
        }
        // The connection is closed after this answer; saying so keeps a client
        // from sending its next request on it while it closes.
        session.set_keepalive(None);
        let mut extra = hsts_field(ctx);
        extra.extend(rate_fields(ctx, Some(failure)));
        match graphql::answer_for(session, ctx, failure) {
            Some(answer) => error::respond_graphql(session, answer, &ctx.request_id, &extra).await,
            None => error::respond_with(session, failure, &ctx.request_id, &extra).await,
        }
        FailToProxy {
            error_code: failure.status(),
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        // Still held only when no response header came from the pool (the
        // upstream response filter reports those): a failure when the pool
        // was tried and did not answer.
        if let Some(attempt) = ctx.circuit.take() {
            let upstream_failed = (matches!(
                ctx.failure,
                Some(Failure::UpstreamFailed | Failure::UpstreamTimeout)
            ) || (e.is_some() && ctx.backend.is_some()))
                && !ctx.grpc.as_ref().is_some_and(|c| c.deadline_spent());
            if upstream_failed {
                attempt.failed();
            } else {
                attempt.succeeded();
            }
        }
        record(session, ctx);
        ctx.inflight = None;
        ctx.slots = None;
    }
}

/// Turns keep-alive off for this answer once the process is handing over to
/// a successor or shutting down.
///
/// Pingora decides keep-alive when a request starts and closes every idle
/// connection when shutdown begins, so a request that was already running
/// would be answered `Connection: keep-alive` on a connection about to close,
/// and the client's next request on it would meet a reset.
fn close_when_stopping(session: &mut Session) {
    if handover::is_handing_over() || session.is_process_shutting_down() {
        session.set_keepalive(None);
    }
}

/// Request id, client address and host.
fn identify(session: &Session, ctx: &mut RequestCtx) {
    let req = session.req_header();
    ctx.request_id = headers::request_id(&req.headers);
    ctx.grpc = grpc::classify(req);
    ctx.peer_ip = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip());
    ctx.client_ip = ctx
        .peer_ip
        .map(|peer| headers::client_ip(peer, &req.headers, |ip| ctx.snapshot.is_trusted_proxy(ip)));
    let raw_host = req
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri.authority().map(|a| a.as_str()))
        .unwrap_or("");
    ctx.host = normalize_host(raw_host).into_owned();
    let local = session.server_addr().and_then(|a| a.as_inet()).copied();
    if let Some(listener) = ctx.snapshot.listeners.with_rules(local) {
        ctx.redirect_port = listener.redirect_port;
        // Only over TLS: a cleartext answer carrying it is ignored by
        // browsers and would only mislead (RFC 6797 section 7.2).
        if session.digest().is_some_and(|d| d.ssl_digest.is_some()) {
            ctx.hsts = listener.tls.as_ref().and_then(|t| t.hsts.clone());
        }
    }
}

/// Refuses a request whose host cannot be routed on: an HTTP/1.1 request
/// without `Host` (RFC 9112 section 3.2 asks for a 400), or a `Host` that is not
/// a valid authority (a port that is not a number, spaces, bytes outside
/// ASCII). Either would be routed as one host and reach the upstream as
/// another, or as none. An empty `Host` is valid. Pingora has already refused
/// a repeated `Host` and one that disagrees with an absolute-form target.
fn check_host(req: &RequestHeader) -> Result<(), Failure> {
    match req.headers.get(http::header::HOST) {
        None if req.version == http::Version::HTTP_11 => {
            Err(Failure::BadRequest("missing Host header"))
        }
        Some(host) if !host.is_empty() && !valid_authority(host.as_bytes()) => {
            Err(Failure::BadRequest("malformed Host header"))
        }
        _ => Ok(()),
    }
}

/// `host[:port]` with a port of digits only, which `Authority` does not check.
fn valid_authority(text: &[u8]) -> bool {
    let Ok(authority) = http::uri::Authority::try_from(text) else {
        return false;
    };
    match authority.as_str().strip_prefix(authority.host()) {
        Some("") => true,
        Some(port) => port
            .strip_prefix(':')
            .is_some_and(|digits| digits.bytes().all(|b| b.is_ascii_digit())),
        // Userinfo before the host.
        None => false,
    }
}

/// Normalises the path once; the request header is rewritten so every later
/// step, and the upstream, see only the normalised form.
fn normalise(session: &mut Session, ctx: &mut RequestCtx) -> Result<(), Failure> {
    let verbatim = verbatim_target(session.req_header())?;
    let uri = &session.req_header().uri;
    let raw = uri.path();
    let path = normalize_path(raw).map_err(|_| Failure::BadRequest("malformed request path"))?;
    ctx.path = path.into_owned();
    if ctx.path != raw || verbatim {
        let pq = match uri.query() {
            Some(q) => format!("{}?{q}", ctx.path),
            None => ctx.path.clone(),
        };
        let new_uri = http::Uri::builder()
            .path_and_query(pq)
            .build()
            .map_err(|_| Failure::BadRequest("malformed request path"))?;
        session.req_header_mut().set_uri(new_uri);
    }
    Ok(())
}

/// Whether Pingora holds the request target verbatim. It does for every target
/// not in origin form, gives the URI only that target's path (or `/`), and
/// sends the verbatim bytes upstream unless the URI is replaced. An
/// absolute-form `http://authority/path` (whose authority Pingora has checked
/// against `Host`) is accepted, and `true` makes it go upstream in origin form.
/// Any other form (`foo`, `host:80`, bytes that are not UTF-8) would be routed
/// as one path and forwarded as another, so it is refused. So is a target the
/// URI does hold but that is not origin form: a query alone (`?x`, whose empty
/// path the URI reads as `/`) and `*`.
fn verbatim_target(req: &RequestHeader) -> Result<bool, Failure> {
    let from_uri = req.uri.path_and_query().map_or("", |pq| pq.as_str());
    let target = req.raw_path();
    if target == from_uri.as_bytes() && target.starts_with(b"/") {
        return Ok(false);
    }
    let absolute = http::Uri::try_from(target).is_ok_and(|uri| {
        uri.authority().is_some() && matches!(uri.scheme_str(), Some("http" | "https"))
    });
    if absolute {
        Ok(true)
    } else {
        Err(Failure::BadRequest("malformed request target"))
    }
}

/// Finds the route and works out the path to send upstream.
fn route(session: &Session, ctx: &mut RequestCtx) -> Result<(), Failure> {
    let req = session.req_header();
    let view = RequestView {
        host: &ctx.host,
        path: &ctx.path,
        method: &req.method,
        headers: &req.headers,
        query: req.uri.query(),
    };
    // A CORS preflight is an OPTIONS request for a method the route may not
    // list; when nothing matches OPTIONS itself, the method it asks about
    // finds the route whose CORS answers it.
    let route = ctx
        .snapshot
        .router
        .find(&view)
        .or_else(|| {
            let asked = preflight_method(req)?;
            ctx.snapshot.router.find(&RequestView {
                method: &asked,
                ..view
            })
        })
        .ok_or(Failure::NoRoute)?;
    let forward = route.forward_path(&ctx.path);
    if forward != ctx.path {
        ctx.upstream_uri = Some(match req.uri.query() {
            Some(q) => format!("{forward}?{q}"),
            None => forward.into_owned(),
        });
    }
    ctx.route = Some(route.index);
    Ok(())
}

/// The request-side pipeline up to authentication: `Ok(true)` when Portico
/// answered the request itself (a CORS preflight), `Ok(false)` to go on to
/// the upstream. Protection runs with the route when one matched and with the
/// file's policies when none did, so an unrouted request is still screened
/// before its 404.
async fn admit(session: &mut Session, ctx: &mut RequestCtx) -> Result<bool, Failure> {
    check_host(session.req_header())?;
    grpc::check_version(session.req_header(), ctx.grpc.as_ref())?;
    if let Some(port) = ctx.redirect_port {
        redirect_to_https(session, ctx, port).await?;
        return Ok(true);
    }
    normalise(session, ctx)?;
    let routed = route(session, ctx);
    protect::screen(session, ctx).await?;
    routed?;
    if preflight_method(session.req_header()).is_some() {
        // Counted or exempt as `rate_limiting.preflight` says, before the
        // gateway answers it.
        limit_traffic(session, ctx).await?;
    }
    if protect::preflight(session, ctx).await? {
        return Ok(true);
    }
    authenticate(session, ctx).await?;
    limit_traffic(session, ctx).await?;
    graphql::admit(session, ctx).await?;
    transform::admit_body(session.req_header(), ctx)?;
    Ok(false)
}

/// Sends the client to the same host and target over HTTPS: 301 for GET and
/// HEAD, 308 for other methods so that they are repeated with their body.
async fn redirect_to_https(
    session: &mut Session,
    ctx: &mut RequestCtx,
    port: u16,
) -> Result<(), Failure> {
    let req = session.req_header();
    if ctx.host.is_empty() {
        return Err(Failure::BadRequest("missing Host header"));
    }
    // `OPTIONS *` and other targets that are not a path go to the root.
    let target = req
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .filter(|t| t.starts_with('/'))
        .unwrap_or("/");
    let location = if port == 443 {
        format!("https://{}{target}", ctx.host)
    } else {
        format!("https://{}:{port}{target}", ctx.host)
    };
    let location = http::HeaderValue::from_str(&location)
        .map_err(|_| Failure::BadRequest("request target cannot be redirected"))?;
    let status = if matches!(req.method, http::Method::GET | http::Method::HEAD) {
        301
    } else {
        308
    };
    let mut header = ResponseHeader::build(status, Some(4)).map_err(|_| Failure::Internal)?;
    let fields = [
        (http::header::LOCATION, location),
        (
            http::header::CONTENT_LENGTH,
            http::HeaderValue::from_static("0"),
        ),
        (
            http::HeaderName::from_static("x-request-id"),
            http::HeaderValue::from_str(&ctx.request_id).map_err(|_| Failure::Internal)?,
        ),
    ];
    for (name, value) in fields {
        header
            .insert_header(name, value)
            .map_err(|_| Failure::Internal)?;
    }
    ctx.failure = None;
    // A write error means the client has gone; nothing is left to answer.
    let _ = session.write_response_header(Box::new(header), true).await;
    Ok(())
}

/// Applies the route's rate limits (with the consumer's tier) and takes its
/// in-flight slots. Runs once per request: after authentication, which
/// names the consumer, or before the answer to a CORS preflight.
async fn limit_traffic(session: &Session, ctx: &mut RequestCtx) -> Result<(), Failure> {
    let Some(route) = ctx.route else {
        return Ok(());
    };
    if ctx.rate.is_some() || ctx.slots.is_some() {
        return Ok(());
    }
    let snapshot = Arc::clone(&ctx.snapshot);
    let traffic = &snapshot.traffic;
    let identity = ctx.identity.as_ref();
    if traffic.limits_route(route) {
        let req = session.req_header();
        let inputs = Inputs {
            client: ctx.client_ip,
            consumer: identity.map(|i| i.consumer.id.as_str()),
            tier: identity.and_then(|i| i.consumer.tier.as_deref()),
            route: ctx.route_id(),
            headers: &req.headers,
            claims: identity.and_then(|i| i.claims.as_ref()),
            preflight: preflight_method(req).is_some(),
        };
        let verdict = traffic.check(route, &inputs).await;
        let refused = verdict.refused_by.clone();
        let unavailable = verdict.unavailable.is_some();
        ctx.rate = Some(verdict);
        if let Some(limit) = refused {
            metrics()
                .ratelimit_rejected
                .with_label_values(&[&*limit.name])
                .inc();
            return Err(Failure::RateLimited);
        }
        if unavailable {
            return Err(Failure::RateLimitUnavailable);
        }
    }
    if traffic.caps_route(route) {
        let who = match identity {
            Some(i) => i.consumer.id.clone(),
            None => ctx.client_ip.map(|ip| ip.to_string()).unwrap_or_default(),
        };
        match traffic.acquire(route, &who).await {
            Ok(slots) => ctx.slots = Some(slots),
            Err(_) => {
                metrics()
                    .concurrency_rejected
                    .with_label_values(&[ctx.route_id()])
                    .inc();
                return Err(Failure::ConcurrencyLimited);
            }
        }
    }
    Ok(())
}

/// The rate-limit fields of a response, Portico's refusals included.
fn rate_fields(
    ctx: &RequestCtx,
    failure: Option<Failure>,
) -> Vec<(http::HeaderName, http::HeaderValue)> {
    let mut fields = match &ctx.rate {
        Some(verdict) => ctx.snapshot.traffic.response_headers(verdict),
        None => Vec::new(),
    };
    if matches!(
        failure,
        Some(Failure::RateLimitUnavailable | Failure::ConcurrencyLimited | Failure::CircuitOpen)
    ) {
        fields.push((
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static("1"),
        ));
    }
    fields
}

/// The method a CORS preflight asks about, when `req` is one.
fn preflight_method(req: &RequestHeader) -> Option<http::Method> {
    if req.method != http::Method::OPTIONS || !req.headers.contains_key(http::header::ORIGIN) {
        return None;
    }
    let asked = req
        .headers
        .get(http::header::ACCESS_CONTROL_REQUEST_METHOD)?;
    http::Method::from_bytes(asked.as_bytes()).ok()
}

/// Authenticates and authorises the request when its route asks for it;
/// a route without authentication costs this one lookup.
async fn authenticate(session: &mut Session, ctx: &mut RequestCtx) -> Result<(), Failure> {
    let Some(route) = ctx.route else {
        return Ok(());
    };
    if ctx.snapshot.auth.policy(route).is_none() {
        return Ok(());
    }
    let snapshot = Arc::clone(&ctx.snapshot);
    let Some(policy) = snapshot.auth.policy(route) else {
        return Ok(());
    };
    let req: &RequestHeader = session.req_header();
    let cert = client_cert(session);
    ctx.identity = snapshot
        .auth
        .admit(policy, req, cert)
        .await
        .map_err(Failure::Auth)?;
    if let Some(uri) = auth::forward::uri_without_key(policy, req, ctx.upstream_uri.as_deref()) {
        ctx.upstream_uri = Some(uri);
    }
    Ok(())
}

/// The HSTS field of the request's listener, for answers Portico writes.
fn hsts_field(ctx: &RequestCtx) -> Vec<(http::HeaderName, http::HeaderValue)> {
    ctx.hsts
        .iter()
        .map(|v| (http::header::STRICT_TRANSPORT_SECURITY, v.clone()))
        .collect()
}

/// The names of the client certificate a mutual-TLS listener verified for
/// this connection.
fn client_cert(session: &Session) -> Option<&ClientCert> {
    session
        .digest()?
        .ssl_digest
        .as_ref()?
        .extension
        .get::<ClientCert>()
}

/// The `WWW-Authenticate` challenges that go with an authentication refusal.
fn challenges(ctx: &RequestCtx, failure: Failure) -> &[http::HeaderValue] {
    let Failure::Auth(rejection) = failure else {
        return &[];
    };
    ctx.route
        .and_then(|route| ctx.snapshot.auth.policy(route))
        .map_or(&[][..], |policy| policy.challenges.for_rejection(rejection))
}

/// Picks the backend for this try and builds its peer.
fn select_backend(session: &Session, ctx: &mut RequestCtx) -> Result<Box<HttpPeer>> {
    let Some(pool) = ctx.pool().cloned() else {
        ctx.failure = Some(Failure::NoRoute);
        return Error::e_explain(ErrorType::HTTPStatus(404), "no route");
    };
    let client;
    let key = match pool.hash_key() {
        Some(k) => {
            client = ctx.client_ip.map(|ip| ip.to_string()).unwrap_or_default();
            k.extract(&client, &ctx.path, &session.req_header().headers)
        }
        None => b"",
    };
    let Some(idx) = pool.select(key, &ctx.tried) else {
        if ctx.tried.is_empty() || ctx.failure.is_none() {
            ctx.failure = Some(Failure::NoHealthyBackend);
        }
        return Error::e_explain(ErrorType::HTTPStatus(503), "no backend available");
    };
    if ctx.circuit.is_none() {
        if let Some(circuit) = &pool.circuit {
            match circuit.try_acquire() {
                Ok(attempt) => ctx.circuit = Some(attempt),
                Err(_) => {
                    ctx.failure = Some(Failure::CircuitOpen);
                    return Error::e_explain(ErrorType::HTTPStatus(503), "circuit open");
                }
            }
        }
    }
    ctx.tried.push(idx);
    ctx.backend = Some(idx);
    ctx.inflight = Some(pool.acquire(idx));
    Ok(Box::new(pool.peer(idx)))
}

/// Rewritten path, host, forwarding headers and request id on the upstream
/// request; hop-by-hop headers removed.
fn prepare_upstream_request(
    session: &Session,
    upstream: &mut RequestHeader,
    ctx: &RequestCtx,
) -> Result<()> {
    let incoming = &session.req_header().headers;
    for name in &headers::HOP_BY_HOP {
        upstream.remove_header(name);
    }
    for name in headers::connection_tokens(incoming) {
        upstream.remove_header(&name);
    }
    // Pingora accepts `Content-Length: 4, 4` and repeated equal lines but
    // forwards them as they came, which strict upstreams refuse.
    if let Some(length) = headers::single_content_length(&upstream.headers) {
        upstream.insert_header(http::header::CONTENT_LENGTH, length)?;
    }
    // An HTTP/2 client may send each cookie as its own field; an HTTP/1.1
    // upstream must get them as one line (RFC 9113 section 8.2.3).
    if let Some(cookies) = headers::joined_cookies(&upstream.headers) {
        upstream.insert_header(http::header::COOKIE, cookies)?;
    }
    if let Some(uri) = &ctx.upstream_uri {
        let uri = uri.parse::<http::Uri>().or_else(|e| {
            Error::e_because(
                ErrorType::InternalError,
                "rewritten path is not a valid URI",
                e,
            )
        })?;
        upstream.set_uri(uri);
    }
    let route = ctx.route.and_then(|i| ctx.snapshot.router.routes().get(i));
    if let Some(host) = route.and_then(|r| r.upstream_host.as_deref()) {
        upstream.insert_header(http::header::HOST, host)?;
    } else if upstream.headers.get(http::header::HOST).is_none() && !ctx.host.is_empty() {
        // HTTP/2 clients send :authority, HTTP/1.1 upstreams need Host.
        upstream.insert_header(http::header::HOST, &ctx.host)?;
    }
    if let Some(peer) = ctx.peer_ip {
        let trusted = ctx.snapshot.is_trusted_proxy(peer);
        upstream.insert_header(
            "x-forwarded-for",
            headers::forwarded_for(peer, trusted, incoming),
        )?;
    }
    upstream.insert_header("x-forwarded-proto", "http")?;
    // The host as the client wrote it, port included: `Host` over HTTP/1.1,
    // `:authority` over HTTP/2.
    let client_host = incoming.get(http::header::HOST).cloned().or_else(|| {
        let authority = session.req_header().uri.authority()?;
        http::HeaderValue::from_str(authority.as_str()).ok()
    });
    if let Some(host) = client_host {
        upstream.insert_header("x-forwarded-host", host)?;
    }
    upstream.insert_header("x-request-id", &ctx.request_id)?;
    let auth = &ctx.snapshot.auth;
    let policy = ctx.route.and_then(|route| auth.policy(route));
    auth::forward::apply(auth, policy, ctx.identity.as_ref(), upstream)
}

/// The access-log line and the request metrics.
fn record(session: &Session, ctx: &RequestCtx) {
    let req = session.req_header();
    let status = session
        .response_written()
        .map(|r| r.status.as_u16())
        .or(ctx.failure.map(Failure::status))
        .unwrap_or(0);
    let total = ctx.start.elapsed();
    let route = ctx.route_id();
    metrics().observe_request(route, &req.method, status, total.as_secs_f64());
    if !access_log::enabled() {
        return;
    }
    let backend = ctx
        .pool()
        .zip(ctx.backend)
        .map(|(p, i)| p.backends()[i].label.as_str())
        .unwrap_or("-");
    let mut client = String::new();
    if let Some(ip) = ctx.client_ip {
        headers::push_ip(&mut client, ip);
    }
    AccessRecord {
        request_id: &ctx.request_id,
        client: &client,
        method: req.method.as_str(),
        host: &ctx.host,
        path: if ctx.path.is_empty() {
            req.uri.path()
        } else {
            &ctx.path
        },
        route,
        backend,
        status,
        bytes_in: session.body_bytes_read(),
        bytes_out: session.body_bytes_sent(),
        upstream_ms: ctx.upstream_latency.map_or(0.0, millis),
        total_ms: millis(total),
        error: ctx.failure.map_or("", Failure::code),
        limited: ctx
            .rate
            .as_ref()
            .and_then(|v| v.refused_by.as_ref())
            .map_or("", |l| &*l.name),
    }
    .emit_for(
        ctx.identity
            .as_ref()
            .map_or("-", |i| i.consumer.id.as_str()),
    );
}

/// The proxy service name used in Pingora's logs.
pub const SERVICE_NAME: &str = "portico";

/// Milliseconds with microsecond precision, as the access log writes them.
fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}
