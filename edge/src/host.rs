//! Worker host glue (wasm32 only): turns policy decisions into Workers API calls — KV reads,
//! origin fetches, JSON responses. Nothing here decides anything on its own.

use worker::wasm_bindgen::JsValue;
use worker::{Env, Fetch, Headers, Method, Request, RequestInit, RequestRedirect, Response};

use crate::config::Config;
use crate::error::EdgeError;
use crate::{flagstore, proxy};

/// Name of the KV binding holding flag sets (wrangler.toml `[[kv_namespaces]]`).
pub const FLAGS_BINDING: &str = "FLAGS";

fn internal(e: impl std::fmt::Display) -> EdgeError {
    EdgeError::Internal(e.to_string())
}

/// A JSON response with status 200.
pub fn json<T: serde::Serialize>(value: &T) -> Result<Response, EdgeError> {
    let res = Response::from_json(value).map_err(internal)?;
    res.headers()
        .set("cache-control", "no-store")
        .map_err(internal)?;
    Ok(res)
}

/// The response for an error: its status and OFREP-style JSON body.
pub fn error_response(err: &EdgeError) -> worker::Result<Response> {
    let res = Response::from_json(&err.body())?.with_status(err.status());
    res.headers().set("cache-control", "no-store")?;
    Ok(res)
}

/// Adds the edge's proof-of-passage header to a response.
pub fn stamp(mut res: Response) -> worker::Result<Response> {
    res.headers_mut()
        .set(proxy::EDGE_HEADER, proxy::EDGE_HEADER_VALUE)?;
    Ok(res)
}

/// `GET {prefix}/status`: what the worker finds in KV.
pub async fn status(env: &Env, config: &Config) -> Result<Response, EdgeError> {
    let kv = env.kv(FLAGS_BINDING).map_err(internal)?;
    let stored = kv.get(&config.flags_key).text().await.map_err(internal)?;
    let flag_set = flagstore::inspect(&config.flags_key, stored.as_deref());
    json(&serde_json::json!({ "edge": proxy::EDGE_HEADER_VALUE, "flagSet": flag_set }))
}

/// Forwards the request to `origin` and returns its response, minus hop-by-hop headers.
pub async fn proxy(req: Request, origin: &str) -> Result<Response, EdgeError> {
    let url = req.url().map_err(internal)?;
    let path_and_query = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    let target = proxy::upstream_url(origin, &path_and_query);

    let incoming = req.headers();
    let tokens = proxy::connection_tokens(incoming.get("connection").ok().flatten().as_deref());
    let headers = Headers::new();
    for (name, value) in incoming.entries() {
        if proxy::forward_request_header(&name, &tokens) {
            headers.append(&name, &value).map_err(internal)?;
        }
    }
    let client_ip = incoming.get("cf-connecting-ip").ok().flatten();
    let host = incoming.get("host").ok().flatten();
    let host = host.as_deref().or(url.host_str());
    for (name, value) in proxy::forwarded_headers(host, url.scheme(), client_ip.as_deref()) {
        headers.set(name, &value).map_err(internal)?;
    }

    let method = req.method();
    let mut init = RequestInit::new();
    init.with_method(method.clone())
        .with_headers(headers)
        .with_redirect(RequestRedirect::Manual);
    if !matches!(method, Method::Get | Method::Head) {
        init.with_body(req.inner().body().map(JsValue::from));
    }
    let upstream = Request::new_with_init(&target, &init).map_err(internal)?;
    let res = Fetch::Request(upstream)
        .send()
        .await
        .map_err(|e| EdgeError::OriginUnreachable(e.to_string()))?;

    // A fetched response's headers are immutable: copy what may pass into a fresh set.
    let tokens =
        proxy::connection_tokens(res.headers().get("connection").ok().flatten().as_deref());
    let out = Headers::new();
    for (name, value) in res.headers().entries() {
        if proxy::forward_response_header(&name, &tokens) {
            out.append(&name, &value).map_err(internal)?;
        }
    }
    Ok(res.with_headers(out))
}
