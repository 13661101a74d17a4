//! The metrics database: the head (memory + WAL) in front of immutable
//! Parquet blocks, with the maintenance that moves data between them.
//!
//! - **Cut**: when the head spans more than 1.5 block ranges, its oldest
//!   aligned block range is written as a block; once that block is durable,
//!   exactly the samples written into it leave memory and the WAL is
//!   rewritten as a checkpoint. `flush` cuts everything now.
//! - **Compaction** merges adjacent blocks into longer ranges.
//! - **Retention** deletes blocks older than the retention time or beyond
//!   the size budget, and drops old samples from the head.
//!
//! Reads merge the head and the blocks per series, in time order.

use std::path::PathBuf;
use std::sync::Arc;

use fleetwatch_model::{Labels, Matcher, Sample};
use tokio::runtime::Handle;

use crate::block::{BlockMeta, BlockStore, SampleLayout, ValueEncoding};
use crate::compact::CompactOptions;
use crate::head::{Head, HeadOptions};
use crate::{Queryable, SeriesData, StorageError};

/// Most head cuts or compactions one maintenance pass performs.
const MAX_STEPS_PER_PASS: usize = 16;

/// Options of a [`Db`].
#[derive(Debug, Clone)]
pub struct DbOptions {
    /// Root of the data directory: `wal/` and `blocks/` live under it.
    pub data_dir: PathBuf,
    /// Out-of-order window of the head, ms.
    pub out_of_order_window_ms: i64,
    /// Range of a block cut from the head, ms (default 2 h).
    pub block_range_ms: i64,
    /// Compaction settings.
    pub compaction: CompactOptions,
    /// Keep samples this long, ms.
    pub retention_ms: Option<i64>,
    /// Keep at most this many bytes of blocks.
    pub retention_bytes: Option<u64>,
    /// How block sample files are encoded.
    pub layout: SampleLayout,
}

impl DbOptions {
    /// Defaults under `data_dir`: 10-minute out-of-order window, 2 h blocks
    /// compacted up to 24 h, 15 days retention.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            out_of_order_window_ms: 10 * 60_000,
            block_range_ms: 2 * 3_600_000,
            compaction: CompactOptions {
                max_block_range_ms: 24 * 3_600_000,
                min_blocks: 2,
                closed_before_ms: i64::MAX,
            },
            retention_ms: Some(15 * 86_400_000),
            retention_bytes: None,
            // Decimal mantissa + exponent values: 2.73 bytes/sample on the
            // bench fleet load against 3.21 for plain Float64 (bench/README.md).
            layout: SampleLayout {
                values: ValueEncoding::Decimal,
                ..SampleLayout::default()
            },
        }
    }
}

/// What one maintenance pass did.
#[derive(Debug, Clone, Default)]
pub struct MaintenanceReport {
    /// Blocks cut from the head.
    pub blocks_cut: Vec<BlockMeta>,
    /// Blocks made by compaction.
    pub blocks_compacted: Vec<BlockMeta>,
    /// Block ids deleted by retention.
    pub blocks_deleted: Vec<String>,
}

/// The head and the blocks, queried as one.
pub struct Db {
    head: Arc<Head>,
    blocks: Arc<BlockStore>,
    opts: DbOptions,
    runtime: Handle,
    maintenance: tokio::sync::Mutex<()>,
}

impl Db {
    /// Opens the WAL (replaying it) and the blocks. Must be called inside
    /// a tokio runtime; the runtime is kept for blocking-context reads.
    pub async fn open(opts: DbOptions) -> Result<Self, StorageError> {
        let mut head_opts = HeadOptions::new(opts.data_dir.join("wal"));
        head_opts.out_of_order_window_ms = opts.out_of_order_window_ms;
        let head = tokio::task::spawn_blocking(move || Head::open(head_opts))
            .await
            .map_err(|e| StorageError::Unavailable {
                reason: format!("opening the head failed: {e}"),
            })??;
        let store = BlockStore::local(&opts.data_dir)?;
        let blocks = BlockStore::open(store).await?.with_layout(opts.layout);
        tracing::info!(
            blocks = blocks.blocks().len(),
            block_bytes = blocks.total_bytes(),
            head_series = head.num_series(),
            "storage opened"
        );
        Ok(Self {
            head: Arc::new(head),
            blocks: Arc::new(blocks),
            opts,
            runtime: Handle::current(),
            maintenance: tokio::sync::Mutex::new(()),
        })
    }

    /// The head (for appends and its counters).
    pub fn head(&self) -> &Arc<Head> {
        &self.head
    }

    /// The blocks (for their counters and list).
    pub fn blocks(&self) -> &Arc<BlockStore> {
        &self.blocks
    }

    /// Cuts the head's samples below `max_ms` into a block, then drops them
    /// from memory and checkpoints the WAL. Returns the block, if any
    /// sample was there. Encodes inline: call from a blocking thread.
    async fn cut_before(&self, max_ms: i64) -> Result<Option<BlockMeta>, StorageError> {
        let head = Arc::clone(&self.head);
        let cut = head.collect_before(max_ms);
        if cut.series.is_empty() {
            return Ok(None);
        }
        let (min, max) = cut
            .series
            .iter()
            .fold((i64::MAX, i64::MIN), |(lo, hi), (_, s)| {
                (
                    lo.min(s.first().map_or(lo, |x| x.timestamp_ms)),
                    hi.max(s.last().map_or(hi, |x| x.timestamp_ms)),
                )
            });
        let samples: usize = cut.series.iter().map(|(_, s)| s.len()).sum();
        let started = std::time::Instant::now();
        let meta = self.blocks.write_block(cut.series, min, max).await?;
        let report = head.checkpoint_cut(cut.cut)?;
        tracing::info!(
            block = %meta.id,
            series = meta.num_series,
            samples,
            bytes = meta.bytes,
            bytes_per_sample = meta.bytes as f64 / samples.max(1) as f64,
            dropped_from_head = report.samples_dropped,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "head cut into a block"
        );
        Ok(Some(meta))
    }

