//! Storability (RFC 9111 §3, for a shared cache) and the plan for storing a response.

use crate::traffic::proxy::{connection_tokens, is_hop_by_hop};

use super::dates::format_http_date;
use super::directives::{storage_directives, Scope};
use super::entry::{
    FORMAT_VERSION, META_AGE, META_CACHE_CONTROL, META_FORMAT, META_PREFIX, META_REQUEST_TIME,
    META_RESPONSE_TIME, META_STATUS, META_STORED_AT, META_VARY,
};
use super::freshness::{age_secs, current_age_ms, response_rules, ttl_secs, HEURISTIC_STATUSES};
use super::headers::{HeaderList, Headers};
use super::keys::{vary_key, vary_names};
use super::request::{MethodClass, RequestPolicy};
use super::status::Detail;

/// How long a stale entry with a validator is kept for conditional revalidation: without
/// it a `no-cache` + `ETag` response (the usual app-shell pattern) would expire from the
/// Cache API at once and never be revalidated.
pub(crate) const VALIDATOR_RETENTION_SECS: u64 = 86_400;

/// Cap on the storage TTL handed to the Cache API; origins send `max-age=2147483648`.
pub(crate) const MAX_STORAGE_TTL_SECS: u64 = 31_536_000;

/// Why a response is not stored (or a request not answered from the cache).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bypass {
    /// Not a GET (HEAD responses have no body and are never stored).
    Method,
    /// The request said `no-store`.
    RequestNoStore,
    /// Status not storable: not final, 206, 304, or not understood under `must-understand`.
    Status,
    /// The response said `no-store` (and no `must-understand` for a status we know).
    NoStore,
    /// The response said `private` without a field list.
    Private,
    /// The response sets a cookie: never shared (our policy, stricter than RFC 9111).
    SetCookie,
    /// `Vary: *` can never match a later request (§4.1).
    VaryStar,
    /// The request had `Authorization` and the response lacks `public`, `s-maxage` and
    /// `must-revalidate` (§3.5).
    Authorization,
    /// Nothing makes it reusable: no explicit freshness, no heuristic, no validator, no
    /// stale window (e.g. a bare 200, which the http-cache-tests `freshness-none` test
    /// requires us not to reuse).
    NoFreshness,
    /// The chosen origin failed and the stable origin answered the retry: that answer is
    /// not the representation the key's variant selects (RFC 9111 §4.1: a stored response
    /// is reused only for requests its selecting header fields match; our key's variant is
    /// one of them), so it is served once and stored nowhere.
    Retried,
}

impl Bypass {
    /// The `Cache-Status` detail for this reason.
    pub(crate) fn detail(self) -> Detail {
        match self {
            Bypass::Method => Detail::Method,
            Bypass::RequestNoStore | Bypass::NoStore => Detail::NoStore,
            Bypass::Status => Detail::Status,
            Bypass::Private => Detail::Private,
            Bypass::SetCookie => Detail::SetCookie,
            Bypass::VaryStar => Detail::VaryStar,
            Bypass::Authorization => Detail::Authorization,
            Bypass::NoFreshness => Detail::NoFreshness,
            Bypass::Retried => Detail::Retried,
        }
    }
}

/// How to store a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StorePlan {
    /// Freshness lifetime in seconds (§4.2.1).
    pub(crate) freshness_lifetime: u64,
    /// Whether the lifetime is heuristic (§4.2.2).
    pub(crate) heuristic: bool,
    /// Age of the response when stored, in seconds.
    pub(crate) age: u64,
    /// Effective `stale-while-revalidate` window in seconds (0 when stale is forbidden).
    pub(crate) stale_while_revalidate: u64,
    /// Effective response `stale-if-error` window in seconds.
    pub(crate) stale_if_error: u64,
    /// How long the Cache API keeps the entry, in seconds: the remaining freshness plus the
    /// longest stale window (or [`VALIDATOR_RETENTION_SECS`] for responses with a validator),
    /// capped at [`MAX_STORAGE_TTL_SECS`]. Already written into `headers`.
    pub(crate) storage_ttl: u64,
    /// The wrapped headers to `put` with the body: origin headers (minus hop-by-hop and
    /// `no-cache`/`private`-listed fields), `Date` if it was missing, the metadata headers
    /// and `Cache-Control: s-maxage=<storage_ttl>` for the Cache API.
    pub(crate) headers: Vec<(String, String)>,
}

