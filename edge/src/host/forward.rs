//! The request worker's hand-off to the control worker (service binding `CONTROL`; which
//! endpoints go is `crate::traffic::plane`). The request is passed on unchanged — method, URL, headers
//! (the client address, cookies, tokens), body as a stream. The answer comes back as the
//! control worker wrote it, less the version hint meant for the request worker
//! (`plane::VERSION_HEADER`); one without the edge's mark is replaced by 503
//! `CONTROL_UNAVAILABLE`. The edge's headers are added on the way out like any other answer.

use wasm_bindgen::{JsCast, JsValue};
use worker::{Env, Headers, Request, Response};

use crate::config::Config;
use crate::error::EdgeError;
use crate::host::internal;
use crate::traffic::plane;

/// Service binding to the control worker (`wrangler.toml` `[[services]]`).
pub(crate) const BINDING: &str = "CONTROL";

fn unbound(e: impl std::fmt::Display) -> EdgeError {
    EdgeError::Config(format!(
        "the control worker is not reachable through the service binding {BINDING}: {e} \
         (deploy control/wrangler.toml first, see README \"Deploying\")"
    ))
}

/// Passes a control-plane request on and returns the control worker's answer, whatever its
/// status; a call that fails outright is 503 (`ControlUnavailable`), and the visitor's path
/// goes on without the control worker (the flag set from the KV replica, metrics retained).
pub(crate) async fn to_control(
    req: Request,
    env: &Env,
    config: &Config,
    sub: &str,
) -> Result<Response, EdgeError> {
    let control = env.service(BINDING).map_err(unbound)?;
    // What this isolate has counted but not yet sent belongs in what a metrics read is about
    // to see; at most 300 such flushes a minute per client (an unauthenticated caller reaches
    // this too: the control worker checks credentials after the hand-off).
    if plane::reads_metrics(sub) && crate::host::rate_limit(env, &req, "relay").await.is_ok() {
        crate::host::measure::flush_or_warn(env).await;
    }
    let res = control
        .fetch_request(req)
        .await
        .map_err(|e| EdgeError::ControlUnavailable(e.to_string()))?;
    // Every answer of the control worker carries the edge's mark (`host::harden`); one without
    // it came from the platform in its place (no such worker, an uncaught exception).
    if header_of(&res, crate::traffic::proxy::EDGE_HEADER).is_none() {
        return Err(EdgeError::ControlUnavailable(format!(
            "answered {} without the edge's mark",
            res.status_code()
        )));
    }
    let committed = header_of(&res, plane::VERSION_HEADER);
    if plane::takes_in(
        committed.as_deref(),
        crate::host::flags::active_version().as_deref(),
    ) {
        if let Err(e) = crate::host::flags::check_now(env, config).await {
            worker::console_error!("could not take in the new version at once: {e}");
        }
    }
    // A fetched response's headers are immutable: a copy, without the hint meant for us; the
    // edge adds its own headers on the way out.
    let headers = web_sys::Headers::new_with_headers(&res.headers().0)
        .map_err(|e| internal(worker::Error::from(e)))?;
    headers
        .delete(plane::VERSION_HEADER)
        .map_err(|e| internal(worker::Error::from(e)))?;
    Ok(res.with_headers(Headers(headers)))
}

/// A response header, `None` when absent or unreadable.
fn header_of(res: &Response, name: &str) -> Option<String> {
    res.headers().get(name).ok().flatten()
}

/// Runs the control worker's cron handler now (the request worker has no cron trigger of its
/// own; this is what `wrangler dev --test-scheduled`'s `/__scheduled` reaches, since only the
/// first worker of a `wrangler dev` answers on its port).
pub(crate) async fn scheduled(env: &Env, cron: String) -> Result<(), EdgeError> {
    let control = env.service(BINDING).map_err(unbound)?;
    crate::host::measure::flush_or_warn(env).await;
    let fetcher: &JsValue = control.as_ref();
    let run = js_sys::Reflect::get(fetcher, &"scheduled".into())
        .ok()
        .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
        .ok_or_else(|| unbound("the binding has no scheduled()"))?;
    let options = js_sys::Object::new();
    js_sys::Reflect::set(&options, &"cron".into(), &cron.into())
        .map_err(|e| unbound(format!("{e:?}")))?;
    // `Reflect.apply`, not `run.call(…)`: on a service binding every property is an RPC stub,
    // `call` included, which would send the binding itself to the other side.
    let promise = js_sys::Reflect::apply(&run, fetcher, &js_sys::Array::of1(&options))
        .map_err(|e| unbound(format!("{e:?}")))?;
    wasm_bindgen_futures::JsFuture::from(js_sys::Promise::from(promise))
        .await
        .map_err(|e| unbound(format!("{e:?}")))?;
    Ok(())
}
