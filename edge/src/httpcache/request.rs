//! What a request asks of the cache: method class and request directives (RFC 9111 §5.2.1).

use super::headers::{HeaderList, Headers};

/// How the cache treats a request method. Methods are case-sensitive (RFC 9110 §9.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MethodClass {
    /// Looked up and stored.
    Get,
    /// Looked up (answered from stored GET responses), never stored.
    Head,
    /// Passed through; unsafe methods may invalidate (see [`invalidates`]).
    Other,
}

/// Request `max-stale` (§5.2.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MaxStale {
    /// `max-stale` without a value: any staleness.
    Any,
    /// `max-stale=N`.
    Secs(u64),
}

/// What a request asks of the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestPolicy {
    pub(crate) method: MethodClass,
    /// `no-store`: look up, but do not store the response (§5.2.1.5).
    pub(crate) no_store: bool,
    /// `no-cache` (or `Pragma: no-cache` without `Cache-Control`): validate before reuse.
    pub(crate) no_cache: bool,
    /// `max-age=N` (invalid counts as 0): reuse only responses at most N seconds old.
    pub(crate) max_age: Option<u64>,
    pub(crate) max_stale: Option<MaxStale>,
    /// `min-fresh=N`: reuse only responses fresh for at least N more seconds.
    pub(crate) min_fresh: Option<u64>,
    /// `only-if-cached`: never contact the origin; 504 when nothing usable is stored.
    pub(crate) only_if_cached: bool,
    /// Request `stale-if-error=N` (RFC 5861 §4).
    pub(crate) stale_if_error: Option<u64>,
    /// The request carries `Authorization` (§3.5).
    pub(crate) authorization: bool,
}

impl RequestPolicy {
    /// Whether the cache looks the request up at all (GET and HEAD).
    pub(crate) fn cacheable(&self) -> bool {
        self.method != MethodClass::Other
    }
}

/// Reads the cache-relevant parts of a request.
pub(crate) fn request_policy(method: &str, req_headers: &HeaderList) -> RequestPolicy {
    let h = Headers(req_headers);
    let cc = h.cache_control();
    let method = match method {
        "GET" => MethodClass::Get,
        "HEAD" => MethodClass::Head,
        _ => MethodClass::Other,
    };
    // Pragma is deprecated (§5.4) but browsers still send it on reload, alone in old ones.
    let pragma_no_cache = !h.has("cache-control")
        && h.list("pragma")
            .iter()
            .any(|p| p.eq_ignore_ascii_case("no-cache"));
    let max_stale = cc.first("max-stale").map(|d| match (&d.arg, d.malformed) {
        (None, false) => MaxStale::Any,
        _ => MaxStale::Secs(cc.seconds("max-stale").unwrap_or(0)),
    });
    RequestPolicy {
        method,
        no_store: cc.has("no-store"),
        no_cache: cc.has("no-cache") || pragma_no_cache,
        max_age: cc.seconds("max-age"),
        max_stale,
        min_fresh: cc.seconds("min-fresh"),
        only_if_cached: cc.has("only-if-cached"),
        stale_if_error: cc.seconds("stale-if-error"),
        authorization: h.has("authorization"),
    }
}

#[cfg(test)]
#[allow(clippy::type_complexity)]
mod tests {
    use super::*;
    use crate::httpcache::testing::*;

    #[test]
    fn request_directives_are_read_from_cache_control_and_pragma() {
        let p = |m: &str, h: &[(&str, &str)]| request_policy(m, &hl(h));
        assert_eq!(p("GET", &[]).method, MethodClass::Get);
        assert_eq!(p("HEAD", &[]).method, MethodClass::Head);
        for m in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "get"] {
            assert!(!p(m, &[]).cacheable(), "{m}");
        }
        let r = p(
            "GET",
            &[
                (
                    "cache-control",
                    "no-store, no-cache, max-age=5, min-fresh=7",
                ),
                (
                    "cache-control",
                    "only-if-cached, stale-if-error=60, max-stale",
                ),
                ("authorization", "Bearer x"),
            ],
        );
        assert!(r.no_store && r.no_cache && r.only_if_cached && r.authorization);
        assert_eq!(
            (r.max_age, r.min_fresh, r.stale_if_error, r.max_stale),
            (Some(5), Some(7), Some(60), Some(MaxStale::Any))
        );
        assert_eq!(
            p("GET", &[("cache-control", "max-stale=30")]).max_stale,
            Some(MaxStale::Secs(30))
        );
        assert_eq!(
            p("GET", &[("cache-control", "max-stale=x")]).max_stale,
            Some(MaxStale::Secs(0))
        );
        assert_eq!(p("GET", &[("cache-control", "max-age=x")]).max_age, Some(0));
        assert!(p("GET", &[("pragma", "no-cache")]).no_cache);
        assert!(
            !p(
                "GET",
                &[("pragma", "no-cache"), ("cache-control", "max-age=5")]
            )
            .no_cache
        );
        assert_eq!(
            p("GET", &[]),
            RequestPolicy {
                method: MethodClass::Get,
                no_store: false,
                no_cache: false,
                max_age: None,
                max_stale: None,
                min_fresh: None,
                only_if_cached: false,
                stale_if_error: None,
                authorization: false,
            }
        );
    }
}
