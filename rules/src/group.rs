//! Rule groups: rules evaluated in order at one timestamp, their results
//! (with staleness markers for series that disappeared) written back,
//! health and timing per rule.

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use fleetwatch_model::duration::parse_duration_ms;
use fleetwatch_model::remote_write::SeriesSamples;
use fleetwatch_model::{Labels, Sample, STALE_NAN};

use crate::alerting::{AlertingRule, OutgoingAlert};
use crate::context::{EvalContext, SampleAppender};
use crate::recording::RecordingRule;
use crate::{RuleGroup, RulesError};

/// A rule of either kind.
#[derive(Debug, Clone)]
pub enum RuleKind {
    /// An alerting rule.
    Alerting(AlertingRule),
    /// A recording rule.
    Recording(RecordingRule),
}

/// A rule's health after its last evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleHealth {
    /// Not evaluated yet.
    Unknown,
    /// The last evaluation succeeded.
    Ok,
    /// The last evaluation failed.
    Err,
}

impl RuleHealth {
    /// Prometheus's name: `unknown`, `ok`, `err`.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleHealth::Unknown => "unknown",
            RuleHealth::Ok => "ok",
            RuleHealth::Err => "err",
        }
    }
}

/// A rule with its evaluation bookkeeping.
#[derive(Debug, Clone)]
pub struct RuleEntry {
    /// The rule.
    pub kind: RuleKind,
    /// Health after the last evaluation.
    pub health: RuleHealth,
    /// The last error, if the last evaluation failed.
    pub last_error: Option<String>,
    /// When it was last evaluated, ms (0: never).
    pub last_eval_ms: i64,
    /// How long the last evaluation took, seconds.
    pub eval_secs: f64,
    prev_series: HashSet<Labels>,
}

impl RuleEntry {
    /// The alert or record name.
    pub fn name(&self) -> &str {
        match &self.kind {
            RuleKind::Alerting(r) => &r.name,
            RuleKind::Recording(r) => &r.name,
        }
    }

    /// Whether `other` is the same rule as written in its file: kind,
    /// name, expression, labels, and for alerts `for`, `keep_firing_for`
    /// and annotations.
    pub fn same_definition(&self, other: &RuleEntry) -> bool {
        match (&self.kind, &other.kind) {
            (RuleKind::Alerting(a), RuleKind::Alerting(b)) => {
                a.name == b.name
                    && a.expr == b.expr
                    && a.for_ms == b.for_ms
                    && a.keep_firing_for_ms == b.keep_firing_for_ms
                    && a.labels == b.labels
                    && a.annotations == b.annotations
            }
            (RuleKind::Recording(a), RuleKind::Recording(b)) => {
                a.name == b.name && a.expr == b.expr && a.labels == b.labels
            }
            _ => false,
        }
    }

    /// The identity under which a reload keeps a rule's state: kind, name,
    /// labels and expression.
    fn identity(&self) -> (bool, &str, &BTreeMap<String, String>, &str) {
        match &self.kind {
            RuleKind::Alerting(r) => (true, &r.name, &r.labels, &r.expr),
            RuleKind::Recording(r) => (false, &r.name, &r.labels, &r.expr),
        }
    }
}

/// What one group evaluation produced.
#[derive(Debug, Default)]
pub struct GroupEvalReport {
    /// Rules whose evaluation failed.
    pub failures: usize,
    /// Alerts to hand to the notifiers.
    pub alerts: Vec<OutgoingAlert>,
}

/// A rule group ready to evaluate.
#[derive(Debug, Clone)]
pub struct Group {
    /// Group name.
    pub name: String,
    /// The file it came from.
    pub file: String,
    /// Evaluation interval, ms.
    pub interval_ms: i64,
    /// Most alerts or series per rule (0: no limit).
    pub limit: u64,
    /// The rules, in order.
    pub rules: Vec<RuleEntry>,
    /// When the group was last evaluated, ms (0: never).
    pub last_eval_ms: i64,
    /// How long the last evaluation took, seconds.
    pub eval_secs: f64,
    /// Series of rules dropped by a reload, marked stale at the next
    /// evaluation.
    stale_series: Vec<Labels>,
}

fn ms(
    what: &str,
    s: &Option<String>,
    group: &RuleGroup,
    file: &str,
    rule: &str,
) -> Result<i64, RulesError> {
    match s {
        None => Ok(0),
        Some(s) => parse_duration_ms(s).map_err(|e| RulesError::Invalid {
            path: file.to_string(),
            group: group.name.clone(),
            rule: rule.to_string(),
            reason: format!("{what}: {e}"),
        }),
    }
}

