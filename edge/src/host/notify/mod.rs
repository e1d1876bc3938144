//! Web Push endpoints and delivery (issue 16, the push channel):
//! - public: `GET {prefix}/push/vapid-public-key`, `POST`/`DELETE {prefix}/push/subscriptions`;
//! - admin: `POST {prefix}/notifications`, `GET {prefix}/notifications/{id}`,
//!   `POST {prefix}/notifications/{id}/retry`;
//! - the Queue consumer that encrypts (RFC 8291), signs (RFC 8292) and sends (RFC 8030).
//!
//! A notification may name several channels: the in-app inbox (`notify_inbox.rs`) and
//! e-mail (`notify_email.rs`) share the ledger, the store shards, the queue and the status
//! endpoint with push.
//!
//! Decisions are `crate::notify`'s; this file calls the store, the queue and the network.

// WebCrypto for Web Push, e-mail delivery, the in-app inbox, the push subscriptions' store.
pub(crate) mod crypto;
pub(crate) mod email;
pub(crate) mod inbox;
pub(crate) mod store;

use edgeflags_core::Context as EvalContext;
use serde_json::{json, Value};
use worker::{
    Context, Env, Fetch, Headers, Message, MessageBatch, MessageExt, Method,
    QueueRetryOptionsBuilder, Request, RequestInit, Response,
};

use crate::host::{flags, header, internal, json_with_status, now_ms, random_id};
use crate::config::Config;
use crate::error::EdgeError;
use crate::flags::live::Active;
use crate::notify::api::{
    self, Audience, Channel, ChannelState, Counts, Job, SendRequest, Settings,
};
use crate::notify::delivery::{self, Outcome};
use crate::notify::outcome::Outcome as Observed;
use crate::notify::{b64url_decode, vapid};

/// Counts one delivery outcome of the in-app or e-mail channel in the metrics
/// (`edgeflags_notifications_total{channel, outcome}`), once per (notification, recipient)
/// event the store says happened. From a fetch pass its `ctx`, so a due batch is sent from
/// it (an isolate that only serves inboxes would otherwise never send its counts); the queue
/// handler passes `None` and sends at the end of each batch.
pub(super) fn observe(env: &Env, ctx: Option<&Context>, channel: Channel, outcome: Observed) {
    crate::host::measure::record_notification(env, ctx, channel.as_str(), outcome.as_str());
}

/// Durable Object binding of the push store shards (wrangler.toml).
pub(crate) const STORE_BINDING: &str = "PUSH_STORE";
/// Queue binding of the deliveries (producer), and of their dead-letter queue.
pub(crate) const QUEUE_BINDING: &str = "PUSH_QUEUE";
pub(crate) const DLQ_BINDING: &str = "PUSH_DLQ";
/// The dead-letter queue's name (wrangler.toml `[[queues.consumers]] dead_letter_queue`).
pub(crate) const DLQ_NAME: &str = "edgeflags-push-dlq";

pub(super) fn lookup(env: &Env, name: &str) -> Option<String> {
    env.var(name)
        .ok()
        .or_else(|| env.secret(name).ok())
        .map(|v| v.to_string())
        .filter(|v| !v.is_empty())
}

pub(super) fn settings(env: &Env) -> Result<Settings, EdgeError> {
    Settings::from_lookup(|n| lookup(env, n)).map_err(EdgeError::Config)
}

fn vapid_keys(env: &Env) -> Result<vapid::Keys, EdgeError> {
    vapid::Keys::parse(
        lookup(env, "VAPID_PUBLIC_KEY").as_deref(),
        lookup(env, "VAPID_PRIVATE_KEY").as_deref(),
        lookup(env, "VAPID_SUBJECT").as_deref(),
    )
    .map_err(EdgeError::Config)
}

/// Whether the push channel's flag is on right now.
fn channel_on(active: &Active, now_secs: u64) -> bool {
    flag_on(active, Channel::Push, now_secs)
}

/// Whether a channel's flag is on right now (`true` with an empty context; a missing flag
/// is off).
pub(super) fn flag_on(active: &Active, channel: Channel, now_secs: u64) -> bool {
    matches!(
        active
            .set
            .evaluate(channel.flag(), &EvalContext::empty(), now_secs)
            .value,
        Some(Value::Bool(true))
    )
}