impl StorePlan {
    /// Remaining freshness at store time (RFC 9211 `ttl`).
    pub(crate) fn ttl(&self) -> i64 {
        ttl_secs(self.freshness_lifetime, self.age.saturating_mul(1000))
    }
}

/// Whether and how to store what an origin fetch for this key gave: never a HEAD answer
/// (no body), never the stable origin's answer to a retry (see [`Bypass::Retried`]), else
/// [`storable`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn storable_answer(
    policy: &RequestPolicy,
    req_headers: &HeaderList,
    status: u16,
    res_headers: &HeaderList,
    request_time_ms: u64,
    response_time_ms: u64,
    retried: bool,
) -> Result<StorePlan, Bypass> {
    if matches!(policy.method, MethodClass::Head) {
        Err(Bypass::Method)
    } else if retried {
        Err(Bypass::Retried)
    } else {
        storable(
            policy,
            req_headers,
            status,
            res_headers,
            request_time_ms,
            response_time_ms,
        )
    }
}

/// Whether and how to store an origin response to `req_headers` (RFC 9111 §3 for a shared
/// cache, plus our Set-Cookie rule). `request_time_ms` is when the request went to the
/// origin, `response_time_ms` when its response arrived.
pub(crate) fn storable(
    policy: &RequestPolicy,
    req_headers: &HeaderList,
    status: u16,
    res_headers: &HeaderList,
    request_time_ms: u64,
    response_time_ms: u64,
) -> Result<StorePlan, Bypass> {
    plan_store(
        policy,
        req_headers,
        status,
        res_headers,
        (request_time_ms, response_time_ms),
        false,
    )
}

/// Statuses whose semantics we know (RFC 9110), for `must-understand` (§5.2.2.3).
fn understood_status(status: u16) -> bool {
    matches!(status,
        200..=205 | 300..=303 | 305 | 307 | 308 | 400..=417 | 421 | 422 | 426 | 500..=505)
}

pub(crate) fn plan_store(
    policy: &RequestPolicy,
    req_headers: &HeaderList,
    status: u16,
    res_headers: &HeaderList,
    (request_ms, response_ms): (u64, u64),
    body_from_entry: bool,
) -> Result<StorePlan, Bypass> {
    match policy.method {
        MethodClass::Get => {}
        // A 304 to a HEAD revalidation refreshes the stored GET body, which we still have.
        MethodClass::Head if body_from_entry => {}
        _ => return Err(Bypass::Method),
    }
    if policy.no_store {
        return Err(Bypass::RequestNoStore);
    }
    let h = Headers(res_headers);
    let cc = storage_directives(res_headers);
    let must_understand = cc.has("must-understand");
    if !(200..=599).contains(&status)
        || status == 206
        || status == 304
        || (must_understand && !understood_status(status))
    {
        return Err(Bypass::Status);
    }
    if cc.has("no-store") && !(must_understand && understood_status(status)) {
        return Err(Bypass::NoStore);
    }
    if cc.scope("private") == Scope::Whole {
        return Err(Bypass::Private);
    }
    if h.has("set-cookie") || h.has("set-cookie2") {
        return Err(Bypass::SetCookie);
    }
    let (star, vary) = vary_names(res_headers);
    if star {
        return Err(Bypass::VaryStar);
    }
    let rules = response_rules(status, res_headers, response_ms);
    if policy.authorization && !rules.shareable_with_credentials {
        return Err(Bypass::Authorization);
    }
    // §3: something must say the response may be cached at all.
    let cacheable = cc.has("public")
        || h.has("expires")
        || cc.has("max-age")
        || cc.has("s-maxage")
        || HEURISTIC_STATUSES.contains(&status);
    if !cacheable {
        return Err(Bypass::NoFreshness);
    }
    let age_ms = current_age_ms(res_headers, request_ms, response_ms, response_ms);
    let serve = if rules.no_cache { 0 } else { rules.lifetime };
    let retention = if rules.validator {
        VALIDATOR_RETENTION_SECS
    } else {
        0
    };
    let keep = serve.saturating_add(rules.swr.max(rules.sie).max(retention));
    let storage_ttl =
        (keep.saturating_mul(1000).saturating_sub(age_ms) / 1000).min(MAX_STORAGE_TTL_SECS);
    if storage_ttl == 0 {
        return Err(Bypass::NoFreshness);
    }

    let conn = connection_tokens(h.joined("connection").as_deref());
    let mut omitted: Vec<String> = Vec::new();
    for name in ["no-cache", "private"] {
        if let Scope::Fields(fields) = cc.scope(name) {
            omitted.extend(fields);
        }
    }
    let mut headers: Vec<(String, String)> = res_headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
        .filter(|(n, _)| {
            n != "cache-control"
                && !n.starts_with(META_PREFIX)
                && !is_hop_by_hop(n, &conn)
                && !omitted.contains(n)
        })
        .collect();
    if !h.has("date") {
        headers.push(("date".into(), format_http_date(response_ms / 1000)));
    }
    let meta = |name: &str, value: String| (name.to_owned(), value);
    headers.push(meta(META_FORMAT, FORMAT_VERSION.into()));
    headers.push(meta(META_STATUS, status.to_string()));
    headers.push(meta(META_STORED_AT, response_ms.to_string()));
    headers.push(meta(META_REQUEST_TIME, request_ms.to_string()));
    headers.push(meta(META_RESPONSE_TIME, response_ms.to_string()));
    if !vary.is_empty() {
        headers.push(meta(META_VARY, vary_key(&vary, req_headers)));
    }
    for line in headers.iter_mut().filter(|line| line.0 == "age") {
        line.0 = META_AGE.to_owned();
    }
    for line in h.get_all("cache-control") {
        headers.push(meta(META_CACHE_CONTROL, line.to_owned()));
    }
    headers.push(("cache-control".into(), format!("s-maxage={storage_ttl}")));

    Ok(StorePlan {
        freshness_lifetime: rules.lifetime,
        heuristic: rules.heuristic,
        age: age_secs(age_ms),
        stale_while_revalidate: rules.swr,
        stale_if_error: rules.sie,
        storage_ttl,
        headers,
    })
}

