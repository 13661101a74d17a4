//! The log queue: one file per batch under `<logs dir>/queue/`, named
//! `<seq>-<lines>.batch` and written atomically (see [`super::frame`]), so a
//! batch on disk is always whole. The tailer [`BatchQueue::append`]s a batch
//! and, once the checkpoint covering it is saved, [`BatchQueue::publish`]es
//! it; the sender takes published batches in order and
//! [`BatchQueue::ack`]s (deletes) each once the hub has it. Beyond the byte
//! budget the oldest batches are deleted, logged and counted as
//! `disk_budget` drops.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};

use super::checkpoint::FileState;
use super::frame;
use super::metrics::LogMetrics;

const MAGIC: &[u8; 4] = b"FWLB";
const SUFFIX: &str = ".batch";

/// The lines of one stream in a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchStream {
    /// The stream's labels.
    pub labels: BTreeMap<String, String>,
    /// `(unix ns, line)` in file order.
    pub entries: Vec<(i64, String)>,
}

/// One queued batch: its lines and the reading state of the files they
/// came from once they were read (used to recover a checkpoint that was
/// not saved before a crash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// Sequence number (increasing).
    pub seq: u64,
    /// States of the files read into this batch.
    pub files: Vec<FileState>,
    /// The lines by stream.
    pub streams: Vec<BatchStream>,
}

impl Batch {
    /// Lines in the batch.
    pub fn lines(&self) -> u64 {
        self.streams.iter().map(|s| s.entries.len() as u64).sum()
    }
}

#[derive(Debug, Clone, Copy)]
struct Meta {
    bytes: u64,
    lines: u64,
}

#[derive(Debug, Default)]
struct State {
    batches: BTreeMap<u64, Meta>,
    total: u64,
    published: u64,
    next_seq: u64,
    in_flight: BTreeSet<u64>,
}

/// The durable FIFO of batches; see the module docs.
#[derive(Debug)]
pub struct BatchQueue {
    dir: PathBuf,
    max_bytes: u64,
    max_file: u64,
    state: Mutex<State>,
    ready: tokio::sync::Notify,
    metrics: Arc<LogMetrics>,
}

fn file_name(seq: u64, lines: u64) -> String {
    format!("{seq:020}-{lines}{SUFFIX}")
}

fn parse_name(name: &str) -> Option<(u64, u64)> {
    let (seq, lines) = name.strip_suffix(SUFFIX)?.split_once('-')?;
    Some((seq.parse().ok()?, lines.parse().ok()?))
}

