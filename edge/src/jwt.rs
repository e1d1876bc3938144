//! JWT identity (`IDENTITY_SOURCE=jwt`), the part that needs no cryptography: parsing a
//! compact JWS (RFC 7515), choosing the algorithm and key (RFC 7517/7518), and checking the
//! claims (RFC 7519: `exp`, `nbf`, `iss`, `aud`, `sub`). The signature itself is verified by
//! the host through WebCrypto (`host/jwt.rs`). Only HS256 (a shared secret), RS256 and ES256
//! (keys from a JWKS URL) are accepted; `none` and everything else is refused, and the key
//! type must match the algorithm, so an RSA public key can never be used as an HMAC secret.

use base64::Engine as _;
use serde_json::Value;

/// Clock skew tolerated on `exp` / `nbf` (seconds).
pub(crate) const LEEWAY_SECONDS: u64 = 60;
/// Longest token accepted (bytes): a bearer header is no place for a document.
pub(crate) const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// A signature algorithm the edge verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Alg {
    Hs256,
    Rs256,
    Es256,
}

impl Alg {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "HS256" => Some(Alg::Hs256),
            "RS256" => Some(Alg::Rs256),
            "ES256" => Some(Alg::Es256),
            _ => None,
        }
    }

    /// The JWK `kty` a key for this algorithm has.
    pub(crate) fn key_type(self) -> &'static str {
        match self {
            Alg::Hs256 => "oct",
            Alg::Rs256 => "RSA",
            Alg::Es256 => "EC",
        }
    }
}

/// A parsed, not yet verified token.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub(crate) alg: Alg,
    pub(crate) kid: Option<String>,
    pub(crate) claims: Value,
    /// `base64url(header) "." base64url(payload)`: the bytes the signature covers.
    pub(crate) signing_input: String,
    pub(crate) signature: Vec<u8>,
}

/// Why a token is not accepted (the visitor is then anonymous).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum JwtError {
    #[error("not a compact JWS")]
    Malformed,
    #[error("algorithm {0:?} is not accepted")]
    Algorithm(String),
    #[error("expired")]
    Expired,
    #[error("not valid yet")]
    NotYetValid,
    #[error("wrong issuer")]
    Issuer,
    #[error("wrong audience")]
    Audience,
    #[error("no subject")]
    NoSubject,
    #[error("no key for this token")]
    NoKey,
    #[error("bad signature")]
    Signature,
}

/// The token of `Authorization: Bearer <token>`.
pub(crate) fn bearer(authorization: &str) -> Option<&str> {
    authorization
        .strip_prefix("Bearer ")
        .or_else(|| authorization.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

fn b64(part: &str) -> Result<Vec<u8>, JwtError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| JwtError::Malformed)
}

/// Parses a compact JWS. The header's `alg` must be one the edge verifies; `crit` headers
/// are not understood, so a token carrying them is refused (RFC 7515 §4.1.11).
pub(crate) fn parse(token: &str) -> Result<Token, JwtError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(JwtError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let header: Value = serde_json::from_slice(&b64(h)?).map_err(|_| JwtError::Malformed)?;
    let claims: Value = serde_json::from_slice(&b64(p)?).map_err(|_| JwtError::Malformed)?;
    if !claims.is_object() || header.get("crit").is_some() {
        return Err(JwtError::Malformed);
    }
    let name = header.get("alg").and_then(Value::as_str).unwrap_or("");
    let alg = Alg::parse(name).ok_or_else(|| JwtError::Algorithm(name.to_owned()))?;
    Ok(Token {
        alg,
        kid: header.get("kid").and_then(Value::as_str).map(str::to_owned),
        claims,
        signing_input: format!("{h}.{p}"),
        signature: b64(s)?,
    })
}

/// What the claims must satisfy (`JWT_ISSUER`, `JWT_AUDIENCE`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Rules {
    pub(crate) issuer: Option<String>,
    pub(crate) audience: Option<String>,
}

/// Checks `exp` (required), `nbf`, `iss` and `aud` against `now_s`; returns `sub`.
pub(crate) fn check_claims(claims: &Value, rules: &Rules, now_s: u64) -> Result<String, JwtError> {
    let time = |name: &str| claims.get(name).and_then(Value::as_f64);
    match time("exp") {
        Some(exp) if (now_s as f64) < exp + LEEWAY_SECONDS as f64 => {}
        _ => return Err(JwtError::Expired),
    }
    if time("nbf").is_some_and(|nbf| (now_s as f64) + (LEEWAY_SECONDS as f64) < nbf) {
        return Err(JwtError::NotYetValid);
    }
    if let Some(iss) = &rules.issuer {
        if claims.get("iss").and_then(Value::as_str) != Some(iss.as_str()) {
            return Err(JwtError::Issuer);
        }
    }
    if let Some(aud) = &rules.audience {
        let ok = match claims.get("aud") {
            Some(Value::String(a)) => a == aud,
            Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(aud.as_str())),
            _ => false,
        };
        if !ok {
            return Err(JwtError::Audience);
        }
    }
    claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= 256)
        .map(str::to_owned)
        .ok_or(JwtError::NoSubject)
}

