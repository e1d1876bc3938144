//! Edge measurement: what each request did, aggregated in isolate memory and shipped to the
//! metrics Durable Object in batches, and the Prometheus text rendering of the totals.
//!
//! Why batches: one Durable Object call per request would put a network hop (and the one
//! object's throughput) on the hot path. The isolate folds requests into counters and sends
//! one batch per `MAX_PENDING_REQUESTS` requests or `MAX_PENDING_MS`, from `waitUntil`.
//! Each batch carries a random id the object remembers, so a batch re-sent after a failed
//! call is applied once: nothing lost when the object is unreachable for a while (failed
//! batches are kept and re-sent, up to `MAX_RETAINED_BATCHES`), nothing counted twice.
//! What a batch cannot survive is its isolate being evicted before the next flush: at most
//! `MAX_PENDING_MS` of one isolate's traffic.
//!
//! Experiment data is kept per flag **epoch**: a fingerprint of the flag's definition
//! (state, variants, default, targeting). A change of the split (a rollout stage, an edited
//! weight) starts a new epoch, so results and rollout gates never mix two splits, and a
//! sample-ratio check compares counts against the weights they were drawn with.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::httpcache::{CacheStatus, Detail, Fwd};

/// Upper bounds (milliseconds) of the latency histogram's buckets; one more bucket counts
/// everything above the last. Prometheus renders them in seconds.
pub const LATENCY_BOUNDS_MS: [f64; 12] = [
    5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
];
/// Requests folded into one batch before it is sent.
pub const MAX_PENDING_REQUESTS: u64 = 200;
/// Age of the oldest unsent record before a batch is sent.
pub const MAX_PENDING_MS: u64 = 1000;
/// Batches kept for re-sending while the Durable Object is unreachable (then the oldest
/// is dropped and counted in `dropped_batches`, never silently).
pub const MAX_RETAINED_BATCHES: usize = 50;

/// One request series: which flag variant decided the origin (empty when the route names a
/// fixed origin), which origin served, and the flag's epoch.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SeriesKey {
    pub flag: String,
    pub variant: String,
    pub origin: String,
    pub epoch: String,
}

/// What a series counted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    pub requests: u64,
    /// Origin errors: 5xx answers and connect failures of the origin first chosen, even
    /// when a retry on the stable origin then saved the visitor's request.
    pub errors: u64,
    pub cache_hits: u64,
    pub cache_misses: u64,
    /// Non-cumulative bucket counts, `LATENCY_BOUNDS_MS.len() + 1` entries.
    pub latency: Vec<u64>,
    pub latency_sum_ms: f64,
}

impl Counts {
    /// Adds another series' counts.
    pub fn add(&mut self, other: &Counts) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.cache_hits += other.cache_hits;
        self.cache_misses += other.cache_misses;
        self.latency_sum_ms += other.latency_sum_ms;
        if self.latency.len() < other.latency.len() {
            self.latency.resize(other.latency.len(), 0);
        }
        for (a, b) in self.latency.iter_mut().zip(&other.latency) {
            *a += b;
        }
    }
}

/// The bucket a latency falls in.
pub fn bucket(latency_ms: f64) -> usize {
    LATENCY_BOUNDS_MS
        .iter()
        .position(|b| latency_ms <= *b)
        .unwrap_or(LATENCY_BOUNDS_MS.len())
}

/// Whether the shared cache answered, from the `Cache-Status` the edge set (RFC 9211).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    Hit,
    Miss,
    /// Not a cacheable request (an unsafe method, a bypass): neither.
    NotApplicable,
}

/// Classifies what the cache did (RFC 9211 `Cache-Status`, as the value the edge renders):
/// `hit` is a hit (fresh or served stale), a forward other than `bypass`/`method` a miss.
///
/// A hit ratio is about what a cache may keep (as CDNs count it): a response the origin
/// marked unstorable (`no-store`, `private`, `Set-Cookie`, `Vary: *`) or a request that
/// bypasses the cache (`Authorization`, an unsafe method) is neither a hit nor a miss.
pub fn cache_outcome(status: &CacheStatus) -> CacheOutcome {
    match status {
        CacheStatus::Hit { .. } => CacheOutcome::Hit,
        CacheStatus::Forward {
            fwd: Fwd::Bypass | Fwd::Method,
            ..
        }
        | CacheStatus::Forward {
            detail:
                Some(
                    Detail::NoStore
                    | Detail::Private
                    | Detail::SetCookie
                    | Detail::VaryStar
                    | Detail::Authorization
                    | Detail::Method,
                ),
            ..
        } => CacheOutcome::NotApplicable,
        CacheStatus::Forward { .. } => CacheOutcome::Miss,
        CacheStatus::Generated { .. } => CacheOutcome::NotApplicable,
    }
}

/// What one proxied request did.
#[derive(Debug, Clone, Copy)]
pub struct RequestRecord<'a> {
    /// The flag and variant that picked the origin.
    pub decided_by: Option<(&'a str, &'a str)>,
    pub epoch: &'a str,
    pub origin: &'a str,
    pub origin_error: bool,
    pub cache: CacheOutcome,
    pub latency_ms: f64,
}

/// Exposures of one flag variant in one epoch: how many evaluations, and which units
/// (hashed targeting keys) saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exposure {
    pub flag: String,
    pub variant: String,
    pub epoch: String,
    pub count: u64,
    pub units: Vec<String>,
}

/// Occurrences of one client-reported event, and which units reported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventRecord {
    pub name: String,
    pub count: u64,
    pub value_sum: f64,
    pub units: Vec<String>,
}

