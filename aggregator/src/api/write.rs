//! `POST /api/v1/write`: Prometheus remote write 1.0.
//!
//! Status codes follow the protocol: 204 once the samples are durable
//! (WAL fsynced); 400 for bad data (the sender must not retry; the body
//! says why); 415 for an unknown content type or encoding; 503 when storage
//! cannot take the write (the sender retries).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use fleetwatch_model::remote_write::{raw, FamilyMetadata};
use fleetwatch_model::{snappy, ModelError};
use fleetwatch_storage::StorageError;

use crate::error::WriteError;
use crate::hub::AppState;

/// Handles one remote-write request.
pub async fn remote_write(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, WriteError> {
    let result = handle(&state, &headers, body).await;
    match &result {
        Ok(_) => {
            state
                .metrics
                .write_requests_ok
                .fetch_add(1, Ordering::Relaxed);
        }
        Err((reason, _)) => state.metrics.count_rejected(reason),
    }
    result.map_err(|(_, e)| e)
}

async fn handle(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<StatusCode, (&'static str, WriteError)> {
    check_content_type(headers).map_err(|e| ("unsupported_media_type", e))?;
    let limit = state.config.limits.max_write_body_bytes;
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
    {
        if len > limit {
            return Err((
                "too_large",
                WriteError::bad_request(format!(
                    "request body of {len} bytes exceeds the limit of {limit} bytes"
                )),
            ));
        }
    }
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        (
            "too_large",
            WriteError::bad_request(format!("request body exceeds the limit of {limit} bytes")),
        )
    })?;
    let head = Arc::clone(state.db.head());
    let (samples, metadata) = tokio::task::spawn_blocking(
        move || -> Result<(u64, Vec<FamilyMetadata>), (&'static str, WriteError)> {
            let bad = |e: ModelError| (model_reason(&e), WriteError::bad_request(e.to_string()));
            let request = snappy::decompress(&bytes, limit).map_err(bad)?;
            let batch = head.prepare_remote_write(&request).map_err(bad)?;
            // Metadata is checked before anything is stored, so a request
            // is taken whole or not at all.
            let mut metadata = Vec::new();
            raw::for_each_metadata(&request, |m| metadata.push(m)).map_err(bad)?;
            let samples = batch.num_samples() as u64;
            head.append_prepared(batch).map_err(storage_error)?;
            Ok((samples, metadata))
        },
    )
    .await
    .map_err(|e| {
        (
            "internal",
            WriteError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: format!("write task failed: {e}"),
            },
        )
    })??;
    state
        .metrics
        .write_samples_received
        .fetch_add(samples, Ordering::Relaxed);
    state.metadata.record(metadata);
    Ok(StatusCode::NO_CONTENT)
}

fn check_content_type(headers: &HeaderMap) -> Result<(), WriteError> {
    let unsupported = |m: String| WriteError {
        status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
        message: m,
    };
    if let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    {
        let ct = ct.trim();
        let (media, params) = ct.split_once(';').unwrap_or((ct, ""));
        if media.trim() != "application/x-protobuf" {
            return Err(unsupported(format!(
                "unsupported content type {ct:?}: expected application/x-protobuf"
            )));
        }
        let proto = params
            .split(';')
            .filter_map(|p| p.trim().strip_prefix("proto="))
            .next();
        if let Some(proto) = proto {
            if proto != "prometheus.WriteRequest" {
                return Err(unsupported(format!(
                    "unsupported remote write message {proto:?}: this hub accepts prometheus.WriteRequest (remote write 1.0)"
                )));
            }
        }
    }
    if let Some(enc) = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
    {
        if !enc.eq_ignore_ascii_case("snappy") {
            return Err(unsupported(format!(
                "unsupported content encoding {enc:?}: expected snappy"
            )));
        }
    }
    Ok(())
}

fn model_reason(e: &ModelError) -> &'static str {
    match e {
        ModelError::Snappy { .. } => "invalid_snappy",
        ModelError::Protobuf { .. } => "invalid_protobuf",
        ModelError::TooLarge { .. } => "too_large",
        ModelError::MissingMetricName { .. } => "missing_metric_name",
        ModelError::InvalidLabelName { .. }
        | ModelError::InvalidMetricName { .. }
        | ModelError::DuplicateLabel { .. } => "invalid_labels",
        _ => "invalid",
    }
}

fn storage_error(e: StorageError) -> (&'static str, WriteError) {
    if e.is_bad_data() {
        let reason = match e {
            StorageError::OutOfOrder { .. } => "out_of_order",
            _ => "duplicate_timestamp",
        };
        (reason, WriteError::bad_request(e.to_string()))
    } else {
        tracing::error!(error = %e, "storage refused a write");
        (
            "storage_unavailable",
            WriteError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: "storage is unavailable, retry later".to_string(),
            },
        )
    }
}
