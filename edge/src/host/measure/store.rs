//! The metrics Durable Object (`MetricsStore`): SQLite tables of counters that batches are
//! folded into exactly once (by batch id), and the queries results and rollouts read.

use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use worker::{durable_object, DurableObject, Env, Request, Response, SqlStorage, State};

use crate::host::measure::{ArmCounts, ArmsQuery, DecisionRecord, NotificationsQuery};
use crate::host::now_ms;
use crate::host::sql::{f, n, num, rows, text, v};
use crate::measure::metrics::{
    by_channel, Batch, ChannelDeliveries, Counts, Point, Resolution, SeriesKey, TimelineQuery,
    Totals, LATENCY_BOUNDS_MS,
};

/// The metrics store: SQLite tables of counters, keyed so that every write is an upsert.
#[durable_object(fetch)]
pub(crate) struct MetricsStore {
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
    // Per-minute and per-hour aggregates (`res` = bucket width in ms), for the timeline.
    "CREATE TABLE IF NOT EXISTS timeline (res INTEGER NOT NULL, t INTEGER NOT NULL, flag TEXT NOT NULL, variant TEXT NOT NULL, requests INTEGER NOT NULL, errors INTEGER NOT NULL, hits INTEGER NOT NULL, misses INTEGER NOT NULL, PRIMARY KEY (res, t, flag, variant))",
    "CREATE TABLE IF NOT EXISTS timeline_latency (res INTEGER NOT NULL, t INTEGER NOT NULL, flag TEXT NOT NULL, variant TEXT NOT NULL, bucket INTEGER NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (res, t, flag, variant, bucket))",
    "CREATE TABLE IF NOT EXISTS batches (id TEXT PRIMARY KEY, at INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, n INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS series (flag TEXT NOT NULL, variant TEXT NOT NULL, origin TEXT NOT NULL, epoch TEXT NOT NULL, requests INTEGER NOT NULL, errors INTEGER NOT NULL, hits INTEGER NOT NULL, misses INTEGER NOT NULL, latency_sum REAL NOT NULL, PRIMARY KEY (flag, variant, origin, epoch))",
    "CREATE TABLE IF NOT EXISTS latency (flag TEXT NOT NULL, variant TEXT NOT NULL, origin TEXT NOT NULL, epoch TEXT NOT NULL, bucket INTEGER NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (flag, variant, origin, epoch, bucket))",
    "CREATE TABLE IF NOT EXISTS exposures (flag TEXT NOT NULL, variant TEXT NOT NULL, epoch TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (flag, variant, epoch))",
    "CREATE TABLE IF NOT EXISTS units (flag TEXT NOT NULL, epoch TEXT NOT NULL, unit TEXT NOT NULL, variant TEXT NOT NULL, first_at INTEGER NOT NULL, PRIMARY KEY (flag, epoch, unit))",
    // Visitors whose proxied requests a flag variant routed, and whether any saw an origin
    // error: the rollout gates count visitors, not requests.
    "CREATE TABLE IF NOT EXISTS visitors (flag TEXT NOT NULL, epoch TEXT NOT NULL, variant TEXT NOT NULL, unit TEXT NOT NULL, errored INTEGER NOT NULL, slowest INTEGER NOT NULL, first_at INTEGER NOT NULL, PRIMARY KEY (flag, epoch, variant, unit))",
    "CREATE INDEX IF NOT EXISTS visitors_first_at ON visitors (first_at)",
    "CREATE TABLE IF NOT EXISTS events (name TEXT PRIMARY KEY, n INTEGER NOT NULL, value_sum REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS conversions (event TEXT NOT NULL, unit TEXT NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (event, unit))",
    // The retention deletes below run once per batch: indexed, they touch only expired rows.
    "CREATE INDEX IF NOT EXISTS units_first_at ON units (first_at)",
    "CREATE INDEX IF NOT EXISTS conversions_at ON conversions (at)",
    // Notification delivery outcomes per channel: totals (Prometheus, results) and per
    // minute (what a rollout gate counts since its stage began; kept 48 h like the timeline).
    "CREATE TABLE IF NOT EXISTS notifications (channel TEXT NOT NULL, outcome TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (channel, outcome))",
    "CREATE TABLE IF NOT EXISTS notification_minutes (t INTEGER NOT NULL, channel TEXT NOT NULL, outcome TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (t, channel, outcome))",
    "CREATE TABLE IF NOT EXISTS decisions (at INTEGER NOT NULL, flag TEXT NOT NULL, action TEXT NOT NULL, reason TEXT NOT NULL, dry_run INTEGER NOT NULL, applied INTEGER NOT NULL)",
];

