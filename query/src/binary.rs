//! Binary operators: arithmetic, comparisons (filtering or `bool`), set
//! operators, and vector matching with `on`/`ignoring` and
//! `group_left`/`group_right`.

use fleetwatch_model::labels::escape_label_value;
use std::sync::Arc;

use fleetwatch_model::{Labels, METRIC_NAME};
use promql_parser::parser::token::{
    TokenId, T_ADD, T_ATAN2, T_DIV, T_EQLC, T_GTE, T_GTR, T_LAND, T_LOR, T_LSS, T_LTE, T_LUNLESS,
    T_MOD, T_MUL, T_NEQ, T_POW, T_SUB,
};
use promql_parser::parser::{BinaryExpr, LabelModifier, VectorMatchCardinality};

use crate::error::{QueryError, Result};
use crate::eval::Evaluator;
use crate::hash::{labels_hash_by, FastMap, FastSet};
use crate::value::{VSample, Value};

mod histogram;

use histogram::{Operand, Outcome};

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
        _ => {
            return Err(QueryError::exec(format!(
                "operator not allowed in float operations: {op}"
            )))
        }
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
        (Value::Vector(l), Value::Scalar(r)) => vector_scalar(ev, b, l, r, false, return_bool, t),
        (Value::Scalar(l), Value::Vector(r)) => vector_scalar(ev, b, r, l, true, return_bool, t),
        (Value::Vector(l), Value::Vector(r)) => match op {
            T_LAND | T_LOR | T_LUNLESS => Ok(Value::Vector(set_op(ev, op, b, l, r))),
            _ => vector_vector(ev, b, l, r, return_bool, t).map(Value::Vector),
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
    ev: &Evaluator,
    b: &BinaryExpr,
    v: Vec<VSample>,
    s: f64,
    swap: bool,
    return_bool: bool,
    t: i64,
) -> Result<Value> {
    let op = b.op.id();
    let mut out = Vec::with_capacity(v.len());
    for e in v {
        if let Some(h) = &e.hist {
            let (hs, fs) = (Operand { f: 0.0, h: Some(h) }, Operand { f: s, h: None });
            let (l, r) = if swap { (fs, hs) } else { (hs, fs) };
            let name = e.labels.metric_name().unwrap_or("").to_string();
            let outcome = histogram::apply(ev, op, &b.op.to_string(), l, r, return_bool, &name);
            if let Some(mut res) = hist_result(outcome, &e, t) {
                res.drop_name = e.drop_name || is_arithmetic(op) || return_bool;
                out.push(res);
            }
            continue;
        }
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
            out.push(VSample {
                labels: e.labels,
                value,
                hist: None,
                ts: t,
                drop_name: e.drop_name || is_arithmetic(op) || return_bool,
            });
        }
    }
    Ok(Value::Vector(out))
}

/// The sample a histogram operation yields, labelled like `e`.
fn hist_result(outcome: Outcome, e: &VSample, t: i64) -> Option<VSample> {
    match outcome {
        Outcome::Drop | Outcome::Float(_, false) | Outcome::Histogram(_, false) => None,
        Outcome::Float(v, true) => Some(VSample::new(Arc::clone(&e.labels), v, t)),
        Outcome::Histogram(h, true) => Some(VSample::histogram(Arc::clone(&e.labels), h, t)),
    }
}

/// How series are matched: `on(...)` or `ignoring(...)` label names.
struct Matching<'a> {
    on: bool,
    names: &'a [String],
    /// The evaluator (for memoised signatures) and this node's identity.
    ev: &'a Evaluator,
    node: usize,
}

