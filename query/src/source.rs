//! Where the engine reads data: a storage [`Queryable`] holds float
//! samples; a [`HistogramQueryable`] can also hold native histograms.

use fleetwatch_model::{Labels, Matcher};
use fleetwatch_storage::{Queryable, StorageError};

use crate::histogram::HistogramPoint;

/// One series' histogram samples.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSeries {
    /// The series' labels.
    pub labels: Labels,
    /// Histogram samples with `start_ms <= t <= end_ms`, ascending by time.
    pub histograms: Vec<HistogramPoint>,
}

/// A [`Queryable`] that also stores native-histogram samples. A series
/// may have both float and histogram samples (at different timestamps).
pub trait HistogramQueryable: Queryable {
    /// Series matching all `matchers` with their histogram samples in
    /// `[start_ms, end_ms]`; series without any are omitted.
    fn select_histograms(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<HistogramSeries>, StorageError>;

    /// This store as a float [`Queryable`].
    fn as_queryable(&self) -> &dyn Queryable;
}

/// The data source of one query.
#[derive(Clone, Copy)]
pub(crate) struct Source<'a> {
    /// Float samples.
    pub floats: &'a dyn Queryable,
    /// Histogram samples, when the store has any.
    pub histograms: Option<&'a dyn HistogramQueryable>,
}

impl<'a> Source<'a> {
    /// A float-only source.
    pub fn floats(q: &'a dyn Queryable) -> Self {
        Self {
            floats: q,
            histograms: None,
        }
    }

    /// A source with floats and histograms.
    pub fn mixed(q: &'a dyn HistogramQueryable) -> Self {
        Self {
            floats: q.as_queryable(),
            histograms: Some(q),
        }
    }
}
