//! Query results written straight to JSON bytes in Prometheus's shapes,
//! without an intermediate `serde_json::Value` tree: a matrix of many
//! points renders without an allocation per point (the tree cost more than
//! the evaluation on small range queries).

use axum::http::header;
use axum::response::{IntoResponse, Response};
use fleetwatch_model::exposition::format_value;
use fleetwatch_model::Labels;
use fleetwatch_query::QueryValue;

use crate::params::ms_to_secs;

/// The success envelope around `value`, as an HTTP response.
pub fn query_response(value: &QueryValue) -> Response {
    let mut out = Vec::with_capacity(estimate(value));
    out.extend_from_slice(br#"{"status":"success","data":"#);
    write_value(&mut out, value);
    out.push(b'}');
    ([(header::CONTENT_TYPE, "application/json")], out).into_response()
}

/// A rough size of the rendered value, to allocate once.
fn estimate(value: &QueryValue) -> usize {
    match value {
        QueryValue::Matrix(series) => {
            series
                .iter()
                .map(|s| 64 + s.labels.len() * 32 + s.samples.len() * 28)
                .sum::<usize>()
                + 64
        }
        QueryValue::Vector(v) => v.len() * 128 + 64,
        _ => 128,
    }
}

/// Writes Prometheus's `data` object for `value`.
fn write_value(out: &mut Vec<u8>, value: &QueryValue) {
    match value {
        QueryValue::Scalar {
            timestamp_ms,
            value,
        } => {
            out.extend_from_slice(br#"{"resultType":"scalar","result":"#);
            write_point(out, *timestamp_ms, *value);
            out.push(b'}');
        }
        QueryValue::String {
            timestamp_ms,
            value,
        } => {
            out.extend_from_slice(br#"{"resultType":"string","result":["#);
            write_time(out, *timestamp_ms);
            out.push(b',');
            write_str(out, value);
            out.extend_from_slice(b"]}");
        }
        QueryValue::Vector(samples) => {
            out.extend_from_slice(br#"{"resultType":"vector","result":["#);
            for (i, s) in samples.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(br#"{"metric":"#);
                write_labels(out, &s.labels);
                out.extend_from_slice(br#","value":"#);
                write_point(out, s.timestamp_ms, s.value);
                out.push(b'}');
            }
            out.extend_from_slice(b"]}");
        }
        QueryValue::Matrix(series) => {
            out.extend_from_slice(br#"{"resultType":"matrix","result":["#);
            for (i, s) in series.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(br#"{"metric":"#);
                write_labels(out, &s.labels);
                out.extend_from_slice(br#","values":["#);
                for (j, p) in s.samples.iter().enumerate() {
                    if j > 0 {
                        out.push(b',');
                    }
                    write_point(out, p.timestamp_ms, p.value);
                }
                out.extend_from_slice(b"]}");
            }
            out.extend_from_slice(b"]}");
        }
    }
}

/// `[<seconds>,"<value>"]`.
fn write_point(out: &mut Vec<u8>, ts_ms: i64, v: f64) {
    out.push(b'[');
    write_time(out, ts_ms);
    out.extend_from_slice(b",\"");
    // Prometheus's float text is digits, signs, `.`, `e`, `NaN` or `Inf`:
    // nothing to escape.
    out.extend_from_slice(format_value(v).as_bytes());
    out.extend_from_slice(b"\"]");
}

/// Seconds as Prometheus prints them (see [`ms_to_secs`]).
fn write_time(out: &mut Vec<u8>, ms: i64) {
    // Writing a number into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, &ms_to_secs(ms));
}

/// A JSON string with escaping.
fn write_str(out: &mut Vec<u8>, s: &str) {
    // Writing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// A label set as a JSON object.
fn write_labels(out: &mut Vec<u8>, labels: &Labels) {
    out.push(b'{');
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, &l.name);
        out.push(b':');
        write_str(out, &l.value);
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use fleetwatch_model::Sample;
    use fleetwatch_query::{InstantSample, RangeSeries};
    use serde_json::{json, Value};

    use super::*;

    fn rendered(v: &QueryValue) -> Value {
        let mut out = Vec::new();
        write_value(&mut out, v);
        serde_json::from_slice(&out).expect("valid JSON")
    }

    #[test]
    fn shapes_match_prometheus() {
        let labels = Labels::from_pairs([("__name__", "up"), ("job", "a\"b\\c\n")]);
        let m = QueryValue::Matrix(vec![RangeSeries {
            labels: labels.clone(),
            samples: vec![Sample::new(1_000, 1.0), Sample::new(1_500, f64::NAN)],
            histograms: Vec::new(),
        }]);
        assert_eq!(
            rendered(&m),
            json!({"resultType": "matrix", "result": [{
                "metric": {"__name__": "up", "job": "a\"b\\c\n"},
                "values": [[1, "1"], [1.5, "NaN"]]
            }]})
        );
        let v = QueryValue::Vector(vec![InstantSample {
            labels,
            timestamp_ms: 1_435_781_451_781,
            value: f64::INFINITY,
            histogram: None,
        }]);
        assert_eq!(
            rendered(&v)["result"][0]["value"],
            json!([1_435_781_451.781, "+Inf"])
        );
        let s = QueryValue::Scalar {
            timestamp_ms: 2_000,
            value: -0.5,
        };
        assert_eq!(
            rendered(&s),
            json!({"resultType": "scalar", "result": [2, "-0.5"]})
        );
        let t = QueryValue::String {
            timestamp_ms: 0,
            value: "x\"y".into(),
        };
        assert_eq!(
            rendered(&t),
            json!({"resultType": "string", "result": [0, "x\"y"]})
        );
        assert_eq!(
            rendered(&QueryValue::Matrix(Vec::new())),
            json!({"resultType": "matrix", "result": []})
        );
    }
}
