//! Shared-cache policy for the edge worker: RFC 9111 (HTTP caching, as a *shared* cache),
//! RFC 5861 (`stale-while-revalidate`, `stale-if-error`) and RFC 9211 (`Cache-Status`), as
//! pure functions over header lists so every decision is tested natively. The Workers glue
//! only moves bytes: it calls these functions and does what they return.
//!
//! # Implemented
//! - `Cache-Control` parsing (§5.2): case-insensitive names, quoted arguments with escapes,
//!   commas inside quotes, several field lines. Duplicates and invalid values: see
//!   [`Directives`].
//! - HTTP-date parsing (IMF-fixdate, obsolete RFC 850 and asctime; RFC 9110 §5.6.7),
//!   `Expires` (invalid = already expired, §5.3), `Age` (first member only, invalid ignored,
//!   §5.1), `Date` (added when missing, RFC 9110 §6.6.1).
//! - Request directives: `no-store`, `no-cache` (and `Pragma: no-cache` without
//!   `Cache-Control`), `max-age`, `max-stale`, `min-fresh`, `only-if-cached`,
//!   `stale-if-error`; `Authorization` (§3.5).
//! - Storability (§3) for a shared cache, freshness lifetime (§4.2.1), heuristic freshness
//!   (§4.2.2), age (§4.2.3), reuse decision (§4), `no-cache`/`private` with field lists
//!   (the named fields are not stored), `must-understand`, `Vary` secondary keys (§4.1).
//! - Serving stale: `stale-while-revalidate`, `stale-if-error` (response and request),
//!   request `max-stale`; never when `no-cache`, `must-revalidate`, `proxy-revalidate` or
//!   `s-maxage` forbid it (§4.2.4, §5.2.2.10).
//! - Validation: conditional headers (§4.3.1), freshening stored headers from a 304
//!   (§3.2, §4.3.4), answering a visitor's own conditional request from a stored response
//!   (§4.3.2).
//! - Invalidation after unsafe methods (§4.4), `Cache-Status` (RFC 9211), cache keys.
//!
//! # Deliberately not implemented
//! - Partial content: 206 responses are never stored and `Range` requests are answered with
//!   the full stored 200, which RFC 9110 §14.2 allows. No combining of partial responses.
//! - Storing responses to HEAD: a HEAD response has no body and would poison the GET entry
//!   under the same key. HEAD requests *are* answered from stored GET responses.
//! - Storing 304s, updating stored responses from HEAD responses (§4.3.5), `Warning`
//!   headers (obsoleted by RFC 9111), request collapsing, `immutable` (RFC 8246, a
//!   browser-side concern), `CDN-Cache-Control`/`Surrogate-Control`.
//! - Serving stale when the origin fails *without* a `stale-if-error` window: §4.2.4 allows
//!   it for a disconnected cache, but we only do what the origin or client asked for.
//! - One stored variant per key: the Workers Cache API holds one response per key, so a
//!   response that varies on a request header replaces the previous variant. The `Vary`
//!   check below only guarantees we never serve the wrong one.
//!
//! # Conventions
//! Header lists are `&[(String, String)]` with lowercase names (lookups are
//! case-insensitive anyway); a name may repeat. Times are unix **milliseconds** (`*_ms`);
//! ages, lifetimes and TTLs are whole seconds. All arithmetic saturates: no input panics.
//!
//! # How the glue uses this
//! ```text
//! let policy = request_policy(method, &req);
//! let key    = cache_key(&normalise_url(url), &variants);
//! let entry  = if policy.cacheable() { cache.match(key) } else { None };
//! let l      = lookup(&policy, &req, entry.headers(), now);
//! match l {
//!   Fresh | Stale        => send body + unwrap_for_client(entry, age); Cache-Status l.cache_status()
//!   StaleWhileRevalidate => the same, and revalidate with `conditional` in ctx.wait_until()
//!   Revalidate           => fetch with `conditional` (visitor's If-* removed):
//!                             304   -> after_304(): send its headers + stored body, put if store is Ok
//!                             5xx/! -> on_origin_error(): stale entry or the error
//!                             other -> as Miss
//!   Miss                 => fetch; storable() -> Ok: put(key, body, plan.headers)
//!   OnlyIfCachedMiss     => 504
//! }
//! forwarded: Cache-Status l.forwarded_status(status, store.as_ref())
//! any answer with a body: client_not_modified() -> 304 with not_modified_headers()
//! HEAD: same decisions, body dropped.  Unsafe method: invalidates() -> delete the keys of
//! invalidation_targets().
//! ```
//! Match and put with the synthetic key *string* (never the visitor's request), so the Cache
//! API sees no conditional or `Accept-Encoding` headers of its own. When [`storable`] says
//! no, leave any existing entry alone (a newer `no-store` response does not evict an older
//! stored one).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use crate::proxy::{connection_tokens, is_hop_by_hop};

/// A header list: lowercase names, raw values, names may repeat.
pub type HeaderList = [(String, String)];

/// The cache name in `Cache-Status` (RFC 9211 §2).
pub const CACHE_NAME: &str = "edgeflags";
/// Cap on a heuristic freshness lifetime (§4.2.2 leaves it to the cache): a day keeps a
/// response without explicit freshness from living long on a guess.
pub const HEURISTIC_CAP_SECS: u64 = 86_400;
/// How long a stale entry with a validator is kept for conditional revalidation: without
/// it a `no-cache` + `ETag` response (the usual app-shell pattern) would expire from the
/// Cache API at once and never be revalidated.
pub const VALIDATOR_RETENTION_SECS: u64 = 86_400;
/// Cap on the storage TTL handed to the Cache API; origins send `max-age=2147483648`.
pub const MAX_STORAGE_TTL_SECS: u64 = 31_536_000;
/// Greatest delta-seconds value (RFC 9111 §1.2.2): larger values and overflows become this.
pub const DELTA_SECONDS_MAX: u64 = 2_147_483_648;
/// Origin of the synthetic cache-key URLs (see [`cache_key`]).
pub const KEY_BASE: &str = "https://edgeflags.cache";

/// Prefix of the metadata headers on a stored response. Origin headers with this prefix
/// are dropped before storing so an origin cannot forge cache metadata.
pub const META_PREFIX: &str = "x-ef-";
/// Layout version of a stored entry; entries of another version are misses.
pub const META_FORMAT: &str = "x-ef-format";
/// Unix ms at which the entry was (re)stored.
pub const META_STORED_AT: &str = "x-ef-stored-at";
/// Unix ms at which the request that produced the entry was sent (§4.2.3 `request_time`).
pub const META_REQUEST_TIME: &str = "x-ef-request-time";
/// Unix ms at which the response was received (§4.2.3 `response_time`).
pub const META_RESPONSE_TIME: &str = "x-ef-response-time";
/// Status of the stored response (needed for heuristic freshness at lookup).
pub const META_STATUS: &str = "x-ef-status";
/// Secondary key: a SHA-256 of the request header values the response's `Vary` names. A
/// hash rather than the values, so a stored entry never holds a visitor's cookie or token.
pub const META_VARY: &str = "x-ef-vary";
/// The origin's `Cache-Control` lines, restored on the way out; the stored `Cache-Control`
/// is the storage TTL for the Cache API.
pub const META_CACHE_CONTROL: &str = "x-ef-cache-control";
/// The origin's `Age` lines. Kept out of the stored `Age` because the Cache API reads it
/// too: it would subtract the age from the retention time we already computed net of it,
/// evicting entries early — or at once when the age exceeds the remaining retention.
pub const META_AGE: &str = "x-ef-age";
const FORMAT_VERSION: &str = "1";

/// Our device token for the Edge Architecture Specification 1.0 (W3C Note, 2001): origins
/// address `Surrogate-Control` directives to this cache with `;edgeflags`.
pub const SURROGATE_TOKEN: &str = "edgeflags";
/// What the edge appends to `Surrogate-Capability` on origin requests.
pub const SURROGATE_CAPABILITY: &str = "edgeflags=\"Surrogate/1.0\"";

/// The `Surrogate-Capability` to send to the origin: the visitor's (from a surrogate in
/// front of us) with ours appended.
pub fn surrogate_capability(incoming: Option<&str>) -> String {
    match incoming.map(str::trim).filter(|v| !v.is_empty()) {
        Some(v) => format!("{v}, {SURROGATE_CAPABILITY}"),
        None => SURROGATE_CAPABILITY.to_owned(),
    }
}

/// The `Surrogate-Control` directives addressed to this cache (untargeted ones and those
/// targeted `;edgeflags`), when they decide storage: a `max-age` or `no-store` among them.
/// `Surrogate-Control` is for surrogates what `Cache-Control` is for HTTP caches and takes
/// precedence over it here; the visitor never sees it.
pub fn surrogate_control(headers: &HeaderList) -> Option<Directives> {
    let mut mine: Vec<String> = Vec::new();
    for line in Headers(headers).get_all("surrogate-control") {
        for member in line.split(',') {
            let (directive, target) = match member.split_once(';') {
                Some((d, t)) => (d, Some(t.trim())),
                None => (member, None),
            };
            if target.is_none_or(|t| t.eq_ignore_ascii_case(SURROGATE_TOKEN)) {
                mine.push(directive.trim().to_owned());
            }
        }
    }
    let parsed = Directives::parse(std::iter::once(mine.join(", ").as_str()));
    (parsed.has("max-age") || parsed.has("no-store")).then_some(parsed)
}

/// The directives that decide storing and freshness in this cache: `Surrogate-Control`
/// addressed to us when it decides storage, else `Cache-Control`.
fn storage_directives(headers: &HeaderList) -> Directives {
    surrogate_control(headers).unwrap_or_else(|| Headers(headers).cache_control())
}

/// Statuses that are heuristically cacheable (RFC 9110 §15.1).
const HEURISTIC_STATUSES: &[u16] = &[200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501];

// ------------------------------------------------------------------------------------------
// Headers and Cache-Control
// ------------------------------------------------------------------------------------------

/// Read-only view of a header list.
#[derive(Debug, Clone, Copy)]
pub struct Headers<'a>(pub &'a HeaderList);

impl<'a> Headers<'a> {
    /// Value of the first line named `name`.
    pub fn get(self, name: &str) -> Option<&'a str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Values of every line named `name`, in order.
    pub fn get_all(self, name: &str) -> Vec<&'a str> {
        self.0
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// All lines named `name` joined with `", "` (RFC 9110 §5.3), if there is any.
    pub fn joined(self, name: &str) -> Option<String> {
        let all = self.get_all(name);
        (!all.is_empty()).then(|| all.join(", "))
    }

    /// Whether any line is named `name`.
    pub fn has(self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    /// Members of a comma-separated list field over all its lines, trimmed, empty members
    /// dropped (RFC 9110 §5.6.1). For token lists such as `Vary` and `Connection`.
    pub fn list(self, name: &str) -> Vec<&'a str> {
        self.get_all(name)
            .into_iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .collect()
    }

    /// The parsed `Cache-Control` directives of all `Cache-Control` lines.
    pub fn cache_control(self) -> Directives {
        Directives::parse(self.get_all("cache-control"))
    }
}

/// One `Cache-Control` directive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// Lowercased name.
    pub name: String,
    /// Argument with quotes and escapes removed.
    pub arg: Option<String>,
    /// The element broke the grammar (`max-age =5`, `max-age= 5`, an unterminated quote,
    /// junk after the argument). The directive still counts as present, but its argument is
    /// unusable: the most restrictive reading.
    pub malformed: bool,
}

/// Parsed `Cache-Control` (RFC 9111 §5.2).
///
/// Duplicates and invalid values (§4.2.1): for directives with a delta-seconds argument the
/// **first occurrence wins**, which is the first of the two options §4.2.1 offers ("either
/// the first occurrence should be used or the response should be considered stale") and the
/// one the http-cache-tests suite probes for. An invalid argument (`a3600`, `3600.0`, `-1`,
/// `'3600'`, missing) counts as `0`, because §4.2.1 encourages treating invalid freshness
/// information as stale. Boolean directives count wherever they appear: when directives
/// conflict (`max-age=60, no-cache`) the most restrictive one is honoured (§4.2.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directives(pub Vec<Directive>);

/// Reach of a directive that may carry a field-name list (`no-cache`, `private`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The directive is absent.
    Absent,
    /// It applies to the whole response (no list, an empty list, or a malformed one).
    Whole,
    /// It applies only to these header fields (lowercase).
    Fields(Vec<String>),
}

impl Directives {
    /// Parses every line of a `Cache-Control` field.
    pub fn parse<'a>(lines: impl IntoIterator<Item = &'a str>) -> Self {
        let mut out = Vec::new();
        for line in lines {
            parse_directive_line(line, &mut out);
        }
        Directives(out)
    }

    /// Whether the directive is present anywhere.
    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|d| d.name == name)
    }

    /// The first occurrence of a directive.
    pub fn first(&self, name: &str) -> Option<&Directive> {
        self.0.iter().find(|d| d.name == name)
    }

    /// Delta-seconds argument of the first occurrence: `None` when absent, `Some(0)` when
    /// invalid, capped at [`DELTA_SECONDS_MAX`].
    pub fn seconds(&self, name: &str) -> Option<u64> {
        self.first(name).map(|d| {
            if d.malformed {
                0
            } else {
                d.arg.as_deref().and_then(parse_delta).unwrap_or(0)
            }
        })
    }

    /// Reach of `no-cache` / `private`: any unqualified occurrence makes it [`Scope::Whole`],
    /// otherwise the union of the listed fields.
    pub fn scope(&self, name: &str) -> Scope {
        let mut fields: Vec<String> = Vec::new();
        let mut seen = false;
        for d in self.0.iter().filter(|d| d.name == name) {
            seen = true;
            let listed: Vec<String> = match (&d.arg, d.malformed) {
                (Some(arg), false) => arg
                    .split(',')
                    .map(|f| f.trim().to_ascii_lowercase())
                    .filter(|f| !f.is_empty())
                    .collect(),
                _ => Vec::new(),
            };
            if listed.is_empty() {
                return Scope::Whole;
            }
            fields.extend(listed);
        }
        if seen {
            Scope::Fields(fields)
        } else {
            Scope::Absent
        }
    }
}

fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Parses one field line into `out`. Works on a char vector with `get` so no index can
/// panic; every branch advances, so it always terminates.
fn parse_directive_line(line: &str, out: &mut Vec<Directive>) {
    let chars: Vec<char> = line.chars().collect();
    let at = |i: usize| chars.get(i).copied();
    let collect = |from: usize, to: usize| -> String {
        chars
            .iter()
            .skip(from)
            .take(to.saturating_sub(from))
            .collect()
    };
    let mut i = 0;
    loop {
        while matches!(at(i), Some(c) if c == ',' || is_ows(c)) {
            i += 1;
        }
        if i >= chars.len() {
            break;
        }
        let start = i;
        while matches!(at(i), Some(c) if c != ',' && c != '=' && c != '"' && !is_ows(c)) {
            i += 1;
        }
        let name = collect(start, i);
        let mut space_before_eq = false;
        while matches!(at(i), Some(c) if is_ows(c)) {
            i += 1;
            space_before_eq = true;
        }
        let mut arg = None;
        let mut malformed = false;
        match at(i) {
            None | Some(',') => {}
            Some('=') => {
                i += 1;
                // The grammar has no whitespace around `=` (`token [ "=" ... ]`).
                malformed |= space_before_eq || matches!(at(i), Some(c) if is_ows(c));
                while matches!(at(i), Some(c) if is_ows(c)) {
                    i += 1;
                }
                if at(i) == Some('"') {
                    i += 1;
                    let mut value = String::new();
                    let mut closed = false;
                    while let Some(c) = at(i) {
                        i += 1;
                        match c {
                            '\\' => {
                                if let Some(escaped) = at(i) {
                                    value.push(escaped);
                                    i += 1;
                                }
                            }
                            '"' => {
                                closed = true;
                                break;
                            }
                            c => value.push(c),
                        }
                    }
                    malformed |= !closed;
                    arg = Some(value);
                } else {
                    let from = i;
                    while matches!(at(i), Some(c) if c != ',' && !is_ows(c)) {
                        i += 1;
                    }
                    arg = Some(collect(from, i));
                }
                while matches!(at(i), Some(c) if is_ows(c)) {
                    i += 1;
                }
                if !matches!(at(i), None | Some(',')) {
                    malformed = true;
                    skip_to_comma(&chars, &mut i);
                }
            }
            Some(_) => {
                // `foo bar`, `foo"x"`, or an element that starts with a quote.
                malformed = true;
                skip_to_comma(&chars, &mut i);
            }
        }
        if !name.is_empty() {
            out.push(Directive {
                name: name.to_ascii_lowercase(),
                arg,
                malformed,
            });
        }
    }
}

/// Advances to the next comma outside a quoted string.
fn skip_to_comma(chars: &[char], i: &mut usize) {
    let mut quoted = false;
    while let Some(&c) = chars.get(*i) {
        if quoted {
            match c {
                '\\' => *i += 1,
                '"' => quoted = false,
                _ => {}
            }
        } else if c == '"' {
            quoted = true;
        } else if c == ',' {
            return;
        }
        *i += 1;
    }
}

/// Delta-seconds (RFC 9111 §1.2.2): digits only; too large becomes [`DELTA_SECONDS_MAX`].
fn parse_delta(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v = s.bytes().fold(0u64, |acc, b| {
        acc.saturating_mul(10)
            .saturating_add(u64::from(b.saturating_sub(b'0')))
    });
    Some(v.min(DELTA_SECONDS_MAX))
}

/// The `Age` of a response (§5.1): the first member of the first line; an invalid value is
/// ignored (`None`).
pub fn parse_age(headers: &HeaderList) -> Option<u64> {
    let first = Headers(headers).get("age")?;
    parse_delta(first.split(',').next().unwrap_or("").trim())
}

// ------------------------------------------------------------------------------------------
// HTTP dates
// ------------------------------------------------------------------------------------------

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
const LONG_DAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];
/// 9999-12-31T23:59:59Z, the last instant an HTTP-date can express.
const MAX_HTTP_DATE: u64 = 253_402_300_799;

