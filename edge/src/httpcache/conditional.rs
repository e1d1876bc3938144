//! Answering a visitor's own conditional request from the response we send (RFC 9111 §4.3.2,
//! RFC 9110 §13).

use super::dates::parse_http_date;
use super::directives::is_ows;
use super::headers::{HeaderList, Headers};
use super::request::RequestPolicy;
use super::revalidate::weak_eq;

/// Whether the visitor's own conditional request is satisfied by a response we are about
/// to send (§4.3.2, RFC 9110 §13.2.2): `If-None-Match` (weak comparison, `*` matches any
/// stored representation) takes precedence over `If-Modified-Since`. Only for GET/HEAD and
/// a 2xx response; answer with 304 and [`not_modified_headers`] when true.
pub(crate) fn client_not_modified(
    policy: &RequestPolicy,
    req_headers: &HeaderList,
    status: u16,
    res_headers: &HeaderList,
) -> bool {
    if !policy.cacheable() || !(200..300).contains(&status) {
        return false;
    }
    let req = Headers(req_headers);
    let res = Headers(res_headers);
    if let Some(inm) = req.joined("if-none-match") {
        if inm.trim() == "*" {
            return true;
        }
        return res
            .get("etag")
            .is_some_and(|etag| entity_tags(&inm).iter().any(|t| weak_eq(t, etag.trim())));
    }
    // RFC 9110 §13.1.3: ignore If-Modified-Since that is not a single valid date.
    let ims = req.get_all("if-modified-since");
    if let [ims] = ims.as_slice() {
        if let (Some(since), Some(lm)) = (
            parse_http_date(ims),
            res.get("last-modified").and_then(parse_http_date),
        ) {
            return lm <= since;
        }
    }
    false
}

/// Entity tags of an `If-None-Match` list (commas may appear inside the quotes).
pub(crate) fn entity_tags(list: &str) -> Vec<String> {
    let mut tags = Vec::new();
    let mut rest = list;
    while let Some(start) = rest.find('"') {
        let prefix_weak = rest.get(..start).is_some_and(|p| {
            p.trim_end_matches(|c: char| c == ',' || is_ows(c))
                .ends_with("W/")
        });
        let after = rest.get(start + 1..).unwrap_or("");
        let Some(end) = after.find('"') else { break };
        let opaque = after.get(..end).unwrap_or("");
        tags.push(format!(
            "{}\"{opaque}\"",
            if prefix_weak { "W/" } else { "" }
        ));
        rest = after.get(end + 1..).unwrap_or("");
    }
    tags
}

/// Headers of a 304 built from a full response (RFC 9110 §15.4.5): the fields a 200 would
/// carry that let the recipient update its cache, and nothing describing a body.
pub(crate) fn not_modified_headers(headers: &HeaderList) -> Vec<(String, String)> {
    const KEEP: &[&str] = &[
        "age",
        "cache-control",
        "content-location",
        "date",
        "etag",
        "expires",
        "last-modified",
        "vary",
    ];
    headers
        .iter()
        .filter(|(n, _)| KEEP.iter().any(|k| n.eq_ignore_ascii_case(k)))
        .cloned()
        .collect()
}

#[cfg(test)]
#[allow(clippy::type_complexity)]
mod tests {
    use super::*;
    use crate::httpcache::request::*;
    use crate::httpcache::testing::*;

    #[test]
    fn visitor_conditionals_are_answered_from_the_stored_validators() {
        let lm = date(T0 - 100 * SEC);
        let res = hl(&[
            ("etag", "\"v1\""),
            ("last-modified", &lm),
            ("content-length", "5"),
        ]);
        let before = date(T0 - 200 * SEC);
        let after = date(T0);
        let cases: &[(&str, &str, u16, &[(&str, &str)], bool)] = &[
            (
                "matching etag",
                "GET",
                200,
                &[("if-none-match", "\"v1\"")],
                true,
            ),
            (
                "weak matching etag",
                "GET",
                200,
                &[("if-none-match", "W/\"v1\"")],
                true,
            ),
            (
                "one of a list",
                "GET",
                200,
                &[("if-none-match", "\"x\", \"v1\"")],
                true,
            ),
            (
                "comma inside a tag",
                "GET",
                200,
                &[("if-none-match", "\"a,b\"")],
                false,
            ),
            ("star", "HEAD", 200, &[("if-none-match", "*")], true),
            (
                "other etag",
                "GET",
                200,
                &[("if-none-match", "\"v2\"")],
                false,
            ),
            (
                "etag wins over date",
                "GET",
                200,
                &[("if-none-match", "\"v2\""), ("if-modified-since", &after)],
                false,
            ),
            (
                "not modified since",
                "GET",
                200,
                &[("if-modified-since", &after)],
                true,
            ),
            (
                "modified since",
                "GET",
                200,
                &[("if-modified-since", &before)],
                false,
            ),
            (
                "invalid date",
                "GET",
                200,
                &[("if-modified-since", "yesterday")],
                false,
            ),
            (
                "two dates",
                "GET",
                200,
                &[("if-modified-since", &after), ("if-modified-since", &after)],
                false,
            ),
            ("non-2xx", "GET", 404, &[("if-none-match", "\"v1\"")], false),
            (
                "unsafe method",
                "POST",
                200,
                &[("if-none-match", "\"v1\"")],
                false,
            ),
            ("unconditional", "GET", 200, &[], false),
        ];
        for (name, method, status, req, want) in cases {
            let req = hl(req);
            assert_eq!(
                client_not_modified(&request_policy(method, &req), &req, *status, &res),
                *want,
                "{name}"
            );
        }
        assert_eq!(entity_tags("W/\"a,b\", \"c\""), vec!["W/\"a,b\"", "\"c\""]);
        assert_eq!(
            not_modified_headers(&hl(&[
                ("etag", "\"v1\""),
                ("content-length", "5"),
                ("cache-control", "max-age=5"),
                ("content-type", "x")
            ])),
            hl(&[("etag", "\"v1\""), ("cache-control", "max-age=5")])
        );
    }
}
