//! Histogram arithmetic: addition and subtraction across schemas (reducing
//! to the coarser one), zero-bucket widening, custom-bucket reconciliation,
//! scaling, and counter-reset detection.

use super::{Bucket, CounterResetHint, FloatHistogram, HistogramError};

/// What an addition or subtraction noticed besides its result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Combined {
    /// The operands' counter-reset hints collided (reset vs. not reset).
    pub counter_reset_collision: bool,
    /// The operands had different custom bucket bounds, reconciled by
    /// keeping only the common bounds.
    pub custom_buckets_reconciled: bool,
}

/// Maps exponential bucket `index` from `from` to the coarser `to` schema.
fn reduce_index(index: i32, from: i32, to: i32) -> i32 {
    let shift = (from - to).clamp(0, 31);
    ((index - 1) >> shift) + 1
}

/// Adds `b` into the sorted sparse bucket list.
fn add_bucket(buckets: &mut Vec<Bucket>, b: Bucket) {
    match buckets.binary_search_by_key(&b.index, |x| x.index) {
        Ok(i) => {
            if let Some(x) = buckets.get_mut(i) {
                x.count += b.count;
            }
        }
        Err(i) => buckets.insert(i, b),
    }
}

/// Buckets re-indexed to the coarser schema `to`, merged and sorted.
fn reduce_buckets(buckets: &[Bucket], from: i32, to: i32) -> Vec<Bucket> {
    if from == to {
        return buckets.to_vec();
    }
    let mut out: Vec<Bucket> = Vec::with_capacity(buckets.len());
    for b in buckets {
        let index = reduce_index(b.index, from, to);
        match out.last_mut() {
            Some(last) if last.index == index => last.count += b.count,
            _ => out.push(Bucket {
                index,
                count: b.count,
            }),
        }
    }
    out
}

/// Re-maps custom buckets onto the coarser `bounds` (a subset of the
/// histogram's own bounds): each bucket goes to the first new bucket whose
/// upper bound is at least its own.
fn remap_custom(h: &FloatHistogram, bounds: &[f64]) -> Vec<Bucket> {
    let mut out: Vec<Bucket> = Vec::new();
    for b in &h.positive {
        let upper = h.upper_bound(b.index);
        let idx = bounds.partition_point(|&x| x < upper);
        let index = i32::try_from(idx).unwrap_or(i32::MAX);
        add_bucket(
            &mut out,
            Bucket {
                index,
                count: b.count,
            },
        );
    }
    out
}

impl FloatHistogram {
    /// Converts to the coarser exponential `schema` in place.
    pub fn reduce_resolution(&mut self, schema: i32) {
        if self.uses_custom_buckets() || schema >= self.schema {
            return;
        }
        self.positive = reduce_buckets(&self.positive, self.schema, schema);
        self.negative = reduce_buckets(&self.negative, self.schema, schema);
        self.schema = schema;
    }

    /// The zero count and threshold this histogram would have with a zero
    /// bucket at least `threshold` wide: buckets reaching below it are
    /// merged in, and a populated bucket the threshold falls inside widens
    /// the threshold to that bucket's upper bound.
    pub(super) fn zero_count_for_threshold(&self, threshold: f64) -> (f64, f64) {
        let mut threshold = threshold;
        loop {
            let mut count = self.zero_count;
            let mut widened = false;
            for side in [&self.positive, &self.negative] {
                for b in side {
                    let lower = self.lower_bound(b.index);
                    if lower >= threshold {
                        break;
                    }
                    count += b.count;
                    let upper = self.upper_bound(b.index);
                    if upper > threshold {
                        if b.count != 0.0 {
                            threshold = upper;
                            widened = true;
                        }
                        break;
                    }
                }
            }
            if !widened {
                return (count, threshold);
            }
        }
    }

    /// Widens the zero bucket to `threshold` (as computed by
    /// [`Self::zero_count_for_threshold`]), dropping merged buckets.
    pub(super) fn widen_zero_bucket(&mut self, threshold: f64) {
        if threshold <= self.zero_threshold {
            return;
        }
        let (count, threshold) = self.zero_count_for_threshold(threshold);
        let keep = |h: &FloatHistogram, b: &Bucket| h.lower_bound(b.index) >= threshold;
        let positive: Vec<Bucket> = self
            .positive
            .iter()
            .filter(|b| keep(self, b))
            .copied()
            .collect();
        let negative: Vec<Bucket> = self
            .negative
            .iter()
            .filter(|b| keep(self, b))
            .copied()
            .collect();
        self.positive = positive;
        self.negative = negative;
        self.zero_count = count;
        self.zero_threshold = threshold;
    }

    /// Merges the counter-reset hints of two operands, as Prometheus does.
    fn adjust_counter_reset(&mut self, other: &FloatHistogram) -> bool {
        use CounterResetHint::{Gauge, Unknown};
        let (a, b) = (self.counter_reset_hint, other.counter_reset_hint);
        match (a, b) {
            _ if a == b => false,
            (Gauge, _) => false,
            (_, Gauge) => {
                self.counter_reset_hint = Gauge;
                false
            }
            (Unknown, _) => false,
            (_, Unknown) => {
                self.counter_reset_hint = Unknown;
                false
            }
            _ => {
                self.counter_reset_hint = Unknown;
                true
            }
        }
    }

