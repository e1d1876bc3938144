//! Shared-cache policy for the edge worker: RFC 9111 (HTTP caching, as a *shared* cache),
//! RFC 5861 (`stale-while-revalidate`, `stale-if-error`) and RFC 9211 (`Cache-Status`), as
//! pure functions over header lists so every decision is tested natively. The Workers glue
//! only moves bytes: it calls these functions and does what they return.
//!
//! # Implemented
//! - `Cache-Control` parsing (§5.2): case-insensitive names, quoted arguments with escapes,
//!   commas inside quotes, several field lines. Duplicates and invalid values: see
//!   [`Directives`].
//! - HTTP-date parsing (IMF-fixdate, obsolete RFC 850 and asctime; RFC 9110 §5.6.7),
//!   `Expires` (invalid = already expired, §5.3), `Age` (first member only, invalid ignored,
//!   §5.1), `Date` (added when missing, RFC 9110 §6.6.1).
//! - Request directives: `no-store`, `no-cache` (and `Pragma: no-cache` without
//!   `Cache-Control`), `max-age`, `max-stale`, `min-fresh`, `only-if-cached`,
//!   `stale-if-error`; `Authorization` (§3.5).
//! - Storability (§3) for a shared cache, freshness lifetime (§4.2.1), heuristic freshness
//!   (§4.2.2), age (§4.2.3), reuse decision (§4), `no-cache`/`private` with field lists
//!   (the named fields are not stored), `must-understand`, `Vary` secondary keys (§4.1).
//! - Serving stale: `stale-while-revalidate`, `stale-if-error` (response and request),
//!   request `max-stale`; never when `no-cache`, `must-revalidate`, `proxy-revalidate` or
//!   `s-maxage` forbid it (§4.2.4, §5.2.2.10).
//! - Validation: conditional headers (§4.3.1), freshening stored headers from a 304
//!   (§3.2, §4.3.4), answering a visitor's own conditional request from a stored response
//!   (§4.3.2).
//! - Invalidation after unsafe methods (§4.4), `Cache-Status` (RFC 9211), cache keys.
//!
//! # Deliberately not implemented
//! - Partial content: 206 responses are never stored and `Range` requests are answered with
//!   the full stored 200, which RFC 9110 §14.2 allows. No combining of partial responses.
//! - Storing responses to HEAD: a HEAD response has no body and would poison the GET entry
//!   under the same key. HEAD requests *are* answered from stored GET responses.
//! - Storing 304s, updating stored responses from HEAD responses (§4.3.5), `Warning`
//!   headers (obsoleted by RFC 9111), request collapsing, `immutable` (RFC 8246, a
//!   browser-side concern), `CDN-Cache-Control`/`Surrogate-Control`.
//! - Serving stale when the origin fails *without* a `stale-if-error` window: §4.2.4 allows
//!   it for a disconnected cache, but we only do what the origin or client asked for.
//! - One stored variant per key: the Workers Cache API holds one response per key, so a
//!   response that varies on a request header replaces the previous variant. The `Vary`
//!   check below only guarantees we never serve the wrong one.
//!
//! # Where things are
//! One file per concept, in the order a request meets them:
//! [`headers`] (header lists) → [`directives`] (`Cache-Control`, `Surrogate-Control`, `Age`) →
//! [`dates`] (HTTP-dates) → [`request`] (what the request asks) → [`keys`] (primary and
//! `Vary` keys, over [`uri`] normalisation) → [`entry`] (the stored layout) → [`freshness`]
//! (lifetime, age, stale windows) → [`lookup`] (the reuse decision) → [`revalidate`] (a 304
//! from the origin) → [`store`] (storability and the store plan) → [`conditional`] (a
//! visitor's own `If-*`) → [`status`] (`Cache-Status`) → [`invalidate`] (unsafe methods).
//! Each file holds its own tests; `testing` has the helpers they share, and the property
//! tests over the whole policy are below.
//!
//! # Conventions
//! Header lists are `&[(String, String)]` with lowercase names (lookups are
//! case-insensitive anyway); a name may repeat. Times are unix **milliseconds** (`*_ms`);
//! ages, lifetimes and TTLs are whole seconds. All arithmetic saturates: no input panics.
//!
//! # How the glue uses this
//! ```text
//! let policy = request_policy(method, &req);
//! let key    = cache_key(&normalise_url(url), &variants);
//! let entry  = if policy.cacheable() { cache.match(key) } else { None };
//! let l      = lookup(&policy, &req, entry.headers(), now);
//! match l {
//!   Fresh | Stale        => send body + unwrap_for_client(entry, age); Cache-Status l.cache_status()
//!   StaleWhileRevalidate => the same, and revalidate with `conditional` in ctx.wait_until()
//!   Revalidate           => fetch with `conditional` (visitor's If-* removed):
//!                             304   -> after_304(): send its headers + stored body, put if store is Ok
//!                             5xx/! -> on_origin_error(): stale entry or the error
//!                             other -> as Miss
//!   Miss                 => fetch; storable() -> Ok: put(key, body, plan.headers)
//!   OnlyIfCachedMiss     => 504
//! }
//! forwarded: Cache-Status l.forwarded_status(status, store.as_ref())
//! any answer with a body: client_not_modified() -> 304 with not_modified_headers()
//! HEAD: same decisions, body dropped.  Unsafe method: invalidates() -> delete the keys of
//! invalidation_targets().
//! ```
//! Match and put with the synthetic key *string* (never the visitor's request), so the Cache
//! API sees no conditional or `Accept-Encoding` headers of its own. When [`storable`] says
//! no, leave any existing entry alone (a newer `no-store` response does not evict an older
//! stored one).

