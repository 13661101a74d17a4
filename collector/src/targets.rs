//! Scrape targets: what the static configs expand to, their URLs, their
//! target labels and their start offsets.

use std::time::Duration;

use fleetwatch_model::{Labels, METRIC_NAME};

use std::collections::BTreeMap;

use crate::config::{CollectorConfig, HttpClientConfig, RelabelConfig, ScrapeConfig};
use crate::discovery::{FileSd, FILEPATH_LABEL};
use crate::kubernetes_sd::{KubeEnv, KubernetesSd};
use crate::relabel::Relabeler;
use crate::CollectorError;

/// Target label holding the `host:port` scraped.
pub const ADDRESS_LABEL: &str = "__address__";
/// Target label holding the scheme.
pub const SCHEME_LABEL: &str = "__scheme__";
/// Target label holding the metrics path.
pub const METRICS_PATH_LABEL: &str = "__metrics_path__";
/// Prefix of target labels holding URL parameters.
pub const PARAM_PREFIX: &str = "__param_";

/// One target to scrape, with everything its scrape loop needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The job name.
    pub job: String,
    /// The address as configured (`host:port`); the `instance` label by default.
    pub address: String,
    /// The full URL scraped, with the query parameters.
    pub url: reqwest::Url,
    /// `job`, `instance` and the static labels, after `relabel_configs`.
    pub labels: Labels,
    /// The labels before `relabel_configs` (with `__address__` and the
    /// other `__` labels), as `/api/v1/targets` shows them.
    pub discovered_labels: Labels,
    /// Whether scraped labels win over target labels.
    pub honor_labels: bool,
    /// Whether exposed timestamps are kept.
    pub honor_timestamps: bool,
    /// Whether a series' own value of an external label wins.
    pub honor_external_labels: bool,
    /// Rules applied to every scraped series.
    pub metric_relabel_configs: Vec<RelabelConfig>,
    /// Time between scrapes.
    pub interval: Duration,
    /// Time allowed for one scrape.
    pub timeout: Duration,
    /// The job's HTTP client settings (a change restarts the target's loop).
    pub http_client: HttpClientConfig,
    /// The job's scrape limits.
    pub limits: crate::scrape::ScrapeLimits,
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

/// A target that `relabel_configs` dropped.
#[derive(Debug, Clone, PartialEq)]
pub struct DroppedTarget {
    /// The job name.
    pub job: String,
    /// Its labels before relabeling.
    pub discovered_labels: Labels,
}

/// Expands the config's scrape configs into targets: applies each job's
/// `relabel_configs` (a target they drop is left out) and deduplicates per
/// job by URL and labels. The config must have been validated.
pub fn targets_from_config(cfg: &CollectorConfig) -> Result<Vec<Target>, CollectorError> {
    Ok(discover(cfg)?.0)
}

/// Like [`targets_from_config`], also returning the dropped targets.
pub fn discover(
    cfg: &CollectorConfig,
) -> Result<(Vec<Target>, Vec<DroppedTarget>), CollectorError> {
    discover_with(cfg, &FileSd::default())
}

/// Like [`discover`], with the target groups `file_sd` read from the
/// files of `file_sd_configs` (each labelled `__meta_filepath`). A bad
/// address in a file skips that target (logged) instead of failing.
pub fn discover_with(
    cfg: &CollectorConfig,
    file_sd: &FileSd,
) -> Result<(Vec<Target>, Vec<DroppedTarget>), CollectorError> {
    discover_sd(cfg, file_sd, &KubernetesSd::with_env(KubeEnv::default()))
}

