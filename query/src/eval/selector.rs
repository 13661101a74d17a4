//! Slicing preloaded series for instant and range selectors.

use std::borrow::Cow;
use std::sync::Arc;

use fleetwatch_model::is_stale_nan;
use promql_parser::parser::{MatrixSelector, VectorSelector};

use super::preload::selector_key;
use super::{duration_ms, Evaluator, RangeArg, WindowSeries};
use crate::value::VSample;

impl Evaluator {
    /// The instant vector a selector yields at `t`: per series the latest
    /// sample in `(t' - lookback, t']` (`t'` after `@` and `offset`),
    /// unless that sample is a staleness marker.
    pub(crate) fn select_instant(&self, vs: &VectorSelector, t: i64) -> Vec<VSample> {
        if vs.at.is_none() {
            if let Some(v) = self
                .grid_index(t)
                .and_then(|i| self.instant_block_result(vs, i))
            {
                return v;
            }
        }
        let te = self.effective_time(t, &vs.at, &vs.offset);
        let lo = te.saturating_sub(self.settings.lookback_ms);
        let Some(data) = self.data.get(&selector_key(vs)) else {
            return Vec::new();
        };
        data.iter()
            .filter_map(|sd| {
                let idx = sd.seek(&sd.cursors.0, te);
                let f = idx.checked_sub(1).and_then(|i| sd.samples.get(i));
                let h = if sd.histograms.is_empty() {
                    None
                } else {
                    let hidx = sd.seek_hist(&sd.hist_cursors.0, te);
                    hidx.checked_sub(1).and_then(|i| sd.histograms.get(i))
                };
                match (f, h) {
                    (Some(f), h) if h.is_none_or(|h| h.timestamp_ms < f.timestamp_ms) => {
                        if f.timestamp_ms <= lo || is_stale_nan(f.value) {
                            return None;
                        }
                        Some(VSample::new(sd.labels.clone(), f.value, f.timestamp_ms))
                    }
                    (_, Some(h)) => {
                        if h.timestamp_ms <= lo {
                            return None;
                        }
                        Some(VSample::histogram(
                            sd.labels.clone(),
                            Arc::clone(&h.histogram),
                            h.timestamp_ms,
                        ))
                    }
                    _ => None,
                }
            })
            .collect()
    }

    /// The range vector a matrix selector yields at `t`: the samples in
    /// `(t' - range, t']`, staleness markers dropped, empty series omitted.
    pub(crate) fn select_range(&self, ms: &MatrixSelector, t: i64) -> RangeArg<'_> {
        let te = self.effective_time(t, &ms.vs.at, &ms.vs.offset);
        let lo = te.saturating_sub(duration_ms(&ms.range));
        let series = self
            .data
            .get(&selector_key(&ms.vs))
            .map(|data| {
                data.iter()
                    .filter_map(|sd| {
                        let a = sd.seek(&sd.cursors.1, lo);
                        let b = sd.seek(&sd.cursors.0, te);
                        let window = sd.samples.get(a..b).unwrap_or_default();
                        let samples = if window.iter().any(|s| is_stale_nan(s.value)) {
                            let kept: Vec<_> = window
                                .iter()
                                .filter(|s| !is_stale_nan(s.value))
                                .copied()
                                .collect();
                            Cow::Owned(kept)
                        } else {
                            Cow::Borrowed(window)
                        };
                        let histograms: &[_] = if sd.histograms.is_empty() {
                            &[]
                        } else {
                            let a = sd.seek_hist(&sd.hist_cursors.1, lo);
                            let b = sd.seek_hist(&sd.hist_cursors.0, te);
                            sd.histograms.get(a..b).unwrap_or_default()
                        };
                        if samples.is_empty() && histograms.is_empty() {
                            return None;
                        }
                        Some(WindowSeries {
                            labels: Arc::clone(&sd.labels),
                            samples,
                            histograms: Cow::Borrowed(histograms),
                            drop_name: false,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        RangeArg {
            series,
            range_start: lo,
            range_end: te,
        }
    }
}
