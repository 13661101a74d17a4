//! Sending one endpoint's queue: a dispatcher reads records in order and
//! splits each by series hash over the active shards (so the samples of a
//! series stay in order), shards batch and send concurrently, and an
//! [`AckTracker`] turns out-of-order completions into in-order commits.
//!
//! The number of shards follows the backlog, between
//! `queue_config.min_shards` and `max_shards`: it doubles while more is
//! queued than the active shards can take in one round, and shrinks by one
//! after the queue has been empty for a while. Changing it first waits for
//! every in-flight batch, so a series never has samples on two shards.

mod tracker;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::queue::{Backlog, QueuedSample};
use crate::remote_write::RemoteWriter;

pub use tracker::AckTracker;

/// How often the shard count is reconsidered.
const RESHARD_INTERVAL: Duration = Duration::from_secs(5);
/// Consecutive idle checks before a shard is removed.
const IDLE_CHECKS_TO_SHRINK: u32 = 3;
/// Parts buffered per shard before the dispatcher waits.
const SHARD_CHANNEL: usize = 4;
/// How long the dispatcher waits for a record before re-checking things.
const READ_WAIT: Duration = Duration::from_millis(500);
/// How long to wait before reading again after a queue read error.
const READ_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// The samples of one record that belong to one shard.
#[derive(Debug)]
struct Part {
    seq: u64,
    samples: Vec<QueuedSample>,
}

/// The shard count for `unread` queued samples, from `active` shards.
pub fn desired_shards(
    active: usize,
    unread: u64,
    per_send: usize,
    min: usize,
    max: usize,
    idle_checks: u32,
) -> usize {
    let capacity = (active.max(1) * per_send.max(1)) as u64;
    let want = if unread > capacity {
        active.max(1) * 2
    } else if unread == 0 && idle_checks >= IDLE_CHECKS_TO_SHRINK {
        active.saturating_sub(1)
    } else {
        active
    };
    want.clamp(min.max(1), max.max(min.max(1)))
}

/// Runs the sending side of one endpoint until `drain` turns true and the
/// queue has been read to its end; then waits for the shards to finish.
pub(crate) async fn run_endpoint(
    writer: RemoteWriter,
    backlog: Arc<Backlog>,
    mut drain: watch::Receiver<bool>,
) {
    let q = writer.queue_config().clone();
    let tracker = Arc::new(Mutex::new(AckTracker::default()));
    let mut active = q.min_shards.max(1);
    let mut shards = Shards::start(active, &writer, &backlog, &tracker);
    let mut draining = false;
    let mut next_check = Instant::now() + RESHARD_INTERVAL;
    let mut idle_checks = 0u32;
    loop {
        draining = draining || *drain.borrow();
        if !draining && Instant::now() >= next_check {
            next_check = Instant::now() + RESHARD_INTERVAL;
            let unread = backlog.unread_samples();
            idle_checks = if unread == 0 { idle_checks + 1 } else { 0 };
            let want = desired_shards(
                active,
                unread,
                q.max_samples_per_send,
                q.min_shards,
                q.max_shards,
                idle_checks,
            );
            if want != active {
                tracing::info!(url = %writer.url(), from = active, to = want, unread, "resharding remote write");
                shards.finish().await;
                active = want;
                idle_checks = 0;
                shards = Shards::start(active, &writer, &backlog, &tracker);
            }
        }
        let wait = if draining { Duration::ZERO } else { READ_WAIT };
        let record = tokio::select! {
            r = backlog.next(wait) => r,
            changed = drain.changed(), if !draining => {
                if changed.is_err() {
                    draining = true;
                }
                continue;
            }
        };
        let record = match record {
            Ok(Some(r)) => r,
            Ok(None) if draining => break,
            Ok(None) => continue,
            Err(e) => {
                tracing::error!(url = %writer.url(), error = %e, "cannot read the remote-write queue");
                if draining {
                    break;
                }
                tokio::time::sleep(READ_ERROR_PAUSE).await;
                continue;
            }
        };
        let mut parts: Vec<Vec<QueuedSample>> = (0..active).map(|_| Vec::new()).collect();
        let total = record.samples.len() as u64;
        for s in record.samples {
            let shard = (s.labels.series_hash().0 % active as u64) as usize;
            parts[shard].push(s);
        }
        let (seq, commit) = lock(&tracker).register(total, record.end);
        if let Some(pos) = commit {
            commit_to(&backlog, pos, &writer).await;
        }
        for (i, samples) in parts.into_iter().enumerate() {
            if !samples.is_empty() {
                shards.send(i, Part { seq, samples }).await;
            }
        }
    }
    shards.finish().await;
}

