//! Recording rules: evaluate an expression and store its result under a
//! new metric name.

use std::collections::{BTreeMap, HashSet};

use fleetwatch_model::Labels;

use crate::context::EvalContext;

/// A compiled recording rule.
#[derive(Debug, Clone)]
pub struct RecordingRule {
    /// The recorded metric name.
    pub name: String,
    /// The PromQL expression.
    pub expr: String,
    /// Labels set on every output series (group labels merged in).
    pub labels: BTreeMap<String, String>,
}

impl RecordingRule {
    /// Evaluates at `ts_ms`; returns the series to store. `limit` > 0 caps
    /// the number of series.
    pub fn eval(
        &self,
        ctx: &EvalContext<'_>,
        ts_ms: i64,
        limit: u64,
    ) -> Result<Vec<(Labels, f64)>, String> {
        let result = ctx.query(&self.expr, ts_ms)?;
        let mut seen = HashSet::with_capacity(result.len());
        let mut out = Vec::with_capacity(result.len());
        for (mut labels, value) in result {
            labels.set(fleetwatch_model::METRIC_NAME, &self.name);
            for (k, v) in &self.labels {
                labels.set(k, v);
            }
            if !seen.insert(labels.clone()) {
                return Err(
                    "vector contains metrics with the same labelset after applying rule labels"
                        .to_string(),
                );
            }
            out.push((labels, value));
        }
        if limit > 0 && out.len() as u64 > limit {
            return Err(format!(
                "exceeded limit of {limit} with {} series",
                out.len()
            ));
        }
        Ok(out)
    }
}
