//! In-app inbox glue: keeps the items pushed to this browser (IndexedDB store `inbox`, one
//! record) and answers the page's inbox reads with `crate::inbox::merge` of the route's
//! answer (the edge's inbox, fresh or the last good copy), those items and the outbox's
//! pending read marks.

use wasm_bindgen_futures::JsFuture;
use web_sys::Response;

use super::idb::{self, INBOX};
use super::{json_response, outbox, post_all, worker};
use crate::error::SwError;
use crate::inbox;

/// The one record of the `inbox` store: the pushed items, newest first.
const PUSHED: &str = "pushed";

async fn load() -> Result<Vec<serde_json::Value>, SwError> {
    let v = idb::get(INBOX, &PUSHED.into()).await?;
    Ok(match idb::from_js(&v) {
        Ok(serde_json::Value::Array(items)) => items,
        _ => Vec::new(),
    })
}

async fn save(items: Vec<serde_json::Value>) -> Result<(), SwError> {
    let v = idb::to_js(&serde_json::Value::Array(items))?;
    idb::put_at(INBOX, &PUSHED.into(), &v).await
}

/// Keeps a pushed item and tells the pages (`edgeflags:inbox`), so an open inbox shows it.
pub async fn record(item: serde_json::Value) -> Result<(), SwError> {
    let mut pushed = load().await?;
    if inbox::remember(&mut pushed, item) {
        save(pushed).await?;
        post_all(&serde_json::json!({ "type": "edgeflags:inbox" })).await?;
    }
    Ok(())
}

/// The page's inbox read, from the route's answer: a `200` (or no answer at all — offline
/// with nothing stored) is merged with the pushed items; other answers pass unchanged.
pub async fn answer(routed: Result<Response, SwError>) -> Result<Response, SwError> {
    let base = match routed {
        Ok(res) if res.status() == 200 => JsFuture::from(res.text()?).await?.as_string(),
        Ok(res) => return Ok(res),
        Err(_) => None,
    };
    let w = worker()?;
    let path = w
        .config
        .notifications
        .inbox_path
        .as_deref()
        .unwrap_or_default();
    let mut pushed = load().await?;
    let kept = pushed.len();
    let merged = inbox::merge(base.as_deref(), &mut pushed, &outbox::state().await?, path);
    if pushed.len() != kept {
        save(pushed).await?;
    }
    json_response(200, &merged, &[])
}
