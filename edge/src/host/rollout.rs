//! Guarded-rollout controller glue: reads the plans from the stored flag set, asks the
//! metrics store for each plan's counts in the flag's current epoch, lets the pure
//! `rollout::decide` choose, and writes the next stage or the rollback as a new flag-set
//! version through the same audited path as an admin change. Run by the cron trigger and
//! by `POST {prefix}/rollouts/evaluate`.

use serde_json::{json, Value};
use worker::Env;

use super::flags::{self, Action};
use super::metrics::{self, ArmCounts, ArmsQuery, DecisionRecord};
use super::now_ms;
use crate::config::Config;
use crate::error::EdgeError;
use crate::metrics::LATENCY_BOUNDS_MS;
use crate::rollout::{self, Decision};

fn arm(arms: &[ArmCounts], variant: &str) -> rollout::Arm {
    arms.iter()
        .find(|a| a.variant == variant)
        .map(|a| rollout::Arm {
            requests: a.requests,
            errors: a.errors,
            latency: a.latency.clone(),
            units: a.units,
            converted: a.converted,
        })
        .unwrap_or_else(|| rollout::Arm {
            latency: vec![0; LATENCY_BOUNDS_MS.len() + 1],
            ..rollout::Arm::default()
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
pub async fn evaluate(
    env: &Env,
    config: &Config,
    actor: &str,
    dry_run: bool,
) -> Result<Value, EdgeError> {
    // This isolate's unsent measurements count too.
    if let Err(e) = metrics::flush(env).await {
        worker::console_error!("metrics flush before the rollout evaluation failed: {e}");
    }
    let (mut version, mut text) = flags::stored(env, config)
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
            .map(crate::metrics::epoch)
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
        let control = arm(&arms, &plan.control);
        let treatment = arm(&arms, &plan.treatment);
        let decision =
            rollout::decide(&plan, &state, &control, &treatment, &LATENCY_BOUNDS_MS, now);
        let dry = dry_run || plan.dry_run;
        let mut applied = false;
        let mut new_version = None;
        if !dry {
            if let Some(change) = rollout::apply(&text, &plan, &decision, now)? {
                let document = change.document.clone();
                let v = flags::commit(
                    env,
                    config,
                    Action {
                        actor,
                        action: match &decision {
                            Decision::Rollback { .. } => "rollout-rollback",
                            Decision::Complete { .. } => "rollout-complete",
                            _ => "rollout-advance",
                        },
                        flag: Some(&plan.flag),
                        from_version: Some(version.clone()),
                    },
                    change,
                )
                .await?;
                version = v.clone();
                text = document;
                applied = true;
                new_version = Some(v);
            }
        }
        let record = DecisionRecord {
            at_ms: now,
            flag: plan.flag.clone(),
            action: action_name(&decision).to_owned(),
            reason: reason(&decision),
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
            "control": {"variant": plan.control, "requests": control.requests, "errors": control.errors, "units": control.units},
            "treatment": {"variant": plan.treatment, "requests": treatment.requests, "errors": treatment.errors, "units": treatment.units},
        }));
    }
    Ok(json!({"at": now, "dryRun": dry_run, "rollouts": report}))
}
