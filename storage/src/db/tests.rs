use fleetwatch_model::remote_write::SeriesSamples;

use super::*;

fn series(name: &str, i: usize, samples: &[(i64, f64)]) -> SeriesSamples {
    SeriesSamples {
        labels: Labels::from_pairs([("__name__", name.to_string()), ("i", i.to_string())]),
        samples: samples.iter().map(|&(t, v)| Sample::new(t, v)).collect(),
    }
}

fn append(db: &Db, batch: Vec<SeriesSamples>) {
    db.head().append(batch).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_merge_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = DbOptions::new(dir.path());
    opts.block_range_ms = 60_000;
    opts.retention_ms = None;
    let db = Arc::new(Db::open(opts.clone()).await.unwrap());
    // Four minutes of data at 10 s for 3 series.
    for t in (0..240_000).step_by(10_000) {
        append(
            &db,
            (0..3)
                .map(|i| series("m", i, &[(t, (t / 1000) as f64 + i as f64)]))
                .collect(),
        );
    }
    let db2 = Arc::clone(&db);
    let report = tokio::task::spawn_blocking(move || db2.block_on(db2.maintain(240_000)))
        .await
        .unwrap()
        .unwrap();
    assert!(!report.blocks_cut.is_empty(), "{report:?}");
    let (head_min, _) = db.head().time_range().unwrap();
    assert!(
        head_min >= 60_000,
        "cut data must leave the head: {head_min}"
    );
    // Every sample still readable, merged across head and blocks, in order.
    let db2 = Arc::clone(&db);
    let got = tokio::task::spawn_blocking(move || {
        db2.select(&[Matcher::equal("__name__", "m")], 0, i64::MAX)
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(got.len(), 3);
    for s in &got {
        assert_eq!(s.samples.len(), 24);
        assert!(s
            .samples
            .windows(2)
            .all(|w| w[0].timestamp_ms < w[1].timestamp_ms));
    }
    // Flush the rest, reopen: same answer.
    let db2 = Arc::clone(&db);
    tokio::task::spawn_blocking(move || db2.block_on(db2.flush()))
        .await
        .unwrap()
        .unwrap();
    assert!(db.head().time_range().is_none());
    db.close();
    drop(db);
    let db = Arc::new(Db::open(opts).await.unwrap());
    let db2 = Arc::clone(&db);
    let again = tokio::task::spawn_blocking(move || {
        db2.select(&[Matcher::equal("__name__", "m")], 0, i64::MAX)
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(again, got);
    let db2 = Arc::clone(&db);
    let values = tokio::task::spawn_blocking(move || db2.label_values("i", &[], 0, i64::MAX))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(values, vec!["0", "1", "2"]);
}

#[test]
fn merge_prefers_first_on_ties() {
    let a = vec![SeriesData {
        labels: Labels::from_pairs([("a", "1")]),
        samples: vec![Sample::new(1, 1.0), Sample::new(3, 3.0)],
    }];
    let b = vec![
        SeriesData {
            labels: Labels::from_pairs([("a", "0")]),
            samples: vec![Sample::new(1, 0.0)],
        },
        SeriesData {
            labels: Labels::from_pairs([("a", "1")]),
            samples: vec![Sample::new(1, 9.0), Sample::new(2, 2.0)],
        },
    ];
    let m = merge_series(a, b);
    assert_eq!(m.len(), 2);
    assert_eq!(
        m[1].samples,
        vec![
            Sample::new(1, 1.0),
            Sample::new(2, 2.0),
            Sample::new(3, 3.0)
        ]
    );
}
