//! An allocation-free walk over a decompressed remote write 1.0
//! `WriteRequest`: series are visited as borrowed views of the request
//! buffer, so the write path can find a known series by a hash of its label
//! bytes and allocate only for series it has not seen.

use xxhash_rust::xxh3::Xxh3;

use super::{metric_type_name, FamilyMetadata};
use crate::{Label, Labels, ModelError, SeriesHash};

const WIRE_VARINT: u8 = 0;
const WIRE_FIXED64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_FIXED32: u8 = 5;

fn malformed(reason: &str) -> ModelError {
    ModelError::Protobuf {
        message: "prometheus.WriteRequest",
        reason: reason.to_string(),
    }
}

/// Reads a base-128 varint at `*pos`.
fn varint(buf: &[u8], pos: &mut usize) -> Result<u64, ModelError> {
    let mut out: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos).ok_or_else(|| malformed("truncated varint"))?;
        *pos += 1;
        out |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(out);
        }
    }
    Err(malformed("varint longer than 10 bytes"))
}

/// One field: length-delimited payloads as slices, scalars as raw values.
enum Field<'a> {
    Bytes(u32, &'a [u8]),
    Varint(u32, u64),
    Fixed64(u32, u64),
    Other,
}

fn next_field<'a>(buf: &'a [u8], pos: &mut usize) -> Result<Field<'a>, ModelError> {
    let key = varint(buf, pos)?;
    let number = (key >> 3) as u32;
    if number == 0 {
        return Err(malformed("field number 0"));
    }
    match (key & 7) as u8 {
        WIRE_VARINT => Ok(Field::Varint(number, varint(buf, pos)?)),
        WIRE_FIXED64 => {
            let b = buf
                .get(*pos..*pos + 8)
                .ok_or_else(|| malformed("truncated fixed64"))?;
            *pos += 8;
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            Ok(Field::Fixed64(number, u64::from_le_bytes(a)))
        }
        WIRE_LEN => {
            let len =
                usize::try_from(varint(buf, pos)?).map_err(|_| malformed("length overflows"))?;
            let end = pos
                .checked_add(len)
                .ok_or_else(|| malformed("length overflows"))?;
            let b = buf
                .get(*pos..end)
                .ok_or_else(|| malformed("length runs past the end of the message"))?;
            *pos = end;
            Ok(Field::Bytes(number, b))
        }
        WIRE_FIXED32 => {
            if *pos + 4 > buf.len() {
                return Err(malformed("truncated fixed32"));
            }
            *pos += 4;
            Ok(Field::Other)
        }
        w => Err(malformed(&format!("unsupported wire type {w}"))),
    }
}

/// A borrowed view of one `TimeSeries` inside a request buffer.
#[derive(Clone, Copy)]
pub struct RawSeries<'a> {
    msg: &'a [u8],
}

/// What a walk over a series' labels found.
#[derive(Debug, Clone, Copy)]
pub struct LabelSummary {
    /// Hash over the label bytes in wire order; equal to
    /// [`Labels::series_hash`] when `canonical` is true.
    pub hash: SeriesHash,
    /// True when names are strictly ascending and no value is empty, so the
    /// wire order is the canonical order.
    pub canonical: bool,
    /// Number of labels.
    pub count: usize,
}

/// Label pairs of one series as raw bytes borrowed from the request.
pub type RawLabels<'a> = Vec<(&'a [u8], &'a [u8])>;

