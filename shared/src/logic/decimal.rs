//! Decimal text to `f64`, correctly rounded (round half to even) — the same results as
//! `str::parse::<f64>` for the decimal literals JavaScript's `Number` and `parseFloat` accept
//! (`digits [. digits] [e [+-] digits]`, unsigned).
//!
//! Why a second implementation: the standard library's parser carries a 10 KB table of
//! 128-bit powers of five that does not compress; in the service worker's wasm that table
//! alone is ~10 KB of its gzip size. This one uses a fast path (exact operands, one IEEE
//! operation) and small big-integer arithmetic otherwise — slower on long or extreme
//! inputs, so only builds that ask for it (feature `compact-float-parse`, the PWA) use it;
//! the edge keeps the standard parser. Tests compare the two.

/// Significant digits kept: every halfway point between two floats has at most 767, so the
/// rest only matters as "nonzero" (kept as one extra nonzero digit).
const MAX_DIGITS: usize = 800;

/// Parses a decimal literal (`digits [. digits] [e [+-] digits]`, at least one digit before
/// the exponent, no sign); `None` for anything else.
pub(crate) fn parse(text: &str) -> Option<f64> {
    let b = text.as_bytes();
    let mut i = 0;
    let mut digits: Vec<u8> = Vec::new();
    let mut any_digit = false;
    let mut truncated_nonzero = false;
    // The value is 0.DIGITS × 10^point before the exponent is applied.
    let mut point: i64 = 0;
    let mut push = |d: u8, before_point: bool, digits: &mut Vec<u8>, point: &mut i64| {
        if digits.is_empty() && d == 0 {
            if !before_point {
                *point -= 1;
            }
            return;
        }
        if digits.len() < MAX_DIGITS {
            digits.push(d);
        } else if d != 0 {
            truncated_nonzero = true;
        }
        if before_point {
            *point += 1;
        }
    };
    while let Some(&c) = b.get(i).filter(|c| c.is_ascii_digit()) {
        push(c - b'0', true, &mut digits, &mut point);
        any_digit = true;
        i += 1;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        while let Some(&c) = b.get(i).filter(|c| c.is_ascii_digit()) {
            push(c - b'0', false, &mut digits, &mut point);
            any_digit = true;
            i += 1;
        }
    }
    if !any_digit {
        return None;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        let negative = match b.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let start = i;
        let mut exp: i64 = 0;
        while let Some(&c) = b.get(i).filter(|c| c.is_ascii_digit()) {
            // Saturates far beyond any float's range.
            exp = (exp * 10 + i64::from(c - b'0')).min(1 << 40);
            i += 1;
        }
        if i == start {
            return None;
        }
        point += if negative { -exp } else { exp };
    }
    if i != b.len() {
        return None;
    }
    if truncated_nonzero {
        digits.push(1);
    }
    if digits.is_empty() {
        return Some(0.0);
    }
    // The value lies in [10^(point-1), 10^point).
    if point > 310 {
        return Some(f64::INFINITY);
    }
    if point < -324 {
        return Some(0.0);
    }
    // Now the value is DIGITS × 10^exp10.
    let exp10 = point - digits.len() as i64;
    if digits.len() <= 15 && (-22..=22).contains(&exp10) {
        // Both operands exact: one correctly rounded operation.
        let w = digits.iter().fold(0u64, |a, &d| a * 10 + u64::from(d)) as f64;
        let p = POW10[exp10.unsigned_abs() as usize];
        return Some(if exp10 < 0 { w / p } else { w * p });
    }
    let mut n = Big::from_digits(&digits);
    if exp10 >= 0 {
        for _ in 0..exp10 {
            n.mul_small(10);
        }
        return Some(round(&n, 0, false));
    }
    let k = exp10.unsigned_abs();
    // q = floor(n × 2^s / 10^k) with at least 54 bits, so the rounding bit and everything
    // below it are known (the remainder only as "nonzero").
    let pow10_bits_upper = k * 10 / 3 + 1;
    let s = (54 + pow10_bits_upper).saturating_sub(n.bits());
    n.shl(s);
    let mut sticky = false;
    for _ in 0..k {
        sticky |= n.div_small(5) != 0;
    }
    sticky |= n.shr(k);
    Some(round(&n, s as i64, sticky))
}

