//! The worker's one error type, and the single place mapping errors to HTTP statuses and
//! OFREP-style bodies (`{"errorCode": ..., "errorDetails": ...}`).

use serde::Serialize;

/// Everything that can go wrong while the edge answers a request.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
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
    /// The origin could not be reached.
    #[error("origin unreachable: {0}")]
    OriginUnreachable(String),
    /// A platform call (KV, Cache, fetch plumbing) failed.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The JSON body sent with every error answer.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct ErrorBody<'a> {
    #[serde(rename = "errorCode")]
    pub error_code: &'a str,
    #[serde(rename = "errorDetails")]
    pub error_details: String,
}

impl EdgeError {
    /// HTTP status for this error. Keep every mapping here.
    pub fn status(&self) -> u16 {
        match self {
            EdgeError::NotFound(_) => 404,
            EdgeError::MethodNotAllowed(_) => 405,
            EdgeError::OriginUnreachable(_) => 502,
            EdgeError::Config(_) | EdgeError::Internal(_) => 500,
        }
    }

    /// Stable machine-readable code (OFREP's `errorCode` vocabulary where one fits).
    pub fn code(&self) -> &'static str {
        match self {
            EdgeError::NotFound(_) => "NOT_FOUND",
            EdgeError::MethodNotAllowed(_) => "METHOD_NOT_ALLOWED",
            EdgeError::OriginUnreachable(_) => "ORIGIN_UNREACHABLE",
            EdgeError::Config(_) | EdgeError::Internal(_) => "GENERAL",
        }
    }

    /// The response body for this error.
    pub fn body(&self) -> ErrorBody<'static> {
        ErrorBody {
            error_code: self.code(),
            error_details: self.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_codes_are_mapped_in_one_table() {
        let cases = [
            (EdgeError::NotFound("x".into()), 404, "NOT_FOUND"),
            (
                EdgeError::MethodNotAllowed("PUT".into()),
                405,
                "METHOD_NOT_ALLOWED",
            ),
            (
                EdgeError::OriginUnreachable("x".into()),
                502,
                "ORIGIN_UNREACHABLE",
            ),
            (EdgeError::Config("x".into()), 500, "GENERAL"),
            (EdgeError::Internal("x".into()), 500, "GENERAL"),
        ];
        for (err, status, code) in cases {
            assert_eq!((err.status(), err.code()), (status, code), "{err}");
        }
    }

    #[test]
    fn body_serialises_as_ofrep_error_shape() {
        let json = serde_json::to_value(EdgeError::NotFound("/__edge/nope".into()).body()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"errorCode": "NOT_FOUND", "errorDetails": "not found: /__edge/nope"})
        );
    }
}
