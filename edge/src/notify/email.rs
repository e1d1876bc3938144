//! The e-mail channel: a provider-neutral HTTP e-mail API (URL, `Authorization` header and
//! a JSON body template in configuration), recipients from registered contacts, queue jobs,
//! and what the API's answers mean.
//!
//! A recipient's address is never taken from the send request: it is a contact the app
//! registered for a targeting key — by its backend with the admin token
//! (`PUT {prefix}/notifications/contacts`), or by the visitor's own verified JWT `email`
//! claim (`POST {prefix}/inbox/email`). A visitor's self-declared address is not accepted:
//! the edge would become a relay sending the operator's mail to anyone's address.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::api::SendRequest;
use super::delivery::{self, Backoff, Outcome};

/// The body sent when `EMAIL_BODY_TEMPLATE` is not set (the shape several providers accept;
/// set the template for yours).
pub(crate) const DEFAULT_TEMPLATE: &str =
    r#"{"from":"{{from}}","to":"{{to}}","subject":"{{subject}}","text":"{{text}}"}"#;
/// The placeholders a template may use (inside JSON strings).
pub(crate) const PLACEHOLDERS: [&str; 6] = ["to", "from", "subject", "text", "url", "id"];
/// Longest address accepted (RFC 5321 §4.5.3.1.3 path limit minus the brackets).
pub(crate) const MAX_ADDRESS: usize = 254;

/// Settings of the e-mail channel. `None` from [`Settings::from_lookup`] when
/// `EMAIL_API_URL` is unset: the channel is not configured and a send naming it is refused.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Settings {
    pub(crate) api_url: String,
    pub(crate) from: String,
    /// The `Authorization` header value (secret `EMAIL_API_AUTH`).
    pub(crate) auth: String,
    pub(crate) template: Value,
    /// Base URL a notification's path `url` is joined to (`EMAIL_LINK_BASE`): a path alone
    /// means nothing in a mail client.
    pub(crate) link_base: Option<String>,
    /// How long one call to the API may take before it is aborted (`EMAIL_API_TIMEOUT_SECONDS`,
    /// default [`DEFAULT_API_TIMEOUT_SECS`], at most half the [`LEASE_SECS`] lease): an attempt
    /// must end while it still holds its pair, or a second copy could send meanwhile.
    pub(crate) timeout_ms: u32,
}

/// The default of `EMAIL_API_TIMEOUT_SECONDS`.
pub(crate) const DEFAULT_API_TIMEOUT_SECS: u64 = 30;

impl Settings {
    /// Reads `EMAIL_API_URL`, `EMAIL_API_HOSTS`, `EMAIL_FROM`, `EMAIL_API_AUTH`,
    /// `EMAIL_BODY_TEMPLATE`, `EMAIL_LINK_BASE`, `EMAIL_API_TIMEOUT_SECONDS`.
    pub(crate) fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, String> {
        let Some(api_url) = get("EMAIL_API_URL").map(|u| u.trim().to_owned()) else {
            return Ok(None);
        };
        let hosts: Vec<String> = get("EMAIL_API_HOSTS")
            .unwrap_or_default()
            .split(',')
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
        if !api_allowed(&api_url, &hosts) {
            return Err(
                "EMAIL_API_URL must be an https URL whose host EMAIL_API_HOSTS lists (http only to a listed loopback host)"
                    .into(),
            );
        }
        let from = get("EMAIL_FROM").ok_or("EMAIL_FROM is required with EMAIL_API_URL")?;
        if !valid_address(bare_address(&from)) {
            return Err("EMAIL_FROM must be an address (or `Name <address>`)".into());
        }
        let auth = get("EMAIL_API_AUTH")
            .ok_or("EMAIL_API_AUTH (secret: the Authorization header) is required")?;
        let template_text = get("EMAIL_BODY_TEMPLATE").unwrap_or_else(|| DEFAULT_TEMPLATE.into());
        let template: Value = serde_json::from_str(&template_text)
            .map_err(|e| format!("EMAIL_BODY_TEMPLATE is not JSON: {e}"))?;
        if !mentions(&template, "{{to}}") {
            return Err("EMAIL_BODY_TEMPLATE must use {{to}}".into());
        }
        let link_base = get("EMAIL_LINK_BASE")
            .map(|b| b.trim().trim_end_matches('/').to_owned())
            .filter(|b| !b.is_empty());
        if link_base
            .as_ref()
            .is_some_and(|b| !b.starts_with("https://") && !b.starts_with("http://"))
        {
            return Err("EMAIL_LINK_BASE must be an http(s) URL".into());
        }
        let timeout_secs = match get("EMAIL_API_TIMEOUT_SECONDS") {
            None => DEFAULT_API_TIMEOUT_SECS,
            Some(t) => t
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|t| (1..=LEASE_SECS / 2).contains(t))
                .ok_or(format!(
                    "EMAIL_API_TIMEOUT_SECONDS must be 1..={} (well inside the {LEASE_SECS} s lease)",
                    LEASE_SECS / 2
                ))?,
        };
        Ok(Some(Self {
            api_url,
            from,
            auth,
            template,
            link_base,
            timeout_ms: u32::try_from(timeout_secs * 1000).unwrap_or(u32::MAX),
        }))
    }
}

