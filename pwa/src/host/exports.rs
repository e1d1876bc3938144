//! Functions the JS shim calls: `start` once after init, then one per event. Each returns a
//! promise the shim hands to `respondWith` / `waitUntil`.

use std::future::Future;

use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    ExtendableEvent, ExtendableMessageEvent, FetchEvent, PushEvent, Request, RequestMode, Response,
};

use super::{
    flags, inbox, notify, outbox, post_to, promise, scope, set_worker, worker, Tasks, Worker,
};
use crate::config::SwConfig;
use crate::error::SwError;
use crate::precache::Precache;
use crate::routing::{self, Decision, RequestFacts};
use crate::strategies;

/// Configures the worker from the JSON embedded in the shim; returns the precache's name
/// (the shim's install and activate open it).
#[wasm_bindgen]
pub fn start(config_json: &str) -> Result<JsValue, JsValue> {
    let config = SwConfig::from_json(config_json)?;
    let origin = scope().location().origin();
    let precache = Precache::new(&origin, &config.precache);
    let name = JsValue::from_str(&config.precache_name());
    set_worker(Worker {
        config,
        precache,
        origin,
    });
    Ok(name)
}

/// A promise for a future that ends with background tasks: it settles once the future and
/// every task it started have settled.
fn promise_with_tasks<F, Fut>(f: F) -> Promise
where
    F: FnOnce(Tasks) -> Fut + 'static,
    Fut: Future<Output = Result<(), SwError>> + 'static,
{
    let tasks = Tasks::default();
    run_with_tasks(Box::pin(f(tasks.clone())), tasks)
}

// Not generic: one executor wrapper for every event kind.
fn run_with_tasks(fut: super::LocalTask, tasks: Tasks) -> Promise {
    promise(Box::pin(async move {
        let result = fut.await;
        tasks.settled().await;
        result.map(|()| JsValue::UNDEFINED).map_err(JsValue::from)
    }))
}