impl<'a> Matching<'a> {
    fn of(ev: &'a Evaluator, b: &'a BinaryExpr) -> Matching<'a> {
        let (on, names): (bool, &[String]) =
            match b.modifier.as_ref().and_then(|m| m.matching.as_ref()) {
                Some(LabelModifier::Include(ls)) => (true, &ls.labels),
                Some(LabelModifier::Exclude(ls)) => (false, &ls.labels),
                None => (false, &[]),
            };
        Matching {
            on,
            names,
            ev,
            node: std::ptr::from_ref(b) as usize,
        }
    }

    fn includes(&self, name: &str) -> bool {
        if self.on {
            self.names.iter().any(|n| n == name)
        } else {
            name != METRIC_NAME && !self.names.iter().any(|n| n == name)
        }
    }

    /// A hash of the labels two series must share to match (computed once
    /// per query for series that keep their labels across steps).
    fn signature(&self, l: &Arc<Labels>, buf: &mut Vec<u8>) -> u64 {
        self.ev.memo_hash(self.node, l, |l| {
            labels_hash_by(l, buf, |x| self.includes(&x.name))
        })
    }

    /// The labels two series must share to match (for messages).
    fn signature_labels(&self, l: &Labels) -> Labels {
        Labels::from_pairs(
            l.iter()
                .filter(|x| self.includes(&x.name))
                .map(|x| (x.name.clone(), x.value.clone())),
        )
    }
}

fn set_op(
    ev: &Evaluator,
    op: TokenId,
    b: &BinaryExpr,
    lhs: Vec<VSample>,
    rhs: Vec<VSample>,
) -> Vec<VSample> {
    let m = Matching::of(ev, b);
    let mut buf = Vec::new();
    match op {
        T_LAND => {
            let right: FastSet<u64> = rhs
                .iter()
                .map(|s| m.signature(&s.labels, &mut buf))
                .collect();
            lhs.into_iter()
                .filter(|s| right.contains(&m.signature(&s.labels, &mut buf)))
                .collect()
        }
        T_LUNLESS => {
            let right: FastSet<u64> = rhs
                .iter()
                .map(|s| m.signature(&s.labels, &mut buf))
                .collect();
            lhs.into_iter()
                .filter(|s| !right.contains(&m.signature(&s.labels, &mut buf)))
                .collect()
        }
        _ => {
            let left: FastSet<u64> = lhs
                .iter()
                .map(|s| m.signature(&s.labels, &mut buf))
                .collect();
            let mut out = lhs;
            out.extend(
                rhs.into_iter()
                    .filter(|s| !left.contains(&m.signature(&s.labels, &mut buf))),
            );
            out
        }
    }
}

