//! Following log files: finding them by glob, reading new whole lines,
//! noticing rotation, and handing lines to the queue in batches.
//!
//! Files are identified by (device, inode) plus a fingerprint (CRC-32 of
//! the first bytes, up to 256):
//! - **rename** (`0.log` -> `0.log.1`, new `0.log`): the open handle of the
//!   old file is read to its end before it is let go; the new file is read
//!   from 0. A file deleted while being read is finished the same way.
//! - **copy-truncate** (the file shrinks below the offset, or its first
//!   bytes change): the copy (a file in the same directory with the old
//!   fingerprint, at least as long as the offset) is read from the old
//!   offset to its end, then the truncated file from 0.
//!
//! The same search runs at start for every checkpointed file that is no
//! longer where it was, so rotation while the collector is down loses
//! nothing. Lines of a rotated file are shipped before those of its
//! successor. Work per poll is bounded ([`MAX_READ_PER_POLL`] per file).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;

use super::assemble::{self, cut_at, Line};
use super::checkpoint::{self, Checkpoint, FileState};
use super::format::{parse_cri, parse_docker, FileFormat};
use super::metrics::LogMetrics;
use super::paths::{expand_glob, path_labels, Filters};
use super::queue::{BatchQueue, BatchStream};
use crate::config::LogsConfig;

/// Bytes of the fingerprint at most.
pub const FINGERPRINT_BYTES: u64 = 256;
/// Bytes read per read call.
const CHUNK: usize = 256 << 10;
/// Bytes read from one file per poll at most.
pub const MAX_READ_PER_POLL: u64 = 4 << 20;
/// Entries of a directory looked at when searching for a rotated file.
const MAX_DIR_SCAN: usize = 1000;
/// Polls at end of file before a rotated or deleted file is let go.
const EOF_POLLS_TO_FINISH: u32 = 2;
/// Finished files remembered at most (then forgotten all at once).
const MAX_DONE: usize = 10_000;
/// How often a sleeping tailer checks for shutdown.
const STOP_CHECK: Duration = Duration::from_millis(50);

/// Labels of a stream.
type LabelMap = Arc<BTreeMap<String, String>>;
/// A file's identity.
type Key = (u64, u64);

/// One file being read.
#[derive(Debug)]
struct Tracked {
    state: FileState,
    file: File,
    labels: LabelMap,
    /// Bytes after `state.offset` read but not yet a whole line.
    carry: Vec<u8>,
    /// Known to be rotated away: read to the end, then let go.
    rotated: bool,
    /// Consecutive polls that found nothing new while rotated or gone.
    eof_polls: u32,
}

impl Tracked {
    fn read_pos(&self) -> u64 {
        self.state.offset + self.carry.len() as u64
    }
}

/// The lines of the batch being built.
#[derive(Debug, Default)]
struct Builder {
    streams: Vec<BatchStream>,
    index: HashMap<LabelMap, usize>,
    bytes: usize,
    since: Option<Instant>,
}

impl Builder {
    fn add(&mut self, labels: &LabelMap, ts_ns: i64, line: String) {
        let i = *self.index.entry(Arc::clone(labels)).or_insert_with(|| {
            self.streams.push(BatchStream {
                labels: (**labels).clone(),
                entries: Vec::new(),
            });
            self.streams.len() - 1
        });
        self.bytes += line.len();
        self.streams[i].entries.push((ts_ns, line));
    }
}

/// Follows the configured files; see the module docs.
#[derive(Debug)]
pub struct Tailer {
    cfg: LogsConfig,
    base_labels: BTreeMap<String, String>,
    filters: Filters,
    dir: PathBuf,
    queue: Arc<BatchQueue>,
    metrics: Arc<LogMetrics>,
    files: BTreeMap<Key, Tracked>,
    /// Sequence number of the last queued batch.
    seq: u64,
    batch: Builder,
    dirty: BTreeSet<Key>,
    /// Something changed that only the checkpoint records.
    changed_since: Option<Instant>,
    /// Files read to their end and let go, with their fingerprint, so a
    /// rotated file still matching a glob is not read again.
    done: HashMap<Key, (u64, u32)>,
    buf: ReadBuf,
}

