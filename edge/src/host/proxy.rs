//! Origin proxy: forwards the visitor's request, gives the visitor a stable identity, and
//! injects the flag bootstrap into HTML on the way back.

use std::cell::RefCell;
use std::rc::Rc;

use futures_util::{stream, StreamExt};
use worker::wasm_bindgen::JsValue;
use worker::{
    Context, Env, Fetch, Headers, Method, Request, RequestInit, RequestRedirect, Response,
};

use super::{flags, header, internal, now_ms, random_id};
use crate::bootstrap::{self, Injector};
use crate::config::Config;
use crate::error::EdgeError;
use crate::{identity, proxy, split};

thread_local! {
    /// Per-isolate proxy counters (requests per origin, stable retries), for the status
    /// endpoint until the metrics pipeline of issue #7 exists.
    static COUNTERS: RefCell<ProxyCounters> = RefCell::new(ProxyCounters::default());
}

/// Requests per origin name and retries on the stable origin, since this isolate started.
#[derive(Debug, Default, serde::Serialize)]
pub struct ProxyCounters {
    pub requests: std::collections::BTreeMap<String, u64>,
    pub retries: u64,
}

/// A copy of the counters.
pub fn counters() -> serde_json::Value {
    COUNTERS.with(|c| serde_json::to_value(&*c.borrow()).unwrap_or_default())
}

/// Proxies a visitor's request to the origin the route table picks for them.
pub async fn handle(
    req: Request,
    env: &Env,
    config: &Config,
    ctx: &Context,
) -> Result<Response, EdgeError> {
    let secure = req.url().map(|u| u.scheme() == "https").unwrap_or(false);
    let visitor = identity::identify(&config.identity, |n| header(&req, n), secure, random_id);
    let method = req.method();
    let path = req.path();
    let table = flags::route_table(env, config).await?;
    // A missing or broken flag set must not stop traffic: the stable origin serves.
    let active = flags::current(env, config, Some(ctx)).await.ok();
    let context = visitor_context(visitor.key.as_deref());
    let now_secs = now_ms() / 1000;
    let choice = split::choose(&table, &path, |flag| {
        let eval = active.as_ref()?.set.evaluate(flag, &context, now_secs);
        let variant = eval.variant?.to_owned();
        let origin = eval
            .value
            .and_then(|v| v.as_str())
            .map_or_else(|| variant.clone(), str::to_owned);
        Some((variant, origin))
    })
    .ok_or_else(|| EdgeError::Config("the route table names no usable origin".into()))?;

    let request_id = random_id().unwrap_or_default();
    let mut extra = vec![("x-edgeflags-request-id", request_id.clone())];
    if let Some((flag, variant)) = &choice.decided_by {
        extra.push(("x-edgeflags-variants", format!("{flag}={variant}")));
    }
    // Keep a copy for a retry before the body is consumed (only bodiless methods retry).
    let retry = choice.retry_on_stable && split::retryable_method(method.as_ref());
    let spare = if retry { req.clone().ok() } else { None };
    let first = forward(req, choice.url, &extra).await;
    let failed = split::failed(first.as_ref().ok().map(Response::status_code));
    let (res, served_by, retried) = match (failed, spare, table.stable_url()) {
        (true, Some(spare), Some(stable)) => match forward(spare, stable, &extra).await {
            Ok(res) => (Ok(res), table.stable.clone(), true),
            Err(_) => (first, choice.name.clone(), true),
        },
        _ => (first, choice.name.clone(), false),
    };
    COUNTERS.with(|c| {
        let mut c = c.borrow_mut();
        *c.requests.entry(served_by.clone()).or_default() += 1;
        c.retries += u64::from(retried);
    });
    let res = res?;
    let mut res = if config.bootstrap {
        with_bootstrap(res, &method, visitor.key.as_deref(), env, config, ctx).await?
    } else {
        res
    };
    let h = res.headers_mut();
    h.set("x-edgeflags-origin", &served_by).map_err(internal)?;
    h.set("x-edgeflags-request-id", &request_id)
        .map_err(internal)?;
    if retried {
        h.set(
            "x-edgeflags-retried",
            &format!("{}->{}", choice.name, table.stable),
        )
        .map_err(internal)?;
    }
    if let Some(cookie) = visitor.set_cookie {
        h.append("set-cookie", &cookie).map_err(internal)?;
    }
    Ok(res)
}

/// The evaluation context the edge builds for a visitor browsing through it.
fn visitor_context(key: Option<&str>) -> edgeflags_core::Context {
    let mut context = serde_json::Map::new();
    if let Some(key) = key {
        context.insert(
            "targetingKey".into(),
            serde_json::Value::String(key.to_owned()),
        );
    }
    edgeflags_core::Context::from_map(context)
}

/// Forwards the request to `origin` and returns its response, minus hop-by-hop headers.
pub async fn forward(
    req: Request,
    origin: &str,
    extra: &[(&str, String)],
) -> Result<Response, EdgeError> {
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
    for (name, value) in extra {
        headers.set(name, value).map_err(internal)?;
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
        if proxy::forward_response_header(&name, &tokens)
            && !crate::security::STRIPPED_RESPONSE_HEADERS.contains(&name.as_str())
        {
            out.append(&name, &value).map_err(internal)?;
        }
    }
    Ok(res.with_headers(out))
}

/// Streams an HTML response through the bootstrap injector, when it qualifies. Any problem
/// with flags leaves the page as the origin sent it.
async fn with_bootstrap(
    mut res: Response,
    method: &Method,
    visitor_key: Option<&str>,
    env: &Env,
    config: &Config,
    ctx: &Context,
) -> Result<Response, EdgeError> {
    let h = res.headers();
    let get = |n: &str| h.get(n).ok().flatten();
    if !bootstrap::should_inject(
        method.as_ref(),
        res.status_code(),
        get("content-type").as_deref(),
        get("cache-control").as_deref(),
    ) {
        return Ok(res);
    }
    let Ok(active) = flags::current(env, config, Some(ctx)).await else {
        return Ok(res);
    };
    let context = visitor_context(visitor_key);
    let bulk = active.set.evaluate_all(&context, now_ms() / 1000);
    let mut payload = serde_json::to_value(&bulk).map_err(internal)?;
    payload["etag"] = serde_json::Value::String(crate::ofrep::bulk_etag(&active.version, &context));
    payload["targetingKey"] = serde_json::json!(visitor_key);
    let script = bootstrap::script_element(&payload.to_string());

    let headers = Headers::new();
    for (name, value) in res.headers().entries() {
        match name.as_str() {
            "content-length" => {}
            "etag" => headers
                .set("etag", &bootstrap::weaken_etag(&value))
                .map_err(internal)?,
            "cache-control" => {}
            _ => headers.append(&name, &value).map_err(internal)?,
        }
    }
    headers
        .set(
            "cache-control",
            &bootstrap::personalised_cache_control(get("cache-control").as_deref()),
        )
        .map_err(internal)?;
    let status = res.status_code();
    let body = res.stream().map_err(internal)?;
    let injector = Rc::new(RefCell::new(Injector::new(
        script,
        bootstrap::DEFAULT_LIMIT,
    )));
    let tail = injector.clone();
    let chunks = body
        .map(move |chunk| chunk.map(|c| injector.borrow_mut().push(&c)))
        .chain(stream::once(async move { Ok(tail.borrow_mut().finish()) }))
        .filter(|r| std::future::ready(!matches!(r, Ok(v) if v.is_empty())));
    Ok(Response::from_stream(chunks)
        .map_err(internal)?
        .with_status(status)
        .with_headers(headers))
}
