//! Background-sync policy (Workbox's background sync, stricter): what an outbox entry holds,
//! the `Idempotency-Key` it carries from its first attempt on, how a server answer is
//! classified, backoff, the per-entry retry budget, retention, which entries are held for the
//! app (dead letters: nothing is dropped without a record the app can read), and the JSON the
//! app and the page see. Plain Rust; the IndexedDB and fetch glue is in `host::outbox`.

use serde_json::{json, Value};

use crate::config::BackgroundSyncConfig;
use crate::json::Obj;

/// Header that makes a replayed write safe: the server answers a repeated key with the
/// original result instead of acting twice.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// Why an entry is held for the app (its `held` field). A held entry is never sent again by
/// itself and holds back no other write; it stays, with its body, until the app retries or
/// discards it.
pub mod held {
    /// The server's answer needs the app (`last_status`): a redirect (0: replays do not
    /// follow redirects, and the browser hides a redirect's status), or a 4xx other than 408
    /// and 429 — 401/403 (signed out), 409/428 (conflict, precondition), 400/422 (refused).
    pub const ANSWER: &str = "answer";
    /// Its server errors reached the queue's `max_server_failures`.
    pub const RETRIES: &str = "retries";
    /// It was older than its queue's retention when a replay reached it (never sent).
    pub const RETENTION: &str = "retention";
}

/// One queued write, as stored in IndexedDB (the body is stored beside it as bytes).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Assigned by the store (ascending: the replay order within a queue).
    pub id: Option<u64>,
    pub queue: String,
    pub method: String,
    pub url: String,
    /// Request headers, including the idempotency key.
    pub headers: Vec<(String, String)>,
    pub idempotency_key: String,
    /// When the write was first attempted (ms since the epoch, service-worker clock).
    pub queued_at: f64,
    /// Failed attempts so far (network errors included).
    pub attempts: u32,
    /// Server errors (5xx, 408, 429) so far: what the backoff grows with.
    pub server_failures: u32,
    /// The last failure: an HTTP status, or `None` for a network error.
    pub last_status: Option<u16>,
    /// Backoff: no attempt before this time (ms since the epoch; 0 = now).
    pub not_before: f64,
    /// Set when the entry is held for the app: one of [`held`].
    pub held: Option<String>,
}

