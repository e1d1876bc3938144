//! What an admin writes through the API is checked strictly, beyond what flagd would still
//! evaluate: a document that the core compiles can still carry a mistake that only shows in
//! production (a lower-case `"disabled"` that flagd reads as on, a weight that is not a whole
//! number, a variant name that cannot travel in the `X-Edgeflags-Variants` header). Reading a
//! file stays lenient, like flagd; these rules apply to writes only.

use serde_json::Value;

use crate::flags::live::Finding;

/// Longest flag key or variant name accepted on a write.
pub(crate) const MAX_NAME_BYTES: usize = 128;
/// flagd's cap on a fractional weight (and on their sum): `math.MaxInt32`.
pub(crate) const MAX_WEIGHT: u64 = i32::MAX as u64;

/// Every problem of `document` under the write rules, with its JSON path (empty = fine).
pub(crate) fn check(document: &Value) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut fail = |path: String, message: String| out.push(Finding { path, message });
    let Some(flags) = document.get("flags").and_then(Value::as_object) else {
        fail("flags".into(), "must be an object of flags".into());
        return out;
    };
    for (key, flag) in flags {
        let path = format!("flags.{key}");
        if let Some(why) = name_problem(key) {
            fail(path.clone(), format!("flag key {why}"));
        }
        let Some(flag) = flag.as_object() else {
            fail(path, "must be an object".into());
            continue;
        };
        match flag.get("state") {
            Some(Value::String(s)) if s == "ENABLED" || s == "DISABLED" => {}
            Some(other) => fail(
                format!("{path}.state"),
                format!("must be \"ENABLED\" or \"DISABLED\" (exactly), got {other}"),
            ),
            None => fail(format!("{path}.state"), "required".into()),
        }
        match flag.get("variants").and_then(Value::as_object) {
            Some(variants) if !variants.is_empty() => {
                for name in variants.keys() {
                    if let Some(why) = name_problem(name) {
                        fail(
                            format!("{path}.variants.{name}"),
                            format!("variant name {why}"),
                        );
                    }
                }
            }
            _ => fail(
                format!("{path}.variants"),
                "required: an object with at least one variant".into(),
            ),
        }
        if let Some(targeting) = flag.get("targeting") {
            weights(targeting, &format!("{path}.targeting"), &mut fail);
        }
    }
    if let Some(evaluators) = document.get("$evaluators").and_then(Value::as_object) {
        for (name, body) in evaluators {
            weights(body, &format!("$evaluators.{name}"), &mut fail);
        }
    }
    out
}

/// Why a flag key or variant name cannot be written, if it cannot: it travels in headers
/// (`X-Edgeflags-Variants: flag=variant`), so it must be a short run of visible ASCII
/// without the characters that delimit header lists and pairs.
fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".into());
    }
    if name.len() > MAX_NAME_BYTES {
        return Some(format!("is longer than {MAX_NAME_BYTES} bytes"));
    }
    name.chars()
        .find(|c| !c.is_ascii_graphic() || matches!(c, '"' | ',' | ';' | '=' | '\\'))
        .map(|c| {
            format!(
                "contains {c:?}: use visible ASCII without spaces, quotes, ',', ';', '=' or '\\'"
            )
        })
}

