//! OFREP (OpenFeature Remote Evaluation Protocol v0.3) and the wire contract between the edge
//! and the service worker, each defined once here and used by both:
//! - the request side: an evaluation request body `{"context": {...}}` read into a
//!   [`Context`] ([`parse_request`]), so an offline answer is computed for exactly the
//!   context the edge uses;
//! - the visitor context the edge evaluates a browsing visitor's flags for
//!   ([`Context::for_visitor`]);
//! - the bulk answer's ETag ([`bulk_etag`], read back by [`version_of_etag`]);
//! - the bootstrap payload in an HTML page ([`Bootstrap`]: the edge encodes it, the service
//!   worker and the page read it) and its script element ([`bootstrap_element`],
//!   [`Bootstrap::from_html`]);
//! - OFREP failure bodies ([`failure_body`]).

use serde_json::{Map, Value};

use crate::{Context, ErrorCode, EvalError, FlagSet};

/// Largest accepted OFREP request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Id of the `<script type="application/json">` element the edge puts first into `<head>`
/// of an HTML page, holding a [`Bootstrap`] payload.
pub const BOOTSTRAP_ELEMENT_ID: &str = "edgeflags-bootstrap";

impl Context {
    /// The context the edge evaluates for a visitor browsing through it, and the one a
    /// page's bootstrap was computed for: `{"targetingKey": key}`, or `{}` without a key.
    pub fn for_visitor(key: Option<&str>) -> Self {
        let mut map = Map::new();
        if let Some(key) = key {
            map.insert("targetingKey".into(), Value::String(key.to_owned()));
        }
        Self::from_map(map)
    }
}

/// A context's fingerprint as the contract writes it: 16 lowercase hex digits.
pub fn context_tag(ctx: &Context) -> String {
    format!("{:016x}", crate::context_fingerprint(ctx))
}

/// The opaque part of a bulk answer's ETag, `<flag-set version>-<context tag>`: what a
/// visitor's flags depend on (also part of a bootstrapped page's validator). The version
/// (16 hex digits at the edge) holds no `-`, so [`version_of_etag`] can read it back.
pub fn flags_tag(version: &str, ctx: &Context) -> String {
    format!("{version}-{}", context_tag(ctx))
}

/// The strong ETag of a bulk answer (and a bootstrap's `etag`): `"<flags tag>"`. It covers
/// the flag-set version *and* the evaluation context, so a changed context never gets a
/// stale 304 (the OFREP web provider keeps its ETag across context changes with the same
/// targetingKey).
pub fn bulk_etag(version: &str, ctx: &Context) -> String {
    format!("\"{}\"", flags_tag(version, ctx))
}

/// The flag-set version in an edge ETag: `"<version>"` (client flags) or
/// `"<version>-<context>"` (bulk answers, see [`bulk_etag`]), possibly weak.
pub fn version_of_etag(etag: &str) -> Option<String> {
    let bare = etag.trim().trim_start_matches("W/").trim_matches('"');
    let version = bare.split('-').next().unwrap_or(bare);
    (!version.is_empty()).then(|| version.to_owned())
}

/// The bootstrap payload: a visitor's bulk evaluation, as the edge puts it into an HTML
/// page, `{"flags": [...], "etag": "...", "targetingKey": "..." | null}` — `flags` the OFREP
/// bulk items for [`Context::for_visitor`] of `targetingKey`, `etag` their [`bulk_etag`].
/// The edge writes it with [`Bootstrap::encode`]; the service worker reads it with
/// [`Bootstrap::from_value`] (the page reads `flags` only).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Bootstrap {
    /// The OFREP bulk items.
    pub flags: Vec<Value>,
    /// The bulk ETag of these flags, when present.
    pub etag: Option<String>,
    /// The visitor's targetingKey, when they had one.
    pub targeting_key: Option<String>,
}

/// The encoder's view of the payload: borrowed evaluations, no copies.
#[derive(serde::Serialize)]
struct Encoded<'a> {
    flags: &'a [crate::Evaluation<'a>],
    etag: String,
    #[serde(rename = "targetingKey")]
    targeting_key: Option<&'a str>,
}