/// The read buffer (not shown by `Debug`).
struct ReadBuf(Vec<u8>);

impl std::fmt::Debug for ReadBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReadBuf({} bytes)", self.0.len())
    }
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn key_of(m: &std::fs::Metadata) -> Key {
    (m.dev(), m.ino())
}

/// CRC-32 of the first `len` bytes of `file`, if it has that many.
fn fingerprint(file: &File, len: u64) -> Option<u32> {
    let mut buf = vec![0u8; usize::try_from(len.min(FINGERPRINT_BYTES)).unwrap_or(0)];
    file.read_exact_at(&mut buf, 0).ok()?;
    Some(crc32fast::hash(&buf))
}

/// Whether `file` (of `size` bytes) still starts with the fingerprinted bytes.
fn fingerprint_matches(file: &File, size: u64, s: &FileState) -> bool {
    s.fp_len == 0 || (size >= s.fp_len && fingerprint(file, s.fp_len) == Some(s.fp))
}

/// Where the content a state describes went: a file in the same directory
/// with its identity, else one with its fingerprint, at least `offset`
/// bytes long.
fn find_rotated(s: &FileState, exclude: Option<Key>) -> Option<(PathBuf, File, Key)> {
    let dir = s.path.parent()?;
    let mut by_fingerprint = None;
    for e in std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .take(MAX_DIR_SCAN)
    {
        let path = e.path();
        let Ok(m) = std::fs::metadata(&path) else {
            continue;
        };
        let key = key_of(&m);
        if !m.is_file() || Some(key) == exclude || m.len() < s.offset {
            continue;
        }
        let same = key == s.key();
        if !same && (s.fp_len == 0 || by_fingerprint.is_some()) {
            continue;
        }
        let Ok(file) = File::open(&path) else {
            continue;
        };
        if !fingerprint_matches(&file, m.len(), s) {
            continue;
        }
        if same {
            return Some((path, file, key));
        }
        by_fingerprint = Some((path, file, key));
    }
    by_fingerprint
}

impl Tailer {
    /// A tailer writing to `queue`, its checkpoint in `dir`; `seq` is the
    /// last batch the recovered `states` include.
    pub fn new(
        cfg: &LogsConfig,
        external: &BTreeMap<String, String>,
        filters: Filters,
        dir: &Path,
        queue: Arc<BatchQueue>,
        metrics: Arc<LogMetrics>,
        seq: u64,
    ) -> Self {
        let mut base_labels = cfg.labels.clone();
        base_labels.extend(external.iter().map(|(k, v)| (k.clone(), v.clone())));
        Self {
            cfg: cfg.clone(),
            base_labels,
            filters,
            dir: dir.to_path_buf(),
            queue,
            metrics,
            files: BTreeMap::new(),
            seq,
            batch: Builder::default(),
            dirty: BTreeSet::new(),
            changed_since: None,
            done: HashMap::new(),
            buf: ReadBuf(vec![0u8; CHUNK]),
        }
    }

