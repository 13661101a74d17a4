//! The in-memory head: series and their recent samples, fed through the
//! WAL by one writer thread that group-commits concurrent appends.
//!
//! Write path: [`Head::append`] validates nothing itself; it hands the
//! request to the writer thread, which drains every request waiting,
//! validates each one as a whole (a rejected request leaves no sample
//! behind), applies the accepted ones to the index, writes their records
//! and fsyncs once for all of them, and only then acknowledges them. Samples
//! can become visible to queries a moment before their fsync completes;
//! they are never acknowledged before it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use fleetwatch_model::matcher::matches_all;
use fleetwatch_model::remote_write::{raw, SeriesSamples};
use fleetwatch_model::{Labels, MatchOp, Matcher, ModelError, Sample, SeriesHash};
use parking_lot::RwLock;

use self::chunk::SampleBuf;

use crate::wal::{self, Record, ReplayReport, WalWriter};
use crate::{Queryable, SeriesData, StorageError};

pub mod chunk;

/// How many queued append requests one fsync may cover at most.
const MAX_GROUP_COMMIT_REQUESTS: usize = 512;

/// Options for opening a [`Head`].
#[derive(Debug, Clone)]
pub struct HeadOptions {
    /// Directory holding the WAL segments.
    pub wal_dir: PathBuf,
    /// How far behind a series' newest sample a sample may be and still be
    /// accepted, in milliseconds.
    pub out_of_order_window_ms: i64,
    /// Size at which a WAL segment is closed and a new one started.
    pub wal_segment_bytes: u64,
}

impl HeadOptions {
    /// Defaults with the WAL under `wal_dir`: a 10-minute out-of-order
    /// window, 128 MiB segments.
    pub fn new(wal_dir: impl Into<PathBuf>) -> Self {
        Self {
            wal_dir: wal_dir.into(),
            out_of_order_window_ms: 10 * 60 * 1000,
            wal_segment_bytes: 128 << 20,
        }
    }
}

/// Counters describing the head, read by the hub's `/metrics`.
#[derive(Debug, Default)]
pub struct HeadStats {
    /// Samples stored by acknowledged appends.
    pub samples_appended: AtomicU64,
    /// Identical duplicate samples ignored.
    pub duplicates_ignored: AtomicU64,
    /// Append requests rejected as bad data.
    pub requests_rejected: AtomicU64,
    /// Series created.
    pub series_created: AtomicU64,
    /// WAL fsyncs performed.
    pub wal_fsyncs: AtomicU64,
    /// Append requests covered by those fsyncs.
    pub wal_fsynced_requests: AtomicU64,
    /// Bytes written to the WAL.
    pub wal_bytes: AtomicU64,
    /// WAL write or fsync failures.
    pub wal_failures: AtomicU64,
    /// Records replayed at start.
    pub wal_replayed_records: AtomicU64,
    /// Bytes cut off torn or corrupt WAL tails at start.
    pub wal_truncated_bytes: AtomicU64,
    /// Segments found with a torn or corrupt tail at start.
    pub wal_corrupt_segments: AtomicU64,
    /// WAL replay duration at start, in microseconds.
    pub wal_replay_micros: AtomicU64,
}

/// Outcome of one acknowledged append.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppendOutcome {
    /// Samples newly stored.
    pub samples_stored: u64,
    /// Identical duplicates ignored.
    pub duplicates_ignored: u64,
    /// Series created by this append.
    pub series_created: u64,
}

struct MemSeries {
    labels: Labels,
    samples: SampleBuf,
}

#[derive(Default)]
struct Index {
    series: Vec<MemSeries>,
    by_hash: HashMap<SeriesHash, Vec<u32>>,
    postings: HashMap<String, HashMap<String, Vec<u32>>>,
}

/// One change made by an append in progress, for rollback.
#[derive(Debug, Clone, Copy)]
enum Undo {
    Pushed(u32),
    Inserted(u32, i64),
    Created(u32),
}

