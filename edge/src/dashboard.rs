//! The success-metrics dashboard (`GET {prefix}/dashboard`): sessions, CSRF and the page,
//! rendered on the server as plain HTML with inline SVG — no script at all, so its CSP is
//! `script-src 'none'`, and every action is a form that works from the keyboard. The host
//! (`host/dashboard.rs`) gathers the data and performs the actions; everything here is pure.

use serde_json::Value;

use crate::identity::hmac_sha256;

/// The user's plan: what a healthy stage looks like.
pub const TARGET_P99_MS: f64 = 200.0;
pub const TARGET_ERROR_RATE: f64 = 0.005;
pub const TARGET_HIT_RATIO: f64 = 0.8;

/// How long a dashboard session lasts.
pub const SESSION_SECONDS: u64 = 3600;
/// Name of the session cookie.
pub const COOKIE: &str = "ef_admin";

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
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
pub fn session(actor: &str, expires_s: u64, key: &[u8]) -> String {
    let body = format!("{}.{expires_s}", hex(actor.as_bytes()));
    format!("{body}.{}", hex(&hmac_sha256(key, body.as_bytes())))
}

/// The actor of a valid, unexpired session cookie value.
pub fn open_session(value: &str, key: &[u8], now_s: u64) -> Option<String> {
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
pub fn csrf(session_value: &str, key: &[u8]) -> String {
    hex(&hmac_sha256(
        key,
        format!("csrf:{session_value}").as_bytes(),
    ))
}

/// Whether a state-changing request comes from the dashboard's own origin (`Origin` must be
/// present and equal; browsers send it on every POST).
pub fn same_origin(origin_header: Option<&str>, own_origin: &str) -> bool {
    origin_header.is_some_and(|o| o == own_origin)
}

/// `Set-Cookie` for a session (`None` value: sign-out).
pub fn cookie(value: Option<&str>, path: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    match value {
        Some(v) => format!(
            "{COOKIE}={v}; Path={path}; Max-Age={SESSION_SECONDS}; HttpOnly; SameSite=Strict{secure}"
        ),
        None => format!("{COOKIE}=; Path={path}; Max-Age=0; HttpOnly; SameSite=Strict{secure}"),
    }
}

/// One row of the overview: a series' health against the plan's targets.
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    pub name: String,
    pub requests: u64,
    pub error_rate: Option<f64>,
    pub p99_ms: Option<f64>,
    pub hit_ratio: Option<f64>,
}

/// Everything the page shows.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub prefix: String,
    pub actor: String,
    pub csrf: String,
    /// A message after an action (already plain text).
    pub notice: Option<String>,
    pub health: Vec<Health>,
    /// Requests and errors per minute over the last hour, oldest first: (t ms, requests, errors).
    pub minutes: Vec<(u64, u64, u64)>,
    /// The active flag-set document.
    pub flags: Value,
    pub version: String,
    /// `experiments` of the results endpoint.
    pub experiments: Value,
    /// Recent rollout decisions.
    pub decisions: Value,
    /// Audit records, newest first.
    pub audit: Value,
    /// Version history, newest first.
    pub versions: Value,
    /// What each listed version changed against the one before it (version → lines).
    pub diffs: Vec<(String, Vec<String>)>,
    /// The text in the editor: the active document, or a submitted one that was refused.
    pub document_text: String,
    /// Why the submitted document was refused (path, message).
    pub edit_errors: Vec<(String, String)>,
}

/// Most change lines shown for one version.
const DIFF_LINES: usize = 12;

/// What changed from `old` to `new`, one line per changed leaf (`path: old → new`), for
/// people reading the version history; at most `DIFF_LINES` lines.
pub fn diff(old: &Value, new: &Value) -> Vec<String> {
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
form{display:inline}code{font-size:.85em}svg text{font-size:11px}";

/// The stylesheet, and its CSP hash source (`'sha256-…'`), so the page needs no
/// `'unsafe-inline'`.
pub fn style() -> (&'static str, String) {
    use base64::Engine as _;
    use sha2::{Digest, Sha256};
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(STYLE.as_bytes()));
    (STYLE, format!("'sha256-{hash}'"))
}

/// The page's Content-Security-Policy: nothing but its own inline stylesheet and forms.
pub fn csp() -> String {
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
pub fn login(prefix: &str, error: Option<&str>) -> String {
    let mut out = head("edgeflags — sign in");
    out.push_str("<main><h1>edgeflags dashboard</h1>");
    if let Some(e) = error {
        out.push_str(&format!(
            "<p class=\"notice\" role=\"alert\">{}</p>",
            esc(e)
        ));
    }
    out.push_str(&format!(
        "<form method=\"post\" action=\"{p}/dashboard/login\"><label for=\"token\">Admin token</label> \
         <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" required> \
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
pub type Bar = (String, f64, Option<(f64, f64)>);

/// A horizontal bar per variant: the conversion rate, with its 95 % interval as a whisker.
pub fn conversion_svg(variants: &[Bar]) -> String {
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
pub fn minutes_svg(minutes: &[(u64, u64, u64)]) -> String {
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

/// The dashboard page.
pub fn render(page: &Page) -> String {
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
    out.push_str("</p><table><thead><tr><th>when</th><th>flag</th><th>decision</th><th>reason</th></tr></thead><tbody>");
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
        "<h2 id=\"experiments\">Experiments</h2><p><a href=\"{}/features/experiments/results?format=csv\">Download CSV</a></p>",
        esc(&page.prefix)
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
    out.push_str("</tbody></table><h2 id=\"audit\">Audit</h2><table><thead><tr><th>when</th><th>who</th><th>what</th><th>flag</th><th>versions</th><th>summary</th></tr></thead><tbody>");
    for r in page.audit.as_array().into_iter().flatten().take(30) {
        let s = |k: &str| esc(r.get(k).and_then(Value::as_str).unwrap_or(""));
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code> → <code>{}</code></td><td>{}</td></tr>",
            r.get("atMs").and_then(Value::as_u64).map_or(String::new(), iso),
            s("actor"),
            s("action"),
            s("flag"),
            s("fromVersion"),
            s("toVersion"),
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
