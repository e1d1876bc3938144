//! The ERP backend's HTTP surface: orders JSON API, version probe, counters, static files,
//! the service worker's strategy lab (`/lab/...`), and a fault switch for tests.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::State as AxState;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tower_http::services::ServeDir;

/// Which deployment of the backend a listener plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

impl Version {
    fn as_str(self) -> &'static str {
        match self {
            Version::V1 => "v1",
            Version::V2 => "v2",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
struct Order {
    id: u64,
    item: String,
    quantity: u32,
    #[serde(rename = "createdBy")]
    created_by: &'static str,
}

#[derive(Default, Debug)]
struct Db {
    orders: Vec<Order>,
    /// Idempotency-Key → order id, so a replayed offline write never creates a second order.
    by_key: HashMap<String, u64>,
}

/// State shared by both versions: one database, per-version request counters, write
/// counters, the fault switch and the lab's per-path counters.
#[derive(Clone, Default, Debug)]
pub struct State {
    db: Arc<Mutex<Db>>,
    requests: Arc<[AtomicU64; 2]>,
    writes: Arc<Writes>,
    faults: Arc<Faults>,
    lab: Arc<Mutex<HashMap<String, u64>>>,
}

/// What happened to `POST /api/orders`.
#[derive(Default, Debug)]
struct Writes {
    /// Every POST that reached the handler.
    attempts: AtomicU64,
    /// POSTs answered 503 by the fault switch.
    failed: AtomicU64,
    /// POSTs whose Idempotency-Key had been seen: answered with the original order.
    replayed: AtomicU64,
}

/// Test switch (`POST /__origin/faults`): fail the next N order writes with 503 (before or
/// after they take effect), refuse chosen orders, delay every lab answer, and make the
/// canary (v2) fail a share of its API requests or answer them slowly.
#[derive(Default, Debug)]
struct Faults {
    fail_next: AtomicU64,
    /// The next N order writes take effect and are *then* answered 503 (a gateway giving up
    /// after the origin acted): a client re-sending one without its key makes a duplicate.
    fail_next_after_commit: AtomicU64,
    /// Orders whose item starts with this prefix (empty: none) are answered, every time and
    /// without taking effect, with the status number that follows it: `login-302-a` → `302`
    /// to `/login` (a signed-out session), `login-401-b` → `401`, `login-503-c` → `503`.
    refuse_prefix: Mutex<String>,
    lab_delay_ms: AtomicU64,
    /// Percent (0..=100) of v2's `/api/` requests answered 503. Deterministic, not random:
    /// request n fails when ⌊n·p/100⌋ steps up, so 5 % is exactly every 20th request and a
    /// test can count on it.
    v2_error_percent: AtomicU64,
    v2_api_requests: AtomicU64,
    v2_injected_errors: AtomicU64,
    /// Every v2 `/api/` answer waits this long (0 = no delay): a slow canary.
    v2_delay_ms: AtomicU64,
}

#[derive(Clone, Debug)]
struct Ctx {
    version: Version,
    state: State,
}

pub fn router(version: Version, state: State, static_dir: Option<&Path>) -> Router {
    let ctx = Ctx { version, state };
    let api = Router::new()
        .route("/api/version", get(version_info))
        .route("/api/health", get(health))
        .route("/api/orders", get(list_orders).post(create_order))
        .route("/login", get(|| async { "sign in" }))
        .route("/__origin/stats", get(stats))
        .route("/__origin/faults", post(set_faults))
        .route("/lab/{*rest}", get(lab));
    let app = match static_dir {
        Some(dir) => {
            api.fallback_service(ServeDir::new(dir).append_index_html_on_directories(true))
        }
        None => api,
    };
    app.layer(axum::middleware::from_fn_with_state(ctx.clone(), stamp))
        .with_state(ctx)
}

/// Stamps every response with the serving version and counts the request.
async fn stamp(
    AxState(ctx): AxState<Ctx>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let idx = usize::from(ctx.version == Version::V2);
    let path = req.uri().path().to_owned();
    // The test switches and counters themselves are not app traffic.
    if !path.starts_with("/__origin/") {
        if let Some(counter) = ctx.state.requests.get(idx) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }
    let v2_api = ctx.version == Version::V2 && path.starts_with("/api/");
    let delay = ctx.state.faults.v2_delay_ms.load(Ordering::SeqCst);
    if v2_api && delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let mut res = if v2_api && inject_v2_error(&ctx.state.faults) {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "fault switch: the canary fails this request"})),
        )
            .into_response()
    } else {
        next.run(req).await
    };
    let headers = res.headers_mut();
    headers.insert(
        HeaderName::from_static("x-app-version"),
        HeaderValue::from_static(ctx.version.as_str()),
    );
    // The service worker script and HTML must be revalidated so updates are seen; hashed
    // assets (the wasm) never change under one name.
    if !headers.contains_key(header::CACHE_CONTROL) {
        let cc = if path.starts_with("/api/") || path.starts_with("/__origin/") {
            "no-store"
        } else if path.contains(".wasm") && path.starts_with("/sw/") {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        };
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cc));
    }
    res
}

