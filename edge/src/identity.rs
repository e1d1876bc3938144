//! Visitor identity: where the targetingKey comes from, so a visitor gets the same variants
//! on every request — a first-party cookie the edge sets (default), a request header set by
//! an upstream layer, or the `sub` claim of a JWT bearer token.

/// Default name of the visitor cookie.
pub const DEFAULT_COOKIE: &str = "ef_uid";
/// Lifetime of the visitor cookie: one year.
const COOKIE_MAX_AGE: u32 = 365 * 24 * 3600;

/// Where the targetingKey comes from (`IDENTITY_SOURCE`: `cookie`, `cookie:NAME`,
/// `header:NAME`, `jwt`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A cookie the edge sets on the first visit.
    Cookie(String),
    /// A request header set by something in front of the edge (e.g. an auth proxy).
    Header(String),
    /// The `sub` claim of `Authorization: Bearer <JWT>`, once the host has verified the token
    /// (`jwt.rs`, `host/jwt.rs`: HS256 with `JWT_SECRET`, RS256/ES256 from `JWT_JWKS_URL`).
    /// Without a verified token the visitor is anonymous: the edge cookie identifies them.
    Jwt,
}

impl Source {
    /// Parses the `IDENTITY_SOURCE` variable.
    pub fn parse(spec: Option<&str>) -> Result<Self, String> {
        let spec = spec
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .unwrap_or("cookie");
        match spec.split_once(':') {
            None if spec == "cookie" => Ok(Source::Cookie(DEFAULT_COOKIE.into())),
            None if spec == "jwt" => Ok(Source::Jwt),
            Some(("cookie", name)) if valid_token(name) => Ok(Source::Cookie(name.into())),
            Some(("header", name)) if valid_token(name) => {
                Ok(Source::Header(name.to_ascii_lowercase()))
            }
            _ => Err(format!(
                "IDENTITY_SOURCE must be cookie, cookie:NAME, header:NAME or jwt, got {spec:?}"
            )),
        }
    }
}

fn valid_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// The visitor's identity for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visitor {
    /// The targetingKey, when the source provides one.
    pub key: Option<String>,
    /// A `Set-Cookie` value to send, when the edge just issued a new id.
    pub set_cookie: Option<String>,
}

/// Finds the visitor's key. `new_id` is called only when a cookie must be issued (the caller
/// passes randomness in: the policy stays pure). `verified_sub` is the `sub` of a bearer JWT
/// the host verified (only looked at for [`Source::Jwt`]).
pub fn identify(
    source: &Source,
    header: impl Fn(&str) -> Option<String>,
    secure: bool,
    new_id: impl FnOnce() -> Option<String>,
    verified_sub: Option<String>,
) -> Visitor {
    match source {
        Source::Jwt => match verified_sub {
            Some(sub) => Visitor {
                key: Some(sub),
                set_cookie: None,
            },
            // Unverifiable or absent token: anonymous, never trusted.
            None => identify(
                &Source::Cookie(DEFAULT_COOKIE.into()),
                header,
                secure,
                new_id,
                None,
            ),
        },
        Source::Cookie(name) => match header("cookie")
            .as_deref()
            .and_then(|c| cookie_value(c, name))
        {
            Some(v) if valid_id(v) => Visitor {
                key: Some(v.to_owned()),
                set_cookie: None,
            },
            _ => match new_id() {
                Some(id) => Visitor {
                    set_cookie: Some(set_cookie(name, &id, secure)),
                    key: Some(id),
                },
                None => Visitor {
                    key: None,
                    set_cookie: None,
                },
            },
        },
        Source::Header(name) => Visitor {
            key: header(name).filter(|v| !v.is_empty()),
            set_cookie: None,
        },
    }
}

