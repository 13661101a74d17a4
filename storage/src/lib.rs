//! Metrics storage for fleetwatch: an in-memory head backed by a
//! write-ahead log (fsynced before a write is acknowledged), and the
//! [`Queryable`] trait the query engine reads through.
//!
//! The columnar block engine (Parquet) is built on top of this in a later
//! stage; the traits here stay the boundary.

pub mod block;
pub mod compact;
pub mod db;
pub mod head;
pub mod logs;
pub mod wal;

pub use db::{Db, DbOptions, MaintenanceReport};
pub use head::{CheckpointReport, CutSet, Head, HeadCut, HeadOptions, PreparedBatch, SeriesKey};

use fleetwatch_model::{Labels, Matcher, Sample};

/// Errors from the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// An I/O operation on the data directory failed.
    #[error("storage i/o on {path}: {source}")]
    Io {
        /// The file or directory involved.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A sample at the same timestamp as a stored one but a different value.
    #[error(
        "duplicate sample for timestamp {timestamp_ms} with a different value in series {series}"
    )]
    DuplicateTimestamp {
        /// The series, rendered.
        series: String,
        /// The conflicting timestamp.
        timestamp_ms: i64,
    },
    /// A sample older than the out-of-order window allows.
    #[error("sample at {timestamp_ms} is too old for series {series} (newest is {newest_ms}, out-of-order window {window_ms} ms)")]
    OutOfOrder {
        /// The series, rendered.
        series: String,
        /// The rejected timestamp.
        timestamp_ms: i64,
        /// The series' newest timestamp.
        newest_ms: i64,
        /// The configured window.
        window_ms: i64,
    },
    /// The storage is shutting down or its writer failed.
    #[error("storage unavailable: {reason}")]
    Unavailable {
        /// Why.
        reason: String,
    },
}

impl StorageError {
    /// True when the error is the client's fault (the request should not be
    /// retried): maps to HTTP 400.
    pub fn is_bad_data(&self) -> bool {
        matches!(
            self,
            Self::DuplicateTimestamp { .. } | Self::OutOfOrder { .. }
        )
    }
}

/// One series and its samples inside a time range, in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesData {
    /// The series' labels.
    pub labels: Labels,
    /// Samples with `start_ms <= t <= end_ms`, ascending by time.
    pub samples: Vec<Sample>,
}

/// Read access to stored series. Implemented by the head (and later by
/// blocks and the merged view); the PromQL engine evaluates over it.
pub trait Queryable: Send + Sync {
    /// Series matching all `matchers` with their samples in
    /// `[start_ms, end_ms]` (both inclusive). Series with no samples in the
    /// range are omitted. Order of series is by labels.
    fn select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<SeriesData>, StorageError>;

    /// Label sets of series matching `matchers` that have samples in the
    /// range. An empty `matchers` slice selects every series.
    fn series(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<Labels>, StorageError>;

    /// Sorted, unique label names of series matching `matchers` in range
    /// (all series when `matchers` is empty).
    fn label_names(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, StorageError>;

    /// Sorted, unique values of label `name` among series matching
    /// `matchers` in range (all series when `matchers` is empty).
    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, StorageError>;
}
