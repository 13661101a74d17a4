//! Shipping one batch to one remote-write endpoint (1.0 or 2.0, see
//! [`protocol`]): encoding and retrying. Batching and sharding are in
//! [`crate::shards`].

mod protocol;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use fleetwatch_model::remote_write::SeriesSamples;
use fleetwatch_model::Labels;
use tokio::time::Instant;

use crate::config::{ProtobufMessage, QueueConfig, RemoteWriteConfig};
use crate::http_client::HttpClient;
use crate::metrics::EndpointMetrics;
use crate::queue::QueuedSample;

/// The `User-Agent` of every request the collector makes.
pub const USER_AGENT: &str = concat!("fleetwatch-collector/", env!("CARGO_PKG_VERSION"));

/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// How much of a rejecting response body is logged.
const MAX_LOGGED_BODY: usize = 512;

/// What finally happened to one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOutcome {
    /// The endpoint acknowledged it (2xx).
    Sent,
    /// The endpoint rejected it for good (a 4xx other than 429, or another
    /// non-retryable status); the batch was dropped.
    Rejected {
        /// The HTTP status.
        status: u16,
    },
    /// A remote write 2.0 endpoint answered 2xx but says it wrote fewer
    /// samples than were sent; the rest are dropped.
    NotWritten {
        /// The samples it says it wrote.
        written: u64,
    },
}

/// Sends batches to one endpoint, retrying what can be retried.
#[derive(Debug, Clone)]
pub struct RemoteWriter {
    url: reqwest::Url,
    client: HttpClient,
    timeout: Duration,
    queue: QueueConfig,
    message: ProtobufMessage,
    metrics: Arc<EndpointMetrics>,
}

impl RemoteWriter {
    /// A writer for `cfg` (validated; its URL must parse).
    pub fn new(
        cfg: &RemoteWriteConfig,
        client: impl Into<HttpClient>,
        metrics: Arc<EndpointMetrics>,
    ) -> Result<Self, crate::CollectorError> {
        let url = parse_url("remote_write.url", &cfg.url)?;
        Ok(Self {
            url,
            client: client.into(),
            timeout: cfg.remote_timeout.as_duration(),
            queue: cfg.queue_config.clone(),
            message: cfg.protobuf_message,
            metrics,
        })
    }

    /// The endpoint's queue settings.
    pub fn queue_config(&self) -> &QueueConfig {
        &self.queue
    }

    /// The endpoint's URL.
    pub fn url(&self) -> &reqwest::Url {
        &self.url
    }

    /// The endpoint's counters.
    pub fn metrics(&self) -> &Arc<EndpointMetrics> {
        &self.metrics
    }

