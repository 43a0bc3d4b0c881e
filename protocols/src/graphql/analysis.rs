//! Measuring one GraphQL document: which operation runs, and how deep, wide
//! and costly it is with its fragments expanded.
//!
//! Fragments are measured once each and the result reused wherever they are
//! spread, so a document that spreads fragments exponentially often costs
//! linear time to measure, and its counts saturate instead of overflowing.
//! A cycle of fragments is refused (a server would refuse it too, and
//! expanding it would never end).

use std::collections::HashMap;

use async_graphql_parser::types::{
    DocumentOperations, ExecutableDocument, FragmentDefinition, OperationDefinition, OperationType,
    Selection, SelectionSet,
};
use async_graphql_parser::Positioned;
use async_graphql_value::{Name, Value};
use serde_json::{Map, Value as Json};

use super::Rejection;

/// Brackets (`{`, `[`, `(`) may nest this deep in a document. The parser
/// recurses once per level, so this bound, checked by a flat scan before
/// parsing, is what keeps a hostile `{a{a{a...` from overflowing the stack.
pub const MAX_NESTING: usize = 128;

/// Fields and fragment spreads may nest this deep while a document is
/// measured: the measurement recurses, and a long chain of fragments each
/// spreading the next is short text but deep recursion.
const MAX_WALK: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationKind {
    Query,
    Mutation,
    Subscription,
}

impl OperationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OperationKind::Query => "query",
            OperationKind::Mutation => "mutation",
            OperationKind::Subscription => "subscription",
        }
    }
}

/// What a gateway knows of the operation a request runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    pub kind: OperationKind,
    pub name: Option<String>,
    /// Fields on the longest path from the root, fragments expanded; `{a}`
    /// is 1.
    pub depth: usize,
    /// Aliased fields, each spread of a fragment counting its aliases again.
    pub aliases: u64,
    /// Fields selected at the root, through fragments too.
    pub root_fields: u64,
    /// Every field costs 1, times the product of the list sizes above it; a
    /// field's list size is its `first`, `last` or `limit` argument when that
    /// is an integer literal or variable, else 1.
    pub complexity: u64,
    /// Whether `__schema` or `__type` is selected anywhere (`__typename` is
    /// not introspection of the schema and is allowed).
    pub introspection: bool,
}

/// Parses `query` and measures the operation `operation_name` selects.
///
/// Fails on a document that nests deeper than [`MAX_NESTING`], does not
/// parse, names no operation when it has several, lacks the operation named,
/// spreads an unknown fragment or has a fragment cycle.
pub fn analyse(
    query: &str,
    operation_name: Option<&str>,
    variables: Option<&Map<String, Json>>,
) -> Result<Operation, Rejection> {
    check_nesting(query)?;
    let document = async_graphql_parser::parse_query(query)
        .map_err(|e| Rejection::refused("GRAPHQL_PARSE_FAILED", e.to_string()))?;
    let (name, operation) = select(&document, operation_name)?;
    let mut walker = Walker {
        fragments: &document.fragments,
        memo: HashMap::new(),
        variables: Variables {
            given: variables,
            definitions: operation,
        },
        level: 0,
    };
    let stats = walker.set(&operation.selection_set.node)?;
    Ok(Operation {
        kind: match operation.ty {
            OperationType::Query => OperationKind::Query,
            OperationType::Mutation => OperationKind::Mutation,
            OperationType::Subscription => OperationKind::Subscription,
        },
        name,
        depth: stats.depth,
        aliases: stats.aliases,
        root_fields: stats.fields,
        complexity: stats.complexity,
        introspection: stats.introspection,
    })
}

/// Refuses brackets nested deeper than [`MAX_NESTING`], outside strings and
/// comments, without recursing.
fn check_nesting(query: &str) -> Result<(), Rejection> {
    let bytes = query.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'#' => {
                while bytes.get(i).is_some_and(|&c| c != b'\n' && c != b'\r') {
                    i += 1;
                }
            }
            b'"' if bytes.get(i..i + 3) == Some(b"\"\"\"") => {
                i += 3;
                while i < bytes.len() && bytes.get(i..i + 3) != Some(b"\"\"\"") {
                    // `\"""` is an escaped delimiter inside a block string.
                    i += if bytes.get(i..i + 4) == Some(b"\\\"\"\"") {
                        4
                    } else {
                        1
                    };
                }
                i += 2;
            }
            b'"' => {
                i += 1;
                while let Some(&c) = bytes.get(i) {
                    match c {
                        b'\\' => i += 1,
                        b'"' | b'\n' | b'\r' => break,
                        _ => {}
                    }
                    i += 1;
                }
            }
            b'{' | b'[' | b'(' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(Rejection::refused(
                        "NESTING_LIMIT_EXCEEDED",
                        format!("the document nests brackets deeper than {MAX_NESTING}"),
                    ));
                }
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// The operation that runs: the one named, or the only one.
fn select<'d>(
    document: &'d ExecutableDocument,
    operation_name: Option<&str>,
) -> Result<(Option<String>, &'d OperationDefinition), Rejection> {
    match (&document.operations, operation_name) {
        (DocumentOperations::Single(op), None) => Ok((None, &op.node)),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => ops
            .iter()
            .next()
            .map(|(name, op)| (Some(name.to_string()), &op.node))
            .ok_or_else(|| Rejection::refused("OPERATION_NOT_FOUND", "no operation")),
        (DocumentOperations::Multiple(_), None) => Err(Rejection::refused(
            "OPERATION_NAME_REQUIRED",
            "the document has several operations; operationName must name one",
        )),
        (DocumentOperations::Single(_), Some(name)) => Err(not_found(name)),
        (DocumentOperations::Multiple(ops), Some(name)) => ops
            .get(name)
            .map(|op| (Some(name.to_owned()), &op.node))
            .ok_or_else(|| not_found(name)),
    }
}

