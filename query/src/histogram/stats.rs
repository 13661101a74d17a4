//! Statistics of one native histogram: `histogram_quantile`,
//! `histogram_fraction` and `histogram_stdvar` (Prometheus's
//! interpolation: linear for custom buckets and the zero bucket,
//! exponential inside exponential buckets).

use super::{BucketRange, FloatHistogram};

/// Bounds of the bucket a result falls in, with Prometheus's zero-bucket
/// adjustment: a histogram with only positive (negative) buckets has no
/// observations below (above) zero.
fn adjust_zero_bucket(h: &FloatHistogram, b: &mut BucketRange) {
    if b.lower <= 0.0 && b.upper >= 0.0 {
        if h.negative.is_empty() && !h.positive.is_empty() {
            b.lower = 0.0;
        } else if h.positive.is_empty() && !h.negative.is_empty() {
            b.upper = 0.0;
        }
    }
}

/// The `q` quantile of `h` (NaN for an empty histogram or NaN `q`,
/// -Inf/+Inf for `q` below 0/above 1).
pub fn quantile(q: f64, h: &FloatHistogram) -> f64 {
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    if h.count == 0.0 || q.is_nan() {
        return f64::NAN;
    }
    let forward = h.sum.is_nan() || q < 0.5;
    let mut buckets = h.all_buckets();
    if !forward {
        buckets.reverse();
    }
    let mut rank = if forward {
        q * h.count
    } else {
        (1.0 - q) * h.count
    };
    if !buckets.iter().any(|b| b.count != 0.0) {
        // Only NaN observations (counted, but in no bucket).
        return f64::NAN;
    }
    let mut count = 0.0;
    let mut bucket = BucketRange {
        lower: 0.0,
        upper: 0.0,
        count: 0.0,
    };
    for b in buckets {
        if b.count == 0.0 {
            continue;
        }
        bucket = b;
        count += b.count;
        if count >= rank {
            break;
        }
    }
    if !h.uses_custom_buckets() && bucket.lower < 0.0 && bucket.upper > 0.0 {
        adjust_zero_bucket(h, &mut bucket);
    } else if h.uses_custom_buckets() {
        if bucket.lower == f64::NEG_INFINITY {
            if bucket.upper <= 0.0 {
                return bucket.upper;
            }
            bucket.lower = 0.0;
        } else if bucket.upper == f64::INFINITY {
            return bucket.lower;
        }
    }
    count = count.min(h.count);
    if count < rank {
        // The rank lies among the NaN observations (counted, in no
        // bucket): the quantile is NaN.
        return if h.sum.is_nan() {
            f64::NAN
        } else {
            bucket.upper
        };
    }
    if forward {
        rank -= count - bucket.count;
    } else {
        rank = count - rank;
    }
    let fraction = rank / bucket.count;
    if h.uses_custom_buckets() || (bucket.lower <= 0.0 && bucket.upper >= 0.0) {
        return bucket.lower + (bucket.upper - bucket.lower) * fraction;
    }
    let log_lower = bucket.lower.abs().log2();
    let log_upper = bucket.upper.abs().log2();
    if bucket.lower > 0.0 {
        (log_lower + (log_upper - log_lower) * fraction).exp2()
    } else {
        -(log_upper + (log_lower - log_upper) * (1.0 - fraction)).exp2()
    }
}

/// The fraction of observations of `h` between `lower` and `upper`.
pub fn fraction(lower: f64, upper: f64, h: &FloatHistogram) -> f64 {
    if h.count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let (mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0);
    let (mut lower_set, mut upper_set) = (false, false);
    for mut b in h.all_buckets() {
        let mut zero_bucket = false;
        if b.lower <= 0.0 && b.upper >= 0.0 {
            zero_bucket = true;
            adjust_zero_bucket(h, &mut b);
        }
        let linear = h.uses_custom_buckets() || zero_bucket;
        let interpolate = |v: f64| {
            if b.lower == f64::NEG_INFINITY {
                // No interpolation in a bucket of infinite width: its
                // observations all count as below any finite value.
                rank + b.count
            } else if linear {
                rank + b.count * (v - b.lower) / (b.upper - b.lower)
            } else {
                let log_lower = b.lower.abs().log2();
                let log_upper = b.upper.abs().log2();
                let log_v = v.abs().log2();
                let f = if v > 0.0 {
                    (log_v - log_lower) / (log_upper - log_lower)
                } else {
                    1.0 - (log_v - log_upper) / (log_lower - log_upper)
                };
                rank + b.count * f
            }
        };
        if !lower_set && b.lower >= lower {
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && b.lower >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        if !lower_set && b.lower < lower && b.upper > lower {
            lower_rank = interpolate(lower);
            lower_set = true;
        }
        if !upper_set && b.lower < upper && b.upper > upper {
            upper_rank = interpolate(upper);
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        rank += b.count;
    }
    // Past the last bucket lie all observations in buckets; NaN
    // observations (counted but in no bucket) are in no fraction.
    if !lower_set {
        lower_rank = rank;
    }
    if !upper_set {
        upper_rank = rank;
    }
    (upper_rank.min(h.count) - lower_rank.min(h.count)) / h.count
}

/// The estimated variance of the observations in `h`: each bucket's
/// observations are taken at its arithmetic (custom buckets), zero (zero
/// bucket) or geometric (exponential buckets) mean.
pub fn stdvar(h: &FloatHistogram) -> f64 {
    if h.count == 0.0 {
        return f64::NAN;
    }
    let mean = h.sum / h.count;
    let (mut variance, mut c) = (0.0, 0.0);
    for b in h.all_buckets() {
        if b.count == 0.0 {
            continue;
        }
        let val = if h.uses_custom_buckets() {
            (b.upper + b.lower) / 2.0
        } else if b.lower <= 0.0 && b.upper >= 0.0 {
            0.0
        } else {
            let g = (b.upper * b.lower).sqrt();
            if b.upper < 0.0 {
                -g
            } else {
                g
            }
        };
        let delta = val - mean;
        (variance, c) = crate::stats::kahan_inc(b.count * delta * delta, variance, c);
    }
    (variance + c) / h.count
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::Bucket;

    #[test]
    fn quantile_of_custom_buckets() {
        let h = FloatHistogram {
            schema: crate::histogram::CUSTOM_BUCKETS_SCHEMA,
            custom_values: vec![0.0, 2.0, 4.0, 6.0],
            positive: (1..=3).map(|index| Bucket { index, count: 10.0 }).collect(),
            count: 30.0,
            sum: 90.0,
            ..FloatHistogram::default()
        };
        assert!((quantile(0.5, &h) - 3.0).abs() < 1e-9);
        assert!((fraction(0.0, 4.0, &h) - 2.0 / 3.0).abs() < 1e-9);
    }
}