/// Parses an HTTP-date (RFC 9110 §5.6.7) into unix seconds: IMF-fixdate
/// (`Sun, 06 Nov 1994 08:49:37 GMT`), obsolete RFC 850 (`Sunday, 06-Nov-94 08:49:37 GMT`)
/// and asctime (`Sun Nov  6 08:49:37 1994`).
///
/// Robust as §5.6.7 encourages: names are case-insensitive, extra spaces and a missing comma
/// are accepted, `UTC` is accepted for `GMT`, the weekday must be a weekday name but is not
/// checked against the date. Two-digit years use a fixed pivot (00–69 → 20xx, 70–99 →
/// 19xx) instead of §5.6.7's "50 years in the future" rule, which would need a clock here;
/// they differ only for dates in 2070–2075 written in an obsolete format. Dates before 1970
/// become 0.
pub fn parse_http_date(value: &str) -> Option<u64> {
    let cleaned = value.replace(',', " ");
    let t: Vec<&str> = cleaned.split_whitespace().collect();
    let (day, month, year, time) = match t.as_slice() {
        [wk, d, m, y, time, zone] if is_weekday(wk) && is_gmt(zone) => {
            (*d, month_number(m)?, parse_year(y)?, *time)
        }
        [d, m, y, time, zone] if is_gmt(zone) => (*d, month_number(m)?, parse_year(y)?, *time),
        [wk, dmy, time, zone] if is_weekday(wk) && is_gmt(zone) => {
            let parts: Vec<&str> = dmy.split('-').collect();
            let [d, m, y] = parts.as_slice() else {
                return None;
            };
            (*d, month_number(m)?, parse_year(y)?, *time)
        }
        [wk, m, d, time, y] if is_weekday(wk) => (*d, month_number(m)?, parse_year(y)?, *time),
        _ => return None,
    };
    let day = parse_small(day)?;
    let (hh, mm, ss) = parse_time(time)?;
    if day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + i64::from(hh) * 3600 + i64::from(mm) * 60 + i64::from(ss);
    Some(u64::try_from(secs).unwrap_or(0))
}

/// Formats unix seconds as an IMF-fixdate (dates past year 9999 are clamped).
pub fn format_http_date(secs: u64) -> String {
    let secs = secs.min(MAX_HTTP_DATE);
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(i64::try_from(days).unwrap_or(0));
    let weekday = DAYS
        .get(usize::try_from((days + 4) % 7).unwrap_or(0))
        .unwrap_or(&"thu");
    let month = MONTHS
        .get(usize::try_from(m.saturating_sub(1)).unwrap_or(0))
        .unwrap_or(&"jan");
    format!(
        "{}, {d:02} {} {y:04} {:02}:{:02}:{:02} GMT",
        capitalise(weekday),
        capitalise(month),
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
        None => String::new(),
    }
}

fn is_weekday(s: &str) -> bool {
    let s = s.to_ascii_lowercase();
    DAYS.contains(&s.as_str()) || LONG_DAYS.contains(&s.as_str())
}

fn is_gmt(s: &str) -> bool {
    s.eq_ignore_ascii_case("gmt") || s.eq_ignore_ascii_case("utc")
}

fn month_number(s: &str) -> Option<u32> {
    let s = s.to_ascii_lowercase();
    let i = MONTHS.iter().position(|m| *m == s)?;
    u32::try_from(i + 1).ok()
}

fn parse_small(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 2 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_year(s: &str) -> Option<i64> {
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let y: i64 = match s.len() {
        4 => s.parse().ok()?,
        2 => {
            let yy: i64 = s.parse().ok()?;
            if yy < 70 {
                2000 + yy
            } else {
                1900 + yy
            }
        }
        _ => return None,
    };
    Some(y)
}

fn parse_time(s: &str) -> Option<(u32, u32, u32)> {
    let parts: Vec<&str> = s.split(':').collect();
    let [h, m, sec] = parts.as_slice() else {
        return None;
    };
    let (h, m, sec) = (parse_small(h)?, parse_small(m)?, parse_small(sec)?);
    // 60 allows a leap second.
    (h < 24 && m < 60 && sec <= 60).then_some((h, m, sec))
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

// ------------------------------------------------------------------------------------------
// Request side
// ------------------------------------------------------------------------------------------

/// How the cache treats a request method. Methods are case-sensitive (RFC 9110 §9.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodClass {
    /// Looked up and stored.
    Get,
    /// Looked up (answered from stored GET responses), never stored.
    Head,
    /// Passed through; unsafe methods may invalidate (see [`invalidates`]).
    Other,
}

/// Request `max-stale` (§5.2.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxStale {
    /// `max-stale` without a value: any staleness.
    Any,
    /// `max-stale=N`.
    Secs(u64),
}

/// What a request asks of the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestPolicy {
    pub method: MethodClass,
    /// `no-store`: look up, but do not store the response (§5.2.1.5).
    pub no_store: bool,
    /// `no-cache` (or `Pragma: no-cache` without `Cache-Control`): validate before reuse.
    pub no_cache: bool,
    /// `max-age=N` (invalid counts as 0): reuse only responses at most N seconds old.
    pub max_age: Option<u64>,
    pub max_stale: Option<MaxStale>,
    /// `min-fresh=N`: reuse only responses fresh for at least N more seconds.
    pub min_fresh: Option<u64>,
    /// `only-if-cached`: never contact the origin; 504 when nothing usable is stored.
    pub only_if_cached: bool,
    /// Request `stale-if-error=N` (RFC 5861 §4).
    pub stale_if_error: Option<u64>,
    /// The request carries `Authorization` (§3.5).
    pub authorization: bool,
}

impl RequestPolicy {
    /// Whether the cache looks the request up at all (GET and HEAD).
    pub fn cacheable(&self) -> bool {
        self.method != MethodClass::Other
    }
}

/// Reads the cache-relevant parts of a request.
pub fn request_policy(method: &str, req_headers: &HeaderList) -> RequestPolicy {
    let h = Headers(req_headers);
    let cc = h.cache_control();
    let method = match method {
        "GET" => MethodClass::Get,
        "HEAD" => MethodClass::Head,
        _ => MethodClass::Other,
    };
    // Pragma is deprecated (§5.4) but browsers still send it on reload, alone in old ones.
    let pragma_no_cache = !h.has("cache-control")
        && h.list("pragma")
            .iter()
            .any(|p| p.eq_ignore_ascii_case("no-cache"));
    let max_stale = cc.first("max-stale").map(|d| match (&d.arg, d.malformed) {
        (None, false) => MaxStale::Any,
        _ => MaxStale::Secs(cc.seconds("max-stale").unwrap_or(0)),
    });
    RequestPolicy {
        method,
        no_store: cc.has("no-store"),
        no_cache: cc.has("no-cache") || pragma_no_cache,
        max_age: cc.seconds("max-age"),
        max_stale,
        min_fresh: cc.seconds("min-fresh"),
        only_if_cached: cc.has("only-if-cached"),
        stale_if_error: cc.seconds("stale-if-error"),
        authorization: h.has("authorization"),
    }
}

// ------------------------------------------------------------------------------------------
// Response rules: freshness, age, stale windows
// ------------------------------------------------------------------------------------------

/// Everything about a response that the reuse decision needs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ResponseRules {
    /// Freshness lifetime in seconds (§4.2.1).
    lifetime: u64,
    /// Whether `lifetime` is a heuristic (§4.2.2).
    heuristic: bool,
    /// Unqualified `no-cache`: every reuse needs validation (§5.2.2.4).
    no_cache: bool,
    /// Serving stale is forbidden (§4.2.4): `no-cache`, `must-revalidate`,
    /// `proxy-revalidate`, or `s-maxage` (which implies proxy-revalidate, §5.2.2.10).
    stale_prohibited: bool,
    /// `stale-while-revalidate` window, 0 when prohibited.
    swr: u64,
    /// Response `stale-if-error` window, 0 when prohibited.
    sie: u64,
    /// Has `ETag` or `Last-Modified`.
    validator: bool,
    /// `public`, `s-maxage` or `must-revalidate`: shareable with credentialed requests
    /// (§3.5).
    shareable_with_credentials: bool,
}

fn response_rules(status: u16, headers: &HeaderList, response_ms: u64) -> ResponseRules {
    let h = Headers(headers);
    let cc = storage_directives(headers);
    let date = date_secs(headers, response_ms);
    let explicit = cc
        .seconds("s-maxage")
        .or_else(|| cc.seconds("max-age"))
        .or_else(|| {
            // Invalid Expires (including "0") means already expired (§5.3).
            h.get("expires")
                .map(|e| parse_http_date(e).map_or(0, |exp| exp.saturating_sub(date)))
        });
    let (lifetime, heuristic) = match explicit {
        Some(secs) => (secs, false),
        None if HEURISTIC_STATUSES.contains(&status) || cc.has("public") => {
            let lm = h.get("last-modified").and_then(parse_http_date);
            let secs = lm.map_or(0, |lm| {
                (date.saturating_sub(lm) / 10).min(HEURISTIC_CAP_SECS)
            });
            (secs, lm.is_some())
        }
        None => (0, false),
    };
    let no_cache = cc.scope("no-cache") == Scope::Whole;
    let stale_prohibited =
        no_cache || cc.has("must-revalidate") || cc.has("proxy-revalidate") || cc.has("s-maxage");
    let window = |name: &str| {
        if stale_prohibited {
            0
        } else {
            cc.seconds(name).unwrap_or(0)
        }
    };
    ResponseRules {
        lifetime,
        heuristic,
        no_cache,
        stale_prohibited,
        swr: window("stale-while-revalidate"),
        sie: window("stale-if-error"),
        validator: h.has("etag") || h.has("last-modified"),
        shareable_with_credentials: cc.has("public")
            || cc.has("s-maxage")
            || cc.has("must-revalidate"),
    }
}

/// The response's `Date` in unix seconds, or the time it was received when missing or
/// invalid (RFC 9110 §6.6.1).
fn date_secs(headers: &HeaderList, response_ms: u64) -> u64 {
    Headers(headers)
        .get("date")
        .and_then(parse_http_date)
        .unwrap_or(response_ms / 1000)
}

/// Current age in ms (§4.2.3), computed entirely with saturating arithmetic: clocks that
/// run backwards (response before request, `now` before the response) count as zero.
fn current_age_ms(headers: &HeaderList, request_ms: u64, response_ms: u64, now_ms: u64) -> u64 {
    let date_ms = date_secs(headers, response_ms).saturating_mul(1000);
    let age_value_ms = parse_age(headers).unwrap_or(0).saturating_mul(1000);
    let apparent_age = response_ms.saturating_sub(date_ms);
    let response_delay = response_ms.saturating_sub(request_ms);
    let corrected_age_value = age_value_ms.saturating_add(response_delay);
    let corrected_initial_age = apparent_age.max(corrected_age_value);
    let resident_time = now_ms.saturating_sub(response_ms);
    corrected_initial_age.saturating_add(resident_time)
}

/// Whole seconds for an `Age` header, capped at 2^31 (§5.1).
fn age_secs(age_ms: u64) -> u64 {
    (age_ms / 1000).min(DELTA_SECONDS_MAX)
}

/// Remaining freshness in seconds, negative when stale (RFC 9211 `ttl`).
fn ttl_secs(lifetime: u64, age_ms: u64) -> i64 {
    let ttl = i128::from(lifetime) - i128::from(age_ms / 1000);
    i64::try_from(ttl).unwrap_or(if ttl < 0 { i64::MIN } else { i64::MAX })
}

// ------------------------------------------------------------------------------------------
// Storing
// ------------------------------------------------------------------------------------------

/// Why a response is not stored (or a request not answered from the cache).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bypass {
    /// Not a GET (HEAD responses have no body and are never stored).
    Method,
    /// The request said `no-store`.
    RequestNoStore,
    /// Status not storable: not final, 206, 304, or not understood under `must-understand`.
    Status,
    /// The response said `no-store` (and no `must-understand` for a status we know).
    NoStore,
    /// The response said `private` without a field list.
    Private,
    /// The response sets a cookie: never shared (our policy, stricter than RFC 9111).
    SetCookie,
    /// `Vary: *` can never match a later request (§4.1).
    VaryStar,
    /// The request had `Authorization` and the response lacks `public`, `s-maxage` and
    /// `must-revalidate` (§3.5).
    Authorization,
    /// Nothing makes it reusable: no explicit freshness, no heuristic, no validator, no
    /// stale window (e.g. a bare 200, which the http-cache-tests `freshness-none` test
    /// requires us not to reuse).
    NoFreshness,
    /// The chosen origin failed and the stable origin answered the retry: that answer is
    /// not the representation the key's variant selects (RFC 9111 §4.1: a stored response
    /// is reused only for requests its selecting header fields match; our key's variant is
    /// one of them), so it is served once and stored nowhere.
    Retried,
}

impl Bypass {
    /// The `Cache-Status` detail for this reason.
    pub fn detail(self) -> Detail {
        match self {
            Bypass::Method => Detail::Method,
            Bypass::RequestNoStore | Bypass::NoStore => Detail::NoStore,
            Bypass::Status => Detail::Status,
            Bypass::Private => Detail::Private,
            Bypass::SetCookie => Detail::SetCookie,
            Bypass::VaryStar => Detail::VaryStar,
            Bypass::Authorization => Detail::Authorization,
            Bypass::NoFreshness => Detail::NoFreshness,
            Bypass::Retried => Detail::Retried,
        }
    }
}

/// How to store a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorePlan {
    /// Freshness lifetime in seconds (§4.2.1).
    pub freshness_lifetime: u64,
    /// Whether the lifetime is heuristic (§4.2.2).
    pub heuristic: bool,
    /// Age of the response when stored, in seconds.
    pub age: u64,
    /// Effective `stale-while-revalidate` window in seconds (0 when stale is forbidden).
    pub stale_while_revalidate: u64,
    /// Effective response `stale-if-error` window in seconds.
    pub stale_if_error: u64,
    /// How long the Cache API keeps the entry, in seconds: the remaining freshness plus the
    /// longest stale window (or [`VALIDATOR_RETENTION_SECS`] for responses with a validator),
    /// capped at [`MAX_STORAGE_TTL_SECS`]. Already written into `headers`.
    pub storage_ttl: u64,
    /// The wrapped headers to `put` with the body: origin headers (minus hop-by-hop and
    /// `no-cache`/`private`-listed fields), `Date` if it was missing, the metadata headers
    /// and `Cache-Control: s-maxage=<storage_ttl>` for the Cache API.
    pub headers: Vec<(String, String)>,
}

impl StorePlan {
    /// Remaining freshness at store time (RFC 9211 `ttl`).
    pub fn ttl(&self) -> i64 {
        ttl_secs(self.freshness_lifetime, self.age.saturating_mul(1000))
    }
}

/// Whether and how to store what an origin fetch for this key gave: never a HEAD answer
/// (no body), never the stable origin's answer to a retry (see [`Bypass::Retried`]), else
/// [`storable`].
#[allow(clippy::too_many_arguments)]
pub fn storable_answer(
    policy: &RequestPolicy,
    req_headers: &HeaderList,
    status: u16,
    res_headers: &HeaderList,
    request_time_ms: u64,
    response_time_ms: u64,
    retried: bool,
) -> Result<StorePlan, Bypass> {
    if matches!(policy.method, MethodClass::Head) {
        Err(Bypass::Method)
    } else if retried {
        Err(Bypass::Retried)
    } else {
        storable(
            policy,
            req_headers,
            status,
            res_headers,
            request_time_ms,
            response_time_ms,
        )
    }
}

/// Whether and how to store an origin response to `req_headers` (RFC 9111 §3 for a shared
/// cache, plus our Set-Cookie rule). `request_time_ms` is when the request went to the
/// origin, `response_time_ms` when its response arrived.
pub fn storable(
    policy: &RequestPolicy,
    req_headers: &HeaderList,
    status: u16,
    res_headers: &HeaderList,
    request_time_ms: u64,
    response_time_ms: u64,
) -> Result<StorePlan, Bypass> {
    plan_store(
        policy,
        req_headers,
        status,
        res_headers,
        (request_time_ms, response_time_ms),
        false,
    )
}

/// Statuses whose semantics we know (RFC 9110), for `must-understand` (§5.2.2.3).
fn understood_status(status: u16) -> bool {
    matches!(status,
        200..=205 | 300..=303 | 305 | 307 | 308 | 400..=417 | 421 | 422 | 426 | 500..=505)
}

fn plan_store(
    policy: &RequestPolicy,
    req_headers: &HeaderList,
    status: u16,
    res_headers: &HeaderList,
    (request_ms, response_ms): (u64, u64),
    body_from_entry: bool,
) -> Result<StorePlan, Bypass> {
    match policy.method {
        MethodClass::Get => {}
        // A 304 to a HEAD revalidation refreshes the stored GET body, which we still have.
        MethodClass::Head if body_from_entry => {}
        _ => return Err(Bypass::Method),
    }
    if policy.no_store {
        return Err(Bypass::RequestNoStore);
    }
    let h = Headers(res_headers);
    let cc = storage_directives(res_headers);
    let must_understand = cc.has("must-understand");
    if !(200..=599).contains(&status)
        || status == 206
        || status == 304
        || (must_understand && !understood_status(status))
    {
        return Err(Bypass::Status);
    }
    if cc.has("no-store") && !(must_understand && understood_status(status)) {
        return Err(Bypass::NoStore);
    }
    if cc.scope("private") == Scope::Whole {
        return Err(Bypass::Private);
    }
    if h.has("set-cookie") || h.has("set-cookie2") {
        return Err(Bypass::SetCookie);
    }
    let (star, vary) = vary_names(res_headers);
    if star {
        return Err(Bypass::VaryStar);
    }
    let rules = response_rules(status, res_headers, response_ms);
    if policy.authorization && !rules.shareable_with_credentials {
        return Err(Bypass::Authorization);
    }
    // §3: something must say the response may be cached at all.
    let cacheable = cc.has("public")
        || h.has("expires")
        || cc.has("max-age")
        || cc.has("s-maxage")
        || HEURISTIC_STATUSES.contains(&status);
    if !cacheable {
        return Err(Bypass::NoFreshness);
    }
    let age_ms = current_age_ms(res_headers, request_ms, response_ms, response_ms);
    let serve = if rules.no_cache { 0 } else { rules.lifetime };
    let retention = if rules.validator {
        VALIDATOR_RETENTION_SECS
    } else {
        0
    };
    let keep = serve.saturating_add(rules.swr.max(rules.sie).max(retention));
    let storage_ttl =
        (keep.saturating_mul(1000).saturating_sub(age_ms) / 1000).min(MAX_STORAGE_TTL_SECS);
    if storage_ttl == 0 {
        return Err(Bypass::NoFreshness);
    }

    let conn = connection_tokens(h.joined("connection").as_deref());
    let mut omitted: Vec<String> = Vec::new();
    for name in ["no-cache", "private"] {
        if let Scope::Fields(fields) = cc.scope(name) {
            omitted.extend(fields);
        }
    }
    let mut headers: Vec<(String, String)> = res_headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
        .filter(|(n, _)| {
            n != "cache-control"
                && !n.starts_with(META_PREFIX)
                && !is_hop_by_hop(n, &conn)
                && !omitted.contains(n)
        })
        .collect();
    if !h.has("date") {
        headers.push(("date".into(), format_http_date(response_ms / 1000)));
    }
    let meta = |name: &str, value: String| (name.to_owned(), value);
    headers.push(meta(META_FORMAT, FORMAT_VERSION.into()));
    headers.push(meta(META_STATUS, status.to_string()));
    headers.push(meta(META_STORED_AT, response_ms.to_string()));
    headers.push(meta(META_REQUEST_TIME, request_ms.to_string()));
    headers.push(meta(META_RESPONSE_TIME, response_ms.to_string()));
    if !vary.is_empty() {
        headers.push(meta(META_VARY, vary_key(&vary, req_headers)));
    }
    for line in headers.iter_mut().filter(|line| line.0 == "age") {
        line.0 = META_AGE.to_owned();
    }
    for line in h.get_all("cache-control") {
        headers.push(meta(META_CACHE_CONTROL, line.to_owned()));
    }
    headers.push(("cache-control".into(), format!("s-maxage={storage_ttl}")));

    Ok(StorePlan {
        freshness_lifetime: rules.lifetime,
        heuristic: rules.heuristic,
        age: age_secs(age_ms),
        stale_while_revalidate: rules.swr,
        stale_if_error: rules.sie,
        storage_ttl,
        headers,
    })
}

