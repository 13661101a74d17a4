//! The log store: Loki-style streams (a label set and its lines) kept in
//! tantivy indexes partitioned by time, behind a write-ahead log of its own.
//!
//! * **Durability**: a push is encoded, appended to the WAL and fsynced
//!   (group commit across concurrent pushes) before it is acknowledged, and
//!   is visible to queries at once from an in-memory head. A background
//!   committer indexes the head into the partitions' tantivy indexes every
//!   `commit_bytes` or `commit_interval`, commits each touched index with
//!   the last WAL sequence number as its payload, and then drops WAL
//!   segments that are wholly committed. On open, WAL records newer than a
//!   partition's committed sequence number are replayed into the head.
//! * **Partitions**: one index per `partition` of time (default one hour)
//!   under `<dir>/index/<start unix seconds>`; retention drops whole
//!   partitions by age and by total size. tantivy's merge policy merges
//!   segments in the background while a partition takes writes.
//! * **Reads**: streams are selected by label matchers against the stream
//!   registry, then the index narrows by stream id, time and literal
//!   substring prefilters ([`filter`]); candidates are verified exactly.

mod codec;
mod filter;
mod partition;
mod search;
mod wal;

pub use search::{Direction, SelectStats, Selection};

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};
use tantivy::{Searcher, TantivyDocument};

use fleetwatch_model::loki::{PushEntry, PushStream};
use fleetwatch_model::Labels;

use partition::{has_long_token, Partition, FLAG_LONG_TOKEN};

/// Errors of the log store.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A file operation failed.
    #[error("log store i/o on {path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// tantivy failed.
    #[error("{context}: {source}")]
    Tantivy {
        /// What was being done.
        context: String,
        /// The cause.
        source: tantivy::TantivyError,
    },
    /// An entry is older than its stream's out-of-order window allows.
    #[error("entry too far behind, entry timestamp is: {timestamp_ns} ns, oldest acceptable timestamp is: {oldest_ns} ns (stream {stream})")]
    OutOfOrder {
        /// The stream.
        stream: String,
        /// The entry's timestamp.
        timestamp_ns: i64,
        /// The oldest acceptable timestamp.
        oldest_ns: i64,
    },
    /// Stored data could not be decoded.
    #[error("corrupt log data: {reason}")]
    Corrupt {
        /// What is wrong.
        reason: String,
    },
    /// The store cannot take writes.
    #[error("log store unavailable: {reason}")]
    Unavailable {
        /// Why.
        reason: String,
    },
}

impl LogError {
    /// True for the client's fault (HTTP 400, do not retry).
    pub fn is_bad_data(&self) -> bool {
        matches!(self, Self::OutOfOrder { .. })
    }
}

/// How the log store is set up.
#[derive(Debug, Clone)]
pub struct LogStoreOptions {
    /// The store's directory (`<data_dir>/logs`).
    pub dir: PathBuf,
    /// Time span of a partition in nanoseconds. Default one hour.
    pub partition_ns: i64,
    /// Partitions ending before now minus this are dropped. Default none.
    pub retention_ns: Option<i64>,
    /// Most bytes of partitions kept; the oldest go first. Default none.
    pub retention_bytes: Option<u64>,
    /// How far behind its stream's newest entry an entry is accepted.
    /// Default one hour.
    pub out_of_order_window_ns: i64,
    /// Commit the indexes once this many line bytes wait in the head.
    pub commit_bytes: usize,
    /// ... or once the oldest uncommitted push is this old.
    pub commit_interval: Duration,
    /// tantivy writer memory budget per partition taking writes.
    pub writer_memory_bytes: usize,
    /// WAL segment size.
    pub wal_segment_bytes: u64,
}

impl LogStoreOptions {
    /// Defaults with the store in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            partition_ns: 3_600 * 1_000_000_000,
            retention_ns: None,
            retention_bytes: None,
            out_of_order_window_ns: 3_600 * 1_000_000_000,
            commit_bytes: 64 << 20,
            commit_interval: Duration::from_secs(10),
            writer_memory_bytes: 96 << 20,
            wal_segment_bytes: 64 << 20,
        }
    }
}

