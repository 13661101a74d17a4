//! A webhook notifier speaking Alertmanager's webhook JSON (version "4"),
//! with a small route of its own: matchers select alerts, `group_by`
//! groups them, and `group_wait`, `group_interval` and `repeat_interval`
//! pace notifications as Alertmanager does.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetwatch_model::{Labels, Matcher};
use serde_json::json;

use super::{
    fingerprint, post_with_retries, rfc3339, with_external_labels, AlertSink, Delivery,
    NotifierMetrics,
};
use crate::alerting::OutgoingAlert;

/// Settings of one webhook receiver and its route.
#[derive(Debug, Clone)]
pub struct WebhookOptions {
    /// Receiver name (`receiver` in the payload).
    pub name: String,
    /// Where to post.
    pub url: String,
    /// Labels to group by (`...` groups by all labels; empty: one group).
    pub group_by: Vec<String>,
    /// Wait before the first notification of a new group.
    pub group_wait: Duration,
    /// Wait between notifications of a group that changed.
    pub group_interval: Duration,
    /// Wait before repeating an unchanged notification.
    pub repeat_interval: Duration,
    /// Only alerts matching all of these.
    pub matchers: Vec<Matcher>,
    /// Also notify about resolved alerts.
    pub send_resolved: bool,
    /// Most alerts per notification (0: no limit).
    pub max_alerts: usize,
    /// Timeout of one request.
    pub timeout: Duration,
    /// Attempts per notification.
    pub attempts: usize,
    /// Most alerts waiting; the oldest are dropped beyond.
    pub queue_capacity: usize,
    /// Labels added to every alert that lacks them.
    pub external_labels: BTreeMap<String, String>,
    /// `externalURL` in the payload.
    pub external_url: String,
}

impl WebhookOptions {
    /// Defaults as Alertmanager's route: group_wait 30s, group_interval
    /// 5m, repeat_interval 4h; send_resolved on.
    pub fn new(name: &str, url: &str) -> Self {
        Self {
            name: name.to_string(),
            url: url.to_string(),
            group_by: Vec::new(),
            group_wait: Duration::from_secs(30),
            group_interval: Duration::from_secs(300),
            repeat_interval: Duration::from_secs(4 * 3600),
            matchers: Vec::new(),
            send_resolved: true,
            max_alerts: 0,
            timeout: Duration::from_secs(10),
            attempts: 3,
            queue_capacity: 10_000,
            external_labels: BTreeMap::new(),
            external_url: String::new(),
        }
    }
}

/// What was last delivered for a group.
struct Sent {
    firing: BTreeSet<String>,
    resolved: BTreeSet<String>,
    at: Instant,
}

/// Alerts grouped by the `group_by` labels.
struct AggrGroup {
    labels: BTreeMap<String, String>,
    alerts: BTreeMap<String, OutgoingAlert>,
    next_flush: Instant,
    sent: Option<Sent>,
}

/// The webhook notifier: a queue, the aggregation groups and a task that
/// flushes them.
pub struct WebhookNotifier {
    opts: WebhookOptions,
    delivery: Delivery,
}

/// Parses an Alertmanager-style matcher: `name="value"`, `name!=v`,
/// `name=~"re"`, `name!~re`.
pub fn parse_matcher(s: &str) -> Result<Matcher, String> {
    let s = s.trim();
    let ops = [
        ("=~", fleetwatch_model::MatchOp::RegexMatch),
        ("!~", fleetwatch_model::MatchOp::RegexNoMatch),
        ("!=", fleetwatch_model::MatchOp::NotEqual),
        ("=", fleetwatch_model::MatchOp::Equal),
    ];
    let (pos, len, op) = ops
        .iter()
        .filter_map(|(tok, op)| s.find(tok).map(|p| (p, tok.len(), *op)))
        .min_by_key(|(p, l, _)| (*p, usize::MAX - l))
        .ok_or_else(|| format!("bad matcher {s:?}: no operator"))?;
    let name = s[..pos].trim();
    if !fleetwatch_model::is_valid_label_name(name) {
        return Err(format!("bad matcher {s:?}: invalid label name"));
    }
    let mut value = s[pos + len..].trim();
    if value.len() >= 2 && value.starts_with('"') && value.ends_with('"') {
        value = &value[1..value.len() - 1];
    }
    Matcher::new(op, name, value.replace("\\\"", "\""))
        .map_err(|e| format!("bad matcher {s:?}: {e}"))
}

