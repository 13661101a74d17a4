//! The hub's configuration file (YAML, Prometheus-shaped where a shape
//! exists) and its defaults.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fleetwatch_model::duration::parse_duration_ms;
use serde::{Deserialize, Deserializer};

use crate::HubError;

/// The hub's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HubConfig {
    /// Address to listen on. Default `127.0.0.1:9190`.
    pub listen: String,
    /// Directory for the WAL and blocks. Default `./data`.
    pub data_dir: PathBuf,
    /// Prometheus's `global` section.
    pub global: GlobalConfig,
    /// Storage settings.
    pub storage: StorageConfig,
    /// Query engine settings.
    pub query: QueryConfig,
    /// Request limits.
    pub limits: LimitsConfig,
    /// Log store settings (Loki push and LogQL).
    pub logs: LogsConfig,
    /// Rule files (Prometheus's `rule_files`; globs in the file name; paths
    /// relative to the config file).
    pub rule_files: Vec<String>,
    /// Prometheus's `alerting` section (`alertmanagers`).
    pub alerting: AlertingConfig,
    /// Webhook receivers, each with its own route (fleetwatch's own section).
    pub receivers: Vec<ReceiverConfig>,
    /// Rule evaluation settings (Prometheus's `--rules.*` flags).
    pub rules: RuleSettings,
    /// The URL the hub is reached under (`$externalURL`, generator URLs,
    /// webhook `externalURL`). Default `http://<listen>`.
    pub external_url: Option<String>,
    /// The directory of the config file (relative `rule_files` resolve
    /// against it); the working directory without a file.
    #[serde(skip)]
    pub base_dir: Option<PathBuf>,
    /// The file the config was loaded from: a rule reload (SIGHUP,
    /// `POST /-/reload`) re-reads it.
    #[serde(skip)]
    pub config_file: Option<PathBuf>,
}

/// Prometheus's `alerting` section.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AlertingConfig {
    /// Alertmanagers to send alerts to.
    pub alertmanagers: Vec<AlertmanagerConfig>,
}

/// One entry of `alerting.alertmanagers` (static targets only).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertmanagerConfig {
    /// `static_configs: [{targets: [host:port, ...]}]`.
    pub static_configs: Vec<StaticConfig>,
    /// `http` (default) or `https`.
    pub scheme: String,
    /// Prefix of the API path (default `/`).
    pub path_prefix: String,
    /// Request timeout. Default `10s`.
    #[serde(deserialize_with = "duration_ms")]
    pub timeout: Option<i64>,
    /// Only `v2` is supported (the default).
    pub api_version: String,
}

impl Default for AlertmanagerConfig {
    fn default() -> Self {
        Self {
            static_configs: Vec::new(),
            scheme: "http".to_string(),
            path_prefix: "/".to_string(),
            timeout: Some(10_000),
            api_version: "v2".to_string(),
        }
    }
}

impl AlertmanagerConfig {
    /// The `/api/v2/alerts` URL of every target.
    pub fn urls(&self) -> Vec<String> {
        let prefix = self.path_prefix.trim_matches('/');
        let prefix = if prefix.is_empty() {
            String::new()
        } else {
            format!("/{prefix}")
        };
        self.static_configs
            .iter()
            .flat_map(|s| s.targets.iter())
            .map(|t| format!("{}://{t}{prefix}/api/v2/alerts", self.scheme))
            .collect()
    }
}

/// `static_configs` entry.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct StaticConfig {
    /// `host:port` targets.
    pub targets: Vec<String>,
    /// Labels (accepted for compatibility; unused for Alertmanagers).
    pub labels: BTreeMap<String, String>,
}

/// A webhook receiver posting Alertmanager's webhook JSON, with its route.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverConfig {
    /// Receiver name (`receiver` in the payload).
    pub name: String,
    /// Where to post.
    pub url: String,
    /// Labels to group alerts by (`...`: all labels).
    #[serde(default)]
    pub group_by: Vec<String>,
    /// Wait before a new group's first notification. Default `30s`.
    #[serde(default, deserialize_with = "duration_ms")]
    pub group_wait: Option<i64>,
    /// Wait between notifications of a changed group. Default `5m`.
    #[serde(default, deserialize_with = "duration_ms")]
    pub group_interval: Option<i64>,
    /// Wait before repeating an unchanged notification. Default `4h`.
    #[serde(default, deserialize_with = "duration_ms")]
    pub repeat_interval: Option<i64>,
    /// Alertmanager-style matchers (`severity="warning"`); all must match.
    #[serde(default)]
    pub matchers: Vec<String>,
    /// Notify about resolved alerts too. Default true.
    #[serde(default = "yes")]
    pub send_resolved: bool,
    /// Most alerts per notification (0: all).
    #[serde(default)]
    pub max_alerts: usize,
    /// Request timeout. Default `10s`.
    #[serde(default, deserialize_with = "duration_ms")]
    pub timeout: Option<i64>,
}