pub(super) fn variant_of(active: &Active, flag: &str, key: &str, now_secs: u64) -> Option<String> {
    let mut m = serde_json::Map::new();
    m.insert("targetingKey".into(), Value::String(key.to_owned()));
    active
        .set
        .evaluate(flag, &EvalContext::from_map(m), now_secs)
        .variant
        .map(str::to_owned)
}

/// One call to a shard of the push store.
pub(super) async fn store(
    env: &Env,
    shard: u32,
    path: &str,
    call: Value,
) -> Result<Value, EdgeError> {
    store_named(env, &api::shard_name(shard), path, call).await
}

/// One call to a store object by name (a shard, or the in-app feed).
pub(super) async fn store_named(
    env: &Env,
    name: &str,
    path: &str,
    call: Value,
) -> Result<Value, EdgeError> {
    crate::host::durable_call(env, (STORE_BINDING, name, "push store"), path, &call).await
}

/// `{prefix}/push/...` (public).
pub(crate) async fn public(
    mut req: Request,
    env: &Env,
    config: &Config,
    sub: &str,
) -> Result<Response, EdgeError> {
    let method = req.method();
    match (method.clone(), sub) {
        (Method::Get, "/push/vapid-public-key") => {
            crate::host::rate_limit(env, &req, "public").await?;
            let keys = vapid_keys(env)?;
            let res = crate::host::json(&json!({"publicKey": keys.public_b64()}))?;
            res.headers()
                .set("cache-control", "public, max-age=300")
                .map_err(internal)?;
            Ok(res)
        }
        (Method::Post | Method::Delete, "/push/subscriptions") => {
            crate::host::rate_limit(env, &req, "push").await?;
            let settings = settings(env)?;
            let visitor = crate::host::jwt::visitor(&req, env, config, true).await;
            let key = visitor.key.clone().ok_or_else(|| {
                EdgeError::TargetingKeyMissing(
                    "no visitor identity to tie the subscription to".into(),
                )
            })?;
            let body = crate::host::body(&mut req, api::MAX_BODY_BYTES).await?;
            let subscribe = method == Method::Post;
            let s = api::parse_subscription(&body, &settings, subscribe)
                .map_err(EdgeError::BadRequest)?;
            let id = api::subscription_id(&s.endpoint);
            let shard = api::shard_of(&s.endpoint, settings.shards);
            let mut res = if subscribe {
                store(
                    env,
                    shard,
                    "/subscribe",
                    json!({"id": id, "subscription": s, "targetingKey": key}),
                )
                .await?;
                json_with_status(&json!({"id": id}), 201)?
            } else {
                // Only the visitor the subscription is registered to can remove it.
                let answer = store(
                    env,
                    shard,
                    "/unsubscribe",
                    json!({"id": id, "targetingKey": key}),
                )
                .await?;
                json_with_status(&json!({"id": id, "removed": answer["removed"]}), 200)?
            };
            if let Some(cookie) = visitor.set_cookie {
                res.headers_mut()
                    .append("set-cookie", &cookie)
                    .map_err(internal)?;
            }
            Ok(res)
        }
        (_, "/push/vapid-public-key" | "/push/subscriptions") => {
            Err(EdgeError::MethodNotAllowed(method.to_string()))
        }
        _ => Err(EdgeError::NotFound(format!("{}{sub}", config.admin_prefix))),
    }
}