fn lock(t: &Mutex<AckTracker>) -> std::sync::MutexGuard<'_, AckTracker> {
    t.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn commit_to(backlog: &Backlog, pos: crate::queue::Position, writer: &RemoteWriter) {
    if let Err(e) = backlog.commit(pos).await {
        tracing::error!(url = %writer.url(), error = %e, "cannot record remote-write progress; some samples may be sent again after a restart");
    }
}

/// The running shard tasks of one endpoint.
struct Shards {
    senders: Vec<mpsc::Sender<Part>>,
    tasks: JoinSet<()>,
}

impl Shards {
    fn start(
        n: usize,
        writer: &RemoteWriter,
        backlog: &Arc<Backlog>,
        tracker: &Arc<Mutex<AckTracker>>,
    ) -> Self {
        let mut senders = Vec::with_capacity(n);
        let mut tasks = JoinSet::new();
        for _ in 0..n {
            let (tx, rx) = mpsc::channel(SHARD_CHANNEL);
            senders.push(tx);
            tasks.spawn(run_shard(
                rx,
                writer.clone(),
                Arc::clone(backlog),
                Arc::clone(tracker),
            ));
        }
        writer.metrics().shards.store(n as u64, Ordering::Relaxed);
        Self { senders, tasks }
    }

    async fn send(&self, shard: usize, part: Part) {
        if let Some(tx) = self.senders.get(shard) {
            // Fails only if the shard task died (a panic, logged on join).
            let _ = tx.send(part).await;
        }
    }

    /// Closes the shards' inputs and waits until they have sent everything.
    async fn finish(self) {
        let Shards { senders, mut tasks } = self;
        drop(senders);
        while let Some(r) = tasks.join_next().await {
            if let Err(e) = r {
                tracing::error!(error = %e, "remote-write shard failed");
            }
        }
    }
}

/// One shard: batches parts up to `max_samples_per_send` or
/// `batch_send_deadline`, sends each batch (retrying as the writer does)
/// and reports completions to the tracker.
async fn run_shard(
    mut rx: mpsc::Receiver<Part>,
    writer: RemoteWriter,
    backlog: Arc<Backlog>,
    tracker: Arc<Mutex<AckTracker>>,
) {
    let q = writer.queue_config();
    let max = q.max_samples_per_send.max(1);
    let deadline = q.batch_send_deadline.as_duration();
    let mut carry: Option<Part> = None;
    let mut closed = false;
    while !(closed && carry.is_none()) {
        let mut batch: Vec<QueuedSample> = Vec::with_capacity(max.min(4096));
        let mut done: Vec<(u64, u64)> = Vec::new();
        let mut until: Option<Instant> = None;
        // Fill the batch; bounded by the deadline, `max` and the channel.
        while batch.len() < max {
            let part = match carry.take() {
                Some(p) => Some(p),
                None if closed => None,
                None if batch.is_empty() => rx.recv().await,
                None => {
                    // The deadline runs from the batch's first sample.
                    let wait = *until.get_or_insert_with(|| Instant::now() + deadline);
                    tokio::select! {
                        p = rx.recv() => p,
                        _ = tokio::time::sleep_until(wait) => break,
                    }
                }
            };
            let Some(mut part) = part else {
                closed = true;
                break;
            };
            let room = max - batch.len();
            if part.samples.len() > room {
                let rest = part.samples.split_off(room);
                done.push((part.seq, part.samples.len() as u64));
                batch.append(&mut part.samples);
                carry = Some(Part {
                    seq: part.seq,
                    samples: rest,
                });
            } else {
                done.push((part.seq, part.samples.len() as u64));
                batch.append(&mut part.samples);
            }
        }
        if batch.is_empty() {
            continue;
        }
        writer.send_batch(batch).await;
        let commit = {
            let mut t = lock(&tracker);
            done.iter()
                .filter_map(|(seq, n)| t.complete(*seq, *n))
                .last()
        };
        if let Some(pos) = commit {
            commit_to(&backlog, pos, &writer).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_count_follows_the_backlog() {
        // Backlog bigger than one round: double, up to max.
        assert_eq!(desired_shards(1, 5000, 2000, 1, 8, 0), 2);
        assert_eq!(desired_shards(4, 100_000, 2000, 1, 8, 0), 8);
        assert_eq!(desired_shards(8, 100_000, 2000, 1, 8, 0), 8);
        // Small backlog: keep.
        assert_eq!(desired_shards(2, 100, 2000, 1, 8, 0), 2);
        // Idle long enough: shrink by one, not below min.
        assert_eq!(desired_shards(3, 0, 2000, 1, 8, 3), 2);
        assert_eq!(desired_shards(2, 0, 2000, 2, 8, 9), 2);
        assert_eq!(desired_shards(2, 0, 2000, 1, 8, 1), 2);
    }
}
