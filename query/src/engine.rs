//! The query engine entry points: instant and range queries, and the
//! series-selector parser used by the HTTP API's `match[]` parameters.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetwatch_model::{Labels, Matcher};
use fleetwatch_storage::Queryable;
use promql_parser::parser::token::{T_BOTTOMK, T_TOPK};
use promql_parser::parser::value::ValueType;
use promql_parser::parser::Expr;

mod collect;

use crate::annotations::Annotations;
use crate::error::{QueryError, Result};
use crate::eval::{selector_matchers, EvalSettings, Evaluator};
use crate::source::{HistogramQueryable, Source};
use crate::value::{InstantSample, QueryValue, RangeSeries, VSample, Value};
use collect::{finish_vector, Accumulator};

/// The most points a range query may return per series.
pub const MAX_POINTS_PER_SERIES: i64 = 11_000;

/// Engine limits and defaults.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// How far back an instant selector looks for a sample (default 5m).
    pub lookback_delta_ms: i64,
    /// The most samples one query may load from storage (default 50M).
    pub max_samples: usize,
    /// The longest a query may run (default 2 minutes).
    pub timeout: Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            lookback_delta_ms: 300_000,
            max_samples: 50_000_000,
            timeout: Duration::from_secs(120),
        }
    }
}

/// A PromQL engine evaluating queries over a [`Queryable`].
#[derive(Debug, Clone, Default)]
pub struct Engine {
    opts: EngineOptions,
}

/// Parses a PromQL expression, mapping the parser's error.
pub(crate) fn parse_expr(query: &str) -> Result<Expr> {
    promql_parser::parser::parse(query).map_err(|message| QueryError::Parse {
        message,
        position: None,
    })
}

/// True when the expression defines its own output order (`sort()`,
/// `topk` ...), which instant query results must keep.
fn preserves_order(expr: &Expr) -> bool {
    match expr {
        Expr::Paren(p) => preserves_order(&p.expr),
        Expr::Call(c) => matches!(
            c.func.name,
            "sort" | "sort_desc" | "sort_by_label" | "sort_by_label_desc"
        ),
        Expr::Aggregate(a) => matches!(a.op.id(), T_TOPK | T_BOTTOMK),
        _ => false,
    }
}

impl Engine {
    /// An engine with `opts`.
    pub fn new(opts: EngineOptions) -> Self {
        Self { opts }
    }

    /// The engine's options.
    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    fn settings(&self, start: i64, end: i64, step_ms: i64) -> EvalSettings {
        EvalSettings {
            lookback_ms: self.opts.lookback_delta_ms,
            query_start: start,
            query_end: end,
            step_ms,
            deadline: Instant::now() + self.opts.timeout,
            max_samples: self.opts.max_samples,
        }
    }

    /// Evaluates `query` at `time_ms`. Vectors come back sorted by labels
    /// unless the query orders them itself (`sort`, `topk`, ...).
    pub fn instant_query(
        &self,
        q: &dyn Queryable,
        query: &str,
        time_ms: i64,
    ) -> Result<QueryValue> {
        let expr = parse_expr(query)?;
        self.instant_query_expr(Source::floats(q), &expr, time_ms)
    }

    /// [`Engine::instant_query`] with the warning and info annotations the
    /// evaluation produced.
    pub fn instant_query_annotated(
        &self,
        q: &dyn Queryable,
        query: &str,
        time_ms: i64,
    ) -> Result<(QueryValue, Annotations)> {
        let expr = parse_expr(query)?;
        self.instant_query_expr_annotated(Source::floats(q), &expr, time_ms)
    }

    /// [`Engine::instant_query_annotated`] over a store that also holds
    /// native histograms.
    pub fn instant_query_histograms_annotated(
        &self,
        q: &dyn HistogramQueryable,
        query: &str,
        time_ms: i64,
    ) -> Result<(QueryValue, Annotations)> {
        let expr = parse_expr(query)?;
        self.instant_query_expr_annotated(Source::mixed(q), &expr, time_ms)
    }

    /// [`Engine::instant_query`] for an already parsed expression.
    pub(crate) fn instant_query_expr(
        &self,
        q: Source<'_>,
        expr: &Expr,
        time_ms: i64,
    ) -> Result<QueryValue> {
        self.instant_query_expr_annotated(q, expr, time_ms)
            .map(|(v, _)| v)
    }

