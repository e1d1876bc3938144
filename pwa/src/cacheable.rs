//! Which responses a runtime cache may store: a status on the route's allowlist, and no
//! `Cache-Control: no-store` / `private` (unless the route allows them) and no `Vary: *`.

use crate::config::CacheableConfig;

/// Whether a response with this status and these headers may be stored.
pub fn cacheable(
    status: u16,
    cache_control: Option<&str>,
    vary: Option<&str>,
    cfg: &CacheableConfig,
) -> bool {
    if !cfg.statuses.contains(&status) {
        return false;
    }
    if vary.is_some_and(|v| v.split(',').any(|f| f.trim() == "*")) {
        return false;
    }
    let directives = cache_control.unwrap_or("").to_ascii_lowercase();
    !directives.split(',').any(|d| {
        let name = d.split('=').next().unwrap_or(d).trim();
        (name == "no-store" && !cfg.allow_no_store) || (name == "private" && !cfg.allow_private)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_allowed_statuses_without_no_store_or_private_are_stored() {
        let d = CacheableConfig::default();
        let cases: &[(u16, Option<&str>, Option<&str>, bool)] = &[
            (200, None, None, true),
            (200, Some("no-cache"), None, true),
            (
                200,
                Some("public, max-age=60"),
                Some("accept-encoding"),
                true,
            ),
            (200, Some("No-Store"), None, false),
            (200, Some("max-age=0, private"), None, false),
            (200, Some("private=\"set-cookie\""), None, false),
            (200, None, Some("accept, *"), false),
            (404, None, None, false),
            (206, None, None, false),
            (0, None, None, false),
        ];
        for (status, cc, vary, want) in cases {
            assert_eq!(
                cacheable(*status, *cc, *vary, &d),
                *want,
                "{status} {cc:?} {vary:?}"
            );
        }
    }

    #[test]
    fn a_route_can_allow_more() {
        let loose = CacheableConfig {
            statuses: vec![200, 404],
            allow_no_store: true,
            allow_private: true,
        };
        assert!(cacheable(404, Some("no-store, private"), None, &loose));
        assert!(!cacheable(500, None, None, &loose));
    }
}
