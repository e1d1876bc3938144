//! The e-mail channel (issue 16): contacts (`PUT`/`DELETE {prefix}/notifications/contacts`,
//! admin token; `POST`/`DELETE {prefix}/inbox/email`, the visitor's verified JWT), fan-out of
//! a notification to the contacts of its audience through the notification Queue, and the
//! consumer's e-mail attempts against the configured HTTP e-mail API.
//!
//! Decisions are `crate::notify::email`'s; this file calls the store, the queue and the API.

use serde_json::{json, Value};
use worker::{
    AbortSignal, Env, Fetch, Headers, Message, MessageExt, Method, QueueRetryOptionsBuilder,
    Request, RequestInit, Response,
};

use crate::host::notify::{observe, store, Step, DLQ_BINDING, QUEUE_BINDING};
use crate::host::{flags, internal, now_ms};
use crate::config::Config;
use crate::error::EdgeError;
use crate::flags::live::Active;
use crate::notify::api::{self, Audience, Channel, SendRequest};
use crate::notify::email::{self, Attempt, Job, Settings};
use crate::notify::inbox::visitor_shard;
use crate::notify::outcome::Outcome as Observed;

/// The channel's settings; `None` when `EMAIL_API_URL` is unset.
pub(super) fn settings(env: &Env) -> Result<Option<Settings>, EdgeError> {
    Settings::from_lookup(|n| crate::host::notify::lookup(env, n)).map_err(EdgeError::Config)
}

/// The settings, or the error a retry naming the channel gets (409: the request does not
/// fit this deployment; malformed settings stay a deploy error, 500).
pub(super) fn configured(env: &Env) -> Result<Settings, EdgeError> {
    settings(env)?.ok_or_else(|| {
        EdgeError::Conflict(
            "the e-mail channel is not configured (EMAIL_API_URL, EMAIL_API_HOSTS, EMAIL_FROM, secret EMAIL_API_AUTH)"
                .into(),
        )
    })
}

fn no_content() -> Result<Response, EdgeError> {
    let res = Response::empty().map_err(internal)?.with_status(204);
    res.headers()
        .set("cache-control", "no-store")
        .map_err(internal)?;
    Ok(res)
}

/// `PUT` (`{"targetingKey", "email"}` → 204) / `DELETE` (`{"targetingKey"}` → `{"removed"}`)
/// `{prefix}/notifications/contacts`: the app's backend registers the address of one of its
/// users (it vouches for it; the admin token proves it is the app).
pub(super) async fn contact(env: &Env, body: &[u8], put: bool) -> Result<Response, EdgeError> {
    let c = email::parse_contact(body, put).map_err(EdgeError::BadRequest)?;
    let shards = crate::host::notify::settings(env)?.shards;
    let shard = visitor_shard(&c.targeting_key, shards);
    if put {
        let address = c.email.unwrap_or_default();
        let call = json!({"targetingKey": c.targeting_key, "email": address, "source": "app"});
        store(env, shard, "/contact/put", call).await?;
        no_content()
    } else {
        let call = json!({"targetingKey": c.targeting_key});
        let answer = store(env, shard, "/contact/delete", call).await?;
        crate::host::json(&json!({"removed": answer["removed"]}))
    }
}

