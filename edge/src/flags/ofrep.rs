//! OFREP (OpenFeature Remote Evaluation Protocol v0.3) at the edge: request bodies as bytes,
//! and `If-None-Match`. The contract shared with the service worker (request parser, bulk
//! ETag, failure bodies) is `edgeflags_core::ofrep`'s.

use edgeflags_core::{Context, ErrorCode, EvalError};

pub(crate) use edgeflags_core::ofrep::{bulk_etag, flags_tag, MAX_BODY_BYTES};

/// Parses an OFREP request body into the evaluation context with the parser the service
/// worker uses too (`edgeflags_core::ofrep`), adding the visitor's targetingKey from the
/// edge's identity source when the body has none. A body that is not UTF-8 is malformed
/// JSON (`PARSE_ERROR`, 400).
pub(crate) fn parse_request(body: &[u8], visitor_key: Option<&str>) -> Result<Context, EvalError> {
    let text = std::str::from_utf8(body).map_err(|_| {
        EvalError::new(
            ErrorCode::ParseError,
            "request body is not valid JSON: it is not UTF-8",
        )
    })?;
    edgeflags_core::ofrep::parse_request(text, visitor_key)
}

/// Whether an `If-None-Match` header matches `etag` (weak comparison, RFC 9110 §13.1.2).
pub(crate) fn if_none_match(header: Option<&str>, etag: &str) -> bool {
    let Some(h) = header else { return false };
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    let want = bare(etag);
    h.split(',').any(|t| t.trim() == "*" || bare(t) == want)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_parsed_by_the_shared_parser_and_must_be_utf8() {
        let ctx = parse_request(br#"{"context":{"plan":"pro"}}"#, Some("visitor-1")).unwrap();
        assert_eq!(ctx.targeting_key(), Some("visitor-1"));
        assert_eq!(
            parse_request(b"{\"context\":{\"a\":\"\xff\"}}", None)
                .unwrap_err()
                .code,
            ErrorCode::ParseError
        );
        assert_eq!(
            parse_request(br#"{"context":"x"}"#, None).unwrap_err().code,
            ErrorCode::InvalidContext
        );
    }

    #[test]
    fn if_none_match_uses_weak_comparison_and_lists() {
        let etag = "\"abc-1\"";
        assert!(if_none_match(Some("\"abc-1\""), etag));
        assert!(if_none_match(Some("W/\"abc-1\""), etag));
        assert!(if_none_match(Some("\"x\", \"abc-1\""), etag));
        assert!(if_none_match(Some("*"), etag));
        assert!(!if_none_match(Some("\"abc-2\""), etag));
        assert!(!if_none_match(None, etag));
    }
}
