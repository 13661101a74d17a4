use std::sync::atomic::Ordering;

use fleetwatch_model::matcher::matches_all;
use fleetwatch_model::{is_stale_nan, Labels, MatchOp, Matcher, Sample};

use super::encoding::{SampleLayout, ValueEncoding};
use super::fleetgen::fleet;
use super::writer::{encode_samples, normalize, SAMPLES_FILE};
use super::BlockStore;
use crate::SeriesData;

const T0: i64 = 1_700_000_000_000;

async fn store(dir: &std::path::Path) -> BlockStore {
    BlockStore::open(BlockStore::local(dir).unwrap())
        .await
        .unwrap()
}

fn expected(
    series: &[(Labels, Vec<Sample>)],
    matchers: &[Matcher],
    start: i64,
    end: i64,
) -> Vec<SeriesData> {
    let mut out: Vec<SeriesData> = normalize(series.to_vec())
        .into_iter()
        .filter(|(l, _)| matches_all(matchers, l))
        .map(|(labels, s)| SeriesData {
            labels,
            samples: s
                .into_iter()
                .filter(|x| x.timestamp_ms >= start && x.timestamp_ms <= end)
                .collect(),
        })
        .filter(|s| !s.samples.is_empty())
        .collect();
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    out
}

fn block_dir(dir: &std::path::Path, id: &str) -> std::path::PathBuf {
    dir.join("blocks").join(id)
}

#[tokio::test]
async fn round_trip_realistic_exact_bits() {
    let dir = tempfile::tempdir().unwrap();
    let bs = store(dir.path()).await;
    let data = fleet(2000, 240, T0);
    let end = T0 + 240 * 15_000 + 15_000;
    let meta = bs.write_block(data.clone(), T0, end).await.unwrap();
    assert_eq!(meta.num_series, 2000);
    assert_eq!(meta.level, 1);
    let all = [Matcher::new(MatchOp::RegexMatch, "__name__", ".+").unwrap()];
    let want = expected(&data, &all, i64::MIN, i64::MAX);
    let got = bs.select(&all, i64::MIN, i64::MAX).await.unwrap();
    assert_eq!(got.len(), want.len());
    assert!(got == want, "select differs from what was written");
    let stale = got
        .iter()
        .flat_map(|s| &s.samples)
        .filter(|s| is_stale_nan(s.value))
        .count();
    assert!(stale > 0, "fixture has staleness markers");
    // Survives a reopen.
    drop(bs);
    let bs = store(dir.path()).await;
    assert_eq!(bs.blocks().len(), 1);
    assert!(bs.select(&all, i64::MIN, i64::MAX).await.unwrap() == want);
}

#[tokio::test]
async fn float_layouts_round_trip_too() {
    for values in [
        ValueEncoding::Plain,
        ValueEncoding::ByteStreamSplit,
        ValueEncoding::Dictionary,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let layout = SampleLayout {
            values,
            ..SampleLayout::default()
        };
        let bs = store(dir.path()).await.with_layout(layout);
        let data = fleet(200, 50, T0);
        bs.write_block(data.clone(), T0, T0 + 3_600_000)
            .await
            .unwrap();
        let m = [Matcher::equal("job", "kubevirt")];
        assert!(
            bs.select(&m, i64::MIN, i64::MAX).await.unwrap()
                == expected(&data, &m, i64::MIN, i64::MAX)
        );
    }
}

