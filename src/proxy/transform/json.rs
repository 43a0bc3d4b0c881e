//! JSON body rewriting: fields removed, renamed and added by dot-separated
//! paths, on a body held in memory up to a cap.
//!
//! Paths go through objects only; a path meeting an array or a scalar
//! changes nothing. A body that is not a JSON object, or not valid JSON,
//! is passed on untouched.

use bytes::{Bytes, BytesMut};
use http::HeaderValue;
use serde_json::{Map, Value};

use crate::config::schema::{JsonBodySpec, Oversize};
use crate::config::ConfigError;

/// A compiled `json_body` section.
#[derive(Debug)]
pub struct JsonRewrite {
    remove: Vec<Vec<String>>,
    rename: Vec<(Vec<String>, Vec<String>)>,
    add: Vec<(Vec<String>, Value)>,
    pub max_bytes: u64,
    pub oversize: Oversize,
}

fn field_path(at: String, text: &str, errors: &mut Vec<ConfigError>) -> Option<Vec<String>> {
    let parts: Vec<String> = text.split('.').map(str::to_owned).collect();
    if parts.iter().any(String::is_empty) {
        errors.push(ConfigError::new(
            at,
            format!("{text:?} is not a field path"),
            "write object keys joined by dots, like user.password",
        ));
        return None;
    }
    Some(parts)
}

impl JsonRewrite {
    pub fn build(path: &str, spec: &JsonBodySpec, errors: &mut Vec<ConfigError>) -> JsonRewrite {
        let mut out = JsonRewrite {
            remove: Vec::new(),
            rename: Vec::new(),
            add: Vec::new(),
            max_bytes: spec.max_bytes.0,
            oversize: spec.oversize,
        };
        for (i, p) in spec.remove.iter().enumerate() {
            out.remove
                .extend(field_path(format!("{path}.remove[{i}]"), p, errors));
        }
        for (from, to) in &spec.rename {
            let at = format!("{path}.rename.{from}");
            if let (Some(f), Some(t)) = (
                field_path(at.clone(), from, errors),
                field_path(at, to, errors),
            ) {
                out.rename.push((f, t));
            }
        }
        for (p, value) in &spec.add {
            if let Some(p) = field_path(format!("{path}.add.{p}"), p, errors) {
                out.add.push((p, value.clone()));
            }
        }
        if spec.max_bytes.0 == 0 {
            errors.push(ConfigError::new(
                format!("{path}.max_bytes"),
                "a cap of 0 bytes rewrites no body",
                "set a size such as 64KiB or 1MiB, or leave it out for 1MiB",
            ));
        }
        out
    }

    /// The rewritten body, or `None` when it is not a JSON object.
    pub fn rewrite(&self, body: &[u8]) -> Option<Bytes> {
        let mut value: Value = serde_json::from_slice(body).ok()?;
        let root = value.as_object_mut()?;
        for path in &self.remove {
            take(root, path);
        }
        for (from, to) in &self.rename {
            if let Some(moved) = take(root, from) {
                put(root, to, moved);
            }
        }
        for (path, added) in &self.add {
            put(root, path, added.clone());
        }
        serde_json::to_vec(&value).ok().map(Bytes::from)
    }
}

/// Removes the field at `path` and returns it.
fn take(root: &mut Map<String, Value>, path: &[String]) -> Option<Value> {
    let (last, parents) = path.split_last()?;
    let mut here = root;
    for key in parents {
        here = here.get_mut(key)?.as_object_mut()?;
    }
    here.remove(last)
}

