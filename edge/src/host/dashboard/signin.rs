//! Failed dashboard sign-ins, kept by the flag writer (`host/flags/writer.rs`) in tables of their
//! own: per-client windows for the rate limit, and a bounded list of failure records for the
//! dashboard's Audit section. Apart from the change audit on purpose: anonymous clients
//! cause these, and they must never push an admin's record out. The limit and the record
//! are decided by `crate::dashboard`; this only stores them.

use serde_json::Value;
use worker::{Request, SqlStorage};

use crate::host::sql::{n, num, rows, v};
use crate::dashboard::{self as policy, SigninAttempt, SigninFailures, SigninGate};
use crate::error::EdgeError;

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS signin_clients (client TEXT PRIMARY KEY, start INTEGER NOT NULL, failures INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS signin_clients_start ON signin_clients (start)",
    "CREATE TABLE IF NOT EXISTS signin_audit (seq INTEGER PRIMARY KEY AUTOINCREMENT, record TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS signin_counters (name TEXT PRIMARY KEY, n INTEGER NOT NULL)",
];

fn storage(e: worker::Error) -> EdgeError {
    EdgeError::Internal(format!("sign-in storage: {e}"))
}

fn exec(sql: &SqlStorage, q: &str, args: Vec<worker::SqlStorageValue>) -> Result<(), EdgeError> {
    sql.exec(q, args).map(|_| ()).map_err(storage)
}

fn count(sql: &SqlStorage, name: &str, by: u64) -> Result<(), EdgeError> {
    if by == 0 {
        return Ok(());
    }
    exec(
        sql,
        "INSERT INTO signin_counters VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET n = n + excluded.n",
        vec![v(name), n(by)],
    )
}

fn scalar(sql: &SqlStorage, q: &str, args: Vec<worker::SqlStorageValue>) -> Result<u64, EdgeError> {
    Ok(rows(sql, q, args)
        .map_err(storage)?
        .first()
        .map_or(0, |r| num(&r[0])))
}

/// Serves `/signin` (one attempt → the gate) and `/signin/failures` (recent records).
/// Synchronous after the body is read, so each attempt is one transaction of the object.
pub(crate) async fn route(sql: SqlStorage, path: &str, req: &mut Request) -> Result<Value, EdgeError> {
    let text = req.text().await.map_err(crate::host::internal)?;
    for statement in SCHEMA {
        exec(&sql, statement, vec![])?;
    }
    let bad = |e: serde_json::Error| EdgeError::Internal(format!("sign-in: bad body: {e}"));
    let answer = match path {
        "/signin" => serde_json::to_value(attempt(
            &sql,
            &serde_json::from_str(&text).map_err(bad)?,
            crate::host::now_ms(),
        )?),
        "/signin/failures" => serde_json::to_value(failures(
            &sql,
            serde_json::from_str::<u64>(&text)
                .map_err(bad)?
                .clamp(1, policy::SIGNIN_RECORDS),
        )?),
        other => return Err(EdgeError::NotFound(format!("flag writer: {other}"))),
    };
    answer.map_err(crate::host::internal)
}

fn attempt(sql: &SqlStorage, a: &SigninAttempt, now: u64) -> Result<SigninGate, EdgeError> {
    let window = rows(
        sql,
        "SELECT start, failures FROM signin_clients WHERE client = ?",
        vec![v(&a.client)],
    )
    .map_err(storage)?
    .first()
    .map(|r| (num(&r[0]), num(&r[1])));
    if let Err(retry_after_s) = policy::signin_gate(window, now) {
        count(sql, "limited", 1)?;
        return Ok(SigninGate {
            retry_after_s: Some(retry_after_s),
        });
    }
    if a.ok {
        return Ok(SigninGate::default());
    }
    let (start, failures) = policy::signin_failed(window, now);
    exec(
        sql,
        "INSERT INTO signin_clients VALUES (?, ?, ?) ON CONFLICT(client) DO UPDATE SET start = excluded.start, failures = excluded.failures",
        vec![v(&a.client), n(start), n(failures)],
    )?;
    // Bounds: ended windows go; past the cap, the oldest windows are forgotten (counted).
    exec(
        sql,
        "DELETE FROM signin_clients WHERE start < ?",
        vec![n(now.saturating_sub(policy::SIGNIN_WINDOW_MS))],
    )?;
    let over = scalar(sql, "SELECT COUNT(*) FROM signin_clients", vec![])?
        .saturating_sub(policy::SIGNIN_CLIENTS);
    if over > 0 {
        exec(
            sql,
            "DELETE FROM signin_clients WHERE client IN (SELECT client FROM signin_clients ORDER BY start LIMIT ?)",
            vec![n(over)],
        )?;
        count(sql, "dropped", over)?;
    }
    let record = serde_json::to_string(&policy::signin_record(a, now)).map_err(crate::host::internal)?;
    exec(
        sql,
        "INSERT INTO signin_audit (record) VALUES (?)",
        vec![v(&record)],
    )?;
    let old = scalar(
        sql,
        "SELECT COUNT(*) FROM signin_audit WHERE seq <= (SELECT MAX(seq) FROM signin_audit) - ?",
        vec![n(policy::SIGNIN_RECORDS)],
    )?;
    if old > 0 {
        exec(
            sql,
            "DELETE FROM signin_audit WHERE seq <= (SELECT MAX(seq) FROM signin_audit) - ?",
            vec![n(policy::SIGNIN_RECORDS)],
        )?;
        count(sql, "dropped", old)?;
    }
    count(sql, "failures", 1)?;
    // This failure is answered as a failure; the next attempt meets the limit.
    Ok(SigninGate::default())
}

fn failures(sql: &SqlStorage, limit: u64) -> Result<SigninFailures, EdgeError> {
    let counter = |name: &str| {
        scalar(
            sql,
            "SELECT n FROM signin_counters WHERE name = ?",
            vec![v(name)],
        )
    };
    Ok(SigninFailures {
        records: rows(
            sql,
            "SELECT record FROM signin_audit ORDER BY seq DESC LIMIT ?",
            vec![n(limit)],
        )
        .map_err(storage)?
        .iter()
        .filter_map(|r| serde_json::from_str(r[0].as_str()?).ok())
        .collect(),
        total: counter("failures")?,
        limited: counter("limited")?,
        dropped: counter("dropped")?,
    })
}
