//! Numeric helpers shared by aggregations and functions, following
//! Prometheus's float handling (Kahan-Neumaier sums, incremental means,
//! linear quantile interpolation).

/// One step of Kahan-Neumaier summation: returns the new sum and
/// compensation.
pub(crate) fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// A compensated sum.
pub(crate) fn kahan_sum(values: impl IntoIterator<Item = f64>) -> f64 {
    let (s, c) = values
        .into_iter()
        .fold((0.0, 0.0), |(s, c), v| kahan_inc(v, s, c));
    s + c
}

/// The mean as Prometheus computes it for `avg` and `avg_over_time`: a
/// compensated sum, switching to an incremental mean when the sum would
/// overflow. NaN for no values.
pub(crate) fn kahan_mean(values: impl IntoIterator<Item = f64>) -> f64 {
    let (mut sum, mut mean, mut count, mut c) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    let mut incremental = false;
    for f in values {
        count += 1.0;
        if !incremental {
            let (ns, nc) = kahan_inc(f, sum, c);
            if count == 1.0 || !ns.is_infinite() {
                sum = ns;
                c = nc;
                continue;
            }
            incremental = true;
            mean = sum / (count - 1.0);
            c /= count - 1.0;
        }
        if mean.is_infinite() {
            if f.is_infinite() && (mean > 0.0) == (f > 0.0) {
                continue;
            }
            if !f.is_infinite() && !f.is_nan() {
                continue;
            }
        }
        let corrected = mean + c;
        let (nm, nc) = kahan_inc(f / count - corrected / count, mean, c);
        mean = nm;
        c = nc;
    }
    if count == 0.0 {
        f64::NAN
    } else if incremental {
        mean + c
    } else {
        (sum + c) / count
    }
}

/// Population variance with compensated running mean (as
/// `stdvar_over_time`).
pub(crate) fn variance(values: impl IntoIterator<Item = f64>) -> f64 {
    let (mut count, mut mean, mut cmean, mut aux, mut caux) =
        (0.0f64, 0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for f in values {
        count += 1.0;
        let delta = f - (mean + cmean);
        (mean, cmean) = kahan_inc(delta / count, mean, cmean);
        (aux, caux) = kahan_inc(delta * (f - (mean + cmean)), aux, caux);
    }
    if count == 0.0 {
        return f64::NAN;
    }
    (aux + caux) / count
}

/// The `q`-quantile of `values` with linear interpolation between closest
/// ranks (Prometheus's `quantile`). NaN sorts first.
pub(crate) fn quantile(q: f64, mut values: Vec<f64>) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    let at = |i: f64| values.get(i as usize).copied().unwrap_or(f64::NAN);
    at(lower) * (1.0 - weight) + at(upper) * weight
}

/// Go's `math.Max`: NaN if either is NaN, +Inf wins.
pub(crate) fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// Go's `math.Min`: NaN if either is NaN, -Inf wins.
pub(crate) fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_and_quantiles() {
        assert_eq!(kahan_sum([1e100, 1.0, -1e100]), 1.0);
        assert_eq!(kahan_mean([1.0, 2.0, 3.0, 4.0]), 2.5);
        assert_eq!(kahan_mean([f64::MAX, f64::MAX]), f64::MAX);
        assert_eq!(quantile(0.5, vec![1.0, 3.0, 2.0, 4.0]), 2.5);
        assert_eq!(quantile(1.5, vec![1.0]), f64::INFINITY);
        assert_eq!(variance([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]), 4.0);
        assert!(go_max(1.0, f64::NAN).is_nan());
    }
}
