//! `If-Match` (RFC 9110 §13.1.1) against the writer's head version: `*` matches any current
//! version, otherwise a comma-separated list of entity-tags, compared strongly (a weak tag
//! `W/"…"` never matches, as the RFC requires for `If-Match`).

use crate::error::EdgeError;

/// Whether a write may proceed: `Ok` when there is no precondition or it holds, else the
/// 412 naming the current version.
pub(crate) fn check(if_match: Option<&str>, current: Option<&str>) -> Result<(), EdgeError> {
    let Some(header) = if_match.map(str::trim) else {
        return Ok(());
    };
    let failed = || EdgeError::PreconditionFailed {
        current: current.unwrap_or("none").to_owned(),
    };
    if header == "*" {
        return current.map(|_| ()).ok_or_else(failed);
    }
    let tags = parse_list(header).ok_or_else(|| {
        EdgeError::BadRequest(format!("If-Match: not a list of entity-tags: {header:?}"))
    })?;
    match current {
        Some(v) if tags.iter().any(|t| !t.weak && t.opaque == v) => Ok(()),
        _ => Err(failed()),
    }
}

#[derive(Debug, PartialEq)]
struct Tag<'a> {
    weak: bool,
    opaque: &'a str,
}

/// `#entity-tag`: `W/"x", "y"`. `None` when any member is not an entity-tag.
fn parse_list(header: &str) -> Option<Vec<Tag<'_>>> {
    let mut out = Vec::new();
    let mut rest = header;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            break;
        }
        let (weak, tail) = match rest.strip_prefix("W/") {
            Some(t) => (true, t),
            None => (false, rest),
        };
        let tail = tail.strip_prefix('"')?;
        let end = tail.find('"')?;
        let opaque = &tail[..end];
        // etagc = %x21 / %x23-7E / obs-text: no spaces, no quotes, no controls.
        if opaque.bytes().any(|b| b <= 0x20 || b == 0x7f) {
            return None;
        }
        out.push(Tag { weak, opaque });
        rest = &tail[end + 1..];
        let after = rest.trim_start_matches([' ', '\t']);
        if !(after.is_empty() || after.starts_with(',')) {
            return None;
        }
        rest = after;
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_cases() {
        let v = Some("abc");
        let ok: &[(&str, Option<&str>)] = &[
            ("\"abc\"", v),
            ("\"zzz\", \"abc\"", v),
            ("\"zzz\",\"abc\"", v),
            ("*", v),
        ];
        for (h, cur) in ok {
            assert_eq!(check(Some(h), *cur), Ok(()), "{h}");
        }
        let failed: &[(&str, Option<&str>)] = &[
            ("\"zzz\"", v),
            ("W/\"abc\"", v),
            ("*", None),
            ("\"abc\"", None),
        ];
        for (h, cur) in failed {
            assert!(
                matches!(
                    check(Some(h), *cur),
                    Err(EdgeError::PreconditionFailed { .. })
                ),
                "{h}"
            );
        }
        for bad in ["abc", "\"abc", "\"a b\"", "\"abc\" x", ""] {
            assert!(
                matches!(check(Some(bad), v), Err(EdgeError::BadRequest(_))),
                "{bad:?}"
            );
        }
        assert_eq!(check(None, None), Ok(()));
    }

    #[test]
    fn a_failed_precondition_names_the_current_version() {
        assert_eq!(
            check(Some("\"old\""), Some("new")),
            Err(EdgeError::PreconditionFailed {
                current: "new".into()
            })
        );
    }
}
