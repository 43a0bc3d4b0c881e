//! Taking a GraphQL-over-HTTP request apart: POST with a JSON body (one
//! request or a batched array), POST with an `application/graphql` body, and
//! GET with the parameters in the query string.

use serde_json::{Map, Value};

use super::{strict_json, RejectKind, Rejection};

/// One GraphQL request of an HTTP request (a batch carries several).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GraphqlRequest {
    /// The document; absent when only a persisted query hash was sent.
    pub query: Option<String>,
    pub operation_name: Option<String>,
    /// `variables`, needed to size list arguments given as variables.
    pub variables: Option<Map<String, Value>>,
    /// `extensions.persistedQuery.sha256Hash`, lowercased.
    pub persisted_hash: Option<String>,
}

/// The parts of an HTTP request that carry GraphQL.
#[derive(Debug, Clone, Copy)]
pub enum Transport<'a> {
    /// A GET (or HEAD) request and its query string.
    Get { query_string: &'a str },
    /// A POST request: its `Content-Type`, query string and whole body.
    Post {
        content_type: Option<&'a str>,
        query_string: Option<&'a str>,
        body: &'a [u8],
    },
}

/// The GraphQL requests of one HTTP request, in order; `batched` when the
/// body was a JSON array.
#[derive(Debug, Clone, PartialEq)]
pub struct Extracted {
    pub requests: Vec<GraphqlRequest>,
    pub batched: bool,
}

/// Reads the GraphQL requests out of an HTTP request.
///
/// Refuses, as malformed, a body that is not valid UTF-8 or JSON, JSON that
/// repeats a key in an object (see [`strict_json`]), an empty batch, and
/// parameters of the wrong JSON type; as unsupported, a POST whose media type
/// is neither `application/json` nor `application/graphql`.
pub fn extract(transport: Transport<'_>) -> Result<Extracted, Rejection> {
    match transport {
        Transport::Get { query_string } => Ok(Extracted {
            requests: vec![from_query_string(query_string)?],
            batched: false,
        }),
        Transport::Post {
            content_type,
            query_string,
            body,
        } => match media_type(content_type) {
            Some(Media::Json) => {
                // Some servers read these from the URL even on a POST, and
                // prefer them to the body's: the gateway would judge one
                // query and the upstream run another.
                if names_graphql_parameter(query_string.unwrap_or(""))? {
                    return Err(Rejection::malformed(
                        "send GraphQL parameters in the JSON body or the query string, not both",
                    ));
                }
                from_json(body)
            }
            Some(Media::Graphql) => {
                let text = std::str::from_utf8(body)
                    .map_err(|_| Rejection::malformed("the body is not valid UTF-8"))?;
                // Only the document is in the body; the other parameters, if
                // any, ride in the query string.
                let mut request = match query_string {
                    Some(q) => from_query_string(q)?,
                    None => GraphqlRequest::default(),
                };
                if request.query.is_some() {
                    return Err(Rejection::malformed(
                        "with an application/graphql body, the query string holds no query",
                    ));
                }
                request.query = Some(text.to_owned());
                Ok(Extracted {
                    requests: vec![request],
                    batched: false,
                })
            }
            None => Err(Rejection::new(
                RejectKind::UnsupportedMediaType,
                "UNSUPPORTED_MEDIA_TYPE",
                "send GraphQL as application/json or application/graphql",
            )),
        },
    }
}

enum Media {
    Json,
    Graphql,
}

fn media_type(content_type: Option<&str>) -> Option<Media> {
    let media = content_type?.split(';').next()?.trim();
    if media.eq_ignore_ascii_case("application/json")
        || media.eq_ignore_ascii_case("application/graphql-response+json")
    {
        Some(Media::Json)
    } else if media.eq_ignore_ascii_case("application/graphql") {
        Some(Media::Graphql)
    } else {
        None
    }
}

