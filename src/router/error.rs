//! Why a route could not be compiled into the route table.
//!
//! Validation normally catches all of these first; the router checks again so a
//! config that slipped past validation becomes an error, never a panic or a route
//! that silently never matches.

use super::normalize::NormalizeError;

/// A route that could not be compiled, with its position and id in the config.
#[derive(Debug, thiserror::Error)]
#[error("routes[{index}] (id {id:?}): {kind}")]
pub struct RouterError {
    /// Position of the route in `routes`.
    pub index: usize,
    pub id: String,
    pub kind: RouterErrorKind,
}

/// What is wrong with the route.
#[derive(Debug, thiserror::Error)]
pub enum RouterErrorKind {
    #[error("another route already uses this id (routes[{first}])")]
    DuplicateId { first: usize },
    #[error("match.hosts entry {host:?}: {reason}")]
    InvalidHost { host: String, reason: &'static str },
    #[error("match.path {path:?}: {reason}")]
    InvalidPath {
        path: String,
        reason: NormalizeError,
    },
    #[error("match.path.prefix {prefix:?} must not end with '/' (only \"/\" itself may)")]
    PrefixTrailingSlash { prefix: String },
    #[error("{field}: invalid regex: {source}")]
    InvalidRegex { field: String, source: regex::Error },
    #[error("match.methods entry {method:?} is not an HTTP method")]
    InvalidMethod { method: String },
    #[error("match.headers entry {name:?} is not a valid header name")]
    InvalidHeaderName { name: String },
    #[error("{field} sets both value and regex; choose one")]
    ValueAndRegex { field: String },
    #[error("strip_prefix needs match.path.prefix")]
    StripPrefixWithoutPrefix,
    #[error("strip_prefix and rewrite cannot both be set")]
    StripPrefixAndRewrite,
}
