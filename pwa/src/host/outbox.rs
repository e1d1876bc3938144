//! Background-sync glue: the outbox in IndexedDB, the live write path, and the one shared
//! replay. Within this service worker, concurrent triggers join the replay in flight; across
//! versions (an old worker finishing while a new one starts), a Web Lock lets only one of
//! them send. Nothing is sent twice by the worker, and the `Idempotency-Key` every entry
//! carries from its first attempt makes even a write whose answer was lost safe to repeat.

use std::cell::{Cell, RefCell};

use js_sys::{Promise, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Headers, Request, RequestInit, Response};

use super::idb::{self, OUTBOX};
use super::{
    fetch, header_pairs, json_response, now_ms, post_all, promise, random_key, register_sync,
    sleep, with_lock, worker, Tasks,
};
use crate::config::BackgroundSyncConfig;
use crate::error::SwError;
use crate::outbox::{self, classify, message, plan, Entry, Outcome, Plan, ReplayState, Verdict};

/// Web Lock held while writes are sent.
const LOCK: &str = "edgeflags-outbox";
/// Background Sync tag registered when a write could not reach the network.
pub const SYNC_TAG: &str = "edgeflags-outbox";

thread_local! {
    static REPLAY: RefCell<Option<Promise>> = const { RefCell::new(None) };
    static DIRTY: Cell<bool> = const { Cell::new(false) };
}

/// An entry with its body (an `ArrayBuffer`).
struct Stored {
    entry: Entry,
    body: JsValue,
}

async fn load() -> Result<Vec<Stored>, SwError> {
    let mut out = Vec::new();
    for v in idb::get_all(OUTBOX).await?.iter() {
        let body = Reflect::get(&v, &"body".into()).unwrap_or_default();
        match idb::from_js(&v).and_then(|j| Entry::from_value(&j).map_err(SwError::Js)) {
            Ok(entry) => out.push(Stored { entry, body }),
            Err(e) => web_sys::console::warn_1(&format!("edgeflags sw: outbox entry: {e}").into()),
        }
    }
    Ok(out)
}

async fn save(entry: &Entry, body: &JsValue) -> Result<u64, SwError> {
    let v = idb::to_js(&entry.to_value())?;
    Reflect::set(&v, &"body".into(), body)?;
    let key = idb::put(OUTBOX, &v).await?;
    key.as_f64()
        .map(|k| k as u64)
        .ok_or_else(|| SwError::Js("outbox key is not a number".into()))
}

async fn remove(id: u64) -> Result<(), SwError> {
    idb::delete(OUTBOX, &JsValue::from_f64(id as f64)).await
}

fn entries(stored: &[Stored]) -> Vec<Entry> {
    stored.iter().map(|s| s.entry.clone()).collect()
}

/// The outbox as the page sees it.
pub async fn state() -> Result<serde_json::Value, SwError> {
    Ok(message::state(&entries(&load().await?)))
}

async fn announce() -> Result<(), SwError> {
    post_all(&state().await?).await
}

/// Sends a stored write once. A replay (`manual`) does not follow redirects: a redirect
/// answers status 0, and the entry is held for the app instead of a sign-in page's `200`
/// counting as sent.
async fn send(
    entry: &Entry,
    body: &JsValue,
    manual: bool,
) -> Result<(Outcome, Option<Response>), SwError> {
    let headers = Headers::new()?;
    for (k, v) in &entry.headers {
        // Headers the browser forbids scripts to set are silently skipped.
        let _ = headers.append(k, v);
    }
    let init = RequestInit::new();
    init.set_method(&entry.method);
    init.set_headers(&headers);
    if !matches!(entry.method.as_str(), "GET" | "HEAD") && !body.is_undefined() {
        init.set_body(body);
    }
    if manual {
        Reflect::set(&init, &"redirect".into(), &"manual".into())?;
    }
    let req = Request::new_with_str_and_init(&entry.url, &init)?;
    Ok(match fetch(&req).await {
        Ok(res) => (Outcome::Status(res.status()), Some(res)),
        Err(_) => (Outcome::NetworkError, None),
    })
}

/// A write to a background-sync route: sent at once when nothing is queued before it,
/// otherwise (or when it fails) queued, and the app gets `202` with its position.
pub async fn handle_write(
    bs: &BackgroundSyncConfig,
    req: &Request,
    tasks: &Tasks,
) -> Result<Response, SwError> {
    let body: JsValue = JsFuture::from(req.array_buffer()?).await?;
    let entry = Entry::new(
        &bs.queue,
        &req.method(),
        &req.url(),
        header_pairs(&req.headers()),
        now_ms(),
        random_key,
    );
    // Nothing pending: whoever holds the lock lets go at once, so wait for it rather than
    // queue (`outbox::waits_for_lock`); otherwise only take it if free, else queue behind.
    let wait = outbox::waits_for_lock(&entries(&load().await?));
    let cfg = bs.clone();
    let pair = with_lock(
        LOCK,
        !wait,
        Box::new(move |held| {
            Box::pin(async move {
                let (res, written) = write(held, cfg, entry, body).await?;
                Ok(js_sys::Array::of2(&res, &JsValue::from(written as u8)).into())
            })
        }),
    )
    .await?;
    let pair: js_sys::Array = pair.unchecked_into();
    let res: Response = pair
        .get(0)
        .dyn_into()
        .map_err(|_| SwError::Js("write produced no response".into()))?;
    let written = pair.get(1).as_f64().unwrap_or(0.0) as u8;
    if written != Written::Sent as u8 {
        tasks.spawn(announce());
    }
    if written == Written::QueuedReplayNow as u8 {
        // Let the replay (joined if one runs) pick it up.
        tasks.push(replay());
    }
    Ok(res)
}

