//! Helpers for the collector queue tests: a hub that can be stopped and
//! restarted on the same port and data directory, a collector whose own
//! `/metrics` address is known, and raw-sample queries.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::support::*;

/// A hub on a fixed address and data directory that can be restarted.
pub struct RestartableHub {
    pub addr: String,
    data: PathBuf,
    log_dir: PathBuf,
    starts: usize,
    pub proc: Option<Proc>,
}

impl RestartableHub {
    /// Starts a hub on a free port.
    pub fn start(data: &Path, log_dir: &Path) -> Self {
        let mut hub = Self {
            addr: free_addr(),
            data: data.to_path_buf(),
            log_dir: log_dir.to_path_buf(),
            starts: 0,
            proc: None,
        };
        hub.restart();
        hub
    }

    /// Starts the hub again (same port, same data) and waits until ready.
    pub fn restart(&mut self) {
        assert!(self.proc.is_none(), "hub already running");
        self.starts += 1;
        let name = format!("hub-{}", self.starts);
        let dir = self.data.to_str().expect("utf-8 path").to_string();
        let proc = Proc::spawn(
            &name,
            BIN,
            &["aggregator", "--listen", &self.addr, "--data-dir", &dir],
            &self.log_dir,
        );
        wait_until_ok(
            "hub readiness",
            &format!("http://{}/-/ready", self.addr),
            Duration::from_secs(30),
            &proc,
        );
        self.proc = Some(proc);
    }

    /// Stops the hub cleanly (SIGTERM), asserting it exits in time.
    pub fn stop(&mut self) {
        let mut p = self.proc.take().expect("hub running");
        let log = p.log();
        assert!(
            p.terminate(Duration::from_secs(20)),
            "hub did not stop cleanly:\n{log}"
        );
    }

    /// The remote-write URL.
    pub fn write_url(&self) -> String {
        format!("http://{}/api/v1/write", self.addr)
    }
}

/// A collector process and the address of its own `/metrics`.
pub struct CollectorProc {
    pub proc: Proc,
    pub listen: String,
}

/// Starts `fleetwatch collector` with `config` and `data_dir`, waiting until ready.
pub fn start_collector_proc(
    name: &str,
    config: &Path,
    data_dir: &Path,
    log_dir: &Path,
) -> CollectorProc {
    let listen = free_addr();
    let proc = Proc::spawn(
        name,
        BIN,
        &[
            "collector",
            "--config",
            config.to_str().expect("utf-8 path"),
            "--data-dir",
            data_dir.to_str().expect("utf-8 path"),
            "--listen",
            &listen,
        ],
        log_dir,
    );
    wait_until_ok(
        "collector readiness",
        &format!("http://{listen}/-/ready"),
        Duration::from_secs(30),
        &proc,
    );
    CollectorProc { proc, listen }
}

impl CollectorProc {
    /// The collector's own metrics, parsed (empty if unreachable).
    pub fn metrics(&self) -> Vec<(LabelMap, f64)> {
        http()
            .get(format!("http://{}/metrics", self.listen))
            .send()
            .and_then(|r| r.text())
            .map(|t| parse_exposition(&t))
            .unwrap_or_default()
    }

    /// The sum of metric `name` over the series matching `labels`.
    pub fn metric_sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        sum_metric(&self.metrics(), name, labels)
    }
}

/// Sums the samples of `name` whose labels include `labels`.
pub fn sum_metric(m: &[(LabelMap, f64)], name: &str, labels: &[(&str, &str)]) -> f64 {
    m.iter()
        .filter(|(l, _)| {
            l.get("__name__").map(String::as_str) == Some(name)
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, v)| *v)
        .sum()
}

