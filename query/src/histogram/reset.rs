//! Counter-reset detection between consecutive histograms, and the
//! equality `changes()` uses.

use super::{Bucket, CounterResetHint, FloatHistogram};

impl FloatHistogram {
    /// True when going from `previous` to `self` is a counter reset: by
    /// hint, or because any count went down (compared in `self`'s layout).
    pub fn detect_reset(&self, previous: &FloatHistogram) -> bool {
        match self.counter_reset_hint {
            CounterResetHint::Reset => return true,
            CounterResetHint::NotReset => return false,
            _ => {}
        }
        if self.count < previous.count {
            return true;
        }
        if self.uses_custom_buckets() != previous.uses_custom_buckets() {
            return true;
        }
        let decreased = |cur: &[Bucket], old: &[Bucket]| {
            old.iter().any(|b| {
                let now = cur
                    .binary_search_by_key(&b.index, |x| x.index)
                    .ok()
                    .and_then(|i| cur.get(i))
                    .map_or(0.0, |x| x.count);
                b.count > now
            })
        };
        if self.uses_custom_buckets() {
            // Different bounds are compared on the bounds both have.
            let mut cur = self.clone();
            return match cur.align(previous) {
                Ok((prev, _)) => decreased(&cur.positive, &prev.positive),
                Err(_) => true,
            };
        }
        if self.schema > previous.schema || self.zero_threshold < previous.zero_threshold {
            return true;
        }
        let (prev_zero, threshold) = previous.zero_count_for_threshold(self.zero_threshold);
        if threshold != self.zero_threshold || self.zero_count < prev_zero {
            return true;
        }
        let mut prev = previous.clone();
        prev.reduce_resolution(self.schema);
        prev.widen_zero_bucket(self.zero_threshold);
        decreased(&self.positive, &prev.positive) || decreased(&self.negative, &prev.negative)
    }

    /// Exact equality of the observed distribution (ignoring empty buckets
    /// and the counter-reset hint), as `changes()` compares histograms.
    pub fn same_distribution(&self, other: &FloatHistogram) -> bool {
        let mut a = self.clone();
        let mut b = other.clone();
        a.compact();
        b.compact();
        a.counter_reset_hint = CounterResetHint::Unknown;
        b.counter_reset_hint = CounterResetHint::Unknown;
        a == b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(buckets: &[(i32, f64)]) -> FloatHistogram {
        FloatHistogram {
            count: buckets.iter().map(|b| b.1).sum(),
            positive: buckets
                .iter()
                .map(|&(index, count)| Bucket { index, count })
                .collect(),
            ..FloatHistogram::default()
        }
    }

    #[test]
    fn detects_resets() {
        let a = h(&[(1, 2.0)]);
        let b = h(&[(1, 1.0), (2, 5.0)]);
        assert!(b.detect_reset(&a));
        assert!(!a.detect_reset(&h(&[(1, 1.0)])));
    }
}