/// `POST` / `DELETE {prefix}/inbox/email`: the visitor registers (or removes) the `email`
/// claim of their verified bearer JWT as their address. Only with `IDENTITY_SOURCE=jwt`:
/// an address a visitor merely types is never accepted.
pub(super) async fn own_address(
    req: &Request,
    env: &Env,
    config: &Config,
) -> Result<Response, EdgeError> {
    let method = req.method();
    if !matches!(method, Method::Post | Method::Delete) {
        return Err(EdgeError::MethodNotAllowed(method.to_string()));
    }
    // Verified here (not only through the visitor helper, which falls back to the cookie):
    // the claims read below must be those of a token whose signature was checked.
    let sub = crate::host::jwt::verified_sub(req, env, config)
        .await
        .ok_or_else(|| {
            EdgeError::Forbidden(
                "registering an address needs a verified bearer JWT (IDENTITY_SOURCE=jwt)".into(),
            )
        })?;
    let shards = crate::host::notify::settings(env)?.shards;
    let shard = visitor_shard(&sub, shards);
    if method == Method::Delete {
        store(env, shard, "/contact/delete", json!({"targetingKey": sub})).await?;
        return no_content();
    }
    let claims = crate::host::header(req, "authorization")
        .as_deref()
        .and_then(crate::jwt::bearer)
        .and_then(|t| crate::jwt::parse(t).ok())
        .map(|t| t.claims)
        .unwrap_or(Value::Null);
    let address = email::claim_address(&claims)
        .ok_or_else(|| EdgeError::BadRequest("the token has no verified `email` claim".into()))?;
    let call = json!({"targetingKey": sub, "email": address, "source": "jwt"});
    store(env, shard, "/contact/put", call).await?;
    no_content()
}

/// Queues the notification for every contact of its audience; one e-mail per address
/// (`email::dedupe`: the contact registered earliest). A `targetingKeys` audience asks each
/// shard for its own keys only; a flag audience pages through every shard's contacts
/// (`email::AUDIENCE_PAGE` per call) and keeps the flag's members.
pub(super) async fn fan_out(
    env: &Env,
    settings: &api::Settings,
    email_settings: &Settings,
    active: &Active,
    id: &str,
    r: &SendRequest,
    now_secs: u64,
) -> Result<u64, EdgeError> {
    let mut members = Vec::new();
    let mut keep = |answer: &Value| {
        for c in answer["contacts"].as_array().into_iter().flatten() {
            let (Some(key), Some(address)) = (c[0].as_str(), c[1].as_str()) else {
                continue;
            };
            let member = r.audience.includes(key, |flag, k| {
                crate::host::notify::variant_of(active, flag, k, now_secs)
            });
            if member {
                members.push(email::Member {
                    key: key.to_owned(),
                    address: address.to_owned(),
                    updated_ms: crate::host::sql::num(&c[2]),
                });
            }
        }
    };
    match &r.audience {
        Audience::Keys { targeting_keys } => {
            for (shard, keys) in email::keys_by_shard(targeting_keys, settings.shards) {
                keep(&store(env, shard, "/email/audience", json!({"keys": keys})).await?);
            }
        }
        Audience::Flag { .. } => {
            for shard in 0..settings.shards {
                let mut after = String::new();
                loop {
                    let call = json!({"after": after, "limit": email::AUDIENCE_PAGE});
                    let answer = store(env, shard, "/email/audience", call).await?;
                    keep(&answer);
                    match answer["next"].as_str() {
                        Some(next) if next > after.as_str() => after = next.to_owned(),
                        _ => break,
                    }
                }
            }
        }
    }
    let queue = env
        .queue(QUEUE_BINDING)
        .map_err(|e| EdgeError::Config(format!("{QUEUE_BINDING}: {e}")))?;
    let mut by_shard: std::collections::BTreeMap<u32, Vec<String>> = Default::default();
    for m in email::dedupe(members) {
        by_shard
            .entry(visitor_shard(&m.key, settings.shards))
            .or_default()
            .push(m.key);
    }
    let mut queued = 0;
    for (shard, keys) in by_shard {
        let fresh = store(env, shard, "/email/enqueue", json!({"n": id, "ids": keys})).await?;
        let fresh: Vec<String> = fresh["fresh"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|k| k.as_str().map(str::to_owned))
            .collect();
        match send_jobs(&queue, id, r, shard, &fresh, email_settings).await {
            Ok(n) => queued += n,
            Err((sent, e)) => {
                // Forget the pairs that never reached the queue, so that repeating the
                // request (same idempotency key) queues them.
                let unsent = &fresh[usize::try_from(sent).unwrap_or(usize::MAX).min(fresh.len())..];
                let call = json!({"n": id, "ids": unsent});
                if let Err(e) = store(env, shard, "/email/unqueue", call).await {
                    worker::console_error!("e-mail fan-out: could not forget unsent pairs: {e}");
                }
                return Err(e);
            }
        }
    }
    Ok(queued)
}

