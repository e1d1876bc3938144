//! The success-metrics dashboard (`GET {prefix}/dashboard`): sessions, CSRF and the page,
//! rendered on the server as plain HTML with inline SVG — no script at all, so its CSP is
//! `script-src 'none'`, and every action is a form that works from the keyboard. The host
//! (`host/dashboard/mod.rs`) gathers the data and performs the actions; everything here is pure.

use serde_json::Value;

use crate::traffic::identity::hmac_sha256;

/// The user's plan: what a healthy stage looks like.
pub(crate) const TARGET_P99_MS: f64 = 200.0;
pub(crate) const TARGET_ERROR_RATE: f64 = 0.005;
pub(crate) const TARGET_HIT_RATIO: f64 = 0.8;
/// Notification delivery success: delivered / (delivered + failed), per channel.
pub(crate) const TARGET_DELIVERY_SUCCESS: f64 = 0.99;

/// How long a dashboard session lasts.
pub(crate) const SESSION_SECONDS: u64 = 3600;
/// Name of the session cookie.
pub(crate) const COOKIE: &str = "ef_admin";

/// Escapes text for HTML element content and attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A session cookie value: `actor.expires.mac` (HMAC-SHA256 under `key`, which the host
/// derives from the admin tokens, so rotating them ends every session).
pub(crate) fn session(actor: &str, expires_s: u64, key: &[u8]) -> String {
    let body = format!("{}.{expires_s}", hex(actor.as_bytes()));
    format!("{body}.{}", hex(&hmac_sha256(key, body.as_bytes())))
}

/// The actor of a valid, unexpired session cookie value.
pub(crate) fn open_session(value: &str, key: &[u8], now_s: u64) -> Option<String> {
    use subtle::ConstantTimeEq;
    let (body, mac) = value.rsplit_once('.')?;
    let expected = hex(&hmac_sha256(key, body.as_bytes()));
    if !bool::from(expected.as_bytes().ct_eq(mac.as_bytes())) {
        return None;
    }
    let (actor_hex, expires) = body.split_once('.')?;
    if expires.parse::<u64>().ok()? <= now_s {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..actor_hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(actor_hex.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

/// The CSRF token of a session: forms carry it, and a state-changing request must too.
pub(crate) fn csrf(session_value: &str, key: &[u8]) -> String {
    hex(&hmac_sha256(
        key,
        format!("csrf:{session_value}").as_bytes(),
    ))
}

/// Whether a state-changing request comes from the dashboard's own origin (`Origin` must be
/// present and equal; browsers send it on every POST).
pub(crate) fn same_origin(origin_header: Option<&str>, own_origin: &str) -> bool {
    origin_header.is_some_and(|o| o == own_origin)
}

/// `Set-Cookie` for a session (`None` value: sign-out).
pub(crate) fn cookie(value: Option<&str>, path: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    match value {
        Some(v) => format!(
            "{COOKIE}={v}; Path={path}; Max-Age={SESSION_SECONDS}; HttpOnly; SameSite=Strict{secure}"
        ),
        None => format!("{COOKIE}=; Path={path}; Max-Age=0; HttpOnly; SameSite=Strict{secure}"),
    }
}

/// Failed sign-ins one client (IP address) may make in a window; after that every sign-in
/// from it, right or wrong, is answered 429 until the window ends.
pub(crate) const SIGNIN_FAILURES: u64 = 10;
/// The sign-in limit's window, from a client's first failure.
pub(crate) const SIGNIN_WINDOW_MS: u64 = 15 * 60 * 1000;
/// Failed sign-in records kept. They live apart from the change audit (whose records only
/// admins cause), so an anonymous client can never push an admin's record out; older ones
/// are deleted and counted.
pub(crate) const SIGNIN_RECORDS: u64 = 200;
/// Clients whose windows are tracked at once; past that the oldest windows are forgotten
/// (and counted), so a spray from many addresses cannot grow storage without bound.
pub(crate) const SIGNIN_CLIENTS: u64 = 10_000;

/// One sign-in, as the worker reports it to the flag writer, which keeps the windows: the
/// writer answers whether the client is over its limit, and records a failure.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SigninAttempt {
    /// The client's IP address (`CF-Connecting-IP`).
    pub(crate) client: String,
    /// Whether the credential was right (a right one is still refused while limited).
    pub(crate) ok: bool,
    /// The admin token name tried, only when it is a configured name (never the secret,
    /// never free text from the client).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    /// Why it failed, in the edge's words.
    pub(crate) reason: String,
}

/// The writer's answer: `retry_after_s` set while the client is limited.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SigninGate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) retry_after_s: Option<u64>,
}

/// Recent failed sign-ins (newest first) and what the bounds dropped.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SigninFailures {
    pub(crate) records: Vec<crate::flags::store::AuditRecord>,
    /// Failed sign-ins ever recorded.
    pub(crate) total: u64,
    /// Attempts refused by the limit (not recorded one by one).
    pub(crate) limited: u64,
    /// Records deleted past [`SIGNIN_RECORDS`], and client windows forgotten past
    /// [`SIGNIN_CLIENTS`].
    pub(crate) dropped: u64,
}

/// A client's current window: (start ms, failures in it).
pub(crate) type Window = (u64, u64);

/// The window that still counts at `now_ms` (an ended one counts for nothing).
fn live(window: Option<Window>, now_ms: u64) -> Option<Window> {
    window.filter(|(start, _)| now_ms < start.saturating_add(SIGNIN_WINDOW_MS))
}

/// Whether a client may try to sign in now: `Err(seconds to wait)` once its window holds
/// [`SIGNIN_FAILURES`] failures.
pub(crate) fn signin_gate(window: Option<Window>, now_ms: u64) -> Result<(), u64> {
    match live(window, now_ms) {
        Some((start, failures)) if failures >= SIGNIN_FAILURES => {
            let end = start.saturating_add(SIGNIN_WINDOW_MS);
            Err(end.saturating_sub(now_ms).div_ceil(1000).max(1))
        }
        _ => Ok(()),
    }
}

/// The client's window after one more failure at `now_ms`.
pub(crate) fn signin_failed(window: Option<Window>, now_ms: u64) -> Window {
    match live(window, now_ms) {
        Some((start, failures)) => (start, failures.saturating_add(1)),
        None => (now_ms, 1),
    }
}

/// The audit record of a failed sign-in: who is "anonymous" and the client's address, with
/// the token name tried when it is a known one.
pub(crate) fn signin_record(
    attempt: &SigninAttempt,
    now_ms: u64,
) -> crate::flags::store::AuditRecord {
    let client: String = attempt.client.chars().take(64).collect();
    let reason = clip(&attempt.reason, SIGNIN_REASON_CHARS);
    crate::flags::store::AuditRecord {
        at_ms: now_ms,
        actor: format!("anonymous ({client})"),
        action: "sign-in failed".into(),
        flag: None,
        from_version: None,
        to_version: String::new(),
        summary: match &attempt.name {
            Some(name) => format!("{reason} (token name {name:?})"),
            None => reason,
        },
    }
}

/// Most characters of a failure's reason kept in its record: a refused JWT's reason can
/// quote the client's text (its `alg`).
pub(crate) const SIGNIN_REASON_CHARS: usize = 160;

/// `text`, cut to `max` characters with an ellipsis when longer.
pub(crate) fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max).collect();
    out.push('…');
    out
}

/// Cloudflare Access in front of the dashboard (`ACCESS_TEAM_DOMAIN`, `ACCESS_AUD`): a
/// request carrying Access's JWT signs in as the token's e-mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Access {
    /// `https://<team>.cloudflareaccess.com`, without a trailing slash: the tokens' issuer.
    pub(crate) team: String,
    /// The Access application's audience tag.
    pub(crate) aud: String,
}

impl Access {
    /// Both variables or neither. The team domain must be https; plain http is accepted for
    /// a loopback address only, which is what the end-to-end tests serve their keys from.
    pub(crate) fn from_vars(team: Option<&str>, aud: Option<&str>) -> Result<Option<Self>, String> {
        let team = team.map(str::trim).filter(|s| !s.is_empty());
        let aud = aud.map(str::trim).filter(|s| !s.is_empty());
        let (team, aud) = match (team, aud) {
            (None, None) => return Ok(None),
            (Some(t), Some(a)) => (t.trim_end_matches('/'), a),
            _ => return Err("ACCESS_TEAM_DOMAIN and ACCESS_AUD go together".into()),
        };
        let team = Self::team_origin(team).ok_or_else(|| {
            "ACCESS_TEAM_DOMAIN must look like https://<team>.cloudflareaccess.com".to_owned()
        })?;
        Ok(Some(Self {
            team,
            aud: aud.to_owned(),
        }))
    }

