//! `histogram_quantile`, `histogram_quantiles` and `histogram_fraction`
//! over classic (`le`-bucketed) and native histograms, and the native-only
//! `histogram_count`/`sum`/`avg`/`stddev`/`stdvar`.

use std::collections::HashMap;
use std::sync::Arc;

use fleetwatch_model::{is_valid_label_name, Labels, METRIC_NAME};

use crate::error::{QueryError, Result};
use crate::eval::Evaluator;
use crate::histogram::{stats as hstats, FloatHistogram};
use crate::value::VSample;

/// One cumulative bucket.
#[derive(Clone, Copy)]
struct Bucket {
    upper: f64,
    count: f64,
}

fn parse_le(s: &str) -> Option<f64> {
    match s.trim() {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        other => other.parse().ok(),
    }
}

/// Groups bucket series by their labels without `le`, and computes the
/// `q`-quantile of each group. The metric name is dropped from the result
/// (delayed, so that two histograms differing only by name collide).
pub(super) fn histogram_quantile(ev: &Evaluator, q: f64, v: Vec<VSample>, t: i64) -> Vec<VSample> {
    per_histogram(
        ev,
        v,
        t,
        |b| bucket_quantile(q, b),
        |h| hstats::quantile(q, h),
    )
}

/// The native-only functions: `histogram_count`, `histogram_sum`,
/// `histogram_avg`, `histogram_stddev`, `histogram_stdvar` of every
/// histogram sample (float samples yield nothing).
pub(super) fn native_stat(name: &str, v: Vec<VSample>, t: i64) -> Vec<VSample> {
    let f: fn(&FloatHistogram) -> f64 = match name {
        "histogram_count" => |h| h.count,
        "histogram_sum" => |h| h.sum,
        "histogram_avg" => |h| h.sum / h.count,
        "histogram_stddev" => |h| hstats::stdvar(h).sqrt(),
        _ => hstats::stdvar,
    };
    v.into_iter()
        .filter_map(|s| {
            let value = f(s.hist.as_deref()?);
            Some(VSample {
                drop_name: true,
                ..VSample::new(s.labels, value, t)
            })
        })
        .collect()
}

/// `histogram_quantiles(v, label, q...)`: `histogram_quantile` for each
/// `q`, with `label` set to the quantile (`0.0`, `0.25`, `1.0`, `NaN`).
pub(super) fn histogram_quantiles(
    ev: &Evaluator,
    label: &str,
    qs: &[f64],
    v: Vec<VSample>,
    t: i64,
) -> Result<Vec<VSample>> {
    if !is_valid_label_name(label) || label == METRIC_NAME {
        return Err(QueryError::exec(format!("invalid label name {label:?}")));
    }
    let mut out = Vec::with_capacity(v.len() * qs.len());
    for &q in qs {
        let value = quantile_label_value(q);
        for mut s in histogram_quantile(ev, q, v.clone(), t) {
            Arc::make_mut(&mut s.labels).set(label, &value);
            out.push(s);
        }
    }
    Ok(out)
}

