//! Freshness lifetime (§4.2.1), heuristic freshness (§4.2.2), age (§4.2.3) and the stale
//! windows of RFC 5861, as the reuse decision needs them.

use super::dates::parse_http_date;
use super::directives::{parse_age, storage_directives, Scope, DELTA_SECONDS_MAX};
use super::headers::{HeaderList, Headers};

/// Cap on a heuristic freshness lifetime (§4.2.2 leaves it to the cache): a day keeps a
/// response without explicit freshness from living long on a guess.
pub(crate) const HEURISTIC_CAP_SECS: u64 = 86_400;

/// Statuses that are heuristically cacheable (RFC 9110 §15.1).
pub(crate) const HEURISTIC_STATUSES: &[u16] =
    &[200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501];

/// Everything about a response that the reuse decision needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResponseRules {
    /// Freshness lifetime in seconds (§4.2.1).
    pub(crate) lifetime: u64,
    /// Whether `lifetime` is a heuristic (§4.2.2).
    pub(crate) heuristic: bool,
    /// Unqualified `no-cache`: every reuse needs validation (§5.2.2.4).
    pub(crate) no_cache: bool,
    /// Serving stale is forbidden (§4.2.4): `no-cache`, `must-revalidate`,
    /// `proxy-revalidate`, or `s-maxage` (which implies proxy-revalidate, §5.2.2.10).
    pub(crate) stale_prohibited: bool,
    /// `stale-while-revalidate` window, 0 when prohibited.
    pub(crate) swr: u64,
    /// Response `stale-if-error` window, 0 when prohibited.
    pub(crate) sie: u64,
    /// Has `ETag` or `Last-Modified`.
    pub(crate) validator: bool,
    /// `public`, `s-maxage` or `must-revalidate`: shareable with credentialed requests
    /// (§3.5).
    pub(crate) shareable_with_credentials: bool,
}

pub(crate) fn response_rules(status: u16, headers: &HeaderList, response_ms: u64) -> ResponseRules {
    let h = Headers(headers);
    let cc = storage_directives(headers);
    let date = date_secs(headers, response_ms);
    let explicit = cc
        .seconds("s-maxage")
        .or_else(|| cc.seconds("max-age"))
        .or_else(|| {
            // Invalid Expires (including "0") means already expired (§5.3).
            h.get("expires")
                .map(|e| parse_http_date(e).map_or(0, |exp| exp.saturating_sub(date)))
        });
    let (lifetime, heuristic) = match explicit {
        Some(secs) => (secs, false),
        None if HEURISTIC_STATUSES.contains(&status) || cc.has("public") => {
            let lm = h.get("last-modified").and_then(parse_http_date);
            let secs = lm.map_or(0, |lm| {
                (date.saturating_sub(lm) / 10).min(HEURISTIC_CAP_SECS)
            });
            (secs, lm.is_some())
        }
        None => (0, false),
    };
    let no_cache = cc.scope("no-cache") == Scope::Whole;
    let stale_prohibited =
        no_cache || cc.has("must-revalidate") || cc.has("proxy-revalidate") || cc.has("s-maxage");
    let window = |name: &str| {
        if stale_prohibited {
            0
        } else {
            cc.seconds(name).unwrap_or(0)
        }
    };
    ResponseRules {
        lifetime,
        heuristic,
        no_cache,
        stale_prohibited,
        swr: window("stale-while-revalidate"),
        sie: window("stale-if-error"),
        validator: h.has("etag") || h.has("last-modified"),
        shareable_with_credentials: cc.has("public")
            || cc.has("s-maxage")
            || cc.has("must-revalidate"),
    }
}

/// The response's `Date` in unix seconds, or the time it was received when missing or
/// invalid (RFC 9110 §6.6.1).
pub(crate) fn date_secs(headers: &HeaderList, response_ms: u64) -> u64 {
    Headers(headers)
        .get("date")
        .and_then(parse_http_date)
        .unwrap_or(response_ms / 1000)
}

/// Current age in ms (§4.2.3), computed entirely with saturating arithmetic: clocks that
/// run backwards (response before request, `now` before the response) count as zero.
pub(crate) fn current_age_ms(
    headers: &HeaderList,
    request_ms: u64,
    response_ms: u64,
    now_ms: u64,
) -> u64 {
    let date_ms = date_secs(headers, response_ms).saturating_mul(1000);
    let age_value_ms = parse_age(headers).unwrap_or(0).saturating_mul(1000);
    let apparent_age = response_ms.saturating_sub(date_ms);
    let response_delay = response_ms.saturating_sub(request_ms);
    let corrected_age_value = age_value_ms.saturating_add(response_delay);
    let corrected_initial_age = apparent_age.max(corrected_age_value);
    let resident_time = now_ms.saturating_sub(response_ms);
    corrected_initial_age.saturating_add(resident_time)
}

/// Whole seconds for an `Age` header, capped at 2^31 (§5.1).
pub(crate) fn age_secs(age_ms: u64) -> u64 {
    (age_ms / 1000).min(DELTA_SECONDS_MAX)
}

/// Remaining freshness in seconds, negative when stale (RFC 9211 `ttl`).
pub(crate) fn ttl_secs(lifetime: u64, age_ms: u64) -> i64 {
    let ttl = i128::from(lifetime) - i128::from(age_ms / 1000);
    i64::try_from(ttl).unwrap_or(if ttl < 0 { i64::MIN } else { i64::MAX })
}

