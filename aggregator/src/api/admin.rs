//! Admin endpoints.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::query::success;
use crate::error::ApiError;
use crate::hub::AppState;

/// `POST /api/v1/admin/tsdb/flush`: cuts everything in the head into a
/// block now and compacts; answers with the blocks made.
pub async fn flush(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let db = Arc::clone(&state.db);
    let handle = tokio::runtime::Handle::current();
    let report = tokio::task::spawn_blocking(move || handle.block_on(db.flush()))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let ids = |v: &[fleetwatch_storage::block::BlockMeta]| -> Vec<Value> {
        v.iter()
            .map(|m| {
                json!({"id": m.id, "minTime": m.min_time, "maxTime": m.max_time,
                       "numSeries": m.num_series, "numSamples": m.num_samples, "bytes": m.bytes})
            })
            .collect()
    };
    Ok(Json(success(json!({
        "blocksCut": ids(&report.blocks_cut),
        "blocksCompacted": ids(&report.blocks_compacted),
    }))))
}
