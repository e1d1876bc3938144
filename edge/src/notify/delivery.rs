//! What a push service's answer means (RFC 8030 §5–§8, RFC 8292 §4): delivered, the
//! subscription is gone, a permanent failure, or a retry after a delay — exponential
//! backoff, never sooner than the service's `Retry-After`.

/// Retry settings (vars `PUSH_RETRY_BASE_SECONDS`, `PUSH_MAX_ATTEMPTS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backoff {
    /// Delay before the second attempt; doubled for each later one.
    pub(crate) base_secs: u32,
    /// Ceiling of any delay (Cloudflare Queues accept at most 12 h).
    pub(crate) max_secs: u32,
    /// Attempts in all, the first included; then the message goes to the dead-letter queue.
    pub(crate) max_attempts: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base_secs: 10,
            max_secs: 3600,
            max_attempts: 8,
        }
    }
}

/// Cloudflare Queues' largest retry delay.
pub(crate) const QUEUE_MAX_DELAY_SECS: u32 = 12 * 3600;

/// The decision for one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// 2xx: the push service took the message.
    Delivered,
    /// 404/410: the subscription expired or was revoked — remove it, never retry.
    Gone,
    /// A permanent failure (413 payload too large, 400/401/403 a bad request or VAPID
    /// key, …), or retries exhausted.
    Failed(String),
    /// 429, 5xx or no answer at all: try again after `delay_secs`.
    Retry { delay_secs: u32, reason: String },
}

/// How long a (notification, recipient) pair may stay `queued` with no attempt before a
/// repeated send or a manual retry queues it again. The request that marks pairs `queued`
/// hands them to the queue next; if it dies in between, nothing else ever would. Ten
/// minutes is far longer than that step takes, so a pair whose message is merely waiting in
/// the queue is rarely queued twice — and if it is, the claim of the second message finds it
/// done (at-least-once, de-duplicated per pair).
pub(crate) const STRANDED_AFTER_MS: u64 = 10 * 60 * 1000;

/// A delivery row as the store has it: `state` (`queued`, `delivered`, `failed`, `gone`),
/// attempts claimed so far, last change (unix ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Row<'a> {
    pub(crate) state: &'a str,
    pub(crate) attempts: u64,
    pub(crate) updated_ms: u64,
}

/// A pair marked `queued` whose message never reached the queue (no attempt, and older
/// than [`STRANDED_AFTER_MS`]).
pub(crate) fn stranded(row: Row<'_>, now_ms: u64) -> bool {
    row.state == "queued"
        && row.attempts == 0
        && row.updated_ms.saturating_add(STRANDED_AFTER_MS) < now_ms
}

/// Whether a send (or its repetition with the same idempotency key) queues the pair:
/// a new pair, or a stranded one; never one that is queued and moving, or settled.
pub(crate) fn enqueue_takes(row: Option<Row<'_>>, now_ms: u64) -> bool {
    row.is_none_or(|r| stranded(r, now_ms))
}

/// Whether a manual retry queues the pair again: a failed one, or a stranded one.
pub(crate) fn retry_takes(row: Row<'_>, now_ms: u64) -> bool {
    row.state == "failed" || stranded(row, now_ms)
}

/// The delay before attempt `attempt + 1` after `attempt` failures (1-based):
/// `base · 2^(attempt−1)`, capped.
pub(crate) fn backoff_delay(attempt: u32, b: &Backoff) -> u32 {
    let exp = attempt.saturating_sub(1).min(30);
    b.base_secs
        .saturating_mul(1u32 << exp)
        .min(b.max_secs)
        .min(QUEUE_MAX_DELAY_SECS)
}

/// Classifies attempt number `attempt` (1-based). `status` is `None` when the push service
/// could not be reached; `retry_after` is its header, `now_secs` the clock for an HTTP-date.
pub(crate) fn classify(
    status: Option<u16>,
    retry_after: Option<&str>,
    attempt: u32,
    backoff: &Backoff,
    now_secs: u64,
) -> Outcome {
    let retry = |reason: String| {
        if attempt >= backoff.max_attempts {
            return Outcome::Failed(format!("{reason}; gave up after {attempt} attempts"));
        }
        let wanted = retry_after
            .and_then(|v| parse_retry_after(v, now_secs))
            .unwrap_or(0)
            .min(QUEUE_MAX_DELAY_SECS);
        Outcome::Retry {
            delay_secs: backoff_delay(attempt, backoff).max(wanted),
            reason,
        }
    };
    match status {
        None => retry("push service unreachable".into()),
        Some(200..=299) => Outcome::Delivered,
        Some(404 | 410) => Outcome::Gone,
        Some(413) => Outcome::Failed("413: payload too large for the push service".into()),
        Some(s @ (429 | 500..=599)) => retry(format!("push service answered {s}")),
        Some(s) => Outcome::Failed(format!("push service refused the message: {s}")),
    }
}

