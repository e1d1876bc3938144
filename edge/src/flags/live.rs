//! The compiled flag set kept in isolate memory, and when to re-check KV.
//!
//! Steady-state requests do no KV read and no re-parse: the set is re-checked at most every
//! `refresh_ms`, and a re-check that finds the same version only bumps the timestamp. A
//! malformed document never replaces the last good set; the problem is kept for the status
//! endpoint instead.

use std::rc::Rc;

use edgeflags_core::{Diagnostic, FlagSet, LoadOptions};
use serde::Serialize;

use crate::flags::store::version_of;

/// A compiled, active flag set.
#[derive(Debug)]
pub struct Active {
    pub set: FlagSet,
    pub version: String,
    pub warnings: Vec<Diagnostic>,
    pub loaded_at_ms: u64,
    /// The flagd document restricted to flags marked `"clientSide": true` in their metadata
    /// (plus `$evaluators` and the set's metadata): what browsers may evaluate offline.
    pub client_document: String,
    /// Each flag's epoch (see `metrics::epoch`): measurements are kept per epoch.
    pub epochs: std::collections::HashMap<String, String>,
    /// The flags that are experiments (metadata `experiment.*` / `rollout.*`).
    pub experiments: Vec<crate::measure::experiments::Spec>,
}

impl Active {
    /// A flag's epoch ("" for an unknown flag).
    pub fn epoch(&self, flag: &str) -> &str {
        self.epochs.get(flag).map_or("", String::as_str)
    }
}

/// The part of a flagd document that clients may see: flags whose metadata has
/// `"clientSide": true`, the shared `$evaluators`, and the set's metadata.
pub fn client_document(text: &str) -> String {
    let Ok(serde_json::Value::Object(mut doc)) = serde_json::from_str::<serde_json::Value>(text)
    else {
        return r#"{"flags":{}}"#.to_owned();
    };
    let flags: serde_json::Map<String, serde_json::Value> = doc
        .remove("flags")
        .and_then(|f| match f {
            serde_json::Value::Object(m) => Some(m),
            _ => None,
        })
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, f)| f.pointer("/metadata/clientSide") == Some(&serde_json::Value::Bool(true)))
        .collect();
    let mut out = serde_json::Map::new();
    for key in ["$schema", "metadata"] {
        if let Some(v) = doc.remove(key) {
            out.insert(key.to_owned(), v);
        }
    }
    // Only the evaluators the published flags reference (directly or through another
    // evaluator): the rest may hold what server-side flags target (an e-mail allow-list).
    if let Some(serde_json::Value::Object(all)) = doc.remove("$evaluators") {
        let mut wanted: Vec<String> = Vec::new();
        flags.values().for_each(|f| refs(f, &mut wanted));
        let mut published = serde_json::Map::new();
        while let Some(name) = wanted.pop() {
            if published.contains_key(&name) {
                continue;
            }
            if let Some(body) = all.get(&name) {
                refs(body, &mut wanted);
                published.insert(name, body.clone());
            }
        }
        if !published.is_empty() {
            out.insert(
                "$evaluators".to_owned(),
                serde_json::Value::Object(published),
            );
        }
    }
    out.insert("flags".to_owned(), serde_json::Value::Object(flags));
    serde_json::Value::Object(out).to_string()
}

/// The evaluator names `{"$ref": NAME}` under `value`.
fn refs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::String(name)) = map.get("$ref") {
                out.push(name.clone());
            }
            map.values().for_each(|v| refs(v, out));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

/// A document that was refused, kept for the status endpoint.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    pub version: String,
    pub errors: Vec<Finding>,
    pub seen_at_ms: u64,
}

/// A validation finding with its JSON path, as the edge reports it in JSON bodies.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Finding {
    pub path: String,
    pub message: String,
}

impl From<&Diagnostic> for Finding {
    fn from(d: &Diagnostic) -> Self {
        Finding {
            path: d.path.clone(),
            message: d.message.clone(),
        }
    }
}

/// Converts core diagnostics for a JSON body.
pub fn findings(diagnostics: &[Diagnostic]) -> Vec<Finding> {
    diagnostics.iter().map(Finding::from).collect()
}

