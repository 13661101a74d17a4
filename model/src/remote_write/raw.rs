//! An allocation-free walk over a decompressed remote write 1.0
//! `WriteRequest`: series are visited as borrowed views of the request
//! buffer, so the write path can find a known series by a hash of its label
//! bytes and allocate only for series it has not seen.

use xxhash_rust::xxh3::Xxh3;

use super::wire::{Field, Reader};
use super::{metric_type_name, FamilyMetadata};
use crate::{Label, Labels, ModelError, SeriesHash};

/// The message name errors of this walk carry.
const MESSAGE: &str = "prometheus.WriteRequest";

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
        let mut r = Reader::new(self.msg, MESSAGE);
        while !r.done() {
            match r.next_field()? {
                Field::Bytes(1, label) => {
                    let (mut name, mut value): (&[u8], &[u8]) = (&[], &[]);
                    let mut lr = Reader::new(label, MESSAGE);
                    while !lr.done() {
                        match lr.next_field()? {
                            Field::Bytes(1, b) => name = b,
                            Field::Bytes(2, b) => value = b,
                            _ => {}
                        }
                    }
                    labels.push((name, value));
                }
                Field::Bytes(2, s) => {
                    let (ts, value) = parse_sample(s, MESSAGE)?;
                    sample(ts, value);
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Reads one `Sample` message (value 1, timestamp 2; the same numbers in
/// 1.0 and 2.0, whose `start_timestamp` 3 is skipped) as `(timestamp, value)`.
pub(crate) fn parse_sample(msg: &[u8], message: &'static str) -> Result<(i64, f64), ModelError> {
    let (mut ts, mut bits) = (0i64, 0u64);
    let mut r = Reader::new(msg, message);
    while !r.done() {
        match r.next_field()? {
            Field::Fixed64(1, v) => bits = v,
            Field::Varint(2, v) => ts = v as i64,
            _ => {}
        }
    }
    Ok((ts, f64::from_bits(bits)))
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
            _ => {
                return Err(ModelError::Protobuf {
                    message: MESSAGE,
                    reason: "label is not valid UTF-8".to_string(),
                })
            }
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
    let mut r = Reader::new(request, MESSAGE);
    while !r.done() {
        if let Field::Bytes(1, msg) = r.next_field()? {
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
    let mut r = Reader::new(request, MESSAGE);
    while !r.done() {
        if let Field::Bytes(3, msg) = r.next_field()? {
            let (mut kind, mut family, mut help, mut unit) = (0, &[][..], &[][..], &[][..]);
            let mut mr = Reader::new(msg, MESSAGE);
            while !mr.done() {
                match mr.next_field()? {
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
