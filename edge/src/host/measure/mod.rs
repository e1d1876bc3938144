//! Measurement glue: the isolate's recorder, batch delivery to the metrics Durable Object
//! from `waitUntil`, and calls into it. The object itself is `metrics_store.rs`; the HTTP
//! endpoints are `metrics_api.rs`.
//!
//! One object (`idFromName("global")`) aggregates everything. It receives one call per
//! batch (≤ `MAX_PENDING_REQUESTS` requests or `MAX_PENDING_MS` of one isolate), which one
//! object sustains far beyond this worker's traffic on a single machine; at larger scale,
//! shard by flag (the object name) — the batch format already groups by flag.

// The metrics endpoints and the metrics store (control worker).
crate::host::control_only!(api, store);

use std::cell::RefCell;

#[cfg(feature = "control")]
use serde::Deserialize;
use serde::{de::DeserializeOwned, Serialize};
use serde_json::{json, Value};
use worker::{Context, Env};

use crate::error::EdgeError;
use crate::host::{now_ms, random_id};
use crate::measure::metrics::{Batch, Recorder, RequestRecord};

/// Durable Object binding of the metrics store (wrangler.toml `[[durable_objects.bindings]]`).
pub(crate) const BINDING: &str = "METRICS";

/// The isolate's recorder (`host/isolate.rs`).
fn recorder<R>(f: impl FnOnce(&RefCell<Recorder>) -> R) -> R {
    crate::host::isolate::with(|i| f(&i.recorder))
}

/// Whether this deployment measures: the binding exists and `METRICS` is not `off`.
pub(crate) fn enabled(env: &Env) -> bool {
    if let Some(on) = crate::host::isolate::with(|i| i.metrics_enabled.get()) {
        return on;
    }
    let on = env.durable_object(BINDING).is_ok()
        && env
            .var("METRICS")
            .map(|v| v.to_string() != "off")
            .unwrap_or(true);
    crate::host::isolate::with(|i| i.metrics_enabled.set(Some(on)));
    on
}

/// Counts one proxied request (and the exposure of the flag that routed it), then sends a
/// batch in the background when one is due.
pub(crate) fn record_request(
    env: &Env,
    ctx: &Context,
    rec: &RequestRecord<'_>,
    unit: Option<&str>,
) {
    let now = now_ms();
    count_request(rec, unit, now);
    flush_if_due(env, ctx, now);
}

/// Counts one proxied request without sending anything; says whether a batch is due (the
/// fast path's JS then sends it through [`flush_due`]).
pub(crate) fn count_request(rec: &RequestRecord<'_>, unit: Option<&str>, now: u64) -> bool {
    recorder(|r| {
        let mut r = r.borrow_mut();
        r.request(rec, now);
        r.visitor(rec, unit);
        if let Some((flag, variant)) = rec.decided_by {
            r.exposure(flag, variant, rec.epoch, unit, now);
        }
        r.due(now)
    })
}

/// Sends the batches that are due, if any (see [`count_request`]).
#[cfg(not(feature = "control"))]
pub(crate) async fn flush_due(env: &Env) {
    let batches = take_due(now_ms());
    if !batches.is_empty() {
        let _ = deliver(env, batches).await;
    }
}

/// Counts exposures of experiment flags answered over OFREP.
pub(crate) fn record_exposures(
    env: &Env,
    ctx: &Context,
    exposures: &[(String, String, String)],
    unit: Option<&str>,
) {
    if exposures.is_empty() {
        return;
    }
    let now = now_ms();
    recorder(|r| {
        let mut r = r.borrow_mut();
        for (flag, variant, epoch) in exposures {
            r.exposure(flag, variant, epoch, unit, now);
        }
    });
    flush_if_due(env, ctx, now);
}

/// Counts client-reported events.
pub(crate) fn record_events(
    env: &Env,
    ctx: &Context,
    events: &[(String, Option<f64>)],
    unit: Option<&str>,
) {
    let now = now_ms();
    recorder(|r| {
        let mut r = r.borrow_mut();
        for (name, value) in events {
            r.event(name, unit, *value, now);
        }
    });
    flush_if_due(env, ctx, now);
}

/// The batches to send now: everything pending, when a batch is due.
fn take_due(now: u64) -> Vec<Batch> {
    recorder(|r| {
        let mut r = r.borrow_mut();
        if r.due(now) {
            r.take(random_id().unwrap_or_default())
        } else {
            Vec::new()
        }
    })
}