impl Bootstrap {
    /// The payload's JSON for a visitor (`visitor_key`): every flag of `set` evaluated for
    /// [`Context::for_visitor`], with the bulk ETag of `version` and that context. `None`
    /// only if serialization failed (it does not for values the core builds).
    pub fn encode(
        set: &FlagSet,
        version: &str,
        visitor_key: Option<&str>,
        now_unix_secs: u64,
    ) -> Option<String> {
        let ctx = Context::for_visitor(visitor_key);
        let bulk = set.evaluate_all(&ctx, now_unix_secs);
        serde_json::to_string(&Encoded {
            flags: &bulk.flags,
            etag: bulk_etag(version, &ctx),
            targeting_key: visitor_key,
        })
        .ok()
    }

    /// Reads a payload: `None` unless it is an object with a `flags` array; an `etag` or
    /// `targetingKey` that is missing, null or not a string reads as absent.
    pub fn from_value(payload: Value) -> Option<Self> {
        let Value::Object(mut map) = payload else {
            return None;
        };
        // `take`, not `remove`: no B-tree removal code in a wasm build.
        let Some(Value::Array(flags)) = map.get_mut("flags").map(Value::take) else {
            return None;
        };
        let mut string = |name: &str| match map.get_mut(name).map(Value::take) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        };
        Some(Self {
            flags,
            etag: string("etag"),
            targeting_key: string("targetingKey"),
        })
    }

    /// Reads the payload of the bootstrap element in an HTML document, as
    /// [`bootstrap_element`] wrote it.
    pub fn from_html(html: &str) -> Option<Self> {
        let at = html.find(&format!("id=\"{BOOTSTRAP_ELEMENT_ID}\""))?;
        let open_end = at + html.get(at..)?.find('>')? + 1;
        let close = open_end + html.get(open_end..)?.find("</script>")?;
        // The element's text is JSON as is: bootstrap_element escapes with JSON's \u escapes.
        Self::from_value(serde_json::from_str(html.get(open_end..close)?.trim()).ok()?)
    }

    /// The context the flags were evaluated for.
    pub fn context(&self) -> Context {
        Context::for_visitor(self.targeting_key.as_deref())
    }

    /// The flag-set version the flags come from, read out of the ETag.
    pub fn version(&self) -> Option<String> {
        self.etag.as_deref().and_then(version_of_etag)
    }
}

/// The script element carrying a bootstrap payload's `json`, escaped (JSON's `\u` escapes)
/// so no byte sequence in it can end the element or be read as markup; its text stays JSON.
pub fn bootstrap_element(json: &str) -> String {
    let mut out = String::with_capacity(json.len() + 80);
    out.push_str("<script id=\"");
    out.push_str(BOOTSTRAP_ELEMENT_ID);
    out.push_str("\" type=\"application/json\">");
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.push_str("</script>");
    out
}