/// A stream: its id (stable hash of the labels) and labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// `labels.series_hash()`.
    pub id: u64,
    /// The stream's labels.
    pub labels: Labels,
}

/// Counters of the store.
#[derive(Debug, Default)]
pub struct LogStats {
    /// Lines stored.
    pub lines_appended: AtomicU64,
    /// Line bytes stored.
    pub bytes_appended: AtomicU64,
    /// Index commits (one per partition touched).
    pub commits: AtomicU64,
    /// WAL records replayed at open.
    pub wal_replayed_records: AtomicU64,
    /// Bytes cut from torn WAL tails at open.
    pub wal_truncated_bytes: AtomicU64,
    /// Partitions dropped by retention.
    pub partitions_dropped: AtomicU64,
}

/// The head may hold this many commits' worth of lines before pushes wait.
const MAX_HEAD_COMMITS: usize = 2;
/// How long a push waits for room in the head before it is refused.
const HEAD_FULL_WAIT: Duration = Duration::from_secs(30);

/// One acknowledged push, held in the head until committed.
struct Batch {
    seq: u64,
    streams: Vec<(Arc<StreamInfo>, Vec<PushEntry>)>,
}

#[derive(Default)]
struct State {
    partitions: BTreeMap<i64, Arc<Partition>>,
    searchers: BTreeMap<i64, Searcher>,
    head: Vec<Arc<Batch>>,
    head_bytes: usize,
    head_since: Option<Instant>,
    frozen: Option<Arc<Vec<Arc<Batch>>>>,
    streams: HashMap<u64, Arc<StreamInfo>>,
    newest: HashMap<u64, i64>,
}

struct Inner {
    opts: LogStoreOptions,
    wal: wal::Wal,
    state: RwLock<State>,
    append_lock: Mutex<()>,
    commit_lock: Mutex<()>,
    failed: AtomicBool,
    stop: Mutex<bool>,
    wake: Condvar,
    stats: LogStats,
}

/// The log store. Cheap to share behind an `Arc`; [`LogStore::close`]
/// commits and stops the background committer.
pub struct LogStore {
    inner: Arc<Inner>,
    committer: Mutex<Option<JoinHandle<()>>>,
}

/// The current time in Unix nanoseconds.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

