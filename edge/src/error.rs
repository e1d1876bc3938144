//! The worker's one error type, and the single place mapping errors to HTTP statuses and
//! OFREP-style bodies (`{"errorCode": ..., "errorDetails": ...}`, written by the encoder the
//! service worker uses too, `edgeflags_core::ofrep::failure_body`).

use serde_json::{json, Value};

use crate::flags::live::Finding;

/// Everything that can go wrong while the edge answers a request.
/// Serialisable, because the control-plane writer (a Durable Object) sends it back to the
/// worker that asked.
#[derive(Debug, thiserror::Error, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum EdgeError {
    /// The worker's own configuration is unusable (a deploy mistake, not the client's).
    #[error("configuration error: {0}")]
    Config(String),
    /// No route of the edge's own matched.
    #[error("not found: {0}")]
    NotFound(String),
    /// The method is not allowed on this endpoint.
    #[error("method {0} not allowed")]
    MethodNotAllowed(String),
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// An event or evaluation needs a unit (targetingKey) and none was given.
    #[error("{0}")]
    TargetingKeyMissing(String),
    /// The request body is larger than the endpoint accepts.
    #[error("request body larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// No credentials were presented.
    #[error("missing bearer token")]
    Unauthorized,
    /// Credentials were presented and refused.
    #[error("{0}")]
    Forbidden(String),
    /// A flag named in an admin request does not exist.
    #[error("flag {0:?} not found")]
    FlagNotFound(String),
    /// A submitted flag set failed validation; nothing was stored.
    #[error("invalid flag set: {} error(s)", .0.len())]
    InvalidFlagSet(Vec<Finding>),
    /// `If-Match` named a version that is no longer current.
    #[error("the flag set changed: current version is {current}")]
    PreconditionFailed { current: String },
    /// The request conflicts with what is stored.
    #[error("{0}")]
    Conflict(String),
    /// Too many requests from this client; retry after this many seconds.
    #[error("rate limit exceeded; retry in {0} s")]
    RateLimited(u32),
    /// There is no usable flag set (none stored, or only malformed ones since start-up).
    #[error("no usable flag set: {0}")]
    NoFlagSet(String),
    /// The origin could not be reached.
    #[error("origin unreachable: {0}")]
    OriginUnreachable(String),
    /// The control worker (admin API, dashboard, notifications) could not be reached from
    /// the request worker; the visitor's path does not depend on it.
    #[error("control plane unavailable: {0}")]
    ControlUnavailable(String),
    /// A platform call (KV, Cache, fetch plumbing) failed.
    #[error("internal error: {0}")]
    Internal(String),
}

impl EdgeError {
    /// HTTP status for this error. Keep every mapping here.
    pub fn status(&self) -> u16 {
        match self {
            EdgeError::BadRequest(_)
            | EdgeError::InvalidFlagSet(_)
            | EdgeError::TargetingKeyMissing(_) => 400,
            EdgeError::Unauthorized => 401,
            EdgeError::Forbidden(_) => 403,
            EdgeError::NotFound(_) | EdgeError::FlagNotFound(_) => 404,
            EdgeError::MethodNotAllowed(_) => 405,
            EdgeError::Conflict(_) => 409,
            EdgeError::PreconditionFailed { .. } => 412,
            EdgeError::PayloadTooLarge(_) => 413,
            EdgeError::RateLimited(_) => 429,
            EdgeError::OriginUnreachable(_) => 502,
            EdgeError::ControlUnavailable(_) => 503,
            EdgeError::NoFlagSet(_) | EdgeError::Config(_) | EdgeError::Internal(_) => 500,
        }
    }

