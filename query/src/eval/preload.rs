//! Loads, once per query, the samples every selector of an expression
//! needs over the whole evaluation range.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use fleetwatch_model::{Labels, MatchOp, Matcher, Sample, METRIC_NAME};
use fleetwatch_storage::SeriesData;
use promql_parser::label::{MatchOp as PMatchOp, Matcher as PMatcher};
use promql_parser::parser::{Expr, VectorSelector};

use super::{at_ms, duration_ms, offset_ms, EvalSettings, DEFAULT_SUBQUERY_STEP_MS};
use crate::error::{QueryError, Result};
use crate::histogram::HistogramPoint;
use crate::source::Source;

/// The identity of a selector node inside one parsed expression.
pub(crate) fn selector_key(vs: &VectorSelector) -> usize {
    std::ptr::from_ref(vs) as usize
}

/// A series as loaded for one selector. Cloning shares the samples and
/// starts fresh cursors (for an evaluator on another thread).
pub(crate) struct LoadedSeries {
    /// Its labels, shared with every sample produced from it.
    pub labels: Arc<Labels>,
    /// Its float samples in time order.
    pub samples: Arc<Vec<Sample>>,
    /// Its histogram samples in time order.
    pub histograms: Arc<Vec<HistogramPoint>>,
    /// Where the last lookup ended (window end, window start): steps move
    /// forward in time, so the next lookup usually starts close by.
    pub cursors: (Cell<usize>, Cell<usize>),
    /// The same for the histogram samples.
    pub hist_cursors: (Cell<usize>, Cell<usize>),
}

impl Clone for LoadedSeries {
    fn clone(&self) -> Self {
        Self {
            labels: Arc::clone(&self.labels),
            samples: Arc::clone(&self.samples),
            histograms: Arc::clone(&self.histograms),
            cursors: (Cell::new(0), Cell::new(0)),
            hist_cursors: (Cell::new(0), Cell::new(0)),
        }
    }
}

impl LoadedSeries {
    /// The number of float samples at or before `t`, starting the search
    /// from `cursor` (and updating it).
    pub fn seek(&self, cursor: &Cell<usize>, t: i64) -> usize {
        seek_in(&self.samples, |x| x.timestamp_ms, cursor, t)
    }

    /// The number of histogram samples at or before `t` (see [`Self::seek`]).
    pub fn seek_hist(&self, cursor: &Cell<usize>, t: i64) -> usize {
        seek_in(&self.histograms, |x| x.timestamp_ms, cursor, t)
    }
}

/// The number of items of `s` at or before `t`, searching from `cursor`.
fn seek_in<T>(s: &[T], ts: impl Fn(&T) -> i64, cursor: &Cell<usize>, t: i64) -> usize {
    let at_or_before = |i: usize| s.get(i).is_some_and(|x| ts(x) <= t);
    let hint = cursor.get().min(s.len());
    let idx = if hint > 0 && !at_or_before(hint - 1) {
        s.get(..hint)
            .map_or(0, |head| head.partition_point(|x| ts(x) <= t))
    } else {
        let mut i = hint;
        let mut steps = 0;
        while at_or_before(i) && steps < 8 {
            i += 1;
            steps += 1;
        }
        if at_or_before(i) {
            i + s
                .get(i..)
                .map_or(0, |tail| tail.partition_point(|x| ts(x) <= t))
        } else {
            i
        }
    };
    cursor.set(idx);
    idx
}

/// What [`load`] found.
pub(super) struct Loaded {
    /// Series per selector node.
    pub series: HashMap<usize, Vec<LoadedSeries>>,
    /// How many samples were loaded.
    pub samples: usize,
    /// Per subquery node: the window `(lo, hi]` its inner steps cover over
    /// the whole query.
    pub subquery_windows: HashMap<usize, (i64, i64)>,
}

/// The selections and subquery windows an expression needs.
struct Plan<'e> {
    needs: Vec<Need<'e>>,
    subqueries: HashMap<usize, (i64, i64)>,
}

/// One selection to make: which selector, and the inclusive time range.
struct Need<'e> {
    vs: &'e VectorSelector,
    start: i64,
    end: i64,
}

/// Selects the data for every selector in `expr`; also returns the number
/// of samples loaded.
pub(super) fn load(q: Source<'_>, expr: &Expr, s: &EvalSettings) -> Result<Loaded> {
    let mut plan = Plan {
        needs: Vec::new(),
        subqueries: HashMap::new(),
    };
    walk(expr, s.query_start, s.query_end, s, &mut plan);
    let mut out = HashMap::with_capacity(plan.needs.len());
    let mut loaded = 0usize;
    for need in plan.needs {
        let sets = selector_matchers(need.vs)?;
        let series = select_union(q, &sets, need.start, need.end)?;
        loaded = series.iter().fold(loaded, |acc, sd| {
            acc.saturating_add(sd.floats.samples.len())
                .saturating_add(sd.histograms.len())
        });
        if loaded > s.max_samples {
            return Err(QueryError::TooManySamples {
                stage: "query execution",
            });
        }
        let series = series
            .into_iter()
            .map(|sd| LoadedSeries {
                labels: Arc::new(sd.floats.labels),
                samples: Arc::new(sd.floats.samples),
                histograms: Arc::new(sd.histograms),
                cursors: (Cell::new(0), Cell::new(0)),
                hist_cursors: (Cell::new(0), Cell::new(0)),
            })
            .collect();
        out.insert(selector_key(need.vs), series);
    }
    Ok(Loaded {
        series: out,
        samples: loaded,
        subquery_windows: plan.subqueries,
    })
}

