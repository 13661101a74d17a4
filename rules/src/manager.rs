//! The rule manager: loads rule files into groups, runs each group on its
//! interval in its own task (groups in parallel, rules in order), restores
//! `for` state after a start, hands alerts to the notifiers, and keeps the
//! evaluation metrics.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fleetwatch_query::{Engine, EngineOptions};
use fleetwatch_storage::Queryable;

use crate::context::{EvalContext, SampleAppender};
use crate::group::Group;
use crate::notify::{render_metric_headers, AlertSink};
use crate::{load_rule_file, RulesError};

/// Settings of rule evaluation.
#[derive(Debug, Clone)]
pub struct ManagerOptions {
    /// Interval of groups that set none (`global.evaluation_interval`).
    pub default_interval_ms: i64,
    /// External labels (`$externalLabels`; added to notifications).
    pub external_labels: BTreeMap<String, String>,
    /// External URL (`$externalURL`, generator URLs).
    pub external_url: String,
    /// Least time an alert restored after a start waits before firing
    /// (Prometheus's `--rules.alert.for-grace-period`, 10m).
    pub for_grace_period_ms: i64,
    /// How long the hub may have been down for `for` state to be restored
    /// (`--rules.alert.for-outage-tolerance`, 1h).
    pub outage_tolerance_ms: i64,
    /// How often a still-firing alert is resent (`--rules.alert.resend-delay`, 1m).
    pub resend_delay_ms: i64,
    /// Query engine options.
    pub engine: EngineOptions,
}

impl Default for ManagerOptions {
    fn default() -> Self {
        Self {
            default_interval_ms: 60_000,
            external_labels: BTreeMap::new(),
            external_url: String::new(),
            for_grace_period_ms: 10 * 60_000,
            outage_tolerance_ms: 3_600_000,
            resend_delay_ms: 60_000,
            engine: EngineOptions::default(),
        }
    }
}

/// Counters of one group.
#[derive(Debug, Default)]
pub struct GroupMetrics {
    /// Group evaluations run.
    pub evaluations: AtomicU64,
    /// Rule evaluations run.
    pub rule_evaluations: AtomicU64,
    /// Rule evaluations that failed.
    pub rule_failures: AtomicU64,
    /// Evaluations skipped because the previous one overran.
    pub missed: AtomicU64,
    /// Sum of group evaluation durations, microseconds.
    pub duration_micros: AtomicU64,
}

/// Loaded rule groups and what evaluates them.
pub struct RuleManager {
    groups: Vec<Arc<Mutex<Group>>>,
    metrics: Vec<Arc<GroupMetrics>>,
    sinks: Vec<Arc<dyn AlertSink>>,
    opts: ManagerOptions,
}

/// Expands `rule_files` entries: a `*` or `?` in the file name part is a
/// glob over that directory (as Prometheus allows); paths are relative to
/// `base`.
pub fn expand_rule_files(patterns: &[String], base: &Path) -> Result<Vec<PathBuf>, RulesError> {
    let mut out = Vec::new();
    for p in patterns {
        let path = base.join(p);
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !name.contains(['*', '?']) {
            out.push(path);
            continue;
        }
        let dir = path.parent().unwrap_or(base);
        let re = regex::Regex::new(&format!(
            "^{}$",
            regex::escape(name).replace("\\*", ".*").replace("\\?", ".")
        ))
        .map_err(|e| RulesError::Yaml {
            path: p.clone(),
            line: None,
            reason: e.to_string(),
        })?;
        let entries = std::fs::read_dir(dir).map_err(|source| RulesError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let mut found: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| re.is_match(n))
            })
            .collect();
        found.sort();
        out.extend(found);
    }
    Ok(out)
}

impl RuleManager {
    /// Loads and validates `files` into groups.
    pub fn load(files: &[PathBuf], opts: ManagerOptions) -> Result<Self, RulesError> {
        let mut groups = Vec::new();
        for path in files {
            let file = load_rule_file(path)?;
            let origin = path.display().to_string();
            for g in &file.groups {
                groups.push(Group::new(&origin, g, opts.default_interval_ms)?);
            }
        }
        Ok(Self::from_groups(groups, opts))
    }

    /// A manager over already compiled groups.
    pub fn from_groups(groups: Vec<Group>, opts: ManagerOptions) -> Self {
        let metrics = groups.iter().map(|_| Arc::default()).collect();
        Self {
            groups: groups
                .into_iter()
                .map(|g| Arc::new(Mutex::new(g)))
                .collect(),
            metrics,
            sinks: Vec::new(),
            opts,
        }
    }

    /// Adds a notifier.
    pub fn add_sink(&mut self, sink: Arc<dyn AlertSink>) {
        self.sinks.push(sink);
    }

    /// A consistent copy of every group (rules, alerts, health).
    pub fn groups(&self) -> Vec<Group> {
        self.groups
            .iter()
            .filter_map(|g| g.lock().ok().map(|g| g.clone()))
            .collect()
    }

    /// The options in force.
    pub fn options(&self) -> &ManagerOptions {
        &self.opts
    }

    /// Starts one task per group, evaluating over `queryable` and writing
    /// through `appender`. Alerts' `for` state is restored from
    /// `ALERTS_FOR_STATE` after the second evaluation, as Prometheus does.
    pub fn start(
        self: &Arc<Self>,
        queryable: Arc<dyn Queryable>,
        appender: Arc<dyn SampleAppender>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        (0..self.groups.len())
            .map(|i| {
                let me = Arc::clone(self);
                let q = Arc::clone(&queryable);
                let a = Arc::clone(&appender);
                tokio::spawn(async move { me.run_group(i, q, a).await })
            })
            .collect()
    }

