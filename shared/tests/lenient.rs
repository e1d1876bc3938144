//! Lenient loading, as flagd reads a file: a flag whose definition has errors is kept and
//! evaluates to `PARSE_ERROR` with its errors and their JSON paths; every other flag works.
//! The default (validating) load keeps refusing such a set.

// A failed precondition in a test helper is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use edgeflags_core::{Context, ErrorCode, FlagSet, LoadOptions, Reason};
use serde_json::{json, Value};

const NOW: u64 = 1_700_000_000;

fn lenient(doc: &Value) -> FlagSet {
    FlagSet::from_value(doc, LoadOptions::lenient())
        .unwrap_or_else(|e| panic!("{e}"))
        .set
}

fn healthy() -> Value {
    json!({"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
           "targeting": {"if": [{"ends_with": [{"var": "email"}, "@example.com"]}, "on", "off"]}})
}

fn with_targeting(targeting: Value) -> Value {
    json!({"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
           "targeting": targeting})
}

/// One broken flag per kind of error a flag can have: (definition, the path and the words
/// its errorDetails must contain).
fn broken_flags() -> Vec<(&'static str, Value, &'static str, &'static str)> {
    vec![
        (
            "missing-ref",
            with_targeting(json!({"if": [{"$ref": "nope"}, "on", "off"]})),
            "flags.missing-ref.targeting.if[0].$ref",
            "$ref to missing evaluator \"nope\"",
        ),
        (
            "unknown-op",
            with_targeting(json!({"regex_match": [{"var": "email"}, ".*"]})),
            "flags.unknown-op.targeting.regex_match",
            "unknown JsonLogic operator \"regex_match\"",
        ),
        (
            "unknown-op-deep",
            with_targeting(
                json!({"if": [true, {"fractional": [[{"nope": []}, 1], ["off", 1]]}, "off"]}),
            ),
            "flags.unknown-op-deep.targeting.if[1].fractional[0][0].nope",
            "unknown JsonLogic operator \"nope\"",
        ),
        (
            "broken-evaluator",
            with_targeting(json!({"if": [{"$ref": "broken"}, "on", "off"]})),
            "$evaluators.broken.nope",
            "unknown JsonLogic operator \"nope\"",
        ),
        (
            "ref-cycle",
            with_targeting(json!({"$ref": "loop_a"})),
            "$evaluators.loop_b.$ref",
            "$ref cycle: loop_a -> loop_b -> loop_a",
        ),
        (
            "bad-default",
            json!({"state": "ENABLED", "variants": {"on": true}, "defaultVariant": "off"}),
            "flags.bad-default.defaultVariant",
            "defaultVariant \"off\" is not one of the variants (on)",
        ),
        (
            "variants-not-object",
            json!({"state": "ENABLED", "variants": ["on"], "defaultVariant": null}),
            "flags.variants-not-object.variants",
            "variants must be an object, not an array",
        ),
        (
            "targeting-not-object",
            json!({"state": "ENABLED", "variants": {"on": true}, "defaultVariant": "on", "targeting": "on"}),
            "flags.targeting-not-object.targeting",
            "targeting must be a JsonLogic object, not a string",
        ),
        (
            "not-an-object",
            json!("on"),
            "flags.not-an-object",
            "a flag must be an object, not a string",
        ),
    ]
}

fn partly_broken() -> Value {
    let mut flags = serde_json::Map::new();
    flags.insert("healthy".into(), healthy());
    flags.insert(
        "uses-good-evaluator".into(),
        with_targeting(json!({"if": [{"$ref": "staff"}, "on", "off"]})),
    );
    for (key, def, _, _) in broken_flags() {
        flags.insert(key.into(), def);
    }
    json!({
        "metadata": {"flagSetId": "s"},
        "$evaluators": {
            "staff": {"ends_with": [{"var": "email"}, "@example.com"]},
            "broken": {"nope": [1]},
            "loop_a": {"$ref": "loop_b"},
            "loop_b": {"$ref": "loop_a"}
        },
        "flags": flags
    })
}

