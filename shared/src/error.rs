//! Error types: OpenFeature error codes, evaluation errors, and load diagnostics.
//!
//! The error-code → HTTP-status mapping lives here and nowhere else
//! ([`ErrorCode::http_status`]), because the edge worker and the service worker both
//! answer OFREP requests and must agree on it.

use std::fmt;

use serde::ser::{Serialize, SerializeMap, Serializer};

/// OpenFeature error codes (<https://openfeature.dev/specification/types#error-code>).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The provider has not been initialised yet.
    ProviderNotReady,
    /// No flag with the requested key exists in the flag set.
    FlagNotFound,
    /// The flag definition or the request could not be parsed.
    ParseError,
    /// The value does not have the type the caller asked for.
    TypeMismatch,
    /// The evaluation needed a targeting key that the context lacks.
    TargetingKeyMissing,
    /// The evaluation context is not usable (e.g. not a JSON object).
    InvalidContext,
    /// The provider is in an unrecoverable state.
    ProviderFatal,
    /// Any other error.
    General,
}

impl ErrorCode {
    /// The wire name (`FLAG_NOT_FOUND`, …) used by OpenFeature and OFREP.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::ProviderNotReady => "PROVIDER_NOT_READY",
            Self::FlagNotFound => "FLAG_NOT_FOUND",
            Self::ParseError => "PARSE_ERROR",
            Self::TypeMismatch => "TYPE_MISMATCH",
            Self::TargetingKeyMissing => "TARGETING_KEY_MISSING",
            Self::InvalidContext => "INVALID_CONTEXT",
            Self::ProviderFatal => "PROVIDER_FATAL",
            Self::General => "GENERAL",
        }
    }

    /// The HTTP status an OFREP single-flag response carries for this error.
    ///
    /// This is the only place in the project that maps error codes to statuses.
    /// OFREP (service/openapi.yaml): 404 for `flagNotFound`, 400 for `evaluationFailure`
    /// (PARSE_ERROR, TARGETING_KEY_MISSING, INVALID_CONTEXT), 500 for a general error.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::FlagNotFound => 404,
            Self::ParseError
            | Self::TypeMismatch
            | Self::TargetingKeyMissing
            | Self::InvalidContext => 400,
            Self::ProviderNotReady => 503,
            Self::ProviderFatal | Self::General => 500,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// An evaluation error: an OpenFeature error code and a human-readable detail.
///
/// Serializes to `{"errorCode": …, "errorDetails": …}`, which is both OFREP's
/// `bulkEvaluationFailure` body and the error part of a single-flag failure body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {details}")]
pub struct EvalError {
    /// The OpenFeature error code.
    pub code: ErrorCode,
    /// What went wrong, for logs and for OFREP's `errorDetails`.
    pub details: String,
}

impl EvalError {
    /// Builds an error from a code and a detail message.
    pub fn new(code: ErrorCode, details: impl Into<String>) -> Self {
        Self {
            code,
            details: details.into(),
        }
    }

    /// Shorthand for [`ErrorCode::http_status`] of this error's code.
    pub fn http_status(&self) -> u16 {
        self.code.http_status()
    }
}

impl Serialize for EvalError {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("errorCode", &self.code)?;
        map.serialize_entry("errorDetails", &self.details)?;
        map.end()
    }
}

/// One finding about a flag-set document, located by a JSON path such as
/// `flags.new-checkout.targeting.fractional[1]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Diagnostic {
    /// Where in the document: dotted object keys, `[i]` for array indexes, `$` for the
    /// document itself.
    pub path: String,
    /// What is wrong there and, for warnings, what the evaluator does about it.
    pub message: String,
}

impl Diagnostic {
    /// The one error a build without the `diagnostics` feature reports for a refused
    /// document, and the `errorDetails` of a broken flag in such a build.
    pub fn without_details() -> Self {
        Self::new(
            "$",
            "invalid (this build of edgeflags-core leaves out load diagnostics: validate the \
             flag set with the edgeflags CLI or the edge's admin API for the details)",
        )
    }

    /// Builds a diagnostic.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// A flag set that was refused. Every error is listed, not just the first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// The errors that made the set unusable (in strict mode this includes the
    /// warnings that strictness promoted).
    pub diagnostics: Vec<Diagnostic>,
    /// Findings that would only have been warnings; reported too so that a user fixing
    /// the errors sees everything at once.
    pub warnings: Vec<Diagnostic>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.diagnostics.len();
        write!(
            f,
            "flag set refused: {n} error{}",
            if n == 1 { "" } else { "s" }
        )?;
        for d in &self.diagnostics {
            write!(f, "\n  {d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadError {}

/// The crate's error type: everything that can go wrong, in one enum.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A flag-set document was refused.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// An evaluation (or its input) failed.
    #[error(transparent)]
    Eval(#[from] EvalError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_code_maps_to_the_agreed_http_status() {
        let table = [
            (ErrorCode::FlagNotFound, "FLAG_NOT_FOUND", 404),
            (ErrorCode::ParseError, "PARSE_ERROR", 400),
            (ErrorCode::TargetingKeyMissing, "TARGETING_KEY_MISSING", 400),
            (ErrorCode::InvalidContext, "INVALID_CONTEXT", 400),
            (ErrorCode::TypeMismatch, "TYPE_MISMATCH", 400),
            (ErrorCode::General, "GENERAL", 500),
            (ErrorCode::ProviderFatal, "PROVIDER_FATAL", 500),
            (ErrorCode::ProviderNotReady, "PROVIDER_NOT_READY", 503),
        ];
        for (code, name, status) in table {
            assert_eq!(code.as_str(), name);
            assert_eq!(code.http_status(), status, "{name}");
        }
    }

    #[test]
    fn eval_error_serializes_as_an_ofrep_bulk_failure_body() {
        let e = EvalError::new(ErrorCode::InvalidContext, "context must be an object");
        let json = serde_json::to_string(&e).unwrap_or_default();
        assert_eq!(
            json,
            r#"{"errorCode":"INVALID_CONTEXT","errorDetails":"context must be an object"}"#
        );
    }

    #[test]
    fn load_error_display_lists_every_diagnostic() {
        let e = LoadError {
            diagnostics: vec![
                Diagnostic::new("flags.a", "x"),
                Diagnostic::new("flags.b", "y"),
            ],
            warnings: vec![],
        };
        assert_eq!(
            e.to_string(),
            "flag set refused: 2 errors\n  flags.a: x\n  flags.b: y"
        );
    }
}
