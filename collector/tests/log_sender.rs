//! The log sender against a Loki endpoint served by axum on 127.0.0.1:
//! 5xx and 429 are retried (honouring `Retry-After`), a 400 drops only its
//! batch and is counted, lines arrive in order, and a recovered batch the
//! hub already holds is not sent again.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use common::Server;
use fleetwatch_collector::config::LogsConfig;
use fleetwatch_collector::http_client::HttpClient;
use fleetwatch_collector::logs::queue::{BatchQueue, BatchStream};
use fleetwatch_collector::logs::sender::Sender;
use fleetwatch_collector::logs::LogMetrics;
use fleetwatch_model::loki::decode_protobuf;
use tokio::sync::watch;

const BOUND: Duration = Duration::from_secs(20);

/// What the fake endpoint answers, in turn, and what it received.
#[derive(Default)]
struct Fake {
    statuses: Mutex<Vec<u16>>,
    pushes: Mutex<Vec<Vec<(String, String)>>>,
    /// Lines `query_range` reports as stored: (ns, line).
    stored: Mutex<Vec<(String, String)>>,
    /// The `Authorization` header of every push (None: absent).
    auth: Mutex<Vec<Option<String>>>,
}

async fn push(State(f): State<Arc<Fake>>, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    assert_eq!(
        headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/x-protobuf")
    );
    f.auth.lock().expect("lock").push(
        headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    );
    let streams = decode_protobuf(&body, 1 << 20).expect("snappy protobuf push");
    let lines = streams
        .iter()
        .flat_map(|s| {
            s.entries
                .iter()
                .map(|e| (s.labels.to_string(), e.line.clone()))
        })
        .collect();
    f.pushes.lock().expect("lock").push(lines);
    let status = {
        let mut s = f.statuses.lock().expect("lock");
        if s.is_empty() {
            204
        } else {
            s.remove(0)
        }
    };
    let mut headers = HeaderMap::new();
    if status == 429 {
        headers.insert("retry-after", "0".parse().expect("header"));
    }
    (
        StatusCode::from_u16(status).expect("status"),
        headers,
        "answer",
    )
}

async fn query_range(State(f): State<Arc<Fake>>) -> impl IntoResponse {
    let values: Vec<serde_json::Value> = f
        .stored
        .lock()
        .expect("lock")
        .iter()
        .map(|(ts, l)| serde_json::json!([ts, l]))
        .collect();
    axum::Json(serde_json::json!({
        "status": "success",
        "data": {"resultType": "streams", "result": [{"stream": {"job": "t"}, "values": values}]}
    }))
}

async fn start(fake: &Arc<Fake>) -> Server {
    Server::start(
        Router::new()
            .route("/loki/api/v1/push", post(push))
            .route("/loki/api/v1/query_range", axum::routing::get(query_range))
            .with_state(Arc::clone(fake)),
    )
    .await
}

fn config(addr: std::net::SocketAddr) -> LogsConfig {
    let yaml = format!(
        "url: http://{addr}/loki/api/v1/push\nmin_backoff: 10ms\nmax_backoff: 50ms\ntimeout: 5s\n"
    );
    serde_yaml::from_str(&yaml).expect("config")
}

/// Timestamp of the first line of every batch; the next ones follow by 1 ns.
const T0: i64 = 1_700_000_000_000_000_000;

fn stream(lines: &[&str]) -> Vec<BatchStream> {
    let labels = BTreeMap::from([("job".to_string(), "t".to_string())]);
    let entries = (T0..).zip(lines.iter().map(|l| l.to_string())).collect();
    vec![BatchStream { labels, entries }]
}

/// A fake endpoint answering `statuses`, an empty queue, its metrics and
/// its directory.
type Setup = (
    Arc<Fake>,
    Server,
    Arc<BatchQueue>,
    Arc<LogMetrics>,
    tempfile::TempDir,
);

async fn setup(statuses: Vec<u16>) -> Setup {
    let fake = Arc::new(Fake::default());
    *fake.statuses.lock().expect("lock") = statuses;
    let server = start(&fake).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let metrics = Arc::new(LogMetrics::default());
    let queue =
        BatchQueue::open(dir.path(), 1 << 20, 1 << 20, Arc::clone(&metrics)).expect("queue");
    (fake, server, Arc::new(queue), metrics, dir)
}

/// Runs the sender until it has sent everything published.
async fn send_all(
    cfg: &LogsConfig,
    queue: &Arc<BatchQueue>,
    recovered: BTreeSet<u64>,
    m: &Arc<LogMetrics>,
) {
    let client = HttpClient::new(&cfg.http_client_config()).expect("client");
    let sender = Sender::new(cfg, client, Arc::clone(m)).expect("sender");
    let (_tx, stop) = watch::channel(true);
    tokio::time::timeout(BOUND, sender.run(Arc::clone(queue), recovered, stop))
        .await
        .expect("sender finished in time");
}

