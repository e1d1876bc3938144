//! Statistics for experiment results and rollout gates: Wilson score intervals, the
//! difference of two proportions (Newcombe's hybrid score interval), the sample-ratio-mismatch
//! (SRM) chi-square test, the chi-square survival function, and quantiles of latency histograms.
//!
//! Hand-rolled on purpose: `statrs` would pull `nalgebra` (and much more code) into a wasm
//! worker whose size and start-up time matter, for a handful of well-known formulas. Every
//! function is total: any input (zero trials, huge counts, NaN or infinite parameters) gives
//! a finite answer or `None`, never a panic or a NaN, because the results feed automated
//! rollout decisions and JSON reports (where NaN cannot even be written).

use serde::Serialize;

/// The standard normal quantile for a two-sided 95 % interval.
pub(crate) const Z95: f64 = 1.959963984540054;

/// The usual significance threshold for sample ratio mismatch: SRM checks run continuously,
/// so a strict alpha keeps false alarms rare.
pub(crate) const SRM_ALPHA: f64 = 0.001;

/// A closed interval `[low, high]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct Interval {
    pub(crate) low: f64,
    pub(crate) high: f64,
}

/// Wilson score interval for a binomial proportion; `None` when `trials == 0`. `successes`
/// above `trials` is clamped to `trials`. The sign of `z` is ignored; a NaN or infinite `z`
/// (or one so large that `z²` overflows) gives the uninformative interval `[0, 1]`.
///
/// Wilson rather than the textbook normal ("Wald") interval because it stays inside `[0, 1]`
/// and is still meaningful at 0 or all successes, which is exactly the canary case (0 errors).
pub(crate) fn wilson(successes: u64, trials: u64, z: f64) -> Option<Interval> {
    if trials == 0 {
        return None;
    }
    let n = trials as f64;
    let p = successes.min(trials) as f64 / n;
    let z = z.abs();
    let z2 = z * z;
    if !z2.is_finite() {
        return Some(Interval {
            low: 0.0,
            high: 1.0,
        });
    }
    let denom = 1.0 + z2 / n;
    let center = (p + z2 / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denom;
    let (mut low, mut high) = (center - half, center + half);
    // The exact bounds at p = 0 and p = 1 are 0 and 1; rounding could leave 1e-17 instead.
    if successes == 0 {
        low = 0.0;
    }
    if successes >= trials {
        high = 1.0;
    }
    Some(Interval {
        low: unit(low, 0.0),
        high: unit(high, 1.0),
    })
}

/// Clamps to `[0, 1]`, replacing NaN with `fallback`.
fn unit(x: f64, fallback: f64) -> f64 {
    if x.is_nan() {
        fallback
    } else {
        x.clamp(0.0, 1.0)
    }
}

/// Treatment compared with control for a proportion (conversion, error rate).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Uplift {
    /// `pt - pc`.
    pub(crate) absolute: f64,
    /// `(pt - pc) / pc`; `None` when `pc == 0` (no base to be relative to).
    pub(crate) relative: Option<f64>,
    /// Confidence interval of `absolute` (Newcombe's hybrid score method 10, built from the
    /// two Wilson intervals).
    pub(crate) interval: Interval,
}

/// Treatment minus control, each given as `(successes, trials)`; `None` when either has 0
/// trials.
///
/// Newcombe (1998), method 10: with Wilson intervals `(l1, u1)` around `p1` (treatment) and
/// `(l2, u2)` around `p2` (control), the difference `d = p1 - p2` has the interval
/// `d - sqrt((p1-l1)² + (u2-p2)²)` to `d + sqrt((u1-p1)² + (p2-l2)²)`. It keeps the Wilson
/// interval's good coverage for small or extreme proportions, where the Wald interval of the
/// difference is far too narrow.
pub(crate) fn uplift(control: (u64, u64), treatment: (u64, u64), z: f64) -> Option<Uplift> {
    let (cs, cn) = control;
    let (ts, tn) = treatment;
    let wc = wilson(cs, cn, z)?;
    let wt = wilson(ts, tn, z)?;
    let pc = cs.min(cn) as f64 / cn as f64;
    let pt = ts.min(tn) as f64 / tn as f64;
    let d = pt - pc;
    let low = d - ((pt - wt.low).powi(2) + (wc.high - pc).powi(2)).sqrt();
    let high = d + ((wt.high - pt).powi(2) + (pc - wc.low).powi(2)).sqrt();
    Some(Uplift {
        absolute: d,
        relative: (pc > 0.0).then(|| d / pc),
        interval: Interval {
            low: low.clamp(-1.0, 1.0),
            high: high.clamp(-1.0, 1.0),
        },
    })
}