#[tokio::test]
async fn every_matcher_type_and_time_edges() {
    let dir = tempfile::tempdir().unwrap();
    let bs = store(dir.path()).await;
    let mut data = fleet(300, 40, T0);
    // A series lacking the `namespace` label, for empty-matching matchers.
    data.push((
        Labels::from_pairs([("__name__", "up"), ("job", "other")]),
        vec![Sample::new(T0, 1.0), Sample::new(T0 + 15_000, 0.0)],
    ));
    bs.write_block(data.clone(), T0, T0 + 3_600_000)
        .await
        .unwrap();
    let m = |op, n: &str, v: &str| Matcher::new(op, n, v).unwrap();
    let cases: Vec<Vec<Matcher>> = vec![
        vec![Matcher::equal("__name__", "up")],
        vec![
            m(MatchOp::NotEqual, "cluster", "cluster-1"),
            Matcher::equal("__name__", "up"),
        ],
        vec![m(MatchOp::RegexMatch, "name", "vm-0000[1-3]")],
        vec![
            m(MatchOp::RegexNoMatch, "cluster", "cluster-[01]"),
            m(MatchOp::RegexMatch, "__name__", "node_.*"),
        ],
        vec![
            Matcher::equal("namespace", ""),
            Matcher::equal("__name__", "up"),
        ],
        vec![
            m(MatchOp::RegexMatch, "namespace", "ns-1|"),
            Matcher::equal("__name__", "up"),
        ],
        vec![Matcher::equal("__name__", "nope")],
    ];
    let (start, end) = (T0 + 60_000, T0 + 300_000);
    for ms in &cases {
        let got = bs.select(ms, start, end).await.unwrap();
        let want = expected(&data, ms, start, end);
        assert!(
            got == want,
            "matchers {ms:?}: {} vs {} series",
            got.len(),
            want.len()
        );
    }
    // Inclusive at both ends, to the millisecond.
    let one = [Matcher::equal("job", "other")];
    let got = bs.select(&one, T0, T0 + 15_000).await.unwrap();
    assert_eq!(got[0].samples.len(), 2);
    let got = bs.select(&one, T0 + 1, T0 + 15_000).await.unwrap();
    assert_eq!(got[0].samples, vec![Sample::new(T0 + 15_000, 0.0)]);
    assert!(bs
        .select(&one, T0 + 1, T0 + 14_999)
        .await
        .unwrap()
        .is_empty());
    assert!(bs.select(&one, T0 - 10, T0 - 1).await.unwrap().is_empty());

    // Metadata queries.
    let names = bs.label_names(&one, i64::MIN, i64::MAX).await.unwrap();
    assert_eq!(names, vec!["__name__", "job"]);
    let vals = bs
        .label_values("job", &[], i64::MIN, i64::MAX)
        .await
        .unwrap();
    assert_eq!(vals, vec!["kubevirt", "other"]);
    let series = bs
        .series(&[Matcher::equal("__name__", "up")], i64::MIN, i64::MAX)
        .await
        .unwrap();
    assert_eq!(series.len(), 31);
    assert!(series.windows(2).all(|w| w[0] < w[1]));
}

#[tokio::test]
async fn one_series_reads_few_row_groups_and_pages() {
    let dir = tempfile::tempdir().unwrap();
    let bs = store(dir.path()).await;
    let data = fleet(2000, 240, T0);
    bs.write_block(data.clone(), T0, T0 + 4 * 3_600_000)
        .await
        .unwrap();
    let id = bs.blocks()[0].id.clone();
    let block = bs
        .open_blocks()
        .into_iter()
        .find(|b| b.meta.id == id)
        .unwrap();
    let total_rgs = block.samples_row_groups();
    assert!(
        total_rgs >= 3,
        "fixture should span several row groups, has {total_rgs}"
    );
    let m = [
        Matcher::equal("name", "vm-00100"),
        Matcher::equal("__name__", "up"),
    ];
    let got = bs.select(&m, T0 + 600_000, T0 + 1_200_000).await.unwrap();
    assert!(got == expected(&data, &m, T0 + 600_000, T0 + 1_200_000));
    let st = bs.stats();
    let read = st.row_groups_read.load(Ordering::Relaxed);
    let skipped = st.row_groups_skipped.load(Ordering::Relaxed);
    assert_eq!(read, 1);
    assert_eq!(read + skipped, total_rgs as u64);
    assert!(st.pages_skipped.load(Ordering::Relaxed) > st.pages_read.load(Ordering::Relaxed));
    let size = bs.blocks()[0].bytes;
    let bytes = st.bytes_read.load(Ordering::Relaxed);
    assert!(bytes * 20 < size, "read {bytes} of {size} bytes");
}

