//! Immutable, time-bounded blocks stored as Parquet through `object_store`.
//!
//! A block lives under `blocks/<id>/` (the id is a ULID, so ids sort by
//! creation time) and holds:
//! - `samples.parquet`: `series_id: UInt32` and `timestamp: Int64` (ms),
//!   both DELTA_BINARY_PACKED, and `value: Float64` (PLAIN; the default,
//!   measured smallest), or with [`ValueEncoding::Decimal`] the pair
//!   `value_mantissa: Int64` + `value_exponent: Int8` with
//!   `value = mantissa / 10^exponent`, exponent `-128` meaning "mantissa
//!   holds the raw IEEE-754 bits" (see [`encoding`]; `meta.json`'s
//!   `value_encoding` says which). Rows are sorted by series then time; row
//!   groups of 128Ki rows, pages of 8Ki rows, page statistics, column and
//!   offset indexes, zstd.
//! - `series.parquet`: one row per series: `series_id`, `labels:
//!   List<Struct<name, value>>` sorted by name, `series_hash: UInt64`,
//!   `min_time`, `max_time`, `num_samples`.
//! - `postings.parquet`: `name`, `value`, `series_ids: List<UInt32>`.
//! - `meta.json`, written last: a block without it is incomplete.
//!
//! The store only uses the [`ObjectStore`] trait, so blocks can live on the
//! local filesystem ([`BlockStore::local`]) or in S3/GCS/Azure.

pub mod encoding;
pub mod io;
pub mod meta;
pub mod postings;
pub mod reader;
pub mod writer;

#[cfg(test)]
mod fleetgen;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt};
use parking_lot::RwLock;

use fleetwatch_model::{Labels, Matcher, Sample};

pub use encoding::{SampleLayout, ValueEncoding};
pub use meta::BlockMeta;

use io::{block_file, put_all, store_err, BLOCKS_PREFIX};
use meta::{new_block_id, CompactionMeta};
use reader::{OpenBlock, OpenError};
use writer::{encode_block, normalize, META_FILE};

use crate::{SeriesData, StorageError};

/// How many blocks a select reads concurrently.
const SELECT_CONCURRENCY: usize = 4;

/// Counters of the block store, read by the hub's `/metrics`.
#[derive(Debug, Default)]
pub struct BlockStats {
    /// Blocks opened successfully (at start and when written).
    pub blocks_loaded: AtomicU64,
    /// Blocks skipped at start because a file was missing, truncated or corrupt.
    pub blocks_corrupt_skipped: AtomicU64,
    /// Incomplete blocks (no `meta.json`) removed at start.
    pub blocks_incomplete_removed: AtomicU64,
    /// Blocks removed at start because a compacted block replaces them.
    pub blocks_superseded_removed: AtomicU64,
    /// Blocks written (head cuts and compactions).
    pub blocks_written: AtomicU64,
    /// Compactions completed.
    pub compactions: AtomicU64,
    /// Blocks deleted by retention.
    pub blocks_retention_deleted: AtomicU64,
    /// Selects served.
    pub selects: AtomicU64,
    /// Bytes fetched from `samples.parquet` files by selects.
    pub bytes_read: Arc<AtomicU64>,
    /// Row groups decoded by selects.
    pub row_groups_read: AtomicU64,
    /// Row groups skipped by statistics or because no asked series is in them.
    pub row_groups_skipped: AtomicU64,
    /// Pages (all columns) inside the row groups read.
    pub pages_read: AtomicU64,
    /// Pages skipped thanks to the page index (or a skipped row group).
    pub pages_skipped: AtomicU64,
}

impl BlockStats {
    /// The shared bytes-read counter (handed to ranged readers).
    pub fn bytes_read_counter(&self) -> Arc<AtomicU64> {
        self.bytes_read.clone()
    }
}

/// The set of open blocks over one object store.
pub struct BlockStore {
    store: Arc<dyn ObjectStore>,
    blocks: RwLock<Vec<Arc<OpenBlock>>>,
    stats: BlockStats,
    /// Serializes compaction and retention.
    maintenance: tokio::sync::Mutex<()>,
    layout: SampleLayout,
}

