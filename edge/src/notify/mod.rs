//! Notifications (issue 16: Web Push, in-app inbox, e-mail): pure policy, tested natively.
//!
//! - [`ece`]: RFC 8291 / RFC 8188 `aes128gcm` — key derivation steps, record layout.
//!   The two steps that need a private key or a cipher (ECDH, AES-GCM) run in WebCrypto
//!   (`host::notify::crypto`); every other byte is computed here.
//! - [`vapid`]: RFC 8292 — key parsing, JWT claims, signing input, `Authorization` header.
//! - [`delivery`]: what a push-service answer means (deliver, remove, fail, retry and when).
//! - [`api`]: request bodies, subscriptions, ids, shards, idempotency, audience, status.
//! - [`outcome`]: the channels and the outcomes of their deliveries (one enum for counting).
//! - [`inbox`]: the in-app channel — who sees which item (decided at read time), its shape.
//! - [`email`]: the e-mail channel — API settings, body template, contacts, its answers.

pub(crate) mod api;
pub(crate) mod delivery;
pub(crate) mod ece;
pub(crate) mod email;
pub(crate) mod inbox;
pub(crate) mod outcome;
pub mod vapid;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// base64url without padding (RFC 7515 §2), as Web Push and JWS use.
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url, with or without padding (browsers' `toJSON()` omits it).
pub fn b64url_decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(text.trim().trim_end_matches('='))
        .ok()
}

/// SHA-256 as lowercase hex.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
