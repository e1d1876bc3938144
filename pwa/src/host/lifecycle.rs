//! Install and activate: what to precache and what to clean up, for the shim to carry out.
//! The decisions are `crate::precache` (entries missing under their revisioned keys, keys
//! no entry names) and `SwConfig::caches_to_delete`; the shim (`pwa/js/sw.template.js`)
//! makes the Cache Storage calls and fetches — as wasm bindings and futures they cost
//! ~2 KB gzip of the worker's budget for ~25 lines of JS — and gives the precache the wasm
//! this worker started from instead of downloading it a second time.

use js_sys::Array;
use wasm_bindgen::prelude::*;

use super::worker;

fn strings(values: &Array) -> Vec<String> {
    values.iter().filter_map(|v| v.as_string()).collect()
}

fn array<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> Array {
    items
        .into_iter()
        .map(|s| JsValue::from_str(s.as_ref()))
        .collect()
}

/// Install and activate (`cached`: the precache's keys; `names`: every cache of the origin,
/// read on activate only): `[missing, stale, gone]` —
/// - `missing`: `[url, key, url, key, …]` of the entries not cached under their revisioned
///   key; install fetches each (bypassing the HTTP cache) and stores it as it arrives, so an
///   install that fails partway keeps what it fetched for the retry;
/// - `stale`: precache keys no entry names any more; `gone`: caches of ours the
///   configuration no longer uses — activate deletes both, then claims the open pages.
#[wasm_bindgen]
pub fn precache_plan(cached: Array, names: Array) -> JsValue {
    let Ok(w) = worker() else {
        return Array::new().into();
    };
    let cached = strings(&cached);
    let missing = w.precache.missing(&cached);
    Array::of3(
        &array(missing.into_iter().flat_map(|(url, key)| [url, key])),
        &array(w.precache.stale(&cached)),
        &array(w.config.caches_to_delete(&strings(&names))),
    )
    .into()
}
