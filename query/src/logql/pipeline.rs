//! Running a log pipeline over one entry: line filters, `json` and
//! `logfmt` label extraction, label filters and `line_format`.

use std::borrow::Cow;
use std::collections::BTreeMap;

use fleetwatch_model::Labels;

use super::ast::{CmpOp, LabelFilter, LineOp, LogExpr, Stage, TemplatePart};
use super::json;

/// The labels an entry carries through the pipeline (stream labels plus
/// extracted ones).
pub type LabelMap = BTreeMap<String, String>;

/// Runs `expr`'s stages over one entry. Returns the final labels and line,
/// or `None` when a filter drops it. Labels are only materialised when a
/// stage needs them.
pub fn run<'a>(
    expr: &LogExpr,
    stream: &Labels,
    line: &'a str,
) -> Option<(Option<LabelMap>, Cow<'a, str>)> {
    let mut line: Cow<'a, str> = Cow::Borrowed(line);
    let mut labels: Option<LabelMap> = None;
    let base = |labels: &mut Option<LabelMap>| {
        if labels.is_none() {
            *labels = Some(
                stream
                    .iter()
                    .map(|l| (l.name.clone(), l.value.clone()))
                    .collect(),
            );
        }
    };
    for stage in &expr.stages {
        match stage {
            Stage::LineFilter(f) => {
                let keep = match f.op {
                    LineOp::Contains => line.contains(f.value.as_str()),
                    LineOp::NotContains => !line.contains(f.value.as_str()),
                    LineOp::Regex => f.regex.as_ref().is_some_and(|r| r.is_match(&line)),
                    LineOp::NotRegex => !f.regex.as_ref().is_some_and(|r| r.is_match(&line)),
                };
                if !keep {
                    return None;
                }
            }
            Stage::Json => {
                base(&mut labels);
                let m = labels.as_mut()?;
                match json::flatten(&line) {
                    Some(pairs) => {
                        for (k, v) in pairs {
                            insert_extracted(m, stream, k, v);
                        }
                    }
                    None => {
                        m.insert("__error__".into(), "JSONParserErr".into());
                    }
                }
            }
            Stage::Logfmt => {
                base(&mut labels);
                let m = labels.as_mut()?;
                for (k, v) in logfmt(&line) {
                    insert_extracted(m, stream, k, v);
                }
            }
            Stage::LabelFilter(f) => {
                base(&mut labels);
                if !eval_filter(f, labels.as_ref()?) {
                    return None;
                }
            }
            Stage::LineFormat(parts) => {
                base(&mut labels);
                let m = labels.as_ref()?;
                let mut out = String::new();
                for p in parts {
                    match p {
                        TemplatePart::Text(t) => out.push_str(t),
                        TemplatePart::Label(n) => {
                            if n == "__line__" {
                                out.push_str(&line);
                            } else if let Some(v) = m.get(n) {
                                out.push_str(v);
                            }
                        }
                    }
                }
                line = Cow::Owned(out);
            }
        }
    }
    Some((labels, line))
}

/// Adds an extracted label, sanitising its name and renaming a clash with
/// a stream label to `<name>_extracted` (as Loki does).
fn insert_extracted(m: &mut LabelMap, stream: &Labels, k: String, v: String) {
    let mut name = sanitize(&k);
    if name.is_empty() {
        return;
    }
    if stream.get(&name).is_some() {
        name.push_str("_extracted");
    }
    m.insert(name, v);
}

