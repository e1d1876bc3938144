//! Service-worker configuration: the JSON the build embeds in the shim (precache manifest,
//! routes with their strategies, expiration and background sync, offline flags,
//! notifications). Parsed and validated once at start-up; plain Rust, tested natively.
//! The format is documented in `pwa/README.md`.

use serde_json::Value;

use crate::error::SwError;
use crate::json::Obj;

/// Top-level configuration handed to [`crate::start`] by the JS shim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwConfig {
    /// Prefix of every cache (and of the IndexedDB database) this service worker owns;
    /// caches with this prefix that the current configuration does not name are deleted on
    /// activate.
    pub cache_prefix: String,
    /// Build-time manifest of the app shell.
    pub precache: PrecacheConfig,
    /// Runtime routes, tried in order (before the precache).
    pub routes: Vec<RouteConfig>,
    /// Precached URL served to navigations that neither the network nor the precache can
    /// answer.
    pub navigation_fallback: Option<String>,
    /// Offline flag evaluation; absent = the OFREP endpoints pass through untouched.
    pub flags: Option<FlagsConfig>,
    /// How `push` payloads become notifications.
    pub notifications: NotificationsConfig,
}

/// The precache manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrecacheConfig {
    /// Entries with their content revision (`null` when the URL itself carries a hash).
    pub entries: Vec<PrecacheEntry>,
    /// URL that a request for a directory (ending in `/`) maps to, e.g. `index.html`.
    pub directory_index: String,
}

/// One precached URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrecacheEntry {
    pub url: String,
    pub revision: Option<String>,
}

/// A runtime route: which requests, and how they are answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteConfig {
    /// Which requests the route takes.
    pub matcher: Matcher,
    /// How GET requests are answered (background-sync routes always go to the network).
    pub strategy: StrategyKind,
    /// Cache used by the strategy (suffix after `<prefix>-runtime-`). Required by
    /// cache-first, stale-while-revalidate and cache-only; optional for network-first
    /// (without one it has no offline copy).
    pub cache_name: Option<String>,
    /// Network-first: how long to wait for the network before answering from the cache.
    pub network_timeout_ms: Option<u32>,
    /// Limits of the route's cache.
    pub expiration: Option<ExpirationConfig>,
    /// Which responses may be stored.
    pub cacheable: CacheableConfig,
    /// Non-GET requests that fail go to the outbox and are replayed later.
    pub background_sync: Option<BackgroundSyncConfig>,
}

/// Request matchers (all given conditions must hold).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    /// Same-origin path prefix, e.g. `/api/`.
    pub path_prefix: Option<String>,
    /// Only navigation requests (`mode: navigate`).
    pub navigation: bool,
    /// HTTP methods (upper case); default `["GET"]`.
    pub methods: Vec<String>,
}

/// Caching strategies (Workbox's names and semantics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrategyKind {
    CacheFirst,
    NetworkFirst,
    StaleWhileRevalidate,
    NetworkOnly,
    CacheOnly,
}

/// Cache limits: least-recently-used entries beyond `max_entries` are evicted, and entries
/// stored more than `max_age_seconds` ago (by the service worker's clock at store time, not
/// the response's `Date`) are neither served nor kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpirationConfig {
    pub max_entries: Option<u32>,
    pub max_age_seconds: Option<u64>,
}

/// Which responses a runtime cache may store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheableConfig {
    /// Status allowlist (default `[200]`).
    pub statuses: Vec<u16>,
    /// Store responses marked `Cache-Control: no-store` (default false).
    pub allow_no_store: bool,
    /// Store responses marked `Cache-Control: private` (default false).
    pub allow_private: bool,
}

impl Default for CacheableConfig {
    fn default() -> Self {
        Self {
            statuses: default_statuses(),
            allow_no_store: false,
            allow_private: false,
        }
    }
}

