//! Errors returned by the query engine, with the error types the
//! Prometheus HTTP API reports for them.

use fleetwatch_storage::StorageError;

/// An error from parsing or evaluating a PromQL query.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The query text does not parse, or the parsed expression is invalid.
    #[error("{}", render_parse(.message, .position))]
    Parse {
        /// The parser's message (Prometheus wording where available).
        message: String,
        /// `line:column` of the error, when the parser reports one.
        position: Option<String>,
    },
    /// A request parameter or the expression is not acceptable (wrong
    /// result type for a range query, too many points, bad selector...).
    #[error("{message}")]
    BadData {
        /// What is wrong.
        message: String,
    },
    /// Evaluation failed (many-to-many matching, duplicate label sets...).
    #[error("{message}")]
    Execution {
        /// What went wrong.
        message: String,
    },
    /// The query ran longer than the configured timeout.
    #[error("query timed out in {stage}")]
    Timeout {
        /// Where the timeout was noticed.
        stage: &'static str,
    },
    /// The query would load more samples than allowed.
    #[error("query processing would load too many samples into memory in {stage}")]
    TooManySamples {
        /// Where the limit was hit.
        stage: &'static str,
    },
    /// Reading from storage failed.
    #[error("storage error: {0}")]
    Storage(#[from] StorageError),
}

fn render_parse(message: &str, position: &Option<String>) -> String {
    match position {
        Some(p) => format!("{p}: parse error: {message}"),
        None => format!("parse error: {message}"),
    }
}

impl QueryError {
    /// The `errorType` the Prometheus HTTP API uses for this error:
    /// `bad_data` for parse and parameter errors, `execution` for
    /// evaluation errors and sample limits, `timeout` for timeouts and
    /// `internal` for storage failures.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Parse { .. } | Self::BadData { .. } => "bad_data",
            Self::Execution { .. } | Self::TooManySamples { .. } => "execution",
            Self::Timeout { .. } => "timeout",
            Self::Storage(_) => "internal",
        }
    }

    /// An execution error with `message`.
    pub(crate) fn exec(message: impl Into<String>) -> Self {
        Self::Execution {
            message: message.into(),
        }
    }

    /// A bad-data error with `message`.
    pub(crate) fn bad(message: impl Into<String>) -> Self {
        Self::BadData {
            message: message.into(),
        }
    }
}

/// Shorthand for results in this crate.
pub type Result<T, E = QueryError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_types() {
        let p = QueryError::Parse {
            message: "unexpected end of input".into(),
            position: Some("1:5".into()),
        };
        assert_eq!(p.error_type(), "bad_data");
        assert_eq!(p.to_string(), "1:5: parse error: unexpected end of input");
        assert_eq!(QueryError::exec("x").error_type(), "execution");
        assert_eq!(
            QueryError::Timeout {
                stage: "query execution"
            }
            .error_type(),
            "timeout"
        );
        let t = QueryError::TooManySamples {
            stage: "query execution",
        };
        assert_eq!(t.error_type(), "execution");
        assert_eq!(
            t.to_string(),
            "query processing would load too many samples into memory in query execution"
        );
    }
}
