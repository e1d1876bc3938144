//! The notification API's shapes and decisions: send requests, browser subscriptions,
//! ids and idempotency, shards, audiences, the channel switch, queue jobs and status.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::delivery::Backoff;
pub(crate) use super::outcome::Channel;
use super::{b64url_decode, ece, sha256_hex};

/// Largest request body of the notification endpoints.
pub(crate) const MAX_BODY_BYTES: usize = 16 * 1024;
/// RFC 8030 §5.2: a TTL beyond four weeks is pointless (services cap it anyway).
pub(crate) const MAX_TTL_SECS: u32 = 28 * 24 * 3600;
/// TTL when the request gives none: a day.
pub(crate) const DEFAULT_TTL_SECS: u32 = 24 * 3600;
/// Most explicit targeting keys in one request.
pub(crate) const MAX_TARGETING_KEYS: usize = 1000;
/// Queue messages per `sendBatch` (the Queues limit).
pub(crate) const QUEUE_BATCH: usize = 100;

/// Settings of the push channel (vars and secrets), parsed by the host on demand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settings {
    /// Number of `PushStore` shards (`PUSH_SHARDS`, 1–256, default 16). Changing it moves
    /// subscriptions to other shards: choose it before the first subscription.
    pub(crate) shards: u32,
    /// Hosts push endpoints may point to (`PUSH_ENDPOINT_HOSTS`, comma-separated; a leading
    /// `*.` matches subdomains). Default: the browser vendors' push services.
    pub(crate) endpoint_hosts: Vec<String>,
    pub(crate) backoff: Backoff,
}

/// Push services of Chrome/Edge (FCM), Firefox (Mozilla autopush), Safari (Apple) and
/// legacy Edge (WNS).
pub(crate) const DEFAULT_ENDPOINT_HOSTS: &str =
    "fcm.googleapis.com,*.push.services.mozilla.com,*.push.apple.com,*.notify.windows.com";

impl Settings {
    pub(crate) fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let num = |name: &str, default: u32, range: std::ops::RangeInclusive<u32>| match get(name) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| range.contains(n))
                .ok_or(format!("{name} must be a number in {range:?}")),
        };
        let d = Backoff::default();
        Ok(Self {
            shards: num("PUSH_SHARDS", 16, 1..=256)?,
            endpoint_hosts: get("PUSH_ENDPOINT_HOSTS")
                .unwrap_or_else(|| DEFAULT_ENDPOINT_HOSTS.into())
                .split(',')
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect(),
            backoff: Backoff {
                base_secs: num("PUSH_RETRY_BASE_SECONDS", d.base_secs, 0..=3600)?,
                max_secs: d.max_secs,
                max_attempts: num("PUSH_MAX_ATTEMPTS", d.max_attempts, 1..=50)?,
            },
        })
    }

    /// Whether a push endpoint may be stored: `https:` to an allowed host, or `http:` to a
    /// loopback host that is explicitly allowed (local tests). Anything else would let any
    /// visitor make the edge POST to a URL of their choosing.
    pub(crate) fn endpoint_allowed(&self, endpoint: &str) -> bool {
        let Some(Target {
            scheme,
            host,
            loopback,
        }) = target(endpoint)
        else {
            return false;
        };
        if scheme == "http" && !loopback {
            return false;
        }
        self.endpoint_hosts
            .iter()
            .any(|allowed| match allowed.strip_prefix("*.") {
                Some(suffix) => {
                    host.len() > suffix.len() + 1 && host.ends_with(&format!(".{suffix}"))
                }
                None => host == *allowed,
            })
    }
}

/// Where a URL the edge would POST to points: its scheme and host (port dropped), and
/// whether that host is loopback. One reading for push endpoints and the e-mail API, so
/// both allow-lists judge the same host.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) scheme: String,
    pub(crate) host: String,
    pub(crate) loopback: bool,
}

pub(crate) fn target(url: &str) -> Option<Target> {
    let origin = super::vapid::audience(url)?;
    let (scheme, authority) = origin.split_once("://")?;
    let host = match authority.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    };
    Some(Target {
        scheme: scheme.to_owned(),
        host: host.to_owned(),
        loopback: matches!(host, "127.0.0.1" | "localhost" | "[::1]"),
    })
}