    /// The team domain as an origin (`scheme://host[:port]`), parsed rather than
    /// prefix-matched: `http://localhost:@evil.example` has the host `evil.example`. No
    /// userinfo, path, query or fragment; https, or http to a loopback host only.
    fn team_origin(team: &str) -> Option<String> {
        let u = url::Url::parse(team).ok()?;
        let bare = u.username().is_empty()
            && u.password().is_none()
            && u.path() == "/"
            && u.query().is_none()
            && u.fragment().is_none()
            // `https://@host` parses with an empty userinfo; refuse it as written.
            && !team.contains('@');
        let host = u.host()?;
        let loopback = match &host {
            url::Host::Domain(d) => *d == "localhost",
            url::Host::Ipv4(ip) => *ip == std::net::Ipv4Addr::LOCALHOST,
            url::Host::Ipv6(ip) => *ip == std::net::Ipv6Addr::LOCALHOST,
        };
        let scheme_ok = match u.scheme() {
            "https" => true,
            "http" => loopback,
            _ => false,
        };
        (bare && scheme_ok).then(|| match u.port() {
            Some(port) => format!("{}://{host}:{port}", u.scheme()),
            None => format!("{}://{host}", u.scheme()),
        })
    }

    /// Where Access publishes its signing keys (a JWKS).
    pub(crate) fn certs_url(&self) -> String {
        format!("{}/cdn-cgi/access/certs", self.team)
    }

    /// The token of a request: the `Cf-Access-Jwt-Assertion` header Access adds, else the
    /// `CF_Authorization` cookie it sets in the browser.
    pub(crate) fn assertion(header: Option<&str>, cookies: Option<&str>) -> Option<String> {
        header
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(str::to_owned)
            .or_else(|| {
                crate::traffic::identity::cookie_value(cookies?, "CF_Authorization")
                    .map(str::to_owned)
            })
    }

    /// Checks a parsed token before its signature is verified: RS256 only (what Access
    /// signs with), `iss` = the team domain, `aud` containing the application's tag,
    /// `exp`/`nbf`; returns the e-mail it signs in as (a service token has none and is
    /// refused).
    pub(crate) fn check(
        &self,
        token: &crate::jwt::Token,
        now_s: u64,
    ) -> Result<String, crate::jwt::JwtError> {
        use crate::jwt::{check_claims, Alg, JwtError, Rules};
        if token.alg != Alg::Rs256 {
            return Err(JwtError::Algorithm(format!("{:?}", token.alg)));
        }
        let rules = Rules {
            issuer: Some(self.team.clone()),
            audience: Some(self.aud.clone()),
        };
        check_claims(&token.claims, &rules, now_s)?;
        token
            .claims
            .get("email")
            .and_then(Value::as_str)
            .filter(|e| e.contains('@') && e.len() <= 254)
            .map(str::to_owned)
            .ok_or(JwtError::NoSubject)
    }
}

/// `ACCESS_ONLY`: `true` turns the token sign-in off, so only Cloudflare Access signs in.
/// It needs Access configured (else nobody could sign in); absent or `false` keeps the token
/// form.
pub(crate) fn access_only(value: Option<&str>, access_configured: bool) -> Result<bool, String> {
    match value.map(str::trim).unwrap_or("") {
        "" | "false" => Ok(false),
        "true" if access_configured => Ok(true),
        "true" => Err("ACCESS_ONLY=true needs ACCESS_TEAM_DOMAIN and ACCESS_AUD".into()),
        other => Err(format!("ACCESS_ONLY must be true or false, not {other:?}")),
    }
}

/// One row of the overview: a series' health against the plan's targets.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Health {
    pub(crate) name: String,
    pub(crate) requests: u64,
    pub(crate) error_rate: Option<f64>,
    pub(crate) p99_ms: Option<f64>,
    pub(crate) hit_ratio: Option<f64>,
}

/// One (flag, variant)'s counts summed over a window of the metrics store's timeline.
pub(crate) type WindowCounts = (String, String, crate::measure::metrics::Counts);

/// The overview's per-variant rows: each flag variant's health over the last hour and the
/// last day (from the timeline, so a canary that was rolled back stops failing once its bad
/// minutes leave the window). Unflagged traffic (`flag` empty) is in the overall rows.
pub(crate) fn variant_windows(hour: &[WindowCounts], day: &[WindowCounts]) -> Vec<Health> {
    let mut keys: Vec<(&str, &str)> = hour
        .iter()
        .chain(day)
        .filter(|(flag, _, _)| !flag.is_empty())
        .map(|(f, v, _)| (f.as_str(), v.as_str()))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let mut rows = Vec::new();
    for (flag, variant) in keys {
        for (window, series) in [("last hour", hour), ("last day", day)] {
            let counts = series
                .iter()
                .find(|(f, v, _)| f == flag && v == variant)
                .map(|(_, _, c)| c.clone())
                .unwrap_or_default();
            rows.push(health_of(format!("{flag}={variant}, {window}"), &counts));
        }
    }
    rows
}

/// A row from counts: error rate, p99 and cache hit ratio (none when nothing was counted).
pub(crate) fn health_of(name: String, c: &crate::measure::metrics::Counts) -> Health {
    let s = crate::measure::metrics::summarise(0, c);
    Health {
        name,
        requests: s.requests,
        error_rate: s.error_rate,
        p99_ms: s.p99_ms,
        hit_ratio: s.hit_ratio,
    }
}

/// Distinct units (hashed visitors) the metrics store saw in one window: all of them, and
/// those exposed to each flag. Both counts cover the same window, so their ratio is a share.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UnitCounts {
    /// Start of the window (Unix ms); it ends now.
    pub(crate) since_ms: u64,
    /// Distinct units exposed to any flag.
    pub(crate) all: u64,
    /// (flag, distinct units exposed to it).
    pub(crate) flags: Vec<(String, u64)>,
}

/// The window adoption is counted over: the metrics store keeps a unit for 30 days after it
/// was first seen, so this is all it knows.
pub(crate) const ADOPTION_WINDOW_DAYS: u64 = 30;

/// One row of the overview's per-feature table.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Feature {
    pub(crate) key: String,
    pub(crate) state: String,
    /// The canary variant(s) and their share of the split; `None` without a split.
    pub(crate) rollout: Option<(String, f64)>,
    /// Distinct units exposed to the flag in the window.
    pub(crate) exposed: u64,
    /// `exposed / all units`; `None` while no unit was seen at all.
    pub(crate) adoption: Option<f64>,
    /// Proxied requests the flag routed, and the origin errors among them.
    pub(crate) requests: u64,
    pub(crate) errors: u64,
}

/// Exposed units as a share of all units (`None` when there are none).
pub(crate) fn adoption(exposed: u64, all: u64) -> Option<f64> {
    (all > 0).then(|| exposed.min(all) as f64 / all as f64)
}

/// The first `fractional` split anywhere in a targeting rule (a split may sit inside an
/// `if`, as for a staff-first rollout).
fn first_fractional(rule: &Value) -> Option<&Vec<Value>> {
    match rule {
        Value::Object(map) => map
            .get("fractional")
            .and_then(Value::as_array)
            .or_else(|| map.values().find_map(first_fractional)),
        Value::Array(items) => items.iter().find_map(first_fractional),
        _ => None,
    }
}

/// The rollout of a flag: which variant is the canary and what share of the split it gets.
/// The canary is the rollout plan's treatment (`rollout.treatment`) when there is a plan,
/// else every variant but the default. A disabled flag rolls out nothing.
pub(crate) fn rollout(flag: &Value) -> Option<(String, f64)> {
    let split = first_fractional(flag.get("targeting")?)?;
    let entries: Vec<(&str, f64)> = split
        .iter()
        .filter_map(Value::as_array)
        .filter_map(|e| {
            // flagd: a missing weight is 1.
            let weight = e.get(1).map_or(Some(1.0), Value::as_f64)?;
            Some((e.first()?.as_str()?, weight.max(0.0)))
        })
        .collect();
    let total: f64 = entries.iter().map(|(_, w)| w).sum();
    if total <= 0.0 {
        return None;
    }
    let treatment = flag
        .pointer("/metadata/rollout.treatment")
        .and_then(Value::as_str);
    let default = flag.get("defaultVariant").and_then(Value::as_str);
    let canary: Vec<&(&str, f64)> = entries
        .iter()
        .filter(|(v, _)| match treatment {
            Some(t) => *v == t,
            None => Some(*v) != default,
        })
        .collect();
    let mut names: Vec<&str> = canary.iter().map(|(v, _)| *v).collect();
    names.dedup();
    let share = if flag.get("state").and_then(Value::as_str) == Some("ENABLED") {
        canary.iter().map(|(_, w)| w).sum::<f64>() / total
    } else {
        0.0
    };
    Some((names.join("+"), share))
}

