//! Native histograms as the engine computes with them: [`FloatHistogram`]
//! (Prometheus's float histogram: exponential bucket schemas -4..=8 and the
//! custom-bucket schema -53), with its arithmetic in [`ops`], its statistics
//! (quantile, fraction, variance) in [`stats`], compensated sums in [`sum`]
//! and the promqltest
//! `{{schema:... buckets:[...]}}` notation in [`notation`].
//!
//! Buckets are kept sparse: a sorted list of `(index, count)` per side.
//! Indexes follow Prometheus: for an exponential schema `s`, bucket `i`
//! covers `(2^((i-1)·2^-s), 2^(i·2^-s)]` (mirrored for the negative side);
//! for custom buckets, bucket `i` covers `(custom_values[i-1],
//! custom_values[i]]` with `-Inf`/`+Inf` beyond the ends.

pub mod notation;
pub mod ops;
mod reset;
pub mod stats;
pub mod sum;

use std::sync::Arc;

/// The custom-buckets schema (NHCB).
pub const CUSTOM_BUCKETS_SCHEMA: i32 = -53;

/// Errors of histogram arithmetic.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HistogramError {
    /// One operand has exponential buckets, the other custom buckets.
    #[error("vector contains a mix of histograms with exponential and custom buckets schemas")]
    MixedSchemas,
}

/// What the producer said about counter resets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CounterResetHint {
    /// Nothing known.
    #[default]
    Unknown,
    /// A counter reset happened before this histogram.
    Reset,
    /// No counter reset happened before this histogram.
    NotReset,
    /// A gauge histogram: counter resets do not apply.
    Gauge,
}

/// One populated bucket: its index and count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// The bucket index (see the module docs).
    pub index: i32,
    /// The observations in the bucket.
    pub count: f64,
}

/// A native histogram with float counts.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FloatHistogram {
    /// Bucket schema: -4..=8 exponential, -53 custom buckets.
    pub schema: i32,
    /// Observations with absolute value at most this go to the zero bucket.
    pub zero_threshold: f64,
    /// Observations in the zero bucket.
    pub zero_count: f64,
    /// All observations.
    pub count: f64,
    /// Sum of all observations.
    pub sum: f64,
    /// Positive buckets (all buckets for custom schemas), sorted by index.
    pub positive: Vec<Bucket>,
    /// Negative buckets, sorted by index.
    pub negative: Vec<Bucket>,
    /// Upper bounds of the custom buckets (schema -53 only), ascending.
    pub custom_values: Vec<f64>,
    /// The counter-reset hint.
    pub counter_reset_hint: CounterResetHint,
}

/// A histogram sample.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramPoint {
    /// Milliseconds since the epoch.
    pub timestamp_ms: i64,
    /// The histogram (shared: most evaluation steps pass it on unchanged).
    pub histogram: Arc<FloatHistogram>,
}

impl HistogramPoint {
    /// A point at `timestamp_ms`.
    pub fn new(timestamp_ms: i64, histogram: impl Into<Arc<FloatHistogram>>) -> Self {
        Self {
            timestamp_ms,
            histogram: histogram.into(),
        }
    }
}

/// One bucket with its bounds, as iterated by [`FloatHistogram::all_buckets`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketRange {
    /// Lower bound.
    pub lower: f64,
    /// Upper bound.
    pub upper: f64,
    /// Observations.
    pub count: f64,
}

/// The upper bound of exponential bucket `index` at `schema`.
pub fn exponential_upper_bound(index: i32, schema: i32) -> f64 {
    if schema > 0 {
        2f64.powf(f64::from(index) / f64::from(1u32 << schema.min(30)))
    } else {
        2f64.powi(index.saturating_mul(1 << (-schema).min(30)))
    }
}

impl FloatHistogram {
    /// True for the custom-buckets schema.
    pub fn uses_custom_buckets(&self) -> bool {
        self.schema == CUSTOM_BUCKETS_SCHEMA
    }

    /// True for a gauge histogram.
    pub fn is_gauge(&self) -> bool {
        self.counter_reset_hint == CounterResetHint::Gauge
    }

    /// The upper bound of positive bucket `index`.
    pub fn upper_bound(&self, index: i32) -> f64 {
        if self.uses_custom_buckets() {
            usize::try_from(index)
                .ok()
                .and_then(|i| self.custom_values.get(i).copied())
                .unwrap_or(if index < 0 {
                    f64::NEG_INFINITY
                } else {
                    f64::INFINITY
                })
        } else {
            exponential_upper_bound(index, self.schema)
        }
    }

    /// The lower bound of positive bucket `index`.
    pub fn lower_bound(&self, index: i32) -> f64 {
        self.upper_bound(index.saturating_sub(1))
    }

    /// All buckets from the lowest to the highest: negative buckets, the
    /// zero bucket (when it has a width or observations), positive buckets.
    pub fn all_buckets(&self) -> Vec<BucketRange> {
        let mut out = Vec::with_capacity(self.negative.len() + self.positive.len() + 1);
        for b in self.negative.iter().rev() {
            out.push(BucketRange {
                lower: -self.upper_bound(b.index),
                upper: -self.lower_bound(b.index),
                count: b.count,
            });
        }
        if !self.uses_custom_buckets() && (self.zero_threshold > 0.0 || self.zero_count != 0.0) {
            out.push(BucketRange {
                lower: -self.zero_threshold,
                upper: self.zero_threshold,
                count: self.zero_count,
            });
        }
        for b in &self.positive {
            out.push(BucketRange {
                lower: self.lower_bound(b.index),
                upper: self.upper_bound(b.index),
                count: b.count,
            });
        }
        out
    }

    /// Drops buckets with a count of exactly zero (Prometheus's
    /// `Compact(0)` in the sparse representation).
    pub fn compact(&mut self) {
        self.positive.retain(|b| b.count != 0.0);
        self.negative.retain(|b| b.count != 0.0);
    }
}
