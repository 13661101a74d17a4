//! The Loki HTTP API: `POST /loki/api/v1/push` (protobuf + snappy, or
//! JSON), the LogQL query endpoints Grafana's Loki datasource uses, label
//! and series discovery, `index/stats` and `/ready`.
//!
//! A push is validated whole (labels, line sizes, timestamps, stream
//! count) before anything is stored and answered 204 once it is durable;
//! bad input gets a 400 naming the problem. Errors are plain text, as
//! Loki answers.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use fleetwatch_model::loki::{self as codec, LokiError, PushLimits, PushStream};
use fleetwatch_query::logql::{self, LabelMap, LogqlError, LogqlParams, QueryOutput};
use fleetwatch_storage::logs::{
    now_ns, Direction, LogError, LogStore, LogStoreOptions, SelectStats, Selection,
};

use crate::error::WriteError;
use crate::hub::AppState;
use crate::params::{parse_duration, Params};
use crate::{HubConfig, HubError};

/// Loki's default `limit` of log queries.
const DEFAULT_LIMIT: usize = 100;
/// Largest `limit` accepted.
const MAX_LIMIT: usize = 100_000;
/// Default look-back of label and series requests (Loki: 6h).
const DEFAULT_LOOKBACK_NS: i64 = 6 * 3_600 * 1_000_000_000;
/// Default range of a range query (Loki: 1h).
const DEFAULT_RANGE_NS: i64 = 3_600 * 1_000_000_000;

/// Push counters for `/metrics`.
#[derive(Debug, Default)]
pub struct LogMetrics {
    /// Push requests accepted.
    pub pushes: AtomicU64,
    /// Lines stored.
    pub lines: AtomicU64,
    /// Raw line bytes stored.
    pub bytes: AtomicU64,
    /// Push requests rejected, by reason.
    pub rejected: Mutex<BTreeMap<&'static str, u64>>,
}

impl LogMetrics {
    fn reject(&self, reason: &'static str) {
        if let Ok(mut m) = self.rejected.lock() {
            *m.entry(reason).or_default() += 1;
        }
    }