    /// Sends one batch, retrying 5xx, 429 and network errors with capped
    /// exponential backoff (honouring `Retry-After` on 429 and 503) for as
    /// long as it takes. Updates the endpoint's counters, including
    /// decrementing the pending gauge once the batch is done.
    pub async fn send_batch(&self, batch: Vec<QueuedSample>) -> BatchOutcome {
        let n = batch.len() as u64;
        let body = Bytes::from(self.message.encode(&group_by_series(&batch)));
        drop(batch);
        let min = self.queue.min_backoff.as_duration();
        let max = self.queue.max_backoff.as_duration();
        let mut backoff = min;
        let mut attempt: u32 = 0;
        let outcome = loop {
            attempt += 1;
            let started = Instant::now();
            let result = self
                .client
                .post(self.url.clone())
                .header(reqwest::header::CONTENT_ENCODING, "snappy")
                .header(reqwest::header::CONTENT_TYPE, self.message.content_type())
                .header("X-Prometheus-Remote-Write-Version", self.message.version())
                .timeout(self.timeout)
                .body(body.clone())
                .send()
                .await;
            let delay = match result {
                Ok(resp) => {
                    let answer = Answer::read(resp).await;
                    let written = self.message.samples_written(&answer.headers);
                    self.metrics.observe_request(started.elapsed());
                    let status = answer.status;
                    if status.is_success() {
                        break self.confirm(written, n);
                    }
                    if !answer.retryable() {
                        if status == reqwest::StatusCode::UNSUPPORTED_MEDIA_TYPE
                            && self.message == ProtobufMessage::V2
                        {
                            tracing::error!(url = %self.url, samples = n, body = %answer.shown(), "remote write endpoint does not accept remote write 2.0 (415 Unsupported Media Type); dropping the batch: set protobuf_message: prometheus.WriteRequest for this endpoint");
                        } else {
                            tracing::error!(url = %self.url, status = status.as_u16(), samples = n, body = %answer.shown(), "remote write rejected batch; dropping it");
                        }
                        break BatchOutcome::Rejected {
                            status: status.as_u16(),
                        };
                    }
                    let delay = answer.delay(backoff);
                    tracing::warn!(url = %self.url, status = status.as_u16(), samples = n, attempt, retry_in_ms = delay.as_millis() as u64, body = %answer.shown(), "remote write failed; retrying");
                    delay
                }
                Err(e) => {
                    self.metrics.observe_request(started.elapsed());
                    tracing::warn!(url = %self.url, error = %error_chain(&e), samples = n, attempt, retry_in_ms = backoff.as_millis() as u64, "remote write failed; retrying");
                    backoff
                }
            };
            self.metrics.samples_retried.fetch_add(n, Ordering::Relaxed);
            tokio::time::sleep(delay).await;
            backoff = next_backoff(backoff, min, max);
        };
        match outcome {
            BatchOutcome::Sent => {
                self.metrics.samples_sent.fetch_add(n, Ordering::Relaxed);
                self.metrics
                    .last_send_success_ms
                    .store(crate::scrape::unix_ms(SystemTime::now()), Ordering::Relaxed);
                tracing::debug!(url = %self.url, samples = n, attempts = attempt, "remote write ok");
            }
            BatchOutcome::Rejected { status } => {
                self.metrics.record_failure(&format!("http_{status}"), n);
            }
            BatchOutcome::NotWritten { written } => {
                self.metrics
                    .samples_sent
                    .fetch_add(written, Ordering::Relaxed);
                let reason = if written == 0 {
                    "not_written"
                } else {
                    "partial_write"
                };
                self.metrics.record_failure(reason, n - written);
            }
        }
        self.metrics
            .samples_pending
            .fetch_sub(i64::try_from(n).unwrap_or(i64::MAX), Ordering::Relaxed);
        outcome
    }
}

/// Parses the URL of config field `field`.
pub(crate) fn parse_url(field: &str, url: &str) -> Result<reqwest::Url, crate::CollectorError> {
    reqwest::Url::parse(url)
        .map_err(|e| crate::CollectorError::invalid(field, format!("{url:?}: {e}")))
}

/// An endpoint's answer to one request, read whole (so the connection can
/// be reused).
#[derive(Debug)]
pub(crate) struct Answer {
    /// The HTTP status.
    pub(crate) status: reqwest::StatusCode,
    /// The `Retry-After` header, in seconds, capped.
    retry_after: Option<Duration>,
    /// The response headers.
    pub(crate) headers: reqwest::header::HeaderMap,
    /// The body.
    text: String,
}

impl Answer {
    /// Reads `resp` to its end.
    pub(crate) async fn read(resp: reqwest::Response) -> Self {
        let status = resp.status();
        let retry_after = retry_after(&resp);
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        Self {
            status,
            retry_after,
            headers,
            text,
        }
    }

    /// True for the statuses retried: 5xx and 429.
    pub(crate) fn retryable(&self) -> bool {
        self.status.is_server_error() || self.status == reqwest::StatusCode::TOO_MANY_REQUESTS
    }