/// The per-feature table: every flag of the document with its state, rollout, adoption
/// (`units`) and the requests/errors of the series it routed (`routed`: flag → (requests,
/// errors)).
pub(crate) fn features(
    document: &Value,
    units: &UnitCounts,
    routed: &[(String, u64, u64)],
) -> Vec<Feature> {
    let Some(flags) = document.get("flags").and_then(Value::as_object) else {
        return Vec::new();
    };
    flags
        .iter()
        .map(|(key, flag)| {
            let exposed = units
                .flags
                .iter()
                .find(|(f, _)| f == key)
                .map_or(0, |(_, n)| *n);
            let (requests, errors) = routed
                .iter()
                .filter(|(f, _, _)| f == key)
                .fold((0, 0), |(r, e), (_, r2, e2)| (r + r2, e + e2));
            Feature {
                key: key.clone(),
                state: flag
                    .get("state")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_owned(),
                rollout: rollout(flag),
                exposed,
                adoption: adoption(exposed, units.all),
                requests,
                errors,
            }
        })
        .collect()
}

/// Everything the page shows.
#[derive(Debug, Clone, Default)]
pub(crate) struct Page {
    pub(crate) prefix: String,
    pub(crate) actor: String,
    pub(crate) csrf: String,
    /// A message after an action (already plain text).
    pub(crate) notice: Option<String>,
    pub(crate) health: Vec<Health>,
    /// Requests and errors per minute over the last hour, oldest first: (t ms, requests, errors).
    pub(crate) minutes: Vec<(u64, u64, u64)>,
    /// The active flag-set document.
    pub(crate) flags: Value,
    pub(crate) version: String,
    /// `experiments` of the results endpoint.
    pub(crate) experiments: Value,
    /// Experiments beyond [`MAX_EXPERIMENTS`], not shown (the CSV has them all).
    pub(crate) more_experiments: usize,
    /// Recent rollout decisions.
    pub(crate) decisions: Value,
    /// Notification outcomes per channel, per window ("last hour", "last day").
    pub(crate) notifications: Vec<(String, Vec<crate::measure::metrics::ChannelDeliveries>)>,
    /// The first [`MAX_ROLLOUTS`] plans' current gate values.
    pub(crate) rollouts: Vec<RolloutView>,
    /// Audit records, newest first (changes and failed sign-ins).
    pub(crate) audit: Value,
    /// Failed sign-ins: recorded in total, refused by the limit, records dropped.
    pub(crate) signin_counts: (u64, u64, u64),
    /// Version history, newest first.
    pub(crate) versions: Value,
    /// The overview's per-feature table.
    pub(crate) features: Vec<Feature>,
    /// Distinct units in the adoption window (the table's denominator).
    pub(crate) all_units: u64,
    /// What each listed version changed against the one before it (version → lines).
    pub(crate) diffs: Vec<(String, Vec<String>)>,
    /// The text in the editor: the active document, or a submitted one that was refused.
    pub(crate) document_text: String,
    /// Why the submitted document was refused (path, message).
    pub(crate) edit_errors: Vec<(String, String)>,
}

/// Most rollout plans whose live gate values the page reads (one or two metrics-store calls
/// each); the decision log covers the rest.
pub(crate) const MAX_ROLLOUTS: usize = 5;

/// One gate of a rollout plan as the page shows it: the current value next to its threshold.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GateRow {
    pub(crate) gate: &'static str,
    pub(crate) value: String,
    pub(crate) threshold: String,
    /// Pass / fail; `None` is undecided (no data, not reached yet, or between the
    /// sequential test's bounds), shown with `pending`.
    pub(crate) pass: Option<bool>,
    pub(crate) pending: &'static str,
}

/// A rollout plan's current stage, time in it and gate values.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RolloutView {
    pub(crate) flag: String,
    /// "stage 2 of 3 (50 %), running".
    pub(crate) stage: String,
    /// Time since the stage began; `None` when it has not started.
    pub(crate) in_stage_ms: Option<u64>,
    pub(crate) gates: Vec<GateRow>,
}

/// The gate values of one plan's current stage, from the treatment arm's counts since the
/// stage began — what `rollout::decide` reads, against what it compares them with.
pub(crate) fn rollout_view(
    plan: &crate::measure::rollout::Plan,
    state: &crate::measure::rollout::State,
    treatment: &crate::measure::rollout::Arm,
    bounds_ms: &[f64],
    now_ms: u64,
) -> RolloutView {
    let ratio = |a: u64, b: u64| (b > 0).then(|| a as f64 / b as f64);
    let p = |x: f64| format!("{:.2} %", x * 100.0);
    let in_stage_ms = state.stage_started_ms.map(|t| now_ms.saturating_sub(t));
    let mut gates = Vec::new();
    let visitors = treatment.visitors;
    let failed = ratio(treatment.error_visitors.min(visitors), visitors);
    gates.push(GateRow {
        gate: "visitors who saw an error",
        value: failed.map_or("—".into(), |r| {
            format!("{} ({} of {visitors})", p(r), treatment.error_visitors)
        }),
        threshold: format!(
            "advance ≤ {}, roll back ≥ {} (sequential test)",
            p(plan.advance_error_rate),
            p(plan.rollback_error_rate)
        ),
        pass: failed.and_then(|r| {
            if r <= plan.advance_error_rate {
                Some(true)
            } else if r >= plan.rollback_error_rate {
                Some(false)
            } else {
                None
            }
        }),
        pending: if failed.is_some() {
            "between the bounds"
        } else {
            "no data"
        },
    });
    gates.push(GateRow {
        gate: "treatment visitors",
        value: visitors.to_string(),
        threshold: format!("≥ {}", plan.min_sample.max(1)),
        pass: (visitors >= plan.min_sample.max(1)).then_some(true),
        pending: "not yet",
    });
    gates.push(GateRow {
        gate: "time in stage",
        value: in_stage_ms.map_or("not started".into(), duration),
        threshold: format!("≥ {}", duration(plan.min_duration_ms)),
        pass: in_stage_ms
            .filter(|t| *t >= plan.min_duration_ms)
            .map(|_| true),
        pending: "not yet",
    });
    if let Some(max) = plan.max_p99_ms {
        let p99 = crate::measure::stats::quantile(bounds_ms, &treatment.latency, 0.99);
        gates.push(GateRow {
            gate: "p99 latency",
            value: p99.map_or("—".into(), |v| format!("{v:.0} ms")),
            threshold: format!("≤ {max:.0} ms"),
            pass: p99.map(|v| v <= max),
            pending: "no data",
        });
    }
    if let Some(min) = plan.min_cache_hit_ratio {
        let hits = ratio(
            treatment.cache_hits,
            treatment.cache_hits + treatment.cache_misses,
        );
        gates.push(GateRow {
            gate: "cache hit ratio",
            value: hits.map_or("—".into(), p),
            threshold: format!("≥ {}", p(min)),
            pass: hits.map(|h| h >= min),
            pending: "no cacheable requests",
        });
    }
    if let Some(min) = plan.min_delivery_success {
        let worst = treatment
            .deliveries
            .iter()
            .filter(|c| {
                plan.delivery_channel
                    .as_ref()
                    .is_none_or(|ch| *ch == c.channel)
            })
            .filter_map(|c| Some((c.channel.as_str(), c.success_ratio()?)))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        gates.push(GateRow {
            gate: "notification delivery success",
            value: worst.map_or("—".into(), |(ch, r)| format!("{} ({ch})", p(r))),
            threshold: format!(
                "≥ {} ({})",
                p(min),
                plan.delivery_channel.as_deref().unwrap_or("worst channel")
            ),
            pass: worst.map(|(_, r)| r >= min),
            pending: "no settled delivery",
        });
    }
    let percent = plan.stages.get(state.stage).copied().unwrap_or(0);
    RolloutView {
        flag: plan.flag.clone(),
        stage: format!(
            "stage {} of {} ({percent} %), {}",
            state.stage + 1,
            plan.stages.len(),
            state.status.as_str()
        ),
        in_stage_ms,
        gates,
    }
}

/// "1 h 05 min", "3 min", "45 s".
fn duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min", s / 60),
        _ => format!("{} h {:02} min", s / 3600, (s % 3600) / 60),
    }
}

/// Most experiments whose results the page reads (one metrics-store call each).
pub(crate) const MAX_EXPERIMENTS: usize = 10;

/// Most change lines shown for one version.
const DIFF_LINES: usize = 12;

