use super::*;

fn series(name: &str, cluster: &str, samples: &[(i64, f64)]) -> SeriesSamples {
    SeriesSamples {
        labels: Labels::from_pairs([("__name__", name), ("cluster", cluster)]),
        samples: samples.iter().map(|&(t, v)| Sample::new(t, v)).collect(),
    }
}

#[test]
fn append_select_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let head = Head::open(HeadOptions::new(dir.path())).unwrap();
        let out = head
            .append(vec![
                series("up", "a", &[(1000, 1.0), (2000, 1.0)]),
                series("up", "b", &[(1000, 0.0)]),
            ])
            .unwrap();
        assert_eq!(out.samples_stored, 3);
        assert_eq!(out.series_created, 2);
        let got = head
            .select(&[Matcher::equal("cluster", "a")], 0, 5000)
            .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(
            got[0].samples,
            vec![Sample::new(1000, 1.0), Sample::new(2000, 1.0)]
        );
        head.append(vec![series(
            "up",
            "a",
            &[(3000, fleetwatch_model::STALE_NAN)],
        )])
        .unwrap();
    }
    // Reopen: everything acknowledged is back, NaN bits included.
    let head = Head::open(HeadOptions::new(dir.path())).unwrap();
    let got = head
        .select(&[Matcher::equal("__name__", "up")], 0, 5000)
        .unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].samples.len(), 3);
    assert!(fleetwatch_model::is_stale_nan(got[0].samples[2].value));
    // And appends after the restart land on the right series.
    head.append(vec![series("up", "b", &[(4000, 1.0)])])
        .unwrap();
    drop(head);
    let head = Head::open(HeadOptions::new(dir.path())).unwrap();
    let got = head
        .select(&[Matcher::equal("cluster", "b")], 0, 5000)
        .unwrap();
    assert_eq!(
        got[0].samples,
        vec![Sample::new(1000, 0.0), Sample::new(4000, 1.0)]
    );
    assert_eq!(head.num_series(), 2);
}

#[test]
fn duplicates_and_out_of_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = HeadOptions::new(dir.path());
    opts.out_of_order_window_ms = 60_000;
    let head = Head::open(opts).unwrap();
    head.append(vec![series("x", "a", &[(100_000, 1.0)])])
        .unwrap();
    // Identical duplicate: ignored, not an error.
    let out = head
        .append(vec![series("x", "a", &[(100_000, 1.0)])])
        .unwrap();
    assert_eq!(out.duplicates_ignored, 1);
    // Conflicting value: rejected whole, the other series in it not stored.
    let err = head
        .append(vec![
            series("y", "a", &[(100_000, 5.0)]),
            series("x", "a", &[(100_000, 2.0)]),
        ])
        .unwrap_err();
    assert!(
        matches!(err, StorageError::DuplicateTimestamp { .. }),
        "{err}"
    );
    assert!(head
        .select(&[Matcher::equal("__name__", "y")], 0, i64::MAX)
        .unwrap()
        .is_empty());
    // Inside the window: accepted and returned in order.
    head.append(vec![series("x", "a", &[(50_000, 0.5)])])
        .unwrap();
    let got = head
        .select(&[Matcher::equal("__name__", "x")], 0, i64::MAX)
        .unwrap();
    assert_eq!(
        got[0].samples,
        vec![Sample::new(50_000, 0.5), Sample::new(100_000, 1.0)]
    );
    // Beyond the window: rejected.
    let err = head
        .append(vec![series("x", "a", &[(1_000, 0.1)])])
        .unwrap_err();
    assert!(matches!(err, StorageError::OutOfOrder { .. }));
    assert!(err.is_bad_data());
}

#[test]
fn matchers_and_labels() {
    let dir = tempfile::tempdir().unwrap();
    let head = Head::open(HeadOptions::new(dir.path())).unwrap();
    head.append(vec![
        series("up", "prod-east", &[(1000, 1.0)]),
        series("up", "prod-west", &[(1000, 1.0)]),
        series("mem", "staging", &[(1000, 1.0)]),
    ])
    .unwrap();
    let re = Matcher::new(MatchOp::RegexMatch, "cluster", "prod-.*").unwrap();
    assert_eq!(
        head.select(std::slice::from_ref(&re), 0, 2000)
            .unwrap()
            .len(),
        2
    );
    let nre = Matcher::new(MatchOp::NotEqual, "cluster", "staging").unwrap();
    assert_eq!(head.series(&[nre], 0, 2000).unwrap().len(), 2);
    assert_eq!(
        head.label_names(&[], 0, 2000).unwrap(),
        vec!["__name__", "cluster"]
    );
    assert_eq!(
        head.label_values("cluster", &[Matcher::equal("__name__", "up")], 0, 2000)
            .unwrap(),
        vec!["prod-east", "prod-west"]
    );
    // Out of the time range: nothing.
    assert!(head.select(&[re], 5000, 6000).unwrap().is_empty());
}