impl Group {
    /// Compiles a validated group; `default_interval_ms` applies when the
    /// group sets no interval.
    pub fn new(file: &str, g: &RuleGroup, default_interval_ms: i64) -> Result<Self, RulesError> {
        let interval_ms = match &g.interval {
            Some(_) => ms("interval", &g.interval, g, file, "-")?,
            None => default_interval_ms,
        }
        .max(1);
        let mut rules = Vec::with_capacity(g.rules.len());
        for r in &g.rules {
            let mut labels: BTreeMap<String, String> = g.labels.clone();
            labels.extend(r.labels.clone());
            let kind = match (&r.alert, &r.record) {
                (Some(alert), _) => RuleKind::Alerting(AlertingRule {
                    name: alert.clone(),
                    expr: r.expr.clone(),
                    for_ms: ms("for", &r.for_, g, file, alert)?,
                    keep_firing_for_ms: ms("keep_firing_for", &r.keep_firing_for, g, file, alert)?,
                    labels,
                    annotations: r.annotations.clone(),
                    active: BTreeMap::new(),
                    restored: true,
                }),
                (None, Some(record)) => RuleKind::Recording(RecordingRule {
                    name: record.clone(),
                    expr: r.expr.clone(),
                    labels,
                }),
                (None, None) => {
                    return Err(RulesError::Invalid {
                        path: file.to_string(),
                        group: g.name.clone(),
                        rule: "-".into(),
                        reason: "one of 'alert' or 'record' must be set".into(),
                    })
                }
            };
            rules.push(RuleEntry {
                kind,
                health: RuleHealth::Unknown,
                last_error: None,
                last_eval_ms: 0,
                eval_secs: 0.0,
                prev_series: HashSet::new(),
            });
        }
        Ok(Self {
            name: g.name.clone(),
            file: file.to_string(),
            interval_ms,
            limit: g.limit.unwrap_or(0),
            rules,
            last_eval_ms: 0,
            eval_secs: 0.0,
            stale_series: Vec::new(),
        })
    }

    /// Whether `other` is this group as written in its file (same name,
    /// file, interval, limit and rules in the same order): a reload keeps
    /// such a group running untouched.
    pub fn same_definition(&self, other: &Group) -> bool {
        self.name == other.name
            && self.file == other.file
            && self.interval_ms == other.interval_ms
            && self.limit == other.limit
            && self.rules.len() == other.rules.len()
            && self
                .rules
                .iter()
                .zip(&other.rules)
                .all(|(a, b)| a.same_definition(b))
    }

    /// Takes over the state of `from`, the group this one replaces after
    /// a reload, as Prometheus's `CopyState` does: each rule whose kind,
    /// name, labels and expression are unchanged keeps its alerts (with
    /// their `activeAt`), its health and the series it wrote last (so the
    /// ones that disappear are marked stale); the series of rules that
    /// are gone are marked stale at the next evaluation.
    pub fn copy_state(&mut self, from: &Group) {
        self.last_eval_ms = from.last_eval_ms;
        self.eval_secs = from.eval_secs;
        let mut used = vec![false; from.rules.len()];
        for rule in &mut self.rules {
            let Some(fi) = from
                .rules
                .iter()
                .enumerate()
                .position(|(i, old)| !used[i] && old.identity() == rule.identity())
            else {
                continue;
            };
            used[fi] = true;
            let old = &from.rules[fi];
            rule.prev_series = old.prev_series.clone();
            rule.health = old.health;
            rule.last_error = old.last_error.clone();
            rule.last_eval_ms = old.last_eval_ms;
            rule.eval_secs = old.eval_secs;
            if let (RuleKind::Alerting(new), RuleKind::Alerting(old)) = (&mut rule.kind, &old.kind)
            {
                new.active = old.active.clone();
                new.restored = old.restored;
            }
        }
        self.stale_series = from.stale_series.clone();
        for (old, used) in from.rules.iter().zip(used) {
            if !used {
                self.stale_series.extend(old.prev_series.iter().cloned());
            }
        }
    }

