//! The collector federating from a real Prometheus (Debian's) with the
//! seed's federation job pasted as-is (`federate-app-clusters`,
//! `honor_labels: true`, `/federate`, the three `match[]` selectors; only
//! the static target is the test's Prometheus). Prometheus scrapes a frozen
//! simulator as `kubevirt-prometheus-metrics` (the KubeVirt series), as
//! `node-exporter` (the node series) and as `unmatched-apps` (matched by
//! none of the selectors). The hub must end up with exactly the series
//! Prometheus has for the selectors — `job` and `instance` from
//! Prometheus's own scrape, plus the collector's `cluster="fed-a"` — with
//! equal values, nothing of `unmatched-apps`, and
//! `up{job="federate-app-clusters"} 1`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::support::*;

/// The seed's federation job (seeds/000, "Federation Configuration"), its
/// indentation restored; `{prometheus}` takes the place of the seed's
/// three in-cluster Prometheus addresses.
const SEED_FEDERATION_JOB: &str = r#"  - job_name: 'federate-app-clusters'
    scrape_interval: 15s
    honor_labels: true
    metrics_path: '/federate'
    params:
      'match[]':
        - '{job=~"kubernetes-.*"}'
        - '{job=~"node-.*"}'
        - '{job=~"kubevirt-.*"}'
    static_configs:
      - targets:
          - '{prometheus}'
"#;

/// The federation job's selectors, as the seed lists them.
const SELECTORS: [&str; 3] = [
    r#"{job=~"kubernetes-.*"}"#,
    r#"{job=~"node-.*"}"#,
    r#"{job=~"kubevirt-.*"}"#,
];

/// Prometheus's own synthetic series whose values legitimately differ
/// between two scrapes of a frozen target.
const MOVING: [&str; 2] = ["scrape_duration_seconds", "scrape_series_added"];

/// The union of the selectors' instant-query results at `base` (label set
/// -> value), or `None` when a query fails.
fn federated_series(base: &str) -> Option<BTreeMap<LabelMap, f64>> {
    let mut out = BTreeMap::new();
    for sel in SELECTORS {
        for s in try_query(base, sel)? {
            out.insert(metric(&s), value(&s));
        }
    }
    Some(out)
}

