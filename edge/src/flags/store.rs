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
pub const DEFAULT_HISTORY_LIMIT: usize = 20;
/// How many audit records are kept by default.
pub const DEFAULT_AUDIT_LIMIT: usize = 500;

/// Version id of a flag-set document: the first 16 hex digits of its SHA-256. Derived from
/// the content, so a document written by hand gets a version too, and writing the same
/// document twice is recognisably the same version.
pub fn version_of(document: &str) -> String {
    let digest = Sha256::digest(document.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Key names for one flags key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    flags: String,
}

impl Keys {
    pub fn new(flags_key: &str) -> Self {
        Self {
            flags: flags_key.to_owned(),
        }
    }
    pub fn active(&self) -> &str {
        &self.flags
    }
    pub fn last_good(&self) -> String {
        format!("{}:lkg", self.flags)
    }
    pub fn history_prefix(&self) -> String {
        format!("{}:history:", self.flags)
    }
    pub fn history(&self, at_ms: u64, version: &str) -> String {
        format!("{}{at_ms:013}:{version}", self.history_prefix())
    }
    pub fn audit_prefix(&self) -> String {
        format!("{}:audit:", self.flags)
    }
    pub fn audit(&self, at_ms: u64, seq: u32) -> String {
        format!("{}{at_ms:013}:{seq:08x}", self.audit_prefix())
    }
}

/// One history entry, parsed back from its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryEntry {
    pub version: String,
    #[serde(rename = "activatedAtMs")]
    pub activated_at_ms: u64,
    #[serde(skip)]
    pub key: String,
}

/// Parses a history key (`…:history:{ms}:{version}`).
pub fn parse_history_key(keys: &Keys, key: &str) -> Option<HistoryEntry> {
    let rest = key.strip_prefix(&keys.history_prefix())?;
    let (ms, version) = rest.split_once(':')?;
    Some(HistoryEntry {
        version: version.to_owned(),
        activated_at_ms: ms.parse().ok()?,
        key: key.to_owned(),
    })
}

/// Keys to delete so that at most `limit` remain (KV lists keys in ascending order, and the
/// zero-padded timestamp makes that chronological).
pub fn prune(sorted_keys: &[String], limit: usize) -> &[String] {
    let excess = sorted_keys.len().saturating_sub(limit);
    sorted_keys.get(..excess).unwrap_or(&[])
}

/// What an admin did, as stored in the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    /// Unix milliseconds.
    pub at_ms: u64,
    /// Name of the admin token used.
    pub actor: String,
    /// `replace`, `patch`, `disable`, `enable`, `rollback`.
    pub action: String,
    /// The flag concerned, for single-flag changes.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub flag: Option<String>,
    pub from_version: Option<String>,
    pub to_version: String,
    /// Human-readable summary of what changed.
    pub summary: String,
}

/// KV key of the cache purge records (beside the flag keys).
pub fn purges_key(flags_key: &str) -> String {
    format!("{flags_key}:cache-purges")
}

/// How many purge records are kept (oldest dropped first).
pub const PURGE_LIMIT: usize = 200;

/// A cache purge: entries stored before `at_ms` whose URL matches are treated as absent.
/// Recorded in KV so every location honours it (the Cache API itself is per location).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Purge {
    /// An exact normalised URL, or
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// a path prefix (any host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    pub at_ms: u64,
}

impl Purge {
    /// Whether this record covers `url` (normalised) with path `path`.
    pub fn covers(&self, url: &str, path: &str) -> bool {
        self.url.as_deref() == Some(url)
            || self.prefix.as_deref().is_some_and(|p| path.starts_with(p))
    }
}

/// Adds a record, keeping the newest [`PURGE_LIMIT`].
pub fn add_purge(mut list: Vec<Purge>, purge: Purge) -> Vec<Purge> {
    list.push(purge);
    let excess = list.len().saturating_sub(PURGE_LIMIT);
    list.drain(..excess);
    list
}

/// The latest purge time covering a URL.
pub fn purged_after(list: &[Purge], url: &str, path: &str) -> Option<u64> {
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
    fn history_keys_sort_chronologically_and_parse_back() {
        let k = Keys::new("flags");
        let early = k.history(999, "aaaa");
        let late = k.history(1_700_000_000_000, "bbbb");
        assert!(early < late);
        assert_eq!(early, "flags:history:0000000000999:aaaa");
        let e = parse_history_key(&k, &late).unwrap();
        assert_eq!(
            (e.version.as_str(), e.activated_at_ms),
            ("bbbb", 1_700_000_000_000)
        );
        assert_eq!(parse_history_key(&k, "flags:audit:1:2"), None);
        assert_eq!(parse_history_key(&k, "flags:history:notanumber:v"), None);
    }

    #[test]
    fn prune_keeps_the_newest_entries() {
        let keys: Vec<String> = (0..5).map(|i| format!("k{i}")).collect();
        assert_eq!(prune(&keys, 3), &keys[..2]);
        assert!(prune(&keys, 5).is_empty());
        assert!(prune(&keys, 10).is_empty());
    }

    #[test]
    fn purges_cover_exact_urls_and_path_prefixes_and_stay_bounded() {
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
        let mut many = Vec::new();
        for i in 0..(PURGE_LIMIT as u64 + 5) {
            many = add_purge(
                many,
                Purge {
                    url: None,
                    prefix: Some("/".into()),
                    at_ms: i,
                },
            );
        }
        assert_eq!(many.len(), PURGE_LIMIT);
        assert_eq!(many[0].at_ms, 5);
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
