//! Tests of the simulator as a whole: determinism, value bounds, the
//! exposition text parsed back, migrations and logs.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use fleetwatch_model::exposition::{write_help_line, write_sample_line, write_type_line};
use fleetwatch_model::{is_valid_label_name, is_valid_metric_name, Labels};

use crate::render::FAMILIES;
use crate::{Scenario, Simulator, SimulatorOptions};

/// 2024-05-01T00:00:00Z.
const T0: i64 = 1_714_521_600_000;

fn opts(vms: usize, seed: u64, scenarios: &[Scenario]) -> SimulatorOptions {
    SimulatorOptions {
        cluster: "test".into(),
        vms,
        nodes: None,
        scenarios: scenarios.to_vec(),
        seed,
        log_dir: None,
    }
}

/// One parsed sample: name, labels (without the name), value.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A strict parser for what the simulator writes: HELP then TYPE for each
/// family, then its samples; labels in name order; no timestamps. Panics
/// with the offending line on any deviation.
fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    let mut family: Option<String> = None;
    let mut help_for: Option<String> = None;
    let mut declared = BTreeSet::new();
    let mut series = BTreeSet::new();
    assert!(text.ends_with('\n'), "text must end with a newline");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, _) = rest.split_once(' ').unwrap_or((rest, ""));
            assert!(is_valid_metric_name(name), "bad HELP line {line:?}");
            help_for = Some(name.to_string());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .unwrap_or_else(|| panic!("bad TYPE line {line:?}"));
            assert!(matches!(kind, "gauge" | "counter"), "bad type in {line:?}");
            assert_eq!(
                help_for.as_deref(),
                Some(name),
                "TYPE without HELP: {line:?}"
            );
            assert!(
                declared.insert(name.to_string()),
                "family declared twice: {line:?}"
            );
            if kind == "counter" {
                assert!(name.ends_with("_total"), "counter without _total: {line:?}");
            }
            family = Some(name.to_string());
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "unexpected line {line:?}"
        );
        let s = parse_sample(line);
        assert_eq!(
            family.as_deref(),
            Some(s.name.as_str()),
            "sample outside its family: {line:?}"
        );
        assert!(
            s.value.is_finite() && s.value >= 0.0,
            "bad value in {line:?}"
        );
        let key = format!("{}{:?}", s.name, s.labels);
        assert!(series.insert(key), "duplicate series {line:?}");
        out.push(s);
    }
    out
}

fn parse_sample(line: &str) -> Sample {
    let end = line
        .find(['{', ' '])
        .unwrap_or_else(|| panic!("no value in {line:?}"));
    let name = &line[..end];
    assert!(is_valid_metric_name(name), "bad name in {line:?}");
    let mut rest = &line[end..];
    let mut labels = BTreeMap::new();
    let mut last = String::new();
    if let Some(r) = rest.strip_prefix('{') {
        rest = r;
        loop {
            let eq = rest
                .find("=\"")
                .unwrap_or_else(|| panic!("bad labels in {line:?}"));
            let lname = &rest[..eq];
            assert!(
                is_valid_label_name(lname) && lname > last.as_str(),
                "label {lname:?} invalid or out of order in {line:?}"
            );
            last = lname.to_string();
            let mut value = String::new();
            let mut chars = rest[eq + 2..].char_indices();
            let close = loop {
                match chars.next() {
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, c @ ('\\' | '"'))) => value.push(c),
                        other => panic!("bad escape {other:?} in {line:?}"),
                    },
                    Some((i, '"')) => break eq + 2 + i,
                    Some((_, c)) => value.push(c),
                    None => panic!("unterminated label value in {line:?}"),
                }
            };
            assert!(!value.is_empty(), "empty label value in {line:?}");
            labels.insert(lname.to_string(), value);
            rest = &rest[close + 1..];
            if let Some(r) = rest.strip_prefix(',') {
                rest = r;
            } else if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            } else {
                panic!("bad label separator in {line:?}");
            }
        }
    }
    let v = rest
        .strip_prefix(' ')
        .unwrap_or_else(|| panic!("no space before value in {line:?}"));
    assert!(
        !v.contains(' '),
        "timestamp or junk after value in {line:?}"
    );
    let value: f64 = v
        .parse()
        .unwrap_or_else(|_| panic!("bad value in {line:?}"));
    Sample {
        name: name.to_string(),
        labels,
        value,
    }
}