/// How `histogram_quantiles` writes a quantile into its label: always
/// with a fractional part (`1.0`), `NaN`, `+Inf`, `-Inf`.
fn quantile_label_value(q: f64) -> String {
    if q.is_infinite() {
        return if q > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    format!("{q:?}")
}

/// `histogram_fraction(lower, upper, v)`: per classic histogram, the
/// estimated fraction of observations in `[lower, upper]`.
pub(super) fn histogram_fraction(
    ev: &Evaluator,
    lower: f64,
    upper: f64,
    v: Vec<VSample>,
    t: i64,
) -> Vec<VSample> {
    per_histogram(
        ev,
        v,
        t,
        |b| (bucket_fraction(lower, upper, b), false),
        |h| hstats::fraction(lower, upper, h),
    )
}

/// The metric name of a sample for annotations (empty once dropped).
fn annotation_name(s: &VSample) -> &str {
    if s.drop_name {
        ""
    } else {
        s.labels.metric_name().unwrap_or("")
    }
}

/// Groups bucket series into histograms and applies `f` to each; `f`
/// also tells whether the buckets had to be made monotonic. Warns about
/// samples without a usable `le` label.
fn per_histogram(
    ev: &Evaluator,
    v: Vec<VSample>,
    t: i64,
    f: impl Fn(Vec<Bucket>) -> (f64, bool),
    native: impl Fn(&FloatHistogram) -> f64,
) -> Vec<VSample> {
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut groups: Vec<(Labels, Vec<Bucket>)> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let mut natives: Vec<(VSample, Arc<FloatHistogram>)> = Vec::new();
    for s in v {
        if let Some(h) = s.hist.clone() {
            natives.push((s, h));
            continue;
        }
        let le = s.labels.get("le").unwrap_or("");
        let Some(upper) = parse_le(le) else {
            ev.warn(format!(
                "bucket label \"le\" is missing or has a malformed value of {le:?} for metric name {:?}",
                annotation_name(&s)
            ));
            continue;
        };
        let name = annotation_name(&s).to_string();
        let mut key = Arc::unwrap_or_clone(s.labels);
        key.remove("le");
        let b = Bucket {
            upper,
            count: s.value,
        };
        match index.get(&key) {
            Some(&i) => {
                if let Some(g) = groups.get_mut(i) {
                    g.1.push(b);
                }
            }
            None => {
                index.insert(key.clone(), groups.len());
                groups.push((key, vec![b]));
                names.push(name);
            }
        }
    }
    let mut out = Vec::with_capacity(groups.len() + natives.len());
    for (s, h) in natives {
        if let Some(&i) = index.get(&*s.labels) {
            ev.warn(format!(
                "vector contains a mix of classic and native histograms for metric name {:?}",
                annotation_name(&s)
            ));
            if let Some(g) = groups.get_mut(i) {
                g.1.clear();
            }
            continue;
        }
        out.push(VSample {
            drop_name: true,
            ..VSample::new(s.labels, native(&h), t)
        });
    }
    let classic = groups
        .into_iter()
        .zip(names)
        .filter(|((_, buckets), _)| !buckets.is_empty())
        .map(|((labels, buckets), name)| {
            let (value, fixed) = f(buckets);
            if fixed {
                ev.info(format!(
                    "input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) for metric name {name:?}"
                ));
            }
            VSample {
                drop_name: true,
                ..VSample::new(labels, value, t)
            }
        });
    out.extend(classic);
    out
}

fn almost_equal(a: f64, b: f64, eps: f64) -> bool {
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < eps * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < eps
}

/// Sorts buckets, requires a `+Inf` bucket, merges equal bounds and makes
/// counts monotonic (ignoring tiny floating-point deltas); also tells
/// whether a count had to be raised.
fn normalize(mut buckets: Vec<Bucket>) -> Option<(Vec<Bucket>, bool)> {
    buckets.sort_by(|a, b| a.upper.total_cmp(&b.upper));
    if !buckets.last().is_some_and(|b| b.upper == f64::INFINITY) {
        return None;
    }
    // Merge buckets with the same upper bound.
    let mut merged: Vec<Bucket> = Vec::with_capacity(buckets.len());
    for b in buckets {
        match merged.last_mut() {
            Some(last) if last.upper == b.upper => last.count += b.count,
            _ => merged.push(b),
        }
    }
    let mut buckets = merged;
    let mut fixed = false;
    // Force monotonicity, ignoring tiny floating-point deltas.
    if let Some(first) = buckets.first() {
        let mut prev = first.count;
        for b in buckets.iter_mut().skip(1) {
            let curr = b.count;
            if curr == prev {
                continue;
            }
            if almost_equal(prev, curr, 1e-12) || curr < prev {
                fixed |= !almost_equal(prev, curr, 1e-12);
                b.count = prev;
                continue;
            }
            prev = curr;
        }
    }
    Some((buckets, fixed))
}

/// The estimated fraction of observations in `[lower, upper]`, linearly
/// interpolating inside finite buckets (the first bucket starts at 0 when
/// its upper bound is positive). An infinite-width bucket counts fully
/// only when the range reaches its infinite end.
fn bucket_fraction(lower: f64, upper: f64, buckets: Vec<Bucket>) -> f64 {
    let Some((buckets, _)) = normalize(buckets) else {
        return f64::NAN;
    };
    let count = buckets.last().map_or(0.0, |b| b.count);
    if count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let mut inside = 0.0;
    let mut prev: Option<Bucket> = None;
    for b in &buckets {
        let (lb, below) = match prev {
            Some(p) => (p.upper, p.count),
            None if b.upper > 0.0 => (0.0, 0.0),
            None => (f64::NEG_INFINITY, 0.0),
        };
        let n = b.count - below;
        inside += if lb == f64::NEG_INFINITY {
            if lower == f64::NEG_INFINITY {
                n
            } else {
                0.0
            }
        } else if b.upper == f64::INFINITY {
            if upper == f64::INFINITY {
                n
            } else {
                0.0
            }
        } else {
            let overlap = (upper.min(b.upper) - lower.max(lb)).max(0.0);
            n * overlap / (b.upper - lb)
        };
        prev = Some(*b);
    }
    inside / count
}

/// Prometheus's `BucketQuantile`, and whether the buckets had to be made
/// monotonic.
fn bucket_quantile(q: f64, buckets: Vec<Bucket>) -> (f64, bool) {
    if q.is_nan() {
        return (f64::NAN, false);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, false);
    }
    if q > 1.0 {
        return (f64::INFINITY, false);
    }
    let Some((buckets, fixed)) = normalize(buckets) else {
        return (f64::NAN, false);
    };
    (interpolate(q, &buckets), fixed)
}

