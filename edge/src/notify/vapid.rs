//! VAPID (RFC 8292): the application server identifies itself to push services with an
//! ES256 JWT whose `aud` is the push service's origin, `exp` at most 24 h ahead and `sub`
//! a contact (`mailto:` or `https:`). The key pair is a secret pair of strings:
//! `VAPID_PUBLIC_KEY` (base64url uncompressed P-256 point, 65 bytes — what browsers take as
//! `applicationServerKey`) and `VAPID_PRIVATE_KEY` (base64url 32-byte scalar), the format
//! of `edgeflags vapid generate` and of the usual web-push tools.

use serde_json::{json, Value};

use super::{b64url, b64url_decode, ece};

/// Lifetime of a token: well under RFC 8292's 24 h ceiling, so clock skew between the
/// edge and a push service never makes one too long-lived.
pub const TOKEN_LIFETIME_SECS: u64 = 12 * 3600;
const _: () = assert!(TOKEN_LIFETIME_SECS <= 24 * 3600);

/// The server's VAPID identity.
#[derive(Clone, PartialEq, Eq)]
pub struct Keys {
    /// Uncompressed public point (65 bytes).
    pub public: Vec<u8>,
    /// Private scalar (32 bytes).
    pub private: Vec<u8>,
    /// `sub` claim.
    pub subject: String,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("public", &b64url(&self.public))
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

impl Keys {
    /// Parses the three settings; every problem is named (never the private key's value).
    pub fn parse(
        public: Option<&str>,
        private: Option<&str>,
        subject: Option<&str>,
    ) -> Result<Self, String> {
        let public = public
            .and_then(b64url_decode)
            .filter(|k| ece::is_uncompressed_point(k))
            .ok_or("VAPID_PUBLIC_KEY must be a base64url uncompressed P-256 point (65 bytes)")?;
        // Some tools drop leading zero bytes of the scalar (Node's `ecdh.getPrivateKey()`
        // does, one key in 256): left-pad to the field size.
        let private = private
            .and_then(b64url_decode)
            .filter(|k| (16..=32).contains(&k.len()))
            .map(|k| [vec![0u8; 32 - k.len()], k].concat())
            .ok_or("VAPID_PRIVATE_KEY must be a base64url P-256 private key (32 bytes)")?;
        let subject = subject
            .map(str::trim)
            .filter(|s| s.starts_with("mailto:") || s.starts_with("https://"))
            .ok_or("VAPID_SUBJECT must be a mailto: or https: URL (RFC 8292 §2.1)")?
            .to_owned();
        Ok(Self {
            public,
            private,
            subject,
        })
    }

    /// The public key as browsers take it (`applicationServerKey`) and as `k=` carries it.
    pub fn public_b64(&self) -> String {
        b64url(&self.public)
    }

    /// The private key as a JWK, for WebCrypto's `importKey("jwk", …, ECDSA P-256)`.
    pub fn private_jwk(&self) -> Value {
        json!({
            "kty": "EC",
            "crv": "P-256",
            "x": b64url(&self.public[1..33]),
            "y": b64url(&self.public[33..65]),
            "d": b64url(&self.private),
            "ext": false,
        })
    }
}

/// The `aud` claim: the push resource's origin (`scheme://host[:port]`).
pub fn audience(endpoint: &str) -> Option<String> {
    let (scheme, rest) = endpoint.split_once("://")?;
    if !matches!(scheme, "https" | "http") {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    Some(format!("{scheme}://{}", authority.to_ascii_lowercase()))
}

/// The JWT claims for a push to `aud` at `now_secs`.
pub fn claims(aud: &str, subject: &str, now_secs: u64) -> Value {
    json!({"aud": aud, "exp": now_secs + TOKEN_LIFETIME_SECS, "sub": subject})
}

/// `base64url(header) . base64url(claims)`: what ECDSA P-256 / SHA-256 signs.
pub fn signing_input(claims: &Value) -> String {
    let header = json!({"typ": "JWT", "alg": "ES256"});
    format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    )
}

/// The token: signing input and the signature (`r ‖ s`, 64 bytes — WebCrypto's ECDSA
/// output is already in JWS form).
pub fn token(signing_input: &str, signature: &[u8]) -> Option<String> {
    (signature.len() == 64).then(|| format!("{signing_input}.{}", b64url(signature)))
}

/// The `Authorization` header (RFC 8292 §3).
pub fn authorization(token: &str, public_b64: &str) -> String {
    format!("vapid t={token}, k={public_b64}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUBLIC: &str =
        "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
    const PRIVATE: &str = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94";

    #[test]
    fn keys_are_checked_and_named() {
        let k = Keys::parse(Some(PUBLIC), Some(PRIVATE), Some("mailto:ops@example.com")).unwrap();
        assert_eq!(k.public_b64(), PUBLIC);
        let jwk = k.private_jwk();
        assert_eq!(jwk["d"], PRIVATE);
        assert_eq!(jwk["x"].as_str().unwrap().len(), 43);
        assert!(
            !format!("{k:?}").contains(PRIVATE),
            "Debug never shows the private key"
        );
        let e = Keys::parse(Some("abc"), Some(PRIVATE), Some("mailto:a@b")).unwrap_err();
        assert!(e.contains("VAPID_PUBLIC_KEY"));
        // A scalar with its leading zero byte dropped is the same key.
        let short = super::super::b64url(&[7u8; 31]);
        let k = Keys::parse(Some(PUBLIC), Some(&short), Some("mailto:a@b")).unwrap();
        assert_eq!(k.private.len(), 32);
        assert_eq!((k.private[0], k.private[1]), (0, 7));
        let e = Keys::parse(Some(PUBLIC), None, Some("mailto:a@b")).unwrap_err();
        assert!(e.contains("VAPID_PRIVATE_KEY"));
        let e = Keys::parse(Some(PUBLIC), Some(PRIVATE), Some("ops@example.com")).unwrap_err();
        assert!(e.contains("VAPID_SUBJECT"));
    }

    #[test]
    fn audience_is_the_origin() {
        assert_eq!(
            audience("https://fcm.googleapis.com/fcm/send/abc?x=1").as_deref(),
            Some("https://fcm.googleapis.com")
        );
        assert_eq!(
            audience("http://127.0.0.1:9000/push/1").as_deref(),
            Some("http://127.0.0.1:9000")
        );
        assert_eq!(audience("ftp://x/y"), None);
        assert_eq!(audience("https:///nohost"), None);
        assert_eq!(audience("https://user@host/x"), None);
    }

    #[test]
    fn token_shape_and_lifetime() {
        let c = claims("https://push.example", "mailto:a@b", 1_000);
        assert_eq!(c["exp"], 1_000 + TOKEN_LIFETIME_SECS);
        let input = signing_input(&c);
        let (h, p) = input.split_once('.').unwrap();
        let header: Value =
            serde_json::from_slice(&super::super::b64url_decode(h).unwrap()).unwrap();
        assert_eq!(header["alg"], "ES256");
        let payload: Value =
            serde_json::from_slice(&super::super::b64url_decode(p).unwrap()).unwrap();
        assert_eq!(payload["aud"], "https://push.example");
        assert_eq!(token(&input, &[0; 63]), None);
        let t = token(&input, &[0; 64]).unwrap();
        assert_eq!(t.split('.').count(), 3);
        assert_eq!(authorization("T", "K"), "vapid t=T, k=K");
    }
}
