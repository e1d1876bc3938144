//! Admin API under `{ADMIN_PREFIX}`: read, replace, patch, kill switch, versions, rollback,
//! audit. Every call needs `Authorization: Bearer <token>`; nothing here is ever cached.

use serde_json::{json, Value};
use worker::{Context, Env, Method, Request, Response};

use super::flags::{self, Action};
use super::{header, internal, json, kv};
use crate::admin::{self, Change, FeatureToggle, FlagPatch, Tokens};
use crate::config::Config;
use crate::error::EdgeError;
use crate::store::{self, AuditRecord, Keys};

fn secret(env: &Env, name: &str) -> Option<String> {
    env.secret(name).ok().map(|s| s.to_string())
}

/// Handles `{prefix}{sub}` for an admin request.
pub async fn handle(
    mut req: Request,
    env: &Env,
    config: &Config,
    ctx: &Context,
    sub: &str,
) -> Result<Response, EdgeError> {
    let tokens = Tokens::parse(
        secret(env, "ADMIN_TOKENS").as_deref(),
        secret(env, "ADMIN_TOKEN").as_deref(),
    )?;
    let actor = tokens.authenticate(header(&req, "authorization").as_deref())?;
    let segments: Vec<&str> = sub.trim_matches('/').split('/').collect();
    let method = req.method();
    let if_match = header(&req, "if-match");
    match (method.clone(), segments.as_slice()) {
        (Method::Get, ["flags"]) => read(env, config).await,
        (Method::Put, ["flags"]) => {
            let body = super::body(&mut req, admin::MAX_BODY_BYTES).await?;
            let text = String::from_utf8(body)
                .map_err(|_| EdgeError::BadRequest("body is not UTF-8".into()))?;
            admin::validate(&text)?;
            let summary = format!("replaced the flag set ({} bytes)", text.len());
            apply(env, config, &actor, "replace", None, if_match, |_| {
                Ok(Change {
                    document: text,
                    summary,
                })
            })
            .await
        }
        (Method::Patch, ["flags", flag]) => {
            let patch: FlagPatch =
                admin::parse_body(&super::body(&mut req, admin::MAX_BODY_BYTES).await?)?;
            apply(env, config, &actor, "patch", Some(flag), if_match, |cur| {
                admin::patch_flag(cur, flag, &patch)
            })
            .await
        }
        (Method::Post, ["features", action @ ("disable" | "enable")]) => {
            let toggle: FeatureToggle =
                admin::parse_body(&super::body(&mut req, admin::MAX_BODY_BYTES).await?)?;
            let enabled = *action == "enable";
            let flag = toggle.flag.as_str();
            apply(env, config, &actor, action, Some(flag), if_match, |cur| {
                admin::set_state(cur, flag, enabled)
            })
            .await
        }
        (Method::Get, ["versions"]) => versions(env, config).await,
        (Method::Post, ["versions", version, "rollback"]) => {
            let keys = Keys::new(&config.flags_key);
            let store = kv(env)?;
            let entry = flags::list(&store, &keys.history_prefix())
                .await?
                .iter()
                .rev()
                .filter_map(|k| store::parse_history_key(&keys, k))
                .find(|e| e.version == *version)
                .ok_or_else(|| {
                    EdgeError::NotFound(format!("version {version} is not in the history"))
                })?;
            let text = store
                .get(&entry.key)
                .text()
                .await
                .map_err(internal)?
                .ok_or_else(|| {
                    EdgeError::NotFound(format!("version {version} is not in the history"))
                })?;
            admin::validate(&text)?;
            let summary = format!("rolled back to version {version}");
            apply(env, config, &actor, "rollback", None, if_match, |_| {
                Ok(Change {
                    document: text,
                    summary,
                })
            })
            .await
        }
        (Method::Get, ["audit"]) => audit(&req, env, config).await,
        (Method::Get, ["metrics"]) => super::metrics_api::prometheus(env, config).await,
        (Method::Get, ["features", "experiments", "results"]) => {
            super::metrics_api::results(&req, env, config, ctx).await
        }
        (Method::Post, ["rollouts", "evaluate"]) => {
            let dry_run = req
                .url()
                .map(|u| {
                    u.query_pairs()
                        .any(|(k, v)| k == "dryRun" && (v == "true" || v == "1"))
                })
                .unwrap_or(false);
            let report =
                super::rollout::evaluate(env, config, &format!("rollout ({actor})"), dry_run)
                    .await?;
            json(&report)
        }
        (Method::Post, ["cache", "purge"]) => {
            let purge: PurgeRequest =
                admin::parse_body(&super::body(&mut req, admin::MAX_BODY_BYTES).await?)?;
            purge_cache(env, config, ctx, purge, &actor).await
        }
        (
            _,
            ["flags"]
            | ["flags", _]
            | ["features", "disable" | "enable"]
            | ["versions"]
            | ["versions", _, "rollback"]
            | ["audit"]
            | ["metrics"]
            | ["features", "experiments", "results"]
            | ["rollouts", "evaluate"],
        ) => Err(EdgeError::MethodNotAllowed(method.to_string())),
        _ => Err(EdgeError::NotFound(format!("{}{sub}", config.admin_prefix))),
    }
}

