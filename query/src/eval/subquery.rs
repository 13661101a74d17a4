//! Subqueries: `expr[range:step]` evaluates `expr` at aligned steps inside
//! the window and yields the results as a range vector.
//!
//! Inner steps are multiples of the step (aligned to the epoch), so the
//! steps of consecutive outer evaluations coincide: the inner expression is
//! evaluated once per step over the whole query, and each outer evaluation
//! slices that result.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::sync::Arc;

use fleetwatch_model::{Labels, Sample};
use promql_parser::parser::SubqueryExpr;

use super::{duration_ms, Evaluator, RangeArg, WindowSeries, DEFAULT_SUBQUERY_STEP_MS};
use crate::error::{QueryError, Result};
use crate::hash::FastMap;
use crate::histogram::{CounterResetHint, FloatHistogram, HistogramPoint};
use crate::value::Value;

/// One series of a subquery's inner results.
pub(crate) struct InnerSeries {
    labels: Arc<Labels>,
    samples: Vec<Sample>,
    histograms: Vec<HistogramPoint>,
    drop_name: bool,
}

/// One inner result value.
enum Point {
    Float(Sample),
    Histogram(HistogramPoint),
}

/// A subquery's inner results over the whole query, built on first use.
pub(crate) struct Cached {
    /// The window `(lo, hi]` the outer evaluations need.
    window: (i64, i64),
    series: OnceCell<Vec<InnerSeries>>,
}

impl Cached {
    /// The window `(lo, hi]` this cache covers.
    pub fn window(&self) -> (i64, i64) {
        self.window
    }

    /// An empty cache for the window `(lo, hi]`.
    pub fn new(window: (i64, i64)) -> Self {
        Self {
            window,
            series: OnceCell::new(),
        }
    }
}

/// The first multiple of `step` strictly after `lo`.
fn first_step_after(lo: i64, step: i64) -> i64 {
    let ts = lo.div_euclid(step).saturating_mul(step);
    if ts <= lo {
        ts.saturating_add(step)
    } else {
        ts
    }
}

impl Evaluator {
    /// Evaluates the inner expression at every aligned step in `(lo, hi]`.
    fn eval_inner(
        &self,
        sq: &SubqueryExpr,
        lo: i64,
        hi: i64,
        step: i64,
    ) -> Result<Vec<InnerSeries>> {
        let mut index: FastMap<Arc<Labels>, usize> = FastMap::default();
        let mut out: Vec<InnerSeries> = Vec::new();
        let mut push = |labels: Arc<Labels>, p: Point, drop_name: bool| {
            let i = *index.entry(Arc::clone(&labels)).or_insert_with(|| {
                out.push(InnerSeries {
                    labels,
                    samples: Vec::new(),
                    histograms: Vec::new(),
                    drop_name: false,
                });
                out.len() - 1
            });
            if let Some(series) = out.get_mut(i) {
                match p {
                    Point::Float(s) => series.samples.push(s),
                    Point::Histogram(mut h) => {
                        // Steps resample the series: a stored hint says
                        // nothing about the step before, so counter
                        // resets are detected from the counts instead.
                        if matches!(
                            h.histogram.counter_reset_hint,
                            CounterResetHint::Reset | CounterResetHint::NotReset
                        ) {
                            let mut copy = FloatHistogram::clone(&h.histogram);
                            copy.counter_reset_hint = CounterResetHint::Unknown;
                            h.histogram = Arc::new(copy);
                        }
                        series.histograms.push(h);
                    }
                }
                series.drop_name |= drop_name;
            }
        };
        let mut ts = first_step_after(lo, step);
        while ts <= hi {
            self.check_deadline()?;
            match self.eval(&sq.expr, ts)? {
                Value::Scalar(v) => {
                    self.account_samples(1)?;
                    push(
                        Arc::new(Labels::empty()),
                        Point::Float(Sample::new(ts, v)),
                        false,
                    );
                }
                Value::Vector(v) => {
                    self.account_samples(v.len())?;
                    for s in v {
                        let p = match s.hist {
                            Some(h) => Point::Histogram(HistogramPoint {
                                timestamp_ms: ts,
                                histogram: h,
                            }),
                            None => Point::Float(Sample::new(ts, s.value)),
                        };
                        push(s.labels, p, s.drop_name);
                    }
                }
                other => {
                    return Err(QueryError::exec(format!(
                        "subquery is only allowed on instant vector or scalar, got {}",
                        other.type_name()
                    )))
                }
            }
            match ts.checked_add(step) {
                Some(next) => ts = next,
                None => break,
            }
        }
        Ok(out)
    }

    /// Evaluates a subquery at `t`: the inner results at the aligned steps
    /// inside the left-open window `(t' - range, t']`.
    pub(crate) fn eval_subquery(&self, sq: &SubqueryExpr, t: i64) -> Result<RangeArg<'_>> {
        let te = self.effective_time(t, &sq.at, &sq.offset);
        let range = duration_ms(&sq.range);
        let step = sq
            .step
            .as_ref()
            .map(duration_ms)
            .unwrap_or(DEFAULT_SUBQUERY_STEP_MS);
        if step <= 0 {
            return Err(QueryError::exec("subquery step must be positive"));
        }
        let lo = te.saturating_sub(range);
        let cached = self
            .subqueries
            .get(&(std::ptr::from_ref(sq) as usize))
            .filter(|c| c.window.0 <= lo && te <= c.window.1);
        let series: Vec<WindowSeries<'_>> = match cached {
            Some(c) => {
                if c.series.get().is_none() {
                    let built = self.eval_inner(sq, c.window.0, c.window.1, step)?;
                    let _ = c.series.set(built);
                }
                c.series
                    .get()
                    .map(|all| {
                        all.iter()
                            .filter_map(|s| {
                                let a = s.samples.partition_point(|x| x.timestamp_ms <= lo);
                                let b = s.samples.partition_point(|x| x.timestamp_ms <= te);
                                let w = s.samples.get(a..b).unwrap_or_default();
                                let ha = s.histograms.partition_point(|x| x.timestamp_ms <= lo);
                                let hb = s.histograms.partition_point(|x| x.timestamp_ms <= te);
                                let hw = s.histograms.get(ha..hb).unwrap_or_default();
                                if w.is_empty() && hw.is_empty() {
                                    return None;
                                }
                                Some(WindowSeries {
                                    labels: Arc::clone(&s.labels),
                                    samples: Cow::Borrowed(w),
                                    histograms: Cow::Borrowed(hw),
                                    drop_name: s.drop_name,
                                })
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            }
            // Outside the planned window (not expected): evaluate directly.
            None => self
                .eval_inner(sq, lo, te, step)?
                .into_iter()
                .map(|s| WindowSeries {
                    labels: s.labels,
                    samples: Cow::Owned(s.samples),
                    histograms: Cow::Owned(s.histograms),
                    drop_name: s.drop_name,
                })
                .collect(),
        };
        Ok(RangeArg {
            series,
            range_start: lo,
            range_end: te,
        })
    }
}
