//! Browser glue for the service worker (wasm32 only): the global scope, Cache Storage and
//! fetch as async Rust, plus the functions the JS shim calls.

pub mod exports;
pub mod lifecycle;

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::Promise;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Cache, Request, Response, ServiceWorkerGlobalScope};

use crate::config::SwConfig;
use crate::error::SwError;
use crate::precache::Precache;

/// Configuration and derived plans, fixed for the life of this service-worker version.
#[derive(Debug)]
pub struct Worker {
    pub config: SwConfig,
    pub precache: Precache,
    pub origin: String,
}

thread_local! {
    static WORKER: RefCell<Option<Rc<Worker>>> = const { RefCell::new(None) };
}

/// Installs the configuration (called once by the shim after init).
pub fn set_worker(w: Worker) {
    WORKER.with(|slot| *slot.borrow_mut() = Some(Rc::new(w)));
}

/// The configured worker.
pub fn worker() -> Result<Rc<Worker>, SwError> {
    WORKER
        .with(|slot| slot.borrow().clone())
        .ok_or(SwError::NotStarted)
}

impl From<JsValue> for SwError {
    fn from(v: JsValue) -> Self {
        let msg = v
            .dyn_ref::<js_sys::Error>()
            .map(|e| String::from(e.message()))
            .or_else(|| v.as_string())
            .unwrap_or_else(|| format!("{v:?}"));
        SwError::Js(msg)
    }
}

impl From<SwError> for JsValue {
    fn from(e: SwError) -> Self {
        js_sys::Error::new(&e.to_string()).into()
    }
}

/// The service worker's global scope.
pub fn scope() -> ServiceWorkerGlobalScope {
    js_sys::global().unchecked_into()
}

/// Awaits a JS promise and casts its result.
pub async fn wait<T: JsCast>(p: Promise) -> Result<T, SwError> {
    let v = JsFuture::from(p).await?;
    v.dyn_into::<T>()
        .map_err(|v| SwError::Js(format!("unexpected value {v:?}")))
}

/// Opens (creating if needed) a cache by full name.
pub async fn open_cache(name: &str) -> Result<Cache, SwError> {
    let caches = scope().caches()?;
    wait(caches.open(name)).await
}

/// `cache.match(key)`, `None` when absent.
pub async fn cache_match(cache: &Cache, key: &str) -> Result<Option<Response>, SwError> {
    let v = JsFuture::from(cache.match_with_str(key)).await?;
    Ok(v.dyn_into::<Response>().ok())
}

/// `fetch(request)`; a network failure is an `Err`.
pub async fn fetch(req: &Request) -> Result<Response, SwError> {
    wait(scope().fetch_with_request(req)).await
}

/// Keys (URLs) currently stored in a cache.
pub async fn cache_keys(cache: &Cache) -> Result<Vec<String>, SwError> {
    let arr: js_sys::Array = wait(cache.keys()).await?;
    Ok(arr
        .iter()
        .filter_map(|r| r.dyn_into::<Request>().ok())
        .map(|r| r.url())
        .collect())
}