fn flush_if_due(env: &Env, ctx: &Context, now: u64) {
    let batches = take_due(now);
    if !batches.is_empty() {
        let env = env.clone();
        ctx.wait_until(async move {
            let _ = deliver(&env, batches).await;
        });
    }
}

/// Sends everything pending now (before reading totals, and from the cron trigger).
pub(crate) async fn flush(env: &Env) -> Result<(), EdgeError> {
    let batches = recorder(|r| r.borrow_mut().take(random_id().unwrap_or_default()));
    deliver(env, batches).await
}

/// Flushes before totals are read. A batch that cannot be delivered now stays retained and
/// is re-sent later with the same id, so a reader gets the totals stored so far rather than
/// an error.
pub(crate) async fn flush_or_warn(env: &Env) {
    if let Err(e) = flush(env).await {
        worker::console_warn!("metrics: flush before reading failed, totals may lag: {e}");
    }
}

/// Delivers batches in order; failed ones are kept to be re-sent with the same id.
async fn deliver(env: &Env, batches: Vec<Batch>) -> Result<(), EdgeError> {
    let mut failed = Vec::new();
    let mut last_error = None;
    for batch in batches {
        if !failed.is_empty() {
            failed.push(batch);
            continue;
        }
        match call::<_, Value>(env, "/ingest", &batch).await {
            Ok(_) => {}
            Err(e) => {
                worker::console_error!("metrics batch {} not delivered: {e}", batch.id);
                last_error = Some(e);
                failed.push(batch);
            }
        }
    }
    if !failed.is_empty() {
        recorder(|r| r.borrow_mut().retain_failed(failed));
    }
    last_error.map_or(Ok(()), Err)
}

/// Isolate-side state for the status endpoint.
pub(crate) fn isolate_status() -> Value {
    recorder(|r| {
        let r = r.borrow();
        json!({
            "retainedBatches": r.retained(),
            "droppedBatches": r.dropped_batches,
            "undeclaredEvents": r.undeclared_events,
        })
    })
}

/// Calls the metrics object: POST `path` with a JSON body, JSON answer.
pub(crate) async fn call<B: Serialize, R: DeserializeOwned>(
    env: &Env,
    path: &str,
    body: &B,
) -> Result<R, EdgeError> {
    crate::host::durable_call(env, (BINDING, "global", "metrics store"), path, body).await
}

#[cfg(feature = "control")]
/// Per-variant counts of one flag in one epoch (for results and rollout gates).
pub(crate) use crate::measure::experiments::Arm as ArmCounts;

#[cfg(feature = "control")]
/// `POST /arms` body.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ArmsQuery {
    pub(crate) flag: String,
    pub(crate) epoch: String,
    pub(crate) event: Option<String>,
}

#[cfg(feature = "control")]
/// `POST /notifications` body: every outcome counted, or those since `sinceMs`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NotificationsQuery {
    #[serde(default)]
    pub(crate) since_ms: Option<u64>,
}

#[cfg(feature = "control")]
/// Notification outcomes per channel (see [`crate::measure::metrics::OUTCOMES`]).
pub(crate) async fn notifications(
    env: &Env,
    since_ms: Option<u64>,
) -> Result<Vec<crate::measure::metrics::ChannelDeliveries>, EdgeError> {
    call(env, "/notifications", &NotificationsQuery { since_ms }).await
}

#[cfg(feature = "control")]
/// Counts one notification delivery outcome (`outcome` one of [`crate::measure::metrics::OUTCOMES`],
/// or another label of the channel's own) of `channel` (`push`, `inapp`, `email`). Call it
/// where the delivery store confirmed the transition, so a redelivered message counts
/// nothing. Nothing is sent here: a fetch sends it with its next batch from `waitUntil`, and
/// the queue handler calls [`flush_or_warn`] at the end of every batch (a queue invocation
/// has no later request to carry it). From a fetch, pass its `ctx` so a due batch is sent.
pub(crate) fn record_notification(env: &Env, ctx: Option<&Context>, channel: &str, outcome: &str) {
    if !enabled(env) {
        return;
    }
    let now = now_ms();
    recorder(|r| r.borrow_mut().notification(channel, outcome, now));
    if let Some(ctx) = ctx {
        flush_if_due(env, ctx, now);
    }
}

#[cfg(feature = "control")]
/// A rollout decision as the store keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DecisionRecord {
    pub(crate) at_ms: u64,
    pub(crate) flag: String,
    pub(crate) action: String,
    pub(crate) reason: String,
    pub(crate) dry_run: bool,
    pub(crate) applied: bool,
}
