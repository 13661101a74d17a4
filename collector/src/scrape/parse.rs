//! A hand-written parser for scrape bodies: the Prometheus text format
//! 0.0.4 and OpenMetrics 1.0 text.
//!
//! It replaced `prometheus-parse` (and the regex it runs per line) because
//! a profile of the collector showed parsing and the per-line `String`s it
//! allocated among the top costs of a scrape. The parser walks the body in
//! place: [`Parser`] yields one [`Entry`] per sample line with the series'
//! raw text (metric name and label block, a slice of the body), its value
//! and timestamp, without allocating. The labels of a series are only
//! parsed ([`parse_series`]) when the scrape cache has not seen its raw
//! text before.
//!
//! Any malformed line is an error for the whole body, as in Prometheus: a
//! scrape is taken whole or not at all.

use std::fmt;

use thiserror::Error;

/// The formats a target may answer in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4 (`text/plain`).
    Text,
    /// OpenMetrics 1.0 text (`application/openmetrics-text`).
    OpenMetrics,
}

impl Format {
    /// The format of a response with this `Content-Type` (none, or anything
    /// other than OpenMetrics, is read as the text format, as Prometheus
    /// does).
    pub fn from_content_type(content_type: Option<&str>) -> Self {
        match content_type {
            Some(ct)
                if ct.split(';').next().is_some_and(|m| {
                    m.trim()
                        .eq_ignore_ascii_case("application/openmetrics-text")
                }) =>
            {
                Self::OpenMetrics
            }
            _ => Self::Text,
        }
    }
}

/// The type a `# TYPE` line gives a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// No `# TYPE` line, `untyped` or `unknown`.
    Unknown,
    /// `counter`.
    Counter,
    /// `gauge`.
    Gauge,
    /// `histogram`.
    Histogram,
    /// `gaugehistogram` (OpenMetrics).
    GaugeHistogram,
    /// `summary`.
    Summary,
    /// `info` (OpenMetrics).
    Info,
    /// `stateset` (OpenMetrics).
    StateSet,
}

impl MetricKind {
    fn parse(s: &str, format: Format) -> Option<Self> {
        Some(match (s, format) {
            ("counter", _) => Self::Counter,
            ("gauge", _) => Self::Gauge,
            ("histogram", _) => Self::Histogram,
            ("summary", _) => Self::Summary,
            ("untyped", Format::Text) | ("unknown", Format::OpenMetrics) => Self::Unknown,
            ("gaugehistogram", Format::OpenMetrics) => Self::GaugeHistogram,
            ("info", Format::OpenMetrics) => Self::Info,
            ("stateset", Format::OpenMetrics) => Self::StateSet,
            _ => return None,
        })
    }

    /// Whether OpenMetrics gives this kind `_created` series.
    fn has_created(self) -> bool {
        matches!(
            self,
            Self::Counter | Self::Histogram | Self::GaugeHistogram | Self::Summary
        )
    }
}

/// A malformed scrape body: the line (1-based) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("line {line}: {reason}")]
pub struct ParseError {
    /// The line number, from 1 (0 for the body as a whole).
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

/// One sample line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Entry<'a> {
    /// The series as written: metric name and label block, if any.
    pub series: &'a str,
    /// The type of the family the line belongs to (the last `# TYPE`).
    pub kind: MetricKind,
    /// The value.
    pub value: f64,
    /// The exposed timestamp in milliseconds, if any.
    pub timestamp_ms: Option<i64>,
}

/// The sample lines of a body, in order; stops at the first error.
#[derive(Debug)]
pub struct Parser<'a> {
    rest: &'a str,
    line: usize,
    format: Format,
    family: &'a str,
    kind: MetricKind,
    eof: bool,
    failed: bool,
}

impl<'a> Parser<'a> {
    /// A parser of `body` in `format`.
    pub fn new(body: &'a str, format: Format) -> Self {
        Self {
            rest: body,
            line: 0,
            format,
            family: "",
            kind: MetricKind::Unknown,
            eof: false,
            failed: false,
        }
    }

    /// The number of the line read last (from 1).
    pub fn line(&self) -> usize {
        self.line
    }