/// What changed from `old` to `new`, one line per changed leaf (`path: old → new`), for
/// people reading the version history; at most `DIFF_LINES` lines.
pub(crate) fn diff(old: &Value, new: &Value) -> Vec<String> {
    fn show(v: Option<&Value>) -> String {
        v.map_or("(absent)".to_owned(), |v| {
            let t = v.to_string();
            if t.chars().count() > 60 {
                format!("{}…", t.chars().take(60).collect::<String>())
            } else {
                t
            }
        })
    }
    fn walk(path: &str, a: Option<&Value>, b: Option<&Value>, out: &mut Vec<String>) {
        if out.len() > DIFF_LINES || a == b {
            return;
        }
        if let (Some(Value::Object(x)), Some(Value::Object(y))) = (a, b) {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                walk(&p, x.get(k), y.get(k), out);
            }
        } else {
            out.push(format!("{path}: {} → {}", show(a), show(b)));
        }
    }
    let mut out = Vec::new();
    walk("", Some(old), Some(new), &mut out);
    if out.len() > DIFF_LINES {
        out.truncate(DIFF_LINES);
        out.push("…".into());
    }
    out
}

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:72rem;padding:1rem;color:#1b1b1b}\
h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ccc}\
table{border-collapse:collapse;width:100%;display:block;overflow-x:auto}th,td{text-align:left;padding:.3rem .6rem;border-bottom:1px solid #eee;vertical-align:top}\
.pass{color:#116329;font-weight:600}.fail{color:#a40e26;font-weight:600}.na{color:#666}\
button{font:inherit;padding:.2rem .7rem;cursor:pointer}button:focus,a:focus,summary:focus{outline:3px solid #0969da}\
.danger{background:#a40e26;color:#fff;border:0}.notice{background:#fff8c5;padding:.5rem}\
form{display:inline}code{font-size:.85em}svg text{font-size:11px}\
svg{max-width:100%;height:auto}textarea{width:100%;box-sizing:border-box}";

/// The stylesheet, and its CSP hash source (`'sha256-…'`), so the page needs no
/// `'unsafe-inline'`.
pub(crate) fn style() -> (&'static str, String) {
    use base64::Engine as _;
    use sha2::{Digest, Sha256};
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(STYLE.as_bytes()));
    (STYLE, format!("'sha256-{hash}'"))
}

/// The page's Content-Security-Policy: nothing but its own inline stylesheet and forms.
pub(crate) fn csp() -> String {
    format!(
        "default-src 'none'; style-src {}; img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        style().1
    )
}

fn head(title: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{}</title><style>{}</style></head><body>",
        esc(title),
        STYLE
    )
}

/// The sign-in page.
pub(crate) fn login(prefix: &str, error: Option<&str>) -> String {
    signin_page(prefix, error, true)
}

/// The sign-in page; without `token_form` (`ACCESS_ONLY=true`) it only says to come through
/// Cloudflare Access.
pub(crate) fn signin_page(prefix: &str, error: Option<&str>, token_form: bool) -> String {
    let mut out = head("edgeflags — sign in");
    out.push_str("<main><h1>edgeflags dashboard</h1>");
    if let Some(e) = error {
        out.push_str(&format!(
            "<p class=\"notice\" role=\"alert\">{}</p>",
            esc(e)
        ));
    }
    if !token_form {
        out.push_str(
            "<p>Token sign-in is off on this deployment (<code>ACCESS_ONLY</code>): open this page \
             through Cloudflare Access.</p></main></body></html>",
        );
        return out;
    }
    out.push_str(&format!(
        "<form method=\"post\" action=\"{p}/dashboard/login\"><label for=\"token\">Admin token</label> \
         <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" required> \
         <label for=\"name\">Token name (optional)</label> \
         <input id=\"name\" name=\"name\" autocomplete=\"username\"> \
         <button type=\"submit\">Sign in</button></form></main></body></html>",
        p = esc(prefix)
    ));
    out
}

fn pct(x: Option<f64>) -> String {
    x.map_or("—".into(), |x| format!("{:.2} %", x * 100.0))
}

/// A pass/fail mark; `None` (no data) is neither.
fn mark(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "<span class=\"pass\">✓ pass</span>",
        Some(false) => "<span class=\"fail\">✗ fail</span>",
        None => "<span class=\"na\">no data</span>",
    }
}

/// A hidden CSRF field and a button posting `action` (with extra hidden fields).
fn action(page: &Page, action: &str, fields: &[(&str, &str)], label: &str, class: &str) -> String {
    let mut out = format!(
        "<form method=\"post\" action=\"{}/dashboard/actions/{}\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(&page.prefix),
        esc(action),
        esc(&page.csrf)
    );
    for (k, v) in fields {
        out.push_str(&format!(
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
            esc(k),
            esc(v)
        ));
    }
    out.push_str(&format!(
        "<button type=\"submit\" class=\"{}\">{}</button></form>",
        esc(class),
        esc(label)
    ));
    out
}

/// One bar: variant, conversion rate, its 95 % interval.
pub(crate) type Bar = (String, f64, Option<(f64, f64)>);

/// A horizontal bar per variant: the conversion rate, with its 95 % interval as a whisker.
pub(crate) fn conversion_svg(variants: &[Bar]) -> String {
    let max = variants
        .iter()
        .map(|(_, r, ci)| ci.map_or(*r, |(_, hi)| hi.max(*r)))
        .fold(0.0_f64, f64::max)
        .max(0.01);
    let (w, row) = (300.0, 22.0);
    let x = |v: f64| 90.0 + (v / max).clamp(0.0, 1.0) * w;
    let mut out = format!(
        "<svg role=\"img\" aria-label=\"conversion rate per variant with 95% intervals\" width=\"420\" height=\"{}\" viewBox=\"0 0 420 {}\">",
        row * variants.len() as f64 + 4.0,
        row * variants.len() as f64 + 4.0
    );
    for (i, (name, rate, ci)) in variants.iter().enumerate() {
        let y = i as f64 * row + 2.0;
        out.push_str(&format!(
            "<text x=\"0\" y=\"{:.1}\">{}</text><rect x=\"90\" y=\"{y:.1}\" width=\"{:.1}\" height=\"14\" fill=\"#8cb4ff\"/>",
            y + 11.0,
            esc(name),
            x(*rate) - 90.0
        ));
        if let Some((lo, hi)) = ci {
            out.push_str(&format!(
                "<line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#1b1b1b\" stroke-width=\"2\"/>",
                x(*lo),
                x(*hi),
                y + 7.0,
                y + 7.0
            ));
        }
        out.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\">{:.1} %</text>",
            x(ci.map_or(*rate, |c| c.1)) + 4.0,
            y + 11.0,
            rate * 100.0
        ));
    }
    out.push_str("</svg>");
    out
}

/// Requests per minute as bars, the errors among them in red, one bar per minute.
pub(crate) fn minutes_svg(minutes: &[(u64, u64, u64)]) -> String {
    let max = minutes.iter().map(|m| m.1).max().unwrap_or(0).max(1) as f64;
    let (w, h) = (6.0, 60.0);
    let mut out = format!(
        "<svg role=\"img\" aria-label=\"requests and errors per minute\" width=\"{0:.0}\" height=\"{h:.0}\" viewBox=\"0 0 {0:.0} {h:.0}\">",
        w * minutes.len().max(1) as f64
    );
    for (i, (_, requests, errors)) in minutes.iter().enumerate() {
        let x = i as f64 * w;
        let bar = *requests as f64 / max * h;
        let err = *errors as f64 / max * h;
        out.push_str(&format!(
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bar:.1}\" fill=\"#8cb4ff\"/>",
            h - bar,
            w - 1.0
        ));
        if *errors > 0 {
            out.push_str(&format!(
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#a40e26\"/>",
                h - err,
                w - 1.0,
                err.max(1.0)
            ));
        }
    }
    out.push_str("</svg>");
    out
}

/// The split weights of a flag's targeting when it is (or starts with) a `fractional`.
fn weights(flag: &Value) -> String {
    flag.pointer("/targeting/fractional")
        .and_then(Value::as_array)
        .map(|args| {
            args.iter()
                .filter_map(Value::as_array)
                .filter_map(|e| {
                    Some(format!(
                        "{} {}",
                        e.first()?.as_str()?,
                        e.get(1).map_or("1".into(), |w| w.to_string())
                    ))
                })
                .collect::<Vec<_>>()
                .join(" / ")
        })
        .unwrap_or_default()
}

/// Notification delivery per channel and window: every outcome counted, and the delivery
/// success ratio (`ChannelDeliveries::success_ratio`) against the plan's target.
fn notifications_table(
    windows: &[(String, Vec<crate::measure::metrics::ChannelDeliveries>)],
) -> String {
    let mut out = format!(
        "<h3 id=\"notifications\">Notification delivery</h3><p>Delivery success = delivered / \
         (delivered + failed); gone, retried and dropped are counted but are not verdicts on the \
         channel.</p><table aria-labelledby=\"notifications\"><thead><tr><th>window</th><th>channel</th>\
         <th>delivered</th><th>failed</th><th>other</th><th>delivery success (target &gt; {} %)</th></tr></thead><tbody>",
        TARGET_DELIVERY_SUCCESS * 100.0
    );
    for (window, channels) in windows {
        if channels.is_empty() {
            out.push_str(&format!(
                "<tr><td>{}</td><td>—</td><td>0</td><td>0</td><td>—</td><td>— {}</td></tr>",
                esc(window),
                mark(None)
            ));
        }
        for c in channels {
            let other: Vec<String> = c
                .shown()
                .into_iter()
                .filter(|(o, n)| {
                    *n > 0
                        && *o != crate::measure::metrics::DELIVERED
                        && *o != crate::measure::metrics::FAILED
                })
                .map(|(o, n)| format!("{} {n}", esc(o)))
                .collect();
            let ratio = c.success_ratio();
            out.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} {}</td></tr>",
                esc(window),
                esc(&c.channel),
                c.get(crate::measure::metrics::DELIVERED),
                c.get(crate::measure::metrics::FAILED),
                if other.is_empty() {
                    "—".into()
                } else {
                    other.join(", ")
                },
                pct(ratio),
                mark(ratio.map(|r| r > TARGET_DELIVERY_SUCCESS)),
            ));
        }
    }
    out.push_str("</tbody></table>");
    out
}

