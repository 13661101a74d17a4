//! LogQL (the subset fleetwatch serves) over the log store: stream
//! selectors, line filters (`|=`, `!=`, `|~`, `!~`), `json` / `logfmt`
//! parsers, label filters, `line_format`, and the metric queries
//! `count_over_time`, `rate`, `bytes_over_time`, `bytes_rate` under `sum`,
//! `count`, `avg`, `max`, `min`, `topk`, `bottomk` with `by` / `without`.
//!
//! The stream selector and the literal `|=` filters are answered by the
//! store's index (never a full scan when the selector narrows); the rest
//! of the pipeline runs per candidate entry. Log queries stop as soon as
//! `limit` entries are found in the requested direction.
//!
//! ```
//! use fleetwatch_query::logql::{parse, ast::Expr};
//! assert!(matches!(parse(r#"{app="api"} |= "error""#), Ok(Expr::Log(_))));
//! ```

pub mod ast;
mod eval;
mod json;
mod parser;
mod pipeline;

pub use eval::{
    query_instant, query_range, LogqlParams, QueryOutput, Sample, Series, StreamEntries,
};
pub use parser::parse;
pub use pipeline::LabelMap;

use fleetwatch_storage::logs::LogError;

/// Errors of LogQL parsing and evaluation.
#[derive(Debug, thiserror::Error)]
pub enum LogqlError {
    /// The query does not parse.
    #[error("{message}")]
    Parse {
        /// Loki-style message.
        message: String,
    },
    /// The query or its parameters cannot be evaluated as asked.
    #[error("{message}")]
    BadData {
        /// What is wrong.
        message: String,
    },
    /// The log store failed.
    #[error("log store: {0}")]
    Store(#[from] LogError),
}

impl LogqlError {
    /// `bad_data` for the client's mistakes, `internal` for store failures.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Parse { .. } | Self::BadData { .. } => "bad_data",
            Self::Store(_) => "internal",
        }
    }
}
