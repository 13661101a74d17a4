//! Remote write 2.0 messages (`io.prometheus.write.v2`), matching
//! `spec/prompb/write_v2_types.proto` field for field, hand-derived with
//! `prost` like the 1.0 messages. Strings are interned: every `*_ref` is an
//! index into [`Request::symbols`], whose first entry is the empty string.

/// `io.prometheus.write.v2.Request`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Request {
    /// The de-duplicated strings every ref points into; `symbols[0] == ""`.
    #[prost(string, repeated, tag = "4")]
    pub symbols: Vec<String>,
    /// The series.
    #[prost(message, repeated, tag = "5")]
    pub timeseries: Vec<TimeSeries>,
}

/// `io.prometheus.write.v2.TimeSeries`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// Label name and value refs, alternating; sorted by name.
    #[prost(uint32, repeated, tag = "1")]
    pub labels_refs: Vec<u32>,
    /// Float samples in time order. The 1.0 `Sample` has the same field
    /// numbers (value 1, timestamp 2); 2.0's optional `start_timestamp` (3)
    /// is neither written nor read.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<super::Sample>,
    /// Native histogram samples (a series has samples or histograms).
    #[prost(message, repeated, tag = "3")]
    pub histograms: Vec<Histogram>,
    /// Exemplars attached to the series' samples.
    #[prost(message, repeated, tag = "4")]
    pub exemplars: Vec<Exemplar>,
    /// The metric's type, help and unit.
    #[prost(message, optional, tag = "5")]
    pub metadata: Option<Metadata>,
}

/// `io.prometheus.write.v2.Exemplar`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Exemplar {
    /// Label refs, alternating name and value.
    #[prost(uint32, repeated, tag = "1")]
    pub labels_refs: Vec<u32>,
    /// The exemplar's value.
    #[prost(double, tag = "2")]
    pub value: f64,
    /// Milliseconds since the epoch.
    #[prost(int64, tag = "3")]
    pub timestamp: i64,
}

/// `io.prometheus.write.v2.Metadata`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Metadata {
    /// `MetricType`: 0 unspecified, 1 counter, 2 gauge, 3 histogram,
    /// 4 gaugehistogram, 5 summary, 6 info, 7 stateset (the 1.0 numbers).
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    /// Ref of the HELP text (0, the empty string, when there is none).
    #[prost(uint32, tag = "3")]
    pub help_ref: u32,
    /// Ref of the unit (0 when there is none).
    #[prost(uint32, tag = "4")]
    pub unit_ref: u32,
}

/// `io.prometheus.write.v2.Histogram`, the fields of an integer
/// exponential histogram (the float variants `count_float` 2,
/// `zero_count_float` 7, `*_counts` 10 and 13 and `custom_values` 16 are
/// not modelled; the hub does not store native histograms, it only counts
/// them).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Histogram {
    /// Count of observations (`count_int`).
    #[prost(uint64, tag = "1")]
    pub count_int: u64,
    /// Sum of observations.
    #[prost(double, tag = "3")]
    pub sum: f64,
    /// Bucket schema (-4..=8, or -53 for custom buckets).
    #[prost(sint32, tag = "4")]
    pub schema: i32,
    /// Breadth of the zero bucket.
    #[prost(double, tag = "5")]
    pub zero_threshold: f64,
    /// Count in the zero bucket (`zero_count_int`).
    #[prost(uint64, tag = "6")]
    pub zero_count_int: u64,
    /// Positive bucket spans.
    #[prost(message, repeated, tag = "11")]
    pub positive_spans: Vec<BucketSpan>,
    /// Positive bucket count deltas.
    #[prost(sint64, repeated, tag = "12")]
    pub positive_deltas: Vec<i64>,
    /// Milliseconds since the epoch.
    #[prost(int64, tag = "15")]
    pub timestamp: i64,
}

/// `io.prometheus.write.v2.BucketSpan`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BucketSpan {
    /// Gap to the previous span (or the start of the first).
    #[prost(sint32, tag = "1")]
    pub offset: i32,
    /// Number of consecutive buckets.
    #[prost(uint32, tag = "2")]
    pub length: u32,
}
