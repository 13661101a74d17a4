//! Telling native-histogram evals from float evals: an eval is a
//! native-histogram case when its expected output holds a `{{...}}`
//! histogram or when one of its selectors matches a loaded series with
//! native-histogram samples (including the NHCB series that
//! `load_with_nhcb` derives from classic `_bucket` series). Classic
//! `le`-bucket queries that only touch float series stay float cases.

use fleetwatch_model::{Labels, METRIC_NAME};
use promql_parser::label::Matchers;
use promql_parser::parser::{Expr, VectorSelector};

/// The NHCB series `load_with_nhcb` creates for a classic bucket series:
/// the name without `_bucket` and without the `le` label.
pub(super) fn nhcb_series(labels: &Labels) -> Option<Labels> {
    let base = labels.metric_name()?.strip_suffix("_bucket")?;
    labels.get("le")?;
    let mut out = labels.clone();
    out.remove("le");
    out.set(METRIC_NAME, base);
    Some(out)
}

fn matchers_match(name: Option<&str>, matchers: &Matchers, labels: &Labels) -> bool {
    let value = |n: &str| labels.get(n).unwrap_or("");
    if let Some(n) = name {
        if value(METRIC_NAME) != n {
            return false;
        }
    }
    let all = |ms: &[promql_parser::label::Matcher]| ms.iter().all(|m| m.is_match(value(&m.name)));
    if matchers.or_matchers.is_empty() {
        all(&matchers.matchers)
    } else {
        matchers.or_matchers.iter().any(|g| all(g))
    }
}

fn selector_hits(vs: &VectorSelector, series: &[Labels]) -> bool {
    series
        .iter()
        .any(|l| matchers_match(vs.name.as_deref(), &vs.matchers, l))
}

/// True when a selector of `expr` matches one of the `histograms` series.
pub(super) fn touches_histograms(expr: &Expr, histograms: &[Labels]) -> bool {
    if histograms.is_empty() {
        return false;
    }
    match expr {
        Expr::VectorSelector(vs) => selector_hits(vs, histograms),
        Expr::MatrixSelector(ms) => selector_hits(&ms.vs, histograms),
        Expr::Call(c) => c
            .args
            .args
            .iter()
            .any(|a| touches_histograms(a, histograms)),
        Expr::Paren(p) => touches_histograms(&p.expr, histograms),
        Expr::Unary(u) => touches_histograms(&u.expr, histograms),
        Expr::Binary(b) => {
            touches_histograms(&b.lhs, histograms) || touches_histograms(&b.rhs, histograms)
        }
        Expr::Aggregate(a) => {
            touches_histograms(&a.expr, histograms)
                || a.param
                    .as_deref()
                    .is_some_and(|p| touches_histograms(p, histograms))
        }
        Expr::Subquery(s) => touches_histograms(&s.expr, histograms),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())))
    }

    #[test]
    fn nhcb_names() {
        let s = l(&[("__name__", "h_bucket"), ("le", "0.1"), ("job", "a")]);
        assert_eq!(nhcb_series(&s), Some(l(&[("__name__", "h"), ("job", "a")])));
        assert_eq!(nhcb_series(&l(&[("__name__", "h_bucket")])), None);
        assert_eq!(nhcb_series(&l(&[("__name__", "h"), ("le", "1")])), None);
    }

    #[test]
    fn selectors_against_histogram_series() {
        let hist = vec![l(&[("__name__", "h"), ("job", "a")])];
        let q = |s: &str| promql_parser::parser::parse(s).map(|e| touches_histograms(&e, &hist));
        assert_eq!(q("rate(h[5m])"), Ok(true));
        assert_eq!(q("histogram_quantile(0.5, rate(h_bucket[5m]))"), Ok(false));
        assert_eq!(q("sum by (job) (h{job=~\"a|b\"})"), Ok(true));
        assert_eq!(q("h{job=\"b\"}"), Ok(false));
        assert_eq!(q("{__name__=~\"h.*\"}"), Ok(true));
        assert_eq!(q("max_over_time(h[5m:1m]) + 1"), Ok(true));
    }
}
