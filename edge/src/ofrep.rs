//! OFREP (OpenFeature Remote Evaluation Protocol v0.3) at the edge: request parsing, the
//! effective evaluation context, bulk ETags, and response status/bodies.

use edgeflags_core::{context_fingerprint, Context, ErrorCode, EvalError};
use serde_json::{Map, Value};

/// Largest accepted OFREP request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Parses an OFREP request body `{"context": {...}}` into the evaluation context, adding the
/// visitor's targetingKey from the edge's identity source when the body has none.
///
/// An empty body means an empty context. Malformed JSON is `PARSE_ERROR`; a body or context
/// that is not an object is `INVALID_CONTEXT` (both 400).
pub fn parse_request(body: &[u8], visitor_key: Option<&str>) -> Result<Context, EvalError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(EvalError::new(
            ErrorCode::InvalidContext,
            format!("request body exceeds {MAX_BODY_BYTES} bytes"),
        ));
    }
    let mut context = if body.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        let doc: Value = serde_json::from_slice(body).map_err(|e| {
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
        match root.remove("context") {
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

/// Strong ETag of a bulk answer: it covers the flag-set version *and* the evaluation context,
/// so a changed context never gets a stale 304 (the OFREP web provider keeps its ETag across
/// context changes with the same targetingKey).
pub fn bulk_etag(version: &str, ctx: &Context) -> String {
    format!("\"{version}-{:016x}\"", context_fingerprint(ctx))
}

/// Whether an `If-None-Match` header matches `etag` (weak comparison, RFC 9110 §13.1.2).
pub fn if_none_match(header: Option<&str>, etag: &str) -> bool {
    let Some(h) = header else { return false };
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    let want = bare(etag);
    h.split(',').any(|t| t.trim() == "*" || bare(t) == want)
}

/// The body of an OFREP error answer (used for errors that happen before evaluation).
pub fn error_body(err: &EvalError) -> Value {
    serde_json::json!({ "errorCode": err.code.as_str(), "errorDetails": err.details })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_bodies_map_to_contexts_or_ofrep_errors() {
        let cases: &[(&str, Result<&str, ErrorCode>)] = &[
            ("", Ok("{}")),
            ("  ", Ok("{}")),
            (r#"{}"#, Ok("{}")),
            (r#"{"context":null}"#, Ok("{}")),
            (
                r#"{"context":{"targetingKey":"u1","plan":"pro"}}"#,
                Ok(r#"{"plan":"pro","targetingKey":"u1"}"#),
            ),
            ("{nope", Err(ErrorCode::ParseError)),
            ("[1]", Err(ErrorCode::InvalidContext)),
            (r#"{"context":"x"}"#, Err(ErrorCode::InvalidContext)),
            (
                r#"{"context":{"targetingKey":5}}"#,
                Err(ErrorCode::InvalidContext),
            ),
        ];
        for (body, want) in cases {
            let got = parse_request(body.as_bytes(), None);
            match (got, want) {
                (Ok(ctx), Ok(json)) => {
                    assert_eq!(
                        ctx.as_value(),
                        &serde_json::from_str::<Value>(json).unwrap(),
                        "{body}"
                    )
                }
                (Err(e), Err(code)) => assert_eq!(&e.code, code, "{body}: {e:?}"),
                (got, want) => panic!("{body}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn the_visitor_key_fills_a_missing_targeting_key_only() {
        let ctx = parse_request(br#"{"context":{"plan":"pro"}}"#, Some("visitor-1")).unwrap();
        assert_eq!(ctx.targeting_key(), Some("visitor-1"));
        let ctx =
            parse_request(br#"{"context":{"targetingKey":"own"}}"#, Some("visitor-1")).unwrap();
        assert_eq!(ctx.targeting_key(), Some("own"));
    }

    #[test]
    fn oversized_bodies_are_refused() {
        let body = vec![b' '; MAX_BODY_BYTES + 1];
        assert_eq!(
            parse_request(&body, None).unwrap_err().code,
            ErrorCode::InvalidContext
        );
    }

    #[test]
    fn etag_changes_with_version_and_with_context() {
        let a = Context::from_json_str(r#"{"targetingKey":"u","plan":"free"}"#).unwrap();
        let b = Context::from_json_str(r#"{"targetingKey":"u","plan":"pro"}"#).unwrap();
        let a2 = Context::from_json_str(r#"{"plan":"free","targetingKey":"u"}"#).unwrap();
        assert_ne!(bulk_etag("v1", &a), bulk_etag("v2", &a));
        assert_ne!(bulk_etag("v1", &a), bulk_etag("v1", &b));
        assert_eq!(
            bulk_etag("v1", &a),
            bulk_etag("v1", &a2),
            "key order does not matter"
        );
    }

    #[test]
    fn if_none_match_uses_weak_comparison_and_lists() {
        let etag = "\"abc-1\"";
        assert!(if_none_match(Some("\"abc-1\""), etag));
        assert!(if_none_match(Some("W/\"abc-1\""), etag));
        assert!(if_none_match(Some("\"x\", \"abc-1\""), etag));
        assert!(if_none_match(Some("*"), etag));
        assert!(!if_none_match(Some("\"abc-2\""), etag));
        assert!(!if_none_match(None, etag));
    }
}
