//! An open block: its metadata, postings and series table in memory, and
//! the select path over `samples.parquet` that reads only the row groups
//! and pages that can hold the asked series and time range.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use arrow_array::{
    Array, Float64Array, Int64Array, Int8Array, RecordBatch, UInt32Array, UInt64Array,
};
use bytes::Bytes;
use futures::StreamExt;
use object_store::ObjectStore;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection,
};
use parquet::arrow::{ParquetRecordBatchStreamBuilder, ProjectionMask};
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData};
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use parquet::file::statistics::Statistics;

use fleetwatch_model::Sample;

use super::encoding::{
    decode_decimal, COL_EXPONENT, COL_MANTISSA, COL_SERIES_ID, COL_TIMESTAMP, COL_VALUE,
};
use super::io::{block_file, get_all, invalid, parquet_err, RangeReader};
use super::meta::MetaFile;
use super::postings::Postings;
use super::writer::{META_FILE, POSTINGS_FILE, SAMPLES_FILE, SERIES_FILE};
use super::BlockStats;
use crate::StorageError;

/// Why a block could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// No `meta.json`: the block was never completed.
    Incomplete,
    /// A file is missing, truncated or malformed.
    Corrupt(StorageError),
}

impl From<StorageError> for OpenError {
    fn from(e: StorageError) -> Self {
        Self::Corrupt(e)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueLayout {
    Float,
    Decimal,
}

/// A block opened for reading.
pub struct OpenBlock {
    /// Its metadata.
    pub meta: MetaFile,
    /// Its postings (and so its label sets).
    pub postings: Postings,
    min_time: Vec<i64>,
    max_time: Vec<i64>,
    /// First row of each series in `samples.parquet`, plus the total.
    row_start: Vec<u64>,
    samples: ArrowReaderMetadata,
    samples_size: u64,
    layout: ValueLayout,
    store: Arc<dyn ObjectStore>,
}

/// Reads a small Parquet object fully into record batches.
fn read_small(
    path: &object_store::path::Path,
    body: Bytes,
    roots: Option<&[usize]>,
) -> Result<Vec<RecordBatch>, StorageError> {
    let b = ParquetRecordBatchReaderBuilder::try_new(body).map_err(|e| parquet_err(path, e))?;
    let b = match roots {
        Some(r) => {
            let mask = ProjectionMask::roots(b.parquet_schema(), r.iter().copied());
            b.with_projection(mask)
        }
        None => b,
    };
    let reader = b.build().map_err(|e| parquet_err(path, e))?;
    reader
        .map(|r| r.map_err(|e| parquet_err(path, e)))
        .collect()
}

fn column<'a, T: 'static>(
    b: &'a RecordBatch,
    name: &str,
    path: &str,
) -> Result<&'a T, StorageError> {
    b.column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| invalid(path, format!("column {name} missing or of the wrong type")))
}