    /// Appends the log push metrics in the text format.
    pub fn render(&self, out: &mut String) {
        for (name, help, v) in [
            (
                "fleetwatch_loki_push_requests_total",
                "Loki push requests accepted.",
                &self.pushes,
            ),
            (
                "fleetwatch_loki_lines_received_total",
                "Log lines stored from accepted pushes.",
                &self.lines,
            ),
            (
                "fleetwatch_loki_bytes_received_total",
                "Raw bytes of log lines stored from accepted pushes.",
                &self.bytes,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(out, "# HELP fleetwatch_loki_push_requests_rejected_total Loki push requests rejected, by reason.\n# TYPE fleetwatch_loki_push_requests_rejected_total counter");
        if let Ok(m) = self.rejected.lock() {
            for (reason, v) in m.iter() {
                let _ = writeln!(
                    out,
                    "fleetwatch_loki_push_requests_rejected_total{{reason=\"{reason}\"}} {v}"
                );
            }
        }
    }
}

/// Opens the log store under `<data_dir>/logs` with the `logs` settings.
pub fn open_store(config: &HubConfig) -> Result<LogStore, HubError> {
    let c = &config.logs;
    let mut o = LogStoreOptions::new(config.data_dir.join("logs"));
    o.retention_ns = c.retention.map(|ms| ms.saturating_mul(1_000_000));
    o.retention_bytes = c.retention_size_bytes;
    if let Some(w) = c.out_of_order_window {
        o.out_of_order_window_ns = w.saturating_mul(1_000_000);
    }
    if let Some(ms) = c.commit_interval {
        o.commit_interval = Duration::from_millis(ms.max(10) as u64);
    }
    LogStore::open(o)
        .map_err(|e| HubError::Io(std::io::Error::other(format!("opening the log store: {e}"))))
}

/// The Loki routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/loki/api/v1/push", post(push))
        .route("/loki/api/v1/query", get(query).post(query))
        .route(
            "/loki/api/v1/query_range",
            get(query_range).post(query_range),
        )
        .route("/loki/api/v1/labels", get(labels).post(labels))
        .route("/loki/api/v1/label", get(labels))
        .route("/loki/api/v1/label/{name}/values", get(label_values))
        .route("/loki/api/v1/series", get(series).post(series))
        .route(
            "/loki/api/v1/index/stats",
            get(index_stats).post(index_stats),
        )
        .route("/ready", get(ready))
}

/// `GET /ready`.
pub async fn ready(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    if state.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

fn limits(config: &HubConfig) -> PushLimits {
    PushLimits {
        max_line_bytes: config.logs.max_line_bytes,
        max_labels_per_stream: config.logs.max_labels_per_stream,
        max_streams_per_request: config.logs.max_streams_per_request,
        ..PushLimits::default()
    }
}

/// `POST /loki/api/v1/push`.
pub async fn push(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, WriteError> {
    match handle_push(&state, &headers, body).await {
        Ok((lines, bytes)) => {
            let m = &state.metrics.logs;
            m.pushes.fetch_add(1, Ordering::Relaxed);
            m.lines.fetch_add(lines, Ordering::Relaxed);
            m.bytes.fetch_add(bytes, Ordering::Relaxed);
            Ok(StatusCode::NO_CONTENT)
        }
        Err((reason, e)) => {
            state.metrics.logs.reject(reason);
            Err(e)
        }
    }
}

enum BodyKind {
    Protobuf,
    Json,
}

async fn handle_push(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<(u64, u64), (&'static str, WriteError)> {
    let unsupported = |m: String| {
        (
            "unsupported_media_type",
            WriteError {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                message: m,
            },
        )
    };
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/x-protobuf");
    let media = ct.split(';').next().unwrap_or("").trim();
    let kind = match media {
        "application/x-protobuf" | "" => BodyKind::Protobuf,
        "application/json" => BodyKind::Json,
        other => {
            return Err(unsupported(format!(
                "unsupported content type {other:?}: expected application/x-protobuf (snappy) or application/json"
            )))
        }
    };
    if let Some(enc) = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
    {
        let ok = match kind {
            BodyKind::Protobuf => enc.eq_ignore_ascii_case("snappy"),
            BodyKind::Json => enc.eq_ignore_ascii_case("identity"),
        };
        if !ok {
            return Err(unsupported(format!("unsupported content encoding {enc:?}")));
        }
    }
    let limit = state.config.limits.max_write_body_bytes;
    let too_large = |m: String| ("too_large", WriteError::bad_request(m));
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
    {
        if len > limit {
            return Err(too_large(format!(
                "request body of {len} bytes exceeds the limit of {limit} bytes"
            )));
        }
    }
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large(format!("request body exceeds the limit of {limit} bytes")))?;
    let logs = Arc::clone(&state.logs);
    let push_limits = limits(&state.config);
    let oldest_ns = state
        .config
        .logs
        .retention
        .map(|ms| now_ns().saturating_sub(ms.saturating_mul(1_000_000)))
        .unwrap_or(i64::MIN);
    tokio::task::spawn_blocking(move || -> Result<(u64, u64), (&'static str, WriteError)> {
        let bad = |e: LokiError| (e.reason(), WriteError::bad_request(e.to_string()));
        let streams: Vec<PushStream> = match kind {
            BodyKind::Protobuf => codec::decode_protobuf(&bytes, limit).map_err(bad)?,
            BodyKind::Json => codec::decode_json(&bytes).map_err(bad)?,
        };
        codec::validate_push(&streams, &push_limits, now_ns(), oldest_ns).map_err(bad)?;
        let lines: u64 = streams.iter().map(|s| s.entries.len() as u64).sum();
        let raw: u64 = streams.iter().map(|s| s.line_bytes() as u64).sum();
        logs.append(streams).map_err(store_error)?;
        Ok((lines, raw))
    })
    .await
    .map_err(|e| {
        (
            "internal",
            WriteError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: format!("push task failed: {e}"),
            },
        )
    })?
}

fn store_error(e: LogError) -> (&'static str, WriteError) {
    if e.is_bad_data() {
        ("out_of_order", WriteError::bad_request(e.to_string()))
    } else {
        tracing::error!(error = %e, "log store refused a push");
        (
            "storage_unavailable",
            WriteError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: "log storage is unavailable, retry later".into(),
            },
        )
    }
}

/// A Loki API error: plain text with a status, as Loki answers.
#[derive(Debug)]
pub struct LokiApiError {
    status: StatusCode,
    message: String,
}

impl IntoResponse for LokiApiError {
    fn into_response(self) -> Response {
        (self.status, format!("{}\n", self.message)).into_response()
    }
}

fn api_error(status: StatusCode, message: impl Into<String>) -> LokiApiError {
    LokiApiError {
        status,
        message: message.into(),
    }
}

fn bad(message: impl Into<String>) -> LokiApiError {
    api_error(StatusCode::BAD_REQUEST, message)
}

fn logql_error(e: LogqlError) -> LokiApiError {
    match e {
        LogqlError::Store(e) => {
            tracing::error!(error = %e, "log query failed");
            api_error(StatusCode::INTERNAL_SERVER_ERROR, "log store error")
        }
        other => bad(other.to_string()),
    }
}

/// Parses a time as Loki does: a float with a dot is seconds, an integer
/// of up to 10 digits is seconds and a longer one nanoseconds, else RFC 3339.
pub fn parse_loki_time(v: &str) -> Result<i64, String> {
    let err = || format!("cannot parse {v:?} to a valid timestamp");
    if let Some((int, frac)) = v.split_once('.') {
        // Whole seconds and up to nine fraction digits, without float loss.
        if let (Ok(secs), false) = (int.parse::<i64>(), frac.is_empty()) {
            if !frac.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err());
            }
            let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
            let nanos: i64 = digits.parse().map_err(|_| err())?;
            let nanos = if v.starts_with('-') { -nanos } else { nanos };
            return Ok(secs.saturating_mul(1_000_000_000).saturating_add(nanos));
        }
    }
    match v.parse::<i64>() {
        Ok(n) if v.trim_start_matches('-').len() <= 10 => Ok(n.saturating_mul(1_000_000_000)),
        Ok(n) => Ok(n),
        Err(_) => chrono::DateTime::parse_from_rfc3339(v)
            .ok()
            .and_then(|t| t.timestamp_nanos_opt())
            .ok_or_else(err),
    }
}