impl LogStore {
    /// Opens the store (creating it), replays the WAL and starts the
    /// background committer.
    pub fn open(opts: LogStoreOptions) -> Result<Self, LogError> {
        let index_dir = opts.dir.join("index");
        std::fs::create_dir_all(&index_dir).map_err(|source| LogError::Io {
            path: index_dir.display().to_string(),
            source,
        })?;
        let mut state = State::default();
        let mut max_committed = 0u64;
        let rd = std::fs::read_dir(&index_dir).map_err(|source| LogError::Io {
            path: index_dir.display().to_string(),
            source,
        })?;
        for entry in rd.flatten() {
            let Some(start_s) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i64>().ok())
            else {
                continue;
            };
            let start = start_s.saturating_mul(1_000_000_000);
            let (p, labels) = Partition::open(
                &entry.path(),
                start,
                start.saturating_add(opts.partition_ns),
            )?;
            max_committed = max_committed.max(*p.committed_seq.lock());
            for l in labels {
                let id = l.series_hash().0;
                state
                    .streams
                    .entry(id)
                    .or_insert_with(|| Arc::new(StreamInfo { id, labels: l }));
            }
            state.searchers.insert(start, p.reader.searcher());
            state.partitions.insert(start, Arc::new(p));
        }
        let cutoff = opts
            .retention_ns
            .map(|r| now_ns().saturating_sub(r))
            .unwrap_or(i64::MIN);
        let partition_ns = opts.partition_ns;
        let committed: HashMap<i64, u64> = state
            .partitions
            .iter()
            .map(|(k, p)| (*k, *p.committed_seq.lock()))
            .collect();
        let (wal, report) = wal::Wal::open(
            &opts.dir.join("wal"),
            opts.wal_segment_bytes,
            max_committed + 1,
            |rec| {
                let streams = codec::decode(&rec.payload)?;
                let mut batch = Batch {
                    seq: rec.seq,
                    streams: Vec::new(),
                };
                let mut bytes = 0;
                for s in streams {
                    let entries: Vec<PushEntry> = s
                        .entries
                        .into_iter()
                        .filter(|e| {
                            let p = e.timestamp_ns.div_euclid(partition_ns) * partition_ns;
                            e.timestamp_ns >= cutoff
                                && rec.seq > committed.get(&p).copied().unwrap_or(0)
                        })
                        .collect();
                    if entries.is_empty() {
                        continue;
                    }
                    let info = register(&mut state, s.labels);
                    let newest = state.newest.entry(info.id).or_insert(i64::MIN);
                    for e in &entries {
                        *newest = (*newest).max(e.timestamp_ns);
                        bytes += e.line.len();
                    }
                    batch.streams.push((info, entries));
                }
                if !batch.streams.is_empty() {
                    state.head.push(Arc::new(batch));
                    state.head_bytes += bytes;
                    state.head_since.get_or_insert_with(Instant::now);
                }
                Ok(())
            },
        )?;
        let stats = LogStats::default();
        stats
            .wal_replayed_records
            .store(report.records, Ordering::Relaxed);
        stats
            .wal_truncated_bytes
            .store(report.truncated_bytes, Ordering::Relaxed);
        let inner = Arc::new(Inner {
            opts,
            wal,
            state: RwLock::new(state),
            append_lock: Mutex::new(()),
            commit_lock: Mutex::new(()),
            failed: AtomicBool::new(false),
            stop: Mutex::new(false),
            wake: Condvar::new(),
            stats,
        });
        let bg = Arc::clone(&inner);
        let committer = std::thread::Builder::new()
            .name("log-committer".into())
            .spawn(move || bg.committer_loop())
            .map_err(|source| LogError::Io {
                path: "log committer thread".into(),
                source,
            })?;
        Ok(Self {
            inner,
            committer: Mutex::new(Some(committer)),
        })
    }

    /// Stores `streams` durably (WAL fsynced) or not at all. Entries must
    /// already be validated against the push limits; the out-of-order
    /// window is checked here.
    pub fn append(&self, streams: Vec<PushStream>) -> Result<(), LogError> {
        self.inner.append(streams)
    }

    /// Indexes and commits everything acknowledged so far (tests, benchmarks
    /// and shutdown).
    pub fn commit(&self) -> Result<(), LogError> {
        self.inner.commit()
    }

    /// Applies retention now; returns the start times of dropped partitions.
    pub fn apply_retention(&self, now_ns: i64) -> Vec<i64> {
        self.inner.apply_retention(now_ns)
    }

    /// The store's counters.
    pub fn stats(&self) -> &LogStats {
        &self.inner.stats
    }

    /// Bytes of partitions and WAL on disk.
    pub fn disk_bytes(&self) -> u64 {
        partition::dir_size(&self.inner.opts.dir.join("wal"))
            + self
                .inner
                .state
                .read()
                .partitions
                .values()
                .map(|p| p.disk_bytes())
                .sum::<u64>()
    }

    /// Number of partitions.
    pub fn num_partitions(&self) -> usize {
        self.inner.state.read().partitions.len()
    }

    /// Commits what is pending and stops the committer. Idempotent.
    pub fn close(&self) {
        *self.inner.stop.lock() = true;
        self.inner.wake.notify_all();
        if let Some(h) = self.committer.lock().take() {
            let _ = h.join();
        }
        if let Err(e) = self.inner.commit() {
            tracing::error!(error = %e, "final log commit failed");
        }
        let parts: Vec<Arc<Partition>> = self
            .inner
            .state
            .read()
            .partitions
            .values()
            .cloned()
            .collect();
        for p in parts {
            if let Some(w) = p.writer.lock().take() {
                let _ = w.wait_merging_threads();
            }
        }
    }
}

