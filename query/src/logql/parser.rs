//! A recursive-descent parser for the LogQL subset in [`super::ast`].
//! Errors read like Loki's: `parse error at line 1, col 7: syntax error: ...`.

use fleetwatch_model::duration::parse_duration_ms;
use fleetwatch_model::{is_valid_label_name, MatchOp, Matcher};
use regex::Regex;

use super::ast::*;
use super::LogqlError;

/// Parses a LogQL query.
pub fn parse(input: &str) -> Result<Expr, LogqlError> {
    let mut p = Parser { s: input, pos: 0 };
    let e = p.expr()?;
    p.ws();
    if p.pos < p.s.len() {
        return Err(p.err(&format!("unexpected {:?}", p.rest_token())));
    }
    if let Expr::Log(l) = &e {
        check_selector(l)?;
    }
    Ok(e)
}

fn check_selector(l: &LogExpr) -> Result<(), LogqlError> {
    if l.matchers.iter().all(|m| m.matches_empty()) {
        return Err(LogqlError::Parse {
            message: "queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~\".*\" does not meet this requirement, but app=~\".+\" will".into(),
        });
    }
    Ok(())
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
}

const AGG_OPS: &[(&str, AggOp)] = &[
    ("sum", AggOp::Sum),
    ("count", AggOp::Count),
    ("avg", AggOp::Avg),
    ("max", AggOp::Max),
    ("min", AggOp::Min),
    ("topk", AggOp::Topk),
    ("bottomk", AggOp::Bottomk),
];

const RANGE_FUNCS: &[(&str, RangeFunc)] = &[
    ("count_over_time", RangeFunc::CountOverTime),
    ("rate", RangeFunc::Rate),
    ("bytes_over_time", RangeFunc::BytesOverTime),
    ("bytes_rate", RangeFunc::BytesRate),
];

impl<'a> Parser<'a> {
    fn err(&self, msg: &str) -> LogqlError {
        let before = &self.s[..self.pos.min(self.s.len())];
        let line = before.matches('\n').count() + 1;
        let col = before
            .rfind('\n')
            .map(|i| self.pos - i)
            .unwrap_or(self.pos + 1);
        LogqlError::Parse {
            message: format!("parse error at line {line}, col {col}: syntax error: {msg}"),
        }
    }

    fn rest_token(&self) -> String {
        self.s[self.pos..].chars().take(12).collect()
    }

    fn ws(&mut self) {
        while let Some(c) = self.s[self.pos..].chars().next() {
            if c.is_whitespace() {
                self.pos += c.len_utf8();
            } else if c == '#' {
                // Comment to end of line.
                let n = self.s[self.pos..]
                    .find('\n')
                    .unwrap_or(self.s.len() - self.pos);
                self.pos += n;
            } else {
                break;
            }
        }
    }

    fn peek_str(&mut self, t: &str) -> bool {
        self.ws();
        self.s[self.pos..].starts_with(t)
    }

