//! Flag bootstrap: injects the visitor's bulk evaluation into HTML `<head>` as
//! `<script id="edgeflags-bootstrap" type="application/json">`, streaming, so the page and its
//! service worker start with flags and nothing flickers.
//!
//! Only the part of the document up to the end of the `<head>` start tag is looked at
//! ([`crate::traffic::headscan`], the HTML tokenizer's rules for what may precede a head element):
//! once the script is in, the rest streams through untouched. That part is held back (bounded
//! by a memory limit) until the injection is done, so when anything goes wrong — no usable
//! `<head>`, or none within the limit — the original bytes pass through unchanged.

use crate::traffic::headscan::{HeadScan, Step};

/// Default bound on how much of a document is held back while looking for `<head>`.
pub(crate) const DEFAULT_LIMIT: usize = 256 * 1024;

/// Whether a response should get the bootstrap.
pub(crate) fn should_inject(
    method: &str,
    status: u16,
    content_type: Option<&str>,
    cache_control: Option<&str>,
) -> bool {
    let html = content_type
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|mt| mt.trim().eq_ignore_ascii_case("text/html"));
    let no_transform = cache_control.is_some_and(|cc| {
        cc.split(',')
            .any(|d| d.trim().eq_ignore_ascii_case("no-transform"))
    });
    method.eq_ignore_ascii_case("GET") && status == 200 && html && !no_transform
}

/// The validator of a bootstrapped page: the page *and* the flags in it. A visitor's cached
/// copy may only be confirmed (304) while both are unchanged — otherwise a kill switch would
/// not reach a page the browser revalidates. It is a weak entity-tag carrying the origin's
/// validator (its entity-tag, or its `Last-Modified` as seconds; `None` when it had neither)
/// and the visitor's flags tag (`flags_tag`: the flag-set version and evaluation context):
/// `W/"e.<origin opaque>.f.<flags>"` or `W/"m.<secs>.f.<flags>"`. `Last-Modified` is dropped
/// from the page, so this is its only validator.
pub(crate) fn page_etag(
    origin_etag: Option<&str>,
    last_modified: Option<&str>,
    flags_tag: &str,
) -> Option<String> {
    let origin = match (origin_etag.and_then(opaque), last_modified) {
        (Some(tag), _) => format!("e.{tag}"),
        (None, Some(lm)) => format!("m.{}", crate::httpcache::parse_http_date(lm)?),
        (None, None) => return None,
    };
    Some(format!("W/\"{origin}.f.{flags_tag}\""))
}

/// The opaque part of an entity-tag (`W/"x"` or `"x"` → `x`), when it is one.
fn opaque(tag: &str) -> Option<&str> {
    let t = tag.trim();
    let t = t.strip_prefix("W/").unwrap_or(t);
    t.strip_prefix('"')?.strip_suffix('"')
}

/// A visitor's conditional request headers, rewritten for the cache and the origin.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Conditionals {
    /// The request headers to use (validators of bootstrapped pages translated back to the
    /// origin's, or dropped when the flags changed).
    pub(crate) headers: Vec<(String, String)>,
    /// The page validator to put on a 304 (the visitor's, which still holds).
    pub(crate) confirmed: Option<String>,
}