fn sanitize(k: &str) -> String {
    let mut out: String = k
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.as_bytes().first().is_some_and(|b| b.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

fn eval_filter(f: &LabelFilter, m: &LabelMap) -> bool {
    match f {
        LabelFilter::String(matcher) => {
            matcher.matches(m.get(&matcher.name).map(String::as_str).unwrap_or(""))
        }
        LabelFilter::Number { name, op, value } => {
            let Some(v) = m.get(name).and_then(|v| parse_number(v)) else {
                return false;
            };
            match op {
                CmpOp::Eq => v == *value,
                CmpOp::Ne => v != *value,
                CmpOp::Gt => v > *value,
                CmpOp::Ge => v >= *value,
                CmpOp::Lt => v < *value,
                CmpOp::Le => v <= *value,
            }
        }
        LabelFilter::And(a, b) => eval_filter(a, m) && eval_filter(b, m),
        LabelFilter::Or(a, b) => eval_filter(a, m) || eval_filter(b, m),
    }
}

/// A label value as a number: a float, or a duration in seconds.
fn parse_number(v: &str) -> Option<f64> {
    v.trim().parse::<f64>().ok().or_else(|| {
        fleetwatch_model::duration::parse_duration_ms(v.trim())
            .ok()
            .map(|ms| ms as f64 / 1000.0)
    })
}

/// Parses `key=value key2="quoted value" flag` pairs.
pub fn logfmt(line: &str) -> Vec<(String, String)> {
    let b = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        let ks = i;
        while i < b.len() && b[i] != b'=' && b[i] != b' ' {
            i += 1;
        }
        let key = &line[ks..i];
        if i < b.len() && b[i] == b'=' {
            i += 1;
            if i < b.len() && b[i] == b'"' {
                i += 1;
                let mut v = String::new();
                let mut run = i;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' && i + 1 < b.len() {
                        v.push_str(&line[run..i]);
                        let c = b[i + 1];
                        v.push(match c {
                            b'n' => '\n',
                            b't' => '\t',
                            other => other as char,
                        });
                        i += 2;
                        run = i;
                    } else {
                        i += 1;
                    }
                }
                v.push_str(&line[run..i.min(b.len())]);
                i += 1;
                if !key.is_empty() {
                    out.push((key.to_string(), v));
                }
            } else {
                let vs = i;
                while i < b.len() && b[i] != b' ' {
                    i += 1;
                }
                if !key.is_empty() {
                    out.push((key.to_string(), line[vs..i].to_string()));
                }
            }
        } else if !key.is_empty() {
            out.push((key.to_string(), String::new()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logql::ast::Expr;
    use crate::logql::parse;

    fn log(q: &str) -> LogExpr {
        match parse(q).unwrap() {
            Expr::Log(l) => l,
            Expr::Metric(_) => panic!("log query expected"),
        }
    }

    #[test]
    fn filters_parsers_and_format() {
        let s = Labels::from_pairs([("app", "api"), ("level", "x")]);
        let q = log(
            r#"{app="api"} |= "GET" | logfmt | status >= 500 | line_format "{{.method}} {{.status}} {{.level_extracted}}""#,
        );
        let (_, line) = run(&q, &s, r#"method=GET status=503 level=error msg="a b""#).unwrap();
        assert_eq!(line, "GET 503 error");
        assert!(run(&q, &s, "method=GET status=200").is_none());
        assert!(run(&q, &s, "method=POST status=503").is_none());
        let q = log(
            r#"{app="api"} | json | level="error" or code=~"5.." | line_format "{{.req_path}}""#,
        );
        let (labels, line) = run(
            &q,
            &s,
            r#"{"level":"warn","code":"503","req":{"path":"/x"}}"#,
        )
        .unwrap();
        assert_eq!(line, "/x");
        assert_eq!(labels.unwrap()["level_extracted"], "warn");
        let q = log(r#"{app="api"} | json"#);
        let (labels, _) = run(&q, &s, "not json").unwrap();
        assert_eq!(labels.unwrap()["__error__"], "JSONParserErr");
        let q = log(r#"{app="api"} != "debug" |~ "time(out|d)" !~ "^skip""#);
        assert!(run(&q, &s, "request timed out").is_some());
        assert!(run(&q, &s, "debug timeout").is_none());
        assert!(run(&q, &s, "skip timeout").is_none());
    }

    #[test]
    fn logfmt_pairs() {
        assert_eq!(
            logfmt(r#"a=1 b="x \"y\"" flag c="#),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x \"y\"".into()),
                ("flag".into(), String::new()),
                ("c".into(), String::new())
            ]
        );
    }
}
