//! Health, readiness and self-metrics.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use fleetwatch_model::exposition::TEXT_CONTENT_TYPE;

use crate::hub::AppState;

/// `GET /-/healthy`.
pub async fn healthy() -> &'static str {
    "fleetwatch hub is Healthy.\n"
}

/// `GET /-/ready`: 200 once storage is open, 503 while shutting down.
pub async fn ready(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    if state.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "fleetwatch hub is Ready.\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "fleetwatch hub is not ready.\n",
        )
    }
}

/// `GET /metrics`: the hub's own metrics.
pub async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let mut text = state.metrics.render(&state.db);
    if let Some(rules) = &state.rules {
        rules.render_metrics(&mut text);
    }
    ([(header::CONTENT_TYPE, TEXT_CONTENT_TYPE)], text)
}
