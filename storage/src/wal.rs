//! The write-ahead log: numbered segment files of checksummed records.
//!
//! Record framing: `len: u32 LE | crc32(payload): u32 LE | payload`. A
//! record whose length runs past the end of the file or whose checksum does
//! not match is a torn or corrupt tail: replay stops there, the segment is
//! truncated to the last good record and the loss is reported, never a
//! refusal to start.
//!
//! Payloads (all integers little-endian):
//! - series record: `1 | id: u64 | n: u16 | n x (name_len: u16, name, value_len: u32, value)`
//! - samples record: `2 | n: u32 | n x (id: u64, timestamp_ms: i64, value_bits: u64)`

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use fleetwatch_model::{Label, Labels, Sample};

use crate::StorageError;

const RECORD_SERIES: u8 = 1;
const RECORD_SAMPLES: u8 = 2;
const HEADER_LEN: usize = 8;
/// Largest record replay accepts; anything claiming more is corruption.
const MAX_RECORD_LEN: usize = 256 << 20;

/// A decoded WAL record.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// A new series and its id.
    Series {
        /// Head-local series id.
        id: u64,
        /// The series labels.
        labels: Labels,
    },
    /// Samples for previously logged series.
    Samples(Vec<(u64, Sample)>),
}

/// Appends framed records to the current segment and rotates segments.
pub struct WalWriter {
    dir: PathBuf,
    file: File,
    segment: u64,
    segment_bytes: u64,
    max_segment_bytes: u64,
    buf: Vec<u8>,
}

/// What replay found.
#[derive(Debug, Default, Clone)]
pub struct ReplayReport {
    /// Records read successfully.
    pub records: u64,
    /// Segments read.
    pub segments: u64,
    /// Bytes cut off torn or corrupt tails.
    pub truncated_bytes: u64,
    /// Segments that had a torn or corrupt tail.
    pub corrupt_segments: Vec<String>,
}

fn io_err(path: &Path, source: std::io::Error) -> StorageError {
    StorageError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:08}.wal"))
}

/// Lists segment numbers in `dir`, ascending.
pub fn list_segments(dir: &Path) -> Result<Vec<u64>, StorageError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
        let entry = entry.map_err(|e| io_err(dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(num) = name
            .strip_suffix(".wal")
            .and_then(|n| n.parse::<u64>().ok())
        {
            out.push(num);
        }
    }
    out.sort_unstable();
    Ok(out)
}

