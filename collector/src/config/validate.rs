//! Semantic checks of a parsed [`CollectorConfig`].

use std::collections::{BTreeMap, HashSet};

use fleetwatch_model::is_valid_label_name;

use super::{CollectorConfig, RelabelConfig, RemoteWriteConfig, ScrapeConfig};
use crate::relabel::Relabeler;
use crate::targets::check_address;
use crate::CollectorError;

pub(super) fn validate(cfg: &CollectorConfig) -> Result<(), CollectorError> {
    let g = &cfg.global;
    if g.scrape_interval.0.is_zero() {
        return Err(CollectorError::invalid(
            "global.scrape_interval",
            "must be greater than 0",
        ));
    }
    if g.scrape_timeout.0.is_zero() {
        return Err(CollectorError::invalid(
            "global.scrape_timeout",
            "must be greater than 0",
        ));
    }
    if g.scrape_timeout > g.scrape_interval {
        return Err(CollectorError::invalid(
            "global.scrape_timeout",
            format!(
                "scrape_timeout {} is greater than scrape_interval {}",
                g.scrape_timeout, g.scrape_interval
            ),
        ));
    }
    check_labels("global.external_labels", &g.external_labels)?;

    let mut jobs = HashSet::new();
    for (i, sc) in cfg.scrape_configs.iter().enumerate() {
        let at = format!("scrape_configs[{i}]");
        validate_scrape_config(cfg, sc, &at)?;
        if !jobs.insert(sc.job_name.as_str()) {
            return Err(CollectorError::invalid(
                format!("{at}.job_name"),
                format!(
                    "job name {:?} is used by more than one scrape config",
                    sc.job_name
                ),
            ));
        }
    }
    let mut names = HashSet::new();
    for (i, rw) in cfg.remote_write.iter().enumerate() {
        let at = format!("remote_write[{i}]");
        validate_remote_write(rw, &at)?;
        if !names.insert(rw.queue_name()) {
            return Err(CollectorError::invalid(
                format!("{at}.name"),
                format!(
                    "queue name {:?} is used by more than one remote_write; set distinct names",
                    rw.queue_name()
                ),
            ));
        }
    }
    if cfg.storage.max_bytes.0 < 64 * 1024 {
        return Err(CollectorError::invalid(
            "storage.max_bytes",
            format!("{} is too small; use at least 64KB", cfg.storage.max_bytes),
        ));
    }
    Ok(())
}

fn validate_scrape_config(
    cfg: &CollectorConfig,
    sc: &ScrapeConfig,
    at: &str,
) -> Result<(), CollectorError> {
    if sc.job_name.trim().is_empty() {
        return Err(CollectorError::invalid(
            format!("{at}.job_name"),
            "must not be empty",
        ));
    }
    let interval = sc.effective_interval(&cfg.global);
    let timeout = sc.effective_timeout(&cfg.global);
    if interval.0.is_zero() {
        return Err(CollectorError::invalid(
            format!("{at}.scrape_interval"),
            "must be greater than 0",
        ));
    }
    if timeout.0.is_zero() {
        return Err(CollectorError::invalid(
            format!("{at}.scrape_timeout"),
            "must be greater than 0",
        ));
    }
    if timeout > interval {
        return Err(CollectorError::invalid(
            format!("{at}.scrape_timeout"),
            format!(
                "scrape_timeout {timeout} is greater than scrape_interval {interval} for job {:?}",
                sc.job_name
            ),
        ));
    }
    if !sc.metrics_path.starts_with('/') {
        return Err(CollectorError::invalid(
            format!("{at}.metrics_path"),
            format!("{:?} must start with '/'", sc.metrics_path),
        ));
    }
    if sc.metrics_path.contains(['?', '#']) {
        return Err(CollectorError::invalid(
            format!("{at}.metrics_path"),
            format!(
                "{:?} must not contain '?' or '#'; use params for the query",
                sc.metrics_path
            ),
        ));
    }
    if let Some(name) = sc.params.keys().find(|k| k.is_empty()) {
        return Err(CollectorError::invalid(
            format!("{at}.params"),
            format!("parameter name {name:?} must not be empty"),
        ));
    }
    check_relabel(&format!("{at}.relabel_configs"), &sc.relabel_configs)?;
    check_relabel(
        &format!("{at}.metric_relabel_configs"),
        &sc.metric_relabel_configs,
    )?;
    for (j, sd) in sc.file_sd_configs.iter().enumerate() {
        if sd.files.is_empty() || sd.files.iter().any(|f| f.trim().is_empty()) {
            return Err(CollectorError::invalid(
                format!("{at}.file_sd_configs[{j}].files"),
                "must list at least one non-empty file name",
            ));
        }
    }
    for (j, sd) in sc.kubernetes_sd_configs.iter().enumerate() {
        super::kubernetes_sd::validate(sd, &format!("{at}.kubernetes_sd_configs[{j}]"))?;
    }
    for (j, st) in sc.static_configs.iter().enumerate() {
        let sat = format!("{at}.static_configs[{j}]");
        for (k, t) in st.targets.iter().enumerate() {
            check_address(t)
                .map_err(|reason| CollectorError::invalid(format!("{sat}.targets[{k}]"), reason))?;
        }
        check_labels(&format!("{sat}.labels"), &st.labels)?;
    }
    super::http_client::validate(&sc.http_client_config(), at)?;
    Ok(())
}

