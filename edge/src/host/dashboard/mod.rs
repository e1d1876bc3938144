//! The dashboard's host glue: sign-in, session and CSRF checks, gathering the page's data
//! (metrics store, control plane, results) and performing its actions through the same
//! paths as the admin API. Rendering and the checks themselves are `crate::dashboard`'s.

// Failed sign-ins, kept by the writer.
pub(crate) mod signin;

use serde_json::{json, Value};
use worker::{Env, Method, Request, Response};

use crate::host::flags::control;
use crate::host::{header, internal, now_ms};
use crate::config::Config;
use crate::dashboard::{self as page, Health};
use crate::error::EdgeError;
use crate::flags::control::Command;
use crate::jwt::JwtError;
use crate::measure::metrics::{Totals, LATENCY_BOUNDS_MS};

/// Handles `{prefix}/dashboard{rest}`.
pub(crate) async fn handle(
    mut req: Request,
    env: &Env,
    config: &Config,
    rest: &str,
) -> Result<Response, EdgeError> {
    let tokens = crate::host::admin_tokens(env)?;
    let key = tokens.session_key();
    let url = req.url().map_err(internal)?;
    let own_origin = url.origin().ascii_serialization();
    let secure = url.scheme() == "https";
    let path = format!("{}/dashboard", config.admin_prefix);
    let now_s = now_ms() / 1000;
    let session_value = header(&req, "cookie")
        .as_deref()
        .and_then(|c| crate::traffic::identity::cookie_value(c, page::COOKIE).map(str::to_owned));
    let actor = session_value
        .as_deref()
        .and_then(|v| page::open_session(v, &key, now_s));
    let method = req.method();

    match (method, rest) {
        (Method::Get, "" | "/") => {
            let notice = url
                .query_pairs()
                .find(|(k, _)| k == "notice")
                .map(|(_, v)| v.into_owned());
            if let (Some(actor), Some(session)) = (actor, session_value) {
                let csrf = page::csrf(&session, &key);
                return overview(env, config, actor, csrf, notice, None).await;
            }
            // Behind Cloudflare Access: its JWT signs in without the token.
            let access = access_settings(env)?;
            let assertion = page::Access::assertion(
                header(&req, "cf-access-jwt-assertion").as_deref(),
                header(&req, "cookie").as_deref(),
            );
            let (Some(access), Some(assertion)) = (access, assertion) else {
                return if token_signin_off(env)? {
                    html(&page::signin_page(&config.admin_prefix, None, false), 401)
                } else {
                    html(&page::login(&config.admin_prefix, None), 200)
                };
            };
            match access_email(&access, &assertion).await {
                Ok(email) => {
                    let value = page::session(&email, now_s + page::SESSION_SECONDS, &key);
                    let csrf = page::csrf(&value, &key);
                    let cookie = page::cookie(Some(&value), &path, secure);
                    overview(env, config, email, csrf, notice, Some(cookie)).await
                }
                Err(e) => {
                    let attempt = page::SigninAttempt {
                        client: client(&req),
                        ok: false,
                        name: None,
                        // Clipped here too: the error can quote the token's `alg`.
                        reason: page::clip(
                            &format!("Cloudflare Access token refused: {e}"),
                            page::SIGNIN_REASON_CHARS,
                        ),
                    };
                    let gate = control::signin(env, config, &attempt).await?;
                    let form = !token_signin_off(env)?;
                    refused(config, &attempt.reason, gate.retry_after_s, form)
                }
            }
        }
        (Method::Post, "/login") => {
            if !page::same_origin(header(&req, "origin").as_deref(), &own_origin) {
                return Err(EdgeError::Forbidden("cross-origin sign-in refused".into()));
            }
            if token_signin_off(env)? {
                return Err(EdgeError::Forbidden(
                    "token sign-in is off (ACCESS_ONLY=true): sign in through Cloudflare Access"
                        .into(),
                ));
            }
            let form = form(&mut req).await?;
            let token = field(&form, "token").unwrap_or_default();
            // The optional name must match the token; only a configured name is recorded.
            let name = field(&form, "name").filter(|n| !n.trim().is_empty());
            let signed_in = match tokens.authenticate(Some(&format!("Bearer {token}"))) {
                Ok(actor) if name.as_ref().is_none_or(|n| *n == actor) => Ok(actor),
                Ok(_) => Err("the token is not that name's".to_owned()),
                Err(EdgeError::Unauthorized) => Err("no admin token given".to_owned()),
                Err(_) => Err("wrong admin token".to_owned()),
            };
            // Asked before answering, right token or not: a limited client learns nothing.
            let attempt = page::SigninAttempt {
                client: client(&req),
                ok: signed_in.is_ok(),
                name: name.filter(|n| tokens.has_name(n)),
                reason: signed_in.clone().err().unwrap_or_default(),
            };
            let gate = control::signin(env, config, &attempt).await?;
            match signed_in {
                Ok(actor) if gate.retry_after_s.is_none() => {
                    let value = page::session(&actor, now_s + page::SESSION_SECONDS, &key);
                    redirect(&path, Some(page::cookie(Some(&value), &path, secure)))
                }
                _ => {
                    worker::console_warn!("dashboard: failed sign-in");
                    refused(config, "That token is not valid.", gate.retry_after_s, true)
                }
            }
        }
        (Method::Post, action) if action.starts_with("/actions/") => {
            let (Some(actor), Some(session)) = (actor, session_value) else {
                return Err(EdgeError::Unauthorized);
            };
            if !page::same_origin(header(&req, "origin").as_deref(), &own_origin) {
                return Err(EdgeError::Forbidden("cross-origin request refused".into()));
            }
            let form = form(&mut req).await?;
            let csrf = page::csrf(&session, &key);
            if field(&form, "csrf").as_deref() != Some(csrf.as_str()) {
                return Err(EdgeError::Forbidden("missing or wrong CSRF token".into()));
            }
            let name = &action["/actions/".len()..];
            if name == "logout" {
                return redirect(&path, Some(page::cookie(None, &path, secure)));
            }
            if name == "replace" {
                return replace(env, config, (actor, csrf), &form, &path).await;
            }
            let notice = act(env, config, &actor, name, &form).await?;
            let target = worker::Url::parse_with_params("http://dashboard/", &[("notice", notice)])
                .map_err(internal)?;
            redirect(&format!("{path}?{}", target.query().unwrap_or("")), None)
        }
        (m, _) if m != Method::Get && m != Method::Post => {
            Err(EdgeError::MethodNotAllowed(m.to_string()))
        }
        _ => Err(EdgeError::NotFound(format!("{path}{rest}"))),
    }
}

