//! Network faults at the remote-write endpoint: a test receiver answers the
//! first batch with 500, then 429 + Retry-After, then 400, and everything
//! after with 204. The collector retries the first two answers, drops only
//! the poisoned batch (counted as one batch of N samples with reason
//! `http_400`), and everything else keeps flowing.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use fleetwatch_model::remote_write::decode_write_request;

use super::collector_queue_support::*;
use super::support::*;

/// One request seen by the receiver.
#[derive(Debug, Clone)]
struct Seen {
    at: Instant,
    status: u16,
    body: Vec<u8>,
    samples: usize,
    /// Timestamps of `up` samples in the request.
    up_ts: Vec<i64>,
}

type Log = Arc<Mutex<Vec<Seen>>>;

async fn receive(State(log): State<Log>, body: Bytes) -> impl IntoResponse {
    let series = decode_write_request(&body, 64 << 20).unwrap_or_default();
    let samples = series.iter().map(|s| s.samples.len()).sum();
    let up_ts = series
        .iter()
        .filter(|s| s.labels.get("__name__") == Some("up"))
        .flat_map(|s| s.samples.iter().map(|x| x.timestamp_ms))
        .collect();
    let mut log = log.lock().expect("lock");
    let (status, retry_after) = match log.len() {
        0 => (500, None),
        1 => (429, Some("1")),
        2 => (400, None),
        _ => (204, None),
    };
    log.push(Seen {
        at: Instant::now(),
        status,
        body: body.to_vec(),
        samples,
        up_ts,
    });
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (code, if status == 400 { "poisoned batch" } else { "" }).into_response();
    if let Some(v) = retry_after {
        resp.headers_mut()
            .insert("retry-after", axum::http::HeaderValue::from_static(v));
    }
    resp
}

#[test]
fn retries_5xx_and_429_and_drops_only_the_poisoned_batch() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let rt = test_runtime();
    let log: Log = Arc::default();
    let app = axum::Router::new()
        .route("/api/v1/write", axum::routing::post(receive))
        .with_state(Arc::clone(&log));
    let server = LoopbackServer::start(&rt, app);
    let receiver = server.addr;

    let (_sim, sim_addr) = start_simulator("faults-sim", "faults", 1, 7, &[], tmp.path());
    let url = format!("http://{receiver}/api/v1/write");
    let config = queue_collector_config(
        tmp.path(),
        "faults",
        &[("faults", &sim_addr)],
        &url,
        "      max_shards: 1\n",
        "",
    );
    let mut collector =
        start_collector_proc("collector", &config, &tmp.path().join("data"), tmp.path());

    // The poisoned batch was tried three times; later scrapes got through.
    let mut poisoned_up_max = i64::MAX;
    wait_for(
        "batches accepted after the poisoned one",
        Duration::from_secs(60),
        || format!("{:?}\n{}", summary(&log), collector.proc.log()),
        || {
            let l = log.lock().expect("lock");
            if l.len() < 3 {
                return None;
            }
            poisoned_up_max = l[2].up_ts.iter().copied().max().unwrap_or(i64::MIN);
            let later = l[3..]
                .iter()
                .filter(|s| s.up_ts.iter().any(|t| *t > poisoned_up_max))
                .count();
            (later >= 3).then_some(())
        },
    );
    let seen = log.lock().expect("lock").clone();
    assert_eq!(
        seen.iter().take(3).map(|s| s.status).collect::<Vec<_>>(),
        [500, 429, 400]
    );
    assert!(
        seen[0].body == seen[1].body && seen[1].body == seen[2].body,
        "the same batch is retried after 500 and 429"
    );
    assert!(
        seen[2].at - seen[1].at >= Duration::from_millis(900),
        "Retry-After: 1 is honoured (waited {:?})",
        seen[2].at - seen[1].at
    );
    assert!(seen[3..].iter().all(|s| s.status == 204));
    assert!(
        seen[3..].iter().all(|s| s.body != seen[2].body),
        "the poisoned batch is not sent again"
    );
    let poisoned = seen[2].samples as f64;
    assert!(poisoned > 0.0);

    let label = [("reason", "http_400"), ("url", url.as_str())];
    let counts = std::cell::Cell::new((0.0, 0.0));
    wait_for(
        "sent counter to match what the receiver accepted",
        Duration::from_secs(30),
        || format!("{:?} {:?}", counts.get(), summary(&log)),
        || {
            let m = collector.metrics();
            let accepted: usize = log
                .lock()
                .expect("lock")
                .iter()
                .filter(|s| s.status == 204)
                .map(|s| s.samples)
                .sum();
            let sent = sum_metric(
                &m,
                "fleetwatch_collector_samples_sent_total",
                &[("url", &url)],
            );
            counts.set((sent, accepted as f64));
            (sent == accepted as f64).then_some(())
        },
    );
    let m = collector.metrics();
    assert_eq!(
        sum_metric(&m, "fleetwatch_collector_batches_failed_total", &label),
        1.0,
        "one batch dropped"
    );
    assert_eq!(
        sum_metric(&m, "fleetwatch_collector_samples_failed_total", &label),
        poisoned,
        "its samples counted"
    );
    assert_eq!(
        sum_metric(&m, "fleetwatch_collector_samples_failed_total", &[]),
        poisoned,
        "nothing else failed"
    );
    assert!(
        sum_metric(&m, "fleetwatch_collector_samples_retried_total", &[]) >= 2.0 * poisoned,
        "two retries of the batch are counted"
    );
    assert!(collector.proc.log().contains("remote write rejected batch"));
    assert!(collector.proc.terminate(Duration::from_secs(20)));
    server.stop(&rt);
}

fn summary(log: &Log) -> Vec<(u16, usize)> {
    log.lock()
        .expect("lock")
        .iter()
        .map(|s| (s.status, s.samples))
        .collect()
}
