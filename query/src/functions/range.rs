//! Functions over range vectors: the rate family with Prometheus's
//! extrapolation, `*_over_time`, `changes`, `resets`, `deriv`,
//! `predict_linear`.

use fleetwatch_model::Sample;
use promql_parser::parser::Expr;

use super::label::absent_labels;
use super::range_hist;
use crate::annotations::{invalid_quantile, possible_non_counter};
use crate::error::{QueryError, Result};
use crate::eval::{Evaluator, RangeArg, RangeFn};
use crate::stats::{self, kahan_inc};
use crate::value::{VSample, Value};

const RANGE_FUNCTIONS: &[&str] = &[
    "rate",
    "increase",
    "delta",
    "irate",
    "idelta",
    "changes",
    "resets",
    "deriv",
    "predict_linear",
    "avg_over_time",
    "min_over_time",
    "max_over_time",
    "sum_over_time",
    "count_over_time",
    "last_over_time",
    "first_over_time",
    "quantile_over_time",
    "stddev_over_time",
    "stdvar_over_time",
    "mad_over_time",
    "present_over_time",
    "absent_over_time",
    "ts_of_last_over_time",
    "ts_of_first_over_time",
    "ts_of_max_over_time",
    "ts_of_min_over_time",
    "double_exponential_smoothing",
];

/// True for functions taking a range vector.
pub(super) fn is_range_function(name: &str) -> bool {
    RANGE_FUNCTIONS.contains(&name)
}

/// Evaluates a range-vector function at `t`.
pub(super) fn call(ev: &Evaluator, name: &str, args: &[&Expr], t: i64) -> Result<Value> {
    let range_idx = usize::from(name == "quantile_over_time");
    let range_expr = args
        .get(range_idx)
        .copied()
        .ok_or_else(|| QueryError::exec(format!("missing range argument to {name}()")))?;
    let mut scalars = Vec::new();
    for (i, a) in args.iter().enumerate() {
        if i != range_idx {
            scalars.push(ev.eval_scalar(a, t)?);
        }
    }
    if name == "quantile_over_time" {
        if let Some(w) = scalars.first().copied().and_then(invalid_quantile) {
            ev.warn(w);
        }
    }
    let keep_name = matches!(name, "last_over_time" | "first_over_time");
    let p0 = scalars.first().copied().unwrap_or(f64::NAN);
    let p1 = scalars.get(1).copied().unwrap_or(f64::NAN);
    if let Some(v) = from_block(ev, name, args, range_idx, t, keep_name, p0, p1)? {
        return Ok(Value::Vector(v));
    }
    let arg = ev.eval_range_arg(range_expr, t)?;
    if name == "absent_over_time" {
        return Ok(Value::Vector(if arg.series.is_empty() {
            vec![VSample::new(absent_labels(range_expr), 1.0, t)]
        } else {
            Vec::new()
        }));
    }
    if matches!(name, "rate" | "increase") {
        // Checked once per series and query (memoised like a hash); the
        // key is offset by one byte from the node's address so it cannot
        // meet a key of another kind.
        let node = std::ptr::from_ref(range_expr) as usize + 1;
        for s in arg
            .series
            .iter()
            .filter(|s| !s.samples.is_empty() && s.histograms.is_empty() && !s.drop_name)
        {
            ev.memo_hash(node, &s.labels, |l| {
                if let Some(i) = l.metric_name().and_then(possible_non_counter) {
                    ev.info(i);
                }
                0
            });
        }
    }
    let mut out = Vec::with_capacity(arg.series.len());
    for s in &arg.series {
        let drop_name = s.drop_name || !keep_name;
        if !s.histograms.is_empty() && range_hist::handles(name) {
            let sample = match range_hist::eval_one(ev, name, s, &arg) {
                Some(range_hist::Output::Float(v)) => VSample::new(s.labels.clone(), v, t),
                Some(range_hist::Output::Histogram(h)) => {
                    VSample::histogram(s.labels.clone(), h, t)
                }
                None => continue,
            };
            out.push(VSample {
                drop_name,
                ..sample
            });
            continue;
        }
        if !s.histograms.is_empty() && !s.samples.is_empty() {
            ev.info(format!(
                "ignored histograms in a range containing both floats and histograms for metric name {:?}",
                s.labels.metric_name().unwrap_or("")
            ));
        }
        let Some(value) = eval_one(name, &s.samples, &arg, t, p0, p1) else {
            continue;
        };
        out.push(VSample {
            drop_name,
            ..VSample::new(s.labels.clone(), value, t)
        });
    }
    Ok(Value::Vector(out))
}

