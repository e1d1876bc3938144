//! The isolate's flag set: served from memory, re-checked with the writer (the control-plane
//! Durable Object) at most every `REFRESH_SECONDS` — a version check that carries the
//! document only when it changed — and read from KV, its replica, when the writer cannot be
//! reached. Replaced only by documents that compile. Cache purge records come along with the
//! same check.

// The head check's calls to the writer (both workers); the writer itself, the admin API and
// the rollout controller (control worker).
pub(crate) mod control;
crate::host::control_only!(admin, rollout, writer);

use std::cell::RefCell;
use std::rc::Rc;

use worker::Env;

use crate::config::Config;
use crate::error::EdgeError;
use crate::flags::control::HeadQuery;
use crate::flags::live::{Active, LiveFlags, Problem, Refresh};
use crate::flags::store::{self, Keys};
use crate::host::{internal, kv, now_ms};
use crate::traffic::split::{RouteTable, Routes};

/// What this module keeps per isolate, in one place: the flag set, where its last check got
/// its answer, the route table and the purge records.
#[derive(Default)]
pub(crate) struct FlagState {
    live: LiveFlags,
    source: Source,
    routes: Routes,
    purges: PurgeState,
}

/// This module's part of the isolate's state (`host/isolate.rs`).
fn state<R>(f: impl FnOnce(&RefCell<FlagState>) -> R) -> R {
    crate::host::isolate::with(|i| f(&i.flags))
}

/// Where the last check got its answer, and what the writer said of KV.
#[derive(Default)]
struct Source {
    writer_reachable: Option<bool>,
    writer_version: Option<String>,
    kv_refused: Option<Problem>,
}

/// The active flag set, re-checking with the writer when the refresh interval has passed.
pub(crate) async fn current(env: &Env, config: &Config) -> Result<Rc<Active>, EdgeError> {
    let now = now_ms();
    if state(|i| i.borrow().live.needs_check(now, config.refresh_ms)) {
        check(env, config, now).await?;
    }
    state(|i| i.borrow().live.active()).ok_or_else(|| {
        let why = state(|i| {
            let i = i.borrow();
            let l = &i.live;
            match l.problem() {
                Some(p) => format!(
                    "the stored flag set is invalid ({} errors, see the status endpoint)",
                    p.errors.len()
                ),
                None => format!("no flag set stored under KV key {:?}", config.flags_key),
            }
        });
        EdgeError::NoFlagSet(why)
    })
}

/// The route table and the flag set as this isolate holds them, when neither is due for a
/// check (`host/request/fast.rs`: a request that would check takes the full path, which does).
#[cfg(not(feature = "control"))]
pub(crate) fn fresh(now: u64, refresh_ms: u64) -> Option<(Rc<RouteTable>, Option<Rc<Active>>)> {
    state(|i| {
        let i = i.borrow();
        if i.live.needs_check(now, refresh_ms) || i.routes.table.needs_check(now, refresh_ms) {
            return None;
        }
        Some((i.routes.table.get()?, i.live.active()))
    })
}

/// Takes in a change this isolate just made through the writer, so it is active here at once.
pub(crate) async fn check_now(env: &Env, config: &Config) -> Result<(), EdgeError> {
    check(env, config, now_ms()).await
}

async fn check(env: &Env, config: &Config, now: u64) -> Result<(), EdgeError> {
    state(|i| i.borrow_mut().live.claim_check(now));
    let query = HeadQuery {
        have: state(|i| i.borrow().live.active().map(|a| a.version.clone())),
        purges_seq: state(|i| i.borrow().purges.seq),
    };
    match crate::host::flags::control::head(env, config, &query).await {
        Ok(answer) if answer.version.is_some() => {
            if let Some(document) = &answer.document {
                state(|i| i.borrow_mut().live.refresh(Some(document), now));
            }
            if let Some(list) = answer.purges {
                state(|i| {
                    let mut i = i.borrow_mut();
                    let p = &mut i.purges;
                    p.list = Rc::new(list);
                    p.seq = Some(answer.purges_seq);
                });
            }
            state(|i| {
                i.borrow_mut().source = Source {
                    writer_reachable: Some(true),
                    writer_version: answer.version,
                    kv_refused: answer.kv_refused,
                }
            });
            Ok(())
        }
        // Nothing committed yet (an empty namespace, or a first document that was refused).
        Ok(answer) => {
            state(|i| {
                i.borrow_mut().source = Source {
                    writer_reachable: Some(true),
                    writer_version: None,
                    kv_refused: answer.kv_refused,
                }
            });
            from_kv(env, config, now).await
        }
        Err(e) => {
            worker::console_error!("flag writer unreachable, reading the KV replica: {e}");
            state(|i| i.borrow_mut().source.writer_reachable = Some(false));
            from_kv(env, config, now).await
        }
    }
}

