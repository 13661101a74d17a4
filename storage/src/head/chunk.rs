//! Compact in-memory storage of a series' recent samples.
//!
//! Samples are appended to a small open buffer; every [`CHUNK_SAMPLES`]
//! samples the buffer is sealed into a byte-encoded chunk:
//! - timestamps as zig-zag varints of the delta of deltas (one byte for a
//!   steady scrape interval);
//! - values XOR-ed with the previous value's bits; a zero XOR costs one
//!   byte, otherwise a header byte (leading and trailing zero bytes) and
//!   only the bytes between them.
//!
//! Typical scrape data takes 2-5 bytes a sample instead of 16. Appends in
//! time order and removing the newest are cheap; an out-of-order insert or
//! a removal in the middle re-encodes the series (rare operations).

use fleetwatch_model::Sample;

/// Samples per sealed chunk.
pub const CHUNK_SAMPLES: usize = 120;

/// One sealed, encoded chunk.
#[derive(Debug, Clone)]
struct Chunk {
    min_ts: i64,
    max_ts: i64,
    count: u32,
    data: Box<[u8]>,
}

/// A series' samples in time order, compactly encoded.
#[derive(Debug, Clone, Default)]
pub struct SampleBuf {
    sealed: Vec<Chunk>,
    open: Vec<Sample>,
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(data: &[u8], pos: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    while let Some(&b) = data.get(*pos) {
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 || shift >= 63 {
            break;
        }
        shift += 7;
    }
    v
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn encode(samples: &[Sample]) -> Chunk {
    let mut data = Vec::with_capacity(samples.len() * 4);
    let (mut prev_ts, mut prev_delta, mut prev_bits) = (0i64, 0i64, 0u64);
    for (i, s) in samples.iter().enumerate() {
        let delta = s.timestamp_ms.wrapping_sub(prev_ts);
        if i == 0 {
            put_varint(&mut data, zigzag(s.timestamp_ms));
        } else {
            put_varint(&mut data, zigzag(delta.wrapping_sub(prev_delta)));
        }
        prev_delta = if i == 0 { 0 } else { delta };
        prev_ts = s.timestamp_ms;
        let bits = s.value.to_bits();
        let x = bits ^ prev_bits;
        prev_bits = bits;
        if x == 0 {
            data.push(0);
            continue;
        }
        let lead = (x.leading_zeros() / 8) as u8;
        let trail = (x.trailing_zeros() / 8) as u8;
        // Header: 1 + lead (0..=7) in the high nibble, trail in the low one.
        data.push(((lead + 1) << 4) | trail);
        let bytes = x.to_be_bytes();
        data.extend_from_slice(&bytes[lead as usize..8 - trail as usize]);
    }
    Chunk {
        min_ts: samples.first().map_or(0, |s| s.timestamp_ms),
        max_ts: samples.last().map_or(0, |s| s.timestamp_ms),
        count: samples.len() as u32,
        data: data.into_boxed_slice(),
    }
}

fn decode_into(chunk: &Chunk, out: &mut Vec<Sample>) {
    let data = &chunk.data;
    let mut pos = 0;
    let (mut ts, mut delta, mut bits) = (0i64, 0i64, 0u64);
    for i in 0..chunk.count {
        let v = unzigzag(get_varint(data, &mut pos));
        if i == 0 {
            ts = v;
        } else {
            delta = delta.wrapping_add(v);
            ts = ts.wrapping_add(delta);
        }
        let header = data.get(pos).copied().unwrap_or(0);
        pos += 1;
        if header != 0 {
            let lead = usize::from((header >> 4).saturating_sub(1)).min(7);
            let trail = usize::from(header & 0x0f).min(8 - lead);
            let n = 8 - lead - trail;
            let mut bytes = [0u8; 8];
            if let Some(src) = data.get(pos..pos + n) {
                bytes[lead..lead + n].copy_from_slice(src);
            }
            pos += n;
            bits ^= u64::from_be_bytes(bytes);
        }
        out.push(Sample::new(ts, f64::from_bits(bits)));
    }
}

impl SampleBuf {
    /// Builds a buffer from samples already in time order.
    fn from_sorted(samples: Vec<Sample>) -> Self {
        let mut buf = Self::default();
        let mut chunks = samples.chunks_exact(CHUNK_SAMPLES);
        for c in &mut chunks {
            buf.sealed.push(encode(c));
        }
        buf.open = chunks.remainder().to_vec();
        buf
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.sealed.iter().map(|c| c.count as usize).sum::<usize>() + self.open.len()
    }

    /// True when there are no samples.
    pub fn is_empty(&self) -> bool {
        self.sealed.is_empty() && self.open.is_empty()
    }

    /// Bytes used by the encoded chunks and the open buffer.
    pub fn memory_bytes(&self) -> usize {
        self.sealed
            .iter()
            .map(|c| c.data.len() + std::mem::size_of::<Chunk>())
            .sum::<usize>()
            + self.open.capacity() * std::mem::size_of::<Sample>()
    }

    /// The oldest timestamp.
    pub fn first_ts(&self) -> Option<i64> {
        self.sealed
            .first()
            .map(|c| c.min_ts)
            .or_else(|| self.open.first().map(|s| s.timestamp_ms))
    }

    /// The newest sample.
    pub fn last(&self) -> Option<Sample> {
        if let Some(s) = self.open.last() {
            return Some(*s);
        }
        let c = self.sealed.last()?;
        let mut v = Vec::with_capacity(c.count as usize);
        decode_into(c, &mut v);
        v.last().copied()
    }

    /// The newest timestamp.
    pub fn last_ts(&self) -> Option<i64> {
        self.open
            .last()
            .map(|s| s.timestamp_ms)
            .or_else(|| self.sealed.last().map(|c| c.max_ts))
    }

    /// Appends a sample newer than every stored one.
    pub fn push(&mut self, s: Sample) {
        if self.open.len() >= CHUNK_SAMPLES {
            let chunk = encode(&self.open);
            self.sealed.push(chunk);
            self.open.clear();
        }
        self.open.push(s);
    }

    /// Removes and returns the newest sample.
    pub fn pop(&mut self) -> Option<Sample> {
        if self.open.is_empty() {
            let c = self.sealed.pop()?;
            decode_into(&c, &mut self.open);
        }
        self.open.pop()
    }

    /// All samples, decoded.
    pub fn to_vec(&self) -> Vec<Sample> {
        let mut out = Vec::with_capacity(self.len());
        for c in &self.sealed {
            decode_into(c, &mut out);
        }
        out.extend_from_slice(&self.open);
        out
    }

    /// Samples with `start_ms <= t <= end_ms`, decoding only the chunks
    /// that overlap.
    pub fn range(&self, start_ms: i64, end_ms: i64) -> Vec<Sample> {
        let mut out = Vec::new();
        for c in &self.sealed {
            if c.max_ts < start_ms || c.min_ts > end_ms {
                continue;
            }
            decode_into(c, &mut out);
        }
        out.extend_from_slice(&self.open);
        out.retain(|s| s.timestamp_ms >= start_ms && s.timestamp_ms <= end_ms);
        out
    }

    /// True when a sample lies in `[start_ms, end_ms]`; decodes a chunk
    /// only when the range falls strictly inside it.
    pub fn has_in_range(&self, start_ms: i64, end_ms: i64) -> bool {
        let inside = |t: i64| t >= start_ms && t <= end_ms;
        if self.open.iter().any(|s| inside(s.timestamp_ms)) {
            return true;
        }
        for c in &self.sealed {
            if c.max_ts < start_ms || c.min_ts > end_ms {
                continue;
            }
            if inside(c.min_ts) || inside(c.max_ts) {
                return true;
            }
            let mut v = Vec::with_capacity(c.count as usize);
            decode_into(c, &mut v);
            if v.iter().any(|s| inside(s.timestamp_ms)) {
                return true;
            }
        }
        false
    }

    /// The sample at exactly `ts`, if stored.
    pub fn get(&self, ts: i64) -> Option<Sample> {
        if let Ok(i) = self.open.binary_search_by_key(&ts, |s| s.timestamp_ms) {
            return Some(self.open[i]);
        }
        let c = self
            .sealed
            .iter()
            .find(|c| c.min_ts <= ts && ts <= c.max_ts)?;
        let mut v = Vec::with_capacity(c.count as usize);
        decode_into(c, &mut v);
        v.binary_search_by_key(&ts, |s| s.timestamp_ms)
            .ok()
            .map(|i| v[i])
    }

    /// Inserts a sample in time order; false when its timestamp is taken.
    pub fn insert(&mut self, s: Sample) -> bool {
        match self.last_ts() {
            None => {
                self.push(s);
                return true;
            }
            Some(last) if s.timestamp_ms > last => {
                self.push(s);
                return true;
            }
            _ => {}
        }
        let mut all = self.to_vec();
        match all.binary_search_by_key(&s.timestamp_ms, |x| x.timestamp_ms) {
            Ok(_) => false,
            Err(i) => {
                all.insert(i, s);
                *self = Self::from_sorted(all);
                true
            }
        }
    }

    /// Removes the sample at `ts`, if stored.
    pub fn remove(&mut self, ts: i64) -> Option<Sample> {
        if self.last_ts() == Some(ts) {
            return self.pop();
        }
        let mut all = self.to_vec();
        let i = all.binary_search_by_key(&ts, |x| x.timestamp_ms).ok()?;
        let s = all.remove(i);
        *self = Self::from_sorted(all);
        Some(s)
    }

    /// Samples older than `max_ms`.
    pub fn before(&self, max_ms: i64) -> Vec<Sample> {
        self.range(i64::MIN, max_ms.saturating_sub(1))
    }

    /// Keeps the samples for which `keep` is true; returns how many went.
    pub fn retain(&mut self, keep: impl FnMut(&Sample) -> bool) -> usize {
        let mut all = self.to_vec();
        let before = all.len();
        all.retain(keep);
        let removed = before - all.len();
        if removed > 0 {
            *self = Self::from_sorted(all);
        }
        removed
    }

    /// Drops samples older than `min_ts_ms`; returns how many went.
    pub fn drop_before(&mut self, min_ts_ms: i64) -> usize {
        if self.first_ts().is_none_or(|t| t >= min_ts_ms) {
            return 0;
        }
        self.retain(|s| s.timestamp_ms >= min_ts_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_set(n: usize) -> Vec<Sample> {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        (0..n)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let v = match i % 5 {
                    0 => f64::from_bits(x),
                    1 => fleetwatch_model::STALE_NAN,
                    2 => -0.0,
                    3 => (i / 7) as f64 * 4096.0,
                    _ => 0.1 * i as f64,
                };
                Sample::new(
                    1_700_000_000_000 + i as i64 * 15_000 + (x % 7) as i64 - 3,
                    v,
                )
            })
            .collect()
    }

    #[test]
    fn round_trips_exact_bits() {
        for n in [0, 1, 2, 119, 120, 121, 600, 1001] {
            let samples = sample_set(n);
            let mut buf = SampleBuf::default();
            for s in &samples {
                buf.push(*s);
            }
            assert_eq!(buf.len(), n);
            assert_eq!(buf.to_vec(), samples, "n={n}");
            if n > 0 {
                assert_eq!(buf.last(), samples.last().copied());
                assert_eq!(buf.first_ts(), Some(samples[0].timestamp_ms));
            }
        }
    }

    #[test]
    fn steady_gauges_are_small() {
        let mut buf = SampleBuf::default();
        for i in 0..1200i64 {
            buf.push(Sample::new(
                i * 15_000,
                (1 << 30) as f64 + ((i / 10) * 4096) as f64,
            ));
        }
        let per_sample = buf.memory_bytes() as f64 / buf.len() as f64;
        assert!(per_sample < 4.0, "{per_sample} bytes per sample");
    }

    #[test]
    fn edits_in_the_middle_and_at_the_end() {
        let samples = sample_set(300);
        let mut buf = SampleBuf::default();
        for s in samples.iter().step_by(2) {
            buf.push(*s);
        }
        // Out-of-order inserts of the odd ones.
        for s in samples.iter().skip(1).step_by(2) {
            assert!(buf.insert(*s));
        }
        assert_eq!(buf.to_vec(), samples);
        assert!(!buf.insert(samples[10]));
        assert_eq!(buf.get(samples[10].timestamp_ms), Some(samples[10]));
        assert_eq!(buf.remove(samples[10].timestamp_ms), Some(samples[10]));
        assert_eq!(buf.get(samples[10].timestamp_ms), None);
        assert_eq!(buf.pop(), samples.last().copied());
        let t = samples[200].timestamp_ms;
        assert_eq!(buf.range(t, t), vec![samples[200]]);
        assert!(buf.has_in_range(t, t));
        assert!(!buf.has_in_range(0, 1));
        let dropped = buf.drop_before(samples[100].timestamp_ms);
        assert_eq!(dropped, 99); // samples 0..100 minus the removed #10
        assert_eq!(buf.first_ts(), Some(samples[100].timestamp_ms));
        assert_eq!(
            buf.before(samples[102].timestamp_ms),
            samples[100..102].to_vec()
        );
    }
}
