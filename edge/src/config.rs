//! Worker configuration read from `[vars]` (wrangler.toml / `--var`), validated once per isolate.

use crate::error::EdgeError;
use crate::traffic::identity;

/// Default path prefix of the edge's own endpoints (status now, admin API later).
pub(crate) const DEFAULT_ADMIN_PREFIX: &str = "/__edge";
/// Default KV key of the active flag set.
pub(crate) const DEFAULT_FLAGS_KEY: &str = "flags";

/// Everything the worker needs from its environment, parsed and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Config {
    /// Base URL of the stable origin (no trailing slash).
    pub(crate) origin: String,
    /// Base URL of the canary origin, when one is configured.
    pub(crate) canary_origin: Option<String>,
    /// Prefix of the edge's own endpoints, e.g. `/__edge`.
    pub(crate) admin_prefix: String,
    /// KV key holding the active flag set.
    pub(crate) flags_key: String,
    /// How often an isolate re-checks KV for a new flag set (`REFRESH_SECONDS`, default 5).
    pub(crate) refresh_ms: u64,
    /// Where visitors' targetingKey comes from (`IDENTITY_SOURCE`).
    pub(crate) identity: identity::Source,
    /// Origins allowed to call OFREP cross-origin (`CORS_ALLOWED_ORIGINS`: `*` or a
    /// comma-separated list; empty = same-origin only).
    pub(crate) cors: Cors,
    /// Whether HTML gets the flag bootstrap (`BOOTSTRAP`, default on).
    pub(crate) bootstrap: bool,
    /// Whether the request worker's common proxied GET/HEAD take the fast path (`FAST_PATH`,
    /// default on; `off` sends every request through the full path, as a reference).
    pub(crate) fast_path: bool,
    /// Version history kept for rollback (`HISTORY_LIMIT`, default 20).
    pub(crate) history_limit: usize,
    /// Audit records kept (`AUDIT_LIMIT`, default 500).
    pub(crate) audit_limit: usize,
    /// KV key of the optional route table (`ROUTES_KEY`, default `routes`).
    pub(crate) routes_key: String,
    /// Flag that splits traffic in the default route table (`SPLIT_FLAG`, default `backend`).
    pub(crate) split_flag: String,
    /// Event names counted under their own name besides the ones flags declare
    /// (`EVENT_NAMES`, comma-separated; default none). See `metrics::event_series`.
    pub(crate) event_names: Vec<String>,
    /// Claims a visitor JWT must carry (`JWT_ISSUER`, `JWT_AUDIENCE`; `IDENTITY_SOURCE=jwt`).
    pub(crate) jwt_rules: crate::jwt::Rules,
    /// Where RS256/ES256 keys come from (`JWT_JWKS_URL`); HS256 uses the secret `JWT_SECRET`.
    pub(crate) jwks_url: Option<String>,
    /// Keys signing visitor ids (secret `IDENTITY_KEYS`; empty = unsigned, the old way).
    pub(crate) identity_keys: identity::Keys,
    /// Server callers allowed to evaluate for a `targetingKey` of their own choosing that
    /// still counts as an experiment unit (secret `EVALUATION_KEYS`, `name:key,…`).
    pub(crate) evaluation_keys: crate::flags::admin::Tokens,
    /// Path prefixes of the origins' own control endpoints, never proxied (`PRIVATE_PATHS`,
    /// comma-separated; default `/__origin/`): a visitor must not reach a fault switch.
    pub(crate) private_paths: Vec<String>,
}

/// Cross-origin policy for the OFREP endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cors {
    /// Same-origin only: no CORS headers.
    None,
    /// Any origin (no credentials).
    Any,
    /// These exact origins (credentials allowed).
    List(Vec<String>),
}