impl<'a> RawSeries<'a> {
    /// Parses the series in one pass: its label pairs into `labels`
    /// (cleared first; reuse the vector across series to avoid allocating)
    /// and its samples through `sample`.
    pub fn parse(
        &self,
        labels: &mut RawLabels<'a>,
        mut sample: impl FnMut(i64, f64),
    ) -> Result<(), ModelError> {
        labels.clear();
        let mut pos = 0;
        while pos < self.msg.len() {
            match next_field(self.msg, &mut pos)? {
                Field::Bytes(1, label) => {
                    let (mut name, mut value): (&[u8], &[u8]) = (&[], &[]);
                    let mut lp = 0;
                    while lp < label.len() {
                        match next_field(label, &mut lp)? {
                            Field::Bytes(1, b) => name = b,
                            Field::Bytes(2, b) => value = b,
                            _ => {}
                        }
                    }
                    labels.push((name, value));
                }
                Field::Bytes(2, s) => {
                    let (mut ts, mut bits) = (0i64, 0u64);
                    let mut sp = 0;
                    while sp < s.len() {
                        match next_field(s, &mut sp)? {
                            Field::Fixed64(1, v) => bits = v,
                            Field::Varint(2, v) => ts = v as i64,
                            _ => {}
                        }
                    }
                    sample(ts, f64::from_bits(bits));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Hashes parsed label pairs without allocating and says whether they
/// are in canonical order.
pub fn summarize(labels: &[(&[u8], &[u8])]) -> LabelSummary {
    let mut hasher = Xxh3::new();
    let mut canonical = true;
    let mut prev: Option<&[u8]> = None;
    for (name, value) in labels {
        hasher.update(name);
        hasher.update(&[0xff]);
        hasher.update(value);
        hasher.update(&[0xff]);
        if value.is_empty() || prev.is_some_and(|p| p >= *name) {
            canonical = false;
        }
        prev = Some(name);
    }
    LabelSummary {
        hash: SeriesHash(hasher.digest()),
        canonical,
        count: labels.len(),
    }
}

/// True when parsed label pairs equal `labels` byte for byte, in order.
pub fn pairs_equal(pairs: &[(&[u8], &[u8])], labels: &Labels) -> bool {
    pairs.len() == labels.len()
        && pairs
            .iter()
            .zip(labels.iter())
            .all(|((n, v), l)| l.name.as_bytes() == *n && l.value.as_bytes() == *v)
}

/// Builds validated, owned labels from parsed pairs (the slow path, for a
/// new series): UTF-8 checked, names validated, sorted, a metric name
/// required.
pub fn pairs_to_labels(pairs: &[(&[u8], &[u8])]) -> Result<Labels, ModelError> {
    let mut out = Vec::with_capacity(pairs.len());
    for (name, value) in pairs {
        match (std::str::from_utf8(name), std::str::from_utf8(value)) {
            (Ok(n), Ok(v)) => out.push(Label::new(n, v)),
            _ => return Err(malformed("label is not valid UTF-8")),
        }
    }
    let labels = Labels::new(out)?;
    if labels.metric_name().is_none() {
        return Err(ModelError::MissingMetricName {
            labels: labels.to_string(),
        });
    }
    Ok(labels)
}

/// Visits every `TimeSeries` of a decompressed `WriteRequest` in order.
/// Fields other than `timeseries` (metadata) are skipped.
pub fn for_each_series<'a>(
    request: &'a [u8],
    mut f: impl FnMut(RawSeries<'a>) -> Result<(), ModelError>,
) -> Result<(), ModelError> {
    let mut pos = 0;
    while pos < request.len() {
        if let Field::Bytes(1, msg) = next_field(request, &mut pos)? {
            f(RawSeries { msg })?;
        }
    }
    Ok(())
}

/// Visits the `metadata` entries of a decompressed `WriteRequest`; entries
/// with an empty or non-UTF-8 family name are skipped. Series are skipped
/// by their length prefix without being parsed.
pub fn for_each_metadata(
    request: &[u8],
    mut f: impl FnMut(FamilyMetadata),
) -> Result<(), ModelError> {
    let mut pos = 0;
    while pos < request.len() {
        if let Field::Bytes(3, msg) = next_field(request, &mut pos)? {
            let (mut kind, mut family, mut help, mut unit) = (0, &[][..], &[][..], &[][..]);
            let mut mp = 0;
            while mp < msg.len() {
                match next_field(msg, &mut mp)? {
                    Field::Varint(1, v) => kind = v,
                    Field::Bytes(2, b) => family = b,
                    Field::Bytes(4, b) => help = b,
                    Field::Bytes(5, b) => unit = b,
                    _ => {}
                }
            }
            let text = |b: &[u8]| std::str::from_utf8(b).map(str::to_string);
            if let (Ok(family), Ok(help), Ok(unit)) = (text(family), text(help), text(unit)) {
                if !family.is_empty() {
                    f(FamilyMetadata {
                        family,
                        kind: metric_type_name(kind),
                        help,
                        unit,
                    });
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::prompb;

    fn request(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> Vec<u8> {
        prompb::WriteRequest {
            timeseries: vec![prompb::TimeSeries {
                labels: labels
                    .iter()
                    .map(|(n, v)| prompb::Label {
                        name: n.to_string(),
                        value: v.to_string(),
                    })
                    .collect(),
                samples: samples
                    .iter()
                    .map(|&(t, v)| prompb::Sample {
                        value: v,
                        timestamp: t,
                    })
                    .collect(),
            }],
            metadata: vec![prompb::MetricMetadata {
                r#type: 1,
                metric_family_name: "x".into(),
                help: "h".into(),
                unit: String::new(),
            }],
        }
        .encode_to_vec()
    }

    #[test]
    fn walk_matches_owned_decode() {
        let buf = request(
            &[("__name__", "up"), ("job", "a")],
            &[(1000, 1.5), (2000, crate::STALE_NAN), (-5, -0.0)],
        );
        let mut seen = 0;
        let mut pairs = Vec::new();
        for_each_series(&buf, |s| {
            seen += 1;
            let mut samples = Vec::new();
            s.parse(&mut pairs, |t, v| samples.push(crate::Sample::new(t, v)))?;
            let sum = summarize(&pairs);
            let labels = pairs_to_labels(&pairs)?;
            assert!(sum.canonical);
            assert_eq!(sum.hash, labels.series_hash());
            assert!(pairs_equal(&pairs, &labels));
            assert!(!pairs_equal(
                &pairs,
                &Labels::from_pairs([("__name__", "up")])
            ));
            assert_eq!(
                samples,
                vec![
                    crate::Sample::new(1000, 1.5),
                    crate::Sample::new(2000, crate::STALE_NAN),
                    crate::Sample::new(-5, -0.0)
                ]
            );
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, 1);
    }

    #[test]
    fn unsorted_labels_are_not_canonical() {
        let buf = request(&[("job", "a"), ("__name__", "up")], &[(1, 1.0)]);
        let mut pairs = Vec::new();
        for_each_series(&buf, |s| {
            s.parse(&mut pairs, |_, _| {})?;
            assert!(!summarize(&pairs).canonical);
            assert_eq!(pairs_to_labels(&pairs)?.to_string(), "up{job=\"a\"}");
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn malformed_input_errors_not_panics() {
        let buf = request(&[("__name__", "up")], &[(1, 1.0)]);
        let mut pairs = Vec::new();
        for cut in 0..buf.len() {
            let _ = for_each_series(&buf[..cut], |s| s.parse(&mut pairs, |_, _| {}));
        }
        let junk: [&[u8]; 3] = [
            b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
            b"\x0a\xff\xff\xff\xff\x0f",
            b"\x00",
        ];
        for j in junk {
            assert!(for_each_series(j, |_| Ok(())).is_err());
        }
    }

    #[test]
    fn metadata_round_trips_and_series_are_skipped() {
        let series = crate::remote_write::SeriesSamples {
            labels: Labels::from_pairs([("__name__", "up")]),
            samples: vec![crate::Sample::new(1, 1.0)],
        };
        let meta = vec![
            FamilyMetadata {
                family: "http_requests_total".into(),
                kind: "counter",
                help: "Requests served.".into(),
                unit: String::new(),
            },
            FamilyMetadata {
                family: "temperature".into(),
                kind: "gauge",
                help: String::new(),
                unit: "celsius".into(),
            },
        ];
        let body = crate::remote_write::encode_write_request_with_metadata(&[series], &meta);
        let raw = crate::snappy::decompress(&body, 1 << 20).expect("decompress");
        let mut got = Vec::new();
        for_each_metadata(&raw, |m| got.push(m)).expect("walk");
        assert_eq!(got, meta);
        assert_eq!(metric_type_name(99), "unknown");
    }
}
