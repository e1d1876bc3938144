//! The proxied request, in the order it happens — a newcomer reads this function top to
//! bottom and follows each step into one module, never back here:
//!
//! 1. **route**: the route table (`host/flags/mod.rs`, refreshed per isolate);
//! 2. **identify**: the visitor (`host/jwt.rs` → `crate::traffic::identity`) and the flag set;
//! 3. **choose origin**: `crate::traffic::split::choose` with the visitor's flag evaluation;
//! 4. **cache lookup → origin fetch → store**: `host/request/cache.rs` (decisions in
//!    `crate::httpcache`), which sends through `host/request/origin.rs`;
//! 5. **measure**: `crate::traffic::proxy::request_record` → `host/measure/mod.rs`;
//! 6. **bootstrap**: the visitor's flags streamed into HTML (`crate::traffic::bootstrap`);
//! 7. **harden**: the edge's response headers here, security headers in `lib.rs`
//!    (`host::harden`).

use std::cell::RefCell;
use std::rc::Rc;

use edgeflags_core::ofrep::Bootstrap;
use futures_util::{stream, StreamExt};
use worker::{Context, Env, Method, Request, Response};

use crate::config::Config;
use crate::error::EdgeError;
use crate::flags::live::Active;
use crate::host::request::cache::{self, header_list, headers_of, Served};
use crate::host::request::origin::{Outgoing, Upstream};
use crate::host::{flags, internal, now_ms, random_id};
use crate::httpcache;
use crate::measure::metrics;
use crate::traffic::bootstrap::{self, Injector};
use crate::traffic::proxy::ProxyCounters;
use crate::traffic::{identity, proxy, split};

/// Per-isolate proxy counters (requests per origin, stable retries) for `/__edge/status`:
/// what this one isolate did, next to the deployment-wide metrics of the metrics store.
fn counts<R>(f: impl FnOnce(&RefCell<ProxyCounters>) -> R) -> R {
    crate::host::isolate::with(|i| f(&i.proxy))
}

/// Counts an answered request for the status endpoint.
pub(crate) fn count(origin: &str, retried: bool) {
    counts(|c| c.borrow_mut().count(origin, retried));
}

/// Counts an answered request, one of the fast path's (`host/request/fast.rs`).
#[cfg(not(feature = "control"))]
pub(crate) fn count_fast(origin: &str, retried: bool) {
    counts(|c| {
        let mut c = c.borrow_mut();
        c.count(origin, retried);
        c.fast_path += 1;
    });
}

/// A copy of the counters.
pub(crate) fn counters() -> serde_json::Value {
    counts(|c| serde_json::to_value(&*c.borrow()).unwrap_or_default())
}

