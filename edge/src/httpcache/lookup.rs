//! The reuse decision (RFC 9111 §4): fresh, stale, stale-while-revalidate, revalidate or miss;
//! and stale-if-error after a failed revalidation (RFC 5861 §4).

use super::entry::Entry;
use super::freshness::{age_secs, ttl_secs};
use super::headers::HeaderList;
use super::request::{MaxStale, RequestPolicy};
use super::status::{CacheStatus, Detail, Fwd};
use super::store::{Bypass, StorePlan};

/// What to do with a request given what is stored for its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// Serve the stored response; `age` goes in the `Age` header.
    Fresh { age: u64, ttl: i64 },
    /// Serve the stale stored response: the request's `max-stale` accepts it.
    Stale { age: u64, ttl: i64 },
    /// Serve the stale stored response now and revalidate in the background with
    /// `conditional` (RFC 5861 §3).
    StaleWhileRevalidate {
        age: u64,
        ttl: i64,
        conditional: Vec<(String, String)>,
    },
    /// Forward with `conditional` added (replacing the visitor's own `If-*` headers); on a
    /// 304 call [`after_304`], on an origin error [`on_origin_error`].
    Revalidate {
        fwd: Fwd,
        conditional: Vec<(String, String)>,
    },
    /// Forward unconditionally.
    Miss { fwd: Fwd, detail: Option<Detail> },
    /// `only-if-cached` and nothing usable: answer 504 without contacting the origin
    /// (§5.2.1.7).
    OnlyIfCachedMiss,
}

impl Lookup {
    /// `Cache-Status` for outcomes answered from the cache; `None` when the origin must be
    /// asked (use [`Lookup::forwarded_status`] once it has answered).
    pub(crate) fn cache_status(&self) -> Option<CacheStatus> {
        match self {
            Lookup::Fresh { ttl, .. } => Some(CacheStatus::Hit {
                ttl: *ttl,
                detail: None,
            }),
            Lookup::Stale { ttl, .. } => Some(CacheStatus::Hit {
                ttl: *ttl,
                detail: Some(Detail::MaxStale),
            }),
            Lookup::StaleWhileRevalidate { ttl, .. } => Some(CacheStatus::Hit {
                ttl: *ttl,
                detail: Some(Detail::StaleWhileRevalidate),
            }),
            Lookup::OnlyIfCachedMiss => Some(CacheStatus::Generated {
                detail: Detail::OnlyIfCached,
            }),
            Lookup::Revalidate { .. } | Lookup::Miss { .. } => None,
        }
    }

    /// `Cache-Status` after forwarding: the lookup's forward reason, the origin's status
    /// (`None` for a network error) and the store decision, if one was made. A reason for
    /// not storing replaces the lookup's own detail. Outcomes normally answered from the
    /// cache report `fwd=stale` (stale-while-revalidate) or `fwd=request` if the glue
    /// forwards them anyway.
    pub(crate) fn forwarded_status(
        &self,
        fwd_status: Option<u16>,
        store: Option<&Result<StorePlan, Bypass>>,
    ) -> CacheStatus {
        let (fwd, detail) = match self {
            Lookup::Revalidate { fwd, .. } => (*fwd, None),
            Lookup::Miss { fwd, detail } => (*fwd, *detail),
            Lookup::StaleWhileRevalidate { .. } => (Fwd::Stale, None),
            Lookup::Fresh { .. } | Lookup::Stale { .. } => (Fwd::Request, None),
            Lookup::OnlyIfCachedMiss => (Fwd::Miss, None),
        };
        let (stored, ttl, detail) = match store {
            Some(Ok(plan)) => (true, Some(plan.ttl()), detail),
            Some(Err(bypass)) => (false, None, Some(bypass.detail())),
            None => (false, None, detail),
        };
        CacheStatus::Forward {
            fwd,
            fwd_status,
            ttl,
            stored,
            detail,
        }
    }
}

