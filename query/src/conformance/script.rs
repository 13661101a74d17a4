//! Parsing the promqltest script format: `load`, `clear` and `eval`
//! commands with their data and expectation lines.

use fleetwatch_model::duration::parse_duration_ms;
use fleetwatch_model::{Labels, METRIC_NAME, STALE_NAN};
use promql_parser::label::MatchOp;
use promql_parser::parser::Expr;

use crate::histogram::{notation, FloatHistogram};

/// A value of an expected or loaded series.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum PointValue {
    /// A float.
    Float(f64),
    /// A native histogram, and whether its counter-reset hint was given.
    Histogram(Box<FloatHistogram>, bool),
}

/// A point of an expected or loaded series: a value, or nothing.
pub(super) type Point = Option<PointValue>;

/// What an eval expects.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Expected {
    /// An error, optionally with an exact message or a regex.
    Fail {
        /// Exact message.
        msg: Option<String>,
        /// Regex the message must match.
        regex: Option<String>,
    },
    /// A string result.
    String(String),
    /// A scalar result.
    Scalar(f64),
    /// Series with points (one for instant evals, one per step for ranges).
    Series(Vec<(Labels, Vec<Point>)>),
    /// A range vector from an instant eval, points at `from + i*step`.
    RangeVector {
        /// First point time, ms.
        from: i64,
        /// Step, ms.
        step: i64,
        /// The series.
        series: Vec<(Labels, Vec<Point>)>,
    },
    /// Something this runner cannot represent (native histograms...).
    Unsupported(String),
}

/// An `expect warn`/`expect info` (or `no_warn`/`no_info`) line.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct AnnotationRule {
    /// An annotation of the kind must be present (`false`: must not).
    pub present: bool,
    /// One of them must have this exact message.
    pub msg: Option<String>,
    /// One of them must match this regex.
    pub regex: Option<String>,
}

impl AnnotationRule {
    fn parse(present: bool, arg: &str) -> Self {
        let arg = arg.trim();
        let text = |p: &str| arg.strip_prefix(p).map(|m| m.trim().to_string());
        Self {
            present,
            msg: text("msg:"),
            regex: text("regex:"),
        }
    }
}

/// One eval command.
#[derive(Debug, Clone)]
pub(super) struct EvalCmd {
    /// Line number in the script (1-based).
    pub line: usize,
    /// The query.
    pub expr: String,
    /// Instant time or range start, ms.
    pub start: i64,
    /// For range evals: end and step, ms.
    pub range: Option<(i64, i64)>,
    /// Results must come in the listed order.
    pub ordered: bool,
    /// A warning or info annotation is expected (not checked).
    pub expects_annotation: bool,
    /// What is expected of warning annotations, when anything is.
    pub warn: Option<AnnotationRule>,
    /// What is expected of info annotations, when anything is.
    pub info: Option<AnnotationRule>,
    /// An expected result line holds a native histogram (`{{...}}`).
    pub expects_histogram: bool,
    /// The expected outcome.
    pub expected: Expected,
}

/// One script command.
#[derive(Debug, Clone)]
pub(super) enum Command {
    /// Drop all data.
    Clear,
    /// Loaded data.
    Load {
        /// Float series with `(timestamp ms, value)` samples.
        series: Vec<(Labels, Vec<(i64, f64)>)>,
        /// Histogram samples per series, including the NHCB series
        /// `load_with_nhcb` derives from classic ones.
        histogram_series: Vec<(Labels, Vec<(i64, FloatHistogram)>)>,
        /// The labels of the series with native-histogram samples.
        histograms: Vec<Labels>,
    },
    /// An eval.
    Eval(EvalCmd),
    /// An eval whose header could not be understood.
    Invalid {
        /// Line number.
        line: usize,
        /// Why.
        reason: String,
    },
}

fn is_command(line: &str) -> bool {
    ["load", "clear", "eval"]
        .iter()
        .any(|c| line.starts_with(c))
}