    /// The wait before the next attempt: `Retry-After` on 429 and 503,
    /// else `backoff`.
    pub(crate) fn delay(&self, backoff: Duration) -> Duration {
        let honours = self.status == reqwest::StatusCode::TOO_MANY_REQUESTS
            || self.status == reqwest::StatusCode::SERVICE_UNAVAILABLE;
        match self.retry_after {
            Some(d) if honours => d,
            _ => backoff,
        }
    }

    /// The start of the body, for logs.
    pub(crate) fn shown(&self) -> &str {
        truncate(&self.text, MAX_LOGGED_BODY)
    }
}

/// The backoff after `current`: doubled, within `[min, max]`.
pub(crate) fn next_backoff(current: Duration, min: Duration, max: Duration) -> Duration {
    (current * 2).min(max).max(min)
}

impl RemoteWriter {
    /// The outcome of a 2xx answer: sent, unless a 2.0 receiver says it
    /// wrote fewer than the `n` samples sent (the rest are not retried: the
    /// receiver has already decided).
    fn confirm(&self, written: Option<u64>, n: u64) -> BatchOutcome {
        match written {
            Some(0) if n > 0 => {
                tracing::error!(url = %self.url, samples = n, "remote write 2.0 endpoint answered 2xx but wrote no samples (X-Prometheus-Remote-Write-Samples-Written missing or 0); it probably understands only remote write 1.0: set protobuf_message: prometheus.WriteRequest for this endpoint");
                BatchOutcome::NotWritten { written: 0 }
            }
            Some(w) if w < n => {
                tracing::warn!(url = %self.url, samples = n, written = w, "remote write 2.0 endpoint wrote only part of the batch; the rest is dropped");
                BatchOutcome::NotWritten { written: w }
            }
            _ => BatchOutcome::Sent,
        }
    }
}

/// Groups a batch by series, keeping each series' samples in queue order.
pub fn group_by_series(batch: &[QueuedSample]) -> Vec<SeriesSamples> {
    let mut index: HashMap<&Labels, usize> = HashMap::new();
    let mut out: Vec<SeriesSamples> = Vec::new();
    for s in batch {
        match index.get(&*s.labels) {
            Some(&i) => out[i].samples.push(s.sample),
            None => {
                index.insert(&s.labels, out.len());
                out.push(SeriesSamples {
                    labels: (*s.labels).clone(),
                    samples: vec![s.sample],
                });
            }
        }
    }
    out
}

fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    let secs: u64 = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

pub(crate) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `e` with its chain of causes, `: `-separated (reqwest's Display leaves
/// them out).
pub(crate) fn error_chain(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetwatch_model::Sample;

    #[test]
    fn groups_by_series_in_order() {
        let a = Arc::new(Labels::from_pairs([("__name__", "a")]));
        let b = Arc::new(Labels::from_pairs([("__name__", "b")]));
        let q = |l: &Arc<Labels>, t: i64| QueuedSample {
            labels: Arc::clone(l),
            sample: Sample::new(t, t as f64),
        };
        let g = group_by_series(&[q(&a, 1), q(&b, 2), q(&a, 3), q(&b, 4), q(&a, 5)]);
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].labels, *a);
        assert_eq!(
            g[0].samples
                .iter()
                .map(|s| s.timestamp_ms)
                .collect::<Vec<_>>(),
            [1, 3, 5]
        );
        assert_eq!(
            g[1].samples
                .iter()
                .map(|s| s.timestamp_ms)
                .collect::<Vec<_>>(),
            [2, 4]
        );
    }

    #[test]
    fn parses_retry_after_seconds() {
        let resp = |v: &str| {
            reqwest::Response::from(
                axum::http::Response::builder()
                    .status(429)
                    .header("Retry-After", v)
                    .body(Vec::<u8>::new())
                    .unwrap(),
            )
        };
        assert_eq!(retry_after(&resp("3")), Some(Duration::from_secs(3)));
        assert_eq!(retry_after(&resp(" 0 ")), Some(Duration::ZERO));
        assert_eq!(retry_after(&resp("86400")), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after(&resp("Wed, 21 Oct 2015 07:28:00 GMT")), None);
    }

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
