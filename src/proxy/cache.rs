//! The response cache in the request pipeline: which requests use it, their
//! key, `PURGE` requests, `X-Cache-Status`, and invalidation by unsafe
//! methods. The rules themselves live in [`crate::cache`].

use pingora::cache::key::HashBinary;
use pingora::cache::{CacheKey, CacheMeta, CachePhase, RespCacheable};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::Session;
use pingora::{Error, ErrorType, Result};

use super::ctx::RequestCtx;
use crate::cache::key::{self, KeyInput};
use crate::cache::{self as rules, purge};
use crate::config::schema::RouteCacheSpec;
use crate::observe::metrics::metrics;

/// The route's cache settings, when it caches.
fn spec(ctx: &RequestCtx) -> Option<&RouteCacheSpec> {
    let route = ctx.route?;
    ctx.snapshot
        .config
        .routes
        .get(route)?
        .cache
        .as_ref()
        .filter(|c| c.enabled)
}

/// Works out the request's key on a caching route; turns the cache on for
/// GET and HEAD.
pub fn request(session: &mut Session, ctx: &mut RequestCtx) {
    let Some(spec) = spec(ctx) else {
        return;
    };
    let input = key_input(session, ctx);
    let url = key::url(&input, &spec.key.ignore_query);
    let primary = key::primary(&input, spec);
    let max_object = spec.max_object_size.0;
    ctx.cache = Some(super::ctx::CacheCtx {
        url,
        primary,
        not_modified: None,
        withheld: Vec::new(),
    });
    if rules::request_cacheable(session.req_header()) {
        rules::enable(&mut session.cache, max_object);
    }
}

fn key_input<'a>(session: &'a Session, ctx: &'a RequestCtx) -> KeyInput<'a> {
    let req = session.req_header();
    let https = session.digest().is_some_and(|d| d.ssl_digest.is_some());
    // The port the client named, else the one it connected to.
    let named_port = req
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.rsplit_once(':'))
        .filter(|(host, _)| !host.ends_with(']') || host.starts_with('['))
        .and_then(|(_, port)| port.parse::<u16>().ok());
    let local_port = session
        .server_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.port());
    KeyInput {
        https,
        host: &ctx.host,
        port: named_port
            .or(local_port)
            .unwrap_or(if https { 443 } else { 80 }),
        path: &ctx.path,
        query: req.uri.query(),
        headers: &req.headers,
        consumer: ctx.identity.as_ref().map(|i| i.consumer.id.as_str()),
    }
}

/// The key Pingora looks up and stores under.
pub fn cache_key(ctx: &RequestCtx) -> Result<CacheKey> {
    match &ctx.cache {
        Some(c) => Ok(CacheKey::new(c.primary.as_bytes(), "")),
        None => Error::e_explain(ErrorType::InternalError, "cache key asked without a route"),
    }
}

pub fn response_cacheable(
    session: &Session,
    resp: &ResponseHeader,
    ctx: &mut RequestCtx,
) -> RespCacheable {
    let Some(spec) = spec(ctx) else {
        return RespCacheable::Uncacheable(pingora::cache::NoCacheReason::NeverEnabled);
    };
    if let Some(not_modified) = ctx.cache.as_ref().and_then(|c| c.not_modified.as_deref()) {
        let merged = rules::merge_not_modified(resp, not_modified);
        return rules::response_cacheable(spec, session.req_header(), &merged);
    }
    let verdict = rules::response_cacheable(spec, session.req_header(), resp);
    // What the stored copy leaves out (`private="..."`, `no-cache="..."`)
    // still goes to this client, whose answer Pingora serves from the store.
    if let RespCacheable::Cacheable(meta) = &verdict {
        let stored = meta.headers();
        let withheld: Vec<_> = (resp.headers.iter())
            .filter(|(name, _)| !stored.contains_key(*name))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        if let Some(cache) = ctx.cache.as_mut() {
            cache.withheld = withheld;
        }
    }
    verdict
}

/// Keeps the fields of an upstream 304 that revalidates a stored response,
/// for [`response_cacheable`] to merge.
pub fn upstream_response(session: &Session, upstream: &ResponseHeader, ctx: &mut RequestCtx) {
    if upstream.status != http::StatusCode::NOT_MODIFIED
        || session.cache.phase() != CachePhase::Stale
    {
        return;
    }
    if let Some(cache) = ctx.cache.as_mut() {
        cache.not_modified = Some(Box::new(upstream.headers.clone()));
    }
}

pub fn variance(meta: &CacheMeta, req: &RequestHeader) -> Option<HashBinary> {
    rules::variance(meta, req)
}

/// `Ok(true)` when this was a `PURGE` the route answers itself: from an
/// allowed address it is carried out and answered 200 with the count,
/// from another it is refused with 403. A route without `purge_from`
/// proxies `PURGE` like any method.
pub async fn purge_request(session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
    if session.req_header().method.as_str() != "PURGE" {
        return Ok(false);
    }
    let Some(spec) = spec(ctx).filter(|s| !s.purge_from.is_empty()) else {
        return Ok(false);
    };
    let allowed = ctx
        .client_ip
        .is_some_and(|ip| spec.purge_from.iter().any(|net| net.contains(&ip)));
    let input = key_input(session, ctx);
    let url = key::url(&input, &spec.key.ignore_query);
    let (status, body) = if allowed {
        let purged = purge::purge_url(&url);
        (200, format!("{{\"purged\":{purged}}}"))
    } else {
        (403, r#"{"error":"purge_forbidden"}"#.to_string())
    };
    let mut header = ResponseHeader::build(status, Some(3))?;
    header.insert_header(http::header::CONTENT_TYPE, "application/json")?;
    header.insert_header(http::header::CONTENT_LENGTH, body.len())?;
    header.insert_header("x-request-id", &ctx.request_id)?;
    session
        .write_response_header(Box::new(header), false)
        .await?;
    session.write_response_body(Some(body.into()), true).await?;
    Ok(true)
}

/// `X-Cache-Status` on a caching route's responses, the hit and miss
/// counters, and invalidation after a successful unsafe request
/// (RFC 9111 section 4.4).
pub fn response(session: &Session, response: &mut ResponseHeader, ctx: &RequestCtx) -> Result<()> {
    let Some(cache) = &ctx.cache else {
        return Ok(());
    };
    let method = &session.req_header().method;
    if rules::request_cacheable(session.req_header()) {
        let phase = session.cache.phase();
        let status = rules::status(phase);
        metrics().cache_lookups.with_label_values(&[status]).inc();
        response.insert_header("x-cache-status", status)?;
        // This client's answer came from the upstream; fields it already
        // carries did not go through the store and were never taken out.
        if matches!(phase, CachePhase::Miss | CachePhase::Expired) {
            let absent: Vec<_> = (cache.withheld.iter())
                .filter(|(name, _)| !response.headers.contains_key(name))
                .collect();
            for (name, value) in absent {
                response.append_header(name.clone(), value.clone())?;
            }
        }
    } else if !method.is_safe() && response.status.as_u16() < 400 {
        purge::purge_url(&cache.url);
    }
    Ok(())
}