/// A visitor (unit) whose proxied request a flag variant routed in an epoch, and whether
/// any of its requests in the batch saw an origin error: what the rollout gates count, so
/// that one visitor weighs one however many requests it sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisitorRecord {
    pub flag: String,
    pub variant: String,
    pub epoch: String,
    pub unit: String,
    pub errored: bool,
    /// The latency bucket ([`bucket`]) of the visitor's slowest request in the batch.
    #[serde(default)]
    pub slowest: usize,
}

/// What an isolate sends the metrics object in one call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub id: String,
    pub series: Vec<(SeriesKey, Counts)>,
    pub exposures: Vec<Exposure>,
    pub events: Vec<EventRecord>,
    /// Absent in batches retained by an older worker.
    #[serde(default)]
    pub visitors: Vec<VisitorRecord>,
    /// Notification delivery outcomes (absent in batches of an older worker).
    #[serde(default)]
    pub notifications: Vec<NotificationCount>,
}

/// The outcomes of a notification delivery that every channel shows (the `outcome` label),
/// with zeros until they happen. A consumer may record other labels too (e.g. an inbox's
/// `read`); they are counted and shown as they come.
///
/// - `delivered`: the channel's service took the message (push: a 2xx from the push service);
/// - `failed`: given up — a permanent refusal, retries exhausted (dead-lettered), or the
///   channel misconfigured (no VAPID key);
/// - `gone`: the recipient is gone (push: 404/410, the subscription expired or was revoked,
///   and is removed);
/// - `retried`: one attempt failed and will be tried again (429, 5xx, unreachable) — an
///   attempt, not a final outcome: the same delivery ends later as one of the others;
/// - `dropped`: never attempted — the channel's kill switch was off, or the recipient
///   unsubscribed before the attempt.
///
/// The consumer counts an outcome once per transition the delivery store confirms (a
/// redelivered queue message whose delivery is settled already counts nothing), and the
/// batches carrying the counts are de-duplicated by id, so the counters are exact under the
/// queue's at-least-once delivery.
pub const OUTCOMES: [&str; 5] = [DELIVERED, FAILED, "gone", "retried", "dropped"];
pub const DELIVERED: &str = "delivered";
pub const FAILED: &str = "failed";

/// Outcomes of one channel counted in a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationCount {
    pub channel: String,
    pub outcome: String,
    pub count: u64,
}

/// A channel's delivery outcomes (over all time, or since a rollout stage began):
/// outcome label → count.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChannelDeliveries {
    pub channel: String,
    pub outcomes: BTreeMap<String, u64>,
}

impl ChannelDeliveries {
    /// The count of one outcome.
    pub fn get(&self, outcome: &str) -> u64 {
        self.outcomes.get(outcome).copied().unwrap_or(0)
    }

    /// Adds `n` outcomes.
    pub fn add(&mut self, outcome: &str, n: u64) {
        let slot = self.outcomes.entry(outcome.to_owned()).or_default();
        *slot = slot.saturating_add(n);
    }

    /// Deliveries that ended in a verdict on the channel: delivered or failed.
    pub fn settled(&self) -> u64 {
        self.get(DELIVERED).saturating_add(self.get(FAILED))
    }

    /// The **delivery success ratio**: `delivered / (delivered + failed)`, `None` before any
    /// delivery ended either way.
    ///
    /// Only final verdicts on the channel count. `retried` is left out because it is an
    /// attempt, not an outcome: a message delivered at its third attempt is one success,
    /// not two failures and a success. `gone` is left out because the channel worked — the
    /// push service answered correctly that the recipient unsubscribed or the subscription
    /// expired (and it is removed); counting it would make the ratio measure audience churn,
    /// and an old subscription list would hold a rollout for ever. `dropped` is left out
    /// because nothing was attempted (the kill switch was off: switching a channel off must
    /// not read as that channel failing). All of them are counted and shown next to the
    /// ratio.
    pub fn success_ratio(&self) -> Option<f64> {
        let settled = self.settled();
        (settled > 0).then(|| self.get(DELIVERED) as f64 / settled as f64)
    }

    /// Every outcome to show: the [`OUTCOMES`] (zeros included), then any other recorded.
    pub fn shown(&self) -> Vec<(&str, u64)> {
        let mut out: Vec<(&str, u64)> = OUTCOMES.iter().map(|o| (*o, self.get(o))).collect();
        for (o, n) in &self.outcomes {
            if !OUTCOMES.contains(&o.as_str()) {
                out.push((o.as_str(), *n));
            }
        }
        out
    }

    /// The JSON the experiment results show: `{"channel", <outcome>: n…, "deliverySuccess"}`.
    pub fn report(&self) -> Value {
        let mut map = serde_json::Map::new();
        map.insert("channel".into(), Value::from(self.channel.clone()));
        for (o, n) in self.shown() {
            map.insert(o.to_owned(), Value::from(n));
        }
        map.insert(
            "deliverySuccess".into(),
            self.success_ratio().map_or(Value::Null, Value::from),
        );
        Value::Object(map)
    }
}

/// The notification channels the edge knows: always shown, with zeros until something
/// happens, so an alert on a channel's failures exists before its first failure. Another
/// channel name a consumer records is counted and shown too.
pub const CHANNELS: [&str; 3] = ["push", "inapp", "email"];

