//! The on-disk form of a queue record.
//!
//! A record is framed as `len: u32 LE | crc32(payload): u32 LE | payload`.
//! The payload is `count: u32 LE`, then per sample: `labels: u16 LE`, per
//! label `name_len: u16 LE | name | value_len: u32 LE | value`, then
//! `timestamp_ms: i64 LE | value bits: u64 LE` (bits, so NaN payloads such
//! as staleness markers survive).

use std::sync::Arc;

use fleetwatch_model::{Label, Labels, Sample};

use xxhash_rust::xxh3::xxh3_64;

use super::intern::LabelIntern;
use super::QueuedSample;

/// Bytes of the frame header (length and checksum).
pub const HEADER_LEN: usize = 8;

/// The largest payload accepted when reading; a larger length is treated
/// as corruption rather than allocated.
pub const MAX_PAYLOAD: u32 = 256 * 1024 * 1024;

/// Why a payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The payload ended inside a field.
    #[error("payload truncated at byte {at}")]
    Truncated {
        /// Offset in the payload where more bytes were needed.
        at: usize,
    },
    /// A label name or value is not UTF-8.
    #[error("label text at byte {at} is not UTF-8")]
    NotUtf8 {
        /// Offset of the text in the payload.
        at: usize,
    },
    /// Bytes left over after the last sample.
    #[error("{extra} trailing bytes after the last sample")]
    Trailing {
        /// How many.
        extra: usize,
    },
}

/// Encodes `samples` as one framed record (header included).
pub fn encode_record(samples: &[QueuedSample]) -> Vec<u8> {
    encode_record_interned(samples, None)
}

/// [`encode_record`], remembering each sample's labels in `intern` so
/// that [`decode_payload_interned`] can hand the same sets back.
pub fn encode_record_interned(
    samples: &[QueuedSample],
    mut intern: Option<&mut LabelIntern>,
) -> Vec<u8> {
    let mut out = vec![0u8; HEADER_LEN];
    let count = u32::try_from(samples.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&count.to_le_bytes());
    for s in samples.iter().take(count as usize) {
        let labels = s.labels.as_slice();
        let n = u16::try_from(labels.len()).unwrap_or(u16::MAX);
        let start = out.len();
        out.extend_from_slice(&n.to_le_bytes());
        for l in labels.iter().take(n as usize) {
            put_text16(&mut out, &l.name);
            put_text32(&mut out, &l.value);
        }
        if let Some(intern) = intern.as_deref_mut() {
            intern.remember(xxh3_64(&out[start..]), &s.labels);
        }
        out.extend_from_slice(&s.sample.timestamp_ms.to_le_bytes());
        out.extend_from_slice(&s.sample.value.to_bits().to_le_bytes());
    }
    let payload_len = u32::try_from(out.len() - HEADER_LEN).unwrap_or(u32::MAX);
    let crc = crc32fast::hash(&out[HEADER_LEN..]);
    out[0..4].copy_from_slice(&payload_len.to_le_bytes());
    out[4..8].copy_from_slice(&crc.to_le_bytes());
    out
}

fn put_text16(out: &mut Vec<u8>, s: &str) {
    // Label names are short; a longer one is cut at a char boundary.
    let mut end = s.len().min(u16::MAX as usize);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out.extend_from_slice(&(end as u16).to_le_bytes());
    out.extend_from_slice(&s.as_bytes()[..end]);
}

fn put_text32(out: &mut Vec<u8>, s: &str) {
    let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&s.as_bytes()[..len as usize]);
}

/// Splits a frame header into (payload length, checksum).
pub fn parse_header(h: &[u8; HEADER_LEN]) -> (u32, u32) {
    let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
    let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    (len, crc)
}

/// The sample count stored at the start of a payload (0 if too short).
pub fn payload_count(payload: &[u8]) -> u64 {
    match payload.get(0..4) {
        Some(b) => u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        None => 0,
    }
}

/// Decodes a payload (checksum already verified).
pub fn decode_payload(payload: &[u8]) -> Result<Vec<QueuedSample>, DecodeError> {
    decode_payload_interned(payload, None)
}

/// [`decode_payload`], reusing the live label sets `intern` remembers for
/// samples whose encoded labels match them byte for byte.
pub fn decode_payload_interned(
    payload: &[u8],
    intern: Option<&LabelIntern>,
) -> Result<Vec<QueuedSample>, DecodeError> {
    let mut r = Reader {
        buf: payload,
        at: 0,
    };
    let count = r.u32()? as usize;
    let mut out = Vec::with_capacity(count.min(payload.len() / 18 + 1));
    for _ in 0..count {
        if let Some(labels) = intern.and_then(|i| r.interned(i)) {
            let ts = i64::from_le_bytes(r.array()?);
            let bits = u64::from_le_bytes(r.array()?);
            out.push(QueuedSample {
                labels,
                sample: Sample::new(ts, f64::from_bits(bits)),
            });
            continue;
        }
        let n = r.u16()? as usize;
        let mut labels = Vec::with_capacity(n);
        for _ in 0..n {
            let name_len = r.u16()? as usize;
            let name = r.text(name_len)?;
            let value_len = r.u32()? as usize;
            let value = r.text(value_len)?;
            labels.push(Label::new(name, value));
        }
        let ts = i64::from_le_bytes(r.array()?);
        let bits = u64::from_le_bytes(r.array()?);
        out.push(QueuedSample {
            // Written from a validated, sorted set: rebuilding keeps it so.
            labels: Arc::new(Labels::from_pairs(
                labels.into_iter().map(|l| (l.name, l.value)),
            )),
            sample: Sample::new(ts, f64::from_bits(bits)),
        });
    }
    if r.at != payload.len() {
        return Err(DecodeError::Trailing {
            extra: payload.len() - r.at,
        });
    }
    Ok(out)
}