/// Visitor ids the edge issues: 32 lowercase hex digits. Anything else in the cookie is
/// replaced, so a tampered cookie cannot inject arbitrary strings into contexts and logs.
fn valid_id(v: &str) -> bool {
    v.len() == 32
        && v.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Formats 16 random bytes as a visitor id.
pub fn format_id(bytes: [u8; 16]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k.trim() == name).then(|| v.trim().trim_matches('"'))
    })
}

fn set_cookie(name: &str, id: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={id}; Path=/; Max-Age={COOKIE_MAX_AGE}; HttpOnly; SameSite=Lax{secure}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |n| {
            pairs
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| (*v).to_owned())
        }
    }
    const ID: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn sources_parse_from_the_variable() {
        assert_eq!(Source::parse(None), Ok(Source::Cookie("ef_uid".into())));
        assert_eq!(
            Source::parse(Some("cookie:uid")),
            Ok(Source::Cookie("uid".into()))
        );
        assert_eq!(
            Source::parse(Some("header:X-User-Id")),
            Ok(Source::Header("x-user-id".into()))
        );
        assert_eq!(Source::parse(Some("jwt")), Ok(Source::Jwt));
        for bad in ["header:", "cookie:a b", "ip", "header:a;b"] {
            assert!(Source::parse(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_returning_visitor_keeps_the_cookie_id() {
        let cookie = format!("a=1; ef_uid={ID}; b=2");
        let v = identify(
            &Source::Cookie("ef_uid".into()),
            headers(&[("cookie", &cookie)]),
            true,
            || panic!("no new id needed"),
            None,
        );
        assert_eq!(
            v,
            Visitor {
                key: Some(ID.into()),
                set_cookie: None
            }
        );
    }

    #[test]
    fn a_first_visit_issues_a_cookie_with_safe_attributes() {
        let v = identify(
            &Source::Cookie("ef_uid".into()),
            headers(&[]),
            true,
            || Some(ID.into()),
            None,
        );
        assert_eq!(v.key.as_deref(), Some(ID));
        assert_eq!(
            v.set_cookie.as_deref(),
            Some("ef_uid=0123456789abcdef0123456789abcdef; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax; Secure")
        );
        let plain = identify(
            &Source::Cookie("ef_uid".into()),
            headers(&[]),
            false,
            || Some(ID.into()),
            None,
        );
        assert!(
            !plain.set_cookie.unwrap().contains("Secure"),
            "no Secure over plain http (local dev)"
        );
    }

    #[test]
    fn a_tampered_cookie_is_replaced() {
        let v = identify(
            &Source::Cookie("ef_uid".into()),
            headers(&[("cookie", "ef_uid=<script>")]),
            false,
            || Some(ID.into()),
            None,
        );
        assert_eq!(v.key.as_deref(), Some(ID));
        assert!(v.set_cookie.is_some());
    }

    #[test]
    fn header_and_jwt_sources_read_the_request() {
        let v = identify(
            &Source::Header("x-user".into()),
            headers(&[("x-user", "emp-7")]),
            false,
            || None,
            None,
        );
        assert_eq!(v.key.as_deref(), Some("emp-7"));
        // A verified token's subject is the key.
        let v = identify(
            &Source::Jwt,
            headers(&[]),
            false,
            || None,
            Some("user-123".into()),
        );
        assert_eq!(v.key.as_deref(), Some("user-123"));
        // {"alg":"none"}.{"sub":"user-123"}.sig — not verified: anonymous, with an edge cookie.
        let jwt = "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1c2VyLTEyMyJ9.c2ln";
        let v = identify(
            &Source::Jwt,
            headers(&[("authorization", jwt)]),
            false,
            || Some(ID.into()),
            None,
        );
        assert_eq!(v.key.as_deref(), Some(ID));
        assert!(v.set_cookie.is_some());
    }

    #[test]
    fn ids_are_32_hex_digits() {
        assert_eq!(format_id([0xab; 16]), "ab".repeat(16));
        assert!(valid_id(&format_id([7; 16])));
    }
}
