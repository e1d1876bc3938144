//! Operator tables: each row is a rule, the data it runs on, and the expected result,
//! mostly taken from json-logic-js's behaviour (its published test cases) and flagd's.

use serde_json::Value;

use super::compile::Compiler;
use super::interp::{eval, Budget, Env, Scope};
use crate::context::Context;
use crate::path::JsonPath;

const NOW: u64 = 1_700_000_000;

/// Compiles `rule` and evaluates it against `data`, as JSON.
fn run(rule: &str, data: &str) -> Value {
    let rule: Value = serde_json::from_str(rule).expect("rule is JSON");
    let data: Value = serde_json::from_str(data).expect("data is JSON");
    let mut c = Compiler::new(None);
    let node = c.compile_targeting(&rule, &mut JsonPath::new());
    assert!(c.errors.is_empty(), "compile errors: {:?}", c.errors);
    let tk = data.get("targetingKey").and_then(Value::as_str);
    let env = Env::with_data(&data, tk, "my-flag", NOW);
    eval(&node, &env, Scope::Root).to_json()
}

fn check(table: &[(&str, &str, &str)]) {
    let mut failures = Vec::new();
    for &(rule, data, want) in table {
        let want: Value = serde_json::from_str(want).expect("expectation is JSON");
        let got = run(rule, data);
        if got != want {
            failures.push(format!("{rule} with {data}: got {got}, want {want}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn literals_and_arrays_evaluate_to_themselves() {
    check(&[
        ("1", "{}", "1"),
        (r#""x""#, "{}", r#""x""#),
        ("null", "{}", "null"),
        ("[1, {\"var\": \"a\"}]", r#"{"a": 2}"#, "[1, 2]"),
        ("{}", "{}", "{}"),
        (r#"{"a": 1, "b": 2}"#, "{}", r#"{"a": 1, "b": 2}"#),
    ]);
}

#[test]
fn var_reads_paths_defaults_and_indexes() {
    check(&[
        (r#"{"var": "a"}"#, r#"{"a": 1}"#, "1"),
        (r#"{"var": ["a"]}"#, r#"{"a": 1}"#, "1"),
        (r#"{"var": "b"}"#, r#"{"a": 1}"#, "null"),
        (r#"{"var": ["b", 26]}"#, r#"{"a": 1}"#, "26"),
        (r#"{"var": ["a", 26]}"#, r#"{"a": null}"#, "26"),
        (r#"{"var": "a"}"#, r#"{"a": null}"#, "null"),
        (
            r#"{"var": "a.b.c"}"#,
            r#"{"a": {"b": {"c": "deep"}}}"#,
            r#""deep""#,
        ),
        (r#"{"var": ["a.x", "d"]}"#, r#"{"a": null}"#, r#""d""#),
        (r#"{"var": 1}"#, r#"["apple", "banana"]"#, r#""banana""#),
        (r#"{"var": "1"}"#, r#"["apple", "banana"]"#, r#""banana""#),
        (r#"{"var": "01"}"#, r#"["apple", "banana"]"#, "null"),
        (r#"{"var": "a.1"}"#, r#"{"a": ["x", "y"]}"#, r#""y""#),
        (r#"{"var": ""}"#, r#"{"a": 1}"#, r#"{"a": 1}"#),
        (r#"{"var": null}"#, r#"{"a": 1}"#, r#"{"a": 1}"#),
        (r#"{"var": []}"#, r#"{"a": 1}"#, r#"{"a": 1}"#),
        (
            r#"{"var": {"cat": ["a", ".b"]}}"#,
            r#"{"a": {"b": 7}}"#,
            "7",
        ),
        (
            r#"{"var": ["x", {"var": "y"}]}"#,
            r#"{"y": "fallback"}"#,
            r#""fallback""#,
        ),
        (r#"{"var": "$flagd.flagKey"}"#, "{}", r#""my-flag""#),
        (r#"{"var": "$flagd.timestamp"}"#, "{}", "1700000000"),
        (
            r#"{"var": "$flagd.flagKey"}"#,
            r#"{"$flagd": {"flagKey": "spoofed"}}"#,
            r#""my-flag""#,
        ),
        (r#"{"var": "$flagd.other"}"#, "{}", "null"),
    ]);
}

#[test]
fn missing_and_missing_some_report_absent_keys() {
    check(&[
        (
            r#"{"missing": ["a", "b"]}"#,
            r#"{"a": "apple"}"#,
            r#"["b"]"#,
        ),
        (
            r#"{"missing": ["a", "b"]}"#,
            r#"{"a": "apple", "b": ""}"#,
            r#"["b"]"#,
        ),
        (
            r#"{"missing": ["a", "b"]}"#,
            r#"{"a": null}"#,
            r#"["a", "b"]"#,
        ),
        (r#"{"missing": "a"}"#, "{}", r#"["a"]"#),
        (r#"{"missing": ["a.b"]}"#, r#"{"a": {"b": 1}}"#, "[]"),
        (r#"{"missing": [["a", "b"]]}"#, r#"{"b": 1}"#, r#"["a"]"#),
        (r#"{"missing_some": [1, ["a", "b"]]}"#, r#"{"a": 1}"#, "[]"),
        (
            r#"{"missing_some": [2, ["a", "b", "c"]]}"#,
            r#"{"a": 1}"#,
            r#"["b", "c"]"#,
        ),
        (
            r#"{"missing_some": [1, ["a", "b"]]}"#,
            "{}",
            r#"["a", "b"]"#,
        ),
    ]);
}

#[test]
fn if_chains_pick_the_first_truthy_branch() {
    check(&[
        (r#"{"if": [true, "yes", "no"]}"#, "{}", r#""yes""#),
        (r#"{"if": [false, "yes", "no"]}"#, "{}", r#""no""#),
        (r#"{"if": [[], "yes", "no"]}"#, "{}", r#""no""#),
        (r#"{"if": [[0], "yes", "no"]}"#, "{}", r#""yes""#),
        (r#"{"if": ["", "yes", "no"]}"#, "{}", r#""no""#),
        (r#"{"if": ["0", "yes", "no"]}"#, "{}", r#""yes""#),
        (r#"{"if": [null, "yes", "no"]}"#, "{}", r#""no""#),
        (r#"{"if": [false, "a", false, "b", "c"]}"#, "{}", r#""c""#),
        (r#"{"if": [false, "a", true, "b", "c"]}"#, "{}", r#""b""#),
        (r#"{"if": [false, "a"]}"#, "{}", "null"),
        (r#"{"if": []}"#, "{}", "null"),
        (r#"{"if": ["only"]}"#, "{}", r#""only""#),
        (r#"{"?:": [true, 1, 2]}"#, "{}", "1"),
        (r#"{"if": {"var": "x"}}"#, r#"{"x": "v"}"#, r#""v""#),
    ]);
}

#[test]
fn equality_follows_javascript() {
    check(&[
        (r#"{"==": [1, 1]}"#, "{}", "true"),
        (r#"{"==": [1, "1"]}"#, "{}", "true"),
        (r#"{"==": [0, false]}"#, "{}", "true"),
        (r#"{"==": [null, 0]}"#, "{}", "false"),
        (r#"{"==": [null, null]}"#, "{}", "true"),
        (r#"{"==": [{"var": "missing"}, null]}"#, "{}", "true"),
        (r#"{"===": [1, 1]}"#, "{}", "true"),
        (r#"{"===": [1, "1"]}"#, "{}", "false"),
        (r#"{"!=": [1, 2]}"#, "{}", "true"),
        (r#"{"!=": [1, "1"]}"#, "{}", "false"),
        (r#"{"!==": [1, 2]}"#, "{}", "true"),
        (r#"{"!==": [1, "1"]}"#, "{}", "true"),
        (
            r#"{"==": [{"var": "o"}, {"var": "o"}]}"#,
            r#"{"o": {"a": 1}}"#,
            "true",
        ),
        (r#"{"==": [[1], [1]]}"#, "{}", "false"),
    ]);
}

#[test]
fn negation_and_double_negation_use_truthiness() {
    check(&[
        (r#"{"!": [true]}"#, "{}", "false"),
        (r#"{"!": true}"#, "{}", "false"),
        (r#"{"!": [[]]}"#, "{}", "true"),
        (r#"{"!": [0]}"#, "{}", "true"),
        (r#"{"!!": [["0"]]}"#, "{}", "true"),
        (r#"{"!!": [""]}"#, "{}", "false"),
        (r#"{"!!": [{"var": "x"}]}"#, r#"{"x": {}}"#, "false"),
        (r#"{"!!": [{"var": "x"}]}"#, r#"{"x": {"a": 0}}"#, "true"),
    ]);
}

#[test]
fn and_or_return_the_deciding_operand() {
    check(&[
        (r#"{"and": [true, true]}"#, "{}", "true"),
        (r#"{"and": [true, false]}"#, "{}", "false"),
        (r#"{"and": [1, 3]}"#, "{}", "3"),
        (r#"{"and": [3, false]}"#, "{}", "false"),
        (r#"{"and": [false, 3]}"#, "{}", "false"),
        (r#"{"and": [0, 3]}"#, "{}", "0"),
        (r#"{"and": []}"#, "{}", "null"),
        (r#"{"or": [false, true]}"#, "{}", "true"),
        (r#"{"or": [1, 3]}"#, "{}", "1"),
        (r#"{"or": [0, ""]}"#, "{}", r#""""#),
        (r#"{"or": [false, 0, "a"]}"#, "{}", r#""a""#),
    ]);
}

#[test]
fn comparisons_coerce_and_support_between() {
    check(&[
        (r#"{"<": [1, 2]}"#, "{}", "true"),
        (r#"{"<": [2, 1]}"#, "{}", "false"),
        (r#"{"<": ["1", 2]}"#, "{}", "true"),
        (r#"{"<": ["a", "b"]}"#, "{}", "true"),
        (r#"{"<": ["11", "2"]}"#, "{}", "true"),
        (r#"{"<": [1, 2, 3]}"#, "{}", "true"),
        (r#"{"<": [1, 1, 3]}"#, "{}", "false"),
        (r#"{"<=": [1, 1]}"#, "{}", "true"),
        (r#"{"<=": [1, 1, 3]}"#, "{}", "true"),
        (r#"{"<=": [1, 4, 3]}"#, "{}", "false"),
        (r#"{">": [2, 1]}"#, "{}", "true"),
        (r#"{">": ["2", 1]}"#, "{}", "true"),
        (r#"{">": [3, 2, 1]}"#, "{}", "true"),
        (r#"{">": [3, 2, 5]}"#, "{}", "false"),
        (r#"{">=": [1, 1]}"#, "{}", "true"),
        (r#"{">=": [3, 3, 1]}"#, "{}", "true"),
        (r#"{">": ["abc", 1]}"#, "{}", "false"),
        (r#"{"<": [null, 1]}"#, "{}", "true"),
        (r#"{"<": [{"var": "age"}, 18]}"#, r#"{"age": 17}"#, "true"),
    ]);
}

#[test]
fn arithmetic_follows_json_logic_js_coercions() {
    check(&[
        (r#"{"+": [4, 2]}"#, "{}", "6"),
        (r#"{"+": [2, 2, 2, 2, 2]}"#, "{}", "10"),
        (r#"{"+": "3.14"}"#, "{}", "3.14"),
        (r#"{"+": ["1", 1]}"#, "{}", "2"),
        (r#"{"+": []}"#, "{}", "0"),
        (r#"{"+": [null, 1]}"#, "{}", "null"),
        (r#"{"-": [4, 2]}"#, "{}", "2"),
        (r#"{"-": [2]}"#, "{}", "-2"),
        (r#"{"-": ["-2"]}"#, "{}", "2"),
        (r#"{"-": [null, 1]}"#, "{}", "-1"),
        (r#"{"*": [4, 2]}"#, "{}", "8"),
        (r#"{"*": [2, 2, 2, 2]}"#, "{}", "16"),
        (r#"{"*": ["1", 1]}"#, "{}", "1"),
        (r#"{"/": [4, 2]}"#, "{}", "2"),
        (r#"{"/": [1, 0]}"#, "{}", "null"),
        (r#"{"/": ["6", 3]}"#, "{}", "2"),
        (r#"{"%": [1, 2]}"#, "{}", "1"),
        (r#"{"%": [2, 2]}"#, "{}", "0"),
        (r#"{"%": [3, 2]}"#, "{}", "1"),
        (r#"{"%": [-3, 2]}"#, "{}", "-1"),
        (r#"{"max": [1, 2, 3]}"#, "{}", "3"),
        (r#"{"max": [1, "3", 2]}"#, "{}", "3"),
        (r#"{"max": []}"#, "{}", "null"),
        (r#"{"max": [1, "x"]}"#, "{}", "null"),
        (r#"{"min": [1, 2, 3]}"#, "{}", "1"),
        (r#"{"min": [3, -1]}"#, "{}", "-1"),
    ]);
}

#[test]
fn string_operators_follow_json_logic_js() {
    check(&[
        (r#"{"cat": ["I love", " pie"]}"#, "{}", r#""I love pie""#),
        (
            r#"{"cat": ["I love ", {"var": "filling"}, " pie"]}"#,
            r#"{"filling": "apple"}"#,
            r#""I love apple pie""#,
        ),
        (r#"{"cat": [1, 2.5, true]}"#, "{}", r#""12.5true""#),
        (r#"{"cat": ["a", null]}"#, "{}", r#""anull""#),
        (r#"{"cat": ["a", [1, [2, 3]]]}"#, "{}", r#""a1,2,3""#),
        (r#"{"cat": "x"}"#, "{}", r#""x""#),
        (r#"{"substr": ["jsonlogic", 4]}"#, "{}", r#""logic""#),
        (r#"{"substr": ["jsonlogic", -5]}"#, "{}", r#""logic""#),
        (r#"{"substr": ["jsonlogic", 0, 1]}"#, "{}", r#""j""#),
        (r#"{"substr": ["jsonlogic", -1, 1]}"#, "{}", r#""c""#),
        (r#"{"substr": ["jsonlogic", 4, 5]}"#, "{}", r#""logic""#),
        (r#"{"substr": ["jsonlogic", 2, -2]}"#, "{}", r#""onlog""#),
        (r#"{"substr": ["jsonlogic", 20]}"#, "{}", r#""""#),
        (r#"{"substr": ["héllo", 1, 3]}"#, "{}", r#""éll""#),
        (r#"{"in": ["Spring", "Springfield"]}"#, "{}", "true"),
        (r#"{"in": ["i", "team"]}"#, "{}", "false"),
        (
            r#"{"in": ["Ringo", ["John", "Paul", "George", "Ringo"]]}"#,
            "{}",
            "true",
        ),
        (
            r#"{"in": ["Yoko", ["John", "Paul", "George", "Ringo"]]}"#,
            "{}",
            "false",
        ),
        (r#"{"in": [1, ["1"]]}"#, "{}", "false"),
        (r#"{"in": ["a", null]}"#, "{}", "false"),
        (
            r#"{"in": [{"var": "plan"}, ["pro", "team"]]}"#,
            r#"{"plan": "pro"}"#,
            "true",
        ),
    ]);
}

#[test]
fn flagd_string_comparisons_return_null_on_bad_input() {
    check(&[
        (
            r#"{"starts_with": [{"var": "id"}, "abc"]}"#,
            r#"{"id": "abcdef"}"#,
            "true",
        ),
        (
            r#"{"starts_with": [{"var": "id"}, "abc"]}"#,
            r#"{"id": "xabc"}"#,
            "false",
        ),
        (
            r#"{"ends_with": [{"var": "id"}, "xyz"]}"#,
            r#"{"id": "uvwxyz"}"#,
            "true",
        ),
        (
            r#"{"ends_with": [{"var": "email"}, "@example.com"]}"#,
            r#"{"email": "a@example.org"}"#,
            "false",
        ),
        (
            r#"{"starts_with": [{"var": "num"}, "abc"]}"#,
            r#"{"num": 123}"#,
            "null",
        ),
        (
            r#"{"ends_with": [{"var": "num"}, "xyz"]}"#,
            r#"{"num": 123}"#,
            "null",
        ),
        (r#"{"starts_with": ["abc"]}"#, "{}", "null"),
        (r#"{"ends_with": ["abc", "c", "x"]}"#, "{}", "null"),
        (r#"{"ends_with": [{"var": "missing"}, "x"]}"#, "{}", "null"),
        (r#"{"starts_with": ["héllo", "hé"]}"#, "{}", "true"),
    ]);
}

#[test]
fn sem_ver_compares_and_returns_null_on_bad_input() {
    check(&[
        (
            r#"{"sem_ver": [{"var": "v"}, ">=", "1.2.0"]}"#,
            r#"{"v": "1.10.0"}"#,
            "true",
        ),
        (
            r#"{"sem_ver": [{"var": "v"}, "<", "1.2.0"]}"#,
            r#"{"v": "1.2.0-rc.1"}"#,
            "true",
        ),
        (
            r#"{"sem_ver": [{"var": "v"}, "^", "2.0.0"]}"#,
            r#"{"v": "2.9.1"}"#,
            "true",
        ),
        (
            r#"{"sem_ver": [{"var": "v"}, "~", "2.1.0"]}"#,
            r#"{"v": "2.2.0"}"#,
            "false",
        ),
        (
            r#"{"sem_ver": [{"var": "v"}, "=", "1.0.0"]}"#,
            r#"{"v": "not-a-version"}"#,
            "null",
        ),
        (
            r#"{"sem_ver": [{"var": "v"}, "===", "1.0.0"]}"#,
            r#"{"v": "1.0.0"}"#,
            "null",
        ),
        (
            r#"{"sem_ver": [{"var": "v"}, "="]}"#,
            r#"{"v": "1.0.0"}"#,
            "null",
        ),
        (
            r#"{"sem_ver": [{"var": "v"}, "=", "1.0.0"]}"#,
            r#"{"v": true}"#,
            "null",
        ),
        (
            r#"{"sem_ver": [{"var": "v"}, "=", "1.0.0"]}"#,
            r#"{"v": [1]}"#,
            "null",
        ),
        (r#"{"sem_ver": ["v1.2", "=", "1.2.0"]}"#, "{}", "true"),
    ]);
}

#[test]
fn sem_ver_reads_numbers_as_partial_versions() {
    // flagd-testbed @semver-partial-version and @semver-numeric-context: a number from the
    // context is rendered as text ("2", "1.2") and read as a partial version.
    let rule =
        |op: &str, target: &str| format!(r#"{{"sem_ver": [{{"var": "v"}}, "{op}", {target}]}}"#);
    let rows: &[(&str, &str, &str, &str)] = &[
        ("^", r#""1""#, r#"{"v": 1}"#, "true"),
        ("^", r#""1""#, r#"{"v": 1.0}"#, "true"),
        ("^", r#""1""#, r#"{"v": 1.2}"#, "true"),
        ("^", r#""1""#, r#"{"v": 2}"#, "false"),
        (">", r#""1.1""#, r#"{"v": 1.2}"#, "true"),
        (">", r#""1.1""#, r#"{"v": 1.1}"#, "false"),
        (">", r#""1.1""#, r#"{"v": 2}"#, "true"),
        (">", r#""1.1""#, r#"{"v": 1}"#, "false"),
        (">", r#""1.1""#, r#"{"v": "1.2"}"#, "true"),
        ("=", r#""1.0""#, r#"{"v": "1"}"#, "true"),
        // A number as the target too.
        ("<", "2", r#"{"v": "1.9.9"}"#, "true"),
        ("=", "1.5", r#"{"v": "1.5.0"}"#, "true"),
        // Numbers that render as no version.
        ("=", r#""1.0.0""#, r#"{"v": -1}"#, "null"),
        ("=", r#""1.0.0""#, r#"{"v": 1e21}"#, "null"),
        ("=", r#""1.0.0""#, r#"{"v": 1.25e-7}"#, "null"),
        ("=", r#""0.0.0""#, r#"{"v": 0}"#, "true"),
    ];
    let table: Vec<(String, &str, &str)> = rows
        .iter()
        .map(|&(op, target, data, want)| (rule(op, target), data, want))
        .collect();
    let table: Vec<(&str, &str, &str)> =
        table.iter().map(|(r, d, w)| (r.as_str(), *d, *w)).collect();
    check(&table);
}

#[test]
fn merge_flattens_one_level() {
    check(&[
        (r#"{"merge": []}"#, "{}", "[]"),
        (r#"{"merge": [[1]]}"#, "{}", "[1]"),
        (r#"{"merge": [[1], []]}"#, "{}", "[1]"),
        (r#"{"merge": [[1], [2]]}"#, "{}", "[1, 2]"),
        (r#"{"merge": [[1], [2], [3]]}"#, "{}", "[1, 2, 3]"),
        (r#"{"merge": [[1, 2], [3]]}"#, "{}", "[1, 2, 3]"),
        (r#"{"merge": [1, [2]]}"#, "{}", "[1, 2]"),
        (r#"{"merge": [[1], [[2]]]}"#, "{}", "[1, [2]]"),
    ]);
}

#[test]
fn array_operators_scope_var_to_the_element() {
    check(&[
        (
            r#"{"map": [{"var": "integers"}, {"*": [{"var": ""}, 2]}]}"#,
            r#"{"integers": [1, 2, 3]}"#,
            "[2, 4, 6]",
        ),
        (
            r#"{"map": [{"var": "x"}, {"*": [{"var": ""}, 2]}]}"#,
            "{}",
            "[]",
        ),
        (
            r#"{"filter": [{"var": "integers"}, {">=": [{"var": ""}, 2]}]}"#,
            r#"{"integers": [1, 2, 3]}"#,
            "[2, 3]",
        ),
        (
            r#"{"filter": [{"var": "integers"}, {"%": [{"var": ""}, 2]}]}"#,
            r#"{"integers": [1, 2, 3, 4, 5]}"#,
            "[1, 3, 5]",
        ),
        (
            r#"{"reduce": [{"var": "integers"}, {"+": [{"var": "current"}, {"var": "accumulator"}]}, 0]}"#,
            r#"{"integers": [1, 2, 3, 4]}"#,
            "10",
        ),
        (
            r#"{"reduce": [{"var": "integers"}, {"+": [{"var": "current"}, {"var": "accumulator"}]}, {"var": "start"}]}"#,
            r#"{"integers": [1, 2], "start": 5}"#,
            "8",
        ),
        (
            r#"{"reduce": [{"var": "nope"}, {"+": [{"var": "current"}, {"var": "accumulator"}]}, 0]}"#,
            "{}",
            "0",
        ),
        (
            r#"{"all": [[1, 2, 3], {">": [{"var": ""}, 0]}]}"#,
            "{}",
            "true",
        ),
        (
            r#"{"all": [[1, 2, 3], {">": [{"var": ""}, 1]}]}"#,
            "{}",
            "false",
        ),
        (r#"{"all": [[], {">": [{"var": ""}, 0]}]}"#, "{}", "false"),
        (
            r#"{"none": [[-3, -2], {">": [{"var": ""}, 0]}]}"#,
            "{}",
            "true",
        ),
        (r#"{"none": [[], {">": [{"var": ""}, 0]}]}"#, "{}", "true"),
        (
            r#"{"some": [[-1, 0, 1], {">": [{"var": ""}, 0]}]}"#,
            "{}",
            "true",
        ),
        (r#"{"some": [[], {">": [{"var": ""}, 0]}]}"#, "{}", "false"),
        (
            r#"{"some": [{"var": "pies"}, {"==": [{"var": "filling"}, "apple"]}]}"#,
            r#"{"pies": [{"filling": "pumpkin"}, {"filling": "apple"}]}"#,
            "true",
        ),
        (
            r#"{"all": [{"var": "pies"}, {"==": [{"var": "filling"}, "apple"]}]}"#,
            r#"{"pies": [{"filling": "pumpkin"}, {"filling": "apple"}]}"#,
            "false",
        ),
        (
            r#"{"map": [{"merge": [[1], [2]]}, {"+": [{"var": ""}, 1]}]}"#,
            "{}",
            "[2, 3]",
        ),
        (
            r#"{"map": [{"var": "xs"}, {"var": "$flagd.flagKey"}]}"#,
            r#"{"xs": [{}]}"#,
            "[null]",
        ),
    ]);
}

#[test]
fn fractional_buckets_match_the_flagd_testbed() {
    // flagd-testbed evaluator/gherkin/fractional.feature, @fractional-v2 rows.
    let rule = r#"{"fractional": [
        {"cat": [{"var": "$flagd.flagKey"}, {"var": "user.name"}]},
        ["clubs", 25], ["diamonds", 25], ["hearts", 25], ["spades", 25]]}"#;
    let rows = [
        ("jack", "hearts"),
        ("queen", "spades"),
        ("ten", "clubs"),
        ("nine", "diamonds"),
        ("3", "clubs"),
    ];
    // The testbed's flag is called "fractional-flag"; `$flagd.flagKey` must say so.
    let rule: Value = serde_json::from_str(rule).unwrap();
    let mut c = Compiler::new(None);
    let node = c.compile_targeting(&rule, &mut JsonPath::new());
    for (name, want) in rows {
        let ctx = Context::from_value(serde_json::json!({"user": {"name": name}})).unwrap();
        let env = Env::new(&ctx, "fractional-flag", NOW, Budget::FLAG);
        assert_eq!(
            eval(&node, &env, Scope::Root).to_json(),
            Value::from(want),
            "{name}"
        );
    }
}

#[test]
fn fractional_follows_flagd_argument_rules() {
    check(&[
        // A string first argument is the bucketing key.
        (
            r#"{"fractional": ["fixed", ["a", 1], ["b", 0]]}"#,
            "{}",
            r#""a""#,
        ),
        // Shorthand bucket: weight 1.
        (r#"{"fractional": ["fixed", ["a"]]}"#, "{}", r#""a""#),
        // Without a key expression the default key needs a targeting key.
        (r#"{"fractional": [["a", 1], ["b", 1]]}"#, "{}", "null"),
        (
            r#"{"fractional": [["a", 1], ["b", 0]]}"#,
            r#"{"targetingKey": "u"}"#,
            r#""a""#,
        ),
        // A null key falls back to the default key.
        (
            r#"{"fractional": [{"var": "nope"}, ["a", 1]]}"#,
            r#"{"targetingKey": "u"}"#,
            r#""a""#,
        ),
        (
            r#"{"fractional": [{"var": "nope"}, ["a", 1]]}"#,
            "{}",
            "null",
        ),
        // Bad weights, all-zero weights and no bucket at all are null.
        (r#"{"fractional": ["k", ["a", 1.5]]}"#, "{}", "null"),
        (r#"{"fractional": ["k", ["a", "1"]]}"#, "{}", "null"),
        (r#"{"fractional": ["k", ["a", 0], ["b", 0]]}"#, "{}", "null"),
        (r#"{"fractional": ["k"]}"#, "{}", "null"),
        (r#"{"fractional": []}"#, r#"{"targetingKey": "u"}"#, "null"),
        (
            r#"{"fractional": ["k", ["a", 2147483647], ["b", 1]]}"#,
            "{}",
            "null",
        ),
        (r#"{"fractional": ["k", "not-a-bucket"]}"#, "{}", "null"),
        (r#"{"fractional": ["k", [["nested"], 1]]}"#, "{}", "null"),
        // Variants may be booleans, numbers or null, and expressions.
        (
            r#"{"fractional": ["k", [false, 0], [true, 100]]}"#,
            "{}",
            "true",
        ),
        (r#"{"fractional": ["k", [7, 1]]}"#, "{}", "7"),
        (r#"{"fractional": ["k", [null, 1]]}"#, "{}", "null"),
        (
            r#"{"fractional": ["k", [{"var": "c"}, 1]]}"#,
            r#"{"c": "red"}"#,
            r#""red""#,
        ),
        (
            r#"{"fractional": ["k", ["red", {"var": "w"}], ["blue", 0]]}"#,
            r#"{"w": 5}"#,
            r#""red""#,
        ),
        (
            r#"{"fractional": ["k", ["red", {"var": "w"}], ["blue", 1]]}"#,
            r#"{"w": 0}"#,
            r#""blue""#,
        ),
        // A non-string, non-null key expression is read as the first bucket.
        (
            r#"{"fractional": [{"var": "b"}, ["y", 0]]}"#,
            r#"{"b": ["x", 1], "targetingKey": "u"}"#,
            r#""x""#,
        ),
    ]);
}

#[test]
fn fractional_clamps_negative_weights_to_zero() {
    // flagd-testbed @operator-errors "fractional negative bucket weight is clamped to zero".
    check(&[
        (
            r#"{"fractional": ["k", ["a", -1], ["b", 2]]}"#,
            "{}",
            r#""b""#,
        ),
        (
            r#"{"fractional": [{"var": "targetingKey"}, ["one", -50], ["two", 100]]}"#,
            r#"{"targetingKey": "any-user"}"#,
            r#""two""#,
        ),
        // Only negative and zero weights: nothing to pick, as with all-zero weights.
        (
            r#"{"fractional": ["k", ["a", -5], ["b", 0]]}"#,
            "{}",
            "null",
        ),
        // A computed negative weight is clamped too.
        (
            r#"{"fractional": ["k", ["a", {"-": [0, {"var": "w"}]}], ["b", 1]]}"#,
            r#"{"w": 7}"#,
            r#""b""#,
        ),
        // Fractions stay invalid, negative or not.
        (
            r#"{"fractional": ["k", ["a", -0.5], ["b", 1]]}"#,
            "{}",
            "null",
        ),
    ]);
}

#[test]
fn fractional_with_a_single_bucket_always_resolves_to_it() {
    // flagd-testbed "Fractional operator with single entry always resolves to the only
    // variant": the default key still needs a targeting key, as for any fractional.
    let keys = [
        "u",
        "some-targeting-key",
        "jon@company.com",
        "x",
        "ceQdGm",
        "ejOoVL",
    ];
    let mut table: Vec<(&str, String, &str)> = Vec::new();
    for key in keys {
        let data = format!(r#"{{"targetingKey": "{key}"}}"#);
        table.push((
            r#"{"fractional": [["single", 1]]}"#,
            data.clone(),
            r#""single""#,
        ));
        table.push((
            r#"{"fractional": [["single"]]}"#,
            data.clone(),
            r#""single""#,
        ));
        table.push((
            r#"{"fractional": [["single", 2147483647]]}"#,
            data.clone(),
            r#""single""#,
        ));
        table.push((
            r#"{"fractional": ["fixed-key", ["single", 5]]}"#,
            data.clone(),
            r#""single""#,
        ));
        table.push((
            r#"{"fractional": [{"var": "targetingKey"}, ["single", 5]]}"#,
            data,
            r#""single""#,
        ));
    }
    table.push((r#"{"fractional": [["single", 1]]}"#, "{}".into(), "null"));
    table.push((
        r#"{"fractional": [["single", 0]]}"#,
        r#"{"targetingKey": "u"}"#.into(),
        "null",
    ));
    table.push((
        r#"{"fractional": [["single", -3]]}"#,
        r#"{"targetingKey": "u"}"#.into(),
        "null",
    ));
    let table: Vec<(&str, &str, &str)> =
        table.iter().map(|(r, d, w)| (*r, d.as_str(), *w)).collect();
    check(&table);
}

#[test]
fn unknown_operators_do_not_compile() {
    let rule: Value = serde_json::from_str(r#"{"if": [{"nope": [1]}, "a"]}"#).unwrap();
    let mut c = Compiler::new(None);
    let _ = c.compile_targeting(&rule, &mut JsonPath::new());
    assert_eq!(c.errors.len(), 1);
    assert_eq!(c.errors[0].path, "if[0].nope");
    assert!(c.errors[0].message.contains("unknown JsonLogic operator"));
}

#[test]
fn deep_nesting_is_refused_not_overflowed() {
    let mut rule = String::from("true");
    for _ in 0..200 {
        rule = format!(r#"{{"!": [{rule}]}}"#);
    }
    // serde_json's own limit (128) stops the parse first; build the value by hand.
    let mut v = Value::Bool(true);
    for _ in 0..200 {
        let mut m = serde_json::Map::new();
        m.insert("!".into(), Value::Array(vec![v]));
        v = Value::Object(m);
    }
    let mut c = Compiler::new(None);
    let _ = c.compile_targeting(&v, &mut JsonPath::new());
    assert!(c.errors.iter().any(|e| e.message.contains("nested deeper")));
    assert!(serde_json::from_str::<Value>(&rule).is_err());
}

mod budgets {
    use proptest::prelude::*;
    use proptest::sample::select;
    use serde_json::{json, Map, Value};

    use super::super::compile::Compiler;
    use super::super::interp::{eval, Budget, Env, Scope};
    use crate::path::JsonPath;

    /// Rules that build strings and arrays, grow accumulators and copy values out of
    /// iteration data.
    fn arb_rule() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(json!({"var": "accumulator"})),
            Just(json!({"var": "current"})),
            Just(json!({"var": ""})),
            Just(json!({"var": "xs"})),
            Just(json!([1, 2, 3, 4, 5, 6, 7, 8])),
            "[a-z]{0,12}".prop_map(Value::String),
            (0i64..40).prop_map(Value::from),
        ];
        leaf.prop_recursive(5, 60, 4, |inner| {
            (
                select(vec![
                    "cat", "merge", "map", "filter", "reduce", "substr", "if", "in", "missing",
                    "<", "+",
                ]),
                prop::collection::vec(inner.clone(), 0..4),
                any::<bool>(),
            )
                .prop_map(|(op, args, literal_array)| {
                    if literal_array {
                        // An array literal with operations inside.
                        return Value::Array(args);
                    }
                    let mut m = Map::new();
                    m.insert(op.to_owned(), Value::Array(args));
                    Value::Object(m)
                })
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Whatever the rule, evaluation stays within its byte budget: no value it returns,
        /// and nothing it counts, is larger (a tiny budget, so random rules reach it).
        #[test]
        fn evaluation_never_panics_and_respects_the_byte_budget(
            rule in arb_rule(), xs in prop::collection::vec("[a-z]{0,20}", 0..30)
        ) {
            let mut c = Compiler::new(None);
            let node = c.compile_targeting(&rule, &mut JsonPath::new());
            let data = json!({ "xs": xs });
            let ctx = crate::context::Context::from_value(data).unwrap();
            let budget = Budget { steps: 20_000, bytes: 2_048 };
            let env = Env::new(&ctx, "f", 0, budget);
            let result = eval(&node, &env, Scope::Root);
            let (spent, _) = env.spent();
            prop_assert!(result.bytes() <= budget.bytes, "{} bytes", result.bytes());
            prop_assert!(spent.bytes <= budget.bytes && spent.steps <= budget.steps);
        }
    }

    #[test]
    fn a_doubling_accumulator_stops_at_the_byte_budget() {
        let rule = json!({"reduce": [(0..64).collect::<Vec<_>>(),
            {"merge": [{"var": "accumulator"}, {"var": "accumulator"}]}, [1]]});
        let mut c = Compiler::new(None);
        let node = c.compile_targeting(&rule, &mut JsonPath::new());
        let ctx = crate::context::Context::empty();
        let env = Env::new(&ctx, "f", 0, Budget::FLAG);
        let result = eval(&node, &env, Scope::Root);
        assert!(result.is_null());
        assert!(env.exhausted());
        assert_eq!(
            env.spent(),
            (
                Budget {
                    steps: env.spent().0.steps,
                    bytes: 1 << 20
                },
                true
            )
        );
    }
}
