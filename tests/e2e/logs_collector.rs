//! Logs from files to the hub: the collector tails pod log files (CRI,
//! Docker JSON and raw, partial lines included) and pushes them to the real
//! hub; LogQL gives back exactly the lines written, in order, with their
//! labels. A collector killed with SIGKILL while lines are being written,
//! with the file rotated (rename, or copy-truncate) while it is down, ships
//! every line exactly once after its restart.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::collector_queue_support::start_collector_proc;
use super::logs::{entries, get, now_ns, range_params, SEC};
use super::support::*;

const CLUSTER: &str = "e2e-logs";

/// RFC 3339 with nanoseconds, as the kubelet and Docker write it.
fn rfc3339(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

fn cri(ns: i64, stream: &str, tag: &str, text: &str) -> String {
    format!("{} {stream} {tag} {text}\n", rfc3339(ns))
}

fn docker(ns: i64, log: &str) -> String {
    let v = serde_json::json!({"log": log, "stream": "stdout", "time": rfc3339(ns)});
    format!("{v}\n")
}

fn append(path: &Path, text: &str) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("create pod log dir");
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open log file");
    f.write_all(text.as_bytes()).expect("write log file");
}

/// A collector config that only tails `<root>/*/*/*.log` into `hub`.
fn logs_config(dir: &Path, root: &Path, hub: &str) -> PathBuf {
    let yaml = format!(
        "global:\n  external_labels:\n    cluster: {CLUSTER}\nlogs:\n  url: http://{hub}/loki/api/v1/push\n  paths: ['{}/*/*/*.log']\n  batch_size: 4KB\n  batch_wait: 200ms\n  poll_interval: 100ms\n  min_backoff: 50ms\n  max_backoff: 1s\n",
        root.display()
    );
    let path = dir.join("collector-logs.yaml");
    std::fs::write(&path, yaml).expect("write collector config");
    path
}

/// Every line of `selector` on the hub, oldest first, with its labels.
fn all_lines(hub: &str, selector: &str) -> Vec<(String, LabelMap)> {
    let mut p = range_params(selector, now_ns() - 3600 * SEC, now_ns() + 60 * SEC);
    p.push(("direction", "forward".into()));
    p.push(("limit", "100000".into()));
    entries(&get(hub, "/loki/api/v1/query_range", &p))
        .into_iter()
        .map(|(_, line, labels)| (line, labels))
        .collect()
}

fn wait_for_lines(hub: &str, selector: &str, n: usize, proc: &Proc) -> Vec<(String, LabelMap)> {
    wait_for(
        &format!("{n} lines of {selector} on the hub"),
        Duration::from_secs(60),
        || proc.log(),
        || {
            let got = all_lines(hub, selector);
            (got.len() >= n).then_some(got)
        },
    )
}

