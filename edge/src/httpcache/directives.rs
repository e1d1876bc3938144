//! `Cache-Control` (RFC 9111 §5.2) and `Surrogate-Control` (Edge Architecture 1.0) directives,
//! delta-seconds and `Age` (§5.1).

use super::headers::{HeaderList, Headers};

/// Greatest delta-seconds value (RFC 9111 §1.2.2): larger values and overflows become this.
pub(crate) const DELTA_SECONDS_MAX: u64 = 2_147_483_648;

/// Our device token for the Edge Architecture Specification 1.0 (W3C Note, 2001): origins
/// address `Surrogate-Control` directives to this cache with `;edgeflags`.
pub(crate) const SURROGATE_TOKEN: &str = "edgeflags";

/// What the edge appends to `Surrogate-Capability` on origin requests.
pub(crate) const SURROGATE_CAPABILITY: &str = "edgeflags=\"Surrogate/1.0\"";

/// The `Surrogate-Capability` to send to the origin: the visitor's (from a surrogate in
/// front of us) with ours appended.
pub(crate) fn surrogate_capability(incoming: Option<&str>) -> String {
    match incoming.map(str::trim).filter(|v| !v.is_empty()) {
        Some(v) => format!("{v}, {SURROGATE_CAPABILITY}"),
        None => SURROGATE_CAPABILITY.to_owned(),
    }
}

/// The `Surrogate-Control` directives addressed to this cache (untargeted ones and those
/// targeted `;edgeflags`), when they decide storage: a `max-age` or `no-store` among them.
/// `Surrogate-Control` is for surrogates what `Cache-Control` is for HTTP caches and takes
/// precedence over it here; the visitor never sees it.
pub(crate) fn surrogate_control(headers: &HeaderList) -> Option<Directives> {
    let mut mine: Vec<String> = Vec::new();
    for line in Headers(headers).get_all("surrogate-control") {
        for member in line.split(',') {
            let (directive, target) = match member.split_once(';') {
                Some((d, t)) => (d, Some(t.trim())),
                None => (member, None),
            };
            if target.is_none_or(|t| t.eq_ignore_ascii_case(SURROGATE_TOKEN)) {
                mine.push(directive.trim().to_owned());
            }
        }
    }
    let parsed = Directives::parse(std::iter::once(mine.join(", ").as_str()));
    (parsed.has("max-age") || parsed.has("no-store")).then_some(parsed)
}

/// The directives that decide storing and freshness in this cache: `Surrogate-Control`
/// addressed to us when it decides storage, else `Cache-Control`.
pub(crate) fn storage_directives(headers: &HeaderList) -> Directives {
    surrogate_control(headers).unwrap_or_else(|| Headers(headers).cache_control())
}

/// One `Cache-Control` directive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Directive {
    /// Lowercased name.
    pub(crate) name: String,
    /// Argument with quotes and escapes removed.
    pub(crate) arg: Option<String>,
    /// The element broke the grammar (`max-age =5`, `max-age= 5`, an unterminated quote,
    /// junk after the argument). The directive still counts as present, but its argument is
    /// unusable: the most restrictive reading.
    pub(crate) malformed: bool,
}

/// Parsed `Cache-Control` (RFC 9111 §5.2).
///
/// Duplicates and invalid values (§4.2.1): for directives with a delta-seconds argument the
/// **first occurrence wins**, which is the first of the two options §4.2.1 offers ("either
/// the first occurrence should be used or the response should be considered stale") and the
/// one the http-cache-tests suite probes for. An invalid argument (`a3600`, `3600.0`, `-1`,
/// `'3600'`, missing) counts as `0`, because §4.2.1 encourages treating invalid freshness
/// information as stale. Boolean directives count wherever they appear: when directives
/// conflict (`max-age=60, no-cache`) the most restrictive one is honoured (§4.2.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Directives(pub Vec<Directive>);

/// Reach of a directive that may carry a field-name list (`no-cache`, `private`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The directive is absent.
    Absent,
    /// It applies to the whole response (no list, an empty list, or a malformed one).
    Whole,
    /// It applies only to these header fields (lowercase).
    Fields(Vec<String>),
}

