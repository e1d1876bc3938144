//! Which of the two workers answers an edge endpoint. The request worker (`wrangler.toml`)
//! is on every visitor's path and carries only what that path needs — proxy, OFREP, health,
//! status, client flags, client events — so its wasm stays small and compiles fast on a cold isolate. The
//! control worker (`control/wrangler.toml`, `--features control`) holds the Durable Objects,
//! the admin API, the dashboard, notifications, the rollout cron and the push queue; the
//! request worker hands it every other `{ADMIN_PREFIX}` request over the service binding
//! `CONTROL`, unchanged.

/// The worker that answers an endpoint under `{ADMIN_PREFIX}` (`sub` is the rest of the path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plane {
    /// Answered where the request arrived: cheap, read-only, on the visitor's path.
    Request,
    /// Handed to the control worker.
    Control,
}

/// The endpoints the request worker answers itself (conversions reported by clients are on
/// the visitor's path too, and counted where the exposures are); everything else is the control worker's
/// (including paths neither knows: its 404 is the one answer for them).
pub fn plane_of(sub: &str) -> Plane {
    match sub {
        "/health" | "/status" | "/client-flags" | "/events" => Plane::Request,
        _ => Plane::Control,
    }
}

/// Whether a relayed request reads what the metrics store holds (totals, results, timeline,
/// rollout gates, the dashboard), so the request worker first sends the counts it holds and
/// the reader sees its own traffic. Only these: a flush is a Durable Object call, and an
/// anonymous client must not be able to force one with any `/__edge/…` path it makes up.
pub fn reads_metrics(sub: &str) -> bool {
    matches!(
        sub,
        "/metrics" | "/metrics/timeline" | "/features/experiments/results" | "/rollouts/evaluate"
    ) || sub == "/dashboard"
        || sub.starts_with("/dashboard/")
}

/// Whether a forwarded request may have changed the flag set (a write the control worker
/// accepted), so the request worker takes in the writer's head at once instead of after
/// `REFRESH_SECONDS`: an admin's change, a kill switch, a rollback or a purge is then in
/// effect on the isolate that relayed it when the admin gets the 2xx — as in one worker.
pub fn takes_in_after(method: &str, status: u16) -> bool {
    let read_only = matches!(method, "GET" | "HEAD" | "OPTIONS");
    !read_only && (200..300).contains(&status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_worker_answers_only_the_visitor_path_endpoints() {
        for sub in ["/health", "/status", "/client-flags", "/events"] {
            assert_eq!(plane_of(sub), Plane::Request, "{sub}");
        }
        for sub in [
            "",
            "/",
            "/flags",
            "/features/disable",
            "/dashboard",
            "/dashboard/signin",
            "/push/subscribe",
            "/inbox",
            "/notifications",
            "/metrics",
            "/rollouts/evaluate",
            "/cache/purge",
            "/health/",
            "/statusx",
            "/nope",
        ] {
            assert_eq!(plane_of(sub), Plane::Control, "{sub:?}");
        }
    }

    #[test]
    fn only_metric_reads_make_the_request_worker_send_its_counts_first() {
        for sub in [
            "/metrics",
            "/metrics/timeline",
            "/features/experiments/results",
            "/rollouts/evaluate",
            "/dashboard",
            "/dashboard/flags",
        ] {
            assert!(reads_metrics(sub), "{sub}");
        }
        for sub in [
            "/flags",
            "/push/subscribe",
            "/inbox",
            "/nope",
            "/metricsx",
            "/dashboardx",
        ] {
            assert!(!reads_metrics(sub), "{sub}");
        }
    }

    #[test]
    fn only_an_accepted_write_is_taken_in_at_once() {
        let cases = [
            ("PUT", 200, true),
            ("PATCH", 200, true),
            ("POST", 201, true),
            ("DELETE", 204, true),
            ("POST", 409, false),
            ("PUT", 412, false),
            ("POST", 500, false),
            ("GET", 200, false),
            ("HEAD", 200, false),
            ("OPTIONS", 204, false),
        ];
        for (method, status, expected) in cases {
            assert_eq!(
                takes_in_after(method, status),
                expected,
                "{method} {status}"
            );
        }
    }
}
