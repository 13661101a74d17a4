//! Aggregation operators: `sum`, `avg`, `min`, `max`, `count`, `group`,
//! `stddev`, `stdvar`, `quantile`, `topk`, `bottomk`, `count_values`,
//! `limitk` and `limit_ratio`, with `by`/`without` grouping.

use std::cmp::Ordering;
use std::sync::Arc;

use fleetwatch_model::{exposition::format_value, is_valid_label_name, Labels, METRIC_NAME};
use promql_parser::parser::token::{
    T_AVG, T_BOTTOMK, T_COUNT, T_COUNT_VALUES, T_GROUP, T_LIMITK, T_LIMIT_RATIO, T_MAX, T_MIN,
    T_QUANTILE, T_STDDEV, T_STDVAR, T_SUM, T_TOPK,
};
use promql_parser::parser::{AggregateExpr, LabelModifier};

use crate::annotations::{go_float, invalid_quantile};
use crate::error::{QueryError, Result};
use crate::eval::Evaluator;
use crate::hash::{labels_hash_by, FastMap};
use crate::stats;
use crate::value::{VSample, Value};

mod histogram;

use histogram::Kind;

/// The labels identifying the group `labels` belongs to.
fn group_key(labels: &Labels, modifier: &Option<LabelModifier>) -> Labels {
    match modifier {
        None => Labels::empty(),
        Some(LabelModifier::Include(ls)) => labels.keep_only(&ls.labels),
        Some(LabelModifier::Exclude(ls)) => labels.drop_names(&ls.labels).without_metric_name(),
    }
}

/// A hash of the group key, computed without building it.
fn group_hash(labels: &Labels, modifier: &Option<LabelModifier>, buf: &mut Vec<u8>) -> u64 {
    if modifier.is_none() {
        return 0;
    }
    let included = |name: &str| match modifier {
        None => false,
        Some(LabelModifier::Include(ls)) => ls.labels.iter().any(|n| n == name),
        Some(LabelModifier::Exclude(ls)) => {
            name != METRIC_NAME && !ls.labels.iter().any(|n| n == name)
        }
    };
    labels_hash_by(labels, buf, |l| included(&l.name))
}

/// Splits `input` into groups in order of first appearance. Group hashes
/// are memoised per series across the steps of a query.
fn group(
    ev: &Evaluator,
    a: &AggregateExpr,
    input: Vec<VSample>,
) -> Vec<(Arc<Labels>, Vec<VSample>)> {
    let modifier = &a.modifier;
    let node = std::ptr::from_ref(a) as usize;
    let mut index: FastMap<u64, usize> = FastMap::default();
    let mut groups: Vec<(Arc<Labels>, Vec<VSample>)> = Vec::new();
    let mut buf = Vec::new();
    for s in input {
        let key = ev.memo_hash(node, &s.labels, |l| group_hash(l, modifier, &mut buf));
        match index.get(&key) {
            Some(&i) => {
                if let Some(g) = groups.get_mut(i) {
                    g.1.push(s);
                }
            }
            None => {
                index.insert(key, groups.len());
                let labels = ev.group_labels(node, key, || group_key(&s.labels, modifier));
                groups.push((labels, vec![s]));
            }
        }
    }
    groups
}

