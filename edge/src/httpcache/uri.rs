//! URL normalisation for cache keys and invalidation: WHATWG URL parsing (the `url` crate,
//! which the `worker` crate already links — `Request::url()` parses with it — so it costs the
//! worker no code), minus what a key must not hold (userinfo, fragment).

/// An absolute hierarchical URL split for normalisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Url {
    pub(crate) scheme: String,
    pub(crate) authority: String,
    pub(crate) path: String,
    pub(crate) query: Option<String>,
}

impl Url {
    /// Parses an absolute URL as a browser would (WHATWG: lowercase scheme and host, default
    /// port dropped, dot segments — `%2e` too — removed, `\` as `/` in special schemes).
    /// `None` for anything that is not a hierarchical URL.
    pub(crate) fn parse(url: &str) -> Option<Url> {
        url::Url::parse(url.trim())
            .ok()
            .as_ref()
            .and_then(Url::from_parsed)
    }

    /// The parts of an already parsed URL, without userinfo (a key must never hold
    /// credentials) and fragment.
    pub(crate) fn from_parsed(u: &url::Url) -> Option<Url> {
        if u.cannot_be_a_base() {
            return None;
        }
        let mut authority = u.host_str().unwrap_or("").to_owned();
        if let Some(port) = u.port() {
            authority.push(':');
            authority.push_str(&port.to_string());
        }
        Some(Url {
            scheme: u.scheme().to_owned(),
            authority,
            path: u.path().to_owned(),
            query: u.query().map(str::to_owned),
        })
    }

    /// Resolves a reference against this URL (RFC 3986 §5.2, as WHATWG does it).
    pub(crate) fn resolve(&self, reference: &str) -> Option<Url> {
        let base = url::Url::parse(&self.to_string()).ok()?;
        Url::from_parsed(&base.join(reference.trim()).ok()?)
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

/// Normalises a URL for use in a cache key: WHATWG parsing (what any URL a Worker receives
/// already went through), no userinfo, no fragment.
///
/// Path and query are otherwise kept as the parser leaves them. Query order is kept because
/// origins may give it meaning (`a=1&a=2`, signed URLs) and RFC 3986 treats reordered
/// queries as different resources; existing percent-encoding is left alone because decoding
/// `%2F` or `%3F` changes what the origin sees. A string that is not an absolute URL is
/// returned trimmed and without fragment.
pub(crate) fn normalise_url(url: &str) -> String {
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
