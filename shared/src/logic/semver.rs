//! flagd's `sem_ver` operator: semantic versions as Go's `golang.org/x/mod/semver` reads
//! them, which is what flagd (Go) uses.
//!
//! Hand-written rather than built on the `semver` crate because flagd's grammar differs
//! from it in ways that change results: partial versions are accepted (`1` and `1.2`
//! mean `1.0.0` and `1.2.0`) but may carry neither pre-release nor build; build metadata
//! is ignored by every comparison (the crate orders by it); and flagd normalises by
//! prefixing `v`, so one leading `v`/`V` is accepted. The port is shorter than the
//! adapter would be.

use std::cmp::Ordering;

/// A parsed version borrowing its parts from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Version<'s> {
    major: &'s str,
    minor: &'s str,
    patch: &'s str,
    /// Pre-release identifiers without the leading `-`; empty when absent.
    prerelease: &'s str,
}

/// The comparison operators flagd accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SemVerOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `^`: same major version.
    Caret,
    /// `~`: same major and minor version.
    Tilde,
}

impl SemVerOp {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "=" => Self::Eq,
            "!=" => Self::Ne,
            "<" => Self::Lt,
            "<=" => Self::Le,
            ">" => Self::Gt,
            ">=" => Self::Ge,
            "^" => Self::Caret,
            "~" => Self::Tilde,
            _ => return None,
        })
    }
}

/// Parses a version as flagd does: one optional leading `v` or `V`, then Go's grammar.
pub(crate) fn parse(input: &str) -> Option<Version<'_>> {
    let s = input
        .strip_prefix('v')
        .or_else(|| input.strip_prefix('V'))
        .unwrap_or(input);
    let (major, rest) = number(s)?;
    if rest.is_empty() {
        return Some(Version {
            major,
            minor: "0",
            patch: "0",
            prerelease: "",
        });
    }
    let (minor, rest) = number(rest.strip_prefix('.')?)?;
    if rest.is_empty() {
        return Some(Version {
            major,
            minor,
            patch: "0",
            prerelease: "",
        });
    }
    let (patch, mut rest) = number(rest.strip_prefix('.')?)?;
    let mut prerelease = "";
    if let Some(after) = rest.strip_prefix('-') {
        let end = after.find('+').unwrap_or(after.len());
        let (pre, tail) = after.split_at(end);
        if !identifiers_ok(pre, true) {
            return None;
        }
        prerelease = pre;
        rest = tail;
    }
    if let Some(build) = rest.strip_prefix('+') {
        if !identifiers_ok(build, false) {
            return None;
        }
        rest = "";
    }
    if !rest.is_empty() {
        return None;
    }
    Some(Version {
        major,
        minor,
        patch,
        prerelease,
    })
}

/// A numeric component without leading zeros, and what follows it.
fn number(s: &str) -> Option<(&str, &str)> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, rest) = s.split_at(end);
    if digits.is_empty() || (digits.len() > 1 && digits.starts_with('0')) {
        return None;
    }
    Some((digits, rest))
}

/// Dot-separated, non-empty `[0-9A-Za-z-]` identifiers; pre-release numeric ones may not
/// have leading zeros.
fn identifiers_ok(s: &str, prerelease: bool) -> bool {
    s.split('.').all(|id| {
        !id.is_empty()
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !(prerelease && is_numeric(id) && id.len() > 1 && id.starts_with('0'))
    })
}

fn is_numeric(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())
}

/// Compares decimal strings without leading zeros, of any length.
fn cmp_num(a: &str, b: &str) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn cmp_prerelease(a: &str, b: &str) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => return Ordering::Equal,
        // A release sorts after any of its pre-releases.
        (true, false) => return Ordering::Greater,
        (false, true) => return Ordering::Less,
        (false, false) => {}
    }
    let mut xs = a.split('.');
    let mut ys = b.split('.');
    loop {
        match (xs.next(), ys.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let ord = match (is_numeric(x), is_numeric(y)) {
                    (true, true) => cmp_num(x, y),
                    (true, false) => Ordering::Less,
                    (false, true) => Ordering::Greater,
                    (false, false) => x.cmp(y),
                };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
        }
    }
}