impl WebhookNotifier {
    /// A notifier with `opts`; call [`WebhookNotifier::spawn`] to start it.
    pub fn new(opts: WebhookOptions) -> Result<Arc<Self>, String> {
        let delivery = Delivery::new(opts.timeout, opts.queue_capacity)?;
        Ok(Arc::new(Self { opts, delivery }))
    }

    /// Starts the dispatch task.
    pub fn spawn(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = Arc::clone(self);
        tokio::spawn(async move { me.run().await })
    }

    fn route_key(&self) -> String {
        if self.opts.matchers.is_empty() {
            return "{}".to_string();
        }
        let m: Vec<String> = self
            .opts
            .matchers
            .iter()
            .map(|m| {
                let op = match m.op {
                    fleetwatch_model::MatchOp::Equal => "=",
                    fleetwatch_model::MatchOp::NotEqual => "!=",
                    fleetwatch_model::MatchOp::RegexMatch => "=~",
                    fleetwatch_model::MatchOp::RegexNoMatch => "!~",
                };
                format!("{}{op}{:?}", m.name, m.value)
            })
            .collect();
        format!("{{}}/{{{}}}", m.join(","))
    }

    fn group_labels(&self, labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        if self.opts.group_by.iter().any(|g| g == "...") {
            return labels.clone();
        }
        self.opts
            .group_by
            .iter()
            .filter_map(|g| labels.get(g).map(|v| (g.clone(), v.clone())))
            .collect()
    }

