//! The `logs` section: which log files are tailed, how their lines are
//! parsed, labelled and filtered, and where they are pushed (Loki push API).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::http_client::with_http_client_keys;
use super::{ByteSize, PromDuration};
use crate::CollectorError;

/// The Kubernetes pod log layout:
/// `/var/log/pods/<namespace>_<pod>_<uid>/<container>/<n>.log`.
pub const DEFAULT_LOG_GLOB: &str = "/var/log/pods/*/*/*.log";

/// How the lines of a file are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Decided per file from its first line: Docker JSON, CRI or raw.
    #[default]
    Auto,
    /// CRI (containerd, CRI-O): `<RFC3339Nano> <stream> <P|F> <text>`.
    Cri,
    /// Docker's json-file driver: `{"log":"...","stream":"stdout","time":"..."}`.
    Docker,
    /// Plain lines, stamped with the time they are read.
    Raw,
}

with_http_client_keys! {
/// The `logs` section of the collector config; the HTTP client keys apply
/// to the push to the hub (and the lookup after a restart).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsConfig {
    /// The hub's Loki push endpoint, e.g. `http://hub:9190/loki/api/v1/push`.
    #[serde(alias = "loki_url", alias = "endpoint")]
    pub url: String,
    /// Glob patterns of the files tailed (`*` and `?` in any path
    /// component; default [`DEFAULT_LOG_GLOB`]).
    #[serde(default = "default_paths")]
    pub paths: Vec<String>,
    /// The line format (default `auto`).
    #[serde(default)]
    pub format: LogFormat,
    /// Labels added to every stream (the external labels are added too).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Only lines matching at least one of these regexes are shipped
    /// (unanchored; empty keeps all).
    #[serde(default)]
    pub include: Vec<String>,
    /// Lines matching any of these regexes are dropped (unanchored).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Only files whose labels match every entry (label name -> anchored
    /// regex) are tailed.
    #[serde(default)]
    pub include_labels: BTreeMap<String, String>,
    /// Files whose labels match any entry (label name -> anchored regex)
    /// are not tailed.
    #[serde(default)]
    pub exclude_labels: BTreeMap<String, String>,
    /// Longest line shipped (default `256KB`, the hub's limit); a longer
    /// line (or CRI/Docker partial line being joined) is cut there and
    /// counted.
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: ByteSize,
    /// A batch is closed (and queued) once its lines hold this many bytes
    /// (default `1MB`).
    #[serde(default = "default_batch_size")]
    pub batch_size: ByteSize,
    /// Longest a line waits for its batch to fill (default `1s`).
    #[serde(default = "default_batch_wait")]
    pub batch_wait: PromDuration,
    /// How often files are checked for new lines, new files and rotation
    /// (default `500ms`).
    #[serde(default = "default_poll_interval")]
    pub poll_interval: PromDuration,
    /// Timeout of one push (default `30s`).
    #[serde(default = "default_timeout")]
    pub timeout: PromDuration,
    /// First retry delay (default `100ms`), doubled per retry.
    #[serde(default = "default_min_backoff")]
    pub min_backoff: PromDuration,
    /// Longest retry delay (default `5s`).
    #[serde(default = "default_max_backoff")]
    pub max_backoff: PromDuration,
    /// Disk budget of the log queue (default `256MB`); the oldest batches
    /// are dropped beyond it.
    #[serde(default = "default_max_queue_bytes")]
    pub max_queue_bytes: ByteSize,
    /// Where the checkpoint and the queue live (default `<data dir>/logs`).
    #[serde(default)]
    pub path: Option<PathBuf>,
}
}

fn default_paths() -> Vec<String> {
    vec![DEFAULT_LOG_GLOB.to_string()]
}
fn default_max_line_bytes() -> ByteSize {
    ByteSize(256 << 10)
}
fn default_batch_size() -> ByteSize {
    ByteSize(1 << 20)
}
fn default_batch_wait() -> PromDuration {
    PromDuration::from_secs(1)
}
fn default_poll_interval() -> PromDuration {
    PromDuration::from_millis(500)
}
fn default_timeout() -> PromDuration {
    PromDuration::from_secs(30)
}
fn default_min_backoff() -> PromDuration {
    PromDuration::from_millis(100)
}
fn default_max_backoff() -> PromDuration {
    PromDuration::from_secs(5)
}
fn default_max_queue_bytes() -> ByteSize {
    ByteSize(256 << 20)
}