#[cfg(test)]
#[allow(clippy::type_complexity)]
mod tests {
    use super::*;
    use crate::httpcache::entry::*;
    use crate::httpcache::headers::*;
    use crate::httpcache::lookup::*;
    use crate::httpcache::request::*;
    use crate::httpcache::status::*;
    use crate::httpcache::testing::*;

    #[test]
    fn a_stable_retry_answer_is_never_stored_under_the_chosen_variant() {
        let res = hl(&[("cache-control", "max-age=60"), ("date", &date(T0))]);
        let fresh = storable_answer(&get(), &[], 200, &res, T0, T0, false);
        assert!(fresh.is_ok(), "{fresh:?}");
        assert_eq!(
            storable_answer(&get(), &[], 200, &res, T0, T0, true),
            Err(Bypass::Retried)
        );
        let head = request_policy("HEAD", &[]);
        assert_eq!(
            storable_answer(&head, &[], 200, &res, T0, T0, true),
            Err(Bypass::Method)
        );
        let status = Lookup::Miss {
            fwd: Fwd::UriMiss,
            detail: None,
        }
        .forwarded_status(Some(200), Some(&Err(Bypass::Retried)));
        assert_eq!(
            status.header_value(),
            "edgeflags; fwd=uri-miss; fwd-status=200; detail=retried"
        );
    }

    #[test]
    fn the_origin_age_is_stored_out_of_the_cache_apis_sight_and_still_counts() {
        // 3000 s old, fresh for 600 more: the Cache API must not see `Age` (it would
        // subtract it from the 600 s retention again and drop the entry at once).
        let entry = stored_for(
            &[],
            200,
            &[("cache-control", "max-age=3600"), ("age", "3000")],
        );
        let h = Headers(&entry);
        assert!(!h.has("age"));
        assert_eq!(h.get(META_AGE), Some("3000"));
        assert_eq!(h.get("cache-control"), Some("s-maxage=600"));
        assert_eq!(
            at(&entry, &get(), &[], T0 + 100 * SEC),
            Lookup::Fresh {
                age: 3100,
                ttl: 500
            }
        );
        assert!(reval(Fwd::Stale)(&at(&entry, &get(), &[], T0 + 700 * SEC)));
        let client = unwrap_for_client(&entry, 3100);
        assert_eq!(Headers(&client).get_all("age"), vec!["3100"]);
        assert!(!Headers(&client).has(META_AGE));
        // The Cache API adds its own `Age` to what it matches: never counted again.
        let mut matched = entry.clone();
        matched.push(("age".into(), "100".into()));
        let client = unwrap_for_client(&matched, 3100);
        assert_eq!(Headers(&client).get_all("age"), vec!["3100"]);
        assert_eq!(
            at(&matched, &get(), &[], T0 + 100 * SEC),
            Lookup::Fresh {
                age: 3100,
                ttl: 500
            }
        );
    }

