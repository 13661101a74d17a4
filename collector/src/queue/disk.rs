//! A disk-backed queue of records for one remote-write endpoint.
//!
//! Records go to numbered segment files (`00000000000000000001.seg`, ...),
//! each record CRC-framed (see [`super::codec`]) and fsynced before
//! [`DiskQueue::append`] returns, so a queued scrape survives a crash. A
//! single reader hands records out in order; [`DiskQueue::commit`] records
//! how far the endpoint has acknowledged in the `progress` file and deletes
//! segments that are fully acknowledged. When the byte budget would be
//! exceeded, the oldest segments are deleted (oldest data goes first) and
//! the samples lost are counted as `disk_budget` drops.
//!
//! On open, every segment is scanned: a torn or corrupt tail is cut off at
//! the last whole record (a crash mid-write leaves at most one partial
//! record, which was never acknowledged to the scrape loop). New records
//! always go to a fresh segment.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::metrics::EndpointMetrics;

use super::codec::{self, HEADER_LEN, MAX_PAYLOAD};
use super::intern::LabelIntern;
use super::{Position, QueueError, QueuedSample, Record};

/// Suffix of segment files.
const SEGMENT_SUFFIX: &str = ".seg";
/// Name of the file holding the acknowledged position.
const PROGRESS_FILE: &str = "progress";
/// Temporary name used to replace [`PROGRESS_FILE`] atomically.
const PROGRESS_TMP: &str = "progress.tmp";

/// Sizes of a [`DiskQueue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskOptions {
    /// The most bytes of segment files kept; older data is dropped beyond.
    pub max_bytes: u64,
    /// A segment is closed once it holds this many bytes.
    pub segment_bytes: u64,
}

impl DiskOptions {
    /// Options for a budget of `max_bytes`: segments of a sixteenth of
    /// the budget, between 4 KiB and 64 MiB, so dropping the oldest segment
    /// loses a small part of the queue.
    pub fn with_budget(max_bytes: u64) -> Self {
        Self {
            max_bytes,
            segment_bytes: (max_bytes / 16).clamp(4096, 64 << 20),
        }
    }
}

/// What is known about one segment file.
#[derive(Debug, Clone, Copy, Default)]
struct SegMeta {
    /// Bytes of whole, durable records.
    bytes: u64,
    /// Samples in those records.
    samples: u64,
}

/// The segment being written.
#[derive(Debug)]
struct Head {
    index: u64,
    file: File,
}

/// Where the reader is.
#[derive(Debug, Default)]
struct ReadPos {
    segment: u64,
    offset: u64,
    /// Samples already read from `segment`.
    samples_read: u64,
    file: Option<(u64, BufReader<File>)>,
}

#[derive(Debug)]
struct State {
    segments: BTreeMap<u64, SegMeta>,
    head: Option<Head>,
    next_index: u64,
    total_bytes: u64,
    reader: ReadPos,
    committed: Position,
}