/// The result of a sample-ratio-mismatch test.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Srm {
    /// Pearson's statistic over the categories with positive weight.
    pub(crate) chi_square: f64,
    /// Positive-weight categories minus one.
    pub(crate) degrees_of_freedom: u32,
    pub(crate) p_value: f64,
    /// `p_value < alpha`, or observations in a zero-weight category.
    pub(crate) mismatch: bool,
    /// Expected count per category (same order as the input; 0 for zero weights).
    pub(crate) expected: Vec<f64>,
}

/// Pearson chi-square goodness of fit of `observed` counts against `weights` (any
/// non-negative scale: `[90, 10]` and `[0.9, 0.1]` are the same split).
///
/// A category with weight 0 is skipped if it has no observations; if it has some, that is an
/// immediate mismatch (`p_value` 0): under the intended split it cannot happen at all. In that
/// case `chi_square` and `degrees_of_freedom` still describe the positive-weight categories.
///
/// `None` when the total observed is 0, fewer than 2 categories have positive weight, the
/// slices differ in length, or a weight is negative, NaN or infinite (the split itself is
/// wrong, so no test is meaningful). `mismatch` is `p_value < alpha`.
///
/// SRM is the standard guard of experiment results: when the traffic split is not what the
/// flag asked for, assignment is broken and no comparison of the arms can be trusted.
pub(crate) fn srm(observed: &[u64], weights: &[f64], alpha: f64) -> Option<Srm> {
    if observed.len() != weights.len() || weights.iter().any(|w| !w.is_finite() || *w < 0.0) {
        return None;
    }
    let total: f64 = observed.iter().map(|&o| o as f64).sum();
    // If the weights' sum overflows, scale them by the largest first; a weight so small next
    // to the largest that its share underflows to 0 counts as a zero weight.
    let largest = weights.iter().copied().fold(0.0, f64::max);
    if largest <= 0.0 {
        return None;
    }
    let divisor = if weights.iter().sum::<f64>().is_finite() {
        1.0
    } else {
        largest
    };
    let scaled: Vec<f64> = weights.iter().map(|w| w / divisor).collect();
    let scaled_sum: f64 = scaled.iter().sum();
    let shares: Vec<f64> = scaled.iter().map(|w| w / scaled_sum).collect();
    let positive = shares.iter().filter(|s| **s > 0.0).count();
    if total <= 0.0 || positive < 2 {
        return None;
    }
    let expected: Vec<f64> = shares.iter().map(|s| total * s).collect();
    let mut chi_square = 0.0;
    let mut impossible = false;
    for ((&o, &share), &e) in observed.iter().zip(&shares).zip(&expected) {
        if share > 0.0 {
            let diff = o as f64 - e;
            chi_square += diff * diff / e;
        } else if o > 0 {
            impossible = true;
        }
    }
    if !chi_square.is_finite() {
        chi_square = f64::MAX;
    }
    let degrees_of_freedom = u32::try_from(positive - 1).unwrap_or(u32::MAX);
    let p_value = if impossible {
        0.0
    } else {
        chi_square_sf(chi_square, degrees_of_freedom)
    };
    Some(Srm {
        chi_square,
        degrees_of_freedom,
        p_value,
        mismatch: impossible || p_value < alpha,
        expected,
    })
}

