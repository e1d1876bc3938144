//! HTTP-dates (RFC 9110 §5.6.7): the three formats a recipient must accept, and IMF-fixdate out.
//!
//! Hand-written rather than `chrono` (linked through `worker`, but only for `Date`
//! conversions), measured: parsing the three formats with `chrono::NaiveDateTime::parse_from_str`
//! added 40,446 B to the edge wasm (+16,466 B gzip: `scripts/build-edge.sh`, 2026-12-02) for its
//! format-string parser, and its formats are strict where RFC 9110 §5.6.7 asks recipients to
//! be robust (a two-digit year in an IMF-fixdate, a four-digit one in RFC 850, `UTC`, a
//! weekday that does not match the date — each needs its own pre-pass or format variant).

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

const LONG_DAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];

/// 9999-12-31T23:59:59Z, the last instant an HTTP-date can express.
pub(crate) const MAX_HTTP_DATE: u64 = 253_402_300_799;

/// Parses an HTTP-date (RFC 9110 §5.6.7) into unix seconds: IMF-fixdate
/// (`Sun, 06 Nov 1994 08:49:37 GMT`), obsolete RFC 850 (`Sunday, 06-Nov-94 08:49:37 GMT`)
/// and asctime (`Sun Nov  6 08:49:37 1994`).
///
/// Robust as §5.6.7 encourages: names are case-insensitive, extra spaces and a missing comma
/// are accepted, `UTC` is accepted for `GMT`, the weekday must be a weekday name but is not
/// checked against the date. Two-digit years use a fixed pivot (00–69 → 20xx, 70–99 →
/// 19xx) instead of §5.6.7's "50 years in the future" rule, which would need a clock here;
/// they differ only for dates in 2070–2075 written in an obsolete format. Dates before 1970
/// become 0.
pub(crate) fn parse_http_date(value: &str) -> Option<u64> {
    let cleaned = value.replace(',', " ");
    let t: Vec<&str> = cleaned.split_whitespace().collect();
    let (day, month, year, time) = match t.as_slice() {
        [wk, d, m, y, time, zone] if is_weekday(wk) && is_gmt(zone) => {
            (*d, month_number(m)?, parse_year(y)?, *time)
        }
        [d, m, y, time, zone] if is_gmt(zone) => (*d, month_number(m)?, parse_year(y)?, *time),
        [wk, dmy, time, zone] if is_weekday(wk) && is_gmt(zone) => {
            let parts: Vec<&str> = dmy.split('-').collect();
            let [d, m, y] = parts.as_slice() else {
                return None;
            };
            (*d, month_number(m)?, parse_year(y)?, *time)
        }
        [wk, m, d, time, y] if is_weekday(wk) => (*d, month_number(m)?, parse_year(y)?, *time),
        _ => return None,
    };
    let day = parse_small(day)?;
    let (hh, mm, ss) = parse_time(time)?;
    if day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + i64::from(hh) * 3600 + i64::from(mm) * 60 + i64::from(ss);
    Some(u64::try_from(secs).unwrap_or(0))
}

/// Formats unix seconds as an IMF-fixdate (dates past year 9999 are clamped).
pub(crate) fn format_http_date(secs: u64) -> String {
    let secs = secs.min(MAX_HTTP_DATE);
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(i64::try_from(days).unwrap_or(0));
    let weekday = DAYS
        .get(usize::try_from((days + 4) % 7).unwrap_or(0))
        .unwrap_or(&"thu");
    let month = MONTHS
        .get(usize::try_from(m.saturating_sub(1)).unwrap_or(0))
        .unwrap_or(&"jan");
    format!(
        "{}, {d:02} {} {y:04} {:02}:{:02}:{:02} GMT",
        capitalise(weekday),
        capitalise(month),
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
        None => String::new(),
    }
}

fn is_weekday(s: &str) -> bool {
    let s = s.to_ascii_lowercase();
    DAYS.contains(&s.as_str()) || LONG_DAYS.contains(&s.as_str())
}

fn is_gmt(s: &str) -> bool {
    s.eq_ignore_ascii_case("gmt") || s.eq_ignore_ascii_case("utc")
}

fn month_number(s: &str) -> Option<u32> {
    let s = s.to_ascii_lowercase();
    let i = MONTHS.iter().position(|m| *m == s)?;
    u32::try_from(i + 1).ok()
}