/// The result at `t` from the per-block evaluation (see
/// `crate::eval::blocks`), when it applies: a range query's grid step, a
/// plain matrix selector without `@`, and literal parameters (so every step
/// computes the same function).
#[allow(clippy::too_many_arguments)]
fn from_block(
    ev: &Evaluator,
    name: &str,
    args: &[&Expr],
    range_idx: usize,
    t: i64,
    keep_name: bool,
    p0: f64,
    p1: f64,
) -> Result<Option<Vec<VSample>>> {
    if name == "absent_over_time" {
        return Ok(None);
    }
    let Some(idx) = ev.grid_index(t) else {
        return Ok(None);
    };
    let mut range_expr = match args.get(range_idx) {
        Some(e) => *e,
        None => return Ok(None),
    };
    while let Expr::Paren(p) = range_expr {
        range_expr = &p.expr;
    }
    let Expr::MatrixSelector(ms) = range_expr else {
        return Ok(None);
    };
    let literal = |e: &Expr| {
        let mut e = e;
        while let Expr::Paren(p) = e {
            e = &p.expr;
        }
        matches!(e, Expr::NumberLiteral(_))
    };
    if ms.vs.at.is_some()
        || args
            .iter()
            .enumerate()
            .any(|(i, a)| i != range_idx && !literal(a))
    {
        return Ok(None);
    }
    let counter_check = matches!(name, "rate" | "increase");
    let on_series = |labels: &fleetwatch_model::Labels| {
        if counter_check {
            if let Some(i) = labels.metric_name().and_then(possible_non_counter) {
                ev.info(i);
            }
        }
    };
    let f = |s: &[Sample], arg: &RangeArg<'_>, t: i64, resets: Option<f64>| match (name, resets) {
        ("rate" | "increase", Some(r)) => extrapolated_rate_with(s, arg, Some(r), name == "rate"),
        _ => eval_one(name, s, arg, t, p0, p1),
    };
    let node = std::ptr::from_ref(ms) as usize;
    let func = RangeFn {
        window: &f,
        needs_resets: matches!(name, "rate" | "increase"),
        on_series: &on_series,
        drop_name: !keep_name,
    };
    ev.range_block_result(node, ms, idx, &func)
}

/// One series' result, or `None` when the function yields no sample.
fn eval_one(name: &str, s: &[Sample], arg: &RangeArg<'_>, t: i64, p0: f64, p1: f64) -> Option<f64> {
    let vals = || s.iter().map(|x| x.value);
    let first = s.first()?;
    let last = s.last()?;
    Some(match name {
        "rate" => extrapolated_rate(s, arg, true, true)?,
        "increase" => extrapolated_rate(s, arg, true, false)?,
        "delta" => extrapolated_rate(s, arg, false, false)?,
        "irate" | "idelta" => instant_delta(s, name == "irate")?,
        "changes" => s
            .iter()
            .zip(s.iter().skip(1))
            .filter(|(a, b)| !(a.value == b.value || (a.value.is_nan() && b.value.is_nan())))
            .count() as f64,
        "resets" => s
            .iter()
            .zip(s.iter().skip(1))
            .filter(|(a, b)| b.value < a.value)
            .count() as f64,
        "deriv" => {
            if s.len() < 2 {
                return None;
            }
            linear_regression(s, first.timestamp_ms).0
        }
        "predict_linear" => {
            if s.len() < 2 {
                return None;
            }
            let (slope, intercept) = linear_regression(s, t);
            intercept + slope * p0
        }
        "avg_over_time" => stats::kahan_mean(vals()),
        "sum_over_time" => stats::kahan_sum(vals()),
        "count_over_time" => s.len() as f64,
        "present_over_time" => 1.0,
        "last_over_time" => last.value,
        "first_over_time" => first.value,
        "ts_of_last_over_time" => last.timestamp_ms as f64 / 1000.0,
        "ts_of_first_over_time" => first.timestamp_ms as f64 / 1000.0,
        "min_over_time" | "max_over_time" | "ts_of_min_over_time" | "ts_of_max_over_time" => {
            let want_max = name.contains("max");
            let mut best = *first;
            for x in s.iter().skip(1) {
                let better = if want_max {
                    x.value > best.value
                } else {
                    x.value < best.value
                };
                if better || best.value.is_nan() {
                    best = *x;
                }
            }
            if name.starts_with("ts_of") {
                best.timestamp_ms as f64 / 1000.0
            } else {
                best.value
            }
        }
        "quantile_over_time" => stats::quantile(p0, vals().collect()),
        "stddev_over_time" => stats::variance(vals()).sqrt(),
        "stdvar_over_time" => stats::variance(vals()),
        "mad_over_time" if vals().any(f64::is_nan) => f64::NAN,
        "mad_over_time" => {
            let median = stats::quantile(0.5, vals().collect());
            stats::quantile(0.5, vals().map(|v| (v - median).abs()).collect())
        }
        "double_exponential_smoothing" => double_exponential_smoothing(s, p0, p1)?,
        _ => return None,
    })
}

