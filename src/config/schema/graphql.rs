//! The `graphql` settings of a route (`routes[].graphql`): the limits a
//! GraphQL endpoint enforces before any upstream sees a query, and the pools
//! operations are routed to by type and name.

use serde::Deserialize;

use super::Size;

/// The most body a GraphQL route can read before choosing its upstream:
/// Pingora forwards a body read that early only from its retry buffer, which
/// holds 64 KiB (`BODY_BUF_LIMIT` in pingora-core 0.9.1).
pub const MAX_GRAPHQL_BODY: u64 = 64 * 1024;

/// Written as `routes[].graphql`. A route with this key is a GraphQL
/// endpoint: its requests are parsed and judged before an upstream is chosen.
/// Every `max_*` is unlimited when absent.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphqlSpec {
    /// The largest body read for analysis; at most 64 KiB, and the route's
    /// `policies.limits.max_body_bytes` when that is smaller.
    #[serde(default)]
    pub max_body_bytes: Option<Size>,
    /// Fields on the longest path, fragments expanded.
    #[serde(default)]
    pub max_depth: Option<usize>,
    /// Aliased fields, summed over a batch.
    #[serde(default)]
    pub max_aliases: Option<u64>,
    /// Fields at the root of an operation, summed over a batch.
    #[serde(default)]
    pub max_root_fields: Option<u64>,
    /// The complexity score, summed over a batch.
    #[serde(default)]
    pub max_complexity: Option<u64>,
    /// Operations in one batched (JSON array) request.
    #[serde(default)]
    pub max_batch: Option<usize>,
    /// Whether `__schema` and `__type` may be queried; allowed unless `false`.
    #[serde(default = "yes")]
    pub introspection: bool,
    /// SHA-256 hashes (hex) of the only documents allowed to run.
    #[serde(default)]
    pub persisted_queries: Option<Vec<String>>,
    /// Where operations go, first match wins; others go to the route's
    /// `upstream`.
    #[serde(default)]
    pub operations: Vec<GraphqlOperationSpec>,
}

/// One routing rule: operations of `type` (and `name`, when given) go to
/// `upstream`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphqlOperationSpec {
    #[serde(rename = "type")]
    pub kind: GraphqlOperationType,
    #[serde(default)]
    pub name: Option<String>,
    pub upstream: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GraphqlOperationType {
    Query,
    Mutation,
    /// Also matches a WebSocket upgrade on the route, the transport of
    /// subscriptions.
    Subscription,
}

fn yes() -> bool {
    true
}