impl OpenBlock {
    /// Opens block `id`. `sizes` are the listed sizes of its objects by
    /// file name; a size differing from `meta.json`'s marks the block
    /// corrupt. Loads meta, postings and the series table, and the samples
    /// file's footer with its page index.
    pub async fn open(
        store: Arc<dyn ObjectStore>,
        id: &str,
        sizes: &HashMap<String, u64>,
    ) -> Result<Self, OpenError> {
        if !sizes.contains_key(META_FILE) {
            return Err(OpenError::Incomplete);
        }
        let meta_path = block_file(id, META_FILE);
        let meta = MetaFile::parse(
            meta_path.as_ref(),
            &get_all(store.as_ref(), &meta_path).await?,
        )?;
        if meta.id != id {
            return Err(invalid(
                meta_path.as_ref(),
                format!("meta.json names block {}", meta.id),
            )
            .into());
        }
        for name in [SERIES_FILE, SAMPLES_FILE, POSTINGS_FILE] {
            let want = meta.files.get(name).copied();
            let have = sizes.get(name).copied();
            if want.is_none() || want != have {
                return Err(invalid(
                    block_file(id, name).as_ref(),
                    format!("size {have:?} differs from meta.json's {want:?}"),
                )
                .into());
            }
        }
        let num_series = usize::try_from(meta.num_series)
            .map_err(|_| invalid(meta_path.as_ref(), "num_series too large"))?;

        // Series table, without the labels (postings carry them).
        let series_path = block_file(id, SERIES_FILE);
        let body = get_all(store.as_ref(), &series_path).await?;
        let batches = read_small(&series_path, body, Some(&[0, 2, 3, 4, 5]))?;
        let sp = series_path.as_ref();
        let mut min_time = Vec::with_capacity(num_series);
        let mut max_time = Vec::with_capacity(num_series);
        let mut row_start = Vec::with_capacity(num_series + 1);
        let mut rows = 0u64;
        for b in &batches {
            let ids = column::<arrow_array::UInt32Array>(b, "series_id", sp)?;
            let mins = column::<Int64Array>(b, "min_time", sp)?;
            let maxs = column::<Int64Array>(b, "max_time", sp)?;
            let counts = column::<UInt64Array>(b, "num_samples", sp)?;
            for i in 0..b.num_rows() {
                if ids.value(i) as usize != row_start.len() {
                    return Err(invalid(sp, "series ids are not dense").into());
                }
                min_time.push(mins.value(i));
                max_time.push(maxs.value(i));
                row_start.push(rows);
                rows = rows.saturating_add(counts.value(i));
            }
        }
        row_start.push(rows);
        if min_time.len() != num_series || rows != meta.num_samples {
            return Err(invalid(sp, "series table disagrees with meta.json").into());
        }

        let postings_path = block_file(id, POSTINGS_FILE);
        let body = get_all(store.as_ref(), &postings_path).await?;
        let batches = read_small(&postings_path, body, None)?;
        let postings = Postings::from_batches(&batches, num_series)
            .map_err(|e| invalid(postings_path.as_ref(), e.0))?;

        let samples_path = block_file(id, SAMPLES_FILE);
        let samples_size = meta.files.get(SAMPLES_FILE).copied().unwrap_or(0);
        let mut reader = RangeReader::new(
            store.clone(),
            samples_path.clone(),
            samples_size,
            None,
            Arc::new(Default::default()),
        );
        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
        let samples = ArrowReaderMetadata::load_async(&mut reader, options)
            .await
            .map_err(|e| parquet_err(&samples_path, e))?;
        let fm = samples.metadata().file_metadata();
        if u64::try_from(fm.num_rows()).ok() != Some(meta.num_samples) {
            return Err(
                invalid(samples_path.as_ref(), "row count disagrees with meta.json").into(),
            );
        }
        let schema = samples.schema();
        let layout = if schema.field_with_name(COL_MANTISSA).is_ok() {
            ValueLayout::Decimal
        } else {
            ValueLayout::Float
        };
        let needed: &[&str] = match layout {
            ValueLayout::Decimal => &[COL_SERIES_ID, COL_TIMESTAMP, COL_MANTISSA, COL_EXPONENT],
            ValueLayout::Float => &[COL_SERIES_ID, COL_TIMESTAMP, COL_VALUE],
        };
        for n in needed {
            if schema.field_with_name(n).is_err() {
                return Err(invalid(samples_path.as_ref(), format!("no column {n}")).into());
            }
        }
        Ok(Self {
            meta,
            postings,
            min_time,
            max_time,
            row_start,
            samples,
            samples_size,
            layout,
            store,
        })
    }

    /// Number of row groups in `samples.parquet`.
    pub fn samples_row_groups(&self) -> usize {
        self.samples.metadata().num_row_groups()
    }

    /// True when the block's range overlaps `[start, end]`.
    pub fn overlaps(&self, start: i64, end: i64) -> bool {
        self.meta.min_time <= end && self.meta.max_time >= start
    }

    /// Of the sorted `ids`, those with samples possibly in `[start, end]`.
    pub fn in_range(&self, ids: &[u32], start: i64, end: i64) -> Vec<u32> {
        ids.iter()
            .copied()
            .filter(|&id| {
                let i = id as usize;
                i < self.min_time.len() && self.min_time[i] <= end && self.max_time[i] >= start
            })
            .collect()
    }

