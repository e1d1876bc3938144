//! IndexedDB for the service worker: its one database, with four stores — `outbox`
//! (queued writes, auto-increment ids = replay order), `usage` (when runtime-cache entries
//! were stored and last used, for expiration), `flags` (the offline flag snapshot) and
//! `inbox` (items pushed for the in-app inbox).
//!
//! What is stored, when and under which key is decided here and in the policy modules; the
//! request/transaction plumbing is `edgeflags.idb` in the JS shim (`pwa/js/sw.template.js`),
//! a promise per operation that settles when its transaction commits. IndexedDB's
//! event-callback shape compiled to wasm (closures per request, open/upgrade handlers, the
//! web-sys bindings for seven interfaces) cost 4.1 KB gzip of wasm + glue against 0.7 KB of
//! JS (measured: `pwa/README.md`, "Size").

use js_sys::{Array, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use super::worker;
use crate::error::SwError;

/// Queued writes (key path `id`, auto-increment).
pub const OUTBOX: &str = "outbox";
/// Runtime-cache usage records (key path `id` = cache name + NUL + URL).
pub const USAGE: &str = "usage";
/// Offline flags (out-of-line string keys).
pub const FLAGS: &str = "flags";
/// Items pushed to this browser for the in-app inbox (out-of-line string keys).
pub const INBOX: &str = "inbox";

#[wasm_bindgen]
extern "C" {
    /// `edgeflags.idb(database, store, op, key, value)`: one request (`get`, `getAll`, `put`,
    /// `delete`) in its own transaction; resolves with the request's result once the
    /// transaction has committed, rejects with its error.
    #[wasm_bindgen(js_namespace = edgeflags, js_name = idb)]
    fn idb_request(
        database: &str,
        store: &str,
        op: &str,
        key: &JsValue,
        value: &JsValue,
    ) -> Promise;
}

async fn run(store: &str, op: &str, key: &JsValue, value: &JsValue) -> Result<JsValue, SwError> {
    let db = worker()?.config.database_name();
    Ok(JsFuture::from(idb_request(&db, store, op, key, value)).await?)
}

/// The value under `key`, `undefined` when absent.
pub async fn get(store: &str, key: &JsValue) -> Result<JsValue, SwError> {
    run(store, "get", key, &JsValue::UNDEFINED).await
}

/// Every value of a store, in key order.
pub async fn get_all(store: &str) -> Result<Array, SwError> {
    let all = run(store, "getAll", &JsValue::UNDEFINED, &JsValue::UNDEFINED).await?;
    Ok(all.dyn_into().unwrap_or_default())
}

/// Stores `value` (in-line key) and returns its key.
pub async fn put(store: &str, value: &JsValue) -> Result<JsValue, SwError> {
    run(store, "put", &JsValue::UNDEFINED, value).await
}

/// Stores `value` under an out-of-line `key`.
pub async fn put_at(store: &str, key: &JsValue, value: &JsValue) -> Result<(), SwError> {
    run(store, "put", key, value).await.map(drop)
}

/// Deletes the value under `key` (no error when absent).
pub async fn delete(store: &str, key: &JsValue) -> Result<(), SwError> {
    run(store, "delete", key, &JsValue::UNDEFINED)
        .await
        .map(drop)
}

/// A JSON value as a plain JS object (for storing and posting).
pub fn to_js(value: &serde_json::Value) -> Result<JsValue, SwError> {
    Ok(js_sys::JSON::parse(&value.to_string())?)
}

/// A plain JS object as a JSON value (binary fields come back as `{}`; read them first).
pub fn from_js(value: &JsValue) -> Result<serde_json::Value, SwError> {
    if value.is_undefined() || value.is_null() {
        return Err(SwError::Js("no stored value".into()));
    }
    let text: String = js_sys::JSON::stringify(value)?.into();
    serde_json::from_str(&text).map_err(|e| SwError::Js(e.to_string()))
}