fn time_param(p: &Params, name: &str, default: i64) -> Result<i64, LokiApiError> {
    match p.get(name) {
        None => Ok(default),
        Some(v) => {
            parse_loki_time(v).map_err(|e| bad(format!("invalid parameter \"{name}\": {e}")))
        }
    }
}

fn limit_param(p: &Params) -> Result<usize, LokiApiError> {
    match p.get("limit") {
        None => Ok(DEFAULT_LIMIT),
        Some(v) => match v.parse::<usize>() {
            Ok(0) | Err(_) => Err(bad(format!(
                "invalid parameter \"limit\": {v:?} is not a positive integer"
            ))),
            Ok(n) if n > MAX_LIMIT => Err(bad(format!(
                "max entries limit per query exceeded, limit > max_entries_limit ({n} > {MAX_LIMIT})"
            ))),
            Ok(n) => Ok(n),
        },
    }
}

fn direction_param(p: &Params) -> Result<Direction, LokiApiError> {
    match p.get("direction").map(str::to_ascii_lowercase).as_deref() {
        None | Some("backward") => Ok(Direction::Backward),
        Some("forward") => Ok(Direction::Forward),
        Some(other) => Err(bad(format!(
            "invalid parameter \"direction\": {other:?} (expected forward or backward)"
        ))),
    }
}

fn query_param(p: &Params) -> Result<String, LokiApiError> {
    p.get("query")
        .map(str::to_string)
        .ok_or_else(|| bad("missing parameter \"query\""))
}

/// Seconds as Loki prints sample times: a number with a fraction.
fn secs(ns: i64) -> Value {
    let s = ns as f64 / 1e9;
    if ns % 1_000_000_000 == 0 {
        json!(ns / 1_000_000_000)
    } else {
        json!(s)
    }
}

fn fmt_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

fn stats_json(stats: SelectStats, exec: Duration, returned: usize) -> Value {
    let t = exec.as_secs_f64().max(1e-9);
    json!({
        "summary": {
            "bytesProcessedPerSecond": (stats.bytes_examined as f64 / t) as u64,
            "linesProcessedPerSecond": (stats.lines_examined as f64 / t) as u64,
            "totalBytesProcessed": stats.bytes_examined,
            "totalLinesProcessed": stats.lines_examined,
            "execTime": exec.as_secs_f64(),
            "queueTime": 0,
            "subqueries": 0,
            "totalEntriesReturned": returned,
            "splits": 0,
            "shards": 0,
            "totalPostFilterLines": stats.lines_matched,
            "totalStructuredMetadataBytesProcessed": 0
        },
        "querier": {"store": {
            "totalChunksRef": stats.partitions,
            "totalChunksDownloaded": stats.partitions,
            "chunksDownloadTime": 0,
            "chunk": {
                "headChunkBytes": 0, "headChunkLines": 0,
                "decompressedBytes": stats.bytes_examined,
                "decompressedLines": stats.lines_examined,
                "compressedBytes": 0, "totalDuplicates": 0,
                "postFilterLines": stats.lines_matched
            }
        }},
        "ingester": {
            "totalReached": 0, "totalChunksMatched": 0, "totalBatches": 0, "totalLinesSent": 0,
            "store": {"totalChunksRef": 0, "totalChunksDownloaded": 0, "chunksDownloadTime": 0,
                "chunk": {"headChunkBytes": 0, "headChunkLines": 0, "decompressedBytes": 0,
                    "decompressedLines": 0, "compressedBytes": 0, "totalDuplicates": 0}}
        }
    })
}

