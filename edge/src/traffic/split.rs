//! Traffic splitting: which origin serves a request. A route table maps path prefixes to an
//! origin, or to a flag whose variants name origins — so a canary rollout 10 % → 50 % → 100 %
//! is nothing but a flag change, sticky per visitor because the flag is evaluated with the
//! visitor's targetingKey.
//!
//! The table lives in KV (key `routes`, optional) in this format, validated with JSON paths:
//! ```json
//! { "origins": { "v1": "$ORIGIN_URL", "v2": "$CANARY_ORIGIN_URL" },
//!   "stable": "v1",
//!   "routes": [ { "path": "/api/", "flag": "backend", "retryOnStable": true },
//!               { "path": "/", "origin": "v1" } ] }
//! ```
//! Origins are `http(s)://host[:port]` or `$VAR` naming a worker variable. Routes are tried
//! in order; the first whose `path` prefixes the request path wins. Without a `routes` key the
//! default table sends `/` through flag `SPLIT_FLAG` (default `backend`) between `v1`
//! (`ORIGIN_URL`) and `v2` (`CANARY_ORIGIN_URL`), or everything to `v1` when no canary is set.

use serde_json::Value;

use crate::flags::live::Refreshing;

/// One route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    pub(crate) path: String,
    pub(crate) target: Target,
    /// Retry an idempotent request once on the stable origin when the chosen one fails.
    pub(crate) retry_on_stable: bool,
}

/// Where a route sends requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// Always this origin.
    Origin(String),
    /// The origin named by this flag's evaluated value (a string) for the visitor.
    Flag(String),
}

/// A validated route table with resolved origin URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RouteTable {
    origins: Vec<(String, String)>,
    pub(crate) stable: String,
    pub(crate) routes: Vec<Route>,
}

/// A validation error with its JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RouteError {
    pub(crate) path: String,
    pub(crate) message: String,
}

impl RouteTable {
    /// The built-in table used when KV has no `routes` document.
    pub(crate) fn default_table(origin: &str, canary: Option<&str>, split_flag: &str) -> Self {
        let mut origins = vec![("v1".to_owned(), origin.to_owned())];
        let target = match canary {
            Some(c) => {
                origins.push(("v2".to_owned(), c.to_owned()));
                Target::Flag(split_flag.to_owned())
            }
            None => Target::Origin("v1".to_owned()),
        };
        Self {
            origins,
            stable: "v1".to_owned(),
            routes: vec![Route {
                path: "/".to_owned(),
                target,
                retry_on_stable: true,
            }],
        }
    }

