//! The control-plane Durable Object (`FlagWriter`, one per flags key): the only writer of a
//! flag set. Each command is decided by `control::write` against the committed head and
//! stored — document, history entry, audit record, rollout mark — in one synchronous run of
//! the object, which the runtime commits atomically and which no other request interleaves.
//! Workers KV is its replica: after every commit the head is put into `{k}` and `{k}:lkg`.
//! A document someone wrote straight into KV is noticed (on the refresh interval), and is
//! adopted as an audited version (actor `kv`) or refused — and KV restored to the head.

use std::cell::Cell;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use worker::{durable_object, DurableObject, Env, Request, Response, SqlStorage, State};

use crate::host::sql::{n, num, rows, text, v};
use crate::host::{kv, now_ms};
use crate::config::Config;
use crate::error::EdgeError;
use crate::flags::control::write::{self, Commit, Head, History, Outcome};
use crate::flags::control::{self, Answer, HeadAnswer, HeadQuery, HistoryEntry, Versions};
use crate::flags::live::{Finding, Problem};
use crate::flags::store::{self, AuditRecord, Keys, Purge};

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS documents (version TEXT PRIMARY KEY, document TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS history (seq INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, version TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS audit (seq INTEGER PRIMARY KEY AUTOINCREMENT, record TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS purges (seq INTEGER PRIMARY KEY AUTOINCREMENT, record TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS seen (version TEXT PRIMARY KEY, at INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS marks (flag TEXT PRIMARY KEY, fingerprint TEXT NOT NULL)",
];

/// Versions remembered as seen (committed or refused), so that a stale KV read of an old
/// version is never mistaken for a new hand-written document.
const SEEN_LIMIT: u64 = 1000;

/// The flag set's single writer.
#[durable_object(fetch)]
pub(crate) struct FlagWriter {
    state: State,
    env: Env,
    /// A replication loop is running (later commits are picked up by it).
    replicating: Cell<bool>,
    /// When KV was last read for hand-written documents (ms).
    kv_checked_at: Cell<Option<u64>>,
}

impl std::fmt::Debug for FlagWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FlagWriter")
    }
}

fn storage_error(e: worker::Error) -> EdgeError {
    EdgeError::Internal(format!("control-plane storage: {e}"))
}

/// The writer's view of its SQLite tables.
struct Tables {
    sql: SqlStorage,
}

impl Tables {
    fn meta(&self, name: &str) -> Result<Option<String>, EdgeError> {
        let r = rows(
            &self.sql,
            "SELECT value FROM meta WHERE name = ?",
            vec![v(name)],
        )
        .map_err(storage_error)?;
        Ok(r.first().map(|row| text(&row[0])))
    }

    fn set_meta(&self, name: &str, value: &str) -> Result<(), EdgeError> {
        self.sql
            .exec(
                "INSERT INTO meta VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                vec![v(name), v(value)],
            )
            .map(|_| ())
            .map_err(storage_error)
    }

    fn clear_meta(&self, name: &str) -> Result<(), EdgeError> {
        self.sql
            .exec("DELETE FROM meta WHERE name = ?", vec![v(name)])
            .map(|_| ())
            .map_err(storage_error)
    }

    /// The committed head: (version, document).
    fn head(&self) -> Result<Option<(String, String)>, EdgeError> {
        let Some(version) = self.meta("head")? else {
            return Ok(None);
        };
        Ok(self.document_of(&version)?.map(|d| (version, d)))
    }

    fn document_of(&self, version: &str) -> Result<Option<String>, EdgeError> {
        let r = rows(
            &self.sql,
            "SELECT document FROM documents WHERE version = ?",
            vec![v(version)],
        )
        .map_err(storage_error)?;
        Ok(r.first().map(|row| text(&row[0])))
    }

    fn seen(&self, version: &str) -> Result<bool, EdgeError> {
        let r = rows(
            &self.sql,
            "SELECT 1 FROM seen WHERE version = ?",
            vec![v(version)],
        )
        .map_err(storage_error)?;
        Ok(!r.is_empty())
    }

    fn remember(&self, version: &str, now: u64) -> Result<(), EdgeError> {
        self.sql
            .exec(
                "INSERT OR IGNORE INTO seen VALUES (?, ?)",
                vec![v(version), n(now)],
            )
            .and_then(|_| {
                self.sql.exec(
                    "DELETE FROM seen WHERE version NOT IN (SELECT version FROM seen ORDER BY at DESC LIMIT ?)",
                    vec![n(SEEN_LIMIT)],
                )
            })
            .map(|_| ())
            .map_err(storage_error)
    }

    fn audit(&self, record: &AuditRecord, limit: usize) -> Result<(), EdgeError> {
        let json = serde_json::to_string(record).map_err(crate::host::internal)?;
        self.sql
            .exec("INSERT INTO audit (record) VALUES (?)", vec![v(&json)])
            .and_then(|_| {
                self.sql.exec(
                    "DELETE FROM audit WHERE seq <= (SELECT MAX(seq) FROM audit) - ?",
                    vec![n(limit as u64)],
                )
            })
            .map(|_| ())
            .map_err(storage_error)
    }

    /// Stores a commit: document, head, history entry, audit record, rollout mark, seen.
    /// Runs without an await, so the runtime commits it as one transaction.
    fn commit(
        &self,
        c: &Commit,
        actor: &str,
        from: Option<String>,
        config: &Config,
        now: u64,
    ) -> Result<(), EdgeError> {
        let sql = &self.sql;
        let run = |q: &str, args: Vec<worker::SqlStorageValue>| {
            sql.exec(q, args).map(|_| ()).map_err(storage_error)
        };
        run(
            "INSERT OR IGNORE INTO documents VALUES (?, ?)",
            vec![v(&c.version), v(&c.document)],
        )?;
        run(
            "INSERT INTO history (at, version) VALUES (?, ?)",
            vec![n(now), v(&c.version)],
        )?;
        run(
            "DELETE FROM history WHERE seq <= (SELECT MAX(seq) FROM history) - ?",
            vec![n(config.history_limit.max(1) as u64)],
        )?;
        self.set_meta("head", &c.version)?;
        // Documents no history entry names are gone for good (the head is always in it).
        run(
            "DELETE FROM documents WHERE version NOT IN (SELECT version FROM history)",
            vec![],
        )?;
        if let Some((flag, fingerprint)) = &c.mark {
            run(
                "INSERT INTO marks VALUES (?, ?) ON CONFLICT(flag) DO UPDATE SET fingerprint = excluded.fingerprint",
                vec![v(flag), v(fingerprint)],
            )?;
        }
        self.remember(&c.version, now)?;
        self.audit(
            &AuditRecord {
                at_ms: now,
                actor: actor.to_owned(),
                action: c.action.clone(),
                flag: c.flag.clone(),
                from_version: from,
                to_version: c.version.clone(),
                summary: c.summary.clone(),
            },
            config.audit_limit,
        )
    }

    fn purges_seq(&self) -> Result<u64, EdgeError> {
        let r = rows(&self.sql, "SELECT MAX(seq) FROM purges", vec![]).map_err(storage_error)?;
        Ok(r.first().map_or(0, |row| num(&row[0])))
    }

    fn purges(&self) -> Result<Vec<Purge>, EdgeError> {
        Ok(
            rows(&self.sql, "SELECT record FROM purges ORDER BY seq", vec![])
                .map_err(storage_error)?
                .iter()
                .filter_map(|row| serde_json::from_str(row[0].as_str()?).ok())
                .collect(),
        )
    }

    fn add_purge(&self, purge: &Purge) -> Result<(), EdgeError> {
        let json = serde_json::to_string(purge).map_err(crate::host::internal)?;
        self.sql
            .exec("INSERT INTO purges (record) VALUES (?)", vec![v(&json)])
            .and_then(|_| {
                self.sql.exec(
                    "DELETE FROM purges WHERE seq <= (SELECT MAX(seq) FROM purges) - ?",
                    vec![n(store::PURGE_LIMIT as u64)],
                )
            })
            .map(|_| ())
            .map_err(storage_error)
    }
}

impl History for Tables {
    fn document(&self, version: &str) -> Option<String> {
        self.document_of(version).ok().flatten()
    }
    fn mark(&self, flag: &str) -> Option<String> {
        rows(
            &self.sql,
            "SELECT fingerprint FROM marks WHERE flag = ?",
            vec![v(flag)],
        )
        .ok()?
        .first()
        .map(|row| text(&row[0]))
    }
}

impl FlagWriter {
    fn config(&self) -> Result<Config, EdgeError> {
        Config::from_lookup(|name| self.env.var(name).ok().map(|v| v.to_string()))
    }

    fn tables(&self) -> Result<Tables, EdgeError> {
        let sql = self.state.storage().sql();
        for statement in SCHEMA {
            sql.exec(statement, None).map_err(storage_error)?;
        }
        Ok(Tables { sql })
    }

    /// Decides and stores one command (no await between reading the head and storing).
    fn apply(&self, request: &control::Request, config: &Config) -> Result<Answer, EdgeError> {
        let tables = self.tables()?;
        let now = now_ms();
        let head = tables.head()?;
        let previous = head.as_ref().map(|(v, _)| v.clone());
        let outcome = write::decide(
            head.as_ref()
                .map(|(version, document)| Head { version, document }),
            request,
            &tables,
            now,
        )?;
        match outcome {
            Outcome::Commit(c) => {
                tables.commit(&c, &request.actor, previous.clone(), config, now)?;
                Ok(Answer {
                    version: Some(c.version),
                    previous_version: previous,
                    committed: true,
                    action: Some(c.action),
                    summary: c.summary,
                    warnings: c.warnings,
                })
            }
            Outcome::Purge { purge, summary } => {
                tables.add_purge(&purge)?;
                tables.audit(
                    &AuditRecord {
                        at_ms: now,
                        actor: request.actor.clone(),
                        action: "purge".into(),
                        flag: None,
                        from_version: previous.clone(),
                        to_version: previous.clone().unwrap_or_else(|| "none".into()),
                        summary: summary.clone(),
                    },
                    config.audit_limit,
                )?;
                Ok(Answer {
                    version: previous.clone(),
                    previous_version: previous,
                    committed: true,
                    action: Some("purge".into()),
                    summary,
                    warnings: Vec::new(),
                })
            }
            Outcome::Unchanged(summary) => Ok(Answer {
                version: previous.clone(),
                previous_version: previous,
                committed: false,
                action: None,
                summary,
                warnings: Vec::new(),
            }),
        }
    }

    /// Reads KV for a document the writer has not seen (at most once per refresh interval,
    /// always when nothing is committed yet) and adopts or refuses it.
    async fn check_kv(&self, config: &Config) -> Result<(), EdgeError> {
        let now = now_ms();
        let tables = self.tables()?;
        let first = tables.meta("head")?.is_none();
        let due = self
            .kv_checked_at
            .get()
            .is_none_or(|at| now.saturating_sub(at) >= config.refresh_ms || now < at);
        if !(first || due) {
            return Ok(());
        }
        self.kv_checked_at.set(Some(now));
        let keys = Keys::new(&config.flags_key);
        let Some(text) = kv(&self.env)?
            .get(keys.active())
            .text()
            .await
            .map_err(crate::host::internal)?
        else {
            return Ok(());
        };
        let version = store::version_of(&text);
        // Synchronous from here: re-read what another request may have stored meanwhile.
        let tables = self.tables()?;
        if tables.seen(&version)? {
            return Ok(());
        }
        let head = tables.head()?;
        let previous = head.as_ref().map(|(v, _)| v.clone());
        let decided = write::adopt(
            head.as_ref()
                .map(|(version, document)| Head { version, document }),
            &text,
        );
        match decided {
            Ok(Outcome::Commit(c)) => {
                tables.commit(&c, "kv", previous, config, now)?;
                tables.clear_meta("kv_refused")?;
            }
            Ok(_) => tables.remember(&version, now)?,
            Err(e) => {
                let errors = match e {
                    EdgeError::InvalidFlagSet(f) => f,
                    other => vec![Finding {
                        path: String::new(),
                        message: other.to_string(),
                    }],
                };
                let problem = Problem {
                    version: version.clone(),
                    errors,
                    seen_at_ms: now,
                };
                tables.set_meta(
                    "kv_refused",
                    &serde_json::to_string(&problem).map_err(crate::host::internal)?,
                )?;
                tables.remember(&version, now)?;
                // KV no longer holds the head: put it back.
                tables.clear_meta("kv_version")?;
            }
        }
        Ok(())
    }

    /// Puts the head (and the purge list) into KV until KV holds the newest. One loop at a
    /// time: commits made while it awaits are picked up by its next round, so KV never ends
    /// on an older version than the head.
    async fn replicate(&self, config: &Config) -> Result<(), EdgeError> {
        if self.replicating.replace(true) {
            return Ok(());
        }
        let result = self.replicate_rounds(config).await;
        self.replicating.set(false);
        result
    }

    async fn replicate_rounds(&self, config: &Config) -> Result<(), EdgeError> {
        let keys = Keys::new(&config.flags_key);
        let store = kv(&self.env)?;
        let put = |key: String, value: String| {
            let store = &store;
            async move {
                store
                    .put(&key, value)
                    .map_err(crate::host::internal)?
                    .execute()
                    .await
                    .map_err(crate::host::internal)
            }
        };
        for _ in 0..8 {
            let tables = self.tables()?;
            let head = tables.head()?;
            let kv_version = tables.meta("kv_version")?;
            let purges_seq = tables.purges_seq()?.to_string();
            let kv_purges = tables.meta("kv_purges_seq")?;
            let mut done = true;
            if let Some((version, document)) = head.filter(|(v, _)| Some(v) != kv_version.as_ref())
            {
                put(keys.active().to_owned(), document.clone()).await?;
                put(keys.last_good(), document).await?;
                self.tables()?.set_meta("kv_version", &version)?;
                done = false;
            }
            if kv_purges.as_deref() != Some(purges_seq.as_str()) {
                let list = serde_json::to_string(&tables.purges()?).map_err(crate::host::internal)?;
                put(store::purges_key(&config.flags_key), list).await?;
                self.tables()?.set_meta("kv_purges_seq", &purges_seq)?;
                done = false;
            }
            if done {
                break;
            }
        }
        Ok(())
    }

    fn head_answer(&self, q: &HeadQuery) -> Result<HeadAnswer, EdgeError> {
        let tables = self.tables()?;
        let head = tables.head()?;
        let purges_seq = tables.purges_seq()?;
        let kv_refused = tables
            .meta("kv_refused")?
            .and_then(|t| serde_json::from_str(&t).ok());
        Ok(HeadAnswer {
            document: head
                .as_ref()
                .filter(|(v, _)| q.have.as_ref() != Some(v))
                .map(|(_, d)| d.clone()),
            version: head.map(|(v, _)| v),
            purges: (q.purges_seq != Some(purges_seq))
                .then(|| tables.purges())
                .transpose()?,
            purges_seq,
            kv_refused,
        })
    }

    fn versions(&self) -> Result<Versions, EdgeError> {
        let tables = self.tables()?;
        let versions = rows(
            &tables.sql,
            "SELECT version, at FROM history ORDER BY seq DESC",
            vec![],
        )
        .map_err(storage_error)?
        .iter()
        .map(|row| HistoryEntry {
            version: text(&row[0]),
            activated_at_ms: num(&row[1]),
        })
        .collect();
        Ok(Versions {
            current: tables.meta("head")?,
            versions,
        })
    }

    fn audit(&self, limit: u64) -> Result<control::Audit, EdgeError> {
        let tables = self.tables()?;
        let records = rows(
            &tables.sql,
            "SELECT record FROM audit ORDER BY seq DESC LIMIT ?",
            vec![n(limit)],
        )
        .map_err(storage_error)?
        .iter()
        .filter_map(|row| serde_json::from_str(row[0].as_str()?).ok())
        .collect();
        Ok(control::Audit { records })
    }

    async fn route(&self, mut req: Request, config: &Config) -> Result<Value, EdgeError> {
        let path = req.path();
        // Failed dashboard sign-ins have tables of their own and touch no flag set.
        if path == "/signin" || path.starts_with("/signin/") {
            return crate::host::dashboard::signin::route(self.state.storage().sql(), &path, &mut req).await;
        }
        // A document written straight into KV is taken in before anything is decided, so a
        // command never applies to a head that a newer hand-written document replaced.
        if let Err(e) = self.check_kv(config).await {
            worker::console_error!("flag writer: reading KV failed: {e}");
        }
        let value = match path.as_str() {
            "/command" => {
                let request: control::Request = body(&mut req).await?;
                to_value(&self.apply(&request, config)?)?
            }
            "/head" => {
                let q: HeadQuery = body(&mut req).await?;
                to_value(&self.head_answer(&q)?)?
            }
            "/document" => {
                // `null`: the head; a version: that version from the history.
                let version: Option<String> = body(&mut req).await?;
                let tables = self.tables()?;
                match version {
                    None => to_value(&tables.head()?)?,
                    Some(v) => to_value(&tables.document_of(&v)?.map(|d| (v, d)))?,
                }
            }
            "/versions" => to_value(&self.versions()?)?,
            "/audit" => {
                let limit: u64 = body(&mut req).await?;
                to_value(&self.audit(limit.clamp(1, 1000))?)?
            }
            _ => return Err(EdgeError::NotFound(format!("flag writer: {path}"))),
        };
        Ok(value)
    }
}

fn to_value<T: Serialize>(value: &T) -> Result<Value, EdgeError> {
    serde_json::to_value(value).map_err(crate::host::internal)
}

async fn body<T: DeserializeOwned>(req: &mut Request) -> Result<T, EdgeError> {
    let text = req.text().await.map_err(crate::host::internal)?;
    serde_json::from_str(&text)
        .map_err(|e| EdgeError::Internal(format!("flag writer: bad request body: {e}")))
}

impl DurableObject for FlagWriter {
    fn new(state: State, env: Env) -> Self {
        Self {
            state,
            env,
            replicating: Cell::new(false),
            kv_checked_at: Cell::new(None),
        }
    }

    /// Every answer is 200 with `{"Ok": …}` or `{"Err": EdgeError}`: the worker that asked
    /// turns the error into the visitor's status in one place (`error.rs`).
    async fn fetch(&self, req: Request) -> worker::Result<Response> {
        let result = match self.config() {
            Ok(config) => {
                let result = self.route(req, &config).await;
                // After every call, not only commits: a refused KV document is overwritten
                // and a failed earlier put is retried. KV catching up later is fine; the
                // commit itself stands.
                if let Err(e) = self.replicate(&config).await {
                    worker::console_error!("flag writer: replicating to KV failed: {e}");
                }
                result
            }
            Err(e) => Err(e),
        };
        Response::from_json(&result)
    }
}
