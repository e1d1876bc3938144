//! Expiration policy (Workbox's CacheExpiration, but aged by store time): each runtime-cache
//! entry carries the time the service worker stored it (a response header), and the
//! service worker records when each entry was last used. Entries older than `maxAgeSeconds`
//! are neither served nor kept; beyond `maxEntries`, the least recently used go first.

use serde_json::{json, Value};

use crate::config::ExpirationConfig;
use crate::json::Obj;

/// Response header with the time (ms since the epoch) the service worker stored the entry.
pub const STORED_AT_HEADER: &str = "x-edgeflags-stored-at";

/// The usage record of one cache entry (stored in IndexedDB).
#[derive(Debug, Clone, PartialEq)]
pub struct Usage {
    /// Record key: cache name, NUL, URL.
    pub id: String,
    pub cache: String,
    pub url: String,
    pub stored_at: f64,
    pub used_at: f64,
}

impl Usage {
    /// A record for an entry stored (and used) now.
    pub fn stored(cache: &str, url: &str, now_ms: f64) -> Self {
        Self {
            id: Self::key(cache, url),
            cache: cache.to_owned(),
            url: url.to_owned(),
            stored_at: now_ms,
            used_at: now_ms,
        }
    }

    /// The stored form.
    pub fn to_value(&self) -> Value {
        json!({"id": self.id, "cache": self.cache, "url": self.url,
            "storedAt": self.stored_at, "usedAt": self.used_at})
    }

    /// Reads the stored form.
    pub fn from_value(v: &Value) -> Result<Self, String> {
        let o = Obj::new(v, "usage record")?;
        Ok(Self {
            id: o.req_str("id")?.to_owned(),
            cache: o.req_str("cache")?.to_owned(),
            url: o.req_str("url")?.to_owned(),
            stored_at: o.f64("storedAt")?.unwrap_or(0.0),
            used_at: o.f64("usedAt")?.unwrap_or(0.0),
        })
    }

    /// The record key of an entry.
    pub fn key(cache: &str, url: &str) -> String {
        format!("{cache}\u{0}{url}")
    }
}

/// Parses the stored-at header.
pub fn stored_at(header: Option<&str>) -> Option<f64> {
    header
        // `str::parse::<f64>` without the standard parser (see edgeflags-core's feature
        // `compact-float-parse`); the non-finite values it would accept are refused anyway.
        .and_then(|h| edgeflags_core::parse_decimal(h.trim()))
        .filter(|t| t.is_finite())
}

/// Whether an entry is too old to serve. An entry without a (valid) store time has an
/// unknown age, so under a max age it counts as expired.
pub fn is_expired(stored_at_ms: Option<f64>, now_ms: f64, cfg: &ExpirationConfig) -> bool {
    match (cfg.max_age_seconds, stored_at_ms) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(max), Some(t)) => now_ms - t > max as f64 * 1000.0,
    }
}

/// The URLs to delete from a cache holding `cached` (in the cache's order) with these usage
/// records: every expired entry, then the least recently used beyond `maxEntries`. Entries
/// without a record (stored by something else, or before the record was written) count as
/// the least recently used, and as of unknown age.
pub fn victims(
    cached: &[String],
    usage: &[Usage],
    now_ms: f64,
    cfg: &ExpirationConfig,
) -> Vec<String> {
    let record = |url: &str| usage.iter().find(|u| u.url == url);
    let mut out = Vec::new();
    let mut alive: Vec<&str> = Vec::new();
    let mut used: Vec<(f64, usize)> = Vec::new();
    for url in cached {
        let rec = record(url);
        if is_expired(rec.map(|r| r.stored_at), now_ms, cfg) {
            out.push(url.clone());
        } else {
            used.push((rec.map_or(f64::NEG_INFINITY, |r| r.used_at), alive.len()));
            alive.push(url);
        }
    }
    if let Some(max) = cfg.max_entries {
        let max = max as usize;
        if alive.len() > max {
            // Stable sort: among equal times the cache's (insertion) order decides.
            sort_by_time(&mut used);
            let excess = alive.len() - max;
            out.extend(
                used.iter()
                    .take(excess)
                    .filter_map(|&(_, i)| alive.get(i).map(|u| (*u).to_owned())),
            );
        }
    }
    out
}