/// A browser's `PushSubscription.toJSON()`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubscriptionJson {
    endpoint: String,
    #[serde(default)]
    keys: Option<SubscriptionKeys>,
}

#[derive(Debug, Clone, Deserialize)]
struct SubscriptionKeys {
    p256dh: String,
    auth: String,
}

/// A checked subscription, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Subscription {
    pub(crate) endpoint: String,
    /// base64url of the 65-byte `p256dh` key.
    pub(crate) p256dh: String,
    /// base64url of the 16-byte `auth` secret.
    pub(crate) auth: String,
}

/// Parses a subscription body. For `DELETE` only the endpoint is needed (`keys` optional).
pub(crate) fn parse_subscription(
    body: &[u8],
    settings: &Settings,
    need_keys: bool,
) -> Result<Subscription, String> {
    let s: SubscriptionJson =
        serde_json::from_slice(body).map_err(|e| format!("not a PushSubscription: {e}"))?;
    if s.endpoint.len() > 2048 || !settings.endpoint_allowed(&s.endpoint) {
        return Err("endpoint is not an allowed push service URL".into());
    }
    let (p256dh, auth) = match s.keys {
        Some(k) => (k.p256dh, k.auth),
        None if !need_keys => (String::new(), String::new()),
        None => return Err("keys.p256dh and keys.auth are required".into()),
    };
    if need_keys {
        if b64url_decode(&p256dh).is_none_or(|k| !ece::is_uncompressed_point(&k)) {
            return Err("keys.p256dh must be a base64url P-256 public key (65 bytes)".into());
        }
        if b64url_decode(&auth).is_none_or(|k| k.len() != ece::AUTH_LEN) {
            return Err("keys.auth must be 16 bytes, base64url".into());
        }
    }
    Ok(Subscription {
        endpoint: s.endpoint,
        p256dh,
        auth,
    })
}

/// A subscription's id: a hash of its endpoint (the endpoint is the subscription).
pub(crate) fn subscription_id(endpoint: &str) -> String {
    sha256_hex(endpoint.as_bytes())[..32].to_owned()
}

/// The shard a key lives in: the first four bytes of its SHA-256, modulo `shards`.
pub(crate) fn shard_of(key: &str, shards: u32) -> u32 {
    let h = sha256_hex(key.as_bytes());
    u32::from_str_radix(&h[..8], 16).unwrap_or(0) % shards.max(1)
}

/// Name of a shard's Durable Object.
pub(crate) fn shard_name(shard: u32) -> String {
    format!("push-{shard}")
}

/// `urgency` (RFC 8030 §5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Urgency {
    VeryLow,
    Low,
    #[default]
    Normal,
    High,
}

impl Urgency {
    pub(crate) fn header(self) -> &'static str {
        match self {
            Self::VeryLow => "very-low",
            Self::Low => "low",
            Self::Normal => "normal",
            Self::High => "high",
        }
    }
}

/// Who receives a notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub(crate) enum Audience {
    /// Visitors for whom `flag` evaluates to `variant`.
    Flag { flag: String, variant: String },
    /// Explicit visitors.
    Keys {
        #[serde(rename = "targetingKeys")]
        targeting_keys: Vec<String>,
    },
}

impl Audience {
    /// Whether a subscription's visitor is in the audience; `variant_of` evaluates the
    /// audience flag for a targeting key.
    pub(crate) fn includes(
        &self,
        targeting_key: &str,
        variant_of: impl Fn(&str, &str) -> Option<String>,
    ) -> bool {
        match self {
            Self::Flag { flag, variant } => {
                variant_of(flag, targeting_key).is_some_and(|v| v == *variant)
            }
            Self::Keys { targeting_keys } => targeting_keys.iter().any(|k| k == targeting_key),
        }
    }
}

/// `POST {prefix}/notifications` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct SendRequest {
    pub(crate) title: String,
    pub(crate) body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) ttl: Option<u32>,
    #[serde(default)]
    pub(crate) urgency: Urgency,
    pub(crate) channels: Vec<String>,
    pub(crate) audience: Audience,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) idempotency_key: Option<String>,
}