mod conditional;
mod dates;
mod directives;
mod entry;
mod freshness;
mod headers;
mod invalidate;
mod keys;
mod lookup;
mod request;
mod revalidate;
mod status;
mod store;
#[cfg(test)]
mod testing;
mod uri;

// The surface the Workers glue and the other policy modules use.
pub(crate) use conditional::{client_not_modified, not_modified_headers};
pub(crate) use dates::{format_http_date, parse_http_date};
pub(crate) use directives::surrogate_capability;
pub(crate) use entry::{unwrap_for_client, META_STATUS, META_STORED_AT};
pub(crate) use invalidate::{invalidates, invalidation_targets};
pub(crate) use keys::{cache_key, request_key};
pub(crate) use lookup::{is_origin_error, lookup, on_origin_error, Lookup, OnError};
pub(crate) use request::{request_policy, MethodClass, RequestPolicy};
pub(crate) use revalidate::after_304;
pub(crate) use status::{CacheStatus, Detail, Fwd};
pub(crate) use store::{storable, storable_answer, Bypass, StorePlan};
pub(crate) use uri::normalise_url;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::httpcache::conditional::*;
    use crate::httpcache::dates::*;
    use crate::httpcache::directives::*;
    use crate::httpcache::entry::*;
    use crate::httpcache::keys::*;
    use crate::httpcache::lookup::*;
    use crate::httpcache::store::*;
    use crate::httpcache::testing::*;
    use proptest::prelude::*;

    fn header_name() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("cache-control".to_string()),
            Just("expires".to_string()),
            Just("date".to_string()),
            Just("age".to_string()),
            Just("last-modified".to_string()),
            Just("etag".to_string()),
            Just("vary".to_string()),
            Just("authorization".to_string()),
            Just("pragma".to_string()),
            Just("if-none-match".to_string()),
            Just("if-modified-since".to_string()),
            Just("connection".to_string()),
            Just(META_FORMAT.to_string()),
            Just(META_STATUS.to_string()),
            Just(META_REQUEST_TIME.to_string()),
            Just(META_RESPONSE_TIME.to_string()),
            Just(META_VARY.to_string()),
            Just(META_CACHE_CONTROL.to_string()),
            "[a-z-]{1,12}",
        ]
    }

    fn header_value() -> impl Strategy<Value = String> {
        prop_oneof![
            "[ -~]{0,40}",
            "(max-age|s-maxage|stale-while-revalidate|stale-if-error|max-stale|min-fresh|no-cache|no-store|private|public|must-revalidate|only-if-cached)(=[0-9\"a-z, ]{0,12})?(, [a-z-]{1,10}(=[0-9]{1,25})?){0,3}",
            "[0-9]{1,25}",
            Just("1".to_string()),
            "\\PC{0,20}",
        ]
    }

    fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
        proptest::collection::vec((header_name(), header_value()), 0..10)
    }

    proptest! {
        #[test]
        fn parsing_never_panics_on_arbitrary_text(s in "\\PC{0,80}", b in proptest::collection::vec(any::<u8>(), 0..80)) {
            let lossy = String::from_utf8_lossy(&b).into_owned();
            for text in [&s, &lossy] {
                let d = Directives::parse([text.as_str()]);
                let _ = (d.seconds("max-age"), d.scope("no-cache"));
                let _ = parse_http_date(text);
                let _ = parse_age(&[("age".to_string(), text.clone())]);
                let _ = entity_tags(text);
                let n = normalise_url(text);
                prop_assert_eq!(normalise_url(&n), n.clone());
                prop_assert!(cache_key(text, &[("f", text)]).starts_with(KEY_BASE));
            }
        }

        #[test]
        fn dates_round_trip(secs in 0u64..=MAX_HTTP_DATE) {
            prop_assert_eq!(parse_http_date(&format_http_date(secs)), Some(secs));
        }

        #[test]
        fn lookup_and_friends_never_panic(
            method in prop_oneof![Just("GET".to_string()), Just("HEAD".to_string()), Just("POST".to_string()), "[A-Z]{1,6}"],
            req in headers(),
            res in headers(),
            status in any::<u16>(),
            times in proptest::array::uniform3(any::<u64>()),
        ) {
            let [a, b, now] = times;
            let policy = request_policy(&method, &req);
            let _ = lookup(&policy, &req, Some(&res), now);
            let _ = lookup(&policy, &req, None, now);
            let _ = on_origin_error(&policy, &res, Some(status), now);
            let _ = current_age(&res, now);
            let _ = unwrap_for_client(&res, now);
            let _ = client_not_modified(&policy, &req, status, &res);
            let _ = invalidation_targets("https://a.example/x", &res);
            let _ = after_304(&policy, &req, status, &res, &req, a, b);
            if let Ok(plan) = storable(&policy, &req, status, &res, a, b) {
                prop_assert!(plan.storage_ttl > 0 && plan.storage_ttl <= MAX_STORAGE_TTL_SECS);
                let _ = lookup(&policy, &req, Some(&plan.headers), now);
                let _ = after_304(&policy, &req, status, &plan.headers, &res, a, b);
            }
        }

        #[test]
        fn stored_entries_age_monotonically_and_never_underflow(
            cc in "(max-age|s-maxage)=[0-9]{1,12}(, stale-while-revalidate=[0-9]{1,12})?",
            age in proptest::option::of("[0-9]{1,25}"),
            date_secs in any::<u64>(),
            request_ms in any::<u64>(),
            response_ms in any::<u64>(),
            now in any::<u64>(),
            later in any::<u64>(),
        ) {
            let mut res = hl(&[("cache-control", &cc), ("date", &format_http_date(date_secs))]);
            if let Some(a) = age {
                res.push(("age".into(), a));
            }
            if let Ok(plan) = storable(&get(), &[], 200, &res, request_ms, response_ms) {
                let then = now.saturating_add(later);
                let (Some(a1), Some(a2)) = (current_age(&plan.headers, now), current_age(&plan.headers, then)) else {
                    return Err(TestCaseError::fail("our own entry must parse"));
                };
                prop_assert!(a1 <= a2 && a2 <= DELTA_SECONDS_MAX);
                prop_assert!(plan.age <= DELTA_SECONDS_MAX);
                // Once stale, an entry stays stale.
                let fresh_now = matches!(lookup(&get(), &[], Some(&plan.headers), then), Lookup::Fresh { .. });
                let fresh_before = matches!(lookup(&get(), &[], Some(&plan.headers), now), Lookup::Fresh { .. });
                prop_assert!(!fresh_now || fresh_before);
            }
        }
    }
}
