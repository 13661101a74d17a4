//! Wiring rule evaluation into the hub: the rule manager built from the
//! config, its notifiers, and the appender writing results into the head.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fleetwatch_model::remote_write::SeriesSamples;
use fleetwatch_query::EngineOptions;
use fleetwatch_rules::notify::alertmanager::{AlertmanagerNotifier, AlertmanagerOptions};
use fleetwatch_rules::notify::webhook::{parse_matcher, WebhookNotifier, WebhookOptions};
use fleetwatch_rules::{
    expand_rule_files, load_groups, ManagerOptions, RuleManager, SampleAppender,
};
use fleetwatch_storage::Db;

use crate::hub::AppState;
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

/// The rule manager's options from `config`.
fn manager_options(config: &HubConfig, engine: &EngineOptions) -> ManagerOptions {
    ManagerOptions {
        default_interval_ms: config.global.evaluation_interval.unwrap_or(60_000).max(1),
        external_labels: config.global.external_labels.clone(),
        external_url: external_url(config),
        for_grace_period_ms: config.rules.for_grace_period.unwrap_or(600_000),
        outage_tolerance_ms: config.rules.for_outage_tolerance.unwrap_or(3_600_000),
        resend_delay_ms: config.rules.resend_delay.unwrap_or(60_000),
        engine: engine.clone(),
    }
}

/// The rule files of `config`, globs expanded.
fn rule_files(config: &HubConfig) -> Result<Vec<PathBuf>, HubError> {
    let base = config
        .base_dir
        .clone()
        .unwrap_or_else(|| Path::new(".").to_path_buf());
    expand_rule_files(&config.rule_files, &base).map_err(|e| config_error(e.to_string()))
}

/// Builds the rule manager (without groups when there are no rule files,
/// so a reload can add some) and the notifiers from `config`; always
/// `Some`. Rule files that fail to load fail the start.
pub fn setup(config: &HubConfig, engine: &EngineOptions) -> Result<Option<RuleSetup>, HubError> {
    let files = rule_files(config)?;
    let external_url = external_url(config);
    let opts = manager_options(config, engine);
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

/// Reloads the rules (SIGHUP, `POST /-/reload`): re-reads the config file
/// the hub started from (or, without one, the start config's rule files),
/// then its rule files, and replaces the rule groups; groups and rules
/// that did not change keep their state (see [`RuleManager::update`]).
/// `rule_files`, `global.evaluation_interval`, `global.external_labels`,
/// `external_url` and the `rules` timings take effect; a change of
/// `alerting`, `receivers` or `rules.notification_queue_capacity` needs a
/// restart and is refused, as are a config or rule file that does not load
/// or validate: then nothing changes and the rules in force keep running.
/// Other sections are not reloaded. Returns what changed, or why nothing
/// did.
pub async fn reload_rules(state: &AppState) -> Result<String, String> {
    let Some(manager) = &state.rules else {
        return Err("rule evaluation is not set up".to_string());
    };
    let outcome = reload(state, manager).await;
    manager.record_reload(outcome.is_ok());
    match &outcome {
        Ok(summary) => tracing::info!(%summary, "rules reloaded"),
        Err(e) => {
            tracing::error!(error = %e, "rule reload refused; the rules in force keep running")
        }
    }
    outcome
}

async fn reload(state: &AppState, manager: &Arc<RuleManager>) -> Result<String, String> {
    let path = state.config.config_file.clone();
    let start_config = state.config.clone();
    let engine = state.engine.clone();
    let loaded = tokio::task::spawn_blocking(move || {
        let config = match &path {
            Some(path) => HubConfig::load(path).map_err(|e| e.to_string())?,
            None => start_config.clone(),
        };
        // Notifiers are built once at start; these sections are compared
        // through their Debug form (the config types have no PartialEq).
        let restart_needed = [
            (
                "alerting",
                format!("{:?}", config.alerting) != format!("{:?}", start_config.alerting),
            ),
            (
                "receivers",
                format!("{:?}", config.receivers) != format!("{:?}", start_config.receivers),
            ),
            (
                "rules.notification_queue_capacity",
                config.rules.notification_queue_capacity
                    != start_config.rules.notification_queue_capacity,
            ),
        ];
        if let Some((section, _)) = restart_needed.iter().find(|(_, changed)| *changed) {
            return Err(format!(
                "{section} changed: notifier changes need a restart; nothing was changed"
            ));
        }
        let files = rule_files(&config).map_err(|e| e.to_string())?;
        let opts = manager_options(&config, &engine);
        let groups = load_groups(&files, &opts).map_err(|e| e.to_string())?;
        Ok((groups, opts, files.len()))
    })
    .await
    .map_err(|e| format!("reload task failed: {e}"))?;
    let (groups, opts, files) = loaded?;
    let (count, rules) = (
        groups.len(),
        groups.iter().map(|g| g.rules.len()).sum::<usize>(),
    );
    let s = manager.update(groups, opts).await;
    Ok(format!(
        "{files} rule files, {count} groups, {rules} rules ({} unchanged, {} changed, {} added, {} removed groups)",
        s.unchanged, s.changed, s.added, s.removed
    ))
}
