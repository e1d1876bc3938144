//! The evaluation context (OFREP's `context` object) and its stable fingerprint.

use std::hash::Hasher;

use serde_json::{Map, Value};

use crate::error::{ErrorCode, EvalError};
use crate::keyindex::sort_by_str_key;

/// Deepest nesting accepted in a context. serde_json refuses deeper documents when it
/// parses text (its recursion limit is 128); a context built in code is held to the same
/// bound so that nothing downstream can recurse without limit.
pub(crate) const MAX_CONTEXT_DEPTH: usize = 128;

/// The evaluation context: a JSON object, usually with a `targetingKey`.
///
/// Held as a `Value::Object` so that targeting can hand out borrowed references to the
/// whole context (`{"var": ""}`) as well as to its parts, without copying.
#[derive(Debug, Clone, PartialEq)]
pub struct Context {
    value: Value,
    /// `targetingKey`, copied out once: `fractional` reads it on every evaluation.
    targeting_key: Option<Box<str>>,
}

impl Default for Context {
    fn default() -> Self {
        Self::empty()
    }
}

impl Context {
    /// An empty context (`{}`).
    pub fn empty() -> Self {
        Self::wrap(Value::Object(Map::new()))
    }

    /// `value` must be an object.
    fn wrap(value: Value) -> Self {
        let targeting_key = match &value {
            Value::Object(map) => crate::keyindex::get_field(map, "targetingKey")
                .and_then(Value::as_str)
                .map(Box::from),
            _ => None,
        };
        Self {
            value,
            targeting_key,
        }
    }

    /// Wraps a JSON value; anything but an object is `INVALID_CONTEXT`, and so is an
    /// object nested deeper than 128 levels.
    pub fn from_value(value: Value) -> Result<Self, EvalError> {
        if !value.is_object() {
            return Err(EvalError::new(
                ErrorCode::InvalidContext,
                format!(
                    "the evaluation context must be a JSON object, not {}",
                    kind_name(&value)
                ),
            ));
        }
        if crate::load::json_size(&value).1 > MAX_CONTEXT_DEPTH {
            return Err(EvalError::new(
                ErrorCode::InvalidContext,
                format!("the evaluation context is nested deeper than {MAX_CONTEXT_DEPTH} levels"),
            ));
        }
        Ok(Self::wrap(value))
    }

    /// Parses a context from JSON text. Malformed JSON and non-objects are
    /// `INVALID_CONTEXT`.
    pub fn from_json_str(text: &str) -> Result<Self, EvalError> {
        let value: Value = serde_json::from_str(text).map_err(|e| {
            EvalError::new(
                ErrorCode::InvalidContext,
                format!("the evaluation context is not valid JSON: {e}"),
            )
        })?;
        Self::from_value(value)
    }

    /// Wraps a JSON object. Every evaluation path bounds its own recursion, so even an
    /// object nested deeper than [`Context::from_value`] accepts is handled safely.
    pub fn from_map(map: Map<String, Value>) -> Self {
        Self::wrap(Value::Object(map))
    }

    /// The context's `targetingKey`, when it is a string.
    pub fn targeting_key(&self) -> Option<&str> {
        self.targeting_key.as_deref()
    }

    /// The context's properties.
    pub fn as_map(&self) -> &Map<String, Value> {
        match &self.value {
            Value::Object(map) => map,
            // Unreachable by construction; an empty map keeps this total without a panic.
            _ => empty_map(),
        }
    }

    /// The context as a JSON value (always an object).
    pub fn as_value(&self) -> &Value {
        &self.value
    }
}

fn empty_map() -> &'static Map<String, Value> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(Map::new)
}

pub(crate) fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A stable 64-bit fingerprint of the context, for ETags and cache keys.
///
/// It hashes the canonical JSON of the context (object keys sorted, no whitespace,
/// serde_json's number formatting) with MurmurHash3 x64-128, keeping the first half.
/// Equal contexts give equal fingerprints on every platform and in every release built
/// from this code, whatever the key order of the input or serde_json's `preserve_order`
/// feature. It is not a cryptographic hash.
pub fn context_fingerprint(ctx: &Context) -> u64 {
    let mut hasher = mur3::Hasher128::with_seed(0);
    canonical(&ctx.value, &mut hasher, 0);
    hasher.finish128().0
}

