//! edgeflags service worker: Workbox's proven split (routing, strategies, expiration,
//! precache, background sync) in Rust, plus offline flag evaluation with `edgeflags-core`
//! and push notifications, driven by a thin JS shim (`pwa/js/sw.template.js`) that registers
//! every listener synchronously and forwards events here after one shared wasm init.
//!
//! Policy modules (`config`, `json`, `routing`, `cacheable`, `expiration`, `precache`, `outbox`,
//! `flags`, `notify`, `inbox`) are plain Rust and tested natively; the browser glue (`host`,
//! `strategies`) only exists on wasm32.

pub mod cacheable;
pub mod config;
pub mod error;
pub mod expiration;
pub mod flags;
pub mod inbox;
pub mod json;
pub mod notify;
pub mod outbox;
pub mod precache;
pub mod routing;

#[cfg(target_arch = "wasm32")]
mod host;
#[cfg(target_arch = "wasm32")]
mod strategies;

#[cfg(target_arch = "wasm32")]
pub use host::exports::*;

// The service worker allocates little and briefly; talc is smaller than Rust's default wasm
// allocator (dlmalloc) and faster. Realloc-in-place is off: it saves code, and reallocs here
// are rare (JSON buffers).
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();