/// Whether this v2 API request is one the `v2ErrorPercent` switch fails.
fn inject_v2_error(f: &Faults) -> bool {
    let pct = f.v2_error_percent.load(Ordering::SeqCst);
    if pct == 0 {
        return false;
    }
    let n = f.v2_api_requests.fetch_add(1, Ordering::SeqCst) + 1;
    let fail = n * pct / 100 > (n - 1) * pct / 100;
    if fail {
        f.v2_injected_errors.fetch_add(1, Ordering::SeqCst);
    }
    fail
}

async fn version_info(AxState(ctx): AxState<Ctx>, headers: HeaderMap) -> Json<serde_json::Value> {
    // Echo what the edge told us, so tests can see the edge's decisions arrive at the origin.
    let edge: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .filter(|(name, _)| {
            let n = name.as_str();
            // What a framework behind a proxy would trust: shown so tests can check that
            // only the edge's own values arrive.
            n.starts_with("x-edgeflags-")
                || n.starts_with("x-forwarded-")
                || matches!(
                    n,
                    "forwarded"
                        | "x-real-ip"
                        | "true-client-ip"
                        | "x-original-url"
                        | "x-rewrite-url"
                )
        })
        .filter_map(|(name, v)| Some((name.as_str().to_owned(), json!(v.to_str().ok()?))))
        .collect();
    Json(json!({
        "service": "erp-backend",
        "version": ctx.version.as_str(),
        "channel": if ctx.version == Version::V1 { "stable" } else { "canary" },
        "edgeHeaders": edge,
    }))
}

async fn health(AxState(ctx): AxState<Ctx>) -> Json<serde_json::Value> {
    Json(json!({"ok": true, "version": ctx.version.as_str()}))
}

