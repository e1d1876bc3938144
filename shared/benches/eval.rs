//! Evaluation benchmarks over `examples/flags/bench.flagd.json`, whose cases (flag,
//! context, time) are listed in `examples/flags/bench.cases.json` so another
//! implementation can run the same ones. IDs: `static`, `targeting_match`,
//! `fractional_3way`, `bulk_100`, plus `datalogic_fractional_3way`, the same
//! three-way `fractional` through datalogic-rs (a generic JsonLogic engine with flagd
//! operators), to back the choice of a compiled evaluator with a number.

#![allow(clippy::expect_used, missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use edgeflags_core::{Context, FlagSet, LoadOptions};
use serde_json::{json, Value};

const FLAGS: &str = include_str!("../../examples/flags/bench.flagd.json");
const CASES: &str = include_str!("../../examples/flags/bench.cases.json");

fn bench(c: &mut Criterion) {
    let set = FlagSet::from_json_str(FLAGS, LoadOptions::default())
        .expect("bench flags load")
        .set;
    let cases: Value = serde_json::from_str(CASES).expect("bench cases parse");
    let now = cases["now"].as_u64().expect("now");
    let case = |id: &str| {
        let c = &cases["cases"][id];
        let ctx = Context::from_value(c["context"].clone()).expect("context");
        (c["flag"].as_str().map(str::to_owned), ctx)
    };

    for id in ["static", "targeting_match", "fractional_3way"] {
        let (flag, ctx) = case(id);
        let flag = flag.expect("single-flag case");
        assert!(set.evaluate(&flag, &ctx, now).is_success());
        c.bench_function(id, |b| {
            b.iter(|| black_box(set.evaluate(black_box(&flag), black_box(&ctx), now)))
        });
    }

    let (_, ctx) = case("bulk_100");
    assert_eq!(set.len(), 100);
    c.bench_function("bulk_100", |b| {
        b.iter(|| black_box(set.evaluate_all(black_box(&ctx), now)))
    });

    // datalogic-rs: compile once, data parsed once into its own arena (its best case:
    // flagd-style engines must also inject `$flagd` into every context), evaluation
    // arena reset between iterations.
    let engine = datalogic_rs::Engine::new();
    let rule = json!({"fractional": [["a", 34], ["b", 33], ["c", 33]]});
    let compiled = engine
        .compile(rule.to_string().as_str())
        .expect("datalogic compiles");
    let (_, ctx) = case("fractional_3way");
    let mut data = ctx.as_value().clone();
    data["$flagd"] = json!({"flagKey": "fractional-3way", "timestamp": now});
    let data_arena = datalogic_rs::bumpalo::Bump::new();
    let data_text = data.to_string();
    let data = datalogic_rs::DataValue::from_str(&data_text, &data_arena).expect("data parses");
    let ours = set
        .evaluate("fractional-3way", &ctx, now)
        .variant
        .map(str::to_owned);
    {
        let arena = datalogic_rs::bumpalo::Bump::new();
        let theirs = engine
            .evaluate(&compiled, data, &arena)
            .expect("datalogic evaluates");
        assert_eq!(
            theirs.as_str(),
            ours.as_deref(),
            "both engines pick the same bucket"
        );
    }
    let mut arena = datalogic_rs::bumpalo::Bump::new();
    c.bench_function("datalogic_fractional_3way", |b| {
        b.iter(|| {
            let r = engine
                .evaluate(&compiled, black_box(&data), &arena)
                .map(|v| v.as_str().map(str::len));
            black_box(r.ok());
            arena.reset();
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
