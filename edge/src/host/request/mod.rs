//! A proxied request's glue, in the order a request meets it: the request worker's fast path
//! (`fast`, whose I/O its JS entry does) or the full path (`proxy` → `cache` → `origin`), and
//! header maps crossing to JS in one call (`headers_js`). ARCHITECTURE.md "The request path".

pub(crate) mod cache;
pub(crate) mod headers_js;
pub(crate) mod origin;
pub(crate) mod proxy;

// The request worker's proxied GET/HEAD with the I/O in its JS entry (edge/js/entry.mjs).
#[cfg(not(feature = "control"))]
pub(crate) mod fast;
