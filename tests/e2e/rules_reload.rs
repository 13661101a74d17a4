//! Rule reload end to end: `POST /-/reload` and SIGHUP re-read the rule
//! files; a firing alert of a group that changed keeps its `activeAt`, a
//! rule added to the file shows up and evaluates, and a broken file is
//! refused (HTTP 500 with the reason) while the rules in force keep
//! running.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::alerting_support::*;
use super::support::*;

/// The first rule file: one alert with a short `for`, and a group that
/// never changes.
const RULES: &str = r#"groups:
  - name: vm.memory
    rules:
      - alert: VMHighMemory
        expr: kubevirt_vm_memory_usage_bytes / kubevirt_vm_memory_available_bytes > 0.9
        for: 2s
        labels:
          severity: warning
  - name: vm.recorded
    rules:
      - record: cluster:vm_memory_usage:ratio
        expr: kubevirt_vm_memory_usage_bytes / kubevirt_vm_memory_available_bytes
"#;

/// The same file with a second alert in the first group.
const RULES_ADDED: &str = r#"groups:
  - name: vm.memory
    rules:
      - alert: VMHighMemory
        expr: kubevirt_vm_memory_usage_bytes / kubevirt_vm_memory_available_bytes > 0.9
        for: 2s
        labels:
          severity: warning
      - alert: VMMemoryAboveHalf
        expr: kubevirt_vm_memory_usage_bytes / kubevirt_vm_memory_available_bytes > 0.5
        for: 1h
        labels:
          severity: info
  - name: vm.recorded
    rules:
      - record: cluster:vm_memory_usage:ratio
        expr: kubevirt_vm_memory_usage_bytes / kubevirt_vm_memory_available_bytes
"#;

/// A file whose expression does not parse.
const RULES_BROKEN: &str = r#"groups:
  - name: vm.memory
    rules:
      - alert: VMHighMemory
        expr: sum(kubevirt_vm_memory_usage_bytes
"#;

const FIRING: &[(&str, &str)] = &[("alertname", "VMHighMemory"), ("name", "db-0")];
const ADDED: &[(&str, &str)] = &[("alertname", "VMMemoryAboveHalf"), ("name", "db-0")];

fn write_high_memory(hub: &str) {
    write_samples(
        hub,
        &[
            (
                &[
                    ("__name__", "kubevirt_vm_memory_usage_bytes"),
                    ("cluster", "prod-a"),
                    ("namespace", "vms"),
                    ("name", "db-0"),
                ],
                95.0,
            ),
            (
                &[
                    ("__name__", "kubevirt_vm_memory_available_bytes"),
                    ("cluster", "prod-a"),
                    ("namespace", "vms"),
                    ("name", "db-0"),
                ],
                100.0,
            ),
        ],
    );
}

/// The active alert whose labels include `labels`.
fn find_alert(hub: &str, labels: &[(&str, &str)]) -> Option<Value> {
    hub_alerts(hub)
        .into_iter()
        .find(|a| labels.iter().all(|(k, v)| a["labels"][k] == *v))
}

/// `(group, rule)` names of `/api/v1/rules`, in order.
fn rule_names(hub: &str) -> Vec<(String, String)> {
    let body: Value = http()
        .get(format!("http://{hub}/api/v1/rules"))
        .send()
        .and_then(|r| r.json())
        .expect("rules api");
    let mut out = Vec::new();
    for g in body["data"]["groups"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        for r in g["rules"].as_array().cloned().unwrap_or_default() {
            out.push((
                g["name"].as_str().unwrap_or("").to_string(),
                r["name"].as_str().unwrap_or("").to_string(),
            ));
        }
    }
    out
}

fn names(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(g, r)| (g.to_string(), r.to_string()))
        .collect()
}

fn reload(hub: &str) -> (u16, String) {
    let resp = http()
        .post(format!("http://{hub}/-/reload"))
        .send()
        .expect("POST /-/reload");
    (resp.status().as_u16(), resp.text().unwrap_or_default())
}

/// A sample of the hub's `/metrics` without labels.
fn hub_metric(hub: &str, name: &str) -> Option<f64> {
    let text = http()
        .get(format!("http://{hub}/metrics"))
        .send()
        .and_then(|r| r.text())
        .ok()?;
    text.lines().find_map(|l| {
        let (n, v) = l.split_once(' ')?;
        (n == name).then(|| parse_float(v.trim()))?
    })
}

