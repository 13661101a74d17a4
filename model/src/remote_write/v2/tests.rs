use prost::Message;

use super::*;
use crate::prompb::{self, v2};
use crate::remote_write::{encode_write_request, FamilyMetadata, SeriesSamples};
use crate::{snappy, Labels, ModelError, Sample, STALE_NAN};

const LIMIT: usize = 1 << 20;

fn series(pairs: &[(&str, &str)], samples: &[(i64, f64)]) -> SeriesSamples {
    SeriesSamples {
        labels: Labels::from_pairs(pairs.iter().copied()),
        samples: samples.iter().map(|&(t, v)| Sample::new(t, v)).collect(),
    }
}

fn family(name: &str, kind: &'static str, help: &str, unit: &str) -> FamilyMetadata {
    FamilyMetadata {
        family: name.into(),
        kind,
        help: help.into(),
        unit: unit.into(),
    }
}

/// A request built field by field, for the bad-input cases.
fn request(symbols: &[&str], timeseries: Vec<v2::TimeSeries>) -> Vec<u8> {
    snappy::compress(
        &v2::Request {
            symbols: symbols.iter().map(|s| s.to_string()).collect(),
            timeseries,
        }
        .encode_to_vec(),
    )
}

fn ts(labels_refs: &[u32]) -> v2::TimeSeries {
    v2::TimeSeries {
        labels_refs: labels_refs.to_vec(),
        samples: vec![prompb::Sample {
            value: 1.0,
            timestamp: 1000,
        }],
        histograms: vec![],
        exemplars: vec![],
        metadata: None,
    }
}

fn reason(body: &[u8]) -> String {
    match decode_write_request_v2(body, LIMIT) {
        Err(e) => e.to_string(),
        Ok(d) => panic!("expected an error, decoded {d:?}"),
    }
}

#[test]
fn round_trip_with_symbols_deduplicated() {
    let input = vec![
        series(
            &[("__name__", "up"), ("job", "a"), ("instance", "x:1")],
            &[
                (1000, 1.0),
                (2000, STALE_NAN),
                (3000, -0.0),
                (0, 0.0),
                (-5, f64::INFINITY),
            ],
        ),
        series(
            &[("__name__", "up"), ("job", "b"), ("instance", "x:1")],
            &[(1000, 0.0)],
        ),
        series(
            &[("__name__", "rpc_seconds_bucket"), ("le", "+Inf")],
            &[(1000, 7.0)],
        ),
        series(
            &[("__name__", "rpc_seconds_count"), ("job", "a")],
            &[(1000, 7.0)],
        ),
        series(&[("__name__", "no_samples")], &[]),
    ];
    let metadata = vec![
        family("up", "gauge", "Target is up.", ""),
        family("rpc_seconds", "histogram", "RPC latency.", "seconds"),
    ];
    let body = encode_write_request_v2_with_metadata(&input, &metadata);
    let decoded = decode_write_request_v2(&body, LIMIT).expect("decode");
    assert_eq!(decoded.series, input);
    assert_eq!(
        decoded.metadata,
        vec![
            metadata[0].clone(),
            metadata[0].clone(),
            metadata[1].clone(),
            metadata[1].clone()
        ]
    );
    assert_eq!((decoded.histograms, decoded.exemplars), (0, 0));

    let raw = snappy::decompress(&body, LIMIT).expect("decompress");
    let req = v2::Request::decode(raw.as_slice()).expect("prost decode");
    assert_eq!(req.symbols[0], "");
    let mut unique = req.symbols.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), req.symbols.len(), "{:?}", req.symbols);
    // "", __name__, up, job, a, instance, x:1, b, rpc_seconds_bucket, le,
    // +Inf, rpc_seconds_count, no_samples, and the two helps and the unit.
    assert_eq!(req.symbols.len(), 16, "{:?}", req.symbols);
    assert!(req.timeseries[4].metadata.is_none());
}

#[test]
fn unpacked_label_refs_are_accepted() {
    // symbols "", "__name__", "up"; one series with refs 1, 2 unpacked
    // (field 1 as two varints) and one sample.
    let mut msg = vec![0x08, 1, 0x08, 2];
    let sample = prompb::Sample {
        value: 2.5,
        timestamp: 7,
    }
    .encode_to_vec();
    msg.push(0x12);
    msg.push(sample.len() as u8);
    msg.extend(sample);
    let mut body = Vec::new();
    for s in ["", "__name__", "up"] {
        body.push(0x22);
        body.push(s.len() as u8);
        body.extend(s.as_bytes());
    }
    body.push(0x2a);
    body.push(msg.len() as u8);
    body.extend(msg);
    let decoded = decode_write_request_v2(&snappy::compress(&body), LIMIT).expect("decode");
    assert_eq!(
        decoded.series,
        vec![series(&[("__name__", "up")], &[(7, 2.5)])]
    );
}