/// Outbox settings of a background-sync route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackgroundSyncConfig {
    /// Queue name; entries of one queue are replayed in order, queues independently.
    pub queue: String,
    /// Entries older than this are dropped (and the page told) instead of replayed.
    pub retention_minutes: u64,
    /// First wait after a 5xx answer; doubled for each further failure.
    pub initial_retry_ms: u64,
    /// Cap of the wait between attempts.
    pub max_retry_ms: u64,
    /// 5xx answers tolerated in one replay before it stops and waits for the next trigger.
    pub retries_per_replay: u32,
    /// Server errors (5xx, 408, 429) one entry may get in its life: at the last one it is
    /// held for the app (a dead letter), so it no longer holds back the writes behind it.
    pub max_server_failures: u32,
}

impl BackgroundSyncConfig {
    /// Settings for a queue the configuration no longer names (its entries are still
    /// replayed: writes are never lost to a configuration change).
    pub fn fallback(queue: &str) -> Self {
        Self {
            queue: queue.to_owned(),
            retention_minutes: default_retention(),
            initial_retry_ms: default_initial_retry(),
            max_retry_ms: default_max_retry(),
            retries_per_replay: default_retries_per_replay(),
            max_server_failures: 10,
        }
    }
}

/// Offline flags: where the OFREP endpoints and the client-side definitions live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagsConfig {
    /// OFREP bulk path; `<path>/{key}` is the single-flag endpoint.
    pub ofrep_path: String,
    /// flagd document with the flags marked client-side (the edge's `/__edge/client-flags`).
    pub client_flags_path: String,
    /// How many stored bulk answers (one per evaluation context) are kept.
    pub max_snapshots: usize,
}

/// Notifications shown for `push` events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationsConfig {
    /// Title when the payload has none (or is not JSON).
    pub default_title: String,
    /// Icon when the payload has none.
    pub icon: Option<String>,
    /// Page opened (or focused) on click when the payload names none.
    pub default_url: String,
    /// Path of the edge's in-app inbox (`GET` it for the list): its answers get the pushed
    /// items and pending read marks (`crate::inbox`); absent = no inbox.
    pub inbox_path: Option<String>,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        Self {
            default_title: default_title(),
            icon: None,
            default_url: default_url(),
            inbox_path: None,
        }
    }
}

impl PrecacheConfig {
    fn read(v: &Value) -> Result<Self, String> {
        let o = Obj::new(v, "precache")?;
        o.only(&["entries", "directoryIndex"])?;
        let mut entries = Vec::new();
        for e in o
            .arr("entries")?
            .ok_or("precache: missing field `entries`")?
        {
            let e = Obj::new(e, "precache.entries[]")?;
            e.only(&["url", "revision"])?;
            entries.push(PrecacheEntry {
                url: e.req_str("url")?.to_owned(),
                revision: e.str("revision")?.map(str::to_owned),
            });
        }
        Ok(Self {
            entries,
            directory_index: o
                .str("directoryIndex")?
                .map_or_else(default_index, str::to_owned),
        })
    }
}

