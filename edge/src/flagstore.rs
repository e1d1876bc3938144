//! What the edge knows about the flag set stored in KV: parsed, summarised for the status
//! endpoint. (The compiled, cached flag set for evaluation builds on this.)

use serde::Serialize;

/// Summary of the KV flag-set document, as the status endpoint reports it.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct FlagSetStatus {
    /// KV key read.
    pub key: String,
    /// Whether a value exists under the key.
    pub present: bool,
    /// Size of the stored document in bytes.
    pub bytes: usize,
    /// `metadata.version` of the document, when it has one.
    pub version: Option<String>,
    /// Number of flags, when the document parsed.
    pub flags: Option<usize>,
    /// Why the document cannot be used, when it cannot.
    pub error: Option<String>,
}

/// Summarises the document stored under `key` (`None` when the key is absent).
pub fn inspect(key: &str, stored: Option<&str>) -> FlagSetStatus {
    let Some(text) = stored else {
        return FlagSetStatus {
            key: key.into(),
            present: false,
            bytes: 0,
            version: None,
            flags: None,
            error: None,
        };
    };
    let mut status = FlagSetStatus {
        key: key.into(),
        present: true,
        bytes: text.len(),
        version: None,
        flags: None,
        error: None,
    };
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(doc) => {
            status.version = doc.pointer("/metadata/version").and_then(|v| match v {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            });
            match doc.get("flags").and_then(serde_json::Value::as_object) {
                Some(flags) => status.flags = Some(flags.len()),
                None => status.error = Some("flags: missing or not an object".into()),
            }
        }
        Err(e) => status.error = Some(format!("not JSON: {e}")),
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_key_is_reported_as_not_present() {
        let s = inspect("flags", None);
        assert!(!s.present);
        assert_eq!(s.flags, None);
    }

    #[test]
    fn version_and_flag_count_come_from_the_document() {
        let s = inspect(
            "flags",
            Some(r#"{"metadata":{"version":"7"},"flags":{"a":{},"b":{}}}"#),
        );
        assert_eq!(
            (s.version.as_deref(), s.flags, s.error),
            (Some("7"), Some(2), None)
        );
    }

    #[test]
    fn malformed_documents_are_described_not_fatal() {
        assert!(inspect("k", Some("{nope"))
            .error
            .unwrap()
            .starts_with("not JSON"));
        assert_eq!(
            inspect("k", Some("{}")).error.as_deref(),
            Some("flags: missing or not an object")
        );
    }
}