async fn send_jobs(
    queue: &worker::Queue,
    id: &str,
    r: &SendRequest,
    shard: u32,
    keys: &[String],
    settings: &Settings,
) -> Result<u64, (u64, EdgeError)> {
    let jobs: Vec<Job> = keys
        .iter()
        .map(|k| Job::new(id, r, k, shard, settings))
        .collect();
    crate::host::notify::send_in_batches(queue, &jobs).await
}

/// `POST …/retry` for e-mail: re-queues the failed pairs.
pub(super) async fn requeue(
    env: &Env,
    settings: &api::Settings,
    email_settings: &Settings,
    id: &str,
    r: &SendRequest,
) -> Result<u64, EdgeError> {
    let queue = env
        .queue(QUEUE_BINDING)
        .map_err(|e| EdgeError::Config(format!("{QUEUE_BINDING}: {e}")))?;
    let mut requeued = 0;
    for shard in 0..settings.shards {
        let ids = store(env, shard, "/email/requeue", json!({"n": id})).await?;
        let keys: Vec<String> = ids["ids"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|k| k.as_str().map(str::to_owned))
            .collect();
        match send_jobs(&queue, id, r, shard, &keys, email_settings).await {
            Ok(n) => requeued += n,
            Err((sent, e)) => {
                // Pairs that did not reach the queue go back to `failed`.
                for k in keys
                    .iter()
                    .skip(usize::try_from(sent).unwrap_or(usize::MAX))
                {
                    let call =
                        json!({"n": id, "s": k, "outcome": "failed", "reason": "could not queue"});
                    if let Err(e) = store(env, shard, "/email/record", call).await {
                        worker::console_error!("e-mail retry: {e}");
                    }
                }
                return Err(e);
            }
        }
    }
    Ok(requeued)
}

/// One e-mail queue message: an attempt, or (from the dead-letter queue) its failure.
pub(super) async fn handle(
    msg: &Message<Value>,
    dead: bool,
    env: &Env,
    config: &Config,
    settings: &api::Settings,
) {
    let Ok(job) = serde_json::from_value::<Job>(msg.body().clone()) else {
        worker::console_error!("e-mail queue: dropping a message that is not a job");
        msg.ack();
        return;
    };
    if dead {
        match record(env, &job, "failed", None, "dead-lettered").await {
            Ok(()) => msg.ack(),
            Err(e) => {
                worker::console_error!("e-mail dead-letter queue: {e}");
                msg.retry();
            }
        }
        return;
    }
    match deliver(&job, env, config, settings).await {
        Ok(Step::Ack) => msg.ack(),
        Ok(Step::Retry(delay)) => msg.retry_with_options(
            &QueueRetryOptionsBuilder::new()
                .with_delay_seconds(delay)
                .build(),
        ),
        Err(e) => {
            // The store or the flags are unreachable: the queue's own retries, then its
            // dead-letter queue.
            worker::console_error!("e-mail delivery {}: {e}", job.n);
            msg.retry();
        }
    }
}

/// The reason recorded when the kill switch stopped a queued e-mail.
const CHANNEL_OFF: &str = "channel off (kill switch)";

async fn record(
    env: &Env,
    job: &Job,
    outcome: &str,
    status: Option<u16>,
    reason: &str,
) -> Result<(), EdgeError> {
    let call =
        json!({"n": job.n, "s": job.k, "outcome": outcome, "status": status, "reason": reason});
    let answer = store(env, job.shard, "/email/record", call).await?;
    // Counted once: a duplicate message's record changes nothing.
    if answer["changed"] != false {
        let observed = match Observed::from_record(outcome) {
            Some(Observed::Failed) if reason == CHANNEL_OFF => Some(Observed::Dropped),
            o => o,
        };
        if let Some(o) = observed {
            observe(env, None, Channel::Email, o);
        }
    }
    Ok(())
}