/// Whether `labels` encode to exactly `bytes` (count, then each name and
/// value with its length).
fn encoded_equal(labels: &Labels, bytes: &[u8]) -> bool {
    let mut at = 2;
    if bytes.len() < 2 || usize::from(u16::from_le_bytes([bytes[0], bytes[1]])) != labels.len() {
        return false;
    }
    for l in labels.iter() {
        let (name, value) = (l.name.as_bytes(), l.value.as_bytes());
        let Some(chunk) = bytes.get(at..at + 2 + name.len() + 4 + value.len()) else {
            return false;
        };
        let name_len = usize::from(u16::from_le_bytes([chunk[0], chunk[1]]));
        let v = 2 + name.len();
        let value_len = u32::from_le_bytes([chunk[v], chunk[v + 1], chunk[v + 2], chunk[v + 3]]);
        if name_len != name.len()
            || &chunk[2..v] != name
            || value_len as usize != value.len()
            || &chunk[v + 4..] != value
        {
            return false;
        }
        at += chunk.len();
    }
    at == bytes.len()
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// At the start of a sample's labels: the live set `intern` holds for
    /// them if it matches byte for byte, moving past the labels; else
    /// `None`, staying put.
    fn interned(&mut self, intern: &LabelIntern) -> Option<Arc<Labels>> {
        let start = self.at;
        let end = self.labels_end()?;
        let bytes = &self.buf[start..end];
        let labels = intern.get(xxh3_64(bytes))?;
        if !encoded_equal(&labels, bytes) {
            return None;
        }
        self.at = end;
        Some(labels)
    }

    /// The end of the labels starting at the current position, without
    /// moving; `None` when they run past the payload.
    fn labels_end(&self) -> Option<usize> {
        let mut probe = Reader {
            buf: self.buf,
            at: self.at,
        };
        let n = probe.u16().ok()? as usize;
        for _ in 0..n {
            let name_len = probe.u16().ok()? as usize;
            probe.take(name_len).ok()?;
            let value_len = probe.u32().ok()? as usize;
            probe.take(value_len).ok()?;
        }
        Some(probe.at)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or(DecodeError::Truncated { at: self.at })?;
        let s = &self.buf[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn text(&mut self, n: usize) -> Result<String, DecodeError> {
        let at = self.at;
        let s = self.take(n)?;
        std::str::from_utf8(s)
            .map(str::to_string)
            .map_err(|_| DecodeError::NotUtf8 { at })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetwatch_model::STALE_NAN;

    #[test]
    fn round_trips_labels_and_nan_bits() {
        let l = Arc::new(Labels::from_pairs([("__name__", "up"), ("job", "a\"b")]));
        let samples = vec![
            QueuedSample {
                labels: Arc::clone(&l),
                sample: Sample::new(1_700_000_000_000, 1.5),
            },
            QueuedSample {
                labels: l,
                sample: Sample::new(-5, STALE_NAN),
            },
        ];
        let frame = encode_record(&samples);
        let mut h = [0u8; HEADER_LEN];
        h.copy_from_slice(&frame[..HEADER_LEN]);
        let (len, crc) = parse_header(&h);
        let payload = &frame[HEADER_LEN..];
        assert_eq!(len as usize, payload.len());
        assert_eq!(crc, crc32fast::hash(payload));
        assert_eq!(payload_count(payload), 2);
        let back = decode_payload(payload).expect("decodes");
        assert_eq!(back[0], samples[0]);
        assert_eq!(back[1].labels, samples[1].labels);
        assert_eq!(back[1].sample.value.to_bits(), STALE_NAN.to_bits());
    }

    #[test]
    fn rejects_truncated_and_trailing_payloads() {
        let l = Arc::new(Labels::from_pairs([("__name__", "m")]));
        let frame = encode_record(&[QueuedSample {
            labels: l,
            sample: Sample::new(1, 2.0),
        }]);
        let payload = &frame[HEADER_LEN..];
        assert!(matches!(
            decode_payload(&payload[..payload.len() - 1]),
            Err(DecodeError::Truncated { .. })
        ));
        let mut longer = payload.to_vec();
        longer.push(0);
        assert_eq!(
            decode_payload(&longer),
            Err(DecodeError::Trailing { extra: 1 })
        );
    }
}