impl BatchQueue {
    /// Opens (creating) the queue in `dir`, keeping the batches a previous
    /// run left (not yet published: see [`Self::publish`]). `max_bytes` is
    /// the budget; `max_file` the largest batch file read.
    pub fn open(
        dir: &Path,
        max_bytes: u64,
        max_file: u64,
        metrics: Arc<LogMetrics>,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut st = State {
            next_seq: 1,
            ..State::default()
        };
        for e in std::fs::read_dir(dir)?.filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                // An append that did not finish; never acknowledged.
                let _ = std::fs::remove_file(e.path());
                continue;
            }
            let Some((seq, lines)) = parse_name(&name) else {
                continue;
            };
            let bytes = e.metadata().map(|m| m.len()).unwrap_or(0);
            st.batches.insert(seq, Meta { bytes, lines });
            st.total += bytes;
            st.next_seq = st.next_seq.max(seq + 1);
        }
        if !st.batches.is_empty() {
            tracing::info!(dir = %dir.display(), batches = st.batches.len(), bytes = st.total, "log queue recovered unsent batches");
        }
        metrics.queue_bytes.store(st.total, Ordering::Relaxed);
        Ok(Self {
            dir: dir.to_path_buf(),
            max_bytes,
            max_file,
            state: Mutex::new(st),
            ready: tokio::sync::Notify::new(),
            metrics,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn path(&self, seq: u64, lines: u64) -> PathBuf {
        self.dir.join(file_name(seq, lines))
    }

    /// Sequence numbers of the batches on disk, oldest first.
    pub fn seqs(&self) -> Vec<u64> {
        self.lock().batches.keys().copied().collect()
    }

    /// Makes the next sequence number at least `seq`.
    pub fn advance_seq(&self, seq: u64) {
        let mut st = self.lock();
        st.next_seq = st.next_seq.max(seq);
    }

    /// Reads one batch.
    pub fn read(&self, seq: u64) -> Result<Batch, String> {
        let lines = self
            .lock()
            .batches
            .get(&seq)
            .map(|m| m.lines)
            .ok_or_else(|| format!("batch {seq} is not queued"))?;
        let bytes = frame::read_bounded(&self.path(seq, lines), self.max_file)
            .map_err(|e| e.to_string())?;
        let payload = frame::decode(MAGIC, &bytes)?;
        let batch: Batch = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
        if batch.seq != seq {
            return Err(format!("file of batch {seq} holds batch {}", batch.seq));
        }
        Ok(batch)
    }

    /// Writes a batch durably and returns its sequence number. Deletes the
    /// oldest batches not being sent first if the budget requires.
    pub fn append(&self, files: Vec<FileState>, streams: Vec<BatchStream>) -> std::io::Result<u64> {
        let mut st = self.lock();
        let batch = Batch {
            seq: st.next_seq,
            files,
            streams,
        };
        let payload = serde_json::to_vec(&batch).map_err(std::io::Error::other)?;
        let bytes = frame::encode(MAGIC, &payload);
        let len = bytes.len() as u64;
        // Bounded by the number of queued batches.
        while st.total + len > self.max_bytes {
            let Some((&old, &meta)) = st.batches.iter().find(|(s, _)| !st.in_flight.contains(s))
            else {
                break;
            };
            tracing::warn!(
                batch = old,
                lines = meta.lines,
                bytes = meta.bytes,
                budget = self.max_bytes,
                "log queue is over its disk budget; dropping the oldest batch"
            );
            self.remove(&mut st, old, meta);
            self.metrics
                .dropped_disk_budget
                .fetch_add(meta.lines, Ordering::Relaxed);
        }
        let lines = batch.lines();
        frame::write_atomic(&self.path(batch.seq, lines), &bytes)?;
        st.batches.insert(batch.seq, Meta { bytes: len, lines });
        st.total += len;
        st.next_seq = batch.seq + 1;
        self.metrics.queue_bytes.store(st.total, Ordering::Relaxed);
        Ok(batch.seq)
    }

    fn remove(&self, st: &mut State, seq: u64, meta: Meta) {
        let path = self.path(seq, meta.lines);
        if let Err(e) = std::fs::remove_file(&path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::error!(file = %path.display(), error = %e, "cannot delete a log batch");
            }
        }
        st.batches.remove(&seq);
        st.total = st.total.saturating_sub(meta.bytes);
        self.metrics.queue_bytes.store(st.total, Ordering::Relaxed);
    }

    /// Lets the sender take batches up to `seq`.
    pub fn publish(&self, seq: u64) {
        let mut st = self.lock();
        st.published = st.published.max(seq);
        drop(st);
        self.ready.notify_one();
    }

    /// Notified when batches are published.
    pub fn ready(&self) -> &tokio::sync::Notify {
        &self.ready
    }

    /// The oldest published batch not being sent, marked as being sent.
    pub fn take(&self) -> Option<u64> {
        let mut st = self.lock();
        let published = st.published;
        let seq = st
            .batches
            .keys()
            .copied()
            .take_while(|s| *s <= published)
            .find(|s| !st.in_flight.contains(s))?;
        st.in_flight.insert(seq);
        Some(seq)
    }

    /// True when no published batch is waiting or being sent.
    pub fn is_drained(&self) -> bool {
        let st = self.lock();
        st.batches.range(..=st.published).next().is_none()
    }

    /// Deletes a batch that was delivered (or given up on); `corrupt`
    /// counts its lines as lost.
    pub fn ack(&self, seq: u64, corrupt: bool) -> std::io::Result<()> {
        let mut st = self.lock();
        st.in_flight.remove(&seq);
        if let Some(meta) = st.batches.get(&seq).copied() {
            self.remove(&mut st, seq, meta);
            if corrupt {
                self.metrics
                    .dropped_corrupt
                    .fetch_add(meta.lines, Ordering::Relaxed);
            }
        }
        drop(st);
        frame::sync_dir(&self.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(lines: &[&str]) -> Vec<BatchStream> {
        vec![BatchStream {
            labels: BTreeMap::from([("job".to_string(), "t".to_string())]),
            entries: lines
                .iter()
                .enumerate()
                .map(|(i, l)| (i as i64, l.to_string()))
                .collect(),
        }]
    }

    #[test]
    fn appends_publishes_takes_and_acks_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let m = Arc::new(LogMetrics::default());
        let q = BatchQueue::open(dir.path(), 1 << 20, 1 << 20, Arc::clone(&m)).expect("open");
        let a = q.append(vec![], stream(&["a1", "a2"])).expect("append");
        let b = q.append(vec![], stream(&["b1"])).expect("append");
        assert!(a < b);
        assert_eq!(q.take(), None, "nothing published yet");
        q.publish(a);
        assert_eq!(q.take(), Some(a));
        assert_eq!(q.take(), None, "b is not published, a is in flight");
        assert_eq!(q.read(a).expect("read").lines(), 2);
        q.ack(a, false).expect("ack");
        q.publish(b);
        assert_eq!(q.take(), Some(b));
        drop(q);
        // Reopened: b is still there (never acknowledged), published again.
        let q = BatchQueue::open(dir.path(), 1 << 20, 1 << 20, m).expect("reopen");
        assert_eq!(q.seqs(), vec![b]);
        q.publish(b);
        assert_eq!(q.take(), Some(b));
        assert_eq!(q.read(b).expect("read").streams, stream(&["b1"]));
        q.ack(b, false).expect("ack");
        assert!(q.is_drained());
        assert_eq!(q.append(vec![], stream(&["c"])).expect("append"), b + 1);
    }

    #[test]
    fn drops_the_oldest_beyond_the_budget_and_reports_corruption() {
        let dir = tempfile::tempdir().expect("tempdir");
        let m = Arc::new(LogMetrics::default());
        let q = BatchQueue::open(dir.path(), 600, 1 << 20, Arc::clone(&m)).expect("open");
        let long = "x".repeat(200);
        let first = q.append(vec![], stream(&[&long])).expect("1");
        q.append(vec![], stream(&[&long])).expect("2");
        q.append(vec![], stream(&[&long])).expect("3");
        assert!(!q.seqs().contains(&first));
        assert!(m.dropped_disk_budget.load(Ordering::Relaxed) >= 1);
        assert!(m.queue_bytes.load(Ordering::Relaxed) <= 600);
        // Damage the newest batch file: reading it fails with a reason.
        let newest = *q.seqs().last().expect("one");
        let path = q.path(newest, 1);
        std::fs::write(&path, b"FWLBgarbage").expect("damage");
        assert!(q.read(newest).is_err());
        q.ack(newest, true).expect("ack");
        assert_eq!(m.dropped_corrupt.load(Ordering::Relaxed), 1);
    }
}
