//! PromQL functions: dispatch by name to the instant-vector, range-vector,
//! label and histogram implementations.

mod date;
mod histogram;
mod label;
mod math;
mod range;
mod range_hist;

use fleetwatch_model::Labels;
use promql_parser::parser::{Call, Expr};

use crate::error::{QueryError, Result};
use crate::eval::Evaluator;
use crate::hash::FastSet;
use crate::value::{VSample, Value};

/// Evaluates a function call at `t`.
pub(crate) fn call(ev: &Evaluator, c: &Call, t: i64) -> Result<Value> {
    let name = c.func.name;
    let args: Vec<&Expr> = c.args.args.iter().map(|a| a.as_ref()).collect();
    let arg = |i: usize| {
        args.get(i)
            .copied()
            .ok_or_else(|| QueryError::exec(format!("missing argument {} to {name}()", i + 1)))
    };
    let value = match name {
        "time" => Value::Scalar(t as f64 / 1000.0),
        "pi" => Value::Scalar(std::f64::consts::PI),
        "step" => Value::Scalar(ev.settings().step_ms as f64 / 1000.0),
        "range" => {
            let s = ev.settings();
            Value::Scalar((s.query_end - s.query_start) as f64 / 1000.0)
        }
        "start" => Value::Scalar(ev.settings().query_start as f64 / 1000.0),
        "end" => Value::Scalar(ev.settings().query_end as f64 / 1000.0),
        "min_of" | "max_of" => {
            let a = ev.eval_scalar(arg(0)?, t)?;
            let b = ev.eval_scalar(arg(1)?, t)?;
            Value::Scalar(if name == "min_of" {
                crate::stats::go_min(a, b)
            } else {
                crate::stats::go_max(a, b)
            })
        }
        "vector" => Value::Vector(vec![VSample::new(
            Labels::empty(),
            ev.eval_scalar(arg(0)?, t)?,
            t,
        )]),
        "scalar" => {
            let mut v = ev.eval_vector(arg(0)?, t)?;
            v.retain(|s| s.hist.is_none());
            Value::Scalar(match v.as_slice() {
                [one] => one.value,
                _ => f64::NAN,
            })
        }
        "timestamp" => Value::Vector(
            ev.eval_vector(arg(0)?, t)?
                .into_iter()
                .map(|s| VSample {
                    value: s.ts as f64 / 1000.0,
                    hist: None,
                    ts: t,
                    drop_name: true,
                    ..s
                })
                .collect(),
        ),
        "absent" => {
            let v = ev.eval_vector(arg(0)?, t)?;
            Value::Vector(if v.is_empty() {
                vec![VSample::new(label::absent_labels(arg(0)?), 1.0, t)]
            } else {
                Vec::new()
            })
        }
        "sort" | "sort_desc" => {
            warn_sort_in_range_query(ev);
            let mut v = ev.eval_vector(arg(0)?, t)?;
            v.retain(|s| s.hist.is_none());
            math::sort_by_value(&mut v, name == "sort_desc");
            Value::Vector(v)
        }
        "sort_by_label" | "sort_by_label_desc" => {
            warn_sort_in_range_query(ev);
            let mut v = ev.eval_vector(arg(0)?, t)?;
            let names = args
                .iter()
                .skip(1)
                .map(|a| ev.eval_string(a, t))
                .collect::<Result<Vec<_>>>()?;
            label::sort_by_label(&mut v, &names, name == "sort_by_label_desc");
            Value::Vector(v)
        }
        "label_replace" => {
            let v = ev.eval_vector(arg(0)?, t)?;
            let strs = (1..5)
                .map(|i| ev.eval_string(arg(i)?, t))
                .collect::<Result<Vec<_>>>()?;
            Value::Vector(label::label_replace(ev, v, &strs)?)
        }
        "label_join" => {
            let v = ev.eval_vector(arg(0)?, t)?;
            let strs = args
                .iter()
                .skip(1)
                .map(|a| ev.eval_string(a, t))
                .collect::<Result<Vec<_>>>()?;
            Value::Vector(label::label_join(v, &strs)?)
        }
        "histogram_quantile" => {
            let q = ev.eval_scalar(arg(0)?, t)?;
            let v = ev.eval_vector(arg(1)?, t)?;
            if let Some(w) = crate::annotations::invalid_quantile(q) {
                ev.warn(w);
            }
            Value::Vector(histogram::histogram_quantile(ev, q, v, t))
        }
        "histogram_quantiles" => {
            let v = ev.eval_vector(arg(0)?, t)?;
            let label = ev.eval_string(arg(1)?, t)?;
            let qs = args
                .iter()
                .skip(2)
                .map(|a| ev.eval_scalar(a, t))
                .collect::<Result<Vec<_>>>()?;
            for w in qs
                .iter()
                .filter_map(|&q| crate::annotations::invalid_quantile(q))
            {
                ev.warn(w);
            }
            let out = histogram::histogram_quantiles(ev, &label, &qs, v, t)?;
            check_unique_labels(&out)?;
            Value::Vector(out)
        }
        "histogram_fraction" => {
            let lower = ev.eval_scalar(arg(0)?, t)?;
            let upper = ev.eval_scalar(arg(1)?, t)?;
            let v = ev.eval_vector(arg(2)?, t)?;
            Value::Vector(histogram::histogram_fraction(ev, lower, upper, v, t))
        }
        "histogram_count" | "histogram_sum" | "histogram_avg" | "histogram_stddev"
        | "histogram_stdvar" => {
            let v = ev.eval_vector(arg(0)?, t)?;
            Value::Vector(histogram::native_stat(name, v, t))
        }
        "minute" | "hour" | "day_of_month" | "day_of_week" | "day_of_year" | "days_in_month"
        | "month" | "year" => {
            let v = match args.first() {
                Some(a) => ev.eval_vector(a, t)?,
                None => vec![VSample::new(Labels::empty(), t as f64 / 1000.0, t)],
            };
            Value::Vector(date::apply(name, v, t))
        }
        "round" => {
            let v = ev.eval_vector(arg(0)?, t)?;
            let to = match args.get(1) {
                Some(a) => ev.eval_scalar(a, t)?,
                None => 1.0,
            };
            let inv = 1.0 / to;
            Value::Vector(math::map_values(v, t, |x| (x * inv + 0.5).floor() / inv))
        }
        "clamp" | "clamp_min" | "clamp_max" => {
            let v = ev.eval_vector(arg(0)?, t)?;
            let (lo, hi) = match name {
                "clamp" => (ev.eval_scalar(arg(1)?, t)?, ev.eval_scalar(arg(2)?, t)?),
                "clamp_min" => (ev.eval_scalar(arg(1)?, t)?, f64::NAN),
                _ => (f64::NAN, ev.eval_scalar(arg(1)?, t)?),
            };
            Value::Vector(math::clamp(name, v, lo, hi, t))
        }
        _ if math::is_simple(name) => {
            let v = ev.eval_vector(arg(0)?, t)?;
            Value::Vector(math::simple(name, v, t))
        }
        _ if range::is_range_function(name) => range::call(ev, name, &args, t)?,
        _ => {
            return Err(QueryError::exec(format!(
                "function {name}() is not supported"
            )))
        }
    };
    // Only the label functions can make two series' labels equal (other
    // functions mark the metric name for removal at the end instead).
    if let (Value::Vector(v), "label_replace" | "label_join") = (&value, name) {
        check_unique_labels(v)?;
    }
    Ok(value)
}

/// Sorting is pointless in a range query: its series come back ordered
/// by labels.
fn warn_sort_in_range_query(ev: &Evaluator) {
    if ev.settings().step_ms > 0 {
        ev.warn(
            "sort is ineffective for range queries since results are always ordered by labels"
                .to_string(),
        );
    }
}

/// Fails when two elements of `v` have the same label set.
pub(crate) fn check_unique_labels(v: &[VSample]) -> Result<()> {
    if v.len() < 2 {
        return Ok(());
    }
    let mut seen = FastSet::default();
    if v.iter().all(|s| seen.insert(&s.labels)) {
        Ok(())
    } else {
        Err(QueryError::exec(
            "vector cannot contain metrics with the same labelset",
        ))
    }
}