    /// Brings `self` and a copy of `other` to one bucket layout: the
    /// coarser schema, the wider zero bucket, the common custom bounds.
    pub(super) fn align(
        &mut self,
        other: &FloatHistogram,
    ) -> Result<(FloatHistogram, bool), HistogramError> {
        if self.uses_custom_buckets() != other.uses_custom_buckets() {
            return Err(HistogramError::MixedSchemas);
        }
        let mut other = other.clone();
        if self.uses_custom_buckets() {
            if self.custom_values == other.custom_values {
                return Ok((other, false));
            }
            let common: Vec<f64> = self
                .custom_values
                .iter()
                .copied()
                .filter(|v| other.custom_values.contains(v))
                .collect();
            self.positive = remap_custom(self, &common);
            other.positive = remap_custom(&other, &common);
            self.custom_values.clone_from(&common);
            other.custom_values = common;
            return Ok((other, true));
        }
        let schema = self.schema.min(other.schema);
        self.reduce_resolution(schema);
        other.reduce_resolution(schema);
        if self.zero_threshold != other.zero_threshold {
            let threshold = self.zero_threshold.max(other.zero_threshold);
            // Widening one may widen the threshold further: iterate.
            let mut t = threshold;
            for _ in 0..4 {
                t = self
                    .zero_count_for_threshold(t)
                    .1
                    .max(other.zero_count_for_threshold(t).1);
            }
            self.widen_zero_bucket(t);
            other.widen_zero_bucket(t);
            self.zero_threshold = t;
            other.zero_threshold = t;
        }
        Ok((other, false))
    }

    /// `self += other`.
    pub fn add(&mut self, other: &FloatHistogram) -> Result<Combined, HistogramError> {
        self.combine(other, 1.0)
    }

    /// `self -= other`.
    pub fn sub(&mut self, other: &FloatHistogram) -> Result<Combined, HistogramError> {
        self.combine(other, -1.0)
    }

    fn combine(&mut self, other: &FloatHistogram, sign: f64) -> Result<Combined, HistogramError> {
        let (other, reconciled) = self.align(other)?;
        let collision = self.adjust_counter_reset(&other);
        self.count += sign * other.count;
        self.sum += sign * other.sum;
        self.zero_count += sign * other.zero_count;
        for b in &other.positive {
            add_bucket(
                &mut self.positive,
                Bucket {
                    index: b.index,
                    count: sign * b.count,
                },
            );
        }
        for b in &other.negative {
            add_bucket(
                &mut self.negative,
                Bucket {
                    index: b.index,
                    count: sign * b.count,
                },
            );
        }
        Ok(Combined {
            counter_reset_collision: collision,
            custom_buckets_reconciled: reconciled,
        })
    }

    /// Multiplies every count and the sum by `factor`.
    pub fn scale(&mut self, factor: f64) {
        self.count *= factor;
        self.sum *= factor;
        self.zero_count *= factor;
        for b in self.positive.iter_mut().chain(self.negative.iter_mut()) {
            b.count *= factor;
        }
    }

    /// Divides every count and the sum by `divisor`. Dividing by zero
    /// leaves no buckets: only the zero bucket, count and sum carry the
    /// infinite (or NaN) results, as in Prometheus.
    pub fn div(&mut self, divisor: f64) {
        self.count /= divisor;
        self.sum /= divisor;
        self.zero_count /= divisor;
        if divisor == 0.0 {
            self.positive.clear();
            self.negative.clear();
            return;
        }
        for b in self.positive.iter_mut().chain(self.negative.iter_mut()) {
            b.count /= divisor;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(schema: i32, buckets: &[(i32, f64)]) -> FloatHistogram {
        FloatHistogram {
            schema,
            count: buckets.iter().map(|b| b.1).sum(),
            positive: buckets
                .iter()
                .map(|&(index, count)| Bucket { index, count })
                .collect(),
            ..FloatHistogram::default()
        }
    }

    #[test]
    fn adds_across_schemas() {
        let mut a = h(1, &[(1, 1.0), (2, 2.0), (3, 3.0)]);
        let b = h(0, &[(1, 1.0)]);
        a.add(&b).ok();
        assert_eq!(a.schema, 0);
        assert_eq!(
            a.positive,
            vec![
                Bucket {
                    index: 1,
                    count: 4.0
                },
                Bucket {
                    index: 2,
                    count: 3.0
                }
            ]
        );
        assert_eq!(a.count, 7.0);
    }

    #[test]
    fn reconciles_custom_buckets() {
        let mut a = FloatHistogram {
            schema: super::super::CUSTOM_BUCKETS_SCHEMA,
            custom_values: vec![1.0, 2.0],
            positive: vec![
                Bucket {
                    index: 0,
                    count: 1.0,
                },
                Bucket {
                    index: 1,
                    count: 1.0,
                },
            ],
            count: 2.0,
            ..FloatHistogram::default()
        };
        let b = FloatHistogram {
            custom_values: vec![2.0],
            ..a.clone()
        };
        let r = a.add(&b).ok();
        assert_eq!(r.map(|r| r.custom_buckets_reconciled), Some(true));
        assert_eq!(a.custom_values, vec![2.0]);
    }
}
