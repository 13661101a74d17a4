//! Differential test against a real Prometheus (Debian's 2.42): the same
//! fleet data is remote-written into Prometheus and into the hub, then
//! dashboard- and alert-style queries (instant and range) must give the
//! same labels and values within 1e-9 relative.
//!
//! Sample timestamps carry scrape-like jitter (a per-target offset plus a
//! small wobble, never on a whole second), and every evaluation time is a
//! whole second, so no sample sits on the edge of a range window: the one
//! place where Prometheus 2.x (closed windows `[t-r, t]`) and Prometheus 3
//! (left-open `(t-r, t]`, as the hub does) disagree cannot decide a result.
//! Subqueries produce points on multiples of their step, so those edges
//! would coincide; the subquery cases below use instant evaluation times
//! off the minute, which is the remaining 2.x-versus-3 rule this test
//! steers around on purpose.

use fleetwatch_model::remote_write::{encode_write_request, SeriesSamples};
use fleetwatch_model::{is_stale_nan, Labels, Sample, STALE_NAN};
use serde_json::Value;

use super::federate::{now_ms, remote_write};
use super::support::*;

/// Scrape interval of the generated data.
const INTERVAL_MS: i64 = 15_000;
/// Scrapes per target: 40 minutes.
const SCRAPES: i64 = 160;

/// A series' value at scrape `k`, or `None` when it has no sample there.
type ValueAt = Box<dyn Fn(i64) -> Option<f64>>;

/// One scrape target of the generated fleet: its series are sampled at the
/// same (jittered) times, as one scrape would.
struct Target {
    offset_ms: i64,
    series: Vec<(Labels, ValueAt)>,
}

