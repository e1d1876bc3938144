//! RFC 8291 (Message Encryption for Web Push) over RFC 8188 (`aes128gcm` content coding).
//!
//! The sender's steps, in order:
//! 1. an ephemeral P-256 key pair (`as`), ECDH with the subscription's `p256dh` (`ua`) →
//!    `ecdh_secret` (WebCrypto, in the host);
//! 2. [`derive`]: `PRK_key = HMAC(auth, ecdh)`, `IKM = HKDF-Expand(PRK_key, key_info, 32)`,
//!    `PRK = HKDF-Extract(salt, IKM)`, `CEK = Expand(PRK, cek_info, 16)`,
//!    `NONCE = Expand(PRK, nonce_info, 12)`;
//! 3. [`pad`]: the plaintext plus the last-record delimiter `0x02` (one record);
//! 4. AES-128-GCM with `CEK`/`NONCE` (WebCrypto, in the host; the tag is appended);
//! 5. [`body`]: `salt ‖ rs ‖ idlen ‖ keyid(as_public) ‖ ciphertext`.
//!
//! HKDF is HMAC-SHA-256 (`crate::traffic::identity::hmac_sha256`, over the `sha2` the worker already
//! has): the steps then run natively and are checked against RFC 8291 §5's example.

use crate::traffic::identity::hmac_sha256;

/// Record size written in the header: one record holds the whole message.
pub(crate) const RECORD_SIZE: u32 = 4096;
/// An uncompressed P-256 point: `0x04 ‖ x ‖ y`.
pub(crate) const PUBLIC_KEY_LEN: usize = 65;
/// `auth` secret length (RFC 8291 §3.2).
pub(crate) const AUTH_LEN: usize = 16;
/// Salt length (RFC 8188 §2.1).
pub(crate) const SALT_LEN: usize = 16;
/// AES-GCM tag length.
pub(crate) const TAG_LEN: usize = 16;
/// Header length with a P-256 key id: salt(16) + rs(4) + idlen(1) + keyid(65).
pub(crate) const HEADER_LEN: usize = SALT_LEN + 4 + 1 + PUBLIC_KEY_LEN;
/// The largest plaintext that fits one 4096-byte record (RFC 8291 §4: push services
/// accept at least 4096 bytes of body): 4096 − header − delimiter − tag = 3993.
pub(crate) const MAX_PLAINTEXT: usize = RECORD_SIZE as usize - HEADER_LEN - 1 - TAG_LEN;

/// Content-encryption key and nonce of the single record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecordKeys {
    pub(crate) cek: [u8; 16],
    pub(crate) nonce: [u8; 12],
}

/// HKDF-Extract (RFC 5869 §2.2).
pub(crate) fn hkdf_extract(salt: &[u8], ikm: &[u8]) -> [u8; 32] {
    hmac_sha256(salt, ikm)
}

/// HKDF-Expand for at most 32 bytes (one block: `T(1) = HMAC(PRK, info ‖ 0x01)`).
pub(crate) fn hkdf_expand<const N: usize>(prk: &[u8], info: &[u8]) -> [u8; N] {
    const { assert!(N <= 32) };
    let mut input = Vec::with_capacity(info.len() + 1);
    input.extend_from_slice(info);
    input.push(1);
    let t = hmac_sha256(prk, &input);
    let mut out = [0u8; N];
    out.copy_from_slice(&t[..N]);
    out
}

/// `key_info = "WebPush: info" ‖ 0x00 ‖ ua_public ‖ as_public` (RFC 8291 §3.4).
pub(crate) fn key_info(ua_public: &[u8], as_public: &[u8]) -> Vec<u8> {
    let mut info = b"WebPush: info\0".to_vec();
    info.extend_from_slice(ua_public);
    info.extend_from_slice(as_public);
    info
}

/// `cek_info = "Content-Encoding: aes128gcm" ‖ 0x00` (RFC 8188 §2.2).
pub(crate) const CEK_INFO: &[u8] = b"Content-Encoding: aes128gcm\0";
/// `nonce_info = "Content-Encoding: nonce" ‖ 0x00` (RFC 8188 §2.3).
pub(crate) const NONCE_INFO: &[u8] = b"Content-Encoding: nonce\0";

/// The input keying material: `HKDF(auth_secret, ecdh_secret, key_info, 32)`.
pub(crate) fn ikm(
    ecdh_secret: &[u8],
    auth_secret: &[u8],
    ua_public: &[u8],
    as_public: &[u8],
) -> [u8; 32] {
    let prk_key = hkdf_extract(auth_secret, ecdh_secret);
    hkdf_expand::<32>(&prk_key, &key_info(ua_public, as_public))
}

/// Everything after ECDH: the record's key and nonce.
pub(crate) fn derive(
    ecdh_secret: &[u8],
    auth_secret: &[u8],
    ua_public: &[u8],
    as_public: &[u8],
    salt: &[u8],
) -> RecordKeys {
    let prk = hkdf_extract(salt, &ikm(ecdh_secret, auth_secret, ua_public, as_public));
    RecordKeys {
        cek: hkdf_expand::<16>(&prk, CEK_INFO),
        nonce: hkdf_expand::<12>(&prk, NONCE_INFO),
    }
}

/// The single (last) record's plaintext: the message and the delimiter `0x02`, no padding.
/// `None` when the message does not fit one record.
pub(crate) fn pad(plaintext: &[u8]) -> Option<Vec<u8>> {
    if plaintext.len() > MAX_PLAINTEXT {
        return None;
    }
    let mut out = Vec::with_capacity(plaintext.len() + 1);
    out.extend_from_slice(plaintext);
    out.push(2);
    Some(out)
}