    /// Reads the samples in `[start, end]` of the sorted series `ids`.
    /// Only row groups and pages that can hold them are fetched (ranged
    /// reads). Decoding runs inline: call from a context where CPU work is
    /// acceptable (a blocking thread, or a runtime with spare workers).
    pub async fn read_samples(
        &self,
        ids: &[u32],
        start: i64,
        end: i64,
        stats: &BlockStats,
    ) -> Result<Vec<(u32, Vec<Sample>)>, StorageError> {
        let ids = self.in_range(ids, start, end);
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let path = block_file(&self.meta.id, SAMPLES_FILE);
        let md = self.samples.metadata().clone();
        let wanted = series_rows(&ids, &self.row_start);
        let plan = plan_reads(&md, &wanted, start, end);
        stats
            .row_groups_read
            .fetch_add(plan.row_groups.len() as u64, Ordering::Relaxed);
        stats
            .row_groups_skipped
            .fetch_add(plan.row_groups_skipped, Ordering::Relaxed);
        stats
            .pages_read
            .fetch_add(plan.pages_read, Ordering::Relaxed);
        stats
            .pages_skipped
            .fetch_add(plan.pages_skipped, Ordering::Relaxed);
        if plan.row_groups.is_empty() {
            return Ok(Vec::new());
        }
        let reader = RangeReader::new(
            self.store.clone(),
            path.clone(),
            self.samples_size,
            Some(md),
            stats.bytes_read_counter(),
        );
        let mut stream =
            ParquetRecordBatchStreamBuilder::new_with_metadata(reader, self.samples.clone())
                .with_row_groups(plan.row_groups)
                .with_row_selection(plan.selection)
                .with_batch_size(16 * 1024)
                .build()
                .map_err(|e| parquet_err(&path, e))?;
        let mut out: Vec<(u32, Vec<Sample>)> = Vec::with_capacity(ids.len());
        let p = path.as_ref();
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(|e| parquet_err(&path, e))?;
            let sid = column::<UInt32Array>(&batch, COL_SERIES_ID, p)?;
            let ts = column::<Int64Array>(&batch, COL_TIMESTAMP, p)?;
            let values: Box<dyn Fn(usize) -> f64 + '_> = match self.layout {
                ValueLayout::Float => {
                    let v = column::<Float64Array>(&batch, COL_VALUE, p)?;
                    Box::new(move |i| v.value(i))
                }
                ValueLayout::Decimal => {
                    let m = column::<Int64Array>(&batch, COL_MANTISSA, p)?;
                    let e = column::<Int8Array>(&batch, COL_EXPONENT, p)?;
                    Box::new(move |i| decode_decimal(m.value(i), e.value(i)))
                }
            };
            if sid.null_count() > 0 || ts.null_count() > 0 {
                return Err(invalid(p, "null series_id or timestamp"));
            }
            for i in 0..batch.num_rows() {
                let t = ts.value(i);
                if t < start || t > end {
                    continue;
                }
                let id = sid.value(i);
                let sample = Sample::new(t, values(i));
                match out.last_mut() {
                    Some((last, samples)) if *last == id => samples.push(sample),
                    _ => out.push((id, vec![sample])),
                }
            }
        }
        Ok(out)
    }
}

/// Global row ranges of the sorted series `ids`, adjacent ones merged.
fn series_rows(ids: &[u32], row_start: &[u64]) -> Vec<Range<u64>> {
    let mut out: Vec<Range<u64>> = Vec::new();
    for &id in ids {
        let i = id as usize;
        let (Some(&a), Some(&b)) = (row_start.get(i), row_start.get(i + 1)) else {
            continue;
        };
        if a >= b {
            continue;
        }
        match out.last_mut() {
            Some(last) if last.end == a => last.end = b,
            _ => out.push(a..b),
        }
    }
    out
}

/// What to fetch from a samples file.
struct ReadPlan {
    row_groups: Vec<usize>,
    selection: RowSelection,
    row_groups_skipped: u64,
    pages_read: u64,
    pages_skipped: u64,
}

fn i64_stats(s: Option<&Statistics>) -> Option<(i64, i64)> {
    match s? {
        Statistics::Int64(v) => Some((*v.min_opt()?, *v.max_opt()?)),
        _ => None,
    }
}