    async fn run(&self) {
        let mut groups: BTreeMap<BTreeMap<String, String>, AggrGroup> = BTreeMap::new();
        loop {
            tokio::select! {
                batch = self.delivery.queue.pop_batch(1024) => self.ingest(&mut groups, batch),
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
            let now = Instant::now();
            let due: Vec<_> = groups
                .iter()
                .filter(|(_, g)| g.next_flush <= now)
                .map(|(k, _)| k.clone())
                .collect();
            for key in due {
                if let Some(g) = groups.get_mut(&key) {
                    self.flush(g).await;
                    g.next_flush = Instant::now() + self.opts.group_interval;
                    if g.alerts.is_empty() {
                        groups.remove(&key);
                    }
                }
            }
        }
    }

    fn ingest(
        &self,
        groups: &mut BTreeMap<BTreeMap<String, String>, AggrGroup>,
        batch: Vec<OutgoingAlert>,
    ) {
        for mut a in batch {
            a.labels = with_external_labels(&a.labels, &self.opts.external_labels);
            let ls = Labels::from_pairs(a.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            if !self.opts.matchers.iter().all(|m| m.matches_labels(&ls)) {
                continue;
            }
            let key = self.group_labels(&a.labels);
            let wait = self.opts.group_wait;
            let g = groups.entry(key.clone()).or_insert_with(|| AggrGroup {
                labels: key,
                alerts: BTreeMap::new(),
                next_flush: Instant::now() + wait,
                sent: None,
            });
            g.alerts.insert(fingerprint(&a.labels), a);
        }
    }

    async fn flush(&self, g: &mut AggrGroup) {
        let now_ms = now_ms();
        let (mut firing, mut resolved) = (BTreeSet::new(), BTreeSet::new());
        for (fp, a) in &g.alerts {
            if a.ends_at_ms <= now_ms {
                resolved.insert(fp.clone());
            } else {
                firing.insert(fp.clone());
            }
        }
        let needs = match &g.sent {
            None => !firing.is_empty(),
            Some(s) if !firing.is_subset(&s.firing) => true,
            Some(s) if firing.is_empty() => !s.firing.is_empty(),
            Some(s) if self.opts.send_resolved && !resolved.is_subset(&s.resolved) => true,
            Some(s) => s.at + self.opts.repeat_interval <= Instant::now(),
        };
        if needs {
            let body = self.payload(g, &firing, now_ms);
            if body["alerts"].as_array().is_none_or(|a| a.is_empty()) {
                // Only resolved alerts and send_resolved off: nothing to
                // post (as Alertmanager), but the group is up to date.
                g.sent = Some(Sent {
                    firing: firing.clone(),
                    resolved: resolved.clone(),
                    at: Instant::now(),
                });
                g.alerts.retain(|fp, _| !resolved.contains(fp));
                return;
            }
            match post_with_retries(
                &self.delivery.client,
                &self.opts.url,
                &body,
                self.opts.attempts,
                &self.delivery.metrics,
            )
            .await
            {
                Ok(()) => {
                    let n = body["alerts"].as_array().map(|a| a.len()).unwrap_or(0) as u64;
                    self.delivery.metrics.sent.fetch_add(n, Ordering::Relaxed);
                    self.delivery
                        .metrics
                        .requests
                        .fetch_add(1, Ordering::Relaxed);
                    g.sent = Some(Sent {
                        firing: firing.clone(),
                        resolved: resolved.clone(),
                        at: Instant::now(),
                    });
                }
                Err(e) => {
                    tracing::warn!(receiver = %self.opts.name, error = %e, "webhook notification failed");
                    return;
                }
            }
        }
        // Resolved alerts that were part of this flush are done with.
        g.alerts.retain(|fp, _| !resolved.contains(fp));
    }

    fn payload(&self, g: &AggrGroup, firing: &BTreeSet<String>, _now_ms: i64) -> serde_json::Value {
        let mut alerts: Vec<(&String, &OutgoingAlert)> = g
            .alerts
            .iter()
            .filter(|(fp, _)| self.opts.send_resolved || firing.contains(*fp))
            .collect();
        let truncated = if self.opts.max_alerts > 0 && alerts.len() > self.opts.max_alerts {
            let t = alerts.len() - self.opts.max_alerts;
            alerts.truncate(self.opts.max_alerts);
            t
        } else {
            0
        };
        let common = |get: &dyn Fn(&OutgoingAlert) -> &BTreeMap<String, String>| {
            let mut it = alerts.iter();
            let mut c: BTreeMap<String, String> =
                it.next().map(|(_, a)| get(a).clone()).unwrap_or_default();
            for (_, a) in it {
                let m = get(a);
                c.retain(|k, v| m.get(k) == Some(v));
            }
            c
        };
        let common_labels = common(&|a| &a.labels);
        let common_annotations = common(&|a| &a.annotations);
        let items: Vec<serde_json::Value> = alerts
            .iter()
            .map(|(fp, a)| {
                let is_firing = firing.contains(*fp);
                json!({
                    "status": if is_firing { "firing" } else { "resolved" },
                    "labels": a.labels,
                    "annotations": a.annotations,
                    "startsAt": rfc3339(a.starts_at_ms),
                    "endsAt": if is_firing { "0001-01-01T00:00:00Z".to_string() } else { rfc3339(a.ends_at_ms) },
                    "generatorURL": a.generator_url,
                    "fingerprint": fp,
                })
            })
            .collect();
        let group_labels =
            Labels::from_pairs(g.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        json!({
            "version": "4",
            "groupKey": format!("{}:{}", self.route_key(), group_labels),
            "truncatedAlerts": truncated,
            "status": if firing.is_empty() { "resolved" } else { "firing" },
            "receiver": self.opts.name,
            "groupLabels": g.labels,
            "commonLabels": common_labels,
            "commonAnnotations": common_annotations,
            "externalURL": self.opts.external_url,
            "alerts": items,
        })
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl AlertSink for WebhookNotifier {
    fn send(&self, alerts: &[OutgoingAlert]) {
        self.delivery.queue.push(alerts);
    }

    fn name(&self) -> String {
        format!("webhook/{}", self.opts.name)
    }

    fn metrics(&self) -> &NotifierMetrics {
        &self.delivery.metrics
    }

    fn queue_len(&self) -> usize {
        self.delivery.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers_parse() {
        let m = parse_matcher("severity=\"warning\"").unwrap();
        assert_eq!(
            (m.name.as_str(), m.value.as_str(), m.op),
            ("severity", "warning", fleetwatch_model::MatchOp::Equal)
        );
        let m = parse_matcher("cluster=~prod-.*").unwrap();
        assert_eq!(m.op, fleetwatch_model::MatchOp::RegexMatch);
        assert!(m.matches("prod-1"));
        let m = parse_matcher("a!=\"b\"").unwrap();
        assert_eq!(m.op, fleetwatch_model::MatchOp::NotEqual);
        assert!(parse_matcher("nooperator").is_err());
    }
}
