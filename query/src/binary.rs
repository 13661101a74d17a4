//! Binary operators: arithmetic, comparisons (filtering or `bool`), set
//! operators, and vector matching with `on`/`ignoring` and
//! `group_left`/`group_right`.

use std::collections::{HashMap, HashSet};

use fleetwatch_model::{Labels, METRIC_NAME};
use promql_parser::parser::token::{
    TokenId, T_ADD, T_ATAN2, T_DIV, T_EQLC, T_GTE, T_GTR, T_LAND, T_LOR, T_LSS, T_LTE, T_LUNLESS,
    T_MOD, T_MUL, T_NEQ, T_POW, T_SUB,
};
use promql_parser::parser::{BinaryExpr, LabelModifier, VectorMatchCardinality};

use crate::error::{QueryError, Result};
use crate::eval::Evaluator;
use crate::value::{VSample, Value};

/// True for the operators whose result drops the metric name.
fn is_arithmetic(op: TokenId) -> bool {
    matches!(op, T_ADD | T_SUB | T_MUL | T_DIV | T_MOD | T_POW | T_ATAN2)
}

fn is_comparison(op: TokenId) -> bool {
    matches!(op, T_EQLC | T_NEQ | T_GTR | T_LSS | T_GTE | T_LTE)
}

/// Applies `op` to two floats: the value and whether a comparison holds
/// (always true for arithmetic).
pub(crate) fn apply(op: TokenId, l: f64, r: f64) -> Result<(f64, bool)> {
    Ok(match op {
        T_ADD => (l + r, true),
        T_SUB => (l - r, true),
        T_MUL => (l * r, true),
        T_DIV => (l / r, true),
        T_MOD => (l % r, true),
        T_POW => (l.powf(r), true),
        T_ATAN2 => (l.atan2(r), true),
        T_EQLC => (l, l == r),
        T_NEQ => (l, l != r),
        T_GTR => (l, l > r),
        T_LSS => (l, l < r),
        T_GTE => (l, l >= r),
        T_LTE => (l, l <= r),
        _ => return Err(QueryError::exec(format!("operator not allowed in float operations: {op}"))),
    })
}

/// Evaluates a binary expression at `t`.
pub(crate) fn eval(ev: &Evaluator, b: &BinaryExpr, t: i64) -> Result<Value> {
    let op = b.op.id();
    let return_bool = b.return_bool();
    let lhs = ev.eval(&b.lhs, t)?;
    let rhs = ev.eval(&b.rhs, t)?;
    match (lhs, rhs) {
        (Value::Scalar(l), Value::Scalar(r)) => {
            let (v, keep) = apply(op, l, r)?;
            Ok(Value::Scalar(if is_comparison(op) {
                if keep {
                    1.0
                } else {
                    0.0
                }
            } else {
                v
            }))
        }
        (Value::Vector(l), Value::Scalar(r)) => vector_scalar(op, l, r, false, return_bool, t),
        (Value::Scalar(l), Value::Vector(r)) => vector_scalar(op, r, l, true, return_bool, t),
        (Value::Vector(l), Value::Vector(r)) => match op {
            T_LAND | T_LOR | T_LUNLESS => Ok(Value::Vector(set_op(op, b, l, r))),
            _ => vector_vector(op, b, l, r, return_bool, t).map(Value::Vector),
        },
        (l, r) => Err(QueryError::exec(format!(
            "binary operator {} not allowed between {} and {}",
            b.op,
            l.type_name(),
            r.type_name()
        ))),
    }
}

fn vector_scalar(
    op: TokenId,
    v: Vec<VSample>,
    s: f64,
    swap: bool,
    return_bool: bool,
    t: i64,
) -> Result<Value> {
    let mut out = Vec::with_capacity(v.len());
    for e in v {
        let (l, r) = if swap { (s, e.value) } else { (e.value, s) };
        let (mut value, mut keep) = apply(op, l, r)?;
        if is_comparison(op) && swap {
            value = e.value;
        }
        if return_bool {
            value = if keep { 1.0 } else { 0.0 };
            keep = true;
        }
        if keep {
            let labels = if is_arithmetic(op) || return_bool {
                e.labels.without_metric_name()
            } else {
                e.labels
            };
            out.push(VSample { labels, value, ts: t });
        }
    }
    Ok(Value::Vector(out))
}

/// How series are matched: `on(...)` or `ignoring(...)` label names.
struct Matching<'a> {
    on: bool,
    names: &'a [String],
}