    /// Parses and validates a route document; `var` resolves `$NAME` origins. Every error is
    /// reported, with its JSON path.
    pub(crate) fn parse(
        text: &str,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, Vec<RouteError>> {
        let mut errors = Vec::new();
        let mut err = |path: String, message: &str| {
            errors.push(RouteError {
                path,
                message: message.to_owned(),
            })
        };
        let doc: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                err("$".into(), &format!("not valid JSON: {e}"));
                return Err(errors);
            }
        };
        let mut origins = Vec::new();
        match doc.get("origins").and_then(Value::as_object) {
            None => err("origins".into(), "must be an object of name → origin URL"),
            Some(map) if map.is_empty() => err("origins".into(), "must name at least one origin"),
            Some(map) => {
                for (name, v) in map {
                    let path = format!("origins.{name}");
                    let raw = v.as_str().unwrap_or_default();
                    let resolved = match raw.strip_prefix('$') {
                        Some(var_name) => var(var_name),
                        None => Some(raw.to_owned()),
                    };
                    match resolved.as_deref().map(check_origin) {
                        Some(Ok(url)) => origins.push((name.clone(), url)),
                        // Never echo what a `$VAR` resolved to: the status endpoint is public,
                        // and a variable may hold a secret.
                        Some(Err(m)) if raw.starts_with('$') => {
                            err(path, &format!("variable {raw} {m}"))
                        }
                        Some(Err(m)) => err(path, &format!("{m}, got {raw:?}")),
                        None => err(path, &format!("variable {raw} is not set")),
                    }
                }
            }
        }
        let has = |name: &str| doc.get("origins").and_then(|o| o.get(name)).is_some();
        let stable = doc
            .get("stable")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if !has(&stable) {
            err("stable".into(), "must name one of the origins");
        }
        let mut routes = Vec::new();
        match doc.get("routes").and_then(Value::as_array) {
            None => err("routes".into(), "must be an array"),
            Some(list) => {
                for (i, r) in list.iter().enumerate() {
                    let at = |field: &str| format!("routes[{i}].{field}");
                    let path = r.get("path").and_then(Value::as_str).unwrap_or_default();
                    if !path.starts_with('/') {
                        err(at("path"), "must be a path prefix starting with /");
                    }
                    let target = match (
                        r.get("origin").and_then(Value::as_str),
                        r.get("flag").and_then(Value::as_str),
                    ) {
                        (Some(o), None) if has(o) => Some(Target::Origin(o.to_owned())),
                        (Some(_), None) => {
                            err(at("origin"), "must name one of the origins");
                            None
                        }
                        (None, Some(f)) if !f.is_empty() => Some(Target::Flag(f.to_owned())),
                        _ => {
                            err(
                                format!("routes[{i}]"),
                                "needs exactly one of \"origin\" or \"flag\"",
                            );
                            None
                        }
                    };
                    let retry = match r.get("retryOnStable") {
                        None => true,
                        Some(Value::Bool(b)) => *b,
                        Some(_) => {
                            err(at("retryOnStable"), "must be a boolean");
                            true
                        }
                    };
                    if let Some(target) = target {
                        routes.push(Route {
                            path: path.to_owned(),
                            target,
                            retry_on_stable: retry,
                        });
                    }
                }
            }
        }
        if errors.is_empty() {
            Ok(Self {
                origins,
                stable,
                routes,
            })
        } else {
            Err(errors)
        }
    }

    /// The first route whose prefix matches `path`.
    pub(crate) fn select(&self, path: &str) -> Option<&Route> {
        self.routes.iter().find(|r| path.starts_with(&r.path))
    }

    /// The URL of an origin by name.
    pub(crate) fn origin_url(&self, name: &str) -> Option<&str> {
        self.origins
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, u)| u.as_str())
    }

    /// The stable origin's URL.
    pub(crate) fn stable_url(&self) -> Option<&str> {
        self.origin_url(&self.stable)
    }
}

/// An origin URL as the edge accepts one: `http(s)://host[:port]`, nothing else — no path,
/// query or fragment, and no userinfo (`http://user:pass@host` would send credentials to the
/// origin and show them wherever the URL is shown). The error never contains the value.
pub(crate) fn check_origin(url: &str) -> Result<String, String> {
    let url = url.trim().trim_end_matches('/');
    let host = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match host {
        Some(h)
            if !h.is_empty()
                && !h.contains(['/', '?', '#', '@', '\\'])
                && !h.chars().any(|c| c.is_whitespace() || c.is_control()) =>
        {
            Ok(url.to_owned())
        }
        _ => Err("must be an origin such as https://app.example.com (no path, query, fragment or user:password@)".to_owned()),
    }
}

/// The isolate's route table, re-checked like the flag set ([`Refreshing`]): the KV
/// document when present and valid, else the built-in default. A malformed document keeps
/// the last good table (the default when there was none) and is reported with its JSON
/// paths until it is fixed or removed.
#[derive(Debug, Default)]
pub(crate) struct Routes {
    pub(crate) table: Refreshing<RouteTable>,
    /// Errors of the stored document, when it is malformed.
    pub(crate) problem: Option<Vec<String>>,
}

impl Routes {
    /// Starts a check at `now_ms`. With a table in hand, requests arriving meanwhile use it
    /// (one check per isolate at a time); without one they check too, rather than fail.
    pub(crate) fn begin_check(&mut self, now_ms: u64) {
        if self.table.get().is_some() {
            self.table.claim_check(now_ms);
        }
    }

    /// Takes in what KV holds under the routes key (`None`: nothing stored) at `now_ms`.
    pub(crate) fn take(
        &mut self,
        stored: Option<&str>,
        var: impl Fn(&str) -> Option<String>,
        default: impl FnOnce() -> RouteTable,
        now_ms: u64,
    ) {
        self.table.claim_check(now_ms);
        match stored.map(|text| RouteTable::parse(text, var)) {
            None => {
                self.problem = None;
                self.table.set(default());
            }
            Some(Ok(table)) => {
                self.problem = None;
                self.table.set(table);
            }
            Some(Err(errors)) => {
                self.problem = Some(
                    errors
                        .into_iter()
                        .map(|e| format!("{}: {}", e.path, e.message))
                        .collect(),
                );
                if self.table.get().is_none() {
                    self.table.set(default());
                }
            }
        }
    }
}

