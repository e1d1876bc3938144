//! Runtime values of the targeting interpreter and JsonLogic's JavaScript coercions.
//!
//! Values borrow from the compiled flag set and from the caller's context wherever they
//! can (`Str`, `Json`), so evaluating a typical rule allocates nothing. The coercion
//! helpers follow json-logic-js, i.e. JavaScript: truthiness, `==`, relational
//! comparison, `String(x)`, `Number(x)` and `parseFloat(x)`.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt::Write;

use serde_json::Value;

use crate::keyindex::get_field;

/// Bound on recursion when stringifying nested arrays (`cat` of an array joins its
/// elements, which may be arrays again). Deeper parts are rendered as empty strings.
const MAX_STRINGIFY_DEPTH: usize = 32;

/// Bytes the byte budget counts per array element: the size of a [`Val`] on wasm32, so
/// that the edge and the service worker (both wasm32) stop at the same point; native builds
/// count the same.
pub(crate) const ELEMENT_BYTES: u32 = 16;

/// A value produced while evaluating targeting.
#[derive(Debug, Clone)]
pub(crate) enum Val<'a> {
    Null,
    Bool(bool),
    Num(f64),
    Str(&'a str),
    String(String),
    /// A borrowed JSON array or object (never a scalar: see [`Val::from_json`]).
    Json(&'a Value),
    /// An array computed during evaluation (`map`, `filter`, `merge`, `missing`, …).
    Array(Vec<Val<'a>>),
    /// flagd's `$flagd` object, materialised lazily: `{flagKey, timestamp}`.
    Flagd {
        flag_key: &'a str,
        timestamp: u64,
    },
}

impl<'a> Val<'a> {
    pub(crate) fn from_json(v: &'a Value) -> Self {
        match v {
            Value::Null => Val::Null,
            Value::Bool(b) => Val::Bool(*b),
            Value::Number(n) => Val::Num(n.as_f64().unwrap_or(f64::NAN)),
            Value::String(s) => Val::Str(s),
            Value::Array(_) | Value::Object(_) => Val::Json(v),
        }
    }

    pub(crate) fn is_null(&self) -> bool {
        matches!(self, Val::Null)
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Val::Str(s) => Some(s),
            Val::String(s) => Some(s),
            _ => None,
        }
    }

    /// Bytes this value owns, as the byte budget counts them (`interp::MAX_BYTES`): string
    /// bytes, and [`ELEMENT_BYTES`] per element of a computed array, nested arrays included.
    /// Borrowed values (literals, the context) own nothing.
    pub(crate) fn bytes(&self) -> u32 {
        match self {
            Val::String(s) => u32::try_from(s.len()).unwrap_or(u32::MAX),
            Val::Array(items) => items.iter().fold(0, |n: u32, item| {
                n.saturating_add(ELEMENT_BYTES).saturating_add(item.bytes())
            }),
            _ => 0,
        }
    }

    /// Array elements, when this is an array (borrowed JSON or computed).
    pub(crate) fn array_len(&self) -> Option<usize> {
        match self {
            Val::Json(Value::Array(a)) => Some(a.len()),
            Val::Array(a) => Some(a.len()),
            _ => None,
        }
    }

    /// The `i`-th element of an array value.
    pub(crate) fn array_get(&self, i: usize) -> Option<Val<'a>> {
        match self {
            Val::Json(Value::Array(a)) => a.get(i).map(Val::from_json),
            Val::Array(a) => a.get(i).cloned(),
            _ => None,
        }
    }

    /// Property access `data[seg]` as JavaScript does it for JSON data: object keys,
    /// array indexes written in canonical decimal. `None` is JavaScript's `undefined`.
    pub(crate) fn get(&self, seg: &str) -> Option<Val<'a>> {
        match self {
            Val::Json(Value::Object(map)) => get_field(map, seg).map(Val::from_json),
            Val::Json(Value::Array(_)) | Val::Array(_) => {
                canonical_index(seg).and_then(|i| self.array_get(i))
            }
            Val::Flagd {
                flag_key,
                timestamp,
            } => match seg {
                "flagKey" => Some(Val::Str(flag_key)),
                "timestamp" => Some(Val::Num(*timestamp as f64)),
                _ => None,
            },
            _ => None,
        }
    }

    /// JsonLogic truthiness: JavaScript's, except that an empty array is false (as in
    /// json-logic-js) and so is an empty object (as in flagd's Go JsonLogic and in
    /// flagd-core; json-logic-js would say true).
    pub(crate) fn truthy(&self) -> bool {
        match self {
            Val::Null => false,
            Val::Bool(b) => *b,
            Val::Num(n) => *n != 0.0 && !n.is_nan(),
            Val::Str(s) => !s.is_empty(),
            Val::String(s) => !s.is_empty(),
            Val::Json(Value::Array(a)) => !a.is_empty(),
            Val::Json(Value::Object(m)) => !m.is_empty(),
            Val::Array(a) => !a.is_empty(),
            Val::Json(_) | Val::Flagd { .. } => true,
        }
    }

    /// JavaScript `String(x)`.
    pub(crate) fn to_js_string(&self) -> Cow<'a, str> {
        match self {
            Val::Str(s) => Cow::Borrowed(s),
            Val::String(s) => Cow::Owned(s.clone()),
            other => {
                let mut out = String::new();
                other.write_js_string(&mut out, 0);
                Cow::Owned(out)
            }
        }
    }

    /// Appends JavaScript `String(x)` to `out`.
    pub(crate) fn write_js_string(&self, out: &mut String, depth: usize) {
        match self {
            Val::Null => out.push_str("null"),
            Val::Bool(true) => out.push_str("true"),
            Val::Bool(false) => out.push_str("false"),
            Val::Num(n) => write_js_number(*n, out),
            Val::Str(s) => out.push_str(s),
            Val::String(s) => out.push_str(s),
            Val::Json(Value::Array(items)) => {
                if depth < MAX_STRINGIFY_DEPTH {
                    for (i, item) in items.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        // Array.prototype.join renders null and undefined as "".
                        if !item.is_null() {
                            Val::from_json(item).write_js_string(out, depth + 1);
                        }
                    }
                }
            }
            Val::Array(items) => {
                if depth < MAX_STRINGIFY_DEPTH {
                    for (i, item) in items.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        if !item.is_null() {
                            item.write_js_string(out, depth + 1);
                        }
                    }
                }
            }
            Val::Json(_) | Val::Flagd { .. } => out.push_str("[object Object]"),
        }
    }

    /// JavaScript `Number(x)` (the coercion behind `-`, `/`, `%`, `<` and `==`).
    pub(crate) fn to_number(&self) -> f64 {
        match self {
            Val::Null => 0.0,
            Val::Bool(b) => f64::from(u8::from(*b)),
            Val::Num(n) => *n,
            Val::Str(s) => string_to_number(s),
            Val::String(s) => string_to_number(s),
            Val::Json(Value::Array(_)) | Val::Array(_) => string_to_number(&self.to_js_string()),
            Val::Json(_) | Val::Flagd { .. } => f64::NAN,
        }
    }

    /// JavaScript `parseFloat(x)` (the coercion behind json-logic-js `+` and `*`).
    pub(crate) fn parse_float(&self) -> f64 {
        match self {
            Val::Num(n) => *n,
            Val::Str(s) => parse_float_prefix(s),
            Val::String(s) => parse_float_prefix(s),
            other => parse_float_prefix(&other.to_js_string()),
        }
    }

    /// The value as JSON (NaN and infinities become null, as in `JSON.stringify`).
    #[cfg(test)]
    pub(crate) fn to_json(&self) -> Value {
        match self {
            Val::Null => Value::Null,
            Val::Bool(b) => Value::Bool(*b),
            Val::Num(n) => {
                if n.fract() == 0.0 && n.abs() < 9.0e15 {
                    Value::from(*n as i64)
                } else {
                    serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number)
                }
            }
            Val::Str(s) => Value::String((*s).to_owned()),
            Val::String(s) => Value::String(s.clone()),
            Val::Json(v) => (*v).clone(),
            Val::Array(items) => Value::Array(items.iter().map(Val::to_json).collect()),
            Val::Flagd {
                flag_key,
                timestamp,
            } => serde_json::json!({"flagKey": flag_key, "timestamp": timestamp}),
        }
    }

    fn is_object_like(&self) -> bool {
        matches!(self, Val::Json(_) | Val::Array(_) | Val::Flagd { .. })
    }
}