fn yes() -> bool {
    true
}

/// Rule evaluation settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuleSettings {
    /// Least wait before a restored alert fires. Default `10m`.
    #[serde(deserialize_with = "duration_ms")]
    pub for_grace_period: Option<i64>,
    /// Longest outage after which `for` state is still restored. Default `1h`.
    #[serde(deserialize_with = "duration_ms")]
    pub for_outage_tolerance: Option<i64>,
    /// How often firing alerts are resent. Default `1m`.
    #[serde(deserialize_with = "duration_ms")]
    pub resend_delay: Option<i64>,
    /// Most alerts waiting per notifier; the oldest are dropped beyond.
    /// Default 10000.
    pub notification_queue_capacity: usize,
}

impl Default for RuleSettings {
    fn default() -> Self {
        Self {
            for_grace_period: Some(600_000),
            for_outage_tolerance: Some(3_600_000),
            resend_delay: Some(60_000),
            notification_queue_capacity: 10_000,
        }
    }
}

/// Prometheus's `global` section.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct GlobalConfig {
    /// Labels added to alerts and federation output.
    pub external_labels: BTreeMap<String, String>,
    /// Rule evaluation interval. Default `1m`.
    #[serde(deserialize_with = "duration_ms")]
    pub evaluation_interval: Option<i64>,
}

/// Storage settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// How far behind a series' newest sample a sample is still accepted.
    /// Default `10m`.
    #[serde(deserialize_with = "duration_ms")]
    pub out_of_order_window: Option<i64>,
    /// How long samples are kept. Default `15d`.
    #[serde(deserialize_with = "duration_ms")]
    pub retention: Option<i64>,
    /// Most bytes of blocks kept; the oldest go first. Default: no limit.
    pub retention_size_bytes: Option<u64>,
    /// Time range of a block cut from the head. Default `2h`.
    #[serde(deserialize_with = "duration_ms")]
    pub block_range: Option<i64>,
    /// Encoding of block values: `decimal` (default: lossless decimal
    /// mantissa and exponent, the smallest on fleet data), `plain` or
    /// `byte_stream_split`.
    pub block_value_encoding: BlockValueEncoding,
    /// zstd level of block files (default 3).
    pub block_zstd_level: i32,
}

/// Encodings of block values a config can choose.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BlockValueEncoding {
    /// Float64, PLAIN, then zstd.
    Plain,
    /// Decimal mantissa and exponent, delta-encoded, then zstd (lossless:
    /// values that do not round-trip keep their float bits).
    #[default]
    Decimal,
    /// Float64, BYTE_STREAM_SPLIT, then zstd.
    ByteStreamSplit,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            out_of_order_window: Some(10 * 60_000),
            retention: Some(15 * 86_400_000),
            retention_size_bytes: None,
            block_range: Some(2 * 3_600_000),
            block_value_encoding: BlockValueEncoding::Decimal,
            block_zstd_level: 3,
        }
    }
}

/// Query engine settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueryConfig {
    /// The lookback delta for instant selectors. Default `5m`.
    #[serde(deserialize_with = "duration_ms")]
    pub lookback_delta: Option<i64>,
    /// Longest a query may run. Default `2m`.
    #[serde(deserialize_with = "duration_ms")]
    pub timeout: Option<i64>,
    /// Most samples one query may load. Default 50,000,000.
    pub max_samples: usize,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            lookback_delta: Some(300_000),
            timeout: Some(120_000),
            max_samples: 50_000_000,
        }
    }
}

/// Request limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest remote-write body accepted, compressed and decompressed,
    /// in bytes. Default 32 MiB.
    pub max_write_body_bytes: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_write_body_bytes: 32 << 20,
        }
    }
}

/// Log store settings (the `logs` section).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogsConfig {
    /// How long log lines are kept (whole hourly partitions are dropped).
    /// Default `15d`.
    #[serde(deserialize_with = "duration_ms")]
    pub retention: Option<i64>,
    /// Most bytes of log partitions kept; the oldest go first. Default: no limit.
    pub retention_size_bytes: Option<u64>,
    /// How far behind its stream's newest line a line is still accepted.
    /// Default `1h`.
    #[serde(deserialize_with = "duration_ms")]
    pub out_of_order_window: Option<i64>,
    /// Longest line accepted, in bytes. Default 256 KiB.
    pub max_line_bytes: usize,
    /// Most labels per stream. Default 15.
    pub max_labels_per_stream: usize,
    /// Most streams per push request. Default 10,000.
    pub max_streams_per_request: usize,
    /// How often pushed lines are committed into the index (they are
    /// durable in the WAL at once). Default `10s`.
    #[serde(deserialize_with = "duration_ms")]
    pub commit_interval: Option<i64>,
}

