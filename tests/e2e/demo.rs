//! `fleetwatch demo`: within 60 s the hub answers for three clusters and
//! the seed's VMHighMemory expression finds hot VMs in each, and the VMs'
//! logs arrive through the collectors; Ctrl-C (SIGINT here: SIGTERM) stops
//! it cleanly.

use std::collections::BTreeSet;
use std::time::Duration;

use super::support::*;

#[test]
fn demo_serves_three_clusters_within_a_minute() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let addr = free_addr();
    let data = tmp.path().join("demo-data");
    let mut demo = Proc::spawn(
        "demo",
        BIN,
        &[
            "demo",
            "--listen",
            &addr,
            "--data-dir",
            data.to_str().expect("utf-8"),
            "--scrape-interval",
            "2s",
            "--vms",
            "40",
        ],
        tmp.path(),
    );
    let clusters: BTreeSet<String> = wait_for(
        "three clusters at the demo hub",
        Duration::from_secs(60),
        || demo.log(),
        || {
            let r = try_query(&addr, "count by (cluster) (kubevirt_vm_memory_usage_bytes)")?;
            let c: BTreeSet<String> = r
                .iter()
                .filter(|s| value(s) == 40.0)
                .map(|s| metric(s)["cluster"].clone())
                .collect();
            (c.len() == 3).then_some(c)
        },
    );
    assert_eq!(
        clusters,
        ["prod-east", "prod-west", "staging"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    let hot = query(
        &addr,
        "kubevirt_vm_memory_usage_bytes / kubevirt_vm_memory_available_bytes > 0.9",
    );
    let hot_clusters: BTreeSet<String> = hot.iter().map(|s| metric(s)["cluster"].clone()).collect();
    assert!(
        hot_clusters.contains("prod-west"),
        "memory pressure in prod-west must show hot VMs: {hot:?}"
    );
    assert!(hot
        .iter()
        .all(|s| value(s) > 0.9 && metric(s).contains_key("name")));
    // Each cluster's collector tails its simulator's VM logs into the hub.
    let log_clusters: BTreeSet<String> = wait_for(
        "VM logs of three clusters at the demo hub",
        Duration::from_secs(60),
        || demo.log(),
        || {
            let v = super::logs::get(
                &addr,
                "/loki/api/v1/query",
                &[(
                    "query",
                    r#"sum by (cluster) (count_over_time({container="compute"} |= "Domain started" [1h]))"#
                        .to_string(),
                )],
            );
            let c: BTreeSet<String> = v["data"]["result"]
                .as_array()?
                .iter()
                .filter(|r| r["value"][1] == "40")
                .filter_map(|r| r["metric"]["cluster"].as_str().map(str::to_string))
                .collect();
            (c.len() == 3).then_some(c)
        },
    );
    assert_eq!(log_clusters, clusters);
    assert!(demo.log().contains("fleetwatch demo is running"));
    assert!(
        demo.terminate(Duration::from_secs(20)),
        "demo did not stop cleanly:\n{}",
        demo.log()
    );
}
