//! Target health for `GET /api/v1/targets`, in Prometheus's JSON shape.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use fleetwatch_model::Labels;
use serde_json::{json, Value};

use crate::config::PromDuration;
use crate::targets::{DroppedTarget, Target};

/// The health of a target, as Prometheus reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Health {
    /// Not scraped yet.
    #[default]
    Unknown,
    /// The last scrape succeeded.
    Up,
    /// The last scrape failed.
    Down,
}

impl Health {
    /// `unknown`, `up` or `down`.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Up => "up",
            Health::Down => "down",
        }
    }
}

/// The outcome of a target's last scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LastScrape {
    /// Health after the last scrape.
    pub health: Health,
    /// When it started, in Unix milliseconds.
    pub at_ms: Option<i64>,
    /// How long it took.
    pub duration: Duration,
    /// Why it failed (empty when it did not).
    pub error: String,
}

/// The shared, updatable status of one target.
#[derive(Debug, Default)]
pub struct TargetStatus {
    last: Mutex<LastScrape>,
}

impl TargetStatus {
    /// Records a scrape started at `at_ms` that took `took`, failed with
    /// `error` if any.
    pub fn record(&self, at_ms: i64, took: Duration, error: Option<String>) {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        *last = LastScrape {
            health: if error.is_some() {
                Health::Down
            } else {
                Health::Up
            },
            at_ms: Some(at_ms),
            duration: took,
            error: error.unwrap_or_default(),
        };
    }

    /// The last scrape's outcome.
    pub fn last(&self) -> LastScrape {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

fn labels_json(l: &Labels) -> Value {
    Value::Object(
        l.iter()
            .map(|x| (x.name.clone(), Value::String(x.value.clone())))
            .collect(),
    )
}

fn rfc3339(ms: Option<i64>) -> String {
    // Prometheus reports the zero time for a target never scraped.
    ms.and_then(DateTime::<Utc>::from_timestamp_millis)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".to_string())
}

/// The `data` of `/api/v1/targets`: `activeTargets` and `droppedTargets`,
/// filtered by `state` (`active`, `dropped`, `any`; default any) and
/// `scrape_pool` (a job name).
pub fn targets_data(
    active: &[(Target, std::sync::Arc<TargetStatus>)],
    dropped: &[DroppedTarget],
    state: Option<&str>,
    scrape_pool: Option<&str>,
) -> Value {
    let state = state.unwrap_or("any");
    let in_pool = |job: &str| scrape_pool.is_none_or(|p| p == job);
    let active_json: Vec<Value> = if matches!(state, "active" | "any") {
        active
            .iter()
            .filter(|(t, _)| in_pool(&t.job))
            .map(|(t, status)| {
                let last = status.last();
                json!({
                    "discoveredLabels": labels_json(&t.discovered_labels),
                    "labels": labels_json(&t.labels),
                    "scrapePool": t.job,
                    "scrapeUrl": t.url.as_str(),
                    "globalUrl": t.url.as_str(),
                    "lastError": last.error,
                    "lastScrape": rfc3339(last.at_ms),
                    "lastScrapeDuration": last.duration.as_secs_f64(),
                    "health": last.health.as_str(),
                    "scrapeInterval": PromDuration(t.interval).to_string(),
                    "scrapeTimeout": PromDuration(t.timeout).to_string(),
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    let dropped_json: Vec<Value> = if matches!(state, "dropped" | "any") {
        dropped
            .iter()
            .filter(|d| in_pool(&d.job))
            .map(|d| json!({ "discoveredLabels": labels_json(&d.discovered_labels) }))
            .collect()
    } else {
        Vec::new()
    };
    let mut counts = BTreeMap::new();
    for d in dropped.iter().filter(|d| in_pool(&d.job)) {
        *counts.entry(d.job.clone()).or_insert(0u64) += 1;
    }
    json!({
        "activeTargets": active_json,
        "droppedTargets": dropped_json,
        "droppedTargetCounts": counts,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::CollectorConfig;
    use crate::targets::discover;

    #[test]
    fn renders_prometheus_shape() {
        let cfg = CollectorConfig::from_yaml_str(
            "scrape_configs: [{job_name: a, scrape_interval: 15s, static_configs: [{targets: ['h:1', 'gone:2']}], \
             relabel_configs: [{source_labels: [__address__], regex: 'gone:.*', action: drop}]}]",
        )
        .unwrap();
        cfg.validate().unwrap();
        let (active, dropped) = discover(&cfg).unwrap();
        let active: Vec<_> = active
            .into_iter()
            .map(|t| (t, Arc::new(TargetStatus::default())))
            .collect();
        active[0].1.record(
            1_700_000_000_123,
            Duration::from_millis(25),
            Some("timeout".into()),
        );
        let d = targets_data(&active, &dropped, None, None);
        let t = &d["activeTargets"][0];
        assert_eq!(t["scrapePool"], "a");
        assert_eq!(t["scrapeUrl"], "http://h:1/metrics");
        assert_eq!(t["health"], "down");
        assert_eq!(t["lastError"], "timeout");
        assert_eq!(t["lastScrape"], "2023-11-14T22:13:20.123Z");
        assert_eq!(t["lastScrapeDuration"], 0.025);
        assert_eq!(t["scrapeInterval"], "15s");
        assert_eq!(t["labels"]["instance"], "h:1");
        assert_eq!(t["discoveredLabels"]["__address__"], "h:1");
        assert_eq!(t["discoveredLabels"]["__metrics_path__"], "/metrics");
        assert_eq!(
            d["droppedTargets"][0]["discoveredLabels"]["__address__"],
            "gone:2"
        );
        assert_eq!(d["droppedTargetCounts"]["a"], 1);
        let only_dropped = targets_data(&active, &dropped, Some("dropped"), None);
        assert_eq!(
            only_dropped["activeTargets"].as_array().map(Vec::len),
            Some(0)
        );
        let other_pool = targets_data(&active, &dropped, None, Some("b"));
        assert_eq!(
            other_pool["activeTargets"].as_array().map(Vec::len),
            Some(0)
        );
        let fresh = targets_data(
            &[(active[0].0.clone(), Arc::new(TargetStatus::default()))],
            &[],
            None,
            None,
        );
        assert_eq!(fresh["activeTargets"][0]["health"], "unknown");
    }
}
