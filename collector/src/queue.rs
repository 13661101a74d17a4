//! The queue between the scrape loops and one remote-write sender.
//!
//! [`SampleQueue`] is the boundary: today [`MemoryQueue`] (bounded, in
//! memory, applies backpressure to the scrape loops when full); a
//! disk-backed queue can implement the same trait later.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use fleetwatch_model::{Labels, Sample};
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;

/// One sample of one series, waiting to be shipped.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedSample {
    /// The series' final labels (shared between queues and the staleness
    /// tracker).
    pub labels: Arc<Labels>,
    /// The sample.
    pub sample: Sample,
}

/// A FIFO of samples with backpressure. Samples are taken in the order
/// they were pushed, so the samples of a series stay in order.
pub trait SampleQueue: Send + Sync + 'static {
    /// Appends `samples`, waiting while the queue is full. Never drops.
    fn push(&self, samples: Vec<QueuedSample>) -> impl Future<Output = ()> + Send;

    /// Takes up to `max` samples: returns as soon as `max` are queued, or
    /// when `deadline` has passed with whatever is queued (maybe nothing).
    /// Cancel-safe: if the future is dropped, no sample is lost.
    fn pop_batch(
        &self,
        max: usize,
        deadline: Duration,
    ) -> impl Future<Output = Vec<QueuedSample>> + Send;

    /// Takes up to `max` samples without waiting.
    fn try_pop(&self, max: usize) -> Vec<QueuedSample>;

    /// Samples queued now.
    fn len(&self) -> usize;

    /// True when nothing is queued.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A bounded in-memory [`SampleQueue`].
#[derive(Debug)]
pub struct MemoryQueue {
    items: Mutex<VecDeque<QueuedSample>>,
    /// One permit per free slot.
    space: Semaphore,
    /// Signalled when samples are pushed (single consumer).
    data: Notify,
    capacity: usize,
}

impl MemoryQueue {
    /// A queue holding at most `capacity` samples (at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.clamp(1, u32::MAX as usize);
        Self {
            items: Mutex::new(VecDeque::with_capacity(capacity.min(65_536))),
            space: Semaphore::new(capacity),
            data: Notify::new(),
            capacity,
        }
    }

    /// The most samples held at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<QueuedSample>> {
        // The lock is never held across a panic point that leaves the deque
        // inconsistent, so a poisoned lock is still usable.
        self.items.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn take(&self, max: usize) -> Vec<QueuedSample> {
        let batch: Vec<QueuedSample> = {
            let mut q = self.lock();
            let n = q.len().min(max);
            q.drain(..n).collect()
        };
        if !batch.is_empty() {
            self.space.add_permits(batch.len());
        }
        batch
    }
}

impl SampleQueue for MemoryQueue {
    async fn push(&self, samples: Vec<QueuedSample>) {
        let mut rest = samples.into_iter().peekable();
        while rest.peek().is_some() {
            let chunk: Vec<QueuedSample> = rest.by_ref().take(self.capacity).collect();
            // `capacity` fits in u32 (clamped in `new`).
            let n = u32::try_from(chunk.len()).unwrap_or(u32::MAX);
            match self.space.acquire_many(n).await {
                Ok(permit) => permit.forget(),
                // The semaphore is never closed.
                Err(_) => return,
            }
            self.lock().extend(chunk);
            self.data.notify_one();
        }
    }

    async fn pop_batch(&self, max: usize, deadline: Duration) -> Vec<QueuedSample> {
        let max = max.max(1);
        let until = Instant::now() + deadline;
        loop {
            let notified = self.data.notified();
            if self.lock().len() >= max || Instant::now() >= until {
                return self.take(max);
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(until) => return self.take(max),
            }
        }
    }

    fn try_pop(&self, max: usize) -> Vec<QueuedSample> {
        self.take(max.max(1))
    }

    fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(i: i64) -> QueuedSample {
        QueuedSample {
            labels: Arc::new(Labels::from_pairs([("__name__", "m")])),
            sample: Sample::new(i, i as f64),
        }
    }

    fn ts(v: &[QueuedSample]) -> Vec<i64> {
        v.iter().map(|x| x.sample.timestamp_ms).collect()
    }

    #[tokio::test]
    async fn batches_in_order() {
        let q = MemoryQueue::new(10);
        q.push((0..5).map(s).collect()).await;
        assert_eq!(q.len(), 5);
        let b = q.pop_batch(3, Duration::from_secs(5)).await;
        assert_eq!(ts(&b), [0, 1, 2]);
        let b = q.pop_batch(3, Duration::from_millis(20)).await;
        assert_eq!(ts(&b), [3, 4], "deadline returns a partial batch");
        let b = q.pop_batch(3, Duration::from_millis(20)).await;
        assert!(b.is_empty());
    }

    #[tokio::test]
    async fn full_queue_applies_backpressure() {
        let q = Arc::new(MemoryQueue::new(4));
        let q2 = Arc::clone(&q);
        let producer = tokio::spawn(async move { q2.push((0..10).map(s).collect()).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(q.len(), 4, "producer waits for space");
        assert!(!producer.is_finished());
        let mut got = Vec::new();
        while got.len() < 10 {
            let b = tokio::time::timeout(
                Duration::from_secs(5),
                q.pop_batch(3, Duration::from_millis(50)),
            )
            .await
            .expect("pop in time");
            got.extend(b);
        }
        assert_eq!(
            ts(&got),
            (0..10).collect::<Vec<_>>(),
            "nothing dropped, order kept"
        );
        tokio::time::timeout(Duration::from_secs(5), producer)
            .await
            .expect("producer finished")
            .expect("producer ok");
    }

    #[tokio::test]
    async fn pop_wakes_when_batch_fills() {
        let q = Arc::new(MemoryQueue::new(100));
        let q2 = Arc::clone(&q);
        let consumer = tokio::spawn(async move { q2.pop_batch(2, Duration::from_secs(30)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        q.push(vec![s(1)]).await;
        q.push(vec![s(2)]).await;
        let b = tokio::time::timeout(Duration::from_secs(5), consumer)
            .await
            .expect("woken before the deadline")
            .expect("task ok");
        assert_eq!(ts(&b), [1, 2]);
        assert_eq!(q.try_pop(10), []);
    }
}