/// A crash-safe FIFO of records in a directory; see the module docs.
#[derive(Debug)]
pub struct DiskQueue {
    dir: PathBuf,
    opts: DiskOptions,
    state: Mutex<State>,
    metrics: Arc<EndpointMetrics>,
    /// Signalled after every append (the reader waits on it).
    appended: tokio::sync::Notify,
    /// Label sets written, so reading shares them instead of rebuilding.
    intern: Mutex<LabelIntern>,
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> QueueError + 'a {
    move |source| QueueError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

fn segment_name(index: u64) -> String {
    format!("{index:020}{SEGMENT_SUFFIX}")
}

impl DiskQueue {
    /// Opens (creating if needed) the queue in `dir`, recovering what a
    /// previous run left: torn tails are cut, reading resumes at the
    /// persisted progress. Counts unread samples into `metrics`' pending gauge.
    pub fn open(
        dir: &Path,
        opts: DiskOptions,
        metrics: Arc<EndpointMetrics>,
    ) -> Result<Self, QueueError> {
        fs::create_dir_all(dir).map_err(io_err("create queue directory", dir))?;
        let progress = read_progress(dir);
        let mut indices: Vec<u64> = fs::read_dir(dir)
            .map_err(io_err("list queue directory", dir))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(SEGMENT_SUFFIX)?.parse().ok()
            })
            .collect();
        indices.sort_unstable();
        let mut segments = BTreeMap::new();
        let mut reader = ReadPos {
            segment: progress.segment,
            ..ReadPos::default()
        };
        for &index in &indices {
            let path = dir.join(segment_name(index));
            if index < progress.segment {
                // Fully acknowledged before the last run ended.
                fs::remove_file(&path).map_err(io_err("remove acknowledged segment", &path))?;
                continue;
            }
            let scan = scan_segment(&path)?;
            if scan.bytes == 0 {
                fs::remove_file(&path).map_err(io_err("remove empty segment", &path))?;
                continue;
            }
            if index == progress.segment {
                // Resume at the persisted offset if it is a record boundary.
                match scan
                    .boundaries
                    .iter()
                    .position(|(off, _)| *off == progress.offset)
                {
                    Some(i) => {
                        reader.offset = progress.offset;
                        reader.samples_read = scan.boundaries[i].1;
                    }
                    None if progress.offset == scan.bytes => {
                        reader.offset = scan.bytes;
                        reader.samples_read = scan.samples;
                    }
                    None => {
                        tracing::warn!(segment = %path.display(), offset = progress.offset, "queue progress is not at a record boundary; re-reading the segment");
                    }
                }
            }
            segments.insert(
                index,
                SegMeta {
                    bytes: scan.bytes,
                    samples: scan.samples,
                },
            );
        }
        if !segments.contains_key(&reader.segment) {
            reader.offset = 0;
            reader.samples_read = 0;
        }
        let next_index = indices
            .last()
            .map_or(1, |i| i + 1)
            .max(progress.segment + 1);
        let total_bytes = segments.values().map(|m| m.bytes).sum();
        let unread: u64 = segments
            .range(reader.segment..)
            .map(|(i, m)| {
                if *i == reader.segment {
                    m.samples - reader.samples_read.min(m.samples)
                } else {
                    m.samples
                }
            })
            .sum();
        if unread > 0 {
            tracing::info!(dir = %dir.display(), samples = unread, segments = segments.len(), "queue recovered unsent samples");
        }
        metrics
            .samples_pending
            .fetch_add(i64::try_from(unread).unwrap_or(i64::MAX), Ordering::Relaxed);
        metrics.queue_bytes.store(total_bytes, Ordering::Relaxed);
        Ok(Self {
            dir: dir.to_path_buf(),
            opts,
            state: Mutex::new(State {
                segments,
                head: None,
                next_index,
                total_bytes,
                reader,
                committed: progress,
            }),
            metrics,
            appended: tokio::sync::Notify::new(),
            intern: Mutex::new(LabelIntern::new()),
        })
    }

    /// Notified after each successful append.
    pub fn appended(&self) -> &tokio::sync::Notify {
        &self.appended
    }

    /// The queue's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every mutation leaves the state consistent before it can fail.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends one record and fsyncs it. Blocking: call from a blocking
    /// thread. Deletes the oldest segments first if the budget requires.
    pub fn append_blocking(&self, samples: &[QueuedSample]) -> Result<(), QueueError> {
        if samples.is_empty() {
            return Ok(());
        }
        let frame = {
            let mut intern = self.intern.lock().unwrap_or_else(PoisonError::into_inner);
            codec::encode_record_interned(samples, Some(&mut intern))
        };
        let len = frame.len() as u64;
        let n = samples.len() as u64;
        let mut st = self.lock();
        // Close a full head segment.
        if let Some(h) = &st.head {
            let used = st.segments.get(&h.index).map_or(0, |m| m.bytes);
            if used > 0 && used + len > self.opts.segment_bytes {
                st.head = None;
            }
        }
        self.enforce_budget(&mut st, len);
        if st.head.is_none() {
            let index = st.next_index;
            let path = self.dir.join(segment_name(index));
            let file = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(&path)
                .map_err(io_err("create segment", &path))?;
            sync_dir(&self.dir)?;
            st.next_index += 1;
            st.segments.insert(index, SegMeta::default());
            st.head = Some(Head { index, file });
        }
        let State { head, segments, .. } = &mut *st;
        let Some(head) = head.as_mut() else {
            return Ok(());
        };
        let path = self.dir.join(segment_name(head.index));
        let before = segments.get(&head.index).map_or(0, |m| m.bytes);
        let written = head
            .file
            .write_all(&frame)
            .and_then(|()| head.file.sync_data());
        if let Err(e) = written {
            // Cut the partial record so the segment stays readable, and
            // start a fresh segment next time.
            let _ = head.file.set_len(before);
            st.head = None;
            return Err(io_err("append to segment", &path)(e));
        }
        if let Some(m) = segments.get_mut(&head.index) {
            m.bytes += len;
            m.samples += n;
        }
        st.total_bytes += len;
        self.metrics
            .queue_bytes
            .store(st.total_bytes, Ordering::Relaxed);
        drop(st);
        self.appended.notify_one();
        Ok(())
    }

    /// Deletes the oldest closed segments until `incoming` more bytes fit.
    fn enforce_budget(&self, st: &mut State, incoming: u64) {
        while st.total_bytes + incoming > self.opts.max_bytes {
            let head = st.head.as_ref().map(|h| h.index);
            let Some((&index, &meta)) = st.segments.iter().find(|(i, _)| Some(**i) != head) else {
                // Only the head is left: close it so it can be dropped next.
                if st.head.take().is_some() {
                    continue;
                }
                return;
            };
            let unread = if index > st.reader.segment {
                meta.samples
            } else if index == st.reader.segment {
                meta.samples.saturating_sub(st.reader.samples_read)
            } else {
                0
            };
            let path = self.dir.join(segment_name(index));
            if let Err(e) = fs::remove_file(&path) {
                tracing::error!(segment = %path.display(), error = %e, "cannot delete queue segment over the disk budget");
                return;
            }
            st.segments.remove(&index);
            st.total_bytes -= meta.bytes;
            if unread > 0 {
                self.metrics
                    .queue_dropped_disk_budget
                    .fetch_add(unread, Ordering::Relaxed);
                self.metrics
                    .samples_pending
                    .fetch_sub(i64::try_from(unread).unwrap_or(i64::MAX), Ordering::Relaxed);
            }
            tracing::warn!(dir = %self.dir.display(), segment = index, dropped_samples = unread, max_bytes = self.opts.max_bytes, "queue disk budget full; dropped the oldest segment");
        }
    }

    /// Reads the next record not yet handed out, or `None` when everything
    /// durable has been read. Blocking: call from a blocking thread.
    pub fn read_blocking(&self) -> Result<Option<Record>, QueueError> {
        let mut st = self.lock();
        // Bounded: each pass reads a record or moves to a later segment.
        loop {
            let Some((&index, &meta)) = st.segments.range(st.reader.segment..).next() else {
                return Ok(None);
            };
            if index != st.reader.segment {
                st.reader = ReadPos {
                    segment: index,
                    ..ReadPos::default()
                };
            }
            let is_head = st.head.as_ref().is_some_and(|h| h.index == index);
            if st.reader.offset >= meta.bytes {
                if is_head || st.segments.range(index + 1..).next().is_none() {
                    return Ok(None);
                }
                st.reader = ReadPos {
                    segment: index + 1,
                    ..ReadPos::default()
                };
                continue;
            }
            let path = self.dir.join(segment_name(index));
            let read = {
                let intern = self.intern.lock().unwrap_or_else(PoisonError::into_inner);
                read_record(&mut st.reader, &path, index, meta.bytes, &intern)
            };
            match read {
                Ok(samples) => {
                    let n = samples.len() as u64;
                    st.reader.samples_read += n;
                    return Ok(Some(Record {
                        samples,
                        end: Position {
                            segment: index,
                            offset: st.reader.offset,
                        },
                    }));
                }
                Err(ReadError::Io(e)) => return Err(io_err("read segment", &path)(e)),
                Err(ReadError::Corrupt(why)) => {
                    let lost = meta.samples.saturating_sub(st.reader.samples_read);
                    tracing::error!(segment = %path.display(), offset = st.reader.offset, reason = %why, lost_samples = lost, "corrupt queue record; skipping the rest of the segment");
                    self.metrics
                        .queue_dropped_corrupt
                        .fetch_add(lost, Ordering::Relaxed);
                    self.metrics
                        .samples_pending
                        .fetch_sub(i64::try_from(lost).unwrap_or(i64::MAX), Ordering::Relaxed);
                    st.reader.offset = meta.bytes;
                    st.reader.samples_read = meta.samples;
                    st.reader.file = None;
                }
            }
        }
    }

    /// Records that everything before `pos` has been acknowledged: persists
    /// it and deletes segments no longer needed. Blocking (small writes).
    pub fn commit_blocking(&self, pos: Position) -> Result<(), QueueError> {
        let mut st = self.lock();
        if pos <= st.committed {
            return Ok(());
        }
        st.committed = pos;
        write_progress(&self.dir, pos)?;
        let head = st.head.as_ref().map(|h| h.index);
        let done: Vec<u64> = st
            .segments
            .iter()
            .filter(|(i, m)| {
                Some(**i) != head
                    && (**i < pos.segment || (**i == pos.segment && pos.offset >= m.bytes))
            })
            .map(|(i, _)| *i)
            .collect();
        for index in done {
            let path = self.dir.join(segment_name(index));
            fs::remove_file(&path).map_err(io_err("remove acknowledged segment", &path))?;
            if let Some(m) = st.segments.remove(&index) {
                st.total_bytes -= m.bytes;
            }
        }
        self.metrics
            .queue_bytes
            .store(st.total_bytes, Ordering::Relaxed);
        Ok(())
    }

    /// Samples durable and not yet handed out by [`Self::read_blocking`].
    pub fn unread_samples(&self) -> u64 {
        let st = self.lock();
        st.segments
            .range(st.reader.segment..)
            .map(|(i, m)| {
                if *i == st.reader.segment {
                    m.samples.saturating_sub(st.reader.samples_read)
                } else {
                    m.samples
                }
            })
            .sum()
    }

    /// Bytes of segment files on disk.
    pub fn bytes(&self) -> u64 {
        self.lock().total_bytes
    }

    /// The last committed position.
    pub fn committed(&self) -> Position {
        self.lock().committed
    }
}