/// 10^0 ..= 10^22, all exact in an `f64`.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// The float nearest to (q + f) × 2^-s, where `sticky` says whether the fraction f
/// (0 ≤ f < 1) is nonzero; ties to even.
fn round(q: &Big, s: i64, sticky: bool) -> f64 {
    let len = q.bits() as i64;
    if len == 0 {
        return 0.0;
    }
    // Weight of the top bit, then of the result's last bit (normal or subnormal).
    let top = len - 1 - s;
    if top > 1023 {
        return f64::INFINITY;
    }
    let lsb = (top - 52).max(-1074);
    let drop = lsb + s;
    let mut m: u64;
    if drop <= 0 {
        // Exact (sticky is false here: q has all the bits).
        m = q.low_u64() << drop.unsigned_abs();
    } else {
        let drop = drop as u64;
        m = q.bits_from(drop);
        let half = q.bit(drop - 1);
        let rest = sticky || q.any_below(drop - 1);
        if half && (rest || m & 1 == 1) {
            m += 1;
        }
    }
    let mut lsb = lsb;
    if m >= 1 << 53 {
        m >>= 1;
        lsb += 1;
    }
    if m < 1 << 52 {
        // Subnormal (or zero): the exponent field is 0 and lsb is 2^-1074.
        return f64::from_bits(m);
    }
    let biased = lsb + 1075;
    if biased >= 2047 {
        return f64::INFINITY;
    }
    f64::from_bits(((biased as u64) << 52) | (m & ((1 << 52) - 1)))
}

/// A non-negative big integer, 32-bit limbs, least significant first.
struct Big(Vec<u32>);

impl Big {
    fn from_digits(digits: &[u8]) -> Self {
        let mut n = Big(Vec::new());
        for &d in digits {
            n.mul_small(10);
            n.add_small(u32::from(d));
        }
        n
    }

    fn mul_small(&mut self, f: u32) {
        let mut carry = 0u64;
        for limb in &mut self.0 {
            let v = u64::from(*limb) * u64::from(f) + carry;
            *limb = v as u32;
            carry = v >> 32;
        }
        if carry != 0 {
            self.0.push(carry as u32);
        }
    }

    fn add_small(&mut self, a: u32) {
        let mut carry = a;
        for limb in &mut self.0 {
            let (v, over) = limb.overflowing_add(carry);
            *limb = v;
            if !over {
                return;
            }
            carry = 1;
        }
        if carry != 0 {
            self.0.push(carry);
        }
    }

    /// Divides in place; returns the remainder.
    fn div_small(&mut self, d: u32) -> u32 {
        let mut rem = 0u64;
        for limb in self.0.iter_mut().rev() {
            let v = (rem << 32) | u64::from(*limb);
            *limb = (v / u64::from(d)) as u32;
            rem = v % u64::from(d);
        }
        self.trim();
        rem as u32
    }

    fn shl(&mut self, bits: u64) {
        let (words, bits) = ((bits / 32) as usize, (bits % 32) as u32);
        if bits > 0 {
            let mut carry = 0u32;
            for limb in &mut self.0 {
                let v = (*limb << bits) | carry;
                carry = *limb >> (32 - bits);
                *limb = v;
            }
            if carry != 0 {
                self.0.push(carry);
            }
        }
        if !self.0.is_empty() {
            self.0.splice(0..0, std::iter::repeat_n(0, words));
        }
    }

    /// Shifts right; returns whether a nonzero bit was shifted out.
    fn shr(&mut self, bits: u64) -> bool {
        let lost = self.any_below(bits);
        let words = ((bits / 32) as usize).min(self.0.len());
        self.0.drain(..words);
        let bits = (bits % 32) as u32;
        if bits > 0 {
            let mut carry = 0u32;
            for limb in self.0.iter_mut().rev() {
                let v = (*limb >> bits) | carry;
                carry = *limb << (32 - bits);
                *limb = v;
            }
        }
        self.trim();
        lost
    }

    fn trim(&mut self) {
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
    }

    fn bits(&self) -> u64 {
        match self.0.last() {
            Some(&top) => self.0.len() as u64 * 32 - u64::from(top.leading_zeros()),
            None => 0,
        }
    }

    fn bit(&self, i: u64) -> bool {
        self.0
            .get((i / 32) as usize)
            .is_some_and(|w| (w >> (i % 32)) & 1 == 1)
    }

