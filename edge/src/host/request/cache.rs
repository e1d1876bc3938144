//! Per-variant response cache over the Workers Cache API. Every decision is made by
//! [`crate::httpcache`] (RFC 9111/5861/9211, tested natively); this module only matches,
//! puts, deletes and builds responses.
//!
//! Entries are stored under synthetic keys (normalised URL + the route's flag variants, never
//! the cookie) as a 200 with wrapped headers: the real status and the origin's
//! `Cache-Control` travel in `x-ef-*` metadata, and the stored `Cache-Control` is only the
//! Cache API's retention time. The Cache API is per location: a delete or purge here does not
//! reach other locations, which is why purges are also recorded in KV (see `flags.rs`).

use worker::wasm_bindgen::JsValue;
use worker::{Cache, Context, Headers, Request, Response, ResponseBody};

use crate::error::EdgeError;
use crate::host::request::origin::{Fetched, Upstream};
use crate::host::{internal, now_ms};
use crate::httpcache::{
    self, CacheStatus, Lookup, OnError, RequestPolicy, META_STATUS, META_STORED_AT,
};
use crate::traffic::split::{RouteTable, Target};

/// Keys this isolate passes without a lookup (see [`crate::traffic::passmemory`]; `host/isolate.rs`).
fn pass_memory<R>(
    f: impl FnOnce(&std::cell::RefCell<crate::traffic::passmemory::PassMemory>) -> R,
) -> R {
    crate::host::isolate::with(|i| f(&i.pass))
}

/// Whether this isolate passes `key` without a lookup ([`crate::traffic::passmemory`]).
#[cfg(not(feature = "control"))]
pub(crate) fn skips_lookup(key: &str, now: u64) -> bool {
    pass_memory(|p| p.borrow().skip_lookup(key, now))
}

/// Remembers what the origin's answer for `key` said about storing it.
#[cfg(not(feature = "control"))]
pub(crate) fn learn(key: &str, plan: &Result<httpcache::StorePlan, httpcache::Bypass>, now: u64) {
    pass_memory(|p| p.borrow_mut().learn(key, plan, now));
}

/// What answered a request: the response, the origin that produced it (`cache` when the
/// entry does not say), whether the stable origin answered a retry, and what the cache did —
/// a value, rendered to the `Cache-Status` header once by the proxy and read as such by the
/// metrics.
#[derive(Debug)]
pub(crate) struct Served {
    pub(crate) response: Response,
    pub(crate) origin: String,
    pub(crate) retried: bool,
    pub(crate) cache: CacheStatus,
}

/// A Workers header map as a lowercase-name list.
pub(crate) fn header_list(h: &Headers) -> Vec<(String, String)> {
    crate::host::request::headers_js::read(&h.0)
}

/// `want` as a Workers header map, made from `base` (whose list is `have`): a native copy and
/// the edits between the two lists in one call, instead of one `append` per header (on a HIT,
/// rebuilding the stored response's headers one by one was ~28 µs of glue per request:
/// bench/profile-edge.mjs).
fn headers_from(
    base: &Headers,
    have: &[(String, String)],
    want: &[(String, String)],
) -> Result<Headers, EdgeError> {
    let copy = web_sys::Headers::new_with_headers(&base.0)
        .map_err(|e| internal(worker::Error::from(e)))?;
    crate::host::request::headers_js::apply(
        &copy,
        &crate::traffic::header_edits::header_edits(have, want),
    )?;
    Ok(Headers(copy))
}

/// A header list as a Workers header map.
pub(crate) fn headers_of(list: &[(String, String)]) -> Result<Headers, EdgeError> {
    let h = Headers::new();
    for (n, v) in list {
        h.append(n, v).map_err(internal)?;
    }
    Ok(h)
}

fn get<'a>(list: &'a [(String, String)], name: &str) -> Option<&'a str> {
    list.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Answers a GET/HEAD through the cache.
