//! Range-function results computed series by series for a block of
//! consecutive steps of a range query.
//!
//! A range query evaluates its expression step by step; for
//! `rate(x[5m])` that means visiting every series once per step, each
//! visit a cache miss on another series' samples. Over a grid of steps the
//! windows of one series overlap and move forward together, so for a
//! block of steps this module walks each series once, sliding the window
//! start and end forward, and keeps the per-step results until the steps
//! ask for them.

use std::sync::Arc;

use fleetwatch_model::{is_stale_nan, Sample};
use promql_parser::parser::{MatrixSelector, VectorSelector};

use super::preload::{selector_key, LoadedSeries};
use super::{duration_ms, Evaluator, RangeArg};
use crate::error::Result;
use crate::value::VSample;

/// The most (series x steps) results one block holds; the block length
/// shrinks for selectors with many series.
const MAX_BLOCK_RESULTS: usize = 2_000_000;
/// The most steps one block covers.
const MAX_BLOCK_STEPS: usize = 64;

/// Per-step results of one range function over one block of steps.
pub(crate) struct Block {
    /// Grid index of the block's first step.
    first: usize,
    /// Results per step of the block, taken when the step asks for them.
    steps: Vec<Option<Vec<VSample>>>,
}

impl Block {
    /// A block answering no step (the caller evaluates each step itself),
    /// for selectors this module does not handle.
    fn not_applicable(first: usize, count: usize) -> Self {
        Self {
            first,
            steps: (first..count).map(|_| None).collect(),
        }
    }
}

/// True when any series holds native histograms: blocks handle floats only.
fn has_histograms(data: &[LoadedSeries]) -> bool {
    data.iter().any(|sd| !sd.histograms.is_empty())
}

/// What a block computes per series and window: the function's value,
/// or `None` for no sample.
/// A range function as blocks compute it.
#[derive(Clone, Copy)]
pub(crate) struct RangeFn<'f> {
    /// The function over one window.
    pub window: &'f WindowFn<'f>,
    /// Whether `window` takes counter-reset corrections (`rate`, `increase`).
    pub needs_resets: bool,
    /// Called once per series with samples in a block (for annotations).
    pub on_series: &'f dyn Fn(&fleetwatch_model::Labels),
    /// Marks results to drop their metric name.
    pub drop_name: bool,
}