impl Config {
    /// Builds the configuration from a variable lookup (the Worker `Env` in production, a
    /// closure in tests), so the rules live in plain Rust.
    pub(crate) fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, EdgeError> {
        let origin = get("ORIGIN_URL")
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| EdgeError::Config("ORIGIN_URL is not set".into()))?;
        let origin = normalise_origin("ORIGIN_URL", &origin)?;
        let canary_origin = match get("CANARY_ORIGIN_URL").filter(|s| !s.trim().is_empty()) {
            Some(url) => Some(normalise_origin("CANARY_ORIGIN_URL", &url)?),
            None => None,
        };
        let admin_prefix = get("ADMIN_PREFIX").unwrap_or_else(|| DEFAULT_ADMIN_PREFIX.into());
        if !admin_prefix.starts_with('/') || admin_prefix.len() < 2 || admin_prefix.ends_with('/') {
            return Err(EdgeError::Config(format!(
                "ADMIN_PREFIX must look like /__edge (leading slash, no trailing slash), got {admin_prefix:?}"
            )));
        }
        let flags_key = get("FLAGS_KEY")
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| DEFAULT_FLAGS_KEY.into());
        let number = |name: &str, default: u64| -> Result<u64, EdgeError> {
            match get(name).filter(|s| !s.trim().is_empty()) {
                None => Ok(default),
                Some(v) => v.trim().parse().map_err(|_| {
                    EdgeError::Config(format!("{name} must be a whole number, got {v:?}"))
                }),
            }
        };
        let refresh_ms = number("REFRESH_SECONDS", 5)?.saturating_mul(1000);
        let identity = identity::Source::parse(get("IDENTITY_SOURCE").as_deref())
            .map_err(EdgeError::Config)?;
        let cors = match get("CORS_ALLOWED_ORIGINS")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
        {
            s if s.is_empty() => Cors::None,
            s if s == "*" => Cors::Any,
            s => Cors::List(
                s.split(',')
                    .map(|o| o.trim().trim_end_matches('/').to_owned())
                    .filter(|o| !o.is_empty())
                    .collect(),
            ),
        };
        let bootstrap = !matches!(
            get("BOOTSTRAP").as_deref().map(str::trim),
            Some("off" | "false" | "0")
        );
        let fast_path = !matches!(
            get("FAST_PATH").as_deref().map(str::trim),
            Some("off" | "false" | "0")
        );
        let limit = |name: &str, default: usize| -> Result<usize, EdgeError> {
            Ok(usize::try_from(number(name, default as u64)?)
                .unwrap_or(usize::MAX)
                .max(1))
        };
        Ok(Self {
            origin,
            canary_origin,
            admin_prefix,
            flags_key,
            refresh_ms,
            identity,
            cors,
            bootstrap,
            fast_path,
            history_limit: limit("HISTORY_LIMIT", crate::flags::store::DEFAULT_HISTORY_LIMIT)?,
            audit_limit: limit("AUDIT_LIMIT", crate::flags::store::DEFAULT_AUDIT_LIMIT)?,
            routes_key: get("ROUTES_KEY")
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "routes".into()),
            split_flag: get("SPLIT_FLAG")
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "backend".into()),
            event_names: get("EVENT_NAMES")
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            private_paths: get("PRIVATE_PATHS")
                .unwrap_or_else(|| "/__origin/".into())
                .split(',')
                .map(str::trim)
                .filter(|p| p.starts_with('/'))
                .map(str::to_owned)
                .collect(),
            identity_keys: identity::Keys::parse(get("IDENTITY_KEYS").as_deref())
                .map_err(EdgeError::Config)?,
            evaluation_keys: crate::flags::admin::Tokens::parse(
                get("EVALUATION_KEYS").as_deref(),
                None,
            )?,
            jwt_rules: crate::jwt::Rules {
                issuer: get("JWT_ISSUER").filter(|s| !s.trim().is_empty()),
                audience: get("JWT_AUDIENCE").filter(|s| !s.trim().is_empty()),
            },
            jwks_url: match get("JWT_JWKS_URL").filter(|s| !s.trim().is_empty()) {
                Some(url) if url.starts_with("https://") || url.starts_with("http://") => Some(url),
                Some(_) => {
                    return Err(EdgeError::Config(
                        "JWT_JWKS_URL must be an http(s) URL".into(),
                    ))
                }
                None => None,
            },
        })
    }

    /// Whether `path` is an origin's private endpoint, which the edge never proxies.
    pub(crate) fn is_private(&self, path: &str) -> bool {
        self.private_paths
            .iter()
            .any(|p| path.starts_with(p.as_str()))
    }

    /// The path below the admin prefix, if `path` is one of the edge's own endpoints.
    pub(crate) fn admin_subpath<'p>(&self, path: &'p str) -> Option<&'p str> {
        let rest = path.strip_prefix(self.admin_prefix.as_str())?;
        (rest.is_empty() || rest.starts_with('/')).then_some(rest)
    }
}