/// The result of scanning one segment.
struct Scan {
    /// Bytes of whole, valid records.
    bytes: u64,
    samples: u64,
    /// (record start offset, samples before it) of every record.
    boundaries: Vec<(u64, u64)>,
}

/// Validates every record of a segment, truncating it after the last good one.
fn scan_segment(path: &Path) -> Result<Scan, QueueError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_err("open segment", path))?;
    let file_len = file.metadata().map_err(io_err("stat segment", path))?.len();
    let mut r = BufReader::new(&file);
    let mut scan = Scan {
        bytes: 0,
        samples: 0,
        boundaries: Vec::new(),
    };
    let mut payload = Vec::new();
    // Bounded by the file length: every pass consumes a record or stops.
    while scan.bytes < file_len {
        let mut h = [0u8; HEADER_LEN];
        if r.read_exact(&mut h).is_err() {
            break;
        }
        let (len, crc) = codec::parse_header(&h);
        if len > MAX_PAYLOAD || scan.bytes + (HEADER_LEN as u64) + u64::from(len) > file_len {
            break;
        }
        payload.resize(len as usize, 0);
        if r.read_exact(&mut payload).is_err() || crc32fast::hash(&payload) != crc {
            break;
        }
        scan.boundaries.push((scan.bytes, scan.samples));
        scan.bytes += HEADER_LEN as u64 + u64::from(len);
        scan.samples += codec::payload_count(&payload);
    }
    if scan.bytes < file_len {
        tracing::warn!(segment = %path.display(), kept_bytes = scan.bytes, cut_bytes = file_len - scan.bytes, "queue segment has a torn or corrupt tail; cutting it off");
        file.set_len(scan.bytes)
            .and_then(|()| file.sync_all())
            .map_err(io_err("truncate segment", path))?;
    }
    Ok(scan)
}