/// The fallback: the document KV holds, or its last-known-good copy for a fresh isolate
/// whose stored document is malformed; the purge records KV holds.
async fn from_kv(env: &Env, config: &Config, now: u64) -> Result<(), EdgeError> {
    let keys = Keys::new(&config.flags_key);
    let store = kv(env)?;
    let text = store.get(keys.active()).text().await.map_err(internal)?;
    let outcome = state(|i| i.borrow_mut().live.refresh(text.as_deref(), now));
    if matches!(outcome, Refresh::Rejected { .. } | Refresh::Missing)
        && state(|i| i.borrow().live.active().is_none())
    {
        if let Some(good) = store
            .get(&keys.last_good())
            .text()
            .await
            .map_err(internal)?
        {
            let _ = state(|i| i.borrow_mut().live.install(&good, now));
        }
    }
    let purges: Vec<store::Purge> = store
        .get(&store::purges_key(&config.flags_key))
        .text()
        .await
        .map_err(internal)?
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    state(|i| {
        let mut i = i.borrow_mut();
        let p = &mut i.purges;
        p.list = Rc::new(purges);
        p.seq = None;
    });
    Ok(())
}

/// The version of the flag set this isolate has active, if any (no I/O).
pub(crate) fn active_version() -> Option<String> {
    state(|i| i.borrow().live.active().map(|a| a.version.clone()))
}

/// A snapshot of the isolate's view for the status endpoint.
pub(crate) fn status_snapshot() -> serde_json::Value {
    let control = state(|i| {
        let i = i.borrow();
        let s = &i.source;
        serde_json::json!({
            "writerReachable": s.writer_reachable,
            "version": s.writer_version,
            "kvRefused": s.kv_refused,
        })
    });
    state(|i| {
        let i = i.borrow();
        let l = &i.live;
        let active = l.active();
        serde_json::json!({
            "active": active.as_ref().map(|a| serde_json::json!({
                "version": a.version,
                "documentVersion": a.set.metadata().get("version"),
                "flags": a.set.len(),
                "loadedAtMs": a.loaded_at_ms,
                "warnings": crate::flags::live::findings(&a.warnings),
                // Flags that answer PARSE_ERROR (a document read as flagd reads a file keeps
                // them), each with its errors and their JSON paths.
                "flagErrors": a.set.flag_errors()
                    .map(|(flag, errors)| (flag.to_owned(), serde_json::json!(crate::flags::live::findings(errors))))
                    .collect::<serde_json::Map<_, _>>(),
            })),
            "problem": l.problem(),
            "missing": l.is_missing(),
            "controlPlane": control,
        })
    })
}

/// The route table: KV `routes` when present and valid, else the built-in default. Checked
/// on the same interval as the flag set; a malformed document keeps the last good table.
pub(crate) async fn route_table(env: &Env, config: &Config) -> Result<Rc<RouteTable>, EdgeError> {
    let now = now_ms();
    if state(|i| i.borrow().routes.table.needs_check(now, config.refresh_ms)) {
        state(|i| i.borrow_mut().routes.begin_check(now));
        let text = match kv(env)?.get(&config.routes_key).text().await {
            Ok(text) => text,
            // KV unreachable: the table in hand serves until the next check.
            Err(e) => match state(|i| i.borrow().routes.table.get()) {
                Some(table) => {
                    worker::console_error!("route table check failed: {e}");
                    return Ok(table);
                }
                None => return Err(internal(e)),
            },
        };
        let var = |name: &str| env.var(name).ok().map(|v| v.to_string());
        let default = || {
            RouteTable::default_table(
                &config.origin,
                config.canary_origin.as_deref(),
                &config.split_flag,
            )
        };
        state(|i| {
            i.borrow_mut()
                .routes
                .take(text.as_deref(), var, default, now)
        });
    }
    state(|i| i.borrow().routes.table.get())
        .ok_or_else(|| EdgeError::Internal("no route table".into()))
}

/// Problems with the stored route document, for the status endpoint.
pub(crate) fn route_problems() -> Option<Vec<String>> {
    state(|i| i.borrow().routes.problem.clone())
}

#[derive(Default)]
struct PurgeState {
    list: Rc<Vec<store::Purge>>,
    /// The writer's purge sequence number this list reflects (`None`: read from KV).
    seq: Option<u64>,
}

/// The latest purge covering a URL (normalised as for its cache key, and its path), as of
/// the isolate's last check (see [`current`]).
pub(crate) fn purged_after(normalised: &str, path: &str) -> Option<u64> {
    state(|i| store::purged_after(&i.borrow().purges.list, normalised, path))
}