/// Folds (channel, outcome, count) rows into one entry per channel: the known [`CHANNELS`]
/// first (also when empty), then any other channel by name.
pub fn by_channel<'a>(
    rows: impl IntoIterator<Item = (&'a str, &'a str, u64)>,
) -> Vec<ChannelDeliveries> {
    let mut out: Vec<ChannelDeliveries> = CHANNELS
        .iter()
        .map(|c| ChannelDeliveries {
            channel: (*c).to_owned(),
            ..ChannelDeliveries::default()
        })
        .collect();
    let mut others: BTreeMap<String, ChannelDeliveries> = BTreeMap::new();
    for (channel, outcome, n) in rows {
        let entry = match out.iter_mut().find(|c| c.channel == channel) {
            Some(known) => known,
            None => others
                .entry(channel.to_owned())
                .or_insert_with(|| ChannelDeliveries {
                    channel: channel.to_owned(),
                    ..ChannelDeliveries::default()
                }),
        };
        entry.add(outcome, n);
    }
    out.extend(others.into_values());
    out
}

/// Time resolutions of the timeline (per-minute and per-hour aggregates of the series, for
/// the dashboard's "last hour / last day" and for other tools as JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resolution {
    Minute,
    Hour,
}

impl Resolution {
    /// Bucket width in milliseconds.
    pub fn ms(self) -> u64 {
        match self {
            Resolution::Minute => 60_000,
            Resolution::Hour => 3_600_000,
        }
    }

    /// How long buckets of this width are kept: 48 hours of minutes, 30 days of hours.
    pub fn retention_ms(self) -> u64 {
        match self {
            Resolution::Minute => 48 * 3_600_000,
            Resolution::Hour => 30 * 24 * 3_600_000,
        }
    }

    /// The start of the bucket holding `at_ms`.
    pub fn bucket(self, at_ms: u64) -> u64 {
        at_ms - at_ms % self.ms()
    }
}

/// `POST /timeline` of the metrics store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimelineQuery {
    pub resolution: Resolution,
    /// Buckets starting at or after this time (ms).
    pub since_ms: u64,
    /// Only this flag (and variant), when given.
    #[serde(default)]
    pub flag: Option<String>,
    #[serde(default)]
    pub variant: Option<String>,
}

/// One bucket of the timeline, summed over the series the query selects.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Point {
    pub t: u64,
    pub counts: Counts,
}

/// A bucket as people read it: rates and the p99 instead of counts.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PointSummary {
    pub t: u64,
    pub requests: u64,
    pub errors: u64,
    pub error_rate: Option<f64>,
    pub p99_ms: Option<f64>,
    pub hit_ratio: Option<f64>,
}

/// Rates of a bucket (or of several added together).
pub fn summarise(t: u64, c: &Counts) -> PointSummary {
    let ratio = |a: u64, b: u64| (b > 0).then(|| a as f64 / b as f64);
    PointSummary {
        t,
        requests: c.requests,
        errors: c.errors,
        error_rate: ratio(c.errors, c.requests),
        p99_ms: crate::measure::stats::quantile(&LATENCY_BOUNDS_MS, &c.latency, 0.99),
        hit_ratio: ratio(c.cache_hits, c.cache_hits + c.cache_misses),
    }
}

impl Batch {
    /// Requests this batch counts.
    pub fn requests(&self) -> u64 {
        self.series.iter().map(|(_, c)| c.requests).sum()
    }
}

/// The isolate's pending measurements.
#[derive(Debug, Default)]
pub struct Recorder {
    /// Events counted as [`OTHER_EVENT`] because their name is not declared.
    pub undeclared_events: u64,
    series: BTreeMap<SeriesKey, Counts>,
    exposures: BTreeMap<(String, String, String), (u64, BTreeSet<String>)>,
    events: BTreeMap<String, (u64, f64, BTreeSet<String>)>,
    /// (flag, variant, epoch, unit) → (saw an origin error, slowest latency bucket).
    visitors: BTreeMap<(String, String, String, String), (bool, usize)>,
    /// (channel, outcome label) → count.
    notifications: BTreeMap<(String, String), u64>,
    pending: u64,
    oldest_ms: Option<u64>,
    /// Batches whose delivery failed, re-sent first (same id) on the next flush.
    retained: Vec<Batch>,
    /// Batches given up on because too many were retained.
    pub dropped_batches: u64,
}

/// The series every undeclared event name is counted under.
pub const OTHER_EVENT: &str = "other";

/// The series an event is counted under: its own name when it is declared — a flag's
/// `experiment.conversionEvent` / `rollout.conversionEvent`, or the `EVENT_NAMES` allow-list —
/// else [`OTHER_EVENT`]. `POST /events` is public: without this, every invented name would be
/// a new stored series and a new Prometheus line.
pub fn event_series(name: &str, declared: impl Fn(&str) -> bool) -> &str {
    if declared(name) {
        name
    } else {
        OTHER_EVENT
    }
}

impl Recorder {
    fn touch(&mut self, now_ms: u64) {
        self.pending += 1;
        self.oldest_ms.get_or_insert(now_ms);
    }

    /// Counts one proxied request.
    pub fn request(&mut self, r: &RequestRecord<'_>, now_ms: u64) {
        let (flag, variant) = r.decided_by.unwrap_or(("", ""));
        let key = SeriesKey {
            flag: flag.to_owned(),
            variant: variant.to_owned(),
            origin: r.origin.to_owned(),
            epoch: if flag.is_empty() {
                String::new()
            } else {
                r.epoch.to_owned()
            },
        };
        let c = self.series.entry(key).or_default();
        c.requests += 1;
        c.errors += u64::from(r.origin_error);
        match r.cache {
            CacheOutcome::Hit => c.cache_hits += 1,
            CacheOutcome::Miss => c.cache_misses += 1,
            CacheOutcome::NotApplicable => {}
        }
        if c.latency.is_empty() {
            c.latency = vec![0; LATENCY_BOUNDS_MS.len() + 1];
        }
        let latency = if r.latency_ms.is_finite() {
            r.latency_ms.max(0.0)
        } else {
            0.0
        };
        if let Some(b) = c.latency.get_mut(bucket(latency)) {
            *b += 1;
        }
        c.latency_sum_ms += latency;
        self.touch(now_ms);
    }

