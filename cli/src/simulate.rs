//! `edgeflags rollout simulate`: runs a flag's rollout plan many times against synthetic
//! traffic through the edge's own decision code (`edgeflags_edge::measure::rollout::{plans, decide,
//! apply}`), one decision per simulated minute as the cron trigger makes them, and reports
//! how often the plan completes, rolls back or advances past its first stage.
//!
//! The traffic model: every minute `visitors_per_minute` new visitors arrive and send one
//! request each; each lands on the treatment with the stage's percentage, and sees an origin
//! error with the true error rate of its arm (`--error-rate` for the treatment,
//! `--control-error-rate` for the control). Every treatment request takes `p99_ms` (the
//! gate sees the edge's histogram estimate of it) and is a cache hit (the hit-ratio gate
//! passes); no visitor converts (a conversion gate sees two equal arms). For a plan with
//! `rollout.minDeliverySuccess`, every arriving visitor is also sent one push notification,
//! delivered with the true rate `--delivery-success` (else failed); those draws are only made
//! for such plans, so other plans' outputs stay the same for a seed. The randomness is a
//! SplitMix64 stream per run, so a seed gives the same output on every machine.

use edgeflags_edge::measure::metrics::{bucket, LATENCY_BOUNDS_MS};
use edgeflags_edge::measure::rollout::{self, Arm, Decision, Plan, State};
use serde_json::{json, Value};

/// What to simulate.
#[derive(Debug, Clone)]
pub struct Params {
    /// True share of treatment visitors who see an error.
    pub error_rate: f64,
    pub control_error_rate: f64,
    pub visitors_per_minute: u64,
    pub p99_ms: f64,
    pub runs: u64,
    pub seed: u64,
    /// A run still undecided after this many minutes counts as `running`.
    pub max_minutes: u64,
    /// True share of push deliveries that succeed (plans with `rollout.minDeliverySuccess`).
    pub delivery_success: f64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            error_rate: 0.0,
            control_error_rate: 0.001,
            visitors_per_minute: 100,
            p99_ms: 20.0,
            runs: 1000,
            seed: 1,
            max_minutes: 7 * 24 * 60,
            delivery_success: 1.0,
        }
    }
}

/// The outcome of all runs: shares of runs (0..=1) and median minutes from the start.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub runs: u64,
    pub completed: f64,
    pub rolled_back: f64,
    pub running: f64,
    pub advanced_past_first_stage: f64,
    pub median_minutes_to_rollback: Option<f64>,
    pub median_minutes_to_complete: Option<f64>,
}

impl Summary {
    /// The output contract: one JSON object.
    pub fn to_json(&self) -> Value {
        json!({
            "runs": self.runs,
            "completed": self.completed,
            "rolledBack": self.rolled_back,
            "running": self.running,
            "advancedPastFirstStage": self.advanced_past_first_stage,
            "medianMinutesToRollback": self.median_minutes_to_rollback,
            "medianMinutesToComplete": self.median_minutes_to_complete,
        })
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): small, fast, and good enough for Bernoulli draws.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

const STATE_KEYS: [&str; 4] = [
    "rollout.stage",
    "rollout.stageStartedAt",
    "rollout.status",
    "rollout.reason",
];

/// 2026-01-01T00:00:00Z: the simulated clock's start.
const T0: u64 = 1_767_225_600_000;
const MINUTE_MS: u64 = 60_000;

/// The document with `flag`'s rollout state removed (every run starts the plan afresh), and
/// the plan; an error when the flag has no usable plan.
pub fn prepare(document: &str, flag: &str) -> Result<String, String> {
    let mut doc: Value =
        serde_json::from_str(document).map_err(|e| format!("the flag file is not JSON: {e}"))?;
    let meta = doc
        .get_mut("flags")
        .and_then(|f| f.get_mut(flag))
        .ok_or_else(|| format!("no flag {flag:?} in the file"))?
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| format!("flag {flag:?} has no rollout plan (no metadata)"))?;
    for key in STATE_KEYS {
        meta.remove(key);
    }
    plan_in(&doc, flag)?;
    serde_json::to_string(&doc).map_err(|e| e.to_string())
}

