//! Helpers of the alerting tests: a webhook receiver recording what is
//! posted to it, Alertmanager on loopback, remote writes into the hub and
//! reading the hub's alerts.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fleetwatch_model::remote_write::{encode_write_request, SeriesSamples};
use fleetwatch_model::{Labels, Sample};
use serde_json::Value;

use super::support::*;

/// One request a [`WebhookSink`] received.
#[derive(Debug, Clone)]
pub struct Received {
    /// When it arrived.
    pub at: Instant,
    /// The request path.
    pub path: String,
    /// The JSON body.
    pub body: Value,
}

/// A loopback HTTP server answering 200 to every POST and recording JSON
/// bodies; stopped (thread joined) on drop.
pub struct WebhookSink {
    pub addr: String,
    received: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn read_request(mut s: TcpStream) -> Option<(String, Vec<u8>)> {
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let header_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).ok()?;
        if n == 0 || buf.len() > 1 << 20 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_string();
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0)
        .min(16 << 20);
    while buf.len() < header_end + len {
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let body = buf[header_end..buf.len().min(header_end + len)].to_vec();
    Some((path, body))
}

impl WebhookSink {
    /// Starts the server on a free loopback port.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind webhook sink");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr").to_string();
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, st) = (Arc::clone(&received), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let _ = s.set_nonblocking(false);
                        if let Some((path, body)) = read_request(s) {
                            let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                            if let Ok(mut v) = r.lock() {
                                v.push(Received {
                                    at: Instant::now(),
                                    path,
                                    body,
                                });
                            }
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Self {
            addr,
            received,
            stop,
            thread: Some(thread),
        }
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

impl Drop for WebhookSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts Alertmanager (`bin`) on loopback with clustering off and one
/// webhook receiver posting to `webhook_url`; waits until it is ready.
pub fn start_alertmanager(bin: &Path, dir: &Path, webhook_url: &str) -> (Proc, String) {
    let addr = free_addr();
    let cfg = dir.join("alertmanager.yml");
    std::fs::write(
        &cfg,
        format!(
            "route:\n  receiver: test\n  group_by: [alertname, cluster]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: test\n    webhook_configs:\n      - url: {webhook_url}\n        send_resolved: true\n"
        ),
    )
    .expect("write alertmanager config");
    let storage = dir.join("am-data");
    let args = [
        format!("--config.file={}", cfg.display()),
        format!("--storage.path={}", storage.display()),
        format!("--web.listen-address={addr}"),
        "--cluster.listen-address=".to_string(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let proc = Proc::spawn(
        "alertmanager",
        bin.to_str().expect("utf-8 path"),
        &args,
        dir,
    );
    wait_until_ok(
        "alertmanager readiness",
        &format!("http://{addr}/-/ready"),
        Duration::from_secs(30),
        &proc,
    );
    (proc, addr)
}

/// Wall-clock milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

/// Remote-writes one sample per series (at now) into the hub.
pub fn write_samples(hub: &str, series: &[(&[(&str, &str)], f64)]) {
    let ts = now_ms();
    let body = encode_write_request(
        &series
            .iter()
            .map(|(labels, v)| SeriesSamples {
                labels: Labels::from_pairs(labels.iter().copied()),
                samples: vec![Sample::new(ts, *v)],
            })
            .collect::<Vec<_>>(),
    );
    let resp = http()
        .post(format!("http://{hub}/api/v1/write"))
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(body)
        .send()
        .expect("remote write");
    assert!(
        resp.status().is_success(),
        "remote write failed: {}",
        resp.status()
    );
}

/// The hub's `/api/v1/alerts` list (empty on any error).
pub fn hub_alerts(hub: &str) -> Vec<Value> {
    http()
        .get(format!("http://{hub}/api/v1/alerts"))
        .send()
        .ok()
        .and_then(|r| r.json::<Value>().ok())
        .and_then(|v| v["data"]["alerts"].as_array().cloned())
        .unwrap_or_default()
}

/// The state of the alert whose labels include `labels` (none: not active).
pub fn alert_state(hub: &str, labels: &[(&str, &str)]) -> Option<String> {
    hub_alerts(hub)
        .into_iter()
        .find(|a| labels.iter().all(|(k, v)| a["labels"][k] == *v))
        .and_then(|a| a["state"].as_str().map(str::to_string))
}
