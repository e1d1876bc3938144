//! Measurement glue: the isolate's recorder, batch delivery to the metrics Durable Object
//! from `waitUntil`, and the object itself (`MetricsStore`, SQLite storage).
//!
//! One object (`idFromName("global")`) aggregates everything. It receives one call per
//! batch (≤ `MAX_PENDING_REQUESTS` requests or `MAX_PENDING_MS` of one isolate), which one
//! object sustains far beyond this worker's traffic on a single machine; at larger scale,
//! shard by flag (the object name) — the batch format already groups by flag.

use std::cell::RefCell;

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::{json, Value};
use worker::{
    durable_object, Context, DurableObject, Env, Method, Request, RequestInit, Response,
    SqlStorage, SqlStorageValue, State,
};

use super::{internal, now_ms, random_id};
use crate::error::EdgeError;
use crate::metrics::{
    Batch, Counts, Recorder, RequestRecord, SeriesKey, Totals, LATENCY_BOUNDS_MS,
};

/// Durable Object binding of the metrics store (wrangler.toml `[[durable_objects.bindings]]`).
pub const BINDING: &str = "METRICS";

thread_local! {
    static RECORDER: RefCell<Recorder> = RefCell::new(Recorder::default());
    /// `enabled`, decided once per isolate: bindings and vars cannot change under a running
    /// isolate, and two JS lookups per request are hot-path work (as in lib.rs `Settings`).
    static ENABLED: std::cell::Cell<Option<bool>> = const { std::cell::Cell::new(None) };
}

/// Whether this deployment measures: the binding exists and `METRICS` is not `off`.
pub fn enabled(env: &Env) -> bool {
    if let Some(on) = ENABLED.with(std::cell::Cell::get) {
        return on;
    }
    let on = env.durable_object(BINDING).is_ok()
        && env
            .var("METRICS")
            .map(|v| v.to_string() != "off")
            .unwrap_or(true);
    ENABLED.with(|e| e.set(Some(on)));
    on
}

/// Counts one proxied request (and the exposure of the flag that routed it), then sends a
/// batch in the background when one is due.
pub fn record_request(env: &Env, ctx: &Context, rec: &RequestRecord<'_>, unit: Option<&str>) {
    let now = now_ms();
    RECORDER.with(|r| {
        let mut r = r.borrow_mut();
        r.request(rec, now);
        if let Some((flag, variant)) = rec.decided_by {
            r.exposure(flag, variant, rec.epoch, unit, now);
        }
    });
    flush_if_due(env, ctx, now);
}

/// Counts exposures of experiment flags answered over OFREP.
pub fn record_exposures(
    env: &Env,
    ctx: &Context,
    exposures: &[(String, String, String)],
    unit: Option<&str>,
) {
    if exposures.is_empty() {
        return;
    }
    let now = now_ms();
    RECORDER.with(|r| {
        let mut r = r.borrow_mut();
        for (flag, variant, epoch) in exposures {
            r.exposure(flag, variant, epoch, unit, now);
        }
    });
    flush_if_due(env, ctx, now);
}

/// Counts client-reported events.
pub fn record_events(
    env: &Env,
    ctx: &Context,
    events: &[(String, Option<f64>)],
    unit: Option<&str>,
) {
    let now = now_ms();
    RECORDER.with(|r| {
        let mut r = r.borrow_mut();
        for (name, value) in events {
            r.event(name, unit, *value, now);
        }
    });
    flush_if_due(env, ctx, now);
}

fn flush_if_due(env: &Env, ctx: &Context, now: u64) {
    let batches = RECORDER.with(|r| {
        let mut r = r.borrow_mut();
        if r.due(now) {
            r.take(random_id().unwrap_or_default())
        } else {
            Vec::new()
        }
    });
    if !batches.is_empty() {
        let env = env.clone();
        ctx.wait_until(async move {
            let _ = deliver(&env, batches).await;
        });
    }
}

/// Sends everything pending now (before reading totals, and from the cron trigger).
pub async fn flush(env: &Env) -> Result<(), EdgeError> {
    let batches = RECORDER.with(|r| r.borrow_mut().take(random_id().unwrap_or_default()));
    deliver(env, batches).await
}

