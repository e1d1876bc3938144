//! Loading, validation and evaluation of flag sets, and the OFREP bodies they produce.

// A failed precondition in a test helper is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use edgeflags_core::{
    context_fingerprint, BulkEvaluation, Context, Diagnostic, ErrorCode, FlagSet, LoadError,
    LoadOptions, Reason,
};
use serde_json::{json, Value};

fn load(doc: Value) -> FlagSet {
    FlagSet::from_value(&doc, LoadOptions::default())
        .unwrap_or_else(|e| panic!("{e}"))
        .set
}

fn refuse(doc: Value) -> LoadError {
    match FlagSet::from_value(&doc, LoadOptions::default()) {
        Ok(_) => panic!("expected the set to be refused"),
        Err(e) => e,
    }
}

fn warnings(doc: Value) -> Vec<Diagnostic> {
    FlagSet::from_value(&doc, LoadOptions::default())
        .unwrap_or_else(|e| panic!("{e}"))
        .warnings
}

fn body(set: &FlagSet, key: &str, ctx: Value) -> String {
    let ctx = Context::from_value(ctx).unwrap();
    serde_json::to_string(&set.evaluate(key, &ctx, 1_700_000_000)).unwrap()
}

fn demo() -> FlagSet {
    load(json!({
        "metadata": {"version": "7", "team": "erp"},
        "flags": {
            "static": {"state": "ENABLED", "variants": {"a": "A", "b": "B"}, "defaultVariant": "a",
                       "metadata": {"team": "checkout", "clientSide": true}},
            "off": {"state": "DISABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"},
            "nodefault": {"state": "ENABLED", "variants": {"on": true}},
            "targeted": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
                         "targeting": {"if": [{"==": [{"var": "plan"}, "pro"]}, "on", null]}},
            "boolean-result": {"state": "ENABLED", "variants": {"true": 1, "false": 0}, "defaultVariant": "false",
                               "targeting": {"==": [{"var": "plan"}, "pro"]}},
            "number-result": {"state": "ENABLED", "variants": {"1": "one", "2": "two"}, "defaultVariant": "1",
                              "targeting": {"+": [1, 1]}},
            "bad-variant": {"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "a",
                            "targeting": {"var": "pick"}},
            "empty-targeting": {"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "a", "targeting": {}},
            "clock": {"state": "ENABLED", "variants": {"before": "b", "after": "a"}, "defaultVariant": "before",
                      "targeting": {"if": [{">=": [{"var": "$flagd.timestamp"}, 1_700_000_000]}, "after", "before"]}}
        }
    }))
}

#[test]
fn results_serialize_to_ofrep_bodies() {
    let set = demo();
    let rows = [
        (
            "static",
            json!({}),
            r#"{"key":"static","value":"A","variant":"a","reason":"STATIC","metadata":{"clientSide":true,"team":"checkout","version":"7"}}"#,
        ),
        (
            "off",
            json!({}),
            r#"{"key":"off","reason":"DISABLED","metadata":{"team":"erp","version":"7"}}"#,
        ),
        (
            "nodefault",
            json!({}),
            r#"{"key":"nodefault","reason":"DEFAULT","metadata":{"team":"erp","version":"7"}}"#,
        ),
        (
            "targeted",
            json!({"plan": "pro"}),
            r#"{"key":"targeted","value":true,"variant":"on","reason":"TARGETING_MATCH","metadata":{"team":"erp","version":"7"}}"#,
        ),
        (
            "targeted",
            json!({"plan": "free"}),
            r#"{"key":"targeted","value":false,"variant":"off","reason":"DEFAULT","metadata":{"team":"erp","version":"7"}}"#,
        ),
        (
            "nope",
            json!({}),
            r#"{"key":"nope","errorCode":"FLAG_NOT_FOUND","errorDetails":"flag `nope` does not exist"}"#,
        ),
    ];
    for (key, ctx, want) in rows {
        assert_eq!(body(&set, key, ctx), want, "{key}");
    }
}