/// The origin chosen for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Choice<'t> {
    /// Origin name (e.g. `v2`).
    pub(crate) name: String,
    /// Its URL.
    pub(crate) url: &'t str,
    /// `flag=variant` that decided it, when a flag did.
    pub(crate) decided_by: Option<(String, String)>,
    /// Whether a failed idempotent request may be retried on the stable origin.
    pub(crate) retry_on_stable: bool,
}

/// Picks the origin for `path`. `flag_value` evaluates a flag for this visitor and returns
/// (variant, value-as-origin-name); anything unusable falls back to the stable origin.
pub(crate) fn choose<'t>(
    table: &'t RouteTable,
    path: &str,
    flag_value: impl FnOnce(&str) -> Option<(String, String)>,
) -> Option<Choice<'t>> {
    let stable = || {
        Some(Choice {
            name: table.stable.clone(),
            url: table.stable_url()?,
            decided_by: None,
            retry_on_stable: false,
        })
    };
    let Some(route) = table.select(path) else {
        return stable();
    };
    match &route.target {
        Target::Origin(name) => Some(Choice {
            name: name.clone(),
            url: table.origin_url(name)?,
            decided_by: None,
            retry_on_stable: route.retry_on_stable && *name != table.stable,
        }),
        Target::Flag(flag) => match flag_value(flag) {
            Some((variant, origin)) => match table.origin_url(&origin) {
                Some(url) => Some(Choice {
                    retry_on_stable: route.retry_on_stable && origin != table.stable,
                    name: origin,
                    url,
                    decided_by: Some((flag.clone(), variant)),
                }),
                None => stable(),
            },
            None => stable(),
        },
    }
}

/// What a routing flag's evaluation names: `(variant, origin name)`. The flag's value names
/// the origin when it is a string; any other value (a boolean or number flag, an object)
/// leaves the variant's own name as the origin, so `{"v1": true, "v2": false}` routes by
/// variant name. No variant (flag missing, disabled, an error) names nothing, and the caller
/// falls back to the stable origin.
pub(crate) fn variant_origin(
    variant: Option<&str>,
    value: Option<&Value>,
) -> Option<(String, String)> {
    let variant = variant?.to_owned();
    let origin = value
        .and_then(Value::as_str)
        .map_or_else(|| variant.clone(), str::to_owned);
    Some((variant, origin))
}

/// Whether a request may be sent again after a failure (idempotent and bodiless).
pub(crate) fn retryable_method(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "OPTIONS")
}

/// Whether an origin answer counts as a failure worth a retry on the stable origin.
pub(crate) fn failed(status: Option<u16>) -> bool {
    status.is_none_or(|s| s >= 500)
}

/// What to do once an origin answered (`Some(status)`) or could not be reached (`None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Ask the stable origin, once, the same request.
    RetryOnStable,
    /// This answer is the one; `retried`: the stable origin gave it after the chosen failed.
    Serve { retried: bool },
    /// The chosen origin's answer stands after all: the stable one could not be reached.
    ServeFirst,
    /// Nothing to send: the origin could not be reached.
    Fail,
}

