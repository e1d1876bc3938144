//! The origin fetch: a visitor's request in its origin-bound form ([`Outgoing`]), sent to
//! the chosen origin and, when that fails and the route allows, once to the stable origin
//! ([`Upstream::fetch`]). The proxy builds it and the cache calls it; it calls neither back.
//! Which headers cross, which statuses can be sent and whether a retry happens are decided
//! in `crate::proxy` and `crate::split`.

use std::rc::Rc;

use worker::wasm_bindgen::JsValue;
use worker::{Fetch, Headers, Method, Request, RequestInit, RequestRedirect, Response};

use super::internal;
use crate::error::EdgeError;
use crate::{httpcache, proxy, split};

/// A request to an origin, kept as parts so a bodiless one can be sent again (retry on the
/// stable origin, background revalidation).
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub method: Method,
    pub path_and_query: String,
    pub headers: Vec<(String, String)>,
}

impl Outgoing {
    /// The origin-bound form of a visitor's request: forwardable headers plus the forwarding
    /// headers and `extra`.
    pub fn from_request(
        req: &Request,
        url: &worker::Url,
        extra: Vec<(String, String)>,
    ) -> Result<Self, EdgeError> {
        let path_and_query = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        let incoming = req.headers();
        let tokens = proxy::connection_tokens(incoming.get("connection").ok().flatten().as_deref());
        let mut headers: Vec<(String, String)> = incoming
            .entries()
            .filter(|(name, _)| proxy::forward_request_header(name, &tokens))
            .collect();
        let client_ip = incoming.get("cf-connecting-ip").ok().flatten();
        let host = incoming.get("host").ok().flatten();
        let host = host.as_deref().or(url.host_str());
        for (name, value) in proxy::forwarded_headers(host, url.scheme(), client_ip.as_deref()) {
            headers.retain(|(n, _)| n != name);
            headers.push((name.to_owned(), value));
        }
        // Tell the origin a surrogate is here (Edge Architecture 1.0), so it can address
        // `Surrogate-Control` to us.
        let capability = incoming.get("surrogate-capability").ok().flatten();
        headers.retain(|(n, _)| n != "surrogate-capability");
        headers.push((
            "surrogate-capability".to_owned(),
            httpcache::surrogate_capability(capability.as_deref()),
        ));
        headers.extend(extra);
        Ok(Self {
            method: req.method(),
            path_and_query,
            headers,
        })
    }

    /// Sends it to `origin`. `replace` headers replace the visitor's of the same name (and
    /// conditional ones replace all of the visitor's `If-*` validators).
    pub async fn send(
        &self,
        origin: &str,
        body: Option<JsValue>,
        replace: &[(String, String)],
    ) -> Result<Response, EdgeError> {
        let headers = Headers::new();
        let conditional = replace.iter().any(|(n, _)| n.starts_with("if-"));
        for (name, value) in &self.headers {
            let replaced =
                replace.iter().any(|(n, _)| n == name) || (conditional && name.starts_with("if-"));
            if !replaced {
                headers.append(name, value).map_err(internal)?;
            }
        }
        for (name, value) in replace {
            headers.set(name, value).map_err(internal)?;
        }
        let mut init = RequestInit::new();
        init.with_method(self.method.clone())
            .with_headers(headers)
            .with_redirect(RequestRedirect::Manual);
        if body.is_some() {
            init.with_body(body);
        }
        let target = proxy::upstream_url(origin, &self.path_and_query);
        let upstream = Request::new_with_init(&target, &init).map_err(internal)?;
        let res = Fetch::Request(upstream)
            .send()
            .await
            .map_err(|e| EdgeError::OriginUnreachable(e.to_string()))?;
        // `fetch` hands back any status the origin wrote (the http-cache-tests origin sends
        // 999), but a JS `Response` can only be *constructed* with 200..=599: workers-rs
        // builds one whenever the response is cloned (cache tee) or returned, and panics on
        // the RangeError. A panic aborts the wasm instance and strands every other in-flight
        // request of the isolate ("hung"), so such an answer never leaves this function.
        if !proxy::sendable_status(res.status_code()) {
            return Err(EdgeError::OriginUnreachable(format!(
                "origin answered with status {}",
                res.status_code()
            )));
        }
        // A fetched response's headers are immutable: copy what may pass into a fresh set.
        let tokens =
            proxy::connection_tokens(res.headers().get("connection").ok().flatten().as_deref());
        let out = Headers::new();
        for (name, value) in res.headers().entries() {
            if proxy::forward_response_header(&name, &tokens)
                && !crate::security::STRIPPED_RESPONSE_HEADERS.contains(&name.as_str())
            {
                out.append(&name, &value).map_err(internal)?;
            }
        }
        Ok(res.with_headers(out))
    }
}

/// Where a request goes: the chosen origin, and the stable one for a retry.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub out: Outgoing,
    pub primary: (String, String),
    pub stable: Option<(String, String)>,
    pub retry: bool,
    /// Failures (connect error or 5xx) of the chosen origin, counted for the metrics even
    /// when the retry on the stable origin saved the request.
    pub primary_failures: Rc<std::cell::Cell<u32>>,
}

/// What an upstream fetch gave.
#[derive(Debug)]
pub struct Fetched {
    pub result: Result<Response, EdgeError>,
    pub served_by: String,
    pub retried: bool,
}

impl Upstream {
    /// Sends to the chosen origin; a failed retryable request (connect error or 5xx) goes
    /// once to the stable origin.
    pub async fn fetch(&self, body: Option<JsValue>, replace: &[(String, String)]) -> Fetched {
        let first = self.out.send(&self.primary.1, body, replace).await;
        let failed = split::failed(first.as_ref().ok().map(Response::status_code));
        if failed {
            self.primary_failures.set(self.primary_failures.get() + 1);
        }
        match (&self.stable, failed && self.retry) {
            (Some((name, url)), true) => {
                match self
                    .out
                    .send(url, None, &proxy::without_validators(replace))
                    .await
                {
                    Ok(res) => Fetched {
                        result: Ok(res),
                        served_by: name.clone(),
                        retried: true,
                    },
                    Err(_) => Fetched {
                        result: first,
                        served_by: self.primary.0.clone(),
                        retried: true,
                    },
                }
            }
            _ => Fetched {
                result: first,
                served_by: self.primary.0.clone(),
                retried: false,
            },
        }
    }
}
