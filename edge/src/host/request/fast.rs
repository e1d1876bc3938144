//! The proxied request's fast path (request worker): the module entry (`edge/js/entry.mjs`)
//! does the request's I/O — `caches.default.match`, `fetch`, `cache.put`, the `Response` —
//! natively in JS, and asks this module, in up to three synchronous calls, what to do. Each
//! call hands back one string (fields separated by U+0001; header edits in the
//! `headers_js` format), so a request costs a handful of crossings instead of the
//! per-object glue of workers-rs and wasm-bindgen-futures (issue 15: that glue alone made a
//! workers-rs forwarder cost 1.23× the JS one).
//!
//! Only the common cases take it: GET/HEAD to a proxied path, state fresh in this isolate
//! (no route-table or flag-set check due), no JWT to verify, no conditional request to
//! rewrite for a bootstrapped page, and cache outcomes "fresh/stale hit" or "miss". Anything
//! else answers `x` *before any I/O*, and the entry runs the full path
//! (`host/request/proxy.rs`) instead — which makes the same decisions, with the same policy
//! functions, and is the reference for this one: the e2e suites run every proxied request
//! through one or the other.
//!
//! 1. [`edge_plan`]: route, identify, choose the origin, the cache key; `l` (look the key up
//!    first) or `f` (fetch, with the origin-bound header edits: the key is remembered as
//!    uncacheable).
//! 2. [`edge_stored`]: the looked-up entry's headers → serve it (`h`), fetch (`f`, with the
//!    origin-bound header edits: a hit never computes them), or `x`.
//! 3. [`edge_fetched`]: an origin answer (or a failed fetch) → retry on the stable origin
//!    (`r`), serve it (`s`) or the first answer (`p`), with the response edits and what to
//!    store, or an error (`e`, then [`edge_error`]).
//!
//! A page that gets the bootstrap goes through [`edge_bootstrap`]; due metrics batches
//! through [`edge_flush`].

use std::rc::Rc;

use wasm_bindgen::prelude::*;
use worker::worker_sys::web_sys;
use worker::Env;

use crate::config::Config;
use crate::error::EdgeError;
use crate::flags::live::Active;
use crate::host::request::headers_js::{encode, parse};
use crate::host::{flags, now_ms, random_id};
use crate::httpcache::{self, CacheStatus, Lookup, RequestPolicy, META_STATUS, META_STORED_AT};
use crate::traffic::header_edits::{header_edits, HeaderEdit};
use crate::traffic::identity::{self, Visitor};
use crate::traffic::security::Policy;
use crate::traffic::split::{self, Next};
use crate::traffic::{bootstrap, proxy};

/// Separates the fixed fields of an answer to JS (header values may hold it: they go last).
const SEP: char = '\u{1}';

/// What one request carries between the calls.
pub(crate) struct Pending {
    started_ms: u64,
    config: Rc<Config>,
    policy: Rc<Policy>,
    https: bool,
    head: bool,
    /// The request URL's host (the origin-bound `Host`/forwarding headers' fallback).
    url_host: Option<String>,
    key: String,
    rules: RequestPolicy,
    req: Vec<(String, String)>,
    purged_after: Option<u64>,
    decision: Option<Lookup>,
    chosen: String,
    decided_by: Option<(String, String)>,
    stable: Option<(String, String)>,
    retry: bool,
    request_id: String,
    visitor: Visitor,
    active: Option<Rc<Active>>,
    flags_tag: Option<String>,
    chosen_failures: u32,
    sent_ms: u64,
    /// The first answer's parts, kept while the stable origin is asked.
    first: Option<Attempt>,
    /// What answered, once known: origin name, whether the stable origin did, cache status.
    served: Option<(String, bool, CacheStatus)>,
}

/// One origin answer as the entry read it: status 0 when the fetch failed.
struct Attempt {
    status: u16,
    headers: Vec<(String, String)>,
    error: String,
}

/// The requests between calls, by id (`host/isolate.rs`).
pub(crate) type InFlight = crate::traffic::in_flight::InFlight<Pending>;

