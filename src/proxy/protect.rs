//! The protection steps of `request_filter`, in pipeline order after the
//! route match: IP filter, size limits, threat protection, CORS preflight.
//! Each refuses with a [`Failure`] that the caller answers; none lets a
//! refused request reach an upstream.

use std::sync::Arc;
use std::time::Duration;

use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use tracing::warn;

use super::ctx::RequestCtx;
use super::error::Failure;
use crate::config::schema::{OversizeBody, ThreatMode};
use crate::policy::cors::Preflight;
use crate::policy::limits::{declared_length, Exceeded};
use crate::policy::threat::{self, BodyKind, Finding};
use crate::policy::Threat;

/// How long a body read for inspection may take when the route's pool sets
/// no read timeout to borrow.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// The IP filter, the size limits and threat protection of the request's
/// route (or the file's, when no route matched).
pub async fn screen(session: &mut Session, ctx: &mut RequestCtx) -> Result<(), Failure> {
    let snapshot = Arc::clone(&ctx.snapshot);
    let policies = snapshot.policies.for_route(ctx.route);
    if !policies.admits_ip(ctx.client_ip) {
        return Err(Failure::IpDenied);
    }
    policies
        .limits
        .check_head(session.req_header())
        .map_err(|exceeded| match exceeded {
            Exceeded::Uri => Failure::UriTooLong,
            Exceeded::Headers => Failure::HeadersTooLarge,
            Exceeded::Body => Failure::BodyTooLarge,
        })?;
    match &policies.threat {
        Some(threat) => inspect(session, ctx, threat).await,
        None => Ok(()),
    }
}

/// Runs threat protection over the target, the chosen headers and, for a
/// form or JSON body, the body, read here before any upstream is chosen.
async fn inspect(session: &mut Session, ctx: &RequestCtx, threat: &Threat) -> Result<(), Failure> {
    let req = session.req_header();
    let settings = &threat.settings;
    let mut finding = threat::inspect_target(settings, &ctx.path, req.uri.query())
        .or_else(|| threat::inspect_headers(settings, &req.headers));
    if finding.is_none() {
        finding = inspect_body(session, ctx, threat).await?;
    }
    let Some(finding) = finding else {
        return Ok(());
    };
    log_finding(ctx, &finding, threat.mode);
    match threat.mode {
        ThreatMode::Block => Err(Failure::Blocked),
        ThreatMode::Log => Ok(()),
    }
}

fn log_finding(ctx: &RequestCtx, finding: &Finding, mode: ThreatMode) {
    let location = match &finding.location {
        threat::Location::Path => "path".to_owned(),
        threat::Location::Query(name) => format!("query:{name}"),
        threat::Location::Header(name) => format!("header:{name}"),
        threat::Location::Body(field) => format!("body:{field}"),
    };
    warn!(
        request_id = %ctx.request_id, route = ctx.route_id(), check = finding.check.name(),
        location, fingerprint = finding.fingerprint.as_deref().unwrap_or("-"),
        blocked = mode == ThreatMode::Block, "threat detected"
    );
}

/// Reads a form or JSON body of at most the inspection size and inspects it.
///
/// Pingora forwards a body read before the upstream is chosen only through
/// its retry buffer, which keeps 64 KiB; the inspection size is capped at
/// that, so the whole body read here still reaches the upstream unchanged.
/// A body that may be larger, or is compressed, is refused or passed
/// uninspected, as `oversize_body` says; a body of unknown length can only be
/// inspected by reading it, so under `pass` it is passed uninspected.
async fn inspect_body(
    session: &mut Session,
    ctx: &RequestCtx,
    threat: &Threat,
) -> Result<Option<Finding>, Failure> {
    if session.as_mut().is_body_empty() {
        return Ok(None);
    }
    let req = session.req_header();
    let content_type = req
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let kind = threat::body_kind(content_type);
    if matches!(kind, BodyKind::Other) {
        return Ok(None);
    }
    let limit = threat.settings.body_limit;
    // A compressed body would be inspected as its compressed bytes, which
    // hide what it says: it is treated as one too large to inspect.
    let encoded = req
        .headers
        .get(http::header::CONTENT_ENCODING)
        .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
    let fits = match declared_length(req) {
        _ if encoded => Some(false),
        declared => declared.map(|length| length <= limit as u64),
    };
    match (fits, threat.oversize) {
        (Some(true), _) | (None, OversizeBody::Reject) => {}
        (Some(false), OversizeBody::Reject) => return Err(Failure::BodyTooLarge),
        (_, OversizeBody::Pass) => return Ok(None),
    }
    let timeout = ctx
        .pool()
        .map_or(BODY_READ_TIMEOUT, |pool| pool.timeouts.read);
    let body = tokio::time::timeout(timeout, read_body(session, limit))
        .await
        .map_err(|_| Failure::ClientTimeout)??;
    Ok(threat::inspect_body(&threat.settings, kind, &body))
}

/// Reads the whole body into Pingora's retry buffer and a copy to inspect;
/// more than `limit` bytes is a 413.
async fn read_body(session: &mut Session, limit: usize) -> Result<Vec<u8>, Failure> {
    session.as_mut().enable_retry_buffering();
    let mut body = Vec::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) if body.len() + chunk.len() > limit => {
                return Err(Failure::BodyTooLarge)
            }
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => return Ok(body),
            Err(e) => return Err(Failure::from_error(&e).unwrap_or(Failure::ClientTimeout)),
        }
    }
}

/// Answers a CORS preflight on a route with CORS: `Ok(true)` when answered.
pub async fn preflight(session: &mut Session, ctx: &RequestCtx) -> Result<bool, Failure> {
    let policies = ctx.snapshot.policies.for_route(ctx.route);
    let Some(cors) = &policies.cors else {
        return Ok(false);
    };
    let req = session.req_header();
    let headers = match cors.preflight(&req.method, &req.headers) {
        None => return Ok(false),
        Some(Preflight::Denied) => return Err(Failure::CorsDenied),
        Some(Preflight::Allowed(headers)) => headers,
    };
    let Ok(mut answer) = ResponseHeader::build(204, Some(headers.len() + 2)) else {
        return Err(Failure::Internal);
    };
    for (name, value) in headers {
        let _ = answer.append_header(name, value);
    }
    let _ = answer.insert_header("content-length", "0");
    let _ = answer.insert_header("x-request-id", &ctx.request_id);
    super::close_when_stopping(session);
    // A client that went away has nothing to be told.
    let _ = session.write_response_header(Box::new(answer), true).await;
    Ok(true)
}

/// The CORS headers for an answer to this request: for the upstream's
/// response and for Portico's own refusals alike, so that a page can read
/// why it was refused.
pub fn cors_headers(
    session: &Session,
    ctx: &RequestCtx,
) -> Vec<(http::HeaderName, http::HeaderValue)> {
    let policies = ctx.snapshot.policies.for_route(ctx.route);
    match &policies.cors {
        Some(cors) => cors.response_headers(session.req_header().headers.get(http::header::ORIGIN)),
        None => Vec::new(),
    }
}
