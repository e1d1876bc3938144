//! JWT verification through WebCrypto (`crypto.subtle`), for `IDENTITY_SOURCE=jwt`: HS256
//! with the secret `JWT_SECRET`, RS256/ES256 with keys from `JWT_JWKS_URL` (cached per
//! isolate for 10 minutes, re-fetched once on an unknown `kid` — at most once a minute, so a
//! stream of tokens with invented `kid`s cannot make the edge hammer the key server).
//! Decisions (algorithm, key choice, claims) are `crate::jwt`'s; this only calls the runtime.

use js_sys::{Object, Reflect, Uint8Array};
use serde_json::{json, Value};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use worker::{Env, Fetch, Request};

use crate::config::Config;
use crate::host::{header, now_ms};
use crate::jwt::{self, Alg, JwtError, Token};
use crate::traffic::identity::Source;

/// How long fetched keys are used before they are fetched again.
const JWKS_TTL_MS: u64 = 10 * 60 * 1000;
/// Least time between two fetches (also the refresh on an unknown `kid`).
const JWKS_MIN_INTERVAL_MS: u64 = 60 * 1000;

#[derive(Default)]
pub(crate) struct Jwks {
    url: String,
    keys: Option<Value>,
    fetched_at: Option<u64>,
}

/// Runs `f` on the cache of `url`.
fn cache<R>(url: &str, f: impl FnOnce(&mut Jwks) -> R) -> R {
    // One cache per key-set URL: `JWT_JWKS_URL` and, for the dashboard, Cloudflare Access's
    // certs (two at most; the URLs come from configuration, never from a request).
    crate::host::isolate::with(|isolate| {
        let mut all = isolate.jwks.borrow_mut();
        let i = match all.iter().position(|j| j.url == url) {
            Some(i) => i,
            None => {
                all.push(Jwks {
                    url: url.to_owned(),
                    ..Jwks::default()
                });
                all.len() - 1
            }
        };
        f(&mut all[i])
    })
}

#[cfg(feature = "control")]
/// Verifies an RS256 token's signature with a key from the key set at `jwks_url` (the
/// dashboard's Cloudflare Access sign-in); claims are the caller's to check.
pub(crate) async fn verify_rs256(token: &Token, jwks_url: &str) -> Result<(), JwtError> {
    if token.alg != Alg::Rs256 {
        return Err(JwtError::Algorithm(format!("{:?}", token.alg)));
    }
    verify_with(token, None, Some(jwks_url)).await
}

/// The visitor of a request: its verified JWT subject, its signed edge cookie, or — with
/// `issue_id` — a new id (the caller sends the returned `set_cookie`).
pub(crate) async fn visitor(
    req: &Request,
    env: &Env,
    config: &Config,
    issue_id: bool,
) -> crate::traffic::identity::Visitor {
    // The scheme of the serialized URL; a full parse per request is not needed for it.
    let secure = req.inner().url().starts_with("https:");
    let verified = verified_sub(req, env, config).await;
    crate::traffic::identity::identify(
        &config.identity,
        &config.identity_keys,
        |n| header(req, n),
        secure,
        || {
            if issue_id {
                crate::host::random_id()
            } else {
                None
            }
        },
        verified,
    )
}

/// The `sub` of the request's bearer JWT when the identity source is `jwt` and the token is
/// verified; `None` otherwise (the visitor is then anonymous).
pub(crate) async fn verified_sub(req: &Request, env: &Env, config: &Config) -> Option<String> {
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
    verify_with(token, Some(env), config.jwks_url.as_deref()).await
}

/// Verifies the signature: HS256 with the secret `JWT_SECRET` of `env`, RS256/ES256 with a
/// key from the key set at `jwks_url`.
async fn verify_with(
    token: &Token,
    env: Option<&Env>,
    jwks_url: Option<&str>,
) -> Result<(), JwtError> {
    let subtle = subtle().ok_or(JwtError::NoKey)?;
    let (key_data, format, import_alg, verify_alg) = match token.alg {
        Alg::Hs256 => {
            let secret = env
                .ok_or(JwtError::NoKey)?
                .secret("JWT_SECRET")
                .map(|s| s.to_string())
                .map_err(|_| JwtError::NoKey)?;
            let raw: Object = Uint8Array::from(secret.as_bytes()).into();
            let alg = json!({"name": "HMAC", "hash": "SHA-256"});
            (raw, "raw", alg.clone(), alg)
        }
        Alg::Rs256 | Alg::Es256 => {
            let jwk = key_for(token, jwks_url.ok_or(JwtError::NoKey)?).await?;
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
/// `kid` and was not fetched within the last minute — from `url`.
async fn key_for(token: &Token, url: &str) -> Result<Value, JwtError> {
    let now = now_ms();
    let (cached, age) = cache(url, |j| {
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
    cache(url, |j| j.fetched_at = Some(now));
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
            cache(url, |j| j.keys = Some(keys));
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
