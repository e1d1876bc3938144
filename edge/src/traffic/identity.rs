//! Visitor identity: where the targetingKey comes from, so a visitor gets the same variants
//! on every request — a first-party cookie the edge sets (default), a request header set by
//! an upstream layer, or the `sub` claim of a JWT bearer token.

/// Default name of the visitor cookie.
pub(crate) const DEFAULT_COOKIE: &str = "ef_uid";
/// Lifetime of the visitor cookie: one year.
const COOKIE_MAX_AGE: u32 = 365 * 24 * 3600;

/// Where the targetingKey comes from (`IDENTITY_SOURCE`: `cookie`, `cookie:NAME`,
/// `header:NAME`, `jwt`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
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
    pub(crate) fn parse(spec: Option<&str>) -> Result<Self, String> {
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
pub(crate) struct Visitor {
    /// The targetingKey, when the source provides one.
    pub(crate) key: Option<String>,
    /// A `Set-Cookie` value to send, when the edge just issued a new id (or re-signed one).
    pub(crate) set_cookie: Option<String>,
    /// Whether the edge can vouch for `key`: an id it issued and signed, a verified JWT's
    /// subject, or a header set by a trusted layer in front. Only vouched keys count as
    /// experiment units and exposures (issue 14): an id anyone can choose could steer a gate.
    pub(crate) vouched: bool,
}

/// The experiment unit a request may count for `targeting_key`: the caller's own vouched
/// identity, or any key when the caller is a server with an evaluation API key. Anything else
/// — a targetingKey an anonymous client made up — is served but counts for no unit, exposure
/// or conversion, so it cannot move a gate or an experiment. Without signing keys
/// (`IDENTITY_KEYS` unset) nothing can be vouched for and every key counts, as before.
pub(crate) fn counted_unit<'k>(
    targeting_key: Option<&'k str>,
    visitor: &Visitor,
    api_caller: bool,
    keys: &Keys,
) -> Option<&'k str> {
    let key = targeting_key?;
    let own = visitor.vouched && visitor.key.as_deref() == Some(key);
    (!keys.signing() || api_caller || own).then_some(key)
}

/// Keys that sign visitor ids (`IDENTITY_KEYS`: comma-separated secrets, ≥ 16 bytes each;
/// the first signs, every one verifies, so a key can be rotated without losing visitors).
/// Empty: ids are not signed (the old behaviour; `/__edge/status` says so).
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct Keys(Vec<Vec<u8>>);

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keys({} configured)", self.0.len())
    }
}

impl Keys {
    /// Parses `IDENTITY_KEYS`.
    pub(crate) fn parse(list: Option<&str>) -> Result<Self, String> {
        let keys: Vec<Vec<u8>> = list
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(|k| k.as_bytes().to_vec())
            .collect();
        if keys.iter().any(|k| k.len() < 16) {
            return Err("IDENTITY_KEYS entries must be at least 16 characters".into());
        }
        Ok(Self(keys))
    }

    /// Whether ids are signed.
    pub(crate) fn signing(&self) -> bool {
        !self.0.is_empty()
    }

    /// The cookie value for `id`: `id.mac` (mac = 128 bits of HMAC-SHA256, hex).
    fn sign(&self, id: &str) -> String {
        match self.0.first() {
            Some(key) => format!("{id}.{}", mac(key, id)),
            None => id.to_owned(),
        }
    }

    /// The id of a cookie value, and whether it was signed with the current key; `None`
    /// when it is not a well-formed id signed by one of the keys.
    fn open<'v>(&self, value: &'v str) -> Option<(&'v str, bool)> {
        use subtle::ConstantTimeEq;
        let Some(first) = self.0.first() else {
            return valid_id(value).then_some((value, true));
        };
        let (id, tag) = value.split_once('.')?;
        if !valid_id(id) {
            return None;
        }
        let matches = |key: &Vec<u8>| bool::from(mac(key, id).as_bytes().ct_eq(tag.as_bytes()));
        if matches(first) {
            Some((id, true))
        } else {
            self.0.iter().skip(1).any(matches).then_some((id, false))
        }
    }
}