/// Per VM name: (usage, available) from the seed's families.
fn ratios(samples: &[Sample]) -> BTreeMap<String, (f64, f64)> {
    let mut m: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for s in samples {
        let slot = match s.name.as_str() {
            "kubevirt_vm_memory_usage_bytes" => 0,
            "kubevirt_vm_memory_available_bytes" => 1,
            _ => continue,
        };
        let e = m
            .entry(s.labels["name"].clone())
            .or_insert((f64::NAN, f64::NAN));
        if slot == 0 {
            e.0 = s.value;
        } else {
            e.1 = s.value;
        }
    }
    m
}

fn hot_from_text(samples: &[Sample]) -> Vec<String> {
    ratios(samples)
        .into_iter()
        .filter(|(_, (u, a))| u / a > 0.9)
        .map(|(n, _)| n)
        .collect()
}

#[test]
fn same_seed_same_output() {
    let a = Simulator::new(opts(60, 7, &[Scenario::MigrationFailures]));
    let b = Simulator::new(opts(60, 7, &[Scenario::MigrationFailures]));
    for i in 0..40 {
        let now = T0 + i * 15_000;
        assert_eq!(a.render(now), b.render(now), "render {i}");
    }
    assert_eq!(a.hot_vms(), b.hot_vms());
    // The first render does not depend on the wall clock.
    let c = Simulator::new(opts(60, 7, &[]));
    let d = Simulator::new(opts(60, 7, &[]));
    assert_eq!(c.render(T0), d.render(T0 + 86_400_000));
    // Another seed, another fleet.
    let e = Simulator::new(opts(60, 8, &[]));
    assert_ne!(c.render(T0 + 1), e.render(T0 + 1));
}

#[test]
fn same_instant_same_text_and_clock_going_back_moves_nothing() {
    let s = Simulator::new(opts(30, 3, &[]));
    s.render(T0);
    let first = s.render(T0 + 30_000);
    assert_eq!(s.render(T0 + 30_000), first);
    assert_eq!(s.render(T0 + 10_000), first);
    assert_ne!(s.render(T0 + 45_000), first);
}

#[test]
fn scenario_does_not_change_the_fleet_only_its_heat() {
    let normal = Simulator::new(opts(100, 11, &[]));
    let pressure = Simulator::new(opts(100, 11, &[Scenario::MemoryPressure]));
    normal.render(T0);
    pressure.render(T0);
    let names = |s: &Simulator| -> Vec<Labels> {
        s.last_values("kubevirt_vm_memory_available_bytes")
            .into_iter()
            .map(|(l, _)| l)
            .collect()
    };
    assert_eq!(names(&normal), names(&pressure));
    let hot: BTreeSet<String> = normal.hot_vms().into_iter().collect();
    let hot_p: BTreeSet<String> = pressure.hot_vms().into_iter().collect();
    assert_eq!(hot.len(), 5);
    assert_eq!(hot_p.len(), 30);
    assert!(hot.is_subset(&hot_p));
}

#[test]
fn hot_vms_match_the_text_and_stay_in_bounds() {
    for (scenarios, vms, expected) in [
        (vec![], 100, 5),
        (vec![Scenario::MemoryPressure], 100, 30),
        (vec![], 20, 1),
    ] {
        let s = Simulator::new(opts(vms, 5, &scenarios));
        let mut first_hot = None;
        // Two hours, a render every four minutes.
        for i in 0..30 {
            let text = s.render(T0 + i * 240_000);
            let samples = parse(&text);
            let r = ratios(&samples);
            assert_eq!(r.len(), vms);
            let hot = s.hot_vms();
            assert_eq!(hot, hot_from_text(&samples), "render {i}");
            assert_eq!(hot.len(), expected, "render {i} {scenarios:?}");
            for (name, (u, a)) in &r {
                let ratio = u / a;
                if hot.contains(name) {
                    assert!(ratio > 0.91 && ratio < 0.98, "{name} hot at {ratio}");
                } else {
                    assert!(ratio <= 0.85, "{name} warm at {ratio}");
                }
            }
            // The same VMs stay hot.
            assert_eq!(first_hot.get_or_insert_with(|| hot.clone()), &hot);
        }
    }
}

