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

use fleetwatch_model::remote_write::SeriesSamples;
use fleetwatch_model::{Labels, Sample, STALE_NAN};
use fleetwatch_query::{Engine, EngineOptions};
use fleetwatch_storage::Queryable;
use tokio::sync::watch;

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

/// How long a reload waits for a replaced or removed group's evaluation
/// in flight before aborting its task.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// What identifies a group across reloads: its file and name.
type GroupKey = (String, String);

/// A group with its counters and, once started, its task.
struct Slot {
    group: Arc<Mutex<Group>>,
    metrics: Arc<GroupMetrics>,
    task: Mutex<Option<GroupTask>>,
}

impl Slot {
    fn new(group: Group, metrics: Arc<GroupMetrics>) -> Arc<Self> {
        Arc::new(Self {
            group: Arc::new(Mutex::new(group)),
            metrics,
            task: Mutex::new(None),
        })
    }

    fn key(&self) -> Option<GroupKey> {
        self.group
            .lock()
            .ok()
            .map(|g| (g.file.clone(), g.name.clone()))
    }

    fn take_task(&self) -> Option<GroupTask> {
        self.task.lock().ok().and_then(|mut t| t.take())
    }
}

/// A running group task and how to stop it.
struct GroupTask {
    stop: watch::Sender<bool>,
    handle: tokio::task::JoinHandle<()>,
}

impl GroupTask {
    /// Stops the task after its evaluation in flight, aborting it if that
    /// has not ended by `deadline`.
    async fn stop(self, deadline: tokio::time::Instant) {
        let _ = self.stop.send(true);
        let mut handle = self.handle;
        if tokio::time::timeout_at(deadline, &mut handle)
            .await
            .is_err()
        {
            tracing::warn!("rule group did not stop in time; aborted");
            handle.abort();
        }
    }
}

/// What evaluation reads from and writes to, once started.
#[derive(Clone)]
struct Runtime {
    queryable: Arc<dyn Queryable>,
    appender: Arc<dyn SampleAppender>,
}

/// Counters of config reloads.
#[derive(Debug, Default)]
struct ReloadMetrics {
    successes: AtomicU64,
    failures: AtomicU64,
    last_ok: AtomicU64,
    last_success_ms: AtomicU64,
}

/// What [`RuleManager::update`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateSummary {
    /// Groups kept running untouched (unchanged definition).
    pub unchanged: usize,
    /// Groups restarted with a changed definition (state of unchanged
    /// rules carried over).
    pub changed: usize,
    /// Groups new in this update.
    pub added: usize,
    /// Groups no longer present (stopped, their series marked stale).
    pub removed: usize,
}

/// Loaded rule groups and what evaluates them. The groups can be replaced
/// while they run ([`RuleManager::update`], what a config reload does).
pub struct RuleManager {
    slots: Mutex<Vec<Arc<Slot>>>,
    sinks: Vec<Arc<dyn AlertSink>>,
    opts: Mutex<Arc<ManagerOptions>>,
    runtime: Mutex<Option<Runtime>>,
    updating: tokio::sync::Mutex<()>,
    reloads: ReloadMetrics,
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

/// Compiles the groups of `files` (read and validated) with `opts`'
/// default interval.
pub fn load_groups(files: &[PathBuf], opts: &ManagerOptions) -> Result<Vec<Group>, RulesError> {
    let mut groups = Vec::new();
    for path in files {
        let file = load_rule_file(path)?;
        let origin = path.display().to_string();
        for g in &file.groups {
            groups.push(Group::new(&origin, g, opts.default_interval_ms)?);
        }
    }
    Ok(groups)
}

impl RuleManager {
    /// Loads and validates `files` into groups.
    pub fn load(files: &[PathBuf], opts: ManagerOptions) -> Result<Self, RulesError> {
        let groups = load_groups(files, &opts)?;
        Ok(Self::from_groups(groups, opts))
    }

    /// A manager over already compiled groups.
    pub fn from_groups(groups: Vec<Group>, opts: ManagerOptions) -> Self {
        Self {
            slots: Mutex::new(
                groups
                    .into_iter()
                    .map(|g| Slot::new(g, Arc::default()))
                    .collect(),
            ),
            sinks: Vec::new(),
            opts: Mutex::new(Arc::new(opts)),
            runtime: Mutex::new(None),
            updating: tokio::sync::Mutex::new(()),
            reloads: ReloadMetrics {
                last_ok: AtomicU64::new(1),
                ..ReloadMetrics::default()
            },
        }
    }

    /// Adds a notifier.
    pub fn add_sink(&mut self, sink: Arc<dyn AlertSink>) {
        self.sinks.push(sink);
    }

