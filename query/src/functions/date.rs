//! Calendar functions (`hour`, `month`, ...) on Unix-seconds values, in UTC.

use crate::value::VSample;

/// Days since 1970-01-01 to (year, month 1-12, day 1-31).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The calendar field `name` of the time `secs` (Unix seconds).
pub(crate) fn field(name: &str, secs: f64) -> f64 {
    let s = secs as i64;
    let days = s.div_euclid(86_400);
    let sod = s.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let v = match name {
        "minute" => (sod / 60) % 60,
        "hour" => sod / 3600,
        "day_of_month" => d,
        "day_of_week" => (days + 4).rem_euclid(7),
        "day_of_year" => (1..m).map(|mm| days_in_month(y, mm)).sum::<i64>() + d,
        "days_in_month" => days_in_month(y, m),
        "month" => m,
        _ => y,
    };
    v as f64
}

/// Applies a calendar function to every value (dropping the metric name).
pub(super) fn apply(name: &str, v: Vec<VSample>, t: i64) -> Vec<VSample> {
    v.into_iter()
        .filter(|s| s.hist.is_none())
        .map(|s| VSample {
            drop_name: true,
            ts: t,
            value: if s.value.is_nan() || s.value.is_infinite() {
                s.value
            } else {
                field(name, s.value)
            },
            ..s
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_fields() {
        // 2024-02-29T13:45:00Z, a Thursday.
        let t = 1_709_214_300.0;
        assert_eq!(field("year", t), 2024.0);
        assert_eq!(field("month", t), 2.0);
        assert_eq!(field("day_of_month", t), 29.0);
        assert_eq!(field("days_in_month", t), 29.0);
        assert_eq!(field("day_of_year", t), 60.0);
        assert_eq!(field("day_of_week", t), 4.0);
        assert_eq!(field("hour", t), 13.0);
        assert_eq!(field("minute", t), 45.0);
        assert_eq!(field("year", -1.0), 1969.0);
    }
}
