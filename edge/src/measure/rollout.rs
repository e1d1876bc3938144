//! Guarded rollouts: a flag's plan to move traffic from a control variant to a treatment in
//! stages, and the gate decisions that advance, hold, complete or roll it back. Everything
//! here is a pure function of the flag-set document, the counts measured in the current stage
//! and the clock, so the controller that runs it (host glue) decides nothing.
//!
//! # The plan, in the flag's metadata
//!
//! flagd's schema allows only scalar metadata values, so the plan is flat keys:
//!
//! | key | type, default | meaning |
//! |---|---|---|
//! | `rollout.stages` | string, required | comma-separated ascending treatment percentages 1..=100, e.g. `"10,50,100"`; its presence makes the flag a plan |
//! | `rollout.control` | string, the `defaultVariant` | the stable variant |
//! | `rollout.treatment` | string, the other variant of a two-variant flag | the variant being rolled out |
//! | `rollout.minDurationSeconds` | number ≥ 0, 3600 | least time per stage |
//! | `rollout.minSample` | integer ≥ 1, 1000 | least treatment visitors per stage |
//! | `rollout.advanceErrorRate` | 0 < p0 < 1, 0.005 | share of visitors seeing an error that is good enough to advance (the sequential test's H0) |
//! | `rollout.rollbackErrorRate` | p0 < p1 < 1, 0.01 | share of visitors seeing an error that must be rolled back (H1) |
//! | `rollout.alpha` | 0 < α ≤ 0.5, 0.05 | highest chance of rolling back a stage whose true rate is at most p0 |
//! | `rollout.beta` | 0 < β ≤ 0.5, 0.05 | highest chance of advancing a stage whose true rate is at least p1 |
//! | `rollout.maxP99Ms` | number > 0, none | treatment p99 latency limit |
//! | `rollout.minCacheHitRatio` | 0..=1, none | least treatment cache hit ratio (hits / (hits + misses)) to advance |
//! | `rollout.conversionEvent` | string, none | gate: conversion not worse than control |
//! | `rollout.minDeliverySuccess` | 0..=1, none | least notification delivery-success ratio (delivered / (delivered + failed), see `metrics::ChannelDeliveries::success_ratio`) of the gated channels since the stage began; below it the stage **holds** |
//! | `rollout.deliveryChannel` | `push`, `inapp` or `email`, none | the one channel `minDeliverySuccess` gates; absent = every channel that settled a delivery in the stage (the worst decides). Needs `minDeliverySuccess` |
//! | `rollout.dryRun` | boolean, false | decisions are reported but never written |
//!
//! The controller writes the state back into the same metadata: `rollout.stage` (index into
//! the stages, default 0), `rollout.stageStartedAt` (ms since the epoch; absent = not
//! started), `rollout.status` (`running` | `completed` | `rolled-back`, default `running`)
//! and `rollout.reason` (the last decision's reason). Any other `rollout.*` key is refused:
//! a misspelt gate (`rollout.minSamples`) would otherwise silently fall back to its default.
//!
//! The flag's `targeting` must contain, anywhere in its own JSON (a `$ref` is not followed:
//! the controller can only rewrite what is in the flag), a `fractional` split whose entries
//! name the control and the treatment once each as string literals, e.g.
//! `{"fractional": [{"var": "orgId"}, ["v1", 90], ["v2", 10]]}`. The first such split (depth
//! first: array items in order, object members by key, as `serde_json` keeps them) is the one
//! the controller rewrites: control weight `100 - p`, treatment weight `p`, every other entry
//! and the bucketing expression unchanged.
//!
//! # Decisions, in this order
//!
//! 1. Status `completed` or `rolled-back` → **Idle** (nothing to do). No `stageStartedAt` →
//!    **Start** at the first stage (the controller writes stage 0's weights and the start
//!    time).
//! 2. **Rollback** — safety first, with no minimum duration or sample:
//!    - the **hard stop**: at least [`HARD_STOP_VISITORS`] (5) treatment visitors and more
//!      than half of them saw an error; a canary failing for every visitor is rolled back
//!      at the first evaluation after its 5th visitor;
//!    - the **sequential test** accepts H1: see below;
//!    - the treatment has at least `minSample` visitors, its p99 latency is above
//!      `maxP99Ms`, and so is the p99 over visitors of each visitor's slowest request (so
//!      one visitor's many slow requests cannot roll back; they can only hold the stage);
//!    - with a `conversionEvent`, both arms have at least `minSample` units and the 95 %
//!      interval of the conversion difference (treatment − control) is entirely below 0.
//!
//!    A rollback sets the treatment's weight to 0 and the control's to 100: every visitor is
//!    back on the stable variant.
//!    (The delivery-success gate never rolls back: see "The delivery gate" below.)
//! 3. **Hold** when a gated channel's delivery success is below `minDeliverySuccess` — at
//!    once, with no minimum duration or sample, and with that as the reason.
//!    **Hold** while the stage is younger than `minDurationSeconds` or the treatment has fewer
//!    than `minSample` visitors (or, with a `conversionEvent`, either arm fewer than
//!    `minSample` units): the reason says what is still missing.
//! 4. **Advance** to the next stage when the sequential test accepts H0, the p99 is known to
//!    be within `maxP99Ms` and the cache hit ratio is at least `minCacheHitRatio` (the
//!    conversion gate passed in step 2); at the last stage, **Complete** instead (which
//!    leaves the split as it is, also when the last stage is below 100 %).
//! 5. Otherwise **Hold**: the result is inconclusive (the test has not decided yet, the p99
//!    lies beyond the histogram's last bound, or the hit ratio is too low or unmeasured).
//!
//! # The error gate: Wald's sequential probability ratio test on visitors
//!
//! The unit is the visitor, not the request: `error_visitors` of `visitors` treatment
//! visitors saw at least one origin error in the stage, so one visitor weighs one however
//! many requests it sends. The test compares H0: p = p0 (`advanceErrorRate`) with H1:
//! p = p1 (`rollbackErrorRate`) by the log-likelihood ratio
//! `LLR = e·ln(p1/p0) + (n−e)·ln((1−p1)/(1−p0))`; it rolls back when `LLR ≥ ln(1/α)` and
//! allows the advance when `LLR ≤ ln(β)`. Under H0 the likelihood ratio is a
//! non-negative martingale, so by Ville's inequality the chance that it *ever* reaches
//! `1/α` is at most α — however often it is looked at (every minute, on demand); likewise
//! the chance of ever reaching `β` under H1 is at most β. For rates below p0 (above p1) the
//! errors are rarer still (monotone likelihood ratio). With no data the LLR is 0, which is
//! neither: the rule never advances on zero data. The request error rate is shown in the
//! reasons for the dashboard but decides nothing.
//!
//! # The delivery gate: hold, never roll back
//!
//! Notification outcomes are counted per channel, not per flag variant (a notification's
//! audience may be a list of visitors, and control and treatment share the push service), so
//! the gate cannot tell a treatment's fault from a push service's outage. A rollback moves
//! every visitor back and ends the rollout — the wrong answer to a vendor's bad hour, which
//! the channel's kill switch (`notifications.push` off) is for. So the gate, like the cache
//! hit ratio's, **holds**: the treatment's share stops growing while the channel is below
//! the minimum, and the rollout goes on once it recovers. The ratio is a point estimate
//! over the deliveries settled since the stage began (the minute the stage started counted
//! whole, at most the last 48 h); with a 99 % minimum one failure holds the stage until 99
//! more deliveries succeed. A stage with no settled delivery on a gated channel does not
//! advance either (no evidence of delivery is not evidence of success): the reason says so.
//!
//! The measured counts are expected to be those of the current stage only (the metrics store
//! starts a new epoch whenever the split changes), so each stage is judged on its own traffic.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::EdgeError;
use crate::flags::admin::Change;
use crate::flags::live::Finding;
use crate::measure::metrics::{ChannelDeliveries, CHANNELS};
use crate::measure::stats::{self, Uplift};

const STAGES: &str = "rollout.stages";
const CONTROL: &str = "rollout.control";
const TREATMENT: &str = "rollout.treatment";
const MIN_DURATION: &str = "rollout.minDurationSeconds";
const MIN_SAMPLE: &str = "rollout.minSample";
const ADVANCE_ERROR_RATE: &str = "rollout.advanceErrorRate";
const ROLLBACK_ERROR_RATE: &str = "rollout.rollbackErrorRate";
const ALPHA: &str = "rollout.alpha";
const BETA: &str = "rollout.beta";
const MAX_P99: &str = "rollout.maxP99Ms";
const MIN_CACHE_HIT_RATIO: &str = "rollout.minCacheHitRatio";
const CONVERSION_EVENT: &str = "rollout.conversionEvent";
const DRY_RUN: &str = "rollout.dryRun";
const MIN_DELIVERY_SUCCESS: &str = "rollout.minDeliverySuccess";
const DELIVERY_CHANNEL: &str = "rollout.deliveryChannel";
const STAGE: &str = "rollout.stage";
const STAGE_STARTED_AT: &str = "rollout.stageStartedAt";
const STATUS: &str = "rollout.status";
const REASON: &str = "rollout.reason";

const KNOWN_KEYS: [&str; 19] = [
    STAGES,
    CONTROL,
    TREATMENT,
    MIN_DURATION,
    MIN_SAMPLE,
    ADVANCE_ERROR_RATE,
    ROLLBACK_ERROR_RATE,
    ALPHA,
    BETA,
    MAX_P99,
    MIN_CACHE_HIT_RATIO,
    CONVERSION_EVENT,
    DRY_RUN,
    MIN_DELIVERY_SUCCESS,
    DELIVERY_CHANNEL,
    STAGE,
    STAGE_STARTED_AT,
    STATUS,
    REASON,
];

/// Defaults: an hour and a thousand requests per stage keep a stage from advancing on a
/// quiet night's handful of requests; 0.5 % / 1 % are common canary error budgets.
const DEFAULT_MIN_DURATION_SECONDS: f64 = 3600.0;
const DEFAULT_MIN_SAMPLE: u64 = 1000;
const DEFAULT_ADVANCE_ERROR_RATE: f64 = 0.005;
const DEFAULT_ROLLBACK_ERROR_RATE: f64 = 0.01;
/// The sequential test's error targets: at most 5 % of healthy stages rolled back, at most
/// 5 % of failing stages advanced (measured by `edgeflags rollout simulate`, see the README).
pub const DEFAULT_ALPHA: f64 = 0.05;
pub const DEFAULT_BETA: f64 = 0.05;
/// The hard stop: this many treatment visitors, more than half of them with an error.
pub const HARD_STOP_VISITORS: u64 = 5;

/// A flag's rollout plan, as configured in its metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub flag: String,
    pub control: String,
    pub treatment: String,
    /// Treatment percentages, ascending, each 1..=100.
    pub stages: Vec<u32>,
    pub min_duration_ms: u64,
    pub min_sample: u64,
    pub advance_error_rate: f64,
    pub rollback_error_rate: f64,
    /// Sequential test: chance of rolling back at a true rate ≤ `advance_error_rate`.
    pub alpha: f64,
    /// Sequential test: chance of advancing at a true rate ≥ `rollback_error_rate`.
    pub beta: f64,
    pub max_p99_ms: Option<f64>,
    pub min_cache_hit_ratio: Option<f64>,
    pub conversion_event: Option<String>,
    /// Least delivery-success ratio of the gated channels (see the module doc).
    pub min_delivery_success: Option<f64>,
    /// The one channel gated; `None` = every channel with a settled delivery.
    pub delivery_channel: Option<String>,
    pub dry_run: bool,
}

/// Where a rollout is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Running,
    Completed,
    RolledBack,
    /// A person changed or disabled the flag since the controller's last decision: the
    /// controller writes nothing until an admin resumes the rollout.
    Paused,
}

impl Status {
    /// The value of `rollout.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Completed => "completed",
            Status::RolledBack => "rolled-back",
            Status::Paused => "paused",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [
            Status::Running,
            Status::Completed,
            Status::RolledBack,
            Status::Paused,
        ]
        .into_iter()
        .find(|status| status.as_str() == s)
    }
}

