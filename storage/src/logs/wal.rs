//! The log store's write-ahead log: CRC-framed records in numbered segment
//! files, appended under a lock and fsynced with group commit (one fsync
//! covers every record written before it started). A torn or corrupt tail
//! is cut off on open.
//!
//! Record layout: `len: u32 LE | crc32(seq ++ payload): u32 LE | seq: u64 LE | payload`.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::LogError;

const HEADER: usize = 16;
/// Largest record accepted on replay (guards allocation on a corrupt length).
const MAX_RECORD: usize = 1 << 30;

/// A record read back on open.
pub struct WalRecord {
    /// The record's sequence number.
    pub seq: u64,
    /// The payload.
    pub payload: Vec<u8>,
}

/// What replay found.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReplayReport {
    /// Records read.
    pub records: u64,
    /// Bytes cut from torn or corrupt tails.
    pub truncated_bytes: u64,
}

struct Inner {
    file: Arc<File>,
    first_seq: u64,
    bytes: u64,
    next_seq: u64,
    /// Segments on disk: (first seq, path), oldest first; the last is open.
    segments: Vec<(u64, PathBuf)>,
}

/// The write-ahead log.
pub struct Wal {
    dir: PathBuf,
    segment_bytes: u64,
    inner: Mutex<Inner>,
    /// Highest sequence number known durable.
    synced: Mutex<u64>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LogError + '_ {
    move |source| LogError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.wal"))
}

impl Wal {
    /// Opens (creating) the WAL in `dir`, reads every intact record (passed
    /// to `replay` in order), cuts torn tails, and starts a new segment
    /// whose sequence numbers begin after both the last record and
    /// `min_next_seq`.
    pub fn open(
        dir: &Path,
        segment_bytes: u64,
        min_next_seq: u64,
        mut replay: impl FnMut(WalRecord) -> Result<(), LogError>,
    ) -> Result<(Self, ReplayReport), LogError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let mut segments: Vec<(u64, PathBuf)> = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let entry = entry.map_err(io(dir))?;
            let name = entry.file_name();
            let Some(first) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".wal"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            segments.push((first, entry.path()));
        }
        segments.sort();
        let mut report = ReplayReport::default();
        let mut last_seq = 0u64;
        for (_, path) in &segments {
            let (good, len) = read_segment(path, |r| {
                last_seq = last_seq.max(r.seq);
                report.records += 1;
                replay(r)
            })?;
            if good < len {
                report.truncated_bytes += len - good;
                tracing::warn!(path = %path.display(), cut = len - good, "cutting torn log WAL tail");
                let f = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(io(path))?;
                f.set_len(good).map_err(io(path))?;
                f.sync_all().map_err(io(path))?;
            }
        }
        let next_seq = last_seq.max(min_next_seq.saturating_sub(1)) + 1;
        let path = segment_path(dir, next_seq);
        let file = create_segment(dir, &path)?;
        segments.push((next_seq, path));
        let wal = Self {
            dir: dir.to_path_buf(),
            segment_bytes: segment_bytes.max(1 << 16),
            inner: Mutex::new(Inner {
                file: Arc::new(file),
                first_seq: next_seq,
                bytes: 0,
                next_seq,
                segments,
            }),
            synced: Mutex::new(next_seq - 1),
        };
        Ok((wal, report))
    }

    /// Appends a record (not yet durable) and returns its sequence number.
    /// Callers hold their own ordering lock around this if they need it.
    pub fn append(&self, payload: &[u8]) -> Result<u64, LogError> {
        let mut inner = self.inner.lock();
        if inner.bytes >= self.segment_bytes {
            self.rotate(&mut inner)?;
        }
        let seq = inner.next_seq;
        let mut buf = Vec::with_capacity(HEADER + payload.len());
        let len = u32::try_from(payload.len()).map_err(|_| LogError::Unavailable {
            reason: format!("WAL record of {} bytes is too large", payload.len()),
        })?;
        let mut h = crc32fast::Hasher::new();
        h.update(&seq.to_le_bytes());
        h.update(payload);
        buf.extend_from_slice(&len.to_le_bytes());
        buf.extend_from_slice(&h.finalize().to_le_bytes());
        buf.extend_from_slice(&seq.to_le_bytes());
        buf.extend_from_slice(payload);
        let path = segment_path(&self.dir, inner.first_seq);
        (&*inner.file).write_all(&buf).map_err(io(&path))?;
        inner.bytes += buf.len() as u64;
        inner.next_seq += 1;
        Ok(seq)
    }

    /// Makes every record up to `seq` durable. Concurrent callers share
    /// one fsync (group commit).
    pub fn sync_to(&self, seq: u64) -> Result<(), LogError> {
        let mut synced = self.synced.lock();
        if *synced >= seq {
            return Ok(());
        }
        let (file, target, first) = {
            let inner = self.inner.lock();
            (Arc::clone(&inner.file), inner.next_seq - 1, inner.first_seq)
        };
        let path = segment_path(&self.dir, first);
        file.sync_data().map_err(io(&path))?;
        *synced = target;
        Ok(())
    }

    fn rotate(&self, inner: &mut Inner) -> Result<(), LogError> {
        let old = segment_path(&self.dir, inner.first_seq);
        inner.file.sync_data().map_err(io(&old))?;
        let path = segment_path(&self.dir, inner.next_seq);
        let file = create_segment(&self.dir, &path)?;
        inner.file = Arc::new(file);
        inner.first_seq = inner.next_seq;
        inner.bytes = 0;
        inner.segments.push((inner.first_seq, path));
        Ok(())
    }

    /// Deletes closed segments holding only records `<= seq` (they are
    /// committed elsewhere). Returns how many were removed.
    pub fn remove_up_to(&self, seq: u64) -> usize {
        let mut inner = self.inner.lock();
        let mut removed = 0;
        // Everything committed: start a fresh segment so the old one can go.
        if inner.bytes > 0 && seq.saturating_add(1) >= inner.next_seq {
            if let Err(e) = self.rotate(&mut inner) {
                tracing::warn!(error = %e, "cannot rotate the log WAL");
            }
        }
        // Segment i holds seqs [first_i, first_{i+1}); removable when
        // first_{i+1} - 1 <= seq. The open (last) segment is never removed.
        while inner.segments.len() > 1 && inner.segments[1].0 <= seq.saturating_add(1) {
            let (_, path) = inner.segments.remove(0);
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove log WAL segment");
            }
            removed += 1;
        }
        removed
    }

    /// The sequence number the next record will get.
    #[cfg(test)]
    pub fn next_seq(&self) -> u64 {
        self.inner.lock().next_seq
    }
}