/// Array index as JavaScript accepts it from a property name: canonical decimal only.
fn canonical_index(seg: &str) -> Option<usize> {
    if seg.is_empty() || (seg.len() > 1 && seg.starts_with('0')) {
        return None;
    }
    if !seg.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    seg.parse().ok()
}

/// JavaScript's Number-to-String (ECMAScript Number::toString): the shortest digits
/// that round-trip, in positional notation for decimal exponents from -6 to 20 and in
/// exponent notation (`1e-7`, `1.5e+21`) outside it.
pub(crate) fn write_js_number(n: f64, out: &mut String) {
    if n.is_nan() {
        out.push_str("NaN");
        return;
    }
    if n.is_infinite() {
        out.push_str(if n > 0.0 { "Infinity" } else { "-Infinity" });
        return;
    }
    if n == 0.0 {
        out.push('0');
        return;
    }
    if n < 0.0 {
        out.push('-');
    }
    // The shortest round-trip digits (the same digits as Rust's `{:e}`), from zmij — the
    // formatter serde_json already uses, so no second float formatter (core's Grisu/Dragon,
    // ~20 KB of wasm) is linked. Its text is positional ("123.45", "0.001") or exponential
    // ("1e+16", "1.5e-7"); read as digits and a decimal point position, so the layout
    // below never depends on which.
    let (digits, point) = shortest_digits(n.abs());
    let digits = digits.as_str();
    let k = digits.len() as i64;
    // The value is 0.digits × 10^point.
    if k <= point && point <= 21 {
        out.push_str(digits);
        out.extend(std::iter::repeat_n('0', (point - k) as usize));
    } else if 0 < point && point <= 21 {
        let (int, frac) = digits.split_at(point as usize);
        out.push_str(int);
        out.push('.');
        out.push_str(frac);
    } else if -6 < point && point <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-point) as usize));
        out.push_str(digits);
    } else {
        let (first, rest) = digits.split_at(1);
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        let e = point - 1;
        let _ = write!(out, "e{}{}", if e < 0 { '-' } else { '+' }, e.abs());
    }
}