/// The first event a started worker instance handles (install aside) replays the outbox and
/// revalidates the client-side flag definitions, in the background of that event.
fn at_start(tasks: &Tasks) {
    thread_local! {
        static STARTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    if !STARTED.with(|s| s.replace(true)) {
        tasks.push(outbox::replay());
        tasks.spawn(flags::refresh_definitions(false));
    }
}

/// `fetch`: route and answer `request` (the event's, or for a write the shim's copy that
/// carries its `Idempotency-Key`). Resolves to a `Response`; background work (cache
/// updates, flag snapshots, replays) keeps the event alive after that.
#[wasm_bindgen]
pub fn on_fetch(event: FetchEvent, request: Request) -> Promise {
    let tasks = Tasks::default();
    let mut resolve_slot: Option<Function> = None;
    let keep_alive = Promise::new(&mut |resolve, _| resolve_slot = Some(resolve));
    let keep_alive_done = resolve_slot.filter(|_| event.wait_until(&keep_alive).is_ok());
    promise(Box::pin(async move {
        let result = answer(&request, &tasks).await;
        // Not awaited: the response goes out now; the event stays alive until this settles.
        let _ = promise(Box::pin(async move {
            tasks.settled().await;
            if let Some(done) = keep_alive_done {
                let _ = done.call0(&JsValue::UNDEFINED);
            }
            Ok(JsValue::UNDEFINED)
        }));
        match result {
            Ok(res) => Ok(res.into()),
            // A definite "no answer" (cache-only miss, nothing to fall back on): a network
            // error for the page, not a retry by the shim.
            Err(SwError::NoResponse(_)) => Ok(Response::error().into()),
            Err(e) => Err(e.into()),
        }
    }))
}

async fn answer(request: &Request, tasks: &Tasks) -> Result<Response, SwError> {
    let w = worker()?;
    at_start(tasks);
    let url = request.url();
    let method = request.method();
    let navigate = request.mode() == RequestMode::Navigate;
    let facts = RequestFacts {
        url: &url,
        method: &method,
        navigate,
        same_origin: routing::same_origin(&w.origin, &url),
    };
    match routing::route(&w.config, &w.precache, facts) {
        Decision::Write(bs) => outbox::handle_write(bs, request, tasks).await,
        Decision::Flags(which) => flags::handle_ofrep(&w, which, request, tasks).await,
        decision => {
            let res = strategies::handle(&w, decision, request, navigate, tasks).await;
            if w.config.notifications.inbox_path.as_deref() == Some(routing::path_of(&url)) {
                return inbox::answer(res).await;
            }
            let res = res?;
            if navigate && w.config.flags.is_some() {
                flags::observe_page(&res, tasks)?;
            }
            Ok(res)
        }
    }
}

/// `message` from a page: `{"type": ...}` with
/// - `SKIP_WAITING`: a waiting version activates (the page asked the user first);
/// - `edgeflags:online`: the page saw the network come back — replay the outbox;
/// - `edgeflags:replay`: replay now, then answer with the outbox state;
/// - `edgeflags:outbox-state`: answer with the outbox state;
/// - `edgeflags:outbox-retry` / `edgeflags:outbox-discard` (`id`): the app's decision on a
///   held entry — send it again (then replay) or delete it; answer with the outbox state;
/// - `edgeflags:bootstrap` (`bootstrap`: the page's flag bootstrap): keep it for offline use;
/// - `edgeflags:flags-state`: answer with what the worker knows about flags.
///
/// Answers go to the `MessagePort` sent along, else to the sending page.
#[wasm_bindgen]
pub fn on_message(event: ExtendableMessageEvent) -> Promise {
    let data = event.data();
    let reply_to = Some(event.ports().get(0))
        .filter(|p| !p.is_undefined())
        .or_else(|| event.source().map(JsValue::from));
    promise_with_tasks(move |tasks| async move {
        at_start(&tasks);
        let kind = Reflect::get(&data, &"type".into())?
            .as_string()
            .unwrap_or_default();
        let reply = |msg: serde_json::Value| match &reply_to {
            Some(target) => post_to(target, &msg),
            None => Ok(()),
        };
        match kind.as_str() {
            "SKIP_WAITING" => {
                JsFuture::from(scope().skip_waiting()?).await?;
            }
            "edgeflags:online" => tasks.push(outbox::replay()),
            "edgeflags:replay" | "edgeflags:outbox-retry" | "edgeflags:outbox-discard" => {
                // A replay message names no entry (id 0 is none): it only replays.
                let id = Reflect::get(&data, &"id".into())?.as_f64().unwrap_or(0.0);
                let retry = !kind.ends_with("discard");
                if let Err(e) = JsFuture::from(outbox::decide(id as u64, retry)).await {
                    web_sys::console::warn_1(&e);
                }
                reply(outbox::state().await?)?;
            }
            "edgeflags:outbox-state" => reply(outbox::state().await?)?,
            "edgeflags:bootstrap" => {
                let bootstrap = Reflect::get(&data, &"bootstrap".into())?;
                flags::remember_bootstrap(&bootstrap, &tasks).await?;
            }
            "edgeflags:flags-state" => reply(flags::state().await?)?,
            _ => {}
        }
        Ok(())
    })
}

/// `sync` (tag read by the shim: web-sys has no `SyncEvent`): replay the outbox. Rejects
/// while writes remain, so the browser schedules another attempt.
#[wasm_bindgen]
pub fn on_sync(_event: ExtendableEvent, tag: String) -> Promise {
    promise_with_tasks(move |_| async move {
        if tag != outbox::SYNC_TAG {
            return Ok(());
        }
        JsFuture::from(outbox::replay()).await?;
        if outbox::is_empty().await? {
            Ok(())
        } else {
            Err(SwError::Js("writes remain in the outbox".into()))
        }
    })
}

/// `push`: keeps the payload's inbox item, then resolves to the notice to show (the shim
/// calls `showNotification`). The worker's start-up work runs
/// under the event too.
#[wasm_bindgen]
pub fn on_push(event: PushEvent) -> Promise {
    let text = event.data().map(|d| d.text());
    let tasks = Tasks::default();
    at_start(&tasks);
    // The shim keeps the event alive with the promise below; this extends it to the tasks.
    let _ = event.wait_until(&run_with_tasks(Box::pin(async { Ok(()) }), tasks));
    promise(Box::pin(
        async move { Ok(notify::show(text.as_deref()).await?) },
    ))
}

/// `notificationclick` (the shim closed the notification and lists the open windows'
/// URLs): `[action, index, target]` for the shim to carry out (`host::notify::click`).
#[wasm_bindgen]
pub fn on_notification_click(windows: js_sys::Array, target: Option<String>) -> JsValue {
    notify::click(&windows, target).into()
}
