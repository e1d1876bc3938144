//! The isolate's flag set: served from memory, re-checked in KV at most every
//! `REFRESH_SECONDS`, replaced only by documents that compile. Admin writes go through
//! [`commit`], which stores the version, its history entry and an audit record.

use std::cell::RefCell;
use std::rc::Rc;

use worker::{Context, Env};

use super::{internal, kv, now_ms};
use crate::admin::Change;
use crate::config::Config;
use crate::error::EdgeError;
use crate::live::{Active, LiveFlags, Refresh};
use crate::split::RouteTable;
use crate::store::{self, AuditRecord, Keys};

thread_local! {
    static LIVE: RefCell<LiveFlags> = RefCell::new(LiveFlags::default());
}

/// The active flag set, re-checking KV when the refresh interval has passed. A fresh
/// isolate whose stored document is malformed falls back to the last-known-good copy.
pub async fn current(
    env: &Env,
    config: &Config,
    ctx: Option<&Context>,
) -> Result<Rc<Active>, EdgeError> {
    let now = now_ms();
    if LIVE.with(|l| l.borrow().needs_check(now, config.refresh_ms)) {
        let keys = Keys::new(&config.flags_key);
        let store = kv(env)?;
        let text = store.get(keys.active()).text().await.map_err(internal)?;
        let outcome = LIVE.with(|l| l.borrow_mut().refresh(text.as_deref(), now));
        match outcome {
            Refresh::Replaced { .. } => {
                // Remember it as last-known-good, off the hot path.
                if let (Some(ctx), Some(text)) = (ctx, text) {
                    let lkg = keys.last_good();
                    ctx.wait_until(async move {
                        if let Ok(put) = store.put(&lkg, text) {
                            let _ = put.execute().await;
                        }
                    });
                }
            }
            Refresh::Rejected { .. } | Refresh::Missing
                if LIVE.with(|l| l.borrow().active().is_none()) =>
            {
                if let Some(good) = store
                    .get(&keys.last_good())
                    .text()
                    .await
                    .map_err(internal)?
                {
                    let _ = LIVE.with(|l| l.borrow_mut().install(&good, now));
                }
            }
            _ => {}
        }
    }
    LIVE.with(|l| l.borrow().active()).ok_or_else(|| {
        let why = LIVE.with(|l| {
            let l = l.borrow();
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

/// A snapshot of the isolate's view for the status endpoint.
pub fn status_snapshot() -> serde_json::Value {
    LIVE.with(|l| {
        let l = l.borrow();
        let active = l.active();
        serde_json::json!({
            "active": active.as_ref().map(|a| serde_json::json!({
                "version": a.version,
                "documentVersion": a.set.metadata().get("version"),
                "flags": a.set.len(),
                "loadedAtMs": a.loaded_at_ms,
                "warnings": crate::live::findings(&a.warnings),
            })),
            "problem": l.problem(),
            "missing": l.is_missing(),
        })
    })
}

/// The document currently stored in KV (not the isolate's copy: admin changes start from
/// the freshest state this location has), with its version.
pub async fn stored(env: &Env, config: &Config) -> Result<Option<(String, String)>, EdgeError> {
    let keys = Keys::new(&config.flags_key);
    let text = kv(env)?.get(keys.active()).text().await.map_err(internal)?;
    Ok(text.map(|t| (store::version_of(&t), t)))
}

/// What an admin change is, for the audit log.
pub struct Action<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub flag: Option<&'a str>,
    pub from_version: Option<String>,
}

/// Stores a validated change: active document, last-known-good copy, history entry, audit
/// record; prunes history and audit to their limits; activates it on this isolate at once.
pub async fn commit(
    env: &Env,
    config: &Config,
    action: Action<'_>,
    change: Change,
) -> Result<String, EdgeError> {
    let keys = Keys::new(&config.flags_key);
    let store = kv(env)?;
    let now = now_ms();
    let version = store::version_of(&change.document);
    let put = |key: String, value: String| {
        let store = &store;
        async move {
            store
                .put(&key, value)
                .map_err(internal)?
                .execute()
                .await
                .map_err(internal)
        }
    };
    put(keys.active().to_owned(), change.document.clone()).await?;
    put(keys.last_good(), change.document.clone()).await?;
    put(keys.history(now, &version), change.document.clone()).await?;
    let record = AuditRecord {
        at_ms: now,
        actor: action.actor.to_owned(),
        action: action.action.to_owned(),
        flag: action.flag.map(str::to_owned),
        from_version: action.from_version,
        to_version: version.clone(),
        summary: change.summary,
    };
    let seq = super::random_id()
        .and_then(|id| u32::from_str_radix(id.get(..8)?, 16).ok())
        .unwrap_or(0);
    put(
        keys.audit(now, seq),
        serde_json::to_string(&record).map_err(internal)?,
    )
    .await?;
    prune(&store, &keys.history_prefix(), config.history_limit).await?;
    prune(&store, &keys.audit_prefix(), config.audit_limit).await?;
    LIVE.with(|l| l.borrow_mut().install(&change.document, now))
        .map_err(|errors| EdgeError::InvalidFlagSet(crate::live::findings(&errors)))?;
    Ok(version)
}

/// Every key under `prefix`, ascending.
pub async fn list(store: &worker::KvStore, prefix: &str) -> Result<Vec<String>, EdgeError> {
    let mut keys = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut req = store.list().prefix(prefix.to_owned());
        if let Some(c) = cursor.take() {
            req = req.cursor(c);
        }
        let page = req.execute().await.map_err(internal)?;
        keys.extend(page.keys.into_iter().map(|k| k.name));
        match page.cursor {
            Some(c) if !page.list_complete && !c.is_empty() => cursor = Some(c),
            _ => break,
        }
    }
    keys.sort();
    Ok(keys)
}

async fn prune(store: &worker::KvStore, prefix: &str, limit: usize) -> Result<(), EdgeError> {
    let keys = list(store, prefix).await?;
    for key in store::prune(&keys, limit) {
        store.delete(key).await.map_err(internal)?;
    }
    Ok(())
}

/// The route table: KV `routes` when present and valid, else the built-in default. Checked
/// on the same interval as the flag set; a malformed document keeps the last good table.
pub async fn route_table(env: &Env, config: &Config) -> Result<Rc<RouteTable>, EdgeError> {
    let now = now_ms();
    let stale = ROUTES.with(|r| {
        let r = r.borrow();
        r.table.is_none()
            || r.checked_at
                .is_none_or(|at| now.saturating_sub(at) >= config.refresh_ms || now < at)
    });
    if stale {
        let text = kv(env)?
            .get(&config.routes_key)
            .text()
            .await
            .map_err(internal)?;
        let var = |name: &str| env.var(name).ok().map(|v| v.to_string());
        ROUTES.with(|r| {
            let mut r = r.borrow_mut();
            r.checked_at = Some(now);
            match text {
                None => {
                    r.problem = None;
                    r.table = Some(Rc::new(RouteTable::default_table(
                        &config.origin,
                        config.canary_origin.as_deref(),
                        &config.split_flag,
                    )));
                }
                Some(text) => match RouteTable::parse(&text, var) {
                    Ok(t) => {
                        r.problem = None;
                        r.table = Some(Rc::new(t));
                    }
                    Err(errors) => {
                        r.problem = Some(
                            errors
                                .into_iter()
                                .map(|e| format!("{}: {}", e.path, e.message))
                                .collect(),
                        );
                        if r.table.is_none() {
                            r.table = Some(Rc::new(RouteTable::default_table(
                                &config.origin,
                                config.canary_origin.as_deref(),
                                &config.split_flag,
                            )));
                        }
                    }
                },
            }
        });
    }
    ROUTES
        .with(|r| r.borrow().table.clone())
        .ok_or_else(|| EdgeError::Internal("no route table".into()))
}

/// Problems with the stored route document, for the status endpoint.
pub fn route_problems() -> Option<Vec<String>> {
    ROUTES.with(|r| r.borrow().problem.clone())
}

#[derive(Default)]
struct RouteState {
    table: Option<Rc<RouteTable>>,
    checked_at: Option<u64>,
    problem: Option<Vec<String>>,
}

thread_local! {
    static ROUTES: RefCell<RouteState> = RefCell::new(RouteState::default());
}

#[derive(Default)]
struct PurgeState {
    list: Rc<Vec<store::Purge>>,
    checked_at: Option<u64>,
}

thread_local! {
    static PURGES: RefCell<PurgeState> = RefCell::new(PurgeState::default());
}

/// The latest purge covering `url`, re-reading the KV purge records on the refresh interval.
pub async fn purged_after(
    env: &Env,
    config: &Config,
    url: &worker::Url,
) -> Result<Option<u64>, EdgeError> {
    let now = now_ms();
    let stale = PURGES.with(|p| {
        p.borrow()
            .checked_at
            .is_none_or(|at| now.saturating_sub(at) >= config.refresh_ms || now < at)
    });
    if stale {
        let text = kv(env)?
            .get(&store::purges_key(&config.flags_key))
            .text()
            .await
            .map_err(internal)?;
        let list: Vec<store::Purge> = text
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        PURGES.with(|p| {
            let mut p = p.borrow_mut();
            p.list = Rc::new(list);
            p.checked_at = Some(now);
        });
    }
    let normalised = crate::httpcache::normalise_url(url.as_str());
    Ok(PURGES.with(|p| store::purged_after(&p.borrow().list, &normalised, url.path())))
}

/// Records a purge in KV (every location honours it) and in this isolate at once.
pub async fn record_purge(
    env: &Env,
    config: &Config,
    purge: store::Purge,
) -> Result<(), EdgeError> {
    let key = store::purges_key(&config.flags_key);
    let kv = kv(env)?;
    let list: Vec<store::Purge> = kv
        .get(&key)
        .text()
        .await
        .map_err(internal)?
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let list = store::add_purge(list, purge);
    kv.put(&key, serde_json::to_string(&list).map_err(internal)?)
        .map_err(internal)?
        .execute()
        .await
        .map_err(internal)?;
    PURGES.with(|p| {
        let mut p = p.borrow_mut();
        p.list = Rc::new(list);
        p.checked_at = Some(now_ms());
    });
    Ok(())
}