/// The shortest round-trip digits of a finite, positive float (no leading or trailing zeros)
/// and `point`, the value being `0.digits × 10^point`. Where two shortest strings are equally
/// close to the value (it lies exactly halfway), the even one — as ECMAScript's
/// Number::toString (and Go's `strconv`, flagd's) choose; zmij does the same.
fn shortest_digits(n: f64) -> (String, i64) {
    let mut buf = zmij::Buffer::new();
    read_digits(buf.format_finite(n))
}

/// Reads a finite, positive float's text (`123.45`, `1e+16`, `1.5e-7`, `0.001`) as its
/// significant digits (no leading or trailing zeros) and `point`, the value being
/// `0.digits × 10^point`.
fn read_digits(text: &str) -> (String, i64) {
    let (mantissa, exp) = text.split_once(['e', 'E']).unwrap_or((text, "0"));
    let exp = exp.parse::<i64>().unwrap_or(0);
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut point = int.len() as i64 + exp;
    let mut digits = String::with_capacity(int.len() + frac.len());
    for c in int.chars().chain(frac.chars()) {
        if digits.is_empty() && c == '0' {
            point -= 1;
        } else {
            digits.push(c);
        }
    }
    digits.truncate(digits.trim_end_matches('0').len());
    (digits, point)
}

pub(crate) fn js_number_string(n: f64) -> String {
    let mut s = String::new();
    write_js_number(n, &mut s);
    s
}

