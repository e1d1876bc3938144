//! Caching strategies, one module each (Workbox's names and semantics).

mod cache_first;
mod network_first;

use web_sys::{Request, Response};

use crate::config::StrategyKind;
use crate::error::SwError;
use crate::host::{cache_match, fetch, open_cache, Worker};
use crate::routing::Decision;

/// Answers a request according to the routing decision.
pub async fn handle(
    w: &Worker,
    decision: Decision<'_>,
    req: &Request,
    navigate: bool,
) -> Result<Response, SwError> {
    let res = match decision {
        Decision::Network => fetch(req).await,
        Decision::Precached(key) => cache_first::precached(w, key, req).await,
        Decision::Route(route) => {
            let cache_name = route
                .cache_name
                .as_deref()
                .map(|n| w.config.runtime_cache_name(n));
            match route.strategy {
                StrategyKind::NetworkOnly => fetch(req).await,
                StrategyKind::CacheFirst => cache_first::handle(cache_name.as_deref(), req).await,
                StrategyKind::NetworkFirst => {
                    network_first::handle(cache_name.as_deref(), route.network_timeout_ms, req)
                        .await
                }
            }
        }
    };
    match res {
        Err(e) if navigate => offline_fallback(w).await.ok_or(e),
        other => other,
    }
}

/// The precached navigation fallback, when one is configured and cached.
async fn offline_fallback(w: &Worker) -> Option<Response> {
    let url = w.config.navigation_fallback.as_deref()?;
    let key = w
        .precache
        .key_for(&crate::precache::absolute(&w.origin, url))?;
    let cache = open_cache(&w.config.precache_name()).await.ok()?;
    cache_match(&cache, key).await.ok().flatten()
}

/// Whether a response may be stored by a runtime strategy: a complete 200 whose
/// Cache-Control does not forbid storing it.
pub fn cacheable(res: &Response) -> bool {
    if res.status() != 200 {
        return false;
    }
    let cc = res
        .headers()
        .get("cache-control")
        .ok()
        .flatten()
        .unwrap_or_default()
        .to_ascii_lowercase();
    !cc.split(',')
        .any(|d| matches!(d.trim(), "no-store" | "private"))
}
