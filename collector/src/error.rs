//! The collector's one error type.

use std::path::PathBuf;

/// Everything that can go wrong while loading a config or running the
/// collector. Each variant carries enough context to act on it.
#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    /// The config file could not be read.
    #[error("cannot read collector config {path}: {source}")]
    ReadConfig {
        /// The file that was read.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The config is not valid YAML or does not have the expected shape.
    #[error("invalid collector config{}: {message}", fmt_path(.path))]
    ParseConfig {
        /// The file, when the config came from one.
        path: Option<PathBuf>,
        /// 1-based line of the problem, when the YAML parser knows it.
        line: Option<usize>,
        /// 1-based column of the problem, when the YAML parser knows it.
        column: Option<usize>,
        /// The parser's message (it names the line and column too).
        message: String,
    },
    /// The config parsed but a value is not acceptable.
    #[error("invalid collector config: {field}: {reason}")]
    InvalidConfig {
        /// Where in the config, e.g. `scrape_configs[1].static_configs[0].targets[2]`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An HTTP client could not be built.
    #[error("cannot build http client for {purpose}: {reason}")]
    HttpClient {
        /// What the client was for (scraping, remote write to a URL).
        purpose: String,
        /// The underlying error.
        reason: String,
    },
    /// A scrape failed (connection, timeout, status or body).
    #[error("scrape of {url} failed: {reason}")]
    Scrape {
        /// The scraped URL.
        url: String,
        /// Why it failed.
        reason: String,
    },
    /// A remote-write queue could not be opened or written.
    #[error(transparent)]
    Queue(#[from] crate::queue::QueueError),
    /// A background task ended abnormally.
    #[error("collector task {task} failed: {reason}")]
    Task {
        /// Which task.
        task: String,
        /// The panic or join error.
        reason: String,
    },
}

fn fmt_path(path: &Option<PathBuf>) -> String {
    match path {
        Some(p) => format!(" {}", p.display()),
        None => String::new(),
    }
}

impl CollectorError {
    /// An [`CollectorError::InvalidConfig`] for `field`.
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidConfig {
            field: field.into(),
            reason: reason.into(),
        }
    }
}
