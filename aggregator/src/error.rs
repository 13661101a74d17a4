//! Errors of the hub, and their mapping to HTTP status codes and
//! Prometheus's error types — in one place.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// Errors starting or configuring the hub.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The configuration is invalid.
    #[error("config {path}{}: {reason}", line.map(|l| format!(" line {l}")).unwrap_or_default())]
    Config {
        /// The config file.
        path: String,
        /// The line, where known.
        line: Option<usize>,
        /// What is wrong.
        reason: String,
    },
    /// Storage failed to open.
    #[error("opening storage: {0}")]
    Storage(#[from] fleetwatch_storage::StorageError),
    /// The listener failed.
    #[error("serving http: {0}")]
    Io(#[from] std::io::Error),
}

/// Prometheus API error types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    /// Bad request parameters or query (400).
    BadData,
    /// The query failed while running (422).
    Execution,
    /// The query ran out of time (503).
    Timeout,
    /// The server cannot serve now (503).
    Unavailable,
    /// Something broke inside (500).
    Internal,
}

impl ErrorType {
    fn as_str(self) -> &'static str {
        match self {
            Self::BadData => "bad_data",
            Self::Execution => "execution",
            Self::Timeout => "timeout",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Self::BadData => StatusCode::BAD_REQUEST,
            Self::Execution => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Timeout | Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Maps the query engine's error type names.
    pub fn from_engine(name: &str) -> Self {
        match name {
            "bad_data" => Self::BadData,
            "timeout" => Self::Timeout,
            "execution" => Self::Execution,
            _ => Self::Internal,
        }
    }
}

/// An error answered in Prometheus's JSON envelope:
/// `{"status":"error","errorType":"...","error":"..."}`.
#[derive(Debug)]
pub struct ApiError {
    /// The error type (decides the status code).
    pub kind: ErrorType,
    /// The message for the client.
    pub message: String,
}

impl ApiError {
    /// A `bad_data` error.
    pub fn bad_data(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorType::BadData,
            message: message.into(),
        }
    }

    /// An `internal` error; the detail is logged, not sent.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self {
            kind: ErrorType::Internal,
            message: "internal error".to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            json!({"status": "error", "errorType": self.kind.as_str(), "error": self.message});
        (self.kind.status(), Json(body)).into_response()
    }
}

/// An error on the write path: plain text, as Prometheus's receiver answers.
#[derive(Debug)]
pub struct WriteError {
    /// HTTP status: 4xx means do not retry, 5xx/429 retry.
    pub status: StatusCode,
    /// What was wrong.
    pub message: String,
}

impl WriteError {
    /// A 400 with `message`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
}

impl IntoResponse for WriteError {
    fn into_response(self) -> Response {
        (self.status, format!("{}\n", self.message)).into_response()
    }
}
