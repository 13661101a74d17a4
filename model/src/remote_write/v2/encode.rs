//! Encoding series (and their families' metadata) as a snappy-compressed
//! remote write 2.0 body: every label name, value, help text and unit is
//! interned once in the symbol table, whose entry 0 is the empty string.

use std::collections::HashMap;

use prost::Message;

use super::family_name;
use crate::prompb::{self, v2};
use crate::remote_write::{metric_type_number, FamilyMetadata, SeriesSamples};
use crate::snappy;

/// Interns strings; entry 0 is `""`, as the spec requires.
struct Symbols<'s> {
    index: HashMap<&'s str, u32>,
    list: Vec<&'s str>,
}

impl<'s> Symbols<'s> {
    fn new() -> Self {
        Self {
            index: HashMap::from([("", 0)]),
            list: vec![""],
        }
    }

    fn intern(&mut self, s: &'s str) -> u32 {
        *self.index.entry(s).or_insert_with(|| {
            self.list.push(s);
            (self.list.len() - 1) as u32
        })
    }
}

/// Encodes series as a snappy-compressed remote write 2.0 body.
pub fn encode_write_request_v2(series: &[SeriesSamples]) -> Vec<u8> {
    encode_write_request_v2_with_metadata(series, &[])
}

/// Encodes series as a snappy-compressed remote write 2.0 body, each with
/// the metadata of its family when `metadata` has it (a histogram's
/// `_bucket`, `_sum` and `_count` series and a summary's `_sum` and
/// `_count` find their family's entry too).
pub fn encode_write_request_v2_with_metadata(
    series: &[SeriesSamples],
    metadata: &[FamilyMetadata],
) -> Vec<u8> {
    let families: HashMap<&str, &FamilyMetadata> =
        metadata.iter().map(|m| (m.family.as_str(), m)).collect();
    let mut symbols = Symbols::new();
    let timeseries = series
        .iter()
        .map(|s| {
            let mut labels_refs = Vec::with_capacity(2 * s.labels.len());
            for l in s.labels.iter() {
                labels_refs.push(symbols.intern(&l.name));
                labels_refs.push(symbols.intern(&l.value));
            }
            let metadata = s
                .labels
                .metric_name()
                .and_then(|name| family_of(&families, name))
                .map(|m| v2::Metadata {
                    r#type: metric_type_number(m.kind),
                    help_ref: symbols.intern(&m.help),
                    unit_ref: symbols.intern(&m.unit),
                });
            v2::TimeSeries {
                labels_refs,
                samples: s
                    .samples
                    .iter()
                    .map(|x| prompb::Sample {
                        value: x.value,
                        timestamp: x.timestamp_ms,
                    })
                    .collect(),
                histograms: Vec::new(),
                exemplars: Vec::new(),
                metadata,
            }
        })
        .collect();
    let request = v2::Request {
        symbols: symbols.list.iter().map(|s| s.to_string()).collect(),
        timeseries,
    };
    snappy::compress(&request.encode_to_vec())
}

/// The metadata of the family a series named `name` belongs to.
fn family_of<'m>(
    families: &HashMap<&str, &'m FamilyMetadata>,
    name: &str,
) -> Option<&'m FamilyMetadata> {
    if let Some(m) = families.get(name) {
        return Some(m);
    }
    ["_bucket", "_sum", "_count"]
        .iter()
        .filter_map(|suffix| families.get(name.strip_suffix(suffix)?))
        .find(|m| family_name(name, m.kind) == m.family)
        .copied()
}