    /// Notes the visitor behind a proxied request a flag variant routed (see
    /// [`VisitorRecord`]); requests without a unit, or not routed by a flag, count only in
    /// the request totals.
    pub fn visitor(&mut self, r: &RequestRecord<'_>, unit: Option<&str>) {
        let (Some((flag, variant)), Some(unit)) = (r.decided_by, unit) else {
            return;
        };
        let seen = self
            .visitors
            .entry((
                flag.to_owned(),
                variant.to_owned(),
                r.epoch.to_owned(),
                unit.to_owned(),
            ))
            .or_default();
        seen.0 |= r.origin_error;
        let latency = if r.latency_ms.is_finite() {
            r.latency_ms.max(0.0)
        } else {
            0.0
        };
        seen.1 = seen.1.max(bucket(latency));
    }

    /// Counts one exposure of a flag variant to a unit (a hashed targeting key, if any).
    pub fn exposure(
        &mut self,
        flag: &str,
        variant: &str,
        epoch: &str,
        unit: Option<&str>,
        now_ms: u64,
    ) {
        let e = self
            .exposures
            .entry((flag.to_owned(), variant.to_owned(), epoch.to_owned()))
            .or_default();
        e.0 += 1;
        if let Some(u) = unit {
            e.1.insert(u.to_owned());
        }
        self.touch(now_ms);
    }

    /// Counts one client-reported event (a conversion when an experiment names it).
    /// `name` is the series ([`event_series`]); an undeclared event keeps no unit (no
    /// experiment can read it) and is counted in `undeclared_events`.
    pub fn event(&mut self, name: &str, unit: Option<&str>, value: Option<f64>, now_ms: u64) {
        let unit = if name == OTHER_EVENT {
            self.undeclared_events += 1;
            None
        } else {
            unit
        };
        let e = self.events.entry(name.to_owned()).or_default();
        e.0 += 1;
        e.1 += value.filter(|v| v.is_finite()).unwrap_or(0.0);
        if let Some(u) = unit {
            e.2.insert(u.to_owned());
        }
        self.touch(now_ms);
    }

    /// Counts one notification delivery outcome of `channel` (see [`OUTCOMES`]).
    pub fn notification(&mut self, channel: &str, outcome: &str, now_ms: u64) {
        *self
            .notifications
            .entry((channel.to_owned(), outcome.to_owned()))
            .or_default() += 1;
        self.touch(now_ms);
    }

    /// Whether a batch should be sent now.
    pub fn due(&self, now_ms: u64) -> bool {
        self.pending >= MAX_PENDING_REQUESTS
            || self
                .oldest_ms
                .is_some_and(|t| now_ms.saturating_sub(t) >= MAX_PENDING_MS)
            || (!self.retained.is_empty() && self.pending > 0)
    }

    /// Everything to send: the retained batches (oldest first) and a new one with what is
    /// pending, under `new_id`. The recorder is empty afterwards.
    pub fn take(&mut self, new_id: String) -> Vec<Batch> {
        let mut out = std::mem::take(&mut self.retained);
        if self.pending > 0 {
            out.push(Batch {
                id: new_id,
                series: std::mem::take(&mut self.series).into_iter().collect(),
                exposures: std::mem::take(&mut self.exposures)
                    .into_iter()
                    .map(|((flag, variant, epoch), (count, units))| Exposure {
                        flag,
                        variant,
                        epoch,
                        count,
                        units: units.into_iter().collect(),
                    })
                    .collect(),
                events: std::mem::take(&mut self.events)
                    .into_iter()
                    .map(|(name, (count, value_sum, units))| EventRecord {
                        name,
                        count,
                        value_sum,
                        units: units.into_iter().collect(),
                    })
                    .collect(),
                visitors: std::mem::take(&mut self.visitors)
                    .into_iter()
                    .map(
                        |((flag, variant, epoch, unit), (errored, slowest))| VisitorRecord {
                            flag,
                            variant,
                            epoch,
                            unit,
                            errored,
                            slowest,
                        },
                    )
                    .collect(),
                notifications: std::mem::take(&mut self.notifications)
                    .into_iter()
                    .map(|((channel, outcome), count)| NotificationCount {
                        channel,
                        outcome,
                        count,
                    })
                    .collect(),
            });
        }
        self.pending = 0;
        self.oldest_ms = None;
        out
    }

    /// Keeps batches whose delivery failed, to send again with the same ids.
    pub fn retain_failed(&mut self, failed: Vec<Batch>) {
        let mut all = failed;
        all.append(&mut self.retained);
        let excess = all.len().saturating_sub(MAX_RETAINED_BATCHES);
        self.dropped_batches += excess as u64;
        self.retained = all.split_off(excess);
    }

    /// Batches waiting for a retry.
    pub fn retained(&self) -> usize {
        self.retained.len()
    }
}

/// A unit's id in the metrics store: a hash of the targeting key, so raw user ids never
/// leave the request, yet the same visitor is one unit in every isolate.
pub fn unit_id(targeting_key: &str) -> String {
    hex16(&Sha256::digest(targeting_key.as_bytes()))
}

