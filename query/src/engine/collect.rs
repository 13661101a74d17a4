//! Turning evaluation results into query results: delayed metric-name
//! removal, the duplicate-label-set check, and collecting the steps of a
//! range query into series.

use std::sync::Arc;

use fleetwatch_model::{Labels, Sample};

use crate::error::{QueryError, Result};
use crate::functions::check_unique_labels;
use crate::hash::FastMap;
use crate::histogram::HistogramPoint;
use crate::value::VSample;

/// One output series of a range query being collected.
pub(crate) struct Collected {
    /// The final labels.
    pub labels: Arc<Labels>,
    /// One float sample per step the series has a float value at.
    pub samples: Vec<Sample>,
    /// One histogram per step the series has a histogram at.
    pub histograms: Vec<HistogramPoint>,
}

/// Collects the steps of a range query into series. Evaluation mostly
/// passes the same label `Arc`s from step to step, so series are found by
/// pointer first and by content only for new label sets.
#[derive(Default)]
pub(super) struct Accumulator {
    /// (source labels pointer, drop name) to series index. The source
    /// `Arc`s are kept alive in `sources`, so a pointer is never reused.
    by_ptr: FastMap<(usize, bool), usize>,
    sources: Vec<Arc<Labels>>,
    by_labels: FastMap<Arc<Labels>, usize>,
    /// The series collected so far, in order of first appearance.
    pub series: Vec<Collected>,
}

impl Accumulator {
    /// Adds the sample `s` of the step at `t`; fails when the step already
    /// has a sample with the same final labels.
    pub(super) fn push(&mut self, s: VSample, t: i64) -> Result<()> {
        // Only labels held elsewhere too (by the loaded data) come back
        // unchanged in later steps; others are looked up by content.
        let shared = Arc::strong_count(&s.labels) > 1;
        let key = (Arc::as_ptr(&s.labels) as usize, s.drop_name);
        let cached = if shared {
            self.by_ptr.get(&key).copied()
        } else {
            None
        };
        let value = s.value;
        let hist = s.hist.clone();
        let idx = match cached {
            Some(i) => i,
            None => {
                if shared {
                    self.sources.push(Arc::clone(&s.labels));
                }
                let labels = s.final_labels();
                let next = self.series.len();
                let i = *self.by_labels.entry(Arc::clone(&labels)).or_insert(next);
                if i == next {
                    self.series.push(Collected {
                        labels,
                        samples: Vec::new(),
                        histograms: Vec::new(),
                    });
                }
                if shared {
                    self.by_ptr.insert(key, i);
                }
                i
            }
        };
        let Some(series) = self.series.get_mut(idx) else {
            return Ok(());
        };
        if series.samples.last().is_some_and(|p| p.timestamp_ms == t)
            || series
                .histograms
                .last()
                .is_some_and(|p| p.timestamp_ms == t)
        {
            return Err(QueryError::exec(
                "vector cannot contain metrics with the same labelset",
            ));
        }
        match hist {
            Some(h) => series.histograms.push(HistogramPoint {
                timestamp_ms: t,
                histogram: h,
            }),
            None => series.samples.push(Sample::new(t, value)),
        }
        Ok(())
    }
}

/// Joins the series of accumulators that collected consecutive chunks of
/// steps, in time order: samples of the same final labels are appended.
pub(super) fn concat(parts: Vec<Accumulator>) -> Vec<Collected> {
    let mut index: FastMap<Arc<Labels>, usize> = FastMap::default();
    let mut out: Vec<Collected> = Vec::new();
    for part in parts {
        for c in part.series {
            match index.get(&c.labels) {
                Some(&i) => {
                    if let Some(series) = out.get_mut(i) {
                        series.samples.extend(c.samples);
                    }
                }
                None => {
                    index.insert(Arc::clone(&c.labels), out.len());
                    out.push(c);
                }
            }
        }
    }
    out
}

/// Applies delayed metric-name removal to a final vector and checks that
/// the label sets are then unique.
pub(super) fn finish_vector(v: Vec<VSample>) -> Result<Vec<VSample>> {
    // Label sets are unique during evaluation; only removing metric names
    // can make two equal.
    let renamed = v
        .iter()
        .any(|s| s.drop_name && s.labels.metric_name().is_some());
    let v: Vec<VSample> = v
        .into_iter()
        .map(|s| {
            let ts = s.ts;
            let value = s.value;
            let hist = s.hist.clone();
            VSample {
                hist,
                ..VSample::new(s.final_labels(), value, ts)
            }
        })
        .collect();
    if renamed {
        check_unique_labels(&v)?;
    }
    Ok(v)
}
