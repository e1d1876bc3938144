//! Worker host glue (wasm32 only): turns policy decisions into Workers API calls — KV reads
//! and writes, origin fetches, responses. Nothing here decides anything on its own.

// Both workers: the proxied request (`request/`: full path, cache, origin — and the request
// worker's fast path), the flag set (`flags/`: the isolate's copy, the head check; the writer,
// admin API and rollout controller in the control worker), measurement (`measure/`: the
// recorder and batch delivery; the metrics store and API in the control worker), visitor
// identity (`jwt`), OFREP, client events and the isolate's state.
pub(crate) mod events;
pub(crate) mod flags;
pub(crate) mod isolate;
pub(crate) mod jwt;
pub(crate) mod measure;
pub(crate) mod ofrep;
pub(crate) mod request;

// The request worker's way to the control worker (`crate::traffic::plane`).
#[cfg(not(feature = "control"))]
pub(crate) mod forward;

/// Declares the modules only the control worker compiles.
macro_rules! control_only {
    ($($module:ident),* $(,)?) => { $( #[cfg(feature = "control")] pub mod $module; )* };
}
pub(crate) use control_only;

// The control worker only (`--features control`): the dashboard, notifications, and the
// SQLite helpers of its Durable Objects.
control_only!(dashboard, notify, sql);

use worker::{Env, Headers, Request, Response};

use crate::error::EdgeError;
use crate::traffic::header_edits::HeaderEdit;
use crate::traffic::proxy as policy;

/// Name of the KV binding holding flag sets (wrangler.toml `[[kv_namespaces]]`).
pub(crate) const FLAGS_BINDING: &str = "FLAGS";

pub(crate) fn internal(e: impl std::fmt::Display) -> EdgeError {
    EdgeError::Internal(e.to_string())
}

/// Unix milliseconds (the core never reads a clock; the host does, once per request).
pub(crate) fn now_ms() -> u64 {
    // `Date.now()`, not `new Date().getTime()` (worker::Date): no object per call.
    js_sys::Date::now() as u64
}

/// 16 random bytes from the platform CSPRNG, as a visitor id.
pub(crate) fn random_id() -> Option<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).ok()?;
    Some(crate::traffic::identity::format_id(bytes))
}

/// A request header, `None` when absent or unreadable.
pub(crate) fn header(req: &Request, name: &str) -> Option<String> {
    req.headers().get(name).ok().flatten()
}

/// POSTs a JSON body to `path` of the Durable Object `name` in namespace `binding` and reads
/// the JSON answer (any status but 200 is an error naming `what`). The metrics store and the
/// flag writer are both called this way.
pub(crate) async fn durable_call<B: serde::Serialize, R: serde::de::DeserializeOwned>(
    env: &Env,
    (binding, name, what): (&str, &str, &str),
    path: &str,
    body: &B,
) -> Result<R, EdgeError> {
    let unavailable = |e: worker::Error| EdgeError::Config(format!("{what} unavailable: {e}"));
    let namespace = env.durable_object(binding).map_err(unavailable)?;
    let stub = namespace
        .id_from_name(name)
        .and_then(|id| id.get_stub())
        .map_err(unavailable)?;
    let body = serde_json::to_string(body).map_err(internal)?;
    let mut init = worker::RequestInit::new();
    init.with_method(worker::Method::Post)
        .with_body(Some(body.into()));
    // The object routes on the path; the host is never resolved.
    let req = Request::new_with_init(&format!("https://durable-object.internal{path}"), &init)
        .map_err(internal)?;
    let mut res = stub.fetch_with_request(req).await.map_err(internal)?;
    if res.status_code() != 200 {
        let text = res.text().await.unwrap_or_default();
        return Err(EdgeError::Internal(format!("{what}: {text}")));
    }
    res.json().await.map_err(internal)
}

#[cfg(feature = "control")]
/// The admin tokens (secrets `ADMIN_TOKENS` / `ADMIN_TOKEN`).
pub(crate) fn admin_tokens(env: &Env) -> Result<crate::flags::admin::Tokens, EdgeError> {
    let secret = |n: &str| env.secret(n).ok().map(|s| s.to_string());
    crate::flags::admin::Tokens::parse(
        secret("ADMIN_TOKENS").as_deref(),
        secret("ADMIN_TOKEN").as_deref(),
    )
}

/// The Workers KV namespace with the flag sets.
pub(crate) fn kv(env: &Env) -> Result<worker::KvStore, EdgeError> {
    env.kv(FLAGS_BINDING).map_err(internal)
}

/// A JSON response with `status`, never cached.
pub(crate) fn json_with_status<T: serde::Serialize>(
    value: &T,
    status: u16,
) -> Result<Response, EdgeError> {
    let res = Response::from_json(value)
        .map_err(internal)?
        .with_status(status);
    res.headers()
        .set("cache-control", "no-store")
        .map_err(internal)?;
    Ok(res)
}