    /// Cuts everything in the head into a block now (what
    /// `POST /api/v1/admin/tsdb/flush` does). Blocking-thread work.
    pub async fn flush(&self) -> Result<MaintenanceReport, StorageError> {
        let _guard = self.maintenance.lock().await;
        let mut report = MaintenanceReport::default();
        if let Some((_, max)) = self.head.time_range() {
            if let Some(meta) = self.cut_before(max.saturating_add(1)).await? {
                report.blocks_cut.push(meta);
            }
        }
        Ok(report)
    }

    /// Compacts windows that end before the head's oldest sample (or
    /// `now_ms` when the head is empty): no cut can land in them any more.
    async fn compact_all(
        &self,
        report: &mut MaintenanceReport,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        let closed = self
            .head
            .time_range()
            .map_or(now_ms, |(min, _)| min.min(now_ms));
        let opts = CompactOptions {
            closed_before_ms: closed,
            ..self.opts.compaction
        };
        for _ in 0..MAX_STEPS_PER_PASS {
            match self.blocks.compact(&opts).await? {
                Some(meta) => report.blocks_compacted.push(meta),
                None => break,
            }
        }
        Ok(())
    }

    /// One maintenance pass: cut full block ranges out of the head, compact,
    /// apply retention. Blocking-thread work.
    pub async fn maintain(&self, now_ms: i64) -> Result<MaintenanceReport, StorageError> {
        let _guard = self.maintenance.lock().await;
        let mut report = MaintenanceReport::default();
        let range = self.opts.block_range_ms.max(1);
        for _ in 0..MAX_STEPS_PER_PASS {
            let Some((min, max)) = self.head.time_range() else {
                break;
            };
            if max - min <= range + range / 2 {
                break;
            }
            let end = min.div_euclid(range) * range + range;
            match self.cut_before(end).await? {
                Some(meta) => report.blocks_cut.push(meta),
                None => break,
            }
        }
        self.compact_all(&mut report, now_ms).await?;
        if self.opts.retention_ms.is_some() || self.opts.retention_bytes.is_some() {
            let min_time = self.opts.retention_ms.map_or(i64::MIN, |r| now_ms - r);
            report.blocks_deleted = self
                .blocks
                .apply_retention(min_time, self.opts.retention_bytes)
                .await?;
            if self.opts.retention_ms.is_some() {
                self.head.truncate_before(min_time);
            }
        }
        Ok(report)
    }

    /// Stops the head's writer after queued appends.
    pub fn close(&self) {
        self.head.close();
    }

    fn block_on<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        self.runtime.block_on(f)
    }
}

/// Merges two label-sorted lists of series; samples of the same series are
/// merged in time order, the first list winning on equal timestamps.
fn merge_series(a: Vec<SeriesData>, b: Vec<SeriesData>) -> Vec<SeriesData> {
    if a.is_empty() {
        return b;
    }
    if b.is_empty() {
        return a;
    }
    let mut out = Vec::with_capacity(a.len().max(b.len()));
    let mut ai = a.into_iter().peekable();
    let mut bi = b.into_iter().peekable();
    loop {
        let take_a = match (ai.peek(), bi.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(x), Some(y)) => match x.labels.cmp(&y.labels) {
                std::cmp::Ordering::Less => true,
                std::cmp::Ordering::Greater => false,
                std::cmp::Ordering::Equal => {
                    if let (Some(x), Some(y)) = (ai.next(), bi.next()) {
                        out.push(SeriesData {
                            labels: x.labels,
                            samples: merge_samples(x.samples, y.samples),
                        });
                    }
                    continue;
                }
            },
        };
        let next = if take_a { ai.next() } else { bi.next() };
        out.extend(next);
    }
    out
}

fn merge_samples(a: Vec<Sample>, b: Vec<Sample>) -> Vec<Sample> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].timestamp_ms.cmp(&b[j].timestamp_ms) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

fn merge_sorted<T: Ord>(mut a: Vec<T>, b: Vec<T>) -> Vec<T> {
    a.extend(b);
    a.sort();
    a.dedup();
    a
}

/// Reads block data through the runtime: the methods must be called from
/// a blocking thread (`spawn_blocking`), never from async code.
impl Queryable for Db {
    fn select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<SeriesData>, StorageError> {
        let head = self.head.select(matchers, start_ms, end_ms)?;
        let blocks = self.block_on(self.blocks.select(matchers, start_ms, end_ms))?;
        Ok(merge_series(head, blocks))
    }

    fn series(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<Labels>, StorageError> {
        let head = self.head.series(matchers, start_ms, end_ms)?;
        let blocks = self.block_on(self.blocks.series(matchers, start_ms, end_ms))?;
        Ok(merge_sorted(head, blocks))
    }

    fn label_names(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, StorageError> {
        let head = self.head.label_names(matchers, start_ms, end_ms)?;
        let blocks = self.block_on(self.blocks.label_names(matchers, start_ms, end_ms))?;
        Ok(merge_sorted(head, blocks))
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, StorageError> {
        let head = self.head.label_values(name, matchers, start_ms, end_ms)?;
        let blocks = self.block_on(self.blocks.label_values(name, matchers, start_ms, end_ms))?;
        Ok(merge_sorted(head, blocks))
    }
}

#[cfg(test)]
mod tests;
