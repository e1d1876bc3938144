//! Network-first with an optional timeout: fresh when the network answers in time, the
//! cached copy otherwise.

use js_sys::Promise;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Request, Response};

use crate::error::SwError;
use crate::host::{cache_match, open_cache, scope};

/// Runtime network-first.
pub async fn handle(
    cache_name: Option<&str>,
    timeout_ms: Option<u32>,
    req: &Request,
) -> Result<Response, SwError> {
    let network = scope().fetch_with_request(req);
    let raced = match timeout_ms {
        Some(ms) => Promise::race(&js_sys::Array::of2(&network, &timeout(ms))),
        None => network.clone(),
    };
    let outcome = JsFuture::from(raced)
        .await
        .ok()
        .and_then(|v| v.dyn_into::<Response>().ok());
    let Some(name) = cache_name else {
        return match outcome {
            Some(res) => Ok(res),
            // No cache to fall back on: wait for the network after all.
            None => crate::host::wait(network).await,
        };
    };
    let cache = open_cache(name).await?;
    if let Some(res) = outcome {
        if super::cacheable(&res) {
            JsFuture::from(cache.put_with_request(req, &res.clone()?)).await?;
        }
        return Ok(res);
    }
    if let Some(hit) = cache_match(&cache, &req.url()).await? {
        return Ok(hit);
    }
    // Timed out with nothing cached: the network is still the best answer.
    crate::host::wait(network)
        .await
        .map_err(|_| SwError::NoResponse(req.url()))
}

/// A promise resolving to `undefined` after `ms` milliseconds.
fn timeout(ms: u32) -> JsValue {
    Promise::new(&mut |resolve, _reject| {
        let cb = Closure::once_into_js(move || {
            let _ = resolve.call0(&JsValue::UNDEFINED);
        });
        let _ = scope()
            .set_timeout_with_callback_and_timeout_and_arguments_0(cb.unchecked_ref(), ms as i32);
    })
    .into()
}
