//! Alerting rules: Prometheus's alert state machine (inactive, pending,
//! firing), `for`, `keep_firing_for`, templated labels and annotations,
//! the `ALERTS` / `ALERTS_FOR_STATE` series, restoring `for` state after a
//! restart, and deciding which alerts to (re)send.

use std::collections::{BTreeMap, HashSet};

use fleetwatch_model::{Labels, Matcher, Sample};

use crate::context::EvalContext;
use crate::template::{self, AlertData};

/// How long a resolved alert is kept (and resent as resolved).
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60_000;

/// The state of an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AlertState {
    /// Resolved (kept for a while to be sent as resolved).
    Inactive,
    /// Active, `for` not yet elapsed.
    Pending,
    /// Active for at least `for`.
    Firing,
}

impl AlertState {
    /// The name Prometheus uses (`inactive`, `pending`, `firing`).
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

/// One alert of an alerting rule (one output series of its expression).
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Labels: the series' (without `__name__`), the rule's, `alertname`.
    pub labels: Labels,
    /// Expanded annotations.
    pub annotations: BTreeMap<String, String>,
    /// The last value of the expression for this alert.
    pub value: f64,
    /// The state.
    pub state: AlertState,
    /// When it became pending, ms.
    pub active_at_ms: i64,
    /// When it started firing, ms.
    pub fired_at_ms: Option<i64>,
    /// When it was resolved, ms.
    pub resolved_at_ms: Option<i64>,
    /// When it was last sent to notifiers, ms.
    pub last_sent_at_ms: Option<i64>,
    /// Until when the last notification holds it firing, ms.
    pub valid_until_ms: i64,
    /// Since when it keeps firing after its condition cleared, ms.
    pub keep_firing_since_ms: Option<i64>,
}

impl Alert {
    /// Prometheus's `needsSending`.
    fn needs_sending(&self, ts_ms: i64, resend_delay_ms: i64) -> bool {
        if self.state == AlertState::Pending {
            return false;
        }
        let last = self.last_sent_at_ms.unwrap_or(i64::MIN);
        if self.resolved_at_ms.is_some_and(|r| r > last) {
            return true;
        }
        self.last_sent_at_ms.is_none() || last.saturating_add(resend_delay_ms) < ts_ms
    }
}

/// An alert as handed to notifiers (Alertmanager's v2 alert shape, times in ms).
#[derive(Debug, Clone, PartialEq)]
pub struct OutgoingAlert {
    /// Labels (external labels are added by the notifier).
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// When it fired.
    pub starts_at_ms: i64,
    /// When it resolved, or until when it is valid.
    pub ends_at_ms: i64,
    /// A link to the expression.
    pub generator_url: String,
}

/// A compiled alerting rule with its alerts.
#[derive(Debug, Clone)]
pub struct AlertingRule {
    /// The alert name.
    pub name: String,
    /// The PromQL expression.
    pub expr: String,
    /// `for`, ms.
    pub for_ms: i64,
    /// `keep_firing_for`, ms.
    pub keep_firing_for_ms: i64,
    /// Label templates (group labels merged in, rule labels winning).
    pub labels: BTreeMap<String, String>,
    /// Annotation templates.
    pub annotations: BTreeMap<String, String>,
    /// Alerts by label set.
    pub active: BTreeMap<Labels, Alert>,
    /// False until `for` state has been restored after a start; no
    /// `ALERTS` series are written before.
    pub restored: bool,
}

/// Builds the `ALERTS`-style series of an alert.
fn alert_series(alert: &Alert, name: &str, state: Option<&str>) -> Labels {
    let mut l = alert.labels.clone();
    l.set(fleetwatch_model::METRIC_NAME, name);
    if let Some(s) = state {
        l.set("alertstate", s);
    }
    l
}

