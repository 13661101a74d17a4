//! Select-path benchmarks over Parquet blocks: one series over a day
//! (twelve 2h blocks) and 10,000 series over an hour.
//!
//! Setup writes ~10k series x 12 blocks x 480 samples at 15 s; it takes
//! a few tens of seconds in release mode.

use std::hint::black_box;
use std::sync::atomic::Ordering;

use criterion::{criterion_group, criterion_main, Criterion};
use fleetwatch_model::{Labels, Matcher, Sample};
use fleetwatch_storage::block::BlockStore;

const H: i64 = 3_600_000;
const T0: i64 = 1_700_006_400_000;
const SERIES: usize = 10_000;
const BLOCKS: i64 = 12;

fn block_series(start: i64) -> Vec<(Labels, Vec<Sample>)> {
    (0..SERIES)
        .map(|i| {
            let labels = Labels::from_pairs([
                ("__name__", "kubevirt_vmi_memory_used_bytes".to_string()),
                ("cluster", format!("cluster-{}", i % 3)),
                ("name", format!("vm-{i:05}")),
                ("node", format!("node-{:03}", i % 97)),
            ]);
            let mut v = 2.0 * 1073741824.0 + (i as f64) * 4096.0;
            let samples = (0..480)
                .map(|k| {
                    v += (((k * 7 + i) % 13) as f64 - 6.0) * 4096.0;
                    Sample::new(start + k as i64 * 15_000 + (i % 15_000) as i64, v)
                })
                .collect();
            (labels, samples)
        })
        .collect()
}

fn bench_select(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = rt.block_on(async {
        let bs = BlockStore::open(BlockStore::local(dir.path()).expect("local"))
            .await
            .expect("open");
        for b in 0..BLOCKS {
            let start = T0 + b * 2 * H;
            bs.write_block(block_series(start), start, start + 2 * H - 1)
                .await
                .expect("write");
        }
        bs
    });
    let bytes = store.total_bytes();
    let samples: u64 = store.blocks().iter().map(|b| b.num_samples).sum();
    println!(
        "setup: {} blocks, {samples} samples, {bytes} bytes on disk = {:.3} B/sample",
        store.blocks().len(),
        bytes as f64 / samples as f64
    );

    let one = [
        Matcher::equal("__name__", "kubevirt_vmi_memory_used_bytes"),
        Matcher::equal("name", "vm-04242"),
    ];
    c.bench_function("select one series over a day (12 x 2h blocks)", |b| {
        b.iter(|| {
            let r = rt
                .block_on(store.select(&one, T0, T0 + 24 * H))
                .expect("select");
            assert_eq!(r.len(), 1);
            black_box(r)
        })
    });
    let before = store.stats().bytes_read.load(Ordering::Relaxed);
    let sel = store.stats().selects.load(Ordering::Relaxed);
    let _ = rt.block_on(store.select(&one, T0, T0 + 24 * H));
    println!(
        "one series/day reads {} bytes per select ({} selects so far)",
        store.stats().bytes_read.load(Ordering::Relaxed) - before,
        sel + 1
    );

    let many = [Matcher::equal("__name__", "kubevirt_vmi_memory_used_bytes")];
    let mut g = c.benchmark_group("wide");
    g.sample_size(10);
    g.bench_function("select 10,000 series over an hour", |b| {
        b.iter(|| {
            let r = rt
                .block_on(store.select(&many, T0 + 5 * H, T0 + 6 * H))
                .expect("select");
            assert_eq!(r.len(), SERIES);
            black_box(r)
        })
    });
    g.finish();
}

criterion_group!(benches, bench_select);
criterion_main!(benches);