/// Parses and checks a send request.
pub(crate) fn parse_send(body: &[u8]) -> Result<SendRequest, String> {
    let r: SendRequest = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    if r.title.trim().is_empty() || r.title.len() > 200 {
        return Err("title must be 1–200 bytes".into());
    }
    if r.body.len() > 2000 {
        return Err("body must be at most 2000 bytes".into());
    }
    if r.channels.is_empty() {
        return Err("channels must name at least one channel".into());
    }
    if let Some(c) = r.channels.iter().find(|c| Channel::parse(c).is_none()) {
        return Err(format!(
            "channel {c:?} is unknown: channels are \"push\", \"inapp\" and \"email\""
        ));
    }
    if r.channel_list().len() != r.channels.len() {
        return Err("channels must not name a channel twice".into());
    }
    if r.ttl.is_some_and(|t| t > MAX_TTL_SECS) {
        return Err(format!("ttl must be at most {MAX_TTL_SECS} seconds"));
    }
    if r.url
        .as_ref()
        .is_some_and(|u| !(u.starts_with('/') || u.starts_with("https://")))
    {
        return Err("url must be a path or an https URL".into());
    }
    if r.tag.as_ref().is_some_and(|t| !valid_topic(t)) {
        return Err(
            "tag must be 1–32 characters of A–Z a–z 0–9 - _ (it is the RFC 8030 Topic)".into(),
        );
    }
    if r.idempotency_key
        .as_ref()
        .is_some_and(|k| k.is_empty() || k.len() > 200)
    {
        return Err("idempotencyKey must be 1–200 bytes".into());
    }
    match &r.audience {
        Audience::Keys { targeting_keys }
            if targeting_keys.is_empty() || targeting_keys.len() > MAX_TARGETING_KEYS =>
        {
            return Err(format!(
                "targetingKeys must hold 1–{MAX_TARGETING_KEYS} keys"
            ))
        }
        Audience::Flag { flag, variant } if flag.is_empty() || variant.is_empty() => {
            return Err("audience.flag and audience.variant must not be empty".into())
        }
        _ => {}
    }
    let payload = payload("n0000000000000000000000000", &r, true);
    if ece::pad(payload.as_bytes()).is_none() {
        return Err("the message does not fit one Web Push record (about 3.9 KB)".into());
    }
    Ok(r)
}

impl SendRequest {
    /// The requested channels (unknown names dropped: [`parse_send`] refused them).
    pub(crate) fn channel_list(&self) -> Vec<Channel> {
        let mut list: Vec<Channel> = self
            .channels
            .iter()
            .filter_map(|c| Channel::parse(c))
            .collect();
        list.sort();
        list.dedup();
        list
    }

    pub(crate) fn has(&self, channel: Channel) -> bool {
        self.channels.iter().any(|c| c == channel.as_str())
    }

    /// The first requested channel this deployment has no settings for, as a message with
    /// its JSON path (`channels[i]`). Such a send is the caller's mistake against this
    /// deployment (409), not a server fault: nothing is stored, the caller can drop the
    /// channel or ask the operator to configure it.
    pub(crate) fn unconfigured(&self, configured: impl Fn(Channel) -> bool) -> Option<String> {
        self.channels.iter().enumerate().find_map(|(i, name)| {
            let channel = Channel::parse(name)?;
            (!configured(channel)).then(|| {
                format!("channels[{i}]: the {name} channel is not configured on this deployment")
            })
        })
    }
}

/// Whether a channel of a notification was on when it was sent (`on`) or switched off by
/// its flag (`disabled`: nothing is sent on it, ever — re-enabling the flag does not send
/// it later).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ChannelState {
    On,
    Disabled,
}

/// The ledger's record of the channel states of a notification: a JSON object
/// `{"push":"on","email":"disabled"}`; a record written before there were several channels
/// holds the push channel's state alone (`on` / `disabled`).
pub(crate) fn channel_states(stored: &str) -> std::collections::BTreeMap<Channel, ChannelState> {
    let legacy = |s: &str| match s {
        "on" => Some(ChannelState::On),
        "disabled" => Some(ChannelState::Disabled),
        _ => None,
    };
    if let Some(state) = legacy(stored) {
        return [(Channel::Push, state)].into();
    }
    serde_json::from_str(stored).unwrap_or_default()
}