fn render(out: QueryOutput) -> Value {
    let (stats, exec) = out.stats();
    let (kind, result, returned) = match out {
        QueryOutput::Streams(streams, ..) => {
            let n = streams.iter().map(|s| s.entries.len()).sum();
            let r: Vec<Value> = streams
                .into_iter()
                .map(|s| {
                    let values: Vec<Value> = s
                        .entries
                        .into_iter()
                        .map(|(ts, line)| json!([ts.to_string(), line]))
                        .collect();
                    json!({"stream": s.labels, "values": values})
                })
                .collect();
            ("streams", r, n)
        }
        QueryOutput::Matrix(series, ..) => {
            let n = series.len();
            let r = series
                .into_iter()
                .map(|s| {
                    let values: Vec<Value> = s
                        .points
                        .iter()
                        .map(|(t, v)| json!([secs(*t), fmt_value(*v)]))
                        .collect();
                    json!({"metric": s.labels, "values": values})
                })
                .collect();
            ("matrix", r, n)
        }
        QueryOutput::Vector(samples, ..) => {
            let n = samples.len();
            let r = samples
                .into_iter()
                .map(|s| json!({"metric": s.labels, "value": [secs(s.ts_ns), fmt_value(s.value)]}))
                .collect();
            ("vector", r, n)
        }
    };
    json!({
        "status": "success",
        "data": {"resultType": kind, "result": result, "stats": stats_json(stats, exec, returned)}
    })
}

async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, LokiApiError> + Send + 'static,
) -> Result<T, LokiApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("query task failed: {e}"),
        )
    })?
}

/// `GET|POST /loki/api/v1/query`: instant metric queries.
pub async fn query(State(state): State<Arc<AppState>>, p: Params) -> Response {
    let r = async {
        let q = query_param(&p)?;
        let time = time_param(&p, "time", now_ns())?;
        let logs = Arc::clone(&state.logs);
        run_blocking(move || logql::query_instant(&logs, &q, time).map_err(logql_error)).await
    }
    .await;
    finish(&state, "loki_query", r.map(render))
}

/// `GET|POST /loki/api/v1/query_range`.
pub async fn query_range(State(state): State<Arc<AppState>>, p: Params) -> Response {
    let r = async {
        let q = query_param(&p)?;
        let end = time_param(&p, "end", now_ns())?;
        let start = time_param(&p, "start", end.saturating_sub(DEFAULT_RANGE_NS))?;
        let step_ns = match p.get("step") {
            Some(v) => parse_duration(v)
                .map_err(|e| bad(format!("invalid parameter \"step\": {e}")))?
                .saturating_mul(1_000_000),
            // Loki's default: the range over 250 points, at least a second.
            None => ((end - start) / 250).max(1_000_000_000) / 1_000_000_000 * 1_000_000_000,
        };
        let params = LogqlParams {
            start_ns: start,
            end_ns: end,
            step_ns,
            direction: direction_param(&p)?,
            limit: limit_param(&p)?,
        };
        let logs = Arc::clone(&state.logs);
        run_blocking(move || logql::query_range(&logs, &q, &params).map_err(logql_error)).await
    }
    .await;
    finish(&state, "loki_query_range", r.map(render))
}

fn finish(state: &AppState, endpoint: &'static str, r: Result<Value, LokiApiError>) -> Response {
    match r {
        Ok(v) => {
            state.metrics.count_query(endpoint, "success");
            Json(v).into_response()
        }
        Err(e) => {
            state.metrics.count_query(endpoint, "error");
            e.into_response()
        }
    }
}

