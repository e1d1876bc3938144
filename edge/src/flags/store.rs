//! KV layout of the flag service: the active flag set, its last-known-good copy, a bounded
//! history of versions for rollback, and an audit record per change. Key names, version
//! ids and record shapes live here; `host` only performs the reads and writes.
//!
//! Layout (all in the `FLAGS` namespace, `{k}` = the configured flags key, default `flags`):
//! - `{k}` — the active flagd document, exactly as written (by the admin API or by hand with
//!   `wrangler kv key put`).
//! - `{k}:lkg` — the last document that compiled; a fresh isolate falls back to it when `{k}`
//!   holds something malformed.
//! - `{k}:history:{ms:013}:{version}` — every version the admin API made active (bounded).
//! - `{k}:audit:{ms:013}:{seq}` — one JSON [`AuditRecord`] per change (bounded).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How many history entries are kept by default.
pub(crate) const DEFAULT_HISTORY_LIMIT: usize = 20;
/// How many audit records are kept by default.
pub(crate) const DEFAULT_AUDIT_LIMIT: usize = 500;

/// Version id of a flag-set document: the first 16 hex digits of its SHA-256. Derived from
/// the content, so a document written by hand gets a version too, and writing the same
/// document twice is recognisably the same version.
pub(crate) fn version_of(document: &str) -> String {
    let digest = Sha256::digest(document.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Key names for one flags key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Keys {
    flags: String,
}

impl Keys {
    pub(crate) fn new(flags_key: &str) -> Self {
        Self {
            flags: flags_key.to_owned(),
        }
    }
    pub(crate) fn active(&self) -> &str {
        &self.flags
    }
    pub(crate) fn last_good(&self) -> String {
        format!("{}:lkg", self.flags)
    }
}

/// What an admin did, as stored in the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AuditRecord {
    /// Unix milliseconds.
    pub(crate) at_ms: u64,
    /// Name of the admin token used.
    pub(crate) actor: String,
    /// `replace`, `patch`, `disable`, `enable`, `rollback`.
    pub(crate) action: String,
    /// The flag concerned, for single-flag changes.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) flag: Option<String>,
    pub(crate) from_version: Option<String>,
    pub(crate) to_version: String,
    /// Human-readable summary of what changed.
    pub(crate) summary: String,
}

/// KV key of the cache purge records (beside the flag keys).
pub(crate) fn purges_key(flags_key: &str) -> String {
    format!("{flags_key}:cache-purges")
}

/// How many purge records are kept (oldest dropped first).
pub(crate) const PURGE_LIMIT: usize = 200;

/// A cache purge: entries stored before `at_ms` whose URL matches are treated as absent.
/// Recorded in KV so every location honours it (the Cache API itself is per location).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Purge {
    /// An exact normalised URL, or
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) url: Option<String>,
    /// a path prefix (any host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) prefix: Option<String>,
    pub(crate) at_ms: u64,
}

impl Purge {
    /// Whether this record covers `url` (normalised) with path `path`.
    pub(crate) fn covers(&self, url: &str, path: &str) -> bool {
        self.url.as_deref() == Some(url)
            || self.prefix.as_deref().is_some_and(|p| path.starts_with(p))
    }
}

/// The latest purge time covering a URL.
pub(crate) fn purged_after(list: &[Purge], url: &str, path: &str) -> Option<u64> {
    list.iter()
        .filter(|p| p.covers(url, path))
        .map(|p| p.at_ms)
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_content_derived_and_short() {
        let a = version_of(r#"{"flags":{}}"#);
        assert_eq!(a.len(), 16);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(a, version_of(r#"{"flags":{}}"#));
        assert_ne!(a, version_of(r#"{"flags":{} }"#));
    }

    #[test]
    fn purges_cover_exact_urls_and_path_prefixes() {
        let list = vec![
            Purge {
                url: Some("https://a.example/x".into()),
                prefix: None,
                at_ms: 5,
            },
            Purge {
                url: None,
                prefix: Some("/api/".into()),
                at_ms: 9,
            },
        ];
        assert_eq!(purged_after(&list, "https://a.example/x", "/x"), Some(5));
        assert_eq!(
            purged_after(&list, "https://b.example/api/orders", "/api/orders"),
            Some(9)
        );
        assert_eq!(purged_after(&list, "https://a.example/y", "/y"), None);
    }

    #[test]
    fn audit_records_serialise_in_camel_case() {
        let r = AuditRecord {
            at_ms: 5,
            actor: "ops".into(),
            action: "disable".into(),
            flag: Some("notifications".into()),
            from_version: Some("a".into()),
            to_version: "b".into(),
            summary: "state ENABLED -> DISABLED".into(),
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["atMs"], 5);
        assert_eq!(v["fromVersion"], "a");
        assert_eq!(serde_json::from_value::<AuditRecord>(v).unwrap(), r);
    }
}
