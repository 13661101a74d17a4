//! `/api/v1/query` and `/api/v1/query_range` with Prometheus's parameters,
//! JSON shapes and error types.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::Response;
use fleetwatch_model::Labels;
use fleetwatch_query::{Engine, EngineOptions, QueryError, MAX_POINTS_PER_SERIES};
use serde_json::{json, Map, Value};

use super::render::query_response;

use super::now_ms;
use crate::error::{ApiError, ErrorType};
use crate::hub::AppState;
use crate::params::Params;

/// `GET|POST /api/v1/query`.
pub async fn instant(
    State(state): State<Arc<AppState>>,
    params: Params,
) -> Result<Response, ApiError> {
    let result = run_instant(&state, &params).await;
    state.metrics.count_query("query", outcome(&result));
    result
}

/// `GET|POST /api/v1/query_range`.
pub async fn range(
    State(state): State<Arc<AppState>>,
    params: Params,
) -> Result<Response, ApiError> {
    let result = run_range(&state, &params).await;
    state.metrics.count_query("query_range", outcome(&result));
    result
}

fn outcome(r: &Result<Response, ApiError>) -> &'static str {
    match r {
        Ok(_) => "success",
        Err(e) => match e.kind {
            ErrorType::BadData => "bad_data",
            ErrorType::Execution => "execution",
            ErrorType::Timeout => "timeout",
            ErrorType::Unavailable => "unavailable",
            ErrorType::Internal => "internal",
        },
    }
}

fn engine_for(state: &AppState, params: &Params) -> Result<Engine, ApiError> {
    let mut opts: EngineOptions = state.engine.clone();
    if let Some(t) = params.duration("timeout")? {
        if t <= 0 {
            return Err(ApiError::bad_data(
                "invalid parameter \"timeout\": timeout must be positive",
            ));
        }
        opts.timeout = opts.timeout.min(Duration::from_millis(t as u64));
    }
    if let Some(lb) = params.duration("lookback_delta")? {
        if lb > 0 {
            opts.lookback_delta_ms = lb;
        }
    }
    Ok(Engine::new(opts))
}

fn query_param(params: &Params) -> Result<String, ApiError> {
    params
        .get("query")
        .map(str::to_string)
        .ok_or_else(|| ApiError::bad_data("invalid parameter \"query\": query must not be empty"))
}

fn engine_error(e: QueryError) -> ApiError {
    ApiError {
        kind: ErrorType::from_engine(e.error_type()),
        message: e.to_string(),
    }
}

async fn run_instant(state: &Arc<AppState>, params: &Params) -> Result<Response, ApiError> {
    let query = query_param(params)?;
    let time = params.time_or("time", now_ms())?;
    let engine = engine_for(state, params)?;
    let db = Arc::clone(&state.db);
    let value =
        tokio::task::spawn_blocking(move || engine.instant_query(db.as_ref(), &query, time))
            .await
            .map_err(ApiError::internal)?
            .map_err(engine_error)?;
    Ok(query_response(&value))
}

async fn run_range(state: &Arc<AppState>, params: &Params) -> Result<Response, ApiError> {
    let query = query_param(params)?;
    let start = params
        .get("start")
        .ok_or_else(|| ApiError::bad_data("invalid parameter \"start\": missing"))
        .and_then(|_| params.time_or("start", 0))?;
    let end = params
        .get("end")
        .ok_or_else(|| ApiError::bad_data("invalid parameter \"end\": missing"))
        .and_then(|_| params.time_or("end", 0))?;
    if end < start {
        return Err(ApiError::bad_data(
            "invalid parameter \"end\": end timestamp must not be before start time",
        ));
    }
    let step = params
        .duration("step")?
        .ok_or_else(|| ApiError::bad_data("invalid parameter \"step\": missing"))?;
    if step <= 0 {
        return Err(ApiError::bad_data(
            "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if (end - start) / step > MAX_POINTS_PER_SERIES {
        return Err(ApiError::bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    let engine = engine_for(state, params)?;
    let db = Arc::clone(&state.db);
    let value = tokio::task::spawn_blocking(move || {
        engine.range_query(db.as_ref(), &query, start, end, step)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(engine_error)?;
    Ok(query_response(&value))
}

/// Wraps `data` in the success envelope.
pub fn success(data: Value) -> Value {
    json!({"status": "success", "data": data})
}

/// A label set as a JSON object.
pub fn labels_json(labels: &Labels) -> Value {
    let mut m = Map::with_capacity(labels.len());
    for l in labels.iter() {
        m.insert(l.name.clone(), Value::String(l.value.clone()));
    }
    Value::Object(m)
}
