//! WebCrypto for Web Push (`crypto.subtle` through web-sys): the ephemeral ECDH P-256 key
//! and shared secret, AES-128-GCM of the single record, and the ECDSA P-256 signature of
//! the VAPID token. Every other step — HKDF, info strings, record layout, claims — is
//! `crate::notify`'s, tested natively; nothing here decides anything.

use std::cell::RefCell;

use js_sys::{Array, ArrayBuffer, Object, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{CryptoKey, SubtleCrypto};

use crate::notify::{ece, vapid};

/// The imported VAPID signing key, per isolate, with the public key it belongs to
/// (`host/isolate.rs`).
fn cached_key<R>(f: impl FnOnce(&RefCell<Option<(Vec<u8>, CryptoKey)>>) -> R) -> R {
    crate::host::isolate::with(|i| f(&i.vapid_key))
}

fn subtle() -> Result<SubtleCrypto, String> {
    let crypto = Reflect::get(&js_sys::global(), &JsValue::from_str("crypto"))
        .map_err(|_| "no crypto global".to_string())?;
    Ok(crypto
        .dyn_into::<web_sys::Crypto>()
        .map_err(|_| "crypto is not a Crypto".to_string())?
        .subtle())
}

fn err(what: &str) -> impl Fn(JsValue) -> String + '_ {
    move |e| {
        format!(
            "{what}: {}",
            js_sys::JSON::stringify(&e)
                .map(String::from)
                .unwrap_or_default()
        )
    }
}

async fn run(promise: Result<js_sys::Promise, JsValue>, what: &str) -> Result<JsValue, String> {
    JsFuture::from(promise.map_err(err(what))?)
        .await
        .map_err(err(what))
}

fn object(pairs: &[(&str, JsValue)]) -> Result<Object, String> {
    let o = Object::new();
    for (k, v) in pairs {
        Reflect::set(&o, &JsValue::from_str(k), v).map_err(err("object"))?;
    }
    Ok(o)
}

fn bytes(value: &JsValue) -> Vec<u8> {
    value
        .dyn_ref::<ArrayBuffer>()
        .map(|b| Uint8Array::new(b).to_vec())
        .unwrap_or_default()
}

fn usages(list: &[&str]) -> JsValue {
    list.iter()
        .map(|u| JsValue::from_str(u))
        .collect::<Array>()
        .into()
}

fn ecdh_p256() -> Result<Object, String> {
    object(&[("name", "ECDH".into()), ("namedCurve", "P-256".into())])
}

/// Encrypts `plaintext` for a subscription (`p256dh`, `auth`): the RFC 8291 `aes128gcm`
/// request body.
pub(crate) async fn encrypt(plaintext: &[u8], p256dh: &[u8], auth: &[u8]) -> Result<Vec<u8>, String> {
    let padded = ece::pad(plaintext).ok_or("message too large for one record")?;
    let subtle = subtle()?;
    // 1. The ephemeral key pair and the shared secret.
    let pair = run(
        subtle.generate_key_with_object(&ecdh_p256()?, true, &usages(&["deriveBits"])),
        "generateKey",
    )
    .await?;
    let private: CryptoKey = Reflect::get(&pair, &"privateKey".into())
        .map_err(err("privateKey"))?
        .dyn_into()
        .map_err(err("privateKey"))?;
    let public: CryptoKey = Reflect::get(&pair, &"publicKey".into())
        .map_err(err("publicKey"))?
        .dyn_into()
        .map_err(err("publicKey"))?;
    let as_public = bytes(&run(subtle.export_key("raw", &public), "exportKey").await?);
    let as_public: [u8; ece::PUBLIC_KEY_LEN] = as_public
        .try_into()
        .map_err(|_| "exported key is not 65 bytes".to_string())?;
    let ua_key: CryptoKey = run(
        subtle.import_key_with_object(
            "raw",
            &Uint8Array::from(p256dh).into(),
            &ecdh_p256()?,
            true,
            &usages(&[]),
        ),
        "importKey(p256dh)",
    )
    .await?
    .dyn_into()
    .map_err(err("importKey(p256dh)"))?;
    let ecdh_secret = bytes(
        &run(
            subtle.derive_bits_with_object(
                &object(&[("name", "ECDH".into()), ("public", ua_key.into())])?,
                &private,
                256,
            ),
            "deriveBits",
        )
        .await?,
    );
    // 2. Key derivation (plain Rust).
    let mut salt = [0u8; ece::SALT_LEN];
    getrandom::fill(&mut salt).map_err(|e| format!("salt: {e}"))?;
    let keys = ece::derive(&ecdh_secret, auth, p256dh, &as_public, &salt);
    // 3. The record.
    let cek: CryptoKey = run(
        subtle.import_key_with_object(
            "raw",
            &Uint8Array::from(&keys.cek[..]).into(),
            &object(&[("name", "AES-GCM".into())])?,
            false,
            &usages(&["encrypt"]),
        ),
        "importKey(cek)",
    )
    .await?
    .dyn_into()
    .map_err(err("importKey(cek)"))?;
    let sealed = bytes(
        &run(
            subtle.encrypt_with_object_and_u8_array(
                &object(&[
                    ("name", "AES-GCM".into()),
                    ("iv", Uint8Array::from(&keys.nonce[..]).into()),
                ])?,
                &cek,
                &padded,
            ),
            "encrypt",
        )
        .await?,
    );
    Ok(ece::body(&ece::header(&salt, &as_public), &sealed))
}

/// The `Authorization` header for a push to `endpoint` (RFC 8292).
pub(crate) async fn vapid_authorization(
    keys: &vapid::Keys,
    endpoint: &str,
    now_secs: u64,
) -> Result<String, String> {
    let aud = vapid::audience(endpoint).ok_or("endpoint has no origin")?;
    let input = vapid::signing_input(&vapid::claims(&aud, &keys.subject, now_secs));
    let key = signing_key(keys).await?;
    let signature = bytes(
        &run(
            subtle()?.sign_with_object_and_u8_array(
                &object(&[("name", "ECDSA".into()), ("hash", "SHA-256".into())])?,
                &key,
                input.as_bytes(),
            ),
            "sign",
        )
        .await?,
    );
    let token = vapid::token(&input, &signature).ok_or("signature is not 64 bytes")?;
    Ok(vapid::authorization(&token, &keys.public_b64()))
}

async fn signing_key(keys: &vapid::Keys) -> Result<CryptoKey, String> {
    if let Some(key) = cached_key(|k| {
        k.borrow()
            .as_ref()
            .filter(|(public, _)| *public == keys.public)
            .map(|(_, key)| key.clone())
    }) {
        return Ok(key);
    }
    let jwk = js_sys::JSON::parse(&keys.private_jwk().to_string())
        .map_err(err("jwk"))?
        .dyn_into::<Object>()
        .map_err(err("jwk"))?;
    let key: CryptoKey = run(
        subtle()?.import_key_with_object(
            "jwk",
            &jwk,
            &object(&[("name", "ECDSA".into()), ("namedCurve", "P-256".into())])?,
            false,
            &usages(&["sign"]),
        ),
        "importKey(VAPID private key: does it match VAPID_PUBLIC_KEY?)",
    )
    .await?
    .dyn_into()
    .map_err(err("importKey(VAPID)"))?;
    cached_key(|k| *k.borrow_mut() = Some((keys.public.clone(), key.clone())));
    Ok(key)
}
