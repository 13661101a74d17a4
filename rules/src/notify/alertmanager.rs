//! The Alertmanager v2 client: `POST /api/v2/alerts` with batches of
//! alerts, as Prometheus's notifier sends them (external labels added,
//! `startsAt`/`endsAt`/`generatorURL` set by the rule).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::{
    post_with_retries, rfc3339, with_external_labels, AlertSink, Delivery, NotifierMetrics,
};
use crate::alerting::OutgoingAlert;

/// Settings of the Alertmanager client.
#[derive(Debug, Clone)]
pub struct AlertmanagerOptions {
    /// Full URLs of each Alertmanager's `/api/v2/alerts`.
    pub urls: Vec<String>,
    /// Timeout of one request.
    pub timeout: Duration,
    /// Most alerts per request (Prometheus: 64).
    pub max_batch: usize,
    /// Attempts per request before the batch is given up.
    pub attempts: usize,
    /// Most alerts waiting; the oldest are dropped beyond.
    pub queue_capacity: usize,
    /// Labels added to every alert that lacks them.
    pub external_labels: BTreeMap<String, String>,
}

impl Default for AlertmanagerOptions {
    fn default() -> Self {
        Self {
            urls: Vec::new(),
            timeout: Duration::from_secs(10),
            max_batch: 64,
            attempts: 3,
            queue_capacity: 10_000,
            external_labels: BTreeMap::new(),
        }
    }
}

/// Sends alerts to Alertmanagers from a background task.
pub struct AlertmanagerNotifier {
    opts: AlertmanagerOptions,
    delivery: Delivery,
}

/// The v2 API body of a batch.
pub fn v2_body(alerts: &[OutgoingAlert], external: &BTreeMap<String, String>) -> serde_json::Value {
    serde_json::Value::Array(
        alerts
            .iter()
            .map(|a| {
                json!({
                    "labels": with_external_labels(&a.labels, external),
                    "annotations": a.annotations,
                    "startsAt": rfc3339(a.starts_at_ms),
                    "endsAt": rfc3339(a.ends_at_ms),
                    "generatorURL": a.generator_url,
                })
            })
            .collect(),
    )
}

impl AlertmanagerNotifier {
    /// A notifier with `opts`; call [`AlertmanagerNotifier::spawn`] to start it.
    pub fn new(opts: AlertmanagerOptions) -> Result<Arc<Self>, String> {
        let delivery = Delivery::new(opts.timeout, opts.queue_capacity)?;
        Ok(Arc::new(Self { opts, delivery }))
    }

    /// Starts the delivery task.
    pub fn spawn(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = Arc::clone(self);
        tokio::spawn(async move { me.run().await })
    }

    async fn run(&self) {
        loop {
            let batch = self.delivery.queue.pop_batch(self.opts.max_batch).await;
            let body = v2_body(&batch, &self.opts.external_labels);
            let mut delivered = false;
            for url in &self.opts.urls {
                match post_with_retries(
                    &self.delivery.client,
                    url,
                    &body,
                    self.opts.attempts,
                    &self.delivery.metrics,
                )
                .await
                {
                    Ok(()) => delivered = true,
                    Err(e) => {
                        tracing::warn!(error = %e, alerts = batch.len(), "sending alerts to Alertmanager failed")
                    }
                }
            }
            let n = batch.len() as u64;
            if delivered {
                self.delivery.metrics.sent.fetch_add(n, Ordering::Relaxed);
                self.delivery
                    .metrics
                    .requests
                    .fetch_add(1, Ordering::Relaxed);
            } else {
                self.delivery
                    .metrics
                    .dropped
                    .fetch_add(n, Ordering::Relaxed);
            }
        }
    }
}

impl AlertSink for AlertmanagerNotifier {
    fn send(&self, alerts: &[OutgoingAlert]) {
        if !self.opts.urls.is_empty() {
            self.delivery.queue.push(alerts);
        }
    }

    fn name(&self) -> String {
        "alertmanager".to_string()
    }

    fn metrics(&self) -> &NotifierMetrics {
        &self.delivery.metrics
    }

    fn queue_len(&self) -> usize {
        self.delivery.queue.len()
    }
}
