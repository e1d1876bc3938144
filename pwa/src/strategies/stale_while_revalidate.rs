//! Stale-while-revalidate: answer from the cache at once when it has a copy, and refresh
//! the copy from the network in the background; on a miss, the network (stored).

use web_sys::Response;

use super::{store_later, Ctx};
use crate::error::SwError;
use crate::host::fetch;

pub async fn handle(ctx: Ctx<'_>) -> Result<Response, SwError> {
    let hit = match ctx.cache {
        Some(cache) => cache.lookup(ctx.url).await?,
        None => None,
    };
    let Some(hit) = hit else {
        let res = fetch(ctx.req).await?;
        store_later(ctx, &res)?;
        return Ok(res);
    };
    let (req, route, url) = (ctx.req.to_owned(), ctx.route.clone(), ctx.url.to_owned());
    let name = ctx.cache.map(|c| c.name.to_owned()).unwrap_or_default();
    ctx.tasks.spawn(async move {
        // Offline, the stale copy was the answer; nothing to refresh.
        let Ok(res) = fetch(&req).await else {
            return Ok(());
        };
        let cache = crate::host::cache::RuntimeCache {
            route: &route,
            name: &name,
        };
        cache.store(&url, res).await.map(drop)
    });
    Ok(hit)
}
