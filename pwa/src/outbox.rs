//! Background-sync policy (Workbox's background sync, stricter): what an outbox entry holds,
//! the `Idempotency-Key` it carries from its first attempt on, how a server answer is
//! classified, backoff, retention, and the JSON the app and the page see. Plain Rust; the
//! IndexedDB and fetch glue is in `host::outbox`.

use serde_json::{json, Value};

use crate::config::BackgroundSyncConfig;
use crate::json::Obj;

/// Header that makes a replayed write safe: the server answers a repeated key with the
/// original result instead of acting twice.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";

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
        })
    }

    /// Whether the entry has outlived its queue's retention.
    pub fn expired(&self, cfg: &BackgroundSyncConfig, now_ms: f64) -> bool {
        let retention_ms = cfg.retention_minutes.saturating_mul(60_000) as f64;
        now_ms - self.queued_at > retention_ms
    }

    /// Records a failed attempt: a server error sets a backoff that grows with the server
    /// errors so far; a network error sets none (the next attempt waits for the browser to
    /// be back online instead) and does not grow it.
    pub fn failed(&mut self, outcome: Outcome, cfg: &BackgroundSyncConfig, now_ms: f64) {
        self.attempts = self.attempts.saturating_add(1);
        self.last_status = match outcome {
            Outcome::Status(s) => Some(s),
            Outcome::NetworkError => None,
        };
        self.not_before = match classify(outcome) {
            Verdict::RetryServer => {
                self.server_failures = self.server_failures.saturating_add(1);
                now_ms + backoff_ms(cfg, self.server_failures) as f64
            }
            _ => 0.0,
        };
    }

    /// What the page is told about an entry (no headers or body: they may hold secrets).
    pub fn summary(&self) -> Value {
        json!({
            "id": self.id,
            "queue": self.queue,
            "method": self.method,
            "url": self.url,
            "idempotencyKey": self.idempotency_key,
            "queuedAt": self.queued_at,
            "attempts": self.attempts,
            "serverFailures": self.server_failures,
            "lastStatus": self.last_status,
        })
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
    /// The server accepted it (2xx, or a final 1xx/3xx): remove it.
    Sent,
    /// The server refused it for good (4xx): remove it and tell the page.
    Rejected,
    /// A server-side problem (5xx, 408, 429): keep it, retry after a backoff.
    RetryServer,
    /// No answer: keep it, retry when the browser is back online.
    RetryOffline,
}

/// Classifies an attempt. 408 and 429 are "try again later" answers, so they are retried
/// like 5xx rather than dropped as a refusal.
pub fn classify(outcome: Outcome) -> Verdict {
    match outcome {
        Outcome::NetworkError => Verdict::RetryOffline,
        Outcome::Status(408 | 429) => Verdict::RetryServer,
        Outcome::Status(s) if s >= 500 => Verdict::RetryServer,
        Outcome::Status(s) if s >= 400 => Verdict::Rejected,
        Outcome::Status(_) => Verdict::Sent,
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
    /// Drop these entries (past their retention) and tell the page; then plan again.
    Drop(Vec<u64>),
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
            Verdict::Sent | Verdict::Rejected => {}
        }
    }

    fn stop(&mut self, queue: &str) {
        if !self.stopped.iter().any(|q| q == queue) {
            self.stopped.push(queue.to_owned());
        }
    }
}

