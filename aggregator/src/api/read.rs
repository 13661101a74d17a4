//! `POST /api/v1/read`: Prometheus remote read, sampled response type.
//!
//! The body is a snappy block of a protobuf `ReadRequest`; the answer is a
//! snappy block of a protobuf `ReadResponse` with one `QueryResult` per
//! query (series sorted by labels, samples inside the query's range, both
//! ends inclusive). Only the `SAMPLES` response type is served; a client
//! that accepts nothing but `STREAMED_XOR_CHUNKS` gets a 400 saying so.
//! Errors are plain text, as Prometheus's read handler answers them.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use fleetwatch_model::prompb::{
    Label, LabelMatcher, Query, QueryResult, ReadRequest, ReadResponse, Sample, TimeSeries,
};
use fleetwatch_model::{snappy, MatchOp, Matcher};
use fleetwatch_storage::Queryable;
use prost::Message;

use crate::error::WriteError;
use crate::hub::AppState;

/// `ReadRequest.ResponseType.SAMPLES`.
pub const RESPONSE_TYPE_SAMPLES: i32 = 0;
/// `ReadRequest.ResponseType.STREAMED_XOR_CHUNKS`.
pub const RESPONSE_TYPE_STREAMED_XOR_CHUNKS: i32 = 1;

/// `POST /api/v1/read`.
pub async fn remote_read(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, WriteError> {
    let result = handle(&state, &headers, body).await;
    state.metrics.count_query(
        "read",
        match &result {
            Ok(_) => "success",
            Err(e) if e.status.is_client_error() => "bad_data",
            Err(_) => "internal",
        },
    );
    let body = result?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-protobuf"),
            ),
            (header::CONTENT_ENCODING, HeaderValue::from_static("snappy")),
        ],
        body,
    )
        .into_response())
}

async fn handle(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Vec<u8>, WriteError> {
    let limit = state.config.limits.max_write_body_bytes;
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
    {
        if len > limit {
            return Err(WriteError::bad_request(format!(
                "request body of {len} bytes exceeds the limit of {limit} bytes"
            )));
        }
    }
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        WriteError::bad_request(format!("request body exceeds the limit of {limit} bytes"))
    })?;
    let raw = snappy::decompress(&bytes, limit)
        .map_err(|e| WriteError::bad_request(format!("remote read: {e}")))?;
    let request = ReadRequest::decode(raw.as_slice()).map_err(|e| {
        WriteError::bad_request(format!(
            "remote read: body is not a valid protobuf prometheus.ReadRequest: {e}"
        ))
    })?;
    check_response_types(&request.accepted_response_types)?;
    let queries = request
        .queries
        .iter()
        .enumerate()
        .map(|(i, q)| {
            to_matchers(q).map_err(|e| WriteError::bad_request(format!("query {i}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let ranges: Vec<(i64, i64)> = request
        .queries
        .iter()
        .map(|q| (q.start_timestamp_ms, q.end_timestamp_ms))
        .collect();
    let max_samples = state.engine.max_samples;
    let db = Arc::clone(&state.db);
    let response =
        tokio::task::spawn_blocking(move || answer(db.as_ref(), &queries, &ranges, max_samples))
            .await
            .map_err(|e| internal(format!("remote read task failed: {e}")))??;
    Ok(snappy::compress(&response.encode_to_vec()))
}

fn internal(message: String) -> WriteError {
    tracing::error!(error = %message, "remote read failed");
    WriteError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        message,
    }
}

/// Refuses a request whose client accepts only response types other than
/// `SAMPLES` (an empty list means `SAMPLES`, as for old clients).
fn check_response_types(accepted: &[i32]) -> Result<(), WriteError> {
    if accepted.is_empty() || accepted.contains(&RESPONSE_TYPE_SAMPLES) {
        return Ok(());
    }
    let names: Vec<String> = accepted
        .iter()
        .map(|t| match *t {
            RESPONSE_TYPE_STREAMED_XOR_CHUNKS => "STREAMED_XOR_CHUNKS".to_string(),
            other => other.to_string(),
        })
        .collect();
    Err(WriteError::bad_request(format!(
        "remote read: only the sampled response type (SAMPLES) is supported, the client accepts only [{}]",
        names.join(", ")
    )))
}

/// Converts one query's protobuf matchers.
fn to_matchers(q: &Query) -> Result<Vec<Matcher>, String> {
    if q.matchers.is_empty() {
        return Err("no matchers: a query needs at least one label matcher".to_string());
    }
    let matchers = q
        .matchers
        .iter()
        .map(to_matcher)
        .collect::<Result<Vec<_>, _>>()?;
    if matchers.iter().all(Matcher::matches_empty) {
        return Err(
            "the matchers all match the empty string: a query needs at least one matcher that does not"
                .to_string(),
        );
    }
    Ok(matchers)
}

fn to_matcher(m: &LabelMatcher) -> Result<Matcher, String> {
    let op = match m.r#type {
        0 => MatchOp::Equal,
        1 => MatchOp::NotEqual,
        2 => MatchOp::RegexMatch,
        3 => MatchOp::RegexNoMatch,
        other => {
            return Err(format!(
                "unknown matcher type {other} for label {:?} (expected 0 EQ, 1 NEQ, 2 RE or 3 NRE)",
                m.name
            ))
        }
    };
    Matcher::new(op, m.name.clone(), m.value.clone()).map_err(|e| e.to_string())
}

/// Runs every query against `q`, refusing to load more than `max_samples`
/// samples in total.
fn answer(
    q: &dyn Queryable,
    queries: &[Vec<Matcher>],
    ranges: &[(i64, i64)],
    max_samples: usize,
) -> Result<ReadResponse, WriteError> {
    let mut results = Vec::with_capacity(queries.len());
    let mut loaded = 0usize;
    for (matchers, &(start, end)) in queries.iter().zip(ranges) {
        if end < start {
            results.push(QueryResult {
                timeseries: Vec::new(),
            });
            continue;
        }
        let mut series = q
            .select(matchers, start, end)
            .map_err(|e| internal(format!("remote read select: {e}")))?;
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        let mut timeseries = Vec::with_capacity(series.len());
        for s in series {
            let samples: Vec<Sample> = s
                .samples
                .iter()
                .filter(|p| p.timestamp_ms >= start && p.timestamp_ms <= end)
                .map(|p| Sample {
                    value: p.value,
                    timestamp: p.timestamp_ms,
                })
                .collect();
            if samples.is_empty() {
                continue;
            }
            loaded = loaded.saturating_add(samples.len());
            if loaded > max_samples {
                return Err(WriteError::bad_request(format!(
                    "remote read: exceeded sample limit ({max_samples})"
                )));
            }
            timeseries.push(TimeSeries {
                labels: s
                    .labels
                    .iter()
                    .map(|l| Label {
                        name: l.name.clone(),
                        value: l.value.clone(),
                    })
                    .collect(),
                samples,
            });
        }
        results.push(QueryResult { timeseries });
    }
    Ok(ReadResponse { results })
}

#[cfg(test)]
mod tests;