/// Flushes before totals are read. A batch that cannot be delivered now stays retained and
/// is re-sent later with the same id, so a reader gets the totals stored so far rather than
/// an error.
async fn flush_or_warn(env: &Env) {
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
        RECORDER.with(|r| r.borrow_mut().retain_failed(failed));
    }
    last_error.map_or(Ok(()), Err)
}

/// Isolate-side state for the status endpoint.
pub fn isolate_status() -> Value {
    RECORDER.with(|r| {
        let r = r.borrow();
        json!({"retainedBatches": r.retained(), "droppedBatches": r.dropped_batches})
    })
}

/// Calls the metrics object: POST `path` with a JSON body, JSON answer.
pub async fn call<B: Serialize, R: DeserializeOwned>(
    env: &Env,
    path: &str,
    body: &B,
) -> Result<R, EdgeError> {
    let unavailable =
        |e: worker::Error| EdgeError::Config(format!("metrics store unavailable: {e}"));
    let namespace = env.durable_object(BINDING).map_err(unavailable)?;
    let stub = namespace
        .id_from_name("global")
        .and_then(|id| id.get_stub())
        .map_err(unavailable)?;
    let body = serde_json::to_string(body).map_err(internal)?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_body(Some(body.into()));
    let req = Request::new_with_init(&format!("https://metrics.internal{path}"), &init)
        .map_err(internal)?;
    let mut res = stub.fetch_with_request(req).await.map_err(internal)?;
    if res.status_code() != 200 {
        let text = res.text().await.unwrap_or_default();
        return Err(EdgeError::Internal(format!("metrics store: {text}")));
    }
    res.json().await.map_err(internal)
}

/// Per-variant counts of one flag in one epoch (for results and rollout gates).
pub use crate::experiments::Arm as ArmCounts;

/// `POST /arms` body.
#[derive(Debug, Serialize, Deserialize)]
pub struct ArmsQuery {
    pub flag: String,
    pub epoch: String,
    pub event: Option<String>,
}

/// A rollout decision as the store keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DecisionRecord {
    pub at_ms: u64,
    pub flag: String,
    pub action: String,
    pub reason: String,
    pub dry_run: bool,
    pub applied: bool,
}

/// The metrics store: SQLite tables of counters, keyed so that every write is an upsert.
#[durable_object(fetch)]
pub struct MetricsStore {
    state: State,
    env: Env,
    /// Batches applied by this instance (for the lost-acknowledgement fault below).
    applied: std::cell::Cell<u64>,
}

/// Test-only fault (wrangler var, absent in production): after applying every N-th new
/// batch, answer 503 as if the acknowledgement were lost on the way back. The worker then
/// keeps the batch and re-sends it with the same id, which is what the de-duplication by
/// batch id exists for; the end-to-end tests use it to show nothing is counted twice.
const LOSE_ACK_VAR: &str = "METRICS_FAULT_LOSE_ACK_EVERY";

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS batches (id TEXT PRIMARY KEY, at INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, n INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS series (flag TEXT NOT NULL, variant TEXT NOT NULL, origin TEXT NOT NULL, epoch TEXT NOT NULL, requests INTEGER NOT NULL, errors INTEGER NOT NULL, hits INTEGER NOT NULL, misses INTEGER NOT NULL, latency_sum REAL NOT NULL, PRIMARY KEY (flag, variant, origin, epoch))",
    "CREATE TABLE IF NOT EXISTS latency (flag TEXT NOT NULL, variant TEXT NOT NULL, origin TEXT NOT NULL, epoch TEXT NOT NULL, bucket INTEGER NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (flag, variant, origin, epoch, bucket))",
    "CREATE TABLE IF NOT EXISTS exposures (flag TEXT NOT NULL, variant TEXT NOT NULL, epoch TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (flag, variant, epoch))",
    "CREATE TABLE IF NOT EXISTS units (flag TEXT NOT NULL, epoch TEXT NOT NULL, unit TEXT NOT NULL, variant TEXT NOT NULL, first_at INTEGER NOT NULL, PRIMARY KEY (flag, epoch, unit))",
    "CREATE TABLE IF NOT EXISTS events (name TEXT PRIMARY KEY, n INTEGER NOT NULL, value_sum REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS conversions (event TEXT NOT NULL, unit TEXT NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (event, unit))",
    "CREATE TABLE IF NOT EXISTS decisions (at INTEGER NOT NULL, flag TEXT NOT NULL, action TEXT NOT NULL, reason TEXT NOT NULL, dry_run INTEGER NOT NULL, applied INTEGER NOT NULL)",
];

