//! The core built without its `diagnostics` feature, as the service worker builds it: bad
//! documents are refused exactly as before, good ones evaluate the same, and a lenient load
//! isolates broken flags the same way; only the messages, paths and warnings are gone. `scripts/test.sh` runs it with
//! `cargo test -p edgeflags-core --no-default-features --test without_diagnostics`; in a
//! default build this file is empty. (That the worker's answers equal the edge's, which keeps
//! the feature, is tested end to end in tests/e2e/pwa.test.mjs.)
#![cfg(not(feature = "diagnostics"))]

use edgeflags_core::{Context, Diagnostic, FlagSet, LoadOptions, Reason};

fn load(doc: &str) -> Result<edgeflags_core::Loaded, edgeflags_core::LoadError> {
    FlagSet::from_json_str(doc, LoadOptions::default())
}

#[test]
fn documents_that_cannot_be_evaluated_are_still_refused_with_one_fixed_message() {
    for bad in [
        r#"{"flags": 1}"#,
        r#"{"flags": {"a": {"state": "ENABLED", "variants": {"on": true}, "defaultVariant": "off"}}}"#,
        r#"{"flags": {"a": {"state": "ENABLED", "variants": {"on": true}, "defaultVariant": "on",
            "targeting": {"$ref": "missing"}}}}"#,
        r#"[]"#,
    ] {
        let err = load(bad).expect_err(bad);
        assert_eq!(err.diagnostics[0], Diagnostic::without_details(), "{bad}");
        assert!(err.warnings.is_empty());
    }
}

#[test]
fn schema_deviations_load_without_warnings_and_evaluate_as_with_them() {
    // An empty defaultVariant and mixed variant types: warnings in a default build.
    let doc = r#"{"flags": {
        "mixed": {"state": "ENABLED", "variants": {"a": "x", "b": 1}, "defaultVariant": "",
                  "targeting": {"if": [{"ends_with": [{"var": "email"}, "@example.com"]}, "b"]}},
        "split": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
                  "targeting": {"fractional": [["on", 50], ["off", 50]]}}}}"#;
    let loaded = load(doc).expect("usable");
    assert!(loaded.warnings.is_empty());
    let ctx = Context::from_json_str(r#"{"targetingKey": "user-1", "email": "a@example.com"}"#)
        .expect("context");
    let eval = loaded.set.evaluate("mixed", &ctx, 0);
    assert_eq!(eval.variant, Some("b"));
    assert_eq!(eval.reason, Reason::TargetingMatch);
    let eval = loaded.set.evaluate("split", &ctx, 0);
    assert_eq!(eval.reason, Reason::TargetingMatch);
}

#[test]
fn a_lenient_load_keeps_healthy_flags_and_answers_parse_error_for_broken_ones() {
    let doc = r#"{"flags": {
        "ok": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
               "targeting": {"fractional": [["on", 1]]}},
        "ref": {"state": "ENABLED", "variants": {"on": true}, "defaultVariant": "on",
                "targeting": {"$ref": "missing"}},
        "op": {"state": "ENABLED", "variants": {"on": true}, "defaultVariant": "on",
               "targeting": {"nope": [1]}}}}"#;
    assert!(load(doc).is_err(), "the default load still refuses it");
    let set = FlagSet::from_json_str(doc, LoadOptions::lenient())
        .expect("usable")
        .set;
    let ctx = Context::from_json_str(r#"{"targetingKey": "user-1"}"#).expect("context");
    let eval = set.evaluate("ok", &ctx, 0);
    assert_eq!(eval.variant, Some("on"));
    for key in ["ref", "op"] {
        let eval = set.evaluate(key, &ctx, 0);
        assert_eq!(eval.reason, Reason::Error, "{key}");
        let err = eval.error.expect("an error");
        assert_eq!(err.code, edgeflags_core::ErrorCode::ParseError, "{key}");
        // The fixed message: this build keeps no details (validate with the CLI or the edge).
        assert_eq!(err.details, Diagnostic::without_details().message, "{key}");
    }
    // The broken flags are listed, without details.
    let broken: Vec<(&str, usize)> = set.flag_errors().map(|(k, e)| (k, e.len())).collect();
    assert_eq!(broken, [("op", 0), ("ref", 0)]);
}

#[test]
fn the_evaluation_and_compiled_size_budgets_hold_without_diagnostics() {
    // A doubling accumulator: GENERAL, as in the edge's build.
    let items: Vec<String> = (0..100).map(|i| i.to_string()).collect();
    let doc = format!(
        r#"{{"flags": {{"grow": {{"state": "ENABLED", "variants": {{"a": "a"}}, "defaultVariant": "a",
            "targeting": {{"reduce": [[{}], {{"cat": [{{"var": "accumulator"}}, {{"var": "accumulator"}}]}}, "x"]}}}}}}}}"#,
        items.join(",")
    );
    let set = load(&doc).expect("loads").set;
    let eval = set.evaluate("grow", &Context::empty(), 0);
    let error = eval.error.expect("over the byte budget");
    assert_eq!(error.code, edgeflags_core::ErrorCode::General);
    assert!(
        error.details.contains("1048576 bytes built"),
        "{}",
        error.details
    );
    // A $ref fan-out past the set's compiled size: refused, or broken flags when lenient.
    let eight = |name: &str| {
        format!(
            r#"{{"or": [{}]}}"#,
            vec![format!(r#"{{"$ref": "{name}"}}"#); 8].join(",")
        )
    };
    let flags: Vec<String> = (0..10)
        .map(|i| {
            format!(
                r#""f{i}": {{"state": "ENABLED", "variants": {{"a": 1}}, "defaultVariant": "a",
                "targeting": {{"and": [{}]}}}}"#,
                [r#"{"$ref": "e4"}"#; 5].join(",")
            )
        })
        .collect();
    let doc = format!(
        r#"{{"flags": {{{}}}, "$evaluators": {{"e0": {{"==": [{{"var": "a"}}, 1]}},
            "e1": {}, "e2": {}, "e3": {}, "e4": {}}}}}"#,
        flags.join(","),
        eight("e0"),
        eight("e1"),
        eight("e2"),
        eight("e3")
    );
    assert!(load(&doc).is_err());
    let set = FlagSet::from_json_str(&doc, LoadOptions::lenient())
        .expect("loads leniently")
        .set;
    let broken: Vec<&str> = set.flag_errors().map(|(k, _)| k).collect();
    assert_eq!(broken, ["f3", "f4", "f5", "f6", "f7", "f8", "f9"]);
}
