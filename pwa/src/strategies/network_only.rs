//! Network-only: the network's answer, never a cache (the route exists to claim the request,
//! e.g. so that navigations to it get the offline fallback).

use web_sys::Response;

use super::Ctx;
use crate::error::SwError;
use crate::host::fetch;

pub async fn handle(ctx: Ctx<'_>) -> Result<Response, SwError> {
    fetch(ctx.req).await
}