/// Evaluates an aggregation at `t`.
pub(crate) fn eval(ev: &Evaluator, a: &AggregateExpr, t: i64) -> Result<Value> {
    let op = a.op.id();
    let param = a.param.as_deref();
    // Parameters are evaluated first, as Prometheus does.
    let scalar_param = match (op, param) {
        (T_TOPK | T_BOTTOMK | T_QUANTILE | T_LIMITK | T_LIMIT_RATIO, Some(p)) => {
            Some(ev.eval_scalar(p, t)?)
        }
        _ => None,
    };
    let string_param = match (op, param) {
        (T_COUNT_VALUES, Some(p)) => Some(ev.eval_string(p, t)?),
        _ => None,
    };
    let mut input = ev.eval_vector(&a.expr, t)?;
    if matches!(
        op,
        T_MIN | T_MAX | T_STDDEV | T_STDVAR | T_QUANTILE | T_TOPK | T_BOTTOMK
    ) {
        input = histogram::floats_only(ev, input, &a.op.to_string());
    }
    let groups = group(ev, a, input);
    // The output drops the metric name when any input of the group does
    // (only visible when grouping by `__name__`).
    let mk = |labels: Arc<Labels>, value: f64, g: &[VSample]| VSample {
        drop_name: g.iter().any(|s| s.drop_name),
        ..VSample::new(labels, value, t)
    };
    let mut out = Vec::new();
    match op {
        T_SUM | T_AVG => {
            for (k, g) in groups {
                let drop_name = g.iter().any(|s| s.drop_name);
                match histogram::kind(&g) {
                    Kind::Floats => {
                        let values = g.iter().map(|s| s.value);
                        let v = if op == T_SUM {
                            stats::kahan_sum(values)
                        } else {
                            stats::kahan_mean(values)
                        };
                        out.push(mk(k, v, &g));
                    }
                    Kind::Histograms => {
                        if let Some(h) = histogram::sum(ev, &g, op == T_AVG) {
                            out.push(VSample {
                                drop_name,
                                ..histogram::sample(k, h, t)
                            });
                        }
                    }
                    Kind::Mixed => histogram::warn_mixed(ev),
                }
            }
        }
        T_COUNT => out.extend(groups.into_iter().map(|(k, g)| mk(k, g.len() as f64, &g))),
        T_GROUP => out.extend(groups.into_iter().map(|(k, g)| mk(k, 1.0, &g))),
        T_MIN | T_MAX => out.extend(groups.into_iter().map(|(k, g)| {
            let v = g.iter().map(|s| s.value).fold(f64::NAN, |acc, v| {
                let better = if op == T_MIN { acc > v } else { acc < v };
                if better || acc.is_nan() {
                    v
                } else {
                    acc
                }
            });
            mk(k, v, &g)
        })),
        T_STDDEV | T_STDVAR => out.extend(groups.into_iter().map(|(k, g)| {
            let var = welford(g.iter().map(|s| s.value));
            mk(k, if op == T_STDDEV { var.sqrt() } else { var }, &g)
        })),
        T_QUANTILE => {
            let q = scalar_param.unwrap_or(f64::NAN);
            if let Some(w) = invalid_quantile(q) {
                ev.warn(w);
            }
            out.extend(groups.into_iter().map(|(k, g)| {
                let v = stats::quantile(q, g.iter().map(|s| s.value).collect());
                mk(k, v, &g)
            }));
        }
        T_TOPK | T_BOTTOMK | T_LIMITK => {
            let k = int_param(scalar_param)?;
            if k >= 1 {
                for (_, mut g) in groups {
                    if op != T_LIMITK {
                        g.sort_by(|a, b| rank_order(a.value, b.value, op == T_TOPK));
                    }
                    g.truncate(usize::try_from(k).unwrap_or(usize::MAX));
                    out.extend(g.into_iter().map(|s| VSample { ts: t, ..s }));
                }
            }
        }
        T_LIMIT_RATIO => {
            let r = scalar_param.unwrap_or(f64::NAN);
            if r.is_nan() {
                return Err(QueryError::exec("Ratio value is NaN"));
            }
            let capped = r.clamp(-1.0, 1.0);
            if capped != r {
                ev.warn(format!(
                    "ratio value should be between -1 and 1, got {}, capping to {}",
                    go_float(r),
                    go_float(capped)
                ));
            }
            let r = capped;
            for (_, g) in groups {
                out.extend(
                    g.into_iter()
                        .filter(|s| ratio_keep(&s.labels, r))
                        .map(|s| VSample { ts: t, ..s }),
                );
            }
        }
        T_COUNT_VALUES => {
            let name = string_param.unwrap_or_default();
            if !is_valid_label_name(&name) {
                return Err(QueryError::exec(format!("invalid label name {name:?}")));
            }
            // Counted per output label set: when the new label overwrites
            // a grouping label, groups can merge (as in Prometheus).
            let mut index: FastMap<Labels, usize> = FastMap::default();
            let mut counts: Vec<(Labels, usize, bool)> = Vec::new();
            for (k, g) in groups {
                for s in &g {
                    let mut labels = Labels::clone(&k);
                    let value = match &s.hist {
                        Some(h) => h.prometheus_string(),
                        None => format_value(s.value),
                    };
                    labels.set(&name, &value);
                    match index.get(&labels) {
                        Some(&i) => {
                            if let Some(c) = counts.get_mut(i) {
                                c.1 += 1;
                                c.2 |= s.drop_name;
                            }
                        }
                        None => {
                            index.insert(labels.clone(), counts.len());
                            counts.push((labels, 1, s.drop_name));
                        }
                    }
                }
            }
            out.extend(counts.into_iter().map(|(labels, c, drop_name)| VSample {
                drop_name,
                ..VSample::new(labels, c as f64, t)
            }));
        }
        _ => {
            return Err(QueryError::exec(format!(
                "unsupported aggregation operator {}",
                a.op
            )))
        }
    }
    Ok(Value::Vector(out))
}

/// Population variance as Prometheus's `stddev`/`stdvar` aggregation
/// computes it (Welford's algorithm); NaN when any value is NaN or infinite.
fn welford(values: impl Iterator<Item = f64>) -> f64 {
    let (mut n, mut mean, mut m2) = (0.0f64, 0.0f64, 0.0f64);
    for v in values {
        if !v.is_finite() {
            return f64::NAN;
        }
        n += 1.0;
        if n == 1.0 {
            mean = v;
            continue;
        }
        let delta = v - mean;
        mean += delta / n;
        m2 += delta * (v - mean);
    }
    if n == 0.0 {
        f64::NAN
    } else {
        m2 / n
    }
}

/// Order for `topk` (descending) and `bottomk` (ascending); NaN always last.
fn rank_order(a: f64, b: f64, desc: bool) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => {
            let o = a.partial_cmp(&b).unwrap_or(Ordering::Equal);
            if desc {
                o.reverse()
            } else {
                o
            }
        }
    }
}

/// The `k` of `topk`/`bottomk`/`limitk` as an integer.
fn int_param(p: Option<f64>) -> Result<i64> {
    let p = p.unwrap_or(f64::NAN);
    if p.is_nan() {
        return Err(QueryError::exec("Parameter value is NaN"));
    }
    if p >= 9.223_372_036_854_776e18 {
        return Err(QueryError::exec(format!(
            "Scalar value {} overflows int64",
            format_value(p)
        )));
    }
    if p <= -9.223_372_036_854_776e18 {
        return Ok(i64::MIN);
    }
    Ok(p as i64)
}

/// Whether `limit_ratio(r, ...)` keeps a series: its label hash mapped to
/// `[0, 1)` is below `r` (or, for negative `r`, at or above `1 + r`).
fn ratio_keep(labels: &Labels, r: f64) -> bool {
    let offset = crate::hash::prometheus_hash(labels) as f64 / u64::MAX as f64;
    if r >= 0.0 {
        offset < r
    } else {
        offset >= 1.0 + r
    }
}
