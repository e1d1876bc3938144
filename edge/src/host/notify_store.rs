//! The push store (`PushStore`, a SQLite Durable Object): one instance per shard
//! (`push-0` … `push-{PUSH_SHARDS-1}`). A subscription lives in the shard of its endpoint's
//! hash, with the delivery rows of the notifications sent to it; a notification's own
//! record (its request, idempotency) lives in the shard of its id's hash. Every call is one
//! synchronous run of the object, which the runtime commits atomically.

use serde::Deserialize;
use serde_json::{json, Value};
use worker::{durable_object, DurableObject, Env, Request, Response, SqlStorage, State};

use super::now_ms;
use super::sql::{n, num, rows, text, v};
use crate::notify::api::Counts;

#[durable_object(fetch)]
pub struct PushStore {
    state: State,
}

impl std::fmt::Debug for PushStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PushStore")
    }
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS subscriptions (id TEXT PRIMARY KEY, endpoint TEXT NOT NULL, p256dh TEXT NOT NULL, auth TEXT NOT NULL, targeting_key TEXT NOT NULL, created INTEGER NOT NULL, updated INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS subscriptions_key ON subscriptions (targeting_key)",
    // One row per (notification, subscription): the de-duplication of at-least-once delivery.
    "CREATE TABLE IF NOT EXISTS deliveries (notification TEXT NOT NULL, subscription TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL, retried INTEGER NOT NULL, last_status INTEGER, reason TEXT NOT NULL, updated INTEGER NOT NULL, PRIMARY KEY (notification, subscription))",
    "CREATE INDEX IF NOT EXISTS deliveries_updated ON deliveries (updated)",
    "CREATE TABLE IF NOT EXISTS notifications (id TEXT PRIMARY KEY, request TEXT NOT NULL, channel TEXT NOT NULL, fanned_out INTEGER NOT NULL, created INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS notifications_created ON notifications (created)",
];

/// How long notification records and delivery rows are kept.
const RETENTION_MS: u64 = 30 * 24 * 3600 * 1000;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Call {
    #[serde(default)]
    id: String,
    #[serde(default)]
    n: String,
    #[serde(default)]
    s: String,
    #[serde(default)]
    ids: Vec<String>,
    #[serde(default)]
    keys: Option<Vec<String>>,
    #[serde(default)]
    subscription: Option<crate::notify::api::Subscription>,
    #[serde(default)]
    targeting_key: String,
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    status: Option<u64>,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    request: String,
    #[serde(default)]
    channel: String,
}

impl PushStore {
    fn sql(&self) -> worker::Result<SqlStorage> {
        let sql = self.state.storage().sql();
        for statement in SCHEMA {
            sql.exec(statement, None)?;
        }
        Ok(sql)
    }

