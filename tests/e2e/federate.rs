//! `/federate` and `/api/v1/read` against a real Prometheus (Debian's):
//! Prometheus federates from the hub with the seed's federation job
//! (`honor_labels`, `/federate`, `match[]`) and gets the hub's series with
//! their labels and values; Prometheus with the hub as `remote_read`
//! answers queries over data only the hub has, exactly as the hub does.

use std::collections::BTreeMap;
use std::time::Duration;

use fleetwatch_model::remote_write::{encode_write_request, SeriesSamples};
use fleetwatch_model::{Labels, Sample};
use serde_json::Value;

use super::support::*;

/// Remote-writes `series` to the hub at `addr`, panicking unless it is
/// accepted.
pub fn remote_write(addr: &str, series: &[SeriesSamples]) {
    let resp = http()
        .post(format!("http://{addr}/api/v1/write"))
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(encode_write_request(series))
        .send()
        .expect("remote write to hub");
    let status = resp.status();
    assert!(
        status.is_success(),
        "remote write refused: {status} {}",
        resp.text().unwrap_or_default()
    );
}

/// The current time in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// An instant vector result as labels -> value bits.
fn by_labels(result: &[Value]) -> BTreeMap<LabelMap, u64> {
    result
        .iter()
        .map(|s| (metric(s), value(s).to_bits()))
        .collect()
}

#[test]
fn prometheus_federates_from_hub_with_honor_labels() {
    let Some(prometheus) = peer("prometheus") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let hub_cfg = tmp.path().join("hub.yaml");
    // `cluster` is on every stored series (from the collector) and must be
    // kept; `region` is added to every federated series.
    std::fs::write(
        &hub_cfg,
        "global:\n  external_labels:\n    cluster: the-hub\n    region: hub-region\n",
    )
    .expect("write hub config");
    let hub = start_hub(
        &tmp.path().join("hub"),
        tmp.path(),
        &["--config", hub_cfg.to_str().expect("utf-8 path")],
    );
    let vms = 8;
    let (_sim, sim_addr) = start_simulator("sim", "fed", vms, 5, &[], tmp.path());
    let config = collector_config(
        tmp.path(),
        "fed-east",
        &[("kubevirt", &sim_addr)],
        &format!("http://{}/api/v1/write", hub.addr),
    );
    let mut col = start_collector("collector", &config, &tmp.path().join("cd"), tmp.path());
    wait_for(
        "collector samples at the hub",
        Duration::from_secs(60),
        || col.log() + &hub.proc.log(),
        || {
            let r = try_query(
                &hub.addr,
                "kubevirt_vm_memory_usage_bytes{cluster=\"fed-east\"}",
            )?;
            (r.len() == vms).then_some(())
        },
    );
    // The hub's own view of what is federated (the simulator is frozen,
    // so values do not move between the two reads).
    let want: BTreeMap<LabelMap, u64> = by_labels(&query(&hub.addr, "{job=\"kubevirt\"}"))
        .into_iter()
        .map(|(mut l, v)| {
            l.insert("region".into(), "hub-region".into());
            (l, v)
        })
        .collect();
    assert!(want.len() > vms * 10, "hub holds {} series", want.len());

    // The seed's federation job, pointed at the hub.
    let prom_config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
         scrape_configs:\n  - job_name: federate\n    honor_labels: true\n    metrics_path: /federate\n\
         \x20   params:\n      'match[]':\n        - '{{job=\"kubevirt\"}}'\n\
         \x20   static_configs:\n      - targets: ['{}']\n",
        hub.addr
    );
    let (mut prom, prom_addr) = start_prometheus(&prometheus, &prom_config, tmp.path(), &[]);
    let got = wait_for(
        "federated series in prometheus",
        Duration::from_secs(60),
        || prom.log() + &hub.proc.log(),
        || {
            let r = by_labels(&try_query(&prom_addr, "{job=\"kubevirt\"}")?);
            (r.len() == want.len()).then_some(r)
        },
    );
    for (labels, v) in &want {
        let g = got
            .get(labels)
            .unwrap_or_else(|| panic!("prometheus lacks federated series {labels:?}"));
        // The frozen simulator's series keep their values; the collector's
        // own scrape series (duration, samples scraped) move per scrape.
        if labels["__name__"].starts_with("kubevirt_") || labels["__name__"] == "up" {
            assert_eq!(*g, *v, "value of {labels:?}");
        }
    }
    assert_eq!(got.len(), want.len());
    for l in got.keys() {
        assert_eq!(l["cluster"], "fed-east", "cluster kept as stored: {l:?}");
        assert_eq!(l["job"], "kubevirt");
        assert_eq!(l["instance"], sim_addr);
    }
    // The federation target itself is healthy.
    let up = query(&prom_addr, "up{job=\"federate\"}");
    assert_eq!(up.len(), 1);
    assert_eq!(value(&up[0]), 1.0);
    prom.assert_running();
    col.assert_running();
}

