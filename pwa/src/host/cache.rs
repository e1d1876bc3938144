//! Runtime caches with expiration: stores stamp each response with the time the worker
//! stored it and record usage in IndexedDB; lookups refuse expired entries and record the
//! use. The decisions are `crate::cacheable` and `crate::expiration`.

use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Cache, Headers, Response, ResponseInit};

use super::idb::{self, USAGE};
use super::{cache_keys, cache_match, now_ms, open_cache, worker};
use crate::cacheable::cacheable;
use crate::config::RouteConfig;
use crate::error::SwError;
use crate::expiration::{self, Usage, STORED_AT_HEADER};

/// A route's runtime cache.
#[derive(Debug, Clone, Copy)]
pub struct RuntimeCache<'a> {
    pub route: &'a RouteConfig,
    /// Full cache name.
    pub name: &'a str,
}

fn header(res: &Response, name: &str) -> Option<String> {
    res.headers().get(name).ok().flatten()
}

impl RuntimeCache<'_> {
    /// The cached, unexpired response for `url`.
    pub async fn lookup(&self, url: &str) -> Result<Option<Response>, SwError> {
        let cache = open_cache(self.name).await?;
        let Some(hit) = cache_match(&cache, url).await? else {
            return Ok(None);
        };
        let Some(exp) = self.route.expiration else {
            return Ok(Some(hit));
        };
        let now = now_ms();
        let stored_at = expiration::stored_at(header(&hit, STORED_AT_HEADER).as_deref());
        if expiration::is_expired(stored_at, now, &exp) {
            self.forget(&cache, url).await?;
            return Ok(None);
        }
        if exp.max_entries.is_some() {
            let key = JsValue::from_str(&Usage::key(self.name, url));
            let mut usage = idb::from_js(&idb::get(USAGE, &key).await?)
                .ok()
                .and_then(|v| Usage::from_value(&v).ok())
                .unwrap_or_else(|| Usage::stored(self.name, url, stored_at.unwrap_or(now)));
            usage.used_at = now;
            idb::put(USAGE, &idb::to_js(&usage.to_value())?).await?;
        }
        Ok(Some(hit))
    }

    /// Stores `res` under `url` when the route allows it, then enforces the limits.
    /// Returns whether it was stored.
    pub async fn store(&self, url: &str, res: Response) -> Result<bool, SwError> {
        if !cacheable(
            res.status(),
            header(&res, "cache-control").as_deref(),
            header(&res, "vary").as_deref(),
            &self.route.cacheable,
        ) {
            return Ok(false);
        }
        let now = now_ms();
        let cache = open_cache(self.name).await?;
        JsFuture::from(cache.put_with_str(url, &stamped(res, now)?)).await?;
        if let Some(exp) = self.route.expiration {
            let usage = Usage::stored(self.name, url, now);
            idb::put(USAGE, &idb::to_js(&usage.to_value())?).await?;
            self.enforce(&cache, &exp, now).await?;
        }
        Ok(true)
    }

    async fn enforce(
        &self,
        cache: &Cache,
        exp: &crate::config::ExpirationConfig,
        now: f64,
    ) -> Result<(), SwError> {
        let cached = cache_keys(cache).await?;
        let usage: Vec<Usage> = idb::get_all(USAGE)
            .await?
            .iter()
            .filter_map(|v| idb::from_js(&v).ok())
            .filter_map(|v| Usage::from_value(&v).ok())
            .filter(|u| u.cache == self.name)
            .collect();
        for url in expiration::victims(&cached, &usage, now, exp) {
            self.forget(cache, &url).await?;
        }
        // Records whose entry is gone (evicted by the browser, say) are dropped too.
        for u in usage.iter().filter(|u| !cached.contains(&u.url)) {
            idb::delete(USAGE, &JsValue::from_str(&u.id)).await?;
        }
        Ok(())
    }

    async fn forget(&self, cache: &Cache, url: &str) -> Result<(), SwError> {
        JsFuture::from(cache.delete_with_str(url)).await?;
        idb::delete(USAGE, &JsValue::from_str(&Usage::key(self.name, url))).await
    }
}

/// A copy of `res` carrying the stored-at header (same status, headers and body stream).
fn stamped(res: Response, now: f64) -> Result<Response, SwError> {
    let headers = Headers::new_with_headers(&res.headers())?;
    headers.set(STORED_AT_HEADER, &format!("{}", now as u64))?;
    let init = ResponseInit::new();
    init.set_status(res.status());
    init.set_status_text(&res.status_text());
    init.set_headers(&headers);
    Ok(Response::new_with_opt_readable_stream_and_init(
        res.body().as_ref(),
        &init,
    )?)
}

/// The runtime cache of a route, if it has one.
pub fn for_route(route: &RouteConfig) -> Option<String> {
    let w = worker().ok()?;
    route
        .cache_name
        .as_deref()
        .map(|n| w.config.runtime_cache_name(n))
}