    fn slots(&self) -> Vec<Arc<Slot>> {
        self.slots.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// A consistent copy of every group (rules, alerts, health).
    pub fn groups(&self) -> Vec<Group> {
        self.slots()
            .iter()
            .filter_map(|s| s.group.lock().ok().map(|g| g.clone()))
            .collect()
    }

    /// The options in force.
    pub fn options(&self) -> Arc<ManagerOptions> {
        match self.opts.lock() {
            Ok(o) => Arc::clone(&o),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Starts one task per group, evaluating over `queryable` and writing
    /// through `appender`. Alerts' `for` state is restored from
    /// `ALERTS_FOR_STATE` after the second evaluation, as Prometheus does.
    /// Groups added later by [`RuleManager::update`] start at once; every
    /// task ends with [`RuleManager::stop`].
    pub fn start(
        self: &Arc<Self>,
        queryable: Arc<dyn Queryable>,
        appender: Arc<dyn SampleAppender>,
    ) {
        let runtime = Runtime {
            queryable,
            appender,
        };
        if let Ok(mut r) = self.runtime.lock() {
            *r = Some(runtime.clone());
        }
        for slot in self.slots() {
            if let Ok(mut g) = slot.group.lock() {
                g.await_restore();
            }
            self.spawn(&slot, &runtime);
        }
    }

    fn spawn(self: &Arc<Self>, slot: &Arc<Slot>, runtime: &Runtime) {
        let (stop, stop_rx) = watch::channel(false);
        let me = Arc::clone(self);
        let handle = tokio::spawn(me.run_group(
            Arc::clone(&slot.group),
            Arc::clone(&slot.metrics),
            runtime.clone(),
            stop_rx,
        ));
        if let Ok(mut t) = slot.task.lock() {
            if let Some(old) = t.replace(GroupTask { stop, handle }) {
                old.handle.abort();
            }
        }
    }

    /// Aborts every group task (the hub's shutdown).
    pub fn stop(&self) {
        if let Ok(mut r) = self.runtime.lock() {
            *r = None;
        }
        for slot in self.slots() {
            if let Some(t) = slot.take_task() {
                t.handle.abort();
            }
        }
    }

    /// Replaces the groups (a config reload), as Prometheus's rule manager
    /// does: a group whose definition is unchanged keeps running with its
    /// state; a changed group is stopped after its evaluation in flight
    /// and restarted, each rule with unchanged kind, name, labels and
    /// expression keeping its alerts (`activeAt` included); groups gone
    /// are stopped and their series marked stale. `opts` replaces the
    /// options (read by every evaluation). Concurrent updates run one
    /// after the other.
    pub async fn update(
        self: &Arc<Self>,
        groups: Vec<Group>,
        opts: ManagerOptions,
    ) -> UpdateSummary {
        let _one_at_a_time = self.updating.lock().await;
        if let Ok(mut o) = self.opts.lock() {
            *o = Arc::new(opts);
        }
        let old: Vec<(Option<GroupKey>, Arc<Slot>)> =
            self.slots().into_iter().map(|s| (s.key(), s)).collect();
        let mut taken = vec![false; old.len()];
        let mut summary = UpdateSummary::default();
        // (slot, needs a task, replaced slot)
        let mut plan: Vec<(Arc<Slot>, bool, Option<Arc<Slot>>)> = Vec::new();
        for g in groups {
            let key = Some((g.file.clone(), g.name.clone()));
            let found = old
                .iter()
                .enumerate()
                .position(|(i, (k, _))| !taken[i] && *k == key);
            match found {
                Some(i) => {
                    taken[i] = true;
                    let slot = Arc::clone(&old[i].1);
                    let same = slot
                        .group
                        .lock()
                        .map(|cur| cur.same_definition(&g))
                        .unwrap_or(false);
                    if same {
                        summary.unchanged += 1;
                        plan.push((slot, false, None));
                    } else {
                        summary.changed += 1;
                        let metrics = Arc::clone(&slot.metrics);
                        plan.push((Slot::new(g, metrics), true, Some(slot)));
                    }
                }
                None => {
                    summary.added += 1;
                    plan.push((Slot::new(g, Arc::default()), true, None));
                }
            }
        }
        let removed: Vec<Arc<Slot>> = old
            .iter()
            .zip(&taken)
            .filter(|(_, t)| !**t)
            .map(|((_, s), _)| Arc::clone(s))
            .collect();
        summary.removed = removed.len();

        // Stop replaced and removed groups (after their evaluation in
        // flight, so the state carried over is their latest).
        let stopping: Vec<GroupTask> = plan
            .iter()
            .filter_map(|(_, _, replaced)| replaced.as_ref())
            .chain(removed.iter())
            .filter_map(|s| s.take_task())
            .collect();
        for t in &stopping {
            let _ = t.stop.send(true);
        }
        let deadline = tokio::time::Instant::now() + STOP_TIMEOUT;
        for t in stopping {
            t.stop(deadline).await;
        }
        for (slot, _, replaced) in &plan {
            let Some(replaced) = replaced else { continue };
            let from = replaced.group.lock().map(|g| g.clone());
            if let (Ok(from), Ok(mut to)) = (from, slot.group.lock()) {
                to.copy_state(&from);
            }
        }
        let runtime = self.runtime.lock().ok().and_then(|r| r.clone());
        if let Some(rt) = &runtime {
            let stale: Vec<Labels> = removed
                .iter()
                .filter_map(|s| s.group.lock().ok().map(|g| g.written_series()))
                .flatten()
                .collect();
            if !stale.is_empty() {
                let appender = Arc::clone(&rt.appender);
                let ts = now_ms();
                let batch = stale
                    .into_iter()
                    .map(|labels| SeriesSamples {
                        labels,
                        samples: vec![Sample::new(ts, STALE_NAN)],
                    })
                    .collect();
                match tokio::task::spawn_blocking(move || appender.append(batch)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "marking the series of removed groups stale failed")
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "marking the series of removed groups stale failed")
                    }
                }
            }
        }
        let new_slots: Vec<Arc<Slot>> = plan.iter().map(|(s, _, _)| Arc::clone(s)).collect();
        if let Ok(mut slots) = self.slots.lock() {
            *slots = new_slots;
        }
        if let Some(rt) = &runtime {
            for (slot, needs_task, _) in &plan {
                if *needs_task {
                    self.spawn(slot, rt);
                }
            }
        }
        tracing::info!(
            unchanged = summary.unchanged,
            changed = summary.changed,
            added = summary.added,
            removed = summary.removed,
            "rule groups updated"
        );
        summary
    }