    /// [`Engine::instant_query_annotated`] for a parsed expression.
    pub(crate) fn instant_query_expr_annotated(
        &self,
        q: Source<'_>,
        expr: &Expr,
        time_ms: i64,
    ) -> Result<(QueryValue, Annotations)> {
        let expr = expr.clone();
        let ev = Evaluator::new(q, &expr, self.settings(time_ms, time_ms, 0))?;
        let value = match ev.eval(&expr, time_ms)? {
            Value::Scalar(value) => QueryValue::Scalar {
                timestamp_ms: time_ms,
                value,
            },
            Value::String(value) => QueryValue::String {
                timestamp_ms: time_ms,
                value,
            },
            Value::Vector(v) => {
                let mut v = finish_vector(v)?;
                if !preserves_order(&expr) {
                    v.sort_by(|a, b| a.labels.cmp(&b.labels));
                }
                QueryValue::Vector(
                    v.into_iter()
                        .map(|s| InstantSample {
                            labels: Arc::unwrap_or_clone(s.labels),
                            timestamp_ms: time_ms,
                            value: s.value,
                            histogram: s.hist.map(Arc::unwrap_or_clone),
                        })
                        .collect(),
                )
            }
            Value::Matrix(m) => {
                let mut m: Vec<RangeSeries> = m
                    .into_iter()
                    .map(|s| {
                        let mut labels = Arc::unwrap_or_clone(s.labels);
                        if s.drop_name {
                            labels.remove(fleetwatch_model::METRIC_NAME);
                        }
                        RangeSeries {
                            labels,
                            samples: s.samples,
                            histograms: s.histograms,
                        }
                    })
                    .collect();
                m.sort_by(|a, b| a.labels.cmp(&b.labels));
                QueryValue::Matrix(m)
            }
        };
        Ok((value, ev.take_annotations()))
    }

