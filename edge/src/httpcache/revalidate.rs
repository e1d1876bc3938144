//! Freshening a stored response with a 304 from the origin (RFC 9111 §4.3.3–4.3.4, §3.2).

use crate::traffic::proxy::{connection_tokens, is_hop_by_hop};

use super::dates::{format_http_date, parse_http_date};
use super::entry::{is_meta, Entry};
use super::headers::{HeaderList, Headers};
use super::request::RequestPolicy;
use super::store::{plan_store, Bypass, StorePlan};

/// Header fields a 304 does not update (§3.2): `Content-Length`, fields describing the
/// stored body's bytes (its coding, range and checksums: a 304 carries no content, so a
/// new `Content-MD5` or `Content-Digest` would contradict the body we keep — §3.2's
/// "fields necessary to assure integrity of the stored response"), hop-by-hop fields, and
/// our metadata.
const NOT_UPDATED_BY_304: &[&str] = &[
    "content-length",
    "content-encoding",
    "content-range",
    "content-md5",
    "content-digest",
    "transfer-encoding",
];

/// The result of freshening a stored response with a 304.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Revalidated {
    /// The freshened response headers (origin form) to send to the visitor with the
    /// stored body. No `Age`: the response was just validated (§5.1), unless the 304
    /// itself carried one.
    pub(crate) headers: Vec<(String, String)>,
    /// Whether and how to re-store the freshened response (with the same body). On `Err`
    /// (e.g. the 304 added `no-store` or a `Set-Cookie`), serve but do not re-store.
    pub(crate) store: Result<StorePlan, Bypass>,
}

/// Freshens `stored` with the 304 `not_modified` (§4.3.4, §3.2): each field of the 304
/// replaces the stored lines of that name, except those in §3.2's exceptions. A 304 without
/// `Date` gets one (the time it arrived), so the entry's age restarts. `stored_status` is
/// the stored response's status.
///
/// Returns `None` when the 304's validator does not identify the stored response (a strong
/// `ETag` that differs, a weak one that does not weakly match, or a different
/// `Last-Modified`): then the cache must not use it (§4.3.4) and the glue should repeat the
/// request without conditional headers.
pub(crate) fn after_304(
    policy: &RequestPolicy,
    req_headers: &HeaderList,
    stored_status: u16,
    stored: &HeaderList,
    not_modified: &HeaderList,
    request_time_ms: u64,
    response_time_ms: u64,
) -> Option<Revalidated> {
    let entry = Entry::parse(stored)?;
    if !validators_match(&entry.origin, not_modified) {
        return None;
    }
    let nm = Headers(not_modified);
    let conn = connection_tokens(nm.joined("connection").as_deref());
    let updated = |name: &str| {
        !is_meta(name) && !is_hop_by_hop(name, &conn) && !NOT_UPDATED_BY_304.contains(&name)
    };
    let incoming: Vec<(String, String)> = not_modified
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
        .filter(|(n, _)| updated(n))
        .collect();
    let mut headers: Vec<(String, String)> = entry
        .origin
        .into_iter()
        // The old Age described the old exchange; the 304 brings its own or none.
        .filter(|(n, _)| n != "age" && !incoming.iter().any(|(i, _)| i == n))
        .collect();
    headers.extend(incoming);
    if !nm.has("date") {
        headers.retain(|(n, _)| n != "date");
        headers.push(("date".into(), format_http_date(response_time_ms / 1000)));
    }
    let store = plan_store(
        policy,
        req_headers,
        stored_status,
        &headers,
        (request_time_ms, response_time_ms),
        true,
    );
    Some(Revalidated { headers, store })
}

/// Does the 304's validator select the stored response (§4.3.4)?
fn validators_match(stored: &HeaderList, not_modified: &HeaderList) -> bool {
    let old = Headers(stored);
    let new = Headers(not_modified);
    match new.get("etag").map(str::trim) {
        Some(tag) if !tag.starts_with("W/") => old.get("etag").map(str::trim) == Some(tag),
        Some(tag) => old.get("etag").is_some_and(|o| weak_eq(o.trim(), tag)),
        None => match new.get("last-modified") {
            Some(lm) => {
                let parsed = parse_http_date(lm);
                parsed.is_some() && old.get("last-modified").and_then(parse_http_date) == parsed
            }
            // No validator at all: §4.3.4 lets it update a single stored response without
            // one; we sent this entry's own validators, so the 304 can only be about it.
            None => true,
        },
    }
}

