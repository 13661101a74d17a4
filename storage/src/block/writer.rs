//! Encodes a set of series into a block's files (`series.parquet`,
//! `samples.parquet`, `postings.parquet`) in memory. CPU-heavy and
//! synchronous: callers run it where blocking is fine.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder, StructBuilder};
use arrow_array::{
    ArrayRef, Float64Array, Int64Array, Int8Array, RecordBatch, UInt32Array, UInt64Array,
};
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};
use fleetwatch_model::{Labels, Sample};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

use super::encoding::{encode_decimal_run, index_properties, SampleLayout, ValueEncoding};
use super::io::invalid;
use super::meta::{CompactionMeta, MetaFile, META_VERSION};
use super::postings::Postings;
use crate::StorageError;

/// File name of the series table.
pub const SERIES_FILE: &str = "series.parquet";
/// File name of the samples table.
pub const SAMPLES_FILE: &str = "samples.parquet";
/// File name of the postings index.
pub const POSTINGS_FILE: &str = "postings.parquet";
/// File name of the block metadata (written last).
pub const META_FILE: &str = "meta.json";

/// Rows per record batch handed to the Parquet writer.
const BATCH_ROWS: usize = 64 * 1024;

/// The encoded files of one block and its metadata (whose `files` sizes are
/// filled in).
pub struct EncodedBlock {
    /// `(file name, body)` of every data file.
    pub files: Vec<(&'static str, Vec<u8>)>,
    /// The metadata to write last.
    pub meta: MetaFile,
}

/// Sorts series by labels, merges repeated label sets, sorts each series'
/// samples by time keeping the first of equal timestamps, and drops series
/// without samples.
pub fn normalize(mut series: Vec<(Labels, Vec<Sample>)>) -> Vec<(Labels, Vec<Sample>)> {
    series.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out: Vec<(Labels, Vec<Sample>)> = Vec::with_capacity(series.len());
    for (labels, samples) in series {
        match out.last_mut() {
            Some(last) if last.0 == labels => last.1.extend(samples),
            _ => out.push((labels, samples)),
        }
    }
    for (_, samples) in &mut out {
        if samples
            .windows(2)
            .any(|w| w[0].timestamp_ms >= w[1].timestamp_ms)
        {
            samples.sort_by_key(|s| s.timestamp_ms);
            samples.dedup_by_key(|s| s.timestamp_ms);
        }
    }
    out.retain(|(_, s)| !s.is_empty());
    out
}

/// The Arrow schema of `series.parquet`.
pub fn series_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("series_id", DataType::UInt32, false),
        Field::new(
            "labels",
            DataType::List(Arc::new(Field::new(
                "item",
                DataType::Struct(label_fields()),
                false,
            ))),
            false,
        ),
        Field::new("series_hash", DataType::UInt64, false),
        Field::new("min_time", DataType::Int64, false),
        Field::new("max_time", DataType::Int64, false),
        Field::new("num_samples", DataType::UInt64, false),
    ]))
}

fn label_fields() -> Fields {
    Fields::from(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("value", DataType::Utf8, false),
    ])
}

fn write_parquet(
    name: &str,
    schema: SchemaRef,
    props: WriterProperties,
    batches: impl Iterator<Item = Result<RecordBatch, StorageError>>,
) -> Result<Vec<u8>, StorageError> {
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new(&mut buf, schema, Some(props))
        .map_err(|e| invalid(name, format!("parquet writer: {e}")))?;
    for b in batches {
        w.write(&b?)
            .map_err(|e| invalid(name, format!("parquet write: {e}")))?;
    }
    w.close()
        .map_err(|e| invalid(name, format!("parquet close: {e}")))?;
    Ok(buf)
}

fn arrow_err(name: &str) -> impl Fn(arrow_schema::ArrowError) -> StorageError + '_ {
    move |e| invalid(name, format!("arrow: {e}"))
}

fn series_batch(series: &[(Labels, Vec<Sample>)]) -> Result<RecordBatch, StorageError> {
    let mut labels = ListBuilder::new(StructBuilder::from_fields(label_fields(), 0)).with_field(
        Arc::new(Field::new("item", DataType::Struct(label_fields()), false)),
    );
    for (ls, _) in series {
        let st = labels.values();
        for l in ls.iter() {
            st.field_builder::<StringBuilder>(0)
                .ok_or_else(|| invalid(SERIES_FILE, "label name builder"))?
                .append_value(&l.name);
            st.field_builder::<StringBuilder>(1)
                .ok_or_else(|| invalid(SERIES_FILE, "label value builder"))?
                .append_value(&l.value);
            st.append(true);
        }
        labels.append(true);
    }
    let n = series.len() as u32;
    let cols: Vec<ArrayRef> = vec![
        Arc::new(UInt32Array::from_iter_values(0..n)),
        Arc::new(labels.finish()),
        Arc::new(UInt64Array::from_iter_values(
            series.iter().map(|(l, _)| l.series_hash().0),
        )),
        Arc::new(Int64Array::from_iter_values(
            series
                .iter()
                .map(|(_, s)| s.first().map_or(0, |x| x.timestamp_ms)),
        )),
        Arc::new(Int64Array::from_iter_values(
            series
                .iter()
                .map(|(_, s)| s.last().map_or(0, |x| x.timestamp_ms)),
        )),
        Arc::new(UInt64Array::from_iter_values(
            series.iter().map(|(_, s)| s.len() as u64),
        )),
    ];
    RecordBatch::try_new(series_schema(), cols).map_err(arrow_err(SERIES_FILE))
}