/// The `aes128gcm` header: `salt ‖ rs (u32 BE) ‖ idlen ‖ keyid`, the key id being the
/// sender's ephemeral public key (RFC 8291 §4).
pub(crate) fn header(salt: &[u8; SALT_LEN], as_public: &[u8; PUBLIC_KEY_LEN]) -> Vec<u8> {
    let mut h = Vec::with_capacity(HEADER_LEN);
    h.extend_from_slice(salt);
    h.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    h.push(PUBLIC_KEY_LEN as u8);
    h.extend_from_slice(as_public);
    h
}

/// The request body: header followed by the encrypted record (ciphertext ‖ tag).
pub(crate) fn body(header: &[u8], sealed: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(header.len() + sealed.len());
    out.extend_from_slice(header);
    out.extend_from_slice(sealed);
    out
}

/// Whether `key` is an uncompressed P-256 point (the shape check; the curve check is
/// WebCrypto's when it imports the key).
pub(crate) fn is_uncompressed_point(key: &[u8]) -> bool {
    key.len() == PUBLIC_KEY_LEN && key[0] == 4
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::b64url_decode;

    fn b(s: &str) -> Vec<u8> {
        b64url_decode(s).unwrap_or_default()
    }

    // RFC 8291 §5 (and Appendix A's intermediate values).
    const UA_PUBLIC: &str =
        "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
    const AS_PUBLIC: &str =
        "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8";
    const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";
    const SALT: &str = "DGv6ra1nlYgDCS1FRnbzlw";
    const ECDH: &str = "kyrL1jIIOHEzg3sM2ZWRHDRB62YACZhhSlknJ672kSs";

    #[test]
    fn key_derivation_matches_rfc_8291_example() {
        let (ua, as_, auth, salt, ecdh) = (b(UA_PUBLIC), b(AS_PUBLIC), b(AUTH), b(SALT), b(ECDH));
        let info = key_info(&ua, &as_);
        assert_eq!(info, b("V2ViUHVzaDogaW5mbwAEJXGyvs3942BVGq8e0PTNNmwRzr5VX4m8t7GGpTM5FzFo7OLr4BhZe9MEebhuPI-OztV3ylkYfpJGmQ22ggCLDgT-M_SrDepxkU21WCP3O1SUj0EwbZIHMtu5pZpTKGSCIA5Zent7wmC6HCJ5mFgJkuk5cwAvMBKiiujwa7t45ewP"));
        assert_eq!(
            hkdf_extract(&auth, &ecdh).to_vec(),
            b("Snr3JMxaHVDXHWJn5wdC52WjpCtd2EIEGBykDcZW32k")
        );
        let ikm = ikm(&ecdh, &auth, &ua, &as_);
        assert_eq!(
            ikm.to_vec(),
            b("S4lYMb_L0FxCeq0WhDx813KgSYqU26kOyzWUdsXYyrg")
        );
        assert_eq!(
            hkdf_extract(&salt, &ikm).to_vec(),
            b("09_eUZGrsvxChDCGRCdkLiDXrReGOEVeSCdCcPBSJSc")
        );
        assert_eq!(
            CEK_INFO.to_vec(),
            b("Q29udGVudC1FbmNvZGluZzogYWVzMTI4Z2NtAA")
        );
        assert_eq!(NONCE_INFO.to_vec(), b("Q29udGVudC1FbmNvZGluZzogbm9uY2UA"));
        let keys = derive(&ecdh, &auth, &ua, &as_, &salt);
        assert_eq!(keys.cek.to_vec(), b("oIhVW04MRdy2XN9CiKLxTg"));
        assert_eq!(keys.nonce.to_vec(), b("4h_95klXJ5E_qnoN"));
    }

    #[test]
    fn header_and_body_layout_match_rfc_8291_example() {
        let salt: [u8; 16] = b(SALT).try_into().unwrap_or([0; 16]);
        let as_: [u8; 65] = b(AS_PUBLIC).try_into().unwrap_or([0; 65]);
        let h = header(&salt, &as_);
        assert_eq!(h.len(), HEADER_LEN);
        assert_eq!(h, b("DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8"));
        // The example's record: the plaintext, the delimiter and the 16-byte tag.
        let plaintext = b("V2hlbiBJIGdyb3cgdXAsIEkgd2FudCB0byBiZSBhIHdhdGVybWVsb24");
        let padded = pad(&plaintext).unwrap_or_default();
        assert_eq!(padded.len(), plaintext.len() + 1);
        assert_eq!(padded.last(), Some(&2));
        let ciphertext =
            b("8pfeW0KbunFT06SuDKoJH9Ql87S1QUrdirN6GcG7sFz1y1sqLgVi1VhjVkHsUoEsbI_0LpXMuGvnzQ");
        assert_eq!(ciphertext.len(), padded.len() + TAG_LEN);
        let full = body(&h, &ciphertext);
        assert_eq!(full.len(), HEADER_LEN + plaintext.len() + 1 + TAG_LEN);
        assert_eq!(&full[..86], &h[..]);
    }

    #[test]
    fn one_record_bounds_the_plaintext() {
        assert_eq!(MAX_PLAINTEXT, 3993);
        assert!(pad(&vec![0; MAX_PLAINTEXT]).is_some());
        assert!(pad(&vec![0; MAX_PLAINTEXT + 1]).is_none());
        assert_eq!(HEADER_LEN + MAX_PLAINTEXT + 1 + TAG_LEN, 4096);
    }

    #[test]
    fn point_shape() {
        assert!(is_uncompressed_point(&b(UA_PUBLIC)));
        assert!(!is_uncompressed_point(&b(AUTH)));
        let mut compressed = b(UA_PUBLIC);
        compressed[0] = 2;
        assert!(!is_uncompressed_point(&compressed));
    }
}