fn in_flight<R>(f: impl FnOnce(&mut InFlight) -> R) -> R {
    crate::host::isolate::with(|i| f(&mut i.fast.borrow_mut()))
}

fn take(id: u32) -> Option<Pending> {
    in_flight(|q| q.take(id))
}

fn keep(id: u32, p: Pending) {
    in_flight(|q| q.keep(id, now_ms(), p));
}

/// Step 1. `headers` is the request's header map joined as `headers_js::parse` reads it.
/// `None` (or a failure to decide) means: take the full path.
#[wasm_bindgen]
pub fn edge_plan(method: &str, url: &str, headers: &str) -> Option<String> {
    plan(method, url, headers)
}

fn plan(method: &str, url: &str, headers: &str) -> Option<String> {
    let head = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return None,
    };
    let (config, policy) = crate::host::isolate::with(|i| {
        let s = i.settings.borrow();
        Some((s.config.clone()?, s.policy.clone()?))
    })?;
    // Known only after the full path ran once in this isolate.
    crate::host::isolate::with(|i| i.metrics_enabled.get())?;
    if !config.fast_path || config.identity == identity::Source::Jwt {
        return None;
    }
    let url = url::Url::parse(url).ok()?;
    let path = url.path();
    if path.starts_with(crate::OFREP)
        || config.admin_subpath(path).is_some()
        || config.is_private(path)
    {
        return None;
    }
    let started_ms = now_ms();
    // Full: the full path, which holds its state on its own stack (nothing computed yet).
    if !in_flight(|q| q.has_room(started_ms)) {
        return None;
    }
    let (table, active) = flags::fresh(started_ms, config.refresh_ms)?;
    let req = parse(headers);
    let get = |n: &str| req.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let https = url.scheme() == "https";
    let visitor = identity::identify(
        &config.identity,
        &config.identity_keys,
        get,
        https,
        random_id,
        None,
    );
    let context = edgeflags_core::Context::for_visitor(visitor.key.as_deref());
    let flags_tag = active
        .as_ref()
        .filter(|_| config.bootstrap)
        .map(|a| crate::flags::ofrep::flags_tag(&a.version, &context));
    let conditional = req
        .iter()
        .any(|(n, _)| n == "if-none-match" || n == "if-modified-since");
    if flags_tag.is_some() && conditional {
        return None;
    }
    let now_secs = started_ms / 1000;
    let choice = split::choose(&table, path, |flag| {
        let eval = active.as_ref()?.set.evaluate(flag, &context, now_secs);
        split::variant_origin(eval.variant, eval.value)
    })?;
    let rules = httpcache::request_policy(method, &req);
    if !rules.cacheable() || rules.only_if_cached {
        return None;
    }
    let request_id = random_id().unwrap_or_default();
    let decided_by = choice.decided_by.clone();
    let by = decided_by.as_ref().map(|(f, v)| (f.as_str(), v.as_str()));
    let variants: Vec<(&str, &str)> = by.into_iter().collect();
    let (normalised, key) = httpcache::request_key(&url, &variants);
    let purged_after = flags::purged_after(&normalised, url.path());
    let pass = crate::host::request::cache::skips_lookup(&key, started_ms);
    let path_and_query = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    let target = proxy::upstream_url(choice.url, &path_and_query);
    let decision = if pass {
        match httpcache::lookup(&rules, &req, None, started_ms) {
            d @ Lookup::Miss { .. } => Some(d),
            _ => return None,
        }
    } else {
        None
    };
    let pending = Pending {
        started_ms,
        config: config.clone(),
        policy,
        https,
        url_host: url.host_str().map(str::to_owned),
        head,
        key: key.clone(),
        rules,
        req,
        purged_after,
        decision,
        chosen: choice.name.clone(),
        decided_by,
        stable: table.stable_url().map(|u| {
            (
                table.stable.clone(),
                proxy::upstream_url(u, &path_and_query),
            )
        }),
        retry: choice.retry_on_stable,
        request_id,
        visitor,
        active,
        flags_tag,
        chosen_failures: 0,
        sent_ms: started_ms,
        first: None,
        served: None,
    };
    // The entry splits the fixed fields off the front; only the edits, last, may hold U+0001.
    if key.contains(SEP) || target.contains(SEP) {
        return None;
    }
    // Sent at once when no lookup comes first; else after the lookup, if it misses.
    let (mode, request_edits) = if pass {
        ("f", origin_request_edits(&pending))
    } else {
        ("l", String::new())
    };
    let id = in_flight(|q| {
        if !q.seeded() {
            let mut start = [0u8; 4];
            // Without randomness, ids start at 0 (as before a re-instantiation).
            let _ = getrandom::fill(&mut start);
            q.seed(u32::from_le_bytes(start));
        }
        q.admit(started_ms, pending)
    })?;
    Some(format!(
        "{id}{SEP}{mode}{SEP}{key}{SEP}{target}{SEP}{request_edits}"
    ))
}