impl WalWriter {
    /// Opens a new segment numbered after every existing one in `dir`.
    pub fn create(dir: &Path, max_segment_bytes: u64) -> Result<Self, StorageError> {
        fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        let next = list_segments(dir)?.last().map_or(1, |n| n + 1);
        let (file, _) = Self::open_segment(dir, next)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            file,
            segment: next,
            segment_bytes: 0,
            max_segment_bytes,
            buf: Vec::with_capacity(1 << 16),
        })
    }

    fn open_segment(dir: &Path, n: u64) -> Result<(File, PathBuf), StorageError> {
        let path = segment_path(dir, n);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| io_err(&path, e))?;
        // Make the new directory entry durable too.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok((file, path))
    }

    /// Buffers a series record (written by the next [`WalWriter::commit`]).
    pub fn add_series(&mut self, id: u64, labels: &Labels) {
        let mut payload = Vec::with_capacity(16 + labels.len() * 24);
        payload.push(RECORD_SERIES);
        payload.extend_from_slice(&id.to_le_bytes());
        payload.extend_from_slice(&(labels.len() as u16).to_le_bytes());
        for l in labels.iter() {
            payload.extend_from_slice(&(l.name.len() as u16).to_le_bytes());
            payload.extend_from_slice(l.name.as_bytes());
            payload.extend_from_slice(&(l.value.len() as u32).to_le_bytes());
            payload.extend_from_slice(l.value.as_bytes());
        }
        self.frame(&payload);
    }

    /// Buffers a samples record (written by the next [`WalWriter::commit`]).
    pub fn add_samples(&mut self, samples: &[(u64, Sample)]) {
        if samples.is_empty() {
            return;
        }
        let mut payload = Vec::with_capacity(5 + samples.len() * 24);
        payload.push(RECORD_SAMPLES);
        payload.extend_from_slice(&(samples.len() as u32).to_le_bytes());
        for (id, s) in samples {
            payload.extend_from_slice(&id.to_le_bytes());
            payload.extend_from_slice(&s.timestamp_ms.to_le_bytes());
            payload.extend_from_slice(&s.value.to_bits().to_le_bytes());
        }
        self.frame(&payload);
    }

    fn frame(&mut self, payload: &[u8]) {
        self.buf
            .extend_from_slice(&(payload.len() as u32).to_le_bytes());
        self.buf
            .extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        self.buf.extend_from_slice(payload);
    }

    /// Writes the buffered records and fsyncs. Only after this returns `Ok`
    /// are those records durable. Returns the bytes written.
    pub fn commit(&mut self) -> Result<u64, StorageError> {
        if self.buf.is_empty() {
            return Ok(0);
        }
        let path = segment_path(&self.dir, self.segment);
        self.file
            .write_all(&self.buf)
            .map_err(|e| io_err(&path, e))?;
        self.file.sync_data().map_err(|e| io_err(&path, e))?;
        let written = self.buf.len() as u64;
        self.segment_bytes += written;
        self.buf.clear();
        if self.segment_bytes >= self.max_segment_bytes {
            self.segment += 1;
            let (file, _) = Self::open_segment(&self.dir, self.segment)?;
            self.file = file;
            self.segment_bytes = 0;
        }
        Ok(written)
    }

    /// Bytes buffered and not yet committed.
    pub fn buffered_bytes(&self) -> usize {
        self.buf.len()
    }

    /// Commits what is buffered and starts a new segment; returns its
    /// number. Every record written afterwards lands in that segment or
    /// later ones.
    pub fn rotate(&mut self) -> Result<u64, StorageError> {
        self.commit()?;
        self.segment += 1;
        let (file, _) = Self::open_segment(&self.dir, self.segment)?;
        self.file = file;
        self.segment_bytes = 0;
        Ok(self.segment)
    }

    /// Deletes every segment numbered below `first_kept`.
    pub fn delete_segments_before(&self, first_kept: u64) -> Result<usize, StorageError> {
        let mut deleted = 0;
        for n in list_segments(&self.dir)? {
            if n < first_kept {
                let path = segment_path(&self.dir, n);
                fs::remove_file(&path).map_err(|e| io_err(&path, e))?;
                deleted += 1;
            }
        }
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(deleted)
    }

    /// Drops buffered records that were not committed.
    pub fn discard(&mut self) {
        self.buf.clear();
    }
}

/// Replays every segment in `dir` in order, calling `apply` per record.
/// Torn or corrupt tails are truncated away and reported.
pub fn replay(dir: &Path, mut apply: impl FnMut(Record)) -> Result<ReplayReport, StorageError> {
    let mut report = ReplayReport::default();
    if !dir.exists() {
        return Ok(report);
    }
    for n in list_segments(dir)? {
        let path = segment_path(dir, n);
        let mut data = Vec::new();
        File::open(&path)
            .and_then(|mut f| f.read_to_end(&mut data))
            .map_err(|e| io_err(&path, e))?;
        report.segments += 1;
        let mut pos = 0usize;
        let good_end = loop {
            match read_record(&data, pos) {
                Some(Ok((record, next))) => {
                    apply(record);
                    report.records += 1;
                    pos = next;
                }
                Some(Err(())) => break pos,
                None => break pos,
            }
        };
        if good_end < data.len() {
            let cut = (data.len() - good_end) as u64;
            tracing::warn!(segment = %path.display(), offset = good_end, bytes = cut, "wal segment has a torn or corrupt tail, truncating");
            report.truncated_bytes += cut;
            report.corrupt_segments.push(path.display().to_string());
            let f = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| io_err(&path, e))?;
            f.set_len(good_end as u64).map_err(|e| io_err(&path, e))?;
            f.sync_all().map_err(|e| io_err(&path, e))?;
        }
    }
    Ok(report)
}

