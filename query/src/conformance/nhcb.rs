//! `load_with_nhcb`: native histograms with custom buckets (schema -53)
//! built from classic `_bucket` (and `_sum`/`_count`) float series, as
//! promqltest adds them beside the classic series.

use std::collections::BTreeMap;

use fleetwatch_model::{Labels, METRIC_NAME};

use super::classify::nhcb_series;
use crate::histogram::{Bucket, FloatHistogram, CUSTOM_BUCKETS_SCHEMA};

/// The classic series of one histogram, by timestamp.
#[derive(Default)]
struct Classic {
    /// `le` bound -> samples.
    buckets: Vec<(f64, BTreeMap<i64, f64>)>,
    sum: BTreeMap<i64, f64>,
    count: BTreeMap<i64, f64>,
}

fn parse_le(le: &str) -> Option<f64> {
    match le.trim() {
        "+Inf" | "+inf" | "Inf" | "inf" => Some(f64::INFINITY),
        other => other.parse().ok(),
    }
}

/// The histogram series named by stripping `suffix` from the name.
fn base_of(labels: &Labels, suffix: &str) -> Option<Labels> {
    let base = labels.metric_name()?.strip_suffix(suffix)?;
    let mut out = labels.clone();
    out.set(METRIC_NAME, base);
    Some(out)
}

/// One NHCB histogram from cumulative `(bound, count)` pairs sorted by
/// bound, with optional sum and count.
fn histogram(cumulative: &[(f64, f64)], sum: Option<f64>, count: Option<f64>) -> FloatHistogram {
    let mut custom_values = Vec::new();
    let mut positive = Vec::new();
    let mut prev = 0.0;
    let mut last = 0.0;
    for (i, &(bound, c)) in cumulative.iter().enumerate() {
        if bound.is_finite() {
            custom_values.push(bound);
        }
        positive.push(Bucket {
            index: i32::try_from(i).unwrap_or(i32::MAX),
            count: c - prev,
        });
        prev = c;
        last = c;
    }
    let mut h = FloatHistogram {
        schema: CUSTOM_BUCKETS_SCHEMA,
        count: count.unwrap_or(last),
        sum: sum.unwrap_or(0.0),
        positive,
        custom_values,
        ..FloatHistogram::default()
    };
    h.compact();
    h
}

/// The NHCB series for the classic histograms among `series`.
pub(super) fn convert(
    series: &[(Labels, Vec<(i64, f64)>)],
) -> Vec<(Labels, Vec<(i64, FloatHistogram)>)> {
    let mut groups: BTreeMap<Labels, Classic> = BTreeMap::new();
    for (labels, samples) in series {
        let Some(key) = nhcb_series(labels) else {
            continue;
        };
        let Some(le) = labels.get("le").and_then(parse_le) else {
            continue;
        };
        let values: BTreeMap<i64, f64> = samples.iter().copied().collect();
        let g = groups.entry(key).or_default();
        match g.buckets.iter_mut().find(|(b, _)| *b == le) {
            Some((_, v)) => *v = values,
            None => g.buckets.push((le, values)),
        }
    }
    for (labels, samples) in series {
        for (suffix, is_sum) in [("_sum", true), ("_count", false)] {
            let Some(g) = base_of(labels, suffix).and_then(|k| groups.get_mut(&k)) else {
                continue;
            };
            let values: BTreeMap<i64, f64> = samples.iter().copied().collect();
            if is_sum {
                g.sum = values;
            } else {
                g.count = values;
            }
        }
    }
    let mut out = Vec::new();
    for (labels, mut g) in groups {
        g.buckets
            .sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
        let times: std::collections::BTreeSet<i64> = g
            .buckets
            .iter()
            .flat_map(|(_, v)| v.keys().copied())
            .collect();
        let mut points = Vec::new();
        for t in times {
            let cumulative: Option<Vec<(f64, f64)>> = g
                .buckets
                .iter()
                .map(|(b, v)| v.get(&t).map(|c| (*b, *c)))
                .collect();
            let Some(cumulative) = cumulative else {
                continue;
            };
            if cumulative
                .iter()
                .any(|(_, c)| fleetwatch_model::is_stale_nan(*c))
            {
                continue;
            }
            points.push((
                t,
                histogram(
                    &cumulative,
                    g.sum.get(&t).copied(),
                    g.count.get(&t).copied(),
                ),
            ));
        }
        if !points.is_empty() {
            out.push((labels, points));
        }
    }
    out
}