impl RouteConfig {
    fn read(v: &Value, path: &str) -> Result<Self, String> {
        let o = Obj::new(v, path)?;
        o.only(&[
            "match",
            "strategy",
            "cacheName",
            "networkTimeoutMs",
            "expiration",
            "cacheable",
            "backgroundSync",
        ])?;
        let m_path = format!("{path}.match");
        let m = Obj::new(
            o.value("match")
                .ok_or_else(|| format!("{path}: missing field `match`"))?,
            &m_path,
        )?;
        m.only(&["pathPrefix", "navigation", "methods"])?;
        let strategy = match o.str("strategy")? {
            None => default_strategy(),
            Some(name) => StrategyKind::from_name(name)
                .ok_or_else(|| format!("{path}.strategy: unknown strategy `{name}`"))?,
        };
        let exp_path = format!("{path}.expiration");
        let expiration = match o.value("expiration") {
            Some(e) => {
                let e = Obj::new(e, &exp_path)?;
                e.only(&["maxEntries", "maxAgeSeconds"])?;
                Some(ExpirationConfig {
                    max_entries: e
                        .u64("maxEntries")?
                        .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
                    max_age_seconds: e.u64("maxAgeSeconds")?,
                })
            }
            None => None,
        };
        let c_path = format!("{path}.cacheable");
        let cacheable = match o.value("cacheable") {
            Some(c) => {
                let c = Obj::new(c, &c_path)?;
                c.only(&["statuses", "allowNoStore", "allowPrivate"])?;
                let statuses = match c.arr("statuses")? {
                    Some(list) => list
                        .iter()
                        .map(|s| s.as_u64().and_then(|n| u16::try_from(n).ok()))
                        .collect::<Option<Vec<u16>>>()
                        .ok_or_else(|| format!("{c_path}.statuses: expected HTTP statuses"))?,
                    None => default_statuses(),
                };
                CacheableConfig {
                    statuses,
                    allow_no_store: c.bool("allowNoStore")?.unwrap_or(false),
                    allow_private: c.bool("allowPrivate")?.unwrap_or(false),
                }
            }
            None => CacheableConfig::default(),
        };
        let b_path = format!("{path}.backgroundSync");
        let background_sync = match o.value("backgroundSync") {
            Some(b) => {
                let b = Obj::new(b, &b_path)?;
                b.only(&[
                    "queue",
                    "retentionMinutes",
                    "initialRetryMs",
                    "maxRetryMs",
                    "retriesPerReplay",
                    "maxServerFailures",
                ])?;
                let d = BackgroundSyncConfig::fallback(b.req_str("queue")?);
                Some(BackgroundSyncConfig {
                    retention_minutes: b.u64("retentionMinutes")?.unwrap_or(d.retention_minutes),
                    initial_retry_ms: b.u64("initialRetryMs")?.unwrap_or(d.initial_retry_ms),
                    max_retry_ms: b.u64("maxRetryMs")?.unwrap_or(d.max_retry_ms),
                    retries_per_replay: small(b.u64("retriesPerReplay")?, d.retries_per_replay),
                    max_server_failures: small(b.u64("maxServerFailures")?, d.max_server_failures),
                    ..d
                })
            }
            None => None,
        };
        Ok(Self {
            matcher: Matcher {
                path_prefix: m.str("pathPrefix")?.map(str::to_owned),
                navigation: m.bool("navigation")?.unwrap_or(false),
                methods: m.strings("methods")?.unwrap_or_else(default_methods),
            },
            strategy,
            cache_name: o.str("cacheName")?.map(str::to_owned),
            network_timeout_ms: o
                .u64("networkTimeoutMs")?
                .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
            expiration,
            cacheable,
            background_sync,
        })
    }
}

impl StrategyKind {
    /// The strategy named in the configuration (Workbox's names, camelCase).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "cacheFirst" => Self::CacheFirst,
            "networkFirst" => Self::NetworkFirst,
            "staleWhileRevalidate" => Self::StaleWhileRevalidate,
            "networkOnly" => Self::NetworkOnly,
            "cacheOnly" => Self::CacheOnly,
            _ => return None,
        })
    }
}

impl FlagsConfig {
    fn read(v: &Value) -> Result<Self, String> {
        let o = Obj::new(v, "flags")?;
        o.only(&["ofrepPath", "clientFlagsPath", "maxSnapshots"])?;
        Ok(Self {
            ofrep_path: o
                .str("ofrepPath")?
                .map_or_else(default_ofrep, str::to_owned),
            client_flags_path: o
                .str("clientFlagsPath")?
                .map_or_else(default_client_flags, str::to_owned),
            max_snapshots: o.u64("maxSnapshots")?.map_or_else(default_snapshots, |n| {
                usize::try_from(n).unwrap_or(usize::MAX)
            }),
        })
    }
}