/// What a re-check found.
#[derive(Debug, PartialEq, Eq)]
pub enum Refresh {
    /// Same version as in memory.
    Unchanged,
    /// A new version compiled and is now active.
    Replaced { version: String },
    /// The stored document is malformed; the previous set (if any) stays active.
    Rejected { version: String },
    /// Nothing is stored under the key.
    Missing,
}

/// A value an isolate keeps in memory and re-checks at most every `refresh_ms`, one check at
/// a time — the flag set ([`LiveFlags`]) and the route table share this timing. It holds
/// the last value a check produced; a check that produced nothing usable keeps it.
#[derive(Debug)]
pub struct Refreshing<T> {
    value: Option<Rc<T>>,
    checked_at_ms: Option<u64>,
}

impl<T> Default for Refreshing<T> {
    fn default() -> Self {
        Self {
            value: None,
            checked_at_ms: None,
        }
    }
}

impl<T> Refreshing<T> {
    /// Whether a check is due: never checked, the interval has passed, or the clock went
    /// backwards (a check then repairs the timestamp instead of waiting for it).
    pub fn needs_check(&self, now_ms: u64, refresh_ms: u64) -> bool {
        match self.checked_at_ms {
            None => true,
            Some(at) => now_ms.saturating_sub(at) >= refresh_ms || now_ms < at,
        }
    }

    /// Marks a check as started (or done): requests arriving while it awaits the store serve
    /// the current value instead of starting checks of their own.
    pub fn claim_check(&mut self, now_ms: u64) {
        self.checked_at_ms = Some(now_ms);
    }

    /// The current value, if a check ever produced one.
    pub fn get(&self) -> Option<Rc<T>> {
        self.value.clone()
    }

    /// Replaces the value with what a check produced.
    pub fn set(&mut self, value: T) {
        self.value = Some(Rc::new(value));
    }
}

/// Per-isolate flag state.
#[derive(Debug, Default)]
pub struct LiveFlags {
    active: Refreshing<Active>,
    problem: Option<Problem>,
    missing: bool,
}

impl LiveFlags {
    /// Whether KV must be consulted before answering.
    pub fn needs_check(&self, now_ms: u64, refresh_ms: u64) -> bool {
        self.active.needs_check(now_ms, refresh_ms)
    }

    /// Marks a check as started: requests arriving while it awaits the writer serve the
    /// current set instead of starting checks of their own (one check per isolate at a time).
    pub fn claim_check(&mut self, now_ms: u64) {
        self.active.claim_check(now_ms);
    }

    /// The active set, if any document ever compiled.
    pub fn active(&self) -> Option<Rc<Active>> {
        self.active.get()
    }

    /// The last refused document, while it is still what KV holds.
    pub fn problem(&self) -> Option<&Problem> {
        self.problem.as_ref()
    }

    /// Whether the last check found no document at all.
    pub fn is_missing(&self) -> bool {
        self.missing
    }

    /// Takes in what KV holds now.
    pub fn refresh(&mut self, stored: Option<&str>, now_ms: u64) -> Refresh {
        self.active.claim_check(now_ms);
        let Some(text) = stored else {
            self.missing = true;
            return Refresh::Missing;
        };
        self.missing = false;
        let version = version_of(text);
        if self
            .active
            .value
            .as_deref()
            .is_some_and(|a| a.version == version)
        {
            self.problem = None;
            return Refresh::Unchanged;
        }
        if self.problem.as_ref().is_some_and(|p| p.version == version) {
            return Refresh::Rejected { version };
        }
        match self.install(text, now_ms) {
            Ok(version) => Refresh::Replaced { version },
            Err(errors) => {
                self.problem = Some(Problem {
                    version: version.clone(),
                    errors: findings(&errors),
                    seen_at_ms: now_ms,
                });
                Refresh::Rejected { version }
            }
        }
    }