    fn eat(&mut self, t: &str) -> bool {
        if self.peek_str(t) {
            self.pos += t.len();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, t: &str) -> Result<(), LogqlError> {
        if self.eat(t) {
            Ok(())
        } else {
            Err(self.err(&format!("expected {t:?}, found {:?}", self.rest_token())))
        }
    }

    fn ident(&mut self) -> Option<String> {
        self.ws();
        let rest = &self.s[self.pos..];
        let n = rest
            .char_indices()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_'))
            .map(|(i, _)| i)
            .unwrap_or(rest.len());
        if n == 0 || rest.as_bytes()[0].is_ascii_digit() {
            return None;
        }
        self.pos += n;
        Some(rest[..n].to_string())
    }

    /// Peeks an identifier without consuming it.
    fn peek_ident(&mut self) -> Option<String> {
        let save = self.pos;
        let id = self.ident();
        self.pos = save;
        id
    }

    fn string(&mut self) -> Result<String, LogqlError> {
        self.ws();
        let rest = &self.s[self.pos..];
        if let Some(r) = rest.strip_prefix('`') {
            let end = r
                .find('`')
                .ok_or_else(|| self.err("unterminated raw string"))?;
            self.pos += end + 2;
            return Ok(r[..end].to_string());
        }
        if !rest.starts_with('"') {
            return Err(self.err(&format!("expected a string, found {:?}", self.rest_token())));
        }
        let bytes = rest.as_bytes();
        let mut out = String::new();
        let mut i = 1;
        let mut run = 1;
        while i < bytes.len() {
            match bytes[i] {
                b'"' => {
                    out.push_str(&rest[run..i]);
                    self.pos += i + 1;
                    return Ok(out);
                }
                b'\\' => {
                    out.push_str(&rest[run..i]);
                    let c = bytes
                        .get(i + 1)
                        .copied()
                        .ok_or_else(|| self.err("unterminated string"))?;
                    match c {
                        b'n' => out.push('\n'),
                        b't' => out.push('\t'),
                        b'r' => out.push('\r'),
                        b'\\' => out.push('\\'),
                        b'"' => out.push('"'),
                        // Keep other escapes (regex classes like \d, \.) as written.
                        other => {
                            out.push('\\');
                            out.push(other as char);
                        }
                    }
                    i += 2;
                    run = i;
                }
                _ => i += 1,
            }
        }
        Err(self.err("unterminated string"))
    }

    fn number(&mut self) -> Option<f64> {
        self.ws();
        let rest = &self.s[self.pos..];
        let n = rest
            .char_indices()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '.' || *c == '-' || *c == '+'))
            .map(|(i, _)| i)
            .unwrap_or(rest.len());
        let tok = &rest[..n];
        let v = tok
            .parse::<f64>()
            .ok()
            .or_else(|| parse_duration_ms(tok).ok().map(|ms| ms as f64 / 1000.0))?;
        self.pos += n;
        Some(v)
    }

    fn expr(&mut self) -> Result<Expr, LogqlError> {
        if self.peek_str("{") {
            return Ok(Expr::Log(self.log_expr()?));
        }
        Ok(Expr::Metric(self.metric()?))
    }

    fn metric(&mut self) -> Result<MetricExpr, LogqlError> {
        if self.eat("(") {
            let m = self.metric()?;
            self.expect(")")?;
            return Ok(m);
        }
        let name = self
            .ident()
            .ok_or_else(|| self.err(&format!("unexpected {:?}", self.rest_token())))?;
        if let Some((_, f)) = RANGE_FUNCS.iter().find(|(n, _)| *n == name) {
            self.expect("(")?;
            let log = self.log_expr()?;
            check_selector(&log)?;
            self.expect("[")?;
            let range_ns = self.duration_until(']')?;
            self.expect("]")?;
            let mut offset_ns = 0;
            if self.peek_ident().as_deref() == Some("offset") {
                self.ident();
                offset_ns = self.duration_word()?;
            }
            self.expect(")")?;
            return Ok(MetricExpr::Range {
                func: *f,
                log,
                range_ns,
                offset_ns,
            });
        }
        if let Some((_, op)) = AGG_OPS.iter().find(|(n, _)| *n == name) {
            let mut grouping = self.grouping()?;
            self.expect("(")?;
            let mut param = None;
            if matches!(op, AggOp::Topk | AggOp::Bottomk) {
                let k = self
                    .number()
                    .ok_or_else(|| self.err("expected the k parameter of topk/bottomk"))?;
                if k < 1.0 || k.fract() != 0.0 {
                    return Err(self.err("the k parameter must be a positive integer"));
                }
                param = Some(k);
                self.expect(",")?;
            }
            let inner = self.metric()?;
            self.expect(")")?;
            if grouping.is_none() {
                grouping = self.grouping()?;
            }
            return Ok(MetricExpr::Aggregate {
                op: *op,
                param,
                grouping,
                inner: Box::new(inner),
            });
        }
        Err(self.err(&format!(
            "unexpected {name:?}: supported are count_over_time, rate, bytes_over_time, bytes_rate and sum, count, avg, max, min, topk, bottomk"
        )))
    }

    fn grouping(&mut self) -> Result<Option<Grouping>, LogqlError> {
        let without = match self.peek_ident().as_deref() {
            Some("by") => false,
            Some("without") => true,
            _ => return Ok(None),
        };
        self.ident();
        self.expect("(")?;
        let mut labels = Vec::new();
        if !self.eat(")") {
            loop {
                let l = self
                    .ident()
                    .ok_or_else(|| self.err("expected a label name"))?;
                labels.push(l);
                if self.eat(")") {
                    break;
                }
                self.expect(",")?;
            }
        }
        Ok(Some(Grouping { without, labels }))
    }

    fn duration_until(&mut self, end: char) -> Result<i64, LogqlError> {
        self.ws();
        let rest = &self.s[self.pos..];
        let n = rest
            .find(end)
            .ok_or_else(|| self.err(&format!("expected {end:?}")))?;
        let tok = rest[..n].trim();
        let ms =
            parse_duration_ms(tok).map_err(|_| self.err(&format!("invalid duration {tok:?}")))?;
        if ms <= 0 {
            return Err(self.err("range must be positive"));
        }
        self.pos += n;
        Ok(ms.saturating_mul(1_000_000))
    }

    fn duration_word(&mut self) -> Result<i64, LogqlError> {
        self.ws();
        let rest = &self.s[self.pos..];
        let n = rest
            .char_indices()
            .find(|(_, c)| !c.is_ascii_alphanumeric())
            .map(|(i, _)| i)
            .unwrap_or(rest.len());
        let tok = &rest[..n];
        let ms =
            parse_duration_ms(tok).map_err(|_| self.err(&format!("invalid duration {tok:?}")))?;
        self.pos += n;
        Ok(ms.saturating_mul(1_000_000))
    }

    fn log_expr(&mut self) -> Result<LogExpr, LogqlError> {
        if self.eat("(") {
            let l = self.log_expr()?;
            self.expect(")")?;
            return Ok(l);
        }
        let matchers = self.selector()?;
        let mut stages = Vec::new();
        loop {
            self.ws();
            let rest = &self.s[self.pos..];
            let op = if rest.starts_with("|=") {
                Some(LineOp::Contains)
            } else if rest.starts_with("!=") {
                Some(LineOp::NotContains)
            } else if rest.starts_with("|~") {
                Some(LineOp::Regex)
            } else if rest.starts_with("!~") {
                Some(LineOp::NotRegex)
            } else {
                None
            };
            if let Some(op) = op {
                self.pos += 2;
                stages.push(Stage::LineFilter(self.line_filter(op)?));
                // `or` chains of line filters are not supported: say so.
                continue;
            }
            if !rest.starts_with('|') {
                break;
            }
            self.pos += 1;
            stages.push(self.stage()?);
        }
        Ok(LogExpr { matchers, stages })
    }

    fn line_filter(&mut self, op: LineOp) -> Result<LineFilter, LogqlError> {
        let value = self.string()?;
        let regex = match op {
            LineOp::Regex | LineOp::NotRegex => Some(
                Regex::new(&value)
                    .map_err(|e| self.err(&format!("invalid regex {value:?}: {e}")))?,
            ),
            _ => None,
        };
        Ok(LineFilter { op, value, regex })
    }

    fn stage(&mut self) -> Result<Stage, LogqlError> {
        let save = self.pos;
        let Some(id) = self.ident() else {
            return Err(self.err(&format!("unexpected {:?} after '|'", self.rest_token())));
        };
        match id.as_str() {
            "json" => return Ok(Stage::Json),
            "logfmt" => return Ok(Stage::Logfmt),
            "line_format" => {
                let t = self.string()?;
                return Ok(Stage::LineFormat(
                    parse_template(&t).map_err(|m| self.err(&m))?,
                ));
            }
            "unpack" | "pattern" | "regexp" | "label_format" | "drop" | "keep" | "unwrap"
            | "decolorize" => {
                return Err(self.err(&format!("the {id} stage is not supported by fleetwatch")))
            }
            _ => {}
        }
        self.pos = save;
        Ok(Stage::LabelFilter(self.label_filter_or()?))
    }

    fn label_filter_or(&mut self) -> Result<LabelFilter, LogqlError> {
        let mut left = self.label_filter_and()?;
        while self.peek_ident().as_deref() == Some("or") {
            self.ident();
            let right = self.label_filter_and()?;
            left = LabelFilter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn label_filter_and(&mut self) -> Result<LabelFilter, LogqlError> {
        let mut left = self.label_filter_atom()?;
        loop {
            if self.peek_ident().as_deref() == Some("and") {
                self.ident();
            } else if self.peek_str(",") {
                self.pos += 1;
            } else {
                break;
            }
            let right = self.label_filter_atom()?;
            left = LabelFilter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn label_filter_atom(&mut self) -> Result<LabelFilter, LogqlError> {
        if self.eat("(") {
            let f = self.label_filter_or()?;
            self.expect(")")?;
            return Ok(f);
        }
        let name = self
            .ident()
            .ok_or_else(|| self.err("expected a label name"))?;
        self.ws();
        let ops: [(&str, Option<MatchOp>, CmpOp); 8] = [
            ("==", Some(MatchOp::Equal), CmpOp::Eq),
            ("=~", Some(MatchOp::RegexMatch), CmpOp::Eq),
            ("!=", Some(MatchOp::NotEqual), CmpOp::Ne),
            ("!~", Some(MatchOp::RegexNoMatch), CmpOp::Ne),
            (">=", None, CmpOp::Ge),
            ("<=", None, CmpOp::Le),
            (">", None, CmpOp::Gt),
            ("<", None, CmpOp::Lt),
        ];
        let mut found = None;
        for (t, m, c) in ops {
            if self.s[self.pos..].starts_with(t) {
                found = Some((t, m, c));
                break;
            }
        }
        let (tok, mop, cop) = match found {
            Some(f) => f,
            None if self.s[self.pos..].starts_with('=') => ("=", Some(MatchOp::Equal), CmpOp::Eq),
            None => return Err(self.err(&format!("expected a comparison after label {name:?}"))),
        };
        self.pos += tok.len();
        if self.peek_str("\"") || self.peek_str("`") {
            let Some(mop) = mop else {
                return Err(self.err(&format!("{tok} needs a number, not a string")));
            };
            let v = self.string()?;
            let m = Matcher::new(mop, name, v).map_err(|e| self.err(&e.to_string()))?;
            return Ok(LabelFilter::String(m));
        }
        let value = self
            .number()
            .ok_or_else(|| self.err(&format!("expected a string or number after {tok}")))?;
        Ok(LabelFilter::Number {
            name,
            op: cop,
            value,
        })
    }

    fn selector(&mut self) -> Result<Vec<Matcher>, LogqlError> {
        self.expect("{")?;
        let mut out = Vec::new();
        if self.eat("}") {
            return Err(self.err("a stream selector needs at least one matcher"));
        }
        loop {
            let name = self
                .ident()
                .ok_or_else(|| self.err("expected a label name"))?;
            if !is_valid_label_name(&name) {
                return Err(self.err(&format!("invalid label name {name:?}")));
            }
            self.ws();
            let rest = &self.s[self.pos..];
            let (op, n) = if rest.starts_with("=~") {
                (MatchOp::RegexMatch, 2)
            } else if rest.starts_with("!~") {
                (MatchOp::RegexNoMatch, 2)
            } else if rest.starts_with("!=") {
                (MatchOp::NotEqual, 2)
            } else if rest.starts_with('=') {
                (MatchOp::Equal, 1)
            } else {
                return Err(self.err(&format!("expected a matcher operator after {name:?}")));
            };
            self.pos += n;
            let v = self.string()?;
            out.push(Matcher::new(op, name, v).map_err(|e| self.err(&e.to_string()))?);
            if self.eat("}") {
                break;
            }
            self.expect(",")?;
        }
        Ok(out)
    }
}

/// Parses a `line_format` template: text with `{{.name}}` / `{{ .name }}`.
fn parse_template(t: &str) -> Result<Vec<TemplatePart>, String> {
    let mut out = Vec::new();
    let mut rest = t;
    while let Some(i) = rest.find("{{") {
        if i > 0 {
            out.push(TemplatePart::Text(rest[..i].to_string()));
        }
        let after = &rest[i + 2..];
        let j = after
            .find("}}")
            .ok_or_else(|| format!("unterminated action in template {t:?}"))?;
        let action = after[..j]
            .trim()
            .trim_start_matches('-')
            .trim_end_matches('-')
            .trim();
        let name = action
            .strip_prefix('.')
            .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            .ok_or_else(|| {
                format!("unsupported template action {{{{{action}}}}}: only {{{{.label}}}} is supported")
            })?;
        out.push(TemplatePart::Label(name.to_string()));
        rest = &after[j + 2..];
    }
    if !rest.is_empty() {
        out.push(TemplatePart::Text(rest.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_log_queries() {
        let Expr::Log(l) = parse(
            r#"{app="api", namespace=~"prod|stg"} |= "error" != "debug" |~ `time.*out` | json | level="error" and status >= 500 | line_format "{{.level}}: {{ .msg }}""#,
        )
        .unwrap() else {
            panic!("log expr")
        };
        assert_eq!(l.matchers.len(), 2);
        assert_eq!(l.stages.len(), 6);
        assert_eq!(l.literal_contains(), vec!["error".to_string()]);
        let Stage::LineFormat(t) = &l.stages[5] else {
            panic!()
        };
        assert_eq!(
            t,
            &vec![
                TemplatePart::Label("level".into()),
                TemplatePart::Text(": ".into()),
                TemplatePart::Label("msg".into())
            ]
        );
    }

    #[test]
    fn parses_metric_queries() {
        let Expr::Metric(MetricExpr::Aggregate {
            op,
            grouping,
            inner,
            ..
        }) = parse(r#"sum by (namespace) (count_over_time({app="x"} |= "a" [5m]))"#).unwrap()
        else {
            panic!()
        };
        assert_eq!(op, AggOp::Sum);
        assert_eq!(grouping.unwrap().labels, vec!["namespace"]);
        assert!(
            matches!(*inner, MetricExpr::Range { func: RangeFunc::CountOverTime, range_ns, .. } if range_ns == 300_000_000_000)
        );
        assert!(parse(r#"topk(3, sum without (pod) (rate({a="b"}[1m])))"#).is_ok());
        assert!(parse(r#"sum(bytes_rate({a="b"}[1m])) by (a)"#).is_ok());
    }

    #[test]
    fn errors_read_like_loki() {
        let e = parse(r#"{app=~".*"}"#).unwrap_err().to_string();
        assert!(e.contains("at least one regexp or equality matcher"), "{e}");
        let e = parse(r#"{app="x"} |= "#).unwrap_err().to_string();
        assert!(e.starts_with("parse error at line 1, col"), "{e}");
        assert!(parse(r#"count_over_time({app="x"})"#).is_err());
        assert!(parse(r#"{app="x"} | pattern "<a>""#)
            .unwrap_err()
            .to_string()
            .contains("not supported"));
        assert!(parse(r#"{app="x"} extra"#).is_err());
    }
}
