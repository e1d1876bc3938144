//! Routing: picks how a request is answered — the offline-capable OFREP endpoints, a
//! background-sync route for writes, a runtime caching route, the precache, or the network.

use crate::config::{BackgroundSyncConfig, RouteConfig, SwConfig};
use crate::precache::Precache;

/// The decision for one request.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision<'a> {
    /// Serve from the precache under this key (network if somehow missing).
    Precached(&'a str),
    /// Use this runtime caching route (GET).
    Route(&'a RouteConfig),
    /// A write to a background-sync route: network, else the outbox.
    Write(&'a BackgroundSyncConfig),
    /// An OFREP evaluation: network, else answered offline from stored flags.
    Flags(FlagsRequest),
    /// Not ours: go to the network untouched.
    Network,
}

/// Which OFREP endpoint a request is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlagsRequest {
    /// `POST <ofrep>`: every flag.
    Bulk,
    /// `POST <ofrep>/{key}`: one flag.
    Single(String),
}

/// The facts about a request that routing needs.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    pub url: &'a str,
    pub method: &'a str,
    pub navigate: bool,
    /// Whether the URL is on the service worker's own origin.
    pub same_origin: bool,
}

/// Routes a request. Only same-origin requests are ever handled; GETs may be cached,
/// other methods only when a background-sync route or the OFREP endpoints claim them.
pub fn route<'a>(
    config: &'a SwConfig,
    precache: &'a Precache,
    req: RequestFacts<'_>,
) -> Decision<'a> {
    if !req.same_origin {
        return Decision::Network;
    }
    let path = path_of(req.url);
    let method = req.method.to_ascii_uppercase();
    if let Some(flags) = &config.flags {
        if method == "POST" {
            if path == flags.ofrep_path {
                return Decision::Flags(FlagsRequest::Bulk);
            }
            if let Some(key) = path
                .strip_prefix(flags.ofrep_path.as_str())
                .and_then(|rest| rest.strip_prefix('/'))
                .filter(|k| !k.is_empty() && !k.contains('/'))
            {
                return Decision::Flags(FlagsRequest::Single(key.to_owned()));
            }
        }
    }
    let matching = |r: &&'a RouteConfig| {
        let prefix_ok = r
            .matcher
            .path_prefix
            .as_deref()
            .is_none_or(|p| path.starts_with(p));
        let nav_ok = !r.matcher.navigation || req.navigate;
        prefix_ok && nav_ok && r.matcher.methods.contains(&method)
    };
    if method != "GET" {
        return match config.routes.iter().find(matching) {
            Some(RouteConfig {
                background_sync: Some(bs),
                ..
            }) => Decision::Write(bs),
            _ => Decision::Network,
        };
    }
    // Navigations prefer a runtime route (fresh HTML online, the precached shell as the
    // fallback); other precached files are versioned by the manifest and served from it.
    let precached = precache.key_for(req.url).map(Decision::Precached);
    let routed = config.routes.iter().find(matching).map(Decision::Route);
    let decision = if req.navigate {
        routed.or(precached)
    } else {
        precached.or(routed)
    };
    decision.unwrap_or(Decision::Network)
}

/// The path of an absolute URL (`http://h:1/a/b?q` → `/a/b`).
pub fn path_of(url: &str) -> &str {
    let after_scheme = url.split_once("://").map_or(url, |(_, r)| r);
    let path = after_scheme.find('/').map_or("/", |i| &after_scheme[i..]);
    path.split(['?', '#']).next().unwrap_or(path)
}