    fn err(&mut self, reason: impl fmt::Display) -> Option<Result<Entry<'a>, ParseError>> {
        self.failed = true;
        Some(Err(ParseError {
            line: self.line,
            reason: reason.to_string(),
        }))
    }

    /// Reads a `#` line: `HELP`, `TYPE`, `UNIT` or `EOF`. `Err` with the
    /// reason when it is malformed.
    fn comment(&mut self, line: &'a str) -> Result<(), String> {
        let om = self.format == Format::OpenMetrics;
        let body = &line[1..];
        let rest = if om {
            match body.strip_prefix(' ') {
                Some(r) => r,
                None => return Err("invalid comment (OpenMetrics needs `# ` and a keyword)".into()),
            }
        } else {
            body.trim_start_matches([' ', '\t'])
        };
        let (keyword, args) = split_token(rest);
        match keyword {
            "EOF" if om => {
                if !args.is_empty() {
                    return Err("unexpected text after # EOF".into());
                }
                self.eof = true;
                Ok(())
            }
            "TYPE" => {
                let (name, kind) = split_token(args);
                let kind = kind.trim_end_matches([' ', '\t']);
                check_metric_name(name)?;
                match MetricKind::parse(kind, self.format) {
                    Some(k) => {
                        self.family = name;
                        self.kind = k;
                        Ok(())
                    }
                    None => Err(format!("invalid metric type {kind:?}")),
                }
            }
            "HELP" | "UNIT" if keyword == "HELP" || om => {
                let (name, _) = split_token(args);
                check_metric_name(name)
            }
            _ if om => Err(format!("invalid comment keyword {keyword:?}")),
            // The text format ignores any other comment.
            _ => Ok(()),
        }
    }

    /// Reads one sample line; `Ok(None)` for a line to leave out (an
    /// OpenMetrics `_created` series).
    fn sample(&self, line: &'a str) -> Result<Option<Entry<'a>>, String> {
        let bytes = line.as_bytes();
        let (name, name_end) = metric_name(line)?;
        let mut pos = name_end;
        if self.format == Format::Text {
            pos = skip_blank(bytes, pos);
        }
        if bytes.get(pos) == Some(&b'{') {
            pos = label_block_end(bytes, pos).ok_or("unterminated label set")?;
        } else {
            pos = name_end;
        }
        let series = &line[..pos];
        let rest = &line[pos..];
        let rest = match rest.strip_prefix([' ', '\t']) {
            Some(r) => r,
            None if rest.is_empty() => return Err("no value".into()),
            None => return Err(format!("unexpected character {:?}", first_char(rest))),
        };
        let rest = rest.trim_start_matches([' ', '\t']);
        let (value_s, rest) = split_token(rest);
        let value = parse_value(value_s).ok_or_else(|| format!("invalid value {value_s:?}"))?;
        let (timestamp_ms, rest) = match self.format {
            Format::Text => {
                let (ts, rest) = split_token(rest);
                let ts = if ts.is_empty() {
                    None
                } else {
                    Some(
                        ts.parse::<i64>()
                            .map_err(|_| format!("invalid timestamp {ts:?}"))?,
                    )
                };
                (ts, rest)
            }
            Format::OpenMetrics => {
                if rest.starts_with('#') {
                    (None, "")
                } else {
                    let (ts, rest) = split_token(rest);
                    let ts = if ts.is_empty() {
                        None
                    } else {
                        Some(parse_om_timestamp(ts)?)
                    };
                    // An exemplar (` # {...} value [ts]`) is ignored.
                    let rest = if rest.starts_with('#') { "" } else { rest };
                    (ts, rest)
                }
            }
        };
        if !rest.trim_end_matches([' ', '\t']).is_empty() {
            return Err(format!("unexpected text {:?} after the value", rest));
        }
        if self.format == Format::OpenMetrics
            && self.kind.has_created()
            && name.strip_suffix("_created") == Some(self.family)
        {
            return Ok(None);
        }
        Ok(Some(Entry {
            series,
            kind: self.kind,
            value,
            timestamp_ms,
        }))
    }
}