/// HMAC-SHA256 (RFC 2104) of a visitor id, truncated to 128 bits, as hex.
fn mac(key: &[u8], id: &str) -> String {
    hmac_sha256(key, format!("ef_uid:{id}").as_bytes())
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// HMAC-SHA256 over `sha2` (the worker already has it; no second crypto crate).
pub(crate) fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// Finds the visitor's key. `new_id` is called only when a cookie must be issued (the caller
/// passes randomness in: the policy stays pure). `verified_sub` is the `sub` of a bearer JWT
/// the host verified (only looked at for [`Source::Jwt`]).
pub(crate) fn identify(
    source: &Source,
    keys: &Keys,
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
                vouched: true,
            },
            // Unverifiable or absent token: anonymous, never trusted.
            None => identify(
                &Source::Cookie(DEFAULT_COOKIE.into()),
                keys,
                header,
                secure,
                new_id,
                None,
            ),
        },
        Source::Cookie(name) => match header("cookie")
            .as_deref()
            .and_then(|c| cookie_value(c, name))
            .and_then(|v| keys.open(v))
        {
            // Signed with the current key (or ids are not signed at all).
            Some((id, true)) => Visitor {
                key: Some(id.to_owned()),
                set_cookie: None,
                vouched: true,
            },
            // Signed with an older key: the same visitor, re-signed with the current one.
            Some((id, false)) => Visitor {
                set_cookie: Some(set_cookie(name, &keys.sign(id), secure)),
                key: Some(id.to_owned()),
                vouched: true,
            },
            // Absent, unsigned, forged or tampered: a new id of the edge's own.
            None => match new_id() {
                Some(id) => Visitor {
                    set_cookie: Some(set_cookie(name, &keys.sign(&id), secure)),
                    key: Some(id),
                    vouched: true,
                },
                None => Visitor {
                    key: None,
                    set_cookie: None,
                    vouched: false,
                },
            },
        },
        // Set by a layer in front of the edge, which is trusted to have authenticated it.
        Source::Header(name) => Visitor {
            key: header(name).filter(|v| !v.is_empty()),
            set_cookie: None,
            vouched: true,
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
pub(crate) fn format_id(bytes: [u8; 16]) -> String {
    // One allocation (every request makes one of these: its request id).
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(32);
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
    out
}

/// The value of cookie `name` in a `Cookie` header.
pub(crate) fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
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
            &Keys::default(),
            headers(&[("cookie", &cookie)]),
            true,
            || panic!("no new id needed"),
            None,
        );
        assert_eq!(
            v,
            Visitor {
                key: Some(ID.into()),
                set_cookie: None,
                vouched: true,
            }
        );
    }

    #[test]
    fn a_first_visit_issues_a_cookie_with_safe_attributes() {
        let v = identify(
            &Source::Cookie("ef_uid".into()),
            &Keys::default(),
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
            &Keys::default(),
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
            &Keys::default(),
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
            &Keys::default(),
            headers(&[("x-user", "emp-7")]),
            false,
            || None,
            None,
        );
        assert_eq!(v.key.as_deref(), Some("emp-7"));
        // A verified token's subject is the key.
        let v = identify(
            &Source::Jwt,
            &Keys::default(),
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
            &Keys::default(),
            headers(&[("authorization", jwt)]),
            false,
            || Some(ID.into()),
            None,
        );
        assert_eq!(v.key.as_deref(), Some(ID));
        assert!(v.set_cookie.is_some());
    }

    #[test]
    fn only_vouched_or_api_keyed_targeting_keys_count_as_units() {
        let me = Visitor {
            key: Some("me".into()),
            set_cookie: None,
            vouched: true,
        };
        let unvouched = Visitor {
            vouched: false,
            ..me.clone()
        };
        let keys = Keys::parse(Some("key-0123456789abcdef")).unwrap();
        assert_eq!(counted_unit(Some("me"), &me, false, &keys), Some("me"));
        assert_eq!(counted_unit(Some("someone-else"), &me, false, &keys), None);
        assert_eq!(counted_unit(Some("me"), &unvouched, false, &keys), None);
        assert_eq!(
            counted_unit(Some("anyone"), &unvouched, true, &keys),
            Some("anyone")
        );
        assert_eq!(counted_unit(None, &me, true, &keys), None);
        let unsigned = Keys::default();
        assert_eq!(
            counted_unit(Some("anyone"), &unvouched, false, &unsigned),
            Some("anyone")
        );
    }

    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block size is hashed first.
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn signed_ids_cannot_be_chosen_and_keys_rotate() {
        const OLD: &str = "old-key-0123456789abcdef";
        const NEW: &str = "new-key-0123456789abcdef";
        let old = Keys::parse(Some(OLD)).unwrap();
        let rotated = Keys::parse(Some(&format!("{NEW},{OLD}"))).unwrap();
        let visit = |keys: &Keys, cookie: &str| {
            let c = format!("ef_uid={cookie}");
            identify(
                &Source::Cookie("ef_uid".into()),
                keys,
                headers(&[("cookie", &c)]),
                false,
                || Some("f".repeat(32)),
                None,
            )
        };
        let signed = old.sign(ID);
        assert_eq!(signed.len(), 32 + 1 + 32);
        let v = visit(&old, &signed);
        assert_eq!(
            (v.key.as_deref(), v.set_cookie.is_none(), v.vouched),
            (Some(ID), true, true)
        );
        // Unsigned, forged or tampered ids are replaced by a new, signed one.
        let other = "0".repeat(32);
        for forged in [
            ID.to_owned(),
            format!("{other}.{}", &signed[33..]),
            format!("{}x", signed),
        ] {
            let v = visit(&old, &forged);
            assert_eq!(v.key.as_deref(), Some("f".repeat(32).as_str()), "{forged}");
            assert!(v.set_cookie.unwrap().contains(&old.sign(&"f".repeat(32))));
        }
        // After a rotation the old signature still identifies the visitor, re-signed.
        let v = visit(&rotated, &signed);
        assert_eq!(v.key.as_deref(), Some(ID));
        assert!(v.set_cookie.unwrap().contains(&rotated.sign(ID)));
        assert!(Keys::parse(Some("short")).is_err());
        assert!(!Keys::parse(None).unwrap().signing());
    }

    #[test]
    fn ids_are_32_hex_digits() {
        assert_eq!(format_id([0xab; 16]), "ab".repeat(16));
        let mut bytes = [0u8; 16];
        bytes[0] = 0x0f;
        bytes[15] = 0xf0;
        assert_eq!(format_id(bytes), format!("0f{}f0", "0".repeat(28)));
        assert!(valid_id(&format_id([7; 16])));
    }
}