impl AlertingRule {
    /// Evaluates at `ts_ms`; returns the `ALERTS` and `ALERTS_FOR_STATE`
    /// samples. `limit` > 0 caps the number of active alerts.
    pub fn eval(
        &mut self,
        ctx: &EvalContext<'_>,
        ts_ms: i64,
        limit: u64,
    ) -> Result<Vec<(Labels, f64)>, String> {
        let result = ctx.query(&self.expr, ts_ms)?;
        let querier = ctx.querier(ts_ms);
        let mut fresh: BTreeMap<Labels, Alert> = BTreeMap::new();
        for (series, value) in result {
            let data = AlertData {
                labels: series
                    .iter()
                    .map(|l| (l.name.clone(), l.value.clone()))
                    .collect(),
                value,
                external_labels: ctx.external_labels.clone(),
                external_url: ctx.external_url.to_string(),
            };
            let expand = |what: &str, text: &str| {
                template::expand(&format!("__alert_{}", self.name), text, &data, Some(&querier))
                    .unwrap_or_else(|e| {
                        tracing::warn!(alert = %self.name, %what, error = %e, "expanding alert template failed");
                        format!("<error expanding template: {e}>")
                    })
            };
            let mut labels = series.without_metric_name();
            for (k, v) in &self.labels {
                labels.set(k, &expand(k, v));
            }
            labels.set("alertname", &self.name);
            let annotations = self
                .annotations
                .iter()
                .map(|(k, v)| (k.clone(), expand(k, v)))
                .collect();
            if fresh.contains_key(&labels) {
                return Err(
                    "vector contains metrics with the same labelset after applying alert labels"
                        .to_string(),
                );
            }
            fresh.insert(
                labels.clone(),
                Alert {
                    labels,
                    annotations,
                    value,
                    state: AlertState::Pending,
                    active_at_ms: ts_ms,
                    fired_at_ms: None,
                    resolved_at_ms: None,
                    last_sent_at_ms: None,
                    valid_until_ms: 0,
                    keep_firing_since_ms: None,
                },
            );
        }
        let seen: HashSet<Labels> = fresh.keys().cloned().collect();
        for (key, a) in fresh {
            match self.active.get_mut(&key) {
                Some(existing) if existing.state != AlertState::Inactive => {
                    existing.value = a.value;
                    existing.annotations = a.annotations;
                }
                _ => {
                    self.active.insert(key, a);
                }
            }
        }
        let mut out = Vec::new();
        let mut active_pending = 0u64;
        let mut remove = Vec::new();
        for (key, a) in self.active.iter_mut() {
            if !seen.contains(key) {
                let mut keep_firing = false;
                if a.state == AlertState::Firing && self.keep_firing_for_ms > 0 {
                    let since = *a.keep_firing_since_ms.get_or_insert(ts_ms);
                    keep_firing = ts_ms - since < self.keep_firing_for_ms;
                }
                if a.state == AlertState::Pending
                    || a.resolved_at_ms
                        .is_some_and(|r| ts_ms - r > RESOLVED_RETENTION_MS)
                {
                    remove.push(key.clone());
                }
                if a.state != AlertState::Inactive && !keep_firing {
                    a.state = AlertState::Inactive;
                    a.resolved_at_ms = Some(ts_ms);
                }
                if !keep_firing {
                    continue;
                }
            } else {
                a.keep_firing_since_ms = None;
            }
            active_pending += 1;
            if a.state == AlertState::Pending && ts_ms - a.active_at_ms >= self.for_ms {
                a.state = AlertState::Firing;
                a.fired_at_ms = Some(ts_ms);
            }
            if self.restored {
                out.push((alert_series(a, "ALERTS", Some(a.state.as_str())), 1.0));
                out.push((
                    alert_series(a, "ALERTS_FOR_STATE", None),
                    a.active_at_ms.div_euclid(1000) as f64,
                ));
            }
        }
        for k in remove {
            self.active.remove(&k);
        }
        if limit > 0 && active_pending > limit {
            self.active.clear();
            return Err(format!(
                "exceeded limit of {limit} with {active_pending} alerts"
            ));
        }
        Ok(out)
    }