/// A configured origin, checked by the same rule as the route table's (the message names
/// the variable, never its value).
fn normalise_origin(name: &str, url: &str) -> Result<String, EdgeError> {
    crate::traffic::split::check_origin(url).map_err(|m| EdgeError::Config(format!("{name} {m}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn defaults_apply_when_only_the_origin_is_set() {
        let c = Config::from_lookup(vars(&[("ORIGIN_URL", "http://127.0.0.1:8788/")])).unwrap();
        assert_eq!(c.origin, "http://127.0.0.1:8788");
        assert_eq!(c.canary_origin, None);
        assert_eq!(c.admin_prefix, "/__edge");
        assert_eq!(c.flags_key, "flags");
        assert_eq!(c.refresh_ms, 5000);
        assert_eq!(c.identity, identity::Source::Cookie("ef_uid".into()));
        assert_eq!(c.cors, Cors::None);
        assert!(c.bootstrap);
        assert!(c.fast_path);
    }

    #[test]
    fn optional_settings_parse_and_bad_values_are_config_errors() {
        let c = Config::from_lookup(vars(&[
            ("ORIGIN_URL", "http://o"),
            ("REFRESH_SECONDS", "0"),
            (
                "CORS_ALLOWED_ORIGINS",
                "https://a.example/, https://b.example",
            ),
            ("BOOTSTRAP", "off"),
            ("FAST_PATH", "off"),
            ("IDENTITY_SOURCE", "header:x-user"),
        ]))
        .unwrap();
        assert_eq!(c.refresh_ms, 0);
        assert_eq!(
            c.cors,
            Cors::List(vec!["https://a.example".into(), "https://b.example".into()])
        );
        assert!(!c.bootstrap);
        assert!(!c.fast_path);
        assert_eq!(c.identity, identity::Source::Header("x-user".into()));
        for (k, v) in [
            ("REFRESH_SECONDS", "soon"),
            ("IDENTITY_SOURCE", "ip"),
            ("HISTORY_LIMIT", "-1"),
        ] {
            assert!(
                Config::from_lookup(vars(&[("ORIGIN_URL", "http://o"), (k, v)])).is_err(),
                "{k}={v}"
            );
        }
    }

    #[test]
    fn a_missing_or_malformed_origin_is_a_config_error() {
        for bad in [
            &[][..],
            &[("ORIGIN_URL", "")],
            &[("ORIGIN_URL", "ftp://x")],
            &[("ORIGIN_URL", "http://a/b")],
        ] {
            let err = Config::from_lookup(vars(bad)).unwrap_err();
            assert!(matches!(err, EdgeError::Config(_)), "{bad:?} gave {err:?}");
        }
    }

    #[test]
    fn admin_prefix_must_be_a_clean_path() {
        for bad in ["edge", "/", "/__edge/"] {
            let r = Config::from_lookup(vars(&[("ORIGIN_URL", "http://o"), ("ADMIN_PREFIX", bad)]));
            assert!(r.is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn origin_control_paths_are_private_by_default() {
        let c = Config::from_lookup(vars(&[("ORIGIN_URL", "http://o")])).unwrap();
        assert!(c.is_private("/__origin/faults"));
        assert!(!c.is_private("/api/orders"));
        let custom = Config::from_lookup(vars(&[
            ("ORIGIN_URL", "http://o"),
            ("PRIVATE_PATHS", "/admin/, /internal/"),
        ]))
        .unwrap();
        assert!(custom.is_private("/internal/x") && !custom.is_private("/__origin/faults"));
    }

    #[test]
    fn admin_subpath_matches_whole_segments_only() {
        let c = Config::from_lookup(vars(&[("ORIGIN_URL", "http://o")])).unwrap();
        assert_eq!(c.admin_subpath("/__edge"), Some(""));
        assert_eq!(c.admin_subpath("/__edge/status"), Some("/status"));
        assert_eq!(c.admin_subpath("/__edgeX/status"), None);
        assert_eq!(c.admin_subpath("/app/__edge"), None);
    }
}