/// Applies `change` to the stored document, checking `If-Match` against its version first.
async fn apply(
    env: &Env,
    config: &Config,
    actor: &str,
    action: &str,
    flag: Option<&str>,
    if_match: Option<String>,
    change: impl FnOnce(&str) -> Result<Change, EdgeError>,
) -> Result<Response, EdgeError> {
    let current = flags::stored(env, config).await?;
    let current_version = current.as_ref().map(|(v, _)| v.clone());
    if let Some(wanted) = if_match {
        let wanted = wanted
            .trim()
            .trim_start_matches("W/")
            .trim_matches('"')
            .to_owned();
        if wanted != "*" && Some(&wanted) != current_version.as_ref() {
            return Err(EdgeError::PreconditionFailed {
                current: current_version.unwrap_or_else(|| "none".into()),
            });
        }
    }
    let current_text = current
        .as_ref()
        .map(|(_, t)| t.as_str())
        .unwrap_or(r#"{"flags":{}}"#);
    let change = change(current_text)?;
    let summary = change.summary.clone();
    let action_record = Action {
        actor,
        action,
        flag,
        from_version: current_version.clone(),
    };
    let version = flags::commit(env, config, action_record, change).await?;
    let res = json(
        &json!({ "version": version, "previousVersion": current_version, "summary": summary }),
    )?;
    res.headers()
        .set("etag", &format!("\"{version}\""))
        .map_err(internal)?;
    Ok(res)
}

async fn read(env: &Env, config: &Config) -> Result<Response, EdgeError> {
    let (version, text) = flags::stored(env, config).await?.ok_or_else(|| {
        EdgeError::NotFound(format!("no flag set stored under {:?}", config.flags_key))
    })?;
    let doc: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    let res = json(&json!({ "version": version, "flagSet": doc }))?;
    res.headers()
        .set("etag", &format!("\"{version}\""))
        .map_err(internal)?;
    Ok(res)
}

async fn versions(env: &Env, config: &Config) -> Result<Response, EdgeError> {
    let keys = Keys::new(&config.flags_key);
    let history = flags::list(&kv(env)?, &keys.history_prefix()).await?;
    let entries: Vec<_> = history
        .iter()
        .rev()
        .filter_map(|k| store::parse_history_key(&keys, k))
        .collect();
    let current = flags::stored(env, config).await?.map(|(v, _)| v);
    json(&json!({ "current": current, "versions": entries }))
}

async fn audit(req: &Request, env: &Env, config: &Config) -> Result<Response, EdgeError> {
    let limit = req
        .url()
        .ok()
        .and_then(|u| {
            u.query_pairs()
                .find(|(k, _)| k == "limit")
                .and_then(|(_, v)| v.parse::<usize>().ok())
        })
        .unwrap_or(100)
        .clamp(1, 1000);
    let keys = Keys::new(&config.flags_key);
    let store = kv(env)?;
    let all = flags::list(&store, &keys.audit_prefix()).await?;
    let mut records: Vec<AuditRecord> = Vec::new();
    for key in all.iter().rev().take(limit) {
        if let Some(text) = store.get(key).text().await.map_err(internal)? {
            if let Ok(r) = serde_json::from_str(&text) {
                records.push(r);
            }
        }
    }
    json(&json!({ "records": records }))
}

/// `POST {prefix}/cache/purge` body: one of `url` (absolute) or `prefix` (a path).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PurgeRequest {
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    prefix: Option<String>,
}

async fn purge_cache(
    env: &Env,
    config: &Config,
    ctx: &Context,
    purge: PurgeRequest,
    actor: &str,
) -> Result<Response, EdgeError> {
    let at_ms = super::now_ms();
    let record = match (purge.url, purge.prefix) {
        (Some(url), None) => {
            let parsed =
                worker::Url::parse(&url).map_err(|e| EdgeError::BadRequest(format!("url: {e}")))?;
            // Delete this location's entries for every variant now; KV carries it elsewhere.
            let table = flags::route_table(env, config).await?;
            let active = flags::current(env, config, None).await.ok();
            super::cache::delete_all(
                ctx,
                super::cache::keys_for(parsed.as_str(), &table, active.as_ref().map(|a| &a.set)),
            );
            store::Purge {
                url: Some(crate::httpcache::normalise_url(parsed.as_str())),
                prefix: None,
                at_ms,
            }
        }
        (None, Some(prefix)) if prefix.starts_with('/') => store::Purge {
            url: None,
            prefix: Some(prefix),
            at_ms,
        },
        _ => {
            return Err(EdgeError::BadRequest(
                "give exactly one of \"url\" (absolute) or \"prefix\" (a path starting with /)"
                    .into(),
            ))
        }
    };
    flags::record_purge(env, config, record.clone()).await?;
    json(&json!({ "purged": record, "by": actor }))
}
