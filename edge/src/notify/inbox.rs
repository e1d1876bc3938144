//! The in-app channel: which notifications a visitor's inbox shows, and the answer's shape
//! (the contract with the service worker and the demo app, `/work/notes/inbox-contract.md`).
//!
//! **Membership is decided when the visitor reads the inbox**, not at send: a notification
//! is stored once with its audience (in the feed object), and `GET {prefix}/inbox` evaluates
//! the audience flag for the visitor with the flag set current at that moment. Why: a send
//! then costs one write whatever the audience's size (nobody is enumerated; a flag audience
//! such as "30 % of visitors" has no list to enumerate for visitors who never subscribed),
//! and the inbox shows what the feature shows — a visitor who enters the audience later (the
//! rollout widened) sees the announcement, one whose variant was rolled back no longer does.
//! The price: membership is not frozen at send (a snapshot would need every visitor's key
//! at send time). Per visitor only read marks are stored (sharded by visitor hash).

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::{json, Value};

use super::api::{shard_of, valid_id, SendRequest};

/// Most items one inbox answer holds (the newest).
pub(crate) const MAX_ITEMS: usize = 50;
/// Oldest item an inbox shows; the feed and the read marks are kept as long.
pub(crate) const MAX_AGE_MS: u64 = 30 * 24 * 3600 * 1000;
/// Most feed entries read per inbox request (the newest): the feed is shared by every
/// audience, so more than [`MAX_ITEMS`] are looked at to find a visitor's fifty.
pub(crate) const FEED_SCAN: usize = 200;
/// Name of the feed's Durable Object (a `PushStore` instance of its own).
pub(crate) const FEED_OBJECT: &str = "inbox-feed";

/// A notification in the feed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FeedEntry {
    pub(crate) id: String,
    pub(crate) request: SendRequest,
    pub(crate) created_ms: u64,
}

/// One inbox item (the contract's shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Item {
    pub(crate) id: String,
    pub(crate) title: String,
    pub(crate) body: Option<String>,
    pub(crate) url: Option<String>,
    pub(crate) tag: Option<String>,
    pub(crate) created_at: u64,
    pub(crate) read: bool,
}

/// The feed entries `visitor` sees, newest first, at most [`MAX_ITEMS`], none older than
/// [`MAX_AGE_MS`]. `variant_of(flag, key)` evaluates an audience flag.
pub(crate) fn visible<'f>(
    feed: &'f [FeedEntry],
    visitor: &str,
    now_ms: u64,
    variant_of: impl Fn(&str, &str) -> Option<String>,
) -> Vec<&'f FeedEntry> {
    let oldest = now_ms.saturating_sub(MAX_AGE_MS);
    let mut seen: Vec<&FeedEntry> = feed
        .iter()
        .filter(|e| e.created_ms >= oldest)
        .filter(|e| e.request.audience.includes(visitor, &variant_of))
        .collect();
    // Newest first; equal times by id so the order is stable between requests.
    seen.sort_by(|a, b| b.created_ms.cmp(&a.created_ms).then(b.id.cmp(&a.id)));
    seen.truncate(MAX_ITEMS);
    seen
}

/// Whether `visitor` is in the audience of one entry that is still shown (`POST …/read`).
pub(crate) fn shows(
    entry: &FeedEntry,
    visitor: &str,
    now_ms: u64,
    variant_of: impl Fn(&str, &str) -> Option<String>,
) -> bool {
    entry.created_ms >= now_ms.saturating_sub(MAX_AGE_MS)
        && entry.request.audience.includes(visitor, variant_of)
}

/// The inbox answer: `{"items": [...], "unread": N}`.
pub(crate) fn answer(entries: &[&FeedEntry], read: &BTreeSet<String>) -> Value {
    let items: Vec<Item> = entries
        .iter()
        .map(|e| Item {
            id: e.id.clone(),
            title: e.request.title.clone(),
            body: Some(e.request.body.clone()).filter(|b| !b.is_empty()),
            url: e.request.url.clone(),
            tag: e.request.tag.clone(),
            created_at: e.created_ms,
            read: read.contains(&e.id),
        })
        .collect();
    let unread = items.iter().filter(|i| !i.read).count();
    json!({"items": items, "unread": unread})
}

