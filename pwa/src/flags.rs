//! Offline flags policy: what the service worker keeps (the visitor's targetingKey, bulk
//! answers per evaluation context, the client-side flag definitions) and how it answers
//! OFREP offline — client-side flags evaluated with `edgeflags-core` exactly as the edge
//! does, other flags from a stored answer for the same context with reason `CACHED`.

use std::collections::BTreeMap;

use edgeflags_core::ofrep::{failure_body, Bootstrap};
use edgeflags_core::{Context, ErrorCode, FlagSet};
use serde_json::{json, Value};

use crate::expiration::sort_by_time;
use crate::json::Obj;

/// The fingerprint key of a context, as in the edge's ETags.
pub use edgeflags_core::ofrep::context_tag as fingerprint;
/// The flag-set version in an edge ETag.
pub use edgeflags_core::ofrep::version_of_etag;
/// Largest OFREP request body accepted (as the edge).
pub use edgeflags_core::ofrep::MAX_BODY_BYTES;

/// One stored bulk answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Fingerprint of the evaluation context (hex), as in the edge's ETags.
    pub fingerprint: String,
    /// The flag-set version the answer was computed from, when known.
    pub version: Option<String>,
    /// The OFREP bulk items.
    pub flags: Vec<Value>,
    /// When the worker stored it (ms since the epoch).
    pub stored_at: f64,
}

impl Snapshot {
    /// The stored form.
    pub fn to_value(&self) -> Value {
        json!({"fingerprint": self.fingerprint, "version": self.version,
            "flags": self.flags, "storedAt": self.stored_at})
    }

    /// Reads the stored form.
    pub fn from_value(v: &Value) -> Result<Self, String> {
        let o = Obj::new(v, "flag snapshot")?;
        Ok(Self {
            fingerprint: o.req_str("fingerprint")?.to_owned(),
            version: o.str("version")?.map(str::to_owned),
            flags: o.arr("flags")?.cloned().unwrap_or_default(),
            stored_at: o.f64("storedAt")?.unwrap_or(0.0),
        })
    }

    /// A stored list of snapshots (unreadable entries are skipped).
    pub fn list_from_value(v: &Value) -> Vec<Self> {
        v.as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|s| Self::from_value(s).ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The stored form of a list.
    pub fn list_to_value(list: &[Self]) -> Value {
        Value::Array(list.iter().map(Self::to_value).collect())
    }
}

/// The client-side flag definitions (the edge's `client-flags` document).
#[derive(Debug, Clone, PartialEq)]
pub struct Definitions {
    /// The flag-set version (the document's ETag without quotes).
    pub version: String,
    /// The flagd document text.
    pub document: String,
    /// When the worker fetched (or revalidated) it.
    pub fetched_at: f64,
}

impl Definitions {
    /// The stored form.
    pub fn to_value(&self) -> Value {
        json!({"version": self.version, "document": self.document, "fetchedAt": self.fetched_at})
    }