    /// Restores `for` state after a start, as Prometheus does it: for each
    /// active alert, the last `ALERTS_FOR_STATE` sample within
    /// `outage_tolerance_ms` gives the original `activeAt`; the time the
    /// hub was down is added to it, and an alert about to fire waits at
    /// least `grace_ms`. Rules whose `for` is shorter than the grace period
    /// are not restored.
    pub fn restore_for_state(
        &mut self,
        ctx: &EvalContext<'_>,
        ts_ms: i64,
        grace_ms: i64,
        outage_tolerance_ms: i64,
    ) {
        if self.for_ms < grace_ms {
            self.restored = true;
            return;
        }
        let hold = self.for_ms;
        for a in self.active.values_mut() {
            let mut matchers = vec![Matcher::equal(
                fleetwatch_model::METRIC_NAME,
                "ALERTS_FOR_STATE",
            )];
            matchers.extend(a.labels.iter().map(|l| Matcher::equal(&l.name, &l.value)));
            let series = match ctx
                .queryable
                .select(&matchers, ts_ms - outage_tolerance_ms, ts_ms)
            {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(alert = %self.name, error = %e, "querying ALERTS_FOR_STATE failed");
                    continue;
                }
            };
            let Some(last) = series
                .iter()
                .find(|s| s.labels.without_metric_name() == a.labels)
                .and_then(|s| s.samples.last().copied())
            else {
                continue;
            };
            let Sample {
                timestamp_ms: t,
                value: v,
            } = last;
            if fleetwatch_model::is_stale_nan(v) || !v.is_finite() {
                continue;
            }
            let down_at = t.div_euclid(1000) * 1000;
            let mut restored_active_at = (v as i64).saturating_mul(1000);
            let spent = down_at - restored_active_at;
            let remaining = hold - spent;
            if remaining <= 0 {
                // It was firing when the hub went down: the next evaluation fires it again.
            } else if remaining < grace_ms {
                restored_active_at = ts_ms + grace_ms - hold;
            } else {
                restored_active_at += ts_ms - down_at;
            }
            tracing::info!(alert = %self.name, labels = %a.labels, active_at_ms = restored_active_at, "restored for state");
            a.active_at_ms = restored_active_at;
        }
        self.restored = true;
    }

    /// The alerts to send at `ts_ms` (firing ones every `resend_delay_ms`,
    /// resolved ones once more after resolving), marking them sent.
    pub fn alerts_to_send(
        &mut self,
        ts_ms: i64,
        resend_delay_ms: i64,
        interval_ms: i64,
        external_url: &str,
    ) -> Vec<OutgoingAlert> {
        let delta = resend_delay_ms.max(interval_ms);
        let generator_url = generator_url(external_url, &self.expr);
        let mut out = Vec::new();
        for a in self.active.values_mut() {
            if !a.needs_sending(ts_ms, resend_delay_ms) {
                continue;
            }
            a.last_sent_at_ms = Some(ts_ms);
            a.valid_until_ms = ts_ms.saturating_add(delta.saturating_mul(4));
            out.push(OutgoingAlert {
                labels: a
                    .labels
                    .iter()
                    .map(|l| (l.name.clone(), l.value.clone()))
                    .collect(),
                annotations: a.annotations.clone(),
                starts_at_ms: a.fired_at_ms.unwrap_or(a.active_at_ms),
                ends_at_ms: a.resolved_at_ms.unwrap_or(a.valid_until_ms),
                generator_url: generator_url.clone(),
            });
        }
        out
    }

    /// The rule's state: the most severe state of its alerts.
    pub fn state(&self) -> AlertState {
        self.active
            .values()
            .map(|a| a.state)
            .max()
            .unwrap_or(AlertState::Inactive)
    }
}

/// Prometheus's generator URL: `<external URL>/graph?g0.expr=...&g0.tab=1`.
pub fn generator_url(external_url: &str, expr: &str) -> String {
    let mut q = String::new();
    for b in expr.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                q.push(b as char)
            }
            b' ' => q.push('+'),
            _ => q.push_str(&format!("%{b:02X}")),
        }
    }
    format!(
        "{}/graph?g0.expr={q}&g0.tab=1",
        external_url.trim_end_matches('/')
    )
}