impl LogsConfig {
    /// Checks what serde cannot: a parseable `http(s)` URL, at least one
    /// path, compilable regexes, valid label names, sane sizes and times.
    pub fn validate(&self) -> Result<(), CollectorError> {
        let bad =
            |field: &str, reason: String| CollectorError::invalid(format!("logs.{field}"), reason);
        match reqwest::Url::parse(&self.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            Ok(u) => return Err(bad("url", format!("unsupported scheme {:?}", u.scheme()))),
            Err(e) => return Err(bad("url", format!("{:?}: {e}", self.url))),
        }
        if self.paths.is_empty() || self.paths.iter().any(|p| p.trim().is_empty()) {
            return Err(bad(
                "paths",
                "needs at least one non-empty glob".to_string(),
            ));
        }
        for (field, list) in [("include", &self.include), ("exclude", &self.exclude)] {
            for (i, re) in list.iter().enumerate() {
                regex::Regex::new(re).map_err(|e| bad(&format!("{field}[{i}]"), e.to_string()))?;
            }
        }
        for (field, map) in [
            ("include_labels", &self.include_labels),
            ("exclude_labels", &self.exclude_labels),
        ] {
            for (name, re) in map {
                regex::Regex::new(&format!("^(?:{re})$"))
                    .map_err(|e| bad(&format!("{field}.{name}"), e.to_string()))?;
            }
        }
        for name in self.labels.keys() {
            if !fleetwatch_model::is_valid_label_name(name) || name.starts_with("__") {
                return Err(bad("labels", format!("invalid label name {name:?}")));
            }
        }
        if self.max_line_bytes.0 < 16 {
            return Err(bad("max_line_bytes", "must be at least 16B".to_string()));
        }
        if self.batch_size.0 == 0 {
            return Err(bad("batch_size", "must be greater than 0".to_string()));
        }
        if self.max_queue_bytes.0 < self.batch_size.0.saturating_mul(2) {
            return Err(bad(
                "max_queue_bytes",
                format!(
                    "{} is too small for batch_size {}; use at least twice the batch size",
                    self.max_queue_bytes, self.batch_size
                ),
            ));
        }
        for (field, d) in [
            ("batch_wait", self.batch_wait),
            ("poll_interval", self.poll_interval),
            ("timeout", self.timeout),
            ("min_backoff", self.min_backoff),
        ] {
            if d.0.is_zero() {
                return Err(bad(field, "must be greater than 0".to_string()));
            }
        }
        if self.max_backoff < self.min_backoff {
            return Err(bad(
                "max_backoff",
                format!(
                    "{} is below min_backoff {}",
                    self.max_backoff, self.min_backoff
                ),
            ));
        }
        super::http_client::validate(&self.http_client_config(), "logs")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> LogsConfig {
        serde_yaml::from_str(yaml).expect("parses")
    }

    #[test]
    fn defaults_and_url_aliases() {
        let c = parse("loki_url: http://hub:9190/loki/api/v1/push\n");
        assert_eq!(c.url, "http://hub:9190/loki/api/v1/push");
        assert_eq!(c.paths, vec![DEFAULT_LOG_GLOB.to_string()]);
        assert_eq!(c.format, LogFormat::Auto);
        assert_eq!(c.max_line_bytes, ByteSize(256 << 10));
        assert_eq!(c.batch_wait, PromDuration::from_secs(1));
        c.validate().expect("valid");
        assert_eq!(
            parse("endpoint: http://h/x\nformat: docker\n").format,
            LogFormat::Docker
        );
        assert!(serde_yaml::from_str::<LogsConfig>("url: http://h/x\nformat: json\n").is_err());
        assert!(serde_yaml::from_str::<LogsConfig>("url: http://h/x\nbogus: 1\n").is_err());
    }

    #[test]
    fn validation_names_the_field() {
        let err = |extra: &str| {
            parse(&format!("url: http://h/loki/api/v1/push\n{extra}"))
                .validate()
                .expect_err("invalid")
                .to_string()
        };
        assert!(parse("url: ftp://h/x\n").validate().is_err());
        assert!(parse("url: not a url\n").validate().is_err());
        assert!(err("paths: []\n").contains("logs.paths"));
        assert!(err("exclude: ['(']\n").contains("logs.exclude[0]"));
        assert!(err("include_labels: {namespace: '['}\n").contains("logs.include_labels.namespace"));
        assert!(err("labels: {'1bad': x}\n").contains("logs.labels"));
        assert!(err("batch_size: 1MB\nmax_queue_bytes: 1MB\n").contains("logs.max_queue_bytes"));
        assert!(err("poll_interval: 0s\n").contains("logs.poll_interval"));
        assert!(err("min_backoff: 2s\nmax_backoff: 1s\n").contains("logs.max_backoff"));
        assert!(err("max_line_bytes: 8\n").contains("logs.max_line_bytes"));
        assert!(err("bearer_token: a\nbasic_auth: {username: u}\n").contains("logs.bearer_token"));
        assert!(err("tls_config: {cert_file: c}\n").contains("logs.tls_config.cert_file"));
    }
}