#[test]
fn each_broken_flag_answers_parse_error_naming_its_problem_and_path() {
    let set = lenient(&partly_broken());
    let ctx = Context::from_value(json!({"email": "ann@example.com"})).unwrap();
    for (key, _, path, problem) in broken_flags() {
        let e = set.evaluate(key, &ctx, NOW);
        assert_eq!(e.reason, Reason::Error, "{key}");
        assert_eq!(e.value, None, "{key}");
        assert_eq!(e.variant, None, "{key}");
        let err = e.error.as_ref().unwrap();
        assert_eq!(err.code, ErrorCode::ParseError, "{key}");
        assert_eq!(e.http_status(), 400, "{key}");
        assert!(
            err.details
                .starts_with(&format!("flag `{key}` cannot be evaluated: ")),
            "{key}: {}",
            err.details
        );
        assert!(
            err.details.contains(&format!("{path}: ")) && err.details.contains(problem),
            "{key}: {}",
            err.details
        );
    }
}

#[test]
fn healthy_flags_of_a_partly_broken_set_evaluate_as_in_a_clean_set() {
    let broken = lenient(&partly_broken());
    let clean_doc = json!({
        "metadata": {"flagSetId": "s"},
        "$evaluators": {"staff": {"ends_with": [{"var": "email"}, "@example.com"]}},
        "flags": {"healthy": healthy(),
                  "uses-good-evaluator": with_targeting(json!({"if": [{"$ref": "staff"}, "on", "off"]}))}
    });
    let clean = FlagSet::from_value(&clean_doc, LoadOptions::default())
        .unwrap()
        .set;
    for email in ["ann@example.com", "bob@other.org"] {
        let ctx = Context::from_value(json!({"email": email})).unwrap();
        for key in ["healthy", "uses-good-evaluator"] {
            assert_eq!(
                broken.evaluate(key, &ctx, NOW),
                clean.evaluate(key, &ctx, NOW),
                "{key} for {email}"
            );
        }
    }
    // Bulk: every flag is there, broken ones as PARSE_ERROR items.
    let ctx = Context::from_value(json!({"email": "ann@example.com"})).unwrap();
    let all = broken.evaluate_all(&ctx, NOW);
    assert_eq!(all.flags.len(), 2 + broken_flags().len());
    let parse_errors = all
        .flags
        .iter()
        .filter(|e| e.error.as_ref().map(|x| x.code) == Some(ErrorCode::ParseError))
        .count();
    assert_eq!(parse_errors, broken_flags().len());
    let body = serde_json::to_value(&all).unwrap();
    let healthy_item = body["flags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["key"] == "healthy")
        .unwrap();
    assert_eq!(
        healthy_item,
        &json!({"key": "healthy", "value": true, "variant": "on", "reason": "TARGETING_MATCH",
                "metadata": {"flagSetId": "s"}})
    );
}

#[test]
fn flag_errors_lists_the_broken_flags_with_their_paths_in_key_order() {
    let set = lenient(&partly_broken());
    let listed: Vec<(&str, Vec<String>)> = set
        .flag_errors()
        .map(|(k, errors)| (k, errors.iter().map(|d| d.path.clone()).collect()))
        .collect();
    let mut want: Vec<(&str, Vec<String>)> = broken_flags()
        .into_iter()
        .map(|(k, _, path, _)| (k, vec![path.to_owned()]))
        .collect();
    want.sort();
    assert_eq!(listed, want);
    // The healthy flags are in the set and not in the list.
    assert!(set.contains("healthy") && set.contains("uses-good-evaluator"));
    assert_eq!(set.len(), 2 + broken_flags().len());
}

#[test]
fn a_flag_with_several_errors_reports_all_of_them() {
    let doc = json!({"flags": {"x": {"state": "ENABLED", "variants": {"on": true}, "defaultVariant": "off",
        "targeting": {"and": [{"nope": []}, {"$ref": "gone"}]}}}});
    let set = lenient(&doc);
    let (_, errors) = set.flag_errors().next().unwrap();
    let paths: Vec<&str> = errors.iter().map(|d| d.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "flags.x.defaultVariant",
            "flags.x.targeting.and[0].nope",
            "flags.x.targeting.and[1].$ref"
        ]
    );
    let e = set.evaluate("x", &Context::empty(), NOW);
    assert_eq!(
        e.error.unwrap().details,
        "flag `x` cannot be evaluated: flags.x.defaultVariant: defaultVariant \"off\" is not one of \
         the variants (on); flags.x.targeting.and[0].nope: unknown JsonLogic operator \"nope\"; \
         flags.x.targeting.and[1].$ref: $ref to missing evaluator \"gone\" (no such key in $evaluators)"
    );
}

