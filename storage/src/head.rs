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
use fleetwatch_model::remote_write::SeriesSamples;
use fleetwatch_model::{Labels, MatchOp, Matcher, Sample, SeriesHash};
use parking_lot::RwLock;

use crate::wal::{self, Record, ReplayReport, WalWriter};
use crate::{Queryable, SeriesData, StorageError};

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
    samples: Vec<Sample>,
}

#[derive(Default)]
struct Index {
    series: Vec<MemSeries>,
    by_hash: HashMap<SeriesHash, Vec<u32>>,
    postings: HashMap<String, HashMap<String, Vec<u32>>>,
}

struct Job {
    batch: Vec<SeriesSamples>,
    reply: mpsc::SyncSender<Result<AppendOutcome, StorageError>>,
}

/// The in-memory head with its WAL.
pub struct Head {
    index: Arc<RwLock<Index>>,
    sender: Mutex<Option<mpsc::Sender<Job>>>,
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
            samples: Vec::new(),
        });
        id
    }

    /// Checks a whole request against the stored data and itself without
    /// changing anything.
    fn validate(&self, batch: &[SeriesSamples], window_ms: i64) -> Result<(), StorageError> {
        // Series may repeat within a request: track what the request itself adds.
        let mut pending: HashMap<&Labels, Vec<Sample>> = HashMap::new();
        for s in batch {
            let existing: &[Sample] = match self.lookup(s.labels.series_hash(), &s.labels) {
                Some(id) => &self.series[id as usize].samples,
                None => &[],
            };
            let added = pending.entry(&s.labels).or_default();
            for sample in &s.samples {
                let newest = existing
                    .last()
                    .map(|x| x.timestamp_ms)
                    .into_iter()
                    .chain(added.iter().map(|x| x.timestamp_ms))
                    .max();
                if let Some(newest) = newest {
                    if sample.timestamp_ms <= newest {
                        let same = find_at(existing, sample.timestamp_ms).or_else(|| {
                            added
                                .iter()
                                .find(|x| x.timestamp_ms == sample.timestamp_ms)
                                .copied()
                        });
                        match same {
                            Some(prev) if prev.value.to_bits() == sample.value.to_bits() => {
                                continue
                            }
                            Some(_) => {
                                return Err(StorageError::DuplicateTimestamp {
                                    series: s.labels.to_string(),
                                    timestamp_ms: sample.timestamp_ms,
                                })
                            }
                            None if newest - sample.timestamp_ms > window_ms => {
                                return Err(StorageError::OutOfOrder {
                                    series: s.labels.to_string(),
                                    timestamp_ms: sample.timestamp_ms,
                                    newest_ms: newest,
                                    window_ms,
                                })
                            }
                            None => {}
                        }
                    }
                }
                added.push(*sample);
            }
        }
        Ok(())
    }

    /// Applies a validated request, logging new series and samples to `wal`.
    fn apply(&mut self, batch: Vec<SeriesSamples>, wal: Option<&mut WalWriter>) -> AppendOutcome {
        let mut out = AppendOutcome::default();
        let mut logged: Vec<(u64, Sample)> = Vec::new();
        let mut wal = wal;
        for s in batch {
            let hash = s.labels.series_hash();
            let id = match self.lookup(hash, &s.labels) {
                Some(id) => id,
                None => {
                    if let Some(w) = wal.as_deref_mut() {
                        w.add_series(u64::from(self.series.len() as u32), &s.labels);
                    }
                    out.series_created += 1;
                    self.create(s.labels)
                }
            };
            let series = &mut self.series[id as usize];
            for sample in s.samples {
                if insert_sample(&mut series.samples, sample) {
                    out.samples_stored += 1;
                    logged.push((u64::from(id), sample));
                } else {
                    out.duplicates_ignored += 1;
                }
            }
        }
        if let Some(w) = wal {
            w.add_samples(&logged);
        }
        out
    }

    fn candidates(&self, matchers: &[Matcher]) -> Vec<u32> {
        let mut sets: Vec<Vec<u32>> = Vec::new();
        for m in matchers {
            if m.matches_empty() {
                continue;
            }
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
            sets.push(ids);
        }
        if sets.is_empty() {
            return (0..self.series.len() as u32).collect();
        }
        sets.sort_by_key(|s| s.len());
        let mut result = sets.swap_remove(0);
        for other in &sets {
            result.retain(|id| other.binary_search(id).is_ok());
        }
        result
    }

    fn matching(&self, matchers: &[Matcher], start_ms: i64, end_ms: i64) -> Vec<u32> {
        self.candidates(matchers)
            .into_iter()
            .filter(|&id| {
                let s = &self.series[id as usize];
                matches_all(matchers, &s.labels) && !range(&s.samples, start_ms, end_ms).is_empty()
            })
            .collect()
    }
}