/// The client's address as Cloudflare reports it (`unknown` outside Cloudflare's network).
fn client(req: &Request) -> String {
    header(req, "cf-connecting-ip").unwrap_or_else(|| "unknown".into())
}

/// `ACCESS_ONLY=true`: Cloudflare Access is the only sign-in (no token form).
fn token_signin_off(env: &Env) -> Result<bool, EdgeError> {
    let access = access_settings(env)?.is_some();
    let value = env.var("ACCESS_ONLY").ok().map(|v| v.to_string());
    page::access_only(value.as_deref(), access).map_err(EdgeError::Config)
}

/// `ACCESS_TEAM_DOMAIN` and `ACCESS_AUD`, when Cloudflare Access guards the dashboard.
fn access_settings(env: &Env) -> Result<Option<page::Access>, EdgeError> {
    let var = |n: &str| env.var(n).ok().map(|v| v.to_string());
    page::Access::from_vars(
        var("ACCESS_TEAM_DOMAIN").as_deref(),
        var("ACCESS_AUD").as_deref(),
    )
    .map_err(EdgeError::Config)
}

/// The e-mail an Access JWT signs in as: claims first (no key fetch for an expired or
/// foreign token), then the signature with Access's published keys.
async fn access_email(access: &page::Access, assertion: &str) -> Result<String, JwtError> {
    let token = crate::jwt::parse(assertion)?;
    let email = access.check(&token, now_ms() / 1000)?;
    crate::host::jwt::verify_rs256(&token, &access.certs_url()).await?;
    Ok(email)
}

/// The sign-in page again: 401, or 429 with `Retry-After` while the client is limited.
fn refused(
    config: &Config,
    why: &str,
    retry_after_s: Option<u64>,
    token_form: bool,
) -> Result<Response, EdgeError> {
    match retry_after_s {
        None => html(
            &page::signin_page(&config.admin_prefix, Some(why), token_form),
            401,
        ),
        Some(s) => {
            let res = html(
                &page::signin_page(
                    &config.admin_prefix,
                    Some(&format!(
                        "Too many failed sign-ins from your address: try again in {} minute(s).",
                        s.div_ceil(60)
                    )),
                    token_form,
                ),
                429,
            )?;
            res.headers()
                .set("retry-after", &s.to_string())
                .map_err(internal)?;
            Ok(res)
        }
    }
}