/// Weak entity-tag comparison (RFC 9110 §8.8.3.2).
pub(crate) fn weak_eq(a: &str, b: &str) -> bool {
    let strip = |t: &str| t.strip_prefix("W/").unwrap_or(t).to_owned();
    strip(a) == strip(b)
}

#[cfg(test)]
#[allow(clippy::type_complexity)]
mod tests {
    use super::*;
    use crate::httpcache::entry::*;
    use crate::httpcache::headers::*;
    use crate::httpcache::lookup::*;
    use crate::httpcache::request::*;
    use crate::httpcache::store::*;
    use crate::httpcache::testing::*;

    fn revalidate_with(
        stored_res: &[(&str, &str)],
        not_modified: &[(&str, &str)],
        now: u64,
    ) -> Option<Revalidated> {
        let entry = stored(stored_res);
        after_304(&get(), &[], 200, &entry, &hl(not_modified), now - SEC, now)
    }

    #[test]
    fn a_304_updates_stored_headers_except_body_metadata() {
        let later = T0 + 100 * SEC;
        let r = revalidate_with(
            &[
                ("cache-control", "max-age=1"),
                ("etag", "\"v1\""),
                ("test-header", "A"),
                ("content-type", "text/plain"),
                ("content-length", "10"),
                ("content-encoding", "gzip"),
                ("x-kept", "k"),
                ("age", "3"),
            ],
            &[
                ("cache-control", "max-age=3600"),
                ("etag", "\"v1\""),
                ("test-header", "B"),
                ("content-type", "text/plain;charset=utf-8"),
                ("content-length", "0"),
                ("content-encoding", "br"),
                ("connection", "close"),
                ("x-ef-status", "999"),
                ("date", &date(later)),
            ],
            later,
        )
        .unwrap();
        let h = Headers(&r.headers);
        assert_eq!(h.get_all("test-header"), vec!["B"]);
        assert_eq!(h.get("content-type"), Some("text/plain;charset=utf-8"));
        assert_eq!(h.get_all("cache-control"), vec!["max-age=3600"]);
        assert_eq!(h.get("content-length"), Some("10"));
        assert_eq!(h.get("content-encoding"), Some("gzip"));
        assert_eq!(h.get("x-kept"), Some("k"));
        assert_eq!(h.get_all("date"), vec![date(later).as_str()]);
        assert!(!h.has("age") && !h.has("connection") && !h.has("x-ef-status"));

        let plan = r.store.unwrap();
        assert_eq!(plan.freshness_lifetime, 3600);
        let s = Headers(&plan.headers);
        assert_eq!(s.get(META_STORED_AT), Some(later.to_string().as_str()));
        assert_eq!(s.get(META_STATUS), Some("200"));
        // One second of response delay (request sent at `later - 1s`) counts as age.
        assert_eq!(
            at(&plan.headers, &get(), &[], later + 10 * SEC),
            Lookup::Fresh { age: 11, ttl: 3589 }
        );
    }

    #[test]
    fn a_304_keeps_the_stored_body_checksums() {
        let later = T0 + 100 * SEC;
        let r = revalidate_with(
            &[
                ("cache-control", "max-age=1"),
                ("etag", "\"v1\""),
                ("content-md5", "rL0Y20zC+Fzt72VPzMSk2A=="),
                ("content-digest", "sha-256=:AAAA:"),
            ],
            &[
                ("cache-control", "max-age=60"),
                ("etag", "\"v1\""),
                ("content-md5", "N7UdGUp1E+RbVvZSTy1R8g=="),
                ("content-digest", "sha-256=:BBBB:"),
                ("date", &date(later)),
            ],
            later,
        )
        .unwrap();
        let h = Headers(&r.headers);
        assert_eq!(h.get_all("content-md5"), vec!["rL0Y20zC+Fzt72VPzMSk2A=="]);
        assert_eq!(h.get_all("content-digest"), vec!["sha-256=:AAAA:"]);
        assert_eq!(h.get_all("cache-control"), vec!["max-age=60"]);
        let plan = r.store.unwrap();
        let s = Headers(&plan.headers);
        assert_eq!(s.get_all("content-md5"), vec!["rL0Y20zC+Fzt72VPzMSk2A=="]);
    }

