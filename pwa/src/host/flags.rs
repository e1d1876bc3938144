//! Offline flags glue: watches OFREP answers and pages passing through, keeps the flag
//! snapshot and the client-side definitions in IndexedDB, and answers OFREP from them when
//! the network fails. The decisions are in `crate::flags`.

use std::cell::RefCell;
use std::rc::Rc;

use edgeflags_core::ofrep::{failure_body, Bootstrap};
use edgeflags_core::FlagSet;
use serde_json::{json, Value};
use wasm_bindgen::JsValue;
use web_sys::{Headers, Request, RequestInit, Response};

use super::idb::{self, FLAGS};
use super::{fetch, json_response, now_ms, worker, Tasks, Worker};
use crate::error::SwError;
use crate::flags::{self, Definitions, Snapshot, Sources};
use crate::routing::FlagsRequest;

const VISITOR: &str = "visitor";
const DEFINITIONS: &str = "definitions";
const SNAPSHOTS: &str = "snapshots";

thread_local! {
    /// The compiled definitions, by version (compiling once per worker start, not per request).
    static COMPILED: RefCell<Option<(String, Rc<FlagSet>)>> = const { RefCell::new(None) };
}

async fn load(key: &str) -> Option<Value> {
    let v = idb::get(FLAGS, &JsValue::from_str(key)).await.ok()?;
    idb::from_js(&v).ok()
}

async fn store(key: &str, value: &Value) -> Result<(), SwError> {
    idb::put_at(FLAGS, &JsValue::from_str(key), &idb::to_js(value)?).await
}

async fn visitor() -> Option<String> {
    load(VISITOR)
        .await
        .and_then(|v| v.as_str().map(str::to_owned))
}

async fn definitions() -> Option<Definitions> {
    Definitions::from_value(&load(DEFINITIONS).await?).ok()
}

async fn snapshots() -> Vec<Snapshot> {
    load(SNAPSHOTS)
        .await
        .map(|v| Snapshot::list_from_value(&v))
        .unwrap_or_default()
}

fn compiled(defs: &Definitions) -> Option<Rc<FlagSet>> {
    if let Some(set) = COMPILED.with(|c| {
        c.borrow()
            .as_ref()
            .filter(|(v, _)| *v == defs.version)
            .map(|(_, s)| s.clone())
    }) {
        return Some(set);
    }
    let set = Rc::new(flags::compile(defs)?);
    COMPILED.with(|c| *c.borrow_mut() = Some((defs.version.clone(), set.clone())));
    Some(set)
}

async fn text_of(p: Result<js_sys::Promise, JsValue>) -> Result<String, SwError> {
    let v = wasm_bindgen_futures::JsFuture::from(p?).await?;
    Ok(v.as_string().unwrap_or_default())
}

/// `POST <ofrep>[/{key}]`: the edge's answer when it can be reached (a bulk answer is kept
/// for its context), else an answer computed from what is stored.
pub async fn handle_ofrep(
    w: &Worker,
    which: FlagsRequest,
    request: &Request,
    tasks: &Tasks,
) -> Result<Response, SwError> {
    let body = text_of(request.clone()?.text()).await?;
    match fetch(request).await {
        Ok(res) => {
            if which == FlagsRequest::Bulk && res.status() == 200 {
                let copy = res.clone()?;
                tasks.spawn(remember_answer(body, copy));
            }
            Ok(res)
        }
        Err(e) => offline_answer(w, &which, &body).await?.ok_or(e),
    }
}

async fn remember_answer(body: String, res: Response) -> Result<(), SwError> {
    let w = worker()?;
    let Some(cfg) = &w.config.flags else {
        return Ok(());
    };
    let visitor = visitor().await;
    let Ok(ctx) = flags::parse_request(&body, visitor.as_deref()) else {
        return Ok(());
    };
    let version = res
        .headers()
        .get("etag")
        .ok()
        .flatten()
        .and_then(|e| flags::version_of_etag(&e));
    let answer: Value = serde_json::from_str(&text_of(res.text()).await?)
        .map_err(|e| SwError::Js(e.to_string()))?;
    let Some(items) = answer.get("flags").and_then(Value::as_array) else {
        return Ok(());
    };
    let snapshot = Snapshot {
        fingerprint: flags::fingerprint(&ctx),
        version: version.clone(),
        flags: items.clone(),
        stored_at: now_ms(),
    };
    let mut all = snapshots().await;
    flags::remember(&mut all, snapshot, cfg.max_snapshots);
    store(SNAPSHOTS, &Snapshot::list_to_value(&all)).await?;
    refresh_if_changed(version).await
}

