//! Pushing queued batches to the Loki endpoint, one at a time and in
//! order (so every stream's lines arrive in order), as snappy-compressed
//! protobuf. 5xx, 429 and network errors are retried with capped
//! exponential backoff (honouring `Retry-After` on 429 and 503); any other
//! 4xx drops the batch, counted by status.
//!
//! A batch is deleted right after the hub acknowledges it. A crash between
//! the two would send it again after a restart, so the first batches found
//! on disk at start are first looked up with the hub's `query_range` (its
//! last line, exact timestamp and text): a batch the hub already holds is
//! deleted instead of sent. When the lookup fails the batch is sent (at
//! least once).

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fleetwatch_model::loki::{encode_protobuf, PushEntry, PushStream};
use fleetwatch_model::Labels;
use tokio::sync::watch;

use super::metrics::LogMetrics;
use super::queue::{Batch, BatchQueue};
use crate::config::LogsConfig;
use crate::remote_write::{error_chain, next_backoff, parse_url, Answer};

/// How long the sender waits for a published batch before looking again.
const IDLE_WAIT: Duration = Duration::from_millis(500);
/// Timeout of the lookup of a recovered batch.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// What happened to one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged (2xx).
    Sent,
    /// Rejected for good with this status.
    Rejected(u16),
}

/// Sends the batches of one queue.
#[derive(Debug, Clone)]
pub struct Sender {
    url: reqwest::Url,
    lookup_url: Option<reqwest::Url>,
    client: crate::http_client::HttpClient,
    timeout: Duration,
    min_backoff: Duration,
    max_backoff: Duration,
    metrics: Arc<LogMetrics>,
}