/// Intersects two sorted lists of disjoint ranges.
fn intersect(a: &[Range<u64>], b: &[Range<u64>]) -> Vec<Range<u64>> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < a.len() && j < b.len() {
        let lo = a[i].start.max(b[j].start);
        let hi = a[i].end.min(b[j].end);
        if lo < hi {
            out.push(lo..hi);
        }
        if a[i].end < b[j].end {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// Row ranges (local to the row group) of the pages of `col` in row group
/// `rg`, and, when the column index has Int64 statistics, whether each page
/// can hold a value in `[start, end]`.
fn pages(md: &ParquetMetaData, rg: usize, col: usize, rows: u64) -> Vec<Range<u64>> {
    let Some(oi) = md.page_index_for_row_group(rg).offset_index(col).cloned() else {
        return std::iter::once(0..rows).collect();
    };
    let locs = oi.page_locations();
    locs.iter()
        .enumerate()
        .map(|(k, l)| {
            let a = u64::try_from(l.first_row_index).unwrap_or(0);
            let b = locs
                .get(k + 1)
                .and_then(|n| u64::try_from(n.first_row_index).ok())
                .unwrap_or(rows);
            a..b.max(a)
        })
        .collect()
}

fn plan_reads(md: &ParquetMetaData, wanted: &[Range<u64>], start: i64, end: i64) -> ReadPlan {
    let ts_col = 1;
    let mut plan = ReadPlan {
        row_groups: Vec::new(),
        selection: RowSelection::from(Vec::new()),
        row_groups_skipped: 0,
        pages_read: 0,
        pages_skipped: 0,
    };
    let mut concat: Vec<Range<usize>> = Vec::new();
    let mut concat_rows = 0usize;
    let mut rg_start = 0u64;
    for (rg, rgm) in md.row_groups().iter().enumerate() {
        let rows = u64::try_from(rgm.num_rows()).unwrap_or(0);
        let rg_end = rg_start + rows;
        let local: Vec<Range<u64>> = wanted
            .iter()
            .filter(|r| r.start < rg_end && r.end > rg_start)
            .map(|r| r.start.max(rg_start) - rg_start..r.end.min(rg_end) - rg_start)
            .collect();
        let ts_ok = rgm
            .columns()
            .get(ts_col)
            .and_then(|c| i64_stats(c.statistics()))
            .is_none_or(|(lo, hi)| lo <= end && hi >= start);
        let npages: u64 = (0..rgm.num_columns())
            .map(|c| pages(md, rg, c, rows).len() as u64)
            .sum();
        if local.is_empty() || !ts_ok {
            plan.row_groups_skipped += 1;
            plan.pages_skipped += npages;
            rg_start = rg_end;
            continue;
        }
        // Pages of the timestamp column whose values cannot be in range.
        let ts_pages = pages(md, rg, ts_col, rows);
        let allowed: Vec<Range<u64>> = match md.page_index_for_row_group(rg).column_index(ts_col) {
            Some(ColumnIndexMetaData::INT64(ci)) => ts_pages
                .iter()
                .enumerate()
                .filter(|(k, _)| match (ci.min_value(*k), ci.max_value(*k)) {
                    (Some(&lo), Some(&hi)) => lo <= end && hi >= start,
                    _ => true,
                })
                .map(|(_, r)| r.clone())
                .collect(),
            _ => std::iter::once(0..rows).collect(),
        };
        let sel = intersect(&local, &merge(allowed));
        if sel.is_empty() {
            plan.row_groups_skipped += 1;
            plan.pages_skipped += npages;
            rg_start = rg_end;
            continue;
        }
        for c in 0..rgm.num_columns() {
            for p in pages(md, rg, c, rows) {
                if sel.iter().any(|r| r.start < p.end && r.end > p.start) {
                    plan.pages_read += 1;
                } else {
                    plan.pages_skipped += 1;
                }
            }
        }
        plan.row_groups.push(rg);
        for r in sel {
            concat.push(concat_rows + r.start as usize..concat_rows + r.end as usize);
        }
        concat_rows += rows as usize;
        rg_start = rg_end;
    }
    plan.selection = RowSelection::from_consecutive_ranges(concat.into_iter(), concat_rows);
    plan
}

/// Merges touching ranges of a sorted list.
fn merge(ranges: Vec<Range<u64>>) -> Vec<Range<u64>> {
    let mut out: Vec<Range<u64>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if last.end >= r.start => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::single_range_in_vec_init)]
    fn range_helpers() {
        assert_eq!(intersect(&[0..10, 20..30], &[5..25]), vec![5..10, 20..25]);
        assert_eq!(merge(vec![0..5, 5..7, 9..10]), vec![0..7, 9..10]);
        assert_eq!(
            series_rows(&[0, 1, 3], &[0, 5, 9, 12, 20]),
            vec![0..9, 12..20]
        );
    }
}
