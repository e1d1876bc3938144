//! Many header edits in one call into JS: each wasm→JS call of `Headers.append`/`set`/
//! `delete` pays for its glue and string decoding (measured with bench/profile-edge.mjs: about
//! 7 µs per appended header in workerd), so a request's edits cross once, as one string of
//! NUL-separated fields (NUL cannot occur in an HTTP field name or value), and a small JS
//! function applies them.

use wasm_bindgen::prelude::*;
use worker::worker_sys::web_sys;

use crate::error::EdgeError;
use crate::traffic::header_edits::HeaderEdit;

#[wasm_bindgen(inline_js = "export function edgeflags_edit_headers(h, ops) {
  const p = ops.split('\\u0000');
  for (let i = 0; i + 2 < p.length; i += 3) {
    if (p[i] === 'd') h.delete(p[i + 1]);
    else if (p[i] === 'a') h.append(p[i + 1], p[i + 2]);
    else if (p[i] === 'k') { if (!h.has(p[i + 1])) h.set(p[i + 1], p[i + 2]); }
    else h.set(p[i + 1], p[i + 2]);
  }
}
export function edgeflags_read_headers(h) {
  let s = '';
  for (const [n, v] of h) s += n + '\\u0000' + v + '\\u0000';
  return s;
}")]
extern "C" {
    #[wasm_bindgen(catch)]
    fn edgeflags_edit_headers(h: &web_sys::Headers, ops: &str) -> Result<(), JsValue>;
    fn edgeflags_read_headers(h: &web_sys::Headers) -> String;
}

/// A header map as a list of (lowercase name, value), read in one call: iterating it from
/// wasm cost seven crossings per header (`next`, `done`, `value`, two index reads and two
/// string reads: 105 of a proxied MISS's 169 crossings, counted by wrapping the glue's
/// imports). The Fetch standard iterates names lowercased and sorted, values combined except
/// `Set-Cookie`; NUL never occurs in a field name or value, so it separates them.
pub(crate) fn read(h: &web_sys::Headers) -> Vec<(String, String)> {
    parse(&edgeflags_read_headers(h))
}

/// A header map as `edgeflags_read_headers` (or the fast path's JS) joined it.
pub(crate) fn parse(joined: &str) -> Vec<(String, String)> {
    let mut fields = joined.split('\0');
    let mut out = Vec::new();
    while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
        out.push((name.to_owned(), value.to_owned()));
    }
    out
}

/// Applies `edits` to `h` in one call.
pub(crate) fn apply(h: &web_sys::Headers, edits: &[HeaderEdit]) -> Result<(), EdgeError> {
    if edits.is_empty() {
        return Ok(());
    }
    edgeflags_edit_headers(h, &encode(edits))
        .map_err(|e| crate::host::internal(worker::Error::from(e)))
}

/// `edits` as the string `edgeflags_edit_headers` applies (the fast path's JS applies the
/// same format: edge/js/entry.mjs).
pub(crate) fn encode(edits: &[HeaderEdit]) -> String {
    let mut ops = String::new();
    for edit in edits {
        let (op, name, value) = match edit {
            HeaderEdit::Delete(name) => ("d", name.as_str(), ""),
            HeaderEdit::Append(name, value) => ("a", name.as_str(), value.as_str()),
            HeaderEdit::Set(name, value) => ("s", name.as_str(), value.as_str()),
            HeaderEdit::SetIfAbsent(name, value) => ("k", name.as_str(), value.as_str()),
        };
        for field in [op, name, value] {
            ops.push_str(field);
            ops.push('\0');
        }
    }
    ops
}
