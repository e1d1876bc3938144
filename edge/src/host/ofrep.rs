//! OFREP endpoints: `POST /ofrep/v1/evaluate/flags[/{key}]`, and their CORS preflight.

use worker::{Context, Env, Request, Response};

use crate::config::Config;
use crate::error::EdgeError;
use crate::flags::ofrep;
use crate::host::{flags, header, internal, json_with_status, now_ms, set_all};
use crate::traffic::{cors, identity};

/// CORS preflight for the OFREP paths.
pub(crate) fn preflight(req: &Request, config: &Config) -> Result<Response, EdgeError> {
    let requested = header(req, "access-control-request-headers").unwrap_or_default();
    let res = Response::empty().map_err(internal)?.with_status(204);
    set_all(
        res.headers(),
        &cors::headers(
            &config.cors,
            header(req, "origin").as_deref(),
            Some(&requested),
        ),
    )?;
    Ok(res)
}

/// Evaluates one flag (`key`) or all flags for the request's context.
pub(crate) async fn evaluate(
    mut req: Request,
    env: &Env,
    config: &Config,
    ctx: &Context,
    key: Option<&str>,
) -> Result<Response, EdgeError> {
    let visitor = crate::host::jwt::visitor(&req, env, config, true).await;
    let cors_headers = cors::headers(&config.cors, header(&req, "origin").as_deref(), None);
    let if_none_match = header(&req, "if-none-match");

    let api_caller = config
        .evaluation_keys
        .authenticate(header(&req, "authorization").as_deref())
        .is_ok();
    let mut res = match answer(
        &mut req,
        env,
        config,
        ctx,
        key,
        (&visitor, api_caller),
        if_none_match.as_deref(),
    )
    .await
    {
        Ok(res) => res,
        Err(err) => crate::host::error_response(&err).map_err(internal)?,
    };
    let headers = res.headers_mut();
    set_all(headers, &cors_headers)?;
    if let Some(cookie) = visitor.set_cookie {
        headers.append("set-cookie", &cookie).map_err(internal)?;
    }
    Ok(res)
}

async fn answer(
    req: &mut Request,
    env: &Env,
    config: &Config,
    ctx: &Context,
    key: Option<&str>,
    (visitor, api_caller): (&identity::Visitor, bool),
    if_none_match: Option<&str>,
) -> Result<Response, EdgeError> {
    let body = crate::host::body(req, ofrep::MAX_BODY_BYTES).await?;
    let context = match ofrep::parse_request(&body, visitor.key.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            let body = edgeflags_core::ofrep::failure_body(key, e.code.as_str(), &e.details);
            return json_with_status(&body, e.http_status());
        }
    };
    let active = flags::current(env, config).await?;
    let now_secs = now_ms() / 1000;
    // Exposures of experiment flags: what this answer shows the client — only for a unit the
    // edge can vouch for (see identity::counted_unit).
    if crate::host::measure::enabled(env) {
        if let Some(unit) = identity::counted_unit(
            context.targeting_key(),
            visitor,
            api_caller,
            &config.identity_keys,
        )
        .map(crate::measure::metrics::unit_id)
        {
            let exposures: Vec<(String, String, String)> = active
                .experiments
                .iter()
                .filter(|spec| key.is_none_or(|k| k == spec.flag))
                .filter_map(|spec| {
                    let eval = active.set.evaluate(&spec.flag, &context, now_secs);
                    Some((
                        spec.flag.clone(),
                        eval.variant?.to_owned(),
                        spec.epoch.clone(),
                    ))
                })
                .collect();
            crate::host::measure::record_exposures(env, ctx, &exposures, Some(&unit));
        }
    }
    let res = match key {
        Some(key) => {
            let eval = active.set.evaluate(key, &context, now_secs);
            json_with_status(&eval, eval.http_status())?
        }
        None => {
            let etag = ofrep::bulk_etag(&active.version, &context);
            let res = if ofrep::if_none_match(if_none_match, &etag) {
                Response::empty().map_err(internal)?.with_status(304)
            } else {
                json_with_status(&active.set.evaluate_all(&context, now_secs), 200)?
            };
            res.headers().set("etag", &etag).map_err(internal)?;
            res
        }
    };
    // Clients may revalidate; shared caches must not keep one visitor's answer.
    res.headers()
        .set("cache-control", "private, no-cache")
        .map_err(internal)?;
    Ok(res)
}
