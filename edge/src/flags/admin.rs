//! Admin API policy: bearer-token authentication (constant time), and the changes admins make
//! to a flag set — replace, patch one flag, kill switch — applied to the JSON document and
//! validated by the core before anything is stored.

use serde::Deserialize;
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

use crate::error::EdgeError;
use crate::flags::live::{findings, Finding};

/// Largest accepted admin request body (a flag-set document).
pub(crate) const MAX_BODY_BYTES: usize = 512 * 1024;

/// Admin tokens, by name (the name goes into the audit log; the token never does).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Tokens(Vec<(String, Vec<u8>)>);

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(n, _)| n))
            .finish()
    }
}

impl Tokens {
    /// From the secrets: `ADMIN_TOKENS` = `name:token,name:token`, or a single `ADMIN_TOKEN`
    /// (named `admin`). Tokens shorter than 16 bytes are refused: they are guessable.
    pub(crate) fn parse(tokens: Option<&str>, single: Option<&str>) -> Result<Self, EdgeError> {
        let mut out = Vec::new();
        if let Some(list) = tokens.filter(|s| !s.trim().is_empty()) {
            for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let (name, token) = item.split_once(':').ok_or_else(|| {
                    EdgeError::Config("ADMIN_TOKENS entries look like name:token".into())
                })?;
                out.push((name.trim().to_owned(), token.trim().as_bytes().to_vec()));
            }
        }
        if let Some(token) = single.map(str::trim).filter(|s| !s.is_empty()) {
            out.push(("admin".to_owned(), token.as_bytes().to_vec()));
        }
        if out.iter().any(|(_, t)| t.len() < 16) {
            return Err(EdgeError::Config(
                "admin tokens must be at least 16 characters".into(),
            ));
        }
        Ok(Self(out))
    }

    /// A key for the dashboard's session cookies, derived from every configured token: a
    /// token rotated (or revoked) ends every session signed before.
    pub(crate) fn session_key(&self) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for (name, token) in &self.0 {
            h.update(name.as_bytes());
            h.update([0]);
            h.update(token);
            h.update([0]);
        }
        h.finalize().into()
    }

    /// Whether `name` is a configured token's name (a failed dashboard sign-in records the
    /// name tried only when it is one, so clients cannot write free text into the log).
    pub(crate) fn has_name(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n == name)
    }

    /// Checks `Authorization: Bearer <token>`; returns the token's name. Every configured
    /// token is compared in constant time, and all of them are compared, so timing reveals
    /// neither the token nor which one matched.
    pub(crate) fn authenticate(&self, authorization: Option<&str>) -> Result<String, EdgeError> {
        if self.0.is_empty() {
            return Err(EdgeError::Forbidden(
                "the admin API is disabled: set the ADMIN_TOKEN secret".into(),
            ));
        }
        let presented = authorization
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(EdgeError::Unauthorized)?;
        let mut matched: Option<&str> = None;
        for (name, token) in &self.0 {
            if bool::from(token.as_slice().ct_eq(presented.as_bytes())) {
                matched = matched.or(Some(name));
            }
        }
        matched
            .map(str::to_owned)
            .ok_or_else(|| EdgeError::Forbidden("invalid admin token".into()))
    }
}

