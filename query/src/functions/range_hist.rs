//! Range-vector functions over series that hold native histograms (alone
//! or mixed with floats), following Prometheus: the rate family and
//! `sum`/`avg_over_time` work on histograms only, `count`/`last`/`first`
//! and the `ts_of_last`/`ts_of_first` functions on both kinds, `changes`
//! and `resets` count switches between kinds too, and the purely numeric
//! functions use the float samples and ignore histograms.

use std::sync::Arc;

use fleetwatch_model::Sample;

use crate::eval::{Evaluator, RangeArg, WindowSeries};
use crate::histogram::sum::HistogramSum;
use crate::histogram::{CounterResetHint, FloatHistogram, HistogramPoint};

/// One function result.
pub(super) enum Output {
    /// A float.
    Float(f64),
    /// A histogram.
    Histogram(FloatHistogram),
}

/// A sample of either kind, for walking a mixed series in time order.
#[derive(Clone, Copy)]
enum Point<'a> {
    Float(&'a Sample),
    Histogram(&'a HistogramPoint),
}

impl Point<'_> {
    fn ts(&self) -> i64 {
        match self {
            Point::Float(s) => s.timestamp_ms,
            Point::Histogram(h) => h.timestamp_ms,
        }
    }
}

/// All samples of a series in time order.
fn merged<'a>(s: &'a WindowSeries<'_>) -> Vec<Point<'a>> {
    let mut out: Vec<Point<'a>> = s
        .samples
        .iter()
        .map(Point::Float)
        .chain(s.histograms.iter().map(Point::Histogram))
        .collect();
    out.sort_by_key(Point::ts);
    out
}

fn metric_name(s: &WindowSeries<'_>) -> String {
    s.labels.metric_name().unwrap_or("").to_string()
}

fn warn_mixed(ev: &Evaluator, s: &WindowSeries<'_>) {
    ev.warn(format!(
        "encountered a mix of histograms and floats for metric name {:?}",
        metric_name(s)
    ));
}

fn warn_mixed_schemas(ev: &Evaluator, s: &WindowSeries<'_>) {
    ev.warn(format!(
        "vector contains a mix of histograms with exponential and custom buckets schemas for metric name {:?}",
        metric_name(s)
    ));
}

/// True for the functions this module evaluates on a series with
/// histograms; the others use its float samples only.
pub(super) fn handles(name: &str) -> bool {
    matches!(
        name,
        "rate"
            | "increase"
            | "delta"
            | "irate"
            | "idelta"
            | "changes"
            | "resets"
            | "sum_over_time"
            | "avg_over_time"
            | "count_over_time"
            | "present_over_time"
            | "last_over_time"
            | "first_over_time"
            | "ts_of_last_over_time"
            | "ts_of_first_over_time"
    )
}

/// Evaluates `name` over a series that has histogram samples.
pub(super) fn eval_one(
    ev: &Evaluator,
    name: &str,
    s: &WindowSeries<'_>,
    arg: &RangeArg<'_>,
) -> Option<Output> {
    let hs = &s.histograms;
    Some(match name {
        "rate" | "increase" | "delta" => {
            if !s.samples.is_empty() {
                warn_mixed(ev, s);
                return None;
            }
            Output::Histogram(extrapolated_rate(
                ev,
                s,
                arg,
                name != "delta",
                name == "rate",
            )?)
        }
        "irate" | "idelta" => {
            let points = merged(s);
            let [.., prev, last] = points.as_slice() else {
                return None;
            };
            match (prev, last) {
                (Point::Histogram(a), Point::Histogram(b)) => {
                    Output::Histogram(instant_delta(ev, s, a, b, name == "irate")?)
                }
                (Point::Float(a), Point::Float(b)) => {
                    let is_rate = name == "irate";
                    let mut v = if is_rate && b.value < a.value {
                        b.value
                    } else {
                        b.value - a.value
                    };
                    if is_rate {
                        let dt = b.timestamp_ms - a.timestamp_ms;
                        if dt == 0 {
                            return None;
                        }
                        v /= dt as f64 / 1000.0;
                    }
                    Output::Float(v)
                }
                _ => {
                    warn_mixed(ev, s);
                    return None;
                }
            }
        }
        "changes" | "resets" => {
            let points = merged(s);
            let n = points
                .iter()
                .zip(points.iter().skip(1))
                .filter(|(a, b)| match (a, b) {
                    (Point::Float(a), Point::Float(b)) => {
                        if name == "changes" {
                            !(a.value == b.value || (a.value.is_nan() && b.value.is_nan()))
                        } else {
                            b.value < a.value
                        }
                    }
                    (Point::Histogram(a), Point::Histogram(b)) => {
                        if name == "changes" {
                            !b.histogram.same_distribution(&a.histogram)
                        } else {
                            b.histogram.detect_reset(&a.histogram)
                        }
                    }
                    _ => true,
                })
                .count();
            Output::Float(n as f64)
        }
        "sum_over_time" | "avg_over_time" => {
            if !s.samples.is_empty() {
                warn_mixed(ev, s);
                return None;
            }
            let (first, rest) = hs.split_first()?;
            let mut acc = HistogramSum::new(&first.histogram);
            for p in rest {
                if acc.add(&p.histogram).is_err() {
                    warn_mixed_schemas(ev, s);
                    return None;
                }
            }
            let mut sum = if name == "avg_over_time" {
                let all: Vec<&FloatHistogram> = hs.iter().map(|p| &*p.histogram).collect();
                HistogramSum::mean(&all).ok()?.0
            } else {
                acc.finish()
            };
            sum.compact();
            Output::Histogram(sum)
        }
        "count_over_time" => Output::Float((s.samples.len() + hs.len()) as f64),
        "present_over_time" => Output::Float(1.0),
        "last_over_time" | "ts_of_last_over_time" | "first_over_time" | "ts_of_first_over_time" => {
            let points = merged(s);
            let p = if name.contains("last") {
                points.last()?
            } else {
                points.first()?
            };
            match (name.starts_with("ts_of"), p) {
                (true, p) => Output::Float(p.ts() as f64 / 1000.0),
                (false, Point::Float(f)) => Output::Float(f.value),
                (false, Point::Histogram(h)) => {
                    Output::Histogram(FloatHistogram::clone(&h.histogram))
                }
            }
        }
        _ => return None,
    })
}