#[test]
fn counters_never_go_back() {
    let s = Simulator::new(opts(
        40,
        9,
        &[Scenario::MigrationFailures, Scenario::MemoryPressure],
    ));
    let mut kinds: HashMap<String, String> = HashMap::new();
    let mut last: HashMap<String, f64> = HashMap::new();
    let mut grew = 0usize;
    for i in 0..60 {
        let text = s.render(T0 + i * 20_000);
        for line in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
            if let Some((n, k)) = line.split_once(' ') {
                kinds.insert(n.to_string(), k.to_string());
            }
        }
        for sm in parse(&text) {
            let cumulative = kinds[&sm.name] == "counter" || sm.name.ends_with("_traffic_bytes");
            if !cumulative {
                continue;
            }
            // VMs move between nodes: a VM's series is the same series
            // whatever its node.
            let mut labels = sm.labels.clone();
            if labels.contains_key("name") {
                labels.remove("node");
            }
            let key = format!("{}{labels:?}", sm.name);
            if let Some(prev) = last.insert(key.clone(), sm.value) {
                assert!(sm.value >= prev, "{key} went from {prev} to {}", sm.value);
                if sm.value > prev {
                    grew += 1;
                }
            }
        }
    }
    assert!(grew > 10_000, "counters should move: {grew}");
}

#[test]
fn text_is_what_the_model_writer_writes_from_last_values() {
    let s = Simulator::new(opts(50, 21, &[Scenario::MigrationFailures]));
    // Render until a migration is running, so every family has samples.
    let mut rendered = None;
    for i in 0..200 {
        let text = s.render(T0 + i * 5_000);
        if FAMILIES.iter().all(|f| !s.last_values(f.name).is_empty()) {
            rendered = Some(text);
            break;
        }
    }
    let text = rendered.expect("a render where every family has samples");
    let mut expected = String::new();
    for fam in FAMILIES {
        write_help_line(&mut expected, fam.name, fam.help);
        write_type_line(&mut expected, fam.name, fam.kind_str());
        for (labels, v) in s.last_values(fam.name) {
            assert_eq!(labels.metric_name(), Some(fam.name));
            write_sample_line(&mut expected, &labels, v, None);
        }
    }
    assert_eq!(text, expected);
    assert!(s.last_values("no_such_metric").is_empty());
}

#[test]
fn families_follow_the_spec() {
    let s = Simulator::new(opts(30, 2, &[]));
    let samples = parse(&s.render(T0));
    let by_name = |n: &str| samples.iter().filter(|s| s.name == n).collect::<Vec<_>>();
    let label_names = |s: &Sample| s.labels.keys().cloned().collect::<Vec<_>>();
    for n in [
        "kubevirt_vm_memory_usage_bytes",
        "kubevirt_vm_memory_available_bytes",
        "kubevirt_vm_migration_failed_total",
    ] {
        let got = by_name(n);
        assert_eq!(got.len(), 30, "{n}");
        assert!(
            got.iter()
                .all(|s| label_names(s) == ["name", "namespace", "node"]),
            "{n}"
        );
    }
    for n in [
        "kubevirt_vmi_memory_available_bytes",
        "kubevirt_vmi_memory_usable_bytes",
        "kubevirt_vmi_memory_used_bytes",
        "kubevirt_vmi_cpu_usage_seconds_total",
    ] {
        let got = by_name(n);
        assert_eq!(got.len(), 30, "{n}");
        for s in got {
            let names = label_names(s);
            assert!(
                names.ends_with(&["name".into(), "namespace".into(), "node".into()]),
                "{n} {names:?}"
            );
            assert!(names
                .iter()
                .take(names.len() - 3)
                .all(|l| l.starts_with("kubernetes_vmi_label_")));
        }
    }
    // Some VMs carry VMI labels, most do not.
    let labelled = by_name("kubevirt_vmi_memory_used_bytes")
        .iter()
        .filter(|s| s.labels.contains_key("kubernetes_vmi_label_app"))
        .count();
    assert!((1..15).contains(&labelled), "{labelled}");
    assert!(by_name("kubevirt_vmi_network_receive_bytes_total")
        .iter()
        .all(|s| s.labels.contains_key("interface")));
    assert!(by_name("kubevirt_vmi_storage_write_traffic_bytes_total")
        .iter()
        .all(|s| s.labels.contains_key("drive")));
    assert!(by_name("kubevirt_vmi_vcpu_seconds_total")
        .iter()
        .all(|s| s.labels.contains_key("id") && s.labels["state"] == "running"));
    let info = by_name("kubevirt_vmi_info");
    assert_eq!(info.len(), 30);
    for l in [
        "node",
        "namespace",
        "name",
        "phase",
        "os",
        "workload",
        "flavor",
        "instance_type",
        "preference",
        "guest_os_name",
        "evictable",
        "vmi_pod",
    ] {
        assert!(
            info.iter()
                .all(|s| s.labels.contains_key(l) && s.value == 1.0),
            "{l}"
        );
    }
    // The seed's names agree with KubeVirt's.
    let value = |n: &str, vm: &str| {
        samples
            .iter()
            .find(|s| s.name == n && s.labels["name"] == vm)
            .map(|s| s.value)
            .unwrap_or(f64::NAN)
    };
    for vm in ["vm-0001", "vm-0017", "vm-0030"] {
        let avail = value("kubevirt_vmi_memory_available_bytes", vm);
        assert_eq!(value("kubevirt_vm_memory_available_bytes", vm), avail);
        let used = value("kubevirt_vm_memory_usage_bytes", vm);
        assert_eq!(value("kubevirt_vmi_memory_used_bytes", vm), used);
        assert_eq!(avail - value("kubevirt_vmi_memory_usable_bytes", vm), used);
        assert!(value("kubevirt_vmi_memory_domain_bytes", vm) > avail);
    }
    // Nodes: 30 VMs, 3 nodes.
    let nodes: BTreeSet<String> = by_name("node_memory_MemTotal_bytes")
        .iter()
        .map(|s| s.labels["node"].clone())
        .collect();
    assert_eq!(
        nodes,
        ["test-node-01", "test-node-02", "test-node-03"]
            .map(String::from)
            .into()
    );
    for s in by_name("node_memory_MemAvailable_bytes") {
        assert!(s.value > 0.0);
    }
    let cpu = by_name("node_cpu_seconds_total");
    assert!(cpu.len() >= 3 * 16 * 8);
    assert!(cpu
        .iter()
        .all(|s| label_names(s) == ["cpu", "mode", "node"]));
    assert_eq!(by_name("node_load1").len(), 3);
    for n in ["pending", "scheduling", "running", "unset"] {
        assert_eq!(
            by_name(&format!("kubevirt_vmi_migrations_in_{n}_phase")).len(),
            1
        );
    }
}