/// How long batch ids are remembered for de-duplication (a retained batch is re-sent
/// within minutes; a day is generous).
const BATCH_ID_TTL_MS: u64 = 24 * 3600 * 1000;

fn v(s: &str) -> SqlStorageValue {
    SqlStorageValue::from(s)
}

fn n(x: u64) -> SqlStorageValue {
    SqlStorageValue::from(i64::try_from(x).unwrap_or(i64::MAX))
}

fn f(x: f64) -> SqlStorageValue {
    SqlStorageValue::from(x)
}

fn rows(
    sql: &SqlStorage,
    query: &str,
    args: Vec<SqlStorageValue>,
) -> worker::Result<Vec<Vec<Value>>> {
    let cursor = sql.exec(query, args)?;
    let out: Vec<Value> = cursor.to_array()?;
    // Rows come back as objects keyed by column name; keep them in column order.
    let columns = cursor.column_names();
    Ok(out
        .into_iter()
        .map(|row| {
            columns
                .iter()
                .map(|c| row.get(c).cloned().unwrap_or(Value::Null))
                .collect()
        })
        .collect())
}

fn num(v: &Value) -> u64 {
    v.as_f64().map_or(0, |x| x.max(0.0) as u64)
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

impl std::fmt::Debug for MetricsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsStore")
    }
}

impl MetricsStore {
    /// Whether the lost-acknowledgement fault ([`LOSE_ACK_VAR`]) hits this applied batch.
    fn ack_lost(&self) -> bool {
        let every = self
            .env
            .var(LOSE_ACK_VAR)
            .ok()
            .and_then(|v| v.to_string().parse::<u64>().ok())
            .filter(|n| *n > 0);
        let n = self.applied.get() + 1;
        self.applied.set(n);
        every.is_some_and(|every| n.is_multiple_of(every))
    }

    fn sql(&self) -> worker::Result<SqlStorage> {
        let sql = self.state.storage().sql();
        for statement in SCHEMA {
            sql.exec(statement, None)?;
        }
        Ok(sql)
    }

    /// Applies a batch once: a batch id seen before is acknowledged and ignored. All writes
    /// happen in one synchronous run of the object (no await in between), which the
    /// runtime commits atomically, so a batch is either wholly counted or not at all.
    fn ingest(&self, batch: &Batch) -> worker::Result<Value> {
        let sql = self.sql()?;
        let now = now_ms();
        let seen = rows(
            &sql,
            "SELECT 1 FROM batches WHERE id = ?",
            vec![v(&batch.id)],
        )?;
        if !seen.is_empty() {
            sql.exec(
                "INSERT INTO counters VALUES ('duplicate_batches', 1) ON CONFLICT(name) DO UPDATE SET n = n + 1",
                None,
            )?;
            return Ok(json!({"applied": false, "duplicate": true}));
        }
        sql.exec(
            "INSERT INTO batches VALUES (?, ?)",
            vec![v(&batch.id), n(now)],
        )?;
        sql.exec(
            "DELETE FROM batches WHERE at < ?",
            vec![n(now.saturating_sub(BATCH_ID_TTL_MS))],
        )?;
        sql.exec(
            "INSERT INTO counters VALUES ('batches', 1) ON CONFLICT(name) DO UPDATE SET n = n + 1",
            None,
        )?;
        for (k, c) in &batch.series {
            sql.exec(
                "INSERT INTO series VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(flag, variant, origin, epoch) DO UPDATE SET requests = requests + excluded.requests, errors = errors + excluded.errors, hits = hits + excluded.hits, misses = misses + excluded.misses, latency_sum = latency_sum + excluded.latency_sum",
                vec![v(&k.flag), v(&k.variant), v(&k.origin), v(&k.epoch), n(c.requests), n(c.errors), n(c.cache_hits), n(c.cache_misses), f(c.latency_sum_ms)],
            )?;
            for (bucket, count) in c.latency.iter().enumerate().filter(|(_, c)| **c > 0) {
                sql.exec(
                    "INSERT INTO latency VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(flag, variant, origin, epoch, bucket) DO UPDATE SET n = n + excluded.n",
                    vec![v(&k.flag), v(&k.variant), v(&k.origin), v(&k.epoch), n(bucket as u64), n(*count)],
                )?;
            }
        }
        for e in &batch.exposures {
            sql.exec(
                "INSERT INTO exposures VALUES (?, ?, ?, ?) ON CONFLICT(flag, variant, epoch) DO UPDATE SET n = n + excluded.n",
                vec![v(&e.flag), v(&e.variant), v(&e.epoch), n(e.count)],
            )?;
            for unit in &e.units {
                sql.exec(
                    "INSERT OR IGNORE INTO units VALUES (?, ?, ?, ?, ?)",
                    vec![v(&e.flag), v(&e.epoch), v(unit), v(&e.variant), n(now)],
                )?;
            }
        }
        for e in &batch.events {
            sql.exec(
                "INSERT INTO events VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET n = n + excluded.n, value_sum = value_sum + excluded.value_sum",
                vec![v(&e.name), n(e.count), f(e.value_sum)],
            )?;
            for unit in &e.units {
                sql.exec(
                    "INSERT OR IGNORE INTO conversions VALUES (?, ?, ?)",
                    vec![v(&e.name), v(unit), n(now)],
                )?;
            }
        }
        Ok(json!({"applied": true}))
    }

