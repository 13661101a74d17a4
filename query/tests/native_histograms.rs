//! Native histograms through the public API: a [`MemoryQueryable`] with
//! histogram samples, queried with the `*_histograms` engine methods.

use fleetwatch_model::Labels;
use fleetwatch_query::histogram::{Bucket, FloatHistogram};
use fleetwatch_query::{Engine, EngineOptions, HistogramPoint, MemoryQueryable, QueryValue};

fn counter(n: f64) -> FloatHistogram {
    FloatHistogram {
        count: 3.0 * n,
        sum: 6.0 * n,
        positive: (1..=3).map(|index| Bucket { index, count: n }).collect(),
        ..FloatHistogram::default()
    }
}

fn store() -> MemoryQueryable {
    let mut db = MemoryQueryable::new();
    db.add_histograms(
        Labels::from_pairs([("__name__", "h"), ("job", "a")]),
        (0..=10).map(|i| HistogramPoint::new(i * 60_000, counter(i as f64))),
    );
    db
}

#[test]
fn rate_and_statistics() {
    let engine = Engine::new(EngineOptions::default());
    let db = store();
    let q = |expr: &str| {
        engine
            .instant_query_histograms_annotated(&db, expr, 600_000)
            .map(|(v, _)| v)
    };
    let Ok(QueryValue::Vector(v)) = q("rate(h[5m])") else {
        panic!("rate failed");
    };
    let h = v.first().and_then(|s| s.histogram.clone());
    let Some(h) = h else {
        panic!("rate gave no histogram: {v:?}");
    };
    // One observation per bucket per minute.
    assert!((h.count - 3.0 / 60.0).abs() < 1e-9, "{h}");
    let Ok(QueryValue::Vector(v)) = q("histogram_count(h)") else {
        panic!("histogram_count failed");
    };
    assert_eq!(v.first().map(|s| s.value), Some(30.0));
    let Ok(QueryValue::Vector(v)) = q("histogram_quantile(1, h)") else {
        panic!("histogram_quantile failed");
    };
    // The upper bound of bucket 3 at schema 0.
    assert_eq!(v.first().map(|s| s.value), Some(8.0));
}

#[test]
fn float_queryable_sees_no_histograms() {
    let engine = Engine::new(EngineOptions::default());
    let db = store();
    let Ok(QueryValue::Vector(v)) = engine.instant_query(&db, "h", 600_000) else {
        panic!("query failed");
    };
    assert!(v.is_empty());
}