/// How a series of a prepared batch is identified.
#[derive(Debug, Clone)]
pub enum SeriesKey {
    /// A series already in the head (found by its label bytes).
    Known(u32),
    /// A series not seen at preparation time, with validated labels.
    New(Labels),
}

/// A decoded request ready for [`Head::append_prepared`]: series keys with
/// ranges into one flat sample buffer.
#[derive(Debug, Clone, Default)]
pub struct PreparedBatch {
    series: Vec<(SeriesKey, u32, u32)>,
    samples: Vec<Sample>,
}

impl PreparedBatch {
    /// Number of samples in the batch.
    pub fn num_samples(&self) -> usize {
        self.samples.len()
    }

    /// Number of series entries in the batch.
    pub fn num_series(&self) -> usize {
        self.series.len()
    }

    fn push(&mut self, key: SeriesKey, samples: impl IntoIterator<Item = Sample>) {
        let start = self.samples.len() as u32;
        self.samples.extend(samples);
        self.series.push((key, start, self.samples.len() as u32));
    }
}

/// Collects a request's series for [`Head::prepare`] without allocating
/// for series the head already holds: each series is found by a hash of
/// its label bytes and compared byte for byte; only unknown series get
/// owned, validated labels. Holds the head's index for reading while it
/// lives.
pub struct BatchBuilder<'h> {
    index: parking_lot::RwLockReadGuard<'h, Index>,
    batch: PreparedBatch,
    start: u32,
}

impl BatchBuilder<'_> {
    /// Adds a sample to the series being built.
    pub fn push_sample(&mut self, timestamp_ms: i64, value: f64) {
        self.batch.samples.push(Sample::new(timestamp_ms, value));
    }

    /// Ends the series being built: `pairs` are its labels as sent. An
    /// unknown series' labels are validated (UTF-8, names, a metric name).
    pub fn end_series(&mut self, pairs: &[(&[u8], &[u8])]) -> Result<(), ModelError> {
        let summary = raw::summarize(pairs);
        let mut key = None;
        if summary.canonical {
            if let Some(ids) = self.index.by_hash.get(&summary.hash) {
                key = ids
                    .iter()
                    .find(|&&id| raw::pairs_equal(pairs, &self.index.series[id as usize].labels))
                    .map(|&id| SeriesKey::Known(id));
            }
        }
        let key = match key {
            Some(k) => k,
            None => SeriesKey::New(raw::pairs_to_labels(pairs)?),
        };
        let end = self.batch.samples.len() as u32;
        self.batch.series.push((key, self.start, end));
        self.start = end;
        Ok(())
    }
}

struct Job {
    batch: PreparedBatch,
    reply: mpsc::SyncSender<Result<AppendOutcome, StorageError>>,
}

/// Work for the writer thread.
enum Msg {
    Append(Job),
    Checkpoint {
        cut: Option<Arc<CutSet>>,
        keep_from_ms: i64,
        reply: mpsc::SyncSender<Result<CheckpointReport, StorageError>>,
    },
}

/// The samples a block was cut from: per head series id, the sorted
/// timestamps written into the block. A checkpoint drops exactly these
/// from memory, so samples that arrived out of order while the block was
/// being written are kept.
#[derive(Debug, Default)]
pub struct CutSet {
    written: HashMap<u32, Vec<i64>>,
}

/// Series and samples collected from the head for a block.
#[derive(Debug, Default)]
pub struct HeadCut {
    /// The series with their samples, for the block writer.
    pub series: Vec<(Labels, Vec<Sample>)>,
    /// What to drop from memory once the block is durable.
    pub cut: Arc<CutSet>,
}

/// What a WAL checkpoint did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckpointReport {
    /// In-memory samples dropped (older than the kept time).
    pub samples_dropped: u64,
    /// Samples rewritten into the checkpoint segment.
    pub samples_kept: u64,
    /// Old WAL segments deleted.
    pub segments_deleted: usize,
}