/// Like [`discover_with`], also with the targets `kubernetes` currently
/// discovers for each job's `kubernetes_sd_configs`. A target whose
/// address is unusable after relabeling is skipped (logged).
pub fn discover_sd(
    cfg: &CollectorConfig,
    file_sd: &FileSd,
    kubernetes: &KubernetesSd,
) -> Result<(Vec<Target>, Vec<DroppedTarget>), CollectorError> {
    let mut out: Vec<Target> = Vec::new();
    let mut dropped: Vec<DroppedTarget> = Vec::new();
    for (i, sc) in cfg.scrape_configs.iter().enumerate() {
        let relabel = Relabeler::new(&sc.relabel_configs).map_err(|(r, e)| {
            CollectorError::invalid(
                format!("scrape_configs[{i}].relabel_configs[{r}]"),
                e.to_string(),
            )
        })?;
        let mut add = |address: &str, labels: &BTreeMap<String, String>, field: String| {
            match build_target(cfg, sc, &relabel, address, labels, &field)? {
                None => {
                    tracing::debug!(job = %sc.job_name, address = %address, "target dropped by relabel_configs");
                    dropped.push(DroppedTarget {
                        job: sc.job_name.clone(),
                        discovered_labels: initial_labels(cfg, sc, address, labels),
                    });
                }
                Some(target) => {
                    let duplicate = out.iter().any(|t| {
                        t.job == target.job && t.url == target.url && t.labels == target.labels
                    });
                    if !duplicate {
                        out.push(target);
                    }
                }
            }
            Ok::<(), CollectorError>(())
        };
        for (j, st) in sc.static_configs.iter().enumerate() {
            for (k, address) in st.targets.iter().enumerate() {
                add(
                    address,
                    &st.labels,
                    format!("scrape_configs[{i}].static_configs[{j}].targets[{k}]"),
                )?;
            }
        }
        for sd in &sc.file_sd_configs {
            for (path, group) in file_sd.groups(sd) {
                let mut labels = group.labels.clone();
                labels.insert(FILEPATH_LABEL.to_string(), path.display().to_string());
                for address in &group.targets {
                    let field = format!("file {} target {address:?}", path.display());
                    if let Err(e) = check_address(address)
                        .map_err(|r| CollectorError::invalid(field.clone(), r))
                        .and_then(|()| add(address, &labels, field))
                    {
                        tracing::warn!(job = %sc.job_name, error = %e, "skipping a discovered target");
                    }
                }
            }
        }
        for j in 0..sc.kubernetes_sd_configs.len() {
            for labels in kubernetes.targets(&sc.job_name, j) {
                let address = labels.get(ADDRESS_LABEL).cloned().unwrap_or_default();
                let field = format!("kubernetes_sd_configs[{j}] target {address:?}");
                if let Err(e) = add(&address, &labels, field) {
                    tracing::debug!(job = %sc.job_name, error = %e, "skipping a discovered target");
                }
            }
        }
    }
    Ok((out, dropped))
}

/// The labels a target starts with, before relabeling, as Prometheus
/// sets them: `job`, `__address__`, `__scheme__`, `__metrics_path__`,
/// `__scrape_interval__`, `__scrape_timeout__`, `__param_<name>` (first
/// value) and the static labels (which may override any of these).
fn initial_labels(
    cfg: &CollectorConfig,
    sc: &ScrapeConfig,
    address: &str,
    static_labels: &std::collections::BTreeMap<String, String>,
) -> Labels {
    let interval = sc.effective_interval(&cfg.global).to_string();
    let timeout = sc.effective_timeout(&cfg.global).to_string();
    let mut labels = Labels::from_pairs([
        ("job", sc.job_name.as_str()),
        (ADDRESS_LABEL, address),
        (SCHEME_LABEL, sc.scheme.as_str()),
        (METRICS_PATH_LABEL, sc.metrics_path.as_str()),
        ("__scrape_interval__", interval.as_str()),
        ("__scrape_timeout__", timeout.as_str()),
    ]);
    for (name, values) in &sc.params {
        if let Some(first) = values.first() {
            labels.set(&format!("{PARAM_PREFIX}{name}"), first);
        }
    }
    for (n, v) in static_labels {
        if n != METRIC_NAME {
            labels.set(n, v);
        }
    }
    // The target's own address wins over a group label of that name.
    labels.set(ADDRESS_LABEL, address);
    labels
}

