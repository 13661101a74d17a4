//! The evaluator: walks a parsed expression at one evaluation time over
//! data preloaded once per query.

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

pub(crate) use preload::selector_matchers;

/// The default subquery step when none is given (Prometheus's default
/// global evaluation interval).
pub(crate) const DEFAULT_SUBQUERY_STEP_MS: i64 = 60_000;

/// Evaluation settings shared by all steps of one query.
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
        })
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
