//! The Prometheus text exposition format (0.0.4) writer, and float
//! formatting as Prometheus prints values.

use std::fmt::Write;

use crate::labels::escape_label_value;
use crate::{Labels, METRIC_NAME};

/// Content type of the text exposition format.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Formats a float as Prometheus does in JSON and text: `+Inf`, `-Inf`,
/// `NaN`, otherwise the shortest decimal that round-trips.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        format!("{v}")
    }
}

/// Appends one sample line, `name{labels} value [timestamp_ms]`, to `out`.
pub fn write_sample_line(out: &mut String, labels: &Labels, value: f64, timestamp_ms: Option<i64>) {
    out.push_str(labels.metric_name().unwrap_or(""));
    let mut first = true;
    for l in labels.iter().filter(|l| l.name != METRIC_NAME) {
        out.push(if first { '{' } else { ',' });
        first = false;
        let _ = write!(out, "{}=\"{}\"", l.name, escape_label_value(&l.value));
    }
    if !first {
        out.push('}');
    }
    out.push(' ');
    out.push_str(&format_value(value));
    if let Some(ts) = timestamp_ms {
        let _ = write!(out, " {ts}");
    }
    out.push('\n');
}

/// Appends a `# TYPE name kind` line.
pub fn write_type_line(out: &mut String, name: &str, kind: &str) {
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Appends a `# HELP name text` line (escaping backslash and newline).
pub fn write_help_line(out: &mut String, name: &str, help: &str) {
    let help = help.replace('\\', "\\\\").replace('\n', "\\n");
    let _ = writeln!(out, "# HELP {name} {help}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let mut s = String::new();
        write_sample_line(
            &mut s,
            &Labels::from_pairs([("__name__", "up"), ("job", "a\nb")]),
            1.0,
            Some(5),
        );
        write_sample_line(
            &mut s,
            &Labels::from_pairs([("__name__", "x")]),
            f64::INFINITY,
            None,
        );
        assert_eq!(s, "up{job=\"a\\nb\"} 1 5\nx +Inf\n");
        assert_eq!(format_value(0.1), "0.1");
        assert_eq!(format_value(1e21), "1000000000000000000000");
    }
}