fn create_segment(dir: &Path, path: &Path) -> Result<File, LogError> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io(path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    Ok(file)
}

/// Reads a segment's intact records; returns (bytes of intact records,
/// file length).
fn read_segment(
    path: &Path,
    mut f: impl FnMut(WalRecord) -> Result<(), LogError>,
) -> Result<(u64, u64), LogError> {
    let mut file = File::open(path).map_err(io(path))?;
    let len = file.metadata().map_err(io(path))?.len();
    let mut good = 0u64;
    let mut header = [0u8; HEADER];
    loop {
        if len - good < HEADER as u64 {
            break;
        }
        if file.read_exact(&mut header).is_err() {
            break;
        }
        let plen = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let mut seq_bytes = [0u8; 8];
        seq_bytes.copy_from_slice(&header[8..16]);
        let seq = u64::from_le_bytes(seq_bytes);
        if plen > MAX_RECORD || (plen as u64) > len - good - HEADER as u64 {
            break;
        }
        let mut payload = vec![0u8; plen];
        if file.read_exact(&mut payload).is_err() {
            break;
        }
        let mut h = crc32fast::Hasher::new();
        h.update(&seq_bytes);
        h.update(&payload);
        if h.finalize() != crc {
            break;
        }
        good += (HEADER + plen) as u64;
        f(WalRecord { seq, payload })?;
    }
    Ok((good, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_replay_cut_torn_tail_and_remove() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (wal, _) = Wal::open(dir.path(), 1 << 16, 0, |_| Ok(())).unwrap();
            for i in 0..3u8 {
                let s = wal.append(&[i; 10]).unwrap();
                wal.sync_to(s).unwrap();
            }
        }
        // Tear the last record.
        let seg = segment_path(dir.path(), 1);
        let len = std::fs::metadata(&seg).unwrap().len();
        let f = OpenOptions::new().write(true).open(&seg).unwrap();
        f.set_len(len - 3).unwrap();
        let mut seen = Vec::new();
        let (wal, report) = Wal::open(dir.path(), 1 << 16, 0, |r| {
            seen.push((r.seq, r.payload));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, vec![(1, vec![0u8; 10]), (2, vec![1u8; 10])]);
        assert_eq!(report.truncated_bytes, (HEADER + 10 - 3) as u64);
        assert_eq!(wal.next_seq(), 3);
        // Fill enough to rotate, then drop segments up to a committed seq.
        let big = vec![9u8; 70_000];
        let a = wal.append(&big).unwrap();
        let b = wal.append(&big).unwrap();
        wal.sync_to(b).unwrap();
        assert_eq!(wal.remove_up_to(a), 2);
        drop(wal);
        let mut seqs = Vec::new();
        Wal::open(dir.path(), 1 << 16, 10, |r| {
            seqs.push(r.seq);
            Ok(())
        })
        .map(|(w, _)| assert_eq!(w.next_seq(), 10))
        .unwrap();
        assert_eq!(seqs, vec![b]);
    }
}