/// How long batch ids are remembered for de-duplication (a retained batch is re-sent
/// within minutes; a day is generous).
const BATCH_ID_TTL_MS: u64 = 24 * 3600 * 1000;

/// How long a unit (hashed visitor) and its conversions are kept after it was first seen:
/// anyone may send a new targetingKey, so the tables are bounded by time. 30 days outlast any
/// rollout stage or experiment epoch worth judging.
const UNIT_TTL_MS: u64 = 30 * 24 * 3600 * 1000;

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
        let unit_cutoff = n(now.saturating_sub(UNIT_TTL_MS));
        sql.exec(
            "DELETE FROM units WHERE first_at < ?",
            vec![unit_cutoff.clone()],
        )?;
        sql.exec(
            "DELETE FROM visitors WHERE first_at < ?",
            vec![unit_cutoff.clone()],
        )?;
        sql.exec("DELETE FROM conversions WHERE at < ?", vec![unit_cutoff])?;
        sql.exec(
            "INSERT INTO counters VALUES ('batches', 1) ON CONFLICT(name) DO UPDATE SET n = n + 1",
            None,
        )?;
        for res in [Resolution::Minute, Resolution::Hour] {
            let t = res.bucket(now);
            for (k, c) in &batch.series {
                sql.exec(
                    "INSERT INTO timeline VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(res, t, flag, variant) DO UPDATE SET requests = requests + excluded.requests, errors = errors + excluded.errors, hits = hits + excluded.hits, misses = misses + excluded.misses",
                    vec![n(res.ms()), n(t), v(&k.flag), v(&k.variant), n(c.requests), n(c.errors), n(c.cache_hits), n(c.cache_misses)],
                )?;
                for (bucket, count) in c.latency.iter().enumerate().filter(|(_, c)| **c > 0) {
                    sql.exec(
                        "INSERT INTO timeline_latency VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(res, t, flag, variant, bucket) DO UPDATE SET n = n + excluded.n",
                        vec![n(res.ms()), n(t), v(&k.flag), v(&k.variant), n(bucket as u64), n(*count)],
                    )?;
                }
            }
            // Bounded: 48 h of minutes, 30 days of hours (the primary key's prefix indexes it).
            let cutoff = n(now.saturating_sub(res.retention_ms()));
            sql.exec(
                "DELETE FROM timeline WHERE res = ? AND t < ?",
                vec![n(res.ms()), cutoff.clone()],
            )?;
            sql.exec(
                "DELETE FROM timeline_latency WHERE res = ? AND t < ?",
                vec![n(res.ms()), cutoff],
            )?;
        }
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
        for r in &batch.visitors {
            sql.exec(
                "INSERT INTO visitors VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(flag, epoch, variant, unit) DO UPDATE SET errored = MAX(errored, excluded.errored), slowest = MAX(slowest, excluded.slowest)",
                vec![v(&r.flag), v(&r.epoch), v(&r.variant), v(&r.unit), n(u64::from(r.errored)), n(r.slowest as u64), n(now)],
            )?;
        }
        let minute = Resolution::Minute.bucket(now);
        for c in &batch.notifications {
            sql.exec(
                "INSERT INTO notifications VALUES (?, ?, ?) ON CONFLICT(channel, outcome) DO UPDATE SET n = n + excluded.n",
                vec![v(&c.channel), v(&c.outcome), n(c.count)],
            )?;
            sql.exec(
                "INSERT INTO notification_minutes VALUES (?, ?, ?, ?) ON CONFLICT(t, channel, outcome) DO UPDATE SET n = n + excluded.n",
                vec![n(minute), v(&c.channel), v(&c.outcome), n(c.count)],
            )?;
        }
        if !batch.notifications.is_empty() {
            sql.exec(
                "DELETE FROM notification_minutes WHERE t < ?",
                vec![n(now.saturating_sub(Resolution::Minute.retention_ms()))],
            )?;
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

    /// The timeline's buckets since `q.since_ms`, summed over the selected series, oldest
    /// first.
    fn timeline(&self, q: &TimelineQuery) -> worker::Result<Vec<Point>> {
        let sql = self.sql()?;
        let filter = "res = ? AND t >= ? AND (? = '' OR flag = ?) AND (? = '' OR variant = ?)";
        let flag = q.flag.clone().unwrap_or_default();
        let variant = q.variant.clone().unwrap_or_default();
        let args = || {
            vec![
                n(q.resolution.ms()),
                n(q.since_ms),
                v(&flag),
                v(&flag),
                v(&variant),
                v(&variant),
            ]
        };
        let mut points: Vec<Point> = rows(
            &sql,
            &format!("SELECT t, SUM(requests), SUM(errors), SUM(hits), SUM(misses) FROM timeline WHERE {filter} GROUP BY t ORDER BY t"),
            args(),
        )?
        .iter()
        .map(|r| Point {
            t: num(&r[0]),
            counts: Counts {
                requests: num(&r[1]),
                errors: num(&r[2]),
                cache_hits: num(&r[3]),
                cache_misses: num(&r[4]),
                latency: vec![0; LATENCY_BOUNDS_MS.len() + 1],
                latency_sum_ms: 0.0,
            },
        })
        .collect();
        for r in rows(
            &sql,
            &format!(
                "SELECT t, bucket, SUM(n) FROM timeline_latency WHERE {filter} GROUP BY t, bucket"
            ),
            args(),
        )? {
            let (t, bucket) = (num(&r[0]), num(&r[1]) as usize);
            if let Some(slot) = points
                .iter_mut()
                .find(|p| p.t == t)
                .and_then(|p| p.counts.latency.get_mut(bucket))
            {
                *slot += num(&r[2]);
            }
        }
        Ok(points)
    }

    /// The timeline's buckets since `q.since_ms` summed per (flag, variant): the overview's
    /// per-variant rows over the last hour (minutes) and day (hours).
    fn timeline_series(
        &self,
        q: &TimelineQuery,
    ) -> worker::Result<Vec<crate::dashboard::WindowCounts>> {
        let sql = self.sql()?;
        let args = || vec![n(q.resolution.ms()), n(q.since_ms)];
        let mut out: Vec<crate::dashboard::WindowCounts> = rows(
            &sql,
            "SELECT flag, variant, SUM(requests), SUM(errors), SUM(hits), SUM(misses) FROM timeline WHERE res = ? AND t >= ? GROUP BY flag, variant ORDER BY flag, variant",
            args(),
        )?
        .iter()
        .map(|r| {
            let counts = Counts {
                requests: num(&r[2]),
                errors: num(&r[3]),
                cache_hits: num(&r[4]),
                cache_misses: num(&r[5]),
                latency: vec![0; LATENCY_BOUNDS_MS.len() + 1],
                latency_sum_ms: 0.0,
            };
            (text(&r[0]), text(&r[1]), counts)
        })
        .collect();
        for r in rows(
            &sql,
            "SELECT flag, variant, bucket, SUM(n) FROM timeline_latency WHERE res = ? AND t >= ? GROUP BY flag, variant, bucket",
            args(),
        )? {
            let (flag, variant, bucket) = (text(&r[0]), text(&r[1]), num(&r[2]) as usize);
            if let Some(slot) = out
                .iter_mut()
                .find(|(f, v, _)| *f == flag && *v == variant)
                .and_then(|(_, _, c)| c.latency.get_mut(bucket))
            {
                *slot += num(&r[3]);
            }
        }
        Ok(out)
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
            notifications: self.notifications(None)?,
        })
    }

    /// Notification outcomes per channel: all of them, or those counted in the minutes since
    /// `since_ms` (the minute holding `since_ms` whole; at most the last 48 h).
    fn notifications(&self, since_ms: Option<u64>) -> worker::Result<Vec<ChannelDeliveries>> {
        let sql = self.sql()?;
        let found = match since_ms {
            None => rows(&sql, "SELECT channel, outcome, n FROM notifications", vec![])?,
            Some(since) => rows(
                &sql,
                "SELECT channel, outcome, SUM(n) FROM notification_minutes WHERE t >= ? GROUP BY channel, outcome",
                vec![n(Resolution::Minute.bucket(since))],
            )?,
        };
        let found: Vec<(String, String, u64)> = found
            .iter()
            .map(|r| (text(&r[0]), text(&r[1]), num(&r[2])))
            .collect();
        Ok(by_channel(
            found.iter().map(|(c, o, k)| (c.as_str(), o.as_str(), *k)),
        ))
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
        for r in rows(&sql, "SELECT variant, SUM(requests), SUM(errors), SUM(hits), SUM(misses) FROM series WHERE flag = ? AND epoch = ? GROUP BY variant", args())? {
            let i = arm(&mut arms, text(&r[0]));
            arms[i].requests = num(&r[1]);
            arms[i].errors = num(&r[2]);
            arms[i].cache_hits = num(&r[3]);
            arms[i].cache_misses = num(&r[4]);
        }
        for r in rows(&sql, "SELECT variant, COUNT(*), SUM(errored) FROM visitors WHERE flag = ? AND epoch = ? GROUP BY variant", args())? {
            let i = arm(&mut arms, text(&r[0]));
            arms[i].visitors = num(&r[1]);
            arms[i].error_units = num(&r[2]);
        }
        for r in rows(&sql, "SELECT variant, slowest, COUNT(*) FROM visitors WHERE flag = ? AND epoch = ? GROUP BY variant, slowest", args())? {
            let i = arm(&mut arms, text(&r[0]));
            let a = &mut arms[i];
            if a.visitor_latency.is_empty() {
                a.visitor_latency = vec![0; LATENCY_BOUNDS_MS.len() + 1];
            }
            if let Some(slot) = a.visitor_latency.get_mut(num(&r[1]) as usize) {
                *slot += num(&r[2]);
            }
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

    /// Distinct units seen since `since_ms`, overall and per flag (the dashboard's adoption).
    /// Both counts read the same rows, so they cover the same window.
    fn units(&self, since_ms: u64) -> worker::Result<crate::dashboard::UnitCounts> {
        let sql = self.sql()?;
        let all = rows(
            &sql,
            "SELECT COUNT(DISTINCT unit) FROM units WHERE first_at >= ?",
            vec![n(since_ms)],
        )?
        .first()
        .map_or(0, |r| num(&r[0]));
        let flags = rows(
            &sql,
            "SELECT flag, COUNT(DISTINCT unit) FROM units WHERE first_at >= ? GROUP BY flag ORDER BY flag",
            vec![n(since_ms)],
        )?
        .iter()
        .map(|r| (text(&r[0]), num(&r[1])))
        .collect();
        Ok(crate::dashboard::UnitCounts {
            since_ms,
            all,
            flags,
        })
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
            "/notifications" => {
                let q: NotificationsQuery = body(&mut req).await?;
                self.notifications(q.since_ms).and_then(|c| {
                    serde_json::to_value(c).map_err(|e| worker::Error::RustError(e.to_string()))
                })
            }
            "/decisions/record" => {
                let d: DecisionRecord = body(&mut req).await?;
                self.record_decision(&d)
            }
            "/timeline" => {
                let q: TimelineQuery = body(&mut req).await?;
                self.timeline(&q).and_then(|p| {
                    serde_json::to_value(p).map_err(|e| worker::Error::RustError(e.to_string()))
                })
            }
            "/timeline/series" => {
                let q: TimelineQuery = body(&mut req).await?;
                self.timeline_series(&q).and_then(|p| {
                    serde_json::to_value(p).map_err(|e| worker::Error::RustError(e.to_string()))
                })
            }
            "/units" => {
                let since_ms: u64 = body(&mut req).await?;
                self.units(since_ms).and_then(|u| {
                    serde_json::to_value(u).map_err(|e| worker::Error::RustError(e.to_string()))
                })
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