/// Plans the next step of a replay over the stored entries (in id order). Each queue is
/// strictly ordered: only its oldest entry may be sent, and a failure holds the ones behind
/// it. Queues do not hold each other up. Among ready heads the oldest goes first.
pub fn plan(
    entries: &[Entry],
    now_ms: f64,
    state: &mut ReplayState,
    cfg: impl Fn(&str) -> BackgroundSyncConfig,
) -> Plan {
    let expired: Vec<u64> = entries
        .iter()
        .filter(|e| e.expired(&cfg(&e.queue), now_ms))
        .filter_map(|e| e.id)
        .collect();
    if !expired.is_empty() {
        return Plan::Drop(expired);
    }
    let mut heads: Vec<&Entry> = Vec::new();
    for e in entries {
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

/// Position of an entry in its queue (1 = next to be sent).
pub fn position(entries: &[Entry], id: u64) -> usize {
    let Some(queue) = entries.iter().find(|e| e.id == Some(id)).map(|e| &e.queue) else {
        return 0;
    };
    entries
        .iter()
        .filter(|e| &e.queue == queue && e.id.is_some_and(|i| i <= id))
        .count()
}

/// The 202 answer the app gets for a queued write.
pub fn queued_body(entry: &Entry, position: usize) -> Value {
    json!({
        "queued": true,
        "queue": entry.queue,
        "id": entry.id,
        "position": position,
        "idempotencyKey": entry.idempotency_key,
    })
}

/// Messages posted to every page of the origin.
pub mod message {
    use super::*;

    /// The outbox now holds these entries.
    pub fn state(entries: &[Entry]) -> Value {
        json!({
            "type": "edgeflags:outbox",
            "count": entries.len(),
            "entries": entries.iter().map(Entry::summary).collect::<Vec<_>>(),
        })
    }

    /// A queued write reached the server and was accepted.
    pub fn sent(entry: &Entry, status: u16) -> Value {
        json!({"type": "edgeflags:outbox-sent", "status": status, "entry": entry.summary()})
    }

    /// The server refused a queued write (4xx); it was removed.
    pub fn rejected(entry: &Entry, status: u16, body: &str) -> Value {
        json!({"type": "edgeflags:outbox-rejected", "status": status, "body": body, "entry": entry.summary()})
    }

    /// A write was older than its queue's retention and was dropped unsent.
    pub fn dropped(entry: &Entry, retention_minutes: u64) -> Value {
        json!({
            "type": "edgeflags:outbox-dropped",
            "reason": "retention",
            "retentionMinutes": retention_minutes,
            "entry": entry.summary(),
        })
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
        assert_eq!((back.attempts, back.last_status), (1, Some(503)));
        e.id = None;
        assert!(e.to_value().get("id").is_none(), "the store assigns ids");
        // A record written without the optional fields still reads.
        let minimal = Entry::from_value(&json!({"queue": "q", "method": "POST", "url": "u",
            "headers": [["a", "b"]], "idempotencyKey": "k", "queuedAt": 1}))
        .unwrap();
        assert_eq!(
            (minimal.id, minimal.attempts, minimal.not_before),
            (None, 0, 0.0)
        );
        assert!(Entry::from_value(&json!({"queue": "q"})).is_err());
        let bad_headers = json!({"queue": "q", "method": "POST", "url": "u",
            "headers": [["a"]], "idempotencyKey": "k"});
        assert!(Entry::from_value(&bad_headers).is_err());
    }

    #[test]
    fn answers_are_classified_so_only_server_verdicts_remove_an_entry() {
        let cases = [
            (Outcome::Status(200), Verdict::Sent),
            (Outcome::Status(201), Verdict::Sent),
            (Outcome::Status(204), Verdict::Sent),
            (Outcome::Status(302), Verdict::Sent),
            (Outcome::Status(400), Verdict::Rejected),
            (Outcome::Status(404), Verdict::Rejected),
            (Outcome::Status(409), Verdict::Rejected),
            (Outcome::Status(422), Verdict::Rejected),
            (Outcome::Status(408), Verdict::RetryServer),
            (Outcome::Status(429), Verdict::RetryServer),
            (Outcome::Status(500), Verdict::RetryServer),
            (Outcome::Status(503), Verdict::RetryServer),
            (Outcome::NetworkError, Verdict::RetryOffline),
        ];
        for (outcome, want) in cases {
            assert_eq!(classify(outcome), want, "{outcome:?}");
        }
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
    fn entries_past_retention_are_dropped_before_anything_is_sent() {
        let c = |q: &str| cfg_for(q);
        let old = entry(1, "orders", 0.0);
        let fresh = entry(2, "orders", 700_000.0);
        let mut st = ReplayState::default();
        assert_eq!(
            plan(&[old, fresh.clone()], 700_000.0, &mut st, c),
            Plan::Drop(vec![1])
        );
        assert_eq!(plan(&[fresh], 700_000.0, &mut st, c), Plan::Send(2));
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
        assert_eq!(
            queued_body(&e, 3),
            json!({"queued": true, "queue": "orders", "id": 12, "position": 3, "idempotencyKey": "k"})
        );
        let state = message::state(std::slice::from_ref(&e)).to_string();
        assert!(!state.contains("secret"), "{state}");
        assert_eq!(message::state(&[])["count"], 0);
        assert_eq!(message::rejected(&e, 422, "bad")["status"], 422);
        assert_eq!(message::dropped(&e, 10)["entry"]["id"], 12);
        assert_eq!(message::sent(&e, 201)["type"], "edgeflags:outbox-sent");
    }
}
