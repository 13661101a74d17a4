//! Turning a scrape body (text exposition format 0.0.4) into one sample per
//! series, with `prometheus-parse`.
//!
//! What `prometheus-parse` 0.2 does, and how this module copes:
//! - Metric names are matched with `\w+`, so names with `:` (recording
//!   rules, common on `/federate`) would be dropped. Names are rewritten with
//!   a stand-in letter for `:` before parsing and restored after.
//! - Label blocks are split naively on `,` and `=`, escapes are not
//!   unescaped and values with `}` break the line. Each sample line is
//!   therefore tokenised here first (quotes and escapes as Prometheus reads
//!   them) and re-emitted with the awkward characters of values replaced by
//!   private-use stand-ins, which are restored after parsing.
//! - A histogram (`# TYPE x histogram`) comes back as one sample named `x`
//!   holding its `le` buckets; `x_sum` and `x_count` come back untyped. A
//!   summary comes back as one sample holding its quantiles; `_sum` and
//!   `_count` untyped. Both are expanded back to the series Prometheus
//!   stores: `x_bucket{le=...}` and `x{quantile=...}`, with `le` and
//!   `quantile` formatted as Prometheus 3 normalises them (`1` -> `1.0`).
//! - Lines it cannot parse are skipped silently; this module counts them.
//! - A sample without a timestamp gets the `sample_time` handed to
//!   `Scrape::parse_at`; a sentinel time is passed so that exposed timestamps
//!   can be told apart from absent ones.

use chrono::{DateTime, Utc};
use prometheus_parse::{Scrape, Value};

/// Stands in for `:` in metric names (U+02D0, a letter, so `\w` matches it;
/// never valid in a metric name, so it cannot collide).
const COLON_STANDIN: char = '\u{02D0}';

/// Characters of label values that `prometheus-parse` mishandles, with
/// their private-use stand-ins.
const VALUE_STANDINS: [(char, char); 5] = [
    (',', '\u{E000}'),
    ('=', '\u{E001}'),
    ('}', '\u{E002}'),
    ('"', '\u{E003}'),
    ('\\', '\u{E004}'),
];

/// One series' sample as exposed by the target.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedSample {
    /// The metric name.
    pub name: String,
    /// The exposed labels (without the metric name), non-empty values only.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
    /// The exposed timestamp in milliseconds, if any.
    pub timestamp_ms: Option<i64>,
}

/// The result of parsing one scrape body.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    /// One entry per exposed series.
    pub samples: Vec<ParsedSample>,
    /// Sample lines that could not be parsed and were skipped.
    pub skipped_lines: usize,
}

/// Parses a text-format scrape body.
pub fn parse_exposition(body: &str) -> Parsed {
    let mut skipped = 0usize;
    let mut fed = 0usize;
    let mut lines: Vec<String> = Vec::new();
    for raw in body.lines() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with('#') {
            if let Some(l) = normalize_comment(line) {
                lines.push(l);
            }
            continue;
        }
        match normalize_sample_line(line) {
            Some(l) => {
                fed += 1;
                lines.push(l);
            }
            None => skipped += 1,
        }
    }
    let sentinel = DateTime::<Utc>::MIN_UTC;
    let sentinel_ms = sentinel.timestamp_millis();
    let scrape = match Scrape::parse_at(lines.into_iter().map(Ok), sentinel) {
        Ok(s) => s,
        // Only an I/O error from the line iterator can fail, and ours has none.
        Err(_) => {
            return Parsed {
                samples: Vec::new(),
                skipped_lines: skipped + fed,
            }
        }
    };
    let mut out = Vec::with_capacity(scrape.samples.len());
    let mut consumed = 0usize;
    for s in scrape.samples {
        let name = s.metric.replace(COLON_STANDIN, ":");
        let ts = s.timestamp.timestamp_millis();
        let timestamp_ms = (ts != sentinel_ms).then_some(ts);
        let mut labels: Vec<(String, String)> = s
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), decode_value(v)))
            .filter(|(_, v)| !v.is_empty())
            .collect();
        labels.sort();
        match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => {
                consumed += 1;
                out.push(ParsedSample {
                    name,
                    labels,
                    value: v,
                    timestamp_ms,
                });
            }
            Value::Histogram(buckets) => {
                consumed += buckets.len();
                let bucket_name = format!("{name}_bucket");
                for b in buckets {
                    let mut l = labels.clone();
                    l.push(("le".to_string(), format_openmetrics_float(b.less_than)));
                    out.push(ParsedSample {
                        name: bucket_name.clone(),
                        labels: l,
                        value: b.count,
                        timestamp_ms,
                    });
                }
            }
            Value::Summary(quantiles) => {
                consumed += quantiles.len();
                for q in quantiles {
                    let mut l = labels.clone();
                    l.push(("quantile".to_string(), format_openmetrics_float(q.quantile)));
                    out.push(ParsedSample {
                        name: name.clone(),
                        labels: l,
                        value: q.count,
                        timestamp_ms,
                    });
                }
            }
        }
    }
    // prometheus-parse drops e.g. histogram lines without `le` silently.
    skipped += fed.saturating_sub(consumed);
    Parsed {
        samples: out,
        skipped_lines: skipped,
    }
}

/// Rewrites `# HELP name ...` and `# TYPE name kind` with the colon
/// stand-in; drops other comments.
fn normalize_comment(line: &str) -> Option<String> {
    let rest = line.strip_prefix('#')?.trim_start();
    let (keyword, rest) = rest.split_once(char::is_whitespace)?;
    if keyword != "HELP" && keyword != "TYPE" {
        return None;
    }
    let rest = rest.trim_start();
    let (name, tail) = match rest.split_once(char::is_whitespace) {
        Some((n, t)) => (n, t.trim_start()),
        None => (rest, ""),
    };
    Some(format!(
        "# {keyword} {} {tail}",
        name.replace(':', &COLON_STANDIN.to_string())
    ))
}