    /// Totals across epochs, for Prometheus.
    fn totals(&self) -> worker::Result<Totals> {
        let sql = self.sql()?;
        let mut series: Vec<(SeriesKey, Counts)> = rows(
            &sql,
            "SELECT flag, variant, origin, SUM(requests), SUM(errors), SUM(hits), SUM(misses), SUM(latency_sum) FROM series GROUP BY flag, variant, origin ORDER BY flag, variant, origin",
            vec![],
        )?
        .iter()
        .map(|r| {
            (
                SeriesKey { flag: text(&r[0]), variant: text(&r[1]), origin: text(&r[2]), epoch: String::new() },
                Counts {
                    requests: num(&r[3]),
                    errors: num(&r[4]),
                    cache_hits: num(&r[5]),
                    cache_misses: num(&r[6]),
                    latency_sum_ms: r[7].as_f64().unwrap_or(0.0),
                    latency: vec![0; LATENCY_BOUNDS_MS.len() + 1],
                },
            )
        })
        .collect();
        for r in rows(
            &sql,
            "SELECT flag, variant, origin, bucket, SUM(n) FROM latency GROUP BY flag, variant, origin, bucket",
            vec![],
        )? {
            let key = (text(&r[0]), text(&r[1]), text(&r[2]));
            if let Some((_, c)) = series
                .iter_mut()
                .find(|(k, _)| (k.flag.as_str(), k.variant.as_str(), k.origin.as_str()) == (key.0.as_str(), key.1.as_str(), key.2.as_str()))
            {
                if let Some(slot) = c.latency.get_mut(num(&r[3]) as usize) {
                    *slot += num(&r[4]);
                }
            }
        }
        let exposures = rows(
            &sql,
            "SELECT flag, variant, SUM(n) FROM exposures GROUP BY flag, variant ORDER BY flag, variant",
            vec![],
        )?
        .iter()
        .map(|r| (text(&r[0]), text(&r[1]), num(&r[2])))
        .collect();
        let events = rows(&sql, "SELECT name, n FROM events ORDER BY name", vec![])?
            .iter()
            .map(|r| (text(&r[0]), num(&r[1])))
            .collect();
        let counter = |name: &str| -> worker::Result<u64> {
            Ok(
                rows(&sql, "SELECT n FROM counters WHERE name = ?", vec![v(name)])?
                    .first()
                    .map_or(0, |r| num(&r[0])),
            )
        };
        Ok(Totals {
            series,
            exposures,
            events,
            batches: counter("batches")?,
            duplicate_batches: counter("duplicate_batches")?,
            rollouts: Vec::new(),
        })
    }

