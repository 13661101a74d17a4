//! Alerting end to end: the hub evaluates a rule over remote-written data,
//! alerts go pending then firing, reach a real Alertmanager (and through
//! it a webhook) and the hub's own webhook notifier (grouped by cluster,
//! after `group_wait`), and resolve; a restart during `for` neither resets
//! the alert nor fires it early.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::alerting_support::*;
use super::support::*;

const RULES: &str = r#"groups:
  - name: vm.memory
    rules:
      - record: cluster:vm_memory_usage:ratio
        expr: kubevirt_vm_memory_usage_bytes / kubevirt_vm_memory_available_bytes
      - alert: VMHighMemory
        expr: kubevirt_vm_memory_usage_bytes / kubevirt_vm_memory_available_bytes > 0.9
        for: FOR
        labels:
          severity: warning
        annotations:
          summary: "VM {{ $labels.name }} high memory usage"
          description: "VM {{ $labels.name }} in cluster {{ $labels.cluster }} uses {{ $value | humanizePercentage }} of its memory"
"#;

fn write_rules(dir: &Path, for_: &str) {
    std::fs::write(dir.join("rules.yaml"), RULES.replace("FOR", for_)).expect("write rules");
}

/// Memory usage of two VMs in two clusters: high (`high` true) or low.
fn write_memory(hub: &str, high: bool) {
    let usage = if high { 95.0 } else { 10.0 };
    let mut series: Vec<(&[(&str, &str)], f64)> = Vec::new();
    let a_use: &[(&str, &str)] = &[
        ("__name__", "kubevirt_vm_memory_usage_bytes"),
        ("cluster", "prod-a"),
        ("namespace", "vms"),
        ("name", "db-0"),
    ];
    let a_avail: &[(&str, &str)] = &[
        ("__name__", "kubevirt_vm_memory_available_bytes"),
        ("cluster", "prod-a"),
        ("namespace", "vms"),
        ("name", "db-0"),
    ];
    let b_use: &[(&str, &str)] = &[
        ("__name__", "kubevirt_vm_memory_usage_bytes"),
        ("cluster", "prod-b"),
        ("namespace", "vms"),
        ("name", "web-1"),
    ];
    let b_avail: &[(&str, &str)] = &[
        ("__name__", "kubevirt_vm_memory_available_bytes"),
        ("cluster", "prod-b"),
        ("namespace", "vms"),
        ("name", "web-1"),
    ];
    series.push((a_use, usage));
    series.push((a_avail, 100.0));
    series.push((b_use, usage));
    series.push((b_avail, 100.0));
    write_samples(hub, &series);
}

fn wait_state(hub: &HubProc, labels: &[(&str, &str)], state: &str, timeout: Duration) -> Instant {
    wait_for(
        &format!("alert {labels:?} {state}"),
        timeout,
        || format!("alerts: {:?}\n{}", hub_alerts(&hub.addr), hub.proc.log()),
        || (alert_state(&hub.addr, labels).as_deref() == Some(state)).then(Instant::now),
    )
}