/// The batch as Loki push streams.
pub fn push_streams(batch: &Batch) -> Vec<PushStream> {
    batch
        .streams
        .iter()
        .filter(|s| !s.entries.is_empty())
        .map(|s| PushStream {
            labels: Labels::from_pairs(s.labels.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            entries: s
                .entries
                .iter()
                .map(|(ts, line)| PushEntry {
                    timestamp_ns: *ts,
                    line: line.clone(),
                    metadata: Vec::new(),
                })
                .collect(),
        })
        .collect()
}

impl Sender {
    /// A sender for a validated `logs` section.
    pub fn new(
        cfg: &LogsConfig,
        client: crate::http_client::HttpClient,
        metrics: Arc<LogMetrics>,
    ) -> Result<Self, crate::CollectorError> {
        let url = parse_url("logs.url", &cfg.url)?;
        let lookup_url = url.path().strip_suffix("/push").map(|base| {
            let mut u = url.clone();
            u.set_path(&format!("{base}/query_range"));
            u.set_query(None);
            u
        });
        Ok(Self {
            url,
            lookup_url,
            client,
            timeout: cfg.timeout.as_duration(),
            min_backoff: cfg.min_backoff.as_duration(),
            max_backoff: cfg.max_backoff.as_duration(),
            metrics,
        })
    }

    /// Sends published batches until `stop` is true and the queue is
    /// drained. `recovered` are the batches found on disk at start.
    pub async fn run(
        self,
        queue: Arc<BatchQueue>,
        mut recovered: BTreeSet<u64>,
        mut stop: watch::Receiver<bool>,
    ) {
        // Bounded by `stop` (and the caller's flush timeout).
        loop {
            let ready = queue.ready().notified();
            let Some(seq) = queue.take() else {
                if *stop.borrow() && queue.is_drained() {
                    return;
                }
                tokio::select! {
                    _ = ready => {}
                    _ = stop.changed() => {}
                    _ = tokio::time::sleep(IDLE_WAIT) => {}
                }
                continue;
            };
            let q = Arc::clone(&queue);
            let batch = match tokio::task::spawn_blocking(move || q.read(seq)).await {
                Ok(Ok(b)) => b,
                Ok(Err(reason)) => {
                    tracing::error!(batch = seq, reason = %reason, "log batch is unreadable; dropping it");
                    self.ack(&queue, seq, true).await;
                    continue;
                }
                Err(e) => {
                    tracing::error!(batch = seq, error = %e, "log batch read failed");
                    self.ack(&queue, seq, false).await;
                    continue;
                }
            };
            let streams = push_streams(&batch);
            if recovered.remove(&seq) && self.already_delivered(&streams).await {
                tracing::info!(
                    batch = seq,
                    lines = batch.lines(),
                    "recovered log batch was already delivered; not sending it again"
                );
                self.ack(&queue, seq, false).await;
                continue;
            }
            let lines = batch.lines();
            drop(batch);
            match self.send(&streams, lines).await {
                Outcome::Sent => {
                    self.metrics.lines_sent.fetch_add(lines, Ordering::Relaxed);
                }
                Outcome::Rejected(status) => {
                    self.metrics
                        .record_failure(&format!("http_{status}"), lines);
                }
            }
            self.ack(&queue, seq, false).await;
        }
    }

    async fn ack(&self, queue: &Arc<BatchQueue>, seq: u64, corrupt: bool) {
        let q = Arc::clone(queue);
        match tokio::task::spawn_blocking(move || q.ack(seq, corrupt)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(batch = seq, error = %e, "cannot delete a sent log batch; it may be sent again after a restart")
            }
            Err(e) => tracing::error!(batch = seq, error = %e, "log batch delete failed"),
        }
    }

    /// Sends one push, retrying until it is acknowledged or rejected.
    pub async fn send(&self, streams: &[PushStream], lines: u64) -> Outcome {
        let body = Bytes::from(encode_protobuf(streams));
        let mut backoff = self.min_backoff;
        let mut attempt: u32 = 0;
        // Bounded by the caller's flush timeout at shutdown; retries forever
        // otherwise, as remote write does.
        loop {
            attempt += 1;
            let delay = match self.post(&body).await {
                Ok(answer) if answer.status.is_success() => {
                    tracing::debug!(url = %self.url, lines, attempts = attempt, "log push ok");
                    return Outcome::Sent;
                }
                Ok(answer) if !answer.retryable() => {
                    let status = answer.status.as_u16();
                    tracing::error!(url = %self.url, status, lines, body = %answer.shown(), "log push rejected; dropping the batch");
                    return Outcome::Rejected(status);
                }
                Ok(answer) => {
                    let delay = answer.delay(backoff);
                    tracing::warn!(url = %self.url, status = answer.status.as_u16(), lines, attempt, retry_in_ms = delay.as_millis() as u64, body = %answer.shown(), "log push failed; retrying");
                    delay
                }
                Err(e) => {
                    tracing::warn!(url = %self.url, error = %error_chain(&e), lines, attempt, retry_in_ms = backoff.as_millis() as u64, "log push failed; retrying");
                    backoff
                }
            };
            self.metrics.push_retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(delay).await;
            backoff = next_backoff(backoff, self.min_backoff, self.max_backoff);
        }
    }

    /// One push attempt, its answer read whole.
    async fn post(&self, body: &Bytes) -> Result<Answer, reqwest::Error> {
        let req = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/x-protobuf")
            .timeout(self.timeout)
            .body(body.clone());
        Ok(Answer::read(req.send().await?).await)
    }

    /// Whether the hub already holds the last line of the batch's first
    /// stream (a push is stored whole or not at all).
    async fn already_delivered(&self, streams: &[PushStream]) -> bool {
        let Some(url) = &self.lookup_url else {
            return false;
        };
        let Some((labels, last)) = streams
            .iter()
            .find_map(|s| s.entries.last().map(|e| (&s.labels, e)))
        else {
            return false;
        };
        let ts = last.timestamp_ns;
        let resp = self
            .client
            .get(url.clone())
            .timeout(LOOKUP_TIMEOUT)
            .query(&[
                ("query", labels.to_string()),
                ("start", ts.to_string()),
                ("end", ts.saturating_add(1).to_string()),
                ("limit", "5000".to_string()),
                ("direction", "forward".to_string()),
            ])
            .send()
            .await;
        let body: serde_json::Value = match resp {
            Ok(r) if r.status().is_success() => {
                match r.text().await.map(|t| serde_json::from_str(&t)) {
                    Ok(Ok(v)) => v,
                    _ => return false,
                }
            }
            Ok(r) => {
                tracing::debug!(
                    status = r.status().as_u16(),
                    "log batch lookup refused; sending it"
                );
                return false;
            }
            Err(e) => {
                tracing::debug!(error = %error_chain(&e), "log batch lookup failed; sending it");
                return false;
            }
        };
        let want_ts = ts.to_string();
        body["data"]["result"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["values"].as_array())
            .flatten()
            .any(|v| {
                v[0].as_str() == Some(want_ts.as_str()) && v[1].as_str() == Some(last.line.as_str())
            })
    }
}