/// The in-memory head with its WAL.
pub struct Head {
    index: Arc<RwLock<Index>>,
    sender: Mutex<Option<mpsc::Sender<Msg>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    stats: Arc<HeadStats>,
}

impl Index {
    fn lookup(&self, hash: SeriesHash, labels: &Labels) -> Option<u32> {
        self.by_hash.get(&hash)?.iter().copied().find(|&id| {
            self.series
                .get(id as usize)
                .is_some_and(|s| &s.labels == labels)
        })
    }

    fn create(&mut self, labels: Labels) -> u32 {
        let id = self.series.len() as u32;
        self.by_hash
            .entry(labels.series_hash())
            .or_default()
            .push(id);
        for l in labels.iter() {
            self.postings
                .entry(l.name.clone())
                .or_default()
                .entry(l.value.clone())
                .or_default()
                .push(id);
        }
        self.series.push(MemSeries {
            labels,
            samples: SampleBuf::default(),
        });
        id
    }

    /// Applies one request: every sample is checked against the stored
    /// data and the request's own earlier samples as it is applied, and on
    /// the first bad sample everything this request changed is undone, so
    /// a rejected request leaves nothing behind. Accepted changes are
    /// buffered in `wal` (not yet committed).
    fn apply_request(
        &mut self,
        batch: PreparedBatch,
        window_ms: i64,
        wal: &mut WalWriter,
        undo: &mut Vec<Undo>,
        logged: &mut Vec<(u64, Sample)>,
    ) -> Result<AppendOutcome, StorageError> {
        undo.clear();
        logged.clear();
        let mut out = AppendOutcome::default();
        let PreparedBatch { series, samples } = batch;
        for (key, start, end) in series {
            let id = match key {
                SeriesKey::Known(id) if (id as usize) < self.series.len() => id,
                SeriesKey::Known(_) => {
                    self.rollback(undo);
                    return Err(StorageError::Unavailable {
                        reason: "series id from a stale lookup".to_string(),
                    });
                }
                SeriesKey::New(labels) => match self.lookup(labels.series_hash(), &labels) {
                    Some(id) => id,
                    None => {
                        let id = self.create(labels);
                        undo.push(Undo::Created(id));
                        out.series_created += 1;
                        id
                    }
                },
            };
            let range = samples.get(start as usize..end as usize).unwrap_or(&[]);
            for &sample in range {
                let stored = &mut self.series[id as usize].samples;
                match stored.last_ts() {
                    Some(newest) if sample.timestamp_ms <= newest => {
                        match stored.get(sample.timestamp_ms) {
                            Some(prev) if prev.value.to_bits() == sample.value.to_bits() => {
                                out.duplicates_ignored += 1;
                            }
                            Some(_) => {
                                let series = self.series[id as usize].labels.to_string();
                                self.rollback(undo);
                                return Err(StorageError::DuplicateTimestamp {
                                    series,
                                    timestamp_ms: sample.timestamp_ms,
                                });
                            }
                            None if newest - sample.timestamp_ms > window_ms => {
                                let series = self.series[id as usize].labels.to_string();
                                self.rollback(undo);
                                return Err(StorageError::OutOfOrder {
                                    series,
                                    timestamp_ms: sample.timestamp_ms,
                                    newest_ms: newest,
                                    window_ms,
                                });
                            }
                            None => {
                                stored.insert(sample);
                                undo.push(Undo::Inserted(id, sample.timestamp_ms));
                                logged.push((u64::from(id), sample));
                            }
                        }
                    }
                    _ => {
                        stored.push(sample);
                        undo.push(Undo::Pushed(id));
                        logged.push((u64::from(id), sample));
                    }
                }
            }
        }
        for u in undo.iter() {
            if let Undo::Created(id) = u {
                wal.add_series(u64::from(*id), &self.series[*id as usize].labels);
            }
        }
        wal.add_samples(logged);
        out.samples_stored = logged.len() as u64;
        Ok(out)
    }

