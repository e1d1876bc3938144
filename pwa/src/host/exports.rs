//! Functions the JS shim calls: `start` once after init, then one per event.

use js_sys::Promise;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;
use web_sys::{ExtendableEvent, ExtendableMessageEvent, FetchEvent, RequestMode};

use super::{lifecycle, scope, set_worker, worker, Worker};
use crate::config::SwConfig;
use crate::precache::Precache;
use crate::routing::{self, RequestFacts};
use crate::strategies;

/// Configures the worker from the JSON embedded in the shim. Idempotent per version.
#[wasm_bindgen]
pub fn start(config_json: &str) -> Result<(), JsValue> {
    let config = SwConfig::from_json(config_json)?;
    let origin = scope().location().origin();
    let precache = Precache::new(&origin, &config.precache);
    set_worker(Worker {
        config,
        precache,
        origin,
    });
    Ok(())
}

/// `install`: precache the app shell.
#[wasm_bindgen]
pub fn on_install(_event: ExtendableEvent) -> Promise {
    future_to_promise(async {
        lifecycle::install()
            .await
            .map(|()| JsValue::UNDEFINED)
            .map_err(JsValue::from)
    })
}

/// `activate`: clean up and claim clients.
#[wasm_bindgen]
pub fn on_activate(_event: ExtendableEvent) -> Promise {
    future_to_promise(async {
        lifecycle::activate()
            .await
            .map(|()| JsValue::UNDEFINED)
            .map_err(JsValue::from)
    })
}

/// `fetch`: route and answer. Resolves to a `Response`.
#[wasm_bindgen]
pub fn on_fetch(event: FetchEvent) -> Promise {
    let request = event.request();
    future_to_promise(async move {
        let w = worker()?;
        let url = request.url();
        let facts = RequestFacts {
            url: &url,
            method: &request.method(),
            navigate: request.mode() == RequestMode::Navigate,
            same_origin: url.starts_with(&w.origin)
                && url
                    .as_bytes()
                    .get(w.origin.len())
                    .is_none_or(|b| *b == b'/'),
        };
        let decision = routing::route(&w.config, &w.precache, facts);
        let res = strategies::handle(&w, decision, &request, facts.navigate).await?;
        Ok(res.into())
    })
}

/// `message`: `{"type":"SKIP_WAITING"}` activates a waiting version when the page agrees.
#[wasm_bindgen]
pub fn on_message(event: ExtendableMessageEvent) -> Promise {
    let data = event.data();
    future_to_promise(async move {
        let kind = js_sys::Reflect::get(&data, &"type".into())?
            .as_string()
            .unwrap_or_default();
        if kind == "SKIP_WAITING" {
            wasm_bindgen_futures::JsFuture::from(scope().skip_waiting()?).await?;
        }
        Ok(JsValue::UNDEFINED)
    })
}
