//! The in-app inbox (issue 16): `GET {prefix}/inbox` and `POST {prefix}/inbox/{id}/read`
//! for the current visitor (the shared visitor identity: signed `ef_uid` cookie or verified
//! JWT), and `{prefix}/inbox/email` (the visitor's verified JWT address, `notify_email.rs`).
//! Every endpoint here is public and rate-limited.
//!
//! Who sees what is `crate::notify::inbox`'s decision (membership at read time); this file
//! reads the feed, evaluates the audience flags and writes the visitor's marks.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;

use serde_json::json;
use worker::{Context, Env, Method, Request, Response};

use crate::host::notify::{flag_on, observe, store, store_named, variant_of};
use crate::host::{flags, internal, now_ms};
use crate::config::Config;
use crate::error::EdgeError;
use crate::notify::inbox::{self, FeedCache, FeedEntry, Route};
use crate::notify::outcome::{Channel, Outcome};

/// `{prefix}/inbox…`.
pub(crate) async fn handle(
    req: Request,
    env: &Env,
    config: &Config,
    ctx: &Context,
    sub: &str,
) -> Result<Response, EdgeError> {
    crate::host::rate_limit(env, &req, "public").await?;
    let method = req.method();
    match (inbox::route(sub), method.clone()) {
        (Route::List, Method::Get) => list(&req, env, config, ctx).await,
        (Route::Read(id), Method::Post) => read(&req, env, config, ctx, id).await,
        (Route::Email, _) => crate::host::notify::email::own_address(&req, env, config).await,
        (Route::List | Route::Read(_), m) => Err(EdgeError::MethodNotAllowed(m.to_string())),
        (Route::NotFound, _) => Err(EdgeError::NotFound(format!("{}{sub}", config.admin_prefix))),
    }
}

async fn list(
    req: &Request,
    env: &Env,
    config: &Config,
    ctx: &Context,
) -> Result<Response, EdgeError> {
    // No id is issued here: a cookieless read has no inbox (an id minted for it would
    // write read marks and count deliveries to nobody). The page visit issues the id.
    let visitor = crate::host::jwt::visitor(req, env, config, false).await;
    let active = flags::current(env, config).await?;
    let now = now_ms();
    let mut body = inbox::answer(&[], &BTreeSet::new());
    // The kill switch empties every inbox at once; a visitor without identity has none.
    if let (Some(key), true) = (
        visitor.key.as_deref(),
        flag_on(&active, Channel::Inapp, now / 1000),
    ) {
        let entries = feed(env, now).await?;
        let visible = inbox::visible(&entries, key, now, |flag, k| {
            variant_of(&active, flag, k, now / 1000)
        });
        if !visible.is_empty() {
            let shards = crate::host::notify::settings(env)?.shards;
            let ids: Vec<&str> = visible.iter().map(|e| e.id.as_str()).collect();
            let marks = store(
                env,
                inbox::visitor_shard(key, shards),
                "/inbox/seen",
                json!({"targetingKey": key, "ids": ids}),
            )
            .await?;
            // The first fetch of an item is its in-app delivery.
            for _ in marks["fresh"].as_array().into_iter().flatten() {
                observe(env, Some(ctx), Channel::Inapp, Outcome::Delivered);
            }
            let read: BTreeSet<String> = marks["read"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect();
            body = inbox::answer(&visible, &read);
        }
    }
    let mut res = Response::from_json(&body).map_err(internal)?;
    crate::host::set_all(
        res.headers(),
        &[("cache-control", "private, no-cache".to_owned())],
    )?;
    // Only a re-signed cookie (an older signing key) comes back here, never a new id.
    if let Some(cookie) = visitor.set_cookie {
        res.headers_mut()
            .append("set-cookie", &cookie)
            .map_err(internal)?;
    }
    Ok(res)
}

/// The isolate's copy of the feed (`host/isolate.rs`).
fn feed_copy<R>(f: impl FnOnce(&RefCell<FeedCache>) -> R) -> R {
    crate::host::isolate::with(|i| f(&i.feed))
}

/// Drops the isolate's copy of the feed (after this isolate put a new item into it).
pub(super) fn feed_changed() {
    feed_copy(|f| f.borrow_mut().invalidate());
}

/// The newest feed entries: the isolate's copy while it is fresh, else from the feed object.
async fn feed(env: &Env, now: u64) -> Result<Rc<Vec<FeedEntry>>, EdgeError> {
    let ttl = inbox::feed_ttl_ms(crate::host::notify::lookup(env, "INBOX_FEED_SECONDS").as_deref())
        .map_err(EdgeError::Config)?;
    if let Some(entries) = feed_copy(|f| f.borrow().fresh(now, ttl)) {
        return Ok(entries);
    }
    let call = json!({"limit": inbox::FEED_SCAN});
    let answer = store_named(env, inbox::FEED_OBJECT, "/feed/list", call).await?;
    let entries: Vec<FeedEntry> = answer["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(inbox::feed_entry)
        .collect();
    Ok(feed_copy(|f| f.borrow_mut().put(entries, now)))
}

async fn read(
    req: &Request,
    env: &Env,
    config: &Config,
    ctx: &Context,
    id: &str,
) -> Result<Response, EdgeError> {
    let unknown = || EdgeError::NotFound(format!("inbox item {id}"));
    let visitor = crate::host::jwt::visitor(req, env, config, false).await;
    let key = visitor.key.ok_or_else(unknown)?;
    let active = flags::current(env, config).await?;
    let now = now_ms();
    if !flag_on(&active, Channel::Inapp, now / 1000) {
        return Err(unknown());
    }
    // The isolate's copy first; an item newer than the copy is looked up.
    let cached = feed(env, now).await?.iter().find(|e| e.id == id).cloned();
    let entry = match cached {
        Some(e) => e,
        None => {
            let got = store_named(env, inbox::FEED_OBJECT, "/feed/get", json!({"id": id})).await?;
            inbox::feed_entry(&got["item"]).ok_or_else(unknown)?
        }
    };
    // An item the visitor does not see is unknown to them (no hint that it exists).
    if !inbox::shows(&entry, &key, now, |flag, k| {
        variant_of(&active, flag, k, now / 1000)
    }) {
        return Err(unknown());
    }
    let shards = crate::host::notify::settings(env)?.shards;
    let marked = store(
        env,
        inbox::visitor_shard(&key, shards),
        "/inbox/read",
        json!({"targetingKey": key, "id": id}),
    )
    .await?;
    if marked["delivered"] == true {
        observe(env, Some(ctx), Channel::Inapp, Outcome::Delivered);
    }
    if marked["read"] == true {
        observe(env, Some(ctx), Channel::Inapp, Outcome::Read);
    }
    let res = Response::empty().map_err(internal)?.with_status(204);
    res.headers()
        .set("cache-control", "no-store")
        .map_err(internal)?;
    Ok(res)
}
