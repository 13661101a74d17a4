use std::sync::atomic::Ordering;

use fleetwatch_model::{Labels, Matcher, Sample};

use crate::block::BlockStore;
use crate::compact::CompactOptions;
use crate::SeriesData;

const H: i64 = 3_600_000;
const T0: i64 = 1_700_006_400_000; // aligned to 6h and 2h

fn load(start: i64, n: usize, samples: usize) -> Vec<(Labels, Vec<Sample>)> {
    (0..n)
        .map(|i| {
            let l = Labels::from_pairs([
                ("__name__", "vm_mem".to_string()),
                ("vm", format!("vm-{i:03}")),
            ]);
            let s = (0..samples as i64)
                .map(|k| Sample::new(start + k * 60_000, (i as f64) * 1.5 + k as f64))
                .collect();
            (l, s)
        })
        .collect()
}

async fn three_blocks(dir: &std::path::Path) -> (BlockStore, Vec<SeriesData>) {
    let bs = BlockStore::open(BlockStore::local(dir).unwrap())
        .await
        .unwrap();
    for k in 0..3 {
        let start = T0 + k * 2 * H;
        // Series 0..40 in every block, series 40+k only in block k.
        let mut data = load(start, 40, 120);
        data.push((
            Labels::from_pairs([("__name__", "only"), ("k", &k.to_string())]),
            vec![Sample::new(start, k as f64)],
        ));
        bs.write_block(data, start, start + 2 * H - 1)
            .await
            .unwrap();
    }
    let before = bs.select(&[], i64::MIN, i64::MAX).await.unwrap();
    (bs, before)
}

fn opts() -> CompactOptions {
    CompactOptions {
        max_block_range_ms: 6 * H,
        min_blocks: 2,
        closed_before_ms: i64::MAX,
    }
}

#[tokio::test]
async fn compaction_equals_union_and_removes_sources() {
    let dir = tempfile::tempdir().unwrap();
    let (bs, before) = three_blocks(dir.path()).await;
    assert_eq!(before.len(), 43);
    let old: Vec<String> = bs.blocks().into_iter().map(|b| b.id).collect();
    let new = bs.compact(&opts()).await.unwrap().expect("compacts");
    assert_eq!(new.level, 2);
    assert_eq!(new.sources, old);
    assert_eq!((new.min_time, new.max_time), (T0, T0 + 6 * H - 1));
    assert_eq!(new.num_series, 43);
    assert_eq!(bs.blocks().len(), 1);
    assert!(bs.select(&[], i64::MIN, i64::MAX).await.unwrap() == before);
    for id in &old {
        assert!(!dir
            .path()
            .join("blocks")
            .join(id)
            .join("meta.json")
            .exists());
    }
    assert_eq!(bs.stats().compactions.load(Ordering::Relaxed), 1);
    // Nothing left to do.
    assert!(bs.compact(&opts()).await.unwrap().is_none());
    // Survives a reopen.
    drop(bs);
    let bs = BlockStore::open(BlockStore::local(dir.path()).unwrap())
        .await
        .unwrap();
    assert!(
        bs.select(&[Matcher::equal("__name__", "vm_mem")], i64::MIN, i64::MAX)
            .await
            .unwrap()
            == before
                .iter()
                .filter(|s| s.labels.metric_name() == Some("vm_mem"))
                .cloned()
                .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn crash_after_writing_compacted_block_leaves_no_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let (bs, before) = three_blocks(dir.path()).await;
    let old: Vec<String> = bs.blocks().into_iter().map(|b| b.id).collect();
    let new = bs.compact_inner(&opts(), false).await.unwrap().unwrap();
    drop(bs);
    for id in old.iter().chain([&new.id]) {
        assert!(dir
            .path()
            .join("blocks")
            .join(id)
            .join("meta.json")
            .exists());
    }
    let bs = BlockStore::open(BlockStore::local(dir.path()).unwrap())
        .await
        .unwrap();
    assert_eq!(
        bs.blocks().into_iter().map(|b| b.id).collect::<Vec<_>>(),
        vec![new.id.clone()]
    );
    assert_eq!(
        bs.stats().blocks_superseded_removed.load(Ordering::Relaxed),
        3
    );
    assert!(bs.select(&[], i64::MIN, i64::MAX).await.unwrap() == before);
    for id in &old {
        assert!(!dir
            .path()
            .join("blocks")
            .join(id)
            .join("samples.parquet")
            .exists());
    }
}

#[tokio::test]
async fn crash_while_writing_compacted_block_keeps_sources() {
    let dir = tempfile::tempdir().unwrap();
    let (bs, before) = three_blocks(dir.path()).await;
    let new = bs.compact_inner(&opts(), false).await.unwrap().unwrap();
    drop(bs);
    // The crash came before meta.json: the new block is incomplete.
    std::fs::remove_file(dir.path().join("blocks").join(&new.id).join("meta.json")).unwrap();
    let bs = BlockStore::open(BlockStore::local(dir.path()).unwrap())
        .await
        .unwrap();
    assert_eq!(bs.blocks().len(), 3);
    assert!(bs.select(&[], i64::MIN, i64::MAX).await.unwrap() == before);
}

#[tokio::test]
async fn levels_grow_with_the_range() {
    let dir = tempfile::tempdir().unwrap();
    let bs = BlockStore::open(BlockStore::local(dir.path()).unwrap())
        .await
        .unwrap();
    for k in 0..6 {
        let start = T0 + k * 2 * H;
        bs.write_block(load(start, 5, 10), start, start + 2 * H - 1)
            .await
            .unwrap();
    }
    let before = bs.select(&[], i64::MIN, i64::MAX).await.unwrap();
    let mut rounds = 0;
    while bs.compact(&opts()).await.unwrap().is_some() {
        rounds += 1;
        assert!(rounds < 10);
    }
    assert_eq!(bs.blocks().len(), 2);
    let big = CompactOptions {
        max_block_range_ms: 24 * H,
        min_blocks: 2,
        closed_before_ms: i64::MAX,
    };
    // T0 is 6h-aligned but maybe not 24h-aligned: the two 6h blocks share a
    // 24h window only when they do not straddle a day boundary.
    let merged = bs.compact(&big).await.unwrap();
    if let Some(m) = merged {
        assert_eq!(m.level, 3);
        assert_eq!(bs.blocks().len(), 1);
    }
    assert!(bs.select(&[], i64::MIN, i64::MAX).await.unwrap() == before);
}
