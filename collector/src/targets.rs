//! Scrape targets: what the static configs expand to, their URLs, their
//! target labels and their start offsets.

use std::time::Duration;

use fleetwatch_model::{Labels, METRIC_NAME};

use crate::config::{CollectorConfig, ScrapeConfig};
use crate::CollectorError;

/// One target to scrape, with everything its scrape loop needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The job name.
    pub job: String,
    /// The address as configured (`host:port`); the `instance` label by default.
    pub address: String,
    /// The full URL scraped, with the query parameters.
    pub url: reqwest::Url,
    /// `job`, `instance` and the static labels.
    pub labels: Labels,
    /// Whether scraped labels win over target labels.
    pub honor_labels: bool,
    /// Whether exposed timestamps are kept.
    pub honor_timestamps: bool,
    /// Time between scrapes.
    pub interval: Duration,
    /// Time allowed for one scrape.
    pub timeout: Duration,
}

impl Target {
    /// The deterministic start offset of this target within its interval,
    /// from a hash of its URL, so targets spread over the interval and keep
    /// their slot across restarts.
    pub fn offset(&self) -> Duration {
        let interval_ns = u64::try_from(self.interval.as_nanos()).unwrap_or(u64::MAX);
        if interval_ns == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(fnv1a(self.url.as_str().as_bytes()) % interval_ns)
    }

    /// How long to wait from `now` until the first scrape: the next instant
    /// whose phase within the interval (counted from the Unix epoch) is
    /// [`Self::offset`]. Restarts keep a target in the same slot.
    pub fn start_delay(&self, now: std::time::SystemTime) -> Duration {
        let interval_ns = self.interval.as_nanos();
        if interval_ns == 0 {
            return Duration::ZERO;
        }
        let now_ns = now
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let phase = self.offset().as_nanos();
        let delay = (phase + interval_ns - now_ns % interval_ns) % interval_ns;
        Duration::from_nanos(u64::try_from(delay).unwrap_or(0))
    }
}

/// Expands the config's scrape configs into targets (deduplicated per job
/// by address and labels). The config must have been validated.
pub fn targets_from_config(cfg: &CollectorConfig) -> Result<Vec<Target>, CollectorError> {
    let mut out: Vec<Target> = Vec::new();
    for (i, sc) in cfg.scrape_configs.iter().enumerate() {
        for (j, st) in sc.static_configs.iter().enumerate() {
            for (k, address) in st.targets.iter().enumerate() {
                let field = format!("scrape_configs[{i}].static_configs[{j}].targets[{k}]");
                let target = build_target(cfg, sc, address, &st.labels, &field)?;
                let duplicate = out.iter().any(|t| {
                    t.job == target.job && t.url == target.url && t.labels == target.labels
                });
                if !duplicate {
                    out.push(target);
                }
            }
        }
    }
    Ok(out)
}

fn build_target(
    cfg: &CollectorConfig,
    sc: &ScrapeConfig,
    address: &str,
    static_labels: &std::collections::BTreeMap<String, String>,
    field: &str,
) -> Result<Target, CollectorError> {
    check_address(address).map_err(|r| CollectorError::invalid(field, r))?;
    let mut url =
        reqwest::Url::parse(&format!("{}://{}", sc.scheme.as_str(), address)).map_err(|e| {
            CollectorError::invalid(field, format!("cannot build a URL from {address:?}: {e}"))
        })?;
    url.set_path(&sc.metrics_path);
    if !sc.params.is_empty() {
        let mut q = url.query_pairs_mut();
        for (name, values) in &sc.params {
            for v in values {
                q.append_pair(name, v);
            }
        }
    }
    // As Prometheus: `job` from the job name unless a static label sets it,
    // `instance` from the address unless a static label sets it. Labels
    // starting with `__` are internal and never reach a series.
    let mut labels = Labels::from_pairs([("job", sc.job_name.as_str())]);
    for (n, v) in static_labels {
        if !n.starts_with("__") && n != METRIC_NAME {
            labels.set(n, v);
        }
    }
    if labels.get("instance").is_none() {
        labels.set("instance", address);
    }
    Ok(Target {
        job: sc.job_name.clone(),
        address: address.to_string(),
        url,
        labels,
        honor_labels: sc.honor_labels,
        honor_timestamps: sc.honor_timestamps,
        interval: sc.effective_interval(&cfg.global).as_duration(),
        timeout: sc.effective_timeout(&cfg.global).as_duration(),
    })
}

