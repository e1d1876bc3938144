//! Reading JSON objects by hand. The worker parses every document (configuration, stored
//! records, messages) into `serde_json::Value` and reads fields through [`Obj`], instead of
//! deriving `Deserialize` per type: derived deserializers are instantiated per type and made
//! up a large share of the wasm (`flags`' evaluator already needs `Value`).

use serde_json::{Map, Value};

/// A JSON object being read, with its path for error messages (`routes[2].match`).
#[derive(Debug, Clone, Copy)]
pub struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: &'a str,
}

/// Why a document could not be read: `<path>: <problem>`.
pub type ReadError = String;

impl<'a> Obj<'a> {
    /// `value` as an object.
    pub fn new(value: &'a Value, path: &'a str) -> Result<Self, ReadError> {
        match value {
            Value::Object(map) => Ok(Self { map, path }),
            _ => Err(format!("{}: expected an object", shown(path))),
        }
    }

    /// Refuses fields not in `known` (with the `config-checks` feature; without it, as in the
    /// shipped worker, whose configuration the build has checked, this accepts anything).
    pub fn only(&self, known: &[&str]) -> Result<(), ReadError> {
        if !cfg!(feature = "config-checks") {
            return Ok(());
        }
        match self.map.keys().find(|k| !known.contains(&k.as_str())) {
            Some(k) => Err(format!(
                "{}: unknown field `{k}`, expected one of {}",
                shown(self.path),
                known.join(", ")
            )),
            None => Ok(()),
        }
    }

    fn field(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn wrong(&self, key: &str, what: &str) -> ReadError {
        format!("{}.{key}: expected {what}", shown(self.path))
    }

    /// An optional string field.
    pub fn str(&self, key: &str) -> Result<Option<&'a str>, ReadError> {
        match self.field(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.wrong(key, "a string")),
        }
    }

    /// A required string field.
    pub fn req_str(&self, key: &str) -> Result<&'a str, ReadError> {
        self.str(key)?
            .ok_or_else(|| format!("{}: missing field `{key}`", shown(self.path)))
    }

    /// An optional non-negative integer field.
    pub fn u64(&self, key: &str) -> Result<Option<u64>, ReadError> {
        match self.field(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| self.wrong(key, "a non-negative integer")),
        }
    }

    /// An optional number field.
    pub fn f64(&self, key: &str) -> Result<Option<f64>, ReadError> {
        match self.field(key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.wrong(key, "a number")),
        }
    }

    /// An optional boolean field.
    pub fn bool(&self, key: &str) -> Result<Option<bool>, ReadError> {
        match self.field(key) {
            None => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| self.wrong(key, "true or false")),
        }
    }

    /// An optional array field.
    pub fn arr(&self, key: &str) -> Result<Option<&'a Vec<Value>>, ReadError> {
        match self.field(key) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(_) => Err(self.wrong(key, "an array")),
        }
    }

    /// An optional array of strings.
    pub fn strings(&self, key: &str) -> Result<Option<Vec<String>>, ReadError> {
        let Some(items) = self.arr(key)? else {
            return Ok(None);
        };
        items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or_else(|| self.wrong(key, "an array of strings"))
    }

    /// An optional raw field (any JSON).
    pub fn value(&self, key: &str) -> Option<&'a Value> {
        self.field(key)
    }
}

/// The path as shown in messages (`(root)` for the document itself).
fn shown(path: &str) -> &str {
    if path.is_empty() {
        "(root)"
    } else {
        path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_are_type_checked_and_unknown_ones_refused_with_their_path() {
        let v = json!({"a": "x", "n": 3, "f": 1.5, "b": true, "l": ["p", "q"], "z": null});
        let o = Obj::new(&v, "cfg").unwrap();
        assert_eq!(o.str("a"), Ok(Some("x")));
        assert_eq!(o.str("z"), Ok(None), "null is absent");
        assert_eq!(o.u64("n"), Ok(Some(3)));
        assert_eq!(o.f64("f"), Ok(Some(1.5)));
        assert_eq!(o.bool("b"), Ok(Some(true)));
        assert_eq!(o.strings("l"), Ok(Some(vec!["p".into(), "q".into()])));
        assert_eq!(o.str("n").unwrap_err(), "cfg.n: expected a string");
        assert_eq!(
            o.u64("f").unwrap_err(),
            "cfg.f: expected a non-negative integer"
        );
        assert_eq!(
            o.req_str("missing").unwrap_err(),
            "cfg: missing field `missing`"
        );
        assert!(o.only(&["a", "n", "f", "b", "l", "z"]).is_ok());
        assert!(o
            .only(&["a"])
            .unwrap_err()
            .starts_with("cfg: unknown field"));
        assert_eq!(
            Obj::new(&json!([1]), "").unwrap_err(),
            "(root): expected an object"
        );
    }
}