impl Directives {
    /// Parses every line of a `Cache-Control` field.
    pub(crate) fn parse<'a>(lines: impl IntoIterator<Item = &'a str>) -> Self {
        let mut out = Vec::new();
        for line in lines {
            parse_directive_line(line, &mut out);
        }
        Directives(out)
    }

    /// Whether the directive is present anywhere.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.0.iter().any(|d| d.name == name)
    }

    /// The first occurrence of a directive.
    pub(crate) fn first(&self, name: &str) -> Option<&Directive> {
        self.0.iter().find(|d| d.name == name)
    }

    /// Delta-seconds argument of the first occurrence: `None` when absent, `Some(0)` when
    /// invalid, capped at [`DELTA_SECONDS_MAX`].
    pub(crate) fn seconds(&self, name: &str) -> Option<u64> {
        self.first(name).map(|d| {
            if d.malformed {
                0
            } else {
                d.arg.as_deref().and_then(parse_delta).unwrap_or(0)
            }
        })
    }

    /// Reach of `no-cache` / `private`: any unqualified occurrence makes it [`Scope::Whole`],
    /// otherwise the union of the listed fields.
    pub(crate) fn scope(&self, name: &str) -> Scope {
        let mut fields: Vec<String> = Vec::new();
        let mut seen = false;
        for d in self.0.iter().filter(|d| d.name == name) {
            seen = true;
            let listed: Vec<String> = match (&d.arg, d.malformed) {
                (Some(arg), false) => arg
                    .split(',')
                    .map(|f| f.trim().to_ascii_lowercase())
                    .filter(|f| !f.is_empty())
                    .collect(),
                _ => Vec::new(),
            };
            if listed.is_empty() {
                return Scope::Whole;
            }
            fields.extend(listed);
        }
        if seen {
            Scope::Fields(fields)
        } else {
            Scope::Absent
        }
    }
}

pub(crate) fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Parses one field line into `out`. Works on a char vector with `get` so no index can
/// panic; every branch advances, so it always terminates.
fn parse_directive_line(line: &str, out: &mut Vec<Directive>) {
    let chars: Vec<char> = line.chars().collect();
    let at = |i: usize| chars.get(i).copied();
    let collect = |from: usize, to: usize| -> String {
        chars
            .iter()
            .skip(from)
            .take(to.saturating_sub(from))
            .collect()
    };
    let mut i = 0;
    loop {
        while matches!(at(i), Some(c) if c == ',' || is_ows(c)) {
            i += 1;
        }
        if i >= chars.len() {
            break;
        }
        let start = i;
        while matches!(at(i), Some(c) if c != ',' && c != '=' && c != '"' && !is_ows(c)) {
            i += 1;
        }
        let name = collect(start, i);
        let mut space_before_eq = false;
        while matches!(at(i), Some(c) if is_ows(c)) {
            i += 1;
            space_before_eq = true;
        }
        let mut arg = None;
        let mut malformed = false;
        match at(i) {
            None | Some(',') => {}
            Some('=') => {
                i += 1;
                // The grammar has no whitespace around `=` (`token [ "=" ... ]`).
                malformed |= space_before_eq || matches!(at(i), Some(c) if is_ows(c));
                while matches!(at(i), Some(c) if is_ows(c)) {
                    i += 1;
                }
                if at(i) == Some('"') {
                    i += 1;
                    let mut value = String::new();
                    let mut closed = false;
                    while let Some(c) = at(i) {
                        i += 1;
                        match c {
                            '\\' => {
                                if let Some(escaped) = at(i) {
                                    value.push(escaped);
                                    i += 1;
                                }
                            }
                            '"' => {
                                closed = true;
                                break;
                            }
                            c => value.push(c),
                        }
                    }
                    malformed |= !closed;
                    arg = Some(value);
                } else {
                    let from = i;
                    while matches!(at(i), Some(c) if c != ',' && !is_ows(c)) {
                        i += 1;
                    }
                    arg = Some(collect(from, i));
                }
                while matches!(at(i), Some(c) if is_ows(c)) {
                    i += 1;
                }
                if !matches!(at(i), None | Some(',')) {
                    malformed = true;
                    skip_to_comma(&chars, &mut i);
                }
            }
            Some(_) => {
                // `foo bar`, `foo"x"`, or an element that starts with a quote.
                malformed = true;
                skip_to_comma(&chars, &mut i);
            }
        }
        if !name.is_empty() {
            out.push(Directive {
                name: name.to_ascii_lowercase(),
                arg,
                malformed,
            });
        }
    }
}