#[tokio::test]
async fn retries_5xx_and_429_drops_a_400_batch_and_keeps_order() {
    let (fake, server, queue, m, _dir) = setup(vec![500, 429, 204, 400, 204]).await;
    let first = queue.append(vec![], stream(&["a", "b"])).expect("append");
    queue.append(vec![], stream(&["poison"])).expect("append");
    let last = queue.append(vec![], stream(&["c"])).expect("append");
    queue.publish(last);
    send_all(&config(server.addr), &queue, BTreeSet::new(), &m).await;
    server.stop().await;

    let pushes = fake.pushes.lock().expect("lock").clone();
    let lines: Vec<Vec<&str>> = pushes
        .iter()
        .map(|p| p.iter().map(|(_, l)| l.as_str()).collect())
        .collect();
    assert_eq!(
        lines,
        [
            vec!["a", "b"],
            vec!["a", "b"],
            vec!["a", "b"],
            vec!["poison"],
            vec!["c"]
        ]
    );
    assert_eq!(pushes[0][0].0, r#"{job="t"}"#);
    assert_eq!(m.lines_sent.load(Ordering::Relaxed), 3);
    assert_eq!(m.push_retries.load(Ordering::Relaxed), 2);
    assert_eq!(m.failures(), BTreeMap::from([("http_400".to_string(), 1)]));
    assert!(queue.seqs().is_empty(), "every batch is done");
    assert!(first < last);
}

#[tokio::test]
async fn a_recovered_batch_the_hub_already_holds_is_not_sent_again() {
    let (fake, server, queue, m, _dir) = setup(Vec::new()).await;
    let delivered = queue.append(vec![], stream(&["x", "y"])).expect("append");
    let fresh = queue.append(vec![], stream(&["z"])).expect("append");
    queue.publish(fresh);
    // The hub holds the last line of the first batch (same ns and text).
    *fake.stored.lock().expect("lock") = vec![("1700000000000000001".to_string(), "y".to_string())];
    send_all(
        &config(server.addr),
        &queue,
        BTreeSet::from([delivered]),
        &m,
    )
    .await;
    // The second batch's lookup is not made (only recovered batches are
    // looked up) and it is sent.
    let pushes = fake.pushes.lock().expect("lock").clone();
    assert_eq!(pushes.len(), 1, "{pushes:?}");
    assert_eq!(pushes[0][0].1, "z");
    assert_eq!(m.lines_sent.load(Ordering::Relaxed), 1);

    // A recovered batch the hub does not hold is sent.
    let again = queue.append(vec![], stream(&["w"])).expect("append");
    queue.publish(again);
    send_all(&config(server.addr), &queue, BTreeSet::from([again]), &m).await;
    server.stop().await;
    assert_eq!(fake.pushes.lock().expect("lock").len(), 2);
    assert!(queue.seqs().is_empty());
}

/// Pushes one batch with the auth keys `extra` and returns the
/// `Authorization` headers the hub saw.
async fn push_with_auth(extra: &str) -> Vec<Option<String>> {
    let (fake, server, queue, m, _dir) = setup(Vec::new()).await;
    let seq = queue.append(vec![], stream(&["l"])).expect("append");
    queue.publish(seq);
    let yaml = format!(
        "url: http://{}/loki/api/v1/push\ntimeout: 5s\n{extra}",
        server.addr
    );
    let cfg: LogsConfig = serde_yaml::from_str(&yaml).expect("config");
    cfg.validate().expect("valid");
    send_all(&cfg, &queue, BTreeSet::new(), &m).await;
    server.stop().await;
    assert_eq!(m.lines_sent.load(Ordering::Relaxed), 1);
    let auth = fake.auth.lock().expect("lock").clone();
    auth
}

#[tokio::test]
async fn a_push_carries_basic_auth_or_a_bearer_token() {
    // "u:p" in base64.
    assert_eq!(
        push_with_auth("basic_auth: {username: u, password: p}\n").await,
        [Some("Basic dTpw".to_string())]
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let token = dir.path().join("token");
    std::fs::write(&token, "tok1\n").expect("write token");
    assert_eq!(
        push_with_auth(&format!("bearer_token_file: '{}'\n", token.display())).await,
        [Some("Bearer tok1".to_string())]
    );
    assert_eq!(
        push_with_auth("authorization: {type: Token, credentials: c2}\n").await,
        [Some("Token c2".to_string())]
    );
    assert_eq!(push_with_auth("").await, [None], "no auth configured");
}