/// Alerts inside Alertmanager webhook bodies with `status`, by `name` label.
fn am_alerts(sink: &WebhookSink, status: &str) -> Vec<Value> {
    sink.received()
        .iter()
        .flat_map(|r| r.body["alerts"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["status"] == status)
        .collect()
}

#[test]
fn alerts_go_pending_firing_resolved_through_alertmanager_and_webhook() {
    let Some(am_bin) = peer("prometheus-alertmanager") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let am_sink = WebhookSink::start();
    let direct = WebhookSink::start();
    let (_am, am_addr) =
        start_alertmanager(&am_bin, tmp.path(), &format!("http://{}/am", am_sink.addr));
    write_rules(tmp.path(), "3s");
    let config = tmp.path().join("hub.yaml");
    std::fs::write(
        &config,
        format!(
            "rule_files: [rules.yaml]\nglobal:\n  evaluation_interval: 1s\n  external_labels:\n    hub: e2e\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{am_addr}']\n      timeout: 5s\nreceivers:\n  - name: direct\n    url: http://{}/hook\n    group_by: [cluster]\n    group_wait: 3s\n    group_interval: 1s\n    repeat_interval: 1h\n    matchers: ['severity=\"warning\"']\n",
            direct.addr
        ),
    )
    .expect("write hub config");
    let hub = start_hub(
        &tmp.path().join("data"),
        tmp.path(),
        &["--config", config.to_str().expect("utf-8")],
    );

    write_memory(&hub.addr, true);
    let a = [("alertname", "VMHighMemory"), ("cluster", "prod-a")];
    let pending_at = wait_state(&hub, &a, "pending", Duration::from_secs(10));
    assert!(
        am_alerts(&am_sink, "firing").is_empty(),
        "nothing is sent while pending"
    );
    let firing_at = wait_state(&hub, &a, "firing", Duration::from_secs(10));
    assert!(
        firing_at - pending_at >= Duration::from_millis(1500),
        "'for: 3s' fired after {:?}",
        firing_at - pending_at
    );
    let alerts = hub_alerts(&hub.addr);
    let fa = alerts
        .iter()
        .find(|x| x["labels"]["cluster"] == "prod-a")
        .expect("prod-a alert");
    assert_eq!(fa["annotations"]["summary"], "VM db-0 high memory usage");
    assert_eq!(
        fa["annotations"]["description"],
        "VM db-0 in cluster prod-a uses 95% of its memory"
    );
    let rules: Value = http()
        .get(format!("http://{}/api/v1/rules?type=alert", hub.addr))
        .send()
        .and_then(|r| r.json())
        .expect("rules api");
    let rule = &rules["data"]["groups"][0]["rules"][0];
    let recorded = query(
        &hub.addr,
        "cluster:vm_memory_usage:ratio{cluster=\"prod-a\"}",
    );
    assert_eq!(recorded.len(), 1, "recording rule output stored");
    assert_eq!(value(&recorded[0]), 0.95);
    assert_eq!(
        (
            rule["name"].as_str(),
            rule["state"].as_str(),
            rule["health"].as_str(),
            rule["type"].as_str()
        ),
        (
            Some("VMHighMemory"),
            Some("firing"),
            Some("ok"),
            Some("alerting")
        )
    );
    assert_eq!(rule["duration"], 3.0);
    assert!(
        !query(
            &hub.addr,
            "ALERTS{alertname=\"VMHighMemory\", alertstate=\"firing\"}"
        )
        .is_empty(),
        "ALERTS series written"
    );

    // Alertmanager received it and notified its webhook.
    let got = wait_for(
        "firing alert through Alertmanager",
        Duration::from_secs(15),
        || format!("{:?}", am_sink.received()),
        || {
            am_alerts(&am_sink, "firing")
                .into_iter()
                .find(|x| x["labels"]["cluster"] == "prod-a")
        },
    );
    assert_eq!(got["labels"]["name"], "db-0");
    assert_eq!(got["labels"]["severity"], "warning");
    assert_eq!(got["labels"]["hub"], "e2e", "external labels are added");
    assert_eq!(got["annotations"]["summary"], "VM db-0 high memory usage");
    assert!(
        got["generatorURL"]
            .as_str()
            .unwrap_or("")
            .contains("/graph?g0.expr="),
        "{got}"
    );

    // The direct webhook: one notification per cluster, after group_wait.
    let by_cluster = wait_for(
        "direct webhook notifications for both clusters",
        Duration::from_secs(15),
        || format!("{:?}", direct.received()),
        || {
            let r = direct.received();
            let a = r
                .iter()
                .find(|x| x.body["groupLabels"]["cluster"] == "prod-a")?
                .clone();
            let b = r
                .iter()
                .find(|x| x.body["groupLabels"]["cluster"] == "prod-b")?
                .clone();
            Some((a, b))
        },
    );
    for (n, cluster) in [(&by_cluster.0, "prod-a"), (&by_cluster.1, "prod-b")] {
        let b = &n.body;
        assert_eq!(n.path, "/hook");
        assert_eq!(b["version"], "4");
        assert_eq!(b["receiver"], "direct");
        assert_eq!(b["status"], "firing");
        assert_eq!(
            b["groupKey"],
            format!("{{}}/{{severity=\"warning\"}}:{{cluster=\"{cluster}\"}}")
        );
        assert_eq!(b["commonLabels"]["cluster"], cluster);
        assert_eq!(b["commonLabels"]["hub"], "e2e");
        assert_eq!(b["alerts"].as_array().map(Vec::len), Some(1), "{b}");
        assert_eq!(b["alerts"][0]["status"], "firing");
        assert!(
            b["externalURL"]
                .as_str()
                .is_some_and(|u| u.starts_with("http://")),
            "{b}"
        );
        assert!(
            n.at.duration_since(firing_at) >= Duration::from_millis(2500),
            "group_wait 3s not respected: notified {:?} after firing",
            n.at.duration_since(firing_at)
        );
    }

    // Resolve: memory back to normal.
    write_memory(&hub.addr, false);
    wait_for(
        "alerts resolved in the hub",
        Duration::from_secs(10),
        || format!("{:?}", hub_alerts(&hub.addr)),
        || hub_alerts(&hub.addr).is_empty().then_some(()),
    );
    let resolved = wait_for(
        "resolved alert through Alertmanager",
        Duration::from_secs(15),
        || format!("{:?}", am_sink.received()),
        || {
            am_alerts(&am_sink, "resolved")
                .into_iter()
                .find(|x| x["labels"]["cluster"] == "prod-a")
        },
    );
    assert_eq!(resolved["labels"]["name"], "db-0");
    wait_for(
        "resolved notifications on the direct webhook",
        Duration::from_secs(10),
        || format!("{:?}", direct.received()),
        || {
            let r = direct.received();
            let done = |c: &str| {
                r.iter().any(|x| {
                    x.body["groupLabels"]["cluster"] == c && x.body["status"] == "resolved"
                })
            };
            (done("prod-a") && done("prod-b")).then_some(())
        },
    );
    let metrics = http()
        .get(format!("http://{}/metrics", hub.addr))
        .send()
        .and_then(|r| r.text())
        .expect("metrics");
    assert!(
        metrics.contains("fleetwatch_rule_evaluations_total{rule_group="),
        "{metrics}"
    );
    assert!(
        metrics.contains("fleetwatch_notifications_sent_total{notifier=\"alertmanager\"}"),
        "{metrics}"
    );
}

/// The value and sample time (seconds) of the alert's `ALERTS_FOR_STATE`.
fn for_state(hub: &str) -> Option<(f64, f64)> {
    let v = try_query(
        hub,
        "ALERTS_FOR_STATE{alertname=\"VMHighMemory\", cluster=\"prod-a\"}",
    )?;
    let t = try_query(
        hub,
        "timestamp(ALERTS_FOR_STATE{alertname=\"VMHighMemory\", cluster=\"prod-a\"})",
    )?;
    Some((value(v.first()?), value(t.first()?)))
}

fn wall_secs() -> f64 {
    now_ms() as f64 / 1000.0
}

#[test]
fn restart_during_for_neither_resets_nor_fires_early() {
    // Long enough that a restored `for` (firing ~10 s after the restart) and
    // a reset one (~20 s after) stay apart on a loaded machine.
    const FOR_SECS: f64 = 20.0;
    let tmp = tempfile::tempdir().expect("tempdir");
    write_rules(tmp.path(), "20s");
    let config = tmp.path().join("hub.yaml");
    std::fs::write(
        &config,
        "rule_files: [rules.yaml]\nglobal:\n  evaluation_interval: 1s\nrules:\n  for_grace_period: 2s\n",
    )
    .expect("write hub config");
    let data = tmp.path().join("data");
    let args = ["--config", config.to_str().expect("utf-8")];
    let mut hub = start_hub(&data, tmp.path(), &args);
    write_memory(&hub.addr, true);
    let a = [("alertname", "VMHighMemory"), ("cluster", "prod-a")];
    wait_state(&hub, &a, "pending", Duration::from_secs(10));
    let (active_at, _) = wait_for(
        "ALERTS_FOR_STATE written",
        Duration::from_secs(10),
        || hub.proc.log(),
        || for_state(&hub.addr),
    );
    // Let 'for' run a while, then restart the hub in the middle of it.
    while wall_secs() < active_at + 10.0 {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(alert_state(&hub.addr, &a).as_deref(), Some("pending"));
    assert!(
        hub.proc.terminate(Duration::from_secs(20)),
        "hub stops cleanly:\n{}",
        hub.proc.log()
    );
    std::thread::sleep(Duration::from_secs(1));
    let restarted_at = wall_secs();
    hub = start_hub(&data, tmp.path(), &args);
    // Evaluation starts with serving: a reset 'for' would have activeAt at
    // about this time; a restored one lies `10s - 1 interval` before it.
    let ready_at = wall_secs();

    // After the restore, the alert's activeAt is the original one shifted
    // by the downtime, not the restart time.
    let (restored, _) = wait_for(
        "ALERTS_FOR_STATE written after the restart",
        Duration::from_secs(10),
        || hub.proc.log(),
        || for_state(&hub.addr).filter(|(_, t)| *t > restarted_at),
    );
    assert!(
        restored >= active_at,
        "activeAt moved back: {restored} < {active_at}"
    );
    assert!(
        restored < ready_at - 2.0,
        "for state was reset: activeAt {restored}, restarted at {restarted_at}, ready at {ready_at}"
    );
    let fired = wait_for(
        "alert firing after the restart",
        Duration::from_secs(30),
        || format!("{:?}\n{}", hub_alerts(&hub.addr), hub.proc.log()),
        || (alert_state(&hub.addr, &a).as_deref() == Some("firing")).then(wall_secs),
    );
    assert!(
        fired >= active_at + FOR_SECS,
        "fired early: {:.1}s after activeAt",
        fired - active_at
    );
    assert!(
        fired < ready_at + FOR_SECS - 4.0,
        "fired as if 'for' restarted: {:.1}s after the restart",
        fired - ready_at
    );
}
