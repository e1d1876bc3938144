//! Experiment results (`GET {prefix}/features/experiments/results`): per experiment flag and
//! variant, in the flag's current epoch, exposures, conversion rate with a 95 % confidence
//! interval, uplift against control, and a sample-ratio-mismatch check against the
//! configured weights — as JSON and as CSV.
//!
//! An experiment is a flag whose metadata carries `experiment.*` or `rollout.*` keys (flagd
//! metadata is flat scalars). `experiment.control` (else `rollout.control`, else the
//! default variant) names the control; `experiment.conversionEvent` (else
//! `rollout.conversionEvent`) the event that counts as a conversion. The unit is the
//! visitor (hashed targetingKey): conversion rate = converted units / exposed units, a
//! Bernoulli proportion per unit, which is what the Wilson interval and the
//! chi-square check assume.

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::measure::stats::{self, Interval, Srm, Uplift};

/// How to read one experiment flag's data.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Spec {
    pub(crate) flag: String,
    pub(crate) epoch: String,
    pub(crate) control: String,
    pub(crate) conversion_event: Option<String>,
    /// The split's configured weights per variant, when the targeting is one `fractional`.
    pub(crate) weights: Option<Vec<(String, f64)>>,
    /// Every variant of the flag, in definition order.
    pub(crate) variants: Vec<String>,
}

/// What the metrics store counted for one variant in the epoch (also the rollout gates'
/// input).
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Arm {
    pub(crate) variant: String,
    pub(crate) exposures: u64,
    pub(crate) units: u64,
    pub(crate) converted: u64,
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    /// Distinct visitors (units) whose proxied requests this variant routed.
    #[serde(default)]
    pub(crate) visitors: u64,
    /// Of those, the visitors who saw at least one origin error.
    #[serde(default)]
    pub(crate) error_units: u64,
    #[serde(default)]
    pub(crate) cache_hits: u64,
    #[serde(default)]
    pub(crate) cache_misses: u64,
    /// Visitors by the latency bucket of their slowest request (same buckets as `latency`).
    #[serde(default)]
    pub(crate) visitor_latency: Vec<u64>,
    /// Latency histogram (`metrics::LATENCY_BOUNDS_MS` buckets + overflow).
    #[serde(default)]
    pub(crate) latency: Vec<u64>,
}

/// One variant's line of the results.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct VariantResult {
    pub(crate) variant: String,
    pub(crate) control: bool,
    pub(crate) weight: Option<f64>,
    pub(crate) exposures: u64,
    pub(crate) units: u64,
    pub(crate) conversions: Option<u64>,
    pub(crate) conversion_rate: Option<f64>,
    pub(crate) conversion_interval: Option<Interval>,
    pub(crate) uplift: Option<Uplift>,
    pub(crate) requests: u64,
    pub(crate) origin_errors: u64,
}

/// One experiment's results.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ExperimentResult {
    pub(crate) flag: String,
    pub(crate) epoch: String,
    pub(crate) control: String,
    pub(crate) conversion_event: Option<String>,
    pub(crate) variants: Vec<VariantResult>,
    pub(crate) sample_ratio: Option<Srm>,
    /// Why there is no sample-ratio check, when there is none.
    pub(crate) sample_ratio_note: Option<String>,
}

fn meta_str<'a>(meta: Option<&'a Map<String, Value>>, keys: &[&str]) -> Option<&'a str> {
    keys.iter()
        .find_map(|k| meta?.get(*k).and_then(Value::as_str))
}

/// The experiment spec of a flag definition, if it is an experiment.
pub(crate) fn spec(flag: &str, definition: &Value) -> Option<Spec> {
    let meta = definition.get("metadata").and_then(Value::as_object);
    let marked = meta.is_some_and(|m| {
        m.keys()
            .any(|k| k.starts_with("experiment.") || k.starts_with("rollout."))
    });
    if !marked {
        return None;
    }
    let variants: Vec<String> = definition
        .get("variants")
        .and_then(Value::as_object)
        .map(|v| v.keys().cloned().collect())
        .unwrap_or_default();
    let control = meta_str(meta, &["experiment.control", "rollout.control"])
        .or_else(|| definition.get("defaultVariant").and_then(Value::as_str))
        .or(variants.first().map(String::as_str))?
        .to_owned();
    Some(Spec {
        flag: flag.to_owned(),
        epoch: crate::measure::metrics::epoch(definition),
        control,
        conversion_event: meta_str(
            meta,
            &["experiment.conversionEvent", "rollout.conversionEvent"],
        )
        .map(str::to_owned),
        weights: definition.get("targeting").and_then(split_weights),
        variants,
    })
}

