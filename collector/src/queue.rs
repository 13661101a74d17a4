//! The queue between the scrape loops and one remote-write endpoint.
//!
//! Scrape loops [`Backlog::append`] one record per scrape; the endpoint's
//! dispatcher takes records in order with [`Backlog::next`] and, once every
//! sample of a record and of all records before it has been acknowledged
//! (or dropped for good), calls [`Backlog::commit`] with the record's end.
//!
//! Two kinds: [`DiskQueue`] (segment files in the collector's data
//! directory; survives restarts and hub outages, bounded by a byte budget
//! that drops the oldest data) and [`MemoryQueue`] (bounded, in memory,
//! applies backpressure; used when no data directory is configured).

pub mod codec;
pub mod disk;
pub mod intern;
pub mod memory;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use fleetwatch_model::{Labels, Sample};

use crate::metrics::EndpointMetrics;

pub use disk::{DiskOptions, DiskQueue};
pub use memory::MemoryQueue;

/// How often [`Backlog::next`] looks for new records on disk while waiting,
/// in case an append notification was missed.
const DISK_POLL: Duration = Duration::from_millis(250);

/// One sample of one series, waiting to be shipped.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedSample {
    /// The series' final labels (shared between queues and the staleness
    /// tracker).
    pub labels: Arc<Labels>,
    /// The sample.
    pub sample: Sample,
}

/// A place in a disk queue: a segment and a byte offset in it. Ordered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    /// The segment number.
    pub segment: u64,
    /// The byte offset inside the segment.
    pub offset: u64,
}

/// One record taken from a queue: the samples of one scrape (or a part
/// of one) and where the record ends.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The samples, in scrape order.
    pub samples: Vec<QueuedSample>,
    /// The position just after this record (commit it once delivered).
    pub end: Position,
}

/// Errors of the disk queue.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// A file operation failed.
    #[error("queue: cannot {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A blocking queue operation could not run.
    #[error("queue: background task failed: {reason}")]
    Task {
        /// The join error.
        reason: String,
    },
}

/// The queue of one endpoint: on disk or in memory.
#[derive(Debug)]
pub enum Backlog {
    /// Bounded, in memory.
    Memory(MemoryQueue),
    /// Durable, in a directory.
    Disk(Arc<DiskQueue>),
}

impl Backlog {
    /// Appends one scrape's samples. On disk, returns once they are fsynced
    /// (or failed); in memory, waits while the queue is full. Counts them
    /// into `metrics`' pending gauge.
    pub async fn append(
        &self,
        samples: Vec<QueuedSample>,
        metrics: &EndpointMetrics,
    ) -> Result<(), QueueError> {
        let n = i64::try_from(samples.len()).unwrap_or(i64::MAX);
        match self {
            Backlog::Memory(q) => {
                metrics.samples_pending.fetch_add(n, Ordering::Relaxed);
                q.append(samples).await;
                Ok(())
            }
            Backlog::Disk(q) => {
                let q = Arc::clone(q);
                tokio::task::spawn_blocking(move || q.append_blocking(&samples))
                    .await
                    .map_err(|e| QueueError::Task {
                        reason: e.to_string(),
                    })??;
                metrics.samples_pending.fetch_add(n, Ordering::Relaxed);
                Ok(())
            }
        }
    }

    /// The next record, waiting at most `wait` for one (`None` if there
    /// is none by then).
    pub async fn next(&self, wait: Duration) -> Result<Option<Record>, QueueError> {
        match self {
            Backlog::Memory(q) => Ok(q.next(wait).await),
            Backlog::Disk(q) => {
                let until = tokio::time::Instant::now() + wait;
                // Bounded by `wait`.
                loop {
                    let appended = q.appended().notified();
                    let q2 = Arc::clone(q);
                    let r = tokio::task::spawn_blocking(move || q2.read_blocking())
                        .await
                        .map_err(|e| QueueError::Task {
                            reason: e.to_string(),
                        })??;
                    let now = tokio::time::Instant::now();
                    if r.is_some() || now >= until {
                        return Ok(r);
                    }
                    // Woken by the next append; polling is only a fallback.
                    tokio::select! {
                        _ = appended => {}
                        _ = tokio::time::sleep(DISK_POLL.min(until - now)) => {}
                    }
                }
            }
        }
    }

    /// Marks everything up to `end` as delivered (a no-op in memory).
    pub async fn commit(&self, end: Position) -> Result<(), QueueError> {
        match self {
            Backlog::Memory(_) => Ok(()),
            Backlog::Disk(q) => {
                let q = Arc::clone(q);
                tokio::task::spawn_blocking(move || q.commit_blocking(end))
                    .await
                    .map_err(|e| QueueError::Task {
                        reason: e.to_string(),
                    })?
            }
        }
    }

    /// Samples queued and not yet handed to a shard.
    pub fn unread_samples(&self) -> u64 {
        match self {
            Backlog::Memory(q) => q.len() as u64,
            Backlog::Disk(q) => q.unread_samples(),
        }
    }
}
