//! An in-memory series store for rule unit tests: readable by the engine,
//! writable by rule evaluation.

use std::collections::BTreeMap;
use std::sync::Mutex;

use fleetwatch_model::remote_write::SeriesSamples;
use fleetwatch_model::{matcher::matches_all, Labels, Matcher, Sample};
use fleetwatch_storage::{Queryable, SeriesData, StorageError};

use crate::context::SampleAppender;

/// Series in memory, samples kept in time order (a later sample at the
/// same timestamp replaces the earlier one).
#[derive(Debug, Default)]
pub struct MemStore {
    series: Mutex<BTreeMap<Labels, Vec<Sample>>>,
}

impl MemStore {
    /// Adds samples to a series.
    pub fn add(&self, labels: Labels, samples: impl IntoIterator<Item = Sample>) {
        let Ok(mut m) = self.series.lock() else {
            return;
        };
        let v = m.entry(labels).or_default();
        for s in samples {
            match v.binary_search_by_key(&s.timestamp_ms, |x| x.timestamp_ms) {
                Ok(i) => v[i] = s,
                Err(i) => v.insert(i, s),
            }
        }
    }

    fn matching(&self, matchers: &[Matcher], start_ms: i64, end_ms: i64) -> Vec<SeriesData> {
        let Ok(m) = self.series.lock() else {
            return Vec::new();
        };
        m.iter()
            .filter(|(l, _)| matches_all(matchers, l))
            .filter_map(|(l, s)| {
                let samples: Vec<Sample> = s
                    .iter()
                    .filter(|x| x.timestamp_ms >= start_ms && x.timestamp_ms <= end_ms)
                    .copied()
                    .collect();
                (!samples.is_empty()).then(|| SeriesData {
                    labels: l.clone(),
                    samples,
                })
            })
            .collect()
    }
}

impl Queryable for MemStore {
    fn select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<SeriesData>, StorageError> {
        Ok(self.matching(matchers, start_ms, end_ms))
    }

    fn series(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<Labels>, StorageError> {
        Ok(self
            .matching(matchers, start_ms, end_ms)
            .into_iter()
            .map(|s| s.labels)
            .collect())
    }

    fn label_names(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, StorageError> {
        let mut names: Vec<String> = self
            .matching(matchers, start_ms, end_ms)
            .iter()
            .flat_map(|s| s.labels.iter().map(|l| l.name.clone()).collect::<Vec<_>>())
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, StorageError> {
        let mut values: Vec<String> = self
            .matching(matchers, start_ms, end_ms)
            .iter()
            .filter_map(|s| s.labels.get(name).map(str::to_string))
            .collect();
        values.sort();
        values.dedup();
        Ok(values)
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
