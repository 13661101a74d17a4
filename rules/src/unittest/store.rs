//! An in-memory series store for rule unit tests: the query crate's
//! [`MemoryQueryable`], shared between the engine (reading) and rule
//! evaluation (writing back).

use std::sync::{RwLock, RwLockReadGuard};

use fleetwatch_model::remote_write::SeriesSamples;
use fleetwatch_model::{Labels, Matcher, Sample};
use fleetwatch_query::MemoryQueryable;
use fleetwatch_storage::{Queryable, SeriesData, StorageError};

use crate::context::SampleAppender;

/// Series in memory, samples kept in time order (a later sample at the
/// same timestamp replaces the earlier one).
#[derive(Debug, Default)]
pub struct MemStore {
    inner: RwLock<MemoryQueryable>,
}

impl MemStore {
    /// Adds samples to a series.
    pub fn add(&self, labels: Labels, samples: impl IntoIterator<Item = Sample>) {
        if let Ok(mut m) = self.inner.write() {
            m.add(labels, samples);
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, MemoryQueryable> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }
}

impl Queryable for MemStore {
    fn select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<SeriesData>, StorageError> {
        self.read().select(matchers, start_ms, end_ms)
    }

    fn series(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<Labels>, StorageError> {
        self.read().series(matchers, start_ms, end_ms)
    }

    fn label_names(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, StorageError> {
        self.read().label_names(matchers, start_ms, end_ms)
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, StorageError> {
        self.read().label_values(name, matchers, start_ms, end_ms)
    }
}

impl SampleAppender for MemStore {
    fn append(&self, series: Vec<SeriesSamples>) -> Result<(), String> {
        for s in series {
            self.add(s.labels, s.samples);
        }
        Ok(())
    }
}
