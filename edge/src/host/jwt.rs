//! JWT verification through WebCrypto (`crypto.subtle`), for `IDENTITY_SOURCE=jwt`: HS256
//! with the secret `JWT_SECRET`, RS256/ES256 with keys from `JWT_JWKS_URL` (cached per
//! isolate for 10 minutes, re-fetched once on an unknown `kid` — at most once a minute, so a
//! stream of tokens with invented `kid`s cannot make the edge hammer the key server).
//! Decisions (algorithm, key choice, claims) are `crate::jwt`'s; this only calls the runtime.

use std::cell::RefCell;

use js_sys::{Object, Reflect, Uint8Array};
use serde_json::{json, Value};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use worker::{Env, Fetch, Request};

use super::{header, now_ms};
use crate::config::Config;
use crate::identity::Source;
use crate::jwt::{self, Alg, JwtError, Token};

/// How long fetched keys are used before they are fetched again.
const JWKS_TTL_MS: u64 = 10 * 60 * 1000;
/// Least time between two fetches (also the refresh on an unknown `kid`).
const JWKS_MIN_INTERVAL_MS: u64 = 60 * 1000;

#[derive(Default)]
struct Jwks {
    keys: Option<Value>,
    fetched_at: Option<u64>,
}

thread_local! {
    static JWKS: RefCell<Jwks> = RefCell::new(Jwks::default());
}

/// The visitor of a request: its verified JWT subject, its signed edge cookie, or — with
/// `issue_id` — a new id (the caller sends the returned `set_cookie`).
pub async fn visitor(
    req: &Request,
    env: &Env,
    config: &Config,
    issue_id: bool,
) -> crate::identity::Visitor {
    let secure = req.url().map(|u| u.scheme() == "https").unwrap_or(false);
    let verified = verified_sub(req, env, config).await;
    crate::identity::identify(
        &config.identity,
        &config.identity_keys,
        |n| header(req, n),
        secure,
        || if issue_id { super::random_id() } else { None },
        verified,
    )
}

/// The `sub` of the request's bearer JWT when the identity source is `jwt` and the token is
/// verified; `None` otherwise (the visitor is then anonymous).
pub async fn verified_sub(req: &Request, env: &Env, config: &Config) -> Option<String> {
    if config.identity != Source::Jwt {
        return None;
    }
    let authorization = header(req, "authorization")?;
    let token = jwt::parse(jwt::bearer(&authorization)?).ok()?;
    // Claims first: an expired or foreign token costs no cryptography and no key fetch.
    let sub = jwt::check_claims(&token.claims, &config.jwt_rules, now_ms() / 1000).ok()?;
    match verify(&token, env, config).await {
        Ok(()) => Some(sub),
        Err(e) => {
            worker::console_warn!("bearer token not accepted: {e}");
            None
        }
    }
}

async fn verify(token: &Token, env: &Env, config: &Config) -> Result<(), JwtError> {
    let subtle = subtle().ok_or(JwtError::NoKey)?;
    let (key_data, format, import_alg, verify_alg) = match token.alg {
        Alg::Hs256 => {
            let secret = env
                .secret("JWT_SECRET")
                .map(|s| s.to_string())
                .map_err(|_| JwtError::NoKey)?;
            let raw: Object = Uint8Array::from(secret.as_bytes()).into();
            let alg = json!({"name": "HMAC", "hash": "SHA-256"});
            (raw, "raw", alg.clone(), alg)
        }
        Alg::Rs256 | Alg::Es256 => {
            let jwk = key_for(token, config).await?;
            let (import, verify) = if token.alg == Alg::Rs256 {
                let a = json!({"name": "RSASSA-PKCS1-v1_5", "hash": "SHA-256"});
                (a.clone(), a)
            } else {
                (
                    json!({"name": "ECDSA", "namedCurve": "P-256"}),
                    json!({"name": "ECDSA", "hash": "SHA-256"}),
                )
            };
            // Only the public members: WebCrypto refuses `key_ops`/`use` combinations it
            // does not like, and a private member has no business here.
            let public: serde_json::Map<String, Value> = jwk
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| matches!(k.as_str(), "kty" | "n" | "e" | "crv" | "x" | "y"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            (js(&Value::Object(public))?, "jwk", import, verify)
        }
    };
    let usages = js_sys::Array::of1(&JsValue::from_str("verify"));
    let key = await_js(subtle.import_key_with_object(
        format,
        &key_data,
        &js(&import_alg)?,
        false,
        &usages,
    ))
    .await
    .map_err(|_| JwtError::NoKey)?;
    let key: web_sys::CryptoKey = key.dyn_into().map_err(|_| JwtError::NoKey)?;
    let ok = await_js(subtle.verify_with_object_and_u8_array_and_u8_array(
        &js(&verify_alg)?,
        &key,
        &token.signature,
        token.signing_input.as_bytes(),
    ))
    .await
    .map_err(|_| JwtError::Signature)?;
    if ok.as_bool() == Some(true) {
        Ok(())
    } else {
        Err(JwtError::Signature)
    }
}

/// The JWK for a token, from the cached key set or — when it is stale, or lacks the token's
/// `kid` and was not fetched within the last minute — from `JWT_JWKS_URL`.
async fn key_for(token: &Token, config: &Config) -> Result<Value, JwtError> {
    let url = config.jwks_url.as_deref().ok_or(JwtError::NoKey)?;
    let now = now_ms();
    let (cached, age) = JWKS.with(|j| {
        let j = j.borrow();
        (
            j.keys
                .as_ref()
                .and_then(|k| jwt::select_key(k, token.alg, token.kid.as_deref()))
                .cloned(),
            j.fetched_at.map(|at| now.saturating_sub(at)),
        )
    });
    let fresh = age.is_some_and(|a| a < JWKS_TTL_MS);
    if let (Some(key), true) = (&cached, fresh) {
        return Ok(key.clone());
    }
    if age.is_some_and(|a| a < JWKS_MIN_INTERVAL_MS) {
        return cached.ok_or(JwtError::NoKey);
    }
    JWKS.with(|j| j.borrow_mut().fetched_at = Some(now));
    let fetched = async {
        let mut res = Fetch::Url(url.parse().ok()?).send().await.ok()?;
        if res.status_code() != 200 {
            return None;
        }
        res.json::<Value>().await.ok()
    }
    .await;
    match fetched {
        Some(keys) => {
            let key = jwt::select_key(&keys, token.alg, token.kid.as_deref()).cloned();
            JWKS.with(|j| j.borrow_mut().keys = Some(keys));
            key.ok_or(JwtError::NoKey)
        }
        // The key server is down: keep using what we had.
        None => cached.ok_or(JwtError::NoKey),
    }
}

fn subtle() -> Option<web_sys::SubtleCrypto> {
    let crypto = Reflect::get(&js_sys::global(), &JsValue::from_str("crypto")).ok()?;
    Some(crypto.dyn_into::<web_sys::Crypto>().ok()?.subtle())
}

fn js(value: &Value) -> Result<Object, JwtError> {
    js_sys::JSON::parse(&value.to_string())
        .ok()
        .and_then(|v| v.dyn_into::<Object>().ok())
        .ok_or(JwtError::Malformed)
}

async fn await_js(promise: Result<js_sys::Promise, JsValue>) -> Result<JsValue, JsValue> {
    JsFuture::from(promise?).await
}