/// The channel states of a new notification: each requested channel as its flag is now.
/// Whether the edge's inbox lists a notification: it was sent on `inapp` with the channel
/// on (a send while the kill switch was on stored no inbox item).
pub(crate) fn inbox_listed(states: &std::collections::BTreeMap<Channel, ChannelState>) -> bool {
    states.get(&Channel::Inapp) == Some(&ChannelState::On)
}

pub(crate) fn states_at_send(
    r: &SendRequest,
    on: impl Fn(Channel) -> bool,
) -> std::collections::BTreeMap<Channel, ChannelState> {
    r.channel_list()
        .into_iter()
        .map(|c| {
            let state = if on(c) {
                ChannelState::On
            } else {
                ChannelState::Disabled
            };
            (c, state)
        })
        .collect()
}

/// The channels `POST …/retry` re-queues: the notification's queued channels (push, email)
/// whose flag is on now; an error (409) when there is none.
pub(crate) fn retry_channels(
    r: &SendRequest,
    on: impl Fn(Channel) -> bool,
) -> Result<Vec<Channel>, String> {
    let queued: Vec<Channel> = r
        .channel_list()
        .into_iter()
        .filter(|c| c.queued())
        .collect();
    if queued.is_empty() {
        return Err("nothing to retry: in-app items are stored, not sent".into());
    }
    let live: Vec<Channel> = queued.iter().copied().filter(|c| on(*c)).collect();
    if live.is_empty() {
        let flags: Vec<&str> = queued.iter().map(|c| c.flag()).collect();
        return Err(format!("the channels to retry are off (flags {flags:?})"));
    }
    Ok(live)
}