/// Decides how to answer a request from `stored` (the wrapped headers found under its key,
/// or `None`) at `now_ms` (§4).
pub(crate) fn lookup(
    policy: &RequestPolicy,
    req_headers: &HeaderList,
    stored: Option<&HeaderList>,
    now_ms: u64,
) -> Lookup {
    if !policy.cacheable() {
        return Lookup::Miss {
            fwd: Fwd::Method,
            detail: None,
        };
    }
    let miss = |fwd: Fwd, detail: Option<Detail>| {
        if policy.only_if_cached {
            Lookup::OnlyIfCachedMiss
        } else {
            Lookup::Miss { fwd, detail }
        }
    };
    let Some(stored) = stored else {
        return miss(Fwd::UriMiss, None);
    };
    let Some(entry) = Entry::parse(stored) else {
        return miss(Fwd::Miss, Some(Detail::BadEntry));
    };
    if !entry.vary_matches(req_headers) {
        return miss(Fwd::VaryMiss, None);
    }
    // §3.5 only restricts *storing* responses to credentialed requests; answering a
    // credentialed request from an anonymous entry is allowed, but the visitor may be
    // expecting personal content, so only entries the origin explicitly marked shareable
    // answer such requests.
    if policy.authorization && !entry.rules.shareable_with_credentials {
        return miss(Fwd::Bypass, Some(Detail::Authorization));
    }

    let rules = &entry.rules;
    let age_ms = entry.age_ms(now_ms);
    let lifetime_ms = rules.lifetime.saturating_mul(1000);
    let age = age_secs(age_ms);
    let ttl = ttl_secs(rules.lifetime, age_ms);
    let fresh = age_ms < lifetime_ms;
    let revalidate = |fwd: Fwd| {
        if policy.only_if_cached {
            Lookup::OnlyIfCachedMiss
        } else {
            Lookup::Revalidate {
                fwd,
                conditional: entry.conditional(),
            }
        }
    };

    if rules.no_cache {
        return revalidate(Fwd::Stale);
    }
    let request_fwd = if fresh { Fwd::Request } else { Fwd::Stale };
    if policy.no_cache {
        return revalidate(request_fwd);
    }
    if let Some(max_age) = policy.max_age {
        if age_ms > max_age.saturating_mul(1000) {
            return revalidate(request_fwd);
        }
    }
    if fresh {
        if let Some(min_fresh) = policy.min_fresh {
            if lifetime_ms.saturating_sub(age_ms) < min_fresh.saturating_mul(1000) {
                return revalidate(Fwd::Request);
            }
        }
        return Lookup::Fresh { age, ttl };
    }

    let staleness_ms = age_ms.saturating_sub(lifetime_ms);
    if rules.stale_prohibited {
        return revalidate(Fwd::Stale);
    }
    let accepted_by_client = match policy.max_stale {
        Some(MaxStale::Any) => true,
        Some(MaxStale::Secs(n)) => staleness_ms <= n.saturating_mul(1000),
        None => false,
    };
    if accepted_by_client {
        return Lookup::Stale { age, ttl };
    }
    if rules.swr > 0 && staleness_ms <= rules.swr.saturating_mul(1000) {
        return Lookup::StaleWhileRevalidate {
            age,
            ttl,
            conditional: entry.conditional(),
        };
    }
    revalidate(Fwd::Stale)
}

/// Whether an origin outcome is an error for `stale-if-error`: a network error (`None`) or
/// any 5xx. RFC 5861 §4 names 500, 502, 503 and 504; we include the rest of 5xx because
/// Cloudflare reports origin trouble as 52x.
pub(crate) fn is_origin_error(status: Option<u16>) -> bool {
    status.is_none_or(|s| (500..=599).contains(&s))
}

/// What to send when the origin failed while revalidating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnError {
    /// Serve the stored response with this `Age`.
    ServeStale { age: u64, ttl: i64 },
    /// Pass the origin's answer (or a 502 for a network error) through.
    PassThrough,
}

impl OnError {
    /// `Cache-Status` when serving stale: `hit` with `detail=stale-if-error`.
    pub(crate) fn cache_status(&self) -> Option<CacheStatus> {
        match self {
            OnError::ServeStale { ttl, .. } => Some(CacheStatus::Hit {
                ttl: *ttl,
                detail: Some(Detail::StaleIfError),
            }),
            OnError::PassThrough => None,
        }
    }
}