/// The edits that turn a copy of the visitor's headers into the origin-bound ones
/// (`host/request/origin.rs` sends the same), encoded for the entry.
fn origin_request_edits(p: &Pending) -> String {
    let by = p.decided_by.as_ref().map(|(f, v)| (f.as_str(), v.as_str()));
    let extra = proxy::origin_request_headers(&p.request_id, by);
    let scheme = if p.https { "https" } else { "http" };
    let want = proxy::origin_headers(&p.req, p.url_host.as_deref(), scheme, extra);
    encode(&header_edits(&p.req, &want))
}

/// Step 2, after `caches.default.match(key)`: `stored` is the entry's joined header map, or
/// `None` when nothing is stored. Answers `h␁status␁fresh␁flush␁bootstrap␁edits`
/// (serve the entry: `fresh` = `1` when the edits apply to an empty header map instead of the
/// entry's), `f␁edits` (fetch, with the origin-bound header edits) or `x` (take the full path;
/// nothing has been sent yet).
#[wasm_bindgen]
pub fn edge_stored(id: u32, stored: Option<String>) -> String {
    let Some(mut p) = take(id) else {
        return "x".into();
    };
    let now = now_ms();
    let mut stored_h = stored.as_deref().map(parse);
    // Purged (here or, through KV, anywhere) since it was stored: as if absent.
    let stored_at = stored_h
        .as_deref()
        .and_then(|h| get(h, META_STORED_AT))
        .and_then(|v| v.parse::<u64>().ok());
    if let (Some(at), Some(purge)) = (stored_at, p.purged_after) {
        if at <= purge {
            stored_h = None;
        }
    }
    let decision = httpcache::lookup(&p.rules, &p.req, stored_h.as_deref(), now);
    match (&decision, stored_h) {
        (Lookup::Fresh { age, .. } | Lookup::Stale { age, .. }, Some(h)) => {
            let status = get(&h, META_STATUS)
                .and_then(|v| v.parse().ok())
                .unwrap_or(200u16);
            let headers = httpcache::unwrap_for_client(&h, *age);
            let origin = get(&h, "x-edgeflags-origin").unwrap_or("cache").to_owned();
            let cache = decision
                .cache_status()
                .unwrap_or_else(|| decision.forwarded_status(None, None));
            let not_modified = httpcache::client_not_modified(&p.rules, &p.req, status, &headers)
                .then(|| httpcache::not_modified_headers(&headers));
            if not_modified.is_none() && !proxy::sendable_status(status) {
                return "x".into();
            }
            // A 304 is built on an empty header map, anything else on the entry's.
            let (status, fresh, mut edits, out_list) = match &not_modified {
                Some(list) => {
                    let edits = list
                        .iter()
                        .map(|(n, v)| HeaderEdit::Append(n.clone(), v.clone()))
                        .collect();
                    (304, true, edits, list)
                }
                None => (status, false, header_edits(&h, &headers), &headers),
            };
            let boot = gets_bootstrap(&p, status, &headers);
            if boot && fresh {
                return "x".into();
            }
            p.served = Some((origin, false, cache));
            let flush = finish(&mut p, &mut edits, out_list);
            let head = format!("h{SEP}{status}{SEP}{}", u8::from(fresh));
            reply(id, p, &head, &edits, flush, boot)
        }
        (Lookup::Miss { .. }, _) => {
            p.decision = Some(decision);
            let out = format!("f{SEP}{}", origin_request_edits(&p));
            keep(id, p);
            out
        }
        _ => "x".into(),
    }
}

