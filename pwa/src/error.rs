//! The service worker's one error type.

/// What can go wrong inside the service worker.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SwError {
    /// The embedded configuration is unusable (a build problem).
    #[error("invalid service-worker configuration: {0}")]
    Config(String),
    /// An event arrived before `start` configured the worker.
    #[error("the service worker was not started")]
    NotStarted,
    /// Neither the network nor a cache could answer.
    #[error("no response for {0}")]
    NoResponse(String),
    /// A browser API call failed.
    #[error("{0}")]
    Js(String),
}