/// The dashboard page.
pub(crate) fn render(page: &Page) -> String {
    let mut out = head("edgeflags — dashboard");
    out.push_str(&format!(
        "<header><h1>edgeflags — success metrics</h1><p>Signed in as <b>{}</b>, flag-set version <code>{}</code>. {}</p></header><main>",
        esc(&page.actor),
        esc(&page.version),
        action(page, "logout", &[], "Sign out", "")
    ));
    if let Some(n) = &page.notice {
        out.push_str(&format!(
            "<p class=\"notice\" role=\"status\">{}</p>",
            esc(n)
        ));
    }

    // Overview: the plan's table.
    out.push_str(&format!(
        "<h2 id=\"overview\">Overview</h2><table><thead><tr><th>series</th><th>requests</th>\
         <th>error rate (target &lt; {:.1} %)</th><th>p99 (target &lt; {} ms)</th><th>cache hit ratio (target &gt; {} %)</th></tr></thead><tbody>",
        TARGET_ERROR_RATE * 100.0,
        TARGET_P99_MS,
        TARGET_HIT_RATIO * 100.0
    ));
    for h in &page.health {
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{} {}</td><td>{} {}</td><td>{} {}</td></tr>",
            esc(&h.name),
            h.requests,
            pct(h.error_rate),
            mark(h.error_rate.map(|r| r < TARGET_ERROR_RATE)),
            h.p99_ms.map_or("—".into(), |p| format!("{p:.0} ms")),
            mark(h.p99_ms.map(|p| p < TARGET_P99_MS)),
            pct(h.hit_ratio),
            mark(h.hit_ratio.map(|r| r > TARGET_HIT_RATIO)),
        ));
    }
    out.push_str("</tbody></table>");
    if !page.minutes.is_empty() {
        out.push_str("<p>Requests (bars) and origin errors (red) per minute, last hour:</p>");
        out.push_str(&minutes_svg(&page.minutes));
    }

    out.push_str(&notifications_table(&page.notifications));

    // Per feature: the plan's rollout %, adoption % and errors.
    out.push_str(&format!(
        "<h3 id=\"features\">Per feature</h3><p>Adoption: distinct units (visitors) exposed to the flag \
         / all {} distinct units exposed to any flag, both over the last {ADOPTION_WINDOW_DAYS} days \
         (exposures are recorded for the flag that routes proxied requests and for experiments). \
         Rollout: the canary variant's share of the split. Errors: origin errors of the requests the flag routed.</p>\
         <table><thead><tr><th>feature</th><th>state</th><th>rollout</th><th>adoption</th><th>requests</th><th>errors</th></tr></thead><tbody>",
        page.all_units
    ));
    for f in &page.features {
        out.push_str(&format!(
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&f.key),
            esc(&f.state),
            f.rollout.as_ref().map_or("— (no split)".into(), |(v, share)| format!(
                "{:.0} % {}",
                share * 100.0,
                esc(v)
            )),
            // Exposures are recorded for the proxied route's flag and for experiments only:
            // none recorded is "not measured", not 0 %.
            match f.adoption {
                Some(a) if f.exposed > 0 => format!("{:.1} % ({} units)", a * 100.0, f.exposed),
                _ => "— (no exposures recorded)".into(),
            },
            f.requests,
            if f.requests == 0 {
                "—".into()
            } else {
                format!(
                    "{} ({}) {}",
                    f.errors,
                    pct(Some(f.errors as f64 / f.requests as f64)),
                    mark(Some((f.errors as f64 / f.requests as f64) < TARGET_ERROR_RATE))
                )
            }
        ));
    }
    out.push_str("</tbody></table>");

    // Flags, with the kill switch.
    out.push_str("<h2 id=\"flags\">Flags</h2><table><thead><tr><th>flag</th><th>state</th><th>variants</th><th>split</th><th>rollout</th><th>kill switch</th></tr></thead><tbody>");
    if let Some(flags) = page.flags.get("flags").and_then(Value::as_object) {
        for (key, flag) in flags {
            let state = flag.get("state").and_then(Value::as_str).unwrap_or("?");
            let variants: Vec<&str> = flag
                .get("variants")
                .and_then(Value::as_object)
                .map(|v| v.keys().map(String::as_str).collect())
                .unwrap_or_default();
            let meta = |k: &str| flag.pointer(&format!("/metadata/{}", k.replace('/', "~1")));
            let rollout = match meta("rollout.stages") {
                Some(stages) => format!(
                    "stages {} · stage {} · {} · {}",
                    esc(stages.as_str().unwrap_or("")),
                    meta("rollout.stage").map_or("0".into(), Value::to_string),
                    esc(meta("rollout.status")
                        .and_then(Value::as_str)
                        .unwrap_or("running")),
                    esc(meta("rollout.reason").and_then(Value::as_str).unwrap_or(""))
                ),
                None => String::new(),
            };
            let toggle = if state == "ENABLED" {
                format!(
                    "<details><summary>Disable…</summary>Turn <b>{}</b> off for everyone now? {}</details>",
                    esc(key),
                    action(page, "disable", &[("flag", key)], "Yes, disable", "danger")
                )
            } else {
                action(page, "enable", &[("flag", key)], "Enable", "")
            };
            out.push_str(&format!(
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(key),
                if state == "ENABLED" { "<span class=\"pass\">ENABLED</span>".to_owned() } else { format!("<span class=\"fail\">{}</span>", esc(state)) },
                esc(&variants.join(", ")),
                esc(&weights(flag)),
                rollout,
                toggle
            ));
        }
    }
    out.push_str("</tbody></table>");

    // Rollouts.
    out.push_str("<h2 id=\"rollouts\">Guarded rollouts</h2><p>");
    out.push_str(&action(page, "evaluate", &[], "Evaluate now", ""));
    out.push(' ');
    out.push_str(&action(page, "dry-run", &[], "Dry run", ""));
    out.push_str("</p>");
    for r in &page.rollouts {
        out.push_str(&format!(
            "<h3 id=\"gates-{}\"><code>{}</code></h3><p>{}; time in stage: {}.</p><table aria-labelledby=\"gates-{0}\"><thead><tr><th>gate</th><th>now</th><th>threshold</th><th>mark</th></tr></thead><tbody>",
            esc(&r.flag),
            esc(&r.flag),
            esc(&r.stage),
            r.in_stage_ms.map_or("not started".into(), duration)
        ));
        for g in &r.gates {
            out.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                g.gate,
                esc(&g.value),
                esc(&g.threshold),
                match g.pass {
                    Some(ok) => mark(Some(ok)).to_owned(),
                    None => format!("<span class=\"na\">{}</span>", g.pending),
                }
            ));
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("<h3 id=\"decision-log\">Decision log</h3><table><thead><tr><th>when</th><th>flag</th><th>decision</th><th>reason</th></tr></thead><tbody>");
    for d in page.decisions.as_array().into_iter().flatten().take(20) {
        out.push_str(&format!(
            "<tr><td>{}</td><td><code>{}</code></td><td>{}{}</td><td>{}</td></tr>",
            d.get("atMs")
                .and_then(Value::as_u64)
                .map_or(String::new(), iso),
            esc(d.get("flag").and_then(Value::as_str).unwrap_or("")),
            esc(d.get("action").and_then(Value::as_str).unwrap_or("")),
            if d.get("dryRun").and_then(Value::as_bool) == Some(true) {
                " (dry run)"
            } else {
                ""
            },
            esc(d.get("reason").and_then(Value::as_str).unwrap_or("")),
        ));
    }
    out.push_str("</tbody></table>");

    // Experiments.
    out.push_str(&format!(
        "<h2 id=\"experiments\">Experiments</h2><p><a href=\"{}/features/experiments/results?format=csv\">Download CSV</a>{}</p>",
        esc(&page.prefix),
        if page.more_experiments > 0 {
            format!(
                " — the first {MAX_EXPERIMENTS} are shown here, {} more are in the CSV",
                page.more_experiments
            )
        } else {
            String::new()
        }
    ));
    for e in page.experiments.as_array().into_iter().flatten() {
        let variants: Vec<Bar> = e
            .get("variants")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|v| {
                (
                    v.get("variant")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                    v.get("conversionRate")
                        .and_then(Value::as_f64)
                        .unwrap_or(0.0),
                    v.get("conversionInterval")
                        .and_then(|ci| Some((ci.get("low")?.as_f64()?, ci.get("high")?.as_f64()?))),
                )
            })
            .collect();
        let srm = e.pointer("/sampleRatio/mismatch").and_then(Value::as_bool) == Some(true);
        out.push_str(&format!(
            "<h3><code>{}</code></h3>{}{}<table><thead><tr><th>variant</th><th>units</th><th>conversions</th><th>uplift vs control (95 %)</th></tr></thead><tbody>",
            esc(e.get("flag").and_then(Value::as_str).unwrap_or("")),
            if srm { "<p class=\"fail\" role=\"alert\">Sample-ratio mismatch: the split is not what was configured; do not trust these results.</p>" } else { "" },
            conversion_svg(&variants)
        ));
        for v in e
            .get("variants")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let uplift = v
                .get("uplift")
                .filter(|u| !u.is_null())
                .map_or("—".into(), |u| {
                    format!(
                        "{:+.2} pts [{:+.2}, {:+.2}]",
                        u.get("absolute").and_then(Value::as_f64).unwrap_or(0.0) * 100.0,
                        u.pointer("/interval/low")
                            .and_then(Value::as_f64)
                            .unwrap_or(0.0)
                            * 100.0,
                        u.pointer("/interval/high")
                            .and_then(Value::as_f64)
                            .unwrap_or(0.0)
                            * 100.0
                    )
                });
            out.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(v.get("variant").and_then(Value::as_str).unwrap_or("")),
                v.get("units").and_then(Value::as_u64).unwrap_or(0),
                v.get("conversions").and_then(Value::as_u64).unwrap_or(0),
                esc(&uplift)
            ));
        }
        out.push_str("</tbody></table>");
    }

    // Versions and audit.
    // Editing the whole set: validated like an admin PUT, refused with every error's path.
    let errors = if page.edit_errors.is_empty() {
        String::new()
    } else {
        let items: String = page
            .edit_errors
            .iter()
            .map(|(p, m)| format!("<li><code>{}</code>: {}</li>", esc(p), esc(m)))
            .collect();
        format!("<div class=\"notice\" role=\"alert\"><p>Not saved:</p><ul>{items}</ul></div>")
    };
    out.push_str(&format!(
        "<h2 id=\"edit\">Edit the flag set</h2>{errors}<form method=\"post\" action=\"{}/dashboard/actions/replace\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"version\" value=\"{}\">\
         <label for=\"document\">flagd document (saved only while version <code>{}</code> is active)</label><br>\
         <textarea id=\"document\" name=\"document\" rows=\"16\" cols=\"100\" spellcheck=\"false\">{}</textarea><br>\
         <button type=\"submit\">Validate and save</button></form>",
        esc(&page.prefix),
        esc(&page.csrf),
        esc(&page.version),
        esc(&page.version),
        esc(&page.document_text)
    ));

    out.push_str("<h2 id=\"versions\">Versions</h2><table><thead><tr><th>version</th><th>activated</th><th>changes</th><th></th></tr></thead><tbody>");
    for v in page.versions.as_array().into_iter().flatten().take(20) {
        let version = v.get("version").and_then(Value::as_str).unwrap_or("");
        let current = version == page.version;
        let changes = page
            .diffs
            .iter()
            .find(|(v, _)| v == version)
            .map(|(_, lines)| {
                lines
                    .iter()
                    .map(|l| format!("<code>{}</code>", esc(l)))
                    .collect::<Vec<_>>()
                    .join("<br>")
            })
            .unwrap_or_default();
        out.push_str(&format!(
            "<tr><td><code>{}</code>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(version),
            if current { " (active)" } else { "" },
            v.get("activatedAtMs")
                .and_then(Value::as_u64)
                .map_or(String::new(), iso),
            changes,
            if current {
                String::new()
            } else {
                action(
                    page,
                    "rollback",
                    &[("version", version)],
                    "Roll back to this",
                    "",
                )
            }
        ));
    }
    let (failed, limited, dropped) = page.signin_counts;
    out.push_str(&format!("</tbody></table><h2 id=\"audit\">Audit</h2><p>Failed sign-ins: {failed} recorded, \
        {limited} more refused by the limit ({SIGNIN_FAILURES} failures per address per {} minutes), {dropped} old records dropped.</p>", SIGNIN_WINDOW_MS / 60_000));
    out.push_str("<table><thead><tr><th>when</th><th>who</th><th>what</th><th>flag</th><th>versions</th><th>summary</th></tr></thead><tbody>");
    for r in page.audit.as_array().into_iter().flatten().take(30) {
        let s = |k: &str| esc(r.get(k).and_then(Value::as_str).unwrap_or(""));
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            r.get("atMs")
                .and_then(Value::as_u64)
                .map_or(String::new(), iso),
            s("actor"),
            s("action"),
            s("flag"),
            if s("toVersion").is_empty() {
                String::new()
            } else {
                format!(
                    "<code>{}</code> → <code>{}</code>",
                    s("fromVersion"),
                    s("toVersion")
                )
            },
            s("summary")
        ));
    }
    out.push_str("</tbody></table></main></body></html>");
    out
}