/// JavaScript `Number(string)`: whitespace-trimmed decimal (or 0x/0o/0b integer,
/// or Infinity); the empty string is 0; anything else is NaN.
pub(crate) fn string_to_number(s: &str) -> f64 {
    let t = s.trim();
    if t.is_empty() {
        return 0.0;
    }
    // Radix prefixes take no sign in JavaScript ("-0x10" is NaN), so test them first.
    for (prefix, radix) in [
        ("0x", 16),
        ("0X", 16),
        ("0o", 8),
        ("0O", 8),
        ("0b", 2),
        ("0B", 2),
    ] {
        if let Some(digits) = t.strip_prefix(prefix) {
            if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
                return f64::NAN;
            }
            return u64::from_str_radix(digits, radix).map_or(f64::NAN, |v| v as f64);
        }
    }
    let (sign, body) = match t.as_bytes().first() {
        Some(b'-') => (-1.0, t.get(1..).unwrap_or("")),
        Some(b'+') => (1.0, t.get(1..).unwrap_or("")),
        _ => (1.0, t),
    };
    if body == "Infinity" {
        return sign * f64::INFINITY;
    }
    if !is_decimal_literal(body) {
        return f64::NAN;
    }
    parse_unsigned(body).map_or(f64::NAN, |v| sign * v)
}

/// Decimal text (`[+-] digits [. digits] [e [+-] digits]`) as `str::parse::<f64>` reads it
/// (correctly rounded); `None` for anything else (including `inf` and `NaN`).
pub fn parse_decimal(text: &str) -> Option<f64> {
    let (negative, body) = match text.as_bytes().first() {
        Some(b'-') => (true, text.get(1..).unwrap_or("")),
        Some(b'+') => (false, text.get(1..).unwrap_or("")),
        _ => (false, text),
    };
    parse_unsigned(body).map(|v| if negative { -v } else { v })
}

/// An unsigned decimal literal, correctly rounded. With the feature `compact-float-parse`
/// (the service worker) through [`super::decimal`], which leaves the standard library's
/// 10 KB table of powers of five out of the wasm; else the standard parser (faster on long
/// inputs; the edge). Both give the same results (see `decimal`'s tests).
fn parse_unsigned(body: &str) -> Option<f64> {
    if !is_decimal_literal(body) {
        return None;
    }
    #[cfg(feature = "compact-float-parse")]
    {
        super::decimal::parse(body)
    }
    #[cfg(not(feature = "compact-float-parse"))]
    {
        body.parse::<f64>().ok()
    }
}

/// `digits [. digits] [e [+-] digits]` with at least one digit before the exponent.
fn is_decimal_literal(s: &str) -> bool {
    decimal_prefix_len(s) == s.len() && !s.is_empty()
}

/// Length of the longest prefix of `s` that is a decimal literal (0 when none).
fn decimal_prefix_len(s: &str) -> usize {
    let b = s.as_bytes();
    let mut i = 0;
    let mut digits = 0;
    while b.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
        digits += 1;
    }
    if b.get(i) == Some(&b'.') {
        let mut j = i + 1;
        let mut frac = 0;
        while b.get(j).is_some_and(u8::is_ascii_digit) {
            j += 1;
            frac += 1;
        }
        if digits + frac > 0 {
            i = j;
            digits += frac;
        }
    }
    if digits == 0 {
        return 0;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(b.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let start = j;
        while b.get(j).is_some_and(u8::is_ascii_digit) {
            j += 1;
        }
        if j > start {
            i = j;
        }
    }
    i
}

/// JavaScript `parseFloat(string)`: the longest decimal prefix after leading whitespace.
fn parse_float_prefix(s: &str) -> f64 {
    let t = s.trim_start();
    let (sign, body) = match t.as_bytes().first() {
        Some(b'-') => (-1.0, t.get(1..).unwrap_or("")),
        Some(b'+') => (1.0, t.get(1..).unwrap_or("")),
        _ => (1.0, t),
    };
    if body.starts_with("Infinity") {
        return sign * f64::INFINITY;
    }
    let n = decimal_prefix_len(body);
    if n == 0 {
        return f64::NAN;
    }
    body.get(..n)
        .and_then(parse_unsigned)
        .map_or(f64::NAN, |v| sign * v)
}