/// A rollout's state, as the controller last wrote it.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    /// Index into `Plan::stages`.
    pub stage: usize,
    /// When the current stage started (ms since the epoch); `None` = not started.
    pub stage_started_ms: Option<u64>,
    pub status: Status,
}

/// Every flag with `rollout.stages` in its metadata, with its state. Errors name the JSON
/// path (`flags.backend.metadata.rollout.stages: …`, `flags.backend.targeting: …`); every
/// error of every flag is collected, so one round of fixes is enough.
pub fn plans(document: &Value) -> Result<Vec<(Plan, State)>, Vec<Finding>> {
    let Some(flags) = document.get("flags").and_then(Value::as_object) else {
        return Err(vec![Finding {
            path: "flags".into(),
            message: "the document has no flags object".into(),
        }]);
    };
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for (key, definition) in flags {
        if let Some(plan) = plan_of(key, definition, &mut errors) {
            found.push(plan);
        }
    }
    if errors.is_empty() {
        Ok(found)
    } else {
        Err(errors)
    }
}

/// Reads the `rollout.*` keys of one flag's metadata, recording an error per bad key.
struct Reader<'a> {
    meta: &'a Map<String, Value>,
    path: String,
    errors: Vec<Finding>,
}

impl<'a> Reader<'a> {
    fn fail(&mut self, key: &str, message: impl Into<String>) {
        self.errors.push(Finding {
            path: format!("{}.{key}", self.path),
            message: message.into(),
        });
    }

    fn string(&mut self, key: &str) -> Option<&'a str> {
        match self.meta.get(key)? {
            Value::String(s) if !s.trim().is_empty() => Some(s),
            _ => {
                self.fail(key, "must be a non-empty string");
                None
            }
        }
    }

    fn boolean(&mut self, key: &str) -> Option<bool> {
        match self.meta.get(key)? {
            Value::Bool(b) => Some(*b),
            _ => {
                self.fail(key, "must be true or false");
                None
            }
        }
    }

    /// A finite number satisfying `valid`, else an error stating `rule`.
    fn number(&mut self, key: &str, valid: impl Fn(f64) -> bool, rule: &str) -> Option<f64> {
        let value = self.meta.get(key)?;
        match value.as_f64().filter(|x| x.is_finite() && valid(*x)) {
            Some(x) => Some(x),
            None => {
                self.fail(key, format!("must be {rule}"));
                None
            }
        }
    }

    /// A whole number (`1000` or `1000.0`) of at least `min`, else an error stating `rule`.
    fn whole(&mut self, key: &str, min: u64, rule: &str) -> Option<u64> {
        let value = self.meta.get(key)?;
        match whole(value).filter(|n| *n >= min) {
            Some(n) => Some(n),
            None => {
                self.fail(key, format!("must be {rule}"));
                None
            }
        }
    }
}

fn whole(value: &Value) -> Option<u64> {
    value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|x| x.fract() == 0.0 && *x >= 0.0 && *x < u64::MAX as f64)
            .map(|x| x as u64)
    })
}

/// The stages of `rollout.stages`, or `None` unless they are ascending integers 1..=100.
fn parse_stages(text: &str) -> Option<Vec<u32>> {
    let mut stages: Vec<u32> = Vec::new();
    for part in text.split(',') {
        let percent: u32 = part.trim().parse().ok()?;
        if !(1..=100).contains(&percent) || stages.last().is_some_and(|last| *last >= percent) {
            return None;
        }
        stages.push(percent);
    }
    Some(stages)
}

/// One flag's plan and state; `None` when it has no plan or its plan has errors (then
/// recorded in `errors`).
fn plan_of(key: &str, definition: &Value, errors: &mut Vec<Finding>) -> Option<(Plan, State)> {
    let meta = definition.get("metadata").and_then(Value::as_object)?;
    if !meta.contains_key(STAGES) {
        return None;
    }
    let mut r = Reader {
        meta,
        path: format!("flags.{key}.metadata"),
        errors: Vec::new(),
    };
    for unknown in meta
        .keys()
        .filter(|k| k.starts_with("rollout.") && !KNOWN_KEYS.contains(&k.as_str()))
    {
        r.fail(
            unknown,
            format!(
                "unknown rollout setting; the known ones are {}",
                KNOWN_KEYS.join(", ")
            ),
        );
    }

    let stages = match meta.get(STAGES) {
        Some(Value::String(s)) => parse_stages(s),
        _ => None,
    };
    if stages.is_none() {
        r.fail(STAGES, "percentages must be ascending integers 1..=100");
    }

    let variants: Vec<&str> = definition
        .get("variants")
        .and_then(Value::as_object)
        .map(|v| v.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let is_variant = |name: &str| variants.contains(&name);

    let control = match r.string(CONTROL) {
        Some(c) => Some(c),
        None if meta.contains_key(CONTROL) => None,
        None => {
            let default = definition.get("defaultVariant").and_then(Value::as_str);
            if default.is_none() {
                r.fail(CONTROL, "required: the flag has no defaultVariant");
            }
            default
        }
    };
    let control = control.filter(|c| {
        let ok = is_variant(c);
        if !ok {
            r.fail(CONTROL, format!("{c:?} is not a variant of the flag"));
        }
        ok
    });

    let treatment = match r.string(TREATMENT) {
        Some(t) => Some(t),
        None if meta.contains_key(TREATMENT) => None,
        None => match (control, variants.as_slice()) {
            (Some(c), [a, b]) => Some(if *a == c { *b } else { *a }),
            // A bad control was reported already; the treatment cannot be inferred from it.
            (None, [_, _]) => None,
            _ => {
                r.fail(
                    TREATMENT,
                    format!(
                        "required unless the flag has exactly two variants (it has {})",
                        variants.len()
                    ),
                );
                None
            }
        },
    };
    let treatment = treatment.filter(|t| {
        if !is_variant(t) {
            r.fail(TREATMENT, format!("{t:?} is not a variant of the flag"));
            false
        } else if Some(*t) == control {
            r.fail(TREATMENT, format!("must differ from the control {t:?}"));
            false
        } else {
            true
        }
    });

    let min_duration_s = r
        .number(MIN_DURATION, |x| x >= 0.0, "a number of seconds ≥ 0")
        .unwrap_or(DEFAULT_MIN_DURATION_SECONDS);
    let min_sample = r
        .whole(MIN_SAMPLE, 1, "an integer ≥ 1")
        .unwrap_or(DEFAULT_MIN_SAMPLE);
    let open_rate = |x: f64| x > 0.0 && x < 1.0;
    let advance = r.number(
        ADVANCE_ERROR_RATE,
        open_rate,
        "a rate between 0 and 1 (both excluded)",
    );
    let rollback = r.number(
        ROLLBACK_ERROR_RATE,
        open_rate,
        "a rate between 0 and 1 (both excluded)",
    );
    let advance_error_rate = advance.unwrap_or(DEFAULT_ADVANCE_ERROR_RATE);
    let rollback_error_rate = rollback.unwrap_or(DEFAULT_ROLLBACK_ERROR_RATE);
    let rates_given = (meta.contains_key(ADVANCE_ERROR_RATE) == advance.is_some())
        && (meta.contains_key(ROLLBACK_ERROR_RATE) == rollback.is_some());
    if rates_given && rollback_error_rate <= advance_error_rate {
        r.fail(
            ROLLBACK_ERROR_RATE,
            format!(
                "must be above the advance error rate {advance_error_rate} (it is {rollback_error_rate}): the sequential test needs two distinct rates"
            ),
        );
    }
    let target = |x: f64| x > 0.0 && x <= 0.5;
    let alpha = r
        .number(ALPHA, target, "a probability above 0 and at most 0.5")
        .unwrap_or(DEFAULT_ALPHA);
    let beta = r
        .number(BETA, target, "a probability above 0 and at most 0.5")
        .unwrap_or(DEFAULT_BETA);
    let max_p99_ms = r.number(MAX_P99, |x| x > 0.0, "a number of milliseconds > 0");
    let min_cache_hit_ratio = r.number(
        MIN_CACHE_HIT_RATIO,
        |x| (0.0..=1.0).contains(&x),
        "a ratio between 0 and 1",
    );
    let conversion_event = r.string(CONVERSION_EVENT).map(str::to_owned);
    let min_delivery_success = r.number(
        MIN_DELIVERY_SUCCESS,
        |x| (0.0..=1.0).contains(&x),
        "a ratio between 0 and 1 (e.g. 0.99)",
    );
    let delivery_channel = r.string(DELIVERY_CHANNEL).and_then(|c| {
        if !CHANNELS.contains(&c) {
            r.fail(
                DELIVERY_CHANNEL,
                format!("{c:?} is not a channel; the channels are {}", CHANNELS.join(", ")),
            );
            None
        } else if !meta.contains_key(MIN_DELIVERY_SUCCESS) {
            r.fail(
                DELIVERY_CHANNEL,
                format!("names the channel {MIN_DELIVERY_SUCCESS} gates, and there is no {MIN_DELIVERY_SUCCESS}"),
            );
            None
        } else {
            Some(c.to_owned())
        }
    });
    let dry_run = r.boolean(DRY_RUN).unwrap_or(false);

    let stage_rule = match &stages {
        Some(stages) => format!(
            "an index into rollout.stages (0..={})",
            stages.len().saturating_sub(1)
        ),
        None => "an index into rollout.stages".to_owned(),
    };
    let stage = r.whole(STAGE, 0, &stage_rule).unwrap_or(0);
    let stage = usize::try_from(stage).unwrap_or(usize::MAX);
    if stages.as_ref().is_some_and(|s| stage >= s.len()) {
        r.fail(STAGE, format!("must be {stage_rule}"));
    }
    let stage_started_ms = r.whole(
        STAGE_STARTED_AT,
        0,
        "milliseconds since the epoch (an integer ≥ 0)",
    );
    let status = match r.string(STATUS) {
        None => Status::Running,
        Some(s) => Status::parse(s).unwrap_or_else(|| {
            r.fail(STATUS, "must be running, completed, rolled-back or paused");
            Status::Running
        }),
    };
    if meta.get(REASON).is_some_and(|v| !v.is_string()) {
        r.fail(REASON, "must be a string");
    }

    if let (Some(c), Some(t)) = (control, treatment) {
        if definition
            .get("targeting")
            .and_then(|targeting| find_split(targeting, c, t))
            .is_none()
        {
            r.errors.push(Finding {
                path: format!("flags.{key}.targeting"),
                message: format!("a rollout needs a fractional split naming {c:?} and {t:?}"),
            });
        }
    }

    if !r.errors.is_empty() {
        errors.append(&mut r.errors);
        return None;
    }
    let (Some(stages), Some(control), Some(treatment)) = (stages, control, treatment) else {
        return None;
    };
    Some((
        Plan {
            flag: key.to_owned(),
            control: control.to_owned(),
            treatment: treatment.to_owned(),
            stages,
            min_duration_ms: (min_duration_s * 1000.0).round() as u64,
            min_sample,
            advance_error_rate,
            rollback_error_rate,
            alpha,
            beta,
            max_p99_ms,
            min_cache_hit_ratio,
            conversion_event,
            min_delivery_success,
            delivery_channel,
            dry_run,
        },
        State {
            stage,
            stage_started_ms,
            status,
        },
    ))
}

/// The entries of a `fractional` argument list: everything but a leading bucketing-key
/// expression (which is anything that is not an array).
fn split_entries(args: &[Value]) -> &[Value] {
    match args.first() {
        Some(Value::Array(_)) | None => args,
        Some(_) => args.get(1..).unwrap_or(&[]),
    }
}

fn entry_name(entry: &Value) -> Option<&str> {
    entry.as_array()?.first()?.as_str()
}

/// Whether `value` is a `fractional` operation naming `control` and `treatment` once each.
fn is_split(value: &Value, control: &str, treatment: &str) -> bool {
    let Some(args) = value.get("fractional").and_then(Value::as_array) else {
        return false;
    };
    let entries = split_entries(args);
    let count = |name: &str| {
        entries
            .iter()
            .filter(|e| entry_name(e) == Some(name))
            .count()
    };
    count(control) == 1 && count(treatment) == 1
}

/// The argument list of the first split naming both variants, depth first (array items in
/// order, object members by key).
fn find_split<'a>(value: &'a Value, control: &str, treatment: &str) -> Option<&'a Vec<Value>> {
    if is_split(value, control, treatment) {
        return value.get("fractional").and_then(Value::as_array);
    }
    match value {
        Value::Array(items) => items.iter().find_map(|v| find_split(v, control, treatment)),
        Value::Object(map) => map.values().find_map(|v| find_split(v, control, treatment)),
        _ => None,
    }
}