fn canonical(v: &Value, h: &mut mur3::Hasher128, depth: usize) {
    // A context built with `from_map` may be arbitrarily deep; hash a marker instead of
    // recursing further so a hostile context cannot overflow the stack.
    if depth > MAX_CONTEXT_DEPTH {
        h.write(b"\x00deep");
        return;
    }
    match v {
        Value::Null => h.write(b"null"),
        Value::Bool(true) => h.write(b"true"),
        Value::Bool(false) => h.write(b"false"),
        Value::Number(n) => h.write(n.to_string().as_bytes()),
        Value::String(s) => write_json_string(s, h),
        Value::Array(items) => {
            h.write(b"[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    h.write(b",");
                }
                canonical(item, h, depth + 1);
            }
            h.write(b"]");
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            sort_by_str_key(&mut keys, |k| k);
            h.write(b"{");
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    h.write(b",");
                }
                write_json_string(key, h);
                h.write(b":");
                if let Some(item) = map.get(key) {
                    canonical(item, h, depth + 1);
                }
            }
            h.write(b"}");
        }
    }
}

fn write_json_string(s: &str, h: &mut mur3::Hasher128) {
    // serde_json's escaping of a plain string cannot fail; an empty fallback keeps this
    // total without an unwrap.
    let quoted = serde_json::to_string(s).unwrap_or_default();
    h.write(quoted.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn non_objects_are_invalid_context() {
        for v in [json!(null), json!(1), json!("x"), json!([1]), json!(true)] {
            let err = Context::from_value(v).err().map(|e| e.code);
            assert_eq!(err, Some(ErrorCode::InvalidContext));
        }
    }

    #[test]
    fn malformed_json_text_is_invalid_context() {
        let err = Context::from_json_str("{").err().map(|e| e.code);
        assert_eq!(err, Some(ErrorCode::InvalidContext));
    }

    #[test]
    fn targeting_key_is_read_only_when_it_is_a_string() {
        let ctx = Context::from_value(json!({"targetingKey": "u1"})).unwrap();
        assert_eq!(ctx.targeting_key(), Some("u1"));
        let ctx = Context::from_value(json!({"targetingKey": 1})).unwrap();
        assert_eq!(ctx.targeting_key(), None);
    }

    #[test]
    fn fingerprint_ignores_key_order_and_whitespace() {
        let a = Context::from_json_str(r#"{"a":1,"b":{"x":[1,2],"y":"z"}}"#).unwrap();
        let b = Context::from_json_str(r#"{ "b": {"y":"z", "x":[1, 2]}, "a": 1 }"#).unwrap();
        assert_eq!(context_fingerprint(&a), context_fingerprint(&b));
    }

    #[test]
    fn fingerprint_differs_when_any_value_differs() {
        let a = Context::from_json_str(r#"{"targetingKey":"u1","plan":"pro"}"#).unwrap();
        let b = Context::from_json_str(r#"{"targetingKey":"u1","plan":"free"}"#).unwrap();
        let c = Context::from_json_str(r#"{"targetingKey":"u1","plan":["pro"]}"#).unwrap();
        assert_ne!(context_fingerprint(&a), context_fingerprint(&b));
        assert_ne!(context_fingerprint(&a), context_fingerprint(&c));
    }

    const PINNED: u64 = 0x3157_baa8_23e1_d8c2;

    #[test]
    fn fingerprint_is_pinned_so_etags_survive_releases() {
        // If this changes, every ETag handed out before changes too: bump deliberately.
        let ctx = Context::from_json_str(r#"{"targetingKey":"u1"}"#).unwrap();
        assert_eq!(
            context_fingerprint(&ctx),
            PINNED,
            "{:#x}",
            context_fingerprint(&ctx)
        );
    }

    #[test]
    fn deep_contexts_are_refused_by_from_value_but_fingerprinted_safely_from_a_map() {
        let mut v = json!(1);
        for _ in 0..200 {
            v = json!([v]);
        }
        let mut map = Map::new();
        map.insert("deep".into(), v.clone());
        assert!(Context::from_value(Value::Object(map.clone())).is_err());
        let ctx = Context::from_map(map);
        let _ = context_fingerprint(&ctx);
    }
}