impl Entry {
    /// A new entry for a write. Adds an `Idempotency-Key` unless the app sent one (the app's
    /// own key is kept: it may already have used it).
    pub fn new(
        queue: &str,
        method: &str,
        url: &str,
        mut headers: Vec<(String, String)>,
        now_ms: f64,
        new_key: impl FnOnce() -> String,
    ) -> Self {
        let existing = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(IDEMPOTENCY_HEADER))
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty());
        let key = match existing {
            Some(k) => k,
            None => {
                headers.retain(|(k, _)| !k.eq_ignore_ascii_case(IDEMPOTENCY_HEADER));
                let k = new_key();
                headers.push((IDEMPOTENCY_HEADER.to_owned(), k.clone()));
                k
            }
        };
        Self {
            id: None,
            queue: queue.to_owned(),
            method: method.to_ascii_uppercase(),
            url: url.to_owned(),
            headers,
            idempotency_key: key,
            queued_at: now_ms,
            attempts: 0,
            server_failures: 0,
            last_status: None,
            not_before: 0.0,
            held: None,
        }
    }

    /// The stored form (camelCase JSON; no `id` until the store assigned one).
    pub fn to_value(&self) -> Value {
        let mut v = json!({
            "queue": self.queue,
            "method": self.method,
            "url": self.url,
            "headers": self.headers.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
            "idempotencyKey": self.idempotency_key,
            "queuedAt": self.queued_at,
            "attempts": self.attempts,
            "serverFailures": self.server_failures,
            "lastStatus": self.last_status,
            "notBefore": self.not_before,
            "held": self.held,
        });
        if let Some(id) = self.id {
            v["id"] = json!(id);
        }
        v
    }

    /// Reads the stored form (fields added by later versions are ignored, missing counters
    /// are zero).
    pub fn from_value(v: &Value) -> Result<Self, String> {
        let o = Obj::new(v, "outbox entry")?;
        let mut headers = Vec::new();
        for pair in o.arr("headers")?.into_iter().flatten() {
            match pair.as_array().map(Vec::as_slice) {
                Some([Value::String(k), Value::String(v)]) => headers.push((k.clone(), v.clone())),
                _ => return Err("outbox entry.headers: expected [name, value] pairs".into()),
            }
        }
        let small = |n: Option<u64>| n.map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX));
        Ok(Self {
            id: o.u64("id")?,
            queue: o.req_str("queue")?.to_owned(),
            method: o.req_str("method")?.to_owned(),
            url: o.req_str("url")?.to_owned(),
            headers,
            idempotency_key: o.req_str("idempotencyKey")?.to_owned(),
            queued_at: o.f64("queuedAt")?.unwrap_or(0.0),
            attempts: small(o.u64("attempts")?),
            server_failures: small(o.u64("serverFailures")?),
            last_status: o.u64("lastStatus")?.and_then(|s| u16::try_from(s).ok()),
            not_before: o.f64("notBefore")?.unwrap_or(0.0),
            held: o.str("held")?.map(str::to_owned),
        })
    }

    /// Whether the entry has outlived its queue's retention.
    pub fn expired(&self, cfg: &BackgroundSyncConfig, now_ms: f64) -> bool {
        let retention_ms = cfg.retention_minutes.saturating_mul(60_000) as f64;
        now_ms - self.queued_at > retention_ms
    }

    /// Records an attempt that did not send the entry. A server error sets a backoff that
    /// grows with the server errors so far, and the last one its queue allows holds the
    /// entry; a network error sets none (the next attempt waits for the browser to be back
    /// online instead) and does not grow it; an answer for the app ([`Verdict::Hold`]) holds
    /// the entry.
    pub fn failed(&mut self, outcome: Outcome, cfg: &BackgroundSyncConfig, now_ms: f64) {
        self.attempts = self.attempts.saturating_add(1);
        self.last_status = match outcome {
            Outcome::Status(s) => Some(s),
            Outcome::NetworkError => None,
        };
        self.not_before = 0.0;
        match classify(outcome) {
            Verdict::RetryServer => {
                self.server_failures = self.server_failures.saturating_add(1);
                if self.server_failures >= cfg.max_server_failures {
                    self.held = Some(held::RETRIES.into());
                } else {
                    self.not_before = now_ms + backoff_ms(cfg, self.server_failures) as f64;
                }
            }
            Verdict::Hold => {
                self.held = Some(held::ANSWER.into());
            }
            _ => {}
        }
    }

    /// The app asked to send a held entry again: it rejoins its queue at its old place, with
    /// a fresh retry budget, and its retention counts from now.
    pub fn release(&mut self, now_ms: f64) {
        self.held = None;
        self.server_failures = 0;
        self.not_before = 0.0;
        self.queued_at = now_ms;
    }

    /// Holds an entry a replay found past its retention: it is never sent by itself.
    pub fn expire(&mut self) {
        self.held = Some(held::RETENTION.into());
    }

    /// What the page is told about an entry: the stored form without its headers (they may
    /// hold secrets; the body is stored beside it, never here).
    pub fn summary(&self) -> Value {
        let mut v = self.to_value();
        v["headers"] = Value::Null;
        v
    }
}

/// What an attempt to send a write produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The server answered with this status.
    Status(u16),
    /// No answer (offline, DNS, connection reset…).
    NetworkError,
}

/// What to do with an entry after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The server accepted it (2xx): remove it.
    Sent,
    /// The answer needs the app (a redirect, a 4xx other than 408/429): hold the entry
    /// ([`held::ANSWER`]) and tell the pages; the writes behind it go on.
    Hold,
    /// A server-side problem (5xx, 408, 429): keep it, retry after a backoff.
    RetryServer,
    /// No answer: keep it, retry when the browser is back online.
    RetryOffline,
}

/// Classifies an attempt. 408 and 429 are "try again later" answers, so they are retried
/// like 5xx. Only a 2xx counts as sent: a redirect (status 0 when not followed, as replays
/// do) may be a sign-in page, and a 1xx is not final.
pub fn classify(outcome: Outcome) -> Verdict {
    match outcome {
        Outcome::NetworkError => Verdict::RetryOffline,
        Outcome::Status(408 | 429 | 500..) => Verdict::RetryServer,
        Outcome::Status(200..=299) => Verdict::Sent,
        Outcome::Status(_) => Verdict::Hold,
    }
}