/// Advances to the next comma outside a quoted string.
fn skip_to_comma(chars: &[char], i: &mut usize) {
    let mut quoted = false;
    while let Some(&c) = chars.get(*i) {
        if quoted {
            match c {
                '\\' => *i += 1,
                '"' => quoted = false,
                _ => {}
            }
        } else if c == '"' {
            quoted = true;
        } else if c == ',' {
            return;
        }
        *i += 1;
    }
}

/// Delta-seconds (RFC 9111 §1.2.2): digits only; too large becomes [`DELTA_SECONDS_MAX`].
fn parse_delta(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v = s.bytes().fold(0u64, |acc, b| {
        acc.saturating_mul(10)
            .saturating_add(u64::from(b.saturating_sub(b'0')))
    });
    Some(v.min(DELTA_SECONDS_MAX))
}

/// The `Age` of a response (§5.1): the first member of the first line; an invalid value is
/// ignored (`None`).
pub(crate) fn parse_age(headers: &HeaderList) -> Option<u64> {
    let first = Headers(headers).get("age")?;
    parse_delta(first.split(',').next().unwrap_or("").trim())
}

#[cfg(test)]
#[allow(clippy::type_complexity)]
mod tests {
    use super::*;
    use crate::httpcache::status::*;
    use crate::httpcache::store::*;
    use crate::httpcache::testing::*;

    #[test]
    fn delta_seconds_directives_parse_per_rfc_9111_and_invalid_means_zero() {
        let cases: &[(&[&str], Option<u64>)] = &[
            (&["max-age=60"], Some(60)),
            (&["MaX-AgE=60"], Some(60)),
            (&["max-age=\"60\""], Some(60)),
            (&["max-age=003600"], Some(3600)),
            (&["foobar, max-age=3600"], Some(3600)),
            (&["max-age='60'"], Some(0)),
            (&["max-age =60"], Some(0)),
            (&["max-age= 60"], Some(0)),
            (&["max-age=3600.0"], Some(0)),
            (&["max-age=a100"], Some(0)),
            (&["max-age=100a"], Some(0)),
            (&["max-age=-100"], Some(0)),
            (&["max-age"], Some(0)),
            (&["max-age=\"60"], Some(0)),
            (&["max-age=60 junk"], Some(0)),
            (&["max-age=2147483648"], Some(DELTA_SECONDS_MAX)),
            (
                &["max-age=99999999999999999999999"],
                Some(DELTA_SECONDS_MAX),
            ),
            (&["extension=\"max-age=100\", max-age=1"], Some(1)),
            (&["max-age=1, extension=\"max-age=100\""], Some(1)),
            (&["extension=\"max-age=100\", max-age=\"1\""], Some(1)),
            // Duplicates: the first occurrence wins, on one line or across lines.
            (&["max-age=1800, max-age=1"], Some(1800)),
            (&["max-age=1, max-age=1800"], Some(1)),
            (&["max-age=1800", "max-age=1"], Some(1800)),
            (&["max-age=abc, max-age=1800"], Some(0)),
            (&["no-cache"], None),
            (&[], None),
            (&[",,, ,"], None),
        ];
        for (lines, want) in cases {
            let d = Directives::parse(lines.iter().copied());
            assert_eq!(d.seconds("max-age"), *want, "{lines:?}");
        }
    }

    #[test]
    fn boolean_directives_count_anywhere_and_case_insensitively() {
        let d = Directives::parse(["Public, MAX-AGE=5", "No-StOrE"]);
        assert!(d.has("public") && d.has("no-store") && d.has("max-age"));
        assert!(!d.has("private"));
        // An element with a malformed argument is still present (most restrictive reading).
        assert!(Directives::parse(["no-store =1"]).has("no-store"));
    }