impl Drop for LogStore {
    fn drop(&mut self) {
        self.close();
    }
}

fn register(state: &mut State, labels: Labels) -> Arc<StreamInfo> {
    let id = labels.series_hash().0;
    Arc::clone(
        state
            .streams
            .entry(id)
            .or_insert_with(|| Arc::new(StreamInfo { id, labels })),
    )
}

impl Inner {
    fn append(&self, streams: Vec<PushStream>) -> Result<(), LogError> {
        if self.failed.load(Ordering::Relaxed) {
            return Err(LogError::Unavailable {
                reason: "an index commit failed; restart the hub to recover from the WAL".into(),
            });
        }
        if streams.iter().all(|s| s.entries.is_empty()) {
            return Ok(());
        }
        self.wait_for_room()?;
        let payload = codec::encode(&streams);
        let window = self.opts.out_of_order_window_ns;
        let guard = self.append_lock.lock();
        {
            let st = self.state.read();
            for s in &streams {
                let id = s.labels.series_hash().0;
                // Entries of this request count too: order inside a request
                // is checked against the newest seen before it.
                let newest = st.newest.get(&id).copied().unwrap_or(i64::MIN);
                let oldest_ns = newest.saturating_sub(window);
                if let Some(e) = s.entries.iter().find(|e| e.timestamp_ns < oldest_ns) {
                    return Err(LogError::OutOfOrder {
                        stream: s.labels.to_string(),
                        timestamp_ns: e.timestamp_ns,
                        oldest_ns,
                    });
                }
            }
        }
        let seq = self.wal.append(&payload)?;
        let (lines, bytes, head_bytes) = {
            let mut st = self.state.write();
            let mut batch = Batch {
                seq,
                streams: Vec::with_capacity(streams.len()),
            };
            let (mut lines, mut bytes) = (0u64, 0usize);
            for s in streams {
                if s.entries.is_empty() {
                    continue;
                }
                let info = register(&mut st, s.labels);
                let newest = st.newest.entry(info.id).or_insert(i64::MIN);
                for e in &s.entries {
                    *newest = (*newest).max(e.timestamp_ns);
                    bytes += e.line.len();
                }
                lines += s.entries.len() as u64;
                batch.streams.push((info, s.entries));
            }
            st.head.push(Arc::new(batch));
            st.head_bytes += bytes;
            st.head_since.get_or_insert_with(Instant::now);
            (lines, bytes, st.head_bytes)
        };
        drop(guard);
        self.wal.sync_to(seq)?;
        self.stats
            .lines_appended
            .fetch_add(lines, Ordering::Relaxed);
        self.stats
            .bytes_appended
            .fetch_add(bytes as u64, Ordering::Relaxed);
        if head_bytes >= self.opts.commit_bytes {
            self.wake.notify_all();
        }
        Ok(())
    }

