//! Compaction: merging adjacent blocks into longer, time-aligned ones.
//!
//! Blocks are grouped by the aligned window `[k * range, (k + 1) * range)`
//! of `max_block_range_ms` that contains them; the oldest window holding at
//! least `min_blocks` blocks that fit entirely inside it is merged into one
//! block. Calling with growing ranges (2h -> 6h -> 24h) builds the usual
//! levels. The new block is written completely (`meta.json` last, listing
//! its sources) before the sources leave the open list and are deleted; a
//! crash in between leaves the new block plus sources, which
//! [`BlockStore::open`] recognises and removes. Readers never see a gap or
//! duplicates.

mod plan;

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use crate::block::meta::CompactionMeta;
use crate::block::{BlockMeta, BlockStore};
use crate::StorageError;

pub use plan::plan_compaction;

/// Options of one compaction run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactOptions {
    /// The longest range a compacted block may cover, in milliseconds.
    pub max_block_range_ms: i64,
    /// How many blocks of one window at least are worth merging.
    pub min_blocks: usize,
    /// Only windows ending at or before this time (ms) are compacted:
    /// windows that can still receive blocks cut from the head are left
    /// alone, so a window is rewritten once, not on every cut.
    pub closed_before_ms: i64,
}

impl Default for CompactOptions {
    /// 6 h windows, merging at least 2 blocks.
    fn default() -> Self {
        Self {
            max_block_range_ms: 6 * 3600 * 1000,
            min_blocks: 2,
            closed_before_ms: i64::MAX,
        }
    }
}

impl BlockStore {
    /// Merges the oldest window of blocks that `opts` allows into one block
    /// and removes the sources. Returns the new block, or `None` when
    /// nothing qualifies. Reads all samples of the sources into memory and
    /// encodes inline: run it from a blocking thread.
    pub async fn compact(&self, opts: &CompactOptions) -> Result<Option<BlockMeta>, StorageError> {
        self.compact_inner(opts, true).await
    }

    /// [`Self::compact`]; with `delete_sources` false it stops after
    /// writing the new block, as a crash would (for tests).
    pub(crate) async fn compact_inner(
        &self,
        opts: &CompactOptions,
        delete_sources: bool,
    ) -> Result<Option<BlockMeta>, StorageError> {
        let _guard = self.maintenance_lock().await;
        let blocks = self.open_blocks();
        let metas: Vec<BlockMeta> = blocks.iter().map(|b| b.meta.summary()).collect();
        let Some(chosen) = plan_compaction(&metas, opts) else {
            return Ok(None);
        };
        let sources: Vec<_> = blocks
            .into_iter()
            .filter(|b| chosen.contains(&b.meta.id))
            .collect();
        let min_time = sources.iter().map(|b| b.meta.min_time).min().unwrap_or(0);
        let max_time = sources.iter().map(|b| b.meta.max_time).max().unwrap_or(0);
        let level = sources
            .iter()
            .map(|b| b.meta.compaction.level)
            .max()
            .unwrap_or(0)
            + 1;
        let mut series = Vec::new();
        for b in &sources {
            let all: Vec<u32> = (0..b.postings.num_series() as u32).collect();
            let rows = b
                .read_samples(&all, i64::MIN, i64::MAX, self.stats())
                .await?;
            series.extend(rows.into_iter().map(|(id, s)| (b.postings.labels(id), s)));
        }
        let series = crate::block::writer::normalize(series);
        let compaction = CompactionMeta {
            level,
            sources: sources.iter().map(|b| b.meta.id.clone()).collect(),
        };
        let block = self
            .write_normalized(&series, min_time, max_time, compaction)
            .await?;
        let meta = block.meta.summary();
        tracing::info!(
            block = %meta.id,
            level,
            sources = ?meta.sources,
            min_time,
            max_time,
            "compacted blocks"
        );
        if !delete_sources {
            // As after a crash: new block complete, sources still on disk.
            return Ok(Some(meta));
        }
        let ids: HashSet<String> = chosen.into_iter().collect();
        drop(sources);
        self.replace_blocks(block, &ids).await?;
        self.stats().compactions.fetch_add(1, Ordering::Relaxed);
        Ok(Some(meta))
    }
}

#[cfg(test)]
mod tests;