#[test]
fn boolean_and_number_results_name_variants_as_flagd_does() {
    let set = demo();
    let e = set.evaluate(
        "boolean-result",
        &Context::from_value(json!({"plan": "pro"})).unwrap(),
        0,
    );
    assert_eq!(
        (e.variant, e.reason),
        (Some("true"), Reason::TargetingMatch)
    );
    let e = set.evaluate("boolean-result", &Context::empty(), 0);
    assert_eq!(
        (e.variant, e.reason),
        (Some("false"), Reason::TargetingMatch)
    );
    let e = set.evaluate("number-result", &Context::empty(), 0);
    assert_eq!(e.variant, Some("2"));
}

#[test]
fn a_targeting_result_that_names_no_variant_is_a_general_error() {
    let set = demo();
    let rows = [
        (json!({"pick": "zzz"}), "returned \"zzz\""),
        (json!({"pick": {"a": 1}}), "returned an object"),
        (json!({"pick": ["a"]}), "returned an array"),
    ];
    for (ctx, detail) in rows {
        let e = set.evaluate("bad-variant", &Context::from_value(ctx).unwrap(), 0);
        let err = e.error.clone().unwrap();
        assert_eq!(err.code, ErrorCode::General);
        assert!(err.details.contains(detail), "{}", err.details);
        assert_eq!(e.reason, Reason::Error);
        assert_eq!(e.http_status(), 500);
    }
    // A null result falls back to the default variant instead.
    let e = set.evaluate("bad-variant", &Context::empty(), 0);
    assert_eq!((e.variant, e.reason), (Some("a"), Reason::Default));
}

#[test]
fn empty_targeting_is_static() {
    let e = demo()
        .evaluate("empty-targeting", &Context::empty(), 0)
        .reason;
    assert_eq!(e, Reason::Static);
}

#[test]
fn the_caller_supplies_the_clock() {
    let set = demo();
    assert_eq!(
        set.evaluate("clock", &Context::empty(), 1_699_999_999)
            .variant,
        Some("before")
    );
    assert_eq!(
        set.evaluate("clock", &Context::empty(), 1_700_000_000)
            .variant,
        Some("after")
    );
}

#[test]
fn bulk_evaluation_covers_every_flag_in_key_order() {
    let set = demo();
    let bulk: BulkEvaluation<'_> =
        set.evaluate_all(&Context::from_value(json!({"pick": "zzz"})).unwrap(), 0);
    let keys: Vec<&str> = bulk.flags.iter().map(|e| &*e.key).collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(keys, sorted);
    assert_eq!(keys.len(), set.len());
    let json: Value = serde_json::to_value(&bulk).unwrap();
    let items = json["flags"].as_array().unwrap();
    let off = items.iter().find(|i| i["key"] == "off").unwrap();
    assert_eq!(
        off,
        &json!({"key": "off", "reason": "DISABLED", "metadata": {"team": "erp", "version": "7"}})
    );
    let bad = items.iter().find(|i| i["key"] == "bad-variant").unwrap();
    assert_eq!(bad["errorCode"], "GENERAL");
}

#[test]
fn flag_set_accessors_report_keys_and_metadata() {
    let set = demo();
    assert_eq!(set.len(), 9);
    assert!(!set.is_empty());
    assert!(set.flag_keys().any(|k| k == "static"));
    assert_eq!(set.metadata().get("version"), Some(&json!("7")));
    assert_eq!(
        set.flag_metadata("static").and_then(|m| m.get("team")),
        Some(&json!("checkout"))
    );
}