async fn stats(AxState(ctx): AxState<Ctx>) -> Json<serde_json::Value> {
    let count = |i: usize| {
        ctx.state
            .requests
            .get(i)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    };
    let orders = ctx
        .state
        .db
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .orders
        .len();
    let w = &ctx.state.writes;
    let lab = ctx
        .state
        .lab
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    Json(json!({
        "requests": {"v1": count(0), "v2": count(1)},
        "orders": orders,
        "orderPosts": {
            "attempts": w.attempts.load(Ordering::Relaxed),
            "failedByFaultSwitch": w.failed.load(Ordering::Relaxed),
            "idempotentReplays": w.replayed.load(Ordering::Relaxed),
        },
        "lab": lab,
        "v2InjectedErrors": ctx.state.faults.v2_injected_errors.load(Ordering::SeqCst),
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FaultSettings {
    /// The next N `POST /api/orders` answer 503 (before touching the database).
    fail_next: Option<u64>,
    /// Every `/lab/` answer waits this long (0 = no delay).
    lab_delay_ms: Option<u64>,
    /// Percent (0..=100) of v2's `/api/` requests answered 503 (every 100/p-th one).
    v2_error_percent: Option<u64>,
    /// Every v2 `/api/` answer waits this long (0 = no delay).
    v2_delay_ms: Option<u64>,
    /// The next N `POST /api/orders` take effect, then answer 503.
    fail_next_after_commit: Option<u64>,
    /// Orders whose item starts with this answer the status that follows (`""` = off).
    refuse_prefix: Option<String>,
}

async fn set_faults(AxState(ctx): AxState<Ctx>, body: axum::body::Bytes) -> Response {
    let settings: FaultSettings = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": e.to_string()})),
            )
                .into_response()
        }
    };
    let f = &ctx.state.faults;
    if let Some(n) = settings.fail_next {
        f.fail_next.store(n, Ordering::SeqCst);
    }
    if let Some(ms) = settings.lab_delay_ms {
        f.lab_delay_ms.store(ms.min(60_000), Ordering::SeqCst);
    }
    if let Some(p) = settings.v2_error_percent {
        f.v2_error_percent.store(p.min(100), Ordering::SeqCst);
        f.v2_api_requests.store(0, Ordering::SeqCst);
    }
    if let Some(ms) = settings.v2_delay_ms {
        f.v2_delay_ms.store(ms.min(60_000), Ordering::SeqCst);
    }
    if let Some(n) = settings.fail_next_after_commit {
        f.fail_next_after_commit.store(n, Ordering::SeqCst);
    }
    if let Some(p) = settings.refuse_prefix {
        *f.refuse_prefix
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = p;
    }
    Json(json!({
        "failNext": f.fail_next.load(Ordering::SeqCst),
        "labDelayMs": f.lab_delay_ms.load(Ordering::SeqCst),
        "v2ErrorPercent": f.v2_error_percent.load(Ordering::SeqCst),
        "v2DelayMs": f.v2_delay_ms.load(Ordering::SeqCst),
    }))
    .into_response()
}

/// `GET /lab/...`: how many times the origin served this path, so a client can tell a
/// network answer from a cached one. Query: `cacheControl=...` (the answer's Cache-Control),
/// `status=NNN`, `date=old` (a Date header from 2001: caches must not age entries by it),
/// `frameOptions=...` (an X-Frame-Options of the origin's own, which the edge must keep).
async fn lab(AxState(ctx): AxState<Ctx>, uri: axum::http::Uri) -> Response {
    let delay = ctx.state.faults.lab_delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let path = uri.path().to_owned();
    let served = {
        let mut lab = ctx.state.lab.lock().unwrap_or_else(PoisonError::into_inner);
        let n = lab.entry(path.clone()).or_insert(0);
        *n += 1;
        *n
    };
    let param = |name: &str| {
        uri.query()
            .unwrap_or("")
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_owned())
    };
    let status = param("status")
        .and_then(|s| s.parse::<u16>().ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let mut res = (status, Json(json!({"path": path, "served": served}))).into_response();
    let headers = res.headers_mut();
    let cc = param("cacheControl").unwrap_or_else(|| "no-cache".to_owned());
    if let Ok(v) = HeaderValue::from_str(&cc) {
        headers.insert(header::CACHE_CONTROL, v);
    }
    if let Some(v) = param("frameOptions").and_then(|v| HeaderValue::from_str(&v).ok()) {
        headers.insert(header::X_FRAME_OPTIONS, v);
    }
    if param("date").as_deref() == Some("old") {
        headers.insert(
            header::DATE,
            HeaderValue::from_static("Mon, 01 Jan 2001 00:00:00 GMT"),
        );
    }
    res
}

async fn list_orders(AxState(ctx): AxState<Ctx>) -> Json<serde_json::Value> {
    let db = ctx.state.db.lock().unwrap_or_else(PoisonError::into_inner);
    let orders: Vec<serde_json::Value> = db
        .orders
        .iter()
        .map(|o| {
            let mut v = json!(o);
            // The canary's visible change: v2 also reports a delivery estimate.
            if ctx.version == Version::V2 {
                v["etaDays"] = json!(2 + o.id % 3);
            }
            v
        })
        .collect();
    Json(json!({"version": ctx.version.as_str(), "orders": orders}))
}

#[derive(Deserialize)]
struct NewOrder {
    item: String,
    #[serde(default = "one")]
    quantity: u32,
}

fn one() -> u32 {
    1
}

async fn create_order(
    AxState(ctx): AxState<Ctx>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    ctx.state.writes.attempts.fetch_add(1, Ordering::SeqCst);
    let fail = ctx
        .state
        .faults
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if fail {
        ctx.state.writes.failed.fetch_add(1, Ordering::SeqCst);
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "fault switch: try again later"})),
        )
            .into_response();
    }
    let new: NewOrder = match serde_json::from_slice(&body) {
        Ok(n) => n,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": "invalid order", "details": e.to_string()})),
            )
                .into_response()
        }
    };
    if let Some(status) = refused(&ctx.state.faults, &new.item) {
        ctx.state.writes.failed.fetch_add(1, Ordering::SeqCst);
        let mut res = (status, Json(json!({"error": "fault switch: refused"}))).into_response();
        if status.is_redirection() {
            res.headers_mut()
                .insert(header::LOCATION, HeaderValue::from_static("/login"));
        }
        return res;
    }
    if new.item.trim().is_empty() || new.item.len() > 200 {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"error": "item must be 1..200 characters"})),
        )
            .into_response();
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut db = ctx.state.db.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(id) = key.as_ref().and_then(|k| db.by_key.get(k)).copied() {
        if let Some(order) = db.orders.iter().find(|o| o.id == id) {
            ctx.state.writes.replayed.fetch_add(1, Ordering::SeqCst);
            let mut res = (StatusCode::OK, Json(json!(order))).into_response();
            res.headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            return res;
        }
    }
    let id = db.orders.len() as u64 + 1;
    let order = Order {
        id,
        item: new.item,
        quantity: new.quantity,
        created_by: ctx.version.as_str(),
    };
    db.orders.push(order.clone());
    if let Some(k) = key {
        db.by_key.insert(k, id);
    }
    let after_commit = &ctx.state.faults.fail_next_after_commit;
    if after_commit
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        ctx.state.writes.failed.fetch_add(1, Ordering::SeqCst);
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "fault switch: gave up after the order was created"})),
        )
            .into_response();
    }
    (StatusCode::CREATED, Json(json!(order))).into_response()
}