/// A selected series: its float samples (in `floats`) and histograms.
struct Selected {
    floats: SeriesData,
    histograms: Vec<HistogramPoint>,
}

/// Selects with each matcher set (a selector with `or` has several) and
/// merges the results by labels, floats and histograms of a series
/// together.
fn select_union(
    q: Source<'_>,
    sets: &[Vec<Matcher>],
    start: i64,
    end: i64,
) -> Result<Vec<Selected>> {
    if let ([only], None) = (sets, q.histograms) {
        return Ok(q
            .floats
            .select(only, start, end)?
            .into_iter()
            .map(|floats| Selected {
                floats,
                histograms: Vec::new(),
            })
            .collect());
    }
    let mut merged: BTreeMap<Labels, Selected> = BTreeMap::new();
    for set in sets {
        for sd in q.floats.select(set, start, end)? {
            merged.entry(sd.labels.clone()).or_insert(Selected {
                floats: sd,
                histograms: Vec::new(),
            });
        }
        let Some(h) = q.histograms else {
            continue;
        };
        for hs in h.select_histograms(set, start, end)? {
            let entry = merged.entry(hs.labels.clone()).or_insert_with(|| Selected {
                floats: SeriesData {
                    labels: hs.labels.clone(),
                    samples: Vec::new(),
                },
                histograms: Vec::new(),
            });
            if entry.histograms.is_empty() {
                entry.histograms = hs.histograms;
            }
        }
    }
    Ok(merged.into_values().collect())
}

/// Records the data needs of `expr` evaluated at every time in `[start, end]`.
fn walk<'e>(expr: &'e Expr, start: i64, end: i64, s: &EvalSettings, plan: &mut Plan<'e>) {
    let window = |at: &Option<promql_parser::parser::AtModifier>, off, width: i64| match at {
        Some(a) => {
            let t = at_ms(a, s.query_start, s.query_end).saturating_sub(off);
            (t.saturating_sub(width), t)
        }
        None => (
            start.saturating_sub(off).saturating_sub(width),
            end.saturating_sub(off),
        ),
    };
    match expr {
        Expr::VectorSelector(vs) => {
            let (lo, hi) = window(&vs.at, offset_ms(&vs.offset), s.lookback_ms);
            plan.needs.push(Need {
                vs,
                start: lo.saturating_add(1),
                end: hi,
            });
        }
        Expr::MatrixSelector(ms) => {
            let (lo, hi) = window(&ms.vs.at, offset_ms(&ms.vs.offset), duration_ms(&ms.range));
            plan.needs.push(Need {
                vs: &ms.vs,
                start: lo.saturating_add(1),
                end: hi,
            });
        }
        Expr::Subquery(sq) => {
            let (lo, hi) = window(&sq.at, offset_ms(&sq.offset), duration_ms(&sq.range));
            plan.subqueries
                .insert(std::ptr::from_ref(sq) as usize, (lo, hi));
            // The first inner step can fall a step before the window when
            // the step does not divide it; widen by one step to be safe.
            let step = sq
                .step
                .as_ref()
                .map(duration_ms)
                .unwrap_or(DEFAULT_SUBQUERY_STEP_MS);
            walk(&sq.expr, lo.saturating_sub(step.max(0)), hi, s, plan);
        }
        Expr::Paren(p) => walk(&p.expr, start, end, s, plan),
        Expr::Unary(u) => walk(&u.expr, start, end, s, plan),
        Expr::Binary(b) => {
            walk(&b.lhs, start, end, s, plan);
            walk(&b.rhs, start, end, s, plan);
        }
        Expr::Aggregate(a) => {
            walk(&a.expr, start, end, s, plan);
            if let Some(p) = &a.param {
                walk(p, start, end, s, plan);
            }
        }
        Expr::Call(c) => {
            for a in &c.args.args {
                walk(a, start, end, s, plan);
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
    Matcher::new(op, m.name.clone(), m.value.clone())
        .or_else(|e| match op {
            // Go's regexp takes a `{` that starts no repetition literally;
            // Rust's does not, so retry with such braces escaped.
            MatchOp::RegexMatch | MatchOp::RegexNoMatch => {
                Matcher::new(op, m.name.clone(), escape_literal_braces(&m.value)).map_err(|_| e)
            }
            _ => Err(e),
        })
        .map_err(|e| QueryError::Parse {
            message: e.to_string(),
            position: None,
        })
}

/// Escapes each `{` that does not open a `{n}`, `{n,}` or `{n,m}` repetition.
fn escape_literal_braces(re: &str) -> String {
    let mut out = String::with_capacity(re.len() + 4);
    let mut prev_backslash = false;
    for (i, c) in re.char_indices() {
        if c == '{' && !prev_backslash && !starts_repetition(re.get(i + 1..).unwrap_or("")) {
            out.push('\\');
        }
        prev_backslash = c == '\\' && !prev_backslash;
        out.push(c);
    }
    out
}

fn starts_repetition(rest: &str) -> bool {
    let Some(end) = rest.find('}') else {
        return false;
    };
    let body = rest.get(..end).unwrap_or("");
    let (min, max) = body.split_once(',').unwrap_or((body, "0"));
    !min.is_empty()
        && min.bytes().all(|b| b.is_ascii_digit())
        && max.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_braces_go_takes_literally() {
        assert_eq!(escape_literal_braces("a{b}"), "a\\{b}");
        assert_eq!(escape_literal_braces("a{2}"), "a{2}");
        assert_eq!(escape_literal_braces("a{2,}x{1,3}"), "a{2,}x{1,3}");
        assert_eq!(escape_literal_braces("a\\{b}"), "a\\{b}");
    }
}