fn find_at(samples: &[Sample], ts: i64) -> Option<Sample> {
    samples
        .binary_search_by_key(&ts, |s| s.timestamp_ms)
        .ok()
        .map(|i| samples[i])
}

/// Inserts in time order; returns false for a duplicate timestamp (the
/// stored sample is kept; validation has already refused conflicting ones).
fn insert_sample(samples: &mut Vec<Sample>, sample: Sample) -> bool {
    match samples.last() {
        None => {
            samples.push(sample);
            true
        }
        Some(last) if sample.timestamp_ms > last.timestamp_ms => {
            samples.push(sample);
            true
        }
        _ => match samples.binary_search_by_key(&sample.timestamp_ms, |s| s.timestamp_ms) {
            Ok(_) => false,
            Err(i) => {
                samples.insert(i, sample);
                true
            }
        },
    }
}

fn range(samples: &[Sample], start_ms: i64, end_ms: i64) -> &[Sample] {
    let lo = samples.partition_point(|s| s.timestamp_ms < start_ms);
    let hi = samples.partition_point(|s| s.timestamp_ms <= end_ms);
    if lo >= hi {
        &[]
    } else {
        &samples[lo..hi]
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
                        if insert_sample(&mut index.series[hid as usize].samples, s) {
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
        let (sender, receiver) = mpsc::channel::<Job>();
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

    /// Appends a request durably: returns only after its WAL records are
    /// fsynced. A request with any bad sample is rejected whole. Blocking:
    /// call it from a blocking context.
    pub fn append(&self, batch: Vec<SeriesSamples>) -> Result<AppendOutcome, StorageError> {
        let (reply, rx) = mpsc::sync_channel(1);
        let sender = self
            .sender
            .lock()
            .map_err(|_| unavailable("writer lock poisoned"))?
            .clone()
            .ok_or_else(|| unavailable("head is closed"))?;
        sender
            .send(Job { batch, reply })
            .map_err(|_| unavailable("wal writer stopped"))?;
        rx.recv().map_err(|_| unavailable("wal writer stopped"))?
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
            let cut = s.samples.partition_point(|x| x.timestamp_ms < min_ts_ms);
            if cut > 0 {
                s.samples.drain(..cut);
                dropped += cut;
            }
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
    receiver: mpsc::Receiver<Job>,
    index: Arc<RwLock<Index>>,
    mut wal: WalWriter,
    stats: Arc<HeadStats>,
    window_ms: i64,
) {
    while let Ok(first) = receiver.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP_COMMIT_REQUESTS {
            match receiver.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let mut accepted = Vec::with_capacity(jobs.len());
        {
            let mut idx = index.write();
            for job in jobs {
                match idx.validate(&job.batch, window_ms) {
                    Ok(()) => {
                        let outcome = idx.apply(job.batch, Some(&mut wal));
                        accepted.push((job.reply, outcome));
                    }
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
                    samples: range(&s.samples, start_ms, end_ms).to_vec(),
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
        let index = self.index.read();
        let mut names: Vec<String> = index
            .matching(matchers, start_ms, end_ms)
            .into_iter()
            .flat_map(|id| {
                index.series[id as usize]
                    .labels
                    .iter()
                    .map(|l| l.name.clone())
            })
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, StorageError> {
        let index = self.index.read();
        let mut values: Vec<String> = index
            .matching(matchers, start_ms, end_ms)
            .into_iter()
            .filter_map(|id| {
                index.series[id as usize]
                    .labels
                    .get(name)
                    .map(str::to_string)
            })
            .collect();
        values.sort();
        values.dedup();
        Ok(values)
    }
}

#[cfg(test)]
mod tests;
