//! The collector's YAML config, in Prometheus's shapes and with Prometheus's
//! defaults: `global`, `scrape_configs` and `remote_write`.

mod duration;
mod validate;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

pub use duration::PromDuration;

use crate::CollectorError;

/// The whole collector config.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectorConfig {
    /// Defaults for every job, and the external labels.
    #[serde(default)]
    pub global: GlobalConfig,
    /// The scrape jobs.
    #[serde(default)]
    pub scrape_configs: Vec<ScrapeConfig>,
    /// Where scraped samples are shipped.
    #[serde(default)]
    pub remote_write: Vec<RemoteWriteConfig>,
}

/// The `global` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalConfig {
    /// How often targets are scraped unless a job says otherwise (default `1m`).
    #[serde(default = "default_scrape_interval")]
    pub scrape_interval: PromDuration,
    /// How long a scrape may take unless a job says otherwise (default `10s`).
    #[serde(default = "default_scrape_timeout")]
    pub scrape_timeout: PromDuration,
    /// Labels added to every shipped series; they always win over scraped
    /// labels of the same name (the hub tells clusters apart by them).
    #[serde(default)]
    pub external_labels: BTreeMap<String, String>,
}

impl Default for GlobalConfig {
    fn default() -> Self {
        Self {
            scrape_interval: default_scrape_interval(),
            scrape_timeout: default_scrape_timeout(),
            external_labels: BTreeMap::new(),
        }
    }
}

/// The URL scheme used to scrape a job's targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// Plain HTTP (the default).
    #[default]
    Http,
    /// HTTP over TLS.
    Https,
}

impl Scheme {
    /// `http` or `https`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// One entry of `scrape_configs`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrapeConfig {
    /// The job name; becomes the `job` label. Unique and non-empty.
    pub job_name: String,
    /// Overrides `global.scrape_interval`.
    #[serde(default)]
    pub scrape_interval: Option<PromDuration>,
    /// Overrides `global.scrape_timeout`.
    #[serde(default)]
    pub scrape_timeout: Option<PromDuration>,
    /// The HTTP path scraped (default `/metrics`).
    #[serde(default = "default_metrics_path")]
    pub metrics_path: String,
    /// `http` (default) or `https`.
    #[serde(default)]
    pub scheme: Scheme,
    /// URL query parameters, e.g. `'match[]': ['{job=~"kubevirt-.*"}']`.
    #[serde(default)]
    pub params: BTreeMap<String, Vec<String>>,
    /// When true, scraped labels win over target labels (`job`, `instance`,
    /// static labels); when false (default) a clashing scraped label is
    /// renamed `exported_<name>`.
    #[serde(default)]
    pub honor_labels: bool,
    /// When true (default), timestamps exposed by the target are kept.
    #[serde(default = "default_true")]
    pub honor_timestamps: bool,
    /// Fixed lists of targets.
    #[serde(default)]
    pub static_configs: Vec<StaticConfig>,
}

impl ScrapeConfig {
    /// The interval in force for this job: its own, else the global one.
    pub fn effective_interval(&self, global: &GlobalConfig) -> PromDuration {
        self.scrape_interval.unwrap_or(global.scrape_interval)
    }

    /// The timeout in force for this job, as Prometheus computes it: its
    /// own; else the global timeout, but never more than the job's interval.
    pub fn effective_timeout(&self, global: &GlobalConfig) -> PromDuration {
        match self.scrape_timeout {
            Some(t) => t,
            None => global.scrape_timeout.min(self.effective_interval(global)),
        }
    }
}

/// One entry of `static_configs`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    /// Target addresses as `host:port`.
    #[serde(default)]
    pub targets: Vec<String>,
    /// Labels added to every series of these targets.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// One entry of `remote_write`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteWriteConfig {
    /// The endpoint, e.g. `http://hub:9190/api/v1/write`.
    pub url: String,
    /// Timeout of one request (default `30s`).
    #[serde(default = "default_remote_timeout")]
    pub remote_timeout: PromDuration,
    /// Queueing and batching.
    #[serde(default)]
    pub queue_config: QueueConfig,
}

/// `remote_write[].queue_config`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// Samples held in memory for this endpoint before scraping waits
    /// (default 10000).
    #[serde(default = "default_capacity")]
    pub capacity: usize,
    /// Most samples in one request (default 2000).
    #[serde(default = "default_max_samples_per_send")]
    pub max_samples_per_send: usize,
    /// Longest a sample waits for a batch to fill (default `5s`).
    #[serde(default = "default_batch_send_deadline")]
    pub batch_send_deadline: PromDuration,
    /// First retry delay (default `30ms`), doubled per retry.
    #[serde(default = "default_min_backoff")]
    pub min_backoff: PromDuration,
    /// Longest retry delay (default `5s`).
    #[serde(default = "default_max_backoff")]
    pub max_backoff: PromDuration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            capacity: default_capacity(),
            max_samples_per_send: default_max_samples_per_send(),
            batch_send_deadline: default_batch_send_deadline(),
            min_backoff: default_min_backoff(),
            max_backoff: default_max_backoff(),
        }
    }
}

fn default_scrape_interval() -> PromDuration {
    PromDuration::from_secs(60)
}
fn default_scrape_timeout() -> PromDuration {
    PromDuration::from_secs(10)
}
fn default_metrics_path() -> String {
    "/metrics".to_string()
}
fn default_true() -> bool {
    true
}
fn default_remote_timeout() -> PromDuration {
    PromDuration::from_secs(30)
}
fn default_capacity() -> usize {
    10_000
}
fn default_max_samples_per_send() -> usize {
    2_000
}
fn default_batch_send_deadline() -> PromDuration {
    PromDuration::from_secs(5)
}
fn default_min_backoff() -> PromDuration {
    PromDuration::from_millis(30)
}
fn default_max_backoff() -> PromDuration {
    PromDuration::from_secs(5)
}

impl CollectorConfig {
    /// Parses a config from YAML text (not validated; see [`Self::validate`]).
    pub fn from_yaml_str(s: &str) -> Result<Self, CollectorError> {
        parse_yaml(s, None)
    }

    /// Reads and parses a config file (not validated; see [`Self::validate`]).
    /// Errors name the file, and the line and column when known.
    pub fn load(path: &Path) -> Result<Self, CollectorError> {
        let text = std::fs::read_to_string(path).map_err(|source| CollectorError::ReadConfig {
            path: path.to_path_buf(),
            source,
        })?;
        parse_yaml(&text, Some(path))
    }

    /// Checks everything serde cannot: unique non-empty job names, `host:port`
    /// targets, timeouts not above intervals, parseable URLs, valid label names.
    pub fn validate(&self) -> Result<(), CollectorError> {
        validate::validate(self)
    }
}

fn parse_yaml(s: &str, path: Option<&Path>) -> Result<CollectorConfig, CollectorError> {
    // An empty document is an empty config, as in Prometheus.
    if s.trim().is_empty() {
        return Ok(CollectorConfig::default());
    }
    serde_yaml::from_str(s).map_err(|e| {
        let loc = e.location();
        CollectorError::ParseConfig {
            path: path.map(Path::to_path_buf),
            line: loc.as_ref().map(|l| l.line()),
            column: loc.as_ref().map(|l| l.column()),
            message: e.to_string(),
        }
    })
}

#[cfg(test)]
mod tests;