/// Whether the e-mail API URL may be called: its host must be listed in `EMAIL_API_HOSTS`
/// (so a mistyped URL never sends recipients' addresses elsewhere), over `https:`, or
/// `http:` to a listed loopback host (local tests).
pub(crate) fn api_allowed(url: &str, hosts: &[String]) -> bool {
    let Some(t) = super::api::target(url) else {
        return false;
    };
    (t.scheme == "https" || t.loopback) && hosts.contains(&t.host)
}

fn mentions(v: &Value, needle: &str) -> bool {
    match v {
        Value::String(s) => s.contains(needle),
        Value::Array(a) => a.iter().any(|x| mentions(x, needle)),
        Value::Object(o) => o.values().any(|x| mentions(x, needle)),
        _ => false,
    }
}

/// `Name <a@b>` → `a@b`.
fn bare_address(s: &str) -> &str {
    match (s.rfind('<'), s.rfind('>')) {
        (Some(a), Some(b)) if a < b => &s[a + 1..b],
        _ => s.trim(),
    }
}

/// A deliberately plain address check: one `@`, a non-empty local part, a domain of
/// dot-separated labels, no spaces, quotes, angle brackets or control characters (nothing
/// that could break out of a header or a template), at most 254 bytes.
pub(crate) fn valid_address(a: &str) -> bool {
    let Some((local, domain)) = a.split_once('@') else {
        return false;
    };
    let clean = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_graphic() && !b"<>()[]\\,;:\"@".contains(&b))
    };
    a.len() <= MAX_ADDRESS
        && clean(local)
        && clean(domain)
        && domain.contains('.')
        && domain
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

/// Addresses compare case-insensitively for de-duplication (domains are case-insensitive,
/// and providers treat local parts so in practice).
pub(crate) fn normalized(a: &str) -> String {
    a.trim().to_ascii_lowercase()
}

/// `PUT {prefix}/notifications/contacts` body: `{"targetingKey", "email"}`; `DELETE`:
/// `{"targetingKey"}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Contact {
    pub(crate) targeting_key: String,
    #[serde(default)]
    pub(crate) email: Option<String>,
}

pub(crate) fn parse_contact(body: &[u8], need_email: bool) -> Result<Contact, String> {
    let c: Contact = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    if c.targeting_key.is_empty() || c.targeting_key.len() > 256 {
        return Err("targetingKey must be 1–256 bytes".into());
    }
    match &c.email {
        Some(e) if !valid_address(e) => Err("email is not an address".into()),
        None if need_email => Err("email is required".into()),
        _ => Ok(c),
    }
}

