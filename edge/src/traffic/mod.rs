//! A visitor's request through the edge: which worker answers it (`plane`), who the visitor
//! is (`identity`), which origin serves them (`split`), what crosses to the origin and back
//! (`proxy`, `header_edits`), the fast path's requests between calls (`in_flight`), what skips the cache lookup (`passmemory`), the flags injected
//! into HTML (`bootstrap`, `headscan`), and the headers every answer gets (`security`, `cors`).

pub(crate) mod bootstrap;
pub(crate) mod cors;
pub(crate) mod header_edits;
mod headscan;
pub(crate) mod identity;
// Only the request worker's fast path keeps requests between calls.
#[cfg_attr(feature = "control", allow(dead_code))]
pub(crate) mod in_flight;
pub(crate) mod passmemory;
// The request worker's hand-off rules: the control worker itself uses only the version hint.
#[cfg_attr(feature = "control", allow(dead_code))]
pub(crate) mod plane;
pub(crate) mod proxy;
pub(crate) mod security;
pub(crate) mod split;