/// The epoch of a flag definition: a fingerprint of what decides its variants (state,
/// variants, default, targeting) — not its metadata, so relabelling keeps the data.
pub fn epoch(flag_definition: &Value) -> String {
    let mut h = Sha256::new();
    for field in ["state", "variants", "defaultVariant", "targeting"] {
        h.update(field.as_bytes());
        h.update(b"=");
        h.update(
            flag_definition
                .get(field)
                .map(Value::to_string)
                .unwrap_or_default()
                .as_bytes(),
        );
        h.update(b";");
    }
    hex16(&h.finalize())[..12].to_owned()
}

fn hex16(bytes: &[u8]) -> String {
    bytes.iter().take(8).fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Totals across epochs, what Prometheus is shown.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    /// Per (flag, variant, origin); the epoch is left out.
    pub series: Vec<(SeriesKey, Counts)>,
    /// (flag, variant, exposures).
    pub exposures: Vec<(String, String, u64)>,
    /// (event name, count).
    pub events: Vec<(String, u64)>,
    pub batches: u64,
    pub duplicate_batches: u64,
    /// Rollout stage (percent of the treatment) and status per flag with a plan.
    pub rollouts: Vec<(String, u32, String)>,
    /// Notification outcomes per channel ([`by_channel`]).
    #[serde(default)]
    pub notifications: Vec<ChannelDeliveries>,
}

/// Escapes a label value for the Prometheus text format.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn seconds(ms: f64) -> String {
    format!("{}", ms / 1000.0)
}

