//! Request and response transformation: header, query and JSON body
//! changes a route asks for, compiled once at config load.
//!
//! Headers are changed after the gateway's own forwarding headers on the
//! way up and after its own fields on the way back, so a route's explicit
//! setting wins. Framing fields (`Host`, `Content-Length`,
//! `Transfer-Encoding` and the hop-by-hop ones) are not the route's to
//! change, which the config check enforces.

pub mod json;
mod template;

use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING};
use http::{HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::Session;
use pingora::{Error, ErrorType, Result};

use super::ctx::RequestCtx;
use super::error::Failure;
use crate::config::schema::{HeadersSpec, Oversize, QuerySpec, TransformSpec};
use crate::config::ConfigError;
use crate::gateway::Snapshot;
use json::{BodyBuffer, JsonRewrite, Step};
pub use template::Template;

/// A route's compiled `transform` section.
#[derive(Debug, Default)]
pub struct RouteTransform {
    pub request_headers: HeaderOps,
    pub query: QueryOps,
    pub request_json: Option<JsonRewrite>,
    pub response_headers: HeaderOps,
    pub response_json: Option<JsonRewrite>,
}

impl RouteTransform {
    /// Compiles the section at key `path`, reporting every problem.
    pub fn build(path: &str, spec: &TransformSpec) -> Result<RouteTransform, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut out = RouteTransform::default();
        if let Some(req) = &spec.request {
            let at = format!("{path}.request");
            out.request_headers =
                HeaderOps::build(&format!("{at}.headers"), &req.headers, &mut errors);
            out.query = QueryOps::build(&format!("{at}.query"), &req.query, &mut errors);
            out.request_json = req
                .json_body
                .as_ref()
                .map(|j| JsonRewrite::build(&format!("{at}.json_body"), j, &mut errors));
        }
        if let Some(resp) = &spec.response {
            let at = format!("{path}.response");
            out.response_headers =
                HeaderOps::build(&format!("{at}.headers"), &resp.headers, &mut errors);
            out.response_json = resp
                .json_body
                .as_ref()
                .map(|j| JsonRewrite::build(&format!("{at}.json_body"), j, &mut errors));
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }
}

/// Fields a route may not touch: they frame or route the message.
const RESERVED: [&str; 10] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
    "x-request-id",
];

/// Header changes in the order they apply.
#[derive(Debug, Default)]
pub struct HeaderOps {
    remove: Vec<HeaderName>,
    rename: Vec<(HeaderName, HeaderName)>,
    set: Vec<(HeaderName, Template)>,
    add: Vec<(HeaderName, Template)>,
}

fn header_name(path: String, name: &str, errors: &mut Vec<ConfigError>) -> Option<HeaderName> {
    let lower = name.trim().to_ascii_lowercase();
    if RESERVED.contains(&lower.as_str()) {
        errors.push(ConfigError::new(
            path,
            format!("{name:?} frames or identifies the message and cannot be changed"),
            "transform other fields; the gateway keeps framing and the request id right itself",
        ));
        return None;
    }
    match HeaderName::from_bytes(lower.as_bytes()) {
        Ok(h) => Some(h),
        Err(_) => {
            errors.push(ConfigError::new(
                path,
                format!("{name:?} is not a header name"),
                "use letters, digits and '-', like x-client-id",
            ));
            None
        }
    }
}

fn template(path: String, text: &str, errors: &mut Vec<ConfigError>) -> Option<Template> {
    Template::parse(text)
        .map_err(|message| {
            errors.push(ConfigError::new(
                path,
                message,
                "use ${client_ip}, ${request_id}, ${consumer}, ${route} or ${claim.NAME} \
                 (written $${...} in the file)",
            ))
        })
        .ok()
}

