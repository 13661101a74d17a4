//! Prometheus duration syntax: `1y2w3d4h5m6s7ms` (units y=365d, w, d, h, m,
//! s, ms; each at most once, largest first), as used in configs and APIs.

use crate::ModelError;

const UNITS: [(&str, i64); 7] = [
    ("y", 365 * 24 * 3_600_000),
    ("w", 7 * 24 * 3_600_000),
    ("d", 24 * 3_600_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// Parses a Prometheus duration into milliseconds. `0` alone is accepted.
pub fn parse_duration_ms(s: &str) -> Result<i64, ModelError> {
    let bad = || ModelError::InvalidDuration {
        input: s.to_string(),
    };
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(bad());
    }
    let bytes = s.as_bytes();
    let mut pos = 0;
    let mut total: i64 = 0;
    let mut last_unit = None::<usize>;
    while pos < bytes.len() {
        let start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_digit() {
            pos += 1;
        }
        if start == pos {
            return Err(bad());
        }
        let n: i64 = s[start..pos].parse().map_err(|_| bad())?;
        let ustart = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_alphabetic() {
            pos += 1;
        }
        let unit = &s[ustart..pos];
        let idx = UNITS.iter().position(|(u, _)| *u == unit).ok_or_else(bad)?;
        if last_unit.is_some_and(|l| l >= idx) {
            return Err(bad());
        }
        last_unit = Some(idx);
        total = n
            .checked_mul(UNITS[idx].1)
            .and_then(|v| v.checked_add(total))
            .ok_or_else(bad)?;
    }
    Ok(total)
}

/// Formats milliseconds in Prometheus duration syntax (`1h30m`, `0s`).
pub fn format_duration_ms(mut ms: i64) -> String {
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    if ms < 0 {
        out.push('-');
        ms = -ms;
    }
    for (unit, size) in UNITS {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_durations() {
        assert_eq!(parse_duration_ms("15s").unwrap(), 15_000);
        assert_eq!(parse_duration_ms("1h30m").unwrap(), 5_400_000);
        assert_eq!(parse_duration_ms("500ms").unwrap(), 500);
        assert_eq!(parse_duration_ms("1d").unwrap(), 86_400_000);
        assert_eq!(parse_duration_ms("0").unwrap(), 0);
        for bad in ["", "1", "s", "1x", "30m1h", "1m1m", "-1s", "1.5s"] {
            assert!(parse_duration_ms(bad).is_err(), "{bad}");
        }
        assert_eq!(format_duration_ms(5_400_000), "1h30m");
        assert_eq!(format_duration_ms(300_000), "5m");
    }
}