/// Rewrites a visitor's `If-None-Match` / `If-Modified-Since` against the current flags tag.
/// A page validator whose flags are current becomes the origin's validator again (so the
/// cache or the origin can answer 304, which then gets `confirmed` back); one whose flags
/// changed is dropped (the visitor gets the page with today's flags). `If-Modified-Since`
/// on a navigation (`Sec-Fetch-Mode: navigate`, or `Accept` naming `text/html`) is dropped:
/// bootstrapped pages carry no `Last-Modified`, so such a date validates a copy whose flags
/// nobody can vouch for.
pub(crate) fn conditionals(headers: &[(String, String)], flags_tag: &str) -> Conditionals {
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let navigation = get("sec-fetch-mode").is_some_and(|m| m.eq_ignore_ascii_case("navigate"))
        || get("accept").is_some_and(|a| a.to_ascii_lowercase().contains("text/html"));
    let mut etags: Vec<String> = Vec::new();
    let mut modified_since: Option<String> = None;
    let mut confirmed = None;
    for tag in get("if-none-match").unwrap_or("").split(',').map(str::trim) {
        let Some(body) = opaque(tag) else {
            if !tag.is_empty() {
                etags.push(tag.to_owned());
            }
            continue;
        };
        // The flags tag (hex and '-') never holds ".f."; the origin's opaque part may.
        let Some((origin, flags)) = body.rsplit_once(".f.") else {
            etags.push(tag.to_owned());
            continue;
        };
        if flags != flags_tag {
            continue;
        }
        if let Some(e) = origin.strip_prefix("e.") {
            etags.push(format!("W/\"{e}\""));
            confirmed = Some(tag.to_owned());
        } else if let Some(secs) = origin.strip_prefix("m.").and_then(|s| s.parse().ok()) {
            modified_since = Some(crate::httpcache::format_http_date(secs));
            confirmed = Some(tag.to_owned());
        }
    }
    let mut out: Vec<(String, String)> = headers
        .iter()
        .filter(|(n, _)| {
            !n.eq_ignore_ascii_case("if-none-match")
                && !(n.eq_ignore_ascii_case("if-modified-since")
                    && (navigation || modified_since.is_some()))
        })
        .cloned()
        .collect();
    if !etags.is_empty() {
        out.push(("if-none-match".into(), etags.join(", ")));
    }
    if let Some(date) = modified_since.filter(|_| etags.is_empty()) {
        out.push(("if-modified-since".into(), date));
    }
    Conditionals {
        headers: out,
        confirmed,
    }
}

/// Cache-Control for a response that now carries one visitor's flags: never for a shared
/// cache (`private`, `public` and `s-maxage` dropped), other directives kept.
pub(crate) fn personalised_cache_control(cc: Option<&str>) -> String {
    let mut out = vec!["private".to_owned()];
    for d in cc
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
    {
        let name = d.split('=').next().unwrap_or(d).trim().to_ascii_lowercase();
        if !matches!(name.as_str(), "public" | "private" | "s-maxage") {
            out.push(d.to_owned());
        }
    }
    out.join(", ")
}

/// The headers of a page once it carries one visitor's flags: `Content-Length` dropped (the
/// body grows), the origin's validators replaced by [`page_etag`] (none when it had none:
/// `Last-Modified` would validate a copy whose flags nobody can vouch for), and
/// `Cache-Control` made [`personalised_cache_control`]. Everything else is kept in order.
pub(crate) fn page_headers(headers: &[(String, String)], flags_tag: &str) -> Vec<(String, String)> {
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let replaced = ["content-length", "etag", "last-modified", "cache-control"];
    let mut out: Vec<(String, String)> = headers
        .iter()
        .filter(|(n, _)| !replaced.iter().any(|r| n.eq_ignore_ascii_case(r)))
        .cloned()
        .collect();
    if let Some(etag) = page_etag(get("etag"), get("last-modified"), flags_tag) {
        out.push(("etag".into(), etag));
    }
    out.push((
        "cache-control".into(),
        personalised_cache_control(get("cache-control")),
    ));
    out
}

/// Streaming injector: feed body chunks with [`Injector::push`], then call [`Injector::finish`];
/// emit whatever they return, in order.
#[derive(Debug)]
pub(crate) struct Injector {
    /// `None` once decided: injected, or given up.
    scan: Option<HeadScan>,
    script: String,
    held: Vec<u8>,
    injected: bool,
    limit: usize,
}

impl Injector {
    /// An injector that puts `script` (see [`edgeflags_core::ofrep::bootstrap_element`]) first into `<head>`.
    pub(crate) fn new(script: String, limit: usize) -> Self {
        Self {
            scan: Some(HeadScan::default()),
            script,
            held: Vec::new(),
            injected: false,
            limit,
        }
    }

    /// Whether the script has been injected.
    #[cfg(test)]
    pub(crate) fn injected(&self) -> bool {
        self.injected
    }

