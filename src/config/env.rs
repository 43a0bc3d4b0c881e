//! `${VAR}` expansion in the string scalars of a parsed YAML document.
//!
//! References may appear anywhere in a string value, several per string, and
//! `$${` writes a literal `${`. Substituted text is not scanned again. Mapping
//! keys are never expanded, so a variable cannot add or rename a key. When a
//! whole scalar is one reference, the substituted text is read again as a YAML
//! scalar so `port: ${PORT}` can become a number; text that would read as a map,
//! a list or a tagged value stays a string, so a variable cannot inject
//! structure.

use serde_norway::Value;

use super::{index_path, key_path, ConfigError};

/// Expands every string scalar under `value`, whose key path is `path`.
///
/// Each unset variable or malformed reference adds one error; the scalar then
/// keeps whatever could be expanded.
pub(crate) fn expand_tree(
    value: &mut Value,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<ConfigError>,
) {
    match value {
        Value::String(text) => {
            if let Some(expanded) = expand_scalar(text, path, env, errors) {
                *value = expanded;
            }
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_tree(item, &index_path(path, i), env, errors);
            }
        }
        Value::Mapping(map) => {
            for (key, item) in map.iter_mut() {
                expand_tree(item, &key_path(path, &key_text(key)), env, errors);
            }
        }
        Value::Tagged(tagged) => expand_tree(&mut tagged.value, path, env, errors),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// How a mapping key reads in a key path.
pub(crate) fn key_text(key: &Value) -> String {
    match key {
        Value::String(text) => text.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => "null".into(),
        Value::Sequence(_) | Value::Mapping(_) | Value::Tagged(_) => "(complex key)".into(),
    }
}

/// The new value of a string scalar, or `None` when it has no `$` to expand.
fn expand_scalar(
    text: &str,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<ConfigError>,
) -> Option<Value> {
    if !text.contains('$') {
        return None;
    }
    let (expanded, problems) = substitute(text, env);
    for problem in problems {
        errors.push(problem.into_error(path));
    }
    if whole_reference(text) {
        return Some(reparse_scalar(expanded));
    }
    Some(Value::String(expanded))
}

/// A reference that could not be expanded.
#[derive(Debug, PartialEq, Eq)]
enum Problem {
    Unset(String),
    BadName(String),
    Unterminated,
}

impl Problem {
    fn into_error(self, path: &str) -> ConfigError {
        match self {
            Problem::Unset(name) => ConfigError::new(
                path,
                format!("environment variable {name} is not set"),
                format!("export {name} or remove the reference"),
            ),
            Problem::BadName(name) => ConfigError::new(
                path,
                format!("invalid environment variable name {name:?} in ${{...}}"),
                "use letters, digits and _ in the name, not starting with a digit, \
                 or write $${ for a literal ${",
            ),
            Problem::Unterminated => ConfigError::new(
                path,
                "unterminated ${ reference",
                "close the reference with } or write $${ for a literal ${",
            ),
        }
    }
}

/// Replaces the references in `text`, returning the result and the problems.
fn substitute(text: &str, env: &dyn Fn(&str) -> Option<String>) -> (String, Vec<Problem>) {
    let mut out = String::with_capacity(text.len());
    let mut problems = Vec::new();
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let from_dollar = &rest[dollar..];
        if let Some(after) = from_dollar.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = from_dollar.strip_prefix("${") {
            let Some(end) = after.find('}') else {
                problems.push(Problem::Unterminated);
                out.push_str(from_dollar);
                rest = "";
                break;
            };
            let name = &after[..end];
            if !valid_name(name) {
                problems.push(Problem::BadName(name.to_owned()));
            } else if let Some(found) = env(name) {
                out.push_str(&found);
            } else {
                problems.push(Problem::Unset(name.to_owned()));
            }
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &from_dollar[1..];
        }
    }
    out.push_str(rest);
    (out, problems)
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether `text` is exactly one `${NAME}` reference.
fn whole_reference(text: &str) -> bool {
    text.strip_prefix("${")
        .and_then(|rest| rest.strip_suffix('}'))
        .is_some_and(valid_name)
}

/// Reads substituted text as a YAML scalar: a number, a bool or null, else a string.
fn reparse_scalar(text: String) -> Value {
    if text.trim().is_empty() {
        return Value::String(text);
    }
    match serde_norway::from_str::<Value>(&text) {
        Ok(scalar @ (Value::Null | Value::Bool(_) | Value::Number(_))) => scalar,
        _ => Value::String(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "PORT" => Some("8080".into()),
            "HOST" => Some("10.0.0.7".into()),
            "FLAG" => Some("true".into()),
            "MAP" => Some("{a: 1}".into()),
            "LIST" => Some("[1, 2]".into()),
            "TAG" => Some("!prefix /x".into()),
            "EMPTY" => Some(String::new()),
            "NESTED" => Some("${PORT}".into()),
            _ => None,
        }
    }

    fn expand(text: &str) -> (Value, Vec<ConfigError>) {
        let mut value = Value::String(text.into());
        let mut errors = Vec::new();
        expand_tree(&mut value, "server.pid_file", &env, &mut errors);
        (value, errors)
    }

    fn string(text: &str) -> Value {
        Value::String(text.into())
    }

    #[test]
    fn a_whole_reference_to_a_number_becomes_a_number() {
        assert_eq!(expand("${PORT}").0, Value::Number(8080.into()));
    }

    #[test]
    fn a_whole_reference_to_a_bool_becomes_a_bool() {
        assert_eq!(expand("${FLAG}").0, Value::Bool(true));
    }

    #[test]
    fn references_embedded_in_text_are_all_replaced() {
        assert_eq!(expand("${HOST}:${PORT}/x").0, string("10.0.0.7:8080/x"));
    }

    #[test]
    fn a_doubled_dollar_writes_a_literal_reference() {
        let (value, errors) = expand("cost $${PORT} and $5 $$x");
        assert_eq!(value, string("cost ${PORT} and $5 $$x"));
        assert!(errors.is_empty());
    }

    #[test]
    fn an_unset_variable_names_the_key_path_and_the_variable() {
        let (_, errors) = expand("${HOST}:${NOPE}");
        assert_eq!(
            errors,
            [ConfigError::new(
                "server.pid_file",
                "environment variable NOPE is not set",
                "export NOPE or remove the reference",
            )]
        );
    }

    #[test]
    fn several_unset_variables_in_one_string_are_each_reported() {
        let (_, errors) = expand("${A}${B}");
        let messages: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "environment variable A is not set",
                "environment variable B is not set"
            ]
        );
    }

    #[test]
    fn values_that_read_as_structure_stay_strings() {
        assert_eq!(expand("${MAP}").0, string("{a: 1}"));
        assert_eq!(expand("${LIST}").0, string("[1, 2]"));
        assert_eq!(expand("${TAG}").0, string("!prefix /x"));
    }

    #[test]
    fn an_empty_variable_stays_an_empty_string() {
        assert_eq!(expand("${EMPTY}").0, string(""));
    }

    #[test]
    fn substituted_text_is_not_expanded_again() {
        assert_eq!(expand("${NESTED}").0, string("${PORT}"));
    }

    #[test]
    fn an_unterminated_reference_is_an_error() {
        let (_, errors) = expand("x${PORT");
        assert_eq!(errors[0].path, "server.pid_file");
        assert!(errors[0].message.contains("unterminated ${"));
    }

    #[test]
    fn a_default_value_syntax_is_rejected_as_a_bad_name() {
        let (_, errors) = expand("${PORT:-80}");
        assert!(errors[0]
            .message
            .contains("invalid environment variable name \"PORT:-80\""));
    }

    #[test]
    fn strings_nested_in_lists_and_maps_are_expanded_with_their_paths() {
        let mut value: Value =
            serde_norway::from_str("listeners:\n  - address: '0.0.0.0:${PORT}'\n  - x: ${NO}\n")
                .expect("valid yaml");
        let mut errors = Vec::new();
        expand_tree(&mut value, "", &env, &mut errors);
        assert_eq!(value["listeners"][0]["address"], string("0.0.0.0:8080"));
        assert_eq!(errors[0].path, "listeners[1].x");
    }
}