#[test]
fn a_disabled_broken_flag_is_disabled_not_an_error() {
    // flagd and flagd-core check the state before the targeting.
    let mut def = with_targeting(json!({"if": [{"$ref": "nope"}, "on", "off"]}));
    def["state"] = json!("DISABLED");
    let set = lenient(&json!({"flags": {"x": def}}));
    let e = set.evaluate("x", &Context::empty(), NOW);
    assert_eq!(e.reason, Reason::Disabled);
    assert!(e.error.is_none());
    assert_eq!(set.flag_errors().count(), 1, "still listed as broken");
}

#[test]
fn the_default_load_still_refuses_a_partly_broken_set_listing_every_error_with_its_path() {
    let err = FlagSet::from_value(&partly_broken(), LoadOptions::default()).unwrap_err();
    let mut paths: Vec<&str> = err.diagnostics.iter().map(|d| d.path.as_str()).collect();
    paths.sort_unstable();
    let mut want: Vec<&str> = broken_flags().iter().map(|(_, _, p, _)| *p).collect();
    want.sort_unstable();
    assert_eq!(paths, want);
    // Strict wins over lenient when both are asked for.
    let both = LoadOptions {
        strict: true,
        lenient: true,
    };
    assert!(FlagSet::from_value(&partly_broken(), both).is_err());
}

#[test]
fn a_default_load_of_a_clean_set_lists_no_flag_errors() {
    let doc = json!({"flags": {"healthy": healthy()}});
    let set = FlagSet::from_value(&doc, LoadOptions::default())
        .unwrap()
        .set;
    assert_eq!(set.flag_errors().count(), 0);
    let set = lenient(&doc);
    assert_eq!(set.flag_errors().count(), 0);
}

#[test]
fn unusable_files_are_refused_even_when_lenient() {
    let cases: &[(&str, &str)] = &[
        ("{\"flags\": ", "$"),
        ("[]", "$"),
        ("{}", "flags"),
        (r#"{"flags": 1}"#, "flags"),
        (r#"{"flags": "a"}"#, "flags"),
        (r#"{"flags": {}, "$evaluators": []}"#, "$evaluators"),
        (r#"{"flags": [{"state": "ENABLED"}]}"#, "flags[0]"),
        (
            r#"{"flags": [{"key": "a", "variants": {"x": 1}, "defaultVariant": "x"},
                          {"key": "a", "variants": {"x": 1}, "defaultVariant": "x"}]}"#,
            "flags[1]",
        ),
    ];
    for (text, path) in cases {
        let err = FlagSet::from_json_str(text, LoadOptions::lenient()).unwrap_err();
        assert_eq!(err.diagnostics[0].path, *path, "{text}: {err}");
    }
}

#[test]
fn warnings_are_still_reported_by_a_lenient_load() {
    let doc = json!({"flags": {
        "warned": {"variants": {"on": true}, "defaultVariant": "on"},
        "broken": with_targeting(json!({"nope": []}))
    }});
    let loaded = FlagSet::from_value(&doc, LoadOptions::lenient()).unwrap();
    let w: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        w,
        ["flags.warned.state: state is missing; the flag is treated as ENABLED"]
    );
}

#[test]
fn flags_in_array_form_are_isolated_too() {
    let doc = json!({"flags": [
        {"key": "ok", "state": "ENABLED", "variants": {"on": true}, "defaultVariant": "on"},
        {"key": "bad", "state": "ENABLED", "variants": {"on": true}, "defaultVariant": "on",
         "targeting": {"nope": []}}
    ]});
    let set = lenient(&doc);
    assert_eq!(
        set.evaluate("ok", &Context::empty(), NOW).variant,
        Some("on")
    );
    let keys: Vec<&str> = set.flag_errors().map(|(k, _)| k).collect();
    assert_eq!(keys, ["bad"]);
    let (_, errors) = set.flag_errors().next().unwrap();
    assert_eq!(errors[0].path, "flags[1].targeting.nope");
}
