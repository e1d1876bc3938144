//! A visitor's request through the edge: which worker answers it (`plane`), who the visitor
//! is (`identity`), which origin serves them (`split`), what crosses to the origin and back
//! (`proxy`, `header_edits`), what skips the cache lookup (`passmemory`), the flags injected
//! into HTML (`bootstrap`, `headscan`), and the headers every answer gets (`security`, `cors`).

pub mod bootstrap;
pub mod cors;
pub mod header_edits;
mod headscan;
pub mod identity;
pub mod passmemory;
pub mod plane;
pub mod proxy;
pub mod security;
pub mod split;