/// The shard of a visitor's own rows (inbox read marks, e-mail contact): a hash of the
/// targeting key, so one visitor's rows are in one place.
pub(crate) fn visitor_shard(targeting_key: &str, shards: u32) -> u32 {
    shard_of(&format!("visitor\0{targeting_key}"), shards)
}

/// A request to the inbox, from the path below the admin prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route<'p> {
    List,
    Read(&'p str),
    /// `{prefix}/inbox/email`: the visitor's verified JWT `email` claim as their address.
    Email,
    /// An id of the wrong shape, or a path that is not the inbox's: 404.
    NotFound,
}

pub(crate) fn route(sub: &str) -> Route<'_> {
    match sub
        .trim_start_matches('/')
        .split('/')
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["inbox"] => Route::List,
        ["inbox", "email"] => Route::Email,
        ["inbox", id, "read"] if valid_id(id) => Route::Read(id),
        _ => Route::NotFound,
    }
}

/// How long an isolate reuses the feed it read (`INBOX_FEED_SECONDS`, 0–300, default 5):
/// every inbox request would otherwise call the one feed object. A send from the same
/// isolate drops its copy; other isolates see a new item within this time.
pub(crate) fn feed_ttl_ms(value: Option<&str>) -> Result<u64, String> {
    match value.map(str::trim) {
        None | Some("") => Ok(5_000),
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|s| *s <= 300)
            .map(|s| s * 1000)
            .ok_or_else(|| "INBOX_FEED_SECONDS must be a number of seconds in 0..=300".into()),
    }
}

/// The isolate's copy of the feed.
#[derive(Debug, Clone, Default)]
pub(crate) struct FeedCache {
    entries: std::rc::Rc<Vec<FeedEntry>>,
    fetched_ms: Option<u64>,
}

impl FeedCache {
    /// The copy, when it was read less than `ttl_ms` ago (a clock that went back makes it
    /// stale, never fresh forever).
    pub(crate) fn fresh(&self, now_ms: u64, ttl_ms: u64) -> Option<std::rc::Rc<Vec<FeedEntry>>> {
        let at = self.fetched_ms?;
        (now_ms >= at && now_ms - at < ttl_ms).then(|| self.entries.clone())
    }

    pub(crate) fn put(
        &mut self,
        entries: Vec<FeedEntry>,
        now_ms: u64,
    ) -> std::rc::Rc<Vec<FeedEntry>> {
        self.entries = std::rc::Rc::new(entries);
        self.fetched_ms = Some(now_ms);
        self.entries.clone()
    }

    pub(crate) fn invalidate(&mut self) {
        self.fetched_ms = None;
    }
}

