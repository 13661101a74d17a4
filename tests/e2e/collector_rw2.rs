//! Remote write 2.0 end to end: one collector scrapes a frozen simulator
//! and ships every scrape to the hub twice, over a remote write 1.0
//! endpoint (`cluster="rw1"` by write relabeling) and over a 2.0 endpoint
//! (`protobuf_message: io.prometheus.write.v2.Request`, `cluster="rw2"`).
//! The hub must hold exactly the same samples under both, and exactly what
//! the simulator served.
//!
//! No real remote write 2.0 peer exists on this machine (Debian's
//! Prometheus 2.42 predates 2.0), so both ends of the 2.0 link are
//! fleetwatch; the 1.0 link, which real Prometheus peers test elsewhere,
//! is the reference.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::support::*;

/// Every raw sample of job `kubevirt` in `cluster`, by labels without
/// `cluster`, as `(timestamp, value)` text pairs.
fn raw_samples(hub: &str, cluster: &str) -> BTreeMap<LabelMap, Vec<Value>> {
    let q = format!("{{job=\"kubevirt\",cluster=\"{cluster}\"}}[10m]");
    try_query(hub, &q)
        .unwrap_or_default()
        .iter()
        .map(|s| {
            let mut labels = metric(s);
            labels.remove("cluster");
            let values = s["values"].as_array().cloned().unwrap_or_default();
            (labels, values)
        })
        .collect()
}

#[test]
fn v2_endpoint_stores_exactly_what_the_v1_endpoint_stores() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let logs = tmp.path();
    let hub = start_hub(&tmp.path().join("hub"), logs, &[]);
    let (mut sim, sim_addr) = start_simulator("sim", "c", 10, 7, &[], logs);
    let served: BTreeMap<LabelMap, f64> = scrape(&sim_addr)
        .into_iter()
        .map(|(mut l, v)| {
            l.insert("job".into(), "kubevirt".into());
            l.insert("instance".into(), sim_addr.clone());
            (l, v)
        })
        .collect();
    assert!(
        served.len() > 50,
        "simulator served {} series",
        served.len()
    );

    let endpoint = |cluster: &str, message: &str| {
        format!(
            "  - url: http://{hub}/api/v1/write\n    name: {cluster}\n    protobuf_message: {message}\n    queue_config: {{batch_send_deadline: 200ms, min_backoff: 50ms, max_backoff: 500ms}}\n    write_relabel_configs:\n      - {{target_label: cluster, replacement: {cluster}}}\n",
            hub = hub.addr
        )
    };
    let yaml = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  external_labels: {{cluster: c}}\nscrape_configs:\n  - job_name: kubevirt\n    static_configs: [{{targets: ['{sim_addr}']}}]\nremote_write:\n{}{}",
        endpoint("rw1", "prometheus.WriteRequest"),
        endpoint("rw2", "io.prometheus.write.v2.Request"),
    );
    let config = tmp.path().join("collector.yaml");
    std::fs::write(&config, yaml).expect("write config");
    let mut collector = start_collector("collector", &config, &tmp.path().join("cd"), logs);

    // Both endpoints deliver every served series, and a few scrapes each.
    let complete = |cluster: &str| {
        let got = raw_samples(&hub.addr, cluster);
        (got.len() >= served.len() && got.values().all(|v| v.len() >= 3)).then_some(())
    };
    wait_for(
        "three scrapes over both endpoints",
        Duration::from_secs(60),
        || collector.log() + &hub.proc.log(),
        || complete("rw1").and(complete("rw2")),
    );
    // Stopping flushes both queues, so both hold every scrape.
    let log = collector.log();
    assert!(collector.terminate(Duration::from_secs(20)), "{log}");

    let v1 = raw_samples(&hub.addr, "rw1");
    let v2 = raw_samples(&hub.addr, "rw2");
    let scraped: BTreeMap<LabelMap, Vec<Value>> = v1
        .iter()
        .filter(|(l, _)| served.contains_key(*l))
        .map(|(l, v)| (l.clone(), v.clone()))
        .collect();
    assert_eq!(scraped.len(), served.len(), "every served series over 1.0");
    for (labels, want) in &served {
        for (t, v) in scraped[labels]
            .iter()
            .filter_map(|p| Some((p.get(0)?, p.get(1)?)))
        {
            let got = v.as_str().and_then(parse_float).expect("sample value");
            assert_eq!(got.to_bits(), want.to_bits(), "{labels:?} at {t}");
        }
    }
    assert_eq!(v1.len(), v2.len(), "same series over 1.0 and 2.0");
    for (labels, samples) in &v1 {
        assert_eq!(
            v2.get(labels),
            Some(samples),
            "{labels:?}: 2.0 stored other samples than 1.0"
        );
    }
    let rejected = http()
        .get(format!("http://{}/metrics", hub.addr))
        .send()
        .and_then(|r| r.text())
        .expect("hub metrics");
    assert!(
        !rejected.contains("fleetwatch_remote_write_requests_rejected_total{"),
        "{rejected}"
    );
    sim.kill();
}
