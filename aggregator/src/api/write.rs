//! `POST /api/v1/write`: Prometheus remote write 1.0, and 2.0 when the
//! content type says `proto=io.prometheus.write.v2.Request` (see
//! [`super::write_v2`]).
//!
//! Status codes follow the protocol: 204 once the samples are durable
//! (WAL fsynced); 400 for bad data (the sender must not retry; the body
//! says why); 415 for an unknown content type, `proto=` or encoding; 503
//! when storage cannot take the write (the sender retries).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use fleetwatch_model::remote_write::v2::{PROTO_V1, PROTO_V2};
use fleetwatch_model::remote_write::{raw, FamilyMetadata};
use fleetwatch_model::{snappy, ModelError};
use fleetwatch_storage::{PreparedBatch, StorageError};

use super::write_v2;
use crate::error::WriteError;
use crate::hub::AppState;

/// The remote write message a request carries, from its content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `prometheus.WriteRequest` (1.0; the default without `proto=`).
    V1,
    /// `io.prometheus.write.v2.Request` (2.0).
    V2,
}

/// A decoded, validated request ready to be appended.
pub struct Prepared {
    /// The float samples for the head.
    pub batch: PreparedBatch,
    /// Metric metadata carried by the request.
    pub metadata: Vec<FamilyMetadata>,
    /// Native histogram samples in the request (not stored).
    pub histograms: u64,
    /// Exemplars in the request (not stored).
    pub exemplars: u64,
}

/// What an appended request wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Float samples written.
    pub samples: u64,
    /// Native histogram samples received and not written.
    pub histograms: u64,
}

/// Handles one remote-write request.
pub async fn remote_write(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (protocol, result) = match check_content_type(&headers) {
        Ok(protocol) => (
            Some(protocol),
            handle(&state, protocol, &headers, body).await,
        ),
        Err(e) => (None, Err(("unsupported_media_type", e))),
    };
    match &result {
        Ok(w) if w.histograms > 0 => state.metrics.count_rejected("histograms_unsupported"),
        Ok(_) => {
            state
                .metrics
                .write_requests_ok
                .fetch_add(1, Ordering::Relaxed);
        }
        Err((reason, _)) => state.metrics.count_rejected(reason),
    }
    match (protocol, result) {
        (Some(Protocol::V2), Ok(w)) => write_v2::response(&w),
        (Some(Protocol::V2), Err((_, e))) => write_v2::with_written_headers(e.into_response(), 0),
        (_, Ok(_)) => StatusCode::NO_CONTENT.into_response(),
        (_, Err((_, e))) => e.into_response(),
    }
}

async fn handle(
    state: &AppState,
    protocol: Protocol,
    headers: &HeaderMap,
    body: Body,
) -> Result<Written, (&'static str, WriteError)> {
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
    let (written, metadata) = tokio::task::spawn_blocking(
        move || -> Result<(Written, Vec<FamilyMetadata>), (&'static str, WriteError)> {
            let bad = |e: ModelError| (model_reason(&e), WriteError::bad_request(e.to_string()));
            let request = snappy::decompress(&bytes, limit).map_err(bad)?;
            let prepared = match protocol {
                Protocol::V1 => prepare_v1(&head, &request),
                Protocol::V2 => write_v2::prepare(&head, &request),
            }
            .map_err(bad)?;
            if prepared.exemplars > 0 {
                tracing::debug!(
                    exemplars = prepared.exemplars,
                    "remote write carried exemplars; they are not stored"
                );
            }
            let written = Written {
                samples: prepared.batch.num_samples() as u64,
                histograms: prepared.histograms,
            };
            head.append_prepared(prepared.batch)
                .map_err(storage_error)?;
            Ok((written, prepared.metadata))
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
        .fetch_add(written.samples, Ordering::Relaxed);
    state.metadata.record(metadata);
    Ok(written)
}

/// Decodes a decompressed 1.0 request whole. Metadata is checked before
/// anything is stored, so a request is taken whole or not at all.
fn prepare_v1(head: &fleetwatch_storage::Head, request: &[u8]) -> Result<Prepared, ModelError> {
    let batch = head.prepare_remote_write(request)?;
    let mut metadata = Vec::new();
    raw::for_each_metadata(request, |m| metadata.push(m))?;
    Ok(Prepared {
        batch,
        metadata,
        histograms: 0,
        exemplars: 0,
    })
}

fn check_content_type(headers: &HeaderMap) -> Result<Protocol, WriteError> {
    let unsupported = |m: String| WriteError {
        status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
        message: m,
    };
    let mut protocol = Protocol::V1;
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
        match proto.map(|p| p.trim_matches('"')) {
            None | Some(PROTO_V1) => {}
            Some(PROTO_V2) => protocol = Protocol::V2,
            Some(other) => {
                return Err(unsupported(format!(
                    "unsupported remote write message {other:?}: this hub accepts {PROTO_V1} (remote write 1.0) and {PROTO_V2} (2.0)"
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
    Ok(protocol)
}

fn model_reason(e: &ModelError) -> &'static str {
    match e {
        ModelError::Snappy { .. } => "invalid_snappy",
        ModelError::Protobuf { .. } => "invalid_protobuf",
        ModelError::InvalidRequest { .. } => "invalid_request",
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