/// Sets the field at `path`, creating missing parent objects; a parent
/// that exists but is not an object leaves the body as it is.
fn put(root: &mut Map<String, Value>, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut here = root;
    for key in parents {
        let next = here
            .entry(key.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        let Some(object) = next.as_object_mut() else {
            return;
        };
        here = object;
    }
    here.insert(last.clone(), value);
}

/// Whether a `Content-Type` names JSON: `application/json` or a `+json`
/// type, parameters aside.
pub fn is_json(content_type: Option<&HeaderValue>) -> bool {
    let Some(text) = content_type.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let media = text
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    media == "application/json" || (media.starts_with("application/") && media.ends_with("+json"))
}

/// The body of one message in the hands of the rewrite.
#[derive(Debug, Default)]
pub struct BodyBuffer {
    held: BytesMut,
    /// Past the cap with `oversize: pass`: the rest goes on untouched.
    passing: bool,
}

/// What to send on for one piece of body.
#[derive(Debug, PartialEq)]
pub enum Step {
    /// Keep it back; nothing goes on yet.
    Hold,
    /// Send these bytes on.
    Send(Bytes),
    /// Past the cap with `oversize: reject`.
    Reject,
}

impl BodyBuffer {
    /// Takes the next piece of body (`end` set with the last) and says
    /// what to send on. The held bytes never pass `max_bytes` plus one
    /// piece.
    pub fn push(&mut self, rewrite: &JsonRewrite, chunk: Option<Bytes>, end: bool) -> Step {
        if self.passing {
            return Step::Send(chunk.unwrap_or_default());
        }
        if let Some(chunk) = chunk {
            self.held.extend_from_slice(&chunk);
        }
        if self.held.len() as u64 > rewrite.max_bytes {
            return match rewrite.oversize {
                Oversize::Pass => {
                    self.passing = true;
                    Step::Send(self.held.split().freeze())
                }
                Oversize::Reject => Step::Reject,
            };
        }
        if !end {
            return Step::Hold;
        }
        let body = self.held.split().freeze();
        match rewrite.rewrite(&body) {
            Some(rewritten) => Step::Send(rewritten),
            None => Step::Send(body),
        }
    }
}

/// The bodies of one exchange being rewritten, when their route and type
/// call for it.
#[derive(Debug, Default)]
pub struct Bodies {
    pub request: Option<BodyBuffer>,
    pub response: Option<BodyBuffer>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::schema::Size;
    use serde_json::json;

    fn rewrite(spec: Value) -> JsonRewrite {
        let spec: JsonBodySpec = serde_json::from_value(spec).unwrap();
        let mut errors = Vec::new();
        let out = JsonRewrite::build("b", &spec, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        out
    }

    fn apply(rw: &JsonRewrite, body: Value) -> Value {
        serde_json::from_slice(&rw.rewrite(body.to_string().as_bytes()).unwrap()).unwrap()
    }

    #[test]
    fn fields_are_removed_renamed_and_added_by_path() {
        let rw = rewrite(json!({
            "remove": ["user.password"],
            "rename": {"user.name": "user.login", "id": "meta.id"},
            "add": {"source": "portico", "meta.version": 2},
        }));
        let out = apply(
            &rw,
            json!({"id": 7, "user": {"name": "ann", "password": "x"}}),
        );
        assert_eq!(
            out,
            json!({"user": {"login": "ann"}, "meta": {"id": 7, "version": 2}, "source": "portico"})
        );
    }

    #[test]
    fn a_path_through_a_scalar_or_array_changes_nothing() {
        let rw = rewrite(json!({"remove": ["a.b"], "add": {"list.x": 1}}));
        let body = json!({"a": 5, "list": [1, 2]});
        assert_eq!(apply(&rw, body.clone()), body);
    }

    #[test]
    fn a_body_that_is_not_a_json_object_is_left_alone() {
        let rw = rewrite(json!({"add": {"x": 1}}));
        assert_eq!(rw.rewrite(b"[1,2]"), None);
        assert_eq!(rw.rewrite(b"{not json"), None);
    }

    #[test]
    fn an_empty_segment_in_a_path_is_a_config_error() {
        let spec: JsonBodySpec = serde_json::from_value(json!({"remove": ["a..b"]})).unwrap();
        let mut errors = Vec::new();
        JsonRewrite::build("r.json_body", &spec, &mut errors);
        assert_eq!(errors[0].path, "r.json_body.remove[0]");
    }

    #[test]
    fn the_buffer_holds_until_the_end_and_then_sends_the_rewrite() {
        let rw = rewrite(json!({"add": {"x": 1}}));
        let mut buf = BodyBuffer::default();
        assert_eq!(
            buf.push(&rw, Some(Bytes::from_static(b"{\"a\"")), false),
            Step::Hold
        );
        let Step::Send(out) = buf.push(&rw, Some(Bytes::from_static(b":1}")), true) else {
            panic!("nothing sent at the end");
        };
        assert_eq!(
            serde_json::from_slice::<Value>(&out).unwrap(),
            json!({"a": 1, "x": 1})
        );
    }

    #[test]
    fn past_the_cap_a_body_passes_untouched_or_is_rejected() {
        let mut rw = rewrite(json!({"add": {"x": 1}, "max_bytes": 4}));
        assert_eq!(rw.max_bytes, Size(4).0);
        let mut buf = BodyBuffer::default();
        assert_eq!(
            buf.push(&rw, Some(Bytes::from_static(b"{\"a\"")), false),
            Step::Hold
        );
        assert_eq!(
            buf.push(&rw, Some(Bytes::from_static(b":")), false),
            Step::Send(Bytes::from_static(b"{\"a\":"))
        );
        assert_eq!(
            buf.push(&rw, Some(Bytes::from_static(b"1}")), true),
            Step::Send(Bytes::from_static(b"1}"))
        );
        rw.oversize = Oversize::Reject;
        let mut buf = BodyBuffer::default();
        assert_eq!(
            buf.push(&rw, Some(Bytes::from_static(b"{\"a\":1}")), true),
            Step::Reject
        );
    }

    #[test]
    fn json_types_are_recognised_with_parameters() {
        let v = |s: &'static str| HeaderValue::from_static(s);
        assert!(is_json(Some(&v("application/json; charset=utf-8"))));
        assert!(is_json(Some(&v("application/problem+json"))));
        assert!(!is_json(Some(&v("text/plain"))));
        assert!(!is_json(None));
    }
}
