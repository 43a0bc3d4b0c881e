//! Response compression: which answers of a route are compressed, and with
//! which coding for this client.
//!
//! Pingora's compression context, in the downstream module of [`module`],
//! does the encoding (and weakens a strong `ETag`, drops `Content-Length` and
//! `Accept-Ranges`). It is registered switched off; for an answer this module finds eligible it is
//! switched on for the one coding negotiated here. The module's own
//! negotiation takes the first coding the client lists and ignores `q`
//! values, so it is handed a request naming only the chosen coding.
//!
//! The decision is made on the answer as it leaves the gateway, so a stored
//! representation (the upstream's, uncompressed) serves every client in the
//! coding that client asked for.

use http::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE,
    VARY,
};
use http::{HeaderValue, Method};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::http::compression::Algorithm;
use pingora::proxy::Session;
use pingora::Result;

mod module;

use module::Compressor;
pub use module::CompressorBuilder;

use super::ctx::RequestCtx;
use crate::config::schema::{Coding, CompressionSpec};

/// A route's compiled `compression` section.
#[derive(Debug)]
pub struct RouteCompression {
    /// The codings offered with their levels, in the route's preference order.
    codings: Vec<(Coding, u32)>,
    min_size: u64,
    types: Vec<TypePattern>,
}

/// `type/subtype`, or `type/*` kept as its `type/` prefix, lowercase.
#[derive(Debug)]
enum TypePattern {
    Exact(String),
    Prefix(String),
}

impl RouteCompression {
    /// `None` for a switched-off section. The spec must be validated.
    pub fn build(spec: &CompressionSpec) -> Option<RouteCompression> {
        if !spec.enabled {
            return None;
        }
        let codings = spec
            .algorithms
            .iter()
            .map(|c| (*c, spec.level.unwrap_or_else(|| c.default_level())))
            .collect();
        let types = spec
            .content_types
            .iter()
            .map(|t| {
                let t = t.trim().to_ascii_lowercase();
                match t.strip_suffix('*') {
                    Some(prefix) => TypePattern::Prefix(prefix.to_owned()),
                    None => TypePattern::Exact(t),
                }
            })
            .collect();
        Some(RouteCompression {
            codings,
            min_size: spec.min_size.0,
            types,
        })
    }

    /// Whether the answer may be compressed at all, whatever the client
    /// accepts: it then varies on `Accept-Encoding`.
    fn eligible(&self, resp: &ResponseHeader) -> bool {
        let status = resp.status.as_u16();
        if resp.status.is_informational() || matches!(status, 204 | 206 | 304) {
            return false;
        }
        let h = &resp.headers;
        // Already encoded by the upstream (never twice), or a byte range of
        // the upstream's representation.
        if h.contains_key(CONTENT_ENCODING) || h.contains_key(CONTENT_RANGE) {
            return false;
        }
        if has_token(h.get_all(CACHE_CONTROL).iter(), "no-transform") {
            return false;
        }
        let length = h
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if length.is_some_and(|n| n < self.min_size) {
            return false;
        }
        h.get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| self.type_listed(t))
    }

    fn type_listed(&self, content_type: &str) -> bool {
        let media = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        self.types.iter().any(|p| match p {
            TypePattern::Exact(t) => *t == media,
            TypePattern::Prefix(prefix) => media.starts_with(prefix.as_str()),
        })
    }

    /// The coding to use for a client sending these `Accept-Encoding`
    /// fields: the offered coding with the highest `q` above 0, the route's
    /// order breaking ties, unless the client prefers `identity` to it.
    /// No field at all means the client did not ask for compression.
    pub fn negotiate<'a>(
        &self,
        fields: impl Iterator<Item = &'a HeaderValue>,
    ) -> Option<(Coding, u32)> {
        let accepted = Accepted::parse(fields)?;
        let mut best: Option<(u16, Coding, u32)> = None;
        for &(coding, level) in &self.codings {
            let q = accepted.q(coding);
            if q > 0 && best.is_none_or(|(top, _, _)| q > top) {
                best = Some((q, coding, level));
            }
        }
        let (q, coding, level) = best?;
        match accepted.identity {
            Some(identity) if identity > q => None,
            _ => Some((coding, level)),
        }
    }
}

/// The `q` values (in thousandths) a client gave, as far as they matter here.
#[derive(Debug, Default)]
struct Accepted {
    gzip: Option<u16>,
    br: Option<u16>,
    zstd: Option<u16>,
    identity: Option<u16>,
    any: Option<u16>,
}

