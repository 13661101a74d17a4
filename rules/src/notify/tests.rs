//! Notifier tests against a loopback HTTP server that records bodies and
//! can fail requests.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::alertmanager::{AlertmanagerNotifier, AlertmanagerOptions};
use super::webhook::{WebhookNotifier, WebhookOptions};
use super::AlertSink;
use crate::alerting::OutgoingAlert;

type Log = Arc<Mutex<Vec<(Instant, Value)>>>;

/// Serves until the test ends; the first `fail` requests get a 500.
async fn server(fail: usize) -> (String, Log) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let log: Log = Arc::default();
    let seen = Arc::new(AtomicUsize::new(0));
    let l = Arc::clone(&log);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let (l, seen) = (Arc::clone(&l), Arc::clone(&seen));
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = s.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|x| {
                            x.strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if buf.len() < end + 4 + len {
                        continue;
                    }
                    let body: Value =
                        serde_json::from_slice(&buf[end + 4..end + 4 + len]).unwrap_or(Value::Null);
                    let n = seen.fetch_add(1, Ordering::SeqCst);
                    let status = if n < fail {
                        "500 Internal Server Error"
                    } else {
                        "200 OK"
                    };
                    if n >= fail {
                        l.lock().expect("log").push((Instant::now(), body));
                    }
                    let _ = s
                        .write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes())
                        .await;
                    return;
                }
            });
        }
    });
    (addr, log)
}