/// A deterministic pseudo-random number in `0..modulus` from two seeds.
fn mix(a: i64, b: i64, modulus: i64) -> i64 {
    let x = (a as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add((b as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F));
    ((x ^ (x >> 29)) % modulus as u64) as i64
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

/// A counter that grows by a pseudo-random step per scrape, from `seed`.
fn counter(seed: i64, max_step: i64, scale: f64) -> impl Fn(i64) -> f64 {
    move |k| (0..=k).map(|i| mix(seed, i, max_step) as f64 * scale).sum()
}

/// The fleet: three clusters of two nodes and four VMs each, plus one
/// API server target per cluster (the one of `c3` goes down half-way).
fn fleet() -> Vec<Target> {
    let mut targets = Vec::new();
    for (ci, cluster) in ["c1", "c2", "c3"].into_iter().enumerate() {
        let ci = ci as i64;
        for node_i in 0..2i64 {
            let node = format!("{cluster}-node-{node_i}");
            let kv_instance = format!("{node}:8443");
            let ne_instance = format!("{node}:9100");
            let mut kv = Target {
                offset_ms: 1 + mix(ci, node_i, 14_000),
                series: Vec::new(),
            };
            kv.series.push((
                labels(&[
                    ("__name__", "up"),
                    ("cluster", cluster),
                    ("job", "kubevirt"),
                    ("instance", &kv_instance),
                ]),
                Box::new(|_| Some(1.0)),
            ));
            for vm_i in (0..4i64).filter(|v| v % 2 == node_i) {
                let name = format!("vm-{vm_i}");
                let namespace = format!("ns-{}", vm_i / 2);
                let seed = ci * 100 + vm_i;
                let base = [
                    ("cluster", cluster),
                    ("job", "kubevirt"),
                    ("instance", kv_instance.as_str()),
                    ("node", node.as_str()),
                    ("namespace", namespace.as_str()),
                    ("name", name.as_str()),
                ];
                let with = |name: &str, extra: &[(&str, &str)]| {
                    let mut l: Vec<(&str, &str)> = base.to_vec();
                    l.push(("__name__", name));
                    l.extend_from_slice(extra);
                    labels(&l)
                };
                let available = if vm_i % 2 == 0 { 4.0 } else { 8.0 } * 1024.0 * 1024.0 * 1024.0;
                let phase = seed as f64 * 0.7;
                // c2's vm-3 is deleted at 25 minutes: a staleness marker,
                // then nothing; its CPU counter simply stops at 29 minutes.
                let deleted = cluster == "c2" && vm_i == 3;
                kv.series.push((
                    with("kubevirt_vm_memory_usage_bytes", &[]),
                    Box::new(move |k| match k {
                        100 if deleted => Some(STALE_NAN),
                        k if deleted && k > 100 => None,
                        k => Some(
                            (available * (0.6 + 0.38 * ((k as f64) / 17.0 + phase).sin())).round()
                                + 0.25 * mix(seed, k, 7) as f64,
                        ),
                    }),
                ));
                kv.series.push((
                    with("kubevirt_vm_memory_available_bytes", &[]),
                    Box::new(move |_| Some(available)),
                ));
                let cpu = counter(seed, 40, 0.375);
                // cluster c1's vm-1 restarts at scrape 70: its counter resets.
                let resets = cluster == "c1" && vm_i == 1;
                kv.series.push((
                    with("kubevirt_vmi_cpu_usage_seconds_total", &[]),
                    Box::new(move |k| match k {
                        k if deleted && k > 116 => None,
                        k if resets && k >= 70 => Some(cpu(k) - cpu(69)),
                        k => Some(cpu(k)),
                    }),
                ));
                for (ii, iface) in ["default", "net1"].into_iter().enumerate() {
                    let rx = counter(seed * 3 + ii as i64, 5_000_000, 1.0);
                    kv.series.push((
                        with(
                            "kubevirt_vmi_network_receive_bytes_total",
                            &[("interface", iface)],
                        ),
                        Box::new(move |k| Some(rx(k))),
                    ));
                }
                // Two VMs fail migrations: one at 12 minutes, one at 33.
                let fail_at = match (cluster, vm_i) {
                    ("c1", 0) => Some(48),
                    ("c3", 2) => Some(132),
                    _ => None,
                };
                kv.series.push((
                    with("kubevirt_vm_migration_failed_total", &[]),
                    Box::new(move |k| Some(fail_at.map_or(0.0, |f| (k >= f) as u8 as f64))),
                ));
                let os = if vm_i == 2 { "windows" } else { "fedora" };
                kv.series.push((
                    with("kubevirt_vmi_info", &[("phase", "running"), ("os", os)]),
                    Box::new(move |k| (!deleted || k < 100).then_some(1.0)),
                ));
            }
            targets.push(kv);

            let mut ne = Target {
                offset_ms: 1 + mix(ci + 10, node_i, 14_000),
                series: Vec::new(),
            };
            let ne_base = [
                ("cluster", cluster),
                ("job", "node-exporter"),
                ("instance", ne_instance.as_str()),
                ("node", node.as_str()),
            ];
            let ne_with = |name: &str, extra: &[(&str, &str)]| {
                let mut l: Vec<(&str, &str)> = ne_base.to_vec();
                l.push(("__name__", name));
                l.extend_from_slice(extra);
                labels(&l)
            };
            for cpu_i in 0..2i64 {
                let cpu_s = cpu_i.to_string();
                let seed = ci * 1000 + node_i * 10 + cpu_i;
                for (mode, lo) in [("idle", 6), ("user", 0), ("system", 0)] {
                    let busy = counter(seed + lo, 8, 0.5);
                    let idle = mode == "idle";
                    ne.series.push((
                        ne_with("node_cpu_seconds_total", &[("cpu", &cpu_s), ("mode", mode)]),
                        Box::new(move |k| {
                            Some(if idle {
                                15.0 * (k + 1) as f64 - busy(k) * 0.5
                            } else {
                                busy(k) * 0.25
                            })
                        }),
                    ));
                }
            }
            let total = 64.0 * 1024.0 * 1024.0 * 1024.0;
            let seed = ci * 10 + node_i;
            ne.series.push((
                ne_with("node_memory_MemTotal_bytes", &[]),
                Box::new(move |_| Some(total)),
            ));
            ne.series.push((
                ne_with("node_memory_MemAvailable_bytes", &[]),
                Box::new(move |k| Some(total * 0.3 + (mix(seed, k, 1000) as f64) * 1.0e7)),
            ));
            targets.push(ne);
        }

        let mut api = Target {
            offset_ms: 1 + mix(ci + 20, 0, 14_000),
            series: Vec::new(),
        };
        let down_from = (cluster == "c3").then_some(80);
        api.series.push((
            labels(&[
                ("__name__", "up"),
                ("cluster", cluster),
                ("job", "kubernetes-apiservers"),
                ("instance", "apiserver:6443"),
            ]),
            Box::new(move |k| {
                Some(if down_from.is_some_and(|d| k >= d) {
                    0.0
                } else {
                    1.0
                })
            }),
        ));
        // A classic histogram of request durations, per verb.
        let bounds = ["0.05", "0.1", "0.25", "0.5", "1", "+Inf"];
        for (vi, verb) in ["GET", "LIST"].into_iter().enumerate() {
            let seed = ci * 50 + vi as i64;
            let per_bucket: Vec<_> = (0..bounds.len() as i64)
                .map(|b| counter(seed * 7 + b, 30, 1.0))
                .collect();
            let per_bucket = std::rc::Rc::new(per_bucket);
            let api_labels = |name: &str, extra: &[(&str, &str)]| {
                let mut l = vec![
                    ("__name__", name),
                    ("cluster", cluster),
                    ("job", "kubernetes-apiservers"),
                    ("instance", "apiserver:6443"),
                    ("verb", verb),
                ];
                l.extend_from_slice(extra);
                labels(&l)
            };
            for (b, le) in bounds.iter().enumerate() {
                let pb = per_bucket.clone();
                api.series.push((
                    api_labels("apiserver_request_duration_seconds_bucket", &[("le", le)]),
                    Box::new(move |k| Some((0..=b).map(|i| pb[i](k)).sum())),
                ));
            }
            let pb = per_bucket.clone();
            api.series.push((
                api_labels("apiserver_request_duration_seconds_count", &[]),
                Box::new(move |k| Some(pb.iter().map(|f| f(k)).sum())),
            ));
            let sum = counter(seed + 3, 1000, 0.013);
            api.series.push((
                api_labels("apiserver_request_duration_seconds_sum", &[]),
                Box::new(move |k| Some(sum(k))),
            ));
        }
        targets.push(api);
    }
    targets
}

/// The fleet as remote-write series starting at `base` (ms).
pub fn fleet_samples(base: i64) -> Vec<SeriesSamples> {
    let mut out = Vec::new();
    for target in fleet() {
        let times: Vec<i64> = (0..SCRAPES)
            .map(|k| {
                let t = base + k * INTERVAL_MS + target.offset_ms + mix(target.offset_ms, k, 40);
                if t % 1000 == 0 {
                    t + 1
                } else {
                    t
                }
            })
            .collect();
        for (labels, value) in &target.series {
            let samples = times
                .iter()
                .enumerate()
                .filter_map(|(k, &t)| value(k as i64).map(|v| Sample::new(t, v)))
                .collect();
            out.push(SeriesSamples {
                labels: labels.clone(),
                samples,
            });
        }
    }
    out
}

/// Queries typical of the fleet dashboards and the seed's alerts. Each is
/// run as instant queries and, unless it yields a range vector, as a range
/// query too.
const QUERIES: &[&str] = &[
    "up",
    "up{job=\"kubernetes-apiservers\"} == 0",
    "sum by (cluster) (up)",
    "kubevirt_vm_memory_usage_bytes",
    "kubevirt_vm_memory_usage_bytes{cluster=\"c1\", namespace=~\"ns-.*\"}",
    "kubevirt_vm_memory_usage_bytes{name!~\"vm-[01]\"}",
    "kubevirt_vm_memory_usage_bytes / kubevirt_vm_memory_available_bytes",
    "kubevirt_vm_memory_usage_bytes / kubevirt_vm_memory_available_bytes > 0.9",
    "kubevirt_vm_memory_usage_bytes / kubevirt_vm_memory_available_bytes > bool 0.9",
    "sort_desc(kubevirt_vm_memory_usage_bytes / kubevirt_vm_memory_available_bytes > 0.8)",
    "count(kubevirt_vm_memory_usage_bytes / kubevirt_vm_memory_available_bytes > 0.9) or vector(0)",
    "max by (cluster) (kubevirt_vm_memory_usage_bytes / kubevirt_vm_memory_available_bytes)",
    "sum by (cluster) (kubevirt_vm_memory_usage_bytes)",
    "sum by (cluster) (kubevirt_vm_memory_available_bytes)",
    "count by (cluster) (kubevirt_vm_memory_usage_bytes)",
    "count(count by (cluster) (kubevirt_vm_memory_usage_bytes))",
    "avg by (cluster, namespace) (kubevirt_vm_memory_usage_bytes)",
    "min by (cluster) (kubevirt_vm_memory_usage_bytes)",
    "stddev by (cluster) (kubevirt_vm_memory_usage_bytes)",
    "stdvar(kubevirt_vm_memory_usage_bytes)",
    "quantile by (cluster) (0.9, kubevirt_vm_memory_usage_bytes)",
    "topk(3, kubevirt_vm_memory_usage_bytes)",
    "bottomk(2, kubevirt_vm_memory_usage_bytes)",
    "count_values(\"avail\", kubevirt_vm_memory_available_bytes)",
    "group by (cluster, node) (kubevirt_vmi_info)",
    "count by (phase, os) (kubevirt_vmi_info)",
    "count by (node) (kubevirt_vmi_info{cluster=\"c2\"})",
    "rate(kubevirt_vmi_cpu_usage_seconds_total[5m])",
    "irate(kubevirt_vmi_cpu_usage_seconds_total[5m])",
    "increase(kubevirt_vmi_cpu_usage_seconds_total[10m])",
    "sum by (cluster) (rate(kubevirt_vmi_cpu_usage_seconds_total[5m]))",
    "resets(kubevirt_vmi_cpu_usage_seconds_total[10m])",
    "sum by (cluster) (rate(kubevirt_vmi_network_receive_bytes_total[5m]))",
    "topk(5, sum by (cluster, namespace, name) (rate(kubevirt_vmi_network_receive_bytes_total[5m])))",
    "rate(kubevirt_vmi_network_receive_bytes_total{interface=\"net1\"}[2m])",
    "increase(kubevirt_vm_migration_failed_total[5m]) > 0",
    "sum by (cluster) (increase(kubevirt_vm_migration_failed_total[10m]))",
    "changes(kubevirt_vm_migration_failed_total[10m])",
    "1 - avg by (cluster) (rate(node_cpu_seconds_total{mode=\"idle\"}[5m]))",
    "1 - avg by (node) (rate(node_cpu_seconds_total{cluster=\"c1\", mode=\"idle\"}[5m]))",
    "sum without (cpu) (rate(node_cpu_seconds_total[5m]))",
    "node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes",
    "100 * (1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes)",
    "avg_over_time(kubevirt_vm_memory_usage_bytes[10m])",
    "max_over_time(kubevirt_vm_memory_usage_bytes[10m])",
    "min_over_time(kubevirt_vm_memory_usage_bytes[5m])",
    "quantile_over_time(0.95, kubevirt_vm_memory_usage_bytes[10m])",
    "stddev_over_time(kubevirt_vm_memory_usage_bytes[10m])",
    "count_over_time(kubevirt_vm_memory_usage_bytes[5m])",
    "last_over_time(kubevirt_vm_memory_usage_bytes[5m])",
    "deriv(kubevirt_vm_memory_usage_bytes[10m])",
    "predict_linear(kubevirt_vm_memory_usage_bytes[10m], 3600)",
    "delta(kubevirt_vm_memory_usage_bytes[5m])",
    "histogram_quantile(0.99, sum by (cluster, le) (rate(apiserver_request_duration_seconds_bucket[5m])))",
    "histogram_quantile(0.5, rate(apiserver_request_duration_seconds_bucket{verb=\"GET\"}[5m]))",
    "rate(apiserver_request_duration_seconds_sum[5m]) / rate(apiserver_request_duration_seconds_count[5m])",
    "kubevirt_vm_memory_usage_bytes * on (cluster, namespace, name) group_left (os) kubevirt_vmi_info",
    "kubevirt_vm_memory_usage_bytes / ignoring (namespace, name, node, instance, job) group_left sum by (cluster) (kubevirt_vm_memory_usage_bytes)",
    "up{job=\"kubevirt\"} and on (cluster) (sum by (cluster) (up{job=\"kubernetes-apiservers\"}) > 0)",
    "kubevirt_vm_memory_usage_bytes unless on (cluster, name) (kubevirt_vm_memory_usage_bytes / kubevirt_vm_memory_available_bytes > 0.9)",
    "up{job=\"kubernetes-apiservers\"} == 0 or on (cluster) up{job=\"kubevirt\"}",
    "label_replace(kubevirt_vm_memory_usage_bytes, \"vm\", \"$1\", \"name\", \"vm-(.*)\")",
    "label_join(kubevirt_vmi_info, \"where\", \"/\", \"cluster\", \"node\")",
    "absent(kubevirt_vm_memory_usage_bytes{cluster=\"nope\"})",
    "absent_over_time(up{cluster=\"nope\"}[5m])",
    "kubevirt_vm_memory_usage_bytes offset 5m",
    "clamp_max(kubevirt_vm_memory_usage_bytes / kubevirt_vm_memory_available_bytes, 0.8)",
    "round(kubevirt_vm_memory_usage_bytes / 1048576, 0.5)",
    "timestamp(up{job=\"kubevirt\"})",
    "scalar(sum(up{job=\"kubevirt\"})) * 2",
    "sum(kubevirt_vm_memory_usage_bytes) / 1024 ^ 3",
    "log2(kubevirt_vm_memory_available_bytes)",
    "count by (cluster) (kubevirt_vmi_info) - count by (cluster) (kubevirt_vm_memory_usage_bytes)",
    "kubevirt_vm_memory_usage_bytes{cluster=\"c1\"}[2m]",
    "max_over_time(rate(kubevirt_vmi_cpu_usage_seconds_total[2m])[10m:1m])",
    "avg_over_time(sum by (cluster) (up)[15m:30s])",
];

/// Queries whose subquery points fall on window edges at whole-minute
/// evaluation times: instant queries only, off the minute (see the module
/// comment).
fn is_subquery(q: &str) -> bool {
    q.contains(":1m]") || q.contains(":30s]")
}

/// One result as (labels, points) with points as (time, value), sorted by
/// labels.
type Normal = Vec<(LabelMap, Vec<(f64, f64)>)>;

fn normalise(data: &Value, q: &str) -> Normal {
    let point = |p: &Value| -> (f64, f64) {
        let t = p[0].as_f64().unwrap_or_else(|| panic!("{q}: time in {p}"));
        let v = p[1]
            .as_str()
            .and_then(parse_float)
            .unwrap_or_else(|| panic!("{q}: value in {p}"));
        (t, v)
    };
    let mut out: Normal = match data["resultType"].as_str() {
        Some("scalar") => vec![(LabelMap::new(), vec![point(&data["result"])])],
        Some("vector") | Some("matrix") => data["result"]
            .as_array()
            .unwrap_or_else(|| panic!("{q}: result is not a list: {data}"))
            .iter()
            .map(|s| {
                let points = match s["values"].as_array() {
                    Some(values) => values.iter().map(point).collect(),
                    None => vec![point(&s["value"])],
                };
                (metric(s), points)
            })
            .collect(),
        other => panic!("{q}: unexpected result type {other:?}: {data}"),
    };
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Why two results differ, or `None` when they agree: labels exactly,
/// timestamps exactly, values within 1e-9 relative (NaN equals NaN).
fn difference(prom: &Normal, hub: &Normal) -> Option<String> {
    let prom_labels: Vec<_> = prom.iter().map(|s| &s.0).collect();
    let hub_labels: Vec<_> = hub.iter().map(|s| &s.0).collect();
    if prom_labels != hub_labels {
        return Some(format!(
            "series differ\n  prometheus: {prom_labels:?}\n  hub:        {hub_labels:?}"
        ));
    }
    for ((labels, p), (_, h)) in prom.iter().zip(hub) {
        if p.len() != h.len() {
            return Some(format!("{labels:?}: {} points vs {}", p.len(), h.len()));
        }
        for ((tp, vp), (th, vh)) in p.iter().zip(h) {
            if tp != th {
                return Some(format!("{labels:?}: time {tp} vs {th}"));
            }
            let same = (vp.is_nan() && vh.is_nan())
                || vp == vh
                || (vp - vh).abs() <= 1e-9 * vp.abs().max(vh.abs());
            if !same {
                return Some(format!("{labels:?} at {tp}: {vp} vs {vh}"));
            }
        }
    }
    None
}

fn api(base: &str, path: &str, form: &[(&str, String)]) -> Value {
    let body: Value = http()
        .post(format!("http://{base}{path}"))
        .form(form)
        .send()
        .and_then(|r| r.json())
        .unwrap_or_else(|e| panic!("{path} {form:?} against {base}: {e}"));
    assert_eq!(body["status"], "success", "{form:?} against {base}: {body}");
    body["data"].clone()
}

#[test]
fn dashboard_and_alert_queries_match_prometheus() {
    let Some(prometheus) = peer("prometheus") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let hub = start_hub(&tmp.path().join("hub"), tmp.path(), &[]);
    let (mut prom, prom_addr) = start_prometheus(
        &prometheus,
        "global:\n  scrape_interval: 1m\nscrape_configs: []\n",
        tmp.path(),
        &["--web.enable-remote-write-receiver"],
    );

    let now = now_ms();
    let base = now - now % 60_000 - 42 * 60_000;
    let series = fleet_samples(base);
    let samples: usize = series
        .iter()
        .flat_map(|s| &s.samples)
        .filter(|s| !is_stale_nan(s.value))
        .count();
    eprintln!("writing {} series, {samples} samples", series.len());
    remote_write(&hub.addr, &series);
    let resp = http()
        .post(format!("http://{prom_addr}/api/v1/write"))
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(encode_write_request(&series))
        .send()
        .expect("remote write to prometheus");
    assert!(
        resp.status().is_success(),
        "prometheus refused the write: {}",
        resp.status()
    );

    // Both hold every sample written, bit for bit, before any query runs.
    let everything = [
        ("query", "{__name__!=\"\"}[45m]".to_string()),
        ("time", ((base + 41 * 60_000) / 1000).to_string()),
    ];
    let held = normalise(&api(&prom_addr, "/api/v1/query", &everything), "raw");
    let held_points: usize = held.iter().map(|s| s.1.len()).sum();
    assert_eq!(
        held_points, samples,
        "prometheus holds every sample written"
    );
    let at_hub = normalise(&api(&hub.addr, "/api/v1/query", &everything), "raw");
    assert_eq!(difference(&held, &at_hub), None, "raw samples");

    let secs = |ms: i64| (ms / 1000).to_string();
    // Whole-minute times for everything, off-the-minute ones for
    // subqueries; after the deletion at 25 min and inside the lookback
    // of the counter that stops at 29 min.
    let minute_times = [17, 26, 31, 39].map(|m| base + m * 60_000);
    let odd_times = [17, 31, 39].map(|m| base + m * 60_000 + 7_000);
    let (start, end) = (base + 10 * 60_000, base + 40 * 60_000);

    let mut failures = Vec::new();
    let mut checked = 0;
    for q in QUERIES {
        let times: &[i64] = if is_subquery(q) {
            &odd_times
        } else {
            &minute_times
        };
        for &t in times {
            let form = [("query", q.to_string()), ("time", secs(t))];
            let p = normalise(&api(&prom_addr, "/api/v1/query", &form), q);
            let h = normalise(&api(&hub.addr, "/api/v1/query", &form), q);
            checked += 1;
            if let Some(d) = difference(&p, &h) {
                failures.push(format!("instant {q} at {}: {d}", secs(t)));
            }
        }
        if q.ends_with("m]") || is_subquery(q) {
            continue;
        }
        for step in ["60", "15"] {
            let form = [
                ("query", q.to_string()),
                ("start", secs(start)),
                ("end", secs(end)),
                ("step", step.to_string()),
            ];
            let p = normalise(&api(&prom_addr, "/api/v1/query_range", &form), q);
            let h = normalise(&api(&hub.addr, "/api/v1/query_range", &form), q);
            checked += 1;
            if p.is_empty() && !q.starts_with("absent") {
                failures.push(format!(
                    "range {q}: prometheus returned nothing, test data too thin"
                ));
            }
            if let Some(d) = difference(&p, &h) {
                failures.push(format!("range {q} step {step}: {d}"));
            }
        }
    }
    eprintln!(
        "{} queries, {checked} comparisons, {} differences",
        QUERIES.len(),
        failures.len()
    );
    assert!(QUERIES.len() >= 60);
    assert!(
        failures.is_empty(),
        "differences from Prometheus:\n{}",
        failures.join("\n")
    );
    prom.assert_running();
}
