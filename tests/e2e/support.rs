//! Helpers shared by the end-to-end tests: starting and stopping
//! processes, waiting with bounds, querying the Prometheus API, finding
//! peers, parsing the text format.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The fleetwatch binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_fleetwatch");

/// A label set as a sorted map.
pub type LabelMap = BTreeMap<String, String>;

/// A child process killed (and reaped) when dropped.
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    /// Starts `program` with `args`, output to `<log_dir>/<name>.log`.
    pub fn spawn(name: &str, program: &str, args: &[&str], log_dir: &Path) -> Proc {
        Self::spawn_with_env(name, program, args, &[], log_dir)
    }

    /// Like [`Proc::spawn`], with `env` set (a `None` value removes the variable).
    pub fn spawn_with_env(
        name: &str,
        program: &str,
        args: &[&str],
        env: &[(&str, Option<&str>)],
        log_dir: &Path,
    ) -> Proc {
        let log = log_dir.join(format!("{name}.log"));
        let out = File::create(&log).expect("create log file");
        let err = out.try_clone().expect("clone log file");
        let mut command = Command::new(program);
        for (k, v) in env {
            match v {
                Some(v) => command.env(k, v),
                None => command.env_remove(k),
            };
        }
        let child = command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .env("FLEETWATCH_LOG", "info")
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({program}): {e}"));
        Proc {
            name: name.to_string(),
            child: Some(child),
            log,
        }
    }

    /// The process' log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills with SIGKILL and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM and waits up to `timeout` for a clean exit; returns
    /// true when it exited successfully in time (SIGKILL otherwise).
    pub fn terminate(&mut self, timeout: Duration) -> bool {
        let Some(mut c) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = c.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
        false
    }

    /// Sends `signal` (a `kill` name such as `HUP`) to the running process.
    pub fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("process is running");
        let status = Command::new("kill")
            .args([format!("-{signal}"), child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {} failed", self.name);
    }

    /// Panics if the process has exited, showing its log.
    pub fn assert_running(&mut self) {
        if let Some(c) = self.child.as_mut() {
            if let Ok(Some(status)) = c.try_wait() {
                panic!("{} exited early ({status}):\n{}", self.name, self.log());
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A free loopback address (`127.0.0.1:port`).
pub fn free_addr() -> String {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind ephemeral port");
    l.local_addr().expect("local addr").to_string()
}

/// Polls `f` every 200 ms until it returns `Some`, for at most `timeout`;
/// panics naming `what` (and calling `context` for diagnostics) on timeout.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    context: impl Fn() -> String,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!(
                "timed out after {timeout:?} waiting for {what}\n{}",
                context()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits (at most `timeout`) until `url` answers 2xx; panics with `proc`'s
/// log otherwise.
pub fn wait_until_ok(what: &str, url: &str, timeout: Duration, proc: &Proc) {
    let client = http();
    wait_for(
        what,
        timeout,
        || proc.log(),
        || {
            client
                .get(url)
                .send()
                .ok()
                .filter(|r| r.status().is_success())
        },
    );
}

/// Starts Debian's Prometheus with `config` (plus `extra` flags) on a free
/// port with its data under `dir`, and waits until it is ready.
pub fn start_prometheus(bin: &Path, config: &str, dir: &Path, extra: &[&str]) -> (Proc, String) {
    let addr = free_addr();
    let cfg = dir.join("prometheus.yml");
    std::fs::write(&cfg, config).expect("write prometheus config");
    let tsdb = dir.join("prom-data");
    let mut args = vec![
        format!("--config.file={}", cfg.display()),
        format!("--storage.tsdb.path={}", tsdb.display()),
        format!("--web.listen-address={addr}"),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let proc = Proc::spawn("prometheus", bin.to_str().expect("utf-8 path"), &args, dir);
    wait_until_ok(
        "prometheus readiness",
        &format!("http://{addr}/-/ready"),
        Duration::from_secs(60),
        &proc,
    );
    (proc, addr)
}

/// A blocking HTTP client with a bounded timeout.
pub fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("http client")
}

/// Runs an instant query against a Prometheus-compatible API at `base`
/// and returns `data.result`, or `None` on any error.
pub fn try_query(base: &str, query: &str) -> Option<Vec<Value>> {
    let resp = http()
        .post(format!("http://{base}/api/v1/query"))
        .form(&[("query", query)])
        .send()
        .ok()?;
    let body: Value = resp.json().ok()?;
    if body["status"] != "success" {
        return None;
    }
    body["data"]["result"].as_array().cloned()
}

/// Like [`try_query`] but panics on error.
pub fn query(base: &str, query: &str) -> Vec<Value> {
    try_query(base, query).unwrap_or_else(|| panic!("query {query:?} against {base} failed"))
}

/// The `metric` object of a result as a map.
pub fn metric(v: &Value) -> LabelMap {
    v["metric"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// The value of an instant-vector result element.
pub fn value(v: &Value) -> f64 {
    v["value"][1]
        .as_str()
        .and_then(parse_float)
        .expect("numeric value")
}

/// Parses a float as Prometheus prints it.
pub fn parse_float(s: &str) -> Option<f64> {
    match s {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        s => s.parse().ok(),
    }
}

/// Finds a peer binary on PATH. Under `CI=true` a missing peer fails the
/// test; elsewhere the test is skipped with a message.
pub fn peer(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        let msg = format!(
            "peer {name} is not installed (scripts/test.sh installs it from Debian's packages)"
        );
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{msg}");
        }
        eprintln!("SKIPPED: {msg}");
    }
    found
}

/// A running hub.
pub struct HubProc {
    pub proc: Proc,
    pub addr: String,
}

/// Starts a hub on a free port with `data_dir`, plus extra args, and waits
/// until it is ready.
pub fn start_hub(data_dir: &Path, log_dir: &Path, extra: &[&str]) -> HubProc {
    let addr = free_addr();
    let dir = data_dir.to_str().expect("utf-8 path");
    let mut args = vec!["aggregator", "--listen", &addr, "--data-dir", dir];
    args.extend_from_slice(extra);
    let mut proc = Proc::spawn("hub", BIN, &args, log_dir);
    wait_until_ok(
        "hub readiness",
        &format!("http://{addr}/-/ready"),
        Duration::from_secs(30),
        &proc,
    );
    proc.assert_running();
    HubProc { proc, addr }
}

/// Starts a frozen simulator and waits until it serves.
pub fn start_simulator(
    name: &str,
    cluster: &str,
    vms: usize,
    seed: u64,
    extra: &[&str],
    log_dir: &Path,
) -> (Proc, String) {
    let addr = free_addr();
    let vms = vms.to_string();
    let seed = seed.to_string();
    let mut args = vec![
        "simulate",
        "--frozen",
        "--vms",
        &vms,
        "--cluster",
        cluster,
        "--seed",
        &seed,
        "--listen",
        &addr,
    ];
    args.extend_from_slice(extra);
    let proc = Proc::spawn(name, BIN, &args, log_dir);
    wait_until_ok(
        "simulator",
        &format!("http://{addr}/metrics"),
        Duration::from_secs(20),
        &proc,
    );
    (proc, addr)
}

/// Fetches and parses a target's exposition text.
pub fn scrape(addr: &str) -> Vec<(LabelMap, f64)> {
    let text = http()
        .get(format!("http://{addr}/metrics"))
        .send()
        .and_then(|r| r.text())
        .expect("scrape simulator");
    parse_exposition(&text)
}

/// A small text-format parser for test expectations: `name{a="b"} v [ts]`.
pub fn parse_exposition(text: &str) -> Vec<(LabelMap, f64)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut labels = LabelMap::new();
        let (name_end, rest) = match line.find(['{', ' ']) {
            Some(i) => (i, &line[i..]),
            None => continue,
        };
        labels.insert("__name__".into(), line[..name_end].to_string());
        let rest = if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices().peekable();
            let mut name = String::new();
            let mut end = body.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '}' => {
                        end = i + 1;
                        break;
                    }
                    ',' | ' ' => {}
                    '=' => {
                        let _ = chars.next(); // opening quote
                        let mut val = String::new();
                        while let Some((_, c)) = chars.next() {
                            match c {
                                '\\' => match chars.next().map(|x| x.1) {
                                    Some('n') => val.push('\n'),
                                    Some(o) => val.push(o),
                                    None => {}
                                },
                                '"' => break,
                                c => val.push(c),
                            }
                        }
                        if !val.is_empty() {
                            labels.insert(std::mem::take(&mut name), val);
                        }
                        name.clear();
                    }
                    c => name.push(c),
                }
            }
            &body[end..]
        } else {
            rest
        };
        let v = rest
            .split_whitespace()
            .next()
            .and_then(parse_float)
            .expect("sample value");
        out.push((labels, v));
    }
    out
}

