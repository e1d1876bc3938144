//! Browser glue for the service worker (wasm32 only): the global scope, Cache Storage,
//! IndexedDB, fetch, timers, Web Locks and client messaging as async Rust, plus the
//! functions the JS shim calls. Decisions are made by the policy modules; this layer only
//! translates them into platform calls.

pub mod cache;
pub mod exports;
pub mod flags;
pub mod idb;
pub mod inbox;
pub mod lifecycle;
pub mod notify;
pub mod outbox;

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;

use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::{future_to_promise, JsFuture};
use web_sys::{Cache, Headers, Request, Response, ResponseInit, ServiceWorkerGlobalScope};

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
            // No Debug formatting of JS values: it would pull float formatting into the wasm.
            .unwrap_or_else(|| "a browser API failed".to_owned());
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

/// The service worker's clock (ms since the epoch).
pub fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// A random UUID (`crypto.randomUUID()`), for idempotency keys. The shim already gives
/// every write its key (`pwa/js/sw.template.js`, and it needs `crypto.randomUUID` itself),
/// so this only serves a write that reached the worker some other way.
pub fn random_key() -> String {
    Reflect::get(&scope(), &"crypto".into())
        .and_then(|c| {
            let f: Function = Reflect::get(&c, &"randomUUID".into())?.dyn_into()?;
            f.call0(&c)
        })
        .ok()
        .and_then(|v| v.as_string())
        .unwrap_or_default()
}

/// Awaits a JS promise and casts its result.
pub async fn wait<T: JsCast>(p: Promise) -> Result<T, SwError> {
    let v = JsFuture::from(p).await?;
    v.dyn_into::<T>()
        .map_err(|_| SwError::Js("a browser API returned an unexpected value".into()))
}

/// Resolves after `ms` milliseconds.
pub async fn sleep(ms: u64) {
    let p = Promise::new(&mut |resolve, _| {
        let ms = i32::try_from(ms).unwrap_or(i32::MAX);
        let _ = scope().set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
    });
    let _ = JsFuture::from(p).await;
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

/// Header (name, value) pairs.
pub fn header_pairs(headers: &Headers) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Ok(Some(iter)) = js_sys::try_iter(headers) {
        for pair in iter.flatten() {
            let pair: js_sys::Array = pair.unchecked_into();
            if let (Some(k), Some(v)) = (pair.get(0).as_string(), pair.get(1).as_string()) {
                out.push((k, v));
            }
        }
    }
    out
}

/// A JSON response built in the service worker.
pub fn json_response(
    status: u16,
    body: &serde_json::Value,
    extra: &[(&str, &str)],
) -> Result<Response, SwError> {
    let headers = Headers::new()?;
    headers.set("content-type", "application/json")?;
    headers.set("cache-control", "no-store")?;
    for (k, v) in extra {
        headers.set(k, v)?;
    }
    let init = ResponseInit::new();
    init.set_status(status);
    init.set_headers(&headers);
    Ok(Response::new_with_opt_str_and_init(
        Some(&body.to_string()),
        &init,
    )?)
}

#[wasm_bindgen::prelude::wasm_bindgen]
extern "C" {
    /// `edgeflags.post(message)` (the shim): posts to every window of this origin,
    /// controlled or not. (Plumbing: `clients.matchAll` and `postMessage` as wasm bindings
    /// cost more than their two lines of JS.)
    #[wasm_bindgen(js_namespace = edgeflags, js_name = post)]
    fn post_windows(message: &JsValue) -> Promise;
}

/// Posts a JSON message to every window of this origin (controlled or not).
pub async fn post_all(msg: &serde_json::Value) -> Result<(), SwError> {
    JsFuture::from(post_windows(&idb::to_js(msg)?)).await?;
    Ok(())
}

/// Calls `target.postMessage(msg)` (a client, or a `MessagePort` a page sent along).
pub fn post_to(target: &JsValue, msg: &serde_json::Value) -> Result<(), SwError> {
    let post: Function = Reflect::get(target, &"postMessage".into())?.dyn_into()?;
    post.call1(target, &idb::to_js(msg)?)?;
    Ok(())
}