/// The JWK in a JWKS (`{"keys": [...]}`) that may verify a token: same `kid` (when the token
/// names one), the algorithm's key type, an `alg` (if the key states one) equal to the
/// token's, and a `use` (if stated) of `sig`. `None` when there is none — the caller may then
/// refresh the set once (a rotated key).
pub(crate) fn select_key<'a>(jwks: &'a Value, alg: Alg, kid: Option<&str>) -> Option<&'a Value> {
    let name = match alg {
        Alg::Hs256 => "HS256",
        Alg::Rs256 => "RS256",
        Alg::Es256 => "ES256",
    };
    jwks.get("keys")?.as_array()?.iter().find(|k| {
        let field = |f: &str| k.get(f).and_then(Value::as_str);
        field("kty") == Some(alg.key_type())
            && alg != Alg::Hs256
            && kid.is_none_or(|kid| field("kid") == Some(kid))
            && field("alg").is_none_or(|a| a == name)
            && field("use").is_none_or(|u| u == "sig")
            && (alg != Alg::Es256 || field("crv") == Some("P-256"))
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn enc(v: &Value) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    }

    fn token(header: Value, claims: Value) -> String {
        format!("{}.{}.c2ln", enc(&header), enc(&claims))
    }

    #[test]
    fn only_the_three_algorithms_are_accepted() {
        let claims = json!({"sub": "u"});
        for (alg, ok) in [
            ("HS256", true),
            ("RS256", true),
            ("ES256", true),
            ("none", false),
            ("HS512", false),
            ("", false),
        ] {
            let t = token(json!({"alg": alg}), claims.clone());
            assert_eq!(parse(&t).is_ok(), ok, "{alg}");
        }
        let none = format!("{}.{}.", enc(&json!({"alg": "none"})), enc(&claims));
        assert_eq!(parse(&none), Err(JwtError::Algorithm("none".into())));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for bad in [
            "a.b",
            "a.b.c.d",
            "!!.!!.!!",
            &format!("{}.{}.x", enc(&json!({"alg": "HS256"})), enc(&json!([1]))),
            &format!(
                "{}.{}.x",
                enc(&json!({"alg": "HS256", "crit": ["exp"]})),
                enc(&json!({}))
            ),
            &"a".repeat(MAX_TOKEN_BYTES + 1),
        ] {
            assert_eq!(parse(bad).err(), Some(JwtError::Malformed), "{bad:.40}");
        }
    }

    #[test]
    fn claims_are_checked_against_the_clock_and_the_rules() {
        let now = 1_000_000;
        let rules = Rules {
            issuer: Some("https://id.example".into()),
            audience: Some("edge".into()),
        };
        let good = json!({"sub": "u1", "exp": now + 10, "iss": "https://id.example", "aud": ["x", "edge"]});
        assert_eq!(check_claims(&good, &rules, now), Ok("u1".into()));
        let with = |k: &str, v: Value| {
            let mut c = good.clone();
            c[k] = v;
            c
        };
        let cases = [
            (
                with("exp", json!(now - LEEWAY_SECONDS - 1)),
                JwtError::Expired,
            ),
            (with("exp", Value::Null), JwtError::Expired),
            (
                with("nbf", json!(now + LEEWAY_SECONDS + 1)),
                JwtError::NotYetValid,
            ),
            (with("iss", json!("https://evil.example")), JwtError::Issuer),
            (with("aud", json!("other")), JwtError::Audience),
            (with("sub", json!("")), JwtError::NoSubject),
        ];
        for (claims, err) in cases {
            assert_eq!(
                check_claims(&claims, &rules, now),
                Err(err.clone()),
                "{err}"
            );
        }
        // Within the leeway.
        assert!(check_claims(&with("exp", json!(now - 30)), &rules, now).is_ok());
        assert!(check_claims(&json!({"sub": "u", "exp": now + 1}), &Rules::default(), now).is_ok());
    }

    #[test]
    fn a_key_is_chosen_by_kid_type_alg_and_use() {
        let jwks = json!({"keys": [
            {"kty": "RSA", "kid": "r1", "use": "enc"},
            {"kty": "RSA", "kid": "r1", "alg": "RS256", "n": "x", "e": "AQAB"},
            {"kty": "EC", "kid": "e1", "crv": "P-384"},
            {"kty": "EC", "kid": "e2", "crv": "P-256"},
            {"kty": "oct", "kid": "h1", "k": "c2VjcmV0"}
        ]});
        let kid = |k: Option<&Value>| k.and_then(|k| k["kid"].as_str()).map(str::to_owned);
        assert_eq!(
            kid(select_key(&jwks, Alg::Rs256, Some("r1"))),
            Some("r1".into())
        );
        assert_eq!(select_key(&jwks, Alg::Rs256, Some("r1")).unwrap()["n"], "x");
        assert_eq!(kid(select_key(&jwks, Alg::Es256, None)), Some("e2".into()));
        assert_eq!(
            select_key(&jwks, Alg::Es256, Some("e1")),
            None,
            "P-384 is not ES256"
        );
        assert_eq!(select_key(&jwks, Alg::Rs256, Some("nope")), None);
        assert_eq!(
            select_key(&jwks, Alg::Hs256, Some("h1")),
            None,
            "HMAC keys never come from a published key set"
        );
    }
}