/// The retry rule of a proxied request, one attempt at a time: the chosen origin's failure
/// ([`failed`]) goes once to the stable origin when the route allows it (`retry`: the
/// route's `retryOnStable`, an idempotent method, a stable origin to ask); the stable
/// origin's answer is served whatever its status, and if it cannot be reached the chosen
/// origin's answer stands. `first` is the chosen origin's outcome when `this` is the
/// stable origin's.
pub(crate) fn next(first: Option<Option<u16>>, this: Option<u16>, retry: bool) -> Next {
    match first {
        None if failed(this) && retry => Next::RetryOnStable,
        None if this.is_some() => Next::Serve { retried: false },
        None => Next::Fail,
        Some(_) if this.is_some() => Next::Serve { retried: true },
        Some(Some(_)) => Next::ServeFirst,
        Some(None) => Next::Fail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_chosen_origin_is_retried_once_on_the_stable_one() {
        use Next::*;
        // (chosen's outcome when this is the retry, this outcome, retry allowed) → next
        let cases = [
            (None, Some(200), true, Serve { retried: false }),
            (None, Some(404), true, Serve { retried: false }),
            (None, Some(503), true, RetryOnStable),
            (None, None, true, RetryOnStable),
            (None, Some(503), false, Serve { retried: false }),
            (None, None, false, Fail),
            (Some(Some(503)), Some(200), true, Serve { retried: true }),
            // The stable origin's 5xx is still its answer: no third attempt.
            (Some(Some(503)), Some(502), true, Serve { retried: true }),
            (Some(Some(503)), None, true, ServeFirst),
            (Some(None), None, true, Fail),
        ];
        for (first, this, retry, want) in cases {
            assert_eq!(
                next(first, this, retry),
                want,
                "{first:?} then {this:?}, retry {retry}"
            );
        }
    }

    #[test]
    fn the_route_table_follows_kv_and_keeps_the_last_good_one_over_a_broken_document() {
        let default = || RouteTable::default_table("http://127.0.0.1:1", None, "backend");
        let mut routes = Routes::default();
        assert!(routes.table.needs_check(0, 1_000));
        // No table yet: a check in flight does not hold other requests back.
        routes.begin_check(0);
        assert!(routes.table.needs_check(1, 1_000));
        routes.take(None, vars, default, 0);
        assert_eq!(routes.table.get().map(|t| t.origins.len()), Some(1));
        assert!(!routes.table.needs_check(999, 1_000));
        // With a table, one check at a time.
        routes.begin_check(1_000);
        assert!(!routes.table.needs_check(1_001, 1_000));
        routes.take(Some(DOC), vars, default, 1_000);
        assert_eq!(routes.table.get().map(|t| t.origins.len()), Some(3));
        assert_eq!(routes.problem, None);
        routes.take(Some(r#"{"origins":7}"#), vars, default, 2_000);
        assert_eq!(routes.table.get().map(|t| t.origins.len()), Some(3), "kept");
        assert!(routes.problem.as_ref().is_some_and(|p| !p.is_empty()));
        // A broken document on a fresh isolate: the default table, and the problem.
        let mut fresh = Routes::default();
        fresh.take(Some("not json"), vars, default, 0);
        assert_eq!(fresh.table.get().map(|t| t.origins.len()), Some(1));
        assert!(fresh.problem.is_some());
    }

    #[test]
    fn a_string_value_names_the_origin_and_anything_else_falls_back_to_the_variant() {
        let s = |v: &str| Value::String(v.to_owned());
        assert_eq!(
            variant_origin(Some("canary"), Some(&s("v2"))),
            Some(("canary".to_owned(), "v2".to_owned()))
        );
        for value in [None, Some(Value::Bool(true)), Some(serde_json::json!(2))] {
            assert_eq!(
                variant_origin(Some("v1"), value.as_ref()),
                Some(("v1".to_owned(), "v1".to_owned())),
                "{value:?}"
            );
        }
        assert_eq!(variant_origin(None, Some(&s("v2"))), None);
    }

    fn vars(name: &str) -> Option<String> {
        match name {
            "ORIGIN_URL" => Some("http://127.0.0.1:1".into()),
            "CANARY_ORIGIN_URL" => Some("http://127.0.0.1:2/".into()),
            _ => None,
        }
    }

    const DOC: &str = r#"{"origins":{"v1":"$ORIGIN_URL","v2":"$CANARY_ORIGIN_URL","cdn":"https://cdn.example"},
        "stable":"v1",
        "routes":[{"path":"/api/","flag":"backend"},{"path":"/assets/","origin":"cdn","retryOnStable":false},{"path":"/","origin":"v1"}]}"#;

    #[test]
    fn a_route_document_parses_with_variables_resolved() {
        let t = RouteTable::parse(DOC, vars).unwrap();
        assert_eq!(t.origin_url("v2"), Some("http://127.0.0.1:2"));
        assert_eq!(t.stable_url(), Some("http://127.0.0.1:1"));
        assert_eq!(
            t.select("/api/orders").map(|r| &r.target),
            Some(&Target::Flag("backend".into()))
        );
        assert_eq!(
            t.select("/index.html").map(|r| &r.target),
            Some(&Target::Origin("v1".into()))
        );
    }

    #[test]
    fn origins_with_credentials_paths_or_fragments_are_refused() {
        for bad in [
            "http://user@host",
            "https://user:secret@host:8443",
            "http://host/path",
            "http://host?q",
            "http://host#f",
            "http://ho st",
            "ftp://host",
            "http://",
        ] {
            assert!(check_origin(bad).is_err(), "{bad}");
        }
        assert_eq!(
            check_origin("https://a.example:8443/").as_deref(),
            Ok("https://a.example:8443")
        );
    }

    #[test]
    fn an_error_about_a_variable_never_shows_its_value() {
        let secret =
            |name: &str| (name == "SECRET").then(|| "https://admin:hunter2@db.internal".to_owned());
        let doc =
            r#"{"origins":{"v1":"$SECRET"},"stable":"v1","routes":[{"path":"/","origin":"v1"}]}"#;
        let errors = RouteTable::parse(doc, secret).unwrap_err();
        assert_eq!(errors[0].path, "origins.v1");
        assert!(
            errors[0].message.contains("$SECRET"),
            "{}",
            errors[0].message
        );
        assert!(
            !errors[0].message.contains("hunter2"),
            "{}",
            errors[0].message
        );
    }

    #[test]
    fn every_error_is_reported_with_its_path() {
        let doc = r#"{"origins":{"v1":"ftp://x","v3":"$NOPE"},"stable":"v9",
            "routes":[{"path":"api","flag":"b"},{"path":"/","origin":"zz"},{"path":"/x"},{"path":"/y","flag":"f","retryOnStable":"yes"}]}"#;
        let errors = RouteTable::parse(doc, vars).unwrap_err();
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            vec![
                "origins.v1",
                "origins.v3",
                "stable",
                "routes[0].path",
                "routes[1].origin",
                "routes[2]",
                "routes[3].retryOnStable"
            ]
        );
        assert_eq!(RouteTable::parse("{", vars).unwrap_err()[0].path, "$");
    }

    #[test]
    fn the_flag_value_names_the_origin_and_the_stable_origin_is_the_fallback() {
        let t = RouteTable::parse(DOC, vars).unwrap();
        let c = choose(&t, "/api/orders", |f| {
            assert_eq!(f, "backend");
            Some(("canary".into(), "v2".into()))
        })
        .unwrap();
        assert_eq!((c.name.as_str(), c.url), ("v2", "http://127.0.0.1:2"));
        assert_eq!(c.decided_by, Some(("backend".into(), "canary".into())));
        assert!(c.retry_on_stable);

        for unusable in [None, Some(("x".to_owned(), "no-such-origin".to_owned()))] {
            let c = choose(&t, "/api/orders", |_| unusable.clone()).unwrap();
            assert_eq!(c.name, "v1", "{unusable:?}");
            assert!(
                !c.retry_on_stable,
                "the stable origin is not retried on itself"
            );
        }
        let c = choose(&t, "/assets/x.js", |_| None).unwrap();
        assert_eq!((c.name.as_str(), c.retry_on_stable), ("cdn", false));
    }

    #[test]
    fn the_default_table_splits_by_the_backend_flag_only_when_a_canary_exists() {
        let t = RouteTable::default_table("http://a", Some("http://b"), "backend");
        let c = choose(&t, "/anything", |_| Some(("v2".into(), "v2".into()))).unwrap();
        assert_eq!(c.url, "http://b");
        let solo = RouteTable::default_table("http://a", None, "backend");
        let c = choose(&solo, "/anything", |_| panic!("no flag without a canary")).unwrap();
        assert_eq!(c.url, "http://a");
    }

    #[test]
    fn only_bodiless_idempotent_requests_are_retried_and_only_on_failures() {
        assert!(retryable_method("GET") && retryable_method("HEAD"));
        assert!(!retryable_method("POST") && !retryable_method("PUT"));
        assert!(failed(None) && failed(Some(500)) && failed(Some(503)));
        assert!(!failed(Some(404)) && !failed(Some(200)));
    }
}