    /// Reverts the changes recorded in `undo`, newest first.
    fn rollback(&mut self, undo: &mut Vec<Undo>) {
        while let Some(u) = undo.pop() {
            match u {
                Undo::Pushed(id) => {
                    self.series[id as usize].samples.pop();
                }
                Undo::Inserted(id, ts) => {
                    self.series[id as usize].samples.remove(ts);
                }
                Undo::Created(id) => {
                    // Series are created in id order, so the one to undo is the last.
                    if let Some(s) = self.series.pop() {
                        debug_assert_eq!(self.series.len(), id as usize);
                        let hash = s.labels.series_hash();
                        if let Some(ids) = self.by_hash.get_mut(&hash) {
                            ids.retain(|&x| x != id);
                            if ids.is_empty() {
                                self.by_hash.remove(&hash);
                            }
                        }
                        for l in s.labels.iter() {
                            if let Some(values) = self.postings.get_mut(&l.name) {
                                if let Some(ids) = values.get_mut(&l.value) {
                                    ids.retain(|&x| x != id);
                                    if ids.is_empty() {
                                        values.remove(&l.value);
                                    }
                                }
                                if values.is_empty() {
                                    self.postings.remove(&l.name);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Series ids that may match `matchers`: the postings of the most
    /// selective matcher that does not match the empty string (all series
    /// when every matcher does). The caller checks every matcher on each
    /// candidate, so only the smallest posting set is built: intersecting
    /// them all built (and sorted) tens of thousands of ids for a
    /// `cluster="x"` matcher to keep a handful.
    fn candidates(&self, matchers: &[Matcher]) -> Vec<u32> {
        let mut best: Option<(usize, &Matcher)> = None;
        for m in matchers {
            if m.matches_empty() {
                continue;
            }
            let Some(values) = self.postings.get(&m.name) else {
                return Vec::new();
            };
            let size = match m.op {
                MatchOp::Equal => values.get(&m.value).map_or(0, Vec::len),
                _ => values
                    .iter()
                    .filter(|(v, _)| m.matches(v))
                    .map(|(_, ids)| ids.len())
                    .sum(),
            };
            if size == 0 {
                return Vec::new();
            }
            if best.is_none_or(|(b, _)| size < b) {
                best = Some((size, m));
            }
        }
        let Some((_, m)) = best else {
            return (0..self.series.len() as u32).collect();
        };
        let Some(values) = self.postings.get(&m.name) else {
            return Vec::new();
        };
        let mut ids: Vec<u32> = match m.op {
            MatchOp::Equal => values.get(&m.value).cloned().unwrap_or_default(),
            _ => values
                .iter()
                .filter(|(v, _)| m.matches(v))
                .flat_map(|(_, ids)| ids.iter().copied())
                .collect(),
        };
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    fn matching(&self, matchers: &[Matcher], start_ms: i64, end_ms: i64) -> Vec<u32> {
        self.candidates(matchers)
            .into_iter()
            .filter(|&id| {
                let s = &self.series[id as usize];
                matches_all(matchers, &s.labels) && s.samples.has_in_range(start_ms, end_ms)
            })
            .collect()
    }
}

impl Head {
    /// Opens the head: replays the WAL in `opts.wal_dir` (cutting off a torn
    /// or corrupt tail), then starts the writer thread on a new segment.
    pub fn open(opts: HeadOptions) -> Result<Self, StorageError> {
        let stats = Arc::new(HeadStats::default());
        let started = Instant::now();
        let mut index = Index::default();
        // WAL series ids map onto head ids; they are equal when the WAL was
        // written by this head, but map explicitly to stay robust.
        let mut id_map: HashMap<u64, u32> = HashMap::new();
        let mut samples_replayed = 0u64;
        let report: ReplayReport = wal::replay(&opts.wal_dir, |record| match record {
            Record::Series { id, labels } => {
                let hid = match index.lookup(labels.series_hash(), &labels) {
                    Some(h) => h,
                    None => index.create(labels),
                };
                id_map.insert(id, hid);
            }
            Record::Samples(samples) => {
                for (id, s) in samples {
                    if let Some(&hid) = id_map.get(&id) {
                        if index.series[hid as usize].samples.insert(s) {
                            samples_replayed += 1;
                        }
                    }
                }
            }
        })?;
        let elapsed = started.elapsed();
        stats
            .wal_replayed_records
            .store(report.records, Ordering::Relaxed);
        stats
            .wal_truncated_bytes
            .store(report.truncated_bytes, Ordering::Relaxed);
        stats
            .wal_corrupt_segments
            .store(report.corrupt_segments.len() as u64, Ordering::Relaxed);
        stats
            .wal_replay_micros
            .store(elapsed.as_micros() as u64, Ordering::Relaxed);
        stats
            .series_created
            .store(index.series.len() as u64, Ordering::Relaxed);
        tracing::info!(
            segments = report.segments,
            records = report.records,
            series = index.series.len(),
            samples = samples_replayed,
            truncated_bytes = report.truncated_bytes,
            elapsed_ms = elapsed.as_millis() as u64,
            "wal replayed"
        );

        // Compact the replayed state into a fresh segment set so ids in the
        // new segments always refer to series logged in them or earlier.
        let mut wal_writer = WalWriter::create(&opts.wal_dir, opts.wal_segment_bytes)?;
        if !id_map.is_empty() && id_map.iter().any(|(w, h)| *w != u64::from(*h)) {
            for (id, s) in index.series.iter().enumerate() {
                wal_writer.add_series(id as u64, &s.labels);
            }
            wal_writer.commit()?;
        }

        let index = Arc::new(RwLock::new(index));
        let (sender, receiver) = mpsc::channel::<Msg>();
        let writer = {
            let index = Arc::clone(&index);
            let stats = Arc::clone(&stats);
            let window = opts.out_of_order_window_ms;
            std::thread::Builder::new()
                .name("wal-writer".into())
                .spawn(move || writer_loop(receiver, index, wal_writer, stats, window))
                .map_err(|e| StorageError::Io {
                    path: opts.wal_dir.display().to_string(),
                    source: e,
                })?
        };
        Ok(Self {
            index,
            sender: Mutex::new(Some(sender)),
            writer: Mutex::new(Some(writer)),
            stats,
        })
    }

    /// Appends owned series durably (see [`Head::append_prepared`]).
    pub fn append(&self, batch: Vec<SeriesSamples>) -> Result<AppendOutcome, StorageError> {
        let mut prepared = PreparedBatch::default();
        for s in batch {
            prepared.push(SeriesKey::New(s.labels), s.samples);
        }
        self.append_prepared(prepared)
    }

    /// Decodes a decompressed remote write 1.0 request without allocating
    /// for series the head already holds (see [`BatchBuilder`]). The whole
    /// request is decoded and validated before anything is stored.
    pub fn prepare_remote_write(&self, request: &[u8]) -> Result<PreparedBatch, ModelError> {
        let mut pairs: raw::RawLabels<'_> = Vec::with_capacity(32);
        self.prepare(|builder| {
            raw::for_each_series(request, |series| {
                series.parse(&mut pairs, |t, v| builder.push_sample(t, v))?;
                builder.end_series(&pairs)
            })
        })
    }

    /// Builds a [`PreparedBatch`] from a walk over a request in wire
    /// format: `walk` pushes each series' samples and then ends the series
    /// with its label pairs, borrowed from the request. Remote write 1.0
    /// ([`Head::prepare_remote_write`]) and 2.0 walks share it.
    pub fn prepare(
        &self,
        walk: impl FnOnce(&mut BatchBuilder<'_>) -> Result<(), ModelError>,
    ) -> Result<PreparedBatch, ModelError> {
        let mut builder = BatchBuilder {
            index: self.index.read(),
            batch: PreparedBatch::default(),
            start: 0,
        };
        walk(&mut builder)?;
        Ok(builder.batch)
    }

    /// Appends a prepared request durably: returns only after its WAL
    /// records are fsynced. A request with any bad sample is rejected
    /// whole. Blocking: call it from a blocking context.
    pub fn append_prepared(&self, batch: PreparedBatch) -> Result<AppendOutcome, StorageError> {
        let (reply, rx) = mpsc::sync_channel(1);
        self.to_writer(Msg::Append(Job { batch, reply }))?;
        rx.recv().map_err(|_| unavailable("wal writer stopped"))?
    }

    /// Hands `msg` to the writer thread.
    fn to_writer(&self, msg: Msg) -> Result<(), StorageError> {
        self.sender
            .lock()
            .map_err(|_| unavailable("writer lock poisoned"))?
            .as_ref()
            .ok_or_else(|| unavailable("head is closed"))?
            .send(msg)
            .map_err(|_| unavailable("wal writer stopped"))
    }

    /// Drops in-memory samples older than `keep_from_ms` (they are durable
    /// in a block now) and rewrites the WAL as one checkpoint segment
    /// holding every series and the samples kept, then deletes the older
    /// segments. Appends wait while it runs. Blocking.
    pub fn checkpoint(&self, keep_from_ms: i64) -> Result<CheckpointReport, StorageError> {
        self.send_checkpoint(None, keep_from_ms)
    }

    /// After a block written from `cut` is durable: drops from memory
    /// exactly the samples written into it and rewrites the WAL (see
    /// [`Head::checkpoint`]). Samples below the cut that arrived meanwhile stay.
    pub fn checkpoint_cut(&self, cut: Arc<CutSet>) -> Result<CheckpointReport, StorageError> {
        self.send_checkpoint(Some(cut), i64::MIN)
    }

    fn send_checkpoint(
        &self,
        cut: Option<Arc<CutSet>>,
        keep_from_ms: i64,
    ) -> Result<CheckpointReport, StorageError> {
        let (reply, rx) = mpsc::sync_channel(1);
        self.to_writer(Msg::Checkpoint {
            cut,
            keep_from_ms,
            reply,
        })?;
        rx.recv().map_err(|_| unavailable("wal writer stopped"))?
    }

    /// Every series with its samples below `max_ms`, for cutting a block,
    /// with the set of what was collected.
    pub fn collect_before(&self, max_ms: i64) -> HeadCut {
        let index = self.index.read();
        let mut out = HeadCut::default();
        let mut cut = CutSet::default();
        for (id, s) in index.series.iter().enumerate() {
            let samples = s.samples.before(max_ms);
            if !samples.is_empty() {
                cut.written
                    .insert(id as u32, samples.iter().map(|x| x.timestamp_ms).collect());
                out.series.push((s.labels.clone(), samples));
            }
        }
        out.cut = Arc::new(cut);
        out
    }

    /// The oldest and newest sample timestamps in the head, if any.
    pub fn time_range(&self) -> Option<(i64, i64)> {
        let index = self.index.read();
        let min = index
            .series
            .iter()
            .filter_map(|s| s.samples.first_ts())
            .min()?;
        let max = index
            .series
            .iter()
            .filter_map(|s| s.samples.last_ts())
            .max()?;
        Some((min, max))
    }

    /// Stops the writer thread after it has finished queued appends.
    pub fn close(&self) {
        if let Ok(mut s) = self.sender.lock() {
            s.take();
        }
        if let Ok(mut w) = self.writer.lock() {
            if let Some(handle) = w.take() {
                let _ = handle.join();
            }
        }
    }

    /// The head's counters.
    pub fn stats(&self) -> &HeadStats {
        &self.stats
    }

    /// Number of series in the head.
    pub fn num_series(&self) -> usize {
        self.index.read().series.len()
    }

    /// Bytes the in-memory samples take (encoded chunks and open buffers).
    pub fn sample_memory_bytes(&self) -> usize {
        self.index
            .read()
            .series
            .iter()
            .map(|s| s.samples.memory_bytes())
            .sum()
    }

    /// Number of samples held in memory.
    pub fn num_samples(&self) -> usize {
        self.index
            .read()
            .series
            .iter()
            .map(|s| s.samples.len())
            .sum()
    }

    /// Drops in-memory samples older than `min_ts_ms` (retention).
    pub fn truncate_before(&self, min_ts_ms: i64) -> usize {
        let mut index = self.index.write();
        let mut dropped = 0;
        for s in &mut index.series {
            dropped += s.samples.drop_before(min_ts_ms);
        }
        dropped
    }
}

impl Drop for Head {
    fn drop(&mut self) {
        self.close();
    }
}

fn unavailable(reason: &str) -> StorageError {
    StorageError::Unavailable {
        reason: reason.to_string(),
    }
}

fn writer_loop(
    receiver: mpsc::Receiver<Msg>,
    index: Arc<RwLock<Index>>,
    mut wal: WalWriter,
    stats: Arc<HeadStats>,
    window_ms: i64,
) {
    let mut undo = Vec::new();
    let mut logged = Vec::new();
    let mut deferred: Option<Msg> = None;
    loop {
        let first = match deferred.take() {
            Some(m) => m,
            None => match receiver.recv() {
                Ok(m) => m,
                Err(_) => return,
            },
        };
        let first = match first {
            Msg::Checkpoint {
                cut,
                keep_from_ms,
                reply,
            } => {
                let result = checkpoint(&index, &mut wal, cut.as_deref(), keep_from_ms);
                let _ = reply.send(result);
                continue;
            }
            Msg::Append(job) => job,
        };
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP_COMMIT_REQUESTS {
            match receiver.try_recv() {
                Ok(Msg::Append(j)) => jobs.push(j),
                Ok(other) => {
                    deferred = Some(other);
                    break;
                }
                Err(_) => break,
            }
        }
        let mut accepted = Vec::with_capacity(jobs.len());
        {
            let mut idx = index.write();
            for job in jobs {
                match idx.apply_request(job.batch, window_ms, &mut wal, &mut undo, &mut logged) {
                    Ok(outcome) => accepted.push((job.reply, outcome)),
                    Err(e) => {
                        stats.requests_rejected.fetch_add(1, Ordering::Relaxed);
                        let _ = job.reply.send(Err(e));
                    }
                }
            }
        }
        match wal.commit() {
            Ok(bytes) => {
                stats.wal_bytes.fetch_add(bytes, Ordering::Relaxed);
                if bytes > 0 {
                    stats.wal_fsyncs.fetch_add(1, Ordering::Relaxed);
                }
                stats
                    .wal_fsynced_requests
                    .fetch_add(accepted.len() as u64, Ordering::Relaxed);
                for (reply, outcome) in accepted {
                    stats
                        .samples_appended
                        .fetch_add(outcome.samples_stored, Ordering::Relaxed);
                    stats
                        .duplicates_ignored
                        .fetch_add(outcome.duplicates_ignored, Ordering::Relaxed);
                    stats
                        .series_created
                        .fetch_add(outcome.series_created, Ordering::Relaxed);
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "wal commit failed; appends in this group are not acknowledged");
                stats.wal_failures.fetch_add(1, Ordering::Relaxed);
                wal.discard();
                for (reply, _) in accepted {
                    let _ = reply.send(Err(unavailable(&format!("wal commit failed: {e}"))));
                }
            }
        }
    }
}

/// Bytes of WAL records buffered before a checkpoint commits a chunk.
const CHECKPOINT_CHUNK_BYTES: usize = 8 << 20;

fn checkpoint(
    index: &RwLock<Index>,
    wal: &mut WalWriter,
    cut: Option<&CutSet>,
    keep_from_ms: i64,
) -> Result<CheckpointReport, StorageError> {
    let mut report = CheckpointReport::default();
    let mut idx = index.write();
    for (id, s) in idx.series.iter_mut().enumerate() {
        let before = s.samples.len();
        s.samples.drop_before(keep_from_ms);
        if let Some(written) = cut.and_then(|c| c.written.get(&(id as u32))) {
            // Both sorted: drop the samples whose timestamps were written.
            let mut w = written.iter().peekable();
            s.samples.retain(|x| {
                while w.next_if(|&&t| t < x.timestamp_ms).is_some() {}
                w.next_if(|&&t| t == x.timestamp_ms).is_none()
            });
        }
        report.samples_dropped += (before - s.samples.len()) as u64;
    }
    let first = wal.rotate()?;
    for (id, s) in idx.series.iter().enumerate() {
        wal.add_series(id as u64, &s.labels);
        if wal.buffered_bytes() > CHECKPOINT_CHUNK_BYTES {
            wal.commit()?;
        }
    }
    let mut chunk: Vec<(u64, Sample)> = Vec::with_capacity(1 << 16);
    for (id, s) in idx.series.iter().enumerate() {
        for x in s.samples.to_vec() {
            chunk.push((id as u64, x));
            if chunk.len() == chunk.capacity() {
                wal.add_samples(&chunk);
                report.samples_kept += chunk.len() as u64;
                chunk.clear();
                if wal.buffered_bytes() > CHECKPOINT_CHUNK_BYTES {
                    wal.commit()?;
                }
            }
        }
    }
    wal.add_samples(&chunk);
    report.samples_kept += chunk.len() as u64;
    wal.commit()?;
    drop(idx);
    report.segments_deleted = wal.delete_segments_before(first)?;
    tracing::info!(
        keep_from_ms,
        dropped = report.samples_dropped,
        kept = report.samples_kept,
        segments_deleted = report.segments_deleted,
        "wal checkpoint written"
    );
    Ok(report)
}

impl Queryable for Head {
    fn select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<SeriesData>, StorageError> {
        let index = self.index.read();
        let mut out: Vec<SeriesData> = index
            .matching(matchers, start_ms, end_ms)
            .into_iter()
            .map(|id| {
                let s = &index.series[id as usize];
                SeriesData {
                    labels: s.labels.clone(),
                    samples: s.samples.range(start_ms, end_ms),
                }
            })
            .collect();
        drop(index);
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }

    fn series(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<Labels>, StorageError> {
        let index = self.index.read();
        let mut out: Vec<Labels> = index
            .matching(matchers, start_ms, end_ms)
            .into_iter()
            .map(|id| index.series[id as usize].labels.clone())
            .collect();
        drop(index);
        out.sort();
        Ok(out)
    }

    fn label_names(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, StorageError> {
        Ok(
            self.sorted_unique(matchers, start_ms, end_ms, |labels, out| {
                out.extend(labels.iter().map(|l| l.name.clone()));
            }),
        )
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, StorageError> {
        Ok(
            self.sorted_unique(matchers, start_ms, end_ms, |labels, out| {
                out.extend(labels.get(name).map(str::to_string));
            }),
        )
    }
}

impl Head {
    /// Gathers strings from the labels of every matching series, sorted
    /// and de-duplicated.
    fn sorted_unique(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
        gather: impl Fn(&Labels, &mut Vec<String>),
    ) -> Vec<String> {
        let index = self.index.read();
        let mut out = Vec::new();
        for id in index.matching(matchers, start_ms, end_ms) {
            gather(&index.series[id as usize].labels, &mut out);
        }
        drop(index);
        out.sort();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests;
