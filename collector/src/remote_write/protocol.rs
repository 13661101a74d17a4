//! The protocol side of one endpoint: encoding a batch as the configured
//! message, the request headers that name it, and what a 2.0 receiver's
//! answer says it wrote.

use fleetwatch_model::remote_write::v2::{
    encode_write_request_v2, CONTENT_TYPE_V2, SAMPLES_WRITTEN, VERSION_V2,
};
use fleetwatch_model::remote_write::{
    encode_write_request, SeriesSamples, CONTENT_TYPE_V1, VERSION_V1,
};

use crate::config::ProtobufMessage;

impl ProtobufMessage {
    /// Encodes `series` as a snappy-compressed body of this message.
    pub fn encode(self, series: &[SeriesSamples]) -> Vec<u8> {
        match self {
            Self::V1 => encode_write_request(series),
            Self::V2 => encode_write_request_v2(series),
        }
    }

    /// The request's `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::V1 => CONTENT_TYPE_V1,
            Self::V2 => CONTENT_TYPE_V2,
        }
    }

    /// The request's `X-Prometheus-Remote-Write-Version`.
    pub fn version(self) -> &'static str {
        match self {
            Self::V1 => VERSION_V1,
            Self::V2 => VERSION_V2,
        }
    }

    /// How many samples a 2xx answer says were written: `None` for 1.0,
    /// whose receivers do not say. A 2.0 answer without a readable
    /// `X-Prometheus-Remote-Write-Samples-Written` counts as 0, as
    /// Prometheus counts it: a receiver that understands only 1.0 and
    /// ignores the content type answers 2xx having read an empty request.
    pub fn samples_written(self, headers: &reqwest::header::HeaderMap) -> Option<u64> {
        match self {
            Self::V1 => None,
            Self::V2 => Some(
                headers
                    .get(SAMPLES_WRITTEN)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetwatch_model::remote_write::decode_write_request;
    use fleetwatch_model::remote_write::v2::decode_write_request_v2;
    use fleetwatch_model::{Labels, Sample};
    use reqwest::header::{HeaderMap, HeaderValue};

    #[test]
    fn encodes_per_message_and_reads_written_counts() {
        let series = vec![SeriesSamples {
            labels: Labels::from_pairs([("__name__", "up"), ("job", "a")]),
            samples: vec![Sample::new(1000, 1.0)],
        }];
        let v1 = ProtobufMessage::V1.encode(&series);
        assert_eq!(decode_write_request(&v1, 1 << 20).expect("1.0"), series);
        let v2 = ProtobufMessage::V2.encode(&series);
        assert_eq!(
            decode_write_request_v2(&v2, 1 << 20).expect("2.0").series,
            series
        );
        assert_eq!(
            ProtobufMessage::V2.content_type(),
            "application/x-protobuf;proto=io.prometheus.write.v2.Request"
        );
        assert_eq!(ProtobufMessage::V2.version(), "2.0.0");
        assert_eq!(ProtobufMessage::V1.version(), "0.1.0");

        let mut headers = HeaderMap::new();
        assert_eq!(ProtobufMessage::V1.samples_written(&headers), None);
        assert_eq!(ProtobufMessage::V2.samples_written(&headers), Some(0));
        headers.insert(SAMPLES_WRITTEN, HeaderValue::from_static("17"));
        assert_eq!(ProtobufMessage::V2.samples_written(&headers), Some(17));
        headers.insert(SAMPLES_WRITTEN, HeaderValue::from_static("many"));
        assert_eq!(ProtobufMessage::V2.samples_written(&headers), Some(0));
    }
}
