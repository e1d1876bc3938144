//! Service-worker configuration: the JSON the build embeds in the shim (precache manifest,
//! routes, offline fallback). Parsed once at start-up; plain Rust, tested natively.

use serde::Deserialize;

/// Top-level configuration handed to [`crate::start`] by the JS shim.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SwConfig {
    /// Prefix of every cache this service worker owns; caches with this prefix that the
    /// current configuration does not name are deleted on activate.
    #[serde(default = "default_prefix")]
    pub cache_prefix: String,
    /// Build-time manifest of the app shell.
    pub precache: PrecacheConfig,
    /// Runtime routes, tried in order after the precache.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// Precached URL served to navigations when the network fails.
    #[serde(default)]
    pub navigation_fallback: Option<String>,
}

/// The precache manifest.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrecacheConfig {
    /// Entries with their content revision (`null` when the URL itself carries a hash).
    pub entries: Vec<PrecacheEntry>,
    /// URL that a request for a directory (ending in `/`) maps to, e.g. `index.html`.
    #[serde(default = "default_index")]
    pub directory_index: String,
}

/// One precached URL.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct PrecacheEntry {
    pub url: String,
    pub revision: Option<String>,
}

/// A runtime caching route.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteConfig {
    /// Which requests the route takes.
    #[serde(rename = "match")]
    pub matcher: Matcher,
    /// How it answers them.
    pub strategy: StrategyKind,
    /// Cache used by the strategy (suffix after the prefix).
    #[serde(default)]
    pub cache_name: Option<String>,
    /// Network-first: how long to wait for the network before using the cache.
    #[serde(default)]
    pub network_timeout_ms: Option<u32>,
}

/// Request matchers.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Matcher {
    /// Same-origin path prefix, e.g. `/api/`.
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// Only navigation requests (`mode: navigate`).
    #[serde(default)]
    pub navigation: bool,
}

/// Caching strategies (Workbox's names).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum StrategyKind {
    CacheFirst,
    NetworkFirst,
    NetworkOnly,
}

fn default_prefix() -> String {
    "edgeflags".into()
}

fn default_index() -> String {
    "index.html".into()
}

impl SwConfig {
    /// Parses the configuration JSON.
    pub fn from_json(text: &str) -> Result<Self, crate::error::SwError> {
        serde_json::from_str(text).map_err(|e| crate::error::SwError::Config(e.to_string()))
    }

    /// Full name of the precache.
    pub fn precache_name(&self) -> String {
        format!("{}-precache-v1", self.cache_prefix)
    }

    /// Full name of a runtime cache.
    pub fn runtime_cache_name(&self, suffix: &str) -> String {
        format!("{}-runtime-{suffix}", self.cache_prefix)
    }

    /// Every cache name the current configuration uses.
    pub fn cache_names(&self) -> Vec<String> {
        let mut names = vec![self.precache_name()];
        names.extend(
            self.routes
                .iter()
                .filter_map(|r| r.cache_name.as_deref())
                .map(|n| self.runtime_cache_name(n)),
        );
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_config_gets_defaults() {
        let c = SwConfig::from_json(
            r#"{"precache":{"entries":[{"url":"/index.html","revision":"ab"}]}}"#,
        )
        .unwrap();
        assert_eq!(c.cache_prefix, "edgeflags");
        assert_eq!(c.precache.directory_index, "index.html");
        assert_eq!(c.precache_name(), "edgeflags-precache-v1");
        assert!(c.routes.is_empty());
    }

    #[test]
    fn routes_name_their_strategy_and_cache() {
        let c = SwConfig::from_json(
            r#"{"precache":{"entries":[]},"routes":[{"match":{"pathPrefix":"/api/"},"strategy":"networkFirst","cacheName":"api","networkTimeoutMs":3000}]}"#,
        )
        .unwrap();
        assert_eq!(c.routes[0].strategy, StrategyKind::NetworkFirst);
        assert_eq!(
            c.cache_names(),
            vec!["edgeflags-precache-v1", "edgeflags-runtime-api"]
        );
    }

    #[test]
    fn unknown_fields_and_strategies_are_rejected_with_a_reason() {
        for bad in [
            r#"{"precache":{"entries":[]},"extra":1}"#,
            r#"{"precache":{"entries":[]},"routes":[{"match":{},"strategy":"fastest"}]}"#,
            r#"{"routes":[]}"#,
        ] {
            let err = SwConfig::from_json(bad).unwrap_err().to_string();
            assert!(
                err.starts_with("invalid service-worker configuration"),
                "{err}"
            );
        }
    }
}