/// `{prefix}/notifications[/{id}[/retry]]` (admin token).
pub(crate) async fn admin(
    mut req: Request,
    env: &Env,
    config: &Config,
    sub: &str,
) -> Result<Response, EdgeError> {
    let tokens = crate::host::admin_tokens(env)?;
    tokens.authenticate(header(&req, "authorization").as_deref())?;
    let segments: Vec<&str> = sub.trim_matches('/').split('/').collect();
    let method = req.method();
    match (method.clone(), segments.as_slice()) {
        (Method::Post, ["notifications"]) => {
            let body = crate::host::body(&mut req, api::MAX_BODY_BYTES).await?;
            send(env, config, &body).await
        }
        (Method::Put | Method::Delete, ["notifications", "contacts"]) => {
            let body = crate::host::body(&mut req, api::MAX_BODY_BYTES).await?;
            crate::host::notify::email::contact(env, &body, method == Method::Put).await
        }
        (_, ["notifications", "contacts"]) => Err(EdgeError::MethodNotAllowed(method.to_string())),
        (Method::Get, ["notifications", id]) if api::valid_id(id) => status(env, config, id).await,
        (Method::Post, ["notifications", id, "retry"]) if api::valid_id(id) => {
            retry(env, config, id).await
        }
        (_, ["notifications"] | ["notifications", _] | ["notifications", _, "retry"])
            if !matches!(method, Method::Get | Method::Post) =>
        {
            Err(EdgeError::MethodNotAllowed(method.to_string()))
        }
        _ => Err(EdgeError::NotFound(format!("{}{sub}", config.admin_prefix))),
    }
}

async fn send(env: &Env, config: &Config, body: &[u8]) -> Result<Response, EdgeError> {
    let r = api::parse_send(body).map_err(EdgeError::BadRequest)?;
    let settings = settings(env)?;
    // Refuse before anything is stored when a requested channel is not configured (409
    // with the channel's path); settings that are present but malformed stay a deploy
    // error (500) below.
    let email_settings = crate::host::notify::email::settings(env)?;
    let push_configured = lookup(env, "VAPID_PUBLIC_KEY").is_some();
    if let Some(problem) = r.unconfigured(|c| match c {
        Channel::Push => push_configured,
        Channel::Email => email_settings.is_some(),
        Channel::Inapp => true,
    }) {
        return Err(EdgeError::Conflict(problem));
    }
    if r.has(Channel::Push) {
        vapid_keys(env)?;
    }
    let email = if r.has(Channel::Email) {
        email_settings
    } else {
        None
    };
    let id = api::notification_id(r.idempotency_key.as_deref(), || {
        random_id().unwrap_or_default()
    });
    let ledger = api::shard_of(&id, settings.shards);
    let active = flags::current(env, config).await?;
    let now_secs = now_ms() / 1000;
    if let Audience::Flag { flag, .. } = &r.audience {
        let missing = active
            .set
            .evaluate(flag, &EvalContext::empty(), now_secs)
            .error
            .is_some_and(|e| e.code == edgeflags_core::ErrorCode::FlagNotFound);
        if missing {
            return Err(EdgeError::FlagNotFound(flag.clone()));
        }
    }
    // Each channel's flag, as it is at send: a channel off now is never sent on for this
    // notification (re-enabling the flag later does not send it).
    let states = api::states_at_send(&r, |c| flag_on(&active, c, now_secs));
    let put = store(
        env,
        ledger,
        "/ledger/put",
        json!({"id": id, "request": serde_json::to_string(&r).map_err(internal)?,
               "channel": serde_json::to_string(&states).map_err(internal)?}),
    )
    .await?;
    let duplicate = put["created"] == false;
    let record = &put["record"];
    let states = if duplicate {
        api::channel_states(record["channel"].as_str().unwrap_or_default())
    } else {
        states
    };
    let mut report = serde_json::Map::new();
    for (channel, state) in &states {
        report.insert(
            channel.as_str().into(),
            json!({"state": state, "queued": 0}),
        );
    }
    // A repeated request completes a fan-out an earlier one did not finish (with the
    // request as first stored); the stores queue each (notification, recipient) pair
    // once, so nothing is sent twice.
    if !(duplicate && record["fannedOut"] == true) {
        let stored = record["request"]
            .as_str()
            .and_then(|t| serde_json::from_str::<SendRequest>(t).ok());
        let r = stored.as_ref().unwrap_or(&r);
        for (channel, state) in &states {
            if *state != ChannelState::On {
                continue;
            }
            let queued = match channel {
                Channel::Push => {
                    let inbox = api::inbox_listed(&states);
                    fan_out(env, &settings, &active, &id, r, now_secs, inbox).await?
                }
                Channel::Inapp => {
                    // One write, whatever the audience: membership is decided when a
                    // visitor reads the inbox (`notify::inbox`).
                    let text = serde_json::to_string(r).map_err(internal)?;
                    let call = json!({"id": id, "request": text});
                    store_named(env, crate::notify::inbox::FEED_OBJECT, "/feed/put", call).await?;
                    crate::host::notify::inbox::feed_changed();
                    0
                }
                Channel::Email => match &email {
                    Some(e) => {
                        crate::host::notify::email::fan_out(env, &settings, e, &active, &id, r, now_secs)
                            .await?
                    }
                    None => 0,
                },
            };
            report.insert(
                channel.as_str().into(),
                json!({"state": state, "queued": queued}),
            );
        }
        store(env, ledger, "/ledger/done", json!({"id": id})).await?;
    }
    json_with_status(
        &json!({"id": id, "duplicate": duplicate,
                "status": format!("{}/notifications/{id}", config.admin_prefix),
                "channels": report}),
        202,
    )
}