/// Checks that `addr` is `host:port` (IPv6 hosts in brackets), without a
/// scheme or path.
pub fn check_address(addr: &str) -> Result<(), String> {
    if addr.contains("://") {
        return Err(format!(
            "target {addr:?} must be host:port without a scheme"
        ));
    }
    if addr.contains(['/', '?', '#', ' ', '@']) {
        return Err(format!("target {addr:?} must be host:port without a path"));
    }
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("target {addr:?} must be host:port (missing port)"))?;
    if host.is_empty() {
        return Err(format!("target {addr:?} has an empty host"));
    }
    if port.parse::<u16>().is_err() {
        return Err(format!("target {addr:?} has an invalid port {port:?}"));
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err(format!(
            "target {addr:?}: an IPv6 host must be in brackets, e.g. [::1]:9090"
        ));
    }
    Ok(())
}

/// 64-bit FNV-1a: small, stable, good enough to spread start offsets.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = r#"
global:
  scrape_interval: 30s
scrape_configs:
  - job_name: fed
    scrape_interval: 15s
    metrics_path: /federate
    scheme: https
    params:
      'match[]': ['{job=~"kubevirt-.*"}', 'up']
    static_configs:
      - targets: ['prom:9090', 'prom:9090']
        labels: {cluster_role: app, instance: fixed, __hidden: x}
  - job_name: node
    static_configs:
      - targets: ['10.0.0.1:9100', '[::1]:9100']
"#;

    #[test]
    fn builds_targets_with_urls_and_labels() {
        let cfg = CollectorConfig::from_yaml_str(YAML).unwrap();
        cfg.validate().unwrap();
        let t = targets_from_config(&cfg).unwrap();
        assert_eq!(t.len(), 3, "duplicate target is dropped");
        assert_eq!(
            t[0].url.as_str(),
            "https://prom:9090/federate?match%5B%5D=%7Bjob%3D%7E%22kubevirt-.*%22%7D&match%5B%5D=up"
        );
        assert_eq!(
            t[0].labels.to_string(),
            r#"{cluster_role="app", instance="fixed", job="fed"}"#
        );
        assert_eq!(t[0].interval, Duration::from_secs(15));
        assert_eq!(t[0].timeout, Duration::from_secs(10));
        assert_eq!(
            t[1].labels.to_string(),
            r#"{instance="10.0.0.1:9100", job="node"}"#
        );
        assert_eq!(t[1].url.as_str(), "http://10.0.0.1:9100/metrics");
        assert_eq!(t[1].interval, Duration::from_secs(30));
        assert_eq!(t[2].url.as_str(), "http://[::1]:9100/metrics");
    }

    #[test]
    fn offsets_are_deterministic_and_within_interval() {
        let cfg = CollectorConfig::from_yaml_str(YAML).unwrap();
        let a = targets_from_config(&cfg).unwrap();
        let b = targets_from_config(&cfg).unwrap();
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.offset(), y.offset());
            assert!(x.offset() < x.interval);
        }
        assert_ne!(a[1].offset(), a[2].offset());
        let t = &a[0];
        let base = std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        for step in [0u64, 1, 7, 14] {
            let now = base + Duration::from_secs(step);
            let d = t.start_delay(now);
            assert!(d < t.interval);
            let at = (now + d)
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            assert_eq!(
                at % t.interval.as_nanos(),
                t.offset().as_nanos(),
                "same phase"
            );
        }
    }

    #[test]
    fn checks_addresses() {
        for ok in ["a:1", "host.example:9090", "[::1]:80", "10.0.0.1:65535"] {
            assert!(check_address(ok).is_ok(), "{ok}");
        }
        for bad in [
            "a",
            ":9090",
            "a:",
            "a:x",
            "a:70000",
            "http://a:1",
            "a:1/metrics",
            "::1:80",
        ] {
            assert!(check_address(bad).is_err(), "{bad}");
        }
    }
}