/// The same walk as `find_split`, for rewriting.
fn find_split_mut<'a>(
    value: &'a mut Value,
    control: &str,
    treatment: &str,
) -> Option<&'a mut Vec<Value>> {
    if is_split(value, control, treatment) {
        return value.get_mut("fractional").and_then(Value::as_array_mut);
    }
    match value {
        Value::Array(items) => items
            .iter_mut()
            .find_map(|v| find_split_mut(v, control, treatment)),
        Value::Object(map) => map
            .values_mut()
            .find_map(|v| find_split_mut(v, control, treatment)),
        _ => None,
    }
}

/// What one arm (variant) did during the current stage.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Arm {
    /// Requests served with this variant.
    pub requests: u64,
    /// Of those, the failed ones (origin errors, 5xx): shown, decides nothing.
    pub errors: u64,
    /// Distinct visitors whose proxied requests this variant routed.
    pub visitors: u64,
    /// Of those, the ones who saw at least one origin error: the error gates' count.
    pub error_visitors: u64,
    /// Cacheable requests answered from the cache / forwarded to the origin.
    pub cache_hits: u64,
    pub cache_misses: u64,
    /// Visitors by the latency bucket of their slowest request (`latency`'s buckets): the
    /// p99 gate rolls back only when the visitors' p99 is above the limit too, so one
    /// visitor's many slow requests cannot.
    pub visitor_latency: Vec<u64>,
    /// Latency histogram counts: `bounds.len() + 1` entries, see [`stats::quantile`].
    pub latency: Vec<u64>,
    /// Distinct visitors exposed to the variant.
    pub units: u64,
    /// Of those, the ones who sent the conversion event.
    pub converted: u64,
    /// Notification outcomes per channel since the stage began. They are counted per
    /// channel, not per variant, so the controller puts them on the treatment arm, the one
    /// the delivery gate reads (the control's are ignored).
    pub deliveries: Vec<ChannelDeliveries>,
}

/// What the controller should do with a rollout now.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Decision {
    /// Write the first stage's split and the start time.
    Start { percent: u32 },
    /// Move to stage `stage` (an index into the plan's stages) at `percent`.
    Advance {
        stage: usize,
        percent: u32,
        reason: String,
    },
    /// Keep the current stage.
    Hold { reason: String },
    /// Send everyone back to the control.
    Rollback { reason: String },
    /// The last stage passed its gates.
    Complete { reason: String },
    /// The rollout is over (or cannot run); nothing to do.
    Idle { reason: String },
}

/// Decides what to do with one rollout, from the counts of its current stage (`control` is
/// only used by the conversion gate) and the clock. See the module doc for the rules.
pub fn decide(
    plan: &Plan,
    state: &State,
    control: &Arm,
    treatment: &Arm,
    bounds_ms: &[f64],
    now_ms: u64,
) -> Decision {
    let idle = |reason: String| Decision::Idle { reason };
    match state.status {
        Status::Completed => return idle("the rollout is completed".into()),
        Status::RolledBack => return idle("the rollout was rolled back".into()),
        Status::Paused => {
            return idle(
                "the rollout is paused: a person changed the flag since the last decision; \
                 resume it with POST {prefix}/rollouts/{flag}/resume"
                    .into(),
            )
        }
        Status::Running => {}
    }
    let Some(&first) = plan.stages.first() else {
        return idle("the plan has no stages".into());
    };
    let Some(started_ms) = state.stage_started_ms else {
        return Decision::Start { percent: first };
    };
    let Some(&percent) = plan.stages.get(state.stage) else {
        return idle(format!(
            "stage index {} does not exist: the plan has {} stages",
            state.stage,
            plan.stages.len()
        ));
    };

    // 2. Rollback.
    let visitors = treatment.visitors;
    let failed = treatment.error_visitors.min(visitors);
    let requests = treatment.requests;
    let shown = format!(
        "{failed} of {visitors} visitors saw an error ({}; request error rate {} over {requests} requests)",
        pct(ratio(failed, visitors)),
        pct(ratio(treatment.errors, requests)),
    );
    if visitors >= HARD_STOP_VISITORS && failed > visitors - failed {
        return Decision::Rollback {
            reason: format!(
                "hard stop: error rate above the rollback limit, most visitors fail: {shown}"
            ),
        };
    }
    let test = Sprt::of(plan);
    let llr = test.llr(failed, visitors);
    if llr >= test.upper {
        return Decision::Rollback {
            reason: format!(
                "error rate above the rollback limit {}: {shown}; the sequential test rejects {} at α = {} (log-likelihood ratio {llr:.2} ≥ {:.2})",
                pct(plan.rollback_error_rate),
                pct(plan.advance_error_rate),
                plan.alpha,
                test.upper
            ),
        };
    }
    let min_sample = plan.min_sample.max(1);
    let enough_visitors = visitors >= min_sample;
    let latency = latency_gate(plan.max_p99_ms, bounds_ms, &treatment.latency);
    let visitor_latency = latency_gate(plan.max_p99_ms, bounds_ms, &treatment.visitor_latency);
    if enough_visitors {
        if let (Latency::Above(p99), Latency::Above(slowest)) = (&latency, &visitor_latency) {
            return Decision::Rollback {
                reason: format!(
                    "p99 latency {p99} over {requests} requests of {visitors} visitors is above the limit {} (p99 of the visitors' slowest requests: {slowest})",
                    ms(plan.max_p99_ms.unwrap_or_default())
                ),
            };
        }
    }
    let conversion = match plan.conversion_event {
        Some(_) if control.units >= min_sample && treatment.units >= min_sample => stats::uplift(
            (control.converted, control.units),
            (treatment.converted, treatment.units),
            stats::Z95,
        ),
        _ => None,
    };
    if let Some(u) = conversion.filter(|u| u.interval.high < 0.0) {
        return Decision::Rollback {
            reason: format!(
                "conversion is worse than control: {}",
                conversion_text(&u, control, treatment)
            ),
        };
    }

    // The delivery gate holds at once (it never rolls back: see the module doc).
    let delivery = delivery_gate(plan, &treatment.deliveries);
    if let Delivery::Below(why) = &delivery {
        return Decision::Hold {
            reason: format!("holding: {why}"),
        };
    }

    // 3. Hold until there is enough to judge.
    let elapsed_ms = now_ms.saturating_sub(started_ms);
    let units_missing = plan.conversion_event.is_some() && conversion.is_none();
    if elapsed_ms < plan.min_duration_ms || !enough_visitors || units_missing {
        let mut reason = format!(
            "waiting: {visitors} of {min_sample} visitors, {} s of {} s",
            seconds(elapsed_ms),
            seconds(plan.min_duration_ms)
        );
        if units_missing {
            reason.push_str(&format!(
                ", {} of {min_sample} treatment units and {} of {min_sample} control units",
                treatment.units, control.units
            ));
        }
        return Decision::Hold { reason };
    }

    // 4. Advance or complete.
    let errors_ok = llr <= test.lower;
    let mut passed = vec![format!(
        "error rate within the advance limit {}: {shown}; the sequential test accepts it at β = {} (log-likelihood ratio {llr:.2} ≤ {:.2})",
        pct(plan.advance_error_rate),
        plan.beta,
        test.lower
    )];
    let latency_ok = match &latency {
        Latency::NotGated => true,
        Latency::Within(p99) => {
            passed.push(format!(
                "p99 latency {p99} is within {}",
                ms(plan.max_p99_ms.unwrap_or_default())
            ));
            true
        }
        Latency::Above(_) | Latency::Unknown(_) => false,
    };
    let cache = cache_gate(plan.min_cache_hit_ratio, treatment);
    let cache_ok = match &cache {
        Err(_) => false,
        Ok(None) => true,
        Ok(Some(text)) => {
            passed.push(text.clone());
            true
        }
    };
    if let Some(u) = &conversion {
        passed.push(format!(
            "conversion is not worse than control: {}",
            conversion_text(u, control, treatment)
        ));
    }
    let delivery_ok = match &delivery {
        Delivery::NotGated => true,
        Delivery::Within(text) => {
            passed.push(text.clone());
            true
        }
        Delivery::Below(_) | Delivery::Unknown(_) => false,
    };
    if errors_ok && latency_ok && cache_ok && delivery_ok {
        let passed = passed.join("; ");
        let next = state.stage + 1;
        return match plan.stages.get(next) {
            Some(&next_percent) => Decision::Advance {
                stage: next,
                percent: next_percent,
                reason: format!(
                    "{passed}: {percent}% → {next_percent}% (stage {} of {})",
                    next + 1,
                    plan.stages.len()
                ),
            },
            None => Decision::Complete {
                reason: format!("{passed}: the last stage ({percent}%) is done"),
            },
        };
    }

    // 5. Inconclusive.
    let reason = if !errors_ok {
        format!(
            "inconclusive: the sequential test has not decided between {} and {} yet: {shown} (log-likelihood ratio {llr:.2}, between {:.2} and {:.2})",
            pct(plan.advance_error_rate),
            pct(plan.rollback_error_rate),
            test.lower,
            test.upper
        )
    } else if let Latency::Unknown(why) = latency {
        format!("inconclusive: {why}")
    } else if let (Latency::Above(p99), false) = (&latency, latency_ok) {
        format!(
            "inconclusive: p99 latency {p99} over {requests} requests is above {}, but the p99 of the {visitors} visitors' slowest requests is not: a few visitors' requests are slow",
            ms(plan.max_p99_ms.unwrap_or_default())
        )
    } else if let Err(why) = cache {
        format!("inconclusive: {why}")
    } else if let Delivery::Unknown(why) = delivery {
        format!("inconclusive: {why}")
    } else {
        // Above with too few visitors cannot get here: visitors ≥ min_sample by step 3.
        "inconclusive".to_owned()
    };
    Decision::Hold { reason }
}

/// Wald's sequential probability ratio test between H0: p = `advanceErrorRate` and H1: p =
/// `rollbackErrorRate` for the share of visitors who saw an error, with the thresholds of
/// Ville's inequality (`ln(1/α)` and `ln β`), valid under continuous monitoring.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sprt {
    /// Added to the LLR per visitor who saw an error (> 0).
    pub per_error: f64,
    /// Added to the LLR per visitor who saw none (< 0).
    pub per_clean: f64,
    /// Roll back at or above this LLR: `ln(1/α)`.
    pub upper: f64,
    /// Advance at or below this LLR: `ln β`.
    pub lower: f64,
}

impl Sprt {
    /// The test of a plan. Rates outside (0, 1) or in the wrong order (refused when the plan
    /// is read) are clamped, so the test stays finite.
    pub fn of(plan: &Plan) -> Self {
        let tiny = 1e-9;
        let p0 = plan.advance_error_rate.clamp(tiny, 1.0 - 2.0 * tiny);
        let p1 = plan.rollback_error_rate.clamp(p0 + tiny, 1.0 - tiny);
        let alpha = plan.alpha.clamp(tiny, 0.5);
        let beta = plan.beta.clamp(tiny, 0.5);
        Sprt {
            per_error: (p1 / p0).ln(),
            per_clean: ((1.0 - p1) / (1.0 - p0)).ln(),
            upper: (1.0 / alpha).ln(),
            lower: beta.ln(),
        }
    }

    /// The log-likelihood ratio of `failed` of `visitors` (clamped to `visitors`).
    pub fn llr(&self, failed: u64, visitors: u64) -> f64 {
        let failed = failed.min(visitors);
        failed as f64 * self.per_error + (visitors - failed) as f64 * self.per_clean
    }
}