/// The overview page, with the time spent gathering and rendering it (`Server-Timing`).
async fn overview(
    env: &Env,
    config: &Config,
    actor: String,
    csrf: String,
    notice: Option<String>,
    cookie: Option<String>,
) -> Result<Response, EdgeError> {
    let started = now_ms();
    let data = gather(env, config, actor, csrf, notice).await?;
    let gathered = now_ms();
    let body = page::render(&data);
    let res = html(&body, 200)?;
    // Workers' clock advances only across I/O, so the render time reads as 0 ms in
    // production; the total is what a visitor waits for.
    res.headers()
        .set(
            "server-timing",
            &format!(
                "gather;dur={}, render;dur={}",
                gathered.saturating_sub(started),
                now_ms().saturating_sub(gathered)
            ),
        )
        .map_err(internal)?;
    if let Some(c) = cookie {
        res.headers().set("set-cookie", &c).map_err(internal)?;
    }
    Ok(res)
}

/// Saves an edited document (with `If-Match` on the version the editor showed): a redirect
/// with a notice, or the page again with every error at its path and the text kept.
async fn replace(
    env: &Env,
    config: &Config,
    (actor, csrf): (String, String),
    form: &[(String, String)],
    path: &str,
) -> Result<Response, EdgeError> {
    let document = field(form, "document").unwrap_or_default();
    let version = field(form, "version").unwrap_or_default();
    let command = Command::Replace {
        document: document.clone(),
    };
    let errors: Vec<(String, String)> =
        match control::command(env, config, &actor, Some(format!("\"{version}\"")), command).await
        {
            Ok(answer) => {
                if answer.committed {
                    if let Err(e) = crate::host::flags::check_now(env, config).await {
                        worker::console_error!("dashboard: could not take in the new version: {e}");
                    }
                }
                let target =
                    worker::Url::parse_with_params("http://dashboard/", &[("notice", answer.summary)])
                        .map_err(internal)?;
                return redirect(&format!("{path}?{}", target.query().unwrap_or("")), None);
            }
            Err(EdgeError::InvalidFlagSet(findings)) => findings
                .into_iter()
                .map(|f| (f.path, f.message))
                .collect(),
            Err(EdgeError::PreconditionFailed { current }) => vec![(
                String::new(),
                format!("the flag set changed meanwhile (now version {current}); your text is kept below — compare and save again"),
            )],
            Err(e) => return Err(e),
        };
    let mut page = gather(env, config, actor, csrf, None).await?;
    page.document_text = document;
    page.edit_errors = errors;
    html(&page::render(&page), 400)
}

/// Performs one dashboard action as `actor`; the notice to show.
async fn act(
    env: &Env,
    config: &Config,
    actor: &str,
    name: &str,
    form: &[(String, String)],
) -> Result<String, EdgeError> {
    let command = match name {
        "disable" | "enable" => Command::SetState {
            flag: field(form, "flag").unwrap_or_default(),
            enabled: name == "enable",
        },
        "rollback" => Command::Rollback {
            version: field(form, "version").unwrap_or_default(),
        },
        "evaluate" | "dry-run" => {
            let report = crate::host::flags::rollout::evaluate(
                env,
                config,
                &format!("rollout ({actor}, dashboard)"),
                name == "dry-run",
            )
            .await?;
            let n = report["rollouts"].as_array().map_or(0, Vec::len);
            return Ok(format!(
                "{} {n} rollout plan(s){}.",
                if name == "dry-run" {
                    "Dry-ran"
                } else {
                    "Evaluated"
                },
                if name == "dry-run" {
                    " (nothing written)"
                } else {
                    ""
                }
            ));
        }
        other => return Err(EdgeError::NotFound(format!("dashboard action {other}"))),
    };
    let answer = control::command(env, config, actor, None, command).await?;
    if answer.committed {
        if let Err(e) = crate::host::flags::check_now(env, config).await {
            worker::console_error!("dashboard: could not take in the new version at once: {e}");
        }
    }
    Ok(answer.summary)
}

