//! Origin proxy: forwards the visitor's request, gives the visitor a stable identity, and
//! injects the flag bootstrap into HTML on the way back.

use std::cell::RefCell;
use std::rc::Rc;

use futures_util::{stream, StreamExt};
use worker::wasm_bindgen::JsValue;
use worker::{
    Context, Env, Fetch, Headers, Method, Request, RequestInit, RequestRedirect, Response,
};

use super::{flags, internal, now_ms, random_id};
use crate::bootstrap::{self, Injector};
use crate::config::Config;
use crate::error::EdgeError;
use crate::{httpcache, metrics, proxy, split};

thread_local! {
    /// Per-isolate proxy counters (requests per origin, stable retries) for `/__edge/status`:
    /// what this one isolate did, next to the deployment-wide metrics of the metrics store.
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

/// Proxies a visitor's request to the origin the route table picks for them, through the
/// per-variant cache for GET/HEAD.
pub async fn handle(
    req: Request,
    env: &Env,
    config: &Config,
    ctx: &Context,
) -> Result<Response, EdgeError> {
    let started_ms = now_ms();
    let url = req.url().map_err(internal)?;
    let visitor = super::jwt::visitor(&req, env, config, true).await;
    let method = req.method();
    let path = req.path();
    let table = flags::route_table(env, config).await?;
    // A missing or broken flag set must not stop traffic: the stable origin serves.
    let active = flags::current(env, config).await.ok();
    let context = visitor_context(visitor.key.as_deref());
    // What this visitor's bootstrapped page depends on besides the page itself.
    let flags_tag = active
        .as_ref()
        .filter(|_| config.bootstrap)
        .map(|a| crate::ofrep::flags_tag(&a.version, &context));
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
    let mut extra = vec![("x-edgeflags-request-id".to_owned(), request_id.clone())];
    if let Some((flag, variant)) = &choice.decided_by {
        extra.push((
            "x-edgeflags-variants".to_owned(),
            format!("{flag}={variant}"),
        ));
    }
    let mut out = Outgoing::from_request(&req, &url, extra)?;
    // Validators of a bootstrapped page hold only while the visitor's flags are unchanged.
    let mut req_headers = super::cache::header_list(req.headers());
    let mut confirmed = None;
    // Only a conditional request has anything to rewrite (most requests are not: no copies).
    let conditional = req_headers
        .iter()
        .any(|(n, _)| n == "if-none-match" || n == "if-modified-since");
    if let Some(tag) = flags_tag.as_ref().filter(|_| conditional) {
        let conds = bootstrap::conditionals(&req_headers, tag);
        req_headers = conds.headers;
        confirmed = conds.confirmed;
        out.headers = bootstrap::conditionals(&out.headers, tag).headers;
    }
    let upstream = Upstream {
        out,
        primary: (choice.name.clone(), choice.url.to_owned()),
        stable: table
            .stable_url()
            .map(|u| (table.stable.clone(), u.to_owned())),
        retry: choice.retry_on_stable && split::retryable_method(method.as_ref()),
        primary_failures: Rc::default(),
    };
    let primary_failures = upstream.primary_failures.clone();
    let variants: Vec<(String, String)> = choice.decided_by.iter().cloned().collect();
    let policy = httpcache::request_policy(method.as_ref(), &req_headers);

    let served = async {
        if policy.cacheable() {
            let key = httpcache::cache_key(
                &httpcache::normalise_url(url.as_str()),
                &variants
                    .iter()
                    .map(|(f, v)| (f.as_str(), v.as_str()))
                    .collect::<Vec<_>>(),
            );
            let purged_after = flags::purged_after(&url);
            super::cache::serve(ctx, key, policy, req_headers, purged_after, upstream).await
        } else {
            let body = req.inner().body().map(JsValue::from);
            let fetched = upstream.fetch(body, &[]).await;
            let status = fetched.result.as_ref().ok().map(Response::status_code);
            if status.is_some_and(|s| httpcache::invalidates(method.as_ref(), s)) {
                let res_headers = fetched
                    .result
                    .as_ref()
                    .map(|r| super::cache::header_list(r.headers()))
                    .unwrap_or_default();
                super::cache::invalidate(
                    ctx,
                    url.as_str(),
                    &res_headers,
                    &table,
                    active.as_deref(),
                );
            }
            Ok(super::cache::Served {
                response: fetched.result?,
                origin: fetched.served_by,
                retried: fetched.retried,
                cache: httpcache::CacheStatus::method_bypass(status),
            })
        }
    }
    .await;
    // Measured before any error leaves, so a failed origin is counted.
    if super::metrics::enabled(env) {
        let decided_by = choice
            .decided_by
            .as_ref()
            .map(|(f, v)| (f.as_str(), v.as_str()));
        let epoch = match (&decided_by, &active) {
            (Some((flag, _)), Some(a)) => a.epoch(flag),
            _ => "",
        };
        // Only a vouched visitor is an experiment unit (issue 14).
        let unit = visitor
            .key
            .as_deref()
            .filter(|_| visitor.vouched || !config.identity_keys.signing())
            .map(metrics::unit_id);
        let (origin, cache) = match &served {
            Ok(served) => (
                served.origin.as_str(),
                metrics::cache_outcome(&served.cache),
            ),
            Err(_) => (choice.name.as_str(), metrics::CacheOutcome::NotApplicable),
        };
        let record = metrics::RequestRecord {
            decided_by,
            epoch,
            origin,
            origin_error: primary_failures.get() > 0 || served.is_err(),
            cache,
            latency_ms: now_ms().saturating_sub(started_ms) as f64,
        };
        super::metrics::record_request(env, ctx, &record, unit.as_deref());
    }
    let super::cache::Served {
        response: res,
        origin: served_by,
        retried,
        cache: cache_status,
    } = served?;
    COUNTERS.with(|c| {
        let mut c = c.borrow_mut();
        *c.requests.entry(served_by.clone()).or_default() += 1;
        c.retries += u64::from(retried);
    });
    // Bootstrap injection happens after the cache, so stored objects stay variant-pure.
    let mut res = match &flags_tag {
        Some(tag) => with_bootstrap(res, &method, visitor.key.as_deref(), tag, env, config).await?,
        None => res,
    };
    if res.status_code() == 304 {
        if let Some(page) = &confirmed {
            res.headers_mut().set("etag", page).map_err(internal)?;
        }
    }
    let h = res.headers_mut();
    // Addressed to surrogates (us), never to the visitor; stored entries keep it.
    h.delete("surrogate-control").map_err(internal)?;
    h.set("cache-status", &cache_status.header_value())
        .map_err(internal)?;
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

/// A request to an origin, kept as parts so a bodiless one can be sent again (retry on the
/// stable origin, background revalidation).
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub method: Method,
    pub path_and_query: String,
    pub headers: Vec<(String, String)>,
}

impl Outgoing {
    /// The origin-bound form of a visitor's request: forwardable headers plus the forwarding
    /// headers and `extra`.
    pub fn from_request(
        req: &Request,
        url: &worker::Url,
        extra: Vec<(String, String)>,
    ) -> Result<Self, EdgeError> {
        let path_and_query = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        let incoming = req.headers();
        let tokens = proxy::connection_tokens(incoming.get("connection").ok().flatten().as_deref());
        let mut headers: Vec<(String, String)> = incoming
            .entries()
            .filter(|(name, _)| proxy::forward_request_header(name, &tokens))
            .collect();
        let client_ip = incoming.get("cf-connecting-ip").ok().flatten();
        let host = incoming.get("host").ok().flatten();
        let host = host.as_deref().or(url.host_str());
        for (name, value) in proxy::forwarded_headers(host, url.scheme(), client_ip.as_deref()) {
            headers.retain(|(n, _)| n != name);
            headers.push((name.to_owned(), value));
        }
        // Tell the origin a surrogate is here (Edge Architecture 1.0), so it can address
        // `Surrogate-Control` to us.
        let capability = incoming.get("surrogate-capability").ok().flatten();
        headers.retain(|(n, _)| n != "surrogate-capability");
        headers.push((
            "surrogate-capability".to_owned(),
            httpcache::surrogate_capability(capability.as_deref()),
        ));
        headers.extend(extra);
        Ok(Self {
            method: req.method(),
            path_and_query,
            headers,
        })
    }

    /// Sends it to `origin`. `replace` headers replace the visitor's of the same name (and
    /// conditional ones replace all of the visitor's `If-*` validators).
    pub async fn send(
        &self,
        origin: &str,
        body: Option<JsValue>,
        replace: &[(String, String)],
    ) -> Result<Response, EdgeError> {
        let headers = Headers::new();
        let conditional = replace.iter().any(|(n, _)| n.starts_with("if-"));
        for (name, value) in &self.headers {
            let replaced =
                replace.iter().any(|(n, _)| n == name) || (conditional && name.starts_with("if-"));
            if !replaced {
                headers.append(name, value).map_err(internal)?;
            }
        }
        for (name, value) in replace {
            headers.set(name, value).map_err(internal)?;
        }
        let mut init = RequestInit::new();
        init.with_method(self.method.clone())
            .with_headers(headers)
            .with_redirect(RequestRedirect::Manual);
        if body.is_some() {
            init.with_body(body);
        }
        let target = proxy::upstream_url(origin, &self.path_and_query);
        let upstream = Request::new_with_init(&target, &init).map_err(internal)?;
        let res = Fetch::Request(upstream)
            .send()
            .await
            .map_err(|e| EdgeError::OriginUnreachable(e.to_string()))?;
        // `fetch` hands back any status the origin wrote (the http-cache-tests origin sends
        // 999), but a JS `Response` can only be *constructed* with 200..=599: workers-rs
        // builds one whenever the response is cloned (cache tee) or returned, and panics on
        // the RangeError. A panic aborts the wasm instance and strands every other in-flight
        // request of the isolate ("hung"), so such an answer never leaves this function.
        if !proxy::sendable_status(res.status_code()) {
            return Err(EdgeError::OriginUnreachable(format!(
                "origin answered with status {}",
                res.status_code()
            )));
        }
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
}

/// Where a request goes: the chosen origin, and the stable one for a retry.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub out: Outgoing,
    pub primary: (String, String),
    pub stable: Option<(String, String)>,
    pub retry: bool,
    /// Failures (connect error or 5xx) of the chosen origin, counted for the metrics even
    /// when the retry on the stable origin saved the request.
    pub primary_failures: Rc<std::cell::Cell<u32>>,
}

/// What an upstream fetch gave.
#[derive(Debug)]
pub struct Fetched {
    pub result: Result<Response, EdgeError>,
    pub served_by: String,
    pub retried: bool,
}

impl Upstream {
    /// Sends to the chosen origin; a failed retryable request (connect error or 5xx) goes
    /// once to the stable origin.
    pub async fn fetch(&self, body: Option<JsValue>, replace: &[(String, String)]) -> Fetched {
        let first = self.out.send(&self.primary.1, body, replace).await;
        let failed = split::failed(first.as_ref().ok().map(Response::status_code));
        if failed {
            self.primary_failures.set(self.primary_failures.get() + 1);
        }
        match (&self.stable, failed && self.retry) {
            (Some((name, url)), true) => {
                match self.out.send(url, None, &unconditional(replace)).await {
                    Ok(res) => Fetched {
                        result: Ok(res),
                        served_by: name.clone(),
                        retried: true,
                    },
                    Err(_) => Fetched {
                        result: first,
                        served_by: self.primary.0.clone(),
                        retried: true,
                    },
                }
            }
            _ => Fetched {
                result: first,
                served_by: self.primary.0.clone(),
                retried: false,
            },
        }
    }
}

/// `replace` without the validators the cache added: they belong to the chosen variant's
/// entry, not to the stable origin's representation, so a retry goes without them.
fn unconditional(replace: &[(String, String)]) -> Vec<(String, String)> {
    replace
        .iter()
        .filter(|(n, _)| !n.starts_with("if-"))
        .cloned()
        .collect()
}

/// Streams an HTML response through the bootstrap injector, when it qualifies. Any problem
/// with flags leaves the page as the origin sent it.
async fn with_bootstrap(
    mut res: Response,
    method: &Method,
    visitor_key: Option<&str>,
    flags_tag: &str,
    env: &Env,
    config: &Config,
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
    let Ok(active) = flags::current(env, config).await else {
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
            // The page's validator covers its flags too (see bootstrap::page_etag).
            "content-length" | "etag" | "last-modified" | "cache-control" => {}
            _ => headers.append(&name, &value).map_err(internal)?,
        }
    }
    let page_etag = bootstrap::page_etag(
        get("etag").as_deref(),
        get("last-modified").as_deref(),
        flags_tag,
    );
    if let Some(etag) = page_etag {
        headers.set("etag", &etag).map_err(internal)?;
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