#[test]
fn every_error_is_listed_with_its_path() {
    let err = refuse(json!({
        "flags": {
            "a": {"state": "ENABLED", "variants": ["x"], "defaultVariant": "x"},
            "b": {"state": "ENABLED", "variants": {"on": true}, "defaultVariant": "other"},
            "c": {"state": "ENABLED", "variants": {"on": true}, "targeting": {"if": [{"bogus": []}, "on"]}},
            "d": {"state": "ENABLED", "variants": {"on": true}, "targeting": {"$ref": "nowhere"}},
            "e": "not a flag",
            "f": {"state": "ENABLED", "variants": {"on": true}, "defaultVariant": 3},
            "g": {"state": "ENABLED", "variants": {"on": true}, "targeting": "on"}
        }
    }));
    let got: Vec<String> = err.diagnostics.iter().map(ToString::to_string).collect();
    let want = [
        "flags.a.variants: variants must be an object, not an array",
        "flags.a.defaultVariant: defaultVariant \"x\" is not one of the variants (none defined)",
        "flags.b.defaultVariant: defaultVariant \"other\" is not one of the variants (on)",
        "flags.e: a flag must be an object, not a string",
        "flags.f.defaultVariant: defaultVariant must be a string or null, not a number",
        "flags.g.targeting: targeting must be a JsonLogic object, not a string",
        "flags.c.targeting.if[0].bogus: unknown JsonLogic operator \"bogus\"",
        "flags.d.targeting.$ref: $ref to missing evaluator \"nowhere\" (no such key in $evaluators)",
    ];
    assert_eq!(got, want);
}

#[test]
fn documents_that_are_not_flag_sets_are_refused() {
    let rows = [
        (
            json!([]),
            "$: a flag set must be a JSON object, not an array",
        ),
        (json!({}), "flags: flags is missing"),
        (
            json!({"flags": 1}),
            "flags: flags must be an object keyed by flag key, not a number",
        ),
        (
            json!({"flags": {}, "$evaluators": []}),
            "$evaluators: $evaluators must be an object, not an array",
        ),
    ];
    for (doc, want) in rows {
        let err = refuse(doc);
        assert_eq!(err.diagnostics[0].to_string(), want);
    }
    let err = FlagSet::from_json_str("{\"flags\": ", LoadOptions::default())
        .err()
        .unwrap();
    assert!(err.diagnostics[0].message.starts_with("invalid JSON"));
}

#[test]
fn schema_deviations_are_warnings_that_strict_mode_refuses() {
    let doc = json!({
        "metadata": {"nested": {"no": 1}},
        "flags": {
            "x": {"variants": {"a": 1, "b": "two"}, "defaultVariant": "a",
                  "metadata": {"list": [1]},
                  "targeting": {"fractional": [{"var": "targetingKey"}, ["a", -50], ["b", 100]]}},
            "y": {"state": "ENABLED", "variants": {"t": "t", "f": "f"}, "defaultVariant": "f",
                  "targeting": {"if": [{"sem_ver": [{"var": "v"}, "===", "1.0"]}, "t", "nope"]}}
        }
    });
    let w: Vec<String> = warnings(doc.clone())
        .iter()
        .map(ToString::to_string)
        .collect();
    let want = [
        "metadata.nested: metadata values must be strings, numbers or booleans, not an object; it is left out of evaluation results",
        "flags.x.state: state is missing; the flag is treated as ENABLED",
        "flags.x.variants: variants mix types (a number, a string); the flagd schema requires one type per flag",
        "flags.x.metadata.list: metadata values must be strings, numbers or booleans, not an array; it is left out of evaluation results",
        "flags.y.targeting: targeting can return \"nope\", which is not a variant of this flag; that evaluation fails with GENERAL",
        "flags.x.targeting.fractional[1]: the weight -50 is negative; flagd counts it as 0",
        "flags.y.targeting.if[0].sem_ver[1]: sem_ver operator \"===\" is not one of = != < <= > >= ^ ~; it evaluates to null",
    ];
    assert_eq!(w, want);
    let strict = FlagSet::from_value(&doc, LoadOptions::strict())
        .err()
        .unwrap();
    assert_eq!(strict.diagnostics.len(), want.len());
}