/// The page's data: health per flag variant and overall, flags, experiments, decisions,
/// audit and versions.
async fn gather(
    env: &Env,
    config: &Config,
    actor: String,
    csrf: String,
    notice: Option<String>,
) -> Result<page::Page, EdgeError> {
    // Results of at most MAX_EXPERIMENTS experiments (one metrics-store call each): the page
    // makes a bounded number of Durable Object calls however large the flag set.
    crate::host::measure::flush_or_warn(env).await;
    let active = crate::host::flags::current(env, config).await?;
    let mut experiments = Vec::new();
    for spec in active.experiments.iter().take(page::MAX_EXPERIMENTS) {
        let arms: Vec<crate::host::measure::ArmCounts> = crate::host::measure::call(
            env,
            "/arms",
            &crate::host::measure::ArmsQuery {
                flag: spec.flag.clone(),
                epoch: spec.epoch.clone(),
                event: spec.conversion_event.clone(),
            },
        )
        .await?;
        experiments.push(crate::measure::experiments::result(spec, &arms));
    }
    let more_experiments = active
        .experiments
        .len()
        .saturating_sub(page::MAX_EXPERIMENTS);
    let decisions: Vec<crate::host::measure::DecisionRecord> =
        crate::host::measure::call(env, "/decisions", &json!({})).await?;
    let version = active.version.clone();
    let totals: Totals = crate::host::measure::call(env, "/totals", &json!({})).await?;
    let (_, document) = control::document(env, config)
        .await?
        .unwrap_or_else(|| (String::new(), "{}".into()));
    use crate::measure::metrics::Resolution;
    let hour =
        crate::host::measure::api::timeline_points(env, Resolution::Minute, 3_600_000, None, None).await?;
    let day =
        crate::host::measure::api::timeline_points(env, Resolution::Hour, 24 * 3_600_000, None, None)
            .await?;
    // The plan's windows first, then the totals per flag variant.
    let window = |name: &str, points: &[crate::measure::metrics::Point]| {
        let mut sum = crate::measure::metrics::Counts {
            latency: vec![0; LATENCY_BOUNDS_MS.len() + 1],
            ..Default::default()
        };
        points.iter().for_each(|p| sum.add(&p.counts));
        let s = crate::measure::metrics::summarise(0, &sum);
        Health {
            name: name.to_owned(),
            requests: s.requests,
            error_rate: s.error_rate,
            p99_ms: s.p99_ms,
            hit_ratio: s.hit_ratio,
        }
    };
    let mut rows = vec![window("last hour", &hour), window("last day", &day)];
    // Per flag variant over the same two windows: two more metrics-store calls.
    let series = |resolution, window_ms: u64| crate::measure::metrics::TimelineQuery {
        resolution,
        since_ms: now_ms().saturating_sub(window_ms),
        flag: None,
        variant: None,
    };
    let hour_series: Vec<page::WindowCounts> = crate::host::measure::call(
        env,
        "/timeline/series",
        &series(Resolution::Minute, 3_600_000),
    )
    .await?;
    let day_series: Vec<page::WindowCounts> = crate::host::measure::call(
        env,
        "/timeline/series",
        &series(Resolution::Hour, 24 * 3_600_000),
    )
    .await?;
    rows.extend(page::variant_windows(&hour_series, &day_series));
    // Notification delivery per channel over the same windows: two more calls.
    let mut notifications = Vec::new();
    for (name, window_ms) in [("last hour", 3_600_000), ("last day", 24 * 3_600_000)] {
        let since = now_ms().saturating_sub(window_ms);
        notifications.push((
            name.to_owned(),
            crate::host::measure::notifications(env, Some(since)).await?,
        ));
    }
    // What each of the last versions changed against the one before it.
    let history = control::versions(env, config).await?.versions;
    let mut docs = Vec::new();
    for entry in history.iter().take(11) {
        let doc = control::document_of(env, config, &entry.version)
            .await?
            .and_then(|(_, text)| serde_json::from_str::<Value>(&text).ok());
        docs.push((entry.version.clone(), doc));
    }
    let diffs = docs
        .windows(2)
        .filter_map(|pair| match (&pair[0], &pair[1]) {
            ((version, Some(new)), (_, Some(old))) => Some((version.clone(), page::diff(old, new))),
            _ => None,
        })
        .collect();
    let pretty = serde_json::from_str::<Value>(&document)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| document.clone());
    rows.extend(health(&totals));
    let units: page::UnitCounts = crate::host::measure::call(
        env,
        "/units",
        &now_ms().saturating_sub(page::ADOPTION_WINDOW_DAYS * 24 * 3_600_000),
    )
    .await?;
    let routed: Vec<(String, u64, u64)> = totals
        .series
        .iter()
        .filter(|(k, _)| !k.flag.is_empty())
        .map(|(k, c)| (k.flag.clone(), c.requests, c.errors))
        .collect();
    let parsed: Value = serde_json::from_str(&document).unwrap_or(Value::Null);
    // Live gate values of the first MAX_ROLLOUTS plans: one /arms call each, one more for a
    // plan with the delivery gate (bounded like the experiments).
    let mut rollouts = Vec::new();
    let now = now_ms();
    for (plan, state) in crate::measure::rollout::plans(&parsed)
        .unwrap_or_default()
        .into_iter()
        .take(page::MAX_ROLLOUTS)
    {
        let epoch = parsed
            .get("flags")
            .and_then(|f| f.get(&plan.flag))
            .map(crate::measure::metrics::epoch)
            .unwrap_or_default();
        let arms: Vec<crate::host::measure::ArmCounts> = crate::host::measure::call(
            env,
            "/arms",
            &crate::host::measure::ArmsQuery {
                flag: plan.flag.clone(),
                epoch,
                event: None,
            },
        )
        .await?;
        let mut treatment = crate::host::flags::rollout::arm(&arms, &plan.treatment);
        if let (Some(_), Some(since)) = (plan.min_delivery_success, state.stage_started_ms) {
            treatment.deliveries = crate::host::measure::notifications(env, Some(since)).await?;
        }
        rollouts.push(page::rollout_view(
            &plan,
            &state,
            &treatment,
            &LATENCY_BOUNDS_MS,
            now,
        ));
    }
    let signins = control::signin_failures(env, config, 30).await?;
    Ok(page::Page {
        features: page::features(&parsed, &units, &routed),
        all_units: units.all,
        prefix: config.admin_prefix.clone(),
        actor,
        csrf,
        notice,
        minutes: hour
            .iter()
            .map(|p| (p.t, p.counts.requests, p.counts.errors))
            .collect(),
        health: rows,
        flags: parsed,
        version,
        experiments: serde_json::to_value(&experiments).map_err(internal)?,
        more_experiments,
        decisions: serde_json::to_value(&decisions).map_err(internal)?,
        rollouts,
        notifications,
        audit: {
            // Changes and failed sign-ins, newest first.
            let mut records = control::audit(env, config, 30).await?.records;
            records.extend(signins.records);
            records.sort_by_key(|r| std::cmp::Reverse(r.at_ms));
            records.truncate(30);
            serde_json::to_value(records).map_err(internal)?
        },
        signin_counts: (signins.total, signins.limited, signins.dropped),
        versions: serde_json::to_value(&history).map_err(internal)?,
        diffs,
        document_text: pretty,
        edit_errors: Vec::new(),
    })
}