    /// Takes the next body chunk; returns the bytes to emit now.
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        let Some(scan) = self.scan.as_mut() else {
            return chunk.to_vec();
        };
        for (i, &b) in chunk.iter().enumerate() {
            match scan.feed(b) {
                Step::More => {}
                Step::HeadEnds => {
                    let (head, rest) = chunk.split_at(i + 1);
                    let mut out = std::mem::take(&mut self.held);
                    out.reserve(head.len() + self.script.len() + rest.len());
                    out.extend_from_slice(head);
                    out.extend_from_slice(self.script.as_bytes());
                    out.extend_from_slice(rest);
                    self.scan = None;
                    self.injected = true;
                    return out;
                }
                Step::GiveUp => {
                    self.scan = None;
                    let mut out = std::mem::take(&mut self.held);
                    out.extend_from_slice(chunk);
                    return out;
                }
            }
        }
        self.held.extend_from_slice(chunk);
        if self.held.len() > self.limit {
            self.scan = None;
            return std::mem::take(&mut self.held);
        }
        Vec::new()
    }

    /// Ends the body; returns the bytes still to emit.
    pub(crate) fn finish(&mut self) -> Vec<u8> {
        // The document ended before any `<head>`: it passes through unchanged.
        self.scan = None;
        std::mem::take(&mut self.held)
    }
}