/// The cache-hit-ratio gate: `Ok(None)` when not gated, `Ok(Some(passed text))`, or
/// `Err(why it does not pass)`.
fn cache_gate(min: Option<f64>, treatment: &Arm) -> Result<Option<String>, String> {
    let Some(min) = min else {
        return Ok(None);
    };
    let cacheable = treatment.cache_hits.saturating_add(treatment.cache_misses);
    if cacheable == 0 {
        // A hit ratio is defined over what a cache may keep: traffic the origin marks
        // uncacheable (an API answering `no-store`) has none, and the gate does not apply.
        // (It is checked only once the stage has its sample of visitors.)
        return Ok(Some(format!(
            "no cacheable treatment requests: the cache-hit-ratio gate ({}) does not apply",
            pct(min)
        )));
    }
    let hit_ratio = treatment.cache_hits as f64 / cacheable as f64;
    let text = format!(
        "cache hit ratio {} over {cacheable} cacheable requests",
        pct(hit_ratio)
    );
    if hit_ratio >= min {
        Ok(Some(format!("{text} is at least {}", pct(min))))
    } else {
        Err(format!("{text} is below {}", pct(min)))
    }
}

/// The delivery gate's outcome; the `String`s are ready for a reason sentence.
enum Delivery {
    /// No `minDeliverySuccess`.
    NotGated,
    Within(String),
    Below(String),
    /// No settled delivery on a gated channel in this stage.
    Unknown(String),
}

fn delivery_text(c: &ChannelDeliveries, ratio: f64) -> String {
    format!(
        "{} delivery success {} ({} delivered, {} failed; {} gone, {} retried not counted)",
        c.channel,
        pct(ratio),
        c.get(crate::measure::metrics::DELIVERED),
        c.get(crate::measure::metrics::FAILED),
        c.get("gone"),
        c.get("retried")
    )
}

/// The delivery-success gate over the stage's outcomes: the named channel, or every channel
/// that settled a delivery (the worst decides).
fn delivery_gate(plan: &Plan, deliveries: &[ChannelDeliveries]) -> Delivery {
    let Some(min) = plan.min_delivery_success else {
        return Delivery::NotGated;
    };
    let gated: Vec<(&ChannelDeliveries, f64)> = deliveries
        .iter()
        .filter(|c| {
            plan.delivery_channel
                .as_ref()
                .is_none_or(|n| *n == c.channel)
        })
        .filter_map(|c| c.success_ratio().map(|r| (c, r)))
        .collect();
    let Some((worst, ratio)) = gated.iter().min_by(|a, b| a.1.total_cmp(&b.1)).copied() else {
        let which = plan
            .delivery_channel
            .as_ref()
            .map_or("any channel".to_owned(), |c| format!("the {c} channel"));
        return Delivery::Unknown(format!(
            "no notification delivery on {which} settled (delivered or failed) in this stage, so delivery success cannot be shown to be at least {}",
            pct(min)
        ));
    };
    let text = delivery_text(worst, ratio);
    if ratio < min {
        Delivery::Below(format!(
            "{text} is below the minimum {} (rollout.minDeliverySuccess)",
            pct(min)
        ))
    } else {
        let all: Vec<String> = gated.iter().map(|(c, r)| delivery_text(c, *r)).collect();
        Delivery::Within(format!("{} at least {}", all.join(", "), pct(min)))
    }
}

/// The p99 gate's outcome; the `String`s are ready for a reason sentence.
enum Latency {
    /// No `maxP99Ms`.
    NotGated,
    Within(String),
    Above(String),
    Unknown(String),
}

fn latency_gate(max_p99_ms: Option<f64>, bounds: &[f64], counts: &[u64]) -> Latency {
    let Some(max) = max_p99_ms else {
        return Latency::NotGated;
    };
    let Some(p99) = stats::quantile(bounds, counts, 0.99) else {
        return Latency::Unknown(format!(
            "no usable latency histogram to check p99 against {}",
            ms(max)
        ));
    };
    // In the overflow bucket the quantile is only a lower bound: the true p99 is above the
    // last bound, by an unknown amount.
    let total: u64 = counts.iter().fold(0, |a, c| a.saturating_add(*c));
    let overflow = counts.last().copied().unwrap_or(0);
    let below = total - overflow;
    let beyond = overflow > 0 && (below as f64) < 0.99 * total as f64;
    if beyond {
        if p99 >= max {
            Latency::Above(format!("above {}", ms(p99)))
        } else {
            Latency::Unknown(format!(
                "p99 latency is above {}, the histogram's last bound, so it cannot be shown to be within {}",
                ms(p99),
                ms(max)
            ))
        }
    } else if p99 > max {
        Latency::Above(ms(p99))
    } else {
        Latency::Within(ms(p99))
    }
}

fn conversion_text(u: &Uplift, control: &Arm, treatment: &Arm) -> String {
    format!(
        "{} vs {} (difference {} points, 95% CI {} to {}) over {} and {} units",
        pct(ratio(treatment.converted, treatment.units)),
        pct(ratio(control.converted, control.units)),
        points(u.absolute),
        points(u.interval.low),
        points(u.interval.high),
        treatment.units,
        control.units
    )
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part.min(whole) as f64 / whole as f64
    }
}

/// A rate as a percentage: one decimal, more for small non-zero rates so that 0.04 % does
/// not read as 0.0 %.
fn pct(rate: f64) -> String {
    let p = rate * 100.0;
    if p == 0.0 || p.abs() >= 0.1 {
        format!("{p:.1}%")
    } else {
        format!("{p:.2}%")
    }
}

/// A difference of two rates in percentage points, signed.
fn points(diff: f64) -> String {
    format!("{:+.1}", diff * 100.0)
}

fn ms(x: f64) -> String {
    format!("{x:.0} ms")
}

fn seconds(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        (ms / 1000).to_string()
    } else {
        format!("{:.1}", ms as f64 / 1000.0)
    }
}

/// Applies a decision to the document text: rewrites the weights of the plan's split
/// (control `100 - p`, treatment `p`, other entries and the bucketing expression unchanged)
/// and the `rollout.*` state keys (`stage` for Start/Advance, `stageStartedAt = now_ms`,
/// `status`, `reason`). Start, Advance and Rollback (0 %) rewrite the split; Complete leaves
/// it as it is. Hold and Idle, and every decision of a dry-run plan, return `Ok(None)`:
/// nothing to write. The control-plane writer validates the result like any change to one
/// flag (`admin::validate` with `Scope::Flag`).
pub fn apply(
    document: &str,
    plan: &Plan,
    decision: &Decision,
    now_ms: u64,
) -> Result<Option<Change>, EdgeError> {
    let (percent, stage, status, reason, what) = match decision {
        Decision::Hold { .. } | Decision::Idle { .. } => return Ok(None),
        _ if plan.dry_run => return Ok(None),
        Decision::Start { percent } => (
            Some(*percent),
            Some(0),
            Status::Running,
            format!("started: {percent}% on {}", plan.treatment),
            format!("started at {percent}%"),
        ),
        Decision::Advance {
            stage,
            percent,
            reason,
        } => (
            Some(*percent),
            Some(*stage),
            Status::Running,
            reason.clone(),
            format!("advanced to {percent}%"),
        ),
        Decision::Rollback { reason } => (
            Some(0),
            None,
            Status::RolledBack,
            reason.clone(),
            "rolled back".to_owned(),
        ),
        Decision::Complete { reason } => (
            None,
            None,
            Status::Completed,
            reason.clone(),
            "completed".to_owned(),
        ),
    };
    let mut doc: Value = serde_json::from_str(document).map_err(|e| {
        EdgeError::Conflict(format!(
            "the stored flag set is not JSON ({e}); replace it whole"
        ))
    })?;
    let flag = doc
        .get_mut("flags")
        .and_then(Value::as_object_mut)
        .and_then(|flags| flags.get_mut(&plan.flag))
        .and_then(Value::as_object_mut)
        .ok_or_else(|| EdgeError::FlagNotFound(plan.flag.clone()))?;
    if let Some(percent) = percent {
        let percent = percent.min(100);
        let args = flag
            .get_mut("targeting")
            .and_then(|t| find_split_mut(t, &plan.control, &plan.treatment))
            .ok_or_else(|| {
                EdgeError::Conflict(format!(
                    "flags.{}.targeting: a rollout needs a fractional split naming {:?} and {:?}",
                    plan.flag, plan.control, plan.treatment
                ))
            })?;
        let skip = args.len() - split_entries(args).len();
        for entry in args.iter_mut().skip(skip) {
            let weight = match entry_name(entry) {
                Some(name) if name == plan.control => 100 - percent,
                Some(name) if name == plan.treatment => percent,
                _ => continue,
            };
            if let Value::Array(parts) = entry {
                parts.truncate(1);
                parts.push(Value::from(weight));
            }
        }
    }
    let meta = flag
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or_else(|| {
            EdgeError::Conflict(format!(
                "flags.{}.metadata: must be an object to hold the rollout state",
                plan.flag
            ))
        })?;
    if let Some(stage) = stage {
        meta.insert(STAGE.into(), Value::from(stage));
    }
    meta.insert(STAGE_STARTED_AT.into(), Value::from(now_ms));
    meta.insert(STATUS.into(), Value::from(status.as_str()));
    meta.insert(REASON.into(), Value::from(reason.clone()));
    let document =
        serde_json::to_string_pretty(&doc).map_err(|e| EdgeError::Internal(e.to_string()))?;
    Ok(Some(Change {
        document,
        summary: format!("{}: rollout {what}: {reason}", plan.flag),
    }))
}

/// Marks a running rollout as paused (the split stays as it is): written by the control
/// plane when a person changed or disabled the flag since the controller's last decision.
pub fn pause(document: &str, flag: &str, reason: &str) -> Result<Change, EdgeError> {
    write_status(document, flag, Status::Paused, reason, None)
}

/// Resumes a paused rollout: its current stage starts again now, on the split as it is.
pub fn resume(document: &str, flag: &str, reason: &str, now_ms: u64) -> Result<Change, EdgeError> {
    write_status(document, flag, Status::Running, reason, Some(now_ms))
}

