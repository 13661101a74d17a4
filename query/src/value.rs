//! Query results (public) and the values passed between evaluation steps
//! (crate-internal).

use std::sync::Arc;

use fleetwatch_model::{Labels, Sample};

use crate::histogram::{FloatHistogram, HistogramPoint};

/// The result of a query, shaped as in the Prometheus HTTP API.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryValue {
    /// A single number.
    Scalar {
        /// Evaluation time, ms.
        timestamp_ms: i64,
        /// The value.
        value: f64,
    },
    /// A string literal result.
    String {
        /// Evaluation time, ms.
        timestamp_ms: i64,
        /// The string.
        value: String,
    },
    /// An instant vector: one sample per series.
    Vector(Vec<InstantSample>),
    /// A range vector or the result of a range query: many samples per series.
    Matrix(Vec<RangeSeries>),
}

/// One element of an instant vector result.
#[derive(Debug, Clone, PartialEq)]
pub struct InstantSample {
    /// The series' labels.
    pub labels: Labels,
    /// The evaluation timestamp, ms.
    pub timestamp_ms: i64,
    /// The value (0 when the sample is a histogram).
    pub value: f64,
    /// The native histogram, for a histogram sample.
    pub histogram: Option<FloatHistogram>,
}

/// One series of a matrix result.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    /// The series' labels.
    pub labels: Labels,
    /// Its float samples in time order.
    pub samples: Vec<Sample>,
    /// Its histogram samples in time order.
    pub histograms: Vec<HistogramPoint>,
}

/// One element of an instant vector during evaluation.
#[derive(Debug, Clone)]
pub(crate) struct VSample {
    /// The series' labels (shared: most steps pass them on unchanged).
    pub labels: Arc<Labels>,
    /// The value (unused when `hist` is set).
    pub value: f64,
    /// The histogram of a histogram sample.
    pub hist: Option<Arc<FloatHistogram>>,
    /// The timestamp of the underlying stored sample (for `timestamp()`),
    /// or the evaluation time for computed samples.
    pub ts: i64,
    /// The metric name is to be dropped when the query finishes (delayed
    /// name removal, as Prometheus's engine does it).
    pub drop_name: bool,
}

impl VSample {
    /// A computed sample keeping its metric name.
    pub fn new(labels: impl Into<Arc<Labels>>, value: f64, ts: i64) -> Self {
        Self {
            labels: labels.into(),
            value,
            hist: None,
            ts,
            drop_name: false,
        }
    }

    /// A computed histogram sample keeping its metric name.
    pub fn histogram(
        labels: impl Into<Arc<Labels>>,
        hist: impl Into<Arc<FloatHistogram>>,
        ts: i64,
    ) -> Self {
        Self {
            labels: labels.into(),
            value: 0.0,
            hist: Some(hist.into()),
            ts,
            drop_name: false,
        }
    }

    /// The labels as they appear in results: without the metric name
    /// when it is marked to be dropped.
    pub fn final_labels(self) -> Arc<Labels> {
        if self.drop_name && self.labels.metric_name().is_some() {
            let mut l = Arc::unwrap_or_clone(self.labels);
            l.remove(fleetwatch_model::METRIC_NAME);
            Arc::new(l)
        } else {
            self.labels
        }
    }
}

/// One series of a range vector during evaluation.
#[derive(Debug, Clone)]
pub(crate) struct MSeries {
    /// The series' labels.
    pub labels: Arc<Labels>,
    /// Float samples in time order, never staleness markers.
    pub samples: Vec<Sample>,
    /// Histogram samples in time order.
    pub histograms: Vec<HistogramPoint>,
    /// The metric name is to be dropped (see [`VSample::drop_name`]).
    pub drop_name: bool,
}

/// An evaluated sub-expression at one evaluation time.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    /// A number.
    Scalar(f64),
    /// A string.
    String(String),
    /// An instant vector.
    Vector(Vec<VSample>),
    /// A range vector.
    Matrix(Vec<MSeries>),
}

impl Value {
    /// The Prometheus name of this value's type.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar(_) => "scalar",
            Value::String(_) => "string",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
        }
    }
}
