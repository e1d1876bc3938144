//! `Cache-Status` (RFC 9211): what the cache did with a request, as a value, rendered once.

use std::fmt::Write as _;

/// The cache name in `Cache-Status` (RFC 9211 §2).
pub(crate) const CACHE_NAME: &str = "edgeflags";

/// Forward reasons of RFC 9211 §2.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fwd {
    /// The cache was configured not to handle this request.
    Bypass,
    /// The method requires forwarding.
    Method,
    /// Nothing stored for the URI (key).
    UriMiss,
    /// Something stored, but its `Vary` did not match.
    VaryMiss,
    /// Nothing usable stored (here: an unreadable entry).
    Miss,
    /// A fresh response was stored, but the request's directives forbade using it.
    Request,
    /// The stored response was stale (or needs validation on every use).
    Stale,
}

impl Fwd {
    /// The RFC 9211 token.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Fwd::Bypass => "bypass",
            Fwd::Method => "method",
            Fwd::UriMiss => "uri-miss",
            Fwd::VaryMiss => "vary-miss",
            Fwd::Miss => "miss",
            Fwd::Request => "request",
            Fwd::Stale => "stale",
        }
    }
}

/// `detail` values we emit (RFC 9211 §2.8), as tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    Authorization,
    SetCookie,
    Private,
    NoStore,
    Method,
    Status,
    VaryStar,
    NoFreshness,
    StaleWhileRevalidate,
    StaleIfError,
    MaxStale,
    OnlyIfCached,
    BadEntry,
    Retried,
}

impl Detail {
    /// The token.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Detail::Authorization => "authorization",
            Detail::SetCookie => "set-cookie",
            Detail::Private => "private",
            Detail::NoStore => "no-store",
            Detail::Method => "method",
            Detail::Status => "status",
            Detail::VaryStar => "vary-star",
            Detail::NoFreshness => "no-freshness",
            Detail::StaleWhileRevalidate => "stale-while-revalidate",
            Detail::StaleIfError => "stale-if-error",
            Detail::MaxStale => "max-stale",
            Detail::OnlyIfCached => "only-if-cached",
            Detail::BadEntry => "bad-entry",
            Detail::Retried => "retried",
        }
    }
}

/// One `Cache-Status` list member for this cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheStatus {
    /// Answered from the cache (`ttl` negative when stale).
    Hit { ttl: i64, detail: Option<Detail> },
    /// Forwarded to the origin.
    Forward {
        fwd: Fwd,
        /// Status the origin returned; `None` when it could not be reached.
        fwd_status: Option<u16>,
        /// Remaining freshness of the stored response, when one was stored.
        ttl: Option<i64>,
        stored: bool,
        detail: Option<Detail>,
    },
    /// Neither hit nor forwarded: the cache generated the response (`only-if-cached` 504).
    Generated { detail: Detail },
}

impl CacheStatus {
    /// Forwarded because the method is not one the cache handles (an unsafe method).
    pub(crate) fn method_bypass(fwd_status: Option<u16>) -> Self {
        CacheStatus::Forward {
            fwd: Fwd::Method,
            fwd_status,
            ttl: None,
            stored: false,
            detail: None,
        }
    }

    /// The list member, e.g. `edgeflags; fwd=stale; fwd-status=304; ttl=60; stored`.
    pub(crate) fn header_value(&self) -> String {
        let mut s = String::from(CACHE_NAME);
        let detail = match self {
            CacheStatus::Hit { ttl, detail } => {
                let _ = write!(s, "; hit; ttl={ttl}");
                *detail
            }
            CacheStatus::Forward {
                fwd,
                fwd_status,
                ttl,
                stored,
                detail,
            } => {
                let _ = write!(s, "; fwd={}", fwd.as_str());
                if let Some(status) = fwd_status {
                    let _ = write!(s, "; fwd-status={status}");
                }
                if let Some(ttl) = ttl {
                    let _ = write!(s, "; ttl={ttl}");
                }
                if *stored {
                    s.push_str("; stored");
                }
                *detail
            }
            CacheStatus::Generated { detail } => Some(*detail),
        };
        if let Some(d) = detail {
            let _ = write!(s, "; detail={}", d.as_str());
        }
        s
    }