/// JavaScript `ToPrimitive` for comparisons: arrays and objects become strings.
fn to_primitive<'a>(v: &Val<'a>) -> Val<'a> {
    if v.is_object_like() {
        match v.to_js_string() {
            Cow::Borrowed(s) => Val::Str(s),
            Cow::Owned(s) => Val::String(s),
        }
    } else {
        v.clone()
    }
}

/// JavaScript loose equality `a == b` (json-logic-js `==`).
pub(crate) fn loose_eq(a: &Val<'_>, b: &Val<'_>) -> bool {
    use Val::*;
    match (a, b) {
        (Null, Null) => true,
        (Null, _) | (_, Null) => false,
        (Num(x), Num(y)) => x == y,
        (Bool(x), Bool(y)) => x == y,
        (Bool(x), other) => loose_eq(&Num(f64::from(u8::from(*x))), other),
        (other, Bool(y)) => loose_eq(other, &Num(f64::from(u8::from(*y)))),
        _ if a.is_object_like() && b.is_object_like() => same_object(a, b),
        _ if a.is_object_like() => loose_eq(&to_primitive(a), b),
        _ if b.is_object_like() => loose_eq(a, &to_primitive(b)),
        _ => match (a.as_str(), b.as_str()) {
            (Some(x), Some(y)) => x == y,
            // One string, one number: compare numerically.
            _ => a.to_number() == b.to_number(),
        },
    }
}

/// JavaScript strict equality `a === b`.
pub(crate) fn strict_eq(a: &Val<'_>, b: &Val<'_>) -> bool {
    use Val::*;
    match (a, b) {
        (Null, Null) => true,
        (Bool(x), Bool(y)) => x == y,
        (Num(x), Num(y)) => x == y,
        _ if a.is_object_like() && b.is_object_like() => same_object(a, b),
        _ => match (a.as_str(), b.as_str()) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
    }
}

/// Object identity: two reads of the same context value are the same object, as in
/// JavaScript; computed arrays are always fresh objects.
fn same_object(a: &Val<'_>, b: &Val<'_>) -> bool {
    match (a, b) {
        (Val::Json(x), Val::Json(y)) => std::ptr::eq(*x, *y),
        _ => false,
    }
}

/// JavaScript's abstract relational comparison: strings compare as strings, anything
/// else numerically; `None` when a NaN makes every comparison false.
pub(crate) fn js_compare(a: &Val<'_>, b: &Val<'_>) -> Option<Ordering> {
    let pa = to_primitive(a);
    let pb = to_primitive(b);
    if let (Some(x), Some(y)) = (pa.as_str(), pb.as_str()) {
        return Some(x.cmp(y));
    }
    let x = pa.to_number();
    let y = pb.to_number();
    x.partial_cmp(&y)
}

pub(crate) fn js_lt(a: &Val<'_>, b: &Val<'_>) -> bool {
    js_compare(a, b) == Some(Ordering::Less)
}