/// Tokenises one sample line as Prometheus reads it and re-emits it in a
/// form `prometheus-parse` handles. `None` when the line is malformed.
fn normalize_sample_line(line: &str) -> Option<String> {
    let mut c = Cursor { s: line, pos: 0 };
    let name = c.take_while(is_metric_name_char);
    if name.is_empty() {
        return None;
    }
    let mut separated = c.skip_ws();
    let mut labels: Vec<(&str, String)> = Vec::new();
    if c.peek() == Some('{') {
        c.bump();
        loop {
            c.skip_ws();
            if c.peek() == Some('}') {
                c.bump();
                break;
            }
            let lname = c.take_while(is_label_name_char);
            if lname.is_empty() {
                return None;
            }
            c.skip_ws();
            if c.bump()? != '=' {
                return None;
            }
            c.skip_ws();
            if c.bump()? != '"' {
                return None;
            }
            let value = c.quoted_value()?;
            if labels.iter().any(|(n, _)| *n == lname) {
                return None;
            }
            labels.push((lname, value));
            c.skip_ws();
            match c.bump()? {
                ',' => continue,
                '}' => break,
                _ => return None,
            }
        }
        separated = c.skip_ws();
    }
    if !separated {
        return None;
    }
    let value = c.take_while(|ch, _| !ch.is_whitespace());
    parse_go_float(value)?;
    c.skip_ws();
    let ts = c.take_while(|ch, _| !ch.is_whitespace());
    if !ts.is_empty() && ts.parse::<i64>().is_err() {
        return None;
    }
    c.skip_ws();
    if !c.rest().is_empty() {
        return None;
    }

    let mut out = String::with_capacity(line.len() + 8);
    out.extend(
        name.chars()
            .map(|ch| if ch == ':' { COLON_STANDIN } else { ch }),
    );
    let mut first = true;
    for (n, v) in &labels {
        if v.is_empty() {
            continue;
        }
        out.push(if first { '{' } else { ',' });
        first = false;
        out.push_str(n);
        out.push_str("=\"");
        out.push_str(&encode_value(v));
        out.push('"');
    }
    if !first {
        out.push('}');
    }
    out.push(' ');
    out.push_str(value);
    if !ts.is_empty() {
        out.push(' ');
        out.push_str(ts);
    }
    Some(out)
}

struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }
    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }
    fn bump(&mut self) -> Option<char> {
        let ch = self.peek()?;
        self.pos += ch.len_utf8();
        Some(ch)
    }
    /// Skips whitespace; true when any was skipped.
    fn skip_ws(&mut self) -> bool {
        let start = self.pos;
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
        self.pos > start
    }
    fn take_while(&mut self, f: impl Fn(char, bool) -> bool) -> &'a str {
        let start = self.pos;
        while let Some(ch) = self.peek() {
            if !f(ch, self.pos == start) {
                break;
            }
            self.pos += ch.len_utf8();
        }
        &self.s[start..self.pos]
    }
    /// Reads a label value after its opening quote, up to and including the
    /// closing quote, unescaping `\\`, `\"` and `\n` as Prometheus does.
    fn quoted_value(&mut self) -> Option<String> {
        let mut v = String::new();
        loop {
            match self.bump()? {
                '"' => return Some(v),
                '\\' => match self.bump()? {
                    'n' => v.push('\n'),
                    '\\' => v.push('\\'),
                    '"' => v.push('"'),
                    other => {
                        v.push('\\');
                        v.push(other);
                    }
                },
                ch => v.push(ch),
            }
        }
    }
}

fn is_metric_name_char(ch: char, first: bool) -> bool {
    ch.is_ascii_alphabetic() || ch == '_' || ch == ':' || (!first && ch.is_ascii_digit())
}

fn is_label_name_char(ch: char, first: bool) -> bool {
    ch.is_ascii_alphabetic() || ch == '_' || (!first && ch.is_ascii_digit())
}

fn encode_value(v: &str) -> String {
    v.chars()
        .map(|ch| {
            VALUE_STANDINS
                .iter()
                .find(|(real, _)| *real == ch)
                .map_or(ch, |(_, standin)| *standin)
        })
        .collect()
}

fn decode_value(v: &str) -> String {
    v.chars()
        .map(|ch| {
            VALUE_STANDINS
                .iter()
                .find(|(_, standin)| *standin == ch)
                .map_or(ch, |(real, _)| *real)
        })
        .collect()
}

/// Parses a value as Go's `strconv.ParseFloat` (and `prometheus-parse`) do:
/// numbers, `NaN`, `Inf`, `+Inf`, `-Inf`.
fn parse_go_float(s: &str) -> Option<f64> {
    let lower = s.to_ascii_lowercase();
    if lower == "nan" {
        return Some(f64::NAN);
    }
    lower.parse::<f64>().ok()
}

/// Formats a float as Prometheus 3 writes `le` and `quantile` values
/// (Go's `strconv.FormatFloat(f, 'g', -1, 64)`, plus `.0` for integers).
pub fn format_openmetrics_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f == f64::INFINITY {
        return "+Inf".to_string();
    }
    if f == f64::NEG_INFINITY {
        return "-Inf".to_string();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.to_string();
    }
    // Shortest round-trip digits and the decimal exponent.
    let sci = format!("{f:e}");
    let (mantissa, exp) = match sci.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (sci.as_str(), 0),
    };
    let s = if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        format!("{f}")
    };
    if s.contains(['e', '.']) {
        s
    } else {
        format!("{s}.0")
    }
}

#[cfg(test)]
mod tests;