/// Since the metrics store began (the timeline keeps no origin): all traffic, and per origin
/// the requests no flag routed.
fn health(totals: &Totals) -> Vec<Health> {
    let mut rows: Vec<(String, crate::measure::metrics::Counts)> = Vec::new();
    let mut all = crate::measure::metrics::Counts {
        latency: vec![0; LATENCY_BOUNDS_MS.len() + 1],
        ..Default::default()
    };
    for (k, c) in &totals.series {
        all.add(c);
        if !k.flag.is_empty() {
            continue;
        }
        let name = format!("origin {}, unflagged, since the store started", k.origin);
        match rows.iter_mut().find(|(n, _)| *n == name) {
            Some((_, acc)) => acc.add(c),
            None => rows.push((name, c.clone())),
        }
    }
    std::iter::once(("all traffic, since the store started".to_owned(), all))
        .chain(rows)
        .map(|(name, c)| page::health_of(name, &c))
        .collect()
}

async fn form(req: &mut Request) -> Result<Vec<(String, String)>, EdgeError> {
    let body = crate::host::body(req, 16 * 1024).await?;
    let body = String::from_utf8(body)
        .map_err(|_| EdgeError::BadRequest("form body is not UTF-8".into()))?;
    // application/x-www-form-urlencoded is a URL query's syntax.
    let url = worker::Url::parse(&format!("http://form/?{body}"))
        .map_err(|e| EdgeError::BadRequest(format!("form body: {e}")))?;
    Ok(url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect())
}

fn field(form: &[(String, String)], name: &str) -> Option<String> {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

fn html(body: &str, status: u16) -> Result<Response, EdgeError> {
    let res = Response::from_html(body)
        .map_err(internal)?
        .with_status(status);
    crate::host::set_all(
        res.headers(),
        &[
            ("cache-control", "no-store".into()),
            ("content-security-policy", page::csp()),
            // Not `no-referrer`: under it browsers send `Origin: null` with the page's own
            // form posts, and the Origin check would refuse every action.
            ("referrer-policy", "same-origin".into()),
        ],
    )?;
    Ok(res)
}

/// 303 See Other (after a form POST), optionally setting the session cookie.
fn redirect(location: &str, cookie: Option<String>) -> Result<Response, EdgeError> {
    let res = Response::empty().map_err(internal)?.with_status(303);
    res.headers().set("location", location).map_err(internal)?;
    res.headers()
        .set("cache-control", "no-store")
        .map_err(internal)?;
    if let Some(c) = cookie {
        res.headers().set("set-cookie", &c).map_err(internal)?;
    }
    Ok(res)
}