/// `Retry-After` (RFC 9110 §10.2.3): delay-seconds or an IMF-fixdate.
pub(crate) fn parse_retry_after(value: &str, now_secs: u64) -> Option<u32> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(u32::try_from(secs).unwrap_or(u32::MAX));
    }
    let at = parse_imf_fixdate(value)?;
    Some(u32::try_from(at.saturating_sub(now_secs)).unwrap_or(u32::MAX))
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` → unix seconds.
fn parse_imf_fixdate(value: &str) -> Option<u64> {
    let parts: Vec<&str> = value.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let day: u64 = day.parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)? as u64
        + 1;
    let year: i64 = year.parse().ok()?;
    let hms: Vec<u64> = time.split(':').filter_map(|p| p.parse().ok()).collect();
    let [h, m, s] = hms.as_slice() else {
        return None;
    };
    if !(1..=31).contains(&day) || *h > 23 || *m > 59 || *s > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let (y, mo) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * mo as i64 + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400)
        .ok()
        .map(|d| d + h * 3600 + m * 60 + s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Backoff = Backoff {
        base_secs: 10,
        max_secs: 3600,
        max_attempts: 5,
    };

    #[test]
    fn statuses() {
        assert_eq!(classify(Some(201), None, 1, &B, 0), Outcome::Delivered);
        assert_eq!(classify(Some(404), None, 1, &B, 0), Outcome::Gone);
        assert_eq!(classify(Some(410), None, 3, &B, 0), Outcome::Gone);
        assert!(matches!(
            classify(Some(413), None, 1, &B, 0),
            Outcome::Failed(_)
        ));
        assert!(matches!(
            classify(Some(403), None, 1, &B, 0),
            Outcome::Failed(_)
        ));
        for s in [Some(429), Some(500), Some(503), None] {
            assert!(
                matches!(
                    classify(s, None, 1, &B, 0),
                    Outcome::Retry { delay_secs: 10, .. }
                ),
                "{s:?}"
            );
        }
    }

    #[test]
    fn exponential_backoff_capped() {
        let delays: Vec<u32> = (1..=4).map(|a| backoff_delay(a, &B)).collect();
        assert_eq!(delays, [10, 20, 40, 80]);
        assert_eq!(backoff_delay(20, &B), 3600);
        assert_eq!(backoff_delay(u32::MAX, &B), 3600);
        let zero = Backoff { base_secs: 0, ..B };
        assert_eq!(backoff_delay(3, &zero), 0);
    }

    #[test]
    fn retry_after_is_honoured_but_never_shortens_the_backoff() {
        let r = classify(Some(429), Some("120"), 1, &B, 0);
        assert!(matches!(
            r,
            Outcome::Retry {
                delay_secs: 120,
                ..
            }
        ));
        let r = classify(Some(503), Some("1"), 3, &B, 0);
        assert!(matches!(r, Outcome::Retry { delay_secs: 40, .. }));
        let r = classify(Some(429), Some("999999"), 1, &B, 0);
        assert!(matches!(
            r,
            Outcome::Retry {
                delay_secs: QUEUE_MAX_DELAY_SECS,
                ..
            }
        ));
        let r = classify(Some(429), Some("garbage"), 1, &B, 0);
        assert!(matches!(r, Outcome::Retry { delay_secs: 10, .. }));
    }

    #[test]
    fn http_date_retry_after() {
        // 1994-11-06T08:49:37Z = 784111777.
        assert_eq!(
            parse_imf_fixdate("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784_111_700),
            Some(77)
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784_111_800),
            Some(0)
        );
        assert_eq!(parse_retry_after("Sun, 06 Foo 1994 08:49:37 GMT", 0), None);
        assert_eq!(parse_imf_fixdate("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_imf_fixdate("Tue, 29 Feb 2028 12:00:00 GMT"),
            Some(1_835_438_400)
        );
    }

    #[test]
    fn retries_end_in_failure() {
        assert!(matches!(
            classify(Some(500), None, 5, &B, 0),
            Outcome::Failed(_)
        ));
        assert!(matches!(
            classify(None, None, 4, &B, 0),
            Outcome::Retry { .. }
        ));
    }
    #[test]
    fn a_pair_stranded_in_queued_is_taken_again_by_enqueue_and_retry() {
        let now = 100 * STRANDED_AFTER_MS;
        let row = |state, attempts, age_ms: u64| Row {
            state,
            attempts,
            updated_ms: now - age_ms,
        };
        // New pair: queued. A fresh `queued` with no attempt: its message may be on its way.
        assert!(enqueue_takes(None, now));
        assert!(!enqueue_takes(Some(row("queued", 0, 1000)), now));
        assert!(!enqueue_takes(
            Some(row("queued", 0, STRANDED_AFTER_MS)),
            now
        ));
        // The request died between marking and queueing: taken after the grace period.
        assert!(enqueue_takes(
            Some(row("queued", 0, STRANDED_AFTER_MS + 1)),
            now
        ));
        assert!(retry_takes(row("queued", 0, STRANDED_AFTER_MS + 1), now));
        assert!(!retry_takes(row("queued", 0, 1000), now));
        // Attempted (the queue has it, retrying) or settled: never re-queued by enqueue.
        assert!(!enqueue_takes(
            Some(row("queued", 1, 10 * STRANDED_AFTER_MS)),
            now
        ));
        assert!(!retry_takes(row("queued", 1, 10 * STRANDED_AFTER_MS), now));
        for settled in ["delivered", "failed", "gone"] {
            assert!(!enqueue_takes(
                Some(row(settled, 1, 10 * STRANDED_AFTER_MS)),
                now
            ));
        }
        assert!(retry_takes(row("failed", 3, 0), now));
        assert!(!retry_takes(
            row("delivered", 1, 10 * STRANDED_AFTER_MS),
            now
        ));
        assert!(!retry_takes(row("gone", 1, 10 * STRANDED_AFTER_MS), now));
        // A clock behind the row never underflows.
        assert!(!stranded(row("queued", 0, 0), 0));
    }
}