/// A collector config: one job per `(job, target)` scraped every second,
/// external label `cluster`, one remote write to `write_url`, and the
/// given extra `queue_config` lines and `storage` section.
pub fn queue_collector_config(
    dir: &Path,
    cluster: &str,
    jobs: &[(&str, &str)],
    write_url: &str,
    queue_extra: &str,
    storage: &str,
) -> PathBuf {
    let mut yaml = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  external_labels:\n    cluster: {cluster}\nscrape_configs:\n"
    );
    for (job, target) in jobs {
        yaml.push_str(&format!(
            "  - job_name: {job}\n    static_configs:\n      - targets: ['{target}']\n"
        ));
    }
    yaml.push_str(&format!(
        "remote_write:\n  - url: {write_url}\n    queue_config:\n      batch_send_deadline: 200ms\n      min_backoff: 50ms\n      max_backoff: 500ms\n{queue_extra}"
    ));
    yaml.push_str(storage);
    let path = dir.join(format!("collector-{cluster}.yaml"));
    std::fs::write(&path, yaml).expect("write collector config");
    path
}

/// Runs an instant query at `time_s` (Unix seconds) and returns
/// `data.result`, or `None` on error.
pub fn query_at(base: &str, query: &str, time_s: f64) -> Option<Vec<Value>> {
    let body: Value = http()
        .post(format!("http://{base}/api/v1/query"))
        .form(&[("query", query), ("time", &format!("{time_s:.3}"))])
        .send()
        .ok()?
        .json()
        .ok()?;
    if body["status"] != "success" {
        return None;
    }
    body["data"]["result"].as_array().cloned()
}

/// Raw samples per series (labels -> [(ts_ms, value)]) selected by a
/// range-vector query `selector[window]` evaluated now.
pub fn raw_samples(
    base: &str,
    selector: &str,
    window: &str,
) -> BTreeMap<LabelMap, Vec<(i64, f64)>> {
    let now = now_s();
    let result = query_at(base, &format!("{selector}[{window}]"), now)
        .unwrap_or_else(|| panic!("range query {selector}[{window}] failed"));
    result
        .iter()
        .map(|s| {
            let values = s["values"]
                .as_array()
                .map(|vs| {
                    vs.iter()
                        .map(|v| {
                            let ts = (v[0].as_f64().expect("timestamp") * 1000.0).round() as i64;
                            let val = v[1].as_str().and_then(parse_float).expect("value");
                            (ts, val)
                        })
                        .collect()
                })
                .unwrap_or_default();
            (metric(s), values)
        })
        .collect()
}

/// Now, in Unix seconds.
pub fn now_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

/// The names of the synthetic series written for each scrape.
pub const SYNTHETIC: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

/// Checks that the hub holds exactly `expected_total` scraped (non-synthetic)
/// samples for `job`, each series with strictly increasing timestamps and
/// the value the frozen target exposes; returns the number of samples.
pub fn check_job_samples(
    hub: &str,
    job: &str,
    instance: &str,
    cluster: &str,
    exposed: &[(LabelMap, f64)],
) -> usize {
    let series = raw_samples(hub, &format!("{{job=\"{job}\"}}"), "1h");
    let want: BTreeMap<LabelMap, f64> = exposed
        .iter()
        .map(|(l, v)| (with_target_labels(l.clone(), job, instance, cluster), *v))
        .collect();
    let mut total = 0;
    for (labels, samples) in &series {
        let name = labels.get("__name__").map(String::as_str).unwrap_or("");
        if SYNTHETIC.contains(&name) {
            continue;
        }
        let value = want
            .get(labels)
            .unwrap_or_else(|| panic!("unexpected series in the hub: {labels:?}"));
        assert!(
            samples.windows(2).all(|w| w[0].0 < w[1].0),
            "{labels:?}: timestamps not strictly increasing (a sample twice?)"
        );
        for (ts, v) in samples {
            assert!(
                v.to_bits() == value.to_bits() || (v.is_nan() && value.is_nan()),
                "{labels:?} at {ts}: hub has {v}, the target exposes {value}"
            );
        }
        total += samples.len();
    }
    total
}
