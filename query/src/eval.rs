//! The evaluator: walks a parsed expression at one evaluation time over
//! data preloaded once per query.

mod blocks;
mod preload;
mod selector;
mod subquery;

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::sync::Arc;

use fleetwatch_model::{Labels, Sample};
use std::collections::HashMap;
use std::time::Instant;

use promql_parser::parser::{AtModifier, Expr, Offset};

use regex::Regex;

use crate::annotations::Annotations;
use crate::error::{QueryError, Result};
use crate::hash::FastMap;
use crate::histogram::{CounterResetHint, HistogramPoint};
use crate::source::Source;
use crate::value::{MSeries, VSample, Value};

pub(crate) use blocks::RangeFn;
pub(crate) use preload::selector_matchers;

/// The default subquery step when none is given (Prometheus's default
/// global evaluation interval).
pub(crate) const DEFAULT_SUBQUERY_STEP_MS: i64 = 60_000;

/// Evaluation settings shared by all steps of one query.
#[derive(Clone)]
pub(crate) struct EvalSettings {
    /// How far back an instant selector looks for a sample, ms.
    pub lookback_ms: i64,
    /// The query's first evaluation time (for `@ start()`), ms.
    pub query_start: i64,
    /// The query's last evaluation time (for `@ end()`), ms.
    pub query_end: i64,
    /// The range query step (0 for instant queries), ms.
    pub step_ms: i64,
    /// When the query must have finished.
    pub deadline: Instant,
    /// Maximum number of samples loaded from storage.
    pub max_samples: usize,
}

/// A range-vector argument with the window it was selected over.
pub(crate) struct RangeArg<'a> {
    /// The series with their samples inside the window.
    pub series: Vec<WindowSeries<'a>>,
    /// Window start (exclusive), ms.
    pub range_start: i64,
    /// Window end (inclusive), ms.
    pub range_end: i64,
}

/// One series of a range argument; the samples borrow the preloaded data
/// when they can.
pub(crate) struct WindowSeries<'a> {
    /// The series' labels.
    pub labels: Arc<Labels>,
    /// The float samples inside the window, never staleness markers.
    pub samples: Cow<'a, [Sample]>,
    /// The histogram samples inside the window.
    pub histograms: Cow<'a, [HistogramPoint]>,
    /// The metric name is to be dropped (see [`VSample::drop_name`]).
    pub drop_name: bool,
}

/// A memoised hash with the labels it belongs to (kept alive so the
/// pointer in the key keeps meaning those labels).
type MemoHash = (Arc<Labels>, u64);

/// Evaluates expressions over data preloaded for one query.
pub(crate) struct Evaluator {
    settings: EvalSettings,
    data: HashMap<usize, Vec<preload::LoadedSeries>>,
    /// Samples loaded plus subquery points produced so far.
    samples: Cell<usize>,
    /// Per subquery node: its inner results over the whole query, computed
    /// on first use (consecutive steps share most inner evaluation times).
    subqueries: HashMap<usize, subquery::Cached>,
    /// Anchored regexes compiled for `label_replace`, by pattern.
    regexes: RefCell<FastMap<String, Regex>>,
    /// Warnings and infos so far.
    annotations: RefCell<Annotations>,
    /// Label-set hashes per (expression node, labels `Arc`), see
    /// [`Evaluator::memo_hash`]. Each entry holds its `Arc`, so a pointer
    /// in the map always means the same labels.
    label_hashes: RefCell<FastMap<(usize, usize), MemoHash>>,
    /// Output labels per (aggregation node, group hash), built once per
    /// query instead of once per step.
    group_labels: RefCell<FastMap<(usize, u64), Arc<Labels>>>,
    /// The steps this evaluator evaluates when they form a grid (a range
    /// query): first time, step, number of steps.
    grid: Cell<Option<(i64, i64, usize)>>,
    /// Per range-function node: its results over the current block of
    /// grid steps (see [`blocks`]).
    range_blocks: RefCell<FastMap<usize, blocks::Block>>,
}

impl Evaluator {
    /// Selects from `q`, once, all data `expr` needs when evaluated at
    /// every time in `[settings.query_start, settings.query_end]`.
    pub fn new(q: Source<'_>, expr: &Expr, settings: EvalSettings) -> Result<Self> {
        let loaded = preload::load(q, expr, &settings)?;
        Ok(Self {
            settings,
            data: loaded.series,
            samples: Cell::new(loaded.samples),
            subqueries: loaded
                .subquery_windows
                .into_iter()
                .map(|(k, w)| (k, subquery::Cached::new(w)))
                .collect(),
            regexes: RefCell::new(FastMap::default()),
            annotations: RefCell::new(Annotations::default()),
            label_hashes: RefCell::new(FastMap::default()),
            group_labels: RefCell::new(FastMap::default()),
            grid: Cell::new(None),
            range_blocks: RefCell::new(FastMap::default()),
        })
    }

