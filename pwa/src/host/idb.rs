//! IndexedDB as async Rust: the service worker's one database, with three stores —
//! `outbox` (queued writes, auto-increment ids = replay order), `usage` (when runtime-cache
//! entries were stored and last used, for expiration) and `flags` (the offline flag
//! snapshot). Every write waits for its transaction to commit.

use std::cell::RefCell;

use js_sys::{Array, Promise};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    IdbDatabase, IdbObjectStore, IdbObjectStoreParameters, IdbOpenDbRequest, IdbRequest,
    IdbTransaction, IdbTransactionMode,
};

use super::{scope, worker};
use crate::error::SwError;

/// Queued writes (key path `id`, auto-increment).
pub const OUTBOX: &str = "outbox";
/// Runtime-cache usage records (key path `id` = cache name + NUL + URL).
pub const USAGE: &str = "usage";
/// Offline flags (out-of-line string keys).
pub const FLAGS: &str = "flags";

const VERSION: u32 = 1;

thread_local! {
    static DB: RefCell<Option<IdbDatabase>> = const { RefCell::new(None) };
}

/// A promise settling with an IDB request: its result, or its error.
fn request_promise(req: &IdbRequest) -> Promise {
    let req = req.clone();
    Promise::new(&mut |resolve, reject| {
        let r = req.clone();
        // One closure for both outcomes, so whichever fires frees it.
        let done = Closure::once_into_js(move || match r.error() {
            Ok(Some(err)) => {
                let _ = reject.call1(&JsValue::UNDEFINED, &err);
            }
            _ => {
                let _ = resolve.call1(&JsValue::UNDEFINED, &r.result().unwrap_or_default());
            }
        });
        req.set_onsuccess(Some(done.unchecked_ref()));
        req.set_onerror(Some(done.unchecked_ref()));
    })
}

/// A promise settling when a transaction commits (or fails).
fn commit_promise(tx: &IdbTransaction) -> Promise {
    let tx = tx.clone();
    Promise::new(&mut |resolve, reject| {
        let t = tx.clone();
        let done = Closure::once_into_js(move |ev: web_sys::Event| {
            if ev.type_() == "complete" {
                let _ = resolve.call0(&JsValue::UNDEFINED);
            } else {
                let err: JsValue = t
                    .error()
                    .map(JsValue::from)
                    .unwrap_or_else(|| js_sys::Error::new("transaction aborted").into());
                let _ = reject.call1(&JsValue::UNDEFINED, &err);
            }
        });
        tx.set_oncomplete(Some(done.unchecked_ref()));
        tx.set_onerror(Some(done.unchecked_ref()));
        tx.set_onabort(Some(done.unchecked_ref()));
    })
}

/// The database, opened (and created) on first use.
async fn db() -> Result<IdbDatabase, SwError> {
    if let Some(db) = DB.with(|d| d.borrow().clone()) {
        return Ok(db);
    }
    let name = worker()?.config.database_name();
    let factory = scope()
        .indexed_db()?
        .ok_or_else(|| SwError::Js("IndexedDB is not available".into()))?;
    let open: IdbOpenDbRequest = factory.open_with_u32(&name, VERSION)?;
    let o = open.clone();
    let upgrade = Closure::once_into_js(move || {
        let Ok(db) = o.result().and_then(|r| r.dyn_into::<IdbDatabase>()) else {
            return;
        };
        let names = db.object_store_names();
        let params = IdbObjectStoreParameters::new();
        params.set_key_path(&"id".into());
        if !names.contains(OUTBOX) {
            params.set_auto_increment(true);
            let _ = db.create_object_store_with_optional_parameters(OUTBOX, &params);
        }
        if !names.contains(USAGE) {
            params.set_auto_increment(false);
            let _ = db.create_object_store_with_optional_parameters(USAGE, &params);
        }
        if !names.contains(FLAGS) {
            let _ = db.create_object_store(FLAGS);
        }
    });
    open.set_onupgradeneeded(Some(upgrade.unchecked_ref()));
    let db: IdbDatabase = JsFuture::from(request_promise(&open))
        .await?
        .dyn_into()
        .map_err(|_| SwError::Js("IndexedDB open returned no database".into()))?;
    // A newer service worker upgrading the schema must not be blocked by this one.
    let d = db.clone();
    let close = Closure::<dyn FnMut()>::new(move || {
        d.close();
        DB.with(|slot| *slot.borrow_mut() = None);
    });
    db.set_onversionchange(Some(close.as_ref().unchecked_ref()));
    close.forget();
    DB.with(|slot| *slot.borrow_mut() = Some(db.clone()));
    Ok(db)
}

/// Runs one request against a store and waits for its result (and, when writing, for the
/// transaction to commit).
async fn run(
    store: &str,
    mode: IdbTransactionMode,
    op: impl FnOnce(&IdbObjectStore) -> Result<IdbRequest, JsValue>,
) -> Result<JsValue, SwError> {
    let db = db().await?;
    let tx = db.transaction_with_str_and_mode(store, mode)?;
    let committed = commit_promise(&tx);
    let req = op(&tx.object_store(store)?)?;
    let result = JsFuture::from(request_promise(&req)).await?;
    if mode == IdbTransactionMode::Readwrite {
        JsFuture::from(committed).await?;
    }
    Ok(result)
}

/// The value under `key`, `undefined` when absent.
pub async fn get(store: &str, key: &JsValue) -> Result<JsValue, SwError> {
    run(store, IdbTransactionMode::Readonly, |s| s.get(key)).await
}

/// Every value of a store, in key order.
pub async fn get_all(store: &str) -> Result<Array, SwError> {
    let all = run(store, IdbTransactionMode::Readonly, |s| s.get_all()).await?;
    Ok(all.dyn_into().unwrap_or_default())
}

/// Stores `value` (in-line key) and returns its key.
pub async fn put(store: &str, value: &JsValue) -> Result<JsValue, SwError> {
    run(store, IdbTransactionMode::Readwrite, |s| s.put(value)).await
}

/// Stores `value` under an out-of-line `key`.
pub async fn put_at(store: &str, key: &JsValue, value: &JsValue) -> Result<(), SwError> {
    run(store, IdbTransactionMode::Readwrite, |s| {
        s.put_with_key(value, key)
    })
    .await
    .map(drop)
}

/// Deletes the value under `key` (no error when absent).
pub async fn delete(store: &str, key: &JsValue) -> Result<(), SwError> {
    run(store, IdbTransactionMode::Readwrite, |s| s.delete(key))
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