/// `PATCH {prefix}/flags/{key}` body. `targeting: null` removes targeting.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct FlagPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) state: Option<String>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) default_variant: Option<Value>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) targeting: Option<Value>,
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(Null)`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// `POST {prefix}/features/disable|enable` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FeatureToggle {
    pub(crate) flag: String,
}

/// A validated change, ready to store.
#[derive(Debug, PartialEq)]
pub struct Change {
    /// The new document text.
    pub document: String,
    /// One line for the audit log.
    pub summary: String,
}

/// Parses a JSON request body, mapping errors to 400s.
pub(crate) fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, EdgeError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(EdgeError::PayloadTooLarge(MAX_BODY_BYTES));
    }
    serde_json::from_slice(body)
        .map_err(|e| EdgeError::BadRequest(format!("invalid request body: {e}")))
}

/// Which flags a write is answerable for: errors there refuse it, errors elsewhere (an old,
/// hand-written mistake in another flag, which flagd would still load) are only warnings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope<'a> {
    /// A whole new document (a replacement): any error refuses it.
    All,
    /// A change to one flag (patch, kill switch, rollout decision): only its errors refuse.
    Flag(&'a str),
    /// A document that was accepted before or is read as flagd reads a file (rollback, a
    /// document written straight into KV): it must load; broken flags are warnings.
    Nothing,
}

/// Validates a new document with the core; every refusing error is reported with its path.
/// Returns the warnings (schema deviations flagd evaluates anyway, and broken flags outside
/// the scope), for the answer.
pub(crate) fn validate(document: &str, scope: Scope<'_>) -> Result<Vec<Finding>, EdgeError> {
    let options = match scope {
        Scope::All => edgeflags_core::LoadOptions::default(),
        Scope::Flag(_) | Scope::Nothing => edgeflags_core::LoadOptions::lenient(),
    };
    let loaded = edgeflags_core::FlagSet::from_json_str(document, options)
        .map_err(|e| EdgeError::InvalidFlagSet(findings(&e.diagnostics)))?;
    let mut warnings = findings(&loaded.warnings);
    let mut refused = Vec::new();
    for (flag, errors) in loaded.set.flag_errors() {
        if scope == Scope::Flag(flag) {
            refused.extend(findings(errors));
        } else {
            warnings.extend(findings(errors));
        }
    }
    if !refused.is_empty() {
        return Err(EdgeError::InvalidFlagSet(refused));
    }
    // Rollout plans live in flag metadata the core does not interpret: check them here, so
    // a misspelt gate is refused at write time instead of failing the next cron run.
    let doc: Value = serde_json::from_str(document)
        .map_err(|e| EdgeError::BadRequest(format!("invalid JSON: {e}")))?;
    crate::measure::rollout::plans(&doc).map_err(EdgeError::InvalidFlagSet)?;
    Ok(warnings)
}

/// Applies a patch to one flag of `current` and validates the result.
pub(crate) fn patch_flag(
    current: &str,
    flag: &str,
    patch: &FlagPatch,
) -> Result<Change, EdgeError> {
    let mut doc = parse_doc(current)?;
    let entry = flag_mut(&mut doc, flag)?;
    let mut changed = Vec::new();
    if let Some(state) = &patch.state {
        if state != "ENABLED" && state != "DISABLED" {
            return Err(EdgeError::BadRequest(format!(
                "state must be ENABLED or DISABLED, got {state:?}"
            )));
        }
        changed.push(format!("state {}", state));
        entry.insert("state".into(), Value::String(state.clone()));
    }
    if let Some(dv) = &patch.default_variant {
        changed.push(format!("defaultVariant {dv}"));
        entry.insert("defaultVariant".into(), dv.clone());
    }
    match &patch.targeting {
        Some(Value::Null) => {
            changed.push("targeting removed".into());
            entry.remove("targeting");
        }
        Some(t) => {
            changed.push("targeting replaced".into());
            entry.insert("targeting".into(), t.clone());
        }
        None => {}
    }
    if changed.is_empty() {
        return Err(EdgeError::BadRequest(
            "nothing to change: give state, defaultVariant or targeting".into(),
        ));
    }
    let change = finish(doc, format!("{flag}: {}", changed.join(", ")))?;
    if patch.targeting.is_some() {
        refuse_breaking_others(current, &change.document, flag)?;
    }
    Ok(change)
}

/// A one-flag change answers only for that flag's errors (see [`Scope`]), but the set's
/// budgets (compiled size after `$ref` expansion, worst-case steps summed over the flags) are
/// shared: the flag that crosses one is the first in key order, not necessarily the patched
/// one. A targeting patch that leaves another flag broken that was not broken before is
/// refused, with that flag's errors.
fn refuse_breaking_others(before: &str, after: &str, flag: &str) -> Result<(), EdgeError> {
    let broken = |doc: &str| -> Vec<(String, Vec<Finding>)> {
        edgeflags_core::FlagSet::from_json_str(doc, edgeflags_core::LoadOptions::lenient())
            .map(|l| {
                l.set
                    .flag_errors()
                    .filter(|(key, _)| *key != flag)
                    .map(|(key, errors)| (key.to_owned(), findings(errors)))
                    .collect()
            })
            .unwrap_or_default()
    };
    let was: Vec<String> = broken(before).into_iter().map(|(key, _)| key).collect();
    let newly: Vec<Finding> = broken(after)
        .into_iter()
        .filter(|(key, _)| !was.contains(key))
        .flat_map(|(_, errors)| errors)
        .collect();
    if newly.is_empty() {
        Ok(())
    } else {
        Err(EdgeError::InvalidFlagSet(newly))
    }
}

/// The kill switch (and its reverse): sets one flag's state.
pub(crate) fn set_state(current: &str, flag: &str, enabled: bool) -> Result<Change, EdgeError> {
    let mut doc = parse_doc(current)?;
    let entry = flag_mut(&mut doc, flag)?;
    let state = if enabled { "ENABLED" } else { "DISABLED" };
    let before = entry
        .get("state")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_owned();
    entry.insert("state".into(), Value::String(state.into()));
    finish(doc, format!("{flag}: state {before} -> {state}"))
}

fn parse_doc(text: &str) -> Result<Value, EdgeError> {
    serde_json::from_str(text).map_err(|e| {
        EdgeError::Conflict(format!(
            "the stored flag set is not JSON ({e}); replace it whole"
        ))
    })
}

fn flag_mut<'a>(doc: &'a mut Value, flag: &str) -> Result<&'a mut Map<String, Value>, EdgeError> {
    doc.get_mut("flags")
        .and_then(Value::as_object_mut)
        .and_then(|flags| flags.get_mut(flag))
        .and_then(Value::as_object_mut)
        .ok_or_else(|| EdgeError::FlagNotFound(flag.to_owned()))
}

/// The changed document, not yet validated: the writer validates every change once, with the
/// scope of what it changed (see [`Scope`]).
fn finish(doc: Value, summary: String) -> Result<Change, EdgeError> {
    let document =
        serde_json::to_string_pretty(&doc).map_err(|e| EdgeError::Internal(e.to_string()))?;
    Ok(Change { document, summary })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"{"flags":{"notifications":{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"off"}}}"#;
    const T1: &str = "tok-aaaaaaaaaaaaaaaaaaaa";
    const T2: &str = "tok-bbbbbbbbbbbbbbbbbbbb";

    fn tokens() -> Tokens {
        Tokens::parse(Some(&format!("alice:{T1}, bob:{T2}")), None).unwrap()
    }

    #[test]
    fn authentication_distinguishes_missing_wrong_and_right_tokens() {
        let t = tokens();
        assert_eq!(t.authenticate(None), Err(EdgeError::Unauthorized));
        assert_eq!(
            t.authenticate(Some("Basic xyz")),
            Err(EdgeError::Unauthorized)
        );
        assert_eq!(
            t.authenticate(Some("Bearer ")),
            Err(EdgeError::Unauthorized)
        );
        assert!(matches!(
            t.authenticate(Some("Bearer tok-wrongwrongwrongwrong")),
            Err(EdgeError::Forbidden(_))
        ));
        assert!(matches!(
            t.authenticate(Some(&format!("Bearer {T1}x"))),
            Err(EdgeError::Forbidden(_))
        ));
        assert_eq!(
            t.authenticate(Some(&format!("Bearer {T2}"))).unwrap(),
            "bob"
        );
        assert_eq!(
            t.authenticate(Some(&format!("Bearer {T1}"))).unwrap(),
            "alice"
        );
    }

    #[test]
    fn no_configured_token_disables_the_api_and_short_tokens_are_refused() {
        let none = Tokens::parse(None, None).unwrap();
        assert!(matches!(
            none.authenticate(Some(&format!("Bearer {T1}"))),
            Err(EdgeError::Forbidden(_))
        ));
        assert!(Tokens::parse(None, Some("short")).is_err());
        assert!(Tokens::parse(Some("noname"), None).is_err());
        assert_eq!(
            Tokens::parse(None, Some(T1))
                .unwrap()
                .authenticate(Some(&format!("Bearer {T1}")))
                .unwrap(),
            "admin"
        );
    }

    #[test]
    fn the_kill_switch_disables_one_flag_and_says_so() {
        let c = set_state(DOC, "notifications", false).unwrap();
        let doc: Value = serde_json::from_str(&c.document).unwrap();
        assert_eq!(doc["flags"]["notifications"]["state"], "DISABLED");
        assert_eq!(c.summary, "notifications: state ENABLED -> DISABLED");
        assert_eq!(
            set_state(DOC, "nope", false),
            Err(EdgeError::FlagNotFound("nope".into()))
        );
    }

    #[test]
    fn patches_change_only_the_named_fields_and_are_validated() {
        let patch: FlagPatch =
            serde_json::from_str(r#"{"defaultVariant":"on","targeting":{"if":[true,"off"]}}"#)
                .unwrap();
        let c = patch_flag(DOC, "notifications", &patch).unwrap();
        let doc: Value = serde_json::from_str(&c.document).unwrap();
        assert_eq!(doc["flags"]["notifications"]["defaultVariant"], "on");
        assert_eq!(doc["flags"]["notifications"]["state"], "ENABLED");

        let bad: FlagPatch = serde_json::from_str(r#"{"defaultVariant":"missing"}"#).unwrap();
        let changed = patch_flag(DOC, "notifications", &bad).unwrap();
        match validate(&changed.document, Scope::Flag("notifications")) {
            Err(EdgeError::InvalidFlagSet(errors)) => {
                assert!(
                    errors
                        .iter()
                        .any(|e| e.path == "flags.notifications.defaultVariant"),
                    "{errors:?}"
                )
            }
            other => panic!("{other:?}"),
        }
        let removal: FlagPatch = serde_json::from_str(r#"{"targeting":null}"#).unwrap();
        assert_eq!(removal.targeting, Some(Value::Null));
        assert!(matches!(
            patch_flag(DOC, "notifications", &FlagPatch::default()),
            Err(EdgeError::BadRequest(_))
        ));
        assert!(
            serde_json::from_str::<FlagPatch>(r#"{"variants":{}}"#).is_err(),
            "unknown fields are refused"
        );
    }

    /// A flag whose worst-case step count is ~600,000 (300 × 2,000): three fit in the set's
    /// budget of 2,000,000, a fourth does not.
    fn heavy() -> Value {
        let outer: Vec<u32> = (0..300).collect();
        let inner: Vec<u32> = (0..1000).collect();
        serde_json::json!({"if": [{"some": [outer, {"some": [inner, false]}]}, "on"]})
    }

    #[test]
    fn a_patch_that_pushes_another_flag_over_a_set_budget_is_refused() {
        let flag = |targeting: Value| {
            serde_json::json!({"state": "ENABLED", "variants": {"on": true, "off": false},
                "defaultVariant": "off", "targeting": targeting})
        };
        let doc = serde_json::json!({"flags": {"a": flag(Value::Null), "b": flag(heavy()),
            "c": flag(heavy()), "d": flag(heavy())}})
        .to_string();
        assert!(validate(&doc, Scope::All).is_ok());
        let patch = FlagPatch {
            targeting: Some(heavy()),
            ..FlagPatch::default()
        };
        // "a" is fine itself; the set's budget runs out at "d", which the patch breaks.
        match patch_flag(&doc, "a", &patch) {
            Err(EdgeError::InvalidFlagSet(errors)) => {
                assert_eq!(errors[0].path, "flags.d.targeting", "{errors:?}");
            }
            other => panic!("{other:?}"),
        }
        // A kill switch changes no targeting: never refused over the set's budgets.
        let over = serde_json::json!({"flags": {"a": flag(heavy()), "b": flag(heavy()),
            "c": flag(heavy()), "d": flag(heavy())}})
        .to_string();
        let killed = set_state(&over, "a", false).unwrap();
        assert!(validate(&killed.document, Scope::Flag("a")).is_ok());
    }

    #[test]
    fn a_replacement_lists_every_error_with_its_path() {
        let doc = r#"{"flags":{"a":{"state":"ENABLED","variants":{"x":1},"defaultVariant":"y"},
                                 "b":{"state":"ENABLED","variants":[1],"defaultVariant":"x"}}}"#;
        match validate(doc, Scope::All) {
            Err(EdgeError::InvalidFlagSet(errors)) => {
                let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
                assert!(paths.contains(&"flags.a.defaultVariant"), "{paths:?}");
                assert!(paths.iter().any(|p| p.starts_with("flags.b")), "{paths:?}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(validate(DOC, Scope::All), Ok(vec![]));
    }

    #[test]
    fn a_flag_set_with_a_malformed_rollout_plan_is_refused_with_the_path() {
        let doc = r#"{"flags":{"b":{"state":"ENABLED","variants":{"v1":1,"v2":2},"defaultVariant":"v1",
            "targeting":{"fractional":[["v1",90],["v2",10]]},
            "metadata":{"rollout.stages":"10,50,100","rollout.minSamples":5}}}}"#;
        match validate(doc, Scope::All) {
            Err(EdgeError::InvalidFlagSet(errors)) => assert!(
                errors.iter().any(|e| e.path.contains("rollout.minSamples")),
                "{errors:?}"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn oversized_and_malformed_bodies_are_4xx() {
        assert!(matches!(
            parse_body::<FeatureToggle>(b"{"),
            Err(EdgeError::BadRequest(_))
        ));
        let big = vec![b' '; MAX_BODY_BYTES + 1];
        assert_eq!(
            parse_body::<FeatureToggle>(&big).unwrap_err(),
            EdgeError::PayloadTooLarge(MAX_BODY_BYTES)
        );
    }
}