fn alert(cluster: &str, name: &str, ends_at_ms: i64) -> OutgoingAlert {
    OutgoingAlert {
        labels: [("alertname", "A"), ("cluster", cluster), ("name", name)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        annotations: [("summary".to_string(), format!("{name} is hot"))].into(),
        starts_at_ms: 1_700_000_000_000,
        ends_at_ms,
        generator_url: "http://hub/graph?g0.expr=x&g0.tab=1".into(),
    }
}

async fn wait_len(log: &Log, n: usize) -> Vec<(Instant, Value)> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = log.lock().expect("log").clone();
        if v.len() >= n || Instant::now() > deadline {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn far_future() -> i64 {
    i64::MAX / 4
}

#[tokio::test]
async fn alertmanager_client_retries_and_counts() {
    let (addr, log) = server(1).await;
    let n = AlertmanagerNotifier::new(AlertmanagerOptions {
        urls: vec![format!("http://{addr}/api/v2/alerts")],
        external_labels: [("hub".to_string(), "h1".to_string())].into(),
        ..AlertmanagerOptions::default()
    })
    .expect("notifier");
    let task = n.spawn();
    n.send(&[alert("a", "vm-1", far_future())]);
    let got = wait_len(&log, 1).await;
    task.abort();
    assert_eq!(got.len(), 1, "delivered after a retry");
    let a = &got[0].1[0];
    assert_eq!(a["labels"]["hub"], "h1");
    assert_eq!(a["labels"]["cluster"], "a");
    assert_eq!(a["annotations"]["summary"], "vm-1 is hot");
    assert_eq!(a["startsAt"], "2023-11-14T22:13:20.000Z");
    assert_eq!(a["generatorURL"], "http://hub/graph?g0.expr=x&g0.tab=1");
    assert_eq!(n.metrics().errors.load(Ordering::Relaxed), 1);
    assert_eq!(n.metrics().sent.load(Ordering::Relaxed), 1);

    // Nobody listening: every attempt fails and the batch is dropped.
    let dead = AlertmanagerNotifier::new(AlertmanagerOptions {
        urls: vec!["http://127.0.0.1:9/api/v2/alerts".into()],
        attempts: 2,
        timeout: Duration::from_secs(2),
        ..AlertmanagerOptions::default()
    })
    .expect("notifier");
    let task = dead.spawn();
    dead.send(&[alert("a", "vm-1", far_future())]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while dead.metrics().dropped.load(Ordering::Relaxed) == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    task.abort();
    assert_eq!(dead.metrics().errors.load(Ordering::Relaxed), 2);
    assert_eq!(dead.metrics().dropped.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn webhook_groups_waits_and_resolves() {
    let (addr, log) = server(0).await;
    let mut o = WebhookOptions::new("ops", &format!("http://{addr}/hook"));
    o.group_by = vec!["cluster".into()];
    o.group_wait = Duration::from_millis(400);
    o.group_interval = Duration::from_millis(200);
    o.external_url = "http://hub:9190".into();
    o.matchers = vec![super::webhook::parse_matcher("name=~\"vm-.*\"").expect("matcher")];
    let n = WebhookNotifier::new(o).expect("notifier");
    let task = n.spawn();
    let sent_at = Instant::now();
    n.send(&[
        alert("a", "vm-1", far_future()),
        alert("a", "vm-2", far_future()),
        alert("b", "vm-3", far_future()),
        alert("b", "db-9", far_future()),
    ]);
    let got = wait_len(&log, 2).await;
    assert_eq!(got.len(), 2);
    for (at, body) in &got {
        assert!(
            at.duration_since(sent_at) >= Duration::from_millis(380),
            "group_wait"
        );
        assert_eq!(body["version"], "4");
        assert_eq!(body["receiver"], "ops");
        assert_eq!(body["status"], "firing");
        assert_eq!(body["externalURL"], "http://hub:9190");
    }
    let a = got
        .iter()
        .find(|(_, b)| b["groupLabels"]["cluster"] == "a")
        .expect("group a");
    assert_eq!(a.1["groupKey"], "{}/{name=~\"vm-.*\"}:{cluster=\"a\"}");
    assert_eq!(a.1["alerts"].as_array().map(Vec::len), Some(2));
    assert_eq!(a.1["commonLabels"]["cluster"], "a");
    assert!(a.1["commonLabels"].get("name").is_none(), "names differ");
    let b = got
        .iter()
        .find(|(_, b)| b["groupLabels"]["cluster"] == "b")
        .expect("group b");
    assert_eq!(
        b.1["alerts"].as_array().map(Vec::len),
        Some(1),
        "db-9 filtered by the matcher"
    );
    assert_eq!(b.1["commonAnnotations"]["summary"], "vm-3 is hot");

    // Unchanged groups are not sent again before repeat_interval.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(log.lock().expect("log").len(), 2);

    // vm-1 resolves: group a is notified at its next interval.
    n.send(&[alert("a", "vm-1", 1_700_000_100_000)]);
    let got = wait_len(&log, 3).await;
    task.abort();
    assert_eq!(got.len(), 3);
    let last = &got[2].1;
    assert_eq!(last["groupLabels"]["cluster"], "a");
    assert_eq!(last["status"], "firing", "vm-2 still fires");
    let mut statuses: Vec<(&str, &str)> = last["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .map(|x| {
            (
                x["labels"]["name"].as_str().unwrap_or(""),
                x["status"].as_str().unwrap_or(""),
            )
        })
        .collect();
    statuses.sort();
    assert_eq!(statuses, vec![("vm-1", "resolved"), ("vm-2", "firing")]);
}

#[tokio::test]
async fn webhook_repeats_and_truncates() {
    let (addr, log) = server(0).await;
    let mut o = WebhookOptions::new("ops", &format!("http://{addr}/hook"));
    o.group_wait = Duration::from_millis(0);
    o.group_interval = Duration::from_millis(100);
    o.repeat_interval = Duration::from_millis(600);
    o.max_alerts = 1;
    o.send_resolved = false;
    let n = WebhookNotifier::new(o).expect("notifier");
    let task = n.spawn();
    n.send(&[
        alert("a", "vm-1", far_future()),
        alert("b", "vm-2", far_future()),
    ]);
    let got = wait_len(&log, 2).await;
    assert_eq!(
        got.len(),
        2,
        "unchanged group repeated after repeat_interval"
    );
    let gap = got[1].0.duration_since(got[0].0);
    assert!(gap >= Duration::from_millis(550), "repeated after {gap:?}");
    let body = &got[0].1;
    assert_eq!(body["groupKey"], "{}:{}", "no group_by: one group");
    assert_eq!(body["alerts"].as_array().map(Vec::len), Some(1));
    assert_eq!(body["truncatedAlerts"], 1);
    // Without send_resolved, resolved alerts are not posted at all.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let before = log.lock().expect("log").len();
    n.send(&[alert("a", "vm-1", now - 1), alert("b", "vm-2", now - 1)]);
    tokio::time::sleep(Duration::from_millis(800)).await;
    task.abort();
    let after = log.lock().expect("log").clone();
    assert!(
        after.len() <= before + 1,
        "at most one repeat raced the resolution"
    );
    for (_, b) in &after {
        assert_eq!(b["status"], "firing", "{b}");
    }
    assert!(n.queue_len() == 0);
}