fn from_json(body: &[u8]) -> Result<Extracted, Rejection> {
    let value = strict_json::from_slice(body)
        .map_err(|e| Rejection::malformed(format!("the body is not valid JSON: {e}")))?;
    match value {
        Value::Object(object) => Ok(Extracted {
            requests: vec![from_object(object)?],
            batched: false,
        }),
        Value::Array(items) if items.is_empty() => Err(Rejection::malformed(
            "a batch must hold at least one request",
        )),
        Value::Array(items) => {
            let requests = items
                .into_iter()
                .map(|item| match item {
                    Value::Object(object) => from_object(object),
                    _ => Err(Rejection::malformed(
                        "each batch item must be a JSON object",
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Extracted {
                requests,
                batched: true,
            })
        }
        _ => Err(Rejection::malformed(
            "the body must be a JSON object or an array of them",
        )),
    }
}

fn from_object(mut object: Map<String, Value>) -> Result<GraphqlRequest, Rejection> {
    let query = optional_string(object.remove("query"), "query")?;
    let operation_name = optional_string(object.remove("operationName"), "operationName")?;
    let variables = optional_object(object.remove("variables"), "variables")?;
    let extensions = optional_object(object.remove("extensions"), "extensions")?;
    Ok(GraphqlRequest {
        query,
        operation_name,
        variables,
        persisted_hash: persisted_hash(extensions.as_ref())?,
    })
}

fn from_query_string(query_string: &str) -> Result<GraphqlRequest, Rejection> {
    let mut request = GraphqlRequest::default();
    let mut seen = [false; 4];
    for pair in query_string.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = form_decode(key)?;
        let slot = match key.as_str() {
            "query" => 0,
            "operationName" => 1,
            "variables" => 2,
            "extensions" => 3,
            _ => continue,
        };
        if std::mem::replace(&mut seen[slot], true) {
            return Err(Rejection::malformed(format!("parameter {key} is repeated")));
        }
        let value = form_decode(value)?;
        match slot {
            0 => request.query = Some(value),
            1 => request.operation_name = Some(value).filter(|v| !v.is_empty()),
            2 => request.variables = json_object_param(&value, "variables")?,
            _ => {
                let extensions = json_object_param(&value, "extensions")?;
                request.persisted_hash = persisted_hash(extensions.as_ref())?;
            }
        }
    }
    Ok(request)
}

/// Whether the query string names any GraphQL parameter, whatever its value.
fn names_graphql_parameter(query_string: &str) -> Result<bool, Rejection> {
    for pair in query_string.split('&').filter(|p| !p.is_empty()) {
        let key = form_decode(pair.split_once('=').map_or(pair, |(k, _)| k))?;
        if GRAPHQL_PARAMETERS.contains(&key.as_str()) {
            return Ok(true);
        }
    }
    Ok(false)
}

const GRAPHQL_PARAMETERS: [&str; 4] = ["query", "operationName", "variables", "extensions"];

fn json_object_param(text: &str, name: &str) -> Result<Option<Map<String, Value>>, Rejection> {
    if text.is_empty() {
        return Ok(None);
    }
    let value = strict_json::from_str(text)
        .map_err(|e| Rejection::malformed(format!("{name} is not valid JSON: {e}")))?;
    optional_object(Some(value), name)
}

fn optional_string(value: Option<Value>, name: &str) -> Result<Option<String>, Rejection> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Rejection::malformed(format!("{name} must be a string"))),
    }
}

fn optional_object(
    value: Option<Value>,
    name: &str,
) -> Result<Option<Map<String, Value>>, Rejection> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(_) => Err(Rejection::malformed(format!("{name} must be an object"))),
    }
}

fn persisted_hash(extensions: Option<&Map<String, Value>>) -> Result<Option<String>, Rejection> {
    let Some(persisted) = extensions.and_then(|e| e.get("persistedQuery")) else {
        return Ok(None);
    };
    match persisted.get("sha256Hash") {
        Some(Value::String(hash)) => Ok(Some(hash.to_ascii_lowercase())),
        _ => Err(Rejection::malformed(
            "extensions.persistedQuery.sha256Hash must be a string",
        )),
    }
}

/// Decodes one `application/x-www-form-urlencoded` component: `+` is a
/// space, `%XX` a byte; the result must be UTF-8.
fn form_decode(raw: &str) -> Result<String, Rejection> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| Rejection::malformed("bad percent-escape in query string"))?;
                out.push(hex);
                i += 2;
            }
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| Rejection::malformed("query string is not UTF-8"))
}
