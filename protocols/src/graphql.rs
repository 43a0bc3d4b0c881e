//! GraphQL requests: parsing, operation selection and the limits a gateway enforces.
//!
//! A gateway cannot run a schema, so everything here is what can be known from
//! the document alone: which operation runs, its type and name, how deep and
//! wide it is once fragments are expanded, whether it asks for introspection,
//! and whether its text is on an allow-list. [`request`] takes the HTTP
//! request apart (POST JSON, `application/graphql`, GET, batched arrays),
//! [`analysis`] measures one document, and [`limits`] judges a whole request
//! (a batch is judged as one). Every refusal is a [`Rejection`], rendered as a
//! GraphQL error response by [`Rejection::to_json`].

pub mod analysis;
pub mod limits;
pub mod request;
pub mod strict_json;

#[cfg(test)]
mod tests;

pub use analysis::{analyse, Operation, OperationKind};
pub use limits::{inspect, sha256_hex, Inspected, Limits};
pub use request::{extract, Extracted, GraphqlRequest, Transport};

/// How a refusal is answered over HTTP: the GraphQL-over-HTTP spec gives
/// fixed statuses to some causes, and lets the response media type decide
/// the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectKind {
    /// Not a well-formed GraphQL-over-HTTP request (bad JSON, no query):
    /// 400 whatever the client accepts.
    Malformed,
    /// A body media type that carries no GraphQL request: 415.
    UnsupportedMediaType,
    /// An operation other than a query over GET: 405.
    MethodNotAllowed,
    /// The body is over the route's cap: 413.
    TooLarge,
    /// A well-formed request whose document does not parse or breaks a
    /// limit: 400 for `application/graphql-response+json` clients, 200 for
    /// `application/json` ones (the spec's rule for legacy clients, who read
    /// the `errors` array rather than the status).
    Refused,
}

/// Why a GraphQL request is refused: a kind for the status, a stable code
/// for `extensions.code`, and a message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub kind: RejectKind,
    pub code: &'static str,
    pub message: String,
}

impl Rejection {
    pub fn new(kind: RejectKind, code: &'static str, message: impl Into<String>) -> Rejection {
        Rejection {
            kind,
            code,
            message: message.into(),
        }
    }

    pub(crate) fn malformed(message: impl Into<String>) -> Rejection {
        Rejection::new(RejectKind::Malformed, "BAD_REQUEST", message)
    }

    pub(crate) fn refused(code: &'static str, message: impl Into<String>) -> Rejection {
        Rejection::new(RejectKind::Refused, code, message)
    }

    /// The status for this refusal; `graphql_response_json` says whether
    /// the client accepts `application/graphql-response+json`.
    pub fn status(&self, graphql_response_json: bool) -> u16 {
        match self.kind {
            RejectKind::Malformed => 400,
            RejectKind::UnsupportedMediaType => 415,
            RejectKind::MethodNotAllowed => 405,
            RejectKind::TooLarge => 413,
            RejectKind::Refused if graphql_response_json => 400,
            RejectKind::Refused => 200,
        }
    }

    /// The GraphQL error response: `{"errors":[{"message", "extensions":
    /// {"code"}}]}`.
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "errors": [{
                "message": self.message,
                "extensions": { "code": self.code },
            }]
        })
        .to_string()
    }
}

/// Whether an `Accept` field asks for `application/graphql-response+json`,
/// the media type whose errors carry 4xx statuses.
pub fn accepts_graphql_response_json(accept: &str) -> bool {
    accept.split(',').any(|item| {
        let media = item.split(';').next().unwrap_or("").trim();
        media.eq_ignore_ascii_case("application/graphql-response+json")
    })
}
