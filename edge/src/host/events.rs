//! `POST {prefix}/events`: conversions reported by clients (public, rate-limited). On the
//! visitor's path, so the request worker answers it and counts into its own recorder
//! (`host/measure/mod.rs`), which sends batches to the metrics store like every other count.

use serde_json::{json, Value};
use worker::{Context, Env, Method, Request, Response};

use crate::error::EdgeError;
use crate::host::measure::{enabled, record_events};

/// Largest accepted events body.
const MAX_EVENTS_BODY: usize = 64 * 1024;
/// Most events accepted in one call.
const MAX_EVENTS: usize = 100;

/// `POST {prefix}/events`: conversion events from clients, in the OpenFeature tracking shape
/// (`{"trackingEventName", "context": {"targetingKey"}, "trackingEventDetails": {"value"}}`),
/// one or `{"events": [...]}`. The unit is the context's targetingKey, else the visitor's
/// edge identity; it is hashed before it is stored.
pub(crate) async fn handle(
    mut req: Request,
    env: &Env,
    config: &crate::config::Config,
    ctx: &Context,
) -> Result<Response, EdgeError> {
    if req.method() != Method::Post {
        return Err(EdgeError::MethodNotAllowed(req.method().to_string()));
    }
    let body = crate::host::body(&mut req, MAX_EVENTS_BODY).await?;
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
    let visitor = crate::host::jwt::visitor(&req, env, config, false).await;
    let api_caller = config
        .evaluation_keys
        .authenticate(crate::host::header(&req, "authorization").as_deref())
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
        let unit = crate::traffic::identity::counted_unit(
            Some(&key),
            &visitor,
            api_caller,
            &config.identity_keys,
        )
        .map(crate::measure::metrics::unit_id);
        match by_unit.iter_mut().find(|(u, _)| *u == unit) {
            Some((_, list)) => list.push((name.to_owned(), value)),
            None => by_unit.push((unit, vec![(name.to_owned(), value)])),
        }
    }
    let accepted: usize = by_unit.iter().map(|(_, l)| l.len()).sum();
    // Only declared names get a series of their own (bounded label cardinality).
    let declared = crate::host::flags::current(env, config)
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
            *name = crate::measure::metrics::event_series(name, is_declared).to_owned();
        }
    }
    if enabled(env) {
        for (unit, list) in &by_unit {
            record_events(env, ctx, list, unit.as_deref());
        }
    }
    crate::host::json_with_status(&json!({"accepted": accepted}), 202)
}