enum ReadError {
    Io(std::io::Error),
    Corrupt(String),
}

fn read_record(
    pos: &mut ReadPos,
    path: &Path,
    index: u64,
    limit: u64,
    intern: &LabelIntern,
) -> Result<Vec<QueuedSample>, ReadError> {
    if pos.file.as_ref().is_none_or(|(i, _)| *i != index) {
        let mut f = File::open(path).map_err(ReadError::Io)?;
        f.seek(SeekFrom::Start(pos.offset)).map_err(ReadError::Io)?;
        pos.file = Some((index, BufReader::new(f)));
    }
    let Some((_, r)) = pos.file.as_mut() else {
        return Err(ReadError::Corrupt("no open segment".to_string()));
    };
    let mut h = [0u8; HEADER_LEN];
    if let Err(e) = r.read_exact(&mut h) {
        pos.file = None;
        return Err(ReadError::Corrupt(format!("reading header: {e}")));
    }
    let (len, crc) = codec::parse_header(&h);
    let end = pos.offset + HEADER_LEN as u64 + u64::from(len);
    if len > MAX_PAYLOAD || end > limit {
        pos.file = None;
        return Err(ReadError::Corrupt(format!(
            "record length {len} runs past the durable end {limit}"
        )));
    }
    let mut payload = vec![0u8; len as usize];
    if let Err(e) = r.read_exact(&mut payload) {
        pos.file = None;
        return Err(ReadError::Corrupt(format!("reading payload: {e}")));
    }
    if crc32fast::hash(&payload) != crc {
        pos.file = None;
        return Err(ReadError::Corrupt("checksum mismatch".to_string()));
    }
    let samples = codec::decode_payload_interned(&payload, Some(intern)).map_err(|e| {
        pos.file = None;
        ReadError::Corrupt(e.to_string())
    })?;
    pos.offset = end;
    Ok(samples)
}

