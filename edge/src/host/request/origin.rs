//! The origin fetch: a visitor's request in its origin-bound form ([`Outgoing`]), sent to
//! the chosen origin and, when that fails and the route allows, once to the stable origin
//! ([`Upstream::fetch`]). The proxy builds it and the cache calls it; it calls neither back.
//! Which headers cross, which statuses can be sent and whether a retry happens are decided
//! in `crate::traffic::proxy` and `crate::traffic::split`.

use std::rc::Rc;

use worker::wasm_bindgen::JsValue;
use worker::worker_sys::web_sys;
use worker::{Fetch, Headers, Method, Request, RequestInit, RequestRedirect, Response};

use crate::error::EdgeError;
use crate::host::internal;
use crate::traffic::header_edits::{header_edits, HeaderEdit};
use crate::traffic::proxy;
use crate::traffic::split::{self, Next};

/// A request to an origin, kept as parts so a bodiless one can be sent again (retry on the
/// stable origin, background revalidation).
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    pub(crate) method: Method,
    pub(crate) path_and_query: String,
    /// The headers to send.
    pub(crate) headers: Vec<(String, String)>,
    /// The visitor's headers as a list, and as the runtime holds them: a send copies the
    /// runtime's set natively and applies only the edits to `headers` (one call per changed
    /// header, not one per header: appending each header was the largest header cost).
    visitor: Vec<(String, String)>,
    base: web_sys::Headers,
}

impl Outgoing {
    /// The origin-bound form of a visitor's request: forwardable headers plus the forwarding
    /// headers and `extra`.
    /// `visitor` is the request's header list (lowercase names, as [`crate::host::request::cache::header_list`]
    /// gives it): the request's headers are read once per request.
    pub(crate) fn from_request(
        req: &Request,
        url: &worker::Url,
        visitor: &[(String, String)],
        extra: Vec<(String, String)>,
    ) -> Result<Self, EdgeError> {
        let path_and_query = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        let headers = proxy::origin_headers(visitor, url.host_str(), url.scheme(), extra);
        Ok(Self {
            method: req.method(),
            path_and_query,
            headers,
            visitor: visitor.to_vec(),
            base: req.headers().0.clone(),
        })
    }

    /// Sends it to `origin`. `replace` headers replace the visitor's of the same name (and
    /// conditional ones replace all of the visitor's `If-*` validators).
    pub(crate) async fn send(
        &self,
        origin: &str,
        body: Option<JsValue>,
        replace: &[(String, String)],
    ) -> Result<(Response, Vec<(String, String)>), EdgeError> {
        let want = proxy::with_replacements(&self.headers, replace);
        let headers = web_sys::Headers::new_with_headers(&self.base).map_err(js)?;
        crate::host::request::headers_js::apply(&headers, &header_edits(&self.visitor, &want))?;
        let mut init = RequestInit::new();
        init.with_method(self.method.clone())
            .with_headers(Headers(headers))
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
        // A fetched response's headers are immutable: a native copy, without what may not
        // pass. The list of what passes goes along, so nobody reads the headers again.
        let mut list = crate::host::request::cache::header_list(res.headers());
        let dropped = proxy::response_headers_dropped(&list);
        let out = web_sys::Headers::new_with_headers(&res.headers().0).map_err(js)?;
        let edits: Vec<HeaderEdit> = dropped.iter().cloned().map(HeaderEdit::Delete).collect();
        crate::host::request::headers_js::apply(&out, &edits)?;
        list.retain(|(n, _)| !dropped.contains(n));
        Ok((res.with_headers(Headers(out)), list))
    }
}

/// A failed call on a raw header set.
fn js(e: JsValue) -> EdgeError {
    internal(worker::Error::from(e))
}

/// Where a request goes: the chosen origin, and the stable one for a retry.
#[derive(Debug, Clone)]
pub(crate) struct Upstream {
    pub(crate) out: Outgoing,
    pub(crate) primary: (String, String),
    pub(crate) stable: Option<(String, String)>,
    pub(crate) retry: bool,
    /// Failures (connect error or 5xx) of the chosen origin, counted for the metrics even
    /// when the retry on the stable origin saved the request.
    pub(crate) primary_failures: Rc<std::cell::Cell<u32>>,
}

/// What an upstream fetch gave.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub(crate) result: Result<Response, EdgeError>,
    /// The response's headers as a list (lowercase names; empty when there is none).
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) served_by: String,
    pub(crate) retried: bool,
}

/// A send's result split into the response and its header list.
fn split_headers(
    sent: Result<(Response, Vec<(String, String)>), EdgeError>,
) -> (Result<Response, EdgeError>, Vec<(String, String)>) {
    match sent {
        Ok((res, headers)) => (Ok(res), headers),
        Err(e) => (Err(e), Vec::new()),
    }
}

impl Upstream {
    /// Sends to the chosen origin; a failed retryable request (connect error or 5xx) goes
    /// once to the stable origin.
    pub(crate) async fn fetch(
        &self,
        body: Option<JsValue>,
        replace: &[(String, String)],
    ) -> Fetched {
        let (first, first_headers) =
            split_headers(self.out.send(&self.primary.1, body, replace).await);
        let status = first.as_ref().ok().map(Response::status_code);
        if split::failed(status) {
            self.primary_failures.set(self.primary_failures.get() + 1);
        }
        let retry = self.retry && self.stable.is_some();
        match (&self.stable, split::next(None, status, retry)) {
            (Some((name, url)), Next::RetryOnStable) => {
                let (second, headers) = split_headers(
                    self.out
                        .send(url, None, &proxy::without_validators(replace))
                        .await,
                );
                let again = second.as_ref().ok().map(Response::status_code);
                match split::next(Some(status), again, retry) {
                    Next::Serve { .. } => Fetched {
                        result: second,
                        headers,
                        served_by: name.clone(),
                        retried: true,
                    },
                    _ => Fetched {
                        result: first,
                        headers: first_headers,
                        served_by: self.primary.0.clone(),
                        retried: true,
                    },
                }
            }
            _ => Fetched {
                result: first,
                headers: first_headers,
                served_by: self.primary.0.clone(),
                retried: false,
            },
        }
    }
}