/// After a revalidation of `stored` failed with `origin_status` (`None`: network error):
/// serve the stored response if the response's or the request's `stale-if-error` window
/// covers its staleness (RFC 5861 §4), never when `no-cache`, `must-revalidate`,
/// `proxy-revalidate` or `s-maxage` forbid stale (§4.2.4). A still-fresh entry (revalidated
/// only because the request asked) is served too.
pub(crate) fn on_origin_error(
    policy: &RequestPolicy,
    stored: &HeaderList,
    origin_status: Option<u16>,
    now_ms: u64,
) -> OnError {
    if !is_origin_error(origin_status) {
        return OnError::PassThrough;
    }
    let Some(entry) = Entry::parse(stored) else {
        return OnError::PassThrough;
    };
    if entry.rules.stale_prohibited {
        return OnError::PassThrough;
    }
    let age_ms = entry.age_ms(now_ms);
    let staleness_ms = age_ms.saturating_sub(entry.rules.lifetime.saturating_mul(1000));
    let window = entry.rules.sie.max(policy.stale_if_error.unwrap_or(0));
    if staleness_ms == 0 || (window > 0 && staleness_ms <= window.saturating_mul(1000)) {
        OnError::ServeStale {
            age: age_secs(age_ms),
            ttl: ttl_secs(entry.rules.lifetime, age_ms),
        }
    } else {
        OnError::PassThrough
    }
}

#[cfg(test)]
#[allow(clippy::type_complexity)]
mod tests {
    use super::*;
    use crate::httpcache::entry::*;
    use crate::httpcache::request::*;
    use crate::httpcache::status::*;
    use crate::httpcache::testing::*;