    #[test]
    fn storability_follows_rfc_9111_section_3_for_a_shared_cache() {
        type Case<'a> = (
            &'a str,
            &'a str,
            &'a [(&'a str, &'a str)],
            u16,
            &'a [(&'a str, &'a str)],
            Result<(), Bypass>,
        );
        let lm = date(T0 - 86_400 * SEC);
        let lm = lm.as_str();
        let cases: &[Case<'_>] = &[
            (
                "explicit max-age",
                "GET",
                &[],
                200,
                &[("cache-control", "max-age=60")],
                Ok(()),
            ),
            (
                "POST",
                "POST",
                &[],
                200,
                &[("cache-control", "max-age=60")],
                Err(Bypass::Method),
            ),
            (
                "HEAD has no body",
                "HEAD",
                &[],
                200,
                &[("cache-control", "max-age=60")],
                Err(Bypass::Method),
            ),
            (
                "request no-store",
                "GET",
                &[("cache-control", "no-store")],
                200,
                &[("cache-control", "max-age=60")],
                Err(Bypass::RequestNoStore),
            ),
            (
                "206",
                "GET",
                &[],
                206,
                &[("cache-control", "max-age=60")],
                Err(Bypass::Status),
            ),
            (
                "304",
                "GET",
                &[],
                304,
                &[("cache-control", "max-age=60")],
                Err(Bypass::Status),
            ),
            (
                "1xx",
                "GET",
                &[],
                101,
                &[("cache-control", "max-age=60")],
                Err(Bypass::Status),
            ),
            (
                "unknown status, explicit",
                "GET",
                &[],
                299,
                &[("cache-control", "max-age=60")],
                Ok(()),
            ),
            (
                "unknown status, must-understand",
                "GET",
                &[],
                299,
                &[("cache-control", "max-age=60, must-understand")],
                Err(Bypass::Status),
            ),
            (
                "must-understand overrides no-store",
                "GET",
                &[],
                200,
                &[("cache-control", "max-age=60, must-understand, no-store")],
                Ok(()),
            ),
            (
                "no-store",
                "GET",
                &[],
                200,
                &[("cache-control", "max-age=60, No-Store")],
                Err(Bypass::NoStore),
            ),
            (
                "private",
                "GET",
                &[],
                200,
                &[("cache-control", "private, max-age=60")],
                Err(Bypass::Private),
            ),
            (
                "private with fields",
                "GET",
                &[],
                200,
                &[("cache-control", "private=\"x-user\", max-age=60")],
                Ok(()),
            ),
            (
                "set-cookie",
                "GET",
                &[],
                200,
                &[
                    ("cache-control", "public, max-age=60"),
                    ("set-cookie", "a=b"),
                ],
                Err(Bypass::SetCookie),
            ),
            (
                "set-cookie2",
                "GET",
                &[],
                200,
                &[("cache-control", "max-age=60"), ("set-cookie2", "a=b")],
                Err(Bypass::SetCookie),
            ),
            (
                "vary star",
                "GET",
                &[],
                200,
                &[("cache-control", "max-age=60"), ("vary", "*")],
                Err(Bypass::VaryStar),
            ),
            (
                "vary foo, star",
                "GET",
                &[],
                200,
                &[("cache-control", "max-age=60"), ("vary", "Foo, *")],
                Err(Bypass::VaryStar),
            ),
            (
                "vary star on a second line",
                "GET",
                &[],
                200,
                &[("cache-control", "max-age=60"), ("vary", ""), ("vary", "*")],
                Err(Bypass::VaryStar),
            ),
            (
                "authorization, Expires only",
                "GET",
                &[("authorization", "x")],
                200,
                &[("expires", "Fri, 31 Dec 9999 23:59:59 GMT")],
                Err(Bypass::Authorization),
            ),
            (
                "authorization, public",
                "GET",
                &[("authorization", "x")],
                200,
                &[("cache-control", "max-age=60, public")],
                Ok(()),
            ),
            (
                "authorization, s-maxage",
                "GET",
                &[("authorization", "x")],
                200,
                &[("cache-control", "s-maxage=60")],
                Ok(()),
            ),
            (
                "authorization, must-revalidate",
                "GET",
                &[("authorization", "x")],
                200,
                &[("cache-control", "max-age=60, must-revalidate")],
                Ok(()),
            ),
            (
                "freshness-none",
                "GET",
                &[],
                200,
                &[],
                Err(Bypass::NoFreshness),
            ),
            (
                "validator only",
                "GET",
                &[],
                200,
                &[("etag", "\"a\"")],
                Ok(()),
            ),
            (
                "not heuristically cacheable, validator only",
                "GET",
                &[],
                500,
                &[("etag", "\"a\"")],
                Err(Bypass::NoFreshness),
            ),
            (
                "max-age=0, no validator",
                "GET",
                &[],
                200,
                &[("cache-control", "max-age=0")],
                Err(Bypass::NoFreshness),
            ),
            (
                "max-age=0 with swr",
                "GET",
                &[],
                200,
                &[("cache-control", "max-age=0, stale-while-revalidate=60")],
                Ok(()),
            ),
            (
                "no-cache without validator is useless",
                "GET",
                &[],
                200,
                &[("cache-control", "no-cache, max-age=600")],
                Err(Bypass::NoFreshness),
            ),
            (
                "no-cache with ETag",
                "GET",
                &[],
                200,
                &[("cache-control", "no-cache"), ("etag", "\"a\"")],
                Ok(()),
            ),
            (
                "already older than max-age",
                "GET",
                &[],
                200,
                &[("cache-control", "max-age=10"), ("age", "15")],
                Err(Bypass::NoFreshness),
            ),
            (
                "redirect with explicit freshness",
                "GET",
                &[],
                302,
                &[("cache-control", "max-age=60")],
                Ok(()),
            ),
            (
                "heuristic 404",
                "GET",
                &[],
                404,
                &[("last-modified", lm)],
                Ok(()),
            ),
            (
                "201 is not heuristically cacheable",
                "GET",
                &[],
                201,
                &[("last-modified", lm)],
                Err(Bypass::NoFreshness),
            ),
            (
                "599 without public",
                "GET",
                &[],
                599,
                &[("last-modified", lm)],
                Err(Bypass::NoFreshness),
            ),
            (
                "599 with public",
                "GET",
                &[],
                599,
                &[("last-modified", lm), ("cache-control", "public")],
                Ok(()),
            ),
        ];
        for (name, method, req, status, res, want) in cases {
            let req = hl(req);
            let mut res = hl(res);
            res.push(("date".into(), date(T0)));
            let got =
                storable(&request_policy(method, &req), &req, *status, &res, T0, T0).map(|_| ());
            assert_eq!(got, *want, "{name}");
        }
    }

    #[test]
    fn storage_ttl_is_remaining_freshness_plus_the_longest_stale_window() {
        let cases: &[(&str, &[(&str, &str)], u64)] = &[
            ("max-age", &[("cache-control", "max-age=60")], 60),
            (
                "swr and sie",
                &[(
                    "cache-control",
                    "max-age=60, stale-while-revalidate=30, stale-if-error=300",
                )],
                360,
            ),
            (
                "validator retention",
                &[("cache-control", "max-age=60"), ("etag", "\"a\"")],
                60 + VALIDATOR_RETENTION_SECS,
            ),
            (
                "minus the age it arrived with",
                &[("cache-control", "max-age=60"), ("age", "30")],
                30,
            ),
            (
                "must-revalidate drops stale windows",
                &[(
                    "cache-control",
                    "max-age=60, must-revalidate, stale-while-revalidate=30, stale-if-error=300",
                )],
                60,
            ),
            (
                "s-maxage drops stale windows",
                &[("cache-control", "s-maxage=60, stale-if-error=300")],
                60,
            ),
            (
                "capped",
                &[("cache-control", "max-age=2147483648")],
                MAX_STORAGE_TTL_SECS,
            ),
        ];
        for (name, res, want) in cases {
            let mut res = hl(res);
            res.push(("date".into(), date(T0)));
            let plan = storable(&get(), &[], 200, &res, T0, T0).unwrap();
            assert_eq!(plan.storage_ttl, *want, "{name}");
            assert_eq!(
                Headers(&plan.headers).get("cache-control"),
                Some(format!("s-maxage={want}").as_str()),
                "{name}"
            );
        }
    }
}
