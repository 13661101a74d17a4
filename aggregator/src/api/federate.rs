//! `GET|POST /federate?match[]=...`: Prometheus's federation endpoint.
//!
//! For every series matching any `match[]` selector, the newest sample
//! within the lookback delta before now is written in the text exposition
//! format 0.0.4, grouped by metric name (one `# TYPE name untyped` line per
//! family) and sorted. A series whose newest sample is a staleness marker
//! is left out. The hub's `global.external_labels` are added to every
//! series that does not carry the label already, as Prometheus does, so a
//! Prometheus scraping with `honor_labels: true` keeps the stored `job`,
//! `instance` and `cluster` labels.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use fleetwatch_model::exposition::{write_sample_line, write_type_line, TEXT_CONTENT_TYPE};
use fleetwatch_model::{is_stale_nan, Labels, Matcher, Sample};
use fleetwatch_storage::Queryable;

use super::now_ms;
use crate::error::{ApiError, ErrorType};
use crate::hub::AppState;
use crate::params::Params;

/// `GET|POST /federate`.
pub async fn federate(
    State(state): State<Arc<AppState>>,
    params: Params,
) -> Result<Response, ApiError> {
    let result = run(&state, &params).await;
    state.metrics.count_query(
        "federate",
        match &result {
            Ok(_) => "success",
            Err(e) if e.kind == ErrorType::BadData => "bad_data",
            Err(_) => "internal",
        },
    );
    let text = result?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(TEXT_CONTENT_TYPE),
        )],
        text,
    )
        .into_response())
}

async fn run(state: &Arc<AppState>, params: &Params) -> Result<String, ApiError> {
    let mut matcher_sets = Vec::new();
    for m in params.all("match[]") {
        let set = fleetwatch_query::parse_series_selector(m)
            .map_err(|e| ApiError::bad_data(format!("invalid parameter \"match[]\": {e}")))?;
        matcher_sets.push(set);
    }
    if matcher_sets.is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let maxt = now_ms();
    let mint = maxt.saturating_sub(state.engine.lookback_delta_ms.max(0));
    let db = Arc::clone(&state.db);
    let latest =
        tokio::task::spawn_blocking(move || latest_samples(db.as_ref(), &matcher_sets, mint, maxt))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)?;
    let external: Vec<(&str, &str)> = state
        .config
        .global
        .external_labels
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    Ok(render(latest, &external))
}

/// The newest non-stale sample in `[mint, maxt]` of every series matching
/// any of `matcher_sets`, keyed (and so de-duplicated and sorted) by labels.
pub fn latest_samples(
    q: &dyn Queryable,
    matcher_sets: &[Vec<Matcher>],
    mint: i64,
    maxt: i64,
) -> Result<BTreeMap<Labels, Sample>, fleetwatch_storage::StorageError> {
    let mut out = BTreeMap::new();
    for set in matcher_sets {
        for series in q.select(set, mint, maxt)? {
            let Some(last) = series
                .samples
                .iter()
                .rev()
                .find(|s| s.timestamp_ms <= maxt && s.timestamp_ms >= mint)
            else {
                continue;
            };
            if is_stale_nan(last.value) {
                continue;
            }
            out.insert(series.labels, *last);
        }
    }
    Ok(out)
}

/// Writes `samples` in the text format, grouped by metric name with one
/// `# TYPE name untyped` line per family, adding each of `external`
/// (name, value) labels to a series that lacks it.
pub fn render(samples: BTreeMap<Labels, Sample>, external: &[(&str, &str)]) -> String {
    // Group by metric name first: label-set order alone would interleave
    // families whose label sets sort before `__name__`.
    let mut by_name: BTreeMap<String, Vec<(Labels, Sample)>> = BTreeMap::new();
    for (labels, sample) in samples {
        let name = labels.metric_name().unwrap_or_default().to_string();
        by_name.entry(name).or_default().push((labels, sample));
    }
    let mut out = String::new();
    for (name, series) in by_name {
        if name.is_empty() {
            // A series without a metric name cannot be written in the
            // text format; storage does not hold such series.
            continue;
        }
        write_type_line(&mut out, &name, "untyped");
        for (mut labels, sample) in series {
            for (k, v) in external {
                if labels.get(k).is_none() {
                    labels.set(k, v);
                }
            }
            write_sample_line(&mut out, &labels, sample.value, Some(sample.timestamp_ms));
        }
    }
    out
}

#[cfg(test)]
mod tests;
