//! The push store (`PushStore`, a SQLite Durable Object): one instance per shard
//! (`push-0` … `push-{PUSH_SHARDS-1}`). A subscription lives in the shard of its endpoint's
//! hash, with the delivery rows of the notifications sent to it; a notification's own
//! record (its request, idempotency) lives in the shard of its id's hash. Every call is one
//! synchronous run of the object, which the runtime commits atomically.
//!
//! The other channels use the same class: a visitor's e-mail contact, its e-mail delivery
//! rows and its in-app read marks live in the shard of the visitor's hash
//! (`notify::inbox::visitor_shard`); the in-app feed (every in-app notification of the last
//! 30 days, with its audience) in one more instance, `inbox-feed`.

use serde::Deserialize;
use serde_json::{json, Value};
use worker::{durable_object, DurableObject, Env, Request, Response, SqlStorage, State};

use crate::host::now_ms;
use crate::host::sql::{n, num, rows, text, v};
use crate::notify::api::Counts;
use crate::notify::{delivery, email};

#[durable_object(fetch)]
pub(crate) struct PushStore {
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
    // E-mail contacts (in the shard of the visitor's hash) and one delivery row per
    // (notification, contact): the de-duplication of at-least-once e-mail delivery.
    "CREATE TABLE IF NOT EXISTS contacts (targeting_key TEXT PRIMARY KEY, email TEXT NOT NULL, source TEXT NOT NULL, updated INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS email_deliveries (notification TEXT NOT NULL, recipient TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL, retried INTEGER NOT NULL, last_status INTEGER, reason TEXT NOT NULL, updated INTEGER NOT NULL, PRIMARY KEY (notification, recipient))",
    "CREATE INDEX IF NOT EXISTS email_deliveries_updated ON email_deliveries (updated)",
    // The attempt holding a pair (`notify::email::lease`): at most one sends at a time.
    "CREATE TABLE IF NOT EXISTS email_leases (notification TEXT NOT NULL, recipient TEXT NOT NULL, until INTEGER NOT NULL, PRIMARY KEY (notification, recipient))",
    // The in-app feed (only in the `inbox-feed` object) and per-visitor marks (in the shard
    // of the visitor's hash): fetched once (`delivered`), read (`read`, 0 = not yet).
    "CREATE TABLE IF NOT EXISTS inbox_feed (id TEXT PRIMARY KEY, request TEXT NOT NULL, created INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS inbox_feed_created ON inbox_feed (created)",
    "CREATE TABLE IF NOT EXISTS inbox_marks (notification TEXT NOT NULL, visitor TEXT NOT NULL, delivered INTEGER NOT NULL, read INTEGER NOT NULL, PRIMARY KEY (notification, visitor))",
    "CREATE INDEX IF NOT EXISTS inbox_marks_delivered ON inbox_marks (delivered)",
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
    #[serde(default)]
    email: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    limit: u64,
    #[serde(default)]
    after: String,
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
                        "SELECT state, attempts, updated FROM deliveries WHERE notification = ? AND subscription = ?",
                        vec![v(&c.n), v(id)],
                    )?;
                    let state = seen.first().map(|r| text(&r[0]));
                    let row = seen
                        .first()
                        .zip(state.as_deref())
                        .map(|(r, s)| delivery_row(s, r));
                    if !delivery::enqueue_takes(row, now) {
                        continue;
                    }
                    // New, or stranded `queued` (its request died before the queue had it).
                    sql.exec(
                        "INSERT INTO deliveries VALUES (?, ?, 'queued', 0, 0, NULL, '', ?) ON CONFLICT(notification, subscription) DO UPDATE SET updated = excluded.updated",
                        vec![v(&c.n), v(id), n(now)],
                    )?;
                    fresh.push(id.clone());
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
                    return Ok(json!({"state": "gone", "unsubscribed": true}));
                };
                let attempt = num(&d[1]) + 1;
                sql.exec("UPDATE deliveries SET attempts = ?, updated = ? WHERE notification = ? AND subscription = ?", vec![n(attempt), n(now), v(&c.n), v(&c.s)])?;
                json!({"state": "queued", "attempt": attempt,
                       "subscription": {"endpoint": sub[0], "p256dh": sub[1], "auth": sub[2]}})
            }
            "/record" => {
                let status = c.status.map(n).unwrap_or(worker::SqlStorageValue::Null);
                let cursor = match c.outcome.as_str() {
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
                // Whether this call moved the delivery (a duplicate message's does not): the
                // metrics count only moves, so they stay exact under redelivery.
                json!({"ok": true, "changed": cursor.rows_written() > 0})
            }
            "/counts" => {
                let mut counts = Counts::default();
                for r in rows(&sql, "SELECT state, COUNT(*), SUM(retried) FROM deliveries WHERE notification = ? GROUP BY state", vec![v(&c.n)])? {
                    counts.add_state(&text(&r[0]), num(&r[1]), num(&r[2]));
                }
                serde_json::to_value(counts).map_err(|e| worker::Error::RustError(e.to_string()))?
            }
            "/requeue" => {
                let mut taken = Vec::new();
                for r in rows(&sql, "SELECT subscription, state, attempts, updated FROM deliveries WHERE notification = ? AND state IN ('failed', 'queued')", vec![v(&c.n)])? {
                    if delivery::retry_takes(delivery_row(&text(&r[1]), &r[1..]), now) {
                        sql.exec("UPDATE deliveries SET state = 'queued', attempts = 0, reason = 'manual retry', updated = ? WHERE notification = ? AND subscription = ?", vec![n(now), v(&c.n), v(&text(&r[0]))])?;
                        taken.push(r[0].clone());
                    }
                }
                json!({"ids": taken})
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
            _ => return self.handle_more(&sql, path, c, now),
        })
    }

    /// The calls of the e-mail and in-app channels.
    fn handle_more(
        &self,
        sql: &SqlStorage,
        path: &str,
        c: Call,
        now: u64,
    ) -> worker::Result<Value> {
        let cutoff = n(now.saturating_sub(RETENTION_MS));
        Ok(match path {
            "/contact/put" => {
                sql.exec(
                    "INSERT INTO contacts VALUES (?, ?, ?, ?) ON CONFLICT(targeting_key) DO UPDATE SET email = excluded.email, source = excluded.source, updated = excluded.updated",
                    vec![v(&c.targeting_key), v(&c.email), v(&c.source), n(now)],
                )?;
                json!({"ok": true})
            }
            "/contact/delete" => {
                let found = !rows(
                    sql,
                    "SELECT 1 FROM contacts WHERE targeting_key = ?",
                    vec![v(&c.targeting_key)],
                )?
                .is_empty();
                sql.exec(
                    "DELETE FROM contacts WHERE targeting_key = ?",
                    vec![v(&c.targeting_key)],
                )?;
                json!({"removed": found})
            }
            "/email/audience" => {
                // `[key, address, updated]` rows: the listed keys (looked up by primary key,
                // `KEYS_PER_LOOKUP` per statement), or one page of every contact by key
                // order after `after` (`next`: the cursor of the next page, null at the end).
                let (found, next) = match &c.keys {
                    Some(keys) => {
                        let mut found = Vec::new();
                        for chunk in keys.chunks(email::KEYS_PER_LOOKUP) {
                            let marks = vec!["?"; chunk.len()].join(", ");
                            let query = format!("SELECT targeting_key, email, updated FROM contacts WHERE targeting_key IN ({marks})");
                            found.extend(rows(sql, &query, chunk.iter().map(|k| v(k)).collect())?);
                        }
                        (found, None)
                    }
                    None => {
                        let limit = c.limit.clamp(1, email::AUDIENCE_PAGE);
                        let page = rows(
                            sql,
                            "SELECT targeting_key, email, updated FROM contacts WHERE targeting_key > ? ORDER BY targeting_key LIMIT ?",
                            vec![v(&c.after), n(limit)],
                        )?;
                        let next = (page.len() as u64 == limit)
                            .then(|| page.last().map(|r| r[0].clone()))
                            .flatten();
                        (page, next)
                    }
                };
                let contacts: Vec<Value> = found.into_iter().map(Value::Array).collect();
                json!({"contacts": contacts, "next": next})
            }
            "/email/enqueue" => {
                sql.exec(
                    "DELETE FROM email_deliveries WHERE updated < ?",
                    vec![cutoff],
                )?;
                sql.exec(
                    "DELETE FROM email_leases WHERE until < ?",
                    vec![n(now.saturating_sub(24 * 3600 * 1000))],
                )?;
                let mut fresh = Vec::new();
                for key in &c.ids {
                    let seen = rows(
                        sql,
                        "SELECT state, attempts, updated FROM email_deliveries WHERE notification = ? AND recipient = ?",
                        vec![v(&c.n), v(key)],
                    )?;
                    let state = seen.first().map(|r| text(&r[0]));
                    let row = seen
                        .first()
                        .zip(state.as_deref())
                        .map(|(r, s)| delivery_row(s, r));
                    if !delivery::enqueue_takes(row, now) {
                        continue;
                    }
                    // New, or stranded `queued` (its request died before the queue had it).
                    sql.exec("INSERT INTO email_deliveries VALUES (?, ?, 'queued', 0, 0, NULL, '', ?) ON CONFLICT(notification, recipient) DO UPDATE SET updated = excluded.updated", vec![v(&c.n), v(key), n(now)])?;
                    fresh.push(key.clone());
                }
                json!({"fresh": fresh})
            }
            "/email/unqueue" => {
                for key in &c.ids {
                    sql.exec("DELETE FROM email_deliveries WHERE notification = ? AND recipient = ? AND state = 'queued' AND attempts = 0", vec![v(&c.n), v(key)])?;
                }
                json!({"ok": true})
            }
            "/email/claim" => {
                let d = rows(sql, "SELECT state, attempts FROM email_deliveries WHERE notification = ? AND recipient = ?", vec![v(&c.n), v(&c.s)])?;
                let Some(d) = d.first() else {
                    return Ok(json!({"state": "unknown"}));
                };
                if text(&d[0]) != "queued" {
                    return Ok(json!({"state": d[0]}));
                }
                let contact = rows(
                    sql,
                    "SELECT email FROM contacts WHERE targeting_key = ?",
                    vec![v(&c.s)],
                )?;
                let Some(contact) = contact.first() else {
                    sql.exec("UPDATE email_deliveries SET state = 'gone', reason = 'contact removed', updated = ? WHERE notification = ? AND recipient = ?", vec![n(now), v(&c.n), v(&c.s)])?;
                    return Ok(json!({"state": "gone", "removed": true}));
                };
                let held = rows(
                    sql,
                    "SELECT until FROM email_leases WHERE notification = ? AND recipient = ?",
                    vec![v(&c.n), v(&c.s)],
                )?;
                match crate::notify::email::lease(held.first().map(|r| num(&r[0])), now) {
                    crate::notify::email::Lease::Busy { retry_in_secs } => {
                        return Ok(json!({"state": "busy", "retryIn": retry_in_secs}));
                    }
                    crate::notify::email::Lease::Take { until_ms } => sql.exec(
                        "INSERT INTO email_leases VALUES (?, ?, ?) ON CONFLICT(notification, recipient) DO UPDATE SET until = excluded.until",
                        vec![v(&c.n), v(&c.s), n(until_ms)],
                    )?,
                };
                let attempt = num(&d[1]) + 1;
                sql.exec("UPDATE email_deliveries SET attempts = ?, updated = ? WHERE notification = ? AND recipient = ?", vec![n(attempt), n(now), v(&c.n), v(&c.s)])?;
                json!({"state": "queued", "attempt": attempt, "email": contact[0]})
            }
            "/email/record" => {
                let status = c.status.map(n).unwrap_or(worker::SqlStorageValue::Null);
                let cursor = match c.outcome.as_str() {
                    "retry" => sql.exec(
                        "UPDATE email_deliveries SET retried = retried + 1, last_status = ?, reason = ?, updated = ? WHERE notification = ? AND recipient = ? AND state = 'queued'",
                        vec![status, v(&c.reason), n(now), v(&c.n), v(&c.s)],
                    )?,
                    state @ ("delivered" | "failed" | "gone") => sql.exec(
                        "UPDATE email_deliveries SET state = ?, last_status = ?, reason = ?, updated = ? WHERE notification = ? AND recipient = ? AND state = 'queued'",
                        vec![v(state), status, v(&c.reason), n(now), v(&c.n), v(&c.s)],
                    )?,
                    other => return Err(worker::Error::RustError(format!("unknown outcome {other}"))),
                };
                // The attempt is over (sent, refused, or waiting for its retry): release the pair.
                let changed = cursor.rows_written() > 0;
                sql.exec(
                    "DELETE FROM email_leases WHERE notification = ? AND recipient = ?",
                    vec![v(&c.n), v(&c.s)],
                )?;
                json!({"ok": true, "changed": changed})
            }
            "/email/requeue" => {
                let mut taken = Vec::new();
                for r in rows(sql, "SELECT recipient, state, attempts, updated FROM email_deliveries WHERE notification = ? AND state IN ('failed', 'queued')", vec![v(&c.n)])? {
                    if delivery::retry_takes(delivery_row(&text(&r[1]), &r[1..]), now) {
                        sql.exec("UPDATE email_deliveries SET state = 'queued', attempts = 0, reason = 'manual retry', updated = ? WHERE notification = ? AND recipient = ?", vec![n(now), v(&c.n), v(&text(&r[0]))])?;
                        taken.push(r[0].clone());
                    }
                }
                json!({"ids": taken})
            }
            "/email/counts" => {
                let mut counts = Counts::default();
                for r in rows(sql, "SELECT state, COUNT(*), SUM(retried) FROM email_deliveries WHERE notification = ? GROUP BY state", vec![v(&c.n)])? {
                    counts.add_state(&text(&r[0]), num(&r[1]), num(&r[2]));
                }
                serde_json::to_value(counts).map_err(|e| worker::Error::RustError(e.to_string()))?
            }
            "/feed/put" => {
                sql.exec("DELETE FROM inbox_feed WHERE created < ?", vec![cutoff])?;
                let created =
                    rows(sql, "SELECT 1 FROM inbox_feed WHERE id = ?", vec![v(&c.id)])?.is_empty();
                if created {
                    sql.exec(
                        "INSERT INTO inbox_feed VALUES (?, ?, ?)",
                        vec![v(&c.id), v(&c.request), n(now)],
                    )?;
                }
                json!({"created": created})
            }
            "/feed/list" => {
                let items: Vec<Value> = rows(
                    sql,
                    "SELECT id, request, created FROM inbox_feed WHERE created >= ? ORDER BY created DESC, id DESC LIMIT ?",
                    vec![cutoff, n(c.limit.max(1))],
                )?
                .into_iter()
                .map(Value::Array)
                .collect();
                json!({"items": items})
            }
            "/feed/get" => {
                let r = rows(
                    sql,
                    "SELECT id, request, created FROM inbox_feed WHERE id = ?",
                    vec![v(&c.id)],
                )?;
                json!({"item": r.into_iter().next().map(Value::Array)})
            }
            "/inbox/seen" => {
                // The first fetch of an item is its in-app delivery; returns which are read.
                sql.exec("DELETE FROM inbox_marks WHERE delivered < ?", vec![cutoff])?;
                let mut read = Vec::new();
                let mut fresh = Vec::new();
                for id in &c.ids {
                    let mark = rows(
                        sql,
                        "SELECT read FROM inbox_marks WHERE notification = ? AND visitor = ?",
                        vec![v(id), v(&c.targeting_key)],
                    )?;
                    match mark.first() {
                        Some(m) if num(&m[0]) > 0 => read.push(id.clone()),
                        Some(_) => {}
                        None => {
                            sql.exec(
                                "INSERT INTO inbox_marks VALUES (?, ?, ?, 0)",
                                vec![v(id), v(&c.targeting_key), n(now)],
                            )?;
                            fresh.push(id.clone());
                        }
                    }
                }
                json!({"read": read, "fresh": fresh})
            }
            "/inbox/read" => {
                let mark = rows(
                    sql,
                    "SELECT read FROM inbox_marks WHERE notification = ? AND visitor = ?",
                    vec![v(&c.id), v(&c.targeting_key)],
                )?;
                let (fresh_delivery, fresh_read) = match mark.first() {
                    None => {
                        sql.exec(
                            "INSERT INTO inbox_marks VALUES (?, ?, ?, ?)",
                            vec![v(&c.id), v(&c.targeting_key), n(now), n(now)],
                        )?;
                        (true, true)
                    }
                    Some(m) if num(&m[0]) == 0 => {
                        sql.exec("UPDATE inbox_marks SET read = ? WHERE notification = ? AND visitor = ?", vec![n(now), v(&c.id), v(&c.targeting_key)])?;
                        (false, true)
                    }
                    Some(_) => (false, false),
                };
                json!({"delivered": fresh_delivery, "read": fresh_read})
            }
            "/inapp/counts" => {
                let r = rows(sql, "SELECT COUNT(*), SUM(CASE WHEN read > 0 THEN 1 ELSE 0 END) FROM inbox_marks WHERE notification = ?", vec![v(&c.n)])?;
                let r = r.first().cloned().unwrap_or_default();
                json!({"delivered": r.first().map(num).unwrap_or(0), "read": r.get(1).map(num).unwrap_or(0)})
            }
            _ => return Err(worker::Error::RustError(format!("no such call {path}"))),
        })
    }
}

/// A delivery row for `notify::delivery`'s decisions: `state` and `[_, attempts, updated]`.
fn delivery_row<'a>(state: &'a str, r: &[Value]) -> delivery::Row<'a> {
    delivery::Row {
        state,
        attempts: r.get(1).map(num).unwrap_or(0),
        updated_ms: r.get(2).map(num).unwrap_or(0),
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