/// `Vary` field names (lowercase, sorted, unique) and whether `*` is among them.
fn vary_names(headers: &HeaderList) -> (bool, Vec<String>) {
    let mut star = false;
    let mut names = BTreeSet::new();
    for m in Headers(headers).list("vary") {
        if m == "*" {
            star = true;
        } else {
            names.insert(m.to_ascii_lowercase());
        }
    }
    (star, names.into_iter().collect())
}

/// Secondary cache key (§4.1): a hash over each `Vary`-named request header, its lines
/// combined and list whitespace normalised. An absent header differs from an empty one.
fn vary_key(names: &[String], req_headers: &HeaderList) -> String {
    let h = Headers(req_headers);
    let mut hasher = Sha256::new();
    for name in names {
        hasher.update(name.as_bytes());
        match h.joined(name) {
            Some(v) => {
                let normalised: Vec<&str> = v.split(',').map(str::trim).collect();
                hasher.update(b"=");
                hasher.update(normalised.join(",").as_bytes());
            }
            None => hasher.update(b"\x00absent"),
        }
        hasher.update(b"\n");
    }
    hasher
        .finalize()
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

// ------------------------------------------------------------------------------------------
// Stored entries and lookup
// ------------------------------------------------------------------------------------------

/// A stored, wrapped response read back.
#[derive(Debug, Clone)]
struct Entry {
    /// The headers as the origin sent them (metadata stripped, `Cache-Control` restored).
    origin: Vec<(String, String)>,
    request_ms: u64,
    response_ms: u64,
    vary_key: Option<String>,
    rules: ResponseRules,
}

impl Entry {
    fn parse(stored: &HeaderList) -> Option<Entry> {
        let h = Headers(stored);
        if h.get(META_FORMAT) != Some(FORMAT_VERSION) {
            return None;
        }
        let num = |name: &str| h.get(name).and_then(|v| v.trim().parse::<u64>().ok());
        let status = u16::try_from(num(META_STATUS)?).ok()?;
        let request_ms = num(META_REQUEST_TIME)?;
        let response_ms = num(META_RESPONSE_TIME)?;
        let origin = origin_view(stored);
        let rules = response_rules(status, &origin, response_ms);
        Some(Entry {
            request_ms,
            response_ms,
            vary_key: h.get(META_VARY).map(str::to_owned),
            rules,
            origin,
        })
    }

    fn age_ms(&self, now_ms: u64) -> u64 {
        current_age_ms(&self.origin, self.request_ms, self.response_ms, now_ms)
    }

    fn vary_matches(&self, req_headers: &HeaderList) -> bool {
        let (star, names) = vary_names(&self.origin);
        if star {
            return false;
        }
        names.is_empty() || self.vary_key.as_deref() == Some(vary_key(&names, req_headers).as_str())
    }

    /// Conditional request headers for validating this entry (§4.3.1).
    fn conditional(&self) -> Vec<(String, String)> {
        let h = Headers(&self.origin);
        let mut out = Vec::new();
        if let Some(etag) = h.joined("etag") {
            out.push(("if-none-match".to_owned(), etag));
        }
        if let Some(lm) = h.get("last-modified") {
            out.push(("if-modified-since".to_owned(), lm.to_owned()));
        }
        out
    }
}

/// Stored headers as the origin sent them: metadata removed, the storage `Cache-Control`
/// replaced by the origin's own lines.
fn origin_view(stored: &HeaderList) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = stored
        .iter()
        // An `Age` on a matched entry is the Cache API's own (it adds one on match), not
        // the origin's: that one travels as `META_AGE`.
        .filter(|(n, _)| {
            !n.eq_ignore_ascii_case("cache-control")
                && !n.eq_ignore_ascii_case("age")
                && !is_meta(n)
        })
        .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
        .collect();
    for line in Headers(stored).get_all(META_CACHE_CONTROL) {
        out.push(("cache-control".to_owned(), line.to_owned()));
    }
    for line in Headers(stored).get_all(META_AGE) {
        out.push(("age".to_owned(), line.to_owned()));
    }
    out
}

fn is_meta(name: &str) -> bool {
    name.get(..META_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(META_PREFIX))
}

/// Forward reasons of RFC 9211 §2.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fwd {
    /// The cache was configured not to handle this request.
    Bypass,
    /// The method requires forwarding.
    Method,
    /// Nothing stored for the URI (key).
    UriMiss,
    /// Something stored, but its `Vary` did not match.
    VaryMiss,
    /// Nothing usable stored (here: an unreadable entry).
    Miss,
    /// A fresh response was stored, but the request's directives forbade using it.
    Request,
    /// The stored response was stale (or needs validation on every use).
    Stale,
}

impl Fwd {
    /// The RFC 9211 token.
    pub fn as_str(self) -> &'static str {
        match self {
            Fwd::Bypass => "bypass",
            Fwd::Method => "method",
            Fwd::UriMiss => "uri-miss",
            Fwd::VaryMiss => "vary-miss",
            Fwd::Miss => "miss",
            Fwd::Request => "request",
            Fwd::Stale => "stale",
        }
    }
}

/// What to do with a request given what is stored for its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Serve the stored response; `age` goes in the `Age` header.
    Fresh { age: u64, ttl: i64 },
    /// Serve the stale stored response: the request's `max-stale` accepts it.
    Stale { age: u64, ttl: i64 },
    /// Serve the stale stored response now and revalidate in the background with
    /// `conditional` (RFC 5861 §3).
    StaleWhileRevalidate {
        age: u64,
        ttl: i64,
        conditional: Vec<(String, String)>,
    },
    /// Forward with `conditional` added (replacing the visitor's own `If-*` headers); on a
    /// 304 call [`after_304`], on an origin error [`on_origin_error`].
    Revalidate {
        fwd: Fwd,
        conditional: Vec<(String, String)>,
    },
    /// Forward unconditionally.
    Miss { fwd: Fwd, detail: Option<Detail> },
    /// `only-if-cached` and nothing usable: answer 504 without contacting the origin
    /// (§5.2.1.7).
    OnlyIfCachedMiss,
}

impl Lookup {
    /// `Cache-Status` for outcomes answered from the cache; `None` when the origin must be
    /// asked (use [`Lookup::forwarded_status`] once it has answered).
    pub fn cache_status(&self) -> Option<CacheStatus> {
        match self {
            Lookup::Fresh { ttl, .. } => Some(CacheStatus::Hit {
                ttl: *ttl,
                detail: None,
            }),
            Lookup::Stale { ttl, .. } => Some(CacheStatus::Hit {
                ttl: *ttl,
                detail: Some(Detail::MaxStale),
            }),
            Lookup::StaleWhileRevalidate { ttl, .. } => Some(CacheStatus::Hit {
                ttl: *ttl,
                detail: Some(Detail::StaleWhileRevalidate),
            }),
            Lookup::OnlyIfCachedMiss => Some(CacheStatus::Generated {
                detail: Detail::OnlyIfCached,
            }),
            Lookup::Revalidate { .. } | Lookup::Miss { .. } => None,
        }
    }

    /// `Cache-Status` after forwarding: the lookup's forward reason, the origin's status
    /// (`None` for a network error) and the store decision, if one was made. A reason for
    /// not storing replaces the lookup's own detail. Outcomes normally answered from the
    /// cache report `fwd=stale` (stale-while-revalidate) or `fwd=request` if the glue
    /// forwards them anyway.
    pub fn forwarded_status(
        &self,
        fwd_status: Option<u16>,
        store: Option<&Result<StorePlan, Bypass>>,
    ) -> CacheStatus {
        let (fwd, detail) = match self {
            Lookup::Revalidate { fwd, .. } => (*fwd, None),
            Lookup::Miss { fwd, detail } => (*fwd, *detail),
            Lookup::StaleWhileRevalidate { .. } => (Fwd::Stale, None),
            Lookup::Fresh { .. } | Lookup::Stale { .. } => (Fwd::Request, None),
            Lookup::OnlyIfCachedMiss => (Fwd::Miss, None),
        };
        let (stored, ttl, detail) = match store {
            Some(Ok(plan)) => (true, Some(plan.ttl()), detail),
            Some(Err(bypass)) => (false, None, Some(bypass.detail())),
            None => (false, None, detail),
        };
        CacheStatus::Forward {
            fwd,
            fwd_status,
            ttl,
            stored,
            detail,
        }
    }
}

/// Decides how to answer a request from `stored` (the wrapped headers found under its key,
/// or `None`) at `now_ms` (§4).
pub fn lookup(
    policy: &RequestPolicy,
    req_headers: &HeaderList,
    stored: Option<&HeaderList>,
    now_ms: u64,
) -> Lookup {
    if !policy.cacheable() {
        return Lookup::Miss {
            fwd: Fwd::Method,
            detail: None,
        };
    }
    let miss = |fwd: Fwd, detail: Option<Detail>| {
        if policy.only_if_cached {
            Lookup::OnlyIfCachedMiss
        } else {
            Lookup::Miss { fwd, detail }
        }
    };
    let Some(stored) = stored else {
        return miss(Fwd::UriMiss, None);
    };
    let Some(entry) = Entry::parse(stored) else {
        return miss(Fwd::Miss, Some(Detail::BadEntry));
    };
    if !entry.vary_matches(req_headers) {
        return miss(Fwd::VaryMiss, None);
    }
    // §3.5 only restricts *storing* responses to credentialed requests; answering a
    // credentialed request from an anonymous entry is allowed, but the visitor may be
    // expecting personal content, so only entries the origin explicitly marked shareable
    // answer such requests.
    if policy.authorization && !entry.rules.shareable_with_credentials {
        return miss(Fwd::Bypass, Some(Detail::Authorization));
    }

    let rules = &entry.rules;
    let age_ms = entry.age_ms(now_ms);
    let lifetime_ms = rules.lifetime.saturating_mul(1000);
    let age = age_secs(age_ms);
    let ttl = ttl_secs(rules.lifetime, age_ms);
    let fresh = age_ms < lifetime_ms;
    let revalidate = |fwd: Fwd| {
        if policy.only_if_cached {
            Lookup::OnlyIfCachedMiss
        } else {
            Lookup::Revalidate {
                fwd,
                conditional: entry.conditional(),
            }
        }
    };

    if rules.no_cache {
        return revalidate(Fwd::Stale);
    }
    let request_fwd = if fresh { Fwd::Request } else { Fwd::Stale };
    if policy.no_cache {
        return revalidate(request_fwd);
    }
    if let Some(max_age) = policy.max_age {
        if age_ms > max_age.saturating_mul(1000) {
            return revalidate(request_fwd);
        }
    }
    if fresh {
        if let Some(min_fresh) = policy.min_fresh {
            if lifetime_ms.saturating_sub(age_ms) < min_fresh.saturating_mul(1000) {
                return revalidate(Fwd::Request);
            }
        }
        return Lookup::Fresh { age, ttl };
    }

    let staleness_ms = age_ms.saturating_sub(lifetime_ms);
    if rules.stale_prohibited {
        return revalidate(Fwd::Stale);
    }
    let accepted_by_client = match policy.max_stale {
        Some(MaxStale::Any) => true,
        Some(MaxStale::Secs(n)) => staleness_ms <= n.saturating_mul(1000),
        None => false,
    };
    if accepted_by_client {
        return Lookup::Stale { age, ttl };
    }
    if rules.swr > 0 && staleness_ms <= rules.swr.saturating_mul(1000) {
        return Lookup::StaleWhileRevalidate {
            age,
            ttl,
            conditional: entry.conditional(),
        };
    }
    revalidate(Fwd::Stale)
}

/// Current age in seconds of a stored entry at `now_ms`, `None` if it is not ours.
pub fn current_age(stored: &HeaderList, now_ms: u64) -> Option<u64> {
    Entry::parse(stored).map(|e| age_secs(e.age_ms(now_ms)))
}

/// Whether an origin outcome is an error for `stale-if-error`: a network error (`None`) or
/// any 5xx. RFC 5861 §4 names 500, 502, 503 and 504; we include the rest of 5xx because
/// Cloudflare reports origin trouble as 52x.
pub fn is_origin_error(status: Option<u16>) -> bool {
    status.is_none_or(|s| (500..=599).contains(&s))
}

/// What to send when the origin failed while revalidating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Serve the stored response with this `Age`.
    ServeStale { age: u64, ttl: i64 },
    /// Pass the origin's answer (or a 502 for a network error) through.
    PassThrough,
}

impl OnError {
    /// `Cache-Status` when serving stale: `hit` with `detail=stale-if-error`.
    pub fn cache_status(&self) -> Option<CacheStatus> {
        match self {
            OnError::ServeStale { ttl, .. } => Some(CacheStatus::Hit {
                ttl: *ttl,
                detail: Some(Detail::StaleIfError),
            }),
            OnError::PassThrough => None,
        }
    }
}

/// After a revalidation of `stored` failed with `origin_status` (`None`: network error):
/// serve the stored response if the response's or the request's `stale-if-error` window
/// covers its staleness (RFC 5861 §4), never when `no-cache`, `must-revalidate`,
/// `proxy-revalidate` or `s-maxage` forbid stale (§4.2.4). A still-fresh entry (revalidated
/// only because the request asked) is served too.
pub fn on_origin_error(
    policy: &RequestPolicy,
    stored: &HeaderList,
    origin_status: Option<u16>,
    now_ms: u64,
) -> OnError {
    if !is_origin_error(origin_status) {
        return OnError::PassThrough;
    }
    let Some(entry) = Entry::parse(stored) else {
        return OnError::PassThrough;
    };
    if entry.rules.stale_prohibited {
        return OnError::PassThrough;
    }
    let age_ms = entry.age_ms(now_ms);
    let staleness_ms = age_ms.saturating_sub(entry.rules.lifetime.saturating_mul(1000));
    let window = entry.rules.sie.max(policy.stale_if_error.unwrap_or(0));
    if staleness_ms == 0 || (window > 0 && staleness_ms <= window.saturating_mul(1000)) {
        OnError::ServeStale {
            age: age_secs(age_ms),
            ttl: ttl_secs(entry.rules.lifetime, age_ms),
        }
    } else {
        OnError::PassThrough
    }
}

// ------------------------------------------------------------------------------------------
// Revalidation and serving
// ------------------------------------------------------------------------------------------

/// Header fields a 304 does not update (§3.2): `Content-Length`, fields describing the
/// stored body's bytes (its coding, range and checksums: a 304 carries no content, so a
/// new `Content-MD5` or `Content-Digest` would contradict the body we keep — §3.2's
/// "fields necessary to assure integrity of the stored response"), hop-by-hop fields, and
/// our metadata.
const NOT_UPDATED_BY_304: &[&str] = &[
    "content-length",
    "content-encoding",
    "content-range",
    "content-md5",
    "content-digest",
    "transfer-encoding",
];

/// The result of freshening a stored response with a 304.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revalidated {
    /// The freshened response headers (origin form) to send to the visitor with the
    /// stored body. No `Age`: the response was just validated (§5.1), unless the 304
    /// itself carried one.
    pub headers: Vec<(String, String)>,
    /// Whether and how to re-store the freshened response (with the same body). On `Err`
    /// (e.g. the 304 added `no-store` or a `Set-Cookie`), serve but do not re-store.
    pub store: Result<StorePlan, Bypass>,
}

/// Freshens `stored` with the 304 `not_modified` (§4.3.4, §3.2): each field of the 304
/// replaces the stored lines of that name, except those in §3.2's exceptions. A 304 without
/// `Date` gets one (the time it arrived), so the entry's age restarts. `stored_status` is
/// the stored response's status.
///
/// Returns `None` when the 304's validator does not identify the stored response (a strong
/// `ETag` that differs, a weak one that does not weakly match, or a different
/// `Last-Modified`): then the cache must not use it (§4.3.4) and the glue should repeat the
/// request without conditional headers.
pub fn after_304(
    policy: &RequestPolicy,
    req_headers: &HeaderList,
    stored_status: u16,
    stored: &HeaderList,
    not_modified: &HeaderList,
    request_time_ms: u64,
    response_time_ms: u64,
) -> Option<Revalidated> {
    let entry = Entry::parse(stored)?;
    if !validators_match(&entry.origin, not_modified) {
        return None;
    }
    let nm = Headers(not_modified);
    let conn = connection_tokens(nm.joined("connection").as_deref());
    let updated = |name: &str| {
        !is_meta(name) && !is_hop_by_hop(name, &conn) && !NOT_UPDATED_BY_304.contains(&name)
    };
    let incoming: Vec<(String, String)> = not_modified
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
        .filter(|(n, _)| updated(n))
        .collect();
    let mut headers: Vec<(String, String)> = entry
        .origin
        .into_iter()
        // The old Age described the old exchange; the 304 brings its own or none.
        .filter(|(n, _)| n != "age" && !incoming.iter().any(|(i, _)| i == n))
        .collect();
    headers.extend(incoming);
    if !nm.has("date") {
        headers.retain(|(n, _)| n != "date");
        headers.push(("date".into(), format_http_date(response_time_ms / 1000)));
    }
    let store = plan_store(
        policy,
        req_headers,
        stored_status,
        &headers,
        (request_time_ms, response_time_ms),
        true,
    );
    Some(Revalidated { headers, store })
}

/// Does the 304's validator select the stored response (§4.3.4)?
fn validators_match(stored: &HeaderList, not_modified: &HeaderList) -> bool {
    let old = Headers(stored);
    let new = Headers(not_modified);
    match new.get("etag").map(str::trim) {
        Some(tag) if !tag.starts_with("W/") => old.get("etag").map(str::trim) == Some(tag),
        Some(tag) => old.get("etag").is_some_and(|o| weak_eq(o.trim(), tag)),
        None => match new.get("last-modified") {
            Some(lm) => {
                let parsed = parse_http_date(lm);
                parsed.is_some() && old.get("last-modified").and_then(parse_http_date) == parsed
            }
            // No validator at all: §4.3.4 lets it update a single stored response without
            // one; we sent this entry's own validators, so the 304 can only be about it.
            None => true,
        },
    }
}

/// Weak entity-tag comparison (RFC 9110 §8.8.3.2).
fn weak_eq(a: &str, b: &str) -> bool {
    let strip = |t: &str| t.strip_prefix("W/").unwrap_or(t).to_owned();
    strip(a) == strip(b)
}