/// Reads the record at `pos`: `None` at a clean end of data, `Some(Err)`
/// for a torn or corrupt record.
fn read_record(data: &[u8], pos: usize) -> Option<Result<(Record, usize), ()>> {
    if pos == data.len() {
        return None;
    }
    let header = data.get(pos..pos + HEADER_LEN);
    let Some(header) = header else {
        return Some(Err(()));
    };
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len > MAX_RECORD_LEN {
        return Some(Err(()));
    }
    let start = pos + HEADER_LEN;
    let Some(payload) = data.get(start..start + len) else {
        return Some(Err(()));
    };
    if crc32fast::hash(payload) != crc {
        return Some(Err(()));
    }
    Some(decode_payload(payload).map(|r| (r, start + len)).ok_or(()))
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.data.get(self.pos..self.pos + n)?;
        self.pos += n;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Option<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some(u64::from_le_bytes(a))
    }
    fn string(&mut self, n: usize) -> Option<String> {
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

fn decode_payload(payload: &[u8]) -> Option<Record> {
    let mut c = Cursor {
        data: payload,
        pos: 0,
    };
    match c.u8()? {
        RECORD_SERIES => {
            let id = c.u64()?;
            let n = c.u16()? as usize;
            let mut labels = Vec::with_capacity(n);
            for _ in 0..n {
                let nl = c.u16()? as usize;
                let name = c.string(nl)?;
                let vl = c.u32()? as usize;
                let value = c.string(vl)?;
                labels.push(Label { name, value });
            }
            Some(Record::Series {
                id,
                labels: Labels::new(labels).ok()?,
            })
        }
        RECORD_SAMPLES => {
            let n = c.u32()? as usize;
            if n.checked_mul(24)? > payload.len() {
                return None;
            }
            let mut out = Vec::with_capacity(n);
            for _ in 0..n {
                let id = c.u64()?;
                let ts = c.u64()? as i64;
                let v = f64::from_bits(c.u64()?);
                out.push((id, Sample::new(ts, v)));
            }
            Some(Record::Samples(out))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(dir: &Path) -> (Vec<Record>, ReplayReport) {
        let mut recs = Vec::new();
        let rep = replay(dir, |r| recs.push(r)).unwrap();
        (recs, rep)
    }

    #[test]
    fn round_trip_and_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let labels = Labels::from_pairs([("__name__", "up"), ("job", "x")]);
        {
            let mut w = WalWriter::create(dir.path(), 1 << 20).unwrap();
            w.add_series(1, &labels);
            w.add_samples(&[
                (1, Sample::new(10, 1.5)),
                (1, Sample::new(20, fleetwatch_model::STALE_NAN)),
            ]);
            w.commit().unwrap();
            w.add_samples(&[(1, Sample::new(30, 2.0))]);
            w.commit().unwrap();
        }
        let (recs, rep) = collect(dir.path());
        assert_eq!(recs.len(), 3);
        assert_eq!(rep.truncated_bytes, 0);
        assert_eq!(
            recs[0],
            Record::Series {
                id: 1,
                labels: labels.clone()
            }
        );
        match &recs[1] {
            Record::Samples(s) => assert!(fleetwatch_model::is_stale_nan(s[1].1.value)),
            other => panic!("unexpected {other:?}"),
        }
        // Tear the last record in half.
        let seg = segment_path(dir.path(), 1);
        let len = fs::metadata(&seg).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(len - 10)
            .unwrap();
        let (recs, rep) = collect(dir.path());
        assert_eq!(recs.len(), 2);
        assert!(rep.truncated_bytes > 0);
        assert_eq!(rep.corrupt_segments.len(), 1);
        // The truncation is persisted: a second replay is clean.
        let (recs, rep) = collect(dir.path());
        assert_eq!(recs.len(), 2);
        assert_eq!(rep.truncated_bytes, 0);
        // A new writer continues in a new segment.
        let mut w = WalWriter::create(dir.path(), 1 << 20).unwrap();
        w.add_samples(&[(1, Sample::new(40, 4.0))]);
        w.commit().unwrap();
        assert_eq!(collect(dir.path()).0.len(), 3);
    }

    #[test]
    fn corrupt_checksum_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = WalWriter::create(dir.path(), 1 << 20).unwrap();
        w.add_samples(&[(1, Sample::new(10, 1.0))]);
        w.add_samples(&[(1, Sample::new(20, 2.0))]);
        w.commit().unwrap();
        let seg = segment_path(dir.path(), 1);
        let mut data = fs::read(&seg).unwrap();
        let last = data.len() - 1;
        data[last] ^= 0xff;
        fs::write(&seg, data).unwrap();
        let (recs, rep) = collect(dir.path());
        assert_eq!(recs.len(), 1);
        assert_eq!(rep.corrupt_segments.len(), 1);
    }
}
