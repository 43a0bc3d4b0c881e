//! Judging a whole GraphQL request against a route's limits.
//!
//! A batch is judged as one request: its size is capped, the depth cap
//! applies to each operation, and the counts that add up to load on the
//! upstream (aliases, root fields, complexity) are summed over the batch and
//! compared with the same caps. Three operations that each stay just under
//! `max_complexity` are therefore refused together, as the upstream would
//! run all three for one HTTP request.

use std::collections::HashSet;

use sha2::{Digest, Sha256};

use super::analysis::{analyse, Operation, OperationKind};
use super::request::{Extracted, GraphqlRequest};
use super::{RejectKind, Rejection};

/// A route's GraphQL limits; `None` leaves a measure unlimited.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    pub max_depth: Option<usize>,
    pub max_aliases: Option<u64>,
    pub max_root_fields: Option<u64>,
    pub max_complexity: Option<u64>,
    pub max_batch: Option<usize>,
    /// Whether `__schema` and `__type` may be queried.
    pub introspection: bool,
    /// When set, only documents whose SHA-256 (lowercase hex) is listed run.
    pub persisted_queries: Option<HashSet<String>>,
}

/// One request of a batch as the gateway sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inspected {
    /// A document that was sent and measured.
    Document(Operation),
    /// An allow-listed persisted query sent by hash alone: the operator
    /// vetted its text, which the gateway does not have, so it is neither
    /// measured nor typed.
    Persisted { operation_name: Option<String> },
}

impl Inspected {
    pub fn kind(&self) -> Option<OperationKind> {
        match self {
            Inspected::Document(op) => Some(op.kind),
            Inspected::Persisted { .. } => None,
        }
    }

    pub fn name(&self) -> Option<&str> {
        match self {
            Inspected::Document(op) => op.name.as_deref(),
            Inspected::Persisted { operation_name } => operation_name.as_deref(),
        }
    }
}

/// Measures every request of `extracted` and judges them against `limits`;
/// `get` says the requests came over GET, where only queries may run.
pub fn inspect(
    limits: &Limits,
    extracted: &Extracted,
    get: bool,
) -> Result<Vec<Inspected>, Rejection> {
    if let Some(max) = limits.max_batch {
        if extracted.batched && extracted.requests.len() > max {
            return Err(Rejection::refused(
                "BATCH_LIMIT_EXCEEDED",
                format!(
                    "the batch holds {} operations; at most {max} are allowed",
                    extracted.requests.len()
                ),
            ));
        }
    }
    let mut inspected = Vec::with_capacity(extracted.requests.len());
    let mut totals = (0u64, 0u64, 0u64);
    for request in &extracted.requests {
        let Some(query) = request.query.as_deref() else {
            inspected.push(persisted_only(limits, request)?);
            continue;
        };
        check_allow_list(limits, query, request.persisted_hash.as_deref())?;
        let op = analyse(
            query,
            request.operation_name.as_deref(),
            request.variables.as_ref(),
        )?;
        if get && op.kind != OperationKind::Query {
            return Err(Rejection::new(
                RejectKind::MethodNotAllowed,
                "METHOD_NOT_ALLOWED",
                format!("a {} must be sent with POST", op.kind.as_str()),
            ));
        }
        check_operation(limits, &op)?;
        totals.0 = totals.0.saturating_add(op.aliases);
        totals.1 = totals.1.saturating_add(op.root_fields);
        totals.2 = totals.2.saturating_add(op.complexity);
        inspected.push(Inspected::Document(op));
    }
    let what = if extracted.batched {
        "the batch"
    } else {
        "the operation"
    };
    over(
        "ALIAS_LIMIT_EXCEEDED",
        what,
        "aliases",
        totals.0,
        limits.max_aliases,
    )?;
    over(
        "ROOT_FIELD_LIMIT_EXCEEDED",
        what,
        "root fields",
        totals.1,
        limits.max_root_fields,
    )?;
    over(
        "COMPLEXITY_LIMIT_EXCEEDED",
        what,
        "complexity",
        totals.2,
        limits.max_complexity,
    )?;
    Ok(inspected)
}

fn check_operation(limits: &Limits, op: &Operation) -> Result<(), Rejection> {
    if let Some(max) = limits.max_depth {
        if op.depth > max {
            return Err(Rejection::refused(
                "DEPTH_LIMIT_EXCEEDED",
                format!(
                    "the operation is {} deep; at most {max} is allowed",
                    op.depth
                ),
            ));
        }
    }
    if op.introspection && !limits.introspection {
        return Err(Rejection::refused(
            "INTROSPECTION_DISABLED",
            "introspection (__schema, __type) is disabled on this endpoint",
        ));
    }
    Ok(())
}

fn over(
    code: &'static str,
    what: &str,
    measure: &str,
    value: u64,
    max: Option<u64>,
) -> Result<(), Rejection> {
    match max {
        Some(max) if value > max => Err(Rejection::refused(
            code,
            format!("{what} has {measure} {value}; at most {max} is allowed"),
        )),
        _ => Ok(()),
    }
}

/// With an allow-list, the document's own hash must be listed; a hash the
/// client sent must match the text, or it could vouch for any text.
fn check_allow_list(limits: &Limits, query: &str, sent: Option<&str>) -> Result<(), Rejection> {
    let computed = sha256_hex(query);
    if sent.is_some_and(|h| h != computed) {
        return Err(Rejection::refused(
            "PERSISTED_QUERY_HASH_MISMATCH",
            "extensions.persistedQuery.sha256Hash is not the hash of the query",
        ));
    }
    match &limits.persisted_queries {
        Some(allowed) if !allowed.contains(&computed) => Err(Rejection::refused(
            "PERSISTED_QUERY_NOT_ALLOWED",
            "this query is not on the endpoint's allow-list",
        )),
        _ => Ok(()),
    }
}

/// A request with a hash and no text runs only when the hash is allow-listed.
/// Without an allow-list the gateway cannot measure it, so it answers the way
/// an automatic-persisted-query server does for an unknown hash, and such
/// clients send the full text next, which is measured.
fn persisted_only(limits: &Limits, request: &GraphqlRequest) -> Result<Inspected, Rejection> {
    let Some(hash) = request.persisted_hash.as_deref() else {
        return Err(Rejection::malformed("the request has no query"));
    };
    match &limits.persisted_queries {
        Some(allowed) if allowed.contains(hash) => Ok(Inspected::Persisted {
            operation_name: request.operation_name.clone(),
        }),
        Some(_) => Err(Rejection::refused(
            "PERSISTED_QUERY_NOT_ALLOWED",
            "this query is not on the endpoint's allow-list",
        )),
        None => Err(Rejection::refused(
            "PERSISTED_QUERY_NOT_FOUND",
            "PersistedQueryNotFound",
        )),
    }
}

/// The lowercase hex SHA-256 of a document, as allow-lists hold it.
pub fn sha256_hex(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in digest {
        hex.push(char::from(b"0123456789abcdef"[usize::from(byte >> 4)]));
        hex.push(char::from(b"0123456789abcdef"[usize::from(byte & 15)]));
    }
    hex
}
