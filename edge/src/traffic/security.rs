//! Security headers on every response the edge sends, and the limits that keep bad input
//! from costing anything: set when the origin did not set them, never overriding it.

/// Default `Strict-Transport-Security` (two years; sent over https only, as RFC 6797 §7.2
/// has browsers ignore it over plain http).
pub(crate) const DEFAULT_HSTS: &str = "max-age=63072000; includeSubDomains";
/// CSP for the edge's own JSON answers: they are data, never documents.
pub(crate) const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// Settings (`HSTS`, `CSP`, `FRAME_OPTIONS`, `REFERRER_POLICY` variables; `off` disables).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Policy {
    pub(crate) hsts: Option<String>,
    /// CSP for proxied responses; `None` leaves the origin's choice alone.
    pub(crate) csp: Option<String>,
    pub(crate) frame_options: Option<String>,
    pub(crate) referrer_policy: Option<String>,
}

impl Policy {
    /// Reads the policy from worker variables.
    pub(crate) fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        let setting =
            |name: &str, default: Option<&str>| match get(name).map(|v| v.trim().to_owned()) {
                Some(v) if v.eq_ignore_ascii_case("off") => None,
                Some(v) if !v.is_empty() => Some(v),
                _ => default.map(str::to_owned),
            };
        Self {
            hsts: setting("HSTS", Some(DEFAULT_HSTS)),
            csp: setting("CSP", None),
            frame_options: setting("FRAME_OPTIONS", Some("DENY")),
            referrer_policy: setting("REFERRER_POLICY", Some("strict-origin-when-cross-origin")),
        }
    }

    /// Headers to add to a response. `own` is true for the edge's own answers (JSON APIs),
    /// `https` whether the visitor came over TLS; `present` says whether the response
    /// already has a header (the origin's choice wins).
    pub(crate) fn headers(
        &self,
        own: bool,
        https: bool,
        present: impl Fn(&str) -> bool,
    ) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let mut add = |name: &'static str, value: Option<&str>| {
            if let Some(v) = value {
                if !present(name) {
                    out.push((name, v.to_owned()));
                }
            }
        };
        add("x-content-type-options", Some("nosniff"));
        add("referrer-policy", self.referrer_policy.as_deref());
        add("x-frame-options", self.frame_options.as_deref());
        if https {
            add("strict-transport-security", self.hsts.as_deref());
        }
        add(
            "content-security-policy",
            if own {
                Some(API_CSP)
            } else {
                self.csp.as_deref()
            },
        );
        out
    }
}

/// Response headers the edge strips from origin answers: they advertise software versions.
pub(crate) const STRIPPED_RESPONSE_HEADERS: &[&str] = &["x-powered-by", "x-aspnet-version"];

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(pairs: &[(&str, &str)]) -> Policy {
        Policy::from_lookup(|k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn defaults_cover_sniffing_referrers_framing_and_https() {
        let h = policy(&[]).headers(false, true, |_| false);
        let names: Vec<_> = h.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "x-content-type-options",
                "referrer-policy",
                "x-frame-options",
                "strict-transport-security"
            ]
        );
        assert!(!policy(&[])
            .headers(false, false, |_| false)
            .iter()
            .any(|(n, _)| *n == "strict-transport-security"));
    }

    #[test]
    fn the_edge_s_own_answers_get_a_locked_down_csp_and_proxied_ones_the_configured_one() {
        let p = policy(&[("CSP", "default-src 'self'")]);
        let own = p.headers(true, false, |_| false);
        assert!(own.contains(&("content-security-policy", API_CSP.to_owned())));
        let proxied = p.headers(false, false, |_| false);
        assert!(proxied.contains(&("content-security-policy", "default-src 'self'".to_owned())));
        assert!(!policy(&[])
            .headers(false, false, |_| false)
            .iter()
            .any(|(n, _)| *n == "content-security-policy"));
    }

    #[test]
    fn origin_headers_win_and_off_disables() {
        let p = policy(&[("FRAME_OPTIONS", "off"), ("HSTS", "max-age=1")]);
        let h = p.headers(false, true, |n| n == "referrer-policy");
        assert!(!h
            .iter()
            .any(|(n, _)| *n == "referrer-policy" || *n == "x-frame-options"));
        assert!(h.contains(&("strict-transport-security", "max-age=1".to_owned())));
    }
}