/// Survival function of the chi-square distribution with `df` degrees of freedom,
/// `P(X > x)` = the regularized upper incomplete gamma function `Q(df/2, x/2)`.
///
/// Computed as in Numerical Recipes: the series (`gser`) for `x < a + 1`, the continued
/// fraction (`gcf`, modified Lentz) otherwise, with ln Γ by Lanczos. Always in `[0, 1]`:
/// `x <= 0` or NaN gives 1 (no evidence), `+∞` gives 0; `df == 0` is the distribution
/// concentrated at 0 (1 for `x <= 0`, else 0).
pub(crate) fn chi_square_sf(x: f64, df: u32) -> f64 {
    if x.is_nan() || x <= 0.0 {
        return 1.0;
    }
    if x == f64::INFINITY || df == 0 {
        return 0.0;
    }
    let a = f64::from(df) / 2.0;
    let x = x / 2.0;
    let q = if x < a + 1.0 {
        1.0 - gamma_p_series(a, x)
    } else {
        gamma_q_continued_fraction(a, x)
    };
    unit(q, 1.0)
}

/// Relative precision the series and continued fraction stop at.
const EPS: f64 = 1e-15;
/// Guards the continued fraction's divisions against zero.
const FPMIN: f64 = 1e-300;

/// Both expansions need about `sqrt(a)` terms for large `a` (degrees of freedom up to
/// `u32::MAX` are accepted); the cap only bounds the work if convergence ever stalls.
fn max_iterations(a: f64) -> u64 {
    100 + (a.sqrt() * 50.0) as u64
}

/// Lower regularized gamma `P(a, x)` by its series, for `x < a + 1`.
fn gamma_p_series(a: f64, x: f64) -> f64 {
    let mut ap = a;
    let mut del = 1.0 / a;
    let mut sum = del;
    for _ in 0..max_iterations(a) {
        ap += 1.0;
        del *= x / ap;
        sum += del;
        if del.abs() < sum.abs() * EPS {
            break;
        }
    }
    (sum.ln() - x + a * x.ln() - ln_gamma(a)).exp()
}

/// Upper regularized gamma `Q(a, x)` by its continued fraction, for `x >= a + 1`.
fn gamma_q_continued_fraction(a: f64, x: f64) -> f64 {
    let mut b = x + 1.0 - a;
    let mut c = 1.0 / FPMIN;
    let mut d = 1.0 / b;
    let mut h = d;
    let mut i = 1.0;
    for _ in 0..max_iterations(a) {
        let an = -i * (i - a);
        b += 2.0;
        d = an * d + b;
        if d.abs() < FPMIN {
            d = FPMIN;
        }
        c = b + an / c;
        if c.abs() < FPMIN {
            c = FPMIN;
        }
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < EPS {
            break;
        }
        i += 1.0;
    }
    (-x + a * x.ln() - ln_gamma(a) + h.ln()).exp()
}

/// ln Γ(x) for `x > 0` by the Lanczos approximation (g = 7, 9 coefficients; about 15
/// significant digits), with the reflection formula below 0.5.
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const COEFFICIENTS: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Γ(x) Γ(1-x) = π / sin(πx)
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).abs().ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut sum = COEFFICIENTS[0];
    for (i, c) in COEFFICIENTS.iter().enumerate().skip(1) {
        sum += c / (x + i as f64);
    }
    let t = x + G + 0.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

