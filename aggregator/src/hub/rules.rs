//! Wiring rule evaluation into the hub: the rule manager built from the
//! config, its notifiers, and the appender writing results into the head.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use fleetwatch_model::remote_write::SeriesSamples;
use fleetwatch_query::EngineOptions;
use fleetwatch_rules::notify::alertmanager::{AlertmanagerNotifier, AlertmanagerOptions};
use fleetwatch_rules::notify::webhook::{parse_matcher, WebhookNotifier, WebhookOptions};
use fleetwatch_rules::{expand_rule_files, ManagerOptions, RuleManager, SampleAppender};
use fleetwatch_storage::Db;

use crate::{HubConfig, HubError};

/// Writes rule results into the head (durably, through the WAL).
pub struct HeadAppender(pub Arc<Db>);

impl SampleAppender for HeadAppender {
    fn append(&self, series: Vec<SeriesSamples>) -> Result<(), String> {
        self.0
            .head()
            .append(series)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Rule evaluation's parts before they run.
pub struct RuleSetup {
    /// The manager (shared with the API).
    pub manager: Arc<RuleManager>,
    /// Notifier tasks to start.
    pub alertmanager: Option<Arc<AlertmanagerNotifier>>,
    /// Webhook notifiers to start.
    pub webhooks: Vec<Arc<WebhookNotifier>>,
}

fn config_error(reason: String) -> HubError {
    HubError::Config {
        path: "rules".to_string(),
        line: None,
        reason,
    }
}

fn ms(v: Option<i64>, default_ms: i64) -> Duration {
    Duration::from_millis(v.unwrap_or(default_ms).max(0) as u64)
}

/// The external URL: configured, or `http://<listen address>`.
pub fn external_url(config: &HubConfig) -> String {
    config
        .external_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.listen))
        .trim_end_matches('/')
        .to_string()
}

/// Builds the rule manager and notifiers from `config` (none without
/// rule files). Rule files that fail to load fail the start.
pub fn setup(config: &HubConfig, engine: &EngineOptions) -> Result<Option<RuleSetup>, HubError> {
    if config.rule_files.is_empty() {
        return Ok(None);
    }
    let base = config
        .base_dir
        .clone()
        .unwrap_or_else(|| Path::new(".").to_path_buf());
    let files =
        expand_rule_files(&config.rule_files, &base).map_err(|e| config_error(e.to_string()))?;
    let external_url = external_url(config);
    let opts = ManagerOptions {
        default_interval_ms: config.global.evaluation_interval.unwrap_or(60_000).max(1),
        external_labels: config.global.external_labels.clone(),
        external_url: external_url.clone(),
        for_grace_period_ms: config.rules.for_grace_period.unwrap_or(600_000),
        outage_tolerance_ms: config.rules.for_outage_tolerance.unwrap_or(3_600_000),
        resend_delay_ms: config.rules.resend_delay.unwrap_or(60_000),
        engine: engine.clone(),
    };
    let mut manager = RuleManager::load(&files, opts).map_err(|e| config_error(e.to_string()))?;
    let urls: Vec<String> = config
        .alerting
        .alertmanagers
        .iter()
        .flat_map(|a| {
            if a.api_version != "v2" {
                tracing::warn!(api_version = %a.api_version, "only the Alertmanager v2 API is supported; using v2");
            }
            a.urls()
        })
        .collect();
    let alertmanager = if urls.is_empty() {
        None
    } else {
        let timeout = config
            .alerting
            .alertmanagers
            .iter()
            .filter_map(|a| a.timeout)
            .max()
            .unwrap_or(10_000);
        let n = AlertmanagerNotifier::new(AlertmanagerOptions {
            urls,
            timeout: ms(Some(timeout), 10_000),
            queue_capacity: config.rules.notification_queue_capacity,
            external_labels: config.global.external_labels.clone(),
            ..AlertmanagerOptions::default()
        })
        .map_err(config_error)?;
        manager.add_sink(n.clone());
        Some(n)
    };
    let mut webhooks = Vec::new();
    for r in &config.receivers {
        let mut o = WebhookOptions::new(&r.name, &r.url);
        o.group_by = r.group_by.clone();
        o.group_wait = ms(r.group_wait, 30_000);
        o.group_interval = ms(r.group_interval, 300_000);
        o.repeat_interval = ms(r.repeat_interval, 4 * 3_600_000);
        o.matchers = r
            .matchers
            .iter()
            .map(|m| parse_matcher(m))
            .collect::<Result<_, _>>()
            .map_err(|e| config_error(format!("receiver {:?}: {e}", r.name)))?;
        o.send_resolved = r.send_resolved;
        o.max_alerts = r.max_alerts;
        o.timeout = ms(r.timeout, 10_000);
        o.queue_capacity = config.rules.notification_queue_capacity;
        o.external_labels = config.global.external_labels.clone();
        o.external_url = external_url.clone();
        let n = WebhookNotifier::new(o).map_err(config_error)?;
        manager.add_sink(n.clone());
        webhooks.push(n);
    }
    tracing::info!(
        files = files.len(),
        groups = manager.groups().len(),
        "rules loaded"
    );
    Ok(Some(RuleSetup {
        manager: Arc::new(manager),
        alertmanager,
        webhooks,
    }))
}
