//! Admin API under `{ADMIN_PREFIX}`: read, replace, patch, kill switch, versions, rollback,
//! audit. Every call needs `Authorization: Bearer <token>`; nothing here is ever cached.

use serde_json::{json, Value};
use worker::{Context, Env, Method, Request, Response};

use crate::host::flags::control;
use crate::host::{header, internal, json};
use crate::config::Config;
use crate::error::EdgeError;
use crate::flags::admin::{self, FeatureToggle, FlagPatch};
use crate::flags::control::Command;
use crate::flags::store;

/// Handles `{prefix}{sub}` for an admin request.
pub(crate) async fn handle(
    mut req: Request,
    env: &Env,
    config: &Config,
    ctx: &Context,
    sub: &str,
) -> Result<Response, EdgeError> {
    let tokens = crate::host::admin_tokens(env)?;
    let actor = tokens.authenticate(header(&req, "authorization").as_deref())?;
    let segments: Vec<&str> = sub.trim_matches('/').split('/').collect();
    let method = req.method();
    let if_match = header(&req, "if-match");
    let write = |command: Command| write(env, config, &actor, if_match.clone(), command);
    match (method.clone(), segments.as_slice()) {
        (Method::Get, ["flags"]) => read(env, config).await,
        (Method::Put, ["flags"]) => {
            let body = crate::host::body(&mut req, admin::MAX_BODY_BYTES).await?;
            let document = String::from_utf8(body)
                .map_err(|_| EdgeError::BadRequest("body is not UTF-8".into()))?;
            write(Command::Replace { document }).await
        }
        (Method::Patch, ["flags", flag]) => {
            let patch: FlagPatch =
                admin::parse_body(&crate::host::body(&mut req, admin::MAX_BODY_BYTES).await?)?;
            write(Command::Patch {
                flag: (*flag).to_owned(),
                patch,
            })
            .await
        }
        (Method::Post, ["features", action @ ("disable" | "enable")]) => {
            let toggle: FeatureToggle =
                admin::parse_body(&crate::host::body(&mut req, admin::MAX_BODY_BYTES).await?)?;
            write(Command::SetState {
                flag: toggle.flag,
                enabled: *action == "enable",
            })
            .await
        }
        (Method::Get, ["versions"]) => json(&control::versions(env, config).await?),
        (Method::Post, ["versions", version, "rollback"]) => {
            write(Command::Rollback {
                version: (*version).to_owned(),
            })
            .await
        }
        (Method::Get, ["audit"]) => {
            let limit = req
                .url()
                .ok()
                .and_then(|u| {
                    u.query_pairs()
                        .find(|(k, _)| k == "limit")
                        .and_then(|(_, v)| v.parse::<u64>().ok())
                })
                .unwrap_or(100)
                .clamp(1, 1000);
            json(&control::audit(env, config, limit).await?)
        }
        (Method::Get, ["metrics"]) => crate::host::measure::api::prometheus(env, config).await,
        (Method::Get, ["metrics", "timeline"]) => crate::host::measure::api::timeline(&req, env).await,
        (Method::Get, ["features", "experiments", "results"]) => {
            crate::host::measure::api::results(&req, env, config).await
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
                crate::host::flags::rollout::evaluate(env, config, &format!("rollout ({actor})"), dry_run)
                    .await?;
            json(&report)
        }
        (Method::Post, ["rollouts", flag, "resume"]) => {
            write(Command::Resume {
                flag: (*flag).to_owned(),
            })
            .await
        }
        (Method::Post, ["cache", "purge"]) => {
            let purge: PurgeRequest =
                admin::parse_body(&crate::host::body(&mut req, admin::MAX_BODY_BYTES).await?)?;
            let purge = purge_record(env, config, ctx, purge).await?;
            write(Command::Purge { purge }).await
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
            | ["metrics", "timeline"]
            | ["features", "experiments", "results"]
            | ["rollouts", "evaluate"]
            | ["rollouts", _, "resume"]
            | ["cache", "purge"],
        ) => Err(EdgeError::MethodNotAllowed(method.to_string())),
        _ => Err(EdgeError::NotFound(format!("{}{sub}", config.admin_prefix))),
    }
}

/// Sends a change to the writer; a committed change is active on this isolate at once.
async fn write(
    env: &Env,
    config: &Config,
    actor: &str,
    if_match: Option<String>,
    command: Command,
) -> Result<Response, EdgeError> {
    let answer = control::command(env, config, actor, if_match, command).await?;
    if answer.committed {
        if let Err(e) = crate::host::flags::check_now(env, config).await {
            worker::console_error!("could not take in the new version at once: {e}");
        }
    }
    let res = json(&answer)?;
    if let Some(version) = &answer.version {
        res.headers()
            .set("etag", &format!("\"{version}\""))
            .map_err(internal)?;
    }
    Ok(res)
}

async fn read(env: &Env, config: &Config) -> Result<Response, EdgeError> {
    let (version, text) = control::document(env, config).await?.ok_or_else(|| {
        EdgeError::NotFound(format!("no flag set stored under {:?}", config.flags_key))
    })?;
    let doc: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    let res = json(&json!({ "version": version, "flagSet": doc }))?;
    res.headers()
        .set("etag", &format!("\"{version}\""))
        .map_err(internal)?;
    Ok(res)
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

/// The purge record for a request; an exact URL is also deleted, for every variant, from the
/// cache this worker sees. That is best effort: since the split (issue 15) this runs in the
/// control worker, whose `caches.default` need not be the one the request worker stores in
/// (on Cloudflare a worker without a zone route has its own). What purges is the record: the
/// request worker takes it in with the writer's head — at once on the isolate that relayed
/// the purge — and treats every entry stored before it as absent.
async fn purge_record(
    env: &Env,
    config: &Config,
    ctx: &Context,
    purge: PurgeRequest,
) -> Result<store::Purge, EdgeError> {
    let at_ms = crate::host::now_ms();
    match (purge.url, purge.prefix) {
        (Some(url), None) => {
            let parsed =
                worker::Url::parse(&url).map_err(|e| EdgeError::BadRequest(format!("url: {e}")))?;
            let table = crate::host::flags::route_table(env, config).await?;
            let active = crate::host::flags::current(env, config).await.ok();
            crate::host::request::cache::delete_all(
                ctx,
                crate::host::request::cache::keys_for(parsed.as_str(), &table, active.as_ref().map(|a| &a.set)),
            );
            Ok(store::Purge {
                url: Some(crate::httpcache::normalise_url(parsed.as_str())),
                prefix: None,
                at_ms,
            })
        }
        (None, Some(prefix)) if prefix.starts_with('/') => Ok(store::Purge {
            url: None,
            prefix: Some(prefix),
            at_ms,
        }),
        _ => Err(EdgeError::BadRequest(
            "give exactly one of \"url\" (absolute) or \"prefix\" (a path starting with /)".into(),
        )),
    }
}
