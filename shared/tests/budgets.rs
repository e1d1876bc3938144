//! Hostile documents that passed validation before evaluation had budgets (issue 12, item
//! 2): each is now refused at load, or answered `GENERAL` quickly without large
//! allocations, and the other flags of the set keep working.

// A failed precondition in a test helper is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use edgeflags_core::{Context, ErrorCode, FlagSet, LoadError, LoadOptions, Reason};
use serde_json::{json, Map, Value};

/// The process's peak resident memory in bytes (Linux; `None` elsewhere).
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Every test of this file together stays far below what the hostile documents allocated
/// before (gigabytes): the test binary's peak memory is bounded.
fn assert_small_peak_memory() {
    if let Some(peak) = peak_rss() {
        assert!(peak < 256 << 20, "peak memory {} MiB", peak >> 20);
    }
}

fn flag(targeting: Value) -> Value {
    json!({"state": "ENABLED", "variants": {"a": "a", "b": "b"}, "defaultVariant": "a",
           "targeting": targeting})
}

fn doc(flags: Map<String, Value>, evaluators: Value) -> Value {
    json!({"flags": flags, "$evaluators": evaluators})
}

fn refused(doc: &Value) -> LoadError {
    FlagSet::from_value(doc, LoadOptions::default()).expect_err("the set is refused")
}

/// `{"reduce": [[0..n], {"cat": [acc, acc]}, "x"]}`: the accumulator doubles every round.
fn doubling_cat(rounds: usize) -> Value {
    let items: Vec<usize> = (0..rounds).collect();
    json!({"reduce": [items, {"cat": [{"var": "accumulator"}, {"var": "accumulator"}]}, "x"]})
}

#[test]
fn a_doubling_cat_in_reduce_answers_general_for_that_flag_without_a_large_allocation() {
    let mut flags = Map::new();
    flags.insert("grow".into(), flag(doubling_cat(100)));
    flags.insert("plain".into(), flag(json!({"if": [true, "b"]})));
    let set = FlagSet::from_value(&doc(flags, json!({})), LoadOptions::strict())
        .expect("a doubling accumulator cannot be seen at load time")
        .set;
    // (No timing is asserted: the byte budget's message below shows it stopped early.)
    let all = set.evaluate_all(&Context::empty(), 0);
    let grow = all.flags.iter().find(|e| e.key == "grow").unwrap();
    let error = grow.error.as_ref().expect("the flag fails");
    assert_eq!(error.code, ErrorCode::General);
    assert!(
        error.details.contains("1048576 bytes built"),
        "{}",
        error.details
    );
    let plain = all.flags.iter().find(|e| e.key == "plain").unwrap();
    assert_eq!(plain.variant, Some("b"));
    // The single-flag call answers the same.
    let single = set.evaluate("grow", &Context::empty(), 0);
    assert_eq!(single.error.map(|e| e.code), Some(ErrorCode::General));
    assert_small_peak_memory();
}

#[test]
fn a_few_rounds_of_a_growing_accumulator_stay_within_the_byte_budget() {
    let mut flags = Map::new();
    // 2^10 = 1024 bytes: far below the budget, evaluates as before.
    flags.insert(
        "short".into(),
        flag(
            json!({"if": [{"==": [{"var": "n"}, {"reduce": [[0,1,2,3,4,5,6,7,8,9],
            {"cat": [{"var": "accumulator"}, {"var": "accumulator"}]}, "x"]}]}, "b", "a"]}),
        ),
    );
    let set = FlagSet::from_value(&doc(flags, json!({})), LoadOptions::strict())
        .unwrap()
        .set;
    let ctx = Context::from_value(json!({"n": "x".repeat(1024)})).unwrap();
    assert_eq!(set.evaluate("short", &ctx, 0).variant, Some("b"));
}

/// 300 flags whose targeting each expands (through `$ref`s to evaluators that reference
/// each other eight times) to ~88,000 nodes, just under the per-flag limit: 26 million
/// nodes for the set.
fn ref_fan_out() -> Value {
    let eight = |name: &str| json!({"or": vec![json!({"$ref": name}); 8]});
    let evaluators = json!({
        "e0": {"==": [{"var": "a"}, 1]},
        "e1": eight("e0"), "e2": eight("e1"), "e3": eight("e2"), "e4": eight("e3"),
    });
    let mut flags = Map::new();
    for i in 0..300 {
        flags.insert(
            format!("f{i:03}"),
            flag(json!({"if": [{"and": vec![json!({"$ref": "e4"}); 5]}, "b"]})),
        );
    }
    doc(flags, evaluators)
}

#[test]
fn a_ref_fan_out_across_300_flags_is_refused_at_load_with_the_path_of_the_flag_that_exceeds_the_set_budget(
) {
    let doc = ref_fan_out();
    let err = refused(&doc);
    // Three flags fit in the set's 300,000 nodes; the fourth crosses it.
    let first = &err.diagnostics[0];
    assert_eq!(first.path, "flags.f003.targeting");
    assert!(
        first
            .message
            .contains("flag set expands to more than 300000"),
        "{}",
        first.message
    );
    assert_small_peak_memory();
}

#[test]
fn a_ref_fan_out_loaded_leniently_breaks_the_flags_past_the_set_budget_and_keeps_the_others() {
    let loaded = FlagSet::from_value(&ref_fan_out(), LoadOptions::lenient()).unwrap();
    let broken: Vec<&str> = loaded.set.flag_errors().map(|(k, _)| k).collect();
    assert_eq!(broken.len(), 297);
    assert_eq!(broken[0], "f003");
    let ctx = Context::from_value(json!({"a": 1})).unwrap();
    assert_eq!(loaded.set.evaluate("f000", &ctx, 0).variant, Some("b"));
    let e = loaded.set.evaluate("f003", &ctx, 0);
    assert_eq!(e.error.map(|e| e.code), Some(ErrorCode::ParseError));
    assert_small_peak_memory();
}