impl HeaderOps {
    fn build(path: &str, spec: &HeadersSpec, errors: &mut Vec<ConfigError>) -> HeaderOps {
        let mut ops = HeaderOps::default();
        for (i, name) in spec.remove.iter().enumerate() {
            ops.remove
                .extend(header_name(format!("{path}.remove[{i}]"), name, errors));
        }
        for (from, to) in &spec.rename {
            let at = format!("{path}.rename.{from}");
            let pair = (
                header_name(at.clone(), from, errors),
                header_name(at, to, errors),
            );
            if let (Some(from), Some(to)) = pair {
                ops.rename.push((from, to));
            }
        }
        for (list, entries, kind) in [
            (&mut ops.set, &spec.set, "set"),
            (&mut ops.add, &spec.add, "add"),
        ] {
            for (name, value) in entries {
                let at = format!("{path}.{kind}.{name}");
                let pair = (
                    header_name(at.clone(), name, errors),
                    template(at, value, errors),
                );
                if let (Some(name), Some(value)) = pair {
                    list.push((name, value));
                }
            }
        }
        ops
    }

    pub fn is_empty(&self) -> bool {
        self.remove.is_empty()
            && self.rename.is_empty()
            && self.set.is_empty()
            && self.add.is_empty()
    }

    /// Applies the changes to a request or response header. A template
    /// whose value cannot be a field value (a claim holding a line break)
    /// leaves that field out.
    pub fn apply<F: Fields>(&self, fields: &mut F, ctx: &RequestCtx) -> Result<()> {
        for name in &self.remove {
            fields.remove(name);
        }
        for (from, to) in &self.rename {
            let values = fields.take(from);
            for value in values {
                fields.append(to.clone(), value)?;
            }
        }
        for (name, value) in &self.set {
            fields.remove(name);
            if let Some(value) = value.render_header(ctx) {
                fields.append(name.clone(), value)?;
            }
        }
        for (name, value) in &self.add {
            if let Some(value) = value.render_header(ctx) {
                fields.append(name.clone(), value)?;
            }
        }
        Ok(())
    }
}

/// What [`HeaderOps`] needs of Pingora's request and response headers.
pub trait Fields {
    fn remove(&mut self, name: &HeaderName);
    /// Removes every value of `name` and returns them.
    fn take(&mut self, name: &HeaderName) -> Vec<HeaderValue>;
    fn append(&mut self, name: HeaderName, value: HeaderValue) -> Result<()>;
}

macro_rules! fields_for {
    ($t:ty) => {
        impl Fields for $t {
            fn remove(&mut self, name: &HeaderName) {
                self.remove_header(name);
            }
            fn take(&mut self, name: &HeaderName) -> Vec<HeaderValue> {
                let values = self.headers.get_all(name).iter().cloned().collect();
                self.remove_header(name);
                values
            }
            fn append(&mut self, name: HeaderName, value: HeaderValue) -> Result<()> {
                self.append_header(name, value).map(|_| ())
            }
        }
    };
}

fields_for!(RequestHeader);
fields_for!(ResponseHeader);

/// Query changes in the order they apply. Names are compared decoded, so a
/// client cannot keep a removed parameter by percent-encoding its name.
#[derive(Debug, Default)]
pub struct QueryOps {
    remove: Vec<String>,
    rename: Vec<(String, String)>,
    add: Vec<(String, Template)>,
}

/// A query parameter name safe to write without encoding.
fn query_name(path: String, name: &str, errors: &mut Vec<ConfigError>) -> Option<String> {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    if ok {
        Some(name.to_owned())
    } else {
        errors.push(ConfigError::new(
            path,
            format!("{name:?} is not a plain query parameter name"),
            "use letters, digits and - . _ ~",
        ));
        None
    }
}

impl QueryOps {
    fn build(path: &str, spec: &QuerySpec, errors: &mut Vec<ConfigError>) -> QueryOps {
        let mut ops = QueryOps::default();
        for (i, name) in spec.remove.iter().enumerate() {
            ops.remove
                .extend(query_name(format!("{path}.remove[{i}]"), name, errors));
        }
        for (from, to) in &spec.rename {
            let at = format!("{path}.rename.{from}");
            if let (Some(f), Some(t)) = (
                query_name(at.clone(), from, errors),
                query_name(at, to, errors),
            ) {
                ops.rename.push((f, t));
            }
        }
        for (name, value) in &spec.add {
            let at = format!("{path}.add.{name}");
            if let (Some(n), Some(v)) = (
                query_name(at.clone(), name, errors),
                template(at, value, errors),
            ) {
                ops.add.push((n, v));
            }
        }
        ops
    }

    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.rename.is_empty() && self.add.is_empty()
    }

    /// The query with the changes made; `None` when it ends up empty.
    pub fn apply(&self, query: Option<&str>, ctx: &RequestCtx) -> Option<String> {
        let mut out: Vec<String> = Vec::new();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, rest) = match pair.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (pair, None),
            };
            let decoded = percent_decode(key);
            if self.remove.contains(&decoded) {
                continue;
            }
            match self.rename.iter().find(|(from, _)| *from == decoded) {
                Some((_, to)) => match rest {
                    Some(v) => out.push(format!("{to}={v}")),
                    None => out.push(to.clone()),
                },
                None => out.push(pair.to_owned()),
            }
        }
        for (name, value) in &self.add {
            out.push(format!("{name}={}", percent_encode(&value.render(ctx))));
        }
        (!out.is_empty()).then(|| out.join("&"))
    }
}

