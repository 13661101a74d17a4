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
                let s = sd.samples.get(idx.checked_sub(1)?)?;
                if s.timestamp_ms <= lo || is_stale_nan(s.value) {
                    return None;
                }
                Some(VSample::new(sd.labels.clone(), s.value, s.timestamp_ms))
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
                        let window = sd.samples.get(a..b).filter(|w| !w.is_empty())?;
                        let samples = if window.iter().any(|s| is_stale_nan(s.value)) {
                            let kept: Vec<_> = window
                                .iter()
                                .filter(|s| !is_stale_nan(s.value))
                                .copied()
                                .collect();
                            if kept.is_empty() {
                                return None;
                            }
                            Cow::Owned(kept)
                        } else {
                            Cow::Borrowed(window)
                        };
                        Some(WindowSeries {
                            labels: Arc::clone(&sd.labels),
                            samples,
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