#[test]
fn node_counts_and_names() {
    let count = |vms: usize, nodes: Option<usize>| {
        let s = Simulator::new(SimulatorOptions {
            nodes,
            ..opts(vms, 1, &[])
        });
        s.render(T0);
        s.last_values("node_load1").len()
    };
    assert_eq!(count(25, None), 3);
    assert_eq!(count(0, None), 1);
    assert_eq!(count(5, Some(0)), 1);
    assert_eq!(count(5, Some(4)), 4);
    let s = Simulator::new(SimulatorOptions {
        cluster: "we\"ird".into(),
        ..opts(0, 1, &[])
    });
    let text = s.render(T0);
    assert!(
        text.contains("node_load1{node=\"we\\\"ird-node-01\"}"),
        "{text}"
    );
    assert!(s.hot_vms().is_empty());
    parse(&text);
}

#[test]
fn migrations_fail_rarely_normally_and_often_under_the_scenario() {
    let failures = |scenarios: &[Scenario]| {
        let s = Simulator::new(opts(50, 4, scenarios));
        let mut moved = 0;
        let mut prev: Option<Vec<(Labels, f64)>> = None;
        for i in 0..=240 {
            s.render(T0 + i * 15_000);
            let cur = s.last_values("kubevirt_vm_migration_failed_total");
            if let Some(p) = &prev {
                moved += p.iter().zip(&cur).filter(|(a, b)| a.0 != b.0).count();
            }
            prev = Some(cur);
        }
        let total: f64 = s
            .last_values("kubevirt_vm_migration_failed_total")
            .iter()
            .map(|(_, v)| v)
            .sum();
        let objects = s.last_values("kubevirt_vmi_migration_failed").len();
        (total, moved, objects)
    };
    // One hour, 50 VMs.
    let (normal, normal_moved, _) = failures(&[]);
    let (bad, bad_moved, objects) = failures(&[Scenario::MigrationFailures]);
    assert!(normal <= 2.0, "normal failures {normal}");
    assert!(normal_moved <= 30, "normal migrations {normal_moved}");
    assert!(bad >= 60.0, "failures under the scenario {bad}");
    assert!(
        bad_moved >= 20,
        "successful migrations move VMs: {bad_moved}"
    );
    assert!(objects > 0 && objects <= 50 * 3);
}