pub(crate) async fn serve(
    ctx: &Context,
    key: String,
    policy: RequestPolicy,
    req: Vec<(String, String)>,
    purged_after: Option<u64>,
    upstream: Upstream,
) -> Result<Served, EdgeError> {
    let cache = Cache::default();
    let now = now_ms();
    let head = matches!(policy.method, httpcache::MethodClass::Head);
    // A key whose last answer the origin made uncacheable is not looked up (it would miss).
    let pass = !policy.only_if_cached && pass_memory(|p| p.borrow().skip_lookup(&key, now));
    let mut stored = if pass {
        None
    } else {
        cache.get(key.as_str(), false).await.map_err(internal)?
    };
    let mut stored_h = stored.as_ref().map(|r| header_list(r.headers()));
    // Purged (here or, through KV, anywhere) since it was stored: as if absent.
    let stored_at = stored_h
        .as_deref()
        .and_then(|h| get(h, META_STORED_AT))
        .and_then(|v| v.parse::<u64>().ok());
    if let (Some(at), Some(purge)) = (stored_at, purged_after) {
        if at <= purge {
            stored = None;
            stored_h = None;
        }
    }
    let decision = httpcache::lookup(&policy, &req, stored_h.as_deref(), now);
    match (&decision, stored, stored_h) {
        (Lookup::Fresh { age, .. } | Lookup::Stale { age, .. }, Some(entry), Some(h)) => {
            Ok(Served {
                response: from_stored(entry, &h, *age, &policy, &req, head)?,
                origin: stored_origin(&h),
                retried: false,
                cache: answered(&decision),
            })
        }
        (
            Lookup::StaleWhileRevalidate {
                age, conditional, ..
            },
            Some(entry),
            Some(h),
        ) => {
            let response = from_stored(entry, &h, *age, &policy, &req, head)?;
            let (origin, cache) = (stored_origin(&h), answered(&decision));
            let (conditional, key2) = (conditional.clone(), key.clone());
            ctx.wait_until(async move {
                let _ = revalidate_in_background(key2, policy, req, h, conditional, upstream).await;
            });
            Ok(Served {
                response,
                origin,
                retried: false,
                cache,
            })
        }
        (Lookup::OnlyIfCachedMiss, _, _) => Ok(Served {
            response: Response::empty().map_err(internal)?.with_status(504),
            origin: "cache".into(),
            retried: false,
            cache: answered(&decision),
        }),
        (Lookup::Revalidate { conditional, .. }, Some(entry), Some(h)) => {
            let t0 = now_ms();
            let fetched = upstream.fetch(None, conditional).await;
            let t1 = now_ms();
            let origin_status = fetched.result.as_ref().ok().map(Response::status_code);
            // A 304 from the stable retry validates the stable origin's representation, not
            // this variant's entry: never refresh the entry with it.
            if origin_status == Some(304) && !fetched.retried {
                let not_modified = fetched.headers.clone();
                let stored_status = stored_status(&h);
                if let Some(rev) =
                    httpcache::after_304(&policy, &req, stored_status, &h, &not_modified, t0, t1)
                {
                    let cs = decision.forwarded_status(Some(304), Some(&rev.store));
                    let mut entry = entry;
                    if let Ok(plan) = &rev.store {
                        let copy = entry.cloned().map_err(internal)?;
                        put(
                            ctx,
                            &key,
                            copy.into_parts().1,
                            &plan.headers,
                            &fetched.served_by,
                        );
                    }
                    let (_, body) = entry.into_parts();
                    return Ok(Served {
                        response: respond(
                            stored_status,
                            &rev.headers,
                            None,
                            body,
                            &policy,
                            &req,
                            head,
                        )?,
                        origin: fetched.served_by,
                        retried: fetched.retried,
                        cache: cs,
                    });
                }
                // The 304 is about another representation: ask again without validators.
                let t0 = now_ms();
                let again = upstream.fetch(None, &[]).await;
                return store_and_respond(ctx, &key, &decision, &policy, &req, again, t0, head);
            }
            if httpcache::is_origin_error(origin_status) {
                let on_error = httpcache::on_origin_error(&policy, &h, origin_status, now_ms());
                if let (OnError::ServeStale { age, .. }, Some(cache)) =
                    (on_error, on_error.cache_status())
                {
                    return Ok(Served {
                        response: from_stored(entry, &h, age, &policy, &req, head)?,
                        origin: stored_origin(&h),
                        retried: fetched.retried,
                        cache,
                    });
                }
            }
            store_and_respond(ctx, &key, &decision, &policy, &req, fetched, t0, head)
        }
        _ => {
            let t0 = now_ms();
            let fetched = upstream.fetch(None, &[]).await;
            store_and_respond(ctx, &key, &decision, &policy, &req, fetched, t0, head)
        }
    }
}

