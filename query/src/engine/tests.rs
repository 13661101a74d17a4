//! Engine tests over an in-memory store.

use std::time::Duration;

use fleetwatch_model::{Labels, MatchOp, Sample, STALE_NAN};

use super::*;
use crate::MemoryQueryable;

fn l(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

/// Samples `(seconds, value)`.
fn s(points: &[(i64, f64)]) -> Vec<Sample> {
    points
        .iter()
        .map(|&(t, v)| Sample::new(t * 1000, v))
        .collect()
}

fn engine() -> Engine {
    Engine::new(EngineOptions::default())
}

/// Runs an instant query at `t` seconds and renders the vector as
/// `labels => value` lines in result order.
fn vec_at(db: &MemoryQueryable, q: &str, t: i64) -> Vec<(String, f64)> {
    match engine().instant_query(db, q, t * 1000) {
        Ok(QueryValue::Vector(v)) => {
            for s in &v {
                assert_eq!(
                    s.timestamp_ms,
                    t * 1000,
                    "instant vector timestamps are the eval time"
                );
            }
            v.into_iter()
                .map(|s| (s.labels.to_string(), s.value))
                .collect()
        }
        other => panic!("{q}: expected a vector, got {other:?}"),
    }
}

fn scalar_at(db: &MemoryQueryable, q: &str, t: i64) -> f64 {
    match engine().instant_query(db, q, t * 1000) {
        Ok(QueryValue::Scalar { value, .. }) => value,
        other => panic!("{q}: expected a scalar, got {other:?}"),
    }
}

fn err_at(db: &MemoryQueryable, q: &str, t: i64) -> QueryError {
    match engine().instant_query(db, q, t * 1000) {
        Err(e) => e,
        Ok(v) => panic!("{q}: expected an error, got {v:?}"),
    }
}

fn assert_close(got: f64, want: f64) {
    assert!(
        (got - want).abs() <= 1e-9 * want.abs().max(1.0),
        "got {got}, want {want}"
    );
}

fn one(db: &MemoryQueryable, q: &str, t: i64) -> (String, f64) {
    let v = vec_at(db, q, t);
    assert_eq!(v.len(), 1, "{q}: {v:?}");
    v.into_iter().next().unwrap_or_default()
}

fn counter_db() -> MemoryQueryable {
    let mut db = MemoryQueryable::new();
    // A counter scraped every 15s: 0 10 20 30 40 ...
    db.add(
        l(&[("__name__", "c"), ("job", "a")]),
        s(&[(0, 0.0), (15, 10.0), (30, 20.0), (45, 30.0), (60, 40.0)]),
    );
    // A counter with a reset between 30s and 45s.
    db.add(
        l(&[("__name__", "c"), ("job", "reset")]),
        s(&[(15, 10.0), (30, 20.0), (45, 5.0), (60, 15.0)]),
    );
    db
}

#[test]
fn selectors_lookback_and_staleness() {
    let mut db = MemoryQueryable::new();
    db.add(
        l(&[("__name__", "m"), ("a", "1")]),
        s(&[(0, 1.0), (100, 2.0)]),
    );
    db.add(
        l(&[("__name__", "m"), ("a", "2")]),
        s(&[(0, 5.0), (50, STALE_NAN)]),
    );
    db.add(
        l(&[("__name__", "m"), ("a", "3"), ("b", "x")]),
        s(&[(10, 7.0)]),
    );
    assert_eq!(
        vec_at(&db, "m", 20),
        vec![
            ("m{a=\"1\"}".to_string(), 1.0),
            ("m{a=\"2\"}".to_string(), 5.0),
            ("m{a=\"3\", b=\"x\"}".to_string(), 7.0)
        ]
    );
    // A staleness marker as the latest sample hides the series.
    assert_eq!(vec_at(&db, "m{a=\"2\"}", 60), vec![]);
    // Lookback is left-open: the sample at 10s is gone at exactly 310s.
    assert_eq!(vec_at(&db, "m{a=\"3\"}", 309).len(), 1);
    assert_eq!(vec_at(&db, "m{a=\"3\"}", 310), vec![]);
    assert_eq!(vec_at(&db, "m{a!=\"1\", a!=\"2\"}", 20).len(), 1);
    assert_eq!(vec_at(&db, "m{a=~\"1|3\"}", 20).len(), 2);
    assert_eq!(vec_at(&db, "m{b!~\"x\"}", 20).len(), 2);
    assert_eq!(vec_at(&db, "{__name__=~\"m\", b=\"x\"}", 20).len(), 1);
}

#[test]
fn range_selectors_are_left_open_and_drop_stale() {
    let mut db = MemoryQueryable::new();
    db.add(
        l(&[("__name__", "m")]),
        s(&[(0, 1.0), (30, 2.0), (60, STALE_NAN), (90, 4.0)]),
    );
    match engine().instant_query(&db, "m[60s]", 90_000) {
        Ok(QueryValue::Matrix(m)) => {
            assert_eq!(m.len(), 1);
            assert_eq!(m[0].samples, s(&[(90, 4.0)]));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(one(&db, "count_over_time(m[60s])", 60).1, 1.0);
    assert_eq!(one(&db, "count_over_time(m[61s])", 60).1, 2.0);
}

#[test]
fn offset_and_at_modifiers() {
    let db = counter_db();
    assert_eq!(one(&db, "c{job=\"a\"} offset 30s", 60).1, 20.0);
    assert_eq!(one(&db, "c{job=\"a\"} @ 15", 60).1, 10.0);
    assert_eq!(one(&db, "c{job=\"a\"} @ 45 offset 15s", 60).1, 20.0);
    assert_eq!(one(&db, "c{job=\"a\"} @ start()", 30).1, 20.0);
    match engine().range_query(&db, "c{job=\"a\"} @ end()", 0, 60_000, 30_000) {
        Ok(QueryValue::Matrix(m)) => {
            assert_eq!(
                m[0].samples,
                vec![
                    Sample::new(0, 40.0),
                    Sample::new(30_000, 40.0),
                    Sample::new(60_000, 40.0)
                ]
            );
        }
        other => panic!("{other:?}"),
    }
    match engine().range_query(&db, "c{job=\"a\"} @ start()", 30_000, 60_000, 30_000) {
        Ok(QueryValue::Matrix(m)) => {
            assert_eq!(
                m[0].samples,
                vec![Sample::new(30_000, 20.0), Sample::new(60_000, 20.0)]
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn rate_family_extrapolates_like_prometheus() {
    let db = counter_db();
    // (0, 60]: 10 20 30 40; 45s sampled, 15s to the start (< 1.1 x 15s),
    // counter zero point 15s back: factor (45 + 15) / 45.
    assert_close(one(&db, "increase(c{job=\"a\"}[1m])", 60).1, 40.0);
    assert_close(one(&db, "rate(c{job=\"a\"}[1m])", 60).1, 40.0 / 60.0);
    // Reset: 10 20 5 15 -> 5 + 20 = 25, zero point 18s back > 15s.
    assert_close(
        one(&db, "increase(c{job=\"reset\"}[1m])", 60).1,
        25.0 * 60.0 / 45.0,
    );
    assert_close(one(&db, "irate(c{job=\"reset\"}[1m])", 60).1, 10.0 / 15.0);
    assert_close(one(&db, "irate(c{job=\"reset\"}[1m])", 50).1, 5.0 / 15.0);
    assert_close(
        one(&db, "delta(c{job=\"reset\"}[1m])", 60).1,
        5.0 * 60.0 / 45.0,
    );
    assert_close(one(&db, "idelta(c{job=\"reset\"}[1m])", 60).1, 10.0);
    // One sample in range: no result.
    assert_eq!(vec_at(&db, "rate(c{job=\"a\"}[10s])", 60), vec![]);
    // Results drop the metric name.
    assert_eq!(one(&db, "rate(c{job=\"a\"}[1m])", 60).0, "{job=\"a\"}");
    // Far from the window edges extrapolation stops at half an interval:
    // window (0, 100], samples 15..60 -> to_start 15, to_end 40 >= 16.5 -> 7.5.
    assert_close(
        one(&db, "increase(c{job=\"a\"}[100s])", 100).1,
        30.0 * (45.0 + 15.0 + 7.5) / 45.0,
    );
}

#[test]
fn aggregations() {
    let mut db = MemoryQueryable::new();
    for (i, (job, inst, v)) in [
        ("a", "1", 1.0),
        ("a", "2", 3.0),
        ("b", "1", 10.0),
        ("b", "2", f64::NAN),
    ]
    .into_iter()
    .enumerate()
    {
        let _ = i;
        db.add(
            l(&[("__name__", "x"), ("job", job), ("inst", inst)]),
            s(&[(0, v)]),
        );
    }
    let at = |q: &str| vec_at(&db, q, 10);
    assert_eq!(
        at("sum by (job) (x{job=\"a\"})"),
        vec![("{job=\"a\"}".to_string(), 4.0)]
    );
    assert_eq!(
        at("sum without (inst) (x{job=\"a\"})"),
        vec![("{job=\"a\"}".to_string(), 4.0)]
    );
    assert_eq!(at("sum(x{job=\"a\"})"), vec![("{}".to_string(), 4.0)]);
    assert_eq!(at("avg by (job) (x{job=\"a\"})")[0].1, 2.0);
    assert_eq!(
        at("count by (job) (x)"),
        vec![
            ("{job=\"a\"}".to_string(), 2.0),
            ("{job=\"b\"}".to_string(), 2.0)
        ]
    );
    assert_eq!(at("min by (job) (x)")[1].1, 10.0);
    assert_eq!(at("max by (job) (x)")[0].1, 3.0);
    assert_eq!(at("group by (job) (x)")[0].1, 1.0);
    assert_eq!(at("stddev(x{job=\"a\"})")[0].1, 1.0);
    assert_eq!(at("stdvar(x{job=\"a\"})")[0].1, 1.0);
    assert_eq!(at("quantile(0.5, x{job=\"a\"})")[0].1, 2.0);
    assert_eq!(
        at("topk(2, x)"),
        vec![
            ("x{inst=\"1\", job=\"b\"}".to_string(), 10.0),
            ("x{inst=\"2\", job=\"a\"}".to_string(), 3.0)
        ]
    );
    assert_eq!(
        at("bottomk(1, x)"),
        vec![("x{inst=\"1\", job=\"a\"}".to_string(), 1.0)]
    );
    assert_eq!(at("topk by (job) (1, x)").len(), 2);
    assert_eq!(
        at("count_values(\"val\", x{job=\"a\"})"),
        vec![
            ("{val=\"1\"}".to_string(), 1.0),
            ("{val=\"3\"}".to_string(), 1.0)
        ]
    );
    assert_eq!(at("limitk(1, x{job=\"a\"})").len(), 1);
}

#[test]
fn binary_operators() {
    let mut db = MemoryQueryable::new();
    db.add(
        l(&[("__name__", "a"), ("i", "1"), ("j", "x")]),
        s(&[(0, 10.0)]),
    );
    db.add(
        l(&[("__name__", "a"), ("i", "2"), ("j", "x")]),
        s(&[(0, 20.0)]),
    );
    db.add(
        l(&[("__name__", "b"), ("i", "1"), ("j", "x")]),
        s(&[(0, 2.0)]),
    );
    db.add(
        l(&[("__name__", "b"), ("i", "2"), ("j", "y")]),
        s(&[(0, 4.0)]),
    );
    db.add(l(&[("__name__", "one"), ("j", "x")]), s(&[(0, 100.0)]));
    let at = |q: &str| vec_at(&db, q, 10);
    assert_eq!(
        at("a / on(i) b"),
        vec![
            ("{i=\"1\"}".to_string(), 5.0),
            ("{i=\"2\"}".to_string(), 5.0)
        ]
    );
    assert_eq!(
        at("a - ignoring(j) b"),
        vec![
            ("{i=\"1\"}".to_string(), 8.0),
            ("{i=\"2\"}".to_string(), 16.0)
        ]
    );
    assert_eq!(at("a * b"), vec![("{i=\"1\", j=\"x\"}".to_string(), 20.0)]);
    assert_eq!(
        at("a % 3"),
        vec![
            ("{i=\"1\", j=\"x\"}".to_string(), 1.0),
            ("{i=\"2\", j=\"x\"}".to_string(), 2.0)
        ]
    );
    assert_eq!(at("2 ^ b")[0].1, 4.0);
    // Filtering comparisons keep the left labels and value.
    assert_eq!(
        at("a > 15"),
        vec![("a{i=\"2\", j=\"x\"}".to_string(), 20.0)]
    );
    assert_eq!(
        at("15 < a"),
        vec![("a{i=\"2\", j=\"x\"}".to_string(), 20.0)]
    );
    assert_eq!(
        at("a > bool 15"),
        vec![
            ("{i=\"1\", j=\"x\"}".to_string(), 0.0),
            ("{i=\"2\", j=\"x\"}".to_string(), 1.0)
        ]
    );
    // One-to-one matching with ignoring() drops the ignored labels.
    assert_eq!(
        at("a > ignoring(j) b"),
        vec![
            ("a{i=\"1\"}".to_string(), 10.0),
            ("a{i=\"2\"}".to_string(), 20.0)
        ]
    );
    assert_eq!(at("a == bool ignoring(j) b")[0].1, 0.0);
    // group_left copies the listed labels from the one side.
    assert_eq!(
        at("a * on(j) group_left() one"),
        vec![
            ("{i=\"1\", j=\"x\"}".to_string(), 1000.0),
            ("{i=\"2\", j=\"x\"}".to_string(), 2000.0)
        ]
    );
    assert_eq!(
        at("one / on(j) group_right b")[0],
        ("{i=\"1\", j=\"x\"}".to_string(), 50.0)
    );
    // Set operators.
    assert_eq!(at("a and on(i) b").len(), 2);
    assert_eq!(at("a and b").len(), 1);
    assert_eq!(
        at("a unless b"),
        vec![("a{i=\"2\", j=\"x\"}".to_string(), 20.0)]
    );
    assert_eq!(at("a or b").len(), 3);
    assert_eq!(scalar_at(&db, "2 * 3 + 1", 10), 7.0);
    assert_eq!(scalar_at(&db, "2 > bool 1", 10), 1.0);
    assert_eq!(scalar_at(&db, "-(2 ^ 2)", 10), -4.0);
    // Many-to-many is an error worded as Prometheus words it.
    let e = err_at(&db, "one + on(j) a", 10);
    assert_eq!(e.error_type(), "execution");
    assert_eq!(
        e.to_string(),
        "found duplicate series for the match group {j=\"x\"} on the right hand-side of the operation: [{__name__=\"a\", i=\"1\", j=\"x\"}, {__name__=\"a\", i=\"2\", j=\"x\"}];many-to-many matching not allowed: matching labels must be unique on one side"
    );
    let e = err_at(&db, "a + on(j) one", 10);
    assert!(
        e.to_string().starts_with("multiple matches for labels"),
        "{e}"
    );
}

#[test]
fn seed_alert_memory_pressure() {
    let mut db = MemoryQueryable::new();
    for (vm, used, avail) in [("vm1", 95.0, 100.0), ("vm2", 50.0, 100.0)] {
        let base = [("namespace", "prod"), ("name", vm)];
        let mut u = base.to_vec();
        u.push(("__name__", "kubevirt_vm_memory_usage_bytes"));
        let mut a = base.to_vec();
        a.push(("__name__", "kubevirt_vm_memory_available_bytes"));
        db.add(l(&u), s(&[(0, used)]));
        db.add(l(&a), s(&[(0, avail)]));
    }
    assert_eq!(
        vec_at(
            &db,
            "kubevirt_vm_memory_usage_bytes / kubevirt_vm_memory_available_bytes > 0.9",
            30
        ),
        vec![("{name=\"vm1\", namespace=\"prod\"}".to_string(), 0.95)]
    );
}

#[test]
fn seed_alert_migration_failures() {
    let mut db = MemoryQueryable::new();
    let flat: Vec<(i64, f64)> = (0..=20).map(|i| (i * 30, 2.0)).collect();
    let rising: Vec<(i64, f64)> = (0..=20)
        .map(|i| (i * 30, if i * 30 >= 480 { 1.0 } else { 0.0 }))
        .collect();
    db.add(
        l(&[
            ("__name__", "kubevirt_vm_migration_failed_total"),
            ("vm", "a"),
        ]),
        s(&flat),
    );
    db.add(
        l(&[
            ("__name__", "kubevirt_vm_migration_failed_total"),
            ("vm", "b"),
        ]),
        s(&rising),
    );
    // Window (300s, 600s]: vm b goes 0 -> 1; its first value is 0, so no
    // extrapolation before the first sample and none needed after the last.
    assert_eq!(
        vec_at(
            &db,
            "increase(kubevirt_vm_migration_failed_total[5m]) > 0",
            600
        ),
        vec![("{vm=\"b\"}".to_string(), 1.0)]
    );
}

#[test]
fn seed_alert_apiserver_down() {
    let mut db = MemoryQueryable::new();
    db.add(
        l(&[
            ("__name__", "up"),
            ("job", "kubernetes-apiservers"),
            ("instance", "10.0.0.1:6443"),
        ]),
        s(&[(0, 0.0)]),
    );
    db.add(
        l(&[
            ("__name__", "up"),
            ("job", "kubernetes-apiservers"),
            ("instance", "10.0.0.2:6443"),
        ]),
        s(&[(0, 1.0)]),
    );
    db.add(
        l(&[("__name__", "up"), ("job", "node"), ("instance", "n1")]),
        s(&[(0, 0.0)]),
    );
    assert_eq!(
        vec_at(&db, "up{job=\"kubernetes-apiservers\"} == 0", 60),
        vec![(
            "up{instance=\"10.0.0.1:6443\", job=\"kubernetes-apiservers\"}".to_string(),
            0.0
        )]
    );
}

#[test]
fn functions_over_vectors_and_ranges() {
    let mut db = counter_db();
    db.add(
        l(&[("__name__", "g"), ("k", "v")]),
        s(&[(0, -2.5), (30, 1.0), (60, 4.0)]),
    );
    db.add(l(&[("__name__", "h"), ("src", "a-b")]), s(&[(0, 1.0)]));
    let v = |q: &str| one(&db, q, 60).1;
    assert_eq!(v("abs(g offset 60s)"), 2.5);
    assert_eq!(v("ceil(g offset 60s)"), -2.0);
    assert_eq!(v("floor(g offset 60s)"), -3.0);
    assert_eq!(v("round(g offset 60s)"), -2.0);
    assert_eq!(v("round(g, 5)"), 5.0);
    assert_eq!(v("sqrt(g)"), 2.0);
    assert_eq!(v("sgn(g offset 60s)"), -1.0);
    assert_eq!(v("clamp(g, 0, 3)"), 3.0);
    assert_eq!(v("clamp_min(g offset 60s, 0)"), 0.0);
    assert_eq!(v("clamp_max(g, 1)"), 1.0);
    assert_eq!(v("log2(g)"), 2.0);
    assert_eq!(v("timestamp(g)"), 60.0);
    assert_eq!(scalar_at(&db, "time()", 60), 60.0);
    assert_eq!(scalar_at(&db, "scalar(g)", 60), 4.0);
    assert_eq!(v("vector(3)"), 3.0);
    assert_eq!(v("absent(nope{a=\"b\"})"), 1.0);
    assert_eq!(one(&db, "absent(nope{a=\"b\"})", 60).0, "{a=\"b\"}");
    assert_eq!(vec_at(&db, "absent(g)", 60), vec![]);
    assert_eq!(v("avg_over_time(g[1m])"), 2.5);
    assert_eq!(v("min_over_time(g[2m])"), -2.5);
    assert_eq!(v("max_over_time(g[2m])"), 4.0);
    assert_eq!(v("sum_over_time(g[2m])"), 2.5);
    assert_eq!(v("count_over_time(g[2m])"), 3.0);
    assert_eq!(
        one(&db, "last_over_time(g[2m])", 60),
        ("g{k=\"v\"}".to_string(), 4.0)
    );
    assert_eq!(v("changes(g[2m])"), 2.0);
    assert_eq!(v("resets(c{job=\"reset\"}[2m])"), 1.0);
    assert_close(v("deriv(c{job=\"a\"}[2m])"), 10.0 / 15.0);
    assert_close(v("predict_linear(c{job=\"a\"}[2m], 60)"), 80.0);
    assert_eq!(v("quantile_over_time(0.5, g[2m])"), 1.0);
    assert_close(v("stdvar_over_time(c{job=\"a\"}[2m])"), 200.0);
    assert_eq!(v("present_over_time(g[2m])"), 1.0);
    assert_eq!(v("absent_over_time(nope[2m])"), 1.0);
    assert_eq!(
        one(
            &db,
            "label_replace(h, \"dst\", \"$1\", \"src\", \"(.*)-.*\")",
            60
        )
        .0,
        "h{dst=\"a\", src=\"a-b\"}"
    );
    assert_eq!(
        one(&db, "label_join(h, \"dst\", \"+\", \"src\", \"src\")", 60).0,
        "h{dst=\"a-b+a-b\", src=\"a-b\"}"
    );
    assert_eq!(v("year(vector(0))"), 1970.0);
    assert_eq!(v("hour(vector(7200))"), 2.0);
    assert_eq!(
        vec_at(&db, "sort_desc(c)", 60)
            .into_iter()
            .map(|x| x.1)
            .collect::<Vec<_>>(),
        vec![40.0, 15.0]
    );
    assert_eq!(
        vec_at(&db, "sort(c)", 60)
            .into_iter()
            .map(|x| x.1)
            .collect::<Vec<_>>(),
        vec![15.0, 40.0]
    );
    // Subquery: max of the 30s-step rate over the last minute.
    assert_close(
        v("max_over_time(rate(c{job=\"a\"}[1m])[1m:30s])"),
        40.0 / 60.0,
    );
    assert_eq!(v("count_over_time(g[1m:15s])"), 4.0);
}

#[test]
fn histogram_quantile_classic() {
    let mut db = MemoryQueryable::new();
    for (le, c) in [("0.1", 10.0), ("0.5", 30.0), ("1", 40.0), ("+Inf", 40.0)] {
        db.add(
            l(&[("__name__", "lat_bucket"), ("le", le), ("job", "a")]),
            s(&[(0, c)]),
        );
    }
    let r = one(&db, "histogram_quantile(0.5, lat_bucket)", 10);
    assert_eq!(r.0, "{job=\"a\"}");
    assert_close(r.1, 0.3);
    // histogram_quantiles: one series per quantile, labelled with it.
    let mut v = vec_at(&db, "histogram_quantiles(lat_bucket, \"q\", 0.5, 1)", 10);
    v.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(v.len(), 2);
    assert_eq!(v[0].0, "{job=\"a\", q=\"0.5\"}");
    assert_close(v[0].1, 0.3);
    assert_eq!(v[1].0, "{job=\"a\", q=\"1.0\"}");
    assert_close(v[1].1, 1.0);
    // Overwriting a label that tells the histograms apart collides.
    db.add(
        l(&[("__name__", "lat_bucket"), ("le", "+Inf"), ("job", "b")]),
        s(&[(0, 1.0)]),
    );
    assert!(engine()
        .instant_query(&db, "histogram_quantiles(lat_bucket, \"job\", 0.5)", 10_000)
        .is_err());
}

#[test]
fn range_queries() {
    let db = counter_db();
    match engine().range_query(&db, "c{job=\"a\"}", 0, 60_000, 15_000) {
        Ok(QueryValue::Matrix(m)) => {
            assert_eq!(m.len(), 1);
            assert_eq!(
                m[0].samples,
                s(&[(0, 0.0), (15, 10.0), (30, 20.0), (45, 30.0), (60, 40.0)])
            );
        }
        other => panic!("{other:?}"),
    }
    match engine().range_query(&db, "1 + 1", 0, 20_000, 10_000) {
        Ok(QueryValue::Matrix(m)) => {
            assert_eq!(m.len(), 1);
            assert!(m[0].labels.is_empty());
            assert_eq!(m[0].samples.len(), 3);
        }
        other => panic!("{other:?}"),
    }
    // Sorted by labels.
    match engine().range_query(&db, "c", 0, 60_000, 30_000) {
        Ok(QueryValue::Matrix(m)) => {
            let names: Vec<String> = m.iter().map(|s| s.labels.to_string()).collect();
            assert_eq!(names, vec!["c{job=\"a\"}", "c{job=\"reset\"}"]);
        }
        other => panic!("{other:?}"),
    }
    let e = engine()
        .range_query(&db, "c", 0, 11_000_000, 1_000)
        .unwrap_err();
    assert_eq!(e.error_type(), "bad_data");
    assert_eq!(
        e.to_string(),
        "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"
    );
    assert!(engine().range_query(&db, "c", 0, 10_999_000, 1_000).is_ok());
    assert_eq!(
        engine()
            .range_query(&db, "c[1m]", 0, 60_000, 1_000)
            .unwrap_err()
            .error_type(),
        "bad_data"
    );
    assert_eq!(
        engine()
            .range_query(&db, "c", 0, 60_000, 0)
            .unwrap_err()
            .error_type(),
        "bad_data"
    );
}

#[test]
fn limits_and_errors() {
    let db = counter_db();
    let small = Engine::new(EngineOptions {
        max_samples: 3,
        ..EngineOptions::default()
    });
    let e = small.instant_query(&db, "c", 60_000).unwrap_err();
    assert_eq!(e.error_type(), "execution");
    assert_eq!(
        e.to_string(),
        "query processing would load too many samples into memory in query execution"
    );
    let slow = Engine::new(EngineOptions {
        timeout: Duration::ZERO,
        ..EngineOptions::default()
    });
    std::thread::sleep(Duration::from_millis(2));
    let e = slow.range_query(&db, "c", 0, 60_000, 1_000).unwrap_err();
    assert_eq!(e.error_type(), "timeout");
    let e = err_at(&db, "sum(", 0);
    assert_eq!(e.error_type(), "bad_data");
    let e = err_at(&db, "label_replace(c, \"job\", \"x\", \"job\", \".*\")", 60);
    assert_eq!(
        e.to_string(),
        "vector cannot contain metrics with the same labelset"
    );
}

#[test]
fn series_selectors() {
    let m = parse_series_selector("up{job=\"x\"}").unwrap();
    assert_eq!(m.len(), 2);
    assert_eq!(m[0].name, "__name__");
    assert_eq!(m[1].op, MatchOp::Equal);
    let m = parse_series_selector("{__name__=~\"a.*\"}").unwrap();
    assert_eq!(m[0].op, MatchOp::RegexMatch);
    for bad in ["{job=~\".*\"}", "{job=\"\"}", "up +", "rate(x[5m])"] {
        let e = parse_series_selector(bad).unwrap_err();
        assert_eq!(e.error_type(), "bad_data", "{bad}");
    }
    assert_eq!(
        parse_series_selector("{job=~\".*\"}")
            .unwrap_err()
            .to_string(),
        "match[] must contain at least one non-empty matcher"
    );
}

#[test]
fn extreme_times_and_ranges_do_not_panic() {
    let db = counter_db();
    for q in [
        "c offset 1000y",
        "c offset -1000y",
        "c @ -100000000000",
        "c @ 100000000000",
        "rate(c[1000y])",
        "max_over_time(c[1000y:1y])",
        "c[1ms]",
    ] {
        assert!(engine().instant_query(&db, q, 60_000).is_ok(), "{q}");
    }
    assert!(engine().instant_query(&db, "c", i64::MAX).is_ok());
    assert!(engine().instant_query(&db, "c", i64::MIN).is_ok());
    assert!(engine()
        .range_query(&db, "c", i64::MAX - 10, i64::MAX, 1)
        .is_ok());
    // A subquery producing too many points hits the sample limit.
    let small = Engine::new(EngineOptions {
        max_samples: 1_000,
        ..EngineOptions::default()
    });
    let e = small
        .instant_query(&db, "count_over_time(vector(1)[1d:1s])", 60_000)
        .unwrap_err();
    assert_eq!(e.error_type(), "execution");
}

#[test]
fn range_query_steps_match_instant_queries() {
    // Range evaluation reuses cursors and subquery results across steps;
    // every step must equal the instant query at that time.
    let mut db = counter_db();
    db.add(
        l(&[("__name__", "g")]),
        s(&[(0, 1.0), (20, 5.0), (40, STALE_NAN), (70, 2.0)]),
    );
    for q in [
        "c",
        "g",
        "c offset 20s",
        "rate(c[30s])",
        "max_over_time(c[45s:15s])",
        "max_over_time(rate(c[30s])[1m:10s] offset 10s)",
        "c @ 30",
        "sum_over_time(g[25s])",
        "g - g offset 10s",
        "max_over_time(sum_over_time(c[30s:10s])[1m:15s])",
        "min_over_time(rate(c[30s:5s] @ 60)[40s:20s] offset -5s)",
    ] {
        let m = match engine().range_query(&db, q, -10_000, 120_000, 5_000) {
            Ok(QueryValue::Matrix(m)) => m,
            other => panic!("{q}: {other:?}"),
        };
        for t in (-10..=120).step_by(5) {
            let mut want = vec_at(&db, q, t);
            want.sort_by(|a, b| a.0.cmp(&b.0));
            let got: Vec<(String, f64)> = m
                .iter()
                .filter_map(|s| {
                    let p = s.samples.iter().find(|p| p.timestamp_ms == t * 1000)?;
                    Some((s.labels.to_string(), p.value))
                })
                .collect();
            assert_eq!(got, want, "{q} at {t}s");
        }
    }
}

#[test]
fn delayed_name_removal() {
    let mut db = MemoryQueryable::new();
    db.add(
        l(&[("__name__", "a"), ("env", "1")]),
        s(&[(0, 1.0), (60, 2.0)]),
    );
    db.add(
        l(&[("__name__", "b"), ("env", "1")]),
        s(&[(0, 1.0), (60, 3.0)]),
    );
    // Same labels once the names are dropped: an error...
    let e = err_at(&db, "rate({env=\"1\"}[2m])", 60);
    assert_eq!(
        e.to_string(),
        "vector cannot contain metrics with the same labelset"
    );
    // ...unless a label function keeps them apart first.
    assert_eq!(
        vec_at(
            &db,
            "label_replace(rate({env=\"1\"}[2m]), \"n\", \"$1\", \"__name__\", \"(.*)\")",
            60
        )
        .into_iter()
        .map(|x| x.0)
        .collect::<Vec<_>>(),
        vec!["{env=\"1\", n=\"a\"}", "{env=\"1\", n=\"b\"}"]
    );
    // Comparisons without bool keep the name.
    assert_eq!(one(&db, "a > 0", 60).0, "a{env=\"1\"}");
}

#[test]
fn annotations_as_prometheus_words_them() {
    let mut db = MemoryQueryable::new();
    db.add(
        l(&[("__name__", "g")]),
        s(&[(0, 1.0), (15, 2.0), (30, 3.0)]),
    );
    db.add(
        l(&[("__name__", "c_total")]),
        s(&[(0, 1.0), (15, 2.0), (30, 3.0)]),
    );
    let infos = |q: &str| match engine().instant_query_annotated(&db, q, 30_000) {
        Ok((_, a)) => a.infos,
        Err(e) => panic!("{q}: {e}"),
    };
    assert_eq!(
        infos("rate(g[1m])"),
        vec!["PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"g\""]
    );
    assert!(infos("rate(c_total[1m])").is_empty());
    match engine().range_query_annotated(&db, "sort(limit_ratio(1.5, g))", 0, 30_000, 15_000) {
        Ok((_, a)) => assert_eq!(
            a.warnings,
            vec![
                "PromQL warning: sort is ineffective for range queries since results are always ordered by labels",
                "PromQL warning: ratio value should be between -1 and 1, got 1.5, capping to 1",
            ]
        ),
        Err(e) => panic!("{e}"),
    }
}

/// A range query big enough to be spread over threads gives exactly what
/// instant queries at each of its steps give (the sequential path), for
/// aggregations, matching, functions and subqueries, with series that
/// start, stop and go stale inside the range.
#[test]
fn parallel_range_steps_match_instant_queries() {
    let mut db = MemoryQueryable::new();
    for i in 0..250i64 {
        let cluster = format!("c{}", i % 3);
        let vm = format!("vm-{i}");
        // Series 7, 14, ... start late; 11, 22, ... stop with a marker.
        let from = if i % 7 == 0 { 800 } else { 0 };
        let to = if i % 11 == 0 { 1_200 } else { 1_600 };
        let samples = (from..to).map(|k| {
            let v = if k == to - 1 && i % 11 == 0 {
                STALE_NAN
            } else {
                (k * (i % 5 + 1)) as f64 + 0.5 * (i as f64)
            };
            Sample::new(k * 1000 + i, v)
        });
        db.add(
            l(&[
                ("__name__", "cpu_total"),
                ("cluster", &cluster),
                ("vm", &vm),
            ]),
            samples,
        );
        db.add(
            l(&[("__name__", "mem"), ("cluster", &cluster), ("vm", &vm)]),
            (0..1_600).map(|k| Sample::new(k * 1000 + 3, ((k + i) % 17) as f64)),
        );
    }
    db.add(
        l(&[
            ("__name__", "cluster_info"),
            ("cluster", "c1"),
            ("region", "eu"),
        ]),
        (0..1_600).map(|k| Sample::new(k * 1000, 1.0)),
    );
    let queries = [
        "sum by (cluster) (rate(cpu_total[1m]))",
        "topk(3, mem)",
        "mem / on (cluster) group_left (region) cluster_info",
        "cpu_total > 1000",
        "count(mem > 8) or vector(0)",
        "max_over_time(rate(cpu_total[30s])[2m:10s])",
        "time() - timestamp(cpu_total)",
    ];
    let (start, end, step) = (60_000, 1_590_000, 10_000);
    let e = engine();
    for q in queries {
        let got = match e.range_query(&db, q, start, end, step) {
            Ok(QueryValue::Matrix(m)) => m,
            other => panic!("{q}: {other:?}"),
        };
        let mut want: std::collections::BTreeMap<Labels, Vec<Sample>> = Default::default();
        let mut t = start;
        while t <= end {
            match e.instant_query(&db, q, t) {
                Ok(QueryValue::Vector(v)) => {
                    for s in v {
                        want.entry(s.labels)
                            .or_default()
                            .push(Sample::new(t, s.value));
                    }
                }
                other => panic!("{q} at {t}: {other:?}"),
            }
            t += step;
        }
        let got: std::collections::BTreeMap<Labels, Vec<Sample>> =
            got.into_iter().map(|s| (s.labels, s.samples)).collect();
        assert!(!want.is_empty(), "{q}: no data");
        assert_eq!(got, want, "{q}");
    }
    assert!(
        eval_threads(250 * 1_600, 154) > 1
            || std::thread::available_parallelism().map_or(1, usize::from) == 1,
        "the test's queries take the parallel path"
    );
}