#[test]
fn evaluators_are_resolved_at_load_time_and_cycles_refused() {
    let set = load(json!({
        "flags": {"f": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
                        "targeting": {"if": [{"$ref": "outer"}, "on", "off"]}}},
        "$evaluators": {
            "outer": {"and": [{"$ref": "inner"}, true]},
            "inner": {"ends_with": [{"var": "email"}, "@example.com"]}
        }
    }));
    let ctx = Context::from_value(json!({"email": "a@example.com"})).unwrap();
    assert_eq!(set.evaluate("f", &ctx, 0).variant, Some("on"));

    let err = refuse(json!({
        "flags": {"f": {"state": "ENABLED", "variants": {"on": true}, "targeting": {"$ref": "a"}}},
        "$evaluators": {"a": {"!": {"$ref": "b"}}, "b": {"!": {"$ref": "a"}}}
    }));
    assert!(
        err.diagnostics
            .iter()
            .any(|d| d.message.contains("$ref cycle: a -> b -> a")),
        "{err}"
    );
}

#[test]
fn exponential_ref_expansion_is_refused() {
    let mut evaluators = serde_json::Map::new();
    evaluators.insert("e0".into(), json!({"==": [1, 1]}));
    for i in 1..40 {
        let prev = format!("e{}", i - 1);
        evaluators.insert(
            format!("e{i}"),
            json!({"and": [{"$ref": prev}, {"$ref": prev}]}),
        );
    }
    let err = refuse(json!({
        "flags": {"f": {"state": "ENABLED", "variants": {"on": true}, "targeting": {"$ref": "e39"}}},
        "$evaluators": evaluators
    }));
    assert!(
        err.diagnostics
            .iter()
            .any(|d| d.message.contains("more than")),
        "{err}"
    );
}

#[test]
fn problems_in_unused_evaluators_are_only_warnings() {
    let w = warnings(json!({
        "flags": {"f": {"state": "ENABLED", "variants": {"on": true}, "defaultVariant": "on"}},
        "$evaluators": {"unused": {"bogus": 1}}
    }));
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].path, "$evaluators.unused.bogus");
    assert!(w[0].message.contains("no flag uses"));
}

#[test]
fn flags_may_be_given_as_an_array_with_keys() {
    let set = load(json!({"flags": [
        {"key": "one", "state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "a"},
        {"key": "two", "state": "ENABLED", "variants": {"a": 2}, "defaultVariant": "a"}
    ]}));
    assert_eq!(set.flag_keys().collect::<Vec<_>>(), ["one", "two"]);
    let err = refuse(json!({"flags": [
        {"key": "one", "state": "ENABLED"}, {"key": "one", "state": "ENABLED"}, {"state": "ENABLED"}
    ]}));
    assert_eq!(err.diagnostics.len(), 2);
}

#[test]
fn runaway_targeting_is_stopped_by_the_step_budget() {
    // `some` over 2000 context items of `some` over 2000 literal items: 4M iterations.
    let inner: Vec<u32> = (0..2000).collect();
    let set = load(
        json!({"flags": {"f": {"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "a",
        "targeting": {"if": [{"some": [{"var": "xs"}, {"some": [inner, false]}]}, "a", null]}}}}),
    );
    let xs: Vec<u32> = (0..2000).collect();
    let ctx = Context::from_value(json!({ "xs": xs })).unwrap();
    let e = set.evaluate("f", &ctx, 0);
    assert_eq!(e.error.map(|e| e.code), Some(ErrorCode::General));
    // Ordinary rules are nowhere near the budget.
    let small = Context::from_value(json!({ "xs": [1, 2, 3] })).unwrap();
    assert_eq!(set.evaluate("f", &small, 0).reason, Reason::Default);
}

#[test]
fn invalid_contexts_and_fingerprints() {
    assert_eq!(
        Context::from_value(json!("x"))
            .err()
            .map(|e| (e.code, e.http_status())),
        Some((ErrorCode::InvalidContext, 400))
    );
    let a = Context::from_value(json!({"targetingKey": "u", "a": [1, 2]})).unwrap();
    let b = Context::from_json_str(r#"{"a":[1,2],"targetingKey":"u"}"#).unwrap();
    assert_eq!(context_fingerprint(&a), context_fingerprint(&b));
}
