//! Remote write 2.0 from a real collector to loopback receivers: one that
//! speaks 2.0 (decodes the body, answers with the written counts), one that
//! only speaks 1.0 and says so (415), and one that ignores the content type
//! and answers 204 without the written headers. No real 2.0 peer exists on
//! this machine (Debian's Prometheus predates 2.0); the 2.0 receiver here
//! uses the model crate's decoder, which its own tests pin to the spec's
//! proto.

mod common;

use common::stop_collector;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use common::Server;
use fleetwatch_collector::{Collector, CollectorConfig};
use fleetwatch_model::remote_write::v2::{decode_write_request_v2, SAMPLES_WRITTEN};
use fleetwatch_model::Sample;
use tokio::sync::oneshot;

const BOUND: Duration = Duration::from_secs(20);

const EXPOSITION: &str = "# TYPE vm_memory_bytes gauge\nvm_memory_bytes{name=\"vm-1\"} 1.5e+09\nvm_memory_bytes{name=\"vm-2\"} 2048\n";

#[derive(Clone, Copy)]
enum Mode {
    /// Decode as 2.0 and answer 204 with the written counts.
    V2,
    /// Answer this status without reading the body.
    Status(u16),
}

#[derive(Default)]
struct Seen {
    requests: usize,
    series: BTreeMap<String, Vec<Sample>>,
    errors: Vec<String>,
}

#[derive(Clone)]
struct Receiver {
    mode: Mode,
    seen: Arc<Mutex<Seen>>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> Response {
    let mut seen = r.seen.lock().expect("lock");
    seen.requests += 1;
    let expect = [
        ("content-encoding", "snappy"),
        (
            "content-type",
            "application/x-protobuf;proto=io.prometheus.write.v2.Request",
        ),
        ("x-prometheus-remote-write-version", "2.0.0"),
    ];
    for (name, want) in expect {
        let got = headers.get(name).and_then(|v| v.to_str().ok());
        if got != Some(want) {
            seen.errors.push(format!("{name}: {got:?}"));
        }
    }
    match r.mode {
        Mode::Status(s) => (
            StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "remote write 1.0 only",
        )
            .into_response(),
        Mode::V2 => match decode_write_request_v2(&body, 32 << 20) {
            Ok(req) => {
                let mut n = 0;
                for s in req.series {
                    n += s.samples.len();
                    seen.series
                        .entry(s.labels.to_string())
                        .or_default()
                        .extend(s.samples);
                }
                (StatusCode::NO_CONTENT, [(SAMPLES_WRITTEN, n.to_string())]).into_response()
            }
            Err(e) => {
                seen.errors.push(format!("bad body: {e}"));
                (StatusCode::BAD_REQUEST, "bad body").into_response()
            }
        },
    }
}

async fn start_receiver(mode: Mode) -> (Server, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let router = Router::new()
        .route("/api/v1/write", post(receive))
        .with_state(Receiver {
            mode,
            seen: Arc::clone(&seen),
        });
    (Server::start(router).await, seen)
}

async fn metrics_text(url: &str) -> String {
    reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("get metrics")
        .text()
        .await
        .expect("metrics body")
}

fn value(text: &str, series: &str) -> f64 {
    let prefix = format!("{series} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ships_v2_and_reports_receivers_that_do_not_take_it() {
    let target = Server::start(Router::new().route("/metrics", get(|| async { EXPOSITION }))).await;
    let (v2, v2_seen) = start_receiver(Mode::V2).await;
    let (old, old_seen) = start_receiver(Mode::Status(415)).await;
    let (silent, silent_seen) = start_receiver(Mode::Status(204)).await;
    let endpoint = |addr: std::net::SocketAddr| {
        format!(
            "  - url: http://{addr}/api/v1/write\n    protobuf_message: io.prometheus.write.v2.Request\n    queue_config: {{batch_send_deadline: 50ms, min_backoff: 10ms, max_backoff: 100ms}}\n"
        )
    };
    let yaml = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 500ms\n  external_labels: {{cluster: c1}}\nscrape_configs:\n  - job_name: app\n    static_configs: [{{targets: ['{target}']}}]\nremote_write:\n{}{}{}",
        endpoint(v2.addr),
        endpoint(old.addr),
        endpoint(silent.addr),
        target = target.addr
    );
    let collector = Collector::new(CollectorConfig::from_yaml_str(&yaml).expect("parses"))
        .expect("collector")
        .with_flush_timeout(Duration::from_secs(2));
    let metrics_server = Server::start(collector.metrics_router()).await;
    let metrics_url = format!("http://{}/metrics", metrics_server.addr);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let run = tokio::spawn(collector.run(async {
        let _ = stop_rx.await;
    }));

    let instance = target.addr.to_string();
    let vm = |name: &str| {
        format!("vm_memory_bytes{{cluster=\"c1\", instance=\"{instance}\", job=\"app\", name=\"{name}\"}}")
    };
    let url = |s: &Server| format!("http://{}/api/v1/write", s.addr);
    let (old_url, silent_url, v2_url) = (url(&old), url(&silent), url(&v2));
    let failed = |text: &str, reason: &str, url: &str| {
        value(
            text,
            &format!(
                "fleetwatch_collector_batches_failed_total{{reason=\"{reason}\",url=\"{url}\"}}"
            ),
        )
    };
    let deadline = tokio::time::Instant::now() + BOUND;
    let text = loop {
        let text = metrics_text(&metrics_url).await;
        let arrived = {
            let s = v2_seen.lock().expect("lock");
            s.series.contains_key(&vm("vm-1")) && s.series.contains_key(&vm("vm-2"))
        };
        if arrived
            && failed(&text, "http_415", &old_url) >= 2.0
            && failed(&text, "not_written", &silent_url) >= 2.0
        {
            break text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out; metrics:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    {
        let s = v2_seen.lock().expect("lock");
        assert!(s.errors.is_empty(), "{:?}", s.errors);
        assert_eq!(s.series[&vm("vm-1")][0].value, 1.5e9);
        assert_eq!(s.series[&vm("vm-2")][0].value, 2048.0);
    }
    for seen in [&old_seen, &silent_seen] {
        let s = seen.lock().expect("lock");
        assert!(s.errors.is_empty(), "{:?}", s.errors);
    }
    // 415 and an unconfirmed 2xx drop the batch: never a retry loop, and
    // never counted as sent.
    for u in [&old_url, &silent_url] {
        let retried = format!("fleetwatch_collector_samples_retried_total{{url=\"{u}\"}}");
        assert_eq!(value(&text, &retried), 0.0, "{text}");
        let sent = format!("fleetwatch_collector_samples_sent_total{{url=\"{u}\"}}");
        assert_eq!(value(&text, &sent), 0.0, "{text}");
    }
    let sent = format!("fleetwatch_collector_samples_sent_total{{url=\"{v2_url}\"}}");
    assert!(value(&text, &sent) >= 2.0, "{text}");
    assert!(
        !text.contains(&format!("reason=\"not_written\",url=\"{v2_url}\"")),
        "{text}"
    );

    stop_collector(stop_tx, run).await;
    // Stopped, nothing is in flight: exactly one request per dropped batch.
    let text = metrics_text(&metrics_url).await;
    for (seen, reason, u) in [
        (&old_seen, "http_415", &old_url),
        (&silent_seen, "not_written", &silent_url),
    ] {
        let requests = seen.lock().expect("lock").requests;
        assert_eq!(requests as f64, failed(&text, reason, u), "{u}:\n{text}");
    }
    metrics_server.stop().await;
    for s in [v2, old, silent, target] {
        s.stop().await;
    }
}
