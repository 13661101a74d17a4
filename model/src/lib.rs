//! The data model shared by every fleetwatch crate: label sets, samples,
//! label matchers, a stable series hash, and the wire codecs (remote write,
//! snappy, the text exposition format). This crate does no I/O.

pub mod duration;
pub mod exposition;
pub mod labels;
pub mod loki;
pub mod matcher;
pub mod prompb;
pub mod remote_write;
pub mod sample;
pub mod snappy;

pub use labels::{is_valid_label_name, is_valid_metric_name, Label, Labels, SeriesHash};
pub use matcher::{MatchOp, Matcher};
pub use sample::{is_stale_nan, Sample, STALE_NAN, STALE_NAN_BITS};

/// The label that carries a series' metric name.
pub const METRIC_NAME: &str = "__name__";

/// Errors raised while building or decoding model values.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ModelError {
    /// A label name does not match `[a-zA-Z_][a-zA-Z0-9_]*`.
    #[error("invalid label name {name:?}")]
    InvalidLabelName {
        /// The offending name.
        name: String,
    },
    /// A metric name does not match `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    #[error("invalid metric name {name:?}")]
    InvalidMetricName {
        /// The offending name.
        name: String,
    },
    /// The same label name appears twice in one label set.
    #[error("duplicate label name {name:?}")]
    DuplicateLabel {
        /// The repeated name.
        name: String,
    },
    /// A label has an empty value; Prometheus treats that as an absent label.
    #[error("empty value for label {name:?}")]
    EmptyLabelValue {
        /// The label whose value is empty.
        name: String,
    },
    /// A series has no `__name__` label.
    #[error("series {labels} has no metric name (__name__ label)")]
    MissingMetricName {
        /// The series' labels, rendered.
        labels: String,
    },
    /// A regular expression in a matcher does not compile.
    #[error("invalid regular expression {pattern:?}: {reason}")]
    InvalidRegex {
        /// The pattern as given.
        pattern: String,
        /// Why it failed to compile.
        reason: String,
    },
    /// A duration is not in Prometheus syntax.
    #[error("invalid duration {input:?}: expected a Prometheus duration such as 15s, 1m30s or 2h")]
    InvalidDuration {
        /// The text as given.
        input: String,
    },
    /// A snappy body is malformed.
    #[error("body is not valid snappy block data: {reason}")]
    Snappy {
        /// The decoder's complaint.
        reason: String,
    },
    /// A body or declared length is larger than allowed.
    #[error("{what} of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Which size was checked (body, declared decompressed length).
        what: &'static str,
        /// The size seen.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A well-formed protobuf request breaks its protocol's rules (remote
    /// write 2.0: a symbol reference out of range, an odd number of label
    /// references, a series without labels).
    #[error("invalid {message}: {reason}")]
    InvalidRequest {
        /// The message type.
        message: &'static str,
        /// What rule is broken, and where.
        reason: String,
    },
    /// A protobuf message is malformed.
    #[error("body is not a valid protobuf {message}: {reason}")]
    Protobuf {
        /// The message type expected.
        message: &'static str,
        /// The decoder's complaint.
        reason: String,
    },
}
