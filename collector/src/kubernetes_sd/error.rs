//! What can go wrong talking to the Kubernetes API.

use std::path::PathBuf;

/// A discovery failure; the watch logs it and retries with backoff.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// No way to reach an API server was configured or found.
    #[error("no Kubernetes API server: {0}")]
    NoApiServer(String),
    /// A file (kubeconfig, token, certificate) could not be read.
    #[error("cannot read {path}: {source}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The kubeconfig is malformed or uses something unsupported.
    #[error("kubeconfig {path}: {reason}")]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The HTTP client could not be built (bad certificate or key).
    #[error("cannot build the Kubernetes API client: {0}")]
    Client(String),
    /// A request failed at the HTTP level.
    #[error("{what}: {reason}")]
    Http {
        /// The request, e.g. `list pods`.
        what: String,
        /// Why it failed.
        reason: String,
    },
    /// The API answered with an error status.
    #[error("{what}: HTTP {status}: {message}")]
    Status {
        /// The request.
        what: String,
        /// The HTTP status.
        status: u16,
        /// The body's message (truncated).
        message: String,
    },
    /// The resource version is too old (410 Gone): a relist is needed.
    #[error("{what}: resource version expired (410 Gone)")]
    Gone {
        /// The request.
        what: String,
    },
    /// A response was larger than allowed.
    #[error("{what}: response larger than {limit} bytes")]
    TooLarge {
        /// The request.
        what: String,
        /// The limit.
        limit: usize,
    },
    /// A response did not parse.
    #[error("{what}: invalid response: {reason}")]
    Decode {
        /// The request.
        what: String,
        /// The parser's message.
        reason: String,
    },
}
