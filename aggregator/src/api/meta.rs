//! Series, label and status endpoints of the Prometheus API.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use fleetwatch_model::duration::format_duration_ms;
use fleetwatch_model::{is_valid_label_name, Matcher};
use fleetwatch_storage::Queryable;
use serde_json::{json, Value};

use super::query::{labels_json, success};
use crate::error::ApiError;
use crate::hub::AppState;
use crate::params::{Params, MAX_TIME_MS, MIN_TIME_MS};

struct Selection {
    matcher_sets: Vec<Vec<Matcher>>,
    start: i64,
    end: i64,
    limit: Option<usize>,
}

fn selection(params: &Params, require_match: bool) -> Result<Selection, ApiError> {
    let mut matcher_sets = Vec::new();
    for m in params.all("match[]") {
        let set = fleetwatch_query::parse_series_selector(m)
            .map_err(|e| ApiError::bad_data(format!("invalid parameter \"match[]\": {e}")))?;
        matcher_sets.push(set);
    }
    if require_match && matcher_sets.is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let start = params.time_or("start", MIN_TIME_MS)?;
    let end = params.time_or("end", MAX_TIME_MS)?;
    if end < start {
        return Err(ApiError::bad_data(
            "invalid parameter \"end\": end timestamp must not be before start time",
        ));
    }
    Ok(Selection {
        matcher_sets,
        start,
        end,
        limit: params.usize("limit")?.filter(|&l| l > 0),
    })
}

/// Runs `f` once per matcher set (or once with none) and merges the
/// sorted, de-duplicated results, applying `limit`.
async fn gather<T, F>(state: &Arc<AppState>, sel: Selection, f: F) -> Result<Vec<T>, ApiError>
where
    T: Ord + Send + 'static,
    F: Fn(&dyn Queryable, &[Matcher], i64, i64) -> Result<Vec<T>, fleetwatch_storage::StorageError>
        + Send
        + 'static,
{
    let db = Arc::clone(&state.db);
    tokio::task::spawn_blocking(move || {
        let sets = if sel.matcher_sets.is_empty() {
            vec![Vec::new()]
        } else {
            sel.matcher_sets
        };
        let mut out = Vec::new();
        for set in &sets {
            out.extend(f(db.as_ref(), set, sel.start, sel.end)?);
        }
        out.sort();
        out.dedup();
        if let Some(limit) = sel.limit {
            out.truncate(limit);
        }
        Ok(out)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e: fleetwatch_storage::StorageError| ApiError::internal(e))
}

/// `GET|POST /api/v1/series`.
pub async fn series(
    State(state): State<Arc<AppState>>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    let sel = selection(&params, true)?;
    let series = gather(&state, sel, |q, m, s, e| q.series(m, s, e)).await?;
    Ok(Json(success(Value::Array(
        series.iter().map(labels_json).collect(),
    ))))
}

/// `GET|POST /api/v1/labels`.
pub async fn labels(
    State(state): State<Arc<AppState>>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    let sel = selection(&params, false)?;
    let names = gather(&state, sel, |q, m, s, e| q.label_names(m, s, e)).await?;
    Ok(Json(success(json!(names))))
}

/// `GET /api/v1/label/<name>/values`.
pub async fn label_values(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    if !is_valid_label_name(&name) {
        return Err(ApiError::bad_data(format!("invalid label name: {name:?}")));
    }
    let sel = selection(&params, false)?;
    let values = gather(&state, sel, move |q, m, s, e| {
        q.label_values(&name, m, s, e)
    })
    .await?;
    Ok(Json(success(json!(values))))
}

/// `GET /api/v1/metadata`: metric metadata received with remote writes,
/// with Prometheus's `metric`, `limit` and `limit_per_metric` parameters.
pub async fn metadata(
    State(state): State<Arc<AppState>>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    // Prometheus takes -1 (its default) and 0 as "no limit" here.
    let positive = |name: &str| -> Result<Option<usize>, ApiError> {
        if params.get(name) == Some("-1") {
            return Ok(None);
        }
        Ok(params.usize(name)?.filter(|&l| l > 0))
    };
    let (limit, per_metric) = (positive("limit")?, positive("limit_per_metric")?);
    let metric = params.get("metric").filter(|m| !m.is_empty());
    Ok(Json(success(
        state.metadata.query(metric, limit, per_metric),
    )))
}

/// `GET|POST /api/v1/query_exemplars`: exemplars are not stored; the
/// answer is an empty list.
pub async fn exemplars() -> Json<Value> {
    Json(success(json!([])))
}

/// The Prometheus API level the hub implements, reported as `version` so
/// that clients which gate features on Prometheus's version (Grafana's
/// datasource detection: `match[]` on label endpoints since 2.24, and so
/// on) use all of them. The hub's own version is in `fleetwatchVersion`.
pub const PROMETHEUS_API_VERSION: &str = "3.0.0";

/// `GET /api/v1/status/buildinfo`.
pub async fn buildinfo() -> Json<Value> {
    Json(success(json!({
        "version": PROMETHEUS_API_VERSION,
        "fleetwatchVersion": env!("CARGO_PKG_VERSION"),
        "revision": "",
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "",
        "application": "fleetwatch",
    })))
}

/// `GET /api/v1/status/flags`: the effective settings, in Prometheus's
/// flag names where one exists.
pub async fn flags(State(state): State<Arc<AppState>>) -> Json<Value> {
    let c = &state.config;
    Json(success(json!({
        "web.listen-address": c.listen,
        "storage.tsdb.path": c.data_dir.display().to_string(),
        "storage.tsdb.retention.time": c.storage.retention.map(format_duration_ms).unwrap_or_default(),
        "storage.tsdb.out-of-order-time-window": c.storage.out_of_order_window.map(format_duration_ms).unwrap_or_default(),
        "query.lookback-delta": format_duration_ms(state.engine.lookback_delta_ms),
        "query.timeout": format_duration_ms(state.engine.timeout.as_millis() as i64),
        "query.max-samples": state.engine.max_samples.to_string(),
    })))
}