    #[test]
    fn lookup_decides_by_freshness_stale_windows_and_request_directives() {
        type Check = fn(&Lookup) -> bool;
        let cases: &[(&str, &[(&str, &str)], &str, u64, Check)] = &[
            (
                "fresh is a hit",
                &[("cache-control", "max-age=60")],
                "",
                30,
                |l| *l == Lookup::Fresh { age: 30, ttl: 30 },
            ),
            (
                "stale revalidates",
                &[("cache-control", "max-age=60")],
                "",
                61,
                |l| {
                    matches!(
                        l,
                        Lookup::Revalidate {
                            fwd: Fwd::Stale,
                            ..
                        }
                    )
                },
            ),
            (
                "expiry instant is stale",
                &[("cache-control", "max-age=60")],
                "",
                60,
                |l| matches!(l, Lookup::Revalidate { .. }),
            ),
            (
                "within swr serves stale",
                &[("cache-control", "max-age=60, stale-while-revalidate=30")],
                "",
                80,
                |l| {
                    matches!(
                        l,
                        Lookup::StaleWhileRevalidate {
                            age: 80,
                            ttl: -20,
                            ..
                        }
                    )
                },
            ),
            (
                "beyond swr revalidates",
                &[("cache-control", "max-age=60, stale-while-revalidate=30")],
                "",
                91,
                |l| {
                    matches!(
                        l,
                        Lookup::Revalidate {
                            fwd: Fwd::Stale,
                            ..
                        }
                    )
                },
            ),
            (
                "must-revalidate forbids swr",
                &[(
                    "cache-control",
                    "max-age=60, stale-while-revalidate=30, must-revalidate",
                )],
                "",
                61,
                |l| matches!(l, Lookup::Revalidate { .. }),
            ),
            (
                "proxy-revalidate forbids swr",
                &[(
                    "cache-control",
                    "max-age=60, stale-while-revalidate=30, proxy-revalidate",
                )],
                "",
                61,
                |l| matches!(l, Lookup::Revalidate { .. }),
            ),
            (
                "s-maxage forbids swr",
                &[("cache-control", "s-maxage=60, stale-while-revalidate=30")],
                "",
                61,
                |l| matches!(l, Lookup::Revalidate { .. }),
            ),
            (
                "response no-cache always revalidates",
                &[
                    ("cache-control", "max-age=600, no-cache"),
                    ("etag", "\"a\""),
                ],
                "",
                1,
                |l| {
                    matches!(
                        l,
                        Lookup::Revalidate {
                            fwd: Fwd::Stale,
                            ..
                        }
                    )
                },
            ),
            (
                "no-cache field list does not",
                &[("cache-control", "max-age=600, no-cache=\"x\"")],
                "",
                1,
                |l| matches!(l, Lookup::Fresh { .. }),
            ),
            (
                "request no-cache revalidates fresh",
                &[("cache-control", "max-age=600")],
                "no-cache",
                1,
                |l| {
                    matches!(
                        l,
                        Lookup::Revalidate {
                            fwd: Fwd::Request,
                            ..
                        }
                    )
                },
            ),
            (
                "request max-age=0 revalidates",
                &[("cache-control", "max-age=600")],
                "max-age=0",
                1,
                |l| {
                    matches!(
                        l,
                        Lookup::Revalidate {
                            fwd: Fwd::Request,
                            ..
                        }
                    )
                },
            ),
            (
                "request max-age older than asked",
                &[("cache-control", "max-age=3600")],
                "max-age=600",
                1800,
                |l| {
                    matches!(
                        l,
                        Lookup::Revalidate {
                            fwd: Fwd::Request,
                            ..
                        }
                    )
                },
            ),
            (
                "request max-age satisfied",
                &[("cache-control", "max-age=3600")],
                "max-age=600",
                599,
                |l| matches!(l, Lookup::Fresh { .. }),
            ),
            (
                "min-fresh not met",
                &[("cache-control", "max-age=1500")],
                "min-fresh=2000",
                0,
                |l| {
                    matches!(
                        l,
                        Lookup::Revalidate {
                            fwd: Fwd::Request,
                            ..
                        }
                    )
                },
            ),
            (
                "min-fresh met",
                &[("cache-control", "max-age=1500")],
                "min-fresh=1000",
                100,
                |l| matches!(l, Lookup::Fresh { .. }),
            ),
            (
                "max-stale without value",
                &[("cache-control", "max-age=1")],
                "max-stale",
                5000,
                |l| matches!(l, Lookup::Stale { age: 5000, .. }),
            ),
            (
                "max-stale within",
                &[("cache-control", "max-age=1")],
                "max-stale=1000",
                500,
                |l| matches!(l, Lookup::Stale { .. }),
            ),
            (
                "max-stale exceeded",
                &[("cache-control", "max-age=1")],
                "max-stale=10",
                500,
                |l| matches!(l, Lookup::Revalidate { .. }),
            ),
            (
                "max-stale cannot override must-revalidate",
                &[("cache-control", "max-age=1, must-revalidate")],
                "max-stale",
                500,
                |l| matches!(l, Lookup::Revalidate { .. }),
            ),
            (
                "only-if-cached fresh",
                &[("cache-control", "max-age=60")],
                "only-if-cached",
                1,
                |l| matches!(l, Lookup::Fresh { .. }),
            ),
            (
                "only-if-cached stale",
                &[("cache-control", "max-age=60")],
                "only-if-cached",
                61,
                |l| *l == Lookup::OnlyIfCachedMiss,
            ),
            (
                "only-if-cached within swr",
                &[("cache-control", "max-age=60, stale-while-revalidate=30")],
                "only-if-cached",
                61,
                |l| matches!(l, Lookup::StaleWhileRevalidate { .. }),
            ),
        ];
        for (name, res, req_cc, secs, check) in cases {
            let entry = stored(res);
            let policy = if req_cc.is_empty() {
                get()
            } else {
                req_policy(req_cc)
            };
            let got = at(&entry, &policy, &[], T0 + secs * SEC);
            assert!(check(&got), "{name}: {got:?}");
        }
    }

    #[test]
    fn an_origin_age_header_counts_against_freshness() {
        let entry = stored(&[("cache-control", "max-age=3600"), ("age", "1800")]);
        assert_eq!(
            at(&entry, &get(), &[], T0),
            Lookup::Fresh {
                age: 1800,
                ttl: 1800
            }
        );
        assert!(reval(Fwd::Request)(&at(
            &entry,
            &req_policy("max-age=600"),
            &[],
            T0
        )));
        let old = stored(&[
            ("cache-control", "max-age=1500"),
            ("age", "2000"),
            ("etag", "\"a\""),
        ]);
        assert!(matches!(
            at(&old, &req_policy("max-stale=1000"), &[], T0),
            Lookup::Stale { .. }
        ));
    }

