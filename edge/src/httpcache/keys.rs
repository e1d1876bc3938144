//! Cache keys: the primary key (normalised URL + the route's flag variants) and the secondary
//! `Vary` key (§4.1).

use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::headers::{HeaderList, Headers};
use super::uri::{normalise_url, Url};

/// Origin of the synthetic cache-key URLs (see [`cache_key`]).
pub(crate) const KEY_BASE: &str = "https://edgeflags.cache";

/// `Vary` field names (lowercase, sorted, unique) and whether `*` is among them.
pub(crate) fn vary_names(headers: &HeaderList) -> (bool, Vec<String>) {
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
pub(crate) fn vary_key(names: &[String], req_headers: &HeaderList) -> String {
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
pub(crate) fn cache_key(normalised_url: &str, variants: &[(&str, &str)]) -> String {
    match Url::parse(normalised_url) {
        Some(u) => key_of(&u, variants),
        // Not a URL we understand: a namespace of its own (`!` is never a scheme).
        None => format!(
            "{KEY_BASE}/!/{}/?{}",
            variants_segment(variants),
            pct_encode(&normalise_url(normalised_url), is_unreserved)
        ),
    }
}

/// The normalised URL and the cache key of a request URL the platform already parsed
/// (`Request::url()`): the same as [`normalise_url`] and [`cache_key`], without parsing the
/// URL again.
pub(crate) fn request_key(url: &url::Url, variants: &[(&str, &str)]) -> (String, String) {
    match Url::from_parsed(url) {
        Some(u) => (u.to_string(), key_of(&u, variants)),
        None => {
            let normalised = normalise_url(url.as_str());
            let key = cache_key(&normalised, variants);
            (normalised, key)
        }
    }
}

fn key_of(u: &Url, variants: &[(&str, &str)]) -> String {
    let mut key = format!(
        "{KEY_BASE}/{}/{}/{}{}",
        u.scheme,
        authority_segment(&u.authority),
        variants_segment(variants),
        pct_encode(&u.path, is_path_byte)
    );
    if let Some(q) = &u.query {
        key.push('?');
        key.push_str(&pct_encode(q, is_query_byte));
    }
    key
}

/// `v=<flag>:<value>,…`, sorted and encoded (see [`cache_key`]).
fn variants_segment(variants: &[(&str, &str)]) -> String {
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
    format!("v={}", variants.join(","))
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
#[allow(clippy::type_complexity)]
mod tests {
    use super::*;

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
    fn a_parsed_request_url_gives_the_same_key_as_its_text() {
        for raw in [
            "https://User:pw@Shop.Example:443/a/./b?x=1#f",
            "http://shop.example:8080/a%2Fb?q='x'",
            "https://[2001:DB8::1]/p",
        ] {
            let Ok(parsed) = url::Url::parse(raw) else {
                panic!("{raw}");
            };
            let variants = [("backend", "v2")];
            let (normalised, key) = request_key(&parsed, &variants);
            assert_eq!(normalised, normalise_url(raw), "{raw}");
            assert_eq!(key, cache_key(raw, &variants), "{raw}");
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
}