/// Step 3, after each origin fetch: `status` 0 when the fetch failed (`headers` then holds
/// the error's message). Answers `r␁url` (ask the stable origin, same request), `s` or `p`
/// (serve this answer, or the first one) as `s␁store␁flush␁bootstrap␁edits` — `store` = 1
/// when the answer is to be stored, with the entry's headers as op `S` in `edits` —, or `e` (an
/// error: build it with [`edge_error`]).
#[wasm_bindgen]
pub fn edge_fetched(id: u32, status: u16, headers: &str) -> String {
    let Some(mut p) = take(id) else {
        return "e".into();
    };
    let now = now_ms();
    let attempt = if status == 0 {
        Attempt {
            status: 0,
            headers: Vec::new(),
            error: headers.to_owned(),
        }
    } else if !proxy::sendable_status(status) {
        // As `host/request/origin.rs`: an answer a JS Response cannot carry is no answer.
        Attempt {
            status: 0,
            headers: Vec::new(),
            error: format!("origin answered with status {status}"),
        }
    } else {
        Attempt {
            status,
            headers: parse(headers),
            error: String::new(),
        }
    };
    let usable = |a: &Attempt| (a.status != 0).then_some(a.status);
    let first = p.first.take();
    if first.is_none() && split::failed(usable(&attempt)) {
        p.chosen_failures += 1;
    }
    let retry = p.retry && p.stable.is_some();
    let (answer, which, served_by, retried) =
        match split::next(first.as_ref().map(usable), usable(&attempt), retry) {
            Next::RetryOnStable => {
                let url = p
                    .stable
                    .as_ref()
                    .map(|(_, u)| u.as_str())
                    .unwrap_or_default();
                let out = format!("r{SEP}{url}");
                p.first = Some(attempt);
                p.sent_ms = now_ms();
                keep(id, p);
                return out;
            }
            Next::Serve { retried: false } => (attempt, 's', p.chosen.clone(), false),
            Next::Serve { retried: true } => {
                let name = p
                    .stable
                    .as_ref()
                    .map(|(n, _)| n.clone())
                    .unwrap_or_default();
                (attempt, 's', name, true)
            }
            // The stable origin could not be reached: the chosen origin's answer stands.
            Next::ServeFirst | Next::Fail => match first {
                Some(first) => (first, 'p', p.chosen.clone(), true),
                None => (attempt, 's', p.chosen.clone(), false),
            },
        };
    if answer.status == 0 {
        p.served = None;
        p.first = Some(answer);
        keep(id, p);
        return "e".into();
    }
    let mut list = answer.headers;
    let dropped = proxy::response_headers_dropped(&list);
    list.retain(|(n, _)| !dropped.contains(n));
    let status = answer.status;
    let plan = httpcache::storable_answer(&p.rules, &p.req, status, &list, p.sent_ms, now, retried);
    crate::host::request::cache::learn(&p.key, &plan, now);
    let store = match &plan {
        Ok(plan) => {
            let mut h = plan.headers.clone();
            h.retain(|(n, _)| n != "x-edgeflags-origin");
            h.push(("x-edgeflags-origin".into(), served_by.clone()));
            // Op `S`: append to the entry's header map (the entry's edits travel with the
            // response's, in the one field that may hold header values).
            let mut ops = String::new();
            for (n, v) in &h {
                for field in ["S", n, v] {
                    ops.push_str(field);
                    ops.push('\0');
                }
            }
            Some(ops)
        }
        Err(_) => None,
    };
    let decision = match p.decision.take() {
        Some(d) => d,
        None => httpcache::lookup(&p.rules, &p.req, None, now),
    };
    let cache = if p.head {
        decision.forwarded_status(Some(status), None)
    } else {
        decision.forwarded_status(Some(status), Some(&plan))
    };
    let boot = gets_bootstrap(&p, status, &list);
    let mut edits: Vec<HeaderEdit> = dropped.into_iter().map(HeaderEdit::Delete).collect();
    p.served = Some((served_by, retried, cache));
    let flush = finish(&mut p, &mut edits, &list);
    let head = format!("{which}{SEP}{}", u8::from(store.is_some()));
    let edits = format!("{}{}", store.unwrap_or_default(), encode(&edits));
    reply_raw(id, p, &head, &edits, flush, boot)
}