/// Matchers of an optional `query` selector (label endpoints) or of
/// `match[]` selectors (series).
fn selector_matchers(q: &str) -> Result<Vec<fleetwatch_model::Matcher>, LokiApiError> {
    match logql::parse(q).map_err(|e| bad(e.to_string()))? {
        logql::ast::Expr::Log(l) => Ok(l.matchers),
        logql::ast::Expr::Metric(_) => Err(bad(format!("{q:?} is not a stream selector"))),
    }
}

fn range(p: &Params) -> Result<(i64, i64), LokiApiError> {
    let end = time_param(p, "end", now_ns())?;
    let start = time_param(p, "start", end.saturating_sub(DEFAULT_LOOKBACK_NS))?;
    // Label requests are inclusive of `end`.
    Ok((start, end.saturating_add(1)))
}

fn data(v: Value) -> Response {
    Json(json!({"status": "success", "data": v})).into_response()
}

/// `GET /loki/api/v1/labels`.
pub async fn labels(State(state): State<Arc<AppState>>, p: Params) -> Response {
    let r = (|| {
        let (start, end) = range(&p)?;
        let m = match p.get("query") {
            Some(q) => selector_matchers(q)?,
            None => Vec::new(),
        };
        Ok(data(json!(state.logs.label_names(&m, start, end))))
    })();
    r.unwrap_or_else(|e: LokiApiError| e.into_response())
}

/// `GET /loki/api/v1/label/<name>/values`.
pub async fn label_values(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    p: Params,
) -> Response {
    let r = (|| {
        let (start, end) = range(&p)?;
        let m = match p.get("query") {
            Some(q) => selector_matchers(q)?,
            None => Vec::new(),
        };
        Ok(data(json!(state.logs.label_values(&name, &m, start, end))))
    })();
    r.unwrap_or_else(|e: LokiApiError| e.into_response())
}

/// `GET|POST /loki/api/v1/series`.
pub async fn series(State(state): State<Arc<AppState>>, p: Params) -> Response {
    let r = (|| {
        let (start, end) = range(&p)?;
        let mut selectors = p.all("match[]");
        selectors.extend(p.all("match"));
        let mut out: Vec<LabelMap> = Vec::new();
        if selectors.is_empty() {
            return Err(bad("missing parameter \"match[]\""));
        }
        for sel in selectors {
            let m = selector_matchers(sel)?;
            for s in state.logs.streams(&m, start, end) {
                let l: LabelMap = s
                    .labels
                    .iter()
                    .map(|l| (l.name.clone(), l.value.clone()))
                    .collect();
                if !out.contains(&l) {
                    out.push(l);
                }
            }
        }
        Ok(data(json!(out)))
    })();
    r.unwrap_or_else(|e: LokiApiError| e.into_response())
}

/// `GET|POST /loki/api/v1/index/stats`: streams, chunks (partitions),
/// entries and bytes a selector covers.
pub async fn index_stats(State(state): State<Arc<AppState>>, p: Params) -> Response {
    let r = async {
        let q = query_param(&p)?;
        let (start, end) = range(&p)?;
        let m = selector_matchers(&q)?;
        let logs = Arc::clone(&state.logs);
        run_blocking(move || {
            let streams = logs.streams(&m, start, end).len();
            let (mut entries, mut bytes) = (0u64, 0u64);
            let stats = logs
                .select_meta(
                    &Selection {
                        matchers: &m,
                        contains: &[],
                        start_ns: start,
                        end_ns: end,
                    },
                    |_, _, len| {
                        entries += 1;
                        bytes += len;
                    },
                )
                .map_err(|e| logql_error(LogqlError::Store(e)))?;
            Ok(Json(json!({
                "streams": streams,
                "chunks": stats.partitions,
                "entries": entries,
                "bytes": bytes
            }))
            .into_response())
        })
        .await
    }
    .await;
    r.unwrap_or_else(|e| e.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loki_times() {
        assert_eq!(
            parse_loki_time("1700000000").unwrap(),
            1_700_000_000_000_000_000
        );
        assert_eq!(
            parse_loki_time("1700000000123456789").unwrap(),
            1_700_000_000_123_456_789
        );
        assert_eq!(
            parse_loki_time("1700000000.5").unwrap(),
            1_700_000_000_500_000_000
        );
        assert_eq!(
            parse_loki_time("2023-11-14T22:13:20.000000001Z").unwrap(),
            1_700_000_000_000_000_001
        );
        assert!(parse_loki_time("soon").is_err());
    }
}
