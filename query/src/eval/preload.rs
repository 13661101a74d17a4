//! Loads, once per query, the samples every selector of an expression
//! needs over the whole evaluation range.

use std::collections::{BTreeMap, HashMap};

use fleetwatch_model::{MatchOp, Matcher, METRIC_NAME};
use fleetwatch_storage::{Queryable, SeriesData};
use promql_parser::label::{MatchOp as PMatchOp, Matcher as PMatcher};
use promql_parser::parser::{Expr, VectorSelector};

use super::{at_ms, duration_ms, offset_ms, EvalSettings, DEFAULT_SUBQUERY_STEP_MS};
use crate::error::{QueryError, Result};

/// The identity of a selector node inside one parsed expression.
pub(crate) fn selector_key(vs: &VectorSelector) -> usize {
    std::ptr::from_ref(vs) as usize
}

/// One selection to make: which selector, and the inclusive time range.
struct Need<'e> {
    vs: &'e VectorSelector,
    start: i64,
    end: i64,
}

/// Selects the data for every selector in `expr`.
pub(super) fn load(
    q: &dyn Queryable,
    expr: &Expr,
    s: &EvalSettings,
) -> Result<HashMap<usize, Vec<SeriesData>>> {
    let mut needs = Vec::new();
    walk(expr, s.query_start, s.query_end, s, &mut needs);
    let mut out = HashMap::with_capacity(needs.len());
    let mut loaded = 0usize;
    for need in needs {
        let sets = selector_matchers(need.vs)?;
        let series = select_union(q, &sets, need.start, need.end)?;
        loaded = series
            .iter()
            .fold(loaded, |acc, sd| acc.saturating_add(sd.samples.len()));
        if loaded > s.max_samples {
            return Err(QueryError::TooManySamples {
                stage: "query execution",
            });
        }
        out.insert(selector_key(need.vs), series);
    }
    Ok(out)
}

/// Selects with each matcher set (a selector with `or` has several) and
/// merges the results by labels.
fn select_union(
    q: &dyn Queryable,
    sets: &[Vec<Matcher>],
    start: i64,
    end: i64,
) -> Result<Vec<SeriesData>> {
    if let [only] = sets {
        return Ok(q.select(only, start, end)?);
    }
    let mut merged = BTreeMap::new();
    for set in sets {
        for sd in q.select(set, start, end)? {
            merged.entry(sd.labels.clone()).or_insert(sd);
        }
    }
    Ok(merged.into_values().collect())
}

/// Records the data needs of `expr` evaluated at every time in `[start, end]`.
fn walk<'e>(expr: &'e Expr, start: i64, end: i64, s: &EvalSettings, needs: &mut Vec<Need<'e>>) {
    let window = |at: &Option<promql_parser::parser::AtModifier>, off, width: i64| match at {
        Some(a) => {
            let t = at_ms(a, s.query_start, s.query_end) - off;
            (t - width, t)
        }
        None => (start - off - width, end - off),
    };
    match expr {
        Expr::VectorSelector(vs) => {
            let (lo, hi) = window(&vs.at, offset_ms(&vs.offset), s.lookback_ms);
            needs.push(Need {
                vs,
                start: lo.saturating_add(1),
                end: hi,
            });
        }
        Expr::MatrixSelector(ms) => {
            let (lo, hi) = window(&ms.vs.at, offset_ms(&ms.vs.offset), duration_ms(&ms.range));
            needs.push(Need {
                vs: &ms.vs,
                start: lo.saturating_add(1),
                end: hi,
            });
        }
        Expr::Subquery(sq) => {
            let (lo, hi) = window(&sq.at, offset_ms(&sq.offset), duration_ms(&sq.range));
            // The first inner step can fall a step before the window when
            // the step does not divide it; widen by one step to be safe.
            let step = sq.step.as_ref().map(duration_ms).unwrap_or(DEFAULT_SUBQUERY_STEP_MS);
            walk(&sq.expr, lo.saturating_sub(step.max(0)), hi, s, needs);
        }
        Expr::Paren(p) => walk(&p.expr, start, end, s, needs),
        Expr::Unary(u) => walk(&u.expr, start, end, s, needs),
        Expr::Binary(b) => {
            walk(&b.lhs, start, end, s, needs);
            walk(&b.rhs, start, end, s, needs);
        }
        Expr::Aggregate(a) => {
            walk(&a.expr, start, end, s, needs);
            if let Some(p) = &a.param {
                walk(p, start, end, s, needs);
            }
        }
        Expr::Call(c) => {
            for a in &c.args.args {
                walk(a, start, end, s, needs);
            }
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// The model matcher sets of a selector: one set normally, one per `or`
/// branch for `{a="1" or b="2"}`. The metric name becomes a `__name__`
/// equality matcher.
pub(crate) fn selector_matchers(vs: &VectorSelector) -> Result<Vec<Vec<Matcher>>> {
    let mut groups: Vec<&[PMatcher]> = Vec::new();
    if vs.matchers.or_matchers.is_empty() {
        groups.push(&vs.matchers.matchers);
    } else {
        groups.extend(vs.matchers.or_matchers.iter().map(Vec::as_slice));
    }
    groups
        .into_iter()
        .map(|g| {
            let mut set = Vec::with_capacity(g.len() + 1);
            if let Some(name) = &vs.name {
                set.push(Matcher::equal(METRIC_NAME, name.clone()));
            }
            for m in g {
                set.push(convert_matcher(m)?);
            }
            Ok(set)
        })
        .collect()
}

fn convert_matcher(m: &PMatcher) -> Result<Matcher> {
    let op = match m.op {
        PMatchOp::Equal => MatchOp::Equal,
        PMatchOp::NotEqual => MatchOp::NotEqual,
        PMatchOp::Re(_) => MatchOp::RegexMatch,
        PMatchOp::NotRe(_) => MatchOp::RegexNoMatch,
    };
    Matcher::new(op, m.name.clone(), m.value.clone()).map_err(|e| QueryError::Parse {
        message: e.to_string(),
        position: None,
    })
}
