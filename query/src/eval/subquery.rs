//! Subqueries: `expr[range:step]` evaluates `expr` at aligned steps inside
//! the window and yields the results as a range vector.

use std::collections::BTreeMap;

use fleetwatch_model::{Labels, Sample};
use promql_parser::parser::SubqueryExpr;

use super::{duration_ms, Evaluator, RangeArg, DEFAULT_SUBQUERY_STEP_MS};
use crate::error::{QueryError, Result};
use crate::value::{MSeries, Value};

impl Evaluator {
    /// Evaluates a subquery at `t`. Inner steps are multiples of the step
    /// (aligned to the epoch) inside the left-open window `(t' - range, t']`.
    pub(crate) fn eval_subquery(&self, sq: &SubqueryExpr, t: i64) -> Result<RangeArg> {
        let te = self.effective_time(t, &sq.at, &sq.offset);
        let range = duration_ms(&sq.range);
        let step = sq
            .step
            .as_ref()
            .map(duration_ms)
            .unwrap_or(DEFAULT_SUBQUERY_STEP_MS);
        if step <= 0 {
            return Err(QueryError::exec("subquery step must be positive"));
        }
        let lo = te - range;
        let mut ts = lo.div_euclid(step) * step;
        if ts <= lo {
            ts += step;
        }
        let mut series: BTreeMap<Labels, Vec<Sample>> = BTreeMap::new();
        while ts <= te {
            self.check_deadline()?;
            match self.eval(&sq.expr, ts)? {
                Value::Scalar(v) => series.entry(Labels::empty()).or_default().push(Sample::new(ts, v)),
                Value::Vector(v) => {
                    for s in v {
                        series.entry(s.labels).or_default().push(Sample::new(ts, s.value));
                    }
                }
                other => {
                    return Err(QueryError::exec(format!(
                        "subquery is only allowed on instant vector or scalar, got {}",
                        other.type_name()
                    )))
                }
            }
            ts += step;
        }
        Ok(RangeArg {
            series: series
                .into_iter()
                .map(|(labels, samples)| MSeries { labels, samples })
                .collect(),
            range_start: lo,
            range_end: te,
        })
    }
}