#[cfg(test)]
#[allow(clippy::type_complexity)]
mod tests {
    use super::*;
    use crate::httpcache::entry::*;
    use crate::httpcache::headers::*;
    use crate::httpcache::store::*;
    use crate::httpcache::testing::*;

    #[test]
    fn freshness_lifetime_prefers_s_maxage_then_max_age_then_expires_then_heuristic() {
        let in_1h = date(T0 + 3600 * SEC);
        let lm_1d = date(T0 - 86_400 * SEC);
        let lm_30d = date(T0 - 30 * 86_400 * SEC);
        let lm_future = date(T0 + 60 * SEC);
        let cases: &[(&str, u16, Vec<(&str, &str)>, u64, bool)] = &[
            (
                "s-maxage wins over longer max-age",
                200,
                vec![("cache-control", "max-age=3600, s-maxage=1")],
                1,
                false,
            ),
            (
                "s-maxage wins over shorter max-age",
                200,
                vec![("cache-control", "max-age=1, s-maxage=3600")],
                3600,
                false,
            ),
            (
                "s-maxage on another line",
                200,
                vec![
                    ("cache-control", "max-age=3600"),
                    ("cache-control", "s-maxage=1"),
                ],
                1,
                false,
            ),
            (
                "max-age wins over Expires",
                200,
                vec![("cache-control", "max-age=60"), ("expires", &in_1h)],
                60,
                false,
            ),
            (
                "max-age wins over invalid Expires",
                200,
                vec![("cache-control", "max-age=60"), ("expires", "0")],
                60,
                false,
            ),
            (
                "Expires minus Date",
                200,
                vec![("expires", &in_1h)],
                3600,
                false,
            ),
            (
                "invalid Expires is already expired",
                200,
                vec![("expires", "0"), ("etag", "\"a\"")],
                0,
                false,
            ),
            (
                "past Expires",
                200,
                vec![
                    ("expires", "Thu, 01 Jan 1970 00:00:00 GMT"),
                    ("etag", "\"a\""),
                ],
                0,
                false,
            ),
            (
                "heuristic: 10% of Date - Last-Modified",
                200,
                vec![("last-modified", &lm_1d)],
                8640,
                true,
            ),
            (
                "heuristic is capped at a day",
                200,
                vec![("last-modified", &lm_30d)],
                HEURISTIC_CAP_SECS,
                true,
            ),
            (
                "heuristic with Last-Modified after Date is zero",
                200,
                vec![("last-modified", &lm_future)],
                0,
                true,
            ),
            (
                "no heuristic over explicit max-age=0",
                200,
                vec![
                    ("cache-control", "max-age=0, stale-while-revalidate=5"),
                    ("last-modified", &lm_1d),
                ],
                0,
                false,
            ),
        ];
        for (name, status, res, lifetime, heuristic) in cases {
            let mut res = hl(res);
            res.push(("date".into(), date(T0)));
            let plan = storable(&get(), &[], *status, &res, T0, T0).unwrap();
            assert_eq!(
                (plan.freshness_lifetime, plan.heuristic),
                (*lifetime, *heuristic),
                "{name}"
            );
        }
    }

    #[test]
    fn expires_without_date_counts_from_the_response_time() {
        let res = hl(&[("expires", &date(T0 + 100 * SEC))]);
        let plan = storable(&get(), &[], 200, &res, T0 - 5 * SEC, T0).unwrap();
        assert_eq!(plan.freshness_lifetime, 100);
        // The missing Date is added (RFC 9110 §6.6.1).
        assert_eq!(Headers(&plan.headers).get("date"), Some(date(T0).as_str()));
    }

    #[test]
    fn current_age_follows_rfc_9111_section_4_2_3() {
        // (Date, Age header, request_time, response_time, now) -> age in seconds
        let cases: &[(&str, u64, Option<&str>, u64, u64, u64, u64)] = &[
            ("just received", T0, None, T0, T0, T0, 0),
            ("resident time", T0, None, T0, T0, T0 + 30 * SEC, 30),
            (
                "apparent age from an old Date",
                T0 - 20 * SEC,
                None,
                T0,
                T0,
                T0,
                20,
            ),
            (
                "Age header plus response delay",
                T0,
                Some("10"),
                T0 - 3 * SEC,
                T0,
                T0,
                13,
            ),
            (
                "larger of apparent and corrected",
                T0 - 50 * SEC,
                Some("10"),
                T0,
                T0,
                T0 + SEC,
                51,
            ),
            (
                "Date in the future is not negative",
                T0 + 99 * SEC,
                None,
                T0,
                T0,
                T0,
                0,
            ),
            (
                "response before request is no delay",
                T0,
                None,
                T0 + 9 * SEC,
                T0,
                T0,
                0,
            ),
            (
                "now before response time is no resident time",
                T0,
                None,
                T0,
                T0,
                T0 - 9 * SEC,
                0,
            ),
        ];
        for (name, d, age, req_ms, res_ms, now, want) in cases {
            let mut res = hl(&[("cache-control", "max-age=3600"), ("date", &date(*d))]);
            if let Some(a) = age {
                res.push(("age".into(), (*a).into()));
            }
            let plan = storable(&get(), &[], 200, &res, *req_ms, *res_ms).unwrap();
            assert_eq!(current_age(&plan.headers, *now), Some(*want), "{name}");
        }
        assert_eq!(current_age(&hl(&[("date", "x")]), T0), None);
    }
}
