//! Runs the built `edgeflags` binary and checks the contract scripts rely on: output
//! lines and exit codes.

// A failed precondition in a test helper is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::{json, Value};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_edgeflags"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("the binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn example(name: &str) -> String {
    let p: PathBuf = [env!("CARGO_MANIFEST_DIR"), "..", "examples", "flags", name]
        .iter()
        .collect();
    p.to_string_lossy().into_owned()
}

/// Writes `text` to a fresh file in the target's temp dir and returns its path.
fn temp_file(name: &str, text: &str) -> String {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

fn json_line(o: &Output) -> Value {
    let out = stdout(o);
    assert_eq!(out.lines().count(), 1, "one line of output: {out:?}");
    serde_json::from_str(out.trim_end()).unwrap()
}

#[test]
fn validate_accepts_the_demo_flag_set() {
    let o = run(&["validate", &example("demo.flagd.json")]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "ok: 10 flags, 0 warnings\n");
    assert_eq!(stderr(&o), "");
}

#[test]
fn validate_accepts_the_bench_flag_set_strictly() {
    let o = run(&["validate", &example("bench.flagd.json"), "--strict"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "ok: 100 flags, 0 warnings\n");
}

#[test]
fn validate_lists_every_error_with_its_path_and_exits_1() {
    let f = temp_file(
        "broken.json",
        r#"{"flags": {
            "a": {"state": "ENABLED", "variants": {"on": true}, "defaultVariant": "off"},
            "b": {"state": "ENABLED", "variants": {"on": true}, "targeting": {"nope": []}}
        }}"#,
    );
    let o = run(&["validate", &f]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "error: flags.a.defaultVariant: defaultVariant \"off\" is not one of the variants (on)\n\
         error: flags.b.targeting.nope: unknown JsonLogic operator \"nope\"\n"
    );
    assert_eq!(stdout(&o), "invalid: 2 errors, 0 warnings\n");
}