    #[test]
    fn lookup_misses_without_a_usable_entry() {
        let entry = stored(&[("cache-control", "max-age=60")]);
        let cases: Vec<(&str, RequestPolicy, Option<Vec<(String, String)>>, Lookup)> = vec![
            (
                "nothing stored",
                get(),
                None,
                Lookup::Miss {
                    fwd: Fwd::UriMiss,
                    detail: None,
                },
            ),
            (
                "nothing stored, only-if-cached",
                req_policy("only-if-cached"),
                None,
                Lookup::OnlyIfCachedMiss,
            ),
            (
                "not our entry",
                get(),
                Some(hl(&[("cache-control", "max-age=60")])),
                Lookup::Miss {
                    fwd: Fwd::Miss,
                    detail: Some(Detail::BadEntry),
                },
            ),
            (
                "unsafe method",
                request_policy("POST", &[]),
                Some(entry.clone()),
                Lookup::Miss {
                    fwd: Fwd::Method,
                    detail: None,
                },
            ),
        ];
        for (name, policy, stored, want) in cases {
            assert_eq!(lookup(&policy, &[], stored.as_deref(), T0), want, "{name}");
        }
    }

    #[test]
    fn vary_selects_by_request_headers_and_absent_differs_from_empty() {
        let req = [("accept-language", "de, en"), ("foo", "1")];
        let entry = stored_for(
            &req,
            200,
            &[
                ("cache-control", "max-age=60"),
                ("vary", "Accept-Language"),
                ("vary", "FOO"),
            ],
        );
        let cases: &[(&str, &[(&str, &str)], bool)] = &[
            (
                "same values",
                &[("accept-language", "de, en"), ("foo", "1")],
                true,
            ),
            (
                "list whitespace normalised",
                &[("Accept-Language", "de,en"), ("foo", "1")],
                true,
            ),
            (
                "lines combined",
                &[
                    ("accept-language", "de"),
                    ("accept-language", "en"),
                    ("foo", "1"),
                ],
                true,
            ),
            (
                "unrelated headers ignored",
                &[("accept-language", "de, en"), ("foo", "1"), ("cookie", "x")],
                true,
            ),
            (
                "different value",
                &[("accept-language", "fr"), ("foo", "1")],
                false,
            ),
            ("header missing", &[("accept-language", "de, en")], false),
            (
                "empty is not absent",
                &[("accept-language", "de, en"), ("foo", "")],
                false,
            ),
        ];
        for (name, req, hit) in cases {
            let got = at(&entry, &get(), req, T0);
            let want = if *hit {
                Lookup::Fresh { age: 0, ttl: 60 }
            } else {
                Lookup::Miss {
                    fwd: Fwd::VaryMiss,
                    detail: None,
                }
            };
            assert_eq!(got, want, "{name}");
        }
        let absent = stored_for(
            &[],
            200,
            &[("cache-control", "max-age=60"), ("vary", "foo")],
        );
        assert!(matches!(at(&absent, &get(), &[], T0), Lookup::Fresh { .. }));
        assert!(matches!(
            at(&absent, &get(), &[("foo", "")], T0),
            Lookup::Miss {
                fwd: Fwd::VaryMiss,
                ..
            }
        ));
        // A tampered entry whose Vary lost its key never matches.
        let tampered: Vec<_> = entry
            .iter()
            .filter(|(n, _)| n != META_VARY)
            .cloned()
            .collect();
        assert!(matches!(
            at(&tampered, &get(), &req, T0),
            Lookup::Miss {
                fwd: Fwd::VaryMiss,
                ..
            }
        ));
    }

    #[test]
    fn credentialed_requests_are_answered_only_from_explicitly_shareable_entries() {
        let auth = [("authorization", "Bearer t")];
        let policy = request_policy("GET", &hl(&auth));
        let plain = stored(&[("cache-control", "max-age=60")]);
        assert_eq!(
            at(&plain, &policy, &auth, T0),
            Lookup::Miss {
                fwd: Fwd::Bypass,
                detail: Some(Detail::Authorization)
            }
        );
        for cc in [
            "max-age=60, public",
            "s-maxage=60",
            "max-age=60, must-revalidate",
        ] {
            let e = stored_for(&auth, 200, &[("cache-control", cc)]);
            assert!(
                matches!(at(&e, &policy, &auth, T0), Lookup::Fresh { .. }),
                "{cc}"
            );
        }
    }