/// Parses a script into commands.
pub(super) fn parse(text: &str) -> Vec<Command> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(raw) = lines.get(i) {
        let line = raw.trim();
        let lineno = i + 1;
        i += 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // The command's body: following non-blank lines.
        let mut body = Vec::new();
        while let Some(next) = lines.get(i) {
            if next.trim().is_empty()
                || (is_command(next) && !next.starts_with(char::is_whitespace))
            {
                break;
            }
            if !next.trim_start().starts_with('#') {
                body.push(next.trim());
            }
            i += 1;
        }
        if line == "clear" {
            out.push(Command::Clear);
        } else if let Some(rest) = line.strip_prefix("load_with_nhcb ") {
            out.push(parse_load(rest.trim(), &body, lineno, true));
        } else if let Some(rest) = line.strip_prefix("load ") {
            out.push(parse_load(rest.trim(), &body, lineno, false));
        } else if line.starts_with("eval") {
            out.push(match parse_eval(line, &body, lineno) {
                Ok(e) => Command::Eval(e),
                Err(reason) => Command::Invalid {
                    line: lineno,
                    reason,
                },
            });
        }
    }
    out
}

fn parse_load(interval: &str, body: &[&str], line: usize, nhcb: bool) -> Command {
    let Ok(step) = parse_duration_ms(interval) else {
        return Command::Invalid {
            line,
            reason: format!("bad load interval {interval}"),
        };
    };
    let mut series = Vec::new();
    let mut histogram_series = Vec::new();
    let mut histograms = Vec::new();
    for l in body {
        let Some((labels, points)) = parse_series_line(l) else {
            continue;
        };
        let mut floats = Vec::new();
        let mut hists = Vec::new();
        for (i, p) in points.into_iter().enumerate() {
            let t = i as i64 * step;
            match p {
                Some(PointValue::Float(v)) => floats.push((t, v)),
                Some(PointValue::Histogram(h, _)) => hists.push((t, *h)),
                None => {}
            }
        }
        if !hists.is_empty() {
            histograms.push(labels.clone());
            histogram_series.push((labels.clone(), hists));
        }
        series.push((labels, floats));
    }
    if nhcb {
        for (labels, hists) in super::nhcb::convert(&series) {
            histograms.push(labels.clone());
            histogram_series.push((labels, hists));
        }
    }
    Command::Load {
        series,
        histogram_series,
        histograms,
    }
}

/// Splits `metric{labels} values...` into the metric part and the rest.
fn split_metric(line: &str) -> (&str, &str) {
    let mut in_quote = false;
    let mut escaped = false;
    let mut depth = 0;
    for (i, c) in line.char_indices() {
        if in_quote {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_quote = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_quote = true,
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return line.split_at(i + 1);
                }
            }
            c if c.is_whitespace() && depth == 0 => return line.split_at(i),
            _ => {}
        }
    }
    (line, "")
}

/// Parses a series description (`name{a="b"}`, `{a="b"}`, `{}`) into labels.
pub(super) fn parse_labels(metric: &str) -> Option<Labels> {
    let metric = metric.trim();
    if metric == "{}" {
        return Some(Labels::empty());
    }
    let expr = promql_parser::parser::parse(metric).ok()?;
    let Expr::VectorSelector(vs) = expr else {
        return None;
    };
    let mut pairs: Vec<(String, String)> = Vec::new();
    if let Some(n) = vs.name {
        pairs.push((METRIC_NAME.to_string(), n));
    }
    for m in vs.matchers.matchers {
        if m.op != MatchOp::Equal {
            return None;
        }
        pairs.push((m.name, m.value));
    }
    Some(Labels::from_pairs(pairs))
}

/// Parses `metric values...`. `None` for unparsable parts.
fn parse_series_line(line: &str) -> Option<(Labels, Vec<Point>)> {
    let (metric, values) = split_metric(line);
    let labels = parse_labels(metric)?;
    let points = parse_points(values)?;
    Some((labels, points))
}

fn parse_number(s: &str) -> Option<f64> {
    if s == "stale" {
        return Some(STALE_NAN);
    }
    if let Some(hex) = s.strip_prefix("0x") {
        return i64::from_str_radix(hex, 16).ok().map(|v| v as f64);
    }
    s.parse::<f64>().ok()
}

