//! The seed's rules end to end over simulated clusters: a cluster under
//! memory pressure makes `VMHighMemory` (its `for` shortened) go pending,
//! then firing, and a real Alertmanager's webhook gets it with `cluster`,
//! `name`, `severity="warning"` and the rendered summary; when the pressure
//! ends the alert resolves and the resolution arrives. A cluster whose
//! migrations fail makes `VMMigrationFailed` fire the same way.
//! simulators -> collectors -> hub (rules) -> Alertmanager -> webhook.

use std::time::Duration;

use serde_json::Value;

use super::alerting_support::*;
use super::support::*;

/// The seed's rule file with `for` shortened so the test runs in seconds.
fn seed_rules_short_for() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/rules/multi-cluster-alerts.yaml");
    std::fs::read_to_string(path)
        .expect("seed rules")
        .replace("for: 10m", "for: 2s")
        .replace("for: 5m", "for: 2s")
}

/// Alerts in the webhook notifications received so far, as (status,
/// labels, annotations).
fn webhook_alerts(sink: &WebhookSink) -> Vec<(String, Value, Value)> {
    sink.received()
        .iter()
        .flat_map(|r| r.body["alerts"].as_array().cloned().unwrap_or_default())
        .map(|a| {
            (
                a["status"].as_str().unwrap_or("").to_string(),
                a["labels"].clone(),
                a["annotations"].clone(),
            )
        })
        .collect()
}

/// A simulator on `addr` (moving values unless `frozen`).
fn simulator(
    name: &str,
    cluster: &str,
    vms: &str,
    addr: &str,
    scenario: Option<&str>,
    frozen: bool,
    dir: &std::path::Path,
) -> Proc {
    let mut args = vec![
        "simulate",
        "--vms",
        vms,
        "--cluster",
        cluster,
        "--seed",
        "7",
        "--listen",
        addr,
    ];
    if let Some(s) = scenario {
        args.extend_from_slice(&["--scenario", s]);
    }
    if frozen {
        args.push("--frozen");
    }
    let proc = Proc::spawn(name, BIN, &args, dir);
    wait_until_ok(
        "simulator",
        &format!("http://{addr}/metrics"),
        Duration::from_secs(20),
        &proc,
    );
    proc
}

#[test]
fn seed_alerts_fire_and_resolve_from_simulated_scenarios() {
    let Some(alertmanager) = peer("prometheus-alertmanager") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let sink = WebhookSink::start();
    let (mut am, am_addr) = start_alertmanager(
        &alertmanager,
        tmp.path(),
        &format!("http://{}/am", sink.addr),
    );
    let rules = tmp.path().join("rules.yaml");
    std::fs::write(&rules, seed_rules_short_for()).expect("write rules");
    let hub_cfg = tmp.path().join("hub.yaml");
    std::fs::write(
        &hub_cfg,
        format!(
            "global:\n  evaluation_interval: 1s\nrule_files: ['{}']\n\
             alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{am_addr}']\n",
            rules.display()
        ),
    )
    .expect("write hub config");
    let hub = start_hub(
        &tmp.path().join("hub"),
        tmp.path(),
        &["--config", hub_cfg.to_str().expect("utf-8")],
    );
    let write_url = format!("http://{}/api/v1/write", hub.addr);

    // prod-west under memory pressure (a frozen snapshot: the same VMs stay
    // hot); staging with failing migrations (moving, so failures happen).
    let west_addr = free_addr();
    let mut west = simulator(
        "sim-west",
        "prod-west",
        "40",
        &west_addr,
        Some("memory-pressure"),
        true,
        tmp.path(),
    );
    let staging_addr = free_addr();
    let _staging = simulator(
        "sim-staging",
        "staging",
        // Enough VMs that a migration fails every few seconds.
        "300",
        &staging_addr,
        Some("migration-failures"),
        false,
        tmp.path(),
    );
    let west_cfg = collector_config(
        tmp.path(),
        "prod-west",
        &[("kubevirt", &west_addr)],
        &write_url,
    );
    let staging_cfg = collector_config(
        tmp.path(),
        "staging",
        &[("kubevirt", &staging_addr)],
        &write_url,
    );
    let _west_col = start_collector("col-west", &west_cfg, &tmp.path().join("cw"), tmp.path());
    let _staging_col = start_collector(
        "col-staging",
        &staging_cfg,
        &tmp.path().join("cs"),
        tmp.path(),
    );

    // Pending first, then firing, for a hot VM of prod-west.
    let hot = wait_for(
        "VMHighMemory pending or firing at the hub",
        Duration::from_secs(60),
        || hub.proc.log(),
        || {
            hub_alerts(&hub.addr).into_iter().find(|a| {
                a["labels"]["alertname"] == "VMHighMemory" && a["labels"]["cluster"] == "prod-west"
            })
        },
    );
    let vm = hot["labels"]["name"]
        .as_str()
        .expect("name label")
        .to_string();
    let firing = wait_for(
        "VMHighMemory at Alertmanager's webhook",
        Duration::from_secs(60),
        || am.log() + &hub.proc.log(),
        || {
            webhook_alerts(&sink).into_iter().find(|(status, l, _)| {
                status == "firing"
                    && l["alertname"] == "VMHighMemory"
                    && l["cluster"] == "prod-west"
                    && l["name"] == vm.as_str()
            })
        },
    );
    assert_eq!(firing.1["severity"], "warning");
    assert_eq!(
        firing.2["summary"],
        format!("VM {vm} high memory usage"),
        "summary rendered from the template"
    );
    assert!(
        firing.2["description"]
            .as_str()
            .is_some_and(|d| d.contains("cluster prod-west")),
        "{:?}",
        firing.2
    );

    // Migrations fail in staging: VMMigrationFailed (no `for`) fires.
    let failed = wait_for(
        "VMMigrationFailed at Alertmanager's webhook",
        Duration::from_secs(90),
        || am.log() + &hub.proc.log(),
        || {
            webhook_alerts(&sink).into_iter().find(|(status, l, _)| {
                status == "firing"
                    && l["alertname"] == "VMMigrationFailed"
                    && l["cluster"] == "staging"
            })
        },
    );
    assert_eq!(failed.1["severity"], "critical");
    assert_eq!(failed.2["summary"], "VM migration failed");

    // The pressure ends: the same cluster comes back without the scenario
    // (same seed, same VMs, none hot). The alert resolves and Alertmanager
    // delivers the resolution.
    west.kill();
    let _west_calm = simulator(
        "sim-west-calm",
        "prod-west",
        "40",
        &west_addr,
        None,
        true,
        tmp.path(),
    );
    wait_for(
        "VMHighMemory resolution at Alertmanager's webhook",
        Duration::from_secs(60),
        || am.log() + &hub.proc.log(),
        || {
            webhook_alerts(&sink).into_iter().find(|(status, l, _)| {
                status == "resolved" && l["alertname"] == "VMHighMemory" && l["name"] == vm.as_str()
            })
        },
    );
    am.assert_running();
}