fn plan_in(doc: &Value, flag: &str) -> Result<(Plan, State), String> {
    let plans = rollout::plans(doc).map_err(|errors| {
        errors
            .iter()
            .map(|f| format!("{}: {}", f.path, f.message))
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    plans
        .into_iter()
        .find(|(p, _)| p.flag == flag)
        .ok_or_else(|| format!("flag {flag:?} has no rollout plan (no rollout.stages)"))
}

/// How one run ended.
#[derive(Debug, Clone, Copy, PartialEq)]
enum End {
    Completed(u64),
    RolledBack(u64),
    Running,
}

/// Simulated traffic of one minute on one arm.
fn traffic(arm: &mut Arm, visitors: u64, error_rate: f64, latency_ms: f64, rng: &mut Rng) {
    if arm.latency.is_empty() {
        arm.latency = vec![0; LATENCY_BOUNDS_MS.len() + 1];
        arm.visitor_latency = vec![0; LATENCY_BOUNDS_MS.len() + 1];
    }
    for _ in 0..visitors {
        let failed = rng.chance(error_rate);
        arm.requests += 1;
        arm.errors += u64::from(failed);
        arm.visitors += 1;
        arm.error_visitors += u64::from(failed);
        arm.units += 1;
        arm.cache_hits += 1;
        for histogram in [&mut arm.latency, &mut arm.visitor_latency] {
            if let Some(b) = histogram.get_mut(bucket(latency_ms)) {
                *b += 1;
            }
        }
    }
}

/// Simulated push deliveries of one minute: one per arriving visitor, counted on the treatment
/// arm (where the controller puts the channel counts of the stage).
fn deliveries(arm: &mut Arm, visitors: u64, success: f64, rng: &mut Rng) {
    if arm.deliveries.is_empty() {
        arm.deliveries = edgeflags_edge::measure::metrics::by_channel([]);
    }
    let Some(push) = arm.deliveries.iter_mut().find(|c| c.channel == "push") else {
        return;
    };
    for _ in 0..visitors {
        push.add(
            if rng.chance(success) {
                "delivered"
            } else {
                "failed"
            },
            1,
        );
    }
}

/// One run: the plan from its start until it completes, rolls back or `max_minutes` pass.
/// Returns how it ended and whether it advanced past the first stage.
fn run(document: &str, flag: &str, p: &Params, rng: &mut Rng) -> Result<(End, bool), String> {
    let mut text = document.to_owned();
    let mut doc: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let (mut plan, mut state) = plan_in(&doc, flag)?;
    let mut control = Arm::default();
    let mut treatment = Arm::default();
    let mut advanced = false;
    for minute in 0..=p.max_minutes {
        let now = T0 + minute * MINUTE_MS;
        if minute > 0 {
            let percent = plan.stages.get(state.stage).copied().unwrap_or(0);
            let mut on_treatment = 0;
            for _ in 0..p.visitors_per_minute {
                on_treatment += u64::from(rng.chance(f64::from(percent) / 100.0));
            }
            traffic(&mut treatment, on_treatment, p.error_rate, p.p99_ms, rng);
            traffic(
                &mut control,
                p.visitors_per_minute - on_treatment,
                p.control_error_rate,
                p.p99_ms,
                rng,
            );
            if plan.min_delivery_success.is_some() {
                deliveries(
                    &mut treatment,
                    p.visitors_per_minute,
                    p.delivery_success,
                    rng,
                );
            }
        }
        let decision =
            rollout::decide(&plan, &state, &control, &treatment, &LATENCY_BOUNDS_MS, now);
        match &decision {
            Decision::Hold { .. } => continue,
            Decision::Idle { reason } => return Err(format!("the plan is idle: {reason}")),
            Decision::Rollback { .. } => return Ok((End::RolledBack(minute), advanced)),
            Decision::Complete { .. } => return Ok((End::Completed(minute), advanced)),
            Decision::Advance { .. } => advanced = true,
            Decision::Start { .. } => {}
        }
        // Start and Advance: written as the edge writes them; the new split is a new epoch.
        let mut dry = plan.clone();
        dry.dry_run = false;
        if let Some(change) =
            rollout::apply(&text, &dry, &decision, now).map_err(|e| e.to_string())?
        {
            text = change.document;
            doc = serde_json::from_str(&text).map_err(|e| e.to_string())?;
            (plan, state) = plan_in(&doc, flag)?;
        }
        control = Arm::default();
        treatment = Arm::default();
    }
    Ok((End::Running, advanced))
}

fn median(mut xs: Vec<u64>) -> Option<f64> {
    xs.sort_unstable();
    let n = xs.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(xs[n / 2] as f64),
        _ => Some((xs[n / 2 - 1] + xs[n / 2]) as f64 / 2.0),
    }
}

/// Runs the plan of `flag` in `document` `p.runs` times.
pub fn simulate(document: &str, flag: &str, p: &Params) -> Result<Summary, String> {
    let document = prepare(document, flag)?;
    let mut to_rollback = Vec::new();
    let mut to_complete = Vec::new();
    let mut running = 0u64;
    let mut advanced = 0u64;
    for i in 0..p.runs {
        // One stream per run: run i's outcome does not depend on how many draws run i-1 took.
        let mut rng = Rng(p.seed ^ i.wrapping_mul(0xD1B5_4A32_D192_ED03));
        rng.next_u64();
        let (end, past_first) = run(&document, flag, p, &mut rng)?;
        advanced += u64::from(past_first);
        match end {
            End::Completed(m) => to_complete.push(m),
            End::RolledBack(m) => to_rollback.push(m),
            End::Running => running += 1,
        }
    }
    let share = |n: usize| n as f64 / p.runs.max(1) as f64;
    Ok(Summary {
        runs: p.runs,
        completed: share(to_complete.len()),
        rolled_back: share(to_rollback.len()),
        running: share(running as usize),
        advanced_past_first_stage: share(advanced as usize),
        median_minutes_to_rollback: median(to_rollback),
        median_minutes_to_complete: median(to_complete),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> String {
        std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/flags/demo.flagd.json"
        ))
        .unwrap()
    }

    fn at(rate: f64) -> Summary {
        let p = Params {
            error_rate: rate,
            ..Params::default()
        };
        simulate(&demo(), "backend", &p).unwrap()
    }

    /// The README's table: the demo plan meets the targets — at most 5 % of runs roll back
    /// at a true rate ≤ 0.3 %, at most 5 % advance past the first stage at ≥ 1 %.
    #[test]
    fn the_demo_plan_meets_the_error_targets() {
        for rate in [0.001, 0.003] {
            let s = at(rate);
            assert!(s.rolled_back <= 0.05, "{rate}: {s:?}");
            assert!(s.completed >= 0.9, "{rate}: {s:?}");
        }
        for rate in [0.01, 0.02, 0.05, 0.5] {
            let s = at(rate);
            assert!(s.advanced_past_first_stage <= 0.05, "{rate}: {s:?}");
            assert!(s.rolled_back >= 0.95, "{rate}: {s:?}");
        }
        let s = at(0.5);
        assert!(
            s.median_minutes_to_rollback.is_some_and(|m| m <= 2.0),
            "{s:?}"
        );
    }

    #[test]
    fn a_seed_gives_the_same_summary_and_shares_add_up() {
        let p = Params {
            error_rate: 0.008,
            runs: 50,
            seed: 7,
            ..Params::default()
        };
        let a = simulate(&demo(), "backend", &p).unwrap();
        assert_eq!(a, simulate(&demo(), "backend", &p).unwrap());
        assert!((a.completed + a.rolled_back + a.running - 1.0).abs() < 1e-9);
        assert!(a.advanced_past_first_stage >= a.completed);
    }

    #[test]
    fn unusable_plans_are_errors() {
        assert!(simulate("{", "backend", &Params::default()).is_err());
        assert!(simulate(&demo(), "nope", &Params::default()).is_err());
        assert!(simulate(&demo(), "theme", &Params::default()).is_err());
    }

    #[test]
    fn medians() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3, 1, 2]), Some(2.0));
        assert_eq!(median(vec![4, 1, 2, 3]), Some(2.5));
    }

    /// The same decide() as the edge: with `rollout.minDeliverySuccess` 0.99 a healthy canary
    /// whose push deliveries succeed completes, and one whose deliveries fail 10 % of the time
    /// is held at its first stage (never rolled back: the gate only holds).
    #[test]
    fn the_delivery_gate_holds_a_plan_whose_deliveries_fail() {
        let mut doc: Value = serde_json::from_str(&demo()).unwrap();
        doc["flags"]["backend"]["metadata"]["rollout.minDeliverySuccess"] = json!(0.99);
        let doc = doc.to_string();
        let p = |delivery_success| Params {
            error_rate: 0.0,
            runs: 20,
            max_minutes: 24 * 60,
            delivery_success,
            ..Params::default()
        };
        let healthy = simulate(&doc, "backend", &p(1.0)).unwrap();
        assert!(healthy.completed >= 0.9, "{healthy:?}");
        let failing = simulate(&doc, "backend", &p(0.9)).unwrap();
        assert_eq!(failing.advanced_past_first_stage, 0.0, "{failing:?}");
        assert_eq!(failing.rolled_back, 0.0, "{failing:?}");
        assert_eq!(failing.running, 1.0, "{failing:?}");
    }
}