#[tokio::test]
async fn merges_overlapping_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let bs = store(dir.path()).await;
    let a = fleet(50, 40, T0);
    // Second block: the same series, overlapping in time by 10 samples.
    let b: Vec<(Labels, Vec<Sample>)> = fleet(50, 70, T0)
        .into_iter()
        .map(|(l, s)| (l, s.into_iter().skip(30).collect()))
        .collect();
    bs.write_block(a.clone(), T0, T0 + 600_000).await.unwrap();
    bs.write_block(b.clone(), T0 + 450_000, T0 + 1_100_000)
        .await
        .unwrap();
    let all = [Matcher::equal("job", "kubevirt")];
    let got = bs.select(&all, i64::MIN, i64::MAX).await.unwrap();
    let mut union = a.clone();
    union.extend(b);
    assert!(got == expected(&union, &all, i64::MIN, i64::MAX));
    for s in &got {
        assert!(s
            .samples
            .windows(2)
            .all(|w| w[0].timestamp_ms < w[1].timestamp_ms));
    }
}

#[tokio::test]
async fn incomplete_block_is_removed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let bs = store(dir.path()).await;
    let m = bs
        .write_block(fleet(10, 10, T0), T0, T0 + 200_000)
        .await
        .unwrap();
    let m2 = bs
        .write_block(fleet(10, 10, T0 + 300_000), T0 + 300_000, T0 + 500_000)
        .await
        .unwrap();
    drop(bs);
    std::fs::remove_file(block_dir(dir.path(), &m2.id).join("meta.json")).unwrap();
    let bs = store(dir.path()).await;
    assert_eq!(
        bs.blocks().iter().map(|b| b.id.clone()).collect::<Vec<_>>(),
        vec![m.id]
    );
    assert_eq!(
        bs.stats().blocks_incomplete_removed.load(Ordering::Relaxed),
        1
    );
    assert!(!block_dir(dir.path(), &m2.id).join(SAMPLES_FILE).exists());
}

#[tokio::test]
async fn truncated_samples_file_skips_only_that_block() {
    let dir = tempfile::tempdir().unwrap();
    let bs = store(dir.path()).await;
    let good = fleet(20, 20, T0);
    bs.write_block(good.clone(), T0, T0 + 300_000)
        .await
        .unwrap();
    let bad = bs
        .write_block(fleet(20, 20, T0 + 400_000), T0 + 400_000, T0 + 800_000)
        .await
        .unwrap();
    drop(bs);
    let path = block_dir(dir.path(), &bad.id).join(SAMPLES_FILE);
    let len = std::fs::metadata(&path).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len / 2).unwrap();
    drop(f);
    let bs = store(dir.path()).await;
    assert_eq!(bs.blocks().len(), 1);
    assert_eq!(bs.stats().blocks_corrupt_skipped.load(Ordering::Relaxed), 1);
    let all = [Matcher::equal("job", "kubevirt")];
    assert!(
        bs.select(&all, i64::MIN, i64::MAX).await.unwrap()
            == expected(&good, &all, i64::MIN, i64::MAX)
    );
    // The corrupt block is left for an operator, not deleted.
    assert!(path.exists());

    // Same size but garbage inside (footer destroyed): still skipped.
    let bytes = std::fs::read(&path).unwrap();
    let mut full = bytes.clone();
    full.resize(len as usize, 0);
    std::fs::write(&path, &full).unwrap();
    let bs = store(dir.path()).await;
    assert_eq!(bs.blocks().len(), 1);
    assert_eq!(bs.stats().blocks_corrupt_skipped.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn retention_by_time_and_size() {
    let dir = tempfile::tempdir().unwrap();
    let bs = store(dir.path()).await;
    let h = 3_600_000;
    let mut ids = Vec::new();
    for k in 0..4 {
        let start = T0 + k * h;
        let m = bs
            .write_block(fleet(30, 20, start), start, start + h - 1)
            .await
            .unwrap();
        ids.push(m.id);
    }
    // Nothing entirely older than T0 + 30 min.
    assert!(bs
        .apply_retention(T0 + h / 2, None)
        .await
        .unwrap()
        .is_empty());
    let deleted = bs.apply_retention(T0 + 2 * h, None).await.unwrap();
    assert_eq!(deleted, ids[..2].to_vec());
    assert!(!block_dir(dir.path(), &ids[0]).join("meta.json").exists());
    let newest = bs.blocks()[1].bytes;
    let deleted = bs
        .apply_retention(i64::MIN, Some(newest + 1))
        .await
        .unwrap();
    assert_eq!(deleted, vec![ids[2].clone()]);
    assert_eq!(bs.total_bytes(), newest);
    drop(bs);
    let bs = store(dir.path()).await;
    assert_eq!(
        bs.blocks().iter().map(|b| b.id.clone()).collect::<Vec<_>>(),
        vec![ids[3].clone()]
    );
}

#[tokio::test]
async fn empty_block_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let bs = store(dir.path()).await;
    let m = bs.write_block(Vec::new(), T0, T0 + 1000).await.unwrap();
    assert_eq!(m.num_samples, 0);
    assert!(bs.select(&[], i64::MIN, i64::MAX).await.unwrap().is_empty());
    drop(bs);
    assert_eq!(store(dir.path()).await.blocks().len(), 1);
}