#[test]
fn rejects_refs_out_of_range_odd_refs_and_empty_labels() {
    let syms = ["", "__name__", "up", "job"];
    let r = reason(&request(&syms, vec![ts(&[1, 9])]));
    assert!(
        r.contains("series 0: label ref 9 is out of range (the request has 4 symbols)"),
        "{r}"
    );
    let r = reason(&request(&syms, vec![ts(&[1, 2]), ts(&[1, 2, 3])]));
    assert!(
        r.contains("series 1 has an odd number of label refs"),
        "{r}"
    );
    let r = reason(&request(&syms, vec![ts(&[])]));
    assert!(r.contains("series 0 has no labels"), "{r}");
    let r = reason(&request(&[], vec![ts(&[0, 0])]));
    assert!(
        r.contains("out of range (the request has 0 symbols)"),
        "{r}"
    );
    // A ref beyond u32 (2^36 - 1), sent unpacked: symbol "", then one
    // series with label refs 2^36 - 1 and 0.
    let body = [
        0x22, 0, 0x2a, 9, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x08, 0,
    ];
    let r = reason(&snappy::compress(&body));
    assert!(r.contains("label ref 68719476735 is out of range"), "{r}");
}

#[test]
fn rejects_invalid_names_and_missing_metric_name() {
    let syms = ["", "__name__", "up", "1bad", "v", "bad-metric", "job"];
    assert!(matches!(
        decode_write_request_v2(&request(&syms, vec![ts(&[1, 2, 3, 4])]), LIMIT),
        Err(ModelError::InvalidLabelName { name }) if name == "1bad"
    ));
    assert!(matches!(
        decode_write_request_v2(&request(&syms, vec![ts(&[1, 5])]), LIMIT),
        Err(ModelError::InvalidMetricName { name }) if name == "bad-metric"
    ));
    assert!(matches!(
        decode_write_request_v2(&request(&syms, vec![ts(&[6, 4])]), LIMIT),
        Err(ModelError::MissingMetricName { .. })
    ));
    assert!(matches!(
        decode_write_request_v2(&request(&syms, vec![ts(&[1, 2, 6, 4, 6, 2])]), LIMIT),
        Err(ModelError::DuplicateLabel { name }) if name == "job"
    ));
}

#[test]
fn rejects_bad_symbol_tables_and_reserved_fields() {
    let r = reason(&request(&["x", "__name__", "up"], vec![ts(&[1, 2])]));
    assert!(
        r.contains("symbols[0] must be the empty string, not \"x\""),
        "{r}"
    );
    let body = [0x22, 0, 0x22, 2, 0xc3, 0x28];
    let r = reason(&snappy::compress(&body));
    assert!(r.contains("symbol 1 is not valid UTF-8"), "{r}");
    // A 1.0 body sent with the 2.0 content type.
    let v1 = encode_write_request(&[series(&[("__name__", "up")], &[(1, 1.0)])]);
    let r = reason(&v1);
    assert!(r.contains("field 1 is reserved"), "{r}");
}

