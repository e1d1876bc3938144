//! Forwards every request to `ORIGIN_URL` (method, headers, path and query), as
//! `bench/baselines/fetch-only.mjs` does in JS.
use worker::{event, Context, Env, Fetch, Request, RequestInit, RequestRedirect, Response, Result};

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let url = req.url()?;
    let mut target = env.var("ORIGIN_URL")?.to_string();
    target.push_str(url.path());
    if let Some(q) = url.query() {
        target.push('?');
        target.push_str(q);
    }
    let mut init = RequestInit::new();
    init.with_method(req.method())
        .with_headers(req.headers().clone())
        .with_redirect(RequestRedirect::Manual);
    Fetch::Request(Request::new_with_init(&target, &init)?).send().await
}