/// What the live path did with a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Written {
    /// The server answered; the app gets that answer.
    Sent = 0,
    /// Queued after a network error: the network is gone, so the next replay waits for a
    /// trigger (`sync`, the page's `online`, a worker start, on demand).
    QueuedOffline = 1,
    /// Queued behind others, or after a server error: replay now (it waits for backoffs).
    QueuedReplayNow = 2,
}

async fn write(
    held: bool,
    cfg: BackgroundSyncConfig,
    mut entry: Entry,
    body: JsValue,
) -> Result<(Response, Written), SwError> {
    let queued_before = load()
        .await?
        .iter()
        .any(|s| s.entry.queue == cfg.queue && s.entry.held.is_none());
    let mut written = Written::QueuedReplayNow;
    if held && !queued_before {
        // The app is here: it gets the answer, redirects followed as it asked.
        let (outcome, res) = send(&entry, &body, false).await?;
        match (classify(outcome), res) {
            (Verdict::Sent | Verdict::Hold, Some(res)) => return Ok((res, Written::Sent)),
            (Verdict::RetryOffline, _) => {
                entry.failed(outcome, &cfg, now_ms());
                register_sync(SYNC_TAG).await;
                written = Written::QueuedOffline;
            }
            _ => entry.failed(outcome, &cfg, now_ms()),
        }
    }
    let id = save(&entry, &body).await?;
    entry.id = Some(id);
    let position = outbox::position(&entries(&load().await?), id);
    let res = json_response(
        202,
        &outbox::queued_body(&entry, position),
        &[("x-edgeflags-outbox", "queued")],
    )?;
    Ok((res, written))
}

/// Starts a replay, or joins the one in flight. Resolves when the outbox holds nothing this
/// replay could send.
pub fn replay() -> Promise {
    if let Some(p) = REPLAY.with(|r| r.borrow().clone()) {
        DIRTY.with(|d| d.set(true));
        return p;
    }
    let p = promise(Box::pin(async {
        loop {
            DIRTY.with(|d| d.set(false));
            let outcome = with_lock(
                LOCK,
                false,
                Box::new(|_| {
                    Box::pin(async {
                        run_replay()
                            .await
                            .map(|()| JsValue::UNDEFINED)
                            .map_err(JsValue::from)
                    })
                }),
            )
            .await;
            // Checked and cleared in one synchronous step: a trigger that arrived after the
            // last pass read the outbox gets another pass.
            if outcome.is_err() || !DIRTY.with(Cell::get) {
                REPLAY.with(|r| *r.borrow_mut() = None);
                return outcome.map_err(JsValue::from);
            }
        }
    }));
    REPLAY.with(|r| *r.borrow_mut() = Some(p.clone()));
    p
}

/// Whether nothing is left to send (held entries wait for the app, not for the network):
/// a `sync` event fails otherwise, so the browser retries.
pub async fn is_empty() -> Result<bool, SwError> {
    Ok(outbox::pending(&entries(&load().await?)).next().is_none())
}

/// The app's decision on the held entry `id` (if it is one): send it again (`retry`: it
/// rejoins its queue) or discard it. A retry then replays, and the promise settles with that
/// replay: `decide(0, true)` (no entry has id 0) is a plain replay on demand.
pub fn decide(id: u64, retry: bool) -> Promise {
    promise(Box::pin(async move {
        let held = load()
            .await?
            .into_iter()
            .find(|s| s.entry.id == Some(id) && s.entry.held.is_some());
        if let Some(Stored { mut entry, body }) = held {
            if retry {
                entry.release(now_ms());
                save(&entry, &body).await?;
            } else {
                remove(id).await?;
            }
            announce().await?;
        }
        if retry {
            JsFuture::from(replay()).await?;
        }
        Ok(JsValue::UNDEFINED)
    }))
}

async fn run_replay() -> Result<(), SwError> {
    let w = worker()?;
    let mut st = ReplayState::default();
    loop {
        let stored = load().await?;
        let list = entries(&stored);
        match plan(&list, now_ms(), &mut st, |q| w.config.queue(q)) {
            Plan::Done => return Ok(()),
            Plan::Wait(ms) => sleep(ms).await,
            Plan::Expire(ids) => {
                for s in stored
                    .iter()
                    .filter(|s| s.entry.id.is_some_and(|i| ids.contains(&i)))
                {
                    let mut entry = s.entry.clone();
                    entry.expire();
                    save(&entry, &s.body).await?;
                }
                announce().await?;
            }
            Plan::Send(id) => {
                let Some(s) = stored.iter().find(|s| s.entry.id == Some(id)) else {
                    continue;
                };
                let (outcome, _) = send(&s.entry, &s.body, true).await?;
                let verdict = classify(outcome);
                st.record(&s.entry.queue, verdict);
                match (verdict, outcome) {
                    (Verdict::Sent, Outcome::Status(status)) => {
                        remove(id).await?;
                        post_all(&message::sent(&s.entry, status)).await?;
                    }
                    _ => {
                        let mut entry = s.entry.clone();
                        let cfg = w.config.queue(&entry.queue);
                        entry.failed(outcome, &cfg, now_ms());
                        // A held entry reaches the pages with the state below.
                        save(&entry, &s.body).await?;
                        if verdict == Verdict::RetryOffline {
                            register_sync(SYNC_TAG).await;
                        }
                    }
                }
                announce().await?;
            }
        }
    }
}