fn range_result(base: &str, q: &str, start: f64, end: f64, step: &str) -> Vec<Value> {
    let body: Value = http()
        .post(format!("http://{base}/api/v1/query_range"))
        .form(&[
            ("query", q),
            ("start", &start.to_string()),
            ("end", &end.to_string()),
            ("step", step),
        ])
        .send()
        .and_then(|r| r.json())
        .unwrap_or_else(|e| panic!("range query {q:?} against {base}: {e}"));
    assert_eq!(body["status"], "success", "{q} against {base}: {body}");
    let mut r = body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    sort_by_metric(&mut r);
    r
}

fn instant_at(base: &str, q: &str, time: f64) -> Value {
    let body: Value = http()
        .post(format!("http://{base}/api/v1/query"))
        .form(&[("query", q), ("time", &time.to_string())])
        .send()
        .and_then(|r| r.json())
        .unwrap_or_else(|e| panic!("query {q:?} against {base}: {e}"));
    assert_eq!(body["status"], "success", "{q} against {base}: {body}");
    let mut data = body["data"].clone();
    if let Some(r) = data["result"].as_array_mut() {
        sort_by_metric(r);
    }
    data
}

/// Sorts result elements by their labels (the API does not promise an
/// order for instant vectors).
fn sort_by_metric(r: &mut [Value]) {
    r.sort_by_key(|s| metric(s).into_iter().collect::<Vec<_>>());
}

/// Compares two API results: labels and timestamps exactly; raw
/// selections (no function or aggregation) bit for bit, computed values
/// within 1e-12 relative (Prometheus 2.42 sums without the compensated
/// summation Prometheus 3 and the hub use, so the last bit may differ).
fn assert_same(prom: &Value, hub: &Value, q: &str) {
    let raw = !q.contains('(');
    let (p, h) = (
        prom.as_array().cloned().unwrap_or_default(),
        hub.as_array().cloned().unwrap_or_default(),
    );
    assert_eq!(
        p.len(),
        h.len(),
        "{q}: series count\nprometheus: {prom}\nhub: {hub}"
    );
    for (a, b) in p.iter().zip(&h) {
        assert_eq!(a["metric"], b["metric"], "{q}: labels");
        let points = |v: &Value| -> Vec<(String, f64)> {
            let list = if v["values"].is_array() {
                v["values"].as_array().cloned().unwrap_or_default()
            } else {
                vec![v["value"].clone()]
            };
            list.iter()
                .map(|p| {
                    let v = p[1].as_str().and_then(parse_float).expect("sample value");
                    (p[0].to_string(), v)
                })
                .collect()
        };
        let (pa, pb) = (points(a), points(b));
        assert_eq!(pa.len(), pb.len(), "{q}: points of {}", a["metric"]);
        for ((ta, va), (tb, vb)) in pa.iter().zip(&pb) {
            assert_eq!(ta, tb, "{q}: timestamps of {}", a["metric"]);
            if raw {
                assert_eq!(va.to_bits(), vb.to_bits(), "{q} at {ta}: {va} vs {vb}");
            } else {
                let tol = 1e-12 * va.abs().max(vb.abs());
                assert!((va - vb).abs() <= tol, "{q} at {ta}: {va} vs {vb}");
            }
        }
    }
}

