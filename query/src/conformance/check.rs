//! Comparing engine results with a script's expectations, with the
//! promqltest float tolerance.

use fleetwatch_model::Labels;

use super::script::{AnnotationRule, EvalCmd, Expected, Point, PointValue};
use crate::histogram::{Bucket, FloatHistogram};
use crate::{InstantSample, QueryError, QueryValue, RangeSeries};

/// Relative tolerance as in promqltest (`almost.Equal` with 1e-6).
fn almost_equal(a: f64, b: f64) -> bool {
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let diff = (a - b).abs();
    let abs_sum = a.abs() + b.abs();
    const EPS: f64 = 1e-6;
    if a == 0.0 || b == 0.0 || abs_sum < f64::MIN_POSITIVE {
        return diff < EPS * f64::MIN_POSITIVE;
    }
    diff / abs_sum.min(f64::MAX) < EPS
}

/// Buckets with their counts compared by `almost_equal`, empty ones
/// ignored (promqltest compares after `Compact(0)`).
fn buckets_match(a: &[Bucket], b: &[Bucket]) -> bool {
    let a: Vec<&Bucket> = a.iter().filter(|x| x.count != 0.0).collect();
    let b: Vec<&Bucket> = b.iter().filter(|x| x.count != 0.0).collect();
    a.len() == b.len()
        && a.iter()
            .zip(&b)
            .all(|(x, y)| x.index == y.index && almost_equal(x.count, y.count))
}

/// promqltest's `compareNativeHistogram`: the hint only when the
/// expectation states it, custom bounds only for custom-bucket schemas.
fn histogram_matches(exp: &FloatHistogram, cur: &FloatHistogram, hint_set: bool) -> bool {
    exp.schema == cur.schema
        && almost_equal(exp.count, cur.count)
        && almost_equal(exp.sum, cur.sum)
        && (!exp.uses_custom_buckets() || exp.custom_values == cur.custom_values)
        && exp.zero_threshold == cur.zero_threshold
        && almost_equal(exp.zero_count, cur.zero_count)
        && buckets_match(&exp.positive, &cur.positive)
        && buckets_match(&exp.negative, &cur.negative)
        && (!hint_set || exp.counter_reset_hint == cur.counter_reset_hint)
}

/// Whether a result value (float `f`, or histogram `h`) matches `want`.
fn value_matches(want: &PointValue, f: f64, h: Option<&FloatHistogram>) -> bool {
    match (want, h) {
        (PointValue::Float(w), None) => almost_equal(*w, f),
        (PointValue::Histogram(w, hint_set), Some(g)) => histogram_matches(w, g, *hint_set),
        _ => false,
    }
}

/// A result value for messages.
fn show(f: f64, h: Option<&FloatHistogram>) -> String {
    h.map_or_else(|| f.to_string(), ToString::to_string)
}

/// True when the expectation is an instant vector or a scalar.
pub(super) fn is_instant_value(e: &Expected) -> bool {
    matches!(e, Expected::Series(_) | Expected::Scalar(_))
}

/// The step at `t` of a range query result, as an instant result of the
/// expected kind.
pub(super) fn middle_step(v: QueryValue, t: i64, expected: &Expected) -> QueryValue {
    let QueryValue::Matrix(m) = v else {
        return v;
    };
    let samples: Vec<InstantSample> = m
        .into_iter()
        .filter_map(|s| {
            if let Some(h) = s.histograms.iter().find(|p| p.timestamp_ms == t) {
                return Some(InstantSample {
                    labels: s.labels,
                    timestamp_ms: t,
                    value: 0.0,
                    histogram: Some(FloatHistogram::clone(&h.histogram)),
                });
            }
            let p = s.samples.iter().find(|p| p.timestamp_ms == t)?;
            Some(InstantSample {
                labels: s.labels,
                timestamp_ms: t,
                value: p.value,
                histogram: None,
            })
        })
        .collect();
    match (expected, samples.as_slice()) {
        (Expected::Scalar(_), [one]) => QueryValue::Scalar {
            timestamp_ms: t,
            value: one.value,
        },
        _ => QueryValue::Vector(samples),
    }
}

/// Checks one eval's result against its expectation.
pub(super) fn check(ev: &EvalCmd, result: Result<QueryValue, QueryError>) -> Result<(), String> {
    if let Expected::Fail { msg, regex } = &ev.expected {
        return match result {
            Ok(v) => Err(format!("expected an error, got {v:?}")),
            Err(e) => {
                let text = e.to_string();
                if let Some(m) = msg {
                    if &text != m {
                        return Err(format!("error {text:?}, expected {m:?}"));
                    }
                }
                if let Some(r) = regex {
                    let re = regex::Regex::new(r).map_err(|e| e.to_string())?;
                    if !re.is_match(&text) {
                        return Err(format!("error {text:?} does not match {r:?}"));
                    }
                }
                Ok(())
            }
        };
    }
    let value = result.map_err(|e| format!("unexpected error: {e}"))?;
    match (&ev.expected, value) {
        (Expected::Unsupported(why), _) => Err(why.clone()),
        (Expected::String(want), QueryValue::String { value, .. }) => (want == &value)
            .then_some(())
            .ok_or(format!("got string {value:?}")),
        (Expected::Scalar(want), QueryValue::Scalar { value, .. }) => almost_equal(*want, value)
            .then_some(())
            .ok_or(format!("got scalar {value}, want {want}")),
        (Expected::Series(want), QueryValue::Vector(got)) if ev.range.is_none() => {
            compare_vector(want, &got, ev.ordered)
        }
        (Expected::Series(want), QueryValue::Matrix(got)) if ev.range.is_some() => {
            let (end, step) = ev.range.unwrap_or((ev.start, 1));
            let _ = end;
            compare_matrix(want, &got, ev.start, step)
        }
        (Expected::RangeVector { from, step, series }, QueryValue::Matrix(got)) => {
            compare_matrix(series, &got, *from, *step)
        }
        (_, got) => Err(format!("unexpected result type: {got:?}")),
    }
}