    /// The labels of group `hash` at aggregation node `node`, built by
    /// `f` the first time the query meets the group.
    pub fn group_labels(&self, node: usize, hash: u64, f: impl FnOnce() -> Labels) -> Arc<Labels> {
        if let Some(l) = self.group_labels.borrow().get(&(node, hash)) {
            return Arc::clone(l);
        }
        let l = Arc::new(f());
        self.group_labels
            .borrow_mut()
            .insert((node, hash), Arc::clone(&l));
        l
    }

    /// Declares the times this evaluator will evaluate at, in order; when
    /// they are evenly spaced, range functions are computed per block of
    /// steps (see [`blocks`]).
    pub fn set_grid(&self, times: &[i64]) {
        let grid = match times {
            [first, second, ..] if second > first => {
                let step = second - first;
                let even = times.windows(2).all(|w| w[1] - w[0] == step);
                even.then_some((*first, step, times.len()))
            }
            _ => None,
        };
        self.grid.set(grid);
        self.range_blocks.borrow_mut().clear();
    }

    /// The grid index of time `t`, if it is one of the grid's steps.
    pub fn grid_index(&self, t: i64) -> Option<usize> {
        let (first, step, count) = self.grid.get()?;
        let offset = t.checked_sub(first)?;
        if offset < 0 || offset % step != 0 {
            return None;
        }
        usize::try_from(offset / step).ok().filter(|&i| i < count)
    }

    /// How many samples were loaded from storage for the query.
    pub fn loaded_samples(&self) -> usize {
        self.samples.get()
    }

    /// A second evaluator over the same loaded data (shared, not copied)
    /// with its own cursors and caches, for evaluating other steps of the
    /// query on another thread.
    pub fn fork(&self) -> Self {
        Self {
            settings: self.settings.clone(),
            data: self.data.clone(),
            samples: Cell::new(self.samples.get()),
            subqueries: self
                .subqueries
                .iter()
                .map(|(k, c)| (*k, subquery::Cached::new(c.window())))
                .collect(),
            regexes: RefCell::new(FastMap::default()),
            annotations: RefCell::new(Annotations::default()),
            label_hashes: RefCell::new(FastMap::default()),
            group_labels: RefCell::new(FastMap::default()),
            grid: Cell::new(None),
            range_blocks: RefCell::new(FastMap::default()),
        }
    }

    /// The hash `f` computes for `labels` at expression node `node`,
    /// remembered across steps for label sets that outlive a step (those
    /// of loaded series, which every step passes on unchanged): grouping
    /// and matching then hash each series once per query, not per step.
    pub fn memo_hash(
        &self,
        node: usize,
        labels: &Arc<Labels>,
        f: impl FnOnce(&Labels) -> u64,
    ) -> u64 {
        if Arc::strong_count(labels) < 2 {
            return f(labels);
        }
        let key = (node, Arc::as_ptr(labels) as usize);
        if let Some((_, h)) = self.label_hashes.borrow().get(&key) {
            return *h;
        }
        let h = f(labels);
        self.label_hashes
            .borrow_mut()
            .insert(key, (Arc::clone(labels), h));
        h
    }

    /// Records a warning annotation (message without its prefix).
    pub fn warn(&self, msg: String) {
        self.annotations.borrow_mut().warn(msg);
    }

    /// Records an info annotation (message without its prefix).
    pub fn info(&self, msg: String) {
        self.annotations.borrow_mut().info(msg);
    }

    /// The annotations recorded so far.
    pub fn take_annotations(&self) -> Annotations {
        self.annotations.take()
    }

    /// `pattern` compiled fully anchored (`^(?s:pattern)$`), once per query.
    pub fn anchored_regex(&self, pattern: &str) -> Result<Regex, regex::Error> {
        if let Some(re) = self.regexes.borrow().get(pattern) {
            return Ok(re.clone());
        }
        let re = Regex::new(&format!("^(?s:{pattern})$"))?;
        self.regexes
            .borrow_mut()
            .insert(pattern.to_string(), re.clone());
        Ok(re)
    }

    /// Counts `n` more samples held by the query; fails beyond the limit.
    pub fn account_samples(&self, n: usize) -> Result<()> {
        let total = self.samples.get().saturating_add(n);
        self.samples.set(total);
        if total > self.settings.max_samples {
            return Err(QueryError::TooManySamples {
                stage: "query execution",
            });
        }
        Ok(())
    }

    /// The query-wide settings.
    pub fn settings(&self) -> &EvalSettings {
        &self.settings
    }

    /// Returns the timeout error once the deadline has passed.
    pub fn check_deadline(&self) -> Result<()> {
        if Instant::now() > self.settings.deadline {
            return Err(QueryError::Timeout {
                stage: "query execution",
            });
        }
        Ok(())
    }