/// The status the `refusePrefix` switch answers for an order with this item, if any.
fn refused(f: &Faults, item: &str) -> Option<StatusCode> {
    let prefix = f
        .refuse_prefix
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let rest = item
        .strip_prefix(prefix.as_str())
        .filter(|_| !prefix.is_empty())?;
    let digits = rest.split('-').next()?;
    StatusCode::from_u16(digits.parse().ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_canary_fault_switch_fails_exactly_its_share_of_requests() {
        for (pct, of_100) in [(0, 0), (5, 5), (33, 33), (100, 100)] {
            let f = Faults::default();
            f.v2_error_percent.store(pct, Ordering::SeqCst);
            let failed = (0..100).filter(|_| inject_v2_error(&f)).count();
            assert_eq!(failed, of_100, "{pct}%");
        }
        let f = Faults::default();
        f.v2_error_percent.store(5, Ordering::SeqCst);
        let first_failure = (1..=100).find(|_| inject_v2_error(&f));
        assert_eq!(first_failure, Some(20), "5 % is every 20th request");
    }

    #[test]
    fn the_refuse_switch_answers_the_status_named_in_the_item() {
        let f = Faults::default();
        assert_eq!(refused(&f, "login-302-a"), None, "off by default");
        *f.refuse_prefix.lock().unwrap() = "login-".into();
        let got: Vec<Option<u16>> = [
            "login-302-a",
            "login-401",
            "login-503-x",
            "login-x",
            "other-401",
            "login-99",
        ]
        .iter()
        .map(|i| refused(&f, i).map(|s| s.as_u16()))
        .collect();
        assert_eq!(got, vec![Some(302), Some(401), Some(503), None, None, None]);
    }
}