#[test]
fn concurrent_appends_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let head = Arc::new(Head::open(HeadOptions::new(dir.path())).unwrap());
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let head = Arc::clone(&head);
            std::thread::spawn(move || {
                for i in 0..50 {
                    head.append(vec![series("c", &format!("t{t}"), &[(i * 1000, i as f64)])])
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let stats = head.stats();
    assert_eq!(stats.samples_appended.load(Ordering::Relaxed), 400);
    assert_eq!(stats.wal_fsynced_requests.load(Ordering::Relaxed), 400);
    assert!(stats.wal_fsyncs.load(Ordering::Relaxed) <= 400);
}

#[test]
fn rejected_request_with_repeats_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let head = Head::open(HeadOptions::new(dir.path())).unwrap();
    head.append(vec![series("x", "a", &[(10_000, 1.0)])])
        .unwrap();
    // The same series twice in one request (as Prometheus sends when it
    // lags), then a conflict: everything of the request is undone.
    let err = head
        .append(vec![
            series("x", "a", &[(11_000, 2.0)]),
            series("new", "a", &[(11_000, 2.0)]),
            series("x", "a", &[(12_000, 3.0)]),
            series("x", "a", &[(11_000, 9.0)]),
        ])
        .unwrap_err();
    assert!(matches!(
        err,
        StorageError::DuplicateTimestamp {
            timestamp_ms: 11_000,
            ..
        }
    ));
    let got = head
        .select(&[Matcher::equal("cluster", "a")], 0, i64::MAX)
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].samples, vec![Sample::new(10_000, 1.0)]);
    assert_eq!(head.num_series(), 1);
    assert!(head.label_values("__name__", &[], 0, i64::MAX).unwrap() == vec!["x"]);
    // Repeats without conflict are accepted in order.
    head.append(vec![
        series("x", "a", &[(12_000, 3.0)]),
        series("x", "a", &[(11_000, 2.0)]),
    ])
    .unwrap();
    let got = head
        .select(&[Matcher::equal("__name__", "x")], 0, i64::MAX)
        .unwrap();
    assert_eq!(got[0].samples.len(), 3);
}

#[test]
fn prepared_remote_write_finds_known_series() {
    use fleetwatch_model::remote_write::encode_write_request;
    let dir = tempfile::tempdir().unwrap();
    let head = Head::open(HeadOptions::new(dir.path())).unwrap();
    let body = encode_write_request(&[series("up", "a", &[(1000, 1.0)])]);
    let raw = fleetwatch_model::snappy::decompress(&body, 1 << 20).unwrap();
    let batch = head.prepare_remote_write(&raw).unwrap();
    assert!(matches!(batch.series[0].0, SeriesKey::New(_)));
    head.append_prepared(batch).unwrap();
    let body = encode_write_request(&[series("up", "a", &[(2000, 2.0)])]);
    let raw = fleetwatch_model::snappy::decompress(&body, 1 << 20).unwrap();
    let batch = head.prepare_remote_write(&raw).unwrap();
    assert!(matches!(batch.series[0].0, SeriesKey::Known(0)));
    head.append_prepared(batch).unwrap();
    assert_eq!(head.num_samples(), 2);
}

#[test]
fn checkpoint_truncates_wal_and_keeps_recent() {
    let dir = tempfile::tempdir().unwrap();
    {
        let head = Head::open(HeadOptions::new(dir.path())).unwrap();
        for i in 0..10 {
            head.append(vec![
                series("c", "a", &[(i * 1000, i as f64)]),
                series("d", "a", &[(i * 1000, 1.0)]),
            ])
            .unwrap();
        }
        let rep = head.checkpoint(5000).unwrap();
        assert_eq!(rep.samples_dropped, 10);
        assert_eq!(rep.samples_kept, 10);
        assert!(rep.segments_deleted >= 1);
        head.append(vec![series("c", "a", &[(10_000, 10.0)])])
            .unwrap();
    }
    let head = Head::open(HeadOptions::new(dir.path())).unwrap();
    let got = head
        .select(&[Matcher::equal("__name__", "c")], 0, i64::MAX)
        .unwrap();
    let ts: Vec<i64> = got[0].samples.iter().map(|s| s.timestamp_ms).collect();
    assert_eq!(ts, vec![5000, 6000, 7000, 8000, 9000, 10_000]);
    assert_eq!(head.time_range(), Some((5000, 10_000)));
    let cut = head.collect_before(7000);
    assert_eq!(cut.series.len(), 2);
    // A sample below the cut arrives while the block is being written: the
    // checkpoint must keep it.
    head.append(vec![series("d", "a", &[(5500, 7.0)])]).unwrap();
    head.checkpoint_cut(cut.cut).unwrap();
    let got = head
        .select(&[Matcher::equal("__name__", "d")], 0, i64::MAX)
        .unwrap();
    let ts: Vec<i64> = got[0].samples.iter().map(|s| s.timestamp_ms).collect();
    assert_eq!(ts, vec![5500, 7000, 8000, 9000]);
}