/// Prometheus's `histogramRate` plus the extrapolation of `extrapolatedRate`.
fn extrapolated_rate(
    ev: &Evaluator,
    s: &WindowSeries<'_>,
    arg: &RangeArg<'_>,
    is_counter: bool,
    is_rate: bool,
) -> Option<FloatHistogram> {
    let hs = &s.histograms;
    if hs.len() < 2 {
        return None;
    }
    let first = hs.first()?;
    let last = hs.last()?;
    let custom = first.histogram.uses_custom_buckets();
    let mixed = hs
        .iter()
        .any(|p| p.histogram.uses_custom_buckets() != custom);
    // Two samples of different bucket kinds: the change of layout is a
    // counter reset, so the increase is the last histogram itself.
    if mixed && hs.len() > 2 {
        warn_mixed_schemas(ev, s);
        return None;
    }
    if is_counter && hs.iter().any(|p| p.histogram.is_gauge()) {
        ev.warn(format!(
            "this native histogram metric is not a counter: {:?}",
            metric_name(s)
        ));
    }
    let mut h = FloatHistogram::clone(&last.histogram);
    if !mixed {
        let min_schema = hs.iter().map(|p| p.histogram.schema).min()?;
        h.reduce_resolution(min_schema);
        let mut reconciled = h.sub(&first.histogram).ok()?.custom_buckets_reconciled;
        if is_counter {
            for (prev, cur) in hs.iter().zip(hs.iter().skip(1)) {
                if cur.histogram.detect_reset(&prev.histogram) {
                    reconciled |= h.add(&prev.histogram).ok()?.custom_buckets_reconciled;
                }
            }
        }
        if reconciled {
            ev.info("mismatched custom buckets were reconciled during subtraction".to_string());
        }
    }
    if !is_counter && (!first.histogram.is_gauge() || !last.histogram.is_gauge()) {
        ev.warn(format!(
            "this native histogram metric is not a gauge: {:?}",
            metric_name(s)
        ));
    }
    h.counter_reset_hint = CounterResetHint::Gauge;
    h.compact();

    let mut to_start = (first.timestamp_ms - arg.range_start) as f64 / 1000.0;
    let mut to_end = (arg.range_end - last.timestamp_ms) as f64 / 1000.0;
    let sampled = (last.timestamp_ms - first.timestamp_ms) as f64 / 1000.0;
    let avg_interval = sampled / (hs.len() - 1) as f64;
    let threshold = avg_interval * 1.1;
    if to_start >= threshold {
        to_start = avg_interval / 2.0;
    }
    if is_counter && h.count > 0.0 && first.histogram.count >= 0.0 {
        let to_zero = sampled * (first.histogram.count / h.count);
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
    h.scale(factor);
    Some(h)
}

/// `irate`/`idelta` between the last two histograms.
fn instant_delta(
    ev: &Evaluator,
    s: &WindowSeries<'_>,
    prev: &HistogramPoint,
    last: &HistogramPoint,
    is_rate: bool,
) -> Option<FloatHistogram> {
    let (a, b): (&Arc<FloatHistogram>, &Arc<FloatHistogram>) = (&prev.histogram, &last.histogram);
    if is_rate && (a.is_gauge() || b.is_gauge()) {
        ev.warn(format!(
            "this native histogram metric is not a counter: {:?}",
            metric_name(s)
        ));
    }
    if !is_rate && (!a.is_gauge() || !b.is_gauge()) {
        ev.warn(format!(
            "this native histogram metric is not a gauge: {:?}",
            metric_name(s)
        ));
    }
    let mut h = FloatHistogram::clone(b);
    if !is_rate || !b.detect_reset(a) {
        match h.sub(a) {
            Ok(c) => {
                if c.custom_buckets_reconciled {
                    ev.info(
                        "mismatched custom buckets were reconciled during subtraction".to_string(),
                    );
                }
            }
            Err(_) => {
                warn_mixed_schemas(ev, s);
                return None;
            }
        }
    }
    h.counter_reset_hint = CounterResetHint::Gauge;
    h.compact();
    if is_rate {
        let dt = last.timestamp_ms - prev.timestamp_ms;
        if dt == 0 {
            return None;
        }
        h.div(dt as f64 / 1000.0);
    }
    Some(h)
}
