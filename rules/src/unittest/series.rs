//! The notations of promtool's test files: series descriptions
//! (`name{a="b"}`) and expanding value sequences (`1+2x3`, `_`, `_x2`,
//! `stale`).

use fleetwatch_model::{Label, Labels, STALE_NAN};

/// One value of a sequence: a number, a staleness marker, or none (`_`).
pub type SeqValue = Option<f64>;

/// Parses `name{a="b", c="d"}`, `name` or `{a="b"}` into labels.
pub fn parse_metric(s: &str) -> Result<Labels, String> {
    let s = s.trim();
    let (name, rest) = match s.find('{') {
        Some(i) => (s[..i].trim(), Some(&s[i + 1..])),
        None => (s, None),
    };
    let mut labels = Vec::new();
    if !name.is_empty() {
        labels.push(Label::new(fleetwatch_model::METRIC_NAME, name));
    }
    if let Some(rest) = rest {
        let body = rest
            .trim_end()
            .strip_suffix('}')
            .ok_or_else(|| format!("{s:?}: missing closing brace"))?;
        let mut chars = body.chars().peekable();
        loop {
            while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
                chars.next();
            }
            if chars.peek().is_none() {
                break;
            }
            let mut lname = String::new();
            while let Some(&c) = chars.peek() {
                if c == '=' || c.is_whitespace() {
                    break;
                }
                lname.push(c);
                chars.next();
            }
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            if chars.next() != Some('=') {
                return Err(format!("{s:?}: expected '=' after label {lname:?}"));
            }
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            if chars.next() != Some('"') {
                return Err(format!(
                    "{s:?}: expected a quoted value for label {lname:?}"
                ));
            }
            let mut value = String::new();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some('n') => value.push('\n'),
                        Some(o) => value.push(o),
                        None => {}
                    },
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                return Err(format!("{s:?}: unterminated label value"));
            }
            labels.push(Label::new(lname, value));
        }
    }
    Labels::new(labels).map_err(|e| format!("{s:?}: {e}"))
}

fn parse_number(s: &str) -> Result<f64, String> {
    match s {
        "Inf" | "+Inf" | "inf" | "+inf" => Ok(f64::INFINITY),
        "-Inf" | "-inf" => Ok(f64::NEG_INFINITY),
        "NaN" | "nan" => Ok(f64::NAN),
        "stale" => Ok(STALE_NAN),
        _ => s.parse().map_err(|_| format!("invalid number {s:?}")),
    }
}

/// Splits `a+b` / `a-b` into start and signed step (the sign of `a` and
/// exponent signs are not operators).
fn split_step(s: &str) -> Option<(&str, &str)> {
    let b = s.as_bytes();
    (1..b.len())
        .find(|&i| (b[i] == b'+' || b[i] == b'-') && !matches!(b[i - 1], b'e' | b'E'))
        .map(|i| (&s[..i], &s[i..]))
}

/// Expands a value sequence: `1 2 3`, `1+2x3` (1 3 5 7), `5x2` (5 5 5),
/// `_` (no sample), `_x3` (three), `stale`.
pub fn parse_values(s: &str) -> Result<Vec<SeqValue>, String> {
    const MAX: u64 = 1_000_000;
    let mut out = Vec::new();
    for tok in s.split_whitespace() {
        let (item, times) = match tok.rsplit_once('x') {
            Some((item, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                let n: u64 = n.parse().map_err(|_| format!("invalid count in {tok:?}"))?;
                if n > MAX {
                    return Err(format!("{tok:?}: too many values"));
                }
                (item, Some(n))
            }
            _ => (tok, None),
        };
        if item == "_" {
            let n = times.unwrap_or(1);
            out.extend((0..n).map(|_| None));
            continue;
        }
        match times {
            None => out.push(Some(parse_number(item)?)),
            Some(n) => {
                let (start, step) = match split_step(item) {
                    Some((a, b)) => (parse_number(a)?, parse_number(b)?),
                    None => (parse_number(item)?, 0.0),
                };
                let mut v = start;
                out.push(Some(v));
                for _ in 0..n {
                    v += step;
                    out.push(Some(v));
                }
            }
        }
        if out.len() as u64 > MAX {
            return Err("too many values".into());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expanding_notation() {
        assert_eq!(
            parse_values("1+2x3").unwrap(),
            vec![Some(1.0), Some(3.0), Some(5.0), Some(7.0)]
        );
        assert_eq!(
            parse_values("5x2 _ 1").unwrap(),
            vec![Some(5.0), Some(5.0), Some(5.0), None, Some(1.0)]
        );
        assert_eq!(
            parse_values("_x2 10-5x2").unwrap(),
            vec![None, None, Some(10.0), Some(5.0), Some(0.0)]
        );
        assert_eq!(
            parse_values("-1 1e3").unwrap(),
            vec![Some(-1.0), Some(1000.0)]
        );
        let s = parse_values("stale").unwrap();
        assert!(fleetwatch_model::is_stale_nan(s[0].unwrap()));
        assert!(parse_values("abc").is_err());
    }

    #[test]
    fn metrics() {
        let l = parse_metric("up{job=\"a\", instance=\"b:1\"}").unwrap();
        assert_eq!(l.get("__name__"), Some("up"));
        assert_eq!(l.get("instance"), Some("b:1"));
        let l = parse_metric("{a=\"x\\\"y\"}").unwrap();
        assert_eq!(l.get("a"), Some("x\"y"));
        assert_eq!(parse_metric("up").unwrap().len(), 1);
        assert!(parse_metric("up{a=b}").is_err());
    }
}