/// Decodes `%XX` escapes and `+`; invalid escapes stay as written.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let hex = |i: usize| bytes.get(i).and_then(|b| (*b as char).to_digit(16));
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match (b, hex(i + 1), hex(i + 2)) {
            (b'%', Some(high), Some(low)) => {
                // Two hex digits make at most 255.
                out.push((high * 16 + low) as u8);
                i += 3;
                continue;
            }
            (b'+', _, _) => out.push(b' '),
            (b, _, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Encodes everything but unreserved characters (RFC 3986 section 2.3).
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Header and query changes on the request going upstream, and the
/// framing of a JSON body about to be rewritten: its new length is not known
/// when this header goes out, so it is sent chunked (HTTP/1.1) or unframed
/// (HTTP/2).
pub fn upstream_request(
    client: &RequestHeader,
    upstream: &mut RequestHeader,
    ctx: &mut RequestCtx,
) -> Result<()> {
    let snapshot = Arc::clone(&ctx.snapshot);
    let Some(t) = ctx
        .route
        .and_then(|r| snapshot.transforms.get(r))
        .and_then(Option::as_ref)
    else {
        return Ok(());
    };
    t.request_headers.apply(upstream, ctx)?;
    if let Some(rw) = &t.request_json {
        prepare_request_body(rw, client, upstream, ctx)?;
    }
    if !t.query.is_empty() {
        let path = upstream.uri.path().to_owned();
        let target = match t.query.apply(upstream.uri.query(), ctx) {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        let uri = target.parse::<http::Uri>().or_else(|e| {
            pingora::Error::e_because(
                pingora::ErrorType::InternalError,
                "transformed query is not a valid URI",
                e,
            )
        })?;
        upstream.set_uri(uri);
    }
    Ok(())
}

/// Reads the client's framing: the upstream copy has lost its
/// `Transfer-Encoding` with the other hop-by-hop fields.
fn prepare_request_body(
    rw: &JsonRewrite,
    client: &RequestHeader,
    upstream: &mut RequestHeader,
    ctx: &mut RequestCtx,
) -> Result<()> {
    let h = &client.headers;
    if ctx.grpc.is_some() || !json::is_json(h.get(CONTENT_TYPE)) {
        return Ok(());
    }
    let declared = h
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let chunked = h.contains_key(TRANSFER_ENCODING);
    if declared == Some(0) || (declared.is_none() && !chunked) {
        return Ok(());
    }
    // Longer than the cap: refused already by `admit_body` when the route
    // rejects, so passed on untouched here.
    if declared.is_some_and(|n| n > rw.max_bytes) {
        return Ok(());
    }
    upstream.remove_header(&CONTENT_LENGTH);
    if !ctx.pool().is_some_and(|p| p.protocol.is_h2()) {
        upstream.insert_header(TRANSFER_ENCODING, "chunked")?;
    }
    ctx.json_bodies.request = Some(BodyBuffer::default());
    Ok(())
}

/// Refuses, before anything reaches the upstream, a JSON request body
/// declared longer than a rejecting route's cap.
pub fn admit_body(req: &RequestHeader, ctx: &RequestCtx) -> Result<(), Failure> {
    let Some(rw) = of_snapshot(&ctx.snapshot, ctx.route).and_then(|t| t.request_json.as_ref())
    else {
        return Ok(());
    };
    let declared = req
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let over = declared.is_some_and(|n| n > rw.max_bytes);
    if over && rw.oversize == Oversize::Reject && json::is_json(req.headers.get(CONTENT_TYPE)) {
        return Err(Failure::BodyTooLarge);
    }
    Ok(())
}

/// Holds the request body being rewritten and sends the rewrite at its end.
pub fn request_body(body: &mut Option<Bytes>, end: bool, ctx: &mut RequestCtx) -> Result<()> {
    let Some(buffer) = ctx.json_bodies.request.as_mut() else {
        return Ok(());
    };
    let Some(rw) = of_snapshot(&ctx.snapshot, ctx.route).and_then(|t| t.request_json.as_ref())
    else {
        return Ok(());
    };
    match buffer.push(rw, body.take(), end) {
        // Empty, not `None`: `None` would end the upstream body.
        Step::Hold => *body = Some(Bytes::new()),
        Step::Send(bytes) => *body = Some(bytes),
        Step::Reject => {
            ctx.failure = Some(Failure::BodyTooLarge);
            return Error::e_explain(
                ErrorType::Custom("json_body_too_large"),
                "request body passed the route's json_body.max_bytes",
            )
            .map_err(|e| e.into_down());
        }
    }
    Ok(())
}

/// Header changes on the answer going to the client, and the framing of a
/// JSON answer about to be rewritten. An answer declared longer than the cap
/// is refused with 502 before anything is sent, or left alone.
pub fn response(session: &Session, resp: &mut ResponseHeader, ctx: &mut RequestCtx) -> Result<()> {
    let snapshot = Arc::clone(&ctx.snapshot);
    let Some(t) = of_snapshot(&snapshot, ctx.route) else {
        return Ok(());
    };
    t.response_headers.apply(resp, ctx)?;
    let Some(rw) = &t.response_json else {
        return Ok(());
    };
    let h = &resp.headers;
    let bodiless = matches!(resp.status.as_u16(), 100..=199 | 204 | 304)
        || session.req_header().method == http::Method::HEAD;
    // An encoded body cannot be read as JSON.
    if bodiless
        || ctx.grpc.is_some()
        || h.contains_key(CONTENT_ENCODING)
        || !json::is_json(h.get(CONTENT_TYPE))
    {
        return Ok(());
    }
    let declared = h
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > rw.max_bytes) {
        return match rw.oversize {
            Oversize::Pass => Ok(()),
            Oversize::Reject => {
                ctx.failure = Some(Failure::UpstreamFailed);
                Error::e_explain(
                    ErrorType::Custom("json_body_too_large"),
                    "upstream answer passed the route's json_body.max_bytes",
                )
                .map_err(|e| e.into_up())
            }
        };
    }
    resp.remove_header(&CONTENT_LENGTH);
    resp.remove_header(&http::header::ACCEPT_RANGES);
    if !session.is_http2() {
        resp.insert_header(TRANSFER_ENCODING, "chunked")?;
    }
    ctx.json_bodies.response = Some(BodyBuffer::default());
    Ok(())
}

/// Holds the answer being rewritten and sends the rewrite at its end. Past
/// the cap with `oversize: reject` the header has gone already, so the
/// answer is cut off.
pub fn response_body(body: &mut Option<Bytes>, end: bool, ctx: &mut RequestCtx) -> Result<()> {
    let Some(buffer) = ctx.json_bodies.response.as_mut() else {
        return Ok(());
    };
    let Some(rw) = of_snapshot(&ctx.snapshot, ctx.route).and_then(|t| t.response_json.as_ref())
    else {
        return Ok(());
    };
    match buffer.push(rw, body.take(), end) {
        Step::Hold => {}
        Step::Send(bytes) => *body = Some(bytes),
        Step::Reject => {
            return Error::e_explain(
                ErrorType::Custom("json_body_too_large"),
                "upstream answer passed the route's json_body.max_bytes",
            )
            .map_err(|e| e.into_up());
        }
    }
    Ok(())
}

fn of_snapshot(snapshot: &Snapshot, route: Option<usize>) -> Option<&RouteTransform> {
    route
        .and_then(|r| snapshot.transforms.get(r))
        .and_then(Option::as_ref)
}

#[cfg(test)]
mod tests;
