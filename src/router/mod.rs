//! Path normalisation and the compiled route table: given a request, which route
//! serves it and which path goes upstream.
//!
//! A request's path is normalised once by [`normalize_path`] (the rules, which
//! are part of the security contract, are in its module documentation) and its
//! host by [`normalize_host`]. The [`Router`], compiled from the config's
//! `routes`, then picks a [`Route`] with [`Router::find`], and
//! [`Route::forward_path`] gives the path sent upstream.
//!
//! # Matching
//!
//! A route matches when every predicate it has holds:
//!
//! - hosts: an exact name, or `*.example.com`, which matches any name with at
//!   least one more label ending in `.example.com` but not `example.com` itself;
//!   no hosts matches any host;
//! - path: `exact`; `prefix` on segment boundaries (`/api` matches `/api`, `/api/`
//!   and `/api/x`, not `/apix`; `/` matches every path); or `regex`, tested with
//!   `is_match` against the whole normalised path and **not anchored**, so write
//!   `^...$` to match the whole path;
//! - methods: one of the listed methods; none listed matches any method;
//! - headers: the header is present and, with `value`, one of its values equals it
//!   (case-sensitive) or, with `regex`, one of its values matches it (unanchored);
//! - query: the same tests on the parameters of `a=1&b=2`, after percent-decoding
//!   names and values.
//!
//! Config paths of `exact` and `prefix` are normalised like request paths.
//!
//! # Precedence
//!
//! When several routes match, the most specific wins. Routes are compared on
//! these keys in turn, the first difference deciding:
//!
//! 1. host: an exact host beats a wildcard, a longer wildcard suffix beats a
//!    shorter one, and any wildcard beats a route without hosts. A route with
//!    several hosts ranks by the most specific one that matches the request;
//! 2. path: exact beats prefix, a longer prefix beats a shorter one, any prefix
//!    beats regex, and regex beats a route without a path predicate;
//! 3. predicate count: more beats fewer, counting each header and each query
//!    predicate as one and a non-empty method list as one;
//! 4. config order: the earlier route wins.
//!
//! The table finds that route without testing every route: hosts and paths are
//! looked up in hash maps (a probe per host label and per path segment), and only
//! the candidates found there have their methods, headers and query tested. Regex
//! routes, and routes with neither a host nor a path predicate, are the exception:
//! a lookup that reaches them tests them one by one, in precedence order.

mod error;
mod normalize;
mod predicate;
mod route;
mod table;

pub use error::{RouterError, RouterErrorKind};
pub use normalize::{normalize_host, normalize_path, NormalizeError};
pub use route::Route;
pub use table::Router;

/// What the router looks at in a request. `host` and `path` must be the outputs
/// of [`normalize_host`] and [`normalize_path`].
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    pub host: &'a str,
    pub path: &'a str,
    pub method: &'a http::Method,
    pub headers: &'a http::HeaderMap,
    /// The raw query string, without the `?`.
    pub query: Option<&'a str>,
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod precedence_tests;
