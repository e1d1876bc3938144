//! The layout of a stored entry: metadata headers (`x-ef-*`) wrapped around the origin's own
//! headers, read back and unwrapped for the visitor.

use super::directives::DELTA_SECONDS_MAX;
use super::freshness::{current_age_ms, response_rules, ResponseRules};
use super::headers::{HeaderList, Headers};
use super::keys::{vary_key, vary_names};

/// Prefix of the metadata headers on a stored response. Origin headers with this prefix
/// are dropped before storing so an origin cannot forge cache metadata.
pub(crate) const META_PREFIX: &str = "x-ef-";

/// Layout version of a stored entry; entries of another version are misses.
pub(crate) const META_FORMAT: &str = "x-ef-format";

/// Unix ms at which the entry was (re)stored.
pub(crate) const META_STORED_AT: &str = "x-ef-stored-at";

/// Unix ms at which the request that produced the entry was sent (§4.2.3 `request_time`).
pub(crate) const META_REQUEST_TIME: &str = "x-ef-request-time";

/// Unix ms at which the response was received (§4.2.3 `response_time`).
pub(crate) const META_RESPONSE_TIME: &str = "x-ef-response-time";

/// Status of the stored response (needed for heuristic freshness at lookup).
pub(crate) const META_STATUS: &str = "x-ef-status";

/// Secondary key: a SHA-256 of the request header values the response's `Vary` names. A
/// hash rather than the values, so a stored entry never holds a visitor's cookie or token.
pub(crate) const META_VARY: &str = "x-ef-vary";

/// The origin's `Cache-Control` lines, restored on the way out; the stored `Cache-Control`
/// is the storage TTL for the Cache API.
pub(crate) const META_CACHE_CONTROL: &str = "x-ef-cache-control";

/// The origin's `Age` lines. Kept out of the stored `Age` because the Cache API reads it
/// too: it would subtract the age from the retention time we already computed net of it,
/// evicting entries early — or at once when the age exceeds the remaining retention.
pub(crate) const META_AGE: &str = "x-ef-age";

pub(crate) const FORMAT_VERSION: &str = "1";

/// A stored, wrapped response read back.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// The headers as the origin sent them (metadata stripped, `Cache-Control` restored).
    pub(crate) origin: Vec<(String, String)>,
    pub(crate) request_ms: u64,
    pub(crate) response_ms: u64,
    pub(crate) vary_key: Option<String>,
    pub(crate) rules: ResponseRules,
}

impl Entry {
    pub(crate) fn parse(stored: &HeaderList) -> Option<Entry> {
        let h = Headers(stored);
        if h.get(META_FORMAT) != Some(FORMAT_VERSION) {
            return None;
        }
        let num = |name: &str| h.get(name).and_then(|v| v.trim().parse::<u64>().ok());
        let status = u16::try_from(num(META_STATUS)?).ok()?;
        let request_ms = num(META_REQUEST_TIME)?;
        let response_ms = num(META_RESPONSE_TIME)?;
        let origin = origin_view(stored);
        let rules = response_rules(status, &origin, response_ms);
        Some(Entry {
            request_ms,
            response_ms,
            vary_key: h.get(META_VARY).map(str::to_owned),
            rules,
            origin,
        })
    }

    pub(crate) fn age_ms(&self, now_ms: u64) -> u64 {
        current_age_ms(&self.origin, self.request_ms, self.response_ms, now_ms)
    }

    pub(crate) fn vary_matches(&self, req_headers: &HeaderList) -> bool {
        let (star, names) = vary_names(&self.origin);
        if star {
            return false;
        }
        names.is_empty() || self.vary_key.as_deref() == Some(vary_key(&names, req_headers).as_str())
    }

    /// Conditional request headers for validating this entry (§4.3.1).
    pub(crate) fn conditional(&self) -> Vec<(String, String)> {
        let h = Headers(&self.origin);
        let mut out = Vec::new();
        if let Some(etag) = h.joined("etag") {
            out.push(("if-none-match".to_owned(), etag));
        }
        if let Some(lm) = h.get("last-modified") {
            out.push(("if-modified-since".to_owned(), lm.to_owned()));
        }
        out
    }
}