/// The headers to send with a stored response: the origin's own headers (metadata removed,
/// original `Cache-Control` restored) with `Age` set to `age` seconds (§4, §5.1; capped at
/// 2^31).
pub fn unwrap_for_client(stored: &HeaderList, age: u64) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = origin_view(stored)
        .into_iter()
        .filter(|(n, _)| n != "age")
        .collect();
    out.push(("age".into(), age.min(DELTA_SECONDS_MAX).to_string()));
    out
}

/// Whether the visitor's own conditional request is satisfied by a response we are about
/// to send (§4.3.2, RFC 9110 §13.2.2): `If-None-Match` (weak comparison, `*` matches any
/// stored representation) takes precedence over `If-Modified-Since`. Only for GET/HEAD and
/// a 2xx response; answer with 304 and [`not_modified_headers`] when true.
pub fn client_not_modified(
    policy: &RequestPolicy,
    req_headers: &HeaderList,
    status: u16,
    res_headers: &HeaderList,
) -> bool {
    if !policy.cacheable() || !(200..300).contains(&status) {
        return false;
    }
    let req = Headers(req_headers);
    let res = Headers(res_headers);
    if let Some(inm) = req.joined("if-none-match") {
        if inm.trim() == "*" {
            return true;
        }
        return res
            .get("etag")
            .is_some_and(|etag| entity_tags(&inm).iter().any(|t| weak_eq(t, etag.trim())));
    }
    // RFC 9110 §13.1.3: ignore If-Modified-Since that is not a single valid date.
    let ims = req.get_all("if-modified-since");
    if let [ims] = ims.as_slice() {
        if let (Some(since), Some(lm)) = (
            parse_http_date(ims),
            res.get("last-modified").and_then(parse_http_date),
        ) {
            return lm <= since;
        }
    }
    false
}

/// Entity tags of an `If-None-Match` list (commas may appear inside the quotes).
fn entity_tags(list: &str) -> Vec<String> {
    let mut tags = Vec::new();
    let mut rest = list;
    while let Some(start) = rest.find('"') {
        let prefix_weak = rest.get(..start).is_some_and(|p| {
            p.trim_end_matches(|c: char| c == ',' || is_ows(c))
                .ends_with("W/")
        });
        let after = rest.get(start + 1..).unwrap_or("");
        let Some(end) = after.find('"') else { break };
        let opaque = after.get(..end).unwrap_or("");
        tags.push(format!(
            "{}\"{opaque}\"",
            if prefix_weak { "W/" } else { "" }
        ));
        rest = after.get(end + 1..).unwrap_or("");
    }
    tags
}

/// Headers of a 304 built from a full response (RFC 9110 §15.4.5): the fields a 200 would
/// carry that let the recipient update its cache, and nothing describing a body.
pub fn not_modified_headers(headers: &HeaderList) -> Vec<(String, String)> {
    const KEEP: &[&str] = &[
        "age",
        "cache-control",
        "content-location",
        "date",
        "etag",
        "expires",
        "last-modified",
        "vary",
    ];
    headers
        .iter()
        .filter(|(n, _)| KEEP.iter().any(|k| n.eq_ignore_ascii_case(k)))
        .cloned()
        .collect()
}

// ------------------------------------------------------------------------------------------
// Invalidation
// ------------------------------------------------------------------------------------------

/// Whether a response to `method` invalidates stored responses (§4.4): any method not known
/// to be safe (so unknown methods too), with a non-error (2xx or 3xx) status.
pub fn invalidates(method: &str, status: u16) -> bool {
    let safe = matches!(method, "GET" | "HEAD" | "OPTIONS" | "TRACE");
    !safe && (200..400).contains(&status)
}

/// The URLs (normalised, see [`normalise_url`]) to evict after an invalidating response:
/// the target URI, plus `Location` and `Content-Location` resolved against it when they
/// have the same origin (§4.4 forbids invalidating other origins).
///
/// Each URL is stored under one key per flag-variant set, and the Cache API can only delete
/// exact keys, so the glue deletes the keys for the variant sets it can name. Deletion is
/// per data centre: the Cache API is local.
pub fn invalidation_targets(request_url: &str, res_headers: &HeaderList) -> Vec<String> {
    let Some(base) = Url::parse(request_url) else {
        return vec![normalise_url(request_url)];
    };
    let mut out = vec![base.to_string()];
    let h = Headers(res_headers);
    for name in ["location", "content-location"] {
        let Some(target) = h.get(name).and_then(|v| base.resolve(v)) else {
            continue;
        };
        if target.scheme == base.scheme && target.authority == base.authority {
            let s = target.to_string();
            if !out.contains(&s) {
                out.push(s);
            }
        }
    }
    out
}

// ------------------------------------------------------------------------------------------
// Cache-Status (RFC 9211)
// ------------------------------------------------------------------------------------------

/// `detail` values we emit (RFC 9211 §2.8), as tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    Authorization,
    SetCookie,
    Private,
    NoStore,
    Method,
    Status,
    VaryStar,
    NoFreshness,
    StaleWhileRevalidate,
    StaleIfError,
    MaxStale,
    OnlyIfCached,
    BadEntry,
    Retried,
}

impl Detail {
    /// The token.
    pub fn as_str(self) -> &'static str {
        match self {
            Detail::Authorization => "authorization",
            Detail::SetCookie => "set-cookie",
            Detail::Private => "private",
            Detail::NoStore => "no-store",
            Detail::Method => "method",
            Detail::Status => "status",
            Detail::VaryStar => "vary-star",
            Detail::NoFreshness => "no-freshness",
            Detail::StaleWhileRevalidate => "stale-while-revalidate",
            Detail::StaleIfError => "stale-if-error",
            Detail::MaxStale => "max-stale",
            Detail::OnlyIfCached => "only-if-cached",
            Detail::BadEntry => "bad-entry",
            Detail::Retried => "retried",
        }
    }
}

/// One `Cache-Status` list member for this cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheStatus {
    /// Answered from the cache (`ttl` negative when stale).
    Hit { ttl: i64, detail: Option<Detail> },
    /// Forwarded to the origin.
    Forward {
        fwd: Fwd,
        /// Status the origin returned; `None` when it could not be reached.
        fwd_status: Option<u16>,
        /// Remaining freshness of the stored response, when one was stored.
        ttl: Option<i64>,
        stored: bool,
        detail: Option<Detail>,
    },
    /// Neither hit nor forwarded: the cache generated the response (`only-if-cached` 504).
    Generated { detail: Detail },
}

impl CacheStatus {
    /// The list member, e.g. `edgeflags; fwd=stale; fwd-status=304; ttl=60; stored`.
    pub fn header_value(&self) -> String {
        let mut s = String::from(CACHE_NAME);
        let detail = match self {
            CacheStatus::Hit { ttl, detail } => {
                let _ = write!(s, "; hit; ttl={ttl}");
                *detail
            }
            CacheStatus::Forward {
                fwd,
                fwd_status,
                ttl,
                stored,
                detail,
            } => {
                let _ = write!(s, "; fwd={}", fwd.as_str());
                if let Some(status) = fwd_status {
                    let _ = write!(s, "; fwd-status={status}");
                }
                if let Some(ttl) = ttl {
                    let _ = write!(s, "; ttl={ttl}");
                }
                if *stored {
                    s.push_str("; stored");
                }
                *detail
            }
            CacheStatus::Generated { detail } => Some(*detail),
        };
        if let Some(d) = detail {
            let _ = write!(s, "; detail={}", d.as_str());
        }
        s
    }

    /// The `Cache-Status` value with ours appended to an upstream one: members are in the
    /// order the caches handled the response, so the one nearest the visitor is last
    /// (RFC 9211 §2).
    pub fn append_to(&self, existing: Option<&str>) -> String {
        match existing.map(str::trim).filter(|e| !e.is_empty()) {
            Some(e) => format!("{e}, {}", self.header_value()),
            None => self.header_value(),
        }
    }
}

// ------------------------------------------------------------------------------------------
// URLs and cache keys
// ------------------------------------------------------------------------------------------

/// An absolute hierarchical URL split for normalisation.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Url {
    scheme: String,
    authority: String,
    path: String,
    query: Option<String>,
}

impl Url {
    /// Parses `scheme://authority/path?query#fragment`, normalising as [`normalise_url`]
    /// describes. `None` for anything else.
    fn parse(url: &str) -> Option<Url> {
        let without_fragment = url.split('#').next().unwrap_or("").trim();
        let (scheme, rest) = without_fragment.split_once("://")?;
        if !valid_scheme(scheme) {
            return None;
        }
        let scheme = scheme.to_ascii_lowercase();
        let end = rest.find(['/', '?', '\\']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at_checked(end)?;
        let (path, query) = match tail.split_once('?') {
            Some((p, q)) => (p, Some(q.to_owned())),
            None => (tail, None),
        };
        // WHATWG URL parsing treats `\` as `/` in special schemes; so do we, so a path can
        // never smuggle a segment separator past dot-segment removal.
        let path = if is_special(&scheme) {
            path.replace('\\', "/")
        } else {
            path.to_owned()
        };
        Some(Url {
            authority: normalise_authority(&scheme, authority),
            path: remove_dot_segments(&path),
            scheme,
            query,
        })
    }

    /// Resolves a reference against this URL (RFC 3986 §5.2).
    fn resolve(&self, reference: &str) -> Option<Url> {
        let r = reference.trim();
        if has_scheme(r) {
            return Url::parse(r);
        }
        if let Some(rest) = r.strip_prefix("//") {
            return Url::parse(&format!("{}://{rest}", self.scheme));
        }
        let r = r.split('#').next().unwrap_or("");
        let (path, query) = match r.split_once('?') {
            Some((p, q)) => (p, Some(q.to_owned())),
            None => (r, None),
        };
        let (path, query) = if path.is_empty() {
            (self.path.clone(), query.or_else(|| self.query.clone()))
        } else if path.starts_with('/') {
            (path.to_owned(), query)
        } else {
            let dir = self
                .path
                .rfind('/')
                .and_then(|i| self.path.get(..=i))
                .unwrap_or("/");
            (format!("{dir}{path}"), query)
        };
        Some(Url {
            scheme: self.scheme.clone(),
            authority: self.authority.clone(),
            path: remove_dot_segments(&path),
            query,
        })
    }
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}{}", self.scheme, self.authority, self.path)?;
        if let Some(q) = &self.query {
            write!(f, "?{q}")?;
        }
        Ok(())
    }
}

fn valid_scheme(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

fn has_scheme(r: &str) -> bool {
    r.find(':')
        .and_then(|i| r.get(..i))
        .is_some_and(valid_scheme)
}

fn is_special(scheme: &str) -> bool {
    matches!(scheme, "http" | "https" | "ws" | "wss" | "ftp" | "file")
}

fn default_port(scheme: &str) -> Option<u32> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        "ftp" => Some(21),
        _ => None,
    }
}

