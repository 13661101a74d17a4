//! Remote write 1.0 and remote read messages, matching
//! `spec/prompb/types.proto` and `spec/prompb/remote.proto` field for field
//! (hand-derived with `prost` so the build needs no `protoc`). Remote write
//! 2.0's messages are in [`v2`].

pub mod v2;

/// `prometheus.WriteRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    /// The series with their samples.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
    /// Metric metadata (type, help, unit).
    #[prost(message, repeated, tag = "3")]
    pub metadata: Vec<MetricMetadata>,
}

/// `prometheus.TimeSeries` (exemplars and histograms are not decoded yet and
/// are skipped by the decoder).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// Labels, sorted by name in a well-formed request.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// Samples in time order.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    /// Label name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Label value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`.
///
/// Encoded by hand rather than derived: proto3 omits a zero `double`, and
/// prost's derive treats `-0.0` as zero, losing its sign. Go's protobuf
/// (Prometheus) keeps it, and so does this impl: the value is written
/// whenever its bits are not all zero.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    /// The value.
    pub value: f64,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
}

impl PartialEq for Sample {
    fn eq(&self, other: &Self) -> bool {
        self.value.to_bits() == other.value.to_bits() && self.timestamp == other.timestamp
    }
}

impl prost::Message for Sample {
    fn encode_raw(&self, buf: &mut impl prost::bytes::BufMut) {
        if self.value.to_bits() != 0 {
            prost::encoding::double::encode(1, &self.value, buf);
        }
        if self.timestamp != 0 {
            prost::encoding::int64::encode(2, &self.timestamp, buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: prost::encoding::WireType,
        buf: &mut impl prost::bytes::Buf,
        ctx: prost::encoding::DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        match tag {
            1 => prost::encoding::double::merge(wire_type, &mut self.value, buf, ctx),
            2 => prost::encoding::int64::merge(wire_type, &mut self.timestamp, buf, ctx),
            _ => prost::encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        let mut len = 0;
        if self.value.to_bits() != 0 {
            len += prost::encoding::double::encoded_len(1, &self.value);
        }
        if self.timestamp != 0 {
            len += prost::encoding::int64::encoded_len(2, &self.timestamp);
        }
        len
    }

    fn clear(&mut self) {
        *self = Self::default();
    }
}

/// `prometheus.MetricMetadata`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricMetadata {
    /// Metric type (enum `MetricType`).
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    /// Metric family name.
    #[prost(string, tag = "2")]
    pub metric_family_name: String,
    /// HELP text.
    #[prost(string, tag = "4")]
    pub help: String,
    /// Unit.
    #[prost(string, tag = "5")]
    pub unit: String,
}

/// `prometheus.LabelMatcher`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LabelMatcher {
    /// 0 EQ, 1 NEQ, 2 RE, 3 NRE.
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    /// Label name.
    #[prost(string, tag = "2")]
    pub name: String,
    /// Value or pattern.
    #[prost(string, tag = "3")]
    pub value: String,
}

/// `prometheus.Query` (remote read).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Query {
    /// Start, ms.
    #[prost(int64, tag = "1")]
    pub start_timestamp_ms: i64,
    /// End, ms.
    #[prost(int64, tag = "2")]
    pub end_timestamp_ms: i64,
    /// Matchers.
    #[prost(message, repeated, tag = "3")]
    pub matchers: Vec<LabelMatcher>,
}

/// `prometheus.ReadRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReadRequest {
    /// Queries.
    #[prost(message, repeated, tag = "1")]
    pub queries: Vec<Query>,
    /// Accepted response types (0 SAMPLES, 1 STREAMED_XOR_CHUNKS).
    #[prost(int32, repeated, tag = "2")]
    pub accepted_response_types: Vec<i32>,
}

/// `prometheus.QueryResult`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct QueryResult {
    /// Series.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// `prometheus.ReadResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReadResponse {
    /// One result per query.
    #[prost(message, repeated, tag = "1")]
    pub results: Vec<QueryResult>,
}
