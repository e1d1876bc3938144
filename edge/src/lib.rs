//! edgeflags edge worker: entry point and router. Handlers stay small; policy lives in the
//! plain-Rust modules below, which build and test natively.
//!
//! Items are `pub(crate)` unless the CLI uses them (`measure`, `notify`). Dead code is
//! (and unused imports) checked where every caller is compiled: the control worker's wasm32 build, which holds
//! all host glue but the request worker's hand-off (`host/forward.rs`, checked in its own
//! build). A native build has no host glue, so policy the glue alone calls would read as
//! dead there.
#![cfg_attr(
    not(all(target_arch = "wasm32", feature = "control")),
    allow(dead_code, unused_imports)
)]

pub(crate) mod config;
pub(crate) mod dashboard;
pub(crate) mod error;
pub(crate) mod flags;
pub(crate) mod httpcache;
pub(crate) mod jwt;
pub mod measure;
pub mod notify;
pub(crate) mod traffic;

#[cfg(target_arch = "wasm32")]
mod host;

/// OFREP base path (open-feature/protocol v0.3).
#[cfg(target_arch = "wasm32")]
const OFREP: &str = "/ofrep/v1/evaluate/flags";

// See edge/Cargo.toml: faster than dlmalloc for the many small, short-lived allocations of a
// request; the heap grows with `memory.grow` as dlmalloc's does.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

#[cfg(target_arch = "wasm32")]
mod entry {
    use std::cell::RefCell;
    use std::rc::Rc;

    use worker::{event, Context, Env, Method, Request, Response, Result};

    use crate::config::Config;
    use crate::error::EdgeError;
    use crate::host;
    use crate::traffic::security::Policy;

    /// Settings parsed once per isolate (`host/isolate.rs`).
    fn settings<R>(f: impl FnOnce(&RefCell<host::isolate::Settings>) -> R) -> R {
        host::isolate::with(|i| f(&i.settings))
    }

    fn config(env: &Env) -> std::result::Result<Rc<Config>, EdgeError> {
        if let Some(c) = settings(|s| s.borrow().config.clone()) {
            return Ok(c);
        }
        // Not cached on error, so a fixed configuration is picked up without a restart.
        // Vars and secrets alike (IDENTITY_KEYS and EVALUATION_KEYS are secrets).
        let c = Rc::new(Config::from_lookup(|name| {
            env.var(name)
                .ok()
                .or_else(|| env.secret(name).ok())
                .map(|v| v.to_string())
        })?);
        settings(|s| s.borrow_mut().config = Some(c.clone()));
        Ok(c)
    }

    /// Runs once per isolate, before the first event: a panic (there should be none: policy
    /// code returns errors) then logs its message and location instead of only aborting.
    #[event(start)]
    fn start() {
        console_error_panic_hook::set_once();
    }