    async fn run_group(
        self: Arc<Self>,
        idx: usize,
        queryable: Arc<dyn Queryable>,
        appender: Arc<dyn SampleAppender>,
    ) {
        let group = Arc::clone(&self.groups[idx]);
        let metrics = Arc::clone(&self.metrics[idx]);
        let interval_ms = match group.lock() {
            Ok(mut g) => {
                g.await_restore();
                g.interval_ms
            }
            Err(_) => return,
        };
        let interval = Duration::from_millis(interval_ms as u64);
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut last: Option<Instant> = None;
        let mut iteration: u64 = 0;
        loop {
            tick.tick().await;
            let now = Instant::now();
            if let Some(prev) = last {
                let missed = (now - prev).as_millis() as i64 / interval_ms.max(1) - 1;
                if missed > 0 {
                    metrics.missed.fetch_add(missed as u64, Ordering::Relaxed);
                }
            }
            last = Some(now);
            iteration += 1;
            let restore = iteration == 2;
            let (g, q, a, me) = (
                Arc::clone(&group),
                Arc::clone(&queryable),
                Arc::clone(&appender),
                Arc::clone(&self),
            );
            let result = tokio::task::spawn_blocking(move || {
                let engine = Engine::new(me.opts.engine.clone());
                let ctx = EvalContext {
                    queryable: q.as_ref(),
                    engine: &engine,
                    external_labels: &me.opts.external_labels,
                    external_url: &me.opts.external_url,
                };
                // Evaluate a copy so readers (the API, /metrics) never wait
                // for an evaluation; only this task changes the group.
                let poisoned = || "rule group lock poisoned".to_string();
                let mut local = g.lock().map_err(|_| poisoned())?.clone();
                let ts = now_ms();
                let report = local.eval(&ctx, a.as_ref(), ts, me.opts.resend_delay_ms);
                if restore {
                    local.restore_for_state(
                        &ctx,
                        now_ms(),
                        me.opts.for_grace_period_ms,
                        me.opts.outage_tolerance_ms,
                    );
                }
                let summary = (local.rules.len(), local.eval_secs);
                *g.lock().map_err(|_| poisoned())? = local;
                Ok::<_, String>((report, summary.0, summary.1))
            })
            .await;
            match result {
                Ok(Ok((report, rules, secs))) => {
                    metrics.evaluations.fetch_add(1, Ordering::Relaxed);
                    metrics
                        .rule_evaluations
                        .fetch_add(rules as u64, Ordering::Relaxed);
                    metrics
                        .rule_failures
                        .fetch_add(report.failures as u64, Ordering::Relaxed);
                    metrics
                        .duration_micros
                        .fetch_add((secs * 1e6) as u64, Ordering::Relaxed);
                    if !report.alerts.is_empty() {
                        for s in &self.sinks {
                            s.send(&report.alerts);
                        }
                    }
                }
                Ok(Err(e)) => tracing::error!(error = %e, "rule group evaluation failed"),
                Err(e) => tracing::error!(error = %e, "rule group task failed"),
            }
        }
    }

    /// Appends the evaluation and notification metrics in the text format.
    pub fn render_metrics(&self, out: &mut String) {
        let families = [
            (
                "fleetwatch_rule_group_evaluations_total",
                "counter",
                "Group evaluations run.",
            ),
            (
                "fleetwatch_rule_evaluations_total",
                "counter",
                "Rule evaluations run.",
            ),
            (
                "fleetwatch_rule_evaluation_failures_total",
                "counter",
                "Rule evaluations that failed.",
            ),
            (
                "fleetwatch_rule_group_iterations_missed_total",
                "counter",
                "Group evaluations missed because the previous one overran.",
            ),
            (
                "fleetwatch_rule_group_duration_seconds_sum",
                "counter",
                "Total time spent evaluating the group.",
            ),
            (
                "fleetwatch_rule_group_last_duration_seconds",
                "gauge",
                "Duration of the group's last evaluation.",
            ),
            (
                "fleetwatch_rule_group_last_evaluation_timestamp_seconds",
                "gauge",
                "When the group was last evaluated.",
            ),
            (
                "fleetwatch_rule_group_interval_seconds",
                "gauge",
                "The group's evaluation interval.",
            ),
            (
                "fleetwatch_rule_group_rules",
                "gauge",
                "Rules in the group.",
            ),
        ];
        for (fi, (name, kind, help)) in families.iter().enumerate() {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (g, m) in self.groups.iter().zip(&self.metrics) {
                let Ok(g) = g.lock() else { continue };
                let c = |v: &AtomicU64| v.load(Ordering::Relaxed) as f64;
                let v = match fi {
                    0 => c(&m.evaluations),
                    1 => c(&m.rule_evaluations),
                    2 => c(&m.rule_failures),
                    3 => c(&m.missed),
                    4 => c(&m.duration_micros) / 1e6,
                    5 => g.eval_secs,
                    6 => g.last_eval_ms as f64 / 1000.0,
                    7 => g.interval_ms as f64 / 1000.0,
                    _ => g.rules.len() as f64,
                };
                let key =
                    fleetwatch_model::labels::escape_label_value(&format!("{};{}", g.file, g.name));
                let _ = writeln!(
                    out,
                    "{name}{{rule_group=\"{key}\"}} {}",
                    fleetwatch_model::exposition::format_value(v)
                );
            }
        }
        render_metric_headers(out);
        for s in &self.sinks {
            s.metrics().render(out, &s.name(), s.queue_len());
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