    /// Every series the group's rules wrote at their last evaluation (and
    /// those still to be marked stale): what a removed group marks stale.
    pub fn written_series(&self) -> Vec<Labels> {
        let mut out: Vec<Labels> = self
            .rules
            .iter()
            .flat_map(|r| r.prev_series.iter().cloned())
            .chain(self.stale_series.iter().cloned())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Whether an alerting rule still waits for its `for` state to be
    /// restored.
    pub fn awaits_restore(&self) -> bool {
        self.rules
            .iter()
            .any(|r| matches!(&r.kind, RuleKind::Alerting(a) if !a.restored))
    }

    /// Marks every alerting rule as waiting for its `for` state to be
    /// restored (no `ALERTS` series until [`Group::restore_for_state`]).
    pub fn await_restore(&mut self) {
        for r in &mut self.rules {
            if let RuleKind::Alerting(a) = &mut r.kind {
                a.restored = false;
            }
        }
    }

    /// Restores the `for` state of every alerting rule not restored yet
    /// (see [`AlertingRule::restore_for_state`]).
    pub fn restore_for_state(
        &mut self,
        ctx: &EvalContext<'_>,
        ts_ms: i64,
        grace_ms: i64,
        outage_tolerance_ms: i64,
    ) {
        for r in &mut self.rules {
            if let RuleKind::Alerting(a) = &mut r.kind {
                if !a.restored {
                    a.restore_for_state(ctx, ts_ms, grace_ms, outage_tolerance_ms);
                }
            }
        }
    }

    /// Evaluates every rule in order at `ts_ms`, appending results and
    /// staleness markers through `appender`; collects alerts to send
    /// (`resend_delay_ms` as Prometheus's `--rules.alert.resend-delay`).
    pub fn eval(
        &mut self,
        ctx: &EvalContext<'_>,
        appender: &dyn SampleAppender,
        ts_ms: i64,
        resend_delay_ms: i64,
    ) -> GroupEvalReport {
        let started = Instant::now();
        let mut report = GroupEvalReport::default();
        let limit = self.limit;
        for rule in &mut self.rules {
            let rule_started = Instant::now();
            let result = match &mut rule.kind {
                RuleKind::Alerting(a) => a.eval(ctx, ts_ms, limit),
                RuleKind::Recording(r) => r.eval(ctx, ts_ms, limit),
            };
            let outcome = result.and_then(|samples| {
                let current: HashSet<Labels> = samples.iter().map(|(l, _)| l.clone()).collect();
                let mut batch: Vec<SeriesSamples> = samples
                    .into_iter()
                    .map(|(labels, v)| SeriesSamples {
                        labels,
                        samples: vec![Sample::new(ts_ms, v)],
                    })
                    .collect();
                batch.extend(
                    rule.prev_series
                        .difference(&current)
                        .map(|l| SeriesSamples {
                            labels: l.clone(),
                            samples: vec![Sample::new(ts_ms, STALE_NAN)],
                        }),
                );
                batch.sort_by(|a, b| a.labels.cmp(&b.labels));
                if !batch.is_empty() {
                    appender
                        .append(batch)
                        .map_err(|e| format!("storing results: {e}"))?;
                }
                rule.prev_series = current;
                Ok(())
            });
            rule.last_eval_ms = ts_ms;
            rule.eval_secs = rule_started.elapsed().as_secs_f64();
            match outcome {
                Ok(()) => {
                    rule.health = RuleHealth::Ok;
                    rule.last_error = None;
                }
                Err(e) => {
                    tracing::warn!(group = %self.name, rule = %rule.name(), error = %e, "rule evaluation failed");
                    rule.health = RuleHealth::Err;
                    rule.last_error = Some(e);
                    report.failures += 1;
                }
            }
            if let RuleKind::Alerting(a) = &mut rule.kind {
                report.alerts.extend(a.alerts_to_send(
                    ts_ms,
                    resend_delay_ms,
                    self.interval_ms,
                    ctx.external_url,
                ));
            }
        }
        if !self.stale_series.is_empty() {
            // Series of rules a reload removed, unless a rule wrote them now.
            let written: HashSet<&Labels> = self
                .rules
                .iter()
                .flat_map(|r| r.prev_series.iter())
                .collect();
            let mut batch: Vec<SeriesSamples> = std::mem::take(&mut self.stale_series)
                .into_iter()
                .filter(|l| !written.contains(l))
                .map(|labels| SeriesSamples {
                    labels,
                    samples: vec![Sample::new(ts_ms, STALE_NAN)],
                })
                .collect();
            batch.sort_by(|a, b| a.labels.cmp(&b.labels));
            batch.dedup_by(|a, b| a.labels == b.labels);
            if !batch.is_empty() {
                if let Err(e) = appender.append(batch) {
                    tracing::warn!(group = %self.name, error = %e, "marking the series of removed rules stale failed");
                }
            }
        }
        self.last_eval_ms = ts_ms;
        self.eval_secs = started.elapsed().as_secs_f64();
        report
    }
}
