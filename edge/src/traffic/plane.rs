//! Which of the two workers answers an edge endpoint. The request worker (`wrangler.toml`)
//! is on every visitor's path and carries only what that path needs — proxy, OFREP, health,
//! status, client flags, client events — so its wasm stays small and compiles fast on a cold isolate. The
//! control worker (`control/wrangler.toml`, `--features control`) holds the Durable Objects,
//! the admin API, the dashboard, notifications, the rollout cron and the push queue; the
//! request worker hands it every other `{ADMIN_PREFIX}` request over the service binding
//! `CONTROL`, unchanged.

/// The worker that answers an endpoint under `{ADMIN_PREFIX}` (`sub` is the rest of the path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plane {
    /// Answered where the request arrived: cheap, read-only, on the visitor's path.
    Request,
    /// Handed to the control worker.
    Control,
}

/// The endpoints the request worker answers itself (conversions reported by clients are on
/// the visitor's path too, and counted where the exposures are); everything else is the control worker's
/// (including paths neither knows: its 404 is the one answer for them).
pub(crate) fn plane_of(sub: &str) -> Plane {
    match sub {
        "/health" | "/status" | "/client-flags" | "/events" => Plane::Request,
        _ => Plane::Control,
    }
}

/// Response header from the control worker to the request worker that relayed the request:
/// the flag-set version the control worker's isolate took in while answering (a write it
/// committed). Never sent on to the client.
pub(crate) const VERSION_HEADER: &str = "x-edgeflags-committed";

/// Whether a relayed request reads what the metrics store holds (totals, results, timeline,
/// rollout gates, the dashboard), so the request worker first sends the counts it holds and
/// the reader sees its own traffic. Only these: a flush is a Durable Object call, and an
/// anonymous client must not be able to force one with any `/__edge/…` path it makes up.
/// Paths are compared as the admin API routes them (segments, outer slashes ignored).
pub(crate) fn reads_metrics(sub: &str) -> bool {
    if sub == "/dashboard" || sub.starts_with("/dashboard/") {
        return true;
    }
    let segments: Vec<&str> = sub.trim_matches('/').split('/').collect();
    matches!(
        segments.as_slice(),
        ["metrics"]
            | ["metrics", "timeline"]
            | ["features", "experiments", "results"]
            | ["rollouts", "evaluate"]
    )
}

/// Whether the request worker takes in the writer's head at once after a relayed request:
/// when the control worker says it took in a version (`VERSION_HEADER`) this isolate does
/// not have. Keyed on the version, not on the method or status: an anonymous write that
/// changes no flag (a push subscription, an inbox read mark) costs no writer call, a
/// dashboard action answered with a redirect still counts, and one change costs each
/// isolate at most one extra check however many relayed answers name it.
pub(crate) fn takes_in(committed: Option<&str>, active: Option<&str>) -> bool {
    committed.is_some_and(|v| !v.is_empty() && Some(v) != active)
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
    fn only_a_version_this_isolate_lacks_is_taken_in() {
        let cases = [
            (Some("v2"), Some("v1"), true),
            (Some("v2"), None, true),
            (Some("v2"), Some("v2"), false),
            (None, Some("v1"), false),
            (None, None, false),
            (Some(""), Some("v1"), false),
        ];
        for (committed, active, expected) in cases {
            assert_eq!(
                takes_in(committed, active),
                expected,
                "{committed:?} {active:?}"
            );
        }
    }

    #[test]
    fn metric_reads_are_recognised_as_the_admin_api_routes_them() {
        for sub in [
            "//metrics",
            "/metrics/",
            "/metrics/timeline/",
            "/rollouts/evaluate/",
        ] {
            assert!(reads_metrics(sub), "{sub}");
        }
        assert!(!reads_metrics("/metrics//timeline"));
    }
}