impl<'a> Iterator for Parser<'a> {
    type Item = Result<Entry<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.failed {
            if self.rest.is_empty() {
                if self.format == Format::OpenMetrics && !self.eof {
                    self.line = 0;
                    return self.err("OpenMetrics body without # EOF");
                }
                return None;
            }
            let (raw, rest) = match self.rest.find('\n') {
                Some(i) => (&self.rest[..i], &self.rest[i + 1..]),
                None => (self.rest, ""),
            };
            self.rest = rest;
            self.line += 1;
            if self.eof {
                return self.err("data after # EOF");
            }
            let line = match self.format {
                Format::Text => raw.trim_matches([' ', '\t', '\r']),
                Format::OpenMetrics => raw,
            };
            if line.is_empty() {
                if self.format == Format::OpenMetrics {
                    return self.err("empty line");
                }
                continue;
            }
            if line.starts_with('#') {
                if let Err(reason) = self.comment(line) {
                    return self.err(reason);
                }
                continue;
            }
            match self.sample(line) {
                Ok(Some(e)) => return Some(Ok(e)),
                Ok(None) => continue,
                Err(reason) => return self.err(reason),
            }
        }
        None
    }
}

/// A series' metric name and its labels (name, unescaped value), sorted.
pub type SeriesLabels<'a> = (&'a str, Vec<(String, String)>);

/// The metric name and labels of a series' raw text (from
/// [`Entry::series`]): label values unescaped, names checked, duplicates
/// refused. `le` of histogram buckets and `quantile` of summaries are
/// normalised as Prometheus 3 does (`1` -> `1.0`).
pub fn parse_series(series: &str, kind: MetricKind) -> Result<SeriesLabels<'_>, String> {
    let bytes = series.as_bytes();
    let (name, name_end) = metric_name(series)?;
    let mut labels: Vec<(String, String)> = Vec::new();
    let mut pos = skip_blank(bytes, name_end);
    if pos >= bytes.len() {
        return Ok((name, labels));
    }
    if bytes[pos] != b'{' {
        return Err(format!(
            "unexpected character {:?}",
            first_char(&series[pos..])
        ));
    }
    pos += 1;
    loop {
        pos = skip_blank(bytes, pos);
        match bytes.get(pos) {
            Some(b'}') => break,
            None => return Err("unterminated label set".into()),
            _ => {}
        }
        let lname_end = bytes[pos..]
            .iter()
            .position(|&b| !is_label_name_byte(b))
            .map_or(bytes.len(), |i| pos + i);
        let lname = &series[pos..lname_end];
        if lname.is_empty() || lname.as_bytes()[0].is_ascii_digit() {
            return Err(format!(
                "invalid label name at {:?}",
                first_char(&series[pos..])
            ));
        }
        pos = skip_blank(bytes, lname_end);
        if bytes.get(pos) != Some(&b'=') {
            return Err(format!("expected `=` after label name {lname:?}"));
        }
        pos = skip_blank(bytes, pos + 1);
        if bytes.get(pos) != Some(&b'"') {
            return Err(format!("expected a quoted value for label {lname:?}"));
        }
        let (value, after) = unquote(series, pos + 1)
            .ok_or_else(|| format!("unterminated value of label {lname:?}"))?;
        if labels.iter().any(|(n, _)| n == lname) {
            return Err(format!("label name {lname:?} is not unique"));
        }
        let value = normalize_value(kind, name, lname, value);
        labels.push((lname.to_string(), value));
        pos = skip_blank(bytes, after);
        match bytes.get(pos) {
            Some(b',') => pos += 1,
            Some(b'}') => break,
            _ => return Err("expected `,` or `}` in the label set".into()),
        }
    }
    if pos + 1 != bytes.len() {
        return Err("unexpected text after the label set".into());
    }
    labels.sort();
    Ok((name, labels))
}

/// One fully parsed sample (for tests and tools; the scraper uses
/// [`Parser`] and [`parse_series`] through its cache).
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedSample {
    /// The metric name.
    pub name: String,
    /// The exposed labels, sorted, with empty values.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
    /// The exposed timestamp in milliseconds, if any.
    pub timestamp_ms: Option<i64>,
}

/// A whole parsed body.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    /// One entry per sample line.
    pub samples: Vec<ParsedSample>,
}

/// Parses a whole body in `format`.
pub fn parse_exposition(body: &str, format: Format) -> Result<Parsed, ParseError> {
    let mut parser = Parser::new(body, format);
    let mut samples = Vec::new();
    while let Some(e) = parser.next() {
        let e = e?;
        let (name, labels) = parse_series(e.series, e.kind).map_err(|reason| ParseError {
            line: parser.line,
            reason,
        })?;
        samples.push(ParsedSample {
            name: name.to_string(),
            labels: labels.into_iter().filter(|(_, v)| !v.is_empty()).collect(),
            value: e.value,
            timestamp_ms: e.timestamp_ms,
        });
    }
    Ok(Parsed { samples })
}