impl NotificationsConfig {
    fn read(v: &Value) -> Result<Self, String> {
        let o = Obj::new(v, "notifications")?;
        o.only(&["defaultTitle", "icon", "defaultUrl", "inboxPath"])?;
        Ok(Self {
            default_title: o
                .str("defaultTitle")?
                .map_or_else(default_title, str::to_owned),
            icon: o.str("icon")?.map(str::to_owned),
            default_url: o.str("defaultUrl")?.map_or_else(default_url, str::to_owned),
            inbox_path: o.str("inboxPath")?.map(str::to_owned),
        })
    }
}

fn default_prefix() -> String {
    "edgeflags".into()
}
fn default_index() -> String {
    "index.html".into()
}
fn default_strategy() -> StrategyKind {
    StrategyKind::NetworkOnly
}
fn default_methods() -> Vec<String> {
    vec!["GET".into()]
}
fn default_statuses() -> Vec<u16> {
    vec![200]
}
fn default_retention() -> u64 {
    7 * 24 * 60
}
fn default_initial_retry() -> u64 {
    1000
}
fn default_max_retry() -> u64 {
    60_000
}
/// A count read as u64, saturated to u32.
fn small(n: Option<u64>, default: u32) -> u32 {
    n.map_or(default, |n| u32::try_from(n).unwrap_or(u32::MAX))
}
fn default_retries_per_replay() -> u32 {
    5
}
fn default_ofrep() -> String {
    "/ofrep/v1/evaluate/flags".into()
}
fn default_client_flags() -> String {
    "/__edge/client-flags".into()
}
fn default_snapshots() -> usize {
    8
}
fn default_title() -> String {
    "Notification".into()
}
fn default_url() -> String {
    "/".into()
}

impl SwConfig {
    /// Parses and validates the configuration JSON. With the `config-checks` feature (the
    /// default: native builds, tests, the build-time check `edgeflags-sw-config`) that means
    /// field types, unknown fields and the rules between fields; the shipped worker is built
    /// without it and checks field types only — its configuration was checked when it was
    /// built (as Workbox checks its configuration in workbox-build and strips assertions from
    /// production bundles).
    pub fn from_json(text: &str) -> Result<Self, SwError> {
        let doc: Value = serde_json::from_str(text).map_err(|e| SwError::Config(e.to_string()))?;
        let config = Self::read(&doc).map_err(SwError::Config)?;
        if cfg!(feature = "config-checks") {
            config.validate()?;
        }
        Ok(config)
    }

    fn read(doc: &Value) -> Result<Self, String> {
        let o = Obj::new(doc, "")?;
        o.only(&[
            "cachePrefix",
            "precache",
            "routes",
            "navigationFallback",
            "flags",
            "notifications",
        ])?;
        let precache = o
            .value("precache")
            .ok_or("(root): missing field `precache`")?;
        let mut routes = Vec::new();
        for (i, r) in o.arr("routes")?.into_iter().flatten().enumerate() {
            routes.push(RouteConfig::read(r, &format!("routes[{i}]"))?);
        }
        Ok(Self {
            cache_prefix: o
                .str("cachePrefix")?
                .map_or_else(default_prefix, str::to_owned),
            precache: PrecacheConfig::read(precache)?,
            routes,
            navigation_fallback: o.str("navigationFallback")?.map(str::to_owned),
            flags: o.value("flags").map(FlagsConfig::read).transpose()?,
            notifications: match o.value("notifications") {
                Some(n) => NotificationsConfig::read(n)?,
                None => NotificationsConfig::default(),
            },
        })
    }