/// Lowercase host, no userinfo (a key must never hold credentials), no default or empty
/// port, numeric ports without leading zeros.
fn normalise_authority(scheme: &str, raw: &str) -> String {
    let hostport = raw.rsplit_once('@').map_or(raw, |(_, h)| h);
    let (host, port) = if hostport.starts_with('[') {
        match hostport.find(']') {
            Some(i) => {
                let host = hostport.get(..=i).unwrap_or(hostport);
                match hostport.get(i + 1..).unwrap_or("") {
                    "" => (host, None),
                    rest => match rest.strip_prefix(':') {
                        Some(p) => (host, Some(p)),
                        None => (hostport, None),
                    },
                }
            }
            None => (hostport, None),
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    let mut out = host.to_ascii_lowercase();
    let port = port.and_then(|p| {
        if p.is_empty() {
            return None;
        }
        match (p.bytes().all(|b| b.is_ascii_digit()), p.parse::<u32>()) {
            (true, Ok(n)) if Some(n) == default_port(scheme) => None,
            (true, Ok(n)) => Some(n.to_string()),
            _ => Some(p.to_owned()),
        }
    });
    if let Some(p) = port {
        out.push(':');
        out.push_str(&p);
    }
    out
}

/// RFC 3986 §5.2.4, treating `%2e` as `.` the way WHATWG URL parsing does, so the result
/// has no segment a later URL parser would resolve. Always starts with `/`.
fn remove_dot_segments(path: &str) -> String {
    let single = |s: &str| s == "." || s.eq_ignore_ascii_case("%2e");
    let double = |s: &str| {
        let l = s.to_ascii_lowercase();
        matches!(l.as_str(), ".." | ".%2e" | "%2e." | "%2e%2e")
    };
    let segments: Vec<&str> = path.split('/').collect();
    let body = if path.starts_with('/') {
        segments.get(1..).unwrap_or(&[])
    } else {
        segments.as_slice()
    };
    let mut out: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for (i, seg) in body.iter().enumerate() {
        let last = i + 1 == body.len();
        if single(seg) {
            trailing_slash = last;
        } else if double(seg) {
            out.pop();
            trailing_slash = last;
        } else {
            out.push(seg);
            trailing_slash = false;
        }
    }
    let mut s = String::from("/");
    s.push_str(&out.join("/"));
    if trailing_slash && !out.is_empty() {
        s.push('/');
    }
    s
}

/// Normalises a URL for use in a cache key (RFC 3986 §6.2.2–6.2.3): lowercase scheme and
/// host, no userinfo, no default port, no fragment, empty path as `/`, dot segments removed
/// (what WHATWG parsing already did to any URL a Worker receives).
///
/// Path and query are otherwise kept byte for byte. Query order is kept because origins may
/// give it meaning (`a=1&a=2`, signed URLs) and RFC 3986 treats reordered queries as
/// different resources; percent-encoding is left alone because decoding `%2F` or `%3F`
/// changes what the origin sees. A string that is not `scheme://...` is returned trimmed
/// and without fragment.
pub fn normalise_url(url: &str) -> String {
    match Url::parse(url) {
        Some(u) => u.to_string(),
        None => url.split('#').next().unwrap_or("").trim().to_owned(),
    }
}

/// The synthetic URL under which a response is stored: normalised URL plus the flag
/// variants that affect the route, for example
/// `https://edgeflags.cache/https/shop.example/v=checkout:new,theme:dark/cart?id=1`.
///
/// Layout `KEY_BASE/<scheme>/<authority>/v=<variants><path>[?<query>]`. The variants sit in
/// a path segment of their own rather than in the query, so no query a visitor can type
/// makes one variant's key equal another's; variants are sorted by flag (then value) and
/// every byte outside `A-Z a-z 0-9 - . _ ~` of a flag or value is percent-encoded, so `:`
/// and `,` separate unambiguously. Characters a URL parser would rewrite (`\`, spaces,
/// quotes, non-ASCII…) are percent-encoded so the Cache API stores the key as given. No
/// cookie or header ever goes in. The input is normalised again here, so raw URLs work too.
pub fn cache_key(normalised_url: &str, variants: &[(&str, &str)]) -> String {
    let mut pairs: Vec<(&str, &str)> = variants.to_vec();
    pairs.sort_unstable();
    pairs.dedup();
    let variants: Vec<String> = pairs
        .iter()
        .map(|(flag, value)| {
            format!(
                "{}:{}",
                pct_encode(flag, is_unreserved),
                pct_encode(value, is_unreserved)
            )
        })
        .collect();
    let variants = format!("v={}", variants.join(","));
    match Url::parse(normalised_url) {
        Some(u) => {
            let mut key = format!(
                "{KEY_BASE}/{}/{}/{variants}{}",
                u.scheme,
                authority_segment(&u.authority),
                pct_encode(&u.path, is_path_byte)
            );
            if let Some(q) = &u.query {
                key.push('?');
                key.push_str(&pct_encode(q, is_query_byte));
            }
            key
        }
        // Not a URL we understand: a namespace of its own (`!` is never a scheme).
        None => format!(
            "{KEY_BASE}/!/{variants}/?{}",
            pct_encode(&normalise_url(normalised_url), is_unreserved)
        ),
    }
}

/// The authority as one path segment: strict encoding (so `%`, `/`, `!` never appear raw),
/// and a `!` prefix for an empty or all-dot authority, which a URL parser would otherwise
/// drop or resolve as a dot segment.
fn authority_segment(authority: &str) -> String {
    let enc = pct_encode(authority, |b| {
        is_unreserved(b) || matches!(b, b':' | b'[' | b']')
    });
    if enc.bytes().all(|b| b == b'.') {
        format!("!{enc}")
    } else {
        enc
    }
}

fn pct_encode(s: &str, keep: impl Fn(u8) -> bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii() && keep(b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn is_sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

/// Path bytes kept as they are: RFC 3986 `pchar`, `/`, and `%` (existing escapes stay).
fn is_path_byte(b: u8) -> bool {
    is_unreserved(b) || is_sub_delim(b) || matches!(b, b':' | b'@' | b'/' | b'%')
}

/// Query bytes kept as they are; `'` is escaped because WHATWG parsing escapes it in the
/// query of special URLs, which would make the stored key differ from the one we built.
fn is_query_byte(b: u8) -> bool {
    (is_path_byte(b) || b == b'?') && b != b'\''
}

#[cfg(test)]
// The data-driven case tables are tuples of slices; naming each shape would hide the data.
#[allow(clippy::type_complexity)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// 2023-11-14T22:13:20Z, a whole second.
    const T0: u64 = 1_700_000_000_000;
    const SEC: u64 = 1000;

    fn hl(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn date(ms: u64) -> String {
        format_http_date(ms / 1000)
    }

    fn get() -> RequestPolicy {
        request_policy("GET", &[])
    }

    fn req_policy(cc: &str) -> RequestPolicy {
        request_policy("GET", &hl(&[("cache-control", cc)]))
    }

    #[test]
    fn a_stable_retry_answer_is_never_stored_under_the_chosen_variant() {
        let res = hl(&[("cache-control", "max-age=60"), ("date", &date(T0))]);
        let fresh = storable_answer(&get(), &[], 200, &res, T0, T0, false);
        assert!(fresh.is_ok(), "{fresh:?}");
        assert_eq!(
            storable_answer(&get(), &[], 200, &res, T0, T0, true),
            Err(Bypass::Retried)
        );
        let head = request_policy("HEAD", &[]);
        assert_eq!(
            storable_answer(&head, &[], 200, &res, T0, T0, true),
            Err(Bypass::Method)
        );
        let status = Lookup::Miss {
            fwd: Fwd::UriMiss,
            detail: None,
        }
        .forwarded_status(Some(200), Some(&Err(Bypass::Retried)));
        assert_eq!(
            status.header_value(),
            "edgeflags; fwd=uri-miss; fwd-status=200; detail=retried"
        );
    }

    /// Stores a 200 with `res` (plus `Date: T0` unless given) for a plain GET at T0.
    fn stored(res: &[(&str, &str)]) -> Vec<(String, String)> {
        stored_for(&[], 200, res)
    }

    fn stored_for(
        req: &[(&str, &str)],
        status: u16,
        res: &[(&str, &str)],
    ) -> Vec<(String, String)> {
        let mut res = hl(res);
        if !res.iter().any(|(n, _)| n == "date") {
            res.push(("date".into(), date(T0)));
        }
        let req = hl(req);
        storable(&request_policy("GET", &req), &req, status, &res, T0, T0)
            .unwrap()
            .headers
    }

    fn at(entry: &HeaderList, policy: &RequestPolicy, req: &[(&str, &str)], now: u64) -> Lookup {
        lookup(policy, &hl(req), Some(entry), now)
    }

    fn reval(fwd: Fwd) -> impl Fn(&Lookup) -> bool {
        move |l| matches!(l, Lookup::Revalidate { fwd: f, .. } if *f == fwd)
    }

    // --- Cache-Control parsing ------------------------------------------------------------

    #[test]
    fn delta_seconds_directives_parse_per_rfc_9111_and_invalid_means_zero() {
        let cases: &[(&[&str], Option<u64>)] = &[
            (&["max-age=60"], Some(60)),
            (&["MaX-AgE=60"], Some(60)),
            (&["max-age=\"60\""], Some(60)),
            (&["max-age=003600"], Some(3600)),
            (&["foobar, max-age=3600"], Some(3600)),
            (&["max-age='60'"], Some(0)),
            (&["max-age =60"], Some(0)),
            (&["max-age= 60"], Some(0)),
            (&["max-age=3600.0"], Some(0)),
            (&["max-age=a100"], Some(0)),
            (&["max-age=100a"], Some(0)),
            (&["max-age=-100"], Some(0)),
            (&["max-age"], Some(0)),
            (&["max-age=\"60"], Some(0)),
            (&["max-age=60 junk"], Some(0)),
            (&["max-age=2147483648"], Some(DELTA_SECONDS_MAX)),
            (
                &["max-age=99999999999999999999999"],
                Some(DELTA_SECONDS_MAX),
            ),
            (&["extension=\"max-age=100\", max-age=1"], Some(1)),
            (&["max-age=1, extension=\"max-age=100\""], Some(1)),
            (&["extension=\"max-age=100\", max-age=\"1\""], Some(1)),
            // Duplicates: the first occurrence wins, on one line or across lines.
            (&["max-age=1800, max-age=1"], Some(1800)),
            (&["max-age=1, max-age=1800"], Some(1)),
            (&["max-age=1800", "max-age=1"], Some(1800)),
            (&["max-age=abc, max-age=1800"], Some(0)),
            (&["no-cache"], None),
            (&[], None),
            (&[",,, ,"], None),
        ];
        for (lines, want) in cases {
            let d = Directives::parse(lines.iter().copied());
            assert_eq!(d.seconds("max-age"), *want, "{lines:?}");
        }
    }

    #[test]
    fn boolean_directives_count_anywhere_and_case_insensitively() {
        let d = Directives::parse(["Public, MAX-AGE=5", "No-StOrE"]);
        assert!(d.has("public") && d.has("no-store") && d.has("max-age"));
        assert!(!d.has("private"));
        // An element with a malformed argument is still present (most restrictive reading).
        assert!(Directives::parse(["no-store =1"]).has("no-store"));
    }

    #[test]
    fn quoted_arguments_keep_commas_and_unescape() {
        let d = Directives::parse([r#"foo="a\"b,c", no-cache="Set-Cookie, X-Foo", private"#]);
        assert_eq!(
            d.first("foo").and_then(|d| d.arg.as_deref()),
            Some("a\"b,c")
        );
        assert_eq!(
            d.scope("no-cache"),
            Scope::Fields(vec!["set-cookie".into(), "x-foo".into()])
        );
        assert_eq!(d.scope("private"), Scope::Whole);
        assert_eq!(d.scope("must-revalidate"), Scope::Absent);
    }

    #[test]
    fn field_list_scope_is_whole_when_any_occurrence_is_unqualified_empty_or_malformed() {
        let cases: &[(&[&str], Scope)] = &[
            (&["no-cache=\"a\""], Scope::Fields(vec!["a".into()])),
            (
                &["no-cache=\"a\"", "no-cache=b"],
                Scope::Fields(vec!["a".into(), "b".into()]),
            ),
            (&["no-cache=\"a\", no-cache"], Scope::Whole),
            (&["no-cache=\"\""], Scope::Whole),
            (&["no-cache=\"a"], Scope::Whole),
            (&["no-cache =\"a\""], Scope::Whole),
            (&["max-age=1"], Scope::Absent),
        ];
        for (lines, want) in cases {
            assert_eq!(
                Directives::parse(lines.iter().copied()).scope("no-cache"),
                *want,
                "{lines:?}"
            );
        }
    }

    // --- Dates and Age --------------------------------------------------------------------

    #[test]
    fn http_dates_parse_in_all_three_formats_and_tolerate_common_mistakes() {
        const NOV_1994: u64 = 784_111_777;
        const AUG_2050: u64 = 2_544_400_878;
        let cases: &[(&str, Option<u64>)] = &[
            ("Sun, 06 Nov 1994 08:49:37 GMT", Some(NOV_1994)),
            ("Sunday, 06-Nov-94 08:49:37 GMT", Some(NOV_1994)),
            ("Sun Nov  6 08:49:37 1994", Some(NOV_1994)),
            ("Thu, 18 Aug 2050 02:01:18 GMT", Some(AUG_2050)),
            ("THU, 18 AUG 2050 02:01:18 gMT", Some(AUG_2050)),
            ("Thu, 18 Aug 2050 02:01:18 UTC", Some(AUG_2050)),
            ("Thu, 18 Aug 50 02:01:18 GMT", Some(AUG_2050)),
            ("Thu 18 Aug 2050 02:01:18 GMT", Some(AUG_2050)),
            ("Thu, 18  Aug  2050 02:01:18 GMT", Some(AUG_2050)),
            ("Thu, 18-Aug-2050 02:01:18 GMT", Some(AUG_2050)),
            ("Thu, 18 Aug 2050 2:01:18 GMT", Some(AUG_2050)),
            ("  Thu, 18 Aug 2050 02:01:18 GMT  ", Some(AUG_2050)),
            ("Thu, 01 Jan 1970 00:00:00 GMT", Some(0)),
            ("Mon, 01 Jan 1900 00:00:00 GMT", Some(0)),
            ("Thu, 29 Feb 2024 00:00:00 GMT", Some(1_709_164_800)),
            ("Fri, 31 Dec 9999 23:59:59 GMT", Some(MAX_HTTP_DATE)),
            ("0", None),
            ("", None),
            ("-1", None),
            ("Thu, 18 Aug 2050 02.01.18 GMT", None),
            ("Thu, 18 Aug 2050 02:01:18 PST", None),
            ("Thu, 18 Aug 2050 02:01:18", None),
            ("Thu, 29 Feb 2023 00:00:00 GMT", None),
            ("Thu, 31 Apr 2050 00:00:00 GMT", None),
            ("Thu, 00 Aug 2050 02:01:18 GMT", None),
            ("Thu, 18 Aug 2050 24:00:00 GMT", None),
            ("Thu, 18 Aug 2050 23:60:00 GMT", None),
            ("Thu, 18 Foo 2050 02:01:18 GMT", None),
            ("Fun, 18 Aug 2050 02:01:18 GMT", None),
            ("Thu, 18 Aug 205 02:01:18 GMT", None),
            ("Thu, 18 Aug +2050 02:01:18 GMT", None),
            ("Thu, 118 Aug 2050 02:01:18 GMT", None),
        ];
        for (s, want) in cases {
            assert_eq!(parse_http_date(s), *want, "{s:?}");
        }
    }

    #[test]
    fn http_dates_format_as_imf_fixdate() {
        let cases: &[(u64, &str)] = &[
            (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
            (784_111_777, "Sun, 06 Nov 1994 08:49:37 GMT"),
            (1_709_164_800, "Thu, 29 Feb 2024 00:00:00 GMT"),
            (u64::MAX, "Fri, 31 Dec 9999 23:59:59 GMT"),
        ];
        for (secs, want) in cases {
            assert_eq!(format_http_date(*secs), *want);
            assert_eq!(parse_http_date(want), Some((*secs).min(MAX_HTTP_DATE)));
        }
    }

    #[test]
    fn age_uses_the_first_member_and_ignores_invalid_values() {
        let cases: &[(&[(&str, &str)], Option<u64>)] = &[
            (&[("age", "15")], Some(15)),
            (&[("age", " 15 ")], Some(15)),
            (&[("age", "abc")], None),
            (&[("age", "-7200")], None),
            (&[("age", "7200.0")], None),
            (&[("age", "7200,0")], Some(7200)),
            (&[("age", "0,7200")], Some(0)),
            (&[("age", "7200"), ("age", "0")], Some(7200)),
            (&[("age", "99999999999")], Some(DELTA_SECONDS_MAX)),
            (&[], None),
        ];
        for (h, want) in cases {
            assert_eq!(parse_age(&hl(h)), *want, "{h:?}");
        }
    }

    // --- Request side ---------------------------------------------------------------------

    #[test]
    fn request_directives_are_read_from_cache_control_and_pragma() {
        let p = |m: &str, h: &[(&str, &str)]| request_policy(m, &hl(h));
        assert_eq!(p("GET", &[]).method, MethodClass::Get);
        assert_eq!(p("HEAD", &[]).method, MethodClass::Head);
        for m in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "get"] {
            assert!(!p(m, &[]).cacheable(), "{m}");
        }
        let r = p(
            "GET",
            &[
                (
                    "cache-control",
                    "no-store, no-cache, max-age=5, min-fresh=7",
                ),
                (
                    "cache-control",
                    "only-if-cached, stale-if-error=60, max-stale",
                ),
                ("authorization", "Bearer x"),
            ],
        );
        assert!(r.no_store && r.no_cache && r.only_if_cached && r.authorization);
        assert_eq!(
            (r.max_age, r.min_fresh, r.stale_if_error, r.max_stale),
            (Some(5), Some(7), Some(60), Some(MaxStale::Any))
        );
        assert_eq!(
            p("GET", &[("cache-control", "max-stale=30")]).max_stale,
            Some(MaxStale::Secs(30))
        );
        assert_eq!(
            p("GET", &[("cache-control", "max-stale=x")]).max_stale,
            Some(MaxStale::Secs(0))
        );
        assert_eq!(p("GET", &[("cache-control", "max-age=x")]).max_age, Some(0));
        assert!(p("GET", &[("pragma", "no-cache")]).no_cache);
        assert!(
            !p(
                "GET",
                &[("pragma", "no-cache"), ("cache-control", "max-age=5")]
            )
            .no_cache
        );
        assert_eq!(
            p("GET", &[]),
            RequestPolicy {
                method: MethodClass::Get,
                no_store: false,
                no_cache: false,
                max_age: None,
                max_stale: None,
                min_fresh: None,
                only_if_cached: false,
                stale_if_error: None,
                authorization: false,
            }
        );
    }

    // --- Storability ----------------------------------------------------------------------

    #[test]
    fn the_origin_age_is_stored_out_of_the_cache_apis_sight_and_still_counts() {
        // 3000 s old, fresh for 600 more: the Cache API must not see `Age` (it would
        // subtract it from the 600 s retention again and drop the entry at once).
        let entry = stored_for(
            &[],
            200,
            &[("cache-control", "max-age=3600"), ("age", "3000")],
        );
        let h = Headers(&entry);
        assert!(!h.has("age"));
        assert_eq!(h.get(META_AGE), Some("3000"));
        assert_eq!(h.get("cache-control"), Some("s-maxage=600"));
        assert_eq!(
            at(&entry, &get(), &[], T0 + 100 * SEC),
            Lookup::Fresh {
                age: 3100,
                ttl: 500
            }
        );
        assert!(reval(Fwd::Stale)(&at(&entry, &get(), &[], T0 + 700 * SEC)));
        let client = unwrap_for_client(&entry, 3100);
        assert_eq!(Headers(&client).get_all("age"), vec!["3100"]);
        assert!(!Headers(&client).has(META_AGE));
        // The Cache API adds its own `Age` to what it matches: never counted again.
        let mut matched = entry.clone();
        matched.push(("age".into(), "100".into()));
        let client = unwrap_for_client(&matched, 3100);
        assert_eq!(Headers(&client).get_all("age"), vec!["3100"]);
        assert_eq!(
            at(&matched, &get(), &[], T0 + 100 * SEC),
            Lookup::Fresh {
                age: 3100,
                ttl: 500
            }
        );
    }

    #[test]
    fn surrogate_control_addressed_to_us_overrides_cache_control() {
        let plan = |res: &[(&str, &str)]| {
            let mut res = hl(res);
            res.push(("date".into(), date(T0)));
            storable(&get(), &[], 200, &res, T0, T0)
        };
        // A surrogate max-age wins over Cache-Control, Expires and even no-store there.
        let p = plan(&[
            ("cache-control", "max-age=3600"),
            ("surrogate-control", "max-age=1"),
        ])
        .unwrap();
        assert_eq!(p.freshness_lifetime, 1);
        let p = plan(&[
            ("cache-control", "no-store"),
            ("surrogate-control", "max-age=10000;edgeflags"),
        ])
        .unwrap();
        assert_eq!(p.freshness_lifetime, 10000);
        assert_eq!(
            plan(&[
                ("surrogate-control", "max-age=0"),
                ("expires", &date(T0 + 10_000 * SEC)),
            ])
            .map(|p| p.freshness_lifetime),
            Err(Bypass::NoFreshness)
        );
        assert_eq!(
            plan(&[
                ("cache-control", "max-age=10000"),
                ("surrogate-control", "no-store"),
            ]),
            Err(Bypass::NoStore)
        );
        // Directives for another surrogate, or none that decide storage: Cache-Control rules.
        assert_eq!(
            plan(&[("surrogate-control", "max-age=3600;not-for-you")]),
            Err(Bypass::NoFreshness)
        );
        let p = plan(&[
            ("cache-control", "max-age=10000"),
            ("surrogate-control", "foo"),
        ])
        .unwrap();
        assert_eq!(p.freshness_lifetime, 10000);
        let p = plan(&[("surrogate-control", "FOO, MaX-aGe=3600;EdgeFlags")]).unwrap();
        assert_eq!(p.freshness_lifetime, 3600);
        // Stored entries keep it, so reuse follows it too (and an old Age makes it stale).
        let entry = stored_for(
            &[],
            200,
            &[
                ("cache-control", "max-age=3600"),
                ("surrogate-control", "max-age=1"),
            ],
        );
        assert!(reval(Fwd::Stale)(&at(&entry, &get(), &[], T0 + 5 * SEC)));
        let aged = plan(&[("surrogate-control", "max-age=3600"), ("age", "7200")]);
        assert!(aged.is_err_and(|b| b == Bypass::NoFreshness));
    }

    #[test]
    fn the_edge_announces_itself_as_a_surrogate_after_any_in_front() {
        assert_eq!(surrogate_capability(None), "edgeflags=\"Surrogate/1.0\"");
        assert_eq!(
            surrogate_capability(Some(" ")),
            "edgeflags=\"Surrogate/1.0\""
        );
        assert_eq!(
            surrogate_capability(Some("abc=\"Surrogate/1.0\"")),
            "abc=\"Surrogate/1.0\", edgeflags=\"Surrogate/1.0\""
        );
    }

    #[test]
    fn storability_follows_rfc_9111_section_3_for_a_shared_cache() {
        type Case<'a> = (
            &'a str,
            &'a str,
            &'a [(&'a str, &'a str)],
            u16,
            &'a [(&'a str, &'a str)],
            Result<(), Bypass>,
        );
        let lm = date(T0 - 86_400 * SEC);
        let lm = lm.as_str();
        let cases: &[Case<'_>] = &[
            (
                "explicit max-age",
                "GET",
                &[],
                200,
                &[("cache-control", "max-age=60")],
                Ok(()),
            ),
            (
                "POST",
                "POST",
                &[],
                200,
                &[("cache-control", "max-age=60")],
                Err(Bypass::Method),
            ),
            (
                "HEAD has no body",
                "HEAD",
                &[],
                200,
                &[("cache-control", "max-age=60")],
                Err(Bypass::Method),
            ),
            (
                "request no-store",
                "GET",
                &[("cache-control", "no-store")],
                200,
                &[("cache-control", "max-age=60")],
                Err(Bypass::RequestNoStore),
            ),
            (
                "206",
                "GET",
                &[],
                206,
                &[("cache-control", "max-age=60")],
                Err(Bypass::Status),
            ),
            (
                "304",
                "GET",
                &[],
                304,
                &[("cache-control", "max-age=60")],
                Err(Bypass::Status),
            ),
            (
                "1xx",
                "GET",
                &[],
                101,
                &[("cache-control", "max-age=60")],
                Err(Bypass::Status),
            ),
            (
                "unknown status, explicit",
                "GET",
                &[],
                299,
                &[("cache-control", "max-age=60")],
                Ok(()),
            ),
            (
                "unknown status, must-understand",
                "GET",
                &[],
                299,
                &[("cache-control", "max-age=60, must-understand")],
                Err(Bypass::Status),
            ),
            (
                "must-understand overrides no-store",
                "GET",
                &[],
                200,
                &[("cache-control", "max-age=60, must-understand, no-store")],
                Ok(()),
            ),
            (
                "no-store",
                "GET",
                &[],
                200,
                &[("cache-control", "max-age=60, No-Store")],
                Err(Bypass::NoStore),
            ),
            (
                "private",
                "GET",
                &[],
                200,
                &[("cache-control", "private, max-age=60")],
                Err(Bypass::Private),
            ),
            (
                "private with fields",
                "GET",
                &[],
                200,
                &[("cache-control", "private=\"x-user\", max-age=60")],
                Ok(()),
            ),
            (
                "set-cookie",
                "GET",
                &[],
                200,
                &[
                    ("cache-control", "public, max-age=60"),
                    ("set-cookie", "a=b"),
                ],
                Err(Bypass::SetCookie),
            ),
            (
                "set-cookie2",
                "GET",
                &[],
                200,
                &[("cache-control", "max-age=60"), ("set-cookie2", "a=b")],
                Err(Bypass::SetCookie),
            ),
            (
                "vary star",
                "GET",
                &[],
                200,
                &[("cache-control", "max-age=60"), ("vary", "*")],
                Err(Bypass::VaryStar),
            ),
            (
                "vary foo, star",
                "GET",
                &[],
                200,
                &[("cache-control", "max-age=60"), ("vary", "Foo, *")],
                Err(Bypass::VaryStar),
            ),
            (
                "vary star on a second line",
                "GET",
                &[],
                200,
                &[("cache-control", "max-age=60"), ("vary", ""), ("vary", "*")],
                Err(Bypass::VaryStar),
            ),
            (
                "authorization, Expires only",
                "GET",
                &[("authorization", "x")],
                200,
                &[("expires", "Fri, 31 Dec 9999 23:59:59 GMT")],
                Err(Bypass::Authorization),
            ),
            (
                "authorization, public",
                "GET",
                &[("authorization", "x")],
                200,
                &[("cache-control", "max-age=60, public")],
                Ok(()),
            ),
            (
                "authorization, s-maxage",
                "GET",
                &[("authorization", "x")],
                200,
                &[("cache-control", "s-maxage=60")],
                Ok(()),
            ),
            (
                "authorization, must-revalidate",
                "GET",
                &[("authorization", "x")],
                200,
                &[("cache-control", "max-age=60, must-revalidate")],
                Ok(()),
            ),
            (
                "freshness-none",
                "GET",
                &[],
                200,
                &[],
                Err(Bypass::NoFreshness),
            ),
            (
                "validator only",
                "GET",
                &[],
                200,
                &[("etag", "\"a\"")],
                Ok(()),
            ),
            (
                "not heuristically cacheable, validator only",
                "GET",
                &[],
                500,
                &[("etag", "\"a\"")],
                Err(Bypass::NoFreshness),
            ),
            (
                "max-age=0, no validator",
                "GET",
                &[],
                200,
                &[("cache-control", "max-age=0")],
                Err(Bypass::NoFreshness),
            ),
            (
                "max-age=0 with swr",
                "GET",
                &[],
                200,
                &[("cache-control", "max-age=0, stale-while-revalidate=60")],
                Ok(()),
            ),
            (
                "no-cache without validator is useless",
                "GET",
                &[],
                200,
                &[("cache-control", "no-cache, max-age=600")],
                Err(Bypass::NoFreshness),
            ),
            (
                "no-cache with ETag",
                "GET",
                &[],
                200,
                &[("cache-control", "no-cache"), ("etag", "\"a\"")],
                Ok(()),
            ),
            (
                "already older than max-age",
                "GET",
                &[],
                200,
                &[("cache-control", "max-age=10"), ("age", "15")],
                Err(Bypass::NoFreshness),
            ),
            (
                "redirect with explicit freshness",
                "GET",
                &[],
                302,
                &[("cache-control", "max-age=60")],
                Ok(()),
            ),
            (
                "heuristic 404",
                "GET",
                &[],
                404,
                &[("last-modified", lm)],
                Ok(()),
            ),
            (
                "201 is not heuristically cacheable",
                "GET",
                &[],
                201,
                &[("last-modified", lm)],
                Err(Bypass::NoFreshness),
            ),
            (
                "599 without public",
                "GET",
                &[],
                599,
                &[("last-modified", lm)],
                Err(Bypass::NoFreshness),
            ),
            (
                "599 with public",
                "GET",
                &[],
                599,
                &[("last-modified", lm), ("cache-control", "public")],
                Ok(()),
            ),
        ];
        for (name, method, req, status, res, want) in cases {
            let req = hl(req);
            let mut res = hl(res);
            res.push(("date".into(), date(T0)));
            let got =
                storable(&request_policy(method, &req), &req, *status, &res, T0, T0).map(|_| ());
            assert_eq!(got, *want, "{name}");
        }
    }

    #[test]
    fn freshness_lifetime_prefers_s_maxage_then_max_age_then_expires_then_heuristic() {
        let in_1h = date(T0 + 3600 * SEC);
        let lm_1d = date(T0 - 86_400 * SEC);
        let lm_30d = date(T0 - 30 * 86_400 * SEC);
        let lm_future = date(T0 + 60 * SEC);
        let cases: &[(&str, u16, Vec<(&str, &str)>, u64, bool)] = &[
            (
                "s-maxage wins over longer max-age",
                200,
                vec![("cache-control", "max-age=3600, s-maxage=1")],
                1,
                false,
            ),
            (
                "s-maxage wins over shorter max-age",
                200,
                vec![("cache-control", "max-age=1, s-maxage=3600")],
                3600,
                false,
            ),
            (
                "s-maxage on another line",
                200,
                vec![
                    ("cache-control", "max-age=3600"),
                    ("cache-control", "s-maxage=1"),
                ],
                1,
                false,
            ),
            (
                "max-age wins over Expires",
                200,
                vec![("cache-control", "max-age=60"), ("expires", &in_1h)],
                60,
                false,
            ),
            (
                "max-age wins over invalid Expires",
                200,
                vec![("cache-control", "max-age=60"), ("expires", "0")],
                60,
                false,
            ),
            (
                "Expires minus Date",
                200,
                vec![("expires", &in_1h)],
                3600,
                false,
            ),
            (
                "invalid Expires is already expired",
                200,
                vec![("expires", "0"), ("etag", "\"a\"")],
                0,
                false,
            ),
            (
                "past Expires",
                200,
                vec![
                    ("expires", "Thu, 01 Jan 1970 00:00:00 GMT"),
                    ("etag", "\"a\""),
                ],
                0,
                false,
            ),
            (
                "heuristic: 10% of Date - Last-Modified",
                200,
                vec![("last-modified", &lm_1d)],
                8640,
                true,
            ),
            (
                "heuristic is capped at a day",
                200,
                vec![("last-modified", &lm_30d)],
                HEURISTIC_CAP_SECS,
                true,
            ),
            (
                "heuristic with Last-Modified after Date is zero",
                200,
                vec![("last-modified", &lm_future)],
                0,
                true,
            ),
            (
                "no heuristic over explicit max-age=0",
                200,
                vec![
                    ("cache-control", "max-age=0, stale-while-revalidate=5"),
                    ("last-modified", &lm_1d),
                ],
                0,
                false,
            ),
        ];
        for (name, status, res, lifetime, heuristic) in cases {
            let mut res = hl(res);
            res.push(("date".into(), date(T0)));
            let plan = storable(&get(), &[], *status, &res, T0, T0).unwrap();
            assert_eq!(
                (plan.freshness_lifetime, plan.heuristic),
                (*lifetime, *heuristic),
                "{name}"
            );
        }
    }

    #[test]
    fn expires_without_date_counts_from_the_response_time() {
        let res = hl(&[("expires", &date(T0 + 100 * SEC))]);
        let plan = storable(&get(), &[], 200, &res, T0 - 5 * SEC, T0).unwrap();
        assert_eq!(plan.freshness_lifetime, 100);
        // The missing Date is added (RFC 9110 §6.6.1).
        assert_eq!(Headers(&plan.headers).get("date"), Some(date(T0).as_str()));
    }

    #[test]
    fn current_age_follows_rfc_9111_section_4_2_3() {
        // (Date, Age header, request_time, response_time, now) -> age in seconds
        let cases: &[(&str, u64, Option<&str>, u64, u64, u64, u64)] = &[
            ("just received", T0, None, T0, T0, T0, 0),
            ("resident time", T0, None, T0, T0, T0 + 30 * SEC, 30),
            (
                "apparent age from an old Date",
                T0 - 20 * SEC,
                None,
                T0,
                T0,
                T0,
                20,
            ),
            (
                "Age header plus response delay",
                T0,
                Some("10"),
                T0 - 3 * SEC,
                T0,
                T0,
                13,
            ),
            (
                "larger of apparent and corrected",
                T0 - 50 * SEC,
                Some("10"),
                T0,
                T0,
                T0 + SEC,
                51,
            ),
            (
                "Date in the future is not negative",
                T0 + 99 * SEC,
                None,
                T0,
                T0,
                T0,
                0,
            ),
            (
                "response before request is no delay",
                T0,
                None,
                T0 + 9 * SEC,
                T0,
                T0,
                0,
            ),
            (
                "now before response time is no resident time",
                T0,
                None,
                T0,
                T0,
                T0 - 9 * SEC,
                0,
            ),
        ];
        for (name, d, age, req_ms, res_ms, now, want) in cases {
            let mut res = hl(&[("cache-control", "max-age=3600"), ("date", &date(*d))]);
            if let Some(a) = age {
                res.push(("age".into(), (*a).into()));
            }
            let plan = storable(&get(), &[], 200, &res, *req_ms, *res_ms).unwrap();
            assert_eq!(current_age(&plan.headers, *now), Some(*want), "{name}");
        }
        assert_eq!(current_age(&hl(&[("date", "x")]), T0), None);
    }

    #[test]
    fn storage_ttl_is_remaining_freshness_plus_the_longest_stale_window() {
        let cases: &[(&str, &[(&str, &str)], u64)] = &[
            ("max-age", &[("cache-control", "max-age=60")], 60),
            (
                "swr and sie",
                &[(
                    "cache-control",
                    "max-age=60, stale-while-revalidate=30, stale-if-error=300",
                )],
                360,
            ),
            (
                "validator retention",
                &[("cache-control", "max-age=60"), ("etag", "\"a\"")],
                60 + VALIDATOR_RETENTION_SECS,
            ),
            (
                "minus the age it arrived with",
                &[("cache-control", "max-age=60"), ("age", "30")],
                30,
            ),
            (
                "must-revalidate drops stale windows",
                &[(
                    "cache-control",
                    "max-age=60, must-revalidate, stale-while-revalidate=30, stale-if-error=300",
                )],
                60,
            ),
            (
                "s-maxage drops stale windows",
                &[("cache-control", "s-maxage=60, stale-if-error=300")],
                60,
            ),
            (
                "capped",
                &[("cache-control", "max-age=2147483648")],
                MAX_STORAGE_TTL_SECS,
            ),
        ];
        for (name, res, want) in cases {
            let mut res = hl(res);
            res.push(("date".into(), date(T0)));
            let plan = storable(&get(), &[], 200, &res, T0, T0).unwrap();
            assert_eq!(plan.storage_ttl, *want, "{name}");
            assert_eq!(
                Headers(&plan.headers).get("cache-control"),
                Some(format!("s-maxage={want}").as_str()),
                "{name}"
            );
        }
    }

    #[test]
    fn stored_headers_are_wrapped_and_unwrap_restores_the_origin_view() {
        let res = hl(&[
            ("Content-Type", "text/html"),
            ("cache-control", "max-age=60, no-cache=\"x-secret\""),
            ("cache-control", "stale-if-error=30"),
            ("connection", "x-hop"),
            ("x-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "s"),
            ("x-ef-status", "forged"),
            ("x-ef-vary", "forged"),
            ("etag", "\"v1\""),
            ("age", "5"),
            ("vary", "Accept-Language"),
        ]);
        let req = hl(&[("accept-language", "de"), ("cookie", "session=abc")]);
        let plan = storable(&get(), &req, 200, &res, T0 - SEC, T0).unwrap();
        let h = Headers(&plan.headers);
        for gone in ["connection", "x-hop", "keep-alive", "x-secret"] {
            assert!(!h.has(gone), "{gone} must not be stored");
        }
        assert_eq!(h.get(META_FORMAT), Some("1"));
        assert_eq!(h.get(META_STATUS), Some("200"));
        assert_eq!(h.get(META_STORED_AT), Some(T0.to_string().as_str()));
        assert_eq!(
            h.get(META_REQUEST_TIME),
            Some((T0 - SEC).to_string().as_str())
        );
        assert_eq!(h.get(META_RESPONSE_TIME), Some(T0.to_string().as_str()));
        assert_eq!(h.get_all("x-ef-status").len(), 1);
        let vary = h.get(META_VARY).unwrap();
        assert_eq!(vary.len(), 64);
        assert!(
            !plan.headers.iter().any(|(_, v)| v.contains("session")),
            "no cookie stored"
        );
        assert_eq!(
            h.get_all(META_CACHE_CONTROL),
            vec!["max-age=60, no-cache=\"x-secret\"", "stale-if-error=30"]
        );
        assert_eq!(h.get("content-type"), Some("text/html"));
        assert_eq!(h.get("date"), Some(date(T0).as_str()));

        let out = unwrap_for_client(&plan.headers, 42);
        let o = Headers(&out);
        assert!(!out.iter().any(|(n, _)| n.starts_with(META_PREFIX)));
        assert_eq!(
            o.get_all("cache-control"),
            vec!["max-age=60, no-cache=\"x-secret\"", "stale-if-error=30"]
        );
        assert_eq!(o.get_all("age"), vec!["42"]);
        assert_eq!(o.get("etag"), Some("\"v1\""));
        assert_eq!(
            Headers(&unwrap_for_client(&plan.headers, u64::MAX)).get("age"),
            Some("2147483648")
        );
    }

    // --- Lookup ---------------------------------------------------------------------------

    #[test]
    fn lookup_decides_by_freshness_stale_windows_and_request_directives() {
        type Check = fn(&Lookup) -> bool;
        let cases: &[(&str, &[(&str, &str)], &str, u64, Check)] = &[
            (
                "fresh is a hit",
                &[("cache-control", "max-age=60")],
                "",
                30,
                |l| *l == Lookup::Fresh { age: 30, ttl: 30 },
            ),
            (
                "stale revalidates",
                &[("cache-control", "max-age=60")],
                "",
                61,
                |l| {
                    matches!(
                        l,
                        Lookup::Revalidate {
                            fwd: Fwd::Stale,
                            ..
                        }
                    )
                },
            ),
            (
                "expiry instant is stale",
                &[("cache-control", "max-age=60")],
                "",
                60,
                |l| matches!(l, Lookup::Revalidate { .. }),
            ),
            (
                "within swr serves stale",
                &[("cache-control", "max-age=60, stale-while-revalidate=30")],
                "",
                80,
                |l| {
                    matches!(
                        l,
                        Lookup::StaleWhileRevalidate {
                            age: 80,
                            ttl: -20,
                            ..
                        }
                    )
                },
            ),
            (
                "beyond swr revalidates",
                &[("cache-control", "max-age=60, stale-while-revalidate=30")],
                "",
                91,
                |l| {
                    matches!(
                        l,
                        Lookup::Revalidate {
                            fwd: Fwd::Stale,
                            ..
                        }
                    )
                },
            ),
            (
                "must-revalidate forbids swr",
                &[(
                    "cache-control",
                    "max-age=60, stale-while-revalidate=30, must-revalidate",
                )],
                "",
                61,
                |l| matches!(l, Lookup::Revalidate { .. }),
            ),
            (
                "proxy-revalidate forbids swr",
                &[(
                    "cache-control",
                    "max-age=60, stale-while-revalidate=30, proxy-revalidate",
                )],
                "",
                61,
                |l| matches!(l, Lookup::Revalidate { .. }),
            ),
            (
                "s-maxage forbids swr",
                &[("cache-control", "s-maxage=60, stale-while-revalidate=30")],
                "",
                61,
                |l| matches!(l, Lookup::Revalidate { .. }),
            ),
            (
                "response no-cache always revalidates",
                &[
                    ("cache-control", "max-age=600, no-cache"),
                    ("etag", "\"a\""),
                ],
                "",
                1,
                |l| {
                    matches!(
                        l,
                        Lookup::Revalidate {
                            fwd: Fwd::Stale,
                            ..
                        }
                    )
                },
            ),
            (
                "no-cache field list does not",
                &[("cache-control", "max-age=600, no-cache=\"x\"")],
                "",
                1,
                |l| matches!(l, Lookup::Fresh { .. }),
            ),
            (
                "request no-cache revalidates fresh",
                &[("cache-control", "max-age=600")],
                "no-cache",
                1,
                |l| {
                    matches!(
                        l,
                        Lookup::Revalidate {
                            fwd: Fwd::Request,
                            ..
                        }
                    )
                },
            ),
            (
                "request max-age=0 revalidates",
                &[("cache-control", "max-age=600")],
                "max-age=0",
                1,
                |l| {
                    matches!(
                        l,
                        Lookup::Revalidate {
                            fwd: Fwd::Request,
                            ..
                        }
                    )
                },
            ),
            (
                "request max-age older than asked",
                &[("cache-control", "max-age=3600")],
                "max-age=600",
                1800,
                |l| {
                    matches!(
                        l,
                        Lookup::Revalidate {
                            fwd: Fwd::Request,
                            ..
                        }
                    )
                },
            ),
            (
                "request max-age satisfied",
                &[("cache-control", "max-age=3600")],
                "max-age=600",
                599,
                |l| matches!(l, Lookup::Fresh { .. }),
            ),
            (
                "min-fresh not met",
                &[("cache-control", "max-age=1500")],
                "min-fresh=2000",
                0,
                |l| {
                    matches!(
                        l,
                        Lookup::Revalidate {
                            fwd: Fwd::Request,
                            ..
                        }
                    )
                },
            ),
            (
                "min-fresh met",
                &[("cache-control", "max-age=1500")],
                "min-fresh=1000",
                100,
                |l| matches!(l, Lookup::Fresh { .. }),
            ),
            (
                "max-stale without value",
                &[("cache-control", "max-age=1")],
                "max-stale",
                5000,
                |l| matches!(l, Lookup::Stale { age: 5000, .. }),
            ),
            (
                "max-stale within",
                &[("cache-control", "max-age=1")],
                "max-stale=1000",
                500,
                |l| matches!(l, Lookup::Stale { .. }),
            ),
            (
                "max-stale exceeded",
                &[("cache-control", "max-age=1")],
                "max-stale=10",
                500,
                |l| matches!(l, Lookup::Revalidate { .. }),
            ),
            (
                "max-stale cannot override must-revalidate",
                &[("cache-control", "max-age=1, must-revalidate")],
                "max-stale",
                500,
                |l| matches!(l, Lookup::Revalidate { .. }),
            ),
            (
                "only-if-cached fresh",
                &[("cache-control", "max-age=60")],
                "only-if-cached",
                1,
                |l| matches!(l, Lookup::Fresh { .. }),
            ),
            (
                "only-if-cached stale",
                &[("cache-control", "max-age=60")],
                "only-if-cached",
                61,
                |l| *l == Lookup::OnlyIfCachedMiss,
            ),
            (
                "only-if-cached within swr",
                &[("cache-control", "max-age=60, stale-while-revalidate=30")],
                "only-if-cached",
                61,
                |l| matches!(l, Lookup::StaleWhileRevalidate { .. }),
            ),
        ];
        for (name, res, req_cc, secs, check) in cases {
            let entry = stored(res);
            let policy = if req_cc.is_empty() {
                get()
            } else {
                req_policy(req_cc)
            };
            let got = at(&entry, &policy, &[], T0 + secs * SEC);
            assert!(check(&got), "{name}: {got:?}");
        }
    }

    #[test]
    fn an_origin_age_header_counts_against_freshness() {
        let entry = stored(&[("cache-control", "max-age=3600"), ("age", "1800")]);
        assert_eq!(
            at(&entry, &get(), &[], T0),
            Lookup::Fresh {
                age: 1800,
                ttl: 1800
            }
        );
        assert!(reval(Fwd::Request)(&at(
            &entry,
            &req_policy("max-age=600"),
            &[],
            T0
        )));
        let old = stored(&[
            ("cache-control", "max-age=1500"),
            ("age", "2000"),
            ("etag", "\"a\""),
        ]);
        assert!(matches!(
            at(&old, &req_policy("max-stale=1000"), &[], T0),
            Lookup::Stale { .. }
        ));
    }

    #[test]
    fn lookup_misses_without_a_usable_entry() {
        let entry = stored(&[("cache-control", "max-age=60")]);
        let cases: Vec<(&str, RequestPolicy, Option<Vec<(String, String)>>, Lookup)> = vec![
            (
                "nothing stored",
                get(),
                None,
                Lookup::Miss {
                    fwd: Fwd::UriMiss,
                    detail: None,
                },
            ),
            (
                "nothing stored, only-if-cached",
                req_policy("only-if-cached"),
                None,
                Lookup::OnlyIfCachedMiss,
            ),
            (
                "not our entry",
                get(),
                Some(hl(&[("cache-control", "max-age=60")])),
                Lookup::Miss {
                    fwd: Fwd::Miss,
                    detail: Some(Detail::BadEntry),
                },
            ),
            (
                "unsafe method",
                request_policy("POST", &[]),
                Some(entry.clone()),
                Lookup::Miss {
                    fwd: Fwd::Method,
                    detail: None,
                },
            ),
        ];
        for (name, policy, stored, want) in cases {
            assert_eq!(lookup(&policy, &[], stored.as_deref(), T0), want, "{name}");
        }
    }

    #[test]
    fn vary_selects_by_request_headers_and_absent_differs_from_empty() {
        let req = [("accept-language", "de, en"), ("foo", "1")];
        let entry = stored_for(
            &req,
            200,
            &[
                ("cache-control", "max-age=60"),
                ("vary", "Accept-Language"),
                ("vary", "FOO"),
            ],
        );
        let cases: &[(&str, &[(&str, &str)], bool)] = &[
            (
                "same values",
                &[("accept-language", "de, en"), ("foo", "1")],
                true,
            ),
            (
                "list whitespace normalised",
                &[("Accept-Language", "de,en"), ("foo", "1")],
                true,
            ),
            (
                "lines combined",
                &[
                    ("accept-language", "de"),
                    ("accept-language", "en"),
                    ("foo", "1"),
                ],
                true,
            ),
            (
                "unrelated headers ignored",
                &[("accept-language", "de, en"), ("foo", "1"), ("cookie", "x")],
                true,
            ),
            (
                "different value",
                &[("accept-language", "fr"), ("foo", "1")],
                false,
            ),
            ("header missing", &[("accept-language", "de, en")], false),
            (
                "empty is not absent",
                &[("accept-language", "de, en"), ("foo", "")],
                false,
            ),
        ];
        for (name, req, hit) in cases {
            let got = at(&entry, &get(), req, T0);
            let want = if *hit {
                Lookup::Fresh { age: 0, ttl: 60 }
            } else {
                Lookup::Miss {
                    fwd: Fwd::VaryMiss,
                    detail: None,
                }
            };
            assert_eq!(got, want, "{name}");
        }
        let absent = stored_for(
            &[],
            200,
            &[("cache-control", "max-age=60"), ("vary", "foo")],
        );
        assert!(matches!(at(&absent, &get(), &[], T0), Lookup::Fresh { .. }));
        assert!(matches!(
            at(&absent, &get(), &[("foo", "")], T0),
            Lookup::Miss {
                fwd: Fwd::VaryMiss,
                ..
            }
        ));
        // A tampered entry whose Vary lost its key never matches.
        let tampered: Vec<_> = entry
            .iter()
            .filter(|(n, _)| n != META_VARY)
            .cloned()
            .collect();
        assert!(matches!(
            at(&tampered, &get(), &req, T0),
            Lookup::Miss {
                fwd: Fwd::VaryMiss,
                ..
            }
        ));
    }

    #[test]
    fn credentialed_requests_are_answered_only_from_explicitly_shareable_entries() {
        let auth = [("authorization", "Bearer t")];
        let policy = request_policy("GET", &hl(&auth));
        let plain = stored(&[("cache-control", "max-age=60")]);
        assert_eq!(
            at(&plain, &policy, &auth, T0),
            Lookup::Miss {
                fwd: Fwd::Bypass,
                detail: Some(Detail::Authorization)
            }
        );
        for cc in [
            "max-age=60, public",
            "s-maxage=60",
            "max-age=60, must-revalidate",
        ] {
            let e = stored_for(&auth, 200, &[("cache-control", cc)]);
            assert!(
                matches!(at(&e, &policy, &auth, T0), Lookup::Fresh { .. }),
                "{cc}"
            );
        }
    }

    #[test]
    fn revalidation_sends_the_stored_validators() {
        let lm = date(T0 - 86_400 * SEC);
        let cases: Vec<(Vec<(&str, &str)>, Vec<(&str, &str)>)> = vec![
            (vec![("etag", "\"v1\"")], vec![("if-none-match", "\"v1\"")]),
            (
                vec![("last-modified", &lm)],
                vec![("if-modified-since", &lm)],
            ),
            (
                vec![("etag", "W/\"v1\""), ("last-modified", &lm)],
                vec![("if-none-match", "W/\"v1\""), ("if-modified-since", &lm)],
            ),
            (vec![], vec![]),
        ];
        for (validators, want) in cases {
            let mut res = vec![("cache-control", "max-age=60, stale-while-revalidate=10")];
            res.extend(validators);
            let entry = stored(&res);
            match at(&entry, &get(), &[], T0 + 61 * SEC) {
                Lookup::StaleWhileRevalidate { conditional, .. } => {
                    assert_eq!(conditional, hl(&want))
                }
                other => panic!("{other:?}"),
            }
            match at(&entry, &get(), &[], T0 + 99 * SEC) {
                Lookup::Revalidate { conditional, .. } => assert_eq!(conditional, hl(&want)),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn stale_if_error_serves_stale_only_within_its_window_and_never_when_forbidden() {
        type Case<'a> = (&'a str, &'a str, &'a str, Option<u16>, u64, bool);
        let cases: &[Case<'_>] = &[
            (
                "503 within response window",
                "max-age=2, stale-if-error=60",
                "",
                Some(503),
                30,
                true,
            ),
            (
                "network error within window",
                "max-age=2, stale-if-error=60",
                "",
                None,
                30,
                true,
            ),
            (
                "any 5xx counts",
                "max-age=2, stale-if-error=60",
                "",
                Some(522),
                30,
                true,
            ),
            (
                "beyond the window",
                "max-age=2, stale-if-error=60",
                "",
                Some(503),
                63,
                false,
            ),
            (
                "not an error",
                "max-age=2, stale-if-error=60",
                "",
                Some(404),
                30,
                false,
            ),
            ("no window", "max-age=2", "", Some(503), 30, false),
            (
                "request window",
                "max-age=2",
                "stale-if-error=60",
                Some(500),
                30,
                true,
            ),
            (
                "request window too short",
                "max-age=2",
                "stale-if-error=5",
                Some(500),
                30,
                false,
            ),
            (
                "must-revalidate",
                "max-age=2, stale-if-error=60, must-revalidate",
                "",
                Some(503),
                30,
                false,
            ),
            (
                "proxy-revalidate",
                "max-age=2, stale-if-error=60, proxy-revalidate",
                "",
                Some(503),
                30,
                false,
            ),
            (
                "s-maxage",
                "s-maxage=2, stale-if-error=60",
                "",
                Some(503),
                30,
                false,
            ),
            (
                "no-cache",
                "max-age=2, no-cache, stale-if-error=60",
                "stale-if-error=60",
                Some(503),
                30,
                false,
            ),
            (
                "still fresh (client asked to revalidate)",
                "max-age=600",
                "",
                Some(503),
                30,
                true,
            ),
        ];
        for (name, res_cc, req_cc, status, secs, serve) in cases {
            let entry = stored(&[("cache-control", res_cc), ("etag", "\"a\"")]);
            let policy = if req_cc.is_empty() {
                get()
            } else {
                req_policy(req_cc)
            };
            let got = on_origin_error(&policy, &entry, *status, T0 + secs * SEC);
            assert_eq!(
                matches!(got, OnError::ServeStale { .. }),
                *serve,
                "{name}: {got:?}"
            );
        }
        let entry = stored(&[("cache-control", "max-age=2, stale-if-error=60")]);
        assert_eq!(
            on_origin_error(&get(), &entry, None, T0 + 30 * SEC),
            OnError::ServeStale { age: 30, ttl: -28 }
        );
        assert_eq!(
            on_origin_error(&get(), &hl(&[]), None, T0),
            OnError::PassThrough
        );
    }

    // --- 304 handling ---------------------------------------------------------------------

    fn revalidate_with(
        stored_res: &[(&str, &str)],
        not_modified: &[(&str, &str)],
        now: u64,
    ) -> Option<Revalidated> {
        let entry = stored(stored_res);
        after_304(&get(), &[], 200, &entry, &hl(not_modified), now - SEC, now)
    }

    #[test]
    fn a_304_updates_stored_headers_except_body_metadata() {
        let later = T0 + 100 * SEC;
        let r = revalidate_with(
            &[
                ("cache-control", "max-age=1"),
                ("etag", "\"v1\""),
                ("test-header", "A"),
                ("content-type", "text/plain"),
                ("content-length", "10"),
                ("content-encoding", "gzip"),
                ("x-kept", "k"),
                ("age", "3"),
            ],
            &[
                ("cache-control", "max-age=3600"),
                ("etag", "\"v1\""),
                ("test-header", "B"),
                ("content-type", "text/plain;charset=utf-8"),
                ("content-length", "0"),
                ("content-encoding", "br"),
                ("connection", "close"),
                ("x-ef-status", "999"),
                ("date", &date(later)),
            ],
            later,
        )
        .unwrap();
        let h = Headers(&r.headers);
        assert_eq!(h.get_all("test-header"), vec!["B"]);
        assert_eq!(h.get("content-type"), Some("text/plain;charset=utf-8"));
        assert_eq!(h.get_all("cache-control"), vec!["max-age=3600"]);
        assert_eq!(h.get("content-length"), Some("10"));
        assert_eq!(h.get("content-encoding"), Some("gzip"));
        assert_eq!(h.get("x-kept"), Some("k"));
        assert_eq!(h.get_all("date"), vec![date(later).as_str()]);
        assert!(!h.has("age") && !h.has("connection") && !h.has("x-ef-status"));

        let plan = r.store.unwrap();
        assert_eq!(plan.freshness_lifetime, 3600);
        let s = Headers(&plan.headers);
        assert_eq!(s.get(META_STORED_AT), Some(later.to_string().as_str()));
        assert_eq!(s.get(META_STATUS), Some("200"));
        // One second of response delay (request sent at `later - 1s`) counts as age.
        assert_eq!(
            at(&plan.headers, &get(), &[], later + 10 * SEC),
            Lookup::Fresh { age: 11, ttl: 3589 }
        );
    }

    #[test]
    fn a_304_keeps_the_stored_body_checksums() {
        let later = T0 + 100 * SEC;
        let r = revalidate_with(
            &[
                ("cache-control", "max-age=1"),
                ("etag", "\"v1\""),
                ("content-md5", "rL0Y20zC+Fzt72VPzMSk2A=="),
                ("content-digest", "sha-256=:AAAA:"),
            ],
            &[
                ("cache-control", "max-age=60"),
                ("etag", "\"v1\""),
                ("content-md5", "N7UdGUp1E+RbVvZSTy1R8g=="),
                ("content-digest", "sha-256=:BBBB:"),
                ("date", &date(later)),
            ],
            later,
        )
        .unwrap();
        let h = Headers(&r.headers);
        assert_eq!(h.get_all("content-md5"), vec!["rL0Y20zC+Fzt72VPzMSk2A=="]);
        assert_eq!(h.get_all("content-digest"), vec!["sha-256=:AAAA:"]);
        assert_eq!(h.get_all("cache-control"), vec!["max-age=60"]);
        let plan = r.store.unwrap();
        let s = Headers(&plan.headers);
        assert_eq!(s.get_all("content-md5"), vec!["rL0Y20zC+Fzt72VPzMSk2A=="]);
    }

    #[test]
    fn a_304_without_date_restarts_the_age_and_keeps_an_upstream_age() {
        let later = T0 + 500 * SEC;
        let r = revalidate_with(
            &[("cache-control", "max-age=60"), ("etag", "\"v1\"")],
            &[],
            later,
        )
        .unwrap();
        assert_eq!(
            Headers(&r.headers).get_all("date"),
            vec![date(later).as_str()]
        );
        let plan = r.store.unwrap();
        assert_eq!(
            at(&plan.headers, &get(), &[], later),
            Lookup::Fresh { age: 1, ttl: 59 }
        );

        let r = revalidate_with(
            &[("cache-control", "max-age=60"), ("etag", "\"v1\"")],
            &[("age", "7")],
            later,
        )
        .unwrap();
        assert_eq!(Headers(&r.headers).get("age"), Some("7"));
    }

    #[test]
    fn a_304_only_updates_the_response_its_validator_selects() {
        let lm = date(T0 - 86_400 * SEC);
        let other_lm = date(T0 - 2 * 86_400 * SEC);
        let cases: &[(&str, &[(&str, &str)], &[(&str, &str)], bool)] = &[
            (
                "same strong etag",
                &[("etag", "\"v1\"")],
                &[("etag", "\"v1\"")],
                true,
            ),
            (
                "different strong etag",
                &[("etag", "\"v1\"")],
                &[("etag", "\"v2\"")],
                false,
            ),
            (
                "strong 304 vs weak stored",
                &[("etag", "W/\"v1\"")],
                &[("etag", "\"v1\"")],
                false,
            ),
            (
                "weak matches weakly",
                &[("etag", "\"v1\"")],
                &[("etag", "W/\"v1\"")],
                true,
            ),
            (
                "weak mismatch",
                &[("etag", "W/\"v1\"")],
                &[("etag", "W/\"v2\"")],
                false,
            ),
            (
                "same last-modified",
                &[("last-modified", &lm)],
                &[("last-modified", &lm)],
                true,
            ),
            (
                "different last-modified",
                &[("last-modified", &lm)],
                &[("last-modified", &other_lm)],
                false,
            ),
            ("no validator in the 304", &[("etag", "\"v1\"")], &[], true),
        ];
        for (name, old, new, updates) in cases {
            let mut res = vec![("cache-control", "max-age=1")];
            res.extend_from_slice(old);
            assert_eq!(
                revalidate_with(&res, new, T0 + 5 * SEC).is_some(),
                *updates,
                "{name}"
            );
        }
        assert!(after_304(&get(), &[], 200, &hl(&[]), &[], T0, T0).is_none());
    }

    #[test]
    fn a_304_that_makes_the_response_unstorable_is_served_but_not_restored() {
        let cases: &[(&[(&str, &str)], Bypass)] = &[
            (&[("set-cookie", "a=c")], Bypass::SetCookie),
            (&[("cache-control", "no-store")], Bypass::NoStore),
            (&[("cache-control", "private")], Bypass::Private),
        ];
        for (nm, why) in cases {
            let r = revalidate_with(
                &[("cache-control", "max-age=1"), ("etag", "\"v1\"")],
                nm,
                T0 + 5 * SEC,
            )
            .unwrap();
            assert_eq!(r.store, Err(*why));
            assert_eq!(Headers(&r.headers).get(nm[0].0), Some(nm[0].1));
        }
    }

    #[test]
    fn a_head_revalidation_refreshes_the_stored_get() {
        let entry = stored(&[("cache-control", "max-age=1"), ("etag", "\"v1\"")]);
        let head = request_policy("HEAD", &[]);
        assert!(matches!(
            lookup(&head, &[], Some(&entry), T0 + 5 * SEC),
            Lookup::Revalidate { .. }
        ));
        let r = after_304(
            &head,
            &[],
            200,
            &entry,
            &hl(&[("cache-control", "max-age=60")]),
            T0,
            T0 + 5 * SEC,
        )
        .unwrap();
        assert!(r.store.is_ok());
    }

    // --- Conditional requests from visitors ---------------------------------------------

    #[test]
    fn visitor_conditionals_are_answered_from_the_stored_validators() {
        let lm = date(T0 - 100 * SEC);
        let res = hl(&[
            ("etag", "\"v1\""),
            ("last-modified", &lm),
            ("content-length", "5"),
        ]);
        let before = date(T0 - 200 * SEC);
        let after = date(T0);
        let cases: &[(&str, &str, u16, &[(&str, &str)], bool)] = &[
            (
                "matching etag",
                "GET",
                200,
                &[("if-none-match", "\"v1\"")],
                true,
            ),
            (
                "weak matching etag",
                "GET",
                200,
                &[("if-none-match", "W/\"v1\"")],
                true,
            ),
            (
                "one of a list",
                "GET",
                200,
                &[("if-none-match", "\"x\", \"v1\"")],
                true,
            ),
            (
                "comma inside a tag",
                "GET",
                200,
                &[("if-none-match", "\"a,b\"")],
                false,
            ),
            ("star", "HEAD", 200, &[("if-none-match", "*")], true),
            (
                "other etag",
                "GET",
                200,
                &[("if-none-match", "\"v2\"")],
                false,
            ),
            (
                "etag wins over date",
                "GET",
                200,
                &[("if-none-match", "\"v2\""), ("if-modified-since", &after)],
                false,
            ),
            (
                "not modified since",
                "GET",
                200,
                &[("if-modified-since", &after)],
                true,
            ),
            (
                "modified since",
                "GET",
                200,
                &[("if-modified-since", &before)],
                false,
            ),
            (
                "invalid date",
                "GET",
                200,
                &[("if-modified-since", "yesterday")],
                false,
            ),
            (
                "two dates",
                "GET",
                200,
                &[("if-modified-since", &after), ("if-modified-since", &after)],
                false,
            ),
            ("non-2xx", "GET", 404, &[("if-none-match", "\"v1\"")], false),
            (
                "unsafe method",
                "POST",
                200,
                &[("if-none-match", "\"v1\"")],
                false,
            ),
            ("unconditional", "GET", 200, &[], false),
        ];
        for (name, method, status, req, want) in cases {
            let req = hl(req);
            assert_eq!(
                client_not_modified(&request_policy(method, &req), &req, *status, &res),
                *want,
                "{name}"
            );
        }
        assert_eq!(entity_tags("W/\"a,b\", \"c\""), vec!["W/\"a,b\"", "\"c\""]);
        assert_eq!(
            not_modified_headers(&hl(&[
                ("etag", "\"v1\""),
                ("content-length", "5"),
                ("cache-control", "max-age=5"),
                ("content-type", "x")
            ])),
            hl(&[("etag", "\"v1\""), ("cache-control", "max-age=5")])
        );
    }

    // --- Invalidation ---------------------------------------------------------------------

    #[test]
    fn unsafe_methods_with_non_error_responses_invalidate() {
        let cases: &[(&str, u16, bool)] = &[
            ("POST", 200, true),
            ("PUT", 201, true),
            ("DELETE", 204, true),
            ("PATCH", 303, true),
            ("M-SEARCH", 200, true),
            ("POST", 500, false),
            ("POST", 404, false),
            ("POST", 100, false),
            ("GET", 200, false),
            ("HEAD", 200, false),
            ("OPTIONS", 200, false),
            ("TRACE", 200, false),
        ];
        for (method, status, want) in cases {
            assert_eq!(invalidates(method, *status), *want, "{method} {status}");
        }
    }

    #[test]
    fn invalidation_covers_same_origin_location_and_content_location() {
        let cases: &[(&str, &[(&str, &str)], &[&str])] = &[
            ("target only", &[], &["https://shop.example/a/b?x=1"]),
            (
                "relative location",
                &[("location", "../c")],
                &["https://shop.example/a/b?x=1", "https://shop.example/c"],
            ),
            (
                "absolute content-location, default port",
                &[("content-location", "HTTPS://Shop.Example:443/d#frag")],
                &["https://shop.example/a/b?x=1", "https://shop.example/d"],
            ),
            (
                "query-only reference",
                &[("location", "?y=2")],
                &[
                    "https://shop.example/a/b?x=1",
                    "https://shop.example/a/b?y=2",
                ],
            ),
            (
                "network-path reference",
                &[("location", "//shop.example/e")],
                &["https://shop.example/a/b?x=1", "https://shop.example/e"],
            ),
            (
                "same as target, deduplicated",
                &[("content-location", "/a/b?x=1")],
                &["https://shop.example/a/b?x=1"],
            ),
            (
                "other host ignored",
                &[("location", "https://evil.example/a/b")],
                &["https://shop.example/a/b?x=1"],
            ),
            (
                "other scheme ignored",
                &[("location", "http://shop.example/a")],
                &["https://shop.example/a/b?x=1"],
            ),
            (
                "other port ignored",
                &[("location", "https://shop.example:8443/a")],
                &["https://shop.example/a/b?x=1"],
            ),
            (
                "non-hierarchical ignored",
                &[("location", "mailto:x@shop.example")],
                &["https://shop.example/a/b?x=1"],
            ),
        ];
        for (name, res, want) in cases {
            assert_eq!(
                invalidation_targets("https://Shop.Example/a/b?x=1#top", &hl(res)),
                want.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                "{name}"
            );
        }
        assert_eq!(
            invalidation_targets("not a url", &[]),
            vec!["not a url".to_string()]
        );
    }

    // --- Cache-Status ---------------------------------------------------------------------

    #[test]
    fn cache_status_values_render_per_rfc_9211() {
        use CacheStatus as C;
        let fwd = |fwd, fwd_status, ttl, stored, detail| C::Forward {
            fwd,
            fwd_status,
            ttl,
            stored,
            detail,
        };
        let cases: Vec<(CacheStatus, &str)> = vec![
            (
                C::Hit {
                    ttl: 120,
                    detail: None,
                },
                "edgeflags; hit; ttl=120",
            ),
            (
                C::Hit {
                    ttl: -5,
                    detail: Some(Detail::StaleWhileRevalidate),
                },
                "edgeflags; hit; ttl=-5; detail=stale-while-revalidate",
            ),
            (
                C::Hit {
                    ttl: -40,
                    detail: Some(Detail::StaleIfError),
                },
                "edgeflags; hit; ttl=-40; detail=stale-if-error",
            ),
            (
                fwd(Fwd::UriMiss, Some(200), Some(60), true, None),
                "edgeflags; fwd=uri-miss; fwd-status=200; ttl=60; stored",
            ),
            (
                fwd(Fwd::UriMiss, None, None, true, None),
                "edgeflags; fwd=uri-miss; stored",
            ),
            (
                fwd(Fwd::Stale, Some(304), None, true, None),
                "edgeflags; fwd=stale; fwd-status=304; stored",
            ),
            (
                fwd(Fwd::Method, Some(201), None, false, None),
                "edgeflags; fwd=method; fwd-status=201",
            ),
            (
                fwd(
                    Fwd::Bypass,
                    Some(200),
                    None,
                    false,
                    Some(Detail::Authorization),
                ),
                "edgeflags; fwd=bypass; fwd-status=200; detail=authorization",
            ),
            (
                fwd(
                    Fwd::UriMiss,
                    Some(200),
                    None,
                    false,
                    Some(Detail::SetCookie),
                ),
                "edgeflags; fwd=uri-miss; fwd-status=200; detail=set-cookie",
            ),
            (
                fwd(Fwd::UriMiss, Some(200), None, false, Some(Detail::Private)),
                "edgeflags; fwd=uri-miss; fwd-status=200; detail=private",
            ),
            (
                fwd(Fwd::UriMiss, Some(200), None, false, Some(Detail::NoStore)),
                "edgeflags; fwd=uri-miss; fwd-status=200; detail=no-store",
            ),
            (
                fwd(Fwd::VaryMiss, Some(200), None, false, None),
                "edgeflags; fwd=vary-miss; fwd-status=200",
            ),
            (
                fwd(Fwd::Request, None, None, false, None),
                "edgeflags; fwd=request",
            ),
            (
                C::Generated {
                    detail: Detail::OnlyIfCached,
                },
                "edgeflags; detail=only-if-cached",
            ),
        ];
        for (status, want) in cases {
            assert_eq!(status.header_value(), want);
        }
        let hit = C::Hit {
            ttl: 1,
            detail: None,
        };
        assert_eq!(hit.append_to(None), "edgeflags; hit; ttl=1");
        assert_eq!(hit.append_to(Some("  ")), "edgeflags; hit; ttl=1");
        assert_eq!(
            hit.append_to(Some("origin-cache; hit")),
            "origin-cache; hit, edgeflags; hit; ttl=1"
        );
    }

    #[test]
    fn cache_status_follows_from_lookup_and_store_outcomes() {
        let plan = storable(
            &get(),
            &[],
            200,
            &hl(&[("cache-control", "max-age=60"), ("date", &date(T0))]),
            T0,
            T0,
        );
        let cases: Vec<(CacheStatus, &str)> = vec![
            (
                Lookup::Fresh { age: 1, ttl: 120 }.cache_status().unwrap(),
                "edgeflags; hit; ttl=120",
            ),
            (
                Lookup::Stale { age: 9, ttl: -3 }.cache_status().unwrap(),
                "edgeflags; hit; ttl=-3; detail=max-stale",
            ),
            (
                Lookup::StaleWhileRevalidate {
                    age: 9,
                    ttl: -3,
                    conditional: vec![],
                }
                .cache_status()
                .unwrap(),
                "edgeflags; hit; ttl=-3; detail=stale-while-revalidate",
            ),
            (
                Lookup::OnlyIfCachedMiss.cache_status().unwrap(),
                "edgeflags; detail=only-if-cached",
            ),
            (
                OnError::ServeStale { age: 9, ttl: -7 }
                    .cache_status()
                    .unwrap(),
                "edgeflags; hit; ttl=-7; detail=stale-if-error",
            ),
            (
                Lookup::Miss {
                    fwd: Fwd::UriMiss,
                    detail: None,
                }
                .forwarded_status(Some(200), Some(&plan)),
                "edgeflags; fwd=uri-miss; fwd-status=200; ttl=60; stored",
            ),
            (
                Lookup::Revalidate {
                    fwd: Fwd::Stale,
                    conditional: vec![],
                }
                .forwarded_status(Some(304), Some(&plan)),
                "edgeflags; fwd=stale; fwd-status=304; ttl=60; stored",
            ),
            (
                Lookup::Miss {
                    fwd: Fwd::Method,
                    detail: None,
                }
                .forwarded_status(Some(200), Some(&Err(Bypass::Method))),
                "edgeflags; fwd=method; fwd-status=200; detail=method",
            ),
            (
                Lookup::Miss {
                    fwd: Fwd::Bypass,
                    detail: Some(Detail::Authorization),
                }
                .forwarded_status(Some(200), None),
                "edgeflags; fwd=bypass; fwd-status=200; detail=authorization",
            ),
            (
                Lookup::Miss {
                    fwd: Fwd::VaryMiss,
                    detail: None,
                }
                .forwarded_status(None, None),
                "edgeflags; fwd=vary-miss",
            ),
            (
                Lookup::Revalidate {
                    fwd: Fwd::Request,
                    conditional: vec![],
                }
                .forwarded_status(Some(200), Some(&Err(Bypass::SetCookie))),
                "edgeflags; fwd=request; fwd-status=200; detail=set-cookie",
            ),
        ];
        for (status, want) in cases {
            assert_eq!(status.header_value(), want);
        }
        assert_eq!(
            Lookup::Revalidate {
                fwd: Fwd::Stale,
                conditional: vec![]
            }
            .cache_status(),
            None
        );
        assert_eq!(OnError::PassThrough.cache_status(), None);
    }

    // --- URLs and keys --------------------------------------------------------------------

    #[test]
    fn urls_normalise_scheme_host_port_and_fragment_but_not_path_or_query() {
        let cases: &[(&str, &str)] = &[
            (
                "HTTPS://Shop.EXAMPLE/Path/To?B=2&a=1#frag",
                "https://shop.example/Path/To?B=2&a=1",
            ),
            ("https://shop.example:443/", "https://shop.example/"),
            ("http://shop.example:80/x", "http://shop.example/x"),
            ("https://shop.example:80/x", "https://shop.example:80/x"),
            ("http://shop.example:/x", "http://shop.example/x"),
            ("http://shop.example:0080/x", "http://shop.example/x"),
            ("https://shop.example", "https://shop.example/"),
            ("https://shop.example?q", "https://shop.example/?q"),
            ("https://shop.example/a?", "https://shop.example/a?"),
            ("https://user:pw@shop.example/", "https://shop.example/"),
            ("https://[2001:DB8::1]:443/a", "https://[2001:db8::1]/a"),
            (
                "https://[2001:db8::1]:8443/a",
                "https://[2001:db8::1]:8443/a",
            ),
            (
                "https://shop.example/a%2Fb/%7e?x=%41",
                "https://shop.example/a%2Fb/%7e?x=%41",
            ),
            (
                "https://shop.example/a/./b/../c",
                "https://shop.example/a/c",
            ),
            ("https://shop.example/a/%2e%2E/c", "https://shop.example/c"),
            ("https://shop.example/../../x", "https://shop.example/x"),
            ("https://shop.example/a/..", "https://shop.example/"),
            ("https://shop.example/a/b/..", "https://shop.example/a/"),
            ("https://shop.example/a//b", "https://shop.example/a//b"),
            (
                "https://shop.example/a\\..\\..\\b",
                "https://shop.example/b",
            ),
            (
                "https://shop.example/p?q=/../x#f",
                "https://shop.example/p?q=/../x",
            ),
            (" https://shop.example/ ", "https://shop.example/"),
            ("not a url#x", "not a url"),
            ("/relative/path", "/relative/path"),
            ("1http://x/", "1http://x/"),
        ];
        for (input, want) in cases {
            assert_eq!(normalise_url(input), *want, "{input}");
            assert_eq!(normalise_url(want), *want, "idempotent: {want}");
        }
    }

    #[test]
    fn cache_keys_carry_sorted_encoded_variants_in_their_own_segment() {
        let cases: &[(&str, &[(&str, &str)], &str)] = &[
            (
                "https://shop.example/cart?id=1",
                &[],
                "https://edgeflags.cache/https/shop.example/v=/cart?id=1",
            ),
            (
                "https://shop.example/cart?id=1",
                &[("theme", "dark"), ("checkout", "new")],
                "https://edgeflags.cache/https/shop.example/v=checkout:new,theme:dark/cart?id=1",
            ),
            (
                "https://shop.example/",
                &[("a:b", "x,y/z"), ("a:b", "x,y/z")],
                "https://edgeflags.cache/https/shop.example/v=a%3Ab:x%2Cy%2Fz/",
            ),
            (
                "HTTP://Shop.Example:80/a#f",
                &[("f", "ü")],
                "https://edgeflags.cache/http/shop.example/v=f:%C3%BC/a",
            ),
            (
                "https://shop.example:8443/a b\"c",
                &[],
                "https://edgeflags.cache/https/shop.example:8443/v=/a%20b%22c",
            ),
            (
                "https://shop.example/x?q='a'&r=?",
                &[],
                "https://edgeflags.cache/https/shop.example/v=/x?q=%27a%27&r=?",
            ),
            (
                "https://shop.example/x?q=a b",
                &[],
                "https://edgeflags.cache/https/shop.example/v=/x?q=a%20b",
            ),
            (
                "https://[::1]/",
                &[],
                "https://edgeflags.cache/https/[::1]/v=/",
            ),
            (
                "https://../x",
                &[],
                "https://edgeflags.cache/https/!../v=/x",
            ),
            ("file:///etc", &[], "https://edgeflags.cache/file/!/v=/etc"),
            (
                "garbage",
                &[("f", "1")],
                "https://edgeflags.cache/!/v=f:1/?garbage",
            ),
        ];
        for (url, variants, want) in cases {
            assert_eq!(cache_key(url, variants), *want, "{url} {variants:?}");
        }
    }

    #[test]
    fn cache_keys_never_collide_across_variants_or_crafted_queries() {
        let keys = [
            cache_key("https://s.example/p", &[]),
            cache_key("https://s.example/p", &[("f", "on")]),
            cache_key("https://s.example/p", &[("f", "off")]),
            cache_key("https://s.example/p", &[("f", "on"), ("g", "on")]),
            cache_key("https://s.example/p", &[("f", "on,g:on")]),
            cache_key("https://s.example/p?__ef_v=f:on", &[]),
            cache_key("https://s.example/p?v=f:on", &[]),
            cache_key("https://s.example/v=f:on/p", &[]),
            cache_key("https://s.example/p?", &[("f", "on")]),
            cache_key("https://s.example:8080/p", &[("f", "on")]),
            cache_key("http://s.example/p", &[("f", "on")]),
        ];
        let unique: BTreeSet<&String> = keys.iter().collect();
        assert_eq!(unique.len(), keys.len(), "{keys:#?}");
        // Variant order does not matter.
        assert_eq!(
            cache_key("https://s.example/p", &[("g", "1"), ("f", "2")]),
            cache_key("https://s.example/p", &[("f", "2"), ("g", "1")])
        );
    }

    // --- Properties -----------------------------------------------------------------------

    fn header_name() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("cache-control".to_string()),
            Just("expires".to_string()),
            Just("date".to_string()),
            Just("age".to_string()),
            Just("last-modified".to_string()),
            Just("etag".to_string()),
            Just("vary".to_string()),
            Just("authorization".to_string()),
            Just("pragma".to_string()),
            Just("if-none-match".to_string()),
            Just("if-modified-since".to_string()),
            Just("connection".to_string()),
            Just(META_FORMAT.to_string()),
            Just(META_STATUS.to_string()),
            Just(META_REQUEST_TIME.to_string()),
            Just(META_RESPONSE_TIME.to_string()),
            Just(META_VARY.to_string()),
            Just(META_CACHE_CONTROL.to_string()),
            "[a-z-]{1,12}",
        ]
    }

    fn header_value() -> impl Strategy<Value = String> {
        prop_oneof![
            "[ -~]{0,40}",
            "(max-age|s-maxage|stale-while-revalidate|stale-if-error|max-stale|min-fresh|no-cache|no-store|private|public|must-revalidate|only-if-cached)(=[0-9\"a-z, ]{0,12})?(, [a-z-]{1,10}(=[0-9]{1,25})?){0,3}",
            "[0-9]{1,25}",
            Just("1".to_string()),
            "\\PC{0,20}",
        ]
    }

    fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
        proptest::collection::vec((header_name(), header_value()), 0..10)
    }

    proptest! {
        #[test]
        fn parsing_never_panics_on_arbitrary_text(s in "\\PC{0,80}", b in proptest::collection::vec(any::<u8>(), 0..80)) {
            let lossy = String::from_utf8_lossy(&b).into_owned();
            for text in [&s, &lossy] {
                let d = Directives::parse([text.as_str()]);
                let _ = (d.seconds("max-age"), d.scope("no-cache"));
                let _ = parse_http_date(text);
                let _ = parse_age(&[("age".to_string(), text.clone())]);
                let _ = entity_tags(text);
                let n = normalise_url(text);
                prop_assert_eq!(normalise_url(&n), n.clone());
                prop_assert!(cache_key(text, &[("f", text)]).starts_with(KEY_BASE));
            }
        }

        #[test]
        fn dates_round_trip(secs in 0u64..=MAX_HTTP_DATE) {
            prop_assert_eq!(parse_http_date(&format_http_date(secs)), Some(secs));
        }

        #[test]
        fn lookup_and_friends_never_panic(
            method in prop_oneof![Just("GET".to_string()), Just("HEAD".to_string()), Just("POST".to_string()), "[A-Z]{1,6}"],
            req in headers(),
            res in headers(),
            status in any::<u16>(),
            times in proptest::array::uniform3(any::<u64>()),
        ) {
            let [a, b, now] = times;
            let policy = request_policy(&method, &req);
            let _ = lookup(&policy, &req, Some(&res), now);
            let _ = lookup(&policy, &req, None, now);
            let _ = on_origin_error(&policy, &res, Some(status), now);
            let _ = current_age(&res, now);
            let _ = unwrap_for_client(&res, now);
            let _ = client_not_modified(&policy, &req, status, &res);
            let _ = invalidation_targets("https://a.example/x", &res);
            let _ = after_304(&policy, &req, status, &res, &req, a, b);
            if let Ok(plan) = storable(&policy, &req, status, &res, a, b) {
                prop_assert!(plan.storage_ttl > 0 && plan.storage_ttl <= MAX_STORAGE_TTL_SECS);
                let _ = lookup(&policy, &req, Some(&plan.headers), now);
                let _ = after_304(&policy, &req, status, &plan.headers, &res, a, b);
            }
        }

        #[test]
        fn stored_entries_age_monotonically_and_never_underflow(
            cc in "(max-age|s-maxage)=[0-9]{1,12}(, stale-while-revalidate=[0-9]{1,12})?",
            age in proptest::option::of("[0-9]{1,25}"),
            date_secs in any::<u64>(),
            request_ms in any::<u64>(),
            response_ms in any::<u64>(),
            now in any::<u64>(),
            later in any::<u64>(),
        ) {
            let mut res = hl(&[("cache-control", &cc), ("date", &format_http_date(date_secs))]);
            if let Some(a) = age {
                res.push(("age".into(), a));
            }
            if let Ok(plan) = storable(&get(), &[], 200, &res, request_ms, response_ms) {
                let then = now.saturating_add(later);
                let (Some(a1), Some(a2)) = (current_age(&plan.headers, now), current_age(&plan.headers, then)) else {
                    return Err(TestCaseError::fail("our own entry must parse"));
                };
                prop_assert!(a1 <= a2 && a2 <= DELTA_SECONDS_MAX);
                prop_assert!(plan.age <= DELTA_SECONDS_MAX);
                // Once stale, an entry stays stale.
                let fresh_now = matches!(lookup(&get(), &[], Some(&plan.headers), then), Lookup::Fresh { .. });
                let fresh_before = matches!(lookup(&get(), &[], Some(&plan.headers), now), Lookup::Fresh { .. });
                prop_assert!(!fresh_now || fresh_before);
            }
        }
    }
}
