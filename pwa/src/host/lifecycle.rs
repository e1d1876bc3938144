//! Install and activate: precache the app shell, then drop what the new manifest no longer
//! names (entries and whole caches).

use wasm_bindgen_futures::JsFuture;
use web_sys::{Request, RequestCache, RequestInit};

use super::{cache_keys, open_cache, scope, wait, worker};
use crate::error::SwError;

/// Fetches every precache entry not already cached under its revisioned key. Entries are
/// stored one by one, so an install that fails partway keeps what it fetched and the retry
/// fetches only the rest.
pub async fn install() -> Result<(), SwError> {
    let w = worker()?;
    let cache = open_cache(&w.config.precache_name()).await?;
    let cached = cache_keys(&cache).await?;
    let mut first_error = None;
    for (url, key) in w.precache.missing(&cached) {
        let init = RequestInit::new();
        // Bypass the HTTP cache: the revision says the file changed.
        init.set_cache(RequestCache::Reload);
        let req = Request::new_with_str_and_init(url, &init)?;
        let outcome = match super::fetch(&req).await {
            Ok(res) if res.ok() => JsFuture::from(cache.put_with_str(key, &res))
                .await
                .map(|_| ())
                .map_err(SwError::from),
            Ok(res) => Err(SwError::PrecacheFetch {
                url: url.to_owned(),
                status: res.status(),
            }),
            Err(e) => Err(e),
        };
        if let Err(e) = outcome {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Removes stale precache entries and caches of ours the configuration no longer names,
/// then takes control of open pages.
pub async fn activate() -> Result<(), SwError> {
    let w = worker()?;
    let cache = open_cache(&w.config.precache_name()).await?;
    for key in w.precache.stale(&cache_keys(&cache).await?) {
        JsFuture::from(cache.delete_with_str(&key)).await?;
    }
    let caches = scope().caches()?;
    let names: js_sys::Array = wait(caches.keys()).await?;
    let keep = w.config.cache_names();
    let prefix = format!("{}-", w.config.cache_prefix);
    for name in names.iter().filter_map(|n| n.as_string()) {
        if name.starts_with(&prefix) && !keep.contains(&name) {
            JsFuture::from(caches.delete(&name)).await?;
        }
    }
    JsFuture::from(scope().clients().claim()).await?;
    Ok(())
}
