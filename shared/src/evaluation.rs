//! Evaluation results (OpenFeature resolution details) and their OFREP JSON form.

use std::borrow::Cow;
use std::fmt;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

use crate::error::{ErrorCode, EvalError};

/// OpenFeature resolution reasons (<https://openfeature.dev/specification/types#resolution-reason>).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The flag has no targeting: the default variant was served.
    Static,
    /// Targeting ran but returned null (or the flag has no default variant to serve).
    Default,
    /// Targeting selected a variant (also for `fractional`, as flagd reports it).
    TargetingMatch,
    /// A pseudorandom split selected the variant (not produced by this evaluator,
    /// which follows flagd in reporting `TARGETING_MATCH` for `fractional`).
    Split,
    /// The flag is disabled: the caller's code default applies.
    Disabled,
    /// The value came from a cache (for callers that cache evaluations).
    Cached,
    /// The reason is not known.
    Unknown,
    /// The evaluation failed; see the error.
    Error,
}

impl Reason {
    /// The wire name (`TARGETING_MATCH`, …).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Static => "STATIC",
            Self::Default => "DEFAULT",
            Self::TargetingMatch => "TARGETING_MATCH",
            Self::Split => "SPLIT",
            Self::Disabled => "DISABLED",
            Self::Cached => "CACHED",
            Self::Unknown => "UNKNOWN",
            Self::Error => "ERROR",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Reason {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// The result of evaluating one flag, borrowing from the [`FlagSet`](crate::FlagSet).
///
/// Serializes to OFREP's single-flag body: on success
/// `{"key", "value"?, "variant"?, "reason", "metadata"}` — `value` and `variant` are
/// omitted when the caller's code default applies (OFREP's `codeDefaultFlag`: disabled
/// flags and flags without a default variant) — and on failure
/// `{"key", "errorCode", "errorDetails"}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation<'a> {
    /// The flag key (borrowed from the flag set; owned only for unknown keys).
    pub key: Cow<'a, str>,
    /// The resolved value; `None` means "use the caller's default".
    pub value: Option<&'a Value>,
    /// The name of the resolved variant.
    pub variant: Option<&'a str>,
    /// Why this value was chosen.
    pub reason: Reason,
    /// Set when the evaluation failed (`reason` is then [`Reason::Error`]).
    pub error: Option<EvalError>,
    /// Flag-set metadata overlaid with the flag's own metadata.
    pub metadata: &'a Map<String, Value>,
}

impl<'a> Evaluation<'a> {
    pub(crate) fn error(
        key: Cow<'a, str>,
        code: ErrorCode,
        details: String,
        metadata: &'a Map<String, Value>,
    ) -> Self {
        Self {
            key,
            value: None,
            variant: None,
            reason: Reason::Error,
            error: Some(EvalError::new(code, details)),
            metadata,
        }
    }

    /// Whether the evaluation succeeded (no error).
    pub fn is_success(&self) -> bool {
        self.error.is_none()
    }

    /// The HTTP status of the OFREP single-flag response carrying this result: 200 on
    /// success, else [`ErrorCode::http_status`].
    pub fn http_status(&self) -> u16 {
        self.error.as_ref().map_or(200, EvalError::http_status)
    }
}

impl Serialize for Evaluation<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if let Some(err) = &self.error {
            let mut map = serializer.serialize_map(Some(3))?;
            map.serialize_entry("key", &self.key)?;
            map.serialize_entry("errorCode", &err.code)?;
            map.serialize_entry("errorDetails", &err.details)?;
            return map.end();
        }
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("key", &self.key)?;
        if let Some(value) = self.value {
            map.serialize_entry("value", value)?;
        }
        if let Some(variant) = self.variant {
            map.serialize_entry("variant", variant)?;
        }
        map.serialize_entry("reason", &self.reason)?;
        map.serialize_entry("metadata", self.metadata)?;
        map.end()
    }
}

/// Every flag of a set evaluated for one context, in flag-key order.
///
/// Serializes to OFREP's bulk body `{"flags": [...]}`, each item a success or failure
/// body as for [`Evaluation`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BulkEvaluation<'a> {
    /// One evaluation per flag, sorted by key (so the body is deterministic, e.g. for
    /// ETags).
    pub flags: Vec<Evaluation<'a>>,
}
