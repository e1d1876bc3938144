//! Invalidation after unsafe methods (RFC 9111 §4.4).

use super::headers::{HeaderList, Headers};
use super::uri::{normalise_url, Url};

/// Whether a response to `method` invalidates stored responses (§4.4): any method not known
/// to be safe (so unknown methods too), with a non-error (2xx or 3xx) status.
pub(crate) fn invalidates(method: &str, status: u16) -> bool {
    let safe = matches!(method, "GET" | "HEAD" | "OPTIONS" | "TRACE");
    !safe && (200..400).contains(&status)
}

/// The URLs (normalised, see [`normalise_url`]) to evict after an invalidating response:
/// the target URI, plus `Location` and `Content-Location` resolved against it when they
/// have the same origin (§4.4 forbids invalidating other origins).
///
/// Each URL is stored under one key per flag-variant set, and the Cache API can only delete
/// exact keys, so the glue deletes the keys for the variant sets it can name. Deletion is
/// per data centre: the Cache API is local.
pub(crate) fn invalidation_targets(request_url: &str, res_headers: &HeaderList) -> Vec<String> {
    let Some(base) = Url::parse(request_url) else {
        return vec![normalise_url(request_url)];
    };
    let mut out = vec![base.to_string()];
    let h = Headers(res_headers);
    for name in ["location", "content-location"] {
        let Some(target) = h.get(name).and_then(|v| base.resolve(v)) else {
            continue;
        };
        if target.scheme == base.scheme && target.authority == base.authority {
            let s = target.to_string();
            if !out.contains(&s) {
                out.push(s);
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::type_complexity)]
mod tests {
    use super::*;
    use crate::httpcache::testing::*;

    #[test]
    fn unsafe_methods_with_non_error_responses_invalidate() {
        let cases: &[(&str, u16, bool)] = &[
            ("POST", 200, true),
            ("PUT", 201, true),
            ("DELETE", 204, true),
            ("PATCH", 303, true),
            ("M-SEARCH", 200, true),
            ("POST", 500, false),
            ("POST", 404, false),
            ("POST", 100, false),
            ("GET", 200, false),
            ("HEAD", 200, false),
            ("OPTIONS", 200, false),
            ("TRACE", 200, false),
        ];
        for (method, status, want) in cases {
            assert_eq!(invalidates(method, *status), *want, "{method} {status}");
        }
    }

    #[test]
    fn invalidation_covers_same_origin_location_and_content_location() {
        let cases: &[(&str, &[(&str, &str)], &[&str])] = &[
            ("target only", &[], &["https://shop.example/a/b?x=1"]),
            (
                "relative location",
                &[("location", "../c")],
                &["https://shop.example/a/b?x=1", "https://shop.example/c"],
            ),
            (
                "absolute content-location, default port",
                &[("content-location", "HTTPS://Shop.Example:443/d#frag")],
                &["https://shop.example/a/b?x=1", "https://shop.example/d"],
            ),
            (
                "query-only reference",
                &[("location", "?y=2")],
                &[
                    "https://shop.example/a/b?x=1",
                    "https://shop.example/a/b?y=2",
                ],
            ),
            (
                "network-path reference",
                &[("location", "//shop.example/e")],
                &["https://shop.example/a/b?x=1", "https://shop.example/e"],
            ),
            (
                "same as target, deduplicated",
                &[("content-location", "/a/b?x=1")],
                &["https://shop.example/a/b?x=1"],
            ),
            (
                "other host ignored",
                &[("location", "https://evil.example/a/b")],
                &["https://shop.example/a/b?x=1"],
            ),
            (
                "other scheme ignored",
                &[("location", "http://shop.example/a")],
                &["https://shop.example/a/b?x=1"],
            ),
            (
                "other port ignored",
                &[("location", "https://shop.example:8443/a")],
                &["https://shop.example/a/b?x=1"],
            ),
            (
                "non-hierarchical ignored",
                &[("location", "mailto:x@shop.example")],
                &["https://shop.example/a/b?x=1"],
            ),
        ];
        for (name, res, want) in cases {
            assert_eq!(
                invalidation_targets("https://Shop.Example/a/b?x=1#top", &hl(res)),
                want.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                "{name}"
            );
        }
        assert_eq!(
            invalidation_targets("not a url", &[]),
            vec!["not a url".to_string()]
        );
    }
}
