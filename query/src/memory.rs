//! A small in-memory [`Queryable`], for tests and the conformance runner.

use std::collections::BTreeMap;

use fleetwatch_model::matcher::matches_all;
use fleetwatch_model::{Labels, Matcher, Sample};
use fleetwatch_storage::{Queryable, SeriesData, StorageError};

/// Series kept in memory, sorted by labels; samples sorted by time.
#[derive(Debug, Clone, Default)]
pub struct MemoryQueryable {
    series: BTreeMap<Labels, Vec<Sample>>,
}

impl MemoryQueryable {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds samples to the series `labels` (a later sample at the same
    /// timestamp replaces the earlier one).
    pub fn add(&mut self, labels: Labels, samples: impl IntoIterator<Item = Sample>) {
        let entry = self.series.entry(labels).or_default();
        entry.extend(samples);
        entry.sort_by_key(|s| s.timestamp_ms);
        let mut dedup: Vec<Sample> = Vec::with_capacity(entry.len());
        for s in entry.drain(..) {
            match dedup.last_mut() {
                Some(last) if last.timestamp_ms == s.timestamp_ms => *last = s,
                _ => dedup.push(s),
            }
        }
        *entry = dedup;
    }

    /// Removes every series.
    pub fn clear(&mut self) {
        self.series.clear();
    }

    fn matching<'a>(
        &'a self,
        matchers: &'a [Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> impl Iterator<Item = (&'a Labels, &'a [Sample])> + 'a {
        self.series.iter().filter_map(move |(l, s)| {
            if !matches_all(matchers, l) {
                return None;
            }
            let a = s.partition_point(|x| x.timestamp_ms < start_ms);
            let b = s.partition_point(|x| x.timestamp_ms <= end_ms);
            let slice = s.get(a..b)?;
            (!slice.is_empty()).then_some((l, slice))
        })
    }
}

impl Queryable for MemoryQueryable {
    fn select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<SeriesData>, StorageError> {
        Ok(self
            .matching(matchers, start_ms, end_ms)
            .map(|(l, s)| SeriesData {
                labels: l.clone(),
                samples: s.to_vec(),
            })
            .collect())
    }

    fn series(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<Labels>, StorageError> {
        Ok(self
            .matching(matchers, start_ms, end_ms)
            .map(|(l, _)| l.clone())
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
            .flat_map(|(l, _)| l.iter().map(|x| x.name.clone()).collect::<Vec<_>>())
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
            .filter_map(|(l, _)| l.get(name).map(str::to_string))
            .collect();
        values.sort();
        values.dedup();
        Ok(values)
    }
}