/// A JSON response with status 200, never cached.
pub(crate) fn json<T: serde::Serialize>(value: &T) -> Result<Response, EdgeError> {
    json_with_status(value, 200)
}

#[cfg(feature = "control")]
/// A text response of `content_type` (Prometheus text, CSV), never cached.
pub(crate) fn text(body: String, content_type: &str) -> Result<Response, EdgeError> {
    let res = Response::ok(body).map_err(internal)?;
    set_all(
        res.headers(),
        &[
            ("content-type", content_type.into()),
            ("cache-control", "no-store".into()),
        ],
    )?;
    Ok(res)
}

/// The response for an error: its status and OFREP-style JSON body.
pub(crate) fn error_response(err: &EdgeError) -> worker::Result<Response> {
    let res = Response::from_json(&err.body())?.with_status(err.status());
    res.headers().set("cache-control", "no-store")?;
    if matches!(err, EdgeError::Unauthorized) {
        res.headers().set("www-authenticate", "Bearer")?;
    }
    if let EdgeError::RateLimited(seconds) = err {
        res.headers().set("retry-after", &seconds.to_string())?;
    }
    Ok(res)
}

/// The edge's mark and the security headers the response lacks, in one call into JS
/// (`headers_js`): done separately, the presence checks and sets were a dozen crossings on
/// every response.
pub(crate) fn harden(
    mut res: Response,
    policy: &crate::traffic::security::Policy,
    own: bool,
    https: bool,
) -> Result<Response, EdgeError> {
    request::headers_js::apply(&res.headers_mut().0, &hardening(policy, own, https))?;
    Ok(res)
}

/// The edits [`harden`] makes: the edge's mark, and each security header unless present.
pub(crate) fn hardening(
    policy: &crate::traffic::security::Policy,
    own: bool,
    https: bool,
) -> Vec<HeaderEdit> {
    let mut edits = vec![HeaderEdit::Set(
        policy::EDGE_HEADER.into(),
        policy::EDGE_HEADER_VALUE.into(),
    )];
    edits.extend(
        policy
            .headers(own, https, |_| false)
            .into_iter()
            .map(|(name, value)| HeaderEdit::SetIfAbsent(name.into(), value)),
    );
    edits
}

/// Per-client rate limit of the OFREP and admin endpoints, through the Workers rate-limiting
/// binding `RATE_LIMITER` (wrangler.toml `[[ratelimits]]`). Without the binding, no limit.
pub(crate) async fn rate_limit(env: &Env, req: &Request, class: &str) -> Result<(), EdgeError> {
    let Ok(limiter) = env.rate_limiter("RATE_LIMITER") else {
        return Ok(());
    };
    let client = header(req, "cf-connecting-ip").unwrap_or_else(|| "local".into());
    let outcome = limiter
        .limit(format!("{class}:{client}"))
        .await
        .map_err(internal)?;
    if outcome.success {
        Ok(())
    } else {
        // The binding's period is 10 or 60 s; 60 is the safe upper bound to wait.
        Err(EdgeError::RateLimited(60))
    }
}

/// Reads a request body up to `limit` bytes (413 beyond), as a stream: a larger body is
/// refused as soon as it passes the limit, so a hostile 64 MiB upload (chunked, without a
/// `Content-Length`) costs at most the limit plus one chunk of wasm memory, never the whole
/// body (wasm memory never shrinks).
pub(crate) async fn body(req: &mut Request, limit: usize) -> Result<Vec<u8>, EdgeError> {
    use futures_util::StreamExt;
    if let Some(len) = header(req, "content-length").and_then(|v| v.parse::<usize>().ok()) {
        if len > limit {
            return Err(EdgeError::PayloadTooLarge(limit));
        }
    }
    // No body at all reads as empty.
    let Ok(mut stream) = req.stream() else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let mut seen = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| EdgeError::BadRequest(format!("unreadable body: {e}")))?;
        seen = seen.saturating_add(chunk.len());
        if seen <= limit {
            out.extend_from_slice(&chunk);
        } else if seen > limit.saturating_add(LINGER_BYTES) {
            break;
        } else {
            // Over the limit: keep nothing, but read (and drop) a little more, so a client
            // slightly over the limit gets its 413 instead of a reset connection.
            out = Vec::new();
        }
    }
    if seen > limit {
        return Err(EdgeError::PayloadTooLarge(limit));
    }
    Ok(out)
}

/// How much of an oversized body is still read (and dropped) before the 413, as servers
/// "linger" before closing: the client is still sending, and a proxy in front may reset the
/// connection instead of relaying an answer that comes before the body's end.
const LINGER_BYTES: usize = 1024 * 1024;

/// Sets several headers on a response.
pub(crate) fn set_all(headers: &Headers, pairs: &[(&str, String)]) -> Result<(), EdgeError> {
    for (name, value) in pairs {
        headers.set(name, value).map_err(internal)?;
    }
    Ok(())
}
