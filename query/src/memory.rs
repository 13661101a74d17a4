//! A small in-memory [`Queryable`], for tests and the conformance runner.

use std::collections::BTreeMap;

use fleetwatch_model::matcher::matches_all;
use fleetwatch_model::{Labels, Matcher, Sample};
use fleetwatch_storage::{Queryable, SeriesData, StorageError};

use std::sync::Arc;

use crate::histogram::{CounterResetHint, FloatHistogram, HistogramPoint};
use crate::source::{HistogramQueryable, HistogramSeries};

/// Series kept in memory, sorted by labels; samples sorted by time. A
/// series can hold float and native-histogram samples.
#[derive(Debug, Clone, Default)]
pub struct MemoryQueryable {
    series: BTreeMap<Labels, Vec<Sample>>,
    histograms: BTreeMap<Labels, Vec<HistogramPoint>>,
}

impl MemoryQueryable {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds samples to the series `labels` (a later sample at the same
    /// timestamp replaces the earlier one).
    pub fn add(&mut self, labels: Labels, samples: impl IntoIterator<Item = Sample>) {
        merge_by_time(self.series.entry(labels).or_default(), samples, |s| {
            s.timestamp_ms
        });
    }

    /// Adds histogram samples to the series `labels` (a later sample at
    /// the same timestamp replaces the earlier one).
    pub fn add_histograms(
        &mut self,
        labels: Labels,
        points: impl IntoIterator<Item = HistogramPoint>,
    ) {
        merge_by_time(self.histograms.entry(labels).or_default(), points, |p| {
            p.timestamp_ms
        });
    }

    /// Removes every series.
    pub fn clear(&mut self) {
        self.series.clear();
        self.histograms.clear();
    }

    fn matching<'a>(
        &'a self,
        matchers: &'a [Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> impl Iterator<Item = (&'a Labels, &'a [Sample])> + 'a {
        in_range(&self.series, matchers, start_ms, end_ms, |s| s.timestamp_ms)
    }

    /// Labels of float or histogram series matching in the range, sorted.
    fn matching_labels<'a>(
        &'a self,
        matchers: &'a [Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Vec<&'a Labels> {
        let mut out: Vec<&Labels> = self
            .matching(matchers, start_ms, end_ms)
            .map(|(l, _)| l)
            .chain(
                self.matching_histograms(matchers, start_ms, end_ms)
                    .map(|(l, _)| l),
            )
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The histograms of the series `labels` with the counter-reset hints
    /// Prometheus's TSDB gives them on append: a histogram directly after
    /// another (no float sample in between) is marked `NotReset`, or
    /// `Reset` when its counts went down; the first of a run keeps its
    /// hint, and gauge histograms stay gauges.
    fn with_stored_hints(&self, labels: &Labels, points: &[HistogramPoint]) -> Vec<HistogramPoint> {
        let floats = self.series.get(labels).map_or(&[][..], Vec::as_slice);
        let mut out: Vec<HistogramPoint> = Vec::with_capacity(points.len());
        let mut prev: Option<&HistogramPoint> = None;
        for p in points {
            let mut point = p.clone();
            let follows = prev.filter(|q| {
                let a = floats.partition_point(|f| f.timestamp_ms <= q.timestamp_ms);
                let b = floats.partition_point(|f| f.timestamp_ms < p.timestamp_ms);
                a >= b
            });
            let hint = p.histogram.counter_reset_hint;
            if let (Some(q), false) = (follows, p.histogram.is_gauge()) {
                let new_hint =
                    if hint == CounterResetHint::Reset || p.histogram.detect_reset(&q.histogram) {
                        CounterResetHint::Reset
                    } else {
                        CounterResetHint::NotReset
                    };
                if new_hint != hint {
                    let mut h = FloatHistogram::clone(&p.histogram);
                    h.counter_reset_hint = new_hint;
                    point.histogram = Arc::new(h);
                }
            }
            prev = Some(p);
            out.push(point);
        }
        out
    }

    fn matching_histograms<'a>(
        &'a self,
        matchers: &'a [Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> impl Iterator<Item = (&'a Labels, &'a [HistogramPoint])> + 'a {
        in_range(&self.histograms, matchers, start_ms, end_ms, |p| {
            p.timestamp_ms
        })
    }
}

/// Adds `items` to the time-ordered `entry`; a later item at the same
/// timestamp replaces the earlier one.
fn merge_by_time<T>(entry: &mut Vec<T>, items: impl IntoIterator<Item = T>, ts: fn(&T) -> i64) {
    entry.extend(items);
    entry.sort_by_key(ts);
    let mut dedup: Vec<T> = Vec::with_capacity(entry.len());
    for item in entry.drain(..) {
        match dedup.last_mut() {
            Some(last) if ts(last) == ts(&item) => *last = item,
            _ => dedup.push(item),
        }
    }
    *entry = dedup;
}

/// The series of `map` matching `matchers` with their points in
/// `[start_ms, end_ms]`, series without such points left out.
fn in_range<'a, T>(
    map: &'a BTreeMap<Labels, Vec<T>>,
    matchers: &'a [Matcher],
    start_ms: i64,
    end_ms: i64,
    ts: fn(&T) -> i64,
) -> impl Iterator<Item = (&'a Labels, &'a [T])> + 'a {
    map.iter().filter_map(move |(l, s)| {
        if !matches_all(matchers, l) {
            return None;
        }
        let a = s.partition_point(|x| ts(x) < start_ms);
        let b = s.partition_point(|x| ts(x) <= end_ms);
        let slice = s.get(a..b)?;
        (!slice.is_empty()).then_some((l, slice))
    })
}

impl HistogramQueryable for MemoryQueryable {
    fn select_histograms(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<HistogramSeries>, StorageError> {
        Ok(self
            .matching_histograms(matchers, start_ms, end_ms)
            .map(|(l, h)| {
                let all = self.histograms.get(l).map_or(h, Vec::as_slice);
                let histograms = self
                    .with_stored_hints(l, all)
                    .into_iter()
                    .filter(|p| p.timestamp_ms >= start_ms && p.timestamp_ms <= end_ms)
                    .collect();
                HistogramSeries {
                    labels: l.clone(),
                    histograms,
                }
            })
            .collect())
    }

    fn as_queryable(&self) -> &dyn Queryable {
        self
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
            .matching_labels(matchers, start_ms, end_ms)
            .into_iter()
            .cloned()
            .collect())
    }

    fn label_names(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, StorageError> {
        let mut names: Vec<String> = self
            .matching_labels(matchers, start_ms, end_ms)
            .into_iter()
            .flat_map(|l| l.iter().map(|x| x.name.clone()).collect::<Vec<_>>())
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
            .matching_labels(matchers, start_ms, end_ms)
            .into_iter()
            .filter_map(|l| l.get(name).map(str::to_string))
            .collect();
        values.sort();
        values.dedup();
        Ok(values)
    }
}