    /// Per-variant counts of one flag in one epoch.
    fn arms(&self, q: &ArmsQuery) -> worker::Result<Vec<ArmCounts>> {
        let sql = self.sql()?;
        let mut arms: Vec<ArmCounts> = Vec::new();
        let arm = |arms: &mut Vec<ArmCounts>, variant: String| -> usize {
            if let Some(i) = arms.iter().position(|a| a.variant == variant) {
                return i;
            }
            arms.push(ArmCounts {
                variant,
                latency: vec![0; LATENCY_BOUNDS_MS.len() + 1],
                ..ArmCounts::default()
            });
            arms.len() - 1
        };
        let args = || vec![v(&q.flag), v(&q.epoch)];
        for r in rows(
            &sql,
            "SELECT variant, SUM(n) FROM exposures WHERE flag = ? AND epoch = ? GROUP BY variant",
            args(),
        )? {
            let i = arm(&mut arms, text(&r[0]));
            arms[i].exposures = num(&r[1]);
        }
        for r in rows(
            &sql,
            "SELECT variant, COUNT(*) FROM units WHERE flag = ? AND epoch = ? GROUP BY variant",
            args(),
        )? {
            let i = arm(&mut arms, text(&r[0]));
            arms[i].units = num(&r[1]);
        }
        for r in rows(&sql, "SELECT variant, SUM(requests), SUM(errors) FROM series WHERE flag = ? AND epoch = ? GROUP BY variant", args())? {
            let i = arm(&mut arms, text(&r[0]));
            arms[i].requests = num(&r[1]);
            arms[i].errors = num(&r[2]);
        }
        for r in rows(&sql, "SELECT variant, bucket, SUM(n) FROM latency WHERE flag = ? AND epoch = ? GROUP BY variant, bucket", args())? {
            let i = arm(&mut arms, text(&r[0]));
            if let Some(slot) = arms[i].latency.get_mut(num(&r[1]) as usize) {
                *slot += num(&r[2]);
            }
        }
        if let Some(event) = &q.event {
            // A unit converted when it reported the event after it was first exposed in
            // this epoch.
            for r in rows(
                &sql,
                "SELECT u.variant, COUNT(*) FROM units u JOIN conversions c ON c.unit = u.unit AND c.event = ? AND c.at >= u.first_at WHERE u.flag = ? AND u.epoch = ? GROUP BY u.variant",
                vec![v(event), v(&q.flag), v(&q.epoch)],
            )? {
                let i = arm(&mut arms, text(&r[0]));
                arms[i].converted = num(&r[1]);
            }
        }
        Ok(arms)
    }

    fn record_decision(&self, d: &DecisionRecord) -> worker::Result<Value> {
        let sql = self.sql()?;
        sql.exec(
            "INSERT INTO decisions VALUES (?, ?, ?, ?, ?, ?)",
            vec![
                n(d.at_ms),
                v(&d.flag),
                v(&d.action),
                v(&d.reason),
                n(u64::from(d.dry_run)),
                n(u64::from(d.applied)),
            ],
        )?;
        // Keep the last 200 decisions per flag.
        sql.exec(
            "DELETE FROM decisions WHERE flag = ? AND rowid NOT IN (SELECT rowid FROM decisions WHERE flag = ? ORDER BY at DESC, rowid DESC LIMIT 200)",
            vec![v(&d.flag), v(&d.flag)],
        )?;
        Ok(json!({"ok": true}))
    }

    fn decisions(&self) -> worker::Result<Vec<DecisionRecord>> {
        let sql = self.sql()?;
        Ok(rows(&sql, "SELECT at, flag, action, reason, dry_run, applied FROM decisions ORDER BY at DESC, rowid DESC LIMIT 100", vec![])?
            .iter()
            .map(|r| DecisionRecord {
                at_ms: num(&r[0]),
                flag: text(&r[1]),
                action: text(&r[2]),
                reason: text(&r[3]),
                dry_run: num(&r[4]) != 0,
                applied: num(&r[5]) != 0,
            })
            .collect())
    }
}

async fn body<T: DeserializeOwned>(req: &mut Request) -> worker::Result<T> {
    let text = req.text().await?;
    serde_json::from_str(&text).map_err(|e| worker::Error::RustError(format!("bad body: {e}")))
}

