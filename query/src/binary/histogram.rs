//! Binary operators where an operand is a native histogram: `+`/`-`
//! between histograms, `*` by a float on either side, `/` by a float on
//! the right, `==`/`!=` between histograms. Every other combination
//! yields no sample and an info annotation.

use std::sync::Arc;

use promql_parser::parser::token::{TokenId, T_ADD, T_DIV, T_EQLC, T_MUL, T_NEQ, T_SUB};

use crate::eval::Evaluator;
use crate::histogram::FloatHistogram;

/// One operand: a float, or a histogram.
#[derive(Clone, Copy)]
pub(super) struct Operand<'a> {
    /// The float value (unused for histograms).
    pub f: f64,
    /// The histogram, if the operand is one.
    pub h: Option<&'a Arc<FloatHistogram>>,
}

/// The result of one histogram operation.
pub(super) enum Outcome {
    /// A float result (`bool` comparisons) and whether it passes.
    Float(f64, bool),
    /// A histogram result and whether it passes (comparisons filter).
    Histogram(Arc<FloatHistogram>, bool),
    /// No sample.
    Drop,
}

fn kind(o: &Operand<'_>) -> &'static str {
    if o.h.is_some() {
        "histogram"
    } else {
        "float"
    }
}

fn scaled(h: &FloatHistogram, factor: f64) -> Arc<FloatHistogram> {
    let mut h = h.clone();
    h.scale(factor);
    Arc::new(h)
}

/// Applies `op` when at least one operand is a histogram. `metric` names
/// the series in annotations.
pub(super) fn apply(
    ev: &Evaluator,
    op: TokenId,
    op_name: &str,
    l: Operand<'_>,
    r: Operand<'_>,
    return_bool: bool,
    metric: &str,
) -> Outcome {
    let incompatible = || {
        ev.info(format!(
            "incompatible sample types encountered for binary operator {op_name:?}: {} {op_name} {}",
            kind(&l),
            kind(&r)
        ));
        Outcome::Drop
    };
    match (l.h, r.h, op) {
        (Some(a), Some(b), T_ADD | T_SUB) => {
            let mut out = FloatHistogram::clone(a);
            let res = if op == T_ADD { out.add(b) } else { out.sub(b) };
            match res {
                Ok(c) => {
                    let what = if op == T_ADD {
                        "addition"
                    } else {
                        "subtraction"
                    };
                    if c.custom_buckets_reconciled {
                        ev.info(format!(
                            "mismatched custom buckets were reconciled during {what}"
                        ));
                    }
                    if c.counter_reset_collision {
                        ev.warn(format!(
                            "conflicting counter resets during histogram {what}"
                        ));
                    }
                    if op == T_SUB {
                        out.counter_reset_hint = crate::histogram::CounterResetHint::Gauge;
                    }
                    out.compact();
                    Outcome::Histogram(Arc::new(out), true)
                }
                Err(_) => {
                    ev.warn(format!(
                        "vector contains a mix of histograms with exponential and custom buckets schemas for metric name {metric:?}"
                    ));
                    Outcome::Drop
                }
            }
        }
        (Some(a), Some(b), T_EQLC | T_NEQ) => {
            let same = a.same_distribution(b);
            let pass = if op == T_EQLC { same } else { !same };
            if return_bool {
                Outcome::Float(if pass { 1.0 } else { 0.0 }, true)
            } else {
                Outcome::Histogram(Arc::clone(a), pass)
            }
        }
        (Some(h), None, T_MUL) | (None, Some(h), T_MUL) => {
            let f = if l.h.is_some() { r.f } else { l.f };
            Outcome::Histogram(scaled(h, f), true)
        }
        (Some(h), None, T_DIV) => {
            let mut h = FloatHistogram::clone(h);
            h.div(r.f);
            Outcome::Histogram(Arc::new(h), true)
        }
        _ => incompatible(),
    }
}