fn not_found(name: &str) -> Rejection {
    Rejection::refused(
        "OPERATION_NOT_FOUND",
        format!("the document has no operation named {name}"),
    )
}

/// The measures of one selection set; `fields` counts the fields directly in
/// it (through fragments), which is the root-field count at the root.
#[derive(Debug, Clone, Copy, Default)]
struct Stats {
    depth: usize,
    aliases: u64,
    fields: u64,
    complexity: u64,
    introspection: bool,
}

impl Stats {
    fn add(&mut self, other: Stats) {
        self.depth = self.depth.max(other.depth);
        self.aliases = self.aliases.saturating_add(other.aliases);
        self.fields = self.fields.saturating_add(other.fields);
        self.complexity = self.complexity.saturating_add(other.complexity);
        self.introspection |= other.introspection;
    }
}

/// A fragment's measures, or `InProgress` while it is being measured: meeting
/// it again then means a cycle.
#[derive(Clone, Copy)]
enum Memo {
    InProgress,
    Done(Stats),
}

struct Variables<'d> {
    given: Option<&'d Map<String, Json>>,
    definitions: &'d OperationDefinition,
}

impl Variables<'_> {
    /// The integer a variable holds: as sent, else its default.
    fn integer(&self, name: &str) -> Option<u64> {
        if let Some(value) = self.given.and_then(|v| v.get(name)) {
            return value.as_u64();
        }
        let definition = self
            .definitions
            .variable_definitions
            .iter()
            .find(|d| d.node.name.node.as_str() == name)?;
        match &definition.node.default_value.as_ref()?.node {
            async_graphql_value::ConstValue::Number(n) => n.as_u64(),
            _ => None,
        }
    }
}

struct Walker<'d> {
    fragments: &'d HashMap<Name, Positioned<FragmentDefinition>>,
    memo: HashMap<&'d str, Memo>,
    variables: Variables<'d>,
    level: usize,
}

impl<'d> Walker<'d> {
    fn set(&mut self, set: &'d SelectionSet) -> Result<Stats, Rejection> {
        self.level += 1;
        if self.level > MAX_WALK {
            return Err(Rejection::refused(
                "NESTING_LIMIT_EXCEEDED",
                format!("fields and fragments nest deeper than {MAX_WALK}"),
            ));
        }
        let mut total = Stats::default();
        for item in &set.items {
            let stats = match &item.node {
                Selection::Field(field) => self.field(&field.node)?,
                Selection::InlineFragment(inline) => self.set(&inline.node.selection_set.node)?,
                Selection::FragmentSpread(spread) => {
                    self.fragment(spread.node.fragment_name.node.as_str())?
                }
            };
            total.add(stats);
        }
        self.level -= 1;
        Ok(total)
    }

    fn field(&mut self, field: &'d async_graphql_parser::types::Field) -> Result<Stats, Rejection> {
        let children = self.set(&field.selection_set.node)?;
        let list = ["first", "last", "limit"]
            .iter()
            .find_map(|arg| field.get_argument(arg))
            .and_then(|value| match &value.node {
                Value::Number(n) => n.as_u64(),
                Value::Variable(name) => self.variables.integer(name.as_str()),
                _ => None,
            })
            .unwrap_or(1)
            .max(1);
        let name = field.name.node.as_str();
        Ok(Stats {
            depth: children.depth.saturating_add(1),
            aliases: children
                .aliases
                .saturating_add(u64::from(field.alias.is_some())),
            fields: 1,
            complexity: list.saturating_mul(children.complexity).saturating_add(1),
            introspection: children.introspection || name == "__schema" || name == "__type",
        })
    }

    fn fragment(&mut self, name: &'d str) -> Result<Stats, Rejection> {
        match self.memo.get(name) {
            Some(Memo::Done(stats)) => return Ok(*stats),
            Some(Memo::InProgress) => {
                return Err(Rejection::refused(
                    "FRAGMENT_CYCLE",
                    format!("fragment {name} spreads itself"),
                ))
            }
            None => {}
        }
        let definition = self.fragments.get(name).ok_or_else(|| {
            Rejection::refused("UNKNOWN_FRAGMENT", format!("unknown fragment {name}"))
        })?;
        self.memo.insert(name, Memo::InProgress);
        let stats = self.set(&definition.node.selection_set.node)?;
        self.memo.insert(name, Memo::Done(stats));
        Ok(stats)
    }
}