fn compare_vector(
    want: &[(Labels, Vec<Point>)],
    got: &[InstantSample],
    ordered: bool,
) -> Result<(), String> {
    let show_all = || {
        got.iter()
            .map(|s| format!("{} {}", s.labels, show(s.value, s.histogram.as_ref())))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if want.len() != got.len() {
        return Err(format!(
            "expected {} samples, got {}: [{}]",
            want.len(),
            got.len(),
            show_all()
        ));
    }
    for (i, (labels, points)) in want.iter().enumerate() {
        let Some(Some(wv)) = points.first() else {
            return Err(format!("expected sample for {labels} has no value"));
        };
        let found = if ordered {
            got.get(i).filter(|s| &s.labels == labels)
        } else {
            got.iter().find(|s| &s.labels == labels)
        };
        match found {
            None => {
                return Err(format!(
                    "missing {labels} (ordered: {ordered}); got [{}]",
                    show_all()
                ))
            }
            Some(s) if !value_matches(wv, s.value, s.histogram.as_ref()) => {
                return Err(format!(
                    "{labels}: got {}, want {wv:?}",
                    show(s.value, s.histogram.as_ref())
                ))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn compare_matrix(
    want: &[(Labels, Vec<Point>)],
    got: &[RangeSeries],
    start: i64,
    step: i64,
) -> Result<(), String> {
    let want: Vec<&(Labels, Vec<Point>)> = want
        .iter()
        .filter(|(_, p)| p.iter().any(Option::is_some))
        .collect();
    if want.len() != got.len() {
        let names: Vec<String> = got.iter().map(|s| s.labels.to_string()).collect();
        return Err(format!(
            "expected {} series, got {}: {names:?}",
            want.len(),
            got.len()
        ));
    }
    for (labels, points) in want {
        let Some(series) = got.iter().find(|s| &s.labels == labels) else {
            return Err(format!("missing series {labels}"));
        };
        let expected: Vec<(i64, &PointValue)> = points
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.as_ref().map(|v| (start + i as i64 * step, v)))
            .collect();
        let want_floats: Vec<&(i64, &PointValue)> = expected
            .iter()
            .filter(|(_, v)| matches!(v, PointValue::Float(_)))
            .collect();
        let want_hists: Vec<&(i64, &PointValue)> = expected
            .iter()
            .filter(|(_, v)| matches!(v, PointValue::Histogram(..)))
            .collect();
        let same = want_floats.len() == series.samples.len()
            && want_hists.len() == series.histograms.len()
            && want_floats
                .iter()
                .zip(&series.samples)
                .all(|((t, v), s)| *t == s.timestamp_ms && value_matches(v, s.value, None))
            && want_hists
                .iter()
                .zip(&series.histograms)
                .all(|((t, v), h)| {
                    *t == h.timestamp_ms && value_matches(v, 0.0, Some(&h.histogram))
                });
        if !same {
            let mut got: Vec<(i64, String)> = series
                .samples
                .iter()
                .map(|s| (s.timestamp_ms, s.value.to_string()))
                .chain(
                    series
                        .histograms
                        .iter()
                        .map(|h| (h.timestamp_ms, h.histogram.to_string())),
                )
                .collect();
            got.sort_by_key(|g| g.0);
            return Err(format!("{labels}: got {got:?}, want {expected:?}"));
        }
    }
    Ok(())
}

/// Checks the annotations of one kind against an `expect warn`/`expect
/// info` rule. Prometheus ends each message with the expression's
/// `(line:column)`, which this engine does not know, so a trailing
/// position in the expected message or regex is not compared.
pub(super) fn check_annotations(
    kind: &str,
    rule: &AnnotationRule,
    got: &[String],
) -> Result<(), String> {
    if !rule.present {
        return match got.first() {
            None => Ok(()),
            Some(g) => Err(format!("expected no {kind}, got {g:?}")),
        };
    }
    if got.is_empty() {
        return Err(format!("expected a {kind}, got none"));
    }
    let position = regex::Regex::new(r"\s*\(\d+:\d+\)\s*$").map_err(|e| e.to_string())?;
    if let Some(m) = &rule.msg {
        let want = position.replace(m, "");
        if !got.iter().any(|g| g == want.as_ref()) {
            return Err(format!("expected {kind} {want:?}, got {got:?}"));
        }
    }
    if let Some(r) = &rule.regex {
        let regex_position = regex::Regex::new(r"\s*\\\(\S*\\\)\s*$").map_err(|e| e.to_string())?;
        let pattern = regex_position.replace(r, "");
        let re = regex::Regex::new(&pattern).map_err(|e| e.to_string())?;
        if !got.iter().any(|g| re.is_match(g)) {
            return Err(format!("expected {kind} matching {pattern:?}, got {got:?}"));
        }
    }
    Ok(())
}