    /// Stable machine-readable code (OFREP's `errorCode` vocabulary where one fits).
    pub fn code(&self) -> &'static str {
        match self {
            EdgeError::BadRequest(_) | EdgeError::PayloadTooLarge(_) => "INVALID_REQUEST",
            EdgeError::InvalidFlagSet(_) => "PARSE_ERROR",
            EdgeError::TargetingKeyMissing(_) => "TARGETING_KEY_MISSING",
            EdgeError::Unauthorized => "UNAUTHORIZED",
            EdgeError::Forbidden(_) => "FORBIDDEN",
            EdgeError::NotFound(_) => "NOT_FOUND",
            EdgeError::FlagNotFound(_) => "FLAG_NOT_FOUND",
            EdgeError::MethodNotAllowed(_) => "METHOD_NOT_ALLOWED",
            EdgeError::Conflict(_) => "CONFLICT",
            EdgeError::PreconditionFailed { .. } => "VERSION_MISMATCH",
            EdgeError::RateLimited(_) => "RATE_LIMITED",
            EdgeError::OriginUnreachable(_) => "ORIGIN_UNREACHABLE",
            EdgeError::ControlUnavailable(_) => "CONTROL_UNAVAILABLE",
            EdgeError::NoFlagSet(_) | EdgeError::Config(_) | EdgeError::Internal(_) => "GENERAL",
        }
    }

    /// The JSON body for this error. Validation failures list every finding with its path.
    pub fn body(&self) -> Value {
        let mut body = edgeflags_core::ofrep::failure_body(None, self.code(), &self.to_string());
        match self {
            EdgeError::InvalidFlagSet(errors) => body["errors"] = json!(errors),
            EdgeError::PreconditionFailed { current } => body["currentVersion"] = json!(current),
            _ => {}
        }
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_codes_are_mapped_in_one_table() {
        let cases = [
            (EdgeError::BadRequest("x".into()), 400, "INVALID_REQUEST"),
            (
                EdgeError::TargetingKeyMissing("x".into()),
                400,
                "TARGETING_KEY_MISSING",
            ),
            (EdgeError::InvalidFlagSet(vec![]), 400, "PARSE_ERROR"),
            (EdgeError::Unauthorized, 401, "UNAUTHORIZED"),
            (EdgeError::Forbidden("x".into()), 403, "FORBIDDEN"),
            (EdgeError::NotFound("x".into()), 404, "NOT_FOUND"),
            (EdgeError::FlagNotFound("x".into()), 404, "FLAG_NOT_FOUND"),
            (
                EdgeError::MethodNotAllowed("PUT".into()),
                405,
                "METHOD_NOT_ALLOWED",
            ),
            (EdgeError::Conflict("x".into()), 409, "CONFLICT"),
            (
                EdgeError::PreconditionFailed {
                    current: "v".into(),
                },
                412,
                "VERSION_MISMATCH",
            ),
            (EdgeError::PayloadTooLarge(1), 413, "INVALID_REQUEST"),
            (EdgeError::RateLimited(60), 429, "RATE_LIMITED"),
            (
                EdgeError::OriginUnreachable("x".into()),
                502,
                "ORIGIN_UNREACHABLE",
            ),
            (
                EdgeError::ControlUnavailable("x".into()),
                503,
                "CONTROL_UNAVAILABLE",
            ),
            (EdgeError::NoFlagSet("x".into()), 500, "GENERAL"),
            (EdgeError::Config("x".into()), 500, "GENERAL"),
            (EdgeError::Internal("x".into()), 500, "GENERAL"),
        ];
        for (err, status, code) in cases {
            assert_eq!((err.status(), err.code()), (status, code), "{err}");
        }
    }

    #[test]
    fn body_serialises_as_ofrep_error_shape() {
        assert_eq!(
            EdgeError::NotFound("/__edge/nope".into()).body(),
            json!({"errorCode": "NOT_FOUND", "errorDetails": "not found: /__edge/nope"})
        );
        let invalid = EdgeError::InvalidFlagSet(vec![Finding {
            path: "flags.a.state".into(),
            message: "bad".into(),
        }]);
        assert_eq!(
            invalid.body()["errors"],
            json!([{"path": "flags.a.state", "message": "bad"}])
        );
        assert_eq!(
            EdgeError::PreconditionFailed {
                current: "abc".into()
            }
            .body()["currentVersion"],
            "abc"
        );
    }
}