#[test]
fn collector_federates_from_prometheus_with_the_seed_job() {
    let Some(prometheus) = peer("prometheus") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut sim, sim_addr) = start_simulator("sim", "fed", 3, 11, &[], tmp.path());
    let prom_dir = tmp.path().join("prometheus");
    std::fs::create_dir_all(&prom_dir).expect("prometheus dir");
    let prom_config = format!(
        r#"global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: kubevirt-prometheus-metrics
    static_configs: [{{targets: ['{sim_addr}']}}]
    metric_relabel_configs:
      - {{source_labels: [__name__], regex: 'kubevirt_.*', action: keep}}
  - job_name: node-exporter
    static_configs: [{{targets: ['{sim_addr}']}}]
    metric_relabel_configs:
      - {{source_labels: [__name__], regex: 'node_.*', action: keep}}
  - job_name: unmatched-apps
    static_configs: [{{targets: ['{sim_addr}']}}]
"#
    );
    let (mut prom, prom_addr) = start_prometheus(&prometheus, &prom_config, &prom_dir, &[]);

    // The collector starts once Prometheus has scraped every job, so its
    // first federation scrape already sees the complete, frozen set.
    let jobs = [
        "kubevirt-prometheus-metrics",
        "node-exporter",
        "unmatched-apps",
    ];
    wait_for(
        "Prometheus to scrape the simulator in every job",
        Duration::from_secs(30),
        || prom.log(),
        || {
            let up = try_query(&prom_addr, "up == 1")?;
            let seen: BTreeSet<String> = up
                .iter()
                .filter_map(|s| metric(s).get("job").cloned())
                .collect();
            jobs.iter().all(|j| seen.contains(*j)).then_some(())
        },
    );
    let expected_plain = federated_series(&prom_addr).expect("query Prometheus");
    let names: BTreeSet<&str> = expected_plain
        .keys()
        .filter_map(|l| l.get("__name__").map(String::as_str))
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with("kubevirt_"))
            && names.iter().any(|n| n.starts_with("node_")),
        "Prometheus should have KubeVirt and node series for the selectors: {names:?}"
    );
    let unmatched = query(&prom_addr, r#"{job="unmatched-apps"}"#);
    assert!(!unmatched.is_empty(), "Prometheus scrapes unmatched-apps");

    let mut hub = start_hub(&tmp.path().join("hub"), tmp.path(), &[]);
    let collector_yaml = format!(
        "global:\n  external_labels:\n    cluster: fed-a\nscrape_configs:\n{}remote_write:\n  - url: http://{}/api/v1/write\n    queue_config: {{batch_send_deadline: 200ms, min_backoff: 50ms, max_backoff: 500ms}}\n",
        SEED_FEDERATION_JOB.replace("{prometheus}", &prom_addr),
        hub.addr
    );
    let config = tmp.path().join("collector.yaml");
    std::fs::write(&config, collector_yaml).expect("write collector config");
    let mut collector = start_collector("collector", &config, &tmp.path().join("cd"), tmp.path());

    // The job's 15 s interval puts the first federation scrape up to 15 s
    // after the start. Complete at the hub: the scrape's samples (its
    // `scrape_samples_scraped`) plus the job's 5 synthetic series.
    let fed_up = r#"up{job="federate-app-clusters"}"#;
    let scraped = format!(
        r#"scrape_samples_scraped{{job="federate-app-clusters",instance="{prom_addr}",exported_job=""}}"#
    );
    let single = |q: &str| try_query(&hub.addr, q)?.first().map(value);
    wait_for(
        "every sample of a federation scrape at the hub",
        Duration::from_secs(45),
        || format!("{}\n{}", collector.log(), hub.proc.log()),
        || {
            let n = single(&scraped)?;
            let total = single(r#"count({cluster="fed-a"})"#)?;
            (n > 0.0 && total >= n + 5.0).then_some(())
        },
    );
    let got = federated_series(&hub.addr).expect("query the hub");
    collector.assert_running();

    // Prometheus's view now (its label sets are stable: the target is frozen),
    // each series with the collector's external label added.
    let expected: BTreeMap<LabelMap, f64> = federated_series(&prom_addr)
        .expect("query Prometheus")
        .into_iter()
        .map(|(mut l, v)| {
            l.insert("cluster".into(), "fed-a".into());
            (l, v)
        })
        .collect();
    let missing: Vec<&LabelMap> = expected.keys().filter(|l| !got.contains_key(*l)).collect();
    let extra: Vec<&LabelMap> = got.keys().filter(|l| !expected.contains_key(*l)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "the hub's series differ from Prometheus's ({} vs {}):\nmissing at the hub (first 5): {:?}\nonly at the hub (first 5): {:?}",
        got.len(),
        expected.len(),
        &missing[..missing.len().min(5)],
        &extra[..extra.len().min(5)]
    );
    // Job and instance are Prometheus's own, not the federation job's.
    for l in got.keys() {
        let job = l.get("job").map(String::as_str).unwrap_or_default();
        assert!(
            job == "kubevirt-prometheus-metrics" || job == "node-exporter",
            "{l:?}"
        );
        assert_eq!(l.get("instance"), Some(&sim_addr), "{l:?}");
        assert_eq!(l.get("cluster").map(String::as_str), Some("fed-a"), "{l:?}");
    }
    let mut compared = 0;
    for (l, want) in &expected {
        let name = l.get("__name__").map(String::as_str).unwrap_or_default();
        if MOVING.contains(&name) {
            continue;
        }
        let have = got[l];
        assert!(
            have.to_bits() == want.to_bits() || (have.is_nan() && want.is_nan()),
            "{l:?}: hub {have}, Prometheus {want}"
        );
        compared += 1;
    }
    assert!(compared > 100, "only {compared} values compared");

    let unmatched_at_hub = query(&hub.addr, r#"{job="unmatched-apps"}"#);
    assert!(
        unmatched_at_hub.is_empty(),
        "match[] should leave unmatched-apps out: {:?}",
        unmatched_at_hub.first().map(metric)
    );
    let up = query(&hub.addr, fed_up);
    assert_eq!(up.len(), 1, "{up:?}");
    let want_up: LabelMap = [
        ("__name__", "up"),
        ("job", "federate-app-clusters"),
        ("instance", prom_addr.as_str()),
        ("cluster", "fed-a"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(metric(&up[0]), want_up);
    assert_eq!(value(&up[0]), 1.0, "the federation scrape succeeded");

    assert!(
        collector.terminate(Duration::from_secs(20)),
        "collector exits cleanly on SIGTERM:\n{}",
        collector.log()
    );
    prom.terminate(Duration::from_secs(20));
    sim.kill();
    hub.proc.terminate(Duration::from_secs(20));
}
