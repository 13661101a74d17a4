//! The remote write 2.0 part of `POST /api/v1/write`
//! (`Content-Type: application/x-protobuf;proto=io.prometheus.write.v2.Request`):
//! the one-pass walk into the head's [`BatchBuilder`] (the same append path
//! as 1.0), metadata into the metadata store, and the
//! `X-Prometheus-Remote-Write-*-Written` response headers.
//!
//! Native histograms and exemplars are checked (every ref in range) but not
//! stored. A request with histograms has its float samples written and is
//! answered 400 with the written counts, as the spec asks of a partial
//! write; exemplars are ignored as Prometheus's own receiver does without
//! exemplar storage (`Exemplars-Written: 0`).
//!
//! [`BatchBuilder`]: fleetwatch_storage::head::BatchBuilder

use std::collections::HashSet;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use fleetwatch_model::remote_write::v2::{
    family_name, RawRequest, EXEMPLARS_WRITTEN, HISTOGRAMS_WRITTEN, SAMPLES_WRITTEN,
};
use fleetwatch_model::{ModelError, METRIC_NAME};
use fleetwatch_storage::head::Head;

use super::write::{Prepared, Written};

/// Decodes and validates a decompressed 2.0 request whole into a batch for
/// the head, with the distinct metadata entries its series carry.
pub fn prepare(head: &Head, request: &[u8]) -> Result<Prepared, ModelError> {
    let raw = RawRequest::parse(request)?;
    let mut pairs = Vec::with_capacity(32);
    let mut seen = HashSet::new();
    let mut metadata = Vec::new();
    let (mut histograms, mut exemplars) = (0u64, 0u64);
    let batch = head.prepare(|builder| {
        raw.for_each_series(|series| {
            let info = series.parse(&mut pairs, |t, v| builder.push_sample(t, v))?;
            builder.end_series(&pairs)?;
            histograms += info.histograms as u64;
            exemplars += info.exemplars as u64;
            let Some(m) = info.metadata.filter(|m| !m.is_empty()) else {
                return Ok(());
            };
            // Symbols are UTF-8 (checked when the table was read), and the
            // labels were validated by `end_series`.
            let name = pairs
                .iter()
                .find(|(n, _)| *n == METRIC_NAME.as_bytes())
                .and_then(|(_, v)| std::str::from_utf8(v).ok());
            if let Some(name) = name {
                // Many series share one family's entry: allocate it once.
                if seen.insert((family_name(name, m.kind), m.kind, m.help, m.unit)) {
                    metadata.extend(m.to_family(name));
                }
            }
            Ok(())
        })
    })?;
    Ok(Prepared {
        batch,
        metadata,
        histograms,
        exemplars,
    })
}

/// The answer to a 2.0 request that was stored: 204, or 400 when native
/// histograms in it were not written (the float samples were).
pub fn response(w: &Written) -> Response {
    let resp = if w.histograms > 0 {
        (
            StatusCode::BAD_REQUEST,
            format!(
                "{} native histogram samples were not written: this hub does not store native histograms; {} float samples were written\n",
                w.histograms, w.samples
            ),
        )
            .into_response()
    } else {
        StatusCode::NO_CONTENT.into_response()
    };
    with_written_headers(resp, w.samples)
}

/// Adds the `X-Prometheus-Remote-Write-*-Written` headers to `resp`:
/// `samples` float samples, no histograms, no exemplars.
pub fn with_written_headers(mut resp: Response, samples: u64) -> Response {
    let h = resp.headers_mut();
    h.insert(SAMPLES_WRITTEN, HeaderValue::from(samples));
    h.insert(HISTOGRAMS_WRITTEN, HeaderValue::from(0u64));
    h.insert(EXEMPLARS_WRITTEN, HeaderValue::from(0u64));
    resp
}

#[cfg(test)]
mod tests;
