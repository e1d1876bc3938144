//! Calls from the worker to its flag set's writer (`host/flags/writer.rs`): one Durable Object per
//! flags key, so every change to that set is serialised in one place.

use serde::de::DeserializeOwned;
use serde::Serialize;
use worker::Env;

use crate::config::Config;
use crate::error::EdgeError;
#[cfg(feature = "control")]
use crate::flags::control::{self, Answer, Audit, Command, Versions};
use crate::flags::control::{HeadAnswer, HeadQuery};

/// Durable Object binding of the writer (`[[durable_objects.bindings]]`; the request worker's
/// names the control worker's class with `script_name`).
pub(crate) const BINDING: &str = "FLAG_WRITER";

/// Sends `body` to the writer at `path`; its answer is `{"Ok": R}` or `{"Err": EdgeError}`.
async fn call<B: Serialize, R: DeserializeOwned>(
    env: &Env,
    config: &Config,
    path: &str,
    body: &B,
) -> Result<R, EdgeError> {
    let answer: Result<R, EdgeError> =
        crate::host::durable_call(env, (BINDING, &config.flags_key, "flag writer"), path, body)
            .await?;
    answer
}

#[cfg(feature = "control")]
/// Asks the writer to apply one command.
pub(crate) async fn command(
    env: &Env,
    config: &Config,
    actor: &str,
    if_match: Option<String>,
    command: Command,
) -> Result<Answer, EdgeError> {
    let request = control::Request {
        actor: actor.to_owned(),
        if_match,
        command,
    };
    call(env, config, "/command", &request).await
}

/// The writer's head, with the document / purge list when `query` lacks them.
pub(crate) async fn head(
    env: &Env,
    config: &Config,
    query: &HeadQuery,
) -> Result<HeadAnswer, EdgeError> {
    call(env, config, "/head", query).await
}

#[cfg(feature = "control")]
/// The committed document and its version.
pub(crate) async fn document(
    env: &Env,
    config: &Config,
) -> Result<Option<(String, String)>, EdgeError> {
    call(env, config, "/document", &Option::<String>::None).await
}

#[cfg(feature = "control")]
/// A version's document from the writer's history.
pub(crate) async fn document_of(
    env: &Env,
    config: &Config,
    version: &str,
) -> Result<Option<(String, String)>, EdgeError> {
    call(env, config, "/document", &Some(version)).await
}

#[cfg(feature = "control")]
pub(crate) async fn versions(env: &Env, config: &Config) -> Result<Versions, EdgeError> {
    call(env, config, "/versions", &()).await
}

#[cfg(feature = "control")]
pub(crate) async fn audit(env: &Env, config: &Config, limit: u64) -> Result<Audit, EdgeError> {
    call(env, config, "/audit", &limit).await
}

#[cfg(feature = "control")]
/// Reports a dashboard sign-in to the writer, which keeps the per-client limit and records a
/// failure; the answer says whether the client must wait.
pub(crate) async fn signin(
    env: &Env,
    config: &Config,
    attempt: &crate::dashboard::SigninAttempt,
) -> Result<crate::dashboard::SigninGate, EdgeError> {
    call(env, config, "/signin", attempt).await
}

#[cfg(feature = "control")]
/// The most recent failed sign-ins and the bounds' counters.
pub(crate) async fn signin_failures(
    env: &Env,
    config: &Config,
    limit: u64,
) -> Result<crate::dashboard::SigninFailures, EdgeError> {
    call(env, config, "/signin/failures", &limit).await
}
