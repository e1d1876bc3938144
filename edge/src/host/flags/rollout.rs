//! Guarded-rollout controller glue: reads the plans from the stored flag set, asks the
//! metrics store for each plan's counts in the flag's current epoch, lets the pure
//! `rollout::decide` choose, and writes the next stage or the rollback as a new flag-set
//! version through the same audited path as an admin change. Run by the cron trigger and
//! by `POST {prefix}/rollouts/evaluate`.

use serde_json::{json, Value};
use worker::Env;

use crate::host::flags::control;
use crate::host::measure::{self as metrics, ArmCounts, ArmsQuery, DecisionRecord};
use crate::host::now_ms;
use crate::config::Config;
use crate::error::EdgeError;
use crate::flags::control::{flag_fingerprint, Answer, Command};
use crate::measure::metrics::LATENCY_BOUNDS_MS;
use crate::measure::rollout::{self, Decision};

pub(crate) fn arm(arms: &[ArmCounts], variant: &str) -> rollout::Arm {
    arms.iter()
        .find(|a| a.variant == variant)
        .map(|a| rollout::Arm {
            requests: a.requests,
            errors: a.errors,
            visitors: a.visitors,
            error_visitors: a.error_units,
            cache_hits: a.cache_hits,
            cache_misses: a.cache_misses,
            visitor_latency: a.visitor_latency.clone(),
            latency: a.latency.clone(),
            units: a.units,
            converted: a.converted,
            deliveries: Vec::new(),
        })
        .unwrap_or_else(|| rollout::Arm {
            latency: vec![0; LATENCY_BOUNDS_MS.len() + 1],
            ..rollout::Arm::default()
        })
}

/// One arm in the evaluation report: the gates' counts (visitors) next to the requests.
fn arm_report(variant: &str, a: &rollout::Arm) -> Value {
    json!({
        "variant": variant,
        "requests": a.requests,
        "errors": a.errors,
        "visitors": a.visitors,
        "errorVisitors": a.error_visitors,
        "cacheHits": a.cache_hits,
        "cacheMisses": a.cache_misses,
        "units": a.units,
    })
}

fn action_name(d: &Decision) -> &'static str {
    match d {
        Decision::Start { .. } => "start",
        Decision::Advance { .. } => "advance",
        Decision::Hold { .. } => "hold",
        Decision::Rollback { .. } => "rollback",
        Decision::Complete { .. } => "complete",
        Decision::Idle { .. } => "idle",
    }
}

fn reason(d: &Decision) -> String {
    match d {
        Decision::Start { percent } => format!("started at {percent}%"),
        Decision::Advance { reason, .. }
        | Decision::Hold { reason }
        | Decision::Rollback { reason }
        | Decision::Complete { reason }
        | Decision::Idle { reason } => reason.clone(),
    }
}

/// Evaluates every plan once. `dry_run` reports without writing (plans with
/// `rollout.dryRun` never write either). Returns one report entry per plan.
pub(crate) async fn evaluate(
    env: &Env,
    config: &Config,
    actor: &str,
    dry_run: bool,
) -> Result<Value, EdgeError> {
    // This isolate's unsent measurements count too.
    if let Err(e) = metrics::flush(env).await {
        worker::console_error!("metrics flush before the rollout evaluation failed: {e}");
    }
    let (_, text) = control::document(env, config)
        .await?
        .ok_or_else(|| EdgeError::NoFlagSet("no flag set stored".into()))?;
    let doc: Value = serde_json::from_str(&text)
        .map_err(|e| EdgeError::Conflict(format!("the stored flag set is not JSON: {e}")))?;
    let plans = rollout::plans(&doc).map_err(EdgeError::InvalidFlagSet)?;
    let now = now_ms();
    let mut report = Vec::new();
    for (plan, state) in plans {
        let epoch = doc
            .pointer(&format!(
                "/flags/{}",
                plan.flag.replace('~', "~0").replace('/', "~1")
            ))
            .map(crate::measure::metrics::epoch)
            .unwrap_or_default();
        let arms: Vec<ArmCounts> = metrics::call(
            env,
            "/arms",
            &ArmsQuery {
                flag: plan.flag.clone(),
                epoch: epoch.clone(),
                event: plan.conversion_event.clone(),
            },
        )
        .await?;
        let control_arm = arm(&arms, &plan.control);
        let mut treatment = arm(&arms, &plan.treatment);
        // Notification outcomes since the stage began, per channel (not per variant: the
        // gate reads them from the treatment arm). Only plans with the gate ask.
        if let (Some(_), Some(since)) = (plan.min_delivery_success, state.stage_started_ms) {
            treatment.deliveries = metrics::notifications(env, Some(since)).await?;
        }
        let decision = rollout::decide(
            &plan,
            &state,
            &control_arm,
            &treatment,
            &LATENCY_BOUNDS_MS,
            now,
        );
        let dry = dry_run || plan.dry_run;
        // Every decision but Idle goes to the writer, which applies it to the committed
        // head — or pauses the rollout when a person changed the flag since its last write,
        // and never writes to a disabled flag. A Hold is sent too, so a pause shows at once.
        let mut written: Option<Answer> = None;
        if !dry && !matches!(decision, Decision::Idle { .. }) {
            let seen = flag_fingerprint(&doc, &plan.flag).unwrap_or_default();
            let command = Command::Rollout {
                flag: plan.flag.clone(),
                decision: decision.clone(),
                seen,
            };
            written = Some(control::command(env, config, actor, None, command).await?);
        }
        let applied = written.as_ref().is_some_and(|a| a.committed);
        let paused = written
            .as_ref()
            .is_some_and(|a| a.action.as_deref() == Some("rollout-pause"));
        let mut reason = reason(&decision);
        match &written {
            Some(a) if paused => reason = a.summary.clone(),
            // Not written although the decision wanted a change: say why.
            Some(a) if !a.committed && !matches!(decision, Decision::Hold { .. }) => {
                reason = format!("{reason} ({})", a.summary);
            }
            _ => {}
        }
        let new_version = written.filter(|a| a.committed).and_then(|a| a.version);
        let record = DecisionRecord {
            at_ms: now,
            flag: plan.flag.clone(),
            action: if paused {
                "pause"
            } else {
                action_name(&decision)
            }
            .to_owned(),
            reason: reason.clone(),
            dry_run: dry,
            applied,
        };
        if let Err(e) = metrics::call::<_, Value>(env, "/decisions/record", &record).await {
            worker::console_error!("could not record the rollout decision: {e}");
        }
        report.push(json!({
            "flag": plan.flag,
            "epoch": epoch,
            "stage": state.stage,
            "decision": decision,
            "dryRun": dry,
            "applied": applied,
            "version": new_version,
            "reason": reason,
            "control": arm_report(&plan.control, &control_arm),
            "treatment": arm_report(&plan.treatment, &treatment),
            "deliveries": treatment
                .deliveries
                .iter()
                .map(crate::measure::metrics::ChannelDeliveries::report)
                .collect::<Vec<_>>(),
        }));
    }
    Ok(json!({"at": now, "dryRun": dry_run, "rollouts": report}))
}