/// The wait before the next attempt after `attempts` failures: `initial · 2^(attempts-1)`,
/// capped.
pub fn backoff_ms(cfg: &BackgroundSyncConfig, attempts: u32) -> u64 {
    let exp = attempts.saturating_sub(1).min(32);
    cfg.initial_retry_ms
        .saturating_mul(1u64 << exp)
        .min(cfg.max_retry_ms)
}

/// What a replay does next.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Hold these entries (past their retention: [`held::RETENTION`]) and tell the pages;
    /// then plan again.
    Expire(Vec<u64>),
    /// Send the entry with this id.
    Send(u64),
    /// Every sendable head is backing off: wait this long, then plan again.
    Wait(u64),
    /// Nothing more to do in this replay.
    Done,
}

/// What one replay has seen so far, per queue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayState {
    /// Queues this replay has given up on (offline, or out of retries).
    pub stopped: Vec<String>,
    /// Server failures per queue in this replay.
    pub server_failures: Vec<(String, u32)>,
}

impl ReplayState {
    fn failures(&self, queue: &str) -> u32 {
        self.server_failures
            .iter()
            .find(|(q, _)| q == queue)
            .map_or(0, |(_, n)| *n)
    }

    /// Records the verdict of an attempt on `queue`.
    pub fn record(&mut self, queue: &str, verdict: Verdict) {
        match verdict {
            Verdict::RetryOffline => self.stop(queue),
            Verdict::RetryServer => {
                match self.server_failures.iter_mut().find(|(q, _)| q == queue) {
                    Some((_, n)) => *n += 1,
                    None => self.server_failures.push((queue.to_owned(), 1)),
                }
            }
            Verdict::Sent | Verdict::Hold => {}
        }
    }

    fn stop(&mut self, queue: &str) {
        if !self.stopped.iter().any(|q| q == queue) {
            self.stopped.push(queue.to_owned());
        }
    }
}

/// The entries still to be sent (not held), in id order.
pub fn pending(entries: &[Entry]) -> impl Iterator<Item = &Entry> {
    entries.iter().filter(|e| e.held.is_none())
}

/// Plans the next step of a replay over the stored entries (in id order). Each queue is
/// strictly ordered: only its oldest pending entry may be sent, and a failure holds the ones
/// behind it until the entry is sent or held (its retry budget bounds how long). Held entries
/// are skipped. Queues do not hold each other up. Among ready heads the oldest goes first.
pub fn plan(
    entries: &[Entry],
    now_ms: f64,
    state: &mut ReplayState,
    cfg: impl Fn(&str) -> BackgroundSyncConfig,
) -> Plan {
    let expired: Vec<u64> = pending(entries)
        .filter(|e| e.expired(&cfg(&e.queue), now_ms))
        .filter_map(|e| e.id)
        .collect();
    if !expired.is_empty() {
        return Plan::Expire(expired);
    }
    let mut heads: Vec<&Entry> = Vec::new();
    for e in pending(entries) {
        if !heads.iter().any(|h| h.queue == e.queue) {
            heads.push(e);
        }
    }
    let mut wait: Option<u64> = None;
    for head in heads {
        let Some(id) = head.id else { continue };
        if state.stopped.contains(&head.queue) {
            continue;
        }
        if head.not_before <= now_ms {
            return Plan::Send(id);
        }
        let q = cfg(&head.queue);
        if state.failures(&head.queue) >= q.retries_per_replay {
            state.stop(&head.queue);
            continue;
        }
        let ms = (head.not_before - now_ms).ceil() as u64;
        wait = Some(wait.map_or(ms, |w| w.min(ms)));
    }
    wait.map_or(Plan::Done, Plan::Wait)
}

/// Whether a live write waits for the outbox lock rather than taking it only if free (and
/// queueing otherwise): only when nothing is pending anywhere — then whoever holds the lock
/// (a replay started by the worker's start or the page's `online`) has nothing to send or
/// wait for and lets go at once, and the app gets the server's answer instead of a needless
/// 202. With anything pending the write queues behind it, as ordering requires (a replay may
/// be waiting out a backoff). Under the lock the write checks the queue again.
pub fn waits_for_lock(entries: &[Entry]) -> bool {
    pending(entries).next().is_none()
}

