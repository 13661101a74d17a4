//! Tailing log files and shipping them to the hub as Loki pushes.
//!
//! A [`tailer`] polls the configured globs, reads new whole lines (CRI,
//! Docker JSON or raw, see [`format`]; partial lines joined by
//! [`assemble`]), labels them from the path ([`paths`]) and the config, and
//! collects them into batches. A batch is written to the disk [`queue`]
//! (fsynced) together with the reading state of its files; then the
//! [`checkpoint`] is saved (fsynced, atomic rename); only then may the
//! [`sender`] push it. So the checkpoint never runs ahead of what is
//! durably queued, and if the process dies between queueing a batch and
//! saving the checkpoint, the state stored in the batch is used at the
//! next start: a restart neither loses nor repeats lines.

pub mod assemble;
pub mod checkpoint;
pub mod format;
pub mod frame;
pub mod metrics;
pub mod paths;
pub mod queue;
pub mod sender;
pub mod tailer;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::LogsConfig;
use crate::queue::QueueError;
use crate::CollectorError;

pub use metrics::LogMetrics;

/// How long the tailer gets to queue its last lines at shutdown.
const TAILER_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The log pipeline of one collector, ready to [`run`](LogShipper::run).
#[derive(Debug)]
pub struct LogShipper {
    tailer: tailer::Tailer,
    sender: sender::Sender,
    queue: Arc<queue::BatchQueue>,
    recovered: BTreeSet<u64>,
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> CollectorError + 'a {
    move |source| {
        CollectorError::Queue(QueueError::Io {
            op,
            path: path.to_path_buf(),
            source,
        })
    }
}

impl LogShipper {
    /// The directory of the checkpoint and queue: `logs.path`, else
    /// `<data_dir>/logs`.
    pub fn dir(cfg: &LogsConfig, data_dir: Option<&Path>) -> Result<PathBuf, CollectorError> {
        cfg.path
            .clone()
            .or_else(|| data_dir.map(|d| d.join("logs")))
            .ok_or_else(|| {
                CollectorError::invalid(
                    "logs.path",
                    "tailing logs needs a directory for its checkpoint and queue: set logs.path, storage.path or --data-dir",
                )
            })
    }

    /// Opens the checkpoint and queue in `dir` and recovers what a previous
    /// run left (see the module docs). `external` are the external labels.
    pub fn open(
        cfg: &LogsConfig,
        dir: &Path,
        external: &BTreeMap<String, String>,
        client: impl Into<crate::http_client::HttpClient>,
        metrics: Arc<LogMetrics>,
    ) -> Result<Self, CollectorError> {
        std::fs::create_dir_all(dir).map_err(io("create logs directory", dir))?;
        let filters =
            paths::Filters::new(cfg).map_err(|e| CollectorError::invalid("logs", e.to_string()))?;
        let queue_dir = dir.join("queue");
        let max_file = cfg.batch_size.0.saturating_mul(8).saturating_add(16 << 20);
        let queue = Arc::new(
            queue::BatchQueue::open(
                &queue_dir,
                cfg.max_queue_bytes.0,
                max_file,
                Arc::clone(&metrics),
            )
            .map_err(io("open log queue", &queue_dir))?,
        );
        let loaded = checkpoint::load(dir);
        if loaded.damaged.is_some() {
            metrics.checkpoint_errors.fetch_add(1, Ordering::Relaxed);
        }
        let mut seq = loaded.checkpoint.seq;
        let mut states: BTreeMap<(u64, u64), checkpoint::FileState> = loaded
            .checkpoint
            .files
            .into_iter()
            .map(|f| (f.key(), f))
            .collect();
        let on_disk = queue.seqs();
        // Batches queued after the last saved checkpoint carry the newer
        // reading state of their files.
        for &s in on_disk.iter().filter(|s| **s > seq) {
            match queue.read(s) {
                Ok(batch) => {
                    for f in batch.files {
                        states.insert(f.key(), f);
                    }
                }
                Err(reason) => {
                    tracing::warn!(batch = s, reason = %reason, "queued log batch is unreadable; its file offsets are not recovered");
                }
            }
        }
        seq = seq.max(on_disk.last().copied().unwrap_or(0));
        queue.advance_seq(seq + 1);
        let mut tailer = tailer::Tailer::new(
            cfg,
            external,
            filters,
            dir,
            Arc::clone(&queue),
            Arc::clone(&metrics),
            seq,
        );
        tailer.resume(states.into_values().collect());
        if !tailer.flush() {
            return Err(CollectorError::Queue(QueueError::Io {
                op: "save log checkpoint in",
                path: dir.to_path_buf(),
                source: std::io::Error::other("see the log for the cause"),
            }));
        }
        queue.publish(seq);
        Ok(Self {
            tailer,
            sender: sender::Sender::new(cfg, client.into(), metrics)?,
            queue,
            // Only the oldest batch can have been in flight at a crash.
            recovered: on_disk.first().copied().into_iter().collect(),
        })
    }

    /// Tails and ships until `stop` turns true; then queues the last lines
    /// read and keeps sending for at most `flush_timeout` (what is left
    /// stays queued on disk for the next start).
    pub async fn run(self, mut stop: watch::Receiver<bool>, flush_timeout: Duration) {
        let LogShipper {
            tailer,
            sender,
            queue,
            recovered,
        } = self;
        let (sender_stop_tx, sender_stop) = watch::channel(false);
        let tailer_stop = stop.clone();
        let mut tailing = tokio::task::spawn_blocking(move || tailer.run_blocking(tailer_stop));
        let mut sending = tokio::spawn(sender.run(Arc::clone(&queue), recovered, sender_stop));
        let _ = stop.wait_for(|s| *s).await;
        match tokio::time::timeout(TAILER_STOP_TIMEOUT, &mut tailing).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "log tailer failed"),
            Err(_) => tracing::warn!("log tailer did not stop in time"),
        }
        let _ = sender_stop_tx.send(true);
        if tokio::time::timeout(flush_timeout, &mut sending)
            .await
            .is_err()
        {
            sending.abort();
            tracing::warn!(
                timeout_ms = flush_timeout.as_millis() as u64,
                "log flush timed out; queued lines are sent after a restart"
            );
        }
    }
}

#[cfg(test)]
mod tests;