/// Encodes `samples.parquet` for normalized `series` with `layout`.
pub fn encode_samples(
    series: &[(Labels, Vec<Sample>)],
    layout: &SampleLayout,
) -> Result<Vec<u8>, StorageError> {
    let schema = layout.schema();
    let mut chunks: Vec<Vec<usize>> = Vec::new();
    let mut cur = Vec::new();
    let mut rows = 0usize;
    for (i, (_, s)) in series.iter().enumerate() {
        if rows > 0 && rows + s.len() > BATCH_ROWS {
            chunks.push(std::mem::take(&mut cur));
            rows = 0;
        }
        cur.push(i);
        rows += s.len();
    }
    if !cur.is_empty() {
        chunks.push(cur);
    }
    let batches = chunks.into_iter().map(|ids| {
        let n: usize = ids.iter().map(|&i| series[i].1.len()).sum();
        let mut sid = Vec::with_capacity(n);
        let mut ts = Vec::with_capacity(n);
        for &i in &ids {
            for s in &series[i].1 {
                sid.push(i as u32);
                ts.push(s.timestamp_ms);
            }
        }
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(UInt32Array::from(sid)),
            Arc::new(Int64Array::from(ts)),
        ];
        if layout.values == ValueEncoding::Decimal {
            let mut m = Vec::with_capacity(n);
            let mut e = Vec::with_capacity(n);
            for &i in &ids {
                let vals: Vec<f64> = series[i].1.iter().map(|s| s.value).collect();
                encode_decimal_run(&vals, &mut m, &mut e);
            }
            cols.push(Arc::new(Int64Array::from(m)));
            cols.push(Arc::new(Int8Array::from(e)));
        } else {
            let v: Vec<f64> = ids
                .iter()
                .flat_map(|&i| series[i].1.iter().map(|s| s.value))
                .collect();
            cols.push(Arc::new(Float64Array::from(v)));
        }
        RecordBatch::try_new(schema.clone(), cols).map_err(arrow_err(SAMPLES_FILE))
    });
    write_parquet(SAMPLES_FILE, layout.schema(), layout.properties(), batches)
}

/// Encodes a whole block from normalized `series` (see [`normalize`]).
/// The block's time range is `[min_time, max_time]`, widened to cover every
/// sample.
pub fn encode_block(
    id: &str,
    series: &[(Labels, Vec<Sample>)],
    min_time: i64,
    max_time: i64,
    compaction: CompactionMeta,
    layout: &SampleLayout,
) -> Result<EncodedBlock, StorageError> {
    let samples = encode_samples(series, layout)?;
    let series_file = write_parquet(
        SERIES_FILE,
        series_schema(),
        index_properties(),
        std::iter::once(series_batch(series)),
    )?;
    let postings = Postings::build(series.iter().map(|(l, _)| l));
    let postings_file = write_parquet(
        POSTINGS_FILE,
        Postings::schema(),
        index_properties(),
        std::iter::once(postings.to_batch().map_err(arrow_err(POSTINGS_FILE))),
    )?;
    let lo = series
        .iter()
        .filter_map(|(_, s)| s.first())
        .map(|s| s.timestamp_ms)
        .min()
        .map_or(min_time, |t| t.min(min_time));
    let hi = series
        .iter()
        .filter_map(|(_, s)| s.last())
        .map(|s| s.timestamp_ms)
        .max()
        .map_or(max_time, |t| t.max(max_time));
    let files = vec![
        (SERIES_FILE, series_file),
        (SAMPLES_FILE, samples),
        (POSTINGS_FILE, postings_file),
    ];
    let meta = MetaFile {
        version: META_VERSION,
        id: id.to_string(),
        min_time: lo,
        max_time: hi.max(lo),
        num_series: series.len() as u64,
        num_samples: series.iter().map(|(_, s)| s.len() as u64).sum(),
        compaction,
        files: files
            .iter()
            .map(|(n, b)| (n.to_string(), b.len() as u64))
            .collect::<BTreeMap<_, _>>(),
        value_encoding: layout.values.layout_name().to_string(),
    };
    Ok(EncodedBlock { files, meta })
}
