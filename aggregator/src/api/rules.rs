//! `/api/v1/rules` and `/api/v1/alerts` in Prometheus's JSON shapes (what
//! Grafana's alerting views read).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use fleetwatch_rules::template::fmt_e_shortest;
use fleetwatch_rules::{Alert, AlertState, Group, RuleKind};
use serde_json::{json, Map, Value};

use super::query::{labels_json, success};
use crate::error::ApiError;
use crate::hub::AppState;
use crate::params::Params;

/// Go's zero time, as Prometheus prints a rule never evaluated.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

fn time(ms: i64) -> String {
    if ms == 0 {
        return ZERO_TIME.to_string();
    }
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| ZERO_TIME.to_string())
}

fn string_map(m: &std::collections::BTreeMap<String, String>) -> Value {
    Value::Object(
        m.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect::<Map<_, _>>(),
    )
}

fn alert_json(a: &Alert) -> Value {
    let mut v = json!({
        "labels": labels_json(&a.labels),
        "annotations": string_map(&a.annotations),
        "state": a.state.as_str(),
        "activeAt": time(a.active_at_ms),
        "value": fmt_e_shortest(a.value),
    });
    if let Some(k) = a.keep_firing_since_ms {
        v["keepFiringSince"] = Value::String(time(k));
    }
    v
}

fn active(a: &Alert) -> bool {
    a.state != AlertState::Inactive
}

/// Request filters of `/api/v1/rules`.
struct Filter {
    kind: Option<String>,
    names: Vec<String>,
    groups: Vec<String>,
    files: Vec<String>,
    exclude_alerts: bool,
}

impl Filter {
    fn from(params: &Params) -> Result<Self, ApiError> {
        let kind = params.get("type").map(str::to_string);
        if let Some(k) = &kind {
            if k != "alert" && k != "record" {
                return Err(ApiError::bad_data(format!(
                    "invalid parameter \"type\": not supported value {k:?}"
                )));
            }
        }
        let own = |n: &str| params.all(n).into_iter().map(str::to_string).collect();
        Ok(Self {
            kind,
            names: own("rule_name[]"),
            groups: own("rule_group[]"),
            files: own("file[]"),
            exclude_alerts: params.get("exclude_alerts") == Some("true"),
        })
    }
}

fn group_json(g: &Group, f: &Filter) -> Option<Value> {
    if (!f.groups.is_empty() && !f.groups.contains(&g.name))
        || (!f.files.is_empty() && !f.files.contains(&g.file))
    {
        return None;
    }
    let mut rules = Vec::new();
    for r in &g.rules {
        if !f.names.is_empty() && !f.names.iter().any(|n| n == r.name()) {
            continue;
        }
        let mut v = match &r.kind {
            RuleKind::Alerting(a) => {
                if f.kind.as_deref() == Some("record") {
                    continue;
                }
                let alerts: Vec<Value> = if f.exclude_alerts {
                    Vec::new()
                } else {
                    a.active
                        .values()
                        .filter(|x| active(x))
                        .map(alert_json)
                        .collect()
                };
                json!({
                    "state": match a.state() {
                        AlertState::Firing => "firing",
                        AlertState::Pending => "pending",
                        AlertState::Inactive => "inactive",
                    },
                    "name": a.name,
                    "query": a.expr,
                    "duration": a.for_ms as f64 / 1000.0,
                    "keepFiringFor": a.keep_firing_for_ms as f64 / 1000.0,
                    "labels": string_map(&a.labels),
                    "annotations": string_map(&a.annotations),
                    "alerts": alerts,
                    "type": "alerting",
                })
            }
            RuleKind::Recording(rec) => {
                if f.kind.as_deref() == Some("alert") {
                    continue;
                }
                json!({
                    "name": rec.name,
                    "query": rec.expr,
                    "labels": string_map(&rec.labels),
                    "type": "recording",
                })
            }
        };
        v["health"] = Value::String(r.health.as_str().to_string());
        if let Some(e) = &r.last_error {
            v["lastError"] = Value::String(e.clone());
        }
        v["evaluationTime"] = json!(r.eval_secs);
        v["lastEvaluation"] = Value::String(time(r.last_eval_ms));
        rules.push(v);
    }
    if f.kind.is_some() && rules.is_empty() {
        return None;
    }
    Some(json!({
        "name": g.name,
        "file": g.file,
        "rules": rules,
        "interval": g.interval_ms as f64 / 1000.0,
        "limit": g.limit,
        "evaluationTime": g.eval_secs,
        "lastEvaluation": time(g.last_eval_ms),
    }))
}