/// Writes a collector config that scrapes `targets` as job `job` every
/// second and remote-writes to `write_url`, with external label `cluster`.
pub fn collector_config(
    dir: &Path,
    cluster: &str,
    jobs: &[(&str, &str)],
    write_url: &str,
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
        "remote_write:\n  - url: {write_url}\n    queue_config:\n      batch_send_deadline: 1s\n      min_backoff: 50ms\n      max_backoff: 1s\n"
    ));
    let path = dir.join(format!("collector-{cluster}.yaml"));
    std::fs::write(&path, yaml).expect("write collector config");
    path
}

/// Starts a collector with `config`.
pub fn start_collector(name: &str, config: &Path, data_dir: &Path, log_dir: &Path) -> Proc {
    start_collector_with_env(name, config, data_dir, log_dir, &[]).0
}

/// Like [`start_collector`], with `env` set for it (a `None` value removes
/// the variable); also returns its listen address.
pub fn start_collector_with_env(
    name: &str,
    config: &Path,
    data_dir: &Path,
    log_dir: &Path,
    env: &[(&str, Option<&str>)],
) -> (Proc, String) {
    let listen = free_addr();
    let proc = Proc::spawn_with_env(
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
        env,
        log_dir,
    );
    (proc, listen)
}

/// An axum server on an ephemeral loopback port, run by a test's runtime.
pub struct LoopbackServer {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl LoopbackServer {
    /// Serves `app` on `rt`.
    pub fn start(rt: &tokio::runtime::Runtime, app: axum::Router) -> Self {
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind loopback server");
        let addr = listener.local_addr().expect("addr");
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = rt.spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stop_rx.await;
                })
                .await;
        });
        Self { addr, stop, task }
    }

    /// Stops it, waiting at most 5 s.
    pub fn stop(self, rt: &tokio::runtime::Runtime) {
        let _ = self.stop.send(());
        let abort = self.task.abort_handle();
        let task = self.task;
        if rt
            .block_on(async { tokio::time::timeout(Duration::from_secs(5), task).await })
            .is_err()
        {
            abort.abort();
        }
    }
}

/// A one-worker Tokio runtime for a test's loopback servers.
pub fn test_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Adds the labels the collector attaches to a scraped series.
pub fn with_target_labels(mut l: LabelMap, job: &str, instance: &str, cluster: &str) -> LabelMap {
    l.insert("job".into(), job.into());
    l.insert("instance".into(), instance.into());
    l.insert("cluster".into(), cluster.into());
    l
}