    #[event(fetch)]
    async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
        // The serialized URL's scheme, without parsing the whole URL (the proxy parses it once).
        let https = req.inner().url().starts_with("https:");
        let (req_method, req_path) = (req.method(), req.path());
        // The control worker tells the request worker that relayed a request when this
        // isolate took in a new flag-set version while answering it (a write committed here:
        // admin API, dashboard), so that one takes it in too (`traffic::plane::takes_in`).
        #[cfg(feature = "control")]
        let version_before = host::flags::active_version();
        let (res, own) = match route(req, &env, &ctx).await {
            // workers-rs panics converting a status outside 200..=599 into a JS Response:
            // whatever produced one, the visitor gets a clean 502 instead.
            Ok((res, _)) if !crate::traffic::proxy::sendable_status(res.status_code()) => {
                let status = res.status_code();
                worker::console_error!("refusing to send status {status}");
                let err = EdgeError::OriginUnreachable(format!("unusable status {status}"));
                (host::error_response(&err)?, true)
            }
            Ok(routed) => routed,
            Err(err) => {
                // A 5xx is the edge's or the origin's fault, never the visitor's: log why.
                if err.status() >= 500 {
                    worker::console_error!("{} {}: {err}", req_method, req_path);
                }
                (host::error_response(&err)?, true)
            }
        };
        let policy = settings(|s| {
            s.borrow_mut()
                .policy
                .get_or_insert_with(|| {
                    Rc::new(Policy::from_lookup(|name| {
                        env.var(name).ok().map(|v| v.to_string())
                    }))
                })
                .clone()
        });
        #[cfg(feature = "control")]
        if let Some(now) =
            host::flags::active_version().filter(|v| Some(v) != version_before.as_ref())
        {
            if let Err(e) = res
                .headers()
                .set(crate::traffic::plane::VERSION_HEADER, &now)
            {
                worker::console_error!("version hint not set: {e}");
            }
        }
        host::harden(res, &policy, own, https).or_else(|e| host::error_response(&e))
    }

    /// One endpoint's answer, still to come. Every endpoint is its own boxed future so that
    /// its state machine is its own wasm function, compiled when first called: written as one
    /// `async` match, LTO inlined every handler (dashboard, notifications, admin…) into the
    /// fetch handler's single poll function, and the first proxied request of an isolate
    /// waited ~100 ms for V8 to compile all of it (`bench/profile-edge.mjs --cold`).
    type Answer<'a> = std::pin::Pin<
        Box<dyn std::future::Future<Output = std::result::Result<Response, EdgeError>> + 'a>,
    >;

    /// Routes a request; the flag says whether the answer is the edge's own (not proxied).
    async fn route(
        req: Request,
        env: &Env,
        ctx: &Context,
    ) -> std::result::Result<(Response, bool), EdgeError> {
        let config = config(env)?;
        let (answer, own) = endpoint(req, env, ctx, config);
        answer.await.map(|r| (r, own))
    }

    /// The endpoint a request goes to, not yet run (see [`Answer`]); the flag says whether the
    /// answer is the edge's own (not proxied).
    fn endpoint<'a>(
        req: Request,
        env: &'a Env,
        ctx: &'a Context,
        config: Rc<Config>,
    ) -> (Answer<'a>, bool) {
        let path = req.path();
        let method = req.method();
        let proxied = |req| -> (Answer<'a>, bool) {
            let config = config.clone();
            (
                Box::pin(async move { host::request::proxy::handle(req, env, &config, ctx).await }),
                false,
            )
        };

        if let Some(rest) = path.strip_prefix(crate::OFREP) {
            let key = match rest {
                "" => None,
                k if k.starts_with('/') && k.len() > 1 => Some(k[1..].to_owned()),
                _ => return proxied(req),
            };
            let answer: Answer<'a> = match method {
                Method::Options => {
                    Box::pin(std::future::ready(host::ofrep::preflight(&req, &config)))
                }
                Method::Post => Box::pin(async move {
                    host::rate_limit(env, &req, "ofrep").await?;
                    host::ofrep::evaluate(req, env, &config, ctx, key.as_deref()).await
                }),
                m => Box::pin(std::future::ready(Err(EdgeError::MethodNotAllowed(
                    m.to_string(),
                )))),
            };
            return (answer, true);
        }
        let sub = match config.admin_subpath(&path) {
            Some(sub) => sub.to_owned(),
            // An origin's control endpoints (the demo's fault switch) are not for visitors.
            None if config.is_private(&path) => {
                return (
                    Box::pin(std::future::ready(Err(EdgeError::NotFound(path)))),
                    true,
                )
            }
            None => return proxied(req),
        };
        // The request worker hands the control plane's endpoints on (`crate::traffic::plane`).
        #[cfg(not(feature = "control"))]
        if crate::traffic::plane::plane_of(&sub) == crate::traffic::plane::Plane::Control {
            return (
                Box::pin(async move { host::forward::to_control(req, env, &config, &sub).await }),
                true,
            );
        }
        let answer: Answer<'a> = match sub.as_str() {
            "/health" => Box::pin(std::future::ready(host::json(
                &serde_json::json!({"ok": true, "edge": crate::traffic::proxy::EDGE_HEADER_VALUE}),
            ))),
            // Public and cheap, but not free: rate-limited like the other public endpoints.
            "/status" => Box::pin(async move {
                host::rate_limit(env, &req, "public").await?;
                status(env, &config).await
            }),
            "/client-flags" => Box::pin(async move {
                host::rate_limit(env, &req, "public").await?;
                client_flags(&req, env, &config).await
            }),
            // Clients report conversions here without an admin token (rate-limited).
            "/events" => Box::pin(async move {
                host::rate_limit(env, &req, "ofrep").await?;
                host::events::handle(req, env, &config, ctx).await
            }),
            #[cfg(feature = "control")]
            // The dashboard signs in with the admin token and keeps a session of its own.
            s if s == "/dashboard" || s.starts_with("/dashboard/") => Box::pin(async move {
                host::rate_limit(env, &req, "admin").await?;
                let rest = sub["/dashboard".len()..].to_owned();
                host::dashboard::handle(req, env, &config, &rest).await
            }),
            #[cfg(feature = "control")]
            // Web Push (issue 16): public subscriptions (rate-limited inside), admin sending.
            s if s.starts_with("/push/") => {
                Box::pin(async move { host::notify::public(req, env, &config, &sub).await })
            }
            #[cfg(feature = "control")]
            // The in-app inbox (issue 16): public, the visitor's own (rate-limited inside).
            s if s == "/inbox" || s.starts_with("/inbox/") => {
                Box::pin(
                    async move { host::notify::inbox::handle(req, env, &config, ctx, &sub).await },
                )
            }
            #[cfg(feature = "control")]
            s if s == "/notifications" || s.starts_with("/notifications/") => {
                Box::pin(async move {
                    host::rate_limit(env, &req, "admin").await?;
                    host::notify::admin(req, env, &config, &sub).await
                })
            }
            #[cfg(feature = "control")]
            _ => Box::pin(async move {
                host::rate_limit(env, &req, "admin").await?;
                host::flags::admin::handle(req, env, &config, ctx, &sub).await
            }),
            // Not reached: `plane_of` sent everything else to the control worker.
            #[cfg(not(feature = "control"))]
            _ => Box::pin(std::future::ready(Err(EdgeError::NotFound(path)))),
        };
        (answer, true)
    }

    /// The cron trigger: evaluates every guarded rollout's gates.
    #[cfg(feature = "control")]
    #[event(scheduled)]
    async fn scheduled(_event: worker::ScheduledEvent, env: Env, _ctx: worker::ScheduleContext) {
        let config = match config(&env) {
            Ok(c) => c,
            Err(e) => {
                worker::console_error!("rollout evaluation skipped: {e}");
                return;
            }
        };
        match host::flags::rollout::evaluate(&env, &config, "rollout (cron)", false).await {
            Ok(report) => worker::console_log!("rollout evaluation: {report}"),
            Err(e) => worker::console_error!("rollout evaluation failed: {e}"),
        }
    }

    /// The request worker has no cron trigger (the control worker's runs the rollouts); a
    /// scheduled event that reaches it anyway — `wrangler dev --test-scheduled`'s
    /// `/__scheduled`, which only the first worker answers — runs the control worker's.
    #[cfg(not(feature = "control"))]
    #[event(scheduled)]
    async fn scheduled(event: worker::ScheduledEvent, env: Env, _ctx: worker::ScheduleContext) {
        if let Err(e) = host::forward::scheduled(&env, event.cron()).await {
            worker::console_error!("scheduled event not passed on: {e}");
        }
    }

    /// The push delivery queue and its dead-letter queue (issue 16).
    #[cfg(feature = "control")]
    #[event(queue)]
    async fn queue(
        batch: worker::MessageBatch<serde_json::Value>,
        env: Env,
        ctx: Context,
    ) -> Result<()> {
        match config(&env) {
            Ok(config) => host::notify::consume(batch, &env, &config).await,
            Err(e) => {
                worker::console_error!("push queue: {e}");
                batch.retry_all();
            }
        }
        // The batch's delivery counts: a queue invocation has no later request whose
        // waitUntil would carry them, so it sends them itself (from its own waitUntil: the
        // acknowledgements need not wait for the metrics store).
        ctx.wait_until(async move { host::measure::flush_or_warn(&env).await });
        Ok(())
    }

    /// `GET {prefix}/client-flags`: definitions of the flags marked client-side, for offline
    /// evaluation in the service worker (public: only flags explicitly marked are included).
    async fn client_flags(
        req: &Request,
        env: &Env,
        config: &Config,
    ) -> std::result::Result<Response, EdgeError> {
        if req.method() != Method::Get {
            return Err(EdgeError::MethodNotAllowed(req.method().to_string()));
        }
        let active = host::flags::current(env, config).await?;
        let etag = format!("\"{}\"", active.version);
        let res = if crate::flags::ofrep::if_none_match(
            host::header(req, "if-none-match").as_deref(),
            &etag,
        ) {
            Response::empty().map_err(host::internal)?.with_status(304)
        } else {
            let res = Response::ok(active.client_document.clone()).map_err(host::internal)?;
            res.headers()
                .set("content-type", "application/json")
                .map_err(host::internal)?;
            res
        };
        res.headers().set("etag", &etag).map_err(host::internal)?;
        res.headers()
            .set("cache-control", "no-cache")
            .map_err(host::internal)?;
        Ok(res)
    }

    /// `GET {prefix}/status`: the isolate's flag set, and any problem with what KV holds.
    async fn status(env: &Env, config: &Config) -> std::result::Result<Response, EdgeError> {
        let current = host::flags::current(env, config).await;
        host::json(&serde_json::json!({
            "edge": crate::traffic::proxy::EDGE_HEADER_VALUE,
            "flagsKey": config.flags_key,
            // Whether visitor ids are signed (IDENTITY_KEYS): without it, ids can be chosen
            // and anonymous traffic counts as experiment units.
            "identity": {"signedIds": config.identity_keys.signing()},
            "isolate": host::flags::status_snapshot(),
            "routeProblems": host::flags::route_problems(),
            "proxy": host::request::proxy::counters(),
            "metrics": host::measure::isolate_status(),
            "error": current.err().map(|e| e.to_string()),
        }))
    }
}
