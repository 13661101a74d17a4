//! The promqltest notation of a native histogram, `{{schema:0 sum:5
//! count:4 z_bucket:1 z_bucket_w:0.001 buckets:[1 2 1] offset:0
//! n_buckets:[..] n_offset:0 custom_values:[..] counter_reset_hint:gauge}}`
//! (parsing, and a display form for messages).

use std::fmt;

use super::{Bucket, CounterResetHint, FloatHistogram};

/// Errors reading the notation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NotationError {
    /// The text is not enclosed in `{{` and `}}`.
    #[error("histogram notation must be enclosed in {{{{ and }}}}: {0}")]
    NotEnclosed(String),
    /// A field the notation does not have.
    #[error("unknown histogram field {0:?}")]
    UnknownField(String),
    /// A value that is not a number (or list of numbers, or hint).
    #[error("bad value {value:?} for histogram field {field}")]
    BadValue {
        /// The field.
        field: String,
        /// The value text.
        value: String,
    },
}

/// A parsed histogram and whether its counter-reset hint was written out
/// (promqltest compares the hint only then).
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// The histogram.
    pub histogram: FloatHistogram,
    /// `counter_reset_hint:` was given.
    pub hint_set: bool,
}

fn number(field: &str, v: &str) -> Result<f64, NotationError> {
    v.parse::<f64>().map_err(|_| NotationError::BadValue {
        field: field.to_string(),
        value: v.to_string(),
    })
}

fn integer(field: &str, v: &str) -> Result<i32, NotationError> {
    v.parse::<i32>().map_err(|_| NotationError::BadValue {
        field: field.to_string(),
        value: v.to_string(),
    })
}

fn list(field: &str, v: &str) -> Result<Vec<f64>, NotationError> {
    v.trim_start_matches('[')
        .trim_end_matches(']')
        .split_whitespace()
        .map(|x| number(field, x))
        .collect()
}

fn buckets(counts: &[f64], offset: i32) -> Vec<Bucket> {
    counts
        .iter()
        .zip(offset..)
        .map(|(&count, index)| Bucket { index, count })
        .collect()
}

/// Splits the inside of `{{...}}` into `(field, value)` pairs; list values
/// keep their brackets.
fn fields(inner: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let mut rest = inner.trim();
    while let Some(colon) = rest.find(':') {
        let (key, after) = rest.split_at(colon);
        let after = after.get(1..).unwrap_or("").trim_start();
        let end = if after.starts_with('[') {
            after.find(']').map_or(after.len(), |i| i + 1)
        } else {
            after.find(char::is_whitespace).unwrap_or(after.len())
        };
        let (value, tail) = after.split_at(end);
        out.push((key.trim(), value));
        rest = tail.trim_start();
    }
    out
}

/// Parses one `{{...}}` histogram.
pub fn parse(text: &str) -> Result<Parsed, NotationError> {
    let inner = text
        .trim()
        .strip_prefix("{{")
        .and_then(|x| x.strip_suffix("}}"))
        .ok_or_else(|| NotationError::NotEnclosed(text.to_string()))?;
    let mut h = FloatHistogram::default();
    let (mut pos, mut neg) = (Vec::new(), Vec::new());
    let (mut offset, mut n_offset) = (0, 0);
    let mut hint_set = false;
    for (field, value) in fields(inner) {
        match field {
            "schema" => h.schema = integer(field, value)?,
            "sum" => h.sum = number(field, value)?,
            "count" => h.count = number(field, value)?,
            "z_bucket" => h.zero_count = number(field, value)?,
            "z_bucket_w" => h.zero_threshold = number(field, value)?,
            "buckets" => pos = list(field, value)?,
            "n_buckets" => neg = list(field, value)?,
            "offset" => offset = integer(field, value)?,
            "n_offset" => n_offset = integer(field, value)?,
            "custom_values" => h.custom_values = list(field, value)?,
            "counter_reset_hint" => {
                hint_set = true;
                h.counter_reset_hint = match value {
                    "unknown" => CounterResetHint::Unknown,
                    "reset" => CounterResetHint::Reset,
                    "not_reset" => CounterResetHint::NotReset,
                    "gauge" => CounterResetHint::Gauge,
                    _ => {
                        return Err(NotationError::BadValue {
                            field: field.to_string(),
                            value: value.to_string(),
                        })
                    }
                };
            }
            other => return Err(NotationError::UnknownField(other.to_string())),
        }
    }
    h.positive = buckets(&pos, offset);
    h.negative = buckets(&neg, n_offset);
    Ok(Parsed {
        histogram: h,
        hint_set,
    })
}

impl FloatHistogram {
    /// Prometheus's `String()` form, used as a label value by
    /// `count_values`: `{count:20, sum:10, [-2,-1):2, [-0.001,0.001]:2,
    /// (0.5,1]:1}` (populated buckets only).
    pub fn prometheus_string(&self) -> String {
        use fleetwatch_model::exposition::format_value as g;
        let mut out = format!("{{count:{}, sum:{}", g(self.count), g(self.sum));
        for b in self.all_buckets() {
            if b.count == 0.0 {
                continue;
            }
            let zero = b.lower == -self.zero_threshold
                && b.upper == self.zero_threshold
                && !self.uses_custom_buckets();
            let (open, close) = if zero {
                ('[', ']')
            } else if b.upper <= 0.0 && !self.uses_custom_buckets() {
                ('[', ')')
            } else {
                ('(', ']')
            };
            out.push_str(&format!(
                ", {open}{},{}{close}:{}",
                g(b.lower),
                g(b.upper),
                g(b.count)
            ));
        }
        out.push('}');
        out
    }
}

impl fmt::Display for FloatHistogram {
    /// A compact form close to the notation (buckets as `index:count`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{{{{schema:{} count:{} sum:{}",
            self.schema, self.count, self.sum
        )?;
        if self.zero_threshold != 0.0 || self.zero_count != 0.0 {
            write!(
                f,
                " z_bucket:{} z_bucket_w:{}",
                self.zero_count, self.zero_threshold
            )?;
        }
        let side = |bs: &[Bucket]| {
            bs.iter()
                .map(|b| format!("{}:{}", b.index, b.count))
                .collect::<Vec<_>>()
                .join(" ")
        };
        if !self.positive.is_empty() {
            write!(f, " buckets:[{}]", side(&self.positive))?;
        }
        if !self.negative.is_empty() {
            write!(f, " n_buckets:[{}]", side(&self.negative))?;
        }
        if !self.custom_values.is_empty() {
            let cv: Vec<String> = self.custom_values.iter().map(f64::to_string).collect();
            write!(f, " custom_values:[{}]", cv.join(" "))?;
        }
        if self.counter_reset_hint != CounterResetHint::Unknown {
            write!(f, " counter_reset_hint:{:?}", self.counter_reset_hint)?;
        }
        write!(f, "}}}}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fields() {
        let p = parse("{{schema:1 sum:5 count:4 z_bucket_w:0.001 z_bucket:1 buckets:[1 2] offset:1 n_buckets:[3] counter_reset_hint:gauge}}");
        let Ok(p) = p else { panic!("{p:?}") };
        assert!(p.hint_set);
        let h = p.histogram;
        assert_eq!((h.schema, h.sum, h.count), (1, 5.0, 4.0));
        assert_eq!(h.positive.first().map(|b| b.index), Some(1));
        assert_eq!(h.negative.len(), 1);
        assert_eq!(h.counter_reset_hint, CounterResetHint::Gauge);
        assert!(parse("{{bogus:1}}").is_err());
    }
}