    #[test]
    fn revalidation_sends_the_stored_validators() {
        let lm = date(T0 - 86_400 * SEC);
        let cases: Vec<(Vec<(&str, &str)>, Vec<(&str, &str)>)> = vec![
            (vec![("etag", "\"v1\"")], vec![("if-none-match", "\"v1\"")]),
            (
                vec![("last-modified", &lm)],
                vec![("if-modified-since", &lm)],
            ),
            (
                vec![("etag", "W/\"v1\""), ("last-modified", &lm)],
                vec![("if-none-match", "W/\"v1\""), ("if-modified-since", &lm)],
            ),
            (vec![], vec![]),
        ];
        for (validators, want) in cases {
            let mut res = vec![("cache-control", "max-age=60, stale-while-revalidate=10")];
            res.extend(validators);
            let entry = stored(&res);
            match at(&entry, &get(), &[], T0 + 61 * SEC) {
                Lookup::StaleWhileRevalidate { conditional, .. } => {
                    assert_eq!(conditional, hl(&want))
                }
                other => panic!("{other:?}"),
            }
            match at(&entry, &get(), &[], T0 + 99 * SEC) {
                Lookup::Revalidate { conditional, .. } => assert_eq!(conditional, hl(&want)),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn stale_if_error_serves_stale_only_within_its_window_and_never_when_forbidden() {
        type Case<'a> = (&'a str, &'a str, &'a str, Option<u16>, u64, bool);
        let cases: &[Case<'_>] = &[
            (
                "503 within response window",
                "max-age=2, stale-if-error=60",
                "",
                Some(503),
                30,
                true,
            ),
            (
                "network error within window",
                "max-age=2, stale-if-error=60",
                "",
                None,
                30,
                true,
            ),
            (
                "any 5xx counts",
                "max-age=2, stale-if-error=60",
                "",
                Some(522),
                30,
                true,
            ),
            (
                "beyond the window",
                "max-age=2, stale-if-error=60",
                "",
                Some(503),
                63,
                false,
            ),
            (
                "not an error",
                "max-age=2, stale-if-error=60",
                "",
                Some(404),
                30,
                false,
            ),
            ("no window", "max-age=2", "", Some(503), 30, false),
            (
                "request window",
                "max-age=2",
                "stale-if-error=60",
                Some(500),
                30,
                true,
            ),
            (
                "request window too short",
                "max-age=2",
                "stale-if-error=5",
                Some(500),
                30,
                false,
            ),
            (
                "must-revalidate",
                "max-age=2, stale-if-error=60, must-revalidate",
                "",
                Some(503),
                30,
                false,
            ),
            (
                "proxy-revalidate",
                "max-age=2, stale-if-error=60, proxy-revalidate",
                "",
                Some(503),
                30,
                false,
            ),
            (
                "s-maxage",
                "s-maxage=2, stale-if-error=60",
                "",
                Some(503),
                30,
                false,
            ),
            (
                "no-cache",
                "max-age=2, no-cache, stale-if-error=60",
                "stale-if-error=60",
                Some(503),
                30,
                false,
            ),
            (
                "still fresh (client asked to revalidate)",
                "max-age=600",
                "",
                Some(503),
                30,
                true,
            ),
        ];
        for (name, res_cc, req_cc, status, secs, serve) in cases {
            let entry = stored(&[("cache-control", res_cc), ("etag", "\"a\"")]);
            let policy = if req_cc.is_empty() {
                get()
            } else {
                req_policy(req_cc)
            };
            let got = on_origin_error(&policy, &entry, *status, T0 + secs * SEC);
            assert_eq!(
                matches!(got, OnError::ServeStale { .. }),
                *serve,
                "{name}: {got:?}"
            );
        }
        let entry = stored(&[("cache-control", "max-age=2, stale-if-error=60")]);
        assert_eq!(
            on_origin_error(&get(), &entry, None, T0 + 30 * SEC),
            OnError::ServeStale { age: 30, ttl: -28 }
        );
        assert_eq!(
            on_origin_error(&get(), &hl(&[]), None, T0),
            OnError::PassThrough
        );
    }
}
