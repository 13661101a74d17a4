//! fleetwatch-query: a PromQL engine (Prometheus 3 semantics for float
//! and native-histogram samples) evaluating over the storage crate's
//! [`Queryable`](fleetwatch_storage::Queryable) trait.
//!
//! Queries are parsed with `promql-parser`; every selector's data is
//! selected from storage once per query (for the whole range of a range
//! query) and the expression is then evaluated step by step. Subquery inner
//! results are computed once per inner step and shared by all outer steps.
//!
//! Semantics follow Prometheus 3: left-open lookback and range windows,
//! staleness markers, `@`/`offset`, extrapolated `rate`, Kahan summation,
//! and delayed metric-name removal (functions and operators mark the name
//! for removal and it is dropped when the query finishes, as Prometheus's
//! own test suite runs the engine), so `label_replace(rate(x[5m]), "n",
//! "$1", "__name__", "(.*)")` can still read the name. Native histograms
//! and classic `le` histograms are both supported. The `*_annotated` query
//! methods also return Prometheus's warning and info [`Annotations`]
//! (non-counter `rate`, quantile or ratio out of range, malformed or
//! non-monotonic buckets, `sort` in a range query).
//!
//! Native histograms: a store implementing [`HistogramQueryable`] (such as
//! [`MemoryQueryable`]) can hold [`FloatHistogram`] samples; the
//! `*_histograms` query methods read them. The storage crate's
//! [`Queryable`](fleetwatch_storage::Queryable) stays float-only.
//!
//! [`conformance`] runs Prometheus's PromQL test scripts against the engine.
//!
//! ```
//! use fleetwatch_model::{Labels, Sample};
//! use fleetwatch_query::{Engine, EngineOptions, MemoryQueryable, QueryValue};
//!
//! let mut db = MemoryQueryable::new();
//! db.add(Labels::from_pairs([("__name__", "up"), ("job", "a")]), [Sample::new(0, 1.0)]);
//! let engine = Engine::new(EngineOptions::default());
//! let QueryValue::Vector(v) = engine.instant_query(&db, "up == 1", 10_000).unwrap() else {
//!     panic!("expected a vector")
//! };
//! assert_eq!(v[0].value, 1.0);
//! ```

mod aggregate;
mod annotations;
mod binary;
pub mod conformance;
mod engine;
mod error;
mod eval;
mod functions;
mod hash;
pub mod histogram;
pub mod logql;
mod memory;
mod source;
mod stats;
mod value;

pub use annotations::Annotations;
pub use engine::{parse_series_selector, Engine, EngineOptions, MAX_POINTS_PER_SERIES};
pub use error::QueryError;
pub use histogram::{FloatHistogram, HistogramPoint};
pub use memory::MemoryQueryable;
pub use source::{HistogramQueryable, HistogramSeries};
pub use value::{InstantSample, QueryValue, RangeSeries};
