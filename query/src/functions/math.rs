//! Element-wise numeric functions on instant vectors.

use std::cmp::Ordering;

use crate::stats::{go_max, go_min};
use crate::value::VSample;

/// Applies `f` to every float value, dropping the metric name; histogram
/// samples yield nothing.
pub(super) fn map_values(v: Vec<VSample>, t: i64, f: impl Fn(f64) -> f64) -> Vec<VSample> {
    v.into_iter()
        .filter(|s| s.hist.is_none())
        .map(|s| VSample {
            value: f(s.value),
            ts: t,
            drop_name: true,
            ..s
        })
        .collect()
}

const SIMPLE: &[&str] = &[
    "abs", "ceil", "floor", "exp", "ln", "log2", "log10", "sqrt", "sgn", "acos", "acosh", "asin",
    "asinh", "atan", "atanh", "cos", "cosh", "sin", "sinh", "tan", "tanh", "deg", "rad",
];

/// True for the one-argument value functions handled by [`simple`].
pub(super) fn is_simple(name: &str) -> bool {
    SIMPLE.contains(&name)
}

/// Applies a one-argument value function by name.
pub(super) fn simple(name: &str, v: Vec<VSample>, t: i64) -> Vec<VSample> {
    let f: fn(f64) -> f64 = match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "ln" => f64::ln,
        "log2" => f64::log2,
        "log10" => f64::log10,
        "sqrt" => f64::sqrt,
        "sgn" => |x| {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                x
            }
        },
        "acos" => f64::acos,
        "acosh" => f64::acosh,
        "asin" => f64::asin,
        "asinh" => f64::asinh,
        "atan" => f64::atan,
        "atanh" => f64::atanh,
        "cos" => f64::cos,
        "cosh" => f64::cosh,
        "sin" => f64::sin,
        "sinh" => f64::sinh,
        "tan" => f64::tan,
        "tanh" => f64::tanh,
        "deg" => f64::to_degrees,
        "rad" => f64::to_radians,
        _ => |x| x,
    };
    map_values(v, t, f)
}

/// `clamp`, `clamp_min`, `clamp_max` (NaN bounds mean "no bound" for the
/// one-sided forms).
pub(super) fn clamp(name: &str, v: Vec<VSample>, lo: f64, hi: f64, t: i64) -> Vec<VSample> {
    match name {
        "clamp" if hi < lo => Vec::new(),
        "clamp" => map_values(v, t, |x| go_max(lo, go_min(hi, x))),
        "clamp_min" => map_values(v, t, |x| go_max(lo, x)),
        _ => map_values(v, t, |x| go_min(hi, x)),
    }
}

/// Sorts by value, ascending or descending; NaN last either way.
pub(super) fn sort_by_value(v: &mut [VSample], desc: bool) {
    v.sort_by(|a, b| match (a.value.is_nan(), b.value.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => {
            let o = a.value.partial_cmp(&b.value).unwrap_or(Ordering::Equal);
            if desc {
                o.reverse()
            } else {
                o
            }
        }
    });
}
