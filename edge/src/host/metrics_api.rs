//! The HTTP side of measurement: Prometheus text, experiment results (JSON/CSV) and the
//! public client-events endpoint. Reads go through the metrics Durable Object after a flush.

use serde_json::{json, Value};
use worker::{Context, Env, Method, Request, Response};

use super::metrics::{
    call, enabled, flush_or_warn, record_events, ArmCounts, ArmsQuery, DecisionRecord,
};
use crate::error::EdgeError;
use crate::metrics::Totals;

/// `GET {prefix}/metrics`: Prometheus text (version 0.0.4) of the totals.
pub async fn prometheus(env: &Env, config: &crate::config::Config) -> Result<Response, EdgeError> {
    flush_or_warn(env).await;
    let mut totals: Totals = call(env, "/totals", &json!({})).await?;
    if let Ok(Some((_, text))) = super::control::document(env, config).await {
        if let Ok(doc) = serde_json::from_str::<Value>(&text) {
            if let Ok(plans) = crate::rollout::plans(&doc) {
                totals.rollouts = plans
                    .iter()
                    .map(|(plan, state)| {
                        let percent = match state.status {
                            crate::rollout::Status::RolledBack => 0,
                            _ if state.stage_started_ms.is_none() => 0,
                            _ => plan.stages.get(state.stage).copied().unwrap_or(0),
                        };
                        let status = serde_json::to_value(state.status)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_owned))
                            .unwrap_or_default();
                        (plan.flag.clone(), percent, status)
                    })
                    .collect();
            }
        }
    }
    super::text(
        crate::metrics::prometheus(&totals),
        "text/plain; version=0.0.4; charset=utf-8",
    )
}

/// `GET {prefix}/features/experiments/results[?format=csv]`: every experiment's results in
/// its flag's current epoch, and the recent rollout decisions.
pub async fn results(
    req: &Request,
    env: &Env,
    config: &crate::config::Config,
) -> Result<Response, EdgeError> {
    let csv = req
        .url()
        .map(|u| u.query_pairs().any(|(k, v)| k == "format" && v == "csv"))
        .unwrap_or(false);
    let (out, decisions, version) = results_data(env, config).await?;
    if csv {
        return super::text(
            crate::experiments::csv(&out),
            "text/csv; charset=utf-8; header=present",
        );
    }
    // Delivery outcomes per channel and the delivery-success ratio (metrics::OUTCOMES).
    let notifications: Vec<Value> = super::metrics::notifications(env, None)
        .await?
        .iter()
        .map(crate::metrics::ChannelDeliveries::report)
        .collect();
    super::json(&json!({
        "version": version,
        "experiments": out,
        "rolloutDecisions": decisions,
        "notifications": notifications,
    }))
}

/// Every experiment's results in its flag's current epoch, the recent rollout decisions and
/// the flag-set version (the results endpoint and the dashboard show the same).
pub async fn results_data(
    env: &Env,
    config: &crate::config::Config,
) -> Result<
    (
        Vec<crate::experiments::ExperimentResult>,
        Vec<DecisionRecord>,
        String,
    ),
    EdgeError,
> {
    flush_or_warn(env).await;
    let active = super::flags::current(env, config).await?;
    let mut out = Vec::new();
    for spec in &active.experiments {
        let arms: Vec<ArmCounts> = call(
            env,
            "/arms",
            &ArmsQuery {
                flag: spec.flag.clone(),
                epoch: spec.epoch.clone(),
                event: spec.conversion_event.clone(),
            },
        )
        .await?;
        out.push(crate::experiments::result(spec, &arms));
    }
    let decisions: Vec<DecisionRecord> = call(env, "/decisions", &json!({})).await?;
    Ok((out, decisions, active.version.clone()))
}

/// Largest accepted events body.
const MAX_EVENTS_BODY: usize = 64 * 1024;
/// Most events accepted in one call.
const MAX_EVENTS: usize = 100;