/// Whether `url` is on `origin` (`http://h:1`): the same prefix, followed by nothing, a
/// path, a query or a fragment (so `http://h:10` is not on `http://h:1`).
pub fn same_origin(origin: &str, url: &str) -> bool {
    url.strip_prefix(origin)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', '?', '#']))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StrategyKind;

    const O: &str = "http://127.0.0.1:8787";

    fn config() -> SwConfig {
        SwConfig::from_json(
            r#"{"precache":{"entries":[{"url":"/index.html","revision":"1"},{"url":"/app.js","revision":"2"}]},
                "routes":[{"match":{"pathPrefix":"/api/orders","methods":["POST","PUT"]},"backgroundSync":{"queue":"orders"}},
                          {"match":{"navigation":true},"strategy":"networkFirst","networkTimeoutMs":3000},
                          {"match":{"pathPrefix":"/api/"},"strategy":"networkFirst","cacheName":"api"},
                          {"match":{"pathPrefix":"/"},"strategy":"staleWhileRevalidate","cacheName":"rest"}],
                "flags":{},
                "navigationFallback":"/index.html"}"#,
        )
        .unwrap()
    }

    fn facts<'a>(url: &'a str, method: &'a str, navigate: bool) -> RequestFacts<'a> {
        RequestFacts {
            url,
            method,
            navigate,
            same_origin: same_origin(O, url),
        }
    }

    fn describe(d: Decision<'_>) -> String {
        match d {
            Decision::Precached(_) => "precache".to_owned(),
            Decision::Route(r) => format!(
                "route:{}:{}",
                match r.strategy {
                    StrategyKind::NetworkFirst => "networkFirst",
                    StrategyKind::CacheFirst => "cacheFirst",
                    StrategyKind::NetworkOnly => "networkOnly",
                    StrategyKind::StaleWhileRevalidate => "swr",
                    StrategyKind::CacheOnly => "cacheOnly",
                },
                r.cache_name.as_deref().unwrap_or("none")
            ),
            Decision::Write(bs) => format!("outbox:{}", bs.queue),
            Decision::Flags(FlagsRequest::Bulk) => "ofrep:bulk".to_owned(),
            Decision::Flags(FlagsRequest::Single(k)) => format!("ofrep:{k}"),
            Decision::Network => "network".to_owned(),
        }
    }

    #[test]
    fn requests_are_routed_by_kind() {
        let c = config();
        let p = Precache::new(O, &c.precache);
        let cases: &[(&str, &str, bool, &str)] = &[
            ("/", "GET", true, "route:networkFirst:none"),
            ("/app.js", "GET", false, "precache"),
            ("/app.js?v=2", "GET", false, "precache"),
            ("/api/orders?x=1", "GET", false, "route:networkFirst:api"),
            ("/api/orders", "POST", false, "outbox:orders"),
            ("/api/orders/7", "put", false, "outbox:orders"),
            ("/api/orders", "DELETE", false, "network"),
            ("/api/other", "POST", false, "network"),
            ("/unknown.png", "GET", false, "route:swr:rest"),
            ("/ofrep/v1/evaluate/flags", "POST", false, "ofrep:bulk"),
            (
                "/ofrep/v1/evaluate/flags/theme",
                "POST",
                false,
                "ofrep:theme",
            ),
            ("/ofrep/v1/evaluate/flags/a/b", "POST", false, "network"),
            ("/ofrep/v1/evaluate/flags", "GET", false, "route:swr:rest"),
        ];
        for (path, method, nav, want) in cases {
            let url = format!("{O}{path}");
            let got = describe(route(&c, &p, facts(&url, method, *nav)));
            assert_eq!(&got, want, "{method} {path} navigate={nav}");
        }
    }

    #[test]
    fn without_a_flags_section_ofrep_passes_through() {
        let c = SwConfig::from_json(r#"{"precache":{"entries":[]}}"#).unwrap();
        let p = Precache::new(O, &c.precache);
        let url = format!("{O}/ofrep/v1/evaluate/flags");
        assert_eq!(route(&c, &p, facts(&url, "POST", false)), Decision::Network);
    }

    #[test]
    fn cross_origin_requests_pass_through() {
        let c = config();
        let p = Precache::new(O, &c.precache);
        for url in [
            "https://cdn.example/app.js",
            "http://127.0.0.1:87870/app.js",
        ] {
            assert_eq!(route(&c, &p, facts(url, "GET", false)), Decision::Network);
        }
        let post = "https://api.example/api/orders";
        assert_eq!(route(&c, &p, facts(post, "POST", false)), Decision::Network);
    }

    #[test]
    fn path_of_strips_origin_query_and_fragment() {
        assert_eq!(path_of("http://h:1/a/b?q=1#f"), "/a/b");
        assert_eq!(path_of("http://h:1"), "/");
        assert!(same_origin("http://h:1", "http://h:1?x"));
        assert!(!same_origin("http://h:1", "http://h:12/"));
    }
}