/// The group's last evaluation time as `/api/v1/rules` shows it.
fn last_evaluation(hub: &str, group: &str) -> Option<String> {
    let body: Value = http()
        .get(format!("http://{hub}/api/v1/rules"))
        .send()
        .and_then(|r| r.json())
        .ok()?;
    body["data"]["groups"]
        .as_array()?
        .iter()
        .find(|g| g["name"] == group)
        .and_then(|g| g["lastEvaluation"].as_str().map(str::to_string))
}

fn write_rules(dir: &Path, text: &str) {
    std::fs::write(dir.join("rules.yaml"), text).expect("write rules");
}

#[test]
fn reload_keeps_alert_state_adds_rules_and_refuses_broken_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write_rules(tmp.path(), RULES);
    let config = tmp.path().join("hub.yaml");
    std::fs::write(
        &config,
        "rule_files: [rules.yaml]\nglobal:\n  evaluation_interval: 1s\n",
    )
    .expect("write hub config");
    let hub = start_hub(
        &tmp.path().join("data"),
        tmp.path(),
        &["--config", config.to_str().expect("utf-8")],
    );
    let addr = hub.addr.clone();
    let context = || format!("alerts: {:?}\n{}", hub_alerts(&addr), hub.proc.log());

    write_high_memory(&addr);
    let firing = wait_for(
        "VMHighMemory firing",
        Duration::from_secs(10),
        context,
        || find_alert(&addr, FIRING).filter(|a| a["state"] == "firing"),
    );
    let active_at = firing["activeAt"].clone();
    assert!(active_at.is_string(), "{firing}");

    // Add a rule to the changed group and reload.
    write_rules(tmp.path(), RULES_ADDED);
    let (status, body) = reload(&addr);
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("1 unchanged, 1 changed"),
        "the memory group changed, the recording group did not: {body}"
    );
    let added = wait_for(
        "the added rule's alert",
        Duration::from_secs(5),
        context,
        || find_alert(&addr, ADDED),
    );
    assert_eq!(added["state"], "pending", "{added}");
    let kept = find_alert(&addr, FIRING).expect("VMHighMemory still active");
    assert_eq!(kept["state"], "firing", "{kept}");
    assert_eq!(kept["activeAt"], active_at, "activeAt kept over the reload");
    assert_eq!(
        rule_names(&addr),
        names(&[
            ("vm.memory", "VMHighMemory"),
            ("vm.memory", "VMMemoryAboveHalf"),
            ("vm.recorded", "cluster:vm_memory_usage:ratio"),
        ])
    );
    assert_eq!(
        hub_metric(&addr, "fleetwatch_rules_config_last_reload_successful"),
        Some(1.0)
    );

    // A broken file is refused; the rules in force keep running.
    write_rules(tmp.path(), RULES_BROKEN);
    let (status, body) = reload(&addr);
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("could not parse expression"), "{body}");
    assert_eq!(
        hub_metric(&addr, "fleetwatch_rules_config_last_reload_successful"),
        Some(0.0)
    );
    assert_eq!(
        hub_metric(&addr, "fleetwatch_rules_config_reload_failures_total"),
        Some(1.0)
    );
    assert_eq!(rule_names(&addr).len(), 3, "old rules kept");
    let before = last_evaluation(&addr, "vm.memory").expect("evaluated");
    wait_for(
        "an evaluation after the refused reload",
        Duration::from_secs(5),
        context,
        || (last_evaluation(&addr, "vm.memory").as_ref() != Some(&before)).then_some(()),
    );
    let kept = find_alert(&addr, FIRING).expect("VMHighMemory still active");
    assert_eq!(
        (&kept["state"], &kept["activeAt"]),
        (&Value::from("firing"), &active_at)
    );

    // SIGHUP reloads too: back to the first file, the added rule is gone.
    write_rules(tmp.path(), RULES);
    hub.proc.signal("HUP");
    wait_for(
        "the rules after SIGHUP",
        Duration::from_secs(5),
        context,
        || (rule_names(&addr).len() == 2).then_some(()),
    );
    assert_eq!(
        hub_metric(&addr, "fleetwatch_rules_config_last_reload_successful"),
        Some(1.0)
    );
    let kept = find_alert(&addr, FIRING).expect("VMHighMemory still active");
    assert_eq!(
        (&kept["state"], &kept["activeAt"]),
        (&Value::from("firing"), &active_at)
    );
    assert!(
        find_alert(&addr, ADDED).is_none(),
        "the removed rule's alert is gone"
    );
}