    fn validate(&self) -> Result<(), SwError> {
        let bad = |i: usize, why: &str| Err(SwError::Config(format!("routes[{i}]: {why}")));
        let mut queues = Vec::new();
        for (i, r) in self.routes.iter().enumerate() {
            if r.matcher.path_prefix.is_none() && !r.matcher.navigation {
                return bad(i, "a route needs `pathPrefix` or `navigation`");
            }
            if r.matcher.methods.is_empty()
                || r.matcher
                    .methods
                    .iter()
                    .any(|m| m != &m.to_ascii_uppercase())
            {
                return bad(i, "`methods` must be upper-case HTTP methods");
            }
            let gets = r.matcher.methods.iter().any(|m| m == "GET" || m == "HEAD");
            match &r.background_sync {
                Some(bs) => {
                    if gets {
                        return bad(i, "background sync is for non-GET methods");
                    }
                    if bs.queue.is_empty() || queues.contains(&bs.queue.as_str()) {
                        return bad(i, "each background-sync route needs its own queue name");
                    }
                    queues.push(&bs.queue);
                }
                None if !gets => {
                    return bad(i, "a route for non-GET methods needs `backgroundSync`");
                }
                None => {}
            }
            let needs_cache = matches!(
                r.strategy,
                StrategyKind::CacheFirst
                    | StrategyKind::StaleWhileRevalidate
                    | StrategyKind::CacheOnly
            );
            if needs_cache && r.cache_name.is_none() && r.background_sync.is_none() {
                return bad(i, "this strategy needs a `cacheName`");
            }
            if r.network_timeout_ms.is_some() && r.strategy != StrategyKind::NetworkFirst {
                return bad(i, "`networkTimeoutMs` only applies to networkFirst");
            }
            if r.expiration.is_some() && r.cache_name.is_none() {
                return bad(i, "`expiration` needs a `cacheName`");
            }
        }
        Ok(())
    }

    /// Full name of the precache.
    pub fn precache_name(&self) -> String {
        format!("{}-precache-v1", self.cache_prefix)
    }

    /// Full name of a runtime cache.
    pub fn runtime_cache_name(&self, suffix: &str) -> String {
        format!("{}-runtime-{suffix}", self.cache_prefix)
    }

    /// Name of the service worker's IndexedDB database (outbox, cache usage, flags).
    pub fn database_name(&self) -> String {
        format!("{}-sw", self.cache_prefix)
    }

    /// Every cache name the current configuration uses.
    pub fn cache_names(&self) -> Vec<String> {
        let mut names = vec![self.precache_name()];
        for n in self.routes.iter().filter_map(|r| r.cache_name.as_deref()) {
            let full = self.runtime_cache_name(n);
            if !names.contains(&full) {
                names.push(full);
            }
        }
        names
    }

    /// The caches of ours (named with our prefix) that the configuration no longer uses:
    /// deleted on activate. Other caches of the origin are not ours to touch.
    pub fn caches_to_delete(&self, names: &[String]) -> Vec<String> {
        let prefix = format!("{}-", self.cache_prefix);
        let keep = self.cache_names();
        names
            .iter()
            .filter(|n| n.starts_with(&prefix) && !keep.contains(n))
            .cloned()
            .collect()
    }

    /// The background-sync settings of a queue (defaults for a queue no longer configured).
    pub fn queue(&self, name: &str) -> BackgroundSyncConfig {
        self.routes
            .iter()
            .filter_map(|r| r.background_sync.as_ref())
            .find(|b| b.queue == name)
            .cloned()
            .unwrap_or_else(|| BackgroundSyncConfig::fallback(name))
    }

    /// The configured queues, in route order.
    pub fn queues(&self) -> Vec<&str> {
        self.routes
            .iter()
            .filter_map(|r| r.background_sync.as_ref())
            .map(|b| b.queue.as_str())
            .collect()
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
        assert_eq!(c.database_name(), "edgeflags-sw");
        assert!(c.routes.is_empty());
        assert_eq!(c.flags, None);
        assert_eq!(c.notifications.default_url, "/");
    }