/// `some` over the context's `xs`, and for each item `some` over 1000 literal items: about
/// 2,000 steps per context item, so 500 items reach the per-flag step limit. Nothing in the
/// document says how long `xs` is, so it loads.
fn at_the_step_limit() -> Value {
    let inner: Vec<u32> = (0..1000).collect();
    flag(json!({"if": [{"some": [{"var": "xs"}, {"some": [inner, false]}]}, "b"]}))
}

#[test]
fn a_hundred_flags_at_the_step_limit_share_one_bulk_budget_and_the_rest_answer_general() {
    let mut flags = Map::new();
    for i in 0..100 {
        flags.insert(format!("f{i:03}"), at_the_step_limit());
    }
    flags.insert(
        "zz-static".into(),
        json!({"state": "ENABLED", "variants": {"a": 1},
        "defaultVariant": "a"}),
    );
    let set = FlagSet::from_value(&doc(flags, json!({})), LoadOptions::strict())
        .unwrap()
        .set;
    let xs: Vec<u32> = (0..2000).collect();
    let ctx = Context::from_value(json!({ "xs": xs })).unwrap();
    let all = set.evaluate_all(&ctx, 0);
    let details: Vec<&str> = all
        .flags
        .iter()
        .filter_map(|e| e.error.as_ref())
        .map(|e| e.details.as_str())
        .collect();
    assert_eq!(details.len(), 100);
    // The first two spend their own budgets, which is the whole bulk budget …
    for d in details.get(..2).unwrap() {
        assert!(d.ends_with("1000000 evaluation steps"), "{d}");
    }
    // … and the 98 after them are not evaluated.
    for d in details.get(2..).unwrap() {
        assert!(
            d.contains("2000000 evaluation steps across this bulk evaluation"),
            "{d}"
        );
    }
    // A flag that needs no interpreter still answers.
    let last = all.flags.last().unwrap();
    assert_eq!((&*last.key, last.reason), ("zz-static", Reason::Static));
    // Two flags' worth of work instead of a hundred: the messages above show where it
    // stopped (no timing is asserted).
    // A single call has the flag's own budget.
    let one = set.evaluate("f099", &ctx, 0);
    assert!(one
        .error
        .unwrap()
        .details
        .ends_with("1000000 evaluation steps"));
}

#[test]
fn a_flag_whose_literal_iterations_exceed_the_step_limit_is_refused_at_load() {
    let thousand: Vec<u32> = (0..1000).collect();
    let mut flags = Map::new();
    flags.insert(
        "square".into(),
        flag(json!({"if": [{"some": [thousand, {"some": [thousand, false]}]}, "b"]})),
    );
    let err = refused(&doc(flags.clone(), json!({})));
    assert_eq!(err.diagnostics[0].path, "flags.square.targeting");
    assert!(
        err.diagnostics[0]
            .message
            .contains("more than the limit of 1000000"),
        "{}",
        err.diagnostics[0].message
    );
    // Leniently, that flag is broken and answers PARSE_ERROR.
    let set = FlagSet::from_value(&doc(flags, json!({})), LoadOptions::lenient())
        .unwrap()
        .set;
    let e = set.evaluate("square", &Context::empty(), 0);
    assert_eq!(e.error.map(|e| e.code), Some(ErrorCode::ParseError));
}

#[test]
fn flags_whose_literal_iterations_together_exceed_the_bulk_budget_are_refused_at_load() {
    // Each ~600,000 steps (300 × 2,000): three fit in the bulk budget, the fourth does not.
    let outer: Vec<u32> = (0..300).collect();
    let inner: Vec<u32> = (0..1000).collect();
    let mut flags = Map::new();
    for i in 0..4 {
        flags.insert(
            format!("s{i}"),
            flag(json!({"if": [{"some": [outer, {"some": [inner, false]}]}, "b"]})),
        );
    }
    let err = refused(&doc(flags.clone(), json!({})));
    assert_eq!(err.diagnostics.len(), 1);
    assert_eq!(err.diagnostics[0].path, "flags.s3.targeting");
    assert!(
        err.diagnostics[0].message.contains("budget of 2000000"),
        "{}",
        err.diagnostics[0].message
    );
    flags.remove("s3");
    let set = FlagSet::from_value(&doc(flags, json!({})), LoadOptions::strict())
        .unwrap()
        .set;
    assert_eq!(
        set.evaluate("s0", &Context::empty(), 0).reason,
        Reason::Default
    );
}

#[test]
fn a_literal_object_copied_through_many_refs_counts_towards_the_node_budgets() {
    // One evaluator holding a 2,000-key literal object, referenced 100 times: 200,000
    // copied values in one flag.
    let big: Map<String, Value> = (0..2000).map(|i| (format!("k{i}"), json!(i))).collect();
    let mut flags = Map::new();
    flags.insert(
        "copies".into(),
        flag(json!({"if": [{"in": ["x", vec![json!({"$ref": "big"}); 100]]}, "b"]})),
    );
    let err = refused(&doc(flags, json!({ "big": big })));
    assert_eq!(err.diagnostics[0].path, "flags.copies.targeting");
    assert!(err.diagnostics[0].message.contains("100000 operations"));
}