    /// Whether any bit below position `i` is set.
    fn any_below(&self, i: u64) -> bool {
        let words = (i / 32) as usize;
        self.0.iter().take(words).any(|&w| w != 0)
            || (!i.is_multiple_of(32)
                && self
                    .0
                    .get(words)
                    .is_some_and(|&w| w & ((1u32 << (i % 32)) - 1) != 0))
    }

    /// The (at most 64) bits from position `i` up.
    fn bits_from(&self, i: u64) -> u64 {
        (0..64).fold(0u64, |acc, j| acc | (u64::from(self.bit(i + j)) << j))
    }

    fn low_u64(&self) -> u64 {
        self.bits_from(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(s: &str) {
        let want: f64 = s.parse().unwrap();
        let got = parse(s).unwrap();
        assert_eq!(got.to_bits(), want.to_bits(), "{s}: {got:e} != {want:e}");
    }

    /// The exact decimal text of the point halfway between `x` and the next float up.
    fn midpoint(x: f64) -> String {
        let bits = x.to_bits();
        let biased = ((bits >> 52) & 0x7ff) as i64;
        let frac = bits & ((1 << 52) - 1);
        let (m, e) = if biased == 0 {
            (frac, -1074)
        } else {
            (frac | (1 << 52), biased - 1075)
        };
        // (2m + 1) × 2^(e - 1)
        let mut n = Big(Vec::new());
        n.add_small(((2 * m + 1) >> 32) as u32);
        n.shl(32);
        n.add_small((2 * m + 1) as u32);
        let mut exp10 = 0i64;
        if e >= 1 {
            n.shl((e - 1) as u64);
        } else {
            for _ in 0..(1 - e) {
                n.mul_small(5);
            }
            exp10 = e - 1;
        }
        let mut digits = Vec::new();
        while !n.0.is_empty() {
            digits.push(b'0' + n.div_small(10) as u8);
        }
        digits.reverse();
        format!("{}e{exp10}", String::from_utf8(digits).unwrap())
    }

    #[test]
    fn agrees_with_the_standard_parser() {
        let fixed = [
            "0",
            "0.0",
            "000",
            "1",
            "1.",
            ".5",
            "0.1",
            "1e0",
            "1E+5",
            "1e-5",
            "123456789012345678901234567890",
            "9007199254740993",
            "9007199254740992",
            "2.2250738585072011e-308",
            "2.2250738585072012e-308",
            "4.9406564584124654e-324",
            "2.4703282292062327e-324",
            "2.4703282292062328e-324",
            "1.7976931348623157e308",
            "1.7976931348623158e308",
            "1.7976931348623159e308",
            "1e309",
            "1e-400",
            "1e400",
            "0e999999999999",
            "0.000000000000000000000000001e27",
            "1e22",
            "1e23",
            "123.456e-2",
            "3.14159265358979323846264338327950288",
            "100000000000000000000000000000000000000000001e-43",
            "7.2057594037927933e16",
            "8.98846567431158e307",
            "1e-7",
            "5e-324",
            "1.5e-323",
        ];
        for s in fixed {
            check(s);
        }
        let long = format!("1.{}1e-3", "0".repeat(900));
        check(&long);
        let long = format!("{}e-500", "9".repeat(1000));
        check(&long);
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            x.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        };
        for _ in 0..3000 {
            let f = f64::from_bits(next() >> 1);
            if !f.is_finite() {
                continue;
            }
            let mid = midpoint(f);
            check(&mid);
            check(&format!("{f:e}"));
            check(&format!("{f:.25e}"));
        }
        for _ in 0..30_000 {
            let r = next();
            let len = (r % 25 + 1) as usize;
            let mut s: String = (0..len)
                .map(|i| (b'0' + ((r >> (i * 2)) % 10) as u8) as char)
                .collect();
            if r & (1 << 60) != 0 {
                s.insert(len / 2, '.');
            }
            let e = (next() % 700) as i64 - 350;
            check(&format!("{s}e{e}"));
            check(&s);
        }
    }

    #[test]
    fn refuses_what_is_not_a_decimal_literal() {
        for s in [
            "", ".", "e5", "1e", "1e+", "-1", "+1", "1.2.3", "inf", "NaN", "1 ", " 1", "0x10",
            "1_0",
        ] {
            assert_eq!(parse(s), None, "{s}");
        }
    }
}
