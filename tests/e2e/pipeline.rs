//! simulate -> collector -> hub -> query API, with exact expectations
//! taken from what the simulators served.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::support::*;

const SYNTHETIC: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

#[test]
fn simulators_through_collectors_to_hub() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let logs = tmp.path();
    let hub = start_hub(&tmp.path().join("hub"), logs, &[]);
    let write_url = format!("http://{}/api/v1/write", hub.addr);

    let clusters = [
        ("prod-east", 1u64, vec![]),
        ("staging", 2u64, vec!["--scenario", "memory-pressure"]),
    ];
    let vms = 20;
    let mut procs = Vec::new();
    let mut expected: BTreeMap<LabelMap, f64> = BTreeMap::new();
    let dead_apiserver = free_addr(); // nothing listens here: `up` must be 0
    for (cluster, seed, extra) in &clusters {
        let (sim, sim_addr) =
            start_simulator(&format!("sim-{cluster}"), cluster, vms, *seed, extra, logs);
        for (labels, v) in scrape(&sim_addr) {
            expected.insert(
                with_target_labels(labels, "kubevirt", &sim_addr, cluster),
                v,
            );
        }
        let mut jobs = vec![("kubevirt", sim_addr.as_str())];
        if *cluster == "staging" {
            jobs.push(("kubernetes-apiservers", dead_apiserver.as_str()));
        }
        let config = collector_config(tmp.path(), cluster, &jobs, &write_url);
        let col = start_collector(
            &format!("collector-{cluster}"),
            &config,
            &tmp.path().join(format!("cd-{cluster}")),
            logs,
        );
        procs.push(sim);
        procs.push(col);
    }
    assert!(
        expected.len() > 2 * vms * 5,
        "simulator served too few series: {}",
        expected.len()
    );

    // Every cluster arrives with all its VMs.
    let counts = wait_for(
        "both clusters at the hub",
        Duration::from_secs(60),
        || {
            procs
                .iter()
                .map(|p| format!("--- {}\n{}", p.name, p.log()))
                .collect::<Vec<_>>()
                .join("\n")
                + &hub.proc.log()
        },
        || {
            let r = try_query(
                &hub.addr,
                "count by (cluster) (kubevirt_vm_memory_usage_bytes)",
            )?;
            let m: BTreeMap<String, f64> = r
                .iter()
                .map(|s| (metric(s)["cluster"].clone(), value(s)))
                .collect();
            (m.len() == 2 && m.values().all(|&c| c == vms as f64)).then_some(m)
        },
    );
    assert_eq!(
        counts.keys().cloned().collect::<Vec<_>>(),
        vec!["prod-east", "staging"]
    );

    // Every series the simulators served is at the hub with exactly the
    // served value and the collector's labels; nothing else from the job.
    let actual: BTreeMap<LabelMap, f64> = wait_for(
        "all simulator series",
        Duration::from_secs(30),
        String::new,
        || {
            let r = try_query(&hub.addr, "{job=\"kubevirt\"}")?;
            let m: BTreeMap<LabelMap, f64> = r
                .iter()
                .map(|s| (metric(s), value(s)))
                .filter(|(l, _)| !SYNTHETIC.contains(&l["__name__"].as_str()))
                .collect();
            (m.len() == expected.len()).then_some(m)
        },
    );
    assert_eq!(actual.len(), expected.len());
    for (labels, v) in &expected {
        let got = actual
            .get(labels)
            .unwrap_or_else(|| panic!("series {labels:?} missing at the hub"));
        assert_eq!(got.to_bits(), v.to_bits(), "value of {labels:?}");
    }

    // The collectors' synthetic `up`: 1 for the simulators, 0 for the dead target.
    let up = query(&hub.addr, "up");
    let up: BTreeMap<(String, String), f64> = up
        .iter()
        .map(|s| {
            (
                (metric(s)["cluster"].clone(), metric(s)["job"].clone()),
                value(s),
            )
        })
        .collect();
    assert_eq!(up.get(&("prod-east".into(), "kubevirt".into())), Some(&1.0));
    assert_eq!(up.get(&("staging".into(), "kubevirt".into())), Some(&1.0));
    assert_eq!(
        up.get(&("staging".into(), "kubernetes-apiservers".into())),
        Some(&0.0)
    );

    // The seed's VMHighMemory expression finds exactly the hot VMs, per cluster.
    let mut hot_expected = BTreeSet::new();
    for (labels, usage) in &expected {
        if labels["__name__"] == "kubevirt_vm_memory_usage_bytes" {
            let mut avail = labels.clone();
            avail.insert(
                "__name__".into(),
                "kubevirt_vm_memory_available_bytes".into(),
            );
            if usage / expected[&avail] > 0.9 {
                hot_expected.insert((labels["cluster"].clone(), labels["name"].clone()));
            }
        }
    }
    let hot = query(
        &hub.addr,
        "kubevirt_vm_memory_usage_bytes / kubevirt_vm_memory_available_bytes > 0.9",
    );
    let hot_got: BTreeSet<(String, String)> = hot
        .iter()
        .map(|s| {
            let m = metric(s);
            assert!(
                !m.contains_key("__name__"),
                "division must drop the metric name: {m:?}"
            );
            assert!(value(s) > 0.9);
            (m["cluster"].clone(), m["name"].clone())
        })
        .collect();
    assert!(
        !hot_expected.is_empty(),
        "the simulators should run some VMs hot"
    );
    assert!(
        hot_expected.iter().any(|(c, _)| c == "staging")
            && hot_expected.iter().any(|(c, _)| c == "prod-east")
    );
    assert_eq!(hot_got, hot_expected);

    // The seed's ClusterDown expression names the cluster whose apiserver is down.
    let down = query(&hub.addr, "up{job=\"kubernetes-apiservers\"} == 0");
    assert_eq!(down.len(), 1);
    assert_eq!(metric(&down[0])["cluster"], "staging");

    // The series and label APIs see both clusters.
    let values: serde_json::Value = http()
        .get(format!("http://{}/api/v1/label/cluster/values", hub.addr))
        .send()
        .and_then(|r| r.json())
        .expect("label values");
    assert_eq!(values["data"], serde_json::json!(["prod-east", "staging"]));
    let series: serde_json::Value = http()
        .get(format!("http://{}/api/v1/series", hub.addr))
        .query(&[(
            "match[]",
            "kubevirt_vm_memory_usage_bytes{cluster=\"staging\"}",
        )])
        .send()
        .and_then(|r| r.json())
        .expect("series");
    assert_eq!(series["data"].as_array().map(Vec::len), Some(vms));

    // A range query over the last minute returns points for every VM.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    let range: serde_json::Value = http()
        .get(format!("http://{}/api/v1/query_range", hub.addr))
        .query(&[
            (
                "query",
                "sum by (cluster) (kubevirt_vm_memory_usage_bytes)".to_string(),
            ),
            ("start", format!("{}", now - 30.0)),
            ("end", format!("{now}")),
            ("step", "5s".to_string()),
        ])
        .send()
        .and_then(|r| r.json())
        .expect("range query");
    assert_eq!(range["data"]["resultType"], "matrix");
    assert_eq!(range["data"]["result"].as_array().map(Vec::len), Some(2));

    for mut p in procs {
        p.assert_running();
    }
}
