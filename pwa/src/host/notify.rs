//! Notifications glue: a push payload's inbox item is kept (`host::inbox`) and the
//! notification to show is handed to the shim; a click's target and action (`crate::notify`)
//! likewise. The shim makes the platform calls (`showNotification`, `clients.matchAll`,
//! `focus`, `navigate`, `openWindow`): as wasm bindings they cost ~1.3 KB gzip of the
//! worker's budget for a dozen lines of JS.

use js_sys::Array;
use wasm_bindgen::JsValue;

use super::{idb, inbox, now_ms, worker};
use crate::error::SwError;
use crate::notify::{self, ClickAction};

/// For a push: keeps its inbox item (when the payload names one and an inbox is
/// configured), then answers the notice (`Notice::to_map`) for the shim to show.
pub async fn show(payload: Option<&str>) -> Result<JsValue, SwError> {
    let w = worker()?;
    let n = notify::from_payload(payload, &w.config.notifications, &w.origin);
    // Into the inbox first: a click on the notification opens a page that lists it.
    if let Some(item) = w
        .config
        .notifications
        .inbox_path
        .as_ref()
        .and_then(|_| crate::inbox::item(&n, now_ms()))
    {
        inbox::record(item).await?;
    }
    idb::to_js(&serde_json::Value::Object(n.to_map()))
}

/// For a click: `[action, index, target]` — action `focus`, `navigate` or `open`
/// (`notify::on_click` for the open windows' URLs), target the notification's `data.url`
/// (the configured default when it has none). Empty before the worker is configured.
pub fn click(windows: &Array, target: Option<String>) -> Array {
    let Ok(w) = worker() else {
        return Array::new();
    };
    let target = target
        .unwrap_or_else(|| notify::from_payload(None, &w.config.notifications, &w.origin).url);
    let urls: Vec<String> = windows.iter().filter_map(|u| u.as_string()).collect();
    let (action, index) = match notify::on_click(&urls, &target) {
        ClickAction::Focus(i) => ("focus", i),
        ClickAction::Navigate(i) => ("navigate", i),
        ClickAction::Open => ("open", 0),
    };
    Array::of3(&action.into(), &(index as u32).into(), &target.into())
}