    /// Backpressure: while the uncommitted head holds more than
    /// `MAX_HEAD_COMMITS` commits' worth of lines, wait (bounded) for the
    /// committer, then refuse with `Unavailable` (the sender retries).
    fn wait_for_room(&self) -> Result<(), LogError> {
        let max = self.opts.commit_bytes.saturating_mul(MAX_HEAD_COMMITS);
        let deadline = Instant::now() + HEAD_FULL_WAIT;
        loop {
            let bytes = self.state.read().head_bytes;
            if bytes < max {
                return Ok(());
            }
            if Instant::now() >= deadline || self.failed.load(Ordering::Relaxed) {
                return Err(LogError::Unavailable {
                    reason: format!(
                        "{bytes} bytes of log lines wait to be indexed (limit {max}); retry later"
                    ),
                });
            }
            self.wake.notify_all();
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn committer_loop(&self) {
        let mut last_retention = Instant::now();
        loop {
            {
                let mut stop = self.stop.lock();
                if *stop {
                    return;
                }
                self.wake.wait_for(&mut stop, Duration::from_millis(500));
                if *stop {
                    return;
                }
            }
            let due = {
                let st = self.state.read();
                st.head_bytes >= self.opts.commit_bytes
                    || st
                        .head_since
                        .is_some_and(|t| t.elapsed() >= self.opts.commit_interval)
            };
            if due && !self.failed.load(Ordering::Relaxed) {
                if let Err(e) = self.commit() {
                    tracing::error!(error = %e, "log index commit failed; the store stops taking writes");
                    self.failed.store(true, Ordering::Relaxed);
                }
            }
            if last_retention.elapsed() >= Duration::from_secs(30) {
                last_retention = Instant::now();
                let dropped = self.apply_retention(now_ns());
                if !dropped.is_empty() {
                    tracing::info!(?dropped, "log retention dropped partitions");
                }
            }
        }
    }

    fn partition(&self, start: i64) -> Result<Arc<Partition>, LogError> {
        if let Some(p) = self.state.read().partitions.get(&start) {
            return Ok(Arc::clone(p));
        }
        let dir = self
            .opts
            .dir
            .join("index")
            .join(start.div_euclid(1_000_000_000).to_string());
        let (p, _) = Partition::open(&dir, start, start.saturating_add(self.opts.partition_ns))?;
        let p = Arc::new(p);
        self.state.write().partitions.insert(start, Arc::clone(&p));
        Ok(p)
    }

    fn commit(&self) -> Result<(), LogError> {
        let _c = self.commit_lock.lock();
        let (frozen, seq) = {
            let mut st = self.state.write();
            if st.head.is_empty() {
                return Ok(());
            }
            let batches = std::mem::take(&mut st.head);
            st.head_bytes = 0;
            st.head_since = None;
            let seq = batches.last().map(|b| b.seq).unwrap_or(0);
            let frozen = Arc::new(batches);
            st.frozen = Some(Arc::clone(&frozen));
            (frozen, seq)
        };
        let pns = self.opts.partition_ns;
        let mut per_part: BTreeMap<i64, Vec<(&StreamInfo, &PushEntry)>> = BTreeMap::new();
        for b in frozen.iter() {
            for (info, entries) in &b.streams {
                for e in entries {
                    let p = e.timestamp_ns.div_euclid(pns) * pns;
                    per_part.entry(p).or_default().push((info, e));
                }
            }
        }
        let mut new_searchers = Vec::new();
        for (start, docs) in &per_part {
            let p = self.partition(*start)?;
            let fresh: Vec<&Labels> = {
                let known = p.streams.read();
                let mut seen = HashSet::new();
                docs.iter()
                    .filter(|(s, _)| !known.contains(&s.id) && seen.insert(s.id))
                    .map(|(s, _)| &s.labels)
                    .collect()
            };
            p.persist_streams(&fresh)?;
            p.streams
                .write()
                .extend(fresh.iter().map(|l| l.series_hash().0));
            let ctx = || format!("committing log partition {}", p.dir.display());
            let mut w = p.writer.lock();
            if w.is_none() {
                *w = Some(
                    p.index
                        .writer_with_num_threads(1, self.opts.writer_memory_bytes)
                        .map_err(|source| LogError::Tantivy {
                            context: ctx(),
                            source,
                        })?,
                );
            }
            let Some(writer) = w.as_mut() else {
                continue;
            };
            let f = p.fields;
            for (s, e) in docs {
                let mut doc = TantivyDocument::new();
                doc.add_i64(f.ts, e.timestamp_ns);
                doc.add_u64(f.stream, s.id);
                doc.add_u64(f.len, e.line.len() as u64);
                doc.add_text(f.line, &e.line);
                if !e.metadata.is_empty() {
                    let m: serde_json::Map<String, serde_json::Value> = e
                        .metadata
                        .iter()
                        .map(|(k, v)| (k.clone(), serde_json::Value::from(v.as_str())))
                        .collect();
                    doc.add_text(f.meta, serde_json::Value::Object(m).to_string());
                }
                if has_long_token(&e.line) {
                    doc.add_text(f.flags, FLAG_LONG_TOKEN);
                }
                writer
                    .add_document(doc)
                    .map_err(|source| LogError::Tantivy {
                        context: ctx(),
                        source,
                    })?;
            }
            let mut prepared = writer
                .prepare_commit()
                .map_err(|source| LogError::Tantivy {
                    context: ctx(),
                    source,
                })?;
            prepared.set_payload(&seq.to_string());
            prepared.commit().map_err(|source| LogError::Tantivy {
                context: ctx(),
                source,
            })?;
            *p.committed_seq.lock() = seq;
            self.stats.commits.fetch_add(1, Ordering::Relaxed);
            p.reader.reload().map_err(|source| LogError::Tantivy {
                context: ctx(),
                source,
            })?;
            new_searchers.push((*start, p.reader.searcher()));
        }
        let idle: Vec<Arc<Partition>> = {
            let mut st = self.state.write();
            for (start, s) in new_searchers {
                st.searchers.insert(start, s);
            }
            st.frozen = None;
            st.partitions
                .iter()
                .filter(|(k, _)| !per_part.contains_key(k))
                .map(|(_, p)| Arc::clone(p))
                .collect()
        };
        self.wal.remove_up_to(seq);
        // Partitions that took no writes this round give up their writers
        // (and memory) once their merges finish.
        for p in idle {
            let w = p.writer.lock().take();
            if let Some(w) = w {
                if let Err(e) = w.wait_merging_threads() {
                    tracing::warn!(error = %e, "log partition merge failed");
                }
                // Merges change the segment set: show the merged view.
                if p.reader.reload().is_ok() {
                    let s = p.reader.searcher();
                    if let Some(slot) = self.state.write().searchers.get_mut(&p.start_ns) {
                        *slot = s;
                    }
                }
            }
        }
        Ok(())
    }

    fn apply_retention(&self, now: i64) -> Vec<i64> {
        let _c = self.commit_lock.lock();
        let mut drop_keys = Vec::new();
        {
            let st = self.state.read();
            if let Some(r) = self.opts.retention_ns {
                let cutoff = now.saturating_sub(r);
                drop_keys.extend(
                    st.partitions
                        .values()
                        .filter(|p| p.end_ns <= cutoff)
                        .map(|p| p.start_ns),
                );
            }
            if let Some(limit) = self.opts.retention_bytes {
                let sizes: Vec<(i64, u64)> = st
                    .partitions
                    .values()
                    .filter(|p| !drop_keys.contains(&p.start_ns))
                    .map(|p| (p.start_ns, p.disk_bytes()))
                    .collect();
                let mut total: u64 = sizes.iter().map(|s| s.1).sum();
                let mut remaining = sizes.len();
                for (k, size) in sizes {
                    if total <= limit || remaining <= 1 {
                        break;
                    }
                    drop_keys.push(k);
                    total -= size;
                    remaining -= 1;
                }
            }
        }
        let mut dropped = Vec::new();
        for k in drop_keys {
            let p = {
                let mut st = self.state.write();
                st.searchers.remove(&k);
                st.partitions.remove(&k)
            };
            let Some(p) = p else { continue };
            if let Some(w) = p.writer.lock().take() {
                let _ = w.wait_merging_threads();
            }
            if let Err(e) = std::fs::remove_dir_all(&p.dir) {
                tracing::warn!(dir = %p.dir.display(), error = %e, "cannot remove log partition");
            }
            self.stats
                .partitions_dropped
                .fetch_add(1, Ordering::Relaxed);
            dropped.push(k);
        }
        if !dropped.is_empty() {
            // Forget streams no partition nor the head holds any more.
            let mut st = self.state.write();
            let mut live: HashSet<u64> = HashSet::new();
            for p in st.partitions.values() {
                live.extend(p.streams.read().iter().copied());
            }
            for b in st
                .head
                .iter()
                .chain(st.frozen.iter().flat_map(|f| f.iter()))
            {
                live.extend(b.streams.iter().map(|(s, _)| s.id));
            }
            st.streams.retain(|id, _| live.contains(id));
            st.newest.retain(|id, _| live.contains(id));
        }
        dropped
    }
}

#[cfg(test)]
mod tests;
