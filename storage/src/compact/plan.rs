//! Choosing which blocks to compact (pure: no I/O).

use std::collections::BTreeMap;

use super::CompactOptions;
use crate::block::BlockMeta;

/// The ids of the blocks to merge next, or `None`. Blocks are grouped by
/// the aligned window of `opts.max_block_range_ms` containing them (blocks
/// crossing a window boundary are left alone); the oldest window holding at
/// least `max(opts.min_blocks, 2)` blocks is chosen. Overlapping blocks in
/// one window are merged too (which also removes duplicate samples).
pub fn plan_compaction(blocks: &[BlockMeta], opts: &CompactOptions) -> Option<Vec<String>> {
    let range = opts.max_block_range_ms;
    if range <= 0 {
        return None;
    }
    let mut windows: BTreeMap<i64, Vec<&BlockMeta>> = BTreeMap::new();
    for b in blocks {
        let k = b.min_time.div_euclid(range);
        let end = k.saturating_add(1).saturating_mul(range);
        if b.max_time < end && end <= opts.closed_before_ms {
            windows.entry(k).or_default().push(b);
        }
    }
    let need = opts.min_blocks.max(2);
    windows
        .into_values()
        .find(|w| w.len() >= need)
        .map(|w| w.into_iter().map(|b| b.id.clone()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(id: &str, min: i64, max: i64) -> BlockMeta {
        BlockMeta {
            id: id.into(),
            min_time: min,
            max_time: max,
            num_series: 1,
            num_samples: 1,
            level: 1,
            sources: vec![],
            bytes: 1,
        }
    }

    #[test]
    fn aligned_windows() {
        let h = 3_600_000;
        let blocks = vec![
            meta("a", 0, 2 * h - 1),
            meta("b", 2 * h, 4 * h - 1),
            meta("c", 4 * h, 6 * h - 1),
            meta("d", 6 * h, 8 * h - 1),
        ];
        let opts = CompactOptions {
            max_block_range_ms: 6 * h,
            min_blocks: 2,
            closed_before_ms: i64::MAX,
        };
        assert_eq!(
            plan_compaction(&blocks, &opts),
            Some(vec!["a".into(), "b".into(), "c".into()])
        );
        // Only d in its window: nothing more after merging the first.
        assert_eq!(plan_compaction(&blocks[3..], &opts), None);
        // A window that is not closed yet is left alone.
        let open = CompactOptions {
            closed_before_ms: 6 * h - 1,
            ..opts
        };
        assert_eq!(plan_compaction(&blocks, &open), None);
        // A block crossing a window boundary is never picked.
        assert_eq!(
            plan_compaction(&[meta("x", h, 7 * h), meta("y", 7 * h, 8 * h)], &opts),
            None
        );
    }
}