/// `registration.sync.register(tag)`, when Background Sync exists (web-sys has no binding).
pub async fn register_sync(tag: &str) {
    let register = || -> Result<Promise, JsValue> {
        let sync = Reflect::get(&scope().registration(), &"sync".into())?;
        let f: Function = Reflect::get(&sync, &"register".into())?.dyn_into()?;
        f.call1(&sync, &tag.into())?.dyn_into()
    };
    if let Ok(p) = register() {
        let _ = JsFuture::from(p).await;
    }
}

/// What runs under a Web Lock: told whether it holds the lock, it returns the work to do.
pub type Locked = Box<dyn FnOnce(bool) -> JsTask>;

/// Runs `f` holding the Web Lock `name`, shared by every service-worker version of this
/// origin. With `if_available`, `f` gets `false` at once when someone else holds it.
/// Without Web Locks, `f` runs directly with `true`. (Boxed, not generic: one copy in the
/// wasm for every caller.)
pub async fn with_lock(name: &str, if_available: bool, f: Locked) -> Result<JsValue, SwError> {
    let locks = Reflect::get(&scope().navigator(), &"locks".into())
        .ok()
        .filter(|l| !l.is_undefined() && !l.is_null());
    let Some(locks) = locks else {
        return Ok(f(true).await?);
    };
    let request: Function = Reflect::get(&locks, &"request".into())?.dyn_into()?;
    let callback =
        Closure::once_into_js(move |lock: JsValue| -> Promise { promise(f(!lock.is_null())) });
    let options = js_sys::Object::new();
    Reflect::set(&options, &"ifAvailable".into(), &if_available.into())?;
    let p: Promise = request
        .call3(&locks, &name.into(), &options, &callback)?
        .dyn_into()?;
    Ok(JsFuture::from(p).await?)
}

/// A boxed, non-Send future (everything in a service worker runs on one thread).
pub type LocalTask = std::pin::Pin<Box<dyn Future<Output = Result<(), SwError>>>>;

/// A boxed future settling a JS promise.
pub type JsTask = std::pin::Pin<Box<dyn Future<Output = Result<JsValue, JsValue>>>>;

/// A promise for a future, started at once. Every promise the worker makes from Rust goes
/// through here, so the executor glue of `future_to_promise` is in the wasm once, not once
/// per call site.
pub fn promise(fut: JsTask) -> Promise {
    future_to_promise(fut)
}

/// Work that continues after a response was given (cache updates, flag snapshots, replays);
/// the event is kept alive until all of it has settled.
#[derive(Debug, Clone, Default)]
pub struct Tasks(Rc<RefCell<Vec<Promise>>>);

impl Tasks {
    /// Adds a promise to wait for.
    pub fn push(&self, p: Promise) {
        self.0.borrow_mut().push(p);
    }

    /// Runs a future in the background; its error is logged, never thrown.
    pub fn spawn(&self, fut: impl Future<Output = Result<(), SwError>> + 'static) {
        self.spawn_boxed(Box::pin(fut));
    }

    // One task wrapper for every kind of background work (a generic one per call site would
    // repeat the executor glue in the wasm).
    fn spawn_boxed(&self, fut: LocalTask) {
        self.push(promise(Box::pin(async move {
            if let Err(e) = fut.await {
                web_sys::console::warn_1(&format!("edgeflags sw: {e}").into());
            }
            Ok(JsValue::UNDEFINED)
        })));
    }

    /// Settles when every task (including ones added meanwhile) has settled.
    pub async fn settled(&self) {
        loop {
            let batch: Vec<Promise> = std::mem::take(&mut *self.0.borrow_mut());
            if batch.is_empty() {
                return;
            }
            let arr: js_sys::Array = batch.into_iter().collect();
            let _ = JsFuture::from(Promise::all_settled(&arr)).await;
        }
    }
}
