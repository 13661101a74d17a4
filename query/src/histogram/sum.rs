//! Compensated sums and means of histograms (`sum`/`avg` aggregation,
//! `sum_over_time`/`avg_over_time`).

use super::ops::Combined;
use super::{FloatHistogram, HistogramError};

/// A running sum of histograms with Kahan-Neumaier compensation of the
/// `sum` and `count` fields (so `1e100 + x - 1e100` keeps `x`).
#[derive(Debug, Clone)]
pub struct HistogramSum {
    acc: FloatHistogram,
    c_sum: f64,
    c_count: f64,
}

impl HistogramSum {
    /// A sum starting at `first`.
    pub fn new(first: &FloatHistogram) -> Self {
        Self {
            acc: first.clone(),
            c_sum: 0.0,
            c_count: 0.0,
        }
    }

    /// Adds `h`.
    pub fn add(&mut self, h: &FloatHistogram) -> Result<Combined, HistogramError> {
        let (sum, count) = (self.acc.sum, self.acc.count);
        let combined = self.acc.add(h)?;
        (self.acc.sum, self.c_sum) = crate::stats::kahan_inc(h.sum, sum, self.c_sum);
        (self.acc.count, self.c_count) = crate::stats::kahan_inc(h.count, count, self.c_count);
        Ok(combined)
    }

    /// The mean of `hists` (at least one): their compensated sum divided
    /// by their number, or, when that sum overflows, the incrementally
    /// computed mean.
    pub fn mean(hists: &[&FloatHistogram]) -> Result<(FloatHistogram, Combined), HistogramError> {
        let Some((first, rest)) = hists.split_first() else {
            return Ok((FloatHistogram::default(), Combined::default()));
        };
        let mut acc = Self::new(first);
        let mut combined = Combined::default();
        for h in rest {
            let c = acc.add(h)?;
            combined.counter_reset_collision |= c.counter_reset_collision;
            combined.custom_buckets_reconciled |= c.custom_buckets_reconciled;
        }
        let n = hists.len() as f64;
        let mut sum = acc.finish();
        if sum.count.is_finite() || hists.iter().any(|h| !h.count.is_finite()) {
            sum.div(n);
            return Ok((sum, combined));
        }
        let hint = sum.counter_reset_hint;
        let mut mean = FloatHistogram::clone(first);
        for (i, h) in rest.iter().enumerate() {
            // mean += h/k - mean/k, each term finite.
            let k = i as f64 + 2.0;
            let mut delta = FloatHistogram::clone(h);
            delta.div(k);
            let mut m = mean.clone();
            m.div(k);
            delta.sub(&m)?;
            mean.add(&delta)?;
        }
        mean.counter_reset_hint = hint;
        Ok((mean, combined))
    }

    /// The compensated sum.
    pub fn finish(self) -> FloatHistogram {
        let mut h = self.acc;
        h.sum += self.c_sum;
        h.count += self.c_count;
        h
    }
}