/// Milliseconds since the epoch as an RFC 3339 UTC time (for people; no time zone lookup).
fn iso(ms: u64) -> String {
    crate::httpcache::format_http_date(ms / 1000)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const KEY: &[u8] = b"session-key-0123456789";

    #[test]
    fn sessions_are_signed_expire_and_name_their_actor() {
        let s = session("alice", 1_000, KEY);
        assert_eq!(open_session(&s, KEY, 999).as_deref(), Some("alice"));
        assert_eq!(open_session(&s, KEY, 1_000), None, "expired");
        assert_eq!(open_session(&s, b"another-key-0123456789", 999), None);
        let forged = s.replacen("616c696365", "6d616c6c6f7279", 1); // alice → mallory
        assert_eq!(open_session(&forged, KEY, 999), None);
        assert_eq!(open_session("garbage", KEY, 0), None);
        assert_ne!(csrf(&s, KEY), csrf(&session("alice", 2_000, KEY), KEY));
        assert!(same_origin(Some("https://e.example"), "https://e.example"));
        assert!(!same_origin(
            Some("https://evil.example"),
            "https://e.example"
        ));
        assert!(!same_origin(None, "https://e.example"));
        assert!(cookie(Some("v"), "/__edge/dashboard", true)
            .contains("HttpOnly; SameSite=Strict; Secure"));
    }

    #[test]
    fn the_page_escapes_everything_it_shows_and_needs_no_script() {
        let page = Page {
            prefix: "/__edge".into(),
            actor: "<b>alice</b>".into(),
            csrf: "c\"s".into(),
            version: "v1".into(),
            flags: json!({"flags": {"<x>": {"state": "ENABLED", "variants": {"on": true}, "targeting": {"fractional": [["on", 90], ["off", 10]]}}}}),
            audit: json!([{"atMs": 0, "actor": "<script>", "action": "patch", "toVersion": "v1", "summary": "s"}]),
            health: vec![Health {
                name: "backend=v2".into(),
                requests: 10,
                error_rate: Some(0.02),
                p99_ms: Some(150.0),
                hit_ratio: None,
            }],
            ..Page::default()
        };
        let html = render(&page);
        assert!(
            !html.contains("<script"),
            "no script element, and user data escaped"
        );
        assert!(html.contains("&lt;b&gt;alice&lt;/b&gt;") && html.contains("&lt;x&gt;"));
        assert!(html.contains("value=\"c&quot;s\""));
        assert!(html.contains("on 90 / off 10"));
        assert!(
            html.contains("2.00 % <span class=\"fail\">")
                && html.contains("150 ms <span class=\"pass\">")
        );
        assert!(html.contains("no data"));
        assert!(!csp().contains("unsafe"), "{}", csp());
        assert!(csp().starts_with("default-src 'none'; style-src 'sha256-"));
    }

    #[test]
    fn a_diff_lists_changed_leaves_with_their_paths() {
        let old = json!({"flags": {"a": {"state": "ENABLED", "variants": {"on": true}}, "b": {"state": "ENABLED"}}});
        let new = json!({"flags": {"a": {"state": "DISABLED", "variants": {"on": true}}, "c": {"state": "ENABLED"}}});
        assert_eq!(
            diff(&old, &new),
            vec![
                "flags.a.state: \"ENABLED\" → \"DISABLED\"",
                "flags.b: {\"state\":\"ENABLED\"} → (absent)",
                "flags.c: (absent) → {\"state\":\"ENABLED\"}",
            ]
        );
        assert!(diff(&old, &old).is_empty());
        let many: serde_json::Map<String, Value> =
            (0..30).map(|i| (format!("f{i:02}"), json!(i))).collect();
        let d = diff(&json!({}), &Value::Object(many));
        assert_eq!(d.len(), DIFF_LINES + 1);
        assert_eq!(d.last().map(String::as_str), Some("…"));
    }

    #[test]
    fn adoption_is_exposed_units_over_all_units_in_one_window() {
        assert_eq!(adoption(0, 0), None, "no units seen: no share");
        assert_eq!(adoption(25, 100), Some(0.25));
        assert_eq!(adoption(100, 100), Some(1.0));
        assert_eq!(adoption(120, 100), Some(1.0), "never above 100 %");
    }

    #[test]
    fn the_rollout_is_the_canary_share_of_the_split() {
        let plan = json!({"state": "ENABLED", "defaultVariant": "v1",
            "targeting": {"fractional": [["v1", 90], ["v2", 10]]},
            "metadata": {"rollout.treatment": "v2"}});
        assert_eq!(rollout(&plan), Some(("v2".into(), 0.1)));
        // Without a plan: every variant but the default; a split inside an `if`; weight 1
        // when omitted.
        let nested = json!({"state": "ENABLED", "defaultVariant": "off",
            "targeting": {"if": [{"$ref": "staff"}, "on", {"fractional": [["on"], ["off", 3]]}]}});
        assert_eq!(rollout(&nested), Some(("on".into(), 0.25)));
        let disabled = json!({"state": "DISABLED", "defaultVariant": "v1",
            "targeting": {"fractional": [["v1", 50], ["v2", 50]]}});
        assert_eq!(rollout(&disabled), Some(("v2".into(), 0.0)));
        assert_eq!(
            rollout(&json!({"state": "ENABLED", "defaultVariant": "a"})),
            None
        );
        let zero = json!({"state": "ENABLED", "targeting": {"fractional": [["a", 0]]}});
        assert_eq!(rollout(&zero), None);
    }

    #[test]
    fn the_feature_table_joins_flags_units_and_routed_errors() {
        let doc = json!({"flags": {
            "backend": {"state": "ENABLED", "defaultVariant": "v1",
                "targeting": {"fractional": [["v1", 50], ["v2", 50]]}},
            "banner": {"state": "DISABLED", "defaultVariant": "none"}}});
        let units = UnitCounts {
            since_ms: 0,
            all: 40,
            flags: vec![("backend".into(), 30)],
        };
        let routed = vec![("backend".into(), 100, 1), ("backend".into(), 100, 3)];
        let rows = features(&doc, &units, &routed);
        assert_eq!(rows.len(), 2);
        let b = &rows[0];
        assert_eq!(
            (b.key.as_str(), b.exposed, b.adoption),
            ("backend", 30, Some(0.75))
        );
        assert_eq!((b.requests, b.errors), (200, 4));
        assert_eq!(b.rollout, Some(("v2".into(), 0.5)));
        assert_eq!((rows[1].exposed, rows[1].adoption), (0, Some(0.0)));
        let html = render(&Page {
            features: rows,
            all_units: 40,
            ..Page::default()
        });
        assert!(html.contains("<td>50 % v2</td><td>75.0 % (30 units)</td><td>200</td><td>4 (2.00 %) <span class=\"fail\">"), "{html}");
        assert!(html.contains("<td>— (no exposures recorded)</td>"));
        assert!(features(&json!(null), &units, &routed).is_empty());
    }

    #[test]
    fn failed_sign_ins_are_limited_per_window_and_recorded_without_secrets() {
        let mut w = None;
        for i in 0..SIGNIN_FAILURES {
            assert_eq!(
                signin_gate(w, 1_000 + i),
                Ok(()),
                "failure {i} still allowed"
            );
            w = Some(signin_failed(w, 1_000 + i));
        }
        assert_eq!(w, Some((1_000, SIGNIN_FAILURES)));
        // Limited until the window (from the first failure) ends, with the seconds to wait.
        assert_eq!(signin_gate(w, 1_000), Err(SIGNIN_WINDOW_MS / 1000));
        assert_eq!(signin_gate(w, 1_000 + SIGNIN_WINDOW_MS - 1), Err(1));
        assert_eq!(signin_gate(w, 1_000 + SIGNIN_WINDOW_MS), Ok(()));
        // A failure after the window starts a new one.
        assert_eq!(
            signin_failed(w, 1_000 + SIGNIN_WINDOW_MS),
            (1_000 + SIGNIN_WINDOW_MS, 1)
        );
        let r = signin_record(
            &SigninAttempt {
                client: "203.0.113.7".into(),
                ok: false,
                name: Some("ops".into()),
                reason: "wrong admin token".into(),
            },
            5,
        );
        assert_eq!(r.actor, "anonymous (203.0.113.7)");
        assert_eq!(r.action, "sign-in failed");
        assert_eq!(r.summary, "wrong admin token (token name \"ops\")");

        // A JWT's `alg` is the client's text: an Access token refused for it is recorded
        // clipped, like the address.
        let e = crate::jwt::JwtError::Algorithm("X".repeat(10_000));
        let r = signin_record(
            &SigninAttempt {
                client: "203.0.113.7".into(),
                ok: false,
                name: None,
                reason: format!("Cloudflare Access token refused: {e}"),
            },
            5,
        );
        assert!(
            r.summary.chars().count() <= SIGNIN_REASON_CHARS + 1,
            "{}",
            r.summary.len()
        );
        assert!(
            r.summary.starts_with("Cloudflare Access token refused: ") && r.summary.ends_with('…')
        );
    }

    #[test]
    fn access_settings_claims_and_where_the_token_comes_from() {
        assert_eq!(Access::from_vars(None, Some(" ")), Ok(None));
        assert!(Access::from_vars(Some("https://t.cloudflareaccess.com"), None).is_err());
        let a = Access::from_vars(Some("https://t.cloudflareaccess.com/"), Some("tag"))
            .unwrap()
            .unwrap();
        assert_eq!(
            a.certs_url(),
            "https://t.cloudflareaccess.com/cdn-cgi/access/certs"
        );
        for bad in [
            "http://t.cloudflareaccess.com",
            "https://",
            "https://a/b",
            "ftp://x",
        ] {
            assert!(Access::from_vars(Some(bad), Some("tag")).is_err(), "{bad}");
        }
        assert!(Access::from_vars(Some("http://127.0.0.1:9000"), Some("tag")).is_ok());
        assert_eq!(
            Access::assertion(None, Some("a=1; CF_Authorization=tok")).as_deref(),
            Some("tok")
        );
        assert_eq!(
            Access::assertion(Some("h"), Some("CF_Authorization=c")).as_deref(),
            Some("h")
        );
        assert_eq!(Access::assertion(None, Some("a=1")), None);

        use crate::jwt::{Alg, JwtError, Token};
        let token = |alg, claims: Value| Token {
            alg,
            kid: None,
            claims,
            signing_input: String::new(),
            signature: Vec::new(),
        };
        let good = json!({"sub": "u", "email": "alice@example.com", "iss": a.team, "aud": ["tag"], "exp": 2_000});
        assert_eq!(
            a.check(&token(Alg::Rs256, good.clone()), 1_000),
            Ok("alice@example.com".into())
        );
        assert!(matches!(
            a.check(&token(Alg::Es256, good.clone()), 1_000),
            Err(JwtError::Algorithm(_))
        ));
        assert_eq!(
            a.check(&token(Alg::Rs256, good.clone()), 3_000),
            Err(JwtError::Expired)
        );
        let mut other = good.clone();
        other["aud"] = json!(["another-app"]);
        assert_eq!(
            a.check(&token(Alg::Rs256, other), 1_000),
            Err(JwtError::Audience)
        );
        let mut service = good;
        service.as_object_mut().unwrap().remove("email");
        assert_eq!(
            a.check(&token(Alg::Rs256, service), 1_000),
            Err(JwtError::NoSubject)
        );
    }

    #[test]
    fn the_access_team_domain_is_parsed_not_prefix_matched() {
        // (setting, accepted issuer or None when refused)
        let table: &[(&str, Option<&str>)] = &[
            (
                "https://t.cloudflareaccess.com",
                Some("https://t.cloudflareaccess.com"),
            ),
            (
                "https://T.cloudflareaccess.com/",
                Some("https://t.cloudflareaccess.com"),
            ),
            ("https://t.example:8443", Some("https://t.example:8443")),
            ("http://127.0.0.1:9000", Some("http://127.0.0.1:9000")),
            ("http://localhost:9000/", Some("http://localhost:9000")),
            ("http://localhost", Some("http://localhost")),
            ("http://[::1]:9000", Some("http://[::1]:9000")),
            // userinfo: the host is evil.example, not localhost
            ("http://localhost:@evil.example", None),
            ("http://127.0.0.1:@evil.example:80", None),
            ("http://localhost@evil.example", None),
            ("https://user:pw@t.cloudflareaccess.com", None),
            ("https://@t.cloudflareaccess.com", None),
            // plain http off loopback
            ("http://t.cloudflareaccess.com", None),
            ("http://localhost.evil.example", None),
            ("http://127.0.0.1.evil.example", None),
            ("http://10.0.0.1", None),
            // not an origin
            ("https://t.cloudflareaccess.com/path", None),
            ("https://t.cloudflareaccess.com?q", None),
            ("https://t.cloudflareaccess.com#f", None),
            ("https://", None),
            ("ftp://x", None),
            ("t.cloudflareaccess.com", None),
        ];
        for (setting, issuer) in table {
            let got = Access::from_vars(Some(setting), Some("tag"))
                .ok()
                .flatten()
                .map(|a| a.team);
            assert_eq!(got.as_deref(), *issuer, "{setting}");
        }
    }

    #[test]
    fn per_variant_rows_cover_the_last_hour_and_day_not_all_time() {
        use crate::measure::metrics::{Counts, LATENCY_BOUNDS_MS};
        let counts = |requests, errors| Counts {
            requests,
            errors,
            latency: {
                let mut l = vec![0; LATENCY_BOUNDS_MS.len() + 1];
                l[0] = requests;
                l
            },
            ..Default::default()
        };
        let s = |f: &str, v: &str, c| (f.to_owned(), v.to_owned(), c);
        // The canary failed earlier today and was rolled back: clean in the last hour.
        let hour = vec![s("", "", counts(5, 0)), s("backend", "v1", counts(100, 0))];
        let day = vec![
            s("", "", counts(50, 0)),
            s("backend", "v1", counts(900, 0)),
            s("backend", "v2", counts(100, 40)),
        ];
        let rows = variant_windows(&hour, &day);
        let names: Vec<&str> = rows.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "backend=v1, last hour",
                "backend=v1, last day",
                "backend=v2, last hour",
                "backend=v2, last day"
            ]
        );
        assert_eq!(rows[0].requests, 100);
        assert_eq!(rows[0].error_rate, Some(0.0));
        assert!(rows[0].p99_ms.is_some());
        // No traffic in the window: no rate, so no fail mark.
        assert_eq!(
            (rows[2].requests, rows[2].error_rate, rows[2].p99_ms),
            (0, None, None)
        );
        assert_eq!(rows[3].error_rate, Some(0.4));
        let html = render(&Page {
            health: rows,
            ..Page::default()
        });
        assert!(
            html.contains("<td>backend=v2, last hour</td><td>0</td><td>— <span class=\"na\">"),
            "{html}"
        );
    }

    #[test]
    fn a_rollout_shows_its_gate_values_against_their_thresholds_and_time_in_stage() {
        use crate::measure::metrics::{ChannelDeliveries, LATENCY_BOUNDS_MS};
        use crate::measure::rollout::{plans, Arm};
        let doc = json!({"flags": {"backend": {
        "state": "ENABLED", "defaultVariant": "v1",
        "variants": {"v1": "a", "v2": "b"},
        "targeting": {"fractional": [["v1", 50], ["v2", 50]]},
        "metadata": {
            "rollout.stages": "10,50,100", "rollout.stage": 1,
            "rollout.stageStartedAt": 1_000_000, "rollout.minSample": 100,
            "rollout.minDurationSeconds": 600, "rollout.maxP99Ms": 200,
            "rollout.minCacheHitRatio": 0.8, "rollout.minDeliverySuccess": 0.99
        }}}});
        let (plan, state) = plans(&doc).unwrap().remove(0);
        let mut latency = vec![0; LATENCY_BOUNDS_MS.len() + 1];
        latency[0] = 200;
        let mut push = ChannelDeliveries {
            channel: "push".into(),
            ..Default::default()
        };
        push.add("delivered", 90);
        push.add("failed", 10);
        let treatment = Arm {
            requests: 200,
            visitors: 50,
            error_visitors: 5,
            cache_hits: 90,
            cache_misses: 10,
            latency,
            deliveries: vec![push],
            ..Default::default()
        };
        let view = rollout_view(
            &plan,
            &state,
            &treatment,
            &LATENCY_BOUNDS_MS,
            1_000_000 + 65_000,
        );
        assert_eq!(view.stage, "stage 2 of 3 (50 %), running");
        assert_eq!(view.in_stage_ms, Some(65_000));
        let row = |gate: &str| view.gates.iter().find(|g| g.gate == gate).unwrap().clone();
        let errors = row("visitors who saw an error");
        assert_eq!(errors.value, "10.00 % (5 of 50)");
        assert_eq!(
            errors.threshold,
            "advance ≤ 0.50 %, roll back ≥ 1.00 % (sequential test)"
        );
        assert_eq!(errors.pass, Some(false));
        assert_eq!(
            (
                row("treatment visitors").value,
                row("treatment visitors").pass
            ),
            ("50".into(), None)
        );
        assert_eq!(row("time in stage").value, "1 min");
        assert_eq!(row("time in stage").threshold, "≥ 10 min");
        assert_eq!(row("p99 latency").pass, Some(true));
        let hits = row("cache hit ratio");
        assert_eq!((hits.value.as_str(), hits.pass), ("90.00 %", Some(true)));
        let delivery = row("notification delivery success");
        assert_eq!(delivery.value, "90.00 % (push)");
        assert_eq!(delivery.pass, Some(false));
        let html = render(&Page {
            rollouts: vec![view],
            ..Page::default()
        });
        assert!(html.contains("<td>visitors who saw an error</td><td>10.00 % (5 of 50)</td><td>advance ≤ 0.50 %, roll back ≥ 1.00 % (sequential test)</td><td><span class=\"fail\">"), "{html}");
        assert!(html.contains("stage 2 of 3 (50 %), running; time in stage: 1 min."));
        assert!(html.contains("<td>treatment visitors</td><td>50</td><td>≥ 100</td><td><span class=\"na\">not yet</span>"));
    }

    #[test]
    fn notification_delivery_per_channel_against_the_target() {
        use crate::measure::metrics::ChannelDeliveries;
        let channel = |name: &str, outcomes: &[(&str, u64)]| {
            let mut c = ChannelDeliveries {
                channel: name.into(),
                ..Default::default()
            };
            outcomes.iter().for_each(|(o, n)| c.add(o, *n));
            c
        };
        let html = render(&Page {
            notifications: vec![
                (
                    "last hour".into(),
                    vec![
                        channel("push", &[("delivered", 995), ("failed", 5), ("gone", 2)]),
                        channel("email", &[("delivered", 98), ("failed", 2)]),
                        channel("inapp", &[("dropped", 3)]),
                    ],
                ),
                ("last day".into(), Vec::new()),
            ],
            ..Page::default()
        });
        assert!(
            html.contains("delivery success (target &gt; 99 %)"),
            "{html}"
        );
        assert!(html.contains("<td>last hour</td><td>push</td><td>995</td><td>5</td><td>gone 2</td><td>99.50 % <span class=\"pass\">"), "{html}");
        assert!(html.contains("<td>last hour</td><td>email</td><td>98</td><td>2</td><td>—</td><td>98.00 % <span class=\"fail\">"));
        assert!(html.contains("<td>last hour</td><td>inapp</td><td>0</td><td>0</td><td>dropped 3</td><td>— <span class=\"na\">"));
        assert!(html.contains("<td>last day</td><td>—</td>"));
    }

    #[test]
    fn access_only_turns_the_token_form_off_and_needs_access() {
        assert_eq!(access_only(None, false), Ok(false));
        assert_eq!(access_only(Some("false"), true), Ok(false));
        assert_eq!(access_only(Some(" true "), true), Ok(true));
        assert!(
            access_only(Some("true"), false).is_err(),
            "nobody could sign in"
        );
        assert!(access_only(Some("yes"), true).is_err());
        assert!(signin_page("/__edge", None, true).contains("name=\"token\""));
        let off = signin_page("/__edge", Some("refused"), false);
        assert!(!off.contains("<form") && off.contains("ACCESS_ONLY") && off.contains("refused"));
    }

    #[test]
    fn the_minute_chart_has_a_bar_per_minute_and_marks_errors() {
        let svg = minutes_svg(&[(0, 10, 0), (60_000, 20, 5), (120_000, 0, 0)]);
        assert_eq!(svg.matches("fill=\"#8cb4ff\"").count(), 3);
        assert_eq!(svg.matches("fill=\"#a40e26\"").count(), 1);
    }

    #[test]
    fn conversion_bars_carry_their_intervals() {
        let svg = conversion_svg(&[
            ("control".into(), 0.1, Some((0.05, 0.15))),
            ("treatment".into(), 0.3, None),
        ]);
        assert_eq!(svg.matches("<rect").count(), 2);
        assert_eq!(svg.matches("<line").count(), 1);
        assert!(svg.contains("30.0 %"));
    }
}