/// Every experiment in a flag-set document.
pub(crate) fn specs(document: &Value) -> Vec<Spec> {
    document
        .get("flags")
        .and_then(Value::as_object)
        .map(|flags| flags.iter().filter_map(|(k, d)| spec(k, d)).collect())
        .unwrap_or_default()
}

/// The weights of a targeting that is exactly one `fractional` split (optionally with a
/// bucketing expression first). Conditional targeting sends only some units through the
/// split, so no weights can be claimed for the exposures as a whole.
pub(crate) fn split_weights(targeting: &Value) -> Option<Vec<(String, f64)>> {
    let args = targeting.get("fractional")?.as_array()?;
    let mut out: Vec<(String, f64)> = Vec::new();
    for entry in args.iter().filter_map(Value::as_array) {
        let name = entry.first()?.as_str()?;
        let weight = match entry.get(1) {
            None => 1.0,
            Some(w) => w.as_f64()?,
        };
        match out.iter_mut().find(|(n, _)| n == name) {
            Some((_, w)) => *w += weight,
            None => out.push((name.to_owned(), weight)),
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Computes one experiment's results from the counted arms.
pub(crate) fn result(spec: &Spec, arms: &[Arm]) -> ExperimentResult {
    let mut names: Vec<String> = spec.variants.clone();
    for a in arms {
        if !names.contains(&a.variant) {
            names.push(a.variant.clone());
        }
    }
    let empty = Arm::default();
    let arm = |v: &str| arms.iter().find(|a| a.variant == v).unwrap_or(&empty);
    let control = arm(&spec.control);
    let converting = spec.conversion_event.is_some();
    let variants: Vec<VariantResult> = names
        .iter()
        .map(|v| {
            let a = arm(v);
            let is_control = *v == spec.control;
            VariantResult {
                variant: v.clone(),
                control: is_control,
                weight: spec
                    .weights
                    .as_ref()
                    .map(|w| w.iter().find(|(n, _)| n == v).map_or(0.0, |(_, w)| *w)),
                exposures: a.exposures,
                units: a.units,
                conversions: converting.then_some(a.converted),
                conversion_rate: (converting && a.units > 0)
                    .then(|| a.converted as f64 / a.units as f64),
                conversion_interval: if converting {
                    stats::wilson(a.converted, a.units, stats::Z95)
                } else {
                    None
                },
                uplift: if converting && !is_control {
                    stats::uplift(
                        (control.converted, control.units),
                        (a.converted, a.units),
                        stats::Z95,
                    )
                } else {
                    None
                },
                requests: a.requests,
                origin_errors: a.errors,
            }
        })
        .collect();
    let (sample_ratio, sample_ratio_note) = match &spec.weights {
        None => (
            None,
            Some(
                "the targeting is not a single fractional split: no configured ratio to check"
                    .to_owned(),
            ),
        ),
        Some(_) => {
            let observed: Vec<u64> = variants.iter().map(|v| v.units).collect();
            let weights: Vec<f64> = variants.iter().map(|v| v.weight.unwrap_or(0.0)).collect();
            match stats::srm(&observed, &weights, stats::SRM_ALPHA) {
                Some(srm) => (Some(srm), None),
                None => (None, Some("not enough data yet".to_owned())),
            }
        }
    };
    ExperimentResult {
        flag: spec.flag.clone(),
        epoch: spec.epoch.clone(),
        control: spec.control.clone(),
        conversion_event: spec.conversion_event.clone(),
        variants,
        sample_ratio,
        sample_ratio_note,
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn num(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.6}")).unwrap_or_default()
}

/// The results as CSV (RFC 4180), one line per experiment variant.
pub(crate) fn csv(results: &[ExperimentResult]) -> String {
    let mut out = String::from(
        "flag,epoch,variant,control,weight,exposures,units,conversions,conversion_rate,ci_low,ci_high,uplift_abs,uplift_rel,uplift_ci_low,uplift_ci_high,requests,origin_errors,srm_p_value,srm_mismatch\r\n",
    );
    for r in results {
        for v in &r.variants {
            let _ = write!(
                out,
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\r\n",
                csv_field(&r.flag),
                csv_field(&r.epoch),
                csv_field(&v.variant),
                v.control,
                num(v.weight),
                v.exposures,
                v.units,
                v.conversions.map(|c| c.to_string()).unwrap_or_default(),
                num(v.conversion_rate),
                num(v.conversion_interval.map(|i| i.low)),
                num(v.conversion_interval.map(|i| i.high)),
                num(v.uplift.map(|u| u.absolute)),
                num(v.uplift.and_then(|u| u.relative)),
                num(v.uplift.map(|u| u.interval.low)),
                num(v.uplift.map(|u| u.interval.high)),
                v.requests,
                v.origin_errors,
                num(r.sample_ratio.as_ref().map(|s| s.p_value)),
                r.sample_ratio
                    .as_ref()
                    .map(|s| s.mismatch.to_string())
                    .unwrap_or_default(),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn definition(meta: &str, targeting: &str) -> Value {
        serde_json::from_str(&format!(
            r#"{{"state":"ENABLED","variants":{{"a":"a","b":"b"}},"defaultVariant":"a","targeting":{targeting},"metadata":{meta}}}"#
        ))
        .unwrap()
    }

    fn arm(variant: &str, units: u64, converted: u64) -> Arm {
        Arm {
            variant: variant.into(),
            exposures: units * 2,
            units,
            converted,
            ..Arm::default()
        }
    }

    #[test]
    fn only_flags_marked_in_metadata_are_experiments() {
        let split = r#"{"fractional":[["a",50],["b",50]]}"#;
        assert!(spec("f", &definition(r#"{"owner":"x"}"#, split)).is_none());
        let s = spec(
            "f",
            &definition(r#"{"experiment.conversionEvent":"buy"}"#, split),
        )
        .unwrap();
        assert_eq!(
            s.control, "a",
            "the default variant is the control unless named"
        );
        assert_eq!(s.conversion_event.as_deref(), Some("buy"));
        assert_eq!(
            s.weights,
            Some(vec![("a".into(), 50.0), ("b".into(), 50.0)])
        );
        let s = spec(
            "f",
            &definition(
                r#"{"rollout.stages":"10,100","experiment.control":"b"}"#,
                split,
            ),
        )
        .unwrap();
        assert_eq!(s.control, "b");
    }

    #[test]
    fn split_weights_are_read_only_from_a_single_fractional() {
        for (targeting, want) in [
            (
                r#"{"fractional":[["a",90],["b",10]]}"#,
                Some(vec![("a", 90.0), ("b", 10.0)]),
            ),
            (
                r#"{"fractional":[{"var":"email"},["a"],["b"],["a"]]}"#,
                Some(vec![("a", 2.0), ("b", 1.0)]),
            ),
            (r#"{"if":[true,{"fractional":[["a",1]]},"b"]}"#, None),
            (r#"{"fractional":[["a",{"var":"w"}]]}"#, None),
            ("null", None),
        ] {
            let got = split_weights(&serde_json::from_str(targeting).unwrap());
            let want = want.map(|w| {
                w.into_iter()
                    .map(|(n, x)| (n.to_owned(), x))
                    .collect::<Vec<_>>()
            });
            assert_eq!(got, want, "{targeting}");
        }
    }

    #[test]
    fn results_give_rates_intervals_uplift_and_a_passing_ratio_check() {
        let s = spec(
            "f",
            &definition(
                r#"{"experiment.conversionEvent":"buy"}"#,
                r#"{"fractional":[["a",50],["b",50]]}"#,
            ),
        )
        .unwrap();
        let r = result(&s, &[arm("a", 1000, 100), arm("b", 1010, 150)]);
        let b = &r.variants[1];
        assert_eq!(b.conversion_rate, Some(150.0 / 1010.0));
        let ci = b.conversion_interval.unwrap();
        assert!(ci.low < 0.1486 && 0.1486 < ci.high);
        let up = b.uplift.unwrap();
        assert!(
            up.absolute > 0.04 && up.interval.low > 0.0,
            "b converts better: {up:?}"
        );
        assert!(
            r.variants[0].uplift.is_none(),
            "no uplift of the control against itself"
        );
        assert!(!r.sample_ratio.unwrap().mismatch);
    }

    #[test]
    fn a_broken_split_is_flagged_as_a_sample_ratio_mismatch() {
        let s = spec(
            "f",
            &definition(
                r#"{"experiment.control":"a"}"#,
                r#"{"fractional":[["a",90],["b",10]]}"#,
            ),
        )
        .unwrap();
        let r = result(&s, &[arm("a", 500, 0), arm("b", 500, 0)]);
        let srm = r.sample_ratio.unwrap();
        assert!(srm.mismatch && srm.p_value < 1e-9, "{srm:?}");
        assert!(
            r.variants[0].conversions.is_none(),
            "no conversion event configured"
        );
    }

    #[test]
    fn csv_has_a_header_and_one_line_per_variant() {
        let s = spec(
            "f,1",
            &definition(
                r#"{"experiment.conversionEvent":"buy"}"#,
                r#"{"fractional":[["a",50],["b",50]]}"#,
            ),
        )
        .unwrap();
        let text = csv(&[result(&s, &[arm("a", 10, 1), arm("b", 10, 2)])]);
        let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].split(',').count(), 19);
        assert!(lines[1].starts_with("\"f,1\","), "{}", lines[1]);
    }
}