impl Matching<'_> {
    fn of(b: &BinaryExpr) -> Matching<'_> {
        match b.modifier.as_ref().and_then(|m| m.matching.as_ref()) {
            Some(LabelModifier::Include(ls)) => Matching {
                on: true,
                names: &ls.labels,
            },
            Some(LabelModifier::Exclude(ls)) => Matching {
                on: false,
                names: &ls.labels,
            },
            None => Matching {
                on: false,
                names: &[],
            },
        }
    }

    /// The labels two series must share to match.
    fn signature(&self, l: &Labels) -> Labels {
        if self.on {
            l.keep_only(self.names)
        } else {
            l.drop_names(self.names).without_metric_name()
        }
    }
}

fn set_op(op: TokenId, b: &BinaryExpr, lhs: Vec<VSample>, rhs: Vec<VSample>) -> Vec<VSample> {
    let m = Matching::of(b);
    match op {
        T_LAND => {
            let right: HashSet<Labels> = rhs.iter().map(|s| m.signature(&s.labels)).collect();
            lhs.into_iter()
                .filter(|s| right.contains(&m.signature(&s.labels)))
                .collect()
        }
        T_LUNLESS => {
            let right: HashSet<Labels> = rhs.iter().map(|s| m.signature(&s.labels)).collect();
            lhs.into_iter()
                .filter(|s| !right.contains(&m.signature(&s.labels)))
                .collect()
        }
        _ => {
            let left: HashSet<Labels> = lhs.iter().map(|s| m.signature(&s.labels)).collect();
            let mut out = lhs;
            out.extend(
                rhs.into_iter()
                    .filter(|s| !left.contains(&m.signature(&s.labels))),
            );
            out
        }
    }
}

fn vector_vector(
    op: TokenId,
    b: &BinaryExpr,
    lhs: Vec<VSample>,
    rhs: Vec<VSample>,
    return_bool: bool,
    t: i64,
) -> Result<Vec<VSample>> {
    let m = Matching::of(b);
    let card = b
        .modifier
        .as_ref()
        .map(|m| m.card.clone())
        .unwrap_or(VectorMatchCardinality::OneToOne);
    let (include, swapped): (&[String], bool) = match &card {
        VectorMatchCardinality::ManyToOne(ls) => (&ls.labels, false),
        VectorMatchCardinality::OneToMany(ls) => (&ls.labels, true),
        _ => (&[], false),
    };
    let one_to_one = matches!(card, VectorMatchCardinality::OneToOne);
    let (many, one) = if swapped { (rhs, lhs) } else { (lhs, rhs) };
    // Index the "one" side by signature; duplicates there are an error.
    let mut one_side: HashMap<Labels, &VSample> = HashMap::with_capacity(one.len());
    for s in &one {
        let sig = m.signature(&s.labels);
        if let Some(prev) = one_side.get(&sig) {
            let side = if swapped { "left" } else { "right" };
            return Err(QueryError::exec(format!(
                "found duplicate series for the match group {sig} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                prev.labels, s.labels
            )));
        }
        one_side.insert(sig, s);
    }
    let mut out = Vec::new();
    let mut matched: HashMap<Labels, HashSet<Labels>> = HashMap::new();
    for ms in many {
        let sig = m.signature(&ms.labels);
        let Some(os) = one_side.get(&sig) else {
            continue;
        };
        let (l, r) = if swapped {
            (os.value, ms.value)
        } else {
            (ms.value, os.value)
        };
        let (mut value, keep) = apply(op, l, r)?;
        if return_bool {
            value = if keep { 1.0 } else { 0.0 };
        } else if !keep {
            continue;
        }
        let labels = result_labels(&ms.labels, &os.labels, op, return_bool, &m, one_to_one, include);
        let inserted = matched.entry(sig).or_default();
        if one_to_one {
            if !inserted.is_empty() {
                return Err(QueryError::exec(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)",
                ));
            }
        } else if inserted.contains(&labels) {
            return Err(QueryError::exec(
                "multiple matches for labels: grouping labels must ensure unique matches",
            ));
        }
        inserted.insert(labels.clone());
        out.push(VSample { labels, value, ts: t });
    }
    Ok(out)
}

/// The labels of a vector-vector result element (Prometheus's
/// `resultMetric`).
fn result_labels(
    many: &Labels,
    one: &Labels,
    op: TokenId,
    return_bool: bool,
    m: &Matching<'_>,
    one_to_one: bool,
    include: &[String],
) -> Labels {
    let mut out = many.clone();
    if is_arithmetic(op) || return_bool {
        out.remove(METRIC_NAME);
    }
    if one_to_one {
        out = if m.on {
            out.keep_only(m.names)
        } else {
            out.drop_names(m.names)
        };
    }
    for name in include {
        match one.get(name) {
            Some(v) => out.set(name, v),
            None => out.remove(name),
        }
    }
    out
}