/// Runs the injector over a whole body, `chunk` bytes at a time (the tests' driver).
#[cfg(test)]
pub(crate) fn inject_all(
    body: &[u8],
    script: String,
    limit: usize,
    chunk: usize,
) -> (Vec<u8>, bool) {
    let mut inj = Injector::new(script, limit);
    let mut out = Vec::new();
    for c in body.chunks(chunk.max(1)) {
        out.extend(inj.push(c));
    }
    out.extend(inj.finish());
    (out, inj.injected())
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgeflags_core::ofrep::bootstrap_element as script_element;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_page_validator_carries_the_origin_validator_and_the_flags() {
        assert_eq!(
            page_etag(Some("\"abc\""), None, "v1-00ff").as_deref(),
            Some("W/\"e.abc.f.v1-00ff\"")
        );
        assert_eq!(
            page_etag(None, Some("Thu, 01 Jan 1970 00:00:10 GMT"), "v1").as_deref(),
            Some("W/\"m.10.f.v1\"")
        );
        assert_eq!(page_etag(None, None, "v1"), None);
        assert_eq!(page_etag(None, Some("not a date"), "v1"), None);
    }

    #[test]
    fn conditionals_translate_current_page_validators_and_drop_stale_ones() {
        type Headers = Vec<(String, String)>;
        // (what, request headers, flags tag, expected headers, confirmed)
        let cases: Vec<(&str, Headers, &str, Headers, Option<&str>)> = vec![
            (
                "current flags, origin etag",
                h(&[("if-none-match", "W/\"e.abc.f.T\"")]),
                "T",
                h(&[("if-none-match", "W/\"abc\"")]),
                Some("W/\"e.abc.f.T\""),
            ),
            (
                "current flags, origin date",
                h(&[("If-None-Match", "W/\"m.10.f.T\"")]),
                "T",
                h(&[("if-modified-since", "Thu, 01 Jan 1970 00:00:10 GMT")]),
                Some("W/\"m.10.f.T\""),
            ),
            (
                "flags changed: the validator is dropped",
                h(&[("if-none-match", "W/\"m.10.f.OLD\""), ("accept", "*/*")]),
                "T",
                h(&[("accept", "*/*")]),
                None,
            ),
            (
                "other entity-tags pass unchanged",
                h(&[("if-none-match", "\"asset-1\", W/\"e.x.f.OLD\"")]),
                "T",
                h(&[("if-none-match", "\"asset-1\"")]),
                None,
            ),
            (
                "a date on a navigation is dropped",
                h(&[
                    ("accept", "text/html,*/*"),
                    ("if-modified-since", "Thu, 01 Jan 1970 00:00:10 GMT"),
                ]),
                "T",
                h(&[("accept", "text/html,*/*")]),
                None,
            ),
            (
                "a date on an asset request stays",
                h(&[
                    ("accept", "image/png"),
                    ("if-modified-since", "Thu, 01 Jan 1970 00:00:10 GMT"),
                ]),
                "T",
                h(&[
                    ("accept", "image/png"),
                    ("if-modified-since", "Thu, 01 Jan 1970 00:00:10 GMT"),
                ]),
                None,
            ),
        ];
        for (what, headers, tag, expected, confirmed) in cases {
            let got = conditionals(&headers, tag);
            assert_eq!(got.headers, expected, "{what}");
            assert_eq!(got.confirmed.as_deref(), confirmed, "{what}");
        }
    }
    use proptest::prelude::*;

    const PAGE: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>T</title><script src=\"/app.js\"></script></head><body><p>Hello <b>world</b></p></body></html>";

    fn expected(page: &str, script: &str) -> String {
        page.replacen("<head>", &format!("<head>{script}"), 1)
    }

    #[test]
    fn the_script_is_the_first_thing_in_head() {
        let script = script_element(r#"{"flags":[]}"#);
        let (out, injected) = inject_all(PAGE.as_bytes(), script.clone(), DEFAULT_LIMIT, 7);
        assert!(injected);
        assert_eq!(String::from_utf8(out).unwrap(), expected(PAGE, &script));
    }

    #[test]
    fn documents_without_head_or_over_the_limit_pass_through_unchanged() {
        let no_head = "<p>fragment</p>";
        let (out, injected) =
            inject_all(no_head.as_bytes(), script_element("{}"), DEFAULT_LIMIT, 3);
        assert_eq!((out.as_slice(), injected), (no_head.as_bytes(), false));

        let late_head = format!(
            "<!doctype html><!--{}--><html><head></head></html>",
            "x".repeat(10_000)
        );
        let (out, injected) = inject_all(late_head.as_bytes(), script_element("{}"), 4096, 512);
        assert_eq!((out, injected), (late_head.into_bytes(), false));
    }

    #[test]
    fn only_html_200_get_without_no_transform_is_rewritten() {
        assert!(should_inject(
            "GET",
            200,
            Some("text/html; charset=utf-8"),
            None
        ));
        assert!(should_inject(
            "GET",
            200,
            Some("TEXT/HTML"),
            Some("no-cache")
        ));
        assert!(!should_inject(
            "GET",
            200,
            Some("text/html"),
            Some("public, no-transform")
        ));
        assert!(!should_inject("GET", 200, Some("application/json"), None));
        assert!(!should_inject("GET", 304, Some("text/html"), None));
        assert!(!should_inject("HEAD", 200, Some("text/html"), None));
        assert!(!should_inject("GET", 200, None, None));
    }

    #[test]
    fn a_bootstrapped_page_gets_its_own_validator_and_private_caching() {
        let page = page_headers(
            &h(&[
                ("content-type", "text/html"),
                ("content-length", "120"),
                ("ETag", "\"abc\""),
                ("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT"),
                ("cache-control", "public, max-age=60"),
                ("set-cookie", "a=1"),
            ]),
            "7-f00d",
        );
        assert_eq!(
            page,
            h(&[
                ("content-type", "text/html"),
                ("set-cookie", "a=1"),
                ("etag", "W/\"e.abc.f.7-f00d\""),
                ("cache-control", "private, max-age=60"),
            ])
        );
        // Last-Modified alone becomes the page's entity-tag; no validator, none.
        let dated = page_headers(
            &h(&[("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT")]),
            "t",
        );
        assert_eq!(
            dated,
            h(&[
                ("etag", "W/\"m.784111777.f.t\""),
                ("cache-control", "private"),
            ])
        );
        assert_eq!(
            page_headers(&h(&[("content-length", "5")]), "t"),
            h(&[("cache-control", "private")])
        );
    }

    #[test]
    fn personalised_pages_are_private() {
        assert_eq!(personalised_cache_control(None), "private");
        assert_eq!(
            personalised_cache_control(Some("public, max-age=60, s-maxage=600")),
            "private, max-age=60"
        );
        assert_eq!(
            personalised_cache_control(Some("no-cache")),
            "private, no-cache"
        );
    }

    /// Tokens that may precede `<head>`, including awkward ones.
    fn prolog_token() -> impl Strategy<Value = String> {
        prop_oneof![
            clean_prolog_token(),
            "<!--[a-z<>!-]{0,8}-->".prop_map(|s| s),
            "<html( [a-z=\"'>/]{0,10})?>".prop_map(|s| s),
            "<![a-zA-Z \"'-]{0,10}>".prop_map(|s| s),
            "[a-z<>]{1,3}".prop_map(|s| s),
        ]
    }

    fn clean_prolog_token() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("<!doctype html>".to_owned()),
            Just("<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0//EN\" \"x\">".to_owned()),
            "[ \t\r\n]{1,3}".prop_map(|s| s),
            "<!-- [a-z <>]{0,8} -->".prop_map(|s| s),
            "<html( lang=\"[a-z>]{0,4}\")?( data-x='[a-z>]{0,4}')?>".prop_map(|s| s),
            Just("<?xml version=\"1.0\"?>".to_owned()),
        ]
    }

    /// The injector as it was written with lol_html: the script prepended to the first
    /// `head` element.
    fn lol_html_reference(page: &[u8], script: &str) -> Vec<u8> {
        use lol_html::html_content::ContentType;
        use lol_html::{element, rewrite_str, RewriteStrSettings};
        let done = std::cell::Cell::new(false);
        let text = String::from_utf8_lossy(page);
        let out = rewrite_str(
            &text,
            RewriteStrSettings {
                element_content_handlers: vec![element!("head", |el| {
                    if !done.get() {
                        el.prepend(script, ContentType::Html);
                        done.set(true);
                    }
                    Ok(())
                })],
                ..RewriteStrSettings::new()
            },
        )
        .map(String::into_bytes)
        .unwrap_or_else(|_| page.to_vec());
        out
    }

    proptest! {
        #[test]
        fn any_chunking_gives_the_same_document(chunk in 1usize..64, body_extra in "[a-z <>/=\"]{0,200}") {
            let page = format!("{PAGE}{body_extra}");
            let script = script_element(r#"{"k":1}"#);
            let (out, injected) = inject_all(page.as_bytes(), script.clone(), DEFAULT_LIMIT, chunk);
            prop_assert!(injected);
            prop_assert_eq!(String::from_utf8(out).unwrap(), expected(&page, &script));
        }

        /// Differential: wherever the scanner injects, a general HTML rewriter (lol_html,
        /// prepending to the first `head` element) produces the same document.
        #[test]
        fn where_the_scanner_injects_lol_html_agrees(
            prolog in proptest::collection::vec(prolog_token(), 0..6),
            head_attrs in "( [a-z]{1,3}(=(\"[^\"]{0,6}\"|'[^']{0,6}'|[a-z>/]{1,4}))?){0,3} ?/?",
            rest in "[a-z <>/=\"'!-]{0,40}",
            chunk in 1usize..32,
        ) {
            let page = format!("{}<head{head_attrs}>{rest}", prolog.concat());
            let script = script_element(r#"{"k":1}"#);
            let (out, injected) = inject_all(page.as_bytes(), script.clone(), DEFAULT_LIMIT, chunk);
            let reference = lol_html_reference(page.as_bytes(), &script);
            if injected {
                prop_assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(&reference));
            } else {
                prop_assert_eq!(out, page.into_bytes());
            }
        }

        /// Documents made only of what may precede a head element always get the script.
        #[test]
        fn a_clean_prolog_always_gets_the_script(
            prolog in proptest::collection::vec(clean_prolog_token(), 0..6),
            chunk in 1usize..32,
        ) {
            let page = format!("{}<head><title>t</title></head><body></body>", prolog.concat());
            let script = script_element("{}");
            let (out, injected) = inject_all(page.as_bytes(), script.clone(), DEFAULT_LIMIT, chunk);
            prop_assert!(injected, "{}", page);
            prop_assert_eq!(out, lol_html_reference(page.as_bytes(), &script));
        }

        #[test]
        fn arbitrary_bytes_never_panic_and_are_never_lost(bytes in proptest::collection::vec(any::<u8>(), 0..600), chunk in 1usize..50) {
            let (out, injected) = inject_all(&bytes, script_element("{}"), DEFAULT_LIMIT, chunk);
            if !injected {
                prop_assert_eq!(out, bytes);
            }
        }
    }
}