/// Compressed bytes per sample of each column of a Parquet file.
fn column_sizes(body: &[u8], n: usize) -> String {
    let md = parquet::file::metadata::ParquetMetaDataReader::new()
        .parse_and_finish(&bytes::Bytes::copy_from_slice(body))
        .unwrap();
    let cols = md.file_metadata().schema_descr().num_columns();
    (0..cols)
        .map(|c| {
            let total: i64 = md
                .row_groups()
                .iter()
                .map(|rg| rg.column(c).compressed_size())
                .sum();
            format!(
                "{}={:.3}",
                md.file_metadata().schema_descr().column(c).name(),
                total as f64 / n as f64
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Measures on-disk bytes per sample of `samples.parquet` (and the whole
/// block) for each layout on a realistic fleet load. Run with
/// `--nocapture` to see the figures.
#[test]
fn encoding_report() {
    for samples in [480, 1440] {
        report(samples);
    }
}

fn report(samples: usize) {
    let data = normalize(fleet(1000, samples, T0));
    let n: usize = data.iter().map(|(_, s)| s.len()).sum();
    let raw = n * 16;
    println!("fleet load: {} series, {n} samples ({samples} per series at 15s); raw ts+f64 = 16 B/sample", data.len());
    let mut best = (f64::MAX, String::new());
    for values in [
        ValueEncoding::Plain,
        ValueEncoding::Dictionary,
        ValueEncoding::ByteStreamSplit,
        ValueEncoding::Decimal,
    ] {
        for (zstd_level, page_rows, delta_block) in [
            (3, 8 * 1024, 128),
            (3, 8 * 1024, 256),
            (3, 20 * 1024, 128),
            (9, 8 * 1024, 128),
        ] {
            let layout = SampleLayout {
                values,
                zstd_level,
                page_rows,
                delta_block,
                ..SampleLayout::default()
            };
            let body = encode_samples(&data, &layout).unwrap();
            let bps = body.len() as f64 / n as f64;
            let name =
                format!("{values:?} zstd({zstd_level}) pages={page_rows} delta={delta_block}");
            println!(
                "  {name:<40} {:>9} B  {bps:.3} B/sample  ({:.1}x)  per column: {}",
                body.len(),
                raw as f64 / body.len() as f64,
                column_sizes(&body, n)
            );
            if bps < best.0 {
                best = (bps, name);
            }
        }
    }
    println!("best: {} at {:.3} B/sample", best.1, best.0);
    let default = encode_samples(&data, &SampleLayout::default()).unwrap();
    assert!(
        default.len() as f64 / n as f64 <= best.0 * 1.15,
        "default layout is far from the best"
    );
}