/// Sorts `(time, index)` pairs by time (`f64::total_cmp`), stably. The worker's one sort
/// (every list it orders goes through it): an insertion sort, a few dozen bytes of wasm
/// where the standard library's stable sort costs kilobytes per element type. Its lists
/// are short (stored snapshots, one cache's entries, which `victims` already compares
/// pairwise).
pub fn sort_by_time(items: &mut [(f64, usize)]) {
    for i in 1..items.len() {
        let mut j = i;
        while j > 0 && items[j - 1].0.total_cmp(&items[j].0).is_gt() {
            items.swap(j - 1, j);
            j -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(max_entries: Option<u32>, max_age_seconds: Option<u64>) -> ExpirationConfig {
        ExpirationConfig {
            max_entries,
            max_age_seconds,
        }
    }

    fn usage(url: &str, stored_at: f64, used_at: f64) -> Usage {
        Usage {
            used_at,
            ..Usage::stored("c", url, stored_at)
        }
    }

    #[test]
    fn usage_records_survive_the_store_round_trip() {
        let u = usage("a", 1.0, 2.0);
        assert_eq!(Usage::from_value(&u.to_value()), Ok(u));
    }

    #[test]
    fn age_counts_from_when_the_worker_stored_the_entry() {
        let c = cfg(None, Some(60));
        assert!(!is_expired(Some(1_000.0), 61_000.0, &c));
        assert!(is_expired(Some(1_000.0), 61_001.0, &c));
        assert!(is_expired(None, 0.0, &c), "unknown age under a max age");
        assert!(!is_expired(None, 0.0, &cfg(Some(3), None)));
        assert_eq!(stored_at(Some(" 1700000000000 ")), Some(1.7e12));
        assert_eq!(stored_at(Some("yesterday")), None);
        assert_eq!(stored_at(None), None);
    }

    #[test]
    fn beyond_max_entries_the_least_recently_used_go() {
        let cached: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        // a was stored first but used last; b is the least recently used.
        let u = [
            usage("a", 1.0, 40.0),
            usage("b", 2.0, 2.0),
            usage("c", 3.0, 30.0),
            usage("d", 4.0, 4.0),
        ];
        assert_eq!(victims(&cached, &u, 50.0, &cfg(Some(3), None)), vec!["b"]);
        assert_eq!(
            victims(&cached, &u, 50.0, &cfg(Some(2), None)),
            vec!["b", "d"]
        );
        assert!(victims(&cached, &u, 50.0, &cfg(Some(4), None)).is_empty());
        assert!(victims(&cached, &u, 50.0, &cfg(None, None)).is_empty());
    }

    #[test]
    fn expired_entries_go_first_and_do_not_count_against_max_entries() {
        let cached: Vec<String> = ["old", "x", "y", "unknown"].map(String::from).to_vec();
        let u = [
            usage("old", 0.0, 100_000.0),
            usage("x", 90_000.0, 90_000.0),
            usage("y", 95_000.0, 95_000.0),
        ];
        let c = cfg(Some(2), Some(60));
        assert_eq!(victims(&cached, &u, 100_000.0, &c), vec!["old", "unknown"]);
        // Without a max age, the entry without a record is the least recently used.
        assert_eq!(
            victims(&cached, &u, 100_000.0, &cfg(Some(3), None)),
            vec!["unknown"]
        );
    }

    #[test]
    fn the_time_sort_is_stable_and_agrees_with_the_standard_sort() {
        let times = [
            3.0,
            -0.0,
            0.0,
            f64::NEG_INFINITY,
            3.0,
            1.5,
            f64::NAN,
            -2.0,
            1.5,
            0.0,
        ];
        let mut x = 7u64;
        for n in 0..40 {
            let mut items: Vec<(f64, usize)> = (0..n)
                .map(|i| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (times[(x >> 33) as usize % times.len()], i)
                })
                .collect();
            let mut want = items.clone();
            want.sort_by(|a, b| a.0.total_cmp(&b.0));
            sort_by_time(&mut items);
            let bits =
                |v: &[(f64, usize)]| v.iter().map(|(t, i)| (t.to_bits(), *i)).collect::<Vec<_>>();
            assert_eq!(bits(&items), bits(&want));
        }
    }
}