pub(crate) fn js_le(a: &Val<'_>, b: &Val<'_>) -> bool {
    matches!(js_compare(a, b), Some(Ordering::Less | Ordering::Equal))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn s(x: &str) -> Val<'_> {
        Val::Str(x)
    }

    #[test]
    fn truthiness_follows_json_logic_js() {
        let arr = json!([]);
        let arr1 = json!([0]);
        let obj = json!({});
        let cases: [(Val<'_>, bool); 12] = [
            (Val::Null, false),
            (Val::Bool(false), false),
            (Val::Bool(true), true),
            (Val::Num(0.0), false),
            (Val::Num(f64::NAN), false),
            (Val::Num(-1.0), true),
            (s(""), false),
            (s("0"), true),
            (Val::Json(&arr), false),
            (Val::Json(&arr1), true),
            (Val::Json(&obj), false),
            (Val::Array(vec![]), false),
        ];
        for (v, want) in cases {
            assert_eq!(v.truthy(), want, "{v:?}");
        }
    }

    #[test]
    fn loose_equality_follows_javascript() {
        let one = json!([1]);
        let cases: [(Val<'_>, Val<'_>, bool); 14] = [
            (Val::Num(1.0), s("1"), true),
            (Val::Num(1.0), s("1.0"), true),
            (Val::Num(0.0), s(""), true),
            (Val::Bool(true), Val::Num(1.0), true),
            (Val::Bool(true), s("1"), true),
            (Val::Bool(false), s("0"), true),
            (Val::Null, Val::Num(0.0), false),
            (Val::Null, Val::Bool(false), false),
            (Val::Null, Val::Null, true),
            (s("a"), s("a"), true),
            (s("a"), s("b"), false),
            (Val::Json(&one), Val::Num(1.0), true),
            (Val::Json(&one), s("1"), true),
            (Val::Num(f64::NAN), Val::Num(f64::NAN), false),
        ];
        for (a, b, want) in cases {
            assert_eq!(loose_eq(&a, &b), want, "{a:?} == {b:?}");
            assert_eq!(loose_eq(&b, &a), want, "{b:?} == {a:?}");
        }
    }

    #[test]
    fn strict_equality_never_coerces() {
        assert!(!strict_eq(&Val::Num(1.0), &s("1")));
        assert!(strict_eq(&Val::Num(1.0), &Val::Num(1.0)));
        assert!(strict_eq(&s("x"), &Val::String("x".into())));
        assert!(!strict_eq(&Val::Bool(true), &Val::Num(1.0)));
    }

    #[test]
    fn relational_comparison_follows_javascript() {
        assert!(js_lt(&s("a"), &s("b")));
        assert!(js_lt(&s("10"), &s("9")), "two strings compare as strings");
        assert!(
            !js_lt(&s("10"), &Val::Num(9.0)),
            "a number makes it numeric"
        );
        assert!(js_lt(&Val::Null, &Val::Num(1.0)), "null is 0");
        assert!(!js_lt(&s("abc"), &Val::Num(1.0)), "NaN compares false");
        assert!(!js_le(&s("abc"), &Val::Num(1.0)));
        assert!(js_le(&Val::Num(1.0), &Val::Num(1.0)));
    }

    #[test]
    fn number_coercions_match_javascript() {
        let cases = [
            ("", 0.0, f64::NAN),
            ("  42  ", 42.0, 42.0),
            ("3px", f64::NAN, 3.0),
            ("-1.5e2", -150.0, -150.0),
            ("0x10", 16.0, 0.0),
            (".5", 0.5, 0.5),
            ("5.", 5.0, 5.0),
            ("Infinity", f64::INFINITY, f64::INFINITY),
            ("abc", f64::NAN, f64::NAN),
            ("1e", f64::NAN, 1.0),
        ];
        for (text, number, parse_float) in cases {
            let n = string_to_number(text);
            let p = parse_float_prefix(text);
            assert!(
                n == number || (n.is_nan() && number.is_nan()),
                "Number({text:?}) = {n}"
            );
            assert!(
                p == parse_float || (p.is_nan() && parse_float.is_nan()),
                "parseFloat({text:?}) = {p}"
            );
        }
    }

    #[test]
    fn numbers_print_as_javascript_prints_them() {
        let cases = [
            (1.0, "1"),
            (-1.0, "-1"),
            (1.5, "1.5"),
            (-0.0, "0"),
            (0.1, "0.1"),
            (100.0, "100"),
            (123_456_789.5, "123456789.5"),
            (1e20, "100000000000000000000"),
            (1e21, "1e+21"),
            (1.5e21, "1.5e+21"),
            (1e-6, "0.000001"),
            (1e-7, "1e-7"),
            (-2.5e-8, "-2.5e-8"),
            (0.000_123, "0.000123"),
            (f64::MAX, "1.7976931348623157e+308"),
            // 2121535200372724.25, exactly halfway between …24.2 and …24.3: the even one, as V8
            // prints it.
            (f64::from_bits(0x431e_2619_9ffc_9fd1), "2121535200372724.2"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Infinity"),
        ];
        for (n, want) in cases {
            assert_eq!(js_number_string(n), want, "{n:e}");
        }
    }

    /// Whether the float `n` equals `mid × 10^exp10` exactly (an independent tie detector).
    fn exactly_halfway(n: f64, mid: u128, exp10: i64) -> bool {
        let bits = n.to_bits();
        let biased = ((bits >> 52) & 0x7ff) as i64;
        let fraction = bits & ((1 << 52) - 1);
        let (m, exp2) = if biased == 0 {
            (fraction, -1074)
        } else {
            (fraction | (1 << 52), biased - 1075)
        };
        // Every real tie has 0 < -exp2 < 60 and 0 < -exp10 < 19 (mid < 10^20, m < 2^53), so
        // both products below stay under 2^128.
        if !(-60..0).contains(&exp2) || !(-19..0).contains(&exp10) {
            return false;
        }
        let (k, j) = ((-exp2) as u32, (-exp10) as u32);
        mid < 100_000_000_000_000_000_000 && mid << k == u128::from(m) * 10u128.pow(j)
    }

    /// The digits and decimal point read from zmij's text are those of Rust's `{:e}`, except
    /// at exact ties between two shortest strings, where `{:e}` takes the upper one and
    /// ECMAScript (and zmij) the even one — over random bit patterns and the awkward ranges
    /// (subnormals, powers of ten, integers around 2^53, the positional/exponent boundaries,
    /// and 220,000 constructed ties).
    #[test]
    fn shortest_digits_match_rusts_exponent_formatting_but_ties_go_to_even() {
        fn reference(n: f64) -> (String, i64) {
            let sci = format!("{n:e}");
            let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
            let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
            let point = exp.parse::<i64>().unwrap_or(0) + 1;
            let len = digits.len() as i64;
            if let Ok(up) = digits.parse::<u64>() {
                if up % 2 == 1 && exactly_halfway(n, u128::from(up - 1) * 10 + 5, point - len - 1) {
                    let down = (up - 1).to_string();
                    return (down.trim_end_matches('0').to_owned(), point);
                }
            }
            (digits, point)
        }
        let mut values = vec![
            f64::MIN_POSITIVE,
            f64::MAX,
            5e-324,
            f64::from_bits(0x000f_ffff_ffff_ffff), // the largest subnormal
            9007199254740993.0,
            9007199254740992.0,
            123456789012345680000.0,
            1e21,
            1e-7,
            1e-6,
            0.000001234,
            0.3,
            2.0 / 3.0,
        ];
        for e in -325..=308 {
            values.push(10f64.powi(e));
            values.push(1.5 * 10f64.powi(e));
        }
        for i in 1..5000u64 {
            values.push(i as f64);
            values.push((1u64 << 53) as f64 + i as f64 * 2.0);
            values.push(i as f64 / 7.0);
        }
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..300_000 {
            // xorshift64*: random bit patterns, i.e. every exponent and subnormals.
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            values.push(f64::from_bits(x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 1));
        }
        // Values halfway between two shortest strings (m / 2^k, m odd near 2^52..2^53).
        for i in 0..20_000u64 {
            let m = (1u64 << 52) + 2 * (i * 104_729) + 1;
            for k in 1..12 {
                values.push(m as f64 / f64::from(1u32 << k));
            }
        }
        values.push(f64::from_bits(0x431e_2619_9ffc_9fd1)); // 2121535200372724.25, a tie
        for n in values.into_iter().filter(|n| n.is_finite() && *n > 0.0) {
            assert_eq!(shortest_digits(n), reference(n), "{n:e}");
        }
    }

    #[test]
    fn arrays_stringify_like_array_join() {
        let v = json!([1, [2, null], "a", true]);
        assert_eq!(Val::Json(&v).to_js_string(), "1,2,,a,true");
    }
}