/// Renders the totals in the Prometheus text exposition format (version 0.0.4).
pub fn prometheus(t: &Totals) -> String {
    let mut out = String::new();
    let series_labels = |k: &SeriesKey| {
        format!(
            "flag=\"{}\",variant=\"{}\",origin=\"{}\"",
            label(&k.flag),
            label(&k.variant),
            label(&k.origin)
        )
    };
    let counter = |out: &mut String, name: &str, help: &str, pick: &dyn Fn(&Counts) -> u64| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (k, c) in &t.series {
            let _ = writeln!(out, "{name}{{{}}} {}", series_labels(k), pick(c));
        }
    };
    counter(
        &mut out,
        "edgeflags_requests_total",
        "Requests proxied by the edge, by the flag variant that chose the origin and the origin that served.",
        &|c| c.requests,
    );
    counter(
        &mut out,
        "edgeflags_origin_errors_total",
        "Origin 5xx answers and connect failures of the origin first chosen (before any retry on the stable origin).",
        &|c| c.errors,
    );
    counter(
        &mut out,
        "edgeflags_cache_hits_total",
        "Requests answered from the edge cache.",
        &|c| c.cache_hits,
    );
    counter(
        &mut out,
        "edgeflags_cache_misses_total",
        "Cacheable requests forwarded to the origin.",
        &|c| c.cache_misses,
    );
    let name = "edgeflags_request_duration_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Time from the request reaching the edge to the response headers, by variant and origin.\n# TYPE {name} histogram"
    );
    for (k, c) in &t.series {
        let labels = series_labels(k);
        let mut cumulative = 0;
        for (i, n) in c.latency.iter().enumerate() {
            cumulative += n;
            let le = LATENCY_BOUNDS_MS
                .get(i)
                .map_or_else(|| "+Inf".to_owned(), |b| seconds(*b));
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
        }
        if c.latency.is_empty() {
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} 0");
        }
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", seconds(c.latency_sum_ms));
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", c.requests);
    }
    let name = "edgeflags_exposures_total";
    let _ = writeln!(
        out,
        "# HELP {name} Flag evaluations counted as exposures (the route's flag on proxied requests; experiment flags answered over OFREP).\n# TYPE {name} counter"
    );
    for (flag, variant, n) in &t.exposures {
        let _ = writeln!(
            out,
            "{name}{{flag=\"{}\",variant=\"{}\"}} {n}",
            label(flag),
            label(variant)
        );
    }
    let name = "edgeflags_events_total";
    let _ = writeln!(
        out,
        "# HELP {name} Events reported by clients (conversions).\n# TYPE {name} counter"
    );
    for (event, n) in &t.events {
        let _ = writeln!(out, "{name}{{event=\"{}\"}} {n}", label(event));
    }
    let name = "edgeflags_rollout_percent";
    let _ = writeln!(
        out,
        "# HELP {name} Share of the treatment in a guarded rollout's current stage.\n# TYPE {name} gauge"
    );
    for (flag, percent, status) in &t.rollouts {
        let _ = writeln!(
            out,
            "{name}{{flag=\"{}\",status=\"{}\"}} {percent}",
            label(flag),
            label(status)
        );
    }
    let name = "edgeflags_notifications_total";
    let _ = writeln!(
        out,
        "# HELP {name} Notification deliveries by channel and outcome (delivered, failed, gone, retried = one failed attempt to be tried again, dropped = never attempted).\n# TYPE {name} counter"
    );
    for c in &t.notifications {
        for (outcome, n) in c.shown() {
            let _ = writeln!(
                out,
                "{name}{{channel=\"{}\",outcome=\"{}\"}} {n}",
                label(&c.channel),
                label(outcome)
            );
        }
    }
    let name = "edgeflags_notification_delivery_success_ratio";
    let _ = writeln!(
        out,
        "# HELP {name} delivered / (delivered + failed) per channel since the store began; gone, retried and dropped are left out. Absent before a delivery settled.\n# TYPE {name} gauge"
    );
    for c in &t.notifications {
        if let Some(r) = c.success_ratio() {
            let _ = writeln!(out, "{name}{{channel=\"{}\"}} {r}", label(&c.channel));
        }
    }
    let _ = writeln!(
        out,
        "# HELP edgeflags_metric_batches_total Measurement batches applied by the metrics store.\n# TYPE edgeflags_metric_batches_total counter\nedgeflags_metric_batches_total {}",
        t.batches
    );
    let _ = writeln!(
        out,
        "# HELP edgeflags_metric_duplicate_batches_total Re-sent batches recognised and not counted again.\n# TYPE edgeflags_metric_duplicate_batches_total counter\nedgeflags_metric_duplicate_batches_total {}",
        t.duplicate_batches
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeline_buckets_and_summaries() {
        assert_eq!(Resolution::Minute.bucket(125_000), 120_000);
        assert_eq!(Resolution::Hour.bucket(7_200_001), 7_200_000);
        let mut latency = vec![0; LATENCY_BOUNDS_MS.len() + 1];
        latency[0] = 99;
        latency[5] = 1;
        let c = Counts {
            requests: 100,
            errors: 2,
            cache_hits: 9,
            cache_misses: 1,
            latency,
            latency_sum_ms: 0.0,
        };
        let s = summarise(60_000, &c);
        assert_eq!(
            (s.requests, s.error_rate, s.hit_ratio),
            (100, Some(0.02), Some(0.9))
        );
        assert!(s.p99_ms.is_some());
        let empty = summarise(0, &Counts::default());
        assert_eq!(
            (empty.error_rate, empty.p99_ms, empty.hit_ratio),
            (None, None, None)
        );
        assert_eq!(
            serde_json::to_value(TimelineQuery {
                resolution: Resolution::Minute,
                since_ms: 5,
                flag: None,
                variant: None
            })
            .unwrap()["resolution"],
            "minute"
        );
    }

    #[test]
    fn a_visitor_is_one_record_per_flag_variant_epoch_however_many_requests_it_sends() {
        let mut r = Recorder::default();
        let rec = |origin_error| RequestRecord {
            decided_by: Some(("backend", "v2")),
            epoch: "e1",
            origin: "v2",
            origin_error,
            cache: CacheOutcome::Miss,
            latency_ms: 3.0,
        };
        for i in 0..50 {
            r.request(&rec(i % 2 == 0), 0);
            r.visitor(&rec(i % 2 == 0), Some("u1"));
        }
        r.visitor(&rec(false), Some("u2"));
        r.visitor(&rec(true), None);
        let fixed = RequestRecord {
            decided_by: None,
            ..rec(true)
        };
        r.visitor(&fixed, Some("u3"));
        let batches = r.take("b".into());
        let v = &batches[0].visitors;
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(v[0].unit == "u1" && v[0].errored);
        assert!(v[1].unit == "u2" && !v[1].errored);
        assert_eq!(v[0].slowest, bucket(3.0));
        // Batches without visitors (from an older worker) still parse.
        let old: Batch =
            serde_json::from_str(r#"{"id":"x","series":[],"exposures":[],"events":[]}"#).unwrap();
        assert!(old.visitors.is_empty());
    }

    #[test]
    fn undeclared_event_names_share_one_series_without_units() {
        let declared = |n: &str| n == "purchase";
        assert_eq!(event_series("purchase", declared), "purchase");
        assert_eq!(event_series("x-1", declared), OTHER_EVENT);
        let mut r = Recorder::default();
        for i in 0..1000 {
            let name = event_series(&format!("invented-{i}"), declared).to_owned();
            r.event(&name, Some("unit"), None, 1);
        }
        r.event("purchase", Some("u1"), Some(5.0), 1);
        assert_eq!(r.undeclared_events, 1000);
        assert_eq!(
            r.events.len(),
            2,
            "one series for the declared name, one for the rest"
        );
        assert!(
            r.events[OTHER_EVENT].2.is_empty(),
            "no units kept for undeclared events"
        );
        assert_eq!(r.events["purchase"].2.len(), 1);
    }

    fn req<'a>(
        flag: Option<(&'a str, &'a str)>,
        origin: &'a str,
        error: bool,
    ) -> RequestRecord<'a> {
        RequestRecord {
            decided_by: flag,
            epoch: "e1",
            origin,
            origin_error: error,
            cache: CacheOutcome::Miss,
            latency_ms: 42.0,
        }
    }

    #[test]
    fn requests_fold_into_one_series_per_variant_and_origin() {
        let mut r = Recorder::default();
        for _ in 0..3 {
            r.request(&req(Some(("backend", "v2")), "v2", false), 0);
        }
        r.request(&req(Some(("backend", "v2")), "v1", true), 0);
        r.request(&req(None, "v1", false), 0);
        let batches = r.take("b1".into());
        assert_eq!(batches.len(), 1);
        let b = &batches[0];
        assert_eq!(b.requests(), 5);
        assert_eq!(b.series.len(), 3);
        let (k, c) = &b.series[2];
        assert_eq!(
            (k.flag.as_str(), k.variant.as_str(), k.origin.as_str()),
            ("backend", "v2", "v2")
        );
        assert_eq!((c.requests, c.errors, c.cache_misses), (3, 0, 3));
        assert_eq!(c.latency[bucket(42.0)], 3);
        assert_eq!(b.series[0].0.epoch, "", "a fixed route has no epoch");
        assert!(
            r.take("b2".into()).is_empty(),
            "nothing pending after a take"
        );
    }

    #[test]
    fn a_batch_is_due_by_count_or_by_age() {
        let mut r = Recorder::default();
        assert!(!r.due(10_000));
        r.request(&req(None, "v1", false), 1000);
        assert!(!r.due(1500));
        assert!(r.due(1000 + MAX_PENDING_MS));
        let mut r = Recorder::default();
        for _ in 0..MAX_PENDING_REQUESTS {
            r.request(&req(None, "v1", false), 1000);
        }
        assert!(r.due(1000));
    }

    #[test]
    fn failed_batches_are_resent_first_with_their_ids_and_bounded() {
        let mut r = Recorder::default();
        r.request(&req(None, "v1", false), 0);
        let first = r.take("a".into());
        r.retain_failed(first);
        r.request(&req(None, "v1", false), 0);
        let again = r.take("b".into());
        assert_eq!(
            again.iter().map(|b| b.id.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        let many: Vec<Batch> = (0..MAX_RETAINED_BATCHES + 3)
            .map(|i| Batch {
                id: i.to_string(),
                series: vec![],
                exposures: vec![],
                events: vec![],
                visitors: vec![],
                notifications: vec![],
            })
            .collect();
        r.retain_failed(many);
        assert_eq!(r.retained(), MAX_RETAINED_BATCHES);
        assert_eq!(r.dropped_batches, 3, "dropping is counted, never silent");
    }

    #[test]
    fn exposures_count_evaluations_and_distinct_units() {
        let mut r = Recorder::default();
        r.exposure("exp", "a", "e", Some("u1"), 0);
        r.exposure("exp", "a", "e", Some("u1"), 0);
        r.exposure("exp", "a", "e", Some("u2"), 0);
        r.exposure("exp", "b", "e", None, 0);
        r.event("purchase", Some("u1"), Some(9.5), 0);
        r.event("purchase", Some("u1"), Some(f64::NAN), 0);
        let b = r.take("x".into()).remove(0);
        assert_eq!(b.exposures[0].count, 3);
        assert_eq!(b.exposures[0].units, ["u1", "u2"]);
        assert_eq!(b.exposures[1].units.len(), 0);
        assert_eq!(b.events[0].count, 2);
        assert_eq!(b.events[0].value_sum, 9.5);
    }

    #[test]
    fn cache_status_values_classify_as_hit_miss_or_neither() {
        let fwd = |fwd, fwd_status, stored, detail| CacheStatus::Forward {
            fwd,
            fwd_status,
            ttl: None,
            stored,
            detail,
        };
        for (status, want) in [
            (
                CacheStatus::Hit {
                    ttl: 30,
                    detail: None,
                },
                CacheOutcome::Hit,
            ),
            (
                CacheStatus::Hit {
                    ttl: -3,
                    detail: Some(Detail::StaleIfError),
                },
                CacheOutcome::Hit,
            ),
            (fwd(Fwd::UriMiss, None, true, None), CacheOutcome::Miss),
            (fwd(Fwd::Stale, Some(304), false, None), CacheOutcome::Miss),
            (
                fwd(Fwd::Bypass, None, false, Some(Detail::Authorization)),
                CacheOutcome::NotApplicable,
            ),
            (
                CacheStatus::method_bypass(None),
                CacheOutcome::NotApplicable,
            ),
            (
                fwd(Fwd::UriMiss, Some(200), false, Some(Detail::NoStore)),
                CacheOutcome::NotApplicable,
            ),
            (
                fwd(Fwd::UriMiss, Some(200), false, Some(Detail::SetCookie)),
                CacheOutcome::NotApplicable,
            ),
            (
                fwd(Fwd::UriMiss, Some(503), false, None),
                CacheOutcome::Miss,
            ),
            // The stable origin's answer to a failed canary: not stored, still a miss.
            (
                fwd(Fwd::UriMiss, Some(200), false, Some(Detail::Retried)),
                CacheOutcome::Miss,
            ),
            (
                CacheStatus::Generated {
                    detail: Detail::OnlyIfCached,
                },
                CacheOutcome::NotApplicable,
            ),
        ] {
            assert_eq!(cache_outcome(&status), want, "{status:?}");
        }
    }

    #[test]
    fn the_epoch_follows_the_split_not_the_metadata() {
        let a: Value = serde_json::from_str(r#"{"state":"ENABLED","variants":{"v1":1,"v2":2},"defaultVariant":"v1","targeting":{"fractional":[["v1",90],["v2",10]]},"metadata":{"owner":"x"}}"#).unwrap();
        let mut relabelled = a.clone();
        relabelled["metadata"]["owner"] = "y".into();
        let mut reweighted = a.clone();
        reweighted["targeting"]["fractional"][0][1] = 50.into();
        assert_eq!(epoch(&a), epoch(&relabelled));
        assert_ne!(epoch(&a), epoch(&reweighted));
        assert_eq!(epoch(&a).len(), 12);
        assert_eq!(unit_id("alice"), unit_id("alice"));
        assert_ne!(unit_id("alice"), unit_id("bob"));
        assert_eq!(unit_id("alice").len(), 16);
    }

    #[test]
    fn prometheus_text_has_typed_families_cumulative_buckets_and_escaped_labels() {
        let mut c = Counts {
            requests: 3,
            errors: 1,
            latency: vec![0; LATENCY_BOUNDS_MS.len() + 1],
            ..Counts::default()
        };
        c.latency[0] = 1;
        c.latency[4] = 2;
        c.latency_sum_ms = 250.0;
        let t = Totals {
            series: vec![(
                SeriesKey {
                    flag: "back\"end".into(),
                    variant: "v2".into(),
                    origin: "v2".into(),
                    epoch: String::new(),
                },
                c,
            )],
            exposures: vec![("backend".into(), "v2".into(), 3)],
            events: vec![("purchase".into(), 1)],
            batches: 2,
            duplicate_batches: 1,
            rollouts: vec![("backend".into(), 10, "running".into())],
            notifications: vec![],
        };
        let text = prometheus(&t);
        let labels = r#"flag="back\"end",variant="v2",origin="v2""#;
        for line in [
            "# TYPE edgeflags_requests_total counter".to_owned(),
            format!("edgeflags_requests_total{{{labels}}} 3"),
            format!("edgeflags_origin_errors_total{{{labels}}} 1"),
            "# TYPE edgeflags_request_duration_seconds histogram".to_owned(),
            format!("edgeflags_request_duration_seconds_bucket{{{labels},le=\"0.005\"}} 1"),
            format!("edgeflags_request_duration_seconds_bucket{{{labels},le=\"0.05\"}} 1"),
            format!("edgeflags_request_duration_seconds_bucket{{{labels},le=\"0.1\"}} 3"),
            format!("edgeflags_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} 3"),
            format!("edgeflags_request_duration_seconds_sum{{{labels}}} 0.25"),
            format!("edgeflags_request_duration_seconds_count{{{labels}}} 3"),
            r#"edgeflags_exposures_total{flag="backend",variant="v2"} 3"#.to_owned(),
            r#"edgeflags_events_total{event="purchase"} 1"#.to_owned(),
            r#"edgeflags_rollout_percent{flag="backend",status="running"} 10"#.to_owned(),
            "edgeflags_metric_duplicate_batches_total 1".to_owned(),
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
    }

    #[test]
    fn notification_outcomes_fold_per_channel_and_outcome_into_the_batch() {
        let mut r = Recorder::default();
        for _ in 0..3 {
            r.notification("push", "delivered", 5);
        }
        r.notification("push", "retried", 5);
        r.notification("email", "failed", 5);
        assert!(
            !r.due(5),
            "a queue batch flushes by itself; 5 records are not due"
        );
        let b = r.take("q1".into()).remove(0);
        let count = |channel: &str, outcome: &str, count| NotificationCount {
            channel: channel.into(),
            outcome: outcome.into(),
            count,
        };
        assert_eq!(
            b.notifications,
            vec![
                count("email", "failed", 1),
                count("push", "delivered", 3),
                count("push", "retried", 1)
            ]
        );
        assert_eq!(b.requests(), 0);
        assert!(r.take("q2".into()).is_empty());
        // A batch retained by an older worker (no notifications) still parses.
        let old: Batch = serde_json::from_str(
            r#"{"id":"x","series":[],"exposures":[],"events":[],"visitors":[]}"#,
        )
        .unwrap();
        assert!(old.notifications.is_empty());
    }

    #[test]
    fn the_delivery_success_ratio_counts_only_delivered_and_failed() {
        let rows = [
            ("push", "delivered", 97),
            ("push", "failed", 3),
            ("push", "gone", 50),
            ("push", "retried", 400),
            ("push", "dropped", 9),
            ("sms", "delivered", 1),
            ("inapp", "read", 4),
        ];
        let c = by_channel(rows);
        let names: Vec<&str> = c.iter().map(|c| c.channel.as_str()).collect();
        assert_eq!(names, ["push", "inapp", "email", "sms"]);
        assert_eq!(c[0].success_ratio(), Some(0.97));
        assert_eq!(
            c[1].success_ratio(),
            None,
            "nothing settled: no ratio, not 0 or 1"
        );
        assert_eq!(c[3].success_ratio(), Some(1.0));
        let report = c[0].report();
        assert_eq!(report["deliverySuccess"], 0.97);
        assert_eq!(report["gone"], 50);
        assert_eq!(report["dropped"], 9);
        let inapp = c[1].report();
        assert!(inapp["deliverySuccess"].is_null());
        assert_eq!(
            (inapp["read"].clone(), inapp["failed"].clone()),
            (4.into(), 0.into())
        );
    }

    #[test]
    fn prometheus_shows_every_outcome_of_every_channel_and_the_ratio_once_defined() {
        let t = Totals {
            notifications: by_channel([
                ("push", "delivered", 2),
                ("push", "failed", 1),
                ("push", "gone", 1),
            ]),
            ..Totals::default()
        };
        let text = prometheus(&t);
        for line in [
            "# TYPE edgeflags_notifications_total counter",
            r#"edgeflags_notifications_total{channel="push",outcome="delivered"} 2"#,
            r#"edgeflags_notifications_total{channel="push",outcome="failed"} 1"#,
            r#"edgeflags_notifications_total{channel="push",outcome="gone"} 1"#,
            r#"edgeflags_notifications_total{channel="push",outcome="retried"} 0"#,
            r#"edgeflags_notifications_total{channel="email",outcome="dropped"} 0"#,
            "# TYPE edgeflags_notification_delivery_success_ratio gauge",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
        let ratio = text
            .lines()
            .find_map(|l| {
                l.strip_prefix(r#"edgeflags_notification_delivery_success_ratio{channel="push"} "#)
            })
            .unwrap();
        assert!((ratio.parse::<f64>().unwrap() - 2.0 / 3.0).abs() < 1e-12);
        assert!(
            !text.contains(r#"edgeflags_notification_delivery_success_ratio{channel="email"}"#),
            "no ratio before anything settled"
        );
    }
}