/// Checks the literal weights of every `fractional` under `value`: whole numbers in
/// `0..=i32::MAX` whose sum stays within `i32::MAX`, as flagd requires.
fn weights(value: &Value, path: &str, fail: &mut impl FnMut(String, String)) {
    match value {
        Value::Object(map) => {
            for (op, args) in map {
                let here = format!("{path}.{op}");
                if op == "fractional" {
                    if let Value::Array(items) = args {
                        let mut sum: u64 = 0;
                        for (i, item) in items.iter().enumerate() {
                            let Some(weight) = item.as_array().and_then(|e| e.get(1)) else {
                                continue;
                            };
                            let Value::Number(n) = weight else { continue };
                            match n.as_u64().filter(|w| *w <= MAX_WEIGHT) {
                                Some(w) => sum = sum.saturating_add(w),
                                None => fail(
                                    format!("{here}[{i}][1]"),
                                    format!(
                                        "weight {n} must be a whole number in 0..={MAX_WEIGHT}"
                                    ),
                                ),
                            }
                        }
                        if sum > MAX_WEIGHT {
                            fail(
                                here.clone(),
                                format!("weights sum to {sum}, over {MAX_WEIGHT}"),
                            );
                        }
                    }
                }
                weights(args, &here, fail);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                weights(item, &format!("{path}[{i}]"), fail);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(flag: Value) -> Value {
        json!({"flags": {"f": flag}})
    }

    fn good() -> Value {
        json!({"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
               "targeting": {"fractional": [["on", 50], ["off", 50]]}})
    }

    #[test]
    fn a_well_formed_document_passes() {
        assert_eq!(check(&doc(good())), vec![]);
    }

    /// Each case: what to change, the path the error must be reported at.
    #[test]
    fn write_rules_report_each_mistake_at_its_path() {
        let split = |w: Value| {
            let mut f = good();
            f["targeting"] = json!({"fractional": [["on", w], ["off", 50]]});
            doc(f)
        };
        let cases: Vec<(&str, Value, &str)> = vec![
            (
                "lower-case state",
                {
                    let mut f = good();
                    f["state"] = json!("disabled");
                    doc(f)
                },
                "flags.f.state",
            ),
            (
                "missing state",
                {
                    let mut f = good();
                    f.as_object_mut().unwrap().remove("state");
                    doc(f)
                },
                "flags.f.state",
            ),
            ("empty flag", doc(json!({})), "flags.f.variants"),
            (
                "empty variants",
                {
                    let mut f = good();
                    f["variants"] = json!({});
                    doc(f)
                },
                "flags.f.variants",
            ),
            (
                "negative weight",
                split(json!(-5)),
                "flags.f.targeting.fractional[0][1]",
            ),
            (
                "fractional weight",
                split(json!(1.5)),
                "flags.f.targeting.fractional[0][1]",
            ),
            (
                "weight 2^31",
                split(json!(2_147_483_648_u64)),
                "flags.f.targeting.fractional[0][1]",
            ),
            (
                "weight 1e308",
                split(json!(1e308)),
                "flags.f.targeting.fractional[0][1]",
            ),
            (
                "weights summing past i32",
                split(json!(2_147_483_600_u64)),
                "flags.f.targeting.fractional",
            ),
            (
                "CRLF in a flag key",
                json!({"flags": {"a\r\nb": good()}}),
                "flags.a\r\nb",
            ),
            (
                "CRLF in a variant",
                {
                    let mut f = good();
                    f["variants"] = json!({"o\r\nn": 1});
                    doc(f)
                },
                "flags.f.variants.o\r\nn",
            ),
            (
                "'=' in a variant",
                {
                    let mut f = good();
                    f["variants"] = json!({"a=b": 1});
                    doc(f)
                },
                "flags.f.variants.a=b",
            ),
            (
                "non-ASCII variant",
                {
                    let mut f = good();
                    f["variants"] = json!({"é": 1});
                    doc(f)
                },
                "flags.f.variants.é",
            ),
            ("flags not an object", json!({"flags": []}), "flags"),
            (
                "nested split in an evaluator",
                json!({"flags": {}, "$evaluators": {"e": {"if": [true, {"fractional": [["a", -1]]}]}}}),
                "$evaluators.e.if[1].fractional[0][1]",
            ),
        ];
        for (what, document, path) in cases {
            let found = check(&document);
            assert!(found.iter().any(|f| f.path == path), "{what}: {found:?}");
        }
    }

    #[test]
    fn long_names_are_refused_and_weights_may_be_expressions() {
        let long = "x".repeat(MAX_NAME_BYTES + 1);
        assert_eq!(check(&json!({"flags": {long.clone(): good()}})).len(), 1);
        let mut f = good();
        f["targeting"] = json!({"fractional": [["on", {"var": "w"}], ["off"]]});
        assert_eq!(check(&doc(f)), vec![]);
    }
}