async fn offline_answer(
    w: &Worker,
    which: &FlagsRequest,
    body: &str,
) -> Result<Option<Response>, SwError> {
    let visitor = visitor().await;
    let key = match which {
        FlagsRequest::Single(k) => Some(k.as_str()),
        FlagsRequest::Bulk => None,
    };
    let headers = [("x-edgeflags-offline", "1")];
    let ctx = match flags::parse_request(body, visitor.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            let body = failure_body(key, e.code.as_str(), &e.details);
            return json_response(e.http_status(), &body, &headers).map(Some);
        }
    };
    let defs = definitions().await;
    let set = defs.as_ref().and_then(compiled);
    let snapshots = snapshots().await;
    let fp = flags::fingerprint(&ctx);
    let sources = Sources {
        definitions: set.as_deref().zip(defs.as_ref()),
        snapshot: snapshots.iter().find(|s| s.fingerprint == fp),
    };
    if sources.is_empty() || w.config.flags.is_none() {
        return Ok(None);
    }
    let now_secs = (now_ms() / 1000.0) as u64;
    let (status, answer) = match which {
        FlagsRequest::Bulk => (200, sources.bulk(&ctx, now_secs)),
        FlagsRequest::Single(k) => sources.single(k, &ctx, now_secs),
    };
    json_response(status, &answer, &headers).map(Some)
}

/// Reads the bootstrap out of a page that came from the network (in the background).
pub fn observe_page(res: &Response, tasks: &Tasks) -> Result<(), SwError> {
    let html = res
        .headers()
        .get("content-type")
        .ok()
        .flatten()
        .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("text/html"));
    if res.status() != 200 || !html {
        return Ok(());
    }
    let copy = res.clone()?;
    tasks.spawn(async move {
        let text = text_of(copy.text()).await?;
        match Bootstrap::from_html(&text) {
            Some(b) => remember_bootstrap_value(b).await,
            None => Ok(()),
        }
    });
    Ok(())
}

/// A bootstrap the page sent (its first load was not controlled, so the worker did not see
/// the HTML): a JSON string or object.
pub async fn remember_bootstrap(value: &JsValue, _tasks: &Tasks) -> Result<(), SwError> {
    let parsed: Value = match value.as_string() {
        Some(text) => serde_json::from_str(&text).map_err(|e| SwError::Js(e.to_string()))?,
        None => idb::from_js(value)?,
    };
    match Bootstrap::from_value(parsed) {
        Some(b) => remember_bootstrap_value(b).await,
        None => Ok(()),
    }
}

async fn remember_bootstrap_value(bootstrap: Bootstrap) -> Result<(), SwError> {
    let w = worker()?;
    let Some(cfg) = &w.config.flags else {
        return Ok(());
    };
    let (key, snapshot) = flags::from_bootstrap(bootstrap, now_ms());
    if let Some(k) = key {
        store(VISITOR, &Value::String(k)).await?;
    }
    let version = snapshot.version.clone();
    let mut all = snapshots().await;
    flags::remember(&mut all, snapshot, cfg.max_snapshots);
    store(SNAPSHOTS, &Snapshot::list_to_value(&all)).await?;
    refresh_if_changed(version).await
}

async fn refresh_if_changed(version: Option<String>) -> Result<(), SwError> {
    let Some(v) = version else { return Ok(()) };
    let defs = definitions().await;
    if defs.is_some_and(|d| d.version == v) {
        return Ok(());
    }
    refresh_definitions(true).await
}

/// Fetches the client-side definitions (revalidating the stored copy by ETag) — when
/// `changed` (a newer flag-set version was seen) or when the stored copy is due. Offline, it
/// quietly keeps what it has.
pub async fn refresh_definitions(changed: bool) -> Result<(), SwError> {
    let w = worker()?;
    let Some(cfg) = &w.config.flags else {
        return Ok(());
    };
    let stored = definitions().await;
    if !changed && !flags::refresh_due(stored.as_ref(), now_ms()) {
        return Ok(());
    }
    let headers = Headers::new()?;
    if let Some(d) = &stored {
        headers.set("if-none-match", &format!("\"{}\"", d.version))?;
    }
    let init = RequestInit::new();
    init.set_headers(&headers);
    let url = crate::precache::absolute(&w.origin, &cfg.client_flags_path);
    let req = Request::new_with_str_and_init(&url, &init)?;
    let Ok(res) = fetch(&req).await else {
        return Ok(());
    };
    match (res.status(), stored) {
        (304, Some(mut d)) => {
            d.fetched_at = now_ms();
            store(DEFINITIONS, &d.to_value()).await
        }
        (200, _) => {
            let version = res
                .headers()
                .get("etag")
                .ok()
                .flatten()
                .and_then(|e| flags::version_of_etag(&e))
                .ok_or_else(|| SwError::Js("client flags came without an ETag".into()))?;
            let defs = Definitions {
                version,
                document: text_of(res.text()).await?,
                fetched_at: now_ms(),
            };
            if compiled(&defs).is_none() {
                return Err(SwError::Js("client flags do not compile".into()));
            }
            store(DEFINITIONS, &defs.to_value()).await
        }
        (status, _) => Err(SwError::Js(format!("client flags answered {status}"))),
    }
}

/// What the worker knows about flags, for the page.
pub async fn state() -> Result<Value, SwError> {
    let visitor = visitor().await;
    let defs = definitions().await;
    let snapshots = snapshots().await;
    let keys: Vec<String> = defs
        .as_ref()
        .and_then(compiled)
        .map(|s| s.flag_keys().map(str::to_owned).collect())
        .unwrap_or_default();
    Ok(json!({
        "type": "edgeflags:flags",
        "visitor": visitor,
        "definitionsVersion": defs.map(|d| d.version),
        "clientFlags": keys,
        "snapshots": snapshots.len(),
    }))
}