    /// Compiles and activates a document (also used right after an admin write, so the
    /// change takes effect on this isolate at once). On error nothing changes.
    ///
    /// The load is lenient, as flagd reads a file: a document written straight into KV with
    /// a broken flag still activates; that flag answers `PARSE_ERROR` and is listed, with
    /// its errors' paths, by `active.set.flag_errors()`. Only a document that is not JSON or
    /// has no usable structure is refused. (Admin writes were validated strictly before.)
    pub fn install(&mut self, text: &str, now_ms: u64) -> Result<String, Vec<Diagnostic>> {
        let loaded =
            FlagSet::from_json_str(text, LoadOptions::lenient()).map_err(|e| e.diagnostics)?;
        let version = version_of(text);
        let doc: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
        let epochs = doc
            .get("flags")
            .and_then(serde_json::Value::as_object)
            .map(|flags| {
                flags
                    .iter()
                    .map(|(k, d)| (k.clone(), crate::measure::metrics::epoch(d)))
                    .collect()
            })
            .unwrap_or_default();
        self.active.set(Active {
            epochs,
            experiments: crate::measure::experiments::specs(&doc),
            set: loaded.set,
            version: version.clone(),
            warnings: loaded.warnings,
            loaded_at_ms: now_ms,
            client_document: client_document(text),
        });
        self.problem = None;
        self.missing = false;
        self.active.claim_check(now_ms);
        Ok(version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refreshing_value_is_checked_once_per_interval_and_kept_until_replaced() {
        let mut r: Refreshing<&str> = Refreshing::default();
        assert!(r.needs_check(1_000, 5_000), "never checked");
        assert_eq!(r.get(), None);
        r.claim_check(1_000);
        // A check in flight: other requests serve what is there (nothing yet) meanwhile.
        assert!(!r.needs_check(1_001, 5_000));
        r.set("a");
        assert_eq!(r.get().as_deref(), Some(&"a"));
        assert!(!r.needs_check(5_999, 5_000));
        assert!(r.needs_check(6_000, 5_000), "interval passed");
        assert!(r.needs_check(999, 5_000), "clock went backwards");
        // A check that produced nothing keeps the last value.
        r.claim_check(6_000);
        assert_eq!(r.get().as_deref(), Some(&"a"));
    }

    #[test]
    fn client_documents_publish_only_the_evaluators_client_flags_reference() {
        let doc = r#"{"$evaluators":{
              "staff":{"ends_with":[{"var":"email"},"@example.com"]},
              "beta":{"or":[{"$ref":"staff"},{"in":[{"var":"plan"},["beta"]]}]},
              "vips":{"in":[{"var":"email"},["ceo@example.com","cfo@example.com"]]}},
            "flags":{
              "client":{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"off",
                "targeting":{"if":[{"$ref":"beta"},"on","off"]},"metadata":{"clientSide":true}},
              "server":{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"off",
                "targeting":{"if":[{"$ref":"vips"},"on","off"]}}}}"#;
        let published: serde_json::Value = serde_json::from_str(&client_document(doc)).unwrap();
        let names: Vec<&String> = published["$evaluators"]
            .as_object()
            .unwrap()
            .keys()
            .collect();
        assert_eq!(names, ["beta", "staff"], "vips is server-side only");
        assert!(published["flags"].get("server").is_none());
        assert!(!client_document(doc).contains("ceo@example.com"));
    }

