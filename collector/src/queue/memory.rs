//! A bounded in-memory record queue, used when the collector has no data
//! directory: nothing survives a restart, and appends wait while it is full.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;

use super::{Position, QueuedSample, Record};

/// A bounded FIFO of records in memory.
#[derive(Debug)]
pub struct MemoryQueue {
    items: Mutex<VecDeque<Vec<QueuedSample>>>,
    /// One permit per free sample slot.
    space: Semaphore,
    /// Signalled when a record is appended (single consumer).
    data: Notify,
    capacity: usize,
}

impl MemoryQueue {
    /// A queue holding at most `capacity` samples (at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.clamp(1, u32::MAX as usize);
        Self {
            items: Mutex::new(VecDeque::new()),
            space: Semaphore::new(capacity),
            data: Notify::new(),
            capacity,
        }
    }

    /// The most samples held at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Vec<QueuedSample>>> {
        // No panic point leaves the deque inconsistent.
        self.items.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends `samples` (as records of at most `capacity` samples), waiting
    /// while the queue is full. Never drops.
    pub async fn append(&self, samples: Vec<QueuedSample>) {
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
            self.lock().push_back(chunk);
            self.data.notify_one();
        }
    }

    /// Takes the oldest record without waiting.
    pub fn try_next(&self) -> Option<Record> {
        let samples = self.lock().pop_front()?;
        self.space.add_permits(samples.len());
        Some(Record {
            samples,
            end: Position::default(),
        })
    }

    /// Takes the oldest record, waiting at most `wait` for one.
    pub async fn next(&self, wait: Duration) -> Option<Record> {
        let until = Instant::now() + wait;
        loop {
            let notified = self.data.notified();
            if let Some(r) = self.try_next() {
                return Some(r);
            }
            if Instant::now() >= until {
                return None;
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(until) => return self.try_next(),
            }
        }
    }

    /// Samples queued now.
    pub fn len(&self) -> usize {
        self.lock().iter().map(Vec::len).sum()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use fleetwatch_model::{Labels, Sample};

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
    async fn records_in_order() {
        let q = MemoryQueue::new(10);
        q.append((0..3).map(s).collect()).await;
        q.append((3..5).map(s).collect()).await;
        assert_eq!(q.len(), 5);
        let r = q.next(Duration::from_secs(5)).await.expect("record");
        assert_eq!(ts(&r.samples), [0, 1, 2]);
        let r = q.next(Duration::from_millis(20)).await.expect("record");
        assert_eq!(ts(&r.samples), [3, 4]);
        assert!(q.next(Duration::from_millis(20)).await.is_none());
    }

    #[tokio::test]
    async fn full_queue_applies_backpressure() {
        let q = Arc::new(MemoryQueue::new(4));
        let q2 = Arc::clone(&q);
        let producer = tokio::spawn(async move { q2.append((0..10).map(s).collect()).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(q.len(), 4, "producer waits for space");
        assert!(!producer.is_finished());
        let mut got = Vec::new();
        while got.len() < 10 {
            let r = tokio::time::timeout(Duration::from_secs(5), q.next(Duration::from_secs(1)))
                .await
                .expect("record in time")
                .expect("record");
            got.extend(r.samples);
        }
        assert_eq!(ts(&got), (0..10).collect::<Vec<_>>(), "nothing dropped");
        tokio::time::timeout(Duration::from_secs(5), producer)
            .await
            .expect("producer finished")
            .expect("producer ok");
    }

    #[tokio::test]
    async fn next_wakes_on_append() {
        let q = Arc::new(MemoryQueue::new(100));
        let q2 = Arc::clone(&q);
        let consumer = tokio::spawn(async move { q2.next(Duration::from_secs(30)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        q.append(vec![s(1)]).await;
        let r = tokio::time::timeout(Duration::from_secs(5), consumer)
            .await
            .expect("woken before the deadline")
            .expect("task ok")
            .expect("record");
        assert_eq!(ts(&r.samples), [1]);
        assert!(q.is_empty());
    }
}