impl Default for LogsConfig {
    fn default() -> Self {
        Self {
            retention: Some(15 * 86_400_000),
            retention_size_bytes: None,
            out_of_order_window: Some(3_600_000),
            max_line_bytes: 256 << 10,
            max_labels_per_stream: 15,
            max_streams_per_request: 10_000,
            commit_interval: Some(10_000),
        }
    }
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9190".to_string(),
            data_dir: PathBuf::from("./data"),
            global: GlobalConfig::default(),
            storage: StorageConfig::default(),
            query: QueryConfig::default(),
            limits: LimitsConfig::default(),
            logs: LogsConfig::default(),
            rule_files: Vec::new(),
            alerting: AlertingConfig::default(),
            receivers: Vec::new(),
            rules: RuleSettings::default(),
            external_url: None,
            base_dir: None,
            config_file: None,
        }
    }
}

fn duration_ms<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    s.map(|s| parse_duration_ms(&s).map_err(serde::de::Error::custom))
        .transpose()
}

impl HubConfig {
    /// Parses a config from YAML text; `origin` names it in errors.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Self, HubError> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_yaml::from_str(text).map_err(|e| HubError::Config {
            path: origin.to_string(),
            line: e.location().map(|l| l.line()),
            reason: e.to_string(),
        })
    }

    /// Loads a config file.
    pub fn load(path: &Path) -> Result<Self, HubError> {
        let text = std::fs::read_to_string(path).map_err(|e| HubError::Config {
            path: path.display().to_string(),
            line: None,
            reason: e.to_string(),
        })?;
        let mut config = Self::from_yaml(&text, &path.display().to_string())?;
        config.base_dir = path.parent().map(Path::to_path_buf);
        config.config_file = Some(path.to_path_buf());
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_defaults() {
        let c = HubConfig::from_yaml(
            "listen: 0.0.0.0:9000\nstorage:\n  retention: 2d\nglobal:\n  external_labels:\n    hub: central\n",
            "t.yaml",
        )
        .unwrap();
        assert_eq!(c.listen, "0.0.0.0:9000");
        assert_eq!(c.storage.retention, Some(2 * 86_400_000));
        assert_eq!(c.query.lookback_delta, Some(300_000));
        assert_eq!(c.global.external_labels["hub"], "central");
        let err = HubConfig::from_yaml("listen: a\nbogus: 1\n", "t.yaml").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("t.yaml") && msg.contains("bogus") && msg.contains("line 2"),
            "{msg}"
        );
        let err = HubConfig::from_yaml("storage:\n  retention: 2 days\n", "t.yaml").unwrap_err();
        assert!(err.to_string().contains("invalid duration"), "{err}");
        let c = HubConfig::from_yaml(
            "rule_files: [a.yaml, 'r/*.yaml']\nglobal:\n  evaluation_interval: 15s\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:9093']\n      timeout: 5s\n      path_prefix: /am\nreceivers:\n  - name: ops\n    url: http://127.0.0.1:1/hook\n    group_by: [cluster]\n    group_wait: 2s\n    matchers: ['severity=\"warning\"']\nrules:\n  for_grace_period: 1s\n",
            "t.yaml",
        )
        .unwrap();
        assert_eq!(c.rule_files, vec!["a.yaml", "r/*.yaml"]);
        assert_eq!(c.global.evaluation_interval, Some(15_000));
        assert_eq!(
            c.alerting.alertmanagers[0].urls(),
            vec!["http://127.0.0.1:9093/am/api/v2/alerts"]
        );
        assert_eq!(c.alerting.alertmanagers[0].timeout, Some(5_000));
        let r = &c.receivers[0];
        assert_eq!(
            (r.group_wait, r.group_interval, r.send_resolved),
            (Some(2_000), None, true)
        );
        assert_eq!(c.rules.for_grace_period, Some(1_000));
        assert_eq!(c.rules.resend_delay, Some(60_000));
        let err = HubConfig::from_yaml("storage:\n  retention: 2 days\n", "t.yaml").unwrap_err();
        assert!(err.to_string().contains("invalid duration"), "{err}");
    }
}