/// Whether the answer (status, headers as the visitor gets them) is a page that gets the
/// visitor's flags (`host/request/proxy.rs` step 6).
fn gets_bootstrap(p: &Pending, status: u16, headers: &[(String, String)]) -> bool {
    let get = |n: &str| get(headers, n);
    p.flags_tag.is_some()
        && p.active.is_some()
        && bootstrap::should_inject(
            if p.head { "HEAD" } else { "GET" },
            status,
            get("content-type"),
            get("cache-control"),
        )
}

/// An answer that serves: `head␁flush␁bootstrap␁edits`. A page that gets the bootstrap
/// keeps its state for [`edge_bootstrap`].
fn reply(id: u32, p: Pending, head: &str, edits: &[HeaderEdit], flush: bool, boot: bool) -> String {
    reply_raw(id, p, head, &encode(edits), flush, boot)
}

/// Header values may hold U+0001 (the Fetch standard forbids only NUL, CR and LF; workerd
/// relays it), so the edits go last, after the fixed fields, and the entry reads them as the
/// rest of the answer.
fn reply_raw(id: u32, p: Pending, head: &str, edits: &str, flush: bool, boot: bool) -> String {
    let out = format!(
        "{head}{SEP}{}{SEP}{}{SEP}{edits}",
        u8::from(flush),
        u8::from(boot)
    );
    if boot {
        keep(id, p);
    }
    out
}

/// Measures the request, counts it for the status endpoint and appends the edge's response
/// edits (`host/request/proxy.rs` steps 5 and 7, `host::harden`) for a response whose headers are
/// `out` before them: as they are known here, a removal of an absent header and the
/// "unless present" checks of the security headers cost JS nothing. Says whether a metrics
/// batch is due.
fn finish(p: &mut Pending, edits: &mut Vec<HeaderEdit>, out: &[(String, String)]) -> bool {
    let Some((origin, retried, cache)) = p.served.as_ref() else {
        return false;
    };
    let decided_by = p.decided_by.as_ref().map(|(f, v)| (f.as_str(), v.as_str()));
    let mut flush = false;
    if crate::host::isolate::with(|i| i.metrics_enabled.get()) == Some(true) {
        let ended = proxy::Ended {
            decided_by,
            chosen: &p.chosen,
            served: Some((origin.as_str(), cache)),
            chosen_failures: p.chosen_failures,
            latency_ms: now_ms().saturating_sub(p.started_ms) as f64,
        };
        let record = proxy::request_record(&ended, p.active.as_deref());
        let unit = identity::counted_unit(
            p.visitor.key.as_deref(),
            &p.visitor,
            false,
            &p.config.identity_keys,
        )
        .map(crate::measure::metrics::unit_id);
        flush = crate::host::measure::count_request(&record, unit.as_deref(), now_ms());
    }
    crate::host::request::proxy::count_fast(origin, *retried);
    let stable = p
        .stable
        .as_ref()
        .map(|(n, _)| n.as_str())
        .unwrap_or_default();
    let present = |name: &str| out.iter().any(|(n, _)| n == name);
    let answered = proxy::answer_edits(proxy::Answered {
        cache,
        upstream: get(out, "cache-status"),
        origin: origin.clone(),
        request_id: p.request_id.clone(),
        retried: proxy::retried_header(*retried, &p.chosen, stable),
        set_cookie: p.visitor.set_cookie.take(),
    });
    // A set to the one value the header already has (a stored entry's origin) costs JS a
    // call for nothing.
    let holds = |name: &str, value: &str| {
        let mut values = out.iter().filter(|(n, _)| n == name).map(|(_, v)| v);
        values.next().is_some_and(|v| v == value) && values.next().is_none()
    };
    edits.extend(answered.into_iter().filter(|e| match e {
        HeaderEdit::Delete(n) => present(n),
        HeaderEdit::Set(n, v) => !holds(n, v),
        _ => true,
    }));
    edits.extend(
        crate::host::hardening(&p.policy, false, p.https)
            .into_iter()
            .filter_map(|e| match e {
                HeaderEdit::SetIfAbsent(n, _) if present(&n) => None,
                HeaderEdit::SetIfAbsent(n, v) => Some(HeaderEdit::Set(n, v)),
                e => Some(e),
            }),
    );
    flush
}