/// Quantile `q` (clamped to `0..=1`) of a histogram given as per-bucket (not cumulative)
/// counts. `bounds` are the ascending upper bounds (ms) of the first `bounds.len()` buckets;
/// `counts` has `bounds.len() + 1` entries, the last being the overflow bucket (values above
/// the last bound).
///
/// Interpolates linearly inside the bucket that holds the rank, like Prometheus'
/// `histogram_quantile` (the first bucket starts at 0). A quantile that falls in the overflow
/// bucket returns the last bound: that is only a **lower bound** of the true value, since
/// nothing is known about how far above the last bound those observations are. Empty buckets
/// are never chosen, so `q = 0` gives the lower edge of the first non-empty bucket.
///
/// `None` when the histogram is empty, `counts.len() != bounds.len() + 1`, the bounds are not
/// finite, non-negative and strictly ascending, `q` is NaN, or the quantile is in the
/// overflow bucket and there are no bounds at all.
pub(crate) fn quantile(bounds: &[f64], counts: &[u64], q: f64) -> Option<f64> {
    if counts.len() != bounds.len() + 1 || q.is_nan() {
        return None;
    }
    let ascending = bounds.windows(2).all(|w| w[0] < w[1]);
    if !ascending || bounds.iter().any(|b| !b.is_finite() || *b < 0.0) {
        return None;
    }
    let total: f64 = counts.iter().map(|&c| c as f64).sum();
    if total <= 0.0 {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * total;
    let mut below = 0.0;
    for (i, &count) in counts.iter().enumerate() {
        let count = count as f64;
        if count > 0.0 && below + count >= rank {
            let Some(&end) = bounds.get(i) else {
                return bounds.last().copied();
            };
            let start = if i == 0 { 0.0 } else { bounds[i - 1] };
            let fraction = ((rank - below) / count).clamp(0.0, 1.0);
            return Some(start + (end - start) * fraction);
        }
        below += count;
    }
    // Only reachable through rounding of huge totals: the rank is at the very top.
    bounds.last().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: f64, expected: f64, tolerance: f64) -> bool {
        (actual - expected).abs() <= tolerance
    }

    fn assert_close(actual: f64, expected: f64, tolerance: f64, what: &str) {
        assert!(
            close(actual, expected, tolerance),
            "{what}: got {actual}, expected {expected} ± {tolerance}"
        );
    }

    // ---- ln Γ and the chi-square survival function ----

    #[test]
    fn ln_gamma_matches_known_values() {
        let cases = [
            (0.5, 0.572_364_942_924_700_1), // ln √π
            (1.0, 0.0),
            (2.0, 0.0),
            (3.5, 1.200_973_602_347_074_3),
            (10.0, 12.801_827_480_081_469), // ln 9!
            (100.0, 359.134_205_369_575_4),
            (0.1, 2.252_712_651_734_206),
        ];
        for (x, expected) in cases {
            assert_close(
                ln_gamma(x),
                expected,
                1e-12 * expected.abs().max(1.0),
                &format!("lnΓ({x})"),
            );
        }
    }

    #[test]
    fn the_chi_square_survival_function_matches_reference_values() {
        // (x, df, P(X > x)) from standard tables / closed forms (df 2: e^(-x/2); df 1: erfc).
        // The tolerance is relative to the value; the table quantiles are given to 15 digits
        // except the df 100 one.
        let cases = [
            (3.841_458_820_694_124, 1, 0.05),
            (6.634_896_601_021_214, 1, 0.01),
            (1.0, 1, 0.317_310_507_862_914_15),
            (4.0, 1, 0.045_500_263_896_358_42),
            (9.0, 1, 0.002_699_796_063_260_186_6),
            (16.0, 1, 6.334_248_366_623_996e-5),
            (1.0, 2, (-0.5f64).exp()),
            (20.0, 2, (-10.0f64).exp()),
            (10.0, 3, 0.018_566_135_463_043_25),
            (18.307_038_053_275_146, 10, 0.05),
            (124.342_113_404_004_07, 100, 0.050_000_0),
            (0.5, 4, 1.25 * (-0.25f64).exp()), // df 4: e^(-x/2) (1 + x/2)
        ];
        for (x, df, expected) in cases {
            let got = chi_square_sf(x, df);
            let tolerance = if df == 100 { 1e-6 } else { expected * 1e-7 };
            assert_close(got, expected, tolerance, &format!("sf({x}, {df})"));
        }
    }

    #[test]
    fn the_chi_square_survival_function_is_one_at_zero_and_zero_at_infinity() {
        for df in [1, 2, 3, 10, 1000, u32::MAX] {
            assert_eq!(chi_square_sf(0.0, df), 1.0);
            assert_eq!(chi_square_sf(-5.0, df), 1.0);
            assert_eq!(chi_square_sf(f64::NAN, df), 1.0);
            assert_eq!(chi_square_sf(f64::INFINITY, df), 0.0);
        }
        assert_eq!(chi_square_sf(0.0, 0), 1.0);
        assert_eq!(chi_square_sf(1.0, 0), 0.0);
    }

    #[test]
    fn the_chi_square_survival_function_stays_in_range_and_decreases_over_a_grid() {
        let xs: Vec<f64> = (0..=60)
            .map(|i| if i == 0 { 0.0 } else { 1e-6 * 1.6f64.powi(i) })
            .chain([1e9, 1e12, f64::MAX])
            .collect();
        for df in [1, 2, 3, 5, 7, 30, 99, 1000, 100_000, 10_000_000, u32::MAX] {
            let mut previous = 1.0;
            for &x in &xs {
                let p = chi_square_sf(x, df);
                assert!((0.0..=1.0).contains(&p), "sf({x}, {df}) = {p}");
                assert!(p <= previous + 1e-12, "sf not decreasing at ({x}, {df})");
                previous = p;
            }
        }
    }

    #[test]
    fn the_chi_square_survival_function_is_near_one_half_at_the_median_for_many_degrees_of_freedom()
    {
        // The median of chi-square(k) is about k(1 - 2/(9k))³ (Wilson–Hilferty), good to
        // well under 1 % in probability for k ≥ 10.
        for df in [10u32, 100, 10_000, 1_000_000, 100_000_000] {
            let k = f64::from(df);
            let median = k * (1.0 - 2.0 / (9.0 * k)).powi(3);
            assert_close(
                chi_square_sf(median, df),
                0.5,
                0.005,
                &format!("median of df {df}"),
            );
        }
    }

    // ---- Wilson ----

    #[test]
    fn wilson_intervals_match_textbook_values() {
        // (successes, trials, low, high) at z = 1.96 (Newcombe 1998, Table I style values).
        let cases = [
            (0, 10, 0.0, 0.277_5),
            (5, 10, 0.236_6, 0.763_4),
            (10, 10, 0.722_5, 1.0),
            (1, 10, 0.017_9, 0.404_2),
            (81, 263, 0.255_3, 0.366_2),
        ];
        for (s, n, low, high) in cases {
            let i = wilson(s, n, 1.96).unwrap();
            assert_close(i.low, low, 5e-5, &format!("low {s}/{n}"));
            assert_close(i.high, high, 5e-5, &format!("high {s}/{n}"));
        }
    }

    #[test]
    fn wilson_has_no_interval_without_trials_and_clamps_excess_successes() {
        assert_eq!(wilson(0, 0, Z95), None);
        assert_eq!(wilson(5, 0, Z95), None);
        assert_eq!(wilson(15, 10, Z95), wilson(10, 10, Z95));
    }

    #[test]
    fn wilson_with_a_degenerate_z_is_a_point_or_the_whole_unit_interval() {
        let point = wilson(3, 10, 0.0).unwrap();
        assert_close(point.low, 0.3, 1e-15, "z = 0 low");
        assert_close(point.high, 0.3, 1e-15, "z = 0 high");
        assert_eq!(wilson(3, 10, -1.96), wilson(3, 10, 1.96));
        let whole = Interval {
            low: 0.0,
            high: 1.0,
        };
        for z in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e200] {
            assert_eq!(wilson(3, 10, z), Some(whole), "z = {z}");
        }
    }

    #[test]
    fn wilson_is_finite_ordered_and_contains_the_estimate_over_a_grid() {
        let counts = [
            0u64,
            1,
            2,
            3,
            7,
            10,
            99,
            1000,
            123_456,
            u32::MAX as u64,
            u64::MAX,
        ];
        for &n in &counts {
            for &s in &counts {
                for z in [0.0, 0.5, Z95, 3.0, 10.0, 1e6] {
                    let Some(i) = wilson(s, n, z) else {
                        assert_eq!(n, 0);
                        continue;
                    };
                    let p = s.min(n) as f64 / n as f64;
                    assert!(i.low.is_finite() && i.high.is_finite());
                    assert!(
                        0.0 <= i.low && i.low <= i.high && i.high <= 1.0,
                        "{s}/{n} z {z}: {i:?}"
                    );
                    assert!(
                        i.low <= p + 1e-12 && p <= i.high + 1e-12,
                        "{s}/{n} z {z}: {i:?}"
                    );
                }
            }
        }
    }

    // ---- Uplift ----

    #[test]
    fn the_difference_interval_matches_newcombes_method_10() {
        // Newcombe (1998), Table II, method 10: (treatment, control, low, high).
        let cases = [
            ((56, 70), (48, 80), 0.052_4, 0.333_9),
            ((9, 10), (3, 10), 0.170_5, 0.809_0),
            ((6, 7), (2, 7), 0.058_2, 0.806_2),
            ((5, 56), (0, 29), -0.038_1, 0.192_6),
            ((0, 10), (0, 20), -0.161_1, 0.277_5),
            ((0, 10), (0, 10), -0.277_5, 0.277_5),
            ((10, 10), (0, 20), 0.679_1, 1.0),
            ((10, 10), (0, 10), 0.607_5, 1.0),
        ];
        for (treatment, control, low, high) in cases {
            let u = uplift(control, treatment, 1.96).unwrap();
            assert_close(
                u.interval.low,
                low,
                6e-5,
                &format!("low {treatment:?} - {control:?}"),
            );
            assert_close(
                u.interval.high,
                high,
                6e-5,
                &format!("high {treatment:?} - {control:?}"),
            );
        }
    }

    #[test]
    fn uplift_reports_absolute_and_relative_differences() {
        let u = uplift((100, 1000), (120, 1000), Z95).unwrap();
        assert_close(u.absolute, 0.02, 1e-12, "absolute");
        assert_close(u.relative.unwrap(), 0.2, 1e-12, "relative");
        assert!(u.interval.low < 0.02 && 0.02 < u.interval.high);
        let from_zero = uplift((0, 1000), (5, 1000), Z95).unwrap();
        assert_eq!(from_zero.relative, None);
        assert_eq!(uplift((0, 0), (5, 10), Z95), None);
        assert_eq!(uplift((5, 10), (0, 0), Z95), None);
    }

    #[test]
    fn a_clearly_worse_treatment_has_an_interval_entirely_below_zero() {
        let u = uplift((500, 5000), (350, 5000), Z95).unwrap();
        assert!(u.interval.high < 0.0, "{u:?}");
        let u = uplift((500, 5000), (490, 5000), Z95).unwrap();
        assert!(u.interval.low < 0.0 && u.interval.high > 0.0, "{u:?}");
    }

    #[test]
    fn uplift_is_finite_and_brackets_the_difference_over_a_grid() {
        let counts = [0u64, 1, 5, 10, 1000, u64::MAX];
        for &cn in &counts {
            for &cs in &counts {
                for &tn in &counts {
                    for &ts in &counts {
                        let Some(u) = uplift((cs, cn), (ts, tn), Z95) else {
                            assert!(cn == 0 || tn == 0);
                            continue;
                        };
                        let i = u.interval;
                        assert!(u.absolute.is_finite() && i.low.is_finite() && i.high.is_finite());
                        assert!(-1.0 <= i.low && i.low <= u.absolute + 1e-12);
                        assert!(u.absolute <= i.high + 1e-12 && i.high <= 1.0);
                        assert!(u.relative.is_none_or(f64::is_finite));
                    }
                }
            }
        }
    }

    // ---- SRM ----

    #[test]
    fn sample_ratio_mismatch_cases() {
        // (observed, weights, mismatch)
        let cases: &[(&[u64], &[f64], bool)] = &[
            (&[5000, 5000], &[50.0, 50.0], false),
            (&[5200, 4800], &[50.0, 50.0], true),
            (&[5100, 4900], &[50.0, 50.0], false),
            (&[900, 100], &[90.0, 10.0], false),
            (&[900, 100], &[0.9, 0.1], false),
            (&[500, 500], &[90.0, 10.0], true),
            (&[3400, 3300, 3300], &[1.0, 1.0, 1.0], false),
            (&[4000, 3000, 3000], &[1.0, 1.0, 1.0], true),
            (&[900, 100, 0], &[90.0, 10.0, 0.0], false),
            (&[900, 100, 1], &[90.0, 10.0, 0.0], true),
        ];
        for (observed, weights, mismatch) in cases {
            let s = srm(observed, weights, SRM_ALPHA).unwrap();
            assert_eq!(s.mismatch, *mismatch, "{observed:?} vs {weights:?}: {s:?}");
        }
    }

    #[test]
    fn srm_reports_the_statistic_the_degrees_of_freedom_and_the_expected_counts() {
        let s = srm(&[5200, 4800], &[1.0, 1.0], SRM_ALPHA).unwrap();
        assert_close(s.chi_square, 16.0, 1e-9, "chi-square");
        assert_eq!(s.degrees_of_freedom, 1);
        assert_close(s.p_value, 6.334_248_366_623_996e-5, 1e-11, "p");
        assert_eq!(s.expected, vec![5000.0, 5000.0]);

        let balanced = srm(&[5000, 5000], &[1.0, 1.0], SRM_ALPHA).unwrap();
        assert_eq!((balanced.chi_square, balanced.p_value), (0.0, 1.0));

        let zero_weight = srm(&[900, 100, 0], &[90.0, 10.0, 0.0], SRM_ALPHA).unwrap();
        assert_eq!(zero_weight.degrees_of_freedom, 1);
        for (got, want) in zero_weight.expected.iter().zip([900.0, 100.0, 0.0]) {
            assert_close(*got, want, 1e-9, "expected count");
        }

        let impossible = srm(&[900, 100, 1], &[90.0, 10.0, 0.0], SRM_ALPHA).unwrap();
        assert_eq!(impossible.p_value, 0.0);
    }

    #[test]
    fn srm_needs_observations_and_two_weighted_categories() {
        assert_eq!(srm(&[0, 0], &[1.0, 1.0], SRM_ALPHA), None);
        assert_eq!(srm(&[10, 0], &[1.0, 0.0], SRM_ALPHA), None);
        assert_eq!(srm(&[10], &[1.0], SRM_ALPHA), None);
        assert_eq!(srm(&[], &[], SRM_ALPHA), None);
        assert_eq!(srm(&[10, 10], &[1.0], SRM_ALPHA), None);
        assert_eq!(srm(&[10, 10], &[1.0, -1.0], SRM_ALPHA), None);
        assert_eq!(srm(&[10, 10], &[1.0, f64::NAN], SRM_ALPHA), None);
        assert_eq!(srm(&[10, 10], &[1.0, f64::INFINITY], SRM_ALPHA), None);
    }

    #[test]
    fn srm_is_finite_over_a_grid() {
        let counts = [0u64, 1, 17, 1000, u32::MAX as u64, u64::MAX];
        let weights = [0.0, 1e-300, 0.1, 1.0, 90.0, 1e300, f64::MAX];
        for &a in &counts {
            for &b in &counts {
                for &wa in &weights {
                    for &wb in &weights {
                        if let Some(s) = srm(&[a, b], &[wa, wb], SRM_ALPHA) {
                            assert!(s.chi_square.is_finite() && s.chi_square >= 0.0, "{s:?}");
                            assert!((0.0..=1.0).contains(&s.p_value), "{s:?}");
                            assert!(s.expected.iter().all(|e| e.is_finite()), "{s:?}");
                        }
                    }
                }
            }
        }
    }

    // ---- Quantiles ----

    const BOUNDS: [f64; 4] = [10.0, 50.0, 100.0, 500.0];

    #[test]
    fn quantiles_interpolate_inside_the_bucket_like_prometheus() {
        // (counts, q, expected)
        let cases: &[(&[u64], f64, f64)] = &[
            (&[0, 50, 40, 10, 0], 0.5, 50.0),
            (&[0, 50, 40, 10, 0], 0.25, 30.0),
            (&[0, 50, 40, 10, 0], 0.9, 100.0),
            (&[0, 50, 40, 10, 0], 0.99, 460.0),
            (&[0, 50, 40, 10, 0], 1.0, 500.0),
            (&[0, 50, 40, 10, 0], 0.0, 10.0),
            (&[4, 0, 0, 0, 0], 0.5, 5.0),
            (&[100, 0, 0, 0, 0], 0.99, 9.9),
            (&[0, 0, 0, 1, 0], 0.5, 300.0),
            // in the overflow bucket: the last bound, a lower bound of the truth
            (&[0, 0, 0, 0, 10], 0.5, 500.0),
            (&[90, 0, 0, 0, 10], 0.99, 500.0),
            // q outside 0..=1 is clamped
            (&[0, 50, 40, 10, 0], 7.0, 500.0),
            (&[0, 50, 40, 10, 0], -1.0, 10.0),
        ];
        for (counts, q, expected) in cases {
            let got = quantile(&BOUNDS, counts, *q).unwrap();
            assert_close(got, *expected, 1e-9, &format!("q {q} of {counts:?}"));
        }
    }

    #[test]
    fn quantiles_need_a_non_empty_well_formed_histogram() {
        assert_eq!(quantile(&BOUNDS, &[0, 0, 0, 0, 0], 0.5), None);
        assert_eq!(quantile(&BOUNDS, &[1, 2, 3, 4], 0.5), None);
        assert_eq!(quantile(&BOUNDS, &[1, 2, 3, 4, 5, 6], 0.5), None);
        assert_eq!(quantile(&BOUNDS, &[1, 2, 3, 4, 5], f64::NAN), None);
        assert_eq!(quantile(&[50.0, 10.0], &[1, 1, 1], 0.5), None);
        assert_eq!(quantile(&[10.0, f64::NAN], &[1, 1, 1], 0.5), None);
        assert_eq!(quantile(&[], &[5], 0.5), None);
    }

    #[test]
    fn quantiles_are_finite_and_within_the_bounds_over_a_grid() {
        let values = [0u64, 1, 3, 1000, u64::MAX];
        let qs = [0.0, 0.01, 0.25, 0.5, 0.9, 0.99, 0.999, 1.0];
        for &a in &values {
            for &b in &values {
                for &c in &values {
                    for &q in &qs {
                        let counts = [a, b, c, a, b];
                        match quantile(&BOUNDS, &counts, q) {
                            Some(v) => assert!((0.0..=500.0).contains(&v), "{counts:?} q {q}: {v}"),
                            None => assert!(counts.iter().all(|&n| n == 0)),
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn results_serialize_with_camel_case_names() {
        let u = uplift((1, 10), (2, 10), Z95).unwrap();
        let json = serde_json::to_value(u).unwrap();
        assert!(json.get("interval").and_then(|i| i.get("low")).is_some());
        let s = srm(&[1, 1], &[1.0, 1.0], SRM_ALPHA).unwrap();
        let json = serde_json::to_value(s).unwrap();
        for key in [
            "chiSquare",
            "degreesOfFreedom",
            "pValue",
            "mismatch",
            "expected",
        ] {
            assert!(json.get(key).is_some(), "{key} in {json}");
        }
    }
}
