//! `sum` and `avg` over groups holding native histograms, with
//! Prometheus's annotations for mixed or incompatible inputs.

use std::sync::Arc;

use crate::eval::Evaluator;
use crate::histogram::sum::HistogramSum;
use crate::histogram::FloatHistogram;
use crate::value::VSample;

/// What a group holds.
pub(super) enum Kind {
    /// Only floats (or nothing).
    Floats,
    /// Only histograms.
    Histograms,
    /// Both.
    Mixed,
}

/// The kind of samples in `g`.
pub(super) fn kind(g: &[VSample]) -> Kind {
    let hists = g.iter().filter(|s| s.hist.is_some()).count();
    match hists {
        0 => Kind::Floats,
        n if n == g.len() => Kind::Histograms,
        _ => Kind::Mixed,
    }
}

/// The warning for a group mixing floats and histograms.
pub(super) fn warn_mixed(ev: &Evaluator) {
    ev.warn("encountered a mix of histograms and floats for aggregation".to_string());
}

/// The sum (or, with `mean`, the average) of the histograms of `g`;
/// `None` when they cannot be added (annotated).
pub(super) fn sum(ev: &Evaluator, g: &[VSample], mean: bool) -> Option<FloatHistogram> {
    let mut hists = g.iter().filter_map(|s| s.hist.as_ref().map(|h| (s, h)));
    let (_, first) = hists.next()?;
    let mut acc = HistogramSum::new(first);
    for (s, h) in hists {
        match acc.add(h) {
            Ok(c) => {
                if c.counter_reset_collision {
                    ev.warn("conflicting counter resets during histogram aggregation".to_string());
                }
                if c.custom_buckets_reconciled {
                    ev.info(
                        "mismatched custom buckets were reconciled during aggregation".to_string(),
                    );
                }
            }
            Err(_) => {
                ev.warn(format!(
                    "vector contains a mix of histograms with exponential and custom buckets schemas for metric name {:?}",
                    s.labels.metric_name().unwrap_or("")
                ));
                return None;
            }
        }
    }
    let mut acc = if mean {
        let all: Vec<&FloatHistogram> = g.iter().filter_map(|s| s.hist.as_deref()).collect();
        HistogramSum::mean(&all).ok()?.0
    } else {
        acc.finish()
    };
    acc.compact();
    Some(acc)
}

/// Only the float samples of `v`, with an info annotation naming the
/// aggregation when histograms were left out.
pub(super) fn floats_only(ev: &Evaluator, v: Vec<VSample>, op: &str) -> Vec<VSample> {
    if v.iter().all(|s| s.hist.is_none()) {
        return v;
    }
    let name = v
        .iter()
        .find(|s| s.hist.is_some())
        .and_then(|s| s.labels.metric_name().map(str::to_string))
        .unwrap_or_default();
    ev.info(format!(
        "ignored histogram in {op} aggregation for metric name {name:?}"
    ));
    v.into_iter().filter(|s| s.hist.is_none()).collect()
}

/// A histogram sample for a group result.
pub(super) fn sample(labels: Arc<fleetwatch_model::Labels>, h: FloatHistogram, t: i64) -> VSample {
    VSample::histogram(labels, Arc::new(h), t)
}
