//! Notifications glue: `showNotification` for a push payload, and the click handling the
//! policy (`crate::notify`) picks.

use js_sys::Reflect;
use wasm_bindgen::JsCast;
use web_sys::{ClientQueryOptions, ClientType, Notification, NotificationOptions, WindowClient};

use super::{idb, scope, wait, worker};
use crate::error::SwError;
use crate::notify::{self, ClickAction};

/// Shows the notification a push payload describes.
pub async fn show(payload: Option<&str>) -> Result<(), SwError> {
    let w = worker()?;
    let n = notify::from_payload(payload, &w.config.notifications, &w.origin);
    let opts = NotificationOptions::new();
    if let Some(body) = &n.body {
        opts.set_body(body);
    }
    if let Some(icon) = &n.icon {
        opts.set_icon(icon);
    }
    if let Some(tag) = &n.tag {
        opts.set_tag(tag);
    }
    opts.set_data(&idb::to_js(&serde_json::json!({ "url": n.url }))?);
    let shown = scope()
        .registration()
        .show_notification_with_options(&n.title, &opts)?;
    wasm_bindgen_futures::JsFuture::from(shown).await?;
    Ok(())
}

/// Handles a click: focus the tab showing the target, else steer one there, else open it.
pub async fn click(notification: &Notification) -> Result<(), SwError> {
    notification.close();
    let w = worker()?;
    let target = Reflect::get(&notification.data(), &"url".into())
        .ok()
        .and_then(|u| u.as_string())
        .unwrap_or_else(|| notify::from_payload(None, &w.config.notifications, &w.origin).url);
    let opts = ClientQueryOptions::new();
    opts.set_include_uncontrolled(true);
    opts.set_type(ClientType::Window);
    let clients = scope().clients();
    let found: js_sys::Array = wait(clients.match_all_with_options(&opts)).await?;
    let windows: Vec<WindowClient> = found
        .iter()
        .filter_map(|c| c.dyn_into::<WindowClient>().ok())
        .collect();
    let urls: Vec<String> = windows.iter().map(|c| c.url()).collect();
    match notify::on_click(&urls, &target) {
        ClickAction::Focus(i) => {
            if let Some(win) = windows.get(i) {
                wasm_bindgen_futures::JsFuture::from(win.focus()?).await?;
            }
        }
        ClickAction::Navigate(i) => {
            let navigated = match windows.get(i) {
                Some(win) => wasm_bindgen_futures::JsFuture::from(win.navigate(&target)?)
                    .await
                    .ok()
                    .and_then(|v| v.dyn_into::<WindowClient>().ok()),
                None => None,
            };
            match navigated {
                Some(win) => {
                    wasm_bindgen_futures::JsFuture::from(win.focus()?).await?;
                }
                // An uncontrolled tab cannot be steered: open the target instead.
                None => {
                    wasm_bindgen_futures::JsFuture::from(clients.open_window(&target)).await?;
                }
            }
        }
        ClickAction::Open => {
            wasm_bindgen_futures::JsFuture::from(clients.open_window(&target)).await?;
        }
    }
    Ok(())
}
