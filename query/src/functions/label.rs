//! Label functions: `label_replace`, `label_join`, `sort_by_label`, and the
//! label set `absent()` returns.

use std::cmp::Ordering;
use std::sync::Arc;

use crate::eval::Evaluator;
use fleetwatch_model::{is_valid_label_name, Labels, METRIC_NAME};
use promql_parser::label::MatchOp;
use promql_parser::parser::Expr;

use crate::error::{QueryError, Result};
use crate::value::VSample;

/// `label_replace(v, dst, replacement, src, regex)`; `strs` holds the four
/// string arguments.
pub(super) fn label_replace(
    ev: &Evaluator,
    v: Vec<VSample>,
    strs: &[String],
) -> Result<Vec<VSample>> {
    let [dst, repl, src, pattern] = strs else {
        return Err(QueryError::exec("label_replace() takes 5 arguments"));
    };
    let re = ev.anchored_regex(pattern).map_err(|_| {
        QueryError::exec(format!(
            "invalid regular expression in label_replace(): {pattern}"
        ))
    })?;
    if !is_valid_label_name(dst) {
        return Err(QueryError::exec(format!(
            "invalid destination label name in label_replace(): {dst}"
        )));
    }
    Ok(v.into_iter()
        .map(|mut s| {
            let src_val = s.labels.get(src).unwrap_or("").to_string();
            if let Some(caps) = re.captures(&src_val) {
                let mut out = String::new();
                caps.expand(repl, &mut out);
                Arc::make_mut(&mut s.labels).set(dst, &out);
                if dst == METRIC_NAME {
                    s.drop_name = false;
                }
            }
            s
        })
        .collect())
}

/// `label_join(v, dst, separator, src...)`; `strs` holds the string
/// arguments.
pub(super) fn label_join(v: Vec<VSample>, strs: &[String]) -> Result<Vec<VSample>> {
    let [dst, sep, srcs @ ..] = strs else {
        return Err(QueryError::exec("label_join() needs at least 3 arguments"));
    };
    if !is_valid_label_name(dst) {
        return Err(QueryError::exec(format!(
            "invalid destination label name in label_join(): {dst}"
        )));
    }
    if let Some(bad) = srcs.iter().find(|s| !is_valid_label_name(s)) {
        return Err(QueryError::exec(format!(
            "invalid source label name in label_join(): {bad}"
        )));
    }
    Ok(v.into_iter()
        .map(|mut s| {
            let joined = srcs
                .iter()
                .map(|n| s.labels.get(n).unwrap_or(""))
                .collect::<Vec<_>>()
                .join(sep);
            Arc::make_mut(&mut s.labels).set(dst, &joined);
            if dst == METRIC_NAME {
                s.drop_name = false;
            }
            s
        })
        .collect())
}

/// Natural order: digit runs compare as numbers, the rest as text.
fn natural_cmp(a: &str, b: &str) -> Ordering {
    fn chunks(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let mut prev: Option<bool> = None;
        for (i, c) in s.char_indices() {
            let d = c.is_ascii_digit();
            if prev.is_some_and(|p| p != d) {
                out.push((prev.unwrap_or(false), &s[start..i]));
                start = i;
            }
            prev = Some(d);
        }
        if let Some(p) = prev {
            out.push((p, &s[start..]));
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for (x, y) in ca.iter().zip(cb.iter()) {
        let o = if x.0 && y.0 {
            let (tx, ty) = (x.1.trim_start_matches('0'), y.1.trim_start_matches('0'));
            tx.len().cmp(&ty.len()).then_with(|| tx.cmp(ty))
        } else {
            x.1.cmp(y.1)
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    ca.len().cmp(&cb.len())
}

/// `sort_by_label` / `sort_by_label_desc`: natural order of the given
/// labels' values, then the full label set.
pub(super) fn sort_by_label(v: &mut [VSample], names: &[String], desc: bool) {
    v.sort_by(|a, b| {
        let o = names
            .iter()
            .map(|n| natural_cmp(a.labels.get(n).unwrap_or(""), b.labels.get(n).unwrap_or("")))
            .find(|o| *o != Ordering::Equal)
            .unwrap_or_else(|| a.labels.cmp(&b.labels));
        if desc {
            o.reverse()
        } else {
            o
        }
    });
}

/// The labels `absent(expr)` / `absent_over_time(expr)` report: the
/// equality matchers of a selector argument (a label matched twice is
/// left out).
pub(crate) fn absent_labels(expr: &Expr) -> Labels {
    let vs = match expr {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(ms) => &ms.vs,
        Expr::Paren(p) => return absent_labels(&p.expr),
        _ => return Labels::empty(),
    };
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut dropped: Vec<&str> = Vec::new();
    for m in &vs.matchers.matchers {
        if m.name == METRIC_NAME {
            continue;
        }
        if pairs.iter().any(|(n, _)| *n == m.name) || dropped.contains(&m.name.as_str()) {
            pairs.retain(|(n, _)| *n != m.name);
            dropped.push(&m.name);
            continue;
        }
        if m.op == MatchOp::Equal {
            pairs.push((m.name.clone(), m.value.clone()));
        }
    }
    Labels::from_pairs(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order() {
        assert_eq!(natural_cmp("a2", "a10"), Ordering::Less);
        assert_eq!(natural_cmp("b", "a10"), Ordering::Greater);
        assert_eq!(natural_cmp("10", "9"), Ordering::Greater);
        assert_eq!(natural_cmp("x", "x1"), Ordering::Less);
    }
}