/// `POST {prefix}/events`: conversion events from clients, in the OpenFeature tracking shape
/// (`{"trackingEventName", "context": {"targetingKey"}, "trackingEventDetails": {"value"}}`),
/// one or `{"events": [...]}`. The unit is the context's targetingKey, else the visitor's
/// edge identity; it is hashed before it is stored.
pub async fn events(
    mut req: Request,
    env: &Env,
    config: &crate::config::Config,
    ctx: &Context,
) -> Result<Response, EdgeError> {
    if req.method() != Method::Post {
        return Err(EdgeError::MethodNotAllowed(req.method().to_string()));
    }
    let body = super::body(&mut req, MAX_EVENTS_BODY).await?;
    let parsed: Value = serde_json::from_slice(&body)
        .map_err(|e| EdgeError::BadRequest(format!("invalid JSON: {e}")))?;
    let items: Vec<&Value> = match parsed.get("events") {
        Some(Value::Array(list)) => list.iter().collect(),
        Some(_) => return Err(EdgeError::BadRequest("events must be an array".into())),
        None => vec![&parsed],
    };
    if items.is_empty() || items.len() > MAX_EVENTS {
        return Err(EdgeError::BadRequest(format!(
            "send between 1 and {MAX_EVENTS} events"
        )));
    }
    // No new id here: an event from a visitor without one has no unit of its own.
    let visitor = super::jwt::visitor(&req, env, config, false).await;
    let api_caller = config
        .evaluation_keys
        .authenticate(super::header(&req, "authorization").as_deref())
        .is_ok();
    // (unit — None for a targetingKey the edge cannot vouch for —, [(event, value)])
    type ByUnit = Vec<(Option<String>, Vec<(String, Option<f64>)>)>;
    let mut by_unit: ByUnit = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let name = item
            .get("trackingEventName")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty() && n.len() <= 128)
            .ok_or_else(|| {
                EdgeError::BadRequest(format!(
                    "events[{i}].trackingEventName: a non-empty string of at most 128 characters is required"
                ))
            })?;
        let key = match item.pointer("/context/targetingKey") {
            Some(Value::String(k)) if !k.is_empty() => Some(k.clone()),
            Some(_) => {
                return Err(EdgeError::BadRequest(format!(
                    "events[{i}].context.targetingKey must be a non-empty string"
                )))
            }
            None => visitor.key.clone(),
        }
        .ok_or_else(|| {
            EdgeError::TargetingKeyMissing(format!(
                "events[{i}]: no context.targetingKey and no edge identity"
            ))
        })?;
        let value = item
            .pointer("/trackingEventDetails/value")
            .and_then(Value::as_f64);
        // A conversion counts only for a unit the edge can vouch for: the caller's own
        // identity or an API-keyed server's; other events still count in the totals.
        let unit =
            crate::identity::counted_unit(Some(&key), &visitor, api_caller, &config.identity_keys)
                .map(crate::metrics::unit_id);
        match by_unit.iter_mut().find(|(u, _)| *u == unit) {
            Some((_, list)) => list.push((name.to_owned(), value)),
            None => by_unit.push((unit, vec![(name.to_owned(), value)])),
        }
    }
    let accepted: usize = by_unit.iter().map(|(_, l)| l.len()).sum();
    // Only declared names get a series of their own (bounded label cardinality).
    let declared = super::flags::current(env, config)
        .await
        .map(|a| {
            a.experiments
                .iter()
                .filter_map(|s| s.conversion_event.clone())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let is_declared = |name: &str| {
        declared.iter().any(|d| d == name) || config.event_names.iter().any(|d| d == name)
    };
    for (_, list) in &mut by_unit {
        for (name, _) in list.iter_mut() {
            *name = crate::metrics::event_series(name, is_declared).to_owned();
        }
    }
    if enabled(env) {
        for (unit, list) in &by_unit {
            record_events(env, ctx, list, unit.as_deref());
        }
    }
    super::json_with_status(&json!({"accepted": accepted}), 202)
}

/// The timeline since `window_ms` ago at `resolution`, optionally for one flag (variant).
pub async fn timeline_points(
    env: &Env,
    resolution: crate::metrics::Resolution,
    window_ms: u64,
    flag: Option<String>,
    variant: Option<String>,
) -> Result<Vec<crate::metrics::Point>, EdgeError> {
    flush_or_warn(env).await;
    let since_ms = super::now_ms().saturating_sub(window_ms);
    call(
        env,
        "/timeline",
        &crate::metrics::TimelineQuery {
            resolution,
            since_ms,
            flag,
            variant,
        },
    )
    .await
}

/// `GET {prefix}/metrics/timeline?resolution=minute|hour&hours=N[&flag=F[&variant=V]]`: per
/// bucket requests, errors, error rate, p99 and cache hit ratio (minutes kept 48 h, hours 30
/// days), oldest first — the dashboard's data, for other tools as JSON.
pub async fn timeline(req: &Request, env: &Env) -> Result<Response, EdgeError> {
    use crate::metrics::Resolution;
    let url = req.url().map_err(super::internal)?;
    let param = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    let resolution = match param("resolution").as_deref() {
        None | Some("minute") => Resolution::Minute,
        Some("hour") => Resolution::Hour,
        Some(other) => {
            return Err(EdgeError::BadRequest(format!(
                "resolution must be minute or hour, got {other:?}"
            )))
        }
    };
    let hours = match param("hours") {
        None => 1,
        Some(h) => h
            .parse::<u64>()
            .ok()
            .filter(|h| (1..=24 * 30).contains(h))
            .ok_or_else(|| EdgeError::BadRequest("hours must be 1..=720".into()))?,
    };
    let points = timeline_points(
        env,
        resolution,
        hours * 3_600_000,
        param("flag"),
        param("variant"),
    )
    .await?;
    let summaries: Vec<_> = points
        .iter()
        .map(|p| crate::metrics::summarise(p.t, &p.counts))
        .collect();
    super::json(&json!({ "resolution": resolution, "points": summaries }))
}