/// The address in a verified JWT's claims: `email`, only when the identity provider says it
/// is verified (`email_verified: true`, OpenID Connect Core §5.1). Many providers omit the
/// claim for an address nobody confirmed, so its absence counts as unverified.
pub(crate) fn claim_address(claims: &Value) -> Option<String> {
    if claims.get("email_verified") != Some(&Value::Bool(true)) {
        return None;
    }
    claims
        .get("email")
        .and_then(Value::as_str)
        .filter(|e| valid_address(e))
        .map(str::to_owned)
}

/// One contact of an audience as the fan-out collects it: targeting key, address, and when
/// it was registered or last changed (unix ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Member {
    pub(crate) key: String,
    pub(crate) address: String,
    pub(crate) updated_ms: u64,
}

/// One e-mail per address within a notification: of the contacts sharing an address
/// (case-insensitive), the one registered or changed earliest is kept (ties: the smaller
/// targeting key) — the same one whatever the shard count or the order shards answer in.
pub(crate) fn dedupe(mut members: Vec<Member>) -> Vec<Member> {
    members.sort_by(|a, b| (a.updated_ms, &a.key).cmp(&(b.updated_ms, &b.key)));
    let mut seen = std::collections::BTreeSet::new();
    members.retain(|m| seen.insert(normalized(&m.address)));
    members
}

/// Contacts a shard reads per call for a flag audience (paged by targeting key: a send's
/// memory and each call's work stay bounded whatever the shard holds).
pub(crate) const AUDIENCE_PAGE: u64 = 500;

/// Keys a shard looks up per SQL statement (`targeting_key IN (…)`): Durable Object SQL
/// binds at most 100 parameters per statement.
pub(crate) const KEYS_PER_LOOKUP: usize = 100;

/// A `targetingKeys` audience split by the shard each key's contact lives in
/// (`inbox::visitor_shard`): a shard is asked only for its own keys, and one without any is
/// not asked at all.
pub(crate) fn keys_by_shard(
    keys: &[String],
    shards: u32,
) -> std::collections::BTreeMap<u32, Vec<String>> {
    let mut out: std::collections::BTreeMap<u32, Vec<String>> = Default::default();
    for k in keys {
        let list = out
            .entry(crate::notify::inbox::visitor_shard(k, shards))
            .or_default();
        if !list.contains(k) {
            list.push(k.clone());
        }
    }
    out
}

/// One queue message: one notification to one contact (by targeting key; the address is
/// read from the contact when the message is handled, so it never sits in the queue and a
/// removed contact is not written to).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Job {
    /// Always `"email"`: tells the consumer this is not a push job.
    pub(crate) ch: String,
    /// Notification id.
    pub(crate) n: String,
    /// The contact's targeting key.
    pub(crate) k: String,
    /// The contact's shard.
    pub(crate) shard: u32,
    pub(crate) subject: String,
    pub(crate) text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) url: Option<String>,
}

impl Job {
    pub(crate) fn new(
        id: &str,
        r: &SendRequest,
        key: &str,
        shard: u32,
        settings: &Settings,
    ) -> Self {
        let url = r
            .url
            .as_ref()
            .map(|u| match (&settings.link_base, u.starts_with('/')) {
                (Some(base), true) => format!("{base}{u}"),
                _ => u.clone(),
            });
        let text = match &url {
            Some(u) if r.body.is_empty() => u.clone(),
            Some(u) => format!("{}\n\n{u}", r.body),
            None => r.body.clone(),
        };
        Self {
            ch: "email".into(),
            n: id.to_owned(),
            k: key.to_owned(),
            shard,
            subject: r.title.clone(),
            text,
            url,
        }
    }

    /// Whether a queue message is an e-mail job (push jobs have no `ch`).
    pub(crate) fn is_email(message: &Value) -> bool {
        message.get("ch").and_then(Value::as_str) == Some("email")
    }

