//! Cache-first: answer from the cache, go to the network only on a miss (and store that).

use wasm_bindgen_futures::JsFuture;
use web_sys::{Request, Response};

use super::{store_later, Ctx};
use crate::error::SwError;
use crate::host::{cache_match, fetch, open_cache, Worker};

/// A precached entry; on a miss (evicted by the browser) fetch it and re-store it.
pub async fn precached(w: &Worker, key: &str, req: &Request) -> Result<Response, SwError> {
    let cache = open_cache(&w.config.precache_name()).await?;
    if let Some(hit) = cache_match(&cache, key).await? {
        return Ok(hit);
    }
    let res = fetch(req).await?;
    if res.ok() {
        JsFuture::from(cache.put_with_str(key, &res.clone()?)).await?;
    }
    Ok(res)
}

/// Runtime cache-first.
pub async fn handle(ctx: Ctx<'_>) -> Result<Response, SwError> {
    if let Some(cache) = ctx.cache {
        if let Some(hit) = cache.lookup(ctx.url).await? {
            return Ok(hit);
        }
    }
    let res = fetch(ctx.req).await?;
    store_later(ctx, &res)?;
    Ok(res)
}