fn build_target(
    cfg: &CollectorConfig,
    sc: &ScrapeConfig,
    relabel: &Relabeler,
    address: &str,
    static_labels: &std::collections::BTreeMap<String, String>,
    field: &str,
) -> Result<Option<Target>, CollectorError> {
    let discovered_labels = initial_labels(cfg, sc, address, static_labels);
    let Some(labels) = relabel.process(discovered_labels.clone()) else {
        return Ok(None);
    };
    let Some(address) = labels.get(ADDRESS_LABEL).map(str::to_string) else {
        tracing::warn!(job = %sc.job_name, field, "relabel_configs removed __address__; target dropped");
        return Ok(None);
    };
    check_address(&address)
        .map_err(|r| CollectorError::invalid(field, format!("after relabel_configs: {r}")))?;
    let scheme = labels.get(SCHEME_LABEL).unwrap_or("http");
    if !matches!(scheme, "http" | "https") {
        return Err(CollectorError::invalid(
            field,
            format!("after relabel_configs: scheme {scheme:?} is neither http nor https"),
        ));
    }
    let mut url = reqwest::Url::parse(&format!("{scheme}://{address}")).map_err(|e| {
        CollectorError::invalid(field, format!("cannot build a URL from {address:?}: {e}"))
    })?;
    url.set_path(labels.get(METRICS_PATH_LABEL).unwrap_or("/metrics"));
    // Parameters: the configured ones, the first value of each replaced
    // by its `__param_<name>` label, plus parameters only set by labels.
    let mut params: Vec<(String, String)> = Vec::new();
    for (name, values) in &sc.params {
        let first = labels.get(&format!("{PARAM_PREFIX}{name}"));
        for (i, v) in values.iter().enumerate() {
            match (i, first) {
                (0, Some(f)) => params.push((name.clone(), f.to_string())),
                (0, None) => {}
                _ => params.push((name.clone(), v.clone())),
            }
        }
    }
    for l in labels.iter() {
        if let Some(name) = l.name.strip_prefix(PARAM_PREFIX) {
            if !sc.params.contains_key(name) {
                params.push((name.to_string(), l.value.clone()));
            }
        }
    }
    if !params.is_empty() {
        let mut q = url.query_pairs_mut();
        for (n, v) in &params {
            q.append_pair(n, v);
        }
    }
    // As Prometheus: `instance` defaults to the address; labels starting
    // with `__` are internal and never reach a series.
    let mut final_labels = Labels::from_pairs(
        labels
            .iter()
            .filter(|l| !l.name.starts_with("__"))
            .map(|l| (l.name.as_str(), l.value.as_str())),
    );
    if final_labels.get("instance").is_none() {
        final_labels.set("instance", &address);
    }
    Ok(Some(Target {
        job: sc.job_name.clone(),
        address,
        url,
        labels: final_labels,
        discovered_labels,
        honor_labels: sc.honor_labels,
        honor_timestamps: sc.honor_timestamps,
        honor_external_labels: sc.honor_external_labels,
        limits: crate::scrape::ScrapeLimits::from_config(sc),
        metric_relabel_configs: sc.metric_relabel_configs.clone(),
        interval: sc.effective_interval(&cfg.global).as_duration(),
        timeout: sc.effective_timeout(&cfg.global).as_duration(),
        http_client: sc.http_client_config(),
    }))
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
    fn relabel_configs_rewrite_and_drop_targets() {
        let yaml = r#"
scrape_configs:
  - job_name: fed
    metrics_path: /federate
    params:
      'match[]': ['up', 'x']
    static_configs:
      - targets: ['prom:9090', 'drop-me:9090', 'other:80']
        labels: {__meta_zone: z1, team: virt}
    relabel_configs:
      - {source_labels: [__address__], regex: 'drop-me:.*', action: drop}
      - {source_labels: [__address__], regex: '(.*):9090', target_label: __address__, replacement: '${1}:9091'}
      - {source_labels: [__meta_zone], target_label: zone}
      - {target_label: __param_match__, replacement: ignored}
      - {source_labels: [__address__], regex: 'other:80', target_label: __metrics_path__, replacement: /m}
      - {source_labels: [__address__], regex: 'other:80', target_label: __param_format, replacement: text}
      - {source_labels: [__scrape_interval__], target_label: interval}
"#;
        let cfg = CollectorConfig::from_yaml_str(yaml).unwrap();
        cfg.validate().unwrap();
        let t = targets_from_config(&cfg).unwrap();
        assert_eq!(t.len(), 2, "drop-me is dropped");
        assert_eq!(t[0].address, "prom:9091");
        assert_eq!(
            t[0].url.as_str(),
            "http://prom:9091/federate?match%5B%5D=up&match%5B%5D=x&match__=ignored"
        );
        assert_eq!(
            t[0].labels.to_string(),
            r#"{instance="prom:9091", interval="1m", job="fed", team="virt", zone="z1"}"#,
            "__ labels are removed, instance is the rewritten address"
        );
        assert_eq!(
            t[1].url.as_str(),
            "http://other/m?match%5B%5D=up&match%5B%5D=x&format=text&match__=ignored"
        );
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
