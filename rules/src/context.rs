//! What rule evaluation reads from and writes to: a [`Queryable`] with a
//! PromQL engine, and a [`SampleAppender`] for results.

use std::collections::BTreeMap;

use fleetwatch_model::remote_write::SeriesSamples;
use fleetwatch_model::Labels;
use fleetwatch_query::{Engine, QueryValue};
use fleetwatch_storage::Queryable;

use crate::template::TemplateQuerier;

/// Writes rule results (recorded series, `ALERTS`, `ALERTS_FOR_STATE`,
/// staleness markers) back into storage. The hub implements it over its
/// head; tests over memory.
pub trait SampleAppender: Send + Sync {
    /// Appends `series` durably; an error names why nothing was stored.
    fn append(&self, series: Vec<SeriesSamples>) -> Result<(), String>;
}

/// The inputs of one evaluation.
pub struct EvalContext<'a> {
    /// The data rules query.
    pub queryable: &'a dyn Queryable,
    /// The PromQL engine.
    pub engine: &'a Engine,
    /// The hub's external labels (`$externalLabels`).
    pub external_labels: &'a BTreeMap<String, String>,
    /// The hub's external URL (`$externalURL`, generator URLs).
    pub external_url: &'a str,
}

impl EvalContext<'_> {
    /// Runs `expr` at `ts_ms` as an instant query; a scalar result becomes
    /// one sample without labels, as Prometheus's rule query function does.
    pub fn query(&self, expr: &str, ts_ms: i64) -> Result<Vec<(Labels, f64)>, String> {
        match self
            .engine
            .instant_query(self.queryable, expr, ts_ms)
            .map_err(|e| e.to_string())?
        {
            QueryValue::Vector(v) => Ok(v.into_iter().map(|s| (s.labels, s.value)).collect()),
            QueryValue::Scalar { value, .. } => Ok(vec![(Labels::empty(), value)]),
            _ => Err("rule result is not a vector or scalar".to_string()),
        }
    }

    /// A template querier evaluating at `ts_ms`.
    pub fn querier(&self, ts_ms: i64) -> AtTime<'_, '_> {
        AtTime { ctx: self, ts_ms }
    }
}

/// An [`EvalContext`] fixed at one time, for the `query` template function.
pub struct AtTime<'c, 'a> {
    ctx: &'c EvalContext<'a>,
    ts_ms: i64,
}

impl TemplateQuerier for AtTime<'_, '_> {
    fn query(&self, expr: &str) -> Result<Vec<(Labels, f64)>, String> {
        self.ctx.query(expr, self.ts_ms)
    }
}
