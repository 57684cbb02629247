//! Checks a delivery body in one pass and reads its `action`, without building a document.
//!
//! The check must reject exactly what parsing into `serde_json::Value` rejects (numbers out
//! of range, lone surrogate escapes, nesting past serde_json's limit), because the writer
//! parses the payload that way later, after the sender already got 200. serde's
//! `IgnoredAny` skips values too leniently for that, so every value here goes through
//! `deserialize_any`, which parses it in full but keeps nothing.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// Kind of a syntactically valid body.
#[derive(Debug, PartialEq)]
pub enum Body {
    /// A JSON object, with the value of its last `action` key if it has one.
    Object { action: Option<Value> },
    /// Valid JSON that is not an object.
    NotObject,
}

/// Parses `bytes` in full and returns the body's kind, with its `action` if it is an object.
pub fn check(bytes: &[u8]) -> Result<Body, serde_json::Error> {
    // A JSON text is an object exactly when its first byte after whitespace is `{`.
    let first = bytes.iter().find(|byte| !matches!(byte, b' ' | b'\n' | b'\r' | b'\t'));
    if first == Some(&b'{') {
        serde_json::from_slice::<Body>(bytes)
    } else {
        serde_json::from_slice::<Checked>(bytes).map(|_| Body::NotObject)
    }
}

impl<'de> Deserialize<'de> for Body {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Body, D::Error> {
        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// Reads an object's keys, keeping the value of `action` and checking the others.
struct ObjectVisitor;

impl<'de> Visitor<'de> for ObjectVisitor {
    type Value = Body;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Body, A::Error> {
        let mut action = None;
        while let Some(key) = map.next_key::<String>()? {
            // A repeated key counts once more, so the last `action` wins, as in `Value`.
            if key == "action" {
                action = Some(map.next_value::<Value>()?);
            } else {
                map.next_value::<Checked>()?;
            }
        }
        Ok(Body::Object { action })
    }
}

/// Any JSON value, parsed in full and then dropped.
struct Checked;

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Checked, D::Error> {
        deserializer.deserialize_any(CheckedVisitor)
    }
}

struct CheckedVisitor;

impl<'de> Visitor<'de> for CheckedVisitor {
    type Value = Checked;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        while map.next_entry::<Checked, Checked>()?.is_some() {}
        Ok(Checked)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_str<E>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_unit<E>(self) -> Result<Checked, E> {
        Ok(Checked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_rejected_like_value(text: &str) {
        let by_value = serde_json::from_str::<Value>(text).is_err();
        assert_eq!(check(text.as_bytes()).is_err(), by_value, "{text}");
    }

    #[test]
    fn reads_last_action() {
        let body = check(br#"{"action": "ping", "payload": {"a": [1, null]}, "action": "job_created"}"#).expect("valid");
        assert_eq!(body, Body::Object { action: Some(Value::from("job_created")) });
    }

    #[test]
    fn null_action_is_present() {
        assert_eq!(check(br#"{"action": null}"#).expect("valid"), Body::Object { action: Some(Value::Null) });
        assert_eq!(check(br#"{"payload": {}}"#).expect("valid"), Body::Object { action: None });
    }

    #[test]
    fn other_values_are_not_objects() {
        assert_eq!(check(br#"["ping"]"#).expect("valid"), Body::NotObject);
        assert_eq!(check(b"null").expect("valid"), Body::NotObject);
        assert_eq!(check(b" 12 ").expect("valid"), Body::NotObject);
    }

    #[test]
    fn rejects_what_value_rejects() {
        let deep = format!("{{\"action\": \"ping\", \"x\": {}{}}}", "[".repeat(200), "]".repeat(200));
        let cases = [
            r#"{"action": "ping", "n": 1e400}"#,
            r#"{"action": "ping", "n": -1e400}"#,
            r#"{"action": "ping", "s": "\ud800"}"#,
            r#"{"action": "ping", "s": "\udc00"}"#,
            r#"{"action": "ping", "s": "\ud83d\ude00"}"#,
            r#"{"action": "ping",}"#,
            r#"{"action": "ping"} x"#,
            deep.as_str(),
        ];
        for text in cases {
            assert_rejected_like_value(text);
        }
    }
}