fn write_status(
    document: &str,
    flag: &str,
    status: Status,
    reason: &str,
    stage_started_ms: Option<u64>,
) -> Result<Change, EdgeError> {
    let mut doc: Value = serde_json::from_str(document).map_err(|e| {
        EdgeError::Conflict(format!(
            "the stored flag set is not JSON ({e}); replace it whole"
        ))
    })?;
    let meta = doc
        .get_mut("flags")
        .and_then(|f| f.get_mut(flag))
        .and_then(|f| f.get_mut("metadata"))
        .and_then(Value::as_object_mut)
        .filter(|m| m.contains_key(STAGES))
        .ok_or_else(|| EdgeError::Conflict(format!("flag {flag:?} has no rollout plan")))?;
    meta.insert(STATUS.into(), Value::from(status.as_str()));
    meta.insert(REASON.into(), Value::from(reason));
    if let Some(at) = stage_started_ms {
        meta.insert(STAGE_STARTED_AT.into(), Value::from(at));
    }
    let document =
        serde_json::to_string_pretty(&doc).map_err(|e| EdgeError::Internal(e.to_string()))?;
    Ok(Change {
        document,
        summary: format!("{flag}: rollout {}: {reason}", status.as_str()),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    // ---- documents ----

    const HOUR_MS: u64 = 3_600_000;
    const T0: u64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

    /// `base` with the keys of `extra` added (or, with a null value, removed).
    fn merged(base: Value, extra: Value) -> Value {
        let (Value::Object(mut base), Value::Object(extra)) = (base, extra) else {
            panic!("objects expected");
        };
        for (k, v) in extra {
            if v.is_null() {
                base.remove(&k);
            } else {
                base.insert(k, v);
            }
        }
        Value::Object(base)
    }

    /// The `backend` flag: v1 (default) and v2, 90/10, a plan "10,50,100" plus `extra`.
    fn backend(extra: Value) -> Value {
        json!({
            "state": "ENABLED",
            "variants": {"v1": "v1", "v2": "v2"},
            "defaultVariant": "v1",
            "targeting": {"fractional": [["v1", 90], ["v2", 10]]},
            "metadata": merged(json!({"owner": "platform", "rollout.stages": "10,50,100"}), extra)
        })
    }

    fn document_with(backend: Value) -> Value {
        json!({
            "$schema": "https://flagd.dev/schema/v0/flags.json",
            "metadata": {"flagSetId": "erp-backend", "version": "1"},
            "flags": {
                "backend": backend,
                "theme": {
                    "state": "ENABLED",
                    "variants": {"classic": "classic", "fresh": "fresh"},
                    "defaultVariant": "classic",
                    "targeting": {"fractional": [["classic", 50], ["fresh", 50]]},
                    "metadata": {"owner": "design"}
                }
            }
        })
    }

    fn only_plan(document: &Value) -> (Plan, State) {
        let mut found = plans(document).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        found.remove(0)
    }

    fn plan_with(extra: Value) -> Plan {
        only_plan(&document_with(backend(extra))).0
    }

    fn default_plan() -> Plan {
        Plan {
            flag: "backend".into(),
            control: "v1".into(),
            treatment: "v2".into(),
            stages: vec![10, 50, 100],
            min_duration_ms: HOUR_MS,
            min_sample: 1000,
            advance_error_rate: 0.005,
            rollback_error_rate: 0.01,
            alpha: 0.05,
            beta: 0.05,
            max_p99_ms: None,
            min_cache_hit_ratio: None,
            conversion_event: None,
            min_delivery_success: None,
            delivery_channel: None,
            dry_run: false,
        }
    }

    // ---- plans ----

    #[test]
    fn a_minimal_plan_takes_every_default() {
        let (plan, state) = only_plan(&document_with(backend(json!({}))));
        assert_eq!(plan, default_plan());
        assert_eq!(
            state,
            State {
                stage: 0,
                stage_started_ms: None,
                status: Status::Running
            }
        );
    }

    #[test]
    fn every_setting_and_the_state_are_read_from_the_metadata() {
        let definition = json!({
            "state": "ENABLED",
            "variants": {"a": 1, "b": 2, "c": 3},
            "defaultVariant": "a",
            "targeting": {"if": [
                {"in": ["@example.com", {"var": "email"}]}, "c",
                {"fractional": [{"var": "orgId"}, ["c", 10], ["b"], ["a", 90]]}
            ]},
            "metadata": {
                "rollout.stages": "5, 25,100",
                "rollout.control": "c",
                "rollout.treatment": "b",
                "rollout.minDurationSeconds": 1.5,
                "rollout.minSample": 200.0,
                "rollout.advanceErrorRate": 0.01,
                "rollout.rollbackErrorRate": 0.02,
                "rollout.alpha": 0.1,
                "rollout.beta": 0.02,
                "rollout.maxP99Ms": 750,
                "rollout.minCacheHitRatio": 0.8,
                "rollout.conversionEvent": "checkout",
                "rollout.minDeliverySuccess": 0.99,
                "rollout.deliveryChannel": "push",
                "rollout.dryRun": true,
                "rollout.stage": 1,
                "rollout.stageStartedAt": T0,
                "rollout.status": "rolled-back",
                "rollout.reason": "error rate too high"
            }
        });
        let (plan, state) = only_plan(&document_with(definition));
        assert_eq!(
            plan,
            Plan {
                flag: "backend".into(),
                control: "c".into(),
                treatment: "b".into(),
                stages: vec![5, 25, 100],
                min_duration_ms: 1500,
                min_sample: 200,
                advance_error_rate: 0.01,
                rollback_error_rate: 0.02,
                alpha: 0.1,
                beta: 0.02,
                max_p99_ms: Some(750.0),
                min_cache_hit_ratio: Some(0.8),
                conversion_event: Some("checkout".into()),
                min_delivery_success: Some(0.99),
                delivery_channel: Some("push".into()),
                dry_run: true,
            }
        );
        assert_eq!(
            state,
            State {
                stage: 1,
                stage_started_ms: Some(T0),
                status: Status::RolledBack
            }
        );
    }

    #[test]
    fn the_treatment_defaults_to_the_other_of_two_variants() {
        assert_eq!(plan_with(json!({"rollout.control": "v2"})).treatment, "v1");
        assert_eq!(plan_with(json!({})).treatment, "v2");
    }

    #[test]
    fn flags_without_rollout_stages_are_not_plans() {
        let mut doc = document_with(backend(json!({"rollout.stages": null})));
        assert_eq!(plans(&doc).unwrap(), vec![]);
        // other rollout keys alone do not make a plan either
        doc = document_with(backend(
            json!({"rollout.stages": null, "rollout.control": "v9"}),
        ));
        assert_eq!(plans(&doc).unwrap(), vec![]);
    }

    #[test]
    fn a_document_without_flags_is_an_error_at_flags() {
        let errors = plans(&json!({"metadata": {}})).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].path, "flags");
    }

    /// (what, flag definition, error path below `flags.backend`, part of the message)
    fn invalid_plans() -> Vec<(&'static str, Value, &'static str, &'static str)> {
        let stages = |s: Value| backend(json!({ "rollout.stages": s }));
        let ascending = "percentages must be ascending integers 1..=100";
        let no_split = r#"a rollout needs a fractional split naming "v1" and "v2""#;
        let with_targeting = |t: Value| merged(backend(json!({})), json!({ "targeting": t }));
        vec![
            (
                "descending stages",
                stages(json!("10,5")),
                "metadata.rollout.stages",
                ascending,
            ),
            (
                "repeated stage",
                stages(json!("10,10")),
                "metadata.rollout.stages",
                ascending,
            ),
            (
                "zero percent",
                stages(json!("0,50")),
                "metadata.rollout.stages",
                ascending,
            ),
            (
                "over 100 %",
                stages(json!("10,101")),
                "metadata.rollout.stages",
                ascending,
            ),
            (
                "not a number",
                stages(json!("10,half")),
                "metadata.rollout.stages",
                ascending,
            ),
            (
                "fractional percent",
                stages(json!("2.5,100")),
                "metadata.rollout.stages",
                ascending,
            ),
            (
                "empty stages",
                stages(json!("")),
                "metadata.rollout.stages",
                ascending,
            ),
            (
                "trailing comma",
                stages(json!("10,")),
                "metadata.rollout.stages",
                ascending,
            ),
            (
                "stages as a number",
                stages(json!(100)),
                "metadata.rollout.stages",
                ascending,
            ),
            (
                "unknown control",
                backend(json!({"rollout.control": "v3"})),
                "metadata.rollout.control",
                r#""v3" is not a variant of the flag"#,
            ),
            (
                "control not a string",
                backend(json!({"rollout.control": 1})),
                "metadata.rollout.control",
                "must be a non-empty string",
            ),
            (
                "no default variant and no control",
                merged(backend(json!({})), json!({"defaultVariant": null})),
                "metadata.rollout.control",
                "required: the flag has no defaultVariant",
            ),
            (
                "unknown treatment",
                backend(json!({"rollout.treatment": "v3"})),
                "metadata.rollout.treatment",
                r#""v3" is not a variant of the flag"#,
            ),
            (
                "treatment equal to control",
                backend(json!({"rollout.treatment": "v1"})),
                "metadata.rollout.treatment",
                r#"must differ from the control "v1""#,
            ),
            (
                "three variants and no treatment",
                merged(
                    backend(json!({})),
                    json!({"variants": {"v1": "v1", "v2": "v2", "v3": "v3"}}),
                ),
                "metadata.rollout.treatment",
                "required unless the flag has exactly two variants (it has 3)",
            ),
            (
                "negative duration",
                backend(json!({"rollout.minDurationSeconds": -1})),
                "metadata.rollout.minDurationSeconds",
                "≥ 0",
            ),
            (
                "duration as a string",
                backend(json!({"rollout.minDurationSeconds": "3600"})),
                "metadata.rollout.minDurationSeconds",
                "≥ 0",
            ),
            (
                "zero sample",
                backend(json!({"rollout.minSample": 0})),
                "metadata.rollout.minSample",
                "an integer ≥ 1",
            ),
            (
                "fractional sample",
                backend(json!({"rollout.minSample": 10.5})),
                "metadata.rollout.minSample",
                "an integer ≥ 1",
            ),
            (
                "advance rate above 1",
                backend(json!({"rollout.advanceErrorRate": 2})),
                "metadata.rollout.advanceErrorRate",
                "between 0 and 1",
            ),
            (
                "negative rollback rate",
                backend(json!({"rollout.rollbackErrorRate": -0.1})),
                "metadata.rollout.rollbackErrorRate",
                "between 0 and 1",
            ),
            (
                "rollback below the default advance rate",
                backend(json!({"rollout.rollbackErrorRate": 0.001})),
                "metadata.rollout.rollbackErrorRate",
                "must be above the advance error rate 0.005",
            ),
            (
                "advance above rollback",
                backend(json!({"rollout.advanceErrorRate": 0.2, "rollout.rollbackErrorRate": 0.1})),
                "metadata.rollout.rollbackErrorRate",
                "must be above the advance error rate 0.2",
            ),
            (
                "equal rates leave the sequential test nothing to tell apart",
                backend(
                    json!({"rollout.advanceErrorRate": 0.01, "rollout.rollbackErrorRate": 0.01}),
                ),
                "metadata.rollout.rollbackErrorRate",
                "must be above the advance error rate 0.01",
            ),
            (
                "a zero advance rate",
                backend(json!({"rollout.advanceErrorRate": 0, "rollout.rollbackErrorRate": 0.01})),
                "metadata.rollout.advanceErrorRate",
                "between 0 and 1 (both excluded)",
            ),
            (
                "a rollback rate of 1",
                backend(json!({"rollout.rollbackErrorRate": 1})),
                "metadata.rollout.rollbackErrorRate",
                "between 0 and 1 (both excluded)",
            ),
            (
                "alpha of 0",
                backend(json!({"rollout.alpha": 0})),
                "metadata.rollout.alpha",
                "above 0 and at most 0.5",
            ),
            (
                "beta above 0.5",
                backend(json!({"rollout.beta": 0.6})),
                "metadata.rollout.beta",
                "above 0 and at most 0.5",
            ),
            (
                "alpha as a string",
                backend(json!({"rollout.alpha": "0.05"})),
                "metadata.rollout.alpha",
                "above 0 and at most 0.5",
            ),
            (
                "a hit ratio above 1",
                backend(json!({"rollout.minCacheHitRatio": 80})),
                "metadata.rollout.minCacheHitRatio",
                "between 0 and 1",
            ),
            (
                "zero p99 limit",
                backend(json!({"rollout.maxP99Ms": 0})),
                "metadata.rollout.maxP99Ms",
                "> 0",
            ),
            (
                "empty conversion event",
                backend(json!({"rollout.conversionEvent": " "})),
                "metadata.rollout.conversionEvent",
                "non-empty string",
            ),
            (
                "dry run as a string",
                backend(json!({"rollout.dryRun": "yes"})),
                "metadata.rollout.dryRun",
                "true or false",
            ),
            (
                "stage past the last",
                backend(json!({"rollout.stage": 3})),
                "metadata.rollout.stage",
                "an index into rollout.stages (0..=2)",
            ),
            (
                "negative start time",
                backend(json!({"rollout.stageStartedAt": -5})),
                "metadata.rollout.stageStartedAt",
                "milliseconds since the epoch",
            ),
            (
                "unknown status",
                backend(json!({"rollout.status": "stopped"})),
                "metadata.rollout.status",
                "running, completed, rolled-back or paused",
            ),
            (
                "reason not a string",
                backend(json!({"rollout.reason": 1})),
                "metadata.rollout.reason",
                "must be a string",
            ),
            (
                "misspelt setting",
                backend(json!({"rollout.minSamples": 10})),
                "metadata.rollout.minSamples",
                "unknown rollout setting",
            ),
            (
                "no targeting",
                merged(backend(json!({})), json!({"targeting": null})),
                "targeting",
                no_split,
            ),
            (
                "targeting without a split",
                with_targeting(json!({"if": [{"var": "beta"}, "v2", "v1"]})),
                "targeting",
                no_split,
            ),
            (
                "a split without the treatment",
                with_targeting(json!({"fractional": [["v1", 50], ["v1x", 50]]})),
                "targeting",
                no_split,
            ),
            (
                "a split naming the control twice",
                with_targeting(json!({"fractional": [["v1", 50], ["v2", 10], ["v1", 40]]})),
                "targeting",
                no_split,
            ),
            (
                "a split behind a $ref",
                with_targeting(json!({"$ref": "canary_split"})),
                "targeting",
                no_split,
            ),
            (
                "delivery success above 1",
                backend(json!({"rollout.minDeliverySuccess": 1.5})),
                "metadata.rollout.minDeliverySuccess",
                "a ratio between 0 and 1",
            ),
            (
                "delivery success as a percentage string",
                backend(json!({"rollout.minDeliverySuccess": "99%"})),
                "metadata.rollout.minDeliverySuccess",
                "a ratio between 0 and 1",
            ),
            (
                "an unknown delivery channel",
                backend(
                    json!({"rollout.minDeliverySuccess": 0.99, "rollout.deliveryChannel": "sms"}),
                ),
                "metadata.rollout.deliveryChannel",
                r#""sms" is not a channel; the channels are push, inapp, email"#,
            ),
            (
                "a delivery channel without a minimum",
                backend(json!({"rollout.deliveryChannel": "push"})),
                "metadata.rollout.deliveryChannel",
                "there is no rollout.minDeliverySuccess",
            ),
            (
                "a misspelt delivery key",
                backend(json!({"rollout.minDeliverySucces": 0.99})),
                "metadata.rollout.minDeliverySucces",
                "unknown rollout setting",
            ),
        ]
    }

    #[test]
    fn invalid_plans_are_reported_at_their_json_path() {
        for (what, definition, path, message) in invalid_plans() {
            let errors = plans(&document_with(definition)).expect_err(what);
            let expected_path = format!("flags.backend.{path}");
            assert!(
                errors
                    .iter()
                    .any(|e| e.path == expected_path && e.message.contains(message)),
                "{what}: expected {expected_path}: …{message}…, got {errors:?}"
            );
        }
    }

    #[test]
    fn every_error_of_every_flag_is_collected() {
        let mut doc = document_with(backend(json!({
            "rollout.stages": "50,10",
            "rollout.minSample": 0,
            "rollout.dryRun": 1
        })));
        doc["flags"]["theme"]["metadata"]["rollout.stages"] = json!("10,100");
        doc["flags"]["theme"]["metadata"]["rollout.status"] = json!("done");
        let errors = plans(&doc).unwrap_err();
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        for path in [
            "flags.backend.metadata.rollout.stages",
            "flags.backend.metadata.rollout.minSample",
            "flags.backend.metadata.rollout.dryRun",
            "flags.theme.metadata.rollout.status",
        ] {
            assert!(paths.contains(&path), "{path} missing from {paths:?}");
        }
        assert_eq!(errors.len(), 4, "{errors:?}");
    }

    #[test]
    fn the_split_may_sit_anywhere_in_the_targeting_with_a_bucketing_key() {
        let targeting = json!({"if": [
            {"starts_with": [{"var": "email"}, "qa-"]}, "v2",
            {"if": [{"var": "beta"}, "v1",
                {"fractional": [{"cat": [{"var": "$flagd.flagKey"}, {"var": "orgId"}]}, ["v1"], ["v2", 0]]}]}
        ]});
        let doc = document_with(merged(
            backend(json!({})),
            json!({ "targeting": targeting }),
        ));
        assert_eq!(only_plan(&doc).0, default_plan());
    }

    // ---- decide ----

    /// Latency bucket upper bounds used by the decision tests.
    const BOUNDS: [f64; 5] = [50.0, 100.0, 250.0, 500.0, 1000.0];

    fn running(stage: usize, started_ms: u64) -> State {
        State {
            stage,
            stage_started_ms: Some(started_ms),
            status: Status::Running,
        }
    }

    /// An arm where every request came from its own visitor.
    fn arm(requests: u64, errors: u64) -> Arm {
        Arm {
            requests,
            errors,
            visitors: requests,
            error_visitors: errors,
            latency: vec![requests, 0, 0, 0, 0, 0],
            visitor_latency: vec![requests, 0, 0, 0, 0, 0],
            ..Arm::default()
        }
    }

    fn with_latency(mut a: Arm, latency: [u64; 6]) -> Arm {
        a.latency = latency.to_vec();
        a.visitor_latency = latency.to_vec();
        a
    }

    fn with_units(mut a: Arm, units: u64, converted: u64) -> Arm {
        a.units = units;
        a.converted = converted;
        a
    }

    fn action(d: &Decision) -> String {
        serde_json::to_value(d).unwrap()["action"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn reason(d: &Decision) -> &str {
        match d {
            Decision::Start { .. } => "",
            Decision::Advance { reason, .. }
            | Decision::Hold { reason }
            | Decision::Rollback { reason }
            | Decision::Complete { reason }
            | Decision::Idle { reason } => reason,
        }
    }

    struct Case {
        what: &'static str,
        plan: Plan,
        state: State,
        control: Arm,
        treatment: Arm,
        now_ms: u64,
        action: &'static str,
        reason: &'static str,
    }

    fn case(what: &'static str, state: State, treatment: Arm, now_ms: u64) -> Case {
        Case {
            what,
            plan: default_plan(),
            state,
            control: arm(10_000, 10),
            treatment,
            now_ms,
            action: "",
            reason: "",
        }
    }

    impl Case {
        fn expect(mut self, action: &'static str, reason: &'static str) -> Self {
            self.action = action;
            self.reason = reason;
            self
        }
        fn plan(mut self, change: impl FnOnce(&mut Plan)) -> Self {
            change(&mut self.plan);
            self
        }
        fn control(mut self, control: Arm) -> Self {
            self.control = control;
            self
        }
    }

    fn check(cases: Vec<Case>) {
        for c in cases {
            let d = decide(
                &c.plan,
                &c.state,
                &c.control,
                &c.treatment,
                &BOUNDS,
                c.now_ms,
            );
            assert_eq!(action(&d), c.action, "{}: {d:?}", c.what);
            assert!(
                reason(&d).contains(c.reason),
                "{}: expected …{}… in {:?}",
                c.what,
                c.reason,
                reason(&d)
            );
        }
    }

    #[test]
    fn finished_rollouts_are_idle_and_unstarted_ones_start_at_the_first_stage() {
        let done = |status| State {
            stage: 2,
            stage_started_ms: Some(T0),
            status,
        };
        let later = T0 + 10 * HOUR_MS;
        check(vec![
            case("completed", done(Status::Completed), arm(5000, 0), later)
                .expect("idle", "completed"),
            case(
                "rolled back",
                done(Status::RolledBack),
                arm(5000, 4000),
                later,
            )
            .expect("idle", "rolled back"),
            case("no plan stages", running(0, T0), arm(5000, 0), later)
                .plan(|p| p.stages.clear())
                .expect("idle", "no stages"),
            case("stage out of range", running(7, T0), arm(5000, 0), later)
                .expect("idle", "stage index 7 does not exist"),
        ]);
        let not_started = State {
            stage: 0,
            stage_started_ms: None,
            status: Status::Running,
        };
        let d = decide(
            &default_plan(),
            &not_started,
            &Arm::default(),
            &arm(5000, 4000),
            &BOUNDS,
            T0,
        );
        assert_eq!(d, Decision::Start { percent: 10 });
    }

    #[test]
    fn a_failing_canary_is_rolled_back_once_the_sequential_test_rejects_the_advance_rate() {
        let early = T0 + 10_000;
        let one_visitor = Arm {
            visitors: 1,
            error_visitors: 1,
            ..arm(50, 50)
        };
        let few_visitors_many_requests = Arm {
            visitors: 20,
            error_visitors: 2,
            ..arm(2000, 1500)
        };
        check(vec![
            case("5 of 50 visitors failed, seconds in", running(0, T0), arm(50, 5), early).expect(
                "rollback",
                "error rate above the rollback limit 1.0%: 5 of 50 visitors saw an error (10.0%; request error rate 10.0% over 50 requests); the sequential test rejects 0.5% at α = 0.05 (log-likelihood ratio 3.24 ≥ 3.00)",
            ),
            case("2% of 2000 failed", running(1, T0), arm(2000, 40), early)
                .expect("rollback", "40 of 2000 visitors saw an error (2.0%"),
            case("1 of 20 failed is not yet decided", running(0, T0), arm(20, 1), early)
                .expect("hold", "waiting"),
            case("4 of 10 failed is not yet decided", running(0, T0), arm(10, 4), early)
                .expect("hold", "waiting"),
            case("one visitor's 50 failed requests weigh one visitor", running(0, T0), one_visitor, early)
                .expect("hold", "waiting: 1 of 1000 visitors"),
            case("requests do not count, visitors do", running(0, T0), few_visitors_many_requests, early)
                .expect("hold", "waiting: 20 of 1000 visitors"),
            case("errors above visitors are clamped", running(0, T0), arm(10, 50), early)
                .expect("rollback", "hard stop"),
        ]);
    }

    #[test]
    fn the_hard_stop_rolls_back_a_canary_failing_most_of_its_first_five_visitors() {
        let early = T0 + 1000;
        let lenient = |p: &mut Plan| {
            p.advance_error_rate = 0.3;
            p.rollback_error_rate = 0.6;
        };
        check(vec![
            case("5 of 5", running(0, T0), arm(5, 5), early)
                .expect("rollback", "hard stop: error rate above the rollback limit, most visitors fail: 5 of 5 visitors"),
            case("3 of 5", running(0, T0), arm(5, 3), early).plan(lenient)
                .expect("rollback", "hard stop"),
            case("4 of 4 is not yet five visitors", running(0, T0), arm(4, 4), early).plan(lenient)
                .expect("hold", "waiting"),
            case("2 of 5 is not most", running(0, T0), arm(5, 2), early).plan(lenient)
                .expect("hold", "waiting"),
            case("6 of 10 with lenient rates", running(0, T0), arm(10, 6), early).plan(lenient)
                .expect("rollback", "hard stop"),
        ]);
        // With the default rates the sequential test alone also stops a canary failing every
        // visitor at its 5th visitor: 5 · ln 2 ≥ ln 20.
        let test = Sprt::of(&default_plan());
        assert!(test.llr(4, 4) < test.upper && test.llr(5, 5) >= test.upper);
    }

    #[test]
    fn a_stage_holds_until_it_has_run_long_enough_with_enough_requests() {
        check(vec![
            case(
                "too few requests and too early",
                running(0, T0),
                arm(12, 0),
                T0 + 30_000,
            )
            .expect("hold", "waiting: 12 of 1000 visitors, 30 s of 3600 s"),
            case(
                "enough requests, too early",
                running(0, T0),
                arm(5000, 0),
                T0 + 1_800_500,
            )
            .expect("hold", "waiting: 5000 of 1000 visitors, 1800.5 s of 3600 s"),
            case(
                "late enough, too few requests",
                running(0, T0),
                arm(999, 0),
                T0 + 2 * HOUR_MS,
            )
            .expect("hold", "waiting: 999 of 1000 visitors"),
            case(
                "clock behind the start",
                running(0, T0),
                arm(5000, 0),
                T0 - 1000,
            )
            .expect("hold", "0 s of 3600 s"),
            case(
                "no requests at all with a zero sample",
                running(0, T0),
                arm(0, 0),
                T0 + 2 * HOUR_MS,
            )
            .plan(|p| p.min_sample = 0)
            .expect("hold", "waiting: 0 of 1 visitors"),
        ]);
    }

    #[test]
    fn a_healthy_stage_advances_and_the_last_one_completes() {
        let later = T0 + 2 * HOUR_MS;
        check(vec![
            case("0.1% errors at 10%", running(0, T0), arm(2000, 2), later)
                .expect("advance", "error rate within the advance limit 0.5%: 2 of 2000 visitors saw an error (0.1%; request error rate 0.1% over 2000 requests); the sequential test accepts it at β = 0.05 (log-likelihood ratio -8.68 ≤ -3.00): 10% → 50% (stage 2 of 3)"),
            case("at the advance limit with enough visitors", running(1, T0), arm(3000, 15), later)
                .expect("advance", "50% → 100% (stage 3 of 3)"),
            case("at exactly the minimum duration and sample", running(0, T0), arm(1000, 0), T0 + HOUR_MS)
                .expect("advance", "10% → 50%"),
            case("last stage", running(2, T0), arm(2000, 0), later)
                .expect("complete", "the last stage (100%) is done"),
            case("last stage below 100 %", running(1, T0), arm(2000, 0), later)
                .plan(|p| p.stages = vec![5, 20])
                .expect("complete", "the last stage (20%) is done"),
        ]);
        let d = decide(
            &default_plan(),
            &running(0, T0),
            &arm(1, 0),
            &arm(2000, 2),
            &BOUNDS,
            later,
        );
        assert!(
            matches!(
                d,
                Decision::Advance {
                    stage: 1,
                    percent: 50,
                    ..
                }
            ),
            "{d:?}"
        );
    }

    #[test]
    fn an_error_rate_between_the_limits_is_inconclusive() {
        let later = T0 + 2 * HOUR_MS;
        check(vec![
            case("0.7% of 2000", running(0, T0), arm(2000, 14), later).expect(
                "hold",
                "inconclusive: the sequential test has not decided between 0.5% and 1.0% yet: 14 of 2000 visitors",
            ),
            case("0.5% of 1000 needs more visitors", running(0, T0), arm(1000, 5), later)
                .expect("hold", "log-likelihood ratio -1.55, between -3.00 and 3.00"),
            case(
                "1.3% of 300 is not yet decided",
                running(0, T0),
                arm(300, 4),
                later,
            )
            .plan(|p| p.min_sample = 100)
            .expect("hold", "inconclusive"),
        ]);
    }

    #[test]
    fn the_p99_latency_gate_rolls_back_holds_or_lets_pass() {
        let later = T0 + 2 * HOUR_MS;
        let gated = |p: &mut Plan| p.max_p99_ms = Some(500.0);
        let fast = with_latency(arm(2000, 0), [1500, 480, 20, 0, 0, 0]);
        let slow = with_latency(arm(2000, 0), [1000, 500, 200, 200, 100, 0]);
        let very_slow = with_latency(arm(2000, 0), [1000, 500, 200, 200, 0, 100]);
        check(vec![
            case("fast", running(0, T0), fast.clone(), later)
                .plan(gated)
                .expect("advance", "p99 latency 100 ms is within 500 ms"),
            case("slow", running(0, T0), slow.clone(), later)
                .plan(gated)
                .expect("rollback", "p99 latency 900 ms over 2000 requests of 2000 visitors is above the limit 500 ms"),
            case("slow but early: the gate is checked from the minimum sample on", running(0, T0), with_latency(arm(500, 0), [250, 125, 50, 50, 25, 0]), later)
                .plan(gated)
                .expect("hold", "waiting: 500 of 1000"),
            case("beyond the histogram and above the limit", running(0, T0), very_slow.clone(), later)
                .plan(gated)
                .expect("rollback", "p99 latency above 1000 ms"),
            case("beyond the histogram, limit above its last bound", running(0, T0), very_slow, later)
                .plan(|p| p.max_p99_ms = Some(2000.0))
                .expect("hold", "inconclusive: p99 latency is above 1000 ms, the histogram's last bound, so it cannot be shown to be within 2000 ms"),
            case("no histogram", running(0, T0), with_latency(arm(2000, 0), [0; 6]), later)
                .plan(gated)
                .expect("hold", "inconclusive: no usable latency histogram"),
            case("no limit, slow is fine", running(0, T0), slow, later)
                .expect("advance", "10% → 50%"),
        ]);
        let wrong_shape = Arm {
            latency: vec![2000],
            ..arm(2000, 0)
        };
        check(vec![case(
            "histogram of the wrong shape",
            running(0, T0),
            wrong_shape,
            later,
        )
        .plan(gated)
        .expect("hold", "no usable latency histogram")]);
        // One visitor sent 100 slow requests: the requests' p99 is above the limit, the
        // visitors' is not — the stage holds, it is not rolled back.
        let one_slow_visitor = Arm {
            latency: vec![1900, 0, 0, 0, 100, 0],
            visitor_latency: vec![1899, 0, 0, 0, 1, 0],
            ..arm(2000, 0)
        };
        check(vec![case(
            "one visitor's slow requests",
            running(0, T0),
            one_slow_visitor,
            later,
        )
        .plan(gated)
        .expect(
            "hold",
            "but the p99 of the 2000 visitors' slowest requests is not",
        )]);
    }

    #[test]
    fn the_conversion_gate_rolls_back_a_treatment_that_converts_worse() {
        let later = T0 + 2 * HOUR_MS;
        let converting = |p: &mut Plan| p.conversion_event = Some("checkout".into());
        let control = with_units(arm(20_000, 0), 5000, 500);
        check(vec![
            case(
                "clearly worse",
                running(0, T0),
                with_units(arm(2000, 0), 5000, 350),
                T0 + 60_000,
            )
            .plan(converting)
            .control(control.clone())
            .expect(
                "rollback",
                "conversion is worse than control: 7.0% vs 10.0% (difference -3.0 points, 95% CI",
            ),
            case(
                "about the same",
                running(0, T0),
                with_units(arm(2000, 0), 5000, 490),
                later,
            )
            .plan(converting)
            .control(control.clone())
            .expect(
                "advance",
                "conversion is not worse than control: 9.8% vs 10.0%",
            ),
            case(
                "too few treatment units",
                running(0, T0),
                with_units(arm(2000, 0), 400, 0),
                later,
            )
            .plan(converting)
            .control(control.clone())
            .expect(
                "hold",
                "400 of 1000 treatment units and 5000 of 1000 control units",
            ),
            case(
                "too few control units",
                running(0, T0),
                with_units(arm(2000, 0), 5000, 0),
                later,
            )
            .plan(converting)
            .control(with_units(arm(2000, 0), 999, 999))
            .expect(
                "hold",
                "5000 of 1000 treatment units and 999 of 1000 control units",
            ),
            case(
                "no conversion gate",
                running(0, T0),
                with_units(arm(2000, 0), 5000, 0),
                later,
            )
            .control(control)
            .expect("advance", "10% → 50%"),
        ]);
    }

    #[test]
    fn decisions_serialize_with_their_action() {
        let json = serde_json::to_value(Decision::Advance {
            stage: 1,
            percent: 50,
            reason: "ok".into(),
        })
        .unwrap();
        assert_eq!(
            json,
            json!({"action": "advance", "stage": 1, "percent": 50, "reason": "ok"})
        );
        assert_eq!(
            serde_json::to_value(Decision::Start { percent: 10 }).unwrap(),
            json!({"action": "start", "percent": 10})
        );
        assert_eq!(
            serde_json::to_value(Status::RolledBack).unwrap(),
            json!("rolled-back")
        );
    }

    #[test]
    fn the_cache_hit_ratio_gate_holds_a_stage_below_the_minimum_and_skips_uncacheable_traffic() {
        let later = T0 + 2 * HOUR_MS;
        let gated = |p: &mut Plan| p.min_cache_hit_ratio = Some(0.8);
        let cached = |hits, misses| Arm {
            cache_hits: hits,
            cache_misses: misses,
            ..arm(2000, 0)
        };
        check(vec![
            case("85 % hits", running(0, T0), cached(850, 150), later)
                .plan(gated)
                .expect("advance", "cache hit ratio 85.0% over 1000 cacheable requests is at least 80.0%"),
            case("exactly 80 %", running(0, T0), cached(800, 200), later)
                .plan(gated)
                .expect("advance", "10% → 50%"),
            case("70 % hits", running(0, T0), cached(700, 300), later)
                .plan(gated)
                .expect("hold", "inconclusive: cache hit ratio 70.0% over 1000 cacheable requests is below 80.0%"),
            // An API that answers `no-store` has no hit ratio: the gate does not apply.
            case("nothing cacheable", running(0, T0), cached(0, 0), later)
                .plan(gated)
                .expect("advance", "the cache-hit-ratio gate (80.0%) does not apply"),
            case("not gated", running(0, T0), cached(0, 5), later)
                .expect("advance", "10% → 50%"),
        ]);
    }

    fn delivered(arm: Arm, rows: &[(&str, &str, u64)]) -> Arm {
        Arm {
            deliveries: crate::measure::metrics::by_channel(rows.iter().copied()),
            ..arm
        }
    }

    #[test]
    fn the_delivery_gate_holds_below_the_minimum_at_once_and_never_rolls_back() {
        let later = T0 + 2 * HOUR_MS;
        let gated = |p: &mut Plan| p.min_delivery_success = Some(0.99);
        let push_only = |p: &mut Plan| {
            p.min_delivery_success = Some(0.99);
            p.delivery_channel = Some("push".into());
        };
        let healthy = arm(2000, 0);
        check(vec![
            case("push 99.5 %", running(0, T0), delivered(healthy.clone(), &[("push", "delivered", 199), ("push", "failed", 1)]), later)
                .plan(gated)
                .expect("advance", "push delivery success 99.5% (199 delivered, 1 failed; 0 gone, 0 retried not counted) at least 99.0%"),
            case("exactly 99 %", running(0, T0), delivered(healthy.clone(), &[("push", "delivered", 99), ("push", "failed", 1)]), later)
                .plan(gated)
                .expect("advance", "10% → 50%"),
            case("the last stage completes", running(2, T0), delivered(healthy.clone(), &[("email", "delivered", 5)]), later)
                .plan(gated)
                .expect("complete", "email delivery success 100.0%"),
            // A failing push service: held (not rolled back), at once, before the stage's
            // minimum duration and sample, with the ratio in the reason.
            case("push failing, first minute", running(0, T0), delivered(arm(3, 0), &[("push", "delivered", 1), ("push", "failed", 4), ("push", "retried", 8)]), T0 + 60_000)
                .plan(gated)
                .expect("hold", "holding: push delivery success 20.0% (1 delivered, 4 failed; 0 gone, 8 retried not counted) is below the minimum 99.0% (rollout.minDeliverySuccess)"),
            case("98 %", running(1, T0), delivered(healthy.clone(), &[("push", "delivered", 98), ("push", "failed", 2)]), later)
                .plan(gated)
                .expect("hold", "push delivery success 98.0%"),
            // Gone, retried and dropped are not failures of the channel.
            case("gone and retries do not count", running(0, T0), delivered(healthy.clone(), &[("push", "delivered", 10), ("push", "gone", 90), ("push", "retried", 50), ("push", "dropped", 7)]), later)
                .plan(gated)
                .expect("advance", "push delivery success 100.0%"),
            // Every channel with settled deliveries is gated; the worst decides.
            case("e-mail failing, push fine", running(0, T0), delivered(healthy.clone(), &[("push", "delivered", 500), ("email", "delivered", 9), ("email", "failed", 1)]), later)
                .plan(gated)
                .expect("hold", "email delivery success 90.0%"),
            // … unless the plan names one channel.
            case("only push is gated", running(0, T0), delivered(healthy.clone(), &[("push", "delivered", 500), ("email", "failed", 10)]), later)
                .plan(push_only)
                .expect("advance", "push delivery success 100.0%"),
            case("nothing settled on push", running(0, T0), delivered(healthy.clone(), &[("email", "delivered", 10), ("push", "gone", 3)]), later)
                .plan(push_only)
                .expect("hold", "inconclusive: no notification delivery on the push channel settled"),
            case("nothing settled anywhere", running(0, T0), healthy.clone(), later)
                .plan(gated)
                .expect("hold", "no notification delivery on any channel settled"),
            // Safety first: a failing canary is still rolled back with a failing channel.
            case("errors and deliveries failing", running(0, T0), delivered(arm(10, 9), &[("push", "failed", 5)]), T0 + 60_000)
                .plan(gated)
                .expect("rollback", "hard stop"),
            case("not gated", running(0, T0), delivered(healthy, &[("push", "failed", 5)]), later)
                .expect("advance", "10% → 50%"),
        ]);
    }

    proptest::proptest! {
        /// The sequential rule never advances (or completes) a stage on zero data, whatever
        /// the plan, the clock, the requests and the control arm.
        #[test]
        fn never_advances_on_zero_visitors(
            p0 in 0.0001f64..0.5,
            gap in 0.0001f64..0.49,
            alpha in 0.0001f64..=0.5,
            beta in 0.0001f64..=0.5,
            stage in 0usize..3,
            min_sample in 0u64..5000,
            requests in 0u64..1_000_000,
            errors in 0u64..1_000_000,
            now in proptest::prelude::any::<u64>(),
        ) {
            let mut plan = default_plan();
            plan.advance_error_rate = p0;
            plan.rollback_error_rate = p0 + gap;
            plan.alpha = alpha;
            plan.beta = beta;
            plan.min_sample = min_sample;
            plan.min_duration_ms = 0;
            let treatment = Arm { visitors: 0, error_visitors: 0, ..arm(requests, errors) };
            let d = decide(&plan, &running(stage, 0), &arm(requests, errors), &treatment, &BOUNDS, now);
            proptest::prop_assert!(matches!(d, Decision::Hold { .. }), "{:?}", d);
        }

        /// Nor on visitors who all saw no error but are too few for the test to accept H0,
        /// and it never rolls back a stage in which no visitor saw an error.
        #[test]
        fn clean_visitors_never_roll_back_and_advance_only_past_the_boundary(
            p0 in 0.0001f64..0.5,
            gap in 0.0001f64..0.49,
            beta in 0.0001f64..=0.5,
            visitors in 0u64..100_000,
        ) {
            let mut plan = default_plan();
            plan.advance_error_rate = p0;
            plan.rollback_error_rate = p0 + gap;
            plan.beta = beta;
            plan.min_sample = 1;
            plan.min_duration_ms = 0;
            let test = Sprt::of(&plan);
            let d = decide(&plan, &running(0, 0), &Arm::default(), &arm(visitors, 0), &BOUNDS, T0);
            proptest::prop_assert!(!matches!(d, Decision::Rollback { .. }), "{:?}", d);
            let advanced = matches!(d, Decision::Advance { .. });
            proptest::prop_assert_eq!(advanced, visitors > 0 && test.llr(0, visitors) <= test.lower);
        }
    }

    #[test]
    fn decide_never_panics_over_a_grid_of_counts() {
        let counts = [0u64, 1, 999, 1000, u64::MAX];
        let histograms: [Vec<u64>; 3] = [vec![], vec![0; 6], vec![u64::MAX; 6]];
        for &requests in &counts {
            for &errors in &counts {
                for &units in &counts {
                    for latency in &histograms {
                        let treatment = Arm {
                            requests,
                            errors,
                            visitors: units,
                            error_visitors: errors,
                            cache_hits: requests,
                            cache_misses: errors,
                            latency: latency.clone(),
                            visitor_latency: latency.clone(),
                            units,
                            converted: errors,
                            deliveries: crate::measure::metrics::by_channel([
                                ("push", "delivered", requests),
                                ("push", "failed", errors),
                                ("email", "delivered", units),
                            ]),
                        };
                        let control = with_units(arm(requests, 0), units, requests);
                        let mut plan = default_plan();
                        plan.max_p99_ms = Some(100.0);
                        plan.min_cache_hit_ratio = Some(0.8);
                        plan.conversion_event = Some("buy".into());
                        plan.min_delivery_success = Some(0.99);
                        for now in [0, T0, u64::MAX] {
                            let d =
                                decide(&plan, &running(2, T0), &control, &treatment, &BOUNDS, now);
                            assert!(!reason(&d).contains("NaN"), "{d:?}");
                        }
                    }
                }
            }
        }
    }

    // ---- apply ----

    fn text(doc: &Value) -> String {
        serde_json::to_string_pretty(doc).unwrap()
    }

    fn applied(doc: &Value, plan: &Plan, decision: &Decision, now_ms: u64) -> Value {
        let change = apply(&text(doc), plan, decision, now_ms).unwrap().unwrap();
        crate::flags::admin::validate(
            &change.document,
            crate::flags::admin::Scope::Flag(&plan.flag),
        )
        .unwrap();
        assert!(
            change
                .summary
                .starts_with(&format!("{}: rollout ", plan.flag)),
            "{}",
            change.summary
        );
        serde_json::from_str(&change.document).unwrap()
    }

    fn split_of(doc: &Value) -> Value {
        doc["flags"]["backend"]["targeting"]["fractional"].clone()
    }

    #[test]
    fn apply_rewrites_only_the_split_weights_and_the_rollout_state() {
        let targeting = json!({"if": [
            {"in": ["@example.com", {"var": "email"}]}, "v3",
            {"fractional": [{"cat": [{"var": "$flagd.flagKey"}, {"var": "orgId"}]}, ["v3", 5], ["v1", 85], ["v2"]]}
        ]});
        let definition = merged(
            backend(json!({"rollout.treatment": "v2", "description": "ERP backend"})),
            json!({"variants": {"v1": "v1", "v2": "v2", "v3": "v3"}, "targeting": targeting}),
        );
        let before = document_with(definition);
        let (plan, _) = only_plan(&before);
        let after = applied(&before, &plan, &Decision::Start { percent: 10 }, T0);

        let mut expected = before.clone();
        let split = expected
            .pointer_mut("/flags/backend/targeting/if/2/fractional")
            .unwrap();
        *split = json!([{"cat": [{"var": "$flagd.flagKey"}, {"var": "orgId"}]}, ["v3", 5], ["v1", 90], ["v2", 10]]);
        let meta = expected["flags"]["backend"]["metadata"]
            .as_object_mut()
            .unwrap();
        meta.insert("rollout.stage".into(), json!(0));
        meta.insert("rollout.stageStartedAt".into(), json!(T0));
        meta.insert("rollout.status".into(), json!("running"));
        meta.insert("rollout.reason".into(), json!("started: 10% on v2"));
        assert_eq!(after, expected);
    }

    #[test]
    fn holds_idles_and_dry_runs_write_nothing() {
        let doc = text(&document_with(backend(json!({}))));
        let plan = default_plan();
        for d in [
            Decision::Hold {
                reason: "waiting".into(),
            },
            Decision::Idle {
                reason: "done".into(),
            },
        ] {
            assert_eq!(apply(&doc, &plan, &d, T0), Ok(None));
        }
        let dry = Plan {
            dry_run: true,
            ..default_plan()
        };
        for d in [
            Decision::Start { percent: 10 },
            Decision::Rollback {
                reason: "bad".into(),
            },
            Decision::Complete {
                reason: "good".into(),
            },
        ] {
            assert_eq!(apply(&doc, &dry, &d, T0), Ok(None));
        }
    }

    #[test]
    fn a_rollback_puts_everyone_on_the_control_and_a_completion_keeps_the_split() {
        let doc = document_with(backend(
            json!({"rollout.stage": 1, "rollout.stageStartedAt": T0}),
        ));
        let plan = default_plan();

        let rolled = applied(
            &doc,
            &plan,
            &Decision::Rollback {
                reason: "error rate 5.0%".into(),
            },
            T0 + 5,
        );
        assert_eq!(split_of(&rolled), json!([["v1", 100], ["v2", 0]]));
        let meta = &rolled["flags"]["backend"]["metadata"];
        assert_eq!(meta["rollout.status"], json!("rolled-back"));
        assert_eq!(meta["rollout.reason"], json!("error rate 5.0%"));
        assert_eq!(meta["rollout.stage"], json!(1));
        assert_eq!(meta["rollout.stageStartedAt"], json!(T0 + 5));

        let completed = applied(
            &doc,
            &plan,
            &Decision::Complete {
                reason: "all good".into(),
            },
            T0 + 5,
        );
        assert_eq!(split_of(&completed), split_of(&doc));
        assert_eq!(
            completed["flags"]["backend"]["metadata"]["rollout.status"],
            json!("completed")
        );
    }

    #[test]
    fn apply_refuses_what_it_cannot_write() {
        let plan = default_plan();
        let start = Decision::Start { percent: 10 };
        assert!(matches!(
            apply("{not json", &plan, &start, T0),
            Err(EdgeError::Conflict(_))
        ));

        let other = Plan {
            flag: "missing".into(),
            ..default_plan()
        };
        let doc = text(&document_with(backend(json!({}))));
        assert_eq!(
            apply(&doc, &other, &start, T0),
            Err(EdgeError::FlagNotFound("missing".into()))
        );

        let no_split = text(&document_with(merged(
            backend(json!({})),
            json!({"targeting": null}),
        )));
        assert!(
            matches!(apply(&no_split, &plan, &start, T0), Err(EdgeError::Conflict(m)) if m.contains("fractional split"))
        );
    }

    // ---- whole rollouts ----

    /// One controller tick: read the plan from the document, decide, apply.
    fn tick(doc: &mut Value, control: &Arm, treatment: &Arm, now_ms: u64) -> Decision {
        let (plan, state) = only_plan(doc);
        let decision = decide(&plan, &state, control, treatment, &BOUNDS, now_ms);
        if let Some(change) = apply(&text(doc), &plan, &decision, now_ms).unwrap() {
            *doc = serde_json::from_str(&change.document).unwrap();
        }
        decision
    }

    #[test]
    fn a_healthy_rollout_walks_10_50_100_and_completes() {
        let mut doc = document_with(merged(
            backend(json!({})),
            json!({"targeting": {"fractional": [["v1", 100], ["v2", 0]]}}),
        ));
        let control = arm(20_000, 20);
        let healthy = arm(3000, 3);

        assert_eq!(
            tick(&mut doc, &control, &healthy, T0),
            Decision::Start { percent: 10 }
        );
        assert_eq!(split_of(&doc), json!([["v1", 90], ["v2", 10]]));

        let steps = [
            (T0 + 60_000, "hold", json!([["v1", 90], ["v2", 10]])),
            (T0 + HOUR_MS, "advance", json!([["v1", 50], ["v2", 50]])),
            (
                T0 + HOUR_MS + 60_000,
                "hold",
                json!([["v1", 50], ["v2", 50]]),
            ),
            (T0 + 2 * HOUR_MS, "advance", json!([["v1", 0], ["v2", 100]])),
            (
                T0 + 3 * HOUR_MS,
                "complete",
                json!([["v1", 0], ["v2", 100]]),
            ),
            (T0 + 4 * HOUR_MS, "idle", json!([["v1", 0], ["v2", 100]])),
        ];
        for (now, expected, split) in steps {
            let d = tick(&mut doc, &control, &healthy, now);
            assert_eq!(action(&d), expected, "at {now}: {d:?}");
            assert_eq!(split_of(&doc), split, "after {d:?}");
        }
        let (_, state) = only_plan(&doc);
        assert_eq!(
            state,
            State {
                stage: 2,
                stage_started_ms: Some(T0 + 3 * HOUR_MS),
                status: Status::Completed
            }
        );
        assert_eq!(
            doc["flags"]["theme"],
            document_with(backend(json!({})))["flags"]["theme"]
        );
    }

    #[test]
    fn a_failing_canary_is_rolled_back_from_the_first_stage() {
        let mut doc = document_with(backend(json!({})));
        let control = arm(20_000, 20);
        assert_eq!(
            tick(&mut doc, &control, &arm(0, 0), T0),
            Decision::Start { percent: 10 }
        );
        let d = tick(&mut doc, &control, &arm(120, 6), T0 + 90_000);
        assert_eq!(action(&d), "rollback", "{d:?}");
        assert_eq!(split_of(&doc), json!([["v1", 100], ["v2", 0]]));
        let (_, state) = only_plan(&doc);
        assert_eq!(state.status, Status::RolledBack);
        assert_eq!(
            doc["flags"]["backend"]["metadata"]["rollout.reason"],
            json!(reason(&d))
        );
        assert_eq!(
            action(&tick(&mut doc, &control, &arm(5000, 0), T0 + 9 * HOUR_MS)),
            "idle"
        );
    }
}