/// Position of a pending entry in its queue (1 = next to be sent; held entries do not count).
pub fn position(entries: &[Entry], id: u64) -> usize {
    let Some(queue) = pending(entries)
        .find(|e| e.id == Some(id))
        .map(|e| &e.queue)
    else {
        return 0;
    };
    pending(entries)
        .filter(|e| &e.queue == queue && e.id.is_some_and(|i| i <= id))
        .count()
}

/// The 202 answer the app gets for a queued write: its summary, `queued` and its position.
pub fn queued_body(entry: &Entry, position: usize) -> Value {
    let mut v = entry.summary();
    v["queued"] = true.into();
    v["position"] = position.into();
    v
}

/// Messages posted to every page of the origin.
pub mod message {
    use super::*;

    /// The outbox now holds these entries (the held ones — the dead letters — with `held`
    /// set); `count` is how many are still to be sent.
    pub fn state(entries: &[Entry]) -> Value {
        json!({
            "type": "edgeflags:outbox",
            "count": pending(entries).count(),
            "entries": entries.iter().map(Entry::summary).collect::<Vec<_>>(),
        })
    }

    /// A queued write reached the server and was accepted.
    pub fn sent(entry: &Entry, status: u16) -> Value {
        json!({"type": "edgeflags:outbox-sent", "status": status, "entry": entry.summary()})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> BackgroundSyncConfig {
        BackgroundSyncConfig {
            retention_minutes: 10,
            initial_retry_ms: 500,
            max_retry_ms: 3000,
            retries_per_replay: 3,
            max_server_failures: 4,
            ..BackgroundSyncConfig::fallback("orders")
        }
    }

    #[test]
    fn a_new_entry_gets_an_idempotency_key_once() {
        let e = Entry::new(
            "orders",
            "post",
            "http://h/api/orders",
            vec![("content-type".into(), "application/json".into())],
            1.0,
            || "k-1".into(),
        );
        assert_eq!(e.idempotency_key, "k-1");
        assert_eq!(e.method, "POST");
        assert_eq!(
            e.headers,
            vec![
                ("content-type".to_owned(), "application/json".to_owned()),
                ("idempotency-key".to_owned(), "k-1".to_owned())
            ]
        );
        // The app's own key is kept and no second one is added.
        let own = Entry::new(
            "orders",
            "POST",
            "u",
            vec![("Idempotency-Key".into(), "app-7".into())],
            1.0,
            || panic!("must not be called"),
        );
        assert_eq!(own.idempotency_key, "app-7");
        assert_eq!(own.headers.len(), 1);
        // An empty header is replaced.
        let empty = Entry::new(
            "orders",
            "POST",
            "u",
            vec![("idempotency-key".into(), String::new())],
            1.0,
            || "k-2".into(),
        );
        assert_eq!(
            empty.headers,
            vec![("idempotency-key".to_owned(), "k-2".to_owned())]
        );
    }

    #[test]
    fn the_entry_survives_the_store_round_trip() {
        let mut e = Entry::new("orders", "POST", "u", vec![], 5.0, || "k".into());
        e.id = Some(3);
        e.failed(Outcome::Status(503), &cfg(), 5.0);
        e.headers.push(("x-a".into(), "1".into()));
        let back = Entry::from_value(&e.to_value()).unwrap();
        assert_eq!(back, e);
        let mut h = e.clone();
        h.failed(Outcome::Status(409), &cfg(), 6.0);
        assert_eq!(Entry::from_value(&h.to_value()).unwrap(), h);
        assert_eq!((back.attempts, back.last_status), (1, Some(503)));
        e.id = None;
        assert!(e.to_value().get("id").is_none(), "the store assigns ids");
        // A record written without the optional fields still reads.
        let minimal = Entry::from_value(&json!({"queue": "q", "method": "POST", "url": "u",
            "headers": [["a", "b"]], "idempotencyKey": "k", "queuedAt": 1}))
        .unwrap();
        assert_eq!(
            (
                minimal.id,
                minimal.attempts,
                minimal.not_before,
                minimal.held
            ),
            (None, 0, 0.0, None)
        );
        assert!(Entry::from_value(&json!({"queue": "q"})).is_err());
        let bad_headers = json!({"queue": "q", "method": "POST", "url": "u",
            "headers": [["a"]], "idempotencyKey": "k"});
        assert!(Entry::from_value(&bad_headers).is_err());
    }

    #[test]
    fn only_a_2xx_is_sent_and_answers_for_the_app_are_held_never_dropped() {
        use Verdict::*;
        let cases = [
            (200, Sent),
            (201, Sent),
            (204, Sent),
            // A redirect not followed (replays): status 0, or a 3xx.
            (0, Hold),
            (301, Hold),
            (302, Hold),
            (303, Hold),
            (307, Hold),
            (400, Hold),
            (401, Hold),
            (403, Hold),
            (404, Hold),
            (409, Hold),
            (422, Hold),
            (428, Hold),
            (408, RetryServer),
            (429, RetryServer),
            (500, RetryServer),
            (503, RetryServer),
        ];
        for (status, want) in cases {
            assert_eq!(classify(Outcome::Status(status)), want, "{status}");
        }
        assert_eq!(classify(Outcome::NetworkError), RetryOffline);
    }

    #[test]
    fn an_answer_for_the_app_holds_the_entry_and_uses_no_retry_budget() {
        for status in [0, 302, 401, 403, 409, 422, 428] {
            let mut e = Entry::new("orders", "POST", "u", vec![], 0.0, || "k".into());
            e.failed(Outcome::Status(status), &cfg(), 5.0);
            assert_eq!(e.held.as_deref(), Some(held::ANSWER), "{status}");
            assert_eq!((e.last_status, e.attempts), (Some(status), 1));
            assert_eq!((e.server_failures, e.not_before), (0, 0.0), "{status}");
        }
        // Retries and network errors hold nothing.
        let mut e = Entry::new("orders", "POST", "u", vec![], 0.0, || "k".into());
        e.failed(Outcome::Status(503), &cfg(), 5.0);
        e.failed(Outcome::NetworkError, &cfg(), 5.0);
        assert_eq!(e.held, None);
    }

    #[test]
    fn the_retry_budget_holds_an_entry_at_its_last_server_error() {
        // (max_server_failures, server errors, network errors) -> held after that many?
        let cases = [
            (1, 1, 0, true),
            (4, 3, 0, false),
            (4, 4, 0, true),
            (4, 3, 20, false),
            (10, 9, 0, false),
            (10, 10, 0, true),
        ];
        for (budget, server, offline, want) in cases {
            let c = BackgroundSyncConfig {
                max_server_failures: budget,
                ..cfg()
            };
            let mut e = Entry::new("orders", "POST", "u", vec![], 0.0, || "k".into());
            for _ in 0..offline {
                e.failed(Outcome::NetworkError, &c, 1.0);
            }
            for i in 0..server {
                e.failed(Outcome::Status(if i % 2 == 0 { 503 } else { 429 }), &c, 1.0);
            }
            let held_for = e.held.as_deref();
            assert_eq!(
                held_for == Some(held::RETRIES),
                want,
                "{budget} {server} {offline}"
            );
            if want {
                assert_eq!(
                    e.not_before, 0.0,
                    "a held entry waits for the app, not a backoff"
                );
            }
        }
    }

    #[test]
    fn a_released_entry_rejoins_its_queue_with_a_fresh_budget() {
        let c = |q: &str| cfg_for(q);
        let mut a1 = entry(1, "orders", 0.0);
        for _ in 0..4 {
            a1.failed(Outcome::Status(503), &cfg(), 10.0);
        }
        assert_eq!(
            a1.held.as_deref(),
            Some(held::RETRIES),
            "its budget is used up"
        );
        let a2 = entry(2, "orders", 8_999_000.0);
        let mut st = ReplayState::default();
        assert_eq!(
            plan(&[a1.clone(), a2.clone()], 20.0, &mut st, c),
            Plan::Send(2)
        );
        // Released long after its retention would have run out: it goes first again.
        a1.release(9_000_000.0);
        assert_eq!((a1.held.clone(), a1.server_failures), (None, 0));
        assert_eq!(a1.attempts, 4, "its history stays");
        assert_eq!(plan(&[a1, a2], 9_000_000.0, &mut st, c), Plan::Send(1));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_only_server_errors_set_it() {
        let c = cfg();
        let waits: Vec<u64> = (1..=5).map(|a| backoff_ms(&c, a)).collect();
        assert_eq!(waits, vec![500, 1000, 2000, 3000, 3000]);
        assert_eq!(backoff_ms(&c, 200), 3000, "no overflow");
        let mut e = Entry::new("orders", "POST", "u", vec![], 0.0, || "k".into());
        e.failed(Outcome::Status(503), &c, 10_000.0);
        assert_eq!((e.attempts, e.not_before), (1, 10_500.0));
        e.failed(Outcome::Status(503), &c, 20_000.0);
        assert_eq!((e.attempts, e.not_before), (2, 21_000.0));
        e.failed(Outcome::NetworkError, &c, 30_000.0);
        assert_eq!((e.attempts, e.not_before, e.last_status), (3, 0.0, None));
        // Offline attempts do not grow the backoff of the next server error.
        e.failed(Outcome::NetworkError, &c, 30_000.0);
        e.failed(Outcome::Status(500), &c, 40_000.0);
        assert_eq!(
            (e.attempts, e.server_failures, e.not_before),
            (5, 3, 42_000.0)
        );
    }

    fn entry(id: u64, queue: &str, queued_at: f64) -> Entry {
        let mut e = Entry::new(queue, "POST", "u", vec![], queued_at, || format!("k{id}"));
        e.id = Some(id);
        e
    }

    #[test]
    fn a_replay_sends_each_queue_in_order_and_a_failure_holds_only_its_queue() {
        let c = |q: &str| BackgroundSyncConfig {
            retries_per_replay: 2,
            ..BackgroundSyncConfig::fallback(q)
        };
        let now = 1_000_000.0;
        let mut a1 = entry(1, "a", now);
        let b2 = entry(2, "b", now);
        let a3 = entry(3, "a", now);
        let mut st = ReplayState::default();
        assert_eq!(
            plan(&[a1.clone(), b2.clone(), a3.clone()], now, &mut st, c),
            Plan::Send(1)
        );
        // Queue a's head fails with a 503: b goes first, a waits for its backoff.
        a1.failed(Outcome::Status(503), &c("a"), now);
        st.record("a", Verdict::RetryServer);
        assert_eq!(
            plan(&[a1.clone(), b2.clone(), a3.clone()], now, &mut st, c),
            Plan::Send(2)
        );
        assert_eq!(
            plan(&[a1.clone(), a3.clone()], now, &mut st, c),
            Plan::Wait(1000)
        );
        assert_eq!(
            plan(&[a1.clone(), a3.clone()], now + 1000.0, &mut st, c),
            Plan::Send(1)
        );
        // A second server failure uses up this replay's budget for queue a.
        a1.failed(Outcome::Status(503), &c("a"), now + 1000.0);
        st.record("a", Verdict::RetryServer);
        assert_eq!(
            plan(&[a1.clone(), a3.clone()], now + 1000.0, &mut st, c),
            Plan::Done
        );
        assert_eq!(st.stopped, vec!["a".to_owned()]);
        // A network error stops the queue at once; a fresh replay starts over.
        let mut st = ReplayState::default();
        st.record("b", Verdict::RetryOffline);
        assert_eq!(plan(std::slice::from_ref(&b2), now, &mut st, c), Plan::Done);
        assert_eq!(
            plan(&[b2], now, &mut ReplayState::default(), c),
            Plan::Send(2)
        );
        assert_eq!(plan(&[], now, &mut ReplayState::default(), c), Plan::Done);
    }

    #[test]
    fn entries_past_retention_are_held_before_anything_is_sent() {
        let c = |q: &str| cfg_for(q);
        let mut old = entry(1, "orders", 0.0);
        let fresh = entry(2, "orders", 700_000.0);
        let mut st = ReplayState::default();
        assert_eq!(
            plan(&[old.clone(), fresh.clone()], 700_000.0, &mut st, c),
            Plan::Expire(vec![1])
        );
        old.expire();
        assert_eq!(old.held.as_deref(), Some(held::RETENTION));
        // A held entry is neither expired again nor sent: it waits for the app.
        assert_eq!(plan(&[old, fresh], 700_000.0, &mut st, c), Plan::Send(2));
    }

    #[test]
    fn a_live_write_waits_for_a_taken_lock_only_while_nothing_is_pending() {
        assert!(waits_for_lock(&[]));
        let mut held_only = entry(1, "orders", 0.0);
        held_only.expire();
        assert!(
            waits_for_lock(&[held_only.clone()]),
            "held entries wait for the app, not the lock"
        );
        assert!(!waits_for_lock(&[held_only, entry(2, "other", 0.0)]));
    }

    #[test]
    fn held_entries_hold_back_nothing_and_are_not_counted_as_queued() {
        let c = |q: &str| cfg_for(q);
        let mut es = vec![
            entry(1, "a", 0.0),
            entry(2, "a", 0.0),
            entry(3, "b", 0.0),
            entry(4, "a", 0.0),
        ];
        es[0].failed(Outcome::Status(302), &cfg(), 1.0);
        es[2].failed(Outcome::Status(401), &cfg(), 1.0);
        let mut st = ReplayState::default();
        assert_eq!(plan(&es, 1.0, &mut st, c), Plan::Send(2));
        assert_eq!(
            (position(&es, 2), position(&es, 4), position(&es, 1)),
            (1, 2, 0)
        );
        let state = message::state(&es);
        assert_eq!(state["count"], 2);
        let listed: Vec<(u64, Value)> = state["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["id"].as_u64().unwrap(), e["held"].clone()))
            .collect();
        let answer = json!("answer");
        assert_eq!(
            listed,
            vec![
                (1, answer.clone()),
                (2, Value::Null),
                (3, answer),
                (4, Value::Null)
            ]
        );
        assert_eq!(state["entries"][2]["lastStatus"], 401);
        // Only held entries left: nothing to do.
        assert_eq!(
            plan(&[es[0].clone(), es[2].clone()], 1.0, &mut st, c),
            Plan::Done
        );
    }

    fn cfg_for(q: &str) -> BackgroundSyncConfig {
        BackgroundSyncConfig {
            queue: q.to_owned(),
            ..cfg()
        }
    }

    #[test]
    fn the_position_counts_only_the_entrys_queue() {
        let es = [entry(1, "a", 0.0), entry(4, "b", 0.0), entry(7, "a", 0.0)];
        assert_eq!(position(&es, 1), 1);
        assert_eq!(position(&es, 7), 2);
        assert_eq!(position(&es, 4), 1);
        assert_eq!(position(&es, 99), 0);
    }

    #[test]
    fn entries_expire_after_the_retention_of_their_queue() {
        let c = cfg();
        let e = Entry::new("orders", "POST", "u", vec![], 1_000_000.0, || "k".into());
        assert!(!e.expired(&c, 1_000_000.0 + 600_000.0));
        assert!(e.expired(&c, 1_000_000.0 + 600_001.0));
    }

    #[test]
    fn the_app_and_the_page_see_the_position_and_no_secrets() {
        let mut e = Entry::new(
            "orders",
            "POST",
            "http://h/api/orders",
            vec![("authorization".into(), "Bearer secret".into())],
            9.0,
            || "k".into(),
        );
        e.id = Some(12);
        let body = queued_body(&e, 3);
        let fields = [
            "queued",
            "queue",
            "id",
            "position",
            "idempotencyKey",
            "headers",
        ];
        assert_eq!(
            fields.map(|k| body[k].clone()),
            [
                json!(true),
                json!("orders"),
                json!(12),
                json!(3),
                json!("k"),
                Value::Null
            ]
        );
        assert!(!body.to_string().contains("secret"));
        let state = message::state(std::slice::from_ref(&e)).to_string();
        assert!(!state.contains("secret"), "{state}");
        assert_eq!(message::state(&[])["count"], 0);
        e.failed(Outcome::Status(422), &cfg(), 10.0);
        let state = message::state(std::slice::from_ref(&e));
        assert_eq!(state["count"], 0, "a held entry is not to be sent");
        let held = &state["entries"][0];
        assert_eq!(
            (&held["id"], &held["held"], &held["lastStatus"]),
            (&json!(12), &json!("answer"), &json!(422))
        );
        assert!(!state.to_string().contains("secret"));
        assert_eq!(message::sent(&e, 201)["type"], "edgeflags:outbox-sent");
    }
}