fn labels(namespace: &str, pod: &str, container: &str) -> LabelMap {
    [
        ("cluster", CLUSTER),
        ("container", container),
        ("namespace", namespace),
        ("pod", pod),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

#[test]
fn tailed_cri_docker_and_raw_pod_logs_arrive_exactly_with_their_labels() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("pods");
    let hub = start_hub(&tmp.path().join("hub"), tmp.path(), &[]);
    let cfg = logs_config(tmp.path(), &root, &hub.addr);
    let vm_log = root.join("vms_virt-launcher-vm-a-x7k2p_0a1b/compute/0.log");
    let web_log = root.join("web_frontend-5d8f_9c3e/nginx/0.log");
    let raw_log = root.join("batch_job-1_77aa/worker/0.log");
    let t0 = now_ns() - 60 * SEC;
    // Written before the collector starts: read from the start.
    append(
        &vm_log,
        &[
            cri(t0, "stdout", "F", "vm needle-1 booted"),
            cri(t0 + 1, "stdout", "P", "vm needle-2 a long "),
            cri(t0 + 2, "stderr", "F", "vm needle-3 on stderr"),
            cri(t0 + 3, "stdout", "P", "line in "),
        ]
        .concat(),
    );
    append(&web_log, &docker(t0, "GET / needle-4\n"));
    append(&raw_log, "raw needle-5\n");
    let mut collector =
        start_collector_proc("collector", &cfg, &tmp.path().join("data"), tmp.path());
    // Written while it runs, the end of a physical line in a second write.
    append(&vm_log, &cri(t0 + 4, "stdout", "F", "three parts"));
    append(
        &vm_log,
        &cri(t0 + 5, "stdout", "F", "vm needle-6 last")[..20],
    );
    append(
        &vm_log,
        &cri(t0 + 5, "stdout", "F", "vm needle-6 last")[20..],
    );
    append(
        &web_log,
        &[
            docker(t0 + 1, "POST /a needle-7 "),
            docker(t0 + 2, "split\n"),
            docker(t0 + 3, "GET /b needle-8\n"),
        ]
        .concat(),
    );
    append(&raw_log, "raw needle-9\nraw without the word\n");

    let all = wait_for_lines(
        &hub.addr,
        &format!("{{cluster=\"{CLUSTER}\"}}"),
        10,
        &collector.proc,
    );
    assert_eq!(all.len(), 10, "{all:?}");
    let vm = all_lines(
        &hub.addr,
        r#"{namespace="vms", container="compute"} |= "needle""#,
    );
    let want_vm = labels("vms", "virt-launcher-vm-a-x7k2p", "compute");
    assert_eq!(
        vm,
        [
            "vm needle-1 booted",
            "vm needle-2 a long line in three parts",
            "vm needle-3 on stderr",
            "vm needle-6 last",
        ]
        .iter()
        .map(|l| (l.to_string(), want_vm.clone()))
        .collect::<Vec<_>>()
    );
    let web = all_lines(&hub.addr, r#"{pod="frontend-5d8f"}"#);
    let want_web = labels("web", "frontend-5d8f", "nginx");
    assert_eq!(
        web,
        [
            "GET / needle-4",
            "POST /a needle-7 split",
            "GET /b needle-8"
        ]
        .iter()
        .map(|l| (l.to_string(), want_web.clone()))
        .collect::<Vec<_>>()
    );
    let raw = all_lines(&hub.addr, r#"{container="worker"} |= "needle""#);
    assert_eq!(
        raw.iter().map(|(l, _)| l.as_str()).collect::<Vec<_>>(),
        ["raw needle-5", "raw needle-9"]
    );
    assert_eq!(raw[0].1, labels("batch", "job-1", "worker"));

    // A LogQL metric query counts them per namespace.
    let v = get(
        &hub.addr,
        "/loki/api/v1/query",
        &[
            (
                "query",
                format!("sum by (namespace) (count_over_time({{cluster=\"{CLUSTER}\"}}[1h]))"),
            ),
            ("time", (now_ns() / SEC + 1).to_string()),
        ],
    );
    let mut counts: Vec<(String, String)> = v["data"]["result"]
        .as_array()
        .expect("vector result")
        .iter()
        .map(|r| {
            (
                r["metric"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                r["value"][1].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    counts.sort();
    assert_eq!(
        counts,
        [("batch", "3"), ("vms", "4"), ("web", "3")]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<Vec<_>>(),
        "{v}"
    );
    // The collector's own metrics agree.
    let m = |name: &str| collector.metric_sum(&format!("fleetwatch_collector_log_{name}"), &[]);
    wait_for(
        "lines_sent_total = 10",
        Duration::from_secs(20),
        || collector.proc.log(),
        || (m("lines_sent_total") == 10.0).then_some(()),
    );
    assert_eq!(m("files_watched"), 3.0);
    assert_eq!(m("lines_read_total"), 10.0);
    assert_eq!(m("lines_malformed_total"), 0.0);
    let log = collector.proc.log();
    assert!(collector.proc.terminate(Duration::from_secs(20)), "{log}");
}

/// How the file is rotated while the collector is down.
#[derive(Debug, Clone, Copy)]
enum Rotation {
    Rename,
    CopyTruncate,
}

/// Writes `seq=<from..to>` lines into `path`, one append each, while the
/// collector may be running or being killed.
fn write_seq(path: &Path, from: usize, to: usize) {
    for i in from..to {
        append(
            path,
            &cri(now_ns(), "stdout", "F", &format!("seq={i:06} payload")),
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn restart_and_rotation_deliver_every_line_once(rotation: Rotation) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("pods");
    let data = tmp.path().join("data");
    let hub = start_hub(&tmp.path().join("hub"), tmp.path(), &[]);
    let cfg = logs_config(tmp.path(), &root, &hub.addr);
    let log = root.join("vms_virt-launcher-vm-r-q1w2e_5e6f/compute/0.log");
    let selector = r#"{pod="virt-launcher-vm-r-q1w2e"}"#;
    write_seq(&log, 0, 200);
    let mut collector = start_collector_proc("collector", &cfg, &data, tmp.path());
    // Killed mid-file: lines are being written while it ships them.
    let writer = {
        let log = log.clone();
        std::thread::spawn(move || write_seq(&log, 200, 1200))
    };
    wait_for_lines(&hub.addr, selector, 400, &collector.proc);
    collector.proc.kill();
    writer.join().expect("writer thread");
    // Rotated while it is down, and more lines in the new file.
    let rotated = log.with_extension("log.1");
    match rotation {
        Rotation::Rename => std::fs::rename(&log, &rotated).expect("rename"),
        Rotation::CopyTruncate => {
            std::fs::copy(&log, &rotated).expect("copy");
            std::fs::OpenOptions::new()
                .write(true)
                .open(&log)
                .and_then(|f| f.set_len(0))
                .expect("truncate");
        }
    }
    write_seq(&log, 1200, 1300);
    let mut collector = start_collector_proc("collector", &cfg, &data, tmp.path());
    write_seq(&log, 1300, 1400);
    wait_for_lines(&hub.addr, selector, 1400, &collector.proc);
    // Settle: nothing new read and nothing left queued, so no line can
    // still be on its way.
    let mut last_read = -1.0;
    wait_for(
        "the collector to have sent all it read",
        Duration::from_secs(30),
        || collector.proc.log(),
        || {
            let read = collector.metric_sum("fleetwatch_collector_log_lines_read_total", &[]);
            let queued = collector.metric_sum("fleetwatch_collector_log_queue_bytes", &[]);
            let settled = read > 0.0 && read == last_read && queued == 0.0;
            last_read = read;
            settled.then_some(())
        },
    );
    // The restarted collector found the rotated file and read its rest.
    assert_eq!(
        collector.metric_sum("fleetwatch_collector_log_rotations_total", &[]),
        1.0,
        "{}",
        collector.proc.log()
    );
    let got = all_lines(&hub.addr, selector);
    let seqs: Vec<usize> = got
        .iter()
        .map(|(l, _)| {
            l.strip_prefix("seq=")
                .and_then(|s| s.split(' ').next())
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("unexpected line {l:?}"))
        })
        .collect();
    assert_eq!(
        seqs,
        (0..1400).collect::<Vec<_>>(),
        "{rotation:?}: every line once and in order\n{}",
        collector.proc.log()
    );
    assert!(got
        .iter()
        .all(|(_, l)| *l == labels("vms", "virt-launcher-vm-r-q1w2e", "compute")));
    let log = collector.proc.log();
    assert!(collector.proc.terminate(Duration::from_secs(20)), "{log}");
}

#[test]
fn sigkill_and_rename_rotation_while_down_deliver_every_line_once() {
    restart_and_rotation_deliver_every_line_once(Rotation::Rename);
}

#[test]
fn sigkill_and_copy_truncate_while_down_deliver_every_line_once() {
    restart_and_rotation_deliver_every_line_once(Rotation::CopyTruncate);
}