impl Accepted {
    /// `None` when the request has no `Accept-Encoding`. An entry with a
    /// malformed `q` is ignored, as if not written.
    fn parse<'a>(fields: impl Iterator<Item = &'a HeaderValue>) -> Option<Accepted> {
        let mut accepted = Accepted::default();
        let mut any_field = false;
        for field in fields {
            any_field = true;
            let Ok(text) = field.to_str() else {
                continue;
            };
            for entry in text.split(',') {
                let mut parts = entry.split(';');
                let name = parts.next().unwrap_or("").trim().to_ascii_lowercase();
                let Some(q) = entry_q(parts) else {
                    continue;
                };
                let slot = match name.as_str() {
                    "gzip" | "x-gzip" => &mut accepted.gzip,
                    "br" => &mut accepted.br,
                    "zstd" => &mut accepted.zstd,
                    "identity" => &mut accepted.identity,
                    "*" => &mut accepted.any,
                    _ => continue,
                };
                *slot = Some(q);
            }
        }
        any_field.then_some(accepted)
    }

    /// A coding the client did not name takes the `*` entry's weight, and
    /// is not acceptable without one (RFC 9110 section 12.5.3).
    fn q(&self, coding: Coding) -> u16 {
        let named = match coding {
            Coding::Gzip => self.gzip,
            Coding::Br => self.br,
            Coding::Zstd => self.zstd,
        };
        named.or(self.any).unwrap_or(0)
    }
}

/// The `q` parameter of one entry's parameters (1000 when absent), or
/// `None` when it is not a number from 0 to 1.
fn entry_q<'a>(params: impl Iterator<Item = &'a str>) -> Option<u16> {
    let mut q = 1000;
    for param in params {
        let Some((key, value)) = param.split_once('=') else {
            continue;
        };
        if key.trim().eq_ignore_ascii_case("q") {
            let value = value.trim();
            let parsed: f64 = value.parse().ok()?;
            if !(0.0..=1.0).contains(&parsed) || value.len() > 5 {
                return None;
            }
            q = (parsed * 1000.0).round() as u16;
        }
    }
    Some(q)
}

/// Whether any of the comma-separated fields holds `token`.
fn has_token<'a>(fields: impl Iterator<Item = &'a HeaderValue>, token: &str) -> bool {
    fields.filter_map(|v| v.to_str().ok()).any(|text| {
        text.split(',').any(|t| {
            t.split('=')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case(token)
        })
    })
}

/// Prepares the compression of this answer by the downstream module, after
/// Portico's own header changes. Answers Portico writes itself (refusals)
/// never get here and are never compressed.
pub fn on_response(
    session: &mut Session,
    ctx: &RequestCtx,
    resp: &mut ResponseHeader,
) -> Result<()> {
    let Some(config) = ctx
        .route
        .and_then(|r| ctx.snapshot.compression.get(r))
        .and_then(Option::as_ref)
    else {
        return Ok(());
    };
    // gRPC has its own per-message compression, and its framing must
    // reach the client untouched.
    if ctx.grpc.is_some() || !config.eligible(resp) {
        return Ok(());
    }
    let vary = resp.headers.get_all(VARY);
    if !has_token(vary.iter(), "accept-encoding") && !has_token(vary.iter(), "*") {
        resp.append_header(VARY, "Accept-Encoding")?;
    }
    let req = session.req_header();
    // A HEAD answer has no body to compress; its fields stay the upstream's.
    if req.method == Method::HEAD {
        return Ok(());
    }
    let Some((coding, level)) = config.negotiate(req.headers.get_all(ACCEPT_ENCODING).iter())
    else {
        return Ok(());
    };
    let Some(module) = session.downstream_modules_ctx.get_mut::<Compressor>() else {
        return Ok(());
    };
    // Past the header phase the module has decided already (and its
    // `adjust_*` calls would panic).
    if !module.ctx.is_header_phase() {
        return Ok(());
    }
    module.ctx.adjust_algorithm_level(algorithm(coding), level);
    let mut asked = RequestHeader::build(Method::GET, b"/", Some(1))?;
    asked.insert_header(ACCEPT_ENCODING, coding.token())?;
    module.ctx.request_filter(&asked);
    module.brotli_open = coding == Coding::Br;
    Ok(())
}

fn algorithm(coding: Coding) -> Algorithm {
    match coding {
        Coding::Gzip => Algorithm::Gzip,
        Coding::Br => Algorithm::Brotli,
        Coding::Zstd => Algorithm::Zstd,
    }
}

#[cfg(test)]
mod tests;