#[test]
fn rejects_bad_exemplars_metadata_and_mixed_series() {
    let syms = ["", "__name__", "up", "trace_id", "abc"];
    let with = |f: &dyn Fn(&mut v2::TimeSeries)| {
        let mut t = ts(&[1, 2]);
        f(&mut t);
        request(&syms, vec![t])
    };
    let exemplar = |refs: &[u32]| v2::Exemplar {
        labels_refs: refs.to_vec(),
        value: 1.0,
        timestamp: 1000,
    };
    let ok = with(&|t| t.exemplars.push(exemplar(&[3, 4])));
    assert_eq!(
        decode_write_request_v2(&ok, LIMIT)
            .expect("decode")
            .exemplars,
        1
    );
    let r = reason(&with(&|t| t.exemplars.push(exemplar(&[3, 40]))));
    assert!(r.contains("exemplar label ref 40 is out of range"), "{r}");
    let r = reason(&with(&|t| t.exemplars.push(exemplar(&[3]))));
    assert!(
        r.contains("exemplar with an odd number of label refs"),
        "{r}"
    );
    let meta = |help_ref, unit_ref| {
        Some(v2::Metadata {
            r#type: 2,
            help_ref,
            unit_ref,
        })
    };
    let r = reason(&with(&|t| t.metadata = meta(99, 0)));
    assert!(r.contains("help ref 99 is out of range"), "{r}");
    let r = reason(&with(&|t| t.metadata = meta(0, 77)));
    assert!(r.contains("unit ref 77 is out of range"), "{r}");
    let histogram = v2::Histogram {
        count_int: 3,
        sum: 1.5,
        schema: 0,
        zero_threshold: 0.0,
        zero_count_int: 0,
        positive_spans: vec![v2::BucketSpan {
            offset: 0,
            length: 1,
        }],
        positive_deltas: vec![3],
        timestamp: 1000,
    };
    let r = reason(&with(&|t| t.histograms.push(histogram.clone())));
    assert!(
        r.contains("series 0 has both samples and histograms"),
        "{r}"
    );
    let only = with(&|t| {
        t.samples.clear();
        t.histograms.push(histogram.clone());
    });
    let d = decode_write_request_v2(&only, LIMIT).expect("decode");
    assert_eq!((d.histograms, d.series[0].samples.len()), (1, 0));
}

#[test]
fn rejects_bad_bodies() {
    assert!(matches!(
        decode_write_request_v2(b"not snappy at all", LIMIT),
        Err(ModelError::Snappy { .. })
    ));
    assert!(matches!(
        decode_write_request_v2(&snappy::compress(b"\xff\xff\xff\xff garbage"), LIMIT),
        Err(ModelError::Protobuf { .. })
    ));
    let big = encode_write_request_v2(&[series(&[("__name__", "up")], &[(1, 1.0); 100])]);
    assert!(matches!(
        decode_write_request_v2(&big, 64),
        Err(ModelError::TooLarge { .. })
    ));
}

#[test]
fn family_names_strip_histogram_and_summary_suffixes() {
    assert_eq!(
        family_name("rpc_seconds_bucket", "histogram"),
        "rpc_seconds"
    );
    assert_eq!(family_name("rpc_seconds_sum", "summary"), "rpc_seconds");
    assert_eq!(
        family_name("rpc_seconds_bucket", "summary"),
        "rpc_seconds_bucket"
    );
    assert_eq!(family_name("requests_total", "counter"), "requests_total");
    assert_eq!(family_name("_count", "histogram"), "_count");
}

/// A small deterministic generator (xorshift64*), so the loop below is
/// the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Walks a decompressed body the way the hub does, returning the samples.
fn walk(raw: &[u8]) -> Result<usize, ModelError> {
    let request = RawRequest::parse(raw)?;
    let mut pairs = Vec::new();
    let mut samples = 0;
    request.for_each_series(|s| {
        s.parse(&mut pairs, |_, _| samples += 1)?;
        crate::remote_write::raw::pairs_to_labels(&pairs)?;
        Ok(())
    })?;
    Ok(samples)
}

#[test]
fn truncations_and_byte_flips_never_panic() {
    let input: Vec<SeriesSamples> = (0..20)
        .map(|i| {
            series(
                &[("__name__", "m"), ("i", &i.to_string()), ("job", "j")],
                &[(1000 + i, i as f64), (2000 + i, -1.5)],
            )
        })
        .collect();
    let metadata = [family("m", "gauge", "help", "bytes")];
    let body = encode_write_request_v2_with_metadata(&input, &metadata);
    let raw = snappy::decompress(&body, LIMIT).expect("decompress");
    assert_eq!(walk(&raw).expect("valid body"), 40);
    for cut in 0..raw.len() {
        // A prefix may still be a valid (shorter) request; never more.
        if let Ok(n) = walk(&raw[..cut]) {
            assert!(n <= 40, "cut {cut}: {n} samples");
        }
    }
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let mut errors = 0;
    for _ in 0..3000 {
        let mut flipped = raw.clone();
        for _ in 0..=rng.next() % 3 {
            let at = (rng.next() % flipped.len() as u64) as usize;
            flipped[at] ^= 1 << (rng.next() % 8);
        }
        if walk(&flipped).is_err() {
            errors += 1;
        }
        // The compressed body corrupted too: snappy then the walk.
        let mut body = body.clone();
        let at = (rng.next() % body.len() as u64) as usize;
        body[at] = rng.next() as u8;
        let _ = decode_write_request_v2(&body, LIMIT);
    }
    assert!(
        errors > 100,
        "only {errors} of 3000 corrupted bodies were rejected"
    );
}