fn vector_vector(
    ev: &Evaluator,
    b: &BinaryExpr,
    lhs: Vec<VSample>,
    rhs: Vec<VSample>,
    return_bool: bool,
    t: i64,
) -> Result<Vec<VSample>> {
    let op = b.op.id();
    let m = Matching::of(ev, b);
    let mut buf = Vec::new();
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
    let mut one_side: FastMap<u64, &VSample> = FastMap::default();
    for s in &one {
        let sig = m.signature(&s.labels, &mut buf);
        if let Some(prev) = one_side.get(&sig) {
            let side = if swapped { "left" } else { "right" };
            return Err(QueryError::exec(format!(
                "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                prom_string(&m.signature_labels(&s.labels)),
                prom_string(&prev.labels),
                prom_string(&s.labels)
            )));
        }
        one_side.insert(sig, s);
    }
    let mut out = Vec::new();
    // One-to-one: the match groups used. Otherwise: (group, result labels
    // hash) pairs produced.
    let mut matched_groups: FastSet<u64> = FastSet::default();
    let mut matched_results: FastSet<(u64, u64)> = FastSet::default();
    // fill()/fill_left()/fill_right(): values standing in for a missing
    // match. As in Prometheus they refer to the sides after the swap that
    // group_right implies: `rhs` fills the "one" side, `lhs` the "many".
    let fill = b
        .modifier
        .as_ref()
        .map(|m| m.fill_values.clone())
        .unwrap_or_default();
    let mut many_sigs: FastSet<u64> = FastSet::default();
    let no_labels = Labels::empty();
    for ms in &many {
        let sig = m.signature(&ms.labels, &mut buf);
        if fill.lhs.is_some() {
            many_sigs.insert(sig);
        }
        let (one_value, one_labels, one_hist) = match one_side.get(&sig) {
            Some(os) => (os.value, Some(&*os.labels), os.hist.as_ref()),
            None => match fill.rhs {
                Some(v) => (v, None, None),
                None => continue,
            },
        };
        let (l, r) = if swapped {
            (one_value, ms.value)
        } else {
            (ms.value, one_value)
        };
        // Checked before filtering, as Prometheus does.
        if one_to_one && !matched_groups.insert(sig) {
            return Err(QueryError::exec(
                "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)",
            ));
        }
        let (mut value, mut hist) = (0.0, None);
        if ms.hist.is_some() || one_hist.is_some() {
            let many_op = Operand {
                f: ms.value,
                h: ms.hist.as_ref(),
            };
            let one_op = Operand {
                f: one_value,
                h: one_hist,
            };
            let (lo, ro) = if swapped {
                (one_op, many_op)
            } else {
                (many_op, one_op)
            };
            let name = ms.labels.metric_name().unwrap_or("").to_string();
            match histogram::apply(ev, op, &b.op.to_string(), lo, ro, return_bool, &name) {
                Outcome::Float(v, true) => value = v,
                Outcome::Histogram(h, true) => hist = Some(h),
                _ => continue,
            }
        } else {
            let (v, keep) = apply(op, l, r)?;
            value = v;
            if return_bool {
                value = if keep { 1.0 } else { 0.0 };
            } else if !keep {
                continue;
            }
        }
        let labels = if one_to_one && !m.on && m.names.is_empty() {
            // Plain one-to-one matching keeps the left labels as they are.
            Arc::clone(&ms.labels)
        } else {
            Arc::new(result_labels(
                &ms.labels,
                one_labels.unwrap_or(&no_labels),
                &m,
                one_to_one,
                include,
            ))
        };
        if !one_to_one && !matched_results.insert((sig, hash_labels(&labels, &mut buf))) {
            return Err(QueryError::exec(
                "multiple matches for labels: grouping labels must ensure unique matches",
            ));
        }
        let drop_name = ms.drop_name || is_arithmetic(op) || return_bool;
        out.push(VSample {
            labels,
            value,
            hist,
            ts: t,
            drop_name,
        });
    }
    // "One" side series without a match on the "many" side, when filled:
    // the result carries the match group's labels.
    if let Some(fv) = fill.lhs {
        for os in &one {
            let sig = m.signature(&os.labels, &mut buf);
            if many_sigs.contains(&sig) {
                continue;
            }
            let (l, r) = if swapped {
                (os.value, fv)
            } else {
                (fv, os.value)
            };
            let (mut value, keep) = apply(op, l, r)?;
            if return_bool {
                value = if keep { 1.0 } else { 0.0 };
            } else if !keep {
                continue;
            }
            if os.hist.is_some() {
                continue;
            }
            out.push(VSample {
                labels: Arc::new(m.signature_labels(&os.labels)),
                value,
                hist: None,
                ts: t,
                drop_name: true,
            });
        }
    }
    Ok(out)
}

fn hash_labels(l: &Labels, buf: &mut Vec<u8>) -> u64 {
    labels_hash_by(l, buf, |_| true)
}

/// Renders labels as Prometheus's `labels.Labels.String()` does:
/// `{__name__="x", a="b"}`.
fn prom_string(l: &Labels) -> String {
    let parts: Vec<String> = l
        .iter()
        .map(|x| format!("{}=\"{}\"", x.name, escape_label_value(&x.value)))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// The labels of a vector-vector result element (Prometheus's
/// `resultMetric`).
fn result_labels(
    many: &Labels,
    one: &Labels,
    m: &Matching<'_>,
    one_to_one: bool,
    include: &[String],
) -> Labels {
    let mut out = match (one_to_one, m.on) {
        (true, true) => many.keep_only(m.names),
        (true, false) => many.drop_names(m.names),
        (false, _) => many.clone(),
    };
    for name in include {
        match one.get(name) {
            Some(v) => out.set(name, v),
            None => out.remove(name),
        }
    }
    out
}
