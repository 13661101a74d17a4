//! A bounded queue of alerts: pushing never blocks; when full, the oldest
//! alerts are dropped and counted.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::NotifierMetrics;
use crate::alerting::OutgoingAlert;

/// A bounded, drop-oldest queue shared by evaluation and one notifier.
pub struct AlertQueue {
    items: Mutex<VecDeque<OutgoingAlert>>,
    capacity: usize,
    notify: Notify,
    metrics: Arc<NotifierMetrics>,
}

impl AlertQueue {
    /// A queue holding at most `capacity` alerts.
    pub fn new(capacity: usize, metrics: Arc<NotifierMetrics>) -> Self {
        Self {
            items: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
            notify: Notify::new(),
            metrics,
        }
    }

    /// Adds alerts, dropping the oldest beyond capacity.
    pub fn push(&self, alerts: &[OutgoingAlert]) {
        if alerts.is_empty() {
            return;
        }
        if let Ok(mut q) = self.items.lock() {
            for a in alerts {
                if q.len() >= self.capacity {
                    q.pop_front();
                    self.metrics.dropped.fetch_add(1, Ordering::Relaxed);
                }
                q.push_back(a.clone());
            }
        }
        self.notify.notify_one();
    }

    /// Takes up to `max` alerts, waiting until at least one is queued.
    pub async fn pop_batch(&self, max: usize) -> Vec<OutgoingAlert> {
        loop {
            let batch = self.try_pop(max);
            if !batch.is_empty() {
                return batch;
            }
            self.notify.notified().await;
        }
    }

    /// Takes up to `max` alerts without waiting.
    pub fn try_pop(&self, max: usize) -> Vec<OutgoingAlert> {
        match self.items.lock() {
            Ok(mut q) => {
                let n = q.len().min(max);
                q.drain(..n).collect()
            }
            Err(_) => Vec::new(),
        }
    }

    /// Alerts waiting.
    pub fn len(&self) -> usize {
        self.items.lock().map(|q| q.len()).unwrap_or(0)
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What every notifier owns: its bounded queue, its counters and an HTTP
/// client with the delivery timeout.
pub(crate) struct Delivery {
    /// Alerts waiting to be sent.
    pub queue: AlertQueue,
    /// The notifier's counters (shared with the queue).
    pub metrics: Arc<NotifierMetrics>,
    /// The HTTP client.
    pub client: reqwest::Client,
}

impl Delivery {
    /// A queue of `capacity` alerts and a client timing out after `timeout`.
    pub fn new(timeout: std::time::Duration, capacity: usize) -> Result<Self, String> {
        let metrics = Arc::new(NotifierMetrics::default());
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            queue: AlertQueue::new(capacity, Arc::clone(&metrics)),
            metrics,
            client,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(i: i64) -> OutgoingAlert {
        OutgoingAlert {
            labels: [("i".to_string(), i.to_string())].into(),
            annotations: Default::default(),
            starts_at_ms: i,
            ends_at_ms: i,
            generator_url: String::new(),
        }
    }

    #[test]
    fn full_queue_drops_oldest_and_counts() {
        let m = Arc::new(NotifierMetrics::default());
        let q = AlertQueue::new(3, Arc::clone(&m));
        q.push(&(0..5).map(alert).collect::<Vec<_>>());
        assert_eq!(q.len(), 3);
        assert_eq!(m.dropped.load(Ordering::Relaxed), 2);
        let got: Vec<i64> = q.try_pop(10).iter().map(|a| a.starts_at_ms).collect();
        assert_eq!(got, vec![2, 3, 4]);
    }
}