/// Prometheus's `extrapolatedRate` for `rate`, `increase` and `delta`.
fn extrapolated_rate(
    s: &[Sample],
    arg: &RangeArg<'_>,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    let resets = is_counter.then(|| counter_resets(s));
    extrapolated_rate_with(s, arg, resets, is_rate)
}

/// What counter resets add to a window's increase: the value before each
/// drop.
pub(crate) fn counter_resets(s: &[Sample]) -> f64 {
    s.windows(2)
        .filter(|w| w[1].value < w[0].value)
        .map(|w| w[0].value)
        .sum()
}

/// [`extrapolated_rate`] with the counter-reset correction given (`None`
/// for `delta`, which has none).
fn extrapolated_rate_with(
    s: &[Sample],
    arg: &RangeArg<'_>,
    resets: Option<f64>,
    is_rate: bool,
) -> Option<f64> {
    if s.len() < 2 {
        return None;
    }
    let first = s.first()?;
    let last = s.last()?;
    let is_counter = resets.is_some();
    let result = last.value - first.value + resets.unwrap_or(0.0);
    let mut to_start = (first.timestamp_ms - arg.range_start) as f64 / 1000.0;
    let mut to_end = (arg.range_end - last.timestamp_ms) as f64 / 1000.0;
    let sampled = (last.timestamp_ms - first.timestamp_ms) as f64 / 1000.0;
    let avg_interval = sampled / (s.len() - 1) as f64;
    let threshold = avg_interval * 1.1;
    if to_start >= threshold {
        to_start = avg_interval / 2.0;
    }
    if is_counter && result > 0.0 && first.value >= 0.0 {
        let to_zero = sampled * (first.value / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = avg_interval / 2.0;
    }
    let mut factor = (sampled + to_start + to_end) / sampled;
    if is_rate {
        factor /= (arg.range_end - arg.range_start) as f64 / 1000.0;
    }
    Some(result * factor)
}

/// `irate` / `idelta` from the last two samples.
fn instant_delta(s: &[Sample], is_rate: bool) -> Option<f64> {
    let [.., prev, last] = s else {
        return None;
    };
    let mut result = if is_rate && last.value < prev.value {
        last.value
    } else {
        last.value - prev.value
    };
    if is_rate {
        let interval = last.timestamp_ms - prev.timestamp_ms;
        if interval == 0 {
            return None;
        }
        result /= interval as f64 / 1000.0;
    }
    Some(result)
}

/// Least-squares fit of value over time (seconds from `intercept_ms`):
/// returns (slope, intercept).
fn linear_regression(s: &[Sample], intercept_ms: i64) -> (f64, f64) {
    let (mut n, mut sx, mut cx, mut sy, mut cy) = (0.0f64, 0.0, 0.0, 0.0, 0.0);
    let (mut sxy, mut cxy, mut sx2, mut cx2) = (0.0f64, 0.0, 0.0, 0.0);
    let init_y = s.first().map(|x| x.value).unwrap_or(f64::NAN);
    let mut const_y = true;
    for (i, x) in s.iter().enumerate() {
        if const_y && i > 0 && x.value != init_y {
            const_y = false;
        }
        n += 1.0;
        let xv = (x.timestamp_ms - intercept_ms) as f64 / 1000.0;
        (sx, cx) = kahan_inc(xv, sx, cx);
        (sy, cy) = kahan_inc(x.value, sy, cy);
        (sxy, cxy) = kahan_inc(xv * x.value, sxy, cxy);
        (sx2, cx2) = kahan_inc(xv * xv, sx2, cx2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    let (sx, sy, sxy, sx2) = (sx + cx, sy + cy, sxy + cxy, sx2 + cx2);
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    (slope, sy / n - slope * sx / n)
}

/// Holt's linear smoothing with smoothing factor `sf` and trend factor `tf`.
fn double_exponential_smoothing(s: &[Sample], sf: f64, tf: f64) -> Option<f64> {
    let in_unit = |x: f64| x > 0.0 && x < 1.0;
    if !in_unit(sf) || !in_unit(tf) || s.len() < 2 {
        return None;
    }
    let mut s1 = s.first()?.value;
    let mut b = s.get(1)?.value - s1;
    let mut s0 = 0.0;
    for (i, x) in s.iter().enumerate().skip(1) {
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let y = (1.0 - sf) * (s1 + b);
        s0 = s1;
        s1 = sf * x.value + y;
    }
    Some(s1)
}