    /// Reads the stored form.
    pub fn from_value(v: &Value) -> Result<Self, String> {
        let o = Obj::new(v, "flag definitions")?;
        Ok(Self {
            version: o.req_str("version")?.to_owned(),
            document: o.req_str("document")?.to_owned(),
            fetched_at: o.f64("fetchedAt")?.unwrap_or(0.0),
        })
    }
}

/// How old stored definitions may get before a worker start revalidates them (a newer
/// flag-set version seen in a bootstrap or an OFREP answer triggers a refresh at once).
pub const DEFINITIONS_MAX_AGE_MS: f64 = 5.0 * 60.0 * 1000.0;

/// Whether the definitions should be revalidated at a worker start.
pub fn refresh_due(defs: Option<&Definitions>, now_ms: f64) -> bool {
    defs.is_none_or(|d| now_ms - d.fetched_at >= DEFINITIONS_MAX_AGE_MS || now_ms < d.fetched_at)
}

/// What a bootstrap (`edgeflags_core::ofrep::Bootstrap`, the edge's encoding) teaches the
/// worker: the visitor's key and the answer for the context the edge used.
pub fn from_bootstrap(bootstrap: Bootstrap, now_ms: f64) -> (Option<String>, Snapshot) {
    let snapshot = Snapshot {
        fingerprint: fingerprint(&bootstrap.context()),
        version: bootstrap.version(),
        flags: bootstrap.flags,
        stored_at: now_ms,
    };
    (bootstrap.targeting_key, snapshot)
}

/// Parses an OFREP request body with the edge's parser (`edgeflags_core::ofrep`), so an
/// offline answer is computed for the same context the edge would use.
pub use edgeflags_core::ofrep::parse_request;

/// Adds (or replaces) the snapshot for its context, keeping the newest `max`.
pub fn remember(snapshots: &mut Vec<Snapshot>, new: Snapshot, max: usize) {
    snapshots.retain(|s| s.fingerprint != new.fingerprint);
    snapshots.push(new);
    // Newest first, stably: ascending by the negated time (negation reverses the total
    // order exactly), through the worker's one sort.
    let mut order: Vec<(f64, usize)> = snapshots.iter().map(|s| -s.stored_at).zip(0..).collect();
    sort_by_time(&mut order);
    let mut slots: Vec<Option<Snapshot>> = snapshots.drain(..).map(Some).collect();
    snapshots.extend(
        order
            .iter()
            .filter_map(|&(_, i)| slots.get_mut(i).and_then(Option::take)),
    );
    snapshots.truncate(max.max(1));
}

/// Loads client-side definitions leniently, as the edge reads its document: a broken flag
/// answers `PARSE_ERROR` and the others evaluate. `None` only when the document as a whole
/// is unusable.
pub fn compile(defs: &Definitions) -> Option<FlagSet> {
    FlagSet::from_json_str(&defs.document, edgeflags_core::LoadOptions::lenient())
        .ok()
        .map(|l| l.set)
}

/// A stored item served again: `CACHED`, unless it carries no value (a disabled flag or an
/// error keeps what it said).
fn cached(item: &Value) -> Value {
    let mut item = item.clone();
    if item.get("value").is_some() && item.get("errorCode").is_none() {
        item["reason"] = Value::String("CACHED".into());
    }
    item
}

/// What the offline answer draws on.
#[derive(Debug, Clone, Copy)]
pub struct Sources<'a> {
    /// Compiled client-side definitions with their metadata.
    pub definitions: Option<(&'a FlagSet, &'a Definitions)>,
    /// The stored answer for the request's context, if any.
    pub snapshot: Option<&'a Snapshot>,
}

