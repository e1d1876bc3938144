//! Everything one isolate keeps between requests, declared in one place. An isolate serves
//! many requests one event at a time (no threads), so each part is a `RefCell` of its own:
//! a module borrows only its part, never across an `await`, and two modules' borrows never
//! meet. Nothing here outlives the isolate; what must survive it lives in KV or a Durable
//! Object.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use crate::config::Config;
use crate::measure::metrics::Recorder;
use crate::traffic::passmemory::PassMemory;
use crate::traffic::proxy::ProxyCounters;
use crate::traffic::security::Policy;

/// Settings parsed once per isolate: variables cannot change under a running isolate (a new
/// deploy or `wrangler dev` restart starts new isolates), and reading ~20 of them through JS
/// on every request is measurable.
#[derive(Default)]
pub(crate) struct Settings {
    pub(crate) config: Option<Rc<Config>>,
    pub(crate) policy: Option<Rc<Policy>>,
}

#[derive(Default)]
pub(crate) struct Isolate {
    /// Parsed vars (`lib.rs`).
    pub(crate) settings: RefCell<Settings>,
    /// The flag set, where its last check got its answer, the route table and the purge
    /// records (`host/flags/mod.rs`).
    pub(crate) flags: RefCell<crate::host::flags::FlagState>,
    /// Keys passed without a cache lookup (`host/request/cache.rs`, `crate::traffic::passmemory`).
    pub(crate) pass: RefCell<PassMemory>,
    /// Requests per origin and stable retries, for `/__edge/status` (`host/request/proxy.rs`).
    pub(crate) proxy: RefCell<ProxyCounters>,
    /// Counts not yet sent to the metrics store (`host/measure/mod.rs`).
    pub(crate) recorder: RefCell<Recorder>,
    /// Whether this deployment measures, decided on first use (`host/measure/mod.rs`).
    pub(crate) metrics_enabled: Cell<Option<bool>>,
    /// Proxied requests between the fast path's calls (`host/request/fast.rs`).
    #[cfg(not(feature = "control"))]
    pub(crate) fast: RefCell<crate::host::request::fast::InFlight>,
    /// JWKS per key-set URL (`host/jwt.rs`; two at most, the URLs come from configuration).
    pub(crate) jwks: RefCell<Vec<crate::host::jwt::Jwks>>,
    /// The in-app feed's copy (`host/notify/inbox.rs`).
    #[cfg(feature = "control")]
    pub(crate) feed: RefCell<crate::notify::inbox::FeedCache>,
    /// The imported VAPID signing key with its public key (`host/notify/crypto.rs`).
    #[cfg(feature = "control")]
    pub(crate) vapid_key: RefCell<Option<(Vec<u8>, web_sys::CryptoKey)>>,
}

thread_local! {
    static ISOLATE: Isolate = Isolate::default();
}

/// Runs `f` on this isolate's state.
pub(crate) fn with<R>(f: impl FnOnce(&Isolate) -> R) -> R {
    ISOLATE.with(f)
}
