//! Property tests: no input makes the loader or the evaluator panic, assignment is
//! deterministic, weight changes move only boundary visitors, and splits match weights.

// A failed precondition in a test helper is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use edgeflags_core::{murmur3_x86_32, Context, FlagSet, LoadOptions};
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{json, Map, Value};

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        "[a-z$. @0-9-]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z$]{0,4}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const OPS: &[&str] = &[
    "==",
    "===",
    "!=",
    "!==",
    "!",
    "!!",
    "<",
    "<=",
    ">",
    ">=",
    "max",
    "min",
    "+",
    "-",
    "*",
    "/",
    "%",
    "cat",
    "substr",
    "in",
    "merge",
    "missing",
    "missing_some",
    "log",
    "starts_with",
    "ends_with",
    "sem_ver",
    "if",
    "?:",
    "and",
    "or",
    "map",
    "filter",
    "reduce",
    "all",
    "none",
    "some",
    "fractional",
    "var",
];

/// JsonLogic built from every operator, with literal and `var` leaves that hit the
/// context keys the context strategy uses.
fn arb_rule() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        arb_json(),
        select(vec![
            "a",
            "b",
            "targetingKey",
            "email",
            "xs",
            "xs.0",
            "$flagd.flagKey",
            "$flagd.timestamp",
            ""
        ])
        .prop_map(|p| json!({ "var": p })),
        select(vec![
            "a", "b", "on", "off", "true", "1", "=", "^", "~", "1.2.3"
        ])
        .prop_map(Value::from),
        (select(vec!["a", "b", "on"]), 0u32..5).prop_map(|(v, w)| json!([v, w])),
    ];
    leaf.prop_recursive(6, 80, 5, |inner| {
        (
            select(OPS.to_vec()),
            prop::collection::vec(inner.clone(), 0..5),
            any::<bool>(),
        )
            .prop_map(|(op, args, wrap)| {
                // Also exercise the non-array argument form.
                let args = match (wrap, args.first()) {
                    (true, Some(first)) if args.len() == 1 => first.clone(),
                    _ => Value::Array(args),
                };
                let mut m = Map::new();
                m.insert(op.to_owned(), args);
                Value::Object(m)
            })
    })
}

fn arb_context() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(
        select(vec!["a", "b", "targetingKey", "email", "xs", "$flagd"]),
        arb_json(),
        0..6,
    )
    .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
}

