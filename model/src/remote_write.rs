//! Remote write 1.0: decoding a request body into validated series, and
//! encoding series into a body.

pub mod raw;
pub mod v2;
mod wire;

use prost::Message;

use crate::prompb;
use crate::{snappy, Label, Labels, ModelError, Sample};

/// Content type of a remote write 1.0 body.
pub const CONTENT_TYPE_V1: &str = "application/x-protobuf";
/// The remote write protocol version header value for 1.0.
pub const VERSION_V1: &str = "0.1.0";

/// One decoded, validated series with its samples.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSamples {
    /// Validated, sorted labels including `__name__`.
    pub labels: Labels,
    /// Samples as sent.
    pub samples: Vec<Sample>,
}

/// Decodes and validates a snappy-compressed remote write 1.0 body. The
/// whole request is validated before anything is returned, so a caller can
/// reject a bad request without having stored any of it.
pub fn decode_write_request(body: &[u8], limit: usize) -> Result<Vec<SeriesSamples>, ModelError> {
    let raw = snappy::decompress(body, limit)?;
    let req = prompb::WriteRequest::decode(raw.as_slice()).map_err(|e| ModelError::Protobuf {
        message: "prometheus.WriteRequest",
        reason: e.to_string(),
    })?;
    req.timeseries.into_iter().map(validate_series).collect()
}

fn validate_series(ts: prompb::TimeSeries) -> Result<SeriesSamples, ModelError> {
    let labels = Labels::new(
        ts.labels
            .into_iter()
            .map(|l| Label {
                name: l.name,
                value: l.value,
            })
            .collect(),
    )?;
    if labels.metric_name().is_none() {
        return Err(ModelError::MissingMetricName {
            labels: labels.to_string(),
        });
    }
    let samples = ts
        .samples
        .into_iter()
        .map(|s| Sample::new(s.timestamp, s.value))
        .collect();
    Ok(SeriesSamples { labels, samples })
}

/// The metadata of one metric family, as remote write 1.0 carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyMetadata {
    /// The metric family name (`http_requests_total`, `rpc_duration_seconds`).
    pub family: String,
    /// The type as Prometheus's API spells it (`counter`, `gauge`, ...).
    pub kind: &'static str,
    /// The HELP text.
    pub help: String,
    /// The unit, often empty.
    pub unit: String,
}

/// Metric types in the order of `prometheus.MetricMetadata.MetricType`.
const METRIC_TYPES: [&str; 8] = [
    "unknown",
    "counter",
    "gauge",
    "histogram",
    "gaugehistogram",
    "summary",
    "info",
    "stateset",
];

/// The API name of a wire `MetricType` number (`unknown` for numbers this
/// version does not know).
pub fn metric_type_name(number: u64) -> &'static str {
    usize::try_from(number)
        .ok()
        .and_then(|n| METRIC_TYPES.get(n))
        .copied()
        .unwrap_or("unknown")
}

/// The wire `MetricType` number of an API type name (0, unknown, for names
/// it does not know).
pub fn metric_type_number(name: &str) -> i32 {
    METRIC_TYPES
        .iter()
        .position(|t| *t == name)
        .map_or(0, |n| n as i32)
}

/// Encodes series as a snappy-compressed remote write 1.0 body.
pub fn encode_write_request(series: &[SeriesSamples]) -> Vec<u8> {
    encode_write_request_with_metadata(series, &[])
}

/// Encodes series and metric metadata as a snappy-compressed remote write
/// 1.0 body.
pub fn encode_write_request_with_metadata(
    series: &[SeriesSamples],
    metadata: &[FamilyMetadata],
) -> Vec<u8> {
    let req = prompb::WriteRequest {
        timeseries: series
            .iter()
            .map(|s| prompb::TimeSeries {
                labels: s
                    .labels
                    .iter()
                    .map(|l| prompb::Label {
                        name: l.name.clone(),
                        value: l.value.clone(),
                    })
                    .collect(),
                samples: s
                    .samples
                    .iter()
                    .map(|x| prompb::Sample {
                        value: x.value,
                        timestamp: x.timestamp_ms,
                    })
                    .collect(),
            })
            .collect(),
        metadata: metadata
            .iter()
            .map(|m| prompb::MetricMetadata {
                r#type: metric_type_number(m.kind),
                metric_family_name: m.family.clone(),
                help: m.help.clone(),
                unit: m.unit.clone(),
            })
            .collect(),
    };
    snappy::compress(&req.encode_to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let series = vec![SeriesSamples {
            labels: Labels::from_pairs([("__name__", "up"), ("job", "a")]),
            samples: vec![
                Sample::new(1000, 1.0),
                Sample::new(2000, crate::STALE_NAN),
                Sample::new(3000, -0.0),
                Sample::new(0, 0.0),
            ],
        }];
        let body = encode_write_request(&series);
        assert_eq!(decode_write_request(&body, 1 << 20).unwrap(), series);
    }

    #[test]
    fn rejects_bad_input() {
        assert!(matches!(
            decode_write_request(b"not snappy at all", 1 << 20),
            Err(ModelError::Snappy { .. })
        ));
        let not_proto = snappy::compress(b"\xff\xff\xff\xff garbage");
        assert!(matches!(
            decode_write_request(&not_proto, 1 << 20),
            Err(ModelError::Protobuf { .. })
        ));
        let no_name = encode_write_request(&[SeriesSamples {
            labels: Labels::from_pairs([("job", "a")]),
            samples: vec![Sample::new(1, 1.0)],
        }]);
        assert!(matches!(
            decode_write_request(&no_name, 1 << 20),
            Err(ModelError::MissingMetricName { .. })
        ));
    }
}