impl Sources<'_> {
    /// Whether there is anything to answer from.
    pub fn is_empty(&self) -> bool {
        self.definitions.is_none() && self.snapshot.is_none()
    }

    /// A snapshot taken after the definitions were fetched, from a different flag-set
    /// version, is the fresher truth for its context.
    fn snapshot_is_fresher(&self) -> bool {
        match (self.definitions, self.snapshot) {
            (Some((_, d)), Some(s)) => {
                s.version.as_deref() != Some(d.version.as_str()) && s.stored_at > d.fetched_at
            }
            (None, Some(_)) => true,
            _ => false,
        }
    }

    /// The offline OFREP bulk body: stored items (CACHED) overlaid with client-side flags
    /// evaluated now, in key order — unless the stored answer is the fresher one.
    pub fn bulk(&self, ctx: &Context, now_secs: u64) -> Value {
        let mut items: BTreeMap<String, Value> = BTreeMap::new();
        let fresher = self.snapshot_is_fresher();
        let add_snapshot = |items: &mut BTreeMap<String, Value>, overwrite: bool| {
            for item in self.snapshot.iter().flat_map(|s| s.flags.iter()) {
                if let Some(key) = item.get("key").and_then(Value::as_str) {
                    if overwrite || !items.contains_key(key) {
                        items.insert(key.to_owned(), cached(item));
                    }
                }
            }
        };
        if let Some((set, _)) = self.definitions {
            for eval in set.evaluate_all(ctx, now_secs).flags {
                if let Ok(v) = serde_json::to_value(&eval) {
                    items.insert(eval.key.into_owned(), v);
                }
            }
        }
        add_snapshot(&mut items, fresher);
        json!({ "flags": items.into_values().collect::<Vec<_>>() })
    }

    /// The offline OFREP single-flag answer: (HTTP status, body).
    pub fn single(&self, key: &str, ctx: &Context, now_secs: u64) -> (u16, Value) {
        let stored = self.snapshot.and_then(|s| {
            s.flags
                .iter()
                .find(|i| i.get("key").and_then(Value::as_str) == Some(key))
        });
        let evaluated = self
            .definitions
            .filter(|(set, _)| set.contains(key))
            .map(|(set, _)| set.evaluate(key, ctx, now_secs));
        match (evaluated, stored) {
            (Some(_), Some(item)) if self.snapshot_is_fresher() => (200, cached(item)),
            (Some(eval), _) => (
                eval.http_status(),
                serde_json::to_value(&eval).unwrap_or(Value::Null),
            ),
            (None, Some(item)) => (200, cached(item)),
            (None, None) => (
                404,
                failure_body(
                    Some(key),
                    ErrorCode::FlagNotFound.as_str(),
                    &format!("flag `{key}` is not available offline"),
                ),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"{"metadata":{"version":"d1"},"$evaluators":{"staff":{"ends_with":[{"var":"email"},"@example.com"]}},"flags":{
        "new-checkout":{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"off",
            "targeting":{"if":[{"$ref":"staff"},"on",{"fractional":[["on",50],["off",50]]}]},"metadata":{"clientSide":true}},
        "theme":{"state":"ENABLED","variants":{"classic":"classic","fresh":"fresh"},"defaultVariant":"classic",
            "targeting":{"if":[{"sem_ver":[{"var":"appVersion"},">=","2.0.0"]},"fresh","classic"]},"metadata":{"clientSide":true}},
        "notifications":{"state":"DISABLED","variants":{"on":true,"off":false},"defaultVariant":"on","metadata":{"clientSide":true}}}}"#;

    fn defs(fetched_at: f64) -> Definitions {
        Definitions {
            version: "v1".into(),
            document: DOC.into(),
            fetched_at,
        }
    }

    fn ctx(json: &str) -> Context {
        Context::from_json_str(json).unwrap()
    }

    #[test]
    fn a_bootstrap_becomes_the_snapshot_of_the_visitors_context() {
        // Reading the payload out of a page is edgeflags_core::ofrep's (round trip from the
        // edge's encoder tested there).
        let html = r#"<!doctype html><html><head><script id="edgeflags-bootstrap" type="application/json">{"flags":[{"key":"banner","value":{"text":"\u003c/script\u003e"},"reason":"STATIC"}],"etag":"\"abc-0011\"","targetingKey":"u-1"}</script><title>x</title></head></html>"#;
        let b = Bootstrap::from_html(html).unwrap();
        let (key, snap) = from_bootstrap(b, 5.0);
        assert_eq!(key.as_deref(), Some("u-1"));
        assert_eq!(snap.version.as_deref(), Some("abc"));
        assert_eq!(snap.flags[0]["value"]["text"], "</script>");
        assert_eq!(snap.stored_at, 5.0);
        assert_eq!(
            snap.fingerprint,
            fingerprint(&ctx(r#"{"targetingKey":"u-1"}"#))
        );
        let (key, snap) = from_bootstrap(Bootstrap::default(), 1.0);
        assert_eq!((key, snap.version), (None, None));
        assert_eq!(snap.fingerprint, fingerprint(&Context::empty()));
    }

    #[test]
    fn etag_versions_are_read_from_both_edge_formats() {
        assert_eq!(version_of_etag("\"abc\"").as_deref(), Some("abc"));
        assert_eq!(version_of_etag("W/\"abc-0f0f\"").as_deref(), Some("abc"));
        assert_eq!(version_of_etag("\"\""), None);
    }

    #[test]
    fn requests_fill_the_visitor_key() {
        // The parser itself is edgeflags_core::ofrep's (tested there, shared with the edge).
        let c = parse_request(r#"{"context":{"plan":"pro"}}"#, Some("v-1")).unwrap();
        assert_eq!(c.targeting_key(), Some("v-1"));
        let err = parse_request(r#"{"context":"x"}"#, None).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidContext);
    }

    #[test]
    fn offline_bulk_evaluates_client_flags_and_serves_stored_ones_as_cached() {
        let d = defs(10.0);
        let set = compile(&d).unwrap();
        let c = ctx(r#"{"targetingKey":"u-1","email":"ann@example.com","appVersion":"2.1.0"}"#);
        let snap = Snapshot {
            fingerprint: fingerprint(&c),
            version: Some("v1".into()),
            flags: vec![
                json!({"key":"backend","value":"v2","variant":"v2","reason":"TARGETING_MATCH","metadata":{}}),
                json!({"key":"theme","value":"classic","variant":"classic","reason":"STATIC","metadata":{}}),
                json!({"key":"gone","errorCode":"GENERAL","errorDetails":"x"}),
            ],
            stored_at: 5.0,
        };
        let s = Sources {
            definitions: Some((&set, &d)),
            snapshot: Some(&snap),
        };
        let body = s.bulk(&c, 1_800_000_000);
        let by_key = |k: &str| {
            body["flags"]
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["key"] == k)
                .cloned()
                .unwrap()
        };
        let keys: Vec<&str> = body["flags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["key"].as_str().unwrap())
            .collect();
        assert_eq!(
            keys,
            ["backend", "gone", "new-checkout", "notifications", "theme"]
        );
        // Client-side flags: evaluated now, exactly as the core (= the edge) does.
        assert_eq!(
            by_key("new-checkout"),
            serde_json::to_value(set.evaluate("new-checkout", &c, 1_800_000_000)).unwrap()
        );
        assert_eq!(by_key("theme")["variant"], "fresh");
        assert_eq!(by_key("theme")["reason"], "TARGETING_MATCH");
        assert_eq!(by_key("notifications")["reason"], "DISABLED");
        // Others: the stored answer, marked CACHED; stored errors stay errors.
        assert_eq!(by_key("backend")["reason"], "CACHED");
        assert_eq!(by_key("backend")["variant"], "v2");
        assert_eq!(by_key("gone")["errorCode"], "GENERAL");
    }

    #[test]
    fn a_snapshot_from_a_newer_flag_set_beats_older_definitions() {
        let d = defs(10.0);
        let set = compile(&d).unwrap();
        let c = ctx(r#"{"targetingKey":"u-1"}"#);
        let newer = Snapshot {
            fingerprint: fingerprint(&c),
            version: Some("v2".into()),
            flags: vec![
                json!({"key":"theme","value":"fresh","variant":"fresh","reason":"STATIC","metadata":{}}),
            ],
            stored_at: 20.0,
        };
        let s = Sources {
            definitions: Some((&set, &d)),
            snapshot: Some(&newer),
        };
        assert_eq!(s.bulk(&c, 0)["flags"][2]["reason"], "CACHED");
        assert_eq!(s.single("theme", &c, 0), (200, cached(&newer.flags[0])));
        // The same version stored earlier does not.
        let same = Snapshot {
            version: Some("v1".into()),
            ..newer.clone()
        };
        let s = Sources {
            snapshot: Some(&same),
            ..s
        };
        let (_, evaluated) = s.single("theme", &c, 0);
        assert_eq!(
            (&evaluated["reason"], &evaluated["variant"]),
            (&json!("TARGETING_MATCH"), &json!("classic"))
        );
    }

    #[test]
    fn a_broken_client_flag_answers_parse_error_offline_and_the_others_still_evaluate() {
        let doc = DOC.replace(
            r#""notifications":{"state":"DISABLED""#,
            r#""broken":{"state":"ENABLED","variants":{"on":true},"defaultVariant":"on",
                "targeting":{"$ref":"gone"},"metadata":{"clientSide":true}},
            "notifications":{"state":"DISABLED""#,
        );
        let d = Definitions {
            document: doc,
            ..defs(10.0)
        };
        let set = compile(&d).expect("a partly broken document still compiles");
        let c = ctx(r#"{"targetingKey":"u-1","email":"bob@example.com"}"#);
        let s = Sources {
            definitions: Some((&set, &d)),
            snapshot: None,
        };
        let (status, body) = s.single("broken", &c, 0);
        assert_eq!(
            (status, body["errorCode"].as_str()),
            (400, Some("PARSE_ERROR"))
        );
        let (status, body) = s.single("new-checkout", &c, 0);
        assert_eq!((status, body["variant"].as_str()), (200, Some("on")));
        assert_eq!(s.bulk(&c, 0)["flags"].as_array().map(Vec::len), Some(4));
    }

    #[test]
    fn single_flags_offline() {
        let d = defs(10.0);
        let set = compile(&d).unwrap();
        let c = ctx(r#"{"targetingKey":"u-1","email":"bob@example.com"}"#);
        let s = Sources {
            definitions: Some((&set, &d)),
            snapshot: None,
        };
        let (status, body) = s.single("new-checkout", &c, 0);
        assert_eq!((status, body["variant"].as_str()), (200, Some("on")));
        let (status, body) = s.single("backend", &c, 0);
        assert_eq!(
            (status, body),
            (
                404,
                json!({"key": "backend", "errorCode": "FLAG_NOT_FOUND",
                    "errorDetails": "flag `backend` is not available offline"})
            )
        );
        assert!(Sources {
            definitions: None,
            snapshot: None
        }
        .is_empty());
    }

    #[test]
    fn definitions_are_revalidated_when_missing_or_old() {
        assert!(refresh_due(None, 0.0));
        let d = defs(1_000_000.0);
        assert!(!refresh_due(
            Some(&d),
            1_000_000.0 + DEFINITIONS_MAX_AGE_MS - 1.0
        ));
        assert!(refresh_due(Some(&d), 1_000_000.0 + DEFINITIONS_MAX_AGE_MS));
        assert!(refresh_due(Some(&d), 0.0), "a clock that went backwards");
    }

    #[test]
    fn stored_forms_survive_the_round_trip() {
        let d = defs(3.0);
        assert_eq!(Definitions::from_value(&d.to_value()), Ok(d));
        let s = Snapshot {
            fingerprint: "ab".into(),
            version: Some("v".into()),
            flags: vec![json!({"key": "x"})],
            stored_at: 1.0,
        };
        let list = vec![s.clone(), Snapshot { version: None, ..s }];
        assert_eq!(
            Snapshot::list_from_value(&Snapshot::list_to_value(&list)),
            list
        );
        assert!(Snapshot::list_from_value(&json!({"not": "a list"})).is_empty());
    }

    #[test]
    fn snapshots_are_kept_per_context_newest_first_and_bounded() {
        let snap = |fp: &str, at: f64| Snapshot {
            fingerprint: fp.into(),
            version: None,
            flags: vec![],
            stored_at: at,
        };
        let mut all = vec![];
        remember(&mut all, snap("a", 1.0), 2);
        remember(&mut all, snap("b", 2.0), 2);
        remember(&mut all, snap("a", 3.0), 2);
        assert_eq!(all, vec![snap("a", 3.0), snap("b", 2.0)]);
        remember(&mut all, snap("c", 4.0), 2);
        assert_eq!(all, vec![snap("c", 4.0), snap("a", 3.0)]);
    }
}
