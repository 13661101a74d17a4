//! Binary encoding of a push batch for the log WAL: length-prefixed
//! fields, little endian, no allocation per field on the write side.
//!
//! `u32 streams | per stream: str labels, u32 entries | per entry: i64 ts,
//! str line, u16 metadata | per pair: str name, str value` where `str` is
//! `u32 len | bytes`.

use fleetwatch_model::loki::{parse_stream_labels, PushEntry, PushStream};

use super::LogError;

/// Encodes `streams` (labels rendered canonically).
pub fn encode(streams: &[PushStream]) -> Vec<u8> {
    let size: usize = streams
        .iter()
        .map(|s| {
            64 + s
                .entries
                .iter()
                .map(|e| 16 + e.line.len() + e.metadata.len() * 16)
                .sum::<usize>()
        })
        .sum();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&(streams.len() as u32).to_le_bytes());
    for s in streams {
        put_str(&mut out, &s.labels.to_string());
        out.extend_from_slice(&(s.entries.len() as u32).to_le_bytes());
        for e in &s.entries {
            out.extend_from_slice(&e.timestamp_ns.to_le_bytes());
            put_str(&mut out, &e.line);
            out.extend_from_slice(&(e.metadata.len().min(u16::MAX as usize) as u16).to_le_bytes());
            for (k, v) in e.metadata.iter().take(u16::MAX as usize) {
                put_str(&mut out, k);
                put_str(&mut out, v);
            }
        }
    }
    out
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], LogError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| corrupt("record ends early"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u16(&mut self) -> Result<u16, LogError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, LogError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i64(&mut self) -> Result<i64, LogError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_le_bytes(a))
    }
    fn str(&mut self) -> Result<String, LogError> {
        let n = self.u32()? as usize;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| corrupt("string is not UTF-8"))
    }
}

fn corrupt(what: &str) -> LogError {
    LogError::Corrupt {
        reason: format!("log WAL record: {what}"),
    }
}

/// Decodes a payload written by [`encode`].
pub fn decode(buf: &[u8]) -> Result<Vec<PushStream>, LogError> {
    let mut r = Reader { buf, pos: 0 };
    let n = r.u32()? as usize;
    // Every stream takes at least 8 bytes: bound the allocation by the input.
    let mut out = Vec::with_capacity(n.min(buf.len() / 8));
    for _ in 0..n {
        let labels = parse_stream_labels(&r.str()?).map_err(|e| corrupt(&e.to_string()))?;
        let m = r.u32()? as usize;
        let mut entries = Vec::with_capacity(m.min(buf.len() / 14));
        for _ in 0..m {
            let timestamp_ns = r.i64()?;
            let line = r.str()?;
            let k = r.u16()? as usize;
            let mut metadata = Vec::with_capacity(k);
            for _ in 0..k {
                metadata.push((r.str()?, r.str()?));
            }
            entries.push(PushEntry {
                timestamp_ns,
                line,
                metadata,
            });
        }
        out.push(PushStream { labels, entries });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetwatch_model::Labels;

    #[test]
    fn round_trip_and_truncation() {
        let s = vec![PushStream {
            labels: Labels::from_pairs([("app", "a\"b"), ("ns", "x")]),
            entries: vec![PushEntry {
                timestamp_ns: -5,
                line: "héllo\nworld".into(),
                metadata: vec![("k".into(), "v".into())],
            }],
        }];
        let buf = encode(&s);
        assert_eq!(decode(&buf).unwrap(), s);
        for cut in 0..buf.len() {
            assert!(decode(&buf[..cut]).is_err());
        }
    }
}