/// Splits point notation into tokens; whitespace inside `{{...}}` does
/// not split.
fn tokens(values: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start: Option<usize> = None;
    let bytes = values.as_bytes();
    for (i, c) in values.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if c.is_whitespace() && depth == 0 {
            if let Some(s) = start.take() {
                out.extend(values.get(s..i));
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        out.extend(values.get(s..bytes.len()));
    }
    out
}

/// Expands a histogram token: `{{a}}`, `{{a}}xN` (N+1 copies) or
/// `{{a}}+{{b}}xN` (a, a+b, ... N+1 values).
fn histogram_points(tok: &str) -> Option<Vec<Point>> {
    let end = tok.find("}}")? + 2;
    let first = notation::parse(tok.get(..end)?).ok()?;
    let rest = tok.get(end..)?;
    let point = |p: &notation::Parsed| {
        Some(PointValue::Histogram(
            Box::new(p.histogram.clone()),
            p.hint_set,
        ))
    };
    if rest.is_empty() {
        return Some(vec![point(&first)]);
    }
    if let Some(times) = rest.strip_prefix('x') {
        let n: usize = times.parse().ok()?;
        return Some(vec![point(&first); n + 1]);
    }
    let inc_text = rest.strip_prefix('+')?;
    let inc_end = inc_text.find("}}")? + 2;
    let inc = notation::parse(inc_text.get(..inc_end)?).ok()?;
    let n: usize = inc_text.get(inc_end..)?.strip_prefix('x')?.parse().ok()?;
    let mut cur = first.histogram.clone();
    let mut out = vec![point(&first)];
    for _ in 0..n {
        cur.add(&inc.histogram).ok()?;
        out.push(Some(PointValue::Histogram(
            Box::new(cur.clone()),
            first.hint_set,
        )));
    }
    Some(out)
}

/// Expands promtool point notation: `1+2x3`, `5x2`, `_`, `_x3`, `stale`,
/// and histograms (`{{...}}`, `{{...}}xN`, `{{...}}+{{...}}xN`).
pub(super) fn parse_points(values: &str) -> Option<Vec<Point>> {
    let mut out = Vec::new();
    for tok in tokens(values) {
        if tok.starts_with("{{") {
            out.extend(histogram_points(tok)?);
            continue;
        }
        if tok == "_" {
            out.push(None);
            continue;
        }
        if let Some(n) = tok.strip_prefix("_x") {
            let n: usize = n.parse().ok()?;
            out.extend(std::iter::repeat_n(None, n));
            continue;
        }
        match tok.rfind('x') {
            // As in promtool, `0x10` is zero repeated, not hexadecimal.
            Some(pos)
                if !tok.starts_with("0x")
                    || tok
                        .get(2..)
                        .is_some_and(|d| d.bytes().all(|b| b.is_ascii_digit())) =>
            {
                let (head, times) = tok.split_at(pos);
                let times: u64 = times.get(1..)?.parse().ok()?;
                let bytes = head.as_bytes();
                let split = (1..bytes.len()).find(|&i| {
                    matches!(bytes.get(i), Some(b'+' | b'-'))
                        && !matches!(bytes.get(i - 1), Some(b'e' | b'E'))
                });
                let (start, inc) = match split {
                    Some(i) => (parse_number(head.get(..i)?)?, parse_number(head.get(i..)?)?),
                    None => (parse_number(head)?, 0.0),
                };
                let mut v = start;
                out.push(Some(PointValue::Float(v)));
                for _ in 0..times {
                    v += inc;
                    out.push(Some(PointValue::Float(v)));
                }
            }
            _ => out.push(Some(PointValue::Float(parse_number(tok)?))),
        }
    }
    Some(out)
}

fn unquote(s: &str) -> Option<String> {
    let s = s.trim();
    if let Some(inner) = s.strip_prefix('`').and_then(|x| x.strip_suffix('`')) {
        return Some(inner.to_string());
    }
    match promql_parser::parser::parse(s).ok()? {
        Expr::StringLiteral(l) => Some(l.val),
        _ => None,
    }
}

fn parse_eval(header: &str, body: &[&str], line: usize) -> Result<EvalCmd, String> {
    let (kind, rest) = header.split_once(char::is_whitespace).ok_or("empty eval")?;
    let mut ordered = kind == "eval_ordered";
    let mut expects_annotation = matches!(kind, "eval_warn" | "eval_info");
    let mut fail = kind == "eval_fail";
    let words: Vec<&str> = rest.split_whitespace().collect();
    let dur = |s: &str| parse_duration_ms(s).map_err(|e| e.to_string());
    let (start, range, nskip) = match words.as_slice() {
        ["instant", "at", t, ..] => (dur(t)?, None, 3),
        ["range", "from", a, "to", b, "step", s, ..] => (dur(a)?, Some((dur(b)?, dur(s)?)), 7),
        _ => return Err(format!("cannot parse eval header: {header}")),
    };
    // The expression is what follows the header words.
    let mut expr = rest.trim_start();
    for _ in 0..nskip {
        expr = expr
            .split_once(char::is_whitespace)
            .map(|(_, r)| r.trim_start())
            .unwrap_or("");
    }
    let mut msg = None;
    let mut regex = None;
    let mut string = None;
    let mut range_vector = None;
    let mut series = Vec::new();
    let mut scalar = None;
    let mut unsupported = None;
    let mut expects_histogram = false;
    let mut warn = (kind == "eval_warn").then(|| AnnotationRule::parse(true, ""));
    let mut info = (kind == "eval_info").then(|| AnnotationRule::parse(true, ""));
    for b in body {
        if !b.starts_with("expect ") && b.contains("{{") {
            expects_histogram = true;
        }
        if let Some(e) = b.strip_prefix("expect ") {
            let e = e.trim();
            let (word, arg) = e.split_once(char::is_whitespace).unwrap_or((e, ""));
            match word {
                "fail" => {
                    fail = true;
                    if let Some(m) = arg.trim().strip_prefix("msg:") {
                        msg = Some(m.trim().to_string());
                    } else if let Some(r) = arg.trim().strip_prefix("regex:") {
                        regex = Some(r.trim().to_string());
                    }
                }
                "ordered" => ordered = true,
                "warn" => {
                    expects_annotation = true;
                    warn = Some(AnnotationRule::parse(true, arg));
                }
                "info" => {
                    expects_annotation = true;
                    info = Some(AnnotationRule::parse(true, arg));
                }
                "no_warn" => warn = Some(AnnotationRule::parse(false, "")),
                "no_info" => info = Some(AnnotationRule::parse(false, "")),
                "string" => string = unquote(arg),
                "range" => {
                    let w: Vec<&str> = arg.split_whitespace().collect();
                    match w.as_slice() {
                        ["vector", "from", a, "to", _, "step", s] => {
                            range_vector = Some((dur(a)?, dur(s)?));
                        }
                        _ => return Err(format!("cannot parse {b}")),
                    }
                }
                _ => unsupported = Some(format!("unknown expectation {b}")),
            }
            continue;
        }
        if let Some(m) = b.strip_prefix("expected_fail_message ") {
            msg = Some(m.trim().to_string());
            continue;
        }
        if let Some(r) = b.strip_prefix("expected_fail_regexp ") {
            regex = Some(r.trim().to_string());
            continue;
        }
        if let Some(v) = parse_number(b) {
            scalar = Some(v);
            continue;
        }
        match parse_series_line(b) {
            Some(s) => series.push(s),
            None => unsupported = Some(format!("unsupported expected line {b}")),
        }
    }
    let expected = if fail {
        Expected::Fail { msg, regex }
    } else if let Some(u) = unsupported {
        Expected::Unsupported(u)
    } else if let Some(s) = string {
        Expected::String(s)
    } else if let Some((from, step)) = range_vector {
        Expected::RangeVector { from, step, series }
    } else if let (Some(v), true) = (scalar, series.is_empty()) {
        Expected::Scalar(v)
    } else {
        Expected::Series(series)
    };
    Ok(EvalCmd {
        line,
        expr: expr.to_string(),
        start,
        range,
        ordered,
        expects_annotation,
        warn,
        info,
        expects_histogram,
        expected,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_points() {
        assert_eq!(
            parse_points("1+2x3 _ _x2 5x1 -1-1x1 stale").map(|v| v.len()),
            Some(4 + 1 + 2 + 2 + 2 + 1)
        );
        let f = |v: f64| Some(PointValue::Float(v));
        assert_eq!(parse_points("0+10x2"), Some(vec![f(0.0), f(10.0), f(20.0)]));
        assert_eq!(
            parse_points("1e3 -Inf"),
            Some(vec![f(1000.0), f(f64::NEG_INFINITY)])
        );
        assert_eq!(
            parse_points("{{count:1}} 2 {{sum:1 count:1}}+{{count:2}}x2").map(|v| v.len()),
            Some(5)
        );
        assert_eq!(
            parse_points("0x2 7"),
            Some(vec![f(0.0), f(0.0), f(0.0), f(7.0)])
        );
    }

    #[test]
    fn parses_commands() {
        let cmds = parse(
            "load 10s\n  m{a=\"x y\"} 1 2\n\neval instant at 10s m\n  m{a=\"x y\"} 2\n\neval range from 0 to 10s step 10s m\n  expect ordered\n  m{a=\"x y\"} 1 2\n",
        );
        assert_eq!(cmds.len(), 3);
        match &cmds[2] {
            Command::Eval(e) => {
                assert_eq!(e.expr, "m");
                assert_eq!(e.range, Some((10_000, 10_000)));
                assert!(e.ordered);
            }
            other => panic!("{other:?}"),
        }
    }
}
