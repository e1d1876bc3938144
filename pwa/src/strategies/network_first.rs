//! Network-first with an optional timeout: fresh when the network answers in time (and
//! stored), the cached copy otherwise. A network answer that arrives after the timeout still
//! refreshes the cache.

use js_sys::Promise;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::Response;

use super::{store_later, Ctx};
use crate::error::SwError;
use crate::host::{scope, wait};

pub async fn handle(ctx: Ctx<'_>) -> Result<Response, SwError> {
    let network = scope().fetch_with_request(ctx.req);
    let raced = match ctx.route.network_timeout_ms {
        Some(ms) => Promise::race(&js_sys::Array::of2(&network, &timeout(ms))),
        None => network.clone(),
    };
    let outcome = JsFuture::from(raced)
        .await
        .ok()
        .and_then(|v| v.dyn_into::<Response>().ok());
    if let Some(res) = outcome {
        store_later(ctx, &res)?;
        return Ok(res);
    }
    let hit = match ctx.cache {
        Some(cache) => cache.lookup(ctx.url).await?,
        None => None,
    };
    if let Some(hit) = hit {
        // Timed out (or failed): the late answer, if any, still refreshes the cache.
        if let Some(cache) = ctx.cache {
            let (route, name, url) = (ctx.route.clone(), cache.name.to_owned(), ctx.url.to_owned());
            ctx.tasks.spawn(async move {
                let Ok(res) = wait::<Response>(network).await else {
                    return Ok(());
                };
                let cache = crate::host::cache::RuntimeCache {
                    route: &route,
                    name: &name,
                };
                cache.store(&url, res).await.map(drop)
            });
        }
        return Ok(hit);
    }
    // Nothing cached: the network is still the best answer.
    let res: Response = wait(network)
        .await
        .map_err(|_| SwError::NoResponse(ctx.url.to_owned()))?;
    store_later(ctx, &res)?;
    Ok(res)
}

/// A promise resolving to `undefined` after `ms` milliseconds.
fn timeout(ms: u32) -> JsValue {
    Promise::new(&mut |resolve, _reject| {
        let _ = scope().set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms as i32);
    })
    .into()
}