#[test]
fn validate_reports_warnings_and_strict_mode_refuses_them() {
    let f = temp_file(
        "warn.json",
        r#"{"flags": {"a": {"variants": {"on": true}, "defaultVariant": "on"}}}"#,
    );
    let o = run(&["validate", &f]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stdout(&o), "ok: 1 flag, 1 warning\n");
    assert_eq!(
        stderr(&o),
        "warning: flags.a.state: state is missing; the flag is treated as ENABLED\n"
    );
    let o = run(&["validate", &f, "--strict"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "error: flags.a.state: state is missing; the flag is treated as ENABLED\n"
    );
}

#[test]
fn validate_reports_malformed_json_as_an_error() {
    let f = temp_file("malformed.json", "{\"flags\": ");
    let o = run(&["validate", &f]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("error: $: invalid JSON"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn eval_prints_the_single_flag_body() {
    let o = run(&[
        "eval",
        "--flags",
        &example("demo.flagd.json"),
        "--flag",
        "new-checkout",
        "--context",
        r#"{"targetingKey": "u1", "email": "ann@example.com"}"#,
        "--now",
        "0",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        json_line(&o),
        json!({"key": "new-checkout", "value": true, "variant": "on", "reason": "TARGETING_MATCH",
               "metadata": {"clientSide": true, "flagSetId": "erp-backend", "owner": "checkout",
                            "experiment.control": "off", "experiment.conversionEvent": "checkout-completed",
                            "version": "2026-11-25.1",
                            "description": "New checkout flow: always on for @example.com staff, 50/50 for everyone else."}})
    );
}

#[test]
fn eval_without_flag_prints_the_bulk_body() {
    let o = run(&[
        "eval",
        "--flags",
        &example("demo.flagd.json"),
        "--context",
        "{}",
        "--now",
        "0",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let body = json_line(&o);
    let keys: Vec<&str> = body["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "backend",
            "banner",
            "new-checkout",
            "notifications",
            "notifications.email",
            "notifications.inapp",
            "notifications.push",
            "notifications.v2",
            "page-size",
            "theme"
        ]
    );
    let notifications = &body["flags"][3];
    assert_eq!(notifications["reason"], "DISABLED");
    assert!(notifications.get("value").is_none());
}

#[test]
fn eval_reads_the_context_from_a_file_and_honours_now() {
    let ctx = temp_file("ctx.json", r#"{"targetingKey": "u1"}"#);
    let during = run(&[
        "eval",
        "--flags",
        &example("demo.flagd.json"),
        "--flag=banner",
        &format!("--context=@{ctx}"),
        "--now",
        "1796437000",
    ]);
    assert_eq!(json_line(&during)["variant"], "maintenance");
    let after = run(&[
        "eval",
        "--flags",
        &example("demo.flagd.json"),
        "--flag",
        "banner",
        "--context",
        &format!("@{ctx}"),
        "--now",
        "1796443201",
    ]);
    assert_eq!(json_line(&after)["variant"], "none");
    assert_eq!(json_line(&after)["reason"], "DEFAULT");
}

#[test]
fn evaluation_errors_are_in_the_json_and_exit_0() {
    let demo = example("demo.flagd.json");
    let o = run(&["eval", "--flags", &demo, "--flag", "nope"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        json_line(&o),
        json!({"key": "nope", "errorCode": "FLAG_NOT_FOUND", "errorDetails": "flag `nope` does not exist"})
    );
    let o = run(&[
        "eval",
        "--flags",
        &demo,
        "--flag",
        "theme",
        "--context",
        "[1]",
    ]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(json_line(&o)["errorCode"], "INVALID_CONTEXT");
    let o = run(&["eval", "--flags", &demo, "--context", "\"x\""]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(json_line(&o)["errorCode"], "INVALID_CONTEXT");
}

#[test]
fn unusable_arguments_exit_2_with_a_message() {
    let demo = example("demo.flagd.json");
    // Files whose structure is unusable: only these stop `eval` (one broken flag does not).
    let no_flags = temp_file("no-flags-object.json", r#"{"flags": 1}"#);
    let not_json = temp_file("not-json.json", r#"{"flags": {"a": "#);
    let not_an_object = temp_file("not-an-object.json", "[]");
    let cases: Vec<Vec<&str>> = vec![
        vec![],
        vec!["frobnicate"],
        vec!["validate"],
        vec!["validate", "a.json", "b.json"],
        vec!["validate", "/nonexistent/flags.json"],
        vec!["validate", &demo, "--bogus"],
        vec!["eval"],
        vec!["eval", "--flags"],
        vec!["eval", "--flags", "/nonexistent/flags.json"],
        vec!["eval", "--flags", &demo, "--context", "{not json"],
        vec![
            "eval",
            "--flags",
            &demo,
            "--context",
            "@/nonexistent/ctx.json",
        ],
        vec!["eval", "--flags", &demo, "--now", "yesterday"],
        vec!["eval", "--flags", &demo, "--flag", "a", "--flag", "b"],
        vec!["eval", "--flags", &no_flags],
        vec!["eval", "--flags", &not_json],
        vec!["eval", "--flags", &not_an_object, "--flag", "a"],
        vec!["validate", &demo, "--strict", "--lenient"],
    ];
    for args in cases {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&o).starts_with("edgeflags: "),
            "{args:?}: {}",
            stderr(&o)
        );
        assert_eq!(stdout(&o), "", "{args:?}");
    }
}

#[test]
fn now_defaults_to_the_system_clock() {
    // The banner window lies in the future of any clock this test runs on... unless it
    // does not; either way the evaluation succeeds with one of the two variants.
    let o = run(&[
        "eval",
        "--flags",
        &example("demo.flagd.json"),
        "--flag",
        "banner",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let v = json_line(&o);
    assert!(
        v["variant"] == "none" || v["variant"] == "maintenance",
        "{v}"
    );
}

/// A flagd file with two broken flags (a `$ref` to a missing evaluator, an unknown
/// operator), a flag that uses a broken evaluator, and healthy flags around them.
const PARTLY_BROKEN: &str = r#"{
  "$evaluators": {"is_staff": {"ends_with": [{"var": "email"}, "@example.com"]},
                  "broken": {"regex_match": [{"var": "email"}, ".*"]}},
  "flags": {
    "healthy": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
                "targeting": {"if": [{"$ref": "is_staff"}, "on", "off"]}},
    "missing-ref": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
                    "targeting": {"if": [{"$ref": "no_such_evaluator"}, "on", "off"]}},
    "static": {"state": "ENABLED", "variants": {"a": "A", "b": "B"}, "defaultVariant": "b"},
    "unknown-op": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
                   "targeting": {"if": [{"nope": [1]}, "on", "off"]}},
    "uses-broken": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
                    "targeting": {"if": [{"$ref": "broken"}, "on", "off"]}}
  }
}"#;

#[test]
fn eval_evaluates_healthy_flags_of_a_partly_broken_file_and_answers_parse_error_for_the_broken_ones(
) {
    let f = temp_file("partly-broken.json", PARTLY_BROKEN);
    let ctx = r#"{"targetingKey": "u1", "email": "ann@example.com"}"#;
    let o = run(&["eval", "--flags", &f, "--context", ctx, "--now", "0"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stderr(&o), "");
    let body = json_line(&o);
    let by_key = |k: &str| {
        body["flags"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["key"] == k)
            .cloned()
            .unwrap_or_else(|| panic!("{k} in {body}"))
    };
    assert_eq!(by_key("healthy")["variant"], "on");
    assert_eq!(by_key("healthy")["reason"], "TARGETING_MATCH");
    assert_eq!(by_key("static")["value"], "B");
    for (key, path, problem) in [
        (
            "missing-ref",
            "flags.missing-ref.targeting.if[0].$ref",
            "no_such_evaluator",
        ),
        (
            "unknown-op",
            "flags.unknown-op.targeting.if[0].nope",
            "unknown JsonLogic operator \"nope\"",
        ),
        (
            "uses-broken",
            "$evaluators.broken.regex_match",
            "unknown JsonLogic operator \"regex_match\"",
        ),
    ] {
        let item = by_key(key);
        assert_eq!(item["errorCode"], "PARSE_ERROR", "{item}");
        let details = item["errorDetails"].as_str().unwrap();
        assert!(
            details.contains(path) && details.contains(problem),
            "{key}: {details}"
        );
        assert!(item.get("value").is_none(), "{item}");
    }

    // Single-flag mode, on a healthy and on a broken flag.
    let o = run(&["eval", "--flags", &f, "--flag", "healthy", "--context", ctx]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(json_line(&o)["variant"], "on");
    let o = run(&["eval", "--flags", &f, "--flag", "missing-ref"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        json_line(&o),
        json!({"key": "missing-ref", "errorCode": "PARSE_ERROR",
               "errorDetails": "flag `missing-ref` cannot be evaluated: flags.missing-ref.targeting.if[0].$ref: $ref to missing evaluator \"no_such_evaluator\" (no such key in $evaluators)"})
    );
}

#[test]
fn eval_keeps_a_flag_that_is_not_even_an_object_as_a_parse_error() {
    let f = temp_file(
        "flag-not-object.json",
        r#"{"flags": {"odd": 7, "bad-default": {"state": "ENABLED", "variants": {"on": true}, "defaultVariant": "off"},
                      "fine": {"state": "ENABLED", "variants": {"on": true}, "defaultVariant": "on"}}}"#,
    );
    let o = run(&["eval", "--flags", &f]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let body = json_line(&o);
    assert_eq!(
        body,
        json!({"flags": [
            {"key": "bad-default", "errorCode": "PARSE_ERROR",
             "errorDetails": "flag `bad-default` cannot be evaluated: flags.bad-default.defaultVariant: defaultVariant \"off\" is not one of the variants (on)"},
            {"key": "fine", "value": true, "variant": "on", "reason": "STATIC", "metadata": {}},
            {"key": "odd", "errorCode": "PARSE_ERROR",
             "errorDetails": "flag `odd` cannot be evaluated: flags.odd: a flag must be an object, not a number"}
        ]})
    );
}

#[test]
fn validate_refuses_a_partly_broken_file_and_lenient_validation_reports_its_errors_as_warnings() {
    let f = temp_file("partly-broken-validate.json", PARTLY_BROKEN);
    let o = run(&["validate", &f]);
    assert_eq!(o.status.code(), Some(1));
    let errors = "flags.missing-ref.targeting.if[0].$ref: $ref to missing evaluator \"no_such_evaluator\" (no such key in $evaluators)\n\
                  KIND: flags.unknown-op.targeting.if[0].nope: unknown JsonLogic operator \"nope\"\n\
                  KIND: $evaluators.broken.regex_match: unknown JsonLogic operator \"regex_match\"\n";
    assert_eq!(
        stderr(&o),
        format!("error: {}", errors.replace("KIND", "error"))
    );
    assert_eq!(stdout(&o), "invalid: 3 errors, 0 warnings\n");

    let o = run(&["validate", &f, "--lenient"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        format!("warning: {}", errors.replace("KIND", "warning"))
    );
    assert_eq!(stdout(&o), "ok: 5 flags, 3 warnings\n");

    // An unusable file stays an error with --lenient.
    let f = temp_file(
        "flags-array-without-key.json",
        r#"{"flags": [{"state": "ENABLED"}]}"#,
    );
    let o = run(&["validate", &f, "--lenient"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "error: flags[0]: a flag in a flags array needs a string \"key\"\n"
    );
}

#[test]
fn rollout_simulate_prints_one_object_of_shares_and_medians() {
    let demo = example("demo.flagd.json");
    let args = [
        "rollout",
        "simulate",
        "--flags",
        &demo,
        "--flag",
        "backend",
        "--error-rate",
        "0.5",
        "--runs",
        "20",
        "--seed",
        "3",
    ];
    let o = run(&args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 1);
    let v = json_line(&o);
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    let mut expected = [
        "runs",
        "completed",
        "rolledBack",
        "running",
        "advancedPastFirstStage",
        "medianMinutesToRollback",
        "medianMinutesToComplete",
    ];
    expected.sort_unstable();
    assert_eq!(keys, expected);
    assert_eq!(v["runs"], 20);
    for k in [
        "completed",
        "rolledBack",
        "running",
        "advancedPastFirstStage",
    ] {
        let share = v[k].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&share), "{k}: {v}");
    }
    assert_eq!(v["rolledBack"], 1.0, "{v}");
    assert!(v["medianMinutesToRollback"].is_number(), "{v}");
    assert_eq!(
        v["medianMinutesToComplete"],
        Value::Null,
        "no run completed: {v}"
    );
    assert_eq!(json_line(&run(&args)), v, "a seed gives the same output");
}

#[test]
fn rollout_simulate_exits_2_for_unusable_arguments() {
    let demo = example("demo.flagd.json");
    let base = ["rollout", "simulate", "--flags", demo.as_str(), "--flag"];
    for (what, extra) in [
        ("no error rate", vec!["backend"]),
        ("rate above 1", vec!["backend", "--error-rate", "2"]),
        ("rate not a number", vec!["backend", "--error-rate", "much"]),
        (
            "zero runs",
            vec!["backend", "--error-rate", "0.01", "--runs", "0"],
        ),
        (
            "zero visitors",
            vec![
                "backend",
                "--error-rate",
                "0.01",
                "--visitors-per-minute",
                "0",
            ],
        ),
        (
            "negative seed",
            vec!["backend", "--error-rate", "0.01", "--seed", "-1"],
        ),
        (
            "unknown option",
            vec!["backend", "--error-rate", "0.01", "--fast"],
        ),
        ("no such flag", vec!["nope", "--error-rate", "0.01"]),
        (
            "a flag without a plan",
            vec!["theme", "--error-rate", "0.01"],
        ),
    ] {
        let args: Vec<&str> = base.iter().copied().chain(extra).collect();
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{what}: {}", stderr(&o));
        assert!(stdout(&o).is_empty(), "{what}");
    }
    let o = run(&[
        "rollout",
        "simulate",
        "--flag",
        "backend",
        "--error-rate",
        "0.01",
    ]);
    assert_eq!(o.status.code(), Some(2), "no --flags");
    let o = run(&[
        "rollout",
        "simulate",
        "--flags",
        "/nonexistent.json",
        "--flag",
        "backend",
        "--error-rate",
        "0.01",
    ]);
    assert_eq!(o.status.code(), Some(2), "unreadable file");
    assert_eq!(run(&["rollout"]).status.code(), Some(2));
}