fn parse_small(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 2 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_year(s: &str) -> Option<i64> {
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let y: i64 = match s.len() {
        4 => s.parse().ok()?,
        2 => {
            let yy: i64 = s.parse().ok()?;
            if yy < 70 {
                2000 + yy
            } else {
                1900 + yy
            }
        }
        _ => return None,
    };
    Some(y)
}

fn parse_time(s: &str) -> Option<(u32, u32, u32)> {
    let parts: Vec<&str> = s.split(':').collect();
    let [h, m, sec] = parts.as_slice() else {
        return None;
    };
    let (h, m, sec) = (parse_small(h)?, parse_small(m)?, parse_small(sec)?);
    // 60 allows a leap second.
    (h < 24 && m < 60 && sec <= 60).then_some((h, m, sec))
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
#[allow(clippy::type_complexity)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_parse_in_all_three_formats_and_tolerate_common_mistakes() {
        const NOV_1994: u64 = 784_111_777;
        const AUG_2050: u64 = 2_544_400_878;
        let cases: &[(&str, Option<u64>)] = &[
            ("Sun, 06 Nov 1994 08:49:37 GMT", Some(NOV_1994)),
            ("Sunday, 06-Nov-94 08:49:37 GMT", Some(NOV_1994)),
            ("Sun Nov  6 08:49:37 1994", Some(NOV_1994)),
            ("Thu, 18 Aug 2050 02:01:18 GMT", Some(AUG_2050)),
            ("THU, 18 AUG 2050 02:01:18 gMT", Some(AUG_2050)),
            ("Thu, 18 Aug 2050 02:01:18 UTC", Some(AUG_2050)),
            ("Thu, 18 Aug 50 02:01:18 GMT", Some(AUG_2050)),
            ("Thu 18 Aug 2050 02:01:18 GMT", Some(AUG_2050)),
            ("Thu, 18  Aug  2050 02:01:18 GMT", Some(AUG_2050)),
            ("Thu, 18-Aug-2050 02:01:18 GMT", Some(AUG_2050)),
            ("Thu, 18 Aug 2050 2:01:18 GMT", Some(AUG_2050)),
            ("  Thu, 18 Aug 2050 02:01:18 GMT  ", Some(AUG_2050)),
            ("Thu, 01 Jan 1970 00:00:00 GMT", Some(0)),
            ("Mon, 01 Jan 1900 00:00:00 GMT", Some(0)),
            ("Thu, 29 Feb 2024 00:00:00 GMT", Some(1_709_164_800)),
            ("Fri, 31 Dec 9999 23:59:59 GMT", Some(MAX_HTTP_DATE)),
            ("0", None),
            ("", None),
            ("-1", None),
            ("Thu, 18 Aug 2050 02.01.18 GMT", None),
            ("Thu, 18 Aug 2050 02:01:18 PST", None),
            ("Thu, 18 Aug 2050 02:01:18", None),
            ("Thu, 29 Feb 2023 00:00:00 GMT", None),
            ("Thu, 31 Apr 2050 00:00:00 GMT", None),
            ("Thu, 00 Aug 2050 02:01:18 GMT", None),
            ("Thu, 18 Aug 2050 24:00:00 GMT", None),
            ("Thu, 18 Aug 2050 23:60:00 GMT", None),
            ("Thu, 18 Foo 2050 02:01:18 GMT", None),
            ("Fun, 18 Aug 2050 02:01:18 GMT", None),
            ("Thu, 18 Aug 205 02:01:18 GMT", None),
            ("Thu, 18 Aug +2050 02:01:18 GMT", None),
            ("Thu, 118 Aug 2050 02:01:18 GMT", None),
        ];
        for (s, want) in cases {
            assert_eq!(parse_http_date(s), *want, "{s:?}");
        }
    }

    #[test]
    fn http_dates_format_as_imf_fixdate() {
        let cases: &[(u64, &str)] = &[
            (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
            (784_111_777, "Sun, 06 Nov 1994 08:49:37 GMT"),
            (1_709_164_800, "Thu, 29 Feb 2024 00:00:00 GMT"),
            (u64::MAX, "Fri, 31 Dec 9999 23:59:59 GMT"),
        ];
        for (secs, want) in cases {
            assert_eq!(format_http_date(*secs), *want);
            assert_eq!(parse_http_date(want), Some((*secs).min(MAX_HTTP_DATE)));
        }
    }
}
