//! Routing: picks how a request is answered (precache, a runtime route, or the network).

use crate::config::{RouteConfig, SwConfig};
use crate::precache::Precache;

/// The decision for one request.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision<'a> {
    /// Serve from the precache under this key (network if somehow missing).
    Precached(&'a str),
    /// Use this runtime route.
    Route(&'a RouteConfig),
    /// Not ours: go to the network untouched.
    Network,
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

/// Routes a request. Only same-origin GETs are cached; everything else passes through.
pub fn route<'a>(
    config: &'a SwConfig,
    precache: &'a Precache,
    req: RequestFacts<'_>,
) -> Decision<'a> {
    if !req.same_origin || !req.method.eq_ignore_ascii_case("GET") {
        return Decision::Network;
    }
    let path = path_of(req.url);
    // Runtime routes win over the precache for navigations, so fresh HTML is preferred
    // online and the precached shell is the offline fallback.
    for r in &config.routes {
        let prefix_ok = r
            .matcher
            .path_prefix
            .as_deref()
            .is_none_or(|p| path.starts_with(p));
        let nav_ok = !r.matcher.navigation || req.navigate;
        if prefix_ok && nav_ok && (r.matcher.navigation || r.matcher.path_prefix.is_some()) {
            return Decision::Route(r);
        }
    }
    match precache.key_for(req.url) {
        Some(key) => Decision::Precached(key),
        None => Decision::Network,
    }
}

/// The path of an absolute URL (`http://h:1/a/b?q` → `/a/b`).
fn path_of(url: &str) -> &str {
    let after_scheme = url.split_once("://").map_or(url, |(_, r)| r);
    let path = after_scheme.find('/').map_or("/", |i| &after_scheme[i..]);
    path.split(['?', '#']).next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StrategyKind;

    const O: &str = "http://127.0.0.1:8787";

    fn config() -> SwConfig {
        SwConfig::from_json(
            r#"{"precache":{"entries":[{"url":"/index.html","revision":"1"},{"url":"/app.js","revision":"2"}]},
                "routes":[{"match":{"navigation":true},"strategy":"networkFirst","networkTimeoutMs":3000},
                          {"match":{"pathPrefix":"/api/"},"strategy":"networkFirst","cacheName":"api"}],
                "navigationFallback":"/index.html"}"#,
        )
        .unwrap()
    }

    fn facts<'a>(url: &'a str, method: &'a str, navigate: bool) -> RequestFacts<'a> {
        RequestFacts {
            url,
            method,
            navigate,
            same_origin: url.starts_with(O),
        }
    }

    #[test]
    fn requests_are_routed_by_kind() {
        let c = config();
        let p = Precache::new(O, &c.precache);
        let cases: &[(&str, &str, bool, &str)] = &[
            ("/", "GET", true, "route:networkFirst:none"),
            ("/app.js", "GET", false, "precache"),
            ("/api/orders?x=1", "GET", false, "route:networkFirst:api"),
            ("/api/orders", "POST", false, "network"),
            ("/unknown.png", "GET", false, "network"),
        ];
        for (path, method, nav, want) in cases {
            let url = format!("{O}{path}");
            let got = match route(&c, &p, facts(&url, method, *nav)) {
                Decision::Precached(_) => "precache".to_owned(),
                Decision::Route(r) => format!(
                    "route:{}:{}",
                    match r.strategy {
                        StrategyKind::NetworkFirst => "networkFirst",
                        StrategyKind::CacheFirst => "cacheFirst",
                        StrategyKind::NetworkOnly => "networkOnly",
                    },
                    r.cache_name.as_deref().unwrap_or("none")
                ),
                Decision::Network => "network".to_owned(),
            };
            assert_eq!(&got, want, "{method} {path} navigate={nav}");
        }
    }

    #[test]
    fn cross_origin_requests_pass_through() {
        let c = config();
        let p = Precache::new(O, &c.precache);
        let url = "https://cdn.example/app.js";
        assert_eq!(route(&c, &p, facts(url, "GET", false)), Decision::Network);
    }

    #[test]
    fn path_of_strips_origin_query_and_fragment() {
        assert_eq!(path_of("http://h:1/a/b?q=1#f"), "/a/b");
        assert_eq!(path_of("http://h:1"), "/");
    }
}