fn read_progress(dir: &Path) -> Position {
    let path = dir.join(PROGRESS_FILE);
    let Ok(bytes) = fs::read(&path) else {
        return Position::default();
    };
    if bytes.len() != 20 || crc32fast::hash(&bytes[..16]).to_le_bytes() != bytes[16..20] {
        tracing::warn!(file = %path.display(), "queue progress file is damaged; resending from the oldest segment");
        return Position::default();
    }
    let mut seg = [0u8; 8];
    let mut off = [0u8; 8];
    seg.copy_from_slice(&bytes[0..8]);
    off.copy_from_slice(&bytes[8..16]);
    Position {
        segment: u64::from_le_bytes(seg),
        offset: u64::from_le_bytes(off),
    }
}

/// Replaces the progress file atomically (write, rename). Not fsynced: a
/// lost update after a power failure only means some batches are sent
/// again, which the hub ignores as identical duplicates.
fn write_progress(dir: &Path, pos: Position) -> Result<(), QueueError> {
    let mut bytes = Vec::with_capacity(20);
    bytes.extend_from_slice(&pos.segment.to_le_bytes());
    bytes.extend_from_slice(&pos.offset.to_le_bytes());
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    let tmp = dir.join(PROGRESS_TMP);
    fs::write(&tmp, &bytes).map_err(io_err("write queue progress", &tmp))?;
    let path = dir.join(PROGRESS_FILE);
    fs::rename(&tmp, &path).map_err(io_err("replace queue progress", &path))
}

fn sync_dir(dir: &Path) -> Result<(), QueueError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync queue directory", dir))
}

#[cfg(test)]
mod tests;