    #[test]
    fn a_304_without_date_restarts_the_age_and_keeps_an_upstream_age() {
        let later = T0 + 500 * SEC;
        let r = revalidate_with(
            &[("cache-control", "max-age=60"), ("etag", "\"v1\"")],
            &[],
            later,
        )
        .unwrap();
        assert_eq!(
            Headers(&r.headers).get_all("date"),
            vec![date(later).as_str()]
        );
        let plan = r.store.unwrap();
        assert_eq!(
            at(&plan.headers, &get(), &[], later),
            Lookup::Fresh { age: 1, ttl: 59 }
        );

        let r = revalidate_with(
            &[("cache-control", "max-age=60"), ("etag", "\"v1\"")],
            &[("age", "7")],
            later,
        )
        .unwrap();
        assert_eq!(Headers(&r.headers).get("age"), Some("7"));
    }

    #[test]
    fn a_304_only_updates_the_response_its_validator_selects() {
        let lm = date(T0 - 86_400 * SEC);
        let other_lm = date(T0 - 2 * 86_400 * SEC);
        let cases: &[(&str, &[(&str, &str)], &[(&str, &str)], bool)] = &[
            (
                "same strong etag",
                &[("etag", "\"v1\"")],
                &[("etag", "\"v1\"")],
                true,
            ),
            (
                "different strong etag",
                &[("etag", "\"v1\"")],
                &[("etag", "\"v2\"")],
                false,
            ),
            (
                "strong 304 vs weak stored",
                &[("etag", "W/\"v1\"")],
                &[("etag", "\"v1\"")],
                false,
            ),
            (
                "weak matches weakly",
                &[("etag", "\"v1\"")],
                &[("etag", "W/\"v1\"")],
                true,
            ),
            (
                "weak mismatch",
                &[("etag", "W/\"v1\"")],
                &[("etag", "W/\"v2\"")],
                false,
            ),
            (
                "same last-modified",
                &[("last-modified", &lm)],
                &[("last-modified", &lm)],
                true,
            ),
            (
                "different last-modified",
                &[("last-modified", &lm)],
                &[("last-modified", &other_lm)],
                false,
            ),
            ("no validator in the 304", &[("etag", "\"v1\"")], &[], true),
        ];
        for (name, old, new, updates) in cases {
            let mut res = vec![("cache-control", "max-age=1")];
            res.extend_from_slice(old);
            assert_eq!(
                revalidate_with(&res, new, T0 + 5 * SEC).is_some(),
                *updates,
                "{name}"
            );
        }
        assert!(after_304(&get(), &[], 200, &hl(&[]), &[], T0, T0).is_none());
    }

    #[test]
    fn a_304_that_makes_the_response_unstorable_is_served_but_not_restored() {
        let cases: &[(&[(&str, &str)], Bypass)] = &[
            (&[("set-cookie", "a=c")], Bypass::SetCookie),
            (&[("cache-control", "no-store")], Bypass::NoStore),
            (&[("cache-control", "private")], Bypass::Private),
        ];
        for (nm, why) in cases {
            let r = revalidate_with(
                &[("cache-control", "max-age=1"), ("etag", "\"v1\"")],
                nm,
                T0 + 5 * SEC,
            )
            .unwrap();
            assert_eq!(r.store, Err(*why));
            assert_eq!(Headers(&r.headers).get(nm[0].0), Some(nm[0].1));
        }
    }

    #[test]
    fn a_head_revalidation_refreshes_the_stored_get() {
        let entry = stored(&[("cache-control", "max-age=1"), ("etag", "\"v1\"")]);
        let head = request_policy("HEAD", &[]);
        assert!(matches!(
            lookup(&head, &[], Some(&entry), T0 + 5 * SEC),
            Lookup::Revalidate { .. }
        ));
        let r = after_304(
            &head,
            &[],
            200,
            &entry,
            &hl(&[("cache-control", "max-age=60")]),
            T0,
            T0 + 5 * SEC,
        )
        .unwrap();
        assert!(r.store.is_ok());
    }
}
