//! End-to-end: a target served by axum, a remote-write receiver served by
//! axum, and a real collector in between, all on 127.0.0.1.

mod common;

use common::{stop_collector, wait_until};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use common::Server;
use fleetwatch_collector::{Collector, CollectorConfig};
use fleetwatch_model::remote_write::decode_write_request;
use fleetwatch_model::{Labels, Sample};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const BOUND: Duration = Duration::from_secs(20);

const EXPOSITION: &str = r#"# HELP kubevirt_vm_memory_usage_bytes Memory used by the VM.
# TYPE kubevirt_vm_memory_usage_bytes gauge
kubevirt_vm_memory_usage_bytes{name="vm-1",namespace="default"} 1.5e+09
kubevirt_vm_memory_usage_bytes{name="vm-2",namespace="default",job="inner",cluster="spoofed"} 2048
# TYPE kubevirt_vm_migration_failed_total counter
kubevirt_vm_migration_failed_total{name="vm-1"} 3
# TYPE cluster:vm_memory:sum gauge
cluster:vm_memory:sum 1500002048
# TYPE rw_latency_seconds histogram
rw_latency_seconds_bucket{le="0.1"} 1
rw_latency_seconds_bucket{le="1"} 4
rw_latency_seconds_bucket{le="+Inf"} 5
rw_latency_seconds_sum 2.5
rw_latency_seconds_count 5
# TYPE rpc_seconds summary
rpc_seconds{quantile="0.5"} 0.2
rpc_seconds_sum 10
rpc_seconds_count 40
escaped{path="C:\\dir",msg="a \"b\", c=d"} 1
"#;

/// What the receiver saw.
#[derive(Default)]
struct Received {
    /// Statuses answered, in order.
    statuses: Vec<u16>,
    /// Samples per rendered series, in arrival order.
    series: BTreeMap<String, Vec<Sample>>,
    /// Problems with request headers.
    header_errors: Vec<String>,
}

#[derive(Clone)]
struct Receiver {
    state: Arc<Mutex<Received>>,
    /// Statuses to answer before accepting (then always 200).
    script: Arc<Mutex<Vec<u16>>>,
    /// Answer this status forever instead (for a rejecting endpoint).
    always: Option<u16>,
}

async fn receive(
    State(r): State<Receiver>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let mut errs = Vec::new();
    let expect = [
        ("content-encoding", "snappy"),
        ("content-type", "application/x-protobuf"),
        ("x-prometheus-remote-write-version", "0.1.0"),
    ];
    for (name, want) in expect {
        let got = headers.get(name).and_then(|v| v.to_str().ok());
        if got != Some(want) {
            errs.push(format!("{name}: {got:?}"));
        }
    }
    let ua = headers
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ua.starts_with("fleetwatch-collector/") {
        errs.push(format!("user-agent: {ua:?}"));
    }
    let status = match r.always {
        Some(s) => s,
        None => {
            let mut script = r.script.lock().expect("lock");
            if script.is_empty() {
                200
            } else {
                script.remove(0)
            }
        }
    };
    let mut st = r.state.lock().expect("lock");
    st.header_errors.extend(errs);
    st.statuses.push(status);
    if status != 200 {
        return (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "not now",
        );
    }
    match decode_write_request(&body, 32 << 20) {
        Ok(series) => {
            for s in series {
                st.series
                    .entry(s.labels.to_string())
                    .or_default()
                    .extend(s.samples);
            }
            (StatusCode::OK, "")
        }
        Err(e) => {
            st.header_errors.push(format!("bad body: {e}"));
            (StatusCode::BAD_REQUEST, "bad body")
        }
    }
}

async fn start_receiver(script: Vec<u16>, always: Option<u16>) -> (Server, Arc<Mutex<Received>>) {
    let state = Arc::new(Mutex::new(Received::default()));
    let r = Receiver {
        state: Arc::clone(&state),
        script: Arc::new(Mutex::new(script)),
        always,
    };
    let router = Router::new()
        .route("/api/v1/write", post(receive))
        .with_state(r);
    (Server::start(router).await, state)
}