/// Proxies a visitor's request to the origin the route table picks for them, through the
/// per-variant cache for GET/HEAD.
pub(crate) async fn handle(
    req: Request,
    env: &Env,
    config: &Config,
    ctx: &Context,
) -> Result<Response, EdgeError> {
    let started_ms = now_ms();
    let url = req.url().map_err(internal)?;
    let method = req.method();
    let path = req.path();

    // 1. Route and 2. identify, concurrently: in a fresh isolate (or when REFRESH_SECONDS has
    // passed) the route table is a KV read, the flag set a call to the writer and a JWT
    // visitor perhaps a key fetch; waiting for them one after another made a cold start pay
    // their sum. A missing or broken flag set must not stop traffic: the stable origin serves.
    let (table, visitor, active) = futures_util::future::join3(
        flags::route_table(env, config),
        crate::host::jwt::visitor(&req, env, config, true),
        flags::current(env, config),
    )
    .await;
    let table = table?;
    let active = active.ok();
    let context = edgeflags_core::Context::for_visitor(visitor.key.as_deref());
    // What this visitor's bootstrapped page depends on besides the page itself.
    let flags_tag = active
        .as_ref()
        .filter(|_| config.bootstrap)
        .map(|a| crate::flags::ofrep::flags_tag(&a.version, &context));

    // 3. Choose the origin.
    let now_secs = now_ms() / 1000;
    let choice = split::choose(&table, &path, |flag| {
        let eval = active.as_ref()?.set.evaluate(flag, &context, now_secs);
        split::variant_origin(eval.variant, eval.value)
    })
    .ok_or_else(|| EdgeError::Config("the route table names no usable origin".into()))?;

    let request_id = random_id().unwrap_or_default();
    let decided_by = choice
        .decided_by
        .as_ref()
        .map(|(f, v)| (f.as_str(), v.as_str()));
    let extra = proxy::origin_request_headers(&request_id, decided_by);
    let mut req_headers = header_list(req.headers());
    let mut out = Outgoing::from_request(&req, &url, &req_headers, extra)?;
    // Validators of a bootstrapped page hold only while the visitor's flags are unchanged.
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
    let policy = httpcache::request_policy(method.as_ref(), &req_headers);

    // 4. Cache lookup → origin fetch → store (an unsafe method passes, and may invalidate).
    let served = if policy.cacheable() {
        let variants: Vec<(&str, &str)> = decided_by.into_iter().collect();
        let (normalised, key) = httpcache::request_key(&url, &variants);
        let purged_after = flags::purged_after(&normalised, url.path());
        cache::serve(ctx, key, policy, req_headers, purged_after, upstream).await
    } else {
        let targets = (&*table, active.as_deref());
        cache::pass(ctx, &req, &url, upstream, targets).await
    };

    // 5. Measure, before any error leaves, so a failed origin is counted.
    if crate::host::measure::enabled(env) {
        let ended = proxy::Ended {
            decided_by,
            chosen: &choice.name,
            served: served.as_ref().ok().map(|s| (s.origin.as_str(), &s.cache)),
            chosen_failures: primary_failures.get(),
            latency_ms: now_ms().saturating_sub(started_ms) as f64,
        };
        let record = proxy::request_record(&ended, active.as_deref());
        // Only a vouched visitor is an experiment unit (issue 14).
        let unit = identity::counted_unit(
            visitor.key.as_deref(),
            &visitor,
            false,
            &config.identity_keys,
        )
        .map(metrics::unit_id);
        crate::host::measure::record_request(env, ctx, &record, unit.as_deref());
    }
    let Served {
        response,
        origin,
        retried,
        cache: cache_status,
    } = served?;
    count(&origin, retried);

    // 6. Bootstrap, after the cache, so stored objects stay variant-pure.
    let mut res = match (&flags_tag, &active) {
        (Some(tag), Some(active)) => {
            with_bootstrap(response, &method, visitor.key.as_deref(), tag, active)?
        }
        _ => response,
    };

    // 7. Harden: the edge's own headers (security headers follow in `host::harden`).
    if res.status_code() == 304 {
        if let Some(page) = &confirmed {
            res.headers_mut().set("etag", page).map_err(internal)?;
        }
    }
    let upstream = res.headers().get("cache-status").ok().flatten();
    let edits = proxy::answer_edits(proxy::Answered {
        cache: &cache_status,
        upstream: upstream.as_deref(),
        origin,
        request_id,
        retried: proxy::retried_header(retried, &choice.name, &table.stable),
        set_cookie: visitor.set_cookie,
    });
    // One call into JS for all of them (see host/request/headers_js.rs).
    crate::host::request::headers_js::apply(&res.headers_mut().0, &edits)?;
    Ok(res)
}

/// Streams an HTML response through the bootstrap injector, when it qualifies. Any problem
/// with flags leaves the page as the origin sent it.
pub(crate) fn with_bootstrap(
    res: Response,
    method: &Method,
    visitor_key: Option<&str>,
    flags_tag: &str,
    active: &Active,
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
    let payload = Bootstrap::encode(&active.set, &active.version, visitor_key, now_ms() / 1000)
        .ok_or_else(|| EdgeError::Internal("the bootstrap payload did not serialize".into()))?;
    let script = edgeflags_core::ofrep::bootstrap_element(&payload);

    // The page's validator covers its flags too (see bootstrap::page_etag).
    let headers = headers_of(&bootstrap::page_headers(&header_list(h), flags_tag))?;
    let status = res.status_code();
    let mut res = res;
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