fn sort_blocks(blocks: &mut [Arc<OpenBlock>]) {
    blocks.sort_by(|a, b| {
        (a.meta.min_time, a.meta.max_time, &a.meta.id).cmp(&(
            b.meta.min_time,
            b.meta.max_time,
            &b.meta.id,
        ))
    });
}

impl BlockStore {
    /// A local-filesystem object store rooted at `dir` (created if needed).
    pub fn local(dir: &Path) -> Result<Arc<dyn ObjectStore>, StorageError> {
        std::fs::create_dir_all(dir).map_err(|e| StorageError::Io {
            path: dir.display().to_string(),
            source: e,
        })?;
        let fs = LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| io::invalid(dir.display().to_string(), e))?
            .with_automatic_cleanup(true);
        Ok(Arc::new(fs))
    }

    /// Opens the store: lists `blocks/`, opens every block with a valid
    /// `meta.json`, removes incomplete blocks (no `meta.json`) and blocks
    /// that a newer compacted block lists as its sources, and skips (with a
    /// warning and a counter) blocks whose files are missing, truncated or
    /// corrupt. Never fails because of one bad block; fails only when the
    /// store cannot be listed.
    pub async fn open(store: Arc<dyn ObjectStore>) -> Result<Self, StorageError> {
        let prefix = ObjPath::from(BLOCKS_PREFIX);
        let listed: Vec<object_store::ObjectMeta> = store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| store_err(&prefix, e))?;
        let mut by_block: BTreeMap<String, HashMap<String, u64>> = BTreeMap::new();
        for o in listed {
            let parts: Vec<String> = o.location.parts().map(|p| p.as_ref().to_string()).collect();
            if let [_, id, file] = parts.as_slice() {
                by_block
                    .entry(id.clone())
                    .or_default()
                    .insert(file.clone(), o.size);
            }
        }
        let this = Self {
            store: store.clone(),
            blocks: RwLock::new(Vec::new()),
            stats: BlockStats::default(),
            maintenance: tokio::sync::Mutex::new(()),
            layout: SampleLayout::default(),
        };
        let mut opened: Vec<Arc<OpenBlock>> = Vec::new();
        for (id, sizes) in &by_block {
            match OpenBlock::open(store.clone(), id, sizes).await {
                Ok(b) => opened.push(Arc::new(b)),
                Err(OpenError::Incomplete) => {
                    tracing::warn!(block = %id, "removing incomplete block (no meta.json)");
                    this.stats
                        .blocks_incomplete_removed
                        .fetch_add(1, Ordering::Relaxed);
                    let files: Vec<&str> = sizes.keys().map(String::as_str).collect();
                    if let Err(e) = this.delete_files(id, &files).await {
                        tracing::warn!(block = %id, error = %e, "could not remove incomplete block");
                    }
                }
                Err(OpenError::Corrupt(e)) => {
                    tracing::warn!(block = %id, error = %e, "skipping corrupt block");
                    this.stats
                        .blocks_corrupt_skipped
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        // A crash after a compaction wrote its block but before it deleted
        // the sources leaves both: the sources are redundant.
        let superseded: HashSet<String> = opened
            .iter()
            .flat_map(|b| b.meta.compaction.sources.iter().cloned())
            .collect();
        let (gone, mut keep): (Vec<_>, Vec<_>) = opened
            .into_iter()
            .partition(|b| superseded.contains(&b.meta.id));
        for b in gone {
            tracing::info!(block = %b.meta.id, "removing block replaced by a compacted block");
            this.stats
                .blocks_superseded_removed
                .fetch_add(1, Ordering::Relaxed);
            if let Err(e) = this.delete_block(&b).await {
                tracing::warn!(block = %b.meta.id, error = %e, "could not remove superseded block");
            }
        }
        sort_blocks(&mut keep);
        this.stats
            .blocks_loaded
            .fetch_add(keep.len() as u64, Ordering::Relaxed);
        *this.blocks.write() = keep;
        Ok(this)
    }

    /// Uses `layout` for blocks written from now on (tests and benchmarks
    /// compare layouts; the default is the measured best).
    pub fn with_layout(mut self, layout: SampleLayout) -> Self {
        self.layout = layout;
        self
    }

    /// The underlying object store.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Counters.
    pub fn stats(&self) -> &BlockStats {
        &self.stats
    }

    /// Metadata of the open blocks, ordered by time.
    pub fn blocks(&self) -> Vec<BlockMeta> {
        self.blocks
            .read()
            .iter()
            .map(|b| b.meta.summary())
            .collect()
    }

    /// Total size of the open blocks' files in bytes.
    pub fn total_bytes(&self) -> u64 {
        self.blocks
            .read()
            .iter()
            .map(|b| b.meta.total_bytes())
            .sum()
    }

    fn snapshot(&self) -> Vec<Arc<OpenBlock>> {
        self.blocks.read().clone()
    }

    /// The open blocks, ordered by time.
    pub(crate) fn open_blocks(&self) -> Vec<Arc<OpenBlock>> {
        self.snapshot()
    }

    /// The lock serializing compaction and retention.
    pub(crate) async fn maintenance_lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.maintenance.lock().await
    }

    /// Atomically swaps the blocks `ids` for `block` in the open list, then
    /// deletes the files of the replaced blocks.
    pub(crate) async fn replace_blocks(
        &self,
        block: Arc<OpenBlock>,
        ids: &HashSet<String>,
    ) -> Result<(), StorageError> {
        let removed: Vec<Arc<OpenBlock>> = {
            let mut blocks = self.blocks.write();
            let (gone, mut keep): (Vec<_>, Vec<_>) =
                blocks.drain(..).partition(|b| ids.contains(&b.meta.id));
            keep.push(block);
            sort_blocks(&mut keep);
            *blocks = keep;
            gone
        };
        for b in removed {
            self.delete_block(&b).await?;
        }
        Ok(())
    }

    fn is_open(&self, id: &str) -> bool {
        self.blocks.read().iter().any(|b| b.meta.id == id)
    }

    /// Writes a block holding `series` (any order; repeated label sets are
    /// merged, samples sorted, equal timestamps de-duplicated) covering
    /// `[min_time, max_time]` (widened to cover every sample). Files are
    /// written first, `meta.json` last; then the block joins the open list.
    /// Encoding is CPU work done inline: call from a blocking thread or a
    /// task that may block for a while.
    pub async fn write_block(
        &self,
        series: Vec<(Labels, Vec<Sample>)>,
        min_time: i64,
        max_time: i64,
    ) -> Result<BlockMeta, StorageError> {
        let compaction = CompactionMeta {
            level: 1,
            sources: Vec::new(),
        };
        let b = self
            .write_normalized(&normalize(series), min_time, max_time, compaction)
            .await?;
        let meta = b.meta.summary();
        let mut blocks = self.blocks.write();
        blocks.push(b);
        sort_blocks(&mut blocks);
        Ok(meta)
    }

    /// Writes a block's files then its meta, and opens it (not yet listed).
    pub(crate) async fn write_normalized(
        &self,
        series: &[(Labels, Vec<Sample>)],
        min_time: i64,
        max_time: i64,
        compaction: CompactionMeta,
    ) -> Result<Arc<OpenBlock>, StorageError> {
        let id = new_block_id();
        let encoded = encode_block(&id, series, min_time, max_time, compaction, &self.layout)?;
        let mut sizes: HashMap<String, u64> = HashMap::new();
        for (name, body) in encoded.files {
            sizes.insert(name.to_string(), body.len() as u64);
            put_all(self.store.as_ref(), &block_file(&id, name), body).await?;
        }
        let meta_body = serde_json::to_vec_pretty(&encoded.meta)
            .map_err(|e| io::invalid(block_file(&id, META_FILE).as_ref(), e))?;
        sizes.insert(META_FILE.to_string(), meta_body.len() as u64);
        put_all(self.store.as_ref(), &block_file(&id, META_FILE), meta_body).await?;
        self.stats.blocks_written.fetch_add(1, Ordering::Relaxed);
        let block = OpenBlock::open(self.store.clone(), &id, &sizes)
            .await
            .map_err(|e| match e {
                OpenError::Corrupt(e) => e,
                OpenError::Incomplete => io::invalid(id.clone(), "block vanished after writing"),
            })?;
        self.stats.blocks_loaded.fetch_add(1, Ordering::Relaxed);
        Ok(Arc::new(block))
    }

    /// Deletes `files` of block `id`, `meta.json` first so a crash midway
    /// leaves an incomplete block (removed at the next open), never a
    /// complete-looking one with files missing.
    async fn delete_files(&self, id: &str, files: &[&str]) -> Result<(), StorageError> {
        let mut ordered: Vec<&str> = files.to_vec();
        ordered.sort_by_key(|f| *f != META_FILE);
        for f in ordered {
            let p = block_file(id, f);
            match self.store.delete(&p).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(store_err(&p, e)),
            }
        }
        Ok(())
    }

    async fn delete_block(&self, b: &OpenBlock) -> Result<(), StorageError> {
        let mut files: Vec<&str> = b.meta.files.keys().map(String::as_str).collect();
        files.push(META_FILE);
        self.delete_files(&b.meta.id, &files).await
    }

    /// Removes blocks from the open list, then deletes their files.
    async fn remove_blocks(&self, ids: &HashSet<String>) -> Result<(), StorageError> {
        let removed: Vec<Arc<OpenBlock>> = {
            let mut blocks = self.blocks.write();
            let (gone, keep) = blocks.drain(..).partition(|b| ids.contains(&b.meta.id));
            *blocks = keep;
            gone
        };
        for b in removed {
            self.delete_block(&b).await?;
        }
        Ok(())
    }

    /// Runs `f` over the blocks overlapping `[start, end]`, retrying when a
    /// block was replaced (compaction, retention) while being read.
    async fn per_block<T, F, Fut>(&self, start: i64, end: i64, f: F) -> Result<Vec<T>, StorageError>
    where
        F: Fn(Arc<OpenBlock>) -> Fut,
        Fut: std::future::Future<Output = Result<T, StorageError>>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let blocks: Vec<Arc<OpenBlock>> = self
                .snapshot()
                .into_iter()
                .filter(|b| b.overlaps(start, end))
                .collect();
            let ids: Vec<String> = blocks.iter().map(|b| b.meta.id.clone()).collect();
            let res: Result<Vec<T>, StorageError> =
                futures::stream::iter(blocks.into_iter().map(&f))
                    .buffered(SELECT_CONCURRENCY)
                    .try_collect()
                    .await;
            match res {
                Ok(v) => return Ok(v),
                Err(e) if attempt < 3 && ids.iter().any(|id| !self.is_open(id)) => {
                    tracing::debug!(error = %e, "block replaced during read; retrying");
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Series matching all `matchers` with their samples in `[start_ms,
    /// end_ms]` (both inclusive) over every block overlapping the range. A
    /// series in several blocks is merged into one [`SeriesData`] in time
    /// order with equal timestamps de-duplicated (the older block wins).
    /// Sorted by labels; series without samples in range are omitted.
    /// Decoding runs inline (see [`OpenBlock::read_samples`]).
    pub async fn select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<SeriesData>, StorageError> {
        self.stats.selects.fetch_add(1, Ordering::Relaxed);
        let stats = &self.stats;
        let per_block = self
            .per_block(start_ms, end_ms, |b| async move {
                let ids = b.postings.matching(matchers);
                let rows = b.read_samples(&ids, start_ms, end_ms, stats).await?;
                Ok(rows
                    .into_iter()
                    .map(|(id, s)| (b.postings.labels(id), s))
                    .collect::<Vec<_>>())
            })
            .await?;
        Ok(merge_series(per_block))
    }

    /// Ids of matching series per overlapping block whose time span
    /// overlaps the range (by series min/max time: a series with a gap
    /// covering the whole range still counts, as in Prometheus' TSDB).
    async fn matching_labels<T, F>(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
        f: F,
    ) -> Result<Vec<T>, StorageError>
    where
        F: Fn(&OpenBlock, u32) -> Vec<T>,
        T: Ord,
    {
        let f = &f;
        let parts = self
            .per_block(start_ms, end_ms, |b| async move {
                let ids = b.in_range(&b.postings.matching(matchers), start_ms, end_ms);
                Ok(ids.into_iter().flat_map(|id| f(&b, id)).collect::<Vec<T>>())
            })
            .await?;
        let mut all: Vec<T> = parts.into_iter().flatten().collect();
        all.sort();
        all.dedup();
        Ok(all)
    }

    /// Label sets of series matching `matchers` with data in range, sorted.
    pub async fn series(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<Labels>, StorageError> {
        self.matching_labels(matchers, start_ms, end_ms, |b, id| {
            vec![b.postings.labels(id)]
        })
        .await
    }

    /// Sorted, unique label names of matching series in range.
    pub async fn label_names(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, StorageError> {
        self.matching_labels(matchers, start_ms, end_ms, |b, id| {
            b.postings.names_of(id).map(str::to_string).collect()
        })
        .await
    }

    /// Sorted, unique values of label `name` among matching series in range.
    pub async fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, StorageError> {
        self.matching_labels(matchers, start_ms, end_ms, |b, id| {
            let v = b.postings.value_of(id, name);
            if v.is_empty() {
                Vec::new()
            } else {
                vec![v.to_string()]
            }
        })
        .await
    }

    /// Deletes whole blocks entirely older than `min_time_ms` (their
    /// `max_time` is below it), then the oldest blocks while the total size
    /// exceeds `max_total_bytes`. Returns the deleted ids. A block leaves
    /// the open list before its files are deleted, `meta.json` first.
    pub async fn apply_retention(
        &self,
        min_time_ms: i64,
        max_total_bytes: Option<u64>,
    ) -> Result<Vec<String>, StorageError> {
        let _guard = self.maintenance.lock().await;
        let blocks = self.snapshot();
        let mut doomed: Vec<String> = blocks
            .iter()
            .filter(|b| b.meta.max_time < min_time_ms)
            .map(|b| b.meta.id.clone())
            .collect();
        if let Some(limit) = max_total_bytes {
            let mut total: u64 = blocks
                .iter()
                .filter(|b| !doomed.contains(&b.meta.id))
                .map(|b| b.meta.total_bytes())
                .sum();
            for b in &blocks {
                if total <= limit {
                    break;
                }
                if doomed.contains(&b.meta.id) {
                    continue;
                }
                total = total.saturating_sub(b.meta.total_bytes());
                doomed.push(b.meta.id.clone());
            }
        }
        if doomed.is_empty() {
            return Ok(doomed);
        }
        for id in &doomed {
            tracing::info!(block = %id, "retention deletes block");
        }
        self.stats
            .blocks_retention_deleted
            .fetch_add(doomed.len() as u64, Ordering::Relaxed);
        self.remove_blocks(&doomed.iter().cloned().collect())
            .await?;
        Ok(doomed)
    }
}

/// Merges per-block series lists into one list sorted by labels, each
/// series' samples in time order with equal timestamps de-duplicated (the
/// first seen wins).
fn merge_series(parts: Vec<Vec<(Labels, Vec<Sample>)>>) -> Vec<SeriesData> {
    let mut map: BTreeMap<Labels, Vec<Sample>> = BTreeMap::new();
    for part in parts {
        for (labels, samples) in part {
            match map.get_mut(&labels) {
                Some(existing) => existing.extend(samples),
                None => {
                    map.insert(labels, samples);
                }
            }
        }
    }
    map.into_iter()
        .filter(|(_, s)| !s.is_empty())
        .map(|(labels, mut samples)| {
            if samples
                .windows(2)
                .any(|w| w[0].timestamp_ms >= w[1].timestamp_ms)
            {
                samples.sort_by_key(|s| s.timestamp_ms);
                samples.dedup_by_key(|s| s.timestamp_ms);
            }
            SeriesData { labels, samples }
        })
        .collect()
}