    /// Evaluates `expr` at time `t` (ms).
    pub fn eval(&self, expr: &Expr, t: i64) -> Result<Value> {
        match expr {
            Expr::NumberLiteral(n) => Ok(Value::Scalar(n.val)),
            Expr::StringLiteral(s) => Ok(Value::String(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr, t),
            Expr::Unary(u) => match self.eval(&u.expr, t)? {
                Value::Scalar(v) => Ok(Value::Scalar(-v)),
                Value::Vector(v) => Ok(Value::Vector(
                    v.into_iter()
                        .map(|s| VSample {
                            value: -s.value,
                            hist: s.hist.map(|h| {
                                let mut h = Arc::unwrap_or_clone(h);
                                h.scale(-1.0);
                                // A negated counter is a gauge.
                                h.counter_reset_hint = CounterResetHint::Gauge;
                                Arc::new(h)
                            }),
                            drop_name: true,
                            ..s
                        })
                        .collect(),
                )),
                other => Err(QueryError::exec(format!(
                    "unary expression only allowed on expressions of type scalar or vector, got {}",
                    other.type_name()
                ))),
            },
            Expr::VectorSelector(vs) => Ok(Value::Vector(self.select_instant(vs, t))),
            Expr::MatrixSelector(_) | Expr::Subquery(_) => {
                let arg = self.eval_range_arg(expr, t)?;
                Ok(Value::Matrix(
                    arg.series
                        .into_iter()
                        .map(|s| MSeries {
                            labels: s.labels,
                            samples: s.samples.into_owned(),
                            histograms: s.histograms.into_owned(),
                            drop_name: s.drop_name,
                        })
                        .collect(),
                ))
            }
            Expr::Aggregate(a) => crate::aggregate::eval(self, a, t),
            Expr::Binary(b) => crate::binary::eval(self, b, t),
            Expr::Call(c) => crate::functions::call(self, c, t),
            Expr::Extension(e) => Err(QueryError::exec(format!(
                "unsupported expression extension {}",
                e.expr.name()
            ))),
        }
    }

    /// Evaluates a range-vector expression (a matrix selector or a
    /// subquery, possibly in parentheses) at `t`.
    pub fn eval_range_arg(&self, expr: &Expr, t: i64) -> Result<RangeArg<'_>> {
        match expr {
            Expr::Paren(p) => self.eval_range_arg(&p.expr, t),
            Expr::MatrixSelector(ms) => Ok(self.select_range(ms, t)),
            Expr::Subquery(sq) => self.eval_subquery(sq, t),
            other => Err(QueryError::exec(format!(
                "expected a range vector, got {}",
                other.value_type()
            ))),
        }
    }

    /// Evaluates `expr` and requires an instant vector.
    pub fn eval_vector(&self, expr: &Expr, t: i64) -> Result<Vec<VSample>> {
        match self.eval(expr, t)? {
            Value::Vector(v) => Ok(v),
            other => Err(QueryError::exec(format!(
                "expected an instant vector, got {}",
                other.type_name()
            ))),
        }
    }

    /// Evaluates `expr` and requires a scalar.
    pub fn eval_scalar(&self, expr: &Expr, t: i64) -> Result<f64> {
        match self.eval(expr, t)? {
            Value::Scalar(v) => Ok(v),
            other => Err(QueryError::exec(format!(
                "expected a scalar, got {}",
                other.type_name()
            ))),
        }
    }

    /// Evaluates `expr` and requires a string.
    pub fn eval_string(&self, expr: &Expr, t: i64) -> Result<String> {
        match self.eval(expr, t)? {
            Value::String(v) => Ok(v),
            other => Err(QueryError::exec(format!(
                "expected a string, got {}",
                other.type_name()
            ))),
        }
    }

    /// The time a selector or subquery with `at` and `offset` reads at,
    /// when evaluated at `t`.
    pub fn effective_time(&self, t: i64, at: &Option<AtModifier>, offset: &Option<Offset>) -> i64 {
        let base = match at {
            None => t,
            Some(a) => at_ms(a, self.settings.query_start, self.settings.query_end),
        };
        base.saturating_sub(offset_ms(offset))
    }
}

/// A `std::time::Duration` in milliseconds, saturating.
pub(crate) fn duration_ms(d: &std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// An offset in milliseconds (negative offsets look ahead).
pub(crate) fn offset_ms(offset: &Option<Offset>) -> i64 {
    match offset {
        None => 0,
        Some(Offset::Pos(d)) => duration_ms(d),
        Some(Offset::Neg(d)) => -duration_ms(d),
    }
}

/// The absolute time of an `@` modifier, ms.
pub(crate) fn at_ms(at: &AtModifier, start: i64, end: i64) -> i64 {
    match at {
        AtModifier::Start => start,
        AtModifier::End => end,
        AtModifier::At(st) => match st.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => duration_ms(&d),
            Err(e) => -duration_ms(&e.duration()),
        },
    }
}
