//! `edgeflags vapid generate`: a VAPID key pair (RFC 8292) for the worker's Web Push, as one
//! JSON object `{"publicKey", "privateKey"}` — base64url, the uncompressed public point
//! (65 bytes; what browsers take as `applicationServerKey`) and the private scalar
//! (32 bytes). Set them with `wrangler secret put VAPID_PUBLIC_KEY` / `VAPID_PRIVATE_KEY`.

use std::process::ExitCode;

use edgeflags_edge::notify::{b64url, vapid};
use p256::elliptic_curve::sec1::ToEncodedPoint;

use crate::Usage;

pub fn run(args: &[String]) -> Result<ExitCode, Usage> {
    match args.first().map(String::as_str) {
        Some("generate") if args.len() == 1 => {
            let (public, private) = generate().map_err(Usage)?;
            println!(
                "{}",
                serde_json::json!({"publicKey": public, "privateKey": private})
            );
            Ok(ExitCode::SUCCESS)
        }
        Some("generate") => Err(Usage("vapid generate takes no arguments".into())),
        Some(other) => Err(Usage(format!("unknown vapid command `{other}`"))),
        None => Err(Usage("missing vapid command (generate)".into())),
    }
}

/// A fresh key pair from the OS's CSPRNG: `(public, private)`, base64url.
pub fn generate() -> Result<(String, String), String> {
    // A random 32-byte string is a valid scalar unless it is 0 or ≥ n (p ≈ 2^-128).
    for _ in 0..8 {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
        if let Ok(secret) = p256::SecretKey::from_slice(&bytes) {
            let point = secret.public_key().to_encoded_point(false);
            let (public, private) = (b64url(point.as_bytes()), b64url(&bytes));
            // The worker must accept what we print.
            vapid::Keys::parse(Some(&public), Some(&private), Some("mailto:x@example.com"))?;
            return Ok((public, private));
        }
    }
    Err("could not draw a valid P-256 scalar".into())
}

#[cfg(test)]
mod tests {
    #[test]
    fn generated_pairs_are_distinct_and_well_formed() {
        let (a_pub, a_priv) = super::generate().unwrap();
        let (b_pub, _) = super::generate().unwrap();
        assert_ne!(a_pub, b_pub);
        assert_eq!(a_pub.len(), 87);
        assert_eq!(a_priv.len(), 43);
        // The public key is the private key's point.
        let d = edgeflags_edge::notify::b64url_decode(&a_priv).unwrap();
        let secret = p256::SecretKey::from_slice(&d).unwrap();
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        assert_eq!(
            edgeflags_edge::notify::b64url(secret.public_key().to_encoded_point(false).as_bytes()),
            a_pub
        );
    }
}
