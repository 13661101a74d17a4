//! The Grafana dashboards in `dashboards/` against a running hub fed by
//! two simulated clusters (through collectors) plus directly written
//! `ALERTS` series: every dashboard parses, uses the `fleetwatch`
//! datasource, every panel query (with Grafana's variables substituted)
//! answers `success` as an instant and as a range query, the fleet
//! overview's and the per-cluster and per-VM panels return data, and every
//! `label_values(...)` variable is answered by `/api/v1/label/<name>/values`
//! with values that include the ones substituted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use fleetwatch_model::remote_write::SeriesSamples;
use fleetwatch_model::{Labels, Sample};
use serde_json::Value;

use super::federate::{now_ms, remote_write};
use super::support::*;

const DASHBOARDS: [&str; 5] = ["fleet-overview", "cluster", "vm", "migrations", "alerts"];

fn dashboards_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards")
}

fn load(name: &str) -> Value {
    let path = dashboards_dir().join(format!("{name}.json"));
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}.json does not parse: {e}"))
}

/// Every panel, rows' nested panels included.
fn panels(dash: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for p in dash["panels"].as_array().cloned().unwrap_or_default() {
        if let Some(inner) = p["panels"].as_array() {
            out.extend(inner.iter().cloned());
        }
        if p["type"] != "row" {
            out.push(p);
        }
    }
    out
}

/// Replaces Grafana's variables (`$name` and `${name}`), longest names
/// first so `$__range` does not eat `$__range_s` and the like.
fn substitute(expr: &str, vars: &BTreeMap<String, String>) -> String {
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    let mut out = expr.to_string();
    for n in names {
        out = out.replace(&format!("${{{n}}}"), &vars[n]);
        out = out.replace(&format!("${n}"), &vars[n]);
    }
    out
}

/// `label_values(selector, label)` or `label_values(label)`.
fn parse_label_values(q: &str) -> Option<(Option<String>, String)> {
    let inner = q.trim().strip_prefix("label_values(")?.strip_suffix(')')?;
    match inner.rsplit_once(',') {
        Some((sel, label)) => Some((Some(sel.trim().to_string()), label.trim().to_string())),
        None => Some((None, inner.trim().to_string())),
    }
}

fn api_get(base: &str, path: &str, params: &[(&str, &str)]) -> Value {
    http()
        .get(format!("http://{base}{path}"))
        .query(params)
        .send()
        .and_then(|r| r.json())
        .unwrap_or_else(|e| panic!("GET {path} {params:?}: {e}"))
}

fn api_post(base: &str, path: &str, params: &[(&str, &str)]) -> Value {
    http()
        .post(format!("http://{base}{path}"))
        .form(params)
        .send()
        .and_then(|r| r.json())
        .unwrap_or_else(|e| panic!("POST {path} {params:?}: {e}"))
}

/// Series that exist only while a migration runs or after one finished
/// (a frozen simulator has none), and filters that keep only increases.
fn may_be_empty(expr: &str) -> bool {
    expr.contains("kubevirt_vmi_migration_") || expr.contains(") > 0)")
}

fn alerts(now: i64) -> Vec<SeriesSamples> {
    let alert = |name: &str, state: &str, cluster: &str, severity: &str, vm: &str| SeriesSamples {
        labels: Labels::from_pairs([
            ("__name__", "ALERTS"),
            ("alertname", name),
            ("alertstate", state),
            ("cluster", cluster),
            ("name", vm),
            ("namespace", "infra"),
            ("severity", severity),
        ]),
        samples: (0..6)
            .map(|k| Sample::new(now - 50_000 + k * 10_000, 1.0))
            .collect(),
    };
    vec![
        alert("VMHighMemory", "firing", "dash-west", "warning", "vm-0001"),
        alert("VMHighMemory", "firing", "dash-west", "warning", "vm-0002"),
        alert(
            "VMMigrationFailed",
            "firing",
            "dash-east",
            "critical",
            "vm-0003",
        ),
        alert("VMHighMemory", "pending", "dash-east", "warning", "vm-0004"),
    ]
}