    /// Records the outcome of a config reload (rendered as
    /// `fleetwatch_rules_config_*` by [`RuleManager::render_metrics`]).
    pub fn record_reload(&self, ok: bool) {
        let r = &self.reloads;
        if ok {
            r.successes.fetch_add(1, Ordering::Relaxed);
            r.last_ok.store(1, Ordering::Relaxed);
            r.last_success_ms
                .store(now_ms().max(0) as u64, Ordering::Relaxed);
        } else {
            r.failures.fetch_add(1, Ordering::Relaxed);
            r.last_ok.store(0, Ordering::Relaxed);
        }
    }

    async fn run_group(
        self: Arc<Self>,
        group: Arc<Mutex<Group>>,
        metrics: Arc<GroupMetrics>,
        runtime: Runtime,
        mut stop: watch::Receiver<bool>,
    ) {
        let (interval_ms, restore_pending) = match group.lock() {
            Ok(g) => (g.interval_ms, g.awaits_restore()),
            Err(_) => return,
        };
        let interval = Duration::from_millis(interval_ms as u64);
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut last: Option<Instant> = None;
        let mut iteration: u64 = 0;
        // Ends when stopped (a reload) or aborted (shutdown).
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => break,
            }
            if *stop.borrow() {
                break;
            }
            let now = Instant::now();
            if let Some(prev) = last {
                let missed = (now - prev).as_millis() as i64 / interval_ms.max(1) - 1;
                if missed > 0 {
                    metrics.missed.fetch_add(missed as u64, Ordering::Relaxed);
                }
            }
            last = Some(now);
            iteration += 1;
            let restore = restore_pending && iteration == 2;
            let (g, q, a, opts) = (
                Arc::clone(&group),
                Arc::clone(&runtime.queryable),
                Arc::clone(&runtime.appender),
                self.options(),
            );
            let result = tokio::task::spawn_blocking(move || {
                let engine = Engine::new(opts.engine.clone());
                let ctx = EvalContext {
                    queryable: q.as_ref(),
                    engine: &engine,
                    external_labels: &opts.external_labels,
                    external_url: &opts.external_url,
                };
                // Evaluate a copy so readers (the API, /metrics) never wait
                // for an evaluation; only this task changes the group.
                let poisoned = || "rule group lock poisoned".to_string();
                let mut local = g.lock().map_err(|_| poisoned())?.clone();
                let ts = now_ms();
                let report = local.eval(&ctx, a.as_ref(), ts, opts.resend_delay_ms);
                if restore {
                    local.restore_for_state(
                        &ctx,
                        now_ms(),
                        opts.for_grace_period_ms,
                        opts.outage_tolerance_ms,
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
        let slots = self.slots();
        for (fi, (name, kind, help)) in families.iter().enumerate() {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for slot in &slots {
                let (Ok(g), m) = (slot.group.lock(), &slot.metrics) else {
                    continue;
                };
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
        let r = &self.reloads;
        let c = |v: &AtomicU64| v.load(Ordering::Relaxed) as f64;
        for (name, kind, help, v) in [
            (
                "fleetwatch_rules_config_last_reload_successful",
                "gauge",
                "Whether the last rule config reload succeeded (1 before any reload).",
                c(&r.last_ok),
            ),
            (
                "fleetwatch_rules_config_last_reload_success_timestamp_seconds",
                "gauge",
                "When rules were last reloaded successfully (0: never).",
                c(&r.last_success_ms) / 1000.0,
            ),
            (
                "fleetwatch_rules_config_reloads_total",
                "counter",
                "Rule config reloads that succeeded.",
                c(&r.successes),
            ),
            (
                "fleetwatch_rules_config_reload_failures_total",
                "counter",
                "Rule config reloads refused (the rules in force kept running).",
                c(&r.failures),
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                fleetwatch_model::exposition::format_value(v)
            );
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