    fn handle(&self, path: &str, c: Call) -> worker::Result<Value> {
        let sql = self.sql()?;
        let now = now_ms();
        Ok(match path {
            "/subscribe" => {
                let s = c
                    .subscription
                    .ok_or_else(|| worker::Error::RustError("no subscription".into()))?;
                sql.exec(
                    "INSERT INTO subscriptions VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET p256dh = excluded.p256dh, auth = excluded.auth, targeting_key = excluded.targeting_key, updated = excluded.updated",
                    vec![v(&c.id), v(&s.endpoint), v(&s.p256dh), v(&s.auth), v(&c.targeting_key), n(now), n(now)],
                )?;
                json!({"ok": true})
            }
            "/unsubscribe" => {
                let found = !rows(
                    &sql,
                    "SELECT 1 FROM subscriptions WHERE id = ? AND targeting_key = ?",
                    vec![v(&c.id), v(&c.targeting_key)],
                )?
                .is_empty();
                sql.exec(
                    "DELETE FROM subscriptions WHERE id = ? AND targeting_key = ?",
                    vec![v(&c.id), v(&c.targeting_key)],
                )?;
                json!({"removed": found})
            }
            "/audience" => {
                let all = rows(&sql, "SELECT id, targeting_key FROM subscriptions", vec![])?;
                let subs: Vec<Value> = all
                    .into_iter()
                    .filter(|r| {
                        c.keys
                            .as_ref()
                            .is_none_or(|keys| keys.iter().any(|k| *k == text(&r[1])))
                    })
                    .map(|r| json!([r[0], r[1]]))
                    .collect();
                json!({"subs": subs})
            }
            "/enqueue" => {
                let mut fresh = Vec::new();
                for id in &c.ids {
                    let seen = rows(
                        &sql,
                        "SELECT 1 FROM deliveries WHERE notification = ? AND subscription = ?",
                        vec![v(&c.n), v(id)],
                    )?;
                    if seen.is_empty() {
                        sql.exec(
                            "INSERT INTO deliveries VALUES (?, ?, 'queued', 0, 0, NULL, '', ?)",
                            vec![v(&c.n), v(id), n(now)],
                        )?;
                        fresh.push(id.clone());
                    }
                }
                json!({"fresh": fresh})
            }
            "/unqueue" => {
                for id in &c.ids {
                    sql.exec(
                        "DELETE FROM deliveries WHERE notification = ? AND subscription = ? AND state = 'queued' AND attempts = 0",
                        vec![v(&c.n), v(id)],
                    )?;
                }
                json!({"ok": true})
            }
            "/claim" => {
                let d = rows(&sql, "SELECT state, attempts FROM deliveries WHERE notification = ? AND subscription = ?", vec![v(&c.n), v(&c.s)])?;
                let Some(d) = d.first() else {
                    return Ok(json!({"state": "unknown"}));
                };
                if text(&d[0]) != "queued" {
                    return Ok(json!({"state": d[0]}));
                }
                let sub = rows(
                    &sql,
                    "SELECT endpoint, p256dh, auth FROM subscriptions WHERE id = ?",
                    vec![v(&c.s)],
                )?;
                let Some(sub) = sub.first() else {
                    sql.exec("UPDATE deliveries SET state = 'gone', reason = 'unsubscribed', updated = ? WHERE notification = ? AND subscription = ?", vec![n(now), v(&c.n), v(&c.s)])?;
                    return Ok(json!({"state": "gone"}));
                };
                let attempt = num(&d[1]) + 1;
                sql.exec("UPDATE deliveries SET attempts = ?, updated = ? WHERE notification = ? AND subscription = ?", vec![n(attempt), n(now), v(&c.n), v(&c.s)])?;
                json!({"state": "queued", "attempt": attempt,
                       "subscription": {"endpoint": sub[0], "p256dh": sub[1], "auth": sub[2]}})
            }
            "/record" => {
                let status = c.status.map(n).unwrap_or(worker::SqlStorageValue::Null);
                match c.outcome.as_str() {
                    "retry" => sql.exec(
                        "UPDATE deliveries SET retried = retried + 1, last_status = ?, reason = ?, updated = ? WHERE notification = ? AND subscription = ? AND state = 'queued'",
                        vec![status, v(&c.reason), n(now), v(&c.n), v(&c.s)],
                    )?,
                    state @ ("delivered" | "failed" | "gone") => {
                        if state == "gone" {
                            sql.exec("DELETE FROM subscriptions WHERE id = ?", vec![v(&c.s)])?;
                        }
                        // A late duplicate never turns a delivery back into a failure.
                        sql.exec(
                            "UPDATE deliveries SET state = ?, last_status = ?, reason = ?, updated = ? WHERE notification = ? AND subscription = ? AND state = 'queued'",
                            vec![v(state), status, v(&c.reason), n(now), v(&c.n), v(&c.s)],
                        )?
                    }
                    other => return Err(worker::Error::RustError(format!("unknown outcome {other}"))),
                };
                json!({"ok": true})
            }
            "/counts" => {
                let mut counts = Counts::default();
                for r in rows(&sql, "SELECT state, COUNT(*), SUM(retried) FROM deliveries WHERE notification = ? GROUP BY state", vec![v(&c.n)])? {
                    let k = num(&r[1]);
                    counts.targeted += k;
                    counts.retried += num(&r[2]);
                    match text(&r[0]).as_str() {
                        "queued" => counts.queued += k,
                        "delivered" => counts.delivered += k,
                        "failed" => counts.failed += k,
                        "gone" => counts.gone += k,
                        _ => {}
                    }
                }
                serde_json::to_value(counts).map_err(|e| worker::Error::RustError(e.to_string()))?
            }
            "/requeue" => {
                let failed: Vec<Value> = rows(&sql, "SELECT subscription FROM deliveries WHERE notification = ? AND state = 'failed'", vec![v(&c.n)])?
                    .into_iter()
                    .map(|r| r[0].clone())
                    .collect();
                sql.exec("UPDATE deliveries SET state = 'queued', attempts = 0, reason = 'manual retry', updated = ? WHERE notification = ? AND state = 'failed'", vec![n(now), v(&c.n)])?;
                json!({"ids": failed})
            }
            "/ledger/put" => {
                let cutoff = n(now.saturating_sub(RETENTION_MS));
                sql.exec(
                    "DELETE FROM notifications WHERE created < ?",
                    vec![cutoff.clone()],
                )?;
                sql.exec("DELETE FROM deliveries WHERE updated < ?", vec![cutoff])?;
                let existing = rows(
                    &sql,
                    "SELECT request, channel, fanned_out, created FROM notifications WHERE id = ?",
                    vec![v(&c.id)],
                )?;
                match existing.first() {
                    Some(r) => json!({"created": false, "record": record(r)}),
                    None => {
                        sql.exec(
                            "INSERT INTO notifications VALUES (?, ?, ?, 0, ?)",
                            vec![v(&c.id), v(&c.request), v(&c.channel), n(now)],
                        )?;
                        json!({"created": true})
                    }
                }
            }
            "/ledger/get" => {
                let r = rows(
                    &sql,
                    "SELECT request, channel, fanned_out, created FROM notifications WHERE id = ?",
                    vec![v(&c.id)],
                )?;
                json!({"record": r.first().map(|r| record(r))})
            }
            "/ledger/done" => {
                sql.exec(
                    "UPDATE notifications SET fanned_out = 1 WHERE id = ?",
                    vec![v(&c.id)],
                )?;
                json!({"ok": true})
            }
            _ => return Err(worker::Error::RustError(format!("no such call {path}"))),
        })
    }
}

fn record(r: &[Value]) -> Value {
    json!({"request": text(&r[0]), "channel": text(&r[1]), "fannedOut": num(&r[2]) != 0, "createdMs": num(&r[3])})
}

impl DurableObject for PushStore {
    fn new(state: State, _env: Env) -> Self {
        Self { state }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let path = req.path();
        let call: Call = match serde_json::from_str(&req.text().await?) {
            Ok(c) => c,
            Err(e) => return Response::error(format!("bad call: {e}"), 400),
        };
        match self.handle(&path, call) {
            Ok(value) => Response::from_json(&value),
            Err(e) => Response::error(format!("{e}"), 500),
        }
    }
}