#[test]
fn dashboards_parse_and_every_query_answers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let hub = start_hub(&tmp.path().join("hub"), tmp.path(), &[]);
    let write_url = format!("http://{}/api/v1/write", hub.addr);
    let vms = 12;
    let (_east, east_addr) = start_simulator("sim-east", "dash-east", vms, 3, &[], tmp.path());
    let (_west, west_addr) = start_simulator(
        "sim-west",
        "dash-west",
        vms,
        4,
        &["--scenario", "memory-pressure"],
        tmp.path(),
    );
    let mut collectors = Vec::new();
    for (cluster, addr) in [("dash-east", &east_addr), ("dash-west", &west_addr)] {
        let cfg = collector_config(tmp.path(), cluster, &[("kubevirt", addr)], &write_url);
        collectors.push(start_collector(
            &format!("collector-{cluster}"),
            &cfg,
            &tmp.path().join(format!("cd-{cluster}")),
            tmp.path(),
        ));
    }
    remote_write(&hub.addr, &alerts(now_ms()));
    // Enough scrapes of both clusters for rates over a minute.
    wait_for(
        "three scrapes of both clusters at the hub",
        Duration::from_secs(60),
        || collectors.iter().map(Proc::log).collect::<String>() + &hub.proc.log(),
        || {
            let r = try_query(
                &hub.addr,
                "min by (cluster) (count_over_time(kubevirt_vm_memory_usage_bytes[1m])) >= 3",
            )?;
            (r.len() == 2).then_some(())
        },
    );
    // Concrete values for the template variables: a hot VM in dash-west.
    let hot = query(
        &hub.addr,
        "kubevirt_vm_memory_usage_bytes{cluster=\"dash-west\"} / kubevirt_vm_memory_available_bytes > 0.9",
    );
    let vm = hot
        .first()
        .map(metric)
        .expect("memory pressure in dash-west shows a hot VM");
    let vars: BTreeMap<String, String> = [
        ("cluster", "dash-west"),
        ("namespace", vm["namespace"].as_str()),
        ("vm", vm["name"].as_str()),
        ("__rate_interval", "1m"),
        ("__interval", "15s"),
        ("__range", "1h"),
        ("__range_s", "3600"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();

    // Grafana's time range: the last hour for label lookups, and a
    // step-aligned range for range queries.
    let now_s = now_ms() / 1000 + 1;
    let (lv_start, lv_end) = ((now_s - 3600).to_string(), now_s.to_string());
    let (start, end) = (
        ((now_s - 120) / 15 * 15).to_string(),
        ((now_s + 14) / 15 * 15).to_string(),
    );
    let mut uids = BTreeSet::new();
    let mut checked = 0;
    for name in DASHBOARDS {
        let dash = load(name);
        assert!(
            dash["schemaVersion"].as_i64().is_some_and(|v| v >= 36),
            "{name}: schemaVersion"
        );
        let uid = dash["uid"].as_str().expect("dashboard uid").to_string();
        assert!(uids.insert(uid), "{name}: duplicate dashboard uid");
        assert!(dash["title"].as_str().is_some_and(|t| !t.is_empty()));

        // Variables: label_values(...) answered, with the value we use.
        for var in dash["templating"]["list"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let vname = var["name"].as_str().expect("variable name");
            assert_eq!(var["datasource"]["uid"], "fleetwatch", "{name}: ${vname}");
            let q = var["query"]["query"]
                .as_str()
                .or(var["query"].as_str())
                .unwrap_or_else(|| panic!("{name}: ${vname} has no query"));
            let q = substitute(q, &vars);
            let (selector, label) = parse_label_values(&q)
                .unwrap_or_else(|| panic!("{name}: ${vname} is not label_values(...): {q}"));
            let mut params = vec![("start", lv_start.as_str()), ("end", lv_end.as_str())];
            if let Some(sel) = selector.as_deref() {
                params.push(("match[]", sel));
            }
            let body = api_get(&hub.addr, &format!("/api/v1/label/{label}/values"), &params);
            assert_eq!(body["status"], "success", "{name}: ${vname} {q}: {body}");
            let values: Vec<&str> = body["data"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            assert!(!values.is_empty(), "{name}: ${vname} {q} has no values");
            if let Some(v) = vars.get(vname) {
                assert!(
                    values.contains(&v.as_str()),
                    "{name}: ${vname} {q}: {values:?} lacks {v}"
                );
            }
            checked += 1;
        }

        let mut ids = BTreeSet::new();
        for panel in panels(&dash) {
            let title = panel["title"].as_str().unwrap_or_default().to_string();
            assert!(
                ids.insert(panel["id"].to_string()),
                "{name}: duplicate panel id ({title})"
            );
            assert_eq!(panel["datasource"]["uid"], "fleetwatch", "{name}: {title}");
            let targets = panel["targets"].as_array().cloned().unwrap_or_default();
            assert!(!targets.is_empty(), "{name}: {title} has no targets");
            for target in targets {
                assert_eq!(target["datasource"]["uid"], "fleetwatch", "{name}: {title}");
                let expr = target["expr"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{name}: {title}: target without expr"));
                let q = substitute(expr, &vars);
                assert!(
                    !q.contains('$'),
                    "{name}: {title}: unsubstituted variable in {q}"
                );
                let body = api_post(&hub.addr, "/api/v1/query", &[("query", &q)]);
                assert_eq!(body["status"], "success", "{name}: {title}: {q}: {body}");
                let result = body["data"]["result"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let needs_data = name != "migrations" || !may_be_empty(expr);
                assert!(
                    !needs_data || !result.is_empty(),
                    "{name}: {title}: {q} returned no data"
                );
                let body = api_post(
                    &hub.addr,
                    "/api/v1/query_range",
                    &[
                        ("query", &q),
                        ("start", &start),
                        ("end", &end),
                        ("step", "15"),
                    ],
                );
                assert_eq!(
                    body["status"], "success",
                    "{name}: {title}: range {q}: {body}"
                );
                assert_eq!(body["data"]["resultType"], "matrix", "{name}: {title}");
                checked += 1;
            }
        }
    }
    assert!(checked > 80, "only {checked} queries checked");

    // Provisioning: the datasource uid the dashboards use, and a provider.
    let ds =
        std::fs::read_to_string(dashboards_dir().join("provisioning/datasources/fleetwatch.yaml"))
            .expect("datasource provisioning");
    assert!(ds.contains("uid: fleetwatch") && ds.contains("type: prometheus"));
    let prov =
        std::fs::read_to_string(dashboards_dir().join("provisioning/dashboards/fleetwatch.yaml"))
            .expect("dashboard provisioning");
    assert!(prov.contains("providers:") && prov.contains("type: file"));
    for c in &mut collectors {
        c.assert_running();
    }
}
