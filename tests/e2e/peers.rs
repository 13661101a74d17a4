//! Compatibility with real peers: Debian's Prometheus as a remote-write
//! sender into the hub and as a receiver of the collector's writes, and
//! promtool querying the hub.

use std::collections::BTreeMap;
use std::time::Duration;

use super::support::*;

#[test]
fn prometheus_remote_writes_into_hub_and_promtool_queries_it() {
    let Some(prometheus) = peer("prometheus") else {
        return;
    };
    let Some(promtool) = peer("promtool") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let hub = start_hub(&tmp.path().join("hub"), tmp.path(), &[]);
    let vms = 15;
    let (_sim, sim_addr) = start_simulator("sim", "peer", vms, 7, &[], tmp.path());
    let served: BTreeMap<LabelMap, f64> = scrape(&sim_addr)
        .into_iter()
        .filter(|(l, _)| l["__name__"] == "kubevirt_vm_memory_usage_bytes")
        .collect();
    assert_eq!(served.len(), vms);

    let config = format!(
        "global:\n  scrape_interval: 1s\n  external_labels:\n    cluster: via-prometheus\n\
         scrape_configs:\n  - job_name: kubevirt\n    static_configs:\n      - targets: ['{sim_addr}']\n\
         remote_write:\n  - url: http://{}/api/v1/write\n    queue_config:\n      batch_send_deadline: 1s\n      min_backoff: 50ms\n",
        hub.addr
    );
    let (mut prom, _prom_addr) = start_prometheus(&prometheus, &config, tmp.path(), &[]);

    let got = wait_for(
        "prometheus' samples at the hub",
        Duration::from_secs(90),
        || prom.log() + &hub.proc.log(),
        || {
            let r = try_query(
                &hub.addr,
                "kubevirt_vm_memory_usage_bytes{cluster=\"via-prometheus\"}",
            )?;
            (r.len() == vms).then_some(r)
        },
    );
    for s in &got {
        let mut labels = metric(s);
        assert_eq!(labels.remove("cluster").as_deref(), Some("via-prometheus"));
        assert_eq!(labels.remove("job").as_deref(), Some("kubevirt"));
        assert_eq!(
            labels.remove("instance").as_deref(),
            Some(sim_addr.as_str())
        );
        let want = served
            .get(&labels)
            .unwrap_or_else(|| panic!("unexpected series {labels:?}"));
        assert_eq!(value(s).to_bits(), want.to_bits());
    }
    prom.assert_running();

    // promtool against the hub's API.
    let out = std::process::Command::new(&promtool)
        .args([
            "query",
            "instant",
            &format!("http://{}", hub.addr),
            "count(kubevirt_vm_memory_usage_bytes{cluster=\"via-prometheus\"})",
        ])
        .output()
        .expect("run promtool");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "promtool failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("=> {vms} @")),
        "promtool output: {stdout}"
    );
    let total: f64 = served.values().sum();
    let out = std::process::Command::new(&promtool)
        .args([
            "query",
            "instant",
            &format!("http://{}", hub.addr),
            "sum(kubevirt_vm_memory_usage_bytes{cluster=\"via-prometheus\"})",
        ])
        .output()
        .expect("run promtool");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let printed: f64 = stdout
        .split("=>")
        .nth(1)
        .and_then(|r| r.split('@').next())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("cannot read promtool output: {stdout}"));
    assert!(
        (printed - total).abs() <= total.abs() * 1e-12,
        "promtool printed {printed}, expected {total}"
    );
}

#[test]
fn collector_remote_writes_into_prometheus() {
    let Some(prometheus) = peer("prometheus") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let vms = 12;
    let (_sim, sim_addr) = start_simulator("sim", "peer", vms, 11, &[], tmp.path());
    let served: BTreeMap<LabelMap, f64> = scrape(&sim_addr)
        .into_iter()
        .filter(|(l, _)| l["__name__"] == "kubevirt_vm_memory_available_bytes")
        .collect();
    // Prometheus with nothing to scrape: it only receives.
    let (mut prom, prom_addr) = start_prometheus(
        &prometheus,
        "global:\n  scrape_interval: 1m\nscrape_configs: []\n",
        tmp.path(),
        &["--web.enable-remote-write-receiver"],
    );
    let config = collector_config(
        tmp.path(),
        "to-prometheus",
        &[("kubevirt", &sim_addr)],
        &format!("http://{prom_addr}/api/v1/write"),
    );
    let mut col = start_collector("collector", &config, &tmp.path().join("cd"), tmp.path());
    let got = wait_for(
        "collector samples in prometheus",
        Duration::from_secs(60),
        || col.log() + &prom.log(),
        || {
            let r = try_query(
                &prom_addr,
                "kubevirt_vm_memory_available_bytes{cluster=\"to-prometheus\"}",
            )?;
            (r.len() == vms).then_some(r)
        },
    );
    for s in &got {
        let mut labels = metric(s);
        assert_eq!(labels.remove("job").as_deref(), Some("kubevirt"));
        assert_eq!(
            labels.remove("instance").as_deref(),
            Some(sim_addr.as_str())
        );
        assert_eq!(labels.remove("cluster").as_deref(), Some("to-prometheus"));
        let want = served
            .get(&labels)
            .unwrap_or_else(|| panic!("unexpected series {labels:?}"));
        assert_eq!(value(s).to_bits(), want.to_bits());
    }
    let up = query(
        &prom_addr,
        "up{cluster=\"to-prometheus\", job=\"kubevirt\"}",
    );
    assert_eq!(up.len(), 1);
    assert_eq!(value(&up[0]), 1.0);
    col.assert_running();
    prom.assert_running();
}
