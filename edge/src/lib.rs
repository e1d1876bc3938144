//! edgeflags edge worker: entry point and router. Handlers stay small; policy lives in the
//! plain-Rust modules below, which build and test natively.

pub mod config;
pub mod error;
pub mod flagstore;
pub mod proxy;

#[cfg(target_arch = "wasm32")]
mod host;

#[cfg(target_arch = "wasm32")]
mod entry {
    use worker::{event, Context, Env, Request, Response, Result};

    use crate::config::Config;
    use crate::error::EdgeError;
    use crate::host;

    #[event(fetch)]
    async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
        let res = match route(req, &env).await {
            Ok(res) => res,
            Err(err) => host::error_response(&err)?,
        };
        host::stamp(res)
    }

    async fn route(req: Request, env: &Env) -> std::result::Result<Response, EdgeError> {
        let config = Config::from_lookup(|name| env.var(name).ok().map(|v| v.to_string()))?;
        let path = req.path();
        match config.admin_subpath(&path) {
            Some("/health") => host::json(
                &serde_json::json!({"ok": true, "edge": crate::proxy::EDGE_HEADER_VALUE}),
            ),
            Some("/status") => host::status(env, &config).await,
            Some(other) => Err(EdgeError::NotFound(format!(
                "{}{other}",
                config.admin_prefix
            ))),
            None => host::proxy(req, &config.origin).await,
        }
    }
}
