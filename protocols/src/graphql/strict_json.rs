//! JSON read as the gateway and every upstream must agree on it: an object
//! that names a key twice is refused.
//!
//! Parsers disagree on which of two equal keys counts (serde_json and most
//! JavaScript engines keep the last, others keep the first or merge). The
//! gateway judges the body it parsed and forwards the bytes unchanged, so a
//! body such as `{"query": "<introspection>", "query": "{ me }"}` would be
//! judged as `{ me }` and could run as the first query upstream. Refusing
//! such bodies leaves no reading to disagree on.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

/// A JSON value in which no object repeats a key, at any depth.
#[derive(Debug, Clone, PartialEq)]
pub struct Unambiguous(pub Value);

impl<'de> Deserialize<'de> for Unambiguous {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Unambiguous)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // Not finite cannot come out of JSON text; `Null` keeps the type total.
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        // No capacity from the size hint: it is the client's to choose.
        let mut items = Vec::new();
        while let Some(Unambiguous(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let Unambiguous(value) = map.next_value()?;
            if object.contains_key(&key) {
                return Err(de::Error::custom(format_args!("key {key:?} is repeated")));
            }
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// Parses `bytes` as JSON, refusing any object that repeats a key.
pub fn from_slice(bytes: &[u8]) -> serde_json::Result<Value> {
    serde_json::from_slice::<Unambiguous>(bytes).map(|Unambiguous(v)| v)
}

/// Like [`from_slice`], for text.
pub fn from_str(text: &str) -> serde_json::Result<Value> {
    from_slice(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_key_is_refused_at_any_depth() {
        for text in [
            r#"{"query":"a","query":"b"}"#,
            r#"[{"query":"a"},{"x":1,"x":1}]"#,
            r#"{"extensions":{"persistedQuery":{"sha256Hash":"a","sha256Hash":"b"}}}"#,
            r#"{"variables":{"v":[{"k":1,"k":2}]}}"#,
        ] {
            let err = from_str(text).unwrap_err().to_string();
            assert!(err.contains("is repeated"), "{text}: {err}");
        }
    }

    #[test]
    fn distinct_keys_parse_as_serde_json_would() {
        let text =
            r#"{"q":"x","n":[1,-2,3.5,null,true],"o":{"a":{"b":"c"}},"big":18446744073709551615}"#;
        assert_eq!(
            from_str(text).unwrap(),
            serde_json::from_str::<Value>(text).unwrap()
        );
    }

    #[test]
    fn deep_nesting_still_meets_serde_jsons_recursion_limit() {
        let deep = "[".repeat(100_000) + &"]".repeat(100_000);
        assert!(from_str(&deep).is_err());
    }

    proptest::proptest! {
        #[test]
        fn it_agrees_with_serde_json_but_for_repeated_keys(
            text in "[\\[\\]{}\",:0-9a-c \\\\]{0,200}",
        ) {
            match (from_str(&text), serde_json::from_str::<Value>(&text)) {
                (Ok(strict), Ok(loose)) => proptest::prop_assert_eq!(strict, loose),
                (Err(e), Ok(_)) => proptest::prop_assert!(e.to_string().contains("repeated")),
                (Ok(_), Err(e)) => proptest::prop_assert!(false, "only strict parsed: {}", e),
                (Err(_), Err(_)) => {}
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic_it(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
        ) {
            let _ = from_slice(&bytes);
        }
    }
}
