//! One compiled route: its predicates, and how it turns the request path into the
//! path forwarded upstream.

use std::borrow::Cow;
use std::sync::Arc;

use http::Method;
use regex::Regex;

use super::error::{RouterError, RouterErrorKind};
use super::predicate::{
    compile_regex, prefix_matches, HeaderPredicate, HostPattern, PathPattern, QueryPredicate,
};
use super::RequestView;
use crate::config::schema::RouteSpec;

/// A route of the compiled table.
#[derive(Debug)]
pub struct Route {
    /// Position of the route in the config's `routes`.
    pub index: usize,
    pub id: Arc<str>,
    /// Name of the upstream pool.
    pub upstream: Arc<str>,
    /// `Host` header to send upstream; `None` passes the client's through.
    pub upstream_host: Option<String>,
    /// Empty: any host.
    pub(super) hosts: Vec<HostPattern>,
    pub(super) path: Option<PathPattern>,
    /// Empty: any method.
    pub(super) methods: Vec<Method>,
    pub(super) headers: Vec<HeaderPredicate>,
    pub(super) query: Vec<QueryPredicate>,
    forward: Forward,
}

/// How the forwarded path is derived from the normalised request path.
#[derive(Debug)]
enum Forward {
    Unchanged,
    StripPrefix(Box<str>),
    Rewrite { regex: Regex, replace: Box<str> },
}

impl Route {
    /// Compiles `spec`, the route at `index` of the config.
    pub(super) fn compile(index: usize, spec: &RouteSpec) -> Result<Route, RouterError> {
        Self::compile_parts(index, spec).map_err(|kind| RouterError {
            index,
            id: spec.id.clone(),
            kind,
        })
    }

    fn compile_parts(index: usize, spec: &RouteSpec) -> Result<Route, RouterErrorKind> {
        let m = &spec.matches;
        let hosts = m
            .hosts
            .iter()
            .map(|h| HostPattern::parse(h))
            .collect::<Result<_, _>>()?;
        let path = m.path.as_ref().map(PathPattern::compile).transpose()?;
        let methods = m
            .methods
            .iter()
            .map(|name| {
                Method::from_bytes(name.as_bytes()).map_err(|_| RouterErrorKind::InvalidMethod {
                    method: name.clone(),
                })
            })
            .collect::<Result<_, _>>()?;
        let headers = m
            .headers
            .iter()
            .enumerate()
            .map(|(i, h)| HeaderPredicate::compile(h, i))
            .collect::<Result<_, _>>()?;
        let query = m
            .query
            .iter()
            .enumerate()
            .map(|(i, q)| QueryPredicate::compile(q, i))
            .collect::<Result<_, _>>()?;
        let forward = compile_forward(spec, path.as_ref())?;
        Ok(Route {
            index,
            id: spec.id.as_str().into(),
            upstream: spec.upstream.as_str().into(),
            upstream_host: spec.upstream_host.clone(),
            hosts,
            path,
            methods,
            headers,
            query,
            forward,
        })
    }

    /// The path to forward upstream for a normalised request `path` this route
    /// matched.
    ///
    /// With `strip_prefix`, the matched prefix is removed and the rest kept
    /// (`/api/users` under `/api` gives `/users`; `/api` and `/api/` give `/`); a
    /// prefix of `/` strips nothing. With `rewrite`, the first match of the regex
    /// is replaced, `$1`/`${name}` expanding to captures (write `${1}x`, not
    /// `$1x`); a result that does not start with '/' gets one prepended, and a
    /// path the regex does not match is forwarded unchanged. The rewritten path is
    /// not normalised again: the config author owns it. Otherwise the path is
    /// forwarded as it is.
    pub fn forward_path<'p>(&self, path: &'p str) -> Cow<'p, str> {
        match &self.forward {
            Forward::Unchanged => Cow::Borrowed(path),
            Forward::StripPrefix(prefix) => strip_prefix(prefix, path),
            Forward::Rewrite { regex, replace } => match regex.replace(path, &**replace) {
                Cow::Owned(out) if !out.starts_with('/') => Cow::Owned(format!("/{out}")),
                out => out,
            },
        }
    }

    /// Whether the predicates the route table does not index (methods, headers,
    /// query) hold for `req`.
    pub(super) fn unindexed_predicates_hold(&self, req: &RequestView<'_>) -> bool {
        (self.methods.is_empty() || self.methods.contains(req.method))
            && self.headers.iter().all(|h| h.holds(req.headers))
            && self.query.iter().all(|q| q.holds(req.query))
    }

    /// How many method, header and query predicates the route has; a non-empty
    /// method list counts as one. More predicates rank first.
    pub(super) fn predicate_count(&self) -> usize {
        usize::from(!self.methods.is_empty()) + self.headers.len() + self.query.len()
    }
}

fn compile_forward(
    spec: &RouteSpec,
    path: Option<&PathPattern>,
) -> Result<Forward, RouterErrorKind> {
    match (spec.strip_prefix, &spec.rewrite) {
        (true, Some(_)) => Err(RouterErrorKind::StripPrefixAndRewrite),
        (true, None) => match path {
            Some(PathPattern::Prefix(prefix)) => Ok(Forward::StripPrefix(prefix.clone())),
            _ => Err(RouterErrorKind::StripPrefixWithoutPrefix),
        },
        (false, Some(rewrite)) => Ok(Forward::Rewrite {
            regex: compile_regex(&rewrite.regex, "rewrite.regex")?,
            replace: rewrite.replace.as_str().into(),
        }),
        (false, None) => Ok(Forward::Unchanged),
    }
}

fn strip_prefix<'p>(prefix: &str, path: &'p str) -> Cow<'p, str> {
    if prefix == "/" || !prefix_matches(prefix, path) {
        return Cow::Borrowed(path);
    }
    match path.get(prefix.len()..) {
        Some(rest) if !rest.is_empty() => Cow::Borrowed(rest),
        _ => Cow::Borrowed("/"),
    }
}