fn doc_with(targeting: Value, evaluator: Value) -> Value {
    json!({
        "flags": {
            "f": {"state": "ENABLED", "variants": {"a": 1, "b": "two", "on": true, "true": [3], "1": {"x": 1}},
                  "defaultVariant": "a", "targeting": targeting},
            "g": {"state": "ENABLED", "variants": {"a": 1}, "targeting": {"$ref": "e"}}
        },
        "$evaluators": {"e": evaluator}
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics_the_loader(text in "\\PC{0,200}") {
        let _ = FlagSet::from_json_str(&text, LoadOptions::default());
    }

    #[test]
    fn arbitrary_documents_never_panic_the_loader(doc in arb_json()) {
        let _ = FlagSet::from_value(&doc, LoadOptions::default());
        let _ = FlagSet::from_value(&json!({"flags": {"f": doc}}), LoadOptions::strict());
    }

    #[test]
    fn arbitrary_targeting_never_panics_and_is_deterministic(
        rule in arb_rule(), evaluator in arb_rule(), ctx in arb_context(), now in any::<u64>()
    ) {
        let doc = doc_with(rule, evaluator);
        if let Ok(loaded) = FlagSet::from_value(&doc, LoadOptions::default()) {
            let ctx = Context::from_value(ctx).unwrap();
            let first = serde_json::to_string(&loaded.set.evaluate_all(&ctx, now)).unwrap();
            let again = serde_json::to_string(&loaded.set.evaluate_all(&ctx, now)).unwrap();
            prop_assert_eq!(first, again);
        }
    }

    #[test]
    fn arbitrary_contexts_never_panic_a_fixed_rule_set(ctx in arb_context()) {
        let set = demo_set();
        let ctx = Context::from_value(ctx).unwrap();
        let _ = serde_json::to_string(&set.evaluate_all(&ctx, 0)).unwrap();
    }

    #[test]
    fn raising_a_weight_moves_visitors_only_into_that_bucket(
        key in "[a-zA-Z0-9@.-]{1,24}", w1 in 0u64..=100, extra in 0u64..=100
    ) {
        let w2 = (w1 + extra).min(100);
        let variant = |w: u64| {
            let set = split_set(&[("first", w), ("second", 100 - w)]);
            let ctx = Context::from_value(json!({"targetingKey": key})).unwrap();
            set.evaluate("split", &ctx, 0).variant.map(str::to_owned)
        };
        let before = variant(w1);
        let after = variant(w2);
        if before.as_deref() == Some("first") {
            prop_assert_eq!(after.as_deref(), Some("first"));
        }
        if after.as_deref() == Some("second") {
            prop_assert_eq!(before.as_deref(), Some("second"));
        }
    }

    #[test]
    fn murmur3_agrees_with_the_mur3_crate(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        prop_assert_eq!(murmur3_x86_32(&bytes), mur3::murmurhash3_x86_32(&bytes, 0));
    }

    #[test]
    fn the_root_fractional_shortcut_agrees_with_the_interpreter(
        buckets in prop::collection::vec(
            (prop_oneof![
                select(vec!["a", "b", "c", "missing"]).prop_map(Value::from),
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                (0u8..3).prop_map(Value::from),
            ], 0u64..5),
            1..5,
        ),
        key in prop_oneof![Just(None), "\\PC{0,20}".prop_map(Some)],
    ) {
        let dist: Vec<Value> = buckets.iter().map(|(v, w)| json!([v, w])).collect();
        let variants = json!({"a": "A", "b": "B", "c": "C", "true": 1, "false": 0, "1": "one"});
        let shortcut = json!({"fractional": dist});
        // Wrapped in an `if`, the same rule goes through the interpreter.
        let interpreted = json!({"if": [true, {"fractional": dist}]});
        let mut ctx = Map::new();
        if let Some(k) = key {
            ctx.insert("targetingKey".into(), Value::from(k));
        }
        let ctx = Context::from_map(ctx);
        let eval = |t: Value| {
            let doc = json!({"flags": {"f": {"state": "ENABLED", "variants": variants,
                "defaultVariant": "a", "targeting": t}}});
            let set = FlagSet::from_value(&doc, LoadOptions::default()).unwrap().set;
            serde_json::to_value(set.evaluate("f", &ctx, 0)).unwrap()
        };
        prop_assert_eq!(eval(shortcut), eval(interpreted));
    }

    #[test]
    fn assignment_is_the_documented_hash_bucket(key in "\\PC{0,40}") {
        let set = split_set(&[("a", 1), ("b", 2), ("c", 3)]);
        let ctx = Context::from_value(json!({"targetingKey": key})).unwrap();
        let got = set.evaluate("split", &ctx, 0).variant;
        let hash = murmur3_x86_32(format!("split{key}").as_bytes());
        let bucket = (u64::from(hash) * 6) >> 32;
        let want = match bucket { 0 => "a", 1 | 2 => "b", _ => "c" };
        prop_assert_eq!(got, Some(want));
    }
}

fn split_set(buckets: &[(&str, u64)]) -> FlagSet {
    let variants: Map<String, Value> = buckets
        .iter()
        .map(|(v, _)| ((*v).to_owned(), json!(v)))
        .collect();
    let dist: Vec<Value> = buckets.iter().map(|(v, w)| json!([v, w])).collect();
    FlagSet::from_value(
        &json!({"flags": {"split": {"state": "ENABLED", "variants": variants,
            "defaultVariant": buckets[0].0, "targeting": {"fractional": dist}}}}),
        LoadOptions::default(),
    )
    .unwrap()
    .set
}

fn demo_set() -> FlagSet {
    let text = include_str!("../../examples/flags/demo.flagd.json");
    FlagSet::from_json_str(text, LoadOptions::default())
        .unwrap()
        .set
}

#[test]
fn a_split_matches_its_weights_over_20k_keys() {
    let set = split_set(&[("a", 10), ("b", 30), ("c", 60)]);
    let mut counts = [0u32; 3];
    let n = 20_000;
    for i in 0..n {
        let ctx = Context::from_value(json!({"targetingKey": format!("user-{i}")})).unwrap();
        match set.evaluate("split", &ctx, 0).variant {
            Some("a") => counts[0] += 1,
            Some("b") => counts[1] += 1,
            Some("c") => counts[2] += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    for (count, want) in counts.iter().zip([0.10, 0.30, 0.60]) {
        let share = f64::from(*count) / f64::from(n);
        assert!(
            (share - want).abs() < 0.01,
            "share {share} vs {want} ({counts:?})"
        );
    }
}

#[test]
fn going_from_10_90_to_20_80_moves_only_second_to_first() {
    let before = split_set(&[("first", 10), ("second", 90)]);
    let after = split_set(&[("first", 20), ("second", 80)]);
    let mut moved = 0;
    for i in 0..20_000 {
        let ctx = Context::from_value(json!({"targetingKey": format!("visitor-{i}")})).unwrap();
        let b = before.evaluate("split", &ctx, 0).variant;
        let a = after.evaluate("split", &ctx, 0).variant;
        if b != a {
            assert_eq!((b, a), (Some("second"), Some("first")));
            moved += 1;
        }
    }
    // About a tenth of all visitors move.
    assert!((1_700..2_300).contains(&moved), "{moved}");
}

/// The issue-16 demo audience: `notifications.v2` sends to 30 % of visitors (a 30/70 split).
#[test]
fn the_demo_notifications_v2_audience_is_30_percent_of_visitors() {
    let set = demo_set();
    let n = 20_000;
    let on = (0..n)
        .filter(|i| {
            let ctx = Context::from_value(json!({"targetingKey": format!("visitor-{i}")})).unwrap();
            set.evaluate("notifications.v2", &ctx, 0).variant == Some("on")
        })
        .count();
    let share = on as f64 / f64::from(n);
    assert!((share - 0.30).abs() < 0.015, "{share}");
}