fn normalize_value(kind: MetricKind, name: &str, label: &str, value: String) -> String {
    let applies = match label {
        "le" => {
            matches!(kind, MetricKind::Histogram | MetricKind::GaugeHistogram)
                && name.ends_with("_bucket")
        }
        "quantile" => kind == MetricKind::Summary,
        _ => false,
    };
    match applies.then(|| parse_value(&value)).flatten() {
        Some(f) => format_openmetrics_float(f),
        None => value,
    }
}

/// Reads a quoted label value starting after its opening quote at `start`:
/// the unescaped value (`\\`, `\"`, `\n`; other escapes stay as written)
/// and the position after the closing quote.
fn unquote(s: &str, start: usize) -> Option<(String, usize)> {
    let bytes = s.as_bytes();
    let mut out = String::new();
    let mut run = start;
    let mut i = start;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                out.push_str(&s[run..i]);
                return Some((out, i + 1));
            }
            b'\\' => {
                out.push_str(&s[run..i]);
                match bytes.get(i + 1)? {
                    b'n' => out.push('\n'),
                    b'\\' => out.push('\\'),
                    b'"' => out.push('"'),
                    _ => out.push('\\'),
                }
                // The escaped byte is consumed unless it was kept as written.
                i += if matches!(bytes[i + 1], b'n' | b'\\' | b'"') {
                    2
                } else {
                    1
                };
                run = i;
            }
            _ => i += 1,
        }
    }
    None
}

/// The position after the `}` closing the label block that opens at
/// `open`, skipping quoted values; `None` when it is not closed.
fn label_block_end(bytes: &[u8], open: usize) -> Option<usize> {
    let mut in_quotes = false;
    let mut i = open + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_quotes => i += 1,
            b'"' => in_quotes = !in_quotes,
            b'}' if !in_quotes => return Some(i + 1),
            _ => {}
        }
        i += 1;
    }
    None
}

fn skip_blank(bytes: &[u8], mut pos: usize) -> usize {
    while matches!(bytes.get(pos), Some(b' ' | b'\t')) {
        pos += 1;
    }
    pos
}

/// The first token of `s` (up to a space or tab) and the rest after the
/// blanks that follow it.
fn split_token(s: &str) -> (&str, &str) {
    match s.find([' ', '\t']) {
        Some(i) => (&s[..i], s[i..].trim_start_matches([' ', '\t'])),
        None => (s, ""),
    }
}

fn first_char(s: &str) -> char {
    s.chars().next().unwrap_or(' ')
}

/// The metric name a series or sample line starts with, checked, and
/// where it ends.
fn metric_name(s: &str) -> Result<(&str, usize), String> {
    let end = s
        .bytes()
        .position(|b| !is_metric_name_byte(b))
        .unwrap_or(s.len());
    check_metric_name(&s[..end])?;
    Ok((&s[..end], end))
}

fn check_metric_name(name: &str) -> Result<(), String> {
    match name.as_bytes().first() {
        None => Err("missing metric name".into()),
        Some(b) if b.is_ascii_digit() => Err(format!("invalid metric name {name:?}")),
        Some(_) if name.bytes().all(is_metric_name_byte) => Ok(()),
        Some(_) => Err(format!("invalid metric name {name:?}")),
    }
}

fn is_metric_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b':'
}

fn is_label_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Parses a value as Go's `strconv.ParseFloat` does for exposition values:
/// numbers, `NaN`, `Inf`, `+Inf`, `-Inf` (any case).
fn parse_value(s: &str) -> Option<f64> {
    if s.is_empty() || s.len() > 64 {
        return None;
    }
    s.parse::<f64>().ok()
}

/// An OpenMetrics timestamp (seconds, with an optional fraction) in
/// milliseconds.
fn parse_om_timestamp(s: &str) -> Result<i64, String> {
    let secs = parse_value(s)
        .filter(|f| f.is_finite())
        .ok_or_else(|| format!("invalid timestamp {s:?}"))?;
    let ms = (secs * 1000.0).round();
    if ms.abs() >= 9.2e18 {
        return Err(format!("timestamp {s:?} out of range"));
    }
    Ok(ms as i64)
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