#[test]
fn renders_a_thousand_vms_quickly() {
    let s = Simulator::new(opts(1000, 1, &[]));
    s.render(T0);
    let start = std::time::Instant::now();
    let text = s.render(T0 + 15_000);
    let took = start.elapsed();
    assert!(text.len() > 1_000_000);
    assert_eq!(s.hot_vms().len(), 50);
    // Generous: debug builds are slow and CI machines are shared. A release
    // build takes a few milliseconds.
    assert!(
        took < std::time::Duration::from_secs(2),
        "render took {took:?}"
    );
}

#[test]
fn logs_land_in_the_pod_log_layout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Simulator::new(SimulatorOptions {
        log_dir: Some(dir.path().to_path_buf()),
        ..opts(20, 6, &[Scenario::MigrationFailures])
    });
    s.render(T0);
    let info = s.last_values("kubevirt_vmi_info");
    let mut files = BTreeMap::new();
    for (labels, _) in &info {
        let (Some(ns), Some(name), Some(pod)) = (
            labels.get("namespace"),
            labels.get("name"),
            labels.get("vmi_pod"),
        ) else {
            panic!("info labels {labels}");
        };
        assert_eq!(pod, format!("virt-launcher-{name}"));
        let prefix = format!("{ns}_{pod}_");
        let entry = std::fs::read_dir(dir.path())
            .expect("read dir")
            .filter_map(Result::ok)
            .find(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .unwrap_or_else(|| panic!("no pod dir for {name}"));
        let uid = entry.file_name().to_string_lossy()[prefix.len()..].to_string();
        assert_eq!(uid.len(), 36, "uid {uid}");
        files.insert(name.to_string(), entry.path().join("compute").join("0.log"));
    }
    assert_eq!(files.len(), 20);
    let read = |f: &std::path::Path| std::fs::read_to_string(f).expect("log file");
    for (name, f) in &files {
        let text = read(f);
        assert!(text.contains("Domain started"), "{name}: {text}");
        for line in text.lines() {
            let mut parts = line.splitn(4, ' ');
            let ts = parts.next().unwrap_or_default();
            assert_eq!(ts.len(), 30, "{line}");
            assert!(ts.ends_with('Z') && ts.as_bytes()[10] == b'T', "{line}");
            assert_eq!(parts.next(), Some("stdout"));
            assert_eq!(parts.next(), Some("F"));
            let msg = parts.next().unwrap_or_default();
            assert!(msg.starts_with('{') && msg.ends_with('}'), "{line}");
            assert!(msg.contains(&format!("\"name\":\"{name}\"")), "{line}");
        }
    }
    let total_lines = |files: &BTreeMap<String, std::path::PathBuf>| -> usize {
        files.values().map(|f| read(f).lines().count()).sum()
    };
    let mut lines = total_lines(&files);
    for i in 1..=120 {
        s.render(T0 + i * 15_000);
        let now = total_lines(&files);
        assert!(now - lines <= crate::logs::LINES_PER_RENDER);
        lines = now;
    }
    let all: String = files.values().map(|f| read(f)).collect();
    assert!(all.contains("Guest agent connected"));
    assert!(all.contains("Starting live migration of VirtualMachineInstance"));
    let failed: Vec<&str> = all
        .lines()
        .filter(|l| l.contains("failed (migration"))
        .collect();
    assert!(!failed.is_empty());
    for l in failed {
        assert!(l.contains("\"level\":\"error\""));
        let name = l
            .split("\"name\":\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or_default();
        assert!(
            l.contains(&format!("/{name} ")),
            "message names the VM: {l}"
        );
    }
}

#[test]
fn log_queue_is_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Simulator::new(SimulatorOptions {
        log_dir: Some(dir.path().to_path_buf()),
        ..opts(600, 6, &[])
    });
    // 1,200 boot lines, 256 per render.
    s.render(T0);
    let queued = |s: &Simulator| {
        crate::lock(&s.inner.state)
            .logs
            .as_ref()
            .map(|q| q.len())
            .unwrap_or(0)
    };
    // Every VM has been up for a minute at least: its agent connected.
    assert_eq!(queued(&s), 2 * 600 - crate::logs::LINES_PER_RENDER);
    for i in 1..10 {
        s.render(T0 + i);
    }
    assert_eq!(queued(&s), 0);
}