/// The quantile of sorted, monotonic buckets ending with `+Inf`.
fn interpolate(q: f64, buckets: &[Bucket]) -> f64 {
    if buckets.len() < 2 {
        return f64::NAN;
    }
    let n = buckets.len();
    let upper = |i: usize| buckets.get(i).map_or(f64::NAN, |b| b.upper);
    let count = |i: usize| buckets.get(i).map_or(f64::NAN, |b| b.count);
    let observations = count(n - 1);
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let b = buckets
        .get(..n - 1)
        .map_or(0, |head| head.partition_point(|x| x.count < rank));
    if b == n - 1 {
        return upper(n - 2);
    }
    if b == 0 && upper(0) <= 0.0 {
        return upper(0);
    }
    let bucket_end = upper(b);
    let mut in_bucket = count(b);
    let mut bucket_start = 0.0;
    if b > 0 {
        bucket_start = upper(b - 1);
        in_bucket -= count(b - 1);
        rank -= count(b - 1);
    }
    bucket_start + (bucket_end - bucket_start) * (rank / in_bucket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolates_inside_bucket() {
        let b = |upper, count| Bucket { upper, count };
        let buckets = vec![
            b(0.1, 10.0),
            b(0.5, 30.0),
            b(1.0, 40.0),
            b(f64::INFINITY, 40.0),
        ];
        assert!((bucket_quantile(0.5, buckets.clone()).0 - 0.3).abs() < 1e-12);
        assert_eq!(bucket_quantile(1.0, buckets.clone()), (1.0, false));
        assert!(bucket_quantile(0.5, vec![b(1.0, 3.0)]).0.is_nan());
        let nonmonotonic = vec![b(1.0, 5.0), b(2.0, 4.0), b(f64::INFINITY, 6.0)];
        assert!(bucket_quantile(0.5, nonmonotonic).1);
    }

    #[test]
    fn quantile_labels() {
        assert_eq!(quantile_label_value(0.0), "0.0");
        assert_eq!(quantile_label_value(1.0), "1.0");
        assert_eq!(quantile_label_value(0.25), "0.25");
        assert_eq!(quantile_label_value(-0.1), "-0.1");
        assert_eq!(quantile_label_value(f64::NAN), "NaN");
        assert_eq!(quantile_label_value(f64::INFINITY), "+Inf");
    }
}