/// The origin a stored entry came from (`cache` when it does not say).
fn stored_origin(h: &[(String, String)]) -> String {
    get(h, "x-edgeflags-origin").unwrap_or("cache").to_owned()
}

/// What the cache did for a lookup answered without the origin. Every such outcome has a
/// status; the fallback (never reached) reports a forward with no origin status.
fn answered(decision: &Lookup) -> CacheStatus {
    decision
        .cache_status()
        .unwrap_or_else(|| decision.forwarded_status(None, None))
}

fn stored_status(h: &[(String, String)]) -> u16 {
    get(h, META_STATUS)
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

/// A response from a stored entry (or a 304 when the visitor's own validators match).
fn from_stored(
    entry: Response,
    h: &[(String, String)],
    age: u64,
    policy: &RequestPolicy,
    req: &[(String, String)],
    head: bool,
) -> Result<Response, EdgeError> {
    let headers = httpcache::unwrap_for_client(h, age);
    // The same JS header map (a reference, not `Headers::clone`'s copy): copied once below.
    let base = Headers(entry.headers().0.clone());
    let (_, body) = entry.into_parts();
    respond(
        stored_status(h),
        &headers,
        Some((&base, h)),
        body,
        policy,
        req,
        head,
    )
}

/// The client's response: a 304 when its own validators match, else `status` with `headers`,
/// built from `base` (a header map and its list) when there is one.
fn respond(
    status: u16,
    headers: &[(String, String)],
    base: Option<(&Headers, &[(String, String)])>,
    body: ResponseBody,
    policy: &RequestPolicy,
    req: &[(String, String)],
    head: bool,
) -> Result<Response, EdgeError> {
    if httpcache::client_not_modified(policy, req, status, headers) {
        let h = headers_of(&httpcache::not_modified_headers(headers))?;
        return Ok(Response::empty()
            .map_err(internal)?
            .with_status(304)
            .with_headers(h));
    }
    // The JS Response constructor throws (and workers-rs would panic) on a status outside
    // 200..=599 or a body with a null-body status: never build one.
    if !(200..=599).contains(&status) {
        return Err(EdgeError::OriginUnreachable(format!(
            "stored status {status} cannot be sent"
        )));
    }
    let body = if head || matches!(status, 204 | 205 | 304) {
        ResponseBody::Empty
    } else {
        body
    };
    let out = match base {
        Some((base, have)) => headers_from(base, have, headers)?,
        None => headers_of(headers)?,
    };
    Ok(Response::builder()
        .with_status(status)
        .with_headers(out)
        .body(body))
}

/// Stores the origin's answer when RFC 9111 allows, and returns it.
#[allow(clippy::too_many_arguments)]
fn store_and_respond(
    ctx: &Context,
    key: &str,
    decision: &Lookup,
    policy: &RequestPolicy,
    req: &[(String, String)],
    fetched: Fetched,
    t0: u64,
    head: bool,
) -> Result<Served, EdgeError> {
    let t1 = now_ms();
    let mut res = fetched.result?;
    let status = res.status_code();
    let res_h = fetched.headers;
    let plan = httpcache::storable_answer(policy, req, status, &res_h, t0, t1, fetched.retried);
    pass_memory(|p| p.borrow_mut().learn(key, &plan, t1));
    if let Ok(plan) = &plan {
        let copy = res.cloned().map_err(internal)?;
        put(
            ctx,
            key,
            copy.into_parts().1,
            &plan.headers,
            &fetched.served_by,
        );
    }
    let cache = if head {
        decision.forwarded_status(Some(status), None)
    } else {
        decision.forwarded_status(Some(status), Some(&plan))
    };
    Ok(Served {
        response: res,
        origin: fetched.served_by,
        retried: fetched.retried,
        cache,
    })
}

/// Puts an entry off the response path.
fn put(ctx: &Context, key: &str, body: ResponseBody, headers: &[(String, String)], origin: &str) {
    let mut headers = headers.to_vec();
    headers.retain(|(n, _)| n != "x-edgeflags-origin");
    headers.push(("x-edgeflags-origin".into(), origin.to_owned()));
    let Ok(h) = headers_of(&headers) else { return };
    let response = Response::builder()
        .with_status(200)
        .with_headers(h)
        .body(body);
    let key = key.to_owned();
    ctx.wait_until(async move {
        let _ = Cache::default().put(key.as_str(), response).await;
    });
}

/// Stale-while-revalidate: refresh the entry after the stale answer went out.
async fn revalidate_in_background(
    key: String,
    policy: RequestPolicy,
    req: Vec<(String, String)>,
    stored: Vec<(String, String)>,
    conditional: Vec<(String, String)>,
    upstream: Upstream,
) -> Result<(), EdgeError> {
    let cache = Cache::default();
    let t0 = now_ms();
    let fetched = upstream.fetch(None, &conditional).await;
    let t1 = now_ms();
    // The stable origin's answer to a retry is not this variant's (see Bypass::Retried).
    if fetched.retried {
        return Ok(());
    }
    let mut res = fetched.result?;
    let res_h = fetched.headers;
    let (headers, body) = if res.status_code() == 304 {
        let Some(rev) = httpcache::after_304(
            &policy,
            &req,
            stored_status(&stored),
            &stored,
            &res_h,
            t0,
            t1,
        ) else {
            return Ok(());
        };
        let Ok(plan) = rev.store else { return Ok(()) };
        let Some(entry) = cache.get(key.as_str(), false).await.map_err(internal)? else {
            return Ok(());
        };
        (plan.headers, entry.into_parts().1)
    } else {
        match httpcache::storable(&policy, &req, res.status_code(), &res_h, t0, t1) {
            Ok(plan) => (plan.headers, res.cloned().map_err(internal)?.into_parts().1),
            Err(_) => return Ok(()),
        }
    };
    let mut headers = headers;
    headers.push(("x-edgeflags-origin".into(), fetched.served_by));
    let response = Response::builder()
        .with_status(200)
        .with_headers(headers_of(&headers)?)
        .body(body);
    cache.put(key.as_str(), response).await.map_err(internal)
}

/// Every cache key a URL can have: one per variant of the flag routing its path.
pub(crate) fn keys_for(
    url: &str,
    table: &RouteTable,
    set: Option<&edgeflags_core::FlagSet>,
) -> Vec<String> {
    let normalised = httpcache::normalise_url(url);
    let path = worker::Url::parse(url)
        .map(|u| u.path().to_owned())
        .unwrap_or_default();
    match table.select(&path).map(|r| &r.target) {
        Some(Target::Flag(flag)) => match set.and_then(|s| s.variant_names(flag)) {
            Some(names) => names
                .map(|v| httpcache::cache_key(&normalised, &[(flag.as_str(), v)]))
                .collect(),
            None => vec![httpcache::cache_key(&normalised, &[])],
        },
        _ => vec![httpcache::cache_key(&normalised, &[])],
    }
}

/// Deletes the entries an unsafe request invalidated (RFC 9111 §4.4), off the response path.
pub(crate) fn invalidate(
    ctx: &Context,
    request_url: &str,
    res_headers: &[(String, String)],
    table: &RouteTable,
    active: Option<&crate::flags::live::Active>,
) {
    let keys: Vec<String> = httpcache::invalidation_targets(request_url, res_headers)
        .iter()
        .flat_map(|u| keys_for(u, table, active.map(|a| &a.set)))
        .collect();
    delete_all(ctx, keys);
}

/// Deletes cache keys in this location, off the response path.
pub(crate) fn delete_all(ctx: &Context, keys: Vec<String>) {
    ctx.wait_until(async move {
        let cache = Cache::default();
        for key in keys {
            let _ = cache.delete(key.as_str(), false).await;
        }
    });
}

/// Passes a request the cache does not handle (an unsafe method) to the origin with its
/// body, and evicts what its success invalidates (RFC 9111 §4.4) in this location.
pub(crate) async fn pass(
    ctx: &Context,
    req: &Request,
    url: &worker::Url,
    upstream: Upstream,
    (table, active): (&RouteTable, Option<&crate::flags::live::Active>),
) -> Result<Served, EdgeError> {
    let body = req.inner().body().map(JsValue::from);
    let fetched = upstream.fetch(body, &[]).await;
    let status = fetched.result.as_ref().ok().map(Response::status_code);
    if status.is_some_and(|s| httpcache::invalidates(req.method().as_ref(), s)) {
        invalidate(ctx, url.as_str(), &fetched.headers, table, active);
    }
    Ok(Served {
        response: fetched.result?,
        origin: fetched.served_by,
        retried: fetched.retried,
        cache: CacheStatus::method_bypass(status),
    })
}
