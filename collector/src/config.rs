//! The collector's YAML config, in Prometheus's shapes and with Prometheus's
//! defaults: `global`, `scrape_configs` and `remote_write`.

mod bytesize;
mod duration;
mod http_client;
mod kubernetes_sd;
mod logs;
mod protobuf_message;
mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use http_client::with_http_client_keys;

pub use bytesize::ByteSize;
pub use duration::PromDuration;
pub use http_client::{Authorization, BasicAuth, HttpClientConfig, Secret, TlsConfig, TlsVersion};
pub use kubernetes_sd::{KubernetesRole, KubernetesSdConfig, NamespaceDiscovery, SelectorConfig};
pub use logs::{LogFormat, LogsConfig, DEFAULT_LOG_GLOB};
pub use protobuf_message::ProtobufMessage;

pub use crate::relabel::{RelabelAction, RelabelConfig};

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
    /// Where the remote-write queues live on disk.
    #[serde(default)]
    pub storage: StorageConfig,
    /// Log files tailed and pushed to the hub's Loki endpoint (none if absent).
    #[serde(default)]
    pub logs: Option<LogsConfig>,
}

/// The `storage` section: the disk-backed remote-write queues.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// The collector's data directory; each endpoint queues under
    /// `<path>/queue/<name>`. The `--data-dir` flag overrides it. Without
    /// either (library use), queues are in memory.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// The disk budget of all queues together (default `1GB`), split evenly
    /// between the endpoints. When a queue is full its oldest data is dropped.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: ByteSize,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            path: None,
            max_bytes: default_max_bytes(),
        }
    }
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

with_http_client_keys! {
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
    /// When false (default), an external label replaces a different value
    /// of the same label on a series, and the series' value is kept as
    /// `exported_<name>`; when true, the series' value wins and the external
    /// label is only added where the series has none.
    #[serde(default)]
    pub honor_external_labels: bool,
    /// Fixed lists of targets.
    #[serde(default)]
    pub static_configs: Vec<StaticConfig>,
    /// Files listing target groups, re-read when they change.
    #[serde(default)]
    pub file_sd_configs: Vec<FileSdConfig>,
    /// Targets discovered from the Kubernetes API, kept current by watches.
    #[serde(default)]
    pub kubernetes_sd_configs: Vec<KubernetesSdConfig>,
    /// Rules applied to each target's labels before scraping (with
    /// `__address__`, `__scheme__`, `__metrics_path__`, `__param_<name>`,
    /// `__scrape_interval__`, `__scrape_timeout__`; labels starting with
    /// `__` are removed afterwards).
    #[serde(default)]
    pub relabel_configs: Vec<RelabelConfig>,
    /// Rules applied to each scraped series (after target labels are
    /// merged, before external labels).
    #[serde(default)]
    pub metric_relabel_configs: Vec<RelabelConfig>,
    /// More samples than this after metric relabeling fail the scrape
    /// (0 = no limit).
    #[serde(default)]
    pub sample_limit: u64,
    /// More labels than this on a series fail the scrape (0 = no limit).
    #[serde(default)]
    pub label_limit: u64,
    /// A label name longer than this fails the scrape (0 = no limit).
    #[serde(default)]
    pub label_name_length_limit: u64,
    /// A label value longer than this fails the scrape (0 = no limit).
    #[serde(default)]
    pub label_value_length_limit: u64,
    /// A (decompressed) body larger than this fails the scrape (0 = only
    /// the collector's hard maximum).
    #[serde(default)]
    pub body_size_limit: ByteSize,
}
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

/// One entry of `file_sd_configs`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSdConfig {
    /// Files (YAML or JSON); the last path component may use `*` and `?`.
    pub files: Vec<String>,
    /// Re-read files at least this often even if they look unchanged
    /// (default `5m`); changed files are noticed within seconds.
    #[serde(default = "default_refresh_interval")]
    pub refresh_interval: PromDuration,
}

fn default_refresh_interval() -> PromDuration {
    PromDuration::from_secs(300)
}

/// One entry of `static_configs`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    /// Target addresses as `host:port`.
    #[serde(default)]
    pub targets: Vec<String>,
    /// Labels added to every series of these targets.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

with_http_client_keys! {
/// One entry of `remote_write`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteWriteConfig {
    /// The endpoint, e.g. `http://hub:9190/api/v1/write`.
    pub url: String,
    /// A name for the endpoint, unique among the endpoints; names its queue
    /// directory (default: derived from the URL). `[A-Za-z0-9_-]+`.
    #[serde(default)]
    pub name: Option<String>,
    /// Timeout of one request (default `30s`).
    #[serde(default = "default_remote_timeout")]
    pub remote_timeout: PromDuration,
    /// Queueing and batching.
    #[serde(default)]
    pub queue_config: QueueConfig,
    /// Rules applied to every series sent to this endpoint (after the
    /// external labels).
    #[serde(default)]
    pub write_relabel_configs: Vec<RelabelConfig>,
    /// `prometheus.WriteRequest` (remote write 1.0, default) or
    /// `io.prometheus.write.v2.Request` (2.0).
    #[serde(default)]
    pub protobuf_message: ProtobufMessage,
}
}

impl RemoteWriteConfig {
    /// The name of the endpoint's queue directory: `name` if set, else
    /// `url-` and a stable hash of the URL.
    pub fn queue_name(&self) -> String {
        match &self.name {
            Some(n) => n.clone(),
            None => {
                // FNV-1a: stable across runs and builds.
                let mut h: u64 = 0xcbf2_9ce4_8422_2325;
                for b in self.url.as_bytes() {
                    h ^= u64::from(*b);
                    h = h.wrapping_mul(0x0000_0100_0000_01b3);
                }
                format!("url-{h:016x}")
            }
        }
    }
}

/// `remote_write[].queue_config`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// Samples held in memory for this endpoint before scraping waits
    /// (default 10000). Only for in-memory queues; a disk queue is bounded
    /// by `storage.max_bytes`.
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
    /// Fewest concurrent senders (default 1).
    #[serde(default = "default_min_shards")]
    pub min_shards: usize,
    /// Most concurrent senders when a backlog builds up (default 8).
    #[serde(default = "default_max_shards")]
    pub max_shards: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            capacity: default_capacity(),
            max_samples_per_send: default_max_samples_per_send(),
            batch_send_deadline: default_batch_send_deadline(),
            min_backoff: default_min_backoff(),
            max_backoff: default_max_backoff(),
            min_shards: default_min_shards(),
            max_shards: default_max_shards(),
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
pub(crate) fn default_true() -> bool {
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
fn default_min_shards() -> usize {
    1
}
fn default_max_shards() -> usize {
    8
}
fn default_max_bytes() -> ByteSize {
    ByteSize(1 << 30)
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
        let mut cfg = parse_yaml(&text, Some(path))?;
        http_client::resolve_paths(&mut cfg, path.parent().unwrap_or(Path::new("")));
        Ok(cfg)
    }

    /// Checks everything serde cannot: unique non-empty job names, `host:port`
    /// targets, timeouts not above intervals, parseable URLs, valid label names.
    pub fn validate(&self) -> Result<(), CollectorError> {
        validate::validate(self)?;
        self.logs.as_ref().map_or(Ok(()), LogsConfig::validate)
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