    #[test]
    fn quoted_arguments_keep_commas_and_unescape() {
        let d = Directives::parse([r#"foo="a\"b,c", no-cache="Set-Cookie, X-Foo", private"#]);
        assert_eq!(
            d.first("foo").and_then(|d| d.arg.as_deref()),
            Some("a\"b,c")
        );
        assert_eq!(
            d.scope("no-cache"),
            Scope::Fields(vec!["set-cookie".into(), "x-foo".into()])
        );
        assert_eq!(d.scope("private"), Scope::Whole);
        assert_eq!(d.scope("must-revalidate"), Scope::Absent);
    }

    #[test]
    fn field_list_scope_is_whole_when_any_occurrence_is_unqualified_empty_or_malformed() {
        let cases: &[(&[&str], Scope)] = &[
            (&["no-cache=\"a\""], Scope::Fields(vec!["a".into()])),
            (
                &["no-cache=\"a\"", "no-cache=b"],
                Scope::Fields(vec!["a".into(), "b".into()]),
            ),
            (&["no-cache=\"a\", no-cache"], Scope::Whole),
            (&["no-cache=\"\""], Scope::Whole),
            (&["no-cache=\"a"], Scope::Whole),
            (&["no-cache =\"a\""], Scope::Whole),
            (&["max-age=1"], Scope::Absent),
        ];
        for (lines, want) in cases {
            assert_eq!(
                Directives::parse(lines.iter().copied()).scope("no-cache"),
                *want,
                "{lines:?}"
            );
        }
    }

    #[test]
    fn age_uses_the_first_member_and_ignores_invalid_values() {
        let cases: &[(&[(&str, &str)], Option<u64>)] = &[
            (&[("age", "15")], Some(15)),
            (&[("age", " 15 ")], Some(15)),
            (&[("age", "abc")], None),
            (&[("age", "-7200")], None),
            (&[("age", "7200.0")], None),
            (&[("age", "7200,0")], Some(7200)),
            (&[("age", "0,7200")], Some(0)),
            (&[("age", "7200"), ("age", "0")], Some(7200)),
            (&[("age", "99999999999")], Some(DELTA_SECONDS_MAX)),
            (&[], None),
        ];
        for (h, want) in cases {
            assert_eq!(parse_age(&hl(h)), *want, "{h:?}");
        }
    }

    #[test]
    fn surrogate_control_addressed_to_us_overrides_cache_control() {
        let plan = |res: &[(&str, &str)]| {
            let mut res = hl(res);
            res.push(("date".into(), date(T0)));
            storable(&get(), &[], 200, &res, T0, T0)
        };
        // A surrogate max-age wins over Cache-Control, Expires and even no-store there.
        let p = plan(&[
            ("cache-control", "max-age=3600"),
            ("surrogate-control", "max-age=1"),
        ])
        .unwrap();
        assert_eq!(p.freshness_lifetime, 1);
        let p = plan(&[
            ("cache-control", "no-store"),
            ("surrogate-control", "max-age=10000;edgeflags"),
        ])
        .unwrap();
        assert_eq!(p.freshness_lifetime, 10000);
        assert_eq!(
            plan(&[
                ("surrogate-control", "max-age=0"),
                ("expires", &date(T0 + 10_000 * SEC)),
            ])
            .map(|p| p.freshness_lifetime),
            Err(Bypass::NoFreshness)
        );
        assert_eq!(
            plan(&[
                ("cache-control", "max-age=10000"),
                ("surrogate-control", "no-store"),
            ]),
            Err(Bypass::NoStore)
        );
        // Directives for another surrogate, or none that decide storage: Cache-Control rules.
        assert_eq!(
            plan(&[("surrogate-control", "max-age=3600;not-for-you")]),
            Err(Bypass::NoFreshness)
        );
        let p = plan(&[
            ("cache-control", "max-age=10000"),
            ("surrogate-control", "foo"),
        ])
        .unwrap();
        assert_eq!(p.freshness_lifetime, 10000);
        let p = plan(&[("surrogate-control", "FOO, MaX-aGe=3600;EdgeFlags")]).unwrap();
        assert_eq!(p.freshness_lifetime, 3600);
        // Stored entries keep it, so reuse follows it too (and an old Age makes it stale).
        let entry = stored_for(
            &[],
            200,
            &[
                ("cache-control", "max-age=3600"),
                ("surrogate-control", "max-age=1"),
            ],
        );
        assert!(reval(Fwd::Stale)(&at(&entry, &get(), &[], T0 + 5 * SEC)));
        let aged = plan(&[("surrogate-control", "max-age=3600"), ("age", "7200")]);
        assert!(aged.is_err_and(|b| b == Bypass::NoFreshness));
    }

    #[test]
    fn the_edge_announces_itself_as_a_surrogate_after_any_in_front() {
        assert_eq!(surrogate_capability(None), "edgeflags=\"Surrogate/1.0\"");
        assert_eq!(
            surrogate_capability(Some(" ")),
            "edgeflags=\"Surrogate/1.0\""
        );
        assert_eq!(
            surrogate_capability(Some("abc=\"Surrogate/1.0\"")),
            "abc=\"Surrogate/1.0\", edgeflags=\"Surrogate/1.0\""
        );
    }
}