fn validate_remote_write(rw: &RemoteWriteConfig, at: &str) -> Result<(), CollectorError> {
    let url = reqwest::Url::parse(&rw.url).map_err(|e| {
        CollectorError::invalid(
            format!("{at}.url"),
            format!("{:?} is not a valid URL: {e}", rw.url),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(CollectorError::invalid(
            format!("{at}.url"),
            format!("{:?} must use http or https", rw.url),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(CollectorError::invalid(
            format!("{at}.url"),
            format!("{:?} has no host", rw.url),
        ));
    }
    if rw.remote_timeout.0.is_zero() {
        return Err(CollectorError::invalid(
            format!("{at}.remote_timeout"),
            "must be greater than 0",
        ));
    }
    check_relabel(
        &format!("{at}.write_relabel_configs"),
        &rw.write_relabel_configs,
    )?;
    super::http_client::validate(&rw.http_client_config(), at)?;
    if let Some(name) = &rw.name {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(CollectorError::invalid(
                format!("{at}.name"),
                format!("{name:?} must match [A-Za-z0-9_-]+"),
            ));
        }
    }
    let q = &rw.queue_config;
    if q.min_shards == 0 || q.max_shards < q.min_shards {
        return Err(CollectorError::invalid(
            format!("{at}.queue_config.max_shards"),
            format!(
                "need 1 <= min_shards ({}) <= max_shards ({})",
                q.min_shards, q.max_shards
            ),
        ));
    }
    if q.capacity == 0 {
        return Err(CollectorError::invalid(
            format!("{at}.queue_config.capacity"),
            "must be greater than 0",
        ));
    }
    if q.max_samples_per_send == 0 {
        return Err(CollectorError::invalid(
            format!("{at}.queue_config.max_samples_per_send"),
            "must be greater than 0",
        ));
    }
    if q.batch_send_deadline.0.is_zero() {
        return Err(CollectorError::invalid(
            format!("{at}.queue_config.batch_send_deadline"),
            "must be greater than 0",
        ));
    }
    if q.min_backoff > q.max_backoff {
        return Err(CollectorError::invalid(
            format!("{at}.queue_config.min_backoff"),
            format!(
                "min_backoff {} is greater than max_backoff {}",
                q.min_backoff, q.max_backoff
            ),
        ));
    }
    Ok(())
}

fn check_relabel(at: &str, rules: &[RelabelConfig]) -> Result<(), CollectorError> {
    Relabeler::new(rules)
        .map(|_| ())
        .map_err(|(i, e)| CollectorError::invalid(format!("{at}[{i}]"), e.to_string()))
}

fn check_labels(at: &str, labels: &BTreeMap<String, String>) -> Result<(), CollectorError> {
    for name in labels.keys() {
        if !is_valid_label_name(name) {
            return Err(CollectorError::invalid(
                at,
                format!("invalid label name {name:?}: must match [a-zA-Z_][a-zA-Z0-9_]*"),
            ));
        }
    }
    Ok(())
}
