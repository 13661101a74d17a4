//! Targets from `file_sd_configs` follow their files (a removed target's
//! series get staleness markers); `POST /-/reload`
//! applies scrape and external-label changes in place, refuses
//! remote_write changes, and never drops queued data.

mod common;

use common::{stop_collector, wait_until};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::{get, post};
use axum::Router;
use common::Server;
use fleetwatch_collector::{Collector, CollectorConfig};
use fleetwatch_model::remote_write::decode_write_request;
use tokio::sync::oneshot;

/// Rendered label sets of every series received.
type Seen = Arc<Mutex<BTreeSet<String>>>;

async fn receive(State(seen): State<Seen>, body: Bytes) -> &'static str {
    if let Ok(series) = decode_write_request(&body, 64 << 20) {
        let mut s = seen.lock().expect("lock");
        for x in series {
            if x.samples
                .iter()
                .any(|v| fleetwatch_model::is_stale_nan(v.value))
            {
                s.insert(format!("STALE {}", x.labels));
            }
            s.insert(x.labels.to_string());
        }
    }
    ""
}

async fn target(name: &'static str) -> Server {
    Server::start(Router::new().route(
        "/metrics",
        get(move || async move { format!("{name} 1\n") }),
    ))
    .await
}

async fn get_json(url: &str) -> serde_json::Value {
    let text = reqwest::get(url)
        .await
        .expect("get")
        .text()
        .await
        .expect("body");
    serde_json::from_str(&text).expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_sd_follows_files_and_reload_applies_in_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = target("metric_a").await;
    let b = target("metric_b").await;
    let seen: Seen = Arc::default();
    let receiver = Server::start(
        Router::new()
            .route("/api/v1/write", post(receive))
            .with_state(Arc::clone(&seen)),
    )
    .await;
    let sd_file = dir.path().join("targets.json");
    std::fs::write(
        &sd_file,
        format!(
            r#"[{{"targets": ["{}"], "labels": {{"team": "virt"}}}}]"#,
            a.addr
        ),
    )
    .expect("write sd file");
    let config_text = |cluster: &str, url: &str| {
        format!(
            r#"
global:
  scrape_interval: 200ms
  scrape_timeout: 200ms
  external_labels: {{cluster: {cluster}}}
scrape_configs:
  - job_name: sd
    file_sd_configs:
      - files: ['{dir}/*.json']
remote_write:
  - url: {url}
    queue_config: {{batch_send_deadline: 50ms, min_backoff: 10ms, max_backoff: 100ms}}
storage:
  path: {dir}/data
"#,
            dir = dir.path().display()
        )
    };
    let url = format!("http://{}/api/v1/write", receiver.addr);
    let config_path = dir.path().join("collector.yml");
    std::fs::write(&config_path, config_text("c1", &url)).expect("write config");
    let cfg = CollectorConfig::load(&config_path).expect("config");
    let collector = Collector::new(cfg)
        .expect("collector")
        .with_config_path(config_path.clone());
    let api = Server::start(collector.metrics_router()).await;
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let run = tokio::spawn(collector.run(async {
        let _ = stop_rx.await;
    }));

    let has = |needle: String| {
        let seen = Arc::clone(&seen);
        move || {
            seen.lock()
                .expect("lock")
                .iter()
                .any(|s| s.contains(&needle))
        }
    };
    wait_until(
        "metric_a from the file",
        has(r#"metric_a{cluster="c1""#.into()),
    )
    .await;
    let targets_url = format!("http://{}/api/v1/targets", api.addr);
    let t = get_json(&targets_url).await;
    assert_eq!(t["status"], "success");
    let active = t["data"]["activeTargets"]
        .as_array()
        .expect("array")
        .clone();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0]["labels"]["team"], "virt");
    assert_eq!(
        active[0]["discoveredLabels"]["__meta_filepath"],
        sd_file.display().to_string()
    );

    // The file changes: target b appears, a goes.
    std::fs::write(&sd_file, format!(r#"[{{"targets": ["{}"]}}]"#, b.addr)).expect("rewrite");
    wait_until("metric_b after the file changed", has("metric_b{".into())).await;
    wait_until(
        "staleness markers for the removed target",
        has(r#"STALE metric_a{cluster="c1""#.into()),
    )
    .await;
    wait_until(
        "a stale up for the removed target",
        has(format!(r#"STALE up{{cluster="c1", instance="{}""#, a.addr)),
    )
    .await;
    let t = get_json(&targets_url).await;
    let active = t["data"]["activeTargets"]
        .as_array()
        .expect("array")
        .clone();
    assert_eq!(active.len(), 1, "{active:?}");
    assert_eq!(active[0]["labels"]["instance"], b.addr.to_string());

    // A reload changes the external labels in place.
    std::fs::write(&config_path, config_text("c2", &url)).expect("write config");
    let client = reqwest::Client::new();
    let reload_url = format!("http://{}/-/reload", api.addr);
    let resp = client.post(&reload_url).send().await.expect("reload");
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
    wait_until(
        "the new external label",
        has(r#"metric_b{cluster="c2""#.into()),
    )
    .await;

    // A remote_write change is refused; nothing changes.
    std::fs::write(
        &config_path,
        config_text("c3", "http://127.0.0.1:1/api/v1/write"),
    )
    .expect("write config");
    let resp = client.post(&reload_url).send().await.expect("reload");
    assert_eq!(resp.status(), 500);
    assert!(resp.text().await.expect("body").contains("restart"));
    let before = seen.lock().expect("lock").len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !seen.lock().expect("lock").iter().any(|s| s.contains("c3")),
        "the refused config was not applied"
    );
    assert!(seen.lock().expect("lock").len() >= before);

    let text = reqwest::get(format!("http://{}/metrics", api.addr))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for line in text
        .lines()
        .filter(|l| l.starts_with("fleetwatch_collector_queue_dropped_samples_total"))
    {
        assert!(line.ends_with(" 0"), "nothing dropped: {line}");
    }

    stop_collector(stop_tx, run).await;
    api.stop().await;
    receiver.stop().await;
    a.stop().await;
    b.stop().await;
}