/// `GET /api/v1/rules`: groups with their rules, health and alerts
/// (filters `type`, `rule_name[]`, `rule_group[]`, `file[]`,
/// `exclude_alerts`).
pub async fn rules(
    State(state): State<Arc<AppState>>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    let filter = Filter::from(&params)?;
    let groups: Vec<Value> = state
        .rules
        .as_ref()
        .map(|m| m.groups())
        .unwrap_or_default()
        .iter()
        .filter_map(|g| group_json(g, &filter))
        .collect();
    Ok(Json(success(json!({ "groups": groups }))))
}

/// `POST /-/reload`: reloads the rules (see
/// [`crate::hub::reload_rules`]); 200 with what changed, or 500 with why
/// nothing did (the rules in force keep running).
pub async fn reload(State(state): State<Arc<AppState>>) -> (StatusCode, String) {
    match crate::hub::reload_rules(&state).await {
        Ok(summary) => (StatusCode::OK, format!("rules reloaded: {summary}\n")),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {e}\n"),
        ),
    }
}

/// `GET /api/v1/alerts`: every pending and firing alert.
pub async fn alerts(State(state): State<Arc<AppState>>) -> Json<Value> {
    let mut alerts = Vec::new();
    for g in state.rules.as_ref().map(|m| m.groups()).unwrap_or_default() {
        for r in &g.rules {
            if let RuleKind::Alerting(a) = &r.kind {
                alerts.extend(a.active.values().filter(|x| active(x)).map(alert_json));
            }
        }
    }
    Json(success(json!({ "alerts": alerts })))
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use serde_json::Value;
    use tower::ServiceExt;

    use crate::{Hub, HubConfig};

    const RULES: &str = "groups:\n  - name: g\n    interval: 30s\n    rules:\n      - record: job:up:sum\n        expr: sum by (job) (up)\n      - alert: Down\n        expr: up == 0\n        for: 5m\n        labels: {severity: page}\n        annotations: {summary: '{{ $labels.job }} down'}\n";

    async fn get(router: &axum::Router, uri: &str) -> (StatusCode, Value) {
        let resp = router
            .clone()
            .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
            .await
            .expect("response");
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    #[tokio::test]
    async fn rules_and_alerts_in_prometheus_shapes() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("r.yaml"), RULES).expect("write rules");
        let hub = Hub::open(HubConfig {
            data_dir: dir.path().join("data"),
            rule_files: vec!["*.yaml".into()],
            base_dir: Some(dir.path().to_path_buf()),
            ..HubConfig::default()
        })
        .await
        .expect("open hub");
        let router = hub.router();
        let (status, body) = get(&router, "/api/v1/rules").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["status"], "success");
        let g = &body["data"]["groups"][0];
        assert_eq!(g["name"], "g");
        assert_eq!(g["interval"], 30.0);
        assert!(
            g["file"].as_str().is_some_and(|f| f.ends_with("r.yaml")),
            "{g}"
        );
        let rec = &g["rules"][0];
        assert_eq!(rec["type"], "recording");
        assert_eq!(rec["name"], "job:up:sum");
        assert_eq!(rec["health"], "unknown");
        assert_eq!(rec["lastEvaluation"], "0001-01-01T00:00:00Z");
        let alert = &g["rules"][1];
        assert_eq!(alert["type"], "alerting");
        assert_eq!(alert["state"], "inactive");
        assert_eq!(alert["duration"], 300.0);
        assert_eq!(alert["labels"]["severity"], "page");
        assert_eq!(alert["annotations"]["summary"], "{{ $labels.job }} down");
        assert_eq!(alert["alerts"], Value::Array(Vec::new()));

        let (_, body) = get(&router, "/api/v1/rules?type=record").await;
        let rules = body["data"]["groups"][0]["rules"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0]["type"], "recording");
        let (status, body) = get(&router, "/api/v1/rules?type=bogus").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["errorType"], "bad_data");

        let (status, body) = get(&router, "/api/v1/alerts").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["data"]["alerts"], Value::Array(Vec::new()));
    }

    #[tokio::test]
    async fn a_broken_rule_file_fails_the_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("r.yaml"),
            "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: sum(\n",
        )
        .expect("write");
        let err = Hub::open(HubConfig {
            data_dir: dir.path().join("data"),
            rule_files: vec!["r.yaml".into()],
            base_dir: Some(dir.path().to_path_buf()),
            ..HubConfig::default()
        })
        .await
        .err()
        .expect("start fails");
        assert!(
            err.to_string().contains("could not parse expression"),
            "{err}"
        );
    }
}
