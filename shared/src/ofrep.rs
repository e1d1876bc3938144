//! The request side of OFREP (OpenFeature Remote Evaluation Protocol v0.3): an evaluation
//! request body `{"context": {...}}` read into a [`Context`]. One parser for the edge and the
//! service worker, so an offline answer is computed for exactly the context the edge uses.

use serde_json::{Map, Value};

use crate::{Context, ErrorCode, EvalError};

/// Largest accepted OFREP request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

// The wire contract between the edge and the service worker, defined once.

/// Id of the `<script type="application/json">` element the edge puts first into `<head>`
/// of an HTML page: `{"flags": [...], "etag": "...", "targetingKey": "..."}`.
pub const BOOTSTRAP_ELEMENT_ID: &str = "edgeflags-bootstrap";

/// The opaque part of a bulk answer's ETag, `<flag-set version>-<context fingerprint>`: what a
/// visitor's flags depend on (also part of a bootstrapped page's validator).
pub fn flags_tag(version: &str, ctx: &Context) -> String {
    format!("{version}-{:016x}", crate::context_fingerprint(ctx))
}

/// The flag-set version in an edge ETag: `"<version>"` (client flags) or
/// `"<version>-<context>"` (bulk answers, see [`flags_tag`]), possibly weak.
pub fn version_of_etag(etag: &str) -> Option<String> {
    let bare = etag.trim().trim_start_matches("W/").trim_matches('"');
    let version = bare.split('-').next().unwrap_or(bare);
    (!version.is_empty()).then(|| version.to_owned())
}

/// Parses an OFREP request body into the evaluation context, adding `visitor_key` (the
/// caller's identity source: the edge's visitor cookie, the worker's stored visitor) as
/// `targetingKey` when the context has none.
///
/// An empty body means an empty context. Malformed JSON is `PARSE_ERROR`; a body or context
/// that is not an object, a non-string `targetingKey` or an oversized body is
/// `INVALID_CONTEXT` (both answer 400).
pub fn parse_request(body: &str, visitor_key: Option<&str>) -> Result<Context, EvalError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(EvalError::new(
            ErrorCode::InvalidContext,
            format!("request body exceeds {MAX_BODY_BYTES} bytes"),
        ));
    }
    let mut context = if body.bytes().all(|b| b.is_ascii_whitespace()) {
        Map::new()
    } else {
        let doc: Value = serde_json::from_str(body).map_err(|e| {
            EvalError::new(
                ErrorCode::ParseError,
                format!("request body is not valid JSON: {e}"),
            )
        })?;
        let Value::Object(mut root) = doc else {
            return Err(EvalError::new(
                ErrorCode::InvalidContext,
                "request body must be a JSON object",
            ));
        };
        // `take`, not `remove`: no B-tree removal code in a wasm build for one field.
        match root.get_mut("context").map(Value::take) {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(map)) => map,
            Some(_) => {
                return Err(EvalError::new(
                    ErrorCode::InvalidContext,
                    "context must be a JSON object",
                ))
            }
        }
    };
    if let Some(tk) = context.get("targetingKey") {
        if !tk.is_string() {
            return Err(EvalError::new(
                ErrorCode::InvalidContext,
                "targetingKey must be a string",
            ));
        }
    } else if let Some(key) = visitor_key {
        context.insert("targetingKey".into(), Value::String(key.to_owned()));
    }
    Ok(Context::from_map(context))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_bodies_map_to_contexts_or_ofrep_errors() {
        let cases: &[(&str, Result<&str, ErrorCode>)] = &[
            ("", Ok("{}")),
            ("  \n", Ok("{}")),
            (r#"{}"#, Ok("{}")),
            (r#"{"context":null}"#, Ok("{}")),
            (
                r#"{"context":{"targetingKey":"u1","plan":"pro"}}"#,
                Ok(r#"{"plan":"pro","targetingKey":"u1"}"#),
            ),
            (r#"{"context":{},"other":1}"#, Ok("{}")),
            ("{nope", Err(ErrorCode::ParseError)),
            ("[1]", Err(ErrorCode::InvalidContext)),
            ("\"x\"", Err(ErrorCode::InvalidContext)),
            (r#"{"context":"x"}"#, Err(ErrorCode::InvalidContext)),
            (r#"{"context":[1]}"#, Err(ErrorCode::InvalidContext)),
            (
                r#"{"context":{"targetingKey":5}}"#,
                Err(ErrorCode::InvalidContext),
            ),
        ];
        for (body, want) in cases {
            match (parse_request(body, None), want) {
                (Ok(ctx), Ok(json)) => assert_eq!(
                    ctx.as_value(),
                    &serde_json::from_str::<Value>(json).unwrap(),
                    "{body}"
                ),
                (Err(e), Err(code)) => assert_eq!(&e.code, code, "{body}: {e:?}"),
                (got, want) => panic!("{body}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn the_visitor_key_fills_a_missing_targeting_key_only() {
        let ctx = parse_request(r#"{"context":{"plan":"pro"}}"#, Some("visitor-1")).unwrap();
        assert_eq!(ctx.targeting_key(), Some("visitor-1"));
        let ctx =
            parse_request(r#"{"context":{"targetingKey":"own"}}"#, Some("visitor-1")).unwrap();
        assert_eq!(ctx.targeting_key(), Some("own"));
        let ctx = parse_request("", Some("visitor-1")).unwrap();
        assert_eq!(ctx.targeting_key(), Some("visitor-1"));
    }

    #[test]
    fn oversized_bodies_are_refused() {
        let body = " ".repeat(MAX_BODY_BYTES + 1);
        assert_eq!(
            parse_request(&body, None).unwrap_err().code,
            ErrorCode::InvalidContext
        );
    }
}
