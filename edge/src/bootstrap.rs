//! Flag bootstrap: injects the visitor's bulk evaluation into HTML `<head>` as
//! `<script id="edgeflags-bootstrap" type="application/json">`, with a streaming rewriter
//! (lol_html), so the page and its service worker start with flags and nothing flickers.
//!
//! Only the part of the document up to `<head>` goes through the rewriter: once the script is
//! in, the rewriter is finished and the rest streams through untouched. That part is held
//! back (bounded by a memory limit) until the injection is done, so when anything goes wrong
//! — no `<head>` within the limit, a parser error — the original bytes pass through unchanged.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use lol_html::html_content::ContentType;
use lol_html::{element, HtmlRewriter, MemorySettings, OutputSink, Settings};

/// Id of the injected script element.
pub const SCRIPT_ID: &str = "edgeflags-bootstrap";
/// Default bound on how much of a document is held back while looking for `<head>`.
pub const DEFAULT_LIMIT: usize = 256 * 1024;

/// Whether a response should get the bootstrap.
pub fn should_inject(
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

/// A rewritten body is no longer byte-identical: its validator becomes weak.
pub fn weaken_etag(etag: &str) -> String {
    if etag.starts_with("W/") {
        etag.to_owned()
    } else {
        format!("W/{etag}")
    }
}

/// Cache-Control for a response that now carries one visitor's flags: never for a shared
/// cache (`private`, `public` and `s-maxage` dropped), other directives kept.
pub fn personalised_cache_control(cc: Option<&str>) -> String {
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

/// The script element carrying `json`, escaped so no byte sequence in it can end the
/// element or be read as markup.
pub fn script_element(json: &str) -> String {
    let mut out = String::with_capacity(json.len() + 80);
    out.push_str("<script id=\"");
    out.push_str(SCRIPT_ID);
    out.push_str("\" type=\"application/json\">");
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.push_str("</script>");
    out
}

struct Sink(Rc<RefCell<Vec<u8>>>);

impl OutputSink for Sink {
    fn handle_chunk(&mut self, chunk: &[u8]) {
        self.0.borrow_mut().extend_from_slice(chunk);
    }
}

/// Streaming injector: feed body chunks with [`Injector::push`], then call [`Injector::finish`];
/// emit whatever they return, in order.
pub struct Injector {
    rewriter: Option<HtmlRewriter<'static, Sink>>,
    output: Rc<RefCell<Vec<u8>>>,
    injected: Rc<Cell<bool>>,
    held: Vec<u8>,
    limit: usize,
}

impl std::fmt::Debug for Injector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Injector")
            .field("rewriting", &self.rewriter.is_some())
            .field("held", &self.held.len())
            .finish()
    }
}

impl Injector {
    /// An injector that prepends `script` (see [`script_element`]) to `<head>`.
    pub fn new(script: String, limit: usize) -> Self {
        let output = Rc::new(RefCell::new(Vec::new()));
        let injected = Rc::new(Cell::new(false));
        let flag = injected.clone();
        let settings = Settings {
            element_content_handlers: vec![element!("head", move |el| {
                if !flag.get() {
                    el.prepend(&script, ContentType::Html);
                    flag.set(true);
                }
                Ok(())
            })],
            memory_settings: MemorySettings {
                max_allowed_memory_usage: limit.max(4096),
                preallocated_parsing_buffer_size: 1024,
            },
            ..Settings::new()
        };
        let rewriter = HtmlRewriter::new(settings, Sink(output.clone()));
        Self {
            rewriter: Some(rewriter),
            output,
            injected,
            held: Vec::new(),
            limit,
        }
    }

    /// Whether the script has been injected.
    pub fn injected(&self) -> bool {
        self.injected.get() && self.rewriter.is_none()
    }

    /// Takes the next body chunk; returns the bytes to emit now.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        let Some(rewriter) = self.rewriter.as_mut() else {
            return chunk.to_vec();
        };
        self.held.extend_from_slice(chunk);
        if self.held.len() > self.limit || rewriter.write(chunk).is_err() {
            return self.give_up();
        }
        if !self.injected.get() {
            return Vec::new();
        }
        // Injected: finish the rewriter (flushing what it buffered) and stream the rest.
        let Some(rewriter) = self.rewriter.take() else {
            return Vec::new();
        };
        if rewriter.end().is_err() {
            self.injected.set(false);
            return std::mem::take(&mut self.held);
        }
        self.held = Vec::new();
        std::mem::take(&mut *self.output.borrow_mut())
    }

    /// Ends the body; returns the bytes still to emit.
    pub fn finish(&mut self) -> Vec<u8> {
        if self.rewriter.is_some() {
            // The document ended before any <head>: it passes through unchanged.
            return self.give_up();
        }
        Vec::new()
    }

    fn give_up(&mut self) -> Vec<u8> {
        self.rewriter = None;
        self.injected.set(false);
        self.output.borrow_mut().clear();
        std::mem::take(&mut self.held)
    }
}

/// Runs the injector over a whole body (tests and non-streaming callers).
pub fn inject_all(body: &[u8], script: String, limit: usize, chunk: usize) -> (Vec<u8>, bool) {
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
    fn json_cannot_break_out_of_the_script_element() {
        let s = script_element(r#"{"v":"</script><img src=x onerror=alert(1)> & \u2028"}"#);
        assert!(!s[..s.len() - "</script>".len()].contains("</"), "{s}");
        assert!(s.contains("\\u003c/script\\u003e"));
        // And it is still the same JSON once the browser reads the element's text.
        let inner = &s[s.find('>').unwrap() + 1..s.len() - "</script>".len()];
        let v: serde_json::Value = serde_json::from_str(inner).unwrap();
        assert_eq!(v["v"], "</script><img src=x onerror=alert(1)> & \u{2028}");
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

    #[test]
    fn etags_become_weak() {
        assert_eq!(weaken_etag("\"abc\""), "W/\"abc\"");
        assert_eq!(weaken_etag("W/\"abc\""), "W/\"abc\"");
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

        #[test]
        fn arbitrary_bytes_never_panic_and_are_never_lost(bytes in proptest::collection::vec(any::<u8>(), 0..600), chunk in 1usize..50) {
            let (out, injected) = inject_all(&bytes, script_element("{}"), DEFAULT_LIMIT, chunk);
            if !injected {
                prop_assert_eq!(out, bytes);
            }
        }
    }
}