/// Stored headers as the origin sent them: metadata removed, the storage `Cache-Control`
/// replaced by the origin's own lines.
fn origin_view(stored: &HeaderList) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = stored
        .iter()
        // An `Age` on a matched entry is the Cache API's own (it adds one on match), not
        // the origin's: that one travels as `META_AGE`.
        .filter(|(n, _)| {
            !n.eq_ignore_ascii_case("cache-control")
                && !n.eq_ignore_ascii_case("age")
                && !is_meta(n)
        })
        .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
        .collect();
    for line in Headers(stored).get_all(META_CACHE_CONTROL) {
        out.push(("cache-control".to_owned(), line.to_owned()));
    }
    for line in Headers(stored).get_all(META_AGE) {
        out.push(("age".to_owned(), line.to_owned()));
    }
    out
}

pub(crate) fn is_meta(name: &str) -> bool {
    name.get(..META_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(META_PREFIX))
}

/// Current age in seconds of a stored entry at `now_ms`, `None` if it is not ours (the tests'
/// view of an entry's age; the glue gets it from [`super::lookup`]).
#[cfg(test)]
pub(crate) fn current_age(stored: &HeaderList, now_ms: u64) -> Option<u64> {
    Entry::parse(stored).map(|e| super::freshness::age_secs(e.age_ms(now_ms)))
}

/// The headers to send with a stored response: the origin's own headers (metadata removed,
/// original `Cache-Control` restored) with `Age` set to `age` seconds (§4, §5.1; capped at
/// 2^31).
pub(crate) fn unwrap_for_client(stored: &HeaderList, age: u64) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = origin_view(stored)
        .into_iter()
        .filter(|(n, _)| n != "age")
        .collect();
    out.push(("age".into(), age.min(DELTA_SECONDS_MAX).to_string()));
    out
}

#[cfg(test)]
#[allow(clippy::type_complexity)]
mod tests {
    use super::*;
    use crate::httpcache::headers::*;
    use crate::httpcache::store::*;
    use crate::httpcache::testing::*;

    #[test]
    fn stored_headers_are_wrapped_and_unwrap_restores_the_origin_view() {
        let res = hl(&[
            ("Content-Type", "text/html"),
            ("cache-control", "max-age=60, no-cache=\"x-secret\""),
            ("cache-control", "stale-if-error=30"),
            ("connection", "x-hop"),
            ("x-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "s"),
            ("x-ef-status", "forged"),
            ("x-ef-vary", "forged"),
            ("etag", "\"v1\""),
            ("age", "5"),
            ("vary", "Accept-Language"),
        ]);
        let req = hl(&[("accept-language", "de"), ("cookie", "session=abc")]);
        let plan = storable(&get(), &req, 200, &res, T0 - SEC, T0).unwrap();
        let h = Headers(&plan.headers);
        for gone in ["connection", "x-hop", "keep-alive", "x-secret"] {
            assert!(!h.has(gone), "{gone} must not be stored");
        }
        assert_eq!(h.get(META_FORMAT), Some("1"));
        assert_eq!(h.get(META_STATUS), Some("200"));
        assert_eq!(h.get(META_STORED_AT), Some(T0.to_string().as_str()));
        assert_eq!(
            h.get(META_REQUEST_TIME),
            Some((T0 - SEC).to_string().as_str())
        );
        assert_eq!(h.get(META_RESPONSE_TIME), Some(T0.to_string().as_str()));
        assert_eq!(h.get_all("x-ef-status").len(), 1);
        let vary = h.get(META_VARY).unwrap();
        assert_eq!(vary.len(), 64);
        assert!(
            !plan.headers.iter().any(|(_, v)| v.contains("session")),
            "no cookie stored"
        );
        assert_eq!(
            h.get_all(META_CACHE_CONTROL),
            vec!["max-age=60, no-cache=\"x-secret\"", "stale-if-error=30"]
        );
        assert_eq!(h.get("content-type"), Some("text/html"));
        assert_eq!(h.get("date"), Some(date(T0).as_str()));

        let out = unwrap_for_client(&plan.headers, 42);
        let o = Headers(&out);
        assert!(!out.iter().any(|(n, _)| n.starts_with(META_PREFIX)));
        assert_eq!(
            o.get_all("cache-control"),
            vec!["max-age=60, no-cache=\"x-secret\"", "stale-if-error=30"]
        );
        assert_eq!(o.get_all("age"), vec!["42"]);
        assert_eq!(o.get("etag"), Some("\"v1\""));
        assert_eq!(
            Headers(&unwrap_for_client(&plan.headers, u64::MAX)).get("age"),
            Some("2147483648")
        );
    }
}