    #[test]
    fn routes_name_their_strategy_cache_limits_and_queue() {
        let c = SwConfig::from_json(
            r#"{"precache":{"entries":[]},"routes":[
                {"match":{"pathPrefix":"/api/orders","methods":["POST"]},"backgroundSync":{"queue":"orders","retentionMinutes":60,"maxServerFailures":3}},
                {"match":{"pathPrefix":"/api/"},"strategy":"networkFirst","cacheName":"api","networkTimeoutMs":3000},
                {"match":{"pathPrefix":"/img/"},"strategy":"cacheFirst","cacheName":"img","expiration":{"maxEntries":3,"maxAgeSeconds":60},"cacheable":{"statuses":[0,200]}},
                {"match":{"pathPrefix":"/img2/"},"strategy":"cacheOnly","cacheName":"img"}]}"#,
        )
        .unwrap();
        assert_eq!(c.routes[1].strategy, StrategyKind::NetworkFirst);
        assert_eq!(c.routes[0].strategy, StrategyKind::NetworkOnly);
        assert_eq!(
            c.cache_names(),
            vec![
                "edgeflags-precache-v1",
                "edgeflags-runtime-api",
                "edgeflags-runtime-img"
            ]
        );
        let names: Vec<String> = [
            "edgeflags-runtime-api",
            "edgeflags-runtime-old",
            "edgeflags-precache-v0",
            "someone-elses",
            "edgeflags-precache-v1",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            c.caches_to_delete(&names),
            vec!["edgeflags-runtime-old", "edgeflags-precache-v0"]
        );
        assert_eq!(c.queues(), vec!["orders"]);
        assert_eq!(c.queue("orders").retention_minutes, 60);
        assert_eq!(c.queue("orders").retries_per_replay, 5);
        assert_eq!(c.queue("orders").max_server_failures, 3);
        assert_eq!(
            c.queue("gone").max_server_failures,
            10,
            "the default budget"
        );
        assert_eq!(c.queue("gone").queue, "gone", "unknown queues get defaults");
        assert_eq!(
            c.routes[2].expiration,
            Some(ExpirationConfig {
                max_entries: Some(3),
                max_age_seconds: Some(60)
            })
        );
        assert_eq!(c.routes[2].cacheable.statuses, vec![0, 200]);
        assert!(!c.routes[1].cacheable.allow_no_store);
    }

    #[test]
    fn unknown_fields_strategies_and_inconsistent_routes_are_rejected_with_a_reason() {
        for bad in [
            r#"{"precache":{"entries":[]},"extra":1}"#,
            r#"{"precache":{"entries":[]},"routes":[{"match":{},"strategy":"fastest"}]}"#,
            r#"{"routes":[]}"#,
            r#"{"precache":{"entries":[]},"routes":[{"match":{},"strategy":"networkOnly"}]}"#,
            r#"{"precache":{"entries":[]},"routes":[{"match":{"pathPrefix":"/a"},"strategy":"cacheFirst"}]}"#,
            r#"{"precache":{"entries":[]},"routes":[{"match":{"pathPrefix":"/a","methods":["POST"]}}]}"#,
            r#"{"precache":{"entries":[]},"routes":[{"match":{"pathPrefix":"/a","methods":["post"]},"backgroundSync":{"queue":"q"}}]}"#,
            r#"{"precache":{"entries":[]},"routes":[{"match":{"pathPrefix":"/a"},"backgroundSync":{"queue":"q"}}]}"#,
            r#"{"precache":{"entries":[]},"routes":[{"match":{"pathPrefix":"/a","methods":["POST"]},"backgroundSync":{"queue":"q"}},{"match":{"pathPrefix":"/b","methods":["PUT"]},"backgroundSync":{"queue":"q"}}]}"#,
            r#"{"precache":{"entries":[]},"routes":[{"match":{"pathPrefix":"/a"},"strategy":"cacheFirst","cacheName":"x","networkTimeoutMs":5}]}"#,
            r#"{"precache":{"entries":[]},"routes":[{"match":{"pathPrefix":"/a"},"strategy":"networkOnly","expiration":{"maxEntries":1}}]}"#,
        ] {
            let err = SwConfig::from_json(bad).unwrap_err().to_string();
            assert!(
                err.starts_with("invalid service-worker configuration"),
                "{bad}: {err}"
            );
        }
    }
}