    /// Evaluates `query` at `start_ms, start_ms + step_ms, ... <= end_ms`.
    /// Always returns [`QueryValue::Matrix`] sorted by labels; a scalar
    /// expression becomes one series with empty labels.
    pub fn range_query(
        &self,
        q: &dyn Queryable,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<QueryValue> {
        self.range_query_annotated(q, query, start_ms, end_ms, step_ms)
            .map(|(v, _)| v)
    }

    /// [`Engine::range_query`] with the warning and info annotations the
    /// evaluation produced.
    pub fn range_query_annotated(
        &self,
        q: &dyn Queryable,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<(QueryValue, Annotations)> {
        self.range_query_source(Source::floats(q), query, start_ms, end_ms, step_ms)
    }

    /// [`Engine::range_query_annotated`] over a store that also holds
    /// native histograms.
    pub fn range_query_histograms_annotated(
        &self,
        q: &dyn HistogramQueryable,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<(QueryValue, Annotations)> {
        self.range_query_source(Source::mixed(q), query, start_ms, end_ms, step_ms)
    }

    fn range_query_source(
        &self,
        q: Source<'_>,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<(QueryValue, Annotations)> {
        if step_ms <= 0 {
            return Err(QueryError::bad(
                "zero or negative query resolution step widths are not accepted. Try a positive integer",
            ));
        }
        if end_ms < start_ms {
            return Err(QueryError::bad(
                "end timestamp must not be before start time",
            ));
        }
        if end_ms
            .checked_sub(start_ms)
            .is_none_or(|d| d / step_ms >= MAX_POINTS_PER_SERIES)
        {
            return Err(QueryError::bad(
                "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
            ));
        }
        let expr = parse_expr(query)?;
        match expr.value_type() {
            ValueType::Scalar | ValueType::Vector => {}
            ValueType::Matrix => {
                return Err(QueryError::bad(
                    "invalid expression type \"range vector\" for range query, must be Scalar or instant Vector",
                ))
            }
            ValueType::String => {
                return Err(QueryError::bad(
                    "invalid expression type \"string\" for range query, must be Scalar or instant Vector",
                ))
            }
        }
        let ev = Evaluator::new(q, &expr, self.settings(start_ms, end_ms, step_ms))?;
        let times: Vec<i64> = std::iter::successors(Some(start_ms), |t| t.checked_add(step_ms))
            .take_while(|t| *t <= end_ms)
            .collect();
        let threads = eval_threads(ev.loaded_samples(), times.len());
        let (collected, annotations) = if threads <= 1 {
            let out = eval_steps(&ev, &expr, &times)?;
            (out.series, ev.take_annotations())
        } else {
            eval_steps_parallel(&ev, &expr, &times, threads)?
        };
        let mut series: Vec<RangeSeries> = collected
            .into_iter()
            .map(|s| RangeSeries {
                labels: Arc::unwrap_or_clone(s.labels),
                samples: s.samples,
                histograms: s.histograms,
            })
            .collect();
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok((QueryValue::Matrix(series), annotations))
    }
}

/// Loaded samples times steps above which a range query's steps are
/// spread over threads: below it the threads cost more than they save.
const PARALLEL_WORK: usize = 2_000_000;

/// How many threads evaluate the steps of a range query that loaded
/// `samples` samples and has `steps` steps: one per core for big queries,
/// never more than one per 8 steps.
fn eval_threads(samples: usize, steps: usize) -> usize {
    if samples.saturating_mul(steps.min(64)) / 8 < PARALLEL_WORK {
        return 1;
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    cores.min(steps / 8).clamp(1, 8)
}

/// Evaluates `expr` at each of `times` in order, collecting the series.
fn eval_steps(ev: &Evaluator, expr: &Expr, times: &[i64]) -> Result<Accumulator> {
    ev.set_grid(times);
    let mut out = Accumulator::default();
    for &t in times {
        ev.check_deadline()?;
        match ev.eval(expr, t)? {
            Value::Scalar(v) => {
                out.push(VSample::new(Labels::empty(), v, t), t)?;
            }
            Value::Vector(v) => {
                for s in v {
                    out.push(s, t)?;
                }
            }
            other => {
                return Err(QueryError::bad(format!(
                "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                other.type_name()
            )))
            }
        }
    }
    Ok(out)
}

/// Evaluates the steps in `threads` contiguous chunks at once, each on an
/// evaluator sharing the loaded data, and joins the chunks in time order.
/// The first failing chunk in time order decides the error, as a
/// sequential evaluation would have.
fn eval_steps_parallel(
    ev: &Evaluator,
    expr: &Expr,
    times: &[i64],
    threads: usize,
) -> Result<(Vec<collect::Collected>, Annotations)> {
    let chunk = times.len().div_ceil(threads).max(1);
    let mut chunks = times.chunks(chunk);
    let first = chunks.next().unwrap_or_default();
    let forks: Vec<Evaluator> = chunks.clone().map(|_| ev.fork()).collect();
    let results: Vec<Result<(Accumulator, Annotations)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = forks
            .into_iter()
            .zip(chunks)
            .map(|(fork, ts)| {
                scope.spawn(move || {
                    eval_steps(&fork, expr, ts).map(|acc| (acc, fork.take_annotations()))
                })
            })
            .collect();
        let mut results = vec![eval_steps(ev, expr, first).map(|acc| (acc, ev.take_annotations()))];
        for h in handles {
            results.push(
                h.join().unwrap_or_else(|_| {
                    Err(QueryError::exec("a query evaluation thread panicked"))
                }),
            );
        }
        results
    });
    let mut parts = Vec::with_capacity(results.len());
    let mut annotations = Annotations::default();
    for r in results {
        let (acc, notes) = r?;
        annotations.merge(notes);
        parts.push(acc);
    }
    Ok((collect::concat(parts), annotations))
}

/// Parses a series selector such as `up{job="x"}` or `{__name__=~"a.*"}`
/// (the HTTP API's `match[]`) into matchers. Refuses selectors whose
/// matchers all match the empty string.
pub fn parse_series_selector(selector: &str) -> Result<Vec<Matcher>> {
    let empty_err = || QueryError::bad("match[] must contain at least one non-empty matcher");
    let expr = promql_parser::parser::parse(selector).map_err(|message| {
        if message.contains("at least one non-empty matcher") {
            empty_err()
        } else {
            QueryError::Parse {
                message,
                position: None,
            }
        }
    })?;
    let Expr::VectorSelector(vs) = expr else {
        return Err(QueryError::bad(format!(
            "invalid series selector {selector:?}: expected a vector selector"
        )));
    };
    if vs.offset.is_some() || vs.at.is_some() {
        return Err(QueryError::bad(format!(
            "invalid series selector {selector:?}: offset and @ are not allowed"
        )));
    }
    let mut sets = selector_matchers(&vs)?;
    if sets.len() != 1 {
        return Err(QueryError::bad(format!(
            "invalid series selector {selector:?}: `or` between matchers is not supported here"
        )));
    }
    let set = sets.pop().unwrap_or_default();
    if set.iter().all(Matcher::matches_empty) {
        return Err(empty_err());
    }
    Ok(set)
}

#[cfg(test)]
mod tests;