/// Queues the notification for every subscription of its audience, shard by shard.
async fn fan_out(
    env: &Env,
    settings: &Settings,
    active: &Active,
    id: &str,
    r: &SendRequest,
    now_secs: u64,
    inbox: bool,
) -> Result<u64, EdgeError> {
    let keys = match &r.audience {
        Audience::Keys { targeting_keys } => Some(targeting_keys.clone()),
        Audience::Flag { .. } => None,
    };
    let queue = env
        .queue(QUEUE_BINDING)
        .map_err(|e| EdgeError::Config(format!("{QUEUE_BINDING}: {e}")))?;
    let mut queued = 0u64;
    for shard in 0..settings.shards {
        let subs = store(env, shard, "/audience", json!({"keys": keys})).await?;
        let ids: Vec<String> = subs["subs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| {
                let key = s[1].as_str().unwrap_or_default();
                r.audience
                    .includes(key, |flag, k| variant_of(active, flag, k, now_secs))
            })
            .filter_map(|s| s[0].as_str().map(str::to_owned))
            .collect();
        if ids.is_empty() {
            continue;
        }
        let fresh = store(env, shard, "/enqueue", json!({"n": id, "ids": ids})).await?;
        match send_jobs(&queue, id, r, shard, &fresh["fresh"], inbox).await {
            Ok(n) => queued += n,
            Err((sent, e)) => {
                // Forget the pairs that never reached the queue, so that repeating the
                // request (same idempotency key) queues them instead of finding them
                // "queued" forever.
                let unsent: Vec<&Value> = fresh["fresh"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .skip(usize::try_from(sent).unwrap_or(usize::MAX))
                    .collect();
                if let Err(e) = store(env, shard, "/unqueue", json!({"n": id, "ids": unsent})).await
                {
                    worker::console_error!("push fan-out: could not forget unsent pairs: {e}");
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
    subs: &Value,
    inbox: bool,
) -> Result<u64, (u64, EdgeError)> {
    let jobs: Vec<Job> = subs
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|s| Job::new(id, r, s, shard, inbox))
        .collect();
    send_in_batches(queue, &jobs).await
}

/// Sends queue messages in batches of [`api::QUEUE_BATCH`]; on a failure, says how many
/// went out before it (the caller rolls back the rest).
pub(super) async fn send_in_batches<T: serde::Serialize + Clone>(
    queue: &worker::Queue,
    jobs: &[T],
) -> Result<u64, (u64, EdgeError)> {
    let mut sent = 0u64;
    for chunk in jobs.chunks(api::QUEUE_BATCH) {
        queue
            .send_batch(chunk.to_vec())
            .await
            .map_err(|e| (sent, internal(e)))?;
        sent += chunk.len() as u64;
    }
    Ok(sent)
}

pub(super) async fn ledger(
    env: &Env,
    settings: &Settings,
    id: &str,
) -> Result<(Value, SendRequest), EdgeError> {
    let got = store(
        env,
        api::shard_of(id, settings.shards),
        "/ledger/get",
        json!({"id": id}),
    )
    .await?;
    let record = got["record"].clone();
    if record.is_null() {
        return Err(EdgeError::NotFound(format!("notification {id}")));
    }
    let r: SendRequest =
        serde_json::from_str(record["request"].as_str().unwrap_or_default()).map_err(internal)?;
    Ok((record, r))
}

async fn status(env: &Env, config: &Config, id: &str) -> Result<Response, EdgeError> {
    let settings = settings(env)?;
    let (record, r) = ledger(env, &settings, id).await?;
    let states = api::channel_states(record["channel"].as_str().unwrap_or_default());
    let active = flags::current(env, config).await?;
    let now_secs = now_ms() / 1000;
    let mut channels = serde_json::Map::new();
    for channel in r.channel_list() {
        let mut out = match channel {
            // In-app: delivered = visitors whose inbox fetched it, read = marked read.
            // Nobody is targeted in advance (membership is decided at read time).
            Channel::Inapp => {
                let (mut delivered, mut read) = (0, 0);
                for shard in 0..settings.shards {
                    let c = store(env, shard, "/inapp/counts", json!({"n": id})).await?;
                    delivered += c["delivered"].as_u64().unwrap_or(0);
                    read += c["read"].as_u64().unwrap_or(0);
                }
                json!({"delivered": delivered, "read": read})
            }
            Channel::Push | Channel::Email => {
                let path = if channel == Channel::Push {
                    "/counts"
                } else {
                    "/email/counts"
                };
                let mut counts = Counts::default();
                for shard in 0..settings.shards {
                    let c = store(env, shard, path, json!({"n": id})).await?;
                    counts += serde_json::from_value::<Counts>(c).map_err(internal)?;
                }
                serde_json::to_value(counts).map_err(internal)?
            }
        };
        out["state"] = json!(states
            .get(&channel)
            .copied()
            .unwrap_or(ChannelState::Disabled));
        out["enabled"] = Value::Bool(flag_on(&active, channel, now_secs));
        channels.insert(channel.as_str().into(), out);
    }
    crate::host::json(
        &json!({"id": id, "createdMs": record["createdMs"], "title": r.title,
        "idempotencyKey": r.idempotency_key, "channels": channels}),
    )
}

async fn retry(env: &Env, config: &Config, id: &str) -> Result<Response, EdgeError> {
    let settings = settings(env)?;
    let (record, r) = ledger(env, &settings, id).await?;
    let inbox = api::inbox_listed(&api::channel_states(
        record["channel"].as_str().unwrap_or_default(),
    ));
    let active = flags::current(env, config).await?;
    let now_secs = now_ms() / 1000;
    let on =
        api::retry_channels(&r, |c| flag_on(&active, c, now_secs)).map_err(EdgeError::Conflict)?;
    let mut per_channel = serde_json::Map::new();
    let mut requeued = 0;
    for channel in on {
        let n = match channel {
            Channel::Push => retry_push(env, &settings, id, &r, inbox).await?,
            Channel::Email => {
                let email = crate::host::notify::email::configured(env)?;
                crate::host::notify::email::requeue(env, &settings, &email, id, &r).await?
            }
            Channel::Inapp => 0,
        };
        requeued += n;
        per_channel.insert(channel.as_str().into(), json!(n));
    }
    json_with_status(
        &json!({"id": id, "requeued": requeued, "channels": per_channel}),
        202,
    )
}

async fn retry_push(
    env: &Env,
    settings: &Settings,
    id: &str,
    r: &SendRequest,
    inbox: bool,
) -> Result<u64, EdgeError> {
    let queue = env
        .queue(QUEUE_BINDING)
        .map_err(|e| EdgeError::Config(format!("{QUEUE_BINDING}: {e}")))?;
    let mut requeued = 0;
    for shard in 0..settings.shards {
        let ids = store(env, shard, "/requeue", json!({"n": id})).await?;
        // Pairs that did not reach the queue go back to `failed`, where a later retry
        // finds them.
        match send_jobs(&queue, id, r, shard, &ids["ids"], inbox).await {
            Ok(n) => requeued += n,
            Err((sent, e)) => {
                let unsent: Vec<&Value> = ids["ids"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .skip(usize::try_from(sent).unwrap_or(usize::MAX))
                    .collect();
                for s in unsent {
                    let call =
                        json!({"n": id, "s": s, "outcome": "failed", "reason": "could not queue"});
                    if let Err(e) = store(env, shard, "/record", call).await {
                        worker::console_error!("push retry: {e}");
                    }
                }
                return Err(e);
            }
        }
    }
    Ok(requeued)
}

/// What to do with a queue message after an attempt.
pub(super) enum Step {
    Ack,
    Retry(u32),
}

/// The queue consumer: deliveries, and the dead-letter queue.
pub(crate) async fn consume(batch: MessageBatch<Value>, env: &Env, config: &Config) {
    let dead = batch.queue() == DLQ_NAME;
    let messages: Vec<Message<Value>> = match batch.messages() {
        Ok(m) => m,
        Err(e) => {
            worker::console_error!("push queue: unreadable batch: {e}");
            batch.retry_all();
            return;
        }
    };
    let settings = match settings(env) {
        Ok(s) => s,
        Err(e) => {
            worker::console_error!("push queue: {e}");
            batch.retry_all();
            return;
        }
    };
    // The messages of a batch are independent pairs: send them concurrently (a batch of 10
    // costs about 30 subrequests: claim, push, record).
    let settings = &settings;
    futures_util::future::join_all(
        messages
            .iter()
            .map(|msg| handle(msg, dead, env, config, settings)),
    )
    .await;
}

/// One queue message: a delivery attempt, or (from the dead-letter queue) its failure.
async fn handle(msg: &Message<Value>, dead: bool, env: &Env, config: &Config, settings: &Settings) {
    if crate::notify::email::Job::is_email(msg.body()) {
        return crate::host::notify::email::handle(msg, dead, env, config, settings).await;
    }
    let Ok(job) = serde_json::from_value::<Job>(msg.body().clone()) else {
        worker::console_error!("push queue: dropping a message that is not a job");
        msg.ack();
        return;
    };
    if dead {
        let call = json!({"n": job.n, "s": job.s, "outcome": "failed", "reason": "dead-lettered"});
        match store(env, job.shard, "/record", call).await {
            Ok(answer) => {
                count(env, &answer, "failed");
                msg.ack()
            }
            Err(e) => {
                worker::console_error!("push dead-letter queue: {e}");
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
            // The store or the flags are unreachable: the queue's own retries, then
            // its dead-letter queue.
            worker::console_error!("push delivery {} → {}: {e}", job.n, job.s);
            msg.retry();
        }
    }
}

/// Counts a delivery outcome of the push channel in the metrics, when the store says the
/// call moved the delivery (a duplicate message's call does not).
fn count(env: &Env, answer: &Value, outcome: &str) {
    if answer["changed"] != false {
        crate::host::measure::record_notification(env, None, "push", outcome);
    }
}

async fn record(
    env: &Env,
    job: &Job,
    outcome: &str,
    status: Option<u16>,
    reason: &str,
) -> Result<(), EdgeError> {
    let answer = store(
        env,
        job.shard,
        "/record",
        json!({"n": job.n, "s": job.s, "outcome": outcome, "status": status, "reason": reason}),
    )
    .await?;
    // The kill switch's "failed" was never attempted: `dropped` in the metrics.
    let counted = match outcome {
        "retry" => "retried",
        _ if reason == CHANNEL_OFF => "dropped",
        other => other,
    };
    count(env, &answer, counted);
    Ok(())
}

const CHANNEL_OFF: &str = "channel off (kill switch)";

async fn deliver(
    job: &Job,
    env: &Env,
    config: &Config,
    settings: &Settings,
) -> Result<Step, EdgeError> {
    let claim = store(env, job.shard, "/claim", json!({"n": job.n, "s": job.s})).await?;
    // Delivered, gone or failed already (a duplicate message): nothing to do.
    if claim["state"] != "queued" {
        if claim["unsubscribed"] == true {
            crate::host::measure::record_notification(env, None, "push", "dropped");
        }
        return Ok(Step::Ack);
    }
    let attempt = u32::try_from(claim["attempt"].as_u64().unwrap_or(1)).unwrap_or(u32::MAX);
    let now_secs = now_ms() / 1000;
    let active = flags::current(env, config).await?;
    if !channel_on(&active, now_secs) {
        record(env, job, "failed", None, CHANNEL_OFF).await?;
        return Ok(Step::Ack);
    }
    let keys = match vapid_keys(env) {
        Ok(k) => k,
        Err(e) => {
            record(env, job, "failed", None, &e.to_string()).await?;
            return Ok(Step::Ack);
        }
    };
    let sub = &claim["subscription"];
    let (status, retry_after) = match push(job, sub, &keys, now_secs).await {
        Ok(answer) => answer,
        Err(PushError::Permanent(e)) => {
            record(env, job, "failed", None, &e).await?;
            return Ok(Step::Ack);
        }
        Err(PushError::Network(e)) => {
            worker::console_warn!("push to {}: {e}", job.s);
            (None, None)
        }
    };
    let retriable = matches!(status, None | Some(429 | 500..=599));
    match delivery::classify(
        status,
        retry_after.as_deref(),
        attempt,
        &settings.backoff,
        now_secs,
    ) {
        Outcome::Delivered => record(env, job, "delivered", status, "").await?,
        Outcome::Gone => {
            record(env, job, "gone", status, "subscription expired or revoked").await?
        }
        Outcome::Failed(reason) if retriable => {
            // Retries exhausted: the dead-letter queue records the failure (and keeps the
            // message visible to operators); if even that fails, record it here.
            let sent = match env.queue(DLQ_BINDING) {
                Ok(q) => q.send(job.clone()).await.is_ok(),
                Err(_) => false,
            };
            if !sent {
                record(env, job, "failed", status, &reason).await?;
            }
        }
        Outcome::Failed(reason) => record(env, job, "failed", status, &reason).await?,
        Outcome::Retry { delay_secs, reason } => {
            record(env, job, "retry", status, &reason).await?;
            return Ok(Step::Retry(delay_secs));
        }
    }
    Ok(Step::Ack)
}

enum PushError {
    /// Retrying cannot help (a malformed stored key, a misconfigured VAPID key).
    Permanent(String),
    /// The push service could not be reached.
    Network(String),
}

/// One POST to the push service: status and `Retry-After`.
async fn push(
    job: &Job,
    sub: &Value,
    keys: &vapid::Keys,
    now_secs: u64,
) -> Result<(Option<u16>, Option<String>), PushError> {
    let endpoint = sub["endpoint"].as_str().unwrap_or_default();
    let p256dh = sub["p256dh"]
        .as_str()
        .and_then(b64url_decode)
        .ok_or(PushError::Permanent("stored p256dh unreadable".into()))?;
    let auth = sub["auth"]
        .as_str()
        .and_then(b64url_decode)
        .ok_or(PushError::Permanent("stored auth unreadable".into()))?;
    let body = crate::host::notify::crypto::encrypt(job.payload.as_bytes(), &p256dh, &auth)
        .await
        .map_err(PushError::Permanent)?;
    let authorization = crate::host::notify::crypto::vapid_authorization(keys, endpoint, now_secs)
        .await
        .map_err(PushError::Permanent)?;
    let headers = Headers::new();
    let mut pairs = vec![
        ("content-encoding", "aes128gcm".to_owned()),
        ("content-type", "application/octet-stream".to_owned()),
        ("ttl", job.ttl.to_string()),
        ("urgency", job.urgency.header().to_owned()),
        ("authorization", authorization),
    ];
    if let Some(topic) = job.topic.as_ref().filter(|t| api::valid_topic(t)) {
        pairs.push(("topic", topic.clone()));
    }
    crate::host::set_all(&headers, &pairs).map_err(|e| PushError::Permanent(e.to_string()))?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(js_sys::Uint8Array::from(&body[..]).into()));
    let req =
        Request::new_with_init(endpoint, &init).map_err(|e| PushError::Permanent(e.to_string()))?;
    let res = Fetch::Request(req)
        .send()
        .await
        .map_err(|e| PushError::Network(e.to_string()))?;
    Ok((
        Some(res.status_code()),
        res.headers().get("retry-after").ok().flatten(),
    ))
}