async fn deliver(
    job: &Job,
    env: &Env,
    config: &Config,
    settings: &api::Settings,
) -> Result<Step, EdgeError> {
    let claim = store(
        env,
        job.shard,
        "/email/claim",
        json!({"n": job.n, "s": job.k}),
    )
    .await?;
    // Another copy of this message is being sent right now: wait for its outcome.
    if claim["state"] == "busy" {
        let secs = u32::try_from(claim["retryIn"].as_u64().unwrap_or(1)).unwrap_or(u32::MAX);
        return Ok(Step::Retry(secs.max(1)));
    }
    // Delivered, failed or gone already (a duplicate message): nothing to do.
    if claim["state"] != "queued" {
        if claim["removed"] == true {
            observe(env, None, Channel::Email, Observed::Dropped);
        }
        return Ok(Step::Ack);
    }
    let attempt = u32::try_from(claim["attempt"].as_u64().unwrap_or(1)).unwrap_or(u32::MAX);
    let now_secs = now_ms() / 1000;
    let active = flags::current(env, config).await?;
    if !crate::host::notify::flag_on(&active, Channel::Email, now_secs) {
        record(env, job, "failed", None, CHANNEL_OFF).await?;
        return Ok(Step::Ack);
    }
    let email_settings = match configured(env) {
        Ok(s) => s,
        Err(e) => {
            record(env, job, "failed", None, &e.to_string()).await?;
            return Ok(Step::Ack);
        }
    };
    let to = claim["email"].as_str().unwrap_or_default();
    if !email::valid_address(to) {
        record(env, job, "failed", None, "stored address unusable").await?;
        return Ok(Step::Ack);
    }
    let (status, retry_after) = match post(job, to, &email_settings).await {
        Ok(answer) => answer,
        Err(e) => {
            worker::console_warn!("e-mail API: {e}");
            (None, None)
        }
    };
    match email::classify(
        status,
        retry_after.as_deref(),
        attempt,
        &settings.backoff,
        now_secs,
    ) {
        Attempt::Delivered => record(env, job, "delivered", status, "").await?,
        Attempt::DeadLetter(reason) => {
            // The dead-letter queue records the failure; if even that fails, record it here.
            let sent = match env.queue(DLQ_BINDING) {
                Ok(q) => q.send(job.clone()).await.is_ok(),
                Err(_) => false,
            };
            if !sent {
                record(env, job, "failed", status, &reason).await?;
            }
        }
        Attempt::Failed(reason) => record(env, job, "failed", status, &reason).await?,
        Attempt::Retry { delay_secs, reason } => {
            record(env, job, "retry", status, &reason).await?;
            return Ok(Step::Retry(delay_secs));
        }
    }
    Ok(Step::Ack)
}

/// One POST to the e-mail API: status and `Retry-After`.
async fn post(
    job: &Job,
    to: &str,
    settings: &Settings,
) -> Result<(Option<u16>, Option<String>), String> {
    let body = email::render(&settings.template, job, to, &settings.from).to_string();
    let headers = Headers::new();
    crate::host::set_all(
        &headers,
        &[
            ("content-type", "application/json".to_owned()),
            ("authorization", settings.auth.clone()),
            ("idempotency-key", job.idempotency_key()),
        ],
    )
    .map_err(|e| e.to_string())?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(body.into()));
    let req = Request::new_with_init(&settings.api_url, &init).map_err(|e| e.to_string())?;
    // Aborted well before the pair's lease ends (`email::LEASE_SECS`): an answer that never
    // comes is a retry, never a second attempt racing this one.
    let signal = AbortSignal::from(web_sys::AbortSignal::timeout_with_u32(settings.timeout_ms));
    let res = Fetch::Request(req)
        .send_with_signal(&signal)
        .await
        .map_err(|e| e.to_string())?;
    Ok((
        Some(res.status_code()),
        res.headers().get("retry-after").ok().flatten(),
    ))
}