    fn labels_for(&self, path: &Path) -> BTreeMap<String, String> {
        let mut l = path_labels(path);
        l.extend(self.base_labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        l
    }

    /// Records that a file's state changed (saved with the next flush).
    fn mark(&mut self, key: Key) {
        self.dirty.insert(key);
        self.changed_since.get_or_insert_with(Instant::now);
    }

    fn track(&mut self, state: FileState, file: File, labels: LabelMap, rotated: bool) {
        let key = state.key();
        self.mark(key);
        self.files.insert(
            key,
            Tracked {
                state,
                file,
                labels,
                carry: Vec::new(),
                rotated,
                eof_polls: 0,
            },
        );
    }

    /// Tracks the rotated file `found` (path, handle, identity) with the
    /// reading state `old` had, to be read to its end and let go.
    fn track_rotated(&mut self, old: FileState, found: (PathBuf, File, Key), labels: LabelMap) {
        let (path, file, key) = found;
        let state = FileState {
            path,
            dev: key.0,
            ino: key.1,
            ..old
        };
        self.track(state, file, labels, true);
    }

    /// Takes up the checkpointed files: where they still are, or where
    /// rotation moved them while the collector was down.
    pub fn resume(&mut self, states: Vec<FileState>) {
        for s in states {
            let labels = Arc::new(self.labels_for(&s.path));
            let here = std::fs::metadata(&s.path).ok().and_then(|m| {
                let file = File::open(&s.path).ok()?;
                (key_of(&m) == s.key()
                    && m.len() >= s.offset
                    && fingerprint_matches(&file, m.len(), &s))
                .then_some(file)
            });
            if let Some(file) = here {
                self.track(s, file, labels, false);
                continue;
            }
            match find_rotated(&s, None) {
                Some(found) => {
                    tracing::info!(file = %s.path.display(), rotated_to = %found.0.display(), offset = s.offset, "log file was rotated while the collector was down; reading the rest of it first");
                    self.metrics.rotations.fetch_add(1, Ordering::Relaxed);
                    self.track_rotated(s, found, labels);
                }
                None if s.offset > 0 => {
                    tracing::warn!(file = %s.path.display(), offset = s.offset, "log file is gone and no rotated copy was found next to it; its unread lines are lost");
                }
                None => {}
            }
        }
        self.update_gauge();
    }

    fn update_gauge(&self) {
        self.metrics
            .files_watched
            .store(self.files.len() as u64, Ordering::Relaxed);
    }

    /// Finds new files (and files renamed to another matching path).
    fn discover(&mut self) {
        let mut seen = HashSet::new();
        for pattern in self.cfg.paths.clone() {
            for path in expand_glob(&pattern) {
                if path.to_str().is_none() {
                    // The checkpoint records paths as UTF-8.
                    tracing::debug!(file = %path.display(), "skipping a log file whose path is not UTF-8");
                    continue;
                }
                let Ok(m) = std::fs::metadata(&path) else {
                    continue;
                };
                let key = key_of(&m);
                if !seen.insert(key) {
                    continue;
                }
                if let Some(t) = self.files.get_mut(&key) {
                    if t.state.path != path && !t.rotated {
                        t.state.path = path;
                    }
                    continue;
                }
                let labels = self.labels_for(&path);
                if !self.filters.keeps_file(&labels) {
                    continue;
                }
                let Ok(file) = File::open(&path) else {
                    continue;
                };
                if let Some(&(len, fp)) = self.done.get(&key) {
                    if fingerprint(&file, len) == Some(fp) {
                        continue;
                    }
                    self.done.remove(&key);
                }
                let fp_len = m.len().min(FINGERPRINT_BYTES);
                let fp = fingerprint(&file, fp_len).unwrap_or(0);
                tracing::info!(file = %path.display(), "tailing log file");
                let state = FileState {
                    path,
                    dev: key.0,
                    ino: key.1,
                    fp_len,
                    fp,
                    offset: 0,
                    format: None,
                    pending: BTreeMap::new(),
                    skipping: false,
                };
                self.track(state, file, Arc::new(labels), false);
            }
        }
        self.update_gauge();
    }

    /// Handles a file that shrank or whose first bytes changed: reads the
    /// rest of its copy, then starts it over from 0.
    fn truncated(&mut self, key: Key) {
        let Some(t) = self.files.get_mut(&key) else {
            return;
        };
        self.metrics.rotations.fetch_add(1, Ordering::Relaxed);
        let old = t.state.clone();
        let labels = Arc::clone(&t.labels);
        t.state.offset = 0;
        t.state.pending.clear();
        t.state.skipping = false;
        t.state.fp_len = 0;
        t.state.fp = 0;
        t.carry.clear();
        self.mark(key);
        match find_rotated(&old, Some(key)) {
            Some(found) if !self.files.contains_key(&found.2) => {
                tracing::info!(file = %old.path.display(), copy = %found.0.display(), offset = old.offset, "log file was truncated (copy-truncate); reading the rest of its copy first");
                let copy_key = found.2;
                self.track_rotated(old, found, labels);
                self.drain(copy_key);
            }
            _ => {
                tracing::info!(file = %old.path.display(), offset = old.offset, "log file was truncated; reading it again from the start");
            }
        }
    }

    /// Reads a rotated file to its end now (so its lines go before its
    /// successor's).
    fn drain(&mut self, key: Key) {
        // Bounded by the file's size: each pass reads or stops.
        while self.read_chunk(key) {
            self.flush_if_full();
        }
    }

    /// One poll: discover files, notice rotation, read new lines.
    pub fn poll(&mut self) {
        self.discover();
        let keys: Vec<Key> = self.files.keys().copied().collect();
        // Rotated and vanished files first, and their successors wait
        // until they are read to the end.
        let mut gone = Vec::new();
        let mut live = Vec::new();
        for key in keys {
            let Some(t) = self.files.get(&key) else {
                continue;
            };
            let at_path = std::fs::metadata(&t.state.path).ok().map(|m| key_of(&m));
            if t.rotated || at_path != Some(key) {
                gone.push(key);
            } else {
                live.push(key);
            }
        }
        let mut blocked: HashSet<LabelMap> = HashSet::new();
        for key in gone {
            let read_all = self.read_file(key);
            match self.files.get_mut(&key) {
                Some(t) if !read_all => {
                    t.eof_polls = 0;
                    blocked.insert(Arc::clone(&t.labels));
                }
                Some(t) => {
                    t.eof_polls += 1;
                    if t.eof_polls >= EOF_POLLS_TO_FINISH {
                        self.finish(key);
                    }
                }
                None => {}
            }
        }
        for key in live {
            let Some(t) = self.files.get(&key) else {
                continue;
            };
            if blocked.contains(&t.labels) {
                continue;
            }
            if self.was_truncated(key) {
                self.truncated(key);
            }
            self.read_file(key);
        }
    }

    fn was_truncated(&mut self, key: Key) -> bool {
        let Some(t) = self.files.get_mut(&key) else {
            return false;
        };
        let Ok(size) = t.file.metadata().map(|m| m.len()) else {
            return false;
        };
        if size < t.read_pos() {
            return true;
        }
        if t.state.fp_len > 0 && !fingerprint_matches(&t.file, size, &t.state) {
            return true;
        }
        if t.state.fp_len < FINGERPRINT_BYTES && size > t.state.fp_len {
            let len = size.min(FINGERPRINT_BYTES);
            if let Some(fp) = fingerprint(&t.file, len) {
                t.state.fp_len = len;
                t.state.fp = fp;
                self.mark(key);
            }
        }
        false
    }

    /// Reads what is new in one file, up to the per-poll budget; true when
    /// it reached the end of the file.
    fn read_file(&mut self, key: Key) -> bool {
        let mut budget = MAX_READ_PER_POLL;
        // Bounded by the budget.
        loop {
            if self.batch.bytes >= self.cfg.batch_size.0 as usize {
                self.flush_if_full();
                if self.batch.bytes >= self.cfg.batch_size.0 as usize {
                    // The queue cannot take it now; try again next poll.
                    return false;
                }
            }
            let before = self.files.get(&key).map(Tracked::read_pos);
            if !self.read_chunk(key) {
                return true;
            }
            let after = self.files.get(&key).map(Tracked::read_pos);
            let n = after.unwrap_or(0).saturating_sub(before.unwrap_or(0));
            budget = budget.saturating_sub(n.max(1));
            if budget == 0 {
                return false;
            }
        }
    }

    /// Reads one chunk of a file and handles its whole lines; false at the
    /// end of the file (or on a read error).
    fn read_chunk(&mut self, key: Key) -> bool {
        let Some(t) = self.files.get_mut(&key) else {
            return false;
        };
        let n = match t.file.read_at(&mut self.buf.0, t.read_pos()) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(file = %t.state.path.display(), error = %e, "cannot read log file");
                return false;
            }
        };
        if n == 0 {
            return false;
        }
        self.metrics
            .bytes_read
            .fetch_add(n as u64, Ordering::Relaxed);
        t.eof_polls = 0;
        t.carry.extend_from_slice(&self.buf.0[..n]);
        let carry = std::mem::take(&mut t.carry);
        let mut start = 0;
        let mut lines = Vec::new();
        while let Some(nl) = carry[start..].iter().position(|b| *b == b'\n') {
            let line = &carry[start..start + nl];
            start += nl + 1;
            if std::mem::take(&mut t.state.skipping) {
                continue;
            }
            lines.push(line.to_vec());
        }
        let mut rest = carry[start..].to_vec();
        let max = self.cfg.max_line_bytes.0 as usize;
        let physical_max = max.saturating_mul(6).saturating_add(4096);
        let mut consumed = start as u64;
        let mut overlong = None;
        if t.state.skipping {
            consumed += rest.len() as u64;
            rest.clear();
        } else if rest.len() > physical_max {
            overlong = Some(String::from_utf8_lossy(&rest).into_owned());
            consumed += rest.len() as u64;
            rest.clear();
            t.state.skipping = true;
        }
        t.state.offset += consumed;
        t.carry = rest;
        self.mark(key);
        for line in lines {
            self.handle_line(key, &line);
        }
        if let Some(text) = overlong {
            self.emit(
                key,
                Line {
                    ts_ns: now_ns(),
                    text: cut_at(&text, max).to_string(),
                    cut: true,
                },
            );
        }
        true
    }

    /// Parses one physical line (without its newline) in the file's format.
    fn handle_line(&mut self, key: Key, raw: &[u8]) {
        let max = self.cfg.max_line_bytes.0 as usize;
        let text = String::from_utf8_lossy(raw);
        let Some(t) = self.files.get_mut(&key) else {
            return;
        };
        if text.is_empty() {
            return;
        }
        let format = *t
            .state
            .format
            .get_or_insert_with(|| FileFormat::resolve(self.cfg.format, &text));
        let parsed = match format {
            FileFormat::Raw => None,
            FileFormat::Cri => Some(parse_cri(&text)),
            FileFormat::Docker => Some(parse_docker(&text)),
        };
        let line = match parsed {
            None => {
                let text = text.strip_suffix('\r').unwrap_or(&text);
                Some(Line {
                    ts_ns: now_ns(),
                    text: cut_at(text, max).to_string(),
                    cut: text.len() > max,
                })
            }
            Some(Ok(entry)) => assemble::push(&mut t.state.pending, entry, max),
            Some(Err(e)) => {
                self.metrics.lines_malformed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(file = %t.state.path.display(), error = %e, "log line is not in the file's format; shipping it as it is");
                Some(Line {
                    ts_ns: now_ns(),
                    text: cut_at(&text, max).to_string(),
                    cut: text.len() > max,
                })
            }
        };
        if let Some(line) = line {
            self.emit(key, line);
        }
    }

    fn emit(&mut self, key: Key, line: Line) {
        let Some(t) = self.files.get(&key) else {
            return;
        };
        if line.text.is_empty() {
            return;
        }
        self.metrics.lines_read.fetch_add(1, Ordering::Relaxed);
        if line.cut {
            self.metrics
                .dropped_too_long
                .fetch_add(1, Ordering::Relaxed);
        }
        if !self.filters.keeps_line(&line.text) {
            self.metrics.dropped_filter.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let labels = Arc::clone(&t.labels);
        self.batch.since.get_or_insert_with(Instant::now);
        self.batch.add(&labels, line.ts_ns, line.text);
    }

    /// Lets go of a rotated or deleted file read to its end, shipping a
    /// last line without newline and partial lines left open.
    fn finish(&mut self, key: Key) {
        let Some(t) = self.files.get_mut(&key) else {
            return;
        };
        let tail = std::mem::take(&mut t.carry);
        t.state.offset += tail.len() as u64;
        let pending = std::mem::take(&mut t.state.pending);
        tracing::info!(file = %t.state.path.display(), "finished reading rotated or deleted log file");
        if !tail.is_empty() && !t.state.skipping {
            self.handle_line(key, &tail);
        }
        for (_, p) in pending {
            self.emit(
                key,
                Line {
                    ts_ns: p.ts_ns,
                    text: p.text,
                    cut: p.cut,
                },
            );
        }
        if let Some(t) = self.files.remove(&key) {
            if self.done.len() >= MAX_DONE {
                self.done.clear();
            }
            self.done.insert(key, (t.state.fp_len, t.state.fp));
        }
        self.dirty.remove(&key);
        self.changed_since.get_or_insert_with(Instant::now);
        self.update_gauge();
    }

    fn flush_if_full(&mut self) {
        if self.batch.bytes >= self.cfg.batch_size.0 as usize {
            self.flush();
        }
    }

    /// Queues the batch (if any) and saves the checkpoint; returns false
    /// if that failed (the batch is kept and tried again).
    pub fn flush(&mut self) -> bool {
        if self.batch.streams.is_empty() && self.dirty.is_empty() && self.changed_since.is_none() {
            return true;
        }
        let states: Vec<FileState> = self
            .dirty
            .iter()
            .filter_map(|k| self.files.get(k).map(|t| t.state.clone()))
            .collect();
        if !self.batch.streams.is_empty() {
            let streams = std::mem::take(&mut self.batch.streams);
            match self.queue.append(states, streams.clone()) {
                Ok(seq) => self.seq = seq,
                Err(e) => {
                    tracing::error!(dir = %self.dir.display(), error = %e, "cannot queue log lines; retrying");
                    self.batch.streams = streams;
                    return false;
                }
            }
            self.batch = Builder::default();
        }
        let ckpt = Checkpoint {
            seq: self.seq,
            files: self.files.values().map(|t| t.state.clone()).collect(),
        };
        if let Err(e) = checkpoint::save(&self.dir, &ckpt) {
            // The queued batch carries the offsets: nothing is lost or
            // repeated if the process stops now.
            // The sender waits for it: a batch sent and deleted before
            // its checkpoint is saved could be read again after a crash.
            tracing::error!(dir = %self.dir.display(), error = %e, "cannot save the log checkpoint; retrying");
            return false;
        }
        self.dirty.clear();
        self.changed_since = None;
        self.queue.publish(self.seq);
        true
    }

    fn due(&self) -> bool {
        let wait = self.cfg.batch_wait.as_duration();
        self.batch.bytes >= self.cfg.batch_size.0 as usize
            || self.batch.since.is_some_and(|s| s.elapsed() >= wait)
            || self.changed_since.is_some_and(|s| s.elapsed() >= wait)
    }

    /// Polls until `stop` is true, then queues what was read and returns.
    pub fn run_blocking(mut self, stop: watch::Receiver<bool>) {
        let interval = self.cfg.poll_interval.as_duration();
        // Bounded by `stop`.
        loop {
            let stopping = *stop.borrow();
            self.poll();
            if stopping || self.due() {
                self.flush();
            }
            if stopping {
                return;
            }
            let until = Instant::now() + interval;
            // Bounded by `until`.
            while Instant::now() < until && !*stop.borrow() {
                std::thread::sleep(STOP_CHECK.min(until.saturating_duration_since(Instant::now())));
            }
        }
    }

    /// The current reading state of every file (tests).
    pub fn states(&self) -> Vec<FileState> {
        self.files.values().map(|t| t.state.clone()).collect()
    }
}
