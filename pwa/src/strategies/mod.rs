//! Caching strategies, one module each (Workbox's names and semantics), and the dispatch
//! from a routing decision to the module that answers it.

mod cache_first;
mod cache_only;
mod network_first;
mod network_only;
mod stale_while_revalidate;

use web_sys::{Request, Response};

use crate::config::{RouteConfig, StrategyKind};
use crate::error::SwError;
use crate::host::cache::{self, RuntimeCache};
use crate::host::{cache_match, open_cache, Tasks, Worker};
use crate::routing::Decision;

/// What a strategy works with.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    pub req: &'a Request,
    pub url: &'a str,
    /// The route's runtime cache, when it has one.
    pub cache: Option<RuntimeCache<'a>>,
    pub route: &'a RouteConfig,
    /// Background work (cache updates) that outlives the response.
    pub tasks: &'a Tasks,
}

/// Answers a request according to the routing decision (GET routes and the precache; the
/// outbox and the flags are answered by their own modules).
pub async fn handle(
    w: &Worker,
    decision: Decision<'_>,
    req: &Request,
    navigate: bool,
    tasks: &Tasks,
) -> Result<Response, SwError> {
    let url = req.url();
    let res = match decision {
        Decision::Precached(key) => cache_first::precached(w, key, req).await,
        Decision::Route(route) => {
            let name = cache::for_route(route);
            let ctx = Ctx {
                req,
                url: &url,
                cache: name.as_deref().map(|name| RuntimeCache { route, name }),
                route,
                tasks,
            };
            match route.strategy {
                StrategyKind::NetworkOnly => network_only::handle(ctx).await,
                StrategyKind::CacheOnly => cache_only::handle(ctx).await,
                StrategyKind::CacheFirst => cache_first::handle(ctx).await,
                StrategyKind::NetworkFirst => network_first::handle(ctx).await,
                StrategyKind::StaleWhileRevalidate => stale_while_revalidate::handle(ctx).await,
            }
        }
        _ => crate::host::fetch(req).await,
    };
    match res {
        Err(e) if navigate => offline_fallback(w, &url).await.ok_or(e),
        other => other,
    }
}

/// For a navigation nothing else could answer: the precached page for that URL, else the
/// configured navigation fallback.
async fn offline_fallback(w: &Worker, url: &str) -> Option<Response> {
    let cache = open_cache(&w.config.precache_name()).await.ok()?;
    if let Some(key) = w.precache.key_for(url) {
        if let Ok(Some(hit)) = cache_match(&cache, key).await {
            return Some(hit);
        }
    }
    let fallback = w.config.navigation_fallback.as_deref()?;
    let key = w
        .precache
        .key_for(&crate::precache::absolute(&w.origin, fallback))?;
    cache_match(&cache, key).await.ok().flatten()
}

/// Stores a copy of `res` in the route's cache in the background.
fn store_later(ctx: Ctx<'_>, res: &Response) -> Result<(), SwError> {
    if let Some(cache) = ctx.cache {
        let copy = res.clone()?;
        let (route, name, url) = (ctx.route.clone(), cache.name.to_owned(), ctx.url.to_owned());
        ctx.tasks.spawn(async move {
            let cache = RuntimeCache {
                route: &route,
                name: &name,
            };
            cache.store(&url, copy).await.map(drop)
        });
    }
    Ok(())
}
