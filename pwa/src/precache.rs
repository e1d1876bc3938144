//! Precache policy (Workbox's precaching, in Rust): cache keys that carry the revision, which
//! entries an install must fetch, which stale entries activate removes, and URL lookup.

use crate::config::{PrecacheConfig, PrecacheEntry};

/// Query parameter carrying an entry's revision in its cache key, so a changed file gets a
/// new key while an unchanged one is never fetched again.
pub const REVISION_PARAM: &str = "__ef_rev";

/// The cache key of an entry: its absolute URL, plus the revision when it has one.
pub fn cache_key(base: &str, entry: &PrecacheEntry) -> String {
    let url = absolute(base, &entry.url);
    match &entry.revision {
        Some(rev) => {
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}{REVISION_PARAM}={rev}")
        }
        None => url,
    }
}

/// Resolves a manifest URL (always root-relative in our manifests) against the SW origin.
pub fn absolute(base: &str, url: &str) -> String {
    if url.starts_with("http://") || url.starts_with("https://") {
        url.to_owned()
    } else {
        let base = base.trim_end_matches('/');
        let sep = if url.starts_with('/') { "" } else { "/" };
        format!("{base}{sep}{url}")
    }
}

/// The precache plan for one manifest.
#[derive(Debug, Clone)]
pub struct Precache {
    /// (request URL without query, cache key) for each entry.
    keys: Vec<(String, String)>,
    directory_index: String,
}

impl Precache {
    /// Builds the plan for a manifest served from `origin` (e.g. `http://127.0.0.1:8787`).
    pub fn new(origin: &str, config: &PrecacheConfig) -> Self {
        let keys = config
            .entries
            .iter()
            .map(|e| (absolute(origin, &e.url), cache_key(origin, e)))
            .collect();
        Self {
            keys,
            directory_index: config.directory_index.clone(),
        }
    }

    /// (URL to fetch, cache key) for every entry.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.keys.iter().map(|(u, k)| (u.as_str(), k.as_str()))
    }

    /// Entries an install still has to fetch, given the keys already cached.
    pub fn missing<'a>(&'a self, cached: &[String]) -> Vec<(&'a str, &'a str)> {
        self.entries()
            .filter(|(_, key)| !cached.iter().any(|c| c == key))
            .collect()
    }

    /// Cached keys that belong to no current entry: removed on activate.
    pub fn stale(&self, cached: &[String]) -> Vec<String> {
        cached
            .iter()
            .filter(|c| !self.keys.iter().any(|(_, k)| k == *c))
            .cloned()
            .collect()
    }

    /// The cache key answering a request URL: exact match after dropping the fragment and
    /// query, with `/dir/` mapped to `/dir/index.html`.
    pub fn key_for(&self, request_url: &str) -> Option<&str> {
        let url = request_url.split('#').next().unwrap_or(request_url);
        let url = url.split('?').next().unwrap_or(url);
        let find = |u: &str| {
            self.keys
                .iter()
                .find(|(eu, _)| eu == u)
                .map(|(_, k)| k.as_str())
        };
        find(url).or_else(|| {
            url.ends_with('/')
                .then(|| format!("{url}{}", self.directory_index))
                .and_then(|u| find(&u))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: &str = "http://127.0.0.1:8787";

    fn manifest(entries: &[(&str, Option<&str>)]) -> PrecacheConfig {
        PrecacheConfig {
            entries: entries
                .iter()
                .map(|(u, r)| PrecacheEntry {
                    url: (*u).into(),
                    revision: r.map(Into::into),
                })
                .collect(),
            directory_index: "index.html".into(),
        }
    }

    #[test]
    fn revisioned_entries_get_the_revision_in_their_key_hashed_ones_do_not() {
        let p = Precache::new(
            ORIGIN,
            &manifest(&[("/index.html", Some("abc")), ("/sw/x.1234.wasm", None)]),
        );
        let keys: Vec<_> = p.entries().map(|(_, k)| k.to_owned()).collect();
        assert_eq!(
            keys,
            vec![
                format!("{ORIGIN}/index.html?__ef_rev=abc"),
                format!("{ORIGIN}/sw/x.1234.wasm")
            ]
        );
    }

    #[test]
    fn install_fetches_only_entries_whose_key_is_not_cached() {
        let p = Precache::new(
            ORIGIN,
            &manifest(&[("/a.js", Some("1")), ("/b.js", Some("2"))]),
        );
        let cached = vec![
            format!("{ORIGIN}/a.js?__ef_rev=1"),
            format!("{ORIGIN}/b.js?__ef_rev=OLD"),
        ];
        assert_eq!(
            p.missing(&cached),
            vec![(
                format!("{ORIGIN}/b.js").as_str(),
                format!("{ORIGIN}/b.js?__ef_rev=2").as_str()
            )]
        );
        assert_eq!(
            p.stale(&cached),
            vec![format!("{ORIGIN}/b.js?__ef_rev=OLD")]
        );
    }

    #[test]
    fn lookup_ignores_query_and_fragment_and_maps_directories_to_the_index() {
        let p = Precache::new(
            ORIGIN,
            &manifest(&[("/index.html", Some("1")), ("/app.js", Some("2"))]),
        );
        let idx = format!("{ORIGIN}/index.html?__ef_rev=1");
        assert_eq!(p.key_for(&format!("{ORIGIN}/")), Some(idx.as_str()));
        assert_eq!(
            p.key_for(&format!("{ORIGIN}/index.html?utm=x#top")),
            Some(idx.as_str())
        );
        assert_eq!(
            p.key_for(&format!("{ORIGIN}/app.js"))
                .map(|k| k.ends_with("rev=2")),
            Some(true)
        );
        assert_eq!(p.key_for(&format!("{ORIGIN}/other.js")), None);
    }
}
