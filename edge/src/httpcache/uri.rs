//! URL normalisation for cache keys and invalidation (RFC 3986 §5.2, §6.2.2–6.2.3).

/// An absolute hierarchical URL split for normalisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Url {
    pub(crate) scheme: String,
    pub(crate) authority: String,
    pub(crate) path: String,
    pub(crate) query: Option<String>,
}

impl Url {
    /// Parses `scheme://authority/path?query#fragment`, normalising as [`normalise_url`]
    /// describes. `None` for anything else.
    pub(crate) fn parse(url: &str) -> Option<Url> {
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
    pub(crate) fn resolve(&self, reference: &str) -> Option<Url> {
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

#[cfg(test)]
#[allow(clippy::type_complexity)]
mod tests {
    use super::*;

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
}