#[test]
fn prometheus_remote_reads_from_hub() {
    let Some(prometheus) = peer("prometheus") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let hub = start_hub(&tmp.path().join("hub"), tmp.path(), &[]);
    // Ten minutes of jittered samples that only the hub has.
    let now = now_ms();
    let base = now - now % 1000 - 10 * 60_000;
    let mut series = Vec::new();
    for (i, cluster) in ["rr-east", "rr-west"].iter().enumerate() {
        for vm in 0..3 {
            let name = format!("vm-{vm}");
            let samples: Vec<Sample> = (0..40)
                .map(|k| {
                    let t = base + k * 15_000 + ((k * 37 + vm * 11) % 900);
                    let v = 1.0e9 + (i as f64) * 1.0e8 + (vm as f64) * 1234.5 + (k as f64) * 0.1;
                    Sample::new(t, v)
                })
                .collect();
            series.push(SeriesSamples {
                labels: Labels::from_pairs([
                    ("__name__", "kubevirt_vm_memory_usage_bytes"),
                    ("cluster", cluster),
                    ("job", "kubevirt"),
                    ("name", name.as_str()),
                ]),
                samples,
            });
            let counter: Vec<Sample> = (0..40)
                .map(|k| Sample::new(base + k * 15_000 + 500, (k * (vm + 1)) as f64 * 2.5))
                .collect();
            series.push(SeriesSamples {
                labels: Labels::from_pairs([
                    ("__name__", "kubevirt_vmi_cpu_usage_seconds_total"),
                    ("cluster", cluster),
                    ("name", name.as_str()),
                ]),
                samples: counter,
            });
        }
    }
    remote_write(&hub.addr, &series);

    let prom_config = format!(
        "global:\n  scrape_interval: 1m\nscrape_configs: []\n\
         remote_read:\n  - url: http://{}/api/v1/read\n    read_recent: true\n",
        hub.addr
    );
    let (mut prom, prom_addr) = start_prometheus(&prometheus, &prom_config, tmp.path(), &[]);

    let t = (base + 5 * 60_000) as f64 / 1000.0;
    let start = (base + 60_000) as f64 / 1000.0;
    let end = (base + 9 * 60_000) as f64 / 1000.0;
    let instant_queries = [
        "kubevirt_vm_memory_usage_bytes",
        "kubevirt_vm_memory_usage_bytes{cluster=\"rr-west\", name=~\"vm-[12]\"}",
        "kubevirt_vm_memory_usage_bytes{cluster!=\"rr-west\"}",
        "sum by (cluster) (kubevirt_vm_memory_usage_bytes)",
        "rate(kubevirt_vmi_cpu_usage_seconds_total[2m])",
        "kubevirt_vm_memory_usage_bytes{name!~\"vm-0\"}[1m]",
    ];
    for q in instant_queries {
        let from_prom = instant_at(&prom_addr, q, t);
        let from_hub = instant_at(&hub.addr, q, t);
        assert!(
            from_hub["result"].as_array().is_some_and(|r| !r.is_empty()),
            "{q}: the hub has data: {from_hub}"
        );
        assert_same(&from_prom["result"], &from_hub["result"], q);
    }
    let range_queries = [
        "kubevirt_vm_memory_usage_bytes{cluster=\"rr-east\"}",
        "max by (cluster) (kubevirt_vm_memory_usage_bytes)",
        "sum by (cluster) (rate(kubevirt_vmi_cpu_usage_seconds_total[1m]))",
    ];
    for q in range_queries {
        let from_prom = range_result(&prom_addr, q, start, end, "30");
        let from_hub = range_result(&hub.addr, q, start, end, "30");
        assert!(!from_hub.is_empty(), "{q}: the hub has data");
        assert_same(&Value::from(from_prom), &Value::from(from_hub), q);
    }
    // Raw samples through remote read: every written sample comes back.
    let raw = instant_at(
        &prom_addr,
        "kubevirt_vm_memory_usage_bytes{cluster=\"rr-east\", name=\"vm-1\"}[15m]",
        (now + 1000) as f64 / 1000.0,
    );
    let values = raw["result"][0]["values"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(values.len(), 40, "{raw}");
    prom.assert_running();
}
