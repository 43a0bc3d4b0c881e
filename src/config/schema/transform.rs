//! The `transform` settings of a route: changes to the request on its way
//! to the upstream and to the answer on its way back.
//!
//! Header and query values are templates: `${client_ip}`, `${request_id}`,
//! `${consumer}`, `${route}` and `${claim.NAME}` are replaced per request.
//! In the file they are written `$${...}`, because `${NAME}` alone is the
//! file's environment expansion. The path is rewritten by the route's
//! `rewrite`, not here.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::Size;

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformSpec {
    #[serde(default)]
    pub request: Option<RequestTransformSpec>,
    #[serde(default)]
    pub response: Option<ResponseTransformSpec>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestTransformSpec {
    #[serde(default)]
    pub headers: HeadersSpec,
    #[serde(default)]
    pub query: QuerySpec,
    #[serde(default)]
    pub json_body: Option<JsonBodySpec>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseTransformSpec {
    #[serde(default)]
    pub headers: HeadersSpec,
    #[serde(default)]
    pub json_body: Option<JsonBodySpec>,
}

/// Applied in the order remove, rename, set, add.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadersSpec {
    /// Fields added next to any the message already has.
    #[serde(default)]
    pub add: BTreeMap<String, String>,
    /// Fields set, replacing any with the same name.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// Old name to new name; every value moves.
    #[serde(default)]
    pub rename: BTreeMap<String, String>,
    #[serde(default)]
    pub remove: Vec<String>,
}

/// Applied in the order remove, rename, add.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuerySpec {
    /// Parameters appended, their values percent-encoded.
    #[serde(default)]
    pub add: BTreeMap<String, String>,
    /// Every parameter of the name is dropped.
    #[serde(default)]
    pub remove: Vec<String>,
    #[serde(default)]
    pub rename: BTreeMap<String, String>,
}

/// Rewrites of a JSON body (`application/json` or `+json`); other bodies,
/// and bodies that are not valid JSON, pass untouched. Field paths are
/// dot-separated object keys (`user.password`). Applied in the order
/// remove, rename, add.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonBodySpec {
    /// Field path to a JSON value; missing parent objects are created.
    #[serde(default)]
    pub add: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub remove: Vec<String>,
    /// Old path to new path.
    #[serde(default)]
    pub rename: BTreeMap<String, String>,
    /// The largest body held in memory to be rewritten. Default 1MiB.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: Size,
    /// What happens to a larger body. Default `pass`.
    #[serde(default)]
    pub oversize: Oversize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Oversize {
    /// Sent on as it came, unchanged.
    #[default]
    Pass,
    /// A request is refused with 413; an answer with 502 when its length is
    /// known before it is sent, else its connection is cut.
    Reject,
}

fn default_max_bytes() -> Size {
    Size(1024 * 1024)
}