    const GOOD: &str =
        r#"{"flags":{"a":{"state":"ENABLED","variants":{"on":true},"defaultVariant":"on"}}}"#;
    const GOOD2: &str =
        r#"{"flags":{"a":{"state":"DISABLED","variants":{"on":true},"defaultVariant":"on"}}}"#;
    /// Unusable as a whole (`flags` is not an object).
    const BAD: &str = r#"{"flags":[{"state":"ENABLED","variants":{"on":true}}]}"#;
    /// One broken flag next to a healthy one.
    const PARTLY_BROKEN: &str = r#"{"flags":{
        "a":{"state":"ENABLED","variants":{"on":true},"defaultVariant":"on"},
        "b":{"state":"ENABLED","variants":{"on":true},"defaultVariant":"nope"},
        "c":{"state":"ENABLED","variants":{"on":true},"defaultVariant":"on","targeting":{"$ref":"gone"}}}}"#;

    #[test]
    fn checks_kv_only_when_the_refresh_interval_has_passed() {
        let mut live = LiveFlags::default();
        assert!(live.needs_check(0, 5000));
        live.refresh(Some(GOOD), 1000);
        assert!(!live.needs_check(5999, 5000));
        assert!(live.needs_check(6000, 5000));
        assert!(
            live.needs_check(500, 5000),
            "a clock going backwards forces a check"
        );
    }

    #[test]
    fn the_same_document_is_not_recompiled() {
        let mut live = LiveFlags::default();
        assert!(matches!(
            live.refresh(Some(GOOD), 1),
            Refresh::Replaced { .. }
        ));
        let first = live.active().unwrap();
        assert_eq!(live.refresh(Some(GOOD), 2), Refresh::Unchanged);
        assert!(Rc::ptr_eq(&first, &live.active().unwrap()));
    }

    #[test]
    fn a_malformed_document_keeps_the_last_good_set_and_reports_why() {
        let mut live = LiveFlags::default();
        live.refresh(Some(GOOD), 1);
        let good_version = live.active().unwrap().version.clone();
        let r = live.refresh(Some(BAD), 2);
        assert_eq!(
            r,
            Refresh::Rejected {
                version: version_of(BAD)
            }
        );
        assert_eq!(live.active().unwrap().version, good_version);
        let problem = live.problem().unwrap();
        assert!(
            problem.errors.iter().any(|d| d.path == "flags[0]"),
            "{problem:?}"
        );
        // Fixing the document clears the problem.
        assert!(matches!(
            live.refresh(Some(GOOD2), 3),
            Refresh::Replaced { .. }
        ));
        assert!(live.problem().is_none());
    }

    #[test]
    fn a_document_with_broken_flags_activates_and_lists_them_with_their_paths() {
        let mut live = LiveFlags::default();
        live.refresh(Some(GOOD), 1);
        assert_eq!(
            live.refresh(Some(PARTLY_BROKEN), 2),
            Refresh::Replaced {
                version: version_of(PARTLY_BROKEN)
            }
        );
        assert!(live.problem().is_none());
        let active = live.active().unwrap();
        let ctx = edgeflags_core::Context::empty();
        assert_eq!(active.set.evaluate("a", &ctx, 0).variant, Some("on"));
        for key in ["b", "c"] {
            let e = active.set.evaluate(key, &ctx, 0);
            assert_eq!(
                e.error.map(|x| x.code),
                Some(edgeflags_core::ErrorCode::ParseError),
                "{key}"
            );
        }
        let listed: Vec<(&str, Vec<&str>)> = active
            .set
            .flag_errors()
            .map(|(k, errors)| (k, errors.iter().map(|d| d.path.as_str()).collect()))
            .collect();
        assert_eq!(
            listed,
            [
                ("b", vec!["flags.b.defaultVariant"]),
                ("c", vec!["flags.c.targeting.$ref"])
            ]
        );
    }

    #[test]
    fn a_malformed_document_on_a_cold_isolate_leaves_no_active_set() {
        let mut live = LiveFlags::default();
        assert!(matches!(
            live.refresh(Some("{not json"), 1),
            Refresh::Rejected { .. }
        ));
        assert!(live.active().is_none());
        assert!(live.problem().is_some());
    }

    #[test]
    fn the_client_document_keeps_only_client_side_flags_and_the_set_metadata() {
        let doc = r#"{"metadata":{"v":1},"$evaluators":{"e":{"==":[1,1]}},"flags":{
            "pub":{"state":"ENABLED","variants":{"a":1},"defaultVariant":"a","metadata":{"clientSide":true}},
            "priv":{"state":"ENABLED","variants":{"a":1},"defaultVariant":"a","metadata":{"clientSide":"yes"}},
            "none":{"state":"ENABLED","variants":{"a":1},"defaultVariant":"a"}}}"#;
        let out: serde_json::Value = serde_json::from_str(&client_document(doc)).unwrap();
        assert_eq!(
            out["flags"].as_object().unwrap().keys().collect::<Vec<_>>(),
            vec!["pub"]
        );
        assert_eq!(out["metadata"]["v"], 1);
        assert!(
            out.get("$evaluators").is_none(),
            "an evaluator no client-side flag references is not published"
        );
        assert!(FlagSet::from_json_str(&client_document(doc), LoadOptions::default()).is_ok());
    }

    #[test]
    fn a_missing_key_is_reported_and_keeps_what_was_active() {
        let mut live = LiveFlags::default();
        live.refresh(Some(GOOD), 1);
        assert_eq!(live.refresh(None, 2), Refresh::Missing);
        assert!(live.is_missing());
        assert!(live.active().is_some());
    }
}