impl DurableObject for MetricsStore {
    fn new(state: State, env: Env) -> Self {
        Self {
            state,
            env,
            applied: std::cell::Cell::new(0),
        }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let path = req.path();
        let result = match path.as_str() {
            "/ingest" => {
                let batch: Batch = body(&mut req).await?;
                let result = self.ingest(&batch);
                if let Ok(answer) = &result {
                    if answer["applied"] == true && self.ack_lost() {
                        return Response::error("fault: acknowledgement lost", 503);
                    }
                }
                result
            }
            "/totals" => self.totals().and_then(|t| {
                serde_json::to_value(t).map_err(|e| worker::Error::RustError(e.to_string()))
            }),
            "/arms" => {
                let q: ArmsQuery = body(&mut req).await?;
                self.arms(&q).and_then(|a| {
                    serde_json::to_value(a).map_err(|e| worker::Error::RustError(e.to_string()))
                })
            }
            "/decisions/record" => {
                let d: DecisionRecord = body(&mut req).await?;
                self.record_decision(&d)
            }
            "/decisions" => self.decisions().and_then(|d| {
                serde_json::to_value(d).map_err(|e| worker::Error::RustError(e.to_string()))
            }),
            _ => return Response::error("no such metrics call", 404),
        };
        match result {
            Ok(value) => Response::from_json(&value),
            Err(e) => Response::error(format!("{e}"), 500),
        }
    }
}

/// `GET {prefix}/metrics`: Prometheus text (version 0.0.4) of the totals.
pub async fn prometheus(env: &Env, config: &crate::config::Config) -> Result<Response, EdgeError> {
    flush_or_warn(env).await;
    let mut totals: Totals = call(env, "/totals", &json!({})).await?;
    if let Ok(Some((_, text))) = super::flags::stored(env, config).await {
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
    let res = Response::ok(crate::metrics::prometheus(&totals)).map_err(internal)?;
    super::set_all(
        res.headers(),
        &[
            (
                "content-type",
                "text/plain; version=0.0.4; charset=utf-8".into(),
            ),
            ("cache-control", "no-store".into()),
        ],
    )?;
    Ok(res)
}

/// `GET {prefix}/features/experiments/results[?format=csv]`: every experiment's results in
/// its flag's current epoch, and the recent rollout decisions.
pub async fn results(
    req: &Request,
    env: &Env,
    config: &crate::config::Config,
    ctx: &Context,
) -> Result<Response, EdgeError> {
    let csv = req
        .url()
        .map(|u| u.query_pairs().any(|(k, v)| k == "format" && v == "csv"))
        .unwrap_or(false);
    flush_or_warn(env).await;
    let active = super::flags::current(env, config, Some(ctx)).await?;
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
    if csv {
        let res = Response::ok(crate::experiments::csv(&out)).map_err(internal)?;
        super::set_all(
            res.headers(),
            &[
                (
                    "content-type",
                    "text/csv; charset=utf-8; header=present".into(),
                ),
                ("cache-control", "no-store".into()),
            ],
        )?;
        return Ok(res);
    }
    let decisions: Vec<DecisionRecord> = call(env, "/decisions", &json!({})).await?;
    super::json(&json!({
        "version": active.version,
        "experiments": out,
        "rolloutDecisions": decisions,
    }))
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
    let visitor =
        crate::identity::identify(&config.identity, |n| super::header(&req, n), false, || None);
    // (unit, [(event, value)])
    type ByUnit = Vec<(String, Vec<(String, Option<f64>)>)>;
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
        let unit = crate::metrics::unit_id(&key);
        match by_unit.iter_mut().find(|(u, _)| *u == unit) {
            Some((_, list)) => list.push((name.to_owned(), value)),
            None => by_unit.push((unit, vec![(name.to_owned(), value)])),
        }
    }
    let accepted: usize = by_unit.iter().map(|(_, l)| l.len()).sum();
    if enabled(env) {
        for (unit, list) in &by_unit {
            record_events(env, ctx, list, Some(unit));
        }
    }
    super::json_with_status(&json!({"accepted": accepted}), 202)
}