/// An OFREP failure body, with the field names of OFREP's `service/openapi.yaml`: for one
/// flag (`key` given) `evaluationFailure` / `flagNotFound`, `{"key", "errorCode",
/// "errorDetails"}`; for a bulk request `bulkEvaluationFailure`, `{"errorCode",
/// "errorDetails"}`. `code` is an OpenFeature error code (the edge's own errors use this
/// shape with codes of their own). A failed [`Evaluation`](crate::Evaluation) and an
/// [`EvalError`] serialize to the same bodies.
pub fn failure_body(key: Option<&str>, code: &str, details: &str) -> Value {
    let mut body = Map::new();
    if let Some(key) = key {
        body.insert("key".into(), Value::String(key.to_owned()));
    }
    body.insert("errorCode".into(), Value::String(code.to_owned()));
    body.insert("errorDetails".into(), Value::String(details.to_owned()));
    Value::Object(body)
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

    const SET: &str = r#"{"flags": {
        "banner": {"state": "ENABLED", "variants": {"on": true, "off": false},
            "defaultVariant": "off",
            "targeting": {"if": [{"==": [{"var": "targetingKey"}, "u1"]}, "on"]}},
        "note": {"state": "ENABLED", "variants": {"x": "</script><b>&\u2028"},
            "defaultVariant": "x"},
        "off": {"state": "DISABLED", "variants": {"a": 1}, "defaultVariant": "a"}}}"#;

    fn set() -> FlagSet {
        FlagSet::from_json_str(SET, crate::LoadOptions::default())
            .unwrap()
            .set
    }

    #[test]
    fn the_visitor_context_holds_the_targeting_key_only() {
        let cases: &[(Option<&str>, &str)] = &[
            (Some("u1"), r#"{"targetingKey":"u1"}"#),
            (Some(""), r#"{"targetingKey":""}"#),
            (None, "{}"),
        ];
        for (key, json) in cases {
            let ctx = Context::for_visitor(*key);
            assert_eq!(ctx, Context::from_json_str(json).unwrap(), "{key:?}");
            assert_eq!(ctx.targeting_key(), *key);
        }
    }

    #[test]
    fn bulk_etags_cover_version_and_context_and_give_the_version_back() {
        let a = Context::from_json_str(r#"{"targetingKey":"u","plan":"free"}"#).unwrap();
        let b = Context::from_json_str(r#"{"targetingKey":"u","plan":"pro"}"#).unwrap();
        let a2 = Context::from_json_str(r#"{"plan":"free","targetingKey":"u"}"#).unwrap();
        assert_ne!(bulk_etag("v1", &a), bulk_etag("v2", &a));
        assert_ne!(bulk_etag("v1", &a), bulk_etag("v1", &b));
        assert_eq!(bulk_etag("v1", &a), bulk_etag("v1", &a2), "key order");
        // Pinned: ETags handed out before a release must still match after it.
        let u1 = Context::for_visitor(Some("u1"));
        assert_eq!(bulk_etag("0123abcd", &u1), "\"0123abcd-3157baa823e1d8c2\"");
        for etag in [
            bulk_etag("0123abcd", &u1),
            format!("W/{}", bulk_etag("0123abcd", &u1)),
            "\"0123abcd\"".to_owned(),
        ] {
            assert_eq!(
                version_of_etag(&etag).as_deref(),
                Some("0123abcd"),
                "{etag}"
            );
        }
        assert_eq!(version_of_etag("\"\""), None);
    }

    #[test]
    fn the_bootstrap_has_the_documented_shape() {
        // README "Bootstrap": {"flags":[...],"etag":"...","targetingKey":"..."}; the page
        // (pwa/app/app.js) reads `flags`, the service worker all three.
        let json = Bootstrap::encode(&set(), "0123abcd", Some("u1"), 0).unwrap();
        let want = serde_json::json!({
            "flags": [
                {"key": "banner", "value": true, "variant": "on", "reason": "TARGETING_MATCH",
                    "metadata": {}},
                {"key": "note", "value": "</script><b>&\u{2028}", "variant": "x",
                    "reason": "STATIC", "metadata": {}},
                {"key": "off", "reason": "DISABLED", "metadata": {}},
            ],
            "etag": "\"0123abcd-3157baa823e1d8c2\"",
            "targetingKey": "u1",
        });
        assert_eq!(serde_json::from_str::<Value>(&json).unwrap(), want);
        let anonymous = Bootstrap::encode(&set(), "0123abcd", None, 0).unwrap();
        let anonymous: Value = serde_json::from_str(&anonymous).unwrap();
        assert_eq!(anonymous["targetingKey"], Value::Null);
        assert_eq!(anonymous["flags"][0]["variant"], "off");
    }

    #[test]
    fn what_the_edge_encodes_the_service_worker_decodes() {
        let set = set();
        for key in [Some("u1"), Some("u-2 \"</script>\""), Some(""), None] {
            let json = Bootstrap::encode(&set, "0123abcd", key, 7).unwrap();
            let page = format!(
                "<!doctype html><html><head>{}<title>t</title></head></html>",
                bootstrap_element(&json)
            );
            let read = Bootstrap::from_html(&page).unwrap();
            let ctx = Context::for_visitor(key);
            let evaluated = serde_json::to_value(set.evaluate_all(&ctx, 7)).unwrap();
            assert_eq!(
                Value::Array(read.flags.clone()),
                evaluated["flags"],
                "{key:?}"
            );
            assert_eq!(read.targeting_key.as_deref(), key);
            assert_eq!(read.etag, Some(bulk_etag("0123abcd", &ctx)));
            assert_eq!(read.version().as_deref(), Some("0123abcd"));
            assert_eq!(read.context(), ctx);
            // The same payload posted by the page as text (register.js) reads the same.
            let posted = Bootstrap::from_value(serde_json::from_str(&json).unwrap());
            assert_eq!(posted.as_ref(), Some(&read));
        }
    }

    #[test]
    fn bootstrap_payloads_are_read_leniently_but_need_flags() {
        // (payload, Some((items, etag, targetingKey)) or None when unreadable)
        type Read<'a> = Option<(usize, Option<&'a str>, Option<&'a str>)>;
        let cases: &[(&str, Read<'_>)] = &[
            (r#"{"flags":[]}"#, Some((0, None, None))),
            (
                r#"{"flags":[{"key":"a"}],"etag":"\"v-1\"","targetingKey":"k"}"#,
                Some((1, Some("\"v-1\""), Some("k"))),
            ),
            (
                r#"{"flags":[],"etag":5,"targetingKey":null}"#,
                Some((0, None, None)),
            ),
            (r#"{"flags":{}}"#, None),
            (r#"{"etag":"\"v\""}"#, None),
            ("[]", None),
            ("null", None),
        ];
        for (json, want) in cases {
            let got = Bootstrap::from_value(serde_json::from_str(json).unwrap());
            let got = got
                .as_ref()
                .map(|b| (b.flags.len(), b.etag.as_deref(), b.targeting_key.as_deref()));
            assert_eq!(got, *want, "{json}");
        }
    }

    #[test]
    fn the_bootstrap_element_cannot_be_broken_out_of_and_is_found_again() {
        let json = r#"{"flags":[],"v":"</script><img src=x onerror=alert(1)> & \u2028"}"#;
        let el = bootstrap_element(json);
        assert!(el.starts_with(r#"<script id="edgeflags-bootstrap" type="application/json">"#));
        let inner = &el[el.find('>').unwrap() + 1..el.len() - "</script>".len()];
        assert!(
            !inner.contains(['<', '>', '&', '\u{2028}', '\u{2029}']),
            "{inner}"
        );
        assert_eq!(
            serde_json::from_str::<Value>(inner).unwrap(),
            serde_json::from_str::<Value>(json).unwrap()
        );
        for html in [
            "<html><head></head></html>",
            r#"<script id="edgeflags-bootstrap">{"#,
            r#"<script id="edgeflags-bootstrap">{"flags":[]"#,
            r#"<script id="edgeflags-bootstrap">"#,
            r#"<script id="edgeflags-bootstrap""#,
        ] {
            assert_eq!(Bootstrap::from_html(html), None, "{html}");
        }
    }

    #[test]
    fn failure_bodies_have_ofreps_field_names_and_match_the_serialized_results() {
        // service/openapi.yaml: evaluationFailure / flagNotFound {key, errorCode,
        // errorDetails} (key and errorCode required); bulkEvaluationFailure {errorCode,
        // errorDetails} (errorCode required).
        let cases: &[(Option<&str>, ErrorCode, &str)] = &[
            (
                Some("f"),
                ErrorCode::FlagNotFound,
                r#"{"key":"f","errorCode":"FLAG_NOT_FOUND","errorDetails":"d"}"#,
            ),
            (
                Some("f"),
                ErrorCode::ParseError,
                r#"{"key":"f","errorCode":"PARSE_ERROR","errorDetails":"d"}"#,
            ),
            (
                None,
                ErrorCode::InvalidContext,
                r#"{"errorCode":"INVALID_CONTEXT","errorDetails":"d"}"#,
            ),
        ];
        for (key, code, want) in cases {
            let body = failure_body(*key, code.as_str(), "d");
            assert_eq!(body, serde_json::from_str::<Value>(want).unwrap());
            let err = EvalError::new(*code, "d");
            let serialized = match key {
                Some(k) => {
                    let meta = Map::new();
                    let eval = crate::Evaluation {
                        key: (*k).into(),
                        value: None,
                        variant: None,
                        reason: crate::Reason::Error,
                        error: Some(err),
                        metadata: &meta,
                    };
                    serde_json::to_value(&eval).unwrap()
                }
                None => serde_json::to_value(&err).unwrap(),
            };
            assert_eq!(serialized, body, "{want}");
        }
        // A flag the set does not hold fails with the same body through the evaluator.
        let set = set();
        let eval = set.evaluate("nope", &Context::empty(), 0);
        let err = eval.error.clone().unwrap();
        assert_eq!(
            serde_json::to_value(&eval).unwrap(),
            failure_body(Some("nope"), "FLAG_NOT_FOUND", &err.details)
        );
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