async fn http_get(url: &str) -> (u16, String) {
    let resp = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("get");
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapes_and_ships_with_retries() {
    let seen_headers: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let sh = Arc::clone(&seen_headers);
    let target = Server::start(Router::new().route(
        "/metrics",
        get(move |headers: HeaderMap| {
            let sh = Arc::clone(&sh);
            async move {
                let h = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string()
                };
                sh.lock()
                    .expect("lock")
                    .push((h("accept"), h("x-prometheus-scrape-timeout-seconds")));
                EXPOSITION
            }
        }),
    ))
    .await;
    let (receiver, received) = start_receiver(vec![503, 503], None).await;

    let yaml = format!(
        r#"
global:
  scrape_interval: 1s
  scrape_timeout: 500ms
  external_labels:
    cluster: test-cluster
    region: r1
scrape_configs:
  - job_name: app
    static_configs:
      - targets: ['{target}']
        labels:
          team: virt
remote_write:
  - url: http://{receiver}/api/v1/write
    remote_timeout: 5s
    queue_config:
      capacity: 1000
      max_samples_per_send: 500
      batch_send_deadline: 50ms
      min_backoff: 10ms
      max_backoff: 100ms
"#,
        target = target.addr,
        receiver = receiver.addr
    );
    let cfg = CollectorConfig::from_yaml_str(&yaml).expect("config parses");
    let collector = Collector::new(cfg).expect("collector");
    let metrics_server = Server::start(collector.metrics_router()).await;
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let run = tokio::spawn(collector.run(async {
        let _ = stop_rx.await;
    }));

    let instance = target.addr.to_string();
    let series = |name: &str, extra: &[(&str, &str)]| -> String {
        let mut pairs: Vec<(&str, &str)> = vec![
            ("__name__", name),
            ("cluster", "test-cluster"),
            ("instance", instance.as_str()),
            ("job", "app"),
            ("region", "r1"),
            ("team", "virt"),
        ];
        pairs.extend_from_slice(extra);
        Labels::from_pairs(pairs).to_string()
    };
    let vm = [("namespace", "default")];
    let expected: Vec<(String, f64)> = vec![
        (
            series("kubevirt_vm_memory_usage_bytes", &[("name", "vm-1"), vm[0]]),
            1.5e9,
        ),
        // The scraped job is kept as exported_job; the spoofed cluster is
        // overridden and kept as exported_cluster.
        (
            series(
                "kubevirt_vm_memory_usage_bytes",
                &[
                    ("name", "vm-2"),
                    vm[0],
                    ("exported_job", "inner"),
                    ("exported_cluster", "spoofed"),
                ],
            ),
            2048.0,
        ),
        (
            series("kubevirt_vm_migration_failed_total", &[("name", "vm-1")]),
            3.0,
        ),
        (series("cluster:vm_memory:sum", &[]), 1_500_002_048.0),
        (series("rw_latency_seconds_bucket", &[("le", "0.1")]), 1.0),
        (series("rw_latency_seconds_bucket", &[("le", "1.0")]), 4.0),
        (series("rw_latency_seconds_bucket", &[("le", "+Inf")]), 5.0),
        (series("rw_latency_seconds_sum", &[]), 2.5),
        (series("rw_latency_seconds_count", &[]), 5.0),
        (series("rpc_seconds", &[("quantile", "0.5")]), 0.2),
        (series("rpc_seconds_sum", &[]), 10.0),
        (series("rpc_seconds_count", &[]), 40.0),
        (
            series("escaped", &[("msg", "a \"b\", c=d"), ("path", "C:\\dir")]),
            1.0,
        ),
        (series("up", &[]), 1.0),
        (series("scrape_samples_scraped", &[]), 13.0),
        (series("scrape_samples_post_metric_relabeling", &[]), 13.0),
    ];
    let synthetic_varying = [
        series("scrape_duration_seconds", &[]),
        series("scrape_series_added", &[]),
    ];

    let all_arrived = || {
        let st = received.lock().expect("lock");
        expected.iter().all(|(k, _)| st.series.contains_key(k))
            && synthetic_varying.iter().all(|k| st.series.contains_key(k))
    };
    let deadline = tokio::time::Instant::now() + BOUND;
    while !all_arrived() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if !all_arrived() {
        let st = received.lock().expect("lock");
        let missing: Vec<&String> = expected
            .iter()
            .map(|(k, _)| k)
            .chain(synthetic_varying.iter())
            .filter(|k| !st.series.contains_key(*k))
            .collect();
        panic!(
            "missing at the receiver: {missing:#?}\nreceived: {:#?}",
            st.series.keys().collect::<Vec<_>>()
        );
    }

    {
        let st = received.lock().expect("lock");
        assert!(st.header_errors.is_empty(), "{:?}", st.header_errors);
        assert_eq!(
            &st.statuses[..3],
            [503, 503, 200],
            "503 twice, then accepted"
        );
        for (series, value) in &expected {
            let samples = &st.series[series];
            assert!(
                samples.iter().all(|s| s.value == *value),
                "{series}: want {value}, got {samples:?}"
            );
            assert!(
                samples
                    .windows(2)
                    .all(|w| w[0].timestamp_ms < w[1].timestamp_ms),
                "{series}: samples out of order: {samples:?}"
            );
        }
        let known: Vec<&String> = expected
            .iter()
            .map(|(k, _)| k)
            .chain(synthetic_varying.iter())
            .collect();
        let unexpected: Vec<&String> = st.series.keys().filter(|k| !known.contains(k)).collect();
        assert!(unexpected.is_empty(), "unexpected series: {unexpected:?}");
        let added = &st.series[&synthetic_varying[1]];
        assert_eq!(
            added[0].value, 13.0,
            "every series is new on the first scrape"
        );
    }
    {
        let h = seen_headers.lock().expect("lock");
        assert_eq!(h[0].0, fleetwatch_collector::scrape::SCRAPE_ACCEPT);
        assert_eq!(h[0].1, "0.5");
    }

    let metrics_base = format!("http://{}", metrics_server.addr);
    assert_eq!(http_get(&format!("{metrics_base}/-/healthy")).await.0, 200);
    assert_eq!(http_get(&format!("{metrics_base}/-/ready")).await.0, 200);
    let (status, text) = http_get(&format!("{metrics_base}/metrics")).await;
    assert_eq!(status, 200);
    let url = format!("http://{}/api/v1/write", receiver.addr);
    let value_of = |name: &str| -> f64 {
        let prefix = format!("{name} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} not in {text}"))
    };
    assert!(
        value_of(&format!(
            "fleetwatch_collector_samples_retried_total{{url=\"{url}\"}}"
        )) >= 2.0
    );
    assert!(
        value_of(&format!(
            "fleetwatch_collector_samples_sent_total{{url=\"{url}\"}}"
        )) >= 18.0
    );
    assert!(value_of("fleetwatch_collector_scrapes_total{job=\"app\"}") >= 1.0);
    assert!(value_of("fleetwatch_collector_external_label_overrides_total") >= 1.0);

    stop_collector(stop_tx, run).await;
    assert_eq!(http_get(&format!("{metrics_base}/-/ready")).await.0, 503);

    metrics_server.stop().await;
    receiver.stop().await;
    target.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_scrape_sends_up_zero_and_rejected_batches_are_dropped() {
    // A port with nothing listening: bind, note it, close it.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        l.local_addr().expect("addr")
    };
    let (good, good_rx) = start_receiver(Vec::new(), None).await;
    let (bad, bad_rx) = start_receiver(Vec::new(), Some(400)).await;
    let yaml = format!(
        r#"
global:
  scrape_interval: 1s
  scrape_timeout: 500ms
  external_labels: {{cluster: c1}}
scrape_configs:
  - job_name: down
    static_configs: [{{targets: ['{closed}']}}]
remote_write:
  - url: http://{good}/api/v1/write
    queue_config: {{batch_send_deadline: 50ms, min_backoff: 10ms, max_backoff: 100ms}}
  - url: http://{bad}/api/v1/write
    queue_config: {{batch_send_deadline: 50ms, min_backoff: 10ms, max_backoff: 100ms}}
"#,
        good = good.addr,
        bad = bad.addr
    );
    let collector = Collector::new(CollectorConfig::from_yaml_str(&yaml).expect("parses"))
        .expect("collector")
        .with_flush_timeout(Duration::from_secs(2));
    let metrics_server = Server::start(collector.metrics_router()).await;
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let run = tokio::spawn(collector.run(async {
        let _ = stop_rx.await;
    }));

    let up = format!(r#"up{{cluster="c1", instance="{closed}", job="down"}}"#);
    wait_until("up at the accepting receiver", || {
        good_rx.lock().expect("lock").series.contains_key(&up)
    })
    .await;
    wait_until("a rejected batch", || {
        !bad_rx.lock().expect("lock").statuses.is_empty()
    })
    .await;
    assert_eq!(good_rx.lock().expect("lock").series[&up][0].value, 0.0);

    let bad_url = format!("http://{}/api/v1/write", bad.addr);
    let metrics_url = format!("http://{}/metrics", metrics_server.addr);
    let want = format!(
        "fleetwatch_collector_samples_failed_total{{reason=\"http_400\",url=\"{bad_url}\"}} "
    );
    let mut failed = 0.0;
    let deadline = tokio::time::Instant::now() + BOUND;
    while failed < 5.0 && tokio::time::Instant::now() < deadline {
        let (_, text) = http_get(&metrics_url).await;
        failed = text
            .lines()
            .find_map(|l| l.strip_prefix(&want))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        failed >= 5.0,
        "a rejected batch of 5 synthetic samples is counted"
    );
    let (_, text) = http_get(&metrics_url).await;
    assert!(
        text.contains("fleetwatch_collector_scrapes_failed_total{job=\"down\"} "),
        "{text}"
    );
    assert!(
        !text.contains("fleetwatch_collector_scrapes_failed_total{job=\"down\"} 0\n"),
        "{text}"
    );

    stop_collector(stop_tx, run).await;
    metrics_server.stop().await;
    good.stop().await;
    bad.stop().await;
}
