//! Cache-only: the cached copy or an error; the network is never asked (for caches some
//! other route or the app fills).

use web_sys::Response;

use super::Ctx;
use crate::error::SwError;

pub async fn handle(ctx: Ctx<'_>) -> Result<Response, SwError> {
    match ctx.cache {
        Some(cache) => cache.lookup(ctx.url).await?,
        None => None,
    }
    .ok_or_else(|| SwError::NoResponse(ctx.url.to_owned()))
}