/// Orders two versions; build metadata is ignored.
pub(crate) fn compare(a: &Version<'_>, b: &Version<'_>) -> Ordering {
    cmp_num(a.major, b.major)
        .then_with(|| cmp_num(a.minor, b.minor))
        .then_with(|| cmp_num(a.patch, b.patch))
        .then_with(|| cmp_prerelease(a.prerelease, b.prerelease))
}

/// Applies a `sem_ver` operator.
pub(crate) fn apply(op: SemVerOp, a: &Version<'_>, b: &Version<'_>) -> bool {
    match op {
        SemVerOp::Eq => compare(a, b) == Ordering::Equal,
        SemVerOp::Ne => compare(a, b) != Ordering::Equal,
        SemVerOp::Lt => compare(a, b) == Ordering::Less,
        SemVerOp::Le => compare(a, b) != Ordering::Greater,
        SemVerOp::Gt => compare(a, b) == Ordering::Greater,
        SemVerOp::Ge => compare(a, b) != Ordering::Less,
        SemVerOp::Caret => a.major == b.major,
        SemVerOp::Tilde => a.major == b.major && a.minor == b.minor,
    }
}

/// `sem_ver` on strings: `None` (the operator's null) when either version or the
/// operator is invalid.
pub(crate) fn sem_ver(version: &str, op: &str, target: &str) -> Option<bool> {
    let op = SemVerOp::parse(op)?;
    let a = parse(version)?;
    let b = parse(target)?;
    Some(apply(op, &a, &b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators_follow_go_semver() {
        let cases: &[(&str, &str, &str, Option<bool>)] = &[
            ("1.0.0", "=", "1.0.0", Some(true)),
            ("v1.0.0", "=", "1.0.0", Some(true)),
            ("V1.0.0", "=", "1.0.0", Some(true)),
            ("1.0.0", "!=", "1.0.1", Some(true)),
            ("1.0.0", "<", "1.0.1", Some(true)),
            ("1.0.0-alpha", "<", "1.0.0", Some(true)),
            ("1.0.0-alpha", "<", "1.0.0-alpha.1", Some(true)),
            ("1.0.0-alpha.1", "<", "1.0.0-alpha.beta", Some(true)),
            ("1.0.0-beta.2", "<", "1.0.0-beta.11", Some(true)),
            ("1.0.0-rc.1", "<", "1.0.0", Some(true)),
            ("2.0.0", ">", "1.99.99", Some(true)),
            ("10.0.0", ">", "9.0.0", Some(true)),
            ("1.2.3", ">=", "1.2.3", Some(true)),
            ("1.2.3", "<=", "1.2.2", Some(false)),
            ("1.0.0+build", "=", "1.0.0", Some(true)),
            ("1.0.0+a", "=", "1.0.0+b", Some(true)),
            ("1.2", "=", "1.2.0", Some(true)),
            ("1", "=", "1.0.0", Some(true)),
            ("v1", "<", "v1.0.1", Some(true)),
            ("1.5.0", "^", "1", Some(true)),
            ("2.0.0", "^", "1", Some(false)),
            ("3.0.1", "~", "3.0.0", Some(true)),
            ("3.1.0", "~", "3.0.0", Some(false)),
            ("3.1.0", "^", "3.0.0", Some(true)),
            ("1.0.0", "===", "1.0.0", None),
            ("1.0.0", "==", "1.0.0", None),
            ("not-a-version", "=", "1.0.0", None),
            ("2.0.0.0", "=", "2.0.0", None),
            ("01.0.0", "=", "1.0.0", None),
            ("1.0.0-01", "=", "1.0.0", None),
            ("1.2-alpha", "=", "1.2.0", None),
            ("1.0.0-", "=", "1.0.0", None),
            ("1.0.0+", "=", "1.0.0", None),
            ("", "=", "1.0.0", None),
            ("vv1.0.0", "=", "1.0.0", None),
            (" 1.0.0", "=", "1.0.0", None),
        ];
        for &(a, op, b, want) in cases {
            assert_eq!(sem_ver(a, op, b), want, "{a} {op} {b}");
        }
    }

    #[test]
    fn huge_numeric_components_compare_without_overflow() {
        assert_eq!(
            sem_ver(
                "1.0.99999999999999999999999",
                ">",
                "1.0.9999999999999999999999"
            ),
            Some(true)
        );
    }
}