/// `resets` is the window's counter-reset correction when the block
/// computed it from running sums (see [`Evaluator::range_block_result`]).
pub(crate) type WindowFn<'f> =
    dyn Fn(&[Sample], &RangeArg<'_>, i64, Option<f64>) -> Option<f64> + 'f;

impl Evaluator {
    /// The result at grid step `idx` (time `t`) of a range function over
    /// the plain matrix selector `ms`, from the block holding that step
    /// (computed now if no block holds it). `f` computes one window;
    /// `on_series` is called once per series that has samples in the block
    /// (for annotations); `drop_name` marks the results.
    pub(crate) fn range_block_result(
        &self,
        node: usize,
        ms: &MatrixSelector,
        idx: usize,
        func: &RangeFn<'_>,
    ) -> Result<Option<Vec<VSample>>> {
        if let Some(taken) = self.take_block_step(node, idx) {
            return Ok(taken);
        }
        let mut block = self.compute_block(ms, idx, func)?;
        let out = block.steps.first_mut().and_then(Option::take);
        self.range_blocks.borrow_mut().insert(node, block);
        Ok(out)
    }

    /// The results of step `idx` from the block of `node` when a block
    /// covers the step: `Some(Some(..))` the first time, `Some(None)` when
    /// they were already taken (a subquery asking again: the caller
    /// evaluates the step itself); `None` when no block covers it.
    fn take_block_step(&self, node: usize, idx: usize) -> Option<Option<Vec<VSample>>> {
        let mut blocks = self.range_blocks.borrow_mut();
        let b = blocks.get_mut(&node)?;
        let step = idx.checked_sub(b.first).and_then(|i| b.steps.get_mut(i))?;
        Some(step.take())
    }

    fn compute_block(
        &self,
        ms: &MatrixSelector,
        first: usize,
        func: &RangeFn<'_>,
    ) -> Result<Block> {
        let RangeFn {
            window: f,
            needs_resets,
            on_series,
            drop_name,
        } = *func;
        let Some((grid_start, step, count)) = self.grid.get() else {
            return Ok(Block {
                first,
                steps: Vec::new(),
            });
        };
        let data = self
            .data
            .get(&selector_key(&ms.vs))
            .map_or(&[][..], Vec::as_slice);
        if has_histograms(data) {
            return Ok(Block::not_applicable(first, count));
        }
        let len = (MAX_BLOCK_RESULTS / data.len().max(1))
            .clamp(1, MAX_BLOCK_STEPS)
            .min(count.saturating_sub(first));
        let times: Vec<i64> = (first..first + len)
            .map(|i| grid_start + i as i64 * step)
            .collect();
        let range = duration_ms(&ms.range);
        let mut steps: Vec<Vec<VSample>> = times.iter().map(|_| Vec::new()).collect();
        let mut kept = Vec::new();
        let mut resets: Vec<f64> = Vec::new();
        for (n, sd) in data.iter().enumerate() {
            if n % 1024 == 0 {
                self.check_deadline()?;
            }
            let samples = sd.samples.as_slice();
            // Running sums of counter-reset corrections: a window's
            // correction is then one subtraction instead of a scan of the
            // window (overlapping windows share the work). Not used when a
            // sum is not finite (inf - inf).
            resets.clear();
            if needs_resets {
                let mut acc = 0.0;
                resets.push(acc);
                for w in samples.windows(2) {
                    if w[1].value < w[0].value {
                        acc += w[0].value;
                    }
                    resets.push(acc);
                }
                if !acc.is_finite() {
                    resets.clear();
                }
            }
            let (mut a, mut b) = (0usize, 0usize);
            let mut seen = false;
            for (k, &t) in times.iter().enumerate() {
                let te = self.effective_time(t, &ms.vs.at, &ms.vs.offset);
                let lo = te.saturating_sub(range);
                while samples.get(a).is_some_and(|s| s.timestamp_ms <= lo) {
                    a += 1;
                }
                b = b.max(a);
                while samples.get(b).is_some_and(|s| s.timestamp_ms <= te) {
                    b += 1;
                }
                let Some(window) = samples.get(a..b).filter(|w| !w.is_empty()) else {
                    continue;
                };
                let stale = window.iter().any(|s| is_stale_nan(s.value));
                let window_resets = match (resets.get(a), resets.get(b.wrapping_sub(1))) {
                    (Some(from), Some(to)) if !stale => Some(to - from),
                    _ => None,
                };
                let window = if stale {
                    kept.clear();
                    kept.extend(window.iter().filter(|s| !is_stale_nan(s.value)));
                    if kept.is_empty() {
                        continue;
                    }
                    kept.as_slice()
                } else {
                    window
                };
                if !seen {
                    on_series(&sd.labels);
                    seen = true;
                }
                let arg = RangeArg {
                    series: Vec::new(),
                    range_start: lo,
                    range_end: te,
                };
                let value = match window_resets {
                    Some(r) => f(window, &arg, t, Some(r)),
                    None => f(window, &arg, t, None),
                };
                if let (Some(value), Some(out)) = (value, steps.get_mut(k)) {
                    out.push(VSample {
                        drop_name,
                        ..VSample::new(Arc::clone(&sd.labels), value, t)
                    });
                }
            }
        }
        Ok(Block {
            first,
            steps: steps.into_iter().map(Some).collect(),
        })
    }
}

impl Evaluator {
    /// The instant vector the plain selector `vs` (no `@`) yields at grid
    /// step `idx` (time `t`), from the block holding that step (computed
    /// now, series by series, if no block holds it).
    pub(crate) fn instant_block_result(
        &self,
        vs: &VectorSelector,
        idx: usize,
    ) -> Option<Vec<VSample>> {
        // Offset from the node's address so the key cannot meet a range
        // function's key (nodes are aligned, the offset is not).
        let node = std::ptr::from_ref(vs) as usize + 3;
        if let Some(taken) = self.take_block_step(node, idx) {
            return taken;
        }
        let mut block = self.compute_instant_block(vs, idx);
        let out = block.steps.first_mut().and_then(Option::take);
        self.range_blocks.borrow_mut().insert(node, block);
        out
    }

    fn compute_instant_block(&self, vs: &VectorSelector, first: usize) -> Block {
        let Some((grid_start, step, count)) = self.grid.get() else {
            return Block {
                first,
                steps: Vec::new(),
            };
        };
        let data = self
            .data
            .get(&selector_key(vs))
            .map_or(&[][..], Vec::as_slice);
        if has_histograms(data) {
            return Block::not_applicable(first, count);
        }
        let len = (MAX_BLOCK_RESULTS / data.len().max(1))
            .clamp(1, MAX_BLOCK_STEPS)
            .min(count.saturating_sub(first));
        let times: Vec<i64> = (first..first + len)
            .map(|i| grid_start + i as i64 * step)
            .collect();
        let mut steps: Vec<Vec<VSample>> = times.iter().map(|_| Vec::new()).collect();
        for sd in data {
            let samples = sd.samples.as_slice();
            let mut b = 0usize;
            for (k, &t) in times.iter().enumerate() {
                let te = self.effective_time(t, &vs.at, &vs.offset);
                let lo = te.saturating_sub(self.settings.lookback_ms);
                while samples.get(b).is_some_and(|s| s.timestamp_ms <= te) {
                    b += 1;
                }
                let Some(s) = b.checked_sub(1).and_then(|i| samples.get(i)) else {
                    continue;
                };
                if s.timestamp_ms <= lo || is_stale_nan(s.value) {
                    continue;
                }
                if let Some(out) = steps.get_mut(k) {
                    out.push(VSample::new(
                        Arc::clone(&sd.labels),
                        s.value,
                        s.timestamp_ms,
                    ));
                }
            }
        }
        Block {
            first,
            steps: steps.into_iter().map(Some).collect(),
        }
    }
}