/// Parses a feed row (`[id, request JSON, created]`) from the store.
pub(crate) fn feed_entry(row: &Value) -> Option<FeedEntry> {
    let id = row.get(0)?.as_str()?;
    let request = serde_json::from_str(row.get(1)?.as_str()?).ok()?;
    let created_ms = row.get(2)?.as_f64()?.max(0.0) as u64;
    Some(FeedEntry {
        id: id.to_owned(),
        request,
        created_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::api::notification_id;

    fn entry(n: u64, audience: Value, created_ms: u64) -> FeedEntry {
        let request = serde_json::from_value(json!({"title": format!("t{n}"), "body": "",
            "url": "/orders", "channels": ["inapp"], "audience": audience}))
        .unwrap();
        FeedEntry {
            id: notification_id(Some(&n.to_string()), || unreachable!()),
            request,
            created_ms,
        }
    }

    const DAY: u64 = 24 * 3600 * 1000;

    fn flag_on_for_alice(flag: &str, key: &str) -> Option<String> {
        (flag == "aud").then(|| if key == "alice" { "yes" } else { "no" }.to_owned())
    }

    #[test]
    fn membership_is_the_audience_at_read_time() {
        let now = 40 * DAY;
        let feed = vec![
            entry(1, json!({"flag": "aud", "variant": "yes"}), now - DAY),
            entry(2, json!({"targetingKeys": ["bob"]}), now - 2 * DAY),
            entry(3, json!({"flag": "aud", "variant": "no"}), now - 3 * DAY),
            entry(4, json!({"flag": "gone-flag", "variant": "yes"}), now - DAY),
        ];
        let ids = |v: Vec<&FeedEntry>| {
            v.iter()
                .map(|e| e.request.title.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(visible(&feed, "alice", now, flag_on_for_alice)), ["t1"]);
        assert_eq!(
            ids(visible(&feed, "bob", now, flag_on_for_alice)),
            ["t2", "t3"]
        );
        assert_eq!(ids(visible(&feed, "carol", now, flag_on_for_alice)), ["t3"]);
        // The audience flag changed: the inbox follows it.
        assert!(visible(&feed, "alice", now, |_, _| None).is_empty());
        assert!(shows(&feed[0], "alice", now, flag_on_for_alice));
        assert!(!shows(&feed[0], "bob", now, flag_on_for_alice));
    }

    #[test]
    fn newest_first_bounded_and_aged() {
        let now = 100 * DAY;
        let mut feed: Vec<FeedEntry> = (0..80)
            .map(|i| entry(i, json!({"targetingKeys": ["a"]}), now - i * 1000))
            .collect();
        feed.push(entry(999, json!({"targetingKeys": ["a"]}), now - 31 * DAY));
        let v = visible(&feed, "a", now, |_, _| None);
        assert_eq!(v.len(), MAX_ITEMS);
        assert_eq!(v[0].request.title, "t0");
        assert!(v.windows(2).all(|w| w[0].created_ms >= w[1].created_ms));
        assert!(v.iter().all(|e| e.request.title != "t999"));
        assert!(!shows(&feed[80], "a", now, |_, _| None));
    }

    #[test]
    fn answer_shape_and_unread() {
        let now = 10 * DAY;
        let feed = [
            entry(1, json!({"targetingKeys": ["a"]}), now),
            entry(2, json!({"targetingKeys": ["a"]}), now - 5),
        ];
        let refs: Vec<&FeedEntry> = feed.iter().collect();
        let read = BTreeSet::from([feed[1].id.clone()]);
        let a = answer(&refs, &read);
        assert_eq!(a["unread"], 1);
        assert_eq!(
            a["items"][0],
            json!({"id": feed[0].id, "title": "t1", "body": null, "url": "/orders",
                "tag": null, "createdAt": now, "read": false})
        );
        assert_eq!(a["items"][1]["read"], true);
        assert_eq!(answer(&[], &read), json!({"items": [], "unread": 0}));
    }

    #[test]
    fn the_feed_copy_expires() {
        assert_eq!(feed_ttl_ms(None), Ok(5_000));
        assert_eq!(feed_ttl_ms(Some("0")), Ok(0));
        assert_eq!(feed_ttl_ms(Some(" 30 ")), Ok(30_000));
        assert!(feed_ttl_ms(Some("301")).is_err());
        assert!(feed_ttl_ms(Some("soon")).is_err());
        let mut c = FeedCache::default();
        assert!(c.fresh(0, 5_000).is_none(), "nothing read yet");
        c.put(vec![entry(1, json!({"targetingKeys": ["a"]}), 1)], 1_000);
        assert_eq!(c.fresh(5_999, 5_000).map(|e| e.len()), Some(1));
        assert!(c.fresh(6_000, 5_000).is_none(), "expired");
        assert!(c.fresh(999, 5_000).is_none(), "the clock went back");
        assert!(c.fresh(1_000, 0).is_none(), "0 disables the copy");
        c.invalidate();
        assert!(
            c.fresh(1_001, 5_000).is_none(),
            "a send from this isolate drops it"
        );
    }

    #[test]
    fn routes_and_rows() {
        let id = notification_id(Some("k"), || unreachable!());
        assert_eq!(route("/inbox"), Route::List);
        assert_eq!(route("/inbox/email"), Route::Email);
        assert_eq!(route(&format!("/inbox/{id}/read")), Route::Read(&id));
        for bad in [
            "/inbox/x/read",
            "/inbox/../read",
            &format!("/inbox/{id}"),
            "/inbox/a/b/c",
        ] {
            assert_eq!(route(bad), Route::NotFound, "{bad}");
        }
        let e = entry(1, json!({"targetingKeys": ["a"]}), 7);
        let row = json!([e.id, serde_json::to_string(&e.request).unwrap(), 7]);
        assert_eq!(feed_entry(&row), Some(e));
        assert_eq!(feed_entry(&json!([1, 2])), None);
        assert_eq!(feed_entry(&json!(["n", "{bad", 1])), None);
        let s = visitor_shard("alice", 16);
        assert!(s < 16);
        assert_eq!(s, visitor_shard("alice", 16));
    }
}
