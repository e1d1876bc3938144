//! Hit-for-pass memory: cache keys whose last origin answer the origin itself made
//! uncacheable (`no-store`, `private`, `Set-Cookie`, `Vary: *`, nothing that makes it
//! reusable). A repeat request for such a key skips the Cache API lookup for a while — it would
//! miss — and goes straight to the origin, as Varnish's hit-for-miss objects do. Forwarding is
//! always allowed to a cache (RFC 9111 §4), so the only cost of a stale memory is a missed hit
//! on an entry another location stored meanwhile; a storable answer clears the memory at once.
//!
//! Measured (bench/profile-edge.mjs, MISS path with a `no-store` origin): the lookup was the
//! largest single cost of a proxied request in the isolate, plus the cache service's own work.

use std::collections::HashMap;

use crate::httpcache::{Bypass, StorePlan};

/// How long an origin-uncacheable answer keeps its key from being looked up.
pub(crate) const PASS_TTL_MS: u64 = 30_000;
/// Keys remembered at most (bounded per isolate; beyond it expired ones go, then all).
pub(crate) const CAPACITY: usize = 4096;

/// Keys to pass, each with the time (Unix ms) until which it is passed.
#[derive(Debug, Default)]
pub(crate) struct PassMemory {
    until: HashMap<String, u64>,
}

/// Whether a reason not to store comes from the origin's answer itself (so the next answer
/// for the same key will very likely say the same), not from this request or a transient
/// state (a HEAD, a retry, an error status, the visitor's own `no-store` or `Authorization`).
pub(crate) fn origin_made_uncacheable(reason: Bypass) -> bool {
    matches!(
        reason,
        Bypass::NoStore
            | Bypass::Private
            | Bypass::SetCookie
            | Bypass::VaryStar
            | Bypass::NoFreshness
    )
}

impl PassMemory {
    /// Whether the lookup for `key` can be skipped at `now_ms`.
    pub(crate) fn skip_lookup(&self, key: &str, now_ms: u64) -> bool {
        self.until.get(key).is_some_and(|&until| now_ms < until)
    }

    /// Learns from what storing the origin's answer for `key` decided.
    pub(crate) fn learn(&mut self, key: &str, plan: &Result<StorePlan, Bypass>, now_ms: u64) {
        match plan {
            Ok(_) => {
                self.until.remove(key);
            }
            Err(reason) if origin_made_uncacheable(*reason) => {
                if self.until.len() >= CAPACITY && !self.until.contains_key(key) {
                    self.until.retain(|_, until| *until > now_ms);
                    if self.until.len() >= CAPACITY {
                        self.until.clear();
                    }
                }
                self.until
                    .insert(key.to_owned(), now_ms.saturating_add(PASS_TTL_MS));
            }
            Err(_) => {}
        }
    }

    /// Keys remembered.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.until.len()
    }

    /// Whether nothing is remembered.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.until.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_700_000_000_000;

    fn plan() -> Result<StorePlan, Bypass> {
        let res = vec![("cache-control".to_owned(), "max-age=60".to_owned())];
        crate::httpcache::storable(
            &crate::httpcache::request_policy("GET", &[]),
            &[],
            200,
            &res,
            T,
            T,
        )
    }

    #[test]
    fn an_origin_no_store_answer_skips_the_next_lookups_until_it_expires() {
        let mut m = PassMemory::default();
        assert!(!m.skip_lookup("k", T));
        m.learn("k", &Err(Bypass::NoStore), T);
        assert!(m.skip_lookup("k", T + 1));
        assert!(m.skip_lookup("k", T + PASS_TTL_MS - 1));
        assert!(!m.skip_lookup("k", T + PASS_TTL_MS), "expired");
        assert!(!m.skip_lookup("other", T + 1), "per key");
    }

    #[test]
    fn a_storable_answer_forgets_the_key_at_once() {
        let mut m = PassMemory::default();
        m.learn("k", &Err(Bypass::Private), T);
        assert!(plan().is_ok());
        m.learn("k", &plan(), T + 5);
        assert!(!m.skip_lookup("k", T + 6));
        assert!(m.is_empty());
    }

    #[test]
    fn only_reasons_the_origin_chose_are_remembered() {
        for reason in [
            Bypass::NoStore,
            Bypass::Private,
            Bypass::SetCookie,
            Bypass::VaryStar,
            Bypass::NoFreshness,
        ] {
            let mut m = PassMemory::default();
            m.learn("k", &Err(reason), T);
            assert!(m.skip_lookup("k", T + 1), "{reason:?}");
        }
        for reason in [
            Bypass::Method,
            Bypass::RequestNoStore,
            Bypass::Authorization,
            Bypass::Status,
            Bypass::Retried,
        ] {
            let mut m = PassMemory::default();
            m.learn("k", &Err(reason), T);
            assert!(!m.skip_lookup("k", T + 1), "{reason:?}");
        }
    }

    #[test]
    fn memory_stays_bounded() {
        let mut m = PassMemory::default();
        for i in 0..CAPACITY * 3 {
            m.learn(&format!("k{i}"), &Err(Bypass::NoStore), T + i as u64);
            assert!(m.len() <= CAPACITY);
        }
        let last = format!("k{}", CAPACITY * 3 - 1);
        assert!(m.skip_lookup(&last, T + (CAPACITY * 3) as u64));
    }
}