/// RFC 8030 §5.4: a Topic is at most 32 characters of the URL-safe base64 alphabet.
pub(crate) fn valid_topic(t: &str) -> bool {
    (1..=32).contains(&t.len())
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The notification id: derived from the idempotency key when there is one (the same key
/// always names the same notification, which is what makes a repeated request a no-op);
/// random otherwise.
pub(crate) fn notification_id(
    idempotency_key: Option<&str>,
    random: impl FnOnce() -> String,
) -> String {
    match idempotency_key {
        Some(k) => format!(
            "n{}",
            &sha256_hex(format!("idempotency\0{k}").as_bytes())[..24]
        ),
        None => {
            let r = random();
            format!("n{}", r.get(..24).unwrap_or(&r))
        }
    }
}

/// Whether an id has the shape [`notification_id`] makes (path parameters are checked
/// before they reach a store).
pub(crate) fn valid_id(id: &str) -> bool {
    id.len() == 25 && id.starts_with('n') && id[1..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// What the service worker receives (decrypted): JSON the page's `push` handler shows.
/// `"inbox": true` when the edge's inbox lists this notification (`inapp` was sent on): only
/// then does the service worker keep the pushed copy as an inbox item until the inbox lists
/// it — a push-only message kept there would stay unread forever.
pub(crate) fn payload(id: &str, r: &SendRequest, inbox: bool) -> String {
    let mut p = json!({"id": id, "title": r.title, "body": r.body});
    if inbox {
        p["inbox"] = Value::Bool(true);
    }
    if let Some(u) = &r.url {
        p["url"] = Value::String(u.clone());
    }
    if let Some(t) = &r.tag {
        p["tag"] = Value::String(t.clone());
    }
    p.to_string()
}

/// One queue message: one notification to one subscription. The payload travels with it,
/// so the consumer needs one store call to find the subscription and nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Job {
    /// Notification id.
    pub(crate) n: String,
    /// Subscription id.
    pub(crate) s: String,
    /// The subscription's shard.
    pub(crate) shard: u32,
    pub(crate) payload: String,
    pub(crate) ttl: u32,
    pub(crate) urgency: Urgency,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) topic: Option<String>,
}

impl Job {
    /// `inbox`: whether the in-app channel was on for this notification ([`inbox_listed`]).
    pub(crate) fn new(
        id: &str,
        r: &SendRequest,
        subscription: &str,
        shard: u32,
        inbox: bool,
    ) -> Self {
        Self {
            n: id.to_owned(),
            s: subscription.to_owned(),
            shard,
            payload: payload(id, r, inbox),
            ttl: r.ttl.unwrap_or(DEFAULT_TTL_SECS),
            urgency: r.urgency,
            topic: r.tag.clone(),
        }
    }
}

/// Per-channel counts of a notification (summed over the shards).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Counts {
    pub(crate) targeted: u64,
    pub(crate) queued: u64,
    pub(crate) delivered: u64,
    pub(crate) failed: u64,
    pub(crate) gone: u64,
    /// Attempts that were retried (each retry counts once).
    pub(crate) retried: u64,
}

impl Counts {
    /// Adds `pairs` (notification, recipient) pairs found in `state`, which were retried
    /// `retried` times in all: one row of a `GROUP BY state` over a delivery table.
    pub(crate) fn add_state(&mut self, state: &str, pairs: u64, retried: u64) {
        self.targeted += pairs;
        self.retried += retried;
        match state {
            "queued" => self.queued += pairs,
            "delivered" => self.delivered += pairs,
            "failed" => self.failed += pairs,
            "gone" => self.gone += pairs,
            _ => {}
        }
    }
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Self) {
        self.targeted += o.targeted;
        self.queued += o.queued;
        self.delivered += o.delivered;
        self.failed += o.failed;
        self.gone += o.gone;
        self.retried += o.retried;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(hosts: &str) -> Settings {
        Settings::from_lookup(|n| (n == "PUSH_ENDPOINT_HOSTS").then(|| hosts.to_owned())).unwrap()
    }

    const P256DH: &str =
        "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";

    #[test]
    fn settings_defaults_and_bounds() {
        let s = Settings::from_lookup(|_| None).unwrap();
        assert_eq!(s.shards, 16);
        assert_eq!(s.backoff, Backoff::default());
        assert!(s.endpoint_allowed("https://fcm.googleapis.com/fcm/send/x"));
        assert!(s.endpoint_allowed("https://updates.push.services.mozilla.com/wpush/v2/x"));
        assert!(!s.endpoint_allowed("https://push.services.mozilla.com.evil.example/x"));
        assert!(!s.endpoint_allowed("https://evil.example/x"));
        assert!(
            !s.endpoint_allowed("http://fcm.googleapis.com/x"),
            "http only on loopback"
        );
        assert!(
            !s.endpoint_allowed("http://127.0.0.1:9/x"),
            "loopback only when allowed"
        );
        assert!(settings("127.0.0.1").endpoint_allowed("http://127.0.0.1:9000/p/1"));
        assert!(Settings::from_lookup(|n| (n == "PUSH_SHARDS").then(|| "0".into())).is_err());
    }

    #[test]
    fn subscriptions_are_checked() {
        let s = settings("127.0.0.1");
        let ok = json!({"endpoint": "http://127.0.0.1:9/p/1", "expirationTime": null,
            "keys": {"p256dh": P256DH, "auth": "BTBZMqHH6r4Tts7J_aSIgg"}});
        let sub = parse_subscription(ok.to_string().as_bytes(), &s, true).unwrap();
        assert_eq!(sub.endpoint, "http://127.0.0.1:9/p/1");
        let mut bad = ok.clone();
        bad["keys"]["auth"] = json!("AAAA");
        assert!(parse_subscription(bad.to_string().as_bytes(), &s, true).is_err());
        let mut bad = ok.clone();
        bad["endpoint"] = json!("https://evil.example/x");
        assert!(parse_subscription(bad.to_string().as_bytes(), &s, true).is_err());
        let del = json!({"endpoint": "http://127.0.0.1:9/p/1"});
        assert!(parse_subscription(del.to_string().as_bytes(), &s, false).is_ok());
        assert!(parse_subscription(del.to_string().as_bytes(), &s, true).is_err());
    }

    #[test]
    fn ids_and_shards_are_stable() {
        let a = notification_id(Some("k1"), || unreachable!());
        assert_eq!(a, notification_id(Some("k1"), || unreachable!()));
        assert_ne!(a, notification_id(Some("k2"), || unreachable!()));
        assert!(valid_id(&a));
        let r = notification_id(None, || "0123456789abcdef0123456789abcdef".into());
        assert!(valid_id(&r));
        assert!(!valid_id("n../../x"));
        assert_eq!(subscription_id("https://x/1").len(), 32);
        for shards in [1, 4, 16] {
            let s = shard_of("https://x/1", shards);
            assert!(s < shards);
            assert_eq!(s, shard_of("https://x/1", shards));
        }
        let spread: std::collections::BTreeSet<u32> = (0..200)
            .map(|i| shard_of(&format!("https://x/{i}"), 8))
            .collect();
        assert_eq!(spread.len(), 8);
    }

    #[test]
    fn send_requests() {
        let ok = json!({"title": "Hi", "body": "there", "channels": ["push"], "ttl": 60,
            "urgency": "high", "tag": "orders-1", "audience": {"flag": "f", "variant": "on"},
            "idempotencyKey": "k"});
        let r = parse_send(ok.to_string().as_bytes()).unwrap();
        assert_eq!(r.urgency, Urgency::High);
        assert_eq!(
            r.audience,
            Audience::Flag {
                flag: "f".into(),
                variant: "on".into()
            }
        );
        let keys = json!({"title": "Hi", "body": "", "channels": ["push"],
            "audience": {"targetingKeys": ["a", "b"]}});
        let r = parse_send(keys.to_string().as_bytes()).unwrap();
        assert!(r.audience.includes("b", |_, _| None));
        assert!(!r.audience.includes("c", |_, _| None));
        assert_eq!(r.urgency, Urgency::Normal);
        let multi = json!({"title": "Hi", "body": "", "channels": ["inapp", "email", "push"],
            "audience": {"targetingKeys": ["a"]}});
        let r = parse_send(multi.to_string().as_bytes()).unwrap();
        assert_eq!(
            r.channel_list(),
            [Channel::Push, Channel::Inapp, Channel::Email]
        );
        assert!(r.has(Channel::Email));
        for (field, value) in [
            ("channels", json!(["sms"])),
            ("channels", json!(["push", "push"])),
            ("channels", json!([])),
            ("ttl", json!(MAX_TTL_SECS + 1)),
            ("tag", json!("has space")),
            ("url", json!("javascript:alert(1)")),
            ("title", json!("")),
            ("body", json!("x".repeat(2001))),
            ("audience", json!({"targetingKeys": []})),
            ("extra", json!(1)),
        ] {
            let mut bad = ok.clone();
            bad[field] = value;
            assert!(parse_send(bad.to_string().as_bytes()).is_err(), "{field}");
        }
    }

    #[test]
    fn flag_audience_and_payload() {
        let a = Audience::Flag {
            flag: "f".into(),
            variant: "on".into(),
        };
        assert!(a.includes("x", |f, k| (f == "f" && k == "x").then(|| "on".into())));
        assert!(!a.includes("y", |f, k| (f == "f" && k == "x").then(|| "on".into())));
        let r: SendRequest = serde_json::from_value(json!({"title": "T", "body": "B",
            "url": "/orders", "channels": ["push"], "audience": {"targetingKeys": ["a"]}}))
        .unwrap();
        let job = Job::new("nabc", &r, "sub", 3, false);
        let p: Value = serde_json::from_str(&job.payload).unwrap();
        assert_eq!(
            p,
            json!({"id": "nabc", "title": "T", "body": "B", "url": "/orders"})
        );
        // Sent on `inapp` too: the service worker keeps the pushed copy as an inbox item.
        let p: Value = serde_json::from_str(&Job::new("nabc", &r, "sub", 3, true).payload).unwrap();
        assert_eq!(p["inbox"], true);
        assert_eq!(job.ttl, DEFAULT_TTL_SECS);
        let back: Job = serde_json::from_str(&serde_json::to_string(&job).unwrap()).unwrap();
        assert_eq!(back, job);
    }

    #[test]
    fn a_push_marks_an_inbox_item_only_when_inapp_was_on_at_send() {
        use std::collections::BTreeMap;
        let push_only = BTreeMap::from([(Channel::Push, ChannelState::On)]);
        assert!(!inbox_listed(&push_only));
        let both = BTreeMap::from([
            (Channel::Push, ChannelState::On),
            (Channel::Inapp, ChannelState::On),
        ]);
        assert!(inbox_listed(&both));
        let inapp_off = BTreeMap::from([
            (Channel::Push, ChannelState::On),
            (Channel::Inapp, ChannelState::Disabled),
        ]);
        assert!(!inbox_listed(&inapp_off));
    }

    #[test]
    fn channel_states_old_and_new() {
        use std::collections::BTreeMap;
        assert_eq!(
            channel_states("on"),
            BTreeMap::from([(Channel::Push, ChannelState::On)])
        );
        assert_eq!(
            channel_states("disabled"),
            BTreeMap::from([(Channel::Push, ChannelState::Disabled)])
        );
        let both = BTreeMap::from([
            (Channel::Inapp, ChannelState::On),
            (Channel::Email, ChannelState::Disabled),
        ]);
        assert_eq!(channel_states(&serde_json::to_string(&both).unwrap()), both);
        assert!(channel_states("garbage").is_empty());
        assert_eq!(Channel::Push.flag(), "notifications.push");
        assert_eq!(Channel::Inapp.flag(), "notifications.inapp");
        assert_eq!(Channel::Email.flag(), "notifications.email");
    }

    #[test]
    fn states_at_send_and_retry_channels() {
        let r: SendRequest = serde_json::from_value(json!({"title": "t", "body": "",
            "channels": ["email", "inapp", "push"], "audience": {"targetingKeys": ["a"]}}))
        .unwrap();
        let only_inapp = |c: Channel| c == Channel::Inapp;
        let states = states_at_send(&r, only_inapp);
        assert_eq!(states[&Channel::Inapp], ChannelState::On);
        assert_eq!(states[&Channel::Push], ChannelState::Disabled);
        assert_eq!(states[&Channel::Email], ChannelState::Disabled);
        assert!(retry_channels(&r, only_inapp)
            .unwrap_err()
            .contains("notifications.email"));
        assert_eq!(
            retry_channels(&r, |c| c == Channel::Email),
            Ok(vec![Channel::Email])
        );
        assert_eq!(
            retry_channels(&r, |_| true),
            Ok(vec![Channel::Push, Channel::Email])
        );
        let inapp: SendRequest = serde_json::from_value(json!({"title": "t", "body": "",
            "channels": ["inapp"], "audience": {"targetingKeys": ["a"]}}))
        .unwrap();
        assert!(retry_channels(&inapp, |_| true)
            .unwrap_err()
            .contains("nothing to retry"));
    }

    #[test]
    fn a_channel_without_settings_is_named_with_its_path() {
        let r = parse_send(
            br#"{"title":"t","body":"b","channels":["inapp","email"],"audience":{"targetingKeys":["a"]}}"#,
        )
        .unwrap();
        assert_eq!(r.unconfigured(|_| true), None);
        assert_eq!(
            r.unconfigured(|c| c != Channel::Email).as_deref(),
            Some("channels[1]: the email channel is not configured on this deployment")
        );
    }

    #[test]
    fn counts_add_up_the_states_of_a_group_by() {
        let mut c = Counts::default();
        for (state, pairs, retried) in [
            ("queued", 2, 0),
            ("delivered", 5, 3),
            ("failed", 1, 2),
            ("gone", 1, 0),
            ("leased", 4, 1),
        ] {
            c.add_state(state, pairs, retried);
        }
        assert_eq!(
            c,
            Counts {
                targeted: 13,
                queued: 2,
                delivered: 5,
                failed: 1,
                gone: 1,
                retried: 6
            }
        );
    }

    #[test]
    fn counts_add() {
        let mut c = Counts {
            targeted: 1,
            delivered: 1,
            ..Counts::default()
        };
        c += Counts {
            targeted: 2,
            retried: 3,
            ..Counts::default()
        };
        assert_eq!((c.targeted, c.delivered, c.retried), (3, 1, 3));
    }
}