    /// The `Idempotency-Key` sent to the API (honoured by providers that support it): one
    /// per (notification, recipient), so a retry after a lost answer is not a second mail.
    pub(crate) fn idempotency_key(&self) -> String {
        format!("{}-{}", self.n, &super::sha256_hex(self.k.as_bytes())[..16])
    }
}

/// The request body: the template with every `{{placeholder}}` inside its strings replaced.
/// Values are substituted as text into JSON strings, so whatever they contain stays data.
pub(crate) fn render(template: &Value, job: &Job, to: &str, from: &str) -> Value {
    let value = |name: &str| match name {
        "to" => to.to_owned(),
        "from" => from.to_owned(),
        "subject" => job.subject.clone(),
        "text" => job.text.clone(),
        "url" => job.url.clone().unwrap_or_default(),
        "id" => job.n.clone(),
        _ => String::new(),
    };
    match template {
        Value::String(s) => {
            let mut out = s.clone();
            for p in PLACEHOLDERS {
                let needle = format!("{{{{{p}}}}}");
                if out.contains(&needle) {
                    out = out.replace(&needle, &value(p));
                }
            }
            Value::String(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| render(x, job, to, from)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| (k.clone(), render(x, job, to, from)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// How long a claimed (notification, recipient) pair is held by the attempt that claimed
/// it: a second copy of the same queue message arriving meanwhile (Queues deliver at least
/// once) waits instead of sending a second e-mail. Longer than an attempt can take: the call
/// to the API is aborted after `Settings::timeout_ms` (at most half of this).
pub(crate) const LEASE_SECS: u64 = 120;

/// The claim decision for a pair still `queued`, given the lease an earlier attempt holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lease {
    /// Nobody holds it (or the holder's lease ran out: it died): take it until `until_ms`.
    Take { until_ms: u64 },
    /// Another attempt holds it: try again after `retry_in_secs`.
    Busy { retry_in_secs: u32 },
}

pub(crate) fn lease(held_until_ms: Option<u64>, now_ms: u64) -> Lease {
    match held_until_ms {
        Some(until) if until > now_ms => Lease::Busy {
            retry_in_secs: u32::try_from((until - now_ms).div_ceil(1000)).unwrap_or(u32::MAX),
        },
        _ => Lease::Take {
            until_ms: now_ms + LEASE_SECS * 1000,
        },
    }
}

/// The decision for one e-mail attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// 2xx: the API took the message.
    Delivered,
    /// 429, 5xx or no answer: try again after `delay_secs`.
    Retry { delay_secs: u32, reason: String },
    /// 429, 5xx or no answer with the attempts used up: to the dead-letter queue, whose
    /// consumer records the failure (one place counts it).
    DeadLetter(String),
    /// Any other answer (404 included): refused for good, recorded now.
    Failed(String),
}

/// What an e-mail API's answer means: 2xx accepted; 429, 5xx and no answer retried (with
/// backoff, never sooner than `Retry-After`), then dead-lettered; anything else refused for
/// good. Unlike a push service, a 404/410 from an API is a wrong URL, not a gone recipient.
pub(crate) fn classify(
    status: Option<u16>,
    retry_after: Option<&str>,
    attempt: u32,
    backoff: &Backoff,
    now_secs: u64,
) -> Attempt {
    let retriable = matches!(status, None | Some(429 | 500..=599));
    match delivery::classify(status, retry_after, attempt, backoff, now_secs) {
        Outcome::Gone => Attempt::Failed(format!(
            "e-mail API answered {} (check EMAIL_API_URL)",
            status.unwrap_or_default()
        )),
        Outcome::Failed(reason) => {
            let reason = reason.replace("push service", "e-mail API");
            if retriable {
                Attempt::DeadLetter(reason)
            } else {
                Attempt::Failed(reason)
            }
        }
        Outcome::Retry { delay_secs, reason } => Attempt::Retry {
            delay_secs,
            reason: reason.replace("push service", "e-mail API"),
        },
        Outcome::Delivered => Attempt::Delivered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lookup<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |n| {
            pairs
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    const OK: [(&str, &str); 4] = [
        ("EMAIL_API_URL", "https://api.mail.example/v1/send"),
        ("EMAIL_API_HOSTS", "api.mail.example"),
        ("EMAIL_FROM", "Shop <shop@example.com>"),
        ("EMAIL_API_AUTH", "Bearer k"),
    ];

    #[test]
    fn settings() {
        assert_eq!(Settings::from_lookup(|_| None), Ok(None));
        let s = Settings::from_lookup(lookup(&OK)).unwrap().unwrap();
        assert_eq!(
            s.template,
            serde_json::from_str::<Value>(DEFAULT_TEMPLATE).unwrap()
        );
        assert_eq!(s.auth, "Bearer k");
        let with = |k: &str, v: &str| {
            let mut pairs: Vec<(&str, &str)> =
                OK.iter().copied().filter(|(n, _)| *n != k).collect();
            if !v.is_empty() {
                pairs.push((k, v));
            }
            Settings::from_lookup(|n| {
                pairs
                    .iter()
                    .find(|(p, _)| *p == n)
                    .map(|(_, x)| (*x).to_owned())
            })
        };
        // The host must be listed; http only to a listed loopback host.
        assert!(with("EMAIL_API_HOSTS", "").is_err());
        assert!(with("EMAIL_API_HOSTS", "other.example").is_err());
        assert!(with("EMAIL_API_URL", "http://api.mail.example/v1").is_err());
        assert!(with("EMAIL_API_URL", "https://api.mail.example.evil/v1").is_err());
        assert!(Settings::from_lookup(lookup(&[
            ("EMAIL_API_URL", "http://127.0.0.1:9/send"),
            ("EMAIL_API_HOSTS", "127.0.0.1"),
            ("EMAIL_FROM", "a@b.example"),
            ("EMAIL_API_AUTH", "x"),
        ]))
        .unwrap()
        .is_some());
        assert!(with("EMAIL_FROM", "").is_err());
        assert!(with("EMAIL_FROM", "not an address").is_err());
        assert!(with("EMAIL_API_AUTH", "").is_err());
        assert!(with("EMAIL_BODY_TEMPLATE", "{not json").is_err());
        assert!(
            with("EMAIL_BODY_TEMPLATE", r#"{"x":"{{text}}"}"#).is_err(),
            "no {{to}}"
        );
        assert!(with("EMAIL_LINK_BASE", "ftp://x").is_err());
    }

    #[test]
    fn the_api_call_is_aborted_well_inside_the_lease() {
        let timeout = |v: &str| {
            let mut pairs = OK.to_vec();
            pairs.push(("EMAIL_API_TIMEOUT_SECONDS", v));
            Settings::from_lookup(lookup(&pairs)).map(|s| s.map(|s| s.timeout_ms))
        };
        let default = Settings::from_lookup(lookup(&OK)).unwrap().unwrap();
        assert_eq!(default.timeout_ms, 30_000);
        assert!(u64::from(default.timeout_ms) * 2 <= LEASE_SECS * 1000);
        assert_eq!(timeout("1"), Ok(Some(1000)));
        assert_eq!(timeout("60"), Ok(Some(60_000)));
        for bad in ["0", "61", "120", "-1", "x", ""] {
            assert!(timeout(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn addresses() {
        for ok in [
            "a@b.example",
            "first.last+tag@mail.example.com",
            "x@localhost.test",
        ] {
            assert!(valid_address(ok), "{ok}");
        }
        for bad in [
            "",
            "a",
            "@b.example",
            "a@",
            "a@b",
            "a b@c.example",
            "a@b..example",
            "a@b.example\r\nBcc: x@y.example",
            "\"a\"@b.example",
            "a@b@c.example",
            &format!("{}@b.example", "x".repeat(250)),
        ] {
            assert!(!valid_address(bad), "{bad:?}");
        }
        assert_eq!(bare_address("Shop <s@x.example>"), "s@x.example");
        assert_eq!(normalized(" A@B.Example "), "a@b.example");
    }

    #[test]
    fn contacts_and_claims() {
        let c = parse_contact(br#"{"targetingKey":"u1","email":"a@b.example"}"#, true).unwrap();
        assert_eq!(c.email.as_deref(), Some("a@b.example"));
        assert!(parse_contact(br#"{"targetingKey":"u1"}"#, true).is_err());
        assert!(parse_contact(br#"{"targetingKey":"u1"}"#, false).is_ok());
        assert!(parse_contact(br#"{"targetingKey":"","email":"a@b.example"}"#, true).is_err());
        assert!(parse_contact(br#"{"targetingKey":"u","email":"nope"}"#, true).is_err());
        assert!(
            parse_contact(br#"{"targetingKey":"u","email":"a@b.example","x":1}"#, true).is_err()
        );
        assert_eq!(
            claim_address(&json!({"sub": "u", "email": "a@b.example", "email_verified": true}))
                .as_deref(),
            Some("a@b.example")
        );
        // No `email_verified` (many providers omit it for an unconfirmed address), or not
        // the boolean `true`: not an address the edge may send to.
        for unverified in [json!(null), json!("true"), json!(1)] {
            let mut claims = json!({"sub": "u", "email": "a@b.example"});
            if !unverified.is_null() {
                claims["email_verified"] = unverified;
            }
            assert_eq!(claim_address(&claims), None, "{claims}");
        }
        assert_eq!(
            claim_address(&json!({"email": "a@b.example", "email_verified": false})),
            None
        );
        assert_eq!(
            claim_address(&json!({"email": "junk", "email_verified": true})),
            None
        );
        assert_eq!(claim_address(&json!({"sub": "u"})), None);
    }

    #[test]
    fn dedupe_keeps_one_per_address_the_earliest_registered_whatever_the_order() {
        let m = |key: &str, address: &str, updated_ms| Member {
            key: key.into(),
            address: address.into(),
            updated_ms,
        };
        // As shards answer: the later-registered contact of a@b comes first.
        let out = dedupe(vec![
            m("u2", "A@B.example", 20),
            m("u3", "c@b.example", 5),
            m("u1", "a@b.example", 10),
            m("u0", "c@b.example", 5),
        ]);
        let kept: Vec<&str> = out.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(kept, ["u0", "u1"]);
    }

    #[test]
    fn a_key_audience_asks_each_shard_only_for_its_keys() {
        let keys: Vec<String> = (0..40)
            .map(|i| format!("k{i}"))
            .chain(["k1".into()])
            .collect();
        let split = keys_by_shard(&keys, 4);
        assert!(split.len() <= 4);
        let mut all: Vec<&String> = split.values().flatten().collect();
        assert_eq!(all.len(), 40, "each key once");
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 40);
        for (shard, ks) in &split {
            for k in ks {
                assert_eq!(crate::notify::inbox::visitor_shard(k, 4), *shard);
            }
        }
        assert_eq!(keys_by_shard(&keys, 1).len(), 1);
        assert!(super::super::api::MAX_TARGETING_KEYS.div_ceil(KEYS_PER_LOOKUP) <= 10);
    }

    fn request(url: Option<&str>, body: &str) -> SendRequest {
        serde_json::from_value(json!({"title": "Order \"42\"", "body": body, "url": url,
            "channels": ["email"], "audience": {"targetingKeys": ["u"]}}))
        .unwrap()
    }

    #[test]
    fn jobs_and_rendering() {
        let mut s = Settings::from_lookup(lookup(&OK)).unwrap().unwrap();
        let job = Job::new("nabc", &request(Some("/orders/42"), "shipped"), "u1", 3, &s);
        assert_eq!(job.text, "shipped\n\n/orders/42");
        s.link_base = Some("https://shop.example".into());
        let job = Job::new("nabc", &request(Some("/orders/42"), "shipped"), "u1", 3, &s);
        assert_eq!(job.text, "shipped\n\nhttps://shop.example/orders/42");
        assert_eq!(Job::new("n", &request(None, "b"), "u", 0, &s).text, "b");
        let v = serde_json::to_value(&job).unwrap();
        assert!(Job::is_email(&v));
        assert!(!Job::is_email(&json!({"n": "x", "s": "y"})));
        assert_eq!(serde_json::from_value::<Job>(v).unwrap(), job);
        assert_ne!(
            job.idempotency_key(),
            Job {
                k: "u2".into(),
                ..job.clone()
            }
            .idempotency_key()
        );
        let template = json!({"personalizations": [{"to": [{"email": "{{to}}"}]}],
            "from": {"email": "{{from}}"}, "subject": "[{{id}}] {{subject}}",
            "content": [{"type": "text/plain", "value": "{{text}}"}], "n": 1});
        let body = render(&template, &job, "to@x.example", "f@x.example");
        assert_eq!(
            body["personalizations"][0]["to"][0]["email"],
            "to@x.example"
        );
        assert_eq!(body["subject"], "[nabc] Order \"42\"");
        assert_eq!(body["content"][0]["value"], job.text);
        assert_eq!(body["n"], 1);
        // Values stay data: quotes and braces do not break the JSON or add placeholders.
        let tricky = Job {
            subject: "{{to}}\"}".into(),
            ..job.clone()
        };
        let body = render(
            &json!({"s": "{{subject}}", "t": "{{to}}"}),
            &tricky,
            "x@y.example",
            "",
        );
        assert_eq!(body["s"], "{{to}}\"}");
    }

    #[test]
    fn a_held_pair_is_not_sent_twice() {
        assert_eq!(
            lease(None, 1_000),
            Lease::Take {
                until_ms: 1_000 + LEASE_SECS * 1000
            }
        );
        assert_eq!(lease(Some(5_500), 1_000), Lease::Busy { retry_in_secs: 5 });
        assert_eq!(lease(Some(1_001), 1_000), Lease::Busy { retry_in_secs: 1 });
        // The holder died: its lease ran out, the next copy takes over.
        assert_eq!(
            lease(Some(1_000), 1_000),
            Lease::Take {
                until_ms: 1_000 + LEASE_SECS * 1000
            }
        );
    }

    #[test]
    fn api_answers() {
        let b = Backoff {
            base_secs: 10,
            max_secs: 3600,
            max_attempts: 3,
        };
        assert_eq!(classify(Some(202), None, 1, &b, 0), Attempt::Delivered);
        assert!(matches!(
            classify(Some(404), None, 1, &b, 0),
            Attempt::Failed(_)
        ));
        assert!(matches!(
            classify(Some(422), None, 1, &b, 0),
            Attempt::Failed(_)
        ));
        assert!(matches!(
            classify(Some(429), Some("30"), 1, &b, 0),
            Attempt::Retry { delay_secs: 30, .. }
        ));
        assert!(matches!(
            classify(Some(500), None, 1, &b, 0),
            Attempt::Retry { delay_secs: 10, .. }
        ));
        assert!(matches!(
            classify(None, None, 2, &b, 0),
            Attempt::Retry { delay_secs: 20, .. }
        ));
        // Retries used up: 5xx, 429 and no answer go to the dead-letter queue; a refusal
        // (400-class) is recorded as failed at once, on any attempt.
        for status in [Some(503), Some(429), None] {
            match classify(status, None, 3, &b, 0) {
                Attempt::DeadLetter(r) => assert!(r.contains("e-mail API"), "{r}"),
                o => panic!("{status:?}: {o:?}"),
            }
        }
        assert!(matches!(
            classify(Some(422), None, 3, &b, 0),
            Attempt::Failed(_)
        ));
    }
}