/// The entry's request threw between calls (its state would otherwise wait out
/// `crate::traffic::in_flight::ABANDONED_AFTER_MS` in the table).
#[wasm_bindgen]
pub fn edge_drop(id: u32) {
    take(id);
}

/// After `e`: the error response (measured as a request nothing answered), hardened as the
/// edge's own.
#[wasm_bindgen]
pub fn edge_error(id: u32) -> Result<web_sys::Response, JsValue> {
    let p = take(id);
    let message = p
        .as_ref()
        .and_then(|p| p.first.as_ref())
        .map(|a| a.error.clone())
        .unwrap_or_else(|| "the request's state was lost".into());
    let err = EdgeError::OriginUnreachable(message);
    worker::console_error!("GET/HEAD proxied: {err}");
    if let Some(p) = &p {
        if crate::host::isolate::with(|i| i.metrics_enabled.get()) == Some(true) {
            let ended = proxy::Ended {
                decided_by: p.decided_by.as_ref().map(|(f, v)| (f.as_str(), v.as_str())),
                chosen: &p.chosen,
                served: None,
                chosen_failures: p.chosen_failures,
                latency_ms: now_ms().saturating_sub(p.started_ms) as f64,
            };
            let record = proxy::request_record(&ended, p.active.as_deref());
            crate::host::measure::count_request(&record, None, now_ms());
        }
    }
    let res = crate::host::error_response(&err).map_err(|e| JsValue::from_str(&e.to_string()))?;
    let https = p.as_ref().is_some_and(|p| p.https);
    let res = match p.as_ref() {
        Some(p) => crate::host::harden(res, &p.policy, true, https),
        None => Ok(res),
    }
    .map_err(|e| JsValue::from_str(&e.to_string()))?;
    Ok(web_sys::Response::from(res))
}

/// A page that gets the visitor's flags (answers with bootstrap `1`): `res` is the answer
/// with its edits applied; the injector streams it (`host/request/proxy.rs` step 6).
#[wasm_bindgen]
pub fn edge_bootstrap(id: u32, res: web_sys::Response) -> web_sys::Response {
    let Some(p) = take(id) else { return res };
    let (Some(tag), Some(active)) = (p.flags_tag.as_deref(), p.active.as_deref()) else {
        return res;
    };
    let method = if p.head {
        worker::Method::Head
    } else {
        worker::Method::Get
    };
    let raw = Clone::clone(&res);
    match crate::host::request::proxy::with_bootstrap(
        worker::Response::from(res),
        &method,
        p.visitor.key.as_deref(),
        tag,
        active,
    ) {
        Ok(out) => web_sys::Response::from(out),
        Err(_) => raw,
    }
}

/// Sends the metrics batches that are due (the entry calls it inside `waitUntil`).
#[wasm_bindgen]
pub async fn edge_flush(env: Env) {
    crate::host::measure::flush_due(&env).await;
}

fn get<'a>(list: &'a [(String, String)], name: &str) -> Option<&'a str> {
    list.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}