    /// The `Cache-Status` value with ours appended to an upstream one: members are in the
    /// order the caches handled the response, so the one nearest the visitor is last, and a
    /// cache preserves what is there (RFC 9211 §2).
    pub(crate) fn append_to(&self, existing: Option<&str>) -> String {
        match existing.map(str::trim).filter(|e| !e.is_empty()) {
            Some(e) => format!("{e}, {}", self.header_value()),
            None => self.header_value(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::type_complexity)]
mod tests {
    use super::*;
    use crate::httpcache::lookup::*;
    use crate::httpcache::store::*;
    use crate::httpcache::testing::*;

    #[test]
    fn cache_status_values_render_per_rfc_9211() {
        use CacheStatus as C;
        let fwd = |fwd, fwd_status, ttl, stored, detail| C::Forward {
            fwd,
            fwd_status,
            ttl,
            stored,
            detail,
        };
        let cases: Vec<(CacheStatus, &str)> = vec![
            (
                C::method_bypass(Some(201)),
                "edgeflags; fwd=method; fwd-status=201",
            ),
            (
                C::Hit {
                    ttl: 120,
                    detail: None,
                },
                "edgeflags; hit; ttl=120",
            ),
            (
                C::Hit {
                    ttl: -5,
                    detail: Some(Detail::StaleWhileRevalidate),
                },
                "edgeflags; hit; ttl=-5; detail=stale-while-revalidate",
            ),
            (
                C::Hit {
                    ttl: -40,
                    detail: Some(Detail::StaleIfError),
                },
                "edgeflags; hit; ttl=-40; detail=stale-if-error",
            ),
            (
                fwd(Fwd::UriMiss, Some(200), Some(60), true, None),
                "edgeflags; fwd=uri-miss; fwd-status=200; ttl=60; stored",
            ),
            (
                fwd(Fwd::UriMiss, None, None, true, None),
                "edgeflags; fwd=uri-miss; stored",
            ),
            (
                fwd(Fwd::Stale, Some(304), None, true, None),
                "edgeflags; fwd=stale; fwd-status=304; stored",
            ),
            (
                fwd(Fwd::Method, Some(201), None, false, None),
                "edgeflags; fwd=method; fwd-status=201",
            ),
            (
                fwd(
                    Fwd::Bypass,
                    Some(200),
                    None,
                    false,
                    Some(Detail::Authorization),
                ),
                "edgeflags; fwd=bypass; fwd-status=200; detail=authorization",
            ),
            (
                fwd(
                    Fwd::UriMiss,
                    Some(200),
                    None,
                    false,
                    Some(Detail::SetCookie),
                ),
                "edgeflags; fwd=uri-miss; fwd-status=200; detail=set-cookie",
            ),
            (
                fwd(Fwd::UriMiss, Some(200), None, false, Some(Detail::Private)),
                "edgeflags; fwd=uri-miss; fwd-status=200; detail=private",
            ),
            (
                fwd(Fwd::UriMiss, Some(200), None, false, Some(Detail::NoStore)),
                "edgeflags; fwd=uri-miss; fwd-status=200; detail=no-store",
            ),
            (
                fwd(Fwd::VaryMiss, Some(200), None, false, None),
                "edgeflags; fwd=vary-miss; fwd-status=200",
            ),
            (
                fwd(Fwd::Request, None, None, false, None),
                "edgeflags; fwd=request",
            ),
            (
                C::Generated {
                    detail: Detail::OnlyIfCached,
                },
                "edgeflags; detail=only-if-cached",
            ),
        ];
        for (status, want) in cases {
            assert_eq!(status.header_value(), want);
        }
    }

    #[test]
    fn an_upstream_cache_status_is_kept_before_ours() {
        let hit = CacheStatus::Hit {
            ttl: 1,
            detail: None,
        };
        assert_eq!(hit.append_to(None), "edgeflags; hit; ttl=1");
        assert_eq!(hit.append_to(Some("  ")), "edgeflags; hit; ttl=1");
        assert_eq!(
            hit.append_to(Some("origin-cache; hit")),
            "origin-cache; hit, edgeflags; hit; ttl=1"
        );
    }

    #[test]
    fn cache_status_follows_from_lookup_and_store_outcomes() {
        let plan = storable(
            &get(),
            &[],
            200,
            &hl(&[("cache-control", "max-age=60"), ("date", &date(T0))]),
            T0,
            T0,
        );
        let cases: Vec<(CacheStatus, &str)> = vec![
            (
                Lookup::Fresh { age: 1, ttl: 120 }.cache_status().unwrap(),
                "edgeflags; hit; ttl=120",
            ),
            (
                Lookup::Stale { age: 9, ttl: -3 }.cache_status().unwrap(),
                "edgeflags; hit; ttl=-3; detail=max-stale",
            ),
            (
                Lookup::StaleWhileRevalidate {
                    age: 9,
                    ttl: -3,
                    conditional: vec![],
                }
                .cache_status()
                .unwrap(),
                "edgeflags; hit; ttl=-3; detail=stale-while-revalidate",
            ),
            (
                Lookup::OnlyIfCachedMiss.cache_status().unwrap(),
                "edgeflags; detail=only-if-cached",
            ),
            (
                OnError::ServeStale { age: 9, ttl: -7 }
                    .cache_status()
                    .unwrap(),
                "edgeflags; hit; ttl=-7; detail=stale-if-error",
            ),
            (
                Lookup::Miss {
                    fwd: Fwd::UriMiss,
                    detail: None,
                }
                .forwarded_status(Some(200), Some(&plan)),
                "edgeflags; fwd=uri-miss; fwd-status=200; ttl=60; stored",
            ),
            (
                Lookup::Revalidate {
                    fwd: Fwd::Stale,
                    conditional: vec![],
                }
                .forwarded_status(Some(304), Some(&plan)),
                "edgeflags; fwd=stale; fwd-status=304; ttl=60; stored",
            ),
            (
                Lookup::Miss {
                    fwd: Fwd::Method,
                    detail: None,
                }
                .forwarded_status(Some(200), Some(&Err(Bypass::Method))),
                "edgeflags; fwd=method; fwd-status=200; detail=method",
            ),
            (
                Lookup::Miss {
                    fwd: Fwd::Bypass,
                    detail: Some(Detail::Authorization),
                }
                .forwarded_status(Some(200), None),
                "edgeflags; fwd=bypass; fwd-status=200; detail=authorization",
            ),
            (
                Lookup::Miss {
                    fwd: Fwd::VaryMiss,
                    detail: None,
                }
                .forwarded_status(None, None),
                "edgeflags; fwd=vary-miss",
            ),
            (
                Lookup::Revalidate {
                    fwd: Fwd::Request,
                    conditional: vec![],
                }
                .forwarded_status(Some(200), Some(&Err(Bypass::SetCookie))),
                "edgeflags; fwd=request; fwd-status=200; detail=set-cookie",
            ),
        ];
        for (status, want) in cases {
            assert_eq!(status.header_value(), want);
        }
        assert_eq!(
            Lookup::Revalidate {
                fwd: Fwd::Stale,
                conditional: vec![]
            }
            .cache_status(),
            None
        );
        assert_eq!(OnError::PassThrough.cache_status(), None);
    }
}
