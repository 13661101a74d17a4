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

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9190".to_string(),
            data_dir: PathBuf::from("./data"),
            global: GlobalConfig::default(),
            storage: StorageConfig::default(),
            query: QueryConfig::default(),
            limits: LimitsConfig::default(),
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
        Self::from_yaml(&text, &path.display().to_string())
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
    }
}
