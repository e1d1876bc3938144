//! The HTTP side of measurement: Prometheus text, experiment results (JSON/CSV), the
//! timeline. Reads go through the metrics Durable Object after a flush. (The public
//! client-events endpoint is `host/events.rs`, on the request worker.)

use serde_json::{json, Value};
use worker::{Env, Request, Response};

use crate::host::measure::{call, flush_or_warn, ArmCounts, ArmsQuery, DecisionRecord};
use crate::error::EdgeError;
use crate::measure::metrics::Totals;

/// `GET {prefix}/metrics`: Prometheus text (version 0.0.4) of the totals.
pub(crate) async fn prometheus(env: &Env, config: &crate::config::Config) -> Result<Response, EdgeError> {
    flush_or_warn(env).await;
    let mut totals: Totals = call(env, "/totals", &json!({})).await?;
    if let Ok(Some((_, text))) = crate::host::flags::control::document(env, config).await {
        if let Ok(doc) = serde_json::from_str::<Value>(&text) {
            if let Ok(plans) = crate::measure::rollout::plans(&doc) {
                totals.rollouts = plans
                    .iter()
                    .map(|(plan, state)| {
                        let percent = match state.status {
                            crate::measure::rollout::Status::RolledBack => 0,
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
    crate::host::text(
        crate::measure::metrics::prometheus(&totals),
        "text/plain; version=0.0.4; charset=utf-8",
    )
}

/// `GET {prefix}/features/experiments/results[?format=csv]`: every experiment's results in
/// its flag's current epoch, and the recent rollout decisions.
pub(crate) async fn results(
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
        return crate::host::text(
            crate::measure::experiments::csv(&out),
            "text/csv; charset=utf-8; header=present",
        );
    }
    // Delivery outcomes per channel and the delivery-success ratio (metrics::OUTCOMES).
    let notifications: Vec<Value> = crate::host::measure::notifications(env, None)
        .await?
        .iter()
        .map(crate::measure::metrics::ChannelDeliveries::report)
        .collect();
    crate::host::json(&json!({
        "version": version,
        "experiments": out,
        "rolloutDecisions": decisions,
        "notifications": notifications,
    }))
}

/// Every experiment's results in its flag's current epoch, the recent rollout decisions and
/// the flag-set version (the results endpoint and the dashboard show the same).
pub(crate) async fn results_data(
    env: &Env,
    config: &crate::config::Config,
) -> Result<
    (
        Vec<crate::measure::experiments::ExperimentResult>,
        Vec<DecisionRecord>,
        String,
    ),
    EdgeError,
> {
    flush_or_warn(env).await;
    let active = crate::host::flags::current(env, config).await?;
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
        out.push(crate::measure::experiments::result(spec, &arms));
    }
    let decisions: Vec<DecisionRecord> = call(env, "/decisions", &json!({})).await?;
    Ok((out, decisions, active.version.clone()))
}

/// The timeline since `window_ms` ago at `resolution`, optionally for one flag (variant).
pub(crate) async fn timeline_points(
    env: &Env,
    resolution: crate::measure::metrics::Resolution,
    window_ms: u64,
    flag: Option<String>,
    variant: Option<String>,
) -> Result<Vec<crate::measure::metrics::Point>, EdgeError> {
    flush_or_warn(env).await;
    let since_ms = crate::host::now_ms().saturating_sub(window_ms);
    call(
        env,
        "/timeline",
        &crate::measure::metrics::TimelineQuery {
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
pub(crate) async fn timeline(req: &Request, env: &Env) -> Result<Response, EdgeError> {
    use crate::measure::metrics::Resolution;
    let url = req.url().map_err(crate::host::internal)?;
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
        .map(|p| crate::measure::metrics::summarise(p.t, &p.counts))
        .collect();
    crate::host::json(&json!({ "resolution": resolution, "points": summaries }))
}
