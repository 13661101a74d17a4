//! Delivering alerts: an Alertmanager v2 client and a webhook notifier
//! posting Alertmanager's webhook JSON. Evaluation hands alerts over
//! through a bounded queue that never blocks (the oldest alerts are
//! dropped, and counted, when a receiver is too slow).

pub mod alertmanager;
mod queue;
pub mod webhook;

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

pub use queue::AlertQueue;
use queue::Delivery;

use crate::alerting::OutgoingAlert;

/// Something that takes alerts from evaluation without blocking it.
pub trait AlertSink: Send + Sync {
    /// Queues `alerts` for delivery; never blocks.
    fn send(&self, alerts: &[OutgoingAlert]);
    /// The notifier's name in metrics.
    fn name(&self) -> String;
    /// The notifier's counters.
    fn metrics(&self) -> &NotifierMetrics;
    /// Alerts waiting for delivery.
    fn queue_len(&self) -> usize;
}

/// Posts `body` as JSON to `url`, retrying up to `attempts` times with a
/// doubling backoff; each failure is counted in `metrics.errors`.
pub(crate) async fn post_with_retries(
    client: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
    attempts: usize,
    metrics: &NotifierMetrics,
) -> Result<(), String> {
    let mut backoff = std::time::Duration::from_millis(200);
    let mut last = String::new();
    for attempt in 0..attempts.max(1) {
        if attempt > 0 {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(std::time::Duration::from_secs(5));
        }
        match client.post(url).json(body).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                last = format!("{url}: HTTP {status}: {}", text.trim());
                metrics.errors.fetch_add(1, Ordering::Relaxed);
                if status.is_client_error() && status.as_u16() != 429 {
                    break;
                }
            }
            Err(e) => {
                last = format!("{url}: {e}");
                metrics.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    Err(last)
}

/// Counters of one notifier.
#[derive(Debug, Default)]
pub struct NotifierMetrics {
    /// Alerts delivered.
    pub sent: AtomicU64,
    /// Failed delivery attempts (each retry counts).
    pub errors: AtomicU64,
    /// Alerts dropped: the queue was full, or every retry failed.
    pub dropped: AtomicU64,
    /// Requests (Alertmanager batches, webhook notifications) delivered.
    pub requests: AtomicU64,
}

impl NotifierMetrics {
    /// Appends this notifier's series (label `notifier="name"`) to `out`;
    /// `queue_len` is the current queue length.
    pub fn render(&self, out: &mut String, name: &str, queue_len: usize) {
        let c = |v: &AtomicU64| v.load(Ordering::Relaxed);
        let n = fleetwatch_model::labels::escape_label_value(name);
        let _ = writeln!(
            out,
            "fleetwatch_notifications_sent_total{{notifier=\"{n}\"}} {}",
            c(&self.sent)
        );
        let _ = writeln!(
            out,
            "fleetwatch_notifications_errors_total{{notifier=\"{n}\"}} {}",
            c(&self.errors)
        );
        let _ = writeln!(
            out,
            "fleetwatch_notifications_dropped_total{{notifier=\"{n}\"}} {}",
            c(&self.dropped)
        );
        let _ = writeln!(
            out,
            "fleetwatch_notification_requests_total{{notifier=\"{n}\"}} {}",
            c(&self.requests)
        );
        let _ = writeln!(
            out,
            "fleetwatch_notifications_queue_length{{notifier=\"{n}\"}} {queue_len}"
        );
    }
}

/// The HELP/TYPE header of the notifier families.
pub fn render_metric_headers(out: &mut String) {
    for (name, kind, help) in [
        (
            "fleetwatch_notifications_sent_total",
            "counter",
            "Alerts delivered, by notifier.",
        ),
        (
            "fleetwatch_notifications_errors_total",
            "counter",
            "Failed delivery attempts, by notifier.",
        ),
        (
            "fleetwatch_notifications_dropped_total",
            "counter",
            "Alerts dropped (queue full or retries exhausted), by notifier.",
        ),
        (
            "fleetwatch_notification_requests_total",
            "counter",
            "Notification requests delivered, by notifier.",
        ),
        (
            "fleetwatch_notifications_queue_length",
            "gauge",
            "Alerts waiting to be delivered, by notifier.",
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }
}

/// Adds external labels an alert does not have already.
pub fn with_external_labels(
    labels: &BTreeMap<String, String>,
    external: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut out = labels.clone();
    for (k, v) in external {
        out.entry(k.clone()).or_insert_with(|| v.clone());
    }
    out
}

/// RFC 3339 with milliseconds in UTC, as Alertmanager prints times.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".to_string())
}

/// Alertmanager's fingerprint of a label set (FNV-1a, 16 hex digits).
pub fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    let mut h: u64 = 14695981039346656037;
    let mut add = |b: u8| {
        h ^= b as u64;
        h = h.wrapping_mul(1099511628211);
    };
    for (k, v) in labels {
        k.bytes().for_each(&mut add);
        add(255);
        v.bytes().for_each(&mut add);
        add(255);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests;
